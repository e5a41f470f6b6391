"""``pip install sampy`` is the optimizers only: they import and run without the book's packages.

The install's ``dependencies`` are NumPy and autograd; SciPy, matplotlib and ipywidgets are the
``book`` extra and torch the ``torch`` extra (pyproject.toml). Each check runs in a fresh
interpreter where the book's packages cannot be imported (``sys.modules[name] = None`` makes
``import name`` raise ``ImportError``), so an import added at module level anywhere on the
optimizers' path fails here.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK_PACKAGES = ("scipy", "matplotlib", "ipywidgets", "IPython", "sklearn")

BLOCK = f"""
import sys
for name in {BOOK_PACKAGES!r}:
    sys.modules[name] = None
"""


def _run_without_book_packages(code: str) -> subprocess.CompletedProcess:
    script = BLOCK + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def _check(code: str) -> str:
    result = _run_without_book_packages(code)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_block_itself_works():
    """The blocked packages really cannot be imported in the subprocess (else nothing is shown)."""
    for name in BOOK_PACKAGES:
        result = _run_without_book_packages(f"import {name}")
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, name


def test_install_dependencies_are_the_optimizers_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert sorted(project["dependencies"]) == ["autograd", "numpy"]
    extras = project["optional-dependencies"]
    assert {"scipy", "matplotlib", "ipywidgets"} <= set(extras["book"])
    assert extras["torch"] == ["torch"]


def test_every_reference_variant_imports_and_steps_without_the_book_packages():
    out = _check(
        """
        import numpy as np
        import sampy
        import sampy.optim
        import sampy.optim.rules
        from sampy.problems import make_logistic_problem

        problem = make_logistic_problem()
        ran = 0
        for row in sampy.variants():
            opt = row.make(sampy.optim.SGD(lr=0.01))
            f = problem if row.needs_examples else "rosenbrock"
            x0 = np.zeros((2, problem.dim)) if row.needs_examples else np.array([[-1.0, 1.5]])
            traj = sampy.run(opt, f, x0, 3)
            assert np.isfinite(traj.xs).all(), row.name
            ran += 1
        sampy.table_html()
        book = {BOOK!r}
        loaded = [k for k, m in sys.modules.items() if m is not None and k.split(".")[0] in book]
        print(ran, sorted(loaded))
        """.replace("{BOOK!r}", repr(set(BOOK_PACKAGES)))
    )
    count, loaded = out.split(" ", 1)
    assert int(count) >= 30
    assert loaded.strip() == "[]"


def test_torch_twins_import_and_step_without_the_book_packages():
    pytest.importorskip("torch")
    _check(
        """
        import torch
        import sampy.torch
        import sampy.torch.rules

        w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
        opt = sampy.torch.SAM([w], lr=0.1, rho=0.05)

        def closure():
            opt.zero_grad()
            loss = (w ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        assert torch.isfinite(w).all()
        """
    )


def test_plot_says_which_extra_it_needs():
    result = _run_without_book_packages("import sampy.plot")
    assert result.returncode != 0
    assert "sampy[book]" in result.stderr and "matplotlib" in result.stderr


def test_the_makefile_venv_still_installs_every_extra():
    """``make venv`` installs requirements.txt, then sampy without dependencies: the pins must
    cover the install's dependencies and every extra, or the book and the tests break."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pinned = {
        line.split("==")[0].split(">=")[0].strip().lower()
        for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    wanted = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= set(extra)
    assert {name.lower() for name in wanted} <= pinned
    assert "-r ,$(REQUIREMENTS)" in (ROOT / "Makefile").read_text(encoding="utf-8")
