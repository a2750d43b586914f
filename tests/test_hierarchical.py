"""Hierarchical softmax: trees, loss, full log-probabilities, gradients, the torch module."""

from __future__ import annotations

import heapq
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from softmaxkit import (
    SoftmaxkitTypeError,
    SoftmaxkitValueError,
    hierarchical_log_softmax,
    hierarchical_softmax_loss,
    hierarchical_softmax_loss_grad,
)
from softmaxkit.sampling import Tree, balanced_tree, huffman_tree
from softmaxkit.torch import HierarchicalSoftmax


def huffman_cost(counts) -> float:
    """The optimal expected code length sum(c * depth), by the textbook heap merge."""
    heap = [float(c) for c in counts]
    heapq.heapify(heap)
    cost = 0.0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, a + b)
    return cost


def brute_log_probs(x, w, b, tree: Tree) -> np.ndarray:
    """log p(v) as the product of sigmoids along each path, one class at a time."""
    z = x @ w.T + (0 if b is None else b)
    out = np.zeros((x.shape[0], tree.num_classes))
    for v in range(tree.num_classes):
        p = np.ones(x.shape[0])
        for d in range(tree.depths[v]):
            n, code = tree.paths[v, d], tree.codes[v, d]
            p = p * (1 / (1 + np.exp(-(1 - 2 * code) * z[:, n])))
        out[:, v] = np.log(p)
    return out


def problem(v=23, d=5, n=7, seed=0, counts=None):
    rng = np.random.default_rng(seed)
    tree = huffman_tree(rng.integers(0, 40, v) if counts is None else counts)
    x = rng.normal(size=(n, d))
    w = rng.normal(size=(v - 1, d))
    b = rng.normal(size=v - 1)
    y = rng.integers(0, v, n)
    return tree, x, w, b, y


# --- trees ---------------------------------------------------------------------------------


def test_huffman_code_lengths_of_hand_made_counts():
    # merges: 5+9=14, 12+13=25, 14+16=30, 25+30=55, 45+55=100
    tree = huffman_tree([45, 13, 12, 16, 9, 5])
    assert tree.depths.tolist() == [1, 3, 3, 3, 4, 4]
    assert tree.num_classes == 6 and tree.num_nodes == 5
    assert tree.paths.shape == (6, 4) and tree.codes.shape == (6, 4)
    # the root (the node built last) starts every path
    assert (tree.paths[:, 0] == 4).all()


def test_powers_of_two_counts_give_a_chain():
    tree = huffman_tree([2.0**k for k in range(8, -1, -1)])
    assert tree.depths.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 8]


@pytest.mark.parametrize("seed", range(3))
def test_huffman_is_optimal_and_a_prefix_code(seed):
    counts = np.random.default_rng(seed).integers(0, 1000, 200)
    tree = huffman_tree(counts)
    assert math.isclose(float((counts * tree.depths).sum()), huffman_cost(counts))
    codes = {tuple(tree.codes[v, : tree.depths[v]].tolist()) for v in range(tree.num_classes)}
    assert len(codes) == tree.num_classes  # distinct leaves
    # every inner node appears, with both branches taken below it
    branches = {
        (int(n), int(c))
        for p, cc in zip(tree.paths, tree.codes, strict=True)
        for n, c in zip(p, cc, strict=True)
        if n >= 0
    }
    assert branches == {(n, c) for n in range(tree.num_nodes) for c in (0, 1)}


def test_padding_is_minus_one_and_zero():
    tree = huffman_tree([45, 13, 12, 16, 9, 5])
    for v in range(tree.num_classes):
        d = tree.depths[v]
        assert (tree.paths[v, :d] >= 0).all() and (tree.paths[v, d:] == -1).all()
        assert (tree.codes[v, d:] == 0).all()


def test_ties_are_deterministic_and_follow_class_order():
    a = huffman_tree([3, 3, 3, 3, 3])
    b = huffman_tree(np.array([3.0, 3.0, 3.0, 3.0, 3.0]))
    assert np.array_equal(a.paths, b.paths) and np.array_equal(a.codes, b.codes)
    # lower ids count as the more frequent: never deeper than a higher id of equal count
    assert (np.diff(a.depths) >= 0).all()
    # a leaf and an inner node of equal weight: the inner node is merged first, so
    # [2, 1, 1] builds (1+1) first and then merges it with the leaf 2 as the lighter
    tree = huffman_tree([2, 1, 1])
    assert tree.depths.tolist() == [1, 2, 2]
    assert tree.codes[0, 0] == 1  # the inner node (2 = 1 + 1) took code 0, the leaf 2 code 1


