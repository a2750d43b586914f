"""The sparse members of the softmax family: sparsemax, 1.5-entmax and alpha-entmax.

Each maps scores ``x`` to probabilities ``p = [(alpha - 1) x - tau]_+ ** (1 / (alpha - 1))``
with the threshold ``tau`` chosen so that ``p`` sums to 1 (Peters, Niculae & Martins
2019); ``alpha = 1`` is softmax (the limit), ``alpha = 2`` sparsemax, the Euclidean
projection onto the simplex (Martins & Astudillo 2016).  Unlike softmax, every score
more than a margin below the top gets probability exactly 0.

The edge cases are the core's (:mod:`._softmax`): masked entries are ``-inf`` (from
:func:`._softmax._prepare`) and get exactly 0; ``+inf`` entries share the mass equally
(what the projection gives as those scores grow together); an all ``-inf`` or wholly
masked slice gives 0 with gradient 0; NaN stays in its slice.

The portable path works on rows: the reduced axes are moved last and merged, and
each row is shifted by its max, so that ``tau`` lies in ``[-1, 0)`` whatever the
scores' magnitude.  Sparsemax and 1.5-entmax find ``tau`` in closed form after a sort;
other ``alpha`` by bisection on ``tau``.  On NumPy float32/float64 arrays reduced along
their last, contiguous axis (and on such CPU torch tensors, through the operator of
:mod:`._backends._torch_sparse`) the compiled kernels of :mod:`._kernels._sparse` find
the same threshold without a sort.  JAX arrays are differentiated through a
``jax.custom_vjp`` whose backward is :func:`_backward_rows`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ._backend import (
    as_result,
    cast,
    is_concrete,
    is_jax,
    is_torch,
    namespace,
    stop_gradient,
)
from ._derivatives import _pair
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._kernels import _sparse as _sparse_kernels
from ._losses import _moveaxis, _plan, _reduce, _row_scales, cross_entropy, cross_entropy_grad
from ._softmax import _in_graph, _prepare, _shifted, _wider_float, softmax
from ._typing import ArrayT, Reduction

__all__ = [
    "entmax",
    "entmax15",
    "entmax_backward",
    "entmax_loss",
    "entmax_loss_grad",
    "sparsemax",
    "sparsemax_backward",
    "sparsemax_loss",
    "sparsemax_loss_grad",
]

Array = Any
Axis = int | Sequence[int]

# how the threshold is found: closed forms after a sort, or bisection
_SPARSEMAX, _ENTMAX15, _BISECT = "sparsemax", "entmax15", "bisect"
# Bisection halves an interval of width below 1 (tau lies in [-1, -n**(1 - alpha)]):
# after 64 halvings it is below 2**-64, under the spacing of float64 numbers near tau.
_DEFAULT_N_ITER = 64


# --- arguments -----------------------------------------------------------------------------


def _check_alpha(alpha: Any) -> float:
    if (is_torch(alpha) and alpha.requires_grad) or not is_concrete(alpha):
        raise SoftmaxkitTypeError(
            "`alpha` must be a plain number, not a differentiable or traced array; "
            f"got {type(alpha).__name__}"
        )
    if isinstance(alpha, (bool, str, bytes)):
        raise SoftmaxkitTypeError(f"`alpha` must be a number >= 1; got {alpha!r}")
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise SoftmaxkitTypeError(f"`alpha` must be a number >= 1; got {alpha!r}") from None
    if not (math.isfinite(value) and value >= 1):
        raise SoftmaxkitValueError(f"`alpha` must be finite and >= 1; got {value!r}")
    return value


def _check_n_iter(n_iter: Any) -> int:
    if n_iter is None:
        return _DEFAULT_N_ITER
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
        raise SoftmaxkitValueError(f"`n_iter` must be None or an int >= 1; got {n_iter!r}")
    return int(n_iter)


def _kind(alpha: float) -> str:
    return _SPARSEMAX if alpha == 2 else _ENTMAX15 if alpha == 1.5 else _BISECT


# --- rows: the reduced axes moved last and merged -------------------------------------------


def _to_rows(xp: ModuleType, x: Array, axes: tuple[int, ...]) -> tuple[Array, Any]:
    """``(rows, back)``: ``x`` as a 2-D ``(R, n)`` array and the function that undoes it."""
    rest = tuple(a for a in range(x.ndim) if a not in axes)
    order = (*rest, *axes)
    moved = x if order == tuple(range(x.ndim)) else xp.permute_dims(x, order)
    shape = tuple(moved.shape)
    n = math.prod(shape[len(rest) :])
    rows = xp.reshape(moved, (math.prod(shape[: len(rest)]), n))

    def back(r: Array) -> Array:
        out = xp.reshape(r, shape)
        if order == tuple(range(x.ndim)):
            return out
        inverse = [0] * len(order)
        for i, a in enumerate(order):
            inverse[a] = i
        return xp.permute_dims(out, tuple(inverse))

    return rows, back


# --- the projection on rows (portable) ------------------------------------------------------


def _arange(xp: ModuleType, n: int, like: Array) -> Array:
    return xp.arange(1, n + 1, dtype=like.dtype, device=array_api_compat.device(like))


def _sparsemax_tau(xp: ModuleType, z: Array) -> Array:
    """Threshold of rows ``z`` (max 0, -inf allowed): the closed form after a sort."""
    zero = xp.asarray(0.0, dtype=z.dtype)
    zs = xp.sort(z, axis=-1, descending=True)
    finite = zs > -xp.inf
    k = _arange(xp, z.shape[-1], z)
    cs = xp.cumulative_sum(xp.where(finite, zs, zero), axis=-1)
    # the support is a prefix of the sorted row: the entries with 1 + k z_(k) > sum_(j<=k) z_(j)
    support = xp.sum(
        xp.astype((1 + k * xp.where(finite, zs, zero) > cs) & finite, z.dtype),
        axis=-1,
        keepdims=True,
    )
    top = xp.sum(xp.where(k == support, cs, zero), axis=-1, keepdims=True)
    return (top - 1) / support


def _entmax15_tau(xp: ModuleType, X: Array) -> Array:
    """Threshold of rows ``X = z / 2``: the closed form after a sort, then one Newton step."""
    zero = xp.asarray(0.0, dtype=X.dtype)
    Xs = xp.sort(X, axis=-1, descending=True)
    finite = Xs > -xp.inf
    Xf = xp.where(finite, Xs, zero)
    k = _arange(xp, X.shape[-1], X)
    mean = xp.cumulative_sum(Xf, axis=-1) / k
    mean_sq = xp.cumulative_sum(Xf * Xf, axis=-1) / k
    # with the top k entries in the support, sum (X_i - tau)^2 = 1 gives tau below
    delta = (1 - k * (mean_sq - mean * mean)) / k
    tau = mean - xp.sqrt(xp.where(delta > 0, delta, zero))
    support = xp.sum(xp.astype((tau <= Xs) & finite, X.dtype), axis=-1, keepdims=True)
    tau = xp.sum(xp.where(k == support, tau, zero), axis=-1, keepdims=True)
    # mean_sq - mean**2 cancels; one Newton step on f(tau) = sum [X - tau]_+^2 - 1 (convex,
    # decreasing, its error squared) restores the digits
    d = xp.where(X > tau, X - tau, zero)
    return tau + (xp.sum(d * d, axis=-1, keepdims=True) - 1) / (
        2 * xp.sum(d, axis=-1, keepdims=True)
    )


def _bisect_p(xp: ModuleType, X: Array, alpha: float, n_iter: int) -> Array:
    """``p`` of rows ``X = (alpha - 1) z`` by bisection on tau, normalised at the end."""
    zero = xp.asarray(0.0, dtype=X.dtype)
    power = 1 / (alpha - 1)
    count = xp.sum(xp.astype(X > -xp.inf, X.dtype), axis=-1, keepdims=True)
    # max X = 0, so p_max <= 1 puts tau >= -1, and p_max >= 1/n puts tau <= -n**(1 - alpha)
    lo = xp.full_like(count, -1.0)
    hi = -(count ** (1 - alpha))

    def step(bounds: tuple[Array, Array]) -> tuple[Array, Array]:
        lo, hi = bounds
        mid = (lo + hi) / 2
        d = xp.where(X > mid, X - mid, zero)
        above = xp.sum(d**power, axis=-1, keepdims=True) >= 1
        return xp.where(above, mid, lo), xp.where(above, hi, mid)

    if is_jax(X):
        import jax

        # a loop XLA keeps rolled: unrolled, 64 steps took 8 s to compile
        lo, hi = jax.lax.fori_loop(0, n_iter, lambda _, b: step(b), (lo, hi))
    else:
        for _ in range(n_iter):
            lo, hi = step((lo, hi))
    p = xp.where(X > lo, X - lo, zero) ** power
    return p / xp.sum(p, axis=-1, keepdims=True)


def _project_rows(x: Array, kind: str, alpha: float, n_iter: int) -> tuple[Array, Array]:
    """``(p, frozen)`` for rows ``x`` (R, n), n > 0; ``frozen`` marks rows whose gradient is 0."""
    xp = namespace(x)
    wide = _wider_float(xp, x)
    work = x if wide is None else xp.astype(x, wide)
    z, m = _shifted(xp, stop_gradient(work), (1,), 1.0)
    # all -inf (or masked) and NaN rows: computed on zeros, then set
    empty = m == -xp.inf
    nan = xp.isnan(m)
    posinf = m == xp.inf
    zero = xp.asarray(0.0, dtype=z.dtype)
    z = xp.where(empty | nan | posinf, zero, z)
    if kind == _SPARSEMAX:
        tau = _sparsemax_tau(xp, z)
        p = xp.where(z > tau, z - tau, zero)
    elif kind == _ENTMAX15:
        X = z / 2
        tau = _entmax15_tau(xp, X)
        d = xp.where(X > tau, X - tau, zero)
        p = d * d
    else:
        p = _bisect_p(xp, (alpha - 1) * z, alpha, n_iter)
    p = xp.where(empty, zero, p)
    # +inf entries share the mass exactly (the projection of a row whose top entries tie)
    top = xp.astype(work == xp.inf, z.dtype)
    p = xp.where(posinf, top / xp.where(posinf, xp.sum(top, axis=-1, keepdims=True), 1.0), p)
    p = xp.where(nan, xp.asarray(xp.nan, dtype=z.dtype), p)
    frozen = ~(xp.abs(m) < xp.inf) & ~nan  # +inf and all -inf rows
    return cast(xp, p, x.dtype), frozen


def _backward_rows(xp: ModuleType, g: Array, p: Array, alpha: float) -> Array:
    """``dx`` for rows: ``s * g - s * sum(s * g) / sum(s)`` with ``s = p**(2 - alpha)`` on the support."""
    zero = xp.asarray(0.0, dtype=p.dtype)
    live = (p > 0) | xp.isnan(p)  # NaN spreads through the sums, staying in its row
    if alpha == 2:
        s = xp.where(xp.isnan(p), p, xp.astype(live, p.dtype))
    elif alpha == 1:
        s = p
    else:
        s = xp.where(live, xp.where(p > 0, p, xp.ones_like(p)) ** (2 - alpha), zero)
        s = xp.where(xp.isnan(p), p, s)
    total = xp.sum(s, axis=-1, keepdims=True)
    sg = s * g
    mean = xp.sum(sg, axis=-1, keepdims=True) / xp.where(total == 0, xp.ones_like(total), total)
    return xp.where(live, sg - s * mean, zero)


# --- differentiable wrappers ----------------------------------------------------------------

_JAX_FUNCTION: Any = None


def _jax_function() -> Any:
    global _JAX_FUNCTION
    if _JAX_FUNCTION is None:
        import functools

        import jax
        import jax.numpy as jnp

        @functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
        def project(x, kind, alpha, n_iter):
            return _project_rows(x, kind, alpha, n_iter)[0]

        def fwd(x, kind, alpha, n_iter):
            p, frozen = _project_rows(x, kind, alpha, n_iter)
            return p, (p, frozen)

        def bwd(kind, alpha, n_iter, res, G):
            p, frozen = res
            dx = _backward_rows(namespace(p), G, p, alpha)
            return (jnp.where(frozen, 0.0, dx).astype(p.dtype),)

        project.defvjp(fwd, bwd)
        _JAX_FUNCTION = jax.jit(project, static_argnums=(1, 2, 3))
    return _JAX_FUNCTION


def _entmax_any(x: Array, axis: Axis, where: Any, alpha: float, n_iter: int) -> Array:
    kind = _kind(alpha)
    prep = _prepare(x, axis, where)
    xp, x = prep.xp, prep.x
    if prep.empty:
        return xp.astype(x, prep.out_dtype)
    if kind != _BISECT and type(x) is np.ndarray:
        out = _sparse_kernels.project(x, prep.axes, kind, prep.out_dtype)
        if out is not None:
            return out
    rows, back = _to_rows(xp, x, prep.axes)
    if is_torch(rows):
        # a torch.library operator (the compiled kernels on CPU) with its autograd formula
        from ._backends import _torch_sparse

        p = _torch_sparse.entmax_rows(rows, kind, alpha, n_iter)
    elif is_jax(rows):
        p = _jax_function()(rows, kind, alpha, n_iter)
    else:
        p = _project_rows(rows, kind, alpha, n_iter)[0]
    return as_result(cast(xp, back(p), prep.out_dtype))


def sparsemax(x: ArrayT, /, axis: Axis = -1, *, where: ArrayT | np.ndarray | None = None) -> ArrayT:
    r"""Sparse probabilities along ``axis``: the Euclidean projection of ``x`` onto the simplex.

    ``p = argmin_{p in simplex} ||p - x||^2 = [x - tau]_+`` with ``tau`` such that
    ``sum(p) = 1`` (Martins & Astudillo 2016).  Entries more than ``1`` below the
    largest always get exactly 0.

    Parameters
    ----------
    x : array, any shape
        Scores, NumPy, PyTorch or JAX; the result is of the same kind.
    axis : int or tuple of ints, default -1
        The axis (or axes) along which the probabilities sum to one.
    where : boolean array broadcastable to ``x.shape``, optional
        Entries where ``where`` is False are left out (probability 0).

    Returns
    -------
    array, the shape of ``x``

    Notes
    -----
    At the edges, as :func:`softmax` decides them: entries masked out by ``where``
    get exactly 0 and have no influence on the others; ``+inf`` entries share the
    mass equally; a slice that is all ``-inf`` or wholly masked gives zeros, with
    gradient 0; a slice holding NaN gives NaN and no other slice is touched;
    float16 and bfloat16 are computed in float32 and returned in their own dtype;
    empty input gives empty output.  Differentiable by torch autograd and
    ``jax.grad`` (also under ``jax.jit``); the gradient lives on the support.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import sparsemax
    >>> sparsemax(np.array([2.0, 1.0, 0.1]))  # cat, dog, elephant
    array([1., 0., 0.])
    >>> sparsemax(np.array([1.0, 0.8, 0.1]))
    array([0.6, 0.4, 0. ])
    """
    return _entmax_any(x, axis, where, 2.0, _DEFAULT_N_ITER)


def entmax15(x: ArrayT, /, axis: Axis = -1, *, where: ArrayT | np.ndarray | None = None) -> ArrayT:
    r"""1.5-entmax along ``axis``: ``p = [x / 2 - tau]_+ ** 2`` with ``sum(p) = 1``.

    The member of the entmax family halfway between softmax and sparsemax
    (Peters, Niculae & Martins 2019): sparse like sparsemax, smoother like
    softmax.  ``tau`` is found exactly (a closed form on the sorted row, or
    the compiled kernel's Newton iteration).

    Parameters
    ----------
    x, axis, where
        As in :func:`sparsemax`.

    Notes
    -----
    Edge cases, dtypes and gradients as in :func:`sparsemax`.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import entmax15
    >>> entmax15(np.array([2.0, 1.0, 0.1])).round(4)  # cat, dog, elephant
    array([0.8307, 0.1693, 0.    ])
    """
    return _entmax_any(x, axis, where, 1.5, _DEFAULT_N_ITER)


def entmax(
    x: ArrayT,
    /,
    alpha: float = 1.5,
    axis: Axis = -1,
    *,
    where: ArrayT | np.ndarray | None = None,
    n_iter: int | None = None,
) -> ArrayT:
    r"""alpha-entmax along ``axis``: ``p = [(alpha - 1) x - tau]_+ ** (1 / (alpha - 1))``.

    ``tau`` makes ``sum(p) = 1``.  ``alpha = 1`` is :func:`softmax`, ``alpha = 1.5``
    :func:`entmax15`, ``alpha = 2`` :func:`sparsemax`; larger ``alpha`` gives sparser
    probabilities.

    Parameters
    ----------
    x, axis, where
        As in :func:`sparsemax`.
    alpha : float >= 1, default 1.5
        A plain number (a tensor that requires grad, or a traced array, is refused:
        its gradient would be dropped).
    n_iter : int, optional
        Bisection steps for ``alpha`` other than 1, 1.5 and 2 (default 64, which
        narrows ``tau`` below float64's resolution); ``p`` is normalised after them.

    Notes
    -----
    Edge cases, dtypes and gradients as in :func:`sparsemax`.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import entmax
    >>> entmax(np.array([2.0, 1.0, 0.1]), alpha=1.25).round(4)
    array([0.7449, 0.2126, 0.0425])
    """
    alpha = _check_alpha(alpha)
    n = _check_n_iter(n_iter)
    if alpha == 1:
        return softmax(x, axis, where=where)
    return _entmax_any(x, axis, where, alpha, n)


# --- backward -------------------------------------------------------------------------------


def _backward_public(grad: Array, p: Array, axis: Axis, alpha: float) -> Array:
    xp, g, y, axes, out = _pair(grad, p, "p", axis)
    if math.prod(y.shape) == 0:
        return as_result(xp.astype(g, out))
    if not axes:  # each entry its own slice: the gradient of p = 1 is 0
        return as_result(xp.astype(xp.zeros_like(g), out))
    if type(y) is np.ndarray and alpha in (1.5, 2.0):
        dx = _sparse_kernels.backward(g, y, axes, alpha, out)
        if dx is not None:
            return dx
    g_rows, back = _to_rows(xp, g, axes)
    p_rows, _ = _to_rows(xp, y, axes)
    return as_result(cast(xp, back(_backward_rows(xp, g_rows, p_rows, alpha)), out))


def sparsemax_backward(grad: ArrayT, p: ArrayT, /, axis: Axis = -1) -> ArrayT:
    r"""The vector-Jacobian product of :func:`sparsemax`: ``s * (grad - mean_S(grad))``.

    ``s`` marks the support (``p > 0``) and ``mean_S`` averages over it; entries
    outside the support get gradient 0.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import sparsemax_backward
    >>> sparsemax_backward(np.array([1.0, 0.0, 5.0]), np.array([0.6, 0.4, 0.0]))
    array([ 0.5, -0.5,  0. ])
    """
    return _backward_public(grad, p, axis, 2.0)


def entmax_backward(grad: ArrayT, p: ArrayT, /, alpha: float, axis: Axis = -1) -> ArrayT:
    r"""The vector-Jacobian product of :func:`entmax`: ``s * grad - s * sum(s * grad) / sum(s)``.

    ``s = p ** (2 - alpha)`` on the support (``p > 0``), 0 elsewhere; ``alpha = 1``
    gives :func:`softmax_backward`, ``alpha = 2`` :func:`sparsemax_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import entmax_backward
    >>> entmax_backward(np.array([1.0, 0.0]), np.array([0.25, 0.75]), alpha=1.5).round(4)
    array([ 0.317, -0.317])
    """
    return _backward_public(grad, p, axis, _check_alpha(alpha))


# --- Fenchel-Young losses -------------------------------------------------------------------


def _tsallis(xp: ModuleType, p: Array, alpha: float) -> Array:
    """``H(p) = (1 - sum p**alpha) / (alpha (alpha - 1))`` per row (the last axis)."""
    return (1 - xp.sum(p**alpha, axis=-1)) / (alpha * (alpha - 1))


def _fy_terms(plan: Any, alpha: float, n_iter: int) -> tuple[Array, Array, Array]:
    """``(main, p, frozen)``: row losses ``sum(q) * (<p, z> + H(p)) - <q, z>``, ``z = x - max``."""
    xp, x, q = plan.xp, plan.x, plan.q
    zero = xp.asarray(0.0, dtype=x.dtype)
    if x.shape[-1] == 0:
        return xp.sum(x, axis=-1), x, xp.zeros((*x.shape[:-1], 1), dtype=xp.bool)
    p = entmax(x, alpha, -1, n_iter=n_iter) if alpha != 2 else sparsemax(x, -1)
    pd = stop_gradient(p)
    z, m = _shifted(xp, x, (x.ndim - 1,), 1.0)
    frozen = ~(xp.abs(m) < xp.inf) & ~xp.isnan(m)
    zc = xp.where(pd > 0, z, zero)
    # Omega*(x) - max = <p, z> + H(p); its gradient is p (Danskin), carried by the
    # zero-valued term <p, zc - stop(zc)> so that autograd needs no derivative of p
    conj = xp.sum(pd * stop_gradient(zc), axis=-1) + _tsallis(xp, pd, alpha)
    if _in_graph(x):
        conj = conj + xp.sum(pd * (zc - stop_gradient(zc)), axis=-1)
    sum_q = xp.sum(q, axis=-1)
    main = sum_q * conj - xp.sum(q * xp.where(q == 0, zero, z), axis=-1)
    return main, p, frozen


def _fy_loss(logits, target, alpha, n_iter, options, need_grad):
    plan = _plan(logits, target, name="logits", **options)
    main, p, frozen = _fy_terms(plan, alpha, n_iter)
    xp = plan.xp
    loss = _reduce(plan, main, xp.zeros_like(main))
    if not need_grad:
        return loss
    x = plan.x
    zero = xp.asarray(0.0, dtype=x.dtype)
    main_scale, _ = _row_scales(plan, x.dtype)
    # as cross_entropy_grad: target mass on a -inf logit drops out, a +inf row gets 0
    q = xp.where(x == -xp.inf, zero, plan.q)
    dx = (xp.sum(q, axis=-1, keepdims=True) * p - q) * main_scale
    if x.shape[-1]:
        dx = xp.where(frozen, zero, dx)
    dlogits = _moveaxis(xp, dx, -1, plan.axis)
    return loss, as_result(xp.astype(dlogits, plan.out_dtype))


def _options(axis, weight, ignore_index, reduction, label_smoothing) -> dict[str, Any]:
    return dict(
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def sparsemax_loss(
    logits: ArrayT,
    target: ArrayT,
    /,
    *,
    axis: int = -1,
    weight: ArrayT | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> ArrayT:
    r"""The sparsemax loss: :func:`entmax_loss` with ``alpha = 2``.

    Per row ``loss = sum(q) * (<p, x> + (1 - ||p||^2) / 2) - <q, x>`` with
    ``p = sparsemax(x)`` and ``q`` the (weighted, smoothed) target; 0 exactly
    when the target is one-hot and ``p`` equals it.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import sparsemax_loss
    >>> logits = np.array([[2.0, 1.0, 0.1], [1.0, 0.8, 0.1]])  # cat, dog, elephant
    >>> sparsemax_loss(logits, np.array([0, 1]), reduction="none").round(4)
    array([0.  , 0.36])
    """
    return _fy_loss(
        logits,
        target,
        2.0,
        _DEFAULT_N_ITER,
        _options(axis, weight, ignore_index, reduction, label_smoothing),
        False,
    )


def sparsemax_loss_grad(
    logits: ArrayT,
    target: ArrayT,
    /,
    *,
    axis: int = -1,
    weight: ArrayT | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> tuple[ArrayT, ArrayT]:
    """``(loss, dlogits)``: :func:`sparsemax_loss` and its gradient ``sum(q) * p - q``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import sparsemax_loss_grad
    >>> _, g = sparsemax_loss_grad(np.array([[1.0, 0.8, 0.1]]), np.array([1]))
    >>> g.round(4).tolist()
    [[0.6, -0.6, 0.0]]
    """
    return _fy_loss(
        logits,
        target,
        2.0,
        _DEFAULT_N_ITER,
        _options(axis, weight, ignore_index, reduction, label_smoothing),
        True,
    )


def entmax_loss(
    logits: ArrayT,
    target: ArrayT,
    /,
    alpha: float = 1.5,
    *,
    axis: int = -1,
    weight: ArrayT | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    n_iter: int | None = None,
) -> ArrayT:
    r"""The entmax (Fenchel-Young) loss of ``entmax(logits, alpha)`` against ``target``.

    Per row, with ``p = entmax(x, alpha)``, ``H`` the Tsallis entropy
    ``H(p) = (1 - sum p**alpha) / (alpha (alpha - 1))`` and ``q`` the weighted
    target of :func:`cross_entropy` (class indices or probabilities, ``weight``,
    ``label_smoothing``; 0 on ignored rows):

    ``loss = sum(q) * (<p, x> + H(p)) - <q, x>``,

    whose gradient is ``sum(q) * p - q``.  ``<p, x> + H(p)`` is the convex
    conjugate of ``-H`` (for ``alpha = 1``, ``logsumexp``), so for a one-hot ``q``
    this is the Fenchel-Young loss of Blondel et al. (2020); for other targets
    it leaves out ``-H(q)``, which does not depend on ``logits`` (as
    cross-entropy leaves out the target's own entropy).  ``alpha = 1`` is
    :func:`cross_entropy`.

    Parameters
    ----------
    logits, target, axis, weight, ignore_index, reduction, label_smoothing
        As in :func:`cross_entropy`.
    alpha : float >= 1, default 1.5
    n_iter : int, optional
        As in :func:`entmax`.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import entmax_loss
    >>> logits = np.array([[2.0, 1.0, 0.1]])  # cat, dog, elephant
    >>> round(float(entmax_loss(logits, np.array([0]))), 4)
    0.0617
    """
    alpha = _check_alpha(alpha)
    n = _check_n_iter(n_iter)
    options = _options(axis, weight, ignore_index, reduction, label_smoothing)
    if alpha == 1:
        return cross_entropy(logits, target, **options)
    return _fy_loss(logits, target, alpha, n, options, False)


def entmax_loss_grad(
    logits: ArrayT,
    target: ArrayT,
    /,
    alpha: float = 1.5,
    *,
    axis: int = -1,
    weight: ArrayT | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    n_iter: int | None = None,
) -> tuple[ArrayT, ArrayT]:
    """``(loss, dlogits)``: :func:`entmax_loss` and its gradient ``sum(q) * p - q``.

    ``"mean"`` divides the gradient as :func:`cross_entropy_grad` does.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import entmax_loss_grad
    >>> _, g = entmax_loss_grad(np.array([[2.0, 1.0, 0.1]]), np.array([0]))
    >>> g.round(4).tolist()
    [[-0.1693, 0.1693, 0.0]]
    """
    alpha = _check_alpha(alpha)
    n = _check_n_iter(n_iter)
    options = _options(axis, weight, ignore_index, reduction, label_smoothing)
    if alpha == 1:
        return cross_entropy_grad(logits, target, **options)
    return _fy_loss(logits, target, alpha, n, options, True)
