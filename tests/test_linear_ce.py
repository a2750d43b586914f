"""linear_cross_entropy(+_grad): equal to cross_entropy(x @ W.T + b, t) without its logits.

References are PyTorch's plain computation (the full logits, autograd), float64 finite
differences, and a tracemalloc bound on the memory the chunked NumPy path allocates.
"""

from __future__ import annotations

import itertools
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import softmaxkit as sk

N, D, V = 7, 5, 13

OPTIONS = list(
    itertools.product(
        ("mean", "sum", "none"),  # reduction
        (0.0, 0.2),  # label_smoothing
        (False, True),  # bias
        (False, True),  # some rows ignored
        (None, 4, 1),  # chunk_size: default (one chunk), uneven chunks, one class at a time
    )
)


def _problem(seed=0, *, bias=True, ignore=False, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D)).astype(dtype)
    w = rng.standard_normal((V, D)).astype(dtype)
    b = rng.standard_normal(V).astype(dtype) if bias else None
    t = rng.integers(0, V, N)
    if ignore:
        t[[0, 3]] = -100
    return x, w, b, t


def _torch_plain(x, w, b, t, reduction, label_smoothing, grad_output=None):
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if b is not None else None
    z = xt @ wt.T if bt is None else xt @ wt.T + bt
    loss = torch.nn.functional.cross_entropy(
        z, torch.tensor(t), reduction=reduction, label_smoothing=label_smoothing
    )
    loss.backward(torch.ones_like(loss) if grad_output is None else grad_output)
    grads = [xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy() if bt is not None else None]
    return loss.detach().numpy(), *grads


@pytest.mark.parametrize(("reduction", "eps", "bias", "ignore", "chunk"), OPTIONS)
def test_numpy_grad_equals_plain_torch(reduction, eps, bias, ignore, chunk, kernel_path):
    x, w, b, t = _problem(bias=bias, ignore=ignore)
    got = sk.linear_cross_entropy_grad(
        x, w, t, bias=b, reduction=reduction, label_smoothing=eps, chunk_size=chunk
    )
    want = _torch_plain(x, w, b, t, reduction, eps)
    for g, r in zip(got, want, strict=True):
        if r is None:
            assert g is None
        else:
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-14)
    loss = sk.linear_cross_entropy(
        x, w, t, bias=b, reduction=reduction, label_smoothing=eps, chunk_size=chunk
    )
    np.testing.assert_allclose(loss, want[0], rtol=1e-12, atol=1e-14)


@pytest.fixture(params=["numpy", "torch"])
def torch_code(request, monkeypatch):
    """CPU tensors run the NumPy code by default; "torch" forces the torch ops GPUs take."""
    from softmaxkit import _linear_ce

    monkeypatch.setattr(_linear_ce, "_CPU_TENSORS_VIA_NUMPY", request.param == "numpy")
    return request.param