def test_balanced_tree_depths():
    for v in (1, 2, 3, 8, 9, 100):
        depths = balanced_tree(v).depths
        assert depths.max() == math.ceil(math.log2(v)) if v > 1 else depths.max() == 0
        assert depths.min() >= math.floor(math.log2(v))


def test_one_class_has_depth_zero_and_probability_one():
    tree = huffman_tree([7])
    assert tree.num_nodes == 0 and tree.depths.tolist() == [0] and tree.paths.shape == (1, 0)
    x = np.ones((3, 2))
    w = np.zeros((0, 2))
    assert np.array_equal(hierarchical_log_softmax(x, w, tree), np.zeros((3, 1)))
    assert float(hierarchical_softmax_loss(x, w, np.zeros(3, dtype=int), tree)) == 0.0


@pytest.mark.parametrize(
    "counts, match",
    [
        ([], "non-empty 1-d"),
        ([[1, 2]], "non-empty 1-d"),
        ([1, -1], "position 1 holds -1"),
        ([1, np.nan], "finite and non-negative"),
        (["a", "b"], "real numbers"),
    ],
)
def test_bad_counts(counts, match):
    with pytest.raises((SoftmaxkitValueError, SoftmaxkitTypeError), match=match):
        huffman_tree(counts)


def test_bad_num_classes():
    with pytest.raises(SoftmaxkitValueError, match="`num_classes` must be >= 1"):
        balanced_tree(0)


# --- loss and log-probabilities ------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_log_probs_sum_to_one_and_equal_the_product_of_sigmoids(bias):
    tree, x, w, b, _ = problem(v=37)
    b = b if bias else None
    logp = hierarchical_log_softmax(x, w, tree, node_bias=b)
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, rtol=0, atol=1e-13)
    np.testing.assert_allclose(logp, brute_log_probs(x, w, b, tree), rtol=1e-12, atol=1e-12)


def test_loss_is_minus_the_log_probability_of_the_label():
    tree, x, w, b, y = problem()
    loss = hierarchical_softmax_loss(x, w, y, tree, node_bias=b, reduction="none")
    logp = hierarchical_log_softmax(x, w, tree, node_bias=b)
    np.testing.assert_allclose(loss, -logp[np.arange(len(y)), y], rtol=1e-12)
    assert math.isclose(
        float(hierarchical_softmax_loss(x, w, y, tree, node_bias=b)), float(loss.mean())
    )
    assert math.isclose(
        float(hierarchical_softmax_loss(x, w, y, tree, node_bias=b, reduction="sum")),
        float(loss.sum()),
    )


def test_ignore_index_rows_add_nothing():
    tree, x, w, b, y = problem()
    y_ignored = y.copy()
    y_ignored[[1, 4]] = -100
    none = hierarchical_softmax_loss(x, w, y_ignored, tree, node_bias=b, reduction="none")
    assert none[1] == 0 and none[4] == 0
    keep = y_ignored != -100
    mean = hierarchical_softmax_loss(x, w, y_ignored, tree, node_bias=b)
    expected = hierarchical_softmax_loss(x[keep], w, y[keep], tree, node_bias=b)
    assert math.isclose(float(mean), float(expected), rel_tol=1e-13)
    all_ignored = np.full_like(y, 7)
    assert np.isnan(hierarchical_softmax_loss(x, w, all_ignored, tree, ignore_index=7))


def test_extreme_logits_stay_finite():
    tree, x, w, _, y = problem()
    loss = hierarchical_softmax_loss(1e4 * x, w, y, tree, reduction="none")
    assert np.isfinite(loss).all() and (loss >= 0).all()


