// Ascent rules that change only where the second gradient is taken: the browser twin of
// sampy/optim/ascents.py. Each rule has init(x, d) and apply(x, g, state, d) → [ε, state];
// the variants plug them into SharpnessAware with SAM's descent rule d = g̃. Norms are per
// point; `eps` guards every division by a norm.
//
// - UnnormalizedAscent (USAM): ε = ρ g. M. Andriushchenko, N. Flammarion, "Towards
//   Understanding Sharpness-Aware Minimization", ICML 2022.
// - FriendlyAscent (F-SAM): ε = ρ d/(‖d‖ + eps), d = g − σ m with m an EMA of gradients.
//   T. Li, P. Zhou, Z. He, X. Cheng, X. Huang, "Friendly Sharpness-Aware Minimization",
//   CVPR 2024.
// - VarianceSuppressedAscent (VaSSO): d_t = (1 − θ) d_{t−1} + θ g, ε = ρ d_t/(‖d_t‖ + eps).
//   B. Li, G. B. Giannakis, "Enhancing Sharpness-Aware Optimization Through Variance
//   Suppression", NeurIPS 2023.
// - FisherAscent (Fisher SAM): ε = ρ F⁻¹g / (√(gᵀF⁻¹g) + eps), F = diag(1 + η g²). M. Kim,
//   D. Li, S. X. Hu, T. Hospedales, "Fisher SAM: Information Geometry and Sharpness Aware
//   Minimisation", ICML 2022.
// - RandomAscent (average-case sharpness): ε = ρ z, z ~ N(0, I), or ε = ρ u/‖u‖. In the
//   spirit of T. Li, W. Yan, Z. Lei, Y. Wu, K. Fang, M. Yang, X. Huang, "Efficient
//   Generalization Improvement Guided by Random Weight Perturbation", arXiv:2211.11489.

import { Generator } from "../rng.js";
import { dualDirection } from "./perturbation.js";
import { mix, perPointDot, scale, subScaled, zeros } from "./vectors.js";

function unit(v, radius, eps, d) {
  return dualDirection(v, 2, radius, eps, d);
}

/** USAM: ε = ρ g — no normalisation, so ρ carries the gradient's units. */
export class UnnormalizedAscent {
  constructor(rho) {
    this.rho = rho;
  }

  init() {
    return null;
  }

  apply(x, g, state) {
    return [scale(this.rho, g), null];
  }
}

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

/**
 * Fisher SAM: the worst case in the ellipsoid εᵀFε ≤ ρ², F = diag(1 + η g²). The diagonal
 * Fisher proxy 1 + η g² is the reference's choice, its constants unverified against the
 * paper's code.
 */
export class FisherAscent {
  constructor(rho, fisherEta, eps) {
    Object.assign(this, { rho, fisherEta, eps });
  }

  init() {
    return null;
  }

  apply(x, g, state, d) {
    const precond = new Float64Array(g.length);
    for (let k = 0; k < g.length; k++) precond[k] = g[k] / (1.0 + this.fisherEta * g[k] * g[k]);
    const dots = perPointDot(g, precond, d);
    const out = new Float64Array(g.length);
    for (let k = 0; k < g.length; k++) {
      out[k] = precond[k] * (this.rho / (Math.sqrt(dots[(k / d) | 0]) + this.eps));
    }
    return [out, null];
  }
}

/**
 * Random perturbation: ε = ρ z (kind "gaussian") or a uniform direction of length ρ
 * ("sphere"). The generator lives in the state; draws come from a copy, so a step never
 * changes the state it was given (the reference's copy_rng).
 */
export class RandomAscent {
  constructor(rho, kind, seed) {
    Object.assign(this, { rho, kind, seed });
  }

  /** A generator seeded with `seed` (np.random.default_rng). */
  init() {
    return new Generator(this.seed);
  }

  apply(x, g, rng, d) {
    rng = rng.copy();
    const z = rng.standardNormal(x.length);
    if (this.kind === "gaussian") return [scale(this.rho, z), rng];
    return [unit(z, this.rho, 0.0, d), rng];
  }
}
