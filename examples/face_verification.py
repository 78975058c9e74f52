"""Course 3.4 application: face verification and one-shot recognition with a Siamese encoder
trained by the triplet loss, with the bundled digits standing in for faces (each digit class
is one "person", each image one photo of them).

* Encoder f(x): a small CNN -> 32-d embedding, L2-normalised (as FaceNet); d(x1, x2) =
  ||f(x1) - f(x2)||^2 (F44).
* Triplet loss L = max(d(A, P) - d(A, N) + alpha, 0) averaged over the mini-batch, with
  online semi-hard mining: batches hold P identities x K photos; for every anchor-positive
  pair the negative is the closest one that is still farther than the positive
  (d(A, P) < d(A, N) < d(A, P) + alpha); when there is none, the hardest negative.
* Verification: "same person" iff d <= tau, tau chosen on training pairs; accuracy,
  FAR and FRR (F45) on balanced held-out pairs of unseen images.
* One-shot recognition: a database holds one encoded photo per identity (chosen from held-out
  images); a query is recognised as the nearest identity if its distance is <= tau, else
  "not recognised".

Run: python examples/face_verification.py   (about 20 s on 2 cores; verification ~0.98, one-shot ~0.97)
"""

from __future__ import annotations

import numpy as np

import oxinet
from oxinet import nn
from oxinet.data import load_digits, train_test_split


class Encoder(nn.Module):
    def __init__(self, dim: int = 32, width: int = 16):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Flatten(), nn.Linear(2 * w * 4, dim),
        )

    def forward(self, x):
        return nn.functional.normalize(self.body(x), dim=1)


def squared_distances(e):
    """(B, D) Tensor -> (B, B) Tensor of ||e_i - e_j||^2."""
    sq = (e * e).sum(1)
    return (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * (e @ e.T)).clamp(min=0.0)


def semi_hard_triplets(d, labels, margin):
    """Indices (a, p, n) of semi-hard triplets for all anchor-positive pairs of a batch."""
    a_idx, p_idx, n_idx = [], [], []
    same = labels[:, None] == labels[None, :]
    for a in range(len(labels)):
        neg = np.flatnonzero(~same[a])
        for p in np.flatnonzero(same[a]):
            if p == a:
                continue
            dn = d[a, neg]
            semi = (dn > d[a, p]) & (dn < d[a, p] + margin)
            n = neg[np.argmin(np.where(semi, dn, np.inf))] if semi.any() else neg[np.argmin(dn)]
            a_idx.append(a), p_idx.append(p), n_idx.append(n)
    return np.array(a_idx), np.array(p_idx), np.array(n_idx)


def triplet_loss(e, labels, margin):
    d = squared_distances(e)
    a, p, n = semi_hard_triplets(d.numpy(), labels, margin)
    idx = np.arange(d.shape[0])
    flat = d.reshape(-1)
    d_ap = flat[oxinet.tensor(a * len(idx) + p)]
    d_an = flat[oxinet.tensor(a * len(idx) + n)]
    return (d_ap - d_an + margin).relu().mean()


def encode(model, x, batch=512):
    model.eval()
    with oxinet.no_grad():
        return np.concatenate([model(oxinet.tensor(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])


def make_pairs(y, n_pairs, rng):
    """Balanced (i, j, same) pairs."""
    pairs = []
    for k in range(n_pairs):
        i = rng.integers(len(y))
        want_same = k % 2 == 0
        cand = np.flatnonzero((y == y[i]) if want_same else (y != y[i]))
        cand = cand[cand != i]
        pairs.append((i, rng.choice(cand), want_same))
    return np.array(pairs, dtype=np.int64)


def best_threshold(dist, same):
    cands = np.unique(dist)
    accs = [((dist <= t) == same).mean() for t in cands]
    return float(cands[int(np.argmax(accs))])


def main(epochs: int = 30, steps_per_epoch: int = 20, ids_per_batch: int = 10, per_id: int = 6, dim: int = 32,
         margin: float = 0.2, lr: float = 3e-3, n_pairs: int = 1000, seed: int = 0, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    oxinet.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x, y = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y, seed=seed)
    model = Encoder(dim)
    opt = oxinet.optim.Adam(model.parameters(), lr=lr)
    by_id = {c: np.flatnonzero(y_tr == c) for c in np.unique(y_tr)}
    ids = np.array(sorted(by_id))
    losses = []
    for epoch in range(epochs):
        model.train()
        tot = 0.0
        for _ in range(steps_per_epoch):
            chosen = rng.choice(ids, size=min(ids_per_batch, len(ids)), replace=False)
            idx = np.concatenate([rng.choice(by_id[c], per_id, replace=False) for c in chosen])
            opt.zero_grad()
            loss = triplet_loss(model(oxinet.tensor(x_tr[idx])), y_tr[idx], margin)
            loss.backward()
            opt.step()
            tot += float(loss.item())
        losses.append(tot / steps_per_epoch)
        if epoch % 5 == 0 or epoch == epochs - 1:
            say(f"  epoch {epoch + 1}/{epochs}: triplet loss {losses[-1]:.4f}")
    e_tr, e_te = encode(model, x_tr), encode(model, x_te)
    tr_pairs = make_pairs(y_tr, n_pairs, rng)
    d_tr = ((e_tr[tr_pairs[:, 0]] - e_tr[tr_pairs[:, 1]]) ** 2).sum(1)
    tau = best_threshold(d_tr, tr_pairs[:, 2].astype(bool))
    te_pairs = make_pairs(y_te, n_pairs, rng)
    d_te = ((e_te[te_pairs[:, 0]] - e_te[te_pairs[:, 1]]) ** 2).sum(1)
    same = te_pairs[:, 2].astype(bool)
    accept = d_te <= tau
    out = {"losses": losses, "tau": tau, "verification_accuracy": float((accept == same).mean()),
           "far": float((accept & ~same).sum() / len(same)), "frr": float((~accept & same).sum() / len(same))}
    say(f"verification on {n_pairs} held-out pairs: threshold tau = {tau:.3f}, accuracy "
        f"{out['verification_accuracy']:.3f} (FAR {out['far']:.3f}, FRR {out['frr']:.3f})")
    # one-shot recognition: one database photo per identity, queries are the other held-out photos
    db_idx = np.array([rng.choice(np.flatnonzero(y_te == c)) for c in ids])
    queries = np.setdiff1d(np.arange(len(y_te)), db_idx)
    d = ((e_te[queries][:, None, :] - e_te[db_idx][None, :, :]) ** 2).sum(-1)
    nearest = d.argmin(1)
    recognised = d[np.arange(len(queries)), nearest] <= tau
    pred = np.where(recognised, ids[nearest], -1)
    out["one_shot_accuracy"] = float((pred == y_te[queries]).mean())
    out["one_shot_nearest_accuracy"] = float((ids[nearest] == y_te[queries]).mean())
    say(f"one-shot recognition against a {len(ids)}-photo database: {out['one_shot_accuracy']:.3f} correct "
        f"(nearest identity right {out['one_shot_nearest_accuracy']:.3f}; "
        f"{(~recognised).mean():.3f} 'not recognised')")
    return out


if __name__ == "__main__":
    main()
