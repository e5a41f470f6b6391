"""``python -m sampy.grade`` on a corpus of good, wrong, hostile and malformed submissions.

The corpus (``tests/data/submissions/``) answers two checked exercises, GSAM's direction and
LookSAM's reuse step; the grader runs once on it (``--only`` both, four jobs, a 3 s limit per
exercise and 8 s for loading, 1 GiB of address space) from a "teacher's" folder with a
"teacher's" HOME, and the tests read what it wrote.
"""

from __future__ import annotations

import csv
import os
import re
import runpy
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import sampy.exercises as exercises
from sampy.grade import main
from sampy.grading import discover_submissions, select_exercises

CORPUS = Path(__file__).parent / "data" / "submissions"
REPOSITORY = Path(__file__).resolve().parent.parent
GSAM, LOOKSAM = "dir-ex-gsam", "ch-ex-looksam"

EXPECTED_CSV = """\
student,dir-ex-gsam,ch-ex-looksam,total
crash_at_import,1,0,1
empty,0,0,0
exits,0,0,0
folder_student,1,1,2
good,1,1,2
good_notebook,1,1,2
html_injection,0,1,1
infinite_loop,0,1,1
memory_at_import,0,0,0
memory_hog,0,1,1
mutates_inputs,1,0,1
mutation_next,1,1,2
not_attempted,0,1,1
not_json,0,0,0
os_system,1,1,2
reference,0,0,0
sampy,1,1,2
segfault,0,1,1
syntax_error,0,0,0
top_level_loop,0,0,0
wrong,0,0,0
wrong_notebook,0,1,1
wrong_signature,0,1,1
"""


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
    }


class Graded:
    """The grader's run on the corpus: its exit status, stderr and the files it wrote."""

    def __init__(self, root: Path) -> None:
        self.teacher = root / "teacher"  # the grader's working directory
        self.home = root / "home"  # the teacher's HOME
        self.teacher.mkdir()
        self.home.mkdir()
        self.corpus_before = _snapshot(CORPUS)
        env = {**os.environ, "HOME": str(self.home)}
        command = [
            sys.executable, "-m", "sampy.grade", str(CORPUS), "--out", "graded",
            "--only", GSAM, "--only", LOOKSAM,
            "--timeout", "3", "--load-timeout", "8", "--memory", "1024", "--jobs", "4",
        ]  # fmt: skip
        run = subprocess.run(
            command, cwd=self.teacher, env=env, capture_output=True, text=True, timeout=300
        )
        self.returncode, self.stderr = run.returncode, run.stderr
        out = self.teacher / "graded"
        self.csv = (out / "grades.csv").read_text(encoding="utf-8")
        self.markdown = (out / "feedback.md").read_text(encoding="utf-8")
        self.html = (out / "feedback.html").read_text(encoding="utf-8")

    def student(self, student: str) -> str:
        """The Markdown section of one student (the heading unescaped)."""
        sections = re.split(r"^## ", self.markdown, flags=re.MULTILINE)[1:]
        for section in sections:
            heading, _, body = section.partition("\n")
            if heading.replace("\\", "") == student:
                return body
        raise AssertionError(f"no section for {student} in feedback.md")

    def outcome(self, student: str, grade_id: str) -> str:
        match = re.search(rf"^### {grade_id}: (.+)$", self.student(student), re.MULTILINE)
        assert match, f"no {grade_id} heading for {student}"
        return match.group(1)

    def messages(self, student: str, grade_id: str) -> list[str]:
        """The lines of the code block under the exercise's heading."""
        pattern = rf"^### {grade_id}: .+?\n\n(`{{3,}})text\n(.*?)\n\1$"
        match = re.search(pattern, self.student(student), re.MULTILINE | re.DOTALL)
        assert match, f"no messages for {grade_id} of {student}"
        return match.group(2).splitlines()

    def loading(self, student: str) -> str:
        section = self.student(student)
        if "### While loading the submission" not in section:
            return ""
        return section.split("### While loading the submission", 1)[1].split("\n### ", 1)[0]


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Graded:
    return Graded(tmp_path_factory.mktemp("grading"))


