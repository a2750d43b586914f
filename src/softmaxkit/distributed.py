r"""Vocabulary-parallel softmax and cross-entropy on ``torch.distributed``.

When an output layer has more classes than one device can hold, its weight is
split by class across the processes of a group (tensor parallelism, as
Megatron-LM does it): rank ``r`` holds the contiguous class range
:func:`shard_range` ``(V, world_size, r)`` and computes only the logits of its
own classes.  A softmax over all ``V`` classes then needs, per row, only

* the global max (one all-reduce ``MAX``), and
* a few global sums (one all-reduce ``SUM`` of up to five numbers per row: the
  sum of exponentials, the count of entries at the max, the target logit, and
  for label smoothing the sum of the shifted logits and the count of finite
  ones),

never a gather of the logits.  Communication is ``torch.distributed`` with
whatever backend the group has (gloo on CPUs, NCCL on GPUs).

Every call starts with one small all-gather, the *handshake*: each rank sends
its shard size, its row shape, a summary of its targets and whether its own
arguments passed their local checks.  From it every rank learns the global
``V`` (the sum of the shard sizes) and checks the same things the same way,
so bad input raises a :class:`~softmaxkit.SoftmaxkitValueError` on *every*
rank and no rank is left waiting in a collective.  Options that every rank
passes alike (``reduction``, ``label_smoothing``, ...) and a missing process
group are refused before any collective.

Each operation is a :class:`torch.autograd.Function` with an exact backward:

* ``vocab_parallel_cross_entropy``: backward needs no communication, the
  gradient on each rank is the slice of the full gradient for its classes;
* ``vocab_parallel_log_softmax`` / ``vocab_parallel_softmax``: backward needs
  one all-reduce of one number per row (``sum(grad)`` or ``sum(grad * p)``);
* ``vocab_parallel_linear_cross_entropy``: backward recomputes the logits one
  chunk at a time and all-reduces the input gradient, so every rank gets the
  gradient of the unsharded computation for ``inputs`` and its own rows of the
  weight gradient.

This module is only about PyTorch, so it imports torch at its top;
``import softmaxkit`` never imports it.
"""

from __future__ import annotations

import math
import operator
import zlib
from typing import Any, NamedTuple, cast

import torch
import torch.distributed as dist

from ._errors import SoftmaxkitError, SoftmaxkitTypeError, SoftmaxkitValueError
from ._options import check_ignore_index, check_label_smoothing, check_reduction
from ._typing import Reduction

__all__ = [
    "shard_range",
    "vocab_parallel_cross_entropy",
    "vocab_parallel_linear_cross_entropy",
    "vocab_parallel_log_softmax",
    "vocab_parallel_softmax",
]

Tensor = torch.Tensor
_INF = math.inf
# A prime modulus keeps the target fingerprint exact in int64 for any row count.
_HASH_PRIME = 2_147_483_647


