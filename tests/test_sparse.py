"""sparsemax, 1.5-entmax and alpha-entmax, their backward functions and losses.

References: the ``entmax`` package (PyTorch, float64) for values and losses; the
optimality conditions of the projection; finite differences and ``gradcheck`` for
gradients; every engine (NumPy portable and compiled, each torch path, JAX) through
the ``engine`` fixture for the edge cases.
"""

from __future__ import annotations

from typing import Any

import entmax as entmax_pkg
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch

import softmaxkit as sk
from softmaxkit import _kernels
from softmaxkit._errors import SoftmaxkitTypeError, SoftmaxkitValueError

ALPHAS = (1.5, 2.0, 1.25, 1.7, 3.0)


def _apply(alpha: float, x: Any, **kwargs: Any) -> Any:
    if alpha == 2.0:
        return sk.sparsemax(x, **kwargs)
    if alpha == 1.5:
        return sk.entmax15(x, **kwargs)
    return sk.entmax(x, alpha, **kwargs)


def _reference(x: np.ndarray, alpha: float, axis: int = -1) -> np.ndarray:
    """The entmax package on float64 torch tensors."""
    t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    if alpha == 2.0:
        out = entmax_pkg.sparsemax(t, dim=axis)
    elif alpha == 1.5:
        out = entmax_pkg.entmax15(t, dim=axis)
    else:
        # shifted first: the package bisects on tau at the scores' own magnitude
        # (around 1e12 it has 5 digits), where the shift by the max is exact
        m = torch.amax(t, dim=axis, keepdim=True)
        t = t - torch.where(torch.isfinite(m), m, 0)
        out = entmax_pkg.entmax_bisect(t, alpha, dim=axis, n_iter=200)
    return out.numpy()


