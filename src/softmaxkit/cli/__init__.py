"""The ``softmaxkit`` command line.

Each command group lives in its own module with a ``register(subparsers)``
function; :data:`COMMAND_MODULES` lists them in the order ``--help`` shows.
Heavy imports happen inside the commands, so ``softmaxkit --help`` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from .._errors import SoftmaxkitError

__all__ = ["COMMAND_MODULES", "CommandError", "main"]

COMMAND_MODULES = (
    "softmaxkit.cli._core",
    "softmaxkit.cli._bench",
    "softmaxkit.cli._train",
    "softmaxkit.cli._calibrate",
)


class CommandError(Exception):
    """A usage error found by a command: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="softmaxkit",
        description="The softmax family from the command line.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CommandError, SoftmaxkitError) as exc:
        print(f"softmaxkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The paths are checked before the work, but a disk can still fill up or a file
        # vanish meanwhile: say so in one line rather than with a traceback.
        print(f"softmaxkit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
