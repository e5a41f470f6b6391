"""The process that grades one submission (started by ``sampy.grading.sandbox``; not for users).

It imports the checkers, caps its own address space, runs the submission's code, then runs
the checker of every exercise it was given, and writes one JSON line per event to the file
descriptor it was handed::

    {"ready": true}                                     (the checkers imported, the cap set)
    {"loaded": {"problems": [...], "failure": null | "crashed" | "out of memory"}}
    {"result": {"grade_id": ..., "outcome": ..., "messages": [...]}}    (one per exercise)
    {"grader_error": "..."}                                             (the grader's fault)

The parent enforces the wall-time limits: it kills this process when an event is late.
"""

from __future__ import annotations

import functools
import gc
import json
import linecache
import os
import resource
import sys
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from sampy.grading.results import Outcome
from sampy.grading.source import CodeUnit, UnreadableSubmission, code_units

_MAX_LINE = 300
_MAX_FRAMES = 8
_GRADING_DIR = str(Path(__file__).resolve().parent)
# What the dynamic loader and the kernel say when RLIMIT_AS refuses a shared library.
_LIBRARY_TOO_BIG = "failed to map segment from shared object"
_NO_MEMORY = "Cannot allocate memory"
_RAISE_THE_LIMIT = (
    "the memory limit refused to load a library this submission imports (torch alone needs "
    "about 0.7 GB of address space, more with CUDA): the teacher can raise --memory"
)


def _address_space_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def limit_memory(megabytes: int) -> None:
    """Cap this process's address space (``RLIMIT_AS``) at ``megabytes``.

    Raises:
        ValueError: the grader itself (Python, NumPy, the checkers) already uses more.
    """
    limit = megabytes * 2**20
    try:
        used = _address_space_bytes()
    except OSError:  # no /proc (macOS): the kernel will say no soon enough
        used = 0
    if used >= limit:
        raise ValueError(
            f"--memory {megabytes} MB is below the {used / 2**20:.0f} MB of address space the "
            f"grader itself uses (Python, NumPy, the checkers); give at least "
            f"{used / 2**20 + 512:.0f}"
        )
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _clip(line: str) -> str:
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"


def trimmed_traceback(error: BaseException, sandbox: str, own_frames: bool = False) -> str:
    """The traceback of ``error`` as a student should read it.

    Only the submission's own frames (the grader's and the libraries' are noise to a student,
    unless ``own_frames``), at most the last few, long lines clipped, and the sandbox's path
    removed so that reports do not depend on where the grader ran.
    """
    exception = traceback.TracebackException.from_exception(error, limit=None)

    def shown(filename: str) -> bool:
        if own_frames:
            return not filename.startswith(_GRADING_DIR)
        # The submission's code is compiled under relative names ("alice.py"); its own helper
        # modules live in the sandbox.
        relative = not os.path.isabs(filename) and not filename.startswith("<")
        return relative or filename.startswith(sandbox + os.sep)

    frames = [frame for frame in exception.stack if shown(frame.filename or "")]
    exception.stack = traceback.StackSummary.from_list(frames[-_MAX_FRAMES:])
    exception.__cause__ = exception.__context__ = None
    lines = exception.format() if frames else exception.format_exception_only()
    text = "".join(lines).replace(sandbox + os.sep, "")
    return "\n".join(_clip(line) for line in text.rstrip("\n").splitlines())


