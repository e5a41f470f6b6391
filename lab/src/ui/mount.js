// Put a live figure into every element of class "sampy-lab" on the page. The figure's
// settings sit in a <script type="application/json"> inside the element (the Sphinx
// directive writes them); a figure that cannot start shows why, in place of the picture.

import { LiveFigure } from "./figure.js";

export const figures = [];

/** Mount every not yet mounted `.sampy-lab` element under `root` (default: the document). */
export function mountAll(root = document) {
  for (const element of root.querySelectorAll(".sampy-lab:not([data-mounted])")) {
    element.dataset.mounted = "true";
    const source = element.querySelector('script[type="application/json"]');
    let config = {};
    try {
      config = source === null ? {} : JSON.parse(source.textContent);
      figures.push(new LiveFigure(element, config));
      element.dataset.ready = "true";
      // When the first live picture was drawn, in ms since the page started loading.
      element.dataset.readyAt = String(performance.now());
    } catch (error) {
      element.dataset.error = "true";
      const message = document.createElement("p");
      message.className = "sl-error";
      message.textContent = `This live figure could not start: ${error.message}`;
      element.replaceChildren(message);
      console.error(error);
    }
  }
  return figures;
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => mountAll());
  else mountAll();
}
