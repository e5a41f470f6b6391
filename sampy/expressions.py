"""User-typed loss landscapes: a safe NumPy expression of ``x`` and ``y``.

The playground lets a reader type a function such as ``(x**2 + y - 11)**2 + sin(3*x)``. That
text box is a code-evaluation surface and must not become one, so nothing here calls
``eval``/``exec`` or compiles the text to bytecode. Instead the text is parsed with ``ast``
(``ast.parse`` only builds a syntax tree), every node of the tree is checked against a small
whitelist, and the checked tree is turned into a tree of Python closures that call NumPy
ufuncs. Evaluation walks those closures and nothing else.

What an expression may contain:

- numbers: integer and float literals (``2``, ``0.5``, ``1e-3``); no complex numbers,
  booleans, ``None``, strings or bytes. Every number is a float64 from the start, so no
  Python integer arithmetic ever runs (``9**9**9`` cannot turn into a huge integer);
- the variables ``x`` and ``y`` and the constants ``pi`` and ``e``;
- unary ``+``/``-`` and the binary operators ``+ - * / **`` (no ``%``, ``//``, ``@``, bit
  operators, comparisons, ``and``/``or`` or ``a if c else b``: none is needed for a smooth
  landscape, and each is one more thing to get wrong);
- calls of the functions in ``FUNCTIONS`` by bare name with positional arguments only:
  ``sin(x)``, not ``np.sin(x)`` (no attribute access, subscripts, keyword or starred
  arguments, lambdas, comprehensions, f-strings or ``:=``).

Bounds: at most ``MAX_LENGTH`` characters, ``MAX_NESTING`` nested brackets (checked by a
character scan *before* ``ast.parse``, whose recursive parser can fail on deep nesting),
``MAX_NODES`` nodes and a tree depth of ``MAX_DEPTH`` (checked without recursion, before
anything recursive walks the tree). The exponent of ``**``: where it does not depend on
``x`` or ``y`` it is folded to a number that must be finite with ``|p| <= MAX_EXPONENT``
(``x**1000`` and ``9**9**9`` are rejected); where it does (``2**x``, ``x**y``) it is allowed,
since float64 powers cannot hang: they overflow to ``inf``.

Evaluation runs under ``np.errstate(all="ignore")``: a pole (``1/(x - 1)`` at ``x = 1``), a
``log`` of a negative number or an overflow gives ``inf``/``nan``, never an exception, and
``sampy.run`` then marks the affected start points as diverged.

Gradients are exact: forward-mode differentiation over the same closure tree (a value and
its two partial derivatives per node), and an ``autograd.numpy`` twin of the tree so that
``TestFunction.autograd_grad`` and ``hessian`` work as for the built-in functions (quietly:
their backward passes run under the same ``errstate``, and autograd's "Output seems
independent of input" warning for a constant is not shown).

At the corners of the chain rule the forward gradient is finite where the function is
differentiable: a stationary inner function times an infinite outer slope counts as 0, not
NaN (``0 · ∞``), so ``x**(2 + 0*y)`` at x < 0 has the gradient ``(2x, 0)`` of ``x**2``
(autograd's is NaN there: its ``log(x) · 0``). Where the function is *not* differentiable,
the outcome is this, by design:

- at the apex of a cone (``sqrt(x**2 + y**2)``, ``hypot(x, y)``, ``abs(x)`` at 0) the
  gradient is the subgradient 0, the smallest element of the subdifferential: the point is
  the cone's minimum, and a run started there stays there instead of being reported as
  diverged;
- ``minimum``/``maximum`` at a tie split the slope evenly, as autograd does, and give the
  slope 0 to an operand that is NaN (the value is NaN there);
- at a pole or a branch point (``1/x`` at 0, ``sqrt(x)`` at 0, ``arctan2(y, x)`` at the
  origin) the gradient is ``inf`` or NaN, as the value is, and ``sampy.run`` records the
  divergence.

>>> f = expression_function("(x - 1)**2 + 10*y**2")
>>> float(f(np.array([1.0, 0.0])))
0.0
>>> check_expression("__import__('os')")
"unknown function '__import__' (column 1); allowed functions: sin, cos, ..."  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import contextlib
import math
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import autograd.numpy as anp
import numpy as np

from sampy.functions import TestFunction

__all__ = [
    "BINARY_FUNCTIONS",
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_LENGTH",
    "MAX_NESTING",
    "MAX_NODES",
    "UNARY_FUNCTIONS",
    "VARIABLES",
    "Expression",
    "ExpressionError",
    "check_expression",
    "expression_function",
    "parse_expression",
]

MAX_LENGTH = 500
MAX_NESTING = 40
MAX_NODES = 300
MAX_DEPTH = 100
MAX_EXPONENT = 100.0

VARIABLES = ("x", "y")
CONSTANTS = {"pi": math.pi, "e": math.e}
DEFAULT_DOMAIN = ((-4.0, 4.0), (-4.0, 4.0))

Array = np.ndarray
Tangent = Array | float | None  # None: structurally zero (the node does not depend on it)


class ExpressionError(ValueError):
    """A rejected expression: ``message`` says why, ``position`` where (0-based index into
    the text as typed, or ``None`` when the problem is the text as a whole)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.message = message
        self.position = position
        where = "" if position is None else f" (column {position + 1})"
        super().__init__(f"{message}{where}")


