"""Regression tests of issue 17 for the samplers, the candidate losses and linear cross-entropy.

Items 5 (a unique draw that never ends), 6 (empty batches, no classes), 7 (JAX skipped
linear_cross_entropy's checks) and the sampler part of 9 (raw errors from settings).
A test that could hang runs under a hard wall-clock guard, so that a regression fails
instead of stalling CI.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from fuzz_strategies import time_limit  # a hang fails the test instead of hanging CI
from hypothesis import given, settings
from hypothesis import strategies as st

import softmaxkit as sk
from softmaxkit import _linear_ce
from softmaxkit._candidate import sampled_softmax_value_and_grad
from softmaxkit.sampling import LogUniformSampler, UniformSampler, UnigramSampler
from softmaxkit.torch import SampledSoftmaxLoss

# --- item 5: a unique draw always ends --------------------------------------------------------


def test_unigram_sampler_underflowed_class_never_hangs():
    # 1 against 1e10 with distortion 100: class 0 has probability 1e-1000, i.e. 0.
    sampler = UnigramSampler([1, 1e10], distortion=100)
    with (
        time_limit(20),
        pytest.raises(
            sk.SoftmaxkitValueError,
            match=r"`num_sampled` must be <= 1, the number of classes that can be drawn, with "
            r"`unique=True`; got 2",
        ),
    ):
        sampler.sample(2, rng=0)
    with time_limit(20):
        values = sampler.sample(1, true_classes=[0, 1], rng=0)
    assert values.sampled.tolist() == [1]
    assert values.true_expected_count.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("rng", [0, 1, None])
def test_unigram_sampler_rare_class_is_drawn_in_bounded_time(rng):
    # Class 0 has probability 1e-36: drawable, but one draw in 1e36.
    sampler = UnigramSampler([1, 1e12], distortion=3)
    with time_limit(20):
        values = sampler.sample(2, true_classes=[0, 1], rng=rng)
    assert sorted(values.sampled.tolist()) == [0, 1]
    # It took so many draws that class 1 is certain and class 0 likely.
    assert values.true_expected_count[1] == 1.0
    assert 0.0 < values.true_expected_count[0] <= 1.0
    assert np.isfinite(values.sampled_expected_count).all()


@pytest.mark.parametrize(
    "sampler",
    [
        UniformSampler(3000),
        LogUniformSampler(3000),
        UnigramSampler(np.logspace(0, 12, 3000), distortion=2.0),
        UnigramSampler(np.r_[np.ones(5), 1e300, np.zeros(3)]),
    ],
    ids=["uniform", "log-uniform", "unigram-skewed", "unigram-one-heavy"],
)
def test_every_sampler_unique_draw_of_every_drawable_class_ends(sampler):
    support = int(np.count_nonzero(sampler.probability(np.arange(sampler.num_classes))))
    with time_limit(60):
        values = sampler.sample(support, rng=0)
    assert np.unique(values.sampled).size == support
    assert (sampler.probability(values.sampled) > 0).all()
    assert np.isfinite(values.sampled_expected_count).all()
    with pytest.raises(sk.SoftmaxkitValueError, match="number of classes that can be drawn"):
        sampler.sample(support + 1, rng=0)


def _draw_many(sampler, n, seeds):
    orders, counts = collections.Counter(), []
    for seed in seeds:
        values = sampler.sample(n, true_classes=np.arange(sampler.num_classes), rng=seed)
        orders[tuple(values.sampled.tolist())] += 1
        counts.append(values.true_expected_count)
    return orders, np.mean(counts, axis=0)


def test_unique_draw_exact_completion_matches_rejection(monkeypatch):
    """The fallback gives the stream's distribution: of the classes, their order, the tries."""
    sampler = UnigramSampler([1.0, 2.0, 3.0, 4.0, 30.0])
    p, draws = sampler.probability(np.arange(5)), 4000
    # Successive sampling: each next class in proportion to the mass not drawn yet.
    exact = {
        (a, b, c): p[a] * p[b] / (1 - p[a]) * p[c] / (1 - p[a] - p[b])
        for a, b, c in itertools.permutations(range(5), 3)
    }

    def total_variation(orders):
        return 0.5 * sum(abs(orders[k] / draws - exact[k]) for k in exact)

    by_rejection, q_rejection = _draw_many(sampler, 3, range(draws))
    # A budget of 0: the exact method completes a sample after its first round of draws.
    completions = []
    complete = UnigramSampler._complete
    monkeypatch.setattr(UnigramSampler, "_rejection_budget", lambda self, n: 0)
    monkeypatch.setattr(
        UnigramSampler, "_complete", lambda *a: completions.append(1) or complete(*a)
    )
    by_exact, q_exact = _draw_many(sampler, 3, range(10_000, 10_000 + draws))
    assert len(completions) > draws // 2
    # about 0.03 for either at this many draws; a wrong order of classes gives > 0.1
    assert total_variation(by_rejection) < 0.06
    assert total_variation(by_exact) < 0.06
    # the expected counts follow the number of draws taken, which the fallback draws too
    np.testing.assert_allclose(q_exact, q_rejection, rtol=0.02)


