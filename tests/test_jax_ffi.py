"""The JAX backend: the kernels as XLA FFI custom calls, and the lean XLA graphs.

Both paths of softmaxkit._backends._jax, "ffi" (the kernels as custom calls, on CPU) and
"graph" (softmaxkit._backends._jax_graph, what other devices run), take the edge-case
matrix and option grids and equal the portable path; the FFI path also equals the NumPy
kernels bit for bit (the same compiled code).  jit, grad, vmap, jacrev, hessian (and
forward mode on the graph path); x64 off (in a subprocess); compilations counted; the
extension absent.  The `engine` fixture of conftest.py runs the other core test files on
all three JAX paths too.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import array_api_compat
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _backends, _kernels
from softmaxkit._backends import _jax, _jax_graph

pytestmark = pytest.mark.skipif(
    not _jax.available(), reason="the JAX FFI extension was not built (no jaxlib headers)"
)

SRC = Path(__file__).resolve().parents[1] / "src"
RNG = np.random.default_rng(11)


def portable(fn, *args, **kwargs):
    with _jax.use_path("portable"):
        return fn(*args, **kwargs)


# The two paths of the backend under test; each test runs on both.
PATHS = ("ffi", "graph")


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(_jax, "_path", request.param)
    return str(request.param)


def close(a, b, dtype) -> None:
    a, b = np.asarray(a), np.asarray(b)
    tol = 4e-6 if np.dtype(dtype) == np.float32 else 1e-13
    finite = np.abs(b[np.isfinite(b)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


def edge_matrix(dtype) -> np.ndarray:
    """Rows of every kind: finite, one +inf, two +inf, -inf entries, all -inf, NaN, huge."""
    rows = [
        [1.0, 2.0, 3.0, 4.0, 0.5],
        [1.0, np.inf, 0.0, 2.0, -1.0],
        [np.inf, 1.0, np.inf, -np.inf, 0.0],
        [-np.inf, 1.0, -np.inf, 2.0, 0.0],
        [-np.inf] * 5,
        [1.0, np.nan, 0.0, 2.0, 3.0],
        [3e38, -3e38, 1e38, 0.0, 1.0],
        [0.0, -1000.0, -2000.0, -1e30, 5.0],
    ]
    tiny = float(np.finfo(dtype).smallest_subnormal)
    rows += [
        [2.0, 2.0, 1.0, 2.0, 0.0],  # ties at the max: each of them counts
        [tiny, 0.0, -tiny, tiny, -1.0],  # maxima one subnormal step from their neighbours
    ]
    return np.asarray(rows, dtype=dtype)


@contextmanager
def compilations() -> Iterator[list[str]]:
    """The XLA compilations made inside the block (JAX's monitoring events)."""
    events: list[str] = []
    active = [True]

    def listen(name: str, _duration: float, **_: object) -> None:
        if active[0] and name == "/jax/core/compile/backend_compile_duration":
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield events
    finally:
        active[0] = False


def test_jax_arrays_on_cpu_take_the_ffi_backend_and_the_graph_without_kernels() -> None:
    x = jnp.ones((2, 3))
    assert _backends.select(x) is _jax
    assert "softmaxkit_forward" in str(jax.make_jaxpr(lambda v: sk.softmax(v))(x))
    with _kernels.use(False):
        assert _backends.select(x) is _jax and _jax.path() == "auto"
        jaxpr = str(jax.make_jaxpr(lambda v: sk.softmax(v))(x))
    assert "softmaxkit" not in jaxpr and "reduce_max" in jaxpr
    with _jax.use_path("portable"):
        assert _backends.select(x) is None
    with pytest.raises(sk.SoftmaxkitValueError, match="`name` must be one of"):
        _jax.use_path("gpu")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn", [sk.softmax, sk.log_softmax, sk.logsumexp])
def test_edge_matrix_equals_portable_and_numpy_kernels(fn, dtype, path) -> None:
    x = edge_matrix(dtype)
    got = fn(jnp.asarray(x))
    assert got.dtype == dtype
    close(got, portable(fn, jnp.asarray(x)), dtype)
    if path == "ffi":  # the same compiled kernel as the NumPy path: the same bits
        np.testing.assert_array_equal(np.asarray(got), fn(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("shape", "axis"),
    [((6, 7), -1), ((6, 7), 0), ((3, 4, 5), (0, 2)), ((3, 4, 5), (1, 2)), ((2, 3, 4), None)],
)
@pytest.mark.parametrize("temperature", [1.0, 0.3, 7.0])
def test_axes_and_temperature_grid(shape, axis, temperature, dtype, path) -> None:
    x = RNG.normal(size=shape).astype(dtype) * 4
    for fn in (sk.softmax, sk.log_softmax):
        got = fn(jnp.asarray(x), axis, temperature=temperature)
        close(got, portable(fn, jnp.asarray(x), axis, temperature=temperature), dtype)
        if path == "ffi":
            np.testing.assert_array_equal(np.asarray(got), fn(x, axis, temperature=temperature))
    got = sk.logsumexp(jnp.asarray(x), axis, keepdims=True)
    close(got, portable(sk.logsumexp, jnp.asarray(x), axis, keepdims=True), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_functions_equal_portable(dtype, path) -> None:
    x = edge_matrix(dtype)[[0, 1, 3, 4, 7]]
    g = RNG.normal(size=x.shape).astype(dtype)
    for fn in (sk.softmax_backward, sk.log_softmax_backward):
        for axis in (-1, 0):
            y_axis = sk.softmax(x, axis) if fn is sk.softmax_backward else sk.log_softmax(x, axis)
            args = (jnp.asarray(g), jnp.asarray(y_axis))
            got = fn(*args, axis=axis)
            close(got, portable(fn, *args, axis=axis), dtype)
            if path == "ffi":
                np.testing.assert_array_equal(np.asarray(got), fn(g, y_axis, axis=axis))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_probabilities_near_zero_keep_their_relative_accuracy(dtype, path) -> None:
    # log p of the max is -log1p(sum of the rest): exp(-40) is far below the dtype's eps
    x = jnp.asarray(np.array([[0.0, -40.0, -45.0], [-45.0, 0.0, -40.0]], dtype=dtype))
    t = jnp.asarray([0, 1])
    want = -(np.exp(-40.0) + np.exp(-45.0))
    f = jax.jit(lambda v: (sk.log_softmax(v), sk.cross_entropy(v, t, reduction="none")))
    logp, loss = f(x)
    np.testing.assert_allclose(np.asarray(logp)[[0, 1], [0, 1]], [want, want], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(loss), [-want, -want], rtol=1e-6)
    lse = jax.jit(lambda v: sk.logsumexp(v, -1))(x)
    np.testing.assert_allclose(np.asarray(lse), [-want, -want], rtol=1e-6)


# every reduction with every pairing of weight, ignore_index and smoothing, each dtype
CE_GRID = [
    (dict(reduction=r, weight=w, ignore_index=i, label_smoothing=e), dtype)
    for r in ("mean", "sum", "none")
    for (w, i, e), dtype in (
        ((False, -100, 0.0), np.float32),
        ((True, 2, 0.2), np.float64),
        ((False, 2, 0.2), np.float32),
        ((True, -100, 0.0), np.float64),
    )
]


@pytest.mark.parametrize(
    ("options", "dtype"),
    CE_GRID,
    ids=lambda o: "-".join(map(str, o.values())) if isinstance(o, dict) else np.dtype(o).name,
)
def test_cross_entropy_option_grid_equals_portable(options, dtype, path) -> None:
    n, c = 9, 6
    x = (RNG.normal(size=(n, c)) * 3).astype(dtype)
    t = RNG.integers(0, c, n)
    t[1] = options["ignore_index"]
    kwargs = dict(options)
    kwargs["weight"] = (
        jnp.asarray(RNG.uniform(0.5, 2, c).astype(dtype)) if options["weight"] else None
    )
    xj, tj = jnp.asarray(x), jnp.asarray(t)
    loss = sk.cross_entropy(xj, tj, **kwargs)
    close(loss, portable(sk.cross_entropy, xj, tj, **kwargs), dtype)
    loss_g, dx = sk.cross_entropy_grad(xj, tj, **kwargs)
    ref_loss, ref_dx = portable(sk.cross_entropy_grad, xj, tj, **kwargs)
    close(loss_g, ref_loss, dtype)
    close(dx, ref_dx, dtype)

    def total(v, w):
        return jnp.sum(sk.cross_entropy(v, tj, **{**kwargs, "weight": w}) ** 2)

    w = kwargs["weight"]
    grads = jax.jit(jax.grad(total, argnums=(0, 1) if w is not None else 0))(xj, w)
    ref = portable(jax.jit(jax.grad(total, argnums=(0, 1) if w is not None else 0)), xj, w)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref), strict=True):
        close(a, b, dtype)


def test_cross_entropy_class_axis_and_rows_the_kernel_leaves(path) -> None:
    x = RNG.normal(size=(3, 5, 4))
    t = RNG.integers(0, 5, (3, 4))
    xj, tj = jnp.asarray(x), jnp.asarray(t)
    for reduction in ("mean", "none"):
        got = sk.cross_entropy_grad(xj, tj, axis=1, reduction=reduction)
        ref = portable(sk.cross_entropy_grad, xj, tj, axis=1, reduction=reduction)
        close(got[0], ref[0], np.float64)
        close(got[1], ref[1], np.float64)
    # +inf, all -inf and NaN rows, target mass on -inf: the portable path decides them
    x = edge_matrix(np.float64)
    t = jnp.asarray([0, 1, 2, 0, 1, 2, 3, 2, 1, 0])
    for reduction in ("mean", "sum", "none"):
        got = sk.cross_entropy_grad(jnp.asarray(x), t, reduction=reduction)
        ref = portable(sk.cross_entropy_grad, jnp.asarray(x), t, reduction=reduction)
        close(got[0], ref[0], np.float64)
        close(got[1], ref[1], np.float64)


def test_traced_target_out_of_range_fails_in_the_kernel_and_is_nan_on_the_graph() -> None:
    f = jax.jit(lambda v, t: sk.cross_entropy(v, t))
    with pytest.raises(Exception, match="class index 7"):
        jax.block_until_ready(f(jnp.ones((2, 3)), jnp.asarray([0, 7])))
    # a device cannot raise: the graph path makes such a row's loss and gradient NaN
    with _jax.use_path("graph"):
        g = jax.jit(lambda v, t: sk.cross_entropy_grad(v, t, reduction="none"))
        loss, dx = g(jnp.ones((3, 3)), jnp.asarray([0, 7, -5]))
    assert np.isfinite(loss[0]) and np.isnan(loss[1:]).all()
    assert np.isfinite(dx[0]).all() and np.isnan(dx[1:]).all()
    with pytest.raises(sk.SoftmaxkitValueError, match="target"):  # eager: the host's check
        sk.cross_entropy(jnp.ones((2, 3)), jnp.asarray([0, 7]))


FUNCTIONS = {
    "softmax": lambda v: sk.softmax(v, temperature=0.7),
    "log_softmax": lambda v: sk.log_softmax(v, 0),
    "logsumexp": lambda v: sk.logsumexp(v),
    "cross_entropy": lambda v: sk.cross_entropy(v, jnp.asarray([0, 2, 1, 3]), label_smoothing=0.1),
}


def scalar(fn):
    return lambda v: jnp.sum(jnp.sin(fn(v)) * jnp.arange(1, 1 + fn(v).size).reshape(fn(v).shape))


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_transformations_equal_portable(name, path) -> None:
    fn = FUNCTIONS[name]
    x = jnp.asarray(RNG.normal(size=(4, 5)))
    batch = jnp.stack([x, 2 * x])
    # Each path gets transforms of its own: jax.jit keeps one trace per function, and the
    # kernels' switch is read while tracing.
    cases = [
        (lambda f: jax.jit(jax.grad(f)), x),
        (lambda f: jax.jit(jax.hessian(f)), x),
    ]
    if name != "cross_entropy":  # (its vmap: test_vmap_batches_the_custom_call_without_a_loop)
        cases.append((lambda f: jax.jit(jax.vmap(jax.grad(f))), batch))
    if name == "softmax":
        cases += [
            (lambda f: jax.jacrev(lambda v: fn(v)), x),
            (lambda f: jax.jit(lambda v: fn(v)), x),
        ]
    if name == "log_softmax":
        cases.append((lambda f: jax.jacrev(jax.jacrev(f)), x))
    if path == "graph":  # forward mode too: no custom_vjp on the graph path
        cases += [(lambda f: jax.jacfwd(f), x), (lambda f: jax.jacfwd(jax.grad(f)), x)]
    for make, arg in cases:
        got = make(scalar(fn))(arg)
        want = portable(make(scalar(fn)), arg)
        close(got, want, np.float64)


def test_vmap_batches_the_custom_call_without_a_loop(path) -> None:
    x = jnp.asarray(RNG.normal(size=(3, 4, 5)))
    t = jnp.asarray(RNG.integers(0, 5, (3, 4)))
    batched = jax.jit(jax.vmap(lambda v, y: sk.cross_entropy_grad(v, y)))(x, t)
    for i in range(3):
        one = sk.cross_entropy_grad(x[i], t[i])
        close(batched[0][i], one[0], np.float64)
        close(batched[1][i], one[1], np.float64)
    jaxpr = str(jax.make_jaxpr(jax.vmap(lambda v: sk.softmax(v)))(x))
    assert jaxpr.count("softmaxkit_forward") == (path == "ffi") and "while" not in jaxpr


EAGER_CALLS = {
    "softmax": lambda x, t: (sk.softmax, (x,), {}),
    "log_softmax-where": lambda x, t: (sk.log_softmax, (x,), {"where": x > 0}),
    "logsumexp": lambda x, t: (sk.logsumexp, (x,), {"keepdims": True}),
    "softmax_backward": lambda x, t: (sk.softmax_backward, (x, x), {}),
    "ce": lambda x, t: (sk.cross_entropy, (x, t), {}),
    "ce_grad-weight": lambda x, t: (sk.cross_entropy_grad, (x, t), {"weight": x[0] ** 2}),
    "nll": lambda x, t: (sk.nll_loss, (x, t), {}),
    "bce": lambda x, t: (sk.binary_cross_entropy_with_logits, (x, jnp.abs(jnp.tanh(x))), {}),
    "pmf_normalize": lambda x, t: (sk.pmf_normalize, (jnp.abs(x) + 0.1,), {"axis": 0}),
}


@pytest.mark.parametrize("name", list(EAGER_CALLS))
@pytest.mark.parametrize("every", ["ffi", "graph", "portable"])
def test_an_eager_call_is_one_computation_and_new_values_never_recompile(name, every) -> None:
    shape = (64, 37 + 2 * ["ffi", "graph", "portable"].index(every))  # nothing cached before
    calls = []
    for _ in range(3):
        x = jnp.asarray(RNG.normal(size=shape))
        calls.append(EAGER_CALLS[name](x, jnp.asarray(RNG.integers(0, shape[1], 64))))
    jax.block_until_ready([c[1:] for c in calls])
    # array_api_compat's first look at a JAX array compiles two scalar ops, once per process
    array_api_compat.array_namespace(calls[0][1][0])
    with _jax.use_path(every), compilations() as events:
        fn, args, kwargs = calls[0]
        jax.block_until_ready(fn(*args, **kwargs))
        first = len(events)
        for fn, args, kwargs in calls[1:]:
            jax.block_until_ready(fn(*args, **kwargs))
    assert first == 1
    assert len(events) == 1


def test_results_do_not_depend_on_the_thread_count() -> None:
    x = jnp.asarray(RNG.normal(size=(512, 1000)).astype(np.float32))
    t = jnp.asarray(RNG.integers(0, 1000, 512))
    previous = _kernels.num_threads()
    try:
        outs = []
        for n in (1, 2):
            _kernels.set_num_threads(n)
            outs.append([sk.softmax(x), sk.log_softmax(x, 0), *sk.cross_entropy_grad(x, t)])
    finally:
        _kernels.set_num_threads(previous)
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_extension_absent_means_the_graph_path(monkeypatch: pytest.MonkeyPatch) -> None:
    x = jnp.asarray(edge_matrix(np.float64))
    t = jnp.asarray([0, 1, 2, 0, 1, 2, 3, 2, 1, 0])
    want = [sk.softmax(x), sk.log_softmax(x), sk.cross_entropy(x, t, reduction="none")]
    monkeypatch.setattr(_kernels, "jax_kernels", lambda: None)
    monkeypatch.setattr(_jax, "_registered", None)
    assert not _jax.enabled() and _backends.select(x) is _jax
    got = [sk.softmax(x), sk.log_softmax(x), sk.cross_entropy(x, t, reduction="none")]
    assert "softmaxkit" not in str(jax.make_jaxpr(lambda v: sk.softmax(v))(x))
    for a, b in zip(got, want, strict=True):
        close(a, b, np.float64)


def test_other_dtypes_and_masks_take_the_portable_path() -> None:
    x = RNG.normal(size=(4, 6))
    for dtype in (jnp.bfloat16, jnp.float16):
        xj = jnp.asarray(x, dtype=dtype)
        got = sk.softmax(xj)
        assert got.dtype == dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(portable(sk.softmax, xj)))
    where = x > 0
    got = sk.log_softmax(jnp.asarray(x), where=where)
    close(got, portable(sk.log_softmax, jnp.asarray(x), where=where), np.float64)