@pytest.mark.parametrize(("reduction", "eps", "bias", "ignore", "chunk"), OPTIONS[::3])
def test_torch_autograd_function_equals_plain_torch(
    reduction, eps, bias, ignore, chunk, torch_code
):
    x, w, b, t = _problem(1, bias=bias, ignore=ignore)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if b is not None else None
    loss = sk.linear_cross_entropy(
        xt, wt, torch.tensor(t), bias=bt, reduction=reduction, label_smoothing=eps, chunk_size=chunk
    )
    assert isinstance(loss, torch.Tensor)
    grad_output = torch.rand(
        loss.shape, dtype=loss.dtype, generator=torch.Generator().manual_seed(0)
    )
    loss.backward(grad_output)
    want = _torch_plain(x, w, b, t, reduction, eps, grad_output)
    np.testing.assert_allclose(loss.detach().numpy(), want[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(xt.grad.numpy(), want[1], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(wt.grad.numpy(), want[2], rtol=1e-12, atol=1e-14)
    if bt is not None:
        np.testing.assert_allclose(bt.grad.numpy(), want[3], rtol=1e-12, atol=1e-14)


def test_torch_function_saves_no_logits(torch_code):
    x, w, _, t = _problem(2)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    loss = sk.linear_cross_entropy(xt, wt, torch.tensor(t), chunk_size=4)
    saved = [s for s in loss.grad_fn.saved_tensors if s is not None]  # (no bias: None)
    assert all(s.numel() < N * V for s in saved)
    assert any(s.shape == (N,) for s in saved)  # one logsumexp per row


def test_torch_grad_function_returns_the_three_gradients(torch_code):
    x, w, b, t = _problem(3)
    loss, dx, dw, db = sk.linear_cross_entropy_grad(
        torch.tensor(x), torch.tensor(w), torch.tensor(t), bias=torch.tensor(b)
    )
    want = _torch_plain(x, w, b, t, "mean", 0.0)
    for g, r in zip((loss, dx, dw, db), want, strict=True):
        assert isinstance(g, torch.Tensor)
        np.testing.assert_allclose(g.numpy(), r, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("reduction", "eps"), [("mean", 0.0), ("sum", 0.3), ("none", 0.1)])
def test_gradients_match_finite_differences(reduction, eps):
    x, w, b, t = _problem(4, ignore=True)
    rng = np.random.default_rng(9)
    weights = rng.standard_normal(N) if reduction == "none" else 1.0

    def f(x_, w_, b_):
        loss = sk.linear_cross_entropy(
            x_, w_, t, bias=b_, reduction=reduction, label_smoothing=eps, chunk_size=5
        )
        return float(np.sum(weights * loss))

    _, dx, dw, db = sk.linear_cross_entropy_grad(
        x, w, t, bias=b, reduction=reduction, label_smoothing=eps, chunk_size=5
    )
    if reduction == "none":
        # the gradients are those of loss.sum(); scale the rows by hand for a weighted sum
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        sk.linear_cross_entropy(
            xt, wt, torch.tensor(t), bias=bt, reduction="none", label_smoothing=eps
        ).backward(torch.tensor(weights))
        dx, dw, db = xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()
    h = 1e-6
    for arr, grad in ((x, dx), (w, dw), (b, db)):
        for idx in [(0,) * arr.ndim, tuple(s - 1 for s in arr.shape), (1,) * arr.ndim]:
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += h
            minus[idx] -= h
            args = {id(x): 0, id(w): 1, id(b): 2}
            pos = args[id(arr)]
            a_plus = [x, w, b]
            a_minus = [x, w, b]
            a_plus[pos], a_minus[pos] = plus, minus
            numeric = (f(*a_plus) - f(*a_minus)) / (2 * h)
            assert grad[idx] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_float32_equals_plain_torch_within_1e5():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 32), dtype=np.float32)
    w = (rng.standard_normal((3000, 32), dtype=np.float32) / 6).astype(np.float32)
    t = rng.integers(0, 3000, 64)
    loss, dx, dw, _ = sk.linear_cross_entropy_grad(x, w, t, chunk_size=700)
    assert loss.dtype == dx.dtype == dw.dtype == np.float32
    want = _torch_plain(x, w, None, t, "mean", 0.0)
    np.testing.assert_allclose(loss, want[0], rtol=1e-5)
    for g, r in zip((dx, dw), want[1:3], strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5 * np.abs(r).max())


def test_nothing_kept_gives_nan_mean_and_zero_gradients():
    x, w, b, _ = _problem(6)
    t = np.full(N, -100)
    loss, dx, dw, db = sk.linear_cross_entropy_grad(x, w, t, bias=b)
    assert np.isnan(loss)
    assert not dx.any() and not dw.any() and not db.any()


def test_jax_takes_the_plain_computation_and_differentiates():
    x, w, b, t = _problem(7)
    loss = sk.linear_cross_entropy(
        jnp.asarray(x), jnp.asarray(w), jnp.asarray(t), bias=jnp.asarray(b)
    )
    want = _torch_plain(x, w, b, t, "mean", 0.0)
    np.testing.assert_allclose(np.asarray(loss), want[0], rtol=1e-12)
    dw = jax.grad(
        lambda w_: sk.linear_cross_entropy(jnp.asarray(x), w_, jnp.asarray(t), bias=jnp.asarray(b))
    )(jnp.asarray(w))
    np.testing.assert_allclose(np.asarray(dw), want[2], rtol=1e-10, atol=1e-14)


def test_chunked_numpy_path_allocates_one_chunk_of_logits():
    """Peak traced memory stays near one (N, chunk) block plus the gradients, far below (N, V)."""
    n, d, v, chunk = 256, 16, 6000, 500
    rng = np.random.default_rng(8)
    x = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal((v, d), dtype=np.float32)
    t = rng.integers(0, v, n)
    sk.linear_cross_entropy_grad(x[:2], w[:10], t[:2] % 10, chunk_size=4)  # warm up imports
    tracemalloc.start()
    try:
        _, dx, dw, _ = sk.linear_cross_entropy_grad(x, w, t, chunk_size=chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    gradients = dx.nbytes + dw.nbytes
    chunk_bytes = n * chunk * 4
    logits_bytes = n * v * 4
    assert peak - gradients <= 2 * chunk_bytes + 200_000
    assert peak - gradients < logits_bytes / 4


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"targets": np.array([0, 13, 1, 1, 1, 1, 1])},
            sk.SoftmaxkitValueError,
            r"\[0, 13\) or -100; position 1 holds 13",
        ),
        (
            {"targets": np.zeros(6, dtype=int)},
            sk.SoftmaxkitValueError,
            r"`targets` must have shape \(7,\)",
        ),
        ({"targets": np.zeros(7)}, sk.SoftmaxkitTypeError, "integer class indices"),
        (
            {"weight": np.zeros((13, 4))},
            sk.SoftmaxkitValueError,
            r"`weight` must have shape \(V, 5\)",
        ),
        ({"bias": np.zeros(12)}, sk.SoftmaxkitValueError, r"`bias` must have shape \(13,\)"),
        ({"chunk_size": 0}, sk.SoftmaxkitValueError, "`chunk_size` must be at least 1"),
        ({"chunk_size": 2.5}, sk.SoftmaxkitTypeError, "`chunk_size` must be a positive int"),
        ({"reduction": "max"}, sk.SoftmaxkitValueError, "`reduction` must be one of"),
        (
            {"label_smoothing": -0.1},
            sk.SoftmaxkitValueError,
            r"`label_smoothing` must be in \[0, 1\]",
        ),
        ({"ignore_index": 1.5}, sk.SoftmaxkitTypeError, "`ignore_index` must be an int"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, match):
    x, w, _, t = _problem(0)
    args = {"inputs": x, "weight": w, "targets": t, **kwargs}
    options = {k: v for k, v in args.items() if k not in ("inputs", "weight", "targets")}
    with pytest.raises(error, match=match):
        sk.linear_cross_entropy_grad(args["inputs"], args["weight"], args["targets"], **options)
