"""in_batch_softmax_loss: the hand-built logit matrix, hits and duplicates, gradients, backends, errors."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from softmaxkit import (
    SoftmaxkitTypeError,
    SoftmaxkitValueError,
    in_batch_softmax_loss,
    in_batch_softmax_loss_grad,
)
from softmaxkit.sampling import FrequencyEstimator
from softmaxkit.torch import InBatchSoftmaxLoss

B, D, M = 6, 4, 3
IDS = np.array([7, 3, 7, 1, 3, 7])  # item 7 in rows 0, 2, 5; item 3 in rows 1, 4
EXTRA_IDS = np.array([1, 9, 7])  # extra 0 is row 3's item, extra 2 is item 7


def problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        "queries": rng.normal(size=(B, D)),
        "candidates": rng.normal(size=(B, D)),
        "extra_candidates": rng.normal(size=(M, D)),
        "log_q": np.log(rng.uniform(0.05, 1.0, size=B)),
        "extra_log_q": np.log(rng.uniform(0.05, 1.0, size=M)),
    }


def _logsumexp(row: list[float]) -> float:
    m = max(row)
    return m + math.log(sum(math.exp(v - m) for v in row if v != -math.inf))


def reference(
    queries,
    candidates,
    *,
    candidate_ids=None,
    log_q=None,
    temperature=1.0,
    remove_accidental_hits=True,
    extra_candidates=None,
    extra_ids=None,
    extra_log_q=None,
    reduction="mean",
    symmetric=False,
):
    """The loss from the logit matrix written out entry by entry, in Python floats."""
    q, c = queries.tolist(), candidates.tolist()
    e = [] if extra_candidates is None else extra_candidates.tolist()
    n = len(q)

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True)) / temperature

    def hit(i, others, k):
        """Whether ``others[k]`` (an id list) is row ``i``'s positive item, to be removed."""
        if not remove_accidental_hits or candidate_ids is None or others is None:
            return False
        return others[k] == candidate_ids[i]

    rows = []
    for i in range(n):
        logits = []
        for j in range(n):
            v = dot(q[i], c[j]) - (0.0 if log_q is None else log_q[j])
            logits.append(-math.inf if j != i and hit(i, candidate_ids, j) else v)
        for k in range(len(e)):
            v = dot(q[i], e[k]) - (0.0 if extra_log_q is None else extra_log_q[k])
            logits.append(-math.inf if hit(i, extra_ids, k) else v)
        rows.append(_logsumexp(logits) - logits[i])
    if symmetric:
        for i in range(n):  # candidate i against every query; log_q[i] would cancel
            column = [
                -math.inf if j != i and hit(i, candidate_ids, j) else dot(q[j], c[i])
                for j in range(n)
            ]
            rows[i] = (rows[i] + _logsumexp(column) - column[i]) / 2
    if reduction == "mean":
        return sum(rows) / n
    if reduction == "sum":
        return sum(rows)
    return np.array(rows)


FROM_PROBLEM = object()  # an option whose array comes from problem()

OPTIONS = {
    "plain": {},
    "ids with duplicates": {"candidate_ids": IDS},
    "duplicates kept": {"candidate_ids": IDS, "remove_accidental_hits": False},
    "log_q": {"log_q": FROM_PROBLEM},
    "temperature": {"temperature": 0.07},
    "extra candidates": {"extra_candidates": FROM_PROBLEM},
    "extra with ids and log_q": {
        "extra_candidates": FROM_PROBLEM,
        "candidate_ids": IDS,
        "extra_ids": EXTRA_IDS,
        "log_q": FROM_PROBLEM,
        "extra_log_q": FROM_PROBLEM,
    },
    "symmetric": {"symmetric": True},
    "symmetric with hits and log_q": {
        "symmetric": True,
        "candidate_ids": IDS,
        "log_q": FROM_PROBLEM,
    },
    "everything, sum": {
        "candidate_ids": IDS,
        "log_q": FROM_PROBLEM,
        "temperature": 0.5,
        "extra_candidates": FROM_PROBLEM,
        "extra_ids": EXTRA_IDS,
        "extra_log_q": FROM_PROBLEM,
        "symmetric": True,
        "reduction": "sum",
    },
    "everything, none": {
        "candidate_ids": IDS,
        "log_q": FROM_PROBLEM,
        "temperature": 2.0,
        "extra_candidates": FROM_PROBLEM,
        "extra_ids": EXTRA_IDS,
        "extra_log_q": FROM_PROBLEM,
        "symmetric": True,
        "reduction": "none",
    },
}


