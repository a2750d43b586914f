"""softmaxkit.Classifier: digits accuracy, reproducibility, sklearn conventions, save/load, errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import softmaxkit
from softmaxkit import Classifier, SoftmaxkitValueError
from softmaxkit.data import digit_attributes, load_digits


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


@pytest.fixture(scope="module")
def digits_model(digits):
    """The ``make demo`` model: defaults, seed 0 (the most expensive fit in this file)."""
    return Classifier(seed=0).fit(digits.X_train, digits.y_train)


def blobs(n=60, seed=0):
    """Three well separated clusters in 2-D, labels cat/dog/elephant."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    k = np.arange(n) % 3
    X = centres[k] + rng.normal(scale=0.5, size=(n, 2))
    return X, np.array(["cat", "dog", "elephant"])[k]


SMALL = {"hidden": (8,), "epochs": 20, "batch_size": 16}


def test_digits_test_accuracy_at_least_97_percent(digits, digits_model):
    assert digits_model.score(digits.X_test, digits.y_test) >= 0.97


def test_same_seed_gives_identical_weights_and_predictions():
    X, y = blobs()
    a = Classifier(seed=3, dropout=0.2, **SMALL).fit(X, y)
    b = Classifier(seed=3, dropout=0.2, **SMALL).fit(X, y)
    c = Classifier(seed=4, dropout=0.2, **SMALL).fit(X, y)
    for key, value in a.network_.params.items():
        np.testing.assert_array_equal(value, b.network_.params[key])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.history_ == b.history_
    assert not np.array_equal(a.network_.params["0.weight"], c.network_.params["0.weight"])


def test_string_labels_come_back_as_they_went_in():
    X, y = blobs()
    clf = Classifier(**SMALL).fit(X, y)
    assert clf.classes_.tolist() == ["cat", "dog", "elephant"]
    assert clf.predict(X).tolist() == y.tolist()
    proba = clf.predict_proba(X)
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert clf.score(X, y) == 1.0


def test_logistic_head_with_2d_y_is_multilabel():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0, (X[:, 0] > 0) & (X[:, 2] > 0)], axis=1).astype(int)
    clf = Classifier(hidden=(16,), head="logistic", epochs=40, seed=0).fit(X, Y)
    assert clf.multilabel_
    assert clf.classes_.tolist() == [0, 1, 2]
    proba = clf.predict_proba(X)
    assert proba.shape == (200, 3)
    assert np.all((proba > 0) & (proba < 1))
    assert not np.allclose(proba.sum(axis=1), 1.0)  # independent, not a distribution
    predicted = clf.predict(X)
    assert set(np.unique(predicted).tolist()) == {0, 1}
    assert clf.score(X, Y) > 0.9
    assert clf.score(X, Y) == np.mean(np.all(predicted == Y, axis=1))


def test_logistic_head_with_1d_y_is_one_vs_rest():
    X, y = blobs()
    clf = Classifier(head="logistic", **SMALL).fit(X, y)
    assert not clf.multilabel_
    assert clf.predict(X).tolist() == y.tolist()
    # The sigmoids normalised to sum to 1, as scikit-learn's one-vs-rest classifiers give them
    # (check_classifiers_train requires rows that sum to 1 from every classifier).
    sigmoids = softmaxkit.sigmoid(clf._logits(X))
    np.testing.assert_allclose(clf.predict_proba(X), sigmoids / sigmoids.sum(axis=1, keepdims=True))


def test_digit_attributes_logistic_head_beats_chance(digits):
    Y = digit_attributes(digits.y_train)
    clf = Classifier(head="logistic", epochs=5, seed=0).fit(digits.X_train, Y)
    assert clf.score(digits.X_test, digit_attributes(digits.y_test)) > 0.7


def test_history_records_each_epoch_and_callbacks_see_each_batch():
    X, y = blobs()
    batches, epochs = [], []
    clf = Classifier(**SMALL).fit(
        X,
        y,
        eval_set=(X[:10], y[:10]),
        on_batch=lambda *args: batches.append(args),
        on_epoch=lambda epoch, record: epochs.append((epoch, record)),
    )
    assert [len(v) for v in clf.history_.values()] == [20] * 4
    assert len(batches) == 20 * 4  # 60 examples in batches of 16
    assert batches[3][:3] == (1, 4, 4)
    assert epochs[-1] == (
        20,
        {k: v[-1] for k, v in clf.history_.items()},
    )
    assert clf.history_["loss"][-1] < clf.history_["loss"][0]


