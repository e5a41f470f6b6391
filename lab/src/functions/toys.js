// Toy landscapes built to show what SAM does: the browser twin of sampy/functions/toys.py.

import { DIM, TestFunction, pointwise, pointwiseGrad, realParam, register } from "./_base.js";

// Critical point of f(x, 0) = −exp(−(x−2)²) − exp(−x²) near the origin (Newton-refined in
// the reference); the flat minimum is its mirror image x ↦ 2 − x.
const SHARP_X = 0.04249597592273126;

register("sharp_flat", (params) => {
  const s = realParam(params, "sharpness", 100.0, { low: 0, lowOpen: true });
  const value = pointwise((u, v) => {
    const shift = u - 2.0;
    return -Math.exp(-(shift * shift) - v * v) - Math.exp(-(u * u + s * (v * v)));
  });
  const minima = [
    [SHARP_X, 0.0],
    [2.0 - SHARP_X, 0.0],
  ];
  return new TestFunction({
    name: "sharp_flat",
    value,
    grad: pointwiseGrad((u, v, out, k) => {
      const shift = u - 2.0;
      const flat = Math.exp(-(shift * shift) - v * v);
      const sharp = Math.exp(-(u * u + s * v * v));
      out[k] = 2.0 * shift * flat + 2.0 * u * sharp;
      out[k + 1] = 2.0 * v * flat + 2.0 * s * v * sharp;
    }),
    domain: [
      [-1.0, 3.0],
      [-1.0, 1.0],
    ],
    minima,
    fmin: value(Float64Array.from(minima[0]))[0],
    minimaLabels: ["sharp", "flat"],
    params: { sharpness: s },
  });
});

// --------------------------------------------------------------------------- two round wells

const SHARP_CENTRE = [-1.0, 0.0];
const FLAT_CENTRE = [1.5, 0.0];

function positiveFinite(params, name, fallback) {
  return realParam(params, name, fallback, { low: 0, high: Infinity, lowOpen: true, highOpen: true });
}

function wells(dS, dF, wS, wF) {
  const wS2 = wS * wS;
  const wF2 = wF * wF;
  const value = pointwise((u, v) => {
    const sx = u - SHARP_CENTRE[0];
    const fx = u - FLAT_CENTRE[0];
    const rS = sx * sx + v * v;
    const rF = fx * fx + v * v;
    return -dS * Math.exp(-rS / wS2) - dF * Math.exp(-rF / wF2);
  });
  const gradAt = (u, v, out, k) => {
    const sx = u - SHARP_CENTRE[0];
    const fx = u - FLAT_CENTRE[0];
    const aS = dS * Math.exp(-(sx * sx + v * v) / wS2);
    const aF = dF * Math.exp(-(fx * fx + v * v) / wF2);
    const cS = (2.0 * aS) / wS2;
    const cF = (2.0 * aF) / wF2;
    out[k] = cS * sx + cF * fx;
    out[k + 1] = cS * v + cF * v;
  };
  // ∂²f/∂x² and ∂²f/∂y² on the x-axis (the Hessian is diagonal there).
  const curvatures = (u) => {
    const sx = u - SHARP_CENTRE[0];
    const fx = u - FLAT_CENTRE[0];
    const aS = dS * Math.exp(-(sx * sx) / wS2);
    const aF = dF * Math.exp(-(fx * fx) / wF2);
    const yy = (2.0 * aS) / wS2 + (2.0 * aF) / wF2;
    const xx =
      ((2.0 * aS) / wS2) * (1.0 - (2.0 * sx * sx) / wS2) + ((2.0 * aF) / wF2) * (1.0 - (2.0 * fx * fx) / wF2);
    return [xx, yy];
  };
  return { value, grad: pointwiseGrad(gradAt), gradAt, curvatures };
}

function linspace(lo, hi, n) {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + ((hi - lo) * i) / (n - 1);
  return out;
}

