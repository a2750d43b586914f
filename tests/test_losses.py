"""Losses against torch.nn.functional: values and gradients over every option."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from softmaxkit import (
    SoftmaxkitTypeError,
    SoftmaxkitValueError,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_grad,
    cross_entropy,
    cross_entropy_grad,
    log_softmax,
    nll_loss,
    nll_loss_grad,
)

N, C, D = 5, 4, 3
IGNORE = -100


def _problem(layout: str, kind: str, seed: int = 0):
    """Torch-layout arrays ``(logits (N, C[, D]), target)`` as NumPy float64 / int64."""
    rng = np.random.default_rng(seed)
    shape = (N, C) if layout == "2d" else (N, C, D)
    logits = rng.normal(size=shape) * 2
    rows = (N,) if layout == "2d" else (N, D)
    if kind == "soft":
        raw = rng.random(size=shape) ** 3
        target = raw / raw.sum(axis=1, keepdims=True)
    else:
        target = rng.integers(0, C, size=rows)
        if kind == "ignored":
            target.flat[::3] = IGNORE
    return logits, target


def _ours(logits: np.ndarray, target: np.ndarray, layout: str, kind: str):
    """Our call's arrays and axis for a torch-layout problem: ``last`` moves the classes last."""
    if layout == "last":
        logits = np.moveaxis(logits, 1, -1)
        if kind == "soft":
            target = np.moveaxis(target, 1, -1)
        return np.ascontiguousarray(logits), np.ascontiguousarray(target), -1
    return logits, target, (1 if layout == "nd" else -1)


def _back(dlogits: np.ndarray, layout: str) -> np.ndarray:
    return np.moveaxis(dlogits, -1, 1) if layout == "last" else dlogits


def _torch_reference(
    logits, target, *, weight, reduction, label_smoothing, z_loss=0.0, softcap=None
):
    """torch's cross-entropy plus our documented z-loss, and its autograd gradient."""
    x = torch.from_numpy(logits).requires_grad_(True)
    t = torch.from_numpy(target)
    w = None if weight is None else torch.from_numpy(weight)
    capped = x if softcap is None else softcap * torch.tanh(x / softcap)
    loss = F.cross_entropy(
        capped,
        t,
        weight=w,
        ignore_index=IGNORE,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
    if z_loss:
        kept = torch.ones(t.shape[:1] + t.shape[2:]) if t.is_floating_point() else t != IGNORE
        z = z_loss * torch.logsumexp(capped, dim=1) ** 2 * kept
        if reduction == "none":
            loss = loss + z
        elif reduction == "sum":
            loss = loss + z.sum()
        else:
            loss = loss + z.sum() / kept.sum()
    loss.sum().backward()
    return loss.detach().numpy(), x.grad.numpy()


def _close(a, b, rtol=1e-12, atol=1e-13):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), b, rtol=rtol, atol=atol)


# --- cross_entropy: the grid against torch ---------------------------------------------------

GRID = list(
    itertools.product(
        ["2d", "nd", "last"],  # (N, C) axis -1; (N, C, D) axis 1; (N, D, C) axis -1
        ["index", "ignored", "soft"],
        [False, True],  # weight
        ["mean", "sum", "none"],
        [0.0, 0.3],  # label smoothing
    )
)


@pytest.mark.parametrize(("layout", "kind", "weighted", "reduction", "smoothing"), GRID)
def test_cross_entropy_grid_matches_torch(layout, kind, weighted, reduction, smoothing):
    logits, target = _problem(layout, kind, seed=len(layout) + len(kind))
    weight = np.array([0.5, 2.0, 1.0, 3.0]) if weighted else None
    options = {"weight": weight, "reduction": reduction, "label_smoothing": smoothing}
    expected, expected_grad = _torch_reference(logits, target, **options)

    x, t, axis = _ours(logits, target, layout, kind)
    value = cross_entropy(x, t, axis=axis, ignore_index=IGNORE, **options)
    loss, dlogits = cross_entropy_grad(x, t, axis=axis, ignore_index=IGNORE, **options)
    _close(value, expected)
    _close(loss, expected)
    _close(_back(dlogits, layout), expected_grad)

    # torch tensors through our function: torch's autograd of our graph agrees too
    xt = torch.from_numpy(x).requires_grad_(True)
    wt = None if weight is None else torch.from_numpy(weight)
    ours = cross_entropy(
        xt,
        torch.from_numpy(t),
        axis=axis,
        weight=wt,
        ignore_index=IGNORE,
        reduction=reduction,
        label_smoothing=smoothing,
    )
    ours.sum().backward()
    _close(ours.detach().numpy(), expected)
    _close(_back(xt.grad.numpy(), layout), expected_grad)