def _adversarial(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    big = np.zeros(n)
    big[n // 2] = 50.0
    ties = np.repeat(rng.normal(size=(n + 1) // 2), 2)[:n]
    return [
        np.zeros(n),  # all equal
        big,  # one large entry
        ties,
        rng.normal(size=n) * 1e6,  # huge magnitudes: the support is the max alone
        rng.normal(size=n) * 0.01 + 1e12,  # a huge shift of small differences
        np.linspace(0, 1, n),
    ]


# --- values against the entmax package ----------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
def test_values_match_entmax_package_on_random_shapes_and_axes(engine, alpha):
    rng = np.random.default_rng(int(alpha * 10))
    cases = [((4, 9), -1), ((3, 5, 6), 1), ((7,), 0), ((2, 3, 33), -1), ((5, 4), 0)]
    if engine.name == "jax":
        cases = cases[1:3]  # every shape is a compilation; two show the axes
    for shape, axis in cases:
        x = rng.normal(size=shape) * 2
        got = engine.to_numpy(_apply(alpha, engine.asarray(x), axis=axis))
        tol = 1e-12 if alpha in (1.5, 2.0) else 1e-10
        np.testing.assert_allclose(got, _reference(x, alpha, axis), atol=tol, rtol=0)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_values_match_entmax_package_on_adversarial_rows(kernel_path, alpha):
    rng = np.random.default_rng(1)
    for n in (1, 2, 5, 64):
        for row in _adversarial(rng, n):
            got = _apply(alpha, row[None, :])
            want = _reference(row[None, :], alpha)
            tol = 1e-12 if alpha in (1.5, 2.0) else 1e-10
            np.testing.assert_allclose(got, want, atol=tol, rtol=0, err_msg=str(row))


@pytest.mark.parametrize("alpha", (1.5, 2.0))
def test_float32_within_1e6_of_the_float64_reference(kernel_path, alpha):
    rng = np.random.default_rng(2)
    rows = [rng.normal(size=1000) * 3 for _ in range(4)] + _adversarial(rng, 1000)
    x = np.stack(rows).astype(np.float32)
    got = _apply(alpha, x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _reference(x.astype(np.float64), alpha), atol=1e-6, rtol=0)


def test_entmax_alpha_1_is_softmax_and_alpha_2_is_sparsemax(backend):
    x = backend.asarray(np.random.default_rng(3).normal(size=(3, 6)))
    np.testing.assert_array_equal(
        backend.to_numpy(sk.entmax(x, 1.0)), backend.to_numpy(sk.softmax(x))
    )
    np.testing.assert_array_equal(
        backend.to_numpy(sk.entmax(x, 2.0)), backend.to_numpy(sk.sparsemax(x))
    )
    np.testing.assert_array_equal(
        backend.to_numpy(sk.entmax(x, 1.5)), backend.to_numpy(sk.entmax15(x))
    )


def test_entmax_near_one_approaches_softmax():
    x = np.random.default_rng(4).normal(size=(2, 7))
    np.testing.assert_allclose(sk.entmax(x, 1.0001), sk.softmax(x), atol=1e-3)


# --- optimality conditions ----------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
def test_projection_satisfies_kkt_conditions(kernel_path, alpha):
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(size=(20, 50)) * 2, np.stack(_adversarial(rng, 50))])
    p = _apply(alpha, x)
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(-1), 1, atol=1e-12)
    # on the support (alpha - 1) x - p**(alpha - 1) is the threshold tau; off it, x is below
    z = (alpha - 1) * (x - x.max(-1, keepdims=True))
    for zi, pi in zip(z, p, strict=True):
        support = pi > 0
        tau = zi[support] - pi[support] ** (alpha - 1)
        np.testing.assert_allclose(tau, tau[0], atol=1e-9)
        assert (zi[~support] <= tau[0] + 1e-9).all()


def test_sparsemax_gives_exact_zeros_far_below_the_max():
    p = sk.sparsemax(np.array([[3.0, 1.9, 0.0, -5.0]]))
    assert p[0, 2] == 0 and p[0, 3] == 0
    np.testing.assert_allclose(p, [[1.0, 0.0, 0.0, 0.0]])


# --- gradients ----------------------------------------------------------------------------


def _finite_difference(f: Any, x: np.ndarray, g: np.ndarray, h: float = 1e-6) -> np.ndarray:
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        out[i] = np.sum(g * (f(x + e) - f(x - e))) / (2 * h)
    return out


@pytest.mark.parametrize("alpha", ALPHAS)
def test_backward_matches_finite_differences(kernel_path, alpha):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 6))
    g = rng.normal(size=(3, 6))
    p = _apply(alpha, x)
    if alpha == 2.0:
        dx = sk.sparsemax_backward(g, p)
    else:
        dx = sk.entmax_backward(g, p, alpha)
    np.testing.assert_allclose(dx, _finite_difference(lambda v: _apply(alpha, v), x, g), atol=1e-6)


def test_entmax_backward_alpha_1_is_softmax_backward():
    rng = np.random.default_rng(7)
    p = sk.softmax(rng.normal(size=(4, 5)))
    g = rng.normal(size=(4, 5))
    np.testing.assert_allclose(sk.entmax_backward(g, p, 1.0), sk.softmax_backward(g, p))


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("axis", (-1, 0))
def test_torch_gradcheck(alpha, axis):
    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: _apply(alpha, t, axis=axis), (x,))


@pytest.mark.parametrize("alpha", ALPHAS)
def test_torch_autograd_equals_explicit_backward(alpha):
    rng = np.random.default_rng(9)
    x = torch.tensor(rng.normal(size=(3, 7)), requires_grad=True)
    g = rng.normal(size=(3, 7))
    p = _apply(alpha, x)
    p.backward(torch.from_numpy(g))
    pn = p.detach().numpy()
    want = sk.sparsemax_backward(g, pn) if alpha == 2 else sk.entmax_backward(g, pn, alpha)
    np.testing.assert_allclose(x.grad.numpy(), want, atol=1e-12)


@pytest.mark.parametrize("alpha", (1.5, 2.0, 1.7))
def test_jax_jit_and_grad_match_torch(alpha):
    rng = np.random.default_rng(10)
    x = rng.normal(size=(3, 6))
    w = rng.normal(size=(3, 6))

    def loss(v):
        return jnp.sum(_apply(alpha, v) * w)

    value = jax.jit(loss)(jnp.asarray(x))
    grad = jax.jit(jax.grad(loss))(jnp.asarray(x))
    xt = torch.tensor(x, requires_grad=True)
    torch_value = (_apply(alpha, xt) * torch.from_numpy(w)).sum()
    torch_value.backward()
    np.testing.assert_allclose(float(value), torch_value.item(), atol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), xt.grad.numpy(), atol=1e-12)


