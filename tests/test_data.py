"""softmaxkit.data: the digits split, IDX (raw and .gz) and CSV loaders on files the tests write."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from softmaxkit import SoftmaxkitValueError
from softmaxkit.data import (
    DIGIT_ATTRIBUTES,
    digit_attributes,
    load_csv,
    load_dataset,
    load_digits,
    load_idx,
    load_mnist,
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
