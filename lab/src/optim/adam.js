// Adam and AdamW: the browser twin of sampy/optim/adam.py, in the operation order of
// torch.optim.Adam for a direction d at step t = 1, 2, …:
//
// 1. d ← d + λ w                          (Adam: coupled L2 decay)
// 2. m ← β1 m + (1 − β1) d,  v ← β2 v + (1 − β2) d²
// 3. w ← w − (η / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + eps)
//
// AdamW skips step 1 and first shrinks the weights, w ← w (1 − η λ).
// Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015; Loshchilov & Hutter,
// "Decoupled Weight Decay Regularization", ICLR 2019.

import { resolve } from "./hyper.js";
import { addScaled, scale } from "./vectors.js";
import { pow } from "../float.js";

export class Adam {
  constructor(options = {}, className = "Adam") {
    Object.assign(this, resolve(className, options));
    this.decoupled = className === "AdamW";
  }

  /** Zero moments, step count 0. */
  init(x) {
    return { count: 0, m: new Float64Array(x.length), v: new Float64Array(x.length) };
  }

  /** Move x using d in place of the gradient. */
  update(x, d, state) {
    const [beta1, beta2] = this.betas;
    const lr = this.lr;
    const count = state.count + 1;
    if (this.weight_decay !== 0) {
      if (this.decoupled) x = scale(1.0 - lr * this.weight_decay, x);
      else d = addScaled(d, this.weight_decay, x);
    }
    const n = x.length;
    const m = new Float64Array(n);
    const v = new Float64Array(n);
    const out = new Float64Array(n);
    const stepSize = lr / (1.0 - pow(beta1, count));
    const bias2 = (1.0 - pow(beta2, count)) ** 0.5;
    for (let i = 0; i < n; i++) {
      // m + (1 − β1)(d − m) is the EMA as torch's lerp computes it.
      m[i] = state.m[i] + (1.0 - beta1) * (d[i] - state.m[i]);
      v[i] = state.v[i] * beta2 + (1.0 - beta2) * (d[i] * d[i]);
      const denom = Math.sqrt(v[i]) / bias2 + this.eps;
      out[i] = x[i] - stepSize * (m[i] / denom);
    }
    return [out, { count, m, v }];
  }

  /** One gradient, one update. */
  step(x, state, oracle) {
    return this.update(x, oracle.grad(x), state);
  }
}

/** Adam with decoupled weight decay (torch.optim.AdamW). */
export class AdamW extends Adam {
  constructor(options = {}) {
    super(options, "AdamW");
  }
}
