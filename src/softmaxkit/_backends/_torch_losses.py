"""The losses of the PyTorch backend: cross-entropy, NLL and binary cross-entropy.

Operators of the ``softmaxkit`` namespace (defined on :mod:`._torch`'s library):

* ``cross_entropy`` gives the loss alone, and ``cross_entropy_backward`` the gradient
  times an upstream gradient, computed afresh from the logits in one kernel pass, so
  that nothing of size N x C is kept between them and no one-hot target is built;
* ``nll_loss``, and ``binary_cross_entropy_with_logits`` (its gradient computed in the
  forward pass when one is due).

Their CPU kernels run softmaxkit's NumPy losses on views of the tensors' memory (the
fused C kernel where it applies), and so check targets where the values are at hand.
Autograd uses the saved gradient or the backward operator; where more is asked (a
second derivative, the gradient of a probability target or of a weight) it
differentiates the same loss written in torch operations on the differentiable
operators of :mod:`._torch`.  On devices other than the CPU the losses are those torch
operations, with target checks as device-side assertions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import _kernels
from .._errors import SoftmaxkitTypeError
from ._torch import (
    _LIB,
    _OPS,
    _call,
    _differentiable,
    _fake,
    _impl,
    _operators,
    _vmap_by_rows,
    _wrapped,
    batched,
    check,
    path,
)

__all__ = [
    "binary_cross_entropy_with_logits",
    "check_target",
    "cross_entropy",
    "loss_input",
    "nll_loss",
]

_CE_OPTIONS = (
    "Tensor target, Tensor? weight, int ignore_index, str reduction, float label_smoothing, "
    "float z_loss, float? softcap"
)
_LIB.define(f"cross_entropy(Tensor logits, {_CE_OPTIONS}) -> Tensor")
# grad * d(loss)/d(logits), computed afresh from the logits (nothing of N x C is saved)
_LIB.define(f"cross_entropy_backward(Tensor grad, Tensor logits, {_CE_OPTIONS}) -> Tensor")
_LIB.define(
    "nll_loss(Tensor log_probs, Tensor target, Tensor? weight, int ignore_index, "
    "str reduction) -> Tensor"
)
_LIB.define(
    "binary_cross_entropy_with_logits(Tensor logits, Tensor target, Tensor? weight, "
    "Tensor? pos_weight, str reduction, bool need_grad) -> (Tensor, Tensor)"
)


for _name in (
    "cross_entropy",
    "cross_entropy_backward",
    "nll_loss",
    "binary_cross_entropy_with_logits",
):
    _vmap_by_rows(_name)


# --- the losses: NumPy's implementation on views of the tensors' memory ----------------------


def _view(t: Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().contiguous().numpy()


def _tensor(a: Any, like: Tensor) -> Tensor:
    a = np.asarray(a)
    if not (a.flags.c_contiguous and a.flags.writeable):
        a = a.copy()  # (np.ascontiguousarray would make a 0-d loss 1-d)
    return torch.from_numpy(a).to(like.dtype)


def _ce_arguments(logits, target, weight, ignore_index, reduction, eps, z_loss, softcap):
    options = dict(
        weight=_view(weight),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=eps,
        z_loss=z_loss,
        softcap=softcap,
    )
    return (_view(logits), _view(target)), options


@_impl("cross_entropy")
def _cross_entropy_cpu(logits: Tensor, *options: Any) -> Tensor:
    from .. import _losses

    args, kwargs = _ce_arguments(logits, *options)
    return _tensor(_losses.cross_entropy(*args, **kwargs), logits)


@_impl("cross_entropy_backward")
def _cross_entropy_backward_cpu(grad: Tensor, logits: Tensor, *options: Any) -> Tensor:
    from .. import _losses

    args, kwargs = _ce_arguments(logits, *options)
    g = grad.detach().numpy()
    if g.ndim == 0 and _kernels.enabled():
        # a scalar upstream gradient folds into the kernel's scale: one pass, no multiply
        fused = _kernels.cross_entropy_grad(*args, axis=-1, grad_scale=float(g), **kwargs)
        if fused is not None:
            return _tensor(fused[1], logits)
    _, dx = _losses.cross_entropy_grad(*args, **kwargs)
    return _tensor(dx * (g[..., None] if g.ndim else g), logits)


@_fake("cross_entropy")
def _(logits, target, weight, ignore_index, reduction, label_smoothing, z_loss, softcap):
    return logits.new_empty(logits.shape[:1] if reduction == "none" else ())


@_fake("cross_entropy_backward")
def _(grad, logits, *options):
    return logits.new_empty(logits.shape)


@_impl("nll_loss")
def _nll_loss_cpu(log_probs, target, weight, ignore_index, reduction):
    from .. import _losses

    loss = _losses.nll_loss(
        _view(log_probs),
        _view(target),
        weight=_view(weight),
        ignore_index=ignore_index,
        reduction=reduction,
    )
    return _tensor(loss, log_probs)


@_fake("nll_loss")
def _(log_probs, target, weight, ignore_index, reduction):
    return log_probs.new_empty(log_probs.shape[:1] if reduction == "none" else ())


@_impl("binary_cross_entropy_with_logits")
def _bce_cpu(logits, target, weight, pos_weight, reduction, need_grad):
    from .. import _losses

    args = (_view(logits), _view(target))
    options = dict(weight=_view(weight), pos_weight=_view(pos_weight), reduction=reduction)
    if need_grad:
        loss, dx = _losses.binary_cross_entropy_with_logits_grad(*args, **options)
        return _tensor(loss, logits), _tensor(dx, logits)
    loss = _losses.binary_cross_entropy_with_logits(*args, **options)
    return _tensor(loss, logits), logits.new_empty((0,))


@_fake("binary_cross_entropy_with_logits")
def _(logits, target, weight, pos_weight, reduction, need_grad):
    loss = logits.new_empty(logits.shape if reduction == "none" else ())
    return loss, logits.new_empty(logits.shape if need_grad else (0,))


# Backward passes: cross-entropy's backward operator recomputes the gradient from the
# logits; binary cross-entropy scales the gradient its forward kernel saved.  Where
# autograd needs more (a second derivative, or the gradient of a probability target or
# of a weight), backward differentiates the same loss written with torch operations on
# the operators of ._torch (differentiable to any order).


def _loss_setup(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    """Save the tensor inputs (and, for a (loss, gradient) pair, the gradient)."""
    ctx.inputs_tensors = [i for i, a in enumerate(inputs) if isinstance(a, Tensor)]
    ctx.arguments = [None if isinstance(a, Tensor) else a for a in inputs]
    saved = [a for a in inputs if isinstance(a, Tensor)]
    ctx.has_grad = isinstance(output, tuple)
    if ctx.has_grad:
        saved.append(output[1])
        ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(*saved)


def _restore_inputs(ctx: Any) -> tuple[list[Any], Tensor | None]:
    """``(inputs, saved gradient or None)`` as :func:`_loss_setup` saved them."""
    tensors = list(ctx.saved_tensors)
    saved_grad = tensors.pop() if ctx.has_grad else None
    args = list(ctx.arguments)
    for i, t in zip(ctx.inputs_tensors, tensors, strict=True):
        args[i] = t
    return args, saved_grad


def _composite_grads(ctx: Any, composite: Callable[..., Tensor], args: list[Any], G: Tensor):
    """Gradients of ``composite(*args)`` by autograd, for every input that needs one."""
    wanted = [i for i, need in enumerate(ctx.needs_input_grad) if need]
    if batched(G):
        # torch.func.vmap over this backward (as torch.func.jacrev does): autograd does
        # not track tensors made leaves inside vmap, torch.func's own vjp does
        return _composite_vjp(composite, args, wanted, G)
    with torch.enable_grad():
        leaves = list(args)
        for i in wanted:
            leaves[i] = args[i] if args[i].requires_grad else args[i].detach().requires_grad_()
        loss = composite(*leaves)
        grads = torch.autograd.grad(
            loss,
            [leaves[i] for i in wanted],
            G,
            create_graph=torch.is_grad_enabled(),
            allow_unused=True,
        )
    out: list[Any] = [None] * len(args)
    for i, g in zip(wanted, grads, strict=True):
        out[i] = g if g is not None else torch.zeros_like(args[i])
    return tuple(out)


def _composite_vjp(
    composite: Callable[..., Tensor], args: list[Any], wanted: list[int], G: Tensor
) -> tuple[Any, ...]:
    def of_wanted(*values: Tensor) -> Tensor:
        full = list(args)
        for i, v in zip(wanted, values, strict=True):
            full[i] = v
        return composite(*full)

    _, vjp = torch.func.vjp(of_wanted, *(args[i] for i in wanted))  # type: ignore[misc]
    out: list[Any] = [None] * len(args)
    for i, g in zip(wanted, vjp(G), strict=True):
        out[i] = g
    return tuple(out)


def _cross_entropy_grad(ctx: Any, G: Tensor):
    args, _ = _restore_inputs(ctx)
    if torch.is_grad_enabled() or any(ctx.needs_input_grad[1:]):
        return _composite_grads(ctx, _cross_entropy_composite, args, G)
    return (_OPS.cross_entropy_backward(G, *args),) + (None,) * (len(args) - 1)


def _cross_entropy_backward_composite(grad: Tensor, logits: Tensor, *options: Any) -> Tensor:
    with torch.enable_grad():
        x = logits if logits.requires_grad else logits.detach().requires_grad_()
        loss = _cross_entropy_composite(x, *options)
        (dx,) = torch.autograd.grad(loss, x, grad, create_graph=True)
    return dx


def _cross_entropy_backward_grad(ctx: Any, G: Tensor):
    args, _ = _restore_inputs(ctx)
    return _composite_grads(ctx, _cross_entropy_backward_composite, args, G)


def _bce_grad(ctx: Any, G: Tensor, _unused: Any):
    args, dx = _restore_inputs(ctx)
    others = any(ctx.needs_input_grad[1:])
    if torch.is_grad_enabled() or others or dx is None or dx.numel() == 0:
        return _composite_grads(ctx, _bce_composite, args, G)
    return (G * dx,) + (None,) * (len(args) - 1)


def _nll_grad(ctx: Any, G: Tensor):
    args, _ = _restore_inputs(ctx)
    return _composite_grads(ctx, _nll_composite, args, G)


_differentiable("cross_entropy", _cross_entropy_grad, _loss_setup)
_differentiable("cross_entropy_backward", _cross_entropy_backward_grad, _loss_setup)
_differentiable("binary_cross_entropy_with_logits", _bce_grad, _loss_setup)
_differentiable("nll_loss", _nll_grad, _loss_setup)


# --- the same losses in torch operations (double backward, other devices) ---------------------


def _zero(x: Tensor) -> Tensor:
    return torch.zeros((), dtype=x.dtype, device=x.device)


def _mean(total: Tensor, count: Tensor) -> Tensor:
    """``total / count``, NaN where ``count == 0``; its gradient is then 0 (as torch's)."""
    empty = count == 0
    safe = torch.where(empty, torch.ones_like(count), count)
    return torch.where(empty, torch.full_like(total, math.nan), total / safe)


def _nll_rows(logp: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int):
    """``(rows, kept, kept_weight)`` of the NLL of class indices, 0 on ignored rows."""
    kept = target != ignore_index
    safe = torch.where(kept, target, torch.zeros_like(target))
    picked = torch.gather(logp, -1, safe.unsqueeze(-1)).squeeze(-1)
    w_t = torch.ones_like(picked) if weight is None else weight[safe]
    w_t = torch.where(kept, w_t, _zero(w_t))
    # 0 - w log p: a certain class costs +0, not -0; a zero weight makes 0 * log 0 = 0
    # but keeps a NaN log-probability NaN (torch's 0 * NaN); ignored rows cost 0
    zero = _zero(picked)
    absent = torch.where(kept & torch.isnan(picked), picked, zero)
    rows = torch.where(w_t == 0, absent, zero - w_t * picked)
    return rows, kept, w_t


def _log_probs(x: Tensor) -> Tensor:
    """Log-softmax over the last axis whose gradient is that of the losses' other paths.

    Off the operators, ``torch.log_softmax`` with the core's edge cases restored as
    constants: a row whose max is +inf shares its mass among its +inf entries, an all
    -inf row is -inf.  (The core's portable log-softmax restores them with ``where``
    over its result, which cut the gradient of a finite row whose shifted entries
    overflowed, e.g. ``[-1e308, 1e308]``.)  Infinite logits are constants there, as
    autograd sees them: target mass on a -inf logit then drops out of the gradient.
    """
    if _operators(x):
        logp = _call("log_softmax", x, [x.dim() - 1], 1.0)
    else:
        m = torch.amax(x.detach(), dim=-1, keepdim=True)
        zero = _zero(x)
        neg_inf = torch.full((), -math.inf, dtype=x.dtype, device=x.device)
        posinf, empty = m == math.inf, m == -math.inf
        finite = ~(posinf | empty | torch.isnan(m))
        z = torch.where(posinf, torch.where(x == math.inf, zero, neg_inf), x)
        z = torch.where(empty, zero, z)
        # z - m - log1p(r), r = sum(exp(z - m)) - 1 formed without the sum (each max
        # entry adds exp(0) - 1 = 0 by value, exp(0) to the gradient): torch.log_softmax's
        # log of the sum loses the log-probability of a confident row (1 + 3e-10 rounds)
        shifted = z - torch.where(finite, m, zero)
        e = torch.exp(shifted)
        top = shifted == 0
        r = torch.sum(torch.where(top, e - 1, e), dim=-1, keepdim=True)
        r = r + (torch.sum(top, dim=-1, keepdim=True).to(x.dtype) - 1)
        logp = torch.where(finite, shifted - torch.log1p(r), torch.log_softmax(z, dim=-1))
        logp = torch.where(empty, neg_inf, logp)
    return torch.where(x == -math.inf, logp.detach(), logp)


def _cross_entropy_composite(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    z_loss: float,
    softcap: float | None,
) -> Tensor:
    """Cross-entropy of 2-D ``logits`` (classes last) in torch operations."""
    x = logits if softcap is None else softcap * torch.tanh(logits / softcap)
    logp = _log_probs(x)
    eps, n_classes = label_smoothing, x.shape[-1]
    w = torch.ones(n_classes, dtype=x.dtype, device=x.device) if weight is None else weight
    zero = _zero(x)
    if target.is_floating_point():
        q = ((1 - eps) * target + eps / n_classes) * w
        # 0 * log 0 = 0, but NaN stays NaN (torch's 0 * NaN, every class read)
        absent = torch.where(torch.isnan(logp), logp, zero)
        rows = torch.sum(torch.where(q == 0, absent, zero - q * logp), dim=-1)
        kept = torch.ones(rows.shape, dtype=torch.bool, device=x.device)
        denominator = torch.full((), float(rows.numel()), dtype=x.dtype, device=x.device)
    else:
        rows, kept, w_t = _nll_rows(logp, target, weight, ignore_index)
        rows = (1 - eps) * rows if eps else rows
        if eps:
            # each class's share eps / C * w multiplied in before the sum, as the other
            # paths do: the sum of bare log-probabilities near the largest float overflows
            u = (eps / n_classes) * w
            absent = torch.where(torch.isnan(logp), logp, zero)
            smooth = torch.sum(torch.where(u == 0, absent, zero - u * logp), dim=-1)
            rows = rows + torch.where(kept, smooth, zero)
        denominator = torch.sum(w_t)
    z_rows = None
    if z_loss:
        lse = _logsumexp_rows(x)
        # (z lse) lse rather than z lse**2: the square overflows (to inf, and its
        # gradient 2 lse to inf or 0 * inf = NaN) where lse ~ 1e308 and the z-loss
        # gradient 2 z lse p is still finite, as the other paths give it
        z_rows = torch.where(kept, (z_loss * lse) * lse, _zero(x))
    if reduction == "none":
        return rows if z_rows is None else rows + z_rows
    if reduction == "sum":
        return rows.sum() if z_rows is None else rows.sum() + z_rows.sum()
    loss = _mean(rows.sum(), denominator)
    if z_rows is not None:
        loss = loss + _mean(z_rows.sum(), torch.sum(kept.to(x.dtype)))
    return loss


def _logsumexp_rows(x: Tensor) -> Tensor:
    if _operators(x):
        return _call("logsumexp", x, [x.dim() - 1]).squeeze(-1)
    # m + log(sum(exp(x - m))) with the max m a constant (lse does not move with it), so
    # that the gradient is exp(x - m) / sum, exact: torch.logsumexp's exp(x - lse) is 1
    # at each of two entries 1e308, where m + log 2 rounds to m.  A +inf or all -inf
    # row is a constant (gradient 0), as on the other paths (see _log_probs).
    m = torch.amax(x.detach(), dim=-1, keepdim=True)
    finite = torch.isfinite(m)
    shifted = torch.where(finite, x - torch.where(finite, m, _zero(x)), _zero(x))
    lse = m + torch.log(torch.sum(torch.exp(shifted), dim=-1, keepdim=True))
    return torch.where(finite, lse, m).squeeze(-1)


def _nll_composite(log_probs, target, weight, ignore_index, reduction):
    rows, _, w_t = _nll_rows(log_probs, target, weight, ignore_index)
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    return _mean(rows.sum(), w_t.sum())


def _bce_composite(logits, target, weight, pos_weight, reduction, need_grad=False):
    import torch.nn.functional as F

    softplus_x = -F.logsigmoid(-logits)
    softplus_neg_x = -F.logsigmoid(logits)
    positive = target * softplus_neg_x
    if pos_weight is not None:
        positive = pos_weight * positive
    loss = (1 - target) * softplus_x + positive
    if weight is not None:
        loss = weight * loss
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return _mean(
        loss.sum(), torch.full((), float(loss.numel()), dtype=loss.dtype, device=loss.device)
    )


# --- the losses' torch entry points -----------------------------------------------------------


def loss_input(x: Tensor) -> Tensor:
    """A loss's logits as the loss computes them: float32 under autocast (for every path).

    PyTorch's autocast policy runs its losses in float32; low-precision logits are cast.
    """
    if isinstance(x, Tensor) and x.is_floating_point() and x.element_size() < 4:
        if _autocast_enabled(x.device.type):
            return x.float()
    return x


def _autocast_enabled(device: str) -> bool:
    return bool(torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device))


