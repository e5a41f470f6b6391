"""Claims of the 'SAM family' page and the registry's links to the bibliography."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import sampy
from sampy.optim import SGD, WSAM, NormBallAscent, SharpnessAware
from sampy.optim.descents import MixedDescent

BIB = Path(__file__).resolve().parent.parent / "book" / "references.bib"


def test_every_registry_citation_is_in_the_bibliography():
    keys = set(re.findall(r"^@\w+\{([^,]+),", BIB.read_text(encoding="utf-8"), flags=re.M))
    cited = {row.bibkey for row in sampy.variants() if row.bibkey is not None}
    assert cited, "the registry cites no paper at all"
    assert cited <= keys, f"registry bibkeys missing from references.bib: {cited - keys}"


def test_averaging_g_and_g_adv_is_wsam_with_gamma_one_third():
    f = sampy.functions.get("rosenbrock")
    x0 = np.array([[-1.0, 1.5], [0.3, -0.4]])
    mine = SharpnessAware(SGD(lr=1e-3), NormBallAscent(rho=0.1), MixedDescent(0.5))
    wsam = WSAM(SGD(lr=1e-3), rho=0.1, gamma=1 / 3, decouple=False)
    a = sampy.run(mine, f, x0, 100).xs
    b = sampy.run(wsam, f, x0, 100).xs
    # α = γ/(1−γ) = 0.5 up to rounding of 1/3, so equal to a few ulps, not bit for bit.
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert np.abs(a[-1] - x0).max() > 1e-2


def test_the_tables_list_every_variant_and_hyperparameter():
    table = sampy.table_html()
    knobs = sampy.hyperparameters_html()
    for row in sampy.variants():
        assert f"<td>{row.name}</td>" in table
        for spec in row.hyperparameters:
            assert f"<td>{spec.name}</td>" in knobs
