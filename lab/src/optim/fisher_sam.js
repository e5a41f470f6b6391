// Fisher SAM, the SAM ball measured in the Fisher information metric: the browser twin of
// sampy/optim/fisher_sam.py.
//
// M. Kim, D. Li, S. X. Hu, T. Hospedales, "Fisher SAM: Information Geometry and Sharpness
// Aware Minimisation", ICML 2022, arXiv:2206.04920. Two gradient evaluations per step:
//
// 1. g = ∇L(w);  F = diag(1 + η g²)   (diagonal Fisher proxy from the squared gradient)
// 2. ε = ρ F⁻¹g / (√(gᵀF⁻¹g) + eps) — the maximiser of εᵀg over εᵀFε ≤ ρ²
// 3. g̃ = ∇L(w + ε);  w ← base.update(w, g̃)

import { FisherAscent } from "./ascents.js";
import { resolve } from "./hyper.js";
import { PerturbedGradient, SharpnessAware } from "./sharpness_aware.js";

/** Fisher SAM around a base optimizer. Two gradient evaluations per step. */
export class FisherSAM extends SharpnessAware {
  constructor(base, options = {}) {
    const h = resolve("FisherSAM", options);
    super(base, new FisherAscent(h.rho, h.fisher_eta, h.perturb_eps), new PerturbedGradient());
    this.hyperparameters = h;
  }
}
