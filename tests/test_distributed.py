"""softmaxkit.distributed on real gloo process groups of 2 and 3 ranks on localhost.

Starting processes costs seconds, so each world size starts ONE group (a
module-scoped fixture): every rank runs the whole option grid and every error
case, saves what it got, and the tests below compare that, in the parent
process, with the single-process computation on the gathered logits.  A rank
that raises fails the fixture with its traceback; a group that hangs is killed
after a deadline and fails the fixture instead of hanging the suite.
"""

from __future__ import annotations

import datetime
import importlib.util
import math
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import softmaxkit
from softmaxkit import SoftmaxkitTypeError, SoftmaxkitValueError, distributed
from softmaxkit.distributed import (
    shard_range,
    vocab_parallel_cross_entropy,
    vocab_parallel_linear_cross_entropy,
    vocab_parallel_log_softmax,
    vocab_parallel_softmax,
)

NUM_CLASSES = 11  # shards 6+5 on 2 ranks, 4+4+3 on 3 ranks
ROWS = 7
DIM = 5
RTOL = 1e-6
GROUP_DEADLINE_S = 150.0
ERROR_TIMEOUT_S = 20.0  # a rank left waiting in a collective fails with a timeout


# --------------------------------------------------------------------------------------
# Data and cases, built the same way in the parent and in every rank


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logits(
    seed: int = 0, shape: tuple[int, ...] = (ROWS,), classes: int = NUM_CLASSES
) -> torch.Tensor:
    return torch.randn(*shape, classes, generator=_generator(seed), dtype=torch.float64) * 3.0


def _targets(
    seed: int = 1,
    shape: tuple[int, ...] = (ROWS,),
    ignore_index: int = -100,
    classes: int = NUM_CLASSES,
) -> torch.Tensor:
    t = torch.randint(0, classes, shape, generator=_generator(seed))
    flat = t.view(-1)
    flat[1] = ignore_index  # one ignored row in every case
    flat[2] = classes - 1  # the last class, on the last rank that has classes
    return t


def _edge_logits() -> torch.Tensor:
    """Rows with -inf entries (across shards), all -inf, +inf entries, NaN, huge values."""
    x = _logits(5, (6,))
    inf = math.inf
    x[0, [0, 3, 7, 10]] = -inf
    x[1] = -inf
    x[2, [2, 9]] = inf
    x[3, 8] = math.nan
    x[4] = x[4] + 1e300
    x[5, 4] = 800.0  # one entry dominates: log-probability near 0
    return x


class Case(NamedTuple):
    name: str
    kind: str  # "log_softmax", "softmax", "ce", "linear"
    options: dict[str, Any]
    shape: tuple[int, ...] = (ROWS,)
    edge: bool = False
    dtype: torch.dtype = torch.float64
    classes: int = NUM_CLASSES


