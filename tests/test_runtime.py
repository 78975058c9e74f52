"""Runtime guarantees: thread control, GIL release, fork safety, subnormal flushing,
no Rust panic reaching Python."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import oxinet
from oxinet import _core, ops


def test_thread_count_roundtrip_and_validation():
    before = oxinet.get_num_threads()
    try:
        oxinet.set_num_threads(1)
        assert oxinet.get_num_threads() == 1
        oxinet.set_num_threads(3)
        assert oxinet.get_num_threads() == 3
    finally:
        oxinet.set_num_threads(before)
    with pytest.raises(ValueError, match="n must be >= 1"):
        oxinet.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an int"):
        oxinet.set_num_threads(2.5)


def test_env_var_sets_default_threads():
    code = "import oxinet; print(oxinet.get_num_threads())"
    env = dict(os.environ, OXINET_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"


def test_simd_level_is_reported():
    assert oxinet.simd_level() in {"avx512", "avx2+fma", "neon", "portable"}


def test_workers_flush_denormals():
    assert _core.workers_flush_denormals()


def test_kernels_release_the_gil():
    """While one thread runs a long product, a pure-Python thread keeps making progress."""
    a = np.random.default_rng(0).standard_normal((1200, 1200)).astype(np.float32)
    ticks = []
    stop = threading.Event()

    def counter():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0)

    t = threading.Thread(target=counter)
    t.start()
    time.sleep(0.01)
    n_before = len(ticks)
    t0 = time.perf_counter()
    calls = 0
    while time.perf_counter() - t0 < 0.3:
        ops.matmul(a, a)
        calls += 1
    progress = len(ticks) - n_before
    stop.set()
    t.join()
    # With the GIL held for the whole product the counter would advance about once per call.
    assert progress > 5 * calls, (progress, calls)


def test_two_python_threads_compute_correctly_at_once():
    rng = np.random.default_rng(1)
    mats = [rng.standard_normal((300, 300)) for _ in range(4)]
    results = [None] * 4

    def work(i):
        for _ in range(5):
            results[i] = ops.matmul(mats[i], mats[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for m, r in zip(mats, results):
        np.testing.assert_allclose(r, m @ m, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kernels_work_in_a_forked_child():
    a = np.random.default_rng(2).standard_normal((400, 400))
    ops.matmul(a, a)  # the parent's pool exists before fork
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            ok = np.allclose(ops.matmul(a, a), a @ a)
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    deadline = time.time() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.time() > deadline:
            os.kill(pid, 9)
            pytest.fail("matmul hung in a forked child")
        time.sleep(0.02)
    assert os.read(r, 1) == b"1"


def test_kernel_errors_are_python_exceptions_not_panics():
    a = np.zeros((1, 2, 3), np.float32)
    b = np.zeros((1, 4, 5), np.float32)
    c = np.zeros((1, 2, 5), np.float32)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        _core.gemm_f32(a, b, c, 1.0, 0.0)
    with pytest.raises(TypeError):
        _core.gemm_f32(a.astype(np.float64), b, c, 1.0, 0.0)


def test_main_prints_version_simd_threads_and_self_check():
    out = subprocess.run([sys.executable, "-m", "oxinet", "info"], capture_output=True, text=True, check=True)
    text = out.stdout
    assert f"oxinet {oxinet.__version__}" in text
    assert "simd:" in text and "threads:" in text
    assert "gemm self-check" in text and ": ok" in text


_SMALL_OPS_SCRIPT = r"""
import os, numpy as np
import oxinet.ops as F
rng = np.random.default_rng(0)
big = rng.standard_normal((256, 256), dtype=np.float32)
F.matmul(big, big)                       # starts oxinet's own pool
before = len(os.listdir("/proc/self/task"))
x = rng.standard_normal((2, 3, 6, 6), dtype=np.float32)
w = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
dy = rng.standard_normal((2, 4, 6, 6), dtype=np.float32)
small = [
    lambda: F.conv2d(x, w, padding=1),
    lambda: F.conv2d_backward(dy, x, w, 1, 1, 1, 1),
    lambda: F.conv2d(x, rng.standard_normal((3, 1, 3, 3), dtype=np.float32), groups=3),
    lambda: F.max_pool2d(x, 2),
    lambda: F.softmax(x, axis=1),
    lambda: F.cross_entropy(rng.standard_normal((4, 5), dtype=np.float32), np.array([0, 1, 2, 3])),
    lambda: F.lstm(rng.standard_normal((3, 2, 4), dtype=np.float32), None, None,
                   rng.standard_normal((20, 4), dtype=np.float32), rng.standard_normal((20, 5), dtype=np.float32)),
    lambda: F.scaled_dot_product_attention(*(rng.standard_normal((1, 4, 8), dtype=np.float32),) * 3),
    lambda: F.box_iou(np.array([[0, 0, 1, 1.]], np.float32), np.array([[0, 0, 2, 2.]], np.float32)),
    lambda: F.embedding(np.array([1, 2]), rng.standard_normal((4, 3), dtype=np.float32)),
    lambda: F.relu(x),
    lambda: F.sigmoid(x),
]
for op in small:
    op()
print(before, len(os.listdir("/proc/self/task")))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_small_kernels_start_no_threads():
    """Kernels small enough to run inline stay on the calling thread: their parallel
    iterators must not start rayon's global pool (threads beyond oxinet's own)."""
    out = subprocess.run([sys.executable, "-c", _SMALL_OPS_SCRIPT], capture_output=True, text=True, check=True)
    before, after = map(int, out.stdout.split())
    assert after == before


def test_short_lived_python_threads_running_small_kernels():
    """Each calling thread gets its own one-thread pool for inline work; threads that
    use it and exit must leave nothing running and nothing broken behind."""
    code = r"""
import os, threading, numpy as np, oxinet.ops as F
x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
want = F.softmax(x, axis=1)
bad = []
def work():
    for _ in range(20):
        if not np.array_equal(F.softmax(x, axis=1), want):
            bad.append(1)
        F.max_pool2d(x, 2)
for _ in range(25):
    ts = [threading.Thread(target=work) for _ in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
print(len(bad), threading.active_count())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["0", "1"]
