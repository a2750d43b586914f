"""Property-based fuzzing of the public API (issue 17, "How to prove it").

Every call either returns what the reference returns (the README's edge-case rules
evaluated in long double, PyTorch's own functions for the losses, SciPy for the
elementwise functions), or raises a ``SoftmaxkitError`` whose message names an argument
in backticks; never a raw exception, a hang (each call runs under a time limit) or a NaN
the README does not promise.  Inputs vary in dtype, memory layout, shape (empty and 0-d
included), special values and options; every NumPy call runs with the kernels on and off,
and the same inputs run on PyTorch (each of its paths) and JAX, which must agree.

The examples are fixed (``derandomize``) and bounded so that the file runs in about a
minute on two cores; nothing is written to a hypothesis database.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special
import torch
import torch.nn.functional as F
from fuzz_strategies import (
    LD,
    NUMERIC,
    REFUSED,
    assert_close,
    axes_for,
    axis_valid,
    call,
    cast_values,
    eps,
    expect_error,
    expect_ok,
    numpy_inputs,
    shapes,
    softmax_reference,
    values,
    work_dtype,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import softmaxkit as sk
from softmaxkit import _kernels
from softmaxkit._backends import _torch as torch_backend

settings.register_profile(
    "fuzz",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("fuzz")


def fuzz(max_examples: int) -> Any:
    return settings(FUZZ, max_examples=max_examples)


NUMPY_PATHS = ("kernels", "portable")
TORCH_PATHS = ("operators", "fused", "portable")


def numpy_path(path: str) -> Any:
    return _kernels.use(path == "kernels")


def torch_path(path: str) -> Any:
    return torch_backend.use_path(path)


# --- the softmax family ---------------------------------------------------------------------

FAMILY = ("softmax", "log_softmax", "logsumexp")

GOOD_TEMPERATURES = st.one_of(
    st.just(1.0),
    st.floats(1e-3, 1e3),
    st.sampled_from([2, np.float32(0.5), np.float64(3.0), 1e-300, 1e300]),
)
BAD_TEMPERATURES = st.sampled_from(
    [0.0, -1.0, math.inf, math.nan, -0.0, "2", None, True, 1j, np.array([1.0, 2.0])]
)


def temperature_valid(t: Any) -> bool:
    if isinstance(t, (bool, np.bool_, str)) or t is None:
        return False
    if isinstance(t, np.ndarray) and t.size != 1:
        return False
    try:
        value = float(t)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and value > 0


@st.composite
def masks(draw: Any, shape: tuple[int, ...]) -> Any:
    """``where``: None, a boolean array broadcasting to ``shape`` (or a list), or a bad one."""
    kind = draw(st.sampled_from(["none", "none", "full", "broadcast", "list", "bad"]))
    if kind == "none":
        return None
    if kind == "bad":
        bad = [
            np.ones(shape, np.int64),
            np.ones((*shape, 2), bool),
            np.ones(tuple(n + 1 for n in shape) or (2,), bool),
            "yes",
        ]
        return draw(st.sampled_from(bad))
    if kind == "broadcast" and shape:
        cut = draw(st.integers(0, len(shape)))
        sub = tuple(1 if draw(st.booleans()) else n for n in shape[cut:])
    else:
        sub = shape
    mask = draw(hnp.arrays(np.bool_, sub))
    return mask.tolist() if kind == "list" else mask


def where_valid(where: Any, shape: tuple[int, ...]) -> bool:
    if where is None:
        return True
    w = np.asarray(where)
    if w.dtype != np.bool_:
        return False
    try:
        return np.broadcast_shapes(w.shape, shape) == shape
    except ValueError:
        return False


def _keepdims_valid(k: Any) -> bool:
    return isinstance(k, (bool, np.bool_))


@st.composite
def family_calls(draw: Any, inputs: Any) -> dict[str, Any]:
    """One call of softmax, log_softmax or logsumexp, with options good and bad."""
    x = draw(inputs)
    name = draw(st.sampled_from(FAMILY), label="function")
    shape = tuple(np.shape(x))
    kwargs: dict[str, Any] = {"axis": draw(axes_for(len(shape)), label="axis")}
    if name != "logsumexp":
        if draw(st.booleans()):
            kwargs["temperature"] = draw(
                st.one_of(GOOD_TEMPERATURES, GOOD_TEMPERATURES, BAD_TEMPERATURES)
            )
    elif draw(st.booleans()):
        kwargs["keepdims"] = draw(st.sampled_from([True, False, np.True_, "no"]))
    kwargs["where"] = draw(masks(shape))
    return {"name": name, "x": x, "kwargs": kwargs}


def family_invalid(c: dict[str, Any], refused_dtype: bool) -> list[str]:
    """The arguments of a family call that must be refused (empty: a valid call)."""
    kwargs, shape = c["kwargs"], tuple(np.shape(c["x"]))
    bad = []
    if refused_dtype:
        bad.append("x")
    if axis_valid(kwargs["axis"], len(shape)) is None:
        bad.append("axis")
    if "temperature" in kwargs and not temperature_valid(kwargs["temperature"]):
        bad.append("temperature")
    if "keepdims" in kwargs and not _keepdims_valid(kwargs["keepdims"]):
        bad.append("keepdims")
    if not where_valid(kwargs["where"], shape):
        bad.append("where")
    return bad


def check_family_result(
    out: Any,
    c: dict[str, Any],
    values64: np.ndarray,
    work: Any,
    out_dtype: Any,
    what: str,
    flush: float = 0.0,
) -> None:
    """``out`` against the long-double reference of ``c``'s call on ``values64``."""
    name, kwargs = c["name"], c["kwargs"]
    ndim = values64.ndim
    axes = axis_valid(kwargs["axis"], ndim)
    assert axes is not None
    t = float(kwargs.get("temperature", 1.0))
    where = kwargs["where"]
    ref = softmax_reference(values64, axes, t, where, work)
    if flush:
        ref.tol_logp = ref.tol_logp + 4 * flush / t
        ref.tol_lse = ref.tol_lse + 4 * flush
    got = to_numpy(out)
    if name == "softmax":
        # a probability's relative error is its log's absolute error
        assert_close(got, ref.p, ref.tol_logp * ref.p.astype(LD) + flush, out_dtype, what)
    elif name == "log_softmax":
        assert_close(got, ref.logp, ref.tol_logp, out_dtype, what)
    else:
        keep = bool(kwargs.get("keepdims", False))
        lse, tol = ref.lse, ref.tol_lse
        if not keep:
            lse, tol = np.squeeze(lse, axis=axes), np.squeeze(tol, axis=axes)
        assert_close(got, lse, tol, out_dtype, what)


