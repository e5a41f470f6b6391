// The test-function container and the registry of named 2-D landscapes: the browser twin of
// sampy/functions/_base.py. A function works on a batch of points stored flat, point after
// point (x₀ y₀ x₁ y₁ …, a Float64Array of length 2n): `value(x)` returns n losses and
// `grad(x)` 2n gradient coordinates, each with the hand-written formula of the reference.

export const DIM = 2;

/**
 * A batched 2-D landscape with its known global minimisers.
 *
 * Fields mirror sampy.functions.TestFunction: name, dim, domain [[xlo, xhi], [ylo, yhi]],
 * minima [[x, y], …], fmin, minimaLabels, params (the factory's arguments).
 */
export class TestFunction {
  constructor({ name, value, grad, domain, minima, fmin, minimaLabels = [], params = {} }) {
    this.name = name;
    this.dim = DIM;
    this.value = value;
    this.grad = grad;
    this.domain = domain;
    this.minima = minima;
    this.fmin = fmin;
    this.minimaLabels = minimaLabels;
    this.params = params;
  }

  /** Loss and gradient of every point (the reference's `value_and_grad`). */
  valueAndGrad(x) {
    return [this.value(x), this.grad(x)];
  }
}

const REGISTRY = new Map();

/** Register a factory `(params) -> TestFunction` under `name`. */
export function register(name, factory) {
  if (REGISTRY.has(name)) throw new Error(`a test function named ${name} is already registered`);
  REGISTRY.set(name, factory);
}

/** Names of every registered function, sorted (as sampy.functions.names()). */
export function names() {
  return [...REGISTRY.keys()].sort();
}

/** The registered function `name`, built with `params` (as sampy.functions.get). */
export function get(name, params = {}) {
  const factory = REGISTRY.get(name);
  if (factory === undefined) {
    throw new RangeError(`unknown test function name '${name}'; choose one of ${names().join(", ")}`);
  }
  return factory(params);
}

/** Map a per-point formula over a flat batch: `f(u, v) -> number` gives n values. */
export function pointwise(formula) {
  return (x) => {
    const n = x.length / DIM;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = formula(x[2 * i], x[2 * i + 1]);
    return out;
  };
}

/** Map a per-point gradient over a flat batch: `g(u, v, out, k)` writes out[k], out[k + 1]. */
export function pointwiseGrad(formula) {
  return (x) => {
    const out = new Float64Array(x.length);
    for (let k = 0; k < x.length; k += DIM) formula(x[k], x[k + 1], out, k);
    return out;
  };
}

/** A real parameter of a factory, with the reference's error text when it is out of range. */
export function realParam(
  params,
  name,
  fallback,
  { low = null, high = null, lowOpen = false, highOpen = false } = {},
) {
  const value = params[name] === undefined ? fallback : params[name];
  const left = lowOpen ? "(" : "[";
  const right = highOpen ? ")" : "]";
  const range = `${left}${low === null ? "-inf" : low}, ${high === null ? "inf" : high}${right}`;
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new RangeError(`${name} must be a real number in ${range}, got ${value}`);
  }
  const tooLow = low !== null && (lowOpen ? value <= low : value < low);
  const tooHigh = high !== null && (highOpen ? value >= high : value > high);
  if (tooLow || tooHigh) throw new RangeError(`${name} must lie in ${range}, got ${value}`);
  return value;
}
