"""Issue 17, item 14: tensors whose values the host cannot read.

A ``meta`` or fake tensor has no values, a tensor batched by ``torch.func.vmap`` refuses to
be read in Python, and under ``torch.compile`` nothing is read while dynamo traces.  The
data-dependent checks of ``pmf_normalize`` and of the losses (counts finite and positive,
class indices in range, probabilities that sum to 1) read values on the host; on such
tensors they failed with ``Tensor.item()`` or ``NotImplementedError`` errors, and vmap
raised.  Now they are skipped where there is nothing to read, read through torch.func's
wrappers where the values exist, and become device-side assertions in a compiled graph.

Every path a torch tensor can take is tried: kernels on and off, and the torch backend's
"auto", "operators", "fused" (what GPU tensors take) and "portable" paths.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

import softmaxkit as sk
from softmaxkit import SoftmaxkitTypeError, SoftmaxkitValueError, _kernels
from softmaxkit._backends import _torch

F64, F32, F16, BF16 = torch.float64, torch.float32, torch.float16, torch.bfloat16
REDUCTIONS = ("none", "mean", "sum")
N, C = 4, 5
IGNORE = 2  # a class index that is also in range: the rows holding it are ignored


@pytest.fixture(params=[(kernels, path) for kernels in (True, False) for path in _torch.PATHS])
def every_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Kernels on or off, times the torch backend's four paths."""
    kernels, path = request.param
    with _kernels.use(kernels), _torch.use_path(path):
        yield f"kernels={kernels}-{path}"


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    # torch.func warns of the autograd.Function's vmap rule it generates; not what is tested
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


# --- 1. meta tensors: the shapes and dtypes of torch.nn.functional on meta ---------------------


def _meta(*shape: int, dtype: torch.dtype = F32) -> torch.Tensor:
    return torch.empty(shape, device="meta", dtype=dtype)


def _meta_indices(*shape: int) -> torch.Tensor:
    return torch.empty(shape, device="meta", dtype=torch.long)


def _loss_pairs(dtype: torch.dtype) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """``name: (softmaxkit call, torch.nn.functional call)``, both on meta tensors."""
    x, p, w = _meta(N, C, dtype=dtype), _meta(N, C, dtype=dtype), _meta(C, dtype=dtype)
    y = _meta_indices(N)
    x3, y3 = _meta(N, C, 3, dtype=dtype), _meta_indices(N, 3)  # the class axis is 1
    pairs: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    for r in REDUCTIONS:
        pairs |= {
            f"cross_entropy-indices-{r}": (
                lambda r=r: sk.cross_entropy(x, y, reduction=r),
                lambda r=r: F.cross_entropy(x, y, reduction=r),
            ),
            f"cross_entropy-indices-options-{r}": (
                lambda r=r: sk.cross_entropy(
                    x, y, weight=w, ignore_index=IGNORE, label_smoothing=0.1, reduction=r
                ),
                lambda r=r: F.cross_entropy(
                    x, y, weight=w, ignore_index=IGNORE, label_smoothing=0.1, reduction=r
                ),
            ),
            f"cross_entropy-probabilities-{r}": (
                lambda r=r: sk.cross_entropy(x, p, weight=w, label_smoothing=0.2, reduction=r),
                lambda r=r: F.cross_entropy(x, p, weight=w, label_smoothing=0.2, reduction=r),
            ),
            f"cross_entropy-class-axis-1-{r}": (
                lambda r=r: sk.cross_entropy(x3, y3, axis=1, reduction=r),
                lambda r=r: F.cross_entropy(x3, y3, reduction=r),
            ),
            f"nll_loss-{r}": (
                lambda r=r: sk.nll_loss(x, y, weight=w, ignore_index=IGNORE, reduction=r),
                lambda r=r: F.nll_loss(x, y, weight=w, ignore_index=IGNORE, reduction=r),
            ),
            f"binary_cross_entropy_with_logits-{r}": (
                lambda r=r: sk.binary_cross_entropy_with_logits(
                    x, p, weight=w, pos_weight=w, reduction=r
                ),
                lambda r=r: F.binary_cross_entropy_with_logits(
                    x, p, weight=w, pos_weight=w, reduction=r
                ),
            ),
        }
    return pairs


