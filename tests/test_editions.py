"""The student and teacher editions (scripts/editions.py, `make student`, `make teacher`).

Unit tests of each transformation on small MyST strings; then, on the real book: the student
sources and notebooks hold no solution text and no teacher-only cell or note, every checked
exercise has valid nbgrader cells, the teacher's answers pass their own test cells, no kept
cell uses a name only a removed cell defined, and the student notebooks execute stand-alone
in a folder outside the repository. The student HTML is built by `make student`, not here
(one more Jupyter Book build); see book/teaching.md.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import symtable
import sys
import time
import tomllib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from sampy.exercises import CHECKED_EXERCISES, CheckedExercise

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("editions", ROOT / "scripts" / "editions.py")
editions = importlib.util.module_from_spec(_spec)
sys.modules["editions"] = editions  # dataclasses look their module up by name
_spec.loader.exec_module(editions)

EXECUTION_WORKERS = 3
CELL_TIMEOUT_S = 600


# --------------------------------------------------------------------------------------------
# The transformations, on small strings

PLAIN_SOLUTION = """\
Intro.

```{exercise} Title
:label: ex-a

Write it.
```

````{solution} ex-a
:class: dropdown

```python
SECRET_PLAIN = 1
```
````

After.
"""

COLON_SOLUTION = """\
Before.

:::{solution} ex-b
SECRET_COLON
:::

After.
"""

GATED_SOLUTION = """\
```{exercise}
:label: ex-c

Do it.
```

````{solution-start} ex-c
:class: dropdown
````

```{code-cell} ipython3
SECRET_GATED = 42
```

Some SECRET_PROSE.

````{solution-end}
````

