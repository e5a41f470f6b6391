"""A Sphinx directive that puts a live figure of the browser laboratory on a page.

In a MyST page::

    ```{lab}
    :function: sharp_flat
    :variants: base, SAM
    :controls: lr, SAM.rho
    :caption: Move ρ: from about 0.07 on, SAM leaves the sharp minimum.
    {"variants": [{"name": "base"}, {"name": "SAM", "hyperparameters": {"rho": 0.1}}]}
    ```

The options set the common settings; the body, when present, is a JSON object with any
setting of the figure (``lab/src/ui/figure.js``, ``normalise``) and wins over the options:

- ``function`` (a registered 2-D function), ``params`` (JSON), ``expression``;
- ``variants``: names of registry rows (``base`` is the base optimizer alone), at most four;
- ``controls``: ``lr``, ``steps``, ``noise``, ``base``, ``function``, ``overlays``,
  ``<variant>.<knob>`` (e.g. ``SAM.rho``) or ``function.<parameter>``;
- ``panels``: ``loss``, ``basins``, ``python`` (the copy-as-Python button);
- ``start`` (``x, y``), ``lr``, ``steps``, ``base``, ``height`` (pixels), ``full`` (the whole
  laboratory: every control and four variant slots).

Every setting is checked when the book is built, against the metadata the twin itself
embeds (``sampy.lab_metadata``): an unknown function, variant, knob or control is a build
warning (an error under ``-W``), not a broken figure in the reader's browser.

The extension builds the laboratory (``lab/build_lab.py``) when the build starts, serves
``sampy-lab.js`` and ``sampy-lab.css`` from ``_static``, and loads them only on pages that
have a live figure. Both are classic files, so the page works opened from disk (file://).
"""

from __future__ import annotations

import html
import importlib.util
import json
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

LAB = Path(__file__).resolve().parent
LOGGER = logging.getLogger(__name__)
PANELS = ("loss", "basins", "python")
PLAIN_CONTROLS = ("lr", "steps", "noise", "base", "function", "overlays")
MAX_VARIANTS = 4


def _build_module():
    spec = importlib.util.spec_from_file_location("sampy_build_lab", LAB / "build_lab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").replace(";", ",").split(",") if part.strip()]


def _point(text: str) -> list[float]:
    parts = _names(text)
    if len(parts) != 2:
        raise ValueError(f"start must be two numbers 'x, y', got {text!r}")
    return [float(p) for p in parts]


def config_from(options: dict[str, Any], body: str) -> dict[str, Any]:
    """The figure's settings from the directive's options and its JSON body (body wins)."""
    config: dict[str, Any] = {}
    for key in ("function", "expression", "base"):
        if key in options:
            config[key] = options[key]
    for key, convert in (("lr", float), ("steps", int), ("height", int), ("noise", float)):
        if key in options:
            config[key] = convert(options[key])
    if "params" in options:
        config["params"] = json.loads(options["params"])
    if "variants" in options:
        config["variants"] = [{"name": name} for name in _names(options["variants"])]
    if "controls" in options:
        config["controls"] = _names(options["controls"])
    if "panels" in options:
        config["panels"] = _names(options["panels"])
    if "start" in options:
        config["start"] = _point(options["start"])
    if "full" in options:
        config["full"] = True
    if body.strip():
        extra = json.loads(body)
        if not isinstance(extra, dict):
            raise ValueError("the body of a lab directive must be a JSON object")
        config.update(extra)
    return config


def check_config(config: dict[str, Any], metadata: dict[str, Any]) -> list[str]:
    """Everything wrong with a figure's settings, as messages (empty when it is fine)."""
    problems = []
    functions = metadata["functions"]
    name = config.get("function", metadata["lesson"]["function"])
    if name != "expression of x, y" and name not in functions:
        problems.append(f"unknown function {name!r}; the 2-D functions are {sorted(functions)}")
    rows = {row["name"]: row for row in metadata["variants"]}
    variants = config.get("variants", metadata["lesson"]["variants"])
    if len(variants) > MAX_VARIANTS:
        problems.append(f"at most {MAX_VARIANTS} variants, got {len(variants)}")
    names = []
    for v in variants:
        vname = v if isinstance(v, str) else v.get("name")
        names.append(vname)
        if vname == "base":
            continue
        row = rows.get(vname)
        if row is None:
            problems.append(f"unknown variant {vname!r}")
        elif row["python_only"] is not None:
            problems.append(f"{vname} runs in Python only ({row['python_only']})")
        elif not isinstance(v, str):
            known = {h["name"] for h in row["hyperparameters"]}
            for key in v.get("hyperparameters", {}):
                if key not in known:
                    problems.append(f"{vname} has no hyperparameter {key!r}")
    if config.get("base", "SGD") not in metadata["bases"]:
        problems.append(f"unknown base {config['base']!r}; choose one of {list(metadata['bases'])}")
    for panel in config.get("panels", []):
        if panel not in PANELS:
            problems.append(f"unknown panel {panel!r}; choose from {list(PANELS)}")
    function_knobs = {k["name"] for k in metadata["function_knobs"].get(name, [])}
    for control in config.get("controls", []):
        if control in PLAIN_CONTROLS:
            continue
        owner, _, knob = control.partition(".")
        if owner == "function":
            if knob not in function_knobs:
                problems.append(f"control {control!r}: {name} has no slider for {knob!r}")
            continue
        slot = next((i for i, n in enumerate(names) if n == owner or str(i + 1) == owner), None)
        if slot is None or not knob:
            problems.append(f"control {control!r}: no variant {owner!r} in this figure")
            continue
        row = rows.get(names[slot])
        if row is None or knob not in {k["name"] for k in row["knobs"]}:
            problems.append(f"control {control!r}: {names[slot]} has no knob {knob!r}")
    return problems