@pytest.mark.parametrize("dtype", [F64, F32, F16, BF16], ids=str)
def test_losses_on_meta_tensors_skip_the_target_checks_and_match_torch_functional(
    every_path, dtype
):
    for name, (ours, theirs) in _loss_pairs(dtype).items():
        got, expected = ours(), theirs()
        assert got.device.type == "meta", name
        assert (got.shape, got.dtype) == (expected.shape, expected.dtype), name


@pytest.mark.parametrize("dtype", [F64, F32, F16, BF16], ids=str)
def test_loss_grads_on_meta_tensors_give_the_shapes_of_the_loss_and_its_gradient(every_path, dtype):
    x, p, y = _meta(N, C, dtype=dtype), _meta(N, C, dtype=dtype), _meta_indices(N)
    for r in REDUCTIONS:
        expected_loss = (N,) if r == "none" else ()
        calls = {
            "cross_entropy_grad-indices": lambda r=r: sk.cross_entropy_grad(
                x, y, ignore_index=IGNORE, label_smoothing=0.1, reduction=r
            ),
            "cross_entropy_grad-probabilities": lambda r=r: sk.cross_entropy_grad(
                x, p, reduction=r
            ),
            "nll_loss_grad": lambda r=r: sk.nll_loss_grad(x, y, reduction=r),
        }
        for name, call in calls.items():
            loss, grad = call()
            assert (loss.device.type, loss.shape, loss.dtype) == ("meta", expected_loss, dtype)
            assert (grad.device.type, grad.shape, grad.dtype) == ("meta", x.shape, dtype), name
        loss, grad = sk.binary_cross_entropy_with_logits_grad(x, p, pos_weight=x[0], reduction=r)
        assert loss.shape == (x.shape if r == "none" else ()) and grad.shape == x.shape
        assert loss.device.type == grad.device.type == "meta"


@pytest.mark.parametrize("dtype", [F64, F32, F16, BF16], ids=str)
def test_pmf_normalize_on_meta_tensors_skips_the_host_checks(every_path, dtype):
    counts = _meta(N, C, 3, dtype=dtype)
    for axis in (-1, 0, (0, 2), None):
        got = sk.pmf_normalize(counts, axis=axis)
        # the reference: the same formula in torch on meta
        dims = tuple(range(3)) if axis is None else axis
        expected = counts / counts.sum(dim=dims, keepdim=True)
        assert (got.device.type, got.shape, got.dtype) == ("meta", expected.shape, expected.dtype)
    integer = torch.empty((N, C), device="meta", dtype=torch.int64)
    assert sk.pmf_normalize(integer).dtype == torch.get_default_dtype()


@pytest.mark.parametrize("dtype", [F64, F32, F16], ids=str)
def test_linear_cross_entropy_on_meta_tensors_gives_the_cpu_shapes(every_path, dtype):
    def call(device: str, grad: bool, **options: Any) -> Any:
        h = torch.ones((N, 3), dtype=dtype, device=device)
        w = torch.ones((C, 3), dtype=dtype, device=device)
        t = torch.zeros((N,), dtype=torch.long, device=device)
        fn = sk.linear_cross_entropy_grad if grad else sk.linear_cross_entropy
        return fn(h, w, t, **options)

    for grad in (False, True):
        for options in ({}, {"bias": None, "reduction": "none", "label_smoothing": 0.1}):
            cpu, meta = call("cpu", grad, **options), call("meta", grad, **options)
            cpu, meta = (cpu, meta) if grad else ((cpu,), (meta,))
            for m, c in zip(meta, cpu, strict=True):
                if c is None:
                    assert m is None
                    continue
                assert (m.device.type, m.shape, m.dtype) == ("meta", c.shape, c.dtype)


