"""``softmaxkit softmax`` and ``softmaxkit pmf``: one vector in, a probability table out."""

from __future__ import annotations

import argparse
import math

from . import CommandError
from ._table import probability_table

__all__ = ["register"]


def _parse_values(raw: list[str], name: str) -> list[float]:
    values = []
    for i, text in enumerate(raw):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        # A NaN would only turn the whole table into NaN: refuse it like a typo.
        if math.isnan(value):
            raise CommandError(f"`{name}` must be numbers; value {i + 1} is {text!r}")
        values.append(value)
    return values


class _NegativeNumber:
    """Stands in for argparse's negative-number pattern, which knows only ``-1`` and ``-.5``.

    With it ``-1e30`` and ``-inf`` are read as values rather than unknown options.
    """

    @staticmethod
    def match(text: str) -> bool:
        if not text.startswith("-"):
            return False
        try:
            float(text)
        except ValueError:
            return False
        return True


def _parse_labels(raw: str | None, n: int) -> list[str]:
    if raw is None:
        return [str(i) for i in range(n)]
    labels = [s.strip() for s in raw.split(",")]
    if len(labels) != n:
        raise CommandError(f"`--labels` must name each of the {n} values; got {len(labels)} labels")
    return labels


def _run_softmax(args: argparse.Namespace) -> int:
    import numpy as np

    from .._softmax import softmax

    scores = _parse_values(args.scores, "scores")
    labels = _parse_labels(args.labels, len(scores))
    probs = softmax(np.asarray(scores), temperature=args.temperature)
    print(probability_table(labels, probs.tolist()))
    return 0


def _run_pmf(args: argparse.Namespace) -> int:
    import numpy as np

    from .._softmax import pmf_normalize

    counts = _parse_values(args.counts, "counts")
    for i, (value, text) in enumerate(zip(counts, args.counts, strict=True)):
        if not (math.isfinite(value) and value >= 0):
            raise CommandError(f"`counts` must be finite and >= 0; value {i + 1} is {text!r}")
    if not any(counts):
        raise CommandError("`counts` must not all be 0")
    labels = _parse_labels(args.labels, len(counts))
    probs = pmf_normalize(np.asarray(counts))
    print(probability_table(labels, probs.tolist()))
    return 0


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be finite and > 0; got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "softmax",
        help="turn scores into probabilities",
        description="Softmax of the scores, printed as a table of probabilities and odds. "
        "Example: softmaxkit softmax 2.0 1.0 0.1 --labels cat,dog,elephant",
    )
    p._negative_number_matcher = _NegativeNumber()  # type: ignore[attr-defined]
    p.add_argument("scores", nargs="+", help="the scores (logits), e.g. 2.0 1.0 0.1")
    p.add_argument("--labels", help="comma-separated names, one per score")
    p.add_argument("--temperature", type=_temperature, default=1.0, help="T > 0 (default 1)")
    p.set_defaults(func=_run_softmax)

    p = sub.add_parser(
        "pmf",
        help="turn counts into probabilities",
        description="Counts divided by their total, printed as a table of probabilities "
        "and odds. Example: softmaxkit pmf 100 300 600 --labels bicycle,truck,car",
    )
    p._negative_number_matcher = _NegativeNumber()  # type: ignore[attr-defined]
    p.add_argument("counts", nargs="+", help="non-negative counts, e.g. 100 300 600")
    p.add_argument("--labels", help="comma-separated names, one per count")
    p.set_defaults(func=_run_pmf)
