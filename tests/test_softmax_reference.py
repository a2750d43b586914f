"""Exact references: every core function against mpmath at 50 digits, on every backend.

Inputs are mostly dyadic (multiples of 1/64), so that ``x - max`` and ``x / T`` are exact
and the only roundings left are those of ``exp``, the sum and the division: then the
float64 tolerance can be 1e-15 (about 4.5 ulp).  Inputs of any scale are checked against
the error bound that the shift itself implies.  SciPy is a second, independent reference.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import scipy.special
from softmax_helpers import EPS32, EPS64, call, mp_rows, mp_softmax

import softmaxkit as sk

DYADIC = np.round(np.random.default_rng(20260401).normal(scale=8.0, size=(4, 7)) * 64) / 64
TINY = 5e-324  # the smallest subnormal: the absolute error floor of a subnormal result


@pytest.mark.parametrize("temperature", [1.0, 0.5, 4.0])
def test_softmax_matches_mpmath_on_dyadic_input(backend, temperature):
    p_ref, logp_ref, _ = mp_rows(DYADIC, temperature)
    p = call(backend, sk.softmax, DYADIC, temperature=temperature)
    np.testing.assert_allclose(p, p_ref, rtol=1e-15, atol=0)
    logp = call(backend, sk.log_softmax, DYADIC, temperature=temperature)
    np.testing.assert_allclose(logp, logp_ref, rtol=1e-15, atol=0)


def test_logsumexp_matches_mpmath_on_dyadic_input(backend):
    _, _, lse_ref = mp_rows(DYADIC)
    np.testing.assert_allclose(call(backend, sk.logsumexp, DYADIC), lse_ref, rtol=1e-15)
    out = call(backend, sk.logsumexp, DYADIC, axis=0, keepdims=True)
    assert out.shape == (1, 7)
    np.testing.assert_allclose(out[0], mp_rows(DYADIC.T)[2], rtol=1e-15)


def test_logsumexp_over_every_axis_matches_mpmath(backend):
    ref = mp_softmax(DYADIC.ravel())[2]
    np.testing.assert_allclose(call(backend, sk.logsumexp, DYADIC, axis=(0, 1)), ref, rtol=1e-15)
    np.testing.assert_allclose(call(backend, sk.logsumexp, DYADIC, axis=None), ref, rtol=1e-15)


def test_masked_logsumexp_matches_mpmath(backend):
    where = np.random.default_rng(1).random(DYADIC.shape) < 0.6
    where[:, 0] = True
    out = call(backend, sk.logsumexp, DYADIC, where=backend.asarray(where))
    ref = [mp_softmax(row[keep])[2] for row, keep in zip(DYADIC, where, strict=True)]
    np.testing.assert_allclose(out, ref, rtol=1e-15)


def test_log_softmax_keeps_relative_accuracy_near_zero(backend):
    """One entry dominating: log p ~ -1e-9, where log(sum) would lose six digits."""
    x = [0.0, -20.75, -21.5, -30.0]
    _, logp_ref, lse_ref = mp_softmax(x)
    assert -1e-8 < logp_ref[0] < -1e-10
    np.testing.assert_allclose(call(backend, sk.log_softmax, x), logp_ref, rtol=1e-15)
    np.testing.assert_allclose(call(backend, sk.logsumexp, x), lse_ref, rtol=1e-15)


def test_float32_log_softmax_keeps_relative_accuracy_near_zero(backend):
    """log p ~ -2.6e-7: a float32 log(sum) would be off by ~20% (its ulp at 1 is 1.2e-7)."""
    x = np.array([0.0, -15.5, -16.25, -17.0], dtype=np.float32)
    _, logp_ref, lse_ref = mp_softmax(x.astype(np.float64))
    assert -1e-6 < logp_ref[0] < -1e-7
    np.testing.assert_allclose(call(backend, sk.log_softmax, x), logp_ref, rtol=2 * EPS32)
    np.testing.assert_allclose(call(backend, sk.logsumexp, x), lse_ref, rtol=2 * EPS32)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0, 1e3])
def test_softmax_of_any_scale_is_within_the_shift_error_bound(backend, scale):
    """Rounding ``x - max`` costs ``|x - max| * eps/2`` absolute, so ``exp`` of it
    ``|z| * eps/2`` relative: the bound below is that plus a few ulp."""
    x = np.random.default_rng(int(math.log10(scale)) + 10).normal(scale=scale, size=(3, 9))
    for temperature in (1.0, 0.3):
        p_ref, logp_ref, _ = mp_rows(x, temperature)
        z = np.abs(x / temperature - (x / temperature).max(axis=-1, keepdims=True))
        p = call(backend, sk.softmax, x, temperature=temperature)
        bad = np.abs(p - p_ref) > 4 * EPS64 * (z + 1) * p_ref + TINY
        assert not bad.any(), (p[bad], p_ref[bad], z[bad])
        logp = call(backend, sk.log_softmax, x, temperature=temperature)
        assert (np.abs(logp - logp_ref) <= 4 * EPS64 * (z + np.abs(logp_ref) + 1)).all()


def test_float32_matches_mpmath(backend):
    x32 = DYADIC.astype(np.float32)
    p_ref, logp_ref, lse_ref = mp_rows(x32.astype(np.float64))
    p = call(backend, sk.softmax, x32)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, p_ref, rtol=1e-6, atol=0)
    np.testing.assert_allclose(call(backend, sk.log_softmax, x32), logp_ref, rtol=1e-6)
    np.testing.assert_allclose(call(backend, sk.logsumexp, x32), lse_ref, rtol=1e-6)


def test_float16_matches_mpmath_to_its_own_precision(backend):
    x16 = (DYADIC / 8).astype(np.float16)
    p_ref, _, _ = mp_rows(x16.astype(np.float64))
    p = call(backend, sk.softmax, x16)
    assert p.dtype == np.float16
    # float32 accumulation, then one rounding to float16: half an ulp, 2**-11 relative.
    np.testing.assert_allclose(p.astype(np.float64), p_ref, rtol=2.0**-11 * 1.01, atol=6e-8)


def _mp_sigmoid(v: float) -> tuple[float, float]:
    with mpmath.workdps(50):
        s = 1 / (1 + mpmath.exp(-mpmath.mpf(v)))
        return float(s), float(-mpmath.log1p(mpmath.exp(-mpmath.mpf(v))))


SIGMOID_X = np.array([-700.0, -40.5, -3.25, -1e-10, 0.0, 1e-10, 0.75, 12.0, 36.0, 700.0])


def test_sigmoid_matches_mpmath(backend):
    ref = np.array([_mp_sigmoid(v)[0] for v in SIGMOID_X])
    np.testing.assert_allclose(call(backend, sk.sigmoid, SIGMOID_X), ref, rtol=1e-15, atol=0)


def test_log_sigmoid_matches_mpmath(backend):
    ref = np.array([_mp_sigmoid(v)[1] for v in SIGMOID_X])
    np.testing.assert_allclose(call(backend, sk.log_sigmoid, SIGMOID_X), ref, rtol=1e-15, atol=0)


def test_pmf_normalize_matches_exact_fractions(backend):
    counts = np.random.default_rng(3).integers(0, 10**6, size=(3, 11))
    ref = [[float(Fraction(int(c), int(row.sum()))) for c in row] for row in counts]
    out = call(backend, sk.pmf_normalize, counts.astype(np.float64))
    np.testing.assert_allclose(out, ref, rtol=2 * EPS64, atol=0)
    ref0 = [[float(Fraction(int(c), int(col.sum()))) for c in col] for col in counts.T]
    out0 = call(backend, sk.pmf_normalize, counts.astype(np.float64), axis=0)
    np.testing.assert_allclose(out0.T, ref0, rtol=2 * EPS64, atol=0)


def test_softmax_jacobian_matches_mpmath_derivative():
    x = [0.5, -1.25, 2.0]
    with mpmath.workdps(50):

        def component(i: int, k: int) -> float:
            def f(t: mpmath.mpf) -> mpmath.mpf:
                v = [mpmath.mpf(a) for a in x]
                v[k] += t
                return mpmath.exp(v[i]) / mpmath.fsum(mpmath.exp(a) for a in v)

            return float(mpmath.diff(f, 0))

        ref = np.array([[component(i, k) for k in range(3)] for i in range(3)])
    jac = sk.softmax_jacobian(sk.softmax(np.array(x)))
    np.testing.assert_allclose(jac, ref, rtol=1e-14, atol=1e-16)


def test_cat_dog_elephant_reference():
    """The seed's example: scores 2.0, 1.0, 0.1 for cat, dog, elephant."""
    p = sk.softmax(np.array([2.0, 1.0, 0.1]))
    e = [math.exp(2.0), math.exp(1.0), math.exp(0.1)]
    np.testing.assert_allclose(p, [v / sum(e) for v in e], rtol=1e-15)
    np.testing.assert_allclose(p, [0.6590011388859679, 0.2424329707047139, 0.09856589040931818])


