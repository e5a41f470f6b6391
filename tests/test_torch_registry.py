"""Every registry row's torch twin mirrors the reference's signature and refuses bad input."""

from __future__ import annotations

import inspect

import pytest

torch = pytest.importorskip("torch")

import sampy  # noqa: E402

# Twin-only constructor arguments, after the reference's: where random numbers are drawn
# (``noise``, "torch" on the device or "numpy" for the reference's draws) and whether a
# non-finite step is skipped (``skip_nonfinite``).
TWIN_ONLY = {"noise": "torch", "skip_nonfinite": False}


@pytest.mark.parametrize("row", sampy.variants(), ids=lambda row: row.name)
def test_twin_mirrors_the_reference_signature(row):
    """Same class name, the same ``HYPERPARAMETERS`` object, the reference's arguments in its
    order with its defaults, between ``params, base_optimizer=SGD`` (for the rows that take a
    base) and ``**base_kwargs``, with only the twin-only arguments added."""
    twin = row.twin()
    assert twin is not None, f"{row.name} has no torch twin in sampy.torch"
    assert twin.__name__ == row.cls.__name__
    assert twin.HYPERPARAMETERS is row.cls.HYPERPARAMETERS
    mirrored = inspect.signature(twin).parameters
    reference = [p for p in inspect.signature(row.cls).parameters.values() if p.name != "base"]
    names = list(mirrored)
    head = ["params", "base_optimizer"] if row.takes_base else ["params"]
    assert names[: len(head)] == head
    if row.takes_base:
        assert mirrored["base_optimizer"].default is torch.optim.SGD
        assert mirrored[names[-1]].kind is inspect.Parameter.VAR_KEYWORD
        names = names[:-1]
    shared = names[len(head) : len(head) + len(reference)]
    assert shared == [p.name for p in reference]
    for param in reference:
        assert mirrored[param.name].default == param.default, param.name
    extra = names[len(head) + len(reference) :]
    # ``noise`` exactly where the reference draws (has a seed); ``skip_nonfinite`` anywhere.
    draws = any(p.name == "seed" for p in reference)
    assert [n for n in extra if n != "skip_nonfinite"] == (["noise"] if draws else []), extra
    for name in extra:
        assert mirrored[name].default == TWIN_ONLY[name], name


def test_every_twin_class_is_a_registry_row_s_twin():
    """No optimizer in ``sampy.torch`` escapes the registry-driven suites."""
    import sampy.torch as st

    twins = {row.twin() for row in sampy.variants()}
    optimizers = {
        obj
        for name in st.__all__
        if isinstance(obj := getattr(st, name), type)
        and issubclass(obj, torch.optim.Optimizer)
        and hasattr(obj, "HYPERPARAMETERS")
    }
    left_out = {cls.__name__ for cls in optimizers - twins}
    assert left_out == set(NOT_A_ROW), left_out


# Public optimizers that are not a row's twin, and why.
NOT_A_ROW = {
    "SharpnessAware": "the template: a row is one composition of it (ascent, descent, base)",
    "PerExampleSAM": "the class behind LogitSAM and JSAM (and 1-SAM), chosen by its mode",
}


# -- bad input, for every twin at once ---------------------------------------------------------


def _twin_classes():
    seen = {}
    for row in sampy.variants():
        seen.setdefault(row.twin(), row)
    return seen


TWIN_ROWS = _twin_classes()
BAD = [
    pytest.param(cls, row.takes_base, spec.name, bad, id=f"{cls.__name__}-{spec.name}-{bad!r}")
    for cls, row in TWIN_ROWS.items()
    for spec in cls.HYPERPARAMETERS
    for bad in spec.invalid_values()
]


@pytest.mark.parametrize(("cls", "takes_base", "name", "bad"), BAD)
def test_bad_hyperparameters_raise_value_error_naming_them(cls, takes_base, name, bad):
    x = torch.ones(2, requires_grad=True)
    base = {"lr": 0.1} if takes_base else {}
    with pytest.raises(ValueError, match=name):
        cls([x], **{**base, name: bad})


@pytest.mark.parametrize("cls", list(TWIN_ROWS), ids=lambda cls: cls.__name__)
def test_bad_noise_base_optimizer_and_clashing_group_keys_raise_value_error(cls):
    x = torch.ones(2, requires_grad=True)
    takes_base = TWIN_ROWS[cls].takes_base
    base = {"lr": 0.1} if takes_base else {}
    if "noise" in inspect.signature(cls).parameters:
        with pytest.raises(ValueError, match="noise"):
            cls([x], noise="cupy", **base)
    if not takes_base or "base_optimizer" not in inspect.signature(cls).parameters:
        return
    with pytest.raises(ValueError, match="base_optimizer"):
        cls([x], base_optimizer=object, lr=0.1)
    # Adadelta reads group["rho"] itself: sharing the groups would hand it our radius.
    with pytest.raises(ValueError, match="rho"):
        cls([x], base_optimizer=torch.optim.Adadelta, lr=0.1)
