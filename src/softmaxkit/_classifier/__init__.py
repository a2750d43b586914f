"""The classifier: a scikit-learn estimator with a softmax (or logistic) output layer.

* :mod:`._estimator`: ``Classifier`` itself (settings, fit, partial_fit, predict);
* :mod:`._heads`: how each output layer is trained and read;
* :mod:`._training`: the network, the optimiser, one epoch, the early-stopping split;
* :mod:`._validation`: the checks of ``X`` and the (weighted) feature statistics;
* :mod:`._settings`: the settings' defaults and checks;
* :mod:`._persistence`: the model file (``save`` and ``load``);

what ``verbose=True`` shows is :mod:`softmaxkit._progress` (shared with the command line).

Importing this package imports scikit-learn; ``import softmaxkit`` does not (it
imports ``Classifier`` on first use).
"""

from ._estimator import Classifier

__all__ = ["Classifier"]
