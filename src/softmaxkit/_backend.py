"""One code path for every array library.

``namespace(*arrays)`` returns the array-API namespace of the caller's arrays
(through ``array_api_compat``, which never imports a framework the caller has
not imported).  The helpers here normalise the arguments every public function
shares: the array itself, ``axis``, ``temperature`` and ``where``.
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError

__all__ = [
    "as_array",
    "as_result",
    "cast",
    "check_out",
    "compute_dtype",
    "fused",
    "is_concrete",
    "is_eager_jax",
    "is_jax",
    "is_numpy",
    "is_torch",
    "namespace",
    "normalize_axis",
    "stop_gradient",
    "to_numpy",
    "validate_temperature",
    "validate_where",
    "whole_jit",
    "write_out",
]

Array = Any


def _is_array(x: object) -> bool:
    return bool(array_api_compat.is_array_api_obj(x))


def _kind(a: object) -> str:
    return type(a).__module__.split(".")[0] + "." + type(a).__name__


def namespace(*arrays: Array, names: Sequence[str] | None = None) -> ModuleType:
    """The array-API namespace shared by ``arrays`` (``None`` entries ignored).

    ``names`` (one per array) lets the error for arrays of two libraries name them.
    """
    present = [a for a in arrays if a is not None and _is_array(a)]
    if not present:
        return array_api_compat.array_namespace(np.empty(0))
    try:
        return array_api_compat.array_namespace(*present)
    except TypeError as exc:
        if names is not None:
            first = next(i for i, a in enumerate(arrays) if a is not None and _is_array(a))
            for i, a in enumerate(arrays):
                if a is not None and _is_array(a) and _kind(a) != _kind(arrays[first]):
                    raise SoftmaxkitTypeError(
                        f"`{names[i]}` must come from the same array library as "
                        f"`{names[first]}` ({_kind(arrays[first])}); got {_kind(a)}"
                    ) from exc
        kinds = sorted({_kind(a) for a in present})
        raise SoftmaxkitTypeError(
            f"arrays must all come from one array library; got {', '.join(kinds)}"
        ) from exc


def is_numpy(x: Array) -> bool:
    return bool(array_api_compat.is_numpy_array(x))


def numpy_quiet(x: Array, **kinds: Any) -> contextlib.AbstractContextManager[Any]:
    """``np.errstate(**kinds)`` for a NumPy array, else nothing.

    Only NumPy warns on floating-point events; ``torch.compile`` cannot trace
    ``errstate``, and JAX never reads it.
    """
    return (
        np.errstate(**kinds)
        if isinstance(x, (np.ndarray, np.generic))
        else contextlib.nullcontext()
    )


def is_torch(x: Array) -> bool:
    return bool(array_api_compat.is_torch_array(x))


def is_jax(x: Array) -> bool:
    return bool(array_api_compat.is_jax_array(x))


def as_array(x: Array, name: str, xp: ModuleType | None = None) -> Array:
    """``x`` as an array of a real numeric dtype, converting lists and scalars with NumPy.

    Raises ``SoftmaxkitTypeError`` naming ``name`` for strings, objects and
    complex numbers.  Booleans and integers are accepted here; promotion to a
    floating dtype is :func:`compute_dtype`'s job.
    """
    if not _is_array(x):
        if xp is not None and not array_api_compat.is_numpy_namespace(xp):
            x = xp.asarray(x)
        else:
            try:
                x = np.asarray(x)
            except (ValueError, TypeError) as exc:
                raise SoftmaxkitTypeError(
                    f"`{name}` must be an array of real numbers; got {type(x).__name__} "
                    f"that NumPy cannot convert ({exc})"
                ) from exc
    dtype = x.dtype
    if is_numpy(x):
        ok = np.dtype(dtype).kind in "biuf" or _is_bfloat16(dtype)
    else:
        ok = namespace(x).isdtype(dtype, ("bool", "integral", "real floating"))
    if not ok:
        raise SoftmaxkitTypeError(f"`{name}` must be an array of real numbers; got dtype {dtype}")
    return x


def _is_bfloat16(dtype: Any) -> bool:
    # NumPy has no bfloat16 of its own; ml_dtypes (which JAX brings) registers one
    # with kind "V", and NumPy's array-API `isdtype` rejects it.
    return isinstance(dtype, np.dtype) and dtype.name == "bfloat16"


def as_result(x: Array) -> Array:
    """``x``, with a NumPy scalar (what NumPy makes of 0-d results) turned into a 0-d array."""
    return np.asarray(x) if isinstance(x, np.generic) else x


def _itemsize(xp: ModuleType, dtype: Any) -> int:
    size = getattr(dtype, "itemsize", None)
    if size is None:
        size = xp.finfo(dtype).bits // 8
    return int(size)


def default_float(xp: ModuleType) -> Any:
    """The library's default floating dtype (float64 for NumPy, torch's default, JAX's)."""
    return xp.asarray(0.0).dtype


