"""sampy.basins: basin-of-attraction maps from a grid of start points."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.figure import Figure

import sampy
from sampy import functions
from sampy.basins import (
    DIVERGED,
    NONE,
    BasinMap,
    basin_map,
    classify,
    cluster_minima,
    compare_basins,
    plot_basins,
)
from sampy.expressions import expression_function
from sampy.optim import SAM, SGD

HIMMELBLAU = "(x**2 + y - 11)**2 + (x + y**2 - 7)**2"


@pytest.mark.parametrize(("name", "lr"), [("sharp_flat", 0.005), ("himmelblau", 0.005)])
def test_a_start_at_a_minimum_maps_to_that_minimum(name, lr):
    f = functions.get(name)
    for i, m in enumerate(f.minima):
        box = ((m[0] - 0.01, m[0] + 0.01), (m[1] - 0.01, m[1] + 0.01))
        result = basin_map(SGD(lr=lr), f, grid=(2, 3), steps=50, bounds=box, tol=0.1)
        assert result.basin.shape == (3, 2)
        assert np.all(result.basin == i), (i, result.basin)
        assert result.fraction(i) == 1.0
        if f.minima_labels:
            assert result.fraction(f.minima_labels[i]) == 1.0


def test_the_map_is_one_batched_run_classified():
    f = functions.get("himmelblau")
    opt = SGD(lr=0.01)
    result = basin_map(opt, f, grid=(7, 5), steps=100)
    assert result.xs.shape == (7,) and result.ys.shape == (5,)
    assert result.starts.shape == (5, 7, 2) and result.final.shape == (5, 7, 2)
    np.testing.assert_array_equal(result.starts[2, 3], [result.xs[3], result.ys[2]])
    assert result.xs[0] == -5.0 and result.xs[-1] == 5.0  # the domain's edges included
    traj = sampy.run(opt, f, result.starts, 100)
    np.testing.assert_array_equal(result.final, traj.final)
    tol = 0.05 * math.hypot(10.0, 10.0)
    assert result.tol == pytest.approx(tol)
    np.testing.assert_array_equal(result.basin, classify(traj.final, traj.diverged, f.minima, tol))
    assert not result.clustered and result.steps == 100
    assert result.function == "himmelblau" and result.optimizer == "SGD"


def test_fractions_sum_to_one_and_name_every_class():
    result = basin_map(SGD(lr=0.01), "himmelblau", grid=(30, 20), steps=200)
    assert result.class_names == ("(3, 2)", "(-2.81, 3.13)", "(-3.78, -3.28)", "(3.58, -1.85)",
                                  "none", "diverged")  # fmt: skip
    assert result.counts.sum() == 600
    assert result.fractions.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(result.fractions[:4] > 0.15)  # all four basins are big on this grid
    assert result.fraction("none") == result.fraction(NONE)
    assert result.fraction("diverged") == result.fraction(DIVERGED) == 0.0
    for index, name in enumerate(result.class_names[:4]):
        assert result.fraction(name) == result.fraction(index) == np.mean(result.basin == index)
    assert result.summary().startswith("SGD: (3, 2) ")
    with pytest.raises(ValueError, match="no basin labelled 'deep'"):
        result.fraction("deep")
    with pytest.raises(ValueError, match="no basin with index 4"):
        result.fraction(4)


def test_sam_sends_more_start_points_to_the_flat_basin_than_sgd():
    """The playground's claim: on the sharp/flat toy (equal depths), SAM (ρ = 0.1) lets
    fewer start points settle in the sharp minimum and more in the flat one than SGD, with
    the same learning rate η = 0.008 < 2/λmax (so SGD can settle in the sharp one too; the
    book's setting, test_book_claims.py) and 1000 steps (about 16% → 4% sharp, 66% → 72%
    flat on this 30 × 30 grid)."""
    sgd, sam = compare_basins(
        SGD(lr=0.008), SAM(SGD(lr=0.008), rho=0.1), "sharp_flat", grid=(30, 30), steps=1000
    )
    assert sgd.labels == sam.labels == ("sharp", "flat")
    assert sam.fraction("flat") > sgd.fraction("flat") + 0.03
    assert sam.fraction("sharp") < 0.5 * sgd.fraction("sharp")
    assert sgd.fraction("sharp") > 0.1  # SGD does use the sharp basin
    assert sgd.fraction("diverged") == sam.fraction("diverged") == 0.0


def test_diverging_runs_form_the_diverged_class_without_raising():
    result = basin_map(SGD(lr=10.0), "himmelblau", grid=(6, 6), steps=50)
    assert result.fraction("diverged") == 1.0
    assert np.all(result.basin == DIVERGED)
    assert np.all(np.isfinite(result.final))  # a diverged run keeps its last good point
    # a pole in a typed function: the runs that meet it diverge, the others do not
    pole = expression_function("1/(x - 1) + y**2", domain=((0.5, 3.0), (-1.0, 1.0)))
    result = basin_map(SGD(lr=0.1), pole, grid=(11, 5), steps=50)
    assert 0 < result.fraction("diverged") < 1
    assert result.counts.sum() == 55


def test_functions_without_known_minima_get_clustered_basins():
    """Himmelblau typed as an expression (no known minima): four clusters, at its four
    minima, and the same classification as with the known minima."""
    typed = expression_function(HIMMELBLAU, domain=((-5, 5), (-5, 5)))
    known = functions.get("himmelblau")
    opt = SGD(lr=0.01)
    clustered = basin_map(opt, typed, grid=(25, 25), steps=300)
    reference = basin_map(opt, known, grid=(25, 25), steps=300)
    assert clustered.clustered and len(clustered.minima) == 4
    assert all(label.startswith("≈(") for label in clustered.labels)
    # every centre sits on one of Himmelblau's minima (to the precision the runs reached)
    distance = np.linalg.norm(clustered.minima[:, None] - known.minima[None], axis=-1)
    assert np.all(distance.min(axis=1) < 1e-3)
    match = distance.argmin(axis=1)
    assert sorted(match) == [0, 1, 2, 3]
    relabelled = np.where(clustered.basin >= 0, match[clustered.basin], clustered.basin)
    np.testing.assert_array_equal(relabelled, reference.basin)


def test_clustering_caps_the_number_of_basins_and_prefers_the_deepest():
    f = expression_function("sin(3*x)*cos(2*y) + 0.1*(x**2 + y**2)")
    result = basin_map(SGD(lr=0.05), f, grid=(30, 30), steps=300, max_basins=3)
    assert len(result.minima) == 3
    assert result.fraction("none") > 0  # the other minima's basins
    values = f(result.minima)
    # the deepest end point founds the first basin
    assert values[0] == pytest.approx(f(result.final[result.basin >= 0]).min())
    # a lone end point (a run still on its way) founds no basin; non-finite ones are ignored
    ends = np.array([[0.0, 0.0], [0.01, 0.0], [2.0, 2.0], [np.nan, 0], [1.0, 1.0], [1.0, 1.05]])
    centres = cluster_minima(f, [ends], 0.1).tolist()
    assert len(centres) == 2 and centres[0] == [0.0, 0.0] and centres[1] in ([1, 1], [1, 1.05])


def test_minima_can_be_given_or_clustered_on_request():
    f = functions.get("sharp_flat")
    given = basin_map(SGD(lr=0.008), f, grid=10, steps=600, minima=f.minima[1:])
    assert given.labels == ("(1.96, 0)",) and len(given.class_names) == 3
    h = functions.get("himmelblau")
    by_request = basin_map(SGD(lr=0.01), h, grid=10, steps=300, minima="cluster")
    assert by_request.clustered
    distance = np.linalg.norm(by_request.minima[:, None] - h.minima[None], axis=-1)
    assert len(by_request.minima) == 4 and np.all(distance.min(axis=0) < 1e-3)


def test_compare_basins_shares_the_basins_between_the_two_maps():
    typed = expression_function(HIMMELBLAU, domain=((-5, 5), (-5, 5)))
    a, b = compare_basins(
        SGD(lr=0.01), SAM(SGD(lr=0.01), rho=0.1), typed, grid=12, steps=200, names=("GD", None)
    )
    assert a.optimizer == "GD" and b.optimizer == "SAM"
    assert a.labels == b.labels
    np.testing.assert_array_equal(a.minima, b.minima)
    np.testing.assert_array_equal(a.starts, b.starts)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"grid": (1, 5)}, "grid"),
        ({"grid": (5,)}, "grid"),
        ({"grid": 2.5}, "grid"),
        ({"grid": True}, "grid"),
        ({"grid": "ab"}, "grid"),
        ({"steps": 0}, "steps"),
        ({"steps": 1.5}, "steps"),
        ({"steps": True}, "steps"),
        ({"bounds": ((1, 0), (0, 1))}, "bounds"),
        ({"bounds": ((0, 1),)}, "bounds"),
        ({"bounds": ((0, np.inf), (0, 1))}, "bounds"),
        ({"bounds": "box"}, "bounds"),
        ({"tol": 0.0}, "tol"),
        ({"tol": -1}, "tol"),
        ({"tol": float("nan")}, "tol"),
        ({"tol": "near"}, "tol"),
        ({"minima": np.zeros((2, 3))}, "minima"),
        ({"minima": "all"}, "minima"),
        ({"max_basins": 0}, "max_basins"),
    ],
)
def test_arguments_are_checked(kwargs, parameter):
    with pytest.raises(ValueError, match=parameter):
        basin_map(SGD(lr=0.01), "himmelblau", **{"grid": 4, "steps": 2, **kwargs})


def test_functions_must_be_two_dimensional_test_functions():
    with pytest.raises(ValueError, match="dim=3"):
        basin_map(SGD(lr=0.01), functions.get("sphere", dim=3))
    with pytest.raises(ValueError, match="expression_function"):
        basin_map(SGD(lr=0.01), lambda x: (x**2).sum(-1))
    with pytest.raises(ValueError, match="unknown test function"):
        basin_map(SGD(lr=0.01), "no_such_function")
    with pytest.raises(ValueError, match="names"):
        compare_basins(SGD(lr=0.01), SGD(lr=0.02), "himmelblau", names=("a",))


def test_classify():
    minima = np.array([[0.0, 0.0], [1.0, 0.0]])
    final = np.array([[0.05, 0.0], [0.9, 0.0], [0.5, 0.0], [np.nan, 0.0], [1.0, 0.0]])
    diverged = np.array([False, False, False, False, True])
    np.testing.assert_array_equal(
        classify(final, diverged, minima, 0.2), [0, 1, NONE, DIVERGED, DIVERGED]
    )
    np.testing.assert_array_equal(
        classify(final, diverged, np.zeros((0, 2)), 0.2), [NONE, NONE, NONE, DIVERGED, DIVERGED]
    )


def test_plot_basins_draws_one_panel_per_map_with_the_fractions():
    sgd, sam = compare_basins(SGD(lr=0.02), SAM(SGD(lr=0.02), rho=0.1), "sharp_flat", grid=8)
    figure = plot_basins([sgd, sam])
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    for ax, m in zip(figure.axes, (sgd, sam), strict=True):
        assert ax.get_title() == m.optimizer
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert f"flat: {100 * m.fraction('flat'):.1f}%" in texts
        image = ax.get_images()[0].get_array()
        assert image.shape == (8, 8)
    single = plot_basins(sgd)
    assert len(single.axes) == 1
    other = basin_map(SGD(lr=0.02), "himmelblau", grid=4, steps=5)
    with pytest.raises(ValueError, match="share their basins"):
        plot_basins([sgd, other])
    with pytest.raises(ValueError, match="one Axes per map"):
        plot_basins([sgd, sam], axes=[figure.axes[0]])
    assert isinstance(BasinMap, type)
