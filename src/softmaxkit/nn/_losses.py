"""Losses fused with their output head, for the stable gradient.

Both take the head's *logits* ``z`` (shape ``(N, C)``), never its probabilities:
the loss comes from ``log_softmax`` / ``log_sigmoid``, exact where the
probability underflows, and the gradient with respect to ``z`` collapses to
``(probability - target) / N``, with no division by a probability.  The maths
is softmaxkit's :func:`~softmaxkit.cross_entropy_grad` and
:func:`~softmaxkit.binary_cross_entropy_with_logits_grad`; these classes keep
the gradient of the last forward pass for ``backward()``.
"""

from __future__ import annotations

import numpy as np

from .._errors import SoftmaxkitValueError
from .._losses import binary_cross_entropy_with_logits_grad, cross_entropy_grad
from . import _checks

__all__ = ["LogisticCrossEntropy", "SoftmaxCrossEntropy"]


def _check_logits(z: np.ndarray) -> np.ndarray:
    z = _checks.array(z, "logits")
    if z.ndim != 2:
        raise SoftmaxkitValueError(f"`logits` must have shape (N, C); got shape {z.shape}")
    if z.shape[0] == 0:
        raise SoftmaxkitValueError("`logits` must hold at least one row; got N = 0")
    return z


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
        self._dL_dz: np.ndarray | None = None

    def forward(self, logits: np.ndarray, targets: np.ndarray, /) -> float:
        logits = _check_logits(logits)
        targets = _checks.array(targets, "targets")
        if targets.ndim == 1 and targets.dtype.kind in "iu":
            bad = (targets < 0) | (targets >= logits.shape[1])
            if bad.any():
                # cross_entropy would skip -100 (PyTorch's ignore_index); a network's
                # training labels have no such gaps, so any label outside [0, C) is an error.
                i = int(np.argmax(bad))
                raise SoftmaxkitValueError(
                    f"`targets` must be in [0, {logits.shape[1]}); position {i} holds {targets[i]}"
                )
        loss, self._dL_dz = cross_entropy_grad(logits, targets, reduction="mean")
        return float(loss)

    def backward(self) -> np.ndarray:
        if self._dL_dz is None:
            raise SoftmaxkitValueError("SoftmaxCrossEntropy.backward needs a forward pass first")
        return self._dL_dz


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
        self._dL_dz: np.ndarray | None = None

    def forward(self, logits: np.ndarray, targets: np.ndarray, /) -> float:
        logits = _check_logits(logits)
        y = _checks.array(targets, "targets").astype(float)
        if y.shape != logits.shape:
            raise SoftmaxkitValueError(
                f"`targets` must have the shape of `logits` {logits.shape}; got shape {y.shape}"
            )
        if not np.all((y >= 0) & (y <= 1)):
            raise SoftmaxkitValueError("`targets` must be in [0, 1]")
        n = logits.shape[0]
        # "sum" then / N: summed over labels, averaged over examples (torch's "mean"
        # would also divide by the number of labels).
        total, dtotal_dz = binary_cross_entropy_with_logits_grad(logits, y, reduction="sum")
        self._dL_dz = dtotal_dz / n
        return float(total) / n

    def backward(self) -> np.ndarray:
        if self._dL_dz is None:
            raise SoftmaxkitValueError("LogisticCrossEntropy.backward needs a forward pass first")
        return self._dL_dz