def test_unique_draw_fast_path_is_unchanged_for_a_seed():
    # What the rejection loop gave before the exact completion existed.
    values = LogUniformSampler(1000).sample(8, rng=0)
    stream = np.floor(np.exp(np.random.default_rng(0).random(8) * np.log(1001))).astype(int) - 1
    first = list(dict.fromkeys(stream.tolist()))
    assert values.sampled.tolist()[: len(first)] == first


def test_log_uniform_sampler_largest_num_classes_draws_in_range():
    sampler = LogUniformSampler(2**53)
    drawn = sampler.sample(10_000, unique=False, rng=0).sampled
    assert drawn.min() >= 0 and drawn.max() < 2**53


# --- item 9 (samplers): settings are checked, with the library's errors -----------------------


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: UnigramSampler([1, 2], distortion=None),
            sk.SoftmaxkitTypeError,
            r"`distortion` must be a real number; got None",
        ),
        (
            lambda: UnigramSampler([1, 2], distortion="x"),
            sk.SoftmaxkitTypeError,
            r"`distortion` must be a real number; got 'x'",
        ),
        (
            lambda: UnigramSampler([1, 2], distortion=True),
            sk.SoftmaxkitTypeError,
            r"`distortion` must be a real number; got True",
        ),
        (
            lambda: UnigramSampler([1, 2], distortion=[1.0]),
            sk.SoftmaxkitTypeError,
            r"`distortion` must be a real number",
        ),
        (
            lambda: UnigramSampler([1, 2], distortion=float("inf")),
            sk.SoftmaxkitValueError,
            r"`distortion` must be finite; got inf",
        ),
        (
            lambda: UniformSampler(2**64),
            sk.SoftmaxkitValueError,
            r"`num_classes` must be <= 9223372036854775807; got 18446744073709551616",
        ),
        (
            lambda: LogUniformSampler(2**64),
            sk.SoftmaxkitValueError,
            r"`num_classes` must be <= 9007199254740992; got 18446744073709551616",
        ),
        (
            lambda: LogUniformSampler(2**53 + 1),
            sk.SoftmaxkitValueError,
            r"`num_classes` must be <= 9007199254740992",
        ),
        (
            lambda: UniformSampler(True),
            sk.SoftmaxkitTypeError,
            r"`num_classes` must be an int; got True",
        ),
        (
            lambda: UniformSampler(3.0),
            sk.SoftmaxkitTypeError,
            r"`num_classes` must be an int; got 3.0",
        ),
        (
            lambda: LogUniformSampler(None),
            sk.SoftmaxkitTypeError,
            r"`num_classes` must be an int; got None",
        ),
        (lambda: UniformSampler(-2), sk.SoftmaxkitValueError, r"`num_classes` must be >= 1"),
        (
            lambda: UniformSampler(5).sample(True),
            sk.SoftmaxkitTypeError,
            r"`num_sampled` must be an int; got True",
        ),
        (
            lambda: UniformSampler(5).sample(2.0),
            sk.SoftmaxkitTypeError,
            r"`num_sampled` must be an int; got 2.0",
        ),
        (
            lambda: UniformSampler(5).sample(2, unique="no"),
            sk.SoftmaxkitTypeError,
            r"`unique` must be True or False; got 'no'",
        ),
        (
            lambda: UniformSampler(5).sample(2, unique=None),
            sk.SoftmaxkitTypeError,
            r"`unique` must be True or False; got None",
        ),
        (
            lambda: UniformSampler(5).sample(2, rng=-1),
            sk.SoftmaxkitValueError,
            r"`rng` as a seed must be >= 0",
        ),
        (lambda: UniformSampler(5).sample(2, rng="a"), sk.SoftmaxkitTypeError, r"`rng` must be"),
        (
            lambda: UniformSampler(5).sample(2, true_classes=[0.5]),
            sk.SoftmaxkitTypeError,
            r"`true_classes` must hold integer classes",
        ),
    ],
)
def test_sampler_settings_raise_library_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("counts", "distortion", "want"),
    [
        ([1e10, 2.0], 1e308, [1.0, 0.0]),
        ([1e-10, 1e-5], -1e308, [1.0, 0.0]),  # was [0.5, 0.5]: inf - inf tied them
        ([1e10, 2.0, 1e10], 1e308, [0.5, 0.0, 0.5]),
    ],
)
def test_unigram_sampler_huge_distortion_does_not_overflow(counts, distortion, want):
    sampler = UnigramSampler(counts, distortion=distortion)
    np.testing.assert_array_equal(sampler.probability(np.arange(len(counts))), want)
    assert sampler.sample(np.count_nonzero(want), rng=0).sampled.size == np.count_nonzero(want)


