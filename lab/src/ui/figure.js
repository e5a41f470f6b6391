// A live figure: a landscape, up to four variants run from the same start(s) by the browser
// twin, and the controls that move them. Every change reruns the paths at once (4 variants ×
// 300 steps take about a millisecond) and redraws; basin maps, which take up to a second, run
// in slices between frames. The settings are plain data (see `normalise`); the figure is
// state → runs → pictures.

import { drag } from "d3-drag";
import { select } from "d3-selection";
import { basinMaps, fractions } from "../basins.js";
import { metadata } from "../optim/hyper.js";
import { BASE_ALONE, browserVariants, functionInfo, functions, pythonOnly, variant } from "../registry.js";
import { pythonSnippet, variantLabels } from "../snippet.js";
import { fitCanvas, pixelRatio } from "./canvas.js";
import { el, knobControl, menuControl } from "./controls.js";
import {
  ascentSteps,
  ballOutline,
  ballShape,
  evaluationsPerStep,
  sampledAscents,
  viewBox,
} from "./geometry.js";
import { contourCanvas, drawColourBar, landscapeGrid } from "./landscape.js";
import { drawLosses } from "./losses.js";
import { drawArrow, drawStar } from "./marks.js";
import { DIVERGED_COLOUR, NONE_COLOUR, basinColour, variantStyles } from "./palette.js";
import {
  EXPRESSION,
  MAX_VARIANTS,
  describeRun,
  namedMinima,
  normalise,
  runVariants,
  settingsFunction,
  variantHyperparameters,
  variantOptimizer,
} from "./settings.js";

export { EXPRESSION, MAX_VARIANTS, normalise, runVariants };

const LESSON = metadata.lesson;
// The laboratory's own controls (lr, steps, noise), exported with the metadata.
const LR_KNOB = metadata.controls.lr;
const STEPS_KNOB = metadata.controls.steps;
const NOISE_KNOB = metadata.controls.noise;

function inkOf(element) {
  return getComputedStyle(element).color || "#222";
}

/**
 * A live figure mounted in `root` (an element), with `config` (see normalise). Public:
 * `settings`, `runs`, `update(changes)`, `redraw()`, `snippet()`, `basins` (the last maps),
 * and `lastDraw` (milliseconds of the last rerun-and-redraw, for the benchmark).
 */
export class LiveFigure {
  constructor(root, config = {}) {
    this.root = root;
    this.config = config;
    this.settings = normalise(config);
    this.runs = [];
    this.basins = null;
    this.basinJob = null;
    this.background = null;
    this.lastDraw = 0;
    this.draws = 0;
    root.classList.add("sampy-lab-live");
    if (this.settings.full) root.classList.add("sl-full");
    root.replaceChildren();
    this.build();
    this.setFunction();
    this.rerun();
    this.observe();
  }

  // ------------------------------------------------------------------------ layout

  build() {
    const s = this.settings;
    this.controlsBox = el("div", {
      class: "sl-controls",
      role: "group",
      "aria-label": "controls of the figure",
    });
    this.canvas = el("canvas", {
      class: "sl-canvas",
      tabindex: 0,
      role: "img",
      "aria-label":
        "the landscape with each variant's path; drag the white start point, or click to move it, or use the arrow keys",
    });
    this.colourBar = el("canvas", { class: "sl-colourbar", "aria-hidden": "true" });
    this.status = el("div", { class: "sl-status", role: "status", "aria-live": "polite" });
    this.picture = el(
      "div",
      { class: "sl-picture" },
      el("div", { class: "sl-frame" }, this.canvas, this.colourBar),
      this.status,
    );
    this.legend = el("ul", { class: "sl-legend" });
    this.lossCanvas = el("canvas", { class: "sl-loss", role: "img", "aria-label": "loss against step" });
    this.lossToggle = el("div", { class: "sl-toggle", role: "group", "aria-label": "loss axis" });
    for (const [axis, text] of [
      ["steps", "per step"],
      ["evals", "per gradient evaluation"],
    ]) {
      const button = el("button", {
        type: "button",
        "data-axis": axis,
        text,
        "aria-pressed": String(s.lossAxis === axis),
      });
      button.addEventListener("click", () => this.update({ lossAxis: axis }));
      this.lossToggle.append(button);
    }
    this.lossBox = el("div", { class: "sl-losses" }, this.lossCanvas, this.lossToggle);
    this.side = el("div", { class: "sl-side" }, this.legend, s.panels.includes("loss") ? this.lossBox : null);
    this.stage = el("div", { class: "sl-stage" }, this.picture, this.side);
    this.root.append(this.stage, this.controlsBox);
    if (s.panels.includes("basins")) this.buildBasins();
    if (s.full || s.panels.includes("python")) this.buildPython();
    this.buildControls();
    this.attachPointer();
  }