def to_numpy(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach()
        if a.dtype == torch.bfloat16:
            a = a.float()
        return a.numpy()
    return np.asarray(a)


@fuzz(300)
@given(c=family_calls(numpy_inputs(dtypes=NUMERIC + REFUSED)))
def test_family_on_numpy_matches_the_reference_or_refuses(c):
    """softmax / log_softmax / logsumexp on NumPy, kernels on and off."""
    x = c["x"]
    refused = x.dtype.kind not in "biuf"
    invalid = family_invalid(c, refused)
    fn = getattr(sk, c["name"])
    results = {}
    for path in NUMPY_PATHS:
        with numpy_path(path):
            outcome = call(fn, x, **c["kwargs"])
        what = (
            f"{c['name']} on NumPy ({path}, {x.dtype}, shape {x.shape}, strides {x.strides}, "
            f"aligned {x.flags.aligned}, writeable {x.flags.writeable})"
        )
        if invalid:
            expect_error(outcome, what, *invalid)
            continue
        out = expect_ok(outcome, what)
        assert type(out) is np.ndarray, f"{what}: returned {type(out).__name__}"
        work = work_dtype(x.dtype)
        out_dtype = (
            work
            if x.dtype.kind == "f" and x.dtype.itemsize >= 4
            else (x.dtype if x.dtype.kind == "f" else np.dtype(np.float64))
        )
        assert out.dtype.newbyteorder("=") == np.dtype(out_dtype).newbyteorder("="), (
            f"{what}: dtype {out.dtype}, expected {out_dtype}"
        )
        values64 = np.asarray(x).astype(work)
        check_family_result(out, c, values64, work, out_dtype, what)
        results[path] = out
    if len(results) == 2:
        assert_paths_agree(results, c["name"])


def assert_paths_agree(results: dict[str, Any], what: str) -> None:
    """The same NaN pattern and the same sign of every zero on every path."""
    items = [(k, to_numpy(v).astype(np.float64)) for k, v in results.items()]
    base_name, base = items[0]
    for name, other in items[1:]:
        assert other.shape == base.shape, f"{what}: {name} shape {other.shape} vs {base.shape}"
        nan = np.isnan(other) != np.isnan(base)
        assert not nan.any(), (
            f"{what}: NaN on {name} but not on {base_name} (or back) at {np.argwhere(nan)[0]}"
        )
        zero = (other == 0) & (base == 0) & (np.signbit(other) != np.signbit(base))
        assert not zero.any(), (
            f"{what}: {name} and {base_name} disagree on the sign of zero at "
            f"{tuple(np.argwhere(zero)[0])}: {other[tuple(np.argwhere(zero)[0])]} vs "
            f"{base[tuple(np.argwhere(zero)[0])]}"
        )


TORCH_DTYPES = (
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.int32,
    torch.int64,
    torch.uint8,
    torch.bool,
    torch.complex64,
)


@st.composite
def torch_inputs(draw: Any, *, dtypes: tuple[Any, ...] = TORCH_DTYPES, **kw: Any) -> torch.Tensor:
    dtype = draw(st.sampled_from(dtypes), label="dtype")
    base = draw(numpy_inputs(dtypes=(np.float64,), **kw).map(lambda a: np.array(a, np.float64)))
    if dtype == torch.bool:
        t = torch.from_numpy(np.asarray(base > 0))
    elif dtype in (torch.int32, torch.int64, torch.uint8):
        np_dtype = {torch.int32: np.int32, torch.int64: np.int64, torch.uint8: np.uint8}[dtype]
        t = torch.from_numpy(np.asarray(cast_values(base, np_dtype)))
    elif dtype == torch.complex64:
        t = torch.from_numpy(base).to(dtype)
    else:
        t = torch.from_numpy(base).to(dtype)
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided", "expanded"]))
    if t.ndim >= 2 and layout == "transposed":
        t = t.transpose(0, -1).contiguous().transpose(0, -1)
    elif t.ndim >= 1 and layout == "strided":
        big = torch.zeros((2 * t.shape[0], *t.shape[1:]), dtype=t.dtype)
        big[::2] = t
        t = big[::2]
    elif t.ndim >= 1 and layout == "expanded" and t.shape[0] > 0:
        t = t[:1].expand(t.shape)
    return t


def torch_values64(t: torch.Tensor, work: Any) -> np.ndarray:
    return t.detach().to(torch.float64).numpy().astype(work)


@fuzz(200)
@given(c=family_calls(torch_inputs()), path=st.sampled_from(TORCH_PATHS))
def test_family_on_torch_matches_the_reference_or_refuses(c, path):
    x = c["x"]
    refused = x.dtype.is_complex
    invalid = family_invalid(c, refused)
    fn = getattr(sk, c["name"])
    with torch_path(path):
        outcome = call(fn, x, **c["kwargs"])
    what = f"{c['name']} on torch ({path}, {x.dtype}, shape {tuple(x.shape)})"
    if invalid:
        expect_error(outcome, what, *invalid)
        return
    out = expect_ok(outcome, what)
    assert isinstance(out, torch.Tensor), f"{what}: returned {type(out).__name__}"
    floating = x.dtype.is_floating_point
    expected = x.dtype if floating else torch.get_default_dtype()
    assert out.dtype == expected, f"{what}: dtype {out.dtype}, expected {expected}"
    work = np.float32 if x.dtype in (torch.float16, torch.bfloat16, torch.float32) else np.float64
    if not floating:
        work = np.float32 if torch.get_default_dtype() == torch.float32 else np.float64
    out_np = {torch.float16: np.float16, torch.bfloat16: "bfloat16"}.get(x.dtype, work)
    if out_np == "bfloat16":

        class _B:
            name = "bfloat16"

        out_np = _B()
    check_family_result(out, c, torch_values64(x, work), np.dtype(work), out_np, what)


# JAX compiles each new shape: a few shapes keep the compilations cached.
JAX_SHAPES = [(), (0,), (3,), (2, 3), (3, 0), (2, 1, 4)]
JAX_DTYPES = (
    jnp.float16,
    jnp.bfloat16,
    jnp.float32,
    jnp.float64,
    jnp.int32,
    jnp.bool_,
    jnp.complex64,
)


@st.composite
def jax_inputs(draw: Any) -> Any:
    shape = draw(st.sampled_from(JAX_SHAPES))
    dtype = draw(st.sampled_from(JAX_DTYPES))
    v = draw(hnp.arrays(np.float64, shape, elements=values()))
    if dtype == jnp.bool_:
        return jnp.asarray(v > 0)
    if dtype == jnp.int32:
        return jnp.asarray(cast_values(v, np.int32))
    with np.errstate(all="ignore"):
        return jnp.asarray(v).astype(dtype)


@fuzz(120)
@given(c=family_calls(jax_inputs()))
def test_family_on_jax_matches_the_reference_or_refuses(c):
    x = c["x"]
    refused = jnp.issubdtype(x.dtype, jnp.complexfloating)
    invalid = family_invalid(c, refused)
    fn = getattr(sk, c["name"])
    outcome = call(fn, x, timeout=30.0, **c["kwargs"])
    what = f"{c['name']} on JAX ({x.dtype}, shape {x.shape})"
    if invalid:
        expect_error(outcome, what, *invalid)
        return
    out = expect_ok(outcome, what)
    assert isinstance(out, jax.Array), f"{what}: returned {type(out).__name__}"
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    expected = x.dtype if floating else jnp.float64
    assert out.dtype == expected, f"{what}: dtype {out.dtype}, expected {expected}"
    name = np.dtype(x.dtype).name
    work = np.float32 if name in ("float16", "bfloat16", "float32") else np.float64
    out_dtype = x.dtype if name in ("float16", "bfloat16") else work
    values64 = np.asarray(x.astype(jnp.float64)).astype(work)
    # XLA on CPU flushes subnormals to zero: an error of the smallest normal float is its own
    check_family_result(
        np.asarray(out.astype(jnp.float64)),
        c,
        values64,
        np.dtype(work),
        out_dtype,
        what,
        flush=float(np.finfo(work).tiny),
    )


@fuzz(100)
@given(
    x=numpy_inputs(dtypes=(np.float32, np.float64), min_dims=1, max_side=6),
    name=st.sampled_from(FAMILY),
    data=st.data(),
)
def test_family_paths_agree_on_the_same_input(x, name, data):
    """Kernels, portable NumPy, every torch path and JAX: same NaN, same zero signs, close."""
    axis = data.draw(axes_for(x.ndim, bad=False), label="axis")
    fn = getattr(sk, name)
    dense = np.array(x, dtype=x.dtype.newbyteorder("="))
    results = {}
    for path in NUMPY_PATHS:
        with numpy_path(path):
            results[f"numpy-{path}"] = expect_ok(call(fn, x, axis=axis), f"{name} numpy-{path}")
    for path in TORCH_PATHS:
        with torch_path(path):
            results[f"torch-{path}"] = expect_ok(
                call(fn, torch.from_numpy(dense), axis=axis), f"{name} torch-{path}"
            )
    results["jax"] = expect_ok(call(fn, jnp.asarray(dense), axis=axis, timeout=30.0), f"{name} jax")
    assert_paths_agree(results, f"{name}({dense.dtype} {dense.shape}, axis={axis})")
    work = dense.dtype
    c = {"name": name, "kwargs": {"axis": axis, "where": None}}
    for key, out in results.items():
        # XLA on CPU flushes subnormals to zero (see the JAX test above)
        flush = float(np.finfo(work).tiny) if key == "jax" else 0.0
        check_family_result(
            np.asarray(to_numpy(out)),
            c,
            dense.astype(work),
            work,
            work,
            f"{name} on {key}",
            flush=flush,
        )


# --- losses against PyTorch's own functions ---------------------------------------------------


@st.composite
def loss_problems(draw: Any, *, soft_allowed: bool = True, extras: bool = True) -> dict[str, Any]:
    """A cross-entropy (or NLL) problem in float64 with options good and bad."""
    c = draw(st.integers(1, 6), label="C")
    lead = draw(st.sampled_from([(), (0,), (1,), (3,), (2, 2)]), label="rows")
    layout = draw(st.sampled_from(["last", "torch"]))  # class axis last, or at 1 (N, C, d)
    if layout == "torch" and len(lead) == 2:
        shape, axis = (lead[0], c, lead[1]), 1
    else:
        shape, axis = (*lead, c), -1
    logits = draw(hnp.arrays(np.float64, shape, elements=values(specials=False, lo=-30, hi=30)))
    if logits.size and draw(st.integers(0, 5)) == 0:
        # one row of NaN (possibly an ignored one): PyTorch's rule decides
        flat = np.moveaxis(logits, axis, -1).reshape(-1, c)
        nan_row = draw(st.integers(0, flat.shape[0] - 1))
        flat[nan_row] = np.nan
        logits = np.moveaxis(flat.reshape(np.moveaxis(logits, axis, -1).shape), -1, axis)
    else:
        nan_row = None
    row_shape = tuple(n for i, n in enumerate(shape) if i != axis % len(shape))
    opts: dict[str, Any] = {"axis": axis}
    ignore = draw(st.sampled_from([-100, -100, 0, c - 1, -1]))
    bad_ignore = draw(st.sampled_from([None] * 8 + [True, 1.5, "a", 2**70]))
    opts["ignore_index"] = ignore if bad_ignore is None else bad_ignore
    soft = soft_allowed and draw(st.booleans())
    invalid = []
    if soft:
        raw = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1)))
        total = raw.sum(axis=axis, keepdims=True)
        target = np.where(total > 0, raw / np.where(total > 0, total, 1), 1.0 / c)
        if draw(st.integers(0, 7)) == 0 and target.size:
            target = target.copy()
            target.flat[0] = draw(st.sampled_from([-0.5, 2.0, np.nan]))
            invalid.append("target")
    else:
        target = draw(hnp.arrays(np.int64, row_shape, elements=st.integers(0, c - 1)))
        if target.size and draw(st.booleans()):
            target = target.copy()
            target.flat[draw(st.integers(0, target.size - 1))] = ignore
        if target.size and draw(st.integers(0, 7)) == 0:
            target = target.copy()
            target.flat[0] = draw(st.sampled_from([c, -2, 10**6]))
            if target.flat[0] != ignore:
                invalid.append("target")
        if nan_row is not None and "target" not in invalid and draw(st.booleans()):
            target = target.copy()
            target.flat[nan_row] = ignore  # an ignored row of NaN (issue 17, item 2)
        target = target.astype(draw(st.sampled_from([np.int64, np.int32, np.int16])))
    weight = None
    if draw(st.booleans()):
        weight = draw(hnp.arrays(np.float64, (c,), elements=st.floats(0.0, 3.0)))
        if draw(st.integers(0, 7)) == 0:
            weight = np.ones(c + 1)
            invalid.append("weight")
        opts["weight"] = weight
    opts["reduction"] = draw(st.sampled_from(["mean", "sum", "none", "mean", "avg"]))
    if opts["reduction"] == "avg":
        invalid.append("reduction")
    if extras:
        opts["label_smoothing"] = draw(st.sampled_from([0.0, 0.0, 0.1, 1.0, -0.1, 1.5, "x"]))
        smoothing = opts["label_smoothing"]
        if not (isinstance(smoothing, float) and 0 <= smoothing <= 1):
            invalid.append("label_smoothing")
        opts["z_loss"] = draw(st.sampled_from([0.0, 0.0, 0.0, 1e-3, -1.0]))
        if opts["z_loss"] < 0:
            invalid.append("z_loss")
        opts["softcap"] = draw(st.sampled_from([None, None, None, 5.0, 0.0]))
        if opts["softcap"] == 0.0:
            invalid.append("softcap")
    if (bad_ignore is not None and not isinstance(bad_ignore, int)) or isinstance(bad_ignore, bool):
        invalid.append("ignore_index")
    if bad_ignore == 2**70:  # beyond int64, as torch's int64 ignore_index: refused
        invalid.append("ignore_index")
    return {
        "logits": logits,
        "target": target,
        "opts": opts,
        "invalid": invalid,
        "soft": soft,
        "big_ignore": bad_ignore == 2**70,
    }


