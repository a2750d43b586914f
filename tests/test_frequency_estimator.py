"""FrequencyEstimator: exact on periodic streams, repeats within a step, hashing, state, errors."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from softmaxkit import SoftmaxkitTypeError, SoftmaxkitValueError
from softmaxkit.sampling import FrequencyEstimator


def periodic_stream(periods: dict[int, tuple[int, int]], steps: int):
    """For each step, the ids whose (period, phase) puts them in that step."""
    for t in range(steps):
        yield t, [i for i, (k, phase) in periods.items() if t % k == phase]


@pytest.mark.parametrize(
    ("num_buckets", "ids"),
    [
        (64, list(range(10))),  # ids below num_buckets: never collide
        (1 << 16, [-3, 12345678901, 2**62 + 7, 99, 2**40, 5, -(2**50), 31, 64, 1 << 33]),
    ],
)
def test_periodic_stream_of_distinct_ids_is_estimated_exactly(num_buckets, ids):
    periods = {y: (k, (3 * k + 1) % k) for y, k in zip(ids, range(1, 11), strict=True)}
    est = FrequencyEstimator(num_buckets, num_hashes=3, alpha=0.05)
    occurrences = dict.fromkeys(ids, 0)
    for t, batch in periodic_stream(periods, 60):
        est.update(np.array(batch, dtype=np.int64), t)
        for y in batch:
            occurrences[y] += 1
        seen_twice = [y for y in ids if occurrences[y] >= 2]
        if seen_twice:  # from the second occurrence on: exactly 1/period
            q = np.exp(est.log_q(np.array(seen_twice, dtype=np.int64)))
            np.testing.assert_allclose(q, [1 / periods[y][0] for y in seen_twice], rtol=1e-14)


def test_ids_repeated_within_a_step_count_as_that_many_occurrences():
    est = FrequencyEstimator(128)
    for t in range(20):
        est.update([4, 4, 4] + ([9, 9] if t % 2 == 0 else []) + ([1] if t % 4 == 0 else []), t)
    q = np.exp(est.log_q([4, 9, 1]))
    np.testing.assert_allclose(q, [3.0, 1.0, 0.25], rtol=1e-14)  # occurrences per step


def test_estimates_before_a_gap_is_seen_follow_the_documented_start():
    est = FrequencyEstimator(128)
    assert est.log_q([3]).tolist() == [0.0]  # no update yet: q = 1
    est.update([5, 5], 10)
    est.update([6], 11)
    est.update([], 13)
    q = np.exp(est.log_q([5, 6, 7]))
    # 5: twice at the first step, c / n = 2/1; 6: once at step 11, the 2nd step: 1/2;
    # 7: never seen in the 4 steps 10..13: 1/(4 + 1).
    np.testing.assert_allclose(q, [2.0, 0.5, 0.2], rtol=1e-15)


def test_gap_average_follows_a_change_of_period():
    est = FrequencyEstimator(16, alpha=0.5)
    steps = [0, 2, 4, 8]  # gaps 2, 2, then 4: A = 2, then 0.5 * 2 + 0.5 * 4 = 3
    for t in steps:
        est.update([1], t)
    np.testing.assert_allclose(np.exp(est.log_q([1])), [1 / 3], rtol=1e-15)


def test_rare_id_averages_all_its_gaps_during_warm_up():
    # With alpha = 0.01 the moving average alone would keep ~the first gap (2) for long;
    # the warm-up's running mean gives (2 + 6) / 2.
    est = FrequencyEstimator(16, alpha=0.01)
    for t in (0, 2, 8):
        est.update([3], t)
    np.testing.assert_allclose(np.exp(est.log_q([3])), [1 / 4], rtol=1e-15)
    for t in range(9, 1009):  # then 1000 gaps of 1: the moving average has taken over
        est.update([3], t)
    assert abs(np.exp(est.log_q([3]))[0] - 1) < 1e-4


def test_alpha_one_keeps_the_last_gap():
    est = FrequencyEstimator(16, alpha=1.0)
    for t in (0, 3, 4, 9):
        est.update([2], t)
    np.testing.assert_allclose(np.exp(est.log_q([2])), [1 / 5], rtol=1e-15)


def test_zipfian_stream_is_estimated_within_a_few_percent_for_frequent_ids():
    rng = np.random.default_rng(0)
    n_ids, batch, steps = 1000, 128, 1500
    p = 1.0 / np.arange(1, n_ids + 1)
    p /= p.sum()
    ids = rng.permutation(n_ids) * 1_000_003 + 17  # scattered, beyond num_buckets
    est = FrequencyEstimator(4096, num_hashes=2, alpha=0.01)
    for t in range(steps):
        est.update(ids[rng.choice(n_ids, size=batch, p=p)], t)
    rate = np.exp(est.log_q(ids[:20]))
    relative = np.abs(rate / (batch * p[:20]) - 1)
    assert np.median(relative) < 0.05 and relative.max() < 0.15


def test_collisions_only_raise_a_rate_and_the_max_over_hashes_undoes_them():
    ids = np.array([3, 3 + 8, 3 + 16])  # share bucket 3 of the first hash (id mod 8)
    one = FrequencyEstimator(8, num_hashes=1)
    many = FrequencyEstimator(1 << 12, num_hashes=2)  # ... but not with 4096 buckets
    assert len({int(b) for b in many._buckets(ids.view(np.uint64))[1]}) == 3
    single = FrequencyEstimator(8, num_hashes=4)
    for t in range(30):
        batch = ids[[t % 3]]  # each id once every 3 steps: the shared bucket every step
        one.update(batch, t)
        many.update(batch, t)
        single.update(batch, t)
    np.testing.assert_allclose(np.exp(one.log_q(ids)), 1.0)  # the bucket's summed rate
    np.testing.assert_allclose(np.exp(many.log_q(ids)), 1 / 3, rtol=1e-14)
    assert np.all(np.exp(single.log_q(ids)) <= 1.0)


def test_pickled_estimator_continues_identically():
    rng = np.random.default_rng(1)
    est = FrequencyEstimator(256, num_hashes=3, alpha=0.1)
    for t in range(10):
        est.update(rng.integers(0, 1000, size=32), t)
    copy = pickle.loads(pickle.dumps(est))
    for t in range(10, 20):
        batch = rng.integers(0, 1000, size=32)
        est.update(batch, t)
        copy.update(batch, t)
    probe = np.arange(1000)
    np.testing.assert_array_equal(copy.log_q(probe), est.log_q(probe))
    assert copy.step == est.step == 19


def test_state_dict_round_trip_and_size_mismatch():
    est = FrequencyEstimator(32)
    est.update([1, 2, 2], 0)
    est.update([2], 5)
    other = FrequencyEstimator(32)
    other.load_state_dict(est.state_dict())
    np.testing.assert_array_equal(other.log_q([1, 2, 3]), est.log_q([1, 2, 3]))
    with pytest.raises(SoftmaxkitValueError, match="num_buckets=32"):
        FrequencyEstimator(64).load_state_dict(est.state_dict())


def test_step_defaults_to_the_next_and_must_increase():
    est = FrequencyEstimator(16)
    est.update([1])
    est.update([1])
    assert est.step == 1
    np.testing.assert_allclose(np.exp(est.log_q([1])), [1.0])
    with pytest.raises(
        SoftmaxkitValueError, match=r"`step` must be larger than the previous.* 1; got 1"
    ):
        est.update([1], 1)
    with pytest.raises(SoftmaxkitTypeError, match="`step` must be an int"):
        est.update([1], 2.5)


def test_torch_and_jax_ids_give_estimates_of_their_library():
    import jax.numpy as jnp

    est = FrequencyEstimator(16)
    est.update(torch.tensor([1, 2, 2]), 0)
    est.update(jnp.asarray([2]), 1)
    out = est.log_q(torch.tensor([[1, 2]]))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 2)
    np.testing.assert_allclose(out.numpy(), est.log_q(np.array([[1, 2]])))
    assert est.log_q(jnp.asarray([1, 2])).shape == (2,)


def test_negative_and_unsigned_ids_are_ids_like_any_other():
    est = FrequencyEstimator(8)
    for t in range(6):
        est.update(np.array([-1] if t % 2 else [np.iinfo(np.int64).min], dtype=np.int64), t)
    np.testing.assert_allclose(np.exp(est.log_q(np.array([-1, np.iinfo(np.int64).min]))), 0.5)
    unsigned = FrequencyEstimator(8)
    unsigned.update(np.array([2**64 - 1], dtype=np.uint64), 0)
    unsigned.update(np.array([2**64 - 1], dtype=np.uint64), 4)
    np.testing.assert_allclose(np.exp(unsigned.log_q(np.array([2**64 - 1], dtype=np.uint64))), 0.25)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_buckets": 0}, SoftmaxkitValueError, r"`num_buckets` must be >= 1; got 0"),
        ({"num_buckets": 2.5}, SoftmaxkitTypeError, r"`num_buckets` must be an int"),
        ({"num_buckets": 8, "num_hashes": 0}, SoftmaxkitValueError, r"`num_hashes` must be >= 1"),
        (
            {"num_buckets": 8, "alpha": 0.0},
            SoftmaxkitValueError,
            r"`alpha` must be in \(0, 1\]; got 0.0",
        ),
        ({"num_buckets": 8, "alpha": 1.5}, SoftmaxkitValueError, r"`alpha` must be in \(0, 1\]"),
        ({"num_buckets": 8, "alpha": "fast"}, SoftmaxkitTypeError, r"`alpha` must be a number"),
        ({"num_buckets": True}, SoftmaxkitTypeError, r"`num_buckets` must be an int; got True"),
        (
            {"num_buckets": 8, "num_hashes": True},
            SoftmaxkitTypeError,
            r"`num_hashes` must be an int",
        ),
        ({"num_buckets": 8, "alpha": True}, SoftmaxkitTypeError, r"`alpha` must be a number"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        FrequencyEstimator(**kwargs)


def test_non_integer_ids_are_refused():
    est = FrequencyEstimator(8)
    with pytest.raises(SoftmaxkitTypeError, match="`ids` must hold integer ids; got dtype float64"):
        est.update(np.array([1.0, 2.0]), 0)
    with pytest.raises(SoftmaxkitTypeError, match="`ids` must hold integer ids"):
        est.log_q(torch.tensor([1.5]))


def test_a_single_id_hashes_without_overflow_warnings():
    # NumPy warns when uint64 scalars wrap (arrays wrap silently); a 0-d id once took that path.
    est = FrequencyEstimator(8, num_hashes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.update(5, 0)
        est.update(np.int64(5), 3)
        assert est.log_q(5).shape == ()
    np.testing.assert_allclose(np.exp(est.log_q(np.int64(5))), 1 / 3)
