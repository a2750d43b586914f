"""Cross-entropy of a linear layer's output over a large vocabulary, never holding the logits.

``linear_cross_entropy(x, W, t)`` equals ``cross_entropy(x @ W.T + b, t)``, but the
``(N, V)`` logits are only ever formed one chunk of ``chunk_size`` classes at a
time (the method of Liger Kernel's fused linear cross-entropy and Apple's Cut
Cross-Entropy, here on the CPU):

1. forward: for each chunk, ``z = x @ W_c.T + b_c``; the running
   ``L = logaddexp(L, logsumexp(z))`` and the target logit ``z[t]`` (and, for label
   smoothing, the row sum of ``z``) are all a row keeps;
2. backward: each chunk's logits are computed again and turned into
   ``G = (exp(z - L) - q) * scale`` with ``q`` the smoothed one-hot target, giving
   ``dx += G @ W_c``, ``dW_c = G.T @ x`` and ``db_c = sum(G)``.

Memory beyond the inputs and the gradients is one ``(N, chunk_size)`` block (for
CPU tensors kept from one pass to the next, where a freed block would leave the heap
holding two).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from . import _backends
from ._backend import as_array, compute_dtype, is_concrete, is_jax, namespace, to_numpy
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._options import check_ignore_index, check_label_smoothing, check_reduction
from ._typing import ArrayT, Reduction

__all__ = ["linear_cross_entropy", "linear_cross_entropy_grad"]

Array = Any


# Elements of one chunk of logits when chunk_size is not given: 64 MB of float32.
_CHUNK_ELEMENTS = 1 << 24


def _check_shapes(
    inputs: tuple[int, ...],
    weight: tuple[int, ...],
    targets: tuple[int, ...],
    bias: tuple[int, ...] | None,
) -> tuple[int, int, int]:
    """``(N, D, V)`` from the shapes of the arguments, each checked against the others."""
    if len(inputs) != 2:
        raise SoftmaxkitValueError(f"`inputs` must have shape (N, D); got shape {tuple(inputs)}")
    n, d = inputs
    if len(weight) != 2 or weight[1] != d:
        raise SoftmaxkitValueError(
            f"`weight` must have shape (V, {d}) to match `inputs`; got shape {tuple(weight)}"
        )
    v = weight[0]
    if tuple(targets) != (n,):
        raise SoftmaxkitValueError(
            f"`targets` must have shape ({n},), one class index per row of `inputs`; got "
            f"shape {tuple(targets)}"
        )
    if bias is not None and tuple(bias) != (v,):
        raise SoftmaxkitValueError(
            f"`bias` must have shape ({v},), one entry per row of `weight`; got shape {tuple(bias)}"
        )
    return n, d, v


def _check_settings(
    ignore_index: Any, reduction: Any, label_smoothing: Any, chunk_size: Any
) -> tuple[int, Reduction, float, int | None]:
    """``(ignore_index, reduction, label_smoothing, chunk_size)`` checked (chunk: None = default)."""
    reduction = check_reduction(reduction)
    ignore = check_ignore_index(ignore_index)
    if not -(2**63) <= ignore < 2**63:
        # The class indices are int64 at most (and the torch operators take an int64).
        raise SoftmaxkitValueError(
            f"`ignore_index` must fit in int64, [-2**63, 2**63); got {ignore}"
        )
    eps = check_label_smoothing(label_smoothing)
    chunk = None
    if chunk_size is not None:
        try:
            if isinstance(chunk_size, (bool, np.bool_)):
                raise TypeError  # True would silently mean chunks of one class
            chunk = operator.index(chunk_size)
        except TypeError:
            raise SoftmaxkitTypeError(
                f"`chunk_size` must be a positive int or None; got {chunk_size!r}"
            ) from None
        if chunk < 1:
            raise SoftmaxkitValueError(f"`chunk_size` must be at least 1; got {chunk}")
    return ignore, reduction, eps, chunk


def dtype_name(dtype: Any) -> str:
    """``dtype`` as messages write it, the same for every library ("float32", not "torch.float32")."""
    return str(dtype).removeprefix("torch.")


def _integer_dtype(dtype: Any) -> bool:
    if isinstance(dtype, np.dtype):
        return dtype.kind in "iu"
    # a torch dtype (NumPy and JAX dtypes are np.dtype)
    return not (dtype.is_floating_point or dtype.is_complex or str(dtype) == "torch.bool")


def check_target_dtype(dtype: Any) -> None:
    if not _integer_dtype(dtype):
        raise SoftmaxkitTypeError(
            f"`targets` must hold integer class indices; got dtype {dtype_name(dtype)}"
        )


def _validate(
    x: Array,
    w: Array,
    t: Array,
    b: Array | None,
    ignore_index: Any,
    reduction: Any,
    label_smoothing: Any,
    chunk_size: Any,
) -> tuple[int, Reduction, float, int | None]:
    """Every check of the public functions that needs no values, for every array library.

    NumPy arrays, PyTorch tensors and JAX arrays all come through here, so that a bad
    argument gets the same error whatever library it comes in; the class indices
    themselves are checked where their values are at hand.
    """
    _check_shapes(
        tuple(x.shape), tuple(w.shape), tuple(t.shape), None if b is None else tuple(b.shape)
    )
    settings = _check_settings(ignore_index, reduction, label_smoothing, chunk_size)
    check_target_dtype(t.dtype)
    return settings


def _chunk_classes(n: int, v: int, chunk: int | None) -> int:
    """Classes per chunk: ``chunk``, or as many as make one chunk about 16M entries."""
    if chunk is None:
        chunk = max(1, min(v, _CHUNK_ELEMENTS // max(n, 1)))
    return min(chunk, v) if v else 1


def _check_class_indices(t: np.ndarray, dtype: Any, v: int, ignore: int) -> None:
    """Integer ``t`` (of the caller's ``dtype``), each in ``[0, v)`` or ``ignore``."""
    if t.dtype.kind not in "iu":
        check_target_dtype(dtype)  # the caller's dtype, for the message
        check_target_dtype(t.dtype)
    bad = ((t < 0) | (t >= v)) & (t != ignore)
    if bad.any():
        pos = int(np.argmax(bad))
        if v == 0:
            raise SoftmaxkitValueError(
                f"`targets` must all be `ignore_index` ({ignore}): `weight` has no rows, so "
                f"there is no class; position {pos} holds {int(t[pos])}"
            )
        raise SoftmaxkitValueError(
            f"`targets` must be in [0, {v}) or {ignore}; position {pos} holds {int(t[pos])}"
        )


class _Options:
    """The validated arguments of one call (class axis of the logits is the last)."""

    def __init__(
        self,
        inputs: Array,
        weight: Array,
        targets: Array,
        bias: Array | None,
        ignore_index: Any,
        reduction: Any,
        label_smoothing: Any,
        chunk_size: Any,
    ) -> None:
        n, d, v = _check_shapes(
            inputs.shape, weight.shape, targets.shape, None if bias is None else bias.shape
        )
        ignore, reduction, eps, chunk = _check_settings(
            ignore_index, reduction, label_smoothing, chunk_size
        )
        t = to_numpy(targets)
        _check_class_indices(t, targets.dtype, v, ignore)
        kept = t != ignore
        self.n, self.d, self.v = n, d, v
        self.targets = np.where(kept, t, 0).astype(np.int64)
        self.kept = kept
        self.n_kept = int(kept.sum())
        self.reduction = reduction
        self.eps = eps
        self.chunk = _chunk_classes(n, v, chunk)

    def chunks(self) -> range:
        return range(0, self.v, self.chunk)

    def in_chunk(self, v0: int, v1: int) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, columns)``: the kept rows whose target lies in ``[v0, v1)``, and where."""
        rows = np.flatnonzero(self.kept & (self.targets >= v0) & (self.targets < v1))
        return rows, self.targets[rows] - v0

    def row_losses(self, lse: np.ndarray, target_logit: np.ndarray, logit_sum: np.ndarray):
        """``-sum_c q_c log p_c = L - (1 - eps) z_t - eps / V sum_c z_c``, 0 on ignored rows."""
        rows = lse - (1 - self.eps) * target_logit
        if self.eps and self.v:  # no classes (V = 0): every row is ignored
            rows = rows - (self.eps / self.v) * logit_sum
        return np.where(self.kept, rows, 0.0)

    def reduce(self, rows: np.ndarray) -> Any:
        if self.reduction == "none":
            return rows
        total = rows.sum(dtype=np.float64)
        if self.reduction == "sum":
            return total
        return total / self.n_kept if self.n_kept else math.nan

    def row_scales(self) -> np.ndarray:
        """d(loss)/d(row loss): 1/n_kept for the mean (0 where nothing is kept), 0 on ignored rows."""
        base = 1.0
        if self.reduction == "mean":
            base = 1.0 / self.n_kept if self.n_kept else 0.0
        return np.where(self.kept, base, 0.0)


# --- NumPy ---------------------------------------------------------------------------------


def _np_logits(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, v0: int, v1: int, buf):
    z = buf[: x.shape[0] * (v1 - v0)].reshape(x.shape[0], v1 - v0)
    np.matmul(x, w[v0:v1].T, out=z)
    if b is not None:
        z += b[v0:v1]
    return z


def _np_forward(x, w, b, opt: _Options) -> tuple[np.ndarray, np.ndarray]:
    """``(lse, row_losses)`` in float64, one chunk of logits at a time."""
    from ._softmax import logsumexp

    lse = np.full(opt.n, -np.inf)
    target_logit = np.zeros(opt.n)
    logit_sum = np.zeros(opt.n)
    buf = np.empty(opt.n * opt.chunk, dtype=x.dtype)
    for v0 in opt.chunks():
        v1 = min(v0 + opt.chunk, opt.v)
        z = _np_logits(x, w, b, v0, v1, buf)
        lse = np.logaddexp(lse, logsumexp(z, axis=1))
        rows, cols = opt.in_chunk(v0, v1)
        target_logit[rows] = z[rows, cols]
        if opt.eps:
            logit_sum += z.sum(axis=1, dtype=np.float64)
    return lse, opt.row_losses(lse, target_logit, logit_sum)


def _np_backward(x, w, b, opt: _Options, lse: np.ndarray, scales: np.ndarray):
    """``(dx, dw, db)`` for row weights ``scales`` (d loss / d row loss)."""
    dtype = x.dtype
    dx = np.zeros_like(x)
    dw = np.empty_like(w)
    db = np.empty(opt.v, dtype=dtype) if b is not None else None
    buf = np.empty(opt.n * opt.chunk, dtype=dtype)
    from . import _kernels

    fused = _kernels.enabled()
    lse = np.ascontiguousarray(lse, dtype=np.float64)
    scales = np.ascontiguousarray(scales, dtype=np.float64)
    shift = lse.astype(dtype)[:, None]
    scale = scales.astype(dtype)[:, None]
    smooth = opt.eps / opt.v if opt.v else 0.0
    for v0 in opt.chunks():
        v1 = min(v0 + opt.chunk, opt.v)
        g = _np_logits(x, w, b, v0, v1, buf)
        rows, cols = opt.in_chunk(v0, v1)
        if fused:
            # in one pass: g = (exp(z - lse) - eps / V) * scale
            _kernels.chunk_grad(g, lse, scales, smooth)
        else:
            g -= shift
            np.exp(g, out=g)  # softmax probabilities of this chunk
            if opt.eps:
                g -= dtype.type(smooth)
            g *= scale
        g[rows, cols] -= (1 - opt.eps) * scale[rows, 0]
        dx += g @ w[v0:v1]
        np.matmul(g.T, x, out=dw[v0:v1])
        if db is not None:
            g.sum(axis=0, out=db[v0:v1])
    return dx, dw, db


# --- PyTorch ---------------------------------------------------------------------------------
#
# Torch tensors go to the operators of softmaxkit._backends._torch_linear_ce.  On the CPU
# they can run the NumPy code above on views of the tensors' memory (True) or the same
# chunks in torch operations, as other devices do (False).  NumPy's BLAS was the faster on
# the AMD machine first measured, but on the 2-core Intel machine of 2026-12-02, 2 threads,
# the NumPy path's three thread pools (OpenBLAS, our OpenMP, torch's OpenMP) spin against
# each other at every chunk: (256, 128) x 100,000 classes, forward and backward, took 245 ms
# both ways with the default chunks but 354 ms (NumPy) against 165 ms (torch) with chunks of
# 8192 classes, and (2048, 512) x 32,000 1208 ms against 1143 ms.  Tests run both.
_CPU_TENSORS_VIA_NUMPY = False


def _torch_backend(*arrays: Array) -> Any:
    """The torch operators' module when ``arrays`` (None aside) are all torch tensors."""
    backend = _backends.select(arrays[0])
    if backend is None or backend.NAME != "torch":
        return None
    from ._backends import _torch_linear_ce as torch_ops

    if not all(a is None or torch_ops.is_tensor(a) for a in arrays[1:]):
        return None  # mixed libraries: the generic path words the error
    return torch_ops


