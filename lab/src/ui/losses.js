// The side panel: every run's loss against the step, or against the gradient evaluations
// spent so far (the fair comparison of cost: a SAM step costs two). With a known minimum the
// axis is log10(loss − fmin); a typed landscape has none, so its loss is shown as it is
// rather than against a made-up floor.

import { format } from "d3-format";
import { scaleLinear, scaleLog } from "d3-scale";
import { fitCanvas } from "./canvas.js";

const tick = format(".1~e");
const plain = format(".4~g");

/** Draw the loss curves of `runs` into `canvas` (CSS size width × height). */
export function drawLosses(
  canvas,
  runs,
  f,
  { axis = "steps", width = 260, height = 170, ink = "#222", evaluations },
) {
  const ctx = fitCanvas(canvas, width, height);
  const margin = { left: 50, right: 14, top: 8, bottom: 30 };
  const known = Number.isFinite(f.fmin);
  // One curve per run and start point (thinner when a figure has several starts).
  const curves = runs
    .filter((r) => r.traj !== null)
    .flatMap((r) => {
      const xs =
        axis === "evals" ? evaluations(r.traj) : Array.from({ length: r.traj.steps + 1 }, (_, k) => k);
      return Array.from({ length: r.traj.n }, (_, i) => {
        const ys = [];
        for (let k = 0; k <= r.traj.steps; k++) {
          const loss = r.traj.losses[k * r.traj.n + i];
          ys.push(known ? Math.max(loss - f.fmin, 1e-16) : loss);
        }
        return { r, xs, ys, thin: r.traj.n > 1 };
      });
    });
  const allY = curves.flatMap((c) => c.ys).filter(Number.isFinite);
  const allX = curves.flatMap((c) => c.xs);
  if (allY.length === 0) return;
  const xMax = Math.max(1, ...allX);
  const x = scaleLinear()
    .domain([0, xMax])
    .range([margin.left, width - margin.right]);
  let yLo = Math.min(...allY);
  let yHi = Math.max(...allY);
  if (!(yHi > yLo)) yHi = yLo + (known ? yLo * 10 : 1);
  const y = (known ? scaleLog() : scaleLinear())
    .domain([yLo, yHi])
    .range([height - margin.bottom, margin.top])
    .clamp(true);
  if (!known) y.nice();
  ctx.strokeStyle = ink;
  ctx.fillStyle = ink;
  ctx.lineWidth = 1;
  ctx.font = "11px system-ui, sans-serif";
  ctx.beginPath();
  ctx.moveTo(margin.left, margin.top);
  ctx.lineTo(margin.left, height - margin.bottom);
  ctx.lineTo(width - margin.right, height - margin.bottom);
  ctx.stroke();
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const t of x.ticks(4)) ctx.fillText(plain(t), x(t), height - margin.bottom + 3);
  ctx.fillText(axis === "evals" ? "gradient evaluations" : "step", (margin.left + width) / 2, height - 13);
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const yTicks = known
    ? y.ticks(4).filter((_, k, all) => all.length <= 5 || k % Math.ceil(all.length / 5) === 0)
    : y.ticks(4);
  for (const t of yTicks) ctx.fillText(known ? tick(t) : plain(t), margin.left - 3, y(t));
  ctx.save();
  ctx.translate(11, (margin.top + height - margin.bottom) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText(known ? "loss − minimum" : "loss", 0, 0);
  ctx.restore();
  for (const { r, xs, ys, thin } of curves) {
    ctx.beginPath();
    let open = false;
    xs.forEach((xv, k) => {
      if (!Number.isFinite(ys[k])) {
        open = false;
        return;
      }
      if (open) ctx.lineTo(x(xv), y(ys[k]));
      else ctx.moveTo(x(xv), y(ys[k]));
      open = true;
    });
    // A dark edge under every curve, so that the white baseline shows on a light page too.
    ctx.setLineDash(r.dashed ? [5, 3] : []);
    ctx.strokeStyle = "#333333";
    ctx.lineWidth = thin ? 2.4 : 3.5;
    ctx.stroke();
    ctx.strokeStyle = r.colour;
    ctx.lineWidth = thin ? 1.2 : 2;
    ctx.stroke();
    ctx.setLineDash([]);
  }
}
