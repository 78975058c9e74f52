"""The issue-10 neural examples on small configurations: each must learn."""

import importlib.util
import os

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gnn_communities():
    r = load("gnn_communities").main(num_nodes=300, communities=4, epochs=120)
    assert r["gcn"] >= 0.9 and r["gcn"] > r["mlp"] + 0.1


def test_rl_deep():
    r = load("rl_deep").main(reinforce_updates=25, dqn_steps=0)
    assert r["reinforce"] >= 150


def test_generative(tmp_path):
    r = load("generative").main(out=str(tmp_path), ae_epochs=3, vae_epochs=3, gan_steps=800, digit_gan_steps=0)
    assert r["gan2d_energy_after"] < 0.5 * r["gan2d_energy_before"]
    assert r["ae_mse"] < 0.5 * r["ae_mse_untrained"]
    for f in r["files"]:
        assert open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
