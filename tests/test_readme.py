"""The README's Python examples run as written (in a scratch directory)."""

import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def python_blocks():
    with open(README) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def test_readme_has_examples():
    assert len(python_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    code = python_blocks()[index]
    if "history.plot" in code:
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, f"README.md python block {index}", "exec"), namespace)
    if "keep" in namespace:
        assert list(namespace["keep"]) == [0, 2]
    if "history" in namespace:
        assert namespace["history"].history["loss"][-1] < namespace["history"].history["loss"][0]
