// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay: the browser
// twin of sampy/optim/sgd.py, with torch.optim.SGD's update for a direction d:
//
// 1. d ← d + λ w                                   (coupled weight decay, λ = weight_decay)
// 2. b ← d on the first step, else b ← μ b + (1 − τ) d   (μ = momentum, τ = dampening)
// 3. d ← d + μ b if nesterov else d ← b                    (only when μ > 0)
// 4. w ← w − η d                                           (η = lr)
//
// Sutskever, Martens, Dahl, Hinton, "On the importance of initialization and momentum in deep
// learning", ICML 2013.

import { resolve } from "./hyper.js";
import { addScaled, mix, subScaled } from "./vectors.js";

export class SGD {
  constructor(options = {}) {
    Object.assign(this, resolve("SGD", options));
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new RangeError("nesterov=True requires momentum > 0 and dampening = 0");
    }
  }

  /** No momentum buffer until the first step (as in torch). */
  init() {
    return { momentum: null };
  }

  /** Move x along d (in place of the gradient). */
  update(x, d, state) {
    if (this.momentum === 0 && this.weight_decay === 0) return [subScaled(x, this.lr, d), state];
    if (this.weight_decay !== 0) d = addScaled(d, this.weight_decay, x);
    let buf = state.momentum;
    if (this.momentum !== 0) {
      buf = buf === null ? Float64Array.from(d) : mix(this.momentum, buf, 1.0 - this.dampening, d);
      d = this.nesterov ? addScaled(d, this.momentum, buf) : buf;
    }
    return [subScaled(x, this.lr, d), { momentum: buf }];
  }

  /** One gradient, one update. */
  step(x, state, oracle) {
    return this.update(x, oracle.grad(x), state);
  }
}
