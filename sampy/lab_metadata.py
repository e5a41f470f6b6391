"""What the browser laboratory reads instead of retyping it: the metadata of its JavaScript twin.

The book's live figures run a JavaScript twin of the 2-D reference (``lab/src``, bundled at
build time). Its names, hyperparameters (default, range, meaning), costs and papers are not
written again in JavaScript: they are exported from ``sampy.variants()``, the classes'
``HYPERPARAMETERS`` and ``sampy.functions`` into one JSON document, which the bundle embeds:

- ``classes``: every class the twin mirrors (the registry's and the bases SGD, Adam, AdamW),
  with its hyperparameter specs;
- ``variants``: every registry row (name, class, preset, paper, rules, cost, family) with the
  knobs the laboratory shows and their slider ranges (``sampy.playground.choices``), and
  ``python_only``: why a row has no browser twin (``PYTHON_ONLY``), or ``null``;
- ``bases``: the base optimizers a variant can run on, with their knobs;
- ``functions``: every registered 2-D test function at its default parameters (description,
  domain, minima, minimum value, parameters) with the start and learning rate the laboratory
  suggests and whether its colours are logarithmic.

``python -m sampy.lab_metadata PATH`` writes the document; the laboratory's build runs it.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from sampy import __version__, functions, optim, registry
from sampy.functions.toys import sharp_flat_wells_minima
from sampy.optim.hyper import Hyper
from sampy.playground import choices

# The registry rows that need more than a gradient oracle on a 2-D landscape, and why. The
# laboratory lists them with these reasons; every other row has a JavaScript twin, and a test
# checks that the twin implements exactly the rows not listed here.
PYTHON_ONLY: dict[str, str] = {
    "MSharpnessSAM": (
        "perturbs every micro-batch of examples with its own gradient: it needs a loss that "
        "is a sum of examples, and a 2-D landscape is one function"
    ),
    "LogitSAM": "perturbs every example separately (1-SAM) through a model's logits",
    "JSAM": "perturbs every example separately (1-SAM) through a model's Jacobian",
    "ESAM": (
        "selects the examples whose loss rises most (SDS): it needs per-example losses"
    ),
    "SSAMF": "builds its mask from per-example squared gradients (a Fisher estimate)",
    "ImbSAM": "splits the examples into head and tail classes",
    "BSAM": (
        "samples weights from a posterior whose width depends on the number of examples and "
        "averages over sub-batches of them"
    ),
}

# The base optimizers of the laboratory, by the reference's class names.
BASES: tuple[str, ...] = ("SGD", "Adam", "AdamW")

# Knobs whose slider ends at ∞ (one stop past its largest finite value): the p of a norm ball
# is the one whose ∞ is a different ball (a square), not just a large number.
INFINITE_END: frozenset[str] = frozenset({"p"})


def _number(value: float) -> float | str:
    """A float as JSON can carry it: ``inf`` and ``nan`` become the strings the twin reads."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else "nan"
    return value


def _plain(value: Any) -> Any:
    """Tuples as lists, non-finite floats as strings, recursively."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, float):
        return _number(value)
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    return value


def spec_record(spec: Hyper) -> dict[str, Any]:
    """One hyperparameter spec as plain data (the fields of ``Hyper`` and its range text)."""
    return {
        "name": spec.name,
        "default": _plain(spec.default),
        "meaning": spec.meaning,
        "low": _plain(spec.low),
        "high": _plain(spec.high),
        "low_open": spec.low_open,
        "high_open": spec.high_open,
        "kind": spec.kind,
        "choices": _plain(spec.choices),
        "log": spec.log,
        "size": spec.size,
        "range_text": spec.range_text(),
    }


def knob_record(spec: Hyper) -> dict[str, Any]:
    """The laboratory's control of one knob: its spec, and the slider's range and step."""
    record = spec_record(spec)
    if spec.kind in ("real", "int"):
        lo, hi, step = choices.knob_range(spec)
        record.update(min=lo, max=hi, step=step, infinite_end=spec.name in INFINITE_END)
    return record


def _variant_record(row: registry.Variant) -> dict[str, Any]:
    return {
        "name": row.name,
        "class": row.cls.__name__,
        "paper": row.paper,
        "bibkey": row.bibkey,
        "ascent": row.ascent,
        "descent": row.descent,
        "base": row.base,
        "grad_evals": row.grad_evals,
        "family": row.family,
        "preset": _plain(row.preset),
        "takes_base": row.takes_base,
        "needs_examples": row.needs_examples,
        "hyperparameters": [spec_record(s) for s in row.hyperparameters],
        "knobs": [] if row.needs_examples else [knob_record(s) for s in _knobs(row)],
        "python_only": PYTHON_ONLY.get(row.name),
    }


def _knobs(row: registry.Variant) -> tuple[Hyper, ...]:
    return choices.knob_specs(row.name)


def _function_record(name: str) -> dict[str, Any]:
    f = functions.get(name)
    start, lr = choices.suggested_start(f)
    record = {
        "name": f.name,
        "description": f.description,
        "dim": f.dim,
        "domain": _plain(f.domain),
        "minima": _plain(f.minima),
        "minima_labels": list(f.minima_labels),
        "fmin": _number(float(f.fmin)),
        "params": _plain(f.params),
        "suggested_start": list(start),
        "suggested_lr": lr,
        "log_colours": f.name in choices.LOG_COLOURS,
    }
    if name == "sharp_flat_wells":
        points, labels, values = sharp_flat_wells_minima(**f.params)
        record["local_minima"] = {
            "points": _plain(points),
            "labels": list(labels),
            "values": _plain(values),
        }
    return record


def _classes() -> dict[str, list[dict[str, Any]]]:
    classes = {name: getattr(optim, name) for name in BASES}
    for row in registry.variants():
        classes[row.cls.__name__] = row.cls
    return {name: [spec_record(s) for s in cls.HYPERPARAMETERS] for name, cls in classes.items()}


def metadata() -> dict[str, Any]:
    """The whole document the JavaScript twin embeds (plain JSON data)."""
    unknown = set(PYTHON_ONLY) - {row.name for row in registry.variants()}
    if unknown:
        raise ValueError(f"PYTHON_ONLY names rows that are not in the registry: {sorted(unknown)}")
    return {
        "sampy_version": __version__,
        "classes": _classes(),
        "variants": [_variant_record(row) for row in registry.variants()],
        "bases": {
            name: {
                "hyperparameters": [spec_record(s) for s in getattr(optim, name).HYPERPARAMETERS]
            }
            for name in BASES
        },
        "functions": {name: _function_record(name) for name in choices.two_d_function_names()},
    }


def write(path: str | Path) -> Path:
    """Write ``metadata()`` as JSON to ``path`` (parents created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metadata(), ensure_ascii=False, indent=1, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m sampy.lab_metadata PATH``: write the metadata to PATH."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sampy.lab_metadata PATH", file=sys.stderr)
        return 2
    print(write(args[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