def torch_cross_entropy(p: dict[str, Any], *, nll: bool = False) -> tuple[Any, Any]:
    """(loss, dlogits) from PyTorch's own function in float64, z-loss and soft cap composed."""
    o = p["opts"]
    x = torch.tensor(p["logits"], dtype=torch.float64, requires_grad=True)
    axis = o["axis"] % x.ndim
    xc = x if o.get("softcap") is None else o["softcap"] * torch.tanh(x / o["softcap"])
    moved = torch.movedim(xc, axis, 1) if x.ndim > 1 else xc
    t = torch.tensor(p["target"]) if p["soft"] else torch.tensor(p["target"].astype(np.int64))
    if p["soft"] and x.ndim > 1:
        t = torch.movedim(t, axis, 1)
    w = None if o.get("weight") is None else torch.tensor(o["weight"])
    ignore = o["ignore_index"]
    if p["soft"] or p["big_ignore"]:
        ignore = -100  # not used with probabilities; beyond int64 it matches no target
    if nll:
        loss = F.nll_loss(moved, t, weight=w, ignore_index=ignore, reduction=o["reduction"])
    else:
        loss = F.cross_entropy(
            moved,
            t,
            weight=w,
            ignore_index=ignore,
            reduction=o["reduction"],
            label_smoothing=o.get("label_smoothing", 0.0),
        )
    if o.get("z_loss"):
        lse = torch.logsumexp(xc, dim=axis)
        kept = torch.ones_like(lse, dtype=torch.bool) if p["soft"] else (t != ignore)
        rows = torch.where(kept, o["z_loss"] * lse**2, torch.zeros_like(lse))
        if o["reduction"] == "none":
            loss = loss + rows
        elif o["reduction"] == "sum":
            loss = loss + rows.sum()
        else:
            loss = loss + rows.sum() / kept.sum()
    if x.numel():
        (g,) = torch.autograd.grad(loss.sum(), x, allow_unused=True)
        g = torch.zeros_like(x) if g is None else g
    else:
        g = torch.zeros_like(x)
    if _weights_sum_to_zero_on_kept_rows(p, w, t, ignore):
        # A known gap (README, "Losses"): softmaxkit's gradient of this NaN mean is 0 on
        # every path, where PyTorch's is NaN on the kept rows; the loss itself is compared.
        return loss.detach().numpy(), None
    return loss.detach().numpy(), g.numpy()


