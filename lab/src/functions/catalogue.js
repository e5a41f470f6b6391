// More 2-D test functions: an ill-conditioned quadratic and the usual benchmarks. The browser
// twin of sampy/functions/catalogue.py (formulas after the Virtual Library of Simulation
// Experiments and Jamil & Yang 2013; minimisers without a closed form as the reference
// hard-codes them).

import { TestFunction, pointwise, pointwiseGrad, realParam, register } from "./_base.js";
import { pow } from "../float.js";

const D2L_LAMBDAS = [0.2, 4.0];

register("ill_conditioned", (params) => {
  if (params.lambdas !== undefined && params.condition !== undefined) {
    throw new RangeError("give lambdas or condition, not both (condition means λ = (4/κ, 4))");
  }
  let lam;
  if (params.condition !== undefined) {
    const kappa = realParam(params, "condition", 1.0, { low: 1.0, high: Infinity, highOpen: true });
    lam = [D2L_LAMBDAS[1] / kappa, D2L_LAMBDAS[1]];
  } else {
    lam = params.lambdas === undefined ? [...D2L_LAMBDAS] : params.lambdas;
    if (!Array.isArray(lam) || lam.length !== 2) {
      throw new RangeError("lambdas must be two positive numbers in the browser laboratory");
    }
    lam.forEach((value, i) =>
      realParam({ [`lambdas[${i}]`]: value }, `lambdas[${i}]`, 1.0, {
        low: 0,
        high: Infinity,
        lowOpen: true,
        highOpen: true,
      }),
    );
  }
  const [l0, l1] = lam;
  const flattest = l1 < l0 ? 1 : 0;
  const kappa = Math.max(l0, l1) / Math.min(l0, l1);
  return new TestFunction({
    name: "ill_conditioned",
    value: pointwise((u, v) => 0.5 * (l0 * (u * u) + l1 * (v * v))),
    grad: pointwiseGrad((u, v, out, k) => {
      out[k] = l0 * u;
      out[k + 1] = l1 * v;
    }),
    domain: [0, 1].map((i) => (i === flattest ? [-5.5, 5.5] : [-3.0, 3.0])),
    minima: [[0.0, 0.0]],
    fmin: 0.0,
    params: { lambdas: [l0, l1] },
  });
});

const BEALE = [1.5, 2.25, 2.625];

register(
  "beale",
  () =>
    new TestFunction({
      name: "beale",
      value: pointwise((u, v) => {
        const r1 = BEALE[0] - u + u * v;
        const r2 = BEALE[1] - u + u * (v * v);
        const r3 = BEALE[2] - u + u * pow(v, 3);
        return r1 * r1 + r2 * r2 + r3 * r3;
      }),
      grad: pointwiseGrad((u, v, out, k) => {
        let gx = 0.0;
        let gy = 0.0;
        let power = 1.0; // v^(k−1)
        for (let j = 1; j <= 3; j++) {
          const residual = BEALE[j - 1] - u + u * power * v;
          gx += 2.0 * residual * (power * v - 1.0);
          gy += 2.0 * residual * (j * u * power);
          power = power * v;
        }
        out[k] = gx;
        out[k + 1] = gy;
      }),
      domain: [
        [-4.5, 4.5],
        [-4.5, 4.5],
      ],
      minima: [[3.0, 0.5]],
      fmin: 0.0,
    }),
);

register(
  "booth",
  () =>
    new TestFunction({
      name: "booth",
      value: pointwise((u, v) => {
        const r1 = u + 2.0 * v - 7.0;
        const r2 = 2.0 * u + v - 5.0;
        return r1 * r1 + r2 * r2;
      }),
      grad: pointwiseGrad((u, v, out, k) => {
        const r1 = u + 2.0 * v - 7.0;
        const r2 = 2.0 * u + v - 5.0;
        out[k] = 2.0 * r1 + 4.0 * r2;
        out[k + 1] = 4.0 * r1 + 2.0 * r2;
      }),
      domain: [
        [-10.0, 10.0],
        [-10.0, 10.0],
      ],
      minima: [[1.0, 3.0]],
      fmin: 0.0,
    }),
);

