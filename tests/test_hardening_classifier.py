"""Issue 17, items 9, 11, 12: Classifier settings, model files that round-trip, crafted files.

Every bad setting is a SoftmaxkitError naming the setting; whatever ``fit``
accepts, ``save`` writes and ``load`` reads back identically; a crafted model
file gives one SoftmaxkitValueError naming the file, before anything is built.
"""

from __future__ import annotations

import io
import json
import math
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softmaxkit import Classifier, SoftmaxkitError, SoftmaxkitTypeError, SoftmaxkitValueError

TINY = {"hidden": (4,), "epochs": 2, "batch_size": 8}


def data(n=24, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = rng.normal(size=(n, 2)) + y[:, None] * 2.0
    return X, y


# --- item 9: settings ------------------------------------------------------------------------


class _Unequal:
    """A setting whose == raises: repr must still work."""

    def __eq__(self, other):
        raise RuntimeError("no comparing")

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self):
        return "<unequal>"


BAD_SETTINGS = [
    ("dropout", "0.5"),
    ("dropout", float("nan")),
    ("dropout", 1.0),
    ("weight_decay", None),
    ("weight_decay", -1.0),
    ("weight_decay", math.inf),
    ("seed", -1),
    ("seed", "a"),
    ("seed", 1.5),
    ("seed", True),
    ("hidden", "64"),
    ("hidden", (4.7,)),
    ("hidden", (4.0,)),
    ("hidden", (True,)),
    ("hidden", 5),
    ("hidden", np.array([[8]])),
    ("hidden", np.array([8.0])),
    ("hidden", (0,)),
    ("hidden", iter([4])),
    ("head", ["softmax"]),
    ("head", "tanh"),
    ("epochs", True),
    ("epochs", 2.0),
    ("epochs", 0),
    ("batch_size", "32"),
    ("batch_size", np.float64(8)),
    ("optimizer", None),
    ("optimizer", ["adam"]),
    ("learning_rate", 0),
    ("learning_rate", float("nan")),
    ("learning_rate", "0.1"),
    ("learning_rate", None),
    ("momentum", 1.0),
    ("momentum", None),
    ("standardize", "yes"),
    ("standardize", None),
    ("num_sampled", 0),
    ("num_sampled", "a"),
    ("num_sampled", 2.0),
]


@pytest.mark.parametrize(("name", "value"), BAD_SETTINGS, ids=lambda v: repr(v)[:20])
def test_classifier_bad_setting_raises_softmaxkit_error_naming_it(name, value):
    model = Classifier(**{**TINY, name: value})
    repr(model)  # never raises, whatever the settings
    with pytest.raises(SoftmaxkitError, match=f"`{name}`"):
        model.fit(*data())


def test_classifier_seed_minus_one_is_refused_at_fit():
    with pytest.raises(SoftmaxkitValueError, match="`seed` must be None or an int >= 0; got -1"):
        Classifier(seed=-1, **TINY).fit(*data())


def test_classifier_hidden_string_is_refused_not_split_into_digits():
    with pytest.raises(SoftmaxkitTypeError, match="`hidden` must be a tuple or list"):
        Classifier(hidden="64").fit(*data())


def test_classifier_hidden_float_width_is_refused_not_truncated():
    with pytest.raises(SoftmaxkitTypeError, match="`hidden` must hold int layer widths"):
        Classifier(hidden=(4.7,)).fit(*data())


def test_classifier_sampled_head_with_seed_none_trains():
    X, y = data()
    model = Classifier(head="sampled", num_sampled=2, seed=None, **TINY).fit(X, y)
    assert model.predict_proba(X).shape == (24, 3)


def test_classifier_numpy_scalar_settings_train_exactly_like_python_numbers():
    X, y = data()
    python = Classifier(
        hidden=[4, 3], epochs=2, batch_size=8, learning_rate=0.01, dropout=0.1, seed=3
    ).fit(X, y)
    numpy = Classifier(
        hidden=np.array([4, 3]),
        epochs=np.int64(2),
        batch_size=np.int32(8),
        learning_rate=np.float64(0.01),
        dropout=np.float64(0.1),
        seed=np.uint8(3),
        standardize=np.bool_(True),
    ).fit(X, y)
    np.testing.assert_array_equal(python.predict_proba(X), numpy.predict_proba(X))


