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
  suggests and whether its colours are logarithmic; ``function_knobs``: the parameters a
  figure may put on a slider (``FUNCTION_KNOBS``);
- ``expressions``: the language of typed landscapes (``sampy.expressions``' whitelist and
  bounds);
- ``lesson``, ``colours``, ``first_values`` and ``controls``: the laboratory's first settings
  and palettes (``sampy.playground.choices``), first values where a registry default is sized
  for a network (``FIRST_VALUES``), and its own lr, steps and noise sliders.

``python -m sampy.lab_metadata PATH`` writes the document; the laboratory's build runs it.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from sampy import __version__, expressions, functions, optim, registry
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
    "ESAM": ("selects the examples whose loss rises most (SDS): it needs per-example losses"),
    "SSAMF": "builds its mask from per-example squared gradients (a Fisher estimate)",
    "ImbSAM": "splits the examples into head and tail classes",
    "BSAM": (
        "samples weights from a posterior whose width depends on the number of examples and "
        "averages over sub-batches of them"
    ),
}

# The first values of knobs whose registry default is sized for a network, not for a 2-D
# landscape a few units wide: MSAM's official ρ = 0.3 and AdamW-MSAM's ρ = 1 move the stored
# point by a third of the sharp/flat toy's height at every turn of the momentum.
FIRST_VALUES: dict[str, dict[str, Any]] = {
    "MSAM": {"rho": 0.1},
    "AdamWMSAM": {"rho": 0.1},
}

# The laboratory's own controls (not hyperparameters of a variant), with their sliders: the
# base's learning rate (the reference's spec), the number of steps, the gradient noise.
LAB_CONTROLS: tuple[tuple[Hyper, float, float, float], ...] = (
    (optim.sgd.LR, 1e-5, 1.0, 0.01),
    (Hyper("steps", 300, "steps of every run", 1, None, kind="int"), 10.0, 3000.0, 10.0),
    (
        Hyper("noise", 0.0, "σ of the Gaussian noise added to every gradient", 0.0, None),
        0.0,
        1.0,
        0.01,
    ),
)

# The base optimizers of the laboratory, by the reference's class names.
BASES: tuple[str, ...] = ("SGD", "Adam", "AdamW")


# The parameters of a landscape that a live figure may put on a slider (a sharper sharp
# minimum, a wider flat well, a worse condition number), with the slider's range and step.
FUNCTION_KNOBS: dict[str, tuple[tuple[Hyper, float, float, float], ...]] = {
    "sharp_flat": (
        (Hyper("sharpness", 100.0, "factor s of the sharp well's y-curvature", 0.0, None,
               low_open=True, log=True), 1.0, 400.0, 0.01),
    ),
    "sharp_flat_wells": (
        (Hyper("width_sharp", 0.1, "width w_s of the sharp well", 0.0, None, low_open=True),
         0.02, 1.0, 0.01),
        (Hyper("width_flat", 1.0, "width w_f of the flat well", 0.0, None, low_open=True),
         0.2, 3.0, 0.05),
        (Hyper("depth_sharp", 1.0, "depth d_s of the sharp well", 0.0, None, low_open=True),
         0.1, 2.0, 0.05),
        (Hyper("depth_flat", 1.0, "depth d_f of the flat well", 0.0, None, low_open=True),
         0.1, 2.0, 0.05),
    ),
    "ill_conditioned": (
        (Hyper("condition", 20.0, "condition number κ (curvatures 4/κ and 4)", 1.0, None,
               log=True), 1.0, 400.0, 0.01),
    ),
    "rosenbrock": (
        (Hyper("b", 100.0, "steepness b of the valley's walls", 0.0, None, low_open=True,
               log=True), 1.0, 1000.0, 0.01),
    ),
    "rastrigin": ((Hyper("A", 10.0, "height A of the ripples", 0.0, None), 0.0, 20.0, 0.5),),
}  # fmt: skip


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


def knob_record(spec: Hyper, slider: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """The laboratory's control of one knob: its spec, and the slider's range and step
    (``slider`` = ``(min, max, step)``, by default ``choices.knob_range``)."""
    record = spec_record(spec)
    if spec.kind in ("real", "int"):
        lo, hi, step = choices.knob_range(spec) if slider is None else slider
        record.update(min=lo, max=hi, step=step, infinite_end=spec.name in choices.INFINITE_END)
    return record


def _lesson() -> dict[str, Any]:
    """The laboratory's first settings (``choices.LESSON``) in the twin's terms: the method
    "SGD" of the Voila laboratory (the base alone) is the twin's "base"."""
    lesson = choices.LESSON
    return {
        "function": lesson["function"],
        "start": lesson["x0"],
        "lr": lesson["lr"],
        "steps": lesson["steps"],
        "base": lesson["base"],
        "variants": [
            {
                "name": "base" if v["method"] == choices.SGD_METHOD else v["method"],
                "hyperparameters": v["hyperparameters"],
            }
            for v in lesson["variants"]
        ],
        "basin_grid": lesson["basins"]["grid"],
        "basin_steps": lesson["basins"]["steps"],
    }


def _colours() -> dict[str, Any]:
    palettes = choices.PALETTES
    return {
        "variants": palettes["variants"],
        "basins": palettes["basins"],
        "none": palettes["no_basin"],
        "diverged": palettes["diverged"],
        "checkpoints": palettes["checkpoints"],
    }


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


def _expression_rules() -> dict[str, Any]:
    """The language of typed landscapes (``sampy.expressions``): what the twin accepts."""
    return {
        "variables": list(expressions.VARIABLES),
        "constants": dict(expressions.CONSTANTS),
        "unary": list(expressions.UNARY_FUNCTIONS),
        "binary": list(expressions.BINARY_FUNCTIONS),
        "max_length": expressions.MAX_LENGTH,
        "max_nesting": expressions.MAX_NESTING,
        "max_nodes": expressions.MAX_NODES,
        "max_depth": expressions.MAX_DEPTH,
        "max_exponent": expressions.MAX_EXPONENT,
        "default_domain": _plain(expressions.DEFAULT_DOMAIN),
    }


def metadata() -> dict[str, Any]:
    """The whole document the JavaScript twin embeds (plain JSON data)."""
    unknown = (set(PYTHON_ONLY) | set(FIRST_VALUES)) - {row.name for row in registry.variants()}
    if unknown:
        raise ValueError(f"rows that are not in the registry: {sorted(unknown)}")
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
        "expressions": _expression_rules(),
        "function_knobs": {
            name: [knob_record(spec, (lo, hi, step)) for spec, lo, hi, step in knobs]
            for name, knobs in FUNCTION_KNOBS.items()
        },
        "base_knobs": {
            name: [knob_record(s) for s in getattr(optim, name).HYPERPARAMETERS if s.name != "lr"]
            for name in BASES
        },
        "lesson": _lesson(),
        "first_values": FIRST_VALUES,
        "controls": {
            spec.name: knob_record(spec, (lo, hi, step)) for spec, lo, hi, step in LAB_CONTROLS
        },
        "colours": _colours(),
    }


def write(path: str | Path) -> Path:
    """Write ``metadata()`` as JSON to ``path`` (parents created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metadata(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
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
