// Fisher SAM, the SAM ball measured in the Fisher information metric: the browser twin of
// sampy/optim/fisher_sam.py.
//
// M. Kim, D. Li, S. X. Hu, T. Hospedales, "Fisher SAM: Information Geometry and Sharpness
// Aware Minimisation", ICML 2022, arXiv:2206.04920. Two gradient evaluations per step:
//
// 1. g = ∇L(w);  F = diag(1 + η g²)   (diagonal Fisher proxy from the squared gradient)
// 2. ε = ρ F⁻¹g / (√(gᵀF⁻¹g) + eps) — the maximiser of εᵀg over εᵀFε ≤ ρ²
// 3. g̃ = ∇L(w + ε);  w ← base.update(w, g̃)

import { resolve } from "./hyper.js";
import { PerturbedGradient, SharpnessAware } from "./sharpness_aware.js";
import { perPointDot } from "./vectors.js";

/**
 * Fisher SAM: the worst case in the ellipsoid εᵀFε ≤ ρ², F = diag(1 + η g²). The diagonal
 * Fisher proxy 1 + η g² is the reference's choice, its constants unverified against the
 * paper's code.
 */
export class FisherAscent {
  constructor(rho, fisherEta, eps) {
    Object.assign(this, { rho, fisherEta, eps });
  }

  init() {
    return null;
  }

  apply(x, g, state, d) {
    const precond = new Float64Array(g.length);
    for (let k = 0; k < g.length; k++) precond[k] = g[k] / (1.0 + this.fisherEta * g[k] * g[k]);
    const dots = perPointDot(g, precond, d);
    const out = new Float64Array(g.length);
    for (let k = 0; k < g.length; k++) {
      out[k] = precond[k] * (this.rho / (Math.sqrt(dots[(k / d) | 0]) + this.eps));
    }
    return [out, null];
  }
}

/** Fisher SAM around a base optimizer. Two gradient evaluations per step. */
export class FisherSAM extends SharpnessAware {
  constructor(base, options = {}) {
    const h = resolve("FisherSAM", options);
    super(base, new FisherAscent(h.rho, h.fisher_eta, h.perturb_eps), new PerturbedGradient());
    this.hyperparameters = h;
  }
}
