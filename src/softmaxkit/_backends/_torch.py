"""The PyTorch backend: softmaxkit's primitives as ``torch.library`` operators.

On CPU tensors of float32 and float64 each primitive is an operator of the
``softmaxkit`` namespace (``torch.ops.softmaxkit.softmax`` and so on) whose CPU
kernel runs the compiled C kernels on the tensor's own memory.  Each operator
has, registered beside it,

* a fake implementation (output shapes only), so that ``meta`` tensors,
  ``torch.compile`` and ``torch.library.opcheck`` see through it;
* an autograd formula, itself written with operators that have formulas of their
  own, so that double backward works (``gradgradcheck``);
* a batching rule for ``torch.func.vmap``.

Every check of a target's values (class indices in range, probabilities that sum
to 1) happens inside an operator's CPU kernel, where the values are at hand, as
PyTorch's own losses check them; the Python around the operators looks only at
shapes, dtypes and options, so ``torch.compile(fullgraph=True)`` and
``torch.func`` trace it.

The losses' operators are in :mod:`._torch_losses`, which this module imports at
its end, and ``linear_cross_entropy``'s in :mod:`._torch_linear_ce`.

Tensors on other devices run PyTorch's own fused ``torch.softmax`` with the
core's edge cases restored by arithmetic, or the portable array-API code; their
losses are written in torch operations and check targets with device-side
assertions.  Nothing there synchronises with the host.

Where nothing observes a call (no gradient due, no tracing, no ``torch.func``
transform or dispatch mode) the CPU kernel is called without the dispatcher's
round trip, and large outputs come from the kernels' cache of freed buffers
(``softmaxkit._kernels.empty``).

The operators are defined with ``torch.library.Library`` rather than the
``torch.library.custom_op`` decorator: measured on (256, 10) float32, the
decorator's Python wrapper took 20 us a call where the plain registration took
10 (``torch.softmax`` itself: 27 us on the 2-core machine we measure on).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake

from .. import _kernels
from .._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._paths import UsePath

__all__ = [
    "NAME",
    "PATHS",
    "batched",
    "binary_cross_entropy_with_logits",
    "check",
    "check_target",
    "cross_entropy",
    "has_values",
    "host_array",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "loss_input",
    "nll_loss",
    "path",
    "softmax",
    "softmax_backward",
    "use_path",
]

NAME = "torch"

Axes = tuple[int, ...]

# How CPU float tensors are served: "auto" (operators where the kernels are built,
# else PyTorch's functions), or forced, for the tests that run every path.
PATHS = ("auto", "operators", "fused", "portable")
_path = "auto"


def path() -> str:
    return _path


def use_path(name: str) -> UsePath:
    """``with use_path("fused"): ...`` runs torch tensors on one path (for tests)."""
    return UsePath(sys.modules[__name__], PATHS, name)


_FLOATS = (torch.float32, torch.float64)
_F64 = torch.float64
# the extension (None where it was not built: the operators are then never called)
_C: Any = _kernels._C


def _operators(x: Tensor) -> bool:
    """Whether ``x`` is served by the kernel operators."""
    if _path == "auto":
        # meta tensors take the operators too: their fake implementations give the shapes
        return (x.is_cpu or x.is_meta) and x.dtype in _FLOATS and _kernels.enabled()
    return _path == "operators"


def _fused(x: Tensor) -> bool:
    """Whether ``x`` is served by PyTorch's fused functions (with edge fix-ups)."""
    return _path == "fused" or (_path == "auto" and not _operators(x))


# --- the CPU kernels on tensor memory --------------------------------------------------------

_SOFTMAX, _LOG_SOFTMAX, _LOGSUMEXP = 0, 1, 2


def _span(shape: Sequence[int], dims: Sequence[int]) -> tuple[int, int, int]:
    """``(outer, n, inner)`` of a C-contiguous array reduced over neighbouring ``dims``."""
    first, last = dims[0], dims[-1]
    return (
        math.prod(shape[:first]),
        math.prod(shape[first : last + 1]),
        math.prod(shape[last + 1 :]),
    )


def _check_neighbours(dims: Sequence[int], ndim: int) -> list[int]:
    out = sorted(d % ndim for d in dims) if ndim else []
    if not out or out[-1] - out[0] + 1 != len(out):
        raise SoftmaxkitValueError(
            f"`dims` of a softmaxkit operator must be neighbouring axes; got {list(dims)}"
        )
    return out


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
_LARGE = 1 << 20  # bytes


