"""Sampled softmax and NCE: exact references, full-softmax limit, gradients, backends, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softmaxkit import (
    SoftmaxkitTypeError,
    SoftmaxkitValueError,
    log_softmax,
    nce_loss,
    sampled_logits,
    sampled_softmax_loss,
    softmax,
)
from softmaxkit._candidate import sampled_softmax_value_and_grad
from softmaxkit.sampling import LogUniformSampler, SampledValues, UniformSampler, UnigramSampler

V, D, B = 23, 5, 6


def problem(seed: int = 0, num_true: int = 1, batch: int = B, num_classes: int = V):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(num_classes, D))
    b = rng.normal(size=num_classes)
    x = rng.normal(size=(batch, D))
    if num_true == 1:
        y = rng.integers(0, num_classes, size=batch)
    else:  # distinct labels within a row
        y = np.stack([rng.choice(num_classes, num_true, replace=False) for _ in range(batch)])
    return w, b, y, x


def full_cross_entropy(w, b, y, x):
    logp = np.asarray(log_softmax(x @ w.T + b))
    y2 = y.reshape(len(x), -1)
    return -np.take_along_axis(logp, y2, axis=1).mean(axis=1)


def fixed_sample(y, sampled, sampler=None, num_classes=V):
    """A SampledValues with chosen classes and the sampler's with-replacement counts."""
    sampler = sampler or LogUniformSampler(num_classes)
    sampled = np.asarray(sampled, dtype=np.int64)
    n = sampled.size
    return SampledValues(sampled, sampler.probability(y) * n, sampler.probability(sampled) * n)


def test_sampled_logits_match_the_formula_by_hand():
    w, b, y, x = problem()
    values = fixed_sample(y, [0, 3, int(y[0]), 7])
    logits, targets = sampled_logits(w, b, y, x, sampled_values=values)
    true = np.einsum("bd,bd->b", x, w[y]) + b[y] - np.log(values.true_expected_count)
    sampled = x @ w[values.sampled].T + b[values.sampled] - np.log(values.sampled_expected_count)
    sampled[y[:, None] == values.sampled[None, :]] = -np.inf
    np.testing.assert_allclose(logits, np.column_stack([true, sampled]), rtol=1e-13)
    assert logits[0, 3] == -np.inf  # row 0's label sampled: an accidental hit
    np.testing.assert_array_equal(targets, np.column_stack([np.ones(B), np.zeros((B, 4))]))


def test_sampled_softmax_loss_matches_cross_entropy_on_its_logits():
    w, b, y, x = problem(1)
    values = LogUniformSampler(V).sample(7, true_classes=y, rng=1)
    logits, _ = sampled_logits(w, b, y, x, sampled_values=values)
    expected = -np.asarray(log_softmax(logits))[:, 0]
    loss = sampled_softmax_loss(w, b, y, x, sampled_values=values)
    np.testing.assert_allclose(loss, expected, rtol=1e-13)


def test_nce_loss_matches_sigmoid_cross_entropy_by_hand():
    w, b, y, x = problem(2, num_true=2)
    values = LogUniformSampler(V).sample(6, true_classes=y, rng=2)
    z, t = sampled_logits(
        w, b, y, x, num_true=2, sampled_values=values, remove_accidental_hits=False
    )
    # TensorFlow's sigmoid_cross_entropy_with_logits: max(z, 0) - z t + log(1 + exp(-|z|)).
    by_hand = (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)
    loss = nce_loss(w, b, y, x, num_true=2, sampled_values=values)
    np.testing.assert_allclose(loss, by_hand, rtol=1e-12)


@pytest.mark.parametrize("num_true", [1, 3])
@pytest.mark.parametrize(
    ("sampler", "subtract_log_q"),
    [(UniformSampler(V), True), (LogUniformSampler(V), False), (UniformSampler(V), False)],
)
def test_every_class_sampled_gives_the_full_cross_entropy(num_true, sampler, subtract_log_q):
    w, b, y, x = problem(3, num_true=num_true)
    loss = sampled_softmax_loss(
        w, b, y, x, num_sampled=V, sampler=sampler, num_true=num_true,
        subtract_log_q=subtract_log_q, rng=3,
    )  # fmt: skip
    np.testing.assert_allclose(loss, full_cross_entropy(w, b, y, x), rtol=1e-12)


