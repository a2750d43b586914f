"""Candidate sampling losses: sampled softmax and NCE, with TensorFlow's semantics.

Both losses score each example's true classes against one random sample of
negative classes shared by the batch, instead of against every class:

    logits  = [inputs . weights[true] + biases[true],  inputs . weights[sampled] + biases[sampled]]
              (minus log Q of each column with ``subtract_log_q``)
    targets = [1 / num_true, ..., 0, ...]

:func:`sampled_logits` builds that pair; :func:`sampled_softmax_loss` is the
softmax cross-entropy on it and :func:`nce_loss` the logistic loss.  Only
the rows of ``weights`` and ``biases`` named by the labels and the sample are
read, so on PyTorch only they receive gradient, and a training step costs
O(num_true + num_sampled) rows instead of O(num_classes).

One code path serves NumPy, PyTorch and JAX (the array-API namespace of the
inputs); the sample itself is drawn by a :mod:`softmaxkit.sampling` sampler
in NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from ._backend import as_array, as_result, compute_dtype, namespace, to_numpy
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._options import check_count as _count
from ._options import check_flag, check_reduction
from ._softmax import log_sigmoid, log_softmax
from ._typing import ArrayT, Reduction, Sampler, Seed
from .sampling import LogUniformSampler, SampledValues

__all__ = ["nce_loss", "sampled_logits", "sampled_softmax_loss"]

Array = Any


class _Batch(NamedTuple):
    """Validated arguments, as arrays of the caller's library in the working dtype."""

    xp: ModuleType
    inputs: Array  # (B, D)
    labels: Array  # (B, num_true), int64
    sampled: Array  # (S,), int64
    true_count: Array  # (B, num_true)
    sampled_count: Array  # (S,)
    out_dtype: Any


def _shape(a: Array) -> tuple[int, ...]:
    return tuple(int(n) for n in a.shape)


def _check_shapes(
    weights: Array, biases: Array | None, labels: Array, inputs: Array, num_true: int
):
    if weights.ndim != 2:
        raise SoftmaxkitValueError(
            f"`weights` must be 2-d, (num_classes, dim); got shape {_shape(weights)}"
        )
    num_classes, dim = _shape(weights)
    if num_classes == 0:
        raise SoftmaxkitValueError(
            f"`weights` must have a row per class, at least one; got shape {_shape(weights)}"
        )
    if biases is not None and _shape(biases) != (num_classes,):
        raise SoftmaxkitValueError(
            f"`biases` must have shape ({num_classes},) to match `weights` of shape "
            f"{_shape(weights)}; got shape {_shape(biases)}"
        )
    if inputs.ndim != 2 or inputs.shape[1] != dim:
        raise SoftmaxkitValueError(
            f"`inputs` must have shape (batch, {dim}) to match `weights` of shape "
            f"{_shape(weights)}; got shape {_shape(inputs)}"
        )
    batch = int(inputs.shape[0])
    if labels.ndim not in (1, 2) or labels.shape[0] != batch:
        raise SoftmaxkitValueError(
            f"`labels` must have shape ({batch},) or ({batch}, num_true) to match `inputs` of "
            f"shape {_shape(inputs)}; got shape {_shape(labels)}"
        )
    columns = 1 if labels.ndim == 1 else int(labels.shape[1])
    if columns != num_true:
        raise SoftmaxkitValueError(
            f"`labels` must have {num_true} column{'s' if num_true != 1 else ''} for "
            f"`num_true` {num_true}; got shape {_shape(labels)}"
        )


def _check_labels(labels: Array, num_classes: int) -> np.ndarray:
    values = to_numpy(labels)
    if values.dtype.kind not in "iu":
        raise SoftmaxkitTypeError(f"`labels` must hold integer classes; got dtype {labels.dtype}")
    bad = (values < 0) | (values >= num_classes)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise SoftmaxkitValueError(
            f"`labels` must be in [0, {num_classes}); position {pos} holds {values[pos].item()}"
        )
    return values


