"""The browser twin's landscapes and typed expressions against ``sampy.functions`` and
``sampy.expressions``: the same domains, minima and minimum values, the same losses and
gradients at random points, the same parameters refused, and the same language of typed
landscapes (what one accepts the other accepts, and both give the same values and exact
gradients).
"""

from __future__ import annotations

import numpy as np
import pytest
from lab_helpers import node_library

import sampy
from sampy.expressions import check_expression, parse_expression
from sampy.lab_metadata import FUNCTION_KNOBS
from sampy.playground import choices

FUNCTIONS = choices.two_d_function_names()
# Parameters other than the defaults: each factory's geometry (domain, minima) must follow.
PARAMETERS = [
    ("sharp_flat", {"sharpness": 30.0}),
    ("sharp_flat_wells", {"width_sharp": 0.3, "depth_flat": 1.2}),
    ("sharp_flat_wells", {"width_sharp": 0.05, "width_flat": 2.0, "depth_sharp": 0.5}),
    ("ill_conditioned", {"condition": 50.0}),
    ("ill_conditioned", {"lambdas": [1.0, 3.0]}),
    ("rosenbrock", {"a": 2.0, "b": 50.0}),
    ("rastrigin", {"A": 5.0}),
    ("ackley", {"a": 10.0, "b": 0.3, "c": 3.0}),
    ("quadratic", {"A": [[2.0, 0.5], [0.5, 1.0]], "b": [1.0, -1.0]}),
]
CASES = [(name, {}) for name in FUNCTIONS] + PARAMETERS


def points(f, n: int = 400, seed: int = 0) -> np.ndarray:
    (x_lo, x_hi), (y_lo, y_hi) = f.domain
    return np.random.default_rng(seed).uniform((x_lo, y_lo), (x_hi, y_hi), size=(n, 2))


@pytest.fixture(scope="module")
def twin_functions() -> list[dict]:
    """Every case evaluated by the twin in one node process."""
    payload = [
        {"name": name, "params": params, "x": points(sampy.functions.get(name, **params)).tolist()}
        for name, params in CASES
    ]
    return node_library(
        """
        return input.map(({name, params, x}) => {
          const f = lab.functions.get(name, params);
          const flat = Float64Array.from(x.flat());
          return {domain: f.domain, minima: f.minima, fmin: f.fmin, labels: f.minimaLabels,
                  params: f.params, value: Array.from(f.value(flat)),
                  grad: Array.from(f.grad(flat))};
        });
        """,
        payload,
    )


def close(a, b, tol: float) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(np.abs(a - b) <= tol * np.maximum(1.0, np.abs(b))))


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{n}{p or ''}" for n, p in CASES])
def test_the_twin_has_the_same_landscape(twin_functions: list[dict], index: int) -> None:
    name, params = CASES[index]
    f = sampy.functions.get(name, **params)
    twin = twin_functions[index]
    assert close(twin["domain"], f.domain, 1e-15), (twin["domain"], f.domain)
    assert close(twin["minima"], f.minima, 1e-12), (twin["minima"], f.minima.tolist())
    assert close(twin["fmin"], f.fmin, 1e-12)
    assert tuple(twin["labels"]) == tuple(f.minima_labels)
    assert set(twin["params"]) == set(f.params)
    for key, value in f.params.items():
        assert close(twin["params"][key], value, 1e-15), (key, twin["params"][key], value)
    x = points(f)
    # The gradient's terms can cancel (near a minimum, on a ridge), so compare at the size of
    # the terms: the gradient's largest coordinate over the points.
    scale = float(np.abs(f.grad(x)).max())
    assert close(twin["value"], f(x), 1e-12)
    assert np.abs(np.reshape(twin["grad"], x.shape) - f.grad(x)).max() <= 1e-12 * scale


@pytest.mark.parametrize(
    "name, params, parameter",
    [
        ("sharp_flat", {"sharpness": -1.0}, "sharpness"),
        ("sharp_flat_wells", {"width_sharp": 0.0}, "width_sharp"),
        ("rosenbrock", {"b": 0.0}, "b"),
        ("ill_conditioned", {"condition": 0.5}, "condition"),
        ("ill_conditioned", {"lambdas": [1.0, -2.0]}, "lambdas"),
        ("sphere", {"dim": 3}, "dim"),
    ],
)
def test_bad_parameters_are_refused_by_name(name: str, params: dict, parameter: str) -> None:
    message = node_library(
        """
        try { lab.functions.get(input.name, input.params); return null; }
        catch (error) {
          return error instanceof RangeError ? error.message : `not a RangeError: ${error}`;
        }
        """,
        {"name": name, "params": params},
    )
    assert message is not None and parameter in message, message
    if parameter != "dim":  # the reference has any dimension; the laboratory is 2-D
        with pytest.raises(ValueError, match=parameter.split("[")[0]):
            sampy.functions.get(name, **params)


