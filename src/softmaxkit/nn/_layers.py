"""Batch-first NumPy layers whose backward pass sits next to their forward pass.

Every layer maps ``x`` of shape ``(N, ...)`` to ``y`` and follows one protocol:

* ``forward(x)`` returns ``y`` and keeps what the backward pass needs;
* ``backward(dL_dy)`` returns ``dL_dx`` (the chain rule: ``dL_dx = dL_dy @ dy_dx``)
  and stores the gradient of each parameter in ``grads`` under the name it
  has in ``params``.

``params`` and ``grads`` are dicts of arrays (empty for a layer without
parameters); optimizers update ``params`` in place.  ``training`` switches
layers such as :class:`Dropout` between training and inference.
"""

from __future__ import annotations

import numpy as np

from .._derivatives import softmax_backward
from .._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from .._softmax import sigmoid, softmax
from .._typing import Init
from . import _checks
from ._init import glorot_uniform, he_normal

__all__ = ["Dense", "Dropout", "Layer", "Logistic", "ReLU", "Sequential", "Softmax"]

_INITS = {"he": he_normal, "glorot": glorot_uniform}


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return _checks.generator(rng, "rng")


class Layer:
    """The protocol every layer follows (see the module docstring).

    A layer of its own subclasses ``Layer`` and defines ``forward`` and
    ``backward``; :class:`Sequential` and the optimizers then take it like
    the built-in ones.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.nn import Layer
    >>> class Square(Layer):
    ...     def forward(self, x):
    ...         self.x = x
    ...         return x**2
    ...     def backward(self, dL_dy):
    ...         return dL_dy * 2 * self.x  # dy/dx = 2x
    >>> layer = Square()
    >>> layer.forward(np.array([[1.0, -3.0]]))
    array([[1., 9.]])
    >>> layer.backward(np.ones((1, 2)))
    array([[ 2., -6.]])
    """

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training = True

    def forward(self, x: np.ndarray, /) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dL_dy: np.ndarray, /) -> np.ndarray:
        raise NotImplementedError

    def train(self, mode: bool = True) -> Layer:
        """Switch to training (``True``) or inference (``False``) behaviour; returns ``self``."""
        self.training = _checks.flag(mode, "mode")
        return self

    def _saved(self, value: np.ndarray | None) -> np.ndarray:
        if value is None:
            raise SoftmaxkitValueError(
                f"{type(self).__name__}.backward needs a forward pass first; none was run"
            )
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Dense(Layer):
    r"""Affine map ``y = x @ weight + bias``.

    Parameters
    ----------
    in_features, out_features : int
        ``x`` has shape ``(N, in_features)``, ``y`` shape ``(N, out_features)``.
    init : {"he", "glorot"}, default "he"
        :func:`he_normal` before a ReLU, :func:`glorot_uniform` before a
        softmax or sigmoid head.  The bias starts at 0.
    rng : numpy Generator or int seed, optional
        Where the initial weights come from; the same seed gives the same weights.

    Notes
    -----
    With ``dy_dweight = x`` and ``dy_dx = weight``:
    ``dL_dweight = x.T @ dL_dy``, ``dL_dbias = sum_n dL_dy`` and
    ``dL_dx = dL_dy @ weight.T``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.nn import Dense
    >>> layer = Dense(3, 2, rng=0)
    >>> layer.forward(np.ones((4, 3))).shape
    (4, 2)
    >>> layer.backward(np.ones((4, 2))).shape, layer.grads["weight"].shape
    ((4, 3), (3, 2))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        /,
        *,
        init: Init = "he",
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__()
        in_features = _checks.count(in_features, "in_features")
        out_features = _checks.count(out_features, "out_features")
        if not isinstance(init, str) or init not in _INITS:
            raise SoftmaxkitValueError(f"`init` must be one of {sorted(_INITS)}; got {init!r}")
        self.init = init
        weight = _INITS[init](in_features, out_features, rng=_rng(rng))
        self.params = {"weight": weight, "bias": np.zeros(out_features)}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self._x: np.ndarray | None = None

    @property
    def in_features(self) -> int:
        return int(self.params["weight"].shape[0])

    @property
    def out_features(self) -> int:
        return int(self.params["weight"].shape[1])

    def forward(self, x: np.ndarray, /) -> np.ndarray:
        x = _checks.array(x, "x")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise SoftmaxkitValueError(
                f"`x` must have shape (N, {self.in_features}); got shape {x.shape}"
            )
        self._x = x
        return x @ self.params["weight"] + self.params["bias"]

    def backward(self, dL_dy: np.ndarray, /) -> np.ndarray:
        x = self._saved(self._x)
        dL_dy = _checks.array(dL_dy, "dL_dy")
        if dL_dy.shape != (x.shape[0], self.out_features):
            raise SoftmaxkitValueError(
                f"`dL_dy` must have shape ({x.shape[0]}, {self.out_features}), that of the "
                f"forward pass's output; got shape {dL_dy.shape}"
            )
        self.grads["weight"] = x.T @ dL_dy
        self.grads["bias"] = dL_dy.sum(axis=0)
        return dL_dy @ self.params["weight"].T

    def __repr__(self) -> str:
        return f"Dense({self.in_features}, {self.out_features}, init={self.init!r})"


class ReLU(Layer):
    r"""``y = max(x, 0)``; ``dy_dx = 1`` where ``x > 0``, else 0 (0 at ``x = 0`` too).

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.nn import ReLU
    >>> relu = ReLU()
    >>> relu.forward(np.array([[-1.0, 2.0]])).tolist(), relu.backward(np.ones((1, 2))).tolist()
    ([[0.0, 2.0]], [[0.0, 1.0]])
    """

    def __init__(self) -> None:
        super().__init__()
        self._active: np.ndarray | None = None

    def forward(self, x: np.ndarray, /) -> np.ndarray:
        self._active = x > 0
        return np.where(self._active, x, 0.0)

    def backward(self, dL_dy: np.ndarray, /) -> np.ndarray:
        dy_dx = self._saved(self._active)
        return dL_dy * dy_dx


class Softmax(Layer):
    r"""``p = softmax(x)`` over the last axis, as a standalone layer.

    Its backward pass is :func:`softmaxkit.softmax_backward`:
    ``dL_dx = p * (dL_dp - sum(dL_dp * p))``, the product ``dL_dp @ J`` with
    the Jacobian ``J = diag(p) - p p^T`` (:func:`softmaxkit.softmax_jacobian`)
    never formed.  To train a classifier, prefer feeding logits to
    :class:`SoftmaxCrossEntropy`, whose fused gradient ``(p - y) / N`` is exact
    even where ``p`` underflows.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.nn import Softmax
    >>> layer = Softmax()
    >>> layer.forward(np.array([[2.0, 1.0, 0.1]])).round(4).tolist()
    [[0.659, 0.2424, 0.0986]]
    """

    def __init__(self) -> None:
        super().__init__()
        self._p: np.ndarray | None = None

    def forward(self, x: np.ndarray, /) -> np.ndarray:
        self._p = softmax(x, axis=-1)
        return self._p

    def backward(self, dL_dp: np.ndarray, /) -> np.ndarray:
        return softmax_backward(dL_dp, self._saved(self._p), axis=-1)


class Logistic(Layer):
    r"""``s = sigmoid(x)`` elementwise; ``ds_dx = s * (1 - s)``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.nn import Logistic
    >>> layer = Logistic()
    >>> layer.forward(np.array([[0.0]])).tolist(), layer.backward(np.ones((1, 1))).tolist()
    ([[0.5]], [[0.25]])
    """

    def __init__(self) -> None:
        super().__init__()
        self._s: np.ndarray | None = None

    def forward(self, x: np.ndarray, /) -> np.ndarray:
        self._s = sigmoid(x)
        return self._s

    def backward(self, dL_ds: np.ndarray, /) -> np.ndarray:
        s = self._saved(self._s)
        ds_dx = s * (1.0 - s)
        return dL_ds * ds_dx


class Dropout(Layer):
    r"""Inverted dropout: in training, ``y = x * keep / (1 - rate)`` with ``keep ~ Bernoulli(1 - rate)``.

    Scaling by ``1 / (1 - rate)`` keeps ``E[y] = x``, so inference is the
    identity.  ``dy_dx = keep / (1 - rate)``, the same mask as the forward pass.

    Parameters
    ----------
    rate : float in [0, 1)
        Probability of zeroing each entry.
    rng : numpy Generator or int seed, optional
        Source of the masks; a seed makes them reproducible.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.nn import Dropout
    >>> layer = Dropout(0.5, rng=0)
    >>> sorted(set(layer.forward(np.ones((2, 4))).ravel().tolist()))
    [0.0, 2.0]
    >>> layer.train(False).forward(np.ones((1, 2))).tolist()
    [[1.0, 1.0]]
    """

    def __init__(self, rate: float, /, *, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        self.rate = _checks.fraction(rate, "rate")
        self.rng = _rng(rng)
        self._dy_dx: np.ndarray | None = None

    def forward(self, x: np.ndarray, /) -> np.ndarray:
        if not self.training or self.rate == 0.0:
            self._dy_dx = np.ones_like(x)
            return x
        keep = self.rng.random(x.shape) >= self.rate
        self._dy_dx = keep / (1.0 - self.rate)
        return x * self._dy_dx

    def backward(self, dL_dy: np.ndarray, /) -> np.ndarray:
        return dL_dy * self._saved(self._dy_dx)

    def __repr__(self) -> str:
        return f"Dropout({self.rate})"


class Sequential(Layer):
    r"""Layers applied in order; backward runs them in reverse (the chain rule).

    ``params`` and ``grads`` gather every layer's under the key
    ``"{index}.{name}"`` (e.g. ``"0.weight"``), the same arrays, not copies.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.nn import Dense, ReLU, Sequential
    >>> net = Sequential(Dense(4, 8, rng=0), ReLU(), Dense(8, 3, init="glorot", rng=1))
    >>> net.forward(np.zeros((5, 4))).shape
    (5, 3)
    >>> sorted(net.params)
    ['0.bias', '0.weight', '2.bias', '2.weight']
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise SoftmaxkitTypeError(
                    f"`layers[{i}]` must be a softmaxkit.nn Layer; got {type(layer).__name__}"
                )
        self.layers = list(layers)

    @property  # type: ignore[override]
    def params(self) -> dict[str, np.ndarray]:
        return {
            f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()
        }

    @params.setter
    def params(self, value: dict[str, np.ndarray]) -> None:
        # Layer.__init__ assigns an empty dict; a Sequential holds none of its own.
        if value:
            raise SoftmaxkitValueError("`Sequential.params` gathers its layers' parameters")

    @property  # type: ignore[override]
    def grads(self) -> dict[str, np.ndarray]:
        return {
            f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()
        }

    @grads.setter
    def grads(self, value: dict[str, np.ndarray]) -> None:
        if value:
            raise SoftmaxkitValueError("`Sequential.grads` gathers its layers' gradients")

    def forward(self, x: np.ndarray, /) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dL_dy: np.ndarray, /) -> np.ndarray:
        for layer in reversed(self.layers):
            dL_dy = layer.backward(dL_dy)
        return dL_dy

    def train(self, mode: bool = True) -> Sequential:
        self.training = _checks.flag(mode, "mode")
        for layer in self.layers:
            layer.train(mode)
        return self

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(repr(layer) for layer in self.layers) + ")"
