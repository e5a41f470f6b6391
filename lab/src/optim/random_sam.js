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

import { Generator } from "../rng.js";
import { resolve } from "./hyper.js";
import { unit } from "./perturbation.js";
import { SharpnessAware } from "./sharpness_aware.js";
import { mix, scale } from "./vectors.js";

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

/** SAM with a random perturbation. Two gradient evaluations per step. */
export class RandomSAM extends SharpnessAware {
  constructor(base, options = {}) {
    const h = resolve("RandomSAM", options);
    super(base, new RandomAscent(h.rho, h.kind, h.seed), new MixedDescent(h.mix));
    this.hyperparameters = h;
  }
}