def test_classifier_repr_never_raises_on_array_or_strange_settings():
    assert repr(Classifier(hidden=np.array([8, 8]))) == "Classifier(hidden=array([8, 8]))"
    assert "learning_rate=<unequal>" in repr(Classifier(learning_rate=_Unequal()))
    assert repr(Classifier(epochs=np.int64(50))) == "Classifier(hidden=(64,), epochs=np.int64(50))"


@pytest.mark.parametrize(
    "eval_set", [("X",), "X", ("X", "y", "X"), {"X": 1}], ids=["one", "array", "three", "dict"]
)
def test_classifier_eval_set_must_be_a_pair(eval_set):
    X, y = data()
    given_set = tuple(X if v == "X" else y for v in eval_set) if isinstance(eval_set, tuple) else X
    if isinstance(eval_set, dict):
        given_set = eval_set
    with pytest.raises(SoftmaxkitValueError, match="`eval_set` must be a pair"):
        Classifier(**TINY).fit(X, y, eval_set=given_set)


def test_classifier_nat_and_structured_labels_are_refused():
    X, _ = data(n=4)
    dates = np.array(["2020-01-01", "NaT", "2020-01-02", "2020-01-01"], dtype="datetime64[D]")
    with pytest.raises(SoftmaxkitValueError, match="`y` must not hold NaT"):
        Classifier(**TINY).fit(X, dates)
    records = np.zeros(4, dtype=[("a", "i4"), ("b", "f4")])
    with pytest.raises(SoftmaxkitTypeError, match="`y` must hold labels of a plain dtype"):
        Classifier(**TINY).fit(X, records)


def test_classifier_hidden_width_beyond_memory_is_a_clear_error():
    with pytest.raises(SoftmaxkitValueError, match=r"`hidden` .* more than memory holds"):
        Classifier(hidden=(10**14,), epochs=1).fit(*data())


# --- item 11: whatever fit accepts, save writes and load reads back ----------------------------


def _labels(kind: str, n: int) -> np.ndarray:
    k = np.arange(n) % 3
    if kind in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"):
        return (k + (200 if kind == "uint8" else 7)).astype(kind)
    if kind == "uint64-big":
        return k.astype(np.uint64) + np.uint64(2**63)
    if kind in ("float16", "float32", "float64"):
        # Whole numbers: labels such as 1.25 make a continuous (regression) target, refused.
        return (k * 2.0 - 1.0).astype(kind)
    if kind == "bool":
        return (k > 0).astype(bool)
    if kind == "str":
        return np.array(["cat", "dog", "élan"])[k]
    if kind == "object-str":
        return np.array(["cat", "dog", "élan"], dtype=object)[k]
    if kind == "object-mixed":
        return np.array([1, "dog", 2.5], dtype=object)[k]
    if kind == "bytes":
        return np.array([b"a", b"b", b"c"])[k]
    if kind in ("datetime64[D]", "datetime64[ns]", "timedelta64[s]"):
        return (k * 40).astype(kind)
    raise AssertionError(kind)


LABEL_KINDS = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "uint64-big",
    "float16", "float32", "float64", "bool", "str", "object-str", "object-mixed", "bytes",
    "datetime64[D]", "datetime64[ns]", "timedelta64[s]",
]  # fmt: skip


@pytest.mark.parametrize(
    "y", [np.arange(24) * 0.25, (np.arange(24) % 3) * (1 + 1j)], ids=["continuous", "complex"]
)
def test_classifier_continuous_or_complex_labels_are_refused_as_scikit_learn_does(y):
    # A regression target is not silently turned into 24 classes (check_classifiers_regression_target).
    X, _ = data()
    with pytest.raises(SoftmaxkitValueError, match="`y`"):
        Classifier(**TINY).fit(X, y)


