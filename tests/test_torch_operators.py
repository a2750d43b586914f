"""The torch backend's ``torch.library`` operators, through everything PyTorch does to an op.

On CPU float32/float64 tensors the public functions run the operators of namespace
``softmaxkit`` (:mod:`softmaxkit._backends._torch`).  Here: ``torch.library.opcheck`` of every
operator; float64 ``gradcheck``/``gradgradcheck`` of the public functions; ``torch.compile``
without graph breaks; ``torch.func.grad`` and ``vmap``; meta tensors; autocast; the target
checks inside the operators; agreement of the three paths a CPU tensor can take (operators,
fused, portable); results that do not depend on the kernels' thread count; and the CUDA path,
which must never synchronise with the host.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck
from torch.utils._python_dispatch import TorchDispatchMode

import softmaxkit as sk
from softmaxkit import SoftmaxkitValueError, _kernels
from softmaxkit._backends._torch import use_path

OPS = torch.ops.softmaxkit  # registered by the import of softmaxkit._backends._torch above
F64, F32 = torch.float64, torch.float32
DTYPES = [F64, F32]
IGNORE = -100
REDUCTIONS = ["none", "mean", "sum"]
INF, NAN = math.inf, math.nan
N, C = 5, 4
CLASS_TARGET = [1, IGNORE, 3, 0, 2]  # one ignored row


def _randn(*shape: int, dtype: torch.dtype = F64, seed: int = 0, scale: float = 2.0) -> Any:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * scale


def _probabilities(*shape: int, dtype: torch.dtype = F64, seed: int = 1) -> Any:
    raw = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) ** 2
    raw = raw + 0.01
    return raw / raw.sum(-1, keepdim=True)


def _class_weight(dtype: torch.dtype = F64) -> Any:
    return torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=dtype)


class _RecordOps(TorchDispatchMode):
    """The names of the ``softmaxkit`` operators dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "softmaxkit":
            self.names.add(func._opname)
        return func(*args, **(kwargs or {}))


def test_public_functions_on_cpu_floats_run_the_operators():
    """The premise of this file: on CPU float tensors the default path is the operators."""
    x = _randn(N, C, dtype=F32).requires_grad_()
    target = torch.tensor(CLASS_TARGET)
    with _RecordOps() as rec:
        sk.softmax(x).sum().backward()
        sk.log_softmax(x, temperature=0.5).sum().backward()
        sk.logsumexp(x).sum().backward()
        sk.softmax_backward(x.detach(), x.detach())
        sk.log_softmax_backward(x.detach(), x.detach())
        sk.cross_entropy(x, target).backward()
        sk.cross_entropy_grad(x.detach(), target)
        sk.nll_loss(x, target)
        sk.binary_cross_entropy_with_logits(x, torch.rand(N, C))
    assert rec.names >= {
        "softmax",
        "softmax_vjp",
        "log_softmax",
        "log_softmax_vjp",
        "logsumexp",
        "softmax_backward",
        "log_softmax_backward",
        "cross_entropy",
        "cross_entropy_backward",
        "nll_loss",
        "binary_cross_entropy_with_logits",
    }


# --- 1. torch.library.opcheck ------------------------------------------------------------------

# Cross-entropy settings, each option in at least one case and each reduction with both kinds
# of target: (target kind, weighted, ignore_index, reduction, label_smoothing, z_loss, softcap).
CE_OPCHECK = {
    "indices-mean": ("indices", False, IGNORE, "mean", 0.0, 0.0, None),
    "indices-ignore2-weight-smoothing-none": ("indices", True, 2, "none", 0.2, 0.0, None),
    "indices-z_loss-softcap-sum": ("indices", False, IGNORE, "sum", 0.0, 0.01, 3.0),
    "indices-everything-mean": ("indices", True, IGNORE, "mean", 0.2, 0.01, 3.0),
    "probabilities-none": ("probabilities", False, IGNORE, "none", 0.0, 0.0, None),
    "probabilities-smoothing-sum": ("probabilities", False, IGNORE, "sum", 0.2, 0.0, None),
    "probabilities-everything-mean": ("probabilities", True, IGNORE, "mean", 0.2, 0.01, 3.0),
}


def _opcheck(op: Any, args: tuple) -> None:
    results = torch.library.opcheck(op, args)
    assert results and set(results.values()) == {"SUCCESS"}, results


