"""The library's exceptions: one base class, two concrete kinds.

Every message names the argument in backticks, says what was expected and
what came in, e.g. "`temperature` must be finite and > 0; got -1.0".
"""

from __future__ import annotations

__all__ = ["SoftmaxkitError", "SoftmaxkitTypeError", "SoftmaxkitValueError"]


class SoftmaxkitError(Exception):
    """Base class of every error softmaxkit raises on bad input.

    Examples
    --------
    >>> import numpy as np, softmaxkit as sk
    >>> try:
    ...     sk.softmax(np.zeros(3), temperature=-1.0)
    ... except sk.SoftmaxkitError as error:
    ...     print(error)
    `temperature` must be finite and > 0; got -1.0
    """


class SoftmaxkitValueError(SoftmaxkitError, ValueError):
    """An argument has the right type but a wrong value or shape.

    Also a :class:`ValueError`, so code written for NumPy's errors catches it.

    Examples
    --------
    >>> import numpy as np, softmaxkit as sk
    >>> try:
    ...     sk.softmax(np.zeros(3), axis=2)
    ... except ValueError as error:
    ...     print(type(error).__name__, error)
    SoftmaxkitValueError `axis` must be in [-1, 1) for an array of 1 dimension; got 2
    """


class SoftmaxkitTypeError(SoftmaxkitError, TypeError):
    """An argument has the wrong type or dtype (e.g. a non-numeric array).

    Also a :class:`TypeError`.

    Examples
    --------
    >>> import numpy as np, softmaxkit as sk
    >>> try:
    ...     sk.softmax(np.array(["cat", "dog"]))
    ... except TypeError as error:
    ...     print(type(error).__name__, error)
    SoftmaxkitTypeError `x` must be an array of real numbers; got dtype <U3
    """
