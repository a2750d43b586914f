"""linear_cross_entropy as torch.library operators: autograd (once), torch.func, compile, meta.

The reference is PyTorch's plain computation, ``F.cross_entropy(x @ W.T + b, t)``, with
autograd; every CPU test runs on both kernels of the operators: the NumPy chunk code on
the tensors' memory ("numpy") and the torch chunk code other devices take ("torch").
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import softmaxkit as sk
from softmaxkit import _linear_ce
from softmaxkit._backends._torch_linear_ce import NOT_TWICE_DIFFERENTIABLE

N, D, V = 7, 5, 13
OPS = torch.ops.softmaxkit


@pytest.fixture(params=["numpy", "torch"])
def cpu_kernel(request, monkeypatch):
    monkeypatch.setattr(_linear_ce, "_CPU_TENSORS_VIA_NUMPY", request.param == "numpy")
    return request.param


def _problem(seed=0, *, dtype=torch.float64, ignore=True, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g, dtype=dtype)
    w = torch.randn(V, D, generator=g, dtype=dtype)
    b = torch.randn(V, generator=g, dtype=dtype)
    t = torch.randint(0, V, (N,), generator=g)
    if ignore:
        t[[1, 4]] = -100
    if requires_grad:
        x, w, b = (a.requires_grad_() for a in (x, w, b))
    return x, w, b, t


def _plain(x, w, b, t, **options):
    return F.cross_entropy(x @ w.T + b, t, **options)


def _grads(loss, *leaves, grad_output=None):
    grad_output = torch.ones_like(loss) if grad_output is None else grad_output
    return torch.autograd.grad(loss, leaves, grad_output)


def _close(got, want, tol=1e-12):
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


# --- the operators -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reduction", "eps", "bias", "chunk"),
    [("mean", 0.0, True, 4), ("sum", 0.2, False, None), ("none", 0.1, True, 1)],
)
def test_opcheck(reduction, eps, bias, chunk, cpu_kernel):
    x, w, b, t = _problem()
    b = b if bias else None
    options = (-100, reduction, eps, chunk)
    torch.library.opcheck(OPS.linear_cross_entropy, (x, w, b, t, *options))
    loss, lse = OPS.linear_cross_entropy(x, w, b, t, *options)
    assert lse.dtype == torch.float64 and lse.shape == (N,)
    grad = torch.rand(loss.shape, dtype=loss.dtype, generator=torch.Generator().manual_seed(1))
    for mask in ([True, True, bias], [False, True, False]):
        # detached: the backward operator is not differentiable (see the double-backward test)
        args = (
            grad,
            x.detach(),
            w.detach(),
            b if b is None else b.detach(),
            t,
            lse,
            *options,
            mask,
        )
        torch.library.opcheck(OPS.linear_cross_entropy_backward, args)


def test_backward_operator_computes_what_the_mask_asks(cpu_kernel):
    x, w, b, t = _problem(requires_grad=False)
    _, lse = OPS.linear_cross_entropy(x, w, b, t, -100, "sum", 0.0, 4)
    one = torch.ones((), dtype=x.dtype)
    dx, dw, db = OPS.linear_cross_entropy_backward(
        one, x, w, b, t, lse, -100, "sum", 0.0, 4, [False, True, False]
    )
    assert dx.shape == db.shape == (0,)
    xg, wg, bg = (a.clone().requires_grad_() for a in (x, w, b))
    _close(dw, _grads(_plain(xg, wg, bg, t, reduction="sum"), wg)[0])
    dx, dw, db = OPS.linear_cross_entropy_backward(
        one, x, w, None, t, lse, -100, "sum", 0.0, 4, [True, True, True]
    )
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (0,)  # no bias


def test_low_precision_runs_the_torch_chunks_on_cpu():
    """bfloat16 has no NumPy view: the CPU kernel takes the torch chunk code."""
    x, w, _, t = _problem(dtype=torch.float32, requires_grad=False)
    loss, lse = OPS.linear_cross_entropy(x.bfloat16(), w.bfloat16(), None, t, -100, "mean", 0, 4)
    assert loss.dtype == torch.bfloat16 and lse.dtype == torch.float64
    want = F.cross_entropy((x.bfloat16() @ w.bfloat16().T).float(), t)
    torch.testing.assert_close(loss.float(), want, rtol=2e-2, atol=2e-2)


# --- autograd ------------------------------------------------------------------------------


@pytest.mark.parametrize(("reduction", "eps"), [("mean", 0.0), ("sum", 0.3), ("none", 0.1)])
def test_autograd_equals_plain_torch(reduction, eps, cpu_kernel):
    x, w, b, t = _problem(2)
    options = dict(reduction=reduction, label_smoothing=eps)
    loss = sk.linear_cross_entropy(x, w, t, bias=b, chunk_size=4, **options)
    want = _plain(x, w, b, t, **options)
    _close(loss, want)
    grad = torch.rand(loss.shape, dtype=loss.dtype, generator=torch.Generator().manual_seed(3))
    for got, ref in zip(
        _grads(loss, x, w, b, grad_output=grad),
        _grads(want, x, w, b, grad_output=grad),
        strict=True,
    ):
        _close(got, ref)


def test_autograd_saves_one_number_per_row_never_the_logits(cpu_kernel):
    x, w, b, t = _problem(3)
    loss = sk.linear_cross_entropy(x, w, t, bias=b, chunk_size=4)
    saved = [s for s in loss.grad_fn.saved_tensors if s is not None]
    assert all(s.numel() < N * V for s in saved)
    assert any(s.shape == (N,) and s.dtype == torch.float64 for s in saved)  # the logsumexp


def test_grad_function_uses_no_autograd_graph(cpu_kernel):
    x, w, b, t = _problem(4)
    got = sk.linear_cross_entropy_grad(x, w, t, bias=b, label_smoothing=0.1, chunk_size=3)
    assert not any(g.requires_grad for g in got)
    want = _plain(x, w, b, t, label_smoothing=0.1)
    for g, r in zip(got, (want, *_grads(want, x, w, b)), strict=True):
        _close(g, r)


def test_nothing_kept_gives_nan_mean_and_zero_gradients(cpu_kernel):
    x, w, b, _ = _problem(5)
    t = torch.full((N,), -100)
    loss = sk.linear_cross_entropy(x, w, t, bias=b)
    assert torch.isnan(loss)
    assert not any(g.any() for g in _grads(loss, x, w, b))


def test_second_derivative_says_it_is_not_supported(cpu_kernel):
    x, w, b, t = _problem(6)
    loss = sk.linear_cross_entropy(x, w, t, bias=b, chunk_size=4)
    # the first derivative with create_graph is still the right one ...
    dx, dw = torch.autograd.grad(loss, (x, w), create_graph=True)
    _close(dx, _grads(_plain(x, w, b, t), x)[0])
    # ... but differentiating it says why not, and what to use instead
    with pytest.raises(sk.SoftmaxkitError, match="differentiable once") as info:
        torch.autograd.grad((dx**2).sum() + dw.sum(), x)
    assert str(info.value) == NOT_TWICE_DIFFERENTIABLE
    assert "cross_entropy(inputs @ weight.T + bias, targets)" in str(info.value)
    with pytest.raises(sk.SoftmaxkitError, match="differentiable once"):
        torch.func.jacrev(torch.func.grad(lambda x_: sk.linear_cross_entropy(x_, w, t)))(x)


# --- torch.func ------------------------------------------------------------------------------


def test_func_grad_equals_plain_torch(cpu_kernel):
    x, w, b, t = _problem(7, requires_grad=False)

    def ours(x_, w_, b_):
        return sk.linear_cross_entropy(x_, w_, t, bias=b_, label_smoothing=0.1, chunk_size=4)

    def plain(x_, w_, b_):
        return _plain(x_, w_, b_, t, label_smoothing=0.1)

    got = torch.func.grad(ours, argnums=(0, 1, 2))(x, w, b)
    want = torch.func.grad(plain, argnums=(0, 1, 2))(x, w, b)
    for g, r in zip(got, want, strict=True):
        _close(g, r)


def test_vmap_and_per_sample_gradients(cpu_kernel):
    x, w, b, _ = _problem(8, requires_grad=False)
    g = torch.Generator().manual_seed(9)
    xs = torch.randn(3, N, D, generator=g, dtype=x.dtype)
    ts = torch.randint(0, V, (3, N), generator=g)
    ts[1, 2] = -100

    def ours(x_, t_):
        return sk.linear_cross_entropy(x_, w, t_, bias=b, reduction="none", chunk_size=5)

    def plain(x_, t_):
        return _plain(x_, w, b, t_, reduction="none")

    _close(torch.func.vmap(ours)(xs, ts), torch.func.vmap(plain)(xs, ts))

    def ours_mean(w_, x_, t_):
        return sk.linear_cross_entropy(x_, w_, t_, bias=b, chunk_size=5)

    def plain_mean(w_, x_, t_):
        return _plain(x_, w_, b, t_)

    per_sample = torch.func.vmap(torch.func.grad(ours_mean), in_dims=(None, 0, 0))(w, xs, ts)
    want = torch.func.vmap(torch.func.grad(plain_mean), in_dims=(None, 0, 0))(w, xs, ts)
    assert per_sample.shape == (3, V, D)
    _close(per_sample, want)


# --- meta tensors, torch.compile, autocast -----------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_meta_tensors_get_the_shapes(reduction):
    x = torch.empty(N, D, device="meta", requires_grad=True)
    w = torch.empty(V, D, device="meta", requires_grad=True)
    b = torch.empty(V, device="meta", requires_grad=True)
    t = torch.empty(N, dtype=torch.long, device="meta")
    loss = sk.linear_cross_entropy(x, w, t, bias=b, reduction=reduction)
    assert loss.device.type == "meta" and loss.shape == ((N,) if reduction == "none" else ())
    loss.sum().backward()
    assert (x.grad.shape, w.grad.shape, b.grad.shape) == (x.shape, w.shape, b.shape)
    shapes = [g.shape for g in sk.linear_cross_entropy_grad(x, w, t)[1:3]]
    assert shapes == [x.shape, w.shape]


def test_compile_fullgraph_has_no_graph_break_and_equals_eager(cpu_kernel):
    x, w, b, t = _problem(10)

    def step(x_, w_, b_, t_):
        return sk.linear_cross_entropy(x_, w_, t_, bias=b_, label_smoothing=0.1, chunk_size=4)

    explained = torch._dynamo.explain(step)(x, w, b, t)
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(step, fullgraph=True)
    got, want = compiled(x, w, b, t), step(x, w, b, t)
    _close(got, want)
    for g, r in zip(_grads(got, x, w, b), _grads(want, x, w, b), strict=True):
        _close(g, r)
    # the target check still runs, inside the compiled graph's operator
    bad = t.clone()
    bad[3] = V
    with pytest.raises(sk.SoftmaxkitValueError, match=r"\[0, 13\) or -100; position 3 holds 13"):
        compiled(x, w, b, bad)


def test_autocast_bfloat16_returns_float32_as_torch_does(cpu_kernel):
    x, w, b, t = _problem(11, dtype=torch.float32)
    with torch.autocast("cpu", torch.bfloat16):
        want = F.cross_entropy(F.linear(x, w, b), t)
        got = sk.linear_cross_entropy(x, w, t, bias=b)
        from_bf16 = sk.linear_cross_entropy(x.bfloat16(), w.bfloat16(), t, bias=b.bfloat16())
        op_loss, _ = OPS.linear_cross_entropy(
            x.bfloat16(), w.bfloat16(), None, t, -100, "mean", 0.0, None
        )
    assert want.dtype == got.dtype == from_bf16.dtype == op_loss.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)  # torch's matmul is bfloat16
    torch.testing.assert_close(from_bf16, want, rtol=2e-2, atol=2e-2)
    _grads(from_bf16, x)  # differentiable through the casts


# --- target checks inside the kernels ----------------------------------------------------------


def test_bad_targets_are_caught_in_the_kernel_with_the_message(cpu_kernel):
    x, w, b, t = _problem(12)
    bad = t.clone()
    bad[5] = -1
    with pytest.raises(sk.SoftmaxkitValueError, match=r"\[0, 13\) or -100; position 5 holds -1"):
        sk.linear_cross_entropy(x, w, bad, bias=b)
    with pytest.raises(sk.SoftmaxkitValueError, match="position 5 holds -1"):
        OPS.linear_cross_entropy(x, w, b, bad, -100, "mean", 0.0, None)
    # the dtype as NumPy and JAX arrays name it too (one message for every library)
    with pytest.raises(sk.SoftmaxkitTypeError, match=r"integer class indices; got dtype float64$"):
        sk.linear_cross_entropy(x, w, t.double())
    # an ignore_index of the caller's choice is not a bad target
    t7 = torch.where(t == -100, 7 * V, t)
    _close(sk.linear_cross_entropy(x, w, t7, ignore_index=7 * V), sk.linear_cross_entropy(x, w, t))


def test_shapes_and_dtypes_are_checked_before_any_value(cpu_kernel):
    x, w, _, t = _problem(13)
    with pytest.raises(sk.SoftmaxkitValueError, match=r"`weight` must have shape \(V, 5\)"):
        sk.linear_cross_entropy(x, w[:, :4], t)
    with pytest.raises(sk.SoftmaxkitValueError, match=r"`targets` must have shape \(7,\)"):
        sk.linear_cross_entropy(x, w, t[:6])
    with pytest.raises(sk.SoftmaxkitTypeError, match="`weight` must have the dtype of `inputs`"):
        OPS.linear_cross_entropy(x, w.float(), None, t, -100, "mean", 0.0, None)
    with pytest.raises(sk.SoftmaxkitTypeError, match="one array library"):
        sk.linear_cross_entropy(x, w.detach().numpy(), t)


# --- memory ----------------------------------------------------------------------------------


def test_operators_on_cpu_tensors_allocate_one_chunk_of_logits(monkeypatch):
    """Every large buffer of the NumPy kernels is NumPy's, which tracemalloc traces."""
    monkeypatch.setattr(_linear_ce, "_CPU_TENSORS_VIA_NUMPY", True)  # torch's: the next test
    n, d, v, chunk = 256, 16, 6000, 500
    g = torch.Generator().manual_seed(14)
    x = torch.randn(n, d, generator=g).requires_grad_()
    w = torch.randn(v, d, generator=g).requires_grad_()
    t = torch.randint(0, v, (n,), generator=g)
    sk.linear_cross_entropy(x[:2], w[:10], t[:2] % 10, chunk_size=4).backward()  # warm up
    x.grad = w.grad = None
    tracemalloc.start()
    try:
        sk.linear_cross_entropy(x, w, t, chunk_size=chunk).backward()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    gradients = (x.numel() + w.numel()) * 4
    assert peak - gradients <= 2 * n * chunk * 4 + 200_000
    assert peak - gradients < n * v * 4 / 4
    np.testing.assert_allclose(
        w.grad.numpy(), _grads(F.cross_entropy(x @ w.T, t), w)[0].numpy(), rtol=1e-4, atol=1e-6
    )


