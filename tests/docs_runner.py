"""Run the code blocks of a Markdown page, in order, in one namespace per page.

* ```` ```python ```` blocks run: a block whose first line starts with ``>>>`` is a doctest
  (its output is compared, with NORMALIZE_WHITESPACE and ELLIPSIS); any other is
  executed as a script.
* ```` ```console ```` blocks run their ``$ softmaxkit ...`` lines through
  :func:`softmaxkit.cli.main` in-process and compare what it prints with the lines that
  follow (``...`` matches anything, as in a doctest).
* Blocks fenced otherwise (``text``, ``bash``, ``yaml``) are not run: commands outside the
  library (``make``, ``torchrun``), tables, output.

The page runs in a fresh temporary directory (files it writes disappear), with a
non-interactive matplotlib backend.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```\s*$",
                    re.S | re.M)  # fmt: skip
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


@dataclass
class Block:
    lang: str
    body: str
    line: int  # of the opening fence, 1-based


def blocks(text: str) -> list[Block]:
    out = []
    for m in _FENCE.finditer(text):
        indent = len(m["indent"])
        body = "\n".join(line[indent:] for line in m["body"].splitlines()) + "\n"
        out.append(Block(m["lang"], body, text.count("\n", 0, m.start()) + 1))
    return out


def _run_doctest(block: Block, namespace: dict[str, Any], name: str) -> None:
    test = doctest.DocTestParser().get_doctest(block.body, namespace, name, name, block.line)
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test, out=report.write, clear_globs=False)
    namespace.update(test.globs)  # DocTest works on a copy; later blocks see its names
    if runner.failures:
        raise AssertionError(f"{name}, block at line {block.line}:\n{report.getvalue()}")


def _run_console(block: Block, name: str) -> None:
    from softmaxkit.cli import main

    commands: list[tuple[str, list[str]]] = []
    for line in block.body.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line)
    checker = doctest.OutputChecker()
    for command, expected in commands:
        argv = shlex.split(command.split("  #")[0])
        if argv[0] != "softmaxkit":
            raise AssertionError(f"{name}, line {block.line}: only softmaxkit commands run here")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            status = main(argv[1:])
        want = "\n".join(expected).strip() + "\n"
        got = printed.getvalue()
        if status != 0 or not checker.check_output(want, got, FLAGS):
            raise AssertionError(
                f"{name}, block at line {block.line}: `{command}` exited {status}\n"
                f"expected:\n{want}\ngot:\n{got}"
            )


def run_page(path: Path) -> int:
    """Run every runnable block of ``path``; returns how many ran."""
    text = path.read_text(encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    ran = 0
    previous = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            os.environ.setdefault("MPLBACKEND", "Agg")
            for block in blocks(text):
                if block.lang == "python":
                    if block.body.lstrip().startswith(">>>"):
                        _run_doctest(block, namespace, path.name)
                    else:
                        # Padded so that a traceback gives the line of the page.
                        code = compile("\n" * block.line + block.body, str(path), "exec")
                        exec(code, namespace)
                    ran += 1
                elif block.lang == "console":
                    _run_console(block, path.name)
                    ran += 1
        finally:
            os.chdir(previous)
    return ran
