"""Course 3.3 applications: convolutional sliding windows (F36) and classification with
localisation (F37) on the synthetic shapes.

1. Sliding windows. A window classifier for 14x14x3 crops (background / circle / square /
   triangle): conv 5x5 (16) -> 2x2 max pool -> FC 400 -> FC 400 -> FC 4, the course's
   network. It is trained on crops, then converted to a fully convolutional net (the FC
   400 becomes 400 filters of 5x5x16, the next FCs 1x1 convolutions with the same weights):
   one forward pass over a 32x32 image gives a 10x10x4 map whose cell (i, j) is the
   classifier's output on the window at (2i, 2j) - checked against cropping.
2. Localisation. One object (or none) per image; the net outputs
   y = [p_c, b_x, b_y, b_h, b_w, c_1, c_2, c_3] and is trained with the course's loss:
   squared error on all 8 components when an object is present, only on p_c otherwise
   (p_c and the box pass through a sigmoid, the class scores are linear; the "in practice"
   variant with a logistic loss on p_c and softmax classes is in yolo_shapes.py).
   Reported: presence accuracy, class accuracy and mean box IoU on held-out images.

Run: python examples/sliding_windows_localization.py   (about 80 s on 2 cores; window accuracy ~0.98, box IoU ~0.65)
"""

from __future__ import annotations

import numpy as np

import oxinet
from oxinet import nn
from oxinet.data import make_shapes
from oxinet.ops import boxes as B

WIN = 14


class WindowNet(nn.Module):
    """14x14x3 window -> 4 logits (FC form)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(5 * 5 * 16, 400)
        self.fc2 = nn.Linear(400, 400)
        self.fc3 = nn.Linear(400, 4)

    def forward(self, x):
        x = self.pool(self.conv(x).relu()).flatten(1)
        return self.fc3(self.fc2(self.fc1(x).relu()).relu())


class ConvWindowNet(nn.Module):
    """The same network with its FC layers as convolutions (F36); any input >= 14x14."""

    def __init__(self, fc_net: WindowNet):
        super().__init__()
        self.conv = fc_net.conv
        self.pool = fc_net.pool
        self.fc1 = nn.Conv2d(16, 400, 5)
        self.fc2 = nn.Conv2d(400, 400, 1)
        self.fc3 = nn.Conv2d(400, 4, 1)
        with oxinet.no_grad():
            for conv, fc, k in ((self.fc1, fc_net.fc1, 5), (self.fc2, fc_net.fc2, 1), (self.fc3, fc_net.fc3, 1)):
                c_in = fc.in_features // (k * k)
                conv.weight.copy_(fc.weight.numpy().reshape(fc.out_features, c_in, k, k))
                conv.bias.copy_(fc.bias.numpy())

    def forward(self, x):
        x = self.pool(self.conv(x).relu())
        return self.fc3(self.fc2(self.fc1(x).relu()).relu())


def make_crops(data, n_per_image=4, seed=0):
    """Window crops labelled with the class of an object whose centre lies in the middle
    6x6 of the window and which fits inside it; background = no object touching the window."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    size = data.images.shape[-1]
    for img, bxs, labs in zip(data.images, data.boxes, data.labels):
        for b, lab in zip(bxs, labs):
            cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            x0 = int(np.clip(round(cx - WIN / 2 + rng.integers(-2, 3)), 0, size - WIN))
            y0 = int(np.clip(round(cy - WIN / 2 + rng.integers(-2, 3)), 0, size - WIN))
            if b[0] >= x0 and b[1] >= y0 and b[2] <= x0 + WIN and b[3] <= y0 + WIN:
                xs.append(img[:, y0:y0 + WIN, x0:x0 + WIN]), ys.append(lab + 1)
        for _ in range(n_per_image):
            x0, y0 = rng.integers(0, size - WIN + 1, 2)
            win = np.array([x0, y0, x0 + WIN, y0 + WIN], np.float32)
            if len(bxs) == 0 or (B.box_iou(win[None], bxs) == 0).all():
                xs.append(img[:, y0:y0 + WIN, x0:x0 + WIN]), ys.append(0)
    return np.stack(xs).astype(np.float32), np.array(ys, np.int64)


class Localizer(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Flatten(), nn.Linear(4 * w * 16, 128), nn.ReLU(), nn.Linear(128, 8),
        )

    def forward(self, x):
        y = self.body(x)
        # p_c and the box are a probability and image fractions: squash them into (0, 1)
        return oxinet.cat([y[:, :5].sigmoid(), y[:, 5:]], dim=1)