```{code-cell} ipython3
kept = 1
```
"""


def test_a_plain_solution_block_is_removed_with_its_nested_fence() -> None:
    student = editions.student_source(PLAIN_SOLUTION)
    assert "SECRET_PLAIN" not in student and "{solution}" not in student
    assert "Write it." in student and "After." in student and "Intro." in student


def test_a_colon_fenced_solution_is_removed() -> None:
    student = editions.drop_solutions(COLON_SOLUTION)
    assert "SECRET_COLON" not in student
    assert "Before." in student and "After." in student


def test_a_gated_solution_region_is_removed_with_its_cells_and_prose() -> None:
    student = editions.drop_solutions(GATED_SOLUTION)
    assert "SECRET_GATED" not in student and "SECRET_PROSE" not in student
    assert "solution-" not in student
    assert "Do it." in student and "kept = 1" in student


def test_a_fence_inside_a_longer_fence_does_not_end_it() -> None:
    text = "`````{solution} ex\n````{admonition} Inner\n```\nx\n```\n````\nSECRET\n`````\nAfter.\n"
    assert editions.drop_solutions(text) == "After.\n"


def test_an_info_string_is_not_a_closing_fence() -> None:
    # "```python" opens a fence; only a bare run of backticks closes one (CommonMark).
    blocks = editions.split_blocks("```{solution} ex\n```python\n```\nAfter.\n")
    assert [b.name for b in blocks] == ["solution", ""]
    assert blocks[0].text == "```{solution} ex\n```python\n```\n"


def test_a_document_without_solutions_is_unchanged() -> None:
    text = "# Title\n\n```{code-cell} ipython3\n:tags: [hide-input]\nx = 1\n```\n\nText.\n"
    assert editions.student_source(text) == text


def test_solution_errors_name_the_line_and_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"line 1 has no \{solution-end\}"):
        editions.drop_solutions("````{solution-start} ex\n````\nSECRET\n")
    with pytest.raises(ValueError, match=r"\{solution-end\} on line 1 ends no solution"):
        editions.drop_solutions("````{solution-end}\n````\n")


def test_code_cells_tagged_teacher_only_are_removed_in_both_option_forms() -> None:
    text = (
        "```{code-cell} ipython3\n:tags: [teacher-only]\n\nSECRET_A = 1\n```\n\n"
        "```{code-cell} ipython3\n---\ntags: [remove-cell, teacher-only]\n---\n"
        "SECRET_B = 2\n```\n\n"
        "```{code-cell} ipython3\n:tags: [hide-input]\n\nkept = 3\n```\n"
    )
    student = editions.drop_teacher_only_cells(text)
    assert "SECRET_A" not in student and "SECRET_B" not in student
    assert "kept = 3" in student
    assert len(editions.teacher_only_cells(text)) == 2


def test_teacher_only_markdown_is_removed_and_a_broken_marker_refused() -> None:
    text = "Keep.\n<!-- teacher-only -->\nGRADING NOTE\n<!-- /teacher-only -->\nAlso keep.\n"
    assert editions.drop_teacher_only_markdown(text) == "Keep.\nAlso keep.\n"
    with pytest.raises(ValueError, match="line 1 is never closed"):
        editions.drop_teacher_only_markdown("<!-- teacher-only -->\nNOTE\n")
    with pytest.raises(ValueError, match="line 2 closes no region"):
        editions.drop_teacher_only_markdown("x\n<!-- /teacher-only -->\n")


def test_solutions_are_found_by_label_in_both_forms() -> None:
    found = editions.solutions(PLAIN_SOLUTION + GATED_SOLUTION)
    assert set(found) == {"ex-a", "ex-c"}
    assert "SECRET_PLAIN" in found["ex-a"] and "SECRET_GATED" in found["ex-c"]


def small_index() -> editions.BookIndex:
    index = editions.BookIndex(["book/a", "book/b"])
    index.titles = {"book/a": "Chapter A", "book/b": "Chapter B"}
    index.targets = {
        "ex-a": editions.Target("exercise", "Title", "book/a", 7),
        "alg-x": editions.Target("algorithm", "The X step", "book/b"),
        "eq-a": editions.Target("equation", "", "book/a", 1),
    }
    index.exercise_levels = {"ex-a": 2}
    index.citations = {"foret2021sam": ("Foret et al.", "2021")}
    return index


def test_directives_and_roles_become_plain_markdown() -> None:
    writer = editions.MarkdownWriter(small_index(), "book/a", frozenset({"book/b"}))
    text = (
        "```{exercise} Title\n:label: ex-a\n:class: difficulty-2\n\n"
        "Use {prf:ref}`alg-x`, {eq}`eq-a` and {cite:p}`foret2021sam`; "
        "it rises to {glue:text}`lmax:.2f`.\n```\n\n$$\nx = 1\n$$ (eq-a)\n"
    )
    markdown = editions.MarkdownWriter.markdown(writer, text)
    assert "#### Exercise 7 (★★): Title" in markdown
    assert "Algorithm (The X step) in [Chapter B](b.ipynb)" in markdown
    assert "(1)" in markdown and "\\tag{1}" in markdown
    assert "(Foret et al., 2021)" in markdown and "`lmax`" in markdown
    assert "{" + "exercise}" not in markdown and ":label:" not in markdown


def test_answer_cells_student_stub_and_teacher_solution() -> None:
    exercise = CheckedExercise("ex-a", "double", "def double(x):", "check_double")
    chapter = ["import numpy as np\n\n\ndef double(x):\n    y = 2 * x\n    return y\n"]
    student = editions.answer_source(exercise, chapter, teacher=False)
    assert student == "def double(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    teacher = editions.answer_source(exercise, chapter, teacher=True)
    assert teacher == (
        "def double(x):\n    ### BEGIN SOLUTION\n    y = 2 * x\n    return y\n"
        "    ### END SOLUTION\n"
    )


# --------------------------------------------------------------------------------------------
# The real book


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return editions.build("student", ROOT, tmp_path_factory.mktemp("student"))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return editions.build("teacher", ROOT, tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def index() -> editions.BookIndex:
    return editions.book_index(ROOT)


def original(docname: str) -> str:
    return (ROOT / f"{docname}.md").read_text()


def hidden_lines(text: str) -> set[str]:
    """The lines the student must not see: those of solutions, teacher-only cells and notes
    that occur nowhere else in the chapter (counted, not taken from the student edition, so
    that this test does not trust the code it tests). A blank line or a bare fence is no
    secret."""
    hidden = "".join(editions.solutions(text).values())
    hidden += "".join(editions.teacher_only_cells(text))
    hidden += "".join(
        re.findall(r"<!-- teacher-only -->\n(.*?)<!-- /teacher-only -->", text, flags=re.S)
    )
    in_hidden = Counter(line.strip() for line in hidden.splitlines())
    in_chapter = Counter(line.strip() for line in text.splitlines())
    return {
        line
        for line, count in in_hidden.items()
        if in_chapter[line] <= count and len(line) > 3 and not set(line) <= set("`:-")
    }


def test_student_sources_hold_no_solution_text(student: Path, index) -> None:
    with_solutions = 0
    for docname in index.docnames:
        text = original(docname)
        secret = hidden_lines(text)
        if editions.solutions(text):
            with_solutions += 1
        source = (student / "src" / f"{docname}.md").read_text()
        survivors = [line for line in source.splitlines() if line.strip() in secret]
        assert not survivors, f"{docname}: solution lines in the student source: {survivors[:3]}"
        assert not re.search(r"^ {0,3}(`{3,}|:{3,})\{solution", source, re.M), docname
        assert not re.search(r"teacher-only -->|:tags:.*teacher-only", source), docname
    assert with_solutions >= 12  # the check looked at the chapters that have solutions


def test_student_notebooks_hold_no_solution_text(student: Path) -> None:
    for path in sorted((student / "notebooks").glob("*.ipynb")):
        text = original(f"book/{path.stem}")
        # The def line of a checked exercise's answer cell is the statement's, not a solution.
        secret = hidden_lines(text) - {e.signature for e in CHECKED_EXERCISES}
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.metadata.get("nbgrader", {}).get("grade"):
                continue  # a test cell: written from the catalogue (the checker's import)
            survivors = [line for line in cell.source.splitlines() if line.strip() in secret]
            assert not survivors, f"{path.name}: solution lines in a cell: {survivors[:3]}"
            assert "teacher-only" not in cell.metadata.get("tags", []), path.name
            assert "### BEGIN SOLUTION" not in cell.source, path.name


# The chapter code that gave a checked exercise's answer away (classroom review, 0, missing 3).
FROM_SCRATCH_ANSWERS = (
    "my_checkpoints",
    "imbsam_direction",
    "asam_perturbation",
    "gsam_from_scratch",
    "looksam_from_scratch",
    "bsam_from_scratch",
    "schedule_free_from_scratch",
)


def test_no_answer_of_a_checked_exercise_is_in_the_student_edition(student: Path) -> None:
    names = {e.function for e in CHECKED_EXERCISES} | set(FROM_SCRATCH_ANSWERS)
    names |= {f"my_{name}" for name in names}
    defining = re.compile(rf"^\s*def ({'|'.join(sorted(names))})\(", re.M)
    for path in sorted((student / "src" / "book").glob("*.md")):
        assert not defining.search(path.read_text()), (
            f"{path.name}: {defining.search(path.read_text())[0]}"
        )
    for path in sorted((student / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.metadata.get("nbgrader", {}).get("solution"):
                continue  # the answer cell: the def line and raise NotImplementedError()
            assert not defining.search(cell.source), f"{path.name}: {cell.source[:200]}"


def test_the_collection_and_the_card_get_no_notebook(student: Path) -> None:
    names = {path.stem for path in (student / "notebooks").glob("*.ipynb")}
    assert {"cheaper", "imbsam", "sharp_flat"} <= names
    assert not {"exercises", "bibliography", "family_card"} & names
    assert (student / "notebooks" / "_data" / "label_noise_digits.json").is_file()


NBGRADER_KEYS = {"grade", "grade_id", "locked", "schema_version", "solution", "task"}


def nbgrader_cells(folder: Path) -> dict[str, tuple[str, nbformat.NotebookNode]]:
    cells = {}
    for path in sorted(folder.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if "nbgrader" in cell.metadata:
                grade_id = cell.metadata.nbgrader.grade_id
                assert grade_id not in cells, f"grade_id {grade_id} twice"
                assert re.fullmatch(r"[\w-]+", grade_id), grade_id  # nbgrader's rule
                cells[grade_id] = (path.stem, cell)
    return cells


def test_every_checked_exercise_has_valid_nbgrader_cells(student: Path, index) -> None:
    cells = nbgrader_cells(student / "notebooks")
    assert CHECKED_EXERCISES
    expected = set()
    for exercise in CHECKED_EXERCISES:
        grade_id = editions.grade_id(exercise, CHECKED_EXERCISES)
        expected |= {grade_id, f"{grade_id}-check"}
        chapter = index.targets[exercise.label].docname.rsplit("/", 1)[-1]
        where, answer = cells[grade_id]
        assert where == chapter
        assert set(answer.metadata.nbgrader) == NBGRADER_KEYS
        assert answer.metadata.nbgrader.solution and not answer.metadata.nbgrader.grade
        assert not answer.metadata.nbgrader.locked
        assert answer.metadata.nbgrader.schema_version == 3
        assert answer.source.startswith(exercise.signature + "\n")
        assert "raise NotImplementedError()" in answer.source
        where, check = cells[f"{grade_id}-check"]
        assert where == chapter
        assert set(check.metadata.nbgrader) == NBGRADER_KEYS | {"points"}
        assert check.metadata.nbgrader.grade and check.metadata.nbgrader.locked
        assert not check.metadata.nbgrader.solution
        assert check.metadata.nbgrader.points == exercise.points
        assert f"{exercise.checker}({exercise.function})" in check.source
    assert set(cells) == expected


def test_the_teachers_answers_pass_their_test_cells(teacher: Path) -> None:
    cells = nbgrader_cells(teacher / "notebooks")
    failed = []
    for grade_id, (chapter, answer) in cells.items():
        if grade_id.endswith("-check"):
            continue
        assert "### BEGIN SOLUTION" in answer.source, f"{chapter}: no solution for {grade_id}"
        namespace: dict = {}
        exec("import numpy as np\n" + answer.source, namespace)
        try:
            exec(cells[f"{grade_id}-check"][1].source, namespace)
        except AssertionError as error:
            failed.append(f"{chapter}/{grade_id}: {error}")
    assert not failed, failed


def assigned_names(source: str) -> set[str]:
    """The names a cell binds at its top level (assignments, defs, imports, loops)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def global_reads(source: str) -> set[str]:
    """The module-level names a cell reads without binding them itself: names read at the top
    level, and free names read inside its functions, lambdas and comprehensions."""
    try:
        table = symtable.symtable(source, "<cell>", "exec")
    except SyntaxError:
        return set()
    reads = {s.get_name() for s in table.get_symbols() if s.is_referenced() and not s.is_assigned()}
    pending = list(table.get_children())
    while pending:
        child = pending.pop()
        pending.extend(child.get_children())
        reads |= {
            s.get_name()
            for s in child.get_symbols()
            if s.is_referenced() and s.is_global() and s.get_name() not in assigned_names(source)
        }
    return reads


