"""The adaptive softmax of Grave et al. (2017), in PyTorch's layout, on every array library.

Classes are numbered by falling frequency and cut at ``cutoffs = [c_0, c_1,
..., c_K = n_classes]``: the ``c_0`` most frequent form the *shortlist*,
scored by a head softmax over ``c_0 + K`` entries (the shortlist and one
entry per tail cluster); cluster ``i`` holds classes ``[c_i, c_{i+1})``, scored
by its own softmax after a projection to a smaller dimension ``h_i``:

    log p(y) = log_softmax(head(x))[y]                             y < c_0
    log p(y) = log_softmax(head(x))[c_0 + i]
               + log_softmax(out_i(proj_i(x)))[y - c_i]            c_i <= y < c_{i+1}

``head(x) = x @ head_weight.T + head_bias``, ``proj_i(x) = x @ proj_i.T``
(``proj_i``: (h_i, D)), ``out_i(u) = u @ out_i.T`` (``out_i``: (V_i, h_i)),
exactly the parameters of ``torch.nn.AdaptiveLogSoftmaxWithLoss``.  The loss
only evaluates the clusters that hold a target of the batch, each on the rows
whose target it holds, as PyTorch's does.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from ._backend import (
    as_array,
    as_result,
    compute_dtype,
    fused,
    is_concrete,
    is_jax,
    namespace,
    to_numpy,
)
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._hierarchical import reduce_rows
from ._options import (
    check_ignore_index,
    check_indices,
    check_label_smoothing,
    check_reduction,
    not_ignored,
)
from ._softmax import log_softmax
from ._typing import ArrayT, Reduction

__all__ = ["adaptive_log_softmax", "adaptive_softmax_loss"]

Array = Any


def _shape(a: Array) -> tuple[int, ...]:
    return tuple(int(n) for n in a.shape)


def check_cutoffs(cutoffs: Any, n_classes: int | None = None) -> list[int]:
    """``cutoffs`` as a list of positive, strictly increasing ints (below ``n_classes`` if given)."""
    if isinstance(cutoffs, (str, bytes)) or not isinstance(cutoffs, Sequence):
        raise SoftmaxkitTypeError(f"`cutoffs` must be a sequence of ints; got {cutoffs!r}")
    out = []
    for c in cutoffs:
        try:
            if isinstance(c, bool | np.bool_):
                raise TypeError
            out.append(operator.index(c))
        except TypeError:
            raise SoftmaxkitTypeError(
                f"`cutoffs` must be a sequence of ints; got {list(cutoffs)!r}"
            ) from None
    if not out:
        raise SoftmaxkitValueError("`cutoffs` must hold at least one cutoff; got []")
    if out[0] <= 0:
        raise SoftmaxkitValueError(f"`cutoffs` must be positive; position 0 holds {out[0]}")
    for i in range(1, len(out)):
        if out[i] <= out[i - 1]:
            kind = "a duplicate" if out[i] == out[i - 1] else "a decrease"
            raise SoftmaxkitValueError(
                f"`cutoffs` must be strictly increasing; position {i} holds {out[i]} after "
                f"{out[i - 1]} ({kind}); got {out}"
            )
    if n_classes is not None and out[-1] >= n_classes:
        raise SoftmaxkitValueError(
            f"`cutoffs` must each be below `n_classes` ({n_classes}), so that every cluster "
            f"holds a class; got {out}"
        )
    return out


class _Layer(NamedTuple):
    """The validated layer: arrays of the caller's library, cutoffs ending in n_classes."""

    xp: ModuleType
    x: Array  # (N, D), working dtype
    head_weight: Array  # (c_0 + K, D)
    head_bias: Array | None
    tails: list[tuple[Array, Array]]  # K pairs (proj (h_i, D), out (V_i, h_i))
    cutoffs: list[int]  # [c_0, ..., c_K = n_classes]
    out_dtype: Any

    @property
    def shortlist(self) -> int:
        return self.cutoffs[0]

    @property
    def n_classes(self) -> int:
        return self.cutoffs[-1]