/**
 * Every local minimum of `sharp_flat_wells`: {points, labels, values}, as
 * sampy.functions.toys.sharp_flat_wells_minima. The minima lie on the x-axis; each sign
 * change (− to +) of ∂f/∂x on a grid is refined by Newton's method safeguarded by bisection.
 */
export function sharpFlatWellsMinima(params = {}) {
  const dS = positiveFinite(params, "depth_sharp", 1.0);
  const dF = positiveFinite(params, "depth_flat", 1.0);
  const wS = positiveFinite(params, "width_sharp", 0.1);
  const wF = positiveFinite(params, "width_flat", 1.0);
  const { value, gradAt, curvatures } = wells(dS, dF, wS, wF);
  const lo0 = SHARP_CENTRE[0];
  const hi0 = FLAT_CENTRE[0];
  const scratch = new Float64Array(2);
  const slope = (u) => {
    gradAt(u, 0.0, scratch, 0);
    return scratch[0];
  };
  const candidates = [
    ...linspace(lo0, hi0, 2001),
    ...linspace(-1.0, 8.0, 901).map((t) => lo0 + wS * t),
    ...linspace(-1.0, 8.0, 901).map((t) => hi0 - wF * t),
  ].map((u) => Math.min(Math.max(u, lo0 - wS), hi0 + wF));
  const grid = [...new Set(candidates)].sort((p, q) => p - q);
  const signs = grid.map((u) => Math.sign(slope(u)));
  const points = [];
  for (let i = 1; i < grid.length - 1; i++) {
    const falls = signs[i] < 0;
    const lands = signs[i] === 0 && signs[i - 1] < 0;
    if (!((falls || lands) && signs[i + 1] > 0)) continue;
    let lo = grid[i];
    let hi = grid[i + 1];
    let u = signs[i] === 0 ? lo : 0.5 * (lo + hi);
    for (let iteration = 0; iteration < 200; iteration++) {
      const g = slope(u);
      if (g === 0.0) break;
      if (g < 0) lo = u;
      else hi = u;
      const curvature = curvatures(u)[0];
      const step = curvature > 0 ? g / curvature : Infinity;
      let next = u - step;
      if (next === u) break;
      if (!(lo <= next && next <= hi)) {
        next = 0.5 * (lo + hi);
        if (next === u || next === lo || next === hi) break;
      }
      u = next;
    }
    const [xx, yy] = curvatures(u);
    if (Math.min(xx, yy) > 0) points.push([u, 0.0]);
  }
  let labels;
  if (points.length === 2) {
    labels = ["sharp", "flat"];
  } else {
    const u = points[0][0];
    labels = [Math.abs(u - lo0) / wS <= Math.abs(u - hi0) / wF ? "sharp" : "flat"];
  }
  const values = Array.from(value(Float64Array.from(points.flat())));
  return { points, labels, values };
}

register("sharp_flat_wells", (params) => {
  const dS = positiveFinite(params, "depth_sharp", 1.0);
  const dF = positiveFinite(params, "depth_flat", 1.0);
  const wS = positiveFinite(params, "width_sharp", 0.1);
  const wF = positiveFinite(params, "width_flat", 1.0);
  const { points, labels, values } = sharpFlatWellsMinima(params);
  const { value, grad } = wells(dS, dF, wS, wF);
  const fmin = Math.min(...values);
  const keep = values.map((v) => v <= fmin + 1e-13);
  const reach = Math.max(2.0, 2.0 * wS, 2.0 * wF);
  return new TestFunction({
    name: "sharp_flat_wells",
    value,
    grad,
    domain: [
      [SHARP_CENTRE[0] - Math.max(1.0, 2.0 * wS), FLAT_CENTRE[0] + Math.max(2.0, 2.0 * wF)],
      [-reach, reach],
    ],
    minima: points.filter((_, i) => keep[i]),
    fmin,
    minimaLabels: labels.filter((_, i) => keep[i]),
    params: { depth_sharp: dS, depth_flat: dF, width_sharp: wS, width_flat: wF },
  });
});

export { DIM };
