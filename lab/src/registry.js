// The table of variants in the browser: the rows of sampy.variants(), exported at build time
// (sampy.lab_metadata), and how a row with its hyperparameters becomes an optimizer.

import * as functions from "./functions/index.js";
import { metadata } from "./optim/hyper.js";
import { BASE_CLASSES, TWINS } from "./optim/index.js";

/** The name of the menu entry that runs the base optimizer alone (no ascent step). */
export const BASE_ALONE = "base";

/** Every registry row, in the book's order (plain data: name, paper, knobs, …). */
export function variants() {
  return metadata.variants;
}

/** The registry row called `name`. */
export function variant(name) {
  const row = metadata.variants.find((r) => r.name === name);
  if (row === undefined) {
    throw new RangeError(
      `unknown variant name '${name}'; choose one of ${metadata.variants.map((r) => r.name).join(", ")}`,
    );
  }
  return row;
}

/** The rows the browser twin runs (every row that is not Python-only). */
export function browserVariants() {
  return metadata.variants.filter((row) => row.python_only === null);
}

/** The rows left to Python, with the reason (sampy.lab_metadata.PYTHON_ONLY). */
export function pythonOnly() {
  return metadata.variants
    .filter((row) => row.python_only !== null)
    .map((row) => ({ name: row.name, reason: row.python_only }));
}

/** The base optimizer `name` (SGD, Adam, AdamW) with its hyperparameters. */
export function makeBase(name, hyperparameters = {}) {
  const cls = BASE_CLASSES[name];
  if (cls === undefined)
    throw new RangeError(`base must be one of ${Object.keys(BASE_CLASSES).join(", ")}, got '${name}'`);
  return new cls(hyperparameters);
}

/**
 * The optimizer of row `name` on `base` (ignored for a built-in base) with `hyperparameters`
 * plus the row's preset (as Variant.make). `name` = BASE_ALONE gives the base itself.
 */
export function makeVariant(name, base, hyperparameters = {}) {
  if (name === BASE_ALONE) return base;
  const row = variant(name);
  if (row.python_only !== null) throw new RangeError(`${name} runs in Python only: ${row.python_only}`);
  const cls = TWINS[row.class];
  if (cls === undefined) throw new RangeError(`${name}: the browser twin has no class ${row.class}`);
  const fixed = Object.keys(hyperparameters).filter((key) => key in row.preset);
  if (fixed.length > 0) throw new RangeError(`${name} fixes ${fixed.join(", ")} (its preset); leave it out`);
  const values = { ...hyperparameters, ...row.preset };
  return row.takes_base ? new cls(base, values) : new cls(values);
}

/** The metadata of function `name` (description, suggested start and lr, …). */
export function functionInfo(name) {
  const info = metadata.functions[name];
  if (info === undefined) {
    throw new RangeError(
      `unknown test function name '${name}'; choose one of ${Object.keys(metadata.functions).join(", ")}`,
    );
  }
  return info;
}

export { functions };
