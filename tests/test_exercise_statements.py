"""The book's exercises teach: each has a goal, a difficulty and a kind, and none gives its answer.

Every ``{exercise}`` of a page of ``_toc.yml`` carries, among its options, exactly one
difficulty class (``difficulty-1`` … ``difficulty-3``) and exactly one kind (``needs-code`` or
``pen-and-paper``), and its body starts with one line ``**Goal:** …``. The student edition
removes solutions and the code cells tagged ``teacher-only`` (the chapter's from-scratch code
that answers an exercise); these tests check, without running anything, that no function a
checked exercise asks for is written out in what a student sees, and that no cell a student
keeps uses a name that only a removed cell defines.
"""

from __future__ import annotations

import ast
import re
import symtable
import textwrap

import pytest
from book_helpers import BOOK_ROOT, toc_docnames

from sampy.exercises import CHECKED_EXERCISES

EXERCISE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{exercise\}[^\n]*\n(?P<options>(?:[ \t]*:[\w-]+:.*\n)*)", re.M
)
DIFFICULTIES = {"difficulty-1", "difficulty-2", "difficulty-3"}
KINDS = {"needs-code", "pen-and-paper"}
GOAL_LINE = re.compile(r"^\*\*Goal:\*\* \S.*$")
CODE_CELL = re.compile(
    r"^(?P<fence>`{3,})\{code-cell\}[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S
)
SOLUTION_BLOCK = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{solution\}.*?^(?P=fence)[ \t]*$", re.M | re.S
)
SOLUTION_REGION = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{solution-start\}.*?^(?P=fence)\{solution-end\}", re.M | re.S
)
TEACHER_ONLY_MARKDOWN = re.compile(
    r"^<!-- teacher-only -->\s*$.*?^<!-- /teacher-only -->\s*$", re.M | re.S
)
# The chapters' from-scratch implementations that answer an exercise (classroom review §2.5):
# the teacher edition shows them, the student edition must not.
REVEALING = {
    "book/adaptive": "asam_perturbation",
    "book/anatomy": "my_checkpoints",
    "book/imbsam": "imbsam_direction",
    "book/direction": "gsam_from_scratch",
    "book/cheaper": "looksam_from_scratch",
    "book/bayes": "bsam_from_scratch",
    "book/schedule_free": "schedule_free_from_scratch",
}


def chapters() -> list[tuple[str, str]]:
    """(docname, source) of every page of _toc.yml that is a MyST file."""
    found = []
    for docname in toc_docnames(BOOK_ROOT):
        path = BOOK_ROOT / f"{docname}.md"
        if path.is_file():
            found.append((docname, path.read_text(encoding="utf-8")))
    return found


def exercise_blocks(source: str) -> list[dict]:
    """Label, option classes and body of every exercise of a MyST source."""
    found = []
    for match in EXERCISE.finditer(source):
        end = source.find("\n" + match["fence"] + "\n", match.end())
        label = re.search(r"^[ \t]*:label:\s*(\S+)", match["options"], re.M)
        classes = " ".join(re.findall(r"^[ \t]*:class:(.*)$", match["options"], re.M)).split()
        found.append(
            dict(
                label=label[1] if label else "(no label)",
                classes=classes,
                body=source[match.end() : end if end >= 0 else len(source)],
            )
        )
    return found


def metadata_problems(source: str) -> list[str]:
    """What is missing or doubled in each exercise's difficulty, kind and goal."""
    problems = []
    for exercise in exercise_blocks(source):
        label, classes, body = exercise["label"], exercise["classes"], exercise["body"]
        difficulties = [c for c in classes if c.startswith("difficulty")]
        if len(difficulties) != 1 or difficulties[0] not in DIFFICULTIES:
            problems.append(f"{label}: difficulty classes {difficulties}")
        kinds = [c for c in classes if c in KINDS]
        if len(kinds) != 1:
            problems.append(f"{label}: kind classes {kinds} (one of {sorted(KINDS)})")
        first_paragraph = body.strip().split("\n\n")[0]
        if not GOAL_LINE.match(first_paragraph.split("\n")[0]):
            problems.append(f"{label}: the first line is not **Goal:** …")
        elif not first_paragraph.endswith("."):
            problems.append(f"{label}: the goal is not one sentence ending in a full stop")
        if body.count("**Goal:**") != 1:
            problems.append(f"{label}: {body.count('**Goal:**')} goal lines")
    return problems


