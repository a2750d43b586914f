"""The training report: ``report.json`` and four PNG figures for a fitted :class:`Classifier`.

* ``learning_curves.png``: loss and accuracy per epoch: training, test, and the
  validation part early stopping held out (with its best epoch marked) when there is one;
* ``confusion_matrix.png``: true against predicted class (one 2x2 matrix per
  label for multi-label models);
* ``test_examples.png``: test images, each beside the bar chart of its top-5
  class probabilities;
* ``reliability.png``: confidence against accuracy
  (:func:`softmaxkit.reliability_diagram`).

Metrics come from :func:`report_metrics`; matplotlib is imported only when
figures are drawn (the ``plot`` extra).  Every file is written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_save_figure, atomic_write_text
from ._calibration import expected_calibration_error, reliability_diagram
from ._classifier import Classifier
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._losses import binary_cross_entropy_with_logits, cross_entropy
from ._sparse import sparsemax_loss

__all__ = ["FIGURES", "report_metrics", "write_report"]

FIGURES = ("learning_curves.png", "confusion_matrix.png", "test_examples.png", "reliability.png")


def _precision_recall(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float | int]:
    """For 0/1 vectors: precision and recall (0 when undefined: nothing predicted or present)."""
    tp = int(np.sum(predicted & truth))
    n_predicted, n_true = int(predicted.sum()), int(truth.sum())
    return {
        "precision": tp / n_predicted if n_predicted else 0.0,
        "recall": tp / n_true if n_true else 0.0,
        "support": n_true,
    }


def _binary_columns(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each (example, label) as a two-class prediction ``[1 - p, p]`` with label 0/1.

    This lets the top-1 calibration measures judge independent sigmoids.
    """
    p = probs.reshape(-1)
    return np.stack([1.0 - p, p], axis=1), y.reshape(-1).astype(np.int64)


def _class_index(model: Classifier, y: np.ndarray) -> np.ndarray:
    """Positions of the labels ``y`` in ``model.classes_``."""
    lookup = {label: i for i, label in enumerate(model.classes_.tolist())}
    labels = np.asarray(y)
    if labels.dtype.kind == "O":  # as Classifier.fit stores object labels
        labels = labels.astype(str)
    unknown = [label for label in labels.tolist() if label not in lookup]
    if unknown:
        raise SoftmaxkitValueError(
            f"`y` must hold labels the model knows, {model.classes_.tolist()[:10]}; "
            f"got {unknown[:3]}"
        )
    return np.array([lookup[label] for label in labels.tolist()], dtype=np.int64)


def _targets01(model: Classifier, y: np.ndarray) -> np.ndarray:
    """``y`` as a 0/1 matrix (N, n_outputs): multi-label as is, classes one-hot."""
    if model.multilabel_:
        return np.asarray(y).astype(np.int64)
    return np.eye(len(model.classes_), dtype=np.int64)[_class_index(model, y)]


def _names(model: Classifier, label_names: Sequence[str] | None) -> list[str]:
    """Display names of the outputs: ``label_names`` when given, else ``classes_`` as text."""
    if label_names:
        if len(label_names) != len(model.classes_):
            raise SoftmaxkitValueError(
                f"`label_names` must name each of the {len(model.classes_)} outputs; "
                f"got {len(label_names)}"
            )
        return [str(name) for name in label_names]
    return [str(c) for c in model.classes_.tolist()]


