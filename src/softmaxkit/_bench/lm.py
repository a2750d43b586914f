"""``softmaxkit bench lm``: every way to train an output layer over many words, on real text.

The model is Bengio et al.'s (2003) neural language model without direct
connections: the :data:`~softmaxkit._bench.lm_corpus.CONTEXT` = 4 previous
words, each embedded in :data:`DIM` = 128 dimensions (a sparse-gradient
embedding), concatenated, one hidden layer of :data:`HIDDEN` = 128 tanh units,
then the output layer under test (:mod:`softmaxkit._bench.lm_methods`).  For
every method the same: the embedding and hidden layer start from the same
seed, the batches (:data:`BATCH` = 256 examples, drawn without replacement
from a fixed shuffle of the training text) come in the same order, the
optimiser is Adagrad with learning rate :data:`LEARNING_RATE` (it takes the
sparse row gradients of the embeddings and of the sampled and hierarchical
layers, so that a step updates only the rows it used), and the budget is the
same: a number of steps or of seconds of training time (evaluation excluded).

Each method trains in its own process (:func:`softmaxkit._bench.measure`, 2
threads), which reports:

* held-out perplexity ``exp(mean -log p(word))`` under the method's own exact
  normalised distribution, at :data:`EVAL_POINTS` points of the budget, on the
  same :data:`EVAL_TOKENS` held-out examples, ``log_prob`` computed a chunk of
  rows at a time (at most 2**22 entries, 16 MB);
* the median wall time of a training step (batch gathering, forward,
  backward, Adagrad update);
* memory, from the resident set (every allocation touched, the kernels' and
  PyTorch's alike; the high-water mark reset before each step's forward pass
  where the kernel allows): the peak during training, evaluations left out;
  the baseline, after the first training step with freed buffers given back
  (:func:`_release_cached_memory`), which holds what persists from step to
  step: data, model, Adagrad's state and the last step's parameter gradients;
  from the second step on, the peak over that baseline of the loss
  computation (forward and backward: activations, the method's buffers and
  temporaries; the new gradients reuse the memory of the old ones, freed by
  ``zero_grad``) and of the whole step (the optimiser's update included); and
  the bytes of one step's parameter gradients, beside them;
* the number of steps taken.
"""

from __future__ import annotations

import ctypes
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import THREADS, format_suite, machine, measure, peak_bytes, reset_peak, resident_bytes
from .lm_corpus import (
    BLOCK,
    CONTEXT,
    HELD_OUT_EVERY,
    build_corpus,
    examples,
    stdlib_texts,
)

__all__ = ["FILES", "run", "train"]

DIM = 128
HIDDEN = 128
BATCH = 256
LEARNING_RATE = 0.1
# TensorFlow's default; PyTorch's 0 makes the first step of a rarely seen row lr * sign(g)
# in every coordinate, whatever the gradient's size (a jump of ~6 in a rare word's logit).
ADAGRAD_INITIAL = 0.1
SECONDS = 60.0
EVAL_TOKENS = 10_000
EVAL_POINTS = 4
VOCAB = (10_000, 100_000)
QUICK = {"vocab": (500,), "steps": 30, "eval_tokens": 500, "eval_points": 2}
EVAL_ENTRIES = 1 << 22
FILES = ("lm.json", "lm.txt", "lm.png")


def _model(num_classes: int, method: str, counts: np.ndarray, seed: int) -> tuple[Any, Any]:
    import torch
    from torch import nn

    from .lm_methods import METHODS

    torch.manual_seed(seed)
    # V + 1 input rows: the last one pads contexts at the start of a block or file.
    trunk = nn.Sequential(
        nn.Embedding(num_classes + 1, DIM, sparse=True),
        nn.Flatten(),
        nn.Linear(CONTEXT * DIM, HIDDEN),
        nn.Tanh(),
    )
    torch.manual_seed(seed + 1)
    head = METHODS[method](HIDDEN, num_classes, counts, seed)
    return trunk, head


