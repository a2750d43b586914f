"""The ``softmaxkit bench`` runner: suites, timing helpers, tables and JSON.

A suite is a module with ``run(*, quick=False, repeat=None) -> dict`` returning
``{"suite", "title", "columns", "rows", "notes", "extra"}``; :data:`SUITES`
maps each name to its module, imported only when the suite runs.  Contenders
are timed each in a process of its own (:func:`measure`), so that one
library's thread pool, allocator or JIT cache cannot slow another down, and
every process is limited to :data:`THREADS` threads.  Contenders that share
one library (PyTorch against softmaxkit on PyTorch tensors) are instead timed
side by side in one process (:func:`paired_medians`).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "SUITES",
    "THREADS",
    "format_bound",
    "format_suite",
    "machine",
    "measure",
    "median_seconds",
    "paired_medians",
    "peak_bytes",
    "reset_peak",
    "resident_bytes",
    "run_suites",
    "thread_env",
    "write_json",
]

SUITES: dict[str, str] = {
    "softmax": "softmaxkit._bench.softmax",
    "cross-entropy": "softmaxkit._bench.cross_entropy",
    "linear-ce": "softmaxkit._bench.linear_ce",
    "sampling": "softmaxkit._bench.sampling",
    "torch": "softmaxkit._bench.tensors",
    "jax": "softmaxkit._bench.jax_arrays",
    "estimator": "softmaxkit._bench.estimator",
    "sparse": "softmaxkit._bench.sparse",
}

THREADS = 2

_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "SOFTMAXKIT_NUM_THREADS",
)


def thread_env(threads: int = THREADS) -> dict[str, str]:
    """The environment of a contender's process: every thread pool limited to ``threads``."""
    env = dict(os.environ)
    for name in _THREAD_VARIABLES:
        env[name] = str(threads)
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _batch_size(fn: Callable[[], Any]) -> int:
    """How many calls of ``fn`` make one sample: 1, or enough for 0.5 ms if a call is under 50 µs.

    A single ``perf_counter`` pair costs a sizeable part of a call that short.
    """
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    return max(1, min(10_000, int(5e-4 / once))) if once < 5e-5 else 1


def _sample(fn: Callable[[], Any], batch: int) -> float:
    start = time.perf_counter()
    for _ in range(batch):
        fn()
    return (time.perf_counter() - start) / batch


def median_seconds(
    fn: Callable[[], Any], *, repeat: int = 20, warmup: int = 2, budget: float = 20.0
) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls after ``warmup`` calls.

    Stops early (after at least 3 calls) once ``budget`` seconds are spent, so
    that a slow contender on a large shape cannot stall the run.  Calls faster
    than 50 µs are timed in batches, whose mean is one sample, because a single
    ``perf_counter`` pair costs a sizeable part of them.
    """
    return paired_medians({"fn": fn}, repeat=repeat, warmup=warmup, budget=budget)["fn"]


def paired_medians(
    fns: Mapping[str, Callable[[], Any]],
    *,
    repeat: int = 20,
    warmup: int = 2,
    budget: float = 40.0,
) -> dict[str, float]:
    """Median wall time of each of ``fns``, timed side by side in this process.

    Each round takes one sample of every function (batched as in
    :func:`median_seconds`), starting one place further along each round, so
    that a burst of another process's load or a change of clock speed falls on
    every contender alike: the ratio of two medians is a comparison under the
    same conditions.  For contenders that share a library (PyTorch against
    softmaxkit on PyTorch tensors) this is fairer than a process each.  Stops
    early (after at least 3 rounds) once ``budget`` seconds are spent in all.
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    batches = {name: _batch_size(fns[name]) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    spent = 0.0
    rounds = 0
    while rounds < repeat and (rounds < 3 or spent < budget):
        for k in range(len(names)):
            name = names[(rounds + k) % len(names)]
            samples[name].append(_sample(fns[name], batches[name]))
            spent += samples[name][-1] * batches[name]
        rounds += 1
    return {name: statistics.median(samples[name]) for name in names}


def resident_bytes() -> int:
    """This process's resident memory now."""
    import resource  # POSIX only: imported where the memory is measured

    with open("/proc/self/statm", encoding="ascii") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize()


def reset_peak() -> None:
    """Start the kernel's high-water mark of resident memory (VmHWM) afresh, where allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass  # the peak then also covers what happened before the baseline


def peak_bytes() -> int:
    """This process's high-water mark of resident memory since :func:`reset_peak`.

    Resident memory counts every allocation that was touched, PyTorch's CPU
    tensors as well as NumPy's arrays, which a Python-level tracer would miss.
    Where ``VmHWM`` cannot be read, ``ru_maxrss`` (the peak since the start).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def measure(
    target: str, /, *, threads: int = THREADS, timeout: float = 600.0, **kwargs: Any
) -> dict[str, Any]:
    """Run ``module:function(**kwargs)`` in a fresh process and return its JSON result.

    The function must return a JSON-serialisable dict.  A contender that fails
    (a missing library, an out-of-memory kill) gives ``{"error": "..."}`` instead
    of stopping the whole benchmark.
    """
    cmd = [sys.executable, "-m", "softmaxkit._bench._child", target, json.dumps(kwargs)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=thread_env(threads), timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {"error": tail}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _version(module: str) -> str | None:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads: int = THREADS) -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, threads used and library versions."""
    from .. import _kernels

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "torch": _version("torch"),
        "jax": _version("jax"),
        "softmaxkit_kernels": _kernels.describe(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN: a contender that could not run
            return "-"
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def format_bound(value: float | None) -> str:
    """A table cell for a row's target ratio: ``<= 0.7``, or ``-`` where the row has none."""
    return "-" if value is None else f"<= {value:g}"


def format_suite(result: dict[str, Any]) -> str:
    """One suite as an aligned text table under its title, followed by its notes."""
    columns = [str(c) for c in result["columns"]]
    rows = [[_cell(v) for v in row] for row in result["rows"]]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    out = [result.get("title", result["suite"]), line(columns)]
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in rows)
    out.extend(f"  {note}" for note in result.get("notes", ()))
    return "\n".join(out)


def format_machine(info: dict[str, Any]) -> str:
    versions = ", ".join(
        f"{name} {info[name]}" for name in ("numpy", "scipy", "torch", "jax") if info.get(name)
    )
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['threads']} threads used; "
        f"Python {info['python']}, {versions}; kernels: {info['softmaxkit_kernels']}"
    )


def run_suites(
    names: Iterable[str],
    *,
    quick: bool = False,
    repeat: int | None = None,
    echo: Callable[[str], Any] | None = print,
) -> dict[str, Any]:
    """Run the named suites in order and return ``{"machine": ..., "suites": [...]}``."""
    info = machine()
    if echo is not None:
        echo(format_machine(info))
    results = []
    for name in names:
        try:
            module = importlib.import_module(SUITES[name])
        except ModuleNotFoundError as exc:
            # A suite another part of the package has not shipped yet: say so, run the rest.
            if echo is not None:
                echo(f"\n{name}: not available ({exc})")
            continue
        result = module.run(quick=quick, repeat=repeat)
        results.append(result)
        if echo is not None:
            echo("")
            echo(format_suite(result))
    return {"machine": info, "quick": quick, "suites": results}


def _plain(value: Any) -> Any:
    """``value`` with NumPy scalars made Python numbers and NaN/inf made ``None`` (JSON null)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write the results as JSON, atomically (a crash never leaves half a file)."""
    from .._atomic import atomic_write_text

    atomic_write_text(path, json.dumps(_plain(data), indent=2, allow_nan=False) + "\n")
