// NumPy's default generator, draw for draw: SeedSequence → PCG64 → random() and
// standard_normal(), so that a seeded variant (RandomSAM, SSAM-D) or a noisy oracle in the
// browser makes the same draws as `np.random.default_rng(seed)` in the reference.
//
// M. E. O'Neill, "PCG: A Family of Simple Fast Space-Efficient Statistically Good Algorithms
// for Random Number Generation", Harvey Mudd College, HMC-CS-2014-0905 (PCG64 = XSL-RR output
// on a 128-bit LCG); NumPy's SeedSequence (numpy.random.bit_generator); G. Marsaglia,
// W. W. Tsang, "The Ziggurat Method for Generating Random Variables", Journal of Statistical
// Software 5(8), 2000 (the 256-layer normal sampler NumPy uses).

const MASK32 = 0xffffffff;
const MASK64 = (1n << 64n) - 1n;
const MASK128 = (1n << 128n) - 1n;
const PCG_MULTIPLIER = 0x2360ed051fc65da44385df649fccf645n;

// --------------------------------------------------------------------------- SeedSequence

const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const POOL_SIZE = 4;

function entropyWords(seed) {
  // An integer seed as little-endian 32-bit words (0 → [0]), as NumPy coerces it.
  let value = BigInt(seed);
  const words = [];
  do {
    words.push(Number(value & 0xffffffffn));
    value >>= 32n;
  } while (value > 0n);
  return words;
}

/** NumPy's `SeedSequence(seed).generate_state(nWords64, np.uint64)`, as BigInts. */
export function seedSequenceState(seed, nWords64) {
  const entropy = entropyWords(seed);
  let hashConst = INIT_A;
  const hashmix = (value) => {
    value = (value ^ hashConst) >>> 0;
    hashConst = Math.imul(hashConst, MULT_A) >>> 0;
    value = Math.imul(value, hashConst) >>> 0;
    return (value ^ (value >>> 16)) >>> 0;
  };
  const mix = (x, y) => {
    const result = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
    return (result ^ (result >>> 16)) >>> 0;
  };
  const pool = new Array(POOL_SIZE);
  for (let i = 0; i < POOL_SIZE; i++) pool[i] = hashmix(i < entropy.length ? entropy[i] : 0);
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) {
      if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
    }
  }
  for (let src = POOL_SIZE; src < entropy.length; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst], hashmix(entropy[src]));
  }
  let hashB = INIT_B;
  const words32 = [];
  for (let i = 0; i < 2 * nWords64; i++) {
    let value = (pool[i % POOL_SIZE] ^ hashB) >>> 0;
    hashB = Math.imul(hashB, MULT_B) >>> 0;
    value = Math.imul(value, hashB) >>> 0;
    words32.push((value ^ (value >>> 16)) >>> 0);
  }
  const out = [];
  for (let i = 0; i < nWords64; i++) {
    out.push((BigInt(words32[2 * i + 1]) << 32n) | BigInt(words32[2 * i]));
  }
  return out;
}

// --------------------------------------------------------------------------- ziggurat tables

// The 256-layer ziggurat of the standard normal density f(x) = exp(−x²/2): the base strip
// has tail start R and every layer the area V = R f(R) + ∫_R^∞ f. Layer edges x_i
// (x_255 = R) follow from f(x_{i−1}) = f(x_i) + V/x_i. From them: the scale w_i of a 52-bit
// integer, the acceptance thresholds k_i and the densities f_i at the edges. NumPy ships
// these tables precomputed; recomputed here in double precision they agree with NumPy's to
// about 1e-14 (relative), so a normal draw agrees to that precision and the rare
// accept/reject boundary cases (probability ~1e-14 per draw) are the only other difference.
const ZIGGURAT_R = 3.6541528853610088;
const ZIGGURAT_INV_R = 0.27366123732975828;
const ZIGGURAT_V = 0.0049286732339746549;
const TWO52 = 4503599627370496;