def _empty(shape: Sequence[int], like: Tensor) -> Tensor:
    """An uninitialised CPU tensor; large ones from the kernels' output cache.

    That memory is NumPy's, reused once freed (see ``softmaxkit._kernels.empty``); a
    fresh large tensor from torch's allocator costs a zeroing pass by the operating
    system on first touch (4.4 times a copy for a (4096, 32000) float32 softmax where
    a reused buffer took 1.35).
    """
    if math.prod(shape) * like.element_size() < _LARGE:
        return like.new_empty(shape)
    return torch.from_numpy(_kernels.empty(tuple(shape), _NUMPY_DTYPES[like.dtype]))


def _kernel_forward(x: Tensor, dims: list[int], temperature: float, op: int) -> Tensor:
    ndim = x.dim()
    if len(dims) == 1 and dims[0] in (-1, ndim - 1) and ndim and x.is_contiguous():
        # the common case, kept cheap for small tensors: the last axis of a contiguous one
        n = x.shape[-1]
        count = x.numel()
        outer, inner = (count // n if n else 0), 1
        last = [ndim - 1]
    else:
        last = _check_neighbours(dims, ndim)
        x = x.contiguous()
        outer, n, inner = _span(x.shape, last)
        count = x.numel()
    if op == _LOGSUMEXP:
        out = x.new_empty([1 if i in last else k for i, k in enumerate(x.shape)])
    else:
        out = _empty(x.shape, x)
    if count and out.numel():
        _C.forward_ptr(
            x.data_ptr(), out.data_ptr(), outer, n, inner, temperature, op, x.dtype is _F64
        )
    return out


def _kernel_backward(g: Tensor, y: Tensor, dims: list[int], log: bool) -> Tensor:
    dims = _check_neighbours(dims, y.dim())
    g, y = g.contiguous(), y.contiguous()
    dx = _empty(y.shape, y)
    if y.numel():
        outer, n, inner = _span(y.shape, dims)
        _C.backward_ptr(
            g.data_ptr(),
            y.data_ptr(),
            dx.data_ptr(),
            outer,
            n,
            inner,
            log,
            y.dtype is _F64,
        )
    return dx


def _posinf_slices(x: Tensor, dims: list[int]) -> Tensor | None:
    """Per slice (dims kept), whether its max is ``+inf``; None when no slice's is (one max)."""
    if x.numel() == 0:
        return None
    # fmax skips NaN, which would hide a +inf from max (a slice of NaN and +inf has
    # max NaN, and keeps its NaN gradient, as on the portable path)
    if not np.isposinf(np.fmax.reduce(x.detach().numpy(), axis=None)):
        return None
    return torch.isposinf(torch.amax(x, dim=dims, keepdim=True))


# --- operator definitions --------------------------------------------------------------------

_LIB: torch.library.Library = torch.library.Library("softmaxkit", "DEF")
_LIB.define("softmax(Tensor x, int[] dims, float temperature) -> Tensor")
_LIB.define("log_softmax(Tensor x, int[] dims, float temperature) -> Tensor")
_LIB.define("logsumexp(Tensor x, int[] dims) -> Tensor")
_LIB.define("softmax_backward(Tensor grad, Tensor p, int[] dims) -> Tensor")
_LIB.define("log_softmax_backward(Tensor grad, Tensor logp, int[] dims) -> Tensor")
# The gradients that autograd uses: the backward products with the slices whose max
# is +inf (where the output is constant) given gradient 0, as the portable path has it.
_LIB.define("softmax_vjp(Tensor grad, Tensor p, Tensor x, int[] dims, float temperature) -> Tensor")
_LIB.define(
    "log_softmax_vjp(Tensor grad, Tensor logp, Tensor x, int[] dims, float temperature) -> Tensor"
)
_OPS = torch.ops.softmaxkit


_CPU_KERNELS: dict[str, Callable[..., Any]] = {}


def _impl(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _LIB.impl(name, fn, "CPU")
        _CPU_KERNELS[name] = fn
        return fn

    return register


def _fake(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        torch.library.register_fake(f"softmaxkit::{name}", fn, lib=_LIB)
        return fn

    return register


@_impl("softmax")
def _softmax_cpu(x: Tensor, dims: list[int], temperature: float) -> Tensor:
    return _kernel_forward(x, dims, temperature, _SOFTMAX)


@_impl("log_softmax")
def _log_softmax_cpu(x: Tensor, dims: list[int], temperature: float) -> Tensor:
    return _kernel_forward(x, dims, temperature, _LOG_SOFTMAX)


@_impl("logsumexp")
def _logsumexp_cpu(x: Tensor, dims: list[int]) -> Tensor:
    return _kernel_forward(x, dims, 1.0, _LOGSUMEXP)


@_impl("softmax_backward")
def _softmax_backward_cpu(grad: Tensor, p: Tensor, dims: list[int]) -> Tensor:
    return _kernel_backward(grad, p, dims, False)


@_impl("log_softmax_backward")
def _log_softmax_backward_cpu(grad: Tensor, logp: Tensor, dims: list[int]) -> Tensor:
    return _kernel_backward(grad, logp, dims, True)


def _vjp_cpu(grad: Tensor, y: Tensor, x: Tensor, dims: list[int], t: float, log: bool) -> Tensor:
    dx = _kernel_backward(grad, y, dims, log)
    if t != 1.0:
        dx.div_(t)
    posinf = _posinf_slices(x, _check_neighbours(dims, x.dim()))
    if posinf is not None:
        dx.masked_fill_(posinf, 0.0)
    return dx


@_impl("softmax_vjp")
def _softmax_vjp_cpu(grad: Tensor, p: Tensor, x: Tensor, dims: list[int], t: float) -> Tensor:
    return _vjp_cpu(grad, p, x, dims, t, False)


@_impl("log_softmax_vjp")
def _log_softmax_vjp_cpu(grad: Tensor, logp: Tensor, x: Tensor, dims: list[int], t: float):
    return _vjp_cpu(grad, logp, x, dims, t, True)


def _shaped_like(position: int) -> Callable[..., Tensor]:
    """A fake implementation whose output has the shape of argument ``position``."""

    def fake(*args: Any) -> Tensor:
        return args[position].new_empty(args[position].shape)

    return fake


for _name, _position in (
    ("softmax", 0),
    ("log_softmax", 0),
    ("softmax_backward", 1),
    ("log_softmax_backward", 1),
    ("softmax_vjp", 1),
    ("log_softmax_vjp", 1),
):
    _fake(_name)(_shaped_like(_position))


@_fake("logsumexp")
def _(x, dims):
    dims = [d % x.dim() for d in dims]
    return x.new_empty([1 if i in dims else k for i, k in enumerate(x.shape)])


# --- autograd formulas -----------------------------------------------------------------------
#
# With p = softmax(x / T) and g' = g where p > 0 (else 0), s = sum(g' p):
#   softmax_backward(g, p) = p (g' - s)
#   d/dg: softmax_backward(G, p);  d/dp: G (g' - s) - g' sum(G p)
# With y = log_softmax(x / T) and g' = g where y > -inf, S = sum(g'):
#   log_softmax_backward(g, y) = g' - exp(y) S
#   d/dg: G' - sum(G exp(y)) (G' = G where y > -inf);  d/dy: -G exp(y) S


def _masked(g: Tensor, keep: Tensor) -> Tensor:
    return torch.where(keep, g, torch.zeros((), dtype=g.dtype, device=g.device))


def _softmax_backward_grads(G: Tensor, g: Tensor, p: Tensor, dims: list[int]):
    gm = _masked(g, p != 0)
    s = torch.sum(gm * p, dim=dims, keepdim=True)
    dg = _call("softmax_backward", G, p, dims)
    dp = G * (gm - s) - gm * torch.sum(G * p, dim=dims, keepdim=True)
    return dg, dp


def _log_softmax_backward_grads(G: Tensor, g: Tensor, y: Tensor, dims: list[int]):
    keep = y != -math.inf
    e = torch.exp(y)
    dg = _masked(G - torch.sum(G * e, dim=dims, keepdim=True), keep)
    dy = -G * e * torch.sum(_masked(g, keep), dim=dims, keepdim=True)
    return dg, dy


def _save_inputs_and_output(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    tensors = [a for a in inputs if isinstance(a, Tensor)]
    ctx.save_for_backward(*tensors, output)
    ctx.options = [a for a in inputs if not isinstance(a, Tensor)]


def _softmax_grad(ctx: Any, G: Tensor):
    x, p = ctx.saved_tensors
    dims, t = ctx.options
    return _call("softmax_vjp", G, p, x, dims, t), None, None


def _log_softmax_grad(ctx: Any, G: Tensor):
    x, y = ctx.saved_tensors
    dims, t = ctx.options
    return _call("log_softmax_vjp", G, y, x, dims, t), None, None


def _logsumexp_grad(ctx: Any, G: Tensor):
    x, lse = ctx.saved_tensors
    (dims,) = ctx.options
    # d lse / dx = softmax(x); 0 on slices holding +inf (lse = +inf), whose value is constant
    G = _masked(G, lse != math.inf)
    return G * _call("softmax", x, dims, 1.0), None


def _vjp_grad(ctx: Any, G: Tensor, log: bool):
    g, y, x, _ = ctx.saved_tensors
    dims, t = ctx.options
    posinf = torch.isposinf(torch.amax(x, dim=dims, keepdim=True))
    G = _masked(G, ~posinf) / t
    g = _masked(g, ~posinf)
    grads = (_log_softmax_backward_grads if log else _softmax_backward_grads)(G, g, y, dims)
    return grads[0], grads[1], None, None, None


def _backward_grad(ctx: Any, G: Tensor, log: bool):
    g, y, _ = ctx.saved_tensors
    (dims,) = ctx.options
    grads = (_log_softmax_backward_grads if log else _softmax_backward_grads)(G, g, y, dims)
    return grads[0], grads[1], None


_FUNCTIONS: dict[str, type[torch.autograd.Function]] = {}


def _differentiable(name: str, backward: Callable[..., Any], setup: Any = None) -> None:
    """Give operator ``name`` its autograd formula, twice over.

    Registered on the operator itself (``torch.library.register_autograd``) for a
    caller of ``torch.ops.softmaxkit``, and as an ``autograd.Function`` with a
    ``setup_context`` (which ``torch.func`` requires, and the generated one lacks)
    for softmaxkit's own calls; ``torch.compile`` traces both.
    """
    setup = setup or _save_inputs_and_output
    op = getattr(_OPS, name)
    torch.library.register_autograd(f"softmaxkit::{name}", backward, setup_context=setup, lib=_LIB)

    def forward(*args: Any) -> Any:
        return op(*args)

    _FUNCTIONS[name] = type(
        f"{name}_function",
        (torch.autograd.Function,),
        {
            "forward": staticmethod(forward),
            "setup_context": staticmethod(setup),
            "backward": staticmethod(backward),
            "generate_vmap_rule": True,
        },
    )


def _call(name: str, *args: Any) -> Any:
    """Operator ``name`` on ``args``, through its autograd Function when a gradient is due.

    Where nothing can be watching (no gradient, no tracing, no ``torch.func`` transform,
    no dispatch or function mode, plain CPU tensors) the CPU kernel is called directly:
    the dispatcher's round trip cost 16 us of a 27 us call on a (256, 10) softmax.
    """
    if torch.is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args):
        return _FUNCTIONS[name].apply(*args)
    if _unobserved(args):
        return _CPU_KERNELS[name](*args)
    return getattr(_OPS, name)(*args)


_wrapped = torch._C._functorch.is_functorch_wrapped_tensor


def _unobserved(args: Sequence[Any]) -> bool:
    if (
        torch.compiler.is_compiling()  # first: dynamo must not see the checks below
        or torch._C._len_torch_dispatch_stack()
        or torch._C._is_torch_function_mode_enabled()
    ):
        return False
    return all(
        type(a) is Tensor and a.is_cpu and not _wrapped(a) for a in args if isinstance(a, Tensor)
    )


_differentiable("softmax", _softmax_grad)
_differentiable("log_softmax", _log_softmax_grad)
_differentiable("logsumexp", _logsumexp_grad)
_differentiable("softmax_backward", lambda ctx, G: _backward_grad(ctx, G, False))
_differentiable("log_softmax_backward", lambda ctx, G: _backward_grad(ctx, G, True))
_differentiable("softmax_vjp", lambda ctx, G: _vjp_grad(ctx, G, False))
_differentiable("log_softmax_vjp", lambda ctx, G: _vjp_grad(ctx, G, True))


# --- batching rules --------------------------------------------------------------------------


def _batched(args: Sequence[Any], in_dims: Sequence[Any], size: int) -> list[Any]:
    """Every tensor argument with its batch dimension first (broadcast where it has none)."""
    out = []
    for a, d in zip(args, in_dims, strict=True):
        if isinstance(a, Tensor):
            a = a.movedim(d, 0) if d is not None else a.unsqueeze(0).expand(size, *a.shape)
        out.append(a)
    return out


def _vmap_shifted(name: str, tensors: int) -> None:
    """A rule for an operator whose first ``tensors`` arguments are tensors, then ``dims``."""
    op = getattr(_OPS, name)

    def rule(info: Any, in_dims: Sequence[Any], *args: Any):
        batched = _batched(args, in_dims, info.batch_size)
        ndim = batched[0].dim() - 1
        batched[tensors] = [d % ndim + 1 for d in batched[tensors]]
        return op(*batched), 0

    torch.library.register_vmap(f"softmaxkit::{name}", rule, lib=_LIB)


def _vmap_by_rows(name: str) -> None:
    """A rule for a loss operator: one call per batch entry (the losses reduce per entry)."""
    op = getattr(_OPS, name)

    def rule(info: Any, in_dims: Sequence[Any], *args: Any):
        batched = _batched(args, in_dims, info.batch_size)
        results = [
            op(*(a[i] if isinstance(a, Tensor) else a for a in batched))
            for i in range(info.batch_size)
        ]
        if isinstance(results[0], Tensor):
            return torch.stack(results), 0
        return tuple(torch.stack(r) for r in zip(*results, strict=True)), (0,) * len(results[0])

    torch.library.register_vmap(f"softmaxkit::{name}", rule, lib=_LIB)


for _name, _count in (
    ("softmax", 1),
    ("log_softmax", 1),
    ("logsumexp", 1),
    ("softmax_backward", 2),
    ("log_softmax_backward", 2),
    ("softmax_vjp", 3),
    ("log_softmax_vjp", 3),
):
    _vmap_shifted(_name, _count)
# --- primitives (called by the public functions after validation) ----------------------------


def _neighbours(x: Tensor, axes: Axes) -> tuple[Tensor, list[int], tuple[int, ...] | None]:
    """``x`` with the reduced ``axes`` made neighbours (moved last when they are not)."""
    if axes[-1] - axes[0] + 1 == len(axes):
        return x, list(axes), None
    rest = tuple(i for i in range(x.dim()) if i not in axes)
    order = rest + axes
    return x.permute(order), list(range(len(rest), x.dim())), order


def _unmove(out: Tensor, order: tuple[int, ...] | None) -> Tensor:
    if order is None:
        return out
    inverse = [0] * len(order)  # in Python: NumPy here would be traced by torch.compile
    for i, axis in enumerate(order):
        inverse[axis] = i
    return out.permute(inverse)


def _all_axes_operator(op_name: str, x: Tensor, axes: Axes, *extra: Any) -> Tensor:
    if not axes:  # every element its own slice: add a reduced axis of length 1
        return _call(op_name, x.unsqueeze(-1), [x.dim()], *extra).squeeze(-1)
    moved, dims, order = _neighbours(x, axes)
    return _unmove(_call(op_name, moved, dims, *extra), order)


def _as(out: Tensor, dtype: Any) -> Tensor:
    return out if out.dtype == dtype else out.to(dtype)


def softmax(x: Tensor, axes: Axes, temperature: float, out_dtype: Any) -> Tensor | None:
    if _operators(x):
        return _as(_all_axes_operator("softmax", x, axes, temperature), out_dtype)
    if _fused(x):
        return _as(_fused_softmax(x, axes, temperature), out_dtype)
    return None


def log_softmax(x: Tensor, axes: Axes, temperature: float, out_dtype: Any) -> Tensor | None:
    if _operators(x):
        return _as(_all_axes_operator("log_softmax", x, axes, temperature), out_dtype)
    return None


def logsumexp(x: Tensor, axes: Axes, out_dtype: Any) -> Tensor | None:
    if _operators(x):
        return _as(_all_axes_operator("logsumexp", x, axes), out_dtype)
    return None


def _pair_operator(name: str, g: Tensor, y: Tensor, axes: Axes, out_dtype: Any) -> Tensor | None:
    if not _operators(y):
        return None
    if not axes:
        return _call(name, g.unsqueeze(-1), y.unsqueeze(-1), [y.dim()]).squeeze(-1)
    gm, dims, order = _neighbours(g, axes)
    ym, _, _ = _neighbours(y, axes)
    return _as(_unmove(_call(name, gm, ym, dims), order), out_dtype)


def softmax_backward(g: Tensor, p: Tensor, axes: Axes, out_dtype: Any) -> Tensor | None:
    return _pair_operator("softmax_backward", g, p, axes, out_dtype)


def log_softmax_backward(g: Tensor, logp: Tensor, axes: Axes, out_dtype: Any) -> Tensor | None:
    return _pair_operator("log_softmax_backward", g, logp, axes, out_dtype)


def _fused_softmax(x: Tensor, axes: Axes, temperature: float) -> Tensor:
    """``torch.softmax`` with the core's edge cases restored by arithmetic, per slice.

    One ``amax`` finds each slice's max ``m``; slices with ``m = +inf`` become
    ``0`` at the ``+inf`` entries and ``-inf`` elsewhere (they share the mass),
    all ``-inf`` slices become zeros and their result 0.  No value is read on the
    host, so nothing synchronises with a device.  A temperature other than 1
    divides ``x - m``, which rounds by its own size (``x / T - max`` would not).
    """
    if not axes:
        return _fused_softmax(x.unsqueeze(-1), (x.dim(),), temperature).squeeze(-1)
    moved, dims, order = _neighbours(x, axes)
    shape = moved.shape
    flat = moved.flatten(dims[0], dims[-1])
    dim = dims[0]
    m = torch.amax(flat.detach(), dim=dim, keepdim=True)
    zero = torch.zeros((), dtype=flat.dtype, device=flat.device)
    neg_inf = torch.full((), -math.inf, dtype=flat.dtype, device=flat.device)
    z = torch.where(m == math.inf, torch.where(flat == math.inf, zero, neg_inf), flat)
    empty = m == -math.inf
    z = torch.where(empty, zero, z)
    if temperature != 1.0:
        z = (z - torch.where(torch.isfinite(m), m, zero)) / temperature
    p = torch.softmax(z, dim=dim)
    p = torch.where(empty, zero, p)
    return _unmove(p.reshape(shape), order)


# --- reading values on the host (the public functions' data-dependent checks) ----------------
#
# A tensor may have no values to read: a meta or fake tensor, any tensor while dynamo
# traces (torch.compile), and a tensor batched by torch.func.vmap, whose Python view is
# one batch entry that vmap refuses to read.  Checks of values then run where they can:
# on the plain tensor under torch.func's wrappers (which holds every batch entry), as a
# device-side assertion inside a compiled graph, and not at all where nothing has values.

_functorch = torch._C._functorch


def _unwrapped(x: Tensor) -> Tensor:
    """``x`` without torch.func's wrappers: the plain tensor holding its values."""
    while _wrapped(x):
        x = _functorch.get_unwrapped(x)
    return x


def _no_values(x: Tensor) -> bool:
    return x.is_meta or bool(is_fake(x))


def batched(x: Tensor) -> bool:
    """Whether ``torch.func.vmap`` batches ``x`` (at any of the levels wrapping it)."""
    while _wrapped(x):
        if _functorch.is_batchedtensor(x):
            return True
        x = _functorch.get_unwrapped(x)
    return False


def has_values(x: Tensor) -> bool:
    """Whether ``x``'s values can be read on the host as it stands (``bool``, ``.item()``).

    False for meta and fake tensors, under ``torch.compile`` and for a tensor that
    ``torch.func.vmap`` batches; a ``torch.func.grad`` wrapper reads as its value.
    """
    if torch.compiler.is_compiling():  # first: dynamo must not see the checks below
        return False
    return not (batched(x) or _no_values(_unwrapped(x)))


def host_array(x: Tensor) -> np.ndarray:
    """A NumPy copy or view of ``x``'s values, also under ``torch.func.grad``.

    grad's wrappers, and plain tensors read while its transform is active, refuse
    ``.numpy()``; their values are read with torch.func set aside.  A tensor batched
    by vmap is not unwrapped (its plain tensor holds every batch entry, not the one
    its caller sees): it, and a meta or fake tensor, is refused with an error of
    softmaxkit's own (functions that compute on the host cannot serve them).
    """
    if torch.compiler.is_compiling():  # dynamo traces .numpy() itself (or breaks the graph)
        return x.detach().cpu().numpy()
    while _wrapped(x):
        if _functorch.is_batchedtensor(x):
            raise SoftmaxkitTypeError(
                "this function computes on the host and cannot run under torch.func.vmap; "
                "got a batched tensor (call it once per batch entry)"
            )
        x = _functorch.get_unwrapped(x)
    if _no_values(x):
        raise SoftmaxkitTypeError(
            "this function computes on the host and needs values; got a "
            f"{'meta' if x.is_meta else 'fake'} tensor of shape {tuple(x.shape)}, which has none"
        )
    with torch._C._DisableFuncTorch():
        return x.detach().cpu().numpy()


def check(ok: Tensor, message: str) -> None:
    """Raise ``SoftmaxkitValueError(message)`` unless ``ok`` is all True, reading no device.

    The check for tensors without host-readable values (see :func:`has_values`), and
    for tensors off the CPU: under ``torch.compile`` a device-side assertion
    (``torch._assert_async``) in the graph, which raises when the graph runs; under
    ``torch.func.vmap`` (on the CPU) the flags of every batch entry, read at once; on
    a GPU a device-side assertion, as PyTorch's own losses check their targets there,
    which fails the next synchronising call rather than this one.  Meta and fake
    tensors have nothing to check.
    """
    if torch.compiler.is_compiling():
        torch._assert_async(torch.all(ok), message)
        return
    flags = _unwrapped(ok)
    if _no_values(flags):
        return
    if flags.is_cpu:
        if not bool(torch.all(flags)):
            raise SoftmaxkitValueError(message)
    else:
        torch._assert_async(torch.all(flags), message)


# --- validation of the core functions' input, in torch operations only -----------------------


def _namespace() -> Any:
    import array_api_compat.torch as xp

    return xp


def prepare(x: Tensor, where: Any) -> tuple[Any, Tensor, Any]:
    """``(xp, x, out_dtype)``: ``x`` in its working dtype with masked entries ``-inf``.

    The checks of :func:`softmaxkit._backend.as_array` and ``validate_where``, with
    their messages, written in torch calls that ``torch.compile`` traces.
    """
    dtype = x.dtype
    if dtype.is_complex:
        raise SoftmaxkitTypeError(f"`x` must be an array of real numbers; got dtype {dtype}")
    if dtype.is_floating_point:
        work = torch.float32 if x.element_size() < 4 else dtype
        out = dtype
    else:
        work = out = torch.get_default_dtype()
    if dtype != work:
        x = x.to(work)
    if where is not None:
        if not isinstance(where, Tensor):
            if type(where).__module__.split(".")[0] not in ("numpy", "builtins"):
                raise SoftmaxkitTypeError(
                    "`where` must be a boolean array of the same library as `x` "
                    f"(torch.Tensor) or a NumPy array; got {type(where).__name__}"
                )
            mask = np.asarray(where)
            if mask.dtype != np.bool_:
                raise SoftmaxkitTypeError(
                    f"`where` must be a boolean array; got dtype {mask.dtype}"
                )
            where = torch.as_tensor(mask, device=x.device)
        else:
            where = where.to(x.device)
        if where.dtype != torch.bool:
            raise SoftmaxkitTypeError(f"`where` must be a boolean array; got dtype {where.dtype}")
        shape = tuple(x.shape)
        try:
            fits = torch.broadcast_shapes(where.shape, x.shape) == x.shape
        except RuntimeError:
            fits = False
        if not fits:
            raise SoftmaxkitValueError(
                f"`where` must broadcast to the shape of `x` {shape}; got shape "
                f"{tuple(where.shape)}"
            )
        x = torch.where(where, x, torch.full((), -math.inf, dtype=work, device=x.device))
    return _namespace(), x, out


# The losses' operators and entry points (they use the helpers above).
from ._torch_losses import (  # noqa: E402
    binary_cross_entropy_with_logits,
    check_target,
    cross_entropy,
    loss_input,
    nll_loss,
)