# --------------------------------------------------------------------------------------------
# The whitelisted functions. Each entry: NumPy ufunc, its autograd.numpy twin, and for one
# argument the derivative as a function of (argument, value); None where it is zero.


def _safe_sign(a: Array, v: Array) -> Array:
    return np.sign(a)


_UNARY: dict[str, tuple[Callable, Callable, Callable[[Array, Array], Array] | None]] = {
    "sin": (np.sin, anp.sin, lambda a, v: np.cos(a)),
    "cos": (np.cos, anp.cos, lambda a, v: -np.sin(a)),
    "tan": (np.tan, anp.tan, lambda a, v: 1.0 + v * v),
    "arcsin": (np.arcsin, anp.arcsin, lambda a, v: 1.0 / np.sqrt(1.0 - a * a)),
    "arccos": (np.arccos, anp.arccos, lambda a, v: -1.0 / np.sqrt(1.0 - a * a)),
    "arctan": (np.arctan, anp.arctan, lambda a, v: 1.0 / (1.0 + a * a)),
    "sinh": (np.sinh, anp.sinh, lambda a, v: np.cosh(a)),
    "cosh": (np.cosh, anp.cosh, lambda a, v: np.sinh(a)),
    "tanh": (np.tanh, anp.tanh, lambda a, v: 1.0 - v * v),
    "arcsinh": (np.arcsinh, anp.arcsinh, lambda a, v: 1.0 / np.sqrt(a * a + 1.0)),
    "exp": (np.exp, anp.exp, lambda a, v: v),
    "expm1": (np.expm1, anp.expm1, lambda a, v: v + 1.0),
    "log": (np.log, anp.log, lambda a, v: 1.0 / a),
    "log1p": (np.log1p, anp.log1p, lambda a, v: 1.0 / (1.0 + a)),
    "log2": (np.log2, anp.log2, lambda a, v: 1.0 / (a * math.log(2.0))),
    "log10": (np.log10, anp.log10, lambda a, v: 1.0 / (a * math.log(10.0))),
    "sqrt": (np.sqrt, anp.sqrt, lambda a, v: 0.5 / v),
    "abs": (np.abs, anp.abs, _safe_sign),
    "square": (np.square, anp.square, lambda a, v: 2.0 * a),
    "sign": (np.sign, anp.sign, None),
}

_BINARY: dict[str, tuple[Callable, Callable]] = {
    "minimum": (np.minimum, anp.minimum),
    "maximum": (np.maximum, anp.maximum),
    "arctan2": (np.arctan2, anp.arctan2),
    "hypot": (np.hypot, anp.hypot),
}

UNARY_FUNCTIONS: tuple[str, ...] = tuple(_UNARY)
BINARY_FUNCTIONS: tuple[str, ...] = tuple(_BINARY)
FUNCTIONS: tuple[str, ...] = (*UNARY_FUNCTIONS, *BINARY_FUNCTIONS)
_ALLOWED = ", ".join(FUNCTIONS)

_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_OTHER_OPERATORS = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
}

# A specific message for every construct a reader (or an attacker) is likely to try; any
# other node type gets a generic one naming the construct.
_FORBIDDEN = {
    ast.Lambda: "lambda functions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.List: "lists are not allowed",
    ast.Tuple: "tuples are not allowed (only numbers, x, y and function calls)",
    ast.Set: "sets are not allowed",
    ast.Dict: "dictionaries are not allowed",
    ast.IfExp: "conditional expressions ('a if c else b') are not allowed",
    ast.Compare: "comparisons (<, ==, ...) are not allowed",
    ast.BoolOp: "'and'/'or' are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.NamedExpr: "assignment expressions (':=') are not allowed",
    ast.Subscript: "indexing and slicing ('[...]') are not allowed",
    ast.Starred: "starred arguments ('*args') are not allowed",
    ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed",
    ast.YieldFrom: "'yield' is not allowed",
    ast.Slice: "indexing and slicing ('[...]') are not allowed",
}