def _weights_sum_to_zero_on_kept_rows(p: dict[str, Any], w: Any, t: Any, ignore: int) -> bool:
    if p["opts"]["reduction"] != "mean" or p["soft"] or w is None:
        return False
    kept = t != ignore
    return bool(kept.any()) and float(w[t[kept]].sum()) == 0.0


def refused_big_ignore(outcome: Any, p: dict[str, Any], what: str) -> bool:
    """An ``ignore_index`` beyond int64 matches no target: a result as without it, or an
    error naming it, are both right (a raw OverflowError is not)."""
    if p["big_ignore"] and not outcome.ok:
        expect_error(outcome, what, "ignore_index")
        return True
    return False


def assert_loss_close(got: Any, want: Any, dtype: Any, what: str) -> None:
    if want is None:  # no reference to compare with (see torch_cross_entropy)
        return
    got = to_numpy(got).astype(np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    nan = np.isnan(got) != np.isnan(want)
    assert not nan.any(), (
        f"{what}: NaN pattern differs from PyTorch's at {tuple(np.argwhere(nan)[0])}: "
        f"got {got[tuple(np.argwhere(nan)[0])]}, PyTorch {want[tuple(np.argwhere(nan)[0])]}"
    )
    rtol = 1e-9 if np.dtype(dtype) == np.float64 else 2e-4
    scale = np.nanmax(np.abs(want), initial=1.0)
    ok = np.isnan(want) | np.isclose(got, want, rtol=rtol, atol=rtol * scale)
    assert ok.all(), (
        f"{what}: differs from PyTorch at {tuple(np.argwhere(~ok)[0])}: got "
        f"{got[tuple(np.argwhere(~ok)[0])]}, PyTorch {want[tuple(np.argwhere(~ok)[0])]}"
    )


LOSS_DTYPES = (np.float64, np.float32)


@fuzz(200)
@given(p=loss_problems(), dtype=st.sampled_from(LOSS_DTYPES), grad=st.booleans())
def test_cross_entropy_on_numpy_matches_torch_or_refuses(p, dtype, grad):
    """cross_entropy and cross_entropy_grad, kernels on and off, against F.cross_entropy."""
    logits = p["logits"].astype(dtype)
    fn = sk.cross_entropy_grad if grad else sk.cross_entropy
    if not p["invalid"]:
        want_loss, want_grad = torch_cross_entropy(p)
    for path in NUMPY_PATHS:
        with numpy_path(path):
            outcome = call(fn, logits, p["target"], **p["opts"])
        what = f"{fn.__name__} on NumPy ({path}, {np.dtype(dtype)}, shape {logits.shape})"
        if p["invalid"]:
            expect_error(outcome, what, *p["invalid"])
            continue
        if refused_big_ignore(outcome, p, what):
            continue
        out = expect_ok(outcome, what)
        loss, dlogits = out if grad else (out, None)
        assert type(loss) is np.ndarray and loss.dtype == dtype, f"{what}: loss {loss!r}"
        assert_loss_close(loss, want_loss, dtype, f"{what}: loss")
        if grad:
            assert type(dlogits) is np.ndarray and dlogits.dtype == dtype
            assert_loss_close(dlogits, want_grad, dtype, f"{what}: gradient")


@fuzz(120)
@given(
    p=loss_problems(),
    dtype=st.sampled_from(LOSS_DTYPES),
    grad=st.booleans(),
    path=st.sampled_from(TORCH_PATHS),
)
def test_cross_entropy_on_torch_matches_torch_or_refuses(p, dtype, grad, path):
    """On tensors: the loss and its autograd gradient (or cross_entropy_grad's)."""
    logits = torch.tensor(p["logits"].astype(dtype), requires_grad=True)
    target = torch.from_numpy(np.array(p["target"]))
    opts = dict(p["opts"])
    if opts.get("weight") is not None:
        opts["weight"] = torch.from_numpy(np.array(opts["weight"]).astype(dtype))
    fn = sk.cross_entropy_grad if grad else sk.cross_entropy
    with torch_path(path):
        outcome = call(fn, logits, target, **opts)
        what = f"{fn.__name__} on torch ({path}, {np.dtype(dtype)}, shape {tuple(logits.shape)})"
        if p["invalid"]:
            expect_error(outcome, what, *p["invalid"])
            return
        want_loss, want_grad = torch_cross_entropy(p)
        if refused_big_ignore(outcome, p, what):
            return
        out = expect_ok(outcome, what)
        if grad:
            loss, dlogits = out
        else:
            loss = out
            dlogits = (
                torch.autograd.grad(loss.sum(), logits)[0]
                if logits.numel() and loss.requires_grad
                else torch.zeros_like(logits)
            )
    assert isinstance(loss, torch.Tensor) and loss.dtype == logits.dtype, f"{what}: {loss!r}"
    assert_loss_close(loss, want_loss, dtype, f"{what}: loss")
    assert_loss_close(dlogits, want_grad, dtype, f"{what}: gradient")


@fuzz(30)
@given(p=loss_problems(), grad=st.booleans())
def test_cross_entropy_on_jax_matches_torch_or_refuses(p, grad):
    logits = jnp.asarray(p["logits"])
    target = jnp.asarray(p["target"])
    opts = dict(p["opts"])
    if opts.get("weight") is not None:
        opts["weight"] = jnp.asarray(opts["weight"])
    fn = sk.cross_entropy_grad if grad else sk.cross_entropy
    outcome = call(fn, logits, target, timeout=30.0, **opts)
    what = f"{fn.__name__} on JAX (shape {logits.shape})"
    if p["invalid"]:
        expect_error(outcome, what, *p["invalid"])
        return
    want_loss, want_grad = torch_cross_entropy(p)
    if refused_big_ignore(outcome, p, what):
        return
    out = expect_ok(outcome, what)
    if grad:
        loss, dlogits = out
    else:
        loss = out
        if logits.size:
            dlogits = jax.grad(lambda z: jnp.sum(sk.cross_entropy(z, target, **opts)))(logits)
        else:
            dlogits = jnp.zeros_like(logits)
    assert_loss_close(loss, want_loss, np.float64, f"{what}: loss")
    assert_loss_close(dlogits, want_grad, np.float64, f"{what}: gradient")


@fuzz(150)
@given(
    p=loss_problems(soft_allowed=False, extras=False),
    dtype=st.sampled_from(LOSS_DTYPES),
    grad=st.booleans(),
    kind=st.sampled_from(["numpy", "torch"]),
)
def test_nll_loss_matches_torch_or_refuses(p, dtype, grad, kind):
    log_probs = p["logits"].astype(dtype)
    fn = sk.nll_loss_grad if grad else sk.nll_loss
    target, opts = p["target"], dict(p["opts"])
    if kind == "torch":
        log_probs, target = torch.from_numpy(log_probs), torch.from_numpy(np.array(target))
        if opts.get("weight") is not None:
            opts["weight"] = torch.from_numpy(opts["weight"].astype(dtype))
    outcome = call(fn, log_probs, target, **opts)
    what = f"{fn.__name__} on {kind} ({np.dtype(dtype)}, shape {tuple(log_probs.shape)})"
    if p["invalid"]:
        expect_error(outcome, what, *p["invalid"])
        return
    want_loss, want_grad = torch_cross_entropy(p, nll=True)
    if refused_big_ignore(outcome, p, what):
        return
    out = expect_ok(outcome, what)
    loss = out[0] if grad else out
    assert_loss_close(loss, want_loss, dtype, f"{what}: loss")
    if grad:
        assert_loss_close(out[1], want_grad, dtype, f"{what}: gradient")


@fuzz(150)
@given(
    data=st.data(),
    dtype=st.sampled_from(LOSS_DTYPES),
    grad=st.booleans(),
    kind=st.sampled_from(["numpy-kernels", "numpy-portable", "torch", "jax"]),
)
def test_binary_cross_entropy_matches_torch_or_refuses(data, dtype, grad, kind):
    shape = data.draw(shapes(0, 3, 0, 4), label="shape")
    x = data.draw(hnp.arrays(np.float64, shape, elements=values(specials=False, lo=-50, hi=50)))
    y = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1)))
    invalid = []
    if y.size and data.draw(st.integers(0, 7)) == 0:
        y = y.copy()
        y.flat[0] = data.draw(st.sampled_from([-0.1, 1.5, np.nan]))
        invalid.append("target")
    opts: dict[str, Any] = {"reduction": data.draw(st.sampled_from(["mean", "sum", "none", "max"]))}
    if opts["reduction"] == "max":
        invalid.append("reduction")
    for name in ("weight", "pos_weight"):
        if data.draw(st.booleans()):
            sub = shape[data.draw(st.integers(0, len(shape))) :]
            opts[name] = data.draw(hnp.arrays(np.float64, sub, elements=st.floats(0, 3)))
            if data.draw(st.integers(0, 7)) == 0:
                opts[name] = np.ones((*shape, 2))
                invalid.append(name)
    want_loss = want_grad = None
    if not invalid:
        xt = torch.tensor(x, requires_grad=True)
        kw = {k: torch.tensor(v) for k, v in opts.items() if k != "reduction"}
        ref = F.binary_cross_entropy_with_logits(
            xt, torch.tensor(y), reduction=opts["reduction"], **kw
        )
        want_loss = ref.detach().numpy()
        want_grad = torch.autograd.grad(ref.sum(), xt)[0].numpy() if x.size else np.zeros(shape)
    conv = {"torch": torch.from_numpy, "jax": jnp.asarray}.get(kind, lambda a: a)
    args = [conv(np.asarray(x.astype(dtype))), conv(np.asarray(y))]
    kwargs = {k: (conv(np.asarray(v)) if k != "reduction" else v) for k, v in opts.items()}
    fn = sk.binary_cross_entropy_with_logits_grad if grad else sk.binary_cross_entropy_with_logits
    with ExitStack() as stack:
        if kind.startswith("numpy"):
            stack.enter_context(numpy_path(kind.split("-")[1]))
        outcome = call(fn, *args, timeout=30.0, **kwargs)
    what = f"{fn.__name__} on {kind} ({np.dtype(dtype)}, shape {shape})"
    if invalid:
        expect_error(outcome, what, *invalid)
        return
    out = expect_ok(outcome, what)
    loss = out[0] if grad else out
    assert_loss_close(loss, want_loss, dtype, f"{what}: loss")
    if grad:
        assert_loss_close(out[1], want_grad, dtype, f"{what}: gradient")


