"""The probability table every command prints: label, probability, percent, odds."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

__all__ = ["format_odds", "probability_table"]


def format_odds(p: float) -> str:
    """The odds as ``for:against``: 0.1 -> ``1:9`` (one chance for, nine against), 0.7 -> ``7:3``.

    Probabilities that are a fraction with a small denominator give whole
    numbers; others give one side as 1 and the other to three figures
    (0.659 -> ``1.93:1``).
    """
    if p <= 0:
        return "0:1"
    if p >= 1:
        return "1:0"
    frac = Fraction(p).limit_denominator(20)
    if 0 < frac < 1 and abs(float(frac) - p) <= 1e-9:
        return f"{frac.numerator}:{frac.denominator - frac.numerator}"
    if p >= 0.5:
        return f"{p / (1 - p):.3g}:1"
    return f"1:{(1 - p) / p:.3g}"


def probability_table(labels: Sequence[str], probs: Sequence[float]) -> str:
    """A plain-text table, one row per label, in the order given."""
    header = ("label", "probability", "percent", "odds")
    rows = [
        (str(label), f"{p:.4g}", f"{100 * p:.2f}%", format_odds(p))
        for label, p in zip(labels, probs, strict=True)
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
