"""Anchor generation and Faster R-CNN box coding."""

import math

import numpy as np
import pytest

from oxinet.vision import anchor_grid, cell_anchors, decode_boxes, encode_boxes


def test_cell_anchors_by_hand():
    a = cell_anchors((32,), (0.5, 1.0, 2.0))
    # ratio r = h / w: w = 32 / sqrt(r), h = 32 * sqrt(r), rounded after halving
    want = []
    for r in (0.5, 1.0, 2.0):
        w, h = 32 / math.sqrt(r), 32 * math.sqrt(r)
        want.append(np.round([-w / 2, -h / 2, w / 2, h / 2]))
    np.testing.assert_array_equal(a, want)
    assert a.dtype == np.float32
    assert cell_anchors((16, 32), (1.0, 2.0)).shape == (4, 4)
    # ratio-major order: the second row is ratio 1.0, size 32
    np.testing.assert_array_equal(cell_anchors((16, 32), (1.0, 2.0))[1], [-16, -16, 16, 16])


def test_anchor_grid_layout():
    g = anchor_grid((2, 3), 8, sizes=(16,), aspect_ratios=(1.0, 2.0))
    base = cell_anchors((16,), (1.0, 2.0))
    assert g.shape == (2 * 3 * 2, 4)
    for y in range(2):
        for x in range(3):
            for a in range(2):
                np.testing.assert_array_equal(g[(y * 3 + x) * 2 + a], base[a] + [8 * x, 8 * y, 8 * x, 8 * y])
    g2 = anchor_grid((2, 2), (4, 10), sizes=(8,), aspect_ratios=(1.0,))
    np.testing.assert_array_equal(g2[:, 0], [-4, 6, -4, 6])
    np.testing.assert_array_equal(g2[:, 1], [-4, -4, 0, 0])


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_encode_decode_round_trip_and_formula(weights):
    rng = np.random.default_rng(0)
    anchors = anchor_grid((4, 4), 16, sizes=(32, 64)).astype(np.float64)
    xy = rng.uniform(0, 60, (anchors.shape[0], 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 50, xy.shape)], axis=1)
    d = encode_boxes(boxes, anchors, weights)
    np.testing.assert_allclose(decode_boxes(d, anchors, weights), boxes, rtol=1e-10, atol=1e-9)
    a, b = anchors[3], boxes[3]
    aw, ah = a[2] - a[0], a[3] - a[1]
    bw, bh = b[2] - b[0], b[3] - b[1]
    want = [weights[0] * ((b[0] + bw / 2) - (a[0] + aw / 2)) / aw, weights[1] * ((b[1] + bh / 2) - (a[1] + ah / 2)) / ah,
            weights[2] * math.log(bw / aw), weights[3] * math.log(bh / ah)]
    np.testing.assert_allclose(d[3], want, rtol=1e-12)


def test_decode_clamps_size_deltas_and_keeps_dtype():
    a = np.array([[0, 0, 10, 10]], np.float32)
    big = decode_boxes(np.array([[0, 0, 100, 100]], np.float32), a)
    assert big.dtype == np.float32
    np.testing.assert_allclose(big[0, 2] - big[0, 0], 10 * 1000 / 16, rtol=1e-5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="'aspect_ratios'"):
        cell_anchors((32,), (0.0,))
    with pytest.raises(ValueError, match="'sizes'"):
        cell_anchors((), (1.0,))
    with pytest.raises(ValueError, match="'anchors'"):
        encode_boxes(np.zeros((2, 4)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="'weights'"):
        decode_boxes(np.zeros((2, 4)), np.ones((2, 4)), weights=(1, 1))
    with pytest.raises(ValueError, match="'deltas'"):
        decode_boxes(np.zeros((2, 5)), np.ones((2, 4)))
