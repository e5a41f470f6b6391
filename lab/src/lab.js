// One run request of the laboratory, as plain data in and plain data out: what the
// command-line entry (cli.js) answers. A request names the landscape (a registered function
// with its `params`, or a typed `expression` of x and y on [-box, box]²), the variant with
// its hyperparameters, the base with its hyperparameters, the start points and the steps;
// the answer holds the trajectory, the losses, the gradient evaluations and where each start
// point diverged.
//
// A schedule cannot travel as JSON, so GSAM's `rho_schedule` (a function t ↦ ρ_t in the twin)
// is sent as a list among the hyperparameters, one radius per step t = 0, 1, …:
// "rho_schedule": [ρ_0, ρ_1, …] becomes t => list[t]; a step past the list's end is an error
// naming rho_schedule.

import { expressionFunction } from "./expressions.js";
import { functionInfo, functions, makeBase, makeVariant } from "./registry.js";
import { run } from "./run.js";

const NON_FINITE = { inf: Infinity, "-inf": -Infinity, nan: NaN };

/** JSON cannot carry ∞: the strings "inf", "-inf" and "nan" stand for them in a request. */
export function readNumbers(value) {
  if (typeof value === "string" && value in NON_FINITE) return NON_FINITE[value];
  if (Array.isArray(value)) return value.map(readNumbers);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, readNumbers(v)]));
  }
  return value;
}

/** Non-finite numbers as null, so that the answer is standard JSON. */
function finiteOrNull(v) {
  return Number.isFinite(v) ? v : null;
}

/** The landscape of a request: a registered function with its parameters. */
export function requestFunction(request) {
  if (request.expression !== undefined) {
    // A typed landscape of x and y, on the box [-box, box]² (sampy.expressions' language).
    const box = request.box ?? 4;
    if (!(typeof box === "number" && box > 0 && Number.isFinite(box))) {
      throw new RangeError(`box must be a finite number > 0, got ${box}`);
    }
    return expressionFunction(request.expression, [
      [-box, box],
      [-box, box],
    ]);
  }
  if (typeof request.function !== "string")
    throw new RangeError("function must be the name of a registered 2-D test function");
  functionInfo(request.function); // an unknown name fails here with the list of names
  return functions.get(request.function, readNumbers(request.params ?? {}));
}

/** A request's `rho_schedule` list as the function t ↦ list[t] that GSAM takes. */
export function scheduleFromList(list) {
  if (!Array.isArray(list) || !list.every((v) => typeof v === "number")) {
    throw new RangeError("rho_schedule must be a list of numbers, one radius per step");
  }
  return (t) => {
    if (!(t < list.length)) {
      throw new RangeError(`rho_schedule has no value for step t = ${t}: it lists ${list.length} radii`);
    }
    return list[t];
  };
}

/** The optimizer of a request (variant on its base). */
export function requestOptimizer(request) {
  const base = makeBase(request.base ?? "SGD", readNumbers(request.base_hyperparameters ?? {}));
  const hyperparameters = readNumbers(request.hyperparameters ?? {});
  if (hyperparameters !== null && typeof hyperparameters === "object" && "rho_schedule" in hyperparameters) {
    hyperparameters.rho_schedule = scheduleFromList(hyperparameters.rho_schedule);
  }
  return makeVariant(request.variant ?? "base", base, hyperparameters);
}

/** Answer one run request (see the module comment); throws RangeError on bad input. */
export function answer(request) {
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    throw new RangeError("a request must be a JSON object");
  }
  const f = requestFunction(request);
  const optimizer = requestOptimizer(request);
  if (request.x0 === undefined && request.expression !== undefined) {
    throw new RangeError("x0 must be given for a typed landscape (it has no suggested start)");
  }
  const x0 = request.x0 ?? [functionInfo(request.function).suggested_start];
  const steps = request.steps ?? 300;
  const traj = run(optimizer, f, x0, steps, {
    bound: request.bound ?? 1e6,
    sigma: request.noise ?? 0,
    seed: request.seed ?? 0,
  });
  const { n, d } = traj;
  const xs = [];
  const losses = [];
  const values = traj.losses;
  for (let k = 0; k <= traj.steps; k++) {
    const row = [];
    const lossRow = [];
    for (let i = 0; i < n; i++) {
      row.push(traj.point(k, i));
      lossRow.push(finiteOrNull(values[k * n + i]));
    }
    xs.push(row);
    losses.push(lossRow);
  }
  return {
    function: f.name,
    variant: request.variant ?? "base",
    steps: traj.steps,
    dim: d,
    xs,
    losses,
    grad_evals: traj.gradEvals,
    diverged_at: Array.from(traj.divergedAt),
    report: traj.report(),
  };
}
