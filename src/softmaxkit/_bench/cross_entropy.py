"""The cross-entropy suite: loss and gradient of class-index targets, forward plus backward.

softmaxkit's ``cross_entropy_grad`` returns both in one fused pass; PyTorch's
``cross_entropy`` runs forward and then ``backward()`` through autograd.  The
copy of the logits' bytes is the memory limit, as in the softmax suite.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import THREADS, measure, median_seconds
from .softmax import scores

__all__ = ["contender", "run"]

SHAPE = (8192, 32000)
QUICK_SHAPE = (512, 1000)
CONTENDERS = ("copy", "softmaxkit", "torch")


def contender(name: str, shape: list[int], repeat: int) -> dict[str, Any]:
    """Run in a contender's own process: the median seconds of loss plus gradient."""
    n, c = shape
    x = scores((n, c))
    t = np.random.default_rng(1).integers(0, c, n)
    if name == "copy":
        out = np.empty_like(x)
        fn: Any = lambda: np.copyto(out, x)  # noqa: E731
    elif name == "softmaxkit":
        import softmaxkit

        fn = lambda: softmaxkit.cross_entropy_grad(x, t)  # noqa: E731
    elif name == "torch":
        import torch

        torch.set_num_threads(THREADS)
        logits = torch.from_numpy(x).requires_grad_(True)
        target = torch.from_numpy(t)

        def fn() -> None:
            logits.grad = None
            torch.nn.functional.cross_entropy(logits, target).backward()

    else:
        raise ValueError(name)
    return {"seconds": median_seconds(fn, repeat=repeat)}


def run(*, quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    shape = QUICK_SHAPE if quick else SHAPE
    repeat = repeat or (5 if quick else 10)
    times: dict[str, float] = {}
    errors = []
    for name in CONTENDERS:
        result = measure(
            "softmaxkit._bench.cross_entropy:contender", name=name, shape=list(shape), repeat=repeat
        )
        if "error" in result:
            errors.append(f"{name}: {result['error']}")
            times[name] = math.nan
        else:
            times[name] = result["seconds"]
    ours = times["softmaxkit"]
    rows = [
        [f"{shape}", name, t * 1e3, t / times["copy"], t / ours if name != "softmaxkit" else 1.0]
        for name, t in times.items()
    ]
    return {
        "suite": "cross-entropy",
        "title": "cross-entropy forward + backward, float32, class-index targets, mean",
        "columns": ["shape", "contender", "ms", "x copy", "x softmaxkit"],
        "rows": rows,
        "notes": [
            "softmaxkit: cross_entropy_grad (loss and dlogits in one fused pass); torch: "
            "F.cross_entropy(logits, t).backward() with autograd",
            f"median of repeated calls, each contender in its own process on {THREADS} threads",
            *errors,
        ],
        "extra": {"seconds": times, "repeat": repeat},
    }