def test_removed_accidental_hit_gets_probability_exactly_zero():
    w, b, y, x = problem(4)
    y[:] = 2
    values = fixed_sample(y, [2, 5, 9])
    logits, _ = sampled_logits(w, b, y, x, sampled_values=values)
    p = np.asarray(softmax(logits))
    assert (p[:, 1] == 0.0).all()
    assert np.isfinite(sampled_softmax_loss(w, b, y, x, sampled_values=values)).all()
    kept, _ = sampled_logits(w, b, y, x, sampled_values=values, remove_accidental_hits=False)
    assert (np.asarray(softmax(kept))[:, 1] > 0).all()


def test_removed_hits_give_finite_loss_and_gradient_in_torch():
    w, b, y, x = problem(5, num_true=2)
    values = fixed_sample(y, [y[0, 0], y[0, 1], y[1, 0], 0, 1])
    wt, bt, xt = (torch.tensor(a, requires_grad=True) for a in (w, b, x))
    for loss_fn in (sampled_softmax_loss, nce_loss):
        loss = loss_fn(
            wt, bt, torch.tensor(y), xt, num_true=2, sampled_values=values,
            remove_accidental_hits=True, reduction="sum",
        )  # fmt: skip
        wt.grad = bt.grad = xt.grad = None
        loss.backward()
        assert torch.isfinite(loss)
        for g in (wt.grad, bt.grad, xt.grad):
            assert torch.isfinite(g).all()


def test_removed_hit_contributes_nothing_to_nce():
    w, b, y, x = problem(6)
    y[:] = 4
    with_hit = fixed_sample(y, [4, 8])
    without = fixed_sample(y, [8])
    removed = nce_loss(w, b, y, x, sampled_values=with_hit, remove_accidental_hits=True)
    # Same logits for class 8 needs the same expected counts: copy them over.
    without = SampledValues(without.sampled, with_hit.true_expected_count, with_hit[2][1:])
    np.testing.assert_allclose(removed, nce_loss(w, b, y, x, sampled_values=without), rtol=1e-13)


def test_same_seed_gives_identical_losses_and_sampled_values_reproduce_them():
    w, b, y, x = problem(7)
    a = sampled_softmax_loss(w, b, y, x, num_sampled=8, rng=11)
    c = sampled_softmax_loss(w, b, y, x, num_sampled=8, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(a, c)
    values = LogUniformSampler(V).sample(8, true_classes=y, rng=11)
    np.testing.assert_array_equal(a, sampled_softmax_loss(w, b, y, x, sampled_values=values))
    as_tuple = tuple(values)
    np.testing.assert_array_equal(a, sampled_softmax_loss(w, b, y, x, sampled_values=as_tuple))
    assert not np.array_equal(a, sampled_softmax_loss(w, b, y, x, num_sampled=8, rng=12))


@pytest.mark.parametrize("loss_fn", [sampled_softmax_loss, nce_loss])
def test_backends_agree_with_numpy(backend, loss_fn):
    w, b, y, x = problem(8, num_true=2)
    values = LogUniformSampler(V).sample(9, true_classes=y, rng=8)
    expected = loss_fn(w, b, y, x, num_true=2, sampled_values=values)
    arrays = [backend.asarray(a) for a in (w, b, y, x)]
    got = loss_fn(*arrays, num_true=2, sampled_values=values)
    assert backend.is_native(got)
    np.testing.assert_allclose(backend.to_numpy(got), expected, rtol=1e-12)


def test_torch_and_numpy_draw_the_same_sample_from_the_same_seed():
    w, b, y, x = problem(9)
    expected = sampled_softmax_loss(w, b, y, x, num_sampled=10, rng=5)
    tensors = [torch.tensor(a) for a in (w, b, y, x)]
    got = sampled_softmax_loss(*tensors, num_sampled=10, rng=5)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_float32_stays_float32():
    w, b, y, x = problem(10)
    loss = sampled_softmax_loss(
        w.astype(np.float32), b.astype(np.float32), y, x.astype(np.float32), num_sampled=4, rng=0
    )
    assert loss.dtype == np.float32


def test_reductions():
    w, b, y, x = problem(11)
    kwargs = {"num_sampled": 5, "rng": 0}
    each = sampled_softmax_loss(w, b, y, x, **kwargs)
    assert each.shape == (B,)
    np.testing.assert_allclose(
        sampled_softmax_loss(w, b, y, x, reduction="mean", **kwargs), each.mean()
    )
    np.testing.assert_allclose(
        sampled_softmax_loss(w, b, y, x, reduction="sum", **kwargs), each.sum()
    )
    with pytest.raises(SoftmaxkitValueError, match=r"`reduction` must be one of"):
        nce_loss(w, b, y, x, reduction="avg", **kwargs)


@pytest.mark.parametrize("loss_fn", [sampled_softmax_loss, nce_loss])
@pytest.mark.parametrize("num_true", [1, 2])
def test_gradcheck_float64(loss_fn, num_true):
    w, b, y, x = problem(12, num_true=num_true, batch=3, num_classes=9)
    sampler = LogUniformSampler(9)
    values = sampler.sample(4, true_classes=y, rng=12)
    values = SampledValues(np.concatenate([values.sampled, y.ravel()[:1]]), values[1],
                           np.concatenate([values[2], values[1].ravel()[:1]]))  # fmt: skip
    yt = torch.tensor(y)

    def f(wt, bt, xt):
        return loss_fn(wt, bt, yt, xt, num_true=num_true, sampled_values=values,
                       remove_accidental_hits=True)  # fmt: skip

    inputs = tuple(torch.tensor(a, requires_grad=True) for a in (w, b, x))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8)


