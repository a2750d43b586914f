"""In-batch softmax for two-tower retrieval, with the sampling-bias correction.

A batch holds ``B`` pairs ``(queries[i], candidates[i])``; each query is scored
against every candidate of the batch (and any extra sampled candidates, for
mixed negative sampling), and row ``i`` is a softmax cross-entropy whose
target is its own candidate:

    logits[i, j] = queries[i] . candidates[j] / temperature - log_q[j]
    loss[i]      = -log_softmax(logits[i])[i]

The other rows' candidates are negatives drawn with the items' frequency in
the training stream, so without ``- log_q`` the model learns to push popular
items down (Yi et al., RecSys 2019, eq. 3).  A negative that is the row's own
positive item (same id) is an accidental hit and gets logit ``-inf``.

One code path serves NumPy, PyTorch and JAX; the softmax cross-entropy itself
is :func:`softmaxkit.cross_entropy` on the logit matrix.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, NamedTuple

import array_api_compat

from ._backend import (
    as_array,
    as_result,
    compute_dtype,
    fused,
    is_concrete,
    is_numpy,
    is_torch,
    namespace,
    to_numpy,
    validate_temperature,
)
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._losses import cross_entropy, cross_entropy_grad
from ._options import check_reduction
from ._typing import ArrayT, Reduction

__all__ = ["in_batch_softmax_loss", "in_batch_softmax_loss_grad"]

Array = Any


class _Others(NamedTuple):
    """The optional arrays of a call (a JAX pytree, so ``jax.jit`` takes it whole)."""

    extra: Array | None  # (M, D)
    log_q: Array | None  # (B,)
    extra_log_q: Array | None  # (M,)
    same: Array | None  # (B, B) bool: another row's candidate is my positive item
    extra_same: Array | None  # (B, M) bool: an extra candidate is my positive item


class _Batch(NamedTuple):
    """Validated arguments, as arrays of the caller's library in the working dtype."""

    xp: ModuleType
    queries: Array  # (B, D)
    candidates: Array  # (B, D)
    others: _Others
    temperature: float
    reduction: str
    symmetric: bool
    out_dtype: Any


def _shape(a: Array) -> tuple[int, ...]:
    return tuple(int(n) for n in a.shape)


def _like(value: Any, name: str, xp: ModuleType, like: Array) -> Array:
    """``value`` as an array of ``xp`` on the device of ``like`` (lists and NumPy converted)."""
    value = as_array(value, name, xp)
    if is_numpy(value) and not is_numpy(like):
        value = xp.asarray(value, device=array_api_compat.device(like))
    namespace(like, value)  # refuses arrays of two libraries
    return value


def _check_ids(ids: Any, name: str, size: int, what: str, xp: ModuleType, like: Array) -> Array:
    ids = _like(ids, name, xp, like)
    if not xp.isdtype(ids.dtype, "integral"):
        raise SoftmaxkitTypeError(f"`{name}` must hold integer ids; got dtype {ids.dtype}")
    if _shape(ids) != (size,):
        raise SoftmaxkitValueError(
            f"`{name}` must have shape ({size},), one id per {what}; got shape {_shape(ids)}"
        )
    return ids


def _check_log_q(log_q: Any, name: str, size: int, what: str, xp: ModuleType, like: Array):
    log_q = _like(log_q, name, xp, like)
    if _shape(log_q) != (size,):
        raise SoftmaxkitValueError(
            f"`{name}` must have shape ({size},), one log-probability per {what}; got shape "
            f"{_shape(log_q)}"
        )
    # Values are checked where they are at hand: not under jax.jit (a tracer), and not
    # on an accelerator, where the copy to the host would stall every training step.
    on_host = is_concrete(log_q) and not (is_torch(log_q) and log_q.device.type != "cpu")
    if on_host:
        values = to_numpy(log_q)
        bad = ~(values == values) | (abs(values) == math.inf)
        if bad.any():
            pos = int(bad.nonzero()[0][0])
            raise SoftmaxkitValueError(
                f"`{name}` must be finite (the log of a positive sampling probability); "
                f"position {pos} holds {values[pos].item()!r}"
            )
    return log_q