def shard_range(num_classes: int, world_size: int, rank: int) -> tuple[int, int]:
    r"""The contiguous class range ``[start, stop)`` that ``rank`` holds.

    The ``num_classes`` classes are split into ``world_size`` contiguous
    shards in rank order; the split may be uneven: with
    ``q, k = divmod(num_classes, world_size)`` the first ``k`` ranks hold
    ``q + 1`` classes and the others ``q``.  When ``num_classes < world_size``
    the last ranks hold none (``start == stop``).

    Parameters
    ----------
    num_classes : int
        ``V``, at least 1.
    world_size : int
        Number of ranks in the group, at least 1.
    rank : int
        This rank, in ``[0, world_size)``.

    Returns
    -------
    (start, stop) : tuple of int

    Examples
    --------
    >>> from softmaxkit.distributed import shard_range
    >>> [shard_range(10, 3, rank) for rank in range(3)]
    [(0, 4), (4, 7), (7, 10)]
    """
    num_classes = _as_int(num_classes, "num_classes")
    world_size = _as_int(world_size, "world_size")
    rank = _as_int(rank, "rank")
    if num_classes < 1:
        raise SoftmaxkitValueError(f"`num_classes` must be >= 1; got {num_classes}")
    if world_size < 1:
        raise SoftmaxkitValueError(f"`world_size` must be >= 1; got {world_size}")
    if not 0 <= rank < world_size:
        raise SoftmaxkitValueError(f"`rank` must be in [0, {world_size}); got {rank}")
    base, extra = divmod(num_classes, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise SoftmaxkitTypeError(f"`{name}` must be an int; got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise SoftmaxkitTypeError(f"`{name}` must be an int; got {value!r}") from None


# --------------------------------------------------------------------------------------
# The group, the options and the local checks (no communication)


class _Group(NamedTuple):
    group: Any
    rank: int
    world: int


def _resolve_group(group: Any) -> _Group:
    if not (dist.is_available() and dist.is_initialized()):
        raise SoftmaxkitValueError(
            "`group` needs an initialised torch.distributed process group; call "
            "torch.distributed.init_process_group(...) first (torchrun sets up what it reads); "
            "got none initialised"
        )
    if group is None:
        group = dist.group.WORLD
    if isinstance(group, int) and group == dist.GroupMember.NON_GROUP_MEMBER:
        raise SoftmaxkitValueError(
            f"`group` must contain this process; global rank {dist.get_rank()} is not a member"
        )
    if not isinstance(group, dist.ProcessGroup):
        raise SoftmaxkitTypeError(
            f"`group` must be a torch.distributed ProcessGroup or None; got {type(group).__name__}"
        )
    rank = dist.get_rank(group)
    if rank < 0:
        raise SoftmaxkitValueError(
            f"`group` must contain this process; global rank {dist.get_rank()} is not a member"
        )
    return _Group(group, rank, dist.get_world_size(group))


class _Options(NamedTuple):
    ignore_index: int
    reduction: str
    label_smoothing: float


_OPTION_NAMES = tuple(f"`{name}`" for name in _Options._fields)


def _check_options(ignore_index: Any, reduction: Any, label_smoothing: Any) -> _Options:
    return _Options(
        check_ignore_index(ignore_index),
        check_reduction(reduction),
        check_label_smoothing(label_smoothing),
    )


def _check_float(x: Any, name: str, ndim: int | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise SoftmaxkitTypeError(f"`{name}` must be a torch.Tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise SoftmaxkitTypeError(f"`{name}` must have a floating dtype; got {x.dtype}")
    if ndim is None and x.ndim < 1:
        raise SoftmaxkitValueError(
            f"`{name}` must have the classes on its last axis, shape (..., local_classes); "
            "got a 0-d tensor"
        )
    if ndim is not None and x.ndim != ndim:
        raise SoftmaxkitValueError(f"`{name}` must be {ndim}-d; got shape {tuple(x.shape)}")


class _Targets(NamedTuple):
    """A rank's targets flattened, and the summary it sends in the handshake."""

    flat: Tensor  # (N,), int64
    shape: tuple[int, ...]
    max_target: int  # the largest kept target, -1 when every target is ignored
    max_position: int  # its first flat position
    fingerprint: int


def _check_targets(
    targets: Any, shape: tuple[int, ...], device: Any, ignore_index: int
) -> _Targets:
    if not isinstance(targets, torch.Tensor):
        raise SoftmaxkitTypeError(
            f"`targets` must be a torch.Tensor of class ids; got {type(targets).__name__}"
        )
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise SoftmaxkitTypeError(
            f"`targets` must hold integer class ids; got dtype {targets.dtype}"
        )
    if tuple(targets.shape) != shape:
        raise SoftmaxkitValueError(
            f"`targets` must have shape {shape} (the logits' shape without the class axis); "
            f"got {tuple(targets.shape)}"
        )
    if targets.device != device:
        raise SoftmaxkitValueError(
            f"`targets` must be on the logits' device {device}; got {targets.device}"
        )
    flat = targets.reshape(-1).to(torch.int64)
    kept = flat != ignore_index
    negative = kept & (flat < 0)
    if bool(negative.any()):
        position = int(negative.nonzero()[0, 0])
        raise SoftmaxkitValueError(
            f"`targets` must be class ids >= 0 or `ignore_index` {ignore_index}; position "
            f"{_position(position, shape)} holds {int(flat[position])}"
        )
    max_target, max_position = -1, -1
    if flat.numel() and bool(kept.any()):
        masked = torch.where(kept, flat, -1)
        max_position = int(masked.argmax())
        max_target = int(masked[max_position])
    index = torch.arange(flat.numel(), device=flat.device) % _HASH_PRIME + 1
    fingerprint = int(((flat % _HASH_PRIME) * index % _HASH_PRIME).sum())
    return _Targets(flat, shape, max_target, max_position, fingerprint)


def _position(flat_position: int, shape: tuple[int, ...]) -> int | tuple[int, ...]:
    if len(shape) == 1:
        return flat_position
    position = []
    for size in reversed(shape):
        flat_position, i = divmod(flat_position, size)
        position.append(i)
    return tuple(reversed(position))


def _crc(value: Any) -> int:
    # zlib.crc32 is the same in every process (hash() of a str is salted per process).
    return zlib.crc32(repr(value).encode())


# --------------------------------------------------------------------------------------
# The handshake: one all-gather, then the same checks on every rank


class _Layout(NamedTuple):
    num_classes: int
    start: int
    stop: int


class _Local(NamedTuple):
    """What a rank tells the others about its arguments."""

    local_classes: int = 0
    rows: int = 0
    shape_key: int = 0
    max_target: int = -1
    max_position: int = -1
    fingerprint: int = 0


def _handshake_device(x: Any, grp: _Group) -> torch.device:
    if isinstance(x, torch.Tensor):
        return x.device
    if "nccl" in str(dist.get_backend(grp.group)) and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _handshake(
    grp: _Group,
    device: torch.device,
    failure: SoftmaxkitError | None,
    local: _Local,
    *,
    name: str,
    options: tuple[Any, ...],
    option_names: tuple[str, ...] = (),
    targets: _Targets | None = None,
    ignore_index: int = -100,
) -> _Layout:
    """All-gather every rank's summary; raise the same verdict on every rank."""
    record = torch.tensor(
        [int(failure is not None), *local, _crc(options)], dtype=torch.int64, device=device
    )
    gathered = [torch.empty_like(record) for _ in range(grp.world)]
    dist.all_gather(gathered, record, group=grp.group)
    table = torch.stack(gathered).tolist()
    if failure is not None:
        raise failure
    failed = [r for r, row in enumerate(table) if row[0]]
    if failed:
        raise SoftmaxkitValueError(
            f"rank {failed[0]} refused its arguments (its own error says why); every rank of "
            "the group raises so that none is left waiting in a collective"
        )
    _, sizes, rows, shape_keys, max_targets, max_positions, fingerprints, option_keys = (
        list(column) for column in zip(*table, strict=True)
    )
    for r in range(grp.world):
        if option_keys[r] != option_keys[0]:
            raise SoftmaxkitValueError(
                f"the options must be equal on every rank; rank {r} passed options that differ "
                f"from rank 0's ({', '.join(option_names)})"
            )
        if rows[r] != rows[0] or shape_keys[r] != shape_keys[0]:
            raise SoftmaxkitValueError(
                f"`{name}` must have the same rows (shape without the class axis) on every rank; "
                f"rank 0 has {rows[0]} rows, rank {r} has {rows[r]}"
                + ("" if rows[r] != rows[0] else " in a different shape")
            )
    num_classes = sum(sizes)
    if num_classes < 1:
        raise SoftmaxkitValueError(
            f"`{name}` must hold at least one class over the group; every rank holds 0"
        )
    expected = [
        b - a for a, b in (shard_range(num_classes, grp.world, r) for r in range(grp.world))
    ]
    if sizes != expected:
        raise SoftmaxkitValueError(
            f"`{name}` must hold the classes shard_range({num_classes}, {grp.world}, rank) "
            f"gives each rank, {expected} for ranks 0..{grp.world - 1}; got {sizes}"
        )
    if targets is not None:
        _check_targets_global(
            grp, targets, num_classes, ignore_index, max_targets, max_positions, fingerprints
        )
    start, stop = shard_range(num_classes, grp.world, grp.rank)
    return _Layout(num_classes, start, stop)


def _check_targets_global(
    grp: _Group,
    targets: _Targets,
    num_classes: int,
    ignore_index: int,
    max_targets: list[int],
    max_positions: list[int],
    fingerprints: list[int],
) -> None:
    expected = f"in [0, {num_classes}) or `ignore_index` {ignore_index}"
    if targets.max_target >= num_classes:
        bad = (targets.flat != ignore_index) & (targets.flat >= num_classes)
        position = int(bad.nonzero()[0, 0])
        raise SoftmaxkitValueError(
            f"`targets` must be {expected}; position {_position(position, targets.shape)} "
            f"holds {int(targets.flat[position])}"
        )
    for r in range(grp.world):
        if max_targets[r] >= num_classes:
            raise SoftmaxkitValueError(
                f"`targets` must be {expected} on every rank; on rank {r} position "
                f"{_position(max_positions[r], targets.shape)} holds {max_targets[r]}"
            )
    for r in range(grp.world):
        if fingerprints[r] != fingerprints[0]:
            raise SoftmaxkitValueError(
                f"`targets` must be the same global class ids on every rank; rank {r} holds "
                "targets that differ from rank 0's"
            )


# --------------------------------------------------------------------------------------
# The numerics, with the core's edge rules (see softmaxkit.log_softmax):
# +inf entries share the mass equally, an all -inf row gives probability 0 and
# log-probability -inf with gradient 0, NaN stays in its row (gradient too).


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    # float16 and bfloat16 accumulate in float32, as everywhere in softmaxkit.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _finite_shift(m: Tensor) -> Tensor:
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m))


def _shifted(x: Tensor, m: Tensor) -> Tensor:
    """``z = x - m`` per row (``m`` the row max), with the core's rules at ``m = +-inf``.

    An all ``-inf`` row stays ``-inf`` (shift 0); in a row whose max is
    ``+inf`` the ``+inf`` entries become 0 and the others ``-inf`` (NaN stays).
    """
    z = x - _finite_shift(m)[:, None]
    infinite = m == _INF
    if bool(infinite.any()):
        inf_z = torch.where(x == _INF, 0.0, torch.where(torch.isnan(x), math.nan, -_INF))
        z = torch.where(infinite[:, None], inf_z.to(z.dtype), z)
    return z


def _log_sum(total_rest: Tensor, top_count: Tensor) -> Tensor:
    """``log(sum(exp(z)))`` from the sum of the terms below the max and the count at it.

    ``log1p(rest + count - 1)`` keeps full relative accuracy when one entry
    dominates; an all ``-inf`` row (nothing at all) gives 0, and every caller
    keeps its ``-inf`` entries at ``-inf``.
    """
    r = total_rest + (top_count - 1)
    return torch.log1p(torch.where(r == -1, torch.zeros_like(r), r))


def _regular_rows(m: Tensor, log_s: Tensor) -> Tensor:
    """Rows whose gradient is computed: no NaN, max not ``+inf``.

    A row whose max is ``+inf`` is a constant (gradient 0, as in the core); a
    row holding NaN gets NaN gradient, so that NaN stays in its row.
    """
    return torch.isfinite(log_s) & (m != _INF)


def _nan_rows_to_nan(dx: Tensor, nan_rows: Tensor) -> Tensor:
    return torch.where(nan_rows[:, None], math.nan, dx)


def _global_max(x: Tensor, grp: _Group) -> Tensor:
    if x.shape[1]:
        m = x.amax(dim=1)
    else:
        m = torch.full(x.shape[:1], -_INF, dtype=x.dtype, device=x.device)
    dist.all_reduce(m, op=dist.ReduceOp.MAX, group=grp.group)
    return m


def _exp_sums(z: Tensor, grp: _Group) -> tuple[Tensor, Tensor]:
    """Global ``(sum of exp(z) off the max, count at the max)`` per row: one all-reduce."""
    top = z == 0
    # exp(0) is counted apart, so that log1p sees the small terms exactly.
    rest = torch.where(top, torch.zeros_like(z), torch.exp(z)).sum(dim=1)
    sums = torch.stack([rest, top.sum(dim=1, dtype=z.dtype)], dim=1)
    dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=grp.group)
    return sums[:, 0], sums[:, 1]


def _as_rows(x: Tensor) -> Tensor:
    return x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x


class _VocabParallelLogSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, grp: _Group, log: bool) -> Tensor:  # type: ignore[override]
        shape, out_dtype = x.shape, x.dtype
        work = _as_rows(x.detach()).to(_work_dtype(x.dtype))
        m = _global_max(work, grp)
        z = _shifted(work, m)
        rest, top = _exp_sums(z, grp)
        log_s = _log_sum(rest, top)
        nan_rows = torch.isnan(log_s)[:, None]
        if log:
            y = torch.where(z == -_INF, z, z - log_s[:, None])
        else:
            s = rest + top
            y = torch.exp(z) / torch.where(s == 0, torch.ones_like(s), s)[:, None]
        y = torch.where(nan_rows, math.nan, y)
        ctx.save_for_backward(y, _regular_rows(m, log_s), nan_rows[:, 0])
        ctx.grp, ctx.log = grp, log
        return y.to(out_dtype).reshape(shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        y, regular, nan_rows = ctx.saved_tensors
        g = _as_rows(grad).to(y.dtype)
        if ctx.log:
            # d logp_j / dx_k = delta_jk - p_k on entries that are not -inf.
            valid = (y != -_INF) & regular[:, None]
            g = torch.where(valid, g, torch.zeros_like(g))
            total = g.sum(dim=1)
            dist.all_reduce(total, op=dist.ReduceOp.SUM, group=ctx.grp.group)
            dx = g - torch.exp(y) * total[:, None]
            dx = torch.where(valid, dx, torch.zeros_like(dx))
        else:
            p = torch.where(regular[:, None], y, torch.zeros_like(y))
            total = (g * p).sum(dim=1)
            dist.all_reduce(total, op=dist.ReduceOp.SUM, group=ctx.grp.group)
            dx = p * (g - total[:, None])
        dx = _nan_rows_to_nan(dx, nan_rows)
        return dx.to(grad.dtype).reshape(grad.shape), None, None


def _normalise(local_logits: Tensor, group: Any, log: bool) -> Tensor:
    grp = _resolve_group(group)
    failure, local = None, _Local()
    try:
        _check_float(local_logits, "local_logits")
        shape = tuple(local_logits.shape[:-1])
        local = _Local(int(local_logits.shape[-1]), math.prod(shape), _crc(shape))
    except SoftmaxkitError as err:
        failure = err
    device = _handshake_device(local_logits, grp)
    _handshake(grp, device, failure, local, name="local_logits", options=())
    return _VocabParallelLogSoftmax.apply(local_logits, grp, log)


def vocab_parallel_log_softmax(
    local_logits: Tensor, /, *, group: dist.ProcessGroup | None = None
) -> Tensor:
    r"""Log-softmax over classes split across the ranks of ``group``.

    Rank ``r`` passes the logits of its own classes, the range
    ``shard_range(V, world_size, r)``, with ``V`` the sum of the shard sizes
    over the group; every rank gets ``log_softmax`` of the gathered logits
    restricted to its range, without the logits ever being gathered:
    ``local_logits - (M + log(sum_over_ranks(sum(exp(local_logits - M)))))``
    with ``M`` the global row max.

    Parameters
    ----------
    local_logits : torch.Tensor of shape (..., local_classes)
        This rank's logits, classes on the last axis.  The leading shape
        (the rows) must be the same on every rank.  float16 and bfloat16 are
        accumulated in float32 and returned in their own dtype.
    group : torch.distributed ProcessGroup, optional
        Default the world group.  Must be initialised.

    Returns
    -------
    torch.Tensor, the shape and dtype of ``local_logits``

    Raises
    ------
    SoftmaxkitValueError
        On every rank, when shard sizes disagree with :func:`shard_range`, when
        the rows differ between ranks, or when one rank's own arguments are
        bad (that rank says why); also when the group is not initialised.

    Notes
    -----
    Communication: one all-gather of a few integers per call (the handshake
    that checks the shards), one all-reduce ``MAX`` and one all-reduce ``SUM``
    of two numbers per row; backward, one all-reduce of one number per row
    (the row sum of the incoming gradient).  Edge cases are those of
    :func:`softmaxkit.log_softmax`: ``+inf`` entries share the mass equally,
    an all ``-inf`` row gives ``-inf`` with gradient 0, NaN stays in its row
    (value and gradient).  ``-inf`` outputs are constants: the gradient that
    arrives there is ignored and ``-inf`` inputs get gradient 0.

    Examples
    --------
    Under ``torchrun`` each rank passes ``logits[..., start:stop]`` with
    ``start, stop = shard_range(V, dist.get_world_size(), dist.get_rank())``;
    here a group of one process holds all three classes (cat, dog, elephant):

    >>> import torch, torch.distributed as dist
    >>> from softmaxkit.distributed import vocab_parallel_log_softmax
    >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    >>> vocab_parallel_log_softmax(torch.tensor([[2.0, 1.0, 0.1]])).round(decimals=4).tolist()
    [[-0.417, -1.417, -2.317]]
    >>> dist.destroy_process_group()
    """
    return _normalise(local_logits, group, log=True)


def vocab_parallel_softmax(
    local_logits: Tensor, /, *, group: dist.ProcessGroup | None = None
) -> Tensor:
    r"""Softmax over classes split across the ranks of ``group``.

    Takes the arguments of :func:`vocab_parallel_log_softmax` and returns
    ``exp(local_logits - M) / sum_over_ranks(sum(exp(local_logits - M)))``,
    the softmax of the gathered logits restricted to this rank's classes.
    Backward needs one all-reduce of ``sum(grad * p)`` per row.

    Examples
    --------
    A group of one process, holding all three classes:

    >>> import torch, torch.distributed as dist
    >>> from softmaxkit.distributed import vocab_parallel_softmax
    >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    >>> vocab_parallel_softmax(torch.tensor([[2.0, 1.0, 0.1]])).round(decimals=4).tolist()
    [[0.659, 0.2424, 0.0986]]
    >>> dist.destroy_process_group()
    """
    return _normalise(local_logits, group, log=False)


# --------------------------------------------------------------------------------------
# Cross-entropy: per-row statistics that merge across chunks and ranks


def _row_stats(x: Tensor, local_targets: Tensor, smoothing: bool) -> Tensor:
    """Per-row statistics of a block of logits ``x`` (N, c), relative to its own max.

    Columns: ``[m, rest, top, x_t, sum_z, n_finite]`` with ``m`` the block's
    row max, ``z = x - m`` (by :func:`_shifted`), ``rest`` the sum of
    ``exp(z)`` off the max, ``top`` the count at it, ``x_t`` the raw target
    logit when the target is in the block (else 0), and for label smoothing
    the sum and count of the entries with ``z > -inf``.
    """
    n, c = x.shape
    if c == 0:
        m = torch.full((n,), -_INF, dtype=x.dtype, device=x.device)
    else:
        m = x.amax(dim=1)
    z = _shifted(x, m)
    top = z == 0
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    rest = torch.where(top, zero, torch.exp(z)).sum(dim=1)
    owned = (local_targets >= 0) & (local_targets < c)
    if c:
        index = torch.where(owned, local_targets, 0)[:, None]
        x_t = torch.where(owned, x.gather(1, index)[:, 0], zero)
    else:
        x_t = torch.zeros_like(m)
    columns = [m, rest, top.sum(dim=1, dtype=x.dtype), x_t]
    if smoothing:
        finite = z != -_INF
        columns += [torch.where(finite, z, zero).sum(dim=1), finite.sum(dim=1, dtype=x.dtype)]
    else:
        columns += [torch.zeros_like(m), torch.zeros_like(m)]
    return torch.stack(columns, dim=1)


def _rebase(stats: Tensor, m: Tensor) -> Tensor:
    """Express block statistics relative to a larger max ``m`` (the merged or global one)."""
    own, rest, top, x_t, sum_z, count = stats.unbind(dim=1)
    same = own == m
    # exp(-inf) = 0 covers a block max of -inf and a new max of +inf.
    scale = torch.exp(own - m)
    zero = torch.zeros_like(rest)
    rest = torch.where(same, rest, (rest + top) * scale)
    top = torch.where(same, top, zero)
    # Below a +inf max every entry of the block becomes -inf, so it leaves the
    # smoothing sums; below a finite max each finite z moves by (shift - m).
    moved = torch.where(count == 0, sum_z, sum_z + count * (_finite_shift(own) - m))
    sum_z = torch.where(same, sum_z, torch.where(m == _INF, zero, moved))
    count = torch.where(same | (m != _INF), count, zero)
    return torch.stack([m, rest, top, x_t, sum_z, count], dim=1)


def _merge(a: Tensor, b: Tensor) -> Tensor:
    m = torch.maximum(a[:, 0], b[:, 0])
    merged = _rebase(a, m) + _rebase(b, m)
    merged[:, 0] = m
    return merged


def _combine(stats: Tensor, grp: _Group, smoothing: bool) -> Tensor:
    """Global statistics from each rank's: all-reduce MAX, then all-reduce SUM."""
    m = stats[:, 0].contiguous()
    dist.all_reduce(m, op=dist.ReduceOp.MAX, group=grp.group)
    merged = _rebase(stats, m)
    # The smoothing columns travel only when they are used.
    sums = merged[:, 1 : 6 if smoothing else 4].contiguous()
    dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=grp.group)
    merged[:, 1 : 1 + sums.shape[1]] = sums
    return merged