def compute_dtype(xp: ModuleType, dtype: Any) -> tuple[Any, Any]:
    """``(work_dtype, out_dtype)`` for an input of ``dtype``.

    float32 and float64 work in themselves; float16 and bfloat16 accumulate in
    float32 and return their own dtype; booleans and integers are promoted to
    the default floating dtype.
    """
    if _is_bfloat16(dtype):
        return xp.float32, dtype
    if xp.isdtype(dtype, "real floating"):
        if _itemsize(xp, dtype) < 4:
            return xp.float32, dtype
        return dtype, dtype
    floating = default_float(xp)
    return floating, floating


def normalize_axis(
    axis: int | Sequence[int] | None, ndim: int, name: str = "axis"
) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative ints, checked against ``ndim``.

    ``None`` means every axis.  A 0-d input has no axis to reduce over except
    ``None`` or ``()``.
    """
    if type(axis) is int and ndim and -ndim <= axis < ndim:  # the common case, cheaply
        return (axis % ndim,)
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if not isinstance(axis, Sequence) else tuple(axis)
    out = []
    for a in axes:
        if isinstance(a, bool | np.bool_):  # True is not axis 1
            raise SoftmaxkitTypeError(f"`{name}` must be an int or a tuple of ints; got {axis!r}")
        try:
            a = operator.index(a)
        except TypeError:
            raise SoftmaxkitTypeError(
                f"`{name}` must be an int or a tuple of ints; got {axis!r}"
            ) from None
        if ndim == 0:
            raise SoftmaxkitValueError(
                f"`{name}` must be () or None for a 0-d array, which has no axis; got {axis!r}"
            )
        if not -ndim <= a < ndim:
            raise SoftmaxkitValueError(
                f"`{name}` must be in [{-ndim}, {ndim}) for an array of {ndim} dimension"
                f"{'s' if ndim != 1 else ''}; got {a}"
            )
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise SoftmaxkitValueError(f"`{name}` must not repeat an axis; got {axis!r}")
    return tuple(sorted(out))


def validate_temperature(temperature: Any) -> float:
    """``temperature`` as a Python float, finite and > 0.

    A tensor that requires grad, or a JAX tracer, is refused rather than read as
    a float, which would silently drop its gradient.
    """
    if type(temperature) is float:  # the common case, kept cheap for small arrays
        if math.isfinite(temperature) and temperature > 0:
            return float(temperature)
    elif (is_torch(temperature) and temperature.requires_grad) or not is_concrete(temperature):
        raise SoftmaxkitTypeError(
            "`temperature` must be a plain number, not a differentiable or traced array; "
            f"got {type(temperature).__name__}; to learn a temperature, pass x / temperature"
        )
    if isinstance(temperature, str | bytes | bool | np.bool_):  # float("0.5"), float(True)
        raise SoftmaxkitTypeError(f"`temperature` must be a finite number > 0; got {temperature!r}")
    try:
        value = float(temperature)
    except OverflowError:  # an int beyond any float
        value = math.inf
    except (TypeError, ValueError):
        raise SoftmaxkitTypeError(
            f"`temperature` must be a finite number > 0; got {temperature!r}"
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise SoftmaxkitValueError(f"`temperature` must be finite and > 0; got {value!r}")
    return value


def _broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        da = a[-i] if i <= len(a) else 1
        db = b[-i] if i <= len(b) else 1
        if da != db and 1 not in (da, db):
            return None
        out.append(max(da, db) if 0 not in (da, db) else 0)
    return tuple(reversed(out))


def validate_where(where: Any, x: Array, xp: ModuleType) -> Array | None:
    """``where`` as a boolean array of ``xp`` that broadcasts to ``x.shape``."""
    if where is None:
        return None
    if not _is_array(where):
        where = np.asarray(where)
    elif not is_numpy(where) and array_api_compat.array_namespace(where) is not xp:
        raise SoftmaxkitTypeError(
            f"`where` must be a boolean array of the same library as `x` ({_kind(x)}) "
            f"or a NumPy array; got {_kind(where)}"
        )
    # the dtype before any conversion, which (to JAX, say) fails on strings first
    if not array_api_compat.array_namespace(where).isdtype(where.dtype, "bool"):
        raise SoftmaxkitTypeError(f"`where` must be a boolean array; got dtype {where.dtype}")
    if not is_numpy(x) and is_numpy(where):
        where = xp.asarray(where, device=array_api_compat.device(x))
    else:
        where = xp.asarray(where)
    shape = tuple(x.shape)
    if _broadcast_shape(tuple(where.shape), shape) != shape:
        raise SoftmaxkitValueError(
            f"`where` must broadcast to the shape of `x` {shape}; got shape {tuple(where.shape)}"
        )
    return where


def cast(xp: ModuleType, x: Array, dtype: Any) -> Array:
    """``x`` as ``dtype``, without the copy that ``astype`` makes when it already is."""
    if x.dtype == dtype:
        return x
    with numpy_quiet(x, over="ignore"):  # a wide result beyond a narrow dtype is rightly inf
        return xp.astype(x, dtype)


_JITTED: dict[tuple[Any, tuple[str, ...]], Any] = {}


def fused(fn: Any, *args: Any, **static: Any) -> Any:
    """``fn(*args, **static)``, through ``jax.jit`` when the first argument is a JAX array.

    Like ``jax.nn.softmax``: the whole computation compiles into one fused kernel
    per shape and setting (``static`` are the static arguments), rather than one
    dispatch and one compilation per operation.  Other libraries call ``fn``
    directly.  Inside a caller's own ``jit`` the inner one is simply inlined.
    """
    if not is_jax(args[0]):
        return fn(*args, **static)
    key = (fn, tuple(sorted(static)))
    jitted = _JITTED.get(key)
    if jitted is None:
        import jax

        jitted = _JITTED[key] = jax.jit(fn, static_argnames=key[1])
    return jitted(*args, **static)


def is_eager_jax(x: Array) -> bool:
    """Whether ``x`` is a JAX array with values, i.e. the call is outside the caller's ``jit``."""
    return is_jax(x) and is_concrete(x)


