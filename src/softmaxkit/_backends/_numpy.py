"""The NumPy backend: the compiled C kernels of :mod:`softmaxkit._kernels`.

Each primitive takes arrays already validated and cast (see :mod:`._backends`)
and hands them to the kernels, which serve every layout of float32 and float64
NumPy arrays; only the fused cross-entropy has cases of its own (2-D logits,
class indices) and returns None outside them.  Any other working dtype (``np.longdouble``) is
left to the portable path: every primitive returns None for it.

This backend alone takes ``out=`` (a NumPy array checked by ``_backend.check_out``;
``grad_out`` of ``cross_entropy_grad`` arrives as ``out``): the kernels write into it and
return it.  The public functions pass it only when the caller gave one, so the other
backends' primitives never see it.
"""

from __future__ import annotations

from typing import Any

from .. import _kernels

__all__ = [
    "NAME",
    "cross_entropy",
    "enabled",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "loss_input",
    "softmax",
    "softmax_backward",
]

NAME = "numpy"

# The kernels read float32 and float64 only (in either byte order, see _kernels._layout);
# a working dtype of their own (np.longdouble, which compute_dtype keeps) takes the
# portable path, which computes in it.
_SERVED = frozenset("fd")


def _served(*arrays: Any) -> bool:
    return all(a.dtype.char in _SERVED for a in arrays)


def enabled() -> bool:
    return _kernels.enabled()


def softmax(x: Any, axes: Any, temperature: float, out_dtype: Any, out: Any = None) -> Any:
    return _kernels.softmax(x, axes, temperature, out_dtype, out) if _served(x) else None


def log_softmax(x: Any, axes: Any, temperature: float, out_dtype: Any, out: Any = None) -> Any:
    return _kernels.log_softmax(x, axes, temperature, out_dtype, out) if _served(x) else None


def logsumexp(x: Any, axes: Any, out_dtype: Any) -> Any:
    return _kernels.logsumexp(x, axes, out_dtype) if _served(x) else None


def softmax_backward(g: Any, p: Any, axes: Any, out_dtype: Any, out: Any = None) -> Any:
    return _kernels.softmax_backward(g, p, axes, out_dtype, out) if _served(g, p) else None


def log_softmax_backward(g: Any, logp: Any, axes: Any, out_dtype: Any, out: Any = None) -> Any:
    if not _served(g, logp):
        return None
    return _kernels.log_softmax_backward(g, logp, axes, out_dtype, out)


def loss_input(x: Any) -> Any:
    """A loss's logits as the loss computes them (unchanged: NumPy has no autocast)."""
    return x


def cross_entropy(logits: Any, target: Any, *, need_grad: bool, **options: Any) -> Any:
    return _kernels.cross_entropy_grad(logits, target, grad=need_grad, **options)