def test_the_metadata_reader_sees_each_problem():
    good = (
        "```{exercise} A\n:label: a\n:class: difficulty-2 needs-code\n\n"
        "**Goal:** see why.\n\nText.\n```\n"
    )
    assert metadata_problems(good) == []
    no_goal = good.replace("**Goal:** see why.\n\n", "")
    assert metadata_problems(no_goal) == ["a: the first line is not **Goal:** …", "a: 0 goal lines"]
    two_levels = good.replace("difficulty-2", "difficulty-2 difficulty-3")
    assert metadata_problems(two_levels) == [
        "a: difficulty classes ['difficulty-2', 'difficulty-3']"
    ]
    no_kind = good.replace(" needs-code", "")
    assert metadata_problems(no_kind) == [
        "a: kind classes [] (one of ['needs-code', 'pen-and-paper'])"
    ]
    no_stop = good.replace("see why.", "see why")
    assert metadata_problems(no_stop) == ["a: the goal is not one sentence ending in a full stop"]
    goal_later = good.replace("**Goal:** see why.\n\nText.", "Text.\n\n**Goal:** see why.")
    assert "a: the first line is not **Goal:** …" in metadata_problems(goal_later)


def test_every_exercise_has_one_difficulty_one_kind_and_a_goal_first():
    problems, counted = [], 0
    for docname, source in chapters():
        counted += len(exercise_blocks(source))
        problems += [f"{docname}#{problem}" for problem in metadata_problems(source)]
    assert counted > 60, f"only {counted} exercises found: is the reader broken?"
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the student's view


def student_view(source: str) -> str:
    """The source without solutions and teacher-only Markdown (cells are filtered apart)."""
    source = SOLUTION_REGION.sub("", source)
    source = SOLUTION_BLOCK.sub("", source)
    return TEACHER_ONLY_MARKDOWN.sub("", source)


def cell_tags(body: str) -> list[str]:
    """The tags of a code cell: `:tags: [a, b]` or a YAML header's `tags:` line."""
    found = re.findall(r"^(?::tags:|tags:)\s*\[([^\]]*)\]", body, re.M)
    return [tag.strip() for tags in found for tag in tags.split(",")]


def cell_code(body: str) -> str:
    """The Python of a code cell, without its options."""
    body = re.sub(r"\A---\n.*?\n---\n", "", body, flags=re.S)
    return "\n".join(line for line in body.splitlines() if not re.match(r"^:[\w-]+:", line))


def top_level_names(code: str) -> set[str]:
    """The names a cell binds at the top level (defs, classes, assignments, imports)."""
    bound = set()
    for node in ast.parse(code).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    bound.add(sub.id)
    return bound


def used_names(code: str) -> set[str]:
    """The global names a cell reads, at its top level or inside its functions and classes."""

    def walk(table: symtable.SymbolTable, top: bool) -> set[str]:
        found = {
            symbol.get_name()
            for symbol in table.get_symbols()
            if symbol.is_referenced() and (top or symbol.is_global())
        }
        for child in table.get_children():
            found |= walk(child, top=False)
        return found

    return walk(symtable.symtable(code, "<cell>", "exec"), top=True)


def student_cells(source: str) -> list[tuple[bool, str]]:
    """(teacher-only?, code) of every code cell left once the solutions are removed."""
    return [
        ("teacher-only" in cell_tags(m["body"]), cell_code(m["body"]))
        for m in CODE_CELL.finditer(student_view(source))
    ]


