"""PyTorch output layers for very many classes: :class:`HierarchicalSoftmax`, :class:`AdaptiveSoftmax`.

Imports torch at its top; reached through :mod:`softmaxkit.torch` only.  The
modules hold parameters and settings; the maths is in
:mod:`softmaxkit._hierarchical` and :mod:`softmaxkit._adaptive`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ._adaptive import adaptive_forward, adaptive_log_softmax, adaptive_predict, check_cutoffs
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._hierarchical import level_plan, log_softmax_with, loss_with
from ._options import check_count as _count
from ._options import check_flag, check_ignore_index, check_label_smoothing, check_reduction
from ._trees import balanced_tree, huffman_tree
from ._typing import Reduction

__all__ = ["AdaptiveSoftmax", "AdaptiveSoftmaxOutput", "HierarchicalSoftmax"]


def _check_dtype(dtype: Any) -> None:
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise SoftmaxkitTypeError(
            f"`dtype` must be a floating torch.dtype (the parameters are trained); got {dtype!r}"
        )


def init_output_rows(weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """An output layer's rows ~ N(0, 1/D), so that the initial logits are O(1); bias 0."""
    with torch.no_grad():
        weight.normal_(0.0, 1.0 / math.sqrt(weight.shape[1]))
        if bias is not None:
            bias.zero_()


