// USAM, un-normalised SAM: the browser twin of sampy/optim/usam.py.
//
// M. Andriushchenko, N. Flammarion, "Towards Understanding Sharpness-Aware Minimization",
// ICML 2022, arXiv:2206.06232 (their `sam_no_grad_norm`). Two gradient evaluations per step:
//
// 1. g = ∇L(w);  ε = ρ g   (no division by ‖g‖: ρ carries the gradient's units)
// 2. g̃ = ∇L(w + ε);  w ← base.update(w, g̃)

import { resolve } from "./hyper.js";
import { PerturbedGradient, SharpnessAware } from "./sharpness_aware.js";
import { scale } from "./vectors.js";

/** USAM: ε = ρ g — no normalisation, so ρ carries the gradient's units. */
export class UnnormalizedAscent {
  constructor(rho) {
    this.rho = rho;
  }

  init() {
    return null;
  }

  apply(x, g, state) {
    return [scale(this.rho, g), null];
  }
}

/** Un-normalised SAM around a base optimizer (ε = ρ g). */
export class USAM extends SharpnessAware {
  constructor(base, options = {}) {
    const h = resolve("USAM", options);
    super(base, new UnnormalizedAscent(h.rho), new PerturbedGradient());
    this.hyperparameters = h;
    this.rho = h.rho;
  }
}
