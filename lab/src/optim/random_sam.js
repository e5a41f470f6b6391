// Random-perturbation SAM, average-case instead of worst-case sharpness: the browser twin of
// sampy/optim/random_sam.py.
//
// In the spirit of T. Li, W. Yan, Z. Lei, Y. Wu, K. Fang, M. Yang, X. Huang, "Efficient
// Generalization Improvement Guided by Random Weight Perturbation", arXiv:2211.11489 (RWP).
// Two gradient evaluations per step:
//
// 1. g = ∇L(w)
// 2. ε = ρ z, z ~ N(0, I) (kind "gaussian") or ε = ρ u/‖u‖ (kind "sphere")
// 3. g̃ = ∇L(w + ε);  d = λ g + (1 − λ) g̃;  w ← base.update(w, d)
//
// Seeded with NumPy's generator: the same `seed` gives the reference's perturbations.

import { RandomAscent } from "./ascents.js";
import { MixedDescent } from "./descents.js";
import { resolve } from "./hyper.js";
import { SharpnessAware } from "./sharpness_aware.js";

/** SAM with a random perturbation. Two gradient evaluations per step. */
export class RandomSAM extends SharpnessAware {
  constructor(base, options = {}) {
    const h = resolve("RandomSAM", options);
    super(base, new RandomAscent(h.rho, h.kind, h.seed), new MixedDescent(h.mix));
    this.hyperparameters = h;
  }
}