@pytest.mark.parametrize(
    ("kind", "weighted", "reduction", "smoothing"),
    [row[1:] for row in GRID if row[0] == "nd"],
)
def test_cross_entropy_grid_jax_grad_matches_torch(kind, weighted, reduction, smoothing):
    import jax
    import jax.numpy as jnp

    logits, target = _problem("nd", kind, seed=2 + len(kind))
    weight = np.array([0.5, 2.0, 1.0, 3.0]) if weighted else None
    options = {"weight": weight, "reduction": reduction, "label_smoothing": smoothing}
    expected, expected_grad = _torch_reference(logits, target, **options)
    jax_options = {**options, "weight": None if weight is None else jnp.asarray(weight)}

    def total(x):
        loss = cross_entropy(x, jnp.asarray(target), axis=1, ignore_index=IGNORE, **jax_options)
        return jnp.sum(loss), loss

    (_, loss), grad = jax.value_and_grad(total, has_aux=True)(jnp.asarray(logits))
    _close(loss, expected)
    _close(grad, expected_grad)


@pytest.mark.parametrize(
    ("reduction", "weighted", "kind"),
    list(itertools.product(["mean", "sum", "none"], [False, True], ["ignored", "soft"])),
)
@pytest.mark.parametrize(("z_loss", "softcap"), [(1e-2, None), (0.0, 1.5), (0.3, 2.0)])
def test_cross_entropy_z_loss_and_softcap_match_torch_composition(
    reduction, weighted, kind, z_loss, softcap
):
    logits, target = _problem("2d", kind, seed=3)
    weight = np.array([0.5, 2.0, 1.0, 3.0]) if weighted else None
    options = {"weight": weight, "reduction": reduction, "label_smoothing": 0.1}
    expected, expected_grad = _torch_reference(
        logits, target, z_loss=z_loss, softcap=softcap, **options
    )
    extra = {"z_loss": z_loss, "softcap": softcap, "ignore_index": IGNORE}
    loss, dlogits = cross_entropy_grad(logits, target, **options, **extra)
    _close(cross_entropy(logits, target, **options, **extra), expected)
    _close(loss, expected)
    _close(dlogits, expected_grad)

    xt = torch.from_numpy(logits).requires_grad_(True)
    wt = None if weight is None else torch.from_numpy(weight)
    ours = cross_entropy(xt, torch.from_numpy(target), **{**options, "weight": wt}, **extra)
    ours.sum().backward()
    _close(xt.grad.numpy(), expected_grad)


def test_cross_entropy_z_loss_by_hand():
    # one kept row, one ignored: z-loss counts only the kept one, unweighted
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
    target = np.array([2, IGNORE])
    weight = np.array([1.0, 1.0, 4.0])
    lse = np.log(np.exp(logits[0]).sum())
    main = lse - 3.0
    got = cross_entropy(logits, target, weight=weight, z_loss=0.5)
    assert float(got) == pytest.approx(4 * main / 4 + 0.5 * lse**2, rel=1e-14)
    rows = cross_entropy(logits, target, weight=weight, z_loss=0.5, reduction="none")
    np.testing.assert_allclose(rows, [4 * main + 0.5 * lse**2, 0.0], rtol=1e-14)


# --- cross_entropy_grad: finite differences --------------------------------------------------


