"""The settings checks of ``softmaxkit.nn``: each names the argument it refuses.

NumPy scalars count as numbers (a ``GridSearchCV`` grid gives them); bools do not
(``True`` would silently mean 1), nor do strings (``"3"`` is not 3).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from .._options import check_count, check_flag

# the library's own count and flag checks, under the names this package reads them by
count = check_count
flag = check_flag


def real(value: Any, name: str) -> float:
    """``value`` as a finite float."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    ):
        number = float(value)
        if math.isfinite(number):
            return number
        raise SoftmaxkitValueError(f"`{name}` must be finite; got {value!r}")
    raise SoftmaxkitTypeError(f"`{name}` must be a real number; got {value!r}")


def positive(value: Any, name: str) -> float:
    number = real(value, name)
    if not number > 0:
        raise SoftmaxkitValueError(f"`{name}` must be finite and > 0; got {value!r}")
    return number


def non_negative(value: Any, name: str) -> float:
    number = real(value, name)
    if not number >= 0:
        raise SoftmaxkitValueError(f"`{name}` must be finite and >= 0; got {value!r}")
    return number


def fraction(value: Any, name: str) -> float:
    """``value`` as a float in [0, 1)."""
    number = real(value, name)
    if not 0.0 <= number < 1.0:
        raise SoftmaxkitValueError(f"`{name}` must be in [0, 1); got {value!r}")
    return number


def generator(rng: Any, name: str = "rng") -> np.random.Generator:
    """``rng`` as a Generator: a Generator, an int seed >= 0, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    try:
        seed = count(rng, name, minimum=0)
    except SoftmaxkitTypeError:
        raise SoftmaxkitTypeError(
            f"`{name}` must be a numpy.random.Generator, an int seed or None; got {rng!r}"
        ) from None
    return np.random.default_rng(seed)


def array(value: Any, name: str) -> np.ndarray:
    """``value`` as a NumPy array of real numbers."""
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise SoftmaxkitTypeError(f"`{name}` must be an array of real numbers; got dtype {a.dtype}")
    return a


def arrays(value: Any, name: str) -> dict[str, np.ndarray]:
    """``value`` as a dict of NumPy arrays (an optimizer's ``params`` or ``grads``)."""
    if not isinstance(value, dict):
        raise SoftmaxkitTypeError(f"`{name}` must be a dict of arrays; got {type(value).__name__}")
    for key, a in value.items():
        if not isinstance(a, np.ndarray):
            raise SoftmaxkitTypeError(
                f"`{name}[{key!r}]` must be a NumPy array; got {type(a).__name__}"
            )
    return value