def _opcheck_cases(
    dtype: torch.dtype, requires_grad: bool, grid: bool
) -> Iterator[tuple[str, Any, tuple]]:
    """``(name, operator, args)`` on representative valid input: one case per operator, or
    with ``grid`` more, every cross-entropy setting of ``CE_OPCHECK`` among them."""
    rg = requires_grad
    x = _randn(N, C, dtype=dtype).requires_grad_(rg)
    x3 = _randn(2, 3, 4, dtype=dtype, seed=2).requires_grad_(rg)
    edges = torch.tensor(
        [[1.0, -INF, 2.0, 0.5], [-INF, INF, 0.0, INF], [3.0, 1.0, 2.0, -1.0]], dtype=dtype
    ).requires_grad_(rg)
    yield "softmax", OPS.softmax, (x3, [1, 2], 0.4)
    yield "softmax-edges", OPS.softmax, (edges, [1], 1.0)
    yield "log_softmax", OPS.log_softmax, (x3, [0, 1], 1.0)
    yield "logsumexp", OPS.logsumexp, (x3, [0, 1])
    if grid:
        yield "log_softmax-edges", OPS.log_softmax, (edges, [1], 0.4)
        yield "logsumexp-edges", OPS.logsumexp, (edges, [1])

    g = _randn(N, C, dtype=dtype, seed=3).requires_grad_(rg)
    p = sk.softmax(x.detach(), temperature=0.4).requires_grad_(rg)
    logp = sk.log_softmax(x.detach(), axis=0).requires_grad_(rg)
    yield "softmax_backward", OPS.softmax_backward, (g, p, [1])
    yield "log_softmax_backward", OPS.log_softmax_backward, (g, logp, [0])
    yield "softmax_vjp", OPS.softmax_vjp, (g, p, x, [1], 0.4)
    yield "log_softmax_vjp", OPS.log_softmax_vjp, (g, logp, x, [0], 1.0)

    core_ce = ["indices-everything-mean", "probabilities-none"]
    for name in list(CE_OPCHECK) if grid else core_ce:
        kind, weighted, ignore, reduction, eps, z, cap = CE_OPCHECK[name]
        for backward in (False, True):
            # The backward operator's own gradient (double backward through the composite
            # loss) is the costly part of an opcheck, and gradgradcheck of cross_entropy
            # below differentiates the same composite twice: here one setting takes it.
            grad_here = rg and (not backward or name == "probabilities-none")
            if kind == "indices":
                target = torch.tensor([ignore if y == IGNORE else y for y in CLASS_TARGET])
            else:
                # opcheck asks for the gradient of a probability target, never perturbs it
                target = _probabilities(N, C, dtype=dtype).requires_grad_(grad_here)
            weight = _class_weight(dtype).requires_grad_(grad_here and kind == "probabilities")
            settings = (target, weight if weighted else None, ignore, reduction, eps, z, cap)
            logits = x.detach().requires_grad_(grad_here)
            if not backward:
                yield f"cross_entropy-{name}", OPS.cross_entropy, (logits, *settings)
                continue
            upstream = _randn(*((N,) if reduction == "none" else ()), dtype=dtype, seed=4)
            args = (upstream.requires_grad_(grad_here), logits, *settings)
            yield f"cross_entropy_backward-{name}", OPS.cross_entropy_backward, args

    logp = sk.log_softmax(x.detach()).requires_grad_(rg)
    nll = [("mean", True, IGNORE), ("none", False, 3), ("sum", True, 3)]
    for reduction, weighted, ignore in nll if grid else nll[:1]:
        target = torch.tensor([ignore if y == IGNORE else y for y in CLASS_TARGET])
        weight = _class_weight(dtype) if weighted else None
        yield f"nll_loss-{reduction}", OPS.nll_loss, (logp, target, weight, ignore, reduction)

    labels = torch.rand(N, C, generator=torch.Generator().manual_seed(5), dtype=dtype)
    pos_weight = torch.tensor([1.0, 3.0, 0.5, 2.0], dtype=dtype)
    bce = [
        ("none", False, _class_weight(dtype), pos_weight),
        ("mean", True, None, None),
        ("sum", True, _class_weight(dtype)[None], pos_weight),
    ]
    for reduction, need_grad, w, pw in bce if grid else bce[:1]:
        bce_args = (x, labels, w, pw, reduction, need_grad)
        yield f"bce-{reduction}", OPS.binary_cross_entropy_with_logits, bce_args


def _opcheck_all(cases: list[tuple[str, Any, tuple]]) -> None:
    failed = {}
    for name, op, args in cases:
        try:
            _opcheck(op, args)
        except Exception as exc:  # every case runs; the report names each that failed
            failed[name] = f"{type(exc).__name__}: {exc}"
    assert not failed, failed


OPERATORS = {
    "softmax",
    "log_softmax",
    "logsumexp",
    "softmax_backward",
    "log_softmax_backward",
    "softmax_vjp",
    "log_softmax_vjp",
    "cross_entropy",
    "cross_entropy_backward",
    "nll_loss",
    "binary_cross_entropy_with_logits",
}


def _op_name(op: Any) -> str:
    return str(op._qualified_op_name).removeprefix("softmaxkit::")


@pytest.mark.parametrize(
    ("dtype", "requires_grad"),
    [(F64, False), (F64, True), (F32, False), (F32, True)],
    ids=["float64-no_grad", "float64-requires_grad", "float32-no_grad", "float32-requires_grad"],
)
def test_opcheck_every_operator(dtype, requires_grad):
    cases = list(_opcheck_cases(dtype, requires_grad, grid=False))
    assert {_op_name(op) for _, op, _ in cases} == OPERATORS
    if dtype == F32 and requires_grad:
        # Autograd formulas do not look at the dtype (float64 checks them all, the no_grad
        # run every float32 kernel): float32 training's own case, the softmax family's
        # gradients through its float32 vjp kernels, is enough here.
        cases = [c for c in cases if _op_name(c[1]) in {"softmax", "log_softmax", "logsumexp"}]
    _opcheck_all(cases)


def test_opcheck_option_grid_float64():
    """Every setting of ``CE_OPCHECK`` and the other losses' options, with requires_grad
    (for the backward operator without: see ``_opcheck_cases``)."""
    core = {name for name, _, _ in _opcheck_cases(F64, True, grid=False)}
    _opcheck_all([c for c in _opcheck_cases(F64, True, grid=True) if c[0] not in core])


# --- 2. gradcheck and gradgradcheck of the public functions (float64) -------------------------


def _check_grads(fn: Callable[..., Any], *inputs: Any) -> None:
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def _leaf(t: Any) -> Any:
    return t.detach().clone().requires_grad_()


MASK = torch.tensor([[True, False, True, True, False], [True, True, True, True, True]])

CORE_GRAD_CASES: dict[str, tuple[Callable[[Any], Any], tuple[int, ...]]] = {
    "softmax": (lambda x: sk.softmax(x), (4, 5)),
    "softmax-temperature": (lambda x: sk.softmax(x, temperature=0.4), (4, 5)),
    "softmax-axis0": (lambda x: sk.softmax(x, axis=0), (4, 5)),
    "softmax-tuple-axes": (lambda x: sk.softmax(x, axis=(0, 2)), (2, 3, 4)),
    "softmax-tuple-axes-temperature": (
        lambda x: sk.softmax(x, axis=(0, 2), temperature=2.5),
        (2, 3, 4),
    ),
    "softmax-where": (lambda x: sk.softmax(x, where=MASK), (2, 5)),
    "log_softmax": (lambda x: sk.log_softmax(x), (4, 5)),
    "log_softmax-tuple-axes-temperature": (
        lambda x: sk.log_softmax(x, axis=(0, 2), temperature=0.4),
        (2, 3, 4),
    ),
    "log_softmax-axis-None": (lambda x: sk.log_softmax(x, axis=None), (3, 4)),
    "logsumexp": (lambda x: sk.logsumexp(x), (4, 5)),
    "logsumexp-tuple-axes": (lambda x: sk.logsumexp(x, axis=(0, 2)), (2, 3, 4)),
    "logsumexp-tuple-axes-keepdims": (
        lambda x: sk.logsumexp(x, axis=(1, 2), keepdims=True),
        (2, 3, 4),
    ),
    "logsumexp-where": (lambda x: sk.logsumexp(x, where=MASK), (2, 5)),
}


