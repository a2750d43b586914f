"""softmaxkit.nn: float64 finite-difference checks of every layer and loss, optimizers vs torch."""

from __future__ import annotations

from collections.abc import Callable

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from softmaxkit import SoftmaxkitValueError, softmax, softmax_jacobian
from softmaxkit.nn import (
    SGD,
    Adam,
    Dense,
    Dropout,
    Logistic,
    LogisticCrossEntropy,
    ReLU,
    Sequential,
    Softmax,
    SoftmaxCrossEntropy,
    glorot_uniform,
    he_normal,
)

EPS = 1e-6


def numerical_grad(f: Callable[[], float], x: np.ndarray) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``x``, changed in place."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + EPS
        up = f()
        x[i] = saved - EPS
        down = f()
        x[i] = saved
        grad[i] = (up - down) / (2 * EPS)
    return grad


def check_layer_input_grad(make_layer: Callable[[], object], x: np.ndarray, seed: int = 0):
    """The layer's ``backward(g)`` against d/dx of ``sum(g * forward(x))``."""
    g = np.random.default_rng(seed).normal(size=make_layer().forward(x.copy()).shape)
    layer = make_layer()
    layer.forward(x)
    analytic = layer.backward(g)
    numeric = numerical_grad(lambda: float(np.sum(g * make_layer().forward(x))), x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.fixture
def x():
    return np.random.default_rng(1).normal(size=(4, 5))


def test_dense_gradients_match_finite_differences(x):
    layer = Dense(5, 3, rng=0)
    g = np.random.default_rng(2).normal(size=(4, 3))
    layer.forward(x)
    dL_dx = layer.backward(g)

    def f():
        return float(np.sum(g * layer.forward(x)))

    np.testing.assert_allclose(dL_dx, numerical_grad(f, x), rtol=1e-6, atol=1e-8)
    for name in ("weight", "bias"):
        numeric = numerical_grad(f, layer.params[name])
        np.testing.assert_allclose(layer.grads[name], numeric, rtol=1e-6, atol=1e-8)


def test_relu_gradient_matches_finite_differences(x):
    x = np.where(np.abs(x) < 1e-3, 0.5, x)  # keep away from the kink
    check_layer_input_grad(ReLU, x)


def test_relu_gradient_at_zero_is_zero():
    relu = ReLU()
    relu.forward(np.array([[0.0, -0.0]]))
    assert relu.backward(np.ones((1, 2))).tolist() == [[0.0, 0.0]]


def test_softmax_layer_gradient_matches_finite_differences(x):
    check_layer_input_grad(Softmax, x)


def test_softmax_layer_backward_equals_product_with_jacobian(x):
    layer = Softmax()
    p = layer.forward(x)
    g = np.random.default_rng(3).normal(size=p.shape)
    expected = np.einsum("ni,nik->nk", g, softmax_jacobian(p))
    np.testing.assert_allclose(layer.backward(g), expected, rtol=1e-12, atol=1e-15)


def test_logistic_layer_gradient_matches_finite_differences(x):
    check_layer_input_grad(Logistic, 3 * x)


def test_dropout_gradient_matches_finite_differences_for_a_fixed_mask(x):
    # A fresh layer with the same seed draws the same mask on every call.
    check_layer_input_grad(lambda: Dropout(0.4, rng=7), x)


def test_dropout_keeps_the_expectation_and_is_identity_in_inference():
    layer = Dropout(0.25, rng=0)
    y = layer.forward(np.ones((200, 100)))
    assert set(np.unique(y).tolist()) == {0.0, 1.0 / 0.75}
    assert abs(y.mean() - 1.0) < 0.02
    layer.train(False)
    x = np.arange(6.0).reshape(2, 3)
    assert layer.forward(x) is x
    np.testing.assert_array_equal(layer.backward(np.ones((2, 3))), np.ones((2, 3)))


def test_sequential_gradients_match_finite_differences(x):
    net = Sequential(Dense(5, 6, rng=0), ReLU(), Dense(6, 4, init="glorot", rng=1), Logistic())
    loss = SoftmaxCrossEntropy()
    labels = np.array([0, 3, 1, 2])

    def f():
        return loss.forward(net.forward(x), labels)

    f()
    dL_dx = net.backward(loss.backward())
    grads = {k: v.copy() for k, v in net.grads.items()}
    np.testing.assert_allclose(dL_dx, numerical_grad(f, x), rtol=1e-6, atol=1e-9)
    for key, param in net.params.items():
        np.testing.assert_allclose(grads[key], numerical_grad(f, param), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("soft", [False, True], ids=["class_indices", "probabilities"])
def test_softmax_cross_entropy_gradient_is_p_minus_y_over_n(x, soft):
    rng = np.random.default_rng(4)
    targets = softmax(rng.normal(size=(4, 5))) if soft else np.array([0, 4, 2, 2])
    loss = SoftmaxCrossEntropy()
    loss.forward(x, targets)
    analytic = loss.backward()
    y = targets if soft else np.eye(5)[targets]
    np.testing.assert_allclose(analytic, (softmax(x) - y) / 4, rtol=1e-12, atol=1e-16)
    numeric = numerical_grad(lambda: loss.forward(x, targets), x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_softmax_cross_entropy_matches_torch(x):
    labels = np.array([1, 0, 4, 3])
    z = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(z, torch.tensor(labels))
    expected.backward()
    loss = SoftmaxCrossEntropy()
    assert loss.forward(x, labels) == pytest.approx(expected.item(), rel=1e-14)
    np.testing.assert_allclose(loss.backward(), z.grad.numpy(), rtol=1e-12)


def test_softmax_cross_entropy_is_exact_where_p_underflows():
    loss = SoftmaxCrossEntropy()
    assert loss.forward(np.array([[0.0, -1000.0]]), np.array([1])) == pytest.approx(1000.0)
    assert loss.backward().tolist() == [[1.0, -1.0]]


def test_logistic_cross_entropy_gradient_matches_finite_differences(x):
    targets = (np.random.default_rng(5).random((4, 5)) > 0.5).astype(float)
    loss = LogisticCrossEntropy()
    loss.forward(x, targets)
    analytic = loss.backward()
    np.testing.assert_allclose(analytic, (1 / (1 + np.exp(-x)) - targets) / 4, rtol=1e-12)
    numeric = numerical_grad(lambda: loss.forward(x, targets), x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_logistic_cross_entropy_matches_torch(x):
    targets = (np.random.default_rng(6).random((4, 5)) > 0.5).astype(float)
    z = torch.tensor(x, requires_grad=True)
    expected = (
        torch.nn.functional.binary_cross_entropy_with_logits(
            z, torch.tensor(targets), reduction="sum"
        )
        / 4
    )
    expected.backward()
    loss = LogisticCrossEntropy()
    assert loss.forward(x, targets) == pytest.approx(expected.item(), rel=1e-13)
    np.testing.assert_allclose(loss.backward(), z.grad.numpy(), rtol=1e-12)


def test_logistic_cross_entropy_finite_for_saturated_logits():
    loss = LogisticCrossEntropy()
    value = loss.forward(np.array([[800.0, -800.0]]), np.array([[0.0, 1.0]]))
    assert value == pytest.approx(1600.0)
    assert loss.backward().tolist() == [[1.0, -1.0]]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: SGD(lr=0.1, momentum=0.9, weight_decay=0.01),
         lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01)),
        (lambda: Adam(lr=0.01, weight_decay=0.01),
         lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.01)),
    ],
    ids=["sgd", "adam"],
)  # fmt: skip
def test_optimizer_steps_match_torch(ours, theirs):
    rng = np.random.default_rng(8)
    w0 = rng.normal(size=(3, 2))
    grads = [rng.normal(size=(3, 2)) for _ in range(4)]
    params = {"w": w0.copy()}
    optimizer = ours()
    tw = torch.tensor(w0.copy(), requires_grad=True)
    torch_optimizer = theirs([tw])
    for g in grads:
        optimizer.step(params, {"w": g})
        tw.grad = torch.tensor(g)
        torch_optimizer.step()
    np.testing.assert_allclose(params["w"], tw.detach().numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("optimizer", [SGD(lr=0.05), Adam(lr=0.01)], ids=["sgd", "adam"])
def test_loss_falls_on_a_small_problem(optimizer):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    labels = (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # XOR: needs the hidden layer
    net = Sequential(Dense(2, 16, rng=1), ReLU(), Dense(16, 2, init="glorot", rng=2))
    loss = SoftmaxCrossEntropy()
    values = []
    for _ in range(300):
        values.append(loss.forward(net.forward(x), labels))
        net.backward(loss.backward())
        optimizer.step(net.params, net.grads)
    assert values[-1] < 0.3 * values[0]
    assert np.mean(np.argmax(net.forward(x), axis=1) == labels) > 0.9


def test_initialisers_have_their_variances():
    rng = np.random.default_rng(0)
    assert he_normal(400, 300, rng=rng).var() == pytest.approx(2 / 400, rel=0.03)
    w = glorot_uniform(400, 300, rng=rng)
    assert np.abs(w).max() <= np.sqrt(6 / 700)
    assert w.var() == pytest.approx(2 / 700, rel=0.03)


def test_same_seed_same_weights():
    a, b, c = Dense(4, 3, rng=5), Dense(4, 3, rng=5), Dense(4, 3, rng=6)
    np.testing.assert_array_equal(a.params["weight"], b.params["weight"])
    assert not np.array_equal(a.params["weight"], c.params["weight"])


def test_sequential_params_are_the_layers_arrays():
    dense = Dense(2, 2, rng=0)
    net = Sequential(dense, ReLU())
    assert net.params["0.weight"] is dense.params["weight"]
    SGD(lr=1.0, momentum=0.0).step(net.params, {"0.weight": np.ones((2, 2)), "0.bias": np.ones(2)})
    assert dense.params["bias"].tolist() == [-1.0, -1.0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Dense(3, 2, rng=0).forward(np.ones((2, 4))), r"`x` must have shape \(N, 3\)"),
        (lambda: Dense(3, 2, init="lecun"), "`init` must be one of"),
        (lambda: ReLU().backward(np.ones((1, 1))), "needs a forward pass first"),
        (lambda: Dropout(1.0), r"`rate` must be in \[0, 1\)"),
        (lambda: SGD(lr=0.0), "`lr` must be finite and > 0"),
        (lambda: Adam(betas=(0.9, 1.0)), r"`betas\[1\]` must be in \[0, 1\)"),
        (lambda: SoftmaxCrossEntropy().forward(np.zeros((2, 3)), np.array([0, 3])),
         r"`targets` must be in \[0, 3\); position 1 holds 3"),
        (lambda: SoftmaxCrossEntropy().forward(np.zeros((0, 3)), np.zeros(0, dtype=int)),
         "at least one row"),
        (lambda: LogisticCrossEntropy().forward(np.zeros((2, 3)), np.zeros((2, 2))),
         "`targets` must have the shape of `logits`"),
        (lambda: SGD().step({"a": np.ones(1)}, {"b": np.ones(1)}), "the same keys"),
        (lambda: he_normal(0, 3, rng=np.random.default_rng()), "`fan_in` and `fan_out`"),
    ],
)  # fmt: skip
def test_bad_arguments_raise_named_errors(call, message):
    with pytest.raises(SoftmaxkitValueError, match=message):
        call()


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
        elements=st.floats(-50, 50),
    ),
    st.integers(0, 2**32 - 1),
)
def test_softmax_layer_backward_is_the_jacobian_product_for_any_logits(x, seed):
    layer = Softmax()
    p = layer.forward(x)
    g = np.random.default_rng(seed).normal(size=x.shape)
    expected = np.einsum("ni,nik->nk", g, softmax_jacobian(p))
    np.testing.assert_allclose(layer.backward(g), expected, rtol=1e-10, atol=1e-14)
