"""``softmaxkit.nn``: a small NumPy network whose chain rule can be read off the code.

Layers (batch-first, each with ``forward`` and ``backward``), losses fused with
their heads, optimizers and initialisers.  :class:`softmaxkit.Classifier`
builds on them.
"""

from ._init import glorot_uniform, he_normal
from ._layers import Dense, Dropout, Layer, Logistic, ReLU, Sequential, Softmax
from ._losses import LogisticCrossEntropy, SoftmaxCrossEntropy
from ._optim import SGD, Adam

__all__ = [
    "SGD",
    "Adam",
    "Dense",
    "Dropout",
    "Layer",
    "Logistic",
    "LogisticCrossEntropy",
    "ReLU",
    "Sequential",
    "Softmax",
    "SoftmaxCrossEntropy",
    "glorot_uniform",
    "he_normal",
]