def _checker_lines(grade_id: str, function: object) -> tuple[list[str], set[str]]:
    """What the checker says about ``function`` in this process: its lines and its causes."""
    entry = exercises.checked_exercise(grade_id)
    feedback = getattr(exercises, entry.checker)(function)
    return [f"{c.name}: {c.message}" for c in feedback.failures], {
        c.cause for c in feedback.failures
    }


def _corpus_function(file: str, name: str) -> object:
    return runpy.run_path(str(CORPUS / file), run_name="corpus")[name]


# ------------------------------------------------------------------------- the whole report


def test_the_grades_csv_is_exact_and_students_failing_is_no_error(graded: Graded) -> None:
    assert graded.returncode == 0, graded.stderr
    assert graded.csv.replace("\r\n", "\n") == EXPECTED_CSV


def test_every_student_has_a_section_with_a_table_and_a_total(graded: Graded) -> None:
    rows = list(csv.DictReader(EXPECTED_CSV.splitlines()))
    for row in rows:
        section = graded.student(row["student"])
        assert f"**{row['total']} of 2 points.**" in section
        for grade_id in (GSAM, LOOKSAM):
            outcome = graded.outcome(row["student"], grade_id)
            assert (outcome == "passed") == (row[grade_id] == "1")
            assert f"| {graded.outcome(row['student'], grade_id)} | {row[grade_id]}/1 |" in section


def test_a_students_reports_are_exactly_what_the_grader_knows(graded: Graded) -> None:
    students = len(EXPECTED_CSV.splitlines()) - 1
    assert graded.markdown.startswith(
        f"# Feedback\n\n{students} student(s), 2 exercise(s), 2 point(s).\n\n"
        "## crash\\_at\\_import\n"
    )
    assert graded.student("top_level_loop") == (
        "\n"
        "**0 of 2 points.**\n\n"
        "| exercise | function | outcome | points |\n"
        "|---|---|---|---|\n"
        "| dir-ex-gsam | `gsam_direction` | timed out | 0/1 |\n"
        "| ch-ex-looksam | `looksam_reuse` | timed out | 0/1 |\n\n"
        "### While loading the submission\n\n"
        "```text\n"
        "running the submission's own code took longer than 8 s (an infinite loop at the top "
        "level, or a long computation outside the functions)\n"
        "```\n\n"
        "### dir-ex-gsam: timed out\n\n"
        "```text\n"
        "running the submission's own code took longer than 8 s (an infinite loop at the top "
        "level, or a long computation outside the functions)\n"
        "```\n\n"
        "### ch-ex-looksam: timed out\n\n"
        "```text\n"
        "running the submission's own code took longer than 8 s (an infinite loop at the top "
        "level, or a long computation outside the functions)\n"
        "```\n\n"
    )
    empty = graded.html.split("<section><h2>empty</h2>", 1)[1].split("</section>", 1)[0]
    assert empty == (
        "\n<p><b>0 of 2 points.</b></p>\n"
        "<table><tr><th>exercise</th><th>function</th><th>outcome</th><th>points</th></tr>\n"
        "<tr><td>dir-ex-gsam</td><td><code>gsam_direction</code></td>"
        '<td class="missing">missing</td><td>0/1</td></tr>\n'
        "<tr><td>ch-ex-looksam</td><td><code>looksam_reuse</code></td>"
        '<td class="missing">missing</td><td>0/1</td></tr>\n'
        "</table>\n"
        '<h3>dir-ex-gsam: <span class="missing">missing</span></h3>\n'
        "<pre>no function named gsam_direction; write `def gsam_direction(g, g_adv, alpha):`"
        "</pre>\n"
        '<h3>ch-ex-looksam: <span class="missing">missing</span></h3>\n'
        "<pre>no function named looksam_reuse; write `def looksam_reuse(g0, g_s, g, alpha):`"
        "</pre>\n"
    )


def test_good_submissions_get_full_marks_in_every_form(graded: Graded) -> None:
    # sampy.py: a student's file named like the grader's package does not shadow it.
    for student in ("good", "good_notebook", "folder_student", "mutation_next", "sampy"):
        assert graded.outcome(student, GSAM) == graded.outcome(student, LOOKSAM) == "passed"
        assert graded.loading(student) == ""


