"""Binary trees over the classes, for the hierarchical softmax.

A tree with ``V`` leaves (the classes) has ``V - 1`` inner nodes, each owning
one row of the hierarchical softmax's ``node_weights``.  A class is reached
from the root by a path of inner nodes; at each one its 0/1 code says which
child the path takes.  :func:`huffman_tree` builds word2vec's tree from
class counts (frequent classes get short codes), :func:`balanced_tree` one
of depth ``ceil(log2 V)`` for classes without counts.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._options import check_count, check_counts

__all__ = ["Tree", "balanced_tree", "huffman_tree"]


class Tree(NamedTuple):
    """A binary tree over ``num_classes`` classes, as the hierarchical softmax reads it.

    Inner nodes are numbered ``0 .. num_nodes - 1`` in the order they were
    built, so the root is ``num_nodes - 1``.  Row ``v`` of ``paths`` and
    ``codes`` describes class ``v`` from the root down; entries past
    ``depths[v]`` are padding (``-1`` in ``paths``, ``0`` in ``codes``).

    Attributes
    ----------
    num_classes : int
        ``V``, the number of leaves.
    num_nodes : int
        ``V - 1``, the number of inner nodes (rows of ``node_weights``).
    paths : ndarray of int64, shape (V, max_depth)
        The inner nodes on each class's path, root first, padded with -1.
    codes : ndarray of int8, shape (V, max_depth)
        The branch taken at each of those nodes: 0 for the child of
        probability ``sigmoid(z)``, 1 for ``sigmoid(-z)`` (word2vec's convention).
    depths : ndarray of int64, shape (V,)
        The length of each path (0 for the only class of a one-class tree).

    Examples
    --------
    >>> from softmaxkit.sampling import huffman_tree
    >>> tree = huffman_tree([5, 1, 1, 1])    # class 0 is the frequent one
    >>> tree.num_nodes, tree.depths.tolist()
    (3, [1, 2, 3, 3])
    """

    num_classes: int
    num_nodes: int
    paths: np.ndarray
    codes: np.ndarray
    depths: np.ndarray

    @property
    def max_depth(self) -> int:
        """The longest path, the width of ``paths`` and ``codes``."""
        return int(self.paths.shape[1])

    def __repr__(self) -> str:
        return (
            f"Tree(num_classes={self.num_classes}, num_nodes={self.num_nodes}, "
            f"max_depth={self.max_depth})"
        )


def huffman_tree(counts: Any, /) -> Tree:
    """word2vec's Huffman tree over the classes: frequent classes get short codes.

    The classes are sorted by falling count; then, as in word2vec's
    ``CreateBinaryTree``, the two lightest of the remaining leaves and the
    inner nodes built so far are merged into a new inner node, ``V - 1``
    times.  The lighter of the two takes code 0, the other code 1.  The
    expected path length ``sum_v counts[v] * depths[v] / sum(counts)`` is the
    smallest any binary tree has.

    Parameters
    ----------
    counts : array of shape (V,)
        Finite, non-negative class counts (or frequencies; only their order
        and sums matter).  Zeros are allowed: such classes sit deepest.

    Returns
    -------
    Tree

    Notes
    -----
    The tie rule, which makes the tree a function of ``counts`` alone:
    classes of equal count are ordered by class id (the lower id counts as
    the more frequent one), and when a leaf and an inner node weigh the
    same, the inner node is merged first (word2vec's strict ``<``).  The
    latter also keeps the tree as shallow as Huffman's allows.

    A single class gives a tree of no inner nodes and depth 0: its
    probability is 1 and its loss 0.  The merge is a Python loop over
    ``V - 1`` steps (about 0.2 s for 10^5 classes), done once per model.

    Examples
    --------
    >>> from softmaxkit.sampling import huffman_tree
    >>> tree = huffman_tree([50, 25, 13, 12])  # "the", "cat", "sat", "mat"
    >>> tree.depths.tolist()
    [1, 2, 3, 3]
    >>> tree.paths[0].tolist(), tree.codes[0].tolist()
    ([2, -1, -1], [1, 0, 0])
    """
    c = check_counts(counts)
    return _build(c)


def balanced_tree(num_classes: int, /) -> Tree:
    """A tree whose paths all have length ``floor(log2 V)`` or ``ceil(log2 V)``.

    The Huffman tree of equal counts (:func:`huffman_tree` of ``V`` ones): with
    its tie rule, the lower class ids get the shorter paths when ``V`` is not
    a power of two.

    Parameters
    ----------
    num_classes : int
        ``V >= 1``.

    Examples
    --------
    >>> from softmaxkit.sampling import balanced_tree
    >>> balanced_tree(8).depths.tolist()
    [3, 3, 3, 3, 3, 3, 3, 3]
    >>> balanced_tree(5).depths.tolist()
    [2, 2, 2, 3, 3]
    """
    v = check_count(num_classes, "num_classes", 1)
    return _build(np.ones(v))


def _build(c: np.ndarray) -> Tree:
    v = int(c.size)
    order = np.argsort(-c, kind="stable")  # sorted position -> class id
    leaf = c[order]
    # Node ids: sorted leaves 0 .. v-1, then inner nodes v .. 2v-2 in the order built.
    parent = np.zeros(2 * v - 1, dtype=np.int64)
    bit = np.zeros(2 * v - 1, dtype=np.int8)
    weight = np.empty(max(v - 1, 0))
    leaf_list = leaf.tolist()
    next_leaf, next_inner = v - 1, 0  # the lightest leaf left; the oldest inner node left
    for a in range(v - 1):
        picked = []
        total = 0.0
        for _ in range(2):
            if next_leaf >= 0 and (next_inner >= a or leaf_list[next_leaf] < weight[next_inner]):
                picked.append(next_leaf)
                total += leaf_list[next_leaf]
                next_leaf -= 1
            else:
                picked.append(v + next_inner)
                total += weight[next_inner]
                next_inner += 1
        weight[a] = total
        parent[picked] = v + a
        bit[picked[1]] = 1
    root = 2 * v - 2
    parent[root] = root

    depth = np.zeros(v, dtype=np.int64)
    node = np.arange(v, dtype=np.int64)
    while True:
        up = node != root
        if not up.any():
            break
        depth += up
        node = np.where(up, parent[node], node)
    width = int(depth.max())
    paths = np.full((v, width), -1, dtype=np.int64)
    codes = np.zeros((v, width), dtype=np.int8)
    node = np.arange(v, dtype=np.int64)
    for step in range(width):  # from the leaves up, filling each row from its end
        rows = np.flatnonzero(depth > step)
        column = depth[rows] - 1 - step
        paths[rows, column] = parent[node[rows]] - v
        codes[rows, column] = bit[node[rows]]
        node[rows] = parent[node[rows]]

    out_paths = np.empty_like(paths)
    out_codes = np.empty_like(codes)
    out_depth = np.empty_like(depth)
    out_paths[order], out_codes[order], out_depth[order] = paths, codes, depth
    return Tree(v, v - 1, out_paths, out_codes, out_depth)


def check_tree(tree: Any) -> Tree:
    """``tree`` as a :class:`Tree`, its arrays consistent with each other."""
    if not isinstance(tree, Tree):
        raise SoftmaxkitTypeError(
            "`tree` must be a softmaxkit.sampling.Tree (from huffman_tree or balanced_tree); "
            f"got {type(tree).__name__}"
        )
    v = tree.num_classes
    if (
        tree.num_nodes != v - 1
        or tree.paths.ndim != 2
        or tree.paths.shape[0] != v
        or tree.codes.shape != tree.paths.shape
        or tree.depths.shape != (v,)
    ):
        raise SoftmaxkitValueError(
            f"`tree` is inconsistent: {v} classes, {tree.num_nodes} nodes, paths "
            f"{tree.paths.shape}, codes {tree.codes.shape}, depths {tree.depths.shape}"
        )
    return tree