def arguments(option: dict, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    p = problem(seed)
    kwargs = {k: (p[k] if v is FROM_PROBLEM else v) for k, v in option.items()}
    return p["queries"], p["candidates"], kwargs


@pytest.mark.parametrize("name", list(OPTIONS))
def test_loss_equals_cross_entropy_over_the_hand_built_logit_matrix(name):
    q, c, kwargs = arguments(OPTIONS[name])
    got = in_batch_softmax_loss(q, c, **kwargs)
    np.testing.assert_allclose(got, reference(q, c, **kwargs), rtol=1e-12)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64


def test_another_rows_copy_of_my_positive_is_removed_and_other_copies_stay():
    q, c, _ = arguments({})
    loss = in_batch_softmax_loss(q, c, candidate_ids=IDS, reduction="none")
    # Row 0 (item 7) without the columns of rows 2 and 5 (item 7 again): a smaller softmax.
    keep = [0, 1, 3, 4]
    row0 = -(q[0] @ c[0]) + math.log(np.exp(q[0] @ c[keep].T).sum())
    np.testing.assert_allclose(loss[0], row0, rtol=1e-13)
    # Row 3 (item 1) keeps every column: the three copies of item 7 are three negatives.
    row3 = -(q[3] @ c[3]) + math.log(np.exp(q[3] @ c.T).sum())
    np.testing.assert_allclose(loss[3], row3, rtol=1e-13)


def test_removed_accidental_hit_gets_gradient_exactly_zero():
    q, c, kwargs = arguments(OPTIONS["extra with ids and log_q"])
    qt = torch.tensor(q, requires_grad=True)
    ct = torch.tensor(c, requires_grad=True)
    et = torch.tensor(kwargs.pop("extra_candidates"), requires_grad=True)
    loss = in_batch_softmax_loss(qt, ct, extra_candidates=et, reduction="none", **kwargs)
    # Row 3's item is 1, which is extra candidate 0: that candidate gets nothing from row 3.
    d_c, d_e = torch.autograd.grad(loss[3], (ct, et), retain_graph=True)
    assert torch.all(d_e[0] == 0) and torch.all(d_e[1] != 0)
    # Row 0's item 7 is also in rows 2 and 5 and in extra 2: none of them get anything.
    d_c, d_e = torch.autograd.grad(loss[0], (ct, et))
    assert torch.all(d_c[[2, 5]] == 0) and torch.all(d_e[2] == 0)
    assert torch.isfinite(d_c).all() and torch.all(d_c[[0, 1, 3, 4]] != 0)


def test_without_ids_every_row_is_a_distinct_item():
    q, c, _ = arguments({})
    np.testing.assert_allclose(
        in_batch_softmax_loss(q, c),
        in_batch_softmax_loss(q, c, candidate_ids=np.arange(B)),
        rtol=1e-15,
    )


def test_log_q_is_subtracted_from_the_positive_too():
    # A constant log_q shifts every logit of a row, the positive's with them: no change.
    q, c, _ = arguments({})
    np.testing.assert_allclose(
        in_batch_softmax_loss(q, c, log_q=np.full(B, -3.5)), in_batch_softmax_loss(q, c), rtol=1e-13
    )
    # Subtracting log_q from the negatives only would lower row i's loss as log_q[i] rises.
    log_q = np.zeros(B)
    log_q[2] = math.log(0.9)
    loss = in_batch_softmax_loss(q, c, log_q=log_q, reduction="none")
    logits = q @ c.T - log_q
    np.testing.assert_allclose(loss[2], -logits[2, 2] + math.log(np.exp(logits[2]).sum()))


def test_temperature_divides_the_scores_not_log_q():
    q, c, kwargs = arguments({"log_q": FROM_PROBLEM})
    got = in_batch_softmax_loss(q, c, temperature=0.25, **kwargs)
    expected = in_batch_softmax_loss(4 * q, c, **kwargs)  # scores / 0.25, log_q as it is
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_symmetric_is_the_mean_of_both_directions():
    q, c, _ = arguments({})
    q2c = in_batch_softmax_loss(q, c, candidate_ids=IDS, reduction="none")
    c2q = in_batch_softmax_loss(c, q, candidate_ids=IDS, reduction="none")  # roles swapped
    sym = in_batch_softmax_loss(q, c, candidate_ids=IDS, symmetric=True, reduction="none")
    np.testing.assert_allclose(sym, (q2c + c2q) / 2, rtol=1e-13)


def test_every_accidental_hit_removed_leaves_only_the_positive():
    q, c, _ = arguments({})
    loss = in_batch_softmax_loss(q, c, candidate_ids=np.zeros(B, dtype=np.int64))
    assert loss == 0.0


def test_single_row_batch_has_loss_zero():
    q, c, _ = arguments({})
    assert in_batch_softmax_loss(q[:1], c[:1]) == 0.0


def test_empty_extra_candidates_change_nothing():
    q, c, _ = arguments({})
    got = in_batch_softmax_loss(
        q, c, candidate_ids=IDS, extra_candidates=np.zeros((0, D)), extra_ids=np.zeros(0, int)
    )
    np.testing.assert_allclose(got, in_batch_softmax_loss(q, c, candidate_ids=IDS), rtol=1e-15)


def test_ids_of_any_integer_range():
    q, c, _ = arguments({})
    big = np.array([2**62, -5, 2**62, 17, -5, 2**62])  # the same pattern of duplicates as IDS
    np.testing.assert_allclose(
        in_batch_softmax_loss(q, c, candidate_ids=big),
        in_batch_softmax_loss(q, c, candidate_ids=IDS),
        rtol=1e-15,
    )


# --- gradients --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(OPTIONS))
def test_numpy_gradient_matches_finite_differences(name):
    q, c, kwargs = arguments(OPTIONS[name], seed=1)
    e = kwargs.pop("extra_candidates", None)
    loss, d_q, d_c, d_e = in_batch_softmax_loss_grad(q, c, extra_candidates=e, **kwargs)
    np.testing.assert_allclose(loss, in_batch_softmax_loss(q, c, extra_candidates=e, **kwargs))
    assert (d_e is None) == (e is None)

    def total(qq, cc, ee):
        value = in_batch_softmax_loss(qq, cc, extra_candidates=ee, **kwargs)
        return float(np.sum(value))

    h = 1e-6
    arrays = [q, c] + ([] if e is None else [e])
    for which, grad in enumerate([d_q, d_c] + ([] if e is None else [d_e])):
        numeric = np.zeros_like(arrays[which])
        for index in np.ndindex(numeric.shape):
            up = [a.copy() for a in arrays] + ([None] if e is None else [])
            down = [a.copy() for a in arrays] + ([None] if e is None else [])
            up[which][index] += h
            down[which][index] -= h
            numeric[index] = (total(*up) - total(*down)) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "name", ["plain", "extra with ids and log_q", "everything, sum", "everything, none"]
)
def test_torch_gradcheck_float64(name):
    q, c, kwargs = arguments(OPTIONS[name], seed=2)
    e = kwargs.pop("extra_candidates", None)
    kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    inputs = [torch.tensor(a, requires_grad=True) for a in ([q, c] if e is None else [q, c, e])]

    def fn(*xs):
        extra = xs[2] if len(xs) == 3 else None
        return in_batch_softmax_loss(xs[0], xs[1], extra_candidates=extra, **kwargs)

    assert torch.autograd.gradcheck(fn, inputs)


