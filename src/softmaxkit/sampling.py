"""Candidate samplers for sampled softmax and NCE, with TensorFlow's semantics.

A sampler draws a set of negative classes from a base distribution ``P`` over
``[0, num_classes)`` and reports how often each class is *expected* to appear
in such a draw, the ``Q`` that :func:`softmaxkit.sampled_softmax_loss`
subtracts (as ``log Q``) to keep its estimate consistent:

* :class:`UniformSampler`: ``P(k) = 1 / num_classes``;
* :class:`LogUniformSampler`: ``P(k) = (log(k + 2) - log(k + 1)) / log(num_classes + 1)``,
  Zipf's law for classes sorted by falling frequency (words in a vocabulary);
* :class:`UnigramSampler`: ``P(k) ∝ counts[k] ** distortion``, O(1) per draw
  by Walker's alias method.

The binary trees of the hierarchical softmax live here too (:func:`huffman_tree`,
:func:`balanced_tree`): like a sampler, a tree is built once from the class
counts, in NumPy, and read by the loss.

Samplers run on NumPy whatever array library the loss receives: drawing a few
thousand integers costs microseconds, and NumPy's generator makes results
reproducible everywhere from one seed.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ._backend import to_numpy
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._frequency import FrequencyEstimator
from ._options import check_count as _count
from ._options import check_counts, check_flag
from ._softmax import softmax
from ._trees import Tree, balanced_tree, huffman_tree
from ._typing import Seed

__all__ = [
    "FrequencyEstimator",
    "LogUniformSampler",
    "SampledValues",
    "Tree",
    "UniformSampler",
    "UnigramSampler",
    "balanced_tree",
    "huffman_tree",
]


class SampledValues(NamedTuple):
    """What a sampler returns, and what the sampled losses accept as ``sampled_values``.

    Attributes
    ----------
    sampled : ndarray of int64, shape (num_sampled,)
        The sampled classes, in the order they were first drawn.
    true_expected_count : ndarray of float64, the shape of ``true_classes``, or None
        ``Q`` of each true class; None when no ``true_classes`` were given.
    sampled_expected_count : ndarray of float64, shape (num_sampled,)
        ``Q`` of each sampled class.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.sampling import UniformSampler
    >>> values = UniformSampler(10).sample(3, true_classes=np.array([1]), rng=0)
    >>> values.sampled.shape, values.true_expected_count.shape, values.sampled_expected_count.shape
    ((3,), (1,), (3,))
    >>> sampled, true_expected_count, sampled_expected_count = values  # a tuple too
    """

    sampled: np.ndarray
    true_expected_count: np.ndarray | None
    sampled_expected_count: np.ndarray


def as_generator(rng: Any) -> np.random.Generator:
    """``rng`` as a NumPy Generator: an int seeds a fresh one, None draws fresh entropy."""
    if rng is None or isinstance(rng, np.random.Generator):
        return np.random.default_rng(rng)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        if rng < 0:
            raise SoftmaxkitValueError(f"`rng` as a seed must be >= 0; got {rng}")
        return np.random.default_rng(int(rng))
    raise SoftmaxkitTypeError(
        f"`rng` must be a numpy.random.Generator, an int seed or None; got {type(rng).__name__}"
    )


def _real(value: Any, name: str) -> float:
    """``value`` as a finite float; NumPy scalars count, bools, strings and None do not."""
    if not isinstance(value, (bool, np.bool_, str, bytes)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            pass
        else:
            if not math.isfinite(number):
                raise SoftmaxkitValueError(f"`{name}` must be finite; got {value!r}")
            return number
    raise SoftmaxkitTypeError(f"`{name}` must be a real number; got {value!r}")


# The largest number of classes each sampler can index: class ids are int64, and
# the log-uniform draw is computed in float64, where every integer up to 2**53 is exact.
_MAX_CLASSES = 2**63 - 1
_MAX_LOG_UNIFORM_CLASSES = 2**53


def expected_count(p: np.ndarray, num_sampled: int, num_tries: float, unique: bool) -> np.ndarray:
    """How often a class of probability ``p`` is expected in a sample.

    With replacement: ``p * num_sampled``.  Without (``unique``): the chance
    that the class came up in ``num_tries`` draws, ``1 - (1 - p) ** num_tries``,
    computed as ``-expm1(num_tries * log1p(-p))`` so that it stays exact for
    tiny ``p`` (where ``1 - p`` rounds to 1).
    """
    if not unique:
        return p * num_sampled
    with np.errstate(divide="ignore", invalid="ignore"):
        # log1p(-1) = -inf is meant: such a class is certain.  A class of
        # probability 0 is never drawn, however many tries (inf * 0 would be NaN).
        return np.where(p > 0, -np.expm1(num_tries * np.log1p(-p)), 0.0)


class _Sampler:
    """Shared machinery: argument checks, the unique-draw loop, expected counts."""

    num_classes: int
    _support: int  # classes of non-zero probability, as drawn

    # The unique draw switches from rejection to the exact method once it has
    # made this many draws per class asked for (rejection takes about 2 for a
    # log-uniform sample of 1% of 10**6 classes, 9 for all of 10**4 uniform ones).
    _REJECTION_DRAWS_PER_CLASS = 16

    def _probability(self, classes: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _classes(self, classes: Any, name: str) -> np.ndarray:
        a = (
            to_numpy(classes)
            if not isinstance(classes, (list, tuple, int))
            else np.asarray(classes)
        )
        if a.dtype.kind not in "iu":
            raise SoftmaxkitTypeError(f"`{name}` must hold integer classes; got dtype {a.dtype}")
        bad = (a < 0) | (a >= self.num_classes)
        if bad.any():
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise SoftmaxkitValueError(
                f"`{name}` must be in [0, {self.num_classes}); position {pos} holds {a[pos].item()}"
            )
        return a.astype(np.int64)

    def probability(self, classes: Any, /) -> np.ndarray:
        """``P(k)`` of a single draw, for each class in ``classes`` (any shape)."""
        return self._probability(self._classes(classes, "classes"))

    def sample(
        self,
        num_sampled: int,
        /,
        *,
        true_classes: Any = None,
        unique: bool = True,
        rng: Seed = None,
    ) -> SampledValues:
        """Draw ``num_sampled`` classes and their expected counts.

        Parameters
        ----------
        num_sampled : int
            How many classes to return.
        true_classes : int array of any shape, optional
            Classes whose expected count is wanted too (the labels of a batch).
        unique : bool, default True
            Draw until ``num_sampled`` distinct classes have come up (TensorFlow's
            rejection of repeats); ``num_tries`` is the number of draws that
            took.  When rare classes would make that take too long, the
            sample is completed exactly instead (the same distribution of
            classes and of ``num_tries``), so a draw always ends.  With False
            the draws are independent and may repeat.
        rng : numpy.random.Generator, int seed or None
            The same seed gives the same sample.

        Returns
        -------
        SampledValues
            ``(sampled, true_expected_count, sampled_expected_count)``; an
            expected count is ``P(k) * num_sampled`` with ``unique=False`` and
            ``1 - (1 - P(k)) ** num_tries`` with ``unique=True``.  (TensorFlow
            uses ``P(k) * num_sampled`` also when ``unique=True`` happened to
            draw no repeat; the formula here is the inclusion probability in
            both cases.)

        Raises
        ------
        SoftmaxkitValueError
            With ``unique=True``, when ``num_sampled`` exceeds the number of
            classes that can be drawn (those of non-zero probability, after
            any underflow); and when ``num_sampled`` classes do not fit in memory.
        """
        n = _count(num_sampled, "num_sampled", 1)
        unique = check_flag(unique, "unique")
        if unique and n > self._support:
            raise SoftmaxkitValueError(
                f"`num_sampled` must be <= {self._support}, the number of classes that can be "
                f"drawn, with `unique=True`; got {n}"
            )
        gen = as_generator(rng)
        true = None if true_classes is None else self._classes(true_classes, "true_classes")
        try:
            if unique:
                sampled, num_tries = self._draw_unique(n, gen)
            else:
                sampled, num_tries = self._draw(n, gen), n
            sampled_count = expected_count(self._probability(sampled), n, num_tries, unique)
        except (MemoryError, ValueError) as exc:
            if not isinstance(exc, MemoryError) and "exceeded" not in str(exc):
                raise
            # (NumPy says "Maximum allowed dimension exceeded" past 2**63 bytes)
            raise SoftmaxkitValueError(
                f"`num_sampled` is too large: {n} sampled classes do not fit in memory"
            ) from None
        true_count = (
            None if true is None else expected_count(self._probability(true), n, num_tries, unique)
        )
        return SampledValues(sampled, true_count, sampled_count)

    def _draw_unique(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """The first ``n`` distinct classes of a stream of draws, and the draws they took.

        Rejection first: draw, keep the classes not seen yet, draw again.  When
        the last classes are rare that never ends in practice (a class of
        probability 1e-36 is one draw in 1e36), so past a budget of draws the
        rest is completed exactly by :meth:`_complete`, which gives the same
        distribution of classes and of the number of draws.
        """
        found = np.empty(0, dtype=np.int64)
        tries = 0
        size = n
        budget = self._rejection_budget(n)
        while True:
            draws = self._draw(size, rng)
            classes, first = np.unique(draws, return_index=True)
            new = np.sort(first[~np.isin(classes, found, assume_unique=True)])
            need = n - found.size
            if new.size >= need:
                positions = new[:need]
                return np.concatenate([found, draws[positions]]), tries + int(positions[-1]) + 1
            found = np.concatenate([found, draws[new]])
            tries += size
            # The exact method costs O(num_classes): take it once that is no
            # more than the draws made so far.
            if tries >= budget and self.num_classes <= 4 * tries:
                return self._complete(found, n, tries, rng)
            # Doubling keeps the number of rounds logarithmic (the same sizes
            # as one growing stream: n, n, 2n, 4n, ...).
            size = tries

    def _rejection_budget(self, n: int) -> int:
        return self._REJECTION_DRAWS_PER_CLASS * n + 1024

    def _complete(
        self, found: np.ndarray, n: int, tries: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, float]:
        """``found`` extended to ``n`` distinct classes as the stream of draws would.

        The next new class of the stream is class ``k`` with probability
        ``P(k) / R``, ``R`` the mass of the classes not found yet, after a
        geometric number of draws of success probability ``R``.  The first are
        successive sampling without replacement, which the Gumbel-top-k trick
        gives in one pass (the order of ``log P(k) + Gumbel`` is the order of
        first appearance).
        """
        p = self._probability(np.arange(self.num_classes, dtype=np.int64))
        p[found] = 0.0
        left = np.flatnonzero(p > 0)
        m = n - found.size
        with np.errstate(divide="ignore"):
            keys = np.log(p[left]) + rng.gumbel(size=left.size)
        top = np.argpartition(-keys, m - 1)[:m] if m < left.size else np.arange(left.size)
        picked = left[top[np.argsort(-keys[top], kind="stable")]]
        mass = p[picked]
        unpicked = p[left].sum() - mass.sum()
        # R before each pick: the unpicked mass plus that of the picks still to come.
        remaining = np.maximum(unpicked, 0.0) + np.cumsum(mass[::-1])[::-1]
        u = 1.0 - rng.random(m)  # in (0, 1]
        with np.errstate(divide="ignore"):
            waits = np.maximum(1.0, np.ceil(np.log(u) / np.log1p(-np.minimum(remaining, 1.0))))
        return np.concatenate([found, picked]), tries + float(waits.sum())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_classes})"


class UniformSampler(_Sampler):
    """Every class equally likely: ``P(k) = 1 / num_classes``.

    Examples
    --------
    >>> from softmaxkit.sampling import UniformSampler
    >>> sampler = UniformSampler(4)
    >>> float(sampler.probability([0])[0])
    0.25
    >>> sorted(sampler.sample(4, rng=0).sampled.tolist())  # unique: every class once
    [0, 1, 2, 3]
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = _count(num_classes, "num_classes", 1, _MAX_CLASSES)
        self._support = self.num_classes

    def _probability(self, classes: np.ndarray) -> np.ndarray:
        return np.full(classes.shape, 1.0 / self.num_classes)

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, self.num_classes, size=n, dtype=np.int64)