def test_fake_tensors_pass_pmf_normalize_and_the_losses():
    """Fake tensors (what torch.compile and torch.export trace with) have no values either."""
    with FakeTensorMode():
        x = torch.empty(N, C)
        y = torch.zeros(N, dtype=torch.long)
        for kernels in (True, False):
            with _kernels.use(kernels):
                assert sk.pmf_normalize(x).shape == (N, C)
                assert sk.cross_entropy(x, y, label_smoothing=0.1).shape == ()
                assert sk.cross_entropy(x, x, reduction="none").shape == (N,)
                assert sk.nll_loss(x, y, reduction="none").shape == (N,)
                assert sk.binary_cross_entropy_with_logits(x, x).shape == ()


# --- 2. torch.func.vmap and grad: equal to a Python loop over the batch --------------------------


def _batch(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, C, (3, N), generator=g)
    y[1, 2] = IGNORE
    return {
        "x": torch.randn(3, N, C, generator=g, dtype=dtype),
        "y": y,
        "p": torch.softmax(torch.randn(3, N, C, generator=g, dtype=F64), -1).to(dtype),
        "counts": torch.rand(3, N, C, generator=g, dtype=dtype) + 0.1,
        "h": torch.randn(3, N, 3, generator=g, dtype=dtype),
    }


def _vmapped(dtype: torch.dtype) -> dict[str, tuple[Callable[..., Any], tuple[str, ...]]]:
    """``name: (function of one batch entry, the names of its batched arguments)``."""
    w = torch.tensor([0.5, 2.0, 1.0, 3.0, 1.5], dtype=dtype)
    proj = torch.linspace(-1, 1, C * 3, dtype=dtype).reshape(C, 3)
    cases: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
        "pmf_normalize": (sk.pmf_normalize, ("counts",)),
        "pmf_normalize-axis-0": (lambda c: sk.pmf_normalize(c, axis=0), ("counts",)),
        "pmf_normalize-axis-None": (lambda c: sk.pmf_normalize(c, axis=None), ("counts",)),
        "linear_cross_entropy": (
            lambda h, t: sk.linear_cross_entropy(h, proj, t, ignore_index=IGNORE),
            ("h", "y"),
        ),
        "linear_cross_entropy_grad": (
            lambda h, t: sk.linear_cross_entropy_grad(h, proj, t, label_smoothing=0.1)[:3],
            ("h", "y"),
        ),
    }
    for r in REDUCTIONS:
        cases |= {
            f"cross_entropy-indices-{r}": (
                lambda a, t, r=r: sk.cross_entropy(
                    a, t, weight=w, ignore_index=IGNORE, label_smoothing=0.1, reduction=r
                ),
                ("x", "y"),
            ),
            f"cross_entropy-probabilities-{r}": (
                lambda a, t, r=r: sk.cross_entropy(
                    a, t, weight=w, label_smoothing=0.2, reduction=r
                ),
                ("x", "p"),
            ),
            f"cross_entropy_grad-{r}": (
                lambda a, t, r=r: sk.cross_entropy_grad(a, t, reduction=r),
                ("x", "y"),
            ),
            f"nll_loss-{r}": (
                lambda a, t, r=r: sk.nll_loss(a, t, weight=w, reduction=r),
                ("x", "y"),
            ),
            f"nll_loss_grad-{r}": (
                lambda a, t, r=r: sk.nll_loss_grad(a, t, ignore_index=IGNORE, reduction=r),
                ("x", "y"),
            ),
            f"binary_cross_entropy_with_logits-{r}": (
                lambda a, t, r=r: sk.binary_cross_entropy_with_logits(
                    a, t, weight=w, pos_weight=w.flip(0), reduction=r
                ),
                ("x", "p"),
            ),
            f"binary_cross_entropy_with_logits_grad-{r}": (
                lambda a, t, r=r: sk.binary_cross_entropy_with_logits_grad(a, t, reduction=r),
                ("x", "p"),
            ),
        }
    return cases


def _tolerance(dtype: torch.dtype) -> dict[str, float]:
    return {"rtol": 1e-12, "atol": 1e-14} if dtype == F64 else {"rtol": 1e-5, "atol": 1e-6}


