"""``softmaxkit bench``: the side-by-side benchmark of every suite, as tables and JSON."""

from __future__ import annotations

import argparse

from . import CommandError
from ._paths import check_output_file

__all__ = ["register"]


def _run_bench(args: argparse.Namespace) -> int:
    from .._bench import SUITES, run_suites, write_json

    names = args.suites or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise CommandError(
            f"`SUITE` must be one of {', '.join(SUITES)}; got {', '.join(map(repr, unknown))}"
        )
    if args.repeat is not None and args.repeat < 1:
        raise CommandError(f"`--repeat` must be at least 1; got {args.repeat}")
    # Before the suites run (minutes): where the results go must be writable.
    json_path = check_output_file(args.json, "--json")
    results = run_suites(names, quick=args.quick, repeat=args.repeat)
    write_json(json_path, results)
    print(f"\nwrote {args.json}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="time softmaxkit against its peers and the memory limit",
        description=(
            "Time softmaxkit against the tutorial formula, SciPy, PyTorch and JAX, and "
            "against numpy.copyto of the same bytes (the memory limit), on 2 threads: "
            "each contender in its own process, except the torch suite, which times "
            "softmaxkit and PyTorch on the same tensors in one process, alternating; "
            "print tables and write JSON."
        ),
    )
    parser.add_argument(
        "suites", nargs="*", metavar="SUITE", help="suites to run (default: every suite)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a smoke test")
    parser.add_argument("--repeat", type=int, default=None, help="timed calls per contender")
    parser.add_argument(
        "--json",
        default="bench-results.json",
        metavar="PATH",
        help="where to write the results (default: bench-results.json)",
    )
    parser.set_defaults(func=_run_bench)
