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

Memory beyond the inputs and the gradients is one ``(N, chunk_size)`` block.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from ._backend import as_array, compute_dtype, is_jax, is_torch, namespace, to_numpy
from ._errors import SoftmaxkitTypeError, SoftmaxkitValueError
from ._options import check_ignore_index, check_label_smoothing, check_reduction

__all__ = ["linear_cross_entropy", "linear_cross_entropy_grad"]

Array = Any


# Elements of one chunk of logits when chunk_size is not given: 64 MB of float32.
_CHUNK_ELEMENTS = 1 << 24


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
        if inputs.ndim != 2:
            raise SoftmaxkitValueError(
                f"`inputs` must have shape (N, D); got shape {tuple(inputs.shape)}"
            )
        n, d = inputs.shape
        if weight.ndim != 2 or weight.shape[1] != d:
            raise SoftmaxkitValueError(
                f"`weight` must have shape (V, {d}) to match `inputs`; got shape "
                f"{tuple(weight.shape)}"
            )
        v = weight.shape[0]
        if tuple(targets.shape) != (n,):
            raise SoftmaxkitValueError(
                f"`targets` must have shape ({n},), one class index per row of `inputs`; got "
                f"shape {tuple(targets.shape)}"
            )
        if bias is not None and tuple(bias.shape) != (v,):
            raise SoftmaxkitValueError(
                f"`bias` must have shape ({v},), one entry per row of `weight`; got shape "
                f"{tuple(bias.shape)}"
            )
        reduction = check_reduction(reduction)
        ignore = check_ignore_index(ignore_index)
        eps = check_label_smoothing(label_smoothing)
        if chunk_size is None:
            chunk = max(1, min(v, _CHUNK_ELEMENTS // max(n, 1)))
        else:
            try:
                chunk = operator.index(chunk_size)
            except TypeError:
                raise SoftmaxkitTypeError(
                    f"`chunk_size` must be a positive int or None; got {chunk_size!r}"
                ) from None
            if chunk < 1:
                raise SoftmaxkitValueError(f"`chunk_size` must be at least 1; got {chunk}")
        t = to_numpy(targets)
        if t.dtype.kind not in "iu":
            raise SoftmaxkitTypeError(
                f"`targets` must hold integer class indices; got dtype {targets.dtype}"
            )
        bad = ((t < 0) | (t >= v)) & (t != ignore)
        if bad.any():
            pos = int(np.argmax(bad))
            raise SoftmaxkitValueError(
                f"`targets` must be in [0, {v}) or {ignore}; position {pos} holds {int(t[pos])}"
            )
        kept = t != ignore
        self.n, self.d, self.v = n, d, v
        self.targets = np.where(kept, t, 0).astype(np.int64)
        self.kept = kept
        self.n_kept = int(kept.sum())
        self.reduction = str(reduction)
        self.eps = eps
        self.chunk = min(chunk, v) if v else 1

    def chunks(self) -> range:
        return range(0, self.v, self.chunk)

    def in_chunk(self, v0: int, v1: int) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, columns)``: the kept rows whose target lies in ``[v0, v1)``, and where."""
        rows = np.flatnonzero(self.kept & (self.targets >= v0) & (self.targets < v1))
        return rows, self.targets[rows] - v0

    def row_losses(self, lse: np.ndarray, target_logit: np.ndarray, logit_sum: np.ndarray):
        """``-sum_c q_c log p_c = L - (1 - eps) z_t - eps / V sum_c z_c``, 0 on ignored rows."""
        rows = lse - (1 - self.eps) * target_logit
        if self.eps:
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
    smooth = opt.eps / opt.v
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


# --- PyTorch -------------------------------------------------------------------------------


def _torch_function() -> Any:
    """The autograd Function, defined on first use so that importing softmaxkit skips torch."""
    global _TorchFunction
    if _TorchFunction is not None:
        return _TorchFunction
    import torch

    def host(x: Any) -> bool:
        # CPU tensors run the NumPy code on views of the same memory: NumPy's BLAS was
        # markedly faster than torch.mm for these shapes on the AMD machine we measured.
        return bool(
            _CPU_TENSORS_VIA_NUMPY
            and x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64)
        )

    def as_numpy(x: Any, w: Any, b: Any) -> tuple[Any, Any, Any]:
        def view(t: Any) -> Any:
            return None if t is None else t.detach().contiguous().numpy()

        return view(x), view(w), view(b)

    def logits(x, w, b, v0, v1, buf):
        z = buf[: x.shape[0] * (v1 - v0)].view(x.shape[0], v1 - v0)
        torch.mm(x, w[v0:v1].t(), out=z)
        if b is not None:
            z += b[v0:v1]
        return z

    class LinearCrossEntropy(torch.autograd.Function):
        """Saves the inputs and one number per row (the logsumexp), never the logits."""

        @staticmethod
        def forward(ctx, x, w, b, opt):  # type: ignore[override]
            ctx.opt = opt
            if host(x):
                lse_np, rows = _np_forward(*as_numpy(x, w, b), opt)
                ctx.save_for_backward(x, w, b, torch.from_numpy(lse_np))
                return torch.as_tensor(opt.reduce(rows), dtype=x.dtype)
            n = opt.n
            lse = torch.full((n,), -math.inf, dtype=torch.float64, device=x.device)
            target_logit = torch.zeros(n, dtype=torch.float64, device=x.device)
            logit_sum = torch.zeros(n, dtype=torch.float64, device=x.device)
            buf = torch.empty(n * opt.chunk, dtype=x.dtype, device=x.device)
            for v0 in opt.chunks():
                v1 = min(v0 + opt.chunk, opt.v)
                z = logits(x, w, b, v0, v1, buf)
                lse = torch.logaddexp(lse, torch.logsumexp(z, dim=1).double())
                rows, cols = opt.in_chunk(v0, v1)
                rows_t = torch.from_numpy(rows).to(x.device)
                target_logit[rows_t] = z[rows_t, torch.from_numpy(cols).to(x.device)].double()
                if opt.eps:
                    logit_sum += z.sum(dim=1, dtype=torch.float64)
            rows = opt.row_losses(
                lse.cpu().numpy(), target_logit.cpu().numpy(), logit_sum.cpu().numpy()
            )
            ctx.save_for_backward(x, w, b, lse)
            loss = opt.reduce(rows)
            return torch.as_tensor(loss, dtype=x.dtype, device=x.device)

        @staticmethod
        def backward(ctx, grad_loss):  # type: ignore[override]
            x, w, b, lse = ctx.saved_tensors
            opt = ctx.opt
            scales = torch.from_numpy(opt.row_scales()).to(x.device, x.dtype)
            scales = scales * grad_loss.to(x.dtype)  # a scalar, or one per row for "none"
            need_x, need_w, need_b = ctx.needs_input_grad[:3]
            if host(x):
                grads = _np_backward(*as_numpy(x, w, b), opt, lse.numpy(), scales.double().numpy())
                dx_np, dw_np, db_np = (None if g is None else torch.from_numpy(g) for g in grads)
                return (
                    dx_np if need_x else None,
                    dw_np if need_w else None,
                    db_np if need_b else None,
                    None,
                )
            dx = torch.zeros_like(x) if need_x else None
            dw = torch.empty_like(w) if need_w else None
            db = torch.empty_like(b) if (need_b and b is not None) else None
            buf = torch.empty(opt.n * opt.chunk, dtype=x.dtype, device=x.device)
            shift = lse.to(x.dtype)[:, None]
            for v0 in opt.chunks():
                v1 = min(v0 + opt.chunk, opt.v)
                g = logits(x, w, b, v0, v1, buf)
                g -= shift
                g.exp_()
                if opt.eps:
                    g -= opt.eps / opt.v
                rows, cols = opt.in_chunk(v0, v1)
                g[torch.from_numpy(rows).to(x.device), torch.from_numpy(cols).to(x.device)] -= (
                    1 - opt.eps
                )
                g *= scales[:, None]
                if dx is not None:
                    dx.addmm_(g, w[v0:v1])
                if dw is not None:
                    torch.mm(g.t(), x, out=dw[v0:v1])
                if db is not None:
                    torch.sum(g, dim=0, out=db[v0:v1])
            return dx, dw, db, None

    _TorchFunction = LinearCrossEntropy
    return _TorchFunction


_TorchFunction: Any = None

# Tests turn this off to run the torch code (which GPU tensors take) on the CPU.
_CPU_TENSORS_VIA_NUMPY = True


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
    inputs: Array,
    weight: Array,
    targets: Array,
    /,
    *,
    bias: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    chunk_size: int | None = None,
) -> Array:
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
        divides by the number of kept rows, and is NaN when there are none.
    chunk_size : int, optional
        Classes per chunk; default: as many as make ``N * chunk_size`` about
        16 million entries (64 MB in float32).

    Returns
    -------
    array
        0-d for ``"mean"`` and ``"sum"``, shape (N,) for ``"none"``; of the kind of
        ``inputs``.  With PyTorch tensors the result is differentiable by autograd
        (an ``autograd.Function`` that saves the inputs and one logsumexp per row,
        never the logits; float CPU tensors are computed by the NumPy code on views
        of their memory, other devices by torch operations).  JAX arrays take the plain computation (the logits are
        formed) and are differentiable by ``jax.grad``.

    See Also
    --------
    linear_cross_entropy_grad : the loss and its three gradients for NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import linear_cross_entropy
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> W = np.array([[2.0, 0.0], [0.0, 1.0], [0.1, 0.1]])  # 3 classes
    >>> round(float(linear_cross_entropy(x, W, np.array([0, 1]), chunk_size=2)), 4)
    0.4121
    """
    xp, x, w, b, targets, out = _arrays(inputs, weight, targets, bias)
    if is_jax(x):
        from ._losses import cross_entropy

        z = x @ w.T if b is None else x @ w.T + b
        loss = cross_entropy(
            z,
            targets,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
        )
        return xp.astype(loss, out)
    opt = _Options(x, w, targets, b, ignore_index, reduction, label_smoothing, chunk_size)
    if is_torch(x):
        loss = _torch_function().apply(x, w, b, opt)
        return loss.to(out)
    _, rows = _np_forward(x, w, b, opt)
    return np.asarray(opt.reduce(rows), dtype=out)


def linear_cross_entropy_grad(
    inputs: Array,
    weight: Array,
    targets: Array,
    /,
    *,
    bias: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    chunk_size: int | None = None,
) -> tuple[Array, Array, Array, Array | None]:
    r"""``(loss, d_inputs, d_weight, d_bias)`` of :func:`linear_cross_entropy`, chunked.

    Takes the arguments of :func:`linear_cross_entropy`.  With ``p`` the softmax
    of a row's logits and ``q`` its smoothed one-hot target, each chunk of classes
    gives ``G = (p - q) * scale`` (``scale``: ``1 / n_kept`` for ``"mean"``, 1 for
    ``"sum"``; for ``"none"`` the gradients are those of ``loss.sum()``), and
    ``d_inputs = sum over chunks of G @ W_c``, ``d_weight_c = G.T @ inputs``,
    ``d_bias_c = sum(G, axis=0)``.  ``d_bias`` is None without ``bias``.  Ignored
    rows get zero gradient; a mean over no kept rows is NaN with zero gradients
    (as PyTorch).

    NumPy arrays (and PyTorch tensors, through the same autograd function).

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
    _, x, w, b, targets, out = _arrays(inputs, weight, targets, bias)
    if is_jax(x):
        raise SoftmaxkitTypeError(
            "`inputs` of JAX: use jax.grad of linear_cross_entropy; "
            "linear_cross_entropy_grad takes NumPy arrays or PyTorch tensors"
        )
    opt = _Options(x, w, targets, b, ignore_index, reduction, label_smoothing, chunk_size)
    if is_torch(x):
        import torch

        with torch.enable_grad():
            leaves = [
                a.detach().requires_grad_(True) for a in (x, w) + ((b,) if b is not None else ())
            ]
            loss = _torch_function().apply(
                leaves[0], leaves[1], leaves[2] if b is not None else None, opt
            )
            loss.backward(torch.ones_like(loss))
        grads = [leaf.grad.to(out) for leaf in leaves]
        return loss.detach().to(out), grads[0], grads[1], grads[2] if b is not None else None
    lse, rows = _np_forward(x, w, b, opt)
    dx, dw, db = _np_backward(x, w, b, opt, lse, opt.row_scales())
    loss = np.asarray(opt.reduce(rows), dtype=out)
    db_out = db.astype(out, copy=False) if db is not None else None
    return loss, dx.astype(out, copy=False), dw.astype(out, copy=False), db_out
