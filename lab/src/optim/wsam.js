// WSAM, Weighted SAM: sharpness as a weighted regularisation term. The browser twin of
// sampy/optim/wsam.py.
//
// Y. Yue, J. Jiang, Z. Ye, N. Gao, Y. Liu, K. Zhang, "Sharpness-Aware Minimization Revisited:
// Weighted Sharpness as a Regularization Term", KDD 2023. Objective
// L(w) + (γ/(1−γ)) (max_{‖δ‖≤ρ} L(w+δ) − L(w)); with α = γ/(1−γ) its gradient is g + α(g̃ − g):
//
// 1. g = ∇L(w);  ε = ρ g/(‖g‖ + eps)             (ASAM's ball with adaptive)
// 2. g̃ = ∇L(w + ε); with max_norm, g and g̃ are clipped to global norm max_norm
// 3a. decouple = false: w ← base.update(w, α g̃ + (1 − α) g)
// 3b. decouple = true:  w ← base.update(w, g), then w ← w − η α (g̃ − g)   (η = base lr)

import { checkBase } from "./base.js";
import { resolve } from "./hyper.js";
import { NormBallAscent } from "./sam.js";
import { add, mix, perPointDot, sub, subScaled } from "./vectors.js";

/**
 * torch.nn.utils.clip_grad_norm_ per point: every point's g times min(1, max_norm/(‖g‖ + 1e-6)).
 */
export function clipByGlobalNorm(g, maxNorm, d) {
  const dots = perPointDot(g, g, d);
  const out = new Float64Array(g.length);
  for (let k = 0; k < g.length; k++) {
    const factor = Math.min(1.0, maxNorm / (Math.sqrt(dots[(k / d) | 0]) + 1e-6));
    out[k] = g[k] * factor;
  }
  return out;
}

/** Weighted SAM around a base optimizer. Two gradient evaluations per step. */
export class WSAM {
  constructor(base, options = {}) {
    const h = resolve("WSAM", options);
    checkBase(base);
    this.base = base;
    this.hyperparameters = h;
    // The reference builds NormBallAscent(rho, adaptive, perturb_eps): its p and eta keep the
    // norm ball's defaults, which are SAM's exported ones.
    const ball = resolve("SAM", { rho: h.rho, adaptive: h.adaptive, perturb_eps: h.perturb_eps });
    this.ascent = new NormBallAscent(ball);
    this.gamma = h.gamma;
    this.alpha = h.gamma / (1.0 - h.gamma);
    this.decouple = h.decouple;
    this.max_norm = h.max_norm;
  }

  /** The base optimizer's state. */
  init(x, d) {
    return { base: this.base.init(x, d) };
  }

  /** One WSAM step at the unperturbed x. */
  step(x, state, oracle) {
    const d = oracle.dim;
    let g = oracle.grad(x);
    const [e] = this.ascent.apply(x, g, null, d);
    let gAdv = oracle.grad(add(x, e));
    if (this.max_norm !== null) {
      g = clipByGlobalNorm(g, this.max_norm, d);
      gAdv = clipByGlobalNorm(gAdv, this.max_norm, d);
    }
    if (!this.decouple) {
      const [xNew, baseState] = this.base.update(x, mix(this.alpha, gAdv, 1.0 - this.alpha, g), state.base);
      return [xNew, { base: baseState }];
    }
    const [xNew, baseState] = this.base.update(x, g, state.base);
    // The sharpness term bypasses the base (not preconditioned, no momentum): η α (g̃ − g).
    return [subScaled(xNew, this.base.lr * this.alpha, sub(gAdv, g)), { base: baseState }];
  }
}
