"""Which backend computes a validated call: one module per array library.

The public functions validate their arguments once and then ask
:func:`select` for the backend that owns the array.  A backend supplies a
small, fixed set of primitives, each of which returns ``None`` for a case it
does not serve, and the public function then runs the portable array-API code
(the reference every backend is tested against):

========================  ===============================================================
primitive                 arguments (validated: working dtype, masked entries ``-inf``)
========================  ===============================================================
``softmax``               ``x, axes, temperature, out_dtype``
``log_softmax``           ``x, axes, temperature, out_dtype``
``logsumexp``             ``x, axes, out_dtype`` (reduced axes kept, length 1)
``softmax_backward``      ``grad, p, axes, out_dtype``
``log_softmax_backward``  ``grad, logp, axes, out_dtype``
``cross_entropy``         the caller's ``logits, target`` and options, ``need_grad``
========================  ===============================================================

The NumPy backend's primitives (not ``logsumexp``) also take ``out=``, the caller's
array for the result (see :mod:`._numpy`); it is passed only when given.

The torch backend serves ``nll_loss`` and ``binary_cross_entropy_with_logits`` the same
way; its losses live in :mod:`._torch_losses` and ``linear_cross_entropy`` in
:mod:`._torch_linear_ce`, beside the core operators of :mod:`._torch`.

* NumPy arrays: :mod:`._numpy`, the compiled C kernels.
* PyTorch tensors: :mod:`._torch`, ``torch.library`` operators over the same
  kernels on CPU, PyTorch's fused functions elsewhere.
* JAX arrays: :mod:`._jax`.  On CPU, where the extension ``_jax_kernels`` was built and
  the kernels are enabled, the same kernels as XLA custom calls (``jax.ffi``) with
  ``custom_vjp``; elsewhere (other devices, the kernels off or not built) the lean XLA
  graphs of :mod:`._jax_graph`.
* Anything else (other array-API libraries): the portable path.

Nothing here imports a framework: the torch and JAX backends are loaded only once
the caller has imported the framework and passed one of its arrays.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

from . import _numpy  # the C kernels' wrappers: no framework to import

__all__ = ["call", "jax_backend", "select", "torch_backend"]

_TORCH: ModuleType | None = None
_JAX: ModuleType | None = None


def torch_backend() -> ModuleType:
    """The torch backend module (imports torch; call only with a tensor in hand)."""
    global _TORCH
    if _TORCH is None:
        from . import _torch

        _TORCH = _torch
    return _TORCH


def jax_backend() -> ModuleType:
    """The JAX backend module (imports jax; call only with a JAX array in hand)."""
    global _JAX
    if _JAX is None:
        from . import _jax

        _JAX = _jax
    return _JAX


def select(x: Any) -> ModuleType | None:
    """The backend module for ``x``'s kind of array, or None for the portable path."""
    if type(x) is np.ndarray:
        return _numpy if _numpy.enabled() else None
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return torch_backend()
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(x, jax.Array):
        backend = jax_backend()
        return backend if backend.serves(x) else None
    return None


def call(primitive: Any, *args: Any, out: Any = None) -> Any:
    """``primitive(*args)``, given ``out=`` only where the caller gave one (NumPy's alone takes it)."""
    return primitive(*args) if out is None else primitive(*args, out=out)
