"""Seeded fuzz of the expression box (``sampy.expressions``): every input either parses, and
then evaluates to float64 values (finite, ±inf at a pole or an overflow, NaN where undefined)
with no exception and no warning, and a forward-mode gradient equal to autograd's wherever
both are finite; or it is refused with an ``ExpressionError`` that carries a message and a
position inside the text. Never another exception, never a slow check.

Three kinds of input, 1,800 in all, drawn from one seeded generator so that a failure names
its case and reproduces: token soup (the whitelist's names mixed with Python's hostile
syntax), random text (printable and unprintable Unicode, up to past the length bound) and
structured expressions (random trees of every allowed operator and function, including the
corners of the chain rule: disguised constants such as ``0*y``, cone apexes, NaN operands).
Each case is bounded by the parser's own limits (``MAX_LENGTH``, ``MAX_NODES``,
``MAX_NESTING``), and its time is checked.
"""

from __future__ import annotations

import random
import time
import warnings

import numpy as np
import pytest

from sampy.expressions import (
    BINARY_FUNCTIONS,
    FUNCTIONS,
    MAX_LENGTH,
    UNARY_FUNCTIONS,
    ExpressionError,
    expression_function,
    parse_expression,
)

SEED = 20261206
CASES = {"soup": 700, "text": 400, "structured": 700}
# One case (parse, evaluate on a 9 × 9 grid, gradient, autograd gradient) takes a few
# milliseconds; a second means the bounds no longer bound.
SLOW = 1.0

TOKENS = (
    "x", "y", "pi", "e", "(", ")", "+", "-", "*", "/", "**", ",", "1", "2.5", "1e308",
    "1e-308", "0", "9", ".", "[", "]", "{", "}", ":", "lambda", "if", "else", "for", "in",
    "not", "and", "or", "'", '"', "f'", "#", "\\", "__class__", "__import__", "=", ":=", "@",
    "%", "//", "^", "~", "<", ">", "==", "ｘ", "𝐱", "π", "\u200b", "\t", " ", "1j", "True",
    "None", "...", "np", "os", "__builtins__", "0x1f", "1_0", "inf", "nan", "**9", "j",
    *FUNCTIONS,
)  # fmt: skip
LEAVES = ("x", "y", "pi", "e", "0", "0.5", "2", "3", "1e-3", "0*y", "(x*0)", "(y - y)")
GRID = np.linspace(-2.0, 2.0, 9)
# Points for the gradient check: the corners (origin, axes, a negative base) and random ones.
CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [-1.5, 0.5]])


def soup(rng: random.Random) -> str:
    return "".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 120)))


def text(rng: random.Random) -> str:
    size = rng.choice((rng.randint(0, 40), rng.randint(0, MAX_LENGTH + 20)))
    pools = (
        "xy+-*/() .,0123456789eE",
        "".join(chr(c) for c in range(32, 127)),
        "".join(chr(rng.randint(0, 0x2FFFF)) for _ in range(64)),
    )
    pool = rng.choice(pools)
    return "".join(rng.choice(pool) for _ in range(size))


def structured(rng: random.Random, leaves: int = 12) -> str:
    """A random well-formed expression with at most ``leaves`` leaves."""
    if leaves <= 1 or rng.random() < 0.25:
        return rng.choice(LEAVES)
    kind = rng.randrange(4)
    if kind == 0:
        split = rng.randint(1, leaves - 1)
        op = rng.choice(("+", "-", "*", "/", "**"))
        left, right = structured(rng, split), structured(rng, leaves - split)
        if op == "**" and rng.random() < 0.6:
            right = rng.choice(("2", "3", "0.5", "-1", "(2 + 0*y)", "(1/2)", "y"))
        return f"({left} {op} {right})"
    if kind == 1:
        return f"-{structured(rng, leaves - 1)}"
    if kind == 2:
        return f"{rng.choice(UNARY_FUNCTIONS)}({structured(rng, leaves - 1)})"
    split = rng.randint(1, leaves - 1)
    name = rng.choice(BINARY_FUNCTIONS)
    return f"{name}({structured(rng, split)}, {structured(rng, leaves - split)})"


def _check_one(source: str) -> None:
    """The documented outcome for one input, within ``SLOW`` seconds and without a warning."""
    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            expr = parse_expression(source)
        except ExpressionError as error:
            assert isinstance(error.message, str) and error.message, source
            assert error.position is None or 0 <= error.position <= len(source), source
        else:
            X, Y = np.meshgrid(GRID, GRID)
            value, dx, dy = expr.value_and_grad(X, Y)
            for array in (value, dx, dy):
                assert array.shape == X.shape and array.dtype == np.float64, source
            np.testing.assert_array_equal(expr(X, Y), value)
    assert time.perf_counter() - began < SLOW, f"{source!r} took over {SLOW} s"


def _cases(kind: str, make) -> list[str]:
    rng = random.Random(f"{SEED}-{kind}")
    return [make(rng) for _ in range(CASES[kind])]


@pytest.mark.parametrize(("kind", "make"), [("soup", soup), ("text", text)])
def test_any_text_parses_or_is_refused_with_a_message(kind, make) -> None:
    accepted = 0
    for i, source in enumerate(_cases(kind, make)):
        try:
            _check_one(source)
        except AssertionError as failure:
            raise AssertionError(f"{kind} case {i}: {source!r}: {failure}") from None
        accepted += check_accepts(source)
    assert accepted > 0  # the fuzz reaches the evaluation too, not only the refusals


def check_accepts(source: str) -> bool:
    try:
        parse_expression(source)
    except ExpressionError:
        return False
    return True


def test_structured_expressions_have_autograds_gradient_where_both_are_finite() -> None:
    rng = np.random.default_rng(SEED)
    compared = 0
    for i, source in enumerate(_cases("structured", structured)):
        _check_one(source)
        try:
            f = expression_function(source)
        except ExpressionError as error:  # e.g. a constant exponent beyond MAX_EXPONENT
            assert error.message
            continue
        points = np.concatenate([CORNERS, rng.uniform(-2.0, 2.0, (6, 2))])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # autograd's passes are quiet too
            ours, theirs = f.grad(points), f.autograd_grad(points)
        both = np.isfinite(ours) & np.isfinite(theirs)
        compared += int(both.sum())
        np.testing.assert_allclose(
            ours[both], theirs[both], rtol=1e-7, atol=1e-9,
            err_msg=f"structured case {i}: {source!r} at {points.tolist()}",
        )  # fmt: skip
    assert compared > 5000  # most of the 700 × 11 × 2 partial derivatives were compared