def names_lost_in_the_student_edition(source: str) -> list[str]:
    """Names a kept cell uses that only teacher-only cells bind (before it)."""
    bound_by_kept, only_teacher, problems = set(), set(), []
    for teacher_only, code in student_cells(source):
        names = top_level_names(code)
        if teacher_only:
            only_teacher |= names - bound_by_kept
            continue
        lost = (used_names(code) - names) & only_teacher
        problems += sorted(lost)
        bound_by_kept |= names
        only_teacher -= names
    return problems


def test_the_student_view_reader_finds_a_lost_name():
    source = textwrap.dedent(
        """\
        ```{code-cell} ipython3
        :tags: [teacher-only]

        def answer(x):
            return 2 * x
        ```

        ```{code-cell} ipython3
        y = answer(3)
        ```

        ````{solution} ex
        ```{code-cell} ipython3
        z = answer(4)
        ```
        ````
        """
    )
    assert names_lost_in_the_student_edition(source) == ["answer"]
    rebound = source.replace("y = answer(3)", "answer = abs\ny = answer(3)")
    assert names_lost_in_the_student_edition(rebound) == []
    only_in_solution = source.replace("y = answer(3)", "y = 3")
    assert names_lost_in_the_student_edition(only_in_solution) == []


@pytest.mark.parametrize("docname", sorted(REVEALING))
def test_a_chapter_runs_without_its_teacher_only_cells(docname):
    """No cell a student keeps uses a name that only a removed cell defines."""
    source = (BOOK_ROOT / f"{docname}.md").read_text(encoding="utf-8")
    assert names_lost_in_the_student_edition(source) == []


def test_no_chapter_shows_a_student_the_function_an_exercise_asks_for():
    """The chapters' from-scratch answers and every checked function live in teacher-only
    cells or solutions only, and each revealing function is still in the teacher edition."""
    asked = {exercise.function for exercise in CHECKED_EXERCISES}
    problems = []
    for docname, source in chapters():
        if docname == "book/exercises":  # the worked example of the checkers
            continue
        revealing = asked | ({REVEALING[docname]} if docname in REVEALING else set())
        for teacher_only, code in student_cells(source):
            if teacher_only:
                continue
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.FunctionDef) and node.name in revealing:
                    problems.append(f"{docname}: def {node.name} in a cell students see")
    assert not problems, "\n".join(problems)
    for docname, name in REVEALING.items():
        source = (BOOK_ROOT / f"{docname}.md").read_text(encoding="utf-8")
        assert f"def {name}(" in source, (docname, name)


# --------------------------------------------------------------------------- what a student has


def test_no_exercise_points_to_something_a_student_does_not_have():
    """No project jargon or files outside the book in exercises or solutions, no test names
    in solutions, and "bit for bit" nowhere in a statement."""
    forbidden = {
        "the project's specification": re.compile(r"VARIANTS(\.md)?"),
        "project jargon": re.compile(r"\b[Ss]eed 00\d\b"),
        "the README": re.compile(r"\bREADME's\b"),
        "a test name": re.compile(r"tests/test_\w+\.py|::test_"),
    }
    problems = []
    for docname, source in chapters():
        for exercise in exercise_blocks(source):
            texts = {"statement": exercise["body"], "solution": solution_of(source, exercise)}
            for part, text in texts.items():
                for what, pattern in forbidden.items():
                    if pattern.search(text):
                        problems.append(f"{docname}#{exercise['label']} ({part}): {what}")
            if re.search(r"bit for bit", exercise["body"], re.I):
                problems.append(f"{docname}#{exercise['label']}: 'bit for bit' in the statement")
    assert not problems, "\n".join(problems)


def solution_of(source: str, exercise: dict) -> str:
    label = re.escape(exercise["label"])
    for pattern in (
        rf"^(?P<fence>`{{3,}}|:{{3,}})\{{solution-start\}}[ \t]*{label}\s*$.*?\{{solution-end\}}",
        rf"^(?P<fence>`{{3,}}|:{{3,}})\{{solution\}}[ \t]*{label}\s*$.*?^(?P=fence)[ \t]*$",
    ):
        match = re.search(pattern, source, re.M | re.S)
        if match:
            return match[0]
    return ""


