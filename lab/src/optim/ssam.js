// SSAM-D, Sparse SAM with a dynamic (drop-and-grow) mask: the browser twin of SSAMD in
// sampy/optim/ssam.py.
//
// P. Mi, L. Shen, T. Ren, Y. Zhou, X. Sun, R. Ji, D. Tao, "Make Sharpness-Aware Minimization
// Stronger: A Sparsified Perturbation Approach", NeurIPS 2022 (official code:
// Mi-Peng/Sparse-Sharpness-Aware-Minimization). With a mask m ∈ {0, 1}^d (sparsity s =
// fraction of zeros) and a counter t = 0, 1, …:
//
// 1. g = ∇L(w)
// 2. ε = ρ m ⊙ g / (‖g‖ + 1e-7) — the FULL ‖g‖, so ‖ε‖ ≤ ρ
// 3. g̃ = ∇L(w + ε)
// 4. w ← base.update(w, g̃) at w
//
// The mask starts as the top d − ⌈d s⌉ of uniform random scores. On a refresh step
// (t mod update_freq = 0), right after step 2, with the clean g and the perturbed w + ε (the
// new mask takes effect next step):
//
//     dr = drop_rate · (1 + cos(π (t − T_start)/(T_end − T_start))) / 2
//     D_i = (score_drop_i + 1e-7) m_i ;  G_i = (score_grow_i + 1e-7) (1 − m_i)
//     m ← top-int((d − d s)(1 − dr)) by D  ∨  top-int(min((d − d s) dr, d s)) by G
//
// with scores |w_i| ("weight"), |g_i| ("gradient") or U(0, 1) ("random"). Masks are
// Uint8Array of 0/1 (masks.js).
//
// The module's other class, SSAMF (Fisher mask), has no twin: it builds its mask from
// per-example squared gradients, which a 2-D landscape does not have. It runs in Python only.

import { Generator } from "../rng.js";
import { checkBase } from "./base.js";
import { resolve } from "./hyper.js";
import { topKMask } from "./masks.js";
import { add } from "./vectors.js";

/** Sparse SAM with a dynamic (drop-and-grow) mask. Two gradient evaluations per step. */
export class SSAMD {
  constructor(base, options = {}) {
    const h = resolve("SSAMD", options);
    if (h.T_end <= h.T_start) {
      throw new RangeError(`T_end must be > T_start = ${h.T_start}, got ${h.T_end}`);
    }
    checkBase(base);
    this.base = base;
    this.hyperparameters = h;
    Object.assign(this, h);
  }

  /** Step count's refresh test: step `count` (0-based) refreshes the mask. */
  refreshes(count) {
    return count % this.update_freq === 0;
  }

  /** ε = ρ m ⊙ g / (‖g‖ + eps), normalised by the unmasked norm. */
  perturbation(g, mask, d) {
    const n = g.length / d;
    const out = new Float64Array(g.length);
    for (let i = 0; i < n; i++) {
      // The reference takes ‖g‖² with np.einsum, a plain running sum of products (no fused
      // multiply-add, unlike np.vecdot): written out here rather than with perPointDot.
      let sum = 0.0;
      for (let j = 0; j < d; j++) sum += g[i * d + j] * g[i * d + j];
      const factor = this.rho / (Math.sqrt(sum) + this.perturb_eps);
      for (let j = 0; j < d; j++) out[i * d + j] = factor * (g[i * d + j] * mask[i * d + j]);
    }
    return out;
  }

  /** A random mask with d − ⌈d s⌉ live entries per point, and the generator after drawing it. */
  init(x, d) {
    const rng = new Generator(this.seed);
    const mask = topKMask(rng.random(x.length), d - Math.ceil(d * this.sparsity), d);
    return { count: 0, mask, rng, base: this.base.init(x, d) };
  }

  /** drop_rate · (1 + cos(π (t − T_start)/(T_end − T_start)))/2 (not clamped). */
  dropRateAt(t) {
    const phase = (t - this.T_start) / (this.T_end - this.T_start);
    return (this.drop_rate * (1.0 + Math.cos(Math.PI * phase))) / 2.0;
  }

  score(kind, w, g, rng) {
    if (kind === "weight") return w.map(Math.abs);
    if (kind === "gradient") return g.map(Math.abs);
    return rng.random(w.length);
  }

  /** Drop-and-grow at step t with weights w (perturbed) and clean gradient g; draws from rng. */
  refresh(mask, w, g, t, rng, d) {
    const live = d - d * this.sparsity; // a float, as the official code computes it
    const dr = this.dropRateAt(t);
    // The drop scores are drawn before the growth scores (both "random": two draws).
    const death = this.score(this.drop_strategy, w, g, rng).map((s, k) => (s + 1e-7) * mask[k]);
    const growth = this.score(this.growth_strategy, w, g, rng).map((s, k) => (s + 1e-7) * (1 - mask[k]));
    const keep = topKMask(death, Math.trunc(live * (1.0 - dr)), d);
    const grow = topKMask(growth, Math.trunc(Math.min(live * dr, d * this.sparsity)), d);
    return keep.map((v, k) => v | grow[k]);
  }

  /** The common step; on refresh steps the mask for the next step is drawn after ε. */
  step(x, state, oracle) {
    const d = oracle.dim;
    const g = oracle.grad(x);
    const e = this.perturbation(g, state.mask, d);
    let { mask, rng } = state;
    if (this.refreshes(state.count)) {
      rng = state.rng.copy();
      mask = this.refresh(state.mask, add(x, e), g, state.count, rng, d);
    }
    const gAdv = oracle.grad(add(x, e));
    const [xNew, baseState] = this.base.update(x, gAdv, state.base);
    return [xNew, { count: state.count + 1, mask, rng, base: baseState }];
  }
}
