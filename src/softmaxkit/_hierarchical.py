"""The hierarchical softmax of word2vec and fastText: a binary tree over the classes.

Each inner node ``n`` of a :class:`~softmaxkit.sampling.Tree` owns a row
``w_n`` of ``node_weights`` (and a bias ``b_n``).  An example ``h`` goes
down the tree at node ``n`` along code 0 with probability
``sigmoid(z_n)`` and along code 1 with ``sigmoid(-z_n)``, where
``z_n = h . w_n + b_n``; a class's probability is the product over its path:

    log p(v | h) = sum_{d < depth(v)} log_sigmoid(s_{v,d} * z_{paths[v, d]}),
    s_{v,d} = 1 - 2 * codes[v, d]

The two children of a node share its probability, so the ``V`` leaf
probabilities sum to 1 exactly (up to rounding), and the loss of an example
costs O(depth) dot products instead of the full softmax's O(V).

One code path serves NumPy, PyTorch and JAX (the array-API namespace of the
inputs), differentiated by the library's autograd;
:func:`hierarchical_softmax_loss_grad` gives the NumPy gradient by hand.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from ._backend import (
    as_array,
    as_result,
    compute_dtype,
    fused,
    is_concrete,
    is_jax,
    is_torch,
    namespace,
    to_numpy,
)
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._options import check_ignore_index, check_indices, check_reduction, not_ignored
from ._softmax import log_sigmoid, sigmoid
from ._trees import Tree, check_tree
from ._typing import ArrayT, Reduction

__all__ = [
    "hierarchical_log_softmax",
    "hierarchical_softmax_loss",
    "hierarchical_softmax_loss_grad",
]

Array = Any


def _shape(a: Array) -> tuple[int, ...]:
    return tuple(int(n) for n in a.shape)


class _Layer(NamedTuple):
    """Validated arrays of the layer, of the caller's library."""

    xp: ModuleType
    x: Array  # (N, D), working dtype
    w: Array  # (V - 1, D), as given
    b: Array | None  # (V - 1,), as given
    tree: Tree
    out_dtype: Any


def _layer(inputs: Array, node_weights: Array, node_bias: Array | None, tree: Any) -> _Layer:
    tree = check_tree(tree)
    node_weights = as_array(node_weights, "node_weights")
    xp = namespace(node_weights)
    inputs = as_array(inputs, "inputs", xp)
    node_bias = None if node_bias is None else as_array(node_bias, "node_bias", xp)
    xp = namespace(node_weights, inputs, node_bias, names=("node_weights", "inputs", "node_bias"))
    m = tree.num_nodes
    if node_weights.ndim != 2 or node_weights.shape[0] != m:
        raise SoftmaxkitValueError(
            f"`node_weights` must have shape ({m}, dim), a row per inner node of `tree` "
            f"({tree.num_classes} classes); got shape {_shape(node_weights)}"
        )
    dim = int(node_weights.shape[1])
    if inputs.ndim != 2 or inputs.shape[1] != dim:
        raise SoftmaxkitValueError(
            f"`inputs` must have shape (batch, {dim}) to match `node_weights` of shape "
            f"{_shape(node_weights)}; got shape {_shape(inputs)}"
        )
    if node_bias is not None and _shape(node_bias) != (m,):
        raise SoftmaxkitValueError(
            f"`node_bias` must have shape ({m},), one per inner node; got shape {_shape(node_bias)}"
        )
    work, out = compute_dtype(xp, xp.result_type(inputs.dtype, node_weights.dtype))
    return _Layer(xp, xp.astype(inputs, work), node_weights, node_bias, tree, out)


class _Paths(NamedTuple):
    """Each example's path, as arrays of the caller's library and device."""

    nodes: Array  # (N, max_depth) int64, padding 0
    sign: Array  # (N, max_depth) working dtype: +1 for code 0, -1 for code 1, 0 off the path
    kept: Array  # (N,) bool: rows whose label is not ignore_index


