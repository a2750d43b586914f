"""Compiled CPU kernels for the NumPy path (the C extension ``_ckernels``).

The same kernels serve torch tensors (through ``_ckernels``' address entry points) and
JAX arrays on CPU (the XLA FFI handlers of ``_jax_kernels``, see :func:`jax_kernels`).

The functions here receive arrays already validated, cast to their working
dtype (float32 or float64) and masked (masked entries set to ``-inf``), and
return arrays of ``out_dtype``; ``_softmax`` and ``_derivatives`` call them
when :func:`enabled` says so, and otherwise run their portable array-API code.

Each call sees its input as ``(outer, n, inner)`` with the reduced axes
merged into ``n``: the last axis (``inner == 1``) is the fast path, a run of
other neighbouring axes is reduced in blocks of columns, and axes that are not
neighbours are first moved together (one copy).

The extension is built by ``pip install`` (``setup.py``) with OpenMP; where it
could not be built, :func:`enabled` is False.  ``SOFTMAXKIT_KERNELS=0`` in the
environment or :func:`set_enabled` turns the kernels off (the tests run every
edge case on both paths); ``SOFTMAXKIT_NUM_THREADS`` or :func:`set_num_threads`
sets the threads a call may use (default: OpenMP's, i.e. every core).
"""

from __future__ import annotations

import importlib
import math
import operator
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np

from .._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from .._options import (
    check_class_axis,
    check_ignore_index,
    check_indices,
    check_label_smoothing,
    check_reduction,
)

__all__ = [
    "available",
    "chunk_grad",
    "cross_entropy_grad",
    "describe",
    "empty",
    "enabled",
    "jax_kernels",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "num_threads",
    "set_enabled",
    "set_num_threads",
    "set_output_cache",
    "softmax",
    "softmax_backward",
    "use",
]

Axes = tuple[int, ...]

_SOFTMAX, _LOG_SOFTMAX, _LOGSUMEXP = 0, 1, 2


# More threads than this is a mistake, not a machine: OpenMP would try to start them all.
_MAX_THREADS = 4096


def _load(name: str) -> ModuleType | None:
    try:
        module: ModuleType = importlib.import_module(f"{__name__}.{name}")
    except ImportError:
        return None
    threads = os.environ.get("SOFTMAXKIT_NUM_THREADS")
    # like any other value it cannot use, one beyond _MAX_THREADS is left alone (it
    # overflowed the C int and made the import itself fail)
    if threads and threads.isdigit() and 0 < int(threads) <= _MAX_THREADS:
        module.set_num_threads(int(threads))
    return module


_C = _load("_ckernels")
# The same kernels as XLA FFI handlers, for JAX on CPU (softmaxkit._backends._jax); built
# only where jaxlib's headers were found.  Each extension keeps its own thread count:
# set_num_threads sets both.
_JAX: ModuleType | None = None
_jax_loaded = False


def jax_kernels() -> ModuleType | None:
    """The JAX FFI extension (loaded on first use, never before JAX is), or None."""
    global _JAX, _jax_loaded
    if not _jax_loaded:
        _jax_loaded = True
        _JAX = _load("_jax_kernels")
        if _JAX is not None and _C is not None:
            _JAX.set_num_threads(_C.num_threads())
    return _JAX


_on = _C is not None and os.environ.get("SOFTMAXKIT_KERNELS", "1") != "0"


def available() -> bool:
    """Whether the C extension was built and loads."""
    return _C is not None


def enabled() -> bool:
    """Whether the NumPy path calls the kernels now."""
    return _on


def set_enabled(flag: bool) -> bool:
    """Turn the kernels on or off for later calls; returns the previous setting.

    Turning them on has no effect where they are not :func:`available`.
    """
    global _on
    previous = _on
    _on = bool(flag) and _C is not None
    return previous


@contextmanager
def use(flag: bool) -> Iterator[None]:
    """``with use(False): ...`` runs the block on the portable path (or on the kernels)."""
    previous = set_enabled(flag)
    try:
        yield
    finally:
        set_enabled(previous)


def num_threads() -> int:
    """Threads a kernel call may use."""
    return int(_C.num_threads()) if _C is not None else 1


def set_num_threads(n: int) -> None:
    """Limit the threads of later kernel calls to ``n`` (the benchmark uses 2).

    Results do not depend on ``n``: only the speed does.
    """
    count = None
    if not isinstance(n, bool):
        try:
            count = operator.index(n)
        except TypeError:
            pass
    if count is None:
        raise SoftmaxkitTypeError(f"`n` must be an int; got {n!r}")
    if not 1 <= count <= _MAX_THREADS:
        raise SoftmaxkitValueError(f"`n` must be in [1, {_MAX_THREADS}]; got {count}")
    if _C is not None:
        _C.set_num_threads(count)
    if _JAX is not None:
        _JAX.set_num_threads(count)


