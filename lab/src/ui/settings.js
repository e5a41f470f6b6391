// A figure's settings and what they compute, with no drawing: the settings as plain data
// (`normalise` fills in every field), the landscape and the optimizers they name, every
// variant's run, and the sentence that says where each run ended. The browser twin of the
// pure computations of sampy/playground/compute.py; the live figure (figure.js) draws them.

import { expressionFunction } from "../expressions.js";
import { metadata } from "../optim/hyper.js";
import { BASE_ALONE, functionInfo, functions, makeBase, makeVariant, variant } from "../registry.js";
import { run } from "../run.js";
import { variantLabels } from "../snippet.js";
import { showNumber } from "./controls.js";
import { variantStyles } from "./palette.js";

export const MAX_VARIANTS = 4;
export const EXPRESSION = "expression of x, y";
const LESSON = metadata.lesson;

/** Settings with every field filled in: the figure's whole state, as plain data. */
export function normalise(config = {}) {
  const name = config.function ?? LESSON.function;
  const info = name === EXPRESSION ? null : functionInfo(name);
  const starts =
    config.starts ??
    (config.start ? [config.start] : [config.start ?? (info ? info.suggested_start : [1.0, 1.0])]);
  const variants = (config.variants ?? LESSON.variants)
    .slice(0, MAX_VARIANTS)
    .map((v) =>
      typeof v === "string"
        ? { name: v, hyperparameters: {} }
        : { name: v.name, hyperparameters: { ...(v.hyperparameters ?? {}) } },
    );
  return {
    function: name,
    params: { ...(config.params ?? {}) },
    expression: config.expression ?? "",
    box: config.box ?? metadata.expressions.default_domain[0][1],
    base: config.base ?? "SGD",
    base_hyperparameters: { ...(config.base_hyperparameters ?? {}) },
    lr: config.lr ?? (info ? info.suggested_lr : LESSON.lr),
    steps: config.steps ?? LESSON.steps,
    noise: config.noise ?? 0,
    seed: config.seed ?? 0,
    starts: starts.map((p) => [p[0], p[1]]),
    variants,
    controls: config.controls ?? [],
    panels: config.panels ?? ["loss"],
    balls: config.balls ?? true,
    arrows: config.arrows ?? true,
    lossAxis: config.loss_axis ?? "steps",
    view: config.view ?? null,
    basin: {
      pair: [0, Math.min(1, variants.length - 1)],
      steps: LESSON.basin_steps,
      grid: LESSON.basin_grid,
      ...(config.basin ?? {}),
    },
    full: config.full === true,
    height: config.height ?? 420,
  };
}

/** The landscape of the settings (a registered function, or a typed expression). */
export function settingsFunction(s) {
  if (s.function === EXPRESSION)
    return expressionFunction(s.expression, [
      [-s.box, s.box],
      [-s.box, s.box],
    ]);
  return functions.get(s.function, s.params);
}

/**
 * The hyperparameters variant `v` runs with: its own, plus the figure's lr where the variant
 * has a built-in base (MSAM, schedule-free AdamW, …): the lr slider is always "the" lr.
 */
export function variantHyperparameters(s, v) {
  const row = v.name === BASE_ALONE ? null : variant(v.name);
  const ownBase = row !== null && !row.takes_base && row.hyperparameters.some((h) => h.name === "lr");
  return ownBase ? { lr: s.lr, ...v.hyperparameters } : { ...v.hyperparameters };
}

/** The optimizer of variant `v` on the figure's base (throws RangeError on a bad setting). */
export function variantOptimizer(s, v) {
  const base = makeBase(s.base, { ...s.base_hyperparameters, lr: s.lr });
  return makeVariant(v.name, base, variantHyperparameters(s, v));
}

/** One run per variant: {label, colour, traj, error}; never throws for a bad setting. */
export function runVariants(s, f) {
  const labels = variantLabels(s.variants, s.base);
  const styles = variantStyles(s.variants, BASE_ALONE);
  return s.variants.map((v, i) => {
    const out = { label: labels[i], ...styles[i], slot: i, setting: v, traj: null, error: null };
    try {
      const optimizer = variantOptimizer(s, v);
      out.traj = run(optimizer, f, s.starts, s.steps, { sigma: s.noise, seed: s.seed, record: true });
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      out.error = error.message;
    }
    return out;
  });
}

/** Which known minimum a point is near (within 5% of the domain's diagonal), in words. */
export function whereIs(f, minima, labels, [x, y]) {
  if (minima.length === 0) return "no known minimum to compare with";
  const [[xLo, xHi], [yLo, yHi]] = f.domain;
  const diagonal = Math.sqrt((xHi - xLo) ** 2 + (yHi - yLo) ** 2);
  let best = 0;
  let distance = Infinity;
  minima.forEach(([mx, my], k) => {
    const dist = Math.sqrt((x - mx) ** 2 + (y - my) ** 2);
    if (dist < distance) [best, distance] = [k, dist];
  });
  if (!(distance <= 0.05 * diagonal)) return "not near a known minimum";
  return labels[best]
    ? `near the ${labels[best]} minimum`
    : `near the minimum (${minima[best].map((c) => showNumber(c)).join(", ")})`;
}

/** Every named minimum of the landscape (sharp_flat_wells: also its shallower well). */
export function namedMinima(f) {
  if (f.name === "sharp_flat_wells") {
    const { points, labels } = functions.sharpFlatWellsMinima(f.params);
    return { points, labels };
  }
  return { points: f.minima, labels: f.minimaLabels.length === f.minima.length ? f.minimaLabels : [] };
}

/** One line per run: where it ended, its loss and cost, and whether it still moves. */
export function describeRun(f, runResult) {
  const { label, traj, error } = runResult;
  if (error !== null) return `${label}: not run (${error})`;
  if (traj.n > 1) return describeStarts(f, runResult);
  const last = traj.point(traj.steps, 0);
  const loss = traj.losses[traj.steps * traj.n];
  let line = `${label}: ends at (${last.map((c) => c.toFixed(3)).join(", ")}), loss ${showNumber(loss)}, ${traj.gradEvals} gradient evaluations`;
  if (traj.divergedAt[0] >= 0) return `${line}; diverged at step ${traj.divergedAt[0]}`;
  const { points, labels } = namedMinima(f);
  line += `; ${whereIs(f, points, labels, last)}`;
  // A run that still moves by more than 0.1% of the box per step has not settled: say so.
  const [[xLo, xHi], [yLo, yHi]] = f.domain;
  const before = traj.point(Math.max(0, traj.steps - 2), 0);
  const moved = Math.sqrt((last[0] - before[0]) ** 2 + (last[1] - before[1]) ** 2);
  if (traj.steps >= 2 && moved > 1e-3 * Math.sqrt((xHi - xLo) ** 2 + (yHi - yLo) ** 2))
    line += ", still moving";
  return line;
}

/** For several starts: how many ended near which minimum, diverged, or elsewhere. */
function describeStarts(f, { label, traj }) {
  const { points, labels } = namedMinima(f);
  const counts = new Map();
  for (let i = 0; i < traj.n; i++) {
    const where =
      traj.divergedAt[i] >= 0 ? "diverged" : whereIs(f, points, labels, traj.point(traj.steps, i));
    counts.set(where, (counts.get(where) ?? 0) + 1);
  }
  const parts = [...counts].map(([where, k]) => `${k} ${where}`);
  return `${label}, ${traj.n} starts, ${traj.gradEvals} gradient evaluations: ${parts.join("; ")}`;
}