def _cases() -> list[Case]:
    cases = [
        Case("log_softmax", "log_softmax", {}),
        Case("softmax", "softmax", {}),
        Case("log_softmax-3d", "log_softmax", {}, shape=(2, 3)),
        Case("log_softmax-edges", "log_softmax", {}, shape=(6,), edge=True),
        Case("softmax-edges", "softmax", {}, shape=(6,), edge=True),
    ]
    for reduction in ("mean", "sum", "none"):
        for smoothing in (0.0, 0.2):
            for ignore_index in (-100, 4):
                options = {
                    "reduction": reduction,
                    "label_smoothing": smoothing,
                    "ignore_index": ignore_index,
                }
                name = f"{reduction}-smooth{smoothing}-ignore{ignore_index}"
                cases.append(Case(f"ce-{name}", "ce", options))
                for bias in (True, False):
                    for chunk in (None, 2):
                        linear = {**options, "bias": bias, "chunk_size": chunk}
                        cases.append(
                            Case(f"linear-{name}-bias{bias}-chunk{chunk}", "linear", linear)
                        )
    for reduction in ("mean", "none"):
        cases.append(Case(f"ce-3d-{reduction}", "ce", {"reduction": reduction}, shape=(2, 3)))
        cases.append(
            Case(f"linear-3d-{reduction}", "linear", {"reduction": reduction}, shape=(2, 3))
        )
    for smoothing in (0.0, 0.2, 1.0):
        options = {"label_smoothing": smoothing, "reduction": "none"}
        cases.append(Case(f"ce-edges-smooth{smoothing}", "ce", options, (6,), True))
    cases += [
        # Few entries per block: the plain loss then works a few rows at a time.
        Case("ce-rowblocks", "ce", {"label_smoothing": 0.2, "reduction": "none"}),
        Case("ce-edges-rowblocks", "ce", {"label_smoothing": 0.2, "reduction": "none"}, (6,), True),
        Case("ce-all-ignored-mean", "ce", {"ignore_index": -7}),
        # Two classes: on 3 ranks the last holds none.
        Case("log_softmax-2classes", "log_softmax", {}, classes=2),
        Case("ce-2classes", "ce", {"label_smoothing": 0.2, "reduction": "none"}, classes=2),
        Case("linear-2classes", "linear", {"label_smoothing": 0.2, "chunk_size": 1}, classes=2),
        Case("ce-float32", "ce", {"label_smoothing": 0.1}, dtype=torch.float32),
        Case("linear-float32", "linear", {"label_smoothing": 0.1}, dtype=torch.float32),
    ]
    return cases


CASES = _cases()


def _case_inputs(case: Case) -> dict[str, torch.Tensor]:
    """The full (unsharded) tensors of a case."""
    ignore_index, classes = case.options.get("ignore_index", -100), case.classes
    targets = _targets(shape=case.shape, ignore_index=ignore_index, classes=classes)
    if case.name == "ce-all-ignored-mean":
        targets = torch.full(case.shape, -7)
    if case.edge:
        targets = torch.tensor([5, 2, 2, 0, 3, 4])
        targets[0] = 3  # a -inf target: infinite loss
    g = _generator(7)
    data = {
        "logits": _edge_logits() if case.edge else _logits(shape=case.shape, classes=classes),
        "inputs": torch.randn(*case.shape, DIM, generator=g, dtype=torch.float64),
        "weight": torch.randn(classes, DIM, generator=g, dtype=torch.float64),
        "bias": torch.randn(classes, generator=g, dtype=torch.float64),
        "upstream": torch.randn(*case.shape, classes, generator=g, dtype=torch.float64),
    }
    return {"targets": targets} | {key: a.to(case.dtype) for key, a in data.items()}


def _upstream_for(case: Case, data: dict[str, torch.Tensor], result: torch.Tensor) -> torch.Tensor:
    if result.ndim == 0:
        return torch.tensor(1.5, dtype=result.dtype)
    return data["upstream"][..., 0].reshape(result.shape).to(result.dtype)


# --------------------------------------------------------------------------------------
# What each rank runs


def _run_case(case: Case, rank: int, world: int) -> dict[str, torch.Tensor]:
    data = _case_inputs(case)
    start, stop = shard_range(case.classes, world, rank)
    options = dict(case.options)
    if case.kind in ("log_softmax", "softmax"):
        local = data["logits"][..., start:stop].clone().requires_grad_()
        fn = vocab_parallel_log_softmax if case.kind == "log_softmax" else vocab_parallel_softmax
        out = fn(local)
        out.backward(data["upstream"][..., start:stop])
        return {"out": out.detach(), "grad": local.grad}
    if case.kind == "ce":
        local = data["logits"][..., start:stop].clone().requires_grad_()
        entries = distributed._CHUNK_ENTRIES
        if case.name.endswith("rowblocks"):
            distributed._CHUNK_ENTRIES = 2 * (stop - start)
        try:
            loss = vocab_parallel_cross_entropy(local, data["targets"], **options)
            loss.backward(_upstream_for(case, data, loss))
        finally:
            distributed._CHUNK_ENTRIES = entries
        return {"loss": loss.detach(), "grad": local.grad}
    use_bias = options.pop("bias", True)
    inputs = data["inputs"].clone().requires_grad_()
    weight = data["weight"][start:stop].clone().requires_grad_()
    bias = data["bias"][start:stop].clone().requires_grad_() if use_bias else None
    loss = vocab_parallel_linear_cross_entropy(
        inputs, weight, data["targets"], local_bias=bias, **options
    )
    loss.backward(_upstream_for(case, data, loss))
    out = {"loss": loss.detach(), "inputs": inputs.grad, "weight": weight.grad}
    if bias is not None:
        out["bias"] = bias.grad
    return out