def describe() -> str:
    """One line for the benchmark's machine description."""
    if _C is None:
        return "not built (portable NumPy path)"
    state = "on" if _on else "off"
    return f"C/OpenMP, {num_threads()} threads, {state}"


# --- outputs: large ones are recycled once their last user has dropped them ----------------
#
# A fresh large output costs more than the kernel that fills it: the operating system
# zeroes every new page on first touch, a full extra write (measured on a (4096, 32000)
# float32 softmax: 1.35 times a copy into a reused array, 2.7 times into a new one).  A
# loop that computes the same shape step after step (training, the benchmark) frees its
# previous output before it asks for the next, so a few recently freed buffers are kept
# and reused, as PyTorch's CUDA allocator keeps its blocks.  A buffer is free when no
# array or tensor refers to it any more (its reference count says so; every view and
# every tensor made by torch.from_numpy holds a reference).  At most _CACHE_BUFFERS
# buffers of _CACHE_MIN bytes or more, together at most _CACHE_MAX_BYTES, are kept;
# SOFTMAXKIT_OUTPUT_CACHE=0 or set_output_cache(False) turns the cache off.

_CACHE_MIN = 1 << 20
_CACHE_MAX_BYTES = 1 << 31
_CACHE_BUFFERS = 4
_cache: list[np.ndarray] = []
_cache_on = os.environ.get("SOFTMAXKIT_OUTPUT_CACHE", "1") != "0"


def set_output_cache(flag: bool) -> bool:
    """Keep recently freed large outputs for reuse (default on); returns the previous setting."""
    global _cache_on
    previous = _cache_on
    _cache_on = bool(flag)
    if not _cache_on:
        _cache.clear()
    return previous


def _references(buffers: list[np.ndarray], i: int) -> int:
    return sys.getrefcount(buffers[i])


# What _references counts for a buffer that only the cache refers to, measured the same
# way (the count's conventions vary between Python versions; the pattern does not).
_FREE = _references([np.empty(1)], 0)


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array, from the cache of freed outputs where one fits."""
    dtype = np.dtype(dtype)
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if not _cache_on or nbytes < _CACHE_MIN:
        return np.empty(shape, dtype=dtype)
    free = [i for i in range(len(_cache)) if _references(_cache, i) == _FREE]
    for i in free:
        if _cache[i].nbytes == nbytes and _cache[i].dtype == dtype:
            return _cache[i].reshape(shape)
    for i in reversed(free):  # make room by dropping free buffers
        if (
            len(_cache) < _CACHE_BUFFERS
            and sum(b.nbytes for b in _cache) + nbytes <= _CACHE_MAX_BYTES
        ):
            break
        del _cache[i]
    buffer = np.empty(count, dtype=dtype)
    if len(_cache) < _CACHE_BUFFERS and sum(b.nbytes for b in _cache) + nbytes <= _CACHE_MAX_BYTES:
        _cache.append(buffer)
    return buffer.reshape(shape)


def _compiled() -> Any:
    if _C is None:
        raise RuntimeError("softmaxkit's C kernels are not built; check `available()` first")
    return _C


def _layout(x: np.ndarray, axes: Axes) -> tuple[np.ndarray, int, int, int, Axes | None]:
    """``(x, outer, n, inner, moved)``: ``x`` C-contiguous with the reduced axes merged.

    ``moved`` is None when the reduced axes were already neighbours; otherwise ``x``
    has them moved to the end, in this order, and the result must be moved back.
    """
    shape = x.shape
    moved: Axes | None = None
    if axes and axes[-1] - axes[0] + 1 != len(axes):
        rest = tuple(i for i in range(x.ndim) if i not in axes)
        x = np.transpose(x, rest + axes)
        moved = rest + axes
        shape = x.shape
        first = x.ndim - len(axes)
        last = x.ndim - 1
    elif axes:
        first, last = axes[0], axes[-1]
    else:  # no axis reduced: every element is its own slice
        first, last = x.ndim, x.ndim - 1
    if not x.dtype.isnative:  # the kernels read the bytes as this machine's floats
        x = x.astype(x.dtype.newbyteorder("="))
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)  # (which would make a 0-d array 1-d)
    outer = math.prod(shape[:first])
    n = math.prod(shape[first : last + 1])
    inner = math.prod(shape[last + 1 :])
    return x, outer, n, inner, moved


def _restore(out: np.ndarray, moved: Axes | None, out_dtype: Any) -> np.ndarray:
    if moved is not None:
        out = np.transpose(out, np.argsort(moved))
    if out.dtype != out_dtype:
        with np.errstate(over="ignore"):  # a float64 result beyond float32 is rightly inf
            out = out.astype(out_dtype)
    return out


# --- out=: the caller's array ---------------------------------------------------------------
#
# A kernel writes straight into the caller's `out` (checked by _backend.check_out) where
# `out` is laid out as the kernel writes (C-contiguous, the working dtype, no axes moved)
# and shares no memory with what the kernel reads, or is exactly one of those arrays and
# the kernel reads each entry before it writes it.  Elsewhere the kernel writes into a
# buffer of its own, copied into `out` once complete; either way `out` is never half
# written, since a kernel that has started cannot fail.
#
# Every forward kernel (softmax, log_softmax) may overwrite its own input: a row on the
# last axis is read (max pass) before any of it is written and each later pass reads an
# entry before it writes it; long_softmax, which hands a row whose max is not finite
# back to row_, leaves the +inf entries and NaN for it to find; on a non-last axis a
# block holding a column whose max is not finite goes column by column in place
# (block_in_place).  The backward kernels read g and y entry by entry before writing dx
# in every layout.  The fused cross-entropy does not (it rereads a row's target logit,
# and hands rows back to the portable path), so in place it writes into a buffer.


def _same_memory(out: np.ndarray, a: np.ndarray) -> bool:
    """Whether the C-contiguous ``a`` is exactly ``out``'s memory, element for element."""
    if a is out:  # softmax(x, out=x): the cheap answer (the addresses take microseconds)
        return True
    return (
        a.shape == out.shape
        and a.dtype.itemsize == out.dtype.itemsize
        and a.flags.c_contiguous
        and a.__array_interface__["data"][0] == out.__array_interface__["data"][0]
    )