# --------------------------------------------------------------------------------------------
# The compiled tree


@dataclass(frozen=True, eq=False)
class _Node:
    """One checked node, compiled three ways (NumPy value, forward-mode gradient, autograd).

    ``evaluate(x, y)`` and ``autograd(x, y)`` return the value; ``forward(x, y)`` returns
    ``(value, d/dx, d/dy)`` with ``None`` for a derivative that is structurally zero.
    ``constant`` holds the folded value of a node that depends on neither variable.
    """

    evaluate: Callable[[Array, Array], Array]
    forward: Callable[[Array, Array], tuple[Array, Tangent, Tangent]]
    autograd: Callable[[Array, Array], Array]
    constant: float | None = None


def _constant(value: float) -> _Node:
    c = np.float64(value)  # float64, never a Python number: overflow gives inf, not an error
    return _Node(
        evaluate=lambda x, y: c,
        forward=lambda x, y: (c, None, None),
        autograd=lambda x, y: c,
        constant=float(c),
    )


def _variable(index: int) -> _Node:
    if index == 0:
        return _Node(
            evaluate=lambda x, y: x,
            forward=lambda x, y: (x, 1.0, None),
            autograd=lambda x, y: x,
        )
    return _Node(
        evaluate=lambda x, y: y,
        forward=lambda x, y: (y, None, 1.0),
        autograd=lambda x, y: y,
    )


def _fold(node: _Node) -> _Node:
    """Replace a node that depends on neither variable by its value (float64 arithmetic)."""
    with np.errstate(all="ignore"):
        return _constant(float(node.evaluate(np.float64(0.0), np.float64(0.0))))


def _scale(t: Tangent, s: Array | float) -> Tangent:
    return None if t is None else t * s


# The careful pass. The forward pass first runs with plain IEEE products, the fast way; only
# when a partial derivative comes out NaN is it run again with ``_MODE.careful`` set, where
# ``_chain`` takes 0 · ∞ as 0 and the binary functions guard their ties and apexes. A NaN in a
# tangent always reaches the result (every rule is arithmetic), so a result without NaN is
# exactly what the careful pass would give, and the common case pays nothing for the corners.
class _Mode(threading.local):
    careful = False  # per thread; a class attribute, so reading it never misses


_MODE = _Mode()


def _chain(t: Tangent, slope: Array | float) -> Tangent:
    """``t · slope`` for a slope that can be infinite or undefined, with ``0 · slope = 0``
    in the careful pass (``_MODE.careful``).

    The chain rule at a point where the inner function is stationary (tangent exactly 0)
    and the outer one has an infinite slope (``sqrt`` at 0, ``log`` at 0, a division by 0)
    meets ``0 · ∞``, which IEEE arithmetic makes NaN. The product is taken to be 0: the
    outer slope's size does not matter when the inner function does not move. This gives
    the exact derivative where one exists (``sqrt(x**4)`` at 0: 0; ``x**(2 + 0*y)`` at
    x < 0, whose ``log(x)`` term is multiplied by the exponent's zero derivative: 0) and the
    subgradient 0 at a cone's apex (see ``Expression``).
    """
    if t is None:
        return None
    if not _MODE.careful:
        return t * slope
    if np.ndim(t) == 0:
        return None if t == 0 else t * slope
    return np.where(t == 0, 0.0, t * slope)


def _add(a: Tangent, b: Tangent) -> Tangent:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _neg(t: Tangent) -> Tangent:
    return None if t is None else -t


def _negate(a: _Node) -> _Node:
    fa, ga, aa = a.evaluate, a.forward, a.autograd

    def forward(x, y):
        v, dx, dy = ga(x, y)
        return np.negative(v), _neg(dx), _neg(dy)

    return _Node(
        evaluate=lambda x, y: np.negative(fa(x, y)),
        forward=forward,
        autograd=lambda x, y: anp.negative(aa(x, y)),
    )