# --- the edge-case matrix on every engine -------------------------------------------------


@pytest.mark.parametrize("alpha", (1.5, 2.0, 1.7))
def test_masked_entries_get_zero_and_masking_equals_slicing(engine, alpha):
    x = np.array([[3.0, 1.0, 100.0, 0.5], [0.2, np.nan, 0.1, 0.3]])
    where = np.array([[True, True, False, True], [True, False, True, True]])
    p = engine.to_numpy(_apply(alpha, engine.asarray(x), where=engine.asarray(where)))
    assert p[0, 2] == 0 and p[1, 1] == 0
    np.testing.assert_allclose(p[0, [0, 1, 3]], _reference(x[0, [0, 1, 3]][None], alpha)[0])
    np.testing.assert_allclose(p[1, [0, 2, 3]], _reference(x[1, [0, 2, 3]][None], alpha)[0])


@pytest.mark.parametrize("alpha", (1.5, 2.0, 1.7))
def test_plus_inf_entries_share_the_mass(engine, alpha):
    x = engine.asarray(np.array([[1.0, np.inf, np.inf, -np.inf], [1.0, 2.0, np.inf, 0.0]]))
    p = engine.to_numpy(_apply(alpha, x))
    np.testing.assert_array_equal(p, [[0, 0.5, 0.5, 0], [0, 0, 1, 0]])


@pytest.mark.parametrize("alpha", (1.5, 2.0, 1.7))
def test_all_minus_inf_or_wholly_masked_slice_gives_zero_and_zero_gradient(engine, alpha):
    x = np.array([[-np.inf, -np.inf, -np.inf], [1.0, 2.0, 3.0]])
    p = engine.to_numpy(_apply(alpha, engine.asarray(x)))
    np.testing.assert_array_equal(p[0], 0)
    np.testing.assert_allclose(p[1].sum(), 1)
    masked = engine.to_numpy(
        _apply(alpha, engine.asarray(x[1:]), where=engine.asarray(np.zeros((1, 3), bool)))
    )
    np.testing.assert_array_equal(masked, 0)


@pytest.mark.parametrize("alpha", (1.5, 2.0, 1.7))
def test_nan_stays_in_its_slice(engine, alpha):
    x = engine.asarray(np.array([[1.0, np.nan, 0.0], [1.0, 2.0, 3.0]]))
    p = engine.to_numpy(_apply(alpha, x))
    assert np.isnan(p[0]).all()
    np.testing.assert_allclose(p[1], _reference(np.array([[1.0, 2.0, 3.0]]), alpha)[0])


@pytest.mark.parametrize("alpha", (1.5, 2.0, 1.7))
def test_empty_input_gives_empty_output(engine, alpha):
    for shape, axis in (((0, 4), -1), ((3, 0), -1), ((0,), 0)):
        x = engine.asarray(np.zeros(shape))
        out = _apply(alpha, x, axis=axis)
        assert engine.is_native(out) and tuple(out.shape) == shape


@pytest.mark.parametrize("alpha", (1.5, 2.0, 1.7))
def test_low_precision_accumulates_in_float32(backend, alpha):
    x = np.random.default_rng(11).normal(size=(3, 300)).astype(np.float32)
    if backend.name == "torch":
        inputs = [torch.from_numpy(x).half(), torch.from_numpy(x).bfloat16()]
    elif backend.name == "jax":
        inputs = [jnp.asarray(x, dtype=jnp.float16), jnp.asarray(x, dtype=jnp.bfloat16)]
    else:
        inputs = [x.astype(np.float16), x.astype(ml_dtypes.bfloat16)]
    for xi in inputs:
        p = _apply(alpha, xi)
        assert p.dtype == xi.dtype
        as64 = (
            (lambda a: a.double().numpy())
            if backend.name == "torch"
            else (lambda a: np.asarray(a).astype(np.float64))
        )
        exact = _reference(as64(xi), alpha)
        got = as64(p)
        np.testing.assert_allclose(got, exact, atol=1e-2)


