"""`softmaxkit softmax` and `softmaxkit pmf`: the probability table and its one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit.cli import main
from softmaxkit.cli._table import format_odds, probability_table

CAT_DOG_ELEPHANT = """\
label     probability  percent    odds
--------  -----------  -------  ------
cat             0.659   65.90%  1.93:1
dog            0.2424   24.24%  1:3.12
elephant      0.09857    9.86%  1:9.15
"""

VEHICLES = """\
label    probability  percent  odds
-------  -----------  -------  ----
bicycle          0.1   10.00%   1:9
truck            0.3   30.00%   3:7
car              0.6   60.00%   3:2
"""


def run(argv: list[str]) -> int:
    """``main(argv)``'s exit status, whether it returns it or argparse raises SystemExit."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code or 0)


def test_softmax_table_for_cat_dog_elephant(capsys):
    assert run(["softmax", "2.0", "1.0", "0.1", "--labels", "cat,dog,elephant"]) == 0
    out, err = capsys.readouterr()
    assert out == CAT_DOG_ELEPHANT and err == ""


def test_pmf_table_for_vehicle_counts(capsys):
    assert run(["pmf", "100", "300", "600", "--labels", "bicycle,truck,car"]) == 0
    out, err = capsys.readouterr()
    assert out == VEHICLES and err == ""


def test_softmax_temperature_option(capsys):
    assert run(["softmax", "2.0", "1.0", "0.1", "--temperature", "2", "--labels", "a,b,c"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    expected = sk.softmax(np.array([2.0, 1.0, 0.1]), temperature=2.0)
    np.testing.assert_allclose([float(r.split()[1]) for r in rows], expected, rtol=1e-3)


def test_labels_default_to_positions(capsys):
    assert run(["softmax", "0", "0"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [r.split()[0] for r in rows] == ["0", "1"]
    assert all(r.split()[1:] == ["0.5", "50.00%", "1:1"] for r in rows)


def test_negative_and_infinite_scores_are_values_not_options(capsys):
    assert run(["softmax", "2", "-1e30", "-inf", "inf", "--labels", "a,b,c,d"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [r.split()[1] for r in rows] == ["0", "0", "0", "1"]


@pytest.mark.parametrize(
    "p, odds",
    [
        (0.1, "1:9"),
        (0.2, "1:4"),
        (0.7, "7:3"),
        (0.5, "1:1"),
        (0.6, "3:2"),
        (0.0, "0:1"),
        (1.0, "1:0"),
        (0.659, "1.93:1"),
        (0.2424, "1:3.13"),
    ],
)
def test_odds_against(p, odds):
    assert format_odds(p) == odds


def test_table_rows_follow_the_labels():
    table = probability_table(["x", "y"], [0.25, 0.75])
    assert table.splitlines()[2].split() == ["x", "0.25", "25.00%", "1:3"]
    assert table.splitlines()[3].split() == ["y", "0.75", "75.00%", "3:1"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["softmax", "2.0", "x", "0.1"], "`scores` must be numbers; value 2 is 'x'"),
        (["softmax", "1", "nan"], "`scores` must be numbers; value 2 is 'nan'"),
        (["softmax", "1", "2", "--labels", "a,b,c"], "`--labels` must name each of the 2 values"),
        (["softmax", "1", "2", "--temperature", "0"], "--temperature: must be finite and > 0"),
        (["softmax", "1", "2", "--temperature", "warm"], "--temperature: must be a number"),
        (["pmf", "100", "3OO"], "`counts` must be numbers; value 2 is '3OO'"),
        (["pmf", "1", "-1"], "`counts` must be finite and >= 0; value 2 is '-1'"),
        (["pmf", "0", "0"], "`counts` must not all be 0"),
        (["pmf", "1", "2", "--labels", "bicycle"], "`--labels` must name each of the 2 values"),
        (["softmax"], "the following arguments are required: scores"),
        (["softmax", "1", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, message):
    assert run(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert message in err


def _entry_point() -> list[str]:
    script = Path(sys.executable).with_name("softmaxkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "softmaxkit"]


def test_installed_entry_point_runs():
    ok = subprocess.run(
        [*_entry_point(), "pmf", "100", "300", "600", "--labels", "bicycle,truck,car"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and ok.stdout == VEHICLES, ok.stderr
    bad = subprocess.run(
        [*_entry_point(), "softmax", "1", "two"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "softmaxkit softmax: error: `scores` must be numbers; value 2 is 'two'\n"