def _prepare(
    queries: Array,
    candidates: Array,
    *,
    candidate_ids: Any,
    log_q: Any,
    temperature: Any,
    remove_accidental_hits: bool,
    extra_candidates: Any,
    extra_ids: Any,
    extra_log_q: Any,
    reduction: Any,
    symmetric: bool,
) -> _Batch:
    reduction = check_reduction(reduction)
    t = validate_temperature(temperature)
    queries = as_array(queries, "queries")
    xp = namespace(queries)
    candidates = _like(candidates, "candidates", xp, queries)
    if queries.ndim != 2 or queries.shape[0] == 0:
        raise SoftmaxkitValueError(
            f"`queries` must have shape (B, D) with B >= 1; got shape {_shape(queries)}"
        )
    batch, dim = _shape(queries)
    if _shape(candidates) != (batch, dim):
        raise SoftmaxkitValueError(
            f"`candidates` must have shape ({batch}, {dim}), one row per row of `queries` of "
            f"shape {_shape(queries)}; got shape {_shape(candidates)}"
        )
    dtypes = [queries.dtype, candidates.dtype]
    extra = None
    if extra_candidates is not None:
        extra = _like(extra_candidates, "extra_candidates", xp, queries)
        if extra.ndim != 2 or extra.shape[1] != dim:
            raise SoftmaxkitValueError(
                f"`extra_candidates` must have shape (M, {dim}) to match `queries` of shape "
                f"{_shape(queries)}; got shape {_shape(extra)}"
            )
        dtypes.append(extra.dtype)
    else:
        for name, value in (("extra_ids", extra_ids), ("extra_log_q", extra_log_q)):
            if value is not None:
                raise SoftmaxkitValueError(f"`{name}` is given but `extra_candidates` is not")
    num_extra = 0 if extra is None else int(extra.shape[0])

    ids = extra_id = None
    if candidate_ids is not None:
        ids = _check_ids(candidate_ids, "candidate_ids", batch, "row of `candidates`", xp, queries)
    if extra_ids is not None:
        if ids is None:
            raise SoftmaxkitValueError(
                "`extra_ids` is given but `candidate_ids` is not: extra candidates can only be "
                "compared with the rows' positive ids"
            )
        extra_id = _check_ids(extra_ids, "extra_ids", num_extra, "extra candidate", xp, queries)
    if remove_accidental_hits and ids is not None and extra is not None and extra_id is None:
        raise SoftmaxkitValueError(
            "`extra_ids` is needed with `candidate_ids` and `remove_accidental_hits=True`: "
            "without them an extra candidate that is a row's positive item cannot be removed"
        )

    lq = elq = None
    if log_q is not None:
        lq = _check_log_q(log_q, "log_q", batch, "row of `candidates`", xp, queries)
    if extra_log_q is not None:
        elq = _check_log_q(extra_log_q, "extra_log_q", num_extra, "extra candidate", xp, queries)
    if extra is not None and (lq is None) != (elq is None):
        missing = "extra_log_q" if elq is None else "log_q"
        raise SoftmaxkitValueError(
            f"pass both `log_q` and `extra_log_q` or neither; `{missing}` is missing (a logit "
            "matrix corrected in some columns only is biased towards the others)"
        )

    # The embeddings decide the dtype: a float64 log_q (as the estimator gives) must
    # not turn a float32 model's loss into float64.
    work, out = compute_dtype(xp, xp.result_type(*dtypes))

    def cast(a: Array | None) -> Array | None:
        return None if a is None else xp.astype(a, work, copy=False)

    same = extra_same = None
    if remove_accidental_hits and ids is not None:
        device = array_api_compat.device(queries)
        rows = xp.arange(batch, device=device)
        same = (ids[:, None] == ids[None, :]) & (rows[:, None] != rows[None, :])
        if extra_id is not None:
            extra_same = ids[:, None] == extra_id[None, :]
    return _Batch(
        xp,
        cast(queries),
        cast(candidates),
        _Others(cast(extra), cast(lq), cast(elq), same, extra_same),
        t,
        reduction,
        bool(symmetric),
        out,
    )