  buildControls() {
    const s = this.settings;
    this.controlsBox.replaceChildren();
    const wanted = s.full ? ["function", "base", "lr", "steps", "noise", "overlays"] : s.controls;
    for (const spec of wanted) this.controlsBox.append(...this.control(spec));
    if (s.full) {
      const reset = el("button", { type: "button", class: "sl-reset", text: "Reset" });
      reset.addEventListener("click", () => this.reset());
      this.controlsBox.append(reset);
      this.slotBox = el("div", { class: "sl-slots" });
      this.controlsBox.append(this.slotBox);
      this.buildSlots();
      const missing = pythonOnly()
        .map((r) => `${r.name} (${r.reason})`)
        .join("; ");
      this.controlsBox.append(
        el("p", {
          class: "sl-note",
          text: `Runs in Python only (make playground, or sampy.run): ${missing}.`,
        }),
      );
    }
  }

  /** The elements of one control specifier ("lr", "SAM.rho", "function.width_sharp", …). */
  control(spec) {
    const s = this.settings;
    if (spec === "lr")
      return [knobControl(LR_KNOB, s.lr, (v) => this.update({ lr: v }), { label: "lr η" }).element];
    if (spec === "steps") return [knobControl(STEPS_KNOB, s.steps, (v) => this.update({ steps: v })).element];
    if (spec === "noise")
      return [
        knobControl(NOISE_KNOB, s.noise, (v) => this.update({ noise: v }), { label: "noise σ" }).element,
      ];
    if (spec === "overlays") return this.overlayToggles();
    if (spec === "function") return this.functionControls();
    if (spec === "base") return this.baseControls();
    const [owner, knob] = spec.split(".");
    if (owner === "function") return [this.functionKnob(knob)];
    const slot = s.variants.findIndex((v, i) => v.name === owner || String(i + 1) === owner);
    if (slot < 0) throw new RangeError(`control ${spec}: no variant ${owner} in this figure`);
    return [this.variantKnob(slot, knob)];
  }

  variantKnob(slot, knobName, { label } = {}) {
    const setting = this.settings.variants[slot];
    const row = setting.name === BASE_ALONE ? null : variant(setting.name);
    const spec = row === null ? undefined : row.knobs.find((k) => k.name === knobName);
    if (spec === undefined) throw new RangeError(`${setting.name} has no knob ${knobName}`);
    const value = setting.hyperparameters[knobName] ?? spec.default;
    const labels = variantLabels(this.settings.variants, this.settings.base);
    const control = knobControl(
      spec,
      value,
      (v) => {
        this.settings.variants[slot].hyperparameters[knobName] = v;
        this.rerun();
      },
      { label: label ?? `${labels[slot]} ${knobName}` },
    );
    return control.element;
  }

  functionKnob(param) {
    const spec = (metadata.function_knobs[this.settings.function] ?? []).find((k) => k.name === param);
    if (spec === undefined)
      throw new RangeError(`${this.settings.function} has no parameter ${param} with a slider`);
    const value = this.settings.params[param] ?? spec.default;
    return knobControl(spec, value, (v) => {
      this.settings.params[param] = v;
      this.setFunction();
      this.rerun();
    }).element;
  }

  overlayToggles() {
    const s = this.settings;
    const toggle = (name, text) =>
      knobControl({ name, kind: "bool" }, s[name], (v) => this.update({ [name]: v }), { label: text })
        .element;
    return [toggle("balls", "ρ-balls"), toggle("arrows", "ascent steps")];
  }

