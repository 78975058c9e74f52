"""Classical baselines on generated data: linear regression (normal equations, gradient
descent, the Gaussian MLE), logistic regression, a multiclass linear SVM tuned by random
search on log scales with k-fold cross-validation, and k-nearest neighbours (k and the
L1/L2 metric chosen by cross-validation).

Run: python examples/classic_baselines.py   (a few seconds on 2 cores)
"""

from __future__ import annotations

import numpy as np

from oxinet.classic import (KNearestNeighbors, LinearRegression, LinearSVM, LogisticRegression, LogUniform,
                            cross_val_score, random_search)


def make_classification(n: int, n_classes: int, dim: int, seed: int):
    """Gaussian blobs whose centres sit on a circle (some overlap between classes)."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(n_classes) / n_classes
    centres = np.zeros((n_classes, dim))
    centres[:, 0], centres[:, 1] = 3 * np.cos(angles), 3 * np.sin(angles)
    y = rng.integers(0, n_classes, n)
    X = centres[y] + rng.standard_normal((n, dim))
    return X, y


def split(X, y, frac: float, seed: int):
    idx = np.random.default_rng(seed).permutation(len(X))
    cut = int(frac * len(X))
    return X[idx[:cut]], y[idx[:cut]], X[idx[cut:]], y[idx[cut:]]


def main(n_samples: int = 1200, n_trials: int = 12, folds: int = 5, seed: int = 0, verbose: bool = True) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    rng = np.random.default_rng(seed)
    out = {}

    # --- linear regression: y = X w + 1.5 + N(0, 0.3^2)
    X = rng.standard_normal((n_samples, 4))
    w_true = np.array([1.0, -2.0, 0.5, 3.0])
    y = X @ w_true + 1.5 + 0.3 * rng.standard_normal(n_samples)
    ne = LinearRegression().fit(X, y)
    gd = LinearRegression(solver="gd", lr=0.1, n_iter=2000).fit(X, y)
    ref = np.linalg.lstsq(np.column_stack([X, np.ones(n_samples)]), y, rcond=None)[0]
    out["regression"] = {"coef_error_vs_lstsq": float(np.abs(ne.coef_ - ref[:4]).max()),
                         "gd_vs_normal": float(np.abs(gd.coef_ - ne.coef_).max()),
                         "sigma_mle": float(np.sqrt(ne.noise_variance_))}
    say(f"linear regression: w = {np.round(ne.coef_, 3)}, b = {ne.intercept_:.3f}; "
        f"GD differs by {out['regression']['gd_vs_normal']:.1e}; sigma_MLE = {out['regression']['sigma_mle']:.3f} "
        f"(true 0.3)")

    # --- logistic regression on two classes
    Xb, yb = make_classification(n_samples, 2, 2, seed + 1)
    Xtr, ytr, Xte, yte = split(Xb, yb, 0.7, seed)
    logreg = LogisticRegression(lr=0.5, n_iter=500).fit(Xtr, ytr)
    out["logistic_accuracy"] = logreg.score(Xte, yte)
    say(f"logistic regression: test accuracy {out['logistic_accuracy']:.3f}")

    # --- multiclass SVM: random search over (reg, lr) on log scales, scored by k-fold CV
    Xm, ym = make_classification(n_samples, 5, 6, seed + 2)
    Xtr, ytr, Xte, yte = split(Xm, ym, 0.7, seed)

    def cv_svm(reg, lr):
        make = lambda: LinearSVM(reg=reg, lr=lr, epochs=15, batch_size=64, seed=seed)  # noqa: E731
        return cross_val_score(make, Xtr, ytr, k=folds, seed=seed, stratify=True).mean()

    search = random_search(cv_svm, {"reg": LogUniform(1e-5, 1e-1), "lr": LogUniform(1e-4, 1e-1)},
                           n_trials=n_trials, seed=seed)
    svm = LinearSVM(**search.best_params, epochs=15, batch_size=64, seed=seed).fit(Xtr, ytr)
    out["svm"] = {"best_params": search.best_params, "cv_accuracy": search.best_score,
                  "test_accuracy": svm.score(Xte, yte)}
    say(f"linear SVM: best reg={search.best_params['reg']:.2e} lr={search.best_params['lr']:.2e} "
        f"(CV {search.best_score:.3f}), test accuracy {out['svm']['test_accuracy']:.3f}")

    # --- kNN: choose k and the metric by cross-validation
    best = None
    for metric in ("l1", "l2"):
        for k in (1, 3, 5, 9, 15):
            make = lambda k=k, metric=metric: KNearestNeighbors(k, metric)  # noqa: E731
            score = cross_val_score(make, Xtr, ytr, k=folds, seed=seed, stratify=True).mean()
            if best is None or score > best[0]:
                best = (score, k, metric)
    knn = KNearestNeighbors(best[1], best[2]).fit(Xtr, ytr)
    out["knn"] = {"k": best[1], "metric": best[2], "cv_accuracy": best[0], "test_accuracy": knn.score(Xte, yte)}
    say(f"kNN: k={best[1]} metric={best[2]} (CV {best[0]:.3f}), test accuracy {out['knn']['test_accuracy']:.3f}")
    return out


if __name__ == "__main__":
    main()
