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

ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor", "jax.Array")
"""A NumPy, PyTorch or JAX array; a function typed ``(x: ArrayT) -> ArrayT`` returns an array
of the library it was given (a 0-d one for a reduced loss).

Examples
--------
>>> ArrayT.__constraints__[0].__name__
'ndarray'
"""

Reduction = Literal["none", "mean", "sum"]
"""``reduction`` of every loss: per-example values, their (weighted) mean, or their sum.

Examples
--------
>>> from typing import get_args
>>> get_args(Reduction)
('none', 'mean', 'sum')
"""
Norm = Literal["l1", "l2", "max"]
"""``norm`` of :func:`softmaxkit.expected_calibration_error`.

Examples
--------
>>> from typing import get_args
>>> get_args(Norm)
('l1', 'l2', 'max')
"""
Init = Literal["he", "glorot"]
"""``init`` of :class:`softmaxkit.nn.Dense`: He normal or Glorot uniform.

Examples
--------
>>> from typing import get_args
>>> get_args(Init)
('he', 'glorot')
"""
Head = Literal["softmax", "logistic", "sampled", "sparsemax"]
"""``head`` of :class:`softmaxkit.Classifier`: the output layer and its loss.

Examples
--------
>>> from typing import get_args
>>> get_args(Head)
('softmax', 'logistic', 'sampled', 'sparsemax')
"""
Optimizer = Literal["adam", "sgd"]
"""``optimizer`` of :class:`softmaxkit.Classifier`.

Examples
--------
>>> from typing import get_args
>>> get_args(Optimizer)
('adam', 'sgd')
"""
Schedule = Literal["constant", "cosine"]
"""``lr_schedule`` of :class:`softmaxkit.Classifier`.

Examples
--------
>>> from typing import get_args
>>> get_args(Schedule)
('constant', 'cosine')
"""
Auto = Literal["auto"]
"""The value that asks :class:`softmaxkit.Classifier` to choose a setting itself.

Examples
--------
>>> from typing import get_args
>>> get_args(Auto)
('auto',)
"""
ClassWeight = Literal["balanced"] | dict[Any, float] | None
"""``class_weight`` of :class:`softmaxkit.Classifier`: none, balanced, or label -> weight.

Examples
--------
>>> from typing import get_args
>>> get_args(get_args(ClassWeight)[0])
('balanced',)
"""
Seed = np.random.Generator | int | None
"""``rng`` of the samplers and the sampled losses: a Generator, an int seed, or None for fresh
entropy.

Examples
--------
>>> from typing import get_args
>>> np.random.Generator in get_args(Seed)
True
"""


class Sampler(Protocol):
    """What the sampled losses take as ``sampler``: the samplers of :mod:`softmaxkit.sampling`,
    or any object with their ``num_classes`` and ``sample``.

    Examples
    --------
    >>> from softmaxkit.sampling import LogUniformSampler
    >>> sampler: Sampler = LogUniformSampler(1000)
    >>> sampler.num_classes
    1000
    """

    @property
    def num_classes(self) -> int: ...

    def sample(
        self, num_sampled: int, /, *, true_classes: Any = None, rng: Any = None
    ) -> SampledValues: ...
