"""softmaxkit: the softmax family on NumPy, PyTorch and JAX arrays.

Stable, differentiable softmax, log-softmax and logsumexp with masks,
temperature and exact edge cases; their derivatives; PMF normalisation; the
logistic function.  Every function takes a NumPy, PyTorch or JAX array and
returns one of the same kind.
"""

from typing import TYPE_CHECKING

from ._adaptive import adaptive_log_softmax, adaptive_softmax_loss
from ._calibration import expected_calibration_error, fit_temperature, reliability_diagram
from ._candidate import nce_loss, sampled_logits, sampled_softmax_loss
from ._derivatives import log_softmax_backward, softmax_backward, softmax_jacobian
from ._errors import SoftmaxkitError, SoftmaxkitTypeError, SoftmaxkitValueError
from ._hierarchical import (
    hierarchical_log_softmax,
    hierarchical_softmax_loss,
    hierarchical_softmax_loss_grad,
)
from ._linear_ce import linear_cross_entropy, linear_cross_entropy_grad
from ._losses import (
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_grad,
    cross_entropy,
    cross_entropy_grad,
    nll_loss,
    nll_loss_grad,
)
from ._retrieval import in_batch_softmax_loss, in_batch_softmax_loss_grad
from ._softmax import log_sigmoid, log_softmax, logsumexp, pmf_normalize, sigmoid, softmax
from ._sparse import (
    entmax,
    entmax15,
    entmax_backward,
    entmax_loss,
    entmax_loss_grad,
    sparsemax,
    sparsemax_backward,
    sparsemax_loss,
    sparsemax_loss_grad,
)

if TYPE_CHECKING:
    from ._classifier import Classifier

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The classifier is built on scikit-learn: imported on first use, so that
    # `import softmaxkit` and the functions stay fast and work without it.
    if name == "Classifier":
        from ._classifier import Classifier

        return Classifier
    raise AttributeError(f"module 'softmaxkit' has no attribute {name!r}")


__all__ = [
    "Classifier",
    "SoftmaxkitError",
    "SoftmaxkitTypeError",
    "SoftmaxkitValueError",
    "adaptive_log_softmax",
    "adaptive_softmax_loss",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_grad",
    "cross_entropy",
    "cross_entropy_grad",
    "entmax",
    "entmax15",
    "entmax_backward",
    "entmax_loss",
    "entmax_loss_grad",
    "expected_calibration_error",
    "fit_temperature",
    "hierarchical_log_softmax",
    "hierarchical_softmax_loss",
    "hierarchical_softmax_loss_grad",
    "in_batch_softmax_loss",
    "in_batch_softmax_loss_grad",
    "linear_cross_entropy",
    "linear_cross_entropy_grad",
    "log_sigmoid",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "nce_loss",
    "nll_loss",
    "nll_loss_grad",
    "pmf_normalize",
    "reliability_diagram",
    "sampled_logits",
    "sampled_softmax_loss",
    "sigmoid",
    "softmax",
    "softmax_backward",
    "softmax_jacobian",
    "sparsemax",
    "sparsemax_backward",
    "sparsemax_loss",
    "sparsemax_loss_grad",
]
