// AdamW with Momentum-SAM and schedule-free averaging: the formula of the
// Momentum-SAM-ScheduleFree notes (opooladz/Momentum-SAM-ScheduleFree README), literally, and
// a corrected construction. The browser twin of sampy/optim/msam_schedule_free.py; no paper
// (MSAM: M. Becker, F. Altrock, B. Risse, arXiv:2401.12033, 2024; Schedule-Free: A. Defazio et
// al., "The Road Less Scheduled", NeurIPS 2024).
//
// NotesAdamWMSAMScheduleFree — the notes' formula, per point (t = 1, 2, …; W warm-up steps):
//
// 1. d_t = x_{t−1}/(‖x_{t−1}‖ + 1e-12);  θ'_t = θ_{t−1} + ρ d_t       (ascent along +momentum)
// 2. g_t = ∇L(θ_{t−1}) + ∇L(θ'_t) ("sum_two": 2 evaluations) | ∇L(θ'_t) | ∇L(θ_{t−1})
// 3. α_t = η · min(1, t/W) · √(1 − β2ᵗ)/(1 − β1ᵗ)
// 4. m_t = β1 m + (1−β1) g_t;  v_t = β2 v + (1−β2) g_t²
// 5. θ''_t = θ'_t − α_t m_t/(√v_t + ε) − α_t λ θ'_t                 (AdamW step FROM θ'_t)
// 6. x_t = β1 x_{t−1} + g_t
// 7. ω_t = t^r (max_{s≤t} α_s)^p;  c_t = ω_t/Σ_{i≤t} ω_i  (c_t ≡ 1 if not interpolate)
// 8. θ_t = (1 − c_t) θ_{t−1} + c_t θ''_t
//
// AdamWMSAMScheduleFree — MSAM's ascent on Schedule-Free AdamW (sampy's own construction), with
// an EMA m of the gradients and scale = ρ/(‖m‖ + 1e-12) (0 at first); the parameters hold ỹ:
//
// 1. g = ∇L(ỹ);  y = ỹ + scale · m                       (remove the last perturbation)
// 2. (y, z, x, v) ← ScheduleFreeAdamW.update(y, g)
// 3. m ← μ m + (1 − μ) g;  scale ← ρ/(‖m‖ + 1e-12);  ỹ ← y − scale · m

import { resolve, specsOf } from "./hyper.js";
import { NORM_EPS } from "./msam.js";
import { lpNorm } from "./perturbation.js";
import { ScheduleFreeAdamW, averagingWeight } from "./schedule_free.js";
import { add, mix, perPointScale, sub } from "./vectors.js";
import { pow } from "../float.js";

/** The notes' formula, literally. 2 gradients per step ("sum_two"), else 1. */
export class NotesAdamWMSAMScheduleFree {
  constructor(options = {}) {
    const h = resolve("NotesAdamWMSAMScheduleFree", options);
    this.hyperparameters = h;
    Object.assign(this, h);
  }

  /** Zero buffers, t = 0. */
  init(x) {
    const n = x.length;
    return {
      count: 0,
      x: new Float64Array(n),
      m: new Float64Array(n),
      v: new Float64Array(n),
      alphaMax: -1.0,
      weightSum: 0.0,
    };
  }

  /** The notes' ascent ρ d_t = ρ x/(‖x‖ + 1e-12) (global norm per point). */
  ascent(state, d) {
    const norms = lpNorm(state.x, 2, d);
    return state.x.map((v, k) => this.rho * (v / (norms[(k / d) | 0] + NORM_EPS)));
  }

  /** θ + ρ d_t: where the notes' loop takes its second gradient. */
  moveToAscent(theta, state, d) {
    return add(theta, this.ascent(state, d));
  }

  /** θ − ρ d_t: the exact inverse of moveToAscent (same state). */
  moveFromAscent(theta, state, d) {
    return sub(theta, this.ascent(state, d));
  }

  /** The identity: the formula keeps a single sequence θ, nothing else to evaluate. */
  eval(theta) {
    return theta;
  }

  /** The identity (see eval). */
  train(theta) {
    return theta;
  }

