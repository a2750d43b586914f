"""``out=`` (and ``grad_out=`` of cross_entropy_grad): the caller's NumPy array receives the result.

The semantics of NumPy's ufuncs: an array of exactly the result's shape and dtype, C-contiguous
or not, the input itself for an in-place result, is written and returned; anything else is
refused before any work with an error naming ``out``, and a call that fails leaves ``out``
unchanged.  Every test runs on both NumPy paths (the compiled kernels and the portable code,
through the ``kernel_path`` fixture), and an in-place result must equal the out-of-place one
bit for bit, on each layout the kernels treat apart (short rows, rows on the last axis, a
non-last axis, axes moved together, long rows, outputs streamed to memory), with infinities
and NaN planted where the kernels could only write over their input if they read it first.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import softmaxkit as sk
from softmaxkit import _kernels
from softmaxkit._errors import SoftmaxkitTypeError, SoftmaxkitValueError

INF = np.inf

FUNCTIONS = (
    "softmax",
    "log_softmax",
    "softmax_backward",
    "log_softmax_backward",
    "pmf_normalize",
    "cross_entropy_grad",
)

# (shape, axis): long enough rows, short rows (tiled across rows by the kernels), a non-last
# axis (blocks of columns), neighbouring axes, axes that are not neighbours (moved together).
LAYOUTS = (
    ((5, 133), -1),
    ((300, 5), -1),
    ((3, 17, 70), 1),
    ((9, 130), 0),
    ((4, 5, 6), (1, 2)),
    ((3, 17, 7), (0, 2)),
)
# cross_entropy_grad has a class axis: the fused kernel takes 2-D logits with classes last,
# the portable path the others.
CE_LAYOUTS = (((5, 133), -1), ((300, 5), -1), ((9, 130), 0), ((3, 17, 7), 1))


def _scores(shape: tuple[int, ...], dtype: Any, seed: int = 0) -> np.ndarray:
    """Random logits with -inf, +inf and NaN planted in a few slices (not in most)."""
    rng = np.random.default_rng(seed)
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    flat = x.reshape(-1)
    if flat.size > 40:
        flat[[3, 11, 17]] = -INF
        flat[29] = INF
        flat[37] = np.nan
    return x


def _inputs(name: str, shape: tuple[int, ...], axis: Any, dtype: Any, seed: int = 0) -> dict:
    """The positional arguments of ``name`` (in ``args``) and its ``axis`` keyword."""
    rng = np.random.default_rng(seed + 1)
    if name in ("softmax", "log_softmax"):
        return {"args": [_scores(shape, dtype, seed)], "axis": axis}
    if name == "pmf_normalize":
        counts = (rng.random(shape) + 0.01).astype(dtype)
        return {"args": [counts], "axis": axis}
    if name == "cross_entropy_grad":
        logits = _scores(shape, dtype, seed)
        classes = shape[axis]
        row_shape = tuple(k for i, k in enumerate(shape) if i != axis % len(shape))
        target = rng.integers(0, classes, row_shape)
        target.reshape(-1)[1] = -100  # an ignored row
        return {"args": [logits, target], "axis": axis}
    x = _scores(shape, dtype, seed)
    forward = sk.softmax if name == "softmax_backward" else sk.log_softmax
    y = forward(x, axis=axis)
    g = rng.standard_normal(shape).astype(dtype)
    return {"args": [g, y], "axis": axis}


def _run(name: str, args: list, axis: Any, out: Any = None, **kwargs: Any) -> tuple[Any, Any]:
    """``(result, loss)`` of ``name(*args, axis=axis, out=out)``: cross_entropy_grad's
    gradient and loss, every other function's result and None."""
    fn = getattr(sk, name)
    if out is not None:
        kwargs["grad_out" if name == "cross_entropy_grad" else "out"] = out
    result = fn(*args, axis=axis, **kwargs)
    if name == "cross_entropy_grad":
        loss, result = result
        return result, loss
    return result, None


def _call(name: str, args: list, axis: Any, out: Any = None, **kwargs: Any) -> Any:
    return _run(name, args, axis, out, **kwargs)[0]


def _copies(inputs: dict) -> list:
    return [np.array(a, copy=True) for a in inputs["args"]]