@pytest.mark.parametrize("case", list(CORE_GRAD_CASES))
def test_gradcheck_softmax_family(case):
    fn, shape = CORE_GRAD_CASES[case]
    _check_grads(fn, _randn(*shape, seed=len(case)).requires_grad_())


@pytest.mark.parametrize("axis", [-1, (0, 1)], ids=str)
def test_gradcheck_softmax_backward_and_log_softmax_backward(axis):
    x = _randn(3, 4)
    g = _leaf(_randn(3, 4, seed=1))
    p = _leaf(sk.softmax(x, axis=axis))
    logp = _leaf(sk.log_softmax(x, axis=axis))
    _check_grads(lambda gg, pp: sk.softmax_backward(gg, pp, axis=axis), g, p)
    _check_grads(lambda gg, lp: sk.log_softmax_backward(gg, lp, axis=axis), g, logp)


CE_GRAD_OPTIONS = {
    "plain": {},
    "weight": {"weight": True},
    "smoothing": {"label_smoothing": 0.2},
    "z_loss": {"z_loss": 0.01},
    "softcap": {"softcap": 3.0},
    "everything": {"weight": True, "label_smoothing": 0.2, "z_loss": 0.01, "softcap": 3.0},
}
# every reduction plain and with everything; each single option under one reduction
CE_GRAD_GRID = [(o, r) for o in ("plain", "everything") for r in REDUCTIONS] + [
    ("weight", "mean"),
    ("smoothing", "sum"),
    ("z_loss", "none"),
    ("softcap", "mean"),
]


@pytest.mark.parametrize(("options", "reduction"), CE_GRAD_GRID)
@pytest.mark.parametrize("kind", ["indices", "probabilities"])
def test_gradcheck_cross_entropy(kind, options, reduction):
    """Class indices with an ignored row, or probabilities (never perturbed: only the
    logits and the class weights are differentiated)."""
    settings = dict(CE_GRAD_OPTIONS[options])
    target = torch.tensor(CLASS_TARGET[:3]) if kind == "indices" else _probabilities(3, C)
    x = _randn(3, C).requires_grad_()
    if settings.pop("weight", False):
        w = _class_weight().requires_grad_()
        _check_grads(
            lambda a, ww: sk.cross_entropy(a, target, weight=ww, reduction=reduction, **settings),
            x,
            w,
        )
    else:
        _check_grads(lambda a: sk.cross_entropy(a, target, reduction=reduction, **settings), x)


def test_gradcheck_cross_entropy_class_axis_1():
    x = _randn(3, C, 2).requires_grad_()
    target = torch.tensor([[0, 3], [IGNORE, 1], [2, 2]])
    _check_grads(lambda a: sk.cross_entropy(a, target, axis=1, label_smoothing=0.1), x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_nll_loss(reduction):
    logp = sk.log_softmax(_randn(N, C)).requires_grad_()
    target = torch.tensor(CLASS_TARGET)
    w = _class_weight().requires_grad_()
    _check_grads(lambda a: sk.nll_loss(a, target, reduction=reduction), logp)
    _check_grads(lambda a, ww: sk.nll_loss(a, target, weight=ww, reduction=reduction), logp, w)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_binary_cross_entropy_with_logits(reduction):
    """With respect to the logits; with ``weight`` and ``pos_weight`` too; and (``"sum"``)
    the target, kept strictly inside (0, 1) so that the perturbed target stays valid."""
    x = _randn(3, C).requires_grad_()
    target = 0.1 + 0.8 * torch.rand(3, C, generator=torch.Generator().manual_seed(5), dtype=F64)
    w = _class_weight().requires_grad_()
    pw = torch.tensor([1.0, 3.0, 0.5, 2.0], dtype=F64, requires_grad=True)

    def bce(a, t, ww=None, pp=None):
        return sk.binary_cross_entropy_with_logits(
            a, t, weight=ww, pos_weight=pp, reduction=reduction
        )

    _check_grads(lambda a: bce(a, target), x)
    if reduction == "mean":
        _check_grads(lambda a, ww, pp: bce(a, target, ww, pp), x, w, pw)
    if reduction == "sum":
        _check_grads(bce, x, _leaf(target), w, pw)


# --- 3. torch.compile ---------------------------------------------------------------------------


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _traced_operators(explained: Any) -> set[str]:
    text = "\n".join(g.print_readable(print_output=False) for g in explained.graphs)
    return set(re.findall(r"torch\.ops\.softmaxkit\.(\w+)", text))


def test_compiled_model_has_no_graph_break_and_matches_eager(fresh_dynamo):
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, C)
    x = torch.randn(8, 6, requires_grad=True)
    indices = torch.tensor([0, 1, IGNORE, 3, 2, 2, 1, 0])
    probabilities = _probabilities(8, C, dtype=F32)
    labels = torch.rand(8, C, generator=torch.Generator().manual_seed(2))

    def model(x, indices, probabilities, labels):
        h = layer(x)
        return (
            (sk.log_softmax(h) * probabilities).sum()
            + (sk.softmax(h, temperature=0.5) ** 2).sum()
            + 0.1 * sk.logsumexp(h).sum()
            + sk.cross_entropy(h, indices, label_smoothing=0.1, z_loss=1e-2)
            + sk.cross_entropy(h, probabilities, softcap=3.0, reduction="sum")
            + sk.binary_cross_entropy_with_logits(h, labels, pos_weight=torch.ones(C))
        )

    args = (x, indices, probabilities, labels)
    explained = torch._dynamo.explain(model)(*args)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert _traced_operators(explained) >= {
        "log_softmax",
        "softmax",
        "logsumexp",
        "cross_entropy",
        "binary_cross_entropy_with_logits",
    }
    torch._dynamo.reset()

    params = [x, *layer.parameters()]
    expected = model(*args)
    expected_grads = torch.autograd.grad(expected, params)
    compiled = torch.compile(model, fullgraph=True)
    got = compiled(*args)
    got_grads = torch.autograd.grad(got, params)
    torch.testing.assert_close(got, expected)
    for g, e in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e)


