// SAMAnatomy: drop the sign-flipped coordinates from a second ascent. The browser twin of
// sampy/optim/samanatomy.py.
//
// From the research notes on the anatomy of SAM's gradient (lhchau/sam-hessian,
// samanatomy.py; no paper). Three gradient evaluations per step:
//
// 1. g = ∇L(w);  ε1 = ρ g/(‖g‖ + eps)
// 2. g1 = ∇L(w + ε1);  r = g1/(g + eps);  m = g ⊙ 1[r > 0];  ε2 = ρ m/(‖m‖ + eps)
// 3. g2 = ∇L(w + ε2);  w ← base.update(w, g2)
//
// The notes use eps = 1e-8 in both places; so does this class by default.

import { checkBase } from "./base.js";
import { ratio } from "./checkpoints.js";
import { resolve } from "./hyper.js";
import { dualDirection } from "./perturbation.js";
import { add } from "./vectors.js";

/** SAM with a second, sign-filtered ascent. Three gradient evaluations per step. */
export class SAMAnatomy {
  constructor(base, options = {}) {
    const h = resolve("SAMAnatomy", options);
    checkBase(base);
    this.base = base;
    this.hyperparameters = h;
    this.rho = h.rho;
    this.perturb_eps = h.perturb_eps;
  }

  /** The base optimizer's state. */
  init(x, d) {
    return { base: this.base.init(x, d) };
  }

  /** One step: three gradients, one base update at the unperturbed x. */
  step(x, state, oracle) {
    const d = oracle.dim;
    const eps = this.perturb_eps;
    const g = oracle.grad(x);
    const g1 = oracle.grad(add(x, dualDirection(g, 2, this.rho, eps, d)));
    // r ≤ 0 (or NaN) marks a coordinate whose sign SAM flipped: it leaves the second ascent.
    const r = ratio(g, g1, eps, "notes_code");
    const kept = g.map((v, k) => (r[k] > 0 ? v : 0.0));
    const g2 = oracle.grad(add(x, dualDirection(kept, 2, this.rho, eps, d)));
    const [xNew, baseState] = this.base.update(x, g2, state.base);
    return [xNew, { base: baseState }];
  }
}
