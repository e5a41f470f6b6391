// Classic optimisation test functions in 2-D: the browser twin of sampy/functions/classic.py
// (same formulas, same operation order, so the two agree to the last bits where the
// elementary functions do). Formulas and domains after Surjanovic & Bingham's Virtual Library
// of Simulation Experiments and Jamil & Yang, Int. J. Math. Modelling and Numerical
// Optimisation 4(2), 2013.

import { TestFunction, pointwise, pointwiseGrad, realParam, register } from "./_base.js";

function checkDim(params) {
  if (params.dim !== undefined && params.dim !== 2) {
    throw new RangeError(`dim must be 2 in the browser laboratory, got ${params.dim}`);
  }
}

register("sphere", (params) => {
  checkDim(params);
  return new TestFunction({
    name: "sphere",
    value: pointwise((u, v) => u * u + v * v),
    grad: pointwiseGrad((u, v, out, k) => {
      out[k] = 2.0 * u;
      out[k + 1] = 2.0 * v;
    }),
    domain: [
      [-2.0, 2.0],
      [-2.0, 2.0],
    ],
    minima: [[0.0, 0.0]],
    fmin: 0.0,
    params: { dim: 2 },
  });
});

register("quadratic", (params) => {
  const A =
    params.A === undefined
      ? [
          [1.0, 0.0],
          [0.0, 10.0],
        ]
      : params.A;
  const b = params.b === undefined ? [0.0, 0.0] : params.b;
  if (!Array.isArray(A) || A.length !== 2 || !A.every((row) => Array.isArray(row) && row.length === 2)) {
    throw new RangeError("A must be a 2 × 2 matrix in the browser laboratory");
  }
  if (!Array.isArray(b) || b.length !== 2) throw new RangeError("b must have shape (2,) to match A");
  const tol = 1e-12 * Math.max(1.0, ...A.flat().map(Math.abs));
  if (Math.abs(A[0][1] - A[1][0]) > tol) {
    throw new RangeError("A must be symmetric positive definite; it is not symmetric");
  }
  const off = 0.5 * (A[0][1] + A[1][0]);
  const [a00, a11] = [A[0][0], A[1][1]];
  const det = a00 * a11 - off * off;
  if (!(a00 > 0 && det > 0)) {
    throw new RangeError("A must be symmetric positive definite; it has an eigenvalue <= 0");
  }
  const [b0, b1] = b;
  const star = [(a11 * b0 - off * b1) / det, (a00 * b1 - off * b0) / det];
  const half = Math.max(2.0, 2.0 * Math.max(Math.abs(star[0]), Math.abs(star[1])));
  return new TestFunction({
    name: "quadratic",
    // ½ Σ x ⊙ (x A) − x·b, the reference's order of operations.
    value: pointwise((u, v) => 0.5 * (u * (u * a00 + v * off) + v * (u * off + v * a11)) - (u * b0 + v * b1)),
    grad: pointwiseGrad((u, v, out, k) => {
      out[k] = u * a00 + v * off - b0;
      out[k + 1] = u * off + v * a11 - b1;
    }),
    domain: star.map((c) => [c - half, c + half]),
    minima: [star],
    fmin: -0.5 * (b0 * star[0] + b1 * star[1]),
    params: {
      A: [
        [a00, off],
        [off, a11],
      ],
      b: [b0, b1],
    },
  });
});

register("rosenbrock", (params) => {
  checkDim(params);
  const b = realParam(params, "b", 100.0, { low: 0, lowOpen: true });
  const a = realParam(params, "a", 1.0);
  return new TestFunction({
    name: "rosenbrock",
    value: pointwise((u, v) => {
      const valley = v - u * u;
      const miss = a - u;
      return b * (valley * valley) + miss * miss;
    }),
    grad: pointwiseGrad((u, v, out, k) => {
      const valley = v - u * u;
      out[k] = -4.0 * b * u * valley - 2.0 * (a - u);
      out[k + 1] = 2.0 * b * valley;
    }),
    domain: [
      [a - 3.0, a + 1.0],
      [a * a - 2.0, a * a + 2.0],
    ],
    minima: [[a, a * a]],
    fmin: 0.0,
    params: { dim: 2, a, b },
  });
});

const TWO_PI = 2.0 * Math.PI;

register("rastrigin", (params) => {
  checkDim(params);
  const A = realParam(params, "A", 10.0, { low: 0 });
  const scale = A * TWO_PI;
  return new TestFunction({
    name: "rastrigin",
    value: pointwise(
      (u, v) => A * 2 + (u * u - A * Math.cos(TWO_PI * u) + (v * v - A * Math.cos(TWO_PI * v))),
    ),
    grad: pointwiseGrad((u, v, out, k) => {
      out[k] = 2.0 * u + scale * Math.sin(TWO_PI * u);
      out[k + 1] = 2.0 * v + scale * Math.sin(TWO_PI * v);
    }),
    domain: [
      [-5.12, 5.12],
      [-5.12, 5.12],
    ],
    minima: [[0.0, 0.0]],
    fmin: 0.0,
    params: { dim: 2, A },
  });
});

register("ackley", (params) => {
  checkDim(params);
  const a = realParam(params, "a", 20.0);
  const b = realParam(params, "b", 0.2, { low: 0, lowOpen: true });
  const c = realParam(params, "c", 2 * Math.PI);
  const d = 2;
  return new TestFunction({
    name: "ackley",
    value: pointwise((u, v) => {
      const meanSquare = (u * u + v * v) / d;
      const radius = meanSquare > 0 ? Math.sqrt(meanSquare) : 0.0;
      const waves = (Math.cos(c * u) + Math.cos(c * v)) / d;
      return -a * Math.exp(-b * radius) - Math.exp(waves) + a + Math.E;
    }),
    grad: pointwiseGrad((u, v, out, k) => {
      const radius = Math.sqrt((u * u + v * v) / d);
      const cone = a * Math.exp(-b * radius);
      const waves = Math.exp((Math.cos(c * u) + Math.cos(c * v)) / d);
      // The cone tip has the subgradient 0, as the reference.
      const radial = radius > 0 ? (cone * b) / (d * radius) : 0.0;
      const ripple = (waves * c) / d;
      out[k] = radial * u + ripple * Math.sin(c * u);
      out[k + 1] = radial * v + ripple * Math.sin(c * v);
    }),
    domain: [
      [-5.0, 5.0],
      [-5.0, 5.0],
    ],
    minima: [[0.0, 0.0]],
    fmin: 0.0,
    params: { dim: 2, a, b, c },
  });
});

// Newton-refined roots of the gradient, as in the reference (|∇f| < 1e-13).
const HIMMELBLAU_MINIMA = [
  [3.0, 2.0],
  [-2.805118086952745, 3.131312518250573],
  [-3.779310253377747, -3.28318599128617],
  [3.584428340330492, -1.848126526964404],
];

register(
  "himmelblau",
  () =>
    new TestFunction({
      name: "himmelblau",
      value: pointwise((u, v) => {
        const r1 = u * u + v - 11.0;
        const r2 = u + v * v - 7.0;
        return r1 * r1 + r2 * r2;
      }),
      grad: pointwiseGrad((u, v, out, k) => {
        const r1 = u * u + v - 11.0;
        const r2 = u + v * v - 7.0;
        out[k] = 4.0 * u * r1 + 2.0 * r2;
        out[k + 1] = 2.0 * r1 + 4.0 * v * r2;
      }),
      domain: [
        [-5.0, 5.0],
        [-5.0, 5.0],
      ],
      minima: HIMMELBLAU_MINIMA.map((m) => [...m]),
      fmin: 0.0,
    }),
);
