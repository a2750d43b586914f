"""The torch suite: softmaxkit on PyTorch tensors against PyTorch's own functions.

Each row times PyTorch and softmaxkit on the same float32 CPU tensors side by
side in one process (:func:`~softmaxkit._bench.paired_medians`): both use the
same library, thread pool and allocator, and alternating their samples lets a
burst of load on a shared machine fall on both alike.  The rows are those issue
10 sets bounds for, with the bound on softmaxkit's time over PyTorch's:

* ``softmax`` and ``log_softmax`` forward, and forward plus ``y.backward(g)``
  with a fixed upstream gradient ``g``;
* a compiled model: ``Linear(512, 1000)``, then ``log_softmax`` and
  ``cross_entropy``, batch 256, under ``torch.compile(fullgraph=True)``, one
  training step (forward and backward to the weights) after warm-up.

Cross-entropy forward plus backward, with its memory, is in the cross-entropy
suite, where each contender has a process of its own to measure peaks in.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

from . import THREADS, format_bound, measure, paired_medians
from .softmax import scores

__all__ = ["compiled_model", "pair", "run", "smoke"]

FORWARD, BACKWARD = "forward", "forward + backward"

# (operation, shape, pass, bound on softmaxkit / torch or None)
ROWS: tuple[tuple[str, tuple[int, int], str, float | None], ...] = (
    ("softmax", (4096, 32000), FORWARD, 0.6),
    ("softmax", (65536, 1000), FORWARD, 0.6),
    ("softmax", (256, 10), FORWARD, 1.0),
    ("log_softmax", (4096, 32000), FORWARD, 0.6),
    ("log_softmax", (65536, 1000), FORWARD, 0.6),
    ("log_softmax", (256, 10), FORWARD, None),
    ("softmax", (4096, 32000), BACKWARD, None),
    ("softmax", (65536, 1000), BACKWARD, None),
    ("log_softmax", (4096, 32000), BACKWARD, None),
    ("log_softmax", (65536, 1000), BACKWARD, None),
)
QUICK_ROWS: tuple[tuple[str, tuple[int, int], str, float | None], ...] = (
    ("softmax", (256, 10), FORWARD, 1.0),
    ("log_softmax", (256, 10), FORWARD, None),
    ("softmax", (128, 1000), BACKWARD, None),
    ("log_softmax", (128, 1000), BACKWARD, None),
)
MODEL = (256, 512, 1000)  # batch, in features, classes
COMPILED = "compiled model"
COMPILE_TIMEOUT = 900.0  # seconds for the compiled row's process, compilation included


def _functions(op: str) -> dict[str, Any]:
    import torch

    import softmaxkit

    if op == "softmax":
        return {
            "torch": lambda v: torch.softmax(v, dim=-1),
            "softmaxkit": lambda v: softmaxkit.softmax(v, axis=-1),
        }
    if op == "log_softmax":
        return {
            "torch": lambda v: torch.log_softmax(v, dim=-1),
            "softmaxkit": lambda v: softmaxkit.log_softmax(v, axis=-1),
        }
    raise ValueError(op)


def pair(op: str, shape: list[int], passes: str, repeat: int) -> dict[str, Any]:
    """Run in its own process: median seconds of torch and softmaxkit, side by side.

    Also the largest difference of their results (the gradients, for a backward
    row), so that a fast wrong answer shows.
    """
    import torch

    torch.set_num_threads(THREADS)
    functions = _functions(op)
    x = torch.from_numpy(scores(tuple(shape)))
    if passes == FORWARD:
        calls = {name: (lambda f=f: f(x)) for name, f in functions.items()}
        answers = {name: call() for name, call in calls.items()}
    elif passes == BACKWARD:
        x.requires_grad_(True)
        g = torch.from_numpy(scores(tuple(shape), seed=1))  # the fixed upstream gradient

        def step(f: Any) -> Any:
            x.grad = None  # backward then writes a fresh gradient, no accumulation
            f(x).backward(g)
            return x.grad

        calls = {name: (lambda f=f: step(f)) for name, f in functions.items()}
        answers = {name: call() for name, call in calls.items()}
    else:
        raise ValueError(passes)
    difference = float((answers["torch"] - answers["softmaxkit"]).abs().max())
    del answers
    # Short calls are sampled three times as often: on a shared machine a whole run of
    # them can land in another process's time slice.
    short = math.prod(shape) < 10**5
    seconds = paired_medians(calls, repeat=3 * repeat if short else repeat, warmup=1)
    return {"seconds": seconds, "max_abs_difference": difference}


def compiled_model(repeat: int) -> dict[str, Any]:
    """Run in its own process: one compiled training step of each model, side by side."""
    import torch
    import torch.nn.functional as F

    import softmaxkit

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    batch, features, classes = MODEL
    layer = torch.nn.Linear(features, classes)
    layers = {"torch": layer, "softmaxkit": copy.deepcopy(layer)}  # the same weights
    x = torch.randn(batch, features)
    t = torch.randint(0, classes, (batch,))

    def torch_loss(x: Any, t: Any) -> Any:
        return F.cross_entropy(F.log_softmax(layers["torch"](x), dim=-1), t)

    def our_loss(x: Any, t: Any) -> Any:
        return softmaxkit.cross_entropy(softmaxkit.log_softmax(layers["softmaxkit"](x), axis=-1), t)

    losses = {"torch": torch_loss, "softmaxkit": our_loss}

    def training_step(name: str) -> Any:
        compiled = torch.compile(losses[name], fullgraph=True)
        parameters = list(layers[name].parameters())

        def step() -> Any:
            for p in parameters:
                p.grad = None
            loss = compiled(x, t)
            loss.backward()
            return loss

        return step

    steps = {name: training_step(name) for name in losses}
    compile_seconds = {}
    values = {}
    for name, step in steps.items():
        start = time.perf_counter()
        values[name] = float(step().detach())  # compiles the forward and the backward graph
        compile_seconds[name] = time.perf_counter() - start
    seconds = paired_medians(steps, repeat=repeat, warmup=3)
    return {
        "seconds": seconds,
        "compile_seconds": compile_seconds,
        "max_abs_difference": abs(values["torch"] - values["softmaxkit"]),
    }


def smoke(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Run in one process: every row of a ``--quick`` run, to pay for one torch import only."""
    return {"results": [pair(**call) for call in calls]}


