"""``linear_cross_entropy`` as PyTorch operators, beside the others of the ``softmaxkit`` namespace.

Two operators, defined on :mod:`._torch`'s library::

    linear_cross_entropy(inputs, weight, bias?, targets, ignore_index, reduction,
                         label_smoothing, chunk_size?) -> (loss, lse)
    linear_cross_entropy_backward(grad_loss, inputs, weight, bias?, targets, lse, ignore_index,
                                  reduction, label_smoothing, chunk_size?, output_mask)
        -> (d_inputs, d_weight, d_bias)

``lse`` is each row's logsumexp over all ``V`` classes (float64, shape (N,)): with the
inputs, all the backward pass keeps; the ``(N, V)`` logits exist one chunk at a time
and are never saved.  ``chunk_size`` None means the default of
:func:`softmaxkit.linear_cross_entropy`.  A gradient ``output_mask`` leaves out comes
back empty, shape (0,), as does ``d_bias`` without a bias.

* Every device runs the chunks in torch operations.  On the CPU, float32 and float64
  can instead run the NumPy chunk code of :mod:`softmaxkit._linear_ce` on views of the
  tensors' memory (``_linear_ce._CPU_TENSORS_VIA_NUMPY``, off by default: see there why).
* Fake implementations give the shapes (``meta`` tensors, ``torch.compile``, ``opcheck``).
* Autograd: the forward operator's formula is the backward operator, registered on the
  operator and as an ``autograd.Function`` (``torch.func`` needs its ``setup_context``).
  The backward operator itself is not differentiable: asking for a second derivative
  raises :class:`SoftmaxkitError` saying so (with ``create_graph=True`` the first
  backward still works; the error comes when its result is differentiated).
* vmap: one call per batch entry.
* Autocast: float32, as PyTorch's policy runs its losses.

Class indices are checked inside the kernels, where they are at hand: on CPU tensors
in NumPy on the targets' memory, with the message that names the position; on other
devices as a device-side assertion (nothing there waits for the device).  The Python
before the operators looks at shapes, dtypes and options only, so that
``torch.compile(fullgraph=True)`` and ``torch.func`` trace it.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import torch
from torch import Tensor

from .. import _linear_ce
from .._errors import SoftmaxkitError, SoftmaxkitTypeError
from ._torch import (
    _LIB,
    _OPS,
    _call,
    _differentiable,
    _fake,
    _impl,
    _vmap_by_rows,
)
from ._torch_losses import _as_tensor, _autocast_enabled, _check_indices_on_device, _view

__all__ = [
    "is_tensor",
    "linear_cross_entropy",
    "linear_cross_entropy_grad",
    "prepare",
    "release_workspace",
]

_OPTIONS = "int ignore_index, str reduction, float label_smoothing, int? chunk_size"
_LIB.define(
    "linear_cross_entropy(Tensor inputs, Tensor weight, Tensor? bias, Tensor targets, "
    f"{_OPTIONS}) -> (Tensor loss, Tensor lse)"
)
_LIB.define(
    "linear_cross_entropy_backward(Tensor grad_loss, Tensor inputs, Tensor weight, Tensor? bias, "
    f"Tensor targets, Tensor lse, {_OPTIONS}, bool[3] output_mask) "
    "-> (Tensor d_inputs, Tensor d_weight, Tensor d_bias)"
)

NOT_TWICE_DIFFERENTIABLE = (
    "linear_cross_entropy is differentiable once: its backward pass recomputes the logits "
    "chunk by chunk and has no derivative of its own; for second derivatives use "
    "cross_entropy(inputs @ weight.T + bias, targets), which forms the (N, V) logits"
)


def is_tensor(a: Any) -> bool:
    return isinstance(a, Tensor)


# --- the public functions' torch side (called after the shape and option checks) -----------


def prepare(
    inputs: Tensor, weight: Tensor, targets: Any, bias: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None, Tensor, torch.dtype]:
    """``(x, w, b, t, out_dtype)``: the arguments in their working dtype, in torch calls only.

    As :func:`softmaxkit._backend.compute_dtype`: float32 and float64 work in themselves,
    float16 and bfloat16 in float32, integers in the default dtype; the result has the
    input's dtype, except under ``torch.autocast``, where it is float32 (as PyTorch's
    cross-entropy is there).
    """
    arrays = [("inputs", inputs), ("weight", weight)]
    if bias is not None:
        arrays.append(("bias", bias))
    for name, a in arrays:
        if a.dtype.is_complex:
            raise SoftmaxkitTypeError(
                f"`{name}` must be an array of real numbers; got dtype "
                f"{_linear_ce.dtype_name(a.dtype)}"
            )
    dtype = inputs.dtype
    for _, a in arrays[1:]:
        dtype = torch.promote_types(dtype, a.dtype)
    if not dtype.is_floating_point:
        work = out = torch.get_default_dtype()
    else:
        work = out = torch.float32 if dtype.itemsize < 4 else dtype
        if not _autocast_enabled(inputs.device.type):
            out = dtype
    x, w = inputs.to(work), weight.to(work)
    b = None if bias is None else bias.to(work)
    t = _as_tensor(targets, "targets", x)
    return x, w, b, t, out


def linear_cross_entropy(
    x: Tensor,
    w: Tensor,
    b: Tensor | None,
    t: Tensor,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    chunk_size: int | None,
) -> Tensor:
    """The loss, differentiable by autograd and ``torch.func`` (once)."""
    options = (ignore_index, reduction, label_smoothing, chunk_size)
    loss, _ = _call("linear_cross_entropy", x, w, b, t, *options)
    return loss


def linear_cross_entropy_grad(
    x: Tensor,
    w: Tensor,
    b: Tensor | None,
    t: Tensor,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    chunk_size: int | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """``(loss, dx, dw, db)``: the two operators called directly, no autograd graph."""
    x, w = x.detach(), w.detach()
    b = None if b is None else b.detach()
    options = (ignore_index, reduction, label_smoothing, chunk_size)
    loss, lse = _OPS.linear_cross_entropy(x, w, b, t, *options)
    # the gradients of loss.sum() for "none"
    mask = [True, True, b is not None]
    dx, dw, db = _OPS.linear_cross_entropy_backward(
        torch.ones_like(loss), x, w, b, t, lse, *options, mask
    )
    return loss, dx, dw, (db if b is not None else None)


# --- checks inside the operators ---------------------------------------------------------------


def _check_dtypes(x: Tensor, w: Tensor, b: Tensor | None, t: Tensor) -> None:
    """One floating dtype for the three, and integer targets (metadata only: fake impls too)."""
    for name, a in (("weight", w), ("bias", b)):
        if a is not None and a.dtype != x.dtype:
            raise SoftmaxkitTypeError(
                f"`{name}` must have the dtype of `inputs` ({x.dtype}); got dtype {a.dtype}"
            )
    if not x.dtype.is_floating_point:
        raise SoftmaxkitTypeError(f"`inputs` must have a floating dtype; got dtype {x.dtype}")
    _linear_ce.check_target_dtype(t.dtype)


def _check_targets(t: Tensor, v: int, ignore_index: int) -> None:
    """Class indices in ``[0, V)`` or ``ignore_index``, without waiting for a device.

    On the CPU (the torch chunks forced there) with the NumPy path's message, position
    included; elsewhere a device-side assertion, as PyTorch's own losses check their
    targets on a GPU: it fails the next synchronising call rather than this one.
    """
    if t.is_cpu:
        _linear_ce._check_class_indices(t.numpy(), t.dtype, v, ignore_index)
    else:
        _check_indices_on_device(t, v, ignore_index, "targets")


def _check(x: Tensor, w: Tensor, b: Tensor | None, t: Tensor, options: tuple[Any, ...]):
    """The shape, option and dtype checks of a direct caller of the operator."""
    _linear_ce._check_shapes(x.shape, w.shape, t.shape, None if b is None else b.shape)
    _linear_ce._check_settings(*options)
    _check_dtypes(x, w, b, t)


# --- CPU kernels: the NumPy chunk code on views of the tensors' memory -----------------------


def _via_numpy(x: Tensor) -> bool:
    return _linear_ce._CPU_TENSORS_VIA_NUMPY and x.dtype in (torch.float32, torch.float64)


def _empty(like: Tensor) -> Tensor:
    """What stands for a gradient nobody asked for (a schema's outputs cannot be None)."""
    return like.new_empty((0,))


@_impl("linear_cross_entropy")
def _forward_cpu(x: Tensor, w: Tensor, b: Tensor | None, t: Tensor, *options: Any):
    _check_dtypes(x, w, b, t)
    if not _via_numpy(x):
        return _forward_torch(x, w, b, t, *options)
    xv, wv, bv = _view(x), _view(w), _view(b)
    # _Options checks the shapes, the options and (in NumPy, no copy) the class indices
    opt = _linear_ce._Options(xv, wv, t.detach(), bv, *options)
    lse, rows = _linear_ce._np_forward(xv, wv, bv, opt)
    return torch.as_tensor(opt.reduce(rows), dtype=x.dtype), torch.from_numpy(lse)


@_impl("linear_cross_entropy_backward")
def _backward_cpu(
    grad: Tensor,
    x: Tensor,
    w: Tensor,
    b: Tensor | None,
    t: Tensor,
    lse: Tensor,
    *options_and_mask: Any,
):
    *options, mask = options_and_mask
    _check_dtypes(x, w, b, t)
    if not _via_numpy(x):
        return _backward_torch(grad, x, w, b, t, lse, *options_and_mask)
    xv, wv, bv = _view(x), _view(w), _view(b)
    opt = _linear_ce._Options(xv, wv, t.detach(), bv, *options)
    # d loss / d row loss, times the upstream gradient (a scalar, or one per row for "none")
    scales = opt.row_scales() * grad.detach().to(torch.float64).numpy()
    grads = _linear_ce._np_backward(xv, wv, bv, opt, lse.detach().numpy(), scales)
    return tuple(
        torch.from_numpy(g) if need and g is not None else _empty(x)
        for g, need in zip(grads, mask, strict=True)
    )


# --- every other dtype and device: the same chunks in torch operations -------------------------


# One (N, chunk) block serves every chunk of a pass.  On the CPU a pass hands its block on
# to the next (forward to backward, step to step) instead of freeing it: a freed block of
# megabytes stays in glibc's heap, the small allocations between two passes split it, and
# the next pass's block lands beside it, so that a training loop held two blocks resident
# where it needs one (17 MB for chunks of 8.4 MB).  The slot keeps one block at most.
_workspace: list[Tensor] = []
_workspace_lock = threading.Lock()


def _take_buffer(x: Tensor, size: int) -> Tensor:
    """A block of ``size`` elements of ``x``'s dtype: the slot's when it fits, else a new one."""
    if x.is_cpu:
        with _workspace_lock:
            held = _workspace.pop() if _workspace else None
        if (
            held is not None
            and held.dtype == x.dtype
            and size <= held.numel() <= 2 * size
            # an inference tensor cannot be written outside inference mode, nor the reverse
            and held.is_inference() == torch.is_inference_mode_enabled()
        ):
            return held
    return x.new_empty((size,))


def _give_back(buf: Tensor) -> None:
    if buf.is_cpu:
        with _workspace_lock:
            _workspace[:] = [buf]


def release_workspace() -> None:
    """Free the chunk block kept for the next pass (as a benchmark's baseline needs)."""
    with _workspace_lock:
        _workspace.clear()


def _logits(x: Tensor, w: Tensor, b: Tensor | None, v0: int, v1: int, buf: Tensor) -> Tensor:
    z = buf[: x.shape[0] * (v1 - v0)].view(x.shape[0], v1 - v0)
    torch.mm(x, w[v0:v1].t(), out=z)
    if b is not None:
        z += b[v0:v1]
    return z


def _logsumexp_(z: Tensor) -> Tensor:
    """``torch.logsumexp(z, dim=1)``, the same operations, but in ``z``'s memory, which it overwrites.

    ``torch.logsumexp`` allocates ``z - max`` afresh: a second chunk of memory per chunk
    (on the CPU a fresh ``mmap`` for a chunk of megabytes, page faults included).  As
    there, an infinite maximum is taken as 0, so that a row of ``-inf`` gives ``-inf`` and
    a row holding ``inf`` gives ``inf`` rather than NaN.
    """
    m = z.amax(dim=1)
    m.masked_fill_(m.abs() == math.inf, 0)
    z -= m[:, None]
    z.exp_()
    return z.sum(dim=1).log_().add_(m)


class _Rows:
    """The kept rows and, per chunk, where their targets lie; in torch operations, no sync."""

    def __init__(self, t: Tensor, ignore_index: int) -> None:
        self.kept = t != ignore_index
        self.targets = torch.where(self.kept, t, torch.zeros_like(t)).long()

    def in_chunk(self, v0: int, v1: int) -> tuple[Tensor, Tensor]:
        """``(inside, column)``: whether a row's target lies in ``[v0, v1)``, and where."""
        inside = self.kept & (self.targets >= v0) & (self.targets < v1)
        return inside, (self.targets - v0).clamp(0, v1 - v0 - 1).unsqueeze(1)

    def n_kept(self) -> Tensor:
        return self.kept.sum(dtype=torch.float64)


def _forward_torch(x, w, b, t, ignore_index, reduction, eps, chunk_size):
    n, v = x.shape[0], w.shape[0]
    _check(x, w, b, t, (ignore_index, reduction, eps, chunk_size))
    _check_targets(t, v, ignore_index)
    chunk = _linear_ce._chunk_classes(n, v, chunk_size)
    rows = _Rows(t, ignore_index)
    f64 = dict(dtype=torch.float64, device=x.device)
    lse = torch.full((n,), -math.inf, **f64)
    target_logit = torch.zeros(n, **f64)
    logit_sum = torch.zeros(n, **f64)
    buf = _take_buffer(x, n * chunk)
    for v0 in range(0, v, chunk):
        v1 = min(v0 + chunk, v)
        z = _logits(x, w, b, v0, v1, buf)
        inside, column = rows.in_chunk(v0, v1)
        picked = torch.gather(z, 1, column).squeeze(1).double()
        target_logit = torch.where(inside, picked, target_logit)
        if eps:
            # in z's dtype: sum(dtype=float64) would first copy the chunk to float64
            logit_sum += z.sum(dim=1).double()
        lse = torch.logaddexp(lse, _logsumexp_(z).double())  # the last use of z
    _give_back(buf)
    # -sum_c q_c log p_c = L - (1 - eps) z_t - eps / V sum_c z_c, 0 on ignored rows
    losses = lse - (1 - eps) * target_logit
    if eps and v:  # no classes (V = 0): every row is ignored
        losses = losses - (eps / v) * logit_sum
    losses = torch.where(rows.kept, losses, torch.zeros((), **f64))
    if reduction == "none":
        loss = losses
    elif reduction == "sum":
        loss = losses.sum()
    else:
        count = rows.n_kept()
        loss = torch.where(count > 0, losses.sum() / count.clamp(min=1), math.nan)
    return loss.to(x.dtype), lse


def _backward_torch(grad, x, w, b, t, lse, ignore_index, reduction, eps, chunk_size, mask):
    n, v = x.shape[0], w.shape[0]
    _check(x, w, b, t, (ignore_index, reduction, eps, chunk_size))
    _check_targets(t, v, ignore_index)
    chunk = _linear_ce._chunk_classes(n, v, chunk_size)
    rows = _Rows(t, ignore_index)
    # d loss / d row loss: 1 / n_kept for the mean (0 when nothing is kept), 0 on ignored rows
    base = torch.ones((), dtype=torch.float64, device=x.device)
    if reduction == "mean":
        count = rows.n_kept()
        base = torch.where(count > 0, 1.0 / count.clamp(min=1), 0.0)
    scales = (torch.where(rows.kept, base, 0.0) * grad.double()).to(x.dtype)[:, None]
    dx = x.new_zeros(x.shape) if mask[0] else None
    dw = w.new_empty(w.shape) if mask[1] else None
    db = b.new_empty(b.shape) if mask[2] and b is not None else None
    if dx is None and dw is None and db is None:
        return _empty(x), _empty(x), _empty(x)
    buf = _take_buffer(x, n * chunk)
    shift = lse.to(x.dtype)[:, None]
    target_mass = x.new_full((), -(1 - eps))
    for v0 in range(0, v, chunk):
        v1 = min(v0 + chunk, v)
        g = _logits(x, w, b, v0, v1, buf)
        g -= shift
        g.exp_()  # softmax probabilities of this chunk
        if eps:
            g -= eps / v
        inside, column = rows.in_chunk(v0, v1)
        g.scatter_add_(1, column, (inside.to(x.dtype) * target_mass).unsqueeze(1))
        g *= scales
        if dx is not None:
            dx.addmm_(g, w[v0:v1])
        if dw is not None:
            torch.mm(g.t(), x, out=dw[v0:v1])
        if db is not None:
            torch.sum(g, dim=0, out=db[v0:v1])
    _give_back(buf)
    return tuple(_empty(x) if g is None else g for g in (dx, dw, db))


_LIB.impl("linear_cross_entropy", _forward_torch, "CompositeExplicitAutograd")
_LIB.impl("linear_cross_entropy_backward", _backward_torch, "CompositeExplicitAutograd")


# --- fake implementations ----------------------------------------------------------------------


@_fake("linear_cross_entropy")
def _(x, w, b, t, ignore_index, reduction, label_smoothing, chunk_size):
    _check_dtypes(x, w, b, t)
    n = x.shape[0]
    loss = x.new_empty((n,) if reduction == "none" else ())
    return loss, x.new_empty((n,), dtype=torch.float64)


@_fake("linear_cross_entropy_backward")
def _(grad, x, w, b, t, lse, ignore_index, reduction, label_smoothing, chunk_size, mask):
    _check_dtypes(x, w, b, t)
    return (
        x.new_empty(x.shape) if mask[0] else _empty(x),
        w.new_empty(w.shape) if mask[1] else _empty(x),
        b.new_empty(b.shape) if mask[2] and b is not None else _empty(x),
    )


# --- autograd ------------------------------------------------------------------------------------


def _setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    x, w, b, t, *options = inputs
    lse = output[1]
    ctx.save_for_backward(x, w, b, t, lse)  # one number per row besides the inputs
    ctx.options = options
    ctx.mark_non_differentiable(lse)


def _grad(ctx: Any, grad_loss: Tensor, _grad_lse: Any):
    x, w, b, t, lse = ctx.saved_tensors
    mask = [bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1])]
    mask.append(b is not None and bool(ctx.needs_input_grad[2]))
    grads = _call("linear_cross_entropy_backward", grad_loss, x, w, b, t, lse, *ctx.options, mask)
    return tuple(g if need else None for g, need in zip(grads, mask, strict=True)) + (None,) * 5


def _setup_nothing(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    return None


def _not_twice_differentiable(ctx: Any, *grads: Any):
    raise SoftmaxkitError(NOT_TWICE_DIFFERENTIABLE)


_differentiable("linear_cross_entropy", _grad, _setup)
_differentiable("linear_cross_entropy_backward", _not_twice_differentiable, _setup_nothing)
for _name in ("linear_cross_entropy", "linear_cross_entropy_backward"):
    _vmap_by_rows(_name)
# autocast: float32, PyTorch's policy for its losses (float64 stays float64, as there)
for _device in ("cpu", "cuda"):
    torch.library.register_autocast(
        "softmaxkit::linear_cross_entropy", _device, torch.float32, lib=_LIB
    )
