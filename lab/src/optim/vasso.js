// VaSSO, variance-suppressed sharpness-aware optimization: the browser twin of
// sampy/optim/vasso.py.
//
// B. Li, G. B. Giannakis, "Enhancing Sharpness-Aware Optimization Through Variance
// Suppression", NeurIPS 2023, arXiv:2309.15639. The stochastic gradient is a noisy ascent
// direction; perturb along an EMA of gradients instead. Two gradient evaluations per step:
//
// 1. g = ∇L(w);  d_t = (1 − θ) d_{t−1} + θ g   (d_0 = 0)
// 2. ε = ρ d_t/(‖d_t‖ + eps);  g̃ = ∇L(w + ε);  w ← base.update(w, g̃)

import { resolve } from "./hyper.js";
import { unit } from "./perturbation.js";
import { PerturbedGradient, SharpnessAware } from "./sharpness_aware.js";
import { mix, zeros } from "./vectors.js";

/** VaSSO: perturb along an EMA of gradients, d_t = (1 − θ) d_{t−1} + θ g_t, d_0 = 0. */
export class VarianceSuppressedAscent {
  constructor(rho, theta, eps) {
    Object.assign(this, { rho, theta, eps });
  }

  /** d_0 = 0. */
  init(x) {
    return zeros(x.length);
  }

  apply(x, g, state, d) {
    const dir = mix(1.0 - this.theta, state, this.theta, g);
    return [unit(dir, this.rho, this.eps, d), dir];
  }
}

/** VaSSO around a base optimizer. Two gradient evaluations per step. */
export class VaSSO extends SharpnessAware {
  constructor(base, options = {}) {
    const h = resolve("VaSSO", options);
    super(base, new VarianceSuppressedAscent(h.rho, h.theta, h.perturb_eps), new PerturbedGradient());
    this.hyperparameters = h;
  }
}
