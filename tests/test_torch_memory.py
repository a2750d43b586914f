"""Memory of cross-entropy on torch tensors: no one-hot target, nothing N x C saved for backward.

Peak resident memory is a bound that does not depend on the machine's load, so it is tested
here (timings live in ``softmaxkit bench``).  Each measurement runs in a fresh process, whose
peak RSS after the inputs are made is the baseline.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

N, C = 2048, 32000  # float32 logits: 262 MB

SCRIPT = """
import json, resource, sys
import torch, torch.nn.functional as F
import softmaxkit as sk

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

torch.manual_seed(0)
x = torch.randn({n}, {c}).requires_grad_()
t = torch.randint(0, {c}, ({n},))
sk.cross_entropy(x[:2].detach(), t[:2])  # load the operators before the baseline
base = peak()
loss = (sk.cross_entropy if sys.argv[1] == "softmaxkit" else F.cross_entropy)(x, t)
loss.backward()
print(json.dumps({{"extra": peak() - base, "logits": x.numel() * 4}}))
"""


def _extra(which: str) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(n=N, c=C), which],
        capture_output=True,
        text=True,
        check=True,
        env={"OMP_NUM_THREADS": "2", "SOFTMAXKIT_NUM_THREADS": "2", "PATH": ""},
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_cross_entropy_backward_peak_memory_is_the_gradient_alone():
    ours = _extra("softmaxkit")
    theirs = _extra("torch")
    # The gradient (one logits' worth) and small change; PyTorch saves log_softmax (N x C)
    # and then makes the gradient beside it.
    assert ours["extra"] <= 1.25 * ours["logits"], ours
    assert ours["extra"] <= theirs["extra"], (ours, theirs)