def test_notebook_magics_shell_lines_and_locked_test_cells_are_not_run(graded: Graded) -> None:
    # good_notebook.ipynb has %matplotlib, a !shell line, a %%bash cell and an nbgrader
    # locked test cell that raises: none of them may reach Python.
    assert graded.loading("good_notebook") == ""
    assert "locked test cells" not in graded.markdown


# ------------------------------------------------------------------------------ wrong answers


def test_wrong_answers_get_the_checkers_named_diagnosis(graded: Graded) -> None:
    for grade_id, name in ((GSAM, "gsam_direction"), (LOOKSAM, "looksam_reuse")):
        expected, causes = _checker_lines(grade_id, _corpus_function("wrong.py", name))
        assert causes == {"mistake"}, "the corpus's mistakes are ones the checker names"
        assert graded.outcome("wrong", grade_id) == "failed"
        assert graded.messages("wrong", grade_id) == expected
    # The notebook's GSAM answer has the same wrong sign, and its broken cell is reported
    # while the cells after it still run (LookSAM passes).
    expected, _ = _checker_lines(GSAM, _corpus_function("wrong.py", "gsam_direction"))
    assert graded.messages("wrong_notebook", GSAM) == expected
    assert graded.outcome("wrong_notebook", LOOKSAM) == "passed"
    assert 'File "wrong_notebook.ipynb, cell 3", line 1' in graded.loading("wrong_notebook")
    assert "NameError: name 'undefined_name' is not defined" in graded.loading("wrong_notebook")


def test_a_wrong_signature_is_failed_with_the_type_error(graded: Graded) -> None:
    expected, causes = _checker_lines(
        GSAM, _corpus_function("wrong_signature.py", "gsam_direction")
    )
    assert causes == {"raised"}
    assert graded.messages("wrong_signature", GSAM) == expected
    assert "takes 2 positional arguments but 3 were given" in expected[0]


# ---------------------------------------------------------------------------------- hostile


def test_an_infinite_loop_times_out_one_exercise_only(graded: Graded) -> None:
    assert graded.outcome("infinite_loop", GSAM) == "timed out"
    assert graded.messages("infinite_loop", GSAM) == [
        "the checker did not finish within 3 s: an infinite loop, or a computation far slower "
        "than needed"
    ]
    assert graded.outcome("infinite_loop", LOOKSAM) == "passed"  # a fresh process took over


def test_a_huge_allocation_is_out_of_memory(graded: Graded) -> None:
    assert graded.outcome("memory_hog", GSAM) == "out of memory"
    lines = graded.messages("memory_hog", GSAM)
    assert lines and all("MemoryError" in line for line in lines)
    assert graded.outcome("memory_hog", LOOKSAM) == "passed"


def test_a_loop_or_a_huge_allocation_while_loading_costs_every_exercise(graded: Graded) -> None:
    for grade_id in (GSAM, LOOKSAM):
        assert graded.outcome("top_level_loop", grade_id) == "timed out"
        assert graded.messages("top_level_loop", grade_id) == [
            "running the submission's own code took longer than 8 s (an infinite loop at the "
            "top level, or a long computation outside the functions)"
        ]
        assert graded.outcome("memory_at_import", grade_id) == "out of memory"
    assert "MemoryError: Unable to allocate 3.00 GiB" in graded.loading("memory_at_import")


def test_os_system_runs_in_the_sandbox_and_leaves_the_teachers_folders_alone(
    graded: Graded,
) -> None:
    # The answer is right only if both files landed in its own working directory: the
    # commands ran, with HOME pointing there.
    assert graded.outcome("os_system", GSAM) == "passed"
    for folder in (graded.teacher, graded.home, CORPUS, REPOSITORY):
        assert not list(folder.glob("made_*")), folder
    assert list(graded.home.iterdir()) == []
    assert sorted(p.name for p in graded.teacher.iterdir()) == ["graded"]
    assert _snapshot(CORPUS) == graded.corpus_before


