"""PyTorch module for in-batch softmax retrieval: :class:`InBatchSoftmaxLoss`.

Imports torch at its top; reached through :mod:`softmaxkit.torch` only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._backend import validate_temperature
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._frequency import FrequencyEstimator
from ._options import check_reduction
from ._retrieval import in_batch_softmax_loss
from ._typing import Reduction

__all__ = ["InBatchSoftmaxLoss"]


class InBatchSoftmaxLoss(nn.Module):
    r"""In-batch softmax loss of a two-tower model, optionally with its own frequency estimates.

    ``forward(queries, candidates, candidate_ids)`` is
    :func:`softmaxkit.in_batch_softmax_loss` with the settings stored here.
    With an ``estimator``, each forward pass in training mode first records
    ``candidate_ids`` in it (:meth:`FrequencyEstimator.update`) and then
    subtracts its ``log_q(candidate_ids)``; in eval mode the estimates are
    used but not updated.

    Parameters
    ----------
    temperature : float, default 1.0
    remove_accidental_hits : bool, default True
    symmetric : bool, default False
    reduction : {"mean", "sum", "none"}, default "mean"
        As in :func:`softmaxkit.in_batch_softmax_loss` (the same defaults).
    estimator : softmaxkit.sampling.FrequencyEstimator, optional
        Supplies ``log_q``; the module then needs ``candidate_ids`` and refuses
        a ``log_q`` of the caller's.  Its state travels in the module's
        ``state_dict`` (as tensors).

    Examples
    --------
    >>> import torch
    >>> from softmaxkit.sampling import FrequencyEstimator
    >>> from softmaxkit.torch import InBatchSoftmaxLoss
    >>> _ = torch.manual_seed(0)
    >>> loss_fn = InBatchSoftmaxLoss(temperature=0.1, estimator=FrequencyEstimator(2**16))
    >>> users = torch.randn(4, 8, requires_grad=True)
    >>> items, ids = torch.randn(4, 8), torch.tensor([10, 11, 10, 12])
    >>> loss_fn(users, items, ids).backward()
    >>> loss_fn.estimator.step
    0
    """

    def __init__(
        self,
        *,
        temperature: float = 1.0,
        remove_accidental_hits: bool = True,
        symmetric: bool = False,
        reduction: Reduction = "mean",
        estimator: FrequencyEstimator | None = None,
    ) -> None:
        super().__init__()
        if estimator is not None and not isinstance(estimator, FrequencyEstimator):
            raise SoftmaxkitTypeError(
                "`estimator` must be a softmaxkit.sampling.FrequencyEstimator or None; got "
                f"{type(estimator).__name__}"
            )
        self.temperature = validate_temperature(temperature)
        self.remove_accidental_hits = bool(remove_accidental_hits)
        self.symmetric = bool(symmetric)
        self.reduction: Reduction = check_reduction(reduction)
        self.estimator = estimator

    def forward(
        self,
        queries: torch.Tensor,
        candidates: torch.Tensor,
        candidate_ids: torch.Tensor | None = None,
        *,
        log_q: torch.Tensor | None = None,
        extra_candidates: torch.Tensor | None = None,
        extra_ids: torch.Tensor | None = None,
        extra_log_q: torch.Tensor | None = None,
        step: int | None = None,
    ) -> torch.Tensor:
        """The loss.

        ``step`` is the step recorded in the estimator (default: its previous
        + 1); it has no use in eval mode, where the estimator is not updated.
        """
        if self.estimator is not None:
            if candidate_ids is None:
                raise SoftmaxkitValueError(
                    "`candidate_ids` is needed: the module's estimator estimates `log_q` from them"
                )
            if log_q is not None:
                raise SoftmaxkitValueError(
                    "`log_q` is given but the module's estimator supplies it; pass one or the other"
                )
            if self.training:
                self.estimator.update(candidate_ids, step)
            log_q = self.estimator.log_q(candidate_ids)
        elif step is not None:
            raise SoftmaxkitValueError("`step` is given but the module has no estimator to update")
        return in_batch_softmax_loss(
            queries,
            candidates,
            candidate_ids=candidate_ids,
            log_q=log_q,
            temperature=self.temperature,
            remove_accidental_hits=self.remove_accidental_hits,
            extra_candidates=extra_candidates,
            extra_ids=extra_ids,
            extra_log_q=extra_log_q,
            reduction=self.reduction,
            symmetric=self.symmetric,
        )

    def get_extra_state(self) -> dict[str, Any]:
        if self.estimator is None:
            return {}
        state = self.estimator.state_dict()
        for key in ("gap", "last", "seen", "count"):
            state[key] = torch.from_numpy(state[key])
        return {"estimator": state}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        saved = state.get("estimator")
        if saved is None:
            return
        if self.estimator is None:
            raise SoftmaxkitValueError(
                "the state holds a FrequencyEstimator but this module has none; build it with "
                "`estimator=FrequencyEstimator(...)` of the same size"
            )
        self.estimator.load_state_dict(saved)

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, remove_accidental_hits="
            f"{self.remove_accidental_hits}, symmetric={self.symmetric}, "
            f"reduction={self.reduction!r}, estimator={self.estimator!r}"
        )
