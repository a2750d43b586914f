"""The compiled kernels (softmaxkit._kernels): equal to the portable path, accurate, switchable.

The edge-case matrix itself runs on both paths through the `engine` / `kernel_path` fixtures
of conftest.py; here are the layouts the kernels special-case (long rows, short rows tiled
across rows, blocks of columns of a non-last axis, axes moved together), the accuracy of the
kernels' own exp against mpmath, the fused cross-entropy, and the switches.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import mpmath
import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _kernels

INF = np.inf

# (shape, axis): rows longer than a vector, short rows (tiled across rows, more rows than one
# tile), a non-last axis (blocks of columns, with a partial block), axes that are neighbours,
# axes that are not (moved together), every axis, no axis.
LAYOUTS = [
    ((5, 133), -1),
    ((300, 5), -1),
    ((2, 1), -1),
    ((3, 17, 70), 1),
    ((9, 130), 0),
    ((4, 5, 6), (1, 2)),
    ((3, 17, 7), (0, 2)),
    ((3, 4, 5), None),
    ((2, 3), ()),
]

FORWARD = ("softmax", "log_softmax", "logsumexp")
BACKWARD = ("softmax_backward", "log_softmax_backward")


def _scores(shape, dtype, seed=0):
    """Random logits with -inf, +inf and NaN planted in a few slices (not in most)."""
    rng = np.random.default_rng(seed)
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    flat = x.reshape(-1)
    if flat.size > 40:
        flat[[3, 11, 17]] = -INF
        flat[29] = INF
        flat[37] = np.nan
    return x


def _both(fn, *args, **kwargs):
    with _kernels.use(False):
        portable = fn(*args, **kwargs)
    with _kernels.use(True):
        compiled = fn(*args, **kwargs)
    return portable, compiled


def _assert_close(compiled, portable, dtype):
    assert compiled.dtype == portable.dtype and compiled.shape == portable.shape
    np.testing.assert_array_equal(np.isnan(compiled), np.isnan(portable))
    finite = np.isfinite(portable)
    np.testing.assert_array_equal(
        compiled[~finite & ~np.isnan(portable)], portable[~finite & ~np.isnan(portable)]
    )
    rtol = 2e-6 if dtype == np.float32 else 1e-14
    tiny = np.finfo(dtype).tiny
    np.testing.assert_allclose(compiled[finite], portable[finite], rtol=rtol, atol=tiny * 1e3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS)
@pytest.mark.parametrize("name", FORWARD)
def test_forward_kernels_equal_portable_path(name, shape, axis, dtype):
    x = _scores(shape, dtype)
    kwargs = {} if name == "logsumexp" else {"temperature": 0.7}
    portable, compiled = _both(getattr(sk, name), x, axis=axis, **kwargs)
    _assert_close(compiled, portable, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS[:-1])
@pytest.mark.parametrize("name", BACKWARD)
def test_backward_kernels_equal_portable_path(name, shape, axis, dtype):
    x = _scores(shape, dtype)
    x[np.isnan(x) | (x == INF)] = 0.0  # backward of rows that hold +inf or NaN is moot
    y = (sk.softmax if name == "softmax_backward" else sk.log_softmax)(x, axis=axis)
    g = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    # a huge grad where y says the entry is constant must not spread
    if g.size > 3:
        g.reshape(-1)[3] = 1e30
    portable, compiled = _both(getattr(sk, name), g, y, axis=axis)
    # dx = p (g - sum(g p)) cancels where g is near its mean: compare on the scale of dx
    # (the kernel sums in float64, the portable path in the working dtype).
    assert compiled.dtype == portable.dtype and compiled.shape == portable.shape
    eps = 4 * np.finfo(dtype).eps
    scale = np.abs(portable[np.isfinite(portable)]).max()
    np.testing.assert_allclose(compiled, portable, rtol=eps, atol=eps * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", FORWARD)
def test_long_single_row_shared_between_threads(name, dtype):
    x = (3 * np.random.default_rng(6).standard_normal((1, 70_001))).astype(dtype)
    x[0, 123] = -INF
    kwargs = {} if name == "logsumexp" else {"temperature": 1.5}
    portable, compiled = _both(getattr(sk, name), x, **kwargs)
    if dtype == np.float32 and name == "softmax":
        # Each piece of the row is shifted by its own max: (x - m_piece) / T rounds
        # differently from (x - max) / T, by up to |z| 2^-24 in the exponent, so compare both
        # paths with the exact values rather than with each other.
        exact = sk.softmax(x.astype(np.float64), **kwargs)
        z = np.abs(np.log(np.maximum(exact, 1e-300)))
        for got in (compiled, portable):
            finite = exact > np.finfo(np.float32).tiny
            err = np.abs(got[finite] - exact[finite]) / exact[finite]
            assert (err <= 1e-6 + 2.0**-22 * z[finite]).all()
    else:
        _assert_close(compiled, portable, dtype)
    x[0, 4567] = INF  # the shared row's special case
    portable, compiled = _both(getattr(sk, name), x, **kwargs)
    _assert_close(compiled, portable, dtype)


def test_long_row_with_a_wholly_neg_inf_piece():
    """A piece of the shared row that is all -inf gets 0; one NaN in it makes the row NaN."""
    x = np.random.default_rng(9).standard_normal((1, 80_000))
    x[0, :20_000] = -INF
    portable, compiled = _both(sk.softmax, x)
    np.testing.assert_array_equal(compiled[0, :20_000], 0.0)
    _assert_close(compiled, portable, np.float64)
    x[0, 10_000] = np.nan
    portable, compiled = _both(sk.softmax, x)
    assert np.isnan(compiled).all() and np.isnan(portable).all()


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_output_beyond_the_caches_is_streamed_to_the_same_values(name):
    """At 32 MB and above the last pass writes with non-temporal stores from a scratch row."""
    x = _scores((1030, 8193), np.float32)  # 33.8 MB, a row length that misaligns most rows
    x[5] = -INF
    portable, compiled = _both(getattr(sk, name), x, temperature=0.9)
    _assert_close(compiled, portable, np.float32)


def test_masked_slot_in_each_vector_lane_leaves_the_others_alone():
    """Pins a GCC 12 -O3 miscompile we met: a zero in one lane dropped the lane 8 further on."""
    for z, k in itertools.product(range(16), range(33)):
        g = np.zeros((1, 33))
        g[0, k] = 1.0
        p = np.full((1, 33), 1 / 33)
        p[0, z] = 0.0
        logp = np.where(p == 0, -INF, np.log(1 / 33))
        for fn, y in ((sk.softmax_backward, p), (sk.log_softmax_backward, logp)):
            portable, compiled = _both(fn, g, y)
            np.testing.assert_allclose(compiled, portable, rtol=1e-15, atol=1e-17)


def _mp_softmax(row):
    mpmath.mp.dps = 40
    e = [mpmath.exp(mpmath.mpf(float(v))) for v in row]
    total = sum(e)
    return np.array([float(v / total) for v in e])


def test_float64_softmax_is_within_1e14_of_mpmath():
    # Dyadic inputs make x - max exact, so the error measured is the kernel's own.
    rng = np.random.default_rng(2)
    x = rng.integers(-60_000, 2_000, size=(3, 700)) / 1024.0
    p = sk.softmax(x)
    for row, got in zip(x, p, strict=True):
        exact = _mp_softmax(row)
        normal = exact > np.finfo(np.float64).tiny
        np.testing.assert_allclose(got[normal], exact[normal], rtol=1e-14, atol=0)


def test_float32_softmax_is_within_1e6_of_exact():
    """The kernel's own error: inputs with 8 fraction bits make x - max exact in float32.

    (For general float32 input the rounding of x - max itself, up to half an ulp of the
    spread, dominates on every path and in every float32 softmax.)
    """
    rng = np.random.default_rng(3)
    for spread in (1.0, 8.0, 40.0):
        x = (np.round(spread * rng.standard_normal((16, 4000)) * 256) / 256).astype(np.float32)
        exact = sk.softmax(x.astype(np.float64))
        got = sk.softmax(x)
        normal = exact > np.finfo(np.float32).tiny
        rel = np.abs(got[normal] - exact[normal]) / exact[normal]
        assert rel.max() <= 1e-6


def test_exp_at_the_ends_of_its_range():
    """Entries far below the max underflow to 0 exactly as np.exp does; logs stay exact."""
    for dtype in (np.float32, np.float64):
        x = np.array([[0.0, -50.0, -90.0, -104.0, -200.0, -800.0, -1e30]], dtype=dtype)
        portable, compiled = _both(sk.softmax, x)
        np.testing.assert_allclose(compiled, portable, rtol=1e-6, atol=np.finfo(dtype).tiny * 4)
        # log-probabilities against the exact values: the max entry's is -log1p(e^-50 + ...),
        # about -1.93e-22, which the kernels keep in float32 as well
        exact = x.astype(np.float64) - np.logaddexp.reduce(x.astype(np.float64), axis=-1)
        exact[0, 0] = -np.log1p(np.exp(-50.0) + np.exp(-90.0) + np.exp(-104.0))
        compiled = sk.log_softmax(x)
        np.testing.assert_allclose(compiled, exact.astype(dtype), rtol=2 * np.finfo(dtype).eps)


def test_same_result_on_one_and_two_threads():
    x = _scores((64, 4100), np.float32)
    threads = _kernels.num_threads()
    try:
        _kernels.set_num_threads(1)
        one = sk.log_softmax(x)
        _kernels.set_num_threads(2)
        two = sk.log_softmax(x)
    finally:
        _kernels.set_num_threads(threads)
    np.testing.assert_array_equal(one, two)


def test_non_contiguous_and_half_precision_input():
    x = _scores((40, 30), np.float64)[:, ::3].T  # strided, transposed
    portable, compiled = _both(sk.softmax, x, axis=0)
    _assert_close(compiled, portable, np.float64)
    h = np.random.default_rng(4).standard_normal((7, 20)).astype(np.float16)
    portable, compiled = _both(sk.log_softmax, h)
    assert compiled.dtype == np.float16
    np.testing.assert_allclose(compiled.astype(np.float32), portable.astype(np.float32), rtol=1e-3)


def test_big_endian_input_is_read_as_numbers_not_bytes():
    x = _scores((6, 50), np.float64).astype(">f8")
    for fn in (sk.softmax, sk.logsumexp):
        portable, compiled = _both(fn, x)
        _assert_close(compiled.astype(np.float64), portable.astype(np.float64), np.float64)


def test_set_enabled_and_use_switch_the_path():
    assert _kernels.enabled()
    with _kernels.use(False):
        assert not _kernels.enabled()
    assert _kernels.enabled()
    previous = _kernels.set_enabled(False)
    try:
        assert previous is True and not _kernels.enabled()
    finally:
        _kernels.set_enabled(previous)


def test_environment_variable_turns_kernels_off():
    code = "from softmaxkit import _kernels; print(_kernels.enabled(), _kernels.available())"
    env = dict(os.environ, SOFTMAXKIT_KERNELS="0")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "True"]


def test_kernel_refuses_a_buffer_of_the_wrong_size():
    x = np.zeros((2, 3), dtype=np.float32)
    out = np.empty((2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="`out` holds 16 bytes; the kernel expected 24"):
        _kernels._compiled().forward(x, out, 2, 3, 1, 1.0, 0, False)


# --- the fused cross-entropy ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
@pytest.mark.parametrize("weighted", [False, True])
def test_fused_cross_entropy_equals_portable(dtype, reduction, label_smoothing, weighted):
    rng = np.random.default_rng(5)
    x = (3 * rng.standard_normal((37, 11))).astype(dtype)
    x[4, 2] = -INF  # a -inf logit of a class with weight 0 and smoothing: 0, not NaN
    t = rng.integers(0, 11, 37)
    t[[1, 8, 9]] = -100
    w = None
    if weighted:
        w = rng.random(11) + 0.5
        w[2] = 0.0
    kwargs = dict(weight=w, reduction=reduction, label_smoothing=label_smoothing)
    (loss_p, grad_p), (loss_c, grad_c) = _both(sk.cross_entropy_grad, x, t, **kwargs)
    if not weighted and label_smoothing:
        assert np.isinf(loss_c).any() and np.isinf(loss_p).any()
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for p, c in ((loss_p, loss_c), (grad_p, grad_c)):
        assert p.dtype == c.dtype and p.shape == c.shape
        np.testing.assert_allclose(c, p, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("weighted", [False, True])
def test_fused_cross_entropy_streams_large_gradients_to_the_same_values(weighted):
    rng = np.random.default_rng(7)
    x = (3 * rng.standard_normal((1030, 8193))).astype(np.float32)
    t = rng.integers(0, 8193, 1030)
    t[:4] = -100
    w = rng.random(8193).astype(np.float32) + 0.5 if weighted else None
    kwargs = dict(weight=w, label_smoothing=0.1)
    (loss_p, grad_p), (loss_c, grad_c) = _both(sk.cross_entropy_grad, x, t, **kwargs)
    np.testing.assert_allclose(loss_c, loss_p, rtol=1e-5)
    np.testing.assert_allclose(grad_c, grad_p, rtol=1e-5, atol=1e-5 * np.abs(grad_p).max())


def test_fused_cross_entropy_leaves_nonfinite_rows_to_the_portable_path():
    x = np.array([[1.0, INF, 0.0], [-INF, -INF, -INF], [0.0, 1.0, 2.0], [np.nan, 0.0, 0.0]])
    t = np.array([1, 0, 2, 0])
    for reduction in ("mean", "none"):
        (loss_p, grad_p), (loss_c, grad_c) = _both(sk.cross_entropy_grad, x, t, reduction=reduction)
        np.testing.assert_array_equal(loss_c, loss_p)
        np.testing.assert_array_equal(grad_c, grad_p)


def test_fused_cross_entropy_with_nothing_kept_is_nan_with_zero_grad():
    x = np.ones((3, 4))
    loss, grad = sk.cross_entropy_grad(x, np.full(3, -100))
    assert np.isnan(loss) and not grad.any()


def test_fused_cross_entropy_keeps_the_error_messages():
    x = np.zeros((2, 3))
    with pytest.raises(sk.SoftmaxkitValueError, match=r"`target` must be in \[0, 3\) or -100"):
        sk.cross_entropy_grad(x, np.array([0, 3]))
    with pytest.raises(sk.SoftmaxkitValueError, match="`reduction`"):
        sk.cross_entropy_grad(x, np.array([0, 1]), reduction="max")
    with pytest.raises(sk.SoftmaxkitValueError, match="`label_smoothing`"):
        sk.cross_entropy_grad(x, np.array([0, 1]), label_smoothing=1.5)