def test_numpy_gradient_by_hand_matches_finite_differences():
    w, b, y, x = problem(13, num_true=2, batch=4, num_classes=11)
    values = LogUniformSampler(11).sample(5, true_classes=y, rng=13)
    kwargs = {"num_true": 2, "sampled_values": values}

    def loss(w_, b_, x_):
        return float(sampled_softmax_loss(w_, b_, y, x_, reduction="mean", **kwargs))

    value, grad = sampled_softmax_value_and_grad(w, b, y, x, **kwargs)
    assert value == pytest.approx(loss(w, b, x), rel=1e-14)
    d_w = np.zeros_like(w)
    np.add.at(d_w, grad.rows, grad.d_weights)
    d_b = np.zeros_like(b)
    np.add.at(d_b, grad.rows, grad.d_biases)
    eps = 1e-6
    for array, analytic in ((w, d_w), (b, d_b), (x, grad.d_inputs)):
        numeric = np.zeros_like(array)
        for i in np.ndindex(array.shape):
            old = array[i]
            array[i] = old + eps
            up = loss(w, b, x)
            array[i] = old - eps
            down = loss(w, b, x)
            array[i] = old
            numeric[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, atol=1e-8)


def test_only_used_rows_of_weights_receive_gradient():
    w, b, y, x = problem(14, num_classes=200, batch=4)
    wt, bt = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    values = LogUniformSampler(200).sample(10, true_classes=y, rng=14)
    loss = sampled_softmax_loss(wt, bt, torch.tensor(y), torch.tensor(x), sampled_values=values)
    loss.sum().backward()
    used = np.zeros(200, dtype=bool)
    used[y] = used[values.sampled] = True
    assert (wt.grad[torch.from_numpy(~used)] == 0).all()
    assert (bt.grad[torch.from_numpy(~used)] == 0).all()
    assert (wt.grad[torch.from_numpy(y)].abs().sum(dim=1) > 0).all()


