// The browser twin of sampy.functions: every registered 2-D landscape.

import "./classic.js";
import "./catalogue.js";
import "./toys.js";

export { DIM, TestFunction, get, names, register } from "./_base.js";
export { sharpFlatWellsMinima } from "./toys.js";