def _binary(op: type[ast.operator], a: _Node, b: _Node) -> _Node:
    fa, fb = a.evaluate, b.evaluate
    ga, gb = a.forward, b.forward
    aa, ab = a.autograd, b.autograd
    if op is ast.Add:

        def forward(x, y):
            va, ax, ay = ga(x, y)
            vb, bx, by = gb(x, y)
            return np.add(va, vb), _add(ax, bx), _add(ay, by)

        return _Node(
            lambda x, y: np.add(fa(x, y), fb(x, y)),
            forward,
            lambda x, y: anp.add(aa(x, y), ab(x, y)),
        )
    if op is ast.Sub:

        def forward(x, y):
            va, ax, ay = ga(x, y)
            vb, bx, by = gb(x, y)
            return np.subtract(va, vb), _add(ax, _neg(bx)), _add(ay, _neg(by))

        return _Node(
            lambda x, y: np.subtract(fa(x, y), fb(x, y)),
            forward,
            lambda x, y: anp.subtract(aa(x, y), ab(x, y)),
        )
    if op is ast.Mult:

        def forward(x, y):
            va, ax, ay = ga(x, y)
            vb, bx, by = gb(x, y)
            return (
                np.multiply(va, vb),
                _add(_scale(ax, vb), _scale(bx, va)),
                _add(_scale(ay, vb), _scale(by, va)),
            )

        return _Node(
            lambda x, y: np.multiply(fa(x, y), fb(x, y)),
            forward,
            lambda x, y: anp.multiply(aa(x, y), ab(x, y)),
        )
    if op is ast.Div:

        def forward(x, y):
            va, ax, ay = ga(x, y)
            vb, bx, by = gb(x, y)
            v = np.divide(va, vb)
            # d(a/b) = (da − (a/b) db) / b
            inv = np.divide(1.0, vb)
            return (
                v,
                _chain(_add(ax, _neg(_chain(bx, v))), inv),
                _chain(_add(ay, _neg(_chain(by, v))), inv),
            )

        return _Node(
            lambda x, y: np.divide(fa(x, y), fb(x, y)),
            forward,
            lambda x, y: anp.divide(aa(x, y), ab(x, y)),
        )
    # ast.Pow
    if b.constant is not None:
        p = np.float64(b.constant)
        if p == 0.0:  # a**0 is 1 everywhere (also at a = 0, as NumPy has it)
            return _constant(1.0)

        def forward(x, y):
            va, ax, ay = ga(x, y)
            slope = np.multiply(p, np.power(va, p - 1.0))
            return np.power(va, p), _chain(ax, slope), _chain(ay, slope)

        return _Node(
            lambda x, y: np.power(fa(x, y), p), forward, lambda x, y: anp.power(aa(x, y), p)
        )

    def forward(x, y):
        va, ax, ay = ga(x, y)
        vb, bx, by = gb(x, y)
        v = np.power(va, vb)
        # ∂/∂a = b a^(b−1) and ∂/∂b = log(a) a^b, written as autograd writes them (a^(b−1)
        # with exponent 1 where b = 0, log(1) where a = 0) so that the two agree everywhere.
        da = np.multiply(vb, np.power(va, np.where(vb != 0, vb - 1.0, 1.0)))
        db = np.multiply(np.log(np.where(va == 0, 1.0, va)), v)
        return v, _add(_chain(ax, da), _chain(bx, db)), _add(_chain(ay, da), _chain(by, db))

    return _Node(
        lambda x, y: np.power(fa(x, y), fb(x, y)),
        forward,
        lambda x, y: anp.power(aa(x, y), ab(x, y)),
    )


def _call_unary(name: str, a: _Node) -> _Node:
    f_np, f_ag, slope_of = _UNARY[name]
    fa, ga, aa = a.evaluate, a.forward, a.autograd

    def forward(x, y):
        va, ax, ay = ga(x, y)
        v = f_np(va)
        if slope_of is None or (ax is None and ay is None):
            return v, None, None
        slope = slope_of(va, v)
        return v, _chain(ax, slope), _chain(ay, slope)

    return _Node(lambda x, y: f_np(fa(x, y)), forward, lambda x, y: f_ag(aa(x, y)))