class _Rows(NamedTuple):
    """Per-row results of the forward pass that backward needs (no logits)."""

    m: Tensor  # the global max
    log_s: Tensor  # log(sum(exp(x - shift)))
    regular: Tensor  # the gradient is computed: target kept, no NaN, max not +inf
    nan: Tensor  # target kept and NaN in the row: the gradient is NaN
    weight_t: Tensor  # 1 - eps where the target term has gradient, else 0
    total: Tensor  # G: -sum of dloss/dlogp_j over entries above -inf, per unit row weight


def _cross_entropy_rows(
    stats: Tensor, targets: Tensor, num_classes: int, options: _Options
) -> tuple[Tensor, _Rows]:
    """Loss per row, ``-(1 - eps) logp_t - (eps / V) sum_j logp_j``, from global statistics."""
    m, rest, top, x_t, sum_z, count = stats.unbind(dim=1)
    eps = options.label_smoothing
    log_s = _log_sum(rest, top)
    z_t = _shifted(x_t[:, None], m)[:, 0]
    logp_t = torch.where(z_t == -_INF, z_t, z_t - log_s)
    kept = targets != options.ignore_index
    regular = _regular_rows(m, log_s) & kept
    zero = torch.zeros_like(log_s)
    loss, weight_t, total = zero, zero, zero
    if eps < 1.0:
        loss = -(1.0 - eps) * logp_t
        weight_t = torch.where(regular & (z_t != -_INF), zero + (1.0 - eps), zero)
        total = weight_t
    if eps > 0.0:
        # sum_j logp_j over all V classes is -inf as soon as one entry is -inf.
        sum_logp = sum_z - count * log_s
        sum_logp = torch.where(count < num_classes - 0.5, sum_logp - _INF, sum_logp)
        loss = loss - (eps / num_classes) * sum_logp
        total = total + torch.where(regular, count * (eps / num_classes), zero)
    loss = torch.where(kept, loss, zero)
    nan = torch.isnan(log_s) & kept
    return loss, _Rows(m, log_s, regular, nan, weight_t, total)