  /** One step of the notes' formula. */
  step(theta, state, oracle) {
    const d = oracle.dim;
    const [beta1, beta2] = this.betas;
    const t = state.count + 1;
    const thetaUp = add(theta, this.ascent(state, d));
    let g;
    if (this.grad_mode === "sum_two") g = add(oracle.grad(theta), oracle.grad(thetaUp));
    else if (this.grad_mode === "perturbed_only") g = oracle.grad(thetaUp);
    else g = oracle.grad(theta);
    const warm = this.warmup_steps > 0 ? Math.min(1.0, t / this.warmup_steps) : 1.0;
    const alpha = (this.lr * warm * Math.sqrt(1.0 - pow(beta2, t))) / (1.0 - pow(beta1, t));
    const m = mix(beta1, state.m, 1.0 - beta1, g);
    const v = state.v.map((s, k) => beta2 * s + (1.0 - beta2) * (g[k] * g[k]));
    const decay = alpha * this.weight_decay;
    const theta2 = thetaUp.map((u, k) => u - alpha * (m[k] / (Math.sqrt(v[k]) + this.eps)) - decay * u);
    const x = state.x.map((s, k) => beta1 * s + g[k]);
    const alphaMax = Math.max(state.alphaMax, alpha);
    const weight = pow(t, this.r) * pow(alphaMax, this.weight_lr_power);
    const weightSum = state.weightSum + weight;
    const c = this.interpolate ? averagingWeight(weight, weightSum) : 1.0;
    const next = mix(1.0 - c, theta, c, theta2);
    return [next, { count: t, x, m, v, alphaMax, weightSum }];
  }
}

/** MSAM's ascent on Schedule-Free AdamW. One gradient per step, at the stored ỹ. */
export class AdamWMSAMScheduleFree {
  constructor(options = {}) {
    const h = resolve("AdamWMSAMScheduleFree", options);
    this.hyperparameters = h;
    // The base gets exactly Schedule-Free's own hyperparameters (the names it exports).
    const own = Object.fromEntries(specsOf("ScheduleFreeAdamW").map((spec) => [spec.name, h[spec.name]]));
    this.base = new ScheduleFreeAdamW(own);
    this.lr = h.lr;
    this.rho = h.rho;
    this.ascent_momentum = h.ascent_momentum;
  }

  /** Schedule-Free's state, a zero EMA and a zero first perturbation. */
  init(x, d) {
    const n = x.length / d;
    return { base: this.base.init(x, d), m: new Float64Array(x.length), scale: new Float64Array(n) };
  }

  /** The un-perturbed y = ỹ + scale · m. */
  moveFromAscent(x, state, d) {
    return add(x, perPointScale(state.scale, state.m, d));
  }

  /** The stored ỹ = y − scale · m. */
  moveToAscent(x, state, d) {
    return sub(x, perPointScale(state.scale, state.m, d));
  }

  /** Alias of moveFromAscent: the training point y behind the stored ỹ. */
  unperturbed(x, state, d) {
    return this.moveFromAscent(x, state, d);
  }

  /** The point to evaluate: Schedule-Free's average x (never perturbed). */
  eval(x, state) {
    return this.base.eval(x, state.base);
  }

  /** The point to hand back to step: the perturbed ỹ. */
  train(x, state, d) {
    return this.moveToAscent(this.base.train(x, state.base), state, d);
  }

  /** One step from the stored ỹ; returns the next stored point. */
  step(x, state, oracle) {
    const d = oracle.dim;
    const g = oracle.grad(x);
    const unperturbed = add(x, perPointScale(state.scale, state.m, d));
    const [y, base] = this.base.update(unperturbed, g, state.base);
    const mu = this.ascent_momentum;
    const m = mix(mu, state.m, 1.0 - mu, g);
    // (1/(‖m‖ + eps)) · ρ in the official MSAM order of operations.
    const scale = lpNorm(m, 2, d).map((norm) => (1.0 / (norm + NORM_EPS)) * this.rho);
    return [sub(y, perPointScale(scale, m, d)), { base, m, scale }];
  }
}