def _direct(
    out: np.ndarray | None,
    like: np.ndarray,
    moved: Axes | None,
    reads: tuple[np.ndarray | None, ...],
    overwrite: bool,
) -> np.ndarray | None:
    """``out`` where the kernel may write into it directly (see above), else None.

    ``like`` is the kernel's output as it would allocate it; ``reads`` are the arrays it
    reads; ``overwrite`` says whether it may write over one of them.
    """
    if (
        out is None
        or moved is not None
        or out.dtype != like.dtype
        or out.shape != like.shape
        or not out.flags.c_contiguous
    ):
        return None
    for a in reads:
        if a is not None and np.may_share_memory(out, a):
            if not (overwrite and _same_memory(out, a)):
                return None
    return out


def _deliver(
    result: np.ndarray, moved: Axes | None, out_dtype: Any, out: np.ndarray | None
) -> np.ndarray:
    """The kernel's ``result`` as the caller gets it: a new array, or in ``out``."""
    if out is None:
        return _restore(result, moved, out_dtype)
    if result is not out:
        if moved is not None:
            result = np.transpose(result, np.argsort(moved))
        with np.errstate(over="ignore"):  # a float64 result beyond float32 is rightly inf
            np.copyto(out, result, casting="same_kind")
    return out


def _forward(
    x: np.ndarray,
    axes: Axes,
    temperature: float,
    out_dtype: Any,
    op: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    x, outer, n, inner, moved = _layout(x, axes)
    if op == _LOGSUMEXP:
        first = x.ndim - len(axes) if moved is not None else (axes[0] if axes else x.ndim)
        shape = tuple(1 if first <= i < first + len(axes) else k for i, k in enumerate(x.shape))
    else:
        shape = x.shape
    result = _direct(out, x, moved, (x,), True)
    if result is None:
        result = empty(shape, x.dtype)
    _compiled().forward(x, result, outer, n, inner, temperature, op, x.dtype == np.float64)
    return _deliver(result, moved, out_dtype, out)


def softmax(
    x: np.ndarray, axes: Axes, temperature: float, out_dtype: Any, out: np.ndarray | None = None
) -> np.ndarray:
    return _forward(x, axes, temperature, out_dtype, _SOFTMAX, out)


def log_softmax(
    x: np.ndarray, axes: Axes, temperature: float, out_dtype: Any, out: np.ndarray | None = None
) -> np.ndarray:
    return _forward(x, axes, temperature, out_dtype, _LOG_SOFTMAX, out)


def logsumexp(x: np.ndarray, axes: Axes, out_dtype: Any) -> np.ndarray:
    """With the reduced axes kept (length 1)."""
    return _forward(x, axes, 1.0, out_dtype, _LOGSUMEXP)


def _backward(
    g: np.ndarray,
    y: np.ndarray,
    axes: Axes,
    out_dtype: Any,
    log: bool,
    out: np.ndarray | None = None,
) -> np.ndarray:
    g, outer, n, inner, moved = _layout(g, axes)
    y = _layout(y, axes)[0]
    dx = _direct(out, g, moved, (g, y), True)
    if dx is None:
        dx = empty(g.shape, g.dtype)
    _compiled().backward(g, y, dx, outer, n, inner, log, g.dtype == np.float64)
    return _deliver(dx, moved, out_dtype, out)


def softmax_backward(
    g: np.ndarray, p: np.ndarray, axes: Axes, out_dtype: Any, out: np.ndarray | None = None
) -> np.ndarray:
    return _backward(g, p, axes, out_dtype, False, out)


def log_softmax_backward(
    g: np.ndarray, logp: np.ndarray, axes: Axes, out_dtype: Any, out: np.ndarray | None = None
) -> np.ndarray:
    return _backward(g, logp, axes, out_dtype, True, out)


def cross_entropy_grad(
    logits: Any,
    target: Any,
    *,
    axis: Any,
    weight: Any,
    ignore_index: Any,
    reduction: Any,
    label_smoothing: Any,
    z_loss: Any,
    softcap: Any,
    grad: bool = True,
    grad_scale: float = 1.0,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The fused kernel for ``_losses.cross_entropy_grad``, or None where it does not apply.

    With ``grad=False`` only the loss is computed (the gradient comes back as None);
    ``grad_scale`` multiplies the gradient (an upstream gradient, in the same pass);
    ``out`` (checked) receives the gradient, which is then returned.

    Serves 2-D float32/float64 NumPy logits with the classes on the last axis and
    integer class indices, with or without ``weight``, ``ignore_index`` and
    ``label_smoothing``, any reduction; ``z_loss`` and ``softcap`` take the portable
    path.  Runs the same argument checks as the portable path, with the same
    messages, before any work; a row whose max is not finite (``+inf``, all
    ``-inf``, NaN) sends the whole call back to the portable path, which decides
    those cases (and writes the whole of ``out`` again).  A ``weight`` of a dtype the
    portable path refuses is left to it, so that it cannot raise after the kernel wrote.
    """
    if not (
        enabled()
        and type(logits) is np.ndarray
        and logits.ndim == 2
        and logits.dtype in (np.float32, np.float64)
        and isinstance(target, np.ndarray)
        and target.dtype.kind in "iu"
        and (weight is None or (isinstance(weight, np.ndarray) and weight.dtype.kind in "biuf"))
        and softcap is None
        and not z_loss
    ):
        return None
    if check_class_axis(axis, logits.ndim) != 1:
        return None
    reduction = check_reduction(reduction)
    ignore = check_ignore_index(ignore_index)
    eps = check_label_smoothing(label_smoothing)
    n, c = logits.shape
    if target.shape != (n,):
        return None  # the portable path words the error
    check_indices(target, c, ignore)
    work = logits.dtype
    w = None
    if weight is not None:
        if weight.shape != (c,):
            return None
        w = np.ascontiguousarray(weight, dtype=work)
    t = np.ascontiguousarray(target, dtype=np.int64)
    kept = t != ignore
    if w is None:
        denominator = float(np.count_nonzero(kept))
        sum_w = float(c)
    else:
        denominator = float(np.sum(w[t[kept]], dtype=np.float64))
        sum_w = float(np.sum(w, dtype=np.float64))
    scale = grad_scale
    if reduction == "mean":
        # torch's gradient of a NaN mean (nothing kept, or weights summing to 0) is 0
        scale = grad_scale / denominator if denominator != 0 else 0.0
    x = np.ascontiguousarray(logits)
    dx = None
    if grad:
        dx = _direct(out, x, None, (x, t, w), False)
        if dx is None:
            dx = empty(x.shape, x.dtype)
    rows = np.empty(n, dtype=np.float64)
    special = _compiled().cross_entropy(
        x, t, w, dx, rows, n, c, ignore, eps, sum_w, scale, work == np.float64
    )
    if special:
        return None
    if reduction == "none":
        loss = rows.astype(work)
    elif reduction == "sum":
        loss = np.asarray(rows.sum(), dtype=work)
    elif denominator == 0:
        loss = np.asarray(np.nan, dtype=work)
    else:
        loss = np.asarray(rows.sum() / denominator, dtype=work)
    if out is not None and dx is not None:
        dx = _deliver(dx, None, work, out)
    return loss, dx


def chunk_grad(z: np.ndarray, lse: np.ndarray, scale: np.ndarray, smooth: float) -> None:
    """In place, row by row: ``z = (exp(z - lse) - smooth) * scale`` (linear cross-entropy).

    ``z`` is a C-contiguous (N, C) chunk of logits; ``lse`` and ``scale`` are float64 of
    length N.  The kernel reads float32 and float64; another dtype (``np.longdouble``)
    is computed by NumPy in that dtype, the same formula.
    """
    if z.dtype.char not in "fd":
        z -= lse.astype(z.dtype)[:, None]
        np.exp(z, out=z)
        z -= z.dtype.type(smooth)
        z *= scale.astype(z.dtype)[:, None]
        return
    n, c = z.shape
    _compiled().chunk_grad(z, lse, scale, n, c, smooth, z.dtype == np.float64)
