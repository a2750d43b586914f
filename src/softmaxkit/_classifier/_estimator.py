"""``Classifier``: a NumPy multilayer perceptron with a softmax (or logistic) output layer.

A scikit-learn estimator built on scikit-learn's own ``BaseEstimator``, ``ClassifierMixin``,
``validate_data`` and ``check_is_fitted``; the training loop is :mod:`._training`, the
heads :mod:`._heads`, the model file :mod:`._persistence`.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from .._progress import Progress
from .._typing import Auto, ClassWeight, Optimizer, Schedule
from .._typing import Head as HeadName
from ..nn import Sequential
from . import _training
from ._heads import (
    HEADS,
    Head,
    LogisticHead,
    SampledHead,
    SoftmaxHead,
    SparsemaxHead,
    as_labels,
    check_target_kind,
    classes_of,
    encode_against,
)
from ._persistence import load_model, save_model
from ._settings import (
    DEFAULTS,
    check_settings,
    describe,
    describe_pair,
    hidden_widths,
    same_setting,
)
from ._validation import check_X, weighted_moments

__all__ = ["Classifier", "SoftmaxkitNotFittedError"]

BatchCallback = Callable[[int, int, int, float, float], None]
EpochCallback = Callable[[int, dict[str, float]], None]


class SoftmaxkitNotFittedError(SoftmaxkitValueError, NotFittedError):
    """A method that needs a fitted model was called before ``fit``.

    Both softmaxkit's error and scikit-learn's ``NotFittedError`` (itself a
    ``ValueError`` and an ``AttributeError``), so either kind of handler catches it.
    """


class Classifier(ClassifierMixin, BaseEstimator):
    r"""A multilayer perceptron with a softmax output layer, trained end to end.

    A scikit-learn classifier (``Pipeline``, ``GridSearchCV``, ``CalibratedClassifierCV``,
    ``clone``, pickling and every ``check_estimator`` check), with the settings of
    :class:`sklearn.neural_network.MLPClassifier` under its names where they mean the same.

    Parameters
    ----------
    hidden : tuple of int, default (64,)
        Width of each hidden ``Dense -> ReLU`` layer; ``()`` gives multinomial
        logistic regression.  A list or a 1-D integer array also works; a
        string or a float width is refused rather than read digit by digit or
        truncated.
    head : {"softmax", "logistic", "sampled", "sparsemax"}, default "softmax"
        ``"softmax"``: one class per example, ``predict_proba`` rows sum to 1.
        ``"logistic"``: one sigmoid per output; with a 2-D 0/1 ``y`` this is
        multi-label (an image can be both "person" and "dog") and
        ``predict_proba`` gives independent probabilities; with a 1-D ``y`` it is
        one-vs-rest and ``predict_proba`` normalises the sigmoids to sum to 1.
        ``"sampled"``: trained on sampled softmax over ``num_sampled`` classes per
        batch (:func:`softmaxkit.sampled_softmax_loss`), for problems with very
        many classes; prediction still uses the full softmax.
        ``"sparsemax"``: trained with the sparsemax (Fenchel-Young) loss
        (:func:`softmaxkit.sparsemax_loss`); ``predict_proba`` is
        :func:`softmaxkit.sparsemax` of the logits, rows that sum to 1 with exact
        zeros (a short list of plausible classes), and ``predict_log_proba`` is
        ``-inf`` at those zeros.
    num_sampled : int, default 64
        Used by ``head="sampled"`` only; at most the number of classes.
    epochs : int or "auto", default "auto"
        The most passes over the training set one ``fit`` makes
        (``MLPClassifier``'s ``max_iter``); it stops earlier on convergence (see
        ``tol``).  ``"auto"``: ``max(50, ceil(1000 / steps_per_epoch))`` with
        ``steps_per_epoch = ceil(n_rows / batch_size)``, i.e. 50 passes, or more
        on a small training set so that the optimiser takes at least 1,000
        steps (Adam converges in steps, not passes: 50 passes over 120 rows at
        batch 32 are only 200 steps).  ``n_rows`` counts the rows ``fit``
        trains on as ``sample_weight`` counts them (without those early
        stopping holds out); in ``partial_fit``, the rows of the call (it only
        matters for ``lr_schedule="cosine"``).
    batch_size : int, default 32
    optimizer : {"adam", "sgd"}, default "adam"
        :class:`softmaxkit.nn.Adam`, or :class:`softmaxkit.nn.SGD` with ``momentum``.
    learning_rate : float, default 0.003
        The step size (``MLPClassifier``'s ``learning_rate_init``).
    lr_schedule : {"constant", "cosine"}, default "constant"
        ``"cosine"``: epoch ``e`` of ``epochs`` steps with
        ``learning_rate * (1 + cos(pi e / epochs)) / 2``.
    momentum : float, default 0.9
        Used by ``optimizer="sgd"`` only.
    weight_decay : float or "auto", default "auto"
        L2 penalty added to every gradient (``MLPClassifier``'s ``alpha``).
        ``"auto"``: ``2.5 / n_rows``.  Weight decay on the mean loss is a
        Gaussian prior on the weights; ``2.5 / n_rows`` keeps that prior's
        strength fixed (worth 2.5 rows of data) whatever the size of the
        training set, so a small set is held closer to zero and a large one is
        left to its data (0.0017 on 1,437 rows, 0.021 on 120).  ``n_rows`` as
        for ``epochs``; in ``partial_fit``, every row seen so far.
    dropout : float, default 0.0
        Dropout rate after each hidden layer, in [0, 1).
    standardize : bool, default True
        Scale each feature to mean 0 and variance 1 using the (weighted) training
        set (constant features are only centred); ``partial_fit`` keeps running
        statistics over every batch it has seen.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training set (stratified by
        class), stop when its accuracy has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and keep the weights of its best epoch.
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 10
    tol : float, default 1e-4
        Without early stopping, ``fit`` stops when the training loss has not
        fallen by ``tol`` for ``n_iter_no_change`` epochs (``tol=0`` still
        stops on a loss that does not fall at all; raise ``n_iter_no_change``
        to ``epochs`` to always run every epoch).
    class_weight : None, "balanced" or dict, default None
        Weights of the classes, multiplied into ``sample_weight``:
        ``"balanced"`` weighs class ``c`` by ``n_samples / (n_classes * count(c))``.
    warm_start : bool, default False
        ``fit`` continues from the fitted weights (and scaling) instead of
        starting again; ``n_iter_``, ``t_`` and ``history_`` accumulate
        (``history_`` starts again when this fit measures other curves).
    verbose : bool, default False
        Show the progress of each epoch (a tqdm bar on a terminal, a line otherwise).
    seed : int >= 0 or None, default 0
        Seeds the initial weights, the batch order, the validation split,
        dropout and the sampled head: the same seed gives exactly the same model.
        ``None`` draws fresh entropy.

    Notes
    -----
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
    feature_names_in_ : array of str
        Only when ``X`` at fit had string column names (a DataFrame).
    network_ : softmaxkit.nn.Sequential
    history_ : dict of lists
        Per epoch: ``loss`` and ``accuracy`` on the training batches (as they
        were trained); ``validation_loss``, ``validation_accuracy`` on the part
        held out for early stopping; ``val_loss``, ``val_accuracy`` on
        ``fit``'s ``eval_set``.
    loss_curve_ : list of float
        ``history_["loss"]``.
    validation_scores_ : list of float or None
        ``history_["validation_accuracy"]`` with early stopping, else None.
    best_validation_score_ : float or None
        The best of ``validation_scores_`` (its epoch's weights are the ones kept).
    best_loss_ : float or None
        The lowest training loss, without early stopping.
    n_iter_ : int
        Epochs run (``partial_fit`` calls count as one each).
    t_ : int
        Training examples seen, ``n_iter_`` times the rows per epoch.

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
        head: HeadName = "softmax",
        *,
        num_sampled: int = 64,
        epochs: int | Auto = "auto",
        batch_size: int = 32,
        optimizer: Optimizer = "adam",
        learning_rate: float = 0.003,
        lr_schedule: Schedule = "constant",
        momentum: float = 0.9,
        weight_decay: float | Auto = "auto",
        dropout: float = 0.0,
        standardize: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        class_weight: ClassWeight = None,
        warm_start: bool = False,
        verbose: bool = False,
        seed: int | None = 0,
    ) -> None:
        self.hidden = hidden
        self.head = head
        self.num_sampled = num_sampled
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.standardize = standardize
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.verbose = verbose
        self.seed = seed

    _metadata: dict[str, Any]
    _PARAMS = tuple(DEFAULTS)  # the constructor's arguments, in order

    # -- scikit-learn protocol --

    def set_params(self, **params: Any) -> Classifier:
        """Set constructor arguments by name; returns ``self``."""
        for name in params:
            if name not in DEFAULTS:
                raise SoftmaxkitValueError(
                    f"`{name}` is not a parameter of Classifier; expected one of {tuple(DEFAULTS)}"
                )
        return super().set_params(**params)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.classifier_tags.multi_label = self.head == "logistic"
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        params = self.get_params(deep=False)
        changed = {  # in the constructor's order, hidden always (it is what one reads first)
            k: params[k]
            for k in DEFAULTS
            if k == "hidden" or not same_setting(params[k], DEFAULTS[k])
        }
        return "Classifier(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    # -- checks --

    def _check_settings(self) -> None:
        """Every setting's type and range; raises the first problem, naming the setting."""
        check_settings(self.get_params(), tuple(HEADS))

    def _seed(self) -> int | None:
        return None if self.seed is None else int(self.seed)

    def _hidden(self) -> tuple[int, ...]:
        return hidden_widths(self.hidden)

    def _make_head(self, settings: dict[str, Any]) -> Head:
        if settings["head"] == "sampled":
            seed = settings["seed"]
            # A stream apart from fit's own; seed=None (fresh entropy) gives a fresh one too.
            rng = np.random.default_rng(None if seed is None else (int(seed), 5))
            return SampledHead(int(settings["num_sampled"]), rng)
        return HEADS[settings["head"]]()

    def _fitted_settings(self) -> dict[str, Any]:
        """The settings of the fitted model (``get_params`` may have changed since)."""
        self._check_fitted()
        return getattr(self, "_fitted_params", None) or {
            **self.get_params(),
            "hidden": self._hidden(),
        }

    def _check_fitted(self) -> None:
        try:
            check_is_fitted(self)
        except NotFittedError:
            raise SoftmaxkitNotFittedError(
                "this Classifier is not fitted yet; call `fit(X, y)` (or `Classifier.load`) first"
            ) from None

    def _check_predict_X(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X = check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise SoftmaxkitValueError(
                f"`X` must have {self.n_features_in_} features, as at fit; got {X.shape[1]} "
                f"(X has {X.shape[1]} features, but Classifier is expecting "
                f"{self.n_features_in_} features as input)"
            )
        # For the feature names of a DataFrame: the same columns as at fit, or a warning.
        validate_data(self, X, reset=False, skip_check_array=True)
        return X

    def _check_train_X(self, X: Any, reset: bool) -> np.ndarray:
        if X is None:
            raise SoftmaxkitValueError("`X` must be an array of shape (n_samples, n_features)")
        X_checked = check_X(X)
        if X_checked.shape[0] == 0:
            raise SoftmaxkitValueError("`X` must hold at least one training example; got 0 rows")
        if X_checked.shape[1] == 0:
            raise SoftmaxkitValueError(
                f"`X` must hold at least one feature; got 0 feature(s) (shape={X_checked.shape}) "
                "while a minimum of 1 is required."
            )
        if reset:
            validate_data(self, X, reset=True, skip_check_array=True)
        else:
            X_checked = self._check_predict_X(X)
        return X_checked

    def _check_y(self, y: Any, n_rows: int) -> np.ndarray:
        if y is None:
            raise SoftmaxkitValueError(
                "`y` is None: Classifier requires y to be passed, but the target y is None"
            )
        y = as_labels(y)
        if y.ndim == 0 or y.shape[0] != n_rows:
            raise SoftmaxkitValueError(
                f"`X` and `y` must have the same length; got {n_rows} rows and "
                f"{y.shape[0] if y.ndim else 'a scalar'} labels"
            )
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected: `y` of shape "
                f"{y.shape} is read as {y.shape[0]} labels (pass y.ravel() to say so)",
                DataConversionWarning,
                stacklevel=3,
            )
            y = y.ravel()
        if y.ndim == 1 and y.dtype.kind in LABEL_CHECKED_KINDS:
            check_target_kind(y)
        return y

    def _sample_weight(
        self, sample_weight: Any, X: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The rows' weights in the loss, and their ``sample_weight`` alone (how often rows count)."""
        try:
            w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        except ValueError as exc:
            raise SoftmaxkitValueError(f"`sample_weight` is not usable: {exc}") from None
        rows = w
        if self.class_weight is not None:
            if y.ndim != 1:
                raise SoftmaxkitValueError(
                    "`class_weight` weighs classes; a multi-label `y` has none: leave it None"
                )
            try:
                w = w * compute_sample_weight(self.class_weight, y)
            except (ValueError, KeyError) as exc:
                raise SoftmaxkitValueError(f"`class_weight` is not usable: {exc}") from None
        if not w.sum() > 0:
            raise SoftmaxkitValueError("`sample_weight` must not be 0 for every row")
        return w, rows

    # -- building --

    def _param_shapes(self, n_in: int, n_out: int) -> dict[str, tuple[int, ...]]:
        return _training.param_shapes(self._hidden(), float(self.dropout), n_in, n_out)

    def _build(self, n_in: int, n_out: int, rng: np.random.Generator) -> Sequential:
        output_init = HEADS[self.head].output_init
        try:
            return _training.build(
                self._hidden(), float(self.dropout), n_in, n_out, output_init, rng
            )
        except MemoryError:
            n_weights = sum(math.prod(s) for s in self._param_shapes(n_in, n_out).values())
            raise SoftmaxkitValueError(
                f"`hidden` {self._hidden()} with {n_in} features and {n_out} classes "
                f"makes {n_weights} weights ({n_weights * 8 / 2**30:.3g} GiB), more than memory holds"
            ) from None

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    def _start(
        self, X: np.ndarray, classes: np.ndarray, multilabel: bool, w: np.ndarray, rng: Any
    ) -> None:
        """A fresh model: scaling, network, counters, history."""
        self._fitted_params = {**self.get_params(), "hidden": self._hidden()}
        self.classes_ = classes
        self.multilabel_ = multilabel
        if self.standardize:
            mean, var = weighted_moments(X, w)
        else:
            mean, var = np.zeros(X.shape[1]), np.ones(X.shape[1])
        self._set_scaling(mean, var, float(w.sum()))
        self.network_ = self._build(X.shape[1], classes.shape[0], rng)
        self.history_: dict[str, list[float]] = {"loss": [], "accuracy": []}
        self.n_iter_ = 0
        self.t_ = 0
        self._rows_seen = 0.0
        self.best_loss_: float | None = None
        self.best_validation_score_: float | None = None
        self._class_counts = np.zeros(classes.shape[0])

    def _set_scaling(self, mean: np.ndarray, var: np.ndarray, weight: float | None) -> None:
        self.mean_ = mean
        self._var = var
        std = np.sqrt(var)
        # A constant feature is only centred; 1e-12 relative keeps rounding noise constant too.
        self.scale_ = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        self._scaling_weight = weight

    def _update_scaling(self, X: np.ndarray, w: np.ndarray) -> None:
        """Merge a batch into the running mean and variance (Chan et al.'s pairwise update)."""
        if not self.standardize or self._scaling_weight is None:
            return
        n_a, n_b = self._scaling_weight, float(w.sum())
        mean_b, var_b = weighted_moments(X, w)
        delta = mean_b - self.mean_
        n = n_a + n_b
        mean = self.mean_ + delta * (n_b / n)
        var = (self._var * n_a + var_b * n_b + delta**2 * (n_a * n_b / n)) / n
        self._set_scaling(mean, var, n)

    # -- training --

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        eval_set: tuple[ArrayLike, ArrayLike] | None = None,
        on_batch: BatchCallback | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> Classifier:
        """Train on ``X`` (n_samples, n_features) and ``y``; returns ``self``.

        From scratch, or with ``warm_start=True`` on a fitted model, on from its
        weights.

        Parameters
        ----------
        X : array (N, n_features), finite
        y : array (N,) of labels, or (N, n_labels) of 0/1 with ``head="logistic"``
        sample_weight : array (N,) of weights >= 0, optional
            Each row's weight in the loss (a weight of 2 counts as the row twice).
        eval_set : (X_val, y_val), optional
            Scored after every epoch into ``history_["val_loss"]`` and
            ``history_["val_accuracy"]`` (for learning curves; never used to train
            or to stop).
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
            or inf in ``X``, a continuous ``y`` (a regression target), a
            multi-label ``y`` that is not 0/1, an ``eval_set`` that does not fit
            the training data, or settings out of range.
        SoftmaxkitTypeError
            For settings of the wrong type, ``X`` that is not real numbers
            (strings, dates), labels of a dtype that cannot be stored
            (structured), or callbacks that are not callable.
        """
        self._check_settings()
        if eval_set is not None and not (
            isinstance(eval_set, (tuple, list)) and len(eval_set) == 2
        ):
            raise SoftmaxkitValueError(
                f"`eval_set` must be a pair (X_val, y_val); got {describe_pair(eval_set)}"
            )
        for name, callback in (("on_batch", on_batch), ("on_epoch", on_epoch)):
            if callback is not None and not callable(callback):
                raise SoftmaxkitTypeError(
                    f"`{name}` must be a callable or None; got {describe(callback)}"
                )
        warm = bool(self.warm_start) and self.__sklearn_is_fitted__()
        if warm:
            self._check_same_network()
        X = self._check_train_X(X, reset=not warm)
        y = self._check_y(y, X.shape[0])
        settings = {**self.get_params(), "hidden": self._hidden()}
        head = self._make_head(settings)
        if warm:
            targets = self._encode_like(head, y, "y")
            classes, multilabel = self.classes_, self.multilabel_
        else:
            targets, classes, multilabel = head.encode(y)
        w, rows = self._sample_weight(sample_weight, X, y)
        if eval_set is not None:
            X_val = check_X(eval_set[0], "eval_set[0]")
            if X_val.shape[1] != X.shape[1]:
                raise SoftmaxkitValueError(
                    f"`eval_set[0]` must have {X.shape[1]} features, as `X`; got {X_val.shape[1]}"
                )
            val_targets = self._encode_like(
                head, as_labels(eval_set[1]), "eval_set[1]", classes, multilabel
            )
            # Checked now, not after the first epoch of training.
            if val_targets.shape[0] != X_val.shape[0]:
                raise SoftmaxkitValueError(
                    f"`eval_set` must hold as many labels as rows; got {X_val.shape[0]} rows "
                    f"and {val_targets.shape[0]} labels"
                )
        train, held_out = self._split(y, multilabel, X.shape[0])

        rng = np.random.default_rng(self._seed())
        if not warm:
            self._start(X[train], classes, multilabel, w[train], rng)
        else:
            self._fitted_params = settings
        if isinstance(head, SampledHead):
            # Negatives are drawn by how often classes occur (sample_weight counts rows
            # that many times); class_weight reweighs the loss, not what is drawn.
            counts = np.bincount(targets[train], weights=rows[train], minlength=len(classes))
            self._class_counts = self._class_counts + counts
            head.set_frequencies(self._class_counts)
        self._head = head
        Xs, X_held = self._scaled(X[train]), self._scaled(X[held_out])
        # Weights that average 1: the step size is the same whatever their scale.
        if not w[train].sum() > 0:
            raise SoftmaxkitValueError(
                "`sample_weight` must not be 0 for every row early stopping leaves to train on"
            )
        w_train = w[train] / w[train].mean()
        w_held = np.ones(held_out.shape[0])
        if w[held_out].sum() > 0:
            w_held = w[held_out] / w[held_out].mean()
        # The rows as sample_weight counts them (2 counts a row twice, 0 not at all), so
        # the "auto" settings agree between a weighted row and the row repeated.
        n_train = float(rows[train].sum())
        self._rows_seen = n_train
        optimizer = _training.make_optimizer(
            self.optimizer,
            float(self.learning_rate),
            float(self.momentum),
            _training.auto_weight_decay(self.weight_decay, n_train),
        )
        self._optimizer = optimizer
        keys = ["loss", "accuracy"]
        if held_out.size:
            keys += ["validation_loss", "validation_accuracy"]
        if eval_set is not None:
            keys += ["val_loss", "val_accuracy"]
        if warm and set(keys) != set(self.history_):
            self.history_ = {k: [] for k in keys}  # other curves than before: start them again
        elif not warm:
            self.history_ = {k: [] for k in keys}
        epochs = _training.auto_epochs(self.epochs, round(n_train), int(self.batch_size))
        progress = Progress(epochs) if self.verbose else None
        best_params: dict[str, np.ndarray] | None = None
        no_improvement = 0
        for epoch in range(epochs):
            optimizer.lr = _training.epoch_lr(
                self.lr_schedule, float(self.learning_rate), epoch, epochs
            )
            batch_cb = self._batch_callback(epoch + 1, on_batch, progress)
            order = rng.permutation(Xs.shape[0])
            loss, accuracy = _training.run_epoch(
                self.network_, head, optimizer, Xs, targets[train], w_train, order,
                int(self.batch_size), multilabel, batch_cb,
            )  # fmt: skip
            self.n_iter_ += 1
            self.t_ += int(Xs.shape[0])
            record = {"loss": loss, "accuracy": accuracy}
            if held_out.size:
                record["validation_loss"], record["validation_accuracy"] = self._held_out_score(
                    head, X_held, targets[held_out], w_held
                )
            if eval_set is not None:
                record["val_loss"], record["val_accuracy"] = _training.evaluate(
                    self.network_, head, self._scaled(X_val), val_targets, multilabel
                )
            for key, value in record.items():
                self.history_[key].append(value)
            for callback in (on_epoch, progress.on_epoch if progress else None):
                if callback is not None:
                    callback(epoch + 1, record)
            # MLPClassifier's test: no gain of `tol` for more than `n_iter_no_change` epochs.
            if held_out.size:
                score = record["validation_accuracy"]
                best = self.best_validation_score_
                no_improvement = (
                    0 if best is None or score >= best + self.tol else no_improvement + 1
                )
                if best is None or score > best:
                    self.best_validation_score_ = score
                    best_params = {k: v.copy() for k, v in self.network_.params.items()}
            else:
                best = self.best_loss_
                no_improvement = (
                    0 if best is None or loss <= best - self.tol else no_improvement + 1
                )
                if best is None or loss < best:
                    self.best_loss_ = loss
            if no_improvement > self.n_iter_no_change:
                break
        if best_params is not None:
            for key, param in self.network_.params.items():
                param[...] = best_params[key]
        self.network_.train(False)
        return self

    def _batch_callback(self, epoch: int, on_batch: Any, progress: Any) -> Any:
        if on_batch is None and progress is None:
            return None

        def callback(batch: int, n_batches: int, loss: float, acc: float) -> None:
            for target in (on_batch, progress.on_batch if progress else None):
                if target is not None:
                    target(epoch, batch, n_batches, loss, acc)

        return callback

    def _split(self, y: np.ndarray, multilabel: bool, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Training rows and the rows held out for early stopping (none without it)."""
        if not self.early_stopping:
            return np.arange(n), np.arange(0)
        seed = None if self.seed is None else int(self.seed)
        return _training.validation_split(y, multilabel, float(self.validation_fraction), seed)

    def _held_out_score(
        self, head: Head, Xs: np.ndarray, targets: np.ndarray, w: np.ndarray
    ) -> tuple[float, float]:
        self.network_.train(False)
        logits = self.network_.forward(Xs)
        value, _ = head.loss(logits, targets, w)
        return value, head.n_correct(logits, targets, self.multilabel_, w) / float(w.sum())

    def _check_same_network(self) -> None:
        fitted = self._fitted_settings()
        for name in ("head", "dropout"):
            if not same_setting(getattr(self, name), fitted[name]):
                raise SoftmaxkitValueError(
                    f"`warm_start` continues the fitted network, so `{name}` must stay "
                    f"{fitted[name]!r}; got {getattr(self, name)!r} (set warm_start=False)"
                )
        if self._hidden() != tuple(fitted["hidden"]):
            raise SoftmaxkitValueError(
                f"`warm_start` continues the fitted network, so `hidden` must stay "
                f"{tuple(fitted['hidden'])}; got {self._hidden()} (set warm_start=False)"
            )

    def partial_fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        classes: ArrayLike | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> Classifier:
        """One epoch over ``(X, y)``, continuing from the current weights; returns ``self``.

        For data that arrive in batches.  The first call builds the model: its
        ``classes`` (every label any later batch may hold; default the labels
        of this first batch) fix ``classes_``.  Later calls keep the optimiser's
        state; ``standardize`` keeps running statistics over every batch.
        ``early_stopping`` and ``class_weight="balanced"`` need the whole
        training set and are not applied here (``"balanced"`` is refused).
        """
        first = not self.__sklearn_is_fitted__()
        if first:
            self._check_settings()
        if self.class_weight == "balanced" and isinstance(self.class_weight, str):
            raise SoftmaxkitValueError(
                "`class_weight='balanced'` needs the class counts of the whole training set; "
                "partial_fit sees one batch: pass a dict of weights"
            )
        X = self._check_train_X(X, reset=first)
        y = self._check_y(y, X.shape[0])
        w, rows = self._sample_weight(sample_weight, X, y)
        if first:
            settings = {**self.get_params(), "hidden": self._hidden()}
            head = self._make_head(settings)
            if classes is not None:
                all_classes = as_labels(classes)
                if all_classes.ndim != 1:
                    raise SoftmaxkitValueError(
                        f"`classes` must be a 1-D array of labels; got shape {all_classes.shape}"
                    )
                all_classes = classes_of(all_classes)[0]
                if isinstance(head, SampledHead):
                    head.check_classes(all_classes.shape[0])
                multilabel = False
            else:
                _, all_classes, multilabel = head.encode(y)
            self._rng = np.random.default_rng(self._seed())
            self._start(X, all_classes, multilabel, w, self._rng)
            self._head = head
            self._optimizer = _training.make_optimizer(
                self.optimizer,
                float(self.learning_rate),
                float(self.momentum),
                0.0,  # set below, before each call's epoch
            )
        else:
            if classes is not None:
                given = classes_of(as_labels(classes))[0]
                if not np.array_equal(given, self.classes_):
                    raise SoftmaxkitValueError(
                        f"`classes` must be the classes of the first partial_fit call, "
                        f"{self.classes_.tolist()}; got {given.tolist()}"
                    )
            self._update_scaling(X, w)
            if not hasattr(self, "_head"):  # loaded from a file
                self._head = self._make_head(self._fitted_settings())
                self._rng = np.random.default_rng(self._seed())
                self._class_counts = np.ones(len(self.classes_))
            if not hasattr(self, "_optimizer"):
                settings = self._fitted_settings()
                self._optimizer = _training.make_optimizer(
                    settings["optimizer"],
                    float(settings["learning_rate"]),
                    float(settings["momentum"]),
                    0.0,  # set below, before this call's epoch
                )
        head = self._head
        targets = self._encode_like(head, y, "y")
        if isinstance(head, SampledHead):
            self._class_counts = self._class_counts + np.bincount(
                targets, weights=rows, minlength=len(self.classes_)
            )
            head.set_frequencies(self._class_counts)
        if not hasattr(self, "_rng"):
            self._rng = np.random.default_rng(self._seed())
        settings = self._fitted_settings()
        # "auto" from the rows this call trains on (epochs) and every row seen so far
        # (weight decay: the prior weighs less as the data stream grows).
        n_rows = float(rows.sum())
        # A model loaded from a file starts from the weight its scaling was computed on.
        seen = getattr(self, "_rows_seen", None)
        if seen is None:
            seen = getattr(self, "_scaling_weight", None) or 0.0
        self._rows_seen = seen + n_rows
        epochs = _training.auto_epochs(
            settings["epochs"], round(n_rows), int(settings["batch_size"])
        )
        self._optimizer.weight_decay = _training.auto_weight_decay(
            settings["weight_decay"], self._rows_seen
        )
        self._optimizer.lr = _training.epoch_lr(
            settings["lr_schedule"], float(settings["learning_rate"]),
            min(self.n_iter_, epochs - 1), epochs,
        )  # fmt: skip
        Xs = self._scaled(X)
        loss, accuracy = _training.run_epoch(
            self.network_, head, self._optimizer, Xs, targets, w,
            self._rng.permutation(Xs.shape[0]), int(settings["batch_size"]), self.multilabel_, None,
        )  # fmt: skip
        self.n_iter_ += 1
        self.t_ += int(Xs.shape[0])
        self.history_.setdefault("loss", []).append(loss)
        self.history_.setdefault("accuracy", []).append(accuracy)
        for key in list(self.history_):
            # Curves partial_fit does not measure go: every curve left has one entry per epoch.
            if key not in ("loss", "accuracy"):
                del self.history_[key]
        if self.best_loss_ is None or loss < self.best_loss_:
            self.best_loss_ = loss
        return self

    def _encode_like(
        self,
        head: Head,
        y: np.ndarray,
        name: str,
        classes: np.ndarray | None = None,
        multilabel: bool | None = None,
    ) -> np.ndarray:
        """``y`` encoded against the fitted (or given) classes."""
        classes = self.classes_ if classes is None else classes
        multilabel = self.multilabel_ if multilabel is None else multilabel
        return encode_against(head, y, name, classes, multilabel)

    # -- prediction --

    def _logits(self, X: Any) -> np.ndarray:
        """The output layer's logits ``z``, shape ``(N, len(classes_))``."""
        X = self._check_predict_X(X)
        self.network_.train(False)
        return self.network_.forward(self._scaled(X))

    def _fitted_head(self) -> Head:
        # The head the model was fitted with: set_params after fit changes the next fit only.
        return _READERS[self._fitted_settings()["head"]]

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Confidence scores: the log-odds for two classes, else the logits.

        Two classes (not multi-label): shape ``(N,)``, ``log p1 - log p0`` with the
        probabilities of ``predict_proba``, so positive means ``classes_[1]``
        (scikit-learn's convention); for the sparsemax head, whose probabilities
        can be exactly 0, ``z1 - z0`` (``p1 = clip((1 + z1 - z0) / 2, 0, 1)``).
        Otherwise the output layer's logits ``z``, shape ``(N, len(classes_))``,
        largest at the predicted class.
        """
        logits = self._logits(X)
        if self.multilabel_ or logits.shape[1] != 2:
            return logits
        if self._fitted_settings()["head"] == "logistic":
            from .._softmax import log_sigmoid

            log_s = log_sigmoid(logits)
            return log_s[:, 1] - log_s[:, 0]
        return logits[:, 1] - logits[:, 0]

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Probabilities, shape ``(N, len(classes_))``, columns in the order of ``classes_``.

        Softmax and sampled heads: ``softmax(z)``.  Logistic head: multi-label,
        the independent ``sigmoid(z)``; one-vs-rest, the sigmoids normalised to
        sum to 1.  Sparsemax head: ``sparsemax(z)``, with exact zeros.
        """
        return self._fitted_head().proba(self._logits(X), self.multilabel_)

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """``log(predict_proba(X))``, computed in logs (exact where probabilities underflow).

        The sparsemax head gives ``-inf`` where ``predict_proba`` is exactly 0.
        """
        return self._fitted_head().log_proba(self._logits(X), self.multilabel_)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The most probable class of each row, or for multi-label the 0/1 matrix ``p >= 0.5``."""
        logits = self._logits(X)
        if self.multilabel_:
            return (logits >= 0).astype(np.int64)
        return self.classes_[np.argmax(logits, axis=1)]

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Accuracy: the (weighted) fraction of rows predicted right (multi-label: every label)."""
        predicted = self.predict(X)
        y = np.asarray(y) if self.multilabel_ else as_labels(y)
        if y.ndim == 0 or y.shape[0] != predicted.shape[0]:
            raise SoftmaxkitValueError(
                f"`X` and `y` must have the same length; got {predicted.shape[0]} rows and "
                f"{y.shape[0] if y.ndim else 'a scalar'} labels"
            )
        if y.shape != predicted.shape:
            raise SoftmaxkitValueError(
                f"`y` must have shape {predicted.shape}, as the predictions; got shape {y.shape}"
            )
        right = np.all(predicted == y, axis=1) if self.multilabel_ else predicted == y
        if sample_weight is None:
            return float(np.mean(right))
        w = _check_sample_weight(sample_weight, predicted, dtype=np.float64)
        return float(np.dot(w, right) / w.sum())

    # -- MLPClassifier's names for what history_ holds --

    @property
    def loss_curve_(self) -> list[float]:
        """The training loss of each epoch, ``history_["loss"]``."""
        self._check_fitted()
        return self.history_["loss"]

    @property
    def validation_scores_(self) -> list[float] | None:
        """The held-out accuracy of each epoch with early stopping, else None."""
        self._check_fitted()
        return self.history_.get("validation_accuracy")

    # -- persistence --

    def save(self, path: str | os.PathLike[str], /, *, metadata: dict | None = None) -> Path:
        """Write the fitted model to one ``.npz`` file, atomically; returns the path.

        The file holds the weights and a JSON header (format name and version,
        constructor parameters, classes, feature scaling, training history and
        counters, and each array's shape, dtype and SHA-256), and never a pickle.
        ``metadata`` (a JSON-serialisable dict) is stored alongside, e.g. where
        the data came from.  :meth:`load` gives back the same classes (dtype
        and values), the same settings (NumPy scalars stay NumPy scalars;
        ``hidden`` comes back as a tuple of ints) and the same predictions.
        """
        return save_model(self, path, metadata)

    @classmethod
    def load(cls, path: str | os.PathLike[str], /) -> Classifier:
        """Read a model written by :meth:`save` (format 1 or 2), checking everything first.

        Every field of the header is checked (types, ranges, the settings, the
        head against ``multilabel``) and every array against it (shape, dtype,
        checksum, and the shapes the described network needs) before anything
        is built, so a crafted file can neither allocate more than it holds
        nor load as a model that behaves differently from the one saved.  A
        format-1 file (softmaxkit before early stopping and class weights) loads
        with the new settings at their defaults.

        Raises
        ------
        SoftmaxkitValueError
            If the file is missing, truncated or altered, not a softmaxkit
            model, of another format version, or holds a header or arrays that
            do not fit the network it describes; the message names the file
            and says what is wrong.
        """
        return load_model(cls, path)

    @property
    def metadata_(self) -> dict:
        """The ``metadata`` a loaded model was saved with (empty for a freshly fitted one)."""
        return getattr(self, "_metadata", {})


# What reads a fitted model's outputs, per head (reading needs no training state).
_READERS: dict[str, Head] = {"softmax": SoftmaxHead(), "logistic": LogisticHead()}
_READERS["sampled"] = _READERS["softmax"]
_READERS["sparsemax"] = SparsemaxHead()

# Label kinds type_of_target can judge (bytes are judged as text in check_target_kind).
LABEL_CHECKED_KINDS = "biufcUSMm"
