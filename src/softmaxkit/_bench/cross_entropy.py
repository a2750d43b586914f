"""The cross-entropy suite: loss and gradient of class-index targets, forward plus backward.

softmaxkit's ``cross_entropy_grad`` returns both in one fused pass on NumPy
arrays; on PyTorch tensors ``softmaxkit.cross_entropy(x, t).backward()`` runs
its operators through autograd, as ``F.cross_entropy(x, t).backward()`` runs
PyTorch's.  The copy of the logits' bytes is the memory limit, as in the
softmax suite.  Peak memory is the process's high-water mark of resident
memory, reset once the logits and targets exist, minus the resident size then:
what the loss and its gradient need beyond their inputs, the gradient included.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import THREADS, measure, median_seconds, peak_bytes, reset_peak, resident_bytes
from .softmax import scores

__all__ = ["contender", "run"]

SHAPE = (8192, 32000)
QUICK_SHAPE = (512, 1000)
CONTENDERS = ("copy", "softmaxkit", "torch", "softmaxkit (torch)")


def contender(name: str, shape: list[int], repeat: int) -> dict[str, Any]:
    """Run in a contender's own process: median seconds and peak extra bytes of loss + gradient."""
    n, c = shape
    x = scores((n, c))
    t = np.random.default_rng(1).integers(0, c, n)
    if name == "copy":
        out = np.empty_like(x)
        np.copyto(out, x)  # its pages touched: the buffer is part of the baseline
        fn: Any = lambda: np.copyto(out, x)  # noqa: E731
    elif name == "softmaxkit":
        import softmaxkit

        fn = lambda: softmaxkit.cross_entropy_grad(x, t)  # noqa: E731
        softmaxkit.cross_entropy_grad(x[:4, :16], t[:4] % 16)  # thread pools into the baseline
    elif name in ("torch", "softmaxkit (torch)"):
        import torch

        import softmaxkit

        torch.set_num_threads(THREADS)
        loss = torch.nn.functional.cross_entropy if name == "torch" else softmaxkit.cross_entropy
        logits = torch.from_numpy(x).requires_grad_(True)
        target = torch.from_numpy(t)

        def step(logits: Any, target: Any) -> None:
            logits.grad = None  # backward then writes a fresh gradient, no accumulation
            loss(logits, target).backward()

        # lazy imports, operator registration and thread pools into the baseline
        step(logits[:4, :16].detach().requires_grad_(True), target[:4] % 16)

        def fn() -> None:
            step(logits, target)

    else:
        raise ValueError(name)
    baseline = resident_bytes()
    reset_peak()
    seconds = median_seconds(fn, repeat=repeat)
    return {"seconds": seconds, "peak_extra_bytes": peak_bytes() - baseline}


def run(*, quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    shape = QUICK_SHAPE if quick else SHAPE
    repeat = repeat or (5 if quick else 10)
    results: dict[str, dict[str, float]] = {}
    errors = []
    for name in CONTENDERS:
        result = measure(
            "softmaxkit._bench.cross_entropy:contender", name=name, shape=list(shape), repeat=repeat
        )
        if "error" in result:
            errors.append(f"{name}: {result['error']}")
            result = {"seconds": math.nan, "peak_extra_bytes": math.nan}
        results[name] = result
    times = {name: r["seconds"] for name, r in results.items()}
    ours, theirs = times["softmaxkit"], times["torch"]
    rows = [
        [
            f"{shape}",
            name,
            t * 1e3,
            t / times["copy"],
            t / ours if name != "softmaxkit" else 1.0,
            t / theirs if name != "torch" else 1.0,
            results[name]["peak_extra_bytes"] / 1e6,
        ]
        for name, t in times.items()
    ]
    return {
        "suite": "cross-entropy",
        "title": "cross-entropy forward + backward, float32, class-index targets, mean",
        "columns": ["shape", "contender", "ms", "x copy", "x softmaxkit", "x torch", "peak (MB)"],
        "rows": rows,
        "notes": [
            "softmaxkit: cross_entropy_grad on NumPy arrays (loss and dlogits in one fused pass); "
            "torch: F.cross_entropy(logits, t).backward(); softmaxkit (torch): "
            "softmaxkit.cross_entropy(logits, t).backward() on the same tensors",
            "x torch: time / torch's time (below 1: faster than PyTorch)",
            f"the logits take {shape[0] * shape[1] * 4 / 1e6:.0f} MB; peak = high-water mark of "
            "resident memory (VmHWM, reset after the inputs are made) during the calls minus the "
            "resident size with logits and targets allocated; it includes the gradient",
            f"median of repeated calls, each contender in its own process on {THREADS} threads",
            *errors,
        ],
        "extra": {"results": results, "seconds": times, "repeat": repeat},
    }
