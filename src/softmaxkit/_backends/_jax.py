"""The JAX backend: the compiled kernels as XLA custom calls (``jax.ffi``) on CPU, lean
XLA graphs elsewhere.

The kernels of :mod:`softmaxkit._kernels` (the same code the NumPy path runs) are
registered with XLA as FFI handlers of the extension ``_jax_kernels``, and each
primitive here calls them through ``jax.ffi.ffi_call``, so that they run inside a
compiled computation, under the caller's ``jit`` or not, on the arrays' own memory.
Where they do not run (a GPU or TPU; the CPU with the kernels switched off or not
built) the primitives compute with the ``jax.numpy`` formulas of :mod:`._jax_graph`,
which have the kernels' semantics in as few passes as XLA needs.

Derivatives of the custom calls, in two layers:

* first order, by ``jax.custom_vjp``: the forward kernel, then the backward kernel
  (softmax, log_softmax), ``softmax * g`` (logsumexp), or the gradient that the fused
  cross-entropy kernel computed in its one pass (cross-entropy);
* higher orders: every custom call is wrapped in a ``jax.custom_jvp`` whose tangent is
  written in ``jax.numpy`` (the portable formulas), so the forward and backward passes
  above are themselves differentiable: ``jax.hessian`` and ``jacrev(jacrev(f))`` work.
  Forward mode of a first derivative (``jax.jvp`` or ``jax.jacfwd`` of the function
  itself) is what ``custom_vjp`` refuses; the graph path serves it.

The graph path has ``custom_jvp`` rules only (the same tangents; for the cross-entropy
the gradient it computed, dotted with the tangent), so every mode of differentiation
works there.

``jax.vmap`` batches each custom call by ``vmap_method="broadcast_all"``: the batch
becomes a leading dimension that the handlers treat as more rows, no Python loop.

Served: float32 and float64 arrays (``jax_enable_x64`` on or off); the caller's
portable code serves other dtypes and the options neither path has.  The device of a
traced array is not known while tracing: the custom calls are chosen when JAX's
default backend is the CPU.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _kernels
from . import _jax_graph
from ._jax_graph import LOG_SOFTMAX as _LOG_SOFTMAX
from ._jax_graph import LOGSUMEXP as _LOGSUMEXP
from ._jax_graph import SOFTMAX as _SOFTMAX
from ._paths import UsePath

__all__ = [
    "NAME",
    "PATHS",
    "cross_entropy",
    "enabled",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "loss_input",
    "path",
    "serves",
    "softmax",
    "softmax_backward",
    "use_path",
]

NAME = "jax"

_REDUCTIONS = {"none": 0, "sum": 1, "mean": 2}
_registered: bool | None = None
# True while the portable formulas are traced from here (the cross-entropy's rare rows, its
# higher derivatives): their softmax must be the portable one, which forward mode can
# differentiate, not this module's custom_vjp.  Tracing is synchronous: a flag suffices.
_portable_now = False

# How JAX arrays are served: "auto" (the custom calls on CPU where the extension is built
# and the kernels are enabled, the lean graphs of _jax_graph elsewhere), or forced, for
# the tests and the benchmark that run every path ("portable": the array-API code).
PATHS = ("auto", "ffi", "graph", "portable")
_path = "auto"


def path() -> str:
    return _path


def use_path(name: str) -> UsePath:
    """``with use_path("graph"): ...`` runs JAX arrays on one path (tests, benchmark).

    The path is read while tracing: a ``jax.jit`` function keeps the path of its
    first trace.
    """
    return UsePath(sys.modules[__name__], PATHS, name)


def _register() -> bool:
    """Register the handlers with XLA once; False where the extension is missing."""
    global _registered
    if _registered is None:
        module = _kernels.jax_kernels()
        if module is None:
            _registered = False
        else:
            for name, capsule in module.handlers().items():
                jax.ffi.register_ffi_target(name, capsule, platform="cpu")
            _registered = True
    return _registered


def available() -> bool:
    """Whether the FFI extension was built and its handlers are registered."""
    return _register()


def enabled() -> bool:
    """Whether JAX arrays on CPU take the kernels now (``softmaxkit._kernels.enabled()``)."""
    return _kernels.enabled() and _register()


def serves(x: Any) -> bool:
    """Whether ``x`` (a JAX array or tracer) is computed here rather than by the portable path."""
    return not _portable_now and _path != "portable"


def _on_cpu(x: Any) -> bool:
    if isinstance(x, jax.core.Tracer):
        return bool(jax.default_backend() == "cpu")
    try:
        return all(d.platform == "cpu" for d in x.devices())
    except Exception:  # a deleted or otherwise unreadable array: the graph path says why
        return False


def _ffi(x: Any) -> bool:
    """Whether ``x`` takes the custom calls (else the lean graphs of :mod:`._jax_graph`)."""
    if _path == "auto":
        return enabled() and _on_cpu(x)
    return _path == "ffi" and _register()


def _served(*arrays: Any) -> bool:
    return (
        all(a.dtype in (jnp.float32, jnp.float64) for a in arrays)
        and len({a.dtype for a in arrays}) == 1
    )


def loss_input(x: Any) -> Any:
    """A loss's logits as the loss computes them (unchanged)."""
    return x


