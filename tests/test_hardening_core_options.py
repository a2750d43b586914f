"""Issue 17, found by the fuzz suite: the core's options and its extreme temperatures.

Each test is named after the defect it pins; each runs on every path (`engine`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import SoftmaxkitTypeError

INF = np.inf


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(
    ("x", "temperature", "probs"),
    [
        ([1.0, 0.0], 1e-300, [1.0, 0.0]),  # rounds to 0 in float32: 0 / 0 was NaN
        ([1.0, 0.0], 1e-40, [1.0, 0.0]),  # subnormal in float32
        ([0.0, -INF], 1e300, [1.0, 0.0]),  # inf in float32: -inf / inf was NaN
        ([0.0, -INF], 1e38, [1.0, 0.0]),  # XLA's 1 / t is subnormal and flushed to 0
        ([1.0, 0.0], 1e300, [0.5, 0.5]),
    ],
)
def test_temperature_beyond_the_dtype_gives_the_limit_not_nan(
    engine: Any, dtype: Any, x: list[float], temperature: float, probs: list[float]
) -> None:
    a = engine.asarray(np.asarray(x, dtype=dtype))
    p = engine.to_numpy(sk.softmax(a, temperature=temperature))
    assert p.dtype == np.dtype(dtype) or engine.name == "jax"
    np.testing.assert_array_equal(p.astype(np.float64), probs)
    logp = engine.to_numpy(sk.log_softmax(a, temperature=temperature))
    assert not np.isnan(logp).any()
    np.testing.assert_allclose(np.exp(logp.astype(np.float64)), probs, rtol=1e-3)


@pytest.mark.parametrize("temperature", ["0.5", b"1", True, np.True_])
def test_temperature_that_is_a_string_or_bool_is_refused(engine: Any, temperature: Any) -> None:
    with pytest.raises(SoftmaxkitTypeError, match="`temperature` must be a finite number"):
        sk.softmax(engine.asarray([1.0, 2.0]), temperature=temperature)


@pytest.mark.parametrize("axis", [True, False, (0, True), np.True_])
def test_axis_that_is_a_bool_is_refused_not_read_as_an_index(engine: Any, axis: Any) -> None:
    x = engine.asarray(np.ones((2, 3)))
    for fn in (sk.softmax, sk.log_softmax, sk.logsumexp):
        with pytest.raises(SoftmaxkitTypeError, match="`axis` must be an int"):
            fn(x, axis=axis)


@pytest.mark.parametrize("keepdims", ["no", 1, None, np.ones(1)])
def test_logsumexp_keepdims_that_is_not_a_bool_is_refused(engine: Any, keepdims: Any) -> None:
    with pytest.raises(SoftmaxkitTypeError, match="`keepdims` must be True or False"):
        sk.logsumexp(engine.asarray(np.ones((2, 3))), keepdims=keepdims)


def test_logsumexp_keepdims_accepts_numpy_bools(engine: Any) -> None:
    out = sk.logsumexp(engine.asarray(np.ones((2, 3))), keepdims=np.True_)
    assert tuple(out.shape) == (2, 1)


@pytest.mark.parametrize("where", ["yes", [1, 0], np.array([0.5, 1.0])])
def test_where_that_is_not_boolean_is_refused_on_every_library(engine: Any, where: Any) -> None:
    with pytest.raises(SoftmaxkitTypeError, match="`where` must be a boolean array"):
        sk.softmax(engine.asarray([1.0, 2.0]), where=where)


def test_where_of_another_array_library_is_refused() -> None:
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    mask = [True, True, False]
    with pytest.raises(SoftmaxkitTypeError, match="`where` must be a boolean array of the same"):
        sk.softmax(jnp.zeros(3), where=torch.tensor(mask))
    with pytest.raises(SoftmaxkitTypeError, match="`where` must be a boolean array of the same"):
        sk.softmax(torch.zeros(3), where=jnp.array(mask))
    # a NumPy mask serves every library
    np.testing.assert_allclose(
        np.asarray(sk.softmax(jnp.zeros(3), where=np.array(mask))), [0.5, 0.5, 0]
    )


def test_backward_of_arrays_of_two_libraries_names_the_argument() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(
        SoftmaxkitTypeError, match="`p` must come from the same array library as `grad`"
    ):
        sk.softmax_backward(torch.ones(3), np.ones(3) / 3)
    with pytest.raises(SoftmaxkitTypeError, match="`logp` must come from the same array library"):
        sk.log_softmax_backward(torch.ones(3), np.zeros(3))


@pytest.mark.parametrize("label_smoothing", [True, False, np.True_])
def test_label_smoothing_that_is_a_bool_is_refused(engine: Any, label_smoothing: Any) -> None:
    logits, target = engine.asarray(np.ones((2, 3))), engine.asarray(np.array([0, 1]))
    with pytest.raises(SoftmaxkitTypeError, match="`label_smoothing` must be a number"):
        sk.cross_entropy(logits, target, label_smoothing=label_smoothing)


@pytest.mark.parametrize("ignore_index", [2**40, -(2**40), 2**31])
def test_ignore_index_beyond_the_target_dtype_ignores_nothing(
    engine: Any, ignore_index: int
) -> None:
    """JAX without x64 holds int32 targets, and refused to compare them with 2**40 (a raw
    OverflowError); no label can equal such an index, so nothing is ignored."""
    logits = engine.asarray(np.log(np.array([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]])))
    target = engine.asarray(np.array([0, 1], dtype=np.int32))
    expected = -np.log(0.5)
    for loss in (
        sk.cross_entropy(logits, target, ignore_index=ignore_index),
        sk.cross_entropy_grad(logits, target, ignore_index=ignore_index)[0],
    ):
        np.testing.assert_allclose(float(engine.to_numpy(loss)), expected, rtol=1e-6)


@pytest.mark.parametrize("shape", [(0, 0), (3, 0), (2, 3, 0)])
def test_losses_without_classes_give_what_numpy_gives(engine: Any, shape: tuple[int, ...]) -> None:
    """torch's operators reshaped (N, 0) logits with -1 (a raw RuntimeError)."""
    logits = engine.asarray(np.ones(shape))
    target = engine.asarray(np.zeros(shape[:-1], dtype=np.int64))
    if 0 in shape[:-1]:
        assert np.isnan(float(engine.to_numpy(sk.cross_entropy(logits, target))))
        assert np.isnan(float(engine.to_numpy(sk.nll_loss(logits, target))))
    else:
        with pytest.raises(sk.SoftmaxkitValueError, match=r"`target` must be in \[0, 0\)"):
            sk.cross_entropy(logits, target)


def test_nll_and_cross_entropy_grad_accept_small_integer_targets_with_weight(engine: Any) -> None:
    """The mean's summed weight indexed `weight` with the target itself: torch's index_select
    takes int32 and int64 only (a raw RuntimeError for int8, int16 and uint8)."""
    logits = engine.asarray(np.log(np.full((2, 4), 0.25)))
    weight = engine.asarray(np.array([1.0, 2.0, 3.0, 4.0]))
    for dtype in (np.int8, np.int16, np.uint8):
        target = engine.asarray(np.array([1, 3], dtype=dtype))
        for fn in (sk.nll_loss_grad, sk.cross_entropy_grad):
            loss, _ = fn(logits, target, weight=weight)
            expected = np.log(4.0) if fn is sk.cross_entropy_grad else -np.log(0.25)
            np.testing.assert_allclose(float(engine.to_numpy(loss)), expected, rtol=1e-6)
