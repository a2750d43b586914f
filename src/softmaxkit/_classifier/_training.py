"""Building the network and running epochs: the optimiser, the schedule, early stopping.

The network is ``[Dense -> ReLU (-> Dropout)] * len(hidden) -> Dense`` from
:mod:`softmaxkit.nn`; the head (:mod:`._heads`) owns the loss.  Every function here
takes the settings as plain values, so the estimator only decides what to call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .._errors import SoftmaxkitValueError
from .._typing import Init
from ..nn import SGD, Adam, Dense, Dropout, ReLU, Sequential
from ._heads import Head

__all__ = [
    "AUTO_MIN_EPOCHS",
    "AUTO_MIN_STEPS",
    "AUTO_PRIOR_ROWS",
    "auto_epochs",
    "auto_weight_decay",
    "build",
    "epoch_lr",
    "evaluate",
    "make_optimizer",
    "param_shapes",
    "run_epoch",
    "validation_split",
]

BatchCallback = Callable[[int, int, int, float, float], None]

# epochs="auto": at least this many passes, and at least this many optimiser steps.
AUTO_MIN_EPOCHS = 50
AUTO_MIN_STEPS = 1000
# weight_decay="auto": the Gaussian prior on the weights weighs as much as this many rows.
AUTO_PRIOR_ROWS = 2.5


def auto_epochs(epochs: Any, n_rows: int, batch_size: int) -> int:
    """``epochs``, or for ``"auto"`` ``max(50, ceil(1000 / ceil(n_rows / batch_size)))``.

    Adam needs a number of steps, not of passes: 50 passes over the 1,437 rows of
    a digits fold at batch 32 are 2,250 steps, over the 120 of an iris fold only
    200, too few to converge.  ``"auto"`` keeps 50 passes where they are 1,000
    steps or more and adds passes below that (iris: 250 passes of 4 steps).
    """
    if not (isinstance(epochs, str) and epochs == "auto"):
        return int(epochs)
    steps_per_epoch = max(1, math.ceil(max(n_rows, 1) / batch_size))
    return max(AUTO_MIN_EPOCHS, math.ceil(AUTO_MIN_STEPS / steps_per_epoch))


def auto_weight_decay(weight_decay: Any, n_rows: float) -> float:
    """``weight_decay``, or for ``"auto"`` ``2.5 / n_rows``.

    Weight decay ``lambda`` on the mean loss is a Gaussian prior on the weights:
    the objective is ``(sum(loss) + (lambda * n_rows / 2) |w|^2) / n_rows``.  A
    prior of fixed strength, whatever the size of the training set, is ``lambda =
    c / n_rows``: small sets are held closer to 0, large ones are left to their
    data (1.7e-3 on a digits fold of 1,437 rows, 0.021 on an iris fold of 120).
    ``c = 2.5`` (a prior worth 2.5 rows) was measured on the estimator bench
    (``softmaxkit bench estimator``): 2 and 3 each lose a point on one data set.
    """
    if not (isinstance(weight_decay, str) and weight_decay == "auto"):
        return float(weight_decay)
    return AUTO_PRIOR_ROWS / max(float(n_rows), 1.0)


def param_shapes(
    hidden: tuple[int, ...], dropout: float, n_in: int, n_out: int
) -> dict[str, tuple[int, ...]]:
    """The shape of each of ``build(...).params``, without allocating them."""
    shapes: dict[str, tuple[int, ...]] = {}
    index = 0
    for width in (*hidden, n_out):
        shapes[f"{index}.weight"], shapes[f"{index}.bias"] = (n_in, width), (width,)
        index += 3 if dropout > 0 else 2  # Dense, ReLU (, Dropout), as build stacks them
        n_in = width
    return shapes


def build(
    hidden: tuple[int, ...],
    dropout: float,
    n_in: int,
    n_out: int,
    output_init: Init,
    rng: np.random.Generator,
) -> Sequential:
    layers: list[Any] = []
    for width in hidden:
        layers += [Dense(n_in, width, init="he", rng=rng), ReLU()]
        if dropout > 0:
            layers.append(Dropout(dropout, rng=rng))
        n_in = width
    layers.append(Dense(n_in, n_out, init=output_init, rng=rng))
    return Sequential(*layers)


def make_optimizer(kind: str, lr: float, momentum: float, weight_decay: float) -> SGD | Adam:
    if kind == "sgd":
        return SGD(lr=lr, momentum=momentum, weight_decay=weight_decay)
    return Adam(lr=lr, weight_decay=weight_decay)


def epoch_lr(schedule: str, lr: float, epoch: int, epochs: int) -> float:
    """The step size of ``epoch`` (from 0) of ``epochs``.

    ``"cosine"``: ``lr * (1 + cos(pi * epoch / epochs)) / 2``, from ``lr`` down
    towards 0 (never 0 itself: the last epoch still moves).
    """
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    return lr


def run_epoch(
    network: Sequential,
    head: Head,
    optimizer: SGD | Adam,
    Xs: np.ndarray,
    targets: np.ndarray,
    w: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    multilabel: bool,
    on_batch: Callable[[int, int, float, float], None] | None,
) -> tuple[float, float]:
    """One pass over the rows in ``order``; returns the weighted mean loss and accuracy."""
    network.train(True)
    n_batches = math.ceil(order.shape[0] / batch_size)
    total_loss = total_correct = seen = 0.0
    for batch in range(n_batches):
        idx = order[batch * batch_size : (batch + 1) * batch_size]
        value, logits = head.train_batch(network, Xs[idx], targets[idx], w[idx])
        optimizer.step(network.params, network.grads)
        weight = float(w[idx].sum())
        total_loss += value * idx.shape[0]  # value is sum(w l) / B
        total_correct += head.n_correct(logits, targets[idx], multilabel, w[idx])
        seen += weight
        if on_batch is not None:
            on_batch(
                batch + 1,
                n_batches,
                total_loss / max(seen, 1e-300),
                total_correct / max(seen, 1e-300),
            )
    network.train(False)
    seen = max(seen, 1e-300)  # every weight 0: report 0, not NaN
    return total_loss / seen, total_correct / seen


def evaluate(
    network: Sequential, head: Head, Xs: np.ndarray, targets: np.ndarray, multilabel: bool
) -> tuple[float, float]:
    """Loss (full softmax for every head) and accuracy on a held-out set."""
    network.train(False)
    logits = network.forward(Xs)
    w = np.ones(Xs.shape[0])
    value, _ = head.loss(logits, targets, w)
    return value, head.n_correct(logits, targets, multilabel, w) / Xs.shape[0]


def validation_split(
    y: np.ndarray, multilabel: bool, fraction: float, seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The training rows and the ``fraction`` held out for early stopping, stratified by class."""
    from sklearn.model_selection import train_test_split

    n = y.shape[0]
    rows = np.arange(n)
    n_held = math.ceil(fraction * n)
    if n_held < 1 or n - n_held < 1:
        raise SoftmaxkitValueError(
            f"`early_stopping` holds out `validation_fraction` {fraction} of the {n} rows, "
            "leaving none to train or to validate on"
        )
    stratify = None
    if not multilabel:
        _, counts = np.unique(y, return_counts=True)
        # Stratified as MLPClassifier does; a class of one row cannot be split, nor can
        # more classes than held-out rows: then the split is plain random.
        if counts.min() >= 2 and counts.shape[0] <= n_held and counts.shape[0] <= n - n_held:
            stratify = y
    train, held = train_test_split(rows, test_size=n_held, stratify=stratify, random_state=seed)
    return np.sort(train), np.sort(held)
