"""Derivatives of the softmax family: the Jacobian and the two backward products.

For ``p = softmax(x)`` the Jacobian is ``dp_i/dx_k = p_i (delta_ik - p_k)``,
i.e. ``diag(p) - p p^T``.  Backpropagation never needs the matrix: the
vector-Jacobian product is ``p * (g - sum(g * p))``, O(N) per slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from . import _backends
from ._backend import (
    as_array,
    as_result,
    cast,
    check_out,
    compute_dtype,
    fused,
    is_eager_jax,
    namespace,
    normalize_axis,
    whole_jit,
    write_out,
)
from ._errors import SoftmaxkitValueError
from ._typing import ArrayT

__all__ = ["log_softmax_backward", "softmax_backward", "softmax_jacobian"]

Array = Any
Axis = int | Sequence[int]


def _pair(grad: Array, y: Array, y_name: str, axis: Axis):
    """Validate ``grad`` and the forward output ``y``; cast both to the working dtype."""
    grad = as_array(grad, "grad")
    y = as_array(y, y_name)
    xp: ModuleType = namespace(grad, y, names=("grad", y_name))
    if tuple(grad.shape) != tuple(y.shape):
        raise SoftmaxkitValueError(
            f"`grad` and `{y_name}` must have the same shape; got {tuple(grad.shape)} "
            f"and {tuple(y.shape)}"
        )
    axes = normalize_axis(axis, y.ndim)
    work, out = compute_dtype(xp, xp.result_type(grad.dtype, y.dtype))
    return xp, cast(xp, grad, work), cast(xp, y, work), axes, out


def softmax_jacobian(p: ArrayT, /) -> ArrayT:
    r"""The full Jacobian ``J = diag(p) - p p^T`` of softmax over the last axis.

    ``J[..., i, k] = dp_i / dx_k = p_i (delta_ik - p_k)``.  For teaching and
    checking: it costs O(N^2) memory, where :func:`softmax_backward` computes
    the product ``g @ J`` in O(N).

    Parameters
    ----------
    p : array of shape (..., N)
        Softmax output.

    Returns
    -------
    array of shape (..., N, N), symmetric in the last two axes

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import softmax_jacobian
    >>> softmax_jacobian(np.array([0.2, 0.8]))
    array([[ 0.16, -0.16],
           [-0.16,  0.16]])
    """
    p = as_array(p, "p")
    xp = namespace(p)
    if p.ndim < 1:
        raise SoftmaxkitValueError(
            f"`p` must have at least one dimension; got shape {tuple(p.shape)}"
        )
    work, out = compute_dtype(xp, p.dtype)
    return as_result(cast(xp, fused(_jacobian_core, cast(xp, p, work)), out))


def _jacobian_core(p: Array) -> Array:
    xp = namespace(p)
    column = xp.expand_dims(p, axis=-1)
    row = xp.expand_dims(p, axis=-2)
    eye = xp.eye(p.shape[-1], dtype=p.dtype, device=array_api_compat.device(p))
    return column * eye - column * row


def softmax_backward(
    grad: ArrayT, p: ArrayT, /, axis: Axis = -1, *, out: np.ndarray | None = None
) -> ArrayT:
    r"""The vector-Jacobian product of softmax: ``p * (grad - sum(grad * p))``.

    Given ``grad = dL/dp`` and the forward output ``p = softmax(x)``, returns
    ``dL/dx = grad @ J`` with ``J = diag(p) - p p^T``, summing over ``axis``
    without forming ``J``.

    Parameters
    ----------
    grad : array
        Gradient of the loss with respect to ``p``, the shape of ``p``.
    p : array
        Output of :func:`softmax` along the same ``axis``.
    axis : int or tuple of ints, default -1
    out : numpy.ndarray, optional
        For NumPy input: an array of exactly the result's shape and dtype that
        receives the gradient and is returned, as with NumPy's ufuncs; it may be
        ``grad`` or ``p`` itself (in place).  Checked as in :func:`softmax`.

    Notes
    -----
    Where ``p`` is 0 (masked entries, ``-inf`` inputs, all ``-inf`` slices)
    the gradient is 0, and ``grad`` there is left out of the sum, so an
    infinite or NaN ``grad`` at such an entry cannot spread.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import softmax, softmax_backward, softmax_jacobian
    >>> p = softmax(np.array([2.0, 1.0, 0.1]))
    >>> g = np.array([1.0, 0.0, 0.0])
    >>> bool(np.allclose(softmax_backward(g, p), g @ softmax_jacobian(p)))
    True
    >>> softmax_backward(g, p, out=g) is g  # in place
    True
    """
    if is_eager_jax(grad) and is_eager_jax(p) and out is None and grad.shape == p.shape:
        return whole_jit(softmax_backward, (grad, p), {}, {"axis": normalize_axis(axis, p.ndim)})
    xp, g, p, axes, out_dtype = _pair(grad, p, "p", axis)
    if out is not None:
        out = check_out(out, g, tuple(g.shape), out_dtype, x_name="grad")
    backend = _backends.select(p)
    if backend is not None:
        dx = _backends.call(backend.softmax_backward, g, p, axes, out_dtype, out=out)
        if dx is not None:
            return dx
    dx = fused(_softmax_backward_core, g, p, axes=axes)
    return write_out(out, as_result(cast(xp, dx, out_dtype)))


def _softmax_backward_core(g: Array, p: Array, *, axes: tuple[int, ...]) -> Array:
    xp = namespace(g, p)
    # Entries with p == 0 do not depend on x: leave their grad out of the sum, so
    # that an infinite or NaN grad there (a masked position) cannot spread.
    g = xp.where(p == 0, xp.asarray(0.0, dtype=g.dtype), g)
    return p * (g - xp.sum(g * p, axis=axes, keepdims=True))


def log_softmax_backward(
    grad: ArrayT, logp: ArrayT, /, axis: Axis = -1, *, out: np.ndarray | None = None
) -> ArrayT:
    r"""The vector-Jacobian product of log_softmax: ``grad - exp(logp) * sum(grad)``.

    Given ``grad = dL/dlogp`` and the forward output ``logp = log_softmax(x)``,
    returns ``dL/dx``; ``out`` as in :func:`softmax_backward`.

    Notes
    -----
    Entries where ``logp`` is ``-inf`` (masked out, or ``-inf`` inputs) do not
    depend on ``x``: they receive gradient 0 and their ``grad`` is left out of
    the sum, so an infinite or NaN ``grad`` there cannot spread.  This matches
    the autograd gradient of :func:`log_softmax`.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import log_softmax, log_softmax_backward
    >>> logp = log_softmax(np.array([0.0, 0.0]))
    >>> log_softmax_backward(np.array([1.0, 0.0]), logp)
    array([ 0.5, -0.5])
    """
    if is_eager_jax(grad) and is_eager_jax(logp) and out is None and grad.shape == logp.shape:
        axes = normalize_axis(axis, logp.ndim)
        return whole_jit(log_softmax_backward, (grad, logp), {}, {"axis": axes})
    xp, g, logp, axes, out_dtype = _pair(grad, logp, "logp", axis)
    if out is not None:
        out = check_out(out, g, tuple(g.shape), out_dtype, x_name="grad")
    backend = _backends.select(logp)
    if backend is not None:
        dx = _backends.call(backend.log_softmax_backward, g, logp, axes, out_dtype, out=out)
        if dx is not None:
            return dx
    dx = fused(_log_softmax_backward_core, g, logp, axes=axes)
    return write_out(out, as_result(cast(xp, dx, out_dtype)))


def _log_softmax_backward_core(g: Array, logp: Array, *, axes: tuple[int, ...]) -> Array:
    xp = namespace(g, logp)
    g = xp.where(logp == -xp.inf, xp.asarray(0.0, dtype=g.dtype), g)
    return g - xp.exp(logp) * xp.sum(g, axis=axes, keepdims=True)
