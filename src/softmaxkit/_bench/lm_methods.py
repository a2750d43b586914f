"""The output layers ``softmaxkit bench lm`` compares: one small adapter class per method.

Every adapter is a ``torch.nn.Module`` over ``hidden`` features and
``num_classes`` classes with two methods:

* ``loss(h, y)``: the training loss of the batch (a mean over its rows), the
  method's own way;
* ``log_prob(h)``: the ``(n, num_classes)`` log-probabilities of the method's
  exact normalised distribution, for the held-out perplexity: the full softmax
  of the layer's logits for the layers trained by full softmax, linear
  cross-entropy, sampled softmax and NCE; ``log_prob`` of the hierarchical and
  adaptive softmax modules.

:data:`METHODS` maps each name to its class, in the order of the tables.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import softmaxkit
import softmaxkit.torch as sk_torch
from softmaxkit.sampling import LogUniformSampler, UnigramSampler, huffman_tree

__all__ = ["METHODS", "Method", "adaptive_cutoffs", "num_sampled"]

NUM_SAMPLED = 1024
UNIGRAM_DISTORTION = 1.0  # the sampler draws classes as often as the training text has them


def num_sampled(num_classes: int) -> int:
    """Classes sampled per step by sampled softmax and NCE: 1024, at most a quarter of V."""
    return max(1, min(NUM_SAMPLED, num_classes // 4))


def adaptive_cutoffs(num_classes: int) -> list[int]:
    """[2000, 10000] (Grave et al.'s shape: a head of the most frequent words) from V = 20000;
    below, [V/5, V/2], so that the head stays a fifth of the classes.
    """
    if num_classes >= 20_000:
        return [2000, 10_000]
    return [max(1, num_classes // 5), max(2, num_classes // 2)]


def log_unigram(counts: np.ndarray) -> torch.Tensor:
    """``log(counts / counts.sum())`` (a zero count taken as 1), float32: the start of every per-class bias.

    Every layer with a bias per class starts as the unigram distribution, the
    distribution a Huffman tree with zero weights gives too.  NCE needs it
    (Mnih and Teh 2012): from a zero bias a rare class starts far above its
    noise probability, and its row only comes down when it is drawn, which for
    a rare class is seldom (held-out perplexity in the millions after 300 steps
    at V = 10^4, against 400 with this start).  The other layers get the same
    start, so that none begins ahead.
    """
    c = np.maximum(counts, 1).astype(np.float64)
    return torch.from_numpy(np.log(c / c.sum()).astype(np.float32))


class Method(nn.Module):
    """An output layer under test (see the module)."""

    name: ClassVar[str]

    def __init__(self, hidden: int, num_classes: int, counts: np.ndarray, seed: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.num_classes = num_classes

    def loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """What a reader of the results needs to know about this layer."""
        return {}


class _Dense(Method):
    """A layer with the full ``weight`` (V, H) and ``bias`` (V,): its distribution is their softmax."""

    def __init__(self, hidden: int, num_classes: int, counts: np.ndarray, seed: int) -> None:
        super().__init__(hidden, num_classes, counts, seed)
        self.weight = nn.Parameter(torch.randn(num_classes, hidden) / math.sqrt(hidden))
        self.bias = nn.Parameter(log_unigram(counts))

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.weight, self.bias)

    def log_prob(self, h: torch.Tensor) -> torch.Tensor:
        return softmaxkit.log_softmax(self.logits(h))


class FullSoftmax(_Dense):
    name = "full softmax"

    def loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return softmaxkit.cross_entropy(self.logits(h), y)


class LinearCrossEntropy(_Dense):
    name = "linear cross-entropy"

    # A chunk of about 2M logits (8 MB in float32; 8192 classes for a batch of 256): the
    # memory the method saves is the point, and chunks this size were also the fastest.
    CHUNK_ENTRIES = 1 << 21

    def loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        chunk = max(1, self.CHUNK_ENTRIES // max(1, h.shape[0]))
        return softmaxkit.linear_cross_entropy(h, self.weight, y, bias=self.bias, chunk_size=chunk)


class _Sampled(Method):
    """Sampled softmax with :class:`softmaxkit.torch.SampledSoftmaxLoss` (sparse row gradients)."""

    def sampler(self, num_classes: int, counts: np.ndarray) -> Any:
        raise NotImplementedError

    def __init__(self, hidden: int, num_classes: int, counts: np.ndarray, seed: int) -> None:
        super().__init__(hidden, num_classes, counts, seed)
        self.layer = sk_torch.SampledSoftmaxLoss(
            num_classes,
            hidden,
            num_sampled(num_classes),
            sampler=self.sampler(num_classes, counts),
            sparse=True,
            rng=seed,
            reduction="mean",
        )
        if self.layer.bias is not None:  # it is: bias=True is the default
            with torch.no_grad():
                self.layer.bias.copy_(log_unigram(counts))

    def loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.layer(h, y)

    def log_prob(self, h: torch.Tensor) -> torch.Tensor:
        return softmaxkit.log_softmax(self.layer.logits(h))

    def settings(self) -> dict[str, Any]:
        return {"num_sampled": self.layer.num_sampled, "sampler": repr(self.layer.sampler)}


class SampledLogUniform(_Sampled):
    name = "sampled, log-uniform"

    def sampler(self, num_classes: int, counts: np.ndarray) -> Any:
        return LogUniformSampler(num_classes)


class SampledUnigram(_Sampled):
    name = "sampled, unigram"

    def sampler(self, num_classes: int, counts: np.ndarray) -> Any:
        # A class the training text lacks (the unknown class, when every word fits) stays drawable.
        return UnigramSampler(np.maximum(counts, 1), distortion=UNIGRAM_DISTORTION)


class NCE(_Dense):
    """:func:`softmaxkit.nce_loss` against a unigram noise distribution (Mnih and Teh 2012).

    ``nce_loss`` takes every row of ``weights`` into autograd, which would
    make the gradient of ``weight`` a dense (V, H) tensor; so the rows of the
    labels and of the sample are first gathered with a sparse-gradient lookup
    and ``nce_loss`` runs on that small table, label ``i`` being row ``i`` and
    sampled class ``j`` row ``B + j``, with the expected counts of the real
    classes.
    """

    name = "NCE"

    def __init__(self, hidden: int, num_classes: int, counts: np.ndarray, seed: int) -> None:
        super().__init__(hidden, num_classes, counts, seed)
        self.sampler = UnigramSampler(np.maximum(counts, 1), distortion=UNIGRAM_DISTORTION)
        self.num_sampled = num_sampled(num_classes)
        self.rng = np.random.default_rng(seed)

    def loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        batch = int(y.shape[0])
        drawn = self.sampler.sample(self.num_sampled, true_classes=y.numpy(), rng=self.rng)
        rows = torch.cat([y, torch.from_numpy(drawn.sampled)])
        w = F.embedding(rows, self.weight, sparse=True)
        b = self.bias[rows]  # a dense (V,) gradient: small beside the rows of `weight`
        local = (
            np.arange(batch, batch + self.num_sampled),
            drawn.true_expected_count,
            drawn.sampled_expected_count,
        )
        return softmaxkit.nce_loss(
            w, b, torch.arange(batch), h, sampled_values=local, reduction="mean"
        )

    def settings(self) -> dict[str, Any]:
        return {"num_sampled": self.num_sampled, "sampler": repr(self.sampler)}


class Hierarchical(Method):
    name = "hierarchical (Huffman)"

    def __init__(self, hidden: int, num_classes: int, counts: np.ndarray, seed: int) -> None:
        super().__init__(hidden, num_classes, counts, seed)
        self.counts = np.maximum(counts, 1)
        self.layer = sk_torch.HierarchicalSoftmax(
            num_classes, hidden, counts=self.counts, sparse=True
        )

    def loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.layer(h, y)

    def log_prob(self, h: torch.Tensor) -> torch.Tensor:
        return self.layer.log_prob(h)

    def settings(self) -> dict[str, Any]:
        depths = np.asarray(huffman_tree(self.counts).depths, dtype=np.float64)
        return {
            "mean_depth_per_word": float(np.average(depths, weights=self.counts)),
            "max_depth": int(depths.max()),
        }


class Adaptive(Method):
    name = "adaptive"
    div_value = 4.0

    def __init__(self, hidden: int, num_classes: int, counts: np.ndarray, seed: int) -> None:
        super().__init__(hidden, num_classes, counts, seed)
        self.cutoffs = adaptive_cutoffs(num_classes)
        self.layer = sk_torch.AdaptiveSoftmax(
            hidden, num_classes, self.cutoffs, div_value=self.div_value
        )

    def loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.layer(h, y).loss

    def log_prob(self, h: torch.Tensor) -> torch.Tensor:
        return self.layer.log_prob(h)

    def settings(self) -> dict[str, Any]:
        return {"cutoffs": self.cutoffs, "div_value": self.div_value}


METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (
        FullSoftmax,
        LinearCrossEntropy,
        SampledLogUniform,
        SampledUnigram,
        NCE,
        Hierarchical,
        Adaptive,
    )
}
