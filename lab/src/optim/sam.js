// SAM, ASAM and p-norm SAM: the browser twin of sampy/optim/sam.py.
//
// SAM: Foret, Kleiner, Mobahi, Neyshabur, "Sharpness-Aware Minimization for Efficiently
// Improving Generalization", ICLR 2021. ASAM: Kwon, Kim, Park, Choi, ICML 2021.
// Objective min_w max_{‖T⁻¹ε‖_p ≤ ρ} L(w + ε), T = I (SAM) or diag(|w| + η) (ASAM):
//
// 1. g = ∇L(w)
// 2. u = T g;  ε = T · ρ sign(u) |u|^{q−1} / (‖u‖_q + eps)^{q−1}   (p = 2: ρ T²g/(‖Tg‖ + eps))
// 3. g̃ = ∇L(w + ε)
// 4. w ← base.update(w, g̃) — at the unperturbed w

import { resolve } from "./hyper.js";
import { dualDirection, normBallPerturbation } from "./perturbation.js";
import { PerturbedGradient, SharpnessAware } from "./sharpness_aware.js";

/** Ascent rule: the first-order worst case in the (adaptive) p-norm ball of radius ρ. */
export class NormBallAscent {
  constructor({ rho, p, adaptive, eta, perturb_eps }) {
    Object.assign(this, { rho, p, adaptive, eta, perturb_eps });
  }

  init() {
    return null;
  }

  apply(x, g, state, d) {
    if (this.p === 2 && !this.adaptive) return [dualDirection(g, 2, this.rho, this.perturb_eps, d), null];
    return [normBallPerturbation(x, g, this.rho, this.p, this.adaptive, this.eta, this.perturb_eps, d), null];
  }
}

/** Sharpness-Aware Minimization (ASAM with adaptive: true) around a base optimizer. */
export class SAM extends SharpnessAware {
  constructor(base, options = {}) {
    const h = resolve("SAM", options);
    super(base, new NormBallAscent(h), new PerturbedGradient());
    this.hyperparameters = h;
  }
}
