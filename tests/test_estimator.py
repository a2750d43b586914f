"""The classifier as a scikit-learn estimator: the estimator checks, the tools that build on
them, and the MLPClassifier-style settings (issue 12)."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from softmaxkit import Classifier, SoftmaxkitValueError
from softmaxkit.data import load_digits

DATA = Path(__file__).parent / "data"

# Every head at its default settings (num_sampled=1 so that the checks' one-, two- and
# three-class problems have enough classes to sample from): no fast configuration needed.
# A head added later joins this list (issue 12's rule).
ESTIMATORS = [
    Classifier(),
    Classifier(head="logistic"),
    Classifier(head="sampled", num_sampled=1),
    Classifier(head="sparsemax"),
]


@parametrize_with_checks(ESTIMATORS)
def test_every_estimator_check_passes_for_every_head(estimator, check):
    check(estimator)


def blobs(n=120, k=3, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return rng.normal(size=(n, 4)) * noise + y[:, None] * 2.0, y


def test_import_softmaxkit_does_not_import_scikit_learn():
    code = (
        "import sys, numpy as np, softmaxkit; "
        "softmaxkit.softmax(np.zeros(3)); softmaxkit.cross_entropy(np.zeros((2, 3)), np.array([0, 1])); "
        "assert 'sklearn' not in sys.modules, 'sklearn imported'; "
        "softmaxkit.Classifier; assert 'sklearn' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_unfitted_model_raises_not_fitted_error_of_both_kinds():
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            getattr(Classifier(), method)(np.zeros((2, 2)))
        with pytest.raises(SoftmaxkitValueError):
            getattr(Classifier(), method)(np.zeros((2, 2)))


def test_pipeline_gridsearch_calibration_clone_and_pickle_round_trips():
    X, y = blobs()
    pipe = make_pipeline(StandardScaler(), Classifier(hidden=(8,), epochs=20, learning_rate=0.03))
    assert pipe.fit(X, y).score(X, y) > 0.9
    grid = GridSearchCV(Classifier(hidden=(8,), epochs=10), {"learning_rate": [0.003, 0.03]}, cv=3)
    grid.fit(X, y)
    assert grid.best_params_["learning_rate"] in (0.003, 0.03) and grid.score(X, y) > 0.9
    calibrated = CalibratedClassifierCV(Classifier(hidden=(8,), epochs=10), cv=3).fit(X, y)
    np.testing.assert_allclose(calibrated.predict_proba(X).sum(axis=1), 1.0)
    model = Classifier(hidden=(8,), epochs=10, class_weight={0: 2.0}).fit(X, y)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "classes_")
    joblib = pytest.importorskip("joblib")  # scikit-learn depends on joblib
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    for restored in (pickle.loads(pickle.dumps(model)), joblib.load(buffer)):
        np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


def test_binary_decision_function_is_the_log_odds_of_predict_proba():
    X, y = blobs(k=2)
    labels = np.array(["no", "yes"])[y]
    for head in ("softmax", "logistic", "sampled"):
        model = Classifier(hidden=(8,), epochs=5, head=head, num_sampled=1).fit(X, labels)
        score = model.decision_function(X)
        p = model.predict_proba(X)
        assert score.shape == (X.shape[0],)
        np.testing.assert_allclose(score, np.log(p[:, 1]) - np.log(p[:, 0]), atol=1e-9)
        np.testing.assert_array_equal(model.classes_[(score > 0).astype(int)], model.predict(X))
        np.testing.assert_allclose(model.predict_log_proba(X), np.log(p), atol=1e-12)


def test_early_stopping_stops_and_restores_the_best_epoch_on_a_problem_that_overfits():
    # 60 rows of pure noise and 20 features: the training loss falls for ever, the held-out
    # accuracy cannot rise above chance for long.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 20)), rng.integers(0, 2, size=60)
    model = Classifier(
        hidden=(64,), epochs=300, early_stopping=True, validation_fraction=0.3, n_iter_no_change=5,
        learning_rate=0.01, batch_size=8,
    ).fit(X, y)  # fmt: skip
    scores = model.validation_scores_
    assert model.n_iter_ < 300 and len(scores) == model.n_iter_ == len(model.loss_curve_)
    best_epoch = int(np.argmax(scores))
    assert model.best_validation_score_ == max(scores)
    assert model.n_iter_ == best_epoch + 1 + 5 + 1  # more than n_iter_no_change without gain
    # The weights kept are the best epoch's: the held-out part scores as then.
    held = _held_out_rows(model, y)
    assert model.score(X[held], y[held]) == pytest.approx(model.best_validation_score_)
    assert model.best_loss_ is None  # MLPClassifier's convention with early stopping


def _held_out_rows(model, y):
    _, held = model._split(y, False, y.shape[0])
    return held


def test_early_stopping_split_is_stratified():
    y = np.where(np.arange(100) < 80, 0, 1)
    held = Classifier(early_stopping=True, validation_fraction=0.2)._split(y, False, 100)[1]
    assert np.bincount(y[held]).tolist() == [16, 4]


def test_partial_fit_over_batches_reaches_the_accuracy_of_fit_on_digits():
    digits = load_digits()
    X, y = digits.X_train, digits.y_train
    full = Classifier(epochs=20).fit(X, y).score(digits.X_test, digits.y_test)
    stream = Classifier()
    rng = np.random.default_rng(0)
    for _ in range(20):
        for part in np.array_split(rng.permutation(X.shape[0]), 10):
            stream.partial_fit(X[part], y[part], classes=np.arange(10))
    assert stream.n_iter_ == 200 and stream.t_ == 20 * X.shape[0]
    assert stream.score(digits.X_test, digits.y_test) >= full - 0.02


def test_partial_fit_refuses_unknown_labels_and_balanced_class_weight():
    X, y = blobs()
    model = Classifier(hidden=(4,)).partial_fit(X[y < 2], y[y < 2])
    with pytest.raises(SoftmaxkitValueError, match="labels seen in training"):
        model.partial_fit(X, y)
    with pytest.raises(SoftmaxkitValueError, match="'balanced'"):
        Classifier(class_weight="balanced").partial_fit(X, y)


def test_class_weight_balanced_raises_minority_recall_on_an_imbalanced_set():
    rng = np.random.default_rng(1)
    n_major, n_minor = 450, 30
    X = np.vstack([rng.normal(0.0, 1.0, (n_major, 2)), rng.normal(1.5, 1.0, (n_minor, 2))])
    y = np.r_[np.zeros(n_major, int), np.ones(n_minor, int)]
    X_test = np.vstack([rng.normal(0.0, 1.0, (450, 2)), rng.normal(1.5, 1.0, (300, 2))])
    y_test = np.r_[np.zeros(450, int), np.ones(300, int)]

    def recall(**settings):
        model = Classifier(hidden=(8,), epochs=30, **settings).fit(X, y)
        return np.mean(model.predict(X_test[y_test == 1]) == 1)

    plain, balanced = recall(), recall(class_weight="balanced")
    assert balanced > plain + 0.2, (plain, balanced)


def test_sample_weight_of_two_equals_duplicating_the_rows():
    # One batch per epoch (no shuffling noise), every head: the same weights to rounding.
    X, y = blobs(n=30)
    twice = np.arange(30) % 4 == 0
    w = np.where(twice, 2.0, 1.0)
    X_dup, y_dup = np.vstack([X, X[twice]]), np.r_[y, y[twice]]
    for head in ("softmax", "logistic", "sampled"):
        settings = {"hidden": (6,), "epochs": 15, "batch_size": 64, "head": head, "num_sampled": 2}
        weighted = Classifier(**settings).fit(X, y, sample_weight=w)
        duplicated = Classifier(**settings).fit(X_dup, y_dup)
        for key, value in weighted.network_.params.items():
            np.testing.assert_allclose(
                value, duplicated.network_.params[key], rtol=1e-9, atol=1e-12
            )
        np.testing.assert_allclose(weighted.mean_, duplicated.mean_, rtol=1e-12)


def test_warm_start_continues_and_a_cold_fit_starts_again():
    X, y = blobs()
    model = Classifier(hidden=(8,), epochs=3, warm_start=True, n_iter_no_change=50).fit(X, y)
    first = {k: v.copy() for k, v in model.network_.params.items()}
    model.fit(X, y)
    assert model.n_iter_ == 6 and len(model.loss_curve_) == 6
    cold = Classifier(hidden=(8,), epochs=6, n_iter_no_change=50).fit(X, y)
    # Continuing from epoch 3 is not starting again (its first epoch is not cold's epoch 1).
    assert model.loss_curve_[3] < cold.loss_curve_[0]
    model.set_params(warm_start=False).fit(X, y)
    assert model.n_iter_ == 3
    np.testing.assert_array_equal(cold.network_.params["0.weight"].shape, first["0.weight"].shape)
    with pytest.raises(SoftmaxkitValueError, match="`hidden` must stay"):
        model.set_params(warm_start=True, hidden=(9,)).fit(X, y)


def test_tol_stops_a_converged_fit_as_mlpclassifier_does():
    X, y = blobs(n=30, noise=0.05)
    model = Classifier(hidden=(8,), epochs=500, learning_rate=0.05, tol=1e-2).fit(X, y)
    assert model.n_iter_ < 500 and len(model.loss_curve_) == model.n_iter_
    assert model.best_loss_ == min(model.loss_curve_)


def test_cosine_schedule_decays_the_step_and_trains():
    from softmaxkit._classifier._training import epoch_lr

    assert [epoch_lr("cosine", 1.0, e, 4) for e in range(4)] == pytest.approx(
        [1.0, 0.8535533905932737, 0.5, 0.14644660940672627]
    )
    X, y = blobs()
    model = Classifier(hidden=(8,), epochs=20, learning_rate=0.03, lr_schedule="cosine").fit(X, y)
    assert model.score(X, y) > 0.9


def test_verbose_prints_each_epoch():
    X, y = blobs(n=30)
    out = io.StringIO()
    with redirect_stdout(out):
        Classifier(hidden=(4,), epochs=3, verbose=True, early_stopping=True).fit(X, y)
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "validation acc" in lines[0]


def test_new_settings_and_training_state_survive_save_and_load(tmp_path):
    X, y = blobs()
    model = Classifier(
        hidden=(8,), epochs=30, early_stopping=True, n_iter_no_change=3, class_weight={0: 2.0, 2: 0.5},
        lr_schedule="cosine", tol=np.float64(1e-3),
    ).fit(X, y)  # fmt: skip
    loaded = Classifier.load(model.save(tmp_path / "m.npz"))
    assert repr(loaded) == repr(model)
    assert loaded.get_params() == model.get_params()
    assert (loaded.n_iter_, loaded.t_) == (model.n_iter_, model.t_)
    assert loaded.best_validation_score_ == model.best_validation_score_
    assert loaded.validation_scores_ == model.validation_scores_
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    loaded.partial_fit(X, y)  # a loaded model trains on
    assert loaded.n_iter_ == model.n_iter_ + 1
    # and keeps only the curves it measures, each one entry per epoch (the report plots them)
    assert set(loaded.history_) == {"loss", "accuracy"}
    assert len(loaded.history_["loss"]) == len(loaded.history_["accuracy"]) == model.n_iter_ + 1


@pytest.mark.parametrize("name", ["softmax", "multilabel", "sampled"])
def test_model_files_of_format_1_still_load(name):
    expected = np.load(DATA / "classifier_v1_expected.npz")
    model = Classifier.load(DATA / f"classifier_v1_{name}.npz")
    np.testing.assert_array_equal(model.predict_proba(expected["X"]), expected[f"proba_{name}"])
    assert model.early_stopping is False and model.class_weight is None  # the new defaults
    assert model.n_iter_ == len(model.loss_curve_)
    if name == "softmax":
        assert model.metadata_ == {"data": "iris"} and model.classes_.tolist()[0] == "setosa"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("class_weight", "bal"), ("class_weight", [1, 2]), ("class_weight", {0: -1.0}),
        ("lr_schedule", "step"), ("tol", -1.0), ("tol", "0"), ("validation_fraction", 1.0),
        ("n_iter_no_change", 0), ("n_iter_no_change", 2.0), ("verbose", "yes"),
        ("early_stopping", 1), ("warm_start", None),
    ],
    ids=lambda v: repr(v)[:16],
)  # fmt: skip
def test_new_setting_out_of_range_is_refused_at_fit_naming_it(name, value):
    from softmaxkit import SoftmaxkitError

    X, y = blobs(n=30)
    with pytest.raises(SoftmaxkitError, match=f"`{name}`"):
        Classifier(hidden=(4,), epochs=1, **{name: value}).fit(X, y)


def _crafted(tmp_path, change):
    import json

    X, y = blobs(n=30)
    path = tmp_path / "m.npz"
    Classifier(hidden=(4,), epochs=2, class_weight={0: 2.0}).fit(X, y).save(path)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays.pop("header").tobytes())
    change(header)
    raw = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, header=raw, **arrays)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h["state"].update(n_iter=-1), r"`state.n_iter` must be an int >= 0"),
        (lambda h: h["state"].update(best_loss="low"), r"`state.best_loss` must be a finite"),
        (lambda h: h["state"].update(extra=1), "`state` must be an object"),
        (lambda h: h.pop("state"), "must hold the fields"),
        (lambda h: h["params"].update(class_weight={"pairs": [[0]]}), "not a pair"),
        (lambda h: h["params"].update(class_weight=[1]), "`class_weight`"),
        (lambda h: h["params"].update(tol=-1.0), "`tol` must be finite and >= 0"),
        (lambda h: h["params"].pop("lr_schedule"), "the header's `params` must name"),
        (lambda h: h.update(version=3), "format version is 3"),
    ],
    ids=["n_iter", "best_loss", "state_field", "no_state", "pair", "class_weight", "tol",
         "missing_setting", "version"],
)  # fmt: skip
def test_crafted_format_2_header_is_refused_naming_the_field(tmp_path, change, message):
    path = _crafted(tmp_path, change)
    with pytest.raises(SoftmaxkitValueError, match=message):
        Classifier.load(path)


def test_format_1_header_with_format_2_fields_is_refused(tmp_path):
    path = _crafted(tmp_path, lambda h: h.update(version=1))
    with pytest.raises(SoftmaxkitValueError, match="version 1 must hold the fields"):
        Classifier.load(path)
