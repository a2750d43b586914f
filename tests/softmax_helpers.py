"""Helpers shared by the core test files: run a function on a backend and differentiate it.

Imported by ``test_softmax_*.py`` and ``test_derivatives.py`` (pytest puts ``tests/`` on the
path); not a test module itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import torch

import softmaxkit as sk

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)


def call(bk: Any, fn: Callable[..., Any], x: Any, **kwargs: Any) -> np.ndarray:
    """``fn(x, **kwargs)`` on ``bk``'s array for ``x``; checks the result is ``bk``'s kind."""
    out = fn(bk.asarray(x), **kwargs)
    assert bk.is_native(out), f"{fn.__name__} on {bk.name} returned {type(out).__name__}"
    return bk.to_numpy(out)


def _finite_weighted_sum(xp: Any, y: Any, w: Any) -> Any:
    # Infinite outputs (-inf log-probabilities) are constants: leave them out of the loss.
    return xp.sum(xp.where(xp.isfinite(y), y, xp.zeros_like(y)) * w)


def grad(bk: Any, fn: Callable[..., Any], x: Any, w: Any, **kwargs: Any) -> np.ndarray:
    """``d/dx sum(w * fn(x))`` over the finite outputs, float64, axis -1.

    torch and JAX differentiate ``fn`` by autodiff; NumPy has no autodiff, so there the
    library's own backward functions give the same quantity.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if bk.name == "torch":
        xt = torch.tensor(x, requires_grad=True)
        _finite_weighted_sum(torch, fn(xt, **kwargs), torch.from_numpy(w)).backward()
        assert xt.grad is not None
        return xt.grad.numpy()
    if bk.name == "jax":
        loss = lambda v: _finite_weighted_sum(jnp, fn(v, **kwargs), jnp.asarray(w))  # noqa: E731
        return np.asarray(jax.grad(loss)(jnp.asarray(x)))
    y = fn(x, **kwargs)
    w = np.where(np.isfinite(y), w, 0.0)
    if fn is sk.softmax:
        return np.asarray(sk.softmax_backward(w, y))
    if fn is sk.log_softmax:
        return np.asarray(sk.log_softmax_backward(w, y))
    if fn is sk.logsumexp:
        p = sk.softmax(x, where=kwargs.get("where"))
        return np.asarray(w[..., None] * p)
    raise NotImplementedError(fn)


# --- high-precision references (mpmath at 50 digits; float inputs convert exactly) ---------


def mp_softmax(row: Any, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray, float]:
    """``(softmax, log_softmax, logsumexp)`` of a 1-d float row, exact to float64 rounding.

    ``logsumexp`` is of ``row / temperature``.
    """
    with mpmath.workdps(50):
        t = mpmath.mpf(float(temperature))
        z = [mpmath.mpf(float(v)) / t for v in np.asarray(row).ravel()]
        m = max(z)
        e = [mpmath.exp(v - m) for v in z]
        s = mpmath.fsum(e)
        log_s = mpmath.log(s)
        p = np.array([float(v / s) for v in e])
        logp = np.array([float(v - m - log_s) for v in z])
        return p, logp, float(m + log_s)


def mp_rows(x: Any, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`mp_softmax` over the last axis of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    rows = [mp_softmax(r, temperature) for r in x.reshape(-1, x.shape[-1])]
    p = np.stack([r[0] for r in rows]).reshape(x.shape)
    logp = np.stack([r[1] for r in rows]).reshape(x.shape)
    lse = np.array([r[2] for r in rows]).reshape(x.shape[:-1])
    return p, logp, lse