def run(*, quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    rows_spec = QUICK_ROWS if quick else ROWS
    repeat = repeat or (5 if quick else 15)
    calls: list[dict[str, Any]] = [
        {"op": op, "shape": list(shape), "passes": passes, "repeat": repeat}
        for op, shape, passes, _ in rows_spec
    ]
    if quick:
        done = measure("softmaxkit._bench.tensors:smoke", calls=calls)
        answers = list(done.get("results", [done] * len(calls)))
    else:
        answers = [measure("softmaxkit._bench.tensors:pair", **call) for call in calls]
    labels = [(op, f"{shape}", passes, bound) for op, shape, passes, bound in rows_spec]
    if not quick:
        batch, features, classes = MODEL
        labels.append((COMPILED, f"Linear({features}, {classes}), batch {batch}", BACKWARD, 1.0))
        answers.append(
            measure(
                "softmaxkit._bench.tensors:compiled_model",
                timeout=COMPILE_TIMEOUT,
                repeat=repeat,
            )
        )
    rows: list[list[Any]] = []
    errors: list[str] = []
    extra: dict[str, Any] = {}
    for (op, shape, passes, bound), answer in zip(labels, answers, strict=True):
        if "error" in answer:
            errors.append(f"{op} {shape} {passes}: {answer['error']}")
            seconds = {"torch": math.nan, "softmaxkit": math.nan}
        else:
            seconds = answer["seconds"]
        extra[f"{op} {shape} {passes}"] = answer
        theirs, ours = seconds["torch"], seconds["softmaxkit"]
        rows.append(
            [op, shape, passes, theirs * 1e3, ours * 1e3, ours / theirs, format_bound(bound)]
        )
    compile_note = []
    compiled = answers[-1] if not quick else {}
    if "compile_seconds" in compiled:
        compile_note.append(
            "compiled model: F.cross_entropy(F.log_softmax(linear(x))) against "
            "softmaxkit.cross_entropy(softmaxkit.log_softmax(linear(x))) under "
            "torch.compile(fullgraph=True); a step sets the parameters' gradients to None, "
            "runs forward and loss.backward(); compiling took {torch:.1f} s (torch) and "
            "{softmaxkit:.1f} s (softmaxkit), not timed".format(**compiled["compile_seconds"])
        )
    notes = [
        f"float32 CPU tensors, {THREADS} threads; torch and softmaxkit timed side by side in one "
        "process per row, samples alternating, median of each",
        "x torch: softmaxkit's time / torch's time (below 1: softmaxkit is faster); bound: "
        "issue 10's",
        "forward + backward: y = f(x); y.backward(g) with a fixed upstream gradient g, "
        "x.grad set to None before each call",
        *compile_note,
        *errors,
    ]
    return {
        "suite": "torch",
        "title": "softmaxkit on PyTorch tensors against PyTorch, float32 CPU",
        "columns": [
            "operation",
            "shape",
            "pass",
            "torch (ms)",
            "softmaxkit (ms)",
            "x torch",
            "bound",
        ],
        "rows": rows,
        "notes": notes,
        "extra": {"results": extra, "repeat": repeat},
    }