def _call_binary(name: str, a: _Node, b: _Node) -> _Node:
    f_np, f_ag = _BINARY[name]
    fa, fb = a.evaluate, b.evaluate
    ga, gb = a.forward, b.forward
    aa, ab = a.autograd, b.autograd

    def slopes(va: Array, vb: Array, v: Array) -> tuple[Array, Array]:
        """∂v/∂a and ∂v/∂b."""
        if name in ("minimum", "maximum"):
            # Ties split the derivative evenly, as autograd does; with a NaN operand the
            # value is NaN and neither operand "wins": slope 0 for both, as autograd has it.
            a_wins = np.where(va == v, 1.0, 0.0)
            b_wins = np.where(vb == v, 1.0, 0.0)
            both = a_wins + b_wins
            if not _MODE.careful:
                return a_wins / both, b_wins / both
            share = np.divide(1.0, both, out=np.zeros_like(both), where=both > 0)
            return a_wins * share, b_wins * share
        if name == "arctan2":  # arctan2(a, b): the angle of the point (b, a)
            r2 = va * va + vb * vb
            return vb / r2, -va / r2
        # hypot: a cone with its apex where both operands are 0; the subgradient 0 there.
        if not _MODE.careful:
            return va / v, vb / v
        apex = v == 0
        safe = np.where(apex, 1.0, v)
        return np.where(apex, 0.0, va / safe), np.where(apex, 0.0, vb / safe)

    def forward(x, y):
        va, ax, ay = ga(x, y)
        vb, bx, by = gb(x, y)
        v = f_np(va, vb)
        sa, sb = slopes(va, vb, v)
        return v, _add(_chain(ax, sa), _chain(bx, sb)), _add(_chain(ay, sa), _chain(by, sb))

    return _Node(
        lambda x, y: f_np(fa(x, y), fb(x, y)), forward, lambda x, y: f_ag(aa(x, y), ab(x, y))
    )


# --------------------------------------------------------------------------------------------
# Checking


class _Checker:
    """Checks a parsed tree against the whitelist and compiles it into ``_Node`` closures."""

    def __init__(self, text: str, offset: int) -> None:
        self.text = text  # the stripped text that was parsed
        self.offset = offset  # where it starts in the text as typed
        self.encoded = text.encode("utf-8")

    def position(self, node: ast.AST) -> int | None:
        col = getattr(node, "col_offset", None)
        if col is None:
            return None
        # col_offset counts UTF-8 bytes; the reader counts characters.
        return self.offset + len(self.encoded[:col].decode("utf-8", errors="ignore"))

    def quote(self, node: ast.AST, value: float) -> str:
        """The text of ``node`` as typed and, where that is not simply the number, its value:
        ``100.0000001`` stays ``100.0000001`` (not rounded), ``(50*3)`` is ``(50*3) = 150``."""
        typed = ast.get_source_segment(self.text, node)
        shown = repr(value)
        if typed is None:
            return shown
        try:
            if float(typed) == value:
                return typed
        except ValueError:
            pass
        return f"{typed} = {shown}"

    def typed(self, node: ast.AST) -> str:
        """The text of ``node`` as typed: Python's parser folds look-alike letters (NFKC), so
        ``node.id`` of ``ｆｏｏ`` is ``foo``, which the reader did not type."""
        return ast.get_source_segment(self.text, node) or getattr(node, "id", "")

    def fail(self, message: str, node: ast.AST) -> ExpressionError:
        return ExpressionError(message, self.position(node))

    def compile(self, node: ast.AST) -> _Node:
        compiled, children = self._compile(node)
        if children and all(child.constant is not None for child in children):
            # Neither variable occurs below: fold to one float64 now (this is also how the
            # exponent of ** is known to be a number, to be bounded).
            return _fold(compiled)
        return compiled

    def _compile(self, node: ast.AST) -> tuple[_Node, list[_Node]]:
        """The compiled node and its compiled operands (empty for a leaf)."""
        if isinstance(node, ast.Constant):
            return self._literal(node), []
        if isinstance(node, ast.Name):
            if node.id in VARIABLES:
                return _variable(VARIABLES.index(node.id)), []
            if node.id in CONSTANTS:
                return _constant(CONSTANTS[node.id]), []
            if node.id in FUNCTIONS:
                raise self.fail(f"'{node.id}' is a function: call it, e.g. {node.id}(x)", node)
            raise self.fail(
                f"unknown name {self.typed(node)!r}; use the variables x and y, the constants "
                f"pi and e, and the functions {_ALLOWED}",
                node,
            )
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, (ast.USub, ast.UAdd)):
                operand = self.compile(node.operand)
                plus = isinstance(node.op, ast.UAdd)
                return (operand if plus else _negate(operand)), [operand]
            symbol = "not" if isinstance(node.op, ast.Not) else "~"
            raise self.fail(f"the operator '{symbol}' is not allowed; use + - * / **", node)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Attribute):
            hint = "; write sin(x), not np.sin(x)" if node.attr in FUNCTIONS else ""
            raise self.fail(f"attribute access ('.{node.attr}') is not allowed{hint}", node)
        for kind, message in _FORBIDDEN.items():
            if isinstance(node, kind):
                raise self.fail(message, node)
        raise self.fail(f"'{type(node).__name__}' expressions are not allowed", node)

    def _literal(self, node: ast.Constant) -> _Node:
        value = node.value
        if isinstance(value, bool):
            raise self.fail(f"booleans ({value}) are not allowed; use 1 or 0", node)
        if value is None:
            raise self.fail("None is not allowed", node)
        if isinstance(value, complex):
            raise self.fail("complex numbers are not supported", node)
        if isinstance(value, (str, bytes)):
            kind = "strings" if isinstance(value, str) else "bytes"
            raise self.fail(f"{kind} are not allowed", node)
        if not isinstance(value, (int, float)):
            raise self.fail(f"the literal {value!r} is not allowed", node)
        try:
            number = float(value)  # int → float at once: no Python int arithmetic, ever
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise self.fail("this number is too large (it overflows to infinity)", node)
        return _constant(number)

    def _binop(self, node: ast.BinOp) -> tuple[_Node, list[_Node]]:
        op = type(node.op)
        if op not in _OPERATORS:
            symbol = _OTHER_OPERATORS.get(op, type(node.op).__name__)
            hint = "; use ** for powers" if op is ast.BitXor else ""
            raise self.fail(f"the operator '{symbol}' is not allowed; use + - * / **{hint}", node)
        left = self.compile(node.left)
        right = self.compile(node.right)
        if op is ast.Pow and right.constant is not None:
            p = right.constant
            if not (math.isfinite(p) and abs(p) <= MAX_EXPONENT):
                raise self.fail(
                    f"the exponent of '**' must be a finite number with |p| <= "
                    f"{MAX_EXPONENT:g}, got {self.quote(node.right, p)}",
                    node.right,
                )
        return _binary(op, left, right), [left, right]

    def _call(self, node: ast.Call) -> tuple[_Node, list[_Node]]:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                raise self.fail(
                    f"attribute access ('.{node.func.attr}') is not allowed; call the allowed "
                    f"functions by bare name, e.g. sin(x)",
                    node.func,
                )
            raise self.fail("only the allowed functions can be called, by name: e.g. sin(x)", node)
        name = node.func.id
        if name not in FUNCTIONS:
            raise self.fail(
                f"unknown function {self.typed(node.func)!r}; allowed functions: {_ALLOWED}", node
            )
        if node.keywords:
            raise self.fail(f"keyword arguments are not allowed (in {name}(...))", node)
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.fail("starred arguments ('*args') are not allowed", arg)
        arity = 1 if name in _UNARY else 2
        if len(node.args) != arity:
            plural = "" if arity == 1 else "s"
            raise self.fail(f"{name} takes {arity} argument{plural}, got {len(node.args)}", node)
        args = [self.compile(arg) for arg in node.args]
        if arity == 1:
            return _call_unary(name, args[0]), args
        return _call_binary(name, args[0], args[1]), args


