"""The NumPy backend: the compiled C kernels of :mod:`softmaxkit._kernels`.

Each primitive takes arrays already validated and cast (see :mod:`._backends`)
and hands them to the kernels, which serve every layout of float32 and float64
NumPy arrays; only the fused cross-entropy has cases of its own (2-D logits,
class indices) and returns None outside them.
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


def enabled() -> bool:
    return _kernels.enabled()


softmax = _kernels.softmax
log_softmax = _kernels.log_softmax
logsumexp = _kernels.logsumexp
softmax_backward = _kernels.softmax_backward
log_softmax_backward = _kernels.log_softmax_backward


def loss_input(x: Any) -> Any:
    """A loss's logits as the loss computes them (unchanged: NumPy has no autocast)."""
    return x


def cross_entropy(logits: Any, target: Any, *, need_grad: bool, **options: Any) -> Any:
    return _kernels.cross_entropy_grad(logits, target, grad=need_grad, **options)
