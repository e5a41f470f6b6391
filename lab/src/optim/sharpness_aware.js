// The template almost every SAM variant follows: an ascent rule, a descent rule, a base. The
// browser twin of sampy/optim/sharpness_aware.py. One step, for every point of the batch:
//
// 1. g = ∇L(w)                               (gradient evaluation 1)
// 2. [ε, a] = ascent(w, g, a)                (where is the second gradient taken?)
// 3. g̃ = ∇L(w + ε)                           (gradient evaluation 2)
// 4. [d, c] = descent(g, g̃, c)               (which direction goes to the base?)
// 5. [w, b] = base.update(w, d, b)           (how are parameters moved? at the ORIGINAL w)
//
// Rules are small objects with init(x, d) and a call returning [result, newState].

import { checkBase } from "./base.js";
import { add } from "./vectors.js";

/** SAM's descent rule: hand the gradient at the perturbed point to the base, d = g̃. */
export class PerturbedGradient {
  init() {
    return null;
  }

  apply(g, gAdv, state) {
    return [gAdv, state];
  }
}

/** Compose an ascent rule, a descent rule and a base optimizer into a two-gradient step. */
export class SharpnessAware {
  constructor(base, ascent, descent) {
    checkBase(base);
    this.base = base;
    this.ascent = ascent;
    this.descent = descent;
  }

  /** Initial states of the three parts. */
  init(x, d) {
    return { ascent: this.ascent.init(x, d), descent: this.descent.init(x, d), base: this.base.init(x, d) };
  }

  /** One step: two gradient evaluations, one base update at the unperturbed point. */
  step(x, state, oracle) {
    const d = oracle.dim;
    const g = oracle.grad(x);
    const [e, ascentState] = this.ascent.apply(x, g, state.ascent, d);
    const gAdv = oracle.grad(add(x, e));
    const [direction, descentState] = this.descent.apply(g, gAdv, state.descent, d);
    const [xNew, baseState] = this.base.update(x, direction, state.base);
    return [xNew, { ascent: ascentState, descent: descentState, base: baseState }];
  }
}
