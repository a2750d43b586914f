"""``Classifier``: a NumPy network with a softmax (or logistic) output layer, sklearn-style.

The network is ``[Dense -> ReLU (-> Dropout)] * len(hidden) -> Dense`` from
:mod:`softmaxkit.nn`; the *head* turns the last layer's logits into
probabilities and owns the loss.  A head is a small strategy object (see
:class:`_Head`), so a new one is one class and one entry in ``_HEADS``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ._atomic import atomic_write_bytes
from ._candidate import sampled_softmax_value_and_grad
from ._errors import SoftmaxkitError, SoftmaxkitTypeError, SoftmaxkitValueError
from ._softmax import sigmoid, softmax
from .nn import (
    SGD,
    Adam,
    Dense,
    Dropout,
    LogisticCrossEntropy,
    ReLU,
    Sequential,
    SoftmaxCrossEntropy,
)
from .sampling import UnigramSampler

__all__ = ["Classifier"]

FORMAT = "softmaxkit.Classifier"
FORMAT_VERSION = 1

BatchCallback = Callable[[int, int, int, float, float], None]
EpochCallback = Callable[[int, dict[str, float]], None]


# --- heads ---------------------------------------------------------------------------------


class _Head:
    """How the output layer is trained and read.

    * ``encode(y)`` -> ``(targets, classes, multilabel)``: what the loss needs, and
      the labels in the order of the output units;
    * ``make_loss()``: a fused loss from :mod:`softmaxkit.nn`;
    * ``train_batch(network, loss, x, targets)`` -> ``(loss value, logits)``: one
      forward and backward pass, leaving the gradients in ``network.grads``;
    * ``proba(logits)``: the probabilities ``predict_proba`` returns;
    * ``n_correct(logits, targets)``: for the running accuracy.

    A head that trains on a subset of the outputs (candidate sampling) overrides
    ``train_batch`` (it can run ``network.layers[:-1]`` and the last ``Dense``
    itself) and keeps ``proba`` as the full softmax.
    """

    name: ClassVar[str]
    output_init: ClassVar[str] = "glorot"

    def encode(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        raise NotImplementedError

    def make_loss(self) -> Any:
        raise NotImplementedError

    def proba(self, logits: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def train_batch(
        self, network: Sequential, loss: Any, x: np.ndarray, targets: np.ndarray
    ) -> tuple[float, np.ndarray]:
        logits = network.forward(x)
        value = loss.forward(logits, targets)
        network.backward(loss.backward())
        return value, logits

    def n_correct(self, logits: np.ndarray, targets: np.ndarray, multilabel: bool) -> int:
        if multilabel:
            return int(np.sum(np.all((logits > 0) == (targets > 0.5), axis=1)))
        truth = targets if targets.ndim == 1 else np.argmax(targets, axis=1)
        return int(np.sum(np.argmax(logits, axis=1) == truth))


def _classes_of(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if y.ndim != 1:
        raise SoftmaxkitValueError(f"`y` must have shape (N,) of class labels; got shape {y.shape}")
    if y.dtype.kind == "O":
        y = y.astype(str)
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise SoftmaxkitValueError("`y` must not hold NaN or inf labels")
    classes, index = np.unique(y, return_inverse=True)
    return classes, index.astype(np.int64)


class _SoftmaxHead(_Head):
    """One class per example: ``p = softmax(z)``, trained with :class:`SoftmaxCrossEntropy`."""

    name = "softmax"

    def encode(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        if y.ndim == 2:
            raise SoftmaxkitValueError(
                f"`y` of shape {y.shape} is multi-label; head='softmax' takes one label per "
                "example, shape (N,): use head='logistic' for multi-label y"
            )
        classes, index = _classes_of(y)
        return index, classes, False

    def make_loss(self) -> SoftmaxCrossEntropy:
        return SoftmaxCrossEntropy()

    def proba(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits, axis=-1)


class _LogisticHead(_Head):
    """One independent sigmoid per label, trained with :class:`LogisticCrossEntropy`.

    With a 2-D 0/1 ``y`` this is multi-label; with a 1-D ``y`` of classes it is
    one-vs-rest (the predicted class is the most probable one, and the
    probabilities need not sum to 1).
    """

    name = "logistic"

    def encode(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        if y.ndim == 1:
            classes, index = _classes_of(y)
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

    def make_loss(self) -> LogisticCrossEntropy:
        return LogisticCrossEntropy()

    def proba(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(logits)


class _SampledHead(_SoftmaxHead):
    """Trained with sampled softmax over ``num_sampled`` classes per batch; reads the full softmax.

    The batch's negatives are drawn without repeats in proportion to the
    training-class frequencies (:class:`~softmaxkit.sampling.UnigramSampler`),
    with ``log Q`` subtracted and accidental hits removed, as
    :func:`softmaxkit.sampled_softmax_loss` does by default.  Only the output
    rows of the labels and the sample get a non-zero gradient; the
    probabilities, the evaluation loss and the predictions use every class
    (``history_["loss"]`` is the sampled loss the batches were trained on).
    """

    name = "sampled"

    def __init__(self, num_sampled: int, seed: int) -> None:
        self.num_sampled = num_sampled
        self.rng = np.random.default_rng((seed, 5))  # a stream apart from fit's own
        self.sampler: UnigramSampler | None = None

    def encode(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        index, classes, multilabel = super().encode(y)
        n_classes = classes.shape[0]
        if not 1 <= self.num_sampled <= n_classes:
            raise SoftmaxkitValueError(
                f"`num_sampled` must be in [1, {n_classes}] (the classes in `y`) for "
                f"head='sampled'; got {self.num_sampled}"
            )
        self.sampler = UnigramSampler(np.bincount(index, minlength=n_classes))
        return index, classes, multilabel

    def train_batch(
        self, network: Sequential, loss: Any, x: np.ndarray, targets: np.ndarray
    ) -> tuple[float, np.ndarray]:
        if self.sampler is None:
            raise SoftmaxkitError("head='sampled' must see the training labels (encode) first")
        *body, out = network.layers
        h = x
        for layer in body:
            h = layer.forward(h)
        weight, bias = out.params["weight"], out.params["bias"]  # (D, V), (V,)
        values = self.sampler.sample(self.num_sampled, true_classes=targets, rng=self.rng)
        value, grad = sampled_softmax_value_and_grad(
            weight.T, bias, targets, h, sampled_values=values
        )
        out.grads["weight"] = np.zeros_like(weight)
        np.add.at(out.grads["weight"].T, grad.rows, grad.d_weights)
        out.grads["bias"] = np.zeros_like(bias)
        np.add.at(out.grads["bias"], grad.rows, grad.d_biases)
        d = grad.d_inputs
        for layer in reversed(body):
            d = layer.backward(d)
        return float(value), h @ weight + bias  # full logits: for the running accuracy only


_HEADS: dict[str, type[_Head]] = {
    "softmax": _SoftmaxHead,
    "logistic": _LogisticHead,
    "sampled": _SampledHead,
}

_OPTIMIZERS = ("adam", "sgd")


# --- input checks --------------------------------------------------------------------------


def _check_X(X: Any, name: str = "X") -> np.ndarray:
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SoftmaxkitTypeError(f"`{name}` must be an array of real numbers ({exc})") from exc
    if X.ndim != 2:
        raise SoftmaxkitValueError(
            f"`{name}` must have shape (n_samples, n_features); got shape {X.shape}"
        )
    bad = ~np.isfinite(X)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise SoftmaxkitValueError(
            f"`{name}` must be finite (no NaN or inf); position {pos} holds {X[pos].item()!r}"
        )
    return X


# --- the estimator -------------------------------------------------------------------------


class Classifier:
    r"""A multilayer perceptron with a softmax output layer, trained end to end.

    Follows the scikit-learn estimator conventions: the constructor only
    stores its arguments; ``fit(X, y)`` learns and sets the attributes ending
    in ``_``; ``predict``, ``predict_proba``, ``score``, ``get_params`` and
    ``set_params`` behave as in scikit-learn (``sklearn.base.clone`` and
    ``cross_val_score`` work, without softmaxkit importing scikit-learn).

    Parameters
    ----------
    hidden : tuple of int, default (64,)
        Width of each hidden ``Dense -> ReLU`` layer; ``()`` gives multinomial
        logistic regression.
    head : {"softmax", "logistic", "sampled"}, default "softmax"
        ``"softmax"``: one class per example, ``predict_proba`` rows sum to 1.
        ``"logistic"``: one sigmoid per output; with a 2-D 0/1 ``y`` this is
        multi-label (an image can be both "person" and "dog") and
        ``predict_proba`` gives independent probabilities.
    epochs : int, default 50
        Passes over the training set.
    batch_size : int, default 32
    optimizer : {"adam", "sgd"}, default "adam"
        :class:`softmaxkit.nn.Adam`, or :class:`softmaxkit.nn.SGD` with ``momentum``.
    learning_rate : float, default 0.003
    num_sampled : int, default 64
        Used by ``head="sampled"`` only: the classes each batch is scored
        against (:func:`softmaxkit.sampled_softmax_loss`), for problems with
        very many classes; prediction still uses the full softmax.
    momentum : float, default 0.9
        Used by ``optimizer="sgd"`` only.
    weight_decay : float, default 1e-3
        L2 penalty added to every gradient.
    dropout : float, default 0.0
        Dropout rate after each hidden layer, in [0, 1).
    standardize : bool, default True
        Scale each feature to mean 0 and variance 1 using the training set
        (constant features are only centred).
    seed : int, default 0
        Seeds the initial weights, the batch order and dropout: the same seed
        gives exactly the same model.

    Attributes
    ----------
    classes_ : array
        The labels in output order: the original labels (strings allowed) or,
        for multi-label ``y``, ``arange(n_labels)``.
    n_features_in_ : int
    network_ : softmaxkit.nn.Sequential
    history_ : dict of lists
        Per epoch: ``loss`` and ``accuracy`` on the training batches (as they
        were trained), and ``val_loss``, ``val_accuracy`` when ``fit`` was
        given an ``eval_set``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import Classifier
    >>> X = np.array([[0.0, 0.0], [0.1, 0.2], [3.0, 3.0], [3.1, 2.9]])
    >>> clf = Classifier(hidden=(8,), epochs=50, batch_size=2).fit(X, ["cat", "cat", "dog", "dog"])
    >>> clf.predict(np.array([[3.0, 3.1]])).tolist()
    ['dog']
    >>> clf.predict_proba(np.array([[3.0, 3.1]])).sum().round(6)
    np.float64(1.0)
    """

    def __init__(
        self,
        hidden: Sequence[int] = (64,),
        head: str = "softmax",
        *,
        num_sampled: int = 64,
        epochs: int = 50,
        batch_size: int = 32,
        optimizer: str = "adam",
        learning_rate: float = 0.003,
        momentum: float = 0.9,
        weight_decay: float = 1e-3,
        dropout: float = 0.0,
        standardize: bool = True,
        seed: int = 0,
    ) -> None:
        self.hidden = hidden
        self.head = head
        self.num_sampled = num_sampled
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.standardize = standardize
        self.seed = seed

    # -- scikit-learn protocol --

    _estimator_type = "classifier"
    _metadata: dict[str, Any]
    _PARAMS = (
        "hidden",
        "head",
        "num_sampled",
        "epochs",
        "batch_size",
        "optimizer",
        "learning_rate",
        "momentum",
        "weight_decay",
        "dropout",
        "standardize",
        "seed",
    )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments, as given."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params: Any) -> Classifier:
        """Set constructor arguments by name; returns ``self``."""
        for name, value in params.items():
            if name not in self._PARAMS:
                raise SoftmaxkitValueError(
                    f"`{name}` is not a parameter of Classifier; expected one of {self._PARAMS}"
                )
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self) -> Any:
        # Only scikit-learn calls this, so importing it here costs nothing elsewhere.
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags(multi_label=self.head == "logistic"),
        )

    def __repr__(self) -> str:
        changed = {
            k: v
            for k, v in self.get_params().items()
            if v != type(self)().get_params()[k] or k == "hidden"
        }
        return "Classifier(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    # -- checks --

    def _head(self) -> _Head:
        if self.head not in _HEADS:
            raise SoftmaxkitValueError(f"`head` must be one of {sorted(_HEADS)}; got {self.head!r}")
        if self.head == "sampled":
            if not isinstance(self.num_sampled, (int, np.integer)) or self.num_sampled < 1:
                raise SoftmaxkitValueError(
                    f"`num_sampled` must be an int >= 1; got {self.num_sampled!r}"
                )
            return _SampledHead(int(self.num_sampled), self.seed)
        return _HEADS[self.head]()

    def _hidden(self) -> tuple[int, ...]:
        try:
            widths = tuple(int(w) for w in self.hidden)
        except (TypeError, ValueError):
            raise SoftmaxkitTypeError(
                f"`hidden` must be a sequence of layer widths; got {self.hidden!r}"
            ) from None
        if any(w < 1 for w in widths):
            raise SoftmaxkitValueError(f"`hidden` widths must be >= 1; got {self.hidden!r}")
        return widths

    def _check_settings(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise SoftmaxkitValueError(f"`{name}` must be an int >= 1; got {value!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise SoftmaxkitValueError(
                f"`optimizer` must be one of {_OPTIMIZERS}; got {self.optimizer!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise SoftmaxkitValueError(f"`dropout` must be in [0, 1); got {self.dropout!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise SoftmaxkitValueError(
                f"`weight_decay` must be finite and >= 0; got {self.weight_decay!r}"
            )

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise SoftmaxkitValueError(
                "this Classifier is not fitted yet; call `fit(X, y)` (or `Classifier.load`) first"
            )

    def _check_predict_X(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise SoftmaxkitValueError(
                f"`X` must have {self.n_features_in_} features, as at fit; got {X.shape[1]}"
            )
        return X

    # -- building and training --

    def _build(self, n_in: int, n_out: int, rng: np.random.Generator) -> Sequential:
        layers: list[Any] = []
        for width in self._hidden():
            layers += [Dense(n_in, width, init="he", rng=rng), ReLU()]
            if self.dropout > 0:
                layers.append(Dropout(self.dropout, rng=rng))
            n_in = width
        layers.append(Dense(n_in, n_out, init=self._head().output_init, rng=rng))
        return Sequential(*layers)

    def _make_optimizer(self) -> SGD | Adam:
        if self.optimizer == "sgd":
            return SGD(
                lr=self.learning_rate, momentum=self.momentum, weight_decay=self.weight_decay
            )
        return Adam(lr=self.learning_rate, weight_decay=self.weight_decay)

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        eval_set: tuple[Any, Any] | None = None,
        on_batch: BatchCallback | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> Classifier:
        """Train from scratch on ``X`` (n_samples, n_features) and ``y``; returns ``self``.

        Parameters
        ----------
        X : array (N, n_features), finite
        y : array (N,) of labels, or (N, n_labels) of 0/1 with ``head="logistic"``
        eval_set : (X_val, y_val), optional
            Scored after every epoch into ``history_["val_loss"]`` and
            ``history_["val_accuracy"]`` (for learning curves; not used to train).
        on_batch : callable, optional
            ``on_batch(epoch, batch, n_batches, running_loss, running_accuracy)``
            after each batch (epochs and batches count from 1), e.g. to drive a
            progress bar.
        on_epoch : callable, optional
            ``on_epoch(epoch, record)`` after each epoch, ``record`` holding this
            epoch's entries of ``history_``.

        Raises
        ------
        SoftmaxkitValueError
            For an empty training set, ``X`` and ``y`` of different lengths, NaN
            or inf in ``X``, a multi-label ``y`` that is not 0/1, or bad settings.
        """
        head = self._head()
        self._check_settings()
        X = _check_X(X)
        y = np.asarray(y)
        if X.shape[0] == 0:
            raise SoftmaxkitValueError("`X` must hold at least one training example; got 0 rows")
        if y.ndim == 0 or y.shape[0] != X.shape[0]:
            raise SoftmaxkitValueError(
                f"`X` and `y` must have the same length; got {X.shape[0]} rows and "
                f"{y.shape[0] if y.ndim else 'a scalar'} labels"
            )
        targets, classes, multilabel = head.encode(y)
        if eval_set is not None:
            X_val = self._check_eval_X(eval_set[0], X.shape[1])
            val_targets = self._encode_like(head, np.asarray(eval_set[1]), classes, multilabel)

        rng = np.random.default_rng(self.seed)
        self.classes_ = classes
        self.multilabel_ = multilabel
        self.n_features_in_ = X.shape[1]
        self.mean_ = X.mean(axis=0) if self.standardize else np.zeros(X.shape[1])
        std = X.std(axis=0) if self.standardize else np.ones(X.shape[1])
        self.scale_ = np.where(std > 0, std, 1.0)
        self.network_ = self._build(X.shape[1], classes.shape[0], rng)
        self.history_: dict[str, list[float]] = {"loss": [], "accuracy": []}
        if eval_set is not None:
            self.history_.update(val_loss=[], val_accuracy=[])

        Xs = self._scaled(X)
        loss = head.make_loss()
        optimizer = self._make_optimizer()
        n = Xs.shape[0]
        n_batches = math.ceil(n / self.batch_size)
        for epoch in range(1, self.epochs + 1):
            self.network_.train(True)
            order = rng.permutation(n)
            total_loss = 0.0
            total_correct = 0
            seen = 0
            for batch in range(n_batches):
                idx = order[batch * self.batch_size : (batch + 1) * self.batch_size]
                value, logits = head.train_batch(self.network_, loss, Xs[idx], targets[idx])
                optimizer.step(self.network_.params, self.network_.grads)
                total_loss += value * idx.shape[0]
                total_correct += head.n_correct(logits, targets[idx], multilabel)
                seen += idx.shape[0]
                if on_batch is not None:
                    on_batch(epoch, batch + 1, n_batches, total_loss / seen, total_correct / seen)
            record = {"loss": total_loss / n, "accuracy": total_correct / n}
            if eval_set is not None:
                record["val_loss"], record["val_accuracy"] = self._evaluate(
                    head, self._scaled(X_val), val_targets
                )
            for key, value in record.items():
                self.history_[key].append(value)
            if on_epoch is not None:
                on_epoch(epoch, record)
        self.network_.train(False)
        return self

    def _check_eval_X(self, X: Any, n_features: int) -> np.ndarray:
        X = _check_X(X, "eval_set[0]")
        if X.shape[1] != n_features:
            raise SoftmaxkitValueError(
                f"`eval_set[0]` must have {n_features} features, as `X`; got {X.shape[1]}"
            )
        return X

    @staticmethod
    def _encode_like(
        head: _Head, y: np.ndarray, classes: np.ndarray, multilabel: bool
    ) -> np.ndarray:
        """``y`` encoded against the training ``classes`` (for the evaluation set)."""
        if multilabel:
            return head.encode(y)[0]
        lookup = {label: i for i, label in enumerate(classes.tolist())}
        unknown = [label for label in y.tolist() if label not in lookup]
        if y.ndim != 1 or unknown:
            raise SoftmaxkitValueError(
                f"`eval_set[1]` must hold labels seen in training {classes.tolist()}; "
                f"got {unknown[:3] if unknown else f'shape {y.shape}'}"
            )
        index = np.array([lookup[label] for label in y.tolist()], dtype=np.int64)
        if head.name == "logistic":
            one_hot = np.zeros((y.shape[0], classes.shape[0]))
            one_hot[np.arange(y.shape[0]), index] = 1.0
            return one_hot
        return index

    def _evaluate(self, head: _Head, Xs: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
        self.network_.train(False)
        logits = self.network_.forward(Xs)
        value = head.make_loss().forward(logits, targets)
        correct = head.n_correct(logits, targets, self.multilabel_)
        return value, correct / Xs.shape[0]

    # -- prediction --

    def decision_function(self, X: Any) -> np.ndarray:
        """The logits ``z`` of the output layer, shape ``(N, len(classes_))``."""
        X = self._check_predict_X(X)
        self.network_.train(False)
        return self.network_.forward(self._scaled(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities, shape ``(N, len(classes_))``, columns in the order of ``classes_``.

        Softmax head: rows sum to 1.  Logistic head: each entry is an
        independent ``sigmoid(z)``.
        """
        return self._head().proba(self.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row, or for multi-label the 0/1 matrix ``p >= 0.5``."""
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba >= 0.5).astype(np.int64)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy: the fraction of rows predicted right (multi-label: every label right)."""
        predicted = self.predict(X)
        y = np.asarray(y)
        if y.shape[0] != predicted.shape[0]:
            raise SoftmaxkitValueError(
                f"`X` and `y` must have the same length; got {predicted.shape[0]} rows and "
                f"{y.shape[0]} labels"
            )
        if self.multilabel_:
            return float(np.mean(np.all(predicted == y, axis=1)))
        return float(np.mean(predicted == y))

    # -- persistence --

    def save(self, path: str | os.PathLike[str], /, *, metadata: dict | None = None) -> Path:
        """Write the fitted model to one ``.npz`` file, atomically; returns the path.

        The file holds the weights and a JSON header (format name and version,
        constructor parameters, classes, feature scaling, training history,
        and each array's shape, dtype and SHA-256), and never a pickle.
        ``metadata`` (JSON-serialisable) is stored alongside, e.g. where the
        data came from.
        """
        self._check_fitted()
        params = self.get_params()
        params["hidden"] = list(self._hidden())
        arrays: dict[str, Any] = {
            "classes": np.asarray(self.classes_),
            "mean": self.mean_,
            "scale": self.scale_,
        }
        arrays.update({f"param.{k}": v for k, v in self.network_.params.items()})
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "params": params,
            "multilabel": bool(self.multilabel_),
            "n_features_in": int(self.n_features_in_),
            "history": getattr(self, "history_", {}),
            "metadata": metadata or {},
            "arrays": {
                name: {
                    "shape": list(a.shape),
                    "dtype": a.dtype.str,
                    "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(),
                }
                for name, a in arrays.items()
            },
        }
        buffer = io.BytesIO()
        header_bytes = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        np.savez(buffer, header=header_bytes, **arrays)
        return atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike[str], /) -> Classifier:
        """Read a model written by :meth:`save`, checking everything before trusting it.

        Raises
        ------
        SoftmaxkitValueError
            If the file is missing, truncated or altered, not a softmaxkit
            model, of another format version, or holds arrays whose shapes or
            dtypes do not fit the network it describes; the message says which.
        """
        name = str(path)
        try:
            arrays, header = _read_model_file(path)
        except SoftmaxkitError:
            raise
        except FileNotFoundError:
            raise SoftmaxkitValueError(f"`path` {name!r} does not exist") from None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
            raise SoftmaxkitValueError(
                f"`path` {name!r} is not a readable softmaxkit model file (truncated, altered "
                f"or not an .npz written by Classifier.save): {exc}"
            ) from None
        return _restore(cls, arrays, header, name)

    @property
    def metadata_(self) -> dict:
        """The ``metadata`` a loaded model was saved with (empty for a freshly fitted one)."""
        return getattr(self, "_metadata", {})


