// Magnitude/direction swaps and sign-agreement masks between SAM's and SGD's gradients: the
// browser twin of sampy/optim/swaps.py.
//
// From the research notes on the anatomy of SAM's gradient and their code
// (lhchau/sam-hessian; no paper). Two gradient evaluations per step, SAM's ascent, then a
// descent rule on (g, g̃):
//
// - SAMDirection: d = sign(g̃) ⊙ |g| — SAM's direction with SGD's magnitude.
// - SAMMagnitude: d = |g̃| ⊙ sign(g) — SAM's magnitude with SGD's direction.
// - SAMAgree:     d = g̃ ⊙ 1[g̃ ⊙ g > 0] (+ g elsewhere with fill "other").
// - SGDAgree:     d = g ⊙ 1[g̃ ⊙ g > 0] (+ g̃ elsewhere with fill "other").
//
// The descent rules SAMDirectionRule, SAMMagnitudeRule and AgreementRule mirror the
// reference's.
//
// The notes' code calls SAMDirection SAMMAGNITUDE and SAMMagnitude SAMDIRECTION (its own
// notes say the names are swapped); the classes are named by what they do.

import { resolve } from "./hyper.js";
import { NormBallAscent } from "./sam.js";
import { SharpnessAware } from "./sharpness_aware.js";
import { sign } from "./vectors.js";

/** A stateless descent rule, d = combine(g, g̃) coordinate by coordinate. */
class ElementwiseRule {
  init() {
    return null;
  }

  apply(g, gAdv, state) {
    const out = new Float64Array(g.length);
    for (let k = 0; k < g.length; k++) out[k] = this.combine(g[k], gAdv[k]);
    return [out, null];
  }
}

/** Descent rule d = sign(g̃) ⊙ |g|: SAM's direction, SGD's magnitude. */
export class SAMDirectionRule extends ElementwiseRule {
  combine(g, gAdv) {
    return sign(gAdv) * Math.abs(g);
  }
}

/** Descent rule d = |g̃| ⊙ sign(g): SAM's magnitude, SGD's direction. */
export class SAMMagnitudeRule extends ElementwiseRule {
  combine(g, gAdv) {
    return Math.abs(gAdv) * sign(g);
  }
}

/**
 * Descent rule: keep one gradient where g̃ ⊙ g > 0 (g̃ with keepSam, else g); elsewhere zero
 * (fill "zero") or the other gradient (fill "other").
 */
export class AgreementRule extends ElementwiseRule {
  constructor(keepSam, fill) {
    super();
    Object.assign(this, { keepSam, fill });
  }

  combine(g, gAdv) {
    const [kept, rest] = this.keepSam ? [gAdv, g] : [g, gAdv];
    return gAdv * g > 0 ? kept : this.fill === "other" ? rest : 0.0;
  }
}

function samAscent(h) {
  return new NormBallAscent(resolve("SAM", { rho: h.rho, perturb_eps: h.perturb_eps }));
}

class Swap extends SharpnessAware {
  constructor(base, options, className, Rule) {
    const h = resolve(className, options);
    super(base, samAscent(h), new Rule());
    this.hyperparameters = h;
  }
}

/** SAM's direction, SGD's magnitude: d = sign(g̃) ⊙ |g| (the notes' code: SAMMAGNITUDE). */
export class SAMDirection extends Swap {
  constructor(base, options = {}) {
    super(base, options, "SAMDirection", SAMDirectionRule);
  }
}

/** SAM's magnitude, SGD's direction: d = |g̃| ⊙ sign(g) (the notes' code: SAMDIRECTION). */
export class SAMMagnitude extends Swap {
  constructor(base, options = {}) {
    super(base, options, "SAMMagnitude", SAMMagnitudeRule);
  }
}

class Agree extends SharpnessAware {
  constructor(base, options, className, keepSam) {
    const h = resolve(className, options);
    super(base, samAscent(h), new AgreementRule(keepSam, h.fill));
    this.hyperparameters = h;
  }
}

/** SAM's coordinates where they agree in sign with SGD's (fill "other": SGD's elsewhere). */
export class SAMAgree extends Agree {
  constructor(base, options = {}) {
    super(base, options, "SAMAgree", true);
  }
}

/** SGD's coordinates where they agree in sign with SAM's (fill "other": SAM's elsewhere). */
export class SGDAgree extends Agree {
  constructor(base, options = {}) {
    super(base, options, "SGDAgree", false);
  }
}
