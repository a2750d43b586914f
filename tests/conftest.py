"""Shared fixtures: every backend through the same tests, compared with NumPy."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import jax
import torch

# float64 on JAX too, so every backend can be compared with NumPy at float64 tolerance.
jax.config.update("jax_enable_x64", True)
torch.set_num_threads(2)


@dataclass(frozen=True)
class Backend:
    """How a test makes arrays of one library and reads them back."""

    name: str

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        a = np.asarray(a) if dtype is None else np.asarray(a, dtype=dtype)
        if self.name == "numpy":
            return a
        if self.name == "torch":
            return torch.from_numpy(np.array(a))
        import jax.numpy as jnp

        return jnp.asarray(a)

    def to_numpy(self, x: Any) -> np.ndarray:
        if self.name == "torch":
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def is_native(self, x: Any) -> bool:
        """Whether ``x`` is an array of this backend (the kind the caller gave)."""
        if self.name == "numpy":
            return isinstance(x, np.ndarray)
        if self.name == "torch":
            return isinstance(x, torch.Tensor)
        return isinstance(x, jax.Array)


BACKENDS = ("numpy", "torch", "jax")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return Backend(request.param)


# The two ways NumPy input can be served: "portable" (the array-API code in _softmax and
# _derivatives) and "compiled" (softmaxkit._kernels, the C extension built by `pip install`);
# every test using `kernel_path` or `engine` runs on both.  "compiled" is not skipped where the
# extension failed to build: its tests then fail, which is the point.
KERNEL_PATHS: tuple[str, ...] = ("portable", "compiled")


def _use_kernel_path(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    from softmaxkit import _kernels

    compiled = path == "compiled"
    monkeypatch.setattr(_kernels, "enabled", lambda *args, **kwargs: compiled)


@pytest.fixture(params=KERNEL_PATHS)
def kernel_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The NumPy path under test, forced on for the duration of the test."""
    _use_kernel_path(monkeypatch, request.param)
    return str(request.param)


# The three ways a torch tensor can be served (softmaxkit._backends._torch): the kernel
# operators, PyTorch's fused functions with the edge cases restored by arithmetic (what
# GPU tensors take), and the portable array-API code.
TORCH_PATHS: tuple[str, ...] = ("operators", "fused", "portable")

# JAX arrays on CPU: "ffi" (the kernels as XLA custom calls, softmaxkit._backends._jax),
# "graph" (the lean XLA graphs of softmaxkit._backends._jax_graph, what other devices
# take) and "portable" (the array-API code under jit, the reference).
JAX_PATHS: tuple[str, ...] = ("ffi", "graph", "portable")

ENGINES = (
    *(f"numpy-{path}" for path in KERNEL_PATHS),
    *(f"torch-{path}" for path in TORCH_PATHS),
    *(f"jax-{path}" for path in JAX_PATHS),
)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """Like `backend`, but NumPy and torch once per path: for the edge-case matrix."""
    name, _, path = str(request.param).partition("-")
    if name == "numpy":
        _use_kernel_path(monkeypatch, path)
    if name == "torch":
        _use_torch_path(monkeypatch, path)
    if name == "jax":
        _use_jax_path(monkeypatch, path)
    return Backend(name)


def _use_jax_path(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    from softmaxkit._backends import _jax

    monkeypatch.setattr(_jax, "_path", path)


def _use_torch_path(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    from softmaxkit._backends import _torch

    monkeypatch.setattr(_torch, "_path", path)


@pytest.fixture(params=TORCH_PATHS)
def torch_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The torch path under test, forced for the duration of the test."""
    _use_torch_path(monkeypatch, request.param)
    return str(request.param)