def test_compiled_softmax_family_with_masks_and_temperature_matches_eager(fresh_dynamo):
    """The fake implementations under AOT autograd, on the options the model above leaves out."""
    x = _randn(2, 3, 4, dtype=F32).requires_grad_()
    where = torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(3)) < 0.8

    def fn(x, where):
        return (
            sk.softmax(x, axis=(0, 1), temperature=0.4, where=where),
            sk.log_softmax(x, axis=0, where=where),
            sk.logsumexp(x, axis=(1, 2), where=where),
            sk.softmax_backward(x, sk.softmax(x), axis=None),
        )

    weights = [torch.linspace(-1, 1, out.numel()).reshape(out.shape) for out in fn(x, where)]

    def run(f):
        outs = f(x, where)
        total = sum(
            (w * torch.where(torch.isfinite(o), o, 0)).sum()
            for w, o in zip(weights, outs, strict=True)
        )
        return outs, torch.autograd.grad(total, x)[0]

    expected, expected_grad = run(fn)
    # fullgraph=True: a graph break raises
    got, grad = run(torch.compile(fn, fullgraph=True, backend="aot_eager"))
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=0)


def test_compiled_softmax_family_over_non_neighbouring_axes_has_no_graph_break(fresh_dynamo):
    """Axes (0, 2) are moved next to each other and back: the way back must trace too."""

    def fn(x):  # (one call: every function of the family moves its axes the same way)
        return sk.softmax(x, axis=(0, 2))

    explained = torch._dynamo.explain(fn)(_randn(2, 3, 4, dtype=F32))
    reasons = [r.reason.splitlines()[0] for r in explained.break_reasons]
    assert explained.graph_break_count == 0, reasons


# --- 4. torch.func ------------------------------------------------------------------------------


FUNC_CORE = {
    "softmax": lambda a: sk.softmax(a, temperature=0.5),
    "softmax-axis0": lambda a: sk.softmax(a, axis=0),
    "log_softmax": lambda a: sk.log_softmax(a),
    "log_softmax-tuple-axes": lambda a: sk.log_softmax(a, axis=(0, 1)),
    "logsumexp": lambda a: sk.logsumexp(a),
    "logsumexp-axis-None": lambda a: sk.logsumexp(a, axis=None),
}


