"""The softmax suite: softmaxkit against its peers and against copying the same bytes.

Every contender computes softmax of the same float32 array in its own process;
``numpy.copyto`` of the array into a preallocated one of the same size reads
and writes the same bytes as a one-pass softmax, so it is the memory limit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import THREADS, measure, median_seconds, paired_medians

__all__ = ["contender", "out_contenders", "run"]

# (shape, axis): the shapes issue 6 names; the last one reduces a non-last axis.
SHAPES: tuple[tuple[tuple[int, ...], int], ...] = (
    ((4096, 32000), -1),
    ((65536, 1000), -1),
    ((256, 10), -1),
    ((1, 10**6), -1),
    ((1000, 4096), 0),
)
QUICK_SHAPES: tuple[tuple[tuple[int, ...], int], ...] = (((256, 10), -1), ((100, 64), 0))

CONTENDERS = (
    "copy",
    "softmaxkit",
    "softmaxkit preallocated",
    "tutorial",
    "scipy",
    "torch",
    "softmaxkit (torch)",
    "jax",
)


def scores(shape: tuple[int, ...], dtype: Any = np.float32, seed: int = 0) -> np.ndarray:
    """Logits of a typical spread (standard deviation 3), the same in every process."""
    rng = np.random.default_rng(seed)
    return (3 * rng.standard_normal(shape, dtype=np.float32)).astype(dtype, copy=False)


def _callable(name: str, x: np.ndarray, axis: int) -> Any:
    """A no-argument function that computes softmax of ``x`` with contender ``name``."""
    if name == "copy":
        out = np.empty_like(x)
        return lambda: np.copyto(out, x)
    if name == "softmaxkit":
        import softmaxkit

        return lambda: softmaxkit.softmax(x, axis=axis)
    if name == "softmaxkit preallocated":
        # The compiled kernel into an array allocated once, as the copy writes: what the
        # kernel costs without the first touch of a fresh result's pages.
        from softmaxkit import _kernels

        out = np.empty_like(x)
        rows, cols = x.shape
        outer, n, inner = (rows, cols, 1) if axis in (-1, 1) else (1, rows, cols)
        kernel = _kernels._compiled()
        return lambda: kernel.forward(x, out, outer, n, inner, 1.0, 0, False)
    if name == "tutorial":
        return lambda: np.exp(x) / np.sum(np.exp(x), axis=axis, keepdims=True)
    if name == "scipy":
        from scipy.special import softmax as scipy_softmax

        return lambda: scipy_softmax(x, axis=axis)
    if name == "torch":
        import torch

        torch.set_num_threads(THREADS)
        t = torch.from_numpy(x)
        return lambda: torch.softmax(t, dim=axis)
    if name == "softmaxkit (torch)":
        import torch

        import softmaxkit

        torch.set_num_threads(THREADS)
        t = torch.from_numpy(x)
        return lambda: softmaxkit.softmax(t, axis=axis)
    if name == "jax":
        import jax
        import jax.numpy as jnp

        f = jax.jit(lambda v: jax.nn.softmax(v, axis=axis))
        v = jnp.asarray(x)
        return lambda: f(v).block_until_ready()
    raise ValueError(name)


def contender(name: str, shape: list[int], axis: int, repeat: int) -> dict[str, Any]:
    """Run in a contender's own process: the median seconds of one softmax call."""
    x = scores(tuple(shape))
    fn = _callable(name, x, axis)
    return {"seconds": median_seconds(fn, repeat=repeat)}


# softmax(x, out=...) against the copy, timed side by side in one process (the ratio
# the target is stated in): into an array of its own, and in place.
OUT_CONTENDERS = ("softmaxkit out=", "softmaxkit out=x (in place)")


def out_contenders(shape: list[int], axis: int, repeat: int) -> dict[str, Any]:
    """Median seconds of ``numpy.copyto`` and of softmax with ``out=``, side by side.

    The in-place call overwrites its input, so from the second call on it takes the
    softmax of probabilities; the kernels' time does not depend on finite values.
    """
    import softmaxkit

    x = scores(tuple(shape))
    copied, out, inplace = np.empty_like(x), np.empty_like(x), x.copy()
    calls = {
        "copy": lambda: np.copyto(copied, x),
        OUT_CONTENDERS[0]: lambda: softmaxkit.softmax(x, axis=axis, out=out),
        OUT_CONTENDERS[1]: lambda: softmaxkit.softmax(inplace, axis=axis, out=inplace),
    }
    return {"seconds": paired_medians(calls, repeat=repeat)}


def run(*, quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    shapes = QUICK_SHAPES if quick else SHAPES
    repeat = repeat or (5 if quick else 20)
    rows: list[list[Any]] = []
    extra: dict[str, Any] = {}
    errors: list[str] = []
    for shape, axis in shapes:
        times: dict[str, float] = {}
        for name in CONTENDERS:
            result = measure(
                "softmaxkit._bench.softmax:contender",
                name=name,
                shape=list(shape),
                axis=axis,
                repeat=repeat,
            )
            if "error" in result:
                errors.append(f"{name} on {shape}: {result['error']}")
                times[name] = math.nan
            else:
                times[name] = result["seconds"]
        paired = measure(
            "softmaxkit._bench.softmax:out_contenders",
            shape=list(shape),
            axis=axis,
            repeat=repeat,
        )
        if "error" in paired:
            errors.append(f"out= on {shape}: {paired['error']}")
            paired = {"seconds": dict.fromkeys(("copy", *OUT_CONTENDERS), math.nan)}
        label = f"{shape} axis={axis}"
        extra[label] = times
        extra[f"{label} out="] = paired["seconds"]
        ours = times["softmaxkit"]
        for name in CONTENDERS:
            t = times[name]
            rows.append(
                [
                    label,
                    name,
                    t * 1e3,
                    t / times["copy"],
                    t / ours if name != "softmaxkit" else 1.0,
                ]
            )
        for name in OUT_CONTENDERS:
            t = paired["seconds"][name]
            rows.append([label, name, t * 1e3, t / paired["seconds"]["copy"], t / ours])
    notes = [
        "float32; median of repeated calls, each contender in its own process on "
        f"{THREADS} threads",
        "x copy: time / numpy.copyto of the same bytes (the memory limit); "
        "x softmaxkit: time / softmaxkit's time (above 1: softmaxkit is faster)",
        "tutorial: np.exp(x) / np.sum(np.exp(x), axis, keepdims=True); jax: jax.nn.softmax under jit",
        "softmaxkit preallocated: its compiled kernel writing into an array allocated once, as "
        "the copy does; every other row allocates its result on each call, as softmax() must",
        "softmaxkit out=: softmax(x, out=a) into an array allocated once; out=x (in place): "
        "softmax(x, out=x); their x copy is over a copy timed side by side in their own "
        "process",
        "softmaxkit (torch): softmaxkit.softmax on a torch tensor (the torch backend's "
        "operators); the suite `torch` times it against torch side by side in one process",
        *errors,
    ]
    return {
        "suite": "softmax",
        "title": "softmax, float32",
        "columns": ["shape", "contender", "ms", "x copy", "x softmaxkit"],
        "rows": rows,
        "notes": notes,
        "extra": {"seconds": extra, "repeat": repeat},
    }
