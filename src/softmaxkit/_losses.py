"""Losses with PyTorch's exact semantics: cross-entropy, NLL, multi-label logistic.

Softmax is not a loss: it feeds cross-entropy.  Every loss here takes NumPy,
PyTorch or JAX arrays and is written once on the array API, so PyTorch and
JAX differentiate it by autograd; the ``*_grad`` functions return the loss
and its exact gradient in one pass, for NumPy networks and hand-written
backward passes.

One template serves :func:`cross_entropy` and :func:`nll_loss`.  Each row
(a slice along the class axis) gets a *weighted target* ``q`` over the
classes, and its loss is ``-sum_c q[c] * log_probs[c]``:

* class indices ``y``, weight ``w``, smoothing ``eps`` over ``C`` classes:
  ``q[c] = w[c] * ((1 - eps) * [c == y] + eps / C)``, and ``q = 0`` on rows
  whose target is ``ignore_index``;
* probabilities ``t``: ``q[c] = w[c] * ((1 - eps) * t[c] + eps / C)``.

With ``log_probs = log_softmax(x)`` the gradient of that row loss is
``sum(q) * softmax(x) - q``: the chain rule read off the forward formula.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from . import _backends
from ._backend import (
    _broadcast_shape,
    as_array,
    as_result,
    check_out,
    compute_dtype,
    is_concrete,
    is_eager_jax,
    is_jax,
    is_numpy,
    is_torch,
    namespace,
    numpy_quiet,
    to_numpy,
    whole_jit,
    write_out,
)
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._options import (
    check_class_axis,
    check_ignore_index,
    check_indices,
    check_label_smoothing,
    check_reduction,
    not_ignored,
)
from ._softmax import _first_position, log_sigmoid, log_softmax, logsumexp, sigmoid
from ._typing import ArrayT, Reduction

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_grad",
    "cross_entropy",
    "cross_entropy_grad",
    "nll_loss",
    "nll_loss_grad",
]

Array = Any

# How far a row of probability targets may sum from 1, by the target's dtype (the
# sum is taken in float64, so this allows for rounding of the entries themselves).
_SUM_TOLERANCE = {8: 1e-6, 4: 1e-4, 2: 1e-2}


# --- argument checks -----------------------------------------------------------------------


def _check_number(value: Any, name: str, low: float, high: float, *, open_low: bool) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SoftmaxkitTypeError(f"`{name}` must be a number; got {value!r}") from None
    above = number > low if open_low else number >= low
    if not (above and number <= high):
        left = "(" if open_low else "["
        right = "]" if math.isfinite(high) else ")"
        raise SoftmaxkitValueError(
            f"`{name}` must be in {left}{low:g}, {high:g}{right}; got {number!r}"
        )
    return number


def _convert(value: Any, name: str, xp: ModuleType, like: Array) -> Array:
    """``value`` (an array of ``xp``, or a list or NumPy array) as an array of ``xp``."""
    value = as_array(value, name, xp)
    if is_numpy(value) and not is_numpy(like):
        value = xp.asarray(value, device=array_api_compat.device(like))
    namespace(like, value)  # refuses arrays of two libraries
    return value


def _moveaxis(xp: ModuleType, x: Array, source: int, destination: int) -> Array:
    """``xp.moveaxis``; on torch ``movedim``, which torch.func.vmap batches (moveaxis it refuses)."""
    if is_torch(x):
        return x.movedim(source, destination)
    return xp.moveaxis(x, source, destination)


# --- cross-entropy and NLL -----------------------------------------------------------------


class _Plan(NamedTuple):
    """A validated cross-entropy or NLL problem, class axis moved last."""

    xp: ModuleType
    x: Array  # logits (or log-probabilities), working dtype, shape (..., C)
    q: Array  # weighted target per row, shape (..., C); 0 on ignored rows
    kept: Array  # bool, shape (...): rows that count (all True for soft targets)
    denominator: Array  # 0-d: what "mean" divides the main term by
    axis: int  # the class axis of the caller's array
    soft: bool  # probability targets (else class indices)
    weighted: bool
    label_smoothing: float
    reduction: str
    z_loss: float
    softcap: float | None
    out_dtype: Any
    # bool, broadcast to (..., C): the classes whose log-probability the loss reads (the
    # target's, all of a kept row under smoothing or probability targets), where a NaN
    # log-probability makes the loss NaN even at a zero weight, as torch's 0 * NaN does
    reads: Array | None = None

    @property
    def plain(self) -> bool:
        """Class indices and nothing else: the case a fused kernel can serve."""
        return not (
            self.soft
            or self.weighted
            or self.label_smoothing
            or self.z_loss
            or self.softcap is not None
        )


class _Inputs(NamedTuple):
    """A cross-entropy or NLL call's arguments, checked (values too, where the host has them)."""

    xp: ModuleType
    logits: Array  # the caller's dtype
    target: Array  # an array of xp
    weight: Array | None  # an array of xp, the caller's dtype
    soft: bool
    options: dict[str, Any]  # axis, ignore_index, reduction, label_smoothing, z_loss, softcap


