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

import { resolve } from "./hyper.js";
import { unit } from "./perturbation.js";
import { PerturbedGradient, SharpnessAware } from "./sharpness_aware.js";
import { mix, scale, subScaled } from "./vectors.js";

/**
 * F-SAM: perturb along g − σ m, removing an EMA m of past gradients.
 *
 * Official code order ("official_code"): on the first step m ← g and d = g; afterwards
 * d = g − σ m_{t−1}, then m ← λ m + (1 − λ) g (an EMA of the raw gradient). The paper's order
 * ("paper") updates m first and uses d = g − σ m_t.
 */
export class FriendlyAscent {
  constructor(rho, sigma, lmbda, momentumOrder, eps) {
    Object.assign(this, { rho, sigma, lmbda, momentumOrder, eps });
  }

  /** No EMA before the first step. */
  init() {
    return null;
  }

  apply(x, g, m, d) {
    const official = this.momentumOrder === "official_code";
    let mNew;
    let dir;
    if (m === null) {
      mNew = official ? Float64Array.from(g) : scale(1 - this.lmbda, g);
      dir = official ? g : subScaled(g, this.sigma, mNew);
    } else if (official) {
      dir = subScaled(g, this.sigma, m);
      mNew = mix(this.lmbda, m, 1.0 - this.lmbda, g);
    } else {
      mNew = mix(this.lmbda, m, 1.0 - this.lmbda, g);
      dir = subScaled(g, this.sigma, mNew);
    }
    return [unit(dir, this.rho, this.eps, d), mNew];
  }
}

/** F-SAM around a base optimizer. Two gradient evaluations per step. */
export class FriendlySAM extends SharpnessAware {
  constructor(base, options = {}) {
    const h = resolve("FriendlySAM", options);
    const ascent = new FriendlyAscent(h.rho, h.sigma, h.lmbda, h.momentum_order, h.perturb_eps);
    super(base, ascent, new PerturbedGradient());
    this.hyperparameters = h;
  }
}