  functionControls() {
    const s = this.settings;
    const names = Object.keys(metadata.functions);
    const options = [...names.map((n) => ({ value: n, label: n })), { value: EXPRESSION, label: EXPRESSION }];
    const { element } = menuControl("landscape", options, s.function, (name) => {
      const info = name === EXPRESSION ? null : functionInfo(name);
      this.settings.function = name;
      this.settings.params = {};
      if (info !== null) {
        this.settings.starts = [info.suggested_start.slice()];
        this.settings.lr = info.suggested_lr;
      }
      this.buildControls();
      this.setFunction();
      this.rerun();
    });
    const out = [element];
    if (s.function === EXPRESSION) {
      const id = `sl-expression-${Math.random().toString(36).slice(2)}`;
      const box = el("input", {
        type: "text",
        id,
        class: "sl-expression",
        value: s.expression,
        spellcheck: "false",
        "aria-describedby": `${id}-error`,
      });
      box.value = s.expression || "sin(3*x)*cos(y) + 0.1*(x**2 + y**2)";
      this.expressionError = el("span", {
        class: "sl-problem sl-expression-error",
        id: `${id}-error`,
        role: "alert",
      });
      const apply = () => {
        this.settings.expression = box.value;
        this.setFunction();
        this.rerun();
      };
      box.addEventListener("change", apply);
      out.push(
        el(
          "div",
          { class: "sl-knob sl-knob-expression" },
          el("label", { for: id, text: "f(x, y) =" }),
          box,
          this.expressionError,
        ),
      );
      if (!s.expression) this.settings.expression = box.value;
    } else {
      for (const spec of metadata.function_knobs[s.function] ?? []) out.push(this.functionKnob(spec.name));
    }
    return out;
  }

  baseControls() {
    const s = this.settings;
    const options = Object.keys(metadata.bases).map((n) => ({ value: n, label: n }));
    const { element } = menuControl("base", options, s.base, (name) => {
      this.settings.base = name;
      this.settings.base_hyperparameters = {};
      this.buildControls();
      this.rerun();
    });
    const out = [element];
    if (s.base === "SGD") {
      const spec = metadata.base_knobs.SGD.find((k) => k.name === "momentum");
      out.push(
        knobControl(
          spec,
          s.base_hyperparameters.momentum ?? spec.default,
          (v) => {
            this.settings.base_hyperparameters.momentum = v;
            this.rerun();
          },
          { label: "momentum μ" },
        ).element,
      );
    }
    return out;
  }

  buildSlots() {
    const s = this.settings;
    this.slotBox.replaceChildren();
    const methods = [
      { value: "", label: "(none)" },
      { value: BASE_ALONE, label: `${s.base} alone` },
      ...browserVariants().map((row) => ({ value: row.name, label: row.name, title: row.paper })),
    ];
    const styles = variantStyles(s.variants, BASE_ALONE);
    for (let i = 0; i < MAX_VARIANTS; i++) {
      const setting = s.variants[i];
      const style = styles[i] ?? { colour: "transparent", dashed: false };
      const swatch = el("span", {
        class: `sl-swatch${style.dashed ? " sl-dashed" : ""}`,
        style: `--sl-colour:${style.colour}`,
      });
      const { element } = menuControl(`variant ${i + 1}`, methods, setting ? setting.name : "", (name) => {
        const kept = this.settings.variants.filter((_, k) => k !== i);
        if (name) kept.splice(Math.min(i, kept.length), 0, { name, hyperparameters: {} });
        this.settings.variants = kept.slice(0, MAX_VARIANTS);
        this.settings.basin.pair = [0, Math.min(1, this.settings.variants.length - 1)];
        this.buildSlots();
        this.refreshBasinMenus();
        this.rerun();
      });
      const slot = el("fieldset", { class: "sl-slot" }, el("legend", {}, swatch, element));
      if (setting && setting.name !== BASE_ALONE) {
        const row = variant(setting.name);
        for (const knob of row.knobs) {
          if (knob.name === "lr") continue; // the lr slider sets a built-in base's lr
          slot.append(this.variantKnob(i, knob.name, { label: knob.name }));
        }
        // What the registry says of the variant: its rule, its cost and its source.
        slot.append(
          el("p", {
            class: "sl-slot-note",
            title: row.paper,
            text: `${row.ascent}; ${row.grad_evals} ∇ per step`,
          }),
        );
      } else if (setting) {
        slot.append(el("p", { class: "sl-slot-note", text: `the base optimizer alone: 1 ∇ per step` }));
      }
      this.slotBox.append(slot);
      if (!setting) break; // one empty slot to add a variant
    }
  }