def _layer(
    inputs: Array, head_weight: Array, tail_weights: Any, cutoffs: Any, head_bias: Array | None
) -> _Layer:
    head_weight = as_array(head_weight, "head_weight")
    xp = namespace(head_weight)
    inputs = as_array(inputs, "inputs", xp)
    head_bias = None if head_bias is None else as_array(head_bias, "head_bias", xp)
    if isinstance(tail_weights, (str, bytes)) or not isinstance(tail_weights, Sequence):
        raise SoftmaxkitTypeError(
            "`tail_weights` must be a sequence of (projection, output) weight pairs; got "
            f"{type(tail_weights).__name__}"
        )
    tails = []
    for i, pair in enumerate(tail_weights):
        if not isinstance(pair, Sequence) or len(pair) != 2:
            raise SoftmaxkitTypeError(
                f"`tail_weights[{i}]` must be a pair (projection (h, D), output (V_i, h)); got "
                f"{type(pair).__name__}"
            )
        tails.append(
            (
                as_array(pair[0], f"tail_weights[{i}][0]", xp),
                as_array(pair[1], f"tail_weights[{i}][1]", xp),
            )
        )
    if not tails:
        raise SoftmaxkitValueError("`tail_weights` must hold at least one cluster; got none")
    arrays = [head_weight, inputs, head_bias, *(a for pair in tails for a in pair)]
    names = ["head_weight", "inputs", "head_bias"]
    names += [f"tail_weights[{i}][{j}]" for i in range(len(tails)) for j in (0, 1)]
    xp = namespace(*arrays, names=names)

    k = len(tails)
    cut = check_cutoffs(cutoffs)
    if len(cut) == k:  # as given to the module: n_classes follows from the last cluster
        if tails[-1][1].ndim != 2:
            raise SoftmaxkitValueError(
                f"`tail_weights[{k - 1}][1]` must be 2-d, (cluster size, h); got shape "
                f"{_shape(tails[-1][1])}"
            )
        cut = [*cut, cut[-1] + int(tails[-1][1].shape[0])]
    elif len(cut) != k + 1:
        raise SoftmaxkitValueError(
            f"`cutoffs` must hold {k} cutoffs for the {k} clusters of `tail_weights` (or {k + 1}, "
            f"ending in n_classes, as the module's `cutoffs` attribute); got {len(cut)}: {cut}"
        )
    if head_weight.ndim != 2 or head_weight.shape[0] != cut[0] + k:
        raise SoftmaxkitValueError(
            f"`head_weight` must have shape ({cut[0] + k}, dim): the {cut[0]} classes of the "
            f"shortlist and one row per cluster; got shape {_shape(head_weight)}"
        )
    dim = int(head_weight.shape[1])
    if inputs.ndim != 2 or inputs.shape[1] != dim:
        raise SoftmaxkitValueError(
            f"`inputs` must have shape (batch, {dim}) to match `head_weight` of shape "
            f"{_shape(head_weight)}; got shape {_shape(inputs)}"
        )
    if head_bias is not None and _shape(head_bias) != (cut[0] + k,):
        raise SoftmaxkitValueError(
            f"`head_bias` must have shape ({cut[0] + k},); got shape {_shape(head_bias)}"
        )
    for i, (proj, out) in enumerate(tails):
        if proj.ndim != 2 or proj.shape[1] != dim:
            raise SoftmaxkitValueError(
                f"`tail_weights[{i}][0]` (projection) must have shape (h, {dim}); got shape "
                f"{_shape(proj)}"
            )
        size = cut[i + 1] - cut[i]
        if out.ndim != 2 or _shape(out) != (size, int(proj.shape[0])):
            raise SoftmaxkitValueError(
                f"`tail_weights[{i}][1]` (output) must have shape ({size}, {int(proj.shape[0])}):"
                f" the classes [{cut[i]}, {cut[i + 1]}) of cluster {i} by the projection's h; "
                f"got shape {_shape(out)}"
            )
    dtypes = [a.dtype for a in arrays if a is not None]
    work, out_dtype = compute_dtype(xp, xp.result_type(*dtypes))
    return _Layer(xp, xp.astype(inputs, work), head_weight, head_bias, tails, cut, out_dtype)


def _linear(xp: ModuleType, x: Array, weight: Array, bias: Array | None = None) -> Array:
    y = xp.matmul(x, xp.permute_dims(xp.astype(weight, x.dtype, copy=False), (1, 0)))
    return y if bias is None else y + xp.astype(bias, x.dtype, copy=False)


def _head_log_probs(layer: _Layer) -> Array:
    return log_softmax(_linear(layer.xp, layer.x, layer.head_weight, layer.head_bias), axis=-1)


def _cluster_log_probs(layer: _Layer, i: int, x: Array) -> Array:
    proj, out = layer.tails[i]
    xp = layer.xp
    return log_softmax(_linear(xp, _linear(xp, x, proj), out), axis=-1)


