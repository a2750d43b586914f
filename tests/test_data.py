"""softmaxkit.data: the digits split, IDX (raw and .gz) and CSV loaders on files the tests write."""

from __future__ import annotations

import gzip
import re
import tracemalloc

import numpy as np
import pytest

from softmaxkit import SoftmaxkitTypeError, SoftmaxkitValueError
from softmaxkit.data import (
    DIGIT_ATTRIBUTES,
    digit_attributes,
    load_csv,
    load_dataset,
    load_digits,
    load_idx,
    load_mnist,
    split,
)


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An IDX file: 0, 0, type code, ndim, big-endian int32 sizes, big-endian data."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    return header + array.astype(dtype).tobytes()


def test_digits_split_is_fixed_by_the_seed():
    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    assert a.X_train.shape == (1348, 64) and a.X_test.shape == (449, 64)
    assert a.image_shape == (8, 8)
    np.testing.assert_array_equal(a.X_test, b.X_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.y_test, c.y_test)
    # Train and test are disjoint and together are the whole set.
    rows = {r.tobytes() for r in a.X_train} | {r.tobytes() for r in a.X_test}
    from sklearn.datasets import load_digits as sk_digits

    assert rows == {r.astype(np.float64).tobytes() for r in sk_digits().data}
    assert sorted(np.unique(a.y_test).tolist()) == list(range(10))


@pytest.mark.parametrize(
    ("code", "values"),
    [
        (0x08, np.arange(24).reshape(2, 3, 4) * 10),
        (0x09, np.array([-128, 0, 127])),
        (0x0B, np.array([[-30000, 2], [3, 30000]])),
        (0x0C, np.array([-(2**31), 2**31 - 1])),
        (0x0D, np.array([0.5, -1.25])),
        (0x0E, np.array([[1e300, -1e-300]])),
    ],
    ids=["ubyte", "byte", "short", "int", "float", "double"],
)
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
def test_idx_round_trips_every_type(tmp_path, code, values, compressed):
    data = idx_bytes(values, code)
    path = tmp_path / ("x.idx.gz" if compressed else "x.idx")
    path.write_bytes(gzip.compress(data) if compressed else data)
    out = load_idx(path)
    np.testing.assert_array_equal(out, values)
    assert out.shape == values.shape
    assert out.dtype.isnative


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x00\x08\x01", "must start with two zero bytes; got 01000801"),
        (b"", "an empty file"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), "type code 0x07"),
        (bytes([0, 0, 0x08, 2, 0, 0, 0, 1]), "truncated: its header announces 2 dimensions"),
        (
            bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 1, 2]),
            r"must hold 3 data bytes for shape \(3,\); got 2",
        ),
    ],
    ids=["magic", "empty", "type_code", "short_header", "short_data"],
)
def test_bad_idx_files_are_refused_saying_why(tmp_path, data, message):
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(SoftmaxkitValueError, match=message):
        load_idx(path)


def test_broken_gzip_is_refused(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(100), 0x08))[:30])
    with pytest.raises(SoftmaxkitValueError, match="not a readable gzip file"):
        load_idx(path)


def write_mnist(directory, n_train=5, n_test=3, compress=False):
    rng = np.random.default_rng(0)
    parts = {
        "train-images-idx3-ubyte": (rng.integers(0, 256, (n_train, 4, 3)), 0x08),
        "train-labels-idx1-ubyte": (rng.integers(0, 10, n_train), 0x08),
        "t10k-images-idx3-ubyte": (rng.integers(0, 256, (n_test, 4, 3)), 0x08),
        "t10k-labels-idx1-ubyte": (rng.integers(0, 10, n_test), 0x08),
    }
    for name, (values, code) in parts.items():
        data = idx_bytes(values, code)
        if compress:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return {name: values for name, (values, _) in parts.items()}


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_mnist_directory_loads_with_the_official_split(tmp_path, compress):
    parts = write_mnist(tmp_path, compress=compress)
    data = load_mnist(tmp_path)
    assert data.X_train.shape == (5, 12) and data.X_test.shape == (3, 12)
    assert data.image_shape == (4, 3)
    assert data.X_train.dtype == np.float64 and data.y_train.dtype == np.int64
    np.testing.assert_array_equal(data.X_test[1].reshape(4, 3), parts["t10k-images-idx3-ubyte"][1])
    np.testing.assert_array_equal(data.y_train, parts["train-labels-idx1-ubyte"])
    assert load_dataset(str(tmp_path)).X_train.shape == (5, 12)


