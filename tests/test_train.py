"""Model.compile/fit/evaluate/predict, callbacks, progress output, resuming."""

import csv
import io
import os

import numpy as np
import pytest

import oxinet
from oxinet import nn, optim
from oxinet.data import DataLoader
from oxinet.train import (
    CSVLogger, EarlyStopping, LambdaCallback, LearningRateScheduler, Model, ModelCheckpoint,
    TerminateOnNaN,
)


def blobs(n=300, seed=0):
    """Three well-separated Gaussian blobs in 2-D: (n, 2) float32, (n,) int64."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 3], [3, -2], [-3, -2]], np.float32)
    y = rng.integers(0, 3, n)
    x = centers[y] + rng.standard_normal((n, 2)).astype(np.float32) * 0.7
    return x.astype(np.float32), y.astype(np.int64)


def mlp(seed=0):
    oxinet.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 3))


def compiled(seed=0, lr=0.05, **kw):
    return Model(mlp(seed)).compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"], lr=lr, **kw)


def test_fit_learns_and_evaluate_predict_agree():
    x, y = blobs()
    model = compiled()
    hist = model.fit(x, y, batch_size=32, epochs=15, verbose=0, seed=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    logs = model.evaluate(x, y)
    assert logs["accuracy"] >= 0.95
    probs = model.predict(x, batch_size=37)
    assert probs.shape == (300, 3) and probs.dtype == np.float32
    assert np.isclose((probs.argmax(1) == y).mean(), logs["accuracy"])
    # evaluate's loss is the sample-weighted mean of per-batch means = the full-set loss
    full = nn.CrossEntropyLoss()(oxinet.as_tensor(probs), oxinet.as_tensor(y)).item()
    assert np.isclose(logs["loss"], full, rtol=1e-5)


def test_validation_split_takes_the_last_samples_and_logs_val_metrics():
    x, y = blobs(200)
    model = compiled()
    hist = model.fit(x, y, epochs=2, validation_split=0.25, verbose=0, seed=1)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    ref = model.evaluate(x[150:], y[150:])
    assert np.isclose(hist.history["val_loss"][-1], ref["loss"])
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)


def test_fit_from_a_loader_and_validation_loader():
    x, y = blobs(120)
    model = compiled()
    loader = DataLoader((x, y), batch_size=16, shuffle=True, seed=3)
    hist = model.fit(loader, epochs=2, validation_data=DataLoader((x, y), batch_size=50), verbose=0)
    assert len(hist.history["val_loss"]) == 2
    with pytest.raises(ValueError, match="DataLoader already yields"):
        model.fit(loader, y, verbose=0)


def test_same_seed_same_curve_also_with_other_thread_count():
    x, y = blobs(256)
    curves = []
    before = oxinet.get_num_threads()
    try:
        for threads in (1, 2, 1):
            oxinet.set_num_threads(threads)
            model = compiled(seed=7)
            curves.append(model.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=11).history["loss"])
    finally:
        oxinet.set_num_threads(before)
    assert curves[0] == curves[1] == curves[2]


def test_manual_seed_drives_shuffling_when_no_seed_given():
    x, y = blobs(128)
    runs = []
    for _ in range(2):
        model = compiled(seed=5)
        oxinet.manual_seed(42)
        runs.append(model.fit(x, y, epochs=2, verbose=0).history["loss"])
    assert runs[0] == runs[1]


def test_train_on_batch_and_test_on_batch():
    x, y = blobs(64)
    model = compiled()
    first = model.test_on_batch(x, y)["loss"]
    for _ in range(30):
        model.train_on_batch(x, y)
    assert model.test_on_batch(x, y)["loss"] < first


def test_early_stopping_stops_and_restores_best_weights():
    x, y = blobs(100)
    model = compiled(lr=0.05)
    # val_loss on *shuffled labels* can only get worse once the model fits the real ones
    rng = np.random.default_rng(0)
    bad_val = (x, rng.permutation(y))
    seen = []
    snap = LambdaCallback(on_epoch_end=lambda e, logs: seen.append(
        (logs["val_loss"], {k: v.numpy().copy() for k, v in model.module.state_dict().items()})))
    stopper = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    hist = model.fit(x, y, epochs=50, validation_data=bad_val, callbacks=[snap, stopper], verbose=0, seed=0)
    assert stopper.stopped_epoch is not None and len(hist.history["loss"]) < 50
    assert len(hist.history["loss"]) == stopper.best_epoch + 1 + 3  # best, then patience+1 worse
    best_state = seen[stopper.best_epoch][1]
    for k, v in model.module.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), best_state[k])
    assert seen[stopper.best_epoch][0] == min(s[0] for s in seen)


def test_early_stopping_mode_auto_for_accuracy_and_missing_monitor():
    x, y = blobs(60)
    stopper = EarlyStopping(monitor="val_accuracy", patience=0)
    assert stopper._mon.mode == "max"
    with pytest.raises(KeyError, match="val_loss"):
        compiled().fit(x, y, epochs=1, callbacks=[EarlyStopping()], verbose=0)


def test_model_checkpoint_best_only_and_resume(tmp_path):
    x, y = blobs(150)
    path = tmp_path / "best.ckpt"
    model = compiled()
    ckpt = ModelCheckpoint(path, monitor="loss", save_best_only=True)
    model.fit(x, y, epochs=3, callbacks=[ckpt], verbose=0, seed=2)
    assert path.exists()
    # Resuming from a checkpoint continues exactly like an uninterrupted run.
    straight = compiled(seed=3)
    straight.fit(x, y, epochs=2, verbose=0, seed=9)
    straight.fit(x, y, epochs=2, verbose=0, seed=10)
    first = compiled(seed=3)
    first.fit(x, y, epochs=2, verbose=0, seed=9)
    first.save(tmp_path / "mid.ckpt")
    resumed = compiled(seed=99)  # different init: everything must come from the file
    resumed.load(tmp_path / "mid.ckpt")
    assert resumed.epoch == 2
    resumed.fit(x, y, epochs=2, verbose=0, seed=10)
    for (k, a), b in zip(straight.module.state_dict().items(), resumed.module.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    assert resumed.history.epoch == [2, 3]


def test_checkpoint_survives_a_crash_between_write_and_rename(tmp_path, monkeypatch):
    x, y = blobs(60)
    path = tmp_path / "w.safetensors"
    model = compiled()
    model.fit(x, y, epochs=1, callbacks=[ModelCheckpoint(path, monitor="loss", save_weights_only=True)], verbose=0)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("simulated power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        model.fit(x, y, epochs=1, callbacks=[ModelCheckpoint(path, monitor="loss", save_weights_only=True)], verbose=0)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert oxinet.load(path).keys() == model.module.state_dict().keys()
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temp file left


def test_learning_rate_scheduler_with_scheduler_and_function():
    x, y = blobs(40)
    model = compiled(lr=0.1)
    sched = optim.lr_scheduler.StepLR(model.optimizer, step_size=1, gamma=0.5)
    hist = model.fit(x, y, epochs=3, callbacks=[LearningRateScheduler(sched)], verbose=0)
    assert hist.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    model2 = compiled(lr=1.0)
    hist2 = model2.fit(x, y, epochs=3, verbose=0,
                       callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 / (1 + epoch))])
    assert hist2.history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_csv_logger_writes_a_row_per_epoch(tmp_path):
    x, y = blobs(40)
    path = tmp_path / "log.csv"
    compiled().fit(x, y, epochs=3, callbacks=[CSVLogger(path)], verbose=0)
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["epoch", "accuracy", "loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]


def test_terminate_on_nan_stops_in_the_first_bad_batch():
    x, y = blobs(64)
    x[5] = np.nan
    model = compiled()
    batches = []
    hist = model.fit(x, y, batch_size=64, epochs=5, shuffle=False, verbose=0,
                     callbacks=[TerminateOnNaN(), LambdaCallback(on_batch_end=lambda b, logs: batches.append(b))])
    assert len(hist.history["loss"]) == 1 and np.isnan(hist.history["loss"][0])


def test_plain_progress_lines_when_not_a_terminal(capsys):
    x, y = blobs(50)
    compiled().fit(x, y, epochs=2, verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2") and "samples/s" in lines[0] and "loss:" in lines[0]
    compiled().fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_history_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = blobs(50)
    hist = compiled().fit(x, y, epochs=2, validation_split=0.2, verbose=0)
    out = tmp_path / "curves.png"
    hist.plot(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert hist.best("val_loss")[1] == min(hist.history["val_loss"])


def test_errors_are_clear():
    x, y = blobs(20)
    with pytest.raises(RuntimeError, match="compile"):
        Model(mlp()).fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        Model(mlp()).compile(loss="nope")
    with pytest.raises(ValueError, match="unknown optimizer"):
        Model(mlp()).compile(optimizer="nope")
    with pytest.raises(TypeError, match="'module' must be an oxinet.nn.Module"):
        Model(lambda t: t)
    with pytest.raises(ValueError, match="unknown metric"):
        Model(mlp()).compile(metrics=["nope"])


def test_progress_bar_on_a_terminal():
    pytest.importorskip("tqdm")
    from oxinet.train.progress import EpochProgress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    p = EpochProgress(0, 3, total_batches=4, verbose=1, stream=stream)
    assert p.bar is not None
    for _ in range(4):
        p.update(32, {"loss": 0.5})
    p.close({"loss": 0.4, "accuracy": 0.9})
    text = stream.getvalue()
    assert "epoch 1/3" in text and "4/4" in text and "samples/s" in text and "accuracy: 0.9" in text
