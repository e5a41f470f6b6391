// Canvases drawn at the screen's pixel density, so that lines stay sharp on a high-density
// (retina) screen while the figure's code works in CSS pixels.

/** The screen's pixels per CSS pixel. */
export function pixelRatio() {
  return window.devicePixelRatio || 1;
}

/**
 * Size `canvas` to `width` × `height` CSS pixels at the screen's density and clear it; the
 * returned context draws in CSS pixels.
 */
export function fitCanvas(canvas, width, height) {
  const ratio = pixelRatio();
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return ctx;
}
