"""The classifier's settings: their defaults and the checks ``fit`` (and ``load``) run on them.

scikit-learn style: ``__init__`` only stores, ``fit`` checks.  NumPy scalars count as the
Python numbers they stand for (``GridSearchCV`` grids hand out ``np.int64``); bools do not
count as numbers, since ``epochs=True`` is surely a mistake.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .._errors import SoftmaxkitTypeError, SoftmaxkitValueError

__all__ = ["DEFAULTS", "OPTIMIZERS", "SCHEDULES", "V1_DEFAULTS", "check_settings", "hidden_widths"]

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")

# Every constructor argument and its default, in signature order.  The model file stores
# them all; a format-1 file (written before the settings after `seed` existed) loads with
# V1_DEFAULTS for the missing ones: the values that train as format-1 models trained.
DEFAULTS: dict[str, Any] = {
    "hidden": (64,),
    "head": "softmax",
    "num_sampled": 64,
    "epochs": "auto",
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 0.003,
    "lr_schedule": "constant",
    "momentum": 0.9,
    "weight_decay": "auto",
    "dropout": 0.0,
    "standardize": True,
    "early_stopping": False,
    "validation_fraction": 0.1,
    "n_iter_no_change": 10,
    "tol": 1e-4,
    "class_weight": None,
    "warm_start": False,
    "verbose": False,
    "seed": 0,
}
V1_PARAMS = (
    "hidden", "head", "num_sampled", "epochs", "batch_size", "optimizer", "learning_rate",
    "momentum", "weight_decay", "dropout", "standardize", "seed",
)  # fmt: skip
# The settings format 1 did not have; they only shape the next fit, never the predictions.
V1_DEFAULTS = {k: v for k, v in DEFAULTS.items() if k not in V1_PARAMS}


def describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def is_auto(value: Any) -> bool:
    return isinstance(value, str) and value == "auto"


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    return is_int(value) or isinstance(value, (float, np.floating))


def check_int(name: str, value: Any, *, low: int = 1, or_none: bool = False) -> Any:
    expected = f"{'None or ' if or_none else ''}an int >= {low}"
    if not is_int(value):
        raise SoftmaxkitTypeError(f"`{name}` must be {expected}; got {describe(value)}")
    if value < low:
        raise SoftmaxkitValueError(f"`{name}` must be {expected}; got {value!r}")
    return value


def check_real(name: str, value: Any, expected: str, ok: Callable[[float], bool]) -> None:
    if not is_real(value):
        raise SoftmaxkitTypeError(f"`{name}` must be a number ({expected}); got {describe(value)}")
    if not (math.isfinite(value) and ok(float(value))):
        raise SoftmaxkitValueError(f"`{name}` must be {expected}; got {value!r}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise SoftmaxkitTypeError(f"`{name}` must be True or False; got {describe(value)}")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise SoftmaxkitValueError(f"`{name}` must be one of {choices}; got {value!r}")


def same_setting(value: Any, default: Any) -> bool:
    """``value == default`` for repr's purpose; never raises (repr must work on any setting)."""
    if type(value) is not type(default):
        return False
    try:
        return bool(value == default)
    except Exception:  # an array compares elementwise, a strange object may raise
        return False


def describe_pair(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


def hidden_widths(hidden: Any) -> tuple[int, ...]:
    # A string is a sequence too: "64" would otherwise build layers of widths 6 and 4.
    if isinstance(hidden, np.ndarray):
        ok = hidden.ndim == 1 and hidden.dtype.kind in "iu"
    else:
        ok = isinstance(hidden, (tuple, list))
    if not ok:
        raise SoftmaxkitTypeError(
            "`hidden` must be a tuple or list of int layer widths, e.g. (64,) or (128, 64); "
            f"got {describe(hidden)}"
        )
    widths = []
    for i, width in enumerate(hidden):
        if not is_int(width):
            raise SoftmaxkitTypeError(
                f"`hidden` must hold int layer widths; position {i} holds {width!r} "
                f"({type(width).__name__})"
            )
        if width < 1:
            raise SoftmaxkitValueError(
                f"`hidden` widths must be >= 1; position {i} holds {int(width)}"
            )
        widths.append(int(width))
    return tuple(widths)


def check_class_weight(value: Any) -> None:
    if value is None or (value == "balanced" and isinstance(value, str)):
        return
    if not isinstance(value, dict):
        raise SoftmaxkitTypeError(
            f"`class_weight` must be None, 'balanced' or a dict label -> weight; got "
            f"{describe(value)}"
        )
    for label, weight in value.items():
        if not (is_real(weight) and math.isfinite(weight) and weight >= 0):
            raise SoftmaxkitValueError(
                f"`class_weight` must map labels to finite weights >= 0; {label!r} maps to "
                f"{weight!r}"
            )


def check_settings(params: dict[str, Any], heads: tuple[str, ...]) -> None:
    """Every setting's type and range; raises the first problem, naming the setting."""
    check_choice("head", params["head"], heads)
    hidden_widths(params["hidden"])
    check_int("num_sampled", params["num_sampled"])
    epochs = params["epochs"]
    if not is_auto(epochs):
        if not is_int(epochs):
            raise SoftmaxkitTypeError(
                f"`epochs` must be 'auto' or an int >= 1; got {describe(epochs)}"
            )
        if epochs < 1:
            raise SoftmaxkitValueError(f"`epochs` must be 'auto' or an int >= 1; got {epochs!r}")
    check_int("batch_size", params["batch_size"])
    check_choice("optimizer", params["optimizer"], OPTIMIZERS)
    check_real("learning_rate", params["learning_rate"], "finite and > 0", lambda v: v > 0)
    check_choice("lr_schedule", params["lr_schedule"], SCHEDULES)
    check_real("momentum", params["momentum"], "in [0, 1)", lambda v: 0 <= v < 1)
    if not is_auto(params["weight_decay"]):
        check_real(
            "weight_decay", params["weight_decay"], "'auto' or finite and >= 0", lambda v: v >= 0
        )
    check_real("dropout", params["dropout"], "in [0, 1)", lambda v: 0 <= v < 1)
    check_bool("standardize", params["standardize"])
    check_bool("early_stopping", params["early_stopping"])
    check_real(
        "validation_fraction", params["validation_fraction"], "in (0, 1)", lambda v: 0 < v < 1
    )
    check_int("n_iter_no_change", params["n_iter_no_change"])
    check_real("tol", params["tol"], "finite and >= 0", lambda v: v >= 0)
    check_class_weight(params["class_weight"])
    check_bool("warm_start", params["warm_start"])
    check_bool("verbose", params["verbose"])
    if params["seed"] is not None:
        check_int("seed", params["seed"], low=0, or_none=True)
