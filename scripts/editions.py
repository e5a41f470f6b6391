"""The book's two editions: the student edition (no solutions) and the teacher edition.

    python scripts/editions.py student   # _build/student/{src,notebooks}; `make student` adds html/
    python scripts/editions.py teacher   # _build/teacher/notebooks, solutions and grading notes

The student edition is a transformed copy of the book's sources from which these are removed:
``{solution}`` blocks, ``{solution-start}`` … ``{solution-end}`` regions, code cells tagged
``teacher-only`` and Markdown between ``<!-- teacher-only -->`` and ``<!-- /teacher-only -->``.
Jupyter Book builds that copy with the book's own configuration, so no solution reaches the
HTML, its ``_sources`` or its search index. Each chapter also becomes a notebook that plain
Jupyter renders (MyST directives and roles turned into Markdown) and that carries nbgrader cell
metadata (schema 3) for every checked exercise of ``sampy.exercises.CHECKED_EXERCISES``: an
answer cell and a locked test cell that calls the checker. The teacher's notebooks hold the
same cells with the chapter's solution between nbgrader's ``### BEGIN SOLUTION`` markers, so
they are also an nbgrader source notebook.

This is a build tool of the book, not part of the package: it needs jupytext and PyYAML,
which ``pip install sampy`` does not install, so it lives in ``scripts/``. Every transformation
is a pure function on strings; the tests (tests/test_editions.py) call them one by one.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

from sampy.exercises import CHECKED_EXERCISES, CheckedExercise

ROOT = Path(__file__).resolve().parents[1]
TEACHER_ONLY_START = "<!-- teacher-only -->"
TEACHER_ONLY_END = "<!-- /teacher-only -->"
TEACHER_ONLY_TAG = "teacher-only"
# The pages of the book that get no notebook, and why (the tests print these reasons).
NO_NOTEBOOK = {
    "book/exercises": "the collection of every chapter's exercises: it is generated from "
    "_toc.yml and the chapter sources, so it only means something inside the book",
    "book/bibliography": "the bibliography: no code, and the notebooks cite in plain text",
    "book/family_card": "the reference card: generated from every chapter's algorithm boxes, "
    "so it needs the book's sources",
}
# The data a chapter reads that the notebooks folder carries (relative to the book/ folder):
# the label-noise chapter's digits results take 96 s to recompute.
NOTEBOOK_DATA = ("_data/label_noise_digits.json",)
STARS = {1: "★", 2: "★★", 3: "★★★"}
NBGRADER_SCHEMA = 3

# A fence that opens a block: up to three spaces, three or more backticks or colons, then an
# optional {directive} and its argument (CommonMark fences, MyST directives, colon fences).
FENCE_OPEN = re.compile(
    r"^(?P<indent> {0,3})(?P<fence>`{3,}|:{3,})"
    r"[ \t]*(?:\{(?P<name>[^}\s]+)\})?[ \t]*(?P<arg>.*?)\s*$"
)
OPTION_LINE = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")


# --------------------------------------------------------------------------------------------
# Blocks: the top level of a MyST document, fences found by CommonMark's rules


@dataclass
class Block:
    """A top-level piece of a MyST document: plain text lines, or one fenced block.

    ``lines`` keep their line endings, so ``"".join`` of every block's lines is the document.
    """

    lines: list[str]
    start: int  # 1-based line number of the block's first line
    fence: str = ""  # "" for text, else the opening fence ("```", "````", ":::", …)
    name: str = ""  # the directive's name ("solution", "code-cell", …), "" for plain fences
    arg: str = ""  # the directive's argument (a label, a title, "ipython3", …)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    @property
    def content(self) -> list[str]:
        """The lines between the opening and the closing fence."""
        closed = len(self.lines) > 1 and is_closing(self.lines[-1], self.fence)
        return self.lines[1 : -1 if closed else None]

    def options(self) -> dict:
        """The directive's options: ``:key: value`` lines or a ``---`` YAML block."""
        return directive_options(self.content)[0]

    def body(self) -> list[str]:
        """The content after the options."""
        return directive_options(self.content)[1]


def is_closing(line: str, fence: str) -> bool:
    """CommonMark: a closing fence is the opening's character, at least as many, nothing else."""
    stripped = line.strip()
    return (
        len(line) - len(line.lstrip(" ")) <= 3
        and len(stripped) >= len(fence)
        and set(stripped) == {fence[0]}
    )