# --- JAX -------------------------------------------------------------------------------------


def _jax_loss(xp, x, w, b, t, out, ignore: int, reduction: Reduction, eps: float, chunk: Any):
    """The plain computation, logits formed: ``jax.grad`` differentiates it to any order.

    ``chunk`` was checked with the rest but is not used: XLA fuses the matmul and the
    reduction as it sees fit.
    """
    from ._losses import cross_entropy

    if is_concrete(t):
        _check_class_indices(to_numpy(t), t.dtype, int(w.shape[0]), ignore)
    z = x @ w.T if b is None else x @ w.T + b
    loss = cross_entropy(z, t, ignore_index=ignore, reduction=reduction, label_smoothing=eps)
    return xp.astype(loss, out)


# --- public functions ----------------------------------------------------------------------


def _arrays(inputs: Array, weight: Array, targets: Array, bias: Array | None):
    inputs = as_array(inputs, "inputs")
    weight = as_array(weight, "weight")
    targets = as_array(targets, "targets")
    arrays = (inputs, weight) if bias is None else (inputs, weight, as_array(bias, "bias"))
    xp = namespace(*arrays)
    work, out = compute_dtype(xp, xp.result_type(*(a.dtype for a in arrays)))
    cast = [xp.astype(a, work) if a.dtype != work else a for a in arrays]
    if bias is None:
        cast.append(None)
    return xp, cast[0], cast[1], cast[2], targets, out


