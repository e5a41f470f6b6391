// The classic script of the book's pages: the library (index.js) plus the live figures, which
// mount themselves on every element of class "sampy-lab" once the page has loaded.

export * from "./index.js";
export { LiveFigure, normalise, runVariants } from "./ui/figure.js";
export { figures, mountAll } from "./ui/mount.js";
