// F-SAM, Friendly Sharpness-Aware Minimization: the browser twin of
// sampy/optim/friendly_sam.py.
//
// T. Li, P. Zhou, Z. He, X. Cheng, X. Huang, "Friendly Sharpness-Aware Minimization",
// CVPR 2024, arXiv:2403.12350. The full-gradient component of SAM's perturbation hurts;
// remove an EMA estimate m of it. Two gradient evaluations per step (official code order):
//
// 1. g = ∇L(w)
// 2. first step: m ← g, d = g; later: d = g − σ m_{t−1}, m ← λ m + (1 − λ) g
// 3. ε = ρ d/(‖d‖ + eps);  g̃ = ∇L(w + ε);  w ← base.update(w, g̃)
//
// momentum_order "paper" updates m first and uses d = g − σ m_t.

import { FriendlyAscent } from "./ascents.js";
import { resolve } from "./hyper.js";
import { PerturbedGradient, SharpnessAware } from "./sharpness_aware.js";

/** F-SAM around a base optimizer. Two gradient evaluations per step. */
export class FriendlySAM extends SharpnessAware {
  constructor(base, options = {}) {
    const h = resolve("FriendlySAM", options);
    const ascent = new FriendlyAscent(h.rho, h.sigma, h.lmbda, h.momentum_order, h.perturb_eps);
    super(base, ascent, new PerturbedGradient());
    this.hyperparameters = h;
  }
}
