"""The edge-case matrix of the core functions, one named test per case.

Every test takes the `engine` fixture: NumPy once per kernel path (portable array-API code,
and the compiled kernels once they exist), then torch and JAX.  Expected values are written
out by hand or come from mpmath, never from another backend.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import scipy.special
import torch
from conftest import Backend
from softmax_helpers import call, grad, mp_softmax

import softmaxkit as sk

INF = math.inf
NAN = math.nan
LOG_HALF = math.log(0.5)


# --- infinities ------------------------------------------------------------------------------


def test_posinf_entries_share_mass(engine):
    x = [1.0, INF, INF]
    np.testing.assert_array_equal(call(engine, sk.softmax, x), [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(call(engine, sk.log_softmax, x), [-INF, LOG_HALF, LOG_HALF])
    assert call(engine, sk.logsumexp, x) == INF


def test_posinf_entries_share_mass_with_temperature(engine):
    x = [INF, 0.0, INF, INF]
    np.testing.assert_array_equal(
        call(engine, sk.softmax, x, temperature=0.25), [1 / 3, 0.0, 1 / 3, 1 / 3]
    )


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_posinf_entries_get_zero_grad(name):
    """The output is constant under any finite change of x here, so autodiff gives exactly 0.

    (NumPy's softmax_backward sees only p = [0, .5, .5] and returns the Jacobian-vector
    product of a finite row with those probabilities: a different, documented question.)
    """
    g = grad(Backend(name), sk.softmax, [1.0, INF, INF], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.0])


def test_scipy_and_torch_give_nan_where_we_share_mass():
    """Pins a deliberate difference: the peers return NaN for a row holding +inf."""
    x = np.array([1.0, INF, INF])
    with np.errstate(invalid="ignore"):
        assert np.isnan(scipy.special.softmax(x)).all()
    assert torch.isnan(torch.softmax(torch.from_numpy(x), dim=-1)).all()
    np.testing.assert_array_equal(sk.softmax(x), [0.0, 0.5, 0.5])


def test_posinf_beside_neg_inf_takes_all_mass(engine):
    np.testing.assert_array_equal(call(engine, sk.softmax, [INF, -INF]), [1.0, 0.0])
    assert call(engine, sk.logsumexp, [INF, -INF]) == INF


def test_neg_inf_entries_get_zero_probability(engine):
    x = [-INF, 0.0, 0.0]
    np.testing.assert_array_equal(call(engine, sk.softmax, x), [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(call(engine, sk.log_softmax, x), [-INF, LOG_HALF, LOG_HALF])
    np.testing.assert_array_equal(grad(engine, sk.log_softmax, x, [5.0, 1.0, 0.0]), [0, 0.5, -0.5])


def test_all_neg_inf_slice_gives_zero_probs_and_zero_grad(engine):
    x = np.array([[-INF, -INF, -INF], [0.0, 1.0, 2.0]])
    w = np.arange(6.0).reshape(2, 3)
    p = call(engine, sk.softmax, x)
    np.testing.assert_array_equal(p[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(p[1], mp_softmax([0.0, 1.0, 2.0])[0], rtol=1e-15)
    np.testing.assert_array_equal(call(engine, sk.log_softmax, x)[0], [-INF] * 3)
    assert call(engine, sk.logsumexp, x)[0] == -INF
    for fn, weights in [(sk.softmax, w), (sk.log_softmax, w), (sk.logsumexp, w[:, 1])]:
        g = grad(engine, fn, x, weights)
        np.testing.assert_array_equal(g[0], [0.0, 0.0, 0.0])
        assert np.isfinite(g).all()


# --- masks -----------------------------------------------------------------------------------


def test_wholly_masked_slice_gives_zero_probs_and_zero_grad(engine):
    x = np.array([[3.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    where = np.array([[False, False, False], [True, True, True]])
    w = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(call(engine, sk.softmax, x, where=where)[0], [0.0] * 3)
    np.testing.assert_array_equal(call(engine, sk.log_softmax, x, where=where)[0], [-INF] * 3)
    lse = call(engine, sk.logsumexp, x, where=where)
    assert lse[0] == -INF
    np.testing.assert_allclose(lse[1], mp_softmax(x[1])[2], rtol=1e-15)
    for fn, weights in [(sk.softmax, w), (sk.log_softmax, w), (sk.logsumexp, w[:, 1])]:
        g = grad(engine, fn, x, weights, where=where)
        np.testing.assert_array_equal(g[0], [0.0, 0.0, 0.0])
        assert np.isfinite(g).all()


@pytest.mark.parametrize("masked_value", [INF, -INF, NAN, 1e308, -1e308], ids=str)
def test_masked_entries_never_influence_others(engine, masked_value):
    x = np.array([1.0, masked_value, 2.0, masked_value, 0.5])
    where = np.array([True, False, True, False, True])
    kept = [1.0, 2.0, 0.5]
    p_ref, logp_ref, lse_ref = mp_softmax(kept)

    p = call(engine, sk.softmax, x, where=where)
    np.testing.assert_allclose(p[where], p_ref, rtol=1e-15)
    np.testing.assert_array_equal(p[~where], [0.0, 0.0])
    logp = call(engine, sk.log_softmax, x, where=where)
    np.testing.assert_allclose(logp[where], logp_ref, rtol=1e-15)
    np.testing.assert_array_equal(logp[~where], [-INF, -INF])
    np.testing.assert_allclose(call(engine, sk.logsumexp, x, where=where), lse_ref, rtol=1e-15)

    w = np.array([1.0, 7.0, -2.0, 3.0, 0.5])
    for fn, weights in [(sk.softmax, w), (sk.log_softmax, w), (sk.logsumexp, 1.0)]:
        g = grad(engine, fn, x, weights, where=where)
        np.testing.assert_array_equal(g[~where], [0.0, 0.0])
        assert np.isfinite(g).all()


def test_masked_entries_never_influence_others_under_temperature(engine):
    x = np.array([[1.0, 1e308, 2.0], [NAN, 0.0, 1.0]])
    where = np.array([[True, False, True], [False, True, True]])
    p = call(engine, sk.softmax, x, where=where, temperature=0.5)
    np.testing.assert_allclose(p[0][[0, 2]], mp_softmax([1.0, 2.0], 0.5)[0], rtol=1e-15)
    np.testing.assert_allclose(p[1][1:], mp_softmax([0.0, 1.0], 0.5)[0], rtol=1e-15)
    assert p[0, 1] == 0.0 and p[1, 0] == 0.0


def test_where_broadcasts_along_rows(engine):
    x = np.array([[1.0, 50.0, 2.0], [3.0, -50.0, 4.0]])
    p = call(engine, sk.softmax, x, where=np.array([True, False, True]))
    for row in range(2):
        np.testing.assert_allclose(p[row, [0, 2]], mp_softmax(x[row, [0, 2]])[0], rtol=1e-15)
    assert (p[:, 1] == 0).all()


def test_softmax_backward_ignores_grad_where_p_is_zero(engine):
    p = np.array([0.25, 0.0, 0.75])
    g = np.array([1.0, INF, 3.0])
    out = call(engine, lambda gg: sk.softmax_backward(gg, engine.asarray(p)), g)
    np.testing.assert_allclose(out, [0.25 * (1 - 2.5), 0.0, 0.75 * (3 - 2.5)], rtol=1e-15)


def test_log_softmax_backward_ignores_grad_where_logp_is_neg_inf(engine):
    logp = np.array([LOG_HALF, -INF, LOG_HALF])
    g = np.array([1.0, NAN, 3.0])
    out = call(engine, lambda gg: sk.log_softmax_backward(gg, engine.asarray(logp)), g)
    np.testing.assert_allclose(out, [1 - 2.0, 0.0, 3 - 2.0], rtol=1e-15)


# --- any finite input is safe ------------------------------------------------------------------


def test_huge_finite_spread_is_safe(engine):
    x = [1e30, -1e30, 0.0]
    np.testing.assert_array_equal(call(engine, sk.softmax, x), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(call(engine, sk.log_softmax, x), [0.0, -2e30, -1e30])
    assert call(engine, sk.logsumexp, x) == 1e30


def test_largest_finite_floats_do_not_overflow(engine):
    """x - max falls below -DBL_MAX here; -inf is the correctly rounded answer, without warnings."""
    x = [1.7e308, -1.7e308, 0.0]
    np.testing.assert_array_equal(call(engine, sk.softmax, x), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(call(engine, sk.log_softmax, x), [0.0, -INF, -1.7e308])
    assert call(engine, sk.logsumexp, x) == 1.7e308
    np.testing.assert_array_equal(call(engine, sk.softmax, x, temperature=1e-3), [1.0, 0.0, 0.0])


def test_equal_large_values_split_evenly(engine):
    np.testing.assert_array_equal(call(engine, sk.softmax, [1000.0, 1000.0]), [0.5, 0.5])
    np.testing.assert_allclose(
        call(engine, sk.logsumexp, [1000.0, 1000.0]), 1000 + math.log(2), rtol=1e-15
    )
    np.testing.assert_array_equal(call(engine, sk.log_softmax, [-1000.0, -1000.0]), [LOG_HALF] * 2)


def test_tiny_probabilities_keep_relative_accuracy(engine):
    # -92.125 and -690.5 are exact in binary, so x - max is exact and only exp rounds.
    x = [0.0, -92.125, -690.5, -5.0]
    p = call(engine, sk.softmax, x)
    ref, logp_ref, _ = mp_softmax(x)
    assert 1e-41 < p[1] < 1e-39 and 1e-301 < p[2] < 1e-299
    np.testing.assert_allclose(p, ref, rtol=1e-15, atol=0)
    np.testing.assert_allclose(call(engine, sk.log_softmax, x), logp_ref, rtol=1e-15)


def test_log_softmax_is_exact_where_softmax_underflows(engine):
    logp = call(engine, sk.log_softmax, [0.0, -1000.0, -1e6])
    np.testing.assert_array_equal(logp, [0.0, -1000.0, -1e6])


def test_row_of_a_million_equal_values(engine):
    for dtype in (np.float64, np.float32):
        p = call(engine, sk.softmax, np.full(10**6, 3.5, dtype=dtype))
        assert p.dtype == dtype
        np.testing.assert_array_equal(p, np.full(10**6, dtype(1e-6)))


def test_row_of_a_million_values_matches_exact_sum(engine):
    x = np.random.default_rng(7).normal(scale=5.0, size=10**6)
    z = x - x.max()
    ref = np.exp(z) / math.fsum(np.exp(z))  # fsum: the sum of the rounded exps, exactly
    p = call(engine, sk.softmax, x)
    np.testing.assert_allclose(p, ref, rtol=2e-13)
    assert abs(math.fsum(p) - 1) < 1e-12
    np.testing.assert_allclose(
        call(engine, sk.logsumexp, x), x.max() + np.log(math.fsum(np.exp(z)))
    )


# --- NaN -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [sk.softmax, sk.log_softmax, sk.logsumexp], ids=lambda f: f.__name__)
def test_nan_stays_in_its_slice(engine, fn):
    x = np.array([[1.0, NAN, 2.0], [1.0, 2.0, 3.0], [INF, NAN, 0.0]])
    out = call(engine, fn, x)
    assert np.isnan(out[0]).all() and np.isnan(out[2]).all()
    ref = mp_softmax(x[1])
    expected = {sk.softmax: ref[0], sk.log_softmax: ref[1], sk.logsumexp: ref[2]}[fn]
    np.testing.assert_allclose(out[1], expected, rtol=1e-15)


@pytest.mark.parametrize("fn", [sk.softmax, sk.log_softmax, sk.logsumexp], ids=lambda f: f.__name__)
def test_nan_stays_in_its_slice_with_tuple_axis(engine, fn):
    x = np.arange(24.0).reshape(2, 3, 4) / 7
    x[1, 2, 0] = NAN
    out = call(engine, fn, x, axis=(0, 2))
    clean = np.moveaxis(x, 1, 0).reshape(3, -1)  # slices over axes (0, 2), one per row
    for j in (0, 1):
        ref = mp_softmax(clean[j])
        if fn is sk.logsumexp:
            np.testing.assert_allclose(out[j], ref[2], rtol=1e-15)
        else:
            got = np.moveaxis(out, 1, 0)[j].reshape(-1)
            np.testing.assert_allclose(got, ref[0] if fn is sk.softmax else ref[1], rtol=1e-14)
    assert np.isnan(out[..., 2, :] if fn is not sk.logsumexp else out[2]).all()


def test_nan_grad_stays_in_its_slice(engine):
    x = np.array([[1.0, NAN], [1.0, 2.0]])
    g = grad(engine, sk.softmax, x, [[1.0, 0.0], [1.0, 0.0]])
    p = 1 / (1 + math.e)  # softmax([1, 2])[0]
    np.testing.assert_allclose(g[1], [p * (1 - p), -p * (1 - p)], rtol=1e-15)


# --- empty input -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0), (2, 0, 4)], ids=str)
@pytest.mark.parametrize("fn", [sk.softmax, sk.log_softmax], ids=lambda f: f.__name__)
def test_empty_input_gives_empty_output(engine, fn, shape):
    for dtype in (np.float32, np.float64):
        out = call(engine, fn, np.zeros(shape, dtype=dtype))
        assert out.shape == shape and out.dtype == dtype


def test_logsumexp_of_empty_slice_is_neg_inf(engine):
    np.testing.assert_array_equal(call(engine, sk.logsumexp, np.zeros((2, 0))), [-INF, -INF])
    out = call(engine, sk.logsumexp, np.zeros((2, 0)), keepdims=True)
    assert out.shape == (2, 1) and (out == -INF).all()
    np.testing.assert_array_equal(call(engine, sk.logsumexp, np.zeros((0, 3)), axis=0), [-INF] * 3)
    out = call(engine, sk.logsumexp, np.zeros(0))
    assert out.shape == () and out == -INF
    out = call(engine, sk.logsumexp, np.zeros((2, 0, 3)), axis=(1, 2), keepdims=True)
    assert out.shape == (2, 1, 1) and (out == -INF).all()


def test_logsumexp_of_empty_batch_is_empty(engine):
    out = call(engine, sk.logsumexp, np.zeros((0, 3)))
    assert out.shape == (0,)
    assert call(engine, sk.logsumexp, np.zeros((0, 3)), keepdims=True).shape == (0, 1)


def test_pmf_normalize_of_empty_input_is_empty(engine):
    assert call(engine, sk.pmf_normalize, np.zeros((2, 0))).shape == (2, 0)
    assert call(engine, sk.pmf_normalize, np.zeros((0, 4))).shape == (0, 4)


# --- dtypes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [sk.softmax, sk.pmf_normalize], ids=lambda f: f.__name__)
def test_float16_row_of_4096_equal_values_gives_exactly_1_over_4096(engine, fn):
    x = engine.asarray(np.full(4096, 1.0, dtype=np.float16))
    out = fn(x)
    assert engine.is_native(out) and out.dtype == x.dtype
    np.testing.assert_array_equal(engine.to_numpy(out).astype(np.float64), 1 / 4096)


@pytest.mark.parametrize("fn", [sk.softmax, sk.pmf_normalize], ids=lambda f: f.__name__)
def test_bfloat16_row_of_4096_equal_values_gives_exactly_1_over_4096(engine, fn):
    if engine.name == "torch":
        x = torch.ones(4096, dtype=torch.bfloat16)
    else:  # NumPy has bfloat16 only through ml_dtypes, which JAX uses too
        x = engine.asarray(np.ones(4096, dtype=ml_dtypes.bfloat16))
    out = fn(x)
    assert engine.is_native(out) and out.dtype == x.dtype
    values = out.float() if engine.name == "torch" else out.astype(np.float32)
    np.testing.assert_array_equal(engine.to_numpy(values), 1 / 4096)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_dtype_is_kept(engine, dtype):
    x = np.array([[1.0, 2.0, -INF], [0.5, 0.25, 3.0]], dtype=dtype)
    for fn in (sk.softmax, sk.log_softmax, sk.logsumexp, sk.sigmoid, sk.log_sigmoid):
        assert call(engine, fn, x).dtype == dtype, fn.__name__


def test_float16_log_softmax_and_logsumexp_accumulate_in_float32(engine):
    x = np.zeros(4096, dtype=np.float16)
    np.testing.assert_array_equal(
        call(engine, sk.log_softmax, x), np.float16(-math.log(4096)) * np.ones(4096)
    )
    assert call(engine, sk.logsumexp, x) == np.float16(math.log(4096))


def test_integer_input_promotes_to_default_float(engine):
    default = {"numpy": np.float64, "torch": np.float32, "jax": np.float64}[engine.name]
    for fn in (sk.softmax, sk.log_softmax, sk.logsumexp, sk.pmf_normalize, sk.sigmoid):
        out = call(engine, fn, np.array([1, 2, 3]))
        assert out.dtype == default, fn.__name__
    np.testing.assert_allclose(
        call(engine, sk.softmax, np.array([1, 2, 3])), mp_softmax([1, 2, 3])[0], rtol=1e-6
    )


def test_boolean_input_promotes_to_default_float(engine):
    p = call(engine, sk.softmax, np.array([True, False]))
    np.testing.assert_allclose(p, [1 / (1 + math.exp(-1)), 1 / (1 + math.e)], rtol=1e-6)


# --- small shapes ----------------------------------------------------------------------------


def test_single_entry_slice_gives_one(engine):
    np.testing.assert_array_equal(call(engine, sk.softmax, [[-3.0], [1e300]]), [[1.0], [1.0]])
    np.testing.assert_array_equal(call(engine, sk.log_softmax, [[-3.0], [1e300]]), [[0.0], [0.0]])


def test_zero_dim_input_with_empty_axis_tuple(engine):
    out = call(engine, sk.softmax, np.array(4.0), axis=())
    assert out.shape == () and out == 1.0
    assert call(engine, sk.logsumexp, np.array(4.0), axis=None) == 4.0


# --- sigmoid and log_sigmoid -------------------------------------------------------------------


def test_sigmoid_is_stable_at_the_extremes(engine):
    x = [-INF, -1000.0, -40.0, 0.0, 40.0, 1000.0, INF, NAN]
    out = call(engine, sk.sigmoid, x)
    np.testing.assert_allclose(
        out[:7], [0.0, 0.0, math.exp(-40) / (1 + math.exp(-40)), 0.5, 1.0, 1.0, 1.0], rtol=1e-15
    )
    assert np.isnan(out[7])


def test_log_sigmoid_is_exact_for_large_negative_input(engine):
    x = [-INF, -1000.0, -40.0, 0.0, 40.0, 1000.0, INF]
    out = call(engine, sk.log_sigmoid, x)
    expected = [-INF, -1000.0, -40 - math.log1p(math.exp(-40)), LOG_HALF, -math.exp(-40), 0.0, 0.0]
    np.testing.assert_allclose(out, expected, rtol=1e-15)


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_sigmoid_grads_are_finite_at_the_extremes(name):
    bk = Backend(name)
    x = [-INF, -1000.0, 0.0, 1000.0, INF]
    np.testing.assert_array_equal(grad(bk, sk.sigmoid, x, 1.0), [0, 0, 0.25, 0, 0])
    # log_sigmoid(-inf) = -inf is left out of the loss by `grad`, so it starts at -1000.
    np.testing.assert_array_equal(grad(bk, sk.log_sigmoid, x[1:], 1.0), [1, 0.5, 0, 0])


# --- pmf_normalize ---------------------------------------------------------------------------


def test_pmf_normalize_survives_totals_beyond_float_max(engine):
    out = call(engine, sk.pmf_normalize, np.array([[1e308, 1e308, 1e308], [1.0, 3.0, 0.0]]))
    np.testing.assert_allclose(out, [[1 / 3, 1 / 3, 1 / 3], [0.25, 0.75, 0.0]], rtol=1e-15)


def test_pmf_normalize_vehicle_counts(engine):
    out = call(engine, sk.pmf_normalize, np.array([100.0, 300.0, 600.0]))
    np.testing.assert_allclose(out, [0.1, 0.3, 0.6], rtol=1e-15)