def localisation_targets(data):
    """y = [p_c, b_x, b_y, b_h, b_w, c1, c2, c3] with box centre/size as image fractions."""
    size = data.images.shape[-1]
    y = np.zeros((len(data.images), 8), np.float32)
    for i, (b, lab) in enumerate(zip(data.boxes, data.labels)):
        if len(b):
            x1, y1, x2, y2 = b[0] / size
            y[i, :5] = (1, (x1 + x2) / 2, (y1 + y2) / 2, y2 - y1, x2 - x1)
            y[i, 5 + lab[0]] = 1
    return y


def localisation_loss(out, y):
    """F37: sum_k (yhat_k - y_k)^2 if y_1 = 1, else (yhat_1 - y_1)^2; mean over the batch."""
    yt = oxinet.tensor(y)
    sq = (out - yt) ** 2
    has = oxinet.tensor(y[:, :1])
    return ((sq * has).sum(1) + (sq[:, 0] * (1 - has[:, 0]))).mean()


def fit(model, x, lossf, y, epochs, lr, batch=32, seed=0):
    opt = oxinet.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(x))
        tot = 0.0
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = lossf(model(oxinet.tensor(x[idx])), y[idx])
            loss.backward()
            opt.step()
            tot += float(loss.item()) * len(idx)
        losses.append(tot / len(x))
    model.eval()
    return losses


def main(n_images: int = 800, window_epochs: int = 15, loc_epochs: int = 30, n_loc_images: int = 1500, window_lr: float = 2e-3,
         seed: int = 0, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    oxinet.manual_seed(seed)
    out = {}
    # --- 1. sliding windows
    data = make_shapes(n_images, image_size=32, seed=seed)
    xc, yc = make_crops(data, seed=seed)
    cut = int(0.8 * len(xc))
    net = WindowNet()
    out["window_losses"] = fit(net, xc[:cut], lambda o, t: nn.functional.cross_entropy(o, t), yc[:cut],
                               window_epochs, window_lr, seed=seed)
    with oxinet.no_grad():
        out["window_accuracy"] = float((net(oxinet.tensor(xc[cut:])).numpy().argmax(1) == yc[cut:]).mean())
    say(f"window classifier on {len(xc)} crops: held-out accuracy {out['window_accuracy']:.3f}")
    conv = ConvWindowNet(net)
    img = data.images[:2]
    with oxinet.no_grad():
        dense = conv(oxinet.tensor(img)).numpy()          # (2, 4, 10, 10)
        crops = np.stack([img[:, :, 2 * i:2 * i + WIN, 2 * j:2 * j + WIN] for i in range(dense.shape[2])
                          for j in range(dense.shape[3])], 1).reshape(-1, 3, WIN, WIN)
        per_window = net(oxinet.tensor(crops)).numpy().reshape(2, dense.shape[2], dense.shape[3], 4)
    out["dense_shape"] = dense.shape
    out["conv_vs_windows_max_diff"] = float(np.abs(dense.transpose(0, 2, 3, 1) - per_window).max())
    say(f"FC->conv network on 32x32 images: output {dense.shape} (10x10 windows, stride 2); "
        f"max |conv - per-window| = {out['conv_vs_windows_max_diff']:.2e}")
    # --- 2. classification with localisation
    single = make_shapes(n_loc_images, image_size=32, max_objects=1, min_objects=0, seed=seed + 5)
    y = localisation_targets(single)
    cut = int(0.8 * n_loc_images)
    loc = Localizer()
    out["loc_losses"] = fit(loc, single.images[:cut], localisation_loss, y[:cut], loc_epochs, 2e-3, seed=seed)
    with oxinet.no_grad():
        pred = loc(oxinet.tensor(single.images[cut:])).numpy()
    yt = y[cut:]
    has = yt[:, 0] > 0.5
    out["presence_accuracy"] = float(((pred[:, 0] > 0.5) == has).mean())
    out["class_accuracy"] = float((pred[has, 5:].argmax(1) == yt[has, 5:].argmax(1)).mean())

    def xyxy(v):
        return np.stack([v[:, 1] - v[:, 4] / 2, v[:, 2] - v[:, 3] / 2, v[:, 1] + v[:, 4] / 2, v[:, 2] + v[:, 3] / 2], 1)

    out["mean_iou"] = float(B.elementwise_box_iou(xyxy(pred[has]), xyxy(yt[has])).mean())
    say(f"localisation: loss {out['loc_losses'][0]:.4f} -> {out['loc_losses'][-1]:.4f}; held-out presence accuracy "
        f"{out['presence_accuracy']:.3f}, class accuracy {out['class_accuracy']:.3f}, mean box IoU {out['mean_iou']:.3f}")
    return out


if __name__ == "__main__":
    main()
