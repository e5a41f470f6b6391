"""Each inline script once per page.

sphinx-thebe 0.3.1 (which Jupyter Book loads even with Thebe off) adds its configuration as
an inline script, ``const THEBE_JS_URL = ...``, with ``app.add_js_file(None, body=...)`` after
the HTML builder has started. Sphinx 7.4 then keeps two copies: the builder's own (filename
``None``) and the one it copies from its registry (filename ``""``), which its duplicate check
takes for different scripts. The page runs both, and the second throws "Identifier
'THEBE_JS_URL' has already been declared" in every reader's console.

This extension drops a script that repeats an earlier one on the same page: the same file (an
inline script has none) and the same attributes, its body included.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _script_key(script: Any) -> tuple:
    """What makes two of a page's scripts the same one (an inline script's body included)."""
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {})
    return str(filename), tuple(sorted(attributes.items()))


def drop_repeated_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    """``html-page-context`` handler: keep the first of each of the page's scripts."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the handler after every other one, so it sees every script added to a page."""
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
