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


def _as_labels(y: Any) -> np.ndarray:
    """``y`` as an array of labels, object arrays as ``str`` (as fit stores their classes).

    Every place that compares labels with ``classes_`` (fit, the evaluation set,
    ``score``) goes through here, so ``[1, "dog"]`` means the same labels in each.
    """
    y = np.asarray(y)
    return y.astype(str) if y.dtype.kind == "O" else y


def _classes_of(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if y.ndim != 1:
        raise SoftmaxkitValueError(f"`y` must have shape (N,) of class labels; got shape {y.shape}")
    y = _as_labels(y)
    if y.dtype.kind not in _LABEL_KINDS:
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

    def __init__(self, num_sampled: int, seed: int | None) -> None:
        self.num_sampled = num_sampled
        # A stream apart from fit's own; seed=None (fresh entropy) gives a fresh one too.
        self.rng = np.random.default_rng(None if seed is None else (seed, 5))
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
        array = np.asarray(X)
        # float64(X) would drop the imaginary part of complex X, parse strings and turn
        # dates into integers: none of them a feature matrix.
        if array.dtype.kind not in "biufO":
            raise SoftmaxkitTypeError(
                f"`{name}` must be an array of real numbers; got dtype {array.dtype}"
            )
        X = array.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SoftmaxkitError):
            raise
        raise SoftmaxkitTypeError(f"`{name}` must be an array of real numbers ({exc})") from None
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


# --- setting checks ------------------------------------------------------------------------
# scikit-learn style: __init__ only stores, fit (and load) call these.  NumPy scalars count
# as the Python numbers they stand for (GridSearchCV grids hand out np.int64); bools do not
# count as numbers, since `epochs=True` is surely a mistake.


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return _is_int(value) or isinstance(value, (float, np.floating))


def _check_int(name: str, value: Any, *, low: int = 1, or_none: bool = False) -> Any:
    expected = f"{'None or ' if or_none else ''}an int >= {low}"
    if not _is_int(value):
        raise SoftmaxkitTypeError(f"`{name}` must be {expected}; got {_describe(value)}")
    if value < low:
        raise SoftmaxkitValueError(f"`{name}` must be {expected}; got {value!r}")
    return value


def _same_setting(value: Any, default: Any) -> bool:
    """``value == default`` for repr's purpose; never raises (repr must work on any setting)."""
    if type(value) is not type(default):
        return False
    try:
        return bool(value == default)
    except Exception:  # an array compares elementwise, a strange object may raise
        return False