function zigguratTables() {
  const ki = new Array(256);
  const wi = new Float64Array(256);
  const fi = new Float64Array(256);
  const density = (x) => Math.exp(-0.5 * x * x);
  let edge = ZIGGURAT_R;
  const q = ZIGGURAT_V / density(edge);
  ki[0] = BigInt(Math.floor((edge / q) * TWO52));
  ki[1] = 0n;
  wi[0] = q / TWO52;
  wi[255] = edge / TWO52;
  fi[0] = 1.0;
  fi[255] = density(edge);
  for (let i = 254; i >= 1; i--) {
    const inner = Math.sqrt(-2.0 * Math.log(ZIGGURAT_V / edge + density(edge)));
    ki[i + 1] = BigInt(Math.floor((inner / edge) * TWO52));
    edge = inner;
    fi[i] = density(edge);
    wi[i] = edge / TWO52;
  }
  return { ki, wi, fi };
}

let tables = null;

// --------------------------------------------------------------------------- the generator

/** NumPy's `np.random.default_rng(seed)`: PCG64 seeded through SeedSequence. */
export class Generator {
  constructor(seed = 0) {
    if (!Number.isInteger(seed) || seed < 0) {
      throw new RangeError(`seed must be an integer >= 0, got ${seed}`);
    }
    const [s0, s1, i0, i1] = seedSequenceState(seed, 4);
    const initState = (s0 << 64n) | s1;
    const initSeq = (i0 << 64n) | i1;
    this.inc = ((initSeq << 1n) | 1n) & MASK128;
    this.state = 0n;
    this.advance();
    this.state = (this.state + initState) & MASK128;
    this.advance();
  }

  /** An independent copy in the same state (the reference's `copy_rng`). */
  copy() {
    const twin = Object.create(Generator.prototype);
    twin.state = this.state;
    twin.inc = this.inc;
    return twin;
  }

  advance() {
    this.state = (this.state * PCG_MULTIPLIER + this.inc) & MASK128;
  }

  /** The next 64-bit output (XSL-RR of the advanced state), as a BigInt. */
  nextUint64() {
    this.advance();
    const s = this.state;
    const xored = ((s >> 64n) ^ s) & MASK64;
    const rot = s >> 122n;
    return ((xored >> rot) | (xored << ((64n - rot) & 63n))) & MASK64;
  }

  /** A uniform double in [0, 1) from the top 53 bits (`Generator.random()`). */
  nextDouble() {
    return Number(this.nextUint64() >> 11n) / 9007199254740992;
  }

  /** `n` uniform doubles in [0, 1) (`rng.random(n)`). */
  random(n) {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = this.nextDouble();
    return out;
  }

  /** One standard normal draw by NumPy's ziggurat. */
  nextNormal() {
    if (tables === null) tables = zigguratTables();
    const { ki, wi, fi } = tables;
    for (;;) {
      let r = this.nextUint64();
      const idx = Number(r & 0xffn);
      r >>= 8n;
      const sign = Number(r & 1n);
      const rabsBig = (r >> 1n) & 0xfffffffffffffn;
      const rabs = Number(rabsBig);
      let x = rabs * wi[idx];
      if (sign === 1) x = -x;
      if (rabsBig < ki[idx]) return x;
      if (idx === 0) {
        for (;;) {
          const xx = -ZIGGURAT_INV_R * Math.log1p(-this.nextDouble());
          const yy = -Math.log1p(-this.nextDouble());
          if (yy + yy > xx * xx) {
            return Number((rabsBig >> 8n) & 1n) === 1 ? -(ZIGGURAT_R + xx) : ZIGGURAT_R + xx;
          }
        }
      } else if ((fi[idx - 1] - fi[idx]) * this.nextDouble() + fi[idx] < Math.exp(-0.5 * x * x)) {
        return x;
      }
    }
  }

  /** `n` standard normal draws (`rng.standard_normal(n)`, filled in order). */
  standardNormal(n) {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = this.nextNormal();
    return out;
  }
}

export const _internal = { zigguratTables, MASK32 };