def test_gradient_of_edge_slices_is_zero_and_masked_entries_get_none(backend):
    x = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [1.0, 3.0]])
    where = np.array([[True, True], [True, True], [True, False]])
    for alpha in (1.5, 2.0, 1.7):
        if backend.name == "torch":
            xt = torch.tensor(x, requires_grad=True)
            _apply(alpha, xt, where=torch.from_numpy(where)).sum(-1).mul(
                torch.tensor([1.0, 2.0, 3.0])
            ).sum().backward()
            g = xt.grad.numpy()
        elif backend.name == "jax":

            def f(v, alpha=alpha):
                out = _apply(alpha, v, where=jnp.asarray(where))
                return jnp.sum(out * jnp.asarray([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))

            g = np.asarray(jax.grad(f)(jnp.asarray(x)))
        else:
            continue
        np.testing.assert_array_equal(g, 0)
        assert not np.isnan(g).any()


@pytest.mark.parametrize("bad", (0.5, float("nan"), float("inf"), -1, "1.5", True))
def test_bad_alpha_is_refused_naming_it(bad):
    error = SoftmaxkitTypeError if isinstance(bad, (str, bool)) else SoftmaxkitValueError
    with pytest.raises(error, match="`alpha`"):
        sk.entmax(np.zeros(3), bad)
    with pytest.raises(error, match="`alpha`"):
        sk.entmax_loss(np.zeros((1, 3)), np.array([0]), bad)
    with pytest.raises(error, match="`alpha`"):
        sk.entmax_backward(np.zeros(3), np.ones(3) / 3, bad)


def test_alpha_that_requires_grad_or_is_traced_is_refused():
    with pytest.raises(SoftmaxkitTypeError, match="`alpha` must be a plain number"):
        sk.entmax(torch.zeros(3), torch.tensor(1.5, requires_grad=True))
    with pytest.raises(SoftmaxkitTypeError, match="`alpha` must be a plain number"):
        jax.jit(lambda a: sk.entmax(jnp.zeros(3), a))(1.5)


def test_bad_n_iter_is_refused():
    with pytest.raises(SoftmaxkitValueError, match="`n_iter`"):
        sk.entmax(np.zeros(3), 1.7, n_iter=0)


def test_bad_axis_and_where_use_the_core_messages():
    with pytest.raises(SoftmaxkitValueError, match="`axis` must be in"):
        sk.sparsemax(np.zeros((2, 3)), axis=2)
    with pytest.raises(SoftmaxkitValueError, match="`where` must broadcast"):
        sk.entmax15(np.zeros((2, 3)), where=np.ones(4, bool))
    with pytest.raises(SoftmaxkitTypeError, match="`x` must be an array of real numbers"):
        sk.sparsemax(np.array(["a"]))


def test_tuple_axis_equals_merged_axis(kernel_path):
    x = np.random.default_rng(12).normal(size=(2, 3, 4))
    p = sk.entmax15(x, axis=(1, 2))
    np.testing.assert_allclose(p.reshape(2, 12), sk.entmax15(x.reshape(2, 12)), atol=1e-15)


# --- losses --------------------------------------------------------------------------------


def _loss_reference(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    t, yt = torch.from_numpy(x), torch.from_numpy(y)
    if alpha == 2.0:
        loss = entmax_pkg.SparsemaxLoss(reduction="none")
    elif alpha == 1.5:
        loss = entmax_pkg.Entmax15Loss(reduction="none")
    else:
        loss = entmax_pkg.EntmaxBisectLoss(alpha, n_iter=200, reduction="none")
    return loss(t, yt).numpy()


def _loss(alpha: float, x: Any, y: Any, **kwargs: Any) -> Any:
    if alpha == 2.0:
        return sk.sparsemax_loss(x, y, **kwargs)
    return sk.entmax_loss(x, y, alpha, **kwargs)


def _loss_grad(alpha: float, x: Any, y: Any, **kwargs: Any) -> Any:
    if alpha == 2.0:
        return sk.sparsemax_loss_grad(x, y, **kwargs)
    return sk.entmax_loss_grad(x, y, alpha, **kwargs)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_losses_match_entmax_package(backend, alpha):
    rng = np.random.default_rng(13)
    x = rng.normal(size=(8, 6)) * 2
    y = rng.integers(0, 6, size=8)
    got = backend.to_numpy(_loss(alpha, backend.asarray(x), backend.asarray(y), reduction="none"))
    np.testing.assert_allclose(got, _loss_reference(x, y, alpha), atol=1e-10)
    mean = backend.to_numpy(_loss(alpha, backend.asarray(x), backend.asarray(y)))
    np.testing.assert_allclose(mean, _loss_reference(x, y, alpha).mean(), atol=1e-10)


OPTIONS = (
    {},
    {"reduction": "sum"},
    {"weight": np.array([1.0, 2.0, 0.5, 1.0, 3.0])},
    {"ignore_index": 1},
    {"label_smoothing": 0.2, "reduction": "none"},
    {"weight": np.array([1.0, 2.0, 0.5, 1.0, 3.0]), "ignore_index": 0, "label_smoothing": 0.1},
)


@pytest.mark.parametrize("options", OPTIONS)
def test_entmax_loss_alpha_1_equals_cross_entropy(options):
    rng = np.random.default_rng(14)
    x = rng.normal(size=(6, 5))
    y = rng.integers(0, 5, size=6)
    np.testing.assert_array_equal(
        sk.entmax_loss(x, y, 1.0, **options), sk.cross_entropy(x, y, **options)
    )
    loss, grad = sk.entmax_loss_grad(x, y, 1.0, **options)
    ce_loss, ce_grad = sk.cross_entropy_grad(x, y, **options)
    np.testing.assert_array_equal(loss, ce_loss)
    np.testing.assert_array_equal(grad, ce_grad)


@pytest.mark.parametrize("alpha", (1.5, 2.0, 1.7))
@pytest.mark.parametrize("options", OPTIONS)
def test_loss_options_follow_the_weighted_target_formula(alpha, options):
    """``sum(q) * (<p, x> + H(p)) - <q, x>`` with ``q`` the weighted target of cross_entropy."""
    rng = np.random.default_rng(15)
    x = rng.normal(size=(6, 5))
    y = rng.integers(0, 5, size=6)
    y[2] = options.get("ignore_index", -100)
    w = options.get("weight", np.ones(5))
    eps = options.get("label_smoothing", 0.0)
    q = ((1 - eps) * np.eye(5)[np.where(y >= 0, y, 0)] + eps / 5) * w
    kept = y != options.get("ignore_index", -100)
    q[~kept] = 0
    p = _apply(alpha, x)
    h = (1 - (p**alpha).sum(-1)) / (alpha * (alpha - 1))
    rows = q.sum(-1) * ((p * x).sum(-1) + h) - (q * x).sum(-1)
    reduction = options.get("reduction", "mean")
    if reduction == "none":
        want = rows
    elif reduction == "sum":
        want = rows.sum()
    else:
        want = rows.sum() / w[y[kept]].sum()
    got = _loss(alpha, x, y, **options)
    np.testing.assert_allclose(got, want, atol=1e-12)
    # the gradient variant returns the same loss, and its gradient is torch's autograd's
    loss, grad = _loss_grad(alpha, x, y, **options)
    np.testing.assert_allclose(loss, got, atol=1e-15)
    xt = torch.tensor(x, requires_grad=True)
    torch_options = {
        k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in options.items()
    }
    _loss(alpha, xt, torch.from_numpy(y), **torch_options).sum().backward()
    np.testing.assert_allclose(grad, xt.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("alpha", (1.5, 2.0))
def test_loss_with_probability_targets_and_other_axis(alpha):
    rng = np.random.default_rng(16)
    x = rng.normal(size=(4, 5, 3))
    t = sk.softmax(rng.normal(size=(4, 5, 3)), axis=1)
    got = _loss(alpha, x, t, axis=1, reduction="none")
    moved = np.moveaxis(x, 1, -1)
    tm = np.moveaxis(t, 1, -1)
    p = _apply(alpha, moved)
    h = (1 - (p**alpha).sum(-1)) / (alpha * (alpha - 1))
    np.testing.assert_allclose(got, (p * moved).sum(-1) + h - (tm * moved).sum(-1), atol=1e-12)
    _, grad = _loss_grad(alpha, x, t, axis=1, reduction="sum")
    np.testing.assert_allclose(grad, np.moveaxis(p - tm, -1, 1), atol=1e-12)


@pytest.mark.parametrize("alpha", (1.5, 2.0, 1.7))
def test_loss_is_zero_when_the_prediction_is_the_one_hot_target(alpha):
    x = np.array([[10.0, 0.0, -3.0]])
    np.testing.assert_allclose(_loss(alpha, x, np.array([0])), 0, atol=1e-15)


@pytest.mark.parametrize("alpha", (1.5, 2.0, 1.7))
def test_loss_gradient_by_torch_gradcheck_and_jax_grad(alpha):
    rng = np.random.default_rng(17)
    x = rng.normal(size=(5, 4))
    y = rng.integers(0, 4, size=5)
    xt = torch.tensor(x, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: _loss(alpha, v, torch.from_numpy(y)), (xt,))
    g = jax.jit(jax.grad(lambda v: _loss(alpha, v, jnp.asarray(y))))(jnp.asarray(x))
    _, want = _loss_grad(alpha, x, y)
    np.testing.assert_allclose(np.asarray(g), want, atol=1e-12)


@pytest.mark.parametrize("alpha", (1.5, 2.0))
def test_loss_edge_rows_follow_cross_entropy(engine, alpha):
    """-inf logit with target mass: inf loss, gradient 0 there; a +inf target class: finite."""
    x = np.array([[-np.inf, 1.0, 0.0], [np.inf, 1.0, 0.0], [0.5, 0.2, 0.1]])
    y = np.array([0, 0, 1])
    rows = engine.to_numpy(_loss(alpha, engine.asarray(x), engine.asarray(y), reduction="none"))
    assert rows[0] == np.inf and rows[1] == 0 and np.isfinite(rows[2])
    if engine.name == "numpy":
        _, grad = _loss_grad(alpha, x, y, reduction="none")
        assert np.isfinite(grad).all()
        np.testing.assert_array_equal(grad[1], 0)


def test_loss_bad_options_use_the_shared_messages():
    x, y = np.zeros((2, 3)), np.array([0, 1])
    with pytest.raises(SoftmaxkitValueError, match="`reduction` must be one of"):
        sk.sparsemax_loss(x, y, reduction="avg")
    with pytest.raises(SoftmaxkitValueError, match="`target` must be in"):
        sk.entmax_loss(x, np.array([0, 3]))
    with pytest.raises(SoftmaxkitValueError, match="`label_smoothing`"):
        sk.entmax_loss_grad(x, y, label_smoothing=2.0)


# --- kernels on and off agree -------------------------------------------------------------


@pytest.mark.parametrize("alpha", (1.5, 2.0))
@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_kernels_on_and_off_agree(alpha, dtype):
    rng = np.random.default_rng(18)
    x = np.concatenate([rng.normal(size=(30, 257)) * 3, np.stack(_adversarial(rng, 257))])
    x[3, 5] = np.inf
    x[4] = -np.inf
    x[5, 7] = np.nan
    x = x.astype(dtype)
    g = rng.normal(size=x.shape).astype(dtype)
    with _kernels.use(True):
        on = _apply(alpha, x)
        back_on = sk.sparsemax_backward(g, on) if alpha == 2 else sk.entmax_backward(g, on, 1.5)
    with _kernels.use(False):
        off = _apply(alpha, x)
        back_off = sk.sparsemax_backward(g, on) if alpha == 2 else sk.entmax_backward(g, on, 1.5)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(on, off, atol=tol, rtol=0)
    np.testing.assert_allclose(back_on, back_off, atol=tol * 10, rtol=0)


def test_sparse_kernels_are_built_and_serve_float_rows():
    from softmaxkit._kernels import _sparse as sparse_kernels

    assert sparse_kernels.available()
    x = np.random.default_rng(19).normal(size=(3, 8))
    with _kernels.use(True):
        assert sparse_kernels.project(x, (1,), "sparsemax", x.dtype) is not None
        assert sparse_kernels.project(x, (0,), "sparsemax", x.dtype) is None  # portable layout
    with _kernels.use(False):
        assert sparse_kernels.project(x, (1,), "sparsemax", x.dtype) is None


@pytest.mark.parametrize("alpha", (1.5, 2.0))
def test_kernel_result_does_not_depend_on_the_thread_count(alpha):
    x = np.random.default_rng(20).normal(size=(64, 1000)).astype(np.float32)
    previous = _kernels.num_threads()
    try:
        with _kernels.use(True):
            _kernels.set_num_threads(1)
            one = _apply(alpha, x)
            _kernels.set_num_threads(2)
            two = _apply(alpha, x)
    finally:
        _kernels.set_num_threads(previous)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("alpha", (1.5, 2.0))
def test_kernels_on_long_rows_with_wide_supports_match_the_reference(alpha):
    rng = np.random.default_rng(21)
    n = 20000
    x = np.stack([np.zeros(n), rng.normal(size=n) * 1e-3, np.linspace(-1, 1, n)])
    with _kernels.use(True):
        got = _apply(alpha, x)
    np.testing.assert_allclose(got, _reference(x, alpha), atol=1e-12, rtol=0)
    with _kernels.use(True):
        got32 = _apply(alpha, x.astype(np.float32))
    np.testing.assert_allclose(got32, _reference(x, alpha), atol=1e-6, rtol=0)


@pytest.mark.parametrize("alpha", (1.5, 2.0))
def test_other_layouts_fall_to_the_portable_path_and_agree(alpha):
    x = np.random.default_rng(22).normal(size=(6, 10))
    with _kernels.use(True):
        for view, axis in ((x.T, -1), (x[:, ::2], -1), (x, 0)):
            np.testing.assert_allclose(
                _apply(alpha, view, axis=axis), _reference(view, alpha, axis), atol=1e-12
            )


# --- the torch operator --------------------------------------------------------------------


@pytest.mark.parametrize("kind, alpha", (("sparsemax", 2.0), ("entmax15", 1.5), ("bisect", 1.7)))
def test_torch_operator_passes_opcheck(kind, alpha):
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.softmaxkit.entmax_rows.default, (x, kind, alpha, 64))


def test_torch_meta_tensors_get_shapes_and_second_derivatives_work():
    assert sk.entmax15(torch.empty(2, 3, device="meta")).shape == (2, 3)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: sk.entmax15(t), (x,))


@pytest.mark.parametrize("alpha", (1.5, 2.0))
def test_torch_cpu_kernels_and_portable_path_agree(alpha, torch_path):
    x = torch.from_numpy(np.random.default_rng(23).normal(size=(20, 300)).astype(np.float32))
    np.testing.assert_allclose(
        _apply(alpha, x).numpy(), _reference(x.double().numpy(), alpha), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("alpha", (1.5, 2.0, 1.7))
def test_backward_of_a_nan_slice_stays_nan_in_that_slice(kernel_path, alpha):
    p = np.array([[np.nan, np.nan, np.nan], [0.5, 0.5, 0.0]])
    g = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 1.0]])
    dx = sk.sparsemax_backward(g, p) if alpha == 2 else sk.entmax_backward(g, p, alpha)
    assert np.isnan(dx[0]).all()
    assert np.isfinite(dx[1]).all() and dx[1, 2] == 0


@pytest.mark.parametrize("alpha", (1.5, 2.0))
def test_torch_vmap_and_its_gradient_equal_the_batched_call(alpha):
    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    batched = torch.func.vmap(lambda v: _apply(alpha, v))(x)
    torch.testing.assert_close(batched, _apply(alpha, x))
    grad = torch.func.grad(lambda v: torch.func.vmap(lambda r: _apply(alpha, r))(v)[..., 0].sum())
    want = torch.func.grad(lambda v: _apply(alpha, v)[..., 0].sum())
    torch.testing.assert_close(grad(x), want(x))