def linear_cross_entropy(
    inputs: ArrayT,
    weight: ArrayT,
    targets: ArrayT,
    /,
    *,
    bias: ArrayT | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    chunk_size: int | None = None,
) -> ArrayT:
    r"""``cross_entropy(inputs @ weight.T + bias, targets)`` without forming the logits.

    The logits of a language model's output layer, ``(N, V)`` for ``N`` tokens and a
    vocabulary of ``V``, often take more memory than the rest of the step.  Here
    they are computed ``chunk_size`` classes at a time, reduced with an online
    logsumexp, and computed again chunk by chunk in the backward pass.

    Parameters
    ----------
    inputs : array of shape (N, D)
        Hidden states.
    weight : array of shape (V, D)
        The output layer's weight (one row per class).
    targets : integer array of shape (N,)
        Class indices in ``[0, V)``, or ``ignore_index`` for rows left out.
    bias : array of shape (V,), optional
    ignore_index, reduction, label_smoothing
        As in :func:`softmaxkit.cross_entropy` (PyTorch's meaning): ``"mean"``
        divides by the number of kept rows, and is NaN when there are none.  With
        no classes (``V = 0``) every target must be ``ignore_index``: the results
        are those of an empty batch (NaN mean, zero sum, zero gradients).
    chunk_size : int, optional
        Classes per chunk; default: as many as make ``N * chunk_size`` about
        16 million entries (64 MB in float32).

    Returns
    -------
    array
        0-d for ``"mean"`` and ``"sum"``, shape (N,) for ``"none"``; of the kind of
        ``inputs``.  PyTorch tensors run the operator
        ``torch.ops.softmaxkit.linear_cross_entropy`` (float32/float64 CPU tensors
        through the NumPy code on views of their memory, other devices through torch
        operations), whose result is differentiable once by autograd and
        ``torch.func`` (the inputs and one logsumexp per row are saved, never the
        logits; a second derivative raises :class:`SoftmaxkitError`), and which
        ``torch.compile``, ``torch.func.vmap`` and ``meta`` tensors see through;
        under ``torch.autocast`` the loss is float32, as PyTorch's cross-entropy.
        JAX arrays take the plain computation (the logits are formed) and are
        differentiable by ``jax.grad``, to any order; their arguments are checked
        as NumPy's and PyTorch's are, with the same errors (``chunk_size`` too,
        though XLA then chooses its own blocking).

    See Also
    --------
    linear_cross_entropy_grad : the loss and its three gradients, without autograd.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import linear_cross_entropy
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> W = np.array([[2.0, 0.0], [0.0, 1.0], [0.1, 0.1]])  # 3 classes
    >>> round(float(linear_cross_entropy(x, W, np.array([0, 1]), chunk_size=2)), 4)
    0.4121
    """
    torch_ops = _torch_backend(inputs, weight, bias)
    if torch_ops is not None:
        x, w, b, t, out = torch_ops.prepare(inputs, weight, targets, bias)
        settings = _validate(x, w, t, b, ignore_index, reduction, label_smoothing, chunk_size)
        return torch_ops.linear_cross_entropy(x, w, b, t, *settings).to(out)
    xp, x, w, b, targets, out = _arrays(inputs, weight, targets, bias)
    settings = _validate(x, w, targets, b, ignore_index, reduction, label_smoothing, chunk_size)
    if is_jax(x):
        return _jax_loss(xp, x, w, b, targets, out, *settings)
    opt = _Options(x, w, targets, b, ignore_index, reduction, label_smoothing, chunk_size)
    _, rows = _np_forward(x, w, b, opt)
    return np.asarray(opt.reduce(rows), dtype=out)  # type: ignore[return-value]  # NumPy here


