"""What the tests of the browser laboratory share: building it once, and asking node.

The laboratory's JavaScript twin (``lab/src``) is bundled by ``lab/build_lab.py``; its
command-line entry answers run requests (JSON on stdin, JSON on stdout). The equality tests
send all their requests in one list, so node starts once per session.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
LAB = REPO_ROOT / "lab"


def require_node() -> str:
    """The node executable; skipped outside CI when absent, a failure in CI."""
    node = shutil.which("node")
    if node:
        return node
    if os.environ.get("CI"):
        pytest.fail("node is missing in CI: the browser twin's tests need it (apt install nodejs)")
    pytest.skip("node is not installed; the browser twin's tests are skipped")


@functools.cache
def build_module():
    """``lab/build_lab.py`` imported as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("build_lab", LAB / "build_lab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def built_lab() -> Path:
    """Build the laboratory once per session (metadata export and bundles); ``lab/dist``."""
    module = build_module()
    try:
        return module.build(minify=False)
    except module.LabBuildError as error:
        pytest.fail(f"the browser laboratory does not build: {error}")


def node_json(script: Path, payload: Any = None, *args: str, timeout: float = 600) -> Any:
    """Run ``node script args`` with ``payload`` as JSON on stdin; return the parsed stdout.

    A failed run (exit status other than 0 or 1, or no JSON on stdout) fails the test with
    node's stderr.
    """
    node = require_node()
    proc = subprocess.run(
        [node, str(script), *args],
        input=json.dumps(payload, allow_nan=False),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode not in (0, 1):
        pytest.fail(f"node {script.name} exited {proc.returncode}:\n{proc.stderr}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"node {script.name} printed no JSON:\n{proc.stdout[:2000]}\n{proc.stderr}")


def ask_lab(requests: list[dict] | dict) -> Any:
    """The command-line laboratory's answer to one request or a list of them."""
    return node_json(built_lab() / "node" / "sampy-lab-cli.cjs", requests)


def as_json_value(value: Any) -> Any:
    """A hyperparameter value as a request carries it (∞ as the string "inf", tuples as lists)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else "nan"
    if isinstance(value, (tuple, list)):
        return [as_json_value(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def close(js: np.ndarray, py: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Elementwise ``|js − py| ≤ tol · max(1, |py|)``: absolute near 0, relative beyond 1.

    Non-finite entries must agree exactly (the answer writes them as ``None``/NaN).
    """
    js = np.asarray(js, dtype=float)
    py = np.asarray(py, dtype=float)
    both_bad = ~np.isfinite(js) & ~np.isfinite(py)
    with np.errstate(invalid="ignore"):
        ok = np.abs(js - py) <= tol * np.maximum(1.0, np.abs(py))
    return ok | both_bad


def node_library(body: str, payload: Any = None, tmp_dir: Path | None = None) -> Any:
    """Run ``body`` (the body of an async function: it may ``await``) in node, with the
    laboratory's library as ``lab`` and the JSON ``payload`` as ``input``; ``body`` ends with
    ``return <value>``, and the value comes back as JSON."""
    import tempfile

    library = built_lab() / "node" / "sampy-lab.cjs"
    script = (
        f"const lab = require({json.dumps(str(library))});\n"
        "const input = JSON.parse(require('fs').readFileSync(0, 'utf8') || 'null');\n"
        f"(async () => {{\n{body}\n}})().then((output) => "
        "process.stdout.write(JSON.stringify(output)));\n"
    )
    with tempfile.TemporaryDirectory(dir=tmp_dir) as folder:
        path = Path(folder) / "script.cjs"
        path.write_text(script, encoding="utf-8")
        return node_json(path, payload)
