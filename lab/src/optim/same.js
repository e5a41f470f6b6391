// SAME, CustomSAME and SAMCkpt, which change SAM's gradient checkpoint by checkpoint: the
// browser twin of sampy/optim/same.py.
//
// From the research notes on the anatomy of SAM's gradient and their code
// (lhchau/sam-hessian; no paper). Two gradient evaluations per step, SAM's ascent
// ε = ρ g/(‖g‖ + eps), then with ck = checkpoints(g, g̃) (see checkpoints.js):
//
// - SAME:       d = g̃ ⊙ (1 + (c − 1)·1[ck = k]) — amplify checkpoint k by c.
// - CustomSAME: d = g̃ ⊙ c[ck] with one factor per checkpoint 0…4.
// - SAMCkpt:    d_i = g̃_i for coordinates in the selected checkpoints, g_i elsewhere.

import { CheckpointHybrid, CheckpointScaling } from "./checkpoints.js";
import { resolve } from "./hyper.js";
import { NormBallAscent } from "./sam.js";
import { SharpnessAware } from "./sharpness_aware.js";

/** SAM's ascent with the ball's other knobs at SAM's exported defaults. */
function samAscent(h) {
  return new NormBallAscent(resolve("SAM", { rho: h.rho, perturb_eps: h.perturb_eps }));
}

/** SAM with one factor per checkpoint (ckpt0…ckpt4). */
export class CustomSAME extends SharpnessAware {
  constructor(base, options = {}) {
    const h = resolve("CustomSAME", options);
    super(base, samAscent(h), new CheckpointScaling(h.factors, h.ratio_eps, h.ratio_mode));
    this.hyperparameters = h;
  }
}

/** SAM with one checkpoint of the gradient amplified by `factor`. */
export class SAME extends CustomSAME {
  constructor(base, options = {}) {
    const h = resolve("SAME", options);
    const factors = [1.0, 1.0, 1.0, 1.0, 1.0];
    factors[h.checkpoint] = h.factor;
    const { rho, ratio_eps, ratio_mode, perturb_eps } = h;
    super(base, { rho, factors, ratio_eps, ratio_mode, perturb_eps });
    this.hyperparameters = h;
  }
}

/** A SAM/SGD hybrid: SAM's coordinate in the selected checkpoints, SGD's elsewhere. */
export class SAMCkpt extends SharpnessAware {
  constructor(base, options = {}) {
    const h = resolve("SAMCkpt", options);
    super(base, samAscent(h), new CheckpointHybrid(h.checkpoints, h.ratio_eps, h.ratio_mode));
    this.hyperparameters = h;
  }
}
