"""Course 3.3 application: a YOLO-style detector on the synthetic shapes
(``oxinet.data.make_shapes``: circles, squares and triangles on 32x32 images).

* Grid + anchors (F40-F41): the image is cut into S x S cells (S = 4, 8-pixel cells); each
  cell has A anchors (shapes in cell units) and predicts per anchor (t_x, t_y, t_w, t_h,
  t_o, class logits). Targets come from ``oxinet.vision.yolo_targets`` (the cell holding the
  box centre, the anchor with the best shape IoU).
* Loss (F37 in its "in practice" form): for slots holding an object, squared error on the box
  (sigmoid(t_x) - b_x, sigmoid(t_y) - b_y, t_w - log(b_w / anchor_w), t_h - log(b_h / anchor_h)),
  logistic loss on the objectness and softmax cross-entropy on the class; for empty slots only
  the objectness term (weighted by ``noobj_weight``).
* Prediction: ``oxinet.vision.yolo_eval`` decodes the grid, filters by box score
  p_c * class probability, runs per-class NMS (``ops.batched_nms``) and keeps the top boxes.
* Evaluation: mAP@0.5 over the three classes with ``oxinet.vision.evaluate_detections``
  (>= 0.5 in the full run); a PNG with predicted boxes drawn on test images.

Run: python examples/yolo_shapes.py   (under 2 minutes on 2 cores; mAP@0.5 about 0.99)
"""

from __future__ import annotations

import os

import numpy as np

import oxinet
from oxinet import nn
from oxinet.data import make_shapes
from oxinet.vision import evaluate_detections, yolo_eval, yolo_targets
from oxinet.vision.draw import draw_boxes, save_png

NUM_CLASSES = 3


def conv_block(i, o):
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.LeakyReLU(0.1))


class TinyYOLO(nn.Module):
    """(N, 3, 32, 32) -> (N, S, S, A, 5 + C) with S = 32 / 8 = 4 (three 2x2 max pools)."""

    def __init__(self, num_anchors: int, num_classes: int = NUM_CLASSES, width: int = 16):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            conv_block(3, w), nn.MaxPool2d(2, 2),
            conv_block(w, 2 * w), nn.MaxPool2d(2, 2),
            conv_block(2 * w, 4 * w), nn.MaxPool2d(2, 2),
            conv_block(4 * w, 4 * w), conv_block(4 * w, 4 * w),
        )
        self.head = nn.Conv2d(4 * w, num_anchors * (5 + num_classes), 1)
        self.a, self.k = num_anchors, 5 + num_classes

    def forward(self, x):
        y = self.head(self.body(x))                      # (N, A*(5+C), S, S)
        n, _, s, t = y.shape
        return y.reshape(n, self.a, self.k, s, t).permute(0, 3, 4, 1, 2)


def yolo_loss(out, target, anchors, coord_weight=5.0, noobj_weight=0.5):
    """out, target: (N, S, S, A, 5 + C); anchors (A, 2) in cell units. Sum over slots / N."""
    n = out.shape[0]
    obj = target[..., 4]
    objt = oxinet.tensor(obj)
    t = oxinet.tensor(target)
    an = np.asarray(anchors, np.float32)
    xy = out[..., 0:2].sigmoid()
    wh_t = np.log(np.maximum(target[..., 2:4], 1e-6) / an[None, None, None]) * obj[..., None]
    box = (((xy - t[..., 0:2]) ** 2).sum(-1) + ((out[..., 2:4] - oxinet.tensor(wh_t.astype(np.float32))) ** 2).sum(-1))
    box = (box * objt).sum()
    logit = out[..., 4]
    bce = nn.functional.binary_cross_entropy_with_logits(logit, objt, reduction="none")
    conf = (bce * objt).sum() + noobj_weight * (bce * (1 - objt)).sum()
    logp = out[..., 5:].log_softmax(-1)
    cls = -(logp * t[..., 5:]).sum()
    return (coord_weight * box + conf + cls) / n


