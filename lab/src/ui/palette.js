// The colours of the live figures. One colour means one thing on every panel: the variant
// colours mark a variant's path, end point, ascent steps, ρ-ball, loss curve and legend entry,
// and are never used for anything else; the basin colours are a separate palette. The lists
// come from sampy.playground.choices (exported with the metadata), so the Voila laboratory
// and the book draw with the same colours.

import { metadata } from "../optim/hyper.js";

const COLOURS = metadata.colours;

/**
 * How each variant of a figure is drawn: {colour, dashed}. The base optimizer alone is the
 * white dashed line (the baseline) wherever it appears; the SAM-type variants take the other
 * colours in order (a fourth one is white, solid).
 */
export function variantStyles(variants, baseAlone) {
  let k = 0;
  return variants.map((v) => {
    if (v.name === baseAlone) return { colour: COLOURS.variants[0], dashed: true };
    const colour = COLOURS.variants[k < COLOURS.variants.length - 1 ? k + 1 : 0];
    k += 1;
    return { colour, dashed: false };
  });
}

/** The colour of basin `k` of `count` basins; then "none" and "diverged". */
export function basinColour(k) {
  return COLOURS.basins[k % COLOURS.basins.length];
}

export const NONE_COLOUR = COLOURS.none;
export const DIVERGED_COLOUR = COLOURS.diverged;
