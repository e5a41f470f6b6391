"""The SAM step benchmark's harness, without timing: its rows must compare like with like.

``benchmarks/torch_step.py`` times sampy's SAM against its peers, a bare inline SAM step (the
floor) and the parts of its denominators. The floor is a floor only if it takes the same step,
and ``1 SGD step + 1 fb`` is ``2 fb + 1 base`` only if the fb row computes gradients and takes
no step. Both are checked here on a small MLP: a few steps of each implementation
from one start, then their weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_optimizer")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the benchmarks package lives at the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks import torch_step as ts  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WIDTHS = [12] * 10 + [3]  # 20 tensors: the gathered norm (many small tensors) is exercised


@pytest.mark.parametrize("widths", [[6, 8, 3], WIDTHS], ids=["3 layers", "10 layers"])
def test_every_sam_row_takes_the_same_step_and_the_fb_row_no_step(widths):
    steps, models = ts.make_steps(widths)
    start = {name: [p.detach().clone() for p in m.parameters()] for name, m in models.items()}
    for _ in range(4):
        for step in steps.values():
            step()
    sam = [p.detach() for p in models["sampy"].parameters()]
    moved = max(float((a - b).abs().max()) for a, b in zip(sam, start["sampy"], strict=True))
    assert moved > 1e-4  # the steps went somewhere
    for name in ("floor", "davda54", "pytorch_optimizer", "pytorch_optimizer_foreach"):
        for a, b in zip(models[name].parameters(), sam, strict=True):
            torch.testing.assert_close(a.detach(), b, rtol=0, atol=1e-6, msg=name)
    # the fb row: the gradient at the start, computed four times, never applied
    fb = models["fb"]
    _, x, y = ts.problem(widths)
    loss = torch.nn.functional.cross_entropy(fb(x), y)
    expected = torch.autograd.grad(loss, list(fb.parameters()))
    for p, w, g in zip(fb.parameters(), start["fb"], expected, strict=True):
        assert torch.equal(p.detach(), w)
        torch.testing.assert_close(p.grad, g, rtol=0, atol=1e-7)