def _finite_difference(f, x, h=1e-5):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"reduction": "none"},
        {"weight": np.array([0.5, 2.0, 1.0, 3.0]), "label_smoothing": 0.2},
        {"z_loss": 0.1},
        {"softcap": 1.5},
        {"z_loss": 0.05, "softcap": 2.0, "weight": np.array([1.0, 2.0, 3.0, 4.0])},
        {"z_loss": 0.05, "softcap": 2.0, "reduction": "sum", "label_smoothing": 0.1},
    ],
    ids=["plain", "none", "weight-smoothing", "z_loss", "softcap", "all-mean", "all-sum"],
)
@pytest.mark.parametrize("kind", ["ignored", "soft"])
def test_cross_entropy_grad_matches_finite_differences(options, kind):
    logits, target = _problem("nd", kind, seed=11)

    def total(x):
        return float(np.sum(cross_entropy(x, target, axis=1, **options)))

    _, dlogits = cross_entropy_grad(logits, target, axis=1, **options)
    # central differences: truncation ~h**2, rounding ~1e-16 * |f| / h
    np.testing.assert_allclose(dlogits, _finite_difference(total, logits), rtol=1e-7, atol=1e-9)


# --- cross_entropy: other backends, dtypes, edges --------------------------------------------


def test_cross_entropy_jax_grad_matches_numpy():
    import jax
    import jax.numpy as jnp

    logits, target = _problem("nd", "ignored", seed=4)
    options = {
        "axis": 1,
        "weight": np.array([0.5, 2.0, 1.0, 3.0]),
        "label_smoothing": 0.1,
        "z_loss": 0.01,
        "softcap": 3.0,
    }
    loss, dlogits = cross_entropy_grad(logits, target, **options)
    jax_options = {**options, "weight": jnp.asarray(options["weight"])}

    def f(x):
        return cross_entropy(x, jnp.asarray(target), **jax_options)

    value, grad = jax.value_and_grad(f)(jnp.asarray(logits))
    _close(value, loss)
    _close(grad, dlogits)
    # under jit the values cannot be checked, but the loss is the same (softcap included:
    # XLA fuses its tanh into the reductions, see test_gh_jit_recomputed_input_log_softmax)
    _close(
        jax.jit(lambda x: cross_entropy(x, jnp.asarray(target), **jax_options))(
            jnp.asarray(logits)
        ),
        loss,
    )
    jax_loss, jax_grad = cross_entropy_grad(jnp.asarray(logits), jnp.asarray(target), **jax_options)
    _close(jax_loss, loss)
    _close(jax_grad, dlogits)


def test_cross_entropy_every_backend_returns_its_kind(backend):
    logits, target = _problem("2d", "index", seed=5)
    expected = cross_entropy(logits, target, reduction="none")
    got = cross_entropy(backend.asarray(logits), backend.asarray(target), reduction="none")
    assert backend.is_native(got)
    _close(backend.to_numpy(got), expected)


def test_grad_functions_return_the_callers_kind(backend):
    logits, target = _problem("nd", "ignored", seed=5)
    loss, dlogits = cross_entropy_grad(logits, target, axis=1, z_loss=0.1, softcap=2.0)
    got_loss, got = cross_entropy_grad(
        backend.asarray(logits), backend.asarray(target), axis=1, z_loss=0.1, softcap=2.0
    )
    assert backend.is_native(got_loss) and backend.is_native(got)
    _close(backend.to_numpy(got_loss), loss)
    _close(backend.to_numpy(got), dlogits)
    probs = np.abs(np.tanh(logits))
    loss, dlogits = binary_cross_entropy_with_logits_grad(logits, probs)
    got_loss, got = binary_cross_entropy_with_logits_grad(
        backend.asarray(logits), backend.asarray(probs)
    )
    assert backend.is_native(got)
    _close(backend.to_numpy(got_loss), loss)
    _close(backend.to_numpy(got), dlogits)


