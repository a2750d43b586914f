"""The model file: ``save`` writes one ``.npz`` (weights and a JSON header, never a pickle),
``load`` checks every field and array before building anything.

Format 2 adds the settings scikit-learn users expect (early stopping, class weights,
the schedule, ...) and the training state (``n_iter_``, ``t_``, the best scores); format-1
files still load, their missing settings at the defaults that train as format 1 did.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_bytes
from .._errors import SoftmaxkitError, SoftmaxkitTypeError, SoftmaxkitValueError
from ._heads import LABEL_KINDS, classes_of
from ._settings import DEFAULTS, V1_DEFAULTS, V1_PARAMS, describe, hidden_widths, is_int, is_real

__all__ = ["FORMAT", "FORMAT_VERSION", "load_model", "save_model"]

FORMAT = "softmaxkit.Classifier"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

_HEADER_KEYS_V1 = {"format", "version", "params", "multilabel", "n_features_in", "history"}
_HEADER_KEYS_V1 |= {"metadata", "arrays"}
_HEADER_KEYS = {1: _HEADER_KEYS_V1, 2: _HEADER_KEYS_V1 | {"state"}}
# The most bytes read for the JSON header: far above any real one (hundreds of epochs of
# history), far below what would hurt.
_MAX_HEADER_BYTES = 64 * 2**20


def _check_path(path: Any) -> None:
    # An int would be taken by open() as a file descriptor.
    if not isinstance(path, (str, os.PathLike)):
        raise SoftmaxkitTypeError(f"`path` must be a str or os.PathLike; got {describe(path)}")


def _encode_setting(value: Any) -> Any:
    """A setting as JSON: a NumPy scalar keeps its dtype, so load gives back the same type."""
    if isinstance(value, np.generic):
        return {"numpy": value.dtype.str, "value": value.item()}
    return value


def _decode_setting(name: str, value: Any) -> Any:
    if not isinstance(value, dict):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise SoftmaxkitTypeError(f"setting `{name}` is {describe(value)}")
    if set(value) != {"numpy", "value"} or not isinstance(value["numpy"], str):
        raise SoftmaxkitTypeError(f"setting `{name}` is {value!r}")
    try:
        dtype = np.dtype(value["numpy"])
    except TypeError:
        raise SoftmaxkitTypeError(f"setting `{name}` has dtype {value['numpy']!r}") from None
    raw = value["value"]
    if dtype.kind not in "biuf" or not isinstance(raw, (bool, int, float)):
        raise SoftmaxkitTypeError(f"setting `{name}` is {value!r}")
    try:
        return dtype.type(raw)
    except (OverflowError, TypeError, ValueError):
        raise SoftmaxkitValueError(f"setting `{name}` is {value!r}") from None


def _read_npy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member, its size checked against its header before a byte is allocated.

    ``np.load`` would allocate whatever shape the member's header announces before
    finding the data short; here a member must hold exactly the bytes it announces.
    """
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise SoftmaxkitValueError(f"member {info.filename!r} is compressed; save never does that")
    with zf.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise SoftmaxkitValueError(f"member {info.filename!r} has .npy version {version}")
        if dtype.hasobject:
            raise SoftmaxkitValueError(f"member {info.filename!r} holds Python objects")
        announced = math.prod(shape) * dtype.itemsize
        if announced != info.file_size - member.tell():
            raise SoftmaxkitValueError(
                f"member {info.filename!r} announces shape {shape} of {dtype} "
                f"({announced} bytes) but holds {info.file_size - member.tell()}"
            )
        data = member.read()  # checks the member's CRC-32: altered bytes fail here
    flat = np.frombuffer(data, dtype=dtype)
    return (flat.reshape(shape, order="F") if fortran else flat.reshape(shape)).copy(order="K")