def test_biases_may_be_none():
    w, _, y, x = problem(15)
    values = LogUniformSampler(V).sample(4, true_classes=y, rng=0)
    np.testing.assert_allclose(
        sampled_softmax_loss(w, None, y, x, sampled_values=values),
        sampled_softmax_loss(w, np.zeros(V), y, x, sampled_values=values),
    )


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"w": np.zeros((V, D + 1))}, SoftmaxkitValueError,
         r"`inputs` must have shape \(batch, 6\) to match `weights` of shape \(23, 6\); got shape \(6, 5\)"),
        ({"b": np.zeros(V - 1)}, SoftmaxkitValueError,
         r"`biases` must have shape \(23,\) to match `weights` of shape \(23, 5\); got shape \(22,\)"),
        ({"w": np.zeros(V)}, SoftmaxkitValueError, r"`weights` must be 2-d"),
        ({"y": np.zeros(B + 1, dtype=int)}, SoftmaxkitValueError,
         r"`labels` must have shape \(6,\) or \(6, num_true\) to match `inputs` of shape \(6, 5\)"),
        ({"y": np.full(B, V)}, SoftmaxkitValueError,
         r"`labels` must be in \[0, 23\); position \(0,\) holds 23"),
        ({"y": np.full(B, -1)}, SoftmaxkitValueError, r"position \(0,\) holds -1"),
        ({"y": np.zeros(B)}, SoftmaxkitTypeError, r"`labels` must hold integer classes"),
        ({"num_true": 2}, SoftmaxkitValueError, r"`labels` must have 2 columns for `num_true` 2"),
        ({"num_sampled": V + 1}, SoftmaxkitValueError, r"`num_sampled` must be <= 23"),
        ({"sampler": UniformSampler(V + 1)}, SoftmaxkitValueError,
         r"`sampler` must draw from the 23 classes of `weights`"),
    ],
)  # fmt: skip
def test_bad_input(change, error, match):
    w, b, y, x = problem(16)
    args = {"w": w, "b": b, "y": y, "x": x}
    kwargs = {"num_sampled": 4, "rng": 0}
    for key, value in change.items():
        (args if key in args else kwargs)[key] = value
    with pytest.raises(error, match=match):
        sampled_softmax_loss(args["w"], args["b"], args["y"], args["x"], **kwargs)


def test_bad_sampled_values():
    w, b, y, x = problem(17)
    values = LogUniformSampler(V).sample(4, true_classes=y, rng=0)
    with pytest.raises(SoftmaxkitValueError, match=r"either `sampled_values` or `sampler`/`rng`"):
        sampled_softmax_loss(w, b, y, x, sampled_values=values, rng=1)
    with pytest.raises(SoftmaxkitValueError, match=r"`num_sampled` is 5 but `sampled_values`"):
        sampled_softmax_loss(w, b, y, x, sampled_values=values, num_sampled=5)
    no_true = LogUniformSampler(V).sample(4, rng=0)
    with pytest.raises(SoftmaxkitValueError, match=r"true_classes=labels"):
        sampled_softmax_loss(w, b, y, x, sampled_values=no_true)
    with pytest.raises(SoftmaxkitTypeError, match=r"`sampled_values` must be a SampledValues"):
        sampled_softmax_loss(w, b, y, x, sampled_values=values[:2])
    with pytest.raises(SoftmaxkitValueError, match=r"pass `num_sampled`"):
        sampled_softmax_loss(w, b, y, x)


def test_label_the_sampler_never_draws_is_refused_with_subtract_log_q():
    w, b, y, x = problem(18)
    counts = np.ones(V)
    counts[y[0]] = 0
    with pytest.raises(SoftmaxkitValueError, match=r"`subtract_log_q` needs positive expected"):
        sampled_softmax_loss(w, b, y, x, num_sampled=3, sampler=UnigramSampler(counts), rng=0)


def test_jax_gradient_matches_torch_autograd():
    import jax
    import jax.numpy as jnp

    w, b, y, x = problem(19, num_true=2)
    values = LogUniformSampler(V).sample(6, true_classes=y, rng=19)
    kwargs = {"num_true": 2, "sampled_values": values, "reduction": "sum"}

    def jax_loss(w_, x_):
        return sampled_softmax_loss(w_, jnp.asarray(b), jnp.asarray(y), x_, **kwargs)

    g_w, g_x = jax.grad(jax_loss, argnums=(0, 1))(jnp.asarray(w), jnp.asarray(x))
    wt, xt = torch.tensor(w, requires_grad=True), torch.tensor(x, requires_grad=True)
    sampled_softmax_loss(wt, torch.tensor(b), torch.tensor(y), xt, **kwargs).backward()
    np.testing.assert_allclose(np.asarray(g_w), wt.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(g_x), xt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_labels_of_shape_b_and_b_by_1_agree():
    w, b, y, x = problem(20)
    values = LogUniformSampler(V).sample(5, true_classes=y, rng=20)
    for loss_fn in (sampled_softmax_loss, nce_loss):
        np.testing.assert_array_equal(
            loss_fn(w, b, y, x, sampled_values=values),
            loss_fn(w, b, y[:, None], x, sampled_values=values),
        )