def _paths(layer: _Layer, labels: Array, ignore_index: int) -> _Paths:
    xp, tree, x = layer.xp, layer.tree, layer.x
    labels = as_array(labels, "labels", xp)
    namespace(x, labels)
    if not xp.isdtype(labels.dtype, "integral"):
        raise SoftmaxkitTypeError(f"`labels` must hold integer classes; got dtype {labels.dtype}")
    n = int(x.shape[0])
    if _shape(labels) != (n,):
        raise SoftmaxkitValueError(
            f"`labels` must have shape ({n},) to match `inputs` of shape {_shape(x)}; got "
            f"shape {_shape(labels)}"
        )
    device = array_api_compat.device(x)
    if is_concrete(labels):
        # The check reads the labels on the host anyway; the path rows are gathered
        # there too, so only (N, max_depth) entries travel, not the whole tree.
        y = to_numpy(labels)
        check_indices(y, tree.num_classes, ignore_index, name="labels")
        keep = y != ignore_index
        safe = np.where(keep, y, 0).astype(np.int64)
        nodes = tree.paths[safe]
        sign = np.where((nodes >= 0) & keep[:, None], 1.0 - 2.0 * tree.codes[safe], 0.0)
        return _Paths(
            xp.asarray(np.maximum(nodes, 0), device=device),
            xp.asarray(sign, dtype=x.dtype, device=device),
            xp.asarray(keep, device=device),
        )
    # Traced labels (jax.jit): values unchecked, the tree's tables gathered on the device.
    kept = not_ignored(xp, labels, ignore_index)
    safe = xp.where(kept, labels, xp.zeros_like(labels))
    table_sign = np.where(tree.paths >= 0, 1.0 - 2.0 * tree.codes, 0.0)
    nodes = xp.take(xp.asarray(np.maximum(tree.paths, 0), device=device), safe, axis=0)
    sign = xp.take(xp.asarray(table_sign, dtype=x.dtype, device=device), safe, axis=0)
    sign = xp.where(kept[:, None], sign, xp.zeros_like(sign))
    return _Paths(nodes, sign, kept)


def path_logits(xp: ModuleType, x: Array, rows: Array, rows_bias: Array | None) -> Array:
    """``z[i, d] = x[i] . rows[i, d] + rows_bias[i, d]``: (N, max_depth) from gathered rows."""
    z = xp.matmul(rows, x[:, :, None])[:, :, 0]
    return z if rows_bias is None else z + rows_bias


def path_losses(xp: ModuleType, z: Array, sign: Array) -> Array:
    """``-sum_d log_sigmoid(sign * z)`` over each row's path (where ``sign != 0``), (N,)."""
    on_path = sign != 0
    terms = log_sigmoid(sign * z)
    return -xp.sum(xp.where(on_path, terms, xp.zeros_like(terms)), axis=1)


def reduce_rows(xp: ModuleType, losses: Array, kept: Array, reduction: str) -> Array:
    """As :func:`softmaxkit.cross_entropy` reduces class indices without weights.

    "mean" divides by the kept rows; with none kept it is NaN, with gradient 0.
    """
    if reduction == "none":
        return losses
    total = xp.sum(losses)
    if reduction == "sum":
        return total
    count = xp.sum(xp.astype(kept, losses.dtype))
    empty = count == 0
    mean = total / xp.where(empty, xp.ones_like(count), count)
    return xp.where(empty, xp.asarray(xp.nan, dtype=losses.dtype), mean)


def _gather_rows(
    xp: ModuleType, x: Array, w: Array, b: Array | None, nodes: Array, take_rows: Any = None
) -> tuple[Array, Array | None]:
    """The rows of ``w`` and ``b`` on each example's path: (N, max_depth, D) and (N, max_depth)."""
    n, width = _shape(nodes)
    flat = xp.reshape(nodes, (-1,))
    taken = xp.take(w, flat, axis=0) if take_rows is None else take_rows(w, flat)
    rows = xp.astype(taken, x.dtype, copy=False)
    rows = xp.reshape(rows, (n, width, int(w.shape[1])))
    if b is None:
        return rows, None
    bias = xp.astype(xp.take(b, flat, axis=0), x.dtype, copy=False)
    return rows, xp.reshape(bias, (n, width))


