"""Strategies, references and guards for the fuzz suite (tests/test_fuzz_public.py).

Inputs are drawn as float64 values (finite, huge, subnormal, signed zeros, infinities,
NaN), cast to the dtype under test and laid out in memory in one of many ways (strided,
reversed, transposed, Fortran order, broadcast with zero strides, non-native byte order,
unaligned, read-only).  The references decide every documented edge case from the values
the library actually receives (after the cast), in ``np.longdouble``, so that they are
independent of the layout and of any one path's rounding.
"""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import softmaxkit as sk

LD = np.longdouble

# --- guards ----------------------------------------------------------------------------------


class Hang(Exception):
    """Raised inside a call that ran past its time limit (not a library error)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block with :class:`Hang` after ``seconds`` (main thread, POSIX)."""

    def _expire(signum: int, frame: Any) -> None:
        raise Hang(f"the call did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# A message names an argument in backticks: `x`, `target`, `num_sampled`, `weight`...
_NAMED = re.compile(r"`[A-Za-z_][A-Za-z0-9_.\[\]]*`")


@dataclass
class Outcome:
    value: Any = None
    error: sk.SoftmaxkitError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def call(fn: Callable[..., Any], *args: Any, timeout: float = 5.0, **kwargs: Any) -> Outcome:
    """``fn(*args, **kwargs)``: a value, or a SoftmaxkitError naming an argument.

    Anything else (a raw exception, a message naming nothing, a call that does not
    return in ``timeout`` seconds) fails the test with the call spelt out.
    """
    shown = f"{getattr(fn, '__qualname__', fn)}({_describe(args, kwargs)})"
    try:
        with time_limit(timeout):
            value = fn(*args, **kwargs)
    except sk.SoftmaxkitError as exc:
        assert _NAMED.search(str(exc)), f"{shown}: message names no argument: {exc}"
        return Outcome(error=exc)
    except Hang as exc:
        raise AssertionError(f"{shown}: {exc}") from None
    except Exception as exc:
        raise AssertionError(f"{shown}: raw {type(exc).__name__}: {exc}") from exc
    return Outcome(value=value)


def _short(a: Any) -> str:
    if isinstance(a, np.ndarray) or type(a).__module__.startswith(("torch", "jax")):
        dtype = getattr(a, "dtype", "?")
        return f"<{type(a).__name__} {dtype} shape={tuple(a.shape)}>"
    r = repr(a)
    return r if len(r) < 60 else r[:57] + "..."


def _describe(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    parts = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


def expect_ok(outcome: Outcome, what: str) -> Any:
    assert outcome.ok, f"{what}: refused valid input: {outcome.error!r}"
    return outcome.value


def expect_error(outcome: Outcome, what: str, *names: str) -> None:
    assert not outcome.ok, f"{what}: accepted invalid input, returned {outcome.value!r}"
    message = str(outcome.error)
    if names:
        assert any(f"`{n}`" in message for n in names), (
            f"{what}: error names none of {names}: {message}"
        )


# --- values ----------------------------------------------------------------------------------

SPECIALS = (math.inf, -math.inf, math.nan, 0.0, -0.0, 1e308, -1e308, 5e-324, -5e-324, 2.2e-308)


def values(*, specials: bool = True, nan: bool = True, lo: float = -1e3, hi: float = 1e3):
    """Float64 entries: mostly moderate, sometimes special."""
    moderate = st.one_of(
        st.floats(lo, hi, allow_nan=False, allow_infinity=False),
        # small integers: ties, and gaps of 20 to 120 between entries, where a
        # log-probability near 0 is representable but 1 + exp(-gap) rounds to 1
        st.integers(max(int(lo), -120), min(int(hi), 5)).map(float),
    )
    if not specials:
        return moderate
    pool = [s for s in SPECIALS if nan or not math.isnan(s)]
    wide = st.floats(-1.7e308, 1.7e308, allow_nan=False, allow_infinity=False)
    return st.one_of(moderate, moderate, moderate, st.sampled_from(pool), wide)


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 0, max_side: int = 5):
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


# float dtypes the library keeps; integers and booleans become the default float
FLOATS = (np.float16, np.float32, np.float64, np.longdouble)
INTS = (np.int8, np.int32, np.int64, np.uint8, np.uint64)
NUMERIC = (*FLOATS, *INTS, np.bool_)
REFUSED = (np.complex64, np.complex128, np.object_, np.str_, "datetime64[s]", "timedelta64[s]")


def cast_values(v: np.ndarray, dtype: Any) -> np.ndarray:
    """Float64 values as ``dtype``: integers by rounding and clipping, like a user would."""
    dtype = np.dtype(dtype)
    with np.errstate(all="ignore"):
        if dtype.kind == "b":
            return np.asarray(v > 0)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            w = np.nan_to_num(v, nan=0.0, posinf=info.max, neginf=info.min)
            return np.clip(np.round(w), info.min, info.max).astype(dtype)
        if dtype.kind == "c":
            return v.astype(dtype) * (1 + 1j)
        if dtype.kind in "OU":
            return v.astype(dtype)
        if dtype.kind in "mM":
            return np.nan_to_num(v, nan=0, posinf=0, neginf=0).astype(np.int64).astype(dtype)
        return v.astype(dtype)


LAYOUTS = (
    "C",
    "F",
    "reversed",
    "strided",
    "transposed",
    "broadcast",
    "byteswapped",
    "unaligned",
    "readonly",
)


def lay_out(a: np.ndarray, layout: str, axis: int = 0) -> np.ndarray:
    """An array of ``a``'s values (``broadcast``: of its first slice along ``axis``) laid out so."""
    a = np.array(a)
    if a.ndim == 0 and layout not in ("byteswapped", "unaligned", "readonly"):
        return a
    axis = axis % max(a.ndim, 1)
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "reversed":
        return np.flip(np.ascontiguousarray(np.flip(a, axis)), axis)
    if layout == "strided":
        big = np.zeros(tuple(2 * n + 1 for n in a.shape), dtype=a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if layout == "transposed":
        perm = tuple(reversed(range(a.ndim)))
        return np.transpose(np.ascontiguousarray(np.transpose(a, perm)), perm)
    if layout == "broadcast":
        if a.shape[axis] == 0:
            return a
        first = np.take(a, [0], axis=axis)
        return np.broadcast_to(first, a.shape)
    if layout == "byteswapped":
        if a.dtype.kind not in "iufc" or a.dtype.itemsize == 1:
            return a
        return a.astype(a.dtype.newbyteorder("S"))
    if layout == "unaligned":
        if a.dtype.kind in "OU" or a.dtype.itemsize == 1:
            return a
        buf = np.zeros(a.nbytes + 1, np.uint8)
        v = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        v[...] = a
        return v
    if layout == "readonly":
        a.flags.writeable = False
        return a
    raise AssertionError(layout)


@st.composite
def numpy_inputs(
    draw: Any,
    *,
    dtypes: tuple[Any, ...] = NUMERIC,
    min_dims: int = 0,
    max_dims: int = 3,
    min_side: int = 0,
    max_side: int = 5,
    specials: bool = True,
    nan: bool = True,
    lo: float = -1e3,
    hi: float = 1e3,
) -> np.ndarray:
    """A NumPy array of a drawn dtype, shape, values and memory layout."""
    # float32 and float64 drawn most often: they are what the kernels serve
    common = [d for d in dtypes if d in (np.float32, np.float64)]
    dtype = draw(st.sampled_from([*dtypes, *common, *common]), label="dtype")
    if max_dims >= 1 and draw(st.integers(0, 9)) == 0:
        # now and then a longer row: the kernels switch paths above 16 entries
        shape = (*draw(shapes(max(min_dims - 1, 0), max_dims - 1, 1, 3)), draw(st.integers(17, 40)))
    else:
        shape = draw(shapes(min_dims, max_dims, min_side, max_side), label="shape")
    v = draw(
        hnp.arrays(np.float64, shape, elements=values(specials=specials, nan=nan, lo=lo, hi=hi))
    )
    layout = draw(st.sampled_from(LAYOUTS), label="layout")
    axis = draw(st.integers(0, 3))
    return lay_out(cast_values(v, dtype), layout, axis)


def axes_for(ndim: int, *, tuples: bool = True, bad: bool = True):
    """An ``axis`` argument: ints, negatives, tuples, None, and (if ``bad``) invalid ones."""
    good: list[Any] = [st.none()] if tuples else []
    if ndim:
        good.append(st.integers(-ndim, ndim - 1))
        if tuples:
            good.append(
                st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(
                    lambda axes: tuple(a - ndim if i % 2 else a for i, a in enumerate(axes))
                )
            )
    elif tuples:
        good.append(st.just(()))
    invalid = st.sampled_from([ndim, -ndim - 1, 2**70, 1.0, "0", (0, 0), [None], True])
    options = [*good, invalid] if bad else good
    return st.one_of(*options) if options else st.just(-1)


def axis_valid(axis: Any, ndim: int, *, tuples: bool = True) -> tuple[int, ...] | None:
    """The normalised axes, or None if ``axis`` is invalid (bool included: not an int)."""
    if axis is None:
        return tuple(range(ndim)) if tuples else None
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    if not tuples and not isinstance(axis, (int, np.integer)):
        return None
    out = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            return None
        if ndim == 0 or not -ndim <= a < ndim:
            return None
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        return None
    return tuple(sorted(out))


# --- references ------------------------------------------------------------------------------


def work_dtype(dtype: Any, default: Any = np.float64) -> np.dtype:
    """The dtype the library computes in: float32 for 16-bit floats, the default for ints."""
    name = getattr(dtype, "name", str(dtype))
    if name in ("float16", "bfloat16"):
        return np.dtype(np.float32)
    d = np.dtype(dtype) if name != "bfloat16" else None
    if d is not None and d.kind == "f":
        return d.newbyteorder("=")
    return np.dtype(default)


def eps(dtype: Any) -> float:
    name = getattr(dtype, "name", str(dtype))
    if name == "bfloat16":
        return 2.0**-8
    return float(np.finfo(np.dtype(dtype)).eps)


def tiny_subnormal(dtype: Any) -> float:
    name = getattr(dtype, "name", str(dtype))
    if name == "bfloat16":
        return 9.2e-41
    return float(np.finfo(np.dtype(dtype)).smallest_subnormal)


@dataclass
class SoftmaxRef:
    """The exact results of the family on one input, in longdouble, with error bounds."""

    p: np.ndarray
    logp: np.ndarray
    lse: np.ndarray  # reduced axes kept
    tol_logp: np.ndarray  # bounds for the work dtype's rounding
    tol_lse: np.ndarray


def softmax_reference(
    x: np.ndarray, axes: tuple[int, ...], temperature: float, where: Any, work: Any
) -> SoftmaxRef:
    """README semantics: max shift, +inf entries share the mass, all -inf slices give
    0 / -inf, NaN fills its slice, masked entries are -inf whatever they hold."""
    x = np.asarray(x).astype(LD)
    if where is not None:
        x = np.where(np.broadcast_to(np.asarray(where), x.shape), x, -np.inf).astype(LD)
    shape_kept = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    n = math.prod(x.shape[a] for a in axes)
    if n == 0:
        empty = np.zeros(x.shape, LD)
        lse = np.full(shape_kept, -np.inf, LD)
        return SoftmaxRef(empty, empty, lse, empty, np.zeros(shape_kept, LD))
    with np.errstate(all="ignore"):
        m = np.max(x, axis=axes, keepdims=True)
        finite = np.isfinite(m)
        m0 = np.where(finite, m, 0)
        z = (x - m0) / LD(temperature)
        e = np.exp(z)
        s = np.sum(e, axis=axes, keepdims=True)
        # log(s) as log1p(s - 1), with the first max's exp(0) = 1 left out of the sum:
        # log of a sum near 1 would lose the relative accuracy of a log-probability near 0
        first = _first_max(z, axes)
        log_s = np.log1p(np.sum(np.where(first, 0, e), axis=axes, keepdims=True))
        logp = z - log_s
        p = e / s
        e1 = np.exp(x - m0)
        lse = m0 + np.log1p(np.sum(np.where(first, 0, e1), axis=axes, keepdims=True))
        # +inf slices: the +inf entries share the mass
        inf = x == np.inf
        k = np.sum(inf, axis=axes, keepdims=True)
        top = m == np.inf
        p = np.where(top, np.where(inf, 1 / np.maximum(k, 1).astype(LD), 0), p)
        logp = np.where(top, np.where(inf, -np.log(np.maximum(k, 1).astype(LD)), -np.inf), logp)
        lse = np.where(top, np.inf, lse)
        bottom = m == -np.inf
        p = np.where(bottom, 0, p)
        logp = np.where(bottom, -np.inf, logp)
        lse = np.where(bottom, -np.inf, lse)
        nan = np.isnan(m)
        p = np.where(nan, np.nan, p)
        logp = np.where(nan, np.nan, logp)
        lse = np.where(nan, np.nan, lse)
        # error bounds: the rounding of each z_j = (x_j - max) / T (twice |z_j| eps), of exp
        # and of the sum (relative to the mass off the max, 1 - p_max), times a factor for
        # the length of the slice; logsumexp's (temperature 1) adds the max's own rounding
        ew = eps(work)
        factor = 2 * n + 16
        az = np.where(np.isfinite(z), np.abs(z), 0)
        pz = np.where(np.isfinite(p), p, 0)
        spread = np.sum(pz * az, axis=axes, keepdims=True)
        off_max = np.clip(1 - np.max(pz, axis=axes, keepdims=True), 0, 1)
        tol_logp = factor * ew * (az + spread + off_max)
        tol_lse = (
            factor * ew * (spread + off_max)
            if temperature == 1
            else np.full(shape_kept, np.nan, LD)
        )
    return SoftmaxRef(p, logp, lse, tol_logp, tol_lse)


def _first_max(z: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """One True per slice over ``axes``: the first position of the slice's max."""
    rest = tuple(a for a in range(z.ndim) if a not in axes)
    moved = np.transpose(z, (*rest, *axes))
    size = math.prod(z.shape[a] for a in axes)
    flat = moved.reshape((*moved.shape[: len(rest)], size))
    with np.errstate(invalid="ignore"):
        index = np.argmax(np.where(np.isnan(flat), -np.inf, flat), axis=-1)
    hot = np.arange(flat.shape[-1]) == index[..., None]
    inverse = np.argsort((*rest, *axes))
    return np.transpose(hot.reshape(moved.shape), tuple(inverse))


def assert_close(
    got: np.ndarray,
    want: np.ndarray,
    tol: np.ndarray | float,
    out_dtype: Any,
    what: str,
    *,
    relative_out: float = 2.0,
) -> None:
    """Same NaN and infinity pattern, and |got - want| <= tol + rounding to ``out_dtype``."""
    got = np.asarray(got).astype(LD)
    want = np.asarray(want).astype(LD)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    if got.size == 0:
        return
    # the reference rounded to the output dtype: the infinities and NaN it must have
    with np.errstate(all="ignore"):
        rounded = want.astype(np.float64)
        if getattr(out_dtype, "name", "") != "bfloat16" and np.dtype(out_dtype) != LD:
            rounded = want.astype(np.dtype(out_dtype)).astype(LD)
        else:
            rounded = want
    bad_nan = np.isnan(got) != np.isnan(rounded)
    assert not bad_nan.any(), _mismatch(
        got, want, bad_nan, what, "NaN where the reference has none, or none where it has NaN"
    )
    inf_got = np.isinf(got)
    inf_want = np.isinf(rounded)
    both = inf_got & inf_want
    bad_inf = (inf_got != inf_want) | (both & (np.sign(got) != np.sign(rounded)))
    # an entry whose exact value is just past the largest float may round either way
    bad_inf &= ~(np.isinf(rounded) & ~np.isinf(want) & (np.abs(got) > 0.99 * _max(out_dtype)))
    bad_inf &= ~(np.isinf(got) & ~np.isinf(want) & (np.abs(want) > 0.99 * _max(out_dtype)))
    assert not bad_inf.any(), _mismatch(got, want, bad_inf, what, "infinity mismatch")
    finite = np.isfinite(got) & np.isfinite(want)
    with np.errstate(all="ignore"):
        limit = (
            np.broadcast_to(np.asarray(tol, LD), want.shape)
            + relative_out * eps(out_dtype) * np.abs(want)
            + 2 * tiny_subnormal(out_dtype)
        )
        err = np.abs(got - want)
    bad = finite & ~(err <= limit)
    assert not bad.any(), _mismatch(got, want, bad, what, "outside the error bound", err, limit)


def _max(dtype: Any) -> float:
    name = getattr(dtype, "name", str(dtype))
    if name == "bfloat16":
        return 3.39e38
    return float(np.finfo(np.dtype(dtype)).max)


def _mismatch(got, want, mask, what, why, err=None, limit=None) -> str:
    pos = tuple(int(i) for i in np.argwhere(mask)[0])
    line = f"{what}: {why} at {pos}: got {got[pos]!r}, expected {want[pos]!r}"
    if err is not None:
        line += f" (error {float(err[pos]):.3g} > bound {float(limit[pos]):.3g})"
    return line + f"; {int(mask.sum())} of {mask.size} entries"