def test_mutated_inputs_do_not_change_the_cases(graded: Graded) -> None:
    # A right answer that overwrites g_adv passes; a wrong one that overwrites g gets the same
    # diagnosis, case by case, as the same mistake written without touching its inputs.
    assert graded.outcome("mutates_inputs", GSAM) == "passed"

    def no_ratio(g0: np.ndarray, g_s: np.ndarray, g: np.ndarray, alpha: float) -> np.ndarray:
        return g + alpha * (g_s - (g_s @ g0) / (g0 @ g0) * g0)

    expected, causes = _checker_lines(LOOKSAM, no_ratio)
    assert causes == {"mistake"}
    assert graded.messages("mutates_inputs", LOOKSAM) == expected
    # ...and the student graded next is graded on the original cases.
    assert graded.outcome("mutation_next", GSAM) == "passed"


def test_an_answer_that_calls_sampys_implementation_is_refused(graded: Graded) -> None:
    for grade_id, name in ((GSAM, "gsam_direction"), (LOOKSAM, "looksam_reuse")):
        expected, causes = _checker_lines(grade_id, _corpus_function("reference.py", name))
        assert causes == {"refused"}
        assert graded.outcome("reference", grade_id) == "failed"
        assert graded.messages("reference", grade_id) == expected


def test_leaving_the_process_crashes_that_exercise(graded: Graded) -> None:
    assert graded.outcome("exits", GSAM) == "crashed"
    assert graded.messages("exits", GSAM) == [
        "Traceback (most recent call last):",
        '  File "exits.py", line 7, in gsam_direction',
        "    sys.exit(3)",
        "SystemExit: 3",
    ]
    assert graded.outcome("exits", LOOKSAM) == "crashed"
    assert graded.messages("exits", LOOKSAM) == ["checking stopped: the process exited with code 7"]


def test_a_segmentation_fault_crashes_one_exercise_only(graded: Graded) -> None:
    assert graded.outcome("segfault", GSAM) == "crashed"
    assert graded.messages("segfault", GSAM)[0] == (
        "checking stopped: the process was killed by signal SIGSEGV"
    )
    assert graded.outcome("segfault", LOOKSAM) == "passed"


def test_markup_in_messages_is_escaped(graded: Graded) -> None:
    assert "<script>" not in graded.html
    assert "&lt;script&gt;alert(&#x27;graded&#x27;)&lt;/script&gt; &amp; ```" in graded.html
    # In the Markdown, the message sits in a code block whose fence is longer than any run
    # of backticks in it.
    assert "````text\n2-D, acute angle: your function raised ValueError: <script>" in (
        graded.student("html_injection")
    )


# -------------------------------------------------------------------------------- malformed


def test_a_syntax_error_crashes_every_exercise_with_its_line(graded: Graded) -> None:
    loading = graded.loading("syntax_error")
    assert 'File "syntax_error.py", line 4' in loading
    assert "SyntaxError: expected ':'" in loading
    for grade_id, name in ((GSAM, "gsam_direction"), (LOOKSAM, "looksam_reuse")):
        assert graded.outcome("syntax_error", grade_id) == "crashed"
        assert graded.messages("syntax_error", grade_id) == [
            f"{name} was not defined: the submission stopped while loading"
        ]


def test_a_module_that_raises_keeps_what_it_defined_before(graded: Graded) -> None:
    loading = graded.loading("crash_at_import")
    assert 'File "crash_at_import.py", line 10, in <module>' in loading
    assert "IndexError: index 5 is out of bounds" in loading
    assert "/tmp" not in loading and str(REPOSITORY) not in loading  # the sandbox path removed
    assert graded.outcome("crash_at_import", GSAM) == "passed"
    assert graded.outcome("crash_at_import", LOOKSAM) == "crashed"


def test_a_notebook_that_is_not_json_crashes_with_a_plain_message(graded: Graded) -> None:
    assert "not_json.ipynb is not a notebook nbformat can read (NotJSONError" in (
        graded.loading("not_json")
    )
    assert graded.outcome("not_json", GSAM) == graded.outcome("not_json", LOOKSAM) == "crashed"


def test_the_student_editions_placeholder_is_not_attempted(graded: Graded) -> None:
    # An nbgrader answer cell left as handed out (raise NotImplementedError); its locked test
    # cell would raise AssertionError, and is not run.
    assert graded.outcome("not_attempted", GSAM) == "missing"
    assert graded.messages("not_attempted", GSAM) == [
        "not attempted: gsam_direction still raises NotImplementedError"
    ]
    assert graded.outcome("not_attempted", LOOKSAM) == "passed"
    assert graded.loading("not_attempted") == ""


