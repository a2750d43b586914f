"""``softmaxkit calibrate``: reads .npy files, prints before/after, writes the diagram."""

from __future__ import annotations

import re

import numpy as np
import pytest

from softmaxkit import fit_temperature
from softmaxkit.cli import main


def _files(tmp_path, factor=2.5, n=2000, c=4, labels_dtype=np.int64):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, c)) * 2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    logits_path, labels_path = tmp_path / "logits.npy", tmp_path / "labels.npy"
    np.save(logits_path, factor * z)
    np.save(labels_path, labels.astype(labels_dtype))
    return logits_path, labels_path, factor * z, labels


def test_calibrate_prints_temperature_and_errors_and_writes_diagram(tmp_path, capsys):
    logits_path, labels_path, logits, labels = _files(tmp_path)
    diagram = tmp_path / "out" / "diagram.png"
    diagram.parent.mkdir()
    code = main(
        [
            "calibrate",
            "--logits",
            str(logits_path),
            "--labels",
            str(labels_path),
            "--diagram",
            str(diagram),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    t = float(re.search(r"temperature: ([0-9.]+)", out).group(1))
    assert t == pytest.approx(fit_temperature(logits, labels), abs=1e-4)
    assert t == pytest.approx(2.5, rel=0.05)
    ece_before, ece_after = map(
        float, re.search(r"ECE \(l1\)\s+([0-9.]+)\s+([0-9.]+)", out).groups()
    )
    assert ece_after < ece_before / 3
    assert "over-confident" in out
    assert diagram.stat().st_size > 10_000
    # written atomically: no temporary file left beside it
    assert [p.name for p in diagram.parent.iterdir()] == ["diagram.png"]


def test_calibrate_accepts_whole_float_labels_and_no_diagram(tmp_path, capsys):
    logits_path, labels_path, _, _ = _files(tmp_path, labels_dtype=np.float32)
    code = main(
        ["calibrate", "--logits", str(logits_path), "--labels", str(labels_path), "--diagram", "-"]
    )
    assert code == 0
    assert "written" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing", "`--logits` file .* does not exist"),
        ("labels-shape", r"`--labels` must hold one label per row of `--logits`, shape \(2000,\)"),
        ("labels-fraction", r"`--labels` must be whole class numbers; position 0 holds"),
        ("labels-range", r"`--labels` must be class numbers in \[0, 4\) .*; position 3 holds 7"),
        ("logits-1d", r"`--logits` must hold a 2-D array"),
        ("not-npy", "`--labels` must be a NumPy .npy file"),
    ],
)
def test_calibrate_bad_input_exits_2_with_one_line(tmp_path, capsys, change, message):
    logits_path, labels_path, logits, labels = _files(tmp_path)
    if change == "missing":
        logits_path = tmp_path / "nope.npy"
    elif change == "labels-shape":
        np.save(labels_path, labels[:10])
    elif change == "labels-fraction":
        np.save(labels_path, labels + 0.5)
    elif change == "labels-range":
        labels[3] = 7
        np.save(labels_path, labels)
    elif change == "logits-1d":
        np.save(logits_path, logits[:, 0])
    else:
        labels_path.write_text("not numpy")
    code = main(
        ["calibrate", "--logits", str(logits_path), "--labels", str(labels_path), "--diagram", "-"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert re.search(message, err)
    assert err.count("\n") == 1
