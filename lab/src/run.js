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
 * A run that advances a few steps at a time, so that long work (a basin map: 10,000 start
 * points × hundreds of steps) can be cut into slices between which the page stays
 * responsive, with exactly the steps, draws and divergence checks of one `run` call.
 *
 * Options: `bound` (divergence bound on max|xᵢ|, default 1e6), `sigma`/`seed` (Gaussian
 * gradient noise, NumPy's stream), `record` (keep every point the gradient was asked about,
 * per step: `queries[k − 1]` lists step k's query batches), `keepPath` (keep every iterate;
 * false keeps only the current points, which is all a basin map needs).
 */
export class Runner {
  constructor(
    optimizer,
    f,
    x0,
    steps,
    { bound = 1e6, sigma = 0, seed = 0, record = false, keepPath = true } = {},
  ) {
    const d = f.dim;
    const x0Flat = asBatch(x0, d);
    if (!Number.isInteger(steps) || steps < 0)
      throw new RangeError(`steps must be an integer >= 0, got ${steps}`);
    if (!(bound > 0)) throw new RangeError(`bound must be > 0, got ${bound}`);
    if (!x0Flat.every(Number.isFinite)) throw new RangeError("x0 must be finite");
    this.optimizer = optimizer;
    this.f = f;
    this.d = d;
    this.n = x0Flat.length / d;
    this.steps = steps;
    this.bound = bound;
    this.queries = record ? [] : null;
    this.current = x0Flat;
    this.state = optimizer.init(x0Flat, d);
    this.oracle = new Oracle(f, {
      sigma,
      seed,
      record: record ? (x) => this.queries[this.queries.length - 1].push(Float64Array.from(x)) : null,
    });
    this.xs = keepPath ? new Float64Array((steps + 1) * this.n * d) : null;
    if (keepPath) this.xs.set(x0Flat, 0);
    this.divergedAt = new Int32Array(this.n).fill(-1);
    this.active = new Uint8Array(this.n).fill(1);
    this.live = this.n;
    this.taken = 0;
  }

  /** True once every step is taken (or every start point has diverged). */
  get done() {
    return this.taken >= this.steps;
  }

  /** Take up to `k` more steps; returns the number of steps taken so far. */
  advance(k) {
    const { n, d, bound } = this;
    const last = Math.min(this.steps, this.taken + k);
    while (this.taken < last) {
      const step = this.taken + 1;
      if (this.queries !== null) this.queries.push([]);
      const x = this.current;
      let xNew;
      [xNew, this.state] = this.optimizer.step(x, this.state, this.oracle);
      // The optimizer's result is only written to where a point is frozen, and then on a copy
      // (the optimizer may still hold the array it returned).
      let copied = false;
      for (let i = 0; i < n; i++) {
        let freeze = !this.active[i];
        if (!freeze) {
          let top = 0;
          for (let j = 0; j < d; j++) top = Math.max(top, Math.abs(xNew[i * d + j]));
          // Math.max propagates NaN and NaN fails every comparison: !(top <= bound) catches it.
          if (!(top <= bound)) {
            this.divergedAt[i] = step;
            this.active[i] = 0;
            this.live -= 1;
            freeze = true;
          }
        }
        if (freeze) {
          if (!copied) {
            xNew = Float64Array.from(xNew);
            copied = true;
          }
          for (let j = 0; j < d; j++) xNew[i * d + j] = x[i * d + j];
        }
      }
      if (this.xs !== null) this.xs.set(xNew, step * n * d);
      this.current = xNew;
      this.taken = step;
      if (this.live === 0) {
        // Every point is frozen: the rest of the path repeats the last points.
        if (this.xs !== null)
          for (let later = step + 1; later <= this.steps; later++) this.xs.set(xNew, later * n * d);
        this.taken = this.steps;
      }
    }
    return this.taken;
  }

  /** The finished run as a Trajectory (needs keepPath). */
  trajectory() {
    if (this.xs === null) throw new Error("this run kept no path (keepPath: false)");
    return new Trajectory({
      xs: this.xs,
      n: this.n,
      d: this.d,
      steps: this.steps,
      f: this.f,
      gradEvals: this.oracle.calls,
      divergedAt: this.divergedAt,
      bound: this.bound,
      queries: this.queries,
    });
  }
}

/**
 * Run `optimizer` on `f` from every start point of `x0` ([[x, y], …], [x, y] or a flat
 * Float64Array) for `steps` steps (the options of Runner).
 */
export function run(optimizer, f, x0, steps, options = {}) {
  const runner = new Runner(optimizer, f, x0, steps, options);
  runner.advance(steps);
  return runner.trajectory();
}
