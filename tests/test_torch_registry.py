"""Every registry row's torch twin has the reference's hyperparameters and defaults."""

from __future__ import annotations

import inspect

import pytest

pytest.importorskip("torch")

import sampy


def _defaults(cls: type) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(cls).parameters.items()
        if p.default is not inspect.Parameter.empty and name != "base_optimizer"
    }


@pytest.mark.parametrize("row", sampy.variants(), ids=lambda row: row.name)
def test_twin_mirrors_the_reference_signature(row):
    twin = row.twin()
    assert twin is not None, f"{row.name} has no torch twin in sampy.torch"
    reference = _defaults(row.cls)
    mirrored = _defaults(twin)
    shared = {k: v for k, v in reference.items() if k != "base"}
    assert {k: mirrored.get(k) for k in shared} == shared
    for spec in row.hyperparameters:
        assert spec.name in inspect.signature(twin).parameters, spec.name


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
    import torch

    x = torch.ones(2, requires_grad=True)
    base = {"lr": 0.1} if takes_base else {}
    with pytest.raises(ValueError, match=name):
        cls([x], **{**base, name: bad})


@pytest.mark.parametrize("cls", list(TWIN_ROWS), ids=lambda cls: cls.__name__)
def test_bad_noise_base_optimizer_and_clashing_group_keys_raise_value_error(cls):
    import torch

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
