"""The options every loss shares, checked in one place so that they mean the same everywhere.

``reduction`` is one of ``"none"``, ``"mean"``, ``"sum"``; ``ignore_index`` is an
int within int64's range (a bool is refused: ``True`` would silently mean class 1); ``label_smoothing``
is a number in [0, 1].  The class axis of a loss and the class indices of its
target are checked here too: the losses, the kernels and the backends all use them,
so they live below all three.
"""

from __future__ import annotations

import operator
from typing import Any, cast

import numpy as np

from ._backend import to_numpy
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._typing import Reduction

__all__ = [
    "REDUCTIONS",
    "check_class_axis",
    "check_ignore_index",
    "check_indices",
    "check_label_smoothing",
    "check_reduction",
]

REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: Any) -> Reduction:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise SoftmaxkitValueError(
            f"`reduction` must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}"
        )
    return cast(Reduction, reduction)  # the check above made it one


_INT64 = (-(2**63), 2**63 - 1)


def check_ignore_index(ignore_index: Any) -> int:
    """``ignore_index`` as an int of int64's range.

    Class indices are compared as int64 (by the kernels, by torch, whose losses take an
    int64 ``ignore_index``): a value outside that range could never be matched, and the
    compiled calls could not even receive it.
    """
    index = None
    if not isinstance(ignore_index, bool):
        try:
            index = operator.index(ignore_index)
        except TypeError:
            pass
    if index is None:
        raise SoftmaxkitTypeError(f"`ignore_index` must be an int; got {ignore_index!r}")
    low, high = _INT64
    if not low <= index <= high:
        raise SoftmaxkitValueError(
            f"`ignore_index` must be an int64, in [-2**63, 2**63 - 1]; got {index}"
        )
    return index


def check_count(value: Any, name: str, minimum: float = 1, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``; NumPy integers count, bools do not."""
    try:
        if isinstance(value, bool | np.bool_):
            raise TypeError  # True would silently mean 1
        n = operator.index(value)
    except TypeError:
        raise SoftmaxkitTypeError(f"`{name}` must be an int; got {value!r}") from None
    if n < minimum:
        raise SoftmaxkitValueError(f"`{name}` must be >= {minimum}; got {n}")
    if maximum is not None and n > maximum:
        raise SoftmaxkitValueError(f"`{name}` must be <= {maximum}; got {n}")
    return n


def check_flag(value: Any, name: str) -> bool:
    """``value`` as a bool: Python's or NumPy's, nothing else (``"no"`` is truthy)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise SoftmaxkitTypeError(f"`{name}` must be True or False; got {value!r}")


def check_label_smoothing(label_smoothing: Any) -> float:
    if isinstance(label_smoothing, bool | np.bool_):  # True is no amount of smoothing
        raise SoftmaxkitTypeError(
            f"`label_smoothing` must be a number in [0, 1]; got {label_smoothing!r}"
        )
    try:
        eps = float(label_smoothing)
    except (TypeError, ValueError):
        raise SoftmaxkitTypeError(
            f"`label_smoothing` must be a number in [0, 1]; got {label_smoothing!r}"
        ) from None
    if not 0.0 <= eps <= 1.0:
        raise SoftmaxkitValueError(f"`label_smoothing` must be in [0, 1]; got {eps!r}")
    return eps


def check_class_axis(axis: Any, ndim: int) -> int:
    """``axis`` of a loss's logits as a non-negative int."""
    try:
        a = operator.index(axis)
    except TypeError:
        raise SoftmaxkitTypeError(f"`axis` must be an int; got {axis!r}") from None
    if ndim == 0:
        raise SoftmaxkitValueError("`logits` must have a class axis; got a 0-d array")
    if not -ndim <= a < ndim:
        raise SoftmaxkitValueError(f"`axis` must be in [{-ndim}, {ndim}); got {a}")
    return a % ndim


def not_ignored(xp: Any, target: Any, ignore_index: int) -> Any:
    """``target != ignore_index`` for integer ``target``, also where ``ignore_index`` lies
    outside the dtype's range (no entry can equal it; JAX refuses to compare with it)."""
    info = xp.iinfo(target.dtype)
    if info.min <= ignore_index <= info.max:
        return target != ignore_index
    return xp.ones_like(target, dtype=xp.bool)


def check_indices(y: np.ndarray, n_classes: int, ignore_index: int, name: str = "target") -> None:
    """Every class index in ``[0, n_classes)`` or equal to ``ignore_index``."""
    bad = ((y < 0) | (y >= n_classes)) & (y != ignore_index)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise SoftmaxkitValueError(
            f"`{name}` must be in [0, {n_classes}) or {ignore_index}; position {pos} holds "
            f"{y[pos].item()}"
        )


def check_counts(counts: Any) -> np.ndarray:
    """``counts`` (one per class) as a 1-d float64 NumPy array of finite values >= 0.

    Python ints beyond int64 (2**70) make an object array; counts are used as
    float64 anyway, which holds them up to about 1.8e308.
    """
    if isinstance(counts, list | tuple):
        c = np.asarray(counts)
    else:
        c = np.asarray(to_numpy(counts))
    if c.ndim != 1 or c.size == 0:
        raise SoftmaxkitValueError(
            f"`counts` must be a non-empty 1-d array, one count per class; got shape "
            f"{tuple(c.shape)}"
        )
    if c.dtype == object and all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
        for v in c.tolist()
    ):
        try:
            c = np.array([float(v) for v in c.tolist()], dtype=np.float64)
        except OverflowError:
            raise SoftmaxkitValueError(
                "`counts` must each fit in float64 (up to about 1.8e308); got a larger int"
            ) from None
    if c.dtype.kind not in "biuf":
        raise SoftmaxkitTypeError(
            f"`counts` must be an array of real numbers (each within float64); got dtype {c.dtype}"
        )
    c = c.astype(np.float64)
    bad = ~np.isfinite(c) | (c < 0)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise SoftmaxkitValueError(
            f"`counts` must be finite and non-negative; position {pos} holds {c[pos].item()!r}"
        )
    return c