def _check_nesting(text: str, offset: int) -> None:
    """Reject deep bracket nesting by a character scan, before ``ast.parse`` recurses.

    Brackets inside a string literal or a comment are no nesting and do not count (the
    string is rejected later, with its own message; the comment is ignored by the parser).
    """
    depth = 0
    quote = ""  # the open string's delimiter: a quote, or three of them; "" outside one
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 2  # an escaped character, e.g. \' inside '...'
                continue
            if text.startswith(quote, i):
                i += len(quote)
                quote = ""
                continue
            i += 1
            continue
        if char == "#":
            break  # a comment runs to the end of the (single) line
        if char in "'\"":
            quote = text[i : i + 3] if text.startswith(char * 3, i) else char
            i += len(quote)
            continue
        if char in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise ExpressionError(
                    f"brackets are nested too deeply (more than {MAX_NESTING} levels)", offset + i
                )
        elif char in ")]}":
            depth -= 1
        i += 1


def _check_size(tree: ast.AST, checker: _Checker) -> int:
    """Node count and depth, iteratively (a recursive walk could itself overflow); returns
    the count."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (ast.expr_context, ast.operator, ast.unaryop)):
            continue  # Load, Add, USub...: markers, not operations
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(
                f"the expression is too long (more than {MAX_NODES} numbers, names and operations)"
            )
        if depth > MAX_DEPTH:
            raise checker.fail(
                f"the expression is nested too deeply (more than {MAX_DEPTH} levels of "
                f"operations inside one another; a long sum a + b + c + ... counts one level "
                f"per term)",
                node,
            )
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return count


# --------------------------------------------------------------------------------------------
# The public API


@dataclass(frozen=True, eq=False)
class Expression:
    """A checked expression of ``x`` and ``y``, ready to evaluate and differentiate.

    Build it with ``parse_expression``. ``expr(x, y)`` evaluates it on arrays of any
    broadcastable shapes (NaN/inf where undefined, nothing raises); ``value_and_grad(x, y)``
    adds the two partial derivatives. ``variables`` lists the variables that occur;
    ``nodes`` counts the numbers, names and operations of the text (what ``MAX_NODES``
    bounds), a measure of what one evaluation costs.
    """

    text: str
    variables: tuple[str, ...]
    _root: _Node = field(repr=False)
    nodes: int = 0

    @staticmethod
    def _inputs(x: object, y: object) -> tuple[Array, Array, tuple[int, ...]]:
        xa = np.asarray(x, dtype=float)
        ya = np.asarray(y, dtype=float)
        return xa, ya, np.broadcast_shapes(xa.shape, ya.shape)

    def __call__(self, x: object, y: object) -> Array:
        """The value at every point of ``np.broadcast(x, y)``, as float64."""
        xa, ya, shape = self._inputs(x, y)
        with np.errstate(all="ignore"):
            value = self._root.evaluate(xa, ya)
        return _full(value, shape)

    def value_and_grad(self, x: object, y: object) -> tuple[Array, Array, Array]:
        """``(f, ∂f/∂x, ∂f/∂y)`` at every point of ``np.broadcast(x, y)``."""
        xa, ya, shape = self._inputs(x, y)
        value, dx, dy = self._forward(xa, ya)
        return _full(value, shape), _full(dx, shape), _full(dy, shape)

    def _forward(self, x: Array, y: Array) -> tuple[Array, Tangent, Tangent]:
        """The forward pass, run again carefully (``_MODE``) at the points where a partial
        derivative came out NaN, and only there."""
        with np.errstate(all="ignore"):
            value, dx, dy = self._root.forward(x, y)
            if not (_has_nan(dx) or _has_nan(dy)):
                return value, dx, dy
            shape = np.broadcast_shapes(np.shape(x), np.shape(y))
            dx, dy = np.array(_full(dx, shape)), np.array(_full(dy, shape))  # writable copies
            redo = np.isnan(dx) | np.isnan(dy)
            _MODE.careful = True
            try:
                _, again_x, again_y = self._root.forward(
                    np.broadcast_to(x, shape)[redo], np.broadcast_to(y, shape)[redo]
                )
            finally:
                _MODE.careful = False
            count = (int(redo.sum()),)
            dx[redo], dy[redo] = _full(again_x, count), _full(again_y, count)
        return value, dx, dy

    # Point-array forms, the convention of ``TestFunction``: points of shape (..., 2).

    def on_points(self, points: object) -> Array:
        """The value at points of shape ``(..., 2)``; shape ``(...)``."""
        p = _points(points)
        return self(p[..., 0], p[..., 1])

    def grad_on_points(self, points: object) -> Array:
        """The gradient at points of shape ``(..., 2)``; shape ``(..., 2)``."""
        p = _points(points)
        _, dx, dy = self._forward(p[..., 0], p[..., 1])
        grad = np.empty(p.shape)
        grad[..., 0] = 0.0 if dx is None else dx
        grad[..., 1] = 0.0 if dy is None else dy
        return grad

    def autograd_on_points(self, points: Array) -> Array:
        """The value at points ``(..., 2)`` written with ``autograd.numpy`` (differentiable)."""
        u, v = points[..., 0], points[..., 1]
        with np.errstate(all="ignore"):
            value = self._root.autograd(u, v)
            if self._root.constant is not None:
                # A constant: give it the batch shape, through the input so autograd sees a
                # (zero) dependence; the points are finite, so 0·u is exactly 0.
                value = value + 0.0 * u
        return value


def _has_nan(t: Tangent) -> bool:
    return t is not None and bool(np.isnan(t).any())


def _full(value: Tangent, shape: tuple[int, ...]) -> Array:
    if value is None:
        return np.zeros(shape)
    value = np.asarray(value, dtype=float)
    if value.shape != shape:
        value = np.array(np.broadcast_to(value, shape))
    return value


def _points(points: object) -> Array:
    p = np.asarray(points, dtype=float)
    if p.ndim == 0 or p.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2), got {p.shape}")
    return p


def parse_expression(text: str) -> Expression:
    """Check ``text`` and compile it into an ``Expression``; raise ``ExpressionError`` if it
    is not allowed (the message names the offending construct, ``position`` locates it).

    Nothing in ``text`` is ever executed: see the module docstring for what is allowed.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"the expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"the expression is too long ({len(text)} characters; at most {MAX_LENGTH})"
        )
    stripped = text.strip()
    offset = len(text) - len(text.lstrip())
    if not stripped:
        raise ExpressionError(
            "the expression is empty; type a function of x and y, e.g. x**2 + y**2"
        )
    for i, char in enumerate(stripped):
        if not (char.isprintable() or char == "\t"):
            raise ExpressionError(
                f"the expression must be one line of printable text; found {char!r}", offset + i
            )
    _check_nesting(stripped, offset)
    try:
        with warnings.catch_warnings():
            # e.g. SyntaxWarning "invalid decimal literal" for '9if': the error says it all
            warnings.simplefilter("ignore")
            tree = ast.parse(stripped, mode="eval")
    except SyntaxError as error:
        # offset is 1-based; 0 means "at the end of the text" (an unfinished expression).
        if error.offset is None:
            column = None
        elif error.offset == 0:
            column = offset + len(stripped)
        else:
            column = offset + min(error.offset - 1, len(stripped))
        raise ExpressionError(f"syntax error: {error.msg}", column) from None
    except (RecursionError, MemoryError, ValueError) as error:
        # The character scan should stop these first; ast.parse raises them on inputs that
        # overwhelm its parser, and they must still reach the reader as a message.
        raise ExpressionError(f"the expression cannot be parsed ({type(error).__name__})") from None
    checker = _Checker(stripped, offset)
    nodes = _check_size(tree, checker)
    root = checker.compile(tree.body)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    variables = tuple(v for v in VARIABLES if v in names)
    return Expression(text=stripped, variables=variables, _root=root, nodes=nodes)


