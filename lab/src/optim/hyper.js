// Hyperparameter specifications, read from the metadata that sampy exports at build time
// (sampy.lab_metadata): each class's knobs with their defaults, ranges and meanings exist
// once, in the reference's HYPERPARAMETERS, and the browser twin validates against them with
// the reference's messages (sampy/optim/hyper.py, sampy/_checks.py).

import metadata from "../../build/metadata.json";

export { metadata };

/** The specs of the reference class `className` (`Hyper` records as plain objects). */
export function specsOf(className) {
  const specs = metadata.classes[className];
  if (specs === undefined) throw new Error(`no exported hyperparameters for ${className}`);
  return specs;
}

function describeRange(low, high, lowOpen, highOpen) {
  const left = lowOpen ? "(" : "[";
  const right = highOpen ? ")" : "]";
  const lo = low === null ? "-inf" : formatG(low);
  const hi = high === null ? "inf" : formatG(high);
  return `${left}${lo}, ${hi}${right}`;
}

function formatG(v) {
  return Number.isInteger(v) ? String(v) : String(v);
}

function show(value) {
  if (typeof value === "string") return `'${value}'`;
  if (Array.isArray(value)) return `(${value.map(show).join(", ")})`;
  if (value === true) return "True";
  if (value === false) return "False";
  if (value === null) return "None";
  return String(value);
}

function checkReal(name, value, spec) {
  const range = describeRange(spec.low, spec.high, spec.low_open, spec.high_open);
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new RangeError(`${name} must be a real number in ${range}, got ${show(value)}`);
  }
  const tooLow = spec.low !== null && (spec.low_open ? value <= spec.low : value < spec.low);
  const tooHigh = spec.high !== null && (spec.high_open ? value >= spec.high : value > spec.high);
  if (tooLow || tooHigh) throw new RangeError(`${name} must lie in ${range}, got ${show(value)}`);
}

/** Throw a RangeError naming the hyperparameter unless `value` is valid (as `Hyper.check`). */
export function check(spec, value) {
  if (value === null && spec.default === null) return;
  const name = spec.name;
  if (spec.kind === "bool") {
    if (typeof value !== "boolean") throw new RangeError(`${name} must be True or False, got ${show(value)}`);
  } else if (spec.kind === "choice") {
    if (!spec.choices.includes(value)) {
      throw new RangeError(
        `${name} must be one of [${spec.choices.map(show).join(", ")}], got ${show(value)}`,
      );
    }
  } else if (spec.kind === "tuple" || spec.kind === "subset") {
    if (!Array.isArray(value) || value.length === 0)
      throw new RangeError(`${name} must be a tuple, got ${show(value)}`);
    if (spec.kind === "tuple" && value.length !== spec.size) {
      throw new RangeError(`${name} must have ${spec.size} entries, got ${show(value)}`);
    }
    if (spec.kind === "subset" && new Set(value).size !== value.length) {
      throw new RangeError(`${name} must not repeat entries, got ${show(value)}`);
    }
    value.forEach((entry, i) => {
      const entryName = `${name}[${i}]`;
      checkReal(entryName, entry, spec);
      if (spec.kind === "subset" && !Number.isInteger(entry)) {
        throw new RangeError(`${entryName} must be an integer, got ${show(entry)}`);
      }
    });
  } else {
    if (Array.isArray(value)) throw new RangeError(`${name} must be a single number, got an array`);
    checkReal(name, value, spec);
    if (spec.kind === "int" && !Number.isInteger(value)) {
      throw new RangeError(`${name} must be an integer, got ${show(value)}`);
    }
  }
}

/**
 * Every hyperparameter of `className`: the exported defaults overridden by `given`, each
 * checked. An unknown name is an error naming the valid ones.
 */
export function resolve(className, given = {}) {
  const specs = specsOf(className);
  const known = new Set(specs.map((spec) => spec.name));
  for (const name of Object.keys(given)) {
    if (!known.has(name)) {
      throw new RangeError(
        `${className} has no hyperparameter '${name}'; its hyperparameters are ${[...known].join(", ")}`,
      );
    }
  }
  const values = {};
  for (const spec of specs) {
    const value = given[spec.name] === undefined ? spec.default : given[spec.name];
    check(spec, value);
    values[spec.name] = value;
  }
  return values;
}
