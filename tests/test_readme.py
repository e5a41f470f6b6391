"""The README's code runs as printed: a newcomer's first contact must not be a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import sampy

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_the_two_commands_and_its_examples():
    text = README.read_text(encoding="utf-8")
    assert "make book" in text and "make test" in text
    assert len(_python_blocks()) == 3


def test_numpy_example_runs_and_sam_prefers_the_flat_minimum(capsys):
    numpy_block = next(b for b in _python_blocks() if "sampy.run" in b)
    exec(compile(numpy_block, "README.md", "exec"), {})
    shares = re.findall(r"(SGD|SAM) (\d+)%", capsys.readouterr().out)
    share = {name: int(value) for name, value in shares}
    assert share["SAM"] > share["SGD"], share


def test_torch_example_trains_the_model():
    torch = pytest.importorskip("torch")
    torch_block = next(b for b in _python_blocks() if "sampy.torch" in b)
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 784, generator=gen)
    targets = torch.randint(0, 10, (64,), generator=gen)
    namespace = {"loader": [(inputs, targets)] * 30}
    torch.manual_seed(0)
    exec(compile(torch_block, "README.md", "exec"), namespace)
    model = namespace["model"]
    final = torch.nn.functional.cross_entropy(model(inputs), targets).item()
    assert final < 0.5 * torch.log(torch.tensor(10.0)).item()


def test_knobs_example_builds_an_optimizer_that_runs():
    block = next(b for b in _python_blocks() if "with_knobs" in b)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    traj = sampy.run(namespace["opt"], "rosenbrock", [[-1.0, 1.5], [0.5, 0.2]], 50)
    assert not traj.diverged.any()
    assert traj.grad_evals == 100  # GSAM: two gradients per step, knobs add none


def test_the_browser_twins_command_line_example_answers_as_described():
    from lab_helpers import ask_lab

    text = README.read_text(encoding="utf-8")
    [request] = re.findall(r"echo '(\{.*?\})' \| node lab/dist/node/sampy-lab-cli\.cjs", text, re.S)
    answer = ask_lab(json.loads(request))
    assert {"xs", "losses", "grad_evals", "diverged_at"} <= set(answer)
    end = answer["xs"][-1][0]
    flat = sampy.functions.get("sharp_flat").minima[1]
    assert abs(end[0] - flat[0]) < 0.1 and answer["diverged_at"] == [-1]


def test_the_readme_pictures_exist():
    text = README.read_text(encoding="utf-8")
    for path in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (README.parent / path).is_file(), path
