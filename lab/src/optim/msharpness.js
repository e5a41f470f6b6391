// Multi-step ascent SAM: the browser twin of MultiStepSAM in sampy/optim/msharpness.py.
//
// Optax's contrib.sam with sync_period = ascent_steps + 1 and the paper-equivalent adversarial
// optimizer chain(normalize(), sgd(ρ)); the SAM of P. Foret, A. Kleiner, H. Mobahi,
// B. Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving Generalization",
// ICLR 2021, and the multi-step ascent studied by M. Andriushchenko, N. Flammarion, "Towards
// Understanding Sharpness-Aware Minimization", ICML 2022:
//
// 1. w_0 = w; for j = 0..k−1: w_{j+1} = w_j + ρ ∇L(w_j)/(‖∇L(w_j)‖ + eps)
// 2. w ← base.update(w, ∇L(w_k)) at the original w
//
// k + 1 gradient evaluations per step (k = ascent_steps); each ascent step has length ρ.
//
// The module's other class, MSharpnessSAM (m-sharpness: every micro-batch of examples is
// perturbed with its own gradient), has no twin: it needs a loss that is a sum of examples,
// and a 2-D landscape is one function. It runs in Python only.

import { checkBase } from "./base.js";
import { resolve } from "./hyper.js";
import { dualDirection } from "./perturbation.js";
import { add } from "./vectors.js";

/** SAM with k normalised ascent steps (optax sync_period = k + 1). */
export class MultiStepSAM {
  constructor(base, options = {}) {
    const h = resolve("MultiStepSAM", options);
    checkBase(base);
    this.base = base;
    this.hyperparameters = h;
    this.rho = h.rho;
    this.ascent_steps = h.ascent_steps;
    this.perturb_eps = h.perturb_eps;
  }

  /** The base optimizer's state. */
  init(x, d) {
    return { base: this.base.init(x, d) };
  }

  /** k ascent steps from w, then the base step at w with the last gradient. */
  step(x, state, oracle) {
    const d = oracle.dim;
    let wAdv = x;
    let g = oracle.grad(x);
    for (let j = 0; j < this.ascent_steps; j++) {
      wAdv = add(wAdv, dualDirection(g, 2, this.rho, this.perturb_eps, d));
      g = oracle.grad(wAdv);
    }
    const [xNew, baseState] = this.base.update(x, g, state.base);
    return [xNew, { base: baseState }];
  }
}
