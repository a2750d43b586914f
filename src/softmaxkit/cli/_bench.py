"""``softmaxkit bench``: the side-by-side benchmark of every suite, as tables and JSON."""

from __future__ import annotations

import argparse

from . import CommandError
from ._paths import (
    check_output_file,
    finite_positive_float,
    positive_int,
    prepare_output_dir,
    read_text,
)

__all__ = ["register"]

# The options of `bench lm` (a comparison of its own, not a timing suite): dest -> (flag, default).
_LM_OPTIONS = {
    "text": ("--text", None),
    "vocab": ("--vocab", None),
    "steps": ("--steps", None),
    "seconds": ("--seconds", None),
    "out": ("--out", "bench-lm"),
    "seed": ("--seed", 0),
}


def _vocab_sizes(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        try:
            size = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be whole numbers separated by commas; got {text!r}"
            ) from None
        if size < 2:
            raise argparse.ArgumentTypeError(f"each size must be >= 2; got {part!r}")
        sizes.append(size)
    return sizes


def _run_lm(args: argparse.Namespace) -> int:
    if args.json is not None:
        raise CommandError("`--json` is for the timing suites; `bench lm` writes into `--out`")
    if args.repeat is not None:
        raise CommandError("`--repeat` is for the timing suites; `bench lm` takes `--steps`")
    from .._bench.lm import FILES, run

    # Before the training (minutes): the output folder must be writable, the texts readable.
    out = prepare_output_dir(args.out, "--out", FILES)
    texts = [(path, read_text(path, "--text")) for path in args.text] if args.text else None
    run(
        texts=texts,
        out=out,
        vocab=args.vocab,
        steps=args.steps,
        seconds=args.seconds,
        quick=args.quick,
        seed=args.seed,
    )
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    from .._bench import SUITES, run_suites, write_json

    if "lm" in args.suites:
        if args.suites != ["lm"]:
            raise CommandError("`lm` runs alone: `softmaxkit bench lm [options]`")
        return _run_lm(args)
    given = [
        flag for dest, (flag, default) in _LM_OPTIONS.items() if getattr(args, dest) != default
    ]
    if given:
        raise CommandError(f"`{given[0]}` is an option of `softmaxkit bench lm`")
    names = args.suites or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise CommandError(
            f"`SUITE` must be one of {', '.join(SUITES)}; got {', '.join(map(repr, unknown))}"
        )
    if args.repeat is not None and args.repeat < 1:
        raise CommandError(f"`--repeat` must be at least 1; got {args.repeat}")
    # Before the suites run (minutes): where the results go must be writable.
    path = args.json if args.json is not None else "bench-results.json"
    json_path = check_output_file(path, "--json")
    results = run_suites(names, quick=args.quick, repeat=args.repeat)
    write_json(json_path, results)
    print(f"\nwrote {path}")
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
            "print tables and write JSON.  `softmaxkit bench lm` is the comparison of "
            "output layers on real text (a language model trained once per method: full "
            "softmax, linear cross-entropy, sampled softmax, NCE, hierarchical and adaptive "
            "softmax); it runs alone and writes a table, JSON and a plot into --out."
        ),
    )
    parser.add_argument(
        "suites",
        nargs="*",
        metavar="SUITE",
        help="suites to run (default: every suite), or lm alone",
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a smoke test")
    parser.add_argument("--repeat", type=int, default=None, help="timed calls per contender")
    parser.add_argument(
        "--json",
        default=None,
        metavar="PATH",
        help="where to write the results (default: bench-results.json)",
    )
    lm = parser.add_argument_group("bench lm")
    lm.add_argument(
        "--text",
        nargs="+",
        metavar="PATH",
        help="plain-text (UTF-8) files to train and evaluate on (default: the running "
        "Python's standard library source)",
    )
    lm.add_argument(
        "--vocab",
        type=_vocab_sizes,
        metavar="V[,V...]",
        help="vocabulary sizes, comma-separated (default: 10000,100000; --quick: 500)",
    )
    budget = lm.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps", type=positive_int, help="training steps per method (default with --quick: 30)"
    )
    budget.add_argument(
        "--seconds",
        type=finite_positive_float,
        help="seconds of training per method, evaluation excluded (default: 60)",
    )
    lm.add_argument(
        "--out",
        default=_LM_OPTIONS["out"][1],
        metavar="DIR",
        help="folder for lm.json, lm.txt and lm.png (default: bench-lm)",
    )
    lm.add_argument(
        "--seed", type=int, default=0, help="initialisation, batch order and samples (default: 0)"
    )
    parser.set_defaults(func=_run_bench)
