// ClampSAM and ClipSAM, which keep outlier coordinates from dominating SAM's steps: the
// browser twin of sampy/optim/clampsam.py.
//
// From the research notes on the anatomy of SAM's gradient (lhchau/sam-hessian, "Project1";
// no paper): SAM cannot use a large ρ because a few outlier gradient coordinates push the
// ascent too far. The notes' CLAMPSAM code clamped ε with a lower bound only (a bug, deleted
// in the next commit); ClampSAM here is the reference's interpretation. Two gradient
// evaluations per step.
//
// ClampSAM: ε_raw = ρ g/(‖g‖ + eps); ε = clip(ε_raw, −τ, τ) element-wise; with `renorm`
// rescale to ‖ε‖ = ρ; g̃ = ∇L(w + ε); w ← base.update(w, g̃).
// ClipSAM (the notes' later CLIPSAM, condition c): the descent coordinates keep the sign of
// g̃ and are limited to c times the clean ones, |d_i| = min(|g̃_i|, c|g_i|).

import { resolve } from "./hyper.js";
import { dualDirection } from "./perturbation.js";
import { NormBallAscent } from "./sam.js";
import { PerturbedGradient, SharpnessAware } from "./sharpness_aware.js";
import { sign } from "./vectors.js";

/** SAM's ascent clipped element-wise to [−τ, τ] (optionally renormalised to ρ). */
export class ClampedAscent {
  constructor(rho, tau, renorm, eps) {
    Object.assign(this, { rho, tau, renorm, eps });
  }

  init() {
    return null;
  }

  apply(x, g, state, d) {
    let e = dualDirection(g, 2, this.rho, this.eps, d);
    // np.clip is minimum(maximum(·, lo), hi); Math.max/min propagate NaN as NumPy does.
    for (let k = 0; k < e.length; k++) e[k] = Math.min(Math.max(e[k], -this.tau), this.tau);
    if (this.renorm) e = dualDirection(e, 2, this.rho, this.eps, d);
    return [e, null];
  }
}

/** SAM with the ascent clipped coordinate-wise to [−tau, tau]. */
export class ClampSAM extends SharpnessAware {
  constructor(base, options = {}) {
    const h = resolve("ClampSAM", options);
    super(base, new ClampedAscent(h.rho, h.tau, h.renorm, h.perturb_eps), new PerturbedGradient());
    this.hyperparameters = h;
  }
}

/** Descent rule d = sign(g̃) ⊙ min(|g̃|, c|g|). */
export class RatioClip {
  constructor(condition) {
    this.condition = condition;
  }

  init() {
    return null;
  }

  apply(g, gAdv, state) {
    const out = new Float64Array(g.length);
    for (let k = 0; k < g.length; k++) {
      out[k] = sign(gAdv[k]) * Math.min(Math.abs(gAdv[k]), this.condition * Math.abs(g[k]));
    }
    return [out, null];
  }
}

/** SAM whose descent coordinates are limited to `condition` times SGD's. */
export class ClipSAM extends SharpnessAware {
  constructor(base, options = {}) {
    const h = resolve("ClipSAM", options);
    const ascent = new NormBallAscent(resolve("SAM", { rho: h.rho, perturb_eps: h.perturb_eps }));
    super(base, ascent, new RatioClip(h.condition));
    this.hyperparameters = h;
  }
}