def check_expression(text: str) -> str | None:
    """``None`` if ``text`` is an allowed expression, else the message to show the reader."""
    try:
        parse_expression(text)
    except ExpressionError as error:
        return str(error)
    return None


def _quiet_autograd() -> contextlib.AbstractContextManager:
    """Autograd's backward passes without warnings: the same ``errstate`` as the forward pass
    (a pole's ``inf``/NaN is the answer, not a mistake) and no "Output seems independent of
    input" for an expression that is constant in a variable."""
    stack = contextlib.ExitStack()
    stack.enter_context(np.errstate(all="ignore"))
    stack.enter_context(warnings.catch_warnings())
    warnings.filterwarnings("ignore", message="Output seems independent of input")
    return stack


@dataclass(frozen=True, eq=False)
class _ExpressionFunction(TestFunction):
    """A ``TestFunction`` whose autograd gradient and Hessian run quietly (``_quiet_autograd``)."""

    __test__ = False

    def autograd_grad(self, x: np.ndarray) -> np.ndarray:
        """Gradient by autograd, with no warning for a pole or a constant."""
        with _quiet_autograd():
            return super().autograd_grad(x)

    def hessian(self, x: np.ndarray) -> np.ndarray:
        """Hessian by autograd, with no warning for a pole or a constant."""
        with _quiet_autograd():
            return super().hessian(x)

    def value_and_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Loss and (forward-mode) gradient, with no warning for a pole."""
        with np.errstate(all="ignore"):
            return super().value_and_grad(x)


def expression_function(
    text: str,
    *,
    domain: tuple[tuple[float, float], ...] = DEFAULT_DOMAIN,
    name: str = "expression",
) -> TestFunction:
    """A 2-D ``TestFunction`` for the expression ``text`` (raises ``ExpressionError``).

    The gradient is the exact forward-mode gradient of the expression (``f.grad``, what the
    optimizers call); ``f.fn`` is written with ``autograd.numpy``, so ``f.autograd_grad`` and
    ``f.hessian`` work too. No minima are known: ``minima`` is empty and ``fmin`` is NaN.
    ``sampy.run(opt, f, x0, steps)`` works on it as on any registered function; at a pole
    the values are ``inf``/``nan`` and the run records divergence instead of raising. Where
    the expression is not differentiable, ``f.grad`` is the subgradient 0 at a cone's apex
    (``sqrt(x**2 + y**2)`` at the origin: a run started there stays) and ``inf``/NaN at a
    pole or branch point (the module docstring lists the cases). ``f.autograd_grad`` and
    ``f.hessian`` raise no NumPy or autograd warning.
    """
    expression = parse_expression(text)
    if len(domain) != 2 or any(len(pair) != 2 or not pair[0] < pair[1] for pair in domain):
        raise ValueError(f"domain must be two (low, high) pairs with low < high, got {domain!r}")
    return _ExpressionFunction(
        name=name,
        fn=expression.autograd_on_points,
        dim=2,
        domain=tuple((float(lo), float(hi)) for lo, hi in domain),
        minima=np.zeros((0, 2)),
        fmin=float("nan"),
        analytic_grad=expression.grad_on_points,
        params={"expression": expression.text},
        description=expression.text,
    )
