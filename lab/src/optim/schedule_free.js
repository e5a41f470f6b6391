// Schedule-Free AdamW: iterate averaging in place of a learning-rate schedule. The browser twin
// of sampy/optim/schedule_free.py.
//
// A. Defazio, X. A. Yang, H. Mehta, K. Mishchenko, A. Khaled, A. Cutkosky, "The Road Less
// Scheduled", NeurIPS 2024 (official code: facebookresearch/schedule_free, the three-buffer
// AdamWScheduleFreeReference). Three sequences per point: z (moved by the AdamW-like step),
// x (a weighted average of the z's, the point to evaluate) and y = β1 x + (1 − β1) z (where
// the gradient is taken; the parameters hold y). Step k = 0, 1, …:
//
// 1. s = (k+1)/W if k < W else 1                   (linear warm-up over W steps)
// 2. γ = η s √(1 − β2^{k+1}) (gen_a)  or  γ = η s (gen_b)
// 3. γ_max ← max(γ_max, γ);  ω = (k+1)^r γ_max^p;  Ω ← Ω + ω;  c = ω/Ω
// 4. g = ∇L(y);  v ← β2 v + (1 − β2) g²
// 5. den = √v + eps (gen_a)  or  den = √(v/(1 − β2^{k+1})) + eps (gen_b)
// 6. z ← z − γ λ y (or γ λ z with decay_at_z);  z ← z − γ g/den
// 7. x ← (1 − c) x + c z;  y ← β1 x + (1 − β1) z   (the new parameters)
//
// `eval(y, state)` gives x, the point to evaluate; `train(x, state)` gives y back. It is also
// a base optimizer: `update(y, d, state)` moves with d in place of ∇L(y).

import { resolve } from "./hyper.js";
import { mix } from "./vectors.js";
import { pow } from "../float.js";

/**
 * c = weight / weightSum, and 1 while every weight so far is 0 (a tiny learning rate makes
 * lr_max ** weight_lr_power underflow; the official code then divides 0 by 0).
 */
export function averagingWeight(weight, weightSum) {
  return weightSum > 0 ? weight / weightSum : 1.0;
}

/** Schedule-Free AdamW (reference three-sequence form). One gradient per step. */
export class ScheduleFreeAdamW {
  constructor(options = {}) {
    const h = resolve("ScheduleFreeAdamW", options);
    this.hyperparameters = h;
    Object.assign(this, h);
  }

  /** z = x = y = x0, v = 0, k = 0, lrMax = −1 (as the official code). */
  init(x) {
    return {
      count: 0,
      z: Float64Array.from(x),
      x: Float64Array.from(x),
      v: new Float64Array(x.length),
      lrMax: -1.0,
      weightSum: 0.0,
    };
  }

  /** The point to evaluate: the average x (the official optimizer.eval()). */
  eval(y, state) {
    return state.x;
  }

  /** The training parameters y (the official optimizer.train()). */
  train(x, state) {
    if (state.count === 0) return state.x; // β1 x0 + (1 − β1) x0 may be 1 ulp off x0
    const beta1 = this.betas[0];
    return mix(beta1, state.x, 1.0 - beta1, state.z);
  }

  /** Steps 1–3 for step k: [γ, 1 − β2^{k+1}, γ_max, Ω, c]. */
  schedule(k, lrMax, weightSum) {
    const sched = k < this.warmup_steps ? (k + 1) / this.warmup_steps : 1.0;
    const bias2 = 1.0 - pow(this.betas[1], k + 1);
    let lr = this.lr * sched;
    if (this.variant === "gen_a") lr = lr * Math.sqrt(bias2);
    const newMax = Math.max(lrMax, lr);
    const weight = pow(k + 1, this.r) * pow(newMax, this.weight_lr_power);
    const newSum = weightSum + weight;
    return [lr, bias2, newMax, newSum, averagingWeight(weight, newSum)];
  }

  /** Steps 1–7 with d in place of ∇L(y); returns the new y. */
  update(y, d, state) {
    const [beta1, beta2] = this.betas;
    const [lr, bias2, lrMax, weightSum, c] = this.schedule(state.count, state.lrMax, state.weightSum);
    const n = y.length;
    const v = new Float64Array(n);
    const z = new Float64Array(n);
    const x = new Float64Array(n);
    const yNew = new Float64Array(n);
    const decay = lr * this.weight_decay;
    for (let k = 0; k < n; k++) {
      v[k] = state.v[k] * beta2 + (1.0 - beta2) * (d[k] * d[k]);
      const root = this.variant === "gen_a" ? Math.sqrt(v[k]) : Math.sqrt(v[k] / bias2);
      const denom = root + this.eps;
      let zk = state.z[k];
      if (this.weight_decay !== 0) zk = zk - decay * (this.decay_at_z ? zk : y[k]);
      zk = zk - lr * (d[k] / denom);
      z[k] = zk;
      x[k] = state.x[k] * (1.0 - c) + c * zk;
      yNew[k] = beta1 * x[k] + (1.0 - beta1) * zk;
    }
    return [yNew, { count: state.count + 1, z, x, v, lrMax, weightSum }];
  }

  /** One gradient at y, one schedule-free update. */
  step(y, state, oracle) {
    return this.update(y, oracle.grad(y), state);
  }
}