def test_cross_entropy_float32_matches_torch_float32():
    logits, target = _problem("2d", "ignored", seed=6)
    x = logits.astype(np.float32)
    loss, dlogits = cross_entropy_grad(x, target, label_smoothing=0.1)
    assert loss.dtype == np.float32 and dlogits.dtype == np.float32
    xt = torch.from_numpy(x).requires_grad_(True)
    ref = F.cross_entropy(xt, torch.from_numpy(target), label_smoothing=0.1)
    ref.backward()
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-6)
    np.testing.assert_allclose(dlogits, xt.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_cross_entropy_float16_computes_in_float32():
    logits, target = _problem("2d", "index", seed=7)
    got = cross_entropy(logits.astype(np.float16), target)
    assert got.dtype == np.float16
    expected = cross_entropy(logits.astype(np.float16).astype(np.float32), target)
    assert float(got) == pytest.approx(float(expected), rel=1e-3)


def test_cross_entropy_all_ignored_mean_is_nan_with_zero_gradient_as_torch():
    logits = np.array([[1.0, 2.0], [3.0, 0.5]])
    target = np.array([IGNORE, IGNORE])
    loss, dlogits = cross_entropy_grad(logits, target, z_loss=0.1)
    assert np.isnan(loss)
    assert np.array_equal(dlogits, np.zeros_like(logits))
    xt = torch.from_numpy(logits).requires_grad_(True)
    F.cross_entropy(xt, torch.from_numpy(target)).backward()
    assert np.array_equal(xt.grad.numpy(), dlogits)
    assert float(cross_entropy(logits, target, reduction="sum")) == 0.0


def test_cross_entropy_zero_kept_weight_mean_is_nan():
    logits = np.array([[1.0, 2.0], [3.0, 0.5]])
    got = cross_entropy(logits, np.array([0, 0]), weight=np.array([0.0, 1.0]))
    ref = F.cross_entropy(
        torch.from_numpy(logits),
        torch.tensor([0, 0]),
        weight=torch.tensor([0.0, 1.0], dtype=torch.float64),
    )
    assert np.isnan(got) and torch.isnan(ref)


def test_cross_entropy_empty_batch():
    logits = np.zeros((0, 3))
    target = np.zeros(0, dtype=np.int64)
    assert np.isnan(cross_entropy(logits, target))
    assert float(cross_entropy(logits, target, reduction="sum")) == 0.0
    assert cross_entropy(logits, target, reduction="none").shape == (0,)


def test_cross_entropy_soft_target_zero_at_minus_inf_logit_is_finite():
    # torch gives NaN here (0 * -inf); we count 0 * log 0 as 0
    logits = np.array([[0.0, -np.inf, 1.0]])
    target = np.array([[0.5, 0.0, 0.5]])
    loss, dlogits = cross_entropy_grad(logits, target)
    expected = -0.5 * (np.log(1 / (1 + np.e)) + np.log(np.e / (1 + np.e)))
    assert float(loss) == pytest.approx(expected, rel=1e-14)
    assert dlogits[0, 1] == 0.0 and np.all(np.isfinite(dlogits))
    # class indices with a -inf logit elsewhere are finite in torch too
    assert float(cross_entropy(logits, np.array([2]))) == pytest.approx(np.log1p(np.exp(-1.0)))


def test_cross_entropy_unbatched_row():
    logits = np.array([2.0, 1.0, 0.1])
    got = cross_entropy(logits, np.array(0))
    ref = F.cross_entropy(torch.from_numpy(logits), torch.tensor(0))
    assert float(got) == pytest.approx(ref.item(), rel=1e-14)


def test_cross_entropy_ignore_index_inside_class_range():
    # torch drops the rows of a class index equal to ignore_index, even a valid one
    logits, target = _problem("2d", "index", seed=8)
    got = cross_entropy(logits, target, ignore_index=1)
    ref = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(target), ignore_index=1)
    assert float(got) == pytest.approx(ref.item(), rel=1e-13)