def _error_cases(rank: int, world: int, group: Any) -> dict[str, Any]:
    """Each bad call, as the rank saw it: (exception type, message, seconds)."""
    last = world - 1
    start, stop = shard_range(NUM_CLASSES, world, rank)
    logits, targets = _logits(), _targets()
    # Shard sizes rotated by one rank: the total is right, the split is not.
    sizes = [b - a for a, b in (shard_range(NUM_CLASSES, world, r) for r in range(world))]
    sizes = sizes[1:] + sizes[:1]
    rotated = logits[:, sum(sizes[:rank]) : sum(sizes[: rank + 1])]
    local = logits[:, start:stop]
    weight = torch.randn(NUM_CLASSES, DIM, dtype=torch.float64)
    inputs = torch.randn(ROWS, DIM, dtype=torch.float64)

    too_large = targets.clone()
    too_large[3] = NUM_CLASSES
    negative = targets.clone()
    negative[4] = -5
    other = targets.clone()
    other[5] = (other[5] + 1) % NUM_CLASSES

    calls = {
        "shards-ce": lambda: vocab_parallel_cross_entropy(rotated, targets, group=group),
        "shards-log_softmax": lambda: vocab_parallel_log_softmax(rotated, group=group),
        "shards-linear": lambda: vocab_parallel_linear_cross_entropy(
            inputs,
            weight[sum(sizes[:rank]) : sum(sizes[: rank + 1])],
            targets,
            group=group,
        ),
        "target-too-large": lambda: vocab_parallel_cross_entropy(local, too_large, group=group),
        "target-negative": lambda: vocab_parallel_cross_entropy(local, negative, group=group),
        "target-too-large-on-last-rank": lambda: vocab_parallel_cross_entropy(
            local, too_large if rank == last else targets, group=group
        ),
        "targets-differ-on-last-rank": lambda: vocab_parallel_cross_entropy(
            local, other if rank == last else targets, group=group
        ),
        "targets-shape-on-last-rank": lambda: vocab_parallel_cross_entropy(
            local, targets[:-1] if rank == last else targets, group=group
        ),
        "rows-differ-on-last-rank": lambda: vocab_parallel_softmax(
            local[:-1] if rank == last else local, group=group
        ),
        "options-differ-on-last-rank": lambda: vocab_parallel_cross_entropy(
            local, targets, group=group, label_smoothing=0.1 if rank == last else 0.0
        ),
        "inputs-grad-differs-on-last-rank": lambda: vocab_parallel_linear_cross_entropy(
            inputs.requires_grad_(rank == last), weight[start:stop], targets, group=group
        ),
        "bad-reduction": lambda: vocab_parallel_cross_entropy(
            local, targets, group=group, reduction="avg"
        ),
    }
    seen: dict[str, Any] = {}
    for name, call in calls.items():
        began = time.perf_counter()
        try:
            call()
        except Exception as err:
            seen[name] = (type(err).__name__, str(err), time.perf_counter() - began)
        else:
            seen[name] = (None, "", time.perf_counter() - began)
    # After every refusal the group is still in step: a correct call works.
    seen["after-errors"] = vocab_parallel_cross_entropy(local, targets, group=group)
    return seen