def _describe_pair(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


def _check_real(name: str, value: Any, expected: str, ok: Callable[[float], bool]) -> None:
    if not _is_real(value):
        raise SoftmaxkitTypeError(f"`{name}` must be a number ({expected}); got {_describe(value)}")
    if not (math.isfinite(value) and ok(float(value))):
        raise SoftmaxkitValueError(f"`{name}` must be {expected}; got {value!r}")


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
        logistic regression.  A list or a 1-D integer array also works; a
        string or a float width is refused rather than read digit by digit or
        truncated.
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
    seed : int >= 0 or None, default 0
        Seeds the initial weights, the batch order and dropout: the same seed
        gives exactly the same model.  ``None`` draws fresh entropy (a model
        that cannot be reproduced).

    Every setting is checked by ``fit`` (and by ``load``), scikit-learn style;
    NumPy scalars count as the Python numbers they hold (as ``GridSearchCV``
    grids hand them out), bools do not count as numbers.  The fitted model
    keeps the settings it was fitted with: ``set_params`` after ``fit``
    changes the next ``fit``, not the predictions or what ``save`` writes.

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
        defaults = Classifier().get_params()
        changed = {
            k: v
            for k, v in self.get_params().items()
            if k == "hidden" or not _same_setting(v, defaults[k])
        }
        return "Classifier(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    # -- checks --

    def _head(self) -> _Head:
        if not isinstance(self.head, str) or self.head not in _HEADS:
            raise SoftmaxkitValueError(f"`head` must be one of {sorted(_HEADS)}; got {self.head!r}")
        if self.head == "sampled":
            return _SampledHead(int(_check_int("num_sampled", self.num_sampled)), self._seed())
        return _HEADS[self.head]()

    def _seed(self) -> int | None:
        if self.seed is None:
            return None
        return int(_check_int("seed", self.seed, low=0, or_none=True))

    def _hidden(self) -> tuple[int, ...]:
        hidden = self.hidden
        # A string is a sequence too: "64" would otherwise build layers of widths 6 and 4.
        if isinstance(hidden, np.ndarray):
            ok = hidden.ndim == 1 and hidden.dtype.kind in "iu"
        else:
            ok = isinstance(hidden, (tuple, list))
        if not ok:
            raise SoftmaxkitTypeError(
                "`hidden` must be a tuple or list of int layer widths, e.g. (64,) or (128, 64); "
                f"got {_describe(hidden)}"
            )
        widths = []
        for i, width in enumerate(hidden):
            if not _is_int(width):
                raise SoftmaxkitTypeError(
                    f"`hidden` must hold int layer widths; position {i} holds {width!r} "
                    f"({type(width).__name__})"
                )
            if width < 1:
                raise SoftmaxkitValueError(
                    f"`hidden` widths must be >= 1; position {i} holds {int(width)}"
                )
            widths.append(int(width))
        return tuple(widths)

    def _check_settings(self) -> None:
        """Every setting's type and range; raises the first problem, naming the setting."""
        self._head()
        self._hidden()
        _check_int("num_sampled", self.num_sampled)
        _check_int("epochs", self.epochs)
        _check_int("batch_size", self.batch_size)
        if not isinstance(self.optimizer, str) or self.optimizer not in _OPTIMIZERS:
            raise SoftmaxkitValueError(
                f"`optimizer` must be one of {_OPTIMIZERS}; got {self.optimizer!r}"
            )
        _check_real("learning_rate", self.learning_rate, "finite and > 0", lambda v: v > 0)
        _check_real("momentum", self.momentum, "in [0, 1)", lambda v: 0 <= v < 1)
        _check_real("weight_decay", self.weight_decay, "finite and >= 0", lambda v: v >= 0)
        _check_real("dropout", self.dropout, "in [0, 1)", lambda v: 0 <= v < 1)
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise SoftmaxkitTypeError(
                f"`standardize` must be True or False; got {_describe(self.standardize)}"
            )
        self._seed()

    def _fitted_settings(self) -> dict[str, Any]:
        """The settings of the fitted model (``get_params`` may have changed since)."""
        self._check_fitted()
        return getattr(self, "_fitted_params", None) or {
            **self.get_params(),
            "hidden": self._hidden(),
        }

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

    def _param_shapes(self, n_in: int, n_out: int) -> dict[str, tuple[int, int] | tuple[int]]:
        """The shape of each of ``_build(n_in, n_out).params``, without allocating them."""
        shapes: dict[str, tuple[int, int] | tuple[int]] = {}
        index = 0
        for width in (*self._hidden(), n_out):
            shapes[f"{index}.weight"], shapes[f"{index}.bias"] = (n_in, width), (width,)
            index += 3 if self.dropout > 0 else 2  # Dense, ReLU (, Dropout), as _build stacks them
            n_in = width
        return shapes

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
            or inf in ``X``, a multi-label ``y`` that is not 0/1, an ``eval_set``
            that does not fit the training data, or settings out of range.
        SoftmaxkitTypeError
            For settings of the wrong type, ``X`` that is not real numbers
            (complex, strings, dates), labels of a dtype that cannot be stored
            (structured), or callbacks that are not callable.
        """
        self._check_settings()
        head = self._head()
        if eval_set is not None and not (
            isinstance(eval_set, (tuple, list)) and len(eval_set) == 2
        ):
            raise SoftmaxkitValueError(
                f"`eval_set` must be a pair (X_val, y_val); got {_describe_pair(eval_set)}"
            )
        for name, callback in (("on_batch", on_batch), ("on_epoch", on_epoch)):
            if callback is not None and not callable(callback):
                raise SoftmaxkitTypeError(
                    f"`{name}` must be a callable or None; got {_describe(callback)}"
                )
        X = _check_X(X)
        y = np.asarray(y)
        if X.shape[0] == 0:
            raise SoftmaxkitValueError("`X` must hold at least one training example; got 0 rows")
        if X.shape[1] == 0:
            raise SoftmaxkitValueError("`X` must hold at least one feature; got 0 columns")
        if y.ndim == 0 or y.shape[0] != X.shape[0]:
            raise SoftmaxkitValueError(
                f"`X` and `y` must have the same length; got {X.shape[0]} rows and "
                f"{y.shape[0] if y.ndim else 'a scalar'} labels"
            )
        targets, classes, multilabel = head.encode(y)
        if eval_set is not None:
            X_val = self._check_eval_X(eval_set[0], X.shape[1])
            val_targets = self._encode_like(head, np.asarray(eval_set[1]), classes, multilabel)
            # Checked now, not after the first epoch of training.
            if val_targets.shape[0] != X_val.shape[0]:
                raise SoftmaxkitValueError(
                    f"`eval_set` must hold as many labels as rows; got {X_val.shape[0]} rows "
                    f"and {val_targets.shape[0]} labels"
                )

        rng = np.random.default_rng(self._seed())
        self._fitted_params = {**self.get_params(), "hidden": self._hidden()}
        self.classes_ = classes
        self.multilabel_ = multilabel
        self.n_features_in_ = X.shape[1]
        self.mean_ = X.mean(axis=0) if self.standardize else np.zeros(X.shape[1])
        std = X.std(axis=0) if self.standardize else np.ones(X.shape[1])
        self.scale_ = np.where(std > 0, std, 1.0)
        try:
            self.network_ = self._build(X.shape[1], classes.shape[0], rng)
        except MemoryError:
            n_weights = sum(
                math.prod(s) for s in self._param_shapes(X.shape[1], len(classes)).values()
            )
            raise SoftmaxkitValueError(
                f"`hidden` {self._hidden()} with {X.shape[1]} features and {len(classes)} classes "
                f"makes {n_weights} weights ({n_weights * 8 / 2**30:.3g} GiB), more than memory holds"
            ) from None
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
            if y.ndim != 2 or y.shape[1] != classes.shape[0]:
                raise SoftmaxkitValueError(
                    f"multi-label `eval_set[1]` must have shape (N, {classes.shape[0]}), as `y`; "
                    f"got shape {y.shape}"
                )
            return head.encode(y)[0]
        y = _as_labels(y)
        if y.ndim != 1:  # before the lookup: the rows of a 2-D y are lists, unhashable
            raise SoftmaxkitValueError(
                f"`eval_set[1]` must have shape (N,) of labels, as `y`; got shape {y.shape}"
            )
        lookup = {label: i for i, label in enumerate(classes.tolist())}
        unknown = [label for label in y.tolist() if label not in lookup]
        if unknown:
            raise SoftmaxkitValueError(
                f"`eval_set[1]` must hold labels seen in training {classes.tolist()}; "
                f"got {unknown[:3]}"
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
        logits = self.decision_function(X)
        # The head the model was fitted with: set_params after fit changes the next fit only.
        return sigmoid(logits) if self._fitted_settings()["head"] == "logistic" else softmax(logits)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row, or for multi-label the 0/1 matrix ``p >= 0.5``."""
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba >= 0.5).astype(np.int64)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy: the fraction of rows predicted right (multi-label: every label right)."""
        predicted = self.predict(X)
        y = np.asarray(y) if self.multilabel_ else _as_labels(y)
        if y.ndim == 0 or y.shape[0] != predicted.shape[0]:
            raise SoftmaxkitValueError(
                f"`X` and `y` must have the same length; got {predicted.shape[0]} rows and "
                f"{y.shape[0] if y.ndim else 'a scalar'} labels"
            )
        if y.shape != predicted.shape:
            raise SoftmaxkitValueError(
                f"`y` must have shape {predicted.shape}, as the predictions; got shape {y.shape}"
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
        ``metadata`` (a JSON-serialisable dict) is stored alongside, e.g. where
        the data came from.  :meth:`load` gives back the same classes (dtype
        and values), the same settings (NumPy scalars stay NumPy scalars;
        ``hidden`` comes back as a tuple of ints) and the same predictions.
        """
        self._check_fitted()
        if metadata is not None and not isinstance(metadata, dict):
            raise SoftmaxkitTypeError(f"`metadata` must be a dict; got {_describe(metadata)}")
        try:
            json.dumps(metadata or {})
        except (TypeError, ValueError) as exc:
            raise SoftmaxkitTypeError(f"`metadata` must be JSON-serialisable ({exc})") from None
        _check_path(path)
        target = Path(path)
        if target.is_dir():
            raise SoftmaxkitValueError(f"`path` {str(path)!r} is a directory, not a file name")
        if not target.parent.is_dir():
            raise SoftmaxkitValueError(
                f"`path` {str(path)!r}: the directory {str(target.parent)!r} does not exist"
            )
        params = {k: _encode_setting(v) for k, v in self._fitted_settings().items()}
        params["hidden"] = [int(w) for w in params["hidden"]]
        classes = np.asarray(self.classes_)
        if classes.dtype.kind not in _LABEL_KINDS:
            raise SoftmaxkitTypeError(f"`classes_` of dtype {classes.dtype} cannot be saved")
        arrays: dict[str, Any] = {"classes": classes, "mean": self.mean_, "scale": self.scale_}
        arrays.update({f"param.{k}": v for k, v in self.network_.params.items()})
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "params": params,
            "multilabel": bool(self.multilabel_),
            "n_features_in": int(self.n_features_in_),
            "history": {k: [float(v) for v in vs] for k, vs in self.history_.items()},
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

        Every field of the header is checked (types, ranges, the settings, the
        head against ``multilabel``) and every array against it (shape, dtype,
        checksum, and the shapes the described network needs) before anything
        is built, so a crafted file can neither allocate more than it holds
        nor load as a model that behaves differently from the one saved.

        Raises
        ------
        SoftmaxkitValueError
            If the file is missing, truncated or altered, not a softmaxkit
            model, of another format version, or holds a header or arrays that
            do not fit the network it describes; the message names the file
            and says what is wrong.
        """
        _check_path(path)
        name = str(path)
        if Path(path).is_dir():
            raise SoftmaxkitValueError(f"`path` {name!r} is a directory, not a model file")
        try:
            arrays, header = _read_model_file(path)
        except SoftmaxkitError:
            raise
        except FileNotFoundError:
            raise SoftmaxkitValueError(f"`path` {name!r} does not exist") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            raise SoftmaxkitValueError(
                f"`path` {name!r} is not a readable softmaxkit model file (truncated, altered "
                f"or not an .npz written by Classifier.save): {exc}"
            ) from None
        return _restore(cls, arrays, header, name)

    @property
    def metadata_(self) -> dict:
        """The ``metadata`` a loaded model was saved with (empty for a freshly fitted one)."""
        return getattr(self, "_metadata", {})


# --- the model file ------------------------------------------------------------------------

# Label dtypes fit accepts and the file stores without a pickle: bool, integers, floats,
# complex, str, bytes, datetime64, timedelta64 (object labels are stored as str).
_LABEL_KINDS = "biufcUSMm"
_HEADER_KEYS = {"format", "version", "params", "multilabel", "n_features_in", "history"}
_HEADER_KEYS |= {"metadata", "arrays"}
# The most bytes read for the JSON header: far above any real one (hundreds of epochs of
# history), far below what would hurt.
_MAX_HEADER_BYTES = 64 * 2**20


def _check_path(path: Any) -> None:
    # An int would be taken by open() as a file descriptor.
    if not isinstance(path, (str, os.PathLike)):
        raise SoftmaxkitTypeError(f"`path` must be a str or os.PathLike; got {_describe(path)}")


def _encode_setting(value: Any) -> Any:
    """A setting as JSON: a NumPy scalar keeps its dtype, so load gives back the same type."""
    if isinstance(value, np.generic):
        return {"numpy": value.dtype.str, "value": value.item()}
    return value


def _decode_setting(name: str, value: Any) -> Any:
    if not isinstance(value, dict):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise SoftmaxkitTypeError(f"setting `{name}` is {_describe(value)}")
    if set(value) != {"numpy", "value"} or not isinstance(value["numpy"], str):
        raise SoftmaxkitTypeError(f"setting `{name}` is {value!r}")
    try:
        dtype = np.dtype(value["numpy"])
    except TypeError:
        raise SoftmaxkitTypeError(f"setting `{name}` has dtype {value['numpy']!r}") from None
    raw = value["value"]
    if dtype.kind not in "biuf" or not isinstance(raw, (bool, int, float)):
        raise SoftmaxkitTypeError(f"setting `{name}` is {value!r}")
    try:
        return dtype.type(raw)
    except (OverflowError, TypeError, ValueError):
        raise SoftmaxkitValueError(f"setting `{name}` is {value!r}") from None


def _read_npy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member, its size checked against its header before a byte is allocated.

    ``np.load`` would allocate whatever shape the member's header announces before
    finding the data short; here a member must hold exactly the bytes it announces.
    """
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise SoftmaxkitValueError(f"member {info.filename!r} is compressed; save never does that")
    with zf.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise SoftmaxkitValueError(f"member {info.filename!r} has .npy version {version}")
        if dtype.hasobject:
            raise SoftmaxkitValueError(f"member {info.filename!r} holds Python objects")
        announced = math.prod(shape) * dtype.itemsize
        if announced != info.file_size - member.tell():
            raise SoftmaxkitValueError(
                f"member {info.filename!r} announces shape {shape} of {dtype} "
                f"({announced} bytes) but holds {info.file_size - member.tell()}"
            )
        data = member.read()  # checks the member's CRC-32: altered bytes fail here
    flat = np.frombuffer(data, dtype=dtype)
    return (flat.reshape(shape, order="F") if fortran else flat.reshape(shape)).copy(order="K")