class HierarchicalSoftmax(nn.Module):
    r"""An output layer over many classes: word2vec's hierarchical softmax.

    Owns ``weight`` (num_classes - 1, embedding_dim), a row per inner node of
    its tree, and ``bias`` (num_classes - 1,).  ``forward(inputs, labels)``
    is :func:`softmaxkit.hierarchical_softmax_loss`, O(depth) per example and
    exact: the loss is ``-log p(label)`` of the normalised distribution
    :meth:`log_prob` returns, in training and eval mode alike.

    Parameters
    ----------
    num_classes, embedding_dim : int
        V and D.
    counts : array of shape (num_classes,), optional
        Class counts: the tree is :func:`~softmaxkit.sampling.huffman_tree`
        of them (frequent classes get short paths).  Without,
        :func:`~softmaxkit.sampling.balanced_tree`.  The tree is kept as
        ``self.tree`` (it is not in the ``state_dict``: build the module
        with the same counts before loading weights).
    bias : bool, default True
        A bias per inner node.
    sparse : bool, default False
        Gather the rows of ``weight`` with a sparse-gradient embedding
        lookup: ``weight.grad`` is then a sparse tensor of the rows on the
        batch's paths (use ``torch.optim.SGD`` or ``SparseAdam``); ``bias``
        keeps a dense gradient.
    reduction : {"mean", "sum", "none"}, default "mean"
    ignore_index : int, default -100
        As in :func:`softmaxkit.hierarchical_softmax_loss`.

    Examples
    --------
    >>> import torch
    >>> from softmaxkit.torch import HierarchicalSoftmax
    >>> _ = torch.manual_seed(0)
    >>> layer = HierarchicalSoftmax(1000, 16, counts=1.0 / torch.arange(1, 1001))
    >>> hidden, labels = torch.randn(4, 16), torch.tensor([0, 1, 50, 999])
    >>> layer(hidden, labels).backward()
    >>> layer.log_prob(hidden).exp().sum(dim=1).allclose(torch.ones(4))
    True
    >>> layer.predict(hidden).shape
    torch.Size([4])
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        counts: Any = None,
        *,
        bias: bool = True,
        sparse: bool = False,
        reduction: Reduction = "mean",
        ignore_index: int = -100,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.num_classes = _count(num_classes, "num_classes", 1)
        self.embedding_dim = _count(embedding_dim, "embedding_dim", 1)
        self.reduction = check_reduction(reduction)
        self.ignore_index = check_ignore_index(ignore_index)
        self.sparse = check_flag(sparse, "sparse")
        bias = check_flag(bias, "bias")
        _check_dtype(dtype)
        self.tree = balanced_tree(self.num_classes) if counts is None else huffman_tree(counts)
        if self.tree.num_classes != self.num_classes:
            raise SoftmaxkitValueError(
                f"`counts` must hold one count per class, {self.num_classes}; got "
                f"{self.tree.num_classes}"
            )
        self._plan = level_plan(self.tree)
        factory = {"device": device, "dtype": dtype}
        m = self.tree.num_nodes
        self.weight = nn.Parameter(torch.empty(m, self.embedding_dim, **factory))
        self.bias = nn.Parameter(torch.empty(m, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``weight`` ~ N(0, 1/D) so that initial node logits are O(1); ``bias`` = 0."""
        init_output_rows(self.weight, self.bias)

    def _take(self, weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, weight, sparse=self.sparse)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``-log p(labels | inputs)``, reduced per ``reduction``."""
        return loss_with(  # type: ignore[no-any-return]
            inputs,
            self.weight,
            labels,
            self.tree,
            self.bias,
            self.reduction,
            self.ignore_index,
            self._take,
        )

    def log_prob(self, inputs: torch.Tensor) -> torch.Tensor:
        """The (N, num_classes) log-probabilities (:func:`softmaxkit.hierarchical_log_softmax`)."""
        return log_softmax_with(  # type: ignore[no-any-return]
            inputs, self.weight, self.tree, self.bias, self._plan
        )

    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        """The most probable class of each row, shape (N,)."""
        return self.log_prob(inputs).argmax(dim=1)

    def extra_repr(self) -> str:
        return (
            f"{self.num_classes}, {self.embedding_dim}, tree={self.tree!r}, "
            f"bias={self.bias is not None}, sparse={self.sparse}, reduction={self.reduction!r}"
        )


class AdaptiveSoftmaxOutput(NamedTuple):
    """What :meth:`AdaptiveSoftmax.forward` returns, as PyTorch's ``_ASMoutput``.

    ``output`` holds each row's ``log p(target)`` (0 on ignored rows), ``loss`` the
    reduced loss.

    Examples
    --------
    >>> import torch
    >>> from softmaxkit.torch import AdaptiveSoftmax
    >>> _ = torch.manual_seed(0)
    >>> asm = AdaptiveSoftmax(16, 100, cutoffs=[10, 50])
    >>> result = asm(torch.randn(4, 16), torch.tensor([1, 20, 60, 99]))
    >>> result.output.shape, result.loss.shape
    (torch.Size([4]), torch.Size([]))
    """

    output: torch.Tensor  # log p(target) per row (0 on ignored rows)
    loss: torch.Tensor


class AdaptiveSoftmax(nn.Module):
    r"""``torch.nn.AdaptiveLogSoftmaxWithLoss``, with ignore_index, reductions and smoothing.

    The same parameters, attribute names (``in_features``, ``n_classes``,
    ``cutoffs`` ending in ``n_classes``, ``div_value``, ``head_bias``,
    ``shortlist_size``, ``n_clusters``, ``head_size``), submodules (``head``,
    ``tail[i][0]``, ``tail[i][1]``) and state-dict keys, so weights load
    either way.  The maths is :func:`softmaxkit.adaptive_softmax_loss` and
    :func:`softmaxkit.adaptive_log_softmax`, with the core's ``log_softmax``
    for the head and every cluster.

    Parameters
    ----------
    in_features, n_classes, cutoffs, div_value, head_bias
        As in PyTorch: classes ``[0, cutoffs[0])`` form the shortlist,
        cluster ``i`` holds ``[cutoffs[i], cutoffs[i+1])`` and projects to
        ``in_features // div_value ** (i + 1)`` dimensions.
    reduction : {"mean", "sum", "none"}, default "mean"
        Of the ``loss`` of :meth:`forward`; PyTorch's module always takes the mean.
    ignore_index : int, default -100
        Rows with this target have ``output`` 0 and add nothing to the loss
        (PyTorch's module has none: its targets must all be classes).
    label_smoothing : float in [0, 1], default 0
        As in :func:`softmaxkit.cross_entropy`, over the full distribution:
        see :func:`softmaxkit.adaptive_softmax_loss` (it evaluates every
        cluster on every row).  ``output`` stays ``log p(target)``.

    Examples
    --------
    >>> import torch
    >>> from softmaxkit.torch import AdaptiveSoftmax
    >>> _ = torch.manual_seed(0)
    >>> asm = AdaptiveSoftmax(16, 1000, cutoffs=[10, 100])
    >>> hidden, target = torch.randn(4, 16), torch.tensor([0, 5, 50, 999])
    >>> output, loss = asm(hidden, target)
    >>> loss.backward()
    >>> reference = torch.nn.AdaptiveLogSoftmaxWithLoss(16, 1000, cutoffs=[10, 100])
    >>> _ = reference.load_state_dict(asm.state_dict())
    >>> torch.allclose(reference(hidden, target).output, output)
    True
    """

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        cutoffs: Any,
        div_value: float = 4.0,
        head_bias: bool = False,
        *,
        reduction: Reduction = "mean",
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_features = _count(in_features, "in_features", 1)
        self.n_classes = _count(n_classes, "n_classes", 2)
        cut = check_cutoffs(list(cutoffs) if isinstance(cutoffs, range) else cutoffs, n_classes)
        if isinstance(div_value, bool) or not isinstance(div_value, (int, float)):
            raise SoftmaxkitTypeError(f"`div_value` must be a number; got {div_value!r}")
        if not (math.isfinite(div_value) and div_value > 0):
            raise SoftmaxkitValueError(f"`div_value` must be finite and > 0; got {div_value!r}")
        self.head_bias = check_flag(head_bias, "head_bias")
        self.reduction = check_reduction(reduction)
        self.ignore_index = check_ignore_index(ignore_index)
        self.label_smoothing = check_label_smoothing(label_smoothing)
        _check_dtype(dtype)
        factory = {"device": device, "dtype": dtype}
        self.cutoffs = [*cut, self.n_classes]
        self.div_value = div_value
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        self.head = nn.Linear(self.in_features, self.head_size, bias=self.head_bias, **factory)
        self.tail = nn.ModuleList()
        for i in range(self.n_clusters):
            hsz = int(self.in_features // (self.div_value ** (i + 1)))
            osz = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append(
                nn.Sequential(
                    nn.Linear(self.in_features, hsz, bias=False, **factory),
                    nn.Linear(hsz, osz, bias=False, **factory),
                )
            )

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: each ``nn.Linear``'s own."""
        self.head.reset_parameters()
        for pair in self.tail:
            for linear in pair:  # type: ignore[attr-defined]
                linear.reset_parameters()

    def _tail_weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(pair[0].weight, pair[1].weight) for pair in self.tail]  # type: ignore[index]

    def _batched(self, inputs: torch.Tensor, name: str = "input") -> tuple[torch.Tensor, bool]:
        if not isinstance(inputs, torch.Tensor):
            raise SoftmaxkitTypeError(
                f"`{name}` must be a torch.Tensor; got {type(inputs).__name__}"
            )
        if inputs.dim() == 1:
            return inputs[None, :], False
        if inputs.dim() != 2:
            raise SoftmaxkitValueError(
                f"`{name}` must have shape (N, {self.in_features}) or ({self.in_features},); got "
                f"shape {tuple(inputs.shape)}"
            )
        return inputs, True

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> AdaptiveSoftmaxOutput:
        """``(output, loss)``: ``log p(target)`` per row and the loss, as PyTorch's.

        ``input`` (N, in_features) with ``target`` (N,), or (in_features,) with a
        0-d ``target`` (then ``output`` is 0-d).
        """
        x, batched = self._batched(input)
        if not isinstance(target, torch.Tensor):
            raise SoftmaxkitTypeError(
                f"`target` must be a torch.Tensor; got {type(target).__name__}"
            )
        if target.dim() != (1 if batched else 0):
            raise SoftmaxkitValueError(
                f"`target` must have shape ({int(x.shape[0])},) for `input` of shape "
                f"{tuple(input.shape)}; got shape {tuple(target.shape)}"
            )
        output, loss = adaptive_forward(
            x,
            self.head.weight,
            self._tail_weights(),
            target.reshape(-1),
            self.cutoffs,
            head_bias=self.head.bias,
            reduction=self.reduction,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )
        if not batched:
            output = output[0]
            if self.reduction == "none":
                loss = loss[0]
        return AdaptiveSoftmaxOutput(output, loss)

    def log_prob(self, input: torch.Tensor) -> torch.Tensor:
        """The (N, n_classes) log-probabilities, as PyTorch's ``log_prob``."""
        x, batched = self._batched(input)
        out = adaptive_log_softmax(
            x, self.head.weight, self._tail_weights(), self.cutoffs, head_bias=self.head.bias
        )
        return out if batched else out[0]  # type: ignore[no-any-return]

    def predict(self, input: torch.Tensor) -> torch.Tensor:
        """The most probable class per row, evaluating the tails only where they can win."""
        x, batched = self._batched(input)
        out = adaptive_predict(
            x, self.head.weight, self._tail_weights(), self.cutoffs, self.head.bias
        )
        return out if batched else out[0]  # type: ignore[no-any-return]

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, n_classes={self.n_classes}, "
            f"cutoffs={self.cutoffs}, div_value={self.div_value}, head_bias={self.head_bias}, "
            f"reduction={self.reduction!r}, ignore_index={self.ignore_index}, "
            f"label_smoothing={self.label_smoothing}"
        )