register(
  "matyas",
  () =>
    new TestFunction({
      name: "matyas",
      value: pointwise((u, v) => 0.26 * (u * u + v * v) - 0.48 * u * v),
      grad: pointwiseGrad((u, v, out, k) => {
        out[k] = 0.52 * u - 0.48 * v;
        out[k + 1] = 0.52 * v - 0.48 * u;
      }),
      domain: [
        [-10.0, 10.0],
        [-10.0, 10.0],
      ],
      minima: [[0.0, 0.0]],
      fmin: 0.0,
    }),
);

register(
  "three_hump_camel",
  () =>
    new TestFunction({
      name: "three_hump_camel",
      value: pointwise((u, v) => 2.0 * (u * u) - 1.05 * pow(u, 4) + pow(u, 6) / 6.0 + u * v + v * v),
      grad: pointwiseGrad((u, v, out, k) => {
        out[k] = 4.0 * u - 4.2 * pow(u, 3) + pow(u, 5) + v;
        out[k + 1] = u + 2.0 * v;
      }),
      domain: [
        [-5.0, 5.0],
        [-5.0, 5.0],
      ],
      minima: [[0.0, 0.0]],
      fmin: 0.0,
    }),
);

// Root of the gradient by mpmath at 40 digits, rounded to doubles (as the reference).
const SIX_HUMP_MINIMUM = [0.08984201310031806, -0.7126564030207396];
const SIX_HUMP_FMIN = -1.0316284534898774;

register(
  "six_hump_camel",
  () =>
    new TestFunction({
      name: "six_hump_camel",
      value: pointwise(
        (u, v) =>
          (4.0 - 2.1 * (u * u) + pow(u, 4) / 3.0) * (u * u) + u * v + (-4.0 + 4.0 * (v * v)) * (v * v),
      ),
      grad: pointwiseGrad((u, v, out, k) => {
        out[k] = 8.0 * u - 8.4 * pow(u, 3) + 2.0 * pow(u, 5) + v;
        out[k + 1] = u - 8.0 * v + 16.0 * pow(v, 3);
      }),
      domain: [
        [-3.0, 3.0],
        [-2.0, 2.0],
      ],
      minima: [[...SIX_HUMP_MINIMUM], SIX_HUMP_MINIMUM.map((c) => -c)],
      fmin: SIX_HUMP_FMIN,
    }),
);

register(
  "goldstein_price",
  () =>
    new TestFunction({
      name: "goldstein_price",
      value: pointwise((u, v) => {
        const s = u + v + 1.0;
        const t = 2.0 * u - 3.0 * v;
        const p = 19.0 - 14.0 * u + 3.0 * (u * u) - 14.0 * v + 6.0 * u * v + 3.0 * (v * v);
        const q = 18.0 - 32.0 * u + 12.0 * (u * u) + 48.0 * v - 36.0 * u * v + 27.0 * (v * v);
        return (1.0 + s * s * p) * (30.0 + t * t * q);
      }),
      grad: pointwiseGrad((u, v, out, k) => {
        const s = u + v + 1.0;
        const t = 2.0 * u - 3.0 * v;
        const p = 19.0 - 14.0 * u + 3.0 * u * u - 14.0 * v + 6.0 * u * v + 3.0 * v * v;
        const q = 18.0 - 32.0 * u + 12.0 * u * u + 48.0 * v - 36.0 * u * v + 27.0 * v * v;
        const a = 1.0 + s * s * p;
        const b = 30.0 + t * t * q;
        const da = 2.0 * s * p + s * s * (-14.0 + 6.0 * u + 6.0 * v);
        const dbU = 4.0 * t * q + t * t * (-32.0 + 24.0 * u - 36.0 * v);
        const dbV = -6.0 * t * q + t * t * (48.0 - 36.0 * u + 54.0 * v);
        out[k] = da * b + a * dbU;
        out[k + 1] = da * b + a * dbV;
      }),
      domain: [
        [-2.0, 2.0],
        [-2.0, 2.0],
      ],
      minima: [[0.0, -1.0]],
      fmin: 3.0,
    }),
);

// Smallest root of 4x³ − 32x + 5 by mpmath at 40 digits, and the half-value there.
const STYBLINSKI_TANG_X = -2.903534027771177;
const STYBLINSKI_TANG_F1 = -39.166165703771415;