def _reduce(loss: Tensor, kept: Tensor, reduction: str, shape: tuple[int, ...]) -> Tensor:
    if reduction == "none":
        return loss.reshape(shape)
    if reduction == "sum":
        return loss.sum()
    # 0 / 0 = NaN when every target is ignored, as in torch.
    return loss.sum() / kept.sum()


def _row_weights(grad: Tensor, kept: Tensor, reduction: str, dtype: torch.dtype) -> Tensor:
    """The incoming gradient times d(result)/d(loss_i), per row; 0 where ignored."""
    grad = grad.to(dtype)
    if reduction == "none":
        w = grad.reshape(-1)
    elif reduction == "sum":
        w = grad.expand(kept.shape)
    else:
        w = (grad / kept.sum()).expand(kept.shape)
    return torch.where(kept, w, torch.zeros_like(w))


def _logits_grad(
    x: Tensor, rows: _Rows, w: Tensor, local_targets: Tensor, num_classes: int, eps: float
) -> Tensor:
    """``dloss/dx`` for a block of logits ``x`` (N, c), given the row weights ``w``.

    With ``dloss/dlogp_j = -w ((1 - eps) [j = t] + eps / V)`` and
    ``dlogp_j/dx_k = [j = k] - p_k`` on entries above ``-inf`` (the others
    are constants), this is ``w (p_k G - (1 - eps) [k = t] - eps / V)`` there
    and 0 at ``-inf`` entries.  No communication: ``G`` and ``log_s`` are
    global per-row numbers kept from the forward pass.
    """
    z = _shifted(x, rows.m)
    p = torch.exp(z - rows.log_s[:, None])
    dx = p * (w * rows.total)[:, None]
    if eps > 0.0:
        dx = torch.where(z == -_INF, dx, dx - (w * (eps / num_classes))[:, None])
    # Rows at +inf and ignored rows have no gradient (p may be NaN there).
    dx = torch.where(rows.regular[:, None], dx, torch.zeros_like(dx))
    dx = _nan_rows_to_nan(dx, rows.nan)
    c = x.shape[1]
    owned = (local_targets >= 0) & (local_targets < c) & (rows.weight_t != 0)
    if c and bool(owned.any()):
        index = torch.where(owned, local_targets, 0)[:, None]
        hit = torch.where(owned, w * rows.weight_t, torch.zeros_like(w))[:, None]
        dx = dx.scatter_add(1, index, -hit)
    return dx


