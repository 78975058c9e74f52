"""Recycled output memory (oxinet._core.empty via ops._checks.empty): large outputs of
pooling, softmax, losses and activations reuse the memory of dropped outputs. These
tests check that reuse never aliases a live array (or a live view of one) and that stale
contents of a recycled block never leak into a result."""

import gc

import numpy as np
import pytest

import oxinet.ops as F
from oxinet import _core
from oxinet.ops._checks import empty

BIG = (64, 64, 32, 32)  # 16 MiB in float32: above the 1 MiB threshold


def _ptr(a):
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [(0,), (3, 5), (1 << 19,), (7, 1 << 17), (2, 0, 4)])
def test_empty_is_a_plain_writeable_array(shape, dtype):
    a = empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype
    assert a.flags.c_contiguous and a.flags.writeable
    a[...] = 3
    assert (a == 3).all()
    assert _ptr(a) % 64 == 0 or a.nbytes < (1 << 20)


def test_dropped_block_is_reused_and_live_ones_are_not():
    _core.release_buffers()
    a = empty(BIG, np.float32)
    assert type(a.base).__name__ == "RecycledBuffer"
    pa = _ptr(a)
    a[...] = 1.0
    b = empty(BIG, np.float32)  # a is alive: must not share
    assert not np.shares_memory(a, b)
    del a
    gc.collect()
    assert _core.cached_buffer_bytes() >= np.prod(BIG) * 4
    c = empty(BIG, np.float32)
    assert _ptr(c) == pa  # the dropped block came back
    del b, c
    gc.collect()
    assert _core.release_buffers() > 0
    assert _core.cached_buffer_bytes() == 0


def test_a_live_view_keeps_its_block():
    _core.release_buffers()
    a = empty(BIG, np.float32)
    a[...] = 7.0
    v = a[1:3, ::2]
    del a
    gc.collect()
    for _ in range(3):
        b = empty(BIG, np.float32)
        b[...] = -1.0
        assert not np.shares_memory(b, v)
    assert (v == 7.0).all()


def test_stale_contents_never_leak_into_results():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 32, 24, 24)).astype(np.float32)
    y, ix = F.max_pool2d(x, 2, return_indices=True)
    want_dx = F.max_pool2d_backward(y, ix, x.shape, out=np.empty_like(x))
    want_sm = F.softmax(x, dim=1).copy()
    for _ in range(3):
        junk = empty(x.shape, np.float32)
        junk[...] = np.nan
        del junk
        dx = F.max_pool2d_backward(y, ix, x.shape)
        assert not np.isnan(dx).any()
        np.testing.assert_array_equal(dx, want_dx)
        junk = empty(x.shape, np.float32)
        junk[...] = np.nan
        del junk
        np.testing.assert_array_equal(F.softmax(x, dim=1), want_sm)
        da = F.avg_pool2d_backward(y, x.shape, 3, 2, 1)
        np.testing.assert_array_equal(da, F.avg_pool2d_backward(y, x.shape, 3, 2, 1, out=np.empty_like(x)))


def test_results_survive_later_calls():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2048, 600)).astype(np.float32)
    first = F.softmax(x)
    keep = first.copy()
    for _ in range(4):
        F.softmax(x * 2)
        F.log_softmax(x)
    np.testing.assert_array_equal(first, keep)


def test_cache_can_be_disabled_by_environment():
    import os
    import subprocess
    import sys

    code = ("import numpy as np; from oxinet.ops._checks import empty; "
            "a = empty((1 << 20,), np.float32); a[:] = 1; "
            "print(type(a.base).__name__ if a.base is not None else 'own')")
    env = dict(os.environ, OXINET_BUFFER_CACHE_MB="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "own"
    env["OXINET_BUFFER_CACHE_MB"] = "64"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "RecycledBuffer"


def test_public_release_buffers_empties_the_cache():
    import oxinet
    a = oxinet.ops.softmax(np.ones((512, 1024), np.float32), axis=-1)
    del a
    assert oxinet.cached_buffer_bytes() > 0
    assert oxinet.release_buffers() > 0
    assert oxinet.cached_buffer_bytes() == 0