# --- the custom calls, each differentiable by its portable tangent -------------------------


def _call(name: str, results: Any, *args: Any, **attributes: Any) -> Any:
    return jax.ffi.ffi_call(name, results, vmap_method="broadcast_all")(*args, **attributes)


def _sum1(x: Any) -> Any:
    return jnp.sum(x, axis=1, keepdims=True)


def _ffi_forward(x: Any, t: float, op: int) -> Any:
    """softmax, log_softmax or logsumexp of ``x`` as (outer, n, inner), over axis 1."""
    shape = x.shape if op != _LOGSUMEXP else (x.shape[0], 1, x.shape[2])
    result = jax.ShapeDtypeStruct(shape, x.dtype)
    return _call("softmaxkit_forward", result, x, temperature=np.float64(t), op=np.int32(op))


def _with_tangents(primal: Any) -> Any:
    """``primal(x, t, op)`` as a ``custom_jvp`` whose tangents are the portable formulas.

    The custom call has no derivative of its own, and the lean graph's formulas (a max
    left out by position) are not what autodiff should see; both get these tangents,
    written with the function itself, so that they are differentiable again.
    """

    @functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
    def forward(x: Any, t: float, op: int) -> Any:
        return primal(x, t, op)

    @forward.defjvp
    def forward_jvp(t: float, op: int, primals: Any, tangents: Any) -> Any:
        (x,), (dx,) = primals, tangents
        y = forward(x, t, op)
        zero = jnp.zeros((), dx.dtype)
        if op == _LOGSUMEXP:
            p = forward(x, 1.0, _SOFTMAX)
            return y, jnp.where(y == jnp.inf, zero, _sum1(p * dx))
        # slices holding +inf are constants (their entries share the mass whatever x is)
        dz = jnp.where(_posinf(x), zero, dx / t)
        if op == _SOFTMAX:
            return y, y * (dz - _sum1(y * dz))
        return y, jnp.where(y == -jnp.inf, zero, dz - _sum1(jnp.exp(y) * dz))

    return forward


_forward = _with_tangents(_ffi_forward)
# The graph path: forward mode, reverse mode (the tangents transposed) and higher orders
# all come from the tangents; no custom_vjp, no backward kernel.
_graph_forward = _with_tangents(lambda x, t, op: _jax_graph.forward(x, t, op))