# A chunk of logits of at most this many entries (16 MiB in float32) unless
# chunk_size says otherwise.
_CHUNK_ENTRIES = 1 << 22
_MIN_CHUNK = 128


def _chunks(size: int, chunk: int) -> list[tuple[int, int]]:
    return [(a, min(a + chunk, size)) for a in range(0, size, chunk)]


def _row_blocks(rows: int, columns: int) -> list[tuple[int, int]]:
    """Row ranges whose temporaries stay within ``_CHUNK_ENTRIES`` (at least one row each)."""
    return _chunks(rows, max(1, _CHUNK_ENTRIES // max(columns, 1))) or [(0, rows)]


class _VocabParallelCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, targets: Tensor, layout: _Layout, grp: _Group, options: _Options
    ) -> Tensor:
        logits, dtype = _as_rows(x.detach()), _work_dtype(x.dtype)
        local_targets = targets - layout.start
        smoothing = options.label_smoothing > 0
        # Rows a block at a time, so the temporaries never take several times the logits.
        blocks = _row_blocks(*logits.shape)
        stats = torch.cat(
            [_row_stats(logits[a:b].to(dtype), local_targets[a:b], smoothing) for a, b in blocks]
        )
        stats = _combine(stats, grp, smoothing)
        loss, rows = _cross_entropy_rows(stats, targets, layout.num_classes, options)
        kept = targets != options.ignore_index
        ctx.save_for_backward(x, targets, *rows)
        ctx.layout, ctx.options = layout, options
        return _reduce(loss, kept, options.reduction, tuple(x.shape[:-1])).to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, targets, *saved = ctx.saved_tensors
        rows, layout, options = _Rows(*saved), ctx.layout, ctx.options
        logits, dtype = _as_rows(x), _work_dtype(x.dtype)
        kept = targets != options.ignore_index
        w = _row_weights(grad, kept, options.reduction, dtype)
        local_targets = targets - layout.start
        dx = torch.empty_like(logits)
        for a, b in _row_blocks(*logits.shape):
            dx[a:b] = _logits_grad(
                logits[a:b].to(dtype),
                _Rows(*(column[a:b] for column in rows)),
                w[a:b],
                local_targets[a:b],
                layout.num_classes,
                options.label_smoothing,
            )
        return dx.reshape(x.shape), None, None, None, None


def vocab_parallel_cross_entropy(
    local_logits: Tensor,
    targets: Tensor,
    /,
    *,
    group: dist.ProcessGroup | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross-entropy over classes split across the ranks of ``group``.

    Equals ``cross_entropy(gathered_logits, targets)`` with PyTorch's
    semantics, where ``gathered_logits`` concatenates every rank's
    ``local_logits`` in rank order, but never gathers them.  Per row ``i``
    with target ``t`` (a global class id) and ``logp = log_softmax`` over all
    ``V`` classes:

    ``loss_i = -(1 - label_smoothing) * logp[t] - (label_smoothing / V) * sum_j logp[j]``

    Parameters
    ----------
    local_logits : torch.Tensor of shape (..., local_classes)
        This rank's logits: the classes ``shard_range(V, world_size, rank)``
        on the last axis, where ``V`` is the sum of the shard sizes over the
        group (learnt in the handshake, so every rank must follow
        :func:`shard_range`).  float16 and bfloat16 accumulate in float32.
    targets : integer torch.Tensor of shape (...)
        Global class ids in ``[0, V)`` or ``ignore_index``; the same on every
        rank.
    group : torch.distributed ProcessGroup, optional
        Default the world group.  Must be initialised.
    ignore_index : int, default -100
        Rows whose target equals it contribute 0 and get gradient 0.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` divides the sum by the number of rows not ignored (NaN when
        every row is ignored, as in PyTorch); ``"none"`` returns shape (...).
    label_smoothing : float in [0, 1], default 0.0
        Spread over all ``V`` classes, not over a rank's share.

    Returns
    -------
    torch.Tensor
        The same value on every rank, in the dtype of ``local_logits``.

    Raises
    ------
    SoftmaxkitValueError
        On every rank: shards that disagree with :func:`shard_range`, a target
        outside ``[0, V)`` other than ``ignore_index`` (naming its position),
        targets or rows that differ between ranks, a rank whose own arguments
        are bad (that rank says why).  Bad options and an uninitialised group
        raise before any collective.

    Notes
    -----
    Communication forward: the handshake (one all-gather of a few integers),
    one all-reduce ``MAX`` of one number per row and one all-reduce ``SUM`` of
    up to five per row.  Backward needs no communication: each rank's gradient
    is the slice of the full gradient ``w (softmax - (1 - eps) onehot - eps / V)``
    for its classes.  If ``local_logits`` come from inputs shared by every rank
    (``inputs @ local_weight.T``), the gradient of those inputs is the sum over
    ranks of the local ones: all-reduce it yourself, or use
    :func:`vocab_parallel_linear_cross_entropy`, which does.  Edge cases follow
    :func:`softmaxkit.log_softmax` (for finite logits this is PyTorch's value).

    Examples
    --------
    Under ``torchrun`` each rank passes ``logits[..., start:stop]`` with
    ``start, stop = shard_range(V, dist.get_world_size(), dist.get_rank())``
    and the same ``targets``; here a group of one process holds all classes:

    >>> import torch, torch.distributed as dist
    >>> from softmaxkit.distributed import vocab_parallel_cross_entropy
    >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    >>> logits = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.0]])  # cat, dog, elephant
    >>> float(vocab_parallel_cross_entropy(logits, torch.tensor([0, 1])))
    0.3069
    >>> float(vocab_parallel_cross_entropy(logits, torch.tensor([0, -100])))  # one ignored
    0.417
    >>> dist.destroy_process_group()
    """
    options = _check_options(ignore_index, reduction, label_smoothing)
    grp = _resolve_group(group)
    failure, local, summary = None, _Local(), None
    try:
        _check_float(local_logits, "local_logits")
        shape = tuple(local_logits.shape[:-1])
        summary = _check_targets(targets, shape, local_logits.device, options.ignore_index)
        local = _Local(
            int(local_logits.shape[-1]),
            math.prod(shape),
            _crc(shape),
            summary.max_target,
            summary.max_position,
            summary.fingerprint,
        )
    except SoftmaxkitError as err:
        failure = err
    layout = _handshake(
        grp,
        _handshake_device(local_logits, grp),
        failure,
        local,
        name="local_logits",
        options=tuple(options),
        option_names=_OPTION_NAMES,
        targets=summary,
        ignore_index=options.ignore_index,
    )
    # The handshake raised if the checks did not produce a summary.
    targets_flat = cast(_Targets, summary).flat
    return _VocabParallelCrossEntropy.apply(local_logits, targets_flat, layout, grp, options)


# --------------------------------------------------------------------------------------
# The linear layer and the loss together, one chunk of logits at a time


def _chunk_logits(
    x: Tensor, weight: Tensor, bias: Tensor | None, a: int, b: int, dtype: torch.dtype
) -> Tensor:
    logits = x @ weight[a:b].to(dtype).T
    if bias is not None:
        logits += bias[a:b].to(dtype)
    return logits


class _VocabParallelLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        inputs: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        layout: _Layout,
        grp: _Group,
        options: _Options,
        chunk: int,
    ) -> Tensor:
        dtypes = [inputs.dtype, weight.dtype] + ([] if bias is None else [bias.dtype])
        dtype = _work_dtype(_promote(dtypes))
        x = inputs.detach().reshape(-1, inputs.shape[-1]).to(dtype)
        local_targets = targets - layout.start
        smoothing = options.label_smoothing > 0
        stats = _row_stats(x.new_empty((x.shape[0], 0)), local_targets, smoothing)
        for a, b in _chunks(weight.shape[0], chunk):
            logits = _chunk_logits(x, weight.detach(), bias, a, b, dtype)
            stats = _merge(stats, _row_stats(logits, local_targets - a, smoothing))
            del logits  # one chunk at a time
        stats = _combine(stats, grp, smoothing)
        loss, rows = _cross_entropy_rows(stats, targets, layout.num_classes, options)
        kept = targets != options.ignore_index
        ctx.save_for_backward(inputs, weight, bias, targets, *rows)
        ctx.layout, ctx.grp, ctx.options, ctx.chunk, ctx.dtype = layout, grp, options, chunk, dtype
        out_dtype = _promote(dtypes)
        return _reduce(loss, kept, options.reduction, tuple(inputs.shape[:-1])).to(out_dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        inputs, weight, bias, targets, *saved = ctx.saved_tensors
        rows, layout, options, dtype = _Rows(*saved), ctx.layout, ctx.options, ctx.dtype
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        x = inputs.reshape(-1, inputs.shape[-1]).to(dtype)
        kept = targets != options.ignore_index
        w = _row_weights(grad, kept, options.reduction, dtype)
        local_targets = targets - layout.start
        dx = torch.zeros_like(x) if need_x else None
        dw = torch.empty(weight.shape, dtype=dtype, device=weight.device) if need_w else None
        db = None
        if need_b and bias is not None:
            db = torch.empty(bias.shape, dtype=dtype, device=bias.device)
        for a, b in _chunks(weight.shape[0], ctx.chunk):
            logits = _chunk_logits(x, weight, bias, a, b, dtype)
            dlogits = _logits_grad(
                logits, rows, w, local_targets - a, layout.num_classes, options.label_smoothing
            )
            del logits
            if dx is not None:
                dx.addmm_(dlogits, weight[a:b].to(dtype))
            if dw is not None:
                dw[a:b] = dlogits.T @ x
            if db is not None:
                db[a:b] = dlogits.sum(dim=0)
        if dx is not None:
            # inputs are replicated: their gradient is the sum of every shard's part.
            dist.all_reduce(dx, op=dist.ReduceOp.SUM, group=ctx.grp.group)
            dx = dx.to(inputs.dtype).reshape(inputs.shape)
        return (
            dx,
            None if dw is None else dw.to(weight.dtype),
            None if db is None else db.to(bias.dtype),
            None,
            None,
            None,
            None,
            None,
        )


def _promote(dtypes: list[torch.dtype]) -> torch.dtype:
    out = dtypes[0]
    for dtype in dtypes[1:]:
        out = torch.promote_types(out, dtype)
    return out


def _check_linear(
    inputs: Any, weight: Any, bias: Any, targets: Any, ignore_index: int
) -> tuple[_Local, _Targets]:
    _check_float(inputs, "inputs")
    _check_float(weight, "local_weight", ndim=2)
    dim = int(inputs.shape[-1])
    if weight.shape[1] != dim:
        raise SoftmaxkitValueError(
            f"`local_weight` must have shape (local_classes, {dim}) to match `inputs` of shape "
            f"{tuple(inputs.shape)}; got {tuple(weight.shape)}"
        )
    if weight.device != inputs.device:
        raise SoftmaxkitValueError(
            f"`local_weight` must be on the device of `inputs`, {inputs.device}; got {weight.device}"
        )
    if bias is not None:
        _check_float(bias, "local_bias", ndim=1)
        if bias.shape[0] != weight.shape[0] or bias.device != inputs.device:
            raise SoftmaxkitValueError(
                f"`local_bias` must have shape ({weight.shape[0]},) on {inputs.device} to match "
                f"`local_weight`; got {tuple(bias.shape)} on {bias.device}"
            )
    shape = tuple(inputs.shape[:-1])
    summary = _check_targets(targets, shape, inputs.device, ignore_index)
    local = _Local(
        int(weight.shape[0]),
        math.prod(shape),
        _crc(tuple(inputs.shape)),
        summary.max_target,
        summary.max_position,
        summary.fingerprint,
    )
    return local, summary


def vocab_parallel_linear_cross_entropy(
    inputs: Tensor,
    local_weight: Tensor,
    targets: Tensor,
    /,
    *,
    group: dist.ProcessGroup | None = None,
    local_bias: Tensor | None = None,
    chunk_size: int | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross-entropy of a linear output layer split by class, without the logits.

    Computes ``cross_entropy(inputs @ weight.T + bias, targets)`` where
    ``weight`` (V, D) and ``bias`` (V,) are split by class across the ranks
    of ``group`` (rank ``r`` holds the rows ``shard_range(V, world_size, r)``
    as ``local_weight`` and ``local_bias``) and ``inputs`` are the same on
    every rank.  Each rank computes its logits ``chunk_size`` classes at a
    time and keeps only per-row statistics, so no more than one chunk of
    logits (rows x chunk_size) exists at once; backward recomputes each chunk.

    Parameters
    ----------
    inputs : torch.Tensor of shape (..., D)
        Hidden states, replicated: the same on every rank.
    local_weight : torch.Tensor of shape (local_classes, D)
        This rank's rows of the output weight.
    targets : integer torch.Tensor of shape (...)
        Global class ids in ``[0, V)`` or ``ignore_index``, the same on every rank.
    group : torch.distributed ProcessGroup, optional
        Default the world group.
    local_bias : torch.Tensor of shape (local_classes,), optional
        This rank's entries of the bias.
    chunk_size : int, optional
        Classes per chunk of logits.  Default: as many as keep a chunk within
        2**22 entries, at least 128 (and at most ``local_classes``).
    ignore_index, reduction, label_smoothing
        As in :func:`vocab_parallel_cross_entropy`.

    Returns
    -------
    torch.Tensor
        The same value on every rank.

    Notes
    -----
    Gradients: ``local_weight`` and ``local_bias`` get this rank's rows of
    the unsharded gradient.  ``inputs`` get the full unsharded gradient on
    every rank: the per-shard parts are summed by one all-reduce inside
    backward (so a replicated model below the output layer stays in step with
    no further communication).  Megatron-LM instead leaves that all-reduce to
    a separate "copy to tensor-parallel region" operation; do not combine the
    two, or the gradient is counted ``world_size`` times.  Every rank must ask
    for the same gradients.  Communication forward is the same as
    :func:`vocab_parallel_cross_entropy`; backward adds the all-reduce of the
    (N, D) input gradient.  float16 and bfloat16 are computed in float32.

    Examples
    --------
    Under ``torchrun`` each rank passes ``weight[start:stop]`` with
    ``start, stop = shard_range(V, dist.get_world_size(), dist.get_rank())``;
    here a group of one process holds all 1000 classes, two at a time:

    >>> import torch, torch.distributed as dist
    >>> from softmaxkit.distributed import vocab_parallel_linear_cross_entropy
    >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    >>> _ = torch.manual_seed(0)
    >>> hidden = torch.randn(8, 16, requires_grad=True)
    >>> weight = torch.randn(1000, 16, requires_grad=True)
    >>> targets = torch.randint(0, 1000, (8,))
    >>> loss = vocab_parallel_linear_cross_entropy(hidden, weight, targets, chunk_size=2)
    >>> loss.backward()
    >>> full = torch.nn.functional.cross_entropy(hidden @ weight.T, targets)
    >>> bool(torch.allclose(loss, full))
    True
    >>> dist.destroy_process_group()
    """
    options = _check_options(ignore_index, reduction, label_smoothing)
    if chunk_size is not None:
        chunk_size = _as_int(chunk_size, "chunk_size")
        if chunk_size < 1:
            raise SoftmaxkitValueError(f"`chunk_size` must be >= 1; got {chunk_size}")
    grp = _resolve_group(group)
    failure, local, summary = None, _Local(), None
    try:
        local, summary = _check_linear(
            inputs, local_weight, local_bias, targets, options.ignore_index
        )
    except SoftmaxkitError as err:
        failure = err
    layout = _handshake(
        grp,
        _handshake_device(inputs, grp),
        failure,
        local,
        name="local_weight",
        # Backward all-reduces the inputs' gradient: every rank must compute it.
        options=(*options, torch.is_grad_enabled() and bool(getattr(inputs, "requires_grad", 0))),
        option_names=(*_OPTION_NAMES, "`inputs` requires grad"),
        targets=summary,
        ignore_index=options.ignore_index,
    )
    if chunk_size is None:
        chunk_size = max(_MIN_CHUNK, _CHUNK_ENTRIES // max(local.rows, 1))
    chunk = max(1, min(chunk_size, local.local_classes))
    return _VocabParallelLinearCrossEntropy.apply(
        inputs, local_weight, local_bias, cast(_Targets, summary).flat, layout, grp, options, chunk
    )
