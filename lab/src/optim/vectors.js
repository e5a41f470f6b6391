// The few NumPy operations the optimizers need, on batches stored flat (point after point,
// d coordinates each). Each helper returns a new array and computes exactly the expression
// its name says, in that order, so that a line of a variant reads like the reference's line:
// `x - lr * d` is `subScaled(x, lr, d)`.

import { fma } from "../float.js";

/** A new array of n zeros. */
export function zeros(n) {
  return new Float64Array(n);
}

/** a + b. */
export function add(a, b) {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

/** a − b. */
export function sub(a, b) {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i];
  return out;
}

/** a ⊙ b. */
export function mul(a, b) {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] * b[i];
  return out;
}

/** s · a for a number s. */
export function scale(s, a) {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = s * a[i];
  return out;
}

/** a + s · b for a number s. */
export function addScaled(a, s, b) {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + s * b[i];
  return out;
}

/** a − s · b for a number s. */
export function subScaled(a, s, b) {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] - s * b[i];
  return out;
}

/** p · a + q · b for numbers p and q. */
export function mix(p, a, q, b) {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = p * a[i] + q * b[i];
  return out;
}

/** a ⊙ s_point: every coordinate of point i times s[i] (s has one entry per point). */
export function scalePerPoint(a, s, d) {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] * s[(i / d) | 0];
  return out;
}

/** s_point ⊙ a: s[i] times every coordinate of point i (NumPy's `s[..., None] * a`). */
export function perPointScale(s, a, d) {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = s[(i / d) | 0] * a[i];
  return out;
}

/**
 * ⟨a, b⟩ per point (one number per point), accumulated as NumPy's `vecdot` does it on this
 * kind of machine: the first product rounded, each further one added by a fused multiply-add.
 * The same rounding in both twins keeps them bit for bit together where a variant amplifies
 * rounding (LookSAM's reuse direction ‖g‖/‖g_v‖ · g_v when g_v is nearly 0).
 */
export function perPointDot(a, b, d) {
  const n = a.length / d;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let sum = a[i * d] * b[i * d];
    for (let j = 1; j < d; j++) sum = fma(a[i * d + j], b[i * d + j], sum);
    out[i] = sum;
  }
  return out;
}

/** An element-wise map of one or two arrays. */
export function map(a, f) {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f(a[i], i);
  return out;
}

/** NumPy's sign: −1, 0 or 1 (and NaN for NaN). */
export function sign(v) {
  return v > 0 ? 1.0 : v < 0 ? -1.0 : v === 0 ? 0.0 : NaN;
}
