// MSAM, Momentum-SAM: SAM's perturbation along the momentum, at no extra gradient. The
// browser twin of sampy/optim/msam.py.
//
// M. Becker, F. Altrock, B. Risse, "Momentum-SAM: Sharpness Aware Minimization without
// Computational Overhead", arXiv:2401.12033, 2024 (official code: MarlonBecker/MSAM). The
// parameters are stored at the perturbed point w̃ = w − scale · v, so the one gradient of a
// step is taken there. SGD version (MSAM), per point, scale = ρ/(‖v‖ + 1e-12) (0 at first):
//
// 1. g = ∇L(w̃);  d = g + λ w̃             (coupled weight decay, at the PERTURBED point)
// 2. w = w̃ + scale · v                    (remove the last perturbation)
// 3. v ← μ v + d;  w ← w − η v
// 4. scale ← ρ/(‖v‖ + 1e-12);  w̃ ← w − scale · v
//
// AdamW version (AdamWMSAM), with Adam's first moment m as the momentum:
//
// 1. g = ∇L(w̃);  t ← t + 1;  w = w̃ + scale · m   (undo with the OLD m)
// 2. m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
// 3. w ← w − (η/(1−β1ᵗ)) · m/(√v/√(1−β2ᵗ) + eps);  w ← w (1 − ηλ)   (decay AFTER the step)
// 4. scale ← ρ/(‖m‖ + 1e-12);  w̃ ← w − scale · m
//
// `scale` holds one number per point (the reference's (..., 1) array). The points a run
// records are the w̃; `unperturbed` (moveFromAscent) gives w, `moveToAscent` goes back.

import { resolve } from "./hyper.js";
import { lpNorm } from "./perturbation.js";
import { add, mix, perPointScale, sub, subScaled } from "./vectors.js";
import { pow } from "../float.js";

/** The official guard in ρ/(‖v‖ + 1e-12); it makes the first (v = 0) step unperturbed. */
export const NORM_EPS = 1e-12;

/** Moves between the stored (perturbed) and the un-perturbed point, shared by both classes. */
class MomentumAscent {
  /** The un-perturbed w = w̃ + scale · v (for evaluation, checkpoints, EMA). */
  moveFromAscent(x, state, d) {
    return add(x, perPointScale(state.scale, this.direction(state), d));
  }

  /** The stored point w̃ = w − scale · v (back to training after an evaluation). */
  moveToAscent(x, state, d) {
    return sub(x, perPointScale(state.scale, this.direction(state), d));
  }

  /** Alias of moveFromAscent: the point to report for the stored x. */
  unperturbed(x, state, d) {
    return this.moveFromAscent(x, state, d);
  }
}

/** Momentum-SAM on SGD with momentum (official MSAM). One gradient per step. */
export class MSAM extends MomentumAscent {
  constructor(options = {}) {
    super();
    const h = resolve("MSAM", options);
    this.hyperparameters = h;
    Object.assign(this, h);
  }

  direction(state) {
    return state.momentum;
  }

  /** A zero buffer and a zero first perturbation. */
  init(x, d) {
    return { momentum: new Float64Array(x.length), scale: new Float64Array(x.length / d) };
  }

  /** One step from the stored point x = w̃; returns the next stored point. */
  step(x, state, oracle) {
    const d = oracle.dim;
    let g = oracle.grad(x);
    if (this.weight_decay !== 0) g = g.map((v, k) => v + this.weight_decay * x[k]);
    let w = add(x, perPointScale(state.scale, state.momentum, d));
    const v = state.momentum.map((m, k) => this.momentum * m + g[k]);
    w = subScaled(w, this.lr, v);
    // ρ · (1/(‖v‖ + eps)) in the official order of operations.
    const scale = lpNorm(v, 2, d).map((norm) => this.rho * (1.0 / (norm + NORM_EPS)));
    return [sub(w, perPointScale(scale, v, d)), { momentum: v, scale }];
  }
}

/** Momentum-SAM on AdamW (official AdamW_MSAM). One gradient per step. */
export class AdamWMSAM extends MomentumAscent {
  constructor(options = {}) {
    super();
    const h = resolve("AdamWMSAM", options);
    this.hyperparameters = h;
    Object.assign(this, h);
  }

  direction(state) {
    return state.m;
  }

  /** Zero moments, step count 0, zero first perturbation. */
  init(x, d) {
    return {
      count: 0,
      m: new Float64Array(x.length),
      v: new Float64Array(x.length),
      scale: new Float64Array(x.length / d),
    };
  }

  /** One step from the stored point x = w̃; returns the next stored point. */
  step(x, state, oracle) {
    const d = oracle.dim;
    const [beta1, beta2] = this.betas;
    const lr = this.lr;
    const g = oracle.grad(x);
    const count = state.count + 1;
    let w = add(x, perPointScale(state.scale, state.m, d));
    const m = mix(beta1, state.m, 1.0 - beta1, g);
    const v = state.v.map((s, k) => beta2 * s + (1.0 - beta2) * (g[k] * g[k]));
    const bias2 = Math.sqrt(1.0 - pow(beta2, count));
    const stepSize = lr / (1.0 - pow(beta1, count));
    w = w.map((wk, k) => wk - stepSize * (m[k] / (Math.sqrt(v[k]) / bias2 + this.eps)));
    const shrink = 1.0 - lr * this.weight_decay;
    w = w.map((wk) => wk * shrink);
    // (1/(‖m‖ + eps)) · ρ in the official order of operations.
    const scale = lpNorm(m, 2, d).map((norm) => (1.0 / (norm + NORM_EPS)) * this.rho);
    return [sub(w, perPointScale(scale, m, d)), { count, m, v, scale }];
  }
}