  buildBasins() {
    this.basinBox = el("div", { class: "sl-basins" });
    this.basinMenus = el("div", { class: "sl-basin-menus" });
    this.basinProgress = el("progress", { max: 1, value: 0, "aria-label": "basin maps computed" });
    this.basinCanvases = [
      el("canvas", { class: "sl-basin", role: "img" }),
      el("canvas", { class: "sl-basin", role: "img" }),
    ];
    this.basinLegends = [el("ul", { class: "sl-basin-legend" }), el("ul", { class: "sl-basin-legend" })];
    const maps = el(
      "div",
      { class: "sl-basin-maps" },
      ...this.basinCanvases.map((c, k) => el("figure", {}, c, this.basinLegends[k])),
    );
    const heading = el("p", {
      class: "sl-basin-title",
      text: "Basins of attraction: where each start point of a 100 × 100 grid ends",
    });
    this.basinBox.append(heading, this.basinMenus, this.basinProgress, maps);
    this.root.append(this.basinBox);
    this.refreshBasinMenus();
  }

  refreshBasinMenus() {
    if (!this.basinMenus) return;
    const s = this.settings;
    const labels = variantLabels(s.variants, s.base);
    const options = labels.map((label, i) => ({ value: String(i), label }));
    this.basinMenus.replaceChildren();
    for (const side of [0, 1]) {
      const { element } = menuControl(
        side ? "right map" : "left map",
        options,
        String(s.basin.pair[side]),
        (v) => {
          this.settings.basin.pair[side] = Number(v);
          this.scheduleBasins();
        },
      );
      this.basinMenus.append(element);
    }
    const stepsKnob = { ...STEPS_KNOB, meaning: "steps of every run of the basin maps" };
    this.basinMenus.append(
      knobControl(
        stepsKnob,
        s.basin.steps,
        (v) => {
          this.settings.basin.steps = v;
          this.scheduleBasins();
        },
        { label: "steps" },
      ).element,
    );
  }

  buildPython() {
    const code = el("code", {});
    const pre = el("pre", { class: "sl-snippet" }, code);
    const button = el("button", { type: "button", class: "sl-copy", text: "Copy as Python" });
    const note = el("span", { class: "sl-copied", role: "status" });
    button.addEventListener("click", async () => {
      code.textContent = this.snippet();
      pre.hidden = false;
      try {
        await navigator.clipboard.writeText(code.textContent);
        note.textContent = "copied";
      } catch {
        // No clipboard (a page opened from disk may not have one): the text is shown, selected.
        const range = document.createRange();
        range.selectNodeContents(code);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        note.textContent = "selected: press Ctrl+C";
      }
    });
    pre.hidden = true;
    this.pythonBox = el("div", { class: "sl-python" }, button, note, pre);
    this.root.append(this.pythonBox);
  }

  // ------------------------------------------------------------------------ interaction

  attachPointer() {
    const figure = this;
    const pick = (event) => {
      const rect = figure.canvas.getBoundingClientRect();
      return [event.clientX - rect.left, event.clientY - rect.top];
    };
    const nearest = (pixel) => {
      let best = null;
      let distance = 16;
      figure.settings.starts.forEach((start, k) => {
        const [px, py] = figure.view.toPixel(start);
        const dist = Math.hypot(px - pixel[0], py - pixel[1]);
        if (dist < distance) [best, distance] = [k, dist];
      });
      return best;
    };
    select(this.canvas).call(
      drag()
        .subject((event) => {
          const k = nearest(pick(event.sourceEvent));
          return k === null ? null : { k };
        })
        .on("drag", (event) => {
          figure.settings.starts[event.subject.k] = figure.view.toPoint(pick(event.sourceEvent));
          figure.rerun({ basins: false });
        }),
    );
    this.canvas.addEventListener("click", (event) => {
      if (figure.settings.starts.length !== 1 || nearest(pick(event)) !== null) return;
      figure.settings.starts = [figure.view.toPoint(pick(event))];
      figure.rerun({ basins: false });
    });
    this.canvas.addEventListener("keydown", (event) => {
      const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
      if (!(event.key in moves)) return;
      event.preventDefault();
      const [[xLo, xHi], [yLo, yHi]] = figure.view.domain;
      const factor = event.shiftKey ? 0.1 : 0.01;
      const [dx, dy] = moves[event.key];
      const [x, y] = figure.settings.starts[0];
      figure.settings.starts[0] = [x + dx * factor * (xHi - xLo), y + dy * factor * (yHi - yLo)];
      figure.rerun({ basins: false });
    });
  }

