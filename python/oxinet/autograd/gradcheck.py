"""Finite-difference gradient checking (the course's recipe, INVENTORY F16).

For every input element θ_i the two-sided difference
    dθ_approx[i] = (J(θ + ε e_i) − J(θ − ε e_i)) / (2ε)
is compared with the gradient from ``backward()`` by the relative difference
    ||dθ_approx − dθ||₂ / (||dθ_approx||₂ + ||dθ||₂).
A non-scalar output ``y`` is contracted to ``J = sum(w * y)`` with a fixed random ``w``,
which checks one vector-Jacobian product (enough to catch a wrong rule with probability 1).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from oxinet import grad_mode as _gm


class GradcheckError(RuntimeError):
    """Raised by :func:`gradcheck` when analytic and numeric gradients disagree."""


@dataclasses.dataclass
class GradcheckResult:
    """Per-input relative differences and the worst offender."""

    passed: bool
    labels: list
    relative_differences: list
    max_abs_errors: list
    worst_input: int
    worst_index: tuple
    analytic: list
    numeric: list

    def __bool__(self):
        return self.passed


def _collect(inputs, params):
    from oxinet.tensor import Tensor

    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    labelled = [(f"input {i}", t) for i, t in enumerate(inputs)]
    for i, p in enumerate(params if params is not None else ()):
        if isinstance(p, tuple):  # named_parameters()
            labelled.append((f"param '{p[0]}'", p[1]))
        else:
            labelled.append((f"param {i}", p))
    checked, labels = [], []
    for what, t in labelled:
        if isinstance(t, Tensor) and t.requires_grad:
            if t.dtype != np.float64:
                raise TypeError(
                    f"gradcheck: {what} has dtype {t.dtype}; gradient checks run in float64 "
                    "(use .double(), or module.double())"
                )
            if not t._data.flags.writeable:
                raise ValueError(f"gradcheck: {what} is read-only")
            checked.append(t)
            labels.append(what)
    if not checked:
        raise ValueError("gradcheck: no input or param has requires_grad=True")
    return inputs, checked, labels


def gradcheck(fn, inputs, *, params=None, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-5,
              raise_exception: bool = True, seed: int = 0, return_result: bool = False):
    """Check ``fn(*inputs)``'s gradients against two-sided finite differences.

    inputs: Tensors (and other arguments passed through); every float64 Tensor with
    ``requires_grad=True`` is checked. params: extra tensors ``fn`` reads without receiving
    them as arguments (``module.parameters()``, or ``module.named_parameters()`` to have
    the worst one reported by name). Each checked tensor passes when the
    relative difference is ``<= rtol`` or every element is within ``atol + rtol*|numeric|``.

    Returns True (or the :class:`GradcheckResult` with ``return_result=True``); on failure
    raises :class:`GradcheckError` naming the worst input and element, or returns False
    with ``raise_exception=False``.
    """
    from oxinet.tensor import Tensor

    inputs, checked, labels = _collect(inputs, params)
    rng = np.random.default_rng(seed)

    def evaluate():
        out = fn(*inputs)
        if isinstance(out, (tuple, list)):
            out = [o for o in out if isinstance(o, Tensor) and o.dtype.kind == "f"]
        else:
            out = [out]
        return out

    with _gm.enable_grad():
        for t in checked:
            t.grad = None
        outs = evaluate()
        weights = [rng.standard_normal(o.shape) if o.ndim else np.array(1.0) for o in outs]
        loss = None
        for o, w in zip(outs, weights):
            if not isinstance(o, Tensor) or not o.requires_grad:
                continue
            term = (o.double() * w).sum()
            loss = term if loss is None else loss + term
        if loss is None:
            raise GradcheckError("gradcheck: the output does not depend on any checked input")
        loss.backward()
    analytic = [np.zeros_like(t._data) if t.grad is None else t.grad._data.copy() for t in checked]

    def J():
        with _gm.no_grad():
            total = 0.0
            for o, w in zip(evaluate(), weights):
                total += float(np.sum(o._data.astype(np.float64) * w))
            return total

    numeric = []
    for t in checked:
        flat = t._data.reshape(-1)
        if not np.shares_memory(flat, t._data):
            raise ValueError("gradcheck: inputs must be contiguous arrays")
        g = np.zeros(flat.shape)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            fp = J()
            flat[i] = old - eps
            fm = J()
            flat[i] = old
            g[i] = (fp - fm) / (2 * eps)
        numeric.append(g.reshape(t._data.shape))

    rds, maxerrs, ok = [], [], []
    for a, n in zip(analytic, numeric):
        den = np.linalg.norm(a) + np.linalg.norm(n)
        rd = 0.0 if den == 0 else float(np.linalg.norm(a - n) / den)
        err = np.abs(a - n)
        rds.append(rd)
        maxerrs.append(float(err.max()) if err.size else 0.0)
        ok.append(rd <= rtol or bool(np.all(err <= atol + rtol * np.abs(n))))
    worst = int(np.argmax(rds))
    if not all(ok):
        worst = max((i for i in range(len(ok)) if not ok[i]), key=lambda i: rds[i])
    err_w = np.abs(analytic[worst] - numeric[worst])
    widx = tuple(int(i) for i in np.unravel_index(int(np.argmax(err_w)), err_w.shape)) if err_w.size else ()
    result = GradcheckResult(all(ok), labels, rds, maxerrs, worst, widx, analytic, numeric)
    if not result.passed:
        msg = (
            f"gradcheck: gradients disagree for {labels[worst]} (shape {checked[worst].shape}): "
            f"relative difference {rds[worst]:.2e} > rtol {rtol:.0e}; worst element {widx}: "
            f"analytic {analytic[worst][widx] if widx else analytic[worst]!r} vs numeric "
            f"{numeric[worst][widx] if widx else numeric[worst]!r}"
        )
        if raise_exception:
            raise GradcheckError(msg)
        return result if return_result else False
    return result if return_result else True