def _plan_inputs(
    logits: Array,
    target: Array,
    *,
    name: str,
    axis: Any,
    weight: Any,
    ignore_index: Any,
    reduction: Any,
    label_smoothing: Any = 0.0,
    z_loss: Any = 0.0,
    softcap: Any = None,
    allow_soft: bool = True,
) -> _Inputs:
    """Every check of :func:`_plan`, and no computation on ``logits``.

    Concrete values are checked here; a JAX call made outside the caller's ``jit`` runs
    these checks first and then the whole computation as one ``jit`` (see :func:`_eager`).
    """
    logits = as_array(logits, name)
    xp = namespace(logits)
    axis = check_class_axis(axis, logits.ndim)
    reduction = check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    eps = check_label_smoothing(label_smoothing)
    z_loss = _check_number(z_loss, "z_loss", 0.0, math.inf, open_low=False)
    if softcap is not None:
        softcap = _check_number(softcap, "softcap", 0.0, math.inf, open_low=True)
    n_classes = logits.shape[axis]
    row_shape = tuple(logits.shape[:axis]) + tuple(logits.shape[axis + 1 :])
    concrete = is_concrete(logits)

    target = _convert(target, "target", xp, logits)
    if xp.isdtype(target.dtype, "bool"):
        raise SoftmaxkitTypeError(
            "`target` must hold integer class indices or floating probabilities; got dtype bool"
        )
    soft = bool(xp.isdtype(target.dtype, "real floating"))
    if soft and not allow_soft:
        raise SoftmaxkitTypeError(
            f"`target` must hold integer class indices; got dtype {target.dtype}"
        )
    if soft:
        if tuple(target.shape) != tuple(logits.shape):
            raise SoftmaxkitValueError(
                f"`target` of probabilities must have the shape of `{name}` "
                f"{tuple(logits.shape)}; got shape {tuple(target.shape)}"
            )
        if concrete and is_concrete(target):
            _check_probabilities(target, axis, xp)
        elif is_torch(target):  # values the host cannot read (meta, torch.compile, vmap)
            _backends.torch_backend().check_target(target, axis=axis)
    else:
        if tuple(target.shape) != row_shape:
            raise SoftmaxkitValueError(
                f"`target` of class indices must have the shape of `{name}` without `axis` "
                f"{row_shape}; got shape {tuple(target.shape)}"
            )
        if concrete and is_concrete(target):
            check_indices(to_numpy(target), n_classes, ignore_index)
        elif is_torch(target):
            _backends.torch_backend().check_target(
                target, n_classes=n_classes, ignore_index=ignore_index
            )

    if weight is not None:
        weight = _convert(weight, "weight", xp, logits)
        if tuple(weight.shape) != (n_classes,):
            raise SoftmaxkitValueError(
                f"`weight` must have one entry per class, shape ({n_classes},); "
                f"got shape {tuple(weight.shape)}"
            )
    options = dict(
        axis=axis,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=eps,
        z_loss=z_loss,
        softcap=softcap,
    )
    return _Inputs(xp, logits, target, weight, soft, options)


def _eager(fn: Any, logits: Array, target: Array, name: str, options: dict[str, Any]) -> Any:
    """``fn(logits, target, **options)`` on eager JAX logits, as one computation.

    The checks (target values included) run here on the host; the call itself is made
    again under :func:`whole_jit`, where they see tracers and have nothing left to read.
    """
    allow_soft = fn not in (nll_loss, nll_loss_grad)
    inputs = _plan_inputs(logits, target, name=name, allow_soft=allow_soft, **options)
    static = {k: v for k, v in inputs.options.items() if k in options}
    return whole_jit(fn, (inputs.logits, inputs.target), {"weight": inputs.weight}, static)


