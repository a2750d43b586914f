"""The options every loss shares, checked in one place so that they mean the same everywhere.

``reduction`` is one of ``"none"``, ``"mean"``, ``"sum"``; ``ignore_index`` is an
int (a bool is refused: ``True`` would silently mean class 1); ``label_smoothing``
is a number in [0, 1].
"""

from __future__ import annotations

import operator
from typing import Any

from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError

__all__ = ["REDUCTIONS", "check_ignore_index", "check_label_smoothing", "check_reduction"]

REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: Any) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise SoftmaxkitValueError(
            f"`reduction` must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}"
        )
    return reduction


def check_ignore_index(ignore_index: Any) -> int:
    if not isinstance(ignore_index, bool):
        try:
            return operator.index(ignore_index)
        except TypeError:
            pass
    raise SoftmaxkitTypeError(f"`ignore_index` must be an int; got {ignore_index!r}")


def check_label_smoothing(label_smoothing: Any) -> float:
    try:
        eps = float(label_smoothing)
    except (TypeError, ValueError):
        raise SoftmaxkitTypeError(
            f"`label_smoothing` must be a number in [0, 1]; got {label_smoothing!r}"
        ) from None
    if not 0.0 <= eps <= 1.0:
        raise SoftmaxkitValueError(f"`label_smoothing` must be in [0, 1]; got {eps!r}")
    return eps