def test_grad_variant_on_torch_equals_autograd():
    q, c, kwargs = arguments(OPTIONS["everything, sum"], seed=3)
    tensors = {
        k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()
    }
    e = tensors.pop("extra_candidates").requires_grad_()
    qt, ct = torch.tensor(q, requires_grad=True), torch.tensor(c, requires_grad=True)
    loss = in_batch_softmax_loss(qt, ct, extra_candidates=e, **tensors)
    expected = torch.autograd.grad(loss, (qt, ct, e))
    value, *grads = in_batch_softmax_loss_grad(
        qt.detach(), ct.detach(), extra_candidates=e.detach(), **tensors
    )
    torch.testing.assert_close(value, loss.detach(), rtol=1e-13, atol=0)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


# --- backends ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ids with duplicates", "everything, sum", "everything, none"])
def test_backends_agree_with_numpy(backend, name):
    q, c, kwargs = arguments(OPTIONS[name])
    expected = in_batch_softmax_loss(q, c, **kwargs)
    converted = {
        k: backend.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()
    }
    got = in_batch_softmax_loss(backend.asarray(q), backend.asarray(c), **converted)
    assert backend.is_native(got)
    np.testing.assert_allclose(backend.to_numpy(got), expected, rtol=1e-12)


def test_numpy_ids_and_log_q_with_torch_embeddings():
    q, c, kwargs = arguments({"candidate_ids": IDS, "log_q": FROM_PROBLEM})
    got = in_batch_softmax_loss(torch.from_numpy(q), torch.from_numpy(c), **kwargs)
    np.testing.assert_allclose(got.numpy(), in_batch_softmax_loss(q, c, **kwargs), rtol=1e-13)