def _backward_portable(g: Any, y: Any, log: bool) -> Any:
    """The formulas of :mod:`softmaxkit._derivatives`, reduced over axis 1."""
    zero = jnp.zeros((), g.dtype)
    if log:
        g = jnp.where(y == -jnp.inf, zero, g)
        return g - jnp.exp(y) * _sum1(g)
    g = jnp.where(y == 0, zero, g)
    return y * (g - _sum1(g * y))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _backward(g: Any, y: Any, log: bool) -> Any:
    """softmax_backward (``y = p``) or log_softmax_backward (``y = log p``), over axis 1."""
    result = jax.ShapeDtypeStruct(g.shape, g.dtype)
    return _call("softmaxkit_backward", result, g, y, log=np.int32(log))


@_backward.defjvp
def _backward_jvp(log: bool, primals: Any, tangents: Any) -> Any:
    out = _backward(*primals, log)
    _, tangent = jax.jvp(lambda g, y: _backward_portable(g, y, log), primals, tangents)
    return out, tangent


def _posinf(x: Any) -> Any:
    return jnp.max(x, axis=1, keepdims=True) == jnp.inf


# --- first derivatives: the backward kernels -------------------------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _op(x: Any, t: float, op: int) -> Any:
    return _forward(x, t, op)


def _op_fwd(x: Any, t: float, op: int) -> Any:
    y = _forward(x, t, op)
    return y, (x, y)


def _op_bwd(t: float, op: int, residuals: Any, g: Any) -> Any:
    x, y = residuals
    zero = jnp.zeros((), g.dtype)
    if op == _LOGSUMEXP:
        # d lse / dx = softmax(x); 0 on slices holding +inf, whose value is constant
        return (jnp.where(y == jnp.inf, zero, g) * _forward(x, 1.0, _SOFTMAX),)
    dx = _backward(g, y, op == _LOG_SOFTMAX)
    if t != 1.0:
        dx = dx / t
    return (jnp.where(_posinf(x), zero, dx),)


_op.defvjp(_op_fwd, _op_bwd)


# --- layout: the reduced axes merged into one, as (outer, n, inner) ------------------------


def _layout(x: Any, axes: tuple[int, ...]) -> tuple[Any, tuple[int, ...], tuple[int, ...] | None]:
    """``(x3, shape, moved)``: ``x`` as (outer, n, inner), the shape it had, its permutation."""
    ndim = x.ndim
    moved = None
    if axes and axes[-1] - axes[0] + 1 != len(axes):
        rest = tuple(i for i in range(ndim) if i not in axes)
        moved = rest + axes
        x = jnp.transpose(x, moved)
        first, last = ndim - len(axes), ndim - 1
    elif axes:
        first, last = axes[0], axes[-1]
    else:  # no axis reduced: every element is its own slice
        first, last = ndim, ndim - 1
    shape = tuple(x.shape)
    outer = math.prod(shape[:first])
    n = math.prod(shape[first : last + 1])
    inner = math.prod(shape[last + 1 :])
    return jnp.reshape(x, (outer, n, inner)), shape, moved


def _restore(y: Any, shape: tuple[int, ...], moved: tuple[int, ...] | None, out_dtype: Any) -> Any:
    y = jnp.reshape(y, shape)
    if moved is not None:
        y = jnp.transpose(y, tuple(int(i) for i in np.argsort(moved)))
    return y if y.dtype == out_dtype else y.astype(out_dtype)


def _forward_public(x: Any, axes: tuple[int, ...], t: float, out_dtype: Any, op: int) -> Any:
    if not _served(x):
        return None
    x3, shape, moved = _layout(x, axes)
    if _ffi(x):
        y = _op(x3, float(t), op)
    elif x3.shape[1] > _jax_graph.MAX_POSITIONS[np.dtype(x.dtype)]:
        return None
    elif x3.shape[2] == 1:
        # rows as the minor dimension: XLA's loops over a trailing axis of length 1 were
        # ten times slower than over (outer, n)
        y = _graph_forward(x3[:, :, 0], float(t), op)[:, :, None]
    else:
        y = _graph_forward(x3, float(t), op)
    if op == _LOGSUMEXP:
        first = len(shape) - len(axes) if moved is not None else (axes[0] if axes else len(shape))
        shape = tuple(1 if first <= i < first + len(axes) else k for i, k in enumerate(shape))
    return _restore(y, shape, moved, out_dtype)