# --- SciPy as a second reference --------------------------------------------------------------


@pytest.mark.parametrize("axis", [-1, 0, (0, 1)], ids=str)
def test_agrees_with_scipy(backend, axis):
    x = np.random.default_rng(4).normal(scale=4.0, size=(5, 6))
    np.testing.assert_allclose(
        call(backend, sk.softmax, x, axis=axis), scipy.special.softmax(x, axis=axis), rtol=1e-14
    )
    # SciPy's log_softmax takes log(sum), losing digits where log p is near 0 (mpmath
    # finds its error ~6e-14 on this input, ours ~4e-16), hence the looser tolerance.
    np.testing.assert_allclose(
        call(backend, sk.log_softmax, x, axis=axis),
        scipy.special.log_softmax(x, axis=axis),
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        call(backend, sk.logsumexp, x, axis=axis, keepdims=True),
        scipy.special.logsumexp(x, axis=axis, keepdims=True),
        rtol=1e-14,
    )


def test_sigmoid_agrees_with_scipy_expit(backend):
    x = np.linspace(-50, 50, 101)
    np.testing.assert_allclose(call(backend, sk.sigmoid, x), scipy.special.expit(x), rtol=1e-15)
    np.testing.assert_allclose(
        call(backend, sk.log_sigmoid, x), scipy.special.log_expit(x), rtol=1e-15, atol=1e-300
    )
