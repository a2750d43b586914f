"""Properties of the core family, checked with hypothesis on every engine.

Each property holds in exact arithmetic; the tolerances are those of float64 rounding.
JAX is left out here: it compiles every new shape, which made these tests take minutes;
test_backends.py runs it through the same functions and options on fixed shapes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import ENGINES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from softmax_helpers import EPS64, call

import softmaxkit as sk

# `engine` is function-scoped (it sets the kernel path for the whole test), which is what
# every example needs; hypothesis only warns that it is not reset between examples.
# derandomize: the same examples on every run, so CI cannot turn red by the draw.
PROPERTY = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def sum_rtol(n: int) -> float:
    """Two sums of the same n positive terms in different orders differ by < n eps relative."""
    return 2 * n * EPS64


pytestmark = pytest.mark.parametrize(
    "engine", [e for e in ENGINES if not e.startswith("jax")], indirect=True
)


def finite(lo: float = -1e3, hi: float = 1e3) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=64)


def arrays(
    *, min_dims: int = 1, max_dims: int = 3, elements: st.SearchStrategy[float] | None = None
) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=5),
        elements=elements if elements is not None else finite(),
    )


@PROPERTY
@given(x=arrays(elements=finite(-1.7e308, 1.7e308)), data=st.data())
def test_sums_to_one_for_any_finite_input(engine, x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    p = call(engine, sk.softmax, x, axis=axis)
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p.sum(axis=axis), 1.0, rtol=0, atol=8 * EPS64 * x.shape[axis])


@PROPERTY
@given(x=arrays(), shift=finite(-1e3, 1e3))
def test_shift_invariance(engine, x, shift):
    # x + shift rounds by up to eps * 2e3 per entry, which exp turns into that relative error.
    scale = 8 * EPS64 * (np.abs(x).max() + abs(shift) + 1)
    p = call(engine, sk.softmax, x)
    np.testing.assert_allclose(
        call(engine, sk.softmax, x + shift), p, rtol=2 * scale + sum_rtol(x.shape[-1]), atol=1e-300
    )
    np.testing.assert_allclose(
        call(engine, sk.log_softmax, x + shift), call(engine, sk.log_softmax, x), atol=2 * scale
    )
    np.testing.assert_allclose(
        call(engine, sk.logsumexp, x + shift), call(engine, sk.logsumexp, x) + shift, rtol=1e-12
    )


@PROPERTY
@given(x=arrays(), temperature=st.floats(0.05, 20.0))
def test_log_softmax_equals_log_of_softmax_where_finite(engine, x, temperature):
    p = call(engine, sk.softmax, x, temperature=temperature)
    logp = call(engine, sk.log_softmax, x, temperature=temperature)
    normal = p > np.finfo(np.float64).tiny  # log of a subnormal has lost digits
    assert np.isfinite(logp).all()
    scale = 8 * EPS64 * (np.abs(x).max() / temperature + 1)
    np.testing.assert_allclose(np.log(p[normal]), logp[normal], rtol=1e-14, atol=scale)


@PROPERTY
@given(data=st.data())
def test_masking_equals_slicing(engine, data):
    n = data.draw(st.integers(1, 8), label="n")
    x = data.draw(hnp.arrays(np.float64, n, elements=finite()), label="x")
    where = data.draw(hnp.arrays(np.bool_, n), label="where")
    where[data.draw(st.integers(0, n - 1), label="kept")] = True
    # What sits under the mask must not matter, however extreme.
    x_masked = np.where(where, x, data.draw(st.sampled_from([np.inf, np.nan, 1e308]), "fill"))
    p = call(engine, sk.softmax, x_masked, where=where)
    rtol = sum_rtol(n)
    np.testing.assert_allclose(p[where], call(engine, sk.softmax, x[where]), rtol=rtol)
    assert (p[~where] == 0).all()
    logp = call(engine, sk.log_softmax, x_masked, where=where)
    np.testing.assert_allclose(logp[where], call(engine, sk.log_softmax, x[where]), rtol=rtol)
    assert (logp[~where] == -np.inf).all()
    np.testing.assert_allclose(
        call(engine, sk.logsumexp, x_masked, where=where),
        call(engine, sk.logsumexp, x[where]),
        rtol=rtol,
    )


@PROPERTY
@given(x=arrays(min_dims=2, max_dims=3), data=st.data())
def test_axis_equals_moveaxis(engine, x, data):
    k = data.draw(st.integers(0, x.ndim - 1), label="axis")
    rtol = sum_rtol(x.shape[k])
    for fn in (sk.softmax, sk.log_softmax):
        moved = np.moveaxis(call(engine, fn, np.moveaxis(x, k, -1)), -1, k)
        np.testing.assert_allclose(call(engine, fn, x, axis=k), moved, rtol=rtol, atol=1e-300)
    np.testing.assert_allclose(
        call(engine, sk.logsumexp, x, axis=k),
        call(engine, sk.logsumexp, np.moveaxis(x, k, -1)),
        rtol=rtol,
    )


@PROPERTY
@given(x=arrays(min_dims=3, max_dims=3))
def test_tuple_axes_equal_reshape_to_one_axis(engine, x):
    a, b, c = x.shape
    flat = x.reshape(a, b * c)
    rtol = sum_rtol(b * c)
    p = call(engine, sk.softmax, x, axis=(1, 2))
    np.testing.assert_allclose(p, call(engine, sk.softmax, flat).reshape(x.shape), rtol=rtol)
    np.testing.assert_allclose(
        call(engine, sk.logsumexp, x, axis=(1, 2)), call(engine, sk.logsumexp, flat), rtol=rtol
    )
    # Axes given in any order and sign mean the same reduction.
    np.testing.assert_array_equal(call(engine, sk.softmax, x, axis=(-1, 1)), p)


@PROPERTY
@given(x=arrays(), temperature=st.floats(0.05, 20.0))
def test_temperature_equals_dividing_by_it(engine, x, temperature):
    # (x - max) / T and x / T - max(x / T) round differently, by a few ulp of max|x / T|,
    # which exp turns into that relative error.
    scale = 8 * EPS64 * (np.abs(x).max() / temperature + 1)
    np.testing.assert_allclose(
        call(engine, sk.softmax, x, temperature=temperature),
        call(engine, sk.softmax, x / temperature),
        rtol=2 * scale + sum_rtol(x.shape[-1]),
        atol=1e-300,
    )
    np.testing.assert_allclose(
        call(engine, sk.log_softmax, x, temperature=temperature),
        call(engine, sk.log_softmax, x / temperature),
        rtol=1e-14,
        atol=2 * scale,
    )


@PROPERTY
@given(x=arrays(elements=finite(-1e300, 1e300)))
def test_logsumexp_between_max_and_max_plus_log_n(engine, x):
    lse = call(engine, sk.logsumexp, x)
    m = x.max(axis=-1)
    assert (lse >= m).all()
    assert (lse <= m + math.log(x.shape[-1]) * (1 + 4 * EPS64) + 4 * EPS64 * np.abs(m)).all()


@PROPERTY
@given(
    counts=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=6),
        elements=st.floats(1.0, 1e6, width=64),
    ),
    factor=st.sampled_from([0.5, 3.0, 2.0**40]),
)
def test_pmf_normalize_sums_to_one_and_ignores_scale(engine, counts, factor):
    p = call(engine, sk.pmf_normalize, counts)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=4 * EPS64 * counts.shape[-1])
    np.testing.assert_allclose(call(engine, sk.pmf_normalize, counts * factor), p, rtol=4 * EPS64)


@PROPERTY
@given(x=arrays(elements=finite(-700.0, 700.0)))
def test_sigmoid_symmetry(engine, x):
    np.testing.assert_allclose(
        call(engine, sk.sigmoid, x) + call(engine, sk.sigmoid, -x), 1.0, rtol=4 * EPS64
    )
    np.testing.assert_allclose(
        call(engine, sk.log_sigmoid, x) - call(engine, sk.log_sigmoid, -x),
        x,
        rtol=4 * EPS64,
        atol=4 * EPS64,
    )


@PROPERTY
@given(a=finite(-30.0, 30.0), b=finite(-30.0, 30.0))
def test_two_way_softmax_is_the_sigmoid_of_the_difference(engine, a, b):
    p = call(engine, sk.softmax, [a, b])
    np.testing.assert_allclose(p[0], call(engine, sk.sigmoid, [a - b])[0], rtol=1e-14)
    np.testing.assert_allclose(
        call(engine, sk.log_softmax, [a, b])[0],
        call(engine, sk.log_sigmoid, [a - b])[0],
        rtol=1e-13,
        atol=1e-15,
    )