def _full_log_probs(layer: _Layer) -> Array:
    args = (layer.x, layer.head_weight, layer.head_bias, layer.tails)
    return fused(_full_core, *args, shortlist=layer.shortlist)


def _pick(xp: ModuleType, logp: Array, index: Array) -> Array:
    return xp.take_along_axis(logp, index[:, None], axis=1)[:, 0]


def _target_log_probs(layer: _Layer, target: Array, ignore_index: int) -> tuple[Array, Array]:
    """``(log p(target), kept)`` per row, evaluating each cluster on its own rows only."""
    xp, x, cut, s = layer.xp, layer.x, layer.cutoffs, layer.shortlist
    device = array_api_compat.device(x)
    n = int(x.shape[0])
    y = to_numpy(target)
    check_indices(y, layer.n_classes, ignore_index, name="target")
    keep = y != ignore_index
    safe = np.where(keep, y, 0).astype(np.int64)
    cluster = np.searchsorted(np.asarray(cut), safe, side="right")  # 0: the shortlist
    head_index = np.where(cluster == 0, safe, s + cluster - 1)
    head = _head_log_probs(layer)
    head_part = _pick(xp, head, xp.asarray(head_index, device=device))
    pieces, rows_in_order = [], []
    for i in range(len(layer.tails)):
        rows = np.flatnonzero(keep & (cluster == i + 1))
        if rows.size == 0:
            continue
        logp = _cluster_log_probs(layer, i, xp.take(x, xp.asarray(rows, device=device), axis=0))
        relative = xp.asarray(safe[rows] - cut[i], device=device)
        pieces.append(_pick(xp, logp, relative))
        rows_in_order.append(rows)
    if not pieces:
        output = head_part
    else:
        rows = np.concatenate(rows_in_order)
        rest = n - rows.size
        pieces.append(xp.zeros((rest,), dtype=x.dtype, device=device))
        order = np.concatenate([rows, np.setdiff1d(np.arange(n), rows, assume_unique=True)])
        inverse = np.empty(n, dtype=np.int64)
        inverse[order] = np.arange(n)
        tail_part = xp.take(xp.concat(pieces), xp.asarray(inverse, device=device))
        output = head_part + tail_part
    kept = xp.asarray(keep, device=device)
    return xp.where(kept, output, xp.zeros_like(output)), kept


def _dense_core(
    x: Array,
    head_weight: Array,
    head_bias: Array | None,
    tails: list[tuple[Array, Array]],
    target: Array,
    *,
    cutoffs: tuple[int, ...],
    ignore_index: int,
    eps: float,
    reduction: str,
) -> tuple[Array, Array]:
    """``(output, loss)`` with every cluster evaluated on every row.

    What label smoothing needs (it reads every class), and what JAX runs, as
    one compiled computation (which rows a cluster holds is not known while
    tracing, and a shape per batch would recompile at every step).
    """
    xp = namespace(x)
    s = cutoffs[0]
    kept = not_ignored(xp, target, ignore_index)
    t = xp.astype(xp.where(kept, target, xp.zeros_like(target)), xp.int64)
    cluster = xp.zeros_like(t)
    for c in cutoffs[:-1]:
        cluster = cluster + xp.astype(t >= c, xp.int64)
    head = log_softmax(_linear(xp, x, head_weight, head_bias), axis=-1)
    output = _pick(xp, head, xp.where(cluster == 0, t, s - 1 + cluster))
    total = xp.sum(head[:, :s], axis=1)
    for i, (proj, out) in enumerate(tails):
        logp = log_softmax(_linear(xp, _linear(xp, x, proj), out), axis=-1)
        size = cutoffs[i + 1] - cutoffs[i]
        here = _pick(xp, logp, xp.clip(t - cutoffs[i], 0, size - 1))
        output = output + xp.where(cluster == i + 1, here, xp.zeros_like(here))
        total = total + size * head[:, s + i] + xp.sum(logp, axis=1)
    zero = xp.zeros_like(output)
    output = xp.where(kept, output, zero)
    losses = xp.where(kept, -(1 - eps) * output - (eps / cutoffs[-1]) * total, zero)
    return output, reduce_rows(xp, losses, kept, reduction)


def _full_core(
    x: Array,
    head_weight: Array,
    head_bias: Array | None,
    tails: list[tuple[Array, Array]],
    *,
    shortlist: int,
) -> Array:
    xp = namespace(x)
    head = log_softmax(_linear(xp, x, head_weight, head_bias), axis=-1)
    parts = [head[:, :shortlist]]
    for i, (proj, out) in enumerate(tails):
        logp = log_softmax(_linear(xp, _linear(xp, x, proj), out), axis=-1)
        parts.append(logp + head[:, shortlist + i : shortlist + i + 1])
    return xp.concat(parts, axis=1)