@pytest.mark.parametrize("case", list(FUNC_CORE))
def test_func_grad_and_vmap_of_the_softmax_family(case):
    fn = FUNC_CORE[case]
    batch = _randn(3, 4, 5)
    w = _randn(*fn(batch[0]).shape, seed=7)

    def scalar(a):
        return (fn(a) * w).sum()

    grads = []
    for a in batch:
        leaf = _leaf(a)
        scalar(leaf).backward()
        grads.append(leaf.grad)
        torch.testing.assert_close(torch.func.grad(scalar)(a), leaf.grad, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(
        torch.func.vmap(torch.func.grad(scalar))(batch), torch.stack(grads), rtol=0, atol=0
    )
    for in_dims in (0, 1, 2):  # the batch axis anywhere, the function's axes then shift
        torch.testing.assert_close(
            torch.func.vmap(fn, in_dims=in_dims)(batch),
            torch.stack([fn(a) for a in batch.unbind(in_dims)]),
            rtol=0,
            atol=0,
        )


def _losses_for_func() -> dict[str, tuple[Callable[[Any, Any], Any], Any, Any]]:
    """``name: (loss(x, target), batched x, batched target)``."""
    x = _randn(3, N, C)
    w = _class_weight()
    indices = torch.tensor([CLASS_TARGET, [0, 0, 1, IGNORE, 3], [2, 3, 1, 0, 0]])
    probabilities = _probabilities(3, N, C)
    labels = torch.rand(3, N, C, generator=torch.Generator().manual_seed(6), dtype=F64)
    return {
        "cross_entropy-indices": (
            lambda a, t: sk.cross_entropy(a, t, weight=w, label_smoothing=0.1, z_loss=0.01),
            x,
            indices,
        ),
        "cross_entropy-indices-none": (
            lambda a, t: sk.cross_entropy(a, t, reduction="none", softcap=2.0),
            x,
            indices,
        ),
        "cross_entropy-probabilities": (
            lambda a, t: sk.cross_entropy(a, t, weight=w, reduction="sum", label_smoothing=0.2),
            x,
            probabilities,
        ),
        "nll_loss": (
            lambda a, t: sk.nll_loss(sk.log_softmax(a), t, weight=w),
            x,
            indices,
        ),
        "nll_loss-none": (lambda a, t: sk.nll_loss(a, t, reduction="none"), x, indices),
        "binary_cross_entropy_with_logits": (
            lambda a, t: sk.binary_cross_entropy_with_logits(a, t, weight=w, pos_weight=w.flip(0)),
            x,
            labels,
        ),
        "binary_cross_entropy_with_logits-none": (
            lambda a, t: sk.binary_cross_entropy_with_logits(a, t, reduction="none"),
            x,
            labels,
        ),
    }


@pytest.mark.parametrize("case", list(_losses_for_func()))
def test_func_grad_and_vmap_of_the_losses(case):
    loss, xs, targets = _losses_for_func()[case]

    def scalar(a, t):
        return loss(a, t).sum()

    expected_grads = []
    for a, t in zip(xs, targets, strict=True):
        leaf = _leaf(a)
        scalar(leaf, t).backward()
        expected_grads.append(leaf.grad)
        torch.testing.assert_close(torch.func.grad(scalar)(a, t), leaf.grad, rtol=1e-14, atol=1e-15)
    expected = torch.stack([loss(a, t) for a, t in zip(xs, targets, strict=True)])
    torch.testing.assert_close(torch.func.vmap(loss)(xs, targets), expected, rtol=0, atol=0)
    torch.testing.assert_close(
        torch.func.vmap(torch.func.grad(scalar))(xs, targets),
        torch.stack(expected_grads),
        rtol=1e-14,
        atol=1e-15,
    )


# --- 5. meta tensors ----------------------------------------------------------------------------


def _meta_calls(dtype: torch.dtype) -> dict[str, Callable[[str], Any]]:
    """``name: call(device)``, each building its own input on ``device``."""

    def x(device, *shape):
        return torch.ones(shape or (N, C, 3), dtype=dtype, device=device)

    def idx(device, *shape):
        return torch.zeros(shape or (N, 3), dtype=torch.long, device=device)

    calls: dict[str, Callable[[str], Any]] = {
        "softmax": lambda d: sk.softmax(x(d), axis=1, temperature=0.5),
        "softmax-tuple-axes": lambda d: sk.softmax(x(d), axis=(0, 2)),
        "log_softmax": lambda d: sk.log_softmax(x(d)),
        "log_softmax-axis-None": lambda d: sk.log_softmax(x(d), axis=None),
        "logsumexp": lambda d: sk.logsumexp(x(d)),
        "logsumexp-tuple-axes": lambda d: sk.logsumexp(x(d), axis=(0, 2)),
        "logsumexp-keepdims": lambda d: sk.logsumexp(x(d), axis=(0, 1), keepdims=True),
        "softmax_backward": lambda d: sk.softmax_backward(x(d), x(d), axis=(0, 1)),
        "log_softmax_backward": lambda d: sk.log_softmax_backward(x(d), x(d), axis=0),
    }
    for reduction in REDUCTIONS:
        r = reduction
        calls |= {
            f"cross_entropy-{r}": lambda d, r=r: sk.cross_entropy(
                x(d), idx(d), axis=1, reduction=r
            ),
            f"cross_entropy-probabilities-{r}": lambda d, r=r: sk.cross_entropy(
                x(d, N, C), x(d, N, C) / C, reduction=r, label_smoothing=0.1
            ),
            f"cross_entropy_grad-{r}": lambda d, r=r: sk.cross_entropy_grad(
                x(d), idx(d), axis=1, reduction=r, z_loss=0.1
            ),
            f"nll_loss-{r}": lambda d, r=r: sk.nll_loss(x(d, N, C), idx(d, N), reduction=r),
            f"binary_cross_entropy_with_logits-{r}": lambda d, r=r: (
                sk.binary_cross_entropy_with_logits(x(d), x(d) / 2, reduction=r)
            ),
            f"binary_cross_entropy_with_logits_grad-{r}": lambda d, r=r: (
                sk.binary_cross_entropy_with_logits_grad(x(d), x(d) / 2, reduction=r)
            ),
        }
    return calls


def _as_list(out: Any) -> list[Any]:
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_meta_tensors_give_the_shapes_and_dtypes_of_cpu_tensors(dtype):
    for name, call in _meta_calls(dtype).items():
        cpu, meta = _as_list(call("cpu")), _as_list(call("meta"))
        assert len(meta) == len(cpu), name
        for m, c in zip(meta, cpu, strict=True):
            assert m.device.type == "meta", name
            assert (m.shape, m.dtype) == (c.shape, c.dtype), name
            assert c.dtype == dtype, name


# --- 6. autocast --------------------------------------------------------------------------------


def test_losses_under_autocast_return_what_torch_returns():
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, C)
    x = torch.randn(N, 6)
    indices = torch.tensor(CLASS_TARGET)
    probabilities = _probabilities(N, C, dtype=F32)
    labels = torch.rand(N, C, generator=torch.Generator().manual_seed(2))
    pairs = {
        "cross_entropy": (
            lambda h: sk.cross_entropy(h, indices, label_smoothing=0.1),
            lambda h: F.cross_entropy(h, indices, label_smoothing=0.1),
        ),
        "cross_entropy-none": (
            lambda h: sk.cross_entropy(h, indices, reduction="none"),
            lambda h: F.cross_entropy(h, indices, reduction="none"),
        ),
        "cross_entropy-probabilities": (
            lambda h: sk.cross_entropy(h, probabilities),
            lambda h: F.cross_entropy(h, probabilities),
        ),
        "nll_loss": (lambda h: sk.nll_loss(h, indices), lambda h: F.nll_loss(h, indices)),
        "binary_cross_entropy_with_logits": (
            lambda h: sk.binary_cross_entropy_with_logits(h, labels),
            lambda h: F.binary_cross_entropy_with_logits(h, labels),
        ),
    }
    for name, (ours, theirs) in pairs.items():
        results = []
        for fn in (ours, theirs):
            with torch.autocast("cpu", torch.bfloat16):
                h = layer(x)
                assert h.dtype == torch.bfloat16
                loss = fn(h)
            (grad,) = torch.autograd.grad(loss.sum(), layer.weight)
            results.append((loss, grad))
        (loss, grad), (expected, expected_grad) = results
        assert loss.dtype == expected.dtype, name
        assert grad.dtype == expected_grad.dtype, name
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-2, atol=1e-3, msg=name)


def test_softmax_family_under_autocast_keeps_torchs_dtype():
    x = _randn(N, C, dtype=F32)
    with torch.autocast("cpu", torch.bfloat16):
        for h in (x.bfloat16(), x):
            pairs = [
                (sk.softmax(h), torch.softmax(h, -1)),
                (sk.log_softmax(h), torch.log_softmax(h, -1)),
                (sk.logsumexp(h), torch.logsumexp(h, -1)),
            ]
            for ours, theirs in pairs:
                assert ours.dtype == theirs.dtype == h.dtype
                torch.testing.assert_close(ours, theirs)


