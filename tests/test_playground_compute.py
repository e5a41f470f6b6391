"""The laboratory's computations (sampy.playground.compute), without a widget or a figure.

The runs must be sampy.run's runs, untouched; the recorded ascent points must be where each
variant really took its gradient; the overlays, the anatomy, the sharpness numbers and the
basin maps must be the library's; and the exported snippet must reproduce the runs bit for
bit when executed in a fresh namespace.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from heavy_settings import heavy_expression

import sampy
from sampy.expressions import ExpressionError, expression_function, parse_expression
from sampy.optim.checkpoints import checkpoint_fractions
from sampy.playground.choices import (
    INFINITE_END,
    LESSON,
    PALETTES,
    SUGGESTED,
    knob_range,
    knob_stops,
    methods,
)
from sampy.playground.compute import (
    EXPRESSION,
    MAX_BASIN_WORK,
    LabSettings,
    VariantRun,
    VariantSetting,
    all_minima,
    anatomy,
    arrow_steps,
    ascent_arrows,
    ball_outline,
    ball_shape,
    basin_pair,
    check_basin_work,
    describe,
    evals_per_step,
    landscape_grid,
    last_moves,
    loss_curve,
    loss_floor,
    make_function,
    make_optimizer,
    run_lab,
    run_variant,
    sharpness_rows,
    snippet,
    trajectories_csv,
    trajectories_npz,
    update_work,
    variant_labels,
)
from sampy.playground.limits import LR, STEPS, TooMuchWork, evaluation_cost
from sampy.problems import NoisyGradient
from sampy.sharpness import worst_case_loss

SHARP_FLAT = sampy.functions.get("sharp_flat")
START = (0.8, -0.2)


def settings(*methods_: str, **changes: object) -> LabSettings:
    variants = tuple(VariantSetting(m) for m in methods_) or LabSettings().variants
    return LabSettings(**{"variants": variants, "steps": 60, "x0": START, **changes})


def plain_run(variant: VariantSetting, s: LabSettings, f=SHARP_FLAT) -> sampy.Trajectory:
    optimizer, _ = make_optimizer(variant, s.lr, s.base)
    source = NoisyGradient(f, sigma=s.noise, seed=s.seed) if s.noise > 0 else f
    return sampy.run(optimizer, source, np.array(s.x0), s.steps)


# --------------------------------------------------------------------------- runs


@pytest.mark.parametrize("method", methods())
def test_recorded_run_is_sampy_run_and_every_gradient_is_recorded(method: str) -> None:
    s = settings(method)
    vrun = run_variant(SHARP_FLAT, s.variants[0], s)
    direct = plain_run(s.variants[0], s)
    assert vrun.ok and vrun.error is None
    np.testing.assert_array_equal(vrun.xs, direct.xs)  # the recording changes nothing
    assert vrun.grad_evals == direct.grad_evals
    # One recorded point per gradient evaluation (a one-point run), each tagged by its step.
    assert len(vrun.query_points) == vrun.grad_evals
    assert vrun.query_steps.min() >= 1 and vrun.query_steps.max() <= s.steps
    assert np.all(np.diff(vrun.query_steps) >= 0)
    assert vrun.evals_per_step[-1] == vrun.grad_evals and vrun.evals_per_step[0] == 0


def test_noisy_runs_are_reproduced_too() -> None:
    s = settings("SGD", "SAM", noise=0.3, seed=4)
    for variant in s.variants:
        vrun = run_variant(SHARP_FLAT, variant, s)
        np.testing.assert_array_equal(vrun.xs, plain_run(variant, s).xs)
    # The noise matters (a check that it was applied at all).
    quiet = run_variant(SHARP_FLAT, s.variants[1], settings("SGD", "SAM"))
    assert not np.array_equal(quiet.xs, run_variant(SHARP_FLAT, s.variants[1], s).xs)


def test_sam_ascent_points_are_w_plus_rho_g_over_norm_g() -> None:
    s = settings("SAM")
    vrun = run_variant(SHARP_FLAT, VariantSetting("SAM", {"rho": 0.1}), s)
    ascent = vrun.is_ascent
    assert ascent.sum() == s.steps  # one ascent per step, the other query is at w
    steps = vrun.query_steps[ascent]
    np.testing.assert_array_equal(steps, np.arange(1, s.steps + 1))
    w = vrun.xs[steps - 1]
    g = SHARP_FLAT.grad(w)
    expected = w + 0.1 * g / np.linalg.norm(g, axis=-1, keepdims=True)
    np.testing.assert_allclose(vrun.query_points[ascent], expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(vrun.query_points[~ascent], w)


def test_ascent_patterns_of_other_variants() -> None:
    s = settings()
    sgd = run_variant(SHARP_FLAT, VariantSetting("SGD"), s)
    assert not sgd.is_ascent.any()
    assert ascent_arrows(sgd, 1)[0].shape == (0, 2)
    looksam = run_variant(SHARP_FLAT, VariantSetting("LookSAM", {"k": 5}), s)
    np.testing.assert_array_equal(
        np.unique(looksam.query_steps[looksam.is_ascent]), np.arange(1, s.steps + 1, 5)
    )
    multi = run_variant(SHARP_FLAT, VariantSetting("MultiStepSAM", {"ascent_steps": 3}), s)
    assert np.all(np.bincount(multi.query_steps[multi.is_ascent])[1:] == 3)
    tails, heads = ascent_arrows(multi, 10)
    assert len(tails) == 3 * len(arrow_steps(10, s.steps))  # steps 1, 2, 11, 12, …
    assert np.all(np.linalg.norm(heads - tails, axis=-1) > 0)


def test_ascent_arrows_every_k() -> None:
    s = settings()
    vrun = run_variant(SHARP_FLAT, VariantSetting("SAM", {"rho": 0.05}), s)
    sevens = [1, 2, 8, 9, 15, 16, 22, 23, 29, 30, 36, 37, 43, 44, 50, 51, 57, 58]
    for every, steps in [(1, range(1, 61)), (7, sevens), (60, [1, 2])]:
        np.testing.assert_array_equal(arrow_steps(every, s.steps), steps)
        tails, heads = ascent_arrows(vrun, every)
        np.testing.assert_array_equal(tails, vrun.xs[np.asarray(steps) - 1])
        np.testing.assert_allclose(np.linalg.norm(heads - tails, axis=-1), 0.05)
    assert len(ascent_arrows(vrun, 0)[0]) == 0


def test_arrows_show_both_phases_of_sams_bounce_in_the_lesson() -> None:
    # SAM bounces across sharp_flat's valley with period 2: ε_y flips sign from one step to
    # the next. Arrows at one step in 20 would all point the same way (the review's
    # "every arrow points downwards"); the pairs k, k + 1 show both ways.
    s = LabSettings()  # the lesson
    vrun = run_variant(SHARP_FLAT, s.variants[1], s)
    assert vrun.method == "SAM"
    every = LESSON["arrows_every"]
    tails, heads = ascent_arrows(vrun, every)
    eps_y = (heads - tails)[:, 1]
    assert (eps_y > 0.01).sum() >= 3 and (eps_y < -0.01).sum() >= 3, eps_y
    # What one phase alone (steps 1, 1 + every, …) would have drawn: one sign only, which
    # is the aliasing the pairs avoid.
    one_phase = vrun.is_ascent & ((vrun.query_steps - 1) % every == 0)
    alone = (vrun.query_points[one_phase] - vrun.xs[vrun.query_steps[one_phase] - 1])[:, 1]
    alone = alone[np.abs(alone) > 0.01]
    assert len(alone) >= 3 and len(np.unique(np.sign(alone))) == 1, alone


def test_invalid_settings_become_an_error_not_an_exception() -> None:
    bad = [
        (VariantSetting("SAM", {"rho": -1.0}), {}, "rho"),
        (VariantSetting("LookSAM", {"k": 0}), {}, "k"),
        (VariantSetting("SAM", {"nope": 1}), {}, "nope"),
        (VariantSetting("Nesterov"), {}, "optimizer"),
        (VariantSetting("SAM"), {"lr": 0.0}, "lr"),
        (VariantSetting("SAM"), {"base": "RMSprop"}, "base"),
        (VariantSetting("SAM"), {"noise": -1.0}, "noise"),
        (VariantSetting("SAM"), {"steps": -1}, "steps"),
    ]
    for variant, changes, named in bad:
        vrun = run_variant(SHARP_FLAT, variant, settings(**changes))
        assert not vrun.ok and named in vrun.error, (variant, changes, vrun.error)
        assert describe(SHARP_FLAT, vrun).startswith(f"{variant.method}: not run")


def test_divergence_is_reported_per_variant() -> None:
    s = settings("SGD", "SAM", function="quadratic", lr=0.5, x0=(1.5, 1.5), steps=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow must not even warn
        f, runs = run_lab(s)
    for vrun in runs:
        assert vrun.diverged_at is not None
        assert f"diverged at step {vrun.diverged_at}" in describe(f, vrun)
        assert np.all(np.isfinite(vrun.xs))  # frozen at the last good point


def test_a_typed_function_with_a_pole_does_not_raise() -> None:
    s = settings("SGD", "SAM", function=EXPRESSION, expression="1/(x - 1)", x0=(0.5, 0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f, runs = run_lab(s)
    assert all(vrun.ok for vrun in runs)
    # 1/(x - 1) falls towards the pole from the left; the steps grow without bound near it
    # and throw every run across it, to where it is finite again.
    assert all(vrun.xs[-1, 0] > 1 and np.all(np.isfinite(vrun.xs)) for vrun in runs)
    assert all("ends at" in describe(f, vrun) for vrun in runs)
    grid = landscape_grid(f, 60)
    assert math.isfinite(grid.vmin) and math.isfinite(grid.vmax) and grid.vmin < grid.vmax
    # the colour range ignores the pole's huge values (the bulk of the values is in range)
    assert np.mean((grid.C >= grid.vmin) & (grid.C <= grid.vmax)) > 0.9


def test_a_nan_gradient_is_reported_as_divergence() -> None:
    # sqrt(x) is NaN left of 0: descent walks into it, and the run stops there.
    s = settings("SGD", "SAM", function=EXPRESSION, expression="sqrt(x) + y**2", x0=(0.5, 0.3),
                 lr=0.05, steps=300)  # fmt: skip
    f, runs = run_lab(s)
    for vrun in runs:
        assert vrun.diverged_at is not None
        assert describe(f, vrun).endswith(f"diverged at step {vrun.diverged_at}")


@pytest.mark.parametrize(
    "text", ["__import__('os').system('true')", "x**1000", "", "open('/etc/passwd')", "x +"]
)
def test_hostile_or_broken_expressions_are_refused(text: str) -> None:
    with pytest.raises(ExpressionError):
        make_function(settings(function=EXPRESSION, expression=text))


def test_variant_labels_number_repeats() -> None:
    names = ["SGD", "SAM", "SAM", "ASAM"]
    assert variant_labels([VariantSetting(n) for n in names]) == [
        "SGD", "SAM #1", "SAM #2", "ASAM",
    ]  # fmt: skip


# --------------------------------------------------------------------------- overlays


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, math.inf])
def test_ball_outline_lies_on_the_p_sphere(p: float) -> None:
    outline = ball_outline((0.5, -1.0), 0.2, p)
    e = outline - np.array([0.5, -1.0])
    norms = np.max(np.abs(e), axis=-1) if math.isinf(p) else np.sum(np.abs(e) ** p, -1) ** (1 / p)
    np.testing.assert_allclose(norms, 0.2)
    np.testing.assert_allclose(outline[0], outline[-1])  # closed


def test_asam_ball_is_scaled_by_the_weights() -> None:
    outline = ball_outline((2.0, 0.5), 0.1, 2.0, adaptive=True, eta=0.01)
    e = (outline - [2.0, 0.5]) / np.array([2.01, 0.51])
    np.testing.assert_allclose(np.linalg.norm(e, axis=-1), 0.1)
    asam = run_variant(SHARP_FLAT, VariantSetting("ASAM", {"rho": 0.3}), settings())
    assert ball_shape(asam) == (0.3, 2.0, True, 0.0)  # ASAM's preset adaptive=True
    assert ball_shape(run_variant(SHARP_FLAT, VariantSetting("SGD"), settings())) is None


def test_loss_curve_is_the_function_along_the_path() -> None:
    vrun = run_variant(SHARP_FLAT, VariantSetting("SAM"), settings())
    np.testing.assert_allclose(loss_curve(vrun), SHARP_FLAT(vrun.xs))


# --------------------------------------------------------------------------- panels


def test_anatomy_fractions_are_seed_003_checkpoints_at_the_recorded_points() -> None:
    vrun = run_variant(SHARP_FLAT, VariantSetting("SAM", {"rho": 0.1}), settings())
    dissected = anatomy(SHARP_FLAT, vrun)
    assert dissected is not None and dissected.label == "SAM"
    np.testing.assert_array_equal(dissected.steps, np.arange(1, 61))
    np.testing.assert_allclose(dissected.fractions.sum(axis=-1), 1.0)
    w = vrun.xs[:-1]
    g = SHARP_FLAT.grad(w)
    g_adv = SHARP_FLAT.grad(w + 0.1 * g / np.linalg.norm(g, axis=-1, keepdims=True))
    np.testing.assert_allclose(dissected.fractions, checkpoint_fractions(g, g_adv), atol=1e-12)
    smooth = dissected.smoothed(5)
    assert smooth.shape == dissected.fractions.shape
    np.testing.assert_allclose(smooth.sum(axis=-1), 1.0)
    assert anatomy(SHARP_FLAT, run_variant(SHARP_FLAT, VariantSetting("SGD"), settings())) is None


def test_sharpness_rows_at_the_two_minima() -> None:
    s = settings("SGD", "SAM", steps=300, lr=0.01)
    f, runs = run_lab(s)
    sgd, sam = sharpness_rows(f, runs)
    assert sgd["label"] == "SGD" and sam["label"] == "SAM"
    # SGD ends near the sharp minimum (λmax ≈ 199.7), SAM near the flat one (≈ 6.3).
    assert sgd["lambda_max"] > 150 and sam["lambda_max"] < 10
    assert sgd["trace"] > sgd["lambda_max"] > 0
    for row in (sgd, sam):
        assert row["worst"] >= row["loss"] and row["sharpness"] >= 0
        exact = float(worst_case_loss(f, np.array([row["x"], row["y"]]), row["rho"], row["p"]))
        assert row["worst"] == pytest.approx(exact, abs=1e-3)  # the quick panel ≈ the default
    assert sgd["sharpness"] > 5 * sam["sharpness"]


def test_sharpness_of_a_pole_is_nan_not_an_exception() -> None:
    s = settings("SAM", function=EXPRESSION, expression="1/(x - 1)", x0=(0.5, 0.0))
    f, runs = run_lab(s)
    (row,) = sharpness_rows(f, runs)
    assert all(isinstance(row[k], float) for k in ("loss", "lambda_max", "trace", "worst"))


def test_basin_pair_sgd_against_sam() -> None:
    pair = (VariantSetting("SGD"), VariantSetting("SAM", {"rho": 0.1}))
    s = LabSettings(variants=pair, lr=0.02, steps=300)
    sgd, sam = basin_pair(s, 0, 1, grid=20, steps=300)
    assert sgd.labels == sam.labels == ("sharp", "flat")
    assert (sgd.optimizer, sam.optimizer) == ("SGD", "SAM")
    assert sam.fraction("flat") > sgd.fraction("flat")  # SAM prefers the flat basin
    np.testing.assert_allclose(sgd.fractions.sum(), 1.0)
    with pytest.raises(ValueError, match="too big"):
        basin_pair(s, 0, 1, grid=200, steps=MAX_BASIN_WORK // 40_000 + 1)
    with pytest.raises(ValueError, match="two of the 2 variants"):
        basin_pair(s, 0, 2, grid=10, steps=10)


def test_sharp_flat_wells_maps_both_wells() -> None:
    f = sampy.functions.get("sharp_flat_wells")
    points, _ = all_minima(f)
    assert len(points) == 2 and len(f.minima) == 1  # the library lists the global one only
    a, _ = basin_pair(settings("SGD", "SAM", function="sharp_flat_wells"), 0, 1, 12, 100)
    assert set(a.labels) == {"sharp", "flat"}


def test_a_typed_expression_has_clustered_basins() -> None:
    s = settings("SGD", "SAM", function=EXPRESSION, expression="(x**2 - 1)**2 + y**2",
                 box=2.0, lr=0.02)  # fmt: skip
    a, _ = basin_pair(s, 0, 1, grid=12, steps=200)
    assert a.clustered and len(a.minima) == 2  # the two minima (±1, 0)
    np.testing.assert_allclose(np.sort(np.abs(a.minima[:, 0])), [1, 1], atol=0.05)


# --------------------------------------------------------------------------- exports


EXPORTED = [
    settings("SGD", "SAM", "LookSAM", "ASAM"),
    settings("SAM", "MSAM", "ScheduleFreeAdamW", "RandomSAM", base="Adam", lr=0.003),
    settings("SGD", "FriendlySAM", base="momentum", noise=0.2, seed=3),
    settings(
        "SGD",
        "SAM",
        function=EXPRESSION,
        expression="sin(3*x)*cos(y) + 0.1*(x**2 + y**2)",
        box=3.0,
        x0=(1.0, 1.0),
    ),
    LabSettings(
        variants=(
            VariantSetting("SAM p=∞", {"rho": 0.2}),
            VariantSetting("SAM", {"rho": 0.1, "p": 1.0}),
        ),
        steps=40,
    ),
]


@pytest.mark.parametrize("s", EXPORTED, ids=range(len(EXPORTED)))
def test_snippet_reproduces_the_runs_in_a_fresh_namespace(s: LabSettings) -> None:
    code = snippet(s)
    assert "\n" not in code  # one line
    _, runs = run_lab(s)
    namespace: dict = {}
    exec(code, namespace)  # our own generated code, nothing typed by a user
    reproduced = namespace["runs"]
    assert list(reproduced) == [vrun.label for vrun in runs]
    for vrun in runs:
        np.testing.assert_array_equal(reproduced[vrun.label].xs, vrun.xs)
        assert reproduced[vrun.label].grad_evals == vrun.grad_evals


def test_snippet_refuses_settings_that_cannot_run() -> None:
    with pytest.raises(ValueError, match="rho"):
        snippet(LabSettings(variants=(VariantSetting("SAM", {"rho": -1.0}),)))


def test_csv_round_trips_the_trajectories() -> None:
    _, runs = run_lab(settings("SGD", "SAM"))
    rows = list(csv.DictReader(io.StringIO(trajectories_csv(runs).decode("utf-8"))))
    assert len(rows) == 2 * 61
    sam = [r for r in rows if r["variant"] == "SAM"]
    xs = np.array([[float(r["x"]), float(r["y"])] for r in sam])
    np.testing.assert_array_equal(xs, runs[1].xs)  # repr() round-trips every bit
    assert int(sam[-1]["grad_evals"]) == 120 and sam[0]["grad_evals"] == "0"
    np.testing.assert_array_equal([float(r["loss"]) for r in sam], loss_curve(runs[1]))


def test_csv_marks_diverged_steps() -> None:
    s = settings("SGD", function="quadratic", lr=0.5, x0=(1.5, 1.5), steps=200)
    _, runs = run_lab(s)
    rows = list(csv.DictReader(io.StringIO(trajectories_csv(runs).decode())))
    k = runs[0].diverged_at
    assert [int(r["diverged"]) for r in rows] == [int(step >= k) for step in range(201)]


def test_npz_holds_arrays_settings_and_snippet() -> None:
    s = settings("SGD", "SAM")
    _, runs = run_lab(s)
    with np.load(io.BytesIO(trajectories_npz(runs, s))) as data:
        assert list(data["labels"]) == ["SGD", "SAM"]
        np.testing.assert_array_equal(data["xs"][1], runs[1].xs)
        np.testing.assert_array_equal(data["grad_evals"], [60, 120])
        np.testing.assert_array_equal(data["diverged_at"], [-1, -1])
        assert str(data["snippet"]) == snippet(s)
        assert '"function": "sharp_flat"' in str(data["settings"])


def test_exports_skip_variants_that_did_not_run() -> None:
    ok = run_variant(SHARP_FLAT, VariantSetting("SGD"), settings())
    bad = VariantRun("SAM", "SAM", {}, None, error="rho must be >= 0")
    assert b"SAM" not in trajectories_csv([ok, bad]).split(b"\n", 1)[1]
    with np.load(io.BytesIO(trajectories_npz([ok, bad]))) as data:
        assert list(data["labels"]) == ["SGD"]


def test_expression_function_and_make_function_agree() -> None:
    s = settings(function=EXPRESSION, expression="x**2 + 3*y**2", box=2.0)
    f = make_function(s)
    g = expression_function("x**2 + 3*y**2", domain=((-2.0, 2.0), (-2.0, 2.0)))
    assert f.domain == g.domain
    np.testing.assert_allclose(f.grad(np.array([0.3, -0.4])), [0.6, -2.4])
    with pytest.raises(ValueError, match="box"):
        make_function(settings(function=EXPRESSION, expression="x", box=-1.0))


# --------------------------------------------------------------------------- the lesson


def test_the_lesson_is_plain_data_in_one_place_without_widgets() -> None:
    # Plain data: JSON carries it unchanged (a tuple or a numpy number would not come back
    # equal), so that the JavaScript laboratory can read the same values.
    assert json.loads(json.dumps(LESSON)) == LESSON
    assert json.loads(json.dumps(PALETTES)) == PALETTES
    # Importable without ipywidgets (or matplotlib): a fresh interpreter.
    code = (
        "import sys; from sampy.playground.choices import LESSON, PALETTES, INFINITE_END; "
        "print(sorted(m for m in ('ipywidgets', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == "[]", out
    # The laboratory's defaults are the lesson's, not copies of them.
    s = LabSettings()
    assert (s.function, s.lr, s.steps, list(s.x0), s.base) == (
        LESSON["function"], LESSON["lr"], LESSON["steps"], LESSON["x0"], LESSON["base"]
    )  # fmt: skip
    assert [(v.method, dict(v.hyperparameters)) for v in s.variants] == [
        (v["method"], v["hyperparameters"]) for v in LESSON["variants"]
    ]
    assert SUGGESTED[LESSON["function"]] == (tuple(LESSON["x0"]), LESSON["lr"])


def test_the_lesson_shows_sgd_sharp_sam_flat_with_a_visible_ball() -> None:
    f, (sgd, sam) = run_lab(LabSettings())
    assert describe(f, sgd).endswith("near the sharp minimum")
    assert describe(f, sam).endswith("near the flat minimum")
    # The ρ-ball's radius in the picture's pixels: the review found ρ = 0.05 hidden under
    # the end marker (about 5 px); the lesson's must stand clear of it.
    from sampy.playground.pictures import figure_layout

    (x_lo, x_hi), _ = f.domain
    _, _, width, _ = figure_layout(f.domain).landscape
    rho, *_ = ball_shape(sam)
    assert rho * width / (x_hi - x_lo) >= 12


def test_the_lessons_basin_map_makes_the_difference_plain() -> None:
    basins = LESSON["basins"]
    s = LabSettings()
    sgd, sam = basin_pair(s, basins["left"], basins["right"], grid=40, steps=basins["steps"])
    assert (sgd.optimizer, sam.optimizer) == ("SGD", "SAM")
    assert sgd.fraction("sharp") > 0.12 and sam.fraction("sharp") < 0.03
    assert basins["grid"] ** 2 * basins["steps"] <= MAX_BASIN_WORK


def test_the_status_says_bouncing_not_near_a_minimum_at_a_large_lr() -> None:
    f, runs = run_lab(LabSettings(lr=0.5))
    for vrun in runs:
        line = describe(f, vrun)
        assert "near the flat minimum" not in line, line
        assert "bouncing around the flat minimum, not converged" in line, line
        moved, bouncing = last_moves(f, vrun.xs)
        assert bouncing and moved > 0.1
    # A settled run still says where it is.
    f, runs = run_lab(LabSettings())
    assert last_moves(f, runs[0].xs) is None and "not converged" not in describe(f, runs[0])


def test_the_loss_floor_of_a_typed_expression_is_no_grid_minimum() -> None:
    s = LabSettings(function=EXPRESSION, expression="sin(3*x) + y**2")
    f, runs = run_lab(s)
    grid = landscape_grid(f, 140)
    lowest = min(float(np.nanmin(loss_curve(vrun))) for vrun in runs)
    assert grid.floor > lowest  # the grid's minimum: the runs would fall off the log axis
    floor = loss_floor(f, runs, grid.floor)
    assert -1 - 1e-9 <= floor <= lowest  # the true minimum, -1, below every run
    assert loss_floor(SHARP_FLAT, runs, 0.0) == SHARP_FLAT.fmin  # a known minimum: as is


def test_log_colours_draw_every_minimum_in_the_darkest_colour() -> None:
    # The review: log colours almost erase sharp_flat's slit (a thin teal line), because the
    # grid samples the narrow well's bottom far above the minimum. Every known minimum's
    # grid cell reaches the bottom of the colour range.
    for f in (SHARP_FLAT, sampy.functions.get("himmelblau")):
        grid = landscape_grid(f, 140, log=True)
        xs, ys = grid.X[0], grid.Y[:, 0]
        for x, y in f.minima:
            near = (np.abs(grid.X - x) <= xs[1] - xs[0]) & (np.abs(grid.Y - y) <= ys[1] - ys[0])
            assert np.nanmin(grid.C[near]) <= grid.vmin + 1e-12, (f.name, x, y)
        assert grid.vmax > grid.vmin
    # The linear scale is left as it is.
    linear = landscape_grid(SHARP_FLAT, 140)
    assert linear.vmin == pytest.approx(float(np.nanmin(linear.C)))


def test_one_colour_means_one_thing() -> None:
    groups = [PALETTES["variants"], PALETTES["checkpoints"], PALETTES["basins"],
              [PALETTES["no_basin"], PALETTES["diverged"]]]  # fmt: skip
    colours = [c.lower() for group in groups for c in group]
    assert len(colours) == len(set(colours)), colours  # no colour in two palettes
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)


def test_p_has_an_infinite_end_next_to_knob_range() -> None:
    from sampy import lab_metadata

    spec = next(s for s in sampy.variant("SAM").hyperparameters if s.name == "p")
    rho = next(s for s in sampy.variant("SAM").hyperparameters if s.name == "rho")
    # One rule, in choices; the JavaScript laboratory's metadata is exported from it.
    assert not hasattr(lab_metadata, "INFINITE_END") or lab_metadata.INFINITE_END is INFINITE_END
    assert lab_metadata.knob_record(spec)["infinite_end"] is True
    assert lab_metadata.knob_record(rho)["infinite_end"] is False
    assert spec.high is None and "p" in INFINITE_END
    stops = knob_stops(spec)
    lo, hi, _ = knob_range(spec)
    assert stops[0] == lo and stops[-2] == hi and stops[-1] == math.inf
    assert 2.0 in stops and 1.5 in stops
    assert knob_stops(spec, 2.37)[stops.index(2.35) + 1] == 2.37  # a given value is a stop


# --------------------------------------------------------------------------- limits and budget


def test_a_limit_clamps_numbers_and_refuses_what_is_no_number() -> None:
    assert STEPS.clamp(300) == (300, None)
    assert STEPS.clamp(40_000) == (10_000, "steps = 40,000 is outside [0, 10,000]; using 10,000")
    assert STEPS.clamp(10**400)[0] == 10_000  # no OverflowError from a 400-digit int
    assert STEPS.clamp(-(10**400))[0] == 0
    assert STEPS.clamp(12.7) == (12, "steps = 12.7 is not a whole number; using 12")
    assert LR.clamp(1e10) == (1.0, "lr (η) = 1e+10 is outside [0.0001, 1]; using 1")
    assert LR.clamp(math.inf)[0] == 1.0 and LR.clamp(-math.inf)[0] == 1e-4
    for bad in (math.nan, np.float64("nan"), "300", None, True, np.bool_(False), [3]):
        with pytest.raises(ValueError, match=r"must be a number in \["):
            STEPS.clamp(bad)


def test_update_work_reads_the_registrys_cost_and_the_expressions_size() -> None:
    lesson = LabSettings()
    work = update_work(lesson)
    assert (work.steps, tuple(work.evals_per_step), work.nodes) == (300, (1.0, 2.0), None)
    assert work.total == 900
    multi = VariantSetting("MultiStepSAM", {"ascent_steps": 11})
    assert evals_per_step(multi, 0.01) == 12.0  # k + 1, the registry's cost formula
    assert evals_per_step(VariantSetting("SAM", {"rho": -1.0}), 0.01) == 0.0  # cannot run
    typed = LabSettings(function=EXPRESSION, expression="x**2 + y**2")
    assert update_work(typed).nodes == parse_expression("x**2 + y**2").nodes == 8
    assert update_work(typed).total == pytest.approx(300 * 3 * evaluation_cost(8))
    assert evaluation_cost(8) > evaluation_cost(None) == 1.0


def test_ordinary_heavy_settings_stay_within_the_budget() -> None:
    """What the book and the review call legal and quick stays allowed."""
    four_sam = tuple(VariantSetting("SAM") for _ in range(4))
    update_work(LabSettings(variants=four_sam, steps=10_000)).check()  # 80,000 units
    himmelblau = "(x**2 + y - 11)**2 + (x + y**2 - 7)**2"
    update_work(
        LabSettings(function=EXPRESSION, expression=himmelblau, variants=four_sam, steps=2000)
    ).check()
    typed = LabSettings(
        function=EXPRESSION, expression="sin(3*x) + y**2", variants=four_sam, steps=10_000
    )
    update_work(typed).check()  # the review's 20 quick changes: 4 variants × 10,000 steps


def test_run_lab_refuses_the_reviews_heavy_setting_at_once() -> None:
    """A7: 4 × MultiStepSAM(ascent_steps = 11) × 10,000 steps on a 489-character expression
    kept the kernel busy for 62 s; now it is refused before any run, saying what to reduce."""
    multi = VariantSetting("MultiStepSAM", {"ascent_steps": 11})
    heavy = LabSettings(function=EXPRESSION, expression=heavy_expression(), variants=(multi,) * 4,
                        steps=10_000, lr=1e-4, x0=(0.3, 0.2))  # fmt: skip
    began = time.perf_counter()
    with pytest.raises(TooMuchWork, match=r"^too much work: 10,000 steps × 48 gradient") as info:
        run_lab(heavy)
    assert time.perf_counter() - began < 2.0
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "fewer steps (at most" in message and "a shorter expression" in message
    assert "ascent_steps" in message and "fewer variants" in message
    fits = int(re.search(r"at most ([\d,]+) with", message).group(1).replace(",", ""))
    update_work(dataclasses.replace(heavy, steps=fits)).check()  # the advice is right
    with pytest.raises(TooMuchWork):
        update_work(dataclasses.replace(heavy, steps=fits + 1)).check()
    # the same variants on a registered function are within the budget at 5,000 steps
    update_work(dataclasses.replace(heavy, function="sharp_flat", steps=5000)).check()


def test_a_basin_map_counts_the_expressions_cost_and_the_variants_evaluations() -> None:
    lesson = LabSettings()
    basins = LESSON["basins"]
    check_basin_work(lesson, 0, 1, basins["grid"], basins["steps"])  # the lesson's map: allowed
    typed = dataclasses.replace(lesson, function=EXPRESSION, expression=heavy_expression())
    with pytest.raises(TooMuchWork, match="too much work: a 100×100 basin map"):
        basin_pair(typed, 0, 1, grid=basins["grid"], steps=basins["steps"])
    multi = VariantSetting("MultiStepSAM", {"ascent_steps": 11})
    with pytest.raises(TooMuchWork, match="at most 230 on this grid"):
        check_basin_work(dataclasses.replace(lesson, variants=(VariantSetting("SGD"), multi)),
                         0, 1, basins["grid"], basins["steps"])  # fmt: skip


@pytest.mark.parametrize("steps", [10**8, 10**20, 10**400])
def test_run_lab_refuses_absurd_step_counts_by_name(steps: int) -> None:
    with pytest.raises(TooMuchWork, match=f"^too much work: {steps:,} steps"):
        run_lab(LabSettings(steps=steps))