def _stacked(results: list[Any]) -> Any:
    if isinstance(results[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*results, strict=True))
    return torch.stack(results)


@pytest.mark.parametrize("dtype", [F64, F32, F16], ids=str)
@pytest.mark.parametrize("case", list(_vmapped(F64)))
def test_vmap_of_pmf_normalize_and_the_losses_equals_a_loop_over_the_batch(every_path, dtype, case):
    fn, names = _vmapped(dtype)[case]
    batch = _batch(dtype)
    args = [batch[n] for n in names]
    got = torch.func.vmap(fn)(*args)
    expected = _stacked([fn(*entry) for entry in zip(*args, strict=True)])
    tol = _tolerance(dtype) if dtype != F16 else {"rtol": 1e-3, "atol": 1e-3}
    torch.testing.assert_close(got, expected, **tol)


GRADS: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "pmf_normalize": (lambda c: (sk.pmf_normalize(c) ** 2).sum(), ("counts",)),
    "cross_entropy-indices": (
        lambda a, t: sk.cross_entropy(a, t, ignore_index=IGNORE, label_smoothing=0.1),
        ("x", "y"),
    ),
    "cross_entropy-probabilities": (lambda a, t: sk.cross_entropy(a, t), ("x", "p")),
    "nll_loss": (lambda a, t: sk.nll_loss(sk.log_softmax(a), t), ("x", "y")),
    "binary_cross_entropy_with_logits": (
        lambda a, t: sk.binary_cross_entropy_with_logits(a, t, reduction="sum"),
        ("x", "p"),
    ),
    "linear_cross_entropy": (
        lambda h, t: sk.linear_cross_entropy(h, torch.ones(C, 3, dtype=h.dtype), t),
        ("h", "y"),
    ),
}


@pytest.mark.parametrize("dtype", [F64, F32], ids=str)
@pytest.mark.parametrize("case", list(GRADS))
def test_func_grad_and_vmap_of_grad_equal_autograd_in_a_loop(every_path, dtype, case):
    fn, names = GRADS[case]
    batch = _batch(dtype)
    args = [batch[n] for n in names]
    expected = []
    for first, *rest in zip(*args, strict=True):
        leaf = first.detach().clone().requires_grad_()
        fn(leaf, *rest).backward()
        expected.append(leaf.grad)
        torch.testing.assert_close(
            torch.func.grad(fn)(first, *rest), leaf.grad, **_tolerance(dtype)
        )
    got = torch.func.vmap(torch.func.grad(fn))(*args)
    torch.testing.assert_close(got, torch.stack(expected), **_tolerance(dtype))


def _bad_batches() -> dict[str, tuple[Callable[..., Any], tuple[torch.Tensor, ...], int, str]]:
    """``name: (function of one entry, batched arguments, the bad entry, message)``."""
    batch = _batch(F64)
    x, y, p, counts = batch["x"], batch["y"].clone(), batch["p"].clone(), batch["counts"]
    y[2, 1] = C + 3
    p[1, 0] = 0.9
    negative, empty = counts.clone(), counts.clone()
    negative[1, 2, 3] = -1.0
    empty[2, 0] = 0.0
    index = r"`target` must be in \[0, 5\) or -100"
    return {
        "pmf_normalize-negative": (sk.pmf_normalize, (negative,), 1, "`counts` must be finite"),
        "pmf_normalize-zero-total": (sk.pmf_normalize, (empty,), 2, "`counts` must have a"),
        "cross_entropy-index": (sk.cross_entropy, (x, y), 2, index),
        "cross_entropy-probabilities": (sk.cross_entropy, (x, p), 1, "`target` probabilities"),
        "cross_entropy_grad-index": (lambda a, t: sk.cross_entropy_grad(a, t)[0], (x, y), 2, index),
        "nll_loss-index": (sk.nll_loss, (x, y), 2, index),
        "binary_cross_entropy_with_logits": (
            sk.binary_cross_entropy_with_logits,
            (x, p * 2),
            1,
            r"`target` must be probabilities in \[0, 1\]",
        ),
        "linear_cross_entropy": (
            lambda h, t: sk.linear_cross_entropy(h, torch.ones(C, 3, dtype=F64), t),
            (batch["h"], y),
            2,
            r"`targets` must be in \[0, 5\)",
        ),
    }