def test_get_params_returns_constructor_arguments_verbatim_and_set_params_sets_them():
    clf = Classifier(hidden=[32, 16], head="logistic", seed=7)
    params = clf.get_params()
    assert params["hidden"] == [32, 16] and params["head"] == "logistic" and params["seed"] == 7
    assert clf.set_params(epochs=3, learning_rate=0.1) is clf
    assert (clf.epochs, clf.learning_rate) == (3, 0.1)
    with pytest.raises(SoftmaxkitValueError, match="`depth` is not a parameter"):
        clf.set_params(depth=3)


def test_sklearn_clone_and_cross_val_score():
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import cross_val_score

    X, y = blobs(90)
    clf = Classifier(**SMALL)
    copy = clone(clf)
    assert copy is not clf and copy.get_params() == clf.get_params()
    assert is_classifier(clf)
    scores = cross_val_score(clf, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.9


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda X, y: (X, y[:-1]), "`X` and `y` must have the same length; got 60 rows and 59"),
        (lambda X, y: (np.where(np.arange(2) == 1, np.nan, X), y),
         r"`X` must be finite \(no NaN or inf\); position \(0, 1\) holds nan"),
        (lambda X, y: (np.where(X > 3.5, np.inf, X), y), "`X` must be finite"),
        (lambda X, y: (X[:0], y[:0]), "`X` must hold at least one training example"),
        (lambda X, y: (X[:, 0], y), r"`X` must have shape \(n_samples, n_features\)"),
    ],
    ids=["length_mismatch", "nan", "inf", "empty", "1d_X"],
)  # fmt: skip
def test_bad_training_input_raises_one_clear_error(make, message):
    X, y = make(*blobs())
    with pytest.raises(SoftmaxkitValueError, match=message):
        Classifier(**SMALL).fit(X, y)


def test_multilabel_y_that_is_not_0_1_is_refused():
    X = np.zeros((3, 2))
    Y = np.array([[0, 1], [1, 0], [1, 2]])
    with pytest.raises(SoftmaxkitValueError, match=r"only 0 and 1; position \(2, 1\) holds 2"):
        Classifier(head="logistic").fit(X, Y)


def test_2d_y_with_softmax_head_points_to_the_logistic_head():
    with pytest.raises(SoftmaxkitValueError, match="use head='logistic'"):
        Classifier().fit(np.zeros((2, 2)), np.array([[0, 1], [1, 1]]))


def test_feature_count_at_predict_must_match_fit():
    X, y = blobs()
    clf = Classifier(**SMALL).fit(X, y)
    with pytest.raises(SoftmaxkitValueError, match="`X` must have 2 features, as at fit; got 3"):
        clf.predict(np.zeros((1, 3)))
    with pytest.raises(SoftmaxkitValueError, match="`X` must be finite"):
        clf.predict_proba(np.array([[np.nan, 0.0]]))


def test_predict_before_fit_is_refused():
    with pytest.raises(SoftmaxkitValueError, match="not fitted yet"):
        Classifier().predict(np.zeros((1, 2)))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"head": "tanh"}, "`head` must be one of"),
        ({"epochs": 0}, "`epochs` must be 'auto' or an int >= 1"),
        ({"optimizer": "rmsprop"}, "`optimizer` must be one of"),
        ({"dropout": 1.0}, r"`dropout` must be in \[0, 1\)"),
        ({"hidden": (0,)}, "`hidden` widths must be >= 1"),
    ],
)
def test_bad_settings_are_refused_at_fit(params, message):
    with pytest.raises(SoftmaxkitValueError, match=message):
        Classifier(**params).fit(*blobs())


# --- save / load ---------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_predictions(tmp_path, digits, digits_model):
    path = digits_model.save(tmp_path / "model.npz", metadata={"data": "digits"})
    loaded = Classifier.load(path)
    np.testing.assert_array_equal(
        loaded.predict_proba(digits.X_test), digits_model.predict_proba(digits.X_test)
    )
    assert loaded.get_params() == {**digits_model.get_params(), "hidden": (64,)}
    assert loaded.history_ == digits_model.history_
    assert loaded.metadata_ == {"data": "digits"}
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left


