"""The library's exceptions: one base class, two concrete kinds.

Every message names the argument in backticks, says what was expected and
what came in, e.g. "`temperature` must be finite and > 0; got -1.0".
"""

from __future__ import annotations

__all__ = ["SoftmaxkitError", "SoftmaxkitTypeError", "SoftmaxkitValueError"]


class SoftmaxkitError(Exception):
    """Base class of every error softmaxkit raises on bad input."""


class SoftmaxkitValueError(SoftmaxkitError, ValueError):
    """An argument has the right type but a wrong value or shape."""


class SoftmaxkitTypeError(SoftmaxkitError, TypeError):
    """An argument has the wrong type or dtype (e.g. a non-numeric array)."""
