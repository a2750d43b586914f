"""Streaming estimates of how often each id is sampled, from hashed gap statistics.

Yi et al. (RecSys 2019, Algorithm 2): an id that occurs on average once every
``delta`` steps has a per-step sampling rate ``1 / delta``, so it suffices to
track, per hash bucket, the step ``B`` it was last seen and a moving average
``A`` of the gaps between its occurrences:

    A[h(y)] <- (1 - alpha) * A[h(y)] + alpha * (t - B[h(y)]);   B[h(y)] <- t
    q(y)    =  1 / A[h(y)]

No vocabulary is needed (ids of any integer range are hashed into
``num_buckets``), the state is a few arrays of ``num_buckets`` per hash, and each
step costs O(batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, overload

import array_api_compat
import numpy as np

from ._backend import is_numpy, namespace, to_numpy
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._options import check_count
from ._typing import ArrayT

__all__ = ["FrequencyEstimator"]

_GOLDEN = 0x9E3779B97F4A7C15


def _mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a bijection of uint64 whose output bits all depend on every input bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class FrequencyEstimator:
    r"""The streaming estimate of each id's sampling rate, for the log-q correction.

    Feed it the candidate ids of each training batch with :meth:`update`;
    :meth:`log_q` then gives ``log q(y)``, ``q(y)`` the expected number of
    occurrences of ``y`` per step (per batch), for
    :func:`softmaxkit.in_batch_softmax_loss`'s ``log_q``.

    Parameters
    ----------
    num_buckets : int
        Buckets per hash.  Ids in ``[0, num_buckets)`` never collide (the first
        hash is ``id mod num_buckets``); beyond, collisions make a bucket
        look more frequent than each of its ids.
    num_hashes : int, default 2
        Independent hash arrays.  The estimate takes the longest gap (smallest
        rate) over them: a collision only ever adds occurrences to a bucket,
        so the least collided bucket is the most accurate.  Hashes after the
        first are splitmix64 of the id (deterministic across processes).
    alpha : float in (0, 1], default 0.01
        The weight of a new gap in the moving average: about the last
        ``1 / alpha`` occurrences count.

    Notes
    -----
    At step ``t`` an id seen ``c`` times, last seen at step ``b``, contributes
    ``c`` occurrences with the step's elapsed gap ``t - b`` shared among them:
    ``A <- (1 - alpha)**c * A + (1 - (1 - alpha)**c) * (t - b) / c``.  With
    ``c = 1`` this is the paper's update; sharing keeps the estimate
    unbiased for ids seen several times per step (the paper's loop over the
    batch would give them gaps of 0 and weight them by order).

    Warm-up and initialisation, chosen so that a periodic stream is
    estimated exactly and a rare id is not stuck with its first gap: until a
    bucket has ``1 / alpha`` gaps behind it, the weight of new ones is
    ``c / (n + c)`` (``n`` the occurrences already averaged) whenever that is
    larger, so ``A`` is the plain mean of every gap seen so far, and the
    moving average takes over after (as Adam corrects its start-up bias).
    The first gap thus replaces the estimate, and an id that occurs once
    every ``k`` steps has ``q = 1 / k`` exactly from its second occurrence on.
    Before that an id seen at one step (``c`` times) has ``q = c / n``, ``n``
    the steps from the first update to that step, inclusive; an id never seen
    has ``q = 1 / (n + 1)`` with ``n`` the steps so far, and ``q = 1`` before
    any update.

    Steps must increase from one :meth:`update` to the next (they may skip:
    a step without an update is a step without occurrences).  The estimator
    is a plain object of NumPy arrays: it pickles, and :meth:`state_dict` /
    :meth:`load_state_dict` give its state as arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.sampling import FrequencyEstimator
    >>> est = FrequencyEstimator(1024)
    >>> for step in range(12):  # id 5 in every batch, 6 every 2nd, 7 every 3rd
    ...     est.update([5] + [6] * (step % 2 == 0) + [7] * (step % 3 == 0), step)
    >>> np.exp(est.log_q([5, 6, 7])).round(4).tolist()
    [1.0, 0.5, 0.3333]
    """

    def __init__(self, num_buckets: int, *, num_hashes: int = 2, alpha: float = 0.01) -> None:
        self.num_buckets = check_count(num_buckets, "num_buckets", 1)
        self.num_hashes = check_count(num_hashes, "num_hashes", 1)
        try:
            if isinstance(alpha, (bool, np.bool_)):
                raise TypeError
            a = float(alpha)
        except (TypeError, ValueError):
            raise SoftmaxkitTypeError(
                f"`alpha` must be a number in (0, 1]; got {alpha!r}"
            ) from None
        if not 0.0 < a <= 1.0:
            raise SoftmaxkitValueError(f"`alpha` must be in (0, 1]; got {a!r}")
        self.alpha = a
        shape = (self.num_hashes, self.num_buckets)
        self._gap: np.ndarray = np.ones(shape)  # A: moving average of the gap, in steps
        self._last: np.ndarray = np.zeros(shape, dtype=np.int64)  # B: the step last seen
        self._seen: np.ndarray = np.zeros(shape, dtype=bool)
        self._count: np.ndarray = np.zeros(shape)  # occurrences averaged into A
        self._first_step: int | None = None
        self._step: int | None = None

    @property
    def step(self) -> int | None:
        """The step of the last :meth:`update`; None before the first."""
        return self._step

    def _ids(self, ids: Any) -> np.ndarray:
        """``ids`` as their uint64 bit patterns (negative int64 ids wrap, and stay distinct)."""
        a = np.asarray(ids) if isinstance(ids, (list, tuple, int)) else to_numpy(ids)
        if a.dtype.kind not in "iu":
            if a.size == 0 and a.dtype.kind == "f":  # [] comes in as float64
                a = a.astype(np.int64)
            else:
                raise SoftmaxkitTypeError(f"`ids` must hold integer ids; got dtype {a.dtype}")
        if a.dtype != np.uint64:
            a = a.astype(np.int64)
        return a.astype(np.uint64, copy=False) if a.dtype == np.uint64 else a.view(np.uint64)

    def _buckets(self, ids: np.ndarray) -> np.ndarray:
        """(num_hashes, *ids.shape) bucket indices."""
        shape = ids.shape
        ids = ids.reshape(-1)  # arrays wrap silently where NumPy scalars would warn
        n = np.uint64(self.num_buckets)
        out = np.empty((self.num_hashes, ids.size), dtype=np.int64)
        out[0] = ids % n
        for h in range(1, self.num_hashes):
            # Python ints, reduced by hand: NumPy warns when a uint64 scalar wraps.
            seed = np.uint64((h * _GOLDEN) % 2**64)
            out[h] = _mix(ids + seed) % n
        return out.reshape(self.num_hashes, *shape)

    def update(self, ids: Any, step: int | None = None) -> None:
        """Record the ids sampled at ``step`` (all of one batch, repeats counted).

        Parameters
        ----------
        ids : int array of any shape (NumPy, PyTorch, JAX, or a list)
            The ids of this step's candidates, any integer range.
        step : int, optional
            The training step; larger than at the previous update.  Default:
            the previous step + 1 (0 at the first update).
        """
        if step is None:
            t = 0 if self._step is None else self._step + 1
        else:
            t = check_count(step, "step", -(2**62))
            if self._step is not None and t <= self._step:
                raise SoftmaxkitValueError(
                    f"`step` must be larger than the previous update's {self._step}; got {t} "
                    "(pass all of one step's ids in one update)"
                )
        flat = self._ids(ids).reshape(-1)
        if self._first_step is None:
            self._first_step = t
        self._step = t
        if flat.size == 0:
            return
        elapsed_start = t - self._first_step + 1
        for h, buckets in enumerate(self._buckets(flat)):
            cells, counts = np.unique(buckets, return_counts=True)
            c = counts.astype(np.float64)
            gap, last, seen_before, count = (
                self._gap[h],
                self._last[h],
                self._seen[h],
                self._count[h],
            )
            seen, n = seen_before[cells], count[cells]
            seen_gap = (t - last[cells]) / c
            # The moving average's weight for c occurrences, or the running mean's while
            # that is larger (n = 0: the first gap replaces the provisional estimate).
            weight = -np.expm1(c * math.log1p(-self.alpha)) if self.alpha < 1 else np.ones_like(c)
            weight = np.maximum(weight, c / (n + c))
            averaged = gap[cells] + weight * (seen_gap - gap[cells])
            gap[cells] = np.where(seen, averaged, elapsed_start / c)
            count[cells] = np.where(seen, n + c, 0.0)
            seen_before[cells] = True
            last[cells] = t

    def _gaps(self, ids: Any) -> np.ndarray:
        flat = self._ids(ids)
        if self._step is None:
            return np.ones(flat.shape)
        unseen_gap = float(self._step - self._first_step + 2)  # type: ignore[operator]
        buckets = self._buckets(flat)
        rows = np.arange(self.num_hashes).reshape((-1,) + (1,) * flat.ndim)
        gaps = np.where(self._seen[rows, buckets], self._gap[rows, buckets], unseen_gap)
        return gaps.max(axis=0)

    @overload
    def log_q(self, ids: ArrayT) -> ArrayT: ...
    @overload
    def log_q(self, ids: Sequence[Any] | int) -> np.ndarray: ...
    def log_q(self, ids: Any) -> Any:
        """``log q(y)`` for each id: the log of its expected occurrences per step.

        Returns an array of the shape of ``ids``, float64, of the library of
        ``ids`` (NumPy for lists).  Reading does not change the state.
        """
        out = 0.0 - np.log(self._gaps(ids))  # 0.0 - : no -0.0 for q = 1
        if is_numpy(ids) or isinstance(ids, (list, tuple, int)):
            return out
        xp = namespace(ids)
        return xp.asarray(out, device=array_api_compat.device(ids))

    def state_dict(self) -> dict[str, Any]:
        """The settings and state as NumPy arrays and ints (for checkpoints)."""
        return {
            "num_buckets": self.num_buckets,
            "num_hashes": self.num_hashes,
            "alpha": self.alpha,
            "gap": self._gap.copy(),
            "last": self._last.copy(),
            "seen": self._seen.copy(),
            "count": self._count.copy(),
            "first_step": self._first_step,
            "step": self._step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (settings must match)."""
        for key in ("num_buckets", "num_hashes"):
            if int(state[key]) != getattr(self, key):
                raise SoftmaxkitValueError(
                    f"`state` holds {key}={int(state[key])} but this estimator has "
                    f"{getattr(self, key)}"
                )
        shape = (self.num_hashes, self.num_buckets)
        self.alpha = float(state["alpha"])
        self._gap = np.array(to_numpy(state["gap"]), dtype=np.float64).reshape(shape)
        self._last = np.array(to_numpy(state["last"]), dtype=np.int64).reshape(shape)
        self._seen = np.array(to_numpy(state["seen"]), dtype=bool).reshape(shape)
        self._count = np.array(to_numpy(state["count"]), dtype=np.float64).reshape(shape)
        first, step = state["first_step"], state["step"]
        self._first_step = None if first is None else int(first)
        self._step = None if step is None else int(step)

    def __repr__(self) -> str:
        return (
            f"FrequencyEstimator({self.num_buckets}, num_hashes={self.num_hashes}, "
            f"alpha={self.alpha}, step={self._step})"
        )