def test_jax_under_jit_and_grad_matches_the_numpy_gradient():
    import jax
    import jax.numpy as jnp

    q, c, kwargs = arguments(OPTIONS["everything, sum"], seed=4)
    e = kwargs.pop("extra_candidates")
    arrays = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    settings = {k: arrays.pop(k) for k in ("temperature", "reduction", "symmetric")}

    @jax.jit
    def loss(qq, cc, ee, ids, log_q, extra_ids, extra_log_q):
        return in_batch_softmax_loss(
            qq,
            cc,
            extra_candidates=ee,
            candidate_ids=ids,
            log_q=log_q,
            extra_ids=extra_ids,
            extra_log_q=extra_log_q,
            **settings,
        )

    args = (arrays["candidate_ids"], arrays["log_q"], arrays["extra_ids"], arrays["extra_log_q"])
    value, grads = jax.value_and_grad(loss, argnums=(0, 1, 2))(
        jnp.asarray(q), jnp.asarray(c), jnp.asarray(e), *args
    )
    expected, *expected_grads = in_batch_softmax_loss_grad(q, c, extra_candidates=e, **kwargs)
    np.testing.assert_allclose(float(value), expected, rtol=1e-12)
    for got, want in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_low_precision_keeps_its_dtype(dtype):
    q, c, kwargs = arguments({"candidate_ids": IDS, "log_q": FROM_PROBLEM})
    got = in_batch_softmax_loss(q.astype(dtype), c.astype(dtype), **kwargs)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, in_batch_softmax_loss(q, c, **kwargs), rtol=1e-2)


def test_torch_float32_with_float64_log_q_stays_float32():
    q, c, kwargs = arguments({"log_q": FROM_PROBLEM})
    got = in_batch_softmax_loss(
        torch.from_numpy(q).float(),
        torch.from_numpy(c).float(),
        log_q=torch.from_numpy(kwargs["log_q"]).float(),
    )
    assert got.dtype == torch.float32


# --- bad input ----------------------------------------------------------------------------


