// Basins of attraction: which minimum does an optimizer reach from each start point? The
// browser twin of sampy/basins.py: a grid of start points moves in one batched run, and each
// end point is classified as the nearest reference minimum within `tol` (an index), NONE (−1:
// near none of them) or DIVERGED (−2). For a function without known minima the basins are
// found by clustering the end points, lowest loss first, as the reference does.
//
// `basinMaps` runs the optimizers a few steps at a time (Runner.advance) and yields between
// slices, so that a 100 × 100 map never blocks the page for more than a frame or two.

import { Runner } from "./run.js";

export const NONE = -1;
export const DIVERGED = -2;
export const MAX_BASINS = 10;
export const MIN_BASIN_FRACTION = 0.005;

/** NumPy's linspace: i·step + lo, the last point exactly hi. */
export function linspace(lo, hi, n) {
  const out = new Float64Array(n);
  const step = (hi - lo) / (n - 1);
  for (let i = 0; i < n; i++) out[i] = i * step + lo;
  if (n > 1) out[n - 1] = hi;
  return out;
}

/** {xs, ys, starts}: nx × ny evenly spaced points, row j holding one y (image layout). */
export function startGrid([nx, ny], [[xLo, xHi], [yLo, yHi]]) {
  const xs = linspace(xLo, xHi, nx);
  const ys = linspace(yLo, yHi, ny);
  const starts = new Float64Array(2 * nx * ny);
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      starts[2 * (j * nx + i)] = xs[i];
      starts[2 * (j * nx + i) + 1] = ys[j];
    }
  }
  return { xs, ys, starts };
}

/** 5% of the box's diagonal: the distance within which an end point is "at" a minimum. */
export function defaultTolerance([[xLo, xHi], [yLo, yHi]]) {
  return 0.05 * Math.sqrt((xHi - xLo) ** 2 + (yHi - yLo) ** 2);
}

/** The basin index of every end point (nearest minimum within tol, NONE or DIVERGED). */
export function classify(final, divergedAt, minima, tol) {
  const n = final.length / 2;
  const basin = new Int32Array(n).fill(NONE);
  for (let i = 0; i < n; i++) {
    const x = final[2 * i];
    const y = final[2 * i + 1];
    if (divergedAt[i] >= 0 || !Number.isFinite(x) || !Number.isFinite(y)) {
      basin[i] = DIVERGED;
      continue;
    }
    let best = -1;
    let bestDistance = Infinity;
    minima.forEach(([mx, my], k) => {
      const distance = Math.sqrt((x - mx) ** 2 + (y - my) ** 2);
      if (distance < bestDistance) {
        best = k;
        bestDistance = distance;
      }
    });
    if (best >= 0 && bestDistance <= tol) basin[i] = best;
  }
  return basin;
}

/**
 * Basin centres found from end points (for a function without known minima): the lowest end
 * point not yet taken becomes a centre and takes every end point within tol; a group smaller
 * than MIN_BASIN_FRACTION of the points (at least 2) is a run still on its way, no basin.
 */
export function clusterMinima(f, finals, tol, maxBasins = MAX_BASINS) {
  const points = [];
  for (const final of finals) {
    for (let i = 0; i < final.length; i += 2) {
      if (Number.isFinite(final[i]) && Number.isFinite(final[i + 1])) points.push([final[i], final[i + 1]]);
    }
  }
  const losses = f.value(Float64Array.from(points.flat()));
  const kept = points.map((p, i) => [p, losses[i], i]).filter(([, loss]) => Number.isFinite(loss));
  kept.sort((a, b) => a[1] - b[1] || a[2] - b[2]); // stable, as NumPy's kind="stable"
  const free = new Uint8Array(kept.length).fill(1);
  const smallest = Math.max(2, Math.ceil(MIN_BASIN_FRACTION * kept.length));
  const centres = [];
  let first = 0;
  while (centres.length < maxBasins) {
    while (first < kept.length && !free[first]) first += 1;
    if (first >= kept.length) break;
    const [cx, cy] = kept[first][0];
    let members = 0;
    for (let i = first; i < kept.length; i++) {
      if (!free[i]) continue;
      const [x, y] = kept[i][0];
      if (Math.sqrt((x - cx) ** 2 + (y - cy) ** 2) <= tol) {
        free[i] = 0;
        members += 1;
      }
    }
    if (members >= smallest) centres.push([cx, cy]);
  }
  return centres;
}

/** Fractions of start points per basin, then "none" and "diverged" (sums to 1). */
export function fractions(basin, k) {
  const counts = new Array(k + 2).fill(0);
  for (const b of basin) counts[b >= 0 ? b : b === NONE ? k : k + 1] += 1;
  return counts.map((c) => c / basin.length);
}

function nextTick() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Basin maps of several optimizers on the same grid, with the same basins (so a basin has one
 * index, and one colour, in every map). Async: work is cut into slices of about `sliceMs`
 * milliseconds; `onProgress(fraction)` is called between slices, and `signal.aborted` (an
 * AbortController's signal) stops the work (the promise then resolves to null).
 *
 * `minima`/`labels`: the reference minima (e.g. the function's); empty → clustered.
 */
export async function basinMaps(
  optimizers,
  f,
  {
    grid = [100, 100],
    steps = 300,
    bounds = f.domain,
    tol = defaultTolerance(bounds),
    minima = f.minima,
    labels = f.minimaLabels,
    sliceMs = 12,
    onProgress = () => {},
    signal = null,
  } = {},
) {
  const { xs, ys, starts } = startGrid(grid, bounds);
  const runners = optimizers.map((opt) => new Runner(opt, f, starts, steps, { keepPath: false }));
  for (const runner of runners) {
    // Each optimizer learns its own cost per step: a slice of about sliceMs, starting at one
    // step (a SAM step costs twice an SGD step; LookSAM's steps differ from one to the next).
    let slice = 1;
    while (!runner.done) {
      if (signal !== null && signal.aborted) return null;
      const begin = performance.now();
      const before = runner.taken;
      runner.advance(slice);
      const perStep = Math.max(performance.now() - begin, 0.01) / Math.max(1, runner.taken - before);
      slice = Math.max(1, Math.min(2 * slice, Math.floor(sliceMs / perStep)));
      const done = runners.reduce((sum, r) => sum + r.taken, 0) / (steps * runners.length);
      onProgress(done);
      await nextTick();
    }
  }
  let centres = minima;
  let names = labels;
  const clustered = minima.length === 0;
  if (clustered) {
    const live = runners.map((r) => r.current.filter((_, i) => r.divergedAt[(i / 2) | 0] < 0));
    centres = clusterMinima(f, live, tol);
    names = centres.map(([x, y]) => `≈(${x.toPrecision(3)}, ${y.toPrecision(3)})`);
  } else if (names.length !== minima.length) {
    names = minima.map(([x, y]) => `(${Number(x.toPrecision(3))}, ${Number(y.toPrecision(3))})`);
  }
  return runners.map((runner) => ({
    xs,
    ys,
    grid,
    steps,
    tol,
    minima: centres,
    labels: names,
    clustered,
    final: runner.current,
    basin: classify(runner.current, runner.divergedAt, centres, tol),
  }));
}
