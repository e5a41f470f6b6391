"""Running one submission in processes of its own, with limits on time and memory.

What this isolates: time (the parent kills a process whose answer is late), memory
(``RLIMIT_AS`` in the child), the working directory and ``HOME`` (a fresh temporary folder
holding a copy of the submission), the environment (trimmed to what Python needs), crashes
(a dead process costs its exercise, not the grading) and state (every student gets fresh
processes, so nothing one submission changes reaches the next).

What it does not: it is not a security sandbox. The submission runs as the teacher's user,
can read what that user can read, open network connections and start programs
(``os.system``) that act outside its folder. Grade untrusted code in a container or under a
user account of its own.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sampy
from sampy.grading.discover import Submission
from sampy.grading.results import ExerciseResult, Outcome, StudentResult

_TAIL_LINES = 12
_STARTUP_SECONDS = 120


class GraderError(RuntimeError):
    """The grader itself cannot go on (a limit too small to start Python, say)."""


@dataclass(frozen=True)
class Limits:
    """What one submission may use.

    Attributes:
        timeout: seconds of wall time for each exercise's checker.
        load_timeout: seconds of wall time for running the submission's own code.
        memory_mb: address space of the whole process in MiB (Python and NumPy need about 200,
            torch about 700 more).
    """

    timeout: float = 20.0
    load_timeout: float = 60.0
    memory_mb: int = 2048


def trimmed_environment(home: str) -> dict[str, str]:
    """The environment a submission runs in: the caller's ``PATH`` and locale, nothing else
    of theirs (no tokens, no proxies), ``HOME`` and ``TMPDIR`` in the sandbox, and one thread
    per numerical library so that parallel graders do not oversubscribe the cores."""
    kept = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TZ") or k[:3] == "LC_"}
    package_parent = str(Path(sampy.__file__).resolve().parent.parent)
    return {
        **kept,
        "HOME": home,
        "TMPDIR": home,
        "MPLCONFIGDIR": home,
        "MPLBACKEND": "Agg",
        # sampy importable however it was installed, and the teacher's --user packages (torch)
        # still found although HOME moved.
        "PYTHONPATH": package_parent,
        "PYTHONUSERBASE": site.getuserbase(),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "utf-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _copy_into(submission: Submission, sandbox: Path) -> None:
    if submission.source.is_dir():
        shutil.copytree(submission.source, sandbox, dirs_exist_ok=True, symlinks=True)
    else:
        shutil.copy2(submission.source, sandbox / submission.files[0])


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-_TAIL_LINES:])


def _kill(process: subprocess.Popen) -> None:
    # The whole process group: what the submission started with os.system goes too.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@dataclass
class _Attempt:
    """One worker process's answers: the load's report, the results, and how it ended."""

    loaded: dict | None
    results: list[ExerciseResult]
    ended: str | None  # None: answered everything; else why the rest is missing
    late: bool = False


def _run_worker(
    submission: Submission, grade_ids: list[str], limits: Limits, sandbox: Path
) -> _Attempt:
    read_end, write_end = os.pipe()
    config = {
        "fd": write_end,
        "files": list(submission.files),
        "grade_ids": grade_ids,
        "memory_mb": limits.memory_mb,
    }
    output = sandbox / ".grader-output.txt"
    with open(output, "wb") as output_file:
        process = subprocess.Popen(
            # -P: the working directory (the student's files) is not put on sys.path, so a
            # student's sampy.py or numpy.py cannot stand in for the grader's own imports.
            [sys.executable, "-P", "-m", "sampy.grading.worker", json.dumps(config)],
            cwd=sandbox,
            env=trimmed_environment(str(sandbox)),
            stdin=subprocess.DEVNULL,
            stdout=output_file,
            stderr=subprocess.STDOUT,
            pass_fds=(write_end,),
            start_new_session=True,
        )
    os.close(write_end)
    attempt = _Attempt(None, [], None)
    buffer = b""
    # The limits start once the worker has imported the checkers ("ready"): a busy machine's
    # slow start is not the student's time.
    started = False
    deadline = time.monotonic() + _STARTUP_SECONDS
    try:
        while len(attempt.results) < len(grade_ids):
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not started:
                raise GraderError(
                    f"a grading process did not start within {_STARTUP_SECONDS} s; is the "
                    f"machine overloaded? try fewer --jobs"
                )
            if remaining <= 0:
                attempt.late = True
                attempt.ended = "late"
                return attempt
            ready, _, _ = select.select([read_end], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(read_end, 1 << 16)
            if not chunk and not started:
                process.wait()
                raise GraderError(
                    f"a grading process failed before loading any submission: "
                    f"{_exit_description(process.returncode, output)}"
                )
            if not chunk:
                try:
                    process.wait(timeout=max(remaining, 1.0))
                except subprocess.TimeoutExpired:
                    attempt.ended = "the process closed its channel to the grader and went on"
                else:
                    attempt.ended = _exit_description(process.returncode, output)
                return attempt
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # not ours: the submission wrote to the wrong descriptor
                if not isinstance(event, dict):
                    continue
                if "grader_error" in event:
                    raise GraderError(str(event["grader_error"]))
                if "ready" in event:
                    started = True
                    deadline = time.monotonic() + limits.load_timeout
                    continue
                if "loaded" in event:
                    attempt.loaded = event["loaded"]
                elif "result" in event:
                    data = event["result"]
                    attempt.results.append(
                        ExerciseResult(
                            str(data["grade_id"]),
                            Outcome(data["outcome"]),
                            tuple(str(m) for m in data["messages"]),
                        )
                    )
                deadline = time.monotonic() + limits.timeout
        return attempt
    finally:
        os.close(read_end)
        _kill(process)


def _exit_description(returncode: int, output: Path) -> str:
    if returncode < 0:
        how = f"the process was killed by signal {signal.Signals(-returncode).name}"
    else:
        how = f"the process exited with code {returncode}"
    tail = _tail(output)
    return how + (f"; its last output:\n{tail}" if tail else "")


def grade_submission(submission: Submission, grade_ids: list[str], limits: Limits) -> StudentResult:
    """Grade the exercises ``grade_ids`` of one submission.

    One worker process loads the submission and runs the checkers in turn. When an exercise
    is late or its process dies, that exercise is timed out or crashed, and a fresh process
    (loading the submission again) takes the rest, so one infinite loop costs one exercise.
    """
    results: list[ExerciseResult] = []
    problems: tuple[str, ...] = ()
    pending = list(grade_ids)
    with tempfile.TemporaryDirectory(prefix="sampy-grade-") as directory:
        sandbox = Path(directory).resolve()
        _copy_into(submission, sandbox)
        while pending:
            attempt = _run_worker(submission, pending, limits, sandbox)
            results += attempt.results
            done = len(attempt.results)
            if attempt.loaded is not None and not problems:
                problems = tuple(str(p) for p in attempt.loaded.get("problems", ()))
            if attempt.ended is None:
                break
            if attempt.loaded is None:
                # The submission's own code never finished: every exercise left goes with it.
                outcome, message = _load_failure(attempt, limits)
                results += [ExerciseResult(g, outcome, (message,)) for g in pending]
                if not problems:
                    problems = (message,)
                break
            outcome, message = _exercise_failure(attempt, limits)
            results.append(ExerciseResult(pending[done], outcome, (message,)))
            pending = pending[done + 1 :]
    return StudentResult(submission.student, tuple(results), problems)


def _load_failure(attempt: _Attempt, limits: Limits) -> tuple[Outcome, str]:
    if attempt.late:
        return Outcome.TIMED_OUT, (
            f"running the submission's own code took longer than {limits.load_timeout:g} s "
            f"(an infinite loop at the top level, or a long computation outside the functions)"
        )
    return Outcome.CRASHED, f"loading the submission stopped: {attempt.ended}"


def _exercise_failure(attempt: _Attempt, limits: Limits) -> tuple[Outcome, str]:
    if attempt.late:
        return Outcome.TIMED_OUT, (
            f"the checker did not finish within {limits.timeout:g} s: an infinite loop, or a "
            f"computation far slower than needed"
        )
    return Outcome.CRASHED, f"checking stopped: {attempt.ended}"
