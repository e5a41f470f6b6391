"""A pytest plugin for testing your own optimizer against sampy on toy functions.

Installed with sampy (the ``pytest11`` entry point ``sampy``), so nothing needs importing to
get the fixture; the assertions are imported from here::

    from sampy.pytest_plugin import assert_follows_reference

    def my_sam_step(x, grad, lr=0.05, rho=0.05):
        g = grad(x)
        eps = rho * g / (np.linalg.norm(g, axis=-1, keepdims=True) + 1e-12)
        return x - lr * grad(x + eps)

    def test_my_sam_is_sam(sampy_function):            # one test per test function
        x0 = start_points(sampy_function, 4)
        assert_follows_reference(my_sam_step, "SAM", sampy_function, x0, steps=20,
                                 base=SGD(lr=0.05), rho=0.05)

**Fixture.** ``sampy_function`` runs the test once for every test function of
``sampy.functions`` (a ``TestFunction``: call it for the loss, ``.grad(x)`` for the gradient,
``.minima``, ``.fmin``, ``.domain``, ``.dim``). Narrow it for one test with the marker
``@pytest.mark.sampy_functions("sphere", "rosenbrock")``, or for the whole run with the option
``--sampy-functions=sphere,rosenbrock``.

**Assertions.** ``assert_follows_reference``, ``assert_reduces_to_base_at_rho_zero`` and
``assert_reaches_minimum`` (and ``start_points``) live in ``sampy.testing``, which needs no
pytest, and are re-exported here. They take the user's optimizer as a step function
``step(x, grad) -> x_next`` or as an object with sampy's ``init``/``step(x, state, oracle)``
protocol, and fail with the step, start point and coordinate where the trajectories part.
The book's page "Testing your own optimizer with pytest" walks through them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sampy.testing import (
    assert_follows_reference,
    assert_reaches_minimum,
    assert_reduces_to_base_at_rho_zero,
    start_points,
)

if TYPE_CHECKING:
    from sampy.functions import TestFunction

__all__ = [
    "assert_follows_reference",
    "assert_reaches_minimum",
    "assert_reduces_to_base_at_rho_zero",
    "sampy_function",
    "start_points",
]

# sampy's functions are imported where they are used: pytest loads this plugin in every
# session of a project that has sampy installed, and most never ask for a sampy fixture.

_MARKER = "sampy_functions"
_OPTION = "--sampy-functions"


# ------------------------------------------------------------------------------ the plugin


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--sampy-functions=NAME,NAME``: the test functions ``sampy_function`` runs over."""
    group = parser.getgroup("sampy", "sampy's toy test functions")
    group.addoption(
        _OPTION,
        default=None,
        metavar="NAMES",
        help="comma-separated test functions of sampy.functions for the sampy_function "
        "fixture (default: all of them)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker that narrows ``sampy_function`` for one test."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(*names): run the sampy_function fixture over these test functions only",
    )


def _selected_names(metafunc: pytest.Metafunc) -> list[str]:
    from sampy import functions

    marker = metafunc.definition.get_closest_marker(_MARKER)
    if marker is not None:
        names = [str(name) for name in marker.args]
        where = f"@pytest.mark.{_MARKER}"
    else:
        option = metafunc.config.getoption(_OPTION)
        if option is None:
            return functions.names()
        names = [name.strip() for name in option.split(",") if name.strip()]
        where = _OPTION
    unknown = [name for name in names if name not in functions.names()]
    if unknown or not names:
        raise pytest.UsageError(
            f"{where}: {unknown or 'no names'} is not a list of test functions; choose from "
            f"{functions.names()}"
        )
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``sampy_function`` over the selected test functions (ids: their names)."""
    if "sampy_function" in metafunc.fixturenames:
        names = _selected_names(metafunc)
        metafunc.parametrize("sampy_function", names, ids=names, indirect=True)


@pytest.fixture
def sampy_function(request: pytest.FixtureRequest) -> TestFunction:
    """Each test function of ``sampy.functions`` in turn (value, ``.grad``, ``.minima``,
    ``.domain``); narrow it with ``@pytest.mark.sampy_functions(...)`` or
    ``--sampy-functions``."""
    from sampy import functions

    return functions.get(request.param)