def _same(a: np.ndarray, b: np.ndarray) -> None:
    """Equal bit for bit (NaN where NaN), of the same dtype and shape."""
    assert a.dtype == b.dtype and a.shape == b.shape
    bits = [np.ascontiguousarray(v).reshape(-1).view(np.uint8) for v in (a, b)]
    np.testing.assert_array_equal(*bits)


CASES = [
    (name, shape, axis)
    for name in FUNCTIONS
    for shape, axis in (CE_LAYOUTS if name == "cross_entropy_grad" else LAYOUTS)
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "shape", "axis"), CASES)
def test_out_receives_the_result_and_is_returned(kernel_path, name, shape, axis, dtype):
    inputs = _inputs(name, shape, axis, dtype)
    expected = _call(name, _copies(inputs), axis)
    out = np.full(shape, 7.0, dtype=dtype)
    result = _call(name, inputs["args"], axis, out)
    assert result is out
    _same(out, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "shape", "axis"), CASES)
def test_in_place_equals_out_of_place_bitwise(kernel_path, name, shape, axis, dtype):
    """``out`` is the first input (x, grad, counts, logits)."""
    inputs = _inputs(name, shape, axis, dtype)
    expected, expected_loss = _run(name, _copies(inputs), axis)
    first = inputs["args"][0]
    result, loss = _run(name, inputs["args"], axis, first)
    assert result is first
    _same(first, expected)
    if name == "cross_entropy_grad":
        _same(np.asarray(loss), np.asarray(expected_loss))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS)
@pytest.mark.parametrize("name", ["softmax_backward", "log_softmax_backward"])
def test_backward_into_the_forward_output_equals_out_of_place(
    kernel_path, name, shape, axis, dtype
):
    inputs = _inputs(name, shape, axis, dtype)
    expected = _call(name, _copies(inputs), axis)
    y = inputs["args"][1]
    assert _call(name, inputs["args"], axis, y) is y
    _same(y, expected)


# Layouts of their own in the kernels: rows of 65536 entries or more (two passes, with a
# fall-back for a row whose max is not finite), and outputs of 32 MiB or more (streamed to
# memory from a scratch row).
@pytest.mark.parametrize(
    ("shape", "plant"),
    [((6, 70_000), True), ((256, 32_768), False)],
    ids=["long rows", "streamed"],
)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_in_place_on_the_kernels_large_layouts(kernel_path, name, shape, plant):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape, dtype=np.float32)
    if plant:
        x[0, 66_000] = INF  # a row with +inf
        x[1] = -INF  # one all -inf but a NaN
        x[1, 69_999] = np.nan
        x[2, :9000] = -INF  # one with a piece of the kernel's (8192 entries) all -inf
        x[3, :9000] = -INF  # the same with a NaN there
        x[3, 100] = np.nan
        x[4, 10] = np.nan  # NaN early in a row whose +inf comes later
        x[4, 60_000] = INF
        # and one ordinary
    expected = getattr(sk, name)(x.copy())
    assert getattr(sk, name)(x, out=x) is x
    _same(x, expected)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_in_place_on_a_non_last_axis_with_every_edge(kernel_path, name, dtype, temperature):
    """The kernels' blocks of 64 columns: a block with a column whose max is not finite goes
    column by column in place; one without it as a block; and a partial block."""
    x = _scores((40, 3, 150), dtype, seed=7)
    x[:, 0, 5] = -INF  # a column all -inf
    x[:, 0, 9] = -INF  # all -inf but a NaN
    x[17, 0, 9] = np.nan
    x[30, 0, 70] = INF  # +inf in the second block
    x[2, 1, 140] = np.nan  # NaN in a finite column of the partial block
    x[:, 2, 149] = INF  # a column all +inf
    fn = getattr(sk, name)
    expected = fn(x.copy(), axis=0, temperature=temperature)
    assert fn(x, axis=0, temperature=temperature, out=x) is x
    _same(x, expected)


