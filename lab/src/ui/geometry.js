// What the figures draw besides the paths, as plain numbers: the ρ-ball's outline, the
// ascent steps a run really took, and the view box with equal scales on both axes. The
// browser twin of the overlay data in sampy/playground/compute.py.

/**
 * The boundary of {c + ε : ‖ε‖_p ≤ ρ} (ASAM: ‖ε / (|c| + η)‖_p ≤ ρ) as n points [x, y].
 * p = ∞ is the square; p = 1 the diamond.
 */
export function ballOutline([cx, cy], rho, p = 2, adaptive = false, eta = 0, n = 121) {
  const out = [];
  for (let k = 0; k < n; k++) {
    const t = (2 * Math.PI * k) / (n - 1);
    const u = [Math.cos(t), Math.sin(t)];
    const norm =
      p === Infinity
        ? Math.max(Math.abs(u[0]), Math.abs(u[1]))
        : (Math.abs(u[0]) ** p + Math.abs(u[1]) ** p) ** (1 / p);
    let ex = (rho * u[0]) / norm;
    let ey = (rho * u[1]) / norm;
    if (adaptive) {
      ex *= Math.abs(cx) + eta;
      ey *= Math.abs(cy) + eta;
    }
    out.push([cx + ex, cy + ey]);
  }
  return out;
}

/**
 * The ball a variant's ρ is the radius of: {rho, p, adaptive, eta}, or null without a ρ.
 * A variant without p or adaptive (USAM, Fisher SAM, …) gets the Euclidean ball.
 */
export function ballShape(row, hyperparameters) {
  const merged = { ...(row === null ? {} : row.preset), ...hyperparameters };
  if (typeof merged.rho !== "number") return null;
  return {
    rho: merged.rho,
    p: typeof merged.p === "number" ? merged.p : 2,
    adaptive: merged.adaptive === true,
    eta: typeof merged.eta === "number" ? merged.eta : 0,
  };
}

/**
 * The ascent steps of start point `i`: [{step, from: w, to: w + ε}] for every gradient query
 * of a step that was not at the step's iterate w (so MultiStepSAM shows all its ascents,
 * LookSAM only its SAM steps, MSAM none: its parameters live at the perturbed point).
 */
export function ascentSteps(traj, i) {
  const out = [];
  if (traj.queries === null) return out;
  const { d } = traj;
  traj.queries.forEach((batches, k) => {
    const w = traj.point(k, i);
    for (const batch of batches) {
      const q = [batch[i * d], batch[i * d + 1]];
      if (q[0] !== w[0] || q[1] !== w[1]) out.push({ step: k + 1, from: w, to: q });
    }
  });
  return out;
}

/**
 * Which ascent steps to draw: pairs of consecutive steps (k, k + 1) every `stride` steps, so
 * that a bounce of period two shows both of its directions instead of one phase.
 */
export function sampledAscents(ascents, steps, pairs = 12) {
  const stride = Math.max(2, Math.round(steps / pairs));
  return ascents.filter(({ step }) => (step - 1) % stride < 2);
}

/** Cumulative gradient evaluations after each step of a recorded run (steps + 1 numbers). */
export function evaluationsPerStep(traj) {
  const out = [0];
  let total = 0;
  for (let k = 0; k < traj.steps; k++) {
    total += traj.queries !== null && k < traj.queries.length ? traj.queries[k].length : 0;
    out.push(total);
  }
  return out;
}

/**
 * The pixel geometry of a view box drawn with equal scales on both axes inside at most
 * `maxWidth` × `maxHeight` CSS pixels: {width, height, toPixel([x, y]), toPoint([px, py])}.
 */
export function viewBox([[xLo, xHi], [yLo, yHi]], maxWidth, maxHeight) {
  const scale = Math.min(maxWidth / (xHi - xLo), maxHeight / (yHi - yLo));
  const width = Math.max(1, Math.round((xHi - xLo) * scale));
  const height = Math.max(1, Math.round((yHi - yLo) * scale));
  return {
    width,
    height,
    domain: [
      [xLo, xHi],
      [yLo, yHi],
    ],
    toPixel: ([x, y]) => [((x - xLo) / (xHi - xLo)) * width, height - ((y - yLo) / (yHi - yLo)) * height],
    toPoint: ([px, py]) => [xLo + (px / width) * (xHi - xLo), yLo + ((height - py) / height) * (yHi - yLo)],
  };
}
