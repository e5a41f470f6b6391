"""Hyperparameter specifications: one place that knows each knob's default, range and meaning.

Every optimizer class lists its knobs as ``HYPERPARAMETERS``; its constructor validates them
with ``validate`` and the torch twin validates the same specs, so the ranges live once. The
variant registry (``sampy.variants()``), the book's table of variants, the playground's controls
and the "every bad value raises" tests are all generated from these specs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from sampy._checks import check_bool, check_real, range_text, shown

Kind = Literal["real", "int", "bool", "choice", "tuple", "subset"]


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: name, default, valid range, and what it means.

    ``low``/``high`` bound a real or int knob (``None`` = unbounded; ``low_open``/``high_open``
    exclude the end). A ``tuple`` (Adam's ``betas``) has ``size`` entries, each in the range; a
    ``subset`` is a non-empty tuple of distinct integers in the range.
    ``log`` says a slider for it should be logarithmic. ``per_point`` says the
    NumPy reference accepts an array with one value per start point (a hyperparameter grid).
    ``allow_inf`` says infinity is a value of an unbounded range (``p = inf``: the
    :math:`\\ell_\\infty` ball); otherwise ``[0, inf)`` means every *finite* number ``>= 0``.
    An ``int`` knob that bounds a loop has a documented ``high``; any other int must fit a
    float.
    """

    name: str
    default: Any
    meaning: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    kind: Kind = "real"
    choices: tuple[Any, ...] = ()
    log: bool = False
    per_point: bool = False
    size: int = 0
    allow_inf: bool = False

    def check(self, value: Any) -> None:
        """Raise ``ValueError`` naming this hyperparameter unless ``value`` is valid."""
        if value is None and self.default is None:
            return  # an optional knob that is switched off (e.g. WSAM's max_norm)
        if self.kind == "bool":
            check_bool(self.name, value)
        elif self.kind == "choice":
            # Compared only with choices of its own type: an array would make ``in`` ambiguous.
            if not any(_same_choice(value, choice) for choice in self.choices):
                raise ValueError(
                    f"{self.name} must be one of {self.range_text()}, got {shown(value)}; "
                    f"pass one of these (the default is {self.default!r})"
                )
        elif self.kind in ("tuple", "subset"):
            self._check_entries(value)
        else:
            hint = f"pass {'an integer' if self.kind == 'int' else 'a number'} in that range"
            hint += f" (the default is {self.default!r})"
            if self.per_point:
                hint += ", or an array of them, one per start point"
            check_real(
                self.name,
                value,
                self.low,
                self.high,
                low_open=self.low_open,
                high_open=self.high_open,
                allow_inf=self.allow_inf,
                array_ok=self.per_point,
                hint=hint,
            )
            if self.kind == "int" and not np.all(np.mod(np.asarray(value, dtype=float), 1) == 0):
                raise ValueError(
                    f"{self.name} must be an integer in {self.range_text()}, got "
                    f"{shown(value)}; {hint}"
                )

    def _check_entries(self, value: Any) -> None:
        entry_kind = "int" if self.kind == "subset" else "real"
        if not isinstance(value, (tuple, list)) or len(value) == 0:
            raise ValueError(
                f"{self.name} must be a tuple of {self.range_text()}, got {shown(value)}; "
                f"pass a tuple such as the default {self.default!r}"
            )
        if self.kind == "tuple" and len(value) != self.size:
            raise ValueError(
                f"{self.name} must have {self.size} entries, got {shown(value)}; "
                f"pass a tuple such as the default {self.default!r}"
            )
        for i, entry in enumerate(value):
            spec = Hyper(
                f"{self.name}[{i}]",
                0,
                "",
                self.low,
                self.high,
                self.low_open,
                self.high_open,
                kind=entry_kind,
                allow_inf=self.allow_inf,
            )
            spec.check(entry)
        if self.kind == "subset" and len(set(value)) != len(value):
            raise ValueError(
                f"{self.name} must be distinct integers, got {shown(value)}; "
                f"pass a tuple such as the default {self.default!r}"
            )

    def range_text(self) -> str:
        """The valid range as text, e.g. ``[0, inf)`` or ``{'kozistr', 'gcsam'}``."""
        if self.kind == "bool":
            return "True / False"
        if self.kind == "choice":
            return " / ".join(repr(c) for c in self.choices)
        prefix = {"tuple": f"{self.size} entries in ", "subset": "distinct integers in "}
        text = range_text(self.low, self.high, self.low_open, self.high_open, self.allow_inf)
        return prefix.get(self.kind, "") + text

    def invalid_values(self) -> list[Any]:
        """Values just outside the range (for the tests that every bad value raises)."""
        if self.kind == "bool":
            return ["yes", 1.5]
        if self.kind == "choice":
            return ["no-such-choice"]
        if self.kind in ("tuple", "subset"):
            head = tuple(self.default[:-1])
            return [(), *[(*head, bad) for bad in self._outside()]]
        return [math.nan, "0.1", *self._outside()]

    def _outside(self) -> list[Any]:
        bad: list[Any] = []
        if self.low is not None:
            bad.append(self.low if self.low_open else self.low - max(1e-3, abs(self.low) * 1e-3))
        if self.high is not None:
            bad.append(
                self.high if self.high_open else self.high + max(1e-3, abs(self.high) * 1e-3)
            )
        if self.kind in ("int", "subset"):
            bad.append((self.low if self.low is not None else 0) + 0.5)
        return bad


def _same_choice(value: Any, choice: Any) -> bool:
    """Whether ``value`` is ``choice``: equal, and of the choice's type (never an array)."""
    if isinstance(choice, str):
        return isinstance(value, str) and value == choice
    return type(value) is type(choice) and value == choice


def validate(specs: tuple[Hyper, ...], values: dict[str, Any]) -> None:
    """Check every value against its spec.

    ``values`` maps names to values; names without a spec are ignored, so a constructor
    validates all its arguments with ``validate(self.HYPERPARAMETERS, locals())``.
    """
    for spec in specs:
        if spec.name in values:
            spec.check(values[spec.name])


def defaults(specs: tuple[Hyper, ...]) -> dict[str, Any]:
    """``{name: default}`` of the specs."""
    return {spec.name: spec.default for spec in specs}
