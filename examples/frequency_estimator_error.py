"""How close FrequencyEstimator's rates come to the truth on a Zipfian stream of ids.

Each step draws a batch of ids from Zipf's law over ``--ids`` items (``P(rank r)
∝ 1 / r**s``), the ids themselves scattered 63-bit integers (no vocabulary); the
estimator is updated once per step.  After ``--steps`` steps its rate
``exp(log_q(id))`` (expected occurrences per step) is compared with the true
``batch * P(id)``, by bands of popularity rank, and weighted by ``P`` (the error
an in-batch negative sees on average).

Run: ``python examples/frequency_estimator_error.py`` (a few seconds).
"""

from __future__ import annotations

import argparse

import numpy as np

from softmaxkit.sampling import FrequencyEstimator


def relative_errors(
    args: argparse.Namespace, num_buckets: int, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(args.seed)
    p = 1.0 / np.arange(1, args.ids + 1) ** args.zipf
    p /= p.sum()
    ids = rng.integers(-(2**63), 2**63 - 1, size=args.ids, dtype=np.int64)
    estimator = FrequencyEstimator(num_buckets, num_hashes=args.hashes, alpha=alpha)
    cdf = np.cumsum(p)
    for step in range(args.steps):
        ranks = np.minimum(np.searchsorted(cdf, rng.random(args.batch), side="right"), args.ids - 1)
        estimator.update(ids[ranks], step)
    rate = np.exp(estimator.log_q(ids))
    return np.abs(rate / (args.batch * p) - 1), p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ids", type=int, default=100_000)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--hashes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bands = [(1, 10), (11, 100), (101, 1000), (1001, 10_000), (10_001, args.ids)]
    print(
        f"{args.ids} ids, Zipf {args.zipf}, batch {args.batch}, {args.steps} steps, "
        f"{args.hashes} hashes: median relative error of the rate by rank"
    )
    header = " | ".join(f"ranks {a}-{b}" for a, b in bands)
    print(f"| buckets | alpha | {header} | P-weighted mean |")
    print("|---:|---:|" + "---:|" * (len(bands) + 1))
    for num_buckets, alpha in ((1 << 20, 0.01), (1 << 17, 0.01), (1 << 14, 0.01), (1 << 20, 0.001)):
        error, p = relative_errors(args, num_buckets, alpha)
        cells = " | ".join(f"{100 * np.median(error[a - 1 : b]):.1f}%" for a, b in bands)
        weighted = float((error * p).sum())
        print(f"| 2^{num_buckets.bit_length() - 1} | {alpha} | {cells} | {100 * weighted:.1f}% |")


if __name__ == "__main__":
    main()