def test_sampler_settings_accept_numpy_scalars():
    values = UniformSampler(np.int64(5)).sample(
        np.int32(3), unique=np.bool_(True), rng=np.uint8(0), true_classes=np.int16(4)
    )
    assert values.sampled.size == 3
    assert UnigramSampler([1, 2], distortion=np.float32(0.5)).distortion == 0.5
    assert UnigramSampler([1, 2], distortion=np.int64(2)).distortion == 2.0
    assert LogUniformSampler(np.uint64(7)).num_classes == 7


# --- item 9 (torch layer and candidate functions) ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((10, 0, 3), {}, sk.SoftmaxkitValueError, r"`embedding_dim` must be >= 1; got 0"),
        ((0, 4, 3), {}, sk.SoftmaxkitValueError, r"`num_classes` must be >= 1; got 0"),
        ((10.0, 4, 3), {}, sk.SoftmaxkitTypeError, r"`num_classes` must be an int; got 10.0"),
        ((10, "4", 3), {}, sk.SoftmaxkitTypeError, r"`embedding_dim` must be an int; got '4'"),
        ((10, 4, 0), {}, sk.SoftmaxkitValueError, r"`num_sampled` must be >= 1; got 0"),
        ((10, 4, None), {}, sk.SoftmaxkitTypeError, r"`num_sampled` must be an int; got None"),
        (
            (10, 4, 11),
            {},
            sk.SoftmaxkitValueError,
            r"`num_sampled` must be <= 10, the number of classes `sampler` can draw",
        ),
        (
            (10, 4, 3),
            {"sampler": UnigramSampler([1, 1] + [0] * 8)},
            sk.SoftmaxkitValueError,
            r"`num_sampled` must be <= 2",
        ),
        (
            (10, 4, 3),
            {"sampler": UniformSampler(9)},
            sk.SoftmaxkitValueError,
            r"`sampler` must draw from the 10 classes of the layer; got UniformSampler\(9\)",
        ),
        (
            (10, 4, 3),
            {"sampler": "log-uniform"},
            sk.SoftmaxkitTypeError,
            r"`sampler` must be a softmaxkit.sampling sampler .*; got str",
        ),
        ((10, 4, 3), {"num_true": 0}, sk.SoftmaxkitValueError, r"`num_true` must be >= 1"),
        ((10, 4, 3), {"num_true": True}, sk.SoftmaxkitTypeError, r"`num_true` must be an int"),
        (
            (10, 4, 3),
            {"sparse": "yes"},
            sk.SoftmaxkitTypeError,
            r"`sparse` must be True or False; got 'yes'",
        ),
        (
            (10, 4, 3),
            {"bias": None},
            sk.SoftmaxkitTypeError,
            r"`bias` must be True or False; got None",
        ),
        (
            (10, 4, 3),
            {"remove_accidental_hits": 1},
            sk.SoftmaxkitTypeError,
            r"`remove_accidental_hits` must be True or False; got 1",
        ),
        (
            (10, 4, 3),
            {"subtract_log_q": "False"},
            sk.SoftmaxkitTypeError,
            r"`subtract_log_q` must be True or False",
        ),
        ((10, 4, 3), {"reduction": "avg"}, sk.SoftmaxkitValueError, r"`reduction` must be one"),
        ((10, 4, 3), {"rng": -3}, sk.SoftmaxkitValueError, r"`rng` as a seed must be >= 0"),
        (
            (10, 4, 3),
            {"dtype": torch.int64},
            sk.SoftmaxkitTypeError,
            r"`dtype` must be a floating torch.dtype",
        ),
    ],
)
def test_sampled_softmax_layer_settings_raise_library_errors(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        SampledSoftmaxLoss(*args, **kwargs)


def test_sampled_softmax_layer_accepts_numpy_scalars():
    layer = SampledSoftmaxLoss(
        np.int64(10), np.int32(4), np.int64(3), num_true=np.int8(1), sparse=np.bool_(False)
    )
    assert (layer.num_classes, layer.embedding_dim, layer.num_sampled) == (10, 4, 3)
    assert type(layer.num_classes) is int and layer.sparse is False


def test_sampled_softmax_layer_refuses_a_sample_in_eval_mode():
    layer = SampledSoftmaxLoss(10, 4, 3, rng=0).eval()
    labels = torch.tensor([1, 2])
    sample = layer.sampler.sample(3, true_classes=labels.numpy(), rng=0)
    with pytest.raises(sk.SoftmaxkitValueError, match=r"`sampled_values` is for training mode"):
        layer(torch.zeros(2, 4), labels, sampled_values=sample)


def _tiny_problem(batch=3, classes=6, dim=2):
    rng = np.random.default_rng(0)
    weights, biases = rng.normal(size=(classes, dim)), rng.normal(size=classes)
    return weights, biases, np.arange(batch) % classes, rng.normal(size=(batch, dim))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_true": True}, sk.SoftmaxkitTypeError, r"`num_true` must be an int; got True"),
        ({"num_true": 1.0}, sk.SoftmaxkitTypeError, r"`num_true` must be an int; got 1.0"),
        (
            {"remove_accidental_hits": "no"},
            sk.SoftmaxkitTypeError,
            r"`remove_accidental_hits` must be True or False; got 'no'",
        ),
        (
            {"subtract_log_q": None},
            sk.SoftmaxkitTypeError,
            r"`subtract_log_q` must be True or False; got None",
        ),
        (
            {"sampler": "uniform"},
            sk.SoftmaxkitTypeError,
            r"`sampler` must be a softmaxkit.sampling sampler .*; got str",
        ),
        ({"num_sampled": True}, sk.SoftmaxkitTypeError, r"`num_sampled` must be an int"),
        ({"num_sampled": 7}, sk.SoftmaxkitValueError, r"`num_sampled` must be <= 6"),
    ],
)
@pytest.mark.parametrize("loss", [sk.sampled_softmax_loss, sk.nce_loss, sk.sampled_logits])
def test_candidate_loss_options_raise_library_errors(loss, kwargs, error, message):
    weights, biases, labels, inputs = _tiny_problem()
    kwargs = {"num_sampled": 2, "rng": 0, **kwargs}
    with pytest.raises(error, match=message):
        loss(weights, biases, labels, inputs, **kwargs)


