"""Compiled CPU kernels for the NumPy path.

``enabled()`` says whether the NumPy path should call them; the functions here
receive arrays already validated, cast to their working dtype and masked (the
masked entries set to ``-inf``), and return arrays of ``out_dtype``.  Until the
compiled kernels land, ``enabled()`` is False and the portable array-API path
in ``_softmax`` and ``_derivatives`` serves NumPy too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "describe",
    "enabled",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "softmax",
    "softmax_backward",
]

Axes = tuple[int, ...]


def enabled() -> bool:
    return False


def describe() -> str:
    """One line for the benchmark's machine description."""
    return "not built (portable NumPy path)"


def _missing() -> Any:
    raise NotImplementedError("softmaxkit's compiled kernels are not built in this version")


def softmax(x: np.ndarray, axes: Axes, temperature: float, out_dtype: Any) -> np.ndarray:
    return _missing()


def log_softmax(x: np.ndarray, axes: Axes, temperature: float, out_dtype: Any) -> np.ndarray:
    return _missing()


def logsumexp(x: np.ndarray, axes: Axes, out_dtype: Any) -> np.ndarray:
    """With the reduced axes kept (length 1)."""
    return _missing()


def softmax_backward(g: np.ndarray, p: np.ndarray, axes: Axes, out_dtype: Any) -> np.ndarray:
    return _missing()


def log_softmax_backward(g: np.ndarray, logp: np.ndarray, axes: Axes, out_dtype: Any) -> np.ndarray:
    return _missing()
