"""The main job: python -m oxinet demo (LeNet-5 on the bundled digits)."""

import subprocess
import sys

import numpy as np

import oxinet
from oxinet.demo import digits_32x32, lenet5, run


def test_data_is_split_stratified_and_standardised():
    (x_tr, y_tr), (x_dev, y_dev), (x_te, y_te) = digits_32x32()
    assert x_tr.shape[1:] == (1, 32, 32) and x_tr.dtype == np.float32
    assert len(x_tr) + len(x_dev) + len(x_te) == 1797
    assert abs(float(x_tr.mean())) < 1e-4 and abs(float(x_tr.std()) - 1) < 1e-3
    assert set(np.unique(y_te)) == set(range(10))


def test_lenet5_shapes_and_parameter_count():
    net = lenet5()
    out = net(oxinet.zeros(2, 1, 32, 32))
    assert out.shape == (2, 10)
    # conv1 156 + conv2 2416 + fc 48120 + 10164 + 850
    assert sum(p.numpy().size for p in net.parameters()) == 61706


def test_short_run_learns_and_writes_files(tmp_path):
    r = run(epochs=4, out=str(tmp_path), verbose=0)
    assert r["test_accuracy"] >= 0.93
    assert r["samples_per_second"] > 0
    weights = oxinet.load(r["weights"])
    assert weights["0.weight"].shape == (6, 1, 5, 5)
    if not r["curves"].startswith("not written"):
        assert open(r["curves"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_command_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "oxinet", "demo", "--epochs", "1", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    text = out.stdout
    assert "LeNet-5 on the bundled digits" in text
    assert "epoch 1/1" in text and "samples/s" in text
    assert "test accuracy:" in text and (tmp_path / "lenet5_digits.safetensors").exists()
