"""``softmaxkit.typing``: the types in softmaxkit's signatures, for code that passes them on.

``ArrayT`` is the type variable of every array function (a NumPy ``ndarray``, a
``torch.Tensor`` or a ``jax.Array``; the result is of the library it was given), and
each alias is the ``Literal`` of one option's strings, so that a wrapper can forward
an option without widening it to ``str``:

>>> import numpy as np
>>> import softmaxkit as sk
>>> from softmaxkit.typing import ArrayT, Reduction
>>> def smoothed_loss(logits: ArrayT, target: ArrayT, reduction: Reduction = "mean") -> ArrayT:
...     return sk.cross_entropy(logits, target, reduction=reduction, label_smoothing=0.1)
>>> smoothed_loss(np.array([[2.0, 1.0, 0.1]]), np.array([0]), "none").round(4)
array([0.5137])

Importing this module imports neither PyTorch nor JAX.
"""

from ._typing import (
    ArrayT,
    Auto,
    ClassWeight,
    Head,
    Init,
    Norm,
    Optimizer,
    Reduction,
    Sampler,
    Schedule,
    Seed,
)

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
