"""The sampling suite: one training step of full softmax against sampled softmax, and quality.

Speed: one step of an output layer (forward, backward to the weights, biases
and inputs, SGD update) over V classes, D=128, batch 512, with the full
softmax (every row of the V x D weights is read and updated) against sampled
softmax with ``num_sampled=1024`` and the log-uniform sampler (only the rows of
the labels and the sample are read and updated).  Both are timed on PyTorch
(CPU, float32: ``F.cross_entropy`` with a dense SGD step against
:class:`softmaxkit.torch.SampledSoftmaxLoss` with sparse rows) and on NumPy
(float32, gradients by hand: ``softmaxkit.softmax`` against
``sampled_softmax_value_and_grad``), each contender in its own process.

Quality: a synthetic task with planted structure (each class has a random unit
prototype in D=32; an input is its class's prototype plus Gaussian noise) and
Zipfian class frequencies (``P(k) ∝ 1/(k+1)``), V=10^5.  The same linear
layer is trained for the same steps with the full softmax, with sampled
softmax and the log-uniform sampler, and with sampled softmax and the uniform
sampler, then evaluated with the full softmax (top-1 accuracy on held-out
examples).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from . import THREADS, measure, median_seconds

__all__ = ["quality", "run", "smoke", "step_time"]

DIM, BATCH, NUM_SAMPLED = 128, 512, 1024
SIZES = (10**4, 10**5, 10**6)
QUICK_SIZES = (5000,)
IMPLEMENTATIONS = ("torch", "numpy")
LEARNING_RATE = 0.01  # small: the timed steps must not drive the logits anywhere odd
BATCHES = 4  # steps cycle through these, so that no step repeats the previous one


def _batches(num_classes: int, dim: int, batch: int, seed: int = 0) -> list[tuple[Any, Any]]:
    rng = np.random.default_rng(seed)
    return [
        (
            rng.standard_normal((batch, dim), dtype=np.float32),
            rng.integers(0, num_classes, size=batch),
        )
        for _ in range(BATCHES)
    ]


def _torch_step(kind: str, num_classes: int, dim: int, batch: int, num_sampled: int) -> Any:
    import torch
    import torch.nn.functional as F

    from ..torch import SampledSoftmaxLoss

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    layer = SampledSoftmaxLoss(num_classes, dim, num_sampled, sparse=True, rng=0, reduction="mean")
    opt = torch.optim.SGD(layer.parameters(), lr=LEARNING_RATE)
    data = [
        (torch.from_numpy(x).requires_grad_(), torch.from_numpy(y))
        for x, y in _batches(num_classes, dim, batch)
    ]
    state = {"i": 0}

    def step() -> None:
        x, y = data[state["i"] % BATCHES]
        state["i"] += 1
        opt.zero_grad()
        x.grad = None
        if kind == "full":
            loss = F.cross_entropy(layer.logits(x), y)
        else:
            loss = layer(x, y)
        loss.backward()
        opt.step()

    return step


def _numpy_step(kind: str, num_classes: int, dim: int, batch: int, num_sampled: int) -> Any:
    from .. import softmax
    from .._candidate import sampled_softmax_value_and_grad
    from ..sampling import LogUniformSampler

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((num_classes, dim), dtype=np.float32) / np.sqrt(dim)).astype(
        np.float32
    )
    b = np.zeros(num_classes, dtype=np.float32)
    data = _batches(num_classes, dim, batch)
    sampler = LogUniformSampler(num_classes)
    state = {"i": 0}
    lr = np.float32(LEARNING_RATE)

    def full() -> None:
        x, y = data[state["i"] % BATCHES]
        state["i"] += 1
        g = softmax(x @ w.T + b)  # (B, V): dL/dlogits once the labels are subtracted
        g[np.arange(batch), y] -= 1
        g /= batch
        _d_inputs = g @ w
        w_step = g.T @ x
        w_step *= lr
        w[...] -= w_step
        b[...] -= lr * g.sum(axis=0)

    def sampled() -> None:
        x, y = data[state["i"] % BATCHES]
        state["i"] += 1
        values = sampler.sample(num_sampled, true_classes=y, rng=rng)
        _, grad = sampled_softmax_value_and_grad(w, b, y, x, sampled_values=values)
        np.add.at(w, grad.rows, -lr * grad.d_weights)
        np.add.at(b, grad.rows, -lr * grad.d_biases)

    return full if kind == "full" else sampled


def step_time(
    impl: str, kind: str, num_classes: int, dim: int, batch: int, num_sampled: int, repeat: int
) -> dict[str, Any]:
    """Run in a contender's own process: the median seconds of one training step."""
    make = _torch_step if impl == "torch" else _numpy_step
    step = make(kind, num_classes, dim, batch, num_sampled)
    slow = kind == "full" and num_classes >= 10**5
    # Short steps are timed three times as often: on a shared machine a whole
    # run of them can land in another process's time slice.
    times = repeat if kind == "full" else 3 * repeat
    seconds = median_seconds(step, repeat=times, warmup=1 if slow else 2, budget=20.0)
    return {"seconds": seconds}