# --- samplers and candidate sampling ----------------------------------------------------------

from softmaxkit import sampling  # noqa: E402


@st.composite
def samplers(draw: Any) -> tuple[Any, list[str], int | None]:
    """``(constructor call, the arguments it must refuse, number of classes)``."""
    kind = draw(st.sampled_from(["uniform", "loguniform", "unigram", "unigram"]))
    if kind != "unigram":
        v = draw(st.one_of(st.integers(1, 40), st.sampled_from([0, -1, 1.5, "3", True, 2**64])))
        ok = isinstance(v, int) and not isinstance(v, bool) and 1 <= v < 2**63
        cls = sampling.UniformSampler if kind == "uniform" else sampling.LogUniformSampler
        return (lambda: cls(v)), ([] if ok else ["num_classes"]), (v if ok else None)
    n = draw(st.integers(1, 12))
    counts = draw(
        hnp.arrays(
            np.float64,
            (n,),
            elements=st.one_of(
                st.floats(0, 100),
                st.sampled_from([0.0, 1.0, 1e10, 1e12, 1e300, 1e-300, 5e-324]),
            ),
        )
    )
    bad = []
    if not (counts > 0).any():
        bad.append("counts")
    if draw(st.integers(0, 7)) == 0:
        counts = draw(
            st.sampled_from(
                [np.array([-1.0, 2.0]), np.array([np.nan]), np.zeros((2, 2)), np.array([])]
            )
        )
        bad = ["counts"]
    distortion = draw(
        st.one_of(
            st.floats(-3, 3),
            st.sampled_from([0.0, 0.75, 1.0, 3.0, 100.0, math.inf, None, "x"]),
        )
    )
    if not isinstance(distortion, float) or not math.isfinite(distortion):
        bad.append("distortion")
    return (lambda: sampling.UnigramSampler(counts, distortion=distortion)), bad, len(counts)


