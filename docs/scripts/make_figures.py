"""Draw the figures the documentation pages show, into ``docs/figures/``.

Run by ``make docs`` before the site is built (``python docs/scripts/make_figures.py``);
about 10 s on a 2-core machine.  Every figure comes from the library's own drawing code:

* ``demo_*.png``: ``softmaxkit train --data digits`` (what ``make demo`` runs), whose report
  draws the learning curves, the test examples with their top-5 bars and the reliability
  diagram (``softmaxkit._report``);
* ``attributes_test_examples.png``: ``softmaxkit train --multilabel`` (the logistic head);
* ``calibration_before_after.png``: :func:`softmaxkit.reliability_diagram` of over-confident
  logits before and after :func:`softmaxkit.fit_temperature`;
* ``bench_softmax.png``: the softmax table of ``softmaxkit bench`` as recorded in
  ``docs/data/bench_softmax.json`` (a benchmark is not re-run at every build: its numbers
  depend on the machine and its load; re-measure with ``softmaxkit bench softmax`` and update
  the file).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parents[1]


def _train(args: list[str], out: Path) -> None:
    from softmaxkit.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        status = main(["train", *args, "--out", str(out)])
    if status != 0:
        raise SystemExit(f"softmaxkit train {' '.join(args)} failed with status {status}")


def demo_figures(figures: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        demo, attributes = Path(tmp) / "demo", Path(tmp) / "attributes"
        _train(["--data", "digits"], demo)
        for name in ("learning_curves", "test_examples", "reliability"):
            shutil.copyfile(demo / f"{name}.png", figures / f"demo_{name}.png")
        _train(["--multilabel"], attributes)
        shutil.copyfile(attributes / "test_examples.png", figures / "attributes_test_examples.png")


def calibration_figure(figures: Path) -> None:
    from matplotlib.figure import Figure

    import softmaxkit as sk

    # A calibrated 3-class model (labels drawn from its own softmax), then its logits
    # multiplied by 2.5: over-confident, and fit_temperature should find T near 2.5.
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3000, 3)) * 1.5
    probs = sk.softmax(logits)
    labels = (rng.random((3000, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
    overconfident = 2.5 * logits
    t = sk.fit_temperature(overconfident, labels)
    fig = Figure(figsize=(10, 5))
    before, after = fig.subplots(1, 2)
    sk.reliability_diagram(sk.softmax(overconfident), labels, ax=before)
    sk.reliability_diagram(sk.softmax(overconfident / t), labels, ax=after)
    before.set_title("logits x 2.5 (over-confident)")
    after.set_title(f"divided by the fitted T = {t:.2f}")
    fig.savefig(figures / "calibration_before_after.png", dpi=100, bbox_inches="tight")


def bench_figure(figures: Path) -> None:
    from matplotlib.figure import Figure

    record = json.loads((DOCS / "data" / "bench_softmax.json").read_text())
    names = record["contenders"]
    fig = Figure(figsize=(10, 4.2))
    axes = fig.subplots(1, len(record["rows"]))
    for ax, row in zip(axes, record["rows"], strict=True):
        ratio = np.asarray(row["ms"]) / row["ms"][0]
        colors = ["0.6"] + ["tab:blue"] * 2 + ["tab:orange"] * (len(names) - 3)
        ax.barh(np.arange(len(names)), ratio, color=colors)
        ax.set_yticks(np.arange(len(names)), names if ax is axes[0] else [])
        ax.invert_yaxis()
        ax.set(title=row["shape"], xlabel="time / copy's time")
        for i, (r, ms) in enumerate(zip(ratio, row["ms"], strict=True)):
            ax.text(r, i, f" {ms:g} ms", va="center", fontsize=7)
        ax.set_xlim(0, ratio.max() * 1.35)
    fig.suptitle(f"softmax of float32 arrays ({record['source']})", fontsize=10)
    fig.savefig(figures / "bench_softmax.png", dpi=100, bbox_inches="tight")


def bench_lm_figure(figures: Path) -> None:
    """Held-out perplexity against training time, per method, from the recorded bench lm run."""
    from softmaxkit._bench.lm import _figure

    record = json.loads((DOCS / "data" / "bench_lm.json").read_text())
    _figure(record["runs"], figures / "bench_lm.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS / "figures")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    demo_figures(out)
    calibration_figure(out)
    bench_figure(out)
    bench_lm_figure(out)


if __name__ == "__main__":
    main()