def _plan(logits: Array, target: Array, *, name: str, **arguments: Any) -> _Plan:
    inputs = _plan_inputs(logits, target, name=name, **arguments)
    xp, target, weight, soft = inputs.xp, inputs.target, inputs.weight, inputs.soft
    axis = inputs.options["axis"]
    reduction = inputs.options["reduction"]
    ignore_index = inputs.options["ignore_index"]
    eps = inputs.options["label_smoothing"]
    z_loss = inputs.options["z_loss"]
    softcap = inputs.options["softcap"]
    work, out_dtype = compute_dtype(xp, inputs.logits.dtype)
    x = xp.astype(inputs.logits, work)
    n_classes = x.shape[axis]
    row_shape = tuple(x.shape[:axis]) + tuple(x.shape[axis + 1 :])
    device = array_api_compat.device(x)
    if weight is not None:
        weight = xp.astype(weight, work)

    # Class axis last: every reduction below is over axis -1, and the row results
    # come out in the caller's order of the other axes.
    x = _moveaxis(xp, x, axis, -1)
    classes = xp.arange(n_classes, device=device)
    uniform = xp.asarray(eps / n_classes if n_classes else 0.0, dtype=work, device=device)
    if soft:
        t = _moveaxis(xp, xp.astype(target, work), axis, -1)
        kept = xp.ones(row_shape, dtype=xp.bool, device=device)
    else:
        kept = not_ignored(xp, target, ignore_index)
        safe = xp.where(kept, target, xp.zeros_like(target))
        t = xp.astype(safe[..., None] == classes, work)
    if eps != 0:
        t = (1 - eps) * t + uniform
    reads = kept[..., None] if soft or eps != 0 else kept[..., None] & (t != 0)
    q = t if weight is None else t * weight
    zero = xp.asarray(0.0, dtype=work, device=device)
    q = xp.where(kept[..., None], q, zero)

    if soft:
        # torch divides the mean of probability targets by the number of rows, weights or not
        denominator = xp.asarray(float(math.prod(row_shape)), dtype=work, device=device)
    elif weight is None:
        denominator = xp.sum(xp.astype(kept, work))
    else:
        index = xp.reshape(safe, (-1,))
        if index.dtype not in (xp.int32, xp.int64):  # torch indexes with those two only
            index = xp.astype(index, xp.int64)
        kept_weight = xp.take(weight, index)
        denominator = xp.sum(xp.where(xp.reshape(kept, (-1,)), kept_weight, zero))
    return _Plan(
        xp,
        x,
        q,
        kept,
        denominator,
        axis,
        soft,
        weight is not None,
        eps,
        reduction,
        z_loss,
        softcap,
        out_dtype,
        reads,
    )


def _check_probabilities(target: Array, axis: int, xp: ModuleType) -> None:
    # float64 where the library allows it: the sum's own rounding must not count
    if target.dtype == xp.float64:
        itemsize = 8
    elif target.dtype == xp.float32:
        itemsize = 4
    else:  # float16, bfloat16
        itemsize = 2
    tolerance = _SUM_TOLERANCE[itemsize]
    t = to_numpy(target if itemsize >= 4 else xp.astype(target, xp.float32))
    bad = ~(t >= 0)  # negative or NaN
    if bad.any():
        pos = _first_position(bad)
        raise SoftmaxkitValueError(
            f"`target` probabilities must be >= 0; position {pos} holds {t[pos].item()!r}"
        )
    if t.size == 0:
        return
    total = np.sum(t.astype(np.float64), axis=axis)
    off = ~(np.abs(total - 1) <= tolerance)
    if off.any():
        pos = _first_position(off)
        shown = (*pos[:axis], ":", *pos[axis:])
        raise SoftmaxkitValueError(
            f"`target` probabilities must sum to 1 along `axis` (within {tolerance:g} for "
            f"{target.dtype}); the row at position ({', '.join(map(str, shown))}) sums to "
            f"{total[pos].item()!r}"
        )


def _safe_divide(xp: ModuleType, num: Array, den: Array) -> tuple[Array, Array]:
    """``(num / den, den == 0)`` with NaN where ``den == 0``, computed without a warning."""
    empty = den == 0
    one = xp.asarray(1.0, dtype=den.dtype)
    quotient = num / xp.where(empty, one, den)
    return xp.where(empty, xp.asarray(xp.nan, dtype=den.dtype), quotient), empty


def _cross_entropy_terms(plan: _Plan, log_probs_given: bool) -> tuple[Array, Array, Array, Array]:
    """``(main, z_rows, x_capped, log_probs)``: per-row main and z-loss terms, shape (...)."""
    xp, x, q = plan.xp, plan.x, plan.q
    if plan.softcap is not None:
        x = plan.softcap * xp.tanh(x / plan.softcap)
    log_probs = x if log_probs_given else log_softmax(x, -1)
    # 0 * log 0 = 0: a class with q = 0 adds nothing, even where log_probs is -inf; a
    # NaN it reads stays NaN (torch's 0 * NaN), else a zero weight would hide NaN logits;
    # 0 - log p rather than -log p, so that a certain class (log p = 0) costs +0, not -0
    zero = xp.asarray(0.0, dtype=x.dtype)
    cost = zero - log_probs
    absent = zero if plan.reads is None else xp.where(plan.reads, cost, zero)
    main = xp.sum(q * xp.where(q == 0, xp.where(xp.isnan(cost), absent, zero), cost), axis=-1)
    if plan.z_loss != 0:
        lse = logsumexp(x, -1)
        # (z lse) lse: its autograd (torch tensors on this path) gives 2 z lse where the
        # square's gives inf for lse ~ 1e308; the value overflows to inf there, by rule
        with numpy_quiet(lse, over="ignore"):
            z_rows = xp.where(plan.kept, (plan.z_loss * lse) * lse, zero)
    else:
        z_rows = xp.zeros_like(main)
    return main, z_rows, x, log_probs