def test_numpy_grad_matches_finite_differences():
    tree, x, w, b, y = problem(v=11, d=3, n=4)
    y[2] = -100
    loss, d_x, nodes, d_w, d_b = hierarchical_softmax_loss_grad(x, w, y, tree, node_bias=b)

    def f(x_, w_, b_):
        return float(hierarchical_softmax_loss(x_, w_, y, tree, node_bias=b_))

    assert math.isclose(float(loss), f(x, w, b))
    h = 1e-6

    def numeric(arr, fn):
        g = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            up, down = arr.copy(), arr.copy()
            up[i] += h
            down[i] -= h
            g[i] = (fn(up) - fn(down)) / (2 * h)
        return g

    np.testing.assert_allclose(d_x, numeric(x, lambda a: f(a, w, b)), atol=1e-8)
    full_w = np.zeros_like(w)
    full_w[nodes] = d_w
    np.testing.assert_allclose(full_w, numeric(w, lambda a: f(x, a, b)), atol=1e-8)
    full_b = np.zeros_like(b)
    full_b[nodes] = d_b
    np.testing.assert_allclose(full_b, numeric(b, lambda a: f(x, w, a)), atol=1e-8)
    # the rows not returned are exactly the nodes on no kept label's path
    on_paths = set(tree.paths[y[y != -100]].ravel().tolist()) - {-1}
    assert set(nodes.tolist()) == on_paths


def test_numpy_grad_without_bias_returns_four():
    tree, x, w, _, y = problem()
    out = hierarchical_softmax_loss_grad(x, w, y, tree, reduction="sum")
    assert len(out) == 4
    loss_t = torch.tensor(x, requires_grad=True)
    w_t = torch.tensor(w, requires_grad=True)
    hierarchical_softmax_loss(loss_t, w_t, torch.from_numpy(y), tree, reduction="sum").backward()
    np.testing.assert_allclose(out[1], loss_t.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out[3], w_t.grad.numpy()[out[2]], rtol=1e-12, atol=1e-14)


def test_numpy_grad_refuses_torch():
    tree, x, w, _, y = problem()
    with pytest.raises(SoftmaxkitTypeError, match="`inputs` must be a NumPy array"):
        hierarchical_softmax_loss_grad(torch.from_numpy(x), w, y, tree)


def test_torch_gradcheck_of_loss_and_log_probs():
    tree, x, w, b, y = problem(v=9, d=3, n=4)
    xs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    labels = torch.from_numpy(y)
    assert torch.autograd.gradcheck(
        lambda x_, w_, b_: hierarchical_softmax_loss(x_, w_, labels, tree, node_bias=b_), xs
    )
    assert torch.autograd.gradcheck(
        lambda x_, w_, b_: hierarchical_log_softmax(x_, w_, tree, node_bias=b_), xs
    )


def test_every_backend_equals_numpy(backend):
    tree, x, w, b, y = problem()
    arrays = [backend.asarray(a) for a in (x, w, b)]
    labels = backend.asarray(y)
    for reduction in ("none", "mean"):
        got = hierarchical_softmax_loss(
            arrays[0], arrays[1], labels, tree, node_bias=arrays[2], reduction=reduction
        )
        assert backend.is_native(got)
        expected = hierarchical_softmax_loss(x, w, y, tree, node_bias=b, reduction=reduction)
        np.testing.assert_allclose(backend.to_numpy(got), expected, rtol=1e-12)
    got = hierarchical_log_softmax(arrays[0], arrays[1], tree, node_bias=arrays[2])
    np.testing.assert_allclose(
        backend.to_numpy(got), hierarchical_log_softmax(x, w, tree, node_bias=b), rtol=1e-12
    )


def test_jax_grad_under_jit_equals_numpy_grad():
    tree, x, w, b, y = problem()
    y[0] = -100

    @jax.jit
    def f(x_, w_, b_, y_):
        return hierarchical_softmax_loss(x_, w_, y_, tree, node_bias=b_)

    value, (d_x, d_w) = jax.value_and_grad(f, argnums=(0, 1))(
        jnp.asarray(x), jnp.asarray(w), jnp.asarray(b), jnp.asarray(y)
    )
    loss, grad_x, nodes, grad_w, _ = hierarchical_softmax_loss_grad(x, w, y, tree, node_bias=b)
    assert math.isclose(float(value), float(loss), rel_tol=1e-12)
    np.testing.assert_allclose(np.asarray(d_x), grad_x, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(np.asarray(d_w)[nodes], grad_w, rtol=1e-10, atol=1e-14)


def test_float32_in_float32_out():
    tree, x, w, _, y = problem()
    got = hierarchical_softmax_loss(x.astype(np.float32), w.astype(np.float32), y, tree)
    assert got.dtype == np.float32
    assert math.isclose(float(got), float(hierarchical_softmax_loss(x, w, y, tree)), rel_tol=1e-5)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (
            dict(y=np.array([0, 1, 23, 0, 0, 0, 0])),
            SoftmaxkitValueError,
            r"`labels` must be in \[0, 23\) or -100; position \(2,\) holds 23",
        ),
        (dict(y=np.array([0, -1, 0, 0, 0, 0, 0])), SoftmaxkitValueError, "`labels` must be in"),
        (dict(y=np.zeros(3, dtype=int)), SoftmaxkitValueError, r"`labels` must have shape \(7,\)"),
        (dict(y=np.zeros(7)), SoftmaxkitTypeError, "`labels` must hold integer classes"),
        (
            dict(w=np.zeros((21, 5))),
            SoftmaxkitValueError,
            r"`node_weights` must have shape \(22, dim\)",
        ),
        (dict(x=np.zeros((7, 4))), SoftmaxkitValueError, r"`inputs` must have shape \(batch, 5\)"),
        (dict(b=np.zeros(3)), SoftmaxkitValueError, r"`node_bias` must have shape \(22,\)"),
        (dict(tree="huffman"), SoftmaxkitTypeError, "`tree` must be a softmaxkit.sampling.Tree"),
    ],
)
def test_bad_input_names_the_argument(change, error, match):
    tree, x, w, b, y = problem()
    args = dict(tree=tree, x=x, w=w, b=b, y=y) | change
    with pytest.raises(error, match=match):
        hierarchical_softmax_loss(
            args["x"], args["w"], args["y"], args["tree"], node_bias=args["b"]
        )