def _given_sample(**replace):
    values = UniformSampler(6).sample(2, true_classes=np.arange(3), rng=0)
    return values._replace(**replace)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"sampled_values": _given_sample(), "num_sampled": True},
            sk.SoftmaxkitTypeError,
            r"`num_sampled` must be an int; got True",
        ),
        (
            {"sampled_values": _given_sample(), "num_sampled": "2"},
            sk.SoftmaxkitTypeError,
            r"`num_sampled` must be an int; got '2'",
        ),
        (
            {"sampled_values": _given_sample(sampled_expected_count=np.array([np.inf, 1.0]))},
            sk.SoftmaxkitValueError,
            r"`subtract_log_q` needs positive expected counts, and finite ones; a sampled class "
            r"has expected count inf \(an expected count is at most num_sampled\)",
        ),
        (
            {"sampled_values": _given_sample(true_expected_count=np.array(["a", "b", "c"]))},
            sk.SoftmaxkitTypeError,
            r"`sampled_values.true_expected_count` must hold real numbers; got dtype <U1",
        ),
        (
            {
                "sampled_values": _given_sample(sampled_expected_count=np.array([None, None])),
                "subtract_log_q": False,
            },
            sk.SoftmaxkitTypeError,
            r"`sampled_values.sampled_expected_count` must hold real numbers; got dtype object",
        ),
    ],
)
def test_candidate_loss_given_sample_is_checked(kwargs, error, message):
    weights, biases, labels, inputs = _tiny_problem()
    with pytest.raises(error, match=message):
        sk.sampled_softmax_loss(weights, biases, labels, inputs, **kwargs)


