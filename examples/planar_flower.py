"""Course 1 application: planar data classification with one hidden layer.

The "flower" (``oxinet.data.make_flower``: two classes of interleaved petals) in the course's
column layout X (2, m), Y (1, m). Logistic regression cannot separate the petals (about
half right); a network with one tanh hidden layer (4 units in the course) and a sigmoid
output, trained by full-batch gradient descent with the course's backward formulas
(dZ2 = A2 - Y, dZ1 = W2^T dZ2 * (1 - A1^2)), gets about 90%. The gradients are checked
against oxinet's autograd once; the decision boundary is written as a PNG.

Run: python examples/planar_flower.py   (seconds)
"""

from __future__ import annotations

import os

import numpy as np

import oxinet
from oxinet.data import make_flower, to_column_layout
from oxinet.vision.draw import decision_boundary_image, save_png, upscale



def _t64(a, requires_grad=False):
    """A float64 Tensor (the course examples keep NumPy's double precision)."""
    return oxinet.tensor(np.asarray(a, np.float64), dtype=np.float64, requires_grad=requires_grad)

def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def init_params(n_x, n_h, n_y, seed=2):
    rng = np.random.default_rng(seed)
    return {"W1": rng.standard_normal((n_h, n_x)) * 0.01, "b1": np.zeros((n_h, 1)),
            "W2": rng.standard_normal((n_y, n_h)) * 0.01, "b2": np.zeros((n_y, 1))}


def forward(X, p):
    Z1 = p["W1"] @ X + p["b1"]
    A1 = np.tanh(Z1)
    A2 = sigmoid(p["W2"] @ A1 + p["b2"])
    return A2, (A1, A2)


def cost_of(A2, Y):
    eps = 1e-12
    return float(-np.mean(Y * np.log(A2 + eps) + (1 - Y) * np.log(1 - A2 + eps)))


def backward(p, cache, X, Y):
    m = X.shape[1]
    A1, A2 = cache
    dZ2 = A2 - Y
    dZ1 = (p["W2"].T @ dZ2) * (1 - A1 ** 2)
    return {"W2": dZ2 @ A1.T / m, "b2": dZ2.sum(axis=1, keepdims=True) / m,
            "W1": dZ1 @ X.T / m, "b1": dZ1.sum(axis=1, keepdims=True) / m}


def autograd_check(p, X, Y):
    t = {k: _t64(v, requires_grad=True) for k, v in p.items()}
    A2 = (t["W2"] @ (t["W1"] @ _t64(X) + t["b1"]).tanh() + t["b2"]).sigmoid()
    Yt = _t64(Y)
    (-(Yt * A2.log() + (1 - Yt) * (1 - A2).log()).mean()).backward()
    mine = backward(p, forward(X, p)[1], X, Y)
    return max(float(np.abs(mine[k] - t[k].grad.numpy()).max()) for k in p)


def nn_model(X, Y, n_h=4, num_iterations=10000, learning_rate=1.2, seed=2):
    p = init_params(X.shape[0], n_h, Y.shape[0], seed)
    costs = []
    for i in range(num_iterations):
        A2, cache = forward(X, p)
        if i % 100 == 0:
            costs.append(cost_of(A2, Y))
        g = backward(p, cache, X, Y)
        for k in p:
            p[k] -= learning_rate * g[k]
    return p, costs


def predict(p, X):
    return (forward(X, p)[0] > 0.5).astype(float)


def logistic_baseline(X, Y, iterations=2000, lr=0.5):
    w, b = np.zeros((X.shape[0], 1)), 0.0
    for _ in range(iterations):
        A = sigmoid(w.T @ X + b)
        w -= lr * X @ (A - Y).T / X.shape[1]
        b -= lr * float(np.mean(A - Y))
    return float(((sigmoid(w.T @ X + b) > 0.5) == Y).mean())


def main(n_samples: int = 400, n_h: int = 4, num_iterations: int = 10000, out_dir: str = ".",
         seed: int = 0, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    x, y = make_flower(n_samples, seed=seed)
    X, Y = to_column_layout(x.astype(np.float64), y.astype(np.float64))
    say(f"flower: X {X.shape}, Y {Y.shape}")
    out = {"logistic_accuracy": logistic_baseline(X, Y)}
    say(f"logistic regression accuracy: {out['logistic_accuracy']:.3f}")
    out["grad_diff"] = autograd_check(init_params(2, n_h, 1, seed + 2), X, Y)
    say(f"hand-written backward vs autograd: max |difference| = {out['grad_diff']:.2e}")
    p, costs = nn_model(X, Y, n_h, num_iterations, seed=seed + 2)
    out["costs"] = costs
    out["accuracy"] = float((predict(p, X) == Y).mean())
    say(f"one hidden layer ({n_h} tanh units): cost {costs[0]:.4f} -> {costs[-1]:.4f}, accuracy {out['accuracy']:.3f}")
    img = decision_boundary_image(lambda pts: predict(p, pts.T)[0], x, y, resolution=200)
    out["png"] = save_png(os.path.join(out_dir, "planar_flower_boundary.png"), upscale(img, 2))
    say(f"decision boundary written to {out['png']}")
    return out


if __name__ == "__main__":
    main()