class _MemoryWatch:
    """Wraps the student's function to notice a ``MemoryError`` the checker then reports as
    an ordinary exception: the grader calls that outcome "out of memory"."""

    def __init__(self) -> None:
        self.hit = False

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def watched(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except MemoryError:
                self.hit = True
                raise

        return watched


def _run_units(
    units: list[CodeUnit], module: types.ModuleType, sandbox: str
) -> tuple[list[str], str | None]:
    problems: list[str] = []
    failure = None
    for unit in units:
        # Registered so that tracebacks show the notebook cell's lines.
        lines = unit.code.splitlines(keepends=True)
        linecache.cache[unit.filename] = (len(unit.code), None, lines, unit.filename)
        try:
            exec(compile(unit.code, unit.filename, "exec"), module.__dict__)
        except MemoryError as error:
            problems.append(trimmed_traceback(error, sandbox))
            failure = _worse(failure, Outcome.OUT_OF_MEMORY.value)
        except (ImportError, OSError) as error:
            problems.append(trimmed_traceback(error, sandbox))
            if _LIBRARY_TOO_BIG in str(error) or _NO_MEMORY in str(error):
                # The cap refused the mapping of a large library (torch), not a student's array.
                problems.append(_RAISE_THE_LIMIT)
                failure = _worse(failure, Outcome.OUT_OF_MEMORY.value)
            else:
                failure = _worse(failure, Outcome.CRASHED.value)
        except BaseException as error:  # SystemExit and KeyboardInterrupt too: all the student's
            problems.append(trimmed_traceback(error, sandbox))
            failure = _worse(failure, Outcome.CRASHED.value)
        else:
            continue
        if unit.stop_on_error:
            break
    return problems, failure


def load_submission(
    files: list[str], sandbox: str
) -> tuple[types.ModuleType, list[str], str | None]:
    """Run the submission's files in one module; return it, the problems met and the worst.

    The module is registered as ``submission`` (dataclasses and pickle look their module up
    in ``sys.modules``) and its ``__name__`` is not ``"__main__"``, so a student's
    ``if __name__ == "__main__":`` block of trials does not run.
    """
    module = types.ModuleType("submission")
    module.__dict__["display"] = print  # a notebook's display() without IPython
    sys.modules["submission"] = module
    problems: list[str] = []
    failure = None
    for name in files:
        try:
            units = code_units(Path(sandbox) / name, name)
        except UnreadableSubmission as error:
            problems.append(str(error))
            failure = _worse(failure, Outcome.CRASHED.value)
            continue
        unit_problems, unit_failure = _run_units(units, module, sandbox)
        problems += unit_problems
        failure = _worse(failure, unit_failure)
    return module, problems, failure


def _worse(first: str | None, second: str | None) -> str | None:
    if Outcome.OUT_OF_MEMORY.value in (first, second):
        return Outcome.OUT_OF_MEMORY.value
    return first or second


def grade_exercise(
    grade_id: str, module: types.ModuleType, load_failure: str | None, sandbox: str
) -> dict[str, Any]:
    """Run one exercise's checker on the submission's function: the result as JSON data."""
    import sampy.exercises as exercises

    entry = exercises.checked_exercise(grade_id)
    function = module.__dict__.get(entry.function)
    if function is None:
        if load_failure is not None:
            message = f"{entry.function} was not defined: the submission stopped while loading"
            return {"outcome": load_failure, "messages": [message]}
        message = f"no function named {entry.function}; write `{entry.signature}`"
        return {"outcome": Outcome.MISSING.value, "messages": [message]}
    checker = getattr(exercises, entry.checker)
    watch = _MemoryWatch()
    student = watch.wrap(function) if callable(function) else function
    try:
        feedback = checker(student)
    except MemoryError as error:
        return {
            "outcome": Outcome.OUT_OF_MEMORY.value,
            "messages": [trimmed_traceback(error, sandbox)],
        }
    except Exception as error:
        return {
            "outcome": Outcome.CHECKER_ERROR.value,
            "messages": [
                f"the checker {entry.checker} itself failed; this is sampy's error, not yours",
                trimmed_traceback(error, sandbox, own_frames=True),
            ],
        }
    except BaseException as error:  # sys.exit() in the student's function escapes the checker
        return {"outcome": Outcome.CRASHED.value, "messages": [trimmed_traceback(error, sandbox)]}
    finally:
        gc.collect()
    messages = [f"{check.name}: {check.message}" for check in feedback.failures]
    if watch.hit:
        return {"outcome": Outcome.OUT_OF_MEMORY.value, "messages": messages}
    if feedback.passed:
        return {"outcome": Outcome.PASSED.value, "messages": [str(feedback)]}
    if getattr(feedback, "checker_failed", False):
        return {"outcome": Outcome.CHECKER_ERROR.value, "messages": messages}
    if all("raised NotImplementedError" in check.message for check in feedback.failures):
        # The student edition's answer cell as handed out: nothing was attempted.
        message = f"not attempted: {entry.function} still raises NotImplementedError"
        return {"outcome": Outcome.MISSING.value, "messages": [message]}
    return {"outcome": Outcome.FAILED.value, "messages": messages}


def _send(channel: TextIO, event: dict[str, Any]) -> None:
    channel.write(json.dumps(event) + "\n")
    channel.flush()


def main(argv: list[str]) -> int:
    """``python -m sampy.grading.worker CONFIG_JSON``: grade the submission in the cwd."""
    config = json.loads(argv[1])
    channel = os.fdopen(config["fd"], "w", encoding="utf-8")
    sandbox = os.getcwd()
    import sampy.exercises  # noqa: F401  (the grader's own memory, before the cap)

    try:
        limit_memory(int(config["memory_mb"]))
    except ValueError as error:
        _send(channel, {"grader_error": str(error)})
        return 2
    if any(name.endswith(".ipynb") for name in config["files"]):
        try:  # the grader's own import, before the student's clock starts
            import nbformat  # noqa: F401
        except ImportError:
            pass  # source.notebook_units says what to install
    _send(channel, {"ready": True})
    sys.path.insert(0, sandbox)  # the student's own helper modules
    module, problems, failure = load_submission(config["files"], sandbox)
    _send(channel, {"loaded": {"problems": problems, "failure": failure}})
    for grade_id in config["grade_ids"]:
        result = grade_exercise(grade_id, module, failure, sandbox)
        _send(channel, {"result": {"grade_id": grade_id, **result}})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