def _reduce(plan: _Plan, main: Array, z_rows: Array) -> Array:
    xp = plan.xp
    if plan.reduction == "none":
        loss = main + z_rows if plan.z_loss != 0 else main
    elif plan.reduction == "sum":
        loss = xp.sum(main) + xp.sum(z_rows)
    else:
        loss, _ = _safe_divide(xp, xp.sum(main), plan.denominator)
        if plan.z_loss != 0:
            n_kept = xp.sum(xp.astype(plan.kept, main.dtype))
            loss = loss + _safe_divide(xp, xp.sum(z_rows), n_kept)[0]
    return as_result(xp.astype(loss, plan.out_dtype))


def _row_scales(plan: _Plan, dtype: Any) -> tuple[Array, Array]:
    """``(main_scale, z_scale)``: d(loss)/d(row term) for the reduction (0 where mean is NaN)."""
    xp = plan.xp
    one = xp.asarray(1.0, dtype=dtype)
    if plan.reduction != "mean":
        return one, one
    zero = xp.asarray(0.0, dtype=dtype)
    # torch's gradient of a NaN mean (no kept rows, or weights summing to 0) is 0
    inverse, empty = _safe_divide(xp, one, plan.denominator)
    main_scale = xp.where(empty, zero, inverse)
    n_kept = xp.sum(xp.astype(plan.kept, dtype))
    inverse, empty = _safe_divide(xp, one, n_kept)
    return main_scale, xp.where(empty, zero, inverse)


def cross_entropy(
    logits: ArrayT,
    target: ArrayT,
    /,
    *,
    axis: int = -1,
    weight: ArrayT | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
) -> ArrayT:
    """Cross-entropy between ``softmax(logits)`` and ``target``, as ``torch.nn.functional``.

    Per row, with ``log_probs = log_softmax(logits, axis)``, ``C`` classes,
    ``w = weight`` (ones if None) and ``eps = label_smoothing``:

    * class index ``y``:
      ``loss = -(1 - eps) * w[y] * log_probs[y] - eps / C * sum_c w[c] * log_probs[c]``;
    * probabilities ``t``:
      ``loss = -sum_c w[c] * ((1 - eps) * t[c] + eps / C) * log_probs[c]``;

    plus ``z_loss * logsumexp(logits)**2`` when ``z_loss > 0``, with
    ``logits`` replaced by ``softcap * tanh(logits / softcap)`` throughout when
    ``softcap`` is given.

    Parameters
    ----------
    logits : array, shape (..., C, ...)
        Unnormalised scores, NumPy, PyTorch or JAX; the loss is of the same
        kind, differentiable by the library's autograd.  float16 and bfloat16
        are computed in float32 and returned in their own dtype.
    target : array
        Either class indices, integers of shape ``logits.shape`` without
        ``axis``, each in ``[0, C)`` or equal to ``ignore_index``; or
        probabilities, floats of the shape of ``logits``, non-negative and
        summing to 1 along ``axis`` (within 1e-6 for float64, 1e-4 for
        float32, 1e-2 for 16-bit floats).
    axis : int, default -1
        The class axis (PyTorch's is 1: pass ``axis=1`` for ``(N, C, d1, ...)``).
    weight : array of shape (C,), optional
        A weight per class.
    ignore_index : int, default -100
        Rows whose class index equals it add nothing to the loss, to the
        mean's denominator or to the gradient, except that NaN logits in such
        a row make its gradient NaN, as PyTorch's backward does (class
        indices only: for probability targets it is not used, as in PyTorch).
        Within int64's range, as PyTorch requires.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` gives one loss per row (shape of ``logits`` without
        ``axis``; 0 on ignored rows), ``"sum"`` their sum and ``"mean"`` their
        weighted mean (see Notes).
    label_smoothing : float in [0, 1], default 0
        ``eps`` above: the target mixed with the uniform distribution.
    z_loss : float >= 0, default 0
        Weight of the auxiliary loss ``logsumexp(logits)**2`` per row (PaLM),
        which keeps the log-normaliser near 0.
    softcap : float > 0, optional
        Soft-cap the logits to ``(-softcap, softcap)`` by
        ``softcap * tanh(logits / softcap)`` before everything else (Gemma 2).

    Returns
    -------
    array
        0-d for ``"mean"`` and ``"sum"``, else the shape of ``logits``
        without ``axis``; the dtype of ``logits`` (floats) or the default
        float (integers).

    Raises
    ------
    SoftmaxkitValueError
        For a class index outside ``[0, C)`` other than ``ignore_index``,
        probabilities that are negative or do not sum to 1, a ``weight`` of
        the wrong shape, an unknown ``reduction``, ``label_smoothing``
        outside [0, 1], ``z_loss < 0`` or ``softcap <= 0``, naming the first
        bad position.  (Under ``jax.jit`` target values are not checked.)

    Notes
    -----
    The quirks of PyTorch, reproduced on purpose:

    * ``"mean"`` with class indices divides the summed row losses by the
      summed weights of the kept rows, ``sum_i w[y_i]``, not by their number;
    * with smoothing the term ``eps / C * sum_c w[c] * log_probs[c]`` weights
      every class by its own weight, yet the mean still divides by
      ``sum_i w[y_i]``;
    * ``"mean"`` with probability targets divides by the number of rows,
      whatever the weights;
    * ``ignore_index`` has no effect with probability targets;
    * when every row is ignored (or the kept weights sum to 0, or the input
      is empty) ``"mean"`` is NaN and its gradient is 0, ``"sum"`` is 0.

    Where we differ: a zero weighted target times a ``-inf`` log-probability
    counts as 0 (PyTorch gives NaN for probability targets with a ``-inf``
    logit), and bad targets raise our error rather than an ``IndexError``.

    ``z_loss``: the term ``z_loss * logsumexp(logits)**2`` is added to each
    kept row only, unweighted by ``weight``; ``"sum"`` adds it up and
    ``"mean"`` averages it over the kept rows (so it is not divided by the
    weights).  ``"none"`` shows it inside each row's loss.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import cross_entropy
    >>> logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.2]])  # cat, dog, elephant
    >>> round(float(cross_entropy(logits, np.array([0, 1]))), 4)
    0.3143
    >>> cross_entropy(logits, np.array([0, -100]), reduction="none").round(4)
    array([0.417, 0.   ])
    >>> soft = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]])
    >>> round(float(cross_entropy(logits, soft)), 4)
    0.5093
    """
    options: dict[str, Any] = dict(
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
    )
    if is_eager_jax(logits):
        return _eager(cross_entropy, logits, target, "logits", options)
    backend = _backends.select(logits)
    if backend is not None:
        logits = backend.loss_input(logits)
        result = backend.cross_entropy(logits, target, need_grad=False, **options)
        if result is not None:
            return result[0]
    plan = _plan(logits, target, name="logits", **options)
    main, z_rows, _, _ = _cross_entropy_terms(plan, log_probs_given=False)
    return _reduce(plan, main, z_rows)