# --- the torch module ----------------------------------------------------------------------


def module_and_batch(sparse=False, **kwargs):
    torch.manual_seed(0)
    counts = np.random.default_rng(1).integers(1, 100, 50)
    layer = HierarchicalSoftmax(50, 6, counts, sparse=sparse, **kwargs).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(9, 6, dtype=torch.float64)
    y = torch.randint(0, 50, (9,))
    return layer, x, y, counts


def test_module_is_the_functional_loss_on_its_huffman_tree():
    layer, x, y, counts = module_and_batch()
    tree = huffman_tree(counts)
    assert np.array_equal(layer.tree.paths, tree.paths)
    assert layer.weight.shape == (49, 6) and layer.bias.shape == (49,)
    expected = hierarchical_softmax_loss(x, layer.weight, y, tree, node_bias=layer.bias)
    torch.testing.assert_close(layer(x, y), expected, rtol=1e-13, atol=0)
    logp = layer.log_prob(x)
    torch.testing.assert_close(
        logp, hierarchical_log_softmax(x, layer.weight, tree, node_bias=layer.bias)
    )
    assert torch.equal(layer.predict(x), logp.argmax(dim=1))
    torch.testing.assert_close(layer(x, y), -logp.gather(1, y[:, None]).mean(), rtol=1e-12, atol=0)


def test_module_without_counts_uses_the_balanced_tree():
    layer = HierarchicalSoftmax(10, 4, bias=False)
    assert np.array_equal(layer.tree.depths, balanced_tree(10).depths)
    assert layer.bias is None


def test_module_reduction_and_ignore_index():
    layer, x, y, _ = module_and_batch(reduction="none", ignore_index=-1)
    y[3] = -1
    rows = layer(x, y)
    assert rows.shape == (9,) and rows[3] == 0 and (rows[y != -1] > 0).all()


def test_module_sparse_gradient_equals_dense_and_touches_only_the_paths():
    dense, x, y, _ = module_and_batch()
    sparse, *_ = module_and_batch(sparse=True)
    dense(x, y).backward()
    sparse(x, y).backward()
    assert sparse.weight.grad.is_sparse and not dense.weight.grad.is_sparse
    torch.testing.assert_close(sparse.weight.grad.to_dense(), dense.weight.grad)
    on_paths = np.unique(dense.tree.paths[y.numpy()])
    touched = np.flatnonzero(dense.weight.grad.abs().sum(dim=1).numpy() > 0)
    assert set(touched.tolist()) <= set(on_paths.tolist()) - {-1}
    optimizer = torch.optim.SGD(sparse.parameters(), lr=0.1)
    optimizer.step()  # SGD takes the sparse gradient


def test_module_bad_input():
    with pytest.raises(SoftmaxkitValueError, match="`counts` must hold one count per class, 5"):
        HierarchicalSoftmax(5, 3, counts=[1, 2, 3])
    layer, x, y, _ = module_and_batch()
    y[0] = 50
    with pytest.raises(SoftmaxkitValueError, match=r"`labels` must be in \[0, 50\)"):
        layer(x, y)
