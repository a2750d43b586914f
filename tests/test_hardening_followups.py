"""Regression tests for the defects the fuzz suite found (issue 17 follow-ups)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import softmaxkit as sk
from softmaxkit import nn
from softmaxkit._errors import SoftmaxkitError, SoftmaxkitValueError

# --- the torch fused path agrees with the others ------------------------------------------


def test_fused_cross_entropy_grad_of_overflowing_row_is_not_zero(torch_path):
    x = torch.tensor([[88.0, -1.0, -1e308, 1e308, 745.0, 1e308]], dtype=torch.float64)
    loss, dx = sk.cross_entropy_grad(x, torch.tensor([2]))
    assert math.isinf(float(loss))
    np.testing.assert_allclose(dx.numpy(), [[0, 0, -1, 0.5, 0, 0.5]], atol=1e-15)


def test_fused_label_smoothing_near_largest_float_does_not_overflow(torch_path):
    x = torch.tensor([[1e308, -2.73, 0.71, 0.49, -0.85]], dtype=torch.float64)
    loss = sk.cross_entropy(x, torch.tensor([3]), label_smoothing=0.2)
    np.testing.assert_allclose(float(loss), 9.6e307, rtol=1e-12)


def test_fused_single_class_row_costs_positive_zero(torch_path):
    loss = sk.cross_entropy(torch.tensor([[3.0]]), torch.tensor([0]), reduction="none")
    assert float(loss[0]) == 0 and math.copysign(1, float(loss[0])) == 1


@pytest.mark.parametrize(
    "row", [[1e308], [700.0, 1e308, 1e308], [-1.0, 1e308], [-1e308, 1e308, 700.0]]
)
def test_fused_z_loss_gradient_near_largest_float_is_finite(torch_path, row):
    # d(z lse**2)/dx = 2 z lse softmax(x): finite though lse**2 overflows
    x = torch.tensor([row], dtype=torch.float64)
    _, dx = sk.cross_entropy_grad(x, torch.tensor([len(row) - 1]), z_loss=0.1, reduction="sum")
    p = torch.softmax(x, -1)
    expected = (
        p
        - F.one_hot(torch.tensor([len(row) - 1]), len(row))
        + 0.2 * torch.logsumexp(x, -1, keepdim=True) * p
    )
    torch.testing.assert_close(dx, expected, rtol=1e-12, atol=1e-12)


def test_fused_z_loss_of_an_ignored_row_has_zero_gradient(torch_path):
    x = torch.tensor([[0.0, 1e308]], dtype=torch.float64)
    _, dx = sk.cross_entropy_grad(x, torch.tensor([-100]), z_loss=0.1, reduction="sum")
    assert torch.equal(dx, torch.zeros_like(x))


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.uint8, torch.int32])
def test_fused_small_integer_targets_are_accepted(torch_path, dtype):
    x = torch.tensor([[0.5, 1.0, -1.0], [2.0, 0.0, 1.0]])
    t = torch.tensor([0, 1], dtype=dtype)
    ref = F.cross_entropy(x, t.long())
    torch.testing.assert_close(sk.cross_entropy(x, t), ref)
    torch.testing.assert_close(sk.nll_loss(torch.log_softmax(x, -1), t), ref)
    _, dx = sk.cross_entropy_grad(x, t)
    xr = x.clone().requires_grad_()
    F.cross_entropy(xr, t.long()).backward()
    torch.testing.assert_close(dx, xr.grad)


@pytest.mark.parametrize("option", [{"softcap": 0.0}, {"z_loss": -1.0}, {"softcap": -2.0}])
def test_fused_empty_input_checks_softcap_and_z_loss(engine, option):
    name = next(iter(option))
    x, t = engine.asarray(np.zeros((0, 1))), engine.asarray(np.zeros(0, dtype=np.int64))
    with pytest.raises(SoftmaxkitValueError, match=f"`{name}`"):
        sk.cross_entropy(x, t, **option)
    with pytest.raises(SoftmaxkitValueError, match=f"`{name}`"):
        sk.cross_entropy_grad(x, t, **option)


@pytest.mark.parametrize("name", ["weight", "pos_weight"])
def test_bce_weight_that_does_not_broadcast_names_it(backend, name):
    x = backend.asarray(np.zeros(3))
    with pytest.raises(SoftmaxkitValueError, match=f"`{name}`"):
        sk.binary_cross_entropy_with_logits(x, x, **{name: backend.asarray(np.ones((3, 2)))})


# --- a zero weight does not hide NaN logits ----------------------------------------------


def _torch_ce(x, t, **options):
    def tensor(a):
        return None if a is None else torch.from_numpy(np.asarray(a))

    options = {k: tensor(v) if k == "weight" else v for k, v in options.items()}
    return F.cross_entropy(tensor(x), tensor(t), **options).numpy()


NAN_CASES = [
    # (logits, target, weight, label_smoothing)
    (np.array([[np.nan]]), np.array([[1.0]]), np.array([0.0]), 0.0),
    (np.array([[np.nan, 0.0]]), np.array([0]), np.array([0.0, 1.0]), 0.0),
    (np.array([[np.nan, 0.0]]), np.array([0]), np.array([0.0, 1.0]), 0.1),
    (np.array([[np.nan, 0.0]]), np.array([[1.0, 0.0]]), np.array([0.0, 1.0]), 0.0),
    (np.array([[np.nan, 0.0]]), np.array([[1.0, 0.0]]), np.array([0.0, 0.0]), 0.3),
]


@pytest.mark.parametrize("case", range(len(NAN_CASES)))
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_zero_weight_keeps_nan_logits_nan(engine, case, reduction):
    x, t, w, eps = NAN_CASES[case]
    options = dict(weight=w, label_smoothing=eps, reduction=reduction)
    ref = _torch_ce(x, t, **options)
    assert np.isnan(ref).all()
    arrays = {k: engine.asarray(v) if k == "weight" else v for k, v in options.items()}
    got = sk.cross_entropy(engine.asarray(x), engine.asarray(t), **arrays)
    assert np.isnan(engine.to_numpy(got)).all()


def test_zero_weight_keeps_nan_logits_nan_in_the_gradient_loss(engine):
    x, t = engine.asarray(np.array([[np.nan, 0.0]])), engine.asarray(np.array([0]))
    loss, _ = sk.cross_entropy_grad(
        x, t, weight=engine.asarray(np.array([0.0, 1.0])), reduction="sum"
    )
    assert np.isnan(engine.to_numpy(loss))


def test_zero_weight_still_makes_0_log_0_zero(engine):
    # the rule NaN must not break: a -inf log-probability at zero target mass costs 0
    x = engine.asarray(np.array([[0.0, -np.inf, 1.0]]))
    t = engine.asarray(np.array([[0.5, 0.0, 0.5]]))
    loss = sk.cross_entropy(x, t, reduction="sum")
    assert np.isfinite(engine.to_numpy(loss))
    ignored = sk.cross_entropy(
        engine.asarray(np.array([[np.nan, 0.0]])),
        engine.asarray(np.array([-100])),
        reduction="none",
    )
    assert engine.to_numpy(ignored)[0] == 0


def test_nll_loss_reads_only_the_target_log_probability(engine):
    # torch's nll_loss gathers the target's entry: a NaN elsewhere does not count
    loss = sk.nll_loss(
        engine.asarray(np.array([[np.nan, -0.5]])), engine.asarray(np.array([1])), reduction="sum"
    )
    assert engine.to_numpy(loss) == 0.5


# --- samplers --------------------------------------------------------------------------


@pytest.mark.parametrize("flag", [True, False, np.bool_(True)])
@pytest.mark.parametrize("name", ["UniformSampler", "LogUniformSampler"])
def test_sampler_num_classes_bool_is_refused(name, flag):
    from softmaxkit import sampling

    with pytest.raises(SoftmaxkitError, match="`num_classes`"):
        getattr(sampling, name)(flag)


@pytest.mark.parametrize("name", ["UniformSampler", "LogUniformSampler", "UnigramSampler"])
@pytest.mark.parametrize("n", [10**13, 10**19])
def test_sampler_num_sampled_too_large_to_allocate_is_refused(name, n):
    from softmaxkit import sampling

    sampler = (
        sampling.UnigramSampler([3, 1, 2])
        if name == "UnigramSampler"
        else getattr(sampling, name)(6)
    )
    with pytest.raises(SoftmaxkitValueError, match="`num_sampled`"):
        sampler.sample(n, unique=False, rng=0)


def test_unigram_sampler_counts_beyond_int64_are_used_as_floats():
    from softmaxkit.sampling import UnigramSampler

    p = UnigramSampler([2**70, 1, 2**70]).probability([0, 1, 2])
    np.testing.assert_allclose(p, [0.5, 2.0**-71, 0.5])
    with pytest.raises(SoftmaxkitValueError, match="`counts` must each fit in float64"):
        UnigramSampler([10**400, 1])
    with pytest.raises(SoftmaxkitError, match="`counts` must be an array of real numbers"):
        UnigramSampler([2**70, "a"])


# --- calibration -----------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 1e-300, 1e300, 3.0])
def test_fit_temperature_with_optimum_at_infinite_temperature_is_refused(scale):
    z = np.array([[1, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1.0]]) * scale
    with pytest.raises(SoftmaxkitValueError, match="T -> inf"):
        sk.fit_temperature(z, np.array([0, 0, 0]))


def test_fit_temperature_just_informative_logits_still_fit():
    # f'(0) just below 0 for real (not by rounding): a finite, large temperature
    z = np.array([[1, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1.0], [0, 1e-6, 0, 0, 0]])
    t = sk.fit_temperature(z, np.array([0, 0, 0, 1]))
    assert math.isfinite(t) and t > 1


# --- softmaxkit.nn settings ------------------------------------------------------------

BAD_NN_SETTINGS = [
    # (constructor, the argument it names)
    (lambda: nn.Dense("3", 2), "in_features"),
    (lambda: nn.Dense(2.5, 2), "in_features"),
    (lambda: nn.Dense(True, 2), "in_features"),
    (lambda: nn.Dense(2, None), "out_features"),
    (lambda: nn.Dense(2, 2, init=["he"]), "init"),
    (lambda: nn.Dense(2, 2, rng="a"), "rng"),
    (lambda: nn.Dense(2, 2, rng=-1), "rng"),
    (lambda: nn.Dense(2, 2, rng=True), "rng"),
    (lambda: nn.Dropout("0.5"), "rate"),
    (lambda: nn.Dropout(None), "rate"),
    (lambda: nn.Dropout(True), "rate"),
    (lambda: nn.Dropout(math.nan), "rate"),
    (lambda: nn.Dropout(0.5, rng=1.5), "rng"),
    (lambda: nn.SGD(lr="a"), "lr"),
    (lambda: nn.SGD(lr=None), "lr"),
    (lambda: nn.SGD(lr="3"), "lr"),
    (lambda: nn.SGD(lr=True), "lr"),
    (lambda: nn.SGD(momentum="0.9"), "momentum"),
    (lambda: nn.SGD(weight_decay=None), "weight_decay"),
    (lambda: nn.SGD(weight_decay=-1.0), "weight_decay"),
    (lambda: nn.Adam(lr=math.inf), "lr"),
    (lambda: nn.Adam(betas=0.9), "betas"),
    (lambda: nn.Adam(betas=(0.9,)), "betas"),
    (lambda: nn.Adam(betas=(0.9, "0.99")), "betas[1]"),
    (lambda: nn.Adam(eps="1e-8"), "eps"),
    (lambda: nn.Adam(weight_decay="0"), "weight_decay"),
    (lambda: nn.Sequential(3), "layers[0]"),
    (lambda: nn.Sequential(nn.ReLU(), "relu"), "layers[1]"),
    (lambda: nn.ReLU().train("no"), "mode"),
    (lambda: nn.Sequential(nn.ReLU()).train(None), "mode"),
    (lambda: nn.he_normal("3", 2, rng=np.random.default_rng(0)), "fan_in"),
    (lambda: nn.glorot_uniform(3, 2.0, rng=np.random.default_rng(0)), "fan_out"),
    (lambda: nn.he_normal(3, 2, rng=0), "rng"),
    (lambda: nn.Dense(2, 3, rng=0).forward(np.array([["a", "b"]])), "x"),
    (lambda: nn.SoftmaxCrossEntropy().forward(np.zeros((1, 2)), np.array(["a"])), "targets"),
    (lambda: nn.SGD().step([np.ones(1)], [np.ones(1)]), "params"),
    (lambda: nn.Adam().step({"w": np.ones(1)}, {"w": [1.0]}), "grads['w']"),
]


@pytest.mark.parametrize("case", range(len(BAD_NN_SETTINGS)))
def test_nn_bad_setting_is_refused_by_name(case):
    build, name = BAD_NN_SETTINGS[case]
    with pytest.raises(SoftmaxkitError) as info:  # (a name like `betas[1]` is no regex)
        build()
    assert f"`{name}`" in str(info.value)


def test_nn_dense_backward_of_the_wrong_shape_is_refused_by_name():
    layer = nn.Dense(2, 3, rng=0)
    layer.forward(np.ones((4, 2)))
    with pytest.raises(SoftmaxkitValueError, match="`dL_dy`"):
        layer.backward(np.ones((4, 2)))


def test_nn_settings_accept_numpy_scalars():
    layer = nn.Dense(np.int64(3), np.int32(2), rng=np.int64(0))
    assert (layer.in_features, layer.out_features) == (3, 2)
    assert nn.Dropout(np.float32(0.25)).rate == 0.25
    sgd = nn.SGD(lr=np.float64(0.5), momentum=np.float32(0.5), weight_decay=np.int64(0))
    assert (sgd.lr, sgd.momentum, sgd.weight_decay) == (0.5, 0.5, 0.0)
    adam = nn.Adam(lr=np.float32(0.25), betas=np.array([0.5, 0.75]), eps=np.float64(1e-6))
    assert adam.betas == (0.5, 0.75)
    assert nn.he_normal(np.int64(3), np.int8(2), rng=np.random.default_rng(0)).shape == (3, 2)
    assert nn.Sequential(nn.ReLU()).train(np.bool_(False)).training is False
    # lists as arrays, as everywhere else in the library
    assert nn.Dense(2, 1, rng=0).forward([[1.0, 2.0]]).shape == (1, 1)