def cross_entropy_grad(
    logits: ArrayT,
    target: ArrayT,
    /,
    *,
    axis: int = -1,
    weight: ArrayT | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    grad_out: np.ndarray | None = None,
) -> tuple[ArrayT, ArrayT]:
    """``(loss, dlogits)``: :func:`cross_entropy` and its gradient in one pass.

    Takes the arguments of :func:`cross_entropy` and returns the same ``loss``;
    ``dlogits`` has the shape of ``logits`` and its dtype (float16 and bfloat16
    kept, integers promoted) and is the gradient of ``loss`` (for
    ``reduction="none"``, of ``loss.sum()``).

    ``grad_out``, for NumPy input, is an array of exactly ``dlogits``' shape and
    dtype that receives the gradient and is returned as ``dlogits``, as ``out=``
    of :func:`softmax`: C-contiguous or not, ``logits`` itself to overwrite the
    logits with their gradient, checked before any work, written whole or left
    unchanged.

    Notes
    -----
    With ``x`` the (soft-capped) logits, ``p = softmax(x)`` and ``q`` the
    weighted target of each row (see :mod:`softmaxkit._losses`), the row loss
    ``-sum(q * log p) + z_loss * logsumexp(x)**2`` has gradient
    ``sum(q) * p - q + 2 * z_loss * logsumexp(x) * p``; ``"mean"`` divides the
    first part by the mean's denominator and the second by the number of
    kept rows; the soft cap multiplies by ``1 - tanh(logits / softcap)**2``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import cross_entropy_grad
    >>> loss, dlogits = cross_entropy_grad(np.array([[2.0, 1.0, 0.1]]), np.array([0]))
    >>> round(float(loss), 4), dlogits.round(4).tolist()
    (0.417, [[-0.341, 0.2424, 0.0986]])
    >>> logits = np.array([[2.0, 1.0, 0.1]])
    >>> loss, dlogits = cross_entropy_grad(logits, np.array([0]), grad_out=logits)
    >>> dlogits is logits, logits.round(4).tolist()
    (True, [[-0.341, 0.2424, 0.0986]])
    """
    options: dict[str, Any] = dict(
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
    )
    if is_eager_jax(logits) and grad_out is None:
        return _eager(cross_entropy_grad, logits, target, "logits", options)  # type: ignore[no-any-return]
    if grad_out is not None:
        x = as_array(logits, "logits")
        shape, dtype = tuple(x.shape), compute_dtype(namespace(x), x.dtype)[1]
        grad_out = check_out(grad_out, x, shape, dtype, name="grad_out", x_name="logits")
        options["out"] = grad_out
    # A backend's fused kernel runs before _plan, which would build the one-hot
    # targets; it returns None for every case it does not serve.
    backend = _backends.select(logits)
    if backend is not None:
        logits = backend.loss_input(logits)
        result = backend.cross_entropy(logits, target, need_grad=True, **options)
        if result is not None:
            return result
    options.pop("out", None)
    plan = _plan(logits, target, name="logits", **options)
    loss, dlogits = _cross_entropy_grad_portable(plan)
    return loss, write_out(grad_out, dlogits)


