"""Heads: how the output layer is trained and read, and how labels become targets.

A head is a small strategy object (see :class:`Head`), so a new one is one class and one
entry in ``HEADS``.  Every head trains on a weighted mean of per-example losses,
``L = sum_i w_i l_i / B`` over a batch of ``B`` rows: the weights are ``sample_weight`` times
``class_weight``, scaled by ``fit`` to average 1 over the training set (all 1 when neither
is given: the plain mean).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._candidate import sampled_logits
from .._errors import SoftmaxkitError, SoftmaxkitTypeError, SoftmaxkitValueError
from .._losses import binary_cross_entropy_with_logits_grad, cross_entropy_grad
from .._softmax import log_sigmoid, log_softmax, sigmoid, softmax
from .._sparse import sparsemax, sparsemax_loss_grad
from .._typing import Init
from ..nn import Sequential
from ..sampling import UnigramSampler

__all__ = ["HEADS", "LABEL_KINDS", "Head", "as_labels", "classes_of", "encode_against"]

# Label dtypes fit accepts and the file stores without a pickle: bool, integers, floats
# holding whole numbers, str, bytes, datetime64, timedelta64 (object labels become str).
LABEL_KINDS = "biufcUSMm"


def as_labels(y: Any) -> np.ndarray:
    """``y`` as an array of labels, object arrays as ``str`` (as fit stores their classes).

    Every place that compares labels with ``classes_`` (fit, the evaluation set,
    ``score``) goes through here, so ``[1, "dog"]`` means the same labels in each.
    """
    y = np.asarray(y)
    return y.astype(str) if y.dtype.kind == "O" else y


def check_target_kind(y: np.ndarray) -> None:
    """Refuse what scikit-learn does not call a classification target (continuous, complex)."""
    from sklearn.utils.multiclass import type_of_target

    # type_of_target refuses bytes for its own reasons (they cannot be told from
    # buffers); bytes labels are plain values here, judged as their text.
    probe = y.astype(str) if y.dtype.kind == "S" else y
    try:
        kind = type_of_target(probe, input_name="y")
    except ValueError as exc:
        raise SoftmaxkitValueError(f"`y` cannot be class labels: {exc}") from None
    if kind not in ("binary", "multiclass", "multiclass-multioutput", "multilabel-indicator"):
        raise SoftmaxkitValueError(
            f"`y` must hold class labels; got {kind!r} values (Unknown label type: {kind!r}; "
            "a regression target cannot be classified: bin it into classes first)"
        )


def classes_of(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if y.ndim != 1:
        raise SoftmaxkitValueError(f"`y` must have shape (N,) of class labels; got shape {y.shape}")
    y = as_labels(y)
    if y.dtype.kind not in LABEL_KINDS:
        raise SoftmaxkitTypeError(
            f"`y` must hold labels of a plain dtype (numbers, strings, bytes, dates); got dtype "
            f"{y.dtype}"
        )
    if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
        raise SoftmaxkitValueError("`y` must not hold NaN or inf labels")
    if y.dtype.kind in "Mm" and np.any(np.isnat(y)):
        raise SoftmaxkitValueError("`y` must not hold NaT labels")
    classes, index = np.unique(y, return_inverse=True)
    return classes, index.astype(np.int64)


def _weighted(value_rows: np.ndarray, d_rows: np.ndarray, w: np.ndarray) -> tuple[float, Any]:
    """``sum_i w_i l_i / B`` and its gradient, from per-row losses and per-row gradients.

    Divided by the rows ``B``, not by ``sum w``: a batch of light rows takes a small step,
    so that class and sample weights weigh across batches, not only within one.
    """
    scale = (w / w.shape[0]).reshape((-1,) + (1,) * (d_rows.ndim - 1))
    return float(np.dot(w, value_rows) / w.shape[0]), d_rows * scale


class Head:
    """How the output layer is trained and read.

    * ``encode(y)`` -> ``(targets, classes, multilabel)``: what the loss needs, and
      the labels in the order of the output units;
    * ``train_batch(network, x, targets, w)`` -> ``(weighted loss, logits)``: one
      forward and backward pass, leaving the gradients in ``network.grads``;
    * ``loss(logits, targets, w)`` -> ``(weighted loss, dL/dlogits)``;
    * ``proba(logits, multilabel)``: the probabilities ``predict_proba`` returns;
    * ``n_correct(logits, targets, multilabel, w)``: the weighted count of rows right.

    A head that trains on a subset of the outputs (candidate sampling) overrides
    ``train_batch`` (it can run ``network.layers[:-1]`` and the last ``Dense``
    itself) and keeps ``proba`` as the full softmax.
    """

    name: ClassVar[str]
    output_init: ClassVar[Init] = "glorot"

    def encode(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        raise NotImplementedError

    def loss(self, logits: np.ndarray, targets: np.ndarray, w: np.ndarray) -> tuple[float, Any]:
        raise NotImplementedError

    def proba(self, logits: np.ndarray, multilabel: bool) -> np.ndarray:
        raise NotImplementedError

    def log_proba(self, logits: np.ndarray, multilabel: bool) -> np.ndarray:
        raise NotImplementedError

    def train_batch(
        self, network: Sequential, x: np.ndarray, targets: np.ndarray, w: np.ndarray
    ) -> tuple[float, np.ndarray]:
        logits = network.forward(x)
        value, d_logits = self.loss(logits, targets, w)
        network.backward(d_logits)
        return value, logits

    def n_correct(
        self, logits: np.ndarray, targets: np.ndarray, multilabel: bool, w: np.ndarray
    ) -> float:
        if multilabel:
            right = np.all((logits > 0) == (targets > 0.5), axis=1)
        else:
            truth = targets if targets.ndim == 1 else np.argmax(targets, axis=1)
            right = np.argmax(logits, axis=1) == truth
        return float(np.dot(w, right))


class SoftmaxHead(Head):
    """One class per example: ``p = softmax(z)``, ``l = -log p[y]``."""

    name = "softmax"

    def encode(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        if y.ndim == 2:
            raise SoftmaxkitValueError(
                f"`y` of shape {y.shape} is multi-label; head={self.name!r} takes one label "
                "per example, shape (N,): use head='logistic' for multi-label y"
            )
        classes, index = classes_of(y)
        return index, classes, False

    def loss(self, logits: np.ndarray, targets: np.ndarray, w: np.ndarray) -> tuple[float, Any]:
        rows, d_rows = cross_entropy_grad(logits, targets, reduction="none")
        return _weighted(np.asarray(rows), np.asarray(d_rows), w)

    def proba(self, logits: np.ndarray, multilabel: bool) -> np.ndarray:
        return softmax(logits, axis=-1)

    def log_proba(self, logits: np.ndarray, multilabel: bool) -> np.ndarray:
        return log_softmax(logits, axis=-1)


class LogisticHead(Head):
    """One independent sigmoid per output, ``l = sum_k bce(z_k, t_k)``.

    With a 2-D 0/1 ``y`` this is multi-label and ``predict_proba`` gives the
    independent ``sigmoid(z)``.  With a 1-D ``y`` of classes it is one-vs-rest: the
    predicted class is the one of the largest sigmoid, and ``predict_proba``
    normalises the sigmoids to sum to 1 (as scikit-learn's one-vs-rest classifiers do).
    """

    name = "logistic"

    def encode(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        if y.ndim == 1:
            classes, index = classes_of(y)
            one_hot = np.zeros((y.shape[0], classes.shape[0]))
            one_hot[np.arange(y.shape[0]), index] = 1.0
            return one_hot, classes, False
        if y.ndim != 2 or y.shape[1] == 0:
            raise SoftmaxkitValueError(
                f"`y` must have shape (N,) or (N, n_labels) with n_labels >= 1; got {y.shape}"
            )
        if y.dtype.kind not in "biuf":
            raise SoftmaxkitValueError(f"multi-label `y` must be 0/1 numbers; got dtype {y.dtype}")
        bad = (y != 0) & (y != 1)
        if bad.any():
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise SoftmaxkitValueError(
                f"multi-label `y` must hold only 0 and 1; position {pos} holds {y[pos].item()!r}"
            )
        return y.astype(np.float64), np.arange(y.shape[1]), True

    def loss(self, logits: np.ndarray, targets: np.ndarray, w: np.ndarray) -> tuple[float, Any]:
        cells, d_cells = binary_cross_entropy_with_logits_grad(logits, targets, reduction="none")
        return _weighted(np.asarray(cells).sum(axis=1), np.asarray(d_cells), w)

    def proba(self, logits: np.ndarray, multilabel: bool) -> np.ndarray:
        p = sigmoid(logits)
        return p if multilabel else p / p.sum(axis=1, keepdims=True)

    def log_proba(self, logits: np.ndarray, multilabel: bool) -> np.ndarray:
        # In logs, so that a sigmoid that underflows gives -inf only where it must.
        log_p = log_sigmoid(logits)
        if multilabel:
            return log_p
        top = log_p.max(axis=1, keepdims=True)
        return log_p - (top + np.log(np.exp(log_p - top).sum(axis=1, keepdims=True)))


class SparsemaxHead(SoftmaxHead):
    """One class per example: ``p = sparsemax(z)``, trained with the sparsemax loss.

    The loss is the Fenchel-Young loss of sparsemax (:func:`softmaxkit.sparsemax_loss`),
    ``l = <p, z> + (1 - |p|^2) / 2 - z[y]`` with gradient ``p - onehot(y)``: zero once
    the true class leads every other by at least 1, so confident rows stop pulling.
    ``predict_proba`` rows are the Euclidean projection of ``z`` onto the simplex and
    hold exact zeros; ``predict_log_proba`` is their log, ``-inf`` at those zeros (the
    log of a probability that is exactly 0, not an underflow).  The ranking of the
    classes is that of the logits, so ``predict`` (the argmax of ``z``) is the class of
    the largest probability.
    """

    name = "sparsemax"

    def loss(self, logits: np.ndarray, targets: np.ndarray, w: np.ndarray) -> tuple[float, Any]:
        rows, d_rows = sparsemax_loss_grad(logits, targets, reduction="none")
        return _weighted(np.asarray(rows), np.asarray(d_rows), w)

    def proba(self, logits: np.ndarray, multilabel: bool) -> np.ndarray:
        return np.asarray(sparsemax(logits, axis=-1))

    def log_proba(self, logits: np.ndarray, multilabel: bool) -> np.ndarray:
        with np.errstate(divide="ignore"):  # log 0 = -inf is the answer, not a warning
            return np.log(self.proba(logits, multilabel))


class SampledHead(SoftmaxHead):
    """Trained with sampled softmax over ``num_sampled`` classes per batch; reads the full softmax.

    The batch's negatives are drawn without repeats in proportion to the (weighted)
    training-class frequencies (:class:`~softmaxkit.sampling.UnigramSampler`), with
    ``log Q`` subtracted and accidental hits removed, as
    :func:`softmaxkit.sampled_softmax_loss` does by default.  Only the output rows of
    the labels and the sample get a non-zero gradient; the probabilities, the
    evaluation loss and the predictions use every class (``history_["loss"]`` is the
    sampled loss the batches were trained on).
    """

    name = "sampled"

    def __init__(self, num_sampled: int, rng: np.random.Generator) -> None:
        self.num_sampled = num_sampled
        self.rng = rng
        self.sampler: UnigramSampler | None = None

    def encode(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        index, classes, multilabel = super().encode(y)
        self.check_classes(classes.shape[0])
        return index, classes, multilabel

    def check_classes(self, n_classes: int) -> None:
        if not 1 <= self.num_sampled <= n_classes:
            raise SoftmaxkitValueError(
                f"`num_sampled` must be in [1, {n_classes}] (the classes in `y`) for "
                f"head='sampled'; got {self.num_sampled}"
            )

    def set_frequencies(self, counts: np.ndarray) -> None:
        # A class of zero weight would never be sampled as a negative; 1e-12 keeps it
        # drawable without moving the others measurably.
        self.sampler = UnigramSampler(np.maximum(counts, 1e-12))

    def train_batch(
        self, network: Sequential, x: np.ndarray, targets: np.ndarray, w: np.ndarray
    ) -> tuple[float, np.ndarray]:
        if self.sampler is None:
            raise SoftmaxkitError("head='sampled' must see the training labels first")
        *body, out = network.layers
        h = x
        for layer in body:
            h = layer.forward(h)
        weight, bias = out.params["weight"], out.params["bias"]  # (D, V), (V,)
        values = self.sampler.sample(self.num_sampled, true_classes=targets, rng=self.rng)
        # Columns: the true class, then the sample (hits at -inf, log Q subtracted).
        logits, soft_targets = sampled_logits(weight.T, bias, targets, h, sampled_values=values)
        logits, soft_targets = np.asarray(logits), np.asarray(soft_targets)
        log_p = log_softmax(logits, axis=-1)
        rows = -np.sum(soft_targets * np.where(soft_targets > 0, log_p, 0.0), axis=1)
        value, dz = _weighted(rows, np.exp(log_p) - soft_targets, w)  # (B, 1 + S)
        sampled = np.asarray(values[0])
        w_true, w_sampled = weight[:, targets], weight[:, sampled]  # (D, B), (D, S)
        d_weight = np.zeros_like(weight)
        np.add.at(d_weight.T, targets, dz[:, :1] * h)
        d_weight[:, sampled] += h.T @ dz[:, 1:]
        d_bias = np.zeros_like(bias)
        np.add.at(d_bias, targets, dz[:, 0])
        d_bias[sampled] += dz[:, 1:].sum(axis=0)
        out.grads["weight"], out.grads["bias"] = d_weight, d_bias
        d = dz[:, :1] * w_true.T + dz[:, 1:] @ w_sampled.T
        for layer in reversed(body):
            d = layer.backward(d)
        return value, h @ weight + bias  # full logits: for the running accuracy only


HEADS: dict[str, type[Head]] = {
    "softmax": SoftmaxHead,
    "logistic": LogisticHead,
    "sampled": SampledHead,
    "sparsemax": SparsemaxHead,
}


def encode_against(
    head: Head, y: np.ndarray, name: str, classes: np.ndarray, multilabel: bool
) -> np.ndarray:
    """``y`` (named ``name`` in messages) as ``head``'s targets over the known ``classes``."""
    if multilabel:
        if y.ndim != 2 or y.shape[1] != classes.shape[0]:
            raise SoftmaxkitValueError(
                f"multi-label `{name}` must have shape (N, {classes.shape[0]}), as `y`; "
                f"got shape {y.shape}"
            )
        return head.encode(y)[0]
    if y.ndim != 1:  # before the lookup: the rows of a 2-D y are lists, unhashable
        raise SoftmaxkitValueError(
            f"`{name}` must have shape (N,) of labels, as `y`; got shape {y.shape}"
        )
    lookup = {label: i for i, label in enumerate(classes.tolist())}
    unknown = [label for label in y.tolist() if label not in lookup]
    if unknown:
        raise SoftmaxkitValueError(
            f"`{name}` must hold labels seen in training {classes.tolist()}; got {unknown[:3]}"
        )
    index = np.array([lookup[label] for label in y.tolist()], dtype=np.int64)
    if head.name == "logistic":
        one_hot = np.zeros((y.shape[0], classes.shape[0]))
        one_hot[np.arange(y.shape[0]), index] = 1.0
        return one_hot
    return index