def test_mnist_with_a_missing_file_or_mismatched_counts_is_refused(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(SoftmaxkitValueError, match="must hold t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(4), 0x08))
    with pytest.raises(SoftmaxkitValueError, match=r"MNIST test files must hold images"):
        load_mnist(tmp_path)


def test_csv_with_header_and_string_labels(tmp_path):
    path = tmp_path / "animals.csv"
    rows = ["height,weight,animal"] + [
        f"{i},{2 * i},{['cat', 'dog', 'elephant'][i % 3]}" for i in range(12)
    ]
    path.write_text("\n".join(rows) + "\n")
    data = load_csv(path, test_size=0.25, seed=0)
    assert data.X_train.shape == (9, 2) and data.X_test.shape == (3, 2)
    assert data.y_train.dtype.kind == "U"
    X = np.concatenate([data.X_train, data.X_test])
    y = np.concatenate([data.y_train, data.y_test])
    for features, label in zip(X, y, strict=True):
        i = int(features[0])
        assert features[1] == 2 * i and label == ["cat", "dog", "elephant"][i % 3]
    assert load_dataset(str(path)).X_test.shape == (3, 2)


def test_csv_integer_labels_without_header(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("0.5,1.5,3\n1,2,7\n\n2,3,3\n")
    data = load_csv(path, test_size=0.5)
    assert np.concatenate([data.y_train, data.y_test]).dtype == np.int64
    assert sorted(np.concatenate([data.y_train, data.y_test]).tolist()) == [3, 3, 7]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one data row"),
        ("a,b,label\n", "at least one data row"),
        ("1,2,x\n1,x\n", "every row must have 3 cells; line 2 has 2"),
        ("1,2,x\n1,abc,y\n", r"features must be numbers; line 2 holds \['1', 'abc'\]"),
        ("x\n", "at least one feature and a label"),
    ],
    ids=["empty", "header_only", "ragged", "not_a_number", "one_column"],
)
def test_bad_csv_is_refused_naming_the_row(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(SoftmaxkitValueError, match=message):
        load_csv(path)


def test_unknown_data_spec_is_refused(tmp_path):
    with pytest.raises(SoftmaxkitValueError, match="'digits', a directory of MNIST"):
        load_dataset(str(tmp_path / "nowhere.csv"))


def test_digit_attributes_are_even_greater_than_4_prime_round():
    assert DIGIT_ATTRIBUTES == ("even", "greater than 4", "prime", "round")
    table = digit_attributes(np.arange(10))
    assert [d for d in range(10) if table[d, 0]] == [0, 2, 4, 6, 8]
    assert [d for d in range(10) if table[d, 1]] == [5, 6, 7, 8, 9]
    assert [d for d in range(10) if table[d, 2]] == [2, 3, 5, 7]
    assert [d for d in range(10) if table[d, 3]] == [0, 6, 8, 9]
    with pytest.raises(SoftmaxkitValueError, match="integer labels 0-9"):
        digit_attributes(np.array([10]))


# --- issue 17 item 13: encodings, damaged IDX headers, and the rest of their kind -------------


def test_load_csv_utf8_with_byte_order_mark_keeps_its_first_row(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeff1,2,a\n3,4,b\n5,6,a\n7,8,b\n".encode())
    data = load_csv(path, test_size=0.25)
    assert data.X_train.shape[0] + data.X_test.shape[0] == 4
    assert 1.0 in np.concatenate([data.X_train, data.X_test])[:, 0]


def test_load_csv_latin1_is_a_clear_error_and_reads_with_its_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("1,2,café\n3,4,thé\n".encode("latin-1"))
    with pytest.raises(SoftmaxkitValueError, match=r"is not utf-8 text .* `encoding`"):
        load_csv(path)
    data = load_csv(path, encoding="latin-1", test_size=0.5)
    assert sorted(np.concatenate([data.y_train, data.y_test]).tolist()) == ["café", "thé"]
    with pytest.raises(SoftmaxkitValueError, match="`encoding` 'klingon' is not a known"):
        load_csv(path, encoding="klingon")


@pytest.mark.parametrize("cell", ["nan", "inf", "-inf", "1e400"])
def test_load_csv_non_finite_feature_is_refused_naming_the_line(tmp_path, cell):
    path = tmp_path / "nan.csv"
    path.write_text(f"a,b,label\n1,2,x\n3,{cell},y\n")
    with pytest.raises(SoftmaxkitValueError, match="features must be finite; line 3"):
        load_csv(path)


def test_load_csv_label_beyond_int64_is_kept_as_a_name(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("1,2,99999999999999999999\n3,4,1\n5,6,1\n")
    data = load_csv(path, test_size=0.34)
    labels = np.concatenate([data.y_train, data.y_test])
    assert labels.dtype.kind == "U"
    assert sorted(labels.tolist()) == ["1", "1", "99999999999999999999"]


def test_load_csv_missing_file_directory_and_single_row_are_clear_errors(tmp_path):
    with pytest.raises(SoftmaxkitValueError, match="does not exist"):
        load_csv(tmp_path / "nope.csv")
    with pytest.raises(SoftmaxkitValueError, match="is a directory"):
        load_csv(tmp_path)
    one = tmp_path / "one.csv"
    one.write_text("1,2,a\n")
    with pytest.raises(SoftmaxkitValueError, match="at least 2 data rows"):
        load_csv(one)


def _idx(code: int, dims: list[int], payload: bytes) -> bytes:
    return (
        bytes([0, 0, code, len(dims)])
        + b"".join(int(d).to_bytes(4, "big", signed=True) for d in dims)
        + payload
    )


def test_load_idx_negative_dimensions_are_refused(tmp_path):
    path = tmp_path / "neg.idx"
    path.write_bytes(_idx(0x08, [-1, -3], b"abc"))
    with pytest.raises(SoftmaxkitValueError, match=r"negative dimensions \(-1, -3\)"):
        load_idx(path)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "an empty file"),
        (b"\x00\x00", "an empty file|must start with two zero bytes"),
        (b"PK\x03\x04", "must start with two zero bytes"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), "type code 0x07"),
        (bytes([0, 0, 0x08, 3, 0, 0]), "truncated"),
        (_idx(0x08, [2, 3], b"\x01\x02"), "must hold 6 data bytes for shape (2, 3); got 2"),
        (_idx(0x08, [2], b"\x01\x02\x03"), "must hold 2 data bytes for shape (2,); got more"),
        (_idx(0x0D, [2**31 - 1] * 3, b"abc"), f"must hold {(2**31 - 1) ** 3 * 4} data bytes"),
    ],
    ids=["empty", "two_bytes", "wrong_magic", "type", "short_header", "short", "long", "huge"],
)
def test_load_idx_damaged_file_is_refused_without_reading_more_than_it_holds(
    tmp_path, raw, message
):
    path = tmp_path / "bad.idx"
    path.write_bytes(raw)
    pattern = message if "|" in message else re.escape(message)
    with pytest.raises(SoftmaxkitValueError, match=pattern):
        load_idx(path)


