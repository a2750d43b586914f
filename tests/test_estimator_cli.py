"""``softmaxkit train --early-stopping --validation-fraction`` and the report's validation curve."""

from __future__ import annotations

import json

import pytest

from softmaxkit import Classifier
from softmaxkit.cli import main


def test_train_with_early_stopping_reports_the_validation_curve_and_best_epoch(tmp_path, capsys):
    argv = ["train", "--early-stopping", "--validation-fraction", "0.2", "--epochs", "4"]
    assert main([*argv, "--hidden", "8", "--out", str(tmp_path)]) == 0
    stdout = capsys.readouterr().out
    assert "validation acc" in stdout and "early stopping: " in stdout
    report = json.loads((tmp_path / "report.json").read_text())
    scores = report["history"]["validation_accuracy"]
    assert len(scores) == report["training"]["n_iter"] == len(report["history"]["loss"])
    assert report["training"]["best_validation_score"] == max(scores)
    assert report["params"]["early_stopping"] is True
    assert report["params"]["validation_fraction"] == 0.2
    model = Classifier.load(tmp_path / "model.npz")
    assert model.early_stopping is True and model.validation_fraction == 0.2
    assert (tmp_path / "learning_curves.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--validation-fraction", "0.2"], "`--validation-fraction` is the part"),
        (["--early-stopping", "--validation-fraction", "1.5"], "must be in (0, 1)"),
    ],
    ids=["without_early_stopping", "out_of_range"],
)
def test_train_refuses_a_validation_fraction_it_cannot_use(tmp_path, capsys, argv, message):
    try:  # argparse exits; a CommandError is returned as the exit status
        code = main(["train", *argv, "--epochs", "1", "--out", str(tmp_path / "o")])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
