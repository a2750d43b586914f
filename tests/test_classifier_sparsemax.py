"""``Classifier(head="sparsemax")`` and ``softmaxkit train --head sparsemax`` (issue 15): a
classifier whose probability rows hold exact zeros."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from softmaxkit import Classifier, SoftmaxkitValueError, sparsemax, sparsemax_loss
from softmaxkit._classifier._heads import HEADS, SparsemaxHead
from softmaxkit.cli import main
from softmaxkit.data import load_digits

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def digits_model(digits):
    """The sparsemax head at its default settings (what the README's numbers measure)."""
    return Classifier(head="sparsemax").fit(digits.X_train, digits.y_train)


def blobs(n=120, k=3, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return rng.normal(size=(n, 4)) * noise + y[:, None] * 2.0, y


def test_sparsemax_head_is_registered_and_validated_by_name():
    assert HEADS["sparsemax"] is SparsemaxHead
    with pytest.raises(SoftmaxkitValueError, match="sparsemax"):  # the choices name it
        Classifier(head="sparsemx").fit(*blobs())


def test_predict_proba_has_exact_zeros_on_digits(digits, digits_model):
    p = digits_model.predict_proba(digits.X_test)
    assert p.shape == (449, 10) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert p.min() == 0.0  # exactly, not an underflowed softmax
    assert np.mean(np.any(p == 0.0, axis=1)) > 0.9  # most rows name a short list
    assert np.mean(np.sum(p > 0, axis=1)) < 3
    np.testing.assert_array_equal(p, sparsemax(digits_model.decision_function(digits.X_test)))


def test_accuracy_on_digits_with_default_settings(digits, digits_model):
    # Measured 97.3% (the softmax head: 97.6%); the issue asks for about 95% at least.
    assert digits_model.score(digits.X_test, digits.y_test) >= 0.95


def test_predict_is_the_class_of_the_largest_probability(digits, digits_model):
    p = digits_model.predict_proba(digits.X_test)
    predicted = digits_model.predict(digits.X_test)
    # argmax of the logits; where sparsemax ties two classes at the top either is right.
    top = p[np.arange(len(p)), np.searchsorted(digits_model.classes_, predicted)]
    np.testing.assert_array_equal(top, p.max(axis=1))


def test_predict_log_proba_is_minus_inf_exactly_where_the_probability_is_zero(digits, digits_model):
    p = digits_model.predict_proba(digits.X_test)
    with np.errstate(all="raise"):  # no divide-by-zero warning escapes
        log_p = digits_model.predict_log_proba(digits.X_test)
    np.testing.assert_array_equal(np.isneginf(log_p), p == 0)
    np.testing.assert_allclose(log_p[p > 0], np.log(p[p > 0]), rtol=1e-12)


def test_binary_decision_function_is_the_logit_gap_and_predicts_the_class():
    X, y = blobs(k=2, noise=2.0)
    labels = np.array(["no", "yes"])[y]
    model = Classifier(head="sparsemax", hidden=(8,), epochs=5).fit(X, labels)
    score = model.decision_function(X)
    p = model.predict_proba(X)
    assert score.shape == (X.shape[0],)
    # Two-class sparsemax: p1 = clip((1 + z1 - z0) / 2, 0, 1).
    np.testing.assert_allclose(p[:, 1], np.clip((1 + score) / 2, 0, 1), atol=1e-12)
    np.testing.assert_array_equal(model.classes_[(score > 0).astype(int)], model.predict(X))


def test_head_loss_is_the_weighted_mean_of_sparsemax_losses():
    rng = np.random.default_rng(0)
    z, t, w = rng.normal(size=(6, 4)) * 2, rng.integers(0, 4, size=6), rng.uniform(0, 3, size=6)
    value, _ = SparsemaxHead().loss(z, t, w)
    rows = np.asarray(sparsemax_loss(z, t, reduction="none"))
    assert value == pytest.approx(np.dot(w, rows) / 6, rel=1e-12)


def test_head_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    # Logits spread enough that the supports hold some classes and leave out others; the
    # loss is smooth (piecewise quadratic, C1) so central differences agree to ~h^2.
    z, t, w = rng.normal(size=(5, 6)) * 1.5, rng.integers(0, 6, size=5), rng.uniform(0.5, 2, 5)
    head = SparsemaxHead()
    _, grad = head.loss(z, t, w)
    assert np.any(sparsemax(z) == 0)  # the test crosses the support's edge
    h = 1e-6
    numeric = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (head.loss(up, t, w)[0] - head.loss(down, t, w)[0]) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_uniform_sample_weight_gives_the_same_model_as_none():
    # fit scales the weights to average 1: a constant weight is no weight (for a fixed
    # weight_decay; "auto" counts rows as sample_weight counts them, as duplicates would)
    X, y = blobs()
    settings = {"head": "sparsemax", "hidden": (8,), "epochs": 5, "weight_decay": 1e-3}
    plain = Classifier(**settings).fit(X, y)
    tripled = Classifier(**settings).fit(X, y, sample_weight=np.full(len(y), 3.0))
    np.testing.assert_allclose(tripled.predict_proba(X), plain.predict_proba(X), atol=1e-12)


def test_class_weight_moves_predictions_towards_the_heavy_class():
    X, y = blobs(noise=2.5)  # overlapping classes: the weights decide the border rows
    # (a fixed weight_decay: "auto" counts rows by sample_weight but not by class_weight)
    settings = {"head": "sparsemax", "hidden": (8,), "epochs": 10, "weight_decay": 1e-3}
    plain = Classifier(**settings).fit(X, y)
    heavy = Classifier(**settings, class_weight={1: 20.0}).fit(X, y)
    assert np.sum(heavy.predict(X) == 1) > np.sum(plain.predict(X) == 1)
    # The same weights given as sample_weight train the same model.
    rows = Classifier(**settings).fit(X, y, sample_weight=np.where(y == 1, 20.0, 1.0))
    np.testing.assert_allclose(rows.predict_proba(X), heavy.predict_proba(X), atol=1e-12)


def test_sample_weight_zero_rows_do_not_train():
    X, y = blobs()
    settings = {"head": "sparsemax", "hidden": (8,), "epochs": 5, "standardize": False}
    keep = np.arange(len(y)) % 4 != 0
    w = keep.astype(float)
    # Zero-weight rows still take part in the batches (so the batch order differs from a
    # fit on the kept rows alone), but their gradient is exactly 0: moving them changes nothing.
    moved = X.copy()
    moved[~keep] += 100.0
    a = Classifier(**settings).fit(X, y, sample_weight=w)
    b = Classifier(**settings).fit(moved, y, sample_weight=w)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_multilabel_y_is_refused_naming_the_head():
    X, y = blobs()
    with pytest.raises(SoftmaxkitValueError, match=r"head='sparsemax'.*logistic"):
        Classifier(head="sparsemax").fit(X, np.stack([y == 0, y == 1], axis=1).astype(int))


def test_save_load_round_trip_gives_identical_predictions(tmp_path, digits, digits_model):
    loaded = Classifier.load(digits_model.save(tmp_path / "model.npz"))
    assert loaded.head == "sparsemax"
    assert loaded.get_params() == {**digits_model.get_params(), "hidden": (64,)}
    for method in ("predict_proba", "predict_log_proba", "decision_function", "predict"):
        np.testing.assert_array_equal(
            getattr(loaded, method)(digits.X_test), getattr(digits_model, method)(digits.X_test)
        )
    # A loaded model continues training with the same head.
    loaded.partial_fit(digits.X_train[:64], digits.y_train[:64])
    assert np.any(loaded.predict_proba(digits.X_test) == 0)


def test_files_written_before_the_sparsemax_head_still_load():
    for name in ("softmax", "sampled", "multilabel"):
        model = Classifier.load(DATA / f"classifier_v1_{name}.npz")
        assert model.head in ("softmax", "sampled", "logistic")


def test_file_claiming_a_multilabel_sparsemax_model_is_refused(tmp_path):
    X, y = blobs()
    path = (
        Classifier(head="logistic", hidden=(4,), epochs=2)
        .fit(X, np.stack([y == 0, y == 1], axis=1).astype(int))
        .save(tmp_path / "m.npz")
    )
    with np.load(path) as f:
        arrays = dict(f)
    header = json.loads(arrays["header"].tobytes().decode())
    header["params"]["head"] = "sparsemax"
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(SoftmaxkitValueError, match=r"multilabel.*sparsemax"):
        Classifier.load(path)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sparsemax_run")
    capture = io.StringIO()
    with redirect_stdout(capture):
        code = main(["train", "--head", "sparsemax", "--seed", "0", "--out", str(out)])
    return out, code, capture.getvalue()


def test_cli_train_sparsemax_writes_model_report_and_figures(cli_run):
    out, code, stdout = cli_run
    assert code == 0
    names = ("learning_curves.png", "confusion_matrix.png", "test_examples.png", "reliability.png")
    for name in names:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Classifier.load(out / "model.npz").head == "sparsemax"
    test = json.loads((out / "report.json").read_text())["test"]
    assert test["head"] == "sparsemax"
    assert np.isfinite(test["log_loss"]) and "sparsemax" in test["log_loss_definition"]
    assert 1 <= test["mean_nonzero_classes"] < 3
    assert 0 <= test["true_class_zero_probability"] < 0.05
    assert 0 <= test["expected_calibration_error"] <= 1
    assert f"sparsemax loss {test['log_loss']:.4f}" in stdout


def test_report_sparsemax_loss_is_the_mean_loss_of_the_logits(cli_run, digits):
    out, _, _ = cli_run
    model = Classifier.load(out / "model.npz")
    test = json.loads((out / "report.json").read_text())["test"]
    logits = model._logits(digits.X_test)
    expected = float(sparsemax_loss(logits, digits.y_test))
    assert test["log_loss"] == pytest.approx(expected, rel=1e-12)
    p = model.predict_proba(digits.X_test)
    assert test["mean_nonzero_classes"] == pytest.approx(np.mean(np.sum(p > 0, axis=1)))


def test_cli_predict_prints_exact_zeros_as_zero(cli_run, digits):
    out, _, _ = cli_run
    model = Classifier.load(out / "model.npz")
    p = model.predict_proba(digits.X_test)
    index = int(np.flatnonzero(np.sum(p > 0, axis=1) >= 2)[0])  # a row with a short list
    capture = io.StringIO()
    with redirect_stdout(capture):
        assert main(["predict", str(out / "model.npz"), "--index", str(index)]) == 0
    lines = capture.getvalue().splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:13]}
    for k, label in enumerate(model.classes_.tolist()):
        probability, percent, odds = rows[str(label)]
        if p[index, k] == 0:
            assert (probability, percent, odds) == ("0", "0.00%", "0:1")
        else:
            assert float(probability) == pytest.approx(p[index, k], rel=1e-3)
            assert probability != "0"


def test_exact_zeros_on_both_numpy_paths(kernel_path):
    # The head reads sparsemax through whichever NumPy path serves float64: the compiled
    # kernel and the portable code must both train and predict with exact zeros.
    X, y = blobs(k=5, noise=0.5)
    model = Classifier(head="sparsemax", hidden=(8,), epochs=30, learning_rate=0.03).fit(X, y)
    p = model.predict_proba(X)
    assert p.min() == 0.0 and model.score(X, y) > 0.9
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