def _logits(queries: Array, candidates: Array, o: _Others, temperature: Any) -> tuple[Array, Array]:
    """``(logits, scores)``: the (B, B + M) corrected logits and the (B, B) in-batch scores.

    Removed accidental hits hold ``-inf`` in both.
    """
    xp = namespace(queries)
    neg_inf = xp.asarray(-xp.inf, dtype=queries.dtype)
    scores = xp.matmul(queries, xp.permute_dims(candidates, (1, 0))) / temperature
    if o.same is not None:
        # -inf, not TFRS's large negative number: probability and gradient exactly 0.
        scores = xp.where(o.same, neg_inf, scores)
    logits = scores if o.log_q is None else scores - o.log_q[None, :]
    if o.extra is not None:
        extra = xp.matmul(queries, xp.permute_dims(o.extra, (1, 0))) / temperature
        if o.extra_log_q is not None:
            extra = extra - o.extra_log_q[None, :]
        if o.extra_same is not None:
            extra = xp.where(o.extra_same, neg_inf, extra)
        logits = xp.concat([logits, extra], axis=1)
    return logits, scores


def _targets(xp: ModuleType, queries: Array) -> Array:
    device = array_api_compat.device(queries)
    return xp.arange(int(queries.shape[0]), dtype=xp.int64, device=device)


def _reduce(xp: ModuleType, rows: Array, reduction: str) -> Array:
    if reduction == "mean":
        return xp.mean(rows)
    if reduction == "sum":
        return xp.sum(rows)
    return rows


def _loss_core(
    queries: Array,
    candidates: Array,
    others: _Others,
    temperature: Any,
    *,
    reduction: str,
    symmetric: bool,
) -> Array:
    xp = namespace(queries)
    logits, scores = _logits(queries, candidates, others, temperature)
    target = _targets(xp, queries)
    rows = cross_entropy(logits, target, reduction="none")
    if symmetric:
        rows = (rows + cross_entropy(scores, target, axis=0, reduction="none")) / 2
    return _reduce(xp, rows, reduction)


def _grad_core(
    queries: Array,
    candidates: Array,
    others: _Others,
    temperature: Any,
    *,
    reduction: str,
    symmetric: bool,
) -> tuple[Array, Array, Array, Array | None]:
    xp = namespace(queries)
    batch = int(queries.shape[0])
    logits, scores = _logits(queries, candidates, others, temperature)
    target = _targets(xp, queries)
    # cross_entropy_grad's "none" gradient is that of the sum of the rows; the
    # reduction and the symmetric average only scale it.
    rows, d_logits = cross_entropy_grad(logits, target, reduction="none")
    scale = (1.0 / batch if reduction == "mean" else 1.0) / (2.0 if symmetric else 1.0)
    d_logits = d_logits * scale
    d_block = d_logits[:, :batch]
    if symmetric:
        rows_t, d_scores = cross_entropy_grad(scores, target, axis=0, reduction="none")
        rows = (rows + rows_t) / 2
        d_block = d_block + d_scores * scale
    # logits = q . c / T - log_q: each score sends its gradient to both towers, over T.
    d_block = d_block / temperature
    d_queries = xp.matmul(d_block, candidates)
    d_candidates = xp.matmul(xp.permute_dims(d_block, (1, 0)), queries)
    d_extra = None
    if others.extra is not None:
        d_extra_logits = d_logits[:, batch:] / temperature
        d_queries = d_queries + xp.matmul(d_extra_logits, others.extra)
        d_extra = xp.matmul(xp.permute_dims(d_extra_logits, (1, 0)), queries)
    return _reduce(xp, rows, reduction), d_queries, d_candidates, d_extra