def linear_cross_entropy_grad(
    inputs: ArrayT,
    weight: ArrayT,
    targets: ArrayT,
    /,
    *,
    bias: ArrayT | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    chunk_size: int | None = None,
) -> tuple[ArrayT, ArrayT, ArrayT, ArrayT | None]:
    r"""``(loss, d_inputs, d_weight, d_bias)`` of :func:`linear_cross_entropy`, chunked.

    Takes the arguments of :func:`linear_cross_entropy`.  With ``p`` the softmax
    of a row's logits and ``q`` its smoothed one-hot target, each chunk of classes
    gives ``G = (p - q) * scale`` (``scale``: ``1 / n_kept`` for ``"mean"``, 1 for
    ``"sum"``; for ``"none"`` the gradients are those of ``loss.sum()``), and
    ``d_inputs = sum over chunks of G @ W_c``, ``d_weight_c = G.T @ inputs``,
    ``d_bias_c = sum(G, axis=0)``.  ``d_bias`` is None without ``bias``.  Ignored
    rows get zero gradient; a mean over no kept rows is NaN with zero gradients
    (as PyTorch).

    NumPy arrays, and PyTorch tensors (the forward and backward operators, no autograd graph).

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import linear_cross_entropy_grad
    >>> x = np.array([[1.0, 0.0]])
    >>> W = np.array([[0.0, 0.0], [0.0, 0.0]])
    >>> loss, dx, dW, db = linear_cross_entropy_grad(x, W, np.array([0]), bias=np.zeros(2))
    >>> round(float(loss), 4), dW.tolist(), db.tolist()
    (0.6931, [[-0.5, 0.0], [0.5, 0.0]], [-0.5, 0.5])
    """
    torch_ops = _torch_backend(inputs, weight, bias)
    if torch_ops is not None:
        x, w, b, t, out = torch_ops.prepare(inputs, weight, targets, bias)
        settings = _validate(x, w, t, b, ignore_index, reduction, label_smoothing, chunk_size)
        loss, dx, dw, db = torch_ops.linear_cross_entropy_grad(x, w, b, t, *settings)
        return loss.to(out), dx.to(out), dw.to(out), None if db is None else db.to(out)
    _, x, w, b, targets, out = _arrays(inputs, weight, targets, bias)
    _validate(x, w, targets, b, ignore_index, reduction, label_smoothing, chunk_size)
    if is_jax(x):
        raise SoftmaxkitTypeError(
            "`inputs` of JAX: use jax.grad of linear_cross_entropy; "
            "linear_cross_entropy_grad takes NumPy arrays or PyTorch tensors"
        )
    opt = _Options(x, w, targets, b, ignore_index, reduction, label_smoothing, chunk_size)
    lse, rows = _np_forward(x, w, b, opt)
    dx, dw, db = _np_backward(x, w, b, opt, lse, opt.row_scales())
    loss = np.asarray(opt.reduce(rows), dtype=out)
    db_out = db.astype(out, copy=False) if db is not None else None
    return loss, dx.astype(out, copy=False), dw.astype(out, copy=False), db_out  # type: ignore[return-value]