def test_candidate_loss_weights_without_rows_say_so():
    with pytest.raises(sk.SoftmaxkitValueError, match=r"`weights` must have a row per class"):
        sk.sampled_softmax_loss(
            np.zeros((0, 2)), None, np.zeros(0, int), np.zeros((0, 2)), num_sampled=1
        )


# --- item 6: empty batches and no classes ----------------------------------------------------


def _empty_result(reduction: str) -> np.ndarray:
    """What softmaxkit.cross_entropy (and PyTorch) give on an empty batch."""
    return {"none": np.zeros(0), "sum": np.asarray(0.0), "mean": np.asarray(np.nan)}[reduction]


@pytest.mark.filterwarnings("error")  # no "mean of empty slice" either
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("loss", [sk.sampled_softmax_loss, sk.nce_loss])
@pytest.mark.parametrize("num_true", [1, 2])
def test_sampled_losses_on_an_empty_batch(backend, loss, reduction, num_true):
    weights, biases, _, _ = _tiny_problem()
    labels = backend.asarray(np.zeros((0, num_true), dtype=np.int64))
    inputs = backend.asarray(np.zeros((0, 2)))
    got = loss(
        backend.asarray(weights),
        backend.asarray(biases),
        labels,
        inputs,
        num_sampled=3,
        num_true=num_true,
        rng=0,
        reduction=reduction,
    )
    assert backend.is_native(got)
    reference = sk.cross_entropy(
        backend.asarray(np.zeros((0, 6))),
        backend.asarray(np.zeros(0, dtype=np.int64)),
        reduction=reduction,
    )
    np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(reference))
    np.testing.assert_array_equal(backend.to_numpy(got), _empty_result(reduction))


@pytest.mark.filterwarnings("error")
def test_sampled_logits_on_an_empty_batch(backend):
    weights, _, _, _ = _tiny_problem()
    logits, targets = sk.sampled_logits(
        backend.asarray(weights),
        None,
        backend.asarray(np.zeros(0, dtype=np.int64)),
        backend.asarray(np.zeros((0, 2))),
        num_sampled=3,
        rng=0,
    )
    assert tuple(logits.shape) == tuple(targets.shape) == (0, 4)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_sampled_softmax_layer_on_an_empty_batch_trains_and_evaluates(reduction):
    layer = SampledSoftmaxLoss(10, 4, 3, rng=0, reduction=reduction)
    inputs, labels = torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)
    loss = layer(inputs, labels)
    np.testing.assert_array_equal(loss.detach().numpy(), _empty_result(reduction))
    loss.sum().backward()
    # As torch.nn.functional.cross_entropy on an empty batch: nothing to learn from.
    assert float(layer.weight.grad.abs().sum()) == 0.0
    assert float(layer.bias.grad.abs().sum()) == 0.0
    layer.eval()
    full = layer(inputs, labels)
    np.testing.assert_array_equal(full.detach().numpy(), _empty_result(reduction))


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_sampled_softmax_value_and_grad_on_an_empty_batch(reduction):
    weights, biases, _, _ = _tiny_problem()
    values = UniformSampler(6).sample(2, true_classes=np.zeros((0, 1), dtype=np.int64), rng=0)
    value, grad = sampled_softmax_value_and_grad(
        weights,
        biases,
        np.zeros(0, dtype=np.int64),
        np.zeros((0, 2)),
        sampled_values=values,
        reduction=reduction,
    )
    np.testing.assert_array_equal(value, _empty_result(reduction))
    assert grad.d_inputs.shape == (0, 2)
    assert not grad.d_weights.any() and not grad.d_biases.any()