def _non_member(rank: int, world: int) -> Any:
    """A subgroup without the last rank: that rank is refused, the others compute."""
    sub = dist.new_group(ranks=list(range(world - 1)), backend="gloo")
    logits, targets = _logits(), _targets()
    if rank == world - 1:
        try:
            vocab_parallel_cross_entropy(logits, targets, group=sub)
        except Exception as err:
            return (type(err).__name__, str(err))
        return (None, "")
    start, stop = shard_range(NUM_CLASSES, world - 1, rank)
    return vocab_parallel_cross_entropy(logits[:, start:stop], targets, group=sub)


def _largest_tensor_of_linear(rank: int, world: int) -> dict[str, int]:
    """The most entries of any tensor made by the linear variant's forward and backward."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    rows, dim, classes, chunk = 24, 2, 48, 3

    class Largest(TorchDispatchMode):
        numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self.numel = max(self.numel, t.numel())
            return out

    start, stop = shard_range(classes, world, rank)
    g = _generator(3)
    inputs = torch.randn(rows, dim, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(classes, dim, generator=g, dtype=torch.float64)[start:stop]
    weight.requires_grad_()
    targets = torch.randint(0, classes, (rows,), generator=g)
    with Largest() as mode:
        loss = vocab_parallel_linear_cross_entropy(inputs, weight, targets, chunk_size=chunk)
        loss.backward()
    return {
        "largest": mode.numel,
        # inputs, weight, a chunk of logits, or the six statistics per row
        "bound": max(rows * dim, (stop - start) * dim, rows * chunk, rows * 6),
        "local_logits": rows * (stop - start),
    }


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        results = {case.name: _run_case(case, rank, world) for case in CASES}
        errors_group = dist.new_group(
            backend="gloo", timeout=datetime.timedelta(seconds=ERROR_TIMEOUT_S)
        )
        errors = _error_cases(rank, world, errors_group)
        non_member = _non_member(rank, world)
        saved = {
            "results": results,
            "errors": errors,
            "non_member": non_member,
            "largest": _largest_tensor_of_linear(rank, world),
        }
        torch.save(saved, Path(out_dir) / f"rank{rank}.pt")
        dist.barrier()  # no rank tears the group down while another still works
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_group(world: int, out_dir: Path) -> list[dict[str, Any]]:
    context = mp.start_processes(
        _worker,
        args=(world, _free_port(), str(out_dir)),
        nprocs=world,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + GROUP_DEADLINE_S
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
            pytest.fail(f"the {world}-rank group did not finish in {GROUP_DEADLINE_S} s")
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(world)]


@pytest.fixture(scope="module", params=[2, 3], ids=["2ranks", "3ranks"])
def group_run(request: Any, tmp_path_factory: Any) -> tuple[int, list[dict[str, Any]]]:
    world = request.param
    return world, _run_group(world, tmp_path_factory.mktemp(f"world{world}"))


# --------------------------------------------------------------------------------------
# Single-process references on the gathered tensors


def _close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL) -> None:
    torch.testing.assert_close(
        actual.to(expected.dtype), expected, rtol=rtol, atol=rtol * 1e-3, equal_nan=True
    )


def _gathered(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(parts, dim=-1)


def _reference(case: Case) -> dict[str, torch.Tensor]:
    data = _case_inputs(case)
    options = dict(case.options)
    if case.kind in ("log_softmax", "softmax"):
        x = data["logits"].clone().requires_grad_()
        fn = softmaxkit.log_softmax if case.kind == "log_softmax" else softmaxkit.softmax
        out = _constant_where_infinite(fn(x))
        out.backward(data["upstream"])
        return {"out": out.detach(), "grad": x.grad}
    if case.kind == "ce":
        x = data["logits"].clone().requires_grad_()
        loss = _torch_cross_entropy(x, data["targets"], case.edge, **options)
        loss.backward(_upstream_for(case, data, loss))
        return {"loss": loss.detach(), "grad": x.grad}
    use_bias = options.pop("bias", True)
    options.pop("chunk_size", None)
    inputs = data["inputs"].clone().requires_grad_()
    weight = data["weight"].clone().requires_grad_()
    bias = data["bias"].clone().requires_grad_() if use_bias else None
    logits = inputs @ weight.T + (bias if bias is not None else 0)
    loss = _torch_cross_entropy(logits, data["targets"], False, **options)
    loss.backward(_upstream_for(case, data, loss))
    out = {"loss": loss.detach(), "inputs": inputs.grad, "weight": weight.grad}
    if bias is not None:
        out["bias"] = bias.grad
    return out


def _constant_where_infinite(y: torch.Tensor) -> torch.Tensor:
    # The documented semantics: -inf outputs are constants, so the gradient
    # arriving there is ignored (softmaxkit.log_softmax_backward does the same).
    return torch.where(torch.isinf(y), y.detach(), y)


def _torch_cross_entropy(
    x: torch.Tensor,
    t: torch.Tensor,
    edge: bool,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """``F.cross_entropy`` with the classes last; on edge rows, the core's log_softmax."""
    classes = x.shape[-1]
    rows, flat = x.reshape(-1, classes), t.reshape(-1)
    if not edge:
        loss = F.cross_entropy(
            rows,
            flat,
            reduction=reduction,
            label_smoothing=label_smoothing,
            ignore_index=ignore_index,
        )
        return loss.reshape(t.shape) if reduction == "none" else loss
    # Infinite logits: PyTorch gives NaN where the core defines a value, so the
    # reference is the formula on softmaxkit.log_softmax (both agree elsewhere).
    logp = _constant_where_infinite(softmaxkit.log_softmax(rows))
    kept = flat != ignore_index
    loss = torch.zeros(flat.shape, dtype=x.dtype)
    if label_smoothing < 1:
        picked = logp.gather(1, torch.where(kept, flat, 0)[:, None])[:, 0]
        loss = loss - (1 - label_smoothing) * picked
    if label_smoothing > 0:
        loss = loss - label_smoothing / classes * logp.sum(dim=1)
    loss = torch.where(kept, loss, torch.zeros_like(loss))
    return {"none": loss, "sum": loss.sum(), "mean": loss.sum() / kept.sum()}[reduction]


