"""The JAX backend's lean XLA graphs: what JAX arrays run where no kernel of ours does.

On a GPU or TPU (and on CPU with the kernels switched off) the JAX backend computes
with these ``jax.numpy`` formulas instead of the custom calls.  They have the kernels'
semantics (``+inf`` entries share the mass, an all ``-inf`` slice gives zeros and
``-inf``, NaN fills its own slice, log-probabilities near 0 keep their relative
accuracy) in as few passes over memory as the computation needs when every slice max
is finite, and the edge cases cost only selects on the output.

Why the formulas look as they do: XLA (on CPU, its YNNPACK fusions) turns
``max``-then-``sum(exp(x - max))`` into fast library loops, but a select or a second
reduction in the same loop makes it fall back to a generic one, several times slower.
So every reduction here is a single sum or max of arithmetic (``exp``, ``min``, ``abs``,
products), and the selects come after, on the per-slice results or on the output:

* ``softmax``: ``max``, ``sum(exp(z))``, the output, one select for slices whose max is
  infinite.  The count of ``+inf`` entries those slices need runs under a
  ``lax.cond``, only when such a slice exists.
* ``log_softmax`` and ``logsumexp``: ``log(sum(exp(z)))`` as ``log1p`` of the terms
  other than one max's ``exp(0) = 1``.  Which entry is left out is a position: one more
  max pass finds the last position holding the max, as ``max(j + z * 2**a * 2**b)``
  (0 at a max, far below 0 elsewhere, even for the smallest difference of two floats),
  and the sum multiplies each term by ``min(|j - L|, 1)``.  By position, not by value:
  with ties the other maxima must still count.
* cross-entropy of class indices: the term left out is the target's (a position known
  in advance), which gives ``-log p`` of the target, accurate for a confident row,
  without the extra max pass; the gradient is one elementwise pass.

Slices longer than ``2**24`` (float32) take the portable path: positions are exact in
the dtype only that far.  Everything is over axis 1 of ``(outer, n, inner)`` arrays
(forward, backward) or the last axis of ``(N, C)`` logits (cross-entropy), the layouts
of the custom calls, so the caller treats both implementations alike.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["MAX_POSITIONS", "cross_entropy", "forward"]

SOFTMAX, LOG_SOFTMAX, LOGSUMEXP = 0, 1, 2  # the kernels' op codes (_kernels_impl.h)

# positions must be exact in the dtype (float32's 24-bit significand)
MAX_POSITIONS = {np.dtype(np.float32): 1 << 24, np.dtype(np.float64): 1 << 53}

# (x - m) * A * B: 0 at a max; at least 2**-149 * 2**227 = 2**78 below it elsewhere in
# float32 (2**-1074 * 2**1127 = 2**53 in float64), far more than any position.  Two
# factors, each a normal number of the dtype (their product is not).
_SPREAD = {
    np.dtype(np.float32): (np.float32(2.0**100), np.float32(2.0**127)),
    np.dtype(np.float64): (np.float64(2.0**1000), np.float64(2.0**127)),
}


def _positions(x: Any, axis: int) -> Any:
    return jax.lax.broadcasted_iota(x.dtype, x.shape, axis)


def _last_max_position(x: Any, m: Any, axis: int) -> Any:
    """A position (float, exact) along ``axis`` where ``x`` equals its max ``m``, dims kept."""
    # behind a barrier, XLA cannot fold the two factors into their product (inf)
    a, b = jax.lax.optimization_barrier(_SPREAD[np.dtype(x.dtype)])
    return jnp.max(_positions(x, axis) + ((x - m) * a) * b, axis=axis, keepdims=True)


def _plus_inf_count(x: Any, m: Any, axis: int) -> Any:
    """The number of ``+inf`` entries of each slice whose max is ``+inf`` (1 elsewhere)."""

    def count(x: Any) -> Any:
        return jnp.sum((x == jnp.inf).astype(x.dtype), axis=axis, keepdims=True)

    return jax.lax.cond(jnp.any(m == jnp.inf), count, lambda x: jnp.ones_like(m), x)


def _edges(x: Any, m: Any, shares: Any, others: Any, finite: Any) -> Any:
    """``finite`` where the slice max is finite or NaN; else ``shares`` at the ``+inf``
    entries (slices with max ``+inf``) and ``others`` everywhere else."""
    return jnp.where(jnp.isinf(m), jnp.where(x == jnp.inf, shares, others), finite)


def forward(x: Any, t: float, op: int) -> Any:
    """softmax, log_softmax or logsumexp of ``x`` as (outer, n, inner) or (outer, n), over axis 1.

    The kernels' ``_forward``: same semantics, logsumexp with the reduced axis kept.
    Not differentiable by itself (the caller's ``custom_jvp`` gives the tangents).
    """
    m = jnp.max(x, axis=1, keepdims=True)
    k = _plus_inf_count(x, m, 1)
    z = x - m
    if t != 1.0:
        z = z / t
    if op == SOFTMAX:
        e = jnp.exp(z)
        p = e / jnp.sum(e, axis=1, keepdims=True)
        return _edges(x, m, 1 / k, jnp.zeros((), x.dtype), p)
    j = _positions(x, 1)
    last = _last_max_position(x, m, 1)
    rest = jnp.sum(jnp.exp(z) * jnp.minimum(jnp.abs(j - last), 1), axis=1, keepdims=True)
    if op == LOG_SOFTMAX:
        return _edges(x, m, -jnp.log(k), jnp.asarray(-jnp.inf, x.dtype), z - jnp.log1p(rest))
    # logsumexp: m + log(sum); +inf, -inf and NaN maxima are the result themselves
    return jnp.where(jnp.isinf(m), m, m + jnp.log1p(rest))


def cross_entropy(x: Any, t: Any, w: Any, settings: tuple[Any, ...], grad: bool) -> list[Any]:
    """The fused cross-entropy kernel's outputs, from ``jax.numpy``: ``[rows, total, special]``
    and, with ``grad``, ``dx``.  ``x`` is (N, C), ``t`` (N,) class indices, ``w`` (C,).

    ``rows`` are the per-row losses, ``total`` their sum or weighted mean, ``dx`` the
    gradient of ``total`` (of the rows' sum for ``"none"``).  ``special`` counts the rows
    these formulas do not decide, which the caller computes on the portable path: every
    row whose max is not finite, and kept rows with target mass on a ``-inf`` logit
    (the target's; any, under label smoothing).  Their values here are meaningless.
    """
    ignore, eps, reduction, weighted = settings
    n_classes = x.shape[-1]
    dtype = x.dtype
    kept = t != ignore
    label = jnp.where(kept, t, 0)
    m = jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
    z = x - m
    z_target = jnp.take_along_axis(z, label[:, None], axis=-1)
    position = label.astype(dtype)[:, None]
    j = _positions(x, 1)
    # every term but the target's; the target's own exp(z_t) added after
    others = jnp.sum(jnp.exp(z) * jnp.minimum(jnp.abs(j - position), 1), axis=-1, keepdims=True)
    total_exp = others + jnp.exp(z_target)
    # log of the row's sum, and -log p of the target: log1p where the target is a max
    # (a confident row keeps its tiny loss exact), else log(sum) - z_t, which is at least
    # log 2 and so loses nothing to the rounding of the sum
    at_max = z_target == 0
    log_sum = jnp.where(at_max, jnp.log1p(others), jnp.log(total_exp))
    nll = jnp.where(at_max, log_sum, log_sum - z_target)[:, 0]
    w_t = w[label] if weighted else jnp.ones((), dtype)
    row = w_t * nll
    unusual = ~jnp.isfinite(m[:, 0]) | (kept & (z_target[:, 0] == -jnp.inf))
    sum_w = jnp.sum(w) if weighted else jnp.asarray(n_classes, dtype)
    share = eps / n_classes
    if eps != 0:
        # each class's share of the smoothing, q * -log p summed: a -inf logit (or an
        # overflow) makes it infinite, and such rows go to the portable path
        cost = log_sum - z
        smooth = jnp.sum((share * w if weighted else share) * cost, axis=-1)
        row = (1 - eps) * row + smooth
        unusual = unusual | (kept & ~jnp.isfinite(smooth))
    zero = jnp.zeros((), dtype)
    # a traced target outside [0, C) (the host checks concrete ones; a device cannot
    # raise, as the CPU kernel does): NaN, never a silent loss of the clamped class
    bad = kept & ((t < 0) | (t >= n_classes))
    nan = jnp.asarray(jnp.nan, dtype)
    rows = jnp.where(bad, nan, jnp.where(kept, row, zero))
    denominator = jnp.sum(jnp.where(kept, w_t, zero)) if weighted else jnp.sum(kept, dtype=dtype)
    total = jnp.sum(rows)
    scale = jnp.ones((), dtype)
    if reduction == "mean":
        empty = denominator == 0
        safe = jnp.where(empty, 1, denominator)
        total = jnp.where(empty, jnp.asarray(jnp.nan, dtype), total / safe)
        scale = jnp.where(empty, zero, 1 / safe)
    special = jnp.sum(unusual, dtype=jnp.int32)
    out = [rows, total, special]
    if grad:
        # (sum(q) p - q) * scale, q = w ((1 - eps) [c == t] + eps / C); 0 * (...) on
        # ignored rows, which keeps NaN logits NaN there, as torch's backward has it
        q_sum = (1 - eps) * w_t + share * sum_w
        a = jnp.where(kept, q_sum * scale, zero)[:, None] / total_exp
        hot = j == position
        target_part = jnp.where(kept, (1 - eps) * w_t * scale, zero)[:, None]
        dx = a * jnp.exp(z) - jnp.where(hot, target_part, zero)
        if eps != 0:
            smooth_part = jnp.where(kept, share * scale, zero)[:, None]
            dx = dx - smooth_part * (w if weighted else 1)
        out.append(jnp.where(bad[:, None], nan, dx))
    return out
