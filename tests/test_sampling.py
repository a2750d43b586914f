"""Candidate samplers: frequencies, expected counts, the alias table, seeds, bad input."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from softmaxkit import SoftmaxkitTypeError, SoftmaxkitValueError
from softmaxkit.sampling import (
    LogUniformSampler,
    SampledValues,
    UniformSampler,
    UnigramSampler,
)
from softmaxkit.sampling import _alias_table as alias_table

SAMPLERS = {
    "uniform": lambda: UniformSampler(12),
    "log-uniform": lambda: LogUniformSampler(12),
    "unigram": lambda: UnigramSampler([5, 0, 1, 30, 2, 2, 0, 9, 1, 1, 40, 3]),
    "unigram-distorted": lambda: UnigramSampler(
        [5, 0, 1, 30, 2, 2, 0, 9, 1, 1, 40, 3], distortion=0.75
    ),
}


@pytest.fixture(params=sorted(SAMPLERS))
def sampler(request: pytest.FixtureRequest):
    return SAMPLERS[request.param]()


def test_probability_sums_to_one(sampler):
    p = sampler.probability(np.arange(sampler.num_classes))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert (p >= 0).all()


def test_draw_frequencies_match_probability_chi_square(sampler):
    n = 60_000
    draws = sampler.sample(n, unique=False, rng=20261123).sampled
    observed = np.bincount(draws, minlength=sampler.num_classes)
    p = sampler.probability(np.arange(sampler.num_classes))
    drawable = p > 0
    assert observed[~drawable].sum() == 0  # zero counts are never drawn
    result = stats.chisquare(observed[drawable], n * p[drawable])
    assert result.pvalue > 1e-3


def test_log_uniform_probability_formula():
    v = 1000
    k = np.array([0, 1, 10, 999])
    mp.mp.dps = 40
    expected = [float((mp.log(i + 2) - mp.log(i + 1)) / mp.log(v + 1)) for i in k.tolist()]
    np.testing.assert_allclose(LogUniformSampler(v).probability(k), expected, rtol=1e-14)


def test_unigram_distortion_powers_the_counts():
    counts = np.array([100.0, 300.0, 600.0, 0.0])
    p = UnigramSampler(counts, distortion=0.75).probability(np.arange(4))
    w = counts**0.75
    np.testing.assert_allclose(p, w / w.sum(), rtol=1e-14)
    flat = UnigramSampler(counts, distortion=0.0).probability(np.arange(4))
    np.testing.assert_allclose(flat, [1 / 3, 1 / 3, 1 / 3, 0.0], rtol=1e-14)


def test_unigram_huge_counts_do_not_overflow():
    p = UnigramSampler([1e300, 1e300, 0.0], distortion=2.0).probability([0, 1, 2])
    np.testing.assert_allclose(p, [0.5, 0.5, 0.0])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1e6)), min_size=1, max_size=40).filter(
        lambda c: sum(c) > 0
    )
)
def test_alias_table_reproduces_the_distribution_exactly(counts):
    c = np.asarray(counts)
    p = c / c.sum()
    keep, alias = alias_table(p)
    n = p.size
    # Cell i returns i with probability keep[i] / n and alias[i] with (1 - keep[i]) / n.
    implied = np.bincount(np.arange(n), weights=keep, minlength=n)
    implied += np.bincount(alias, weights=1.0 - keep, minlength=n)
    np.testing.assert_allclose(implied / n, p, atol=1e-12)
    assert (keep[p == 0] == 0).all() and (p[alias[keep < 1]] > 0).all()


def test_unique_sample_is_distinct_and_counts_its_tries():
    values = LogUniformSampler(50).sample(40, rng=3)
    assert len(set(values.sampled.tolist())) == 40
    assert values.sampled.dtype == np.int64
    assert isinstance(values, SampledValues) and values.true_expected_count is None


def test_every_class_sampled_with_unique_has_expected_count_near_one():
    values = UniformSampler(8).sample(8, rng=1)
    assert sorted(values.sampled.tolist()) == list(range(8))
    assert (values.sampled_expected_count > 0.5).all()


def test_expected_counts_with_replacement_match_mean_counts():
    sampler, n, rounds = LogUniformSampler(30), 10, 4000
    rng = np.random.default_rng(0)
    counts = np.zeros(30)
    for _ in range(rounds):
        counts += np.bincount(sampler.sample(n, unique=False, rng=rng).sampled, minlength=30)
    expected = sampler.sample(n, true_classes=np.arange(30), unique=False, rng=0)
    np.testing.assert_allclose(expected.true_expected_count, sampler.probability(np.arange(30)) * n)
    # Poisson-like counts: 5 standard errors of the mean.
    se = np.sqrt(expected.true_expected_count / rounds)
    assert np.all(np.abs(counts / rounds - expected.true_expected_count) < 5 * se)


def test_expected_counts_unique_match_inclusion_rates():
    # 1 - (1 - P)^num_tries is TensorFlow's approximation of the inclusion
    # probability (it ignores that num_tries depends on the draws): within ~2
    # points here, well below what a wrong formula (P * num_sampled, up to 2.9
    # for class 0) would give.
    sampler, n, rounds = LogUniformSampler(30), 10, 6000
    rng = np.random.default_rng(0)
    included, expected = np.zeros(30), np.zeros(30)
    for _ in range(rounds):
        values = sampler.sample(n, true_classes=np.arange(30), rng=rng)
        included[values.sampled] += 1
        expected += values.true_expected_count
    np.testing.assert_allclose(included / rounds, expected / rounds, atol=0.035)
    assert (expected / rounds).sum() == pytest.approx(n, rel=0.02)


def test_sampled_and_true_expected_counts_agree_for_the_same_class():
    values = LogUniformSampler(100).sample(20, true_classes=np.arange(100), rng=5)
    np.testing.assert_array_equal(
        values.sampled_expected_count, values.true_expected_count[values.sampled]
    )


def test_expected_count_is_exact_for_tiny_probabilities():
    # 1 - (1 - p)^n computed naively is 0 or garbage when 1 - p rounds to 1.
    sampler = LogUniformSampler(10**12)
    k = np.array([10**12 - 1])
    p = sampler.probability(k)[0]
    values = sampler.sample(5, true_classes=k, rng=0)
    tries_lower, tries_upper = 5, 5 * 10  # log-uniform repeats are rare this far out
    count = values.true_expected_count[0]
    assert tries_lower * p * (1 - 1e-9) <= count <= tries_upper * p
    assert count / p == pytest.approx(round(count / p), rel=1e-6)  # n * p to 6 digits


def test_same_seed_same_sample_and_generator_accepted(sampler):
    a = sampler.sample(5, true_classes=[[1], [2]], rng=42)
    b = sampler.sample(5, true_classes=[[1], [2]], rng=np.random.default_rng(42))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    rng = np.random.default_rng(7)
    first, second = sampler.sample(5, rng=rng), sampler.sample(5, rng=rng)
    assert first.sampled.tolist() != second.sampled.tolist() or sampler.num_classes < 6


def test_true_expected_count_keeps_the_shape_of_true_classes():
    values = UniformSampler(10).sample(3, true_classes=np.zeros((4, 2), dtype=np.int64), rng=0)
    assert values.true_expected_count.shape == (4, 2)


def test_with_replacement_may_exceed_the_number_of_classes():
    assert UniformSampler(3).sample(10, unique=False, rng=0).sampled.shape == (10,)


@pytest.mark.parametrize(
    ("make", "num_sampled", "match"),
    [
        (lambda: UniformSampler(5), 6, r"`num_sampled` must be <= 5.*got 6"),
        (lambda: UnigramSampler([1, 0, 2]), 3, r"`num_sampled` must be <= 2.*got 3"),
        (lambda: LogUniformSampler(5), 0, r"`num_sampled` must be >= 1; got 0"),
    ],
)
def test_bad_num_sampled(make, num_sampled, match):
    with pytest.raises(SoftmaxkitValueError, match=match):
        make().sample(num_sampled)


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ([1.0, -2.0], r"`counts` must be finite and non-negative; position 1 holds -2.0"),
        ([0, 0, 0], r"`counts` must not be all zero"),
        ([1.0, np.nan], r"position 1 holds nan"),
        ([], r"non-empty 1-d"),
        ([[1, 2]], r"non-empty 1-d"),
    ],
)
def test_bad_unigram_counts(counts, match):
    with pytest.raises(SoftmaxkitValueError, match=match):
        UnigramSampler(counts)


def test_bad_classes_and_rng():
    with pytest.raises(SoftmaxkitValueError, match=r"`classes` must be in \[0, 4\); position"):
        UniformSampler(4).probability([0, 4])
    with pytest.raises(SoftmaxkitValueError, match=r"`true_classes` must be in \[0, 4\)"):
        UniformSampler(4).sample(2, true_classes=[-1])
    with pytest.raises(SoftmaxkitTypeError, match=r"`classes` must hold integer classes"):
        UniformSampler(4).probability([0.5])
    with pytest.raises(SoftmaxkitTypeError, match=r"`rng` must be a numpy.random.Generator"):
        UniformSampler(4).sample(2, rng="seed")
    with pytest.raises(SoftmaxkitValueError, match=r"`num_classes` must be >= 1; got 0"):
        LogUniformSampler(0)
