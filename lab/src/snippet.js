// "Copy as Python": the few lines of sampy that reproduce what a live figure shows. The
// browser twin follows the reference step for step, so the snippet's `sampy.run` gives the
// same iterates (to rounding; the tests run the snippets and compare).

import { metadata } from "./optim/hyper.js";
import { BASE_ALONE, variant } from "./registry.js";

/** A JavaScript value as a Python literal (∞ as math.inf, arrays as tuples or lists). */
export function pythonLiteral(value, kind = null) {
  if (value === true) return "True";
  if (value === false) return "False";
  if (value === null || value === undefined) return "None";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (value === Infinity) return "math.inf";
    if (value === -Infinity) return "-math.inf";
    if (Number.isNaN(value)) return "math.nan";
    const text = String(value);
    // A real hyperparameter stays a float in Python: 2 → 2.0.
    return kind === "real" && Number.isInteger(value) && !/e/.test(text) ? `${text}.0` : text;
  }
  if (Array.isArray(value)) {
    const items = value.map((v) => pythonLiteral(v, kind === "tuple" || kind === "subset" ? "real" : kind));
    return kind === "tuple" || kind === "subset"
      ? `(${items.join(", ")}${items.length === 1 ? "," : ""})`
      : `[${items.join(", ")}]`;
  }
  throw new RangeError(`no Python literal for ${value}`);
}

function keywordArguments(specs, values) {
  const kinds = Object.fromEntries(specs.map((spec) => [spec.name, spec.kind]));
  return Object.entries(values)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${pythonLiteral(v, kinds[k] === "subset" ? "subset" : (kinds[k] ?? null))}`)
    .join(", ");
}

/** The labels of a list of variants: the name, numbered where a name repeats ("SAM #2"). */
export function variantLabels(variants, baseName) {
  const names = variants.map((v) => (v.name === BASE_ALONE ? baseName : v.name));
  return names.map((name, i) => {
    const count = names.filter((other) => other === name).length;
    return count > 1 ? `${name} #${names.slice(0, i + 1).filter((other) => other === name).length}` : name;
  });
}

/**
 * The snippet for a figure's settings: {function, params, expression, box, base,
 * base_hyperparameters, variants: [{name, hyperparameters}], starts: [[x, y], …], steps,
 * noise, seed, bound}. The dict `runs` maps each variant's label to its sampy.Trajectory.
 */
export function pythonSnippet(settings) {
  const lines = ["import math", "", "import numpy as np", "", "import sampy"];
  const usesExpression = typeof settings.expression === "string" && settings.expression.trim() !== "";
  if (usesExpression) lines.push("import sampy.expressions");
  const baseName = settings.base ?? "SGD";
  lines.push(`from sampy.optim import ${baseName}`, "");
  if (usesExpression) {
    const box = pythonLiteral(settings.box ?? 4, "real");
    lines.push(
      `f = sampy.expressions.expression_function(${JSON.stringify(settings.expression.trim())}, ` +
        `domain=((-${box}, ${box}), (-${box}, ${box})))`,
    );
  } else {
    const params = settings.params ?? {};
    const args = Object.entries(params)
      .map(([k, v]) => `, ${k}=${pythonLiteral(v, typeof v === "number" ? "real" : null)}`)
      .join("");
    lines.push(`f = sampy.functions.get(${JSON.stringify(settings.function)}${args})`);
  }
  if ((settings.noise ?? 0) > 0) {
    lines.push(
      `f = sampy.problems.NoisyGradient(f, sigma=${pythonLiteral(settings.noise, "real")}, seed=${settings.seed ?? 0})`,
    );
  }
  lines.push(`x0 = np.array(${pythonLiteral(settings.starts.map((p) => [...p]))})`);
  const baseSpecs = metadata.bases[baseName].hyperparameters;
  const base = `${baseName}(${keywordArguments(baseSpecs, settings.base_hyperparameters ?? {})})`;
  const bound =
    settings.bound === undefined || settings.bound === 1e6
      ? ""
      : `, bound=${pythonLiteral(settings.bound, "real")}`;
  const labels = variantLabels(settings.variants, baseName);
  lines.push("runs = {");
  settings.variants.forEach((v, i) => {
    let optimizer = base;
    if (v.name !== BASE_ALONE) {
      const row = variant(v.name);
      const args = keywordArguments(row.hyperparameters, v.hyperparameters ?? {});
      const baseArg = row.takes_base ? base : "None";
      optimizer = `sampy.variant(${JSON.stringify(v.name)}).make(${baseArg}${args ? `, ${args}` : ""})`;
    }
    lines.push(
      `    ${JSON.stringify(labels[i])}: sampy.run(${optimizer}, f, x0, ${settings.steps}${bound}),`,
    );
  });
  lines.push("}");
  return lines.join("\n") + "\n";
}