def test_every_exercise_has_a_solution():
    missing = [
        f"{docname}#{exercise['label']}"
        for docname, source in chapters()
        for exercise in exercise_blocks(source)
        if not solution_of(source, exercise)
    ]
    assert not missing, missing


def test_the_variant_protocol_is_stated_where_a_student_invents_a_variant():
    source = (BOOK_ROOT / "book" / "family.md").read_text(encoding="utf-8")
    [exercise] = [e for e in exercise_blocks(source) if e["label"] == "fam-ex-new"]
    assert "init(" in exercise["body"] and "__call__(" in exercise["body"]


def test_lookSAM_is_not_asked_about_before_it_is_taught():
    """fam-ex-cost (chapter 'family') comes before the chapter that teaches LookSAM: it must
    describe the schedule it asks about instead of assuming LookSAM is known."""
    toc = [docname for docname, _ in chapters()]
    assert toc.index("book/family") < toc.index("book/cheaper")
    source = (BOOK_ROOT / "book" / "family.md").read_text(encoding="utf-8")
    [exercise] = [e for e in exercise_blocks(source) if e["label"] == "fam-ex-cost"]
    assert "every $k$" in exercise["body"] and "{doc}`cheaper`" in exercise["body"]


# --------------------------------------------------------------------------- the collection page


def test_the_collection_shows_each_goal_and_each_kind(monkeypatch):
    from test_exercises import collection_markdown

    table = collection_markdown(monkeypatch)
    rows = {m[1]: m[0] for m in re.finditer(r"^\| \{ref\}`([^`]+)` \|.*$", table, re.M)}
    checked = 0
    for docname, source in chapters():
        if docname == "book/exercises":
            continue
        for exercise in exercise_blocks(source):
            row = rows[exercise["label"]]
            goal = " ".join(exercise["body"].strip().split("\n\n")[0].split())
            goal = goal.removeprefix("**Goal:** ").replace("|", r"\|")
            assert f"| {goal} |" in row, (exercise["label"], row)
            kind = "code" if "needs-code" in exercise["classes"] else "pen and paper"
            assert row.split(" | ")[-2] == kind, (exercise["label"], row)
            checked += 1
    assert checked == len(rows) > 60
    # the two the classroom review found misclassified
    assert rows["imb-ex-ablation"].split(" | ")[-2] == "code"
    assert rows["ds-ex-zero"].split(" | ")[-2] == "pen and paper"


def test_every_checked_exercise_names_its_function_and_checker_in_the_statement():
    """The statement, which the student edition keeps, says what to write and what grades it
    (the collection page's checker column then reads the same in both editions)."""
    statements = {e["label"]: e["body"] for _, s in chapters() for e in exercise_blocks(s)}
    problems = [
        f"{c.label}: `{c.function}(` or {c.checker} missing"
        for c in CHECKED_EXERCISES
        if f"`{c.function}(" not in statements.get(c.label, "")
        or c.checker not in statements.get(c.label, "")
    ]
    assert not problems, "\n".join(problems)


def test_the_collection_page_runs_outside_the_book(tmp_path, monkeypatch):
    """Downloaded on its own, the page's generating cell says where the exercises are
    instead of failing on a missing _toc.yml (classroom review §1.3)."""
    source = (BOOK_ROOT / "book" / "exercises.md").read_text(encoding="utf-8")
    cells = re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```$", source, re.M | re.S)
    [cell] = [c for c in cells if 'THIS_PAGE = "book/exercises"' in c]
    cell = re.sub(r"\A---\n.*?\n---\n", "", cell, flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(cell, "book/exercises.md", "exec"), namespace)
    assert namespace["root"] is None and namespace["lines"] == []
    assert "Each chapter's exercises are at its end" in namespace["summary"]
