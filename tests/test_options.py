"""The options every loss shares are checked alike everywhere (one place: softmaxkit._options)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import softmaxkit as sk

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(4, 5))
TARGET = np.array([0, 1, 4, 2])
INPUTS, WEIGHT = RNG.normal(size=(4, 3)), RNG.normal(size=(5, 3))


def _cross_entropy(**options):
    return sk.cross_entropy(LOGITS, TARGET, **options)


def _cross_entropy_grad(**options):
    return sk.cross_entropy_grad(LOGITS, TARGET, **options)


def _nll_loss(**options):
    return sk.nll_loss(sk.log_softmax(LOGITS), TARGET, **options)


def _linear_cross_entropy(**options):
    return sk.linear_cross_entropy(INPUTS, WEIGHT, TARGET, **options)


def _sampled_softmax_loss(**options):
    return sk.sampled_softmax_loss(
        WEIGHT, np.zeros(5), TARGET, INPUTS, num_sampled=2, rng=0, **options
    )


WITH_IGNORE = [_cross_entropy, _cross_entropy_grad, _nll_loss, _linear_cross_entropy]
WITH_SMOOTHING = [_cross_entropy, _cross_entropy_grad, _linear_cross_entropy]


@pytest.mark.parametrize("loss", [*WITH_IGNORE, _sampled_softmax_loss], ids=lambda f: f.__name__)
def test_unknown_reduction_gets_the_same_message_from_every_loss(loss):
    message = "`reduction` must be one of 'none', 'mean', 'sum'; got 'avg'"
    with pytest.raises(sk.SoftmaxkitValueError, match=re.escape(message)):
        loss(reduction="avg")


@pytest.mark.parametrize("loss", WITH_IGNORE, ids=lambda f: f.__name__)
@pytest.mark.parametrize("value", [0.5, "3", True])
def test_ignore_index_must_be_an_int_not_a_bool(loss, value):
    with pytest.raises(
        sk.SoftmaxkitTypeError, match=re.escape(f"`ignore_index` must be an int; got {value!r}")
    ):
        loss(ignore_index=value)


@pytest.mark.parametrize("loss", WITH_SMOOTHING, ids=lambda f: f.__name__)
def test_label_smoothing_outside_0_1_gets_the_same_message_from_every_loss(loss):
    with pytest.raises(
        sk.SoftmaxkitValueError, match=re.escape("`label_smoothing` must be in [0, 1]; got 1.5")
    ):
        loss(label_smoothing=1.5)
    with pytest.raises(sk.SoftmaxkitTypeError, match="`label_smoothing` must be a number in"):
        loss(label_smoothing="lots")