def _read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict]:
    name = str(path)
    with open(path, "rb") as f:
        if f.read(6) == b"\x93NUMPY":
            raise SoftmaxkitValueError(
                f"`path` {name!r} holds a single .npy array, not a softmaxkit model"
            )
        f.seek(0)
        with zipfile.ZipFile(f) as zf:
            infos = {info.filename: info for info in zf.infolist()}
            if "header.npy" not in infos:
                raise SoftmaxkitValueError(
                    f"`path` {name!r} is an .npz file but not a softmaxkit model: it has "
                    f"no header (arrays: {sorted(infos)[:5]})"
                )
            if len(infos) != len(zf.infolist()) or not all(n.endswith(".npy") for n in infos):
                raise SoftmaxkitValueError(
                    f"`path` {name!r} holds members other than .npy arrays, or one twice"
                )
            if infos["header.npy"].file_size > _MAX_HEADER_BYTES:
                raise SoftmaxkitValueError(f"`path` {name!r} has a header of over 64 MiB")
            try:
                raw = _read_npy_member(zf, infos.pop("header.npy"))
                if raw.dtype != np.uint8 or raw.ndim != 1:
                    raise SoftmaxkitValueError("it is not a 1-D array of bytes")
                header = json.loads(raw.tobytes().decode("utf-8"))
            except (SoftmaxkitValueError, UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise SoftmaxkitValueError(f"`path` {name!r} has a damaged header: {exc}") from None
            if not isinstance(header, dict):
                raise SoftmaxkitValueError(
                    f"`path` {name!r} has a header that is not a JSON object"
                )
            # The header is checked before the arrays are read: they are read only if it
            # describes each of them, with the size the file gives it.
            _check_descriptions(header, {n[: -len(".npy")]: i for n, i in infos.items()}, name)
            try:
                arrays = {n[: -len(".npy")]: _read_npy_member(zf, i) for n, i in infos.items()}
            except SoftmaxkitValueError as exc:
                raise SoftmaxkitValueError(f"`path` {name!r}: {exc}") from None
    return arrays, header


def _check_descriptions(header: dict, members: dict[str, zipfile.ZipInfo], name: str) -> None:
    def bad(what: str) -> SoftmaxkitValueError:
        return SoftmaxkitValueError(f"`path` {name!r}: {what}")

    if header.get("format") != FORMAT:
        raise bad(f"format is {header.get('format')!r}; expected {FORMAT!r}")
    if type(header.get("version")) is not int or header["version"] != FORMAT_VERSION:
        raise bad(
            f"format version is {header.get('version')!r}; this softmaxkit reads version "
            f"{FORMAT_VERSION}"
        )
    if set(header) != _HEADER_KEYS:
        raise bad(
            f"the header must hold the fields {sorted(_HEADER_KEYS)}; it holds {sorted(header)}"
        )
    described = header["arrays"]
    if not isinstance(described, dict):
        raise bad(f"the header's `arrays` must be an object; got {_describe(described)}")
    if set(described) != set(members):
        raise bad(f"holds arrays {sorted(members)} but its header describes {sorted(described)}")
    for key, spec in described.items():
        if not (
            isinstance(spec, dict)
            and set(spec) == {"shape", "dtype", "sha256"}
            and isinstance(spec["shape"], list)
            and all(_is_int(n) and n >= 0 for n in spec["shape"])
            and isinstance(spec["dtype"], str)
            and isinstance(spec["sha256"], str)
        ):
            raise bad(
                f"the header's description of array {key!r} must be "
                f'{{"shape": [ints >= 0], "dtype": str, "sha256": str}}; got {spec!r}'
            )


def _restore(cls: type[Classifier], arrays: dict[str, np.ndarray], header: dict, name: str):
    def bad(what: str) -> SoftmaxkitValueError:
        return SoftmaxkitValueError(f"`path` {name!r}: {what}")

    described = header["arrays"]
    for key, a in arrays.items():
        spec = described[key]
        if list(a.shape) != spec["shape"] or a.dtype.str != spec["dtype"]:
            raise bad(
                f"array {key!r} has shape {a.shape} and dtype {a.dtype.str}; the header says "
                f"{tuple(spec['shape'])} and {spec['dtype']}"
            )
        if hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() != spec["sha256"]:
            raise bad(f"array {key!r} does not match its checksum: the file was altered")

    params = header["params"]
    if not isinstance(params, dict) or set(params) != set(cls._PARAMS):
        got = sorted(params) if isinstance(params, dict) else _describe(params)
        raise bad(f"the header's `params` must name {list(cls._PARAMS)}; got {got}")
    try:
        settings = {k: _decode_setting(k, v) for k, v in params.items() if k != "hidden"}
        if not isinstance(params["hidden"], list):
            raise SoftmaxkitTypeError(f"setting `hidden` is {_describe(params['hidden'])}")
        settings["hidden"] = tuple(params["hidden"])
        model = cls(**settings)
        model._check_settings()
    except SoftmaxkitError as exc:
        raise bad(f"the header's parameters are invalid ({exc})") from None

    n_features = header["n_features_in"]
    if not _is_int(n_features) or n_features < 1:
        raise bad(f"`n_features_in` must be an int >= 1; got {_describe(n_features)}")
    multilabel = header["multilabel"]
    if not isinstance(multilabel, bool):
        raise bad(f"`multilabel` must be true or false; got {_describe(multilabel)}")
    history = header["history"]
    if not (
        isinstance(history, dict)
        and all(isinstance(v, list) and all(_is_real(x) for x in v) for v in history.values())
        and len({len(v) for v in history.values()}) <= 1
    ):
        raise bad("`history` must map names to lists of numbers of one length")
    if not isinstance(header["metadata"], dict):
        raise bad(f"`metadata` must be an object; got {_describe(header['metadata'])}")

    if "classes" not in arrays:
        raise bad("the array 'classes' is missing")
    classes = arrays["classes"]
    if classes.ndim != 1 or classes.shape[0] == 0 or classes.dtype.kind not in _LABEL_KINDS:
        raise bad(f"`classes` must be a 1-D array of labels; got {classes.dtype} {classes.shape}")
    if multilabel:
        if model.head != "logistic":
            raise bad(f"`multilabel` is true but the head is {model.head!r}; only 'logistic'")
        if not np.array_equal(classes, np.arange(classes.shape[0])):
            raise bad("a multi-label model's `classes` must be 0, 1, ..., n_labels - 1")
    elif _classes_of(classes)[0].shape != classes.shape:
        raise bad("`classes` must hold distinct labels (as fit makes them)")

    shapes = model._param_shapes(n_features, classes.shape[0])
    expected = {f"param.{k}": v for k, v in shapes.items()}
    expected.update(mean=(n_features,), scale=(n_features,))
    extra = sorted(set(arrays) - set(expected) - {"classes"})
    if extra:
        raise bad(f"holds arrays {extra} that the network it describes has no place for")
    for key, shape in expected.items():
        if key not in arrays:
            raise bad(
                f"array {key!r} is missing for hidden={model.hidden} and {n_features} features"
            )
        a = arrays[key]
        if a.shape != shape or a.dtype != np.float64:
            raise bad(
                f"array {key!r} must have shape {shape} and dtype float64 for "
                f"hidden={model.hidden}, {n_features} features and {classes.shape[0]} outputs; "
                f"got {a.shape} and {a.dtype}"
            )
    if not (np.all(np.isfinite(arrays["mean"])) and np.all(np.isfinite(arrays["scale"]))):
        raise bad("`mean` and `scale` must be finite")
    if not np.all(arrays["scale"] > 0):
        raise bad("`scale` must be > 0")

    # Only now, with every size checked against the arrays the file holds, is anything built.
    network = model._build(n_features, classes.shape[0], np.random.default_rng(0))
    for key, value in network.params.items():
        if value.shape != arrays[f"param.{key}"].shape:  # _param_shapes and _build disagree
            raise SoftmaxkitError(f"internal: {key!r} is built as {value.shape}, not as read")
        value[...] = arrays[f"param.{key}"]
    network.train(False)
    model._fitted_params = {**model.get_params(), "hidden": model._hidden()}
    model.network_ = network
    model.classes_ = classes
    model.multilabel_ = multilabel
    model.n_features_in_ = int(n_features)
    model.mean_ = arrays["mean"]
    model.scale_ = arrays["scale"]
    model.history_ = {k: [float(x) for x in v] for k, v in history.items()}
    model._metadata = header["metadata"]
    return model
