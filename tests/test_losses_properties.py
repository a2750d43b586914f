"""Properties of the losses over random shapes and options (hypothesis)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from softmaxkit import (
    binary_cross_entropy_with_logits_grad,
    cross_entropy,
    cross_entropy_grad,
)

IGNORE = -100


@st.composite
def problems(draw):
    n = draw(st.integers(1, 4))
    c = draw(st.integers(1, 5))
    extra = draw(st.lists(st.integers(1, 3), max_size=2))
    shape = (n, c, *extra)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.1, 1.0, 10.0, 100.0]))
    logits = rng.normal(size=shape) * scale
    rows = (n, *extra)
    if draw(st.booleans()):
        raw = rng.random(shape) ** 2 + 1e-3
        target = raw / raw.sum(axis=1, keepdims=True)
    else:
        target = rng.integers(0, c, size=rows)
        target[rng.random(rows) < 0.3] = IGNORE
    options = {
        "weight": rng.random(c) + 0.1 if draw(st.booleans()) else None,
        "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
        "label_smoothing": draw(st.sampled_from([0.0, 0.05, 0.5, 1.0])),
    }
    return logits, target, options


@settings(max_examples=60, deadline=None)
@given(problems())
def test_cross_entropy_grad_matches_torch_autograd(problem):
    logits, target, options = problem
    x = torch.from_numpy(logits).requires_grad_(True)
    ref = F.cross_entropy(
        x,
        torch.from_numpy(target),
        weight=None if options["weight"] is None else torch.from_numpy(options["weight"]),
        ignore_index=IGNORE,
        reduction=options["reduction"],
        label_smoothing=options["label_smoothing"],
    )
    ref.sum().backward()
    loss, dlogits = cross_entropy_grad(logits, target, axis=1, **options)
    np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-11, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(dlogits, x.grad.numpy(), rtol=1e-11, atol=1e-13)


@settings(max_examples=40, deadline=None)
@given(problems(), st.floats(-50, 50))
def test_cross_entropy_is_shift_invariant_without_z_loss(problem, shift):
    logits, target, options = problem
    a = cross_entropy(logits, target, axis=1, **options)
    b = cross_entropy(logits + shift, target, axis=1, **options)
    np.testing.assert_allclose(
        a, b, rtol=1e-9, atol=1e-9 * (1 + np.abs(logits).max()), equal_nan=True
    )


@settings(max_examples=40, deadline=None)
@given(problems())
def test_cross_entropy_axis_equals_moveaxis(problem):
    logits, target, options = problem
    moved_target = np.moveaxis(target, 1, -1) if target.dtype.kind == "f" else target
    a = cross_entropy(logits, target, axis=1, **options)
    b = cross_entropy(np.moveaxis(logits, 1, -1), moved_target, **options)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.1, 10.0, 1e4]),
    st.sampled_from(["mean", "sum", "none"]),
)
def test_binary_cross_entropy_with_logits_matches_torch_at_any_scale(seed, scale, reduction):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(3, 4)) * scale
    target = rng.random((3, 4))
    pos_weight = rng.random(4) * 3
    x = torch.from_numpy(logits).requires_grad_(True)
    ref = F.binary_cross_entropy_with_logits(
        x, torch.from_numpy(target), pos_weight=torch.from_numpy(pos_weight), reduction=reduction
    )
    ref.sum().backward()
    loss, grad = binary_cross_entropy_with_logits_grad(
        logits, target, pos_weight=pos_weight, reduction=reduction
    )
    # torch's formula cancels for large |x|: compare absolutely at the loss's scale
    np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-12, atol=1e-12 * scale)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-12, atol=1e-15)
    assert np.all(np.isfinite(loss)) and np.all(np.asarray(loss) >= 0)
