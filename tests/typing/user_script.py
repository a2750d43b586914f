"""A user's typed script: must pass ``mypy --strict``, and its ``main`` must run.

Each ``assert_type`` states what the type checker must infer; the ``isinstance``
checks beside them make sure that, run, the call returns what the type promises.
tests/test_typing.py type-checks this file and calls ``main``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch
from typing_extensions import assert_type, reveal_type

import softmaxkit as sk
from softmaxkit.nn import Dense
from softmaxkit.sampling import FrequencyEstimator, LogUniformSampler, SampledValues
from softmaxkit.typing import ArrayT, Reduction

NDArray = np.ndarray


def smoothed(logits: ArrayT, target: ArrayT, reduction: Reduction = "mean") -> ArrayT:
    """A wrapper that forwards the option without widening it to str."""
    return sk.cross_entropy(logits, target, reduction=reduction, label_smoothing=0.1)


def check_numpy() -> None:
    x = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.2]])
    y = np.array([0, 1])
    p = sk.softmax(x)
    reveal_type(p)  # the test reads this line: an ndarray, not Any
    assert_type(p, NDArray)
    assert_type(sk.log_softmax(x, axis=-1, temperature=2.0), NDArray)
    assert_type(sk.logsumexp(x, where=x > 0), NDArray)
    assert_type(sk.pmf_normalize(np.array([100, 300, 600])), NDArray)
    assert_type(sk.sigmoid(x), NDArray)
    assert_type(sk.softmax_backward(np.ones_like(p), p), NDArray)
    assert_type(sk.softmax_jacobian(p), NDArray)
    assert_type(sk.sparsemax(x), NDArray)
    assert_type(sk.entmax(x, 1.5), NDArray)
    loss = sk.cross_entropy(x, y, reduction="sum")
    reveal_type(loss)
    assert_type(loss, NDArray)
    assert isinstance(loss, np.ndarray) and loss.ndim == 0  # a 0-d array, not a float
    _value, d_logits = sk.cross_entropy_grad(x, y)
    assert_type(d_logits, NDArray)
    assert_type(sk.nll_loss(sk.log_softmax(x), y, reduction="none"), NDArray)
    assert_type(sk.binary_cross_entropy_with_logits(x, np.zeros_like(x)), NDArray)
    assert_type(sk.sparsemax_loss_grad(x, y), tuple[NDArray, NDArray])
    assert_type(smoothed(x, y, "none"), NDArray)
    w = np.array([[2.0, 0.0], [0.0, 1.0], [0.1, 0.1]])
    h = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert_type(sk.linear_cross_entropy(h, w, y), NDArray)
    grads = sk.linear_cross_entropy_grad(h, w, y, bias=np.zeros(3))
    assert_type(grads, tuple[NDArray, NDArray, NDArray, NDArray | None])
    assert_type(sk.in_batch_softmax_loss(h, h), NDArray)
    assert_type(sk.expected_calibration_error(p, y, norm="max"), float)
    sampled = LogUniformSampler(3).sample(2, true_classes=y, rng=0)
    assert_type(sampled, SampledValues)
    loss = sk.sampled_softmax_loss(w, None, y, h, sampled_values=sampled, reduction="mean")
    assert_type(loss, NDArray)
    estimator = FrequencyEstimator(16)
    assert_type(estimator.log_q([1, 2]), NDArray)
    dense = Dense(2, 3, init="glorot", rng=0)
    assert_type(dense.forward(h), NDArray)
    for result in (p, loss, d_logits, grads[0], estimator.log_q([1, 2])):
        assert isinstance(result, np.ndarray)


def check_torch() -> None:
    t = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.2]], requires_grad=True)
    y = torch.tensor([0, 1])
    p = sk.softmax(t)
    reveal_type(p)
    assert_type(p, torch.Tensor)
    logp = sk.log_softmax(t, where=torch.tensor([True, True, False]))
    assert_type(logp, torch.Tensor)
    assert_type(sk.log_softmax(torch.nn.Parameter(t.detach())), torch.Tensor)
    loss = sk.cross_entropy(t, y)
    assert_type(loss, torch.Tensor)
    assert_type(loss.detach(), torch.Tensor)  # a Tensor's methods are known: no cast
    _value, grad = sk.cross_entropy_grad(t.detach(), y, reduction="none")
    assert_type(grad, torch.Tensor)
    assert_type(sk.linear_cross_entropy(t, torch.ones(4, 3), y, reduction="mean"), torch.Tensor)
    assert_type(FrequencyEstimator(16).log_q(y), torch.Tensor)
    for result in (p, logp, loss, grad):
        assert isinstance(result, torch.Tensor)


def check_jax() -> None:
    j = jnp.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.2]])
    p = sk.softmax(j)
    reveal_type(p)
    assert_type(p, jax.Array)
    assert_type(sk.cross_entropy(j, jnp.array([0, 1]), reduction="mean"), jax.Array)

    def loss(logits: jax.Array) -> jax.Array:
        return sk.cross_entropy(logits, jnp.array([0, 1]))

    for result in (p, loss(j), jax.grad(loss)(j)):
        assert isinstance(result, jax.Array)


def check_classifier() -> None:
    model = sk.Classifier(hidden=(4,), head="logistic", epochs=1, optimizer="sgd")
    x = np.random.default_rng(0).normal(size=(12, 3))
    y = np.arange(12) % 2
    fitted = model.fit(x, y)
    assert_type(fitted, sk.Classifier)
    assert_type(fitted.predict_proba(x.tolist()), NDArray)
    assert_type(fitted.score(x, y), float)


def main() -> None:
    check_numpy()
    check_torch()
    check_jax()
    check_classifier()