# --------------------------------------------------------------------------------------
# The tests


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_matches_single_process(group_run: Any, case: Case) -> None:
    world, ranks = group_run
    got = [rank["results"][case.name] for rank in ranks]
    expected = _reference(case)
    rtol = RTOL if case.dtype == torch.float64 else 1e-5
    for key, value in expected.items():
        if key in ("loss", "inputs"):
            # Replicated results: every rank holds the full value.
            for r in range(world):
                _close(got[r][key], value, rtol)
        else:
            # Sharded results: the ranks' slices, in order, make the full value.
            dim = 0 if key in ("weight", "bias") else -1  # weight rows are the classes
            _close(torch.cat([g[key] for g in got], dim=dim), value, rtol)
    if case.kind == "ce":
        # The library's own single-process loss (the losses issue) agrees too,
        # values and gradients, edge rows included.
        data = _case_inputs(case)
        x = data["logits"].clone().requires_grad_()
        ours = softmaxkit.cross_entropy(x, data["targets"], **case.options)
        ours.backward(_upstream_for(case, data, ours))
        for rank in got:
            _close(rank["loss"], ours.detach(), rtol)
        _close(torch.cat([g["grad"] for g in got], dim=-1), x.grad, rtol)


def test_linear_variant_holds_one_chunk_of_logits_at_a_time(group_run: Any) -> None:
    # Every tensor made in forward and backward (seen by a dispatch mode) is
    # inputs-, weight-, chunk- or statistics-sized: never the local logits.
    _, ranks = group_run
    for rank in ranks:
        largest = rank["largest"]
        assert largest["largest"] <= largest["bound"] < largest["local_logits"], largest


