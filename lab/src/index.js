// The browser laboratory: the JavaScript twin of sampy's 2-D reference (functions, bases,
// variants, runner) and the live figures built on it. Bundled as one classic script that
// defines `window.sampyLab` (lab/build_lab.py).

export * as functions from "./functions/index.js";
export * as optim from "./optim/index.js";
export { Generator } from "./rng.js";
export { Runner, Trajectory, run } from "./run.js";
export { answer, readNumbers } from "./lab.js";
export {
  BASE_ALONE,
  browserVariants,
  functionInfo,
  makeBase,
  makeVariant,
  pythonOnly,
  variant,
  variants,
} from "./registry.js";
export { metadata } from "./optim/hyper.js";
export { ExpressionError, checkExpression, expressionFunction, parseExpression } from "./expressions.js";
export { basinMaps, classify, clusterMinima, startGrid } from "./basins.js";
export { pythonSnippet } from "./snippet.js";
