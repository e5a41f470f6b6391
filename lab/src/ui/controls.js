// The controls of a live figure, built from the knob records that sampy exports (default,
// valid range, slider range and step, meaning): a slider with a box to type an exact value
// for numbers, a checkbox for a flag, a menu for a choice. Native inputs, so the keyboard
// (arrows, Page Up/Down, Home/End) and screen readers work as they do everywhere.

import { format } from "d3-format";

let uniqueId = 0;

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

export { el };

const shortNumber = format(".4~g");

/** A number as the readout shows it (∞ for infinity). */
export function showNumber(value) {
  if (value === Infinity) return "∞";
  if (value === -Infinity) return "−∞";
  return shortNumber(value);
}

/** Parse a typed number: decimals, 1e-3, inf/∞; null when it is not a number. */
export function readNumber(text) {
  const t = String(text).trim().toLowerCase().replace("−", "-");
  if (t === "inf" || t === "∞" || t === "infinity") return Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(t)) return null;
  return Number(t);
}

function inRange(spec, value) {
  if (typeof value !== "number" || Number.isNaN(value)) return false;
  const lowOk = spec.low === null || (spec.low_open ? value > spec.low : value >= spec.low);
  const highOk = spec.high === null || (spec.high_open ? value < spec.high : value <= spec.high);
  if (spec.kind === "int" && !Number.isInteger(value)) return false;
  return lowOk && highOk && (value !== Infinity || spec.infinite_end === true);
}

/**
 * One control. `spec` is a knob record (sampy.lab_metadata.knob_record) or a plain record
 * {name, kind, min, max, step, log, default, meaning, range_text}. `onChange(value)` fires on
 * every change (while a slider moves, too). Returns {element, set(value)}.
 */
export function knobControl(spec, value, onChange, { label = spec.name, compact = false } = {}) {
  const id = `sampy-lab-knob-${++uniqueId}`;
  const title = spec.meaning ? `${spec.name}: ${spec.meaning}; valid ${spec.range_text}` : undefined;
  const wrapper = el("div", { class: `sl-knob sl-knob-${spec.kind}${compact ? " sl-compact" : ""}`, title });
  const name = el("label", { for: id, text: label });
  if (spec.kind === "bool") {
    const box = el("input", { type: "checkbox", id });
    box.checked = value === true;
    box.addEventListener("change", () => onChange(box.checked));
    wrapper.append(box, name);
    return {
      element: wrapper,
      set: (v) => {
        box.checked = v === true;
      },
    };
  }
  if (spec.kind === "choice") {
    const menu = el("select", { id });
    for (const choice of spec.choices) menu.append(el("option", { value: choice, text: choice }));
    menu.value = value;
    menu.addEventListener("change", () => onChange(menu.value));
    wrapper.append(name, menu);
    return {
      element: wrapper,
      set: (v) => {
        menu.value = v;
      },
    };
  }
  // A number: slider positions 0…stops, mapped linearly or logarithmically, plus an ∞ stop.
  const log = spec.log === true;
  const lo = log ? Math.log10(spec.min) : spec.min;
  const hi = log ? Math.log10(spec.max) : spec.max;
  const step = log ? (hi - lo) / 200 : spec.step;
  const stops = Math.max(1, Math.round((hi - lo) / step));
  const infinite = spec.infinite_end === true;
  const toPosition = (v) => {
    if (v === Infinity) return stops + 1;
    const t = log ? Math.log10(v) : v;
    return Math.min(stops, Math.max(0, Math.round((t - lo) / step)));
  };
  const fromPosition = (k) => {
    if (infinite && k > stops) return Infinity;
    const t = lo + k * step;
    const v = log ? 10 ** t : t;
    // Round away the float dust of lo + k·step (0.30000000000000004 → 0.3).
    return Number(v.toPrecision(log ? 3 : 12));
  };
  const slider = el("input", {
    type: "range",
    id,
    min: 0,
    max: stops + (infinite ? 1 : 0),
    step: 1,
    "aria-label": label,
  });
  const box = el("input", {
    type: "text",
    inputmode: "decimal",
    class: "sl-number",
    "aria-label": `${label} (type a value)`,
    size: 6,
  });
  const problem = el("span", { class: "sl-problem", role: "alert" });
  let current = value;
  const show = (v) => {
    slider.value = String(toPosition(v));
    slider.setAttribute("aria-valuetext", showNumber(v));
    box.value = showNumber(v);
  };
  show(value);
  slider.addEventListener("input", () => {
    current = fromPosition(Number(slider.value));
    box.value = showNumber(current);
    slider.setAttribute("aria-valuetext", box.value);
    problem.textContent = "";
    onChange(current);
  });
  box.addEventListener("change", () => {
    const typed = readNumber(box.value);
    if (typed === null || !inRange(spec, typed)) {
      problem.textContent = `${spec.name} must be in ${spec.range_text}`;
      box.setAttribute("aria-invalid", "true");
      return;
    }
    problem.textContent = "";
    box.removeAttribute("aria-invalid");
    current = typed;
    // The exact typed value is kept; only the slider's thumb snaps to its nearest stop.
    slider.value = String(toPosition(typed));
    slider.setAttribute("aria-valuetext", showNumber(typed));
    onChange(current);
  });
  wrapper.append(name, slider, box, problem);
  return {
    element: wrapper,
    set: (v) => {
      current = v;
      show(v);
    },
  };
}

/** A menu of options [{value, label, disabled, title}]; returns {element, menu}. */
export function menuControl(label, options, value, onChange) {
  const id = `sampy-lab-menu-${++uniqueId}`;
  const menu = el("select", { id });
  for (const option of options) {
    menu.append(
      el("option", {
        value: option.value,
        text: option.label ?? option.value,
        disabled: option.disabled,
        title: option.title,
      }),
    );
  }
  menu.value = value;
  menu.addEventListener("change", () => onChange(menu.value));
  const element = el("div", { class: "sl-knob sl-knob-choice" }, el("label", { for: id, text: label }), menu);
  return { element, menu };
}
