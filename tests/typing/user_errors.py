"""Mistakes ``mypy --strict`` must flag: each line marked ``# error: CODE`` must be
reported with that error code, and no other line may be.  Never run (the calls
would raise); tests/test_typing.py only type-checks it.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import torch

import softmaxkit as sk
from softmaxkit.nn import Dense


def mistakes() -> None:
    x = np.array([[2.0, 1.0, 0.1]])
    t = torch.tensor([[2.0, 1.0, 0.1]])
    y = np.array([0])
    sk.cross_entropy(x, y, reduction="avg")  # error: arg-type
    n: int = sk.log_softmax(t)  # error: assignment
    f: float = sk.cross_entropy(x, y)  # error: assignment
    a: np.ndarray = sk.softmax(t)  # error: arg-type
    b: torch.Tensor = sk.softmax(jnp.array([1.0]))  # error: assignment
    sk.cross_entropy(t, y)  # error: type-var
    sk.softmax([1.0, 2.0])  # error: type-var
    sk.expected_calibration_error(x, y, norm="l3")  # error: arg-type
    sk.nce_loss(x, None, y, x, num_sampled=1, rng="seed")  # error: arg-type
    Dense(2, 3, init="xavier")  # error: arg-type
    sk.Classifier(head="softmx")  # error: arg-type
    sk.Classifier(epochs="many")  # error: arg-type
    loss, grad = sk.cross_entropy_grad(t, torch.tensor([0]))
    grad.no_such_method()  # error: attr-defined
    print(n, f, a, b, loss)