def test_cross_entropy_equals_nll_of_log_softmax():
    logits, target = _problem("nd", "ignored", seed=9)
    weight = np.array([1.0, 2.0, 0.5, 1.5])
    a = cross_entropy(logits, target, axis=1, weight=weight)
    b = nll_loss(log_softmax(logits, 1), target, axis=1, weight=weight)
    assert float(a) == pytest.approx(float(b), rel=1e-14)


# --- cross_entropy: bad input ----------------------------------------------------------------

X = np.zeros((3, 4))


@pytest.mark.parametrize(
    ("target", "kwargs", "match"),
    [
        (np.array([0, 4, 1]), {}, r"`target` must be in \[0, 4\) or -100; position \(1,\) holds 4"),
        (np.array([0, -1, 1]), {}, r"position \(1,\) holds -1"),
        (np.array([0, 1]), {}, r"`target` of class indices must have the shape .* \(3,\)"),
        (
            np.array([[0.5, 0.5, 0, 0], [1, 0, 0, 0], [0.5, -0.5, 1, 0]]),
            {},
            r"`target` probabilities must be >= 0; position \(2, 1\) holds -0.5",
        ),
        (
            np.array([[0.5, 0.5, 0, 0], [1, 0, 0, 0.1], [1, 0, 0, 0]]),
            {},
            r"must sum to 1 along `axis` \(within 1e-06 for float64\); the row at position "
            r"\(1, :\) sums to 1.1",
        ),
        (np.full((3, 3), 1 / 3), {}, r"`target` of probabilities must have the shape"),
        (
            np.array([0, 1, 2]),
            {"weight": np.ones(3)},
            r"`weight` must have one entry per class, shape \(4,\); got shape \(3,\)",
        ),
        (np.array([0, 1, 2]), {"reduction": "average"}, r"`reduction` must be one of .*'average'"),
        (
            np.array([0, 1, 2]),
            {"label_smoothing": 1.5},
            r"`label_smoothing` must be in \[0, 1\]; got 1.5",
        ),
        (np.array([0, 1, 2]), {"label_smoothing": -0.1}, r"`label_smoothing`"),
        (np.array([0, 1, 2]), {"z_loss": -1.0}, r"`z_loss` must be in \[0, inf\); got -1.0"),
        (np.array([0, 1, 2]), {"softcap": 0.0}, r"`softcap` must be in \(0, inf\); got 0.0"),
        (np.array([0, 1, 2]), {"axis": 2}, r"`axis` must be in \[-2, 2\); got 2"),
    ],
)
def test_cross_entropy_bad_input_names_argument_and_position(target, kwargs, match):
    with pytest.raises(SoftmaxkitValueError, match=match):
        cross_entropy(X, target, **kwargs)
    with pytest.raises(SoftmaxkitValueError, match=match):
        cross_entropy_grad(X, target, **kwargs)


def test_cross_entropy_probability_tolerance_follows_dtype():
    target = np.array([[0.5, 0.5, 0.0, 5e-5]] * 3)
    cross_entropy(X.astype(np.float32), target.astype(np.float32))  # within 1e-4
    with pytest.raises(SoftmaxkitValueError, match="within 1e-06 for float64"):
        cross_entropy(X, target)


def test_cross_entropy_soft_target_along_other_axis_reports_row():
    target = np.full((4, 3), 0.25)
    target[1, 2] = 0.5
    with pytest.raises(SoftmaxkitValueError, match=r"row at position \(:, 2\) sums to 1.25"):
        cross_entropy(X.T.copy(), target, axis=0)


def test_cross_entropy_type_errors():
    with pytest.raises(SoftmaxkitTypeError, match="got dtype bool"):
        cross_entropy(X, np.array([True, False, True]))
    with pytest.raises(SoftmaxkitTypeError, match="`axis` must be an int"):
        cross_entropy(X, np.array([0, 1, 2]), axis=(0, 1))
    with pytest.raises(SoftmaxkitTypeError, match="`ignore_index` must be an int"):
        cross_entropy(X, np.array([0, 1, 2]), ignore_index=1.5)
    with pytest.raises(SoftmaxkitValueError, match="must have a class axis"):
        cross_entropy(np.array(1.0), np.array(0))