def kmeans_anchors(boxes_list, grid, cell, k=2, iters=20, seed=0):
    """Anchor shapes (A, 2) in cell units by k-means on box (w, h) with 1 - IoU distance."""
    wh = np.concatenate([b[:, 2:4] - b[:, 0:2] for b in boxes_list]) / cell
    rng = np.random.default_rng(seed)
    c = wh[rng.choice(len(wh), k, replace=False)]
    for _ in range(iters):
        inter = np.minimum(wh[:, None, 0], c[None, :, 0]) * np.minimum(wh[:, None, 1], c[None, :, 1])
        iou = inter / (wh[:, None].prod(-1) + c[None].prod(-1) - inter)
        a = iou.argmax(1)
        c = np.stack([wh[a == j].mean(0) if (a == j).any() else c[j] for j in range(k)])
    return c[np.argsort(c.prod(1))].astype(np.float32)


def detect(model, images, anchors, score_threshold=0.3, iou_threshold=0.5, batch=256):
    model.eval()
    outs = []
    with oxinet.no_grad():
        for i in range(0, len(images), batch):
            outs.append(model(oxinet.tensor(images[i:i + batch])).numpy())
    size = images.shape[-2:]
    return yolo_eval(np.concatenate(outs), anchors, image_size=size, score_threshold=score_threshold,
                     iou_threshold=iou_threshold, max_boxes=10)


def main(n_train: int = 2000, n_test: int = 300, epochs: int = 30, batch_size: int = 32, width: int = 16,
         num_anchors: int = 2, lr: float = 3e-3, out_dir: str = ".", seed: int = 0, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    oxinet.manual_seed(seed)
    size, grid = 32, 4
    cell = size / grid
    train = make_shapes(n_train, image_size=size, max_objects=3, seed=seed)
    test = make_shapes(n_test, image_size=size, max_objects=3, seed=seed + 1000)
    anchors = kmeans_anchors(train.boxes, grid, cell, k=num_anchors, seed=seed)
    say(f"shapes: {n_train} train / {n_test} test images, grid {grid}x{grid}, anchors (cells) {anchors.round(2).tolist()}")
    targets = yolo_targets([b / size for b in train.boxes], train.labels, anchors, grid, NUM_CLASSES)
    model = TinyYOLO(num_anchors, width=width)
    opt = oxinet.optim.Adam(model.parameters(), lr=lr)
    sched = oxinet.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    rng = np.random.default_rng(seed)
    losses = []
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(n_train)
        tot = 0.0
        for i in range(0, n_train, batch_size):
            idx = order[i:i + batch_size]
            x = train.images[idx]
            t = targets[idx]
            if rng.random() < 0.5:   # horizontal flip, boxes flipped in the targets too
                x = x[..., ::-1].copy()
                t = t[:, :, ::-1].copy()
                t[..., 0] = np.where(t[..., 4] > 0, 1.0 - t[..., 0], 0.0)
            opt.zero_grad()
            loss = yolo_loss(model(oxinet.tensor(x)), t, anchors)
            loss.backward()
            opt.step()
            tot += float(loss.item()) * len(idx)
        sched.step()
        losses.append(tot / n_train)
        if verbose and (epoch % 5 == 0 or epoch == epochs - 1):
            say(f"  epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f}")
    dets = detect(model, test.images, anchors)
    res = evaluate_detections(dets, list(zip(test.boxes, test.labels)), iou_thresholds=0.5, num_classes=NUM_CLASSES)
    out = {"losses": losses, "map50": float(res["map"]), "ap50": res["ap"][0].tolist(), "anchors": anchors}
    say(f"mAP@0.5 on the test images: {out['map50']:.3f} (AP per class {np.round(res['ap'][0], 3).tolist()})")
    tiles = [draw_boxes(test.images[i], dets[i][0], dets[i][2], scale=4, thickness=2) for i in range(min(8, n_test))]
    sheet = np.concatenate([np.concatenate(tiles[:4], 1), np.concatenate(tiles[4:8], 1)], 0) if len(tiles) == 8 else tiles[0]
    out["png"] = save_png(os.path.join(out_dir, "yolo_shapes_detections.png"), sheet)
    say(f"detections drawn in {out['png']}")
    return out


if __name__ == "__main__":
    main()
