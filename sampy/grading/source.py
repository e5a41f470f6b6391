"""The code of a submission: a ``.py`` file whole, or a notebook's code cells one by one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class UnreadableSubmission(ValueError):
    """A file that holds no code Python can be given (a notebook that is not JSON, say)."""


@dataclass(frozen=True)
class CodeUnit:
    """A piece of code run as one block.

    Attributes:
        filename: the name tracebacks show (``alice.py``, ``alice.ipynb, cell 3``).
        code: the Python source.
        stop_on_error: a ``.py`` file is one module, so an error ends its loading; a notebook
            goes on with its next cell, as nbgrader's autograder does, so that one broken cell
            does not cost every exercise.
    """

    filename: str
    code: str
    stop_on_error: bool


def _is_nbgrader_test_cell(cell: dict) -> bool:
    # The student edition's locked cells call the checker; the grader runs the checker itself,
    # and an `assert check(...).passed` there would stop nothing but cost the load's time.
    nbgrader = cell.get("metadata", {}).get("nbgrader", {})
    return bool(nbgrader.get("grade")) and not nbgrader.get("solution")


def _without_magics(source: str) -> str | None:
    """The cell's Python: IPython's line magics and shell lines dropped, cell magics skipped.

    Dropped lines become blank lines so that tracebacks keep the cell's line numbers.
    """
    if source.lstrip().startswith("%%"):
        return None  # %%bash, %%writefile, %%html: not Python
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        lines.append("" if stripped.startswith(("%", "!")) else line)
    return "\n".join(lines) + "\n"


def notebook_units(path: Path, name: str) -> list[CodeUnit]:
    """The code cells of the notebook at ``path`` (shown as ``name``), in order."""
    try:
        import nbformat
    except ImportError as error:  # pragma: no cover - nbformat ships with Jupyter
        raise UnreadableSubmission(
            "grading notebooks needs nbformat: pip install nbformat (it comes with Jupyter)"
        ) from error
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # nbformat raises several types for one reason: not a notebook
        raise UnreadableSubmission(
            f"{name} is not a notebook nbformat can read ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no details'}); "
            f"save it again from Jupyter, or hand in a .py file"
        ) from None
    units = []
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.get("cell_type") != "code" or _is_nbgrader_test_cell(cell):
            continue
        code = _without_magics(cell.get("source", ""))
        if code is not None and code.strip():
            units.append(CodeUnit(f"{name}, cell {number}", code, stop_on_error=False))
    return units


def code_units(path: Path, name: str) -> list[CodeUnit]:
    """The code of the submission file ``path`` (``name`` is what reports call it)."""
    if path.suffix == ".ipynb":
        return notebook_units(path, name)
    try:
        code = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableSubmission(
            f"{name} is not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8"
        ) from None
    return [CodeUnit(name, code, stop_on_error=True)]