def split_blocks(text: str) -> list[Block]:
    """The top-level text runs and fenced blocks of ``text``, in order.

    A fence ends at the first line that closes it (CommonMark), so fences nested inside a
    longer fence stay inside its block. An unclosed fence runs to the end of the document.
    """
    lines = text.splitlines(keepends=True)
    blocks: list[Block] = []
    pending: list[str] = []
    pending_start = 1
    i = 0
    while i < len(lines):
        opened = FENCE_OPEN.match(lines[i].rstrip("\n"))
        # A backtick fence's info string cannot hold a backtick (that is an inline code span).
        if opened is None or (opened["fence"][0] == "`" and "`" in opened["arg"]):
            if not pending:
                pending_start = i + 1
            pending.append(lines[i])
            i += 1
            continue
        if pending:
            blocks.append(Block(pending, pending_start))
            pending = []
        end = i + 1
        while end < len(lines) and not is_closing(lines[end].rstrip("\n"), opened["fence"]):
            end += 1
        block_lines = lines[i : end + 1]
        blocks.append(
            Block(block_lines, i + 1, opened["fence"], opened["name"] or "", opened["arg"])
        )
        i = end + 1
    if pending:
        blocks.append(Block(pending, pending_start))
    return blocks


def directive_options(content: list[str]) -> tuple[dict, list[str]]:
    """Split a directive's content into its options (a dict) and its body lines."""
    if content and content[0].strip() == "---":
        for end in range(1, len(content)):
            if content[end].strip() == "---":
                options = yaml.safe_load("".join(content[1:end])) or {}
                return (options if isinstance(options, dict) else {}), content[end + 1 :]
        return {}, content
    options: dict = {}
    n = 0
    for line in content:
        option = OPTION_LINE.match(line.rstrip("\n"))
        if option is None:
            break
        value = option["value"].strip()
        try:
            options[option["key"]] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            options[option["key"]] = value
        n += 1
    return options, content[n:]


def tags_of(block: Block) -> list[str]:
    """The tags of a code cell (``:tags: [a, b]`` or ``tags:`` in its YAML options)."""
    tags = block.options().get("tags") or []
    return [tags] if isinstance(tags, str) else [str(tag) for tag in tags]


# --------------------------------------------------------------------------------------------
# The student edition's transformations (pure functions on MyST text)


def drop_teacher_only_markdown(text: str) -> str:
    """Remove every region from a ``<!-- teacher-only -->`` line to ``<!-- /teacher-only -->``.

    Raises ``ValueError`` for an unclosed, unopened or nested marker: a mismatched marker would
    otherwise publish the grading notes it was meant to hide, or hide the rest of the chapter.
    """
    kept: list[str] = []
    opened_at = 0
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        marker = line.strip()
        if marker == TEACHER_ONLY_START:
            if opened_at:
                raise ValueError(
                    f"teacher-only marker on line {number} opens a region inside the one "
                    f"opened on line {opened_at}: close it with {TEACHER_ONLY_END} first"
                )
            opened_at = number
        elif marker == TEACHER_ONLY_END:
            if not opened_at:
                raise ValueError(
                    f"{TEACHER_ONLY_END} on line {number} closes no region: add "
                    f"{TEACHER_ONLY_START} above it or remove it"
                )
            opened_at = 0
        elif not opened_at:
            kept.append(line)
    if opened_at:
        raise ValueError(
            f"teacher-only region opened on line {opened_at} is never closed: add a line "
            f"{TEACHER_ONLY_END} where the grading note ends"
        )
    return "".join(kept)


def drop_solutions(text: str) -> str:
    """Remove ``{solution}`` blocks and ``{solution-start}`` … ``{solution-end}`` regions.

    Raises ``ValueError`` for a ``{solution-start}`` without its ``{solution-end}`` (which
    sphinx-exercise would also refuse) and for a stray ``{solution-end}``.
    """
    kept: list[Block] = []
    open_start: Block | None = None
    for block in split_blocks(text):
        if block.name == "solution-start":
            if open_start is not None:
                raise ValueError(
                    f"{{solution-start}} on line {block.start} opens inside the solution "
                    f"opened on line {open_start.start}: add its {{solution-end}} first"
                )
            open_start = block
        elif block.name == "solution-end":
            if open_start is None:
                raise ValueError(
                    f"{{solution-end}} on line {block.start} ends no solution: add the "
                    "{solution-start} it closes, or remove it"
                )
            open_start = None
        elif open_start is None and block.name != "solution":
            kept.append(block)
    if open_start is not None:
        raise ValueError(
            f"{{solution-start}} {open_start.arg} on line {open_start.start} has no "
            "{solution-end}: add one where the solution ends"
        )
    return "".join(block.text for block in kept)


