"""Parity with torchvision.ops where torch/torchvision are installed (skipped otherwise:
their wheels are not installed on the development machines)."""

import numpy as np
import pytest

import oxinet.ops as F

torch = pytest.importorskip("torch")
tv = pytest.importorskip("torchvision.ops")


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 30, (n, 2))], axis=1).astype(np.float32)
    return boxes, rng.uniform(0, 1, n).astype(np.float32), rng.integers(0, 5, n)


def test_box_ops_parity():
    b, s, c = _data()
    np.testing.assert_allclose(F.box_iou(b[:50], b), tv.box_iou(torch.from_numpy(b[:50]), torch.from_numpy(b)).numpy(),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(F.generalized_box_iou(b[:50], b),
                               tv.generalized_box_iou(torch.from_numpy(b[:50]), torch.from_numpy(b)).numpy(),
                               rtol=1e-5, atol=1e-6)
    for fmt in ("xywh", "cxcywh"):
        np.testing.assert_allclose(F.box_convert(b, "xyxy", fmt), tv.box_convert(torch.from_numpy(b), "xyxy", fmt).numpy())


def test_nms_parity():
    b, s, c = _data()
    for thr in (0.3, 0.5, 0.7):
        np.testing.assert_array_equal(F.nms(b, s, thr), tv.nms(torch.from_numpy(b), torch.from_numpy(s), thr).numpy())
        np.testing.assert_array_equal(
            F.batched_nms(b, s, c, thr),
            tv.batched_nms(torch.from_numpy(b), torch.from_numpy(s), torch.from_numpy(c), thr).numpy())


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_parity(aligned):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 12, 16)).astype(np.float32)
    b, _, _ = _data(20, 2)
    rois = np.concatenate([rng.integers(0, 2, (20, 1)).astype(np.float32), b / 6], axis=1)
    tx, tr = torch.from_numpy(x), torch.from_numpy(rois)
    np.testing.assert_allclose(F.roi_align(x, rois, (3, 4), 0.8, -1, aligned),
                               tv.roi_align(tx, tr, (3, 4), 0.8, -1, aligned).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(F.roi_pool(x, rois, (3, 4), 0.8), tv.roi_pool(tx, tr, (3, 4), 0.8).numpy())