def _bad(**change):
    p = problem()
    kwargs = {"candidate_ids": IDS}
    kwargs.update(change)
    return p["queries"], kwargs.pop("candidates", p["candidates"]), kwargs


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (
            {"candidates": np.zeros((B - 1, D))},
            SoftmaxkitValueError,
            r"`candidates` must have shape \(6, 4\).*`queries`.*\(5, 4\)",
        ),
        (
            {"candidates": np.zeros((B, D + 1))},
            SoftmaxkitValueError,
            r"`candidates` must have shape \(6, 4\)",
        ),
        (
            {"candidate_ids": IDS[:-1]},
            SoftmaxkitValueError,
            r"`candidate_ids` must have shape \(6,\).*got shape \(5,\)",
        ),
        (
            {"candidate_ids": IDS.astype(float)},
            SoftmaxkitTypeError,
            r"`candidate_ids` must hold integer ids",
        ),
        (
            {"temperature": 0.0},
            SoftmaxkitValueError,
            r"`temperature` must be finite and > 0; got 0.0",
        ),
        ({"temperature": -1.0}, SoftmaxkitValueError, r"`temperature` must be finite and > 0"),
        ({"temperature": float("nan")}, SoftmaxkitValueError, r"`temperature`"),
        (
            {"log_q": np.array([0.0, -1.0, np.nan, 0.0, 0.0, 0.0])},
            SoftmaxkitValueError,
            r"`log_q` must be finite.*position 2 holds nan",
        ),
        (
            {"log_q": np.array([0.0, -np.inf, 0.0, 0.0, 0.0, 0.0])},
            SoftmaxkitValueError,
            r"`log_q` must be finite.*position 1 holds -inf",
        ),
        (
            {"log_q": np.zeros(B + 1)},
            SoftmaxkitValueError,
            r"`log_q` must have shape \(6,\).*got shape \(7,\)",
        ),
        (
            {"extra_candidates": np.zeros((M, D + 1)), "extra_ids": EXTRA_IDS},
            SoftmaxkitValueError,
            r"`extra_candidates` must have shape \(M, 4\)",
        ),
        (
            {"extra_candidates": np.zeros((M, D)), "extra_ids": EXTRA_IDS[:-1]},
            SoftmaxkitValueError,
            r"`extra_ids` must have shape \(3,\)",
        ),
        ({"extra_candidates": np.zeros((M, D))}, SoftmaxkitValueError, r"`extra_ids` is needed"),
        (
            {"extra_ids": EXTRA_IDS},
            SoftmaxkitValueError,
            r"`extra_ids` is given but `extra_candidates` is not",
        ),
        (
            {"extra_log_q": np.zeros(M)},
            SoftmaxkitValueError,
            r"`extra_log_q` is given but `extra_candidates`",
        ),
        (
            {"extra_candidates": np.zeros((M, D)), "extra_ids": EXTRA_IDS, "log_q": np.zeros(B)},
            SoftmaxkitValueError,
            r"`extra_log_q` is missing",
        ),
        (
            {
                "extra_candidates": np.zeros((M, D)),
                "extra_ids": EXTRA_IDS,
                "extra_log_q": np.zeros(M),
            },
            SoftmaxkitValueError,
            r"`log_q` is missing",
        ),
        (
            {
                "extra_candidates": np.zeros((M, D)),
                "extra_ids": EXTRA_IDS,
                "log_q": np.zeros(B),
                "extra_log_q": np.array([0, np.nan, 0]),
            },
            SoftmaxkitValueError,
            r"`extra_log_q` must be finite.*position 1",
        ),
        ({"reduction": "avg"}, SoftmaxkitValueError, r"`reduction` must be one of"),
    ],
)
def test_bad_input_names_the_argument(change, error, match):
    q, c, kwargs = _bad(**change)
    with pytest.raises(error, match=match):
        in_batch_softmax_loss(q, c, **kwargs)
    with pytest.raises(error, match=match):
        in_batch_softmax_loss_grad(q, c, **kwargs)


