"""Weight initialisation: He (for ReLU layers) and Glorot (for linear and sigmoid ones).

Both keep the variance of the activations roughly constant from layer to
layer, so that a deep stack neither saturates nor fades at the start.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["glorot_uniform", "he_normal"]


def _check_fans(fan_in: int, fan_out: int, rng: np.random.Generator) -> tuple[int, int]:
    from .._errors import SoftmaxkitTypeError, SoftmaxkitValueError
    from ._checks import count

    if not isinstance(rng, np.random.Generator):
        raise SoftmaxkitTypeError(f"`rng` must be a numpy.random.Generator; got {rng!r}")
    fan_in, fan_out = count(fan_in, "fan_in", -math.inf), count(fan_out, "fan_out", -math.inf)
    if fan_in < 1 or fan_out < 1:
        raise SoftmaxkitValueError(
            f"`fan_in` and `fan_out` must be >= 1; got {fan_in} and {fan_out}"
        )
    return fan_in, fan_out


def he_normal(fan_in: int, fan_out: int, /, *, rng: np.random.Generator) -> np.ndarray:
    r"""Weights of shape ``(fan_in, fan_out)`` drawn from ``N(0, 2 / fan_in)``.

    He et al. (2015): a ReLU zeroes half its input on average, so the variance
    ``2 / fan_in`` (twice Glorot's) keeps ``Var(a)`` constant through the layer.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.nn import he_normal
    >>> w = he_normal(1000, 500, rng=np.random.default_rng(0))
    >>> w.shape, round(float(w.var() * 1000 / 2), 1)
    ((1000, 500), 1.0)
    """
    fan_in, fan_out = _check_fans(fan_in, fan_out, rng)
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


def glorot_uniform(fan_in: int, fan_out: int, /, *, rng: np.random.Generator) -> np.ndarray:
    r"""Weights of shape ``(fan_in, fan_out)`` drawn from ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``.

    Glorot and Bengio (2010): the variance ``a**2 / 3 = 2 / (fan_in + fan_out)``
    balances the forward and the backward pass of a linear (or logistic) layer.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.nn import glorot_uniform
    >>> w = glorot_uniform(3, 3, rng=np.random.default_rng(0))
    >>> bool(np.all(np.abs(w) <= 1.0))
    True
    """
    fan_in, fan_out = _check_fans(fan_in, fan_out, rng)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))
