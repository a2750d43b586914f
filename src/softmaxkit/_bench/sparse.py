"""The sparse suite: sparsemax and 1.5-entmax forward against the entmax package and softmax.

Every contender maps the same float32 array in its own process on the suite's threads:
softmaxkit's ``sparsemax`` and ``entmax15`` (NumPy arrays, the compiled kernels), the
``entmax`` package's on torch CPU tensors (a sort per row), and, as the yardstick,
softmaxkit's own ``softmax`` and ``torch.softmax``.
"""

from __future__ import annotations

import math
from typing import Any

from . import THREADS, median_seconds
from . import measure as _measure
from .softmax import scores

__all__ = ["contender", "run"]

SHAPES: tuple[tuple[int, ...], ...] = ((4096, 32000), (65536, 1000))
QUICK_SHAPES: tuple[tuple[int, ...], ...] = ((256, 100),)

# contender -> the entmax package's contender for the same mapping (the "x entmax" column)
CONTENDERS: dict[str, str | None] = {
    "softmaxkit softmax": None,
    "torch.softmax": None,
    "softmaxkit sparsemax": "entmax.sparsemax (torch)",
    "entmax.sparsemax (torch)": None,
    "softmaxkit entmax15": "entmax.entmax15 (torch)",
    "entmax.entmax15 (torch)": None,
}


def _callable(name: str, x: Any) -> Any:
    if name.startswith("softmaxkit"):
        import softmaxkit

        fn = getattr(softmaxkit, name.split()[1])
        return lambda: fn(x)
    import torch

    torch.set_num_threads(THREADS)
    t = torch.from_numpy(x)
    if name == "torch.softmax":
        return lambda: torch.softmax(t, dim=-1)
    import entmax

    fn = entmax.sparsemax if "sparsemax" in name else entmax.entmax15
    return lambda: fn(t, dim=-1)


def contender(name: str, shape: list[int], repeat: int) -> dict[str, Any]:
    """Run in a contender's own process: the median seconds of one forward call."""
    x = scores(tuple(shape))
    return {"seconds": median_seconds(_callable(name, x), repeat=repeat)}


def run(*, quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    shapes = QUICK_SHAPES if quick else SHAPES
    repeat = repeat or (3 if quick else 10)
    rows: list[list[Any]] = []
    extra: dict[str, Any] = {}
    errors: list[str] = []
    for shape in shapes:
        times: dict[str, float] = {}
        for name in CONTENDERS:
            result = _measure(
                "softmaxkit._bench.sparse:contender", name=name, shape=list(shape), repeat=repeat
            )
            if "error" in result:
                errors.append(f"{name} on {shape}: {result['error']}")
                times[name] = math.nan
            else:
                times[name] = result["seconds"]
        extra[str(shape)] = times
        for name, rival in CONTENDERS.items():
            t = times[name]
            speedup = times[rival] / t if rival is not None else math.nan
            rows.append([str(shape), name, t * 1e3, t / times["softmaxkit softmax"], speedup])
    notes = [
        f"float32, last axis; median of repeated calls, each contender in its own process on "
        f"{THREADS} threads",
        "x softmax: time / softmaxkit.softmax's time on the same array; "
        "x entmax: the entmax package's time for the same mapping / softmaxkit's "
        "(above 1: softmaxkit is faster)",
        *errors,
    ]
    return {
        "suite": "sparse",
        "title": "sparsemax and 1.5-entmax forward, float32",
        "columns": ["shape", "contender", "ms", "x softmax", "x entmax"],
        "rows": rows,
        "notes": notes,
        "extra": {"seconds": extra, "repeat": repeat},
    }