@pytest.mark.parametrize("head", ["softmax", "logistic"])
def test_save_load_round_trip_keeps_string_classes_and_multilabel(tmp_path, head):
    X, y = blobs()
    target = y if head == "softmax" else np.stack([y == "cat", y != "dog"], axis=1).astype(int)
    model = Classifier(head=head, **SMALL).fit(X, target)
    loaded = Classifier.load(model.save(tmp_path / "m.npz"))
    assert loaded.classes_.tolist() == model.classes_.tolist()
    assert loaded.multilabel_ == model.multilabel_
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.fixture
def saved(tmp_path):
    X, y = blobs()
    return Classifier(**SMALL).fit(X, y).save(tmp_path / "model.npz")


def test_truncated_model_file_is_refused(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(SoftmaxkitValueError, match="not a readable softmaxkit model file"):
        Classifier.load(saved)


def test_altered_weights_are_refused(saved):
    data = bytearray(saved.read_bytes())
    offset = data.index(b"param.0.weight.npy") + 200  # inside that array's data
    data[offset] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(SoftmaxkitValueError, match=r"model file|altered"):
        Classifier.load(saved)


def rewrite(path, change_header=None, change_arrays=None):
    """Re-save ``path`` with a changed header or arrays (valid zip, so only our checks catch it)."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays.pop("header").tobytes())
    if change_header:
        change_header(header)
    if change_arrays:
        change_arrays(arrays)
    raw = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, header=raw, **arrays)


def test_other_format_version_is_refused(saved):
    rewrite(saved, change_header=lambda h: h.update(version=99))
    with pytest.raises(SoftmaxkitValueError, match="format version is 99; this softmaxkit reads"):
        Classifier.load(saved)


def test_array_changed_behind_the_checksum_is_refused(saved):
    def change(arrays):
        arrays["param.0.bias"] = arrays["param.0.bias"] + 1.0

    rewrite(saved, change_arrays=change)
    with pytest.raises(SoftmaxkitValueError, match=r"'param\.0\.bias' does not match its checksum"):
        Classifier.load(saved)


def test_shape_that_does_not_fit_the_network_is_refused(saved):
    def change(header):
        header["params"]["hidden"] = [9]

    rewrite(saved, change_header=change)
    with pytest.raises(SoftmaxkitValueError, match=r"'param.0.weight' must have shape \(2, 9\)"):
        Classifier.load(saved)


def test_dtype_other_than_the_header_says_is_refused(saved):
    def change(arrays):
        arrays["mean"] = arrays["mean"].astype(np.float32)

    rewrite(saved, change_arrays=change)
    with pytest.raises(SoftmaxkitValueError, match=r"array 'mean' has shape .* dtype <f4"):
        Classifier.load(saved)


def test_foreign_files_are_refused(tmp_path):
    npz = tmp_path / "other.npz"
    np.savez(npz, weights=np.ones(3))
    with pytest.raises(SoftmaxkitValueError, match="not a softmaxkit model: it has no header"):
        Classifier.load(npz)
    single = tmp_path / "single.npy"
    np.save(single, np.ones(3))
    with pytest.raises(SoftmaxkitValueError, match=r"holds a single \.npy array"):
        Classifier.load(single)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(SoftmaxkitValueError, match="not a readable softmaxkit model file"):
        Classifier.load(text)
    with pytest.raises(SoftmaxkitValueError, match="does not exist"):
        Classifier.load(tmp_path / "missing.npz")
    rewrite_target = tmp_path / "foreign_format.npz"
    with zipfile.ZipFile(rewrite_target, "w"):
        pass
    with pytest.raises(SoftmaxkitValueError, match="no header"):
        Classifier.load(rewrite_target)


def test_save_replaces_an_existing_file_atomically(tmp_path):
    X, y = blobs()
    path = tmp_path / "model.npz"
    path.write_text("old contents")
    Classifier(**SMALL).fit(X, y).save(path)
    assert Classifier.load(path).predict(X).tolist() == y.tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
