"""Side-by-side benchmarks of oxinet against its peers (NumPy, PyTorch, OpenCV...).

Cases live in ``cases_<family>.py`` modules; run them with ``python -m oxinet bench``.
See :mod:`oxinet.benchmarks.harness` for how they are timed.
"""