def softmax(x: Any, axes: tuple[int, ...], temperature: float, out_dtype: Any) -> Any:
    return _forward_public(x, axes, temperature, out_dtype, _SOFTMAX)


def log_softmax(x: Any, axes: tuple[int, ...], temperature: float, out_dtype: Any) -> Any:
    return _forward_public(x, axes, temperature, out_dtype, _LOG_SOFTMAX)


def logsumexp(x: Any, axes: tuple[int, ...], out_dtype: Any) -> Any:
    """With the reduced axes kept (length 1)."""
    return _forward_public(x, axes, 1.0, out_dtype, _LOGSUMEXP)


def _backward_public(g: Any, y: Any, axes: tuple[int, ...], out_dtype: Any, log: bool) -> Any:
    if not _served(g, y) or tuple(g.shape) != tuple(y.shape):
        return None
    g3, shape, moved = _layout(g, axes)
    y3 = _layout(y, axes)[0]
    dx = _backward(g3, y3, log) if _ffi(g) else _backward_portable(g3, y3, log)
    return _restore(dx, shape, moved, out_dtype)


def softmax_backward(g: Any, p: Any, axes: tuple[int, ...], out_dtype: Any) -> Any:
    return _backward_public(g, p, axes, out_dtype, False)


def log_softmax_backward(g: Any, logp: Any, axes: tuple[int, ...], out_dtype: Any) -> Any:
    return _backward_public(g, logp, axes, out_dtype, True)


# --- cross-entropy of class indices, fused ---------------------------------------------------


def _ce_results(x: Any, grad: bool) -> list[Any]:
    lead = x.shape[:-1]
    out = [
        jax.ShapeDtypeStruct(lead, x.dtype),  # row losses
        jax.ShapeDtypeStruct(x.shape[:-2], x.dtype),  # their sum or mean
        jax.ShapeDtypeStruct(x.shape[:-2], jnp.int32),  # rows left to the portable path
    ]
    if grad:
        out.append(jax.ShapeDtypeStruct(x.shape, x.dtype))
    return out


def _ce_kernel(x: Any, t: Any, w: Any, settings: tuple[Any, ...], grad: bool) -> Any:
    ignore, eps, reduction, weighted = settings
    name = "softmaxkit_ce_grad" if grad else "softmaxkit_ce_loss"
    return _call(
        name,
        _ce_results(x, grad),
        x,
        t,
        w,
        ignore=np.int64(ignore),
        eps=np.float64(eps),
        reduction=np.int32(_REDUCTIONS[reduction]),
        weighted=bool(weighted),
    )


def _ce_portable(x: Any, t: Any, w: Any, settings: tuple[Any, ...], grad: bool) -> Any:
    """The portable cross-entropy of the (N, C) problem: ``(loss, dx)`` or ``(loss, None)``."""
    from .._losses import _cross_entropy_grad_portable, _cross_entropy_terms, _plan, _reduce

    global _portable_now
    ignore, eps, reduction, weighted = settings
    previous, _portable_now = _portable_now, True
    try:
        plan = _plan(
            x,
            t,
            name="logits",
            axis=-1,
            weight=w if weighted else None,
            ignore_index=ignore,
            reduction=reduction,
            label_smoothing=eps,
        )
        if grad:
            return _cross_entropy_grad_portable(plan)
        main, z_rows, _, _ = _cross_entropy_terms(plan, log_probs_given=False)
        return _reduce(plan, main, z_rows), None
    finally:
        _portable_now = previous