def in_batch_softmax_loss(
    queries: ArrayT,
    candidates: ArrayT,
    /,
    *,
    candidate_ids: ArrayT | None = None,
    log_q: ArrayT | None = None,
    temperature: float = 1.0,
    remove_accidental_hits: bool = True,
    extra_candidates: ArrayT | None = None,
    extra_ids: ArrayT | None = None,
    extra_log_q: ArrayT | None = None,
    reduction: Reduction = "mean",
    symmetric: bool = False,
) -> ArrayT:
    r"""Softmax cross-entropy of each query against the candidates of its batch.

    Row ``i``'s positive is ``candidates[i]``; its negatives are the other rows'
    candidates and the ``extra_candidates``.  With ``s(x, y) = x . y /
    temperature``::

        logits[i, j]     = s(queries[i], candidates[j])       - log_q[j]
        logits[i, B + k] = s(queries[i], extra_candidates[k]) - extra_log_q[k]
        loss[i]          = -log_softmax(logits[i])[i]

    where ``logits[i, j] = -inf`` (``j != i``) when ``candidate_ids[j] ==
    candidate_ids[i]``, and ``logits[i, B + k] = -inf`` when ``extra_ids[k] ==
    candidate_ids[i]`` (accidental hits, with ``remove_accidental_hits``).

    Parameters
    ----------
    queries : array of shape (B, D)
        The query tower's output, B >= 1.  NumPy, PyTorch or JAX; the loss is
        of the same kind and differentiable by its autograd.
    candidates : array of shape (B, D)
        The candidate tower's output; row ``i`` is query ``i``'s positive.
    candidate_ids : int array of shape (B,), optional
        The item id of each candidate, any integer range.  Rows holding the
        same id hold the same item: with ``remove_accidental_hits`` another
        row's copy of my positive is removed from my softmax (and the
        candidate-to-query direction likewise removes the other queries of
        the same item).  Without ids every row is taken to be a distinct item.
    log_q : array of shape (B,), optional
        The log of each candidate's sampling probability (finite), subtracted
        from its logit in every row, the positive's included: the correction
        of Yi et al. (2019).  Only differences between candidates matter, so a
        per-draw probability, an expected count per batch (as
        :class:`softmaxkit.sampling.FrequencyEstimator` gives) and any other
        constant multiple give the same loss.
    temperature : float, default 1.0
        Divides the dot products (not ``log_q``); finite and > 0.
    remove_accidental_hits : bool, default True
        Give a negative that is the row's own positive item logit ``-inf``
        (probability 0, gradient 0); the row's own positive always stays.
        Needs ``candidate_ids`` (and ``extra_ids`` with extra candidates) to
        have any effect.
    extra_candidates : array of shape (M, D), optional
        More negatives shared by every row, e.g. sampled uniformly from the
        corpus (mixed negative sampling, Yang et al. 2020).
    extra_ids : int array of shape (M,), optional
        Their ids, compared with ``candidate_ids`` for accidental hits.
    extra_log_q : array of shape (M,), optional
        Their log sampling probabilities, in the same units as ``log_q``;
        required together with ``log_q`` when there are extra candidates.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none" gives one loss per row, shape (B,).
    symmetric : bool, default False
        Return ``(loss[i] + loss_t[i]) / 2``, where ``loss_t[i]`` is the
        candidate-to-query loss of candidate ``i``, a softmax over the
        queries of the batch (as CLIP does): ``-log_softmax(scores[:, i])[i]``
        with ``scores[j, i] = s(queries[j], candidates[i])`` and the same
        accidental hits removed.  Extra candidates have no query and take no
        part in it, and ``log_q[i]``, the same down a column, cancels there.

    Returns
    -------
    array, 0-d or of shape (B,)
        Of the dtype of the inputs (16-bit floats are computed in float32).

    Raises
    ------
    SoftmaxkitValueError
        For shapes that disagree (naming both arguments), ids or ``log_q`` of
        the wrong length, NaN or infinite ``log_q`` (checked on NumPy, CPU
        tensors and JAX arrays outside ``jit``; on an accelerator a check would
        stall each step), ``temperature <= 0``, and extra ids or
        log-probabilities without the arguments they go with.
    SoftmaxkitTypeError
        For ids that are not integers, a traced or differentiable ``temperature``.

    Notes
    -----
    Duplicates: a row whose positive item also appears in other rows keeps
    only its own copy; copies of other items stay, each as one more
    negative, since the batch is a sample with replacement from the
    distribution that ``log_q`` describes.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import in_batch_softmax_loss
    >>> rng = np.random.default_rng(0)
    >>> users, items = rng.normal(size=(4, 8)), rng.normal(size=(4, 8))
    >>> ids = np.array([7, 3, 7, 1])  # rows 0 and 2 hold the same item
    >>> log_q = np.log([0.5, 0.2, 0.5, 0.3])
    >>> loss = in_batch_softmax_loss(users, items, candidate_ids=ids, log_q=log_q)
    >>> loss.shape, bool(loss > 0)
    ((), True)
    """
    b = _prepare(
        queries,
        candidates,
        candidate_ids=candidate_ids,
        log_q=log_q,
        temperature=temperature,
        remove_accidental_hits=remove_accidental_hits,
        extra_candidates=extra_candidates,
        extra_ids=extra_ids,
        extra_log_q=extra_log_q,
        reduction=reduction,
        symmetric=symmetric,
    )
    # On JAX the whole computation compiles once per shape and setting (see fused).
    loss = fused(
        _loss_core,
        b.queries,
        b.candidates,
        b.others,
        b.temperature,
        reduction=b.reduction,
        symmetric=b.symmetric,
    )
    return as_result(b.xp.astype(loss, b.out_dtype, copy=False))