def test_bfloat16_probability_target_is_checked_at_bfloat16_tolerance():
    """A bfloat16 probability row is off 1 by its own rounding (about 1e-3 here, within the
    1e-2 allowed for 16-bit targets); the portable path accepts it, and so must the
    operators, which see the target only after it is cast to the logits' float32."""
    logits = _randn(N, C, dtype=F32)
    target = _probabilities(N, C, dtype=F32, seed=3).bfloat16()
    sums = target.double().sum(-1)
    assert (sums - 1).abs().max() > 1e-4  # what float32's tolerance would refuse
    with use_path("portable"):
        expected = sk.cross_entropy(logits, target)
    with use_path("operators"):
        torch.testing.assert_close(sk.cross_entropy(logits, target), expected)
    with torch.autocast("cpu", torch.bfloat16):
        got = sk.cross_entropy(logits.bfloat16(), target)
    assert got.dtype == F32


# --- 7. target checks inside the operators -------------------------------------------------------


def _bad_targets(dtype: torch.dtype) -> dict[str, tuple[Callable[[], Any], str]]:
    x = _randn(3, C, dtype=dtype)
    scalar = torch.ones((), dtype=dtype)
    out_of_range = torch.tensor([0, C, 1])
    negative_index = torch.tensor([0, -1, 1])
    not_summing = torch.full((3, C), 0.3, dtype=dtype)
    negative = torch.tensor([[1.5, -0.5, 0.0, 0.0]] * 3, dtype=dtype)
    bce_above = torch.full((3, C), 1.5, dtype=dtype)
    bce_below = torch.full((3, C), -0.5, dtype=dtype)
    ce = (None, IGNORE, "mean", 0.0, 0.0, None)
    return {
        "op-cross_entropy-index-out-of-range": (
            lambda: OPS.cross_entropy(x, out_of_range, *ce),
            r"position \(1,\) holds 4",
        ),
        "op-cross_entropy-negative-index": (
            lambda: OPS.cross_entropy(x, negative_index, *ce),
            r"position \(1,\) holds -1",
        ),
        "op-cross_entropy-rows-not-summing-to-1": (
            lambda: OPS.cross_entropy(x, not_summing, *ce),
            "sum to 1",
        ),
        "op-cross_entropy-negative-probability": (
            lambda: OPS.cross_entropy(x, negative, *ce),
            ">= 0",
        ),
        "op-cross_entropy_backward-index-out-of-range": (
            lambda: OPS.cross_entropy_backward(scalar, x, out_of_range, *ce),
            r"position \(1,\) holds 4",
        ),
        "op-cross_entropy_backward-rows-not-summing-to-1": (
            lambda: OPS.cross_entropy_backward(scalar, x, not_summing, *ce),
            "sum to 1",
        ),
        "op-nll_loss-index-out-of-range": (
            lambda: OPS.nll_loss(x, out_of_range, None, IGNORE, "mean"),
            r"position \(1,\) holds 4",
        ),
        "op-bce-target-above-1": (
            lambda: OPS.binary_cross_entropy_with_logits(x, bce_above, None, None, "mean", False),
            r"\[0, 1\]",
        ),
        "op-bce-target-below-0": (
            lambda: OPS.binary_cross_entropy_with_logits(x, bce_below, None, None, "sum", True),
            r"\[0, 1\]",
        ),
        "cross_entropy-index-out-of-range": (
            lambda: sk.cross_entropy(x, out_of_range),
            r"position \(1,\) holds 4",
        ),
        "cross_entropy-index-out-of-range-smoothing": (
            lambda: sk.cross_entropy(x, out_of_range, label_smoothing=0.1),
            r"position \(1,\) holds 4",
        ),
        "cross_entropy_grad-index-out-of-range": (
            lambda: sk.cross_entropy_grad(x, out_of_range),
            r"position \(1,\) holds 4",
        ),
        "cross_entropy-rows-not-summing-to-1": (
            lambda: sk.cross_entropy(x, not_summing),
            "sum to 1",
        ),
        "nll_loss-index-out-of-range": (
            lambda: sk.nll_loss(x, out_of_range),
            r"position \(1,\) holds 4",
        ),
        "bce-target-above-1": (
            lambda: sk.binary_cross_entropy_with_logits(x, bce_above),
            r"\[0, 1\]",
        ),
        "bce_grad-target-below-0": (
            lambda: sk.binary_cross_entropy_with_logits_grad(x, bce_below),
            r"\[0, 1\]",
        ),
    }