def _zipf_task(num_classes: int, dim: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, num_classes + 1)
    p /= p.sum()
    prototypes = rng.standard_normal((num_classes, dim), dtype=np.float32)
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    cdf = np.cumsum(p)

    def draw(n: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = np.minimum(np.searchsorted(cdf, gen.random(n), side="right"), num_classes - 1)
        x = prototypes[y] + (noise / math.sqrt(dim)) * gen.standard_normal((n, dim)).astype(
            np.float32
        )
        return x.astype(np.float32), y

    return draw


def quality(
    num_classes: int,
    dim: int,
    batch: int,
    steps: int,
    num_sampled: int,
    learning_rate: float,
    noise: float,
    test_size: int,
) -> dict[str, Any]:
    """Run in its own process: full-softmax top-1 accuracy of three ways of training."""
    import torch
    import torch.nn.functional as F

    from ..sampling import LogUniformSampler, UniformSampler
    from ..torch import SampledSoftmaxLoss

    torch.set_num_threads(THREADS)
    draw = _zipf_task(num_classes, dim, noise)
    x_test, y_test = draw(test_size, np.random.default_rng(2))
    x_test_t, y_test_t = torch.from_numpy(x_test), torch.from_numpy(y_test)
    samplers = {
        "full": None,
        "log-uniform": LogUniformSampler(num_classes),
        "uniform": UniformSampler(num_classes),
    }
    out: dict[str, Any] = {}
    for name, sampler in samplers.items():
        layer = SampledSoftmaxLoss(
            num_classes, dim, num_sampled, sampler=sampler, sparse=True, rng=3, reduction="sum"
        )
        with torch.no_grad():  # every run starts from the same (zero) layer
            layer.weight.zero_()
        # reduction="sum": `learning_rate` is the step per example
        opt = torch.optim.SGD(layer.parameters(), lr=learning_rate)
        gen = np.random.default_rng(1)  # the same training batches for every run
        start = time.perf_counter()
        for _ in range(steps):
            x, y = (torch.from_numpy(a) for a in draw(batch, gen))
            opt.zero_grad()
            if sampler is None:
                loss = F.cross_entropy(layer.logits(x), y, reduction="sum")
            else:
                loss = layer(x, y)
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            correct = sum(
                int(
                    (layer.logits(x_test_t[i : i + 2048]).argmax(1) == y_test_t[i : i + 2048]).sum()
                )
                for i in range(0, test_size, 2048)
            )
        out[name] = {"accuracy": correct / test_size, "train_seconds": seconds}
    return out


def smoke(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Run in one process: every call of a ``--quick`` run, to pay for one torch import only."""
    results = []
    for call in calls:
        function = quality if call.pop("function") == "quality" else step_time
        results.append(function(**call))
    return {"results": results}


def run(*, quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    sizes = QUICK_SIZES if quick else SIZES
    dim, batch, num_sampled = (16, 64, 128) if quick else (DIM, BATCH, NUM_SAMPLED)
    repeat = repeat or (3 if quick else 10)
    q_args: dict[str, Any] = {
        "num_classes": 2000 if quick else 10**5,
        "dim": 16 if quick else 32,
        "batch": 64 if quick else 256,
        "steps": 20 if quick else 100,
        "num_sampled": 128 if quick else NUM_SAMPLED,
        "learning_rate": 0.4,
        "noise": 0.5,
        "test_size": 1000 if quick else 10000,
    }
    calls: list[dict[str, Any]] = [
        {
            "function": "step_time",
            "impl": impl,
            "kind": kind,
            "num_classes": v,
            "dim": dim,
            "batch": batch,
            "num_sampled": num_sampled,
            "repeat": repeat,
        }
        for v in sizes
        for impl in IMPLEMENTATIONS
        for kind in ("full", "sampled")
    ]
    calls.append({"function": "quality", **q_args})
    if quick:
        done = measure("softmaxkit._bench.sampling:smoke", calls=calls)
        answers = iter(done.get("results", [done] * len(calls)))
    else:
        target = "softmaxkit._bench.sampling:{}"
        answers = iter(
            measure(target.format(c.pop("function")), timeout=1200.0, **c) for c in calls
        )
    rows: list[list[Any]] = []
    errors: list[str] = []
    seconds: dict[str, Any] = {}
    for v in sizes:
        for impl in IMPLEMENTATIONS:
            t: dict[str, float] = {}
            for kind in ("full", "sampled"):
                result = next(answers)
                if "error" in result:
                    errors.append(f"{impl} {kind} at V={v}: {result['error']}")
                    t[kind] = math.nan
                else:
                    t[kind] = result["seconds"]
            seconds[f"{impl} V={v}"] = t
            rows.append([v, impl, t["full"] * 1e3, t["sampled"] * 1e3, t["full"] / t["sampled"]])

    q = next(answers)
    if "error" in q:
        errors.append(f"quality: {q['error']}")
        quality_notes = []
    else:
        full, lu, uni = (100 * q[k]["accuracy"] for k in ("full", "log-uniform", "uniform"))
        quality_notes = [
            f"quality (V={q_args['num_classes']}, Zipfian classes, planted prototypes in "
            f"D={q_args['dim']}, {q_args['steps']} SGD steps of batch {q_args['batch']}, "
            f"num_sampled={q_args['num_sampled']}; top-1 with the full softmax on "
            f"{q_args['test_size']} held-out examples):",
            f"  full softmax {full:.2f}%, sampled log-uniform {lu:.2f}% ({lu - full:+.2f} pt, "
            f"{'within' if abs(lu - full) <= 2 else 'NOT within'} 2 pt), "
            f"sampled uniform {uni:.2f}% ({uni - full:+.2f} pt)",
        ]
    notes = [
        f"one training step (forward, backward, SGD update), D={dim}, batch {batch}, "
        f"num_sampled={num_sampled} (log-uniform, unique); median, each contender in its own "
        f"process on {THREADS} threads",
        "torch: CPU float32, F.cross_entropy + dense SGD vs softmaxkit.torch.SampledSoftmaxLoss "
        "(sparse rows) + SGD; numpy: float32, gradients by hand, softmaxkit.softmax vs "
        "sampled_softmax_value_and_grad + np.add.at on the touched rows",
        "speed-up: full / sampled; sampled steps are timed 3x as often as full ones (--repeat "
        "sets the full ones)",
        *quality_notes,
        *errors,
    ]
    return {
        "suite": "sampling",
        "title": "sampled softmax vs full softmax: one training step",
        "columns": ["V", "impl", "full (ms)", "sampled (ms)", "speed-up"],
        "rows": rows,
        "notes": notes,
        "extra": {"seconds": seconds, "repeat": repeat, "quality": q, "quality_args": q_args},
    }
