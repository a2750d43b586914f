"""epochs="auto" and weight_decay="auto": what they resolve to, and that they survive save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest

from softmaxkit import Classifier, SoftmaxkitTypeError, SoftmaxkitValueError
from softmaxkit._classifier import _training


def blobs(n=120, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return rng.normal(size=(n, 4)) + y[:, None] * 2.0, y


def test_auto_is_the_default_of_epochs_and_weight_decay():
    params = Classifier().get_params()
    assert params["epochs"] == "auto"
    assert params["weight_decay"] == "auto"
    assert repr(Classifier()) == "Classifier(hidden=(64,))"


@pytest.mark.parametrize(
    ("n_rows", "batch_size", "expected"),
    [
        (1437, 32, 50),  # a digits fold: 45 steps a pass, 50 passes are 2,250 steps
        (120, 32, 250),  # an iris fold: 4 steps a pass
        (455, 32, 67),  # a breast-cancer fold: 15 steps a pass
        (10, 32, 1000),  # one step a pass
        (0, 32, 1000),  # every weight 0: still a number, never a division by zero
    ],
)
def test_auto_epochs_gives_at_least_1000_steps_and_50_passes(n_rows, batch_size, expected):
    epochs = _training.auto_epochs("auto", n_rows, batch_size)
    assert epochs == expected
    assert epochs >= 50
    assert epochs * math.ceil(max(n_rows, 1) / batch_size) >= 1000
    assert _training.auto_epochs(7, n_rows, batch_size) == 7


def test_auto_weight_decay_is_a_prior_of_fixed_strength():
    assert _training.auto_weight_decay("auto", 120) == pytest.approx(2.5 / 120)
    assert _training.auto_weight_decay("auto", 1437) == pytest.approx(2.5 / 1437)
    # Twice the data, half the penalty on the mean loss: the same penalty on the sum.
    assert _training.auto_weight_decay("auto", 200) * 200 == pytest.approx(
        _training.auto_weight_decay("auto", 100) * 100
    )
    assert _training.auto_weight_decay(0.01, 120) == 0.01
    assert _training.auto_weight_decay("auto", 0) == 2.5  # no rows: finite, not inf


def test_auto_epochs_runs_that_many_epochs_on_a_small_set():
    X, y = blobs(n=60)
    # tol stopping is switched off by a patience longer than the run.
    model = Classifier(hidden=(4,), n_iter_no_change=10_000).fit(X, y)
    assert model.n_iter_ == _training.auto_epochs("auto", 60, 32) == 500


def test_auto_weight_decay_reaches_the_optimizer_from_the_training_rows():
    X, y = blobs(n=100)
    model = Classifier(hidden=(4,), epochs=1).fit(X, y)
    assert model._optimizer.weight_decay == pytest.approx(2.5 / 100)
    held = Classifier(hidden=(4,), epochs=1, early_stopping=True, validation_fraction=0.2)
    held.fit(X, y)
    assert held._optimizer.weight_decay == pytest.approx(2.5 / 80)  # held-out rows excluded
    weighted = Classifier(hidden=(4,), epochs=1).fit(X, y, sample_weight=np.full(100, 2.0))
    assert weighted._optimizer.weight_decay == pytest.approx(2.5 / 200)  # 2 counts twice


def test_partial_fit_auto_weight_decay_counts_every_row_seen():
    X, y = blobs(n=90)
    model = Classifier(hidden=(4,))
    model.partial_fit(X[:30], y[:30], classes=[0, 1, 2])
    assert model._optimizer.weight_decay == pytest.approx(2.5 / 30)
    model.partial_fit(X[30:], y[30:])
    assert model._optimizer.weight_decay == pytest.approx(2.5 / 90)


@pytest.mark.parametrize("settings", [{}, {"epochs": 3, "weight_decay": 0.01}])
def test_auto_and_explicit_settings_round_trip_through_the_model_file(tmp_path, settings):
    X, y = blobs()
    model = Classifier(hidden=(4,), **settings).fit(X, y)
    loaded = Classifier.load(model.save(tmp_path / "model.npz"))
    for name in ("epochs", "weight_decay"):
        assert loaded.get_params()[name] == model.get_params()[name]
        assert type(loaded.get_params()[name]) is type(model.get_params()[name])
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("epochs", "Auto", SoftmaxkitTypeError),
        ("epochs", "50", SoftmaxkitTypeError),
        ("epochs", 0, SoftmaxkitValueError),
        ("weight_decay", "auto ", SoftmaxkitTypeError),
        ("weight_decay", -1.0, SoftmaxkitValueError),
    ],
)
def test_auto_settings_refuse_other_strings_by_name(name, value, error):
    X, y = blobs()
    with pytest.raises(error, match=f"`{name}` must be .*'auto'"):
        Classifier(**{name: value}).fit(X, y)
