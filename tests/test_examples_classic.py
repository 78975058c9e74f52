"""The classic / optimisation / RL / tracking examples run on small configurations."""

import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_classic_baselines_example():
    out = _load("classic_baselines").main(n_samples=300, n_trials=3, folds=3, verbose=False)
    assert out["regression"]["coef_error_vs_lstsq"] < 1e-8
    assert out["regression"]["gd_vs_normal"] < 1e-6
    assert abs(out["regression"]["sigma_mle"] - 0.3) < 0.05
    assert out["logistic_accuracy"] > 0.9
    assert out["svm"]["test_accuracy"] > 0.6
    assert out["knn"]["test_accuracy"] > 0.7 and out["knn"]["metric"] in ("l1", "l2")


def test_second_order_example():
    out = _load("second_order").main(gd_iters=200, n_points=30, verbose=False)
    np.testing.assert_allclose(out["newton"][0], [1, 1], atol=1e-6)
    np.testing.assert_allclose(out["lbfgs"][0], [1, 1], atol=1e-6)
    np.testing.assert_allclose(out["gauss_newton"], out["levenberg_marquardt"], rtol=1e-6)
    np.testing.assert_allclose(out["gauss_newton"], [2.0, -0.8], atol=0.05)


def test_rl_example(capsys):
    out = _load("rl_gridworld_cartpole").main(n_episodes=600, n_candidates=30, eval_episodes=20, verbose=True)
    assert out["q_learning_return"] >= out["optimal_return"] - 1.0
    assert out["cartpole_average_return"] >= 300
    assert "cart-pole" in capsys.readouterr().out


@pytest.mark.parametrize("seed", [0, 1])
def test_tracking_example(seed):
    out = _load("tracking_sort").main(n_frames=80, n_objects=6, seed=seed, verbose=False)
    assert out["sort"]["mota"] >= 0.8
    assert out["sort"]["id_switches"] <= 2
    assert out["raw"]["id_switches"] > 100
