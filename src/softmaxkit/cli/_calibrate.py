"""``softmaxkit calibrate``: fit a temperature on held-out logits and show what it changes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import CommandError

__all__ = ["register"]


def _load(path: str, option: str) -> Any:
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CommandError(f"`{option}` file {path!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise CommandError(
            f"`{option}` must be a NumPy .npy file; reading {path!r}: {exc}"
        ) from None


def _read_inputs(args: argparse.Namespace) -> tuple[Any, Any]:
    import numpy as np

    logits = _load(args.logits, "--logits")
    labels = _load(args.labels, "--labels")
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise CommandError(
            f"`--logits` must hold a 2-D array (samples, classes) with at least 2 classes; "
            f"got shape {logits.shape}"
        )
    if labels.shape != (logits.shape[0],):
        raise CommandError(
            f"`--labels` must hold one label per row of `--logits`, shape ({logits.shape[0]},); "
            f"got shape {labels.shape}"
        )
    if labels.dtype.kind == "f":
        # labels saved from a float array are fine as long as they are whole numbers
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            i = int(np.argmin(whole))
            raise CommandError(
                f"`--labels` must be whole class numbers; position {i} holds {labels[i]!r}"
            )
        labels = labels.astype(np.int64)
    return logits, labels


def _nll(log_probs: Any, labels: Any) -> float:
    import numpy as np

    return float(-np.mean(log_probs[np.arange(labels.shape[0]), labels]))


def _run_calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from .._calibration import expected_calibration_error, fit_temperature, reliability_diagram
    from .._softmax import log_softmax, softmax

    logits, labels = _read_inputs(args)
    if args.n_bins < 1:
        raise CommandError(f"`--n-bins` must be >= 1; got {args.n_bins}")
    temperature = fit_temperature(logits, labels)
    before = softmax(logits.astype(np.float64))
    after = softmax(logits.astype(np.float64), temperature=temperature)

    rows = [("", "before", "after")]
    for name, norm in (
        ("ECE (l1)", "l1"),
        ("RMS calibration error (l2)", "l2"),
        ("MCE (max)", "max"),
    ):
        rows.append(
            (
                name,
                f"{expected_calibration_error(before, labels, n_bins=args.n_bins, norm=norm):.4f}",
                f"{expected_calibration_error(after, labels, n_bins=args.n_bins, norm=norm):.4f}",
            )
        )
    nll_before = _nll(log_softmax(logits.astype(np.float64)), labels)
    nll_after = _nll(log_softmax(logits.astype(np.float64), temperature=temperature), labels)
    rows.append(("negative log-likelihood", f"{nll_before:.4f}", f"{nll_after:.4f}"))
    accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))
    rows.append(("accuracy (unchanged by T)", f"{accuracy:.4f}", f"{accuracy:.4f}"))

    verdict = "over-confident" if temperature > 1 else "under-confident"
    print(f"samples: {logits.shape[0]}, classes: {logits.shape[1]}, bins: {args.n_bins}")
    print(f"temperature: {temperature:.4f} (T > 1: the logits were {verdict}; divide them by T)")
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print(f"{row[0].ljust(widths[0])}  {row[1].rjust(widths[1])}  {row[2].rjust(widths[2])}")

    if args.diagram != "-":
        from matplotlib.figure import Figure

        from .._atomic import atomic_save_figure

        path = Path(args.diagram)
        if not path.parent.is_dir():
            raise CommandError(f"`--diagram` directory {str(path.parent)!r} does not exist")
        figure = Figure(figsize=(10, 5), layout="constrained")
        left, right = figure.subplots(1, 2)
        reliability_diagram(before, labels, n_bins=args.n_bins, ax=left)
        left.set_title(f"before: {left.get_title()}")
        reliability_diagram(after, labels, n_bins=args.n_bins, ax=right)
        right.set_title(f"after T = {temperature:.3g}: {right.get_title()}")
        atomic_save_figure(figure, path, dpi=120)
        print(f"reliability diagram written to {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit a softmax temperature on held-out logits",
        description="Fit the temperature T that minimises the negative log-likelihood of "
        "softmax(logits / T) on held-out data (Guo et al. 2017); print the calibration "
        "error before and after, and write a reliability diagram. Example: softmaxkit "
        "calibrate --logits val_logits.npy --labels val_labels.npy",
    )
    p.add_argument("--logits", required=True, help=".npy file, shape (samples, classes)")
    p.add_argument("--labels", required=True, help=".npy file of class numbers, shape (samples,)")
    p.add_argument("--n-bins", type=int, default=15, help="confidence bins (default 15)")
    p.add_argument(
        "--diagram",
        default="reliability_diagram.png",
        help="where to write the before/after diagram (default reliability_diagram.png; "
        "'-' for none)",
    )
    p.set_defaults(func=_run_calibrate)