def test_edge_rows_are_finite_where_the_core_is(group_run: Any) -> None:
    # A pin on the edge semantics themselves, beyond agreement with the core:
    # the all -inf row gives -inf (not NaN) and zero gradient; NaN stays in its
    # row, value and gradient.
    _, ranks = group_run
    out = _gathered([rank["results"]["log_softmax-edges"]["out"] for rank in ranks])
    grad = _gathered([rank["results"]["log_softmax-edges"]["grad"] for rank in ranks])
    assert torch.all(out[1] == -math.inf)
    assert torch.all(grad[1] == 0)
    assert torch.isnan(out[3]).all() and not torch.isnan(out[[0, 2, 4, 5]]).any()
    assert torch.isnan(grad[3]).all() and not torch.isnan(grad[[0, 1, 2, 4, 5]]).any()


def test_all_ignored_mean_is_nan_like_torch(group_run: Any) -> None:
    _, ranks = group_run
    for rank in ranks:
        assert math.isnan(float(rank["results"]["ce-all-ignored-mean"]["loss"]))


ERRORS = {
    # name: (message pattern on the rank at fault, pattern on the others or None if the same)
    "shards-ce": (r"`local_logits` must hold the classes shard_range\(11, \d, rank\)", None),
    "shards-log_softmax": (r"`local_logits` must hold the classes shard_range\(11", None),
    "shards-linear": (r"`local_weight` must hold the classes shard_range\(11", None),
    "target-too-large": (
        r"`targets` must be in \[0, 11\) or `ignore_index` -100; position 3 holds 11",
        None,
    ),
    "target-negative": (
        r"`targets` must be class ids >= 0 or `ignore_index` -100; position 4 holds -5",
        None,
    ),
    "target-too-large-on-last-rank": (
        r"`targets` must be in \[0, 11\) or `ignore_index` -100; position 3 holds 11",
        r"`targets` must be in \[0, 11\) or `ignore_index` -100 on every rank; on rank \d "
        r"position 3 holds 11",
    ),
    "targets-differ-on-last-rank": (
        r"`targets` must be the same global class ids on every rank; rank \d holds",
        None,
    ),
    "targets-shape-on-last-rank": (
        r"`targets` must have shape \(7,\) .*; got \(6,\)",
        r"rank \d refused its arguments",
    ),
    "rows-differ-on-last-rank": (
        r"`local_logits` must have the same rows .* on every rank; rank 0 has 7 rows, rank \d has 6",
        None,
    ),
    "options-differ-on-last-rank": (
        r"the options must be equal on every rank; rank \d .*\(`ignore_index`, `reduction`, "
        r"`label_smoothing`\)",
        None,
    ),
    "inputs-grad-differs-on-last-rank": (
        r"the options must be equal on every rank; rank \d .*`inputs` requires grad",
        None,
    ),
    "bad-reduction": (r"`reduction` must be one of 'none', 'mean', 'sum'; got 'avg'", None),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_input_raises_on_every_rank(group_run: Any, name: str) -> None:
    world, ranks = group_run
    at_fault, others = ERRORS[name]
    for r, rank in enumerate(ranks):
        kind, message, _ = rank["errors"][name]
        pattern = at_fault if (others is None or r == world - 1) else others
        assert kind == "SoftmaxkitValueError", (r, kind, message)
        assert re.search(pattern, message), (r, message)


def test_group_stays_in_step_after_errors(group_run: Any) -> None:
    _, ranks = group_run
    expected = F.cross_entropy(_logits(), _targets())
    for rank in ranks:
        _close(rank["errors"]["after-errors"], expected)


def test_non_member_rank_is_refused_and_members_compute(group_run: Any) -> None:
    _, ranks = group_run
    kind, message = ranks[-1]["non_member"]
    assert kind == "SoftmaxkitValueError"
    assert "`group` must contain this process" in message
    expected = F.cross_entropy(_logits(), _targets())
    for rank in ranks[:-1]:
        _close(rank["non_member"], expected)


def test_uninitialised_group_is_refused_at_once() -> None:
    assert not dist.is_initialized()
    logits, targets = _logits(), _targets()
    calls = [
        lambda: vocab_parallel_log_softmax(logits),
        lambda: vocab_parallel_softmax(logits),
        lambda: vocab_parallel_cross_entropy(logits, targets),
        lambda: vocab_parallel_linear_cross_entropy(torch.ones(ROWS, 2), torch.ones(3, 2), targets),
    ]
    for call in calls:
        with pytest.raises(
            SoftmaxkitValueError, match=re.escape("initialised torch.distributed process group")
        ):
            call()


def test_bad_options_are_refused_before_any_collective() -> None:
    logits, targets = _logits(), _targets()
    with pytest.raises(
        SoftmaxkitValueError, match=re.escape("`label_smoothing` must be in [0, 1]; got 1.5")
    ):
        vocab_parallel_cross_entropy(logits, targets, label_smoothing=1.5)
    with pytest.raises(
        SoftmaxkitTypeError, match=re.escape("`ignore_index` must be an int; got 0.5")
    ):
        vocab_parallel_cross_entropy(logits, targets, ignore_index=0.5)
    with pytest.raises(SoftmaxkitValueError, match="`chunk_size` must be >= 1; got 0"):
        vocab_parallel_linear_cross_entropy(logits, logits, targets, chunk_size=0)


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7, 11, 12, 30])
def test_shard_range_tiles_the_classes(world: int) -> None:
    ranges = [shard_range(NUM_CLASSES, world, r) for r in range(world)]
    sizes = [b - a for a, b in ranges]
    assert ranges[0][0] == 0 and ranges[-1][1] == NUM_CLASSES
    assert all(ranges[r][1] == ranges[r + 1][0] for r in range(world - 1))
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the first V % world ranks hold one more


