"""Calibration: how far to trust a softmax's "degrees of belief".

A classifier is calibrated when, among the predictions it makes with top-1
confidence ``c``, a fraction ``c`` is right.  :func:`expected_calibration_error`
measures the gap over equal-width confidence bins, :func:`reliability_diagram`
draws it, and :func:`fit_temperature` finds the single temperature ``T`` that
makes ``softmax(logits / T)`` best calibrated on held-out data (Guo et al. 2017).
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ._backend import as_array, to_numpy
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._typing import ArrayT, Norm

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["expected_calibration_error", "fit_temperature", "reliability_diagram"]

Array = Any

_NORMS = ("l1", "l2", "max")


class _Bins(NamedTuple):
    """Per-bin statistics of the top-1 predictions over the non-empty bins ``(m / M, (m + 1) / M]``.

    Only the bins holding a prediction are kept (empty ones add nothing to any
    norm), so memory follows the number of predictions, not ``n_bins``.
    """

    n_bins: int  # M
    number: np.ndarray  # (B,) m of each non-empty bin, increasing
    counts: np.ndarray  # (B,) number of samples in each
    confidence: np.ndarray  # (B,) mean top-1 confidence
    accuracy: np.ndarray  # (B,) fraction of correct top-1 predictions


def _validate_n_bins(n_bins: Any) -> int:
    # A bool is an int to operator.index, but n_bins=True is surely a mistake.
    if isinstance(n_bins, (bool, np.bool_)):
        raise SoftmaxkitTypeError(f"`n_bins` must be an int >= 1; got {n_bins!r}")
    try:
        n = operator.index(n_bins)
    except TypeError:
        raise SoftmaxkitTypeError(f"`n_bins` must be an int >= 1; got {n_bins!r}") from None
    if n < 1:
        raise SoftmaxkitValueError(f"`n_bins` must be an int >= 1; got {n}")
    return n


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _labels_in_range(labels: Array, n_classes: int, shape: tuple[int, ...]) -> np.ndarray:
    """``labels`` as an int64 NumPy array of ``shape`` with values in ``[0, n_classes)``."""
    labels = to_numpy(as_array(labels, "labels"))
    if labels.dtype.kind not in "iu":
        raise SoftmaxkitTypeError(
            f"`labels` must be an array of integers; got dtype {labels.dtype}"
        )
    if labels.shape != shape:
        raise SoftmaxkitValueError(
            f"`labels` must have shape {shape} (the scores without their last axis); "
            f"got shape {labels.shape}"
        )
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        pos = _first_bad(bad)
        raise SoftmaxkitValueError(
            f"`labels` must be in [0, {n_classes}); position {pos} holds {labels[pos].item()}"
        )
    return labels.astype(np.int64)


def _top1(probs: Array, labels: Array) -> tuple[np.ndarray, np.ndarray]:
    """``(confidence, correct)``, flat float64 arrays, after checking the input."""
    probs = to_numpy(as_array(probs, "probs"))
    if probs.ndim < 1 or probs.shape[-1] == 0:
        raise SoftmaxkitValueError(
            f"`probs` must have shape (..., n_classes) with n_classes >= 1; got shape {probs.shape}"
        )
    probs = probs.astype(np.float64)
    bad = ~((probs >= 0) & (probs <= 1))  # also catches NaN
    if bad.any():
        pos = _first_bad(bad)
        raise SoftmaxkitValueError(
            f"`probs` must be probabilities in [0, 1] (apply softmax to logits first); "
            f"position {pos} holds {probs[pos].item()!r}"
        )
    labels = _labels_in_range(labels, probs.shape[-1], probs.shape[:-1])
    probs = probs.reshape(-1, probs.shape[-1])
    if probs.shape[0] == 0:
        raise SoftmaxkitValueError("`probs` must hold at least one prediction; got none")
    predicted = np.argmax(probs, axis=-1)  # ties go to the first class, as in torch.max
    confidence = np.take_along_axis(probs, predicted[:, None], axis=-1)[:, 0]
    return confidence, (predicted == labels.reshape(-1)).astype(np.float64)


def _bin_of(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """The bin ``m`` with ``m / M < confidence <= (m + 1) / M`` (0 joins bin 0), for any ``M``.

    ``floor(confidence * M)`` is within one of the answer; comparing with the edges
    ``m / M`` as float64 computes them settles it exactly as a search of
    ``arange(M + 1) / M`` would, without building that array.
    """
    m = np.clip(np.floor(confidence * n_bins), 0, n_bins - 1).astype(np.int64)
    for _ in range(2):
        m = np.where((m > 0) & (confidence <= m / n_bins), m - 1, m)
        m = np.where((m < n_bins - 1) & (confidence > (m + 1) / n_bins), m + 1, m)
    return m


def _bin_statistics(probs: Array, labels: Array, n_bins: int) -> _Bins:
    confidence, correct = _top1(probs, labels)
    index, which, count = np.unique(
        _bin_of(confidence, n_bins), return_inverse=True, return_counts=True
    )
    count = count.astype(np.float64)
    mean_confidence = np.bincount(which, weights=confidence) / count
    accuracy = np.bincount(which, weights=correct) / count
    return _Bins(n_bins, index, count, mean_confidence, accuracy)


def _calibration_error(bins: _Bins, norm: str) -> float:
    gap = np.abs(bins.accuracy - bins.confidence)
    weight = bins.counts / bins.counts.sum()
    if norm == "l1":
        return float(np.sum(weight * gap))
    if norm == "l2":
        return float(np.sqrt(np.sum(weight * gap**2)))
    return float(np.max(gap))


def expected_calibration_error(
    probs: ArrayT, labels: ArrayT, /, *, n_bins: int = 15, norm: Norm = "l1"
) -> float:
    r"""The gap between top-1 confidence and accuracy, averaged over confidence bins.

    The top-1 confidence ``conf[i] = max_k probs[i, k]`` of each prediction is
    put into one of ``n_bins`` equal-width bins ``B_m = (m / M, (m + 1) / M]``
    (``M = n_bins``).  With ``acc(B_m)`` the fraction of predictions in ``B_m``
    whose argmax equals ``labels``, ``conf(B_m)`` their mean confidence and
    ``w_m = |B_m| / N``:

    * ``norm="l1"``: ECE ``= sum_m w_m |acc(B_m) - conf(B_m)|``;
    * ``norm="l2"``: RMS calibration error ``= sqrt(sum_m w_m (acc(B_m) - conf(B_m))**2)``;
    * ``norm="max"``: MCE ``= max_m |acc(B_m) - conf(B_m)|`` (empty bins count as 0).

    Parameters
    ----------
    probs : array, shape (..., n_classes)
        Probabilities in [0, 1] (e.g. a softmax's output), NumPy, PyTorch or
        JAX.  Rows need not sum to one; only the top-1 entry is used.
    labels : integer array, shape (...)
        The true classes, in ``[0, n_classes)``.
    n_bins : int, default 15
        ``M`` above, >= 1.
    norm : {"l1", "l2", "max"}, default "l1"

    Returns
    -------
    float
        In [0, 1].  Not differentiable (binning is piecewise constant), so a
        Python float whatever the input library.

    Raises
    ------
    SoftmaxkitValueError
        For probabilities outside [0, 1] or NaN, labels outside
        ``[0, n_classes)``, mismatched shapes, empty input, ``n_bins < 1`` or an
        unknown ``norm``, naming the first bad position.

    Notes
    -----
    Bins are closed on the right as in Guo et al. (2017), "On calibration of
    modern neural networks": a confidence exactly on an inner edge ``m / M``
    joins the bin below it, and a confidence of exactly 1 the last bin.
    Ties for the top class go to the first one.  Away from the bin edges the
    value equals torchmetrics' ``MulticlassCalibrationError`` (up to its
    float32 arithmetic); on an edge it differs, because torchmetrics uses bins
    closed on the left, ``[m / M, (m + 1) / M)``, and a separate bin holding
    only confidences of exactly 1.

    Examples
    --------
    Four predictions, all 0.75 confident (cat, dog, elephant), three of them right:

    >>> import numpy as np
    >>> from softmaxkit import expected_calibration_error
    >>> probs = np.array([[0.75, 0.2, 0.05]] * 4)
    >>> expected_calibration_error(probs, np.array([0, 0, 0, 1]))
    0.0

    Four right out of four at 0.75 is under-confident by 0.25:

    >>> expected_calibration_error(probs, np.array([0, 0, 0, 0]))
    0.25
    """
    n_bins = _validate_n_bins(n_bins)
    if norm not in _NORMS:
        raise SoftmaxkitValueError(f"`norm` must be one of {_NORMS}; got {norm!r}")
    return _calibration_error(_bin_statistics(probs, labels, n_bins), norm)


def reliability_diagram(
    probs: ArrayT, labels: ArrayT, /, *, n_bins: int = 15, ax: Axes | None = None
) -> Axes:
    r"""Draw per-bin accuracy against confidence, with the calibration gap shaded.

    One bar per non-empty bin of :func:`expected_calibration_error` (same
    bins, same arguments) shows the accuracy of the predictions in it; a
    hatched red bar spans from that accuracy to the bin's mean confidence (the
    gap that ECE averages); the diagonal is perfect calibration.  The title
    gives the ECE.

    Parameters
    ----------
    probs : array, shape (..., n_classes)
    labels : integer array, shape (...)
    n_bins : int, default 15
    ax : matplotlib Axes, optional
        Where to draw.  Without one, a new ``matplotlib.figure.Figure`` is made
        (not through ``pyplot``, so it works headless and leaves pyplot's state
        alone); save it with ``ax.figure.savefig(path)``.

    Returns
    -------
    matplotlib.axes.Axes
        The axis drawn on.

    Notes
    -----
    matplotlib is an optional dependency (the ``plot`` extra); it is imported
    only when this function is called.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import reliability_diagram
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    >>> ax = reliability_diagram(probs, np.array([0, 1, 1]), n_bins=5)
    >>> ax.get_title()
    'Reliability diagram (ECE = 0.2000)'
    """
    n_bins = _validate_n_bins(n_bins)
    if ax is not None and not all(hasattr(ax, name) for name in ("bar", "plot", "set_title")):
        raise SoftmaxkitTypeError(
            f"`ax` must be a matplotlib Axes or None; got {type(ax).__name__}"
        )
    bins = _bin_statistics(probs, labels, n_bins)
    ece = _calibration_error(bins, "l1")
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reliability_diagram needs matplotlib: pip install 'softmaxkit[plot]'"
        ) from exc
    if ax is None:
        ax = Figure(figsize=(5, 5)).subplots()
    left = bins.number / n_bins
    width = 1.0 / n_bins
    accuracy = bins.accuracy
    confidence = bins.confidence
    ax.bar(
        left,
        accuracy,
        width=width,
        align="edge",
        color="tab:blue",
        edgecolor="black",
        label="accuracy",
    )
    ax.bar(
        left,
        np.abs(confidence - accuracy),
        bottom=np.minimum(accuracy, confidence),
        width=width,
        align="edge",
        color="tab:red",
        alpha=0.3,
        hatch="//",
        edgecolor="tab:red",
        label="gap to mean confidence",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE = {ece:.4f})")
    ax.legend(loc="upper left")
    return ax


def _nll_in_beta(beta: float, d: np.ndarray, dy: np.ndarray) -> tuple[float, float, float]:
    """Mean NLL of ``softmax(beta * d)`` and its first two derivatives in ``beta``.

    ``d = logits - max(logits)`` per row (so ``beta * d <= 0`` never overflows)
    and ``dy`` its entry at the label.  With ``p = softmax(beta * d)``:
    ``f = mean(logsumexp(beta * d) - beta * dy)``, ``f' = mean(E_p[d] - dy)``,
    ``f'' = mean(Var_p[d]) >= 0``: convex in ``beta``.
    """
    scaled = beta * d
    e = np.exp(scaled)
    s = e.sum(axis=-1)  # >= 1: the max entry contributes exp(0)
    p = e / s[:, None]
    mean_d = np.sum(p * d, axis=-1)
    var_d = np.sum(p * (d - mean_d[:, None]) ** 2, axis=-1)
    f = float(np.mean(np.log(s) - beta * dy))
    return f, float(np.mean(mean_d - dy)), float(np.mean(var_d))


def fit_temperature(logits: ArrayT, labels: ArrayT, /) -> float:
    r"""The temperature ``T > 0`` that minimises the NLL of ``softmax(logits / T)``.

    Temperature scaling (Guo et al. 2017): on held-out ``(logits, labels)``,
    ``T = argmin_T mean_i -log softmax(logits[i] / T)[labels[i]]``.  Dividing
    the logits by ``T`` keeps every argmax, so accuracy is unchanged while the
    confidences become calibrated: ``T > 1`` for an over-confident model.

    Parameters
    ----------
    logits : array, shape (..., n_classes)
        Finite scores (NumPy, PyTorch or JAX; computed in float64 NumPy).
    labels : integer array, shape (...)
        The true classes, in ``[0, n_classes)``.

    Returns
    -------
    float
        ``T``, accurate to about 1e-12 relative.

    Raises
    ------
    SoftmaxkitValueError
        For non-finite logits, labels outside ``[0, n_classes)``, mismatched
        shapes or empty input; and when no finite ``T > 0`` is optimal: when
        the NLL keeps falling as ``T -> inf`` (the logits are no better than
        uniform on these labels) or as ``T -> 0`` (every label holds its row's
        largest logit, so any confidence short of the maximum is too little).

    Notes
    -----
    With ``beta = 1 / T`` the NLL ``f(beta) = mean(logsumexp(beta * z) -
    beta * z_y)`` is convex (``f''(beta)`` is the mean variance of the logits
    under ``softmax(beta * z)``), hence unimodal in ``log T``.  ``f'(beta)``
    is bracketed by doubling from ``beta = 1``, then the root of ``f'`` is
    found by Newton's method with the exact ``f''``, safeguarded by bisection
    whenever a step would leave the bracket.  No framework optimizer and no
    learning rate are involved.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import fit_temperature
    >>> logits = np.array([[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    >>> labels = np.array([0, 0, 1, 1])  # 3 of 4 right: softmax should say 0.75
    >>> T = fit_temperature(logits, labels)
    >>> round(T, 4)  # softmax([4, 0] / T) = [0.75, 0.25] when 4 / T = log 3
    3.641
    """
    z = to_numpy(as_array(logits, "logits"))
    if z.ndim < 1 or z.shape[-1] == 0:
        raise SoftmaxkitValueError(
            f"`logits` must have shape (..., n_classes) with n_classes >= 1; got shape {z.shape}"
        )
    z = z.astype(np.float64)
    if not np.isfinite(z).all():
        pos = _first_bad(~np.isfinite(z))
        raise SoftmaxkitValueError(
            f"`logits` must be finite; position {pos} holds {z[pos].item()!r}"
        )
    y = _labels_in_range(labels, z.shape[-1], z.shape[:-1]).reshape(-1)
    z = z.reshape(-1, z.shape[-1])
    if z.shape[0] == 0:
        raise SoftmaxkitValueError("`logits` must hold at least one row; got none")
    # z - max(z) overflows to -inf for finite logits of either sign near the float64
    # limit (1e308 - -1e308), and then every derived quantity is NaN.  Scaling by a
    # power of two first keeps the row spread <= 2 and is exact (short of subnormals,
    # which are too small to matter next to such logits).
    magnitude = float(np.max(np.abs(z)))
    prescale = math.ldexp(1.0, math.frexp(magnitude)[1] - 1) if magnitude > 0 else 1.0
    d = z / prescale
    d = d - d.max(axis=-1, keepdims=True)
    # Solving for beta' = beta * scale on d / scale in [-1, 0] keeps every product
    # and square below 1 in magnitude, whatever the size of the logits.
    scale = float(np.max(-d))
    if scale > 0:
        d = d / scale
    dy = np.take_along_axis(d, y[:, None], axis=-1)[:, 0]

    # f'(0) >= 0: the optimum is beta <= 0 (T -> inf).  f'(0) is a mean of terms in
    # [-1, 1] whose rounding reaches a few ulp per class and row: an exact 0 (labels no
    # better than uniform, e.g. [1, 0, 1, 1, 1] with label 0 beside [0, 0, 0, 0, 1] with
    # label 0) came out just below it, and a temperature near 1e16 was returned.  Within
    # that rounding its sign is decided exactly: C * N * f'(0) = sum(d) - C * sum(dy),
    # an exact sum of the values as they are (fsum, dy repeated C times).
    slope_at_0 = float(np.mean(d.mean(axis=-1) - dy))
    rounding = 4 * np.finfo(np.float64).eps * (d.shape[-1] + math.log2(d.shape[0]) + 1)
    if abs(slope_at_0) <= rounding:
        slope_at_0 = math.fsum(np.concatenate([d.ravel(), np.repeat(-dy, d.shape[-1])]))
    if slope_at_0 >= 0:
        raise SoftmaxkitValueError(
            "`logits` carry no information about `labels`: the NLL keeps falling as T -> inf "
            "(uniform probabilities), so no finite temperature is optimal"
        )
    if not np.any(dy < 0):
        raise SoftmaxkitValueError(
            "every label in `labels` holds the largest logit of its row: the NLL keeps falling "
            "as T -> 0, so no temperature > 0 is optimal"
        )
    # Now f'(beta) tends to mean(-dy) > 0 as beta grows, and reaches it once
    # beta * (the smallest nonzero gap to a row's max) passes ~1500, where every
    # probability off the max underflows to 0: doubling finds a bracket by then.
    lo, hi = 0.0, 1.0
    for _ in range(1000):
        _, slope, _ = _nll_in_beta(hi, d, dy)
        if slope >= 0:
            break
        lo, hi = hi, 2.0 * hi
    else:  # pragma: no cover - needs logits differing only in their last few bits
        raise SoftmaxkitValueError(
            "`logits` differ by too little (relative to their spread) for a temperature to be fit"
        )
    beta = hi if slope == 0 else 0.5 * (lo + hi)
    for _ in range(200):
        _, slope, curvature = _nll_in_beta(beta, d, dy)
        if slope == 0:
            break
        if slope < 0:
            lo = beta
        else:
            hi = beta
        step = slope / curvature if curvature > 0 else math.inf
        candidate = beta - step
        # Newton converges quadratically near the root; far from it (or with a
        # flat f') it can overshoot, and bisection keeps the bracket shrinking.
        if not lo < candidate < hi:
            candidate = 0.5 * (lo + hi)
        if abs(candidate - beta) <= 1e-14 * beta or hi - lo <= 1e-15 * hi:
            beta = candidate
            break
        beta = candidate
    temperature = scale / beta * prescale
    if not math.isfinite(temperature):
        raise SoftmaxkitValueError(
            f"`logits` span {magnitude:.3g}: the optimal temperature exceeds the float64 range"
        )
    return temperature
