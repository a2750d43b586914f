"""Every backend through the same calls, compared with NumPy; the caller's array kind comes back.

NumPy here is the reference path; torch and JAX must agree with it to float64 (or float32)
rounding on an option grid that includes infinities, NaN, masks, temperature and tuple axes.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from softmax_helpers import call

import softmaxkit as sk

INF, NAN = np.inf, np.nan


def grid_input(dtype=np.float64) -> np.ndarray:
    x = np.random.default_rng(3).normal(scale=3.0, size=(3, 4, 5))
    x[0, 1] = -INF  # an all -inf slice along the last axis
    x[1, 2, [0, 3]] = INF  # +inf entries sharing the mass
    x[2, 3, 1] = NAN  # NaN confined to its slice
    x[2, 0, 2] = -INF
    return x.astype(dtype)


MASKS = {
    "none": None,
    "full": np.random.default_rng(4).random((3, 4, 5)) < 0.7,
    "broadcast": np.array([True, False, True, True, False]),
    "per-row": np.random.default_rng(5).random((3, 4, 1)) < 0.8,
}

AXES = [-1, 0, 1, (0, 2), (-1, -2), None]


def _compare(backend, fn, x, rtol, **kwargs):
    where = kwargs.pop("where", None)
    native = {} if where is None else {"where": backend.asarray(where)}
    expected = fn(x, **kwargs, **({} if where is None else {"where": where}))
    got = call(backend, fn, x, **kwargs, **native)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * 1e-3)


@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("mask", list(MASKS))
def test_softmax_family_agrees_with_numpy(backend, axis, mask):
    x = grid_input()
    for temperature in (1.0, 0.4):
        for fn in (sk.softmax, sk.log_softmax):
            _compare(backend, fn, x, 1e-14, axis=axis, temperature=temperature, where=MASKS[mask])
    for keepdims in (False, True):
        _compare(backend, sk.logsumexp, x, 1e-14, axis=axis, keepdims=keepdims, where=MASKS[mask])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_low_precision_agrees_with_numpy(backend, dtype):
    x = grid_input(dtype)
    rtol = {np.float32: 1e-6, np.float16: 1e-3}[dtype]
    for fn, axis in itertools.product((sk.softmax, sk.log_softmax, sk.logsumexp), (-1, (0, 1))):
        _compare(backend, fn, x, rtol, axis=axis)


def test_elementwise_and_derivatives_agree_with_numpy(backend):
    x = grid_input()
    finite = np.nan_to_num(x, nan=0.5, posinf=40.0, neginf=-40.0)
    for fn in (sk.sigmoid, sk.log_sigmoid):
        _compare(backend, fn, x, 1e-15)
    _compare(backend, sk.pmf_normalize, np.abs(finite) + 0.1, 1e-15, axis=(0, 2))
    p = sk.softmax(finite)
    _compare(backend, sk.softmax_jacobian, p, 1e-15)
    g = np.random.default_rng(6).normal(size=x.shape)
    for axis in (-1, (0, 1)):
        p = sk.softmax(finite, axis=axis)
        logp = sk.log_softmax(finite, axis=axis)
        got = call(
            backend, lambda gg, p=p, a=axis: sk.softmax_backward(gg, backend.asarray(p), axis=a), g
        )
        np.testing.assert_allclose(
            got, sk.softmax_backward(g, p, axis=axis), rtol=1e-13, atol=1e-16
        )
        got = call(
            backend,
            lambda gg, lp=logp, a=axis: sk.log_softmax_backward(gg, backend.asarray(lp), axis=a),
            g,
        )
        np.testing.assert_allclose(
            got, sk.log_softmax_backward(g, logp, axis=axis), rtol=1e-13, atol=1e-16
        )


@pytest.mark.parametrize(
    "fn",
    [sk.softmax, sk.log_softmax, sk.logsumexp, sk.pmf_normalize, sk.sigmoid, sk.log_sigmoid],
    ids=lambda f: f.__name__,
)
def test_result_is_the_callers_array_kind(backend, fn):
    x = backend.asarray([[1.0, 2.0], [3.0, 5.0]])
    out = fn(x)
    assert backend.is_native(out)
    assert out.dtype == x.dtype


def test_results_of_numpy_zero_d_input_are_arrays_not_scalars():
    assert type(sk.logsumexp(np.array([1.0, 2.0]))) is np.ndarray
    assert type(sk.softmax(np.array(2.0), axis=())) is np.ndarray
    assert type(sk.pmf_normalize(np.array(2.0), axis=())) is np.ndarray
    assert type(sk.sigmoid(np.float64(0.0))) is np.ndarray


def test_lists_and_scalars_become_numpy_arrays():
    out = sk.softmax([1.0, 2.0])
    assert type(out) is np.ndarray
    np.testing.assert_allclose(out, sk.softmax(np.array([1.0, 2.0])))
    assert type(sk.sigmoid(0.0)) is np.ndarray


def test_torch_where_may_be_numpy_or_list():
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    expected = sk.softmax(x, where=torch.tensor([True, False, True]))
    torch.testing.assert_close(sk.softmax(x, where=np.array([True, False, True])), expected)
    torch.testing.assert_close(sk.softmax(x, where=[True, False, True]), expected)


def test_jax_where_may_be_numpy():
    x = jnp.asarray([1.0, 2.0, 3.0])
    out = sk.softmax(x, where=np.array([True, False, True]))
    np.testing.assert_allclose(
        out, sk.softmax(np.array([1.0, 2.0, 3.0]), where=np.array([1, 0, 1], bool))
    )


def test_torch_output_keeps_the_autograd_graph():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    for fn in (sk.softmax, sk.log_softmax, sk.logsumexp, sk.sigmoid, sk.log_sigmoid):
        assert fn(x).requires_grad, fn.__name__


def test_import_softmaxkit_imports_no_framework():
    """Importing pulls in no optional dependency; using it on NumPy pulls in no other
    array library (the compiled kernels may load their compiler on first use)."""
    code = (
        "import sys, numpy as np, softmaxkit as sk\n"
        "heavy = ('torch', 'jax', 'numba', 'scipy', 'matplotlib', 'sklearn')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, f'import softmaxkit loaded {loaded}'\n"
        "sk.softmax(np.array([1.0, 2.0])); sk.logsumexp([1.0]); sk.pmf_normalize([1, 2])\n"
        "from softmaxkit.cli import main\n"
        "main(['softmax', '1', '2'])\n"
        "loaded = [m for m in ('torch', 'jax') if m in sys.modules]\n"
        "assert not loaded, f'NumPy calls loaded {loaded}'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_torch_device_is_kept():
    """Every array the functions create lands on the input's device.  The meta device stands
    in for a GPU here: mixing it with a CPU tensor fails just as CUDA would."""
    x = torch.ones(2, 3, device="meta")
    results = [
        sk.softmax(x, where=np.array([True, False, True])),
        sk.log_softmax(x, temperature=2.0),
        sk.logsumexp(x, axis=(0, 1)),
        sk.logsumexp(torch.ones(2, 0, device="meta")),
        sk.softmax(torch.ones(2, 0, device="meta")),
        sk.softmax_jacobian(x),
        sk.softmax_backward(x, x),
        sk.log_softmax_backward(x, x),
        sk.sigmoid(x),
        sk.log_sigmoid(x),
        sk.softmax(x.half()),
    ]
    assert [r.device.type for r in results] == ["meta"] * len(results)


def test_jax_in_its_default_32_bit_mode():
    """The suite enables JAX's float64; users mostly do not.  Integers then become float32
    and every path (jit, grad, masks, low precision) must still hold."""
    code = (
        "import jax, jax.numpy as jnp, numpy as np, softmaxkit as sk\n"
        "p = sk.softmax(jnp.arange(3))\n"
        "assert p.dtype == jnp.float32, p.dtype\n"
        "np.testing.assert_allclose(p, [0.09003057, 0.24472847, 0.66524096], rtol=1e-6)\n"
        "lp = sk.log_softmax(jnp.array([0.0, -20.75, -21.5, -30.0]))\n"
        "np.testing.assert_allclose(lp[0], -1.43361917e-09, rtol=1e-6)\n"
        "g = jax.grad(lambda v: sk.logsumexp(v, where=jnp.array([False, False])))(jnp.ones(2))\n"
        "assert (g == 0).all(), g\n"
        "h = sk.softmax(jnp.ones(4096, dtype=jnp.float16))\n"
        "assert h.dtype == jnp.float16 and (h.astype(jnp.float32) == 1 / 4096).all()\n"
        "np.testing.assert_allclose(sk.pmf_normalize(jnp.array([3e38, 3e38])), [0.5, 0.5])\n"
    )
    env = {**os.environ, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("fn", [sk.log_softmax, sk.logsumexp], ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [-1, (0, 2)], ids=str)
def test_gh_jit_recomputed_input_log_softmax(fn, axis):
    """Pins a bug: under a caller's jax.jit, XLA fused ``3 tanh(a / 3)`` into each reduction.

    The copies rounded differently, and a sum that counted the entries with ``x - max == 0``
    in a second reduction came out one too large: log(1 + s) instead of log(s), 0.69 off.
    """
    import jax

    def f(a):
        return fn(3.0 * jnp.tanh(a / 3.0), axis=axis)

    for seed in range(5):
        a = jnp.asarray(np.random.default_rng(seed).normal(scale=3.0, size=(5, 4, 3)))
        np.testing.assert_allclose(
            np.asarray(jax.jit(f)(a)), np.asarray(f(a)), rtol=1e-13, atol=1e-13
        )