def drop_teacher_only_cells(text: str) -> str:
    """Remove the ``{code-cell}`` blocks tagged ``teacher-only``."""
    return "".join(
        block.text
        for block in split_blocks(text)
        if not (block.name == "code-cell" and TEACHER_ONLY_TAG in tags_of(block))
    )


def tidy_blank_lines(text: str) -> str:
    """At most two blank lines in a row (removals leave runs of them behind)."""
    return re.sub(r"\n{4,}", "\n\n\n", text)


def student_source(text: str) -> str:
    """A chapter's MyST source as the student edition has it."""
    return tidy_blank_lines(
        drop_teacher_only_cells(drop_solutions(drop_teacher_only_markdown(text)))
    )


def solutions(text: str) -> dict[str, str]:
    """The text of every solution in ``text``, by exercise label (both solution forms)."""
    found: dict[str, str] = {}
    label = None
    region: list[str] = []
    for block in split_blocks(text):
        if block.name == "solution-start":
            label, region = block.arg, []
        elif block.name == "solution-end":
            found[label or ""] = "".join(region)
            label = None
        elif label is not None:
            region.append(block.text)
        elif block.name == "solution":
            found[block.arg] = "".join(block.body())
    return found


def teacher_only_cells(text: str) -> list[str]:
    """The source of every code cell tagged ``teacher-only`` in ``text``."""
    return [
        "".join(block.body())
        for block in split_blocks(text)
        if block.name == "code-cell" and TEACHER_ONLY_TAG in tags_of(block)
    ]


# --------------------------------------------------------------------------------------------
# The book: its pages, exercises, labels and references


@dataclass(frozen=True)
class Target:
    """Something a role can point to: an exercise, a proof-box, an equation or a section."""

    kind: str  # "exercise", "algorithm", "lemma", …, "equation", "section"
    title: str
    docname: str  # "book/cheaper"
    number: int = 0  # exercises: their number in the book; equations: in their chapter


@dataclass
class BookIndex:
    """What the notebooks need to know about the whole book to write its references out."""

    docnames: list[str]
    titles: dict[str, str] = field(default_factory=dict)  # docname -> the page's title
    targets: dict[str, Target] = field(default_factory=dict)  # label -> target
    exercise_levels: dict[str, int] = field(default_factory=dict)  # label -> 1, 2, 3
    citations: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (names, year)