def hierarchical_softmax_loss(
    inputs: ArrayT,
    node_weights: ArrayT,
    labels: ArrayT,
    tree: Tree,
    /,
    *,
    node_bias: ArrayT | None = None,
    reduction: Reduction = "mean",
    ignore_index: int = -100,
) -> ArrayT:
    r"""Negative log-likelihood of ``labels`` under the hierarchical softmax of ``tree``.

    ``loss[i] = -sum_{d < depth(y)} log_sigmoid((1 - 2 codes[y, d]) * z[i, paths[y, d]])``
    with ``y = labels[i]`` and ``z[i, n] = inputs[i] . node_weights[n] + node_bias[n]``:
    exactly ``-log p(y | inputs[i])`` of :func:`hierarchical_log_softmax`, at a
    cost of ``depth(y)`` dot products (about ``log2 V``; fewer for frequent
    classes of a Huffman tree).

    Parameters
    ----------
    inputs : array of shape (N, D)
        The features (last hidden layer) of each example; NumPy, PyTorch or
        JAX, differentiable by the library's autograd.
    node_weights : array of shape (V - 1, D)
        A row per inner node of ``tree``.
    labels : int array of shape (N,)
        Classes in ``[0, V)``, or ``ignore_index``.
    tree : softmaxkit.sampling.Tree
        From :func:`~softmaxkit.sampling.huffman_tree` or
        :func:`~softmaxkit.sampling.balanced_tree`.
    node_bias : array of shape (V - 1,), optional
        A bias per inner node.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in :func:`softmaxkit.cross_entropy`: "none" gives shape (N,) with 0
        on ignored rows; "mean" divides by the rows not ignored (NaN if none,
        with gradient 0).
    ignore_index : int, default -100
        Rows with this label add nothing to the loss or the gradient.

    Returns
    -------
    array, 0-d or of shape (N,)
        Of the dtype of ``inputs`` and ``node_weights`` (16-bit floats are
        computed in float32).

    Raises
    ------
    SoftmaxkitValueError
        For labels outside ``[0, V)`` (other than ``ignore_index``) and
        shapes that disagree with ``tree`` or each other, naming the argument.
        (Under ``jax.jit`` label values are not checked.)

    Notes
    -----
    Only the rows of ``node_weights`` on the labels' paths are read, so on
    PyTorch only they receive gradient.  A one-class tree has no nodes: every
    loss is 0.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import hierarchical_softmax_loss
    >>> from softmaxkit.sampling import huffman_tree
    >>> tree = huffman_tree([50, 25, 13, 12])  # "the", "cat", "sat", "mat"
    >>> rng = np.random.default_rng(0)
    >>> h, w = rng.normal(size=(2, 8)), rng.normal(size=(3, 8))
    >>> hierarchical_softmax_loss(h, w, np.array([0, 3]), tree, reduction="none").shape
    (2,)
    """
    return loss_with(inputs, node_weights, labels, tree, node_bias, reduction, ignore_index)


def loss_with(
    inputs: Array,
    node_weights: Array,
    labels: Array,
    tree: Tree,
    node_bias: Array | None,
    reduction: str,
    ignore_index: int,
    take_rows: Any = None,
) -> Array:
    """:func:`hierarchical_softmax_loss`, gathering the weight rows with ``take_rows(w, ids)``.

    The torch module passes a sparse-gradient embedding lookup.
    """
    check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    layer = _layer(inputs, node_weights, node_bias, tree)
    paths = _paths(layer, labels, ignore_index)
    # One compiled computation on JAX (eagerly, each of its dozen operations would
    # compile on its own, seconds on first use); a plain call elsewhere.
    loss = fused(
        _loss_core,
        layer.x,
        layer.w,
        layer.b,
        paths.nodes,
        paths.sign,
        paths.kept,
        reduction=reduction,
        take_rows=take_rows,
    )
    return as_result(layer.xp.astype(loss, layer.out_dtype, copy=False))


def _loss_core(
    x: Array,
    w: Array,
    b: Array | None,
    nodes: Array,
    sign: Array,
    kept: Array,
    *,
    reduction: str,
    take_rows: Any,
) -> Array:
    xp = namespace(x)
    z = path_logits(xp, x, *_gather_rows(xp, x, w, b, nodes, take_rows))
    return reduce_rows(xp, path_losses(xp, z, sign), kept, reduction)