def _release_cached_memory() -> None:
    """Give back what freed buffers leave resident: before the baseline, after an evaluation.

    The kernels' cache of freed outputs (the full softmax's last gradient of the
    logits, an evaluation's last chunks), ``linear_cross_entropy``'s chunk block
    and glibc's freed heap memory stay resident.  Left in the baseline, a step's
    own buffers would be counted as persistent state and their reuse by the next
    step would go unseen; left after an evaluation, the next part of training
    would seem to use memory it never asked for.
    """
    from .. import _kernels
    from .._backends import _torch_linear_ce

    _kernels.set_output_cache(_kernels.set_output_cache(False))  # off empties it; then restore
    _torch_linear_ce.release_workspace()  # linear_cross_entropy's chunk block
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the peak may then include what an evaluation left


def _perplexity(trunk: Any, head: Any, x: Any, y: Any) -> tuple[float, float]:
    """Held-out perplexity and the largest ``|logsumexp(log_prob)|`` of the first chunk."""
    import torch

    rows = max(1, EVAL_ENTRIES // head.num_classes)
    nll = 0.0
    drift = math.nan
    trunk.eval()
    head.eval()
    with torch.no_grad():
        for start in range(0, int(y.shape[0]), rows):
            logp = head.log_prob(trunk(x[start : start + rows]))
            target = y[start : start + rows, None]
            nll -= float(logp.gather(1, target).double().sum())
            if start == 0:
                drift = float(torch.logsumexp(logp.double(), 1).abs().max())
    trunk.train()
    head.train()
    mean = nll / int(y.shape[0])
    return (math.exp(mean) if mean < 700 else math.inf), drift


def train(
    method: str,
    data: str,
    seed: int,
    steps: int | None,
    seconds: float | None,
    eval_points: int,
) -> dict[str, Any]:
    """Run in a method's own process: train on the examples in ``data`` (an ``.npz``), measure."""
    import torch

    torch.set_num_threads(THREADS)
    with np.load(data) as z:
        arrays = {k: z[k].astype(np.int64, copy=False) for k in z.files}
    counts = arrays["counts"]
    num_classes = int(counts.size)
    x_train = torch.from_numpy(arrays["x_train"])
    y_train = torch.from_numpy(arrays["y_train"])
    x_eval = torch.from_numpy(arrays["x_eval"])
    y_eval = torch.from_numpy(arrays["y_eval"])
    trunk, head = _model(num_classes, method, counts, seed)
    params = [*trunk.parameters(), *head.parameters()]
    optimizer = torch.optim.Adagrad(
        params, lr=LEARNING_RATE, initial_accumulator_value=ADAGRAD_INITIAL
    )
    order_rng = np.random.default_rng(seed)  # the batch order: the same for every method
    order = torch.from_numpy(order_rng.permutation(int(y_train.shape[0])))
    offset = 0

    # Where the budget (steps, or seconds of training) is evaluated: evenly, the end included.
    budget = float(steps if steps is not None else seconds or 0.0)
    marks: list[float] = [budget * (i + 1) / eval_points for i in range(eval_points)]
    if steps is not None:
        marks = [float(math.ceil(m)) for m in marks]

    # One forward and backward pass on a few examples (no update: the parameters stay as
    # they are) loads what the libraries set up lazily, which is not the method's memory.
    head.loss(trunk(x_train[:8]), y_train[:8]).backward()
    optimizer.zero_grad(set_to_none=True)
    warmup_baseline = resident_bytes()
    reset_peak()
    # Memory (see the module): `baseline` is taken after the first training step, once the
    # state that persists from step to step exists; from the second step on, the peak of the
    # loss computation (forward and backward) and of the whole step, update included.
    baseline = -1
    train_peak = loss_peak = step_peak = 0
    times: list[float] = []
    curve: list[dict[str, float]] = []
    trained = 0.0
    loss_value = math.nan
    diverged = False
    grad_bytes = 0
    while marks:
        start = time.perf_counter()
        if offset + BATCH > order.numel():
            order = torch.from_numpy(order_rng.permutation(int(y_train.shape[0])))
            offset = 0
        idx = order[offset : offset + BATCH]
        offset += BATCH
        optimizer.zero_grad(set_to_none=True)
        xb, yb = x_train[idx], y_train[idx]
        probe = time.perf_counter()  # the memory probes' own time is left out of the step's
        reset_peak()
        probing = time.perf_counter() - probe
        loss = head.loss(trunk(xb), yb)
        loss.backward()
        probe = time.perf_counter()
        after_loss = peak_bytes()
        probing += time.perf_counter() - probe
        optimizer.step()
        probe = time.perf_counter()
        after_step = peak_bytes()
        times.append(probe - start - probing)
        trained += times[-1]
        train_peak = max(train_peak, after_step)
        if baseline >= 0:
            loss_peak = max(loss_peak, after_loss)
            step_peak = max(step_peak, after_step)
        loss_value = float(loss.detach())
        del loss
        if len(times) == 1:
            grad_bytes = sum(
                (p.grad._values() if p.grad.is_sparse else p.grad).nbytes
                for p in params
                if p.grad is not None
            )
            _release_cached_memory()
            baseline = resident_bytes()
        diverged = not math.isfinite(loss_value)
        done = len(times) if steps is not None else trained
        if diverged or done >= marks[0]:
            marks.pop(0)
            ppl, drift = (
                (math.inf, math.nan) if diverged else _perplexity(trunk, head, x_eval, y_eval)
            )
            curve.append({"step": len(times), "seconds": trained, "perplexity": ppl})
            _release_cached_memory()
            if diverged:
                break
    measured = len(times) > 1
    return {
        "method": method,
        "settings": head.settings(),
        "steps": len(times),
        "train_seconds": trained,
        "ms_per_step": 1e3 * statistics.median(times),
        "perplexity": curve[-1]["perplexity"],
        "curve": curve,
        "final_loss": loss_value,
        "diverged": diverged,
        "normalisation_error": drift,
        "peak_rss_bytes": train_peak,
        "baseline_bytes": baseline,
        "loss_extra_bytes": loss_peak - baseline if measured else math.nan,
        "step_extra_bytes": step_peak - baseline if measured else math.nan,
        "grad_bytes": grad_bytes,
        "warmup_baseline_bytes": warmup_baseline,
        "peak_extra_over_warmup_bytes": train_peak - warmup_baseline,
        "output_parameters": sum(p.numel() for p in head.parameters()),
    }


def train_all(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Run in one process: every :func:`train` call of a ``--quick`` run (one torch import)."""
    results = []
    for call in calls:
        try:
            results.append(train(**call))
        except Exception as exc:  # one method's failure is reported, the others still run
            results.append({"error": f"{type(exc).__name__}: {exc}"})
    return {"results": results}


def _ratio(a: Any, b: Any) -> float:
    try:
        return float(a) / float(b)
    except (TypeError, ValueError, ZeroDivisionError):
        return math.nan


def _mb(n: Any) -> float:
    return math.nan if n is None else float(n) / 1e6  # None: NaN, as the JSON writes it


def _table(vocab: dict[str, Any]) -> dict[str, Any]:
    results = vocab["results"]
    full = results.get("full softmax", {})
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append([name, *[math.nan] * 12])
            continue
        rows.append(
            [
                name,
                r["steps"],
                r["ms_per_step"],
                _ratio(r["ms_per_step"], full.get("ms_per_step")),
                r["perplexity"],
                _ratio(r["perplexity"], full.get("perplexity")),
                _mb(r["peak_rss_bytes"]),
                _mb(r["baseline_bytes"]),
                _mb(r["loss_extra_bytes"]),
                _ratio(r["loss_extra_bytes"], full.get("loss_extra_bytes")),
                _mb(r["step_extra_bytes"]),
                _ratio(r["step_extra_bytes"], full.get("step_extra_bytes")),
                _mb(r["grad_bytes"]),
            ]
        )
    notes = [f"{name}: {r['error']}" for name, r in results.items() if "error" in r]
    return {
        "suite": "lm",
        "title": (
            f"V={vocab['num_classes']} (asked {vocab['asked']}): {vocab['train_tokens']} training "
            f"examples, perplexity on {vocab['eval_tokens']} held-out ones "
            f"({100 * vocab['unknown_rate']:.1f}% of held-out words unknown)"
        ),
        "columns": [
            "method",
            "steps",
            "ms/step",
            "x full",
            "perplexity",
            "x full",
            "peak RSS (MB)",
            "baseline (MB)",
            "loss extra (MB)",
            "x full",
            "step extra (MB)",
            "x full",
            "grads (MB)",
        ],
        "rows": rows,
        "notes": notes,
    }


def _figure(runs: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.figure import Figure

    from .._atomic import atomic_save_figure

    fig = Figure(figsize=(6.5 * len(runs), 4.8))
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    for ax, vocab in zip(axes, runs, strict=True):
        for name, r in vocab["results"].items():
            if "error" in r:
                continue
            t = [p["seconds"] for p in r["curve"]]
            ppl = [p["perplexity"] for p in r["curve"]]
            ax.plot(t, ppl, marker="o", label=name)
        ax.set_yscale("log")
        ax.set(
            xlabel="training time (s, evaluation excluded)",
            ylabel="held-out perplexity",
            title=f"V = {vocab['num_classes']}",
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.suptitle("softmaxkit bench lm: held-out perplexity against training time")
    atomic_save_figure(fig, path, dpi=110, bbox_inches="tight")


def _train(
    calls: list[dict[str, Any]], quick: bool, num_classes: int, echo: Callable[[str], Any]
) -> dict[str, Any]:
    """``{method: result}``: each call in a process of its own (``quick``: all in one)."""
    began = time.perf_counter()
    if quick:
        done = measure("softmaxkit._bench.lm:train_all", timeout=600.0, calls=calls)
        answers = done.get("results", [done] * len(calls))
    else:
        answers = []
    results: dict[str, Any] = {}
    for i, call in enumerate(calls):
        if not quick:
            began = time.perf_counter()
            answers.append(measure("softmaxkit._bench.lm:train", timeout=3600.0, **call))
        r = results[call["method"]] = answers[i]
        said = (
            f"error: {r['error']}"
            if "error" in r
            else f"{r['steps']} steps, {r['ms_per_step']:.1f} ms/step, "
            f"perplexity {r['perplexity']:.1f}"
        )
        took = "" if quick else f" ({time.perf_counter() - began:.0f} s)"
        echo(f"  V={num_classes} {call['method']}: {said}{took}")
    return results


def run(
    *,
    texts: Sequence[tuple[str, str]] | None,
    out: Path,
    vocab: Sequence[int] | None = None,
    steps: int | None = None,
    seconds: float | None = None,
    quick: bool = False,
    seed: int = 0,
    echo: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Train every method at every vocabulary size; print, and write :data:`FILES` into ``out``."""
    from .._atomic import atomic_write_text
    from . import format_machine, write_json
    from .lm_methods import METHODS

    if steps is None and seconds is None:
        if quick:
            steps = int(QUICK["steps"])  # type: ignore[call-overload]
        else:
            seconds = SECONDS
    vocab = list(vocab or (QUICK["vocab"] if quick else VOCAB))  # type: ignore[call-overload]
    eval_tokens = int(QUICK["eval_tokens"] if quick else EVAL_TOKENS)  # type: ignore[call-overload]
    eval_points = int(QUICK["eval_points"] if quick else EVAL_POINTS)  # type: ignore[call-overload]
    skipped = 0
    stdlib = texts is None
    if texts is None:
        texts, skipped = stdlib_texts()
        source = "the Python standard library (*.py under sysconfig's stdlib path)"
    else:
        source = ", ".join(name for name, _ in texts)
    # The standard library has empty __init__.py files; an empty --text file is an error.
    corpus = build_corpus(texts, skip_empty=stdlib)  # its errors come before any other work
    info = machine()
    echo(format_machine(info))
    echo(
        f"corpus: {source}: {corpus.files} files, {corpus.tokens} words, {len(corpus.words)} "
        f"distinct; every {HELD_OUT_EVERY}th block of {BLOCK} words held out "
        f"({int(corpus.held_out.sum())} words)"
    )
    methods = list(METHODS)
    budget = f"{steps} steps" if steps is not None else f"{seconds:g} s of training"
    runs = []
    with tempfile.TemporaryDirectory(prefix="softmaxkit-lm-") as tmp:
        for asked in vocab:
            ex = examples(corpus, asked, eval_tokens)
            data = Path(tmp) / f"v{asked}.npz"
            ex.save(data)
            calls = [
                {
                    "method": name,
                    "data": str(data),
                    "seed": seed,
                    "steps": steps,
                    "seconds": seconds,
                    "eval_points": eval_points,
                }
                for name in methods
            ]
            results = _train(calls, quick, ex.num_classes, echo)
            entry: dict[str, Any] = {
                "asked": asked,
                "num_classes": ex.num_classes,
                "train_tokens": int(ex.y_train.size),
                "eval_tokens": int(ex.y_eval.size),
                "held_out_tokens": ex.held_out_tokens,
                "unknown_class": ex.unknown_class,
                "unknown_rate": ex.unknown_rate,
                "results": results,
            }
            entry["table"] = _table(entry)
            runs.append(entry)
            echo("")
            echo(format_suite(entry["table"]))

    notes = [
        f"model: {CONTEXT} previous words, embedded in {DIM} (sparse gradients), concatenated, "
        f"one tanh layer of {HIDDEN}, the output layer; Adagrad lr={LEARNING_RATE} "
        f"(initial accumulator {ADAGRAD_INITIAL}), batch "
        f"{BATCH}; the same seed ({seed}), batch order and budget ({budget}) for every method",
        (
            f"--quick: every method in one process on {THREADS} threads"
            if quick
            else f"each method in its own process on {THREADS} threads"
        )
        + "; ms/step is the median step "
        "(gather, forward, backward, update); 'x full' divides by the full softmax's figure",
        "perplexity: exp of the mean -log p over the held-out examples, p the method's exact "
        "normalised distribution (the full softmax of the layer for sampled and NCE)",
        "peak RSS: resident high-water mark over the training steps (evaluations left out); "
        "baseline: resident memory after the first step, freed buffers given back (the kernels' "
        "output cache emptied, the heap trimmed): data, model, Adagrad's state and that step's "
        "parameter gradients, which stay until the next step's zero_grad(set_to_none=True)",
        "loss extra: the peak over the baseline during forward and backward, second step on: "
        "the loss computation's activations, buffers and temporaries; a dense layer's new "
        "gradient takes the memory zero_grad freed, so grads (one step's parameter gradients, "
        "sparse ones by their values) is not in it and is shown beside it",
        "step extra: the same over the whole step, the update included (Adagrad's dense update "
        "allocates sqrt(state), a temporary the size of each dense parameter)",
    ]
    result = {
        "machine": info,
        "quick": quick,
        "corpus": {
            "source": source,
            "files": corpus.files,
            "unreadable_files": skipped,
            "tokens": corpus.tokens,
            "distinct_words": len(corpus.words),
            "block": BLOCK,
            "held_out_every": HELD_OUT_EVERY,
            "held_out_tokens": int(corpus.held_out.sum()),
        },
        "settings": {
            "context": CONTEXT,
            "dim": DIM,
            "hidden": HIDDEN,
            "batch": BATCH,
            "optimizer": "Adagrad",
            "learning_rate": LEARNING_RATE,
            "initial_accumulator_value": ADAGRAD_INITIAL,
            "steps": steps,
            "seconds": seconds,
            "eval_points": eval_points,
            "eval_tokens": eval_tokens,
            "seed": seed,
            "threads": THREADS,
        },
        "methods": methods,
        "runs": runs,
        "notes": notes,
    }
    text = "\n\n".join([format_machine(info), *(format_suite(r["table"]) for r in runs)])
    text += "\n" + "\n".join(f"  {n}" for n in notes) + "\n"
    echo("\n".join(f"  {n}" for n in notes))
    write_json(out / "lm.json", result)
    atomic_write_text(out / "lm.txt", text)
    _figure(runs, out / "lm.png")
    echo(f"\nwrote {out / 'lm.json'}, {out / 'lm.txt'} and {out / 'lm.png'}")
    return result
