"""`softmaxkit bench`: every suite runs (quick shapes), the tables and the JSON are well formed.

No timing is asserted: timings belong to the benchmark's output, not to tests.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest

from softmaxkit import _bench
from softmaxkit.cli import main


def test_every_suite_runs_quick_and_writes_one_json(tmp_path):
    path = tmp_path / "bench.json"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "softmaxkit",
            "bench",
            "--quick",
            "--repeat",
            "1",
            "--json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data = json.loads(path.read_text())
    assert [s["suite"] for s in data["suites"]] == list(_bench.SUITES)
    assert data["machine"]["threads"] == _bench.THREADS
    for key in ("cpu", "cores", "numpy", "torch", "softmaxkit_kernels"):
        assert data["machine"][key]
    for suite in data["suites"]:
        assert suite["title"] in out.stdout
        assert suite["rows"], suite["suite"]
        for row in suite["rows"]:
            assert len(row) == len(suite["columns"])
    softmax = next(s for s in data["suites"] if s["suite"] == "softmax")
    contenders = {row[1] for row in softmax["rows"]}
    assert contenders == {
        "copy",
        "softmaxkit",
        "softmaxkit preallocated",
        "tutorial",
        "scipy",
        "torch",
        "softmaxkit (torch)",
        "jax",
        "softmaxkit out=",
        "softmaxkit out=x (in place)",
    }
    assert not [n for n in softmax["notes"] if ":" in n and "error" in n.lower()]
    cross_entropy = next(s for s in data["suites"] if s["suite"] == "cross-entropy")
    assert [row[1] for row in cross_entropy["rows"]] == [
        "copy",
        "softmaxkit",
        "torch",
        "softmaxkit (torch)",
    ]
    assert "peak (MB)" in cross_entropy["columns"]
    assert all(row[-1] is not None for row in cross_entropy["rows"])  # every peak measured
    tensors = next(s for s in data["suites"] if s["suite"] == "torch")
    assert [(row[0], row[2]) for row in tensors["rows"]] == [
        ("softmax", "forward"),
        ("log_softmax", "forward"),
        ("softmax", "forward + backward"),
        ("log_softmax", "forward + backward"),
    ]
    assert all("max_abs_difference" in r for r in tensors["extra"]["results"].values())
    jax_suite = next(s for s in data["suites"] if s["suite"] == "jax")
    assert [row[0] for row in jax_suite["rows"]] == [
        "softmax",
        "log_softmax",
        "value_and_grad mean cross-entropy",
    ]
    for result in jax_suite["extra"]["results"].values():  # every contender ran and agrees
        assert set(result["seconds"]) == {"reference", "softmaxkit", "softmaxkit graph"}
        assert max(result["max_abs_difference"].values()) < 1e-4
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary behind


def test_unknown_suite_is_a_usage_error(capsys):
    assert main(["bench", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "`SUITE` must be one of softmax, cross-entropy" in err and "'nosuch'" in err


def test_repeat_must_be_positive(capsys):
    assert main(["bench", "softmax", "--repeat", "0"]) == 2
    assert "`--repeat` must be at least 1; got 0" in capsys.readouterr().err


def test_format_suite_aligns_columns_and_prints_notes():
    table = _bench.format_suite(
        {
            "suite": "demo",
            "title": "Demo",
            "columns": ["shape", "ms", "ratio"],
            "rows": [["2x3", 1234.4, 0.01234], ["40000x3", 1.5, math.nan]],
            "notes": ["a note"],
        }
    )
    lines = table.splitlines()
    assert lines[0] == "Demo"
    assert lines[1].split() == ["shape", "ms", "ratio"]
    assert lines[3].split() == ["2x3", "1234", "0.0123"]
    assert lines[4].split() == ["40000x3", "1.50", "-"]
    assert len({len(line) for line in lines[1:5]}) == 1  # right-aligned to one width
    assert lines[5] == "  a note"


def test_write_json_turns_nan_into_null(tmp_path):
    path = tmp_path / "out.json"
    _bench.write_json(path, {"a": [1.0, math.nan, math.inf], "b": {"c": 2}})
    assert json.loads(path.read_text()) == {"a": [1.0, None, None], "b": {"c": 2}}
    assert os.listdir(tmp_path) == ["out.json"]


def test_median_seconds_calls_the_function_at_least_repeat_times():
    calls = []
    seconds = _bench.median_seconds(lambda: calls.append(1), repeat=5, warmup=1)
    assert seconds > 0 and len(calls) >= 1 + 1 + 5


def test_paired_medians_times_every_function_in_rounds():
    calls: dict[str, int] = {"a": 0, "b": 0}

    def count(name):
        def fn():
            calls[name] += 1
            time.sleep(1e-4)

        return fn

    seconds = _bench.paired_medians({n: count(n) for n in calls}, repeat=4, warmup=1)
    assert set(seconds) == {"a", "b"} and all(s > 0 for s in seconds.values())
    assert all(c >= 1 + 1 + 4 for c in calls.values())


def test_measure_reports_a_failing_contender_instead_of_stopping():
    result = _bench.measure(
        "softmaxkit._bench.softmax:contender", name="nosuch", shape=[2, 2], axis=-1, repeat=1
    )
    assert set(result) == {"error"} and "ValueError" in result["error"]


@pytest.mark.parametrize("name", sorted(_bench.SUITES))
def test_every_suite_module_exposes_run(name):
    import importlib

    module = importlib.import_module(_bench.SUITES[name])
    assert callable(module.run)
