"""``softmaxkit train`` and ``softmaxkit predict`` end to end on tiny runs into tmp_path."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from softmaxkit import Classifier
from softmaxkit.cli import main
from softmaxkit.cli._train import _Progress

PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = ["confusion_matrix.png", "learning_curves.png", "reliability.png", "test_examples.png"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One tiny digits run (2 epochs) shared by the tests that read its output."""
    out = tmp_path_factory.mktemp("run")
    capture = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(capture):
        code = main(["train", "--epochs", "2", "--seed", "1", "--out", str(out)])
    return out, code, capture.getvalue()


def test_train_writes_model_report_and_figures(digits_run):
    out, code, stdout = digits_run
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(["model.npz", "report.json", *FIGURES])
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == PNG
    assert "epoch 1/2  loss" in stdout and "epoch 2/2" in stdout  # plain lines, not a TTY
    assert "test accuracy: " in stdout
    assert str(out / "learning_curves.png") in stdout


def test_report_holds_accuracy_precision_recall_log_loss_and_ece(digits_run):
    out, _, stdout = digits_run
    report = json.loads((out / "report.json").read_text())
    test = report["test"]
    model = Classifier.load(out / "model.npz")
    from softmaxkit.data import load_digits

    data = load_digits()
    assert test["accuracy"] == pytest.approx(model.score(data.X_test, data.y_test))
    assert f"{test['accuracy']:.2%}" in stdout
    assert sorted(test["per_class"]) == [str(d) for d in range(10)]
    assert {"precision", "recall", "support"} <= set(test["per_class"]["3"])
    assert sum(c["support"] for c in test["per_class"].values()) == 449
    probs = model.predict_proba(data.X_test)
    expected = -np.mean(np.log(probs[np.arange(449), data.y_test]))
    assert test["log_loss"] == pytest.approx(expected, rel=1e-9)
    assert 0 <= test["expected_calibration_error"] <= 1
    assert len(report["history"]["loss"]) == 2
    assert model.get_params()["seed"] == 1


def test_predict_prints_the_probability_table(digits_run, capsys):
    out, _, _ = digits_run
    assert main(["predict", str(out / "model.npz"), "--index", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("test example 3 of digits (true: ")
    assert lines[1].split() == ["label", "probability", "percent", "odds"]
    rows = lines[3:13]
    assert [row.split()[0] for row in rows] == [str(d) for d in range(10)]
    assert sum(float(row.split()[1]) for row in rows) == pytest.approx(1.0, abs=1e-3)
    assert lines[13].startswith("predicted: ")


def test_predict_with_a_bad_index_or_damaged_model_exits_2(digits_run, tmp_path, capsys):
    out, _, _ = digits_run
    assert main(["predict", str(out / "model.npz"), "--index", "449"]) == 2
    assert "`--index` must be in [0, 449)" in capsys.readouterr().err
    damaged = tmp_path / "model.npz"
    damaged.write_bytes((out / "model.npz").read_bytes()[:1000])
    assert main(["predict", str(damaged), "--index", "0"]) == 2
    assert "not a readable softmaxkit model file" in capsys.readouterr().err


def test_multilabel_run_and_its_prediction(tmp_path, capsys):
    code = main(
        ["train", "--multilabel", "--epochs", "1", "--hidden", "16", "--out", str(tmp_path)]
    )
    assert code == 0
    stdout = capsys.readouterr().out
    assert "test accuracy (every label right)" in stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert sorted(report["test"]["per_class"]) == sorted(
        ["even", "greater than 4", "prime", "round"]
    )
    assert "label_accuracy" in report["test"]
    assert main(["predict", str(tmp_path / "model.npz"), "--index", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [row.split()[0] for row in lines[3:7]] == ["even", "greater", "prime", "round"]
    assert "independent probabilities" in lines[7]


def test_multilabel_with_softmax_head_is_a_usage_error(tmp_path, capsys):
    assert main(["train", "--multilabel", "--head", "softmax", "--out", str(tmp_path)]) == 2
    assert "use `--head logistic`" in capsys.readouterr().err


def test_train_on_a_csv_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = ["x,y,animal"]
    for i in range(40):
        k = i % 2
        rows.append(f"{k * 3 + rng.normal()},{rng.normal()},{['cat', 'dog'][k]}")
    path = tmp_path / "animals.csv"
    path.write_text("\n".join(rows))
    out = tmp_path / "out"
    assert main(["train", "--data", str(path), "--epochs", "3", "--out", str(out)]) == 0
    assert (out / "test_examples.png").read_bytes()[:8] == PNG  # drawn without images
    assert main(["predict", str(out / "model.npz"), "--index", "0"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [row.split()[0] for row in table[-3:-1]] == ["cat", "dog"]


def test_bad_hidden_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--hidden", "64,x"])
    assert exc.value.code == 2
    assert "comma-separated layer widths" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_tqdm_bar_per_epoch_on_a_terminal():
    stream = _Terminal()
    progress = _Progress(2, stream)
    assert progress.fancy
    for epoch in (1, 2):
        for batch in (1, 2):
            progress.on_batch(epoch, batch, 2, 0.5, 0.75)
        progress.on_epoch(epoch, {"loss": 0.5, "accuracy": 0.75})
    text = stream.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text
    assert "2/2" in text and "loss 0.5000  acc 75.00%" in text


def test_progress_prints_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = _Progress(3, stream)
    progress.on_batch(1, 1, 1, 0.5, 0.5)
    progress.on_epoch(1, {"loss": 0.5, "accuracy": 0.5, "val_loss": 0.25, "val_accuracy": 1.0})
    assert stream.getvalue() == (
        "epoch 1/3  loss 0.5000  acc 50.00%  test loss 0.2500  test acc 100.00%\n"
    )


def test_sampled_head_trains_and_reports_with_the_full_softmax(tmp_path, capsys):
    argv = ["train", "--head", "sampled", "--num-sampled", "4", "--epochs", "2", "--hidden", "16"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["test"]["head"] == "sampled"
    assert report["test"]["log_loss_definition"].startswith("mean -log p(true class)")
    assert main(["predict", str(tmp_path / "model.npz"), "--index", "0"]) == 0
    rows = capsys.readouterr().out.splitlines()[-11:-1]
    assert sum(float(row.split()[1]) for row in rows) == pytest.approx(1.0, abs=1e-3)