def test_extra_ids_without_candidate_ids_is_refused():
    p = problem()
    with pytest.raises(SoftmaxkitValueError, match=r"`extra_ids` is given but `candidate_ids`"):
        in_batch_softmax_loss(
            p["queries"],
            p["candidates"],
            extra_candidates=p["extra_candidates"],
            extra_ids=EXTRA_IDS,
        )


@pytest.mark.parametrize("queries", [np.zeros(D), np.zeros((0, D)), np.zeros((B, D, 1))])
def test_queries_must_be_a_non_empty_matrix(queries):
    with pytest.raises(SoftmaxkitValueError, match=r"`queries` must have shape \(B, D\)"):
        in_batch_softmax_loss(queries, np.zeros((B, D)))


def test_a_list_of_strings_is_refused_naming_it():
    with pytest.raises(SoftmaxkitTypeError, match=r"`candidates` must be an array of real numbers"):
        in_batch_softmax_loss(np.zeros((2, 2)), [["a", "b"], ["c", "d"]])


def test_arrays_of_two_libraries_are_refused():
    import jax.numpy as jnp

    with pytest.raises(SoftmaxkitTypeError, match="one array library"):
        in_batch_softmax_loss(torch.zeros(2, 2), jnp.zeros((2, 2)))


# --- the torch module ----------------------------------------------------------------------


def tensors(seed: int = 0):
    p = problem(seed)
    return torch.from_numpy(p["queries"]), torch.from_numpy(p["candidates"]), torch.from_numpy(IDS)


def test_module_equals_the_function():
    q, c, ids = tensors()
    module = InBatchSoftmaxLoss(temperature=0.5, symmetric=True, reduction="sum")
    log_q = torch.log(torch.linspace(0.1, 0.9, B, dtype=torch.float64))
    expected = in_batch_softmax_loss(
        q, c, candidate_ids=ids, log_q=log_q, temperature=0.5, symmetric=True, reduction="sum"
    )
    torch.testing.assert_close(module(q, c, ids, log_q=log_q), expected, rtol=1e-15, atol=0)


def test_module_updates_its_estimator_in_training_and_uses_it():
    q, c, ids = tensors()
    module = InBatchSoftmaxLoss(estimator=FrequencyEstimator(64))
    reference_estimator = FrequencyEstimator(64)
    for step in range(3):
        loss = module(q, c, ids)
        reference_estimator.update(IDS, step)
        expected = in_batch_softmax_loss(
            q, c, candidate_ids=ids, log_q=torch.from_numpy(reference_estimator.log_q(IDS))
        )
        torch.testing.assert_close(loss, expected, rtol=1e-15, atol=0)
    assert module.estimator.step == 2
    module.eval()
    module(q, c, ids)
    assert module.estimator.step == 2  # eval: read, not updated
    np.testing.assert_array_equal(module.estimator.log_q(IDS), reference_estimator.log_q(IDS))


def test_module_with_estimator_corrects_for_duplicates_in_the_batch():
    # Item 7 fills half the batch: the estimator's log_q lowers its logits relative to the rest.
    q, c, ids = tensors()
    module = InBatchSoftmaxLoss(estimator=FrequencyEstimator(64), reduction="none")
    corrected = module(q, c, ids)
    log_q = torch.log(torch.tensor([3.0, 2, 3, 1, 2, 3], dtype=torch.float64))  # counts in batch
    expected = in_batch_softmax_loss(q, c, candidate_ids=ids, log_q=log_q, reduction="none")
    torch.testing.assert_close(corrected, expected, rtol=1e-14, atol=0)


