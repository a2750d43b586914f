"""sparsemax and entmax on torch tensors: one ``torch.library`` operator over rows.

``torch.ops.softmaxkit.entmax_rows(x, kind, alpha, n_iter) -> (p, frozen)`` maps the
rows of a 2-D tensor (already shifted to the working dtype and masked by
:func:`softmaxkit._sparse._entmax_any`) to their probabilities, with ``frozen``
marking the rows whose gradient is 0 (a ``+inf`` or all ``-inf`` max).  Its kernel
is the compiled one of :mod:`softmaxkit._kernels._sparse` for contiguous CPU
float32/float64 rows of sparsemax and 1.5-entmax (on the tensor's own memory), and
the portable array-API code otherwise; a fake implementation gives the shapes to
meta tensors and ``torch.compile``, a batching rule serves ``torch.func.vmap``.  Its autograd formula is the backward product
written in torch operations, so it is differentiable twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import _kernels
from .._kernels import _sparse as _sparse_kernels
from . import _torch

__all__ = ["entmax_rows"]

_LIB = torch.library.Library("softmaxkit", "FRAGMENT")
_LIB.define("entmax_rows(Tensor x, str kind, float alpha, int n_iter) -> (Tensor, Tensor)")

_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}


def _frozen(x: Tensor) -> Tensor:
    m = torch.amax(x, dim=-1, keepdim=True)
    return torch.isinf(m)


def _rows(x: Tensor, kind: str, alpha: float, n_iter: int) -> tuple[Tensor, Tensor]:
    from .._sparse import _project_rows

    if (
        kind != "bisect"
        and x.is_cpu
        and x.dtype in _NUMPY
        and _kernels.enabled()
        and _torch.path() in ("auto", "operators")
        and x.is_contiguous()
        and not x.requires_grad
    ):
        out = _sparse_kernels.project(x.numpy(), (1,), kind, _NUMPY[x.dtype])
        if out is not None:
            return torch.from_numpy(out), _frozen(x)
    return _project_rows(x, kind, alpha, n_iter)


def _cpu(x: Tensor, kind: str, alpha: float, n_iter: int) -> tuple[Tensor, Tensor]:
    return _rows(x.detach(), kind, alpha, n_iter)


_LIB.impl("entmax_rows", _cpu, "CompositeExplicitAutograd")


@torch.library.register_fake("softmaxkit::entmax_rows", lib=_LIB)
def _(x: Tensor, kind: str, alpha: float, n_iter: int) -> tuple[Tensor, Tensor]:
    return x.new_empty(x.shape), x.new_empty((x.shape[0], 1), dtype=torch.bool)


def _setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    ctx.alpha = inputs[2]
    ctx.save_for_backward(*output)
    ctx.mark_non_differentiable(output[1])


def _backward(ctx: Any, G: Tensor, _: Any) -> tuple[Any, ...]:
    from .._backend import namespace
    from .._sparse import _backward_rows

    p, frozen = ctx.saved_tensors
    dx = _backward_rows(namespace(p), G, p, ctx.alpha)
    return torch.where(frozen, torch.zeros_like(dx), dx), None, None, None


torch.library.register_autograd(
    "softmaxkit::entmax_rows", _backward, setup_context=_setup, lib=_LIB
)


@torch.library.register_vmap("softmaxkit::entmax_rows", lib=_LIB)
def _vmap(info: Any, in_dims: tuple[Any, ...], x: Tensor, kind: str, alpha: float, n_iter: int):
    # rows are independent: the batch is more rows
    if in_dims[0] is None:
        return torch.ops.softmaxkit.entmax_rows(x, kind, alpha, n_iter), (None, None)
    moved = x.movedim(in_dims[0], 0)
    size, rows, n = moved.shape
    p, frozen = torch.ops.softmaxkit.entmax_rows(moved.reshape(size * rows, n), kind, alpha, n_iter)
    return (p.reshape(size, rows, n), frozen.reshape(size, rows, 1)), (0, 0)


class _Function(torch.autograd.Function):
    """The operator with its formula, for softmaxkit's own calls (``torch.func`` needs it)."""

    @staticmethod
    def forward(x: Tensor, kind: str, alpha: float, n_iter: int) -> Any:  # type: ignore[override]
        return torch.ops.softmaxkit.entmax_rows(x, kind, alpha, n_iter)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        _setup(ctx, inputs, output)

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        return _backward(ctx, *grads)

    generate_vmap_rule = True


def entmax_rows(x: Tensor, kind: str, alpha: float, n_iter: int) -> Tensor:
    """``p`` of the rows of ``x``: the kernel itself where nothing watches, else the operator.

    Watched calls (a gradient due, tracing, a ``torch.func`` transform, whose wrapped
    tensors need not say ``requires_grad``) go through the autograd Function, whose
    ``setup_context`` the transforms require.
    """
    if not (torch.is_grad_enabled() and x.requires_grad) and _torch._unobserved((x,)):
        return _rows(x, kind, alpha, n_iter)[0]
    return _Function.apply(x, kind, alpha, n_iter)[0]  # type: ignore[no-any-return]