def in_batch_softmax_loss_grad(
    queries: ArrayT,
    candidates: ArrayT,
    /,
    *,
    candidate_ids: ArrayT | None = None,
    log_q: ArrayT | None = None,
    temperature: float = 1.0,
    remove_accidental_hits: bool = True,
    extra_candidates: ArrayT | None = None,
    extra_ids: ArrayT | None = None,
    extra_log_q: ArrayT | None = None,
    reduction: Reduction = "mean",
    symmetric: bool = False,
) -> tuple[ArrayT, ArrayT, ArrayT, ArrayT | None]:
    r"""``(loss, d_queries, d_candidates, d_extra_candidates)``: the loss and its gradient.

    Takes the arguments of :func:`in_batch_softmax_loss` and returns the same
    ``loss``, with its gradients with respect to ``queries``, ``candidates``
    and ``extra_candidates`` (None without extras); for ``reduction="none"``
    the gradients are those of ``loss.sum()``.  ``log_q`` is treated as a
    constant.  For NumPy training loops, which have no autograd; it runs on
    PyTorch and JAX too.

    Notes
    -----
    With ``G = d loss / d logits`` (``softmax(logits) - onehot``, scaled by the
    reduction; removed hits get 0) split into its in-batch block ``G_b`` and
    its extra block ``G_e``, and ``G_t`` the candidate-to-query direction's
    (B, B) gradient when ``symmetric``::

        d_queries          = ((G_b + G_t) @ candidates + G_e @ extra_candidates) / temperature
        d_candidates       = (G_b + G_t).T @ queries / temperature
        d_extra_candidates = G_e.T @ queries / temperature

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import in_batch_softmax_loss_grad
    >>> rng = np.random.default_rng(0)
    >>> users, items = rng.normal(size=(4, 8)), rng.normal(size=(4, 8))
    >>> loss, d_users, d_items, d_extra = in_batch_softmax_loss_grad(users, items)
    >>> d_users.shape, d_items.shape, d_extra is None
    ((4, 8), (4, 8), True)
    """
    b = _prepare(
        queries,
        candidates,
        candidate_ids=candidate_ids,
        log_q=log_q,
        temperature=temperature,
        remove_accidental_hits=remove_accidental_hits,
        extra_candidates=extra_candidates,
        extra_ids=extra_ids,
        extra_log_q=extra_log_q,
        reduction=reduction,
        symmetric=symmetric,
    )
    result = fused(
        _grad_core,
        b.queries,
        b.candidates,
        b.others,
        b.temperature,
        reduction=b.reduction,
        symmetric=b.symmetric,
    )
    xp = b.xp

    def out(a: Array | None) -> Array | None:
        return None if a is None else as_result(xp.astype(a, b.out_dtype, copy=False))

    loss, d_queries, d_candidates, d_extra = result
    return out(loss), out(d_queries), out(d_candidates), out(d_extra)  # type: ignore[return-value]