def _cross_entropy_grad_portable(plan: _Plan) -> tuple[Array, Array]:
    xp = plan.xp
    main, z_rows, x, log_probs = _cross_entropy_terms(plan, log_probs_given=False)
    loss = _reduce(plan, main, z_rows)
    p = xp.exp(log_probs)
    main_scale, z_scale = _row_scales(plan, x.dtype)
    zero = xp.asarray(0.0, dtype=x.dtype)
    # Infinite logits are constants, as autograd of cross_entropy sees them: target mass
    # on a -inf logit drops out of q (its loss is inf, its gradient 0), and a row whose
    # max is +inf (a loss no finite change moves) gets gradient 0.  The fused kernel
    # leaves such rows to this path.
    q = xp.where(x == -xp.inf, zero, plan.q)
    # d(-sum q log p)/dx = sum(q) p - q
    dx = (xp.sum(q, axis=-1, keepdims=True) * p - q) * main_scale
    if plan.z_loss != 0:
        lse = logsumexp(x, -1)
        lse = xp.where(plan.kept & ~xp.isinf(lse), lse, zero)
        # d(z_loss * lse**2)/dx = 2 z_loss lse softmax(x)
        dx = dx + (2 * plan.z_loss * z_scale) * lse[..., None] * p
    if x.shape[-1]:
        dx = xp.where(xp.max(x, axis=-1, keepdims=True) == xp.inf, zero, dx)
    if plan.softcap is not None:
        # x = c tanh(logits / c): dx/dlogits = 1 - tanh**2 = 1 - (x / c)**2
        dx = dx * (1 - (x / plan.softcap) ** 2)
    dlogits = _moveaxis(xp, dx, -1, plan.axis)
    return loss, as_result(xp.astype(dlogits, plan.out_dtype))


def nll_loss(
    log_probs: ArrayT,
    target: ArrayT,
    /,
    *,
    axis: int = -1,
    weight: ArrayT | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
) -> ArrayT:
    """Negative log-likelihood of class indices, as ``torch.nn.functional.nll_loss``.

    Per row ``loss = -w[y] * log_probs[y]``; ``"mean"`` divides the sum by
    ``sum_i w[y_i]`` over the kept rows (NaN when there are none).
    ``cross_entropy(logits, y)`` equals ``nll_loss(log_softmax(logits), y)``.

    Parameters
    ----------
    log_probs : array, shape (..., C, ...)
        Log-probabilities (e.g. from :func:`log_softmax`); used as given.
    target : integer array
        Class indices, shape ``log_probs.shape`` without ``axis``, each in
        ``[0, C)`` or equal to ``ignore_index``.
    axis, weight, ignore_index, reduction
        As in :func:`cross_entropy`.

    Returns
    -------
    array
        0-d for ``"mean"`` and ``"sum"``, else the shape of ``target``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import nll_loss
    >>> log_probs = np.log(np.array([[0.2, 0.7, 0.1], [0.2, 0.7, 0.1]]))
    >>> float(nll_loss(log_probs, np.array([1, 2]), weight=np.array([1.0, 1.0, 3.0])))
    1.8161
    """
    if is_eager_jax(log_probs):
        options = dict(axis=axis, ignore_index=ignore_index, reduction=reduction)
        return _eager(nll_loss, log_probs, target, "log_probs", {**options, "weight": weight})
    backend = _backends.select(log_probs)
    if backend is not None and backend.NAME == "torch":
        log_probs = backend.loss_input(log_probs)
        loss = backend.nll_loss(
            log_probs,
            target,
            axis=axis,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
        )
        if loss is not None:
            return loss
    plan = _plan(
        log_probs,
        target,
        name="log_probs",
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        allow_soft=False,
    )
    main, z_rows, _, _ = _cross_entropy_terms(plan, log_probs_given=True)
    return _reduce(plan, main, z_rows)