def test_load_idx_gzip_that_expands_past_its_header_is_refused_unread(tmp_path):
    path = tmp_path / "bomb.idx.gz"
    # 5 announced bytes followed by 200 MB of zeros (compressing to ~200 KB)
    path.write_bytes(gzip.compress(_idx(0x08, [5], bytes(200 * 2**20)), compresslevel=1))
    tracemalloc.start()
    try:
        with pytest.raises(SoftmaxkitValueError, match=r"must hold 5 data bytes .* got more"):
            load_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_load_idx_truncated_gzip_and_missing_file_are_clear_errors(tmp_path):
    path = tmp_path / "cut.idx.gz"
    path.write_bytes(gzip.compress(_idx(0x08, [5], b"12345"))[:-6])
    with pytest.raises(SoftmaxkitValueError, match="not a readable gzip file"):
        load_idx(path)
    with pytest.raises(SoftmaxkitValueError, match="does not exist"):
        load_idx(tmp_path / "nope.idx")
    with pytest.raises(SoftmaxkitValueError, match="is a directory"):
        load_idx(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"test_size": "0.2"}, SoftmaxkitTypeError, "`test_size` must be a number"),
        ({"test_size": True}, SoftmaxkitTypeError, "`test_size` must be a number"),
        ({"test_size": 1.0}, SoftmaxkitValueError, r"`test_size` must be in \(0, 1\)"),
        ({"seed": -1}, SoftmaxkitValueError, "`seed` must be an int >= 0; got -1"),
        ({"seed": "a"}, SoftmaxkitTypeError, "`seed` must be an int >= 0"),
        ({"seed": 1.5}, SoftmaxkitTypeError, "`seed` must be an int >= 0"),
    ],
)
def test_split_and_load_csv_bad_options_are_clear_errors(tmp_path, kwargs, error, message):
    X, y = np.zeros((4, 1)), np.arange(4)
    with pytest.raises(error, match=message):
        split("x", X, y, **kwargs)
    path = tmp_path / "ok.csv"
    path.write_text("1,2,a\n3,4,b\n5,6,a\n")
    with pytest.raises(error, match=message):
        load_csv(path, **kwargs)


def test_split_x_and_y_of_different_lengths_is_refused():
    with pytest.raises(SoftmaxkitValueError, match="4 rows and 3 labels"):
        split("x", np.zeros((4, 1)), np.arange(3))


def test_load_dataset_spec_that_is_not_a_path_is_refused():
    with pytest.raises(SoftmaxkitTypeError, match="`data` must be a str or a path"):
        load_dataset(5)