def _check_target(layer: _Layer, target: Array) -> Array:
    xp, x = layer.xp, layer.x
    target = as_array(target, "target", xp)
    namespace(x, target, names=("inputs", "target"))
    if not xp.isdtype(target.dtype, "integral"):
        raise SoftmaxkitTypeError(
            f"`target` must hold integer class indices; got dtype {target.dtype}"
        )
    n = int(x.shape[0])
    if _shape(target) != (n,):
        raise SoftmaxkitValueError(
            f"`target` must have shape ({n},) to match `inputs` of shape {_shape(x)}; got shape "
            f"{_shape(target)}"
        )
    return target


def adaptive_forward(
    inputs: Array,
    head_weight: Array,
    tail_weights: Any,
    target: Array,
    cutoffs: Any,
    *,
    head_bias: Array | None,
    reduction: str,
    ignore_index: int,
    label_smoothing: float,
) -> tuple[Array, Array]:
    """``(output, loss)``: each row's ``log p(target)`` (0 where ignored) and the loss."""
    reduction = check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    eps = check_label_smoothing(label_smoothing)
    layer = _layer(inputs, head_weight, tail_weights, cutoffs, head_bias)
    xp = layer.xp
    target = _check_target(layer, target)
    if eps == 0 and not is_jax(target):
        output, kept = _target_log_probs(layer, target, ignore_index)
        loss = reduce_rows(xp, -output, kept, reduction)
    else:
        if is_concrete(target):
            check_indices(to_numpy(target), layer.n_classes, ignore_index, name="target")
        output, loss = fused(
            _dense_core,
            layer.x,
            layer.head_weight,
            layer.head_bias,
            layer.tails,
            target,
            cutoffs=tuple(layer.cutoffs),
            ignore_index=ignore_index,
            eps=eps,
            reduction=reduction,
        )
    out = layer.out_dtype
    return (
        as_result(xp.astype(output, out, copy=False)),
        as_result(xp.astype(loss, out, copy=False)),
    )


def adaptive_log_softmax(
    inputs: ArrayT,
    head_weight: ArrayT,
    tail_weights: Sequence[tuple[ArrayT, ArrayT]],
    cutoffs: Sequence[int],
    /,
    *,
    head_bias: ArrayT | None = None,
) -> ArrayT:
    r"""The full (N, n_classes) log-probabilities of an adaptive softmax.

    ``out[:, :c_0] = log_softmax(head)[:, :c_0]`` and, for cluster ``i``,
    ``out[:, c_i:c_{i+1}] = log_softmax(head)[:, c_0 + i] + log_softmax(out_i(proj_i(x)))``
    (see :mod:`softmaxkit._adaptive`); ``torch.nn.AdaptiveLogSoftmaxWithLoss.log_prob``.

    Parameters
    ----------
    inputs : array of shape (N, D)
        NumPy, PyTorch or JAX, differentiable by the library's autograd.
    head_weight : array of shape (c_0 + K, D)
        The head: the shortlist's classes, then one row per cluster (the
        module's ``head.weight``).
    tail_weights : sequence of K pairs ``(proj_i, out_i)``
        ``proj_i`` of shape (h_i, D) and ``out_i`` of shape (V_i, h_i), with
        ``V_i = c_{i+1} - c_i`` (the module's ``tail[i][0].weight`` and
        ``tail[i][1].weight``).
    cutoffs : sequence of ints
        ``[c_0, ..., c_{K-1}]`` as given to the module, or with ``n_classes``
        appended as the module's ``cutoffs`` attribute holds it; positive and
        strictly increasing.
    head_bias : array of shape (c_0 + K,), optional
        The head's bias (``head_bias=True`` in the module).

    Returns
    -------
    array of shape (N, n_classes)
        Each row log-sum-exps to 0 up to rounding.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import adaptive_log_softmax
    >>> rng = np.random.default_rng(0)
    >>> x, head = rng.normal(size=(2, 8)), rng.normal(size=(4 + 2, 8))
    >>> tails = [(rng.normal(size=(2, 8)), rng.normal(size=(6, 2))),   # classes 4..9
    ...          (rng.normal(size=(1, 8)), rng.normal(size=(10, 1)))]  # classes 10..19
    >>> logp = adaptive_log_softmax(x, head, tails, [4, 10])
    >>> logp.shape, np.exp(logp).sum(axis=1).round(12).tolist()
    ((2, 20), [1.0, 1.0])
    """
    layer = _layer(inputs, head_weight, tail_weights, cutoffs, head_bias)
    out = _full_log_probs(layer)
    return as_result(layer.xp.astype(out, layer.out_dtype, copy=False))