def _sample(
    labels: np.ndarray,
    num_classes: int,
    num_sampled: int | None,
    sampler: Any,
    sampled_values: Any,
    rng: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sampled, true_count, sampled_count)`` as NumPy arrays, drawn or checked."""
    if sampled_values is None:
        if num_sampled is None:
            raise SoftmaxkitValueError("pass `num_sampled` (or a `sampled_values` to reuse)")
        if sampler is None:
            sampler = LogUniformSampler(num_classes)
        elif not callable(getattr(sampler, "sample", None)):
            raise SoftmaxkitTypeError(
                "`sampler` must be a softmaxkit.sampling sampler (an object with a `sample` "
                f"method); got {type(sampler).__name__}"
            )
        elif getattr(sampler, "num_classes", None) != num_classes:
            raise SoftmaxkitValueError(
                f"`sampler` must draw from the {num_classes} classes of `weights`; got {sampler!r}"
            )
        values = sampler.sample(num_sampled, true_classes=labels, rng=rng)
        return values.sampled, values.true_expected_count, values.sampled_expected_count

    if sampler is not None or rng is not None:
        raise SoftmaxkitValueError(
            "pass either `sampled_values` or `sampler`/`rng`; a given sample is not redrawn"
        )
    if not isinstance(sampled_values, Sequence) or len(sampled_values) != 3:
        raise SoftmaxkitTypeError(
            "`sampled_values` must be a SampledValues or a 3-tuple (sampled, "
            f"true_expected_count, sampled_expected_count); got {type(sampled_values).__name__}"
        )
    sampled, true_count, sampled_count = (
        None if a is None else to_numpy(a) for a in SampledValues(*sampled_values)
    )
    if sampled is None or sampled.ndim != 1 or sampled.dtype.kind not in "iu":
        raise SoftmaxkitValueError(
            "`sampled_values.sampled` must be a 1-d array of integer classes; got "
            f"{None if sampled is None else (sampled.dtype, sampled.shape)}"
        )
    if num_sampled is not None:
        num_sampled = _count(num_sampled, "num_sampled", 1)
    if num_sampled is not None and sampled.size != num_sampled:
        raise SoftmaxkitValueError(
            f"`num_sampled` is {num_sampled} but `sampled_values` holds {sampled.size} classes"
        )
    bad = (sampled < 0) | (sampled >= num_classes)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise SoftmaxkitValueError(
            f"`sampled_values.sampled` must be in [0, {num_classes}); position {pos} holds "
            f"{sampled[pos]}"
        )
    if true_count is None or true_count.size != labels.size:
        raise SoftmaxkitValueError(
            f"`sampled_values.true_expected_count` must hold one count per label, {labels.size}; "
            f"got {None if true_count is None else true_count.shape} (draw the sample with "
            "`true_classes=labels`)"
        )
    if sampled_count is None or sampled_count.shape != sampled.shape:
        raise SoftmaxkitValueError(
            f"`sampled_values.sampled_expected_count` must have shape {sampled.shape}; got "
            f"{None if sampled_count is None else sampled_count.shape}"
        )
    for name, count in (("true", true_count), ("sampled", sampled_count)):
        if count.dtype.kind not in "biuf":
            raise SoftmaxkitTypeError(
                f"`sampled_values.{name}_expected_count` must hold real numbers; got dtype "
                f"{count.dtype}"
            )
    return sampled.astype(np.int64), true_count.reshape(labels.shape), sampled_count


def _prepare(
    weights: Array,
    biases: Array | None,
    labels: Array,
    inputs: Array,
    *,
    num_sampled: int | None,
    sampler: Any,
    num_true: int,
    sampled_values: Any,
    subtract_log_q: bool,
    rng: Any,
) -> _Batch:
    weights = as_array(weights, "weights")
    inputs = as_array(inputs, "inputs", namespace(weights))
    biases = None if biases is None else as_array(biases, "biases", namespace(weights))
    labels = as_array(labels, "labels", namespace(weights))
    xp = namespace(weights, biases, inputs, labels)
    num_true = _count(num_true, "num_true", 1)
    subtract_log_q = check_flag(subtract_log_q, "subtract_log_q")
    _check_shapes(weights, biases, labels, inputs, num_true)
    num_classes = int(weights.shape[0])
    labels_np = _check_labels(labels, num_classes).reshape(labels.shape[0], num_true)
    sampled, true_count, sampled_count = _sample(
        labels_np, num_classes, num_sampled, sampler, sampled_values, rng
    )
    if subtract_log_q:
        for name, count in (("true", true_count), ("sampled", sampled_count)):
            good = (count > 0) & np.isfinite(count)  # log Q must be finite
            if not np.all(good):
                bad = count[~good].flat[0]
                hint = (
                    "an expected count is at most num_sampled"
                    if bad > 0
                    else "a label the sampler can never draw?"
                )
                raise SoftmaxkitValueError(
                    f"`subtract_log_q` needs positive expected counts, and finite ones; a {name} "
                    f"class has expected count {bad} ({hint})"
                )

    work, out = compute_dtype(xp, xp.result_type(weights.dtype, inputs.dtype))
    device = array_api_compat.device(weights)

    def put(a: np.ndarray, dtype: Any) -> Array:
        return xp.asarray(a, dtype=dtype, device=device)

    return _Batch(
        xp,
        xp.astype(inputs, work, copy=False),
        put(labels_np.astype(np.int64), xp.int64),
        put(sampled, xp.int64),
        put(true_count, work),
        put(sampled_count, work),
        out,
    )


def _gather(xp: ModuleType, table: Array | None, ids: Array, dtype: Any) -> Array | None:
    if table is None:
        return None
    return xp.astype(xp.take(table, ids, axis=0), dtype, copy=False)


def _logits(
    b: _Batch,
    true_w: Array,
    true_b: Array | None,
    sampled_w: Array,
    sampled_b: Array | None,
    *,
    remove_accidental_hits: bool,
    subtract_log_q: bool,
) -> tuple[Array, Array]:
    """``(logits, targets)`` of shape (B, num_true + S) from the gathered rows.

    ``true_w`` is (B, num_true, D), ``sampled_w`` (S, D); the biases likewise
    without D.  The shared core of the functions here and of
    :class:`softmaxkit.torch.SampledSoftmaxLoss`, which gathers its rows itself.
    """
    xp, x = b.xp, b.inputs
    true_logits = xp.sum(x[:, None, :] * true_w, axis=-1)
    sampled_logits = xp.matmul(x, xp.permute_dims(sampled_w, (1, 0)))
    if true_b is not None and sampled_b is not None:
        true_logits = true_logits + true_b
        sampled_logits = sampled_logits + sampled_b[None, :]
    if subtract_log_q:
        true_logits = true_logits - xp.log(b.true_count)
        sampled_logits = sampled_logits - xp.log(b.sampled_count)[None, :]
    if remove_accidental_hits:
        hit = xp.any(b.labels[:, :, None] == b.sampled[None, None, :], axis=1)
        # -inf, not TensorFlow's -FLT_MAX: the removed class gets probability
        # exactly 0, and the core log_softmax gives it gradient exactly 0.
        sampled_logits = xp.where(hit, xp.asarray(-xp.inf, dtype=x.dtype), sampled_logits)
    num_true = int(true_logits.shape[1])
    device = array_api_compat.device(x)
    targets = xp.concat(
        [
            xp.full(true_logits.shape, 1.0 / num_true, dtype=x.dtype, device=device),
            xp.zeros(sampled_logits.shape, dtype=x.dtype, device=device),
        ],
        axis=1,
    )
    return xp.concat([true_logits, sampled_logits], axis=1), targets


def _rows(
    b: _Batch, weights: Array, biases: Array | None, take_weights: Any = None
) -> tuple[Array, Array | None, Array, Array | None]:
    """The rows of ``weights`` and ``biases`` for the labels and the sample, in one gather.

    ``take_weights(weights, ids)`` replaces ``xp.take`` for the weights (the
    torch module passes a sparse-gradient embedding lookup).
    """
    xp = b.xp
    batch, num_true = (int(n) for n in b.labels.shape)
    dim = int(weights.shape[1])
    ids = xp.concat([xp.reshape(b.labels, (-1,)), b.sampled])
    dtype = b.inputs.dtype
    take = take_weights if take_weights is not None else lambda t, i: xp.take(t, i, axis=0)
    w = xp.astype(take(weights, ids), dtype, copy=False)
    bias = _gather(xp, biases, ids, dtype)
    n = batch * num_true
    # `dim`, not -1: an empty batch has no rows to infer it from.
    true_w = xp.reshape(w[:n, ...], (batch, num_true, dim))
    true_b = None if bias is None else xp.reshape(bias[:n], (batch, num_true))
    return true_w, true_b, w[n:, ...], None if bias is None else bias[n:]


def _softmax_loss(xp: ModuleType, logits: Array, num_true: int) -> Array:
    # Only the true columns have non-zero targets; summing over them alone also
    # keeps 0 * (-inf) of a removed accidental hit out of the sum.
    logp = log_softmax(logits, axis=-1)
    return -xp.sum(logp[:, :num_true], axis=1) / num_true


def _nce_loss(xp: ModuleType, logits: Array, num_true: int) -> Array:
    t = 1.0 / num_true
    true_logits, sampled_logits = logits[:, :num_true], logits[:, num_true:]
    true_part = -(t * log_sigmoid(true_logits))
    if num_true > 1:
        true_part = true_part - (1.0 - t) * log_sigmoid(-true_logits)
    # Target 0: -log(1 - sigmoid(x)) = -log_sigmoid(-x), which is 0 at x = -inf.
    return xp.sum(true_part, axis=1) + xp.sum(-log_sigmoid(-sampled_logits), axis=1)


def _reduce(xp: ModuleType, loss: Array, reduction: str) -> Array:
    """As :func:`softmaxkit.cross_entropy` reduces: the mean of an empty batch is NaN, its sum 0."""
    if reduction == "mean":
        if int(loss.shape[0]) == 0:
            return xp.sum(loss) * xp.nan  # NaN without NumPy's "mean of empty slice" warning
        return xp.mean(loss)
    if reduction == "sum":
        return xp.sum(loss)
    return loss


def sampled_logits(
    weights: ArrayT,
    biases: ArrayT | None,
    labels: ArrayT,
    inputs: ArrayT,
    /,
    *,
    num_sampled: int | None = None,
    sampler: Sampler | None = None,
    num_true: int = 1,
    sampled_values: SampledValues | tuple[Any, Any, Any] | None = None,
    remove_accidental_hits: bool = True,
    subtract_log_q: bool = True,
    rng: Seed = None,
) -> tuple[ArrayT, ArrayT]:
    r"""The logits and targets of the true classes against a sample of classes.

    ``logits[b] = [inputs[b] . weights[c] + biases[c] - log Q(c)`` for ``c`` in
    ``labels[b]``, then for ``c`` in the sample ``]`` and ``targets[b] =
    [1/num_true, ..., 1/num_true, 0, ..., 0]``: the pair
    :func:`sampled_softmax_loss` and :func:`nce_loss` are built on, for custom
    losses.

    Parameters
    ----------
    weights : array of shape (V, D)
        The output embedding: one row per class.
    biases : array of shape (V,), or None
        One bias per class; None for none.
    labels : int array of shape (B,) or (B, num_true)
        The true classes of each example, in ``[0, V)``.
    inputs : array of shape (B, D)
        The features (the last hidden layer) of each example.
    num_sampled : int
        The number of classes in the sample, shared by the whole batch.  May be
        left out when ``sampled_values`` is given.
    sampler : a :mod:`softmaxkit.sampling` sampler over V classes, optional
        Default :class:`~softmaxkit.sampling.LogUniformSampler` ``(V)``, drawn
        with ``unique=True``.
    num_true : int, default 1
        The number of true classes per example; each gets target ``1/num_true``.
    sampled_values : SampledValues or 3-tuple, optional
        ``(sampled, true_expected_count, sampled_expected_count)`` from a
        sampler's ``sample(..., true_classes=labels)``: use this sample instead
        of drawing one (several losses can then share it, and results can be
        reproduced).  Excludes ``sampler`` and ``rng``.
    remove_accidental_hits : bool, default True
        A sampled class that is one of row ``b``'s labels gets logit ``-inf``
        in that row: probability exactly 0 and gradient exactly 0.
    subtract_log_q : bool, default True
        Subtract ``log Q`` (the expected count of the class in the sample) from
        every logit, which corrects for the sampling distribution.
    rng : numpy.random.Generator or int seed, optional
        The same seed gives the same sample.

    Returns
    -------
    logits, targets : arrays of shape (B, num_true + num_sampled)
        Of the caller's library and floating dtype.  Removed accidental hits
        hold ``-inf`` in ``logits`` and 0 in ``targets``: a custom loss must
        not multiply them (``0 * -inf`` is NaN).

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import sampled_logits
    >>> rng = np.random.default_rng(0)
    >>> w, b, x = rng.normal(size=(50, 4)), np.zeros(50), rng.normal(size=(3, 4))
    >>> logits, targets = sampled_logits(w, b, np.array([1, 2, 3]), x, num_sampled=5, rng=0)
    >>> logits.shape, targets[0].tolist()
    ((3, 6), [1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    """
    remove_accidental_hits = check_flag(remove_accidental_hits, "remove_accidental_hits")
    b = _prepare(
        weights,
        biases,
        labels,
        inputs,
        num_sampled=num_sampled,
        sampler=sampler,
        num_true=num_true,
        sampled_values=sampled_values,
        subtract_log_q=subtract_log_q,
        rng=rng,
    )
    logits, targets = _logits(
        b,
        *_rows(b, weights, biases),
        remove_accidental_hits=remove_accidental_hits,
        subtract_log_q=subtract_log_q,
    )
    xp = b.xp
    return (
        as_result(xp.astype(logits, b.out_dtype, copy=False)),
        as_result(xp.astype(targets, b.out_dtype, copy=False)),
    )


def sampled_softmax_loss(
    weights: ArrayT,
    biases: ArrayT | None,
    labels: ArrayT,
    inputs: ArrayT,
    /,
    *,
    num_sampled: int | None = None,
    sampler: Sampler | None = None,
    num_true: int = 1,
    sampled_values: SampledValues | tuple[Any, Any, Any] | None = None,
    remove_accidental_hits: bool = True,
    subtract_log_q: bool = True,
    rng: Seed = None,
    reduction: Reduction = "none",
) -> ArrayT:
    r"""Softmax cross-entropy of the true classes against a random sample of classes.

    ``loss[b] = -(1/num_true) * sum_t log_softmax(logits[b])[t]`` over the
    true columns ``t`` of ``logits`` from :func:`sampled_logits` (the same
    arguments; see there).  An estimate of the full softmax cross-entropy that
    costs O(num_true + num_sampled) classes per step instead of O(V); at
    evaluation, use the full softmax.

    Parameters
    ----------
    weights, biases, labels, inputs, num_sampled, sampler, num_true, sampled_values, remove_accidental_hits, subtract_log_q, rng
        As in :func:`sampled_logits`.
    reduction : {"none", "mean", "sum"}, default "none"
        "none" returns one loss per example (shape (B,)), as TensorFlow's
        ``tf.nn.sampled_softmax_loss`` does; "mean" and "sum" reduce over B.
        An empty batch (B = 0) gives what :func:`softmaxkit.cross_entropy` does:
        shape (0,), a sum of 0, a mean of NaN.

    Returns
    -------
    array of shape (B,) or scalar

    Raises
    ------
    SoftmaxkitValueError
        For ``weights``/``biases``/``inputs``/``labels`` shapes that disagree
        (naming both), labels outside ``[0, V)``, ``num_sampled`` larger than
        the classes the sampler can draw, or a label the sampler can never draw
        with ``subtract_log_q``.

    Notes
    -----
    With ``num_sampled = V`` (every class sampled), accidental hits removed
    and a uniform sampler (or ``subtract_log_q=False``), the loss equals the
    full softmax cross-entropy.  Follows TensorFlow's
    ``tf.nn.sampled_softmax_loss``, except that a removed accidental hit gets
    ``-inf`` rather than ``-FLT_MAX``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import sampled_softmax_loss
    >>> rng = np.random.default_rng(0)
    >>> w, b = rng.normal(size=(10_000, 16)), np.zeros(10_000)
    >>> x, y = rng.normal(size=(4, 16)), np.array([3, 14, 159, 2653])
    >>> sampled_softmax_loss(w, b, y, x, num_sampled=64, rng=0).shape
    (4,)
    """
    check_reduction(reduction)
    logits, _ = sampled_logits(
        weights,
        biases,
        labels,
        inputs,
        num_sampled=num_sampled,
        sampler=sampler,
        num_true=num_true,
        sampled_values=sampled_values,
        remove_accidental_hits=remove_accidental_hits,
        subtract_log_q=subtract_log_q,
        rng=rng,
    )
    xp = namespace(logits)
    return as_result(_reduce(xp, _softmax_loss(xp, logits, num_true), reduction))


def nce_loss(
    weights: ArrayT,
    biases: ArrayT | None,
    labels: ArrayT,
    inputs: ArrayT,
    /,
    *,
    num_sampled: int | None = None,
    sampler: Sampler | None = None,
    num_true: int = 1,
    sampled_values: SampledValues | tuple[Any, Any, Any] | None = None,
    remove_accidental_hits: bool = False,
    subtract_log_q: bool = True,
    rng: Seed = None,
    reduction: Reduction = "none",
) -> ArrayT:
    r"""Noise-contrastive estimation: logistic loss of the true classes against sampled ones.

    ``loss[b] = -sum_j [t_j log sigmoid(z_j) + (1 - t_j) log sigmoid(-z_j)]``
    over the columns ``j`` of ``(z, t) = sampled_logits(...)`` (the same
    arguments; see there): each true class is a positive with target
    ``1/num_true``, each sampled class a negative.  Defaults follow
    TensorFlow's ``tf.nn.nce_loss``: accidental hits are kept
    (``remove_accidental_hits=False``); a removed one contributes 0.

    Parameters
    ----------
    weights, biases, labels, inputs, num_sampled, sampler, num_true, sampled_values, remove_accidental_hits, subtract_log_q, rng, reduction
        As in :func:`sampled_softmax_loss`.

    Returns
    -------
    array of shape (B,) or scalar

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import nce_loss
    >>> rng = np.random.default_rng(0)
    >>> w, b = rng.normal(size=(1000, 8)), np.zeros(1000)
    >>> loss = nce_loss(w, b, np.array([5, 50]), rng.normal(size=(2, 8)), num_sampled=20, rng=1)
    >>> loss.shape, bool((loss > 0).all())
    ((2,), True)
    """
    check_reduction(reduction)
    logits, _ = sampled_logits(
        weights,
        biases,
        labels,
        inputs,
        num_sampled=num_sampled,
        sampler=sampler,
        num_true=num_true,
        sampled_values=sampled_values,
        remove_accidental_hits=remove_accidental_hits,
        subtract_log_q=subtract_log_q,
        rng=rng,
    )
    xp = namespace(logits)
    return as_result(_reduce(xp, _nce_loss(xp, logits, num_true), reduction))


class SampledGradient(NamedTuple):
    """The gradient of a sampled softmax loss, by rows (see :func:`sampled_softmax_value_and_grad`)."""

    rows: np.ndarray  # (B * num_true + S,) class ids; may repeat
    d_weights: np.ndarray  # (B * num_true + S, D): add into weights[rows] with np.add.at
    d_biases: np.ndarray  # (B * num_true + S,)
    d_inputs: np.ndarray  # (B, D)


def sampled_softmax_value_and_grad(
    weights: np.ndarray,
    biases: np.ndarray | None,
    labels: np.ndarray,
    inputs: np.ndarray,
    /,
    *,
    sampled_values: Any,
    num_true: int = 1,
    remove_accidental_hits: bool = True,
    subtract_log_q: bool = True,
    reduction: str = "mean",
) -> tuple[np.ndarray, SampledGradient]:
    """The sampled softmax loss and its gradient by hand, for NumPy training loops.

    Private helper of the NumPy classifier and the benchmark: NumPy has no
    autograd, and the gradient only touches the rows of the labels and the
    sample.  With ``p = softmax(logits)`` and ``t = targets``, ``dL/dlogits =
    (p - t) * scale`` (``scale = 1/B`` for "mean", 1 for "sum"), and each logit
    ``inputs[b] . w_c + b_c`` sends it to ``w_c``, ``b_c`` and ``inputs[b]``.
    """
    if reduction not in ("mean", "sum"):
        raise SoftmaxkitValueError(f"`reduction` must be 'mean' or 'sum'; got {reduction!r}")
    remove_accidental_hits = check_flag(remove_accidental_hits, "remove_accidental_hits")
    b = _prepare(
        weights,
        biases,
        labels,
        inputs,
        num_sampled=None,
        sampler=None,
        num_true=num_true,
        sampled_values=sampled_values,
        subtract_log_q=subtract_log_q,
        rng=None,
    )
    true_w, true_b, sampled_w, sampled_b = _rows(b, weights, biases)
    logits, targets = _logits(
        b,
        true_w,
        true_b,
        sampled_w,
        sampled_b,
        remove_accidental_hits=remove_accidental_hits,
        subtract_log_q=subtract_log_q,
    )
    logp = log_softmax(logits, axis=-1)
    loss = -np.sum(logp[:, :num_true], axis=1) / num_true
    batch = logits.shape[0]
    # A mean over no rows is NaN with zero gradients, as in linear_cross_entropy_grad.
    scale = (1.0 / batch if batch else 0.0) if reduction == "mean" else 1.0
    # A removed hit has p = exp(-inf) = 0 and t = 0, so its column is exactly 0 here.
    dz = (np.exp(logp) - targets) * scale
    dz_true, dz_sampled = dz[:, :num_true], dz[:, num_true:]
    x = b.inputs
    d_true_w = dz_true[:, :, None] * x[:, None, :]
    d_sampled_w = dz_sampled.T @ x
    d_inputs = np.einsum("bt,btd->bd", dz_true, true_w) + dz_sampled @ sampled_w
    rows = np.concatenate([to_numpy(b.labels).ravel(), to_numpy(b.sampled)])
    d_w = np.concatenate([d_true_w.reshape(-1, x.shape[1]), d_sampled_w])
    d_b = np.concatenate([dz_true.ravel(), dz_sampled.sum(axis=0)])
    value = _reduce(np, loss, reduction)
    return np.asarray(value), SampledGradient(rows, d_w, d_b, d_inputs)
