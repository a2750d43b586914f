"""The softmax family: softmax, log_softmax, logsumexp, pmf_normalize, sigmoid.

Every function runs on NumPy, PyTorch and JAX arrays through one code path
(the array-API namespace of its input; on JAX compiled by ``jax.jit`` as one
computation, like ``jax.nn.softmax``; on NumPy the compiled kernels of
``_kernels`` take over where enabled), and every edge case is decided in one
place, :func:`_shifted`:

* the max shift, so that any finite input is safe;
* ``+inf`` entries share the mass equally;
* a slice that is all ``-inf`` (or wholly masked by ``where``) has sum 0 and
  gives probability 0, log-probability ``-inf`` and gradient 0, never NaN;
* NaN stays in the slice that holds it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NamedTuple

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
    is_concrete,
    is_eager_jax,
    is_jax,
    is_torch,
    namespace,
    normalize_axis,
    numpy_quiet,
    stop_gradient,
    to_numpy,
    validate_temperature,
    validate_where,
    whole_jit,
    write_out,
)
from ._errors import SoftmaxkitValueError
from ._options import check_flag
from ._typing import ArrayT

__all__ = [
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "pmf_normalize",
    "sigmoid",
    "softmax",
]

Array = Any
Axis = int | Sequence[int]


class _Prepared(NamedTuple):
    xp: ModuleType
    x: Array  # in the working dtype, masked entries set to -inf
    axes: tuple[int, ...]
    out_dtype: Any
    temperature: float
    empty: bool  # a reduced axis has length 0
    backend: ModuleType | None  # the backend of x's library (None: the portable path)


@functools.cache
def _numpy_namespace() -> ModuleType:
    return namespace(np.empty(0))


def _prepare(x: Array, axis: Axis, where: Any, temperature: Any = 1.0) -> _Prepared:
    """Validate once; the result names the backend that will compute."""
    backend = _backends.select(x)
    if type(x) is np.ndarray and where is None and x.dtype in (np.float32, np.float64):
        # The compiled kernels' common case: the same checks of axis and temperature, but
        # no array-API lookups, which would cost several times the kernel on small arrays.
        axes = normalize_axis(axis, x.ndim)
        t = validate_temperature(temperature)
        out = x.dtype
        if t != 1.0:
            x, t = _fit_temperature(_numpy_namespace(), x, t)
        empty = any(x.shape[a] == 0 for a in axes)
        return _Prepared(_numpy_namespace(), x, axes, out, t, empty, backend)
    if backend is not None and backend.NAME == "torch":
        # torch: the same checks in torch calls only, which torch.compile traces
        axes = normalize_axis(axis, x.ndim)
        t = validate_temperature(temperature)
        xp, x, out = backend.prepare(x, where)
        x, t = _fit_temperature(xp, x, t)
        empty = any(x.shape[a] == 0 for a in axes)
        return _Prepared(xp, x, axes, out, t, empty, backend)
    x = as_array(x, "x")
    xp = namespace(x)
    axes = normalize_axis(axis, x.ndim)
    t = validate_temperature(temperature)
    mask = validate_where(where, x, xp)
    work, out = compute_dtype(xp, x.dtype)
    if x.dtype != work:
        x = xp.astype(x, work)
    if mask is not None:
        x = xp.where(mask, x, xp.asarray(-xp.inf, dtype=work))
    x, t = _fit_temperature(xp, x, t)
    empty = any(x.shape[a] == 0 for a in axes)
    return _Prepared(xp, x, axes, out, t, empty, _backends.select(x))


# The normal numbers of float32 and float64 whose reciprocals are normal too
_TINY = {32: float(np.finfo(np.float32).smallest_normal), 64: float(np.finfo(np.float64).tiny)}


def _eager(fn: Any, x: Array, axis: Axis, where: Any, **static: Any) -> Array:
    """``fn(x, axis, where=where, **static)`` on an eager JAX array, as one computation.

    The arguments that must be hashable (``axis``) or host values (``where`` becomes an
    array, ``temperature`` a float) are checked here; :func:`whole_jit` does the rest.
    """
    mask = validate_where(where, x, namespace(x))
    axes = normalize_axis(axis, x.ndim)
    return whole_jit(fn, (x,), {"where": mask}, {"axis": axes, **static})


def _fit_temperature(xp: ModuleType, x: Array, t: float) -> tuple[Array, float]:
    """``(x, t)`` such that ``t`` and ``1 / t`` are normal numbers of ``x``'s dtype.

    A float32 computation cannot hold ``t = 1e-300`` (it rounds to 0, and
    ``0 / 0`` is NaN) nor ``1e300`` (``inf``, and ``-inf / inf`` is NaN); and XLA
    divides by multiplying with ``1 / t``, which it flushes to 0 when subnormal
    (``-inf * 0`` is NaN).  Such a ``t`` widens a float32 computation to float64
    where the library has it cheaply; otherwise it is clamped to the range,
    which changes a result only where gaps between entries are within that
    factor of the range's end (on every library alike).
    """
    bits = 32 if x.dtype == xp.float32 else 64
    if t == 1.0 or _TINY[bits] <= t <= 1 / _TINY[bits]:
        return x, t
    if bits == 32:
        wide = _wider_float(xp, x)
        if wide is not None:
            return _fit_temperature(xp, xp.astype(x, wide), t)
    return x, min(max(t, _TINY[bits]), 1 / _TINY[bits])


def _host_knows_finite(xp: ModuleType, m: Array) -> bool:
    """True when every slice max is finite and finding out is cheap (no tracer, no GPU sync)."""
    if not is_concrete(m):
        return False
    if is_torch(m) and m.device.type != "cpu":
        return False
    try:
        return bool(xp.all(xp.isfinite(m)))
    except RuntimeError:  # torch.func.vmap refuses data-dependent branches
        return False


def _shifted(xp: ModuleType, x: Array, axes: tuple[int, ...], temperature: float):
    """``(z, m)``: ``z = (x - max) / T`` made safe, ``m = max`` (dims kept).

    ``m`` is cut from autograd: the shift cancels in every result, so treating
    it as a constant gives the exact gradient.  For a slice whose max is
    ``+inf``, ``z`` is 0 at the ``+inf`` entries and ``-inf`` elsewhere, so they
    share the mass equally.  For an all ``-inf`` slice ``z`` is ``-inf``.  For a
    slice holding NaN the max is NaN, and so is ``x - max`` throughout: NaN
    arrives by arithmetic, never as a constant (XLA's CPU compiler, fusing a
    NaN constant into ``exp``, returned garbage such as ``[0, 1, 0]``).  When
    every max is known to be finite (the usual case) the fix-ups, three passes
    over ``x``, are skipped.
    """
    dtype = x.dtype
    m = stop_gradient(xp.max(x, axis=axes, keepdims=True))
    finite = _host_knows_finite(xp, m)
    zero = xp.asarray(0.0, dtype=dtype)
    # x - max (or its quotient by T) can fall below the smallest float, e.g.
    # -1e308 - 1e308: -inf is then the correctly rounded value, and exp gives 0.
    with numpy_quiet(x, over="ignore"):
        z = x - (m if finite else xp.where(xp.isinf(m), zero, m))
        # Under jax.jit the temperature is traced (one compilation serves every T).
        if not (isinstance(temperature, float) and temperature == 1.0):
            z = z / temperature
    if not finite:
        neg_inf = xp.asarray(-xp.inf, dtype=dtype)
        z = xp.where(m == xp.inf, xp.where(x == xp.inf, zero, neg_inf), z)
    return z, m


def _in_graph(x: Array) -> bool:
    """Whether ``x`` may be differentiated: a torch tensor that requires grad, or a JAX tracer."""
    if is_torch(x):
        return bool(x.requires_grad)
    return not is_concrete(x)


def _wider_float(xp: ModuleType, z: Array) -> Any:
    """float64 for a float32 ``z`` where the library can sum in it cheaply, else None."""
    if z.dtype != xp.float32:
        return None
    if is_torch(z):
        return xp.float64 if z.device.type in ("cpu", "cuda") else None  # not on MPS
    if is_jax(z):
        import jax

        return xp.float64 if jax.config.read("jax_enable_x64") else None
    return xp.float64


def _first_max(xp: ModuleType, z: Array, axes: tuple[int, ...]) -> Array:
    """A boolean mask with one True per slice over ``axes``: the first position of its max."""
    rest = tuple([a for a in range(z.ndim) if a not in axes])
    moved = xp.permute_dims(z, (*rest, *axes))
    lead = tuple(moved.shape[: len(rest)])
    size = math.prod([z.shape[a] for a in axes])
    index = xp.argmax(xp.reshape(moved, (*lead, size)), axis=-1, keepdims=True)
    hot = xp.arange(size, device=array_api_compat.device(z)) == index
    inverse = [0] * z.ndim
    for i, a in enumerate((*rest, *axes)):
        inverse[a] = i
    return xp.permute_dims(xp.reshape(hot, tuple(moved.shape)), tuple(inverse))


def _log_sum(
    xp: ModuleType, z: Array, axes: tuple[int, ...], *, wide_result: bool = False
) -> tuple[Array, Array]:
    """``(log(sum(exp(z))), empty)`` for ``z`` from :func:`_shifted` (max 0), dims kept.

    ``s = sum(exp(z))`` is at least 1 (the max's ``exp(0)``), so when one entry
    dominates ``log(s)`` is near 0 and the rounding of ``s`` would cost its
    relative accuracy (and that of the log-probability near 0): ``1 + 4e-18``
    is 1 even in float64.  So ``s`` is never formed: the slice's first max
    contributes ``expm1(z)`` (0 there) and every other entry ``exp(z)``, giving
    ``r = s - 1``, and ``log1p(r)`` is accurate.  float32 input sums ``r`` in
    float64 where the library can (see :func:`_wider_float`), which the final
    rounding to float32 then hides.  The gradient is still ``exp(z)``
    everywhere.  The marked entry is an index, not a test ``z == 0``: under a
    caller's ``jax.jit`` XLA may recompute ``z`` in each fusion with different
    rounding, and a sum that depends on exact zeros (such as one that counts
    them in a second reduction) can then be off by a whole 1; ``expm1`` and
    ``exp`` agree to rounding wherever the mark falls.  ``empty`` marks all
    ``-inf`` slices (``r = -1``), whose log is returned as 0 so that no
    ``-inf - -inf`` is ever formed; callers put ``-inf`` there.

    With ``wide_result`` the log comes back in the wider dtype it was computed
    in (for :func:`logsumexp`, which adds the max before its one rounding).
    """
    wide = _wider_float(xp, z)
    terms = xp.where(_first_max(xp, z, axes), xp.expm1(z), xp.exp(z))
    if wide is None:
        r = xp.sum(terms, axis=axes, keepdims=True)
    else:
        r = xp.sum(terms, axis=axes, keepdims=True, dtype=wide)
    empty = r == -1
    log_s = xp.log1p(xp.where(empty, xp.asarray(0.0, dtype=r.dtype), r))
    if not wide_result and log_s.dtype != z.dtype:
        log_s = xp.astype(log_s, z.dtype)
    return log_s, empty


def softmax(
    x: ArrayT,
    /,
    axis: Axis = -1,
    *,
    temperature: float = 1.0,
    where: ArrayT | np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> ArrayT:
    r"""Probabilities along ``axis``: ``exp(x / T) / sum(exp(x / T))``.

    Parameters
    ----------
    x : array, any shape
        Scores (logits).  NumPy, PyTorch or JAX; the result is of the same kind.
        Integers are promoted to the default floating dtype; float16 and
        bfloat16 are accumulated in float32 and returned in their own dtype.
    axis : int or tuple of ints, default -1
        The axis (or axes) along which the probabilities sum to one.
    temperature : float, default 1.0
        ``T`` above: finite and > 0.  ``T > 1`` flattens the distribution,
        ``T < 1`` sharpens it towards the argmax.
    where : boolean array broadcastable to ``x.shape``, optional
        Entries where ``where`` is False are left out: they get probability 0
        and have no influence on the others, whatever value they hold.
    out : numpy.ndarray, optional
        For NumPy input: an array of exactly the result's shape and dtype
        (C-contiguous or not, or ``x`` itself for an in-place softmax) that
        receives the result and is returned, as with NumPy's ufuncs; it saves
        allocating a new result each call.  Checked before any work: a wrong
        shape or dtype, a read-only array, anything but a NumPy array, or ``out``
        with a PyTorch or JAX ``x`` is refused, and ``out`` is left unchanged
        then; otherwise it is written whole.  An ``out`` that overlaps ``x``
        without being exactly ``x`` is computed aside and copied in.

    Returns
    -------
    array, the shape of ``x`` (``out`` where given)

    Notes
    -----
    Computed as ``exp(z - max(z)) / sum(exp(z - max(z)))`` with ``z = x / T``,
    which is exact algebra and never overflows.  At the edges:

    * ``+inf`` entries share the mass equally: ``[1, inf, inf] -> [0, .5, .5]``
      (SciPy and PyTorch return NaN);
    * a slice that is all ``-inf`` or wholly masked gives zeros, with gradient
      zero (not the NaN of the usual masked-attention bug);
    * a slice holding NaN gives NaN, and no other slice is touched;
    * empty input gives empty output.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import softmax
    >>> softmax(np.array([2.0, 1.0, 0.1]))  # cat, dog, elephant
    array([0.659, 0.2424, 0.0986])
    >>> softmax(np.array([1.0, np.inf, np.inf]))
    array([0. , 0.5, 0.5])
    >>> softmax(np.array([3.0, 1.0, 100.0]), where=np.array([True, True, False]))
    array([0.8808, 0.1192, 0.    ])
    >>> x = np.array([[0.0, 0.0], [0.0, np.log(3.0)]])
    >>> softmax(x, out=x) is x  # in place
    True
    >>> x
    array([[0.5 , 0.5 ],
           [0.25, 0.75]])
    """
    if is_eager_jax(x) and out is None:
        return _eager(softmax, x, axis, where, temperature=validate_temperature(temperature))
    prep = _prepare(x, axis, where, temperature)
    xp, x = prep.xp, prep.x
    if out is not None:
        out = check_out(out, x, tuple(x.shape), prep.out_dtype)
    if prep.empty:
        return write_out(out, xp.astype(x, prep.out_dtype))
    if prep.backend is not None:
        p = _backends.call(
            prep.backend.softmax, x, prep.axes, prep.temperature, prep.out_dtype, out=out
        )
        if p is not None:
            return p
    p = fused(_softmax_core, x, prep.temperature, axes=prep.axes)
    return write_out(out, as_result(cast(xp, p, prep.out_dtype)))


def _softmax_core(x: Array, temperature: Any, *, axes: tuple[int, ...]) -> Array:
    xp = namespace(x)
    z, _ = _shifted(xp, x, axes, temperature)
    e = xp.exp(z)
    wide = _wider_float(xp, e)
    if wide is None:
        s = xp.sum(e, axis=axes, keepdims=True)
    else:
        # float32 summed in float64 and rounded once: a float32 sum's error grows with the
        # row (35 eps seen at 4097 entries), and the division in float32 keeps e's memory
        s = xp.astype(xp.sum(e, axis=axes, keepdims=True, dtype=wide), e.dtype)
    # s == 0 only for an all -inf slice, whose numerators are all 0 too.
    return e / xp.where(s == 0, xp.asarray(1.0, dtype=s.dtype), s)


def log_softmax(
    x: ArrayT,
    /,
    axis: Axis = -1,
    *,
    temperature: float = 1.0,
    where: ArrayT | np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> ArrayT:
    r"""Log-probabilities along ``axis``: ``x / T - logsumexp(x / T)``.

    Takes the same arguments as :func:`softmax`, ``out=`` included.  Computed as
    ``z - log(sum(exp(z)))`` with ``z = (x - max) / T``, never as
    ``log(softmax(x))``, so that probabilities far below the smallest float
    keep their exact logarithm.  The log is taken as ``log1p`` of the terms
    other than the max's ``exp(0) = 1``, so a log-probability near 0 (one
    entry dominating) keeps full relative accuracy too, where
    ``log(sum(...))`` would lose digits.

    Entries that are ``-inf`` or masked out give ``-inf`` and receive gradient
    0; an all ``-inf`` or wholly masked slice gives ``-inf`` throughout.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import log_softmax
    >>> log_softmax(np.array([0.0, -1000.0]))  # exp(-1000) underflows; its log does not
    array([    0., -1000.])
    >>> logp = np.empty(2)
    >>> log_softmax(np.array([0.0, 0.0]), out=logp) is logp
    True
    """
    if is_eager_jax(x) and out is None:
        return _eager(log_softmax, x, axis, where, temperature=validate_temperature(temperature))
    prep = _prepare(x, axis, where, temperature)
    xp, x = prep.xp, prep.x
    if out is not None:
        out = check_out(out, x, tuple(x.shape), prep.out_dtype)
    if prep.empty:
        return write_out(out, xp.astype(x, prep.out_dtype))
    if prep.backend is not None:
        logp = _backends.call(
            prep.backend.log_softmax, x, prep.axes, prep.temperature, prep.out_dtype, out=out
        )
        if logp is not None:
            return logp
    logp = fused(_log_softmax_core, x, prep.temperature, axes=prep.axes)
    return write_out(out, as_result(cast(xp, logp, prep.out_dtype)))


def _log_softmax_core(x: Array, temperature: Any, *, axes: tuple[int, ...]) -> Array:
    xp = namespace(x)
    z, _ = _shifted(xp, x, axes, temperature)
    out = z - _log_sum(xp, z, axes)[0]
    if _in_graph(x):
        # The -inf entries do not depend on x: a constant there (not z, which
        # is x - max and would pass the gradient on) gives them gradient 0, as
        # log_softmax_backward has it.
        out = xp.where(z == -xp.inf, xp.asarray(-xp.inf, dtype=z.dtype), out)
    return out


def logsumexp(
    x: ArrayT,
    /,
    axis: Axis = -1,
    *,
    keepdims: bool = False,
    where: ArrayT | np.ndarray | None = None,
) -> ArrayT:
    r"""The smooth maximum ``log(sum(exp(x)))`` along ``axis``.

    Parameters
    ----------
    x : array
        Any real array (NumPy, PyTorch or JAX).
    axis : int or tuple of ints, default -1
        The axes reduced.
    keepdims : bool, default False
        Keep the reduced axes with length 1.
    where : boolean array broadcastable to ``x.shape``, optional
        Only entries where ``where`` is True take part.

    Returns
    -------
    array, the shape of ``x`` without ``axis`` (or with length 1 there)

    Notes
    -----
    ``logsumexp(x) = m + log(sum(exp(x - m)))`` with ``m = max(x)``, the log
    taken as ``log1p`` of the terms other than the max's (as in
    :func:`log_softmax`).  Its gradient is ``softmax(x)``.  An empty, all
    ``-inf`` or wholly masked slice gives ``-inf``; a slice holding ``+inf``
    gives ``+inf``; NaN gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import logsumexp
    >>> logsumexp(np.array([1000.0, 1000.0]))  # 1000 + log 2, no overflow
    array(1000.6931)
    >>> logsumexp(np.array([]))
    array(-inf)
    """
    keepdims = check_flag(keepdims, "keepdims")
    if is_eager_jax(x):
        return _eager(logsumexp, x, axis, where, keepdims=keepdims)
    prep = _prepare(x, axis, where)
    xp, x = prep.xp, prep.x
    if prep.empty:
        shape = tuple(1 if i in prep.axes else n for i, n in enumerate(x.shape))
        out = xp.full(shape, -xp.inf, dtype=prep.out_dtype, device=array_api_compat.device(x))
        return as_result(out if keepdims else xp.squeeze(out, axis=prep.axes))
    out = None
    if prep.backend is not None:
        out = prep.backend.logsumexp(x, prep.axes, prep.out_dtype)
    if out is None:
        out = cast(xp, fused(_logsumexp_core, x, axes=prep.axes), prep.out_dtype)
    return as_result(out if keepdims else xp.squeeze(out, axis=prep.axes))


def _logsumexp_core(x: Array, *, axes: tuple[int, ...]) -> Array:
    """With the reduced axes kept."""
    xp = namespace(x)
    z, m = _shifted(xp, x, axes, 1.0)
    shift = xp.where(xp.isfinite(m), m, xp.asarray(0.0, dtype=x.dtype))
    # The log in float64 for float32 input, and the max added there: rounding the log to
    # float32 first costs up to an ulp of the log, hundreds of ulp of a result near 0.
    log_s, empty = _log_sum(xp, z, axes, wide_result=True)
    if log_s.dtype != x.dtype:
        shift = xp.astype(shift, log_s.dtype)
    out = xp.astype(log_s + shift, x.dtype)
    out = xp.where(empty, xp.asarray(-xp.inf, dtype=x.dtype), out)
    return xp.where(m == xp.inf, m, out)


def _first_position(mask: Array) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(to_numpy(mask))[0])


def _bad_counts(xp: ModuleType, c: Array) -> Array:
    """Where ``c`` is not a valid count: not finite, or negative."""
    return ~xp.isfinite(c) | (c < 0)


def _check_counts(xp: ModuleType, c: Array) -> None:
    bad = _bad_counts(xp, c)
    if bool(xp.any(bad)):
        pos = _first_position(bad)
        raise SoftmaxkitValueError(
            f"`counts` must be finite and non-negative; position {pos} holds "
            f"{to_numpy(c)[pos].item()!r}"
        )


def _check_totals(xp: ModuleType, total: Array, axes: tuple[int, ...]) -> None:
    if bool(xp.any(total == 0)):
        pos = _first_position(total == 0)
        raise SoftmaxkitValueError(
            f"`counts` must have a positive total along `axis` {axes}; the slice "
            f"starting at position {pos} sums to 0"
        )


def _pmf_normalize_flagged(counts: Array, *, axis: tuple[int, ...]) -> tuple[Array, Array]:
    """``(pmf_normalize(counts, axis), refused)``, traced: ``refused`` says a check fails."""
    xp = namespace(counts)
    c = cast(xp, counts, compute_dtype(xp, counts.dtype)[0])
    total = xp.sum(c, axis=axis, keepdims=True)
    refused = xp.any(_bad_counts(xp, c)) | xp.any(total == 0)
    return pmf_normalize(counts, axis), refused


def _pmf_normalize_eager(counts: Array, axis: Axis) -> Array:
    """:func:`pmf_normalize` of an eager JAX array as one computation, its checks included.

    The value checks are computed in the same computation as the result, as one flag;
    only a refused input is inspected again on the host, to name the position.
    """
    axes = normalize_axis(axis, counts.ndim)
    if math.prod(counts.shape) == 0:
        return whole_jit(pmf_normalize, (counts,), {}, {"axis": axes})
    p, refused = whole_jit(_pmf_normalize_flagged, (counts,), {}, {"axis": axes})
    if bool(refused):
        xp = namespace(counts)
        c = cast(xp, counts, compute_dtype(xp, counts.dtype)[0])
        _check_counts(xp, c)
        _check_totals(xp, xp.sum(c, axis=axes, keepdims=True), axes)
    return p


def pmf_normalize(counts: ArrayT, /, axis: Axis = -1, *, out: np.ndarray | None = None) -> ArrayT:
    r"""Counts divided by their total along ``axis``: the frequentist PMF.

    ``p[k] = counts[k] / sum(counts)``: the linear cousin of :func:`softmax`,
    for values that are already non-negative (observed frequencies).

    Parameters
    ----------
    counts : array
        Finite, non-negative values; each slice along ``axis`` must have a
        positive total.  Integers are promoted to the default floating dtype.
    axis : int or tuple of ints, default -1
    out : numpy.ndarray, optional
        For NumPy input, the array that receives the result and is returned,
        as in :func:`softmax` (``counts`` itself for a normalisation in place,
        where its dtype is the result's).  A refused count leaves it unchanged.

    Raises
    ------
    SoftmaxkitValueError
        For a negative or non-finite count, or a slice that sums to 0, naming
        the first offending position.  (Under ``jax.jit`` the values cannot be
        inspected and are not checked.  Torch tensors under ``torch.func.vmap``
        are checked without the position; under ``torch.compile`` the check is a
        device-side assertion, which raises PyTorch's ``RuntimeError`` when the
        graph runs; meta tensors have no values to check.)

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import pmf_normalize
    >>> pmf_normalize(np.array([100, 300, 600]))  # bicycles, trucks, cars in an hour
    array([0.1, 0.3, 0.6])
    >>> p = np.empty(3)
    >>> pmf_normalize(np.array([1, 1, 2]), out=p) is p
    True
    """
    if is_eager_jax(counts) and out is None:
        return _pmf_normalize_eager(counts, axis)
    counts = as_array(counts, "counts")
    xp = namespace(counts)
    axes = normalize_axis(axis, counts.ndim)
    work, out_dtype = compute_dtype(xp, counts.dtype)
    if out is not None:
        out = check_out(out, counts, tuple(counts.shape), out_dtype, x_name="counts")
    c = cast(xp, counts, work)
    if math.prod(c.shape) == 0:
        return write_out(out, as_result(xp.astype(c, out_dtype)))
    concrete = is_concrete(c)
    # a torch tensor whose values the host cannot read (meta, under torch.compile or
    # vmap): the torch backend checks them as it can there, without the position
    check = None if concrete or not is_torch(c) else _backends.torch_backend().check
    if concrete:
        _check_counts(xp, c)
    elif check is not None:
        check(xp.isfinite(c) & (c >= 0), "`counts` must be finite and non-negative")
    with numpy_quiet(c, over="ignore"):  # an overflowing total is rescued below
        total = xp.sum(c, axis=axes, keepdims=True)
    if concrete:
        _check_totals(xp, total, axes)
    if check is not None:
        check(total != 0, f"`counts` must have a positive total along `axis` {axes}")
    overflow = total == xp.inf
    if not concrete or bool(xp.any(overflow)):
        # Counts near the largest float: scale those slices by 2**-64, which is
        # exact (so p keeps its single rounding) and leaves room for any length.
        # Not by the max: XLA divides through a reciprocal that flushes to 0.
        one = xp.asarray(1.0, dtype=work)
        c = c * xp.where(overflow, xp.asarray(2.0**-64, dtype=work), one)
        total = xp.where(overflow, xp.sum(c, axis=axes, keepdims=True), total)
    if out is not None and out.dtype == c.dtype:
        # straight into out, no new result (NumPy's ufuncs handle any overlap with c)
        return np.divide(c, total, out=out)
    return write_out(out, as_result(cast(xp, c / total, out_dtype)))


def _elementwise(core: Any, x: Array) -> Array:
    """``core`` applied to ``x`` in its working dtype, returned in ``x``'s own."""
    x = as_array(x, "x")
    xp = namespace(x)
    work, out = compute_dtype(xp, x.dtype)
    return as_result(cast(xp, fused(core, cast(xp, x, work)), out))


def _exp_minus_abs(xp: ModuleType, x: Array) -> Array:
    """``exp(-|x|)``, which never overflows."""
    # where(x >= 0, -x, x) rather than -abs(x): abs has no useful gradient at 0.
    return xp.exp(xp.where(x >= 0, -x, x))


def _sigmoid_core(x: Array) -> Array:
    xp = namespace(x)
    e = _exp_minus_abs(xp, x)
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _log_sigmoid_core(x: Array) -> Array:
    xp = namespace(x)
    zero = xp.asarray(0.0, dtype=x.dtype)
    return xp.where(x < 0, x, zero) - xp.log1p(_exp_minus_abs(xp, x))


def sigmoid(x: ArrayT, /) -> ArrayT:
    r"""The logistic function ``1 / (1 + exp(-x))``, elementwise.

    Computed from ``e = exp(-|x|)`` as ``1 / (1 + e)`` for ``x >= 0`` and
    ``e / (1 + e)`` below, so no ``exp`` overflows for any input;
    ``sigmoid(-inf) = 0`` and ``sigmoid(inf) = 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import sigmoid
    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    return _elementwise(_sigmoid_core, x)


def log_sigmoid(x: ArrayT, /) -> ArrayT:
    r"""``log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))``, elementwise.

    Exact for any finite input: ``log_sigmoid(-1000) = -1000``, where
    ``log(sigmoid(-1000))`` would be ``log(0) = -inf``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import log_sigmoid
    >>> log_sigmoid(np.array([-1000.0, 0.0])).tolist()
    [-1000.0, -0.6931]
    """
    return _elementwise(_log_sigmoid_core, x)