def test_no_kept_cell_uses_a_name_only_a_removed_cell_defines(index) -> None:
    """Decision 1: a chapter still executes after the removals (checked for every chapter,
    also those whose notebook is not executed below)."""
    problems = []
    for docname in index.docnames:
        text = original(docname)
        removed = "".join(editions.solutions(text).values())
        removed_code = [
            "".join(b.body()) for b in editions.split_blocks(removed) if b.name == "code-cell"
        ] + editions.teacher_only_cells(text)
        kept_code = [
            "".join(b.body())
            for b in editions.split_blocks(editions.student_source(text))
            if b.name == "code-cell"
        ]
        only_removed = set().union(*map(assigned_names, removed_code)) - set().union(
            *map(assigned_names, kept_code)
        )
        used = set().union(*map(global_reads, kept_code))
        if only_removed & used:
            problems.append(f"{docname}: {sorted(only_removed & used)}")
    assert not problems, problems


def execute(path: Path) -> tuple[str, float, str, nbformat.NotebookNode | None]:
    """Execute one notebook in a fresh folder outside the repository; (name, s, error, nb)."""
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()
    except Exception as error:
        return path.stem, time.perf_counter() - start, str(error)[-2000:], None
    return path.stem, time.perf_counter() - start, "", notebook


@pytest.mark.slow
def test_every_student_notebook_executes_stand_alone(
    student: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each notebook runs in its own copy of the notebooks folder in a temporary directory
    (no _toc.yml, no book/ above it), with the kernel's working directory there; the unanswered
    exercises' test cells fail and say so, every other cell runs without error."""
    names = [path.stem for path in sorted((student / "notebooks").glob("*.ipynb"))]
    assert len(names) >= 20, names
    paths = []
    for name in names:
        folder = tmp_path_factory.mktemp(f"run-{name}")
        shutil.copytree(student / "notebooks", folder, dirs_exist_ok=True)
        assert not any((parent / "_toc.yml").exists() for parent in folder.parents)
        paths.append(folder / f"{name}.ipynb")
    with ThreadPoolExecutor(EXECUTION_WORKERS) as pool:
        results = list(pool.map(execute, paths))
    print(", ".join(f"{name} {seconds:.0f} s" for name, seconds, _, _ in results))
    errors = [f"{name} ({seconds:.0f} s): {error}" for name, seconds, error, _ in results if error]
    assert not errors, "\n\n".join(errors)
    for name, _, _, notebook in results:
        for cell in notebook.cells:
            if "nbgrader" in cell.metadata and cell.metadata.nbgrader.grade:
                text = "".join(o.get("text", "") + o.get("evalue", "") for o in cell.outputs)
                assert "NotImplementedError" in text, f"{name}: {cell.source[:80]}"
                assert any(o.get("ename") == "AssertionError" for o in cell.outputs), name


def test_the_editions_have_make_targets() -> None:
    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M)[1].split()
    for target in ("student", "teacher", "book"):
        assert re.search(rf"^{target}:", makefile, re.M), target
        assert target in phony and f"make {target} " in makefile
    assert "scripts/editions.py student" in makefile
    assert "_build/student/html" in makefile