  observe() {
    if (typeof ResizeObserver !== "undefined") {
      let width = this.root.clientWidth;
      new ResizeObserver(() => {
        if (Math.abs(this.root.clientWidth - width) < 2) return;
        width = this.root.clientWidth;
        this.setFunction();
        this.redraw();
      }).observe(this.root);
    }
    // The book's light/dark switch changes the ink of labels drawn on canvases.
    new MutationObserver(() => {
      this.drawColourBar();
      this.redraw();
    }).observe(document.documentElement, {
      attributes: true,
      attributeFilter: ["data-theme", "data-mode", "class"],
    });
  }

  /** Back to the figure's first settings. */
  reset() {
    this.settings = normalise(this.config);
    this.buildControls();
    this.refreshBasinMenus();
    this.setFunction();
    this.rerun();
  }

  /** Change settings (a partial settings object) and rerun. */
  update(changes) {
    Object.assign(this.settings, changes);
    if ("lossAxis" in changes) {
      for (const b of this.lossToggle.querySelectorAll("button"))
        b.setAttribute("aria-pressed", String(b.dataset.axis === this.settings.lossAxis));
    }
    if ("function" in changes || "params" in changes || "expression" in changes) this.setFunction();
    if ("base" in changes) this.buildControls();
    this.rerun();
  }

  // ------------------------------------------------------------------------ computing

  setFunction() {
    const s = this.settings;
    try {
      this.f = settingsFunction(s);
      if (this.expressionError) this.expressionError.textContent = "";
      this.functionError = null;
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      // Keep the last good landscape; the message stands next to the box that caused it.
      this.functionError = error.message;
      if (this.expressionError) this.expressionError.textContent = error.message;
      if (this.f === undefined) this.f = functions.get(LESSON.function);
    }
    const domain = s.view ?? this.f.domain;
    const available = Math.max(120, this.picture.clientWidth - 70 || this.root.clientWidth - 70 || 600);
    this.view = viewBox(domain, available, s.height);
    const info = s.function === EXPRESSION ? null : metadata.functions[s.function];
    this.grid = landscapeGrid(this.f, this.view, { log: info !== null && info.log_colours });
    this.background = contourCanvas(this.grid, this.view, pixelRatio());
    fitCanvas(this.canvas, this.view.width, this.view.height);
    this.drawColourBar();
    this.scheduleBasins();
  }

  drawColourBar() {
    drawColourBar(this.colourBar, this.grid, this.view.height, inkOf(this.root));
  }

  /** Rerun every variant and redraw; the basin maps follow unless only a start moved. */
  rerun({ basins = true } = {}) {
    const begin = performance.now();
    this.runs = runVariants(this.settings, this.f);
    const ran = performance.now();
    this.redraw();
    this.lastDraw = performance.now() - begin;
    this.lastRun = ran - begin;
    this.draws += 1;
    this.root.dataset.draws = String(this.draws);
    if (basins) this.scheduleBasins();
  }

  // ------------------------------------------------------------------------ drawing

