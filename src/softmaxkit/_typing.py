"""The types of softmaxkit's public signatures: the array type variable and the option strings.

Low in the import graph (only NumPy at run time): PyTorch and JAX are imported for the
type checker alone, so importing this module never imports a framework.  ``ArrayT`` is
*constrained*, not bound: ``softmax`` of an ``NDArray[int64]`` is an ``ndarray`` of
floats and ``softmax`` of a ``torch.nn.Parameter`` is a plain ``Tensor``, so the
result is the library's array type, not the exact type that came in.  The
``Literal`` aliases name the strings each option's validator accepts; tests check
that they list the same strings as the validators.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import numpy as np

if TYPE_CHECKING:
    import jax
    import torch

    from .sampling import SampledValues

__all__ = [
    "ArrayT",
    "Auto",
    "ClassWeight",
    "Head",
    "Init",
    "Norm",
    "Optimizer",
    "Reduction",
    "Sampler",
    "Schedule",
    "Seed",
]

#: A NumPy, PyTorch or JAX array; a function typed ``(x: ArrayT) -> ArrayT`` returns an
#: array of the library it was given (a 0-d one for a reduced loss).
ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor", "jax.Array")

#: ``reduction`` of every loss: per-example values, their (weighted) mean, or their sum.
Reduction = Literal["none", "mean", "sum"]
#: ``norm`` of :func:`softmaxkit.expected_calibration_error`.
Norm = Literal["l1", "l2", "max"]
#: ``init`` of :class:`softmaxkit.nn.Dense`: He normal or Glorot uniform.
Init = Literal["he", "glorot"]
#: ``head`` of :class:`softmaxkit.Classifier`: the output layer and its loss.
Head = Literal["softmax", "logistic", "sampled", "sparsemax"]
#: ``optimizer`` of :class:`softmaxkit.Classifier`.
Optimizer = Literal["adam", "sgd"]
#: ``lr_schedule`` of :class:`softmaxkit.Classifier`.
Schedule = Literal["constant", "cosine"]
#: The value that asks :class:`softmaxkit.Classifier` to choose a setting itself.
Auto = Literal["auto"]
#: ``class_weight`` of :class:`softmaxkit.Classifier`: none, balanced, or label -> weight.
ClassWeight = Literal["balanced"] | dict[Any, float] | None
#: ``rng`` of the samplers and the sampled losses: a Generator, an int seed, or None for fresh
#: entropy.
Seed = np.random.Generator | int | None


class Sampler(Protocol):
    """What the sampled losses take as ``sampler``: the samplers of :mod:`softmaxkit.sampling`,
    or any object with their ``num_classes`` and ``sample``."""

    @property
    def num_classes(self) -> int: ...

    def sample(
        self, num_sampled: int, /, *, true_classes: Any = None, rng: Any = None
    ) -> SampledValues: ...
