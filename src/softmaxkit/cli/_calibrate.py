"""``softmaxkit calibrate``: fit a temperature on held-out logits and show what it changes."""

from __future__ import annotations

import argparse
from typing import Any

from .._errors import SoftmaxkitValueError
from .._typing import Norm
from . import CommandError
from ._paths import check_figure_path, load_npy, positive_int

__all__ = ["register"]


def _read_inputs(args: argparse.Namespace) -> tuple[Any, Any]:
    import numpy as np

    logits = load_npy(args.logits, "--logits")
    labels = load_npy(args.labels, "--labels")
    if logits.dtype.kind not in "biuf":
        raise CommandError(f"`--logits` must hold real numbers; got dtype {logits.dtype}")
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
    if labels.dtype.kind not in "iuf":
        raise CommandError(f"`--labels` must hold class numbers; got dtype {labels.dtype}")
    if labels.dtype.kind == "f":
        # labels saved from a float array are fine as long as they are whole numbers
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            i = int(np.argmin(whole))
            raise CommandError(
                f"`--labels` must be whole class numbers; position {i} holds {labels[i]!r}"
            )
    n_classes = logits.shape[1]
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise CommandError(
            f"`--labels` must be class numbers in [0, {n_classes}) (the columns of `--logits`); "
            f"position {i} holds {labels[i].item()!r}"
        )
    return logits, labels.astype(np.int64)


def _nll(log_probs: Any, labels: Any) -> float:
    import numpy as np

    return float(-np.mean(log_probs[np.arange(labels.shape[0]), labels]))


def _run_calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from .._calibration import expected_calibration_error, fit_temperature, reliability_diagram
    from .._softmax import log_softmax, softmax

    # The output path first: a diagram that cannot be written is found before the work.
    diagram = None if args.diagram == "-" else check_figure_path(args.diagram, "--diagram")
    logits, labels = _read_inputs(args)
    if not np.all(np.isfinite(logits)):
        i, j = (int(k) for k in np.argwhere(~np.isfinite(logits))[0])
        raise CommandError(f"`--logits` must be finite; row {i}, column {j} holds {logits[i, j]}")
    try:
        temperature = fit_temperature(logits, labels)
    except SoftmaxkitValueError as exc:
        raise CommandError(
            f"no temperature can be fit to `--logits` and `--labels`: {exc}"
        ) from None
    before = softmax(logits.astype(np.float64))
    after = softmax(logits.astype(np.float64), temperature=temperature)

    rows = [("", "before", "after")]
    norms: tuple[tuple[str, Norm], ...] = (
        ("ECE (l1)", "l1"),
        ("RMS calibration error (l2)", "l2"),
        ("MCE (max)", "max"),
    )
    for name, norm in norms:
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

    if diagram is not None:
        from matplotlib.figure import Figure

        from .._atomic import atomic_save_figure

        path = diagram
        figure = Figure(figsize=(10, 5), layout="constrained")
        left, right = figure.subplots(1, 2)
        reliability_diagram(before, labels, n_bins=args.n_bins, ax=left)
        left.set_title(f"before: {left.get_title()}")
        reliability_diagram(after, labels, n_bins=args.n_bins, ax=right)
        right.set_title(f"after T = {temperature:.3g}: {right.get_title()}")
        try:
            atomic_save_figure(figure, path, dpi=120)
        except OSError as exc:  # e.g. the disk filled up; the tables above are printed already
            raise CommandError(f"`--diagram`: writing {str(path)!r} failed ({exc})") from None
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
    p.add_argument("--n-bins", type=positive_int, default=15, help="confidence bins (default 15)")
    p.add_argument(
        "--diagram",
        default="reliability_diagram.png",
        help="where to write the before/after diagram (default reliability_diagram.png; "
        "'-' for none)",
    )
    p.set_defaults(func=_run_calibrate)