def nll_loss_grad(
    log_probs: ArrayT,
    target: ArrayT,
    /,
    *,
    axis: int = -1,
    weight: ArrayT | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
) -> tuple[ArrayT, ArrayT]:
    """``(loss, dlog_probs)``: :func:`nll_loss` and its gradient, ``-w[y]`` at the target.

    For ``"mean"`` the gradient is divided by ``sum_i w[y_i]`` (0 when no row
    is kept); for ``"none"`` it is the gradient of ``loss.sum()``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import nll_loss_grad
    >>> _, g = nll_loss_grad(np.log(np.array([[0.2, 0.8], [0.5, 0.5]])), np.array([1, 0]))
    >>> g.tolist()
    [[0.0, -0.5], [-0.5, 0.0]]
    """
    if is_eager_jax(log_probs):
        options = dict(axis=axis, weight=weight, ignore_index=ignore_index, reduction=reduction)
        return _eager(nll_loss_grad, log_probs, target, "log_probs", options)  # type: ignore[no-any-return]
    plan = _plan(
        log_probs,
        target,
        name="log_probs",
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        allow_soft=False,
    )
    xp = plan.xp
    main, z_rows, _, _ = _cross_entropy_terms(plan, log_probs_given=True)
    main_scale, _ = _row_scales(plan, plan.x.dtype)
    dlog_probs = _moveaxis(xp, -plan.q * main_scale, -1, plan.axis)
    return _reduce(plan, main, z_rows), as_result(xp.astype(dlog_probs, plan.out_dtype))


# --- binary cross-entropy with logits ------------------------------------------------------


class _BinaryPlan(NamedTuple):
    xp: ModuleType
    x: Array
    y: Array
    weight: Array | None
    pos_weight: Array | None
    reduction: str
    out_dtype: Any


def _binary_plan(
    logits: Array, target: Array, weight: Any, pos_weight: Any, reduction: Any
) -> _BinaryPlan:
    logits, target, weight, pos_weight, reduction = _binary_inputs(
        logits, target, weight, pos_weight, reduction
    )
    xp = namespace(logits)
    work, out_dtype = compute_dtype(xp, logits.dtype)
    x = xp.astype(logits, work)
    y = xp.astype(target, work)
    arrays = [None if a is None else xp.astype(a, work) for a in (weight, pos_weight)]
    return _BinaryPlan(xp, x, y, arrays[0], arrays[1], reduction, out_dtype)


def _binary_inputs(
    logits: Array, target: Array, weight: Any, pos_weight: Any, reduction: Any
) -> tuple[Array, Array, Array | None, Array | None, str]:
    """The checks of :func:`_binary_plan` (values too, where the host has them), no computation."""
    logits = as_array(logits, "logits")
    xp = namespace(logits)
    reduction = check_reduction(reduction)
    shape = tuple(logits.shape)
    target = _convert(target, "target", xp, logits)
    if tuple(target.shape) != shape:
        raise SoftmaxkitValueError(
            f"`target` must have the shape of `logits` {shape}; got shape {tuple(target.shape)}"
        )
    if is_concrete(logits) and is_concrete(target):
        # the values as the loss reads them, in its working dtype (cast on the host for JAX)
        work = compute_dtype(xp, logits.dtype)[0]
        y_np = (
            to_numpy(target).astype(work) if is_jax(target) else to_numpy(xp.astype(target, work))
        )
        bad = ~((y_np >= 0) & (y_np <= 1))
        if bad.any():
            pos = _first_position(bad)
            raise SoftmaxkitValueError(
                f"`target` must be probabilities in [0, 1]; position {pos} holds "
                f"{y_np[pos].item()!r}"
            )
    elif is_torch(target):
        _backends.torch_backend().check_target(target, axis=None)
    arrays = []
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is not None:
            value = _convert(value, name, xp, logits)
            if _broadcast_shape(tuple(value.shape), shape) != shape:
                hint = " (one entry per class, the last axis)" if name == "pos_weight" else ""
                raise SoftmaxkitValueError(
                    f"`{name}` must broadcast to the shape of `logits` {shape}{hint}; "
                    f"got shape {tuple(value.shape)}"
                )
        arrays.append(value)
    return logits, target, arrays[0], arrays[1], reduction


def _binary_eager(fn: Any, logits, target, weight, pos_weight, reduction) -> Any:
    """``fn`` on eager JAX logits: checked here, then one computation (see :func:`_eager`)."""
    logits, target, weight, pos_weight, reduction = _binary_inputs(
        logits, target, weight, pos_weight, reduction
    )
    named = {"weight": weight, "pos_weight": pos_weight}
    return whole_jit(fn, (logits, target), named, {"reduction": reduction})


def _binary_reduce(plan: _BinaryPlan, loss: Array) -> Array:
    xp = plan.xp
    if plan.reduction == "sum":
        loss = xp.sum(loss)
    elif plan.reduction == "mean":
        count = xp.asarray(float(math.prod(loss.shape)), dtype=loss.dtype)
        loss = _safe_divide(xp, xp.sum(loss), count)[0]
    return as_result(xp.astype(loss, plan.out_dtype))