def test_the_command_line_builds_the_teacher_notebooks(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "editions.py"), "teacher", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "teacher edition" in result.stdout
    cheaper = nbformat.read(tmp_path / "notebooks" / "cheaper.ipynb", as_version=4)
    assert any(
        "{solution" not in c.source and "Solution to Exercise" in c.source for c in cheaper.cells
    )


def readme_teaching_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Teach with it\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("where", ["book/teaching.md", "README"])
def test_every_command_and_name_on_the_teaching_page_exists(where: str) -> None:
    """book/teaching.md and the README's "Teach with it" name make targets, pip extras, the
    grader, files and settings: each must exist, so the texts cannot drift from the code."""
    page = readme_teaching_section() if where == "README" else (ROOT / where).read_text()
    assert "- file: book/teaching" in (ROOT / "_toc.yml").read_text()
    assert "python -m sampy.grade SUBMISSIONS/" in page
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"`make (\w+)`", page)) | set(re.findall(r"^make (\w+)", page, re.M))
    assert {"student", "teacher"} <= targets
    for target in targets:
        assert re.search(rf"^{target}:", makefile, re.M), f"make {target}"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    installs = re.findall(r'"\.\[([\w,]+)\]"', page)
    assert installs
    for names in installs:
        for extra in names.split(","):
            assert extra in extras, f"pip install .[{names}]: no extra {extra}"
    for path in re.findall(r"`((?:playground|scripts|book)/[\w/.]+\.py)`", page):
        assert (ROOT / path).is_file(), path
    for setting in re.findall(r"`(SAMPY_[A-Z_]+|[A-Z]\w+\.\w+)`", page):
        assert setting in (ROOT / "playground" / "server" / "voila.py").read_text(), setting
    assert "python -m sampy.grade SUBMISSIONS/" in page
    grade = subprocess.run(
        [sys.executable, "-m", "sampy.grade", "--help"], capture_output=True, text=True
    )
    assert grade.returncode == 0 and "SUBMISSIONS" in grade.stdout.upper()


