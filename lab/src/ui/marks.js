// The marks a figure draws on its canvas besides lines: a star for a known minimum, an arrow
// for an ascent step.

/** A five-pointed star of outer radius `radius` at the pixel [px, py]. */
export function drawStar(ctx, [px, py], radius) {
  ctx.beginPath();
  for (let k = 0; k < 10; k++) {
    const r = k % 2 ? radius * 0.45 : radius;
    const t = -Math.PI / 2 + (k * Math.PI) / 5;
    ctx[k ? "lineTo" : "moveTo"](px + r * Math.cos(t), py + r * Math.sin(t));
  }
  ctx.closePath();
  ctx.fill();
  ctx.stroke();
}

/** An arrow from pixel `from` to pixel `to`, its head at most 7 px. */
export function drawArrow(ctx, from, to, colour) {
  const [x0, y0] = from;
  const [x1, y1] = to;
  const length = Math.hypot(x1 - x0, y1 - y0);
  if (length < 0.5) return;
  ctx.strokeStyle = colour;
  ctx.fillStyle = colour;
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
  const head = Math.min(7, length * 0.45);
  const angle = Math.atan2(y1 - y0, x1 - x0);
  ctx.beginPath();
  ctx.moveTo(x1, y1);
  ctx.lineTo(x1 - head * Math.cos(angle - 0.45), y1 - head * Math.sin(angle - 0.45));
  ctx.lineTo(x1 - head * Math.cos(angle + 0.45), y1 - head * Math.sin(angle + 0.45));
  ctx.closePath();
  ctx.fill();
}