def binary_cross_entropy_with_logits(
    logits: ArrayT,
    target: ArrayT,
    /,
    *,
    weight: ArrayT | None = None,
    pos_weight: ArrayT | None = None,
    reduction: Reduction = "mean",
) -> ArrayT:
    """Logistic loss of independent labels, as torch's ``binary_cross_entropy_with_logits``.

    Elementwise, with ``w = weight`` and ``pw = pos_weight`` (ones if None):
    ``loss = -w * (pw * target * log sigmoid(logits) + (1 - target) * log sigmoid(-logits))``,
    i.e. one sigmoid per label: the multi-label problem, where the classes
    are not exclusive and do not compete as in a softmax.

    Parameters
    ----------
    logits : array, any shape
        Scores, NumPy, PyTorch or JAX.
    target : array, the shape of ``logits``
        Probabilities in [0, 1] (0/1 labels or soft labels; integers and
        booleans are accepted).
    weight : array broadcastable to ``logits.shape``, optional
        Rescales each element's loss.
    pos_weight : array broadcastable to ``logits.shape``, optional
        Weight of the positive term, typically of shape ``(C,)`` (one per
        class, the last axis): ``pw > 1`` raises recall, ``pw < 1`` precision.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` averages over every element (NaN for empty input).

    Returns
    -------
    array
        0-d for ``"mean"`` and ``"sum"``, else the shape of ``logits``.

    Notes
    -----
    Computed as ``(1 - t) * softplus(x) + pw * t * softplus(-x)`` with
    ``softplus(x) = -log_sigmoid(-x)``: two non-negative terms and no
    cancellation, exact for logits of +-1e4 or any finite size.  As in
    PyTorch, ``weight`` and ``pos_weight`` may not enlarge the shape of
    ``logits`` (an error where broadcasting would).

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import binary_cross_entropy_with_logits
    >>> logits = np.array([[1e4, -1e4, 0.0]])
    >>> target = np.array([[1.0, 1.0, 0.0]])
    >>> binary_cross_entropy_with_logits(logits, target, reduction="none").round(4).tolist()
    [[0.0, 10000.0, 0.6931]]
    """
    if is_eager_jax(logits):
        return _binary_eager(
            binary_cross_entropy_with_logits, logits, target, weight, pos_weight, reduction
        )
    result = _binary_on_backend(logits, target, weight, pos_weight, reduction, need_grad=False)
    if result is not None:
        return result[0]
    plan = _binary_plan(logits, target, weight, pos_weight, reduction)
    return _binary_reduce(plan, _binary_elementwise(plan))


def _binary_on_backend(logits, target, weight, pos_weight, reduction, *, need_grad):
    """The torch backend's ``(loss, dlogits or None)``, or None for the portable path."""
    backend = _backends.select(logits)
    if backend is None or backend.NAME != "torch":
        return None
    return backend.binary_cross_entropy_with_logits(
        backend.loss_input(logits),
        target,
        need_grad=need_grad,
        weight=weight,
        pos_weight=pos_weight,
        reduction=reduction,
    )


def _binary_elementwise(plan: _BinaryPlan) -> Array:
    x, y = plan.x, plan.y
    softplus_x = -log_sigmoid(-x)
    softplus_neg_x = -log_sigmoid(x)
    positive = (
        y * softplus_neg_x if plan.pos_weight is None else plan.pos_weight * y * softplus_neg_x
    )
    loss = (1 - y) * softplus_x + positive
    return loss if plan.weight is None else plan.weight * loss


def binary_cross_entropy_with_logits_grad(
    logits: ArrayT,
    target: ArrayT,
    /,
    *,
    weight: ArrayT | None = None,
    pos_weight: ArrayT | None = None,
    reduction: Reduction = "mean",
) -> tuple[ArrayT, ArrayT]:
    """``(loss, dlogits)``: :func:`binary_cross_entropy_with_logits` and its gradient.

    ``dloss/dlogits = w * ((1 - target) * sigmoid(logits) - pw * target * sigmoid(-logits))``,
    divided by the number of elements for ``"mean"``; for ``"none"`` the
    gradient of ``loss.sum()``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import binary_cross_entropy_with_logits_grad
    >>> _, g = binary_cross_entropy_with_logits_grad(np.array([0.0, 0.0]), np.array([1.0, 0.0]))
    >>> g.tolist()
    [-0.25, 0.25]
    """
    if is_eager_jax(logits):
        return _binary_eager(  # type: ignore[no-any-return]
            binary_cross_entropy_with_logits_grad, logits, target, weight, pos_weight, reduction
        )
    result = _binary_on_backend(logits, target, weight, pos_weight, reduction, need_grad=True)
    if result is not None:
        return result
    plan = _binary_plan(logits, target, weight, pos_weight, reduction)
    xp, x, y = plan.xp, plan.x, plan.y
    loss = _binary_reduce(plan, _binary_elementwise(plan))
    positive = y * sigmoid(-x) if plan.pos_weight is None else plan.pos_weight * y * sigmoid(-x)
    dx = (1 - y) * sigmoid(x) - positive
    if plan.weight is not None:
        dx = plan.weight * dx
    if plan.reduction == "mean" and math.prod(x.shape) > 0:
        dx = dx / math.prod(x.shape)
    return loss, as_result(xp.astype(dx, plan.out_dtype))
