"""Data sets for :class:`softmaxkit.Classifier`: the embedded digits, MNIST IDX files, CSV.

Every loader returns a :class:`Dataset` (train and test arrays, class names,
image shape).  :func:`load_dataset` picks the loader from a spec string, the
way ``softmaxkit train --data`` does:

* ``"digits"``: the 1797 8x8 handwritten digits scikit-learn ships (no network);
* a directory holding MNIST's four IDX files (raw or ``.gz``);
* a ``.csv`` file, one example per row: the features, then the label.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError

__all__ = [
    "DIGIT_ATTRIBUTES",
    "Dataset",
    "digit_attributes",
    "load_csv",
    "load_dataset",
    "load_digits",
    "load_idx",
    "load_mnist",
    "split",
]

PathLike = str | os.PathLike[str]

DIGIT_ATTRIBUTES = ("even", "greater than 4", "prime", "round")
"""Attributes of a digit for the multi-label demo (an image can have several), in column order.

"round" means the digit is drawn with a closed loop (0, 6, 8, 9).

Examples
--------
>>> from softmaxkit.data import DIGIT_ATTRIBUTES, digit_attributes
>>> dict(zip(DIGIT_ATTRIBUTES, digit_attributes([8])[0].tolist()))
{'even': 1, 'greater than 4': 1, 'prime': 0, 'round': 1}
"""
_ATTRIBUTE_SETS = ({0, 2, 4, 6, 8}, {5, 6, 7, 8, 9}, {2, 3, 5, 7}, {0, 6, 8, 9})


@dataclass(frozen=True)
class Dataset:
    """A train/test split.

    ``X_*`` are float64 arrays of shape ``(N, n_features)``; ``y_*`` hold the
    labels, shape ``(N,)`` (or ``(N, K)`` of 0/1 for multi-label data).
    ``label_names`` names the columns of a multi-label ``y`` (empty
    otherwise); ``image_shape`` says how to draw a row of ``X`` as an image,
    or is ``None``.

    Examples
    --------
    >>> from softmaxkit.data import load_digits
    >>> data = load_digits()
    >>> data.name, data.X_train.shape, data.y_test.shape, data.image_shape
    ('digits', (1348, 64), (449,), (8, 8))
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int] | None = None
    label_names: tuple[str, ...] = ()

    def with_attributes(self) -> Dataset:
        """The same images with :func:`digit_attributes` as multi-label targets."""
        return Dataset(
            f"{self.name} attributes",
            self.X_train,
            digit_attributes(self.y_train),
            self.X_test,
            digit_attributes(self.y_test),
            self.image_shape,
            DIGIT_ATTRIBUTES,
        )


def digit_attributes(digits: np.ndarray, /) -> np.ndarray:
    """The 0/1 matrix ``(N, 4)`` of :data:`DIGIT_ATTRIBUTES` for digit labels 0-9.

    Examples
    --------
    >>> from softmaxkit.data import digit_attributes
    >>> digit_attributes([8, 3]).tolist()  # 8: even, > 4, round; 3: prime
    [[1, 1, 0, 1], [0, 0, 1, 0]]
    """
    d = np.asarray(digits)
    if d.ndim != 1 or d.dtype.kind not in "iu" or (d.size and (d.min() < 0 or d.max() > 9)):
        raise SoftmaxkitValueError(
            f"`digits` must be integer labels 0-9 of shape (N,); got dtype {d.dtype}, "
            f"shape {d.shape}"
        )
    return np.stack([np.isin(d, sorted(s)) for s in _ATTRIBUTE_SETS], axis=1).astype(np.int64)


