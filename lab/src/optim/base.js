// The functional optimizer interface and the counting gradient oracle: the browser twin of
// sampy/optim/base.py.
//
// An optimizer is plain data plus two functions on a batch of points stored flat (point after
// point, d coordinates each):
//
//     state = opt.init(x, d)
//     [x, state] = opt.step(x, state, oracle)
//
// `oracle.grad(x)` returns the gradient at every point and counts one gradient evaluation per
// call, whatever the batch size, so the number a method spends is measured, not claimed.
// Base optimizers (SGD, Adam, AdamW) also have `update(x, d, state)`: the move they make when
// handed a direction in place of the gradient.

import { Generator } from "../rng.js";

/**
 * Loss and gradient of a batched function, with call counters (sampy.optim.Oracle).
 *
 * With `sigma > 0` every gradient gets N(0, σ²) noise drawn from the oracle's own generator
 * (seeded with `seed`, NumPy's stream): sampy.problems.NoisyGradient.
 *
 * `record`, when set, is called with every point the gradient is asked about; the runner
 * uses it to show where each variant took its gradients (its ascent points).
 */
export class Oracle {
  constructor(f, { sigma = 0, seed = 0, record = null } = {}) {
    if (!(sigma >= 0) || !Number.isFinite(sigma)) {
      throw new RangeError(`sigma must be a real number in [0, inf), got ${sigma}`);
    }
    this.f = f;
    this.dim = f.dim;
    this.sigma = sigma;
    this.rng = sigma > 0 ? new Generator(seed) : null;
    this.record = record;
    this.calls = 0;
    this.lossCalls = 0;
  }

  noisy(g) {
    if (this.rng === null) return g;
    const z = this.rng.standardNormal(g.length);
    const out = new Float64Array(g.length);
    for (let i = 0; i < g.length; i++) out[i] = g[i] + this.sigma * z[i];
    return out;
  }

  /** [loss, gradient] at every point (one gradient evaluation). */
  valueAndGrad(x) {
    this.calls += 1;
    if (this.record !== null) this.record(x);
    return [this.f.value(x), this.noisy(this.f.grad(x))];
  }

  /** The gradient at every point (one gradient evaluation). */
  grad(x) {
    this.calls += 1;
    if (this.record !== null) this.record(x);
    return this.noisy(this.f.grad(x));
  }

  /** The loss alone (a forward pass: counted in lossCalls). */
  loss(x) {
    this.lossCalls += 1;
    return this.f.value(x);
  }
}

/** Throw unless `base` is a base optimizer instance (init/update/step), as check_base. */
export function checkBase(base) {
  const ok =
    base !== null &&
    typeof base === "object" &&
    ["init", "update", "step"].every((m) => typeof base[m] === "function");
  if (!ok) {
    throw new RangeError(
      `base must be a base optimizer instance with init/update/step (e.g. new SGD({lr: 0.01})), got ${base}`,
    );
  }
}