def toc_docnames(toc: dict) -> list[str]:
    """Every document of a jb-book ``_toc.yml`` in reading order, without extension."""
    names = [toc["root"]]

    def walk(entries: Iterable[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                names.append(re.sub(r"\.(md|ipynb)$", "", entry["file"]))
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    walk(toc.get("chapters", []))
    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    return names


def page_title(text: str) -> str:
    """The first level-1 heading of a page, as plain text."""
    heading = re.search(r"^# (.+)$", text, re.M)
    return plain_roles(heading[1].strip()) if heading else ""


def iter_directives(text: str) -> Iterator[Block]:
    """Every directive block of ``text``, nested ones included, in document order."""
    for block in split_blocks(text):
        if block.name:
            yield block
            if block.name != "code-cell":
                yield from iter_directives("".join(block.body()))


def book_index(root: Path, sources: dict[str, str] | None = None) -> BookIndex:
    """Read ``_toc.yml``, every page and the bibliography under ``root`` into a BookIndex.

    ``sources`` (docname -> MyST text) replaces the pages' files when given.
    """
    docnames = toc_docnames(yaml.safe_load((root / "_toc.yml").read_text()))
    index = BookIndex(docnames)
    exercise_number = 0
    for docname in docnames:
        path = root / f"{docname}.md"
        text = sources[docname] if sources and docname in sources else path.read_text()
        index.titles[docname] = page_title(text)
        for target in re.finditer(r"^\((?P<label>[\w-]+)\)=\s*\n+#+ (?P<title>.+)$", text, re.M):
            index.targets[target["label"]] = Target("section", target["title"].strip(), docname)
        for number, match in enumerate(re.finditer(r"^\$\$ *\((?P<label>[\w-]+)\)", text, re.M)):
            index.targets[match["label"]] = Target("equation", "", docname, number + 1)
        for block in iter_directives(text):
            label = block.options().get("label")
            if not label:
                continue
            kind = block.name.removeprefix("prf:")
            if block.name == "exercise":
                exercise_number += 1
                index.targets[label] = Target(kind, block.arg, docname, exercise_number)
                level = re.search(r"difficulty-([123])", str(block.options().get("class", "")))
                if level:
                    index.exercise_levels[label] = int(level[1])
            elif block.name.startswith("prf:"):
                index.targets[label] = Target(kind, block.arg, docname)
    bibliography = root / "book" / "references.bib"
    if bibliography.is_file():
        index.citations = read_citations(bibliography.read_text())
    return index


def read_citations(bibtex: str) -> dict[str, tuple[str, str]]:
    """Each entry's key -> (its authors as cited, its year), from a BibTeX file."""
    citations = {}
    for entry in re.finditer(r"@\w+\{(?P<key>[^,\s]+),(?P<body>.*?)\n\}", bibtex, re.S):
        fields = dict(
            (name.lower(), value.strip())
            for name, value in re.findall(r"(\w+)\s*=\s*\{(.*?)\},?\s*$", entry["body"], re.M)
        )
        surnames = [
            name.split(",")[0].strip(" {}")
            for name in re.split(r"\s+and\s+", fields.get("author", ""))
            if name.strip()
        ]
        if len(surnames) > 2:
            names = f"{surnames[0]} et al."
        else:
            names = " and ".join(surnames) or entry["key"]
        citations[entry["key"]] = (names, fields.get("year", "").strip("{}"))
    return citations


# --------------------------------------------------------------------------------------------
# MyST -> plain Jupyter Markdown


ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<content>[^`]*)`")
EXPLICIT_TITLE = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>$", re.S)


def plain_roles(text: str) -> str:
    """Roles written out without a book to resolve them: their text, or their target."""
    return ROLE.sub(lambda m: explicit_title(m["content"])[0], text)


def explicit_title(content: str) -> tuple[str, str]:
    """``"title <target>"`` -> (title, target); ``"target"`` -> (target, target)."""
    match = EXPLICIT_TITLE.match(content)
    return (match["title"], match["target"]) if match else (content, content)


@dataclass
class MarkdownWriter:
    """Writes a chapter's MyST Markdown as Markdown that plain Jupyter renders."""

    index: BookIndex
    docname: str
    notebook_docnames: frozenset[str] = frozenset()

    def chapter_link(self, docname: str, title: str | None = None) -> str:
        title = title or self.index.titles.get(docname) or docname.rsplit("/", 1)[-1]
        if docname in self.notebook_docnames:
            return f"[{title}]({docname.rsplit('/', 1)[-1]}.ipynb)"
        return f"*{title}* (in the book)"

    def where(self, target: Target) -> str:
        """ " in <chapter>" for a target of another chapter, else ""."""
        return "" if target.docname == self.docname else f" in {self.chapter_link(target.docname)}"

    def role(self, match: re.Match) -> str:
        role, content = match["role"], match["content"]
        title, target_name = explicit_title(content)
        explicit = title != target_name or "<" in content
        if role == "doc":
            docname = target_name if "/" in target_name else f"book/{target_name}"
            return self.chapter_link(docname, title if explicit else None)
        if role in ("prf:ref", "ref", "numref", "eq"):
            target = self.index.targets.get(target_name)
            if target is None:
                return title
            if role == "eq":
                if target.docname == self.docname:
                    return f"({target.number})"
                return f"equation ({target.number}){self.where(target)}"
            if role == "numref":
                return title.replace("{number}", str(target.number)) + self.where(target)
            if explicit:
                return title + self.where(target)
            if target.kind == "section":
                return f"*{target.title}*{self.where(target)}"
            if target.kind == "exercise":
                return f"Exercise {target.number}{self.where(target)}"
            name = target.kind.capitalize()
            shown = f"{name} ({plain_roles(target.title)})" if target.title else name
            return shown + self.where(target)
        if role in ("cite:p", "cite:t", "cite"):
            keys = [key.strip() for key in content.split(",")]
            cited = [self.index.citations.get(key, (key, "")) for key in keys]
            if role == "cite:t":
                return "; ".join(f"{names} ({year})" for names, year in cited)
            return "(" + "; ".join(f"{names}, {year}" for names, year in cited) + ")"
        if role == "glue:text":
            # The value is computed by a cell above; the notebook shows the name it is glued to.
            return f"`{content.split(':', 1)[0]}`"
        if role == "math":
            return f"${content}$"
        return f"`{title}`" if role in ("code", "samp", "file") else title

    def inline(self, text: str) -> str:
        """Roles, labelled equations, targets and comments of a Markdown run."""
        equations = {
            target.number: label
            for label, target in self.index.targets.items()
            if target.kind == "equation" and target.docname == self.docname
        }
        numbers = {label: number for number, label in equations.items()}

        def equation(match: re.Match) -> str:
            number = numbers.get(match["label"])
            tag = f"\\tag{{{number}}}\n" if number else ""
            return f"{match['math']}{tag}$$"

        text = re.sub(r"(?P<math>\$\$.*?)\$\$ *\((?P<label>[\w-]+)\)", equation, text, flags=re.S)
        text = re.sub(
            r"^\((?P<label>[\w-]+)\)=[ \t]*$", r'<a id="\g<label>"></a>', text, flags=re.M
        )
        text = re.sub(r"^%.*\n?", "", text, flags=re.M)
        return ROLE.sub(self.role, text)

    def markdown(self, text: str) -> str:
        """A Markdown cell's MyST text as plain Markdown."""
        out: list[str] = []
        for block in split_blocks(text):
            if not block.fence:
                out.append(self.inline(block.text))
            elif not block.name:
                out.append(block.text)  # a plain code fence: Jupyter renders it
            else:
                out.append(self.directive(block))
        return tidy_blank_lines("".join(out))

    def directive(self, block: Block) -> str:
        options = block.options()
        body = self.markdown("".join(block.body())).strip()
        label = options.get("label") or (block.arg if block.name.startswith("solution") else "")
        anchor = f'<a id="{label}"></a>\n\n' if label and "solution" not in block.name else ""
        if block.name == "exercise":
            target = self.index.targets.get(label)
            number = f" {target.number}" if target else ""
            level = self.index.exercise_levels.get(label)
            stars = f" ({STARS[level]})" if level else ""
            title = f": {self.inline(block.arg)}" if block.arg else ""
            return f"{anchor}#### Exercise{number}{stars}{title}\n\n{body}\n"
        if block.name in ("solution", "solution-start"):
            target = self.index.targets.get(block.arg)
            of = f" to Exercise {target.number}" if target else ""
            return f"**Solution{of}.**\n\n{body}\n".replace("\n\n\n", "\n\n")
        if block.name == "solution-end":
            return "*(end of the solution)*\n"
        if block.name == "prf:proof":
            return f"*Proof.* {body} ∎\n"
        if block.name.startswith("prf:"):
            kind = block.name.removeprefix("prf:").capitalize()
            title = f" ({self.inline(block.arg)})" if block.arg else ""
            return f"{anchor}**{kind}{title}.** {body}\n"
        if block.name == "math":
            return f"$$\n{body}\n$$\n"
        if block.name == "lab":
            caption = self.inline(str(options.get("caption", "")))
            return (
                f"> *A live figure of the book (open the HTML book to use it): {caption}*\n"
                if caption
                else "> *A live figure of the book: open the HTML book to use it.*\n"
            )
        if block.name == "bibliography":
            return ""
        title = self.inline(block.arg) if block.arg else block.name.capitalize()
        quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
        return f"{anchor}> **{title}**\n>\n{quoted}\n"


# --------------------------------------------------------------------------------------------
# Notebooks


GLUE_IMPORT = re.compile(r"^from myst_nb import glue[ \t]*$", re.M)
GLUE_FALLBACK = textwrap.dedent(
    '''\
    try:
        from myst_nb import glue
    except ImportError:  # outside the book: keep the glued values, show what is displayed
        glued = {}

        def glue(name, variable, display=True):
            """Keep ``variable`` as glued[name]; the book writes it into its text."""
            glued[name] = variable
            if display:
                from IPython.display import display as show

                show(variable)'''
)


def standalone_code(source: str) -> str:
    """A code cell as it runs outside the book: myst_nb's ``glue`` gets a fallback."""
    return GLUE_IMPORT.sub(GLUE_FALLBACK, source)


def requirements_of(code: str) -> list[str]:
    """What a chapter's code needs beyond ``pip install "sampy[book]"``."""
    needs = []
    if re.search(r"^\s*(?:import|from) (?:torch|sampy\.torch)\b", code, re.M):
        needs.append("torch")
    if re.search(r"\bsklearn\b|label_noise\.digits|import digits|\bdigits\.load", code):
        needs.append("scikit-learn")
    return needs


def nbgrader_metadata(grade_id: str, *, solution: bool, grade: bool, points: int = 0) -> dict:
    """nbgrader's cell metadata, schema 3: an answer cell (solution) or a test cell (grade)."""
    metadata = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": not solution,
        "schema_version": NBGRADER_SCHEMA,
        "solution": solution,
        "task": False,
    }
    if grade:
        metadata["points"] = points
    return metadata


def reference_function(code_cells: Iterable[str], function: str) -> ast.FunctionDef | None:
    """The chapter's own ``def function(...)`` (or ``def my_function(...)``, as solutions name
    theirs) and its source, if the chapter writes one."""
    code_cells = list(code_cells)
    for name in (function, f"my_{function}"):
        for source in code_cells:
            try:
                tree = ast.parse(source)
            except SyntaxError:  # IPython magics: not a cell that defines the answer
                continue
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and node.name == name:
                    node.source = ast.get_source_segment(source, node)  # type: ignore[attr-defined]
                    return node
    return None


def imports_of(code_cells: Iterable[str], names: set[str]) -> list[str]:
    """The chapter's import statements that bind one of ``names``, one name each."""
    found = {}
    for source in code_cells:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for alias in node.names:
                bound = (alias.asname or alias.name).split(".")[0]
                if bound in names and bound not in found:
                    name = alias.name + (f" as {alias.asname}" if alias.asname else "")
                    found[bound] = (
                        f"from {node.module} import {name}"
                        if isinstance(node, ast.ImportFrom)
                        else f"import {name}"
                    )
    return [found[name] for name in sorted(found)]


def code_blocks(text: str) -> list[str]:
    """The code of every code cell and ``python`` fence of ``text``, nested ones included."""
    code = []
    for block in split_blocks(text):
        if block.name == "code-cell" or (not block.name and block.arg.startswith("python")):
            code.append("".join(block.body() if block.name else block.content))
        elif block.name:
            code.extend(code_blocks("".join(block.body())))
    return code


def answer_source(exercise: CheckedExercise, chapter_code: list[str], *, teacher: bool) -> str:
    """The answer cell: the def line and ``raise NotImplementedError()`` for the student; for
    the teacher, the chapter's solution inside nbgrader's BEGIN/END SOLUTION markers (which is
    what ``nbgrader generate_assignment`` turns back into the student's cell)."""
    stub = f"{exercise.signature}\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    if not teacher:
        return stub
    reference = reference_function(chapter_code, exercise.function)
    if reference is None:
        return stub.replace(
            "# YOUR CODE HERE", "# the chapter writes no solution of this function: write one"
        )
    # Functions of the chapter that the solution calls come with it (a solution may build on
    # a helper written earlier in the chapter).
    called = {n.id for n in ast.walk(reference) if isinstance(n, ast.Name)}
    called -= {reference.name, exercise.function, "np"}
    helpers = [
        *imports_of(chapter_code, called),
        *(
            helper.source
            for name in sorted(called)
            if (helper := reference_function(chapter_code, name)) is not None
            and helper.name == name
        ),
    ]
    source = re.sub(rf"^def {reference.name}\b", f"def {exercise.function}", reference.source)
    statement = ast.parse(exercise.signature + "\n    pass\n").body[0]
    same_signature = (
        ast.dump(statement.args) == ast.dump(reference.args)
        and not reference.decorator_list
        and not helpers
    )
    if same_signature:
        # The body from its first statement on, under the student's own def line.
        body = source.splitlines()[reference.body[0].lineno - reference.lineno :]
        return (
            f"{exercise.signature}\n    ### BEGIN SOLUTION\n"
            + "\n".join(body).rstrip()
            + "\n    ### END SOLUTION\n"
        )
    whole = "\n\n\n".join([*helpers, source.rstrip()])
    return f"### BEGIN SOLUTION\n{whole}\n### END SOLUTION\n"


def check_source(exercise: CheckedExercise) -> str:
    """The locked test cell: the checker's feedback, and an assertion nbgrader scores."""
    return (
        f"from sampy.exercises import {exercise.checker}\n\n"
        f"feedback = {exercise.checker}({exercise.function})\n"
        "print(feedback)\n"
        f'assert feedback.passed, "{exercise.function} does not pass yet: see the feedback above"\n'
    )


def notebook_header(title: str, docname: str, needs: list[str], *, teacher: bool) -> str:
    """The cell under a notebook's title: which edition, what to install, how to answer."""
    extras = ",".join(["book", *(["torch"] if "torch" in needs else [])])
    extra_packages = " scikit-learn" if "scikit-learn" in needs else ""
    edition = (
        "the **teacher edition**: solutions and grading notes included"
        if teacher
        else "the **student edition**: no solutions"
    )
    return (
        f"*{title}*, a chapter of the sampy book, as a notebook ({edition}).\n\n"
        f'It runs with sampy installed: `pip install "sampy[{extras}]"{extra_packages}` '
        f'(from a clone of the repository: `pip install ".[{extras}]"{extra_packages}`).\n\n'
        "Numbers that the book writes into its text from a computation appear here as the name "
        "they are kept under, e.g. `name`; after running the cells, `glued['name']` holds the "
        "value. Live figures and references to other chapters point to the HTML book.\n\n"
        "An exercise graded by a checker has an answer cell (replace `raise "
        "NotImplementedError()` by your code) and a locked test cell that runs the checker: "
        "it prints what is wrong and passes once your function is right. The cells are "
        "nbgrader cells (schema 3), for teachers who grade with nbgrader."
    )


def grade_id(exercise: CheckedExercise, exercises: Iterable[CheckedExercise]) -> str:
    """The answer cell's nbgrader grade_id: the exercise's label, or ``label-function`` when
    the exercise asks for several checked functions (nbgrader needs the ids unique)."""
    shared = sum(other.label == exercise.label for other in exercises) > 1
    return f"{exercise.label}-{exercise.function}" if shared else exercise.label


def grading_cells(
    exercise: CheckedExercise, reference_code: list[str], grade_id: str, *, teacher: bool
) -> list[nbformat.NotebookNode]:
    """A checked exercise's nbgrader cells: the answer cell (``grade_id``), then the locked
    test cell (``grade_id-check``)."""
    answer = nbformat.v4.new_code_cell(
        answer_source(exercise, reference_code, teacher=teacher),
        metadata={"nbgrader": nbgrader_metadata(grade_id, solution=True, grade=False)},
    )
    check = nbformat.v4.new_code_cell(
        check_source(exercise),
        metadata={
            "nbgrader": nbgrader_metadata(
                f"{grade_id}-check", solution=False, grade=True, points=exercise.points
            ),
            "editable": False,
            "deletable": False,
            # Run All goes on past an unanswered exercise (JupyterLab and nbclient).
            "tags": ["raises-exception"],
        },
    )
    return [answer, check]


def chapter_notebook(
    text: str,
    docname: str,
    index: BookIndex,
    exercises: Iterable[CheckedExercise],
    *,
    teacher: bool,
    reference_code: list[str] | None = None,
    notebook_docnames: frozenset[str] = frozenset(),
) -> nbformat.NotebookNode:
    """A chapter's notebook: ``text`` is its MyST source, transformed or not.

    Every Markdown cell is written out for plain Jupyter; after each checked exercise's
    statement come its nbgrader answer and test cells. ``reference_code`` is the chapter's
    complete code (the teacher's answer cells take the solution's function from it).
    """
    import jupytext  # the book's toolchain, not a dependency of sampy

    notebook = jupytext.reads(text, fmt="md:myst")
    writer = MarkdownWriter(index, docname, notebook_docnames)
    exercises = tuple(exercises)
    by_label: dict[str, list[CheckedExercise]] = {}
    for exercise in exercises:
        by_label.setdefault(exercise.label, []).append(exercise)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    reference_code = reference_code if reference_code is not None else code
    cells = []
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = standalone_code(cell.source)
            cells.append(cell)
            continue
        if cell.cell_type != "markdown":
            cells.append(cell)
            continue
        # A checked exercise's answer and test cells come right after its statement, so the
        # Markdown cell is cut after each such exercise.
        pending: list[str] = []
        for block in split_blocks(cell.source):
            pending.append(block.text)
            if block.name != "exercise" or block.options().get("label") not in by_label:
                continue
            cells.append(nbformat.v4.new_markdown_cell(writer.markdown("".join(pending))))
            pending = []
            for exercise in by_label[block.options()["label"]]:
                cells.extend(
                    grading_cells(
                        exercise, reference_code, grade_id(exercise, exercises), teacher=teacher
                    )
                )
        rest = writer.markdown("".join(pending)).strip()
        if rest:
            cells.append(nbformat.v4.new_markdown_cell(rest))
    cells = [c for c in cells if c.cell_type != "markdown" or c.source.strip()]
    for cell in cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.strip()
    title = index.titles.get(docname, docname)
    header = nbformat.v4.new_markdown_cell(
        notebook_header(title, docname, requirements_of("\n".join(code)), teacher=teacher)
    )
    first_heading = next(
        (i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("# ")),
        -1,
    )
    cells.insert(first_heading + 1, header)
    notebook.cells = cells
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    for i, cell in enumerate(notebook.cells):
        cell["id"] = f"{docname.rsplit('/', 1)[-1].replace('_', '-')}-{i}"
    nbformat.validate(notebook)
    return notebook


# --------------------------------------------------------------------------------------------
# Building the editions


def notebook_docnames(index: BookIndex, sources: dict[str, str]) -> list[str]:
    """The pages that become notebooks: those with code or exercises, not NO_NOTEBOOK's."""
    return [
        docname
        for docname in index.docnames
        if docname not in NO_NOTEBOOK
        and re.search(r"\{code-cell\}|\{exercise\}", sources.get(docname, ""))
    ]


def copy_book_tree(source: Path, destination: Path) -> None:
    """The files Jupyter Book reads: _config.yml, _toc.yml, book/ and the {lab} extension."""
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(source / name, destination / name)
    shutil.copytree(source / "book", destination / "book")
    shutil.copytree(
        source / "lab", destination / "lab", ignore=shutil.ignore_patterns("node_modules")
    )
    for link in ("_vendor", "node_modules"):
        if (source / link).exists():
            (destination / link).symlink_to(source / link)


def build(edition: str, root: Path = ROOT, out: Path | None = None) -> Path:
    """Write an edition's sources (student) and notebooks under ``out``; return ``out``."""
    teacher = edition == "teacher"
    out = out or root / "_build" / edition
    # Exercise numbers and labels come from the whole book, so they match the HTML's.
    index = book_index(root)
    originals = {docname: (root / f"{docname}.md").read_text() for docname in index.docnames}
    if teacher:
        texts = originals
    else:
        texts = {docname: student_source(text) for docname, text in originals.items()}
        copy_book_tree(root, out / "src")
        for docname, text in texts.items():
            (out / "src" / f"{docname}.md").write_text(text)
    exercises = CHECKED_EXERCISES
    chapters = notebook_docnames(index, texts)
    notebooks = out / "notebooks"
    if notebooks.exists():
        shutil.rmtree(notebooks)
    notebooks.mkdir(parents=True)
    for docname in chapters:
        # The solutions' own code first: it answers with the statement's signature, where the
        # chapter's from-scratch code may use its own.
        chapter = drop_teacher_only_markdown(originals[docname])
        reference = [
            *(code for solution in solutions(chapter).values() for code in code_blocks(solution)),
            *code_blocks(chapter),
        ]
        notebook = chapter_notebook(
            texts[docname],
            docname,
            index,
            exercises,
            teacher=teacher,
            reference_code=reference,
            notebook_docnames=frozenset(chapters),
        )
        nbformat.write(notebook, notebooks / f"{docname.rsplit('/', 1)[-1]}.ipynb")
    for data in NOTEBOOK_DATA:
        if (root / "book" / data).is_file():
            (notebooks / data).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / "book" / data, notebooks / data)
    (out / "notebooks" / "README.txt").write_text(
        "One notebook per chapter of the sampy book"
        + (" (teacher edition: with solutions).\n" if teacher else " (student edition).\n")
        + "Hand out the whole folder: _data/ holds the results the label-noise chapter reads.\n"
        + "".join(f"No notebook for {d}: {why}.\n" for d, why in NO_NOTEBOOK.items())
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python scripts/editions.py {student,teacher} [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("edition", choices=["student", "teacher"])
    parser.add_argument("--out", type=Path, default=None, help="default: _build/<edition>")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = build(args.edition, ROOT, args.out)
    n = len(list((out / "notebooks").glob("*.ipynb")))
    print(f"{args.edition} edition: {n} notebooks in {out / 'notebooks'}", end="")
    if args.edition == "student":
        print(f", sources in {out / 'src'}", end="")
    print(f" ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