def _check_split_options(test_size: object, seed: object) -> None:
    real = (int, float, np.integer, np.floating)
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, real):
        raise SoftmaxkitTypeError(f"`test_size` must be a number in (0, 1); got {test_size!r}")
    if not 0.0 < test_size < 1.0:
        raise SoftmaxkitValueError(f"`test_size` must be in (0, 1); got {test_size!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise SoftmaxkitTypeError(f"`seed` must be an int >= 0; got {seed!r}")
    if seed < 0:
        raise SoftmaxkitValueError(f"`seed` must be an int >= 0; got {seed!r}")


def split(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    /,
    *,
    test_size: float = 0.25,
    seed: int = 0,
    image_shape: tuple[int, int] | None = None,
) -> Dataset:
    """Shuffle with ``seed`` and hold out a fraction ``test_size`` (at least one row) as test.

    The permutation comes from ``numpy.random.default_rng(seed)``, so the same
    seed gives the same split on every machine.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.data import split
    >>> data = split("toy", np.arange(20.0).reshape(10, 2), np.arange(10) % 2, test_size=0.3)
    >>> data.X_train.shape, data.X_test.shape
    ((7, 2), (3, 2))
    """
    _check_split_options(test_size, seed)
    if len(X) != len(y):
        raise SoftmaxkitValueError(
            f"`X` and `y` must have the same length; got {len(X)} rows and {len(y)} labels"
        )
    n = X.shape[0]
    if n < 2:
        raise SoftmaxkitValueError(f"`X` must hold at least 2 rows to split; got {n}")
    n_test = min(n - 1, max(1, round(n * test_size)))
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    return Dataset(name, X[train], y[train], X[test], y[test], image_shape)


def load_digits(*, test_size: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's 1797 handwritten digits (8x8 images, pixel values 0-16), split with ``seed``.

    The data ship inside scikit-learn (the ``data`` extra); nothing is downloaded.
    With the defaults: 1348 training and 449 test images.

    Examples
    --------
    >>> from softmaxkit.data import load_digits
    >>> data = load_digits(test_size=0.5, seed=1)
    >>> len(data.X_train), len(data.X_test), sorted(set(data.y_train.tolist())) == list(range(10))
    (899, 898, True)
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the digits data need scikit-learn: pip install 'softmaxkit[data]'"
        ) from exc
    bunch = sklearn_digits()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    return split("digits", X, y, test_size=test_size, seed=seed, image_shape=(8, 8))


# IDX type codes (http://yann.lecun.com/exdb/mnist/): the element type, stored big-endian.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open_checked(path: Path) -> None:
    if not path.exists():
        raise SoftmaxkitValueError(f"`path` {str(path)!r} does not exist")
    if path.is_dir():
        raise SoftmaxkitValueError(f"`path` {str(path)!r} is a directory, not a file")


def _read_bytes(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of ``path``, decompressed if it is gzip (by its magic bytes).

    Reading in bounded chunks means a small gzip file that expands to gigabytes (or
    an IDX header announcing them) never makes us hold more than ``limit`` bytes.
    """
    _open_checked(path)
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        chunks = []
        size = 0
        with opener(path, "rb") as f:
            while size < limit:
                chunk = f.read(min(limit - size, 2**24))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        return b"".join(chunks)
    except (OSError, EOFError, zlib.error) as exc:
        what = "gzip file" if head == b"\x1f\x8b" else "file"
        raise SoftmaxkitValueError(
            f"`path` {str(path)!r} is not a readable {what}: {exc}"
        ) from None


def load_idx(path: PathLike, /) -> np.ndarray:
    """The array stored in an IDX file (MNIST's format), raw or gzip-compressed.

    The header is two zero bytes, a type code (``0x08`` unsigned byte ...
    ``0x0E`` float64), the number of dimensions ``d``, then ``d`` big-endian
    int32 sizes; the data follow in C order.  Compression is recognised from
    the gzip magic bytes, whatever the file is called.

    Raises
    ------
    SoftmaxkitValueError
        For a bad magic number, an unknown type code, or a data length that
        does not match the header, saying which.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from softmaxkit.data import load_idx
    >>> raw = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = open(os.path.join(d, "x.idx"), "wb").write(raw)
    ...     load_idx(os.path.join(d, "x.idx")).tolist()
    [[1, 2, 3], [4, 5, 6]]
    """
    path = Path(path)
    name = str(path)
    # The header (at most 4 + 4 * 255 bytes) first, then exactly the data it announces
    # and one byte more to tell a file with trailing bytes from one of the right length.
    data = _read_bytes(path, 4 + 4 * 255)
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise SoftmaxkitValueError(
            f"`path` {name!r} is not an IDX file: it must start with two zero bytes; "
            f"got {data[:4].hex() or 'an empty file'}"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise SoftmaxkitValueError(
            f"`path` {name!r} has IDX type code {code:#04x}; expected one of "
            f"{', '.join(f'{c:#04x}' for c in _IDX_TYPES)}"
        )
    header_end = 4 + 4 * ndim
    if len(data) < header_end:
        raise SoftmaxkitValueError(
            f"`path` {name!r} is truncated: its header announces {ndim} dimensions but "
            f"the file has {len(data)} bytes"
        )
    shape = tuple(int(s) for s in np.frombuffer(data[4:header_end], dtype=">i4"))
    if any(s < 0 for s in shape):
        raise SoftmaxkitValueError(
            f"`path` {name!r} is damaged: its IDX header gives the negative dimensions {shape}"
        )
    dtype = np.dtype(_IDX_TYPES[code])
    expected = math.prod(shape) * dtype.itemsize
    data = _read_bytes(path, header_end + expected + 1)
    if len(data) - header_end != expected:
        got = len(data) - header_end
        raise SoftmaxkitValueError(
            f"`path` {name!r} must hold {expected} data bytes for shape {shape}; "
            f"got {got if got < expected else 'more'}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_end).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


_MNIST_FILES = {
    "X_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "X_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def _find(directory: Path, stem: str) -> Path:
    # MNIST mirrors spell the files with "-" or "." before "idx"; accept both.
    stems = {stem, stem.replace("-idx", ".idx")}
    for s in stems:
        for candidate in (directory / s, directory / f"{s}.gz"):
            if candidate.is_file():
                return candidate
    raise SoftmaxkitValueError(
        f"`directory` {str(directory)!r} must hold {stem} (or {stem}.gz); it does not"
    )


def load_mnist(directory: PathLike, /) -> Dataset:
    """MNIST (or Fashion-MNIST) from the four IDX files in ``directory``, raw or ``.gz``.

    The images are flattened to rows of ``height * width`` float64 pixels; the
    official train/test split is kept.

    Examples
    --------
    Four tiny IDX files (two 2x2 training images, one test image):

    >>> import os, tempfile
    >>> from softmaxkit.data import load_mnist
    >>> def idx(code, dims, data):
    ...     header = bytes([0, 0, code, len(dims)])
    ...     return header + b"".join(n.to_bytes(4, "big") for n in dims) + bytes(data)
    >>> files = {
    ...     "train-images-idx3-ubyte": idx(8, [2, 2, 2], range(8)),
    ...     "train-labels-idx1-ubyte": idx(8, [2], [3, 7]),
    ...     "t10k-images-idx3-ubyte": idx(8, [1, 2, 2], [9, 9, 9, 9]),
    ...     "t10k-labels-idx1-ubyte": idx(8, [1], [1]),
    ... }
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for name, raw in files.items():
    ...         _ = open(os.path.join(d, name), "wb").write(raw)
    ...     data = load_mnist(d)
    >>> data.X_train.tolist(), data.y_train.tolist(), data.image_shape
    ([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]], [3, 7], (2, 2))
    """
    directory = Path(directory)
    arrays = {key: load_idx(_find(directory, stem)) for key, stem in _MNIST_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"X_{part}"], arrays[f"y_{part}"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise SoftmaxkitValueError(
                f"MNIST {part} files must hold images (N, H, W) and labels (N,); got "
                f"shapes {images.shape} and {labels.shape}"
            )
    shape = arrays["X_train"].shape[1:]
    if arrays["X_test"].shape[1:] != shape:
        raise SoftmaxkitValueError(
            f"MNIST train and test images must have one size; got {shape} and "
            f"{arrays['X_test'].shape[1:]}"
        )
    flat = {
        k: v.reshape(v.shape[0], -1).astype(np.float64) for k, v in arrays.items() if k[0] == "X"
    }
    return Dataset(
        directory.name or "mnist",
        flat["X_train"],
        arrays["y_train"].astype(np.int64),
        flat["X_test"],
        arrays["y_test"].astype(np.int64),
        (int(shape[0]), int(shape[1])),
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_csv(
    path: PathLike,
    /,
    *,
    test_size: float = 0.25,
    seed: int = 0,
    image_shape: tuple[int, int] | None = None,
    encoding: str = "utf-8",
) -> Dataset:
    """Rows of ``features..., label`` from a CSV file, split with ``seed`` (see :func:`split`).

    A first row whose feature cells are not all numbers is taken as a header.
    Features must be finite numbers.  Labels are kept as strings, or as
    integers when every label is one that fits in int64.  ``image_shape``
    (``(height, width)``) lets the report draw the rows as images.  The file
    is read as ``encoding`` (a UTF-8 byte-order mark is skipped).

    Raises
    ------
    SoftmaxkitValueError
        For a missing or empty file, text that is not in ``encoding``, rows of
        different lengths, or a feature that is not a finite number, naming
        the line.

    Examples
    --------
    >>> import csv, os, tempfile
    >>> from softmaxkit.data import load_csv
    >>> rows = [["width", "height", "animal"], [1, 2, "cat"], [1, 3, "cat"], [9, 8, "dog"], [8, 9, "dog"]]
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = os.path.join(d, "animals.csv")
    ...     with open(path, "w", newline="") as f:
    ...         csv.writer(f).writerows(rows)
    ...     data = load_csv(path, test_size=0.5)
    >>> data.X_train.shape, sorted(data.y_train.tolist() + data.y_test.tolist())
    ((2, 2), ['cat', 'cat', 'dog', 'dog'])
    """
    _check_split_options(test_size, seed)
    path = Path(path)
    name = str(path)
    _open_checked(path)
    # A byte-order mark would otherwise stick to the first cell, so that a numeric
    # first row looks like a header and is dropped.
    if not isinstance(encoding, str):
        raise SoftmaxkitValueError(
            f"`encoding` must be the name of a text encoding; got {encoding!r}"
        )
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        with open(path, newline="", encoding=codec) as f:
            rows = [(reader.line_num, row) for reader in [csv.reader(f)] for row in reader if row]
    except LookupError:
        raise SoftmaxkitValueError(
            f"`encoding` {encoding!r} is not a known text encoding"
        ) from None
    except UnicodeDecodeError as exc:
        raise SoftmaxkitValueError(
            f"`path` {name!r} is not {encoding} text (byte {exc.start} is {exc.object[exc.start]:#04x}); "
            "pass the file's `encoding` (--encoding on the command line), e.g. latin-1"
        ) from None
    except csv.Error as exc:
        raise SoftmaxkitValueError(f"`path` {name!r} is not a readable CSV file: {exc}") from None
    if rows and not all(_is_number(cell) for cell in rows[0][1][:-1]):
        rows = rows[1:]
    if not rows:
        raise SoftmaxkitValueError(f"`path` {name!r} must hold at least one data row; got none")
    width = len(rows[0][1])
    if width < 2:
        raise SoftmaxkitValueError(
            f"`path` {name!r} rows must hold at least one feature and a label; "
            f"the first has {width} cell"
        )
    features = np.empty((len(rows), width - 1))
    labels = []
    for i, (line, row) in enumerate(rows):
        if len(row) != width:
            raise SoftmaxkitValueError(
                f"`path` {name!r}: every row must have {width} cells; line {line} has {len(row)}"
            )
        try:
            features[i] = [float(cell) for cell in row[:-1]]
        except ValueError:
            raise SoftmaxkitValueError(
                f"`path` {name!r}: features must be numbers; line {line} holds {row[:-1]!r}"
            ) from None
        if not np.all(np.isfinite(features[i])):
            raise SoftmaxkitValueError(
                f"`path` {name!r}: features must be finite; line {line} holds {row[:-1]!r}"
            )
        labels.append(row[-1].strip())
    if len(rows) < 2:
        raise SoftmaxkitValueError(
            f"`path` {name!r} must hold at least 2 data rows (one to train, one to test); got 1"
        )
    y: np.ndarray
    try:
        y = np.array([int(label) for label in labels], dtype=np.int64)
    except (ValueError, OverflowError):  # not all integers, or one beyond int64: names
        y = np.array(labels)
    return split(path.stem, features, y, test_size=test_size, seed=seed, image_shape=image_shape)


def load_dataset(spec: str, /, *, seed: int = 0, encoding: str = "utf-8") -> Dataset:
    """``"digits"``, a directory of MNIST IDX files, or a ``.csv`` file (see the module docstring).

    ``encoding`` is the text encoding of a CSV file (see :func:`load_csv`).

    Examples
    --------
    >>> from softmaxkit.data import load_dataset
    >>> load_dataset("digits").X_test.shape
    (449, 64)
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise SoftmaxkitTypeError(f"`data` must be a str or a path; got {spec!r}")
    if spec == "digits":
        return load_digits(seed=seed)
    path = Path(spec)
    if path.is_dir():
        return load_mnist(path)
    if path.is_file():
        return load_csv(path, seed=seed, encoding=encoding)
    raise SoftmaxkitValueError(
        f"`data` must be 'digits', a directory of MNIST IDX files or a CSV file; got {spec!r}, "
        "which does not exist"
    )
