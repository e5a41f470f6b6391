// Run an optimizer from many start points at once and record what happened: the browser
// twin of sampy/run.py. It never throws on divergence: a point whose coordinate is non-finite
// or beyond `bound` is frozen at its last good position and the step is recorded.

import { Oracle } from "./optim/base.js";

/** What a run did, for every start point (sampy.Trajectory). */
export class Trajectory {
  constructor({ xs, n, d, steps, f, gradEvals, divergedAt, bound, queries }) {
    Object.assign(this, { xs, n, d, steps, f, gradEvals, divergedAt, bound, queries });
    this._losses = null;
  }

  /** Loss at every recorded point, (steps + 1) × n numbers, computed on first use. */
  get losses() {
    if (this._losses === null) this._losses = this.f.value(this.xs);
    return this._losses;
  }

  /** The point of start point `i` after step `k`, as [x, y, …]. */
  point(k, i) {
    const at = (k * this.n + i) * this.d;
    return Array.from(this.xs.subarray(at, at + this.d));
  }

  /** The path of start point `i`: steps + 1 points. */
  path(i) {
    const out = [];
    for (let k = 0; k <= this.steps; k++) out.push(this.point(k, i));
    return out;
  }

  /** The last points, n × d numbers. */
  get final() {
    return this.xs.subarray(this.steps * this.n * this.d);
  }

  /** One line on divergence, for figures and logs (Trajectory.report). */
  report() {
    const diverged = Array.from(this.divergedAt).filter((k) => k >= 0);
    if (diverged.length === 0) return `${this.n} start point(s), none diverged`;
    return `${diverged.length} of ${this.n} start point(s) diverged (first at step ${Math.min(...diverged)})`;
  }
}

function asBatch(x0, d) {
  if (x0 instanceof Float64Array) return Float64Array.from(x0);
  const flat = Array.isArray(x0[0]) ? x0.flat() : x0;
  if (flat.length === 0 || flat.length % d !== 0) {
    throw new RangeError(`x0 must have shape (d,) or (n, d) with d = ${d}, got ${flat.length} numbers`);
  }
  return Float64Array.from(flat);
}

/**
 * Run `optimizer` on `f` from every start point of `x0` ([[x, y], …], [x, y] or a flat
 * Float64Array) for `steps` steps.
 *
 * Options: `bound` (divergence bound on max|xᵢ|, default 1e6), `sigma`/`seed` (Gaussian
 * gradient noise, NumPy's stream), `record` (keep every point the gradient was asked about,
 * per step: `queries[k − 1]` lists step k's query batches).
 */
export function run(optimizer, f, x0, steps, { bound = 1e6, sigma = 0, seed = 0, record = false } = {}) {
  const d = f.dim;
  const x0Flat = asBatch(x0, d);
  if (!Number.isInteger(steps) || steps < 0) throw new RangeError(`steps must be an integer >= 0, got ${steps}`);
  if (!(bound > 0)) throw new RangeError(`bound must be > 0, got ${bound}`);
  if (!x0Flat.every(Number.isFinite)) throw new RangeError("x0 must be finite");
  const n = x0Flat.length / d;
  const queries = record ? [] : null;
  let current = null;
  const oracle = new Oracle(f, {
    sigma,
    seed,
    record: record ? (x) => current.push(Float64Array.from(x)) : null,
  });
  const xs = new Float64Array((steps + 1) * n * d);
  xs.set(x0Flat, 0);
  const divergedAt = new Int32Array(n).fill(-1);
  const active = new Uint8Array(n).fill(1);
  let live = n;
  let x = x0Flat;
  let state = optimizer.init(x0Flat, d);
  for (let k = 1; k <= steps; k++) {
    if (record) {
      current = [];
      queries.push(current);
    }
    let xNew;
    [xNew, state] = optimizer.step(x, state, oracle);
    xNew = Float64Array.from(xNew);
    for (let i = 0; i < n; i++) {
      if (!active[i]) {
        for (let j = 0; j < d; j++) xNew[i * d + j] = x[i * d + j];
        continue;
      }
      let top = 0;
      for (let j = 0; j < d; j++) top = Math.max(top, Math.abs(xNew[i * d + j]));
      // Math.max propagates NaN and NaN fails every comparison: !(top <= bound) catches it.
      if (!(top <= bound)) {
        divergedAt[i] = k;
        active[i] = 0;
        live -= 1;
        for (let j = 0; j < d; j++) xNew[i * d + j] = x[i * d + j];
      }
    }
    xs.set(xNew, k * n * d);
    x = xNew;
    if (live === 0) {
      for (let later = k + 1; later <= steps; later++) xs.set(xNew, later * n * d);
      break;
    }
  }
  return new Trajectory({ xs, n, d, steps, f, gradEvals: oracle.calls, divergedAt, bound, queries });
}
