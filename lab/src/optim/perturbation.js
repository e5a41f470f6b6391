// The SAM ascent step: the first-order worst case in a norm ball, for every p ≥ 1. The
// browser twin of sampy/optim/perturbation.py.
//
// Maximising L(w) + εᵀg over ‖ε‖_p ≤ ρ is solved by Hölder's inequality: with 1/p + 1/q = 1,
//     ε̂ = ρ · sign(g) ⊙ |g|^{q−1} / ‖g‖_q^{q−1}
// p = 2 gives ρ g/‖g‖ (SAM); p = ∞ gives ρ sign(g); p = 1 puts the whole radius on the
// largest coordinate(s). The adaptive (ASAM) ball ‖T⁻¹ε‖_p ≤ ρ with T = diag(|w| + η) is
// the same problem for u = T g, mapped back by T. Norms are per point; `eps` turns a zero
// gradient into ε = 0.

import { perPointDot, sign } from "./vectors.js";

export { perPointDot };

/** The Hölder conjugate q of p (∞ for p = 1, 1 for p = ∞). */
export function dualNormExponent(p) {
  if (p === 1) return Infinity;
  if (p === Infinity) return 1.0;
  return p / (p - 1.0);
}

/** ‖u‖_p per point (one number per point). */
export function lpNorm(u, p, d) {
  const n = u.length / d;
  const out = new Float64Array(n);
  if (p === 2) {
    const dots = perPointDot(u, u, d);
    for (let i = 0; i < n; i++) out[i] = Math.sqrt(dots[i]);
    return out;
  }
  for (let i = 0; i < n; i++) {
    let top = 0.0;
    let sum = 0.0;
    for (let j = 0; j < d; j++) {
      const a = Math.abs(u[i * d + j]);
      top = Math.max(top, a);
      sum += a;
    }
    if (p === Infinity) out[i] = top;
    else if (p === 1) out[i] = sum;
    else {
      // Scale by the largest entry first so that |u|^p cannot overflow for large p.
      const safe = top > 0 ? top : 1.0;
      let acc = 0.0;
      for (let j = 0; j < d; j++) acc += (Math.abs(u[i * d + j]) / safe) ** p;
      out[i] = top * acc ** (1.0 / p);
    }
  }
  return out;
}

/**
 * The maximiser of ⟨ε, u⟩ over ‖ε‖_p ≤ radius, per point (`eps` guards 0/0). `radius` is a
 * number (the browser twin has no per-point hyperparameters).
 */
export function dualDirection(u, p, radius, eps, d) {
  const n = u.length / d;
  const out = new Float64Array(u.length);
  if (p === 2) {
    const dots = perPointDot(u, u, d);
    for (let i = 0; i < n; i++) {
      const factor = radius / (Math.sqrt(dots[i]) + eps);
      for (let j = 0; j < d; j++) out[i * d + j] = u[i * d + j] * factor;
    }
    return out;
  }
  if (p === Infinity) {
    for (let k = 0; k < u.length; k++) out[k] = radius * sign(u[k]);
    return out;
  }
  if (p === 1) {
    for (let i = 0; i < n; i++) {
      let top = -Infinity;
      for (let j = 0; j < d; j++) top = Math.max(top, Math.abs(u[i * d + j]));
      let ties = 0;
      for (let j = 0; j < d; j++) if (Math.abs(u[i * d + j]) === top) ties += 1;
      for (let j = 0; j < d; j++) {
        const k = i * d + j;
        const tie = Math.abs(u[k]) === top ? 1 : 0;
        out[k] = (radius * sign(u[k]) * tie) / ties;
      }
    }
    return out;
  }
  const q = dualNormExponent(p);
  const norms = lpNorm(u, q, d);
  for (let k = 0; k < u.length; k++) {
    out[k] = radius * sign(u[k]) * (Math.abs(u[k]) / (norms[(k / d) | 0] + eps)) ** (q - 1.0);
  }
  return out;
}

/** radius · v/(‖v‖₂ + eps) per point: v scaled to Euclidean length radius. */
export function unit(v, radius, eps, d) {
  return dualDirection(v, 2, radius, eps, d);
}

/**
 * SAM's (adaptive = false) or ASAM's (adaptive = true) perturbation ε̂(x).
 * ASAM: Kwon, Kim, Park, Choi, "ASAM: Adaptive Sharpness-Aware Minimization for
 * Scale-Invariant Learning of Deep Neural Networks", ICML 2021 — T = |w| + η.
 */
export function normBallPerturbation(x, g, rho, p, adaptive, eta, eps, d) {
  if (!adaptive) return dualDirection(g, p, rho, eps, d);
  const scaled = new Float64Array(g.length);
  const t = new Float64Array(g.length);
  for (let k = 0; k < g.length; k++) {
    t[k] = Math.abs(x[k]) + eta;
    scaled[k] = t[k] * g[k];
  }
  const e = dualDirection(scaled, p, rho, eps, d);
  for (let k = 0; k < g.length; k++) e[k] = t[k] * e[k];
  return e;
}