def _check_inputs(model: Classifier, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` checked against the fitted ``model``: its features, one label (row) per row."""
    X = model._check_predict_X(X)
    if X.shape[0] == 0:
        raise SoftmaxkitValueError("`X` must hold at least one example to report on; got 0 rows")
    y = np.asarray(y)
    n_outputs = len(model.classes_)
    expected = (X.shape[0], n_outputs) if model.multilabel_ else (X.shape[0],)
    if y.shape != expected:
        raise SoftmaxkitValueError(
            f"`y` must have shape {expected} (one {'row of 0/1' if model.multilabel_ else 'label'} "
            f"per row of `X`); got shape {y.shape}"
        )
    if model.multilabel_ and not np.isin(y, (0, 1)).all():
        raise SoftmaxkitValueError("multi-label `y` must hold only 0 and 1")
    return X, y


def report_metrics(
    model: Classifier,
    X: np.ndarray,
    y: np.ndarray,
    /,
    *,
    label_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall, log-loss and expected calibration error on ``(X, y)``.

    * softmax heads (``"softmax"``, ``"sampled"``): ``log_loss = -mean(log
      p[true class])``, :func:`softmaxkit.cross_entropy` of the logits (exact
      even where ``p`` underflows); ECE over the top-1 confidence, 15 bins;
    * sparsemax head: ``log_loss`` is the mean sparsemax loss of the logits
      (its training loss: ``-log p`` is infinite wherever the true class gets
      exactly 0), with ``true_class_zero_probability`` (the fraction of rows
      where it does) and ``mean_nonzero_classes``; ECE as for softmax;
    * logistic head: ``log_loss`` is the binary log-loss summed over the
      labels and averaged over the examples (the training loss of
      :class:`softmaxkit.nn.LogisticCrossEntropy`); ECE treats each
      (example, label) as a two-class prediction; for multi-label ``y``
      ``accuracy`` is the fraction of examples with every label right and
      ``label_accuracy`` the fraction of (example, label) pairs right.

    ``per_class`` is keyed by ``label_names`` (e.g. the names of multi-label
    columns) when given, else by the classes.  Precision (recall) of a class
    that is never predicted (never present) is reported as 0.
    """
    X, y = _check_inputs(model, X, y)
    logits = model._logits(X)  # decision_function gives log-odds for two classes
    probs = model.predict_proba(X)
    target = _targets01(model, y)
    if model.multilabel_:
        hits = model.predict(X)
    else:
        hits = np.eye(len(model.classes_), dtype=np.int64)[np.argmax(probs, axis=1)]
    out: dict[str, Any] = {
        "n_examples": int(X.shape[0]),
        "head": model._fitted_settings()["head"],
        "accuracy": float(np.mean(np.all(hits == target, axis=1))),
    }
    if model.multilabel_:
        out["label_accuracy"] = float(np.mean(hits == target))
    out["per_class"] = {
        name: _precision_recall(hits[:, k] == 1, target[:, k] == 1)
        for k, name in enumerate(_names(model, label_names))
    }
    if model._fitted_settings()["head"] == "sparsemax":
        index = _class_index(model, y)
        # -log p is +inf on every row whose true class sparsemax gives exactly 0, so the
        # report gives the head's own (finite) loss and says how often that happens.
        out["log_loss"] = float(sparsemax_loss(logits, index))
        out["log_loss_definition"] = (
            "mean sparsemax (Fenchel-Young) loss of the logits, the training loss; "
            "-log p(true class) is inf where p = sparsemax(logits) is 0 there"
        )
        out["true_class_zero_probability"] = float(
            np.mean(probs[np.arange(len(index)), index] == 0)
        )
        out["mean_nonzero_classes"] = float(np.mean(np.sum(probs > 0, axis=1)))
        out["expected_calibration_error"] = expected_calibration_error(probs, index)
    elif model._fitted_settings()["head"] != "logistic":
        index = _class_index(model, y)
        out["log_loss"] = float(cross_entropy(logits, index))
        out["log_loss_definition"] = "mean -log p(true class), p = softmax(logits)"
        out["expected_calibration_error"] = expected_calibration_error(probs, index)
    else:
        total = binary_cross_entropy_with_logits(logits, target.astype(float), reduction="sum")
        out["log_loss"] = float(total) / X.shape[0]
        out["log_loss_definition"] = (
            "binary log-loss summed over labels, mean over examples, p = sigmoid(logits)"
        )
        out["expected_calibration_error"] = expected_calibration_error(
            *_binary_columns(probs, target)
        )
    return out


# --- figures -------------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> None:
    atomic_save_figure(fig, path, dpi=110, bbox_inches="tight")


def _learning_curves(model: Classifier, path: Path) -> None:
    from matplotlib.figure import Figure

    history = model.history_
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, history["loss"], label="training (running, over the epoch)")
    ax_acc.plot(epochs, np.asarray(history["accuracy"]) * 100, label="training (running)")
    if "val_loss" in history:
        ax_loss.plot(epochs, history["val_loss"], label="test (end of epoch)")
        ax_acc.plot(epochs, np.asarray(history["val_accuracy"]) * 100, label="test (end of epoch)")
    if "validation_loss" in history:
        label = "validation (held out for early stopping)"
        ax_loss.plot(epochs, history["validation_loss"], label=label)
        scores = np.asarray(history["validation_accuracy"]) * 100
        ax_acc.plot(epochs, scores, label=label)
        best = int(np.argmax(scores)) + 1  # the epoch whose weights early stopping kept
        for ax in (ax_loss, ax_acc):
            ax.axvline(best, color="0.5", linestyle=":", label=f"best epoch ({best}), kept")
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def _confusion_matrix(
    model: Classifier, X: np.ndarray, y: np.ndarray, names: list[str], path: Path
) -> None:
    from matplotlib.figure import Figure

    predicted = model.predict(X)
    if model.multilabel_:
        fig = Figure(figsize=(3.2 * len(names), 3.2))
        axes = np.atleast_1d(fig.subplots(1, len(names), gridspec_kw={"wspace": 0.45}))
        for k, (ax, name) in enumerate(zip(axes, names, strict=True)):
            counts = np.zeros((2, 2), dtype=np.int64)
            np.add.at(counts, (np.asarray(y)[:, k].astype(int), predicted[:, k]), 1)
            _draw_matrix(ax, counts, ["no", "yes"], name)
        _save(fig, path)
        return
    truth, guess = _class_index(model, y), _class_index(model, predicted)
    counts = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(counts, (truth, guess), 1)
    size = max(4.0, 0.5 * len(names) + 2)
    fig = Figure(figsize=(size, size))
    accuracy = np.trace(counts) / max(1, counts.sum())
    _draw_matrix(fig.subplots(), counts, names, f"Confusion matrix (accuracy {accuracy:.2%})")
    _save(fig, path)


def _draw_matrix(ax: Any, counts: np.ndarray, names: list[str], title: str) -> None:
    ax.imshow(counts, cmap="Blues")
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names, rotation=90 if max(map(len, names)) > 3 else 0)
    ax.set_yticks(ticks, names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    limit = counts.max() / 2 if counts.size else 0
    if len(names) <= 30:
        for (i, j), c in np.ndenumerate(counts):
            if c:
                ax.text(j, i, str(c), ha="center", va="center", fontsize=8,
                        color="white" if c > limit else "black")  # fmt: skip


def _test_examples(
    model: Classifier,
    X: np.ndarray,
    y: np.ndarray,
    image_shape: tuple[int, int] | None,
    names: list[str],
    path: Path,
    *,
    n_examples: int = 12,
    n_top: int = 5,
) -> None:
    from matplotlib.figure import Figure

    # The first test examples, with up to a quarter of the grid given to mistakes
    # (the examples most worth looking at).
    predicted = model.predict(X)
    wrong = np.flatnonzero(np.any(np.reshape(predicted != y, (len(y), -1)), axis=1))
    n_wrong = min(len(wrong), n_examples // 4)
    first = [i for i in range(X.shape[0]) if i not in set(wrong[:n_wrong].tolist())]
    chosen = sorted(first[: n_examples - n_wrong] + wrong[:n_wrong].tolist())
    n = len(chosen)
    X, y = X[chosen], y[chosen]
    probs = model.predict_proba(X)
    logits = model._logits(X)
    target = _targets01(model, y)
    n_cols = 3
    n_rows = -(-n // n_cols)
    label_width = max(len(name) for name in names)
    bar_ratio = 1.6 + 0.08 * max(0, label_width - 3)
    fig = Figure(figsize=((2.6 + 1.6 * bar_ratio) * n_cols, 2.0 * n_rows))
    grid = fig.add_gridspec(
        n_rows, 2 * n_cols, width_ratios=[1, bar_ratio] * n_cols, wspace=0.3 + 0.06 * label_width
    )
    for i in range(n):
        row, col = divmod(i, n_cols)
        ax_img = fig.add_subplot(grid[row, 2 * col])
        ax_bar = fig.add_subplot(grid[row, 2 * col + 1])
        if image_shape is not None:
            ax_img.imshow(X[i].reshape(image_shape), cmap="gray_r")
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        # Ties broken by the logits: the classes sparsemax gives exactly 0 then come in
        # the order the network ranks them, not in the order of their index.
        top = np.lexsort((-logits[i], -probs[i]))[:n_top]
        if model.multilabel_:
            # Each bar is its own yes/no decision at 0.5: green where it is right.
            decided = (probs[i] >= 0.5).astype(np.int64)
            colors = ["tab:green" if decided[k] == target[i, k] else "tab:red" for k in top]
            right = bool(np.array_equal(decided, target[i]))
            truth = ", ".join(n for n, v in zip(names, target[i], strict=True) if v) or "none"
            ax_bar.axvline(0.5, color="gray", linestyle=":", linewidth=1)
        else:
            true_k = int(np.argmax(target[i]))
            right = int(top[0]) == true_k
            # The top bar red when it is wrong; the true class green wherever it ranks.
            colors = [
                "tab:green" if k == true_k else "tab:red" if j == 0 else "tab:blue"
                for j, k in enumerate(top)
            ]
            truth = names[true_k]
        ax_img.set_title(
            f"#{chosen[i]} true: {truth}", fontsize=7, color="black" if right else "red"
        )
        ax_bar.barh(np.arange(len(top)), probs[i][top], color=colors)
        for j, k in enumerate(top):
            if probs[i][k] == 0:  # an exact zero (sparsemax): say so, not an empty bar
                ax_bar.text(0.01, j, "0", va="center", fontsize=7, color="gray")
        ax_bar.set_yticks(np.arange(len(top)), [names[k] for k in top], fontsize=8)
        ax_bar.invert_yaxis()
        ax_bar.set_xlim(0, 1)
        ax_bar.tick_params(axis="x", labelsize=7)
    legend = (
        "green: right yes/no at 0.5, red: wrong"
        if model.multilabel_
        else "green: true class, red: wrong top prediction"
    )
    fig.suptitle(f"Test examples and their top-{n_top} probabilities ({legend})", fontsize=10)
    _save(fig, path)


def _reliability(model: Classifier, X: np.ndarray, y: np.ndarray, path: Path) -> None:
    from matplotlib.figure import Figure

    probs = model.predict_proba(X)
    logistic = model._fitted_settings()["head"] == "logistic"
    if not logistic:
        args = (probs, _class_index(model, y))
    else:
        args = _binary_columns(probs, _targets01(model, y))
    ax = reliability_diagram(*args, ax=Figure(figsize=(5, 5)).subplots())
    if logistic:
        ax.set_xlabel("confidence (each label's sigmoid read as a yes/no prediction)")
    _save(ax.figure, path)


def write_report(
    out_dir: str | os.PathLike[str],
    model: Classifier,
    X_test: np.ndarray,
    y_test: np.ndarray,
    /,
    *,
    image_shape: tuple[int, int] | None = None,
    label_names: Sequence[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``report.json`` and :data:`FIGURES` into ``out_dir``; returns the report.

    ``image_shape`` says how to draw a row of ``X_test`` as an image;
    ``label_names`` names the outputs (see :func:`report_metrics`); ``extra``
    entries (data set name, timings ...) are added to the report.
    """
    X_test, y_test = _check_inputs(model, X_test, y_test)
    if image_shape is not None:
        if not (
            isinstance(image_shape, (tuple, list))
            and len(image_shape) == 2
            and all(isinstance(n, (int, np.integer)) and n >= 1 for n in image_shape)
            and image_shape[0] * image_shape[1] == X_test.shape[1]
        ):
            raise SoftmaxkitValueError(
                f"`image_shape` must be (height, width) with height * width = {X_test.shape[1]} "
                f"(the features of `X_test`); got {image_shape!r}"
            )
    report: dict[str, Any] = dict(extra or {})
    names = _names(model, label_names)
    report["test"] = report_metrics(model, X_test, y_test, label_names=names)
    report["history"] = model.history_
    report["training"] = {
        "n_iter": int(model.n_iter_),
        "early_stopping": bool(model._fitted_settings()["early_stopping"]),
        "best_validation_score": model.best_validation_score_,
    }
    report["figures"] = list(FIGURES)
    try:
        text = json.dumps(report, indent=2) + "\n"
    except (TypeError, ValueError) as exc:
        raise SoftmaxkitTypeError(f"`extra` must be JSON-serialisable ({exc})") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The metrics first: a figure that fails to draw or write does not take them with it.
    atomic_write_text(out / "report.json", text)
    _learning_curves(model, out / FIGURES[0])
    _confusion_matrix(model, X_test, y_test, names, out / FIGURES[1])
    _test_examples(model, X_test, np.asarray(y_test), image_shape, names, out / FIGURES[2])
    _reliability(model, X_test, y_test, out / FIGURES[3])
    return report
