"""Bad input gets a clear error of the library's own class, naming the argument.

Every error is a SoftmaxkitError and also the matching builtin (ValueError / TypeError), so
callers can catch either; every message names the argument in backticks and says what came in.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import softmaxkit as sk

FAMILY = [sk.softmax, sk.log_softmax]
REDUCING = [sk.softmax, sk.log_softmax, sk.logsumexp]
ids = lambda f: f.__name__  # noqa: E731


def test_one_base_class_for_every_error():
    assert issubclass(sk.SoftmaxkitValueError, sk.SoftmaxkitError)
    assert issubclass(sk.SoftmaxkitValueError, ValueError)
    assert issubclass(sk.SoftmaxkitTypeError, sk.SoftmaxkitError)
    assert issubclass(sk.SoftmaxkitTypeError, TypeError)


# --- temperature -------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.inf, -math.inf, math.nan], ids=str)
@pytest.mark.parametrize("fn", FAMILY, ids=ids)
def test_temperature_must_be_finite_and_positive(engine, fn, temperature):
    with pytest.raises(sk.SoftmaxkitValueError, match=r"`temperature` must be finite and > 0; got"):
        fn(engine.asarray([1.0, 2.0]), temperature=temperature)


def test_temperature_beyond_any_float_is_not_finite():
    with pytest.raises(sk.SoftmaxkitValueError, match="`temperature` must be finite and > 0"):
        sk.softmax(np.array([1.0, 2.0]), temperature=10**400)


@pytest.mark.parametrize("temperature", ["hot", None, [1.0, 2.0]], ids=str)
def test_temperature_must_be_a_number(temperature):
    with pytest.raises(sk.SoftmaxkitTypeError, match="`temperature` must be a finite number"):
        sk.softmax(np.array([1.0, 2.0]), temperature=temperature)


def test_differentiable_temperature_is_refused_not_silently_detached():
    with pytest.raises(sk.SoftmaxkitTypeError, match="`temperature` must be a plain number"):
        sk.softmax(torch.ones(3), temperature=torch.tensor(2.0, requires_grad=True))


def test_traced_temperature_is_refused_under_jax_jit():
    import jax
    import jax.numpy as jnp

    with pytest.raises(sk.SoftmaxkitTypeError, match="pass x / temperature"):
        jax.jit(lambda x, t: sk.softmax(x, temperature=t))(jnp.ones(3), 2.0)


def test_array_temperature_without_gradient_is_read_as_a_number():
    np.testing.assert_allclose(
        sk.softmax(torch.tensor([0.0, 1.0]), temperature=torch.tensor(2.0)).numpy(),
        sk.softmax(np.array([0.0, 1.0]), temperature=2.0),
        rtol=1e-6,
    )


# --- axis ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [2, -3, (0, 2), (-3,)], ids=str)
@pytest.mark.parametrize("fn", [*REDUCING, sk.pmf_normalize], ids=ids)
def test_axis_out_of_range(engine, fn, axis):
    with pytest.raises(sk.SoftmaxkitValueError, match=r"`axis` must be in \[-2, 2\) .* 2 dim"):
        fn(engine.asarray(np.ones((2, 3))), axis=axis)


@pytest.mark.parametrize("axis", [(0, 0), (1, -1)], ids=str)
@pytest.mark.parametrize("fn", REDUCING, ids=ids)
def test_axis_must_not_repeat(fn, axis):
    with pytest.raises(sk.SoftmaxkitValueError, match="`axis` must not repeat an axis; got"):
        fn(np.ones((2, 3)), axis=axis)


@pytest.mark.parametrize("axis", [1.0, "0", (0, 1.5)], ids=str)
def test_axis_must_be_integers(axis):
    with pytest.raises(sk.SoftmaxkitTypeError, match="`axis` must be an int or a tuple of ints"):
        sk.softmax(np.ones((2, 3)), axis=axis)


def test_zero_d_input_has_no_axis():
    with pytest.raises(sk.SoftmaxkitValueError, match=r"`axis` must be \(\) or None for a 0-d"):
        sk.softmax(np.float64(1.0))


def test_backward_axis_out_of_range():
    with pytest.raises(sk.SoftmaxkitValueError, match="`axis` must be in"):
        sk.softmax_backward(np.ones(3), np.ones(3) / 3, axis=1)


# --- where ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2,), (3, 3), (2, 2, 3), (4, 1)], ids=str)
@pytest.mark.parametrize("fn", REDUCING, ids=ids)
def test_where_that_does_not_broadcast_raises(engine, fn, shape):
    x = engine.asarray(np.ones((2, 3)))
    with pytest.raises(
        sk.SoftmaxkitValueError, match=r"`where` must broadcast to the shape of `x` \(2, 3\); got"
    ):
        fn(x, where=engine.asarray(np.ones(shape, dtype=bool)))


def test_where_must_be_boolean():
    with pytest.raises(sk.SoftmaxkitTypeError, match="`where` must be a boolean array; got dtype"):
        sk.softmax(np.ones(3), where=np.ones(3))


# --- non-numeric arrays -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x",
    [np.array(["a", "b"]), np.array([1, None], dtype=object), np.array([1 + 2j]), ["cat", "dog"]],
    ids=["strings", "objects", "complex", "list-of-strings"],
)
@pytest.mark.parametrize(
    "fn", [*REDUCING, sk.pmf_normalize, sk.sigmoid, sk.log_sigmoid, sk.softmax_jacobian], ids=ids
)
def test_non_numeric_arrays_are_refused(fn, x):
    with pytest.raises(sk.SoftmaxkitTypeError, match=r"must be an array of real numbers; got"):
        fn(x)


def test_ragged_lists_are_refused():
    with pytest.raises(sk.SoftmaxkitTypeError, match="`x` must be an array of real numbers"):
        sk.softmax([[1.0], [1.0, 2.0]])


@pytest.mark.parametrize("fn", REDUCING, ids=ids)
def test_complex_tensors_are_refused(fn):
    with pytest.raises(sk.SoftmaxkitTypeError, match=r"`x` .* got dtype torch.complex"):
        fn(torch.tensor([1j, 2j]))


def test_backward_names_its_arguments():
    with pytest.raises(sk.SoftmaxkitTypeError, match="`grad` must be an array of real numbers"):
        sk.softmax_backward(np.array(["a"]), np.ones(1))
    with pytest.raises(sk.SoftmaxkitTypeError, match="`logp` must be an array of real numbers"):
        sk.log_softmax_backward(np.ones(1), np.array([1j]))


def test_arrays_from_two_libraries_are_refused():
    with pytest.raises(
        sk.SoftmaxkitTypeError, match=r"`p` must come from the same array library as `grad`"
    ):
        sk.softmax_backward(torch.ones(2), np.ones(2) / 2)


# --- pmf_normalize ----------------------------------------------------------------------------------


def test_pmf_normalize_negative_count_names_first_position(engine):
    counts = engine.asarray(np.array([[1.0, 2.0, 3.0], [4.0, -5.0, -6.0]]))
    with pytest.raises(
        sk.SoftmaxkitValueError,
        match=r"`counts` must be finite and non-negative; position \(1, 1\) holds -5.0",
    ):
        sk.pmf_normalize(counts)


@pytest.mark.parametrize("bad", [math.inf, math.nan], ids=str)
def test_pmf_normalize_non_finite_count(engine, bad):
    with pytest.raises(sk.SoftmaxkitValueError, match=r"position \(2,\) holds"):
        sk.pmf_normalize(engine.asarray([1.0, 2.0, bad]))


def test_pmf_normalize_all_zero_slice_names_its_position(engine):
    counts = engine.asarray(np.array([[1, 2, 3], [0, 0, 0], [0, 0, 0]]))
    with pytest.raises(
        sk.SoftmaxkitValueError,
        match=r"`counts` must have a positive total along `axis` \(1,\); the slice starting "
        r"at position \(1, 0\) sums to 0",
    ):
        sk.pmf_normalize(counts)


def test_pmf_normalize_all_zero_column(engine):
    counts = engine.asarray(np.array([[1, 0], [2, 0]]))
    with pytest.raises(sk.SoftmaxkitValueError, match=r"starting at position \(0, 1\) sums to 0"):
        sk.pmf_normalize(counts, axis=0)


# --- derivatives --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn, name", [(sk.softmax_backward, "p"), (sk.log_softmax_backward, "logp")], ids=["p", "logp"]
)
def test_grad_and_output_must_have_the_same_shape(engine, fn, name):
    with pytest.raises(
        sk.SoftmaxkitValueError,
        match=rf"`grad` and `{name}` must have the same shape; got \(2, 3\) and \(3,\)",
    ):
        fn(engine.asarray(np.ones((2, 3))), engine.asarray(np.ones(3) / 3))


def test_softmax_jacobian_needs_an_axis():
    with pytest.raises(sk.SoftmaxkitValueError, match="`p` must have at least one dimension"):
        sk.softmax_jacobian(np.array(1.0))


def test_errors_are_never_assertions():
    """The checks must survive `python -O`: none of them may be an assert."""
    import inspect

    from softmaxkit import _backend, _derivatives, _softmax

    for module in (_backend, _derivatives, _softmax):
        assert "assert " not in inspect.getsource(module), module.__name__