def _whole(
    arrays: tuple[Any, ...], named: dict[str, Any], *, fn: Any, kernels: bool, **static: Any
) -> Any:
    return fn(*arrays, **named, **static)


def whole_jit(
    fn: Any, arrays: tuple[Any, ...], named: dict[str, Any], static: dict[str, Any]
) -> Any:
    """``fn(*arrays, **named, **static)`` as one ``jax.jit`` computation.

    For a public function called eagerly on JAX arrays: its arguments checked on the
    host (the values too, which a traced call cannot read), it is called again under
    ``jit`` with ``arrays`` and ``named`` (arrays or None) traced and ``static`` (the
    checked options, hashable) as static arguments, so that it runs as one compiled
    computation, compiled once per shape, dtype and option setting: new values of the
    same shape never recompile.  (Each new ``temperature`` is a new option setting.)
    """
    from . import _kernels

    key = (_whole, ("fn", "kernels", *sorted(static)))
    jitted = _JITTED.get(key)
    if jitted is None:
        import jax

        jitted = _JITTED[key] = jax.jit(_whole, static_argnames=key[1])
    # the kernels' switch is read while tracing: a computation per setting
    return jitted(arrays, named, fn=fn, kernels=_kernels.enabled(), **static)


def stop_gradient(x: Array) -> Array:
    """``x`` cut from the autograd graph (torch, JAX); unchanged for NumPy."""
    if is_torch(x):
        return x.detach()
    if is_jax(x):
        import jax

        return jax.lax.stop_gradient(x)
    return x