_LINEAR_CE_LIBRARIES = ("numpy", "torch-numpy", "torch-ops", "jax")


@pytest.fixture(params=_LINEAR_CE_LIBRARIES)
def linear_ce_library(request, monkeypatch) -> Callable[[Any], Any]:
    """How to make an array for one path of linear_cross_entropy."""
    name = request.param
    monkeypatch.setattr(_linear_ce, "_CPU_TENSORS_VIA_NUMPY", name != "torch-ops")
    if name == "numpy":
        return np.asarray
    if name == "jax":
        return jnp.asarray
    return lambda a: torch.from_numpy(np.array(a))


def _to_numpy(a: Any) -> np.ndarray:
    return a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("n", "v"), [(0, 0), (3, 0), (0, 4)])
def test_linear_cross_entropy_without_classes_or_rows(
    linear_ce_library, n, v, reduction, label_smoothing
):
    """V = 0 has no class: only ignored rows are valid, and it is an empty-batch result."""
    a = linear_ce_library
    x, w, b = a(np.ones((n, 2))), a(np.ones((v, 2))), a(np.zeros(v))
    t = a(np.full(n, -100, dtype=np.int64))
    options = {"bias": b, "reduction": reduction, "label_smoothing": label_smoothing}
    want = np.zeros(n) if reduction == "none" else _empty_result(reduction)
    got = sk.linear_cross_entropy(x, w, t, **options)
    np.testing.assert_array_equal(_to_numpy(got), want)
    if isinstance(x, np.ndarray | torch.Tensor):
        loss, dx, dw, db = sk.linear_cross_entropy_grad(x, w, t, **options)
        np.testing.assert_array_equal(_to_numpy(loss), want)
        assert _to_numpy(dx).shape == (n, 2) and not _to_numpy(dx).any()
        assert _to_numpy(dw).shape == (v, 2) and _to_numpy(db).shape == (v,)


def test_linear_cross_entropy_without_classes_refuses_a_kept_target(linear_ce_library):
    a = linear_ce_library
    x, w, t = a(np.ones((3, 2))), a(np.ones((0, 2))), a(np.array([-100, 0, -100]))
    message = (
        r"`targets` must all be `ignore_index` \(-100\): `weight` has no rows, so there is no "
        r"class; position 1 holds 0"
    )
    with pytest.raises(sk.SoftmaxkitValueError, match=message):
        sk.linear_cross_entropy(x, w, t)


# --- item 7: linear_cross_entropy checks its arguments the same way on every library ----------

_GOOD = {
    "inputs": np.ones((3, 2)),
    "weight": np.ones((4, 2)),
    "targets": np.array([0, 3, -100]),
    "bias": np.zeros(4),
}

_BAD_ARGUMENTS = {
    "chunk_size=-5": {"chunk_size": -5},
    "chunk_size='a'": {"chunk_size": "a"},
    "chunk_size=2.5": {"chunk_size": 2.5},
    "chunk_size=True": {"chunk_size": True},
    "bias (1,)": {"bias": np.zeros(1)},
    "bias (4, 1)": {"bias": np.zeros((4, 1))},
    "inputs 1-d": {"inputs": np.ones(2)},
    "inputs 3-d": {"inputs": np.ones((3, 2, 1))},
    "weight of the wrong width": {"weight": np.ones((4, 3))},
    "weight 1-d": {"weight": np.ones(4)},
    "targets 2-d": {"targets": np.zeros((3, 1), dtype=np.int64)},
    "targets too short": {"targets": np.zeros(2, dtype=np.int64)},
    "targets float": {"targets": np.zeros(3)},
    "targets bool": {"targets": np.zeros(3, dtype=bool)},
    "targets out of range": {"targets": np.array([0, 4, -100])},
    "targets negative": {"targets": np.array([0, -1, 2])},
    "inputs complex": {"inputs": np.ones((3, 2), dtype=np.complex64)},
    "reduction='avg'": {"reduction": "avg"},
    "ignore_index='x'": {"ignore_index": "x"},
    "ignore_index=True": {"ignore_index": True},
    "ignore_index=2**70": {"ignore_index": 2**70},
    "ignore_index=-2**63-1": {"ignore_index": -(2**63) - 1},
    "label_smoothing=2": {"label_smoothing": 2},
    "label_smoothing='a'": {"label_smoothing": "a"},
}