class LogUniformSampler(_Sampler):
    """Zipf's law: ``P(k) = (log(k + 2) - log(k + 1)) / log(num_classes + 1)``.

    Class 0 is the most likely; use it when classes are numbered by falling
    frequency, as words in a vocabulary usually are.  A draw is
    ``floor(exp(u * log(num_classes + 1))) - 1`` for uniform ``u`` in [0, 1).

    Examples
    --------
    >>> from softmaxkit.sampling import LogUniformSampler
    >>> sampler = LogUniformSampler(10)
    >>> sampler.probability([0, 1, 9]).round(4).tolist()
    [0.2891, 0.1691, 0.0397]
    >>> values = sampler.sample(3, true_classes=[[0], [5]], rng=7)
    >>> values.true_expected_count.shape
    (2, 1)
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = _count(num_classes, "num_classes", 1, _MAX_LOG_UNIFORM_CLASSES)
        self._support = self.num_classes
        self._log_range = math.log(self.num_classes + 1)

    def _probability(self, classes: np.ndarray) -> np.ndarray:
        # log((k + 2) / (k + 1)) = log1p(1 / (k + 1)), exact for large k.
        return np.log1p(1.0 / (classes + 1.0)) / self._log_range

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = np.floor(np.exp(rng.random(n) * self._log_range)).astype(np.int64) - 1
        # exp may round up to exactly num_classes + 1 for u just below 1.
        return np.minimum(k, self.num_classes - 1)


def _alias_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table (Vose's construction): ``(keep, alias)`` for probabilities ``p``.

    A draw picks a cell ``i`` uniformly and returns ``i`` with probability
    ``keep[i]``, else ``alias[i]``.  Cells of zero probability have ``keep``
    0 and an alias of positive probability, so they are never returned.
    """
    n = p.size
    scaled = p * n
    keep = np.zeros(n)
    alias = np.arange(n, dtype=np.int64)
    small = [int(i) for i in np.flatnonzero(scaled < 1.0)]
    large = [int(i) for i in np.flatnonzero(scaled >= 1.0)]
    mass = scaled.tolist()
    while small and large:
        s, g = small.pop(), large[-1]
        keep[s] = mass[s]
        alias[s] = g
        mass[g] -= 1.0 - mass[s]
        if mass[g] < 1.0:
            small.append(large.pop())
    # What is left over is 1 up to rounding.  A zero-probability cell left over
    # (rounding emptied the large list early) must still never be returned.
    fallback = int(np.argmax(p))
    for i in large + small:
        if p[i] > 0:
            keep[i] = 1.0
        else:
            keep[i], alias[i] = 0.0, fallback
    return keep, alias