def is_concrete(x: Array) -> bool:
    """False where ``x``'s values cannot be read on the host.

    A JAX tracer under ``jit``; a torch tensor on ``meta``, a fake one, any under
    ``torch.compile`` and one batched by ``torch.func.vmap``.
    """
    if is_jax(x):
        import jax

        return not isinstance(x, jax.core.Tracer)
    if is_torch(x):
        from ._backends import torch_backend

        return bool(torch_backend().has_values(x))
    return True


def to_numpy(x: Array) -> np.ndarray:
    """A NumPy copy or view of ``x``, from any library and device (for messages and I/O)."""
    if is_torch(x):
        from ._backends import torch_backend

        return torch_backend().host_array(x)  # type: ignore[no-any-return]
    return np.asarray(x)


def check_out(
    out: Any, x: Array, shape: tuple[int, ...], dtype: Any, *, name: str = "out", x_name: str = "x"
) -> np.ndarray:
    """``out`` checked to receive a result of ``shape`` and ``dtype`` computed from ``x``.

    As for NumPy's ufuncs: a writeable NumPy array (C-contiguous or not, ``x`` itself
    for an in-place result) of exactly the result's shape and dtype, nothing cast or
    broadcast.  Only NumPy input has one: a torch tensor or a JAX array gets its result
    returned as usual.  Checked before any work, so a refused ``out`` is left unchanged.
    """
    if not is_numpy(x):
        raise SoftmaxkitTypeError(
            f"`{name}` is for NumPy input only; `{x_name}` is a {_kind(x)}, whose result is "
            f"returned (leave `{name}` as None)"
        )
    if not isinstance(out, np.ndarray):
        raise SoftmaxkitTypeError(
            f"`{name}` must be a NumPy array (numpy.ndarray) of shape {tuple(shape)} and dtype "
            f"{np.dtype(dtype)}; got {_kind(out).removeprefix('builtins.')}"
        )
    if out.shape != tuple(shape):
        raise SoftmaxkitValueError(
            f"`{name}` must have the shape of the result {tuple(shape)}; got shape {out.shape}"
        )
    if out.dtype != dtype:
        raise SoftmaxkitTypeError(
            f"`{name}` must have the dtype of the result, {np.dtype(dtype)}; got dtype {out.dtype}"
        )
    if not out.flags.writeable:
        raise SoftmaxkitValueError(f"`{name}` must be writeable; got a read-only array")
    return out


def write_out(out: np.ndarray | None, result: Array) -> Array:
    """``result``, or ``out`` (checked by :func:`check_out`) holding it.

    The copy runs once ``result`` is complete, so ``out`` is written whole or not at
    all, and NumPy's ``copyto`` handles any overlap of the two.
    """
    if out is None:
        return result
    if result is not out:
        with np.errstate(over="ignore"):  # a wide result beyond a narrow dtype is rightly inf
            np.copyto(out, result, casting="same_kind")
    return out