def _wants_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _as_tensor(value: Any, name: str, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value.to(like.device)
    try:
        return torch.as_tensor(np.asarray(value), device=like.device)
    except (TypeError, ValueError) as exc:
        raise SoftmaxkitTypeError(
            f"`{name}` must be an array of real numbers; got {type(value).__name__}"
        ) from exc


def cross_entropy(logits: Any, target: Any, *, need_grad: bool, **options: Any) -> Any:
    """``(loss, dlogits or None)`` through the operator, or None for the portable path.

    ``need_grad`` asks for the gradient as a tensor (``cross_entropy_grad``); without
    it the loss is differentiable by autograd.
    """
    from .._options import (
        check_class_axis,
        check_ignore_index,
        check_label_smoothing,
        check_reduction,
    )

    device_path = _on_device(logits)
    if not (_operators(logits) or device_path) or logits.dim() == 0:
        return None
    axis = check_class_axis(options["axis"], logits.dim())
    reduction = check_reduction(options["reduction"])
    ignore = check_ignore_index(options["ignore_index"])
    eps = check_label_smoothing(options["label_smoothing"])
    z_loss, softcap = options["z_loss"], options["softcap"]
    if not _plain_number(z_loss) or (softcap is not None and not _plain_number(softcap)):
        return None  # the portable path words the error
    if z_loss < 0 or (softcap is not None and softcap <= 0):
        return None  # out of range: likewise, even on an empty input (no NaN to see)
    target = _as_tensor(target, "target", logits)
    fits, weight = _class_weight(options["weight"], logits, axis)
    if not fits:
        return None
    soft = target.is_floating_point()
    if target.dtype == torch.bool or (soft and target.shape != logits.shape):
        return None
    if soft and target.element_size() < 4:
        # its sum is checked at the 16-bit tolerance, which a cast to the logits' dtype
        # would lose: the portable path (which reads the target on the host) serves it
        return None
    if not soft and target.shape != logits.shape[:axis] + logits.shape[axis + 1 :]:
        return None
    if logits.shape[axis] == 0:
        return None  # no classes: the portable path words it (rows cannot be -1 by C)
    row_shape = logits.shape[:axis] + logits.shape[axis + 1 :]
    x = logits.movedim(axis, -1).reshape(-1, logits.shape[axis])
    t = target.movedim(axis, -1).reshape(x.shape).to(x.dtype) if soft else _indices(target)
    settings = (t, weight, ignore, reduction, eps, float(z_loss), _float_or_none(softcap))
    if device_path:
        if soft:
            _check_probabilities_on_device(t)
        else:
            _check_indices_on_device(t, x.shape[-1], ignore, "target")
        return _composite_loss(_cross_entropy_composite, x, settings, need_grad, row_shape, axis)
    loss = _call("cross_entropy", x, *settings)
    if reduction == "none":
        loss = loss.reshape(row_shape)
    if not need_grad:
        return loss, None
    upstream = torch.ones((), dtype=x.dtype, device=x.device)
    if reduction == "none":
        upstream = torch.ones(x.shape[:1], dtype=x.dtype, device=x.device)
    dx = _OPS.cross_entropy_backward(upstream, x.detach(), *settings)
    dlogits = dx.reshape(*row_shape, logits.shape[axis]).movedim(-1, axis)
    return loss.detach(), dlogits


def _indices(target: Tensor) -> Tensor:
    """Class indices as int64 rows: torch's gather and indexing refuse int8/int16/uint8."""
    flat = target.reshape(-1)
    return flat if flat.dtype == torch.int64 else flat.to(torch.int64)


def _class_weight(weight: Any, like: Tensor, axis: int) -> tuple[bool, Tensor | None]:
    """``(fits, weight)``: ``weight`` as a tensor of ``like``'s dtype, one entry per class.

    ``fits`` is False for any other shape, which the portable path words the error for.
    """
    if weight is None:
        return True, None
    weight = _as_tensor(weight, "weight", like)
    if weight.dim() != 1 or weight.shape[0] != like.shape[axis]:
        return False, None
    return True, weight.to(like.dtype)


def _on_device(x: Tensor) -> bool:
    """Whether ``x`` takes the device path: the losses in torch operations, no host sync.

    Tensors on a GPU (or any device but the CPU) whose dtype the operators do not
    serve on the CPU either; and every tensor when the tests force the "fused" path.
    """
    if path() == "fused":
        return True
    return path() == "auto" and not (x.is_cpu or x.is_meta)


def _composite_loss(
    composite: Callable[..., Tensor],
    x: Tensor,
    settings: tuple[Any, ...],
    need_grad: bool,
    row_shape: Sequence[int],
    axis: int,
) -> tuple[Tensor, Tensor | None]:
    """The device path of a loss of 2-D logits: autograd of ``composite``."""
    loss, dx = _loss_and_grad(composite, x, settings, need_grad)
    loss = loss.reshape(row_shape) if loss.dim() else loss
    if dx is None:
        return loss, None
    return loss, dx.reshape(*row_shape, x.shape[-1]).movedim(-1, axis)


def _loss_and_grad(
    composite: Callable[..., Tensor], x: Tensor, settings: tuple[Any, ...], need_grad: bool
) -> tuple[Tensor, Tensor | None]:
    """``composite(x, *settings)``, and with ``need_grad`` the gradient of its sum."""
    if not need_grad:
        return composite(x, *settings), None
    if _wrapped(x) or any(isinstance(a, Tensor) and _wrapped(a) for a in settings):
        # inside a torch.func transform (vmap, grad) a tensor cannot be made a leaf
        # (requires_grad_); torch.func's own vjp differentiates there
        # (torch.func.vjp's stubs allow for has_aux's third value)
        loss, vjp = torch.func.vjp(  # type: ignore[misc]
            lambda a: composite(a, *settings), x.detach()
        )
        (dx,) = vjp(torch.ones_like(loss))
        return loss, dx
    with torch.enable_grad():
        leaf = x.detach().requires_grad_()
        loss = composite(leaf, *settings)
        (dx,) = torch.autograd.grad(loss, leaf, torch.ones_like(loss))
    return loss.detach(), dx


def _check_indices_on_device(t: Tensor, n_classes: int, ignore: int, name: str) -> None:
    ok = ((t >= 0) & (t < n_classes)) | (t == ignore)
    check(ok, f"`{name}` must be in [0, {n_classes}) or {ignore}")


def _check_probabilities_on_device(t: Tensor, axis: int = -1) -> None:
    from .._losses import _SUM_TOLERANCE

    tolerance = _SUM_TOLERANCE[max(2, min(8, t.element_size()))]
    total = torch.sum(t.double() if t.element_size() >= 4 else t.float(), dim=axis)
    ok = torch.all(t >= 0) & torch.all(torch.abs(total - 1) <= tolerance)
    check(
        ok,
        "`target` probabilities must be >= 0 and sum to 1 along `axis` "
        f"(within {tolerance:g} for {t.dtype})",
    )


def _check_unit_interval_on_device(t: Tensor) -> None:
    check((t >= 0) & (t <= 1), "`target` must be probabilities in [0, 1]")


def check_target(
    target: Tensor, *, n_classes: int | None = None, ignore_index: int = 0, axis: int | None = -1
) -> None:
    """The portable losses' check of a target whose values the host cannot read.

    Class indices when ``n_classes`` is given, else probabilities along ``axis``
    (``axis=None``: binary targets in [0, 1]); see :func:`._torch.check`.
    """
    if n_classes is not None:
        _check_indices_on_device(target, n_classes, ignore_index, "target")
    elif axis is None:
        _check_unit_interval_on_device(target)
    else:
        _check_probabilities_on_device(target, axis)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _plain_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def nll_loss(log_probs: Any, target: Any, **options: Any) -> Tensor | None:
    from .._options import check_class_axis, check_ignore_index, check_reduction

    device_path = _on_device(log_probs)
    if not (_operators(log_probs) or device_path) or log_probs.dim() == 0:
        return None
    axis = check_class_axis(options["axis"], log_probs.dim())
    reduction = check_reduction(options["reduction"])
    ignore = check_ignore_index(options["ignore_index"])
    target = _as_tensor(target, "target", log_probs)
    row_shape = log_probs.shape[:axis] + log_probs.shape[axis + 1 :]
    if target.is_floating_point() or target.dtype == torch.bool or target.shape != row_shape:
        return None
    fits, weight = _class_weight(options["weight"], log_probs, axis)
    if not fits:
        return None
    if log_probs.shape[axis] == 0:
        return None  # no classes: the portable path words it
    x = log_probs.movedim(axis, -1).reshape(-1, log_probs.shape[axis])
    if device_path:
        _check_indices_on_device(target, x.shape[-1], ignore, "target")
        settings = (_indices(target), weight, ignore, reduction)
        return _composite_loss(_nll_composite, x, settings, False, row_shape, axis)[0]
    loss = _call("nll_loss", x, target.reshape(-1), weight, ignore, reduction)
    return loss.reshape(row_shape) if reduction == "none" else loss


def binary_cross_entropy_with_logits(
    logits: Any, target: Any, *, need_grad: bool, weight: Any, pos_weight: Any, reduction: Any
) -> Any:
    from .._options import check_reduction

    device_path = _on_device(logits)
    if not (_operators(logits) or device_path):
        return None
    reduction = check_reduction(reduction)
    target = _as_tensor(target, "target", logits)
    if target.shape != logits.shape:
        return None
    extras = []
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is not None:
            value = _as_tensor(value, name, logits)
            try:
                fits = torch.broadcast_shapes(value.shape, logits.shape) == logits.shape
            except RuntimeError:  # not broadcastable at all
                fits = False
            if not fits:
                return None  # the portable path words the error
            value = value.to(logits.dtype)
        extras.append(value)
    t = target.to(logits.dtype)
    if device_path:
        _check_unit_interval_on_device(t)
        return _loss_and_grad(_bce_composite, logits, (t, *extras, reduction), need_grad)
    grad_needed = need_grad or _wants_grad(logits, t, *extras)
    loss, dx = _call(
        "binary_cross_entropy_with_logits", logits, t, extras[0], extras[1], reduction, grad_needed
    )
    return (loss.detach(), dx) if need_grad else (loss, None)
