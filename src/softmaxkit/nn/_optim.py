"""Optimizers: update a model's ``params`` in place from its ``grads``.

``step(params, grads)`` takes two dicts with the same keys (a
:class:`Sequential`'s ``params`` and ``grads``); the optimizer keeps its own
state (velocity, moments) under those keys.
"""

from __future__ import annotations

import operator

import numpy as np

from .._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from . import _checks

__all__ = ["SGD", "Adam"]


def _positive(name: str, value: float) -> float:
    return _checks.positive(value, name)


def _fraction(name: str, value: float) -> float:
    return _checks.fraction(value, name)


def _pair(name: str, value: tuple[float, float]) -> tuple[float, float]:
    try:
        items = [value[operator.index(i)] for i in range(2)] if len(value) == 2 else None
    except TypeError:
        items = None
    if items is None or isinstance(value, (str, bytes)):
        raise SoftmaxkitTypeError(f"`{name}` must be a pair of numbers; got {value!r}")
    return _fraction(f"{name}[0]", items[0]), _fraction(f"{name}[1]", items[1])


def _check_keys(params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
    _checks.arrays(params, "params")
    _checks.arrays(grads, "grads")
    if params.keys() != grads.keys():
        raise SoftmaxkitValueError(
            f"`params` and `grads` must have the same keys; got {sorted(params)} "
            f"and {sorted(grads)}"
        )


class SGD:
    r"""Stochastic gradient descent with (heavy-ball) momentum and L2 weight decay.

    ``v <- momentum * v + (g + weight_decay * w)`` then ``w <- w - lr * v``
    (PyTorch's convention; ``momentum=0`` is plain SGD).

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.nn import SGD
    >>> w = {"w": np.array([1.0])}
    >>> opt = SGD(lr=0.1, momentum=0.9)
    >>> opt.step(w, {"w": np.array([1.0])}); opt.step(w, {"w": np.array([1.0])})
    >>> w["w"].round(4).tolist()  # 1 - 0.1 - 0.1 * 1.9
    [0.71]
    """

    def __init__(self, *, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 0.0):
        self.lr = _positive("lr", lr)
        self.momentum = _fraction("momentum", momentum)
        self.weight_decay = _checks.non_negative(weight_decay, "weight_decay")
        self.velocity: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], /) -> None:
        _check_keys(params, grads)
        for key, w in params.items():
            g = grads[key] + self.weight_decay * w
            v = self.velocity.get(key)
            v = g if v is None else self.momentum * v + g
            self.velocity[key] = v
            w -= self.lr * v


class Adam:
    r"""Adam (Kingma and Ba, 2015) with L2 weight decay added to the gradient.

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g**2``, and
    ``w <- w - lr * m_hat / (sqrt(v_hat) + eps)`` with the bias corrections
    ``m_hat = m / (1 - b1**t)``, ``v_hat = v / (1 - b2**t)``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.nn import Adam
    >>> w = {"w": np.array([1.0, 1.0])}
    >>> Adam(lr=0.1).step(w, {"w": np.array([3.0, -0.01])})
    >>> w["w"].round(4).tolist()  # the first step moves each weight by about lr
    [0.9, 1.1]
    """

    def __init__(
        self,
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.lr = _positive("lr", lr)
        self.betas = _pair("betas", betas)
        self.eps = _positive("eps", eps)
        self.weight_decay = _checks.non_negative(weight_decay, "weight_decay")
        self.t = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], /) -> None:
        _check_keys(params, grads)
        b1, b2 = self.betas
        self.t += 1
        m_scale = 1.0 / (1.0 - b1**self.t)
        v_scale = 1.0 / (1.0 - b2**self.t)
        for key, w in params.items():
            g = grads[key] + self.weight_decay * w
            m = b1 * self.m.get(key, 0.0) + (1.0 - b1) * g
            v = b2 * self.v.get(key, 0.0) + (1.0 - b2) * g * g
            self.m[key], self.v[key] = m, v
            w -= self.lr * (m * m_scale) / (np.sqrt(v * v_scale) + self.eps)
