"""The JAX suite: softmaxkit on JAX arrays against JAX's own functions, CPU, under ``jit``.

Each row times, side by side in one process (:func:`~softmaxkit._bench.paired_medians`),
the reference and softmaxkit twice: with its kernels (XLA custom calls, the JAX
backend's CPU path) and on its lean XLA graphs (:mod:`softmaxkit._backends._jax_graph`,
what a GPU or TPU runs, and CPU with the kernels switched off).  Every contender is a
``jax.jit`` function of the same float32 array:

* ``softmax`` and ``log_softmax``: against ``jax.nn.softmax`` / ``jax.nn.log_softmax``;
* ``value_and_grad`` of the mean cross-entropy of class indices: against optax's
  ``softmax_cross_entropy_with_integer_labels``, written out here (optax is not a
  dependency): ``logsumexp(x - stop_gradient(max)) - (x - max)[label]`` per row.

The bounds are issue 11's, on softmaxkit's time over the reference's: 0.7 (0.6 for the
cross-entropy) with the kernels, 1.2 on the graphs.
"""

from __future__ import annotations

import math
from typing import Any

from . import THREADS, format_bound, measure, paired_medians
from .softmax import scores

__all__ = ["pair", "run", "smoke"]

SOFTMAX, LOG_SOFTMAX, CE = "softmax", "log_softmax", "value_and_grad mean cross-entropy"

Bound = tuple[float, float] | None  # (kernels, graph) on softmaxkit / reference
# (operation, shape, bounds)
ROWS: tuple[tuple[str, tuple[int, int], Bound], ...] = (
    (SOFTMAX, (4096, 32000), (0.7, 1.2)),
    (SOFTMAX, (65536, 1000), (0.7, 1.2)),
    (LOG_SOFTMAX, (4096, 32000), (0.7, 1.2)),
    (LOG_SOFTMAX, (65536, 1000), (0.7, 1.2)),
    (CE, (8192, 32000), (0.6, 1.2)),
)
QUICK_ROWS: tuple[tuple[str, tuple[int, int], Bound], ...] = (
    (SOFTMAX, (256, 100), None),
    (LOG_SOFTMAX, (256, 100), None),
    (CE, (128, 1000), None),
)
CONTENDERS = ("reference", "softmaxkit", "softmaxkit graph")


def _optax_ce(x: Any, labels: Any) -> Any:
    """optax's ``softmax_cross_entropy_with_integer_labels`` formula, mean over rows."""
    import jax
    import jax.numpy as jnp

    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
    label_logits = jnp.take_along_axis(shifted, labels[:, None], axis=-1)[:, 0]
    return jnp.mean(jnp.log(jnp.sum(jnp.exp(shifted), axis=-1)) - label_logits)


def _functions(op: str) -> dict[str, Any]:
    import jax

    import softmaxkit

    if op == SOFTMAX:
        return {"reference": jax.nn.softmax, "softmaxkit": softmaxkit.softmax}
    if op == LOG_SOFTMAX:
        return {"reference": jax.nn.log_softmax, "softmaxkit": softmaxkit.log_softmax}
    if op == CE:
        return {
            "reference": jax.value_and_grad(_optax_ce),
            "softmaxkit": jax.value_and_grad(softmaxkit.cross_entropy),
        }
    raise ValueError(op)


def pair(op: str, shape: list[int], repeat: int) -> dict[str, Any]:
    """Run in its own process: median seconds of each contender, side by side.

    Also the largest difference of softmaxkit's results (the gradient, for the
    cross-entropy) from the reference's, so that a fast wrong answer shows.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from softmaxkit._backends import _jax

    functions = _functions(op)
    x = jnp.asarray(scores(tuple(shape)))
    args: tuple[Any, ...] = (x,)
    if op == CE:
        labels = np.random.default_rng(1).integers(0, shape[1], shape[0])
        args = (x, jnp.asarray(labels))
    # A function of its own for each: jax.jit keeps one trace per Python function, and
    # the backend's path is read while tracing.
    ours = functions["softmaxkit"]
    jitted = {
        "reference": jax.jit(functions["reference"]),
        "softmaxkit": jax.jit(lambda *a: ours(*a)),
        "softmaxkit graph": jax.jit(lambda *a: ours(*a)),
    }
    answers = {}
    for name, f in jitted.items():
        # the first call (the trace) fixes each one's path
        with _jax.use_path("graph" if name == "softmaxkit graph" else "auto"):
            answers[name] = jax.block_until_ready(f(*args))

    def last(answer: Any) -> Any:
        return answer[1] if op == CE else answer

    differences = {
        name: float(jnp.max(jnp.abs(last(answers[name]) - last(answers["reference"]))))
        for name in CONTENDERS[1:]
    }
    del answers
    calls = {name: (lambda f=f: jax.block_until_ready(f(*args))) for name, f in jitted.items()}
    short = math.prod(shape) < 10**5
    seconds = paired_medians(calls, repeat=3 * repeat if short else repeat, warmup=1)
    return {"seconds": seconds, "max_abs_difference": differences}


def smoke(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Run in one process: every row of a ``--quick`` run, to pay for one JAX import only."""
    return {"results": [pair(**call) for call in calls]}


def run(*, quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    rows_spec = QUICK_ROWS if quick else ROWS
    repeat = repeat or (5 if quick else 15)
    calls: list[dict[str, Any]] = [
        {"op": op, "shape": list(shape), "repeat": repeat} for op, shape, _ in rows_spec
    ]
    if quick:
        done = measure("softmaxkit._bench.jax_arrays:smoke", calls=calls)
        answers = list(done.get("results", [done] * len(calls)))
    else:
        answers = [measure("softmaxkit._bench.jax_arrays:pair", **call) for call in calls]
    rows: list[list[Any]] = []
    errors: list[str] = []
    extra: dict[str, Any] = {}
    for (op, shape, bound), answer in zip(rows_spec, answers, strict=True):
        if "error" in answer:
            errors.append(f"{op} {shape}: {answer['error']}")
            seconds = dict.fromkeys(CONTENDERS, math.nan)
        else:
            seconds = answer["seconds"]
        extra[f"{op} {shape}"] = answer
        ref, ours, graph = (seconds[name] for name in CONTENDERS)
        rows.append(
            [
                op,
                f"{shape}",
                ref * 1e3,
                ours * 1e3,
                ours / ref,
                format_bound(bound and bound[0]),
                graph * 1e3,
                graph / ref,
                format_bound(bound and bound[1]),
            ]
        )
    notes = [
        f"float32 JAX arrays on CPU, {THREADS} threads, everything under jax.jit; the "
        "contenders of a row timed side by side in one process, samples alternating, "
        "median of each",
        "reference: jax.nn.softmax / jax.nn.log_softmax; for the cross-entropy "
        "jax.value_and_grad of optax's softmax_cross_entropy_with_integer_labels formula "
        "(mean over rows), against jax.value_and_grad(softmaxkit.cross_entropy)",
        "x ref: time over the reference's (below 1: faster); graph: softmaxkit's lean XLA "
        "graphs (what a GPU or TPU runs; here the kernels switched off); bounds: issue 11's",
        *errors,
    ]
    return {
        "suite": "jax",
        "title": "softmaxkit on JAX arrays against JAX (and optax's formula), float32 CPU",
        "columns": [
            "operation",
            "shape",
            "reference (ms)",
            "softmaxkit (ms)",
            "x ref",
            "bound",
            "graph (ms)",
            "graph x ref",
            "graph bound",
        ],
        "rows": rows,
        "notes": notes,
        "extra": {"results": extra, "repeat": repeat},
    }
