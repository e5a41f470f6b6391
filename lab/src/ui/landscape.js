// The landscape behind the paths: values on a grid, filled contours (d3-contour) in a
// perceptually uniform colour map (viridis, d3-scale-chromatic), drawn once into an offscreen
// canvas per function and size, and a colour bar that says what the colours mean.

import { min, quantile } from "d3-array";
import { contours } from "d3-contour";
import { format } from "d3-format";
import { scaleLinear, scaleSequential } from "d3-scale";
import { interpolateViridis } from "d3-scale-chromatic";
import { fitCanvas } from "./canvas.js";

const LEVELS = 18;

/**
 * The landscape on a grid over the view: {values, nx, ny, colour, domain, log}. With `log`
 * the colours follow log10(f − fmin + δ), so that deep narrow valleys are not one colour; the
 * colour domain stops at the 95th percentile, so that a far wall does not wash out the rest.
 */
export function landscapeGrid(f, view, { log = false, resolution = 120 } = {}) {
  const [[xLo, xHi], [yLo, yHi]] = view.domain;
  const nx = resolution;
  const ny = Math.max(24, Math.min(260, Math.round((resolution * (yHi - yLo)) / (xHi - xLo))));
  const points = new Float64Array(2 * nx * ny);
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      // Row j = 0 is the top of the picture (largest y), as in an image.
      points[2 * (j * nx + i)] = xLo + ((i + 0.5) / nx) * (xHi - xLo);
      points[2 * (j * nx + i) + 1] = yHi - ((j + 0.5) / ny) * (yHi - yLo);
    }
  }
  const raw = f.value(points);
  const finite = Array.from(raw).filter(Number.isFinite);
  const floor = Number.isFinite(f.fmin) ? f.fmin : finite.length ? min(finite) : 0;
  const span = finite.length ? quantile(finite, 0.95) - floor : 1;
  const delta = Math.max(Math.abs(span) * 1e-6, 1e-12);
  const shown = log ? raw.map((v) => Math.log10(Math.max(v - floor, 0) + delta)) : raw;
  const good = Array.from(shown)
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  let lo = good.length ? good[0] : 0;
  let hi = good.length ? quantile(good, 0.95) : 1;
  if (!(hi > lo)) hi = lo + 1;
  // Non-finite values (a pole) take the top colour rather than punching holes in the picture.
  const values = shown.map((v) => (Number.isFinite(v) ? Math.min(v, hi) : hi));
  lo = Math.min(lo, hi);
  return {
    values,
    nx,
    ny,
    lo,
    hi,
    log,
    floor,
    delta,
    colour: scaleSequential(interpolateViridis).domain([lo, hi]),
  };
}

/** Draw the filled contours of `grid` into a new canvas of `view`'s size (× ratio). */
export function contourCanvas(grid, view, ratio = 1) {
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(view.width * ratio);
  canvas.height = Math.round(view.height * ratio);
  const ctx = canvas.getContext("2d");
  const thresholds = scaleLinear().domain([grid.lo, grid.hi]).ticks(LEVELS);
  const bands = contours().size([grid.nx, grid.ny]).thresholds(thresholds)(grid.values);
  ctx.scale(canvas.width / grid.nx, canvas.height / grid.ny);
  ctx.fillStyle = grid.colour(grid.lo);
  ctx.fillRect(0, 0, grid.nx, grid.ny);
  for (const band of bands) {
    ctx.fillStyle = grid.colour(band.value);
    ctx.beginPath();
    for (const polygon of band.coordinates) {
      for (const ring of polygon) {
        ring.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
        ctx.closePath();
      }
    }
    ctx.fill();
  }
  return canvas;
}

/** What a colour-bar value means, as text: f itself, or f − fmin on the log scale. */
export function colourLabel(grid, value) {
  const short = format(".2~g");
  if (!grid.log) return short(value);
  return short(10 ** value - grid.delta);
}

/**
 * A vertical colour bar into `canvas` (CSS size width × height): the colour map from the grid's
 * lowest (bottom) to highest (top) value, with about five labelled ticks.
 */
export function drawColourBar(canvas, grid, height, ink) {
  const width = 66;
  const ctx = fitCanvas(canvas, width, height);
  const top = 8;
  const bottom = height - 8;
  const y = scaleLinear().domain([grid.lo, grid.hi]).range([bottom, top]);
  for (let py = top; py <= bottom; py++) {
    ctx.fillStyle = grid.colour(y.invert(py));
    ctx.fillRect(0, py, 12, 1.5);
  }
  ctx.strokeStyle = ink;
  ctx.strokeRect(0.5, top - 0.5, 12, bottom - top + 1);
  ctx.fillStyle = ink;
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  for (const tick of y.ticks(5)) {
    ctx.fillRect(12, y(tick), 4, 1);
    ctx.fillText(colourLabel(grid, tick), 18, y(tick));
  }
}