@fuzz(250)
@given(s=samplers(), data=st.data())
def test_samplers_return_valid_samples_or_refuse(s, data):
    make, bad, v = s
    outcome = call(make, timeout=2.0)
    if bad:
        expect_error(outcome, "sampler constructor", *bad)
        return
    sampler = expect_ok(outcome, "sampler constructor")
    p_all = sampler.probability(np.arange(v))
    assert np.all((p_all >= 0) & (p_all <= 1)), f"{sampler!r}: probabilities {p_all}"
    assert abs(p_all.sum() - 1) < 1e-12, f"{sampler!r}: probabilities sum to {p_all.sum()}"
    support = int((p_all > 0).sum())
    num = data.draw(st.one_of(st.integers(1, v + 3), st.sampled_from([0, -1, 1.5])), label="num")
    unique = data.draw(st.booleans(), label="unique")
    true = data.draw(
        st.one_of(
            st.none(),
            hnp.arrays(
                np.int64, st.sampled_from([(0,), (3,), (2, 2)]), elements=st.integers(0, v - 1)
            ),
            st.sampled_from([np.array([v]), np.array([-1]), np.array([0.5])]),
        ),
        label="true_classes",
    )
    rng = data.draw(st.sampled_from([0, 1, np.random.default_rng(2), -1, "a"]), label="rng")
    invalid = []
    if not isinstance(num, int) or num < 1:
        invalid.append("num_sampled")
    elif unique and num > support:
        invalid.append("num_sampled")
    if true is not None and (true.dtype.kind != "i" or ((true < 0) | (true >= v)).any()):
        invalid.append("true_classes")
    if isinstance(rng, str) or (isinstance(rng, int) and rng < 0):
        invalid.append("rng")
    outcome = call(sampler.sample, num, true_classes=true, unique=unique, rng=rng, timeout=2.0)
    what = f"{sampler!r}.sample({num}, unique={unique}, true_classes={true!r}, rng={rng!r})"
    if invalid:
        expect_error(outcome, what, *invalid)
        return
    sampled, true_count, sampled_count = expect_ok(outcome, what)
    assert sampled.shape == (num,) and sampled.dtype == np.int64, f"{what}: {sampled!r}"
    assert ((sampled >= 0) & (sampled < v)).all(), f"{what}: classes {sampled}"
    assert (p_all[sampled] > 0).all(), f"{what}: drew a class of probability 0: {sampled}"
    if unique:
        assert len(set(sampled.tolist())) == num, f"{what}: repeats {sampled}"
    top = 1.0 if unique else float(num)
    for counts in (sampled_count, true_count):
        if counts is not None:
            assert np.all(np.isfinite(counts) & (counts >= 0) & (counts <= top * (1 + 1e-12))), (
                f"{what}: expected counts {counts}"
            )
    if true is None:
        assert true_count is None
    else:
        assert true_count.shape == true.shape, f"{what}: true counts of shape {true_count.shape}"


CANDIDATE_KINDS = ("numpy", "torch", "jax")