def hierarchical_softmax_loss_grad(
    inputs: np.ndarray,
    node_weights: np.ndarray,
    labels: np.ndarray,
    tree: Tree,
    /,
    *,
    node_bias: np.ndarray | None = None,
    reduction: Reduction = "mean",
    ignore_index: int = -100,
) -> tuple[np.ndarray, ...]:
    r""":func:`hierarchical_softmax_loss` and its gradient by hand, for NumPy training loops.

    Takes the arguments of :func:`hierarchical_softmax_loss`, NumPy arrays
    only (PyTorch and JAX have autograd).  With ``s = 1 - 2 * code`` the
    term ``-log_sigmoid(s * z)`` has ``d/dz = sigmoid(z) - (1 - code)``
    (word2vec's ``1 - code - f`` with the opposite sign), which flows to
    ``inputs[i]`` (times ``w_n``), to ``w_n`` (times ``inputs[i]``) and to
    ``b_n``; "mean" scales it by one over the rows kept.

    Returns
    -------
    tuple
        ``(loss, grad_inputs, touched_node_ids, grad_node_rows)``, and
        ``grad_node_bias_rows`` as a fifth entry when ``node_bias`` is given:

        * ``loss``: as :func:`hierarchical_softmax_loss`;
        * ``grad_inputs``: (N, D), the gradient of ``loss`` (of its sum for "none");
        * ``touched_node_ids``: (K,) int64, the distinct inner nodes on the
          labels' paths, sorted;
        * ``grad_node_rows``: (K, D), the gradient of ``node_weights`` at those
          rows (every other row's is 0), summed over examples: apply it with
          ``node_weights[touched_node_ids] -= lr * grad_node_rows``;
        * ``grad_node_bias_rows``: (K,), likewise for ``node_bias``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import hierarchical_softmax_loss_grad
    >>> from softmaxkit.sampling import balanced_tree
    >>> tree = balanced_tree(8)
    >>> rng = np.random.default_rng(0)
    >>> h, w = rng.normal(size=(2, 4)), rng.normal(size=(7, 4))
    >>> loss, d_h, nodes, d_w = hierarchical_softmax_loss_grad(h, w, np.array([0, 1]), tree)
    >>> nodes.tolist(), d_w.shape  # classes 0 and 1 share their whole path but the last node
    ([3, 5, 6], (3, 4))
    """
    for name, a in (("inputs", inputs), ("node_weights", node_weights), ("node_bias", node_bias)):
        if a is not None and (is_torch(a) or is_jax(a)):
            raise SoftmaxkitTypeError(
                f"`{name}` must be a NumPy array (on PyTorch and JAX use "
                f"hierarchical_softmax_loss with autograd); got {type(a).__name__}"
            )
    check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    layer = _layer(inputs, node_weights, node_bias, tree)
    paths = _paths(layer, labels, ignore_index)
    rows, rows_bias = _gather_rows(np, layer.x, layer.w, layer.b, paths.nodes)
    x, sign = layer.x, paths.sign
    z = path_logits(np, x, rows, rows_bias)
    losses = path_losses(np, z, sign)
    loss = reduce_rows(np, losses, paths.kept, reduction)
    kept = int(paths.kept.sum())
    scale = (1.0 / kept if kept else 0.0) if reduction == "mean" else 1.0
    on_path = sign != 0
    # d(-log_sigmoid(s z))/dz = -s sigmoid(-s z) = sigmoid(z) - (1 - code)
    dz = np.where(on_path, -sign * sigmoid(-sign * z), 0.0) * scale
    grad_inputs = np.matmul(dz[:, None, :], rows)[:, 0, :]
    touched, inverse = np.unique(paths.nodes[on_path], return_inverse=True)
    contributions = dz[on_path][:, None] * np.broadcast_to(x[:, None, :], rows.shape)[on_path]
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(touched.size))
    dim = int(rows.shape[2])
    grad_rows = (
        np.add.reduceat(contributions[order], starts, axis=0)
        if touched.size
        else np.zeros((0, dim), dtype=x.dtype)
    )
    out = layer.out_dtype
    result: tuple[np.ndarray, ...] = (
        np.asarray(loss, dtype=out),
        grad_inputs.astype(out, copy=False),
        touched.astype(np.int64),
        grad_rows.astype(out, copy=False),
    )
    if node_bias is not None:
        grad_bias = np.bincount(inverse, weights=dz[on_path], minlength=touched.size)
        result = (*result, grad_bias.astype(out, copy=False))
    return result


class _LevelPlan(NamedTuple):
    """The tree read level by level, for the full distribution in O(N (V + num_nodes)).

    Only arrays and None, so that ``jax.jit`` takes it as an argument.
    """

    # per depth k >= 1: (the slot of each node's parent among depth k - 1, its branch column)
    inner: list[tuple[np.ndarray, np.ndarray]]
    # per depth k >= 0: the leaves whose parent has depth k, as (parent's slot, column), or None
    leaves: list[tuple[np.ndarray, np.ndarray] | None]
    inverse: np.ndarray  # the leaves in class order, from their order by depth


