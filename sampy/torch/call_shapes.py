"""The step call shapes of the torch twins: one row per registry variant with a twin.

A twin is an ordinary ``torch.optim.Optimizer``, but not every twin is called the same way.
Four closure kinds exist:

- ``PLAIN``: the usual training closure (zero the gradients if you like, compute the mean loss,
  call ``backward()``, return the loss). ``step(closure)`` uses the gradients already in
  ``p.grad`` as ∇L(w) when some parameter has one (the davda54/sam and pytorch-optimizer loop,
  ``loss.backward(); opt.step(closure)``: the closure then runs once, at w + ε) and otherwise
  runs the closure at w first;
- ``EXAMPLES``: an *example closure* ``closure(indices=None)`` returning the un-reduced
  per-example losses, without ``backward()`` (``sampy.torch.examples``); the twin reduces and
  differentiates them itself;
- ``FORWARD``: ``step(forward, inputs, targets)``, for the twins that take per-example
  gradients through ``torch.func`` (``sampy.torch.jsam``);
- ``TORCH``: a plain torch optimizer's ``step(closure=None)`` with no ``base_optimizer``
  (``lr`` is the second positional argument): one gradient per step, from your own backward.

Every fact in :func:`call_shapes` is read from the registry (``sampy.variants()``: the row's
name, its twin, whether it takes a base optimizer, whether it needs examples, its gradient
evaluations per step) or from the twin's class with ``inspect`` (the signatures of ``step``,
``first_step`` and ``second_step``, the ``is_sam_step`` property), so the table cannot drift
from the code. ``tests/test_torch_call_shapes.py`` runs every row's closure kind on a small
model.
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PLAIN = "loss-and-backward closure"
EXAMPLES = "per-example losses"
FORWARD = "forward, inputs, targets"
TORCH = "plain torch step()"
CLOSURE_KINDS = (PLAIN, EXAMPLES, FORWARD, TORCH)

# Methods that some two-call loops need between first_step and second_step.
_OTHER_CALLS = ("ascent_step", "second_ascent_step", "micro_batches", "accumulate")


@dataclass(frozen=True)
class CallShape:
    """How one registry row's twin is stepped.

    Attributes:
        variant: the registry row's name (``ASAM`` is a preset of ``SAM``).
        twin: the twin's class name in ``sampy.torch``.
        takes_base_optimizer: whether the constructor's second argument is ``base_optimizer``
            (otherwise the twin has a built-in base and ``lr`` comes second).
        closure: one of ``CLOSURE_KINDS``.
        step: the ``step`` call, e.g. ``step(closure=None, tail=None)``.
        first_step: the ``first_step`` call of the two-call API, or None when there is none.
        second_step: the ``second_step`` call, or None.
        other_calls: the two-call API's further methods, as calls (``MultiStepSAM.ascent_step``,
            ``SAMAnatomy.second_ascent_step``, ``MSharpnessSAM.micro_batches`` and
            ``accumulate``).
        is_sam_step: whether the twin has an ``is_sam_step`` property (LookSAM: a two-call loop
            runs the second pass only when it is True).
        grad_evals: gradient evaluations per step, as the registry states them.
    """

    variant: str
    twin: str
    takes_base_optimizer: bool
    closure: str
    step: str
    first_step: str | None
    second_step: str | None
    other_calls: tuple[str, ...]
    is_sam_step: bool
    grad_evals: str


def call(cls: type, method: str) -> str | None:
    """``method``'s call as text without ``self`` or annotations, or None if ``cls`` lacks it."""
    function = getattr(cls, method, None)
    if function is None:
        return None
    parameters = list(inspect.signature(function).parameters.values())[1:]
    return f"{method}({', '.join(_argument(p) for p in parameters)})"


def _argument(parameter: inspect.Parameter) -> str:
    if parameter.default is inspect.Parameter.empty:
        return parameter.name
    return f"{parameter.name}={parameter.default!r}"


def closure_kind(cls: type, needs_examples: bool, takes_base_optimizer: bool) -> str:
    """The closure kind of a twin class, from its ``step`` signature and its registry row.

    ``step(forward, ...)`` is ``FORWARD``; a row that needs examples, or a ``step`` whose
    closure is annotated ``ExampleLosses``, is ``EXAMPLES``; a twin without a base optimizer
    and without ``first_step`` is ``TORCH``; the rest take the ``PLAIN`` closure.
    """
    parameters = list(inspect.signature(cls.step).parameters.values())[1:]
    if parameters and parameters[0].name == "forward":
        return FORWARD
    annotation = parameters[0].annotation if parameters else inspect.Parameter.empty
    if needs_examples or "ExampleLosses" in str(annotation):
        return EXAMPLES
    if not takes_base_optimizer and not hasattr(cls, "first_step"):
        return TORCH
    return PLAIN


def call_shapes() -> list[CallShape]:
    """One ``CallShape`` per registry row that has a torch twin, in the registry's order."""
    from sampy.registry import variants

    rows = []
    for variant in variants():
        cls = variant.twin()
        if cls is None:
            continue
        rows.append(
            CallShape(
                variant=variant.name,
                twin=cls.__name__,
                takes_base_optimizer=variant.takes_base,
                closure=closure_kind(cls, variant.needs_examples, variant.takes_base),
                step=call(cls, "step") or "step()",
                first_step=call(cls, "first_step"),
                second_step=call(cls, "second_step"),
                other_calls=tuple(c for m in _OTHER_CALLS if (c := call(cls, m)) is not None),
                is_sam_step=isinstance(inspect.getattr_static(cls, "is_sam_step", None), property),
                grad_evals=variant.grad_evals,
            )
        )
    return rows


def _two_calls(row: CallShape) -> str:
    if row.first_step is None:
        return "–"
    calls = [row.first_step, *row.other_calls, row.second_step or "–"]
    return "; ".join(calls + (["is_sam_step"] if row.is_sam_step else []))


# (header, value, rendered as code)
_COLUMNS: tuple[tuple[str, Callable[[CallShape], str], bool], ...] = (
    ("variant", lambda r: r.variant if r.variant == r.twin else f"{r.variant} ({r.twin})", False),
    ("base_optimizer", lambda r: "yes" if r.takes_base_optimizer else "built in", False),
    ("closure", lambda r: r.closure, False),
    ("step", lambda r: r.step, True),
    ("two-call API", _two_calls, True),
    ("∇ per step", lambda r: r.grad_evals, False),
)


def table_html(rows: Sequence[CallShape] | None = None) -> str:
    """The call shapes as an HTML table (the book's migration page renders it)."""
    rows = call_shapes() if rows is None else rows
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _, _ in _COLUMNS)

    def cell(text: str, code: bool) -> str:
        text = html.escape(text)
        return f"<td><code>{text}</code></td>" if code else f"<td>{text}</td>"

    body = "".join(
        "<tr>" + "".join(cell(value(r), code) for _, value, code in _COLUMNS) + "</tr>"
        for r in rows
    )
    return f'<table class="table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
