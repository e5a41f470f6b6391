// GSAM, Surrogate Gap Guided Sharpness-Aware Minimization: the browser twin of
// sampy/optim/gsam.py.
//
// J. Zhuang, B. Gong, L. Yuan, Y. Cui, H. Adam, N. Dvornek, S. Tatikonda, J. Duncan, T. Liu,
// "Surrogate Gap Guided Sharpness-Aware Minimization", ICLR 2022, arXiv:2203.08065. GSAM
// descends on the perturbed loss f_p and, orthogonally to ∇f_p, ascends on f to shrink the
// surrogate gap h = f_p − f. Two gradient evaluations per step:
//
// 1. g = ∇f(w);  ε = ρ_t g/(‖g‖ + eps)   (ASAM form with `adaptive`)
// 2. h = ∇f(w + ε)
// 3. cos = ⟨g, h⟩ / (‖h‖‖g‖ + eps);  g_⊥ = g − cos ‖g‖ h/(‖h‖ + eps)
// 4. d = h − α g_⊥;  w ← base.update(w, d) at the unperturbed w
//
// ρ_t is constant unless the option `rho_schedule` (a function t ↦ ρ_t, t = 0, 1, …, e.g.
// proportionalRho(…)) is given; it is not a hyperparameter with a default, so it travels in
// the options object beside them.

import { check, resolve } from "./hyper.js";
import { normBallPerturbation, perPointDot } from "./perturbation.js";
import { NormBallAscent } from "./sam.js";
import { SharpnessAware } from "./sharpness_aware.js";
import { subScaled } from "./vectors.js";

/** The part of g orthogonal to h in GSAM's eps-guarded form (per point). */
export function orthogonalPart(g, h, eps, d) {
  const gg = perPointDot(g, g, d);
  const hh = perPointDot(h, h, d);
  const gh = perPointDot(g, h, d);
  const n = gg.length;
  // One factor per point, in the reference's order: cos · ‖g‖ first, then times h, over ‖h‖.
  const cosNorm = new Float64Array(n);
  const hDen = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const gNorm = Math.sqrt(gg[i]);
    const hNorm = Math.sqrt(hh[i]);
    const cos = gh[i] / (hNorm * gNorm + eps);
    cosNorm[i] = cos * gNorm;
    hDen[i] = hNorm + eps;
  }
  const out = new Float64Array(g.length);
  for (let k = 0; k < g.length; k++) {
    const i = (k / d) | 0;
    out[k] = g[k] - (cosNorm[i] * h[k]) / hDen[i];
  }
  return out;
}

/** Descent rule d = h − α g_⊥. */
export class GSAMDescent {
  constructor(alpha, eps) {
    this.alpha = alpha;
    this.eps = eps;
  }

  init() {
    return null;
  }

  apply(g, gAdv, state, d) {
    return [subScaled(gAdv, this.alpha, orthogonalPart(g, gAdv, this.eps, d)), null];
  }
}

/** The norm-ball ascent with ρ_t = rhoSchedule(t) (t = 0, 1, …); its state is t. */
export class ScheduledNormBallAscent extends NormBallAscent {
  constructor(rhoSchedule, ball) {
    super(ball);
    this.rhoSchedule = rhoSchedule;
  }

  /** The step counter. */
  init() {
    return 0;
  }

  /**
   * [ε with ρ = rhoSchedule(t), t + 1]. ρ_t is not validated: an unclamped warm-up gives
   * ρ_t < 0 (a descent "perturbation"), as big_vision's GSAM does.
   */
  apply(x, g, state, d) {
    const rho = this.rhoSchedule(state);
    const e = normBallPerturbation(x, g, rho, this.p, this.adaptive, this.eta, this.perturb_eps, d);
    return [e, state + 1];
  }
}

const NON_NEGATIVE = { default: 0.0, kind: "real", low: 0.0, high: null, low_open: false, high_open: false };

/**
 * GSAM's ρ schedule tied to the learning rate (sampy's proportional_rho):
 * ρ_t = ρ_min + (ρ_max − ρ_min)(lr_t − lr_min)/(lr_max − lr_min), and ρ_max when
 * lr_max = lr_min. During a warm-up lr_t < lr_min makes ρ_t negative
 * (google-research/big_vision issue #80); clamp = true keeps ρ_t ≥ 0.
 */
export function proportionalRho(lrSchedule, lrMax, lrMin, rhoMax, rhoMin, clamp = false) {
  check({ ...NON_NEGATIVE, name: "rho_max" }, rhoMax);
  check({ ...NON_NEGATIVE, name: "rho_min" }, rhoMin);
  return (t) => {
    if (lrMax === lrMin) return rhoMax;
    const value = rhoMin + ((rhoMax - rhoMin) * (lrSchedule(t) - lrMin)) / (lrMax - lrMin);
    // Python's max(value, 0.0): keeps value unless 0.0 is strictly larger (NaN stays NaN).
    return clamp && 0.0 > value ? 0.0 : value;
  };
}

/** GSAM around a base optimizer; options: the hyperparameters and `rho_schedule`. */
export class GSAM extends SharpnessAware {
  constructor(base, options = {}) {
    const { rho_schedule: rhoSchedule = null, ...given } = options;
    const h = resolve("GSAM", given);
    let ascent;
    if (rhoSchedule === null) {
      ascent = new NormBallAscent(h);
    } else {
      if (typeof rhoSchedule !== "function") {
        throw new RangeError(`rho_schedule must be a callable t -> rho, got ${rhoSchedule}`);
      }
      ascent = new ScheduledNormBallAscent(rhoSchedule, h);
    }
    super(base, ascent, new GSAMDescent(h.alpha, h.perturb_eps));
    this.hyperparameters = h;
    this.alpha = h.alpha;
  }
}