# --- nll_loss --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "kind", "weighted", "reduction"),
    list(
        itertools.product(
            ["2d", "nd"], ["index", "ignored"], [False, True], ["mean", "sum", "none"]
        )
    ),
)
def test_nll_loss_matches_torch(layout, kind, weighted, reduction):
    logits, target = _problem(layout, kind, seed=12)
    log_probs = np.asarray(log_softmax(logits, 1))
    weight = np.array([0.5, 2.0, 1.0, 3.0]) if weighted else None
    lp = torch.from_numpy(log_probs).requires_grad_(True)
    ref = F.nll_loss(
        lp,
        torch.from_numpy(target),
        weight=None if weight is None else torch.from_numpy(weight),
        reduction=reduction,
    )
    ref.sum().backward()
    loss, grad = nll_loss_grad(log_probs, target, axis=1, weight=weight, reduction=reduction)
    _close(nll_loss(log_probs, target, axis=1, weight=weight, reduction=reduction), ref.detach())
    _close(loss, ref.detach())
    _close(grad, lp.grad.numpy())


def test_nll_loss_refuses_probability_targets():
    with pytest.raises(SoftmaxkitTypeError, match="`target` must hold integer class indices"):
        nll_loss(X, np.full((3, 4), 0.25))


# --- binary_cross_entropy_with_logits --------------------------------------------------------

BCE_WEIGHTS = {
    "none": None,
    "class": np.array([0.5, 2.0, 1.0, 3.0]),
    "row": np.array([[1.0], [0.5], [2.0], [0.0], [1.5]]),
    "full": np.linspace(0.1, 2.0, N * C).reshape(N, C),
}
BCE_POS = {
    "none": None,
    "class": np.array([1.0, 3.0, 0.5, 2.0]),
    "full": np.linspace(0.5, 4.0, N * C).reshape(N, C),
}


@pytest.mark.parametrize(
    ("weight", "pos_weight", "reduction", "soft"),
    list(itertools.product(BCE_WEIGHTS, BCE_POS, ["mean", "sum", "none"], [False, True])),
)
def test_binary_cross_entropy_with_logits_matches_torch(weight, pos_weight, reduction, soft):
    rng = np.random.default_rng(20)
    logits = rng.normal(size=(N, C)) * 3
    target = rng.random((N, C)) if soft else (rng.random((N, C)) < 0.4).astype(np.float64)
    w, pw = BCE_WEIGHTS[weight], BCE_POS[pos_weight]
    xt = torch.from_numpy(logits).requires_grad_(True)
    ref = F.binary_cross_entropy_with_logits(
        xt,
        torch.from_numpy(target),
        weight=None if w is None else torch.from_numpy(w),
        pos_weight=None if pw is None else torch.from_numpy(pw),
        reduction=reduction,
    )
    ref.sum().backward()
    options = {"weight": w, "pos_weight": pw, "reduction": reduction}
    loss, grad = binary_cross_entropy_with_logits_grad(logits, target, **options)
    _close(binary_cross_entropy_with_logits(logits, target, **options), ref.detach())
    _close(loss, ref.detach())
    _close(grad, xt.grad.numpy())

    # torch tensors through our function
    xo = torch.from_numpy(logits).requires_grad_(True)
    ours = binary_cross_entropy_with_logits(
        xo,
        torch.from_numpy(target),
        weight=None if w is None else torch.from_numpy(w),
        pos_weight=None if pw is None else torch.from_numpy(pw),
        reduction=reduction,
    )
    ours.sum().backward()
    _close(xo.grad.numpy(), xt.grad.numpy())


def test_binary_cross_entropy_with_logits_is_exact_at_1e4():
    logits = np.array([1e4, -1e4, 1e4, -1e4, 30.0, -30.0])
    target = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    loss, grad = binary_cross_entropy_with_logits_grad(logits, target, reduction="none")
    tail = np.log1p(np.exp(-30.0))  # both right answers at +-30 are softplus(-30)
    np.testing.assert_allclose(loss, [0.0, 0.0, 1e4, 1e4, tail, tail], rtol=1e-15)
    np.testing.assert_array_equal(grad[:4], [0.0, 0.0, 1.0, -1.0])