def test_shard_range_refuses_bad_arguments() -> None:
    with pytest.raises(SoftmaxkitValueError, match=re.escape("`rank` must be in [0, 3); got 3")):
        shard_range(10, 3, 3)
    with pytest.raises(SoftmaxkitValueError, match="`num_classes` must be >= 1; got 0"):
        shard_range(0, 3, 0)
    with pytest.raises(SoftmaxkitTypeError, match="`world_size` must be an int"):
        shard_range(10, 2.0, 0)


def test_import_softmaxkit_does_not_import_distributed() -> None:
    code = "import softmaxkit, sys; print('softmaxkit.distributed' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _load_example() -> Any:
    path = Path(__file__).resolve().parents[1] / "examples" / "vocab_parallel.py"
    spec = importlib.util.spec_from_file_location("vocab_parallel_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_trains_on_two_processes_like_one_unsharded_model() -> None:
    example = _load_example()
    argv = ["--vocab", "50", "--dim", "8", "--batch", "32", "--steps", "6"]
    argv += ["--print-every", "1", "--dtype", "float64", "--chunk-size", "7"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", str(Path(example.__file__)), *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    printed = [float(m) for m in re.findall(r"^step +\d+ +loss ([0-9.]+)$", run.stdout, re.M)]
    assert len(printed) == 6, run.stdout

    # The same training with the whole output layer in one process.
    args = example.parse_args(argv)
    trunk, head = example.make_model(args.vocab, args.dim, args.seed, torch.float64)
    optimizer = torch.optim.Adam([*trunk.parameters(), *head.parameters()], lr=args.lr)
    expected = []
    for step in range(1, args.steps + 1):
        tokens, targets = example.make_batch(step, args.vocab, args.batch, args.seed)
        loss = F.cross_entropy(head(trunk(tokens)), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        expected.append(loss.item())
    assert printed == pytest.approx(expected, abs=2e-6)
    assert printed[-1] < printed[0]