def test_in_place_cross_entropy_grad_on_the_streamed_layout(kernel_path):
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((256, 32_768), dtype=np.float32)
    target = rng.integers(0, 32_768, 256)
    loss, expected = sk.cross_entropy_grad(logits.copy(), target, label_smoothing=0.1)
    loss2, dlogits = sk.cross_entropy_grad(logits, target, label_smoothing=0.1, grad_out=logits)
    assert dlogits is logits
    _same(logits, expected)
    _same(np.asarray(loss2), np.asarray(loss))


@pytest.mark.parametrize("order", ["F", "strided", "reversed"])
@pytest.mark.parametrize(("name", "shape", "axis"), CASES)
def test_a_non_contiguous_out_is_written_and_nothing_around_it(
    kernel_path, name, shape, axis, order
):
    inputs = _inputs(name, shape, axis, np.float32)
    expected = _call(name, _copies(inputs), axis)
    if order == "F":
        base = np.full(shape[::-1], 7.0, dtype=np.float32)
        out = base.T
    elif order == "strided":  # every other entry of the last axis
        base = np.full((*shape[:-1], 2 * shape[-1]), 7.0, dtype=np.float32)
        out = base[..., ::2]
    else:
        base = np.full(shape, 7.0, dtype=np.float32)
        out = base[::-1]
    assert not out.flags.c_contiguous
    assert _call(name, inputs["args"], axis, out) is out
    _same(np.ascontiguousarray(out), expected)
    if order == "strided":
        assert (base[..., 1::2] == 7.0).all()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_in_place_on_a_non_contiguous_input(kernel_path, name):
    shape, axis = (6, 50), -1
    inputs = _inputs(name, shape, axis, np.float64)
    inputs["args"][0] = np.asfortranarray(inputs["args"][0])  # the same values, column-major
    # (NumPy's sums round differently on another layout: the same layout out of place)
    expected = _call(name, [np.array(a, copy=True, order="K") for a in inputs["args"]], axis)
    first = inputs["args"][0]
    assert _call(name, inputs["args"], axis, first) is first
    _same(np.ascontiguousarray(first), expected)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_an_out_partly_overlapping_the_input_gets_the_right_result(kernel_path, name):
    """Memory shared but not entry for entry: the result is computed aside, then copied."""
    shape, axis = (6, 50), -1
    inputs = _inputs(name, shape, axis, np.float64)
    expected = _call(name, _copies(inputs), axis)
    first = inputs["args"][0]
    buffer = np.empty((shape[0] + 1, shape[1]), dtype=first.dtype)
    buffer[:-1] = first
    inputs["args"][0] = buffer[:-1]  # the input, rows 0..5 of the buffer
    out = buffer[1:]  # rows 1..6: shifted by one row
    assert np.shares_memory(out, inputs["args"][0])
    assert _call(name, inputs["args"], axis, out) is out
    _same(np.ascontiguousarray(out), expected)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("temperature", [0.5, 1e-300, 1e300])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_with_where_and_temperature(kernel_path, name, in_place, temperature, masked, dtype):
    """A mask and a temperature out of float32's range (computed in float64) with ``out``."""
    x = _scores((7, 60), dtype)
    where = (np.arange(60) % 3 != 0) if masked else None
    fn = getattr(sk, name)
    expected = fn(x.copy(), temperature=temperature, where=where)
    out = x if in_place else np.empty_like(x)
    assert fn(x, temperature=temperature, where=where, out=out) is out
    _same(out, expected)


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize(("name", "shape", "axis"), CASES)
def test_a_float16_input_takes_a_float16_out(kernel_path, name, shape, axis, in_place):
    """Computed in float32, returned (and written) in float16; a float32 ``out`` is refused."""
    inputs = _inputs(name, shape, axis, np.float16)
    expected = _call(name, _copies(inputs), axis)
    assert expected.dtype == np.float16
    out = inputs["args"][0] if in_place else np.empty(shape, dtype=np.float16)
    assert _call(name, inputs["args"], axis, out) is out
    _same(out, expected)
    wrong = np.zeros(shape, dtype=np.float32)
    with pytest.raises(
        SoftmaxkitTypeError, match="dtype of the result, float16; got dtype float32"
    ):
        _call(name, inputs["args"], axis, wrong)
    assert not wrong.any()