class UnigramSampler(_Sampler):
    """Classes drawn in proportion to ``counts[k] ** distortion``, by the alias method.

    Parameters
    ----------
    counts : array of shape (num_classes,)
        Non-negative, finite, not all zero (how often each class occurs in the
        training data).  A class of count 0 is never drawn.
    distortion : float, default 1.0
        The exponent; 0.75 gives word2vec's negative-sampling distribution,
        0 the uniform distribution over the classes of positive count.

    Notes
    -----
    Building the alias table costs O(num_classes) once; each draw then costs
    O(1): one uniform cell index and one uniform number.

    Examples
    --------
    >>> from softmaxkit.sampling import UnigramSampler
    >>> sampler = UnigramSampler([100, 300, 600, 0])  # bicycles, trucks, cars, boats
    >>> sampler.probability([0, 1, 2, 3]).round(4).tolist()
    [0.1, 0.3, 0.6, 0.0]
    >>> 3 in sampler.sample(500, unique=False, rng=0).sampled
    False
    """

    def __init__(self, counts: Any, /, *, distortion: float = 1.0) -> None:
        c = check_counts(counts)
        positive = c > 0
        if not positive.any():
            raise SoftmaxkitValueError("`counts` must not be all zero; no class could be drawn")
        d = _real(distortion, "distortion")
        self.num_classes = c.size
        self.distortion = d
        # In log space, so that large counts with distortion > 1 cannot overflow;
        # shifted first so that the heaviest class has log-weight 0 and the others
        # fall towards -inf, never +inf (inf - inf in the softmax would tie them).
        log_count = np.log(np.where(positive, c, 1.0))
        heaviest = log_count[positive].max() if d > 0 else log_count[positive].min()
        with np.errstate(over="ignore"):
            log_weight = d * (log_count - heaviest)
        self._p = np.asarray(softmax(log_weight, where=positive))
        # Counted from the probabilities drawn with, not from the counts: a
        # positive count can still underflow to probability 0 (1 against 1e10
        # with distortion 100 is 1e-1000), and such a class is never drawn.
        self._support = int(np.count_nonzero(self._p))
        self._keep, self._alias = _alias_table(self._p)

    def _probability(self, classes: np.ndarray) -> np.ndarray:
        return self._p[classes]

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        cell = rng.integers(0, self.num_classes, size=n, dtype=np.int64)
        return np.where(rng.random(n) < self._keep[cell], cell, self._alias[cell])

    def __repr__(self) -> str:
        return f"UnigramSampler(<{self.num_classes} counts>, distortion={self.distortion})"