@pytest.mark.parametrize("case", list(_bad_batches()))
def test_bad_values_under_vmap_raise_softmaxkit_errors(every_path, case):
    fn, args, _, message = _bad_batches()[case]
    with pytest.raises(SoftmaxkitValueError, match=message):
        torch.func.vmap(fn)(*args)


@pytest.mark.parametrize("case", list(_bad_batches()))
def test_bad_values_under_func_grad_raise_softmaxkit_errors(every_path, case):
    """Under grad the values can be read, but grad's wrappers refuse ``.numpy()``, which the
    messages used: a raw RuntimeError came instead of the error."""
    fn, args, bad, message = _bad_batches()[case]

    def scalar(first: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        return fn(first, *rest).sum()

    with pytest.raises(SoftmaxkitValueError, match=message):
        torch.func.grad(scalar)(*(a[bad] for a in args))


# --- 3. torch.compile: the checks become device-side assertions in the graph -----------------


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "no-kernels"])
@pytest.mark.parametrize("dtype", [F32, F16], ids=str)
def test_compiled_pmf_normalize_has_no_graph_break_and_keeps_its_checks(
    fresh_dynamo, kernels, dtype
):
    counts = (torch.rand(N, C, generator=torch.Generator().manual_seed(4)) + 0.1).to(dtype)
    with _kernels.use(kernels):
        compiled = torch.compile(sk.pmf_normalize, fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(compiled(counts), sk.pmf_normalize(counts), rtol=0, atol=0)
        bad = counts.clone()
        bad[1, 2] = -1
        # torch._assert_async in the graph: PyTorch's own error, raised when the graph runs
        with pytest.raises(RuntimeError, match="`counts` must be finite and non-negative"):
            compiled(bad)


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "no-kernels"])
def test_compiled_portable_losses_have_no_graph_break(fresh_dynamo, kernels):
    """float16 logits take the portable path (not the operators): its target checks used
    to read values on the host, a graph break."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(N, C, generator=g).to(F16)
    y = torch.randint(0, C, (N,), generator=g)
    p = torch.rand(N, C, generator=g).to(F16)

    def fn(a: torch.Tensor, t: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return sk.nll_loss(a, t) + sk.binary_cross_entropy_with_logits(a, q, pos_weight=q[0])

    with _kernels.use(kernels):
        compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(compiled(x, y, p), fn(x, y, p))
        with pytest.raises(RuntimeError, match=r"`target` must be in \[0, 5\)"):
            compiled(x, torch.tensor([0, 1, 9, 3]), p)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    ("kernels", "path"), [(False, "auto"), (True, "fused"), (True, "portable"), (True, "auto")]
)
def test_compiled_softmax_family_has_no_graph_break(fresh_dynamo, kernels, path, dtype):
    """The portable path (kernels off, or the fused path torch takes on GPUs) once broke
    ``fullgraph``: ``np.errstate`` around ``x - max`` and ``math.prod`` of a generator."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(N, C, generator=g).to(dtype)
    y = torch.randint(0, C, (N,), generator=g)

    def fn(a: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return sk.softmax(a), sk.log_softmax(a), sk.logsumexp(a), sk.cross_entropy(a, t)

    with _kernels.use(kernels), _torch.use_path(path):
        compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
        results = compiled(x, y)
    expected = (
        torch.softmax(x, -1),
        torch.log_softmax(x, -1),
        torch.logsumexp(x, -1),
        F.cross_entropy(x, y),
    )
    for got, want in zip(results, expected, strict=True):
        torch.testing.assert_close(got, want)


# --- 4. functions that compute on the host refuse such tensors in their own words -------------


def test_host_only_functions_refuse_meta_and_batched_tensors_with_softmaxkit_errors():
    probs, labels = _meta(N, C), _meta_indices(N)
    with pytest.raises(SoftmaxkitTypeError, match="meta tensor"):
        sk.expected_calibration_error(probs, labels)
    with pytest.raises(SoftmaxkitTypeError, match="meta tensor"):
        sk.fit_temperature(probs, labels)
    real, zeros = torch.softmax(_batch(F64)["x"], -1), torch.zeros(N, dtype=torch.long)
    with pytest.raises(SoftmaxkitTypeError, match="vmap"):
        torch.func.vmap(lambda q: torch.tensor(sk.expected_calibration_error(q, zeros)))(real)


# --- 5. torch.func.jacrev: vmap over the losses' backward ---------------------------------------


def _jacobian_cases() -> dict[str, tuple[Callable[..., Any], Callable[..., Any], bool]]:
    """``name: (softmaxkit loss, torch.nn.functional loss, second order too)``."""
    g = torch.Generator().manual_seed(7)
    y = torch.randint(0, C, (N,), generator=g)
    y[1] = IGNORE
    p = torch.softmax(torch.randn(N, C, generator=g, dtype=F64), -1)
    w = torch.rand(C, generator=g, dtype=F64) + 0.5
    proj = torch.randn(C, 3, generator=g, dtype=F64)
    options = {"weight": w, "ignore_index": IGNORE, "label_smoothing": 0.1}
    return {
        "cross_entropy": (
            lambda a: sk.cross_entropy(a, y, **options),
            lambda a: F.cross_entropy(a, y, **options),
            True,
        ),
        "cross_entropy-probabilities": (
            lambda a: sk.cross_entropy(a, p, reduction="none"),
            lambda a: F.cross_entropy(a, p, reduction="none"),
            True,
        ),
        "nll_loss": (
            lambda a: sk.nll_loss(a, y, weight=w, reduction="sum"),
            lambda a: F.nll_loss(a, y, weight=w, reduction="sum"),
            True,
        ),
        "binary_cross_entropy_with_logits": (
            lambda a: sk.binary_cross_entropy_with_logits(a, p, pos_weight=w),
            lambda a: F.binary_cross_entropy_with_logits(a, p, pos_weight=w),
            True,
        ),
        # differentiable once: its logits are (N, 3) inputs times the projection
        "linear_cross_entropy": (
            lambda a: sk.linear_cross_entropy(a[:, :3], proj, y, reduction="none"),
            lambda a: F.cross_entropy(a[:, :3] @ proj.T, y, reduction="none"),
            False,
        ),
    }


@pytest.mark.parametrize("case", list(_jacobian_cases()))
def test_func_jacrev_of_the_losses_matches_torch_functional(every_path, case):
    """jacrev vmaps the backward: the losses' backward made leaves with autograd there,
    which vmap does not track ("element 0 of tensors does not require grad")."""
    ours, theirs, twice = _jacobian_cases()[case]
    x = torch.randn(N, C, generator=torch.Generator().manual_seed(8), dtype=F64)
    torch.testing.assert_close(torch.func.jacrev(ours)(x), torch.func.jacrev(theirs)(x))
    if twice:
        torch.testing.assert_close(
            torch.func.jacrev(torch.func.jacrev(ours))(x),
            torch.func.jacrev(torch.func.jacrev(theirs))(x),
        )


@pytest.mark.parametrize("strict", [False, True], ids=["non-strict", "strict"])
def test_torch_export_traces_pmf_normalize_and_the_losses(fresh_dynamo, strict):
    """torch.export traces with fake tensors (non-strict: no dynamo, is_compiling is False)."""

    class Model(torch.nn.Module):
        def forward(self, a: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return (
                sk.cross_entropy(a, t, label_smoothing=0.1)
                + sk.pmf_normalize(c).square().sum()
                + sk.binary_cross_entropy_with_logits(a, torch.sigmoid(c))
            )

    g = torch.Generator().manual_seed(9)
    args = (
        torch.randn(N, C, generator=g),
        torch.randint(0, C, (N,), generator=g),
        torch.rand(N, C, generator=g) + 0.1,
    )
    exported = torch.export.export(Model(), args, strict=strict)
    torch.testing.assert_close(exported.module()(*args), Model()(*args))
