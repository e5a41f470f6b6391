// Floating-point operations that JavaScript lacks, or rounds differently from the C library
// NumPy calls: a fused multiply-add, and a power with an integer exponent rounded once. The
// browser twin uses them where the reference's arithmetic does, so that the two twins stay
// bit for bit together where an algorithm amplifies rounding (a direction computed from a
// nearly-zero vector, a bounce about to start). Exact error terms after Dekker ("A
// floating-point technique for extending the available precision", Numerische Mathematik 18,
// 1971) and Knuth (The Art of Computer Programming 2, §4.2.2).

// Veltkamp's splitting constant 2^27 + 1: a double splits into two halves of 26 bits.
const SPLITTER = 134217729;
const SAFE = 1e290;

/** [p, e]: p = fl(a·b) and its exact error e = a·b − p (finite, moderate a and b). */
function twoProduct(a, b) {
  const p = a * b;
  let t = SPLITTER * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLITTER * b;
  const bh = t - (t - b);
  const bl = b - bh;
  return [p, ah * bh - p + ah * bl + al * bh + al * bl];
}

/**
 * fma(a, b, c) = a·b + c with one rounding (C's fma): the product's exact error (TwoProduct)
 * and the sum's (TwoSum) are added back before the last rounding. Correctly rounded except
 * in rare double-rounding ties; a·b + c where the splitting would overflow.
 */
export function fma(a, b, c) {
  const p = a * b;
  if (!Number.isFinite(p) || Math.abs(a) > SAFE || Math.abs(b) > SAFE) return p + c;
  const [, e] = twoProduct(a, b);
  const s = p + c;
  const v = s - p;
  const r = p - (s - v) + (c - v);
  return s + (r + e);
}

/**
 * x ** y as C's pow rounds it where that matters here: for an integer exponent 1 ≤ y ≤ 4096
 * the power is formed in double-double arithmetic (about 100 bits) and rounded once, which
 * is what a correctly rounded pow returns; any other exponent uses JavaScript's `**`.
 */
export function pow(x, y) {
  if (!(Number.isInteger(y) && y >= 1 && y <= 4096) || !Number.isFinite(x) || x === 0) return x ** y;
  let hi = 1.0;
  let lo = 0.0;
  let baseHi = x;
  let baseLo = 0.0;
  let n = y;
  while (true) {
    if (n & 1) [hi, lo] = ddMultiply(hi, lo, baseHi, baseLo);
    n >>= 1;
    if (n === 0) break;
    [baseHi, baseLo] = ddMultiply(baseHi, baseLo, baseHi, baseLo);
  }
  return hi + lo;
}

function ddMultiply(aHi, aLo, bHi, bLo) {
  if (!Number.isFinite(aHi * bHi) || Math.abs(aHi) > SAFE || Math.abs(bHi) > SAFE) return [aHi * bHi, 0.0];
  const [p, e] = twoProduct(aHi, bHi);
  const err = e + (aHi * bLo + aLo * bHi);
  const hi = p + err;
  return [hi, err - (hi - p)];
}