def _error_of(function: Callable[..., Any], arrays: dict[str, Any], options: dict) -> tuple:
    try:
        function(
            arrays["inputs"], arrays["weight"], arrays["targets"], bias=arrays["bias"], **options
        )
    except sk.SoftmaxkitError as exc:
        return type(exc), str(exc)
    raise AssertionError("no error raised")


@pytest.mark.parametrize("bad", _BAD_ARGUMENTS, ids=list(_BAD_ARGUMENTS))
def test_linear_cross_entropy_checks_every_library_alike(bad, monkeypatch):
    arguments = {**_GOOD, **_BAD_ARGUMENTS[bad]}
    options = {k: v for k, v in arguments.items() if k not in _GOOD}
    errors = {}
    for name, convert in [
        ("numpy", np.asarray),
        ("torch", lambda a: torch.from_numpy(np.array(a))),
        ("jax", jnp.asarray),
    ]:
        arrays = {k: convert(arguments[k]) for k in _GOOD}
        for via_numpy in (True, False) if name == "torch" else (True,):
            monkeypatch.setattr(_linear_ce, "_CPU_TENSORS_VIA_NUMPY", via_numpy)
            path = f"{name}, via NumPy {via_numpy}"
            errors[path] = _error_of(sk.linear_cross_entropy, arrays, options)
            if name != "jax":  # JAX takes jax.grad instead
                errors[f"{path}, grad"] = _error_of(sk.linear_cross_entropy_grad, arrays, options)
    assert len(set(errors.values())) == 1, errors
    (_, message), *_ = errors.values()
    assert "`" in message  # names the argument that is wrong


# --- the rest of item 5's kind: any sampler, any setting, a result or a library error ----------

_COUNT_VALUES = [0.0, 5e-324, 1e-300, 1e-36, 0.5, 1.0, 3.0, 1e10, 1e300]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    kind=st.sampled_from(["uniform", "log-uniform", "unigram"]),
    counts=st.lists(st.sampled_from(_COUNT_VALUES), min_size=1, max_size=12),
    distortion=st.sampled_from([-1e308, -100.0, -1.0, 0.0, 0.75, 1.0, 3.0, 100.0, 1e308]),
    num_sampled=st.integers(1, 14),
    unique=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_any_sampler_setting_returns_a_sample_or_a_library_error(
    kind, counts, distortion, num_sampled, unique, seed
):
    v = len(counts)
    try:
        if kind == "unigram":
            sampler: Any = UnigramSampler(counts, distortion=distortion)
        else:
            sampler = (UniformSampler if kind == "uniform" else LogUniformSampler)(v)
        p = sampler.probability(np.arange(v))
        with time_limit(20):
            values = sampler.sample(num_sampled, true_classes=np.arange(v), unique=unique, rng=seed)
    except sk.SoftmaxkitError:
        if kind == "unigram" and not any(counts):
            return  # all zero: refused at construction, rightly
        assert unique and num_sampled > np.count_nonzero(p)  # the only refusal expected here
        return
    assert np.isclose(p.sum(), 1.0)
    drawn = values.sampled
    assert drawn.shape == (num_sampled,) and drawn.dtype == np.int64
    assert (p[drawn] > 0).all()  # a class of probability 0 is never drawn
    if unique:
        assert np.unique(drawn).size == num_sampled
    for q in (values.true_expected_count, values.sampled_expected_count):
        assert np.isfinite(q).all() and (q >= 0).all()
        assert (q <= (1.0 if unique else num_sampled)).all()
    assert (values.true_expected_count[p == 0] == 0).all()