def test_x64_off() -> None:
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, numpy as np
        jax.config.update("jax_enable_x64", False)
        import softmaxkit as sk
        from softmaxkit import _kernels, _backends
        x = jnp.asarray(np.random.default_rng(0).normal(size=(6, 5)), dtype=jnp.float32)
        t = jnp.asarray([0, 1, 4, -100, 2, 3])
        assert _backends.select(x) is not None
        def run():
            f = lambda v: jnp.sum(sk.cross_entropy(v, t, label_smoothing=0.1) * 3)
            return [sk.softmax(x), sk.log_softmax(x, 0), sk.logsumexp(x),
                    *sk.cross_entropy_grad(x, t), jax.jit(jax.grad(f))(x),
                    jax.hessian(lambda v: jnp.sum(sk.log_softmax(v) ** 2))(x[:2])]
        ffi = run()
        with _kernels.use(False):
            graph = run()
        with _backends.jax_backend().use_path("portable"):
            ref = run()
        for a, g, b in zip(ffi, graph, ref):
            assert a.dtype == g.dtype == b.dtype == jnp.float32, (a.dtype, g.dtype, b.dtype)
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
            np.testing.assert_allclose(np.asarray(g), np.asarray(b), rtol=2e-5, atol=2e-6)
        print("ok")
        """
    )
    env = {
        "PYTHONPATH": str(SRC),
        "JAX_PLATFORMS": "cpu",
        "OMP_NUM_THREADS": "1",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_slices_longer_than_exact_positions_take_the_portable_path(monkeypatch) -> None:
    # positions are floats of the dtype, exact to 2**24 in float32: past that, the graph
    # path hands a call to the portable code (here with the limit lowered to 4)
    monkeypatch.setattr(_jax_graph, "MAX_POSITIONS", dict.fromkeys(_jax_graph.MAX_POSITIONS, 4))

    def refuse(*args, **kwargs):
        raise AssertionError("the graph path ran past its exact positions")

    x = jnp.asarray(RNG.normal(size=(3, 5)))
    t = jnp.asarray([0, 4, 2])
    calls = []
    graph_forward = _jax_graph.forward
    monkeypatch.setattr(_jax_graph, "forward", lambda *a: calls.append(1) or graph_forward(*a))
    # fresh jit functions: an eager call could reuse a computation another test traced
    with _jax.use_path("graph"):
        short = jax.jit(lambda v: sk.log_softmax(v))(x[:, :4])  # 4 entries: still the graph
        assert calls
        monkeypatch.setattr(_jax_graph, "forward", refuse)
        monkeypatch.setattr(_jax_graph, "cross_entropy", refuse)
        got = [
            jax.jit(lambda v: sk.log_softmax(v))(x),
            jax.jit(lambda v: sk.logsumexp(v, -1))(x),
            *jax.jit(lambda v: sk.cross_entropy_grad(v, t))(x),
        ]
    want = [portable(sk.log_softmax, x), portable(sk.logsumexp, x, -1)]
    want += list(portable(sk.cross_entropy_grad, x, t))
    for a, b in zip(got, want, strict=True):
        close(a, b, np.float64)
    close(short, portable(sk.log_softmax, x[:, :4]), np.float64)