def test_integer_and_list_input_take_a_float64_out(kernel_path):
    out = np.empty(3)
    assert sk.pmf_normalize(np.array([1, 1, 2]), out=out) is out
    np.testing.assert_array_equal(out, [0.25, 0.25, 0.5])
    assert sk.softmax([0, 0, 0], out=out) is out
    _same(out, sk.softmax(np.zeros(3)))
    with pytest.raises(SoftmaxkitTypeError, match="`out` must have the dtype"):
        sk.pmf_normalize(np.array([1, 1, 2]), out=np.empty(3, dtype=np.int64))


def test_a_byte_swapped_input_takes_an_out_of_its_own_dtype(kernel_path):
    x = _scores((4, 60), np.dtype(">f4"))
    expected = sk.softmax(x.copy())
    assert expected.dtype == np.dtype(">f4")
    out = np.empty((4, 60), dtype=">f4")
    assert sk.softmax(x, out=out) is out
    _same(out, expected)
    assert sk.softmax(x, out=x) is x
    _same(x, expected)
    with pytest.raises(SoftmaxkitTypeError, match="`out` must have the dtype"):
        sk.softmax(x, out=np.empty((4, 60), dtype=np.float32))


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "pmf_normalize"])
@pytest.mark.parametrize("shape", [(0, 5), (3, 0), ()])
def test_empty_and_0d_input(kernel_path, name, shape):
    x = np.ones(shape)
    axis = () if shape == () else -1
    expected = getattr(sk, name)(x.copy(), axis=axis)
    out = np.full(shape, 7.0)
    assert getattr(sk, name)(x, axis=axis, out=out) is out
    _same(out, np.asarray(expected))


# --- what is refused, and that a refusal leaves out unchanged -----------------------------


def _bad_outs(shape: tuple[int, ...], dtype: Any) -> list:
    read_only = np.full(shape, 7.0, dtype=dtype)
    read_only.flags.writeable = False
    return [
        pytest.param(
            np.full(shape, 7.0, dtype=dtype).tolist(),
            SoftmaxkitTypeError,
            "a NumPy array",
            id="list",
        ),
        pytest.param(
            torch.full(shape, 7.0), SoftmaxkitTypeError, "got torch.Tensor", id="torch tensor"
        ),
        pytest.param(
            jnp.full(shape, 7.0), SoftmaxkitTypeError, "must be a NumPy array", id="jax array"
        ),
        pytest.param(
            np.full(shape[::-1], 7.0, dtype=dtype), SoftmaxkitValueError, "shape", id="transposed"
        ),
        pytest.param(
            np.full(shape[1:], 7.0, dtype=dtype), SoftmaxkitValueError, "shape", id="broadcastable"
        ),
        pytest.param(
            np.full(shape, 7.0, dtype=np.float32), SoftmaxkitTypeError, "dtype", id="float32"
        ),
        pytest.param(
            np.full(shape, 7.0, dtype=dtype).astype(">f8"),
            SoftmaxkitTypeError,
            "dtype",
            id="byte-swapped",
        ),
        pytest.param(read_only, SoftmaxkitValueError, "writeable", id="read-only"),
    ]


@pytest.mark.parametrize(("bad", "error", "words"), _bad_outs((4, 6), np.float64))
@pytest.mark.parametrize("name", FUNCTIONS)
def test_a_bad_out_is_refused_by_name_and_left_unchanged(kernel_path, name, bad, error, words):
    inputs = _inputs(name, (4, 6), -1, np.float64)
    before = np.array(bad.tolist() if hasattr(bad, "tolist") else bad)
    keyword = "grad_out" if name == "cross_entropy_grad" else "out"
    with pytest.raises(error, match=f"`{keyword}`.*{words}"):
        _call(name, inputs["args"], -1, bad)
    after = np.array(bad.tolist() if hasattr(bad, "tolist") else bad)
    np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize("library", ["torch", "jax"])
@pytest.mark.parametrize("name", FUNCTIONS)
def test_out_with_torch_or_jax_input_is_refused(kernel_path, name, library):
    inputs = _inputs(name, (4, 6), -1, np.float64)
    convert = torch.from_numpy if library == "torch" else jnp.asarray
    args = [convert(a) for a in inputs["args"]]
    out = np.full((4, 6), 7.0)
    keyword = "grad_out" if name == "cross_entropy_grad" else "out"
    with pytest.raises(SoftmaxkitTypeError, match=f"`{keyword}` is for NumPy input only"):
        _call(name, args, -1, out)
    assert (out == 7.0).all()