def _read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict]:
    # Opened here rather than by np.load, which leaves the file open when it is not a zip.
    with open(path, "rb") as f:
        loaded = np.load(f, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise SoftmaxkitValueError(
                f"`path` {str(path)!r} holds a single .npy array, not a softmaxkit model"
            )
        with loaded as npz:
            if "header" not in npz.files:
                raise SoftmaxkitValueError(
                    f"`path` {str(path)!r} is an .npz file but not a softmaxkit model: it has "
                    f"no header (arrays: {sorted(npz.files)[:5]})"
                )
            # Reading every member checks each one's CRC-32: altered bytes fail here.
            arrays = {key: npz[key] for key in npz.files}
    raw = arrays.pop("header")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SoftmaxkitValueError(f"`path` {str(path)!r} has a damaged header: {exc}") from None
    if not isinstance(header, dict):
        raise SoftmaxkitValueError(f"`path` {str(path)!r} has a header that is not a JSON object")
    return arrays, header


def _restore(cls: type[Classifier], arrays: dict[str, np.ndarray], header: dict, name: str):
    def bad(what: str) -> SoftmaxkitValueError:
        return SoftmaxkitValueError(f"`path` {name!r}: {what}")

    if header.get("format") != FORMAT:
        raise bad(f"format is {header.get('format')!r}; expected {FORMAT!r}")
    if header.get("version") != FORMAT_VERSION:
        raise bad(
            f"format version is {header.get('version')!r}; this softmaxkit reads version "
            f"{FORMAT_VERSION}"
        )
    described = header.get("arrays", {})
    if set(described) != set(arrays):
        raise bad(f"holds arrays {sorted(arrays)} but its header describes {sorted(described)}")
    for key, a in arrays.items():
        spec = described[key]
        if list(a.shape) != spec.get("shape") or a.dtype.str != spec.get("dtype"):
            raise bad(
                f"array {key!r} has shape {a.shape} and dtype {a.dtype.str}; the header says "
                f"{tuple(spec.get('shape', ()))} and {spec.get('dtype')}"
            )
        if hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() != spec.get("sha256"):
            raise bad(f"array {key!r} does not match its checksum: the file was altered")
    try:
        model = cls(**header["params"])
        model.hidden = tuple(model.hidden)
        model._check_settings()
        model._head()
        n_features = int(header["n_features_in"])
    except (KeyError, TypeError) as exc:
        raise bad(f"the header's parameters are incomplete or wrong ({exc})") from None
    except SoftmaxkitError as exc:
        raise bad(f"the header's parameters are invalid ({exc})") from None
    if "classes" not in arrays:
        raise bad("the array 'classes' is missing")
    classes = arrays["classes"]
    if classes.ndim != 1 or classes.dtype.kind not in "biuU":
        raise bad(f"`classes` must be a 1-D array of labels; got {classes.dtype} {classes.shape}")
    network = model._build(n_features, classes.shape[0], np.random.default_rng(0))
    expected = {f"param.{k}": v for k, v in network.params.items()}
    expected.update(mean=np.empty(n_features), scale=np.empty(n_features))
    for key, reference in expected.items():
        if key not in arrays:
            raise bad(
                f"array {key!r} is missing for hidden={model.hidden} and {n_features} features"
            )
        a = arrays[key]
        if a.shape != reference.shape or a.dtype != np.float64:
            raise bad(
                f"array {key!r} must have shape {reference.shape} and dtype float64 for "
                f"hidden={model.hidden}, {n_features} features and {classes.shape[0]} outputs; "
                f"got {a.shape} and {a.dtype}"
            )
    for key, value in network.params.items():
        value[...] = arrays[f"param.{key}"]
    network.train(False)
    model.network_ = network
    model.classes_ = classes
    model.multilabel_ = bool(header.get("multilabel", False))
    model.n_features_in_ = n_features
    model.mean_ = arrays["mean"]
    model.scale_ = arrays["scale"]
    model.history_ = {k: list(v) for k, v in header.get("history", {}).items()}
    model._metadata = header.get("metadata", {})
    return model