def _read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict]:
    name = str(path)
    with open(path, "rb") as f:
        if f.read(6) == b"\x93NUMPY":
            raise SoftmaxkitValueError(
                f"`path` {name!r} holds a single .npy array, not a softmaxkit model"
            )
        f.seek(0)
        with zipfile.ZipFile(f) as zf:
            infos = {info.filename: info for info in zf.infolist()}
            if "header.npy" not in infos:
                raise SoftmaxkitValueError(
                    f"`path` {name!r} is an .npz file but not a softmaxkit model: it has "
                    f"no header (arrays: {sorted(infos)[:5]})"
                )
            if len(infos) != len(zf.infolist()) or not all(n.endswith(".npy") for n in infos):
                raise SoftmaxkitValueError(
                    f"`path` {name!r} holds members other than .npy arrays, or one twice"
                )
            if infos["header.npy"].file_size > _MAX_HEADER_BYTES:
                raise SoftmaxkitValueError(f"`path` {name!r} has a header of over 64 MiB")
            try:
                raw = _read_npy_member(zf, infos.pop("header.npy"))
                if raw.dtype != np.uint8 or raw.ndim != 1:
                    raise SoftmaxkitValueError("it is not a 1-D array of bytes")
                header = json.loads(raw.tobytes().decode("utf-8"))
            except (SoftmaxkitValueError, UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise SoftmaxkitValueError(f"`path` {name!r} has a damaged header: {exc}") from None
            if not isinstance(header, dict):
                raise SoftmaxkitValueError(
                    f"`path` {name!r} has a header that is not a JSON object"
                )
            # The header is checked before the arrays are read: they are read only if it
            # describes each of them, with the size the file gives it.
            _check_descriptions(header, {n[: -len(".npy")]: i for n, i in infos.items()}, name)
            try:
                arrays = {n[: -len(".npy")]: _read_npy_member(zf, i) for n, i in infos.items()}
            except SoftmaxkitValueError as exc:
                raise SoftmaxkitValueError(f"`path` {name!r}: {exc}") from None
    return arrays, header


def _check_descriptions(header: dict, members: dict[str, zipfile.ZipInfo], name: str) -> None:
    def bad(what: str) -> SoftmaxkitValueError:
        return SoftmaxkitValueError(f"`path` {name!r}: {what}")

    if header.get("format") != FORMAT:
        raise bad(f"format is {header.get('format')!r}; expected {FORMAT!r}")
    version = header.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise bad(
            f"format version is {version!r}; this softmaxkit reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    if set(header) != _HEADER_KEYS[version]:
        raise bad(
            f"the header of version {version} must hold the fields "
            f"{sorted(_HEADER_KEYS[version])}; it holds {sorted(header)}"
        )
    described = header["arrays"]
    if not isinstance(described, dict):
        raise bad(f"the header's `arrays` must be an object; got {describe(described)}")
    if set(described) != set(members):
        raise bad(f"holds arrays {sorted(members)} but its header describes {sorted(described)}")
    for key, spec in described.items():
        if not (
            isinstance(spec, dict)
            and set(spec) == {"shape", "dtype", "sha256"}
            and isinstance(spec["shape"], list)
            and all(is_int(n) and n >= 0 for n in spec["shape"])
            and isinstance(spec["dtype"], str)
            and isinstance(spec["sha256"], str)
        ):
            raise bad(
                f"the header's description of array {key!r} must be "
                f'{{"shape": [ints >= 0], "dtype": str, "sha256": str}}; got {spec!r}'
            )


def _restore(cls: Any, arrays: dict[str, np.ndarray], header: dict, name: str) -> Any:
    def bad(what: str) -> SoftmaxkitValueError:
        return SoftmaxkitValueError(f"`path` {name!r}: {what}")

    described = header["arrays"]
    for key, a in arrays.items():
        spec = described[key]
        if list(a.shape) != spec["shape"] or a.dtype.str != spec["dtype"]:
            raise bad(
                f"array {key!r} has shape {a.shape} and dtype {a.dtype.str}; the header says "
                f"{tuple(spec['shape'])} and {spec['dtype']}"
            )
        if hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() != spec["sha256"]:
            raise bad(f"array {key!r} does not match its checksum: the file was altered")

    params = header["params"]
    names = list(V1_PARAMS) if header["version"] == 1 else list(DEFAULTS)
    if not isinstance(params, dict) or set(params) != set(names):
        got = sorted(params) if isinstance(params, dict) else describe(params)
        raise bad(f"the header's `params` must name {names}; got {got}")
    try:
        settings = {
            k: _decode_setting(k, v)
            for k, v in params.items()
            if k not in ("hidden", "class_weight")
        }
        if not isinstance(params["hidden"], list):
            raise SoftmaxkitTypeError(f"setting `hidden` is {describe(params['hidden'])}")
        settings["hidden"] = tuple(params["hidden"])
        if "class_weight" in params:
            settings["class_weight"] = _decode_class_weight(params["class_weight"])
        if header["version"] == 1:
            settings.update(V1_DEFAULTS)
        model = cls(**settings)
        model._check_settings()
    except SoftmaxkitError as exc:
        raise bad(f"the header's parameters are invalid ({exc})") from None
    state = _check_state(header.get("state", {}), bad)

    n_features = header["n_features_in"]
    if not is_int(n_features) or n_features < 1:
        raise bad(f"`n_features_in` must be an int >= 1; got {describe(n_features)}")
    multilabel = header["multilabel"]
    if not isinstance(multilabel, bool):
        raise bad(f"`multilabel` must be true or false; got {describe(multilabel)}")
    history = header["history"]
    if not (
        isinstance(history, dict)
        and all(isinstance(v, list) and all(is_real(x) for x in v) for v in history.values())
        and len({len(v) for v in history.values()}) <= 1
    ):
        raise bad("`history` must map names to lists of numbers of one length")
    if not isinstance(header["metadata"], dict):
        raise bad(f"`metadata` must be an object; got {describe(header['metadata'])}")

    if "classes" not in arrays:
        raise bad("the array 'classes' is missing")
    classes = arrays["classes"]
    if classes.ndim != 1 or classes.shape[0] == 0 or classes.dtype.kind not in LABEL_KINDS:
        raise bad(f"`classes` must be a 1-D array of labels; got {classes.dtype} {classes.shape}")
    if multilabel:
        if model.head != "logistic":
            raise bad(f"`multilabel` is true but the head is {model.head!r}; only 'logistic'")
        if not np.array_equal(classes, np.arange(classes.shape[0])):
            raise bad("a multi-label model's `classes` must be 0, 1, ..., n_labels - 1")
    elif classes_of(classes)[0].shape != classes.shape:
        raise bad("`classes` must hold distinct labels (as fit makes them)")

    shapes = model._param_shapes(n_features, classes.shape[0])
    expected = {f"param.{k}": v for k, v in shapes.items()}
    expected.update(mean=(n_features,), scale=(n_features,))
    extra = sorted(set(arrays) - set(expected) - {"classes"})
    if extra:
        raise bad(f"holds arrays {extra} that the network it describes has no place for")
    for key, shape in expected.items():
        if key not in arrays:
            raise bad(
                f"array {key!r} is missing for hidden={model.hidden} and {n_features} features"
            )
        a = arrays[key]
        if a.shape != shape or a.dtype != np.float64:
            raise bad(
                f"array {key!r} must have shape {shape} and dtype float64 for "
                f"hidden={model.hidden}, {n_features} features and {classes.shape[0]} outputs; "
                f"got {a.shape} and {a.dtype}"
            )
    if not (np.all(np.isfinite(arrays["mean"])) and np.all(np.isfinite(arrays["scale"]))):
        raise bad("`mean` and `scale` must be finite")
    if not np.all(arrays["scale"] > 0):
        raise bad("`scale` must be > 0")

    # Only now, with every size checked against the arrays the file holds, is anything built.
    network = model._build(n_features, classes.shape[0], np.random.default_rng(0))
    for key, value in network.params.items():
        if value.shape != arrays[f"param.{key}"].shape:  # _param_shapes and _build disagree
            raise SoftmaxkitError(f"internal: {key!r} is built as {value.shape}, not as read")
        value[...] = arrays[f"param.{key}"]
    network.train(False)
    model._fitted_params = {**model.get_params(), "hidden": hidden_widths(model.hidden)}
    model.network_ = network
    model.classes_ = classes
    model.multilabel_ = multilabel
    model.n_features_in_ = int(n_features)
    model.mean_ = arrays["mean"]
    model.scale_ = arrays["scale"]
    model.history_ = {k: [float(x) for x in v] for k, v in history.items()}
    model._metadata = header["metadata"]
    n_epochs = len(model.history_.get("loss", []))
    model.n_iter_ = state.get("n_iter", n_epochs)
    model.t_ = state.get("t", 0)
    model.best_loss_ = state.get("best_loss")
    model.best_validation_score_ = state.get("best_validation_score")
    model._scaling_weight = None  # the running statistics behind mean_ and scale_ are not kept
    return model


def _check_state(state: Any, bad: Any) -> dict[str, Any]:
    """The training state of a format-2 header: counts and the best scores."""
    kinds = {"n_iter": "int", "t": "int", "best_loss": "number", "best_validation_score": "number"}
    if not isinstance(state, dict) or set(state) - set(kinds):
        raise bad(f"`state` must be an object with fields among {sorted(kinds)}; got {state!r}")
    for key, value in state.items():
        if kinds[key] == "int" and not (is_int(value) and value >= 0):
            raise bad(f"`state.{key}` must be an int >= 0; got {describe(value)}")
        if kinds[key] == "number" and not (
            value is None or (is_real(value) and math.isfinite(value))
        ):
            raise bad(f"`state.{key}` must be a finite number or null; got {describe(value)}")
    return state


def _encode_class_weight(value: Any) -> Any:
    """``class_weight`` as JSON: a dict becomes pairs, so that int labels stay ints."""
    if not isinstance(value, dict):
        return value
    pairs = []
    for label, weight in value.items():
        label = _encode_setting(label)
        if not isinstance(label, (bool, int, float, str, dict)):
            raise SoftmaxkitTypeError(
                f"`class_weight` label {label!r} cannot be saved (numbers and strings can)"
            )
        pairs.append([label, _encode_setting(weight)])
    return {"pairs": pairs}


def _decode_class_weight(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if not (
        isinstance(value, dict) and set(value) == {"pairs"} and isinstance(value["pairs"], list)
    ):
        raise SoftmaxkitTypeError(f"setting `class_weight` is {value!r}")
    out = {}
    for pair in value["pairs"]:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise SoftmaxkitTypeError(f"setting `class_weight` holds {pair!r}, not a pair")
        out[_decode_setting("class_weight", pair[0])] = _decode_setting("class_weight", pair[1])
    return out


# --- save and load ------------------------------------------------------------------------


def save_model(self: Any, path: str | os.PathLike[str], metadata: dict | None) -> Path:
    """Write the fitted model to one ``.npz`` file, atomically; returns the path.

    The file holds the weights and a JSON header (format name and version,
    constructor parameters, classes, feature scaling, training history,
    and each array's shape, dtype and SHA-256), and never a pickle.
    ``metadata`` (a JSON-serialisable dict) is stored alongside, e.g. where
    the data came from.  :meth:`load` gives back the same classes (dtype
    and values), the same settings (NumPy scalars stay NumPy scalars;
    ``hidden`` comes back as a tuple of ints) and the same predictions.
    """
    self._check_fitted()
    if metadata is not None and not isinstance(metadata, dict):
        raise SoftmaxkitTypeError(f"`metadata` must be a dict; got {describe(metadata)}")
    try:
        json.dumps(metadata or {})
    except (TypeError, ValueError) as exc:
        raise SoftmaxkitTypeError(f"`metadata` must be JSON-serialisable ({exc})") from None
    _check_path(path)
    target = Path(path)
    if target.is_dir():
        raise SoftmaxkitValueError(f"`path` {str(path)!r} is a directory, not a file name")
    if not target.parent.is_dir():
        raise SoftmaxkitValueError(
            f"`path` {str(path)!r}: the directory {str(target.parent)!r} does not exist"
        )
    settings = self._fitted_settings()
    params = {k: _encode_setting(v) for k, v in settings.items() if k != "class_weight"}
    params["class_weight"] = _encode_class_weight(settings["class_weight"])
    params["hidden"] = [int(w) for w in params["hidden"]]
    classes = np.asarray(self.classes_)
    if classes.dtype.kind not in LABEL_KINDS:
        raise SoftmaxkitTypeError(f"`classes_` of dtype {classes.dtype} cannot be saved")
    arrays: dict[str, Any] = {"classes": classes, "mean": self.mean_, "scale": self.scale_}
    arrays.update({f"param.{k}": v for k, v in self.network_.params.items()})
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "params": params,
        "multilabel": bool(self.multilabel_),
        "n_features_in": int(self.n_features_in_),
        "history": {k: [float(v) for v in vs] for k, vs in self.history_.items()},
        "metadata": metadata or {},
        "state": {
            "n_iter": int(self.n_iter_),
            "t": int(self.t_),
            "best_loss": _finite_or_none(self.best_loss_),
            "best_validation_score": _finite_or_none(self.best_validation_score_),
        },
        "arrays": {
            name: {
                "shape": list(a.shape),
                "dtype": a.dtype.str,
                "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(),
            }
            for name, a in arrays.items()
        },
    }
    buffer = io.BytesIO()
    header_bytes = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    np.savez(buffer, header=header_bytes, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def load_model(cls: Any, path: str | os.PathLike[str]) -> Any:
    """Read a model written by :meth:`save`, checking everything before trusting it.

    Every field of the header is checked (types, ranges, the settings, the
    head against ``multilabel``) and every array against it (shape, dtype,
    checksum, and the shapes the described network needs) before anything
    is built, so a crafted file can neither allocate more than it holds
    nor load as a model that behaves differently from the one saved.

    Raises
    ------
    SoftmaxkitValueError
        If the file is missing, truncated or altered, not a softmaxkit
        model, of another format version, or holds a header or arrays that
        do not fit the network it describes; the message names the file
        and says what is wrong.
    """
    _check_path(path)
    name = str(path)
    if Path(path).is_dir():
        raise SoftmaxkitValueError(f"`path` {name!r} is a directory, not a model file")
    try:
        arrays, header = _read_model_file(path)
    except SoftmaxkitError:
        raise
    except FileNotFoundError:
        raise SoftmaxkitValueError(f"`path` {name!r} does not exist") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise SoftmaxkitValueError(
            f"`path` {name!r} is not a readable softmaxkit model file (truncated, altered "
            f"or not an .npz written by Classifier.save): {exc}"
        ) from None
    return _restore(cls, arrays, header, name)


def _finite_or_none(value: Any) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