def _unless_special(
    outputs: list[Any], x: Any, t: Any, w: Any, settings: tuple[Any, ...], grad: bool
) -> Any:
    """``(loss, dx or None)`` from a fused cross-entropy's ``[rows, total, special, dx?]``
    (the kernel's or the graph's), or from the portable path where it left rows."""
    rows, total, special = outputs[:3]
    loss = rows if settings[2] == "none" else total
    dx = outputs[3] if grad else None

    def fused() -> Any:
        return loss, dx

    def portable() -> Any:
        value, d = _ce_portable(x, t, w, settings, grad)
        return value.astype(x.dtype), None if d is None else d.astype(x.dtype)

    return jax.lax.cond(special > 0, portable, fused)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _ce_value(x: Any, t: Any, w: Any, settings: tuple[Any, ...], grad: bool) -> Any:
    """``(loss, dx or None)`` of one (N, C) problem: the kernel, the portable path for the
    rare rows it leaves (a max that is not finite, target mass on a -inf logit)."""
    return _unless_special(_ce_kernel(x, t, w, settings, grad), x, t, w, settings, grad)


@_ce_value.defjvp
def _ce_value_jvp(settings: tuple[Any, ...], grad: bool, primals: Any, tangents: Any) -> Any:
    # higher derivatives on the portable formulas (the kernel's outputs as the primal)
    (x, t, w), (dx, _, dw) = primals, tangents
    out = _ce_value(x, t, w, settings, grad)

    def value(x: Any, w: Any) -> Any:
        loss, d = _ce_portable(x, t, w, settings, grad)
        return (loss.astype(x.dtype), None if d is None else d.astype(x.dtype))

    return out, jax.jvp(value, (x, w), (dx, dw))[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _ce(x: Any, t: Any, w: Any, settings: tuple[Any, ...]) -> Any:
    return _ce_value(x, t, w, settings, False)[0]


def _ce_fwd(x: Any, t: Any, w: Any, settings: tuple[Any, ...]) -> Any:
    loss, dx = _ce_value(x, t, w, settings, True)
    return loss, (dx, x, t, w)


def _ce_bwd(settings: tuple[Any, ...], residuals: Any, g: Any) -> Any:
    dx, x, t, w = residuals
    # dx is the gradient of the reduced loss (of the rows' sum for "none")
    dlogits = g[..., None] * dx if settings[2] == "none" else g * dx
    dw = None
    if settings[3]:
        # the weights' gradient on the portable formulas (XLA drops it when unused)
        def loss_of_w(w: Any) -> Any:
            return _ce_portable(jax.lax.stop_gradient(x), t, w, settings, False)[0]

        dw = jax.vjp(loss_of_w, w)[1](g)[0]
    return dlogits, None, dw


_ce.defvjp(_ce_fwd, _ce_bwd)


# --- cross-entropy on the graph path ---------------------------------------------------------


def _ce_graph_plain(x: Any, t: Any, w: Any, settings: tuple[Any, ...], grad: bool) -> Any:
    """``(loss, dx or None)`` of one (N, C) problem from the lean graph, the portable path
    where it leaves rows (as for the kernel)."""
    outputs = _jax_graph.cross_entropy(x, t, w, settings, grad)
    return _unless_special(outputs, x, t, w, settings, grad)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _ce_graph(x: Any, t: Any, w: Any, settings: tuple[Any, ...], grad: bool) -> Any:
    return _ce_graph_plain(x, t, w, settings, grad)


@_ce_graph.defjvp
def _ce_graph_jvp(settings: tuple[Any, ...], grad: bool, primals: Any, tangents: Any) -> Any:
    # The loss's tangent is the gradient the graph computed, dotted with dx (the formula
    # of the loss leaves the target's term out of its sum, which autodiff must not see);
    # the gradient's own tangent (second order) is autodiff of its formula, which is the
    # plain p - q.  Forward and reverse mode alike: the tangent is linear in dx.
    # The primal comes from the function itself, so that a derivative of this rule (second
    # order) takes the rule again rather than autodiff of the loss's formula.
    (x, t, w), (xd, _, wd) = primals, tangents
    loss, dx = _ce_graph(x, t, w, settings, True)
    dx_dot = None
    if grad:

        def gradient(x: Any, w: Any) -> Any:
            return _ce_graph_plain(x, t, w, settings, True)[1]

        dx_dot = jax.jvp(gradient, (x, w), (xd, wd))[1]
    per_row = jnp.sum(dx * xd, axis=-1)
    loss_dot = per_row if settings[2] == "none" else jnp.sum(per_row)
    if settings[3]:  # weighted: d loss / d w through the formula, x held fixed (as the FFI path)
        x_fixed = jax.lax.stop_gradient(x)

        def loss_of_w(w: Any) -> Any:
            return _ce_graph_plain(x_fixed, t, w, settings, False)[0]

        loss_dot = loss_dot + jax.jvp(loss_of_w, (w,), (wd,))[1]
    if not grad:
        return (loss, None), (loss_dot, None)
    return (loss, dx), (loss_dot, dx_dot)


def cross_entropy(logits: Any, target: Any, *, need_grad: bool, **options: Any) -> Any:
    """``(loss, dlogits or None)`` through the fused kernel, or None for the portable path.

    Serves float32 and float64 logits with integer class indices, any class axis, with
    or without ``weight``, ``ignore_index`` and ``label_smoothing``, any reduction;
    ``z_loss``, ``softcap`` and probability targets take the portable path.  The checks
    are those of the portable path, with its messages; the values of a traced target are
    checked by the kernel (an error when the computation runs).
    """
    from .._backend import is_concrete, to_numpy
    from .._options import (
        check_class_axis,
        check_ignore_index,
        check_indices,
        check_label_smoothing,
        check_reduction,
    )

    if logits.ndim == 0 or not _served(logits):
        return None
    z_loss, softcap = options["z_loss"], options["softcap"]
    if softcap is not None or not (type(z_loss) in (int, float) and z_loss == 0):
        return None
    axis = check_class_axis(options["axis"], logits.ndim)
    reduction = check_reduction(options["reduction"])
    ignore = check_ignore_index(options["ignore_index"])
    eps = check_label_smoothing(options["label_smoothing"])
    if not isinstance(target, jax.Array) or not jnp.issubdtype(target.dtype, jnp.integer):
        return None  # NumPy targets, probabilities, booleans: the portable path
    n_classes = logits.shape[axis]
    row_shape = tuple(logits.shape[:axis]) + tuple(logits.shape[axis + 1 :])
    if tuple(target.shape) != row_shape or n_classes == 0:
        return None  # the portable path words the error
    weight = options["weight"]
    if weight is not None and not (
        isinstance(weight, jax.Array) and tuple(weight.shape) == (n_classes,)
    ):
        return None
    if is_concrete(target):
        check_indices(to_numpy(target), n_classes, ignore)
    x = jnp.moveaxis(logits, axis, -1).reshape(-1, n_classes)
    wide = jnp.int64 if jax.config.read("jax_enable_x64") else jnp.int32
    t = target.reshape(-1).astype(wide if target.dtype.itemsize > 4 else jnp.int32)
    w = jnp.ones((n_classes,), x.dtype) if weight is None else weight.astype(x.dtype)
    # (ignore, eps, reduction, weighted): hashable, for nondiff_argnums
    settings = (ignore, eps, reduction, weight is not None)
    if not _ffi(logits):
        if n_classes > _jax_graph.MAX_POSITIONS[np.dtype(x.dtype)]:
            return None  # positions past 2**24 are not exact in float32: the portable path
        loss, dx = _ce_graph(x, t, w, settings, need_grad)
    elif need_grad:
        loss, dx = _ce_value(x, t, w, settings, True)
    else:
        loss, dx = _ce(x, t, w, settings), None
    if reduction == "none":
        loss = loss.reshape(row_shape)
    if dx is None:
        return loss, None
    return loss, jnp.moveaxis(dx.reshape(*row_shape, n_classes), -1, axis)