@pytest.mark.parametrize("case", list(_bad_targets(F64)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bad_targets_raise_naming_target(dtype, case):
    call, detail = _bad_targets(dtype)[case]
    with pytest.raises(SoftmaxkitValueError, match=f"`target`.*{detail}"):
        call()


def test_wrapped_tensors_refuse_numpy():
    """The premise of the next tests: a tensor wrapped by torch.func has no NumPy view."""

    def probe(t):
        with pytest.raises(RuntimeError):
            t.numpy()
        with pytest.raises(RuntimeError):
            t.cpu().numpy()
        return t.sum() * 0

    torch.func.grad(probe)(_probabilities(N, C))
    torch.func.vmap(probe)(torch.tensor([CLASS_TARGET]))


def test_cross_entropy_reads_a_wrapped_target_only_inside_the_operators():
    """Under vmap the class indices are batched tensors and under grad (with respect to the
    target) the probabilities are grad-tracking ones: Python that looked at their values
    outside an operator would fail, as the probe above shows."""
    x = _randn(N, C)
    indices = torch.tensor([CLASS_TARGET, [0, 0, 1, IGNORE, 3]])
    probabilities = _probabilities(N, C)
    got = torch.func.vmap(lambda t: sk.cross_entropy(x, t, label_smoothing=0.1))(indices)
    expected = torch.stack([sk.cross_entropy(x, t, label_smoothing=0.1) for t in indices])
    torch.testing.assert_close(got, expected, rtol=0, atol=0)

    def soft(a, t):
        return sk.cross_entropy(a, t, weight=_class_weight(), z_loss=0.01)

    dx, dt = torch.func.grad(soft, argnums=(0, 1))(x, probabilities)
    leaves = _leaf(x), _leaf(probabilities)
    soft(*leaves).backward()
    torch.testing.assert_close(dx, leaves[0].grad, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(dt, leaves[1].grad, rtol=1e-14, atol=1e-15)

    # and a bad target is still refused, by the operator's own check
    bad = torch.tensor([[0, 1, 2, 3, C]])
    with pytest.raises(SoftmaxkitValueError, match=r"`target` must be in \[0, 4\)"):
        torch.func.vmap(lambda t: sk.cross_entropy(x, t))(bad)
    bad_probabilities = torch.full((N, C), 0.3, dtype=F64)
    with pytest.raises(SoftmaxkitValueError, match="`target` probabilities must sum to 1"):
        torch.func.grad(soft, argnums=(0, 1))(x, bad_probabilities)


def test_cross_entropy_target_checks_compile_without_graph_break(fresh_dynamo):
    x = _randn(N, C, dtype=F32).requires_grad_()

    def fn(a, indices, probabilities):
        return sk.cross_entropy(a, indices, label_smoothing=0.1) + sk.cross_entropy(
            a, probabilities, weight=_class_weight(F32)
        )

    indices = torch.tensor(CLASS_TARGET)
    probabilities = _probabilities(N, C, dtype=F32)
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")  # a graph break raises
    torch.testing.assert_close(compiled(x, indices, probabilities), fn(x, indices, probabilities))
    with pytest.raises(SoftmaxkitValueError, match=r"`target` must be in \[0, 4\)"):
        compiled(x, torch.tensor([0, 1, 2, 3, 7]), probabilities)


# --- 8. the three paths agree ---------------------------------------------------------------------


def _edge_input(dtype: torch.dtype) -> Any:
    """(3, 4, 5) with an all -inf row, +inf entries, a NaN and a -inf entry (along axis -1)."""
    x = np.random.default_rng(3).normal(scale=3.0, size=(3, 4, 5))
    x[0, 1] = -INF
    x[1, 2, [0, 3]] = INF
    x[2, 3, 1] = NAN
    x[2, 0, 2] = -INF
    return torch.tensor(x, dtype=dtype)


AGREE_MASKS = {
    "none": None,
    "full": torch.from_numpy(np.random.default_rng(4).random((3, 4, 5)) < 0.7),
    "broadcast": torch.tensor([True, False, True, True, False]),
}
RTOL = {F64: 1e-12, F32: 1e-5}
PATHS = ("operators", "fused", "portable")


def _value_and_grad(
    path: str, fn: Callable[..., Any], x: Any, **kwargs: Any
) -> tuple[Any, Any, set]:
    """``fn(x)`` and the gradient of ``sum(w * fn(x))`` over its finite entries, on ``path``."""
    leaf = _leaf(x)
    with use_path(path), _RecordOps() as rec:
        out = fn(leaf, **kwargs)
        w = torch.linspace(-1.0, 2.0, out.numel(), dtype=out.dtype).reshape(out.shape)
        (torch.where(torch.isfinite(out), out, 0) * w).sum().backward()
    return out.detach(), leaf.grad, rec.names


UPSTREAM_MAX = 2.0  # the largest |w| of _value_and_grad's upstream gradient


def _assert_agree(got: Any, expected: Any, rtol: float, what: str) -> None:
    # A gradient such as p * (w - sum(w p)) cancels: its rounding error is relative to the
    # terms, which the upstream gradient w bounds, not to the result.
    atol = rtol * UPSTREAM_MAX if what == "grad" else 0.0
    torch.testing.assert_close(got, expected, rtol=rtol, atol=atol, equal_nan=True, msg=what)


@pytest.mark.parametrize("mask", list(AGREE_MASKS))
@pytest.mark.parametrize("axis", [-1, 0, (0, 2), None], ids=str)
@pytest.mark.parametrize("fn", [sk.softmax, sk.log_softmax, sk.logsumexp], ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_paths_agree_on_the_softmax_family(dtype, fn, axis, mask):
    x = _edge_input(dtype)
    temperatures = [1.0] if fn is sk.logsumexp else [1.0, 0.4]
    for temperature in temperatures:
        kwargs: dict[str, Any] = {"axis": axis, "where": AGREE_MASKS[mask]}
        if fn is not sk.logsumexp:
            kwargs["temperature"] = temperature
        results = {path: _value_and_grad(path, fn, x, **kwargs) for path in PATHS}
        assert fn.__name__ in results["operators"][2]
        assert not results["portable"][2] and not results["fused"][2]
        value, grad, _ = results["portable"]
        for path in ("operators", "fused"):
            _assert_agree(results[path][0], value, RTOL[dtype], "value")
            _assert_agree(results[path][1], grad, RTOL[dtype], "grad")


def _ce_logits(kind: str, dtype: torch.dtype) -> Any:
    x = np.random.default_rng(0).normal(scale=2.0, size=(6, 5))
    if kind == "infinities":
        x[0, 1] = -INF  # the target's own logit (row 0 targets class 1)
        x[2, [0, 3]] = -INF
        x[3, 2] = INF
        x[4, [1, 4]] = INF
    return torch.tensor(x, dtype=dtype)


CE_AGREE_TARGETS = {
    "indices": torch.tensor([1, 0, 2, 4, IGNORE, 3]),
    "probabilities": _probabilities(6, 5, seed=8),
}


@pytest.mark.parametrize("z_loss", [0.0, 0.01])
@pytest.mark.parametrize("target", list(CE_AGREE_TARGETS))
@pytest.mark.parametrize("logits", ["finite", "infinities"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_paths_agree_on_cross_entropy(dtype, logits, target, z_loss):
    x = _ce_logits(logits, dtype)
    t = CE_AGREE_TARGETS[target]
    t = t.to(dtype) if t.is_floating_point() else t
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0, 1.5], dtype=dtype)
    grid = itertools.product([None, weight], [0.0, 0.2], [None, 4.0], REDUCTIONS)
    for w, eps, softcap, reduction in grid:
        options = dict(
            weight=w, label_smoothing=eps, softcap=softcap, reduction=reduction, z_loss=z_loss
        )
        what = f"{options}"
        results = {}
        for path in PATHS:
            leaf = _leaf(x)
            with use_path(path), _RecordOps() as rec:
                loss = sk.cross_entropy(leaf, t, **options)
                upstream = torch.linspace(0.5, 1.5, loss.numel(), dtype=dtype).reshape(loss.shape)
                (loss * upstream).sum().backward()
            results[path] = (loss.detach(), leaf.grad, rec.names)
        assert "cross_entropy" in results["operators"][2]
        assert not results["fused"][2] and not results["portable"][2]
        expected, expected_grad, _ = results["portable"]
        for path in ("operators", "fused"):
            loss, grad, _ = results[path]
            where = f"{path}: {what}"
            torch.testing.assert_close(
                loss, expected, rtol=RTOL[dtype], atol=0, equal_nan=True, msg=where
            )
            torch.testing.assert_close(
                grad, expected_grad, rtol=RTOL[dtype], atol=RTOL[dtype], equal_nan=True, msg=where
            )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cross_entropy_grad_is_the_same_on_every_path_at_infinite_logits(dtype):
    """``cross_entropy_grad`` is one public function: the operators (torch on the CPU), the
    fused path (torch on a GPU), the portable path and NumPy give one ``dlogits``, at
    infinite logits too."""
    x = torch.tensor([[0.0, -INF, 1.0], [0.0, INF, 1.0], [0.5, 0.0, 1.0]], dtype=dtype)
    t = torch.tensor([1, 0, 2])
    _, expected = sk.cross_entropy_grad(x.numpy(), t.numpy(), reduction="sum")
    for path in ("portable", "fused", "operators"):
        with use_path(path):
            _, got = sk.cross_entropy_grad(x, t, reduction="sum")
        np.testing.assert_allclose(got.numpy(), expected, rtol=RTOL[dtype], err_msg=path)


# --- 9. thread count ------------------------------------------------------------------------------


@pytest.fixture
def restore_threads() -> Iterator[None]:
    previous = _kernels.num_threads()
    yield
    _kernels.set_num_threads(previous)


def _thread_results(x: Any, w: Any, target: Any, threads: int) -> dict[str, Any]:
    _kernels.set_num_threads(threads)
    assert _kernels.num_threads() == threads
    out: dict[str, Any] = {}
    for fn in (sk.softmax, sk.log_softmax):
        leaf = _leaf(x)
        y = fn(leaf)
        (y * w).sum().backward()
        out |= {fn.__name__: y.detach(), f"d {fn.__name__}": leaf.grad}
    leaf = _leaf(x)
    loss = sk.cross_entropy(leaf, target, label_smoothing=0.1)
    loss.backward()
    out |= {"cross_entropy": loss.detach(), "d cross_entropy": leaf.grad}
    out["cross_entropy_grad"], out["cross_entropy_grad dlogits"] = sk.cross_entropy_grad(x, target)
    return out


@pytest.mark.parametrize("shape", [(3, 300_000), (512, 1000)], ids=str)
def test_results_do_not_depend_on_the_thread_count(shape, restore_threads):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen) * 3
    w = torch.randn(shape, generator=gen)
    target = torch.randint(0, shape[1], shape[:1], generator=gen)
    one = _thread_results(x, w, target, 1)
    two = _thread_results(x, w, target, 2)
    unequal = [name for name in one if not torch.equal(one[name], two[name])]
    assert not unequal


# --- 10. CUDA -------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine (CI has none)"
)


def _on_cuda_without_sync(calls: Callable[..., dict[str, Any]], *cpu_args: Any) -> None:
    """``calls`` on CUDA copies of ``cpu_args`` with every host synchronisation an error,
    compared with the same calls on the CPU tensors (the operators)."""
    expected = calls(*cpu_args)
    cuda_args = [a.cuda() for a in cpu_args]
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = calls(*cuda_args)
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    for name, value in got.items():
        assert value.device.type == "cuda", name
        e = expected[name]
        torch.testing.assert_close(
            value.cpu(), e, rtol=RTOL[e.dtype], atol=0, equal_nan=True, msg=name
        )


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cuda_softmax_family_edge_values_match_cpu_without_host_sync(dtype):
    def calls(x, where):
        return {
            "softmax": sk.softmax(x),
            "softmax-axis-0-temperature": sk.softmax(x, axis=0, temperature=0.4),
            "softmax-where-tuple-axes": sk.softmax(x, axis=(0, 2), where=where),
            "log_softmax": sk.log_softmax(x),
            "log_softmax-where-temperature": sk.log_softmax(x, where=where, temperature=0.4),
            "log_softmax-axis-None": sk.log_softmax(x, axis=None),
            "logsumexp": sk.logsumexp(x),
            "logsumexp-where-tuple-axes": sk.logsumexp(x, axis=(0, 2), where=where),
        }

    _on_cuda_without_sync(calls, _edge_input(dtype), AGREE_MASKS["full"])


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cuda_cross_entropy_edge_values_match_cpu_without_host_sync(dtype):
    def calls(finite, infinities, indices, probabilities, weight):
        return {
            "indices-smoothing": sk.cross_entropy(finite, indices, label_smoothing=0.2),
            "indices-infinities": sk.cross_entropy(infinities, indices, reduction="none"),
            "indices-infinities-weight-softcap": sk.cross_entropy(
                infinities, indices, weight=weight, softcap=4.0
            ),
            "probabilities-infinities-z_loss": sk.cross_entropy(
                infinities, probabilities, reduction="none", z_loss=0.01
            ),
        }

    _on_cuda_without_sync(
        calls,
        _ce_logits("finite", dtype),
        _ce_logits("infinities", dtype),
        CE_AGREE_TARGETS["indices"],
        CE_AGREE_TARGETS["probabilities"].to(dtype),
        torch.tensor([0.5, 2.0, 1.0, 3.0, 1.5], dtype=dtype),
    )