class lab_figure(nodes.General, nodes.Element):
    """The placeholder of a live figure; written out as HTML by ``visit_lab_figure``.

    Lower-case, as docutils names its node classes (the name is the node's tag).
    """


class LabDirective(SphinxDirective):
    """``{lab}``: a live figure of the browser laboratory (see the module docstring)."""

    has_content = True
    option_spec: ClassVar[dict[str, Any]] = {
        "function": directives.unchanged_required,
        "params": directives.unchanged_required,
        "expression": directives.unchanged_required,
        "variants": directives.unchanged_required,
        "controls": directives.unchanged,
        "panels": directives.unchanged,
        "start": directives.unchanged_required,
        "lr": directives.unchanged_required,
        "steps": directives.unchanged_required,
        "noise": directives.unchanged_required,
        "base": directives.unchanged_required,
        "height": directives.unchanged_required,
        "full": directives.flag,
        "caption": directives.unchanged,
        "name": directives.unchanged,
    }

    def run(self) -> list[nodes.Node]:
        try:
            config = config_from(self.options, "\n".join(self.content))
        except (ValueError, json.JSONDecodeError) as error:
            raise self.error(f"lab: {error}") from None
        metadata = self.env.app.sampy_lab_metadata
        for problem in check_config(config, metadata):
            LOGGER.warning(f"lab: {problem}", location=self.get_location())
        node = lab_figure(config=config, caption=self.options.get("caption", ""))
        if "name" in self.options:
            self.add_name(node)
        pages = getattr(self.env, "sampy_lab_pages", set())
        pages.add(self.env.docname)
        self.env.sampy_lab_pages = pages
        return [node]


def visit_lab_figure(translator, node: lab_figure) -> None:
    """The figure's HTML: its settings as JSON, a message until the script runs, a caption."""
    config = json.dumps(node["config"], ensure_ascii=False).replace("</", "<\\/")
    ids = " ".join(node["ids"])
    anchor = f' id="{html.escape(ids)}"' if ids else ""
    caption = node["caption"]
    translator.body.append(
        f'<figure class="sampy-lab-figure"{anchor}>'
        f'<div class="sampy-lab"><script type="application/json">{config}</script>'
        '<p class="sl-loading">Loading the live figure…</p>'
        "<noscript><p>This figure is live: it needs JavaScript, which is off.</p></noscript>"
        "</div>"
        + (f"<figcaption>{html.escape(caption)}</figcaption>" if caption else "")
        + "</figure>"
    )
    raise nodes.SkipNode


def _skip(translator, node: lab_figure) -> None:
    raise nodes.SkipNode


def _build_lab(app: Sphinx) -> None:
    module = _build_module()
    try:
        dist = module.build()
    except module.LabBuildError as error:
        raise RuntimeError(f"the browser laboratory does not build: {error}") from error
    app.sampy_lab_metadata = json.loads((module.BUILD / "metadata.json").read_text("utf-8"))
    web = str(dist / "web")
    if web not in app.config.html_static_path:
        app.config.html_static_path.append(web)


def _add_assets(app: Sphinx, pagename: str, templatename: str, context, doctree) -> None:
    if pagename in getattr(app.env, "sampy_lab_pages", set()):
        app.add_css_file("sampy-lab.css")
        app.add_js_file("sampy-lab.js", loading_method="defer")


def _purge(app: Sphinx, env, docname: str) -> None:
    getattr(env, "sampy_lab_pages", set()).discard(docname)


def _merge(app: Sphinx, env, docnames, other) -> None:
    pages = getattr(env, "sampy_lab_pages", set())
    env.sampy_lab_pages = pages | getattr(other, "sampy_lab_pages", set())


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the ``lab`` directive and the laboratory's assets."""
    app.add_node(lab_figure, html=(visit_lab_figure, None), latex=(_skip, None), text=(_skip, None))
    app.add_directive("lab", LabDirective)
    app.connect("builder-inited", _build_lab)
    app.connect("html-page-context", _add_assets)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
