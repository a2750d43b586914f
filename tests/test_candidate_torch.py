"""softmaxkit.torch.SampledSoftmaxLoss: sampled in training, full in eval, sparse rows."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from softmaxkit import SoftmaxkitValueError, sampled_softmax_loss
from softmaxkit.sampling import LogUniformSampler, UniformSampler
from softmaxkit.torch import SampledSoftmaxLoss

V, D, B = 40, 6, 5


def layer_and_batch(seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    layer = SampledSoftmaxLoss(V, D, 8, rng=seed, **kwargs).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(B, D, dtype=torch.float64)
    y = torch.randint(0, V, (B,))
    return layer, x, y


def test_training_mode_is_the_functional_sampled_loss():
    layer, x, y = layer_and_batch()
    values = LogUniformSampler(V).sample(8, true_classes=y.numpy(), rng=3)
    got = layer(x, y, sampled_values=values)
    expected = sampled_softmax_loss(layer.weight, layer.bias, y, x, sampled_values=values)
    torch.testing.assert_close(got, expected, rtol=1e-13, atol=0)


def test_layer_seed_gives_the_functional_sample():
    layer, x, y = layer_and_batch(seed=4)
    expected = sampled_softmax_loss(layer.weight, layer.bias, y, x, num_sampled=8, rng=4)
    torch.testing.assert_close(layer(x, y), expected, rtol=1e-13, atol=0)
    assert not torch.equal(layer(x, y), expected)  # the next call draws a new sample


def test_eval_mode_is_the_full_cross_entropy():
    layer, x, y = layer_and_batch()
    layer.eval()
    expected = F.cross_entropy(x @ layer.weight.T + layer.bias, y, reduction="none")
    torch.testing.assert_close(layer(x, y), expected, rtol=1e-13, atol=0)


def test_eval_mode_with_several_true_labels_averages_them():
    layer, x, _ = layer_and_batch(num_true=2)
    y = torch.tensor([[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
    layer.eval()
    logp = torch.log_softmax(layer.logits(x), dim=1)
    expected = -(logp.gather(1, y)).mean(dim=1)
    torch.testing.assert_close(layer(x, y), expected, rtol=1e-13, atol=0)


def test_every_class_sampled_training_loss_equals_eval_loss():
    layer, x, y = layer_and_batch(sampler=UniformSampler(V))
    layer.num_sampled = V
    sampled = layer(x, y)
    torch.testing.assert_close(sampled, layer.eval()(x, y), rtol=1e-12, atol=0)


@pytest.mark.parametrize("sparse", [False, True])
def test_only_used_rows_get_gradient_and_sparse_equals_dense(sparse):
    layer, x, y = layer_and_batch(sparse=sparse, reduction="sum")
    values = LogUniformSampler(V).sample(8, true_classes=y.numpy(), rng=1)
    layer(x, y, sampled_values=values).backward()
    grad = layer.weight.grad
    assert grad.is_sparse == sparse
    dense = grad.to_dense() if sparse else grad
    used = torch.zeros(V, dtype=torch.bool)
    used[y] = True
    used[torch.from_numpy(values.sampled)] = True
    assert (dense[~used] == 0).all() and (dense[y].abs().sum(dim=1) > 0).all()
    reference, _, _ = layer_and_batch(sparse=False, reduction="sum")
    reference(x, y, sampled_values=values).backward()
    torch.testing.assert_close(dense, reference.weight.grad, rtol=1e-13, atol=1e-15)


def test_sparse_layer_trains_with_sgd():
    layer, x, y = layer_and_batch(sparse=True, reduction="mean")
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    with torch.no_grad():
        before = float(layer.eval()(x, y).mean())
    layer.train()
    for _ in range(30):
        opt.zero_grad()
        layer(x, y).backward()
        opt.step()
    with torch.no_grad():
        assert float(layer.eval()(x, y).mean()) < before - 0.5


def test_bad_input_in_both_modes():
    layer, x, y = layer_and_batch()
    with pytest.raises(SoftmaxkitValueError, match=r"`labels` must be in \[0, 40\)"):
        layer(x, torch.full((B,), V))
    with pytest.raises(SoftmaxkitValueError, match=r"`inputs` must have shape \(batch, 6\)"):
        layer.eval()(torch.zeros(B, D + 1, dtype=torch.float64), y)
    with pytest.raises(SoftmaxkitValueError, match=r"`reduction` must be one of"):
        SampledSoftmaxLoss(V, D, 4, reduction="avg")


def test_import_softmaxkit_does_not_import_torch():
    code = "import sys, softmaxkit; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_repr_names_the_settings():
    assert "40, 6, num_sampled=8, sampler=LogUniformSampler(40)" in repr(layer_and_batch()[0])