register("styblinski_tang", (params) => {
  if (params.dim !== undefined && params.dim !== 2) {
    throw new RangeError(`dim must be 2 in the browser laboratory, got ${params.dim}`);
  }
  const term = (c) => pow(c, 4) - 16.0 * (c * c) + 5.0 * c;
  return new TestFunction({
    name: "styblinski_tang",
    value: pointwise((u, v) => 0.5 * (term(u) + term(v))),
    grad: pointwiseGrad((u, v, out, k) => {
      out[k] = 2.0 * pow(u, 3) - 16.0 * u + 2.5;
      out[k + 1] = 2.0 * pow(v, 3) - 16.0 * v + 2.5;
    }),
    domain: [
      [-5.0, 5.0],
      [-5.0, 5.0],
    ],
    minima: [[STYBLINSKI_TANG_X, STYBLINSKI_TANG_X]],
    fmin: 2 * STYBLINSKI_TANG_F1,
    params: { dim: 2 },
  });
});

const PI = Math.PI;

register("levy", (params) => {
  if (params.dim !== undefined && params.dim !== 2) {
    throw new RangeError(`dim must be 2 in the browser laboratory, got ${params.dim}`);
  }
  return new TestFunction({
    name: "levy",
    value: pointwise((u, v) => {
      const w0 = 1.0 + (u - 1.0) / 4.0;
      const w1 = 1.0 + (v - 1.0) / 4.0;
      const s0 = Math.sin(PI * w0);
      const s1 = Math.sin(2.0 * PI * w1);
      const s2 = Math.sin(PI * w0 + 1.0);
      let out = s0 * s0;
      out = out + (w1 - 1.0) * (w1 - 1.0) * (1.0 + s1 * s1);
      return out + (w0 - 1.0) * (w0 - 1.0) * (1.0 + 10.0 * (s2 * s2));
    }),
    grad: pointwiseGrad((u, v, out, k) => {
      const w0 = 1.0 + (u - 1.0) / 4.0;
      const w1 = 1.0 + (v - 1.0) / 4.0;
      let d0 = PI * Math.sin(2.0 * PI * w0);
      const s2 = Math.sin(PI * w0 + 1.0);
      d0 +=
        2.0 * (w0 - 1.0) * (1.0 + 10.0 * (s2 * s2)) +
        (w0 - 1.0) * (w0 - 1.0) * (10.0 * PI * Math.sin(2.0 * (PI * w0 + 1.0)));
      const s1 = Math.sin(2.0 * PI * w1);
      const d1 =
        0.0 +
        (2.0 * (w1 - 1.0) * (1.0 + s1 * s1) + (w1 - 1.0) * (w1 - 1.0) * (2.0 * PI * Math.sin(4.0 * PI * w1)));
      out[k] = d0 / 4.0;
      out[k + 1] = d1 / 4.0;
    }),
    domain: [
      [-10.0, 10.0],
      [-10.0, 10.0],
    ],
    minima: [[1.0, 1.0]],
    fmin: 0.0,
    params: { dim: 2 },
  });
});

register("griewank", (params) => {
  if (params.dim !== undefined && params.dim !== 2) {
    throw new RangeError(`dim must be 2 in the browser laboratory, got ${params.dim}`);
  }
  const scale = [Math.sqrt(1.0), Math.sqrt(2.0)];
  return new TestFunction({
    name: "griewank",
    value: pointwise(
      (u, v) => (u * u + v * v) / 4000.0 - Math.cos(u / scale[0]) * Math.cos(v / scale[1]) + 1.0,
    ),
    grad: pointwiseGrad((u, v, out, k) => {
      const z0 = u / scale[0];
      const z1 = v / scale[1];
      const c0 = Math.cos(z0);
      const c1 = Math.cos(z1);
      // Product of the other cosines: prefix (1, c0) times suffix (c1, 1), as the reference.
      out[k] = u / 2000.0 + (Math.sin(z0) / scale[0]) * 1.0 * c1;
      out[k + 1] = v / 2000.0 + (Math.sin(z1) / scale[1]) * c0 * 1.0;
    }),
    domain: [
      [-10.0, 10.0],
      [-10.0, 10.0],
    ],
    minima: [[0.0, 0.0]],
    fmin: 0.0,
    params: { dim: 2 },
  });
});
