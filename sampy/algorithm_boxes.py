"""The algorithm boxes of the book's chapters, and which registry row each one teaches.

Every ``{prf:algorithm}`` box names the registry rows it covers in its ``:class:`` option
(``:class: variant-SAM``, ``:class: variant-SAMCkpt variant-SAMCkptScaling``). The family card
(``book/family_card.md``) links each row of the registry's table to its box, and a test checks
that every row has exactly one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sampy.registry import variants

# The opening line of a {prf:algorithm} directive (backtick or colon fence) and the option lines
# right after it (``:label: alg-sam``, ``:class: variant-SAM variant-ASAM``).
_ALGORITHM = re.compile(
    r"^(?:`{3,}|:{3,})\{prf:algorithm\}[^\n]*\n(?P<options>(?:[ \t]*:[\w-]+:[^\n]*\n)*)", re.M
)
_OPTION = re.compile(r"^[ \t]*:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$", re.M)
VARIANT_CLASS = "variant-"


@dataclass(frozen=True)
class AlgorithmBox:
    """One ``{prf:algorithm}`` directive of a MyST chapter.

    Attributes:
        doc: the chapter's file name without extension (``deriving_sam``).
        label: the box's ``:label:`` (None if it has none).
        variants: the registry names its ``:class:`` option lists as ``variant-<Name>``.
    """

    doc: str
    label: str | None
    variants: tuple[str, ...]

    @property
    def href(self) -> str | None:
        """The box's address from a page in the same folder (``deriving_sam.html#alg-sam``)."""
        return None if self.label is None else f"{self.doc}.html#{self.label}"


def algorithm_boxes(sources: Iterable[str | Path]) -> list[AlgorithmBox]:
    """Every ``{prf:algorithm}`` box of the given MyST files, in file order.

    A box covers the registry rows named in its ``:class:`` option: ``:class: variant-SAM`` or
    ``:class: variant-SAMCkpt variant-SAMCkptScaling`` (other classes are ignored). Options
    must be written as ``:key: value`` lines right after the directive's opening line.
    """
    boxes = []
    for source in sources:
        path = Path(source)
        for match in _ALGORITHM.finditer(path.read_text(encoding="utf-8")):
            options = {m["key"]: m["value"].strip() for m in _OPTION.finditer(match["options"])}
            names = tuple(
                word[len(VARIANT_CLASS) :]
                for word in options.get("class", "").split()
                if word.startswith(VARIANT_CLASS)
            )
            boxes.append(AlgorithmBox(path.stem, options.get("label"), names))
    return boxes


def boxes_by_variant(boxes: Iterable[AlgorithmBox]) -> dict[str, list[AlgorithmBox]]:
    """Registry name -> the boxes that cover it (every row present, possibly with none)."""
    out: dict[str, list[AlgorithmBox]] = {row.name: [] for row in variants()}
    for box in boxes:
        for name in box.variants:
            out.setdefault(name, []).append(box)
    return out


def box_links(boxes: Iterable[AlgorithmBox]) -> dict[str, str]:
    """Registry name -> the address of its algorithm box, for rows covered by exactly one."""
    return {
        name: found[0].href
        for name, found in boxes_by_variant(boxes).items()
        if len(found) == 1 and found[0].href is not None
    }
