"""Grading a class: every checker of ``sampy.exercises`` on a folder of submissions.

Run it as ``python -m sampy.grade SUBMISSIONS/`` (see ``sampy.grade``). One module per job:

- ``discover``: the submissions of a folder (one ``.py``/``.ipynb`` file or one sub-folder per
  student);
- ``source``: the code of a submission (a notebook's code cells, magics and shell lines
  dropped, nbgrader's locked test cells skipped);
- ``worker``: the process that loads one submission and runs the checkers;
- ``sandbox``: that process's limits (wall time, memory, a temporary working directory and
  ``HOME``, a trimmed environment), and a fresh process after a timeout or a crash;
- ``grader``: the whole folder, several students at a time;
- ``report``: ``grades.csv``, ``feedback.md`` and ``feedback.html``.

**Not a security sandbox.** The grader isolates time, memory, the working directory and
crashes, so that a student's infinite loop, huge allocation or ``sys.exit()`` costs one
exercise and nothing of one student reaches the next. It does not stop hostile code: a
submission runs as the teacher's user and can read the teacher's files, reach the network and
start programs. ``os.system("...")`` runs in the submission's temporary folder with ``HOME``
pointing there, so careless commands stay there, but an absolute path is obeyed. Grade
submissions you do not trust in a container or under a user account of their own.

**nbgrader.** The book's notebooks carry nbgrader's cell metadata (schema 3): each checked
exercise has an answer cell (``solution: true``, ``grade_id``: the exercise's label) and a
locked test cell (``grade: true``, ``grade_id``: ``<label>-check``, ``points``) that calls
the checker. A teacher who uses nbgrader copies the teacher edition's notebooks
(``make teacher``: the answers between ``### BEGIN SOLUTION`` and ``### END SOLUTION``) into
the course's ``source/<assignment>/`` folder and runs ``nbgrader generate_assignment``,
``collect`` and ``autograde`` as usual; the test cells run the same checkers this grader
runs. This grader needs no nbgrader set-up: it reads the returned student notebooks as they
are (skipping the locked test cells, since it calls the checkers itself, and counting an
answer cell left as handed out, ``raise NotImplementedError``, as missing).
"""

from sampy.grading.discover import Submission, SubmissionsError, discover_submissions
from sampy.grading.grader import grade_folder, select_exercises
from sampy.grading.report import write_reports
from sampy.grading.results import ExerciseResult, Outcome, StudentResult
from sampy.grading.sandbox import GraderError, Limits, grade_submission

__all__ = [
    "ExerciseResult",
    "GraderError",
    "Limits",
    "Outcome",
    "StudentResult",
    "Submission",
    "SubmissionsError",
    "discover_submissions",
    "grade_folder",
    "grade_submission",
    "select_exercises",
    "write_reports",
]