def test_an_empty_file_is_missing_every_function(graded: Graded) -> None:
    assert graded.outcome("empty", GSAM) == "missing"
    assert graded.messages("empty", GSAM) == [
        "no function named gsam_direction; write `def gsam_direction(g, g_adv, alpha):`"
    ]


# --------------------------------------------------------------- the command line, in-process


def test_every_checked_exercise_is_a_column_by_default(tmp_path: Path) -> None:
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "nobody.py").write_text("x = 1\n")
    assert main([str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    rows = list(csv.reader((tmp_path / "out" / "grades.csv").open()))
    grade_ids = [entry.grade_id for entry in exercises.CHECKED_EXERCISES]
    assert rows == [["student", *grade_ids, "total"], ["nobody", *["0"] * len(grade_ids), "0"]]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["no-such-folder"], "which is not a folder"),
        (["empty-folder"], "no submission in"),
        (["twice"], "two submissions for the student 'alice'"),
        (["twice", "--only", "no-such-exercise"], "--only: no checked exercise 'no-such-exercise'"),
        (["one", "--memory", "20"], "--memory 20 MB is below the"),
    ],
)
def test_the_graders_own_errors_exit_2_with_a_message(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty-folder").mkdir()
    (tmp_path / "twice").mkdir()
    (tmp_path / "twice" / "alice.py").write_text("")
    (tmp_path / "twice" / "alice.ipynb").write_text("")
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "bob.py").write_text("")
    assert main([*arguments, "--only", GSAM, "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_only_takes_labels_functions_and_the_start_of_a_chapters_labels() -> None:
    chosen = select_exercises(["dir-", "looksam_reuse", "th-ex-stability"])
    expected = [
        e.grade_id
        for e in exercises.CHECKED_EXERCISES
        if e.label.startswith("dir-") or e.label in ("ch-ex-looksam", "th-ex-stability")
    ]
    assert [e.grade_id for e in chosen] == expected
    assert {"dir-ex-gsam", "th-ex-stability-sam_edge"} <= set(expected)
    assert select_exercises([]) == exercises.CHECKED_EXERCISES


def test_discovery_skips_checkpoints_and_hidden_files(tmp_path: Path) -> None:
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "alice-checkpoint.ipynb").write_text("{}")
    (tmp_path / ".hidden.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "__pycache__").mkdir()
    (tmp_path / "bob" / "__pycache__" / "a.py").write_text("")
    (tmp_path / "bob" / "b.py").write_text("")
    (tmp_path / "bob" / "a.ipynb").write_text("{}")
    (tmp_path / "alice.py").write_text("")
    found = [(s.student, s.files) for s in discover_submissions(tmp_path)]
    assert found == [("alice", ("alice.py",)), ("bob", ("a.ipynb", "b.py"))]


def test_a_checker_that_fails_is_the_checkers_error_not_the_students(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sampy.grading.worker import grade_exercise

    def broken_checker(function: object) -> None:
        raise RuntimeError("a bug in the checker")

    monkeypatch.setattr(exercises, "check_gsam_direction", broken_checker)
    module = types.ModuleType("submission")
    module.gsam_direction = _corpus_function("good.py", "gsam_direction")
    result = grade_exercise(GSAM, module, None, "/nowhere")
    assert result["outcome"] == "checker error"
    assert result["messages"][0] == (
        "the checker check_gsam_direction itself failed; this is sampy's error, not yours"
    )
    assert "RuntimeError: a bug in the checker" in result["messages"][1]


def test_a_library_too_big_for_the_memory_limit_says_to_raise_it(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "torch_user.py").write_text("import torch\n")
    out = tmp_path / "out"
    assert main([str(tmp_path / "subs"), "--out", str(out), "--only", GSAM, "--memory", "400",
                 "--quiet"]) == 0  # fmt: skip
    assert (out / "grades.csv").read_text().splitlines()[1] == "torch_user,0,0"
    report = (out / "feedback.md").read_text()
    assert "failed to map segment from shared object" in report
    assert "the teacher can raise --memory" in report
    assert "### dir-ex-gsam: out of memory" in report