def test_binary_cross_entropy_with_logits_float32_matches_torch():
    logits = np.array([1e4, -1e4, 1e4, -1e4, 3.0, -0.5], dtype=np.float32)
    target = np.array([1.0, 0.0, 0.0, 1.0, 0.3, 0.0], dtype=np.float32)
    got = binary_cross_entropy_with_logits(logits, target, reduction="none")
    assert got.dtype == np.float32
    ref = F.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), torch.from_numpy(target), reduction="none"
    )
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-6)


def test_binary_cross_entropy_with_logits_keeps_tiny_losses_torch_rounds_to_zero():
    # torch's (1 - t) x + softplus(-x) cancels to 0 at x = -30, t = 0 in float32
    x, t = np.array([-30.0], dtype=np.float32), np.array([0.0], dtype=np.float32)
    got = binary_cross_entropy_with_logits(x, t, reduction="none")
    assert got[0] == pytest.approx(np.log1p(np.exp(-30.0)), rel=1e-6)


def test_binary_cross_entropy_with_logits_grad_matches_finite_differences():
    rng = np.random.default_rng(21)
    logits = rng.normal(size=(3, 4)) * 2
    target = rng.random((3, 4))
    options = {
        "weight": np.array([1.0, 2.0, 0.5, 1.0]),
        "pos_weight": np.array([2.0, 1.0, 3.0, 0.5]),
    }

    def total(x):
        return float(binary_cross_entropy_with_logits(x, target, **options))

    _, grad = binary_cross_entropy_with_logits_grad(logits, target, **options)
    np.testing.assert_allclose(grad, _finite_difference(total, logits), rtol=1e-7, atol=1e-10)


def test_binary_cross_entropy_with_logits_jax_grad():
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(22)
    logits, target = rng.normal(size=(3, 4)), rng.random((3, 4))
    pw = np.array([2.0, 1.0, 3.0, 0.5])
    _, grad = binary_cross_entropy_with_logits_grad(logits, target, pos_weight=pw)
    jgrad = jax.grad(
        lambda x: binary_cross_entropy_with_logits(
            x, jnp.asarray(target), pos_weight=jnp.asarray(pw)
        )
    )(jnp.asarray(logits))
    _close(jgrad, grad)


def test_binary_cross_entropy_with_logits_bad_input():
    x = np.zeros((2, 3))
    with pytest.raises(
        SoftmaxkitValueError, match=r"`target` must have the shape of `logits` \(2, 3\)"
    ):
        binary_cross_entropy_with_logits(x, np.zeros((1, 3)))
    with pytest.raises(
        SoftmaxkitValueError,
        match=r"`target` must be probabilities in \[0, 1\]; position \(1, 2\) holds 2.0",
    ):
        binary_cross_entropy_with_logits(x, np.array([[0, 1, 0], [0, 1, 2.0]]))
    with pytest.raises(
        SoftmaxkitValueError, match=r"`pos_weight` must broadcast .*\(2, 3\).* got shape \(2,\)"
    ):
        binary_cross_entropy_with_logits(x, np.zeros((2, 3)), pos_weight=np.ones(2))
    with pytest.raises(
        SoftmaxkitValueError, match=r"`weight` must broadcast .* got shape \(4, 2, 3\)"
    ):
        binary_cross_entropy_with_logits(x, np.zeros((2, 3)), weight=np.ones((4, 2, 3)))
    with pytest.raises(SoftmaxkitValueError, match="`reduction`"):
        binary_cross_entropy_with_logits(x, np.zeros((2, 3)), reduction="max")


def test_binary_cross_entropy_with_logits_empty_mean_is_nan():
    assert np.isnan(binary_cross_entropy_with_logits(np.zeros((0, 3)), np.zeros((0, 3))))
