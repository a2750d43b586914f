"""Losses fused with their output head, for the stable gradient.

Both take the head's *logits* ``z`` (shape ``(N, C)``), never its probabilities:
the loss comes from ``log_softmax`` / ``log_sigmoid``, exact where the
probability underflows, and the gradient with respect to ``z`` collapses to
``(probability - target) / N``, with no division by a probability.
"""

from __future__ import annotations

import numpy as np

from .._errors import SoftmaxkitValueError
from .._softmax import log_sigmoid, log_softmax, sigmoid

__all__ = ["LogisticCrossEntropy", "SoftmaxCrossEntropy"]


def _check_logits(z: np.ndarray) -> None:
    if z.ndim != 2:
        raise SoftmaxkitValueError(f"`logits` must have shape (N, C); got shape {z.shape}")
    if z.shape[0] == 0:
        raise SoftmaxkitValueError("`logits` must hold at least one row; got N = 0")


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    if labels.dtype.kind not in "iu":
        raise SoftmaxkitValueError(f"`targets` of shape (N,) must be integers; got {labels.dtype}")
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise SoftmaxkitValueError(
            f"`targets` must be in [0, {n_classes}); position {i} holds {labels[i]}"
        )
    y = np.zeros((labels.shape[0], n_classes))
    y[np.arange(labels.shape[0]), labels] = 1.0
    return y


class SoftmaxCrossEntropy:
    r"""Mean cross-entropy of a softmax head: ``L = -(1/N) sum_n sum_k y[n,k] log softmax(z)[n,k]``.

    ``forward(logits, targets)`` returns ``L``; ``backward()`` returns
    ``dL_dz = (p - y) / N`` with ``p = softmax(z)``: the softmax Jacobian
    ``diag(p) - p p^T`` times ``dL_dp = -y / (N p)`` simplifies to it, and the
    fused form never divides by ``p``.

    Parameters of ``forward``
    -------------------------
    logits : array (N, C)
    targets : int array (N,) of classes in ``[0, C)``, or array (N, C) of
        target distributions (one-hot or soft labels, rows summing to 1).

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.nn import SoftmaxCrossEntropy
    >>> loss = SoftmaxCrossEntropy()
    >>> round(loss.forward(np.array([[2.0, 1.0, 0.1]]), np.array([0])), 4)  # -log 0.659
    0.417
    >>> loss.backward().round(4).tolist()  # p - y
    [[-0.341, 0.2424, 0.0986]]
    """

    def __init__(self) -> None:
        self._p: np.ndarray | None = None
        self._y: np.ndarray | None = None

    def forward(self, logits: np.ndarray, targets: np.ndarray, /) -> float:
        _check_logits(logits)
        n, c = logits.shape
        y = _one_hot(targets, c) if targets.ndim == 1 else np.asarray(targets, dtype=float)
        if y.shape != (n, c):
            raise SoftmaxkitValueError(
                f"`targets` must have shape ({n},) or ({n}, {c}); got shape {targets.shape}"
            )
        log_p = log_softmax(logits, axis=-1)
        self._p, self._y = np.exp(log_p), y
        # 0 * log 0 = 0: a target of 0 where p underflowed must not give 0 * -inf.
        return float(-np.sum(np.where(y > 0, y * log_p, 0.0)) / n)

    def backward(self) -> np.ndarray:
        if self._p is None or self._y is None:
            raise SoftmaxkitValueError("SoftmaxCrossEntropy.backward needs a forward pass first")
        n = self._p.shape[0]
        return (self._p - self._y) / n


class LogisticCrossEntropy:
    r"""Mean binary cross-entropy of independent sigmoids (multi-label).

    ``L = -(1/N) sum_n sum_k [y log sigmoid(z) + (1 - y) log sigmoid(-z)]``,
    one sigmoid per label (an image can be both "person" and "dog").  Summed
    over labels and averaged over examples, like :class:`SoftmaxCrossEntropy`,
    so ``backward()`` returns ``dL_dz = (sigmoid(z) - y) / N``.

    Parameters of ``forward``
    -------------------------
    logits : array (N, K)
    targets : array (N, K) of 0/1 (or probabilities in [0, 1])

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.nn import LogisticCrossEntropy
    >>> loss = LogisticCrossEntropy()
    >>> round(loss.forward(np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]])), 4)  # 2 log 2
    1.3863
    >>> loss.backward().tolist()
    [[-0.5, 0.5]]
    """

    def __init__(self) -> None:
        self._s: np.ndarray | None = None
        self._y: np.ndarray | None = None

    def forward(self, logits: np.ndarray, targets: np.ndarray, /) -> float:
        _check_logits(logits)
        y = np.asarray(targets, dtype=float)
        if y.shape != logits.shape:
            raise SoftmaxkitValueError(
                f"`targets` must have the shape of `logits` {logits.shape}; got shape {y.shape}"
            )
        if not np.all((y >= 0) & (y <= 1)):
            raise SoftmaxkitValueError("`targets` must be in [0, 1]")
        self._s, self._y = sigmoid(logits), y
        log_s, log_not_s = log_sigmoid(logits), log_sigmoid(-logits)
        # The where keeps 0 * (-inf) out when a sigmoid saturates at +-inf logits.
        per_entry = np.where(y > 0, y * log_s, 0.0) + np.where(y < 1, (1 - y) * log_not_s, 0.0)
        return float(-np.sum(per_entry) / logits.shape[0])

    def backward(self) -> np.ndarray:
        if self._s is None or self._y is None:
            raise SoftmaxkitValueError("LogisticCrossEntropy.backward needs a forward pass first")
        return (self._s - self._y) / self._s.shape[0]
