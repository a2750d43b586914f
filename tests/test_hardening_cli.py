"""Issue 17, item 10: every command with bad arguments prints one line, never a traceback.

The commands run in-process through ``main``; each case asserts exit status 2,
no traceback, one line on stderr naming the argument, and, for output paths,
that the check came before the work (nothing was trained or printed).
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from softmaxkit.cli import main


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = int(stop.code or 0)
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(result: tuple[int, str, str], *names: str) -> str:
    code, _, err = result
    assert code == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    for name in names:
        assert name in err, err
    return err


@pytest.fixture
def npy(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 3)) * 3
    labels = (z + rng.normal(size=z.shape) * 2).argmax(axis=1)
    np.save(tmp_path / "logits.npy", z)
    np.save(tmp_path / "labels.npy", labels)
    return tmp_path


def calibrate(folder: Path, *extra: str, logits: str | None = None) -> list[str]:
    return [
        "calibrate",
        "--logits",
        logits or str(folder / "logits.npy"),
        "--labels",
        str(folder / "labels.npy"),
        *extra,
    ]


# --- calibrate ---------------------------------------------------------------------------------


def test_calibrate_logits_that_is_an_npz_archive_is_one_line(npy):
    np.savez(npy / "a.npz", x=np.zeros((3, 3)))
    err = assert_one_line_error(run(calibrate(npy, logits=str(npy / "a.npz"))), "`--logits`")
    assert "not a .npy file" in err


def test_calibrate_logits_dev_null_is_one_line(npy):
    err = assert_one_line_error(run(calibrate(npy, logits="/dev/null")), "`--logits`")
    assert "empty file" in err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f8'"), "--logits"),
        (lambda p: np.save(p, np.array(["a", "b"])), "must hold real numbers"),
        (lambda p: np.save(p, np.array([[0.0, np.nan, 1.0]] * 300)), "must be finite"),
        (lambda p: np.save(p, np.zeros((300, 3), dtype=complex)), "must hold real numbers"),
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "--logits"),
    ],
    ids=["directory", "cut_header", "strings", "nan", "complex", "pickle"],
)
def test_calibrate_bad_logits_file_is_one_line(npy, make, message):
    path = npy / "bad.npy"
    make(path)
    err = assert_one_line_error(run(calibrate(npy, "--diagram", "-", logits=str(path))))
    assert message in err


def test_calibrate_npy_announcing_more_than_it_holds_is_refused_before_reading(npy):
    path = npy / "huge.npy"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**11, 3)}
    )
    path.write_bytes(header.getvalue() + bytes(64))
    err = assert_one_line_error(run(calibrate(npy, "--diagram", "-", logits=str(path))))
    assert "`--logits`" in err and "truncated or damaged" in err


def test_calibrate_labels_of_strings_or_out_of_range_are_one_line(npy):
    np.save(npy / "labels.npy", np.array(["a"] * 300))
    assert_one_line_error(run(calibrate(npy, "--diagram", "-")), "`--labels`", "class numbers")
    np.save(npy / "labels.npy", np.full(300, 9))
    assert_one_line_error(run(calibrate(npy, "--diagram", "-")), "`--labels`", "[0, 3)")


@pytest.mark.parametrize(
    ("diagram", "message"),
    [
        ("out.unknownext", "must end in a figure format"),
        ("nowhere/out.png", "directory"),
        ("afile/out.png", "is not a directory"),
        (".", "is a directory"),
    ],
    ids=["unknown_format", "missing_directory", "under_a_file", "directory"],
)
def test_calibrate_bad_diagram_is_refused_before_the_work(npy, monkeypatch, diagram, message):
    (npy / "afile").write_text("x")
    monkeypatch.chdir(npy)
    result = run(calibrate(npy, "--diagram", diagram))
    assert_one_line_error(result, "`--diagram`", message)
    assert result[1] == ""  # refused before the temperature was fit and printed


def test_calibrate_diagram_in_other_formats_is_written(npy):
    code, _, err = run(calibrate(npy, "--diagram", str(npy / "d.svg")))
    assert code == 0, err
    assert (npy / "d.svg").read_text().lstrip().startswith("<?xml")


def test_calibrate_n_bins_not_a_positive_int_is_one_line(npy):
    assert_one_line_error(run(calibrate(npy, "--n-bins", "0")), "--n-bins")
    assert_one_line_error(run(calibrate(npy, "--n-bins", "x")), "--n-bins")


def test_calibrate_without_optimal_temperature_is_one_line(npy):
    z = np.eye(3)[np.arange(300) % 3] * 5
    np.save(npy / "logits.npy", z)
    np.save(npy / "labels.npy", np.arange(300) % 3)  # every label at its row's max
    assert_one_line_error(run(calibrate(npy, "--diagram", "-")), "`--logits`", "T -> 0")


# --- train / predict ---------------------------------------------------------------------------


def test_train_out_onto_an_existing_file_is_refused_before_training(tmp_path):
    target = tmp_path / "taken"
    target.write_text("precious")
    result = run(["train", "--epochs", "1", "--out", str(target)])
    assert_one_line_error(result, "`--out`", "is a file")
    assert result[1] == ""
    assert target.read_text() == "precious"


def test_train_out_in_an_unwritable_place_is_refused_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    # As root no directory is read-only to us; a path through a file cannot be made.
    for out in (str(tmp_path / "file" / "run"), "/proc/softmaxkit-run"):
        result = run(["train", "--epochs", "1", "--out", out])
        assert_one_line_error(result, "`--out`", "cannot create")
        assert result[1] == ""


def test_train_out_whose_model_file_is_a_directory_is_refused_before_training(tmp_path):
    (tmp_path / "model.npz").mkdir()
    result = run(["train", "--epochs", "1", "--out", str(tmp_path)])
    assert_one_line_error(result, "`--out`", "model.npz")
    assert result[1] == ""


def test_train_seed_minus_one_is_one_line():
    assert_one_line_error(run(["train", "--seed", "-1"]), "--seed", "must be >= 0")


@pytest.mark.parametrize(
    "argv",
    [
        ["--learning-rate", "nan"],
        ["--learning-rate", "-1"],
        ["--learning-rate", "fast"],
        ["--epochs", "0"],
        ["--batch-size", "x"],
        ["--hidden", "64,x"],
        ["--hidden", "-4"],
        ["--num-sampled", "0"],
        ["--head", "tanh"],
    ],
    ids=lambda a: "_".join(a),
)
def test_train_bad_numbers_are_one_line_naming_the_option(tmp_path, argv):
    assert_one_line_error(run(["train", "--out", str(tmp_path), *argv]), argv[0])


def test_train_csv_with_label_too_large_for_an_integer_trains(tmp_path):
    rows = [f"{i % 3},{(i * 7) % 5},{10**20 if i % 2 else 1}" for i in range(40)]
    (tmp_path / "big.csv").write_text("\n".join(rows) + "\n")
    code, out, err = run(
        [
            "train",
            "--data",
            str(tmp_path / "big.csv"),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 0, err
    assert "test accuracy" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "at least one data row"),
        (b"1,2,a\n1,b\n", "line 2"),
        (b"1,nan,a\n2,3,b\n", "finite"),
        ("1,2,caf\u00e9\n3,4,b\n".encode("latin-1"), "not utf-8 text"),
    ],
    ids=["empty", "ragged", "nan", "latin1"],
)
def test_train_bad_csv_is_one_line_naming_data(tmp_path, content, message):
    (tmp_path / "bad.csv").write_bytes(content)
    result = run(["train", "--data", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o")])
    assert_one_line_error(result, "`--data`", message)


def test_train_missing_data_is_one_line(tmp_path):
    assert_one_line_error(
        run(["train", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path)]), "`data`"
    )


def _single_npy(path: Path) -> Path:
    np.save(path.with_suffix(".npy"), np.zeros(3))
    return path.with_suffix(".npy")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "does not exist"),
        (lambda p: p.mkdir() or p, "is a directory"),
        (lambda p: p.write_text("hello") and p, "not a readable softmaxkit model file"),
        (_single_npy, "single .npy array"),
    ],
    ids=["missing", "directory", "text", "npy"],
)
def test_predict_bad_model_file_is_one_line(tmp_path, make, message):
    path = make(tmp_path / "model.npz")
    assert_one_line_error(run(["predict", str(path), "--index", "0"]), "`MODEL`", message)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code, _, err = run(["train", "--epochs", "1", "--hidden", "4", "--out", str(out)])
    assert code == 0, err
    return out / "model.npz"


def test_predict_bad_index_and_data_are_one_line(trained, tmp_path):
    assert_one_line_error(run(["predict", str(trained), "--index", "100000"]), "`--index`")
    assert_one_line_error(run(["predict", str(trained), "--index", "x"]), "--index")
    rows = [f"{i},{i % 2},{i % 2}" for i in range(10)]
    (tmp_path / "two.csv").write_text("\n".join(rows) + "\n")
    err = assert_one_line_error(
        run(["predict", str(trained), "--data", str(tmp_path / "two.csv"), "--index", "0"]),
        "`--data`",
    )
    assert "2 features; the model was trained on 64" in err


# --- bench -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("json_path", "message"),
    [
        ("nowhere/r.json", "does not exist"),
        (".", "is a directory"),
        ("f/r.json", "not a directory"),
    ],
    ids=["missing_directory", "directory", "under_a_file"],
)
def test_bench_json_path_is_checked_before_any_suite_runs(
    tmp_path, monkeypatch, json_path, message
):
    (tmp_path / "f").write_text("x")
    monkeypatch.chdir(tmp_path)
    result = run(["bench", "--quick", "--json", json_path])
    assert_one_line_error(result, "`--json`", message)
    assert result[1] == ""  # no suite ran


@pytest.mark.parametrize(
    "argv", [["--repeat", "0"], ["--repeat", "x"], ["nosuite"]], ids=["zero", "word", "suite"]
)
def test_bench_bad_arguments_are_one_line(argv):
    assert_one_line_error(run(["bench", *argv]))


# --- softmax / pmf ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["softmax"],
        ["softmax", "1", "x"],
        ["softmax", "1", "--temperature", "inf"],
        ["pmf", "1e400", "1"],
        ["pmf", "-1"],
        ["nosuchcommand"],
    ],
    ids=lambda a: "_".join(a),
)
def test_table_commands_bad_arguments_are_one_line(argv):
    assert_one_line_error(run(argv))


def test_train_multilabel_on_labels_that_are_not_digits_is_one_line(tmp_path):
    rows = [f"{i % 3},{i % 5},{-1 if i % 2 else 3}" for i in range(20)]
    (tmp_path / "neg.csv").write_text("\n".join(rows) + "\n")
    result = run(
        ["train", "--multilabel", "--data", str(tmp_path / "neg.csv"), "--out", str(tmp_path)]
    )
    assert_one_line_error(result, "`--multilabel`", "digit labels 0-9")


def test_atomic_save_figure_unknown_format_is_refused_before_rendering(tmp_path):
    from matplotlib.figure import Figure

    from softmaxkit import SoftmaxkitValueError
    from softmaxkit._atomic import atomic_save_figure

    figure = Figure()
    figure.subplots()
    with pytest.raises(SoftmaxkitValueError, match="must end in a figure format"):
        atomic_save_figure(figure, tmp_path / "plot.unknownext")
    assert list(tmp_path.iterdir()) == []
    atomic_save_figure(figure, tmp_path / "plot.PNG")
    assert (tmp_path / "plot.PNG").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_latin1_csv_reads_with_encoding_option(tmp_path):
    rows = [f"{i % 3},{i % 5},{'café' if i % 2 else 'thé'}" for i in range(20)]
    (tmp_path / "latin.csv").write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    argv = ["train", "--data", str(tmp_path / "latin.csv"), "--epochs", "1", "--out", str(tmp_path)]
    assert_one_line_error(run(argv), "`--data`", "--encoding")
    code, _, err = run([*argv, "--encoding", "latin-1"])
    assert code == 0, err
    assert_one_line_error(run([*argv, "--encoding", "klingon"]), "`encoding` 'klingon'")