def _bytes_allocated(f):
    """``(result, bytes)``: every CPU allocation ``f`` makes, frees not deducted (>= its peak)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = f()
    return result, sum(max(e.self_cpu_memory_usage, 0) for e in prof.events())


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_torch_chunks_allocate_one_chunk_of_logits_per_pass(eps, monkeypatch):
    """The regression of the logsumexp's ``z - max`` (a second chunk, every chunk) and of
    the smoothing's ``sum(dtype=float64)`` (a float64 copy of every chunk)."""
    monkeypatch.setattr(_linear_ce, "_CPU_TENSORS_VIA_NUMPY", False)
    n, d, v, chunk = 64, 16, 4096, 512
    g = torch.Generator().manual_seed(16)
    x = torch.randn(n, d, generator=g).requires_grad_()
    w = torch.randn(v, d, generator=g).requires_grad_()
    b = torch.randn(v, generator=g).requires_grad_()
    t = torch.randint(0, v, (n,), generator=g)
    options = dict(bias=b, label_smoothing=eps, chunk_size=chunk)
    loss, forward = _bytes_allocated(lambda: sk.linear_cross_entropy(x, w, t, **options))
    _, backward = _bytes_allocated(loss.backward)
    one_chunk = n * chunk * 4
    per_row = 16 * n * 8 * (v // chunk + 2)  # per chunk, a dozen float64 vectors of length n
    assert forward <= one_chunk + per_row
    # the backward pass takes the block the forward pass handed on: only the gradients are new
    assert backward <= (x.numel() + w.numel() + b.numel()) * 4 + per_row
    want = _grads(_plain(x, w, b, t, label_smoothing=eps), w)[0]
    torch.testing.assert_close(w.grad, want, rtol=1e-4, atol=1e-6)


def test_chunk_block_is_handed_on_and_survives_inference_mode(monkeypatch):
    """One block kept between passes; one made under inference mode is not written outside it."""
    from softmaxkit._backends import _torch_linear_ce as ops

    monkeypatch.setattr(_linear_ce, "_CPU_TENSORS_VIA_NUMPY", False)
    x, w, b, t = _problem(17, dtype=torch.float32)
    want = _grads(_plain(x, w, b, t), x, w, b)
    ops.release_workspace()
    with torch.inference_mode():
        sk.linear_cross_entropy(x.detach(), w.detach(), t, bias=b.detach(), chunk_size=4)
    (held,) = ops._workspace
    assert held.is_inference() and held.numel() == N * 4
    for _ in range(2):  # the second time round, the block the first backward pass left
        got = _grads(sk.linear_cross_entropy(x, w, t, bias=b, chunk_size=4), x, w, b)
        for g, e in zip(got, want, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
        (held,) = ops._workspace
        assert not held.is_inference() and held.numel() == N * 4
    ops.release_workspace()
    assert ops._workspace == []


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine (CI has none)"
)
def test_cuda_runs_the_torch_chunks_without_synchronising():
    x, w, b, t = (a.detach().cuda() for a in _problem(15))
    x, w, b = (a.requires_grad_() for a in (x, w, b))
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = sk.linear_cross_entropy(x, w, t, bias=b, label_smoothing=0.1, chunk_size=4)
        grads = _grads(loss, x, w, b)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    want = _plain(x, w, b, t, label_smoothing=0.1)
    _close(loss, want)
    for g, r in zip(grads, _grads(want, x, w, b), strict=True):
        _close(g, r)