@fuzz(60)
@given(
    data=st.data(),
    kind=st.sampled_from(CANDIDATE_KINDS),
    fn=st.sampled_from(["sampled_softmax_loss", "nce_loss", "sampled_logits"]),
)
def test_candidate_losses_are_finite_and_agree_with_cross_entropy(data, kind, fn):
    v = data.draw(st.integers(2, 20), label="V")
    d = data.draw(st.integers(1, 4), label="D")
    b = data.draw(st.sampled_from([0, 1, 3]), label="B")
    num_true = data.draw(st.sampled_from([1, 1, 2]), label="num_true")
    num_sampled = data.draw(st.integers(1, v), label="num_sampled")
    elements = st.floats(-3, 3)
    w = data.draw(hnp.arrays(np.float64, (v, d), elements=elements))
    bias = data.draw(st.one_of(st.none(), hnp.arrays(np.float64, (v,), elements=elements)))
    x = data.draw(hnp.arrays(np.float64, (b, d), elements=elements))
    labels = data.draw(hnp.arrays(np.int64, (b, num_true), elements=st.integers(0, v - 1)))
    if num_true == 1 and data.draw(st.booleans()):
        labels = labels[:, 0]
    opts = {
        "remove_accidental_hits": data.draw(st.booleans()),
        "subtract_log_q": data.draw(st.booleans()),
    }
    sampler = data.draw(st.sampled_from([None, "uniform", "unigram"]))
    if sampler == "uniform":
        opts["sampler"] = sampling.UniformSampler(v)
    elif sampler == "unigram":
        opts["sampler"] = sampling.UnigramSampler(np.arange(1, v + 1), distortion=0.75)
    conv = {"torch": torch.from_numpy, "jax": jnp.asarray}.get(kind, np.asarray)
    args = [conv(w), None if bias is None else conv(bias), conv(np.asarray(labels)), conv(x)]
    outcome = call(
        getattr(sk, fn),
        *args,
        num_sampled=num_sampled,
        num_true=num_true,
        rng=0,
        timeout=30.0,
        **opts,
    )
    what = f"{fn} on {kind} (V={v}, D={d}, B={b}, num_true={num_true}, num_sampled={num_sampled})"
    out = expect_ok(outcome, what)
    if fn == "sampled_logits":
        logits, targets = (to_numpy(o) for o in out)
        assert logits.shape == targets.shape == (b, num_true + num_sampled), (
            f"{what}: {logits.shape}"
        )
        assert not np.isnan(logits).any() and np.isfinite(targets).all(), f"{what}: {logits}"
        assert np.allclose(targets.sum(axis=-1), 1.0), f"{what}: targets {targets}"
        return
    loss = to_numpy(out)
    assert loss.shape == (b,), f"{what}: loss of shape {loss.shape}"
    assert np.isfinite(loss).all() and (loss >= -1e-12).all(), f"{what}: loss {loss}"
    # the same sample through sampled_logits and a cross-entropy of the logits
    if fn == "sampled_softmax_loss" and b:
        logits, targets = sk.sampled_logits(
            *args, num_sampled=num_sampled, num_true=num_true, rng=0, **opts
        )
        lp = to_numpy(sk.log_softmax(logits))
        t = to_numpy(targets)
        want = -np.sum(np.where(t > 0, t * lp, 0.0), axis=-1)
        np.testing.assert_allclose(loss, want, rtol=1e-9, atol=1e-12, err_msg=what)


# --- linear cross-entropy -------------------------------------------------------------------


@fuzz(120)
@given(data=st.data(), kind=st.sampled_from(["numpy", "torch", "jax"]), grad=st.booleans())
def test_linear_cross_entropy_matches_torch_or_refuses(data, kind, grad):
    """``cross_entropy(inputs @ weight.T + bias, targets)`` by PyTorch, or a named error."""
    n = data.draw(st.sampled_from([0, 1, 3]), label="N")
    d = data.draw(st.integers(1, 4), label="D")
    v = data.draw(st.sampled_from([0, 1, 2, 5]), label="V")
    el = st.floats(-3, 3)
    x = data.draw(hnp.arrays(np.float64, (n, d), elements=el))
    w = data.draw(hnp.arrays(np.float64, (v, d), elements=el))
    t = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, max(v - 1, 0))))
    if n and data.draw(st.booleans()):
        t = t.copy()
        t[0] = -100
    bias = data.draw(st.one_of(st.none(), hnp.arrays(np.float64, (v,), elements=el)))
    opts: dict[str, Any] = {
        "reduction": data.draw(st.sampled_from(["mean", "sum", "none"])),
        "label_smoothing": data.draw(st.sampled_from([0.0, 0.2])),
        "chunk_size": data.draw(st.sampled_from([None, None, 1, 2, -5, "a", 0])),
    }
    invalid = []
    if opts["chunk_size"] in (-5, "a", 0):
        invalid.append("chunk_size")
    if v == 0 and n and (t != -100).any():
        invalid.append("targets")  # no class for a kept row to be
    shape_bad = data.draw(st.sampled_from([None] * 6 + ["bias", "inputs", "weight"]))
    if shape_bad == "bias":
        bias = np.zeros(1 if v != 1 else 2)
    elif shape_bad == "inputs":
        x = np.zeros((n, d, 1))
    elif shape_bad == "weight":
        w = np.zeros((v, d + 1))
    if shape_bad:
        invalid.append(shape_bad)
    conv = {"torch": torch.from_numpy, "jax": jnp.asarray}.get(kind, np.asarray)
    fn = sk.linear_cross_entropy_grad if grad else sk.linear_cross_entropy
    args = [conv(x), conv(w), conv(t)]
    outcome = call(fn, *args, bias=None if bias is None else conv(bias), timeout=30.0, **opts)
    what = f"{fn.__name__} on {kind} (N={n}, D={d}, V={v}, {opts})"
    if kind == "jax" and grad:
        invalid.append("inputs")  # documented: on JAX, jax.grad of linear_cross_entropy
    if invalid:
        expect_error(outcome, what, *invalid)
        return
    out = expect_ok(outcome, what)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = None if bias is None else torch.tensor(bias, requires_grad=True)
    logits = xt @ wt.T + (0 if bt is None else bt)
    ref = F.cross_entropy(
        logits,
        torch.tensor(t),
        reduction=opts["reduction"],
        label_smoothing=opts["label_smoothing"],
    )
    loss = out[0] if grad else out
    assert_loss_close(loss, ref.detach().numpy(), np.float64, f"{what}: loss")
    if grad and x.size and w.size:
        wanted = [a for a in (xt, wt, bt) if a is not None]
        grads = torch.autograd.grad(ref.sum(), wanted, allow_unused=True)
        for name, got, want in zip(("inputs", "weight", "bias"), out[1:], grads, strict=False):
            want = np.zeros(tuple(got.shape)) if want is None else want.numpy()
            assert_loss_close(got, want, np.float64, f"{what}: d_{name}")


# --- calibration ------------------------------------------------------------------------------


@fuzz(60)
@given(data=st.data())
def test_calibration_functions_return_finite_results_or_refuse(data):
    n = data.draw(st.integers(0, 20), label="N")
    c = data.draw(st.integers(1, 5), label="C")
    logits = data.draw(
        hnp.arrays(
            np.float64,
            (n, c),
            elements=st.one_of(st.floats(-50, 50), st.sampled_from([1e308, -1e308, 0.0, 1e-300])),
        )
    )
    labels = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    invalid = []
    if n == 0:
        invalid = ["logits", "labels", "probs"]
    outcome = call(sk.fit_temperature, logits, labels, timeout=10.0)
    what = f"fit_temperature(logits of shape {logits.shape})"
    if outcome.ok:
        t = float(outcome.value)
        assert math.isfinite(t) and t > 0, f"{what}: temperature {t}"
    probs = sk.softmax(logits)
    n_bins = data.draw(st.sampled_from([1, 15, 0, -1, 2.5]), label="n_bins")
    norm = data.draw(st.sampled_from(["l1", "l2", "max", "L3"]), label="norm")
    bad = list(invalid)
    if n_bins not in (1, 15):
        bad.append("n_bins")
    if norm == "L3":
        bad.append("norm")
    outcome = call(sk.expected_calibration_error, probs, labels, n_bins=n_bins, norm=norm)
    what = f"expected_calibration_error(probs {probs.shape}, n_bins={n_bins!r}, norm={norm!r})"
    if bad:
        if not outcome.ok:
            expect_error(outcome, what, *bad)
            return
        assert n == 0 and n_bins in (1, 15) and norm != "L3", f"{what}: accepted {outcome.value}"
    ece = float(expect_ok(outcome, what))
    assert (math.isnan(ece) and n == 0) or 0 <= ece <= 1, f"{what}: {ece}"


