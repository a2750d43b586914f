"""The kernels' cache of freed outputs: a buffer is reused only once nothing refers to it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import softmaxkit as sk
from softmaxkit import _kernels

SHAPE = (512, 1024)  # 2 MiB of float32: above the cache's 1 MiB minimum


@pytest.fixture(autouse=True)
def fresh_cache():
    previous = _kernels.set_output_cache(False)  # empties it
    _kernels.set_output_cache(True)
    yield
    _kernels.set_output_cache(previous)


def _x(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(SHAPE, dtype=np.float32)


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def test_a_freed_output_is_reused():
    first = sk.softmax(_x())
    address = _address(first)
    del first
    assert _address(sk.softmax(_x())) == address


def test_a_held_output_is_never_overwritten():
    x, y = _x(0), _x(1)
    held = sk.softmax(x)
    expected = held.copy()
    other = sk.softmax(y)
    assert _address(other) != _address(held)
    np.testing.assert_array_equal(held, expected)


@pytest.mark.parametrize("keep", ["view", "tensor", "numpy of a tensor"])
def test_views_and_tensors_keep_their_buffer(keep):
    out = sk.softmax(_x(0))
    if keep == "view":
        kept = out[3:5]
    elif keep == "tensor":
        kept = torch.from_numpy(out)
    else:
        kept = torch.from_numpy(out).numpy()
    expected = kept.clone().numpy() if isinstance(kept, torch.Tensor) else kept.copy()
    address = _address(out)
    del out
    again = sk.softmax(_x(1))
    assert _address(again) != address
    np.testing.assert_array_equal(np.asarray(kept), expected)


def test_torch_outputs_come_from_the_cache_and_stay_intact():
    x = torch.from_numpy(_x(0))
    held = sk.log_softmax(x)
    expected = held.clone()
    pointer = held.data_ptr()
    other = sk.log_softmax(torch.from_numpy(_x(1)))
    assert other.data_ptr() != pointer
    torch.testing.assert_close(held, expected, rtol=0, atol=0)
    del held
    assert sk.log_softmax(x).data_ptr() == pointer


def test_switched_off_every_output_is_new():
    _kernels.set_output_cache(False)
    first = sk.softmax(_x())
    address = _address(first)
    kept = [first]  # an allocator may hand a freed block back; held, it cannot
    assert _address(sk.softmax(_x())) != address
    assert not _kernels._cache
    del kept


def test_the_cache_is_bounded():
    held = [sk.softmax(_x(i)) for i in range(_kernels._CACHE_BUFFERS + 3)]
    assert len(_kernels._cache) <= _kernels._CACHE_BUFFERS
    assert sum(b.nbytes for b in _kernels._cache) <= _kernels._CACHE_MAX_BYTES
    for i, out in enumerate(held):  # none was handed out twice
        np.testing.assert_allclose(out.sum(axis=-1), 1, rtol=1e-5)
        assert all(_address(out) != _address(o) for o in held[i + 1 :])