# A bad argument found after `out` was checked: a call that fails writes nothing.
LATE = [
    ("softmax", {"where": np.ones(5, dtype=bool)}, SoftmaxkitValueError),
    ("softmax", {"where": np.ones((4, 6))}, SoftmaxkitTypeError),
    ("log_softmax", {"temperature": -1.0}, SoftmaxkitValueError),
    ("log_softmax", {"axis": 2}, SoftmaxkitValueError),
    ("pmf_normalize", {"negative": True}, SoftmaxkitValueError),
    ("pmf_normalize", {"zero_row": True}, SoftmaxkitValueError),
    ("softmax_backward", {"short_y": True}, SoftmaxkitValueError),
    ("cross_entropy_grad", {"reduction": "avg"}, SoftmaxkitValueError),
    ("cross_entropy_grad", {"bad_target": True}, SoftmaxkitValueError),
    ("cross_entropy_grad", {"weight": np.ones(5)}, SoftmaxkitValueError),
]


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize(("name", "options", "error"), LATE)
def test_a_call_that_fails_leaves_out_unchanged(kernel_path, name, options, error, in_place):
    inputs = _inputs(name, (4, 6), -1, np.float64)
    args, options = inputs["args"], dict(options)
    axis = options.pop("axis", -1)
    if options.pop("negative", False):
        args[0][2, 3] = -1.0
    if options.pop("zero_row", False):
        args[0][3] = 0.0
    if options.pop("short_y", False):
        args[1] = args[1][:, :5]
    if options.pop("bad_target", False):
        args[1][3] = 6
    out = args[0] if in_place else np.full((4, 6), 7.0)
    before = out.copy()
    with pytest.raises(error):
        _call(name, args, axis, out, **options)
    _same(out, before)


def test_a_weight_the_portable_path_refuses_never_reaches_the_kernel(kernel_path):
    """A row the kernel hands back (+inf logit) after it wrote grad_out: the portable path must
    not then raise on an argument the kernel took (a complex weight), or grad_out would be
    left half written."""
    logits = _scores((8, 50), np.float64)
    logits[5] = 1.0
    logits[5, 7] = INF
    weight = np.ones(50, dtype=np.complex128)
    out = np.full((8, 50), 7.0)
    with pytest.raises(SoftmaxkitTypeError, match="`weight`"):
        sk.cross_entropy_grad(logits, np.arange(8), weight=weight, grad_out=out)
    assert (out == 7.0).all()


@pytest.mark.parametrize("in_place", [False, True])
def test_rows_the_kernel_hands_back_are_written_too(kernel_path, in_place):
    """+inf, all -inf and NaN rows and a -inf target logit go to the portable path, which
    writes the whole of grad_out (no row left as the kernel had it)."""
    logits = _scores((8, 50), np.float32, seed=3)
    logits[0, 4] = INF
    logits[1] = -INF
    logits[2, 9] = np.nan
    logits[3, 0] = -INF
    target = np.array([4, 2, 9, 0, 1, 2, 3, 4])
    loss, expected = sk.cross_entropy_grad(logits.copy(), target)
    out = logits if in_place else np.full((8, 50), 7.0, dtype=np.float32)
    loss2, dlogits = sk.cross_entropy_grad(logits, target, grad_out=out)
    assert dlogits is out
    _same(out, expected)
    _same(np.asarray(loss2), np.asarray(loss))


def test_both_paths_write_the_same_values():
    """Not bit for bit (the kernels have their own exp), but to the kernels' accuracy."""
    for name in FUNCTIONS:
        inputs = _inputs(name, (5, 133), -1, np.float64)
        outs = []
        for on in (False, True):
            out = np.empty((5, 133))
            with _kernels.use(on):
                _call(name, _copies(inputs), -1, out)
            outs.append(out)
        np.testing.assert_allclose(outs[1], outs[0], rtol=1e-13, atol=1e-300)
