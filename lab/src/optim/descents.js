// Descent rules that change only which direction goes to the base optimizer: the browser twin
// of sampy/optim/descents.py.
//
// MixedDescent, d = c g + (1 − c) g̃: c = 0 is SAM's rule (Foret, Kleiner, Mobahi, Neyshabur,
// "Sharpness-Aware Minimization for Efficiently Improving Generalization", ICLR 2021); random
// weight perturbation mixes in the clean gradient this way (T. Li, W. Yan, Z. Lei, Y. Wu,
// K. Fang, M. Yang, X. Huang, "Efficient Generalization Improvement Guided by Random Weight
// Perturbation", arXiv:2211.11489).

import { mix } from "./vectors.js";

/** d = c g + (1 − c) g̃: a fixed mix of the clean and the perturbed gradient. */
export class MixedDescent {
  constructor(cleanWeight) {
    this.cleanWeight = cleanWeight;
  }

  init() {
    return null;
  }

  apply(g, gAdv, state) {
    return [mix(this.cleanWeight, g, 1.0 - this.cleanWeight, gAdv), null];
  }
}
