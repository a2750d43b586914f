"""Adaptive softmax: the module against torch.nn.AdaptiveLogSoftmaxWithLoss, the functions."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from softmaxkit import (
    SoftmaxkitTypeError,
    SoftmaxkitValueError,
    adaptive_log_softmax,
    adaptive_softmax_loss,
    cross_entropy,
)
from softmaxkit.torch import AdaptiveSoftmax

D, V, CUTOFFS = 8, 30, [5, 12, 20]


def pair(head_bias=False, dtype=torch.float64, seed=0, **kwargs):
    """Our module and PyTorch's with the same weights (ours loaded from PyTorch's)."""
    torch.manual_seed(seed)
    reference = torch.nn.AdaptiveLogSoftmaxWithLoss(
        D, V, CUTOFFS, div_value=2.0, head_bias=head_bias
    ).to(dtype)
    ours = AdaptiveSoftmax(D, V, CUTOFFS, div_value=2.0, head_bias=head_bias, **kwargs).to(dtype)
    ours.load_state_dict(reference.state_dict())
    return ours, reference


def batch(n=16, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g, dtype=dtype)
    y = torch.randint(0, V, (n,), generator=g)
    y[:4] = torch.tensor([0, 5, 12, 29])  # every cluster, and both ends
    return x, y


def functional_weights(module, to=lambda t: t):
    tails = [(to(t[0].weight), to(t[1].weight)) for t in module.tail]
    bias = None if module.head.bias is None else to(module.head.bias)
    return to(module.head.weight), tails, bias


def test_same_attributes_and_state_dict_keys_as_pytorch():
    ours, reference = pair(head_bias=True)
    for name in ("in_features", "n_classes", "cutoffs", "div_value", "head_bias"):
        assert getattr(ours, name) == getattr(reference, name), name
    for name in ("shortlist_size", "n_clusters", "head_size"):
        assert getattr(ours, name) == getattr(reference, name), name
    ours_sd, ref_sd = ours.state_dict(), reference.state_dict()
    assert list(ours_sd) == list(ref_sd)
    assert all(ours_sd[k].shape == ref_sd[k].shape for k in ref_sd)


def test_state_dict_loads_both_ways():
    torch.manual_seed(3)
    ours = AdaptiveSoftmax(D, V, CUTOFFS, div_value=2.0).double()
    reference = torch.nn.AdaptiveLogSoftmaxWithLoss(D, V, CUTOFFS, div_value=2.0).double()
    reference.load_state_dict(ours.state_dict())  # ours -> PyTorch
    x, y = batch()
    torch.testing.assert_close(reference(x, y).output, ours(x, y).output, rtol=1e-13, atol=0)
    back = AdaptiveSoftmax(D, V, CUTOFFS, div_value=2.0).double()
    back.load_state_dict(reference.state_dict())  # PyTorch -> ours
    torch.testing.assert_close(back.log_prob(x), reference.log_prob(x), rtol=1e-13, atol=0)


@pytest.mark.parametrize("head_bias", [False, True])
def test_forward_log_prob_predict_and_gradients_equal_pytorch(head_bias):
    ours, reference = pair(head_bias=head_bias)
    x, y = batch()
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    got, expected = ours(x_ours, y), reference(x_ref, y)
    torch.testing.assert_close(got.output, expected.output, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-12, atol=0)
    got.loss.backward()
    expected.loss.backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-10, atol=1e-14)
    for (name, p), q in zip(ours.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-14, msg=name)
    torch.testing.assert_close(ours.log_prob(x), reference.log_prob(x), rtol=1e-12, atol=1e-14)
    # predict over rows won by the head's shortlist and by the clusters alike
    wide = torch.cat([x, 30 * x])
    assert torch.equal(ours.predict(wide), reference.predict(wide))
    assert torch.equal(ours.predict(wide), ours.log_prob(wide).argmax(dim=1))


def test_float32_agrees_with_pytorch_to_1e6():
    ours, reference = pair(dtype=torch.float32)
    x, y = batch(dtype=torch.float32)
    torch.testing.assert_close(ours(x, y).output, reference(x, y).output, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.log_prob(x), reference.log_prob(x), rtol=1e-6, atol=1e-6)


def test_unbatched_input_as_pytorch():
    ours, reference = pair()
    x, y = batch()
    got, expected = ours(x[2], y[2]), reference(x[2], y[2])
    assert got.output.shape == expected.output.shape == ()
    torch.testing.assert_close(got.output, expected.output, rtol=1e-12, atol=0)
    torch.testing.assert_close(ours.log_prob(x[2]), reference.log_prob(x[2][None])[0])


def test_only_clusters_holding_a_target_are_evaluated():
    ours, _ = pair()
    x, _ = batch()
    y = torch.tensor([0, 3, 13, 14] * 4)  # the shortlist and cluster 1 only
    ours(x, y).loss.backward()
    assert ours.tail[1][0].weight.grad.abs().sum() > 0
    for i in (0, 2):  # never computed, so no gradient at all (not even zeros)
        assert ours.tail[i][0].weight.grad is None and ours.tail[i][1].weight.grad is None


def test_ignore_index_and_reductions():
    ours, reference = pair(reduction="none", ignore_index=-1)
    x, y = batch()
    y_ignored = y.clone()
    y_ignored[[1, 6]] = -1
    out = ours(x, y_ignored)
    expected = reference(x, y).output
    keep = y_ignored != -1
    assert (out.output[~keep] == 0).all() and (out.loss[~keep] == 0).all()
    torch.testing.assert_close(out.output[keep], expected[keep], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(out.loss, -out.output)
    ours.reduction = "sum"
    torch.testing.assert_close(ours(x, y_ignored).loss, -expected[keep].sum())
    ours.reduction = "mean"
    torch.testing.assert_close(ours(x, y_ignored).loss, -expected[keep].mean())
    assert torch.isnan(ours(x, torch.full_like(y, -1)).loss)


@pytest.mark.parametrize("eps", [0.1, 1.0])
def test_label_smoothing_is_cross_entropy_smoothing_of_the_full_distribution(eps):
    ours, _ = pair(label_smoothing=eps, ignore_index=7)
    x, y = batch()
    y[5] = 7
    x = x.clone().requires_grad_()
    got = ours(x, y).loss
    full = ours.log_prob(x)
    # cross_entropy on log-probabilities is cross_entropy of the distribution itself
    expected = cross_entropy(full, y, label_smoothing=eps, ignore_index=7)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
    (g_got,) = torch.autograd.grad(got, x)
    (g_expected,) = torch.autograd.grad(expected, x)
    torch.testing.assert_close(g_got, g_expected, rtol=1e-10, atol=1e-14)


def test_gradcheck_of_the_functional_forms():
    ours, _ = pair(head_bias=True)
    x, y = batch(n=5)
    head, tails, bias = functional_weights(ours, lambda t: t.detach().clone().requires_grad_())
    flat = [x.clone().requires_grad_(), head, bias, *(w for t in tails for w in t)]

    def unflatten(args):
        x_, head_, bias_, *rest = args
        return x_, head_, [(rest[2 * i], rest[2 * i + 1]) for i in range(len(tails))], bias_

    def loss(*args):
        x_, head_, tails_, bias_ = unflatten(args)
        return adaptive_softmax_loss(x_, head_, tails_, y, CUTOFFS, head_bias=bias_)

    def smoothed(*args):
        x_, head_, tails_, bias_ = unflatten(args)
        return adaptive_softmax_loss(
            x_, head_, tails_, y, CUTOFFS, head_bias=bias_, label_smoothing=0.2
        )

    def logp(*args):
        x_, head_, tails_, bias_ = unflatten(args)
        return adaptive_log_softmax(x_, head_, tails_, CUTOFFS, head_bias=bias_)

    for fn in (loss, smoothed, logp):
        assert torch.autograd.gradcheck(fn, flat)


def test_numpy_and_jax_functional_forms_equal_the_module():
    ours, _ = pair(head_bias=True)
    x, y = batch()
    y[3] = -100
    module_out = ours(x, y)
    module_logp = ours.log_prob(x).detach().numpy()
    numpy, jax_ = (lambda t: t.detach().numpy()), (lambda t: jnp.asarray(t.detach().numpy()))
    # JAX compiles once per reduction: "none" here, "mean" in the jit test below
    for to, reductions in ((numpy, ("none", "mean", "sum")), (jax_, ("none",))):
        head, tails, bias = functional_weights(ours, to)
        xs, ys = to(x), to(y)
        logp = adaptive_log_softmax(xs, head, tails, ours.cutoffs, head_bias=bias)
        np.testing.assert_allclose(np.asarray(logp), module_logp, rtol=1e-12, atol=1e-14)
        for reduction in reductions:
            got = adaptive_softmax_loss(
                xs, head, tails, ys, CUTOFFS, head_bias=bias, reduction=reduction
            )
            ours.reduction = reduction
            expected = ours(x, y).loss.detach().numpy()
            np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-14)
        ours.reduction = "mean"
    assert math.isclose(
        float(module_out.loss.detach()), -float(module_out.output.detach().sum()) / 15
    )


def test_jax_jit_grad_equals_torch_grad():
    ours, _ = pair()
    x, y = batch()
    x = x.clone().requires_grad_()
    ours(x, y).loss.backward()
    head, tails, _ = functional_weights(ours, lambda t: jnp.asarray(t.detach().numpy()))

    @jax.jit
    def f(x_, head_, y_):
        return adaptive_softmax_loss(x_, head_, tails, y_, CUTOFFS)

    d_x, d_head = jax.grad(f, argnums=(0, 1))(jnp.asarray(x.detach().numpy()), head, y.numpy())
    np.testing.assert_allclose(np.asarray(d_x), x.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(
        np.asarray(d_head), ours.head.weight.grad.numpy(), rtol=1e-10, atol=1e-14
    )


@pytest.mark.parametrize(
    "cutoffs, error, match",
    [
        ([], SoftmaxkitValueError, "at least one cutoff"),
        ([0, 10], SoftmaxkitValueError, "must be positive"),
        ([10, 5], SoftmaxkitValueError, "strictly increasing; position 1 holds 5 after 10"),
        ([5, 5, 10], SoftmaxkitValueError, "a duplicate"),
        ([5, 30], SoftmaxkitValueError, r"below `n_classes` \(30\)"),
        ([5, 40], SoftmaxkitValueError, r"below `n_classes` \(30\)"),
        ([5.5], SoftmaxkitTypeError, "sequence of ints"),
        (5, SoftmaxkitTypeError, "sequence of ints"),
    ],
)
def test_bad_cutoffs(cutoffs, error, match):
    with pytest.raises(error, match=match):
        AdaptiveSoftmax(D, V, cutoffs)


def test_bad_targets_and_shapes_name_the_argument():
    ours, _ = pair()
    x, y = batch()
    y[2] = 30
    with pytest.raises(SoftmaxkitValueError, match=r"`target` must be in \[0, 30\) or -100"):
        ours(x, y)
    with pytest.raises(SoftmaxkitValueError, match=r"`target` must have shape \(16,\)"):
        ours(x, y[:3])
    with pytest.raises(SoftmaxkitValueError, match=r"`inputs` must have shape \(batch, 8\)"):
        ours(x[:, :3], y)
    head, tails, _ = functional_weights(ours, lambda t: t.detach().numpy())
    xs, ys = x.numpy(), np.zeros(16, dtype=np.int64)
    with pytest.raises(SoftmaxkitValueError, match="`cutoffs` must hold 3 cutoffs"):
        adaptive_softmax_loss(xs, head, tails, ys, [5, 12])
    with pytest.raises(SoftmaxkitValueError, match=r"`tail_weights\[0\]\[1\]` \(output\)"):
        adaptive_log_softmax(xs, head, tails, [5, 13, 20])
    with pytest.raises(SoftmaxkitValueError, match=r"`head_weight` must have shape \(8, dim\)"):
        adaptive_log_softmax(xs, head[:5], tails, CUTOFFS)
    with pytest.raises(SoftmaxkitTypeError, match="`target` must hold integer class indices"):
        adaptive_softmax_loss(xs, head, tails, ys.astype(float), CUTOFFS)
