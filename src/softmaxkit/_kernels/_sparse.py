"""Compiled kernels for sparsemax and 1.5-entmax (the C extension ``_sparse_kernels``).

Rows along the last axis of C-contiguous float32/float64 NumPy arrays; every other
layout, and everything when the extension is missing or the kernels are switched
off (:func:`softmaxkit._kernels.use`), returns None and takes the portable path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _kernels

__all__ = ["available", "backward", "project"]

try:
    from . import _sparse_kernels as _S  # type: ignore[attr-defined]
except ImportError:
    _S = None

_OPS = {"sparsemax": 0, "entmax15": 1}


def available() -> bool:
    return _S is not None


def _rows(x: np.ndarray, axes: tuple[int, ...]) -> tuple[int, int] | None:
    if (
        _S is None
        or not _kernels.enabled()
        or x.dtype not in (np.float32, np.float64)
        or not x.dtype.isnative
        or x.ndim == 0
        or axes != (x.ndim - 1,)
        or not x.flags.c_contiguous
    ):
        return None
    n = x.shape[-1]
    return (x.size // n if n else 0), n


def project(x: np.ndarray, axes: tuple[int, ...], kind: str, out_dtype: Any) -> np.ndarray | None:
    shape = _rows(x, axes)
    if shape is None:
        return None
    out = _kernels.empty(x.shape, x.dtype)
    _S.forward(
        x, out, shape[0], shape[1], _OPS[kind], _kernels.num_threads(), x.dtype == np.float64
    )
    return out if out.dtype == out_dtype else out.astype(out_dtype)


def backward(
    g: np.ndarray, p: np.ndarray, axes: tuple[int, ...], alpha: float, out_dtype: Any
) -> np.ndarray | None:
    shape = _rows(p, axes)
    if shape is None or _rows(g, axes) is None or g.dtype != p.dtype:
        return None
    dx = _kernels.empty(g.shape, g.dtype)
    _S.backward(
        g, p, dx, shape[0], shape[1], alpha == 1.5, _kernels.num_threads(), p.dtype == np.float64
    )
    return dx if dx.dtype == out_dtype else dx.astype(out_dtype)
