"""Calibration: ECE against hand-computed cases and torchmetrics, temperature scaling, the diagram."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassCalibrationError

from softmaxkit import (
    SoftmaxkitTypeError,
    SoftmaxkitValueError,
    expected_calibration_error,
    fit_temperature,
    reliability_diagram,
)


def _softmax_np(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _calibrated_sample(rng: np.random.Generator, n: int, c: int, spread: float = 2.0):
    """Logits and labels drawn from softmax(logits): a perfectly calibrated model."""
    z = rng.normal(size=(n, c)) * spread
    p = _softmax_np(z)
    labels = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return z, labels


# --- expected_calibration_error: hand-computed ---------------------------------------------


def test_ece_hand_computed_three_bins():
    # n_bins=2: bins (0, .5] and (.5, 1].
    # conf 0.9 right, 0.8 wrong, 0.6 right -> bin 2: acc 2/3, conf 0.7667, gap 0.1
    # conf 0.5 (tie 0.5/0.5 -> class 0) wrong -> bin 1: acc 0, conf 0.5, gap 0.5
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.5, 0.5]])
    labels = np.array([0, 1, 1, 1])
    gap_high = abs(2 / 3 - (0.9 + 0.8 + 0.6) / 3)
    gap_low = 0.5
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(
        0.75 * gap_high + 0.25 * gap_low, abs=1e-15
    )
    assert expected_calibration_error(probs, labels, n_bins=2, norm="l2") == pytest.approx(
        np.sqrt(0.75 * gap_high**2 + 0.25 * gap_low**2), abs=1e-15
    )
    assert expected_calibration_error(probs, labels, n_bins=2, norm="max") == pytest.approx(
        gap_low, abs=1e-15
    )


def test_ece_bins_are_closed_on_the_right():
    # 0.5 sits on the edge between (0, .5] and (.5, 1]: it joins the lower bin.  Were it in
    # the upper one, the bin {0.5 right, 1.0 right} would have gap 0.25, not 0.
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    labels = np.array([0, 0])
    # lower bin {0.5, right}: gap 0.5; upper bin {1.0, right}: gap 0
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.25)
    assert expected_calibration_error(probs, labels, n_bins=2, norm="max") == pytest.approx(0.5)


def test_ece_confidence_exactly_one_joins_the_last_bin():
    probs = np.array([[1.0, 0.0], [0.75, 0.25]])
    labels = np.array([0, 1])
    # one bin (.5, 1]: acc 1/2, conf 0.875
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.375)


def test_ece_perfectly_calibrated_bins_give_zero():
    probs = np.tile([0.8, 0.1, 0.1], (10, 1))
    labels = np.array([0] * 8 + [1, 2])
    for norm in ("l1", "l2", "max"):
        assert expected_calibration_error(probs, labels, norm=norm) == pytest.approx(0, abs=1e-15)


def test_ece_accepts_leading_dimensions_and_every_backend(backend):
    rng = np.random.default_rng(1)
    probs = _softmax_np(rng.normal(size=(4, 5, 3)))
    labels = rng.integers(0, 3, size=(4, 5))
    expected = expected_calibration_error(probs.reshape(20, 3), labels.reshape(20))
    got = expected_calibration_error(backend.asarray(probs), backend.asarray(labels))
    assert isinstance(got, float)
    assert got == pytest.approx(expected, abs=1e-15)


# --- expected_calibration_error: torchmetrics ------------------------------------------------


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize(("n", "c", "n_bins", "spread"), [(500, 3, 15, 2.0), (300, 10, 7, 4.0)])
def test_ece_equals_torchmetrics(norm, n, c, n_bins, spread):
    rng = np.random.default_rng(n + c)
    z, labels = _calibrated_sample(rng, n, c, spread)
    probs = _softmax_np(1.7 * z)  # over-confident: a nonzero error to compare
    metric = MulticlassCalibrationError(num_classes=c, n_bins=n_bins, norm=norm)
    expected = float(metric(torch.from_numpy(probs), torch.from_numpy(labels)))
    got = expected_calibration_error(probs, labels, n_bins=n_bins, norm=norm)
    assert got > 0.01
    # torchmetrics works in float32
    assert got == pytest.approx(expected, abs=2e-6)


def test_ece_differs_from_torchmetrics_only_on_bin_edges():
    # torchmetrics bins [lo, hi) plus a bin of its own for confidence 1; ours (lo, hi].
    probs = torch.tensor([[0.5, 0.5], [0.0, 1.0], [0.25, 0.75]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0])
    theirs = float(MulticlassCalibrationError(num_classes=2, n_bins=2)(probs, labels))
    assert theirs == pytest.approx((0.625 - 0.5) * 2 / 3, abs=1e-6)
    # ours: (0, .5] {0.5 right} gap .5; (.5, 1] {1.0 right, .75 wrong} gap .375
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(
        0.5 / 3 + 0.375 * 2 / 3
    )


# --- expected_calibration_error: bad input ---------------------------------------------------


@pytest.mark.parametrize(
    ("probs", "labels", "kwargs", "match"),
    [
        (
            [[0.5, 0.5], [1.2, -0.2]],
            [0, 1],
            {},
            r"`probs` must be probabilities in \[0, 1\].*\(1, 0\) holds 1.2",
        ),
        ([[0.5, np.nan]], [0], {}, r"`probs`.*\(0, 1\) holds nan"),
        (
            [[0.5, 0.5], [0.5, 0.5]],
            [0, 2],
            {},
            r"`labels` must be in \[0, 2\); position \(1,\) holds 2",
        ),
        ([[0.5, 0.5], [0.5, 0.5]], [0, -1], {}, r"`labels`.*holds -1"),
        ([[0.5, 0.5]], [0, 1], {}, r"`labels` must have shape \(1,\)"),
        (np.zeros((0, 2)), np.zeros(0, dtype=int), {}, "at least one"),
        ([[0.5, 0.5]], [0], {"n_bins": 0}, r"`n_bins` must be an int >= 1; got 0"),
        ([[0.5, 0.5]], [0], {"norm": "l3"}, r"`norm` must be one of .*'l3'"),
    ],
)
def test_ece_bad_input_names_argument_and_position(probs, labels, kwargs, match):
    with pytest.raises(SoftmaxkitValueError, match=match):
        expected_calibration_error(np.asarray(probs), np.asarray(labels), **kwargs)


def test_ece_float_labels_are_a_type_error():
    with pytest.raises(SoftmaxkitTypeError, match="`labels` must be an array of integers"):
        expected_calibration_error(np.array([[0.5, 0.5]]), np.array([0.0]))


# --- fit_temperature -------------------------------------------------------------------------


def _nll(z: np.ndarray, labels: np.ndarray, t: float) -> float:
    s = z / t
    m = s.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(s - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(lse - s[np.arange(len(labels)), labels]))


def test_fit_temperature_closed_form():
    # Three right out of four, every row [4, 0]: the optimum makes softmax say 3/4.
    logits = np.array([[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    labels = np.array([0, 0, 1, 1])
    assert fit_temperature(logits, labels) == pytest.approx(4 / np.log(3), rel=1e-13)


@pytest.mark.parametrize("factor", [0.25, 1.0, 3.0])
def test_fit_temperature_recovers_overconfidence_factor(factor):
    rng = np.random.default_rng(7)
    z, labels = _calibrated_sample(rng, 20000, 5)
    t = fit_temperature(factor * z, labels)
    assert t == pytest.approx(factor, rel=0.04)


def test_fit_temperature_agrees_with_dense_grid_search():
    rng = np.random.default_rng(3)
    z, labels = _calibrated_sample(rng, 400, 4)
    z = 2.2 * z + rng.normal(size=z.shape)  # over-confident and noisy
    t = fit_temperature(z, labels)
    grid = np.exp(np.linspace(np.log(0.1), np.log(20.0), 20001))
    nll = np.array([_nll(z, labels, g) for g in grid])
    best = int(np.argmin(nll))
    assert grid[best - 1] <= t <= grid[best + 1]
    assert _nll(z, labels, t) <= nll[best] + 1e-12


def test_fit_temperature_is_stationary_point():
    rng = np.random.default_rng(5)
    z, labels = _calibrated_sample(rng, 300, 6)
    t = fit_temperature(z, labels)
    h = 1e-4 * t
    # a minimum: the central difference of the NLL vanishes, neighbours are higher
    slope = (_nll(z, labels, t + h) - _nll(z, labels, t - h)) / (2 * h)
    assert abs(slope) < 1e-7
    assert _nll(z, labels, t) <= min(_nll(z, labels, t * 1.01), _nll(z, labels, t / 1.01))


def test_fit_temperature_scales_with_logits():
    # T(k * z) = k * T(z), also for logits so large that exp(z / T) would overflow naively.
    logits = np.array([[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    labels = np.array([0, 0, 1, 1])
    assert fit_temperature(1e200 * logits, labels) == pytest.approx(4e200 / np.log(3), rel=1e-13)
    assert fit_temperature(1e-200 * logits, labels) == pytest.approx(4e-200 / np.log(3), rel=1e-13)


def test_fit_temperature_every_backend(backend):
    rng = np.random.default_rng(11)
    z, labels = _calibrated_sample(rng, 200, 3)
    expected = fit_temperature(z, labels)
    assert fit_temperature(backend.asarray(z), backend.asarray(labels)) == pytest.approx(
        expected, rel=1e-12
    )


def test_fit_temperature_all_labels_at_max_has_no_optimum():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    with pytest.raises(SoftmaxkitValueError, match="T -> 0"):
        fit_temperature(logits, np.array([0, 1]))


def test_fit_temperature_uninformative_logits_have_no_optimum():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    with pytest.raises(SoftmaxkitValueError, match="T -> inf"):
        fit_temperature(logits, np.array([1, 0]))
    with pytest.raises(SoftmaxkitValueError, match="T -> inf"):
        fit_temperature(np.zeros((3, 4)), np.array([0, 1, 2]))


def test_fit_temperature_bad_input():
    with pytest.raises(SoftmaxkitValueError, match=r"`logits` must be finite; position \(1, 0\)"):
        fit_temperature(np.array([[1.0, 0.0], [np.inf, 0.0]]), np.array([0, 1]))
    with pytest.raises(SoftmaxkitValueError, match=r"`labels` must be in \[0, 2\)"):
        fit_temperature(np.array([[1.0, 0.0]]), np.array([5]))


def test_fit_temperature_improves_ece():
    rng = np.random.default_rng(13)
    z, labels = _calibrated_sample(rng, 5000, 5)
    over = 2.5 * z
    before = expected_calibration_error(_softmax_np(over), labels)
    after = expected_calibration_error(_softmax_np(over / fit_temperature(over, labels)), labels)
    assert after < before / 3


# --- reliability_diagram ---------------------------------------------------------------------


def test_reliability_diagram_draws_bins_gap_and_title(tmp_path):
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.55, 0.45]])
    labels = np.array([0, 1, 1, 1])
    ax = reliability_diagram(probs, labels, n_bins=5)
    ece = expected_calibration_error(probs, labels, n_bins=5)
    assert ax.get_title() == f"Reliability diagram (ECE = {ece:.4f})"
    # non-empty bins: (.4, .6] {.55 wrong}, (.6, .8] {.8 wrong, .7 right}, (.8, 1] {.9 right}
    bars = ax.containers
    assert [round(r.get_height(), 12) for r in bars[0]] == [0.0, 0.5, 1.0]
    assert [round(r.get_x(), 12) for r in bars[0]] == [0.4, 0.6, 0.8]
    # the gap bar spans from the accuracy to the mean confidence
    assert [round(r.get_y(), 12) for r in bars[1]] == [0.0, 0.5, 0.9]
    assert [round(r.get_height(), 12) for r in bars[1]] == [0.55, 0.25, 0.1]
    path = tmp_path / "diagram.png"
    ax.figure.savefig(path)
    assert path.stat().st_size > 1000


def test_reliability_diagram_uses_given_axis():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    out = reliability_diagram(np.array([[0.6, 0.4]]), np.array([0]), ax=ax)
    assert out is ax


# --- issue 17 item 9: fit_temperature near the float64 limit, and the other arguments ---------


@pytest.mark.parametrize("name", ["numpy", "torch", "jax"])
def test_fit_temperature_row_at_float64_limit_gives_right_diagnosis(name, backend_of):
    import warnings

    row = [1e308, -1e308, 0.0, 0.0]  # finite, but z - max(z) overflows to -inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way either
        with pytest.raises(SoftmaxkitValueError, match="keeps falling as T -> 0"):
            fit_temperature(backend_of(name, [row]), backend_of(name, [0]))
        with pytest.raises(SoftmaxkitValueError, match="carry no information"):
            fit_temperature(backend_of(name, [row]), backend_of(name, [1]))
        z = np.array([row, [1e308, 2, 3, 4], [0, 1e300, 0, 0]])
        labels = np.array([2, 0, 1])
        t = fit_temperature(backend_of(name, z), backend_of(name, labels))
    # the same problem a factor 1e300 smaller has its temperature 1e300 smaller
    assert t == pytest.approx(fit_temperature(z / 1e300, labels) * 1e300, rel=1e-12)


@pytest.fixture
def backend_of():
    import jax.numpy as jnp

    def make(name, a):
        a = np.asarray(a)
        if name == "torch":
            return torch.from_numpy(a)
        if name == "jax":
            return jnp.asarray(a)  # conftest turns x64 on: 1e308 stays finite
        return a

    return make


def test_fit_temperature_that_overflows_float64_is_refused():
    z = np.array([[1e308, -1e308, 0, 0], [1.0, 2, 3, 4]])
    with pytest.raises(SoftmaxkitValueError, match="exceeds the float64 range"):
        fit_temperature(z, np.array([2, 3]))


def test_fit_temperature_is_unchanged_by_the_power_of_two_prescale():
    rng = np.random.default_rng(3)
    z, labels = _calibrated_sample(rng, 500, 5)
    assert fit_temperature(z * 2.0**40, labels) == pytest.approx(
        fit_temperature(z, labels) * 2.0**40, rel=1e-12
    )


@pytest.mark.parametrize("n_bins", [True, np.bool_(True), 2.0, "3", None])
def test_n_bins_that_is_not_an_int_is_refused(n_bins):
    probs, labels = np.array([[0.7, 0.3]]), np.array([0])
    with pytest.raises(SoftmaxkitTypeError, match="`n_bins` must be an int >= 1"):
        expected_calibration_error(probs, labels, n_bins=n_bins)
    with pytest.raises(SoftmaxkitTypeError, match="`n_bins` must be an int >= 1"):
        reliability_diagram(probs, labels, n_bins=n_bins)


def test_huge_n_bins_needs_no_memory_for_empty_bins():
    # n_bins = 10**15 used to allocate 10**15 bins (MemoryError); only filled ones count.
    rng = np.random.default_rng(0)
    p = _softmax_np(rng.normal(size=(50, 3)))
    labels = rng.integers(0, 3, size=50)
    confidence, correct = p.max(axis=1), (p.argmax(axis=1) == labels)
    # every prediction alone in its bin: ECE is the mean |correct - confidence|
    expected = float(np.mean(np.abs(correct - confidence)))
    assert expected_calibration_error(p, labels, n_bins=10**15) == pytest.approx(expected)
    ax = reliability_diagram(p, labels, n_bins=10**15)
    assert len(ax.patches) == 2 * 50


@pytest.mark.parametrize("n_bins", [1, 2, 3, 7, 10, 15, 49, 97, 1000, 3**13])
def test_bin_of_each_confidence_matches_a_search_of_the_edges(n_bins):
    from softmaxkit._calibration import _bin_of

    edges = np.arange(n_bins + 1) / n_bins
    conf = np.concatenate(
        [
            np.random.default_rng(n_bins).random(500),
            edges,
            np.nextafter(edges, 2.0),
            np.nextafter(edges, -1.0),
        ]
    ).clip(0.0, 1.0)
    reference = np.searchsorted(edges[1:-1], conf, side="left")
    np.testing.assert_array_equal(_bin_of(conf, n_bins), reference)


def test_reliability_diagram_ax_that_is_not_axes_is_refused():
    with pytest.raises(SoftmaxkitTypeError, match="`ax` must be a matplotlib Axes"):
        reliability_diagram(np.array([[0.7, 0.3]]), np.array([0]), ax="left")
