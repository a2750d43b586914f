"""PyTorch layers built on softmaxkit: :class:`SampledSoftmaxLoss`, :class:`HierarchicalSoftmax`,
:class:`AdaptiveSoftmax`, :class:`InBatchSoftmaxLoss`.

This module is only about PyTorch, so it imports torch at its top;
``import softmaxkit`` never imports it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._candidate import (
    _check_labels,
    _check_shapes,
    _logits,
    _prepare,
    _reduce,
    _rows,
    _softmax_loss,
)
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._losses import cross_entropy
from ._options import check_count as _count
from ._options import check_flag, check_reduction
from ._torch_output_layers import (
    AdaptiveSoftmax,
    AdaptiveSoftmaxOutput,
    HierarchicalSoftmax,
    init_output_rows,
)
from ._torch_retrieval import InBatchSoftmaxLoss
from ._typing import Reduction, Seed
from .sampling import (
    LogUniformSampler,
    UniformSampler,
    UnigramSampler,
    _Sampler,
    as_generator,
)

__all__ = [
    "AdaptiveSoftmax",
    "AdaptiveSoftmaxOutput",
    "HierarchicalSoftmax",
    "InBatchSoftmaxLoss",
    "SampledSoftmaxLoss",
]

Sampler = LogUniformSampler | UniformSampler | UnigramSampler


def _check_sampler(sampler: Any, num_classes: int, num_sampled: int) -> None:
    """At construction, what ``forward`` would otherwise find at the first training step."""
    if not callable(getattr(sampler, "sample", None)):
        raise SoftmaxkitTypeError(
            "`sampler` must be a softmaxkit.sampling sampler (an object with a `sample` "
            f"method); got {type(sampler).__name__}"
        )
    if getattr(sampler, "num_classes", None) != num_classes:
        raise SoftmaxkitValueError(
            f"`sampler` must draw from the {num_classes} classes of the layer; got {sampler!r}"
        )
    if isinstance(sampler, _Sampler) and num_sampled > sampler._support:
        raise SoftmaxkitValueError(
            f"`num_sampled` must be <= {sampler._support}, the number of classes `sampler` "
            f"can draw (the layer draws them unique); got {num_sampled}"
        )


class SampledSoftmaxLoss(nn.Module):
    r"""An output layer over many classes, trained with sampled softmax.

    Owns the output embedding ``weight`` (num_classes, embedding_dim) and
    ``bias`` (num_classes,).  In training mode ``forward`` is
    :func:`softmaxkit.sampled_softmax_loss` against ``num_sampled`` classes
    drawn afresh at each call; in eval mode it is the full softmax
    cross-entropy over every class (:func:`softmaxkit.cross_entropy`), the
    quantity the sampled loss estimates.

    Parameters
    ----------
    num_classes, embedding_dim : int
        V and D.
    num_sampled : int
        Classes sampled per training step, shared by the batch.
    sampler : a :mod:`softmaxkit.sampling` sampler over ``num_classes``, optional
        Default :class:`~softmaxkit.sampling.LogUniformSampler`.
    num_true : int, default 1
        True classes per example (labels of shape (B, num_true)).
    remove_accidental_hits, subtract_log_q : bool, default True
        As in :func:`softmaxkit.sampled_logits`.
    bias : bool, default True
        Whether the layer has a bias per class.
    sparse : bool, default False
        Gather the rows of ``weight`` with a sparse-gradient embedding lookup,
        so that a step costs O(rows used) and not O(num_classes * D) (use an
        optimizer that takes sparse gradients, such as ``torch.optim.SGD`` or
        ``SparseAdam``).  With False the gradient is a dense tensor that is
        zero outside the rows used.
    rng : numpy.random.Generator or int seed, optional
        Seeds the layer's own generator: the same seed gives the same sequence
        of samples.
    reduction : {"none", "mean", "sum"}, default "none"
        As in :func:`softmaxkit.sampled_softmax_loss` (the same default).

    Examples
    --------
    >>> import torch
    >>> from softmaxkit.torch import SampledSoftmaxLoss
    >>> _ = torch.manual_seed(0)
    >>> layer = SampledSoftmaxLoss(10_000, 32, num_sampled=100, rng=0, reduction="mean")
    >>> hidden, labels = torch.randn(8, 32), torch.randint(0, 10_000, (8,))
    >>> layer(hidden, labels).backward()  # training mode: sampled loss
    >>> int((layer.weight.grad.abs().sum(dim=1) > 0).sum()) <= 108  # only rows used
    True
    >>> full = layer.eval()(hidden, labels)  # eval mode: full softmax cross-entropy
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        num_sampled: int,
        *,
        sampler: Sampler | None = None,
        num_true: int = 1,
        remove_accidental_hits: bool = True,
        subtract_log_q: bool = True,
        bias: bool = True,
        sparse: bool = False,
        rng: Seed = None,
        reduction: Reduction = "none",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        self.num_classes = _count(num_classes, "num_classes", 1)
        self.embedding_dim = _count(embedding_dim, "embedding_dim", 1)
        self.num_sampled = _count(num_sampled, "num_sampled", 1)
        self.sampler = LogUniformSampler(self.num_classes) if sampler is None else sampler
        _check_sampler(self.sampler, self.num_classes, self.num_sampled)
        self.num_true = _count(num_true, "num_true", 1)
        self.remove_accidental_hits = check_flag(remove_accidental_hits, "remove_accidental_hits")
        self.subtract_log_q = check_flag(subtract_log_q, "subtract_log_q")
        bias = check_flag(bias, "bias")
        self.sparse = check_flag(sparse, "sparse")
        self.reduction = reduction
        self.rng: np.random.Generator = as_generator(rng)
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise SoftmaxkitTypeError(
                f"`dtype` must be a floating torch.dtype (the parameters are trained); got {dtype!r}"
            )
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.embedding_dim, **factory))
        self.bias = nn.Parameter(torch.empty(self.num_classes, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``weight`` ~ N(0, 1/D) so that initial logits are O(1); ``bias`` = 0."""
        init_output_rows(self.weight, self.bias)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Full logits ``inputs @ weight.T + bias``, shape (B, num_classes), for prediction."""
        out = inputs @ self.weight.T
        return out if self.bias is None else out + self.bias

    def forward(
        self, inputs: torch.Tensor, labels: torch.Tensor, *, sampled_values: Any = None
    ) -> torch.Tensor:
        """The sampled loss (training) or the full cross-entropy (eval), per ``reduction``.

        ``sampled_values`` (training only) reuses a given sample instead of
        drawing one from the layer's sampler.
        """
        if not self.training:
            if sampled_values is not None:
                raise SoftmaxkitValueError(
                    "`sampled_values` is for training mode; in eval mode the layer computes "
                    "the full softmax cross-entropy, which takes no sample"
                )
            return self._full_loss(inputs, labels)
        drawn = sampled_values is None
        b = _prepare(
            self.weight,
            self.bias,
            labels,
            inputs,
            num_sampled=self.num_sampled,
            sampler=self.sampler if drawn else None,
            num_true=self.num_true,
            sampled_values=sampled_values,
            subtract_log_q=self.subtract_log_q,
            rng=self.rng if drawn else None,
        )
        logits, _ = _logits(
            b,
            *_rows(b, self.weight, self.bias, self._take),
            remove_accidental_hits=self.remove_accidental_hits,
            subtract_log_q=self.subtract_log_q,
        )
        return _reduce(torch, _softmax_loss(torch, logits, self.num_true), self.reduction)

    def _take(self, weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, weight, sparse=self.sparse)

    def _full_loss(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_shapes(self.weight, self.bias, labels, inputs, self.num_true)
        _check_labels(labels, self.num_classes)
        logits = self.logits(inputs)
        true = labels.reshape(labels.shape[0], self.num_true).to(torch.int64)
        if self.num_true == 1:
            return cross_entropy(logits, true[:, 0], reduction=self.reduction)
        # Target 1/num_true on each true label, as in training.
        share = torch.full(true.shape, 1.0 / self.num_true, dtype=logits.dtype)
        target = torch.zeros_like(logits).scatter_add_(1, true, share.to(logits.device))
        return cross_entropy(logits, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return (
            f"{self.num_classes}, {self.embedding_dim}, num_sampled={self.num_sampled}, "
            f"sampler={self.sampler!r}, num_true={self.num_true}, "
            f"bias={self.bias is not None}, sparse={self.sparse}, reduction={self.reduction!r}"
        )