  redraw() {
    const s = this.settings;
    this.paints = (this.paints ?? 0) + 1;
    this.root.dataset.paints = String(this.paints);
    const ratio = pixelRatio();
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(this.background, 0, 0);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    const px = this.view.toPixel;
    const { points } = namedMinima(this.f);
    ctx.fillStyle = "#ffffff";
    ctx.strokeStyle = "#000000";
    ctx.lineWidth = 1;
    for (const m of points) drawStar(ctx, px(m), 7);
    for (const r of this.runs) {
      if (r.traj === null) continue;
      const { traj, colour } = r;
      for (let i = 0; i < traj.n; i++) {
        if (s.arrows) {
          ctx.lineWidth = 1.2;
          for (const a of sampledAscents(ascentSteps(traj, i), traj.steps))
            drawArrow(ctx, px(a.from), px(a.to), colour);
        }
        ctx.lineWidth = 2;
        ctx.strokeStyle = colour;
        ctx.setLineDash(r.dashed ? [6, 4] : []);
        ctx.beginPath();
        for (let k = 0; k <= traj.steps; k++) {
          const p = px(traj.point(k, i));
          if (k) ctx.lineTo(p[0], p[1]);
          else ctx.moveTo(p[0], p[1]);
        }
        ctx.stroke();
        ctx.setLineDash([]);
        const end = traj.point(traj.steps, i);
        const shape = ballShape(
          r.setting.name === BASE_ALONE ? null : variant(r.setting.name),
          r.setting.hyperparameters,
        );
        if (s.balls && shape !== null) {
          const row = variant(r.setting.name);
          const rho =
            r.setting.hyperparameters.rho ?? row.hyperparameters.find((h) => h.name === "rho").default;
          const outline = ballOutline(end, rho, shape.p, shape.adaptive, shape.eta);
          ctx.lineWidth = 1.5;
          ctx.beginPath();
          outline.forEach((q, k) => {
            const p = px(q);
            if (k) ctx.lineTo(p[0], p[1]);
            else ctx.moveTo(p[0], p[1]);
          });
          ctx.stroke();
        }
        ctx.fillStyle = colour;
        ctx.strokeStyle = "#000000";
        ctx.lineWidth = 1;
        ctx.beginPath();
        ctx.arc(...px(end), 4.5, 0, 2 * Math.PI);
        ctx.fill();
        ctx.stroke();
      }
    }
    for (const start of s.starts) {
      ctx.fillStyle = "#ffffff";
      ctx.strokeStyle = "#000000";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(...px(start), 6, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
    }
    this.drawLegend();
    if (s.panels.includes("loss")) {
      const width = Math.max(200, this.side.clientWidth || 260);
      drawLosses(this.lossCanvas, this.runs, this.f, {
        axis: s.lossAxis,
        width,
        height: 170,
        ink: inkOf(this.root),
        evaluations: evaluationsPerStep,
      });
    }
    const lines = this.runs.map((r) => describeRun(this.f, r));
    if (this.functionError) lines.unshift(`The landscape was not changed: ${this.functionError}`);
    this.status.replaceChildren(...lines.map((line) => el("div", { text: line })));
  }

  drawLegend() {
    const s = this.settings;
    const items = this.runs.map((r) => {
      const swatch = el("span", {
        class: `sl-swatch${r.dashed ? " sl-dashed" : ""}`,
        style: `--sl-colour:${r.colour}`,
      });
      return el("li", {}, swatch, el("span", { text: r.label }));
    });
    items.push(
      el(
        "li",
        { class: "sl-key" },
        el("span", { class: "sl-key-start" }),
        el("span", { text: s.starts.length > 1 ? "starts" : "start: drag, click or use the arrow keys" }),
      ),
    );
    items.push(
      el(
        "li",
        { class: "sl-key" },
        el("span", { class: "sl-key-star", text: "★" }),
        el("span", { text: "known minimum" }),
      ),
    );
    if (s.arrows)
      items.push(
        el(
          "li",
          { class: "sl-key" },
          el("span", { text: "→" }),
          el("span", { text: "ascent w → w + ε, at pairs of consecutive steps" }),
        ),
      );
    if (s.balls)
      items.push(
        el(
          "li",
          { class: "sl-key" },
          el("span", { text: "○" }),
          el("span", { text: "ρ-ball around the end point" }),
        ),
      );
    this.legend.replaceChildren(...items);
  }

  // ------------------------------------------------------------------------ basin maps

  scheduleBasins() {
    if (!this.basinBox) return;
    this.basinRequests = (this.basinRequests ?? 0) + 1;
    this.root.dataset.basinRequests = String(this.basinRequests);
    clearTimeout(this.basinTimer);
    this.basinTimer = setTimeout(() => this.computeBasins(), 150);
  }

  async computeBasins() {
    const s = this.settings;
    if (this.basinJob !== null) this.basinJob.abort();
    const job = new AbortController();
    this.basinJob = job;
    const labels = variantLabels(s.variants, s.base);
    const pair = s.basin.pair.map((k) => Math.min(k, s.variants.length - 1));
    const optimizers = [];
    for (const k of pair) {
      try {
        optimizers.push(variantOptimizer(s, s.variants[k]));
      } catch (error) {
        this.basinLegends[0].replaceChildren(el("li", { text: error.message }));
        return;
      }
    }
    const { points, labels: names } = namedMinima(this.f);
    this.basinProgress.value = 0;
    this.root.dataset.basins = "running";
    const begin = performance.now();
    const maps = await basinMaps(optimizers, this.f, {
      grid: [s.basin.grid, s.basin.grid],
      steps: s.basin.steps,
      minima: points,
      labels: names,
      onProgress: (fraction) => {
        this.basinProgress.value = fraction;
      },
      signal: job.signal,
    });
    if (maps === null) return;
    this.basinSeconds = (performance.now() - begin) / 1000;
    this.basins = maps;
    this.basinJob = null;
    maps.forEach((map, side) => this.drawBasin(map, side, labels[pair[side]]));
    this.root.dataset.basins = "done";
  }

  drawBasin(map, side, label) {
    const canvas = this.basinCanvases[side];
    const [nx, ny] = map.grid;
    const width = Math.max(140, Math.min(this.view.width / 2 - 8, 340));
    const view = viewBox(this.view.domain, width, this.view.height);
    const image = document.createElement("canvas");
    image.width = nx;
    image.height = ny;
    const pixels = image.getContext("2d").createImageData(nx, ny);
    const colours = map.labels.map((_, k) => basinColour(k));
    const rgb = (hex) => [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const b = map.basin[j * nx + i];
        const colour = b >= 0 ? colours[b] : b === -1 ? NONE_COLOUR : DIVERGED_COLOUR;
        const [r, g, bl] = rgb(colour);
        const at = 4 * ((ny - 1 - j) * nx + i); // row j = 0 is the lowest y: the image's bottom
        pixels.data.set([r, g, bl, 255], at);
      }
    }
    image.getContext("2d").putImageData(pixels, 0, 0);
    canvas.setAttribute("aria-label", `basin map of ${label}`);
    const ctx = fitCanvas(canvas, view.width, view.height);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(image, 0, 0, view.width, view.height);
    ctx.fillStyle = "#ffffff";
    ctx.strokeStyle = "#000000";
    for (const m of map.minima) drawStar(ctx, view.toPixel(m), 6);
    const shares = fractions(map.basin, map.labels.length);
    const names = [...map.labels, `not near a minimum after ${map.steps} steps`, "diverged"];
    const swatches = [...colours, NONE_COLOUR, DIVERGED_COLOUR];
    const items = [el("li", { class: "sl-basin-name", text: label })];
    names.forEach((name, k) => {
      if (shares[k] === 0 && k >= map.labels.length) return;
      items.push(
        el(
          "li",
          {},
          el("span", { class: "sl-swatch sl-square", style: `--sl-colour:${swatches[k]}` }),
          el("span", { text: `${name}: ${(100 * shares[k]).toFixed(1)}%` }),
        ),
      );
    });
    this.basinLegends[side].replaceChildren(...items);
  }

  /** The Python that reproduces the runs (sampy.run), as text. */
  snippet() {
    const s = this.settings;
    return pythonSnippet({
      function: s.function,
      params: s.params,
      expression: s.function === EXPRESSION ? s.expression : "",
      box: s.box,
      base: s.base,
      base_hyperparameters: { ...s.base_hyperparameters, lr: s.lr },
      variants: s.variants.map((v) => ({ name: v.name, hyperparameters: variantHyperparameters(s, v) })),
      starts: s.starts,
      steps: s.steps,
      noise: s.noise,
      seed: s.seed,
    });
  }
}
