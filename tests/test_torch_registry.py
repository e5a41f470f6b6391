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
