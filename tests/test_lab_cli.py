"""The browser laboratory's command line (``node lab/dist/node/sampy-lab-cli.cjs``), its
"copy as Python" snippets, its basin maps and the Sphinx directive's checks.

The command line takes a run request as JSON on stdin and prints the answer as JSON; the
equality of the answers with ``sampy.run`` is ``test_lab_twin.py``'s. Here: what a request
may say (noise, ∞, a ρ schedule, several requests at once), what a bad one gets back, and that
the answers are standard JSON.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess

import numpy as np
import pytest
from lab_helpers import LAB, ask_lab, built_lab, node_library, require_node

import sampy
from sampy import lab_metadata
from sampy.basins import compare_basins
from sampy.optim import GSAM, SAM, SGD, Adam, proportional_rho
from sampy.problems import NoisyGradient


def cli(stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_node(), str(built_lab() / "node" / "sampy-lab-cli.cjs"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def request(**changes) -> dict:
    base = {
        "function": "sharp_flat",
        "variant": "SAM",
        "hyperparameters": {"rho": 0.1},
        "base": "SGD",
        "base_hyperparameters": {"lr": 0.001},
        "x0": [[-0.6, -0.7], [1.2, 0.1]],
        "steps": 50,
    }
    base.update(changes)
    return base


def reference(req: dict, f=None) -> sampy.Trajectory:
    base = getattr(sampy.optim, req["base"])(**req["base_hyperparameters"])
    opt = (
        base
        if req["variant"] == "base"
        else sampy.variant(req["variant"]).make(base, **req["hyperparameters"])
    )
    f = req["function"] if f is None else f
    return sampy.run(opt, f, np.array(req["x0"]), req["steps"])


def test_an_answer_is_standard_json_with_the_run() -> None:
    proc = cli(json.dumps(request()))
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the answer"))
    assert set(answer) >= {"xs", "losses", "grad_evals", "diverged_at", "report"}
    assert np.array(answer["xs"]).shape == (51, 2, 2)
    assert answer["grad_evals"] == 100
    assert answer["diverged_at"] == [-1, -1]


def test_a_list_of_requests_gets_a_list_of_answers_and_a_bad_one_an_error() -> None:
    requests = [request(), request(hyperparameters={"rho": -1.0}), request(variant="ESAM")]
    proc = cli(json.dumps(requests))
    assert proc.returncode == 1
    good, negative, python_only = json.loads(proc.stdout)
    assert "xs" in good
    assert negative["error"] == "rho must lie in [0, inf], got -1"  # the reference's words
    assert "Python only" in python_only["error"]


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"function": "no_such_function"}, ["no_such_function", "sharp_flat"]),
        ({"variant": "NoSuchSAM"}, ["NoSuchSAM", "GSAM"]),
        ({"base": "RMSprop"}, ["RMSprop", "AdamW"]),
        ({"base_hyperparameters": {"lr": 0.0}}, ["lr", "(0, inf]"]),
        ({"hyperparameters": {"rho": 0.1, "colour": 1}}, ["colour", "rho"]),
        ({"steps": -3}, ["steps"]),
        ({"x0": [[0.0, 0.0, 1.0]]}, ["x0"]),
        ({"x0": [[math.nan, 0.0]]}, ["x0"]),
        ({"variant": "ASAM", "hyperparameters": {"adaptive": False}}, ["adaptive", "preset"]),
    ],
)
def test_a_bad_request_is_answered_with_what_is_wrong(changes: dict, words: list[str]) -> None:
    req = request(**changes)
    text = json.dumps(req).replace("NaN", '"nan"')
    proc = cli(text)
    assert proc.returncode == 1, proc.stdout
    error = json.loads(proc.stdout)["error"]
    for word in words:
        assert word in error, error


def test_stdin_that_is_not_json_is_an_error_not_a_crash() -> None:
    proc = cli("{not json")
    assert proc.returncode == 1
    assert "not JSON" in json.loads(proc.stdout)["error"]


def test_the_listing_names_what_runs_in_the_browser() -> None:
    listing = json.loads(cli("", "--list").stdout)
    rows = [row.name for row in sampy.variants()]
    assert listing["registry"] == rows
    assert set(listing["variants"]) == set(rows) - set(lab_metadata.PYTHON_ONLY)
    assert listing["bases"] == list(lab_metadata.BASES)


def test_infinity_is_written_as_a_string() -> None:
    req = request(hyperparameters={"rho": 0.1, "p": "inf"})
    [answer] = ask_lab([req])
    ref = reference({**req, "hyperparameters": {"rho": 0.1, "p": math.inf}})
    np.testing.assert_allclose(answer["xs"], ref.xs, rtol=0, atol=1e-12)


def test_a_typed_landscape_runs_as_sampy_expressions_runs_it() -> None:
    from sampy.expressions import expression_function

    text = "sin(3*x)*cos(y) + 0.1*(x**2 + y**2)"
    req = request(function=None, expression=text, box=3, x0=[[1.0, 0.5]], steps=60)
    del req["function"]
    [answer] = ask_lab([req])
    f = expression_function(text, domain=((-3, 3), (-3, 3)))
    ref = reference({**req, "function": None}, f=f)
    np.testing.assert_allclose(answer["xs"], ref.xs, rtol=0, atol=1e-12)
    bad = ask_lab([{**req, "expression": "x^2"}])[0]
    assert "'^' is not allowed" in bad["error"]
    assert "x0" in ask_lab([{k: v for k, v in req.items() if k != "x0"}])[0]["error"]


def test_gradient_noise_is_numpys_stream() -> None:
    req = request(noise=0.3, seed=4, steps=100)
    [answer] = ask_lab([req])
    noisy = NoisyGradient(sampy.functions.get("sharp_flat"), sigma=0.3, seed=4)
    ref = reference(req, f=noisy)
    np.testing.assert_allclose(answer["xs"], ref.xs, rtol=0, atol=1e-12)
    assert not np.allclose(ref.xs, reference(req).xs), "the noise changed nothing"


def test_gsam_follows_a_rho_schedule_given_as_a_list() -> None:
    lr_schedule = [0.001 * (1 - t / 80) for t in range(80)]
    rho_of = proportional_rho(lambda t: lr_schedule[t], 0.001, 0.0, 0.1, 0.02)
    values = [rho_of(t) for t in range(80)]
    req = request(variant="GSAM", hyperparameters={"alpha": 0.3, "rho_schedule": values}, steps=80)
    [answer] = ask_lab([req])
    ref = sampy.run(
        GSAM(SGD(lr=0.001), alpha=0.3, rho_schedule=lambda t: values[t]),
        "sharp_flat",
        np.array(req["x0"]),
        80,
    )
    np.testing.assert_allclose(answer["xs"], ref.xs, rtol=0, atol=1e-12)
    short = request(variant="GSAM", hyperparameters={"rho_schedule": values[:10]}, steps=80)
    assert "rho_schedule" in ask_lab([short])[0]["error"]


# --------------------------------------------------------------------------- copy as Python

SNIPPETS = [
    {
        "function": "sharp_flat",
        "params": {},
        "base": "SGD",
        "base_hyperparameters": {"lr": 0.001, "momentum": 0.5},
        "variants": [
            {"name": "base", "hyperparameters": {}},
            {"name": "SAM", "hyperparameters": {"rho": 0.1, "p": math.inf}},
            {"name": "SAM", "hyperparameters": {"rho": 0.05}},
            {"name": "MSAM", "hyperparameters": {"lr": 0.001, "rho": 0.1}},
        ],
        "starts": [[-0.6, -0.7], [1.2, 0.1]],
        "steps": 120,
    },
    {
        "function": "sharp_flat_wells",
        "params": {"width_sharp": 0.3},
        "base": "Adam",
        "base_hyperparameters": {"lr": 0.01},
        "variants": [{"name": "GSAM", "hyperparameters": {"alpha": 0.5, "adaptive": True}}],
        "starts": [[-1.45, -1.4]],
        "steps": 80,
        "noise": 0.2,
        "seed": 3,
    },
    {
        "function": "expression of x, y",
        "expression": "x**2 + 10*y**2 + 0.1*sin(3*x)",
        "box": 3,
        "base": "SGD",
        "base_hyperparameters": {"lr": 0.01},
        "variants": [{"name": "CustomSAME", "hyperparameters": {"factors": [1, 2, 1, 0.5, 2]}}],
        "starts": [[2.0, 1.0]],
        "steps": 60,
    },
]


@pytest.mark.parametrize("settings", SNIPPETS, ids=lambda s: s["function"])
def test_copy_as_python_reproduces_the_figure(settings: dict) -> None:
    replies = node_library(
        """
        const s = lab.readNumbers(input);
        const code = lab.pythonSnippet(s);
        const box = [[-s.box, s.box], [-s.box, s.box]];
        const f = s.expression ? lab.expressionFunction(s.expression, box)
                               : lab.functions.get(s.function, s.params);
        const runs = s.variants.map((v) => {
          const base = lab.makeBase(s.base, s.base_hyperparameters);
          const opt = lab.makeVariant(v.name, base, lab.readNumbers(v.hyperparameters));
          const t = lab.run(opt, f, s.starts, s.steps, {sigma: s.noise ?? 0, seed: s.seed ?? 0});
          return Array.from(t.xs);
        });
        return {code, runs};
        """,
        {
            **settings,
            "variants": [
                {
                    "name": v["name"],
                    "hyperparameters": {
                        k: ("inf" if isinstance(x, float) and math.isinf(x) else x)
                        for k, x in v["hyperparameters"].items()
                    },
                }
                for v in settings["variants"]
            ],
        },
    )
    namespace: dict = {}
    exec(replies["code"], namespace)  # the snippet is the product under test
    runs = namespace["runs"]
    assert len(runs) == len(settings["variants"])
    for trajectory, js in zip(runs.values(), replies["runs"], strict=True):
        np.testing.assert_allclose(trajectory.xs.reshape(-1), js, rtol=0, atol=1e-12)
    assert "math.inf" in replies["code"] or not any(
        math.inf in v["hyperparameters"].values() for v in settings["variants"]
    )


# --------------------------------------------------------------------------- basin maps


def test_basin_maps_agree_with_sampy_basins() -> None:
    grid, steps, lr = 40, 300, 0.01
    replies = node_library(
        """
        const f = lab.functions.get("sharp_flat");
        const sgd = lab.makeBase("SGD", {lr: input.lr});
        const sam = lab.makeVariant("SAM", lab.makeBase("SGD", {lr: input.lr}), {rho: 0.1});
        const grid = [input.grid, input.grid];
        const maps = await lab.basinMaps([sgd, sam], f, {grid, steps: input.steps});
        return maps.map((m) => ({basin: Array.from(m.basin), labels: m.labels, minima: m.minima}));
        """,
        {"grid": grid, "steps": steps, "lr": lr},
    )
    maps = compare_basins(
        SGD(lr=lr), SAM(SGD(lr=lr), rho=0.1), "sharp_flat", grid=grid, steps=steps
    )
    for js, py in zip(replies, maps, strict=True):
        assert tuple(js["labels"]) == py.labels
        np.testing.assert_allclose(js["minima"], py.minima, rtol=0, atol=1e-15)
        assert np.array_equal(np.array(js["basin"]).reshape(grid, grid), py.basin)


def test_basin_maps_cluster_an_expression_as_sampy_does() -> None:
    text = "(x**2 - 1)**2 + y**2"
    replies = node_library(
        """
        const f = lab.expressionFunction(input.text, [[-2, 2], [-2, 2]]);
        const opt = lab.makeBase("Adam", {lr: 0.05});
        const [m] = await lab.basinMaps([opt], f, {grid: [30, 30], steps: 200});
        return {basin: Array.from(m.basin), minima: m.minima, clustered: m.clustered};
        """,
        {"text": text},
    )
    from sampy.basins import basin_map
    from sampy.expressions import expression_function

    f = expression_function(text, domain=((-2, 2), (-2, 2)))
    py = basin_map(Adam(lr=0.05), f, grid=30, steps=200)
    assert replies["clustered"] and py.clustered
    # The centres are end points of runs: equal to rounding (far below the 5 % tolerance).
    np.testing.assert_allclose(replies["minima"], py.minima, rtol=0, atol=1e-9)
    assert np.array_equal(np.array(replies["basin"]).reshape(30, 30), py.basin)


# --------------------------------------------------------------------------- the directive


@pytest.fixture(scope="module")
def directive():
    spec = importlib.util.spec_from_file_location("sphinx_lab_under_test", LAB / "sphinx_lab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_directive_reads_options_and_a_json_body(directive) -> None:
    config = directive.config_from(
        {"function": "quadratic", "variants": "base, SAM", "controls": "lr, SAM.rho",
         "start": "1, 0.7", "lr": "0.05", "steps": "250"},
        '{"variants": [{"name": "base"}, {"name": "SAM", "hyperparameters": {"rho": 0.05}}]}',
    )  # fmt: skip
    assert config["function"] == "quadratic" and config["start"] == [1.0, 0.7]
    assert config["lr"] == 0.05 and config["steps"] == 250
    assert config["controls"] == ["lr", "SAM.rho"]
    assert config["variants"][1] == {"name": "SAM", "hyperparameters": {"rho": 0.05}}
    with pytest.raises(ValueError, match="start"):
        directive.config_from({"start": "1"}, "")


@pytest.mark.parametrize(
    "config, words",
    [
        ({"function": "banana"}, ["banana"]),
        ({"variants": [{"name": "ESAM"}]}, ["ESAM", "Python only"]),
        ({"variants": [{"name": "NoSAM"}]}, ["NoSAM"]),
        ({"variants": [{"name": "SAM", "hyperparameters": {"radius": 1}}]}, ["radius"]),
        ({"variants": [{"name": "SAM"}], "controls": ["SAM.k"]}, ["SAM", "k"]),
        ({"variants": [{"name": "SAM"}], "controls": ["GSAM.alpha"]}, ["GSAM"]),
        ({"controls": ["function.width"]}, ["width"]),
        ({"panels": ["sharpness"]}, ["sharpness"]),
        ({"base": "Lion"}, ["Lion"]),
        ({"variants": [{"name": "SAM"}] * 5}, ["at most 4"]),
    ],
)
def test_the_directive_refuses_a_figure_that_cannot_work(directive, config, words) -> None:
    built_lab()
    metadata = json.loads((LAB / "build" / "metadata.json").read_text(encoding="utf-8"))
    problems = " ".join(directive.check_config(config, metadata))
    for word in words:
        assert word in problems, problems


def test_the_directive_accepts_the_books_figures(directive) -> None:
    built_lab()
    metadata = json.loads((LAB / "build" / "metadata.json").read_text(encoding="utf-8"))
    good = {
        "function": "sharp_flat_wells",
        "variants": [{"name": "base"}, {"name": "GSAM", "hyperparameters": {"alpha": 1.0}}],
        "controls": ["lr", "GSAM.alpha", "function.width_sharp", "2.rho", "noise"],
        "panels": ["loss", "basins", "python"],
    }
    assert directive.check_config(good, metadata) == []


def test_the_lessons_basin_maps_are_the_ones_the_explorer_page_prints() -> None:
    """The Explore page prints the lesson's basin maps computed in Python; the browser draws
    its own. Gradient descent's agree cell for cell; SAM's in all but a few cells, where its
    bounce in the slit decides the basin by the last bits of the arithmetic (the page says so)."""
    from sampy.playground.choices import LESSON

    basins, lr = LESSON["basins"], LESSON["lr"]
    rho = LESSON["variants"][1]["hyperparameters"]["rho"]
    js = node_library(
        """
        const f = lab.functions.get("sharp_flat");
        const sgd = lab.makeBase("SGD", {lr: input.lr});
        const sam = lab.makeVariant("SAM", lab.makeBase("SGD", {lr: input.lr}), {rho: input.rho});
        const grid = [input.grid, input.grid];
        const maps = await lab.basinMaps([sgd, sam], f, {grid, steps: input.steps});
        return maps.map((m) => Array.from(m.basin));
        """,
        {"lr": lr, "rho": rho, "grid": basins["grid"], "steps": basins["steps"]},
    )
    grid, steps = basins["grid"], basins["steps"]
    sgd, sam = compare_basins(SGD(lr=lr), SAM(SGD(lr=lr), rho=rho), "sharp_flat", grid, steps)
    assert np.array_equal(np.reshape(js[0], sgd.basin.shape), sgd.basin)
    differ = np.count_nonzero(np.reshape(js[1], sam.basin.shape) != sam.basin)
    assert differ <= 0.005 * sam.basin.size, f"{differ} of {sam.basin.size} cells differ"