# --- softmaxkit.nn: settings ------------------------------------------------------------------

from softmaxkit import nn  # noqa: E402

BAD_SETTINGS = st.sampled_from([0, -1, 2.5, "3", None, math.nan, True, [2]])


@fuzz(80)
@given(
    layer=st.sampled_from(["Dense", "Dropout", "SGD", "Adam", "Sequential"]),
    value=st.one_of(BAD_SETTINGS, st.integers(1, 5), st.floats(0.0, 0.9)),
)
def test_nn_constructors_build_or_refuse_by_name(layer, value):
    """A layer or optimizer built from a setting either works or names the setting."""
    if layer == "Dense":
        outcome = call(nn.Dense, value, 2, rng=0)
        good = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        names = ("in_features", "fan_in")
    elif layer == "Dropout":
        outcome = call(nn.Dropout, value, rng=0)
        good = isinstance(value, (int, float)) and not isinstance(value, bool)
        good = good and 0 <= value < 1
        names = ("rate",)
    elif layer == "Sequential":
        outcome = call(nn.Sequential, value)
        good, names = False, ()
    else:
        outcome = call(getattr(nn, layer), lr=value)
        good = isinstance(value, (int, float)) and not isinstance(value, bool)
        good = good and math.isfinite(value) and value > 0
        names = ("lr",)
    what = f"nn.{layer}({value!r})"
    if good:
        expect_ok(outcome, what)
    elif layer == "Sequential":
        expect_error(outcome, what)  # a Sequential of a number: any message naming it
    else:
        expect_error(outcome, what, *names)


# --- autograd of the family against the backward products -------------------------------------


@fuzz(50)
@given(
    x=numpy_inputs(
        dtypes=(np.float64,), min_dims=1, max_dims=2, min_side=1, max_side=4, lo=-30, hi=30
    ).map(lambda a: np.array(a, np.float64)),
    name=st.sampled_from(FAMILY),
    kind=st.sampled_from(["torch-operators", "torch-fused", "torch-portable", "jax"]),
    data=st.data(),
)
def test_autograd_of_the_family_equals_the_backward_products(x, name, kind, data):
    """torch autograd and jax.grad give ``softmax_backward`` / ``log_softmax_backward`` /
    ``g * softmax``, with gradient 0 (never NaN) outside slices that hold NaN."""
    x = np.where(x == np.inf, 0.0, x)  # +inf entries: no gradient rule is promised
    where = data.draw(st.one_of(st.none(), hnp.arrays(np.bool_, x.shape)), label="where")
    axis = -1
    kw: dict[str, Any] = {"axis": axis, "where": where}
    with numpy_path("portable"):
        p = sk.softmax(x, **kw)
        out_shape = sk.logsumexp(x, **kw).shape if name == "logsumexp" else x.shape
    g = data.draw(hnp.arrays(np.float64, out_shape, elements=st.floats(-2, 2)), label="g")
    with numpy_path("portable"):
        if name == "softmax":
            want = sk.softmax_backward(g, p, axis=axis)
        elif name == "log_softmax":
            want = sk.log_softmax_backward(g, sk.log_softmax(x, **kw), axis=axis)
        else:
            want = np.expand_dims(g, axis) * p
    fn = getattr(sk, name)
    what = f"autograd of {name} on {kind} (shape {x.shape}, where {where is not None})"
    if kind == "jax":
        jwhere = None if where is None else jnp.asarray(where)
        _, vjp = jax.vjp(lambda z: fn(z, axis=axis, where=jwhere), jnp.asarray(x))
        got = np.asarray(vjp(jnp.asarray(g))[0])
    else:
        xt = torch.tensor(x, requires_grad=True)
        twhere = None if where is None else torch.from_numpy(where)
        with torch_path(kind.split("-")[1]):
            out = expect_ok(call(fn, xt, axis=axis, where=twhere), what)
        got = torch.autograd.grad(out, xt, torch.from_numpy(g), allow_unused=True)[0]
        got = np.zeros_like(x) if got is None else got.numpy()
    valid = x if where is None else np.where(where, x, 0.0)
    nan_slice = np.isnan(valid).any(axis=axis, keepdims=True) & np.ones_like(x, bool)
    bad_nan = np.isnan(got) & ~nan_slice
    assert not bad_nan.any(), f"{what}: NaN gradient at {tuple(np.argwhere(bad_nan)[0])}"
    ok = nan_slice | np.isclose(got, want, rtol=1e-9, atol=1e-12)
    assert ok.all(), (
        f"{what}: gradient {got[~ok][:3]} where the backward product gives {want[~ok][:3]} "
        f"(x = {x.tolist()}, where = {None if where is None else where.tolist()})"
    )


# --- the logistic function against SciPy --------------------------------------------------------


@fuzz(100)
@given(
    x=numpy_inputs(dtypes=(np.float16, np.float32, np.float64, np.int32, np.bool_), max_side=4),
    name=st.sampled_from(["sigmoid", "log_sigmoid"]),
    kind=st.sampled_from(["numpy", "torch", "jax"]),
)
def test_sigmoid_and_log_sigmoid_match_scipy(x, name, kind):
    dense = np.array(x, dtype=x.dtype.newbyteorder("="))
    arg = {"torch": torch.from_numpy, "jax": jnp.asarray}.get(kind, lambda a: x)(dense)
    out = expect_ok(call(getattr(sk, name), arg, timeout=30.0), f"{name} on {kind}")
    floating = dense.dtype.kind == "f"
    default = torch.get_default_dtype() if kind == "torch" else None
    work = np.float32 if default == torch.float32 and not floating else np.float64
    if floating:
        work = np.float32 if dense.dtype.itemsize <= 4 else np.float64
    v = dense.astype(work).astype(np.float64)
    with np.errstate(all="ignore"):
        want = scipy.special.expit(v) if name == "sigmoid" else scipy.special.log_expit(v)
    got = to_numpy(out).astype(np.float64)
    out_dtype = dense.dtype if floating else np.dtype(work)
    tol = 8 * eps(work) * np.abs(want) + 4 * float(np.finfo(out_dtype).smallest_subnormal)
    assert_close(got, want, tol, out_dtype, f"{name} on {kind} ({dense.dtype}, shape {x.shape})")
