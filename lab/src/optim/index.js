// The browser twin of sampy.optim: every class the 2-D laboratory runs, by the reference's
// class names. `TWINS` is what the registry builds variants from; a test checks that it holds
// exactly the registry rows that are not Python-only (sampy.lab_metadata.PYTHON_ONLY).

import { Adam, AdamW } from "./adam.js";
import { Oracle } from "./base.js";
import { SAM } from "./sam.js";
import { SGD } from "./sgd.js";
import { SharpnessAware } from "./sharpness_aware.js";

export { Adam, AdamW, Oracle, SAM, SGD, SharpnessAware };

/** The base optimizers, by class name. */
export const BASE_CLASSES = { SGD, Adam, AdamW };

/** Every variant class with a browser twin, by the reference's class name. */
export const TWINS = { SAM };