# --------------------------------------------------------------------------- typed landscapes

ACCEPTED = [
    "x**2 + 3*y**2",
    "sin(3*x)*cos(y) + 0.1*(x**2 + y**2)",
    "(x**2 + y - 11)**2 + (x + y**2 - 7)**2",
    "-x**2",
    "2**-x + y",
    "x**y + arctan2(y, x) + hypot(x, y)",
    "abs(x) + sign(y)*y + minimum(x, y) + maximum(x, 1)",
    "exp(-(x**2 + y**2)) + log1p(x**2) + log2(2 + y**2) + log10(3 + x**2)",
    "sqrt(1 + x**2) + tanh(y) + arcsinh(x) + cosh(y/4) + sinh(x/4) + expm1(y/3)",
    "arcsin(x/10) + arccos(y/10) + arctan(x) + tan(y/5) + square(x - y) + log(2 + cos(x))",
    "pi*x + e*y",
    "1e-3*x**4 - 1.5e1*y",
    "  x*y  ",
    "+x - -y",
    "x**0 + y**1",
    "((((x))))**2",
]
REFUSED = [
    "",
    "   ",
    "x^2",
    "2x",
    "x y",
    "__import__('os').system('id')",
    "np.sin(x)",
    "x.real",
    "x**1000",
    "9**9**9",
    "x % 2",
    "x // 2",
    "x if y else 1",
    "x < y",
    "lambda: 1",
    "[x, y]",
    "x[0]",
    "sin",
    "sin(x, y)",
    "hypot(x)",
    "z + 1",
    "foo(x)",
    "x = 1",
    "(x",
    "x +",
    "'x'",
    "1e999 * x",
    "(" * 60 + "x" + ")" * 60,
    "x" + "+x" * 400,
    "True + x",
]


@pytest.fixture(scope="module")
def twin_expressions() -> list[dict]:
    grid = np.random.default_rng(1).uniform(-3, 3, size=(50, 2))
    texts = ACCEPTED + REFUSED
    return node_library(
        """
        return input.texts.map((text) => {
          const message = lab.checkExpression(text);
          if (message !== null) return {message};
          const e = lab.parseExpression(text);
          const x = Float64Array.from(input.points.flat());
          const nan = (v) => Array.from(v, (u) => (Number.isFinite(u) ? u : null));
          return {message, value: nan(e.value(x)), grad: nan(e.grad(x))};
        });
        """,
        {"texts": texts, "points": grid.tolist()},
    ), grid


@pytest.mark.parametrize("text", ACCEPTED)
def test_an_expression_both_accept_has_the_same_values_and_gradient(twin_expressions, text):
    replies, grid = twin_expressions
    reply = replies[(ACCEPTED + REFUSED).index(text)]
    assert check_expression(text) is None
    assert reply["message"] is None, reply["message"]
    expression = parse_expression(text)
    value, dx, dy = expression.value_and_grad(grid[:, 0], grid[:, 1])
    twin_value = np.array([np.nan if v is None else v for v in reply["value"]])
    twin_grad = np.array([np.nan if v is None else v for v in reply["grad"]]).reshape(-1, 2)
    assert np.array_equal(np.isfinite(twin_value), np.isfinite(value))
    ok = np.isfinite(value)
    assert close(twin_value[ok], value[ok], 1e-12)
    grad = np.stack([dx, dy], axis=-1)
    ok = np.isfinite(grad)
    assert np.array_equal(np.isfinite(twin_grad), ok)
    assert close(twin_grad[ok], grad[ok], 1e-11)


@pytest.mark.parametrize("text", REFUSED, ids=lambda t: t[:30])
def test_an_expression_one_refuses_the_other_refuses(twin_expressions, text):
    replies, _ = twin_expressions
    reply = replies[(ACCEPTED + REFUSED).index(text)]
    assert check_expression(text) is not None, f"the reference accepts {text!r}"
    assert reply["message"], f"the twin accepts {text!r}"


@pytest.mark.parametrize("name", sorted(FUNCTION_KNOBS))
def test_a_landscape_slider_moves_a_real_parameter_over_valid_values(name: str) -> None:
    for spec, lo, hi, _ in FUNCTION_KNOBS[name]:
        for value in (spec.default, lo, hi):
            spec.check(value)
            f = sampy.functions.get(name, **{spec.name: value})
            assert f.dim == 2 and np.all(np.isfinite(f.domain))
