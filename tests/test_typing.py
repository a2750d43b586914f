"""The public API's types, as a user's type checker sees them (issue 16).

``mypy --strict`` (the venv's) checks two scripts against this checkout's
``softmaxkit``: tests/typing/user_script.py must pass and reveal library types,
not ``Any``; every line of tests/typing/user_errors.py marked ``# error: CODE``
must be flagged with that code, and no other line.  softmaxkit itself is followed
silently, as an installed package would be.  One mypy run serves all the tests
(about 20-25 s with PyTorch's and JAX's stubs, from an empty cache).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

import softmaxkit

pytest.importorskip("mypy")

HERE = Path(__file__).parent / "typing"
GOOD = HERE / "user_script.py"
BAD = HERE / "user_errors.py"
SRC = Path(softmaxkit.__file__).parent.parent  # this checkout's src, not an installed copy
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<text>.*)$")


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[int, str, str]]]:
    """``{file name: [(line, "error"/"note", text)]}`` from one mypy run over both scripts."""
    tmp = tmp_path_factory.mktemp("mypy")
    config = tmp / "mypy.ini"
    config.write_text("[mypy]\n")  # the user's settings, not the project's
    env = {**os.environ, "MYPYPATH": str(SRC)}
    result = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
            "--config-file", str(config), "--cache-dir", str(tmp / "cache"),
            "--no-error-summary", "--show-error-codes", str(GOOD), str(BAD),
        ],
        capture_output=True, text=True, cwd=tmp, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr + result.stdout  # 2: mypy itself failed
    report: dict[str, list[tuple[int, str, str]]] = {GOOD.name: [], BAD.name: []}
    for raw in result.stdout.splitlines():
        m = LINE.match(raw)
        assert m, f"unparsed mypy output: {raw!r}"
        report[Path(m["file"]).name].append((int(m["line"]), m["kind"], m["text"]))
    return report


def test_user_script_type_checks_clean(mypy_report):
    errors = [e for e in mypy_report[GOOD.name] if e[1] == "error"]
    assert errors == []


def test_reveal_type_shows_the_library_array_not_any(mypy_report):
    lines = GOOD.read_text().splitlines()
    revealed = sorted(
        (n, text)
        for n, kind, text in mypy_report[GOOD.name]
        if kind == "note" and text.startswith("Revealed type is")
    )
    calls = [i + 1 for i, s in enumerate(lines) if s.strip().startswith("reveal_type(")]
    assert [n for n, _ in revealed] == calls  # one note per reveal_type
    shown = [text for _, text in revealed]
    assert ["numpy.ndarray" in t for t in shown] == [True, True, False, False]
    assert "torch._tensor.Tensor" in shown[2] and "jax" in shown[3] and "Array" in shown[3]
    assert not any('"Any"' in t for t in shown)


def test_mistakes_are_flagged_with_their_codes(mypy_report):
    expected = {}
    for n, line in enumerate(BAD.read_text().splitlines(), 1):
        marker = re.search(r"# error: ([a-z-]+)$", line)
        if marker:
            expected[n] = marker[1]
    got: dict[int, set[str]] = {}
    for n, kind, text in mypy_report[BAD.name]:
        if kind == "error":
            got.setdefault(n, set()).add(re.findall(r"\[([a-z-]+)\]$", text)[0])
    assert len(expected) >= 10
    assert {n: {code} for n, code in expected.items()} == got


def test_wrong_reduction_is_named_in_the_message(mypy_report):
    line = next(n for n, s in enumerate(BAD.read_text().splitlines(), 1) if 'reduction="avg"' in s)
    (text,) = [t for n, k, t in mypy_report[BAD.name] if n == line and k == "error"]
    assert '"reduction"' in text and "Literal['none', 'mean', 'sum']" in text


def test_user_script_runs_and_returns_what_it_promises():
    """The script's isinstance checks: the types mypy accepted are the types that come back."""
    sys.path.insert(0, str(HERE))
    try:
        import user_script
    finally:
        sys.path.remove(str(HERE))
    user_script.main()


def test_literal_aliases_list_what_the_validators_accept():
    from softmaxkit import typing as skt
    from softmaxkit._calibration import _NORMS
    from softmaxkit._classifier._heads import HEADS
    from softmaxkit._classifier._settings import OPTIMIZERS, SCHEDULES
    from softmaxkit._options import REDUCTIONS
    from softmaxkit.nn._layers import _INITS

    assert set(get_args(skt.Reduction)) == set(REDUCTIONS)
    assert set(get_args(skt.Norm)) == set(_NORMS)
    assert set(get_args(skt.Head)) == set(HEADS)
    assert set(get_args(skt.Optimizer)) == set(OPTIMIZERS)
    assert set(get_args(skt.Schedule)) == set(SCHEDULES)
    assert set(get_args(skt.Init)) == set(_INITS)
    assert skt.ArrayT.__constraints__[0] is np.ndarray and len(skt.ArrayT.__constraints__) == 3


def test_typing_module_imports_no_framework():
    code = "import sys, softmaxkit.typing; print('torch' in sys.modules, 'jax' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["False", "False"], out.stderr
