// Binary coordinate masks, the browser twin of `top_k_mask` in sampy/optim/esam.py (used by
// SSAM's masks, sampy/optim/ssam.py).
//
// A mask is a Uint8Array of 0/1, one entry per coordinate of the flat batch (point after
// point, d each), so that `g[k] * mask[k]` is NumPy's float-times-bool product and
// `1 - mask[k]` its `~mask`.

/**
 * The k largest entries of every point's coordinates, as a mask: NumPy's
 * `argsort(-scores, kind="stable")[..., :k]` (ties go to the lower index, NaN sorts last and
 * a negative k drops that many from the end, as a Python slice does).
 */
export function topKMask(scores, k, d) {
  const n = scores.length / d;
  const take = k < 0 ? Math.max(0, d + k) : Math.min(k, d);
  const mask = new Uint8Array(scores.length);
  const order = new Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) order[j] = j;
    const key = (j) => -scores[i * d + j];
    // Array.prototype.sort is stable; NaN compares as largest, as in NumPy's sort.
    order.sort((a, b) => {
      const ka = key(a);
      const kb = key(b);
      if (Number.isNaN(ka)) return Number.isNaN(kb) ? 0 : 1;
      if (Number.isNaN(kb)) return -1;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    for (let r = 0; r < take; r++) mask[i * d + order[r]] = 1;
  }
  return mask;
}