def test_the_label_noise_notebook_reads_the_results_it_is_handed_out_with(
    student: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Classroom review, 1.3: stand-alone, the chapter re-ran the 96 s digits experiment and
    wrote _data/ next to the notebook. The notebooks folder carries the results, made with the
    configuration the chapter asks for, so its cell (run from the notebook's folder) reads them."""
    from sampy.label_noise import digits

    shutil.copytree(student / "notebooks", tmp_path, dirs_exist_ok=True)
    cell = next(
        c.source
        for c in nbformat.read(tmp_path / "label_noise.ipynb", as_version=4).cells
        if c.cell_type == "code" and "label_noise_digits.json" in c.source
    )
    assert 'Path("_data/label_noise_digits.json")' in cell
    monkeypatch.chdir(tmp_path)

    def no_rerun(*args: object, **kwargs: object) -> None:
        raise AssertionError("the digits experiment would run again")

    monkeypatch.setattr(digits, "run_experiment", no_rerun)
    results = digits.load_or_run(Path("_data/label_noise_digits.json"), digits.DEFAULT)
    assert results["runs"]


def test_no_myst_syntax_is_left_in_the_notebooks_markdown(student: Path) -> None:
    """Classroom review, 1.3: in plain Jupyter, MyST directives showed as raw fenced text and
    cross-references did not resolve. Every exercise is a heading with its number and stars."""
    myst = re.compile(
        r"^ {0,3}(`{3,}|:{3,})\{[\w:-]+\}|\{[\w:-]+\}`[^`]*`|^:[\w-]+:|^\([\w-]+\)=$", re.M
    )
    headings = 0
    for path in sorted((student / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                left = myst.search(cell.source)
                assert left is None, f"{path.name}: {left[0]!r} in {cell.source[:120]!r}"
                headings += len(re.findall(r"^#### Exercise \d+ \(★{1,3}\)", cell.source, re.M))
    in_notebooks = [
        label
        for label, target in editions.book_index(ROOT).targets.items()
        if target.kind == "exercise" and target.docname not in editions.NO_NOTEBOOK
    ]
    assert headings == len(in_notebooks) > 50
