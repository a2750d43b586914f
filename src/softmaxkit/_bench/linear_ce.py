"""The linear cross-entropy suite: a language model's output layer and loss, with gradients.

``cross_entropy(x @ W.T, t)`` plus its backward pass, three ways, each in its own
process: PyTorch's plain computation (the whole ``(N, V)`` logits, and autograd
keeps them for the backward pass), softmaxkit's chunked ``linear_cross_entropy``
on PyTorch tensors (an autograd Function) and ``linear_cross_entropy_grad`` on
NumPy arrays.  Peak memory is the process's high-water mark of resident memory,
reset once the inputs, weights and gradient buffers exist, minus the resident
size then: the memory the method itself needs, to set against the bytes of the
full logits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import THREADS, measure, median_seconds, peak_bytes, reset_peak, resident_bytes

__all__ = ["contender", "run"]

SHAPE = (4096, 512, 128_000)  # N tokens, D hidden, V classes
QUICK_SHAPE = (256, 64, 8000)
CONTENDERS = ("torch plain", "softmaxkit torch", "softmaxkit numpy")


def contender(name: str, shape: list[int], repeat: int) -> dict[str, Any]:
    """Run in a contender's own process: median seconds and peak extra bytes of loss + grads."""
    n, d, v = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d), dtype=np.float32)
    w = (rng.standard_normal((v, d), dtype=np.float32) / np.sqrt(d)).astype(np.float32)
    t = rng.integers(0, v, n)
    if name == "softmaxkit numpy":
        import softmaxkit

        def fn() -> Any:
            return softmaxkit.linear_cross_entropy_grad(x, w, t)

        # lazy imports and thread pools first, so that the baseline holds them
        softmaxkit.linear_cross_entropy_grad(x[:4], w[:16], t[:4] % 16)
    else:
        import torch

        import softmaxkit

        torch.set_num_threads(THREADS)
        tt = torch.from_numpy(t)

        def step(xt: Any, wt: Any, tt: Any) -> Any:
            xt.grad = wt.grad = None  # backward then writes fresh gradients, no accumulation
            if name == "torch plain":
                loss = torch.nn.functional.cross_entropy(xt @ wt.T, tt)
            else:
                loss = softmaxkit.linear_cross_entropy(xt, wt, tt)
            loss.backward()
            return loss

        xt = torch.from_numpy(x).requires_grad_(True)
        wt = torch.from_numpy(w).requires_grad_(True)
        step(
            xt[:4].detach().requires_grad_(True), wt[:16].detach().requires_grad_(True), tt[:4] % 16
        )

        def fn() -> Any:
            return step(xt, wt, tt)

    # The gradients' bytes are part of the baseline: hold buffers of their size while
    # measuring it, then free them for the real gradients to take their place.
    held = [np.ones_like(x), np.ones_like(w)]
    baseline = resident_bytes()
    del held
    reset_peak()
    seconds = median_seconds(fn, repeat=repeat, warmup=0)
    return {"seconds": seconds, "peak_extra_bytes": peak_bytes() - baseline}


def run(*, quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    shape = QUICK_SHAPE if quick else SHAPE
    repeat = repeat or 3
    n, d, v = shape
    logits_bytes = n * v * 4
    results: dict[str, dict[str, Any]] = {}
    errors = []
    for name in CONTENDERS:
        result = measure(
            "softmaxkit._bench.linear_ce:contender", name=name, shape=list(shape), repeat=repeat
        )
        if "error" in result:
            errors.append(f"{name}: {result['error']}")
            result = {"seconds": math.nan, "peak_extra_bytes": math.nan}
        results[name] = result
    plain = results["torch plain"]["seconds"]
    rows = [
        [
            name,
            r["seconds"],
            r["peak_extra_bytes"] / 1e6,
            r["peak_extra_bytes"] / logits_bytes,
            plain / r["seconds"],
        ]
        for name, r in results.items()
    ]
    return {
        "suite": "linear-ce",
        "title": f"linear cross-entropy forward + backward, float32, N={n}, D={d}, V={v}",
        "columns": ["contender", "s", "peak extra (MB)", "x logits bytes", "speed-up vs plain"],
        "rows": rows,
        "notes": [
            f"the full logits take {logits_bytes / 1e9:.2f} GB; peak extra = high-water mark of "
            "resident memory during the calls minus the resident size with inputs, weights and "
            "gradient buffers allocated",
            f"median of {repeat} calls, each contender in its own process on {THREADS} threads",
            *errors,
        ],
        "extra": {"results": results, "logits_bytes": logits_bytes, "repeat": repeat},
    }