@pytest.mark.parametrize("kind", LABEL_KINDS)
def test_save_load_round_trip_keeps_label_dtype_values_and_predictions(tmp_path, kind):
    X, _ = data()
    y = _labels(kind, 24)
    model = Classifier(**TINY).fit(X, y, eval_set=(X[:6], y[:6]))
    loaded = Classifier.load(model.save(tmp_path / "m.npz"))
    assert loaded.classes_.dtype == model.classes_.dtype
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    predicted = loaded.predict(X)
    assert predicted.dtype == model.predict(X).dtype
    np.testing.assert_array_equal(predicted, model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.score(X, y) == model.score(X, y)
    assert loaded.history_ == model.history_


def test_save_load_keeps_numpy_scalar_setting_types(tmp_path):
    X, y = data()
    settings_ = {
        "hidden": (np.int64(4),),
        "epochs": np.int64(2),
        "batch_size": np.int32(8),
        "learning_rate": np.float32(0.01),
        "momentum": np.float64(0.5),
        "weight_decay": np.float16(0.001),
        "dropout": np.float64(0.0),
        "standardize": np.bool_(False),
        "seed": np.uint16(5),
        "num_sampled": np.int8(2),
    }
    model = Classifier(**settings_).fit(X, y)
    loaded = Classifier.load(model.save(tmp_path / "m.npz"))
    for name, value in loaded.get_params().items():
        original = model.get_params()[name]
        if name == "hidden":
            assert value == (4,)
            continue
        assert type(value) is type(original), name
        assert value == original, name
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_save_refuses_metadata_that_is_not_json_and_paths_that_are_not_files(tmp_path):
    model = Classifier(**TINY).fit(*data())
    with pytest.raises(SoftmaxkitTypeError, match="`metadata` must be JSON-serialisable"):
        model.save(tmp_path / "m.npz", metadata={"a": object()})
    with pytest.raises(SoftmaxkitTypeError, match="`metadata` must be a dict"):
        model.save(tmp_path / "m.npz", metadata=[1])
    with pytest.raises(SoftmaxkitValueError, match="is a directory"):
        model.save(tmp_path)
    with pytest.raises(SoftmaxkitValueError, match="does not exist"):
        model.save(tmp_path / "nowhere" / "m.npz")
    assert list(tmp_path.iterdir()) == []


# --- item 12: crafted files --------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory):
    X, y = data()
    path = tmp_path_factory.mktemp("model") / "m.npz"
    Classifier(**TINY).fit(X, y).save(path)
    return path.read_bytes()


def _parts(raw: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(io.BytesIO(raw)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(arrays.pop("header").tobytes()), arrays


def _write(path, header, arrays) -> None:
    raw = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, header=raw, **arrays)


def _refused(path) -> SoftmaxkitValueError:
    with pytest.raises(SoftmaxkitValueError) as info:
        Classifier.load(path)
    assert str(path) in str(info.value)
    return info.value


CRAFTED = {
    "history_list": lambda h: h.update(history=[1, 2]),
    "history_strings": lambda h: h.update(history={"loss": ["a"]}),
    "history_ragged": lambda h: h.update(history={"loss": [1.0], "accuracy": []}),
    "arrays_string": lambda h: h["arrays"].update(mean="x"),
    "arrays_list": lambda h: h.update(arrays=[1]),
    "arrays_bad_shape": lambda h: h["arrays"]["mean"].update(shape="ab"),
    "n_features_string": lambda h: h.update(n_features_in="abc"),
    "n_features_float": lambda h: h.update(n_features_in=2.0),
    "n_features_zero": lambda h: h.update(n_features_in=0),
    "hidden_huge": lambda h: h["params"].update(hidden=[10**12]),
    "hidden_string": lambda h: h["params"].update(hidden="4"),
    "multilabel_on_softmax": lambda h: h.update(multilabel=True),
    "multilabel_string": lambda h: h.update(multilabel="yes"),
    "params_list": lambda h: h.update(params=[1]),
    "params_missing": lambda h: h["params"].pop("seed"),
    "params_extra": lambda h: h["params"].update(colour="red"),
    "params_numpy_object": lambda h: h["params"].update(epochs={"numpy": "|O", "value": 2}),
    "params_numpy_junk": lambda h: h["params"].update(epochs={"numpy": "zz", "value": 2}),
    "params_numpy_overflow": lambda h: h["params"].update(epochs={"numpy": "|i1", "value": 999}),
    "params_nested": lambda h: h["params"].update(epochs=[2]),
    "seed_negative": lambda h: h["params"].update(seed=-1),
    "version_float": lambda h: h.update(version=1.0),
    "version_true": lambda h: h.update(version=True),
    "metadata_number": lambda h: h.update(metadata=3),
    "extra_field": lambda h: h.update(extra=1),
    "missing_field": lambda h: h.pop("history"),
}


@pytest.mark.parametrize("change", list(CRAFTED.values()), ids=list(CRAFTED))
def test_load_refuses_crafted_header_with_one_clear_error(tmp_path, saved_bytes, change):
    header, arrays = _parts(saved_bytes)
    change(header)
    path = tmp_path / "crafted.npz"
    _write(path, header, arrays)
    _refused(path)


def test_load_refuses_multilabel_flag_on_softmax_model(tmp_path, saved_bytes):
    header, arrays = _parts(saved_bytes)
    header["multilabel"] = True
    path = tmp_path / "m.npz"
    _write(path, header, arrays)
    assert "`multilabel` is true but the head is 'softmax'" in str(_refused(path))


def test_load_refuses_header_npy_that_is_not_npy(tmp_path, saved_bytes):
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(io.BytesIO(saved_bytes)) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data_ = b"hello, not a .npy" if info.filename == "header.npy" else src.read(info)
            dst.writestr(info.filename, data_)
    assert "damaged header" in str(_refused(path))


def _npy_header(shape, dtype="<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def test_load_of_member_announcing_a_huge_shape_allocates_nothing(tmp_path, saved_bytes):
    # 'mean' announces 10**11 float64 (800 GB) but holds 16 bytes; np.load would
    # allocate the announced size before noticing.
    header, arrays = _parts(saved_bytes)
    header["arrays"]["mean"]["shape"] = [10**11]
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as zf:
        raw = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.save(buffer, raw)
        zf.writestr("header.npy", buffer.getvalue())
        for name, a in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, a)
            member = buffer.getvalue()
            if name == "mean":
                member = _npy_header((10**11,)) + a.tobytes()
            zf.writestr(f"{name}.npy", member)
    tracemalloc.start()
    try:
        message = str(_refused(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "announces shape (100000000000,)" in message
    assert peak < 50 * 2**20


def test_load_of_hidden_10_to_the_12_header_allocates_nothing(tmp_path, saved_bytes):
    header, arrays = _parts(saved_bytes)
    header["params"]["hidden"] = [10**12]
    path = tmp_path / "m.npz"
    _write(path, header, arrays)
    tracemalloc.start()
    try:
        message = str(_refused(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "'param.0.weight' must have shape (2, 1000000000000)" in message
    assert peak < 50 * 2**20


def test_load_refuses_compressed_and_foreign_members(tmp_path, saved_bytes):
    compressed = tmp_path / "c.npz"
    with zipfile.ZipFile(io.BytesIO(saved_bytes)) as src:
        with zipfile.ZipFile(compressed, "w", compression=zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info))
    assert "compressed" in str(_refused(compressed))
    foreign = tmp_path / "f.npz"
    foreign.write_bytes(saved_bytes)
    with zipfile.ZipFile(foreign, "a") as zf:
        zf.writestr("notes.txt", b"hello")
    assert "members other than .npy arrays" in str(_refused(foreign))
    extra = tmp_path / "e.npz"
    header, arrays = _parts(saved_bytes)
    arrays["spare"] = np.zeros(3)
    header["arrays"]["spare"] = {
        "shape": [3],
        "dtype": "<f8",
        "sha256": __import__("hashlib").sha256(np.zeros(3).tobytes()).hexdigest(),
    }
    _write(extra, header, arrays)
    assert "no place for" in str(_refused(extra))


def test_load_refuses_a_directory_and_a_single_npy(tmp_path):
    assert "is a directory" in str(_refused(tmp_path))
    single = tmp_path / "x.npy"
    np.save(single, np.zeros(3))
    assert "single .npy array" in str(_refused(single))


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = [
    ("format",), ("version",), ("params",), ("multilabel",), ("n_features_in",), ("history",),
    ("metadata",), ("arrays",), ("arrays", "mean"), ("arrays", "mean", "shape"),
    ("arrays", "classes", "dtype"), ("arrays", "param.0.weight", "sha256"),
    *(("params", name) for name in Classifier._PARAMS), ("history", "loss"),
]  # fmt: skip


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(field=st.sampled_from(FIELDS), value=JSON)
def test_load_fuzzed_header_gives_only_softmaxkit_value_error(
    tmp_path, saved_bytes, reference_proba, field, value
):
    header, arrays = _parts(saved_bytes)
    target = header
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    path = tmp_path / "fuzzed.npz"
    _write(path, header, arrays)
    try:
        model = Classifier.load(path)
    except SoftmaxkitValueError as exc:
        assert str(path) in str(exc)
        return
    # A change that loads must be harmless: the same network and the same predictions.
    X, _ = data()
    np.testing.assert_array_equal(model.predict_proba(X), reference_proba)
    assert model.multilabel_ is False


@pytest.fixture(scope="module")
def reference_proba(saved_bytes, tmp_path_factory):
    path = tmp_path_factory.mktemp("reference") / "m.npz"
    path.write_bytes(saved_bytes)
    return Classifier.load(path).predict_proba(data()[0])


def test_score_and_eval_set_read_object_labels_as_fit_stores_them():
    # fit stores object labels as str; score and eval_set compared the raw objects
    # ('1' != 1), so a model right on every row could score 0.
    X, _ = data()
    y = _labels("object-mixed", 24)
    model = Classifier(hidden=(8,), epochs=30, batch_size=8).fit(X, y, eval_set=(X, y))
    expected = float(np.mean(model.predict(X) == y.astype(str)))
    assert expected > 0.5
    assert model.score(X, y) == expected
    assert model.history_["val_accuracy"][-1] == expected


def test_set_params_after_fit_changes_neither_predictions_nor_the_saved_model(tmp_path):
    # predict_proba read the current head (set_params(head="logistic") turned the
    # softmax into sigmoids) and save wrote the current settings, so a dropout set
    # after fit made a file that load refused.
    X, y = data()
    model = Classifier(**TINY).fit(X, y)
    before = model.predict_proba(X)
    model.set_params(head="logistic", dropout=0.3, hidden=(9, 9))
    np.testing.assert_array_equal(model.predict_proba(X), before)
    loaded = Classifier.load(model.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(loaded.predict_proba(X), before)
    assert loaded.get_params()["head"] == "softmax" and loaded.get_params()["hidden"] == (4,)


def test_score_with_scalar_y_is_refused():
    X, y = data()
    model = Classifier(**TINY).fit(X, y)
    with pytest.raises(SoftmaxkitValueError, match="got 24 rows and a scalar labels"):
        model.score(X, 1)


@pytest.mark.parametrize("name", ["on_batch", "on_epoch"])
def test_fit_callback_that_is_not_callable_is_refused_before_training(name):
    with pytest.raises(SoftmaxkitTypeError, match=f"`{name}` must be a callable or None"):
        Classifier(**TINY).fit(*data(), **{name: "print"})


def test_save_and_load_refuse_a_path_that_is_not_a_path(tmp_path):
    model = Classifier(**TINY).fit(*data())
    # open(5) would read or write file descriptor 5
    with pytest.raises(SoftmaxkitTypeError, match=r"`path` must be a str or os\.PathLike"):
        model.save(5)
    with pytest.raises(SoftmaxkitTypeError, match=r"`path` must be a str or os\.PathLike"):
        Classifier.load(5)


# --- the report: the same kind of defect in write_report / report_metrics ----------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, X, y, d: _report().write_report(d, m, X, y, image_shape=(3, 3)), "`image_shape`"),
        (lambda m, X, y, d: _report().write_report(d, m, X, y, image_shape="ab"), "`image_shape`"),
        (lambda m, X, y, d: _report().write_report(d, m, X[:0], y[:0]), "at least one example"),
        (lambda m, X, y, d: _report().write_report(d, m, X, y[:5]), r"`y` must have shape \(24,\)"),
        (lambda m, X, y, d: _report().report_metrics(m, X, np.zeros((24, 2))), "`y` must have"),
        (lambda m, X, y, d: _report().write_report(d, Classifier(), X, y), "not fitted yet"),
        (lambda m, X, y, d: _report().write_report(d, m, X, y + 5), "labels the model knows"),
        (lambda m, X, y, d: _report().write_report(d, m, X, y, extra={"a": object()}), "`extra`"),
    ],
    ids=["image_shape", "image_shape_str", "empty", "length", "2d_y", "unfitted", "unknown", "extra"],
)  # fmt: skip
def test_write_report_bad_input_is_one_clear_error_before_any_file(tmp_path, call, message):
    X, y = data()
    model = Classifier(**TINY).fit(X, y)
    with pytest.raises(SoftmaxkitError, match=message):
        call(model, X, y, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _report():
    from softmaxkit import _report

    return _report


@pytest.mark.parametrize(
    "make",
    [
        lambda X: X + 1j,  # float64(X) dropped the imaginary part
        lambda X: X.astype(str),  # and parsed strings
        lambda X: [[str(v) for v in row] for row in X.tolist()],
        lambda X: (X * 1000).astype("datetime64[D]"),
    ],
    ids=["complex", "str_array", "str_list", "datetime"],
)
def test_classifier_X_that_is_not_real_numbers_is_refused_not_converted(make):
    # complex X is a ValueError ("Complex data not supported"), as scikit-learn's checks want;
    # strings and dates a TypeError.
    X, y = data()
    with pytest.raises(SoftmaxkitError, match="`X` must be an array of real numbers"):
        Classifier(**TINY).fit(make(X), y)
    model = Classifier(**TINY).fit(X, y)
    with pytest.raises(SoftmaxkitError, match="`X` must be an array of real numbers"):
        model.predict(make(X))


def test_gridsearchcv_best_estimator_with_numpy_scalar_settings_saves_and_loads(tmp_path):
    # the grid hands out np.int64 / np.float64: save failed with "int64 is not JSON serializable"
    from sklearn.model_selection import GridSearchCV

    X, y = data()
    grid = {"epochs": np.array([1, 2]), "learning_rate": np.array([0.01, 0.1])}
    best = GridSearchCV(Classifier(hidden=(4,), batch_size=8), grid, cv=2).fit(X, y).best_estimator_
    assert isinstance(best.epochs, np.int64)
    loaded = Classifier.load(best.save(tmp_path / "m.npz"))
    assert repr(loaded) == repr(best)
    np.testing.assert_array_equal(loaded.predict_proba(X), best.predict_proba(X))


@pytest.mark.parametrize(
    ("head", "make", "message"),
    [
        ("softmax", lambda X, y: (X, y[:3]), "`eval_set` must hold as many labels as rows"),
        ("softmax", lambda X, y: (X, np.zeros((24, 2))), r"`eval_set\[1\]` must have shape \(N,\)"),
        ("softmax", lambda X, y: (X, y + 10), "labels seen in training"),
        ("logistic2d", lambda X, y: (X, np.zeros((24, 2))), r"shape \(N, 3\), as `y`"),
        ("logistic2d", lambda X, y: (X, np.zeros((5, 3))), "as many labels as rows"),
    ],
    ids=["short", "2d", "unknown", "multilabel_width", "multilabel_short"],
)  # fmt: skip
def test_classifier_bad_eval_set_is_refused_before_the_first_epoch(head, make, message):
    X, y = data()
    target = np.eye(3)[y] if head == "logistic2d" else y
    epochs = []
    model = Classifier(**{**TINY, "head": "logistic" if head == "logistic2d" else "softmax"})
    with pytest.raises(SoftmaxkitValueError, match=message):
        model.fit(X, target, eval_set=make(X, y), on_epoch=lambda e, r: epochs.append(e))
    assert epochs == []


def test_classifier_X_without_features_and_score_y_of_wrong_shape_are_refused():
    X, y = data()
    with pytest.raises(SoftmaxkitValueError, match="`X` must hold at least one feature"):
        Classifier(**TINY).fit(X[:, :0], y)
    model = Classifier(**TINY).fit(X, y)
    with pytest.raises(SoftmaxkitValueError, match=r"`y` must have shape \(24,\)"):
        model.score(X, np.zeros((24, 3)))
