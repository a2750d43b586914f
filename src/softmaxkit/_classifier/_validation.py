"""Input checks of the classifier: the feature matrix, and weighted feature statistics."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._errors import SoftmaxkitError, SoftmaxkitTypeError, SoftmaxkitValueError

__all__ = ["check_X", "weighted_moments"]


def check_X(X: Any, name: str = "X") -> np.ndarray:
    """``X`` as a finite float64 matrix; refuses what float64(X) would silently change."""
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise SoftmaxkitTypeError(
            f"`{name}` must be a dense array; got a sparse {type(X).__name__} (sparse input is "
            "not supported: use X.toarray())"
        )
    try:
        array = np.asarray(X)
        if array.dtype.kind == "c":  # float64(X) would drop the imaginary part
            raise SoftmaxkitValueError(
                f"`{name}` must be an array of real numbers; got dtype {array.dtype} "
                "(Complex data not supported)"
            )
        # ... and parse strings and turn dates into integers: none of them a feature matrix.
        if array.dtype.kind not in "biufO":
            raise SoftmaxkitTypeError(
                f"`{name}` must be an array of real numbers; got dtype {array.dtype}"
            )
        X = array.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SoftmaxkitError):
            raise
        raise SoftmaxkitTypeError(f"`{name}` must be an array of real numbers ({exc})") from None
    if X.ndim != 2:
        raise SoftmaxkitValueError(
            f"`{name}` must have shape (n_samples, n_features); got shape {X.shape}. Reshape "
            "your data either using array.reshape(-1, 1) if it has a single feature or "
            "array.reshape(1, -1) if it is a single sample"
        )
    bad = ~np.isfinite(X)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise SoftmaxkitValueError(
            f"`{name}` must be finite (no NaN or inf); position {pos} holds {X[pos].item()!r}"
        )
    return X


def weighted_moments(X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    total = w.sum()
    mean = w @ X / total
    var = w @ (X - mean) ** 2 / total
    return mean, var