def test_module_estimator_needs_ids_and_refuses_a_second_log_q():
    q, c, ids = tensors()
    module = InBatchSoftmaxLoss(estimator=FrequencyEstimator(64))
    with pytest.raises(SoftmaxkitValueError, match="`candidate_ids` is needed"):
        module(q, c)
    with pytest.raises(SoftmaxkitValueError, match="`log_q` is given but"):
        module(q, c, ids, log_q=torch.zeros(B))
    with pytest.raises(SoftmaxkitValueError, match="`step` is given but"):
        InBatchSoftmaxLoss()(q, c, ids, step=3)
    with pytest.raises(SoftmaxkitTypeError, match="`estimator` must be"):
        InBatchSoftmaxLoss(estimator=object())  # type: ignore[arg-type]
    with pytest.raises(SoftmaxkitValueError, match="`temperature`"):
        InBatchSoftmaxLoss(temperature=0.0)
    with pytest.raises(SoftmaxkitValueError, match="`reduction`"):
        InBatchSoftmaxLoss(reduction="avg")  # type: ignore[arg-type]


def test_module_state_dict_carries_the_estimator(tmp_path):
    q, c, ids = tensors()
    module = InBatchSoftmaxLoss(estimator=FrequencyEstimator(64, num_hashes=3))
    for step in (0, 2, 5):
        module(q, c, ids, step=step)
    path = tmp_path / "loss.pt"
    torch.save(module.state_dict(), path)
    restored = InBatchSoftmaxLoss(estimator=FrequencyEstimator(64, num_hashes=3))
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert restored.estimator.step == 5
    np.testing.assert_array_equal(restored.estimator.log_q(IDS), module.estimator.log_q(IDS))
    with pytest.raises(SoftmaxkitValueError, match="this module has none"):
        InBatchSoftmaxLoss().load_state_dict(module.state_dict())
    with pytest.raises(SoftmaxkitValueError, match="num_hashes=3"):
        InBatchSoftmaxLoss(estimator=FrequencyEstimator(64)).load_state_dict(module.state_dict())


def test_module_pickles_with_its_estimator():
    q, c, ids = tensors()
    module = InBatchSoftmaxLoss(estimator=FrequencyEstimator(64))
    module(q, c, ids)
    copy = pickle.loads(pickle.dumps(module))
    torch.testing.assert_close(copy(q, c, ids), module(q, c, ids), rtol=0, atol=0)


# --- every path of every backend ------------------------------------------------------------


@pytest.mark.parametrize("name", ["ids with duplicates", "everything, sum"])
def test_every_engine_agrees_with_the_reference(engine, name):
    q, c, kwargs = arguments(OPTIONS[name])
    converted = {
        k: engine.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()
    }
    got = in_batch_softmax_loss(engine.asarray(q), engine.asarray(c), **converted)
    np.testing.assert_allclose(engine.to_numpy(got), reference(q, c, **kwargs), rtol=1e-12)
    value, d_q, d_c, _ = in_batch_softmax_loss_grad(
        engine.asarray(q), engine.asarray(c), **converted
    )
    _, want_q, want_c, _ = in_batch_softmax_loss_grad(q, c, **kwargs)
    np.testing.assert_allclose(engine.to_numpy(value), engine.to_numpy(got), rtol=1e-13)
    np.testing.assert_allclose(engine.to_numpy(d_q), want_q, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(engine.to_numpy(d_c), want_c, rtol=1e-10, atol=1e-14)


def test_every_torch_path_gives_the_autograd_gradient_of_the_numpy_grad(torch_path):
    q, c, kwargs = arguments(OPTIONS["everything, none"], seed=5)
    tensors = {
        k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()
    }
    e = tensors.pop("extra_candidates").requires_grad_()
    qt, ct = torch.tensor(q, requires_grad=True), torch.tensor(c, requires_grad=True)
    in_batch_softmax_loss(qt, ct, extra_candidates=e, **tensors).sum().backward()
    _, *expected = in_batch_softmax_loss_grad(q, c, **kwargs)
    for got, want in zip((qt.grad, ct.grad, e.grad), expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-14)


def test_large_scores_at_a_low_temperature_stay_finite():
    q, c, _ = arguments({})
    loss, d_q, d_c, _ = in_batch_softmax_loss_grad(1e3 * q, c, candidate_ids=IDS, temperature=1e-3)
    assert np.isfinite(loss) and np.isfinite(d_q).all() and np.isfinite(d_c).all()