def level_plan(tree: Tree) -> _LevelPlan:
    """Where each node's and each class's log-probability comes from, level by level.

    A node's log-probability of being reached is its parent's plus the
    log-sigmoid of the branch taken, the columns indexing ``[log_sigmoid(z),
    log_sigmoid(-z)]`` side by side.  The parents of depth ``k`` all sit at
    depth ``k - 1``, so each level is two gathers of the one before.
    """
    m, paths, codes, depths = tree.num_nodes, tree.paths, tree.codes, tree.depths
    node_depth = np.zeros(m, dtype=np.int64)
    node_parent = np.zeros(m, dtype=np.int64)
    node_code = np.zeros(m, dtype=np.int64)
    for d in range(1, tree.max_depth):
        on = paths[:, d] >= 0
        child = paths[on, d]
        node_depth[child] = d
        node_parent[child] = paths[on, d - 1]
        node_code[child] = codes[on, d - 1]
    slot = np.zeros(m, dtype=np.int64)
    levels = [np.flatnonzero(node_depth == k) for k in range(tree.max_depth)]
    for nodes in levels:
        slot[nodes] = np.arange(nodes.size)
    inner = [
        (slot[node_parent[nodes]], node_parent[nodes] + m * node_code[nodes])
        for nodes in levels[1:]
    ]
    leaves: list[tuple[np.ndarray, np.ndarray] | None] = []
    order = []
    for d in range(1, tree.max_depth + 1):
        group = np.flatnonzero(depths == d)
        if group.size:
            parent = paths[group, d - 1]
            leaves.append((slot[parent], parent + m * codes[group, d - 1].astype(np.int64)))
            order.append(group)
        else:
            leaves.append(None)
    by_depth = np.concatenate(order) if order else np.zeros(1, dtype=np.int64)
    inverse = np.empty_like(by_depth)
    inverse[by_depth] = np.arange(by_depth.size)
    return _LevelPlan(inner, leaves, inverse)


def _log_probs_core(x: Array, w: Array, b: Array | None, plan: _LevelPlan) -> Array:
    """The (N, V) log-probabilities, top-down from the node logits ``x @ w.T + b``."""
    xp = namespace(x)
    n = int(x.shape[0])
    device = array_api_compat.device(x)
    if not plan.inner and all(group is None for group in plan.leaves):
        return xp.zeros((n, 1), dtype=x.dtype, device=device)  # one class: log p = 0

    def index(a: Any) -> Array:
        return xp.asarray(a, device=device)

    z = xp.matmul(x, xp.permute_dims(xp.astype(w, x.dtype, copy=False), (1, 0)))
    if b is not None:
        z = z + xp.astype(b, x.dtype, copy=False)[None, :]
    branch = xp.concat([log_sigmoid(z), log_sigmoid(-z)], axis=1)
    reach = [xp.zeros((n, 1), dtype=x.dtype, device=device)]  # the root, reached surely
    for parent_slot, column in plan.inner:
        reach.append(
            xp.take(reach[-1], index(parent_slot), axis=1) + xp.take(branch, index(column), axis=1)
        )
    parts = [
        xp.take(reach[level], index(group[0]), axis=1) + xp.take(branch, index(group[1]), axis=1)
        for level, group in enumerate(plan.leaves)
        if group is not None
    ]
    return xp.take(xp.concat(parts, axis=1), index(plan.inverse), axis=1)


def hierarchical_log_softmax(
    inputs: ArrayT,
    node_weights: ArrayT,
    tree: Tree,
    /,
    *,
    node_bias: ArrayT | None = None,
) -> ArrayT:
    r"""The full (N, V) log-probabilities of the hierarchical softmax, for evaluation.

    ``out[i, v] = sum_{d < depth(v)} log_sigmoid((1 - 2 codes[v, d]) * z[i, paths[v, d]])``
    with ``z = inputs @ node_weights.T + node_bias`` (see
    :func:`hierarchical_softmax_loss` for the arguments).  Each row
    log-sum-exps to 0 up to rounding: the two children of a node split its
    probability as ``sigmoid(z) + sigmoid(-z) = 1``.

    Returns
    -------
    array of shape (N, V)

    Notes
    -----
    Computed top-down, one tree level at a time (each node's log-probability
    is its parent's plus one log-sigmoid), in O(N * V) work and memory beyond
    the (N, V - 1) matrix product, not O(N * V * depth).

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import hierarchical_log_softmax
    >>> from softmaxkit.sampling import huffman_tree
    >>> tree = huffman_tree([50, 25, 13, 12])
    >>> rng = np.random.default_rng(0)
    >>> logp = hierarchical_log_softmax(rng.normal(size=(2, 8)), rng.normal(size=(3, 8)), tree)
    >>> logp.shape, np.exp(logp).sum(axis=1).round(12).tolist()
    ((2, 4), [1.0, 1.0])
    """
    return log_softmax_with(inputs, node_weights, tree, node_bias)


def log_softmax_with(
    inputs: Array,
    node_weights: Array,
    tree: Tree,
    node_bias: Array | None,
    plan: _LevelPlan | None = None,
) -> Array:
    """:func:`hierarchical_log_softmax` with the tree's ``plan`` made once by the caller."""
    layer = _layer(inputs, node_weights, node_bias, tree)
    plan = level_plan(layer.tree) if plan is None else plan
    out = fused(_log_probs_core, layer.x, layer.w, layer.b, plan)
    return as_result(layer.xp.astype(out, layer.out_dtype, copy=False))
