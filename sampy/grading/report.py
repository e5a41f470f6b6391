"""The grader's outputs: ``grades.csv`` (points) and ``feedback.md`` / ``feedback.html`` (why).

Everything a submission controls (its messages, tracebacks, its file name) is escaped: code
blocks in the Markdown, ``html.escape`` in the HTML, the ``csv`` module's quoting in the CSV.
"""

from __future__ import annotations

import csv
import html
import re
from collections.abc import Sequence
from pathlib import Path

from sampy.exercises import CheckedExercise
from sampy.grading.results import Outcome, StudentResult

# Characters that make Markdown (CommonMark, GitHub's tables) of plain text; a hyphen or a dot
# only matters at the start of a line, which a heading or a table cell never is.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&])")


def total_points(student: StudentResult, exercises: Sequence[CheckedExercise]) -> int:
    """The points a student earned over ``exercises``."""
    return sum(student.result(e.grade_id).points(e.points) for e in exercises)


def write_csv(
    path: Path, students: Sequence[StudentResult], exercises: Sequence[CheckedExercise]
) -> None:
    """One row per student: the points of each exercise (columns named by grade id), a total."""
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["student", *(e.grade_id for e in exercises), "total"])
        for student in students:
            points = [student.result(e.grade_id).points(e.points) for e in exercises]
            writer.writerow([student.student, *points, sum(points)])


def _markdown_text(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _code_block(lines: Sequence[str]) -> str:
    body = "\n".join(lines)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def markdown_report(students: Sequence[StudentResult], exercises: Sequence[CheckedExercise]) -> str:
    """Per student: a table of outcomes and points, then each exercise's messages."""
    available = sum(e.points for e in exercises)
    out = [
        "# Feedback",
        "",
        f"{len(students)} student(s), {len(exercises)} exercise(s), {available} point(s).",
    ]
    for student in students:
        out += [
            "",
            f"## {_markdown_text(student.student)}",
            "",
            f"**{total_points(student, exercises)} of {available} points.**",
            "",
            "| exercise | function | outcome | points |",
            "|---|---|---|---|",
        ]
        for e in exercises:
            result = student.result(e.grade_id)
            out.append(
                f"| {_markdown_text(e.grade_id)} | `{e.function}` | {result.outcome.value} "
                f"| {result.points(e.points)}/{e.points} |"
            )
        if student.load_problems:
            out += ["", "### While loading the submission", "", _code_block(student.load_problems)]
        for e in exercises:
            result = student.result(e.grade_id)
            out += ["", f"### {_markdown_text(e.grade_id)}: {result.outcome.value}", ""]
            out.append(_code_block(result.messages or ("(no message)",)))
    return "\n".join(out) + "\n"


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .2rem .6rem; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; white-space: pre-wrap; }
.passed { color: #1a7f37; } .failed, .missing { color: #9a6700; }
.timed-out, .out-of-memory, .crashed, .checker-error { color: #cf222e; }
"""


def html_report(students: Sequence[StudentResult], exercises: Sequence[CheckedExercise]) -> str:
    """The Markdown report's content as one self-contained HTML page."""
    available = sum(e.points for e in exercises)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Feedback</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Feedback</h1>",
        f"<p>{len(students)} student(s), {len(exercises)} exercise(s), {available} point(s).</p>",
    ]
    for student in students:
        name = html.escape(student.student)
        parts += [
            f"<section><h2>{name}</h2>",
            f"<p><b>{total_points(student, exercises)} of {available} points.</b></p>",
            "<table><tr><th>exercise</th><th>function</th><th>outcome</th><th>points</th></tr>",
        ]
        for e in exercises:
            result = student.result(e.grade_id)
            css = result.outcome.value.replace(" ", "-")
            parts.append(
                f"<tr><td>{html.escape(e.grade_id)}</td><td><code>{html.escape(e.function)}"
                f'</code></td><td class="{css}">{result.outcome.value}</td>'
                f"<td>{result.points(e.points)}/{e.points}</td></tr>"
            )
        parts.append("</table>")
        if student.load_problems:
            parts.append("<h3>While loading the submission</h3>")
            parts.append(f"<pre>{html.escape(chr(10).join(student.load_problems))}</pre>")
        for e in exercises:
            result = student.result(e.grade_id)
            css = result.outcome.value.replace(" ", "-")
            parts.append(
                f'<h3>{html.escape(e.grade_id)}: <span class="{css}">{result.outcome.value}'
                f"</span></h3>"
            )
            parts.append(f"<pre>{html.escape(chr(10).join(result.messages))}</pre>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_reports(
    out: Path, students: Sequence[StudentResult], exercises: Sequence[CheckedExercise]
) -> list[Path]:
    """Write ``grades.csv``, ``feedback.md`` and ``feedback.html`` into ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "grades.csv", out / "feedback.md", out / "feedback.html"]
    write_csv(paths[0], students, exercises)
    paths[1].write_text(markdown_report(students, exercises), encoding="utf-8")
    paths[2].write_text(html_report(students, exercises), encoding="utf-8")
    return paths


def outcome_counts(students: Sequence[StudentResult]) -> dict[Outcome, int]:
    """How many exercise results ended in each outcome (for the summary line)."""
    counts = dict.fromkeys(Outcome, 0)
    for student in students:
        for result in student.results:
            counts[result.outcome] += 1
    return counts
