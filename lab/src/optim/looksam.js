// LookSAM: compute SAM's extra direction every k steps and reuse it in between. The browser
// twin of sampy/optim/looksam.py.
//
// Y. Liu, S. Mai, X. Chen, C.-J. Hsieh, Y. You, "Towards Efficient and Scalable
// Sharpness-Aware Minimization", CVPR 2022. Global form, with its own counter t = 0, 1, …
// (step 0 is a SAM step):
//
// 1. g = ∇L(w)
// 2. if t mod k = 0 (2 evaluations): g_s = ∇L(w + ρ g/(‖g‖ + eps));
//    g_v = g_s − (⟨g_s, g⟩/‖g‖²) g  (⟂ g; 0 if g = 0);  d = g_s
// 3. else (1 evaluation): d = g + α (‖g‖/(‖g_v‖ + 1e-8)) g_v
// 4. w ← base.update(w, d) at w

import { checkBase } from "./base.js";
import { resolve } from "./hyper.js";
import { NormBallAscent } from "./sam.js";
import { add, perPointDot } from "./vectors.js";

/**
 * ⟨g_s, g⟩/‖g‖² per point, 0 where g = 0. No eps in the denominator: with ρ = 0, g_s = g and
 * the coefficient must be exactly 1, so that g_v = 0 and the reuse steps are base steps.
 */
export function projectionCoefficient(gS, g, d) {
  const gg = perPointDot(g, g, d);
  const sg = perPointDot(gS, g, d);
  return gg.map((v, i) => (v > 0 ? sg[i] / v : 0.0));
}

/** LookSAM around a base optimizer: 2 evaluations every k-th step, 1 otherwise. */
export class LookSAM {
  constructor(base, options = {}) {
    const h = resolve("LookSAM", options);
    checkBase(base);
    this.base = base;
    this.hyperparameters = h;
    // p and eta keep the norm ball's defaults (SAM's exported ones), as in the reference.
    const ball = resolve("SAM", { rho: h.rho, adaptive: h.adaptive, perturb_eps: h.perturb_eps });
    this.ascent = new NormBallAscent(ball);
    this.k = h.k;
    this.alpha = h.alpha;
    this.perturb_eps = h.perturb_eps;
  }

  /** Counter 0, no stored direction yet. */
  init(x, d) {
    return { count: 0, g_v: null, base: this.base.init(x, d) };
  }

  /** A SAM step (t mod k = 0) or a reuse step. */
  step(x, state, oracle) {
    const d = oracle.dim;
    const g = oracle.grad(x);
    let gV = state.g_v;
    let direction;
    if (state.count % this.k === 0) {
      const [e] = this.ascent.apply(x, g, null, d);
      const gS = oracle.grad(add(x, e));
      const coef = projectionCoefficient(gS, g, d);
      gV = gS.map((v, k) => v - coef[(k / d) | 0] * g[k]);
      direction = gS;
    } else {
      const gg = perPointDot(g, g, d);
      const vv = perPointDot(gV, gV, d);
      const scale = gg.map((v, i) => Math.sqrt(v) / (Math.sqrt(vv[i]) + 1e-8));
      // α · scale first: the reference multiplies the (n, 1) factors before the vector.
      direction = g.map((v, k) => v + this.alpha * scale[(k / d) | 0] * gV[k]);
    }
    const [xNew, baseState] = this.base.update(x, direction, state.base);
    return [xNew, { count: state.count + 1, g_v: gV, base: baseState }];
  }
}