def adaptive_softmax_loss(
    inputs: ArrayT,
    head_weight: ArrayT,
    tail_weights: Sequence[tuple[ArrayT, ArrayT]],
    target: ArrayT,
    cutoffs: Sequence[int],
    /,
    *,
    head_bias: ArrayT | None = None,
    reduction: Reduction = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> ArrayT:
    r"""Cross-entropy of an adaptive softmax: ``-log p(target)`` per row, reduced.

    With ``eps = label_smoothing`` and ``C = n_classes``, the row loss is
    ``-(1 - eps) * log p(y) - eps / C * sum_c log p(c)``: the smoothing of
    :func:`softmaxkit.cross_entropy` applied to the full distribution of
    :func:`adaptive_log_softmax`, whose class-sum is computed per cluster as
    ``V_i * log_softmax(head)[c_0 + i] + sum_j log_softmax(cluster_i)[j]``.

    Parameters
    ----------
    inputs, head_weight, tail_weights, cutoffs, head_bias
        As in :func:`adaptive_log_softmax`.
    target : int array of shape (N,)
        Classes in ``[0, n_classes)``, or ``ignore_index``.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in :func:`softmaxkit.cross_entropy`: "mean" divides by the rows not
        ignored (PyTorch's module has no ignore_index and takes the plain mean).
    ignore_index : int, default -100
        Rows with this target add nothing to the loss or the gradient.
    label_smoothing : float in [0, 1], default 0
        ``eps`` above.

    Returns
    -------
    array, 0-d or of shape (N,)

    Notes
    -----
    Without smoothing, a cluster is evaluated only on the rows whose target it
    holds (PyTorch's way, which makes training cheap); the head on every row.
    Smoothing reads every class, so it evaluates every cluster on every row,
    the cost of :func:`adaptive_log_softmax`.  So does JAX, in one compiled
    computation: which rows a cluster holds has no fixed shape to trace (under
    ``jax.jit`` the target values are not checked).

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import adaptive_log_softmax, adaptive_softmax_loss
    >>> rng = np.random.default_rng(0)
    >>> x, head = rng.normal(size=(3, 8)), rng.normal(size=(4 + 1, 8))
    >>> tails = [(rng.normal(size=(2, 8)), rng.normal(size=(6, 2)))]  # classes 4..9
    >>> y = np.array([1, 7, 9])
    >>> loss = adaptive_softmax_loss(x, head, tails, y, [4], reduction="none")
    >>> logp = adaptive_log_softmax(x, head, tails, [4])
    >>> np.allclose(loss, -logp[np.arange(3), y])
    True
    """
    _, loss = adaptive_forward(
        inputs,
        head_weight,
        tail_weights,
        target,
        cutoffs,
        head_bias=head_bias,
        reduction=reduction,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    return loss


def adaptive_predict(
    inputs: Array, head_weight: Array, tail_weights: Any, cutoffs: Any, head_bias: Array | None
) -> Array:
    """The most probable class per row, computing the tails only for rows that need them.

    A class of cluster ``i`` has ``log p <= log_softmax(head)[c_0 + i]``, so a
    row whose head argmax is in the shortlist has its answer (PyTorch's shortcut).
    """
    layer = _layer(inputs, head_weight, tail_weights, cutoffs, head_bias)
    xp = layer.xp
    head = _head_log_probs(layer)
    best = xp.argmax(head, axis=1)
    if not is_concrete(best):
        return xp.argmax(_full_log_probs(layer), axis=1)
    outside = np.flatnonzero(to_numpy(best) >= layer.shortlist)
    if outside.size == 0:
        return best
    device = array_api_compat.device(layer.x)
    rows = xp.asarray(outside, device=device)
    sub = layer._replace(x=xp.take(layer.x, rows, axis=0))
    answer = xp.argmax(_full_log_probs(sub), axis=1)
    if outside.size == int(best.shape[0]):
        return answer
    mask = np.zeros(int(best.shape[0]), dtype=np.int64)
    mask[outside] = np.arange(outside.size)
    is_out = np.zeros(int(best.shape[0]), dtype=bool)
    is_out[outside] = True
    spread = xp.take(answer, xp.asarray(mask, device=device))
    return xp.where(xp.asarray(is_out, device=device), spread, best)
