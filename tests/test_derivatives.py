"""Derivatives: the backward functions and the Jacobian against float64 finite differences,
torch autograd (gradcheck) and jax.grad / jax.jit.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from softmax_helpers import call

import softmaxkit as sk

RNG_SEED = 11


def central_difference(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5):
    """The gradient of scalar ``f`` at ``x`` by central differences (error ~h^2 + eps/h)."""
    x = np.array(x, dtype=np.float64)
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = h
        out[i] = (f(x + step) - f(x - step)) / (2 * h)
    return out


def sample(shape: tuple[int, ...], seed: int = RNG_SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(scale=2.0, size=shape), rng.normal(size=shape)


AXES = [-1, 0, (0, 2)]


# --- backward functions against finite differences (NumPy, float64) ------------------------


@pytest.mark.parametrize("axis", AXES, ids=str)
def test_softmax_backward_matches_finite_differences(kernel_path, axis):
    x, g = sample((3, 4, 2))
    fd = central_difference(lambda v: float(np.sum(g * sk.softmax(v, axis=axis))), x)
    got = sk.softmax_backward(g, sk.softmax(x, axis=axis), axis=axis)
    np.testing.assert_allclose(got, fd, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("axis", AXES, ids=str)
def test_log_softmax_backward_matches_finite_differences(kernel_path, axis):
    x, g = sample((3, 4, 2))
    fd = central_difference(lambda v: float(np.sum(g * sk.log_softmax(v, axis=axis))), x)
    got = sk.log_softmax_backward(g, sk.log_softmax(x, axis=axis), axis=axis)
    np.testing.assert_allclose(got, fd, rtol=1e-7, atol=1e-9)


def test_backward_with_temperature_is_the_chain_rule(kernel_path):
    """d softmax(x / T) / dx = J / T: softmax_backward of p, divided by T."""
    x, g = sample((2, 5))
    t = 0.7
    fd = central_difference(lambda v: float(np.sum(g * sk.softmax(v, temperature=t))), x)
    got = sk.softmax_backward(g, sk.softmax(x, temperature=t)) / t
    np.testing.assert_allclose(got, fd, rtol=1e-7, atol=1e-9)


def test_backward_of_masked_softmax_matches_finite_differences(kernel_path):
    x, g = sample((3, 5))
    where = np.array([True, False, True, True, False])
    fd = central_difference(lambda v: float(np.sum(g * sk.softmax(v, where=where))), x)
    got = sk.softmax_backward(g, sk.softmax(x, where=where))
    np.testing.assert_allclose(got, fd, rtol=1e-7, atol=1e-9)
    assert (got[:, ~where] == 0).all()
    logp = sk.log_softmax(x, where=where)
    fd = central_difference(
        lambda v: float(np.sum(np.where(where, g * sk.log_softmax(v, where=where), 0))), x
    )
    np.testing.assert_allclose(sk.log_softmax_backward(g, logp), fd, rtol=1e-7, atol=1e-9)


def test_logsumexp_gradient_is_softmax(kernel_path):
    x, _ = sample((2, 6))
    fd = central_difference(lambda v: float(np.sum(sk.logsumexp(v))), x)
    np.testing.assert_allclose(sk.softmax(x), fd, rtol=1e-7, atol=1e-9)


# --- the Jacobian ------------------------------------------------------------------------------


def test_softmax_backward_agrees_with_jacobian(backend):
    x, g = sample((2, 3, 5))
    p = call(backend, sk.softmax, x)
    jac = call(backend, sk.softmax_jacobian, p)
    assert jac.shape == (2, 3, 5, 5)
    vjp = call(backend, lambda gg: sk.softmax_backward(gg, backend.asarray(p)), g)
    np.testing.assert_allclose(vjp, np.einsum("...i,...ik->...k", g, jac), rtol=1e-13, atol=1e-15)


def test_softmax_jacobian_matches_finite_differences():
    x, _ = sample((4,))
    p = sk.softmax(x)
    jac = sk.softmax_jacobian(p)
    for i in range(4):
        fd = central_difference(lambda v, i=i: float(sk.softmax(v)[i]), x)
        np.testing.assert_allclose(jac[i], fd, rtol=1e-7, atol=1e-10)


def test_softmax_jacobian_is_symmetric_with_zero_row_sums(backend):
    x, _ = sample((3, 6))
    jac = call(backend, sk.softmax_jacobian, call(backend, sk.softmax, x))
    np.testing.assert_array_equal(jac, np.swapaxes(jac, -1, -2))
    np.testing.assert_allclose(jac.sum(axis=-1), 0.0, atol=1e-16)


def test_softmax_jacobian_keeps_dtype(backend):
    p = np.array([0.25, 0.75], dtype=np.float32)
    assert call(backend, sk.softmax_jacobian, p).dtype == np.float32


# --- torch autograd ---------------------------------------------------------------------------


def _t(a: np.ndarray, grad: bool = True) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


MASK = torch.tensor([[True, False, True, True], [False, True, True, False], [True] * 4])
ALL_MASKED = torch.tensor([[True, False, True, True], [False] * 4, [True] * 4])


def _finite(y: torch.Tensor) -> torch.Tensor:
    # gradcheck perturbs inputs; -inf outputs (masked log-probabilities) are constants.
    return torch.where(torch.isfinite(y), y, torch.zeros_like(y))


GRADCHECK_CASES = {
    "softmax": lambda x: sk.softmax(x),
    "softmax_axis0_temperature": lambda x: sk.softmax(x, axis=0, temperature=0.35),
    "softmax_masked": lambda x: sk.softmax(x, where=MASK, temperature=3.0),
    "softmax_wholly_masked_row": lambda x: sk.softmax(x, where=ALL_MASKED),
    "log_softmax": lambda x: sk.log_softmax(x),
    "log_softmax_tuple_axis": lambda x: sk.log_softmax(x, axis=(0, 1), temperature=2.0),
    "log_softmax_masked": lambda x: _finite(sk.log_softmax(x, where=ALL_MASKED, temperature=0.5)),
    "logsumexp": lambda x: sk.logsumexp(x),
    "logsumexp_tuple_keepdims": lambda x: sk.logsumexp(x, axis=(0, 1), keepdims=True),
    "logsumexp_masked": lambda x: _finite(sk.logsumexp(x, where=ALL_MASKED)),
    "sigmoid": lambda x: sk.sigmoid(x * 20),
    "log_sigmoid": lambda x: sk.log_sigmoid(x * 20),
    "pmf_normalize": lambda x: sk.pmf_normalize(x.exp(), axis=0),
    "softmax_jacobian": lambda x: sk.softmax_jacobian(x),
}


@pytest.mark.parametrize("name", list(GRADCHECK_CASES))
def test_torch_gradcheck(name):
    x, _ = sample((3, 4))
    assert torch.autograd.gradcheck(GRADCHECK_CASES[name], (_t(x),))


@pytest.mark.parametrize("name", ["softmax_masked", "log_softmax", "logsumexp"])
def test_torch_gradgradcheck(name):
    x, _ = sample((2, 3))
    mask = MASK[:2, :3]
    fn = GRADCHECK_CASES[name] if name != "softmax_masked" else lambda v: sk.softmax(v, where=mask)
    assert torch.autograd.gradgradcheck(fn, (_t(x),))


@pytest.mark.parametrize("axis", [-1, 0, (0, 1)], ids=str)
def test_torch_gradcheck_backward_functions(axis):
    x, g = sample((3, 4))
    p = sk.softmax(_t(x, grad=False), axis=axis).detach().requires_grad_(True)
    logp = sk.log_softmax(_t(x, grad=False), axis=axis).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda gg, pp: sk.softmax_backward(gg, pp, axis=axis), (_t(g), p)
    )
    assert torch.autograd.gradcheck(
        lambda gg, lp: sk.log_softmax_backward(gg, lp, axis=axis), (_t(g), logp)
    )


def test_torch_autograd_equals_backward_functions():
    x, g = sample((3, 5))
    where = torch.tensor([True, True, False, True, True])
    xt = _t(x)
    p = sk.softmax(xt, where=where, temperature=1.5)
    (gx,) = torch.autograd.grad(p, xt, torch.from_numpy(g))
    expected = sk.softmax_backward(torch.from_numpy(g), p.detach()) / 1.5
    torch.testing.assert_close(gx, expected, rtol=1e-13, atol=1e-15)
    logp = sk.log_softmax(xt, where=where)
    (gx,) = torch.autograd.grad(_finite(logp), xt, torch.from_numpy(g))
    torch.testing.assert_close(gx, sk.log_softmax_backward(torch.from_numpy(g), logp.detach()))


def test_torch_gradients_match_torch_softmax():
    x, g = sample((4, 6))
    ours, theirs = _t(x), _t(x)
    (sk.softmax(ours, axis=0) * torch.from_numpy(g)).sum().backward()
    (torch.softmax(theirs, dim=0) * torch.from_numpy(g)).sum().backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-13, atol=1e-15)
    ours.grad = theirs.grad = None
    (sk.log_softmax(ours) * torch.from_numpy(g)).sum().backward()
    (torch.log_softmax(theirs, dim=-1) * torch.from_numpy(g)).sum().backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-13, atol=1e-15)


# --- JAX ----------------------------------------------------------------------------------------

JAX_CASES = {
    "softmax": lambda x: sk.softmax(x, temperature=0.8),
    "log_softmax": lambda x: sk.log_softmax(x, axis=0),
    "logsumexp": lambda x: sk.logsumexp(x, axis=(0, 1)),
    "softmax_masked": lambda x: sk.softmax(x, where=jnp.asarray(ALL_MASKED.numpy())),
    "sigmoid": sk.sigmoid,
    "log_sigmoid": sk.log_sigmoid,
    "pmf_normalize": lambda x: sk.pmf_normalize(jnp.exp(x)),
    "softmax_jacobian": sk.softmax_jacobian,
}


def _jax_loss(fn: Callable, w: np.ndarray) -> Callable:
    def loss(x):
        y = fn(x)
        y = jnp.where(jnp.isfinite(y), y, 0.0)
        return jnp.sum(y * jnp.asarray(w).reshape((-1,))[: y.size].reshape(y.shape))

    return loss


@pytest.mark.parametrize("name", list(JAX_CASES))
def test_jax_grad_matches_finite_differences(name):
    x, _ = sample((3, 4))
    w = np.random.default_rng(5).normal(size=64)
    loss = _jax_loss(JAX_CASES[name], w)
    got = np.asarray(jax.grad(loss)(jnp.asarray(x)))
    compiled = jax.jit(loss)  # one compilation instead of 2 * x.size eager runs
    fd = central_difference(lambda v: float(compiled(jnp.asarray(v))), x)
    np.testing.assert_allclose(got, fd, rtol=1e-7, atol=1e-9)


def test_jax_jit_of_grad_equals_grad():
    x, _ = sample((3, 4))
    loss = _jax_loss(JAX_CASES["softmax_masked"], np.arange(12.0))
    # XLA fuses and reorders under jit: equal to rounding, not bit for bit.
    np.testing.assert_allclose(
        jax.jit(jax.grad(loss))(x), jax.grad(loss)(x), rtol=1e-14, atol=1e-16
    )


JIT_CASES = {
    **JAX_CASES,
    "logsumexp_keepdims_masked": lambda x: sk.logsumexp(
        x, keepdims=True, where=jnp.asarray(MASK.numpy())
    ),
    "softmax_backward": lambda x: sk.softmax_backward(x, sk.softmax(x)),
    "log_softmax_backward": lambda x: sk.log_softmax_backward(x, sk.log_softmax(x)),
}


@pytest.mark.parametrize("name", list(JIT_CASES))
def test_jax_jit_equals_eager(name):
    x = jnp.asarray(sample((3, 4))[0])
    fn = JIT_CASES[name]
    # XLA fuses and reorders under jit; the backward products cancel, hence atol.
    np.testing.assert_allclose(jax.jit(fn)(x), fn(x), rtol=1e-14, atol=1e-15)


def test_jax_jit_pmf_normalize_skips_value_checks():
    """Under jit the counts are tracers and cannot be inspected: no error, and the
    concrete call still raises."""
    out = jax.jit(sk.pmf_normalize)(jnp.asarray([1.0, 3.0]))
    np.testing.assert_allclose(out, [0.25, 0.75])
    with pytest.raises(sk.SoftmaxkitValueError):
        sk.pmf_normalize(jnp.asarray([1.0, -3.0]))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_nan_slice_stays_nan_under_jax_jit(dtype):
    """Regression: a NaN constant fused into exp made XLA's CPU code return [0, 1, 0, ...]
    for a float32 NaN slice (at random); NaN must come from arithmetic instead."""
    x = np.random.default_rng(3).normal(scale=3.0, size=(3, 4, 5))
    x[2, 3, 1] = np.nan
    x[1, 2, [0, 3]] = np.inf
    for fn in (sk.softmax, sk.log_softmax, sk.logsumexp):
        out = np.asarray(jax.jit(fn)(jnp.asarray(x, dtype=dtype)))
        assert np.isnan(out[2, 3]).all(), fn.__name__
        assert not np.isnan(np.delete(out.reshape(12, -1), 11, axis=0)).any(), fn.__name__


@pytest.mark.parametrize("name", ["torch", "torch.func", "jax"])
def test_autodiff_gives_neg_inf_inputs_of_log_softmax_zero_grad(name):
    """Regression: the -inf outputs were selected as ``z = x - max``, which passed the
    upstream gradient on to the -inf inputs; they must get 0, as log_softmax_backward has it.
    (The loss here is -inf; its gradient is still defined.)"""
    x = np.array([[0.5, -np.inf, 1.0, -2.0], [-np.inf, 3.0, -np.inf, 0.0]])
    w = np.array([[1.0, 5.0, 2.0, -1.0], [7.0, 1.0, 3.0, 2.0]])
    expected = sk.log_softmax_backward(w, sk.log_softmax(x))
    assert (expected[np.isinf(x)] == 0).all()
    if name == "jax":
        loss = lambda v: jnp.sum(sk.log_softmax(v, temperature=0.5) * w)  # noqa: E731
        got = np.asarray(jax.grad(loss)(jnp.asarray(x)))
        expected = sk.log_softmax_backward(w, sk.log_softmax(x, temperature=0.5)) / 0.5
    elif name == "torch.func":
        got = torch.func.grad(lambda v: (sk.log_softmax(v) * torch.from_numpy(w)).sum())(
            torch.from_numpy(x)
        ).numpy()
    else:
        xt = _t(x)
        (sk.log_softmax(xt) * torch.from_numpy(w)).sum().backward()
        got = xt.grad.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("fn", [sk.softmax, sk.log_softmax, sk.logsumexp], ids=lambda f: f.__name__)
def test_torch_float32_keeps_values_and_gradients(fn):
    """float32 torch (softmax through torch.softmax, log_softmax and logsumexp summing in
    float64): values and gradients, the -inf entries' 0 included, agree with float64."""
    x, w = sample((5, 7))
    x[1, [0, 4]] = -np.inf
    w = w if fn is not sk.logsumexp else w[:, 0]
    x32 = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    y32 = fn(x32)
    (_finite(y32) * torch.tensor(w, dtype=torch.float32)).sum().backward()
    x64 = _t(x)
    y64 = fn(x64)
    (_finite(y64) * torch.from_numpy(w)).sum().backward()
    assert y32.dtype == torch.float32
    np.testing.assert_allclose(y32.detach().numpy(), y64.detach().numpy(), rtol=2e-7, atol=1e-7)
    np.testing.assert_allclose(x32.grad.numpy(), x64.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert (x32.grad.numpy()[1, [0, 4]] == 0).all()
    if fn is sk.log_softmax:  # without the finite filter the -inf inputs still get 0
        x32.grad = None
        (fn(x32) * torch.tensor(w, dtype=torch.float32)).sum().backward()
        assert (x32.grad.numpy()[1, [0, 4]] == 0).all()
