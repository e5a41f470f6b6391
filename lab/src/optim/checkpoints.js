// The element-wise "checkpoints" of SAM's gradient, how SAM changes each coordinate: the
// browser twin of sampy/optim/checkpoints.py.
//
// From the research notes on the anatomy of SAM's gradient (lhchau/sam-hessian; no paper).
// For every coordinate the ratio r_i = g̃_i / g_i of the perturbed to the clean gradient falls
// in one of four checkpoints:
//
// - ckpt1: r > 1        SAM amplifies the coordinate (same sign)
// - ckpt2: 0 < r < 1    SAM shrinks it (same sign)
// - ckpt3: r < −1       sign flip, larger magnitude
// - ckpt4: −1 < r < 0   sign flip, smaller magnitude
//
// Boundaries (r = 0, ±1) and undefined ratios are ckpt0. Mode "notes_code" computes
// r = g̃/(g + ratio_eps) as the notes' code does (the eps ignores the sign of g); "sign_safe"
// uses g + ratio_eps·sign(g) and puts |g| ≤ ratio_eps in ckpt0.

/** r = g̃/g with the notes' or the sign-safe guard (NaN where undefined). */
export function ratio(g, gAdv, ratioEps = 1e-8, mode = "sign_safe") {
  const out = new Float64Array(g.length);
  for (let k = 0; k < g.length; k++) {
    if (mode === "notes_code") {
      out[k] = gAdv[k] / (g[k] + ratioEps);
    } else {
      const sign = g[k] >= 0 ? 1.0 : -1.0;
      out[k] = Math.abs(g[k]) <= ratioEps ? NaN : gAdv[k] / (g[k] + ratioEps * sign);
    }
  }
  return out;
}

/** The checkpoint 0…4 of every coordinate (an Int8Array shaped like g). */
export function checkpoints(g, gAdv, ratioEps = 1e-8, mode = "sign_safe") {
  const r = ratio(g, gAdv, ratioEps, mode);
  const out = new Int8Array(g.length);
  for (let k = 0; k < g.length; k++) {
    const v = r[k];
    // NaN fails every comparison, so undefined ratios stay in ckpt0.
    if (v > 1) out[k] = 1;
    else if (v > 0 && v < 1) out[k] = 2;
    else if (v < -1) out[k] = 3;
    else if (v > -1 && v < 0) out[k] = 4;
  }
  return out;
}

/** Per point, the fraction of coordinates in ckpt0…ckpt4 (5 numbers per point, flat). */
export function checkpointFractions(g, gAdv, ratioEps, mode, d) {
  const ck = checkpoints(g, gAdv, ratioEps, mode);
  const n = g.length / d;
  const out = new Float64Array(n * 5);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) out[i * 5 + ck[i * d + j]] += 1;
    for (let k = 0; k < 5; k++) out[i * 5 + k] /= d;
  }
  return out;
}

/** A descent rule that picks each coordinate from its checkpoint (shared by the two below). */
class PerCheckpoint {
  constructor(ratioEps, mode) {
    this.ratioEps = ratioEps;
    this.mode = mode;
  }

  init() {
    return null;
  }

  apply(g, gAdv, state) {
    const ck = checkpoints(g, gAdv, this.ratioEps, this.mode);
    const out = new Float64Array(g.length);
    for (let k = 0; k < g.length; k++) out[k] = this.coordinate(g[k], gAdv[k], ck[k]);
    return [out, null];
  }
}

/** Descent rule d = g̃ ⊙ c[ckpt]: scale each coordinate by its checkpoint's factor. */
export class CheckpointScaling extends PerCheckpoint {
  constructor(factors, ratioEps, mode) {
    super(ratioEps, mode);
    this.factors = Float64Array.from(factors);
  }

  coordinate(g, gAdv, checkpoint) {
    return gAdv * this.factors[checkpoint];
  }
}

/** Descent rule: d_i = g̃_i in the chosen checkpoints, g_i elsewhere (SAMCkpt). */
export class CheckpointHybrid extends PerCheckpoint {
  constructor(selected, ratioEps, mode) {
    super(ratioEps, mode);
    this.selected = Array.from(selected);
  }

  coordinate(g, gAdv, checkpoint) {
    return this.selected.includes(checkpoint) ? gAdv : g;
  }
}
