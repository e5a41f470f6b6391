"""Claims of the 'SAM family' page and the registry's links to the bibliography."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import sampy
from sampy.optim import SGD, WSAM, NormBallAscent, SharpnessAware
from sampy.optim.rules import MixedDescent

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


# ------------------------------------------------------------------ the family card's links

ROOT = Path(__file__).resolve().parent.parent


def toc_chapters() -> list[Path]:
    """Every page of the book, as _toc.yml lists them."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return [ROOT / f"{e['file']}.md" for part in toc["parts"] for e in part["chapters"]]


def test_every_registry_row_has_exactly_one_algorithm_box():
    """The family card links each registry row to the {prf:algorithm} box whose :class: lists
    variant-<Name>: every row needs exactly one such box, with a :label:, in a page of the
    book; a class naming no registry row is a typo."""
    from sampy.algorithm_boxes import algorithm_boxes, boxes_by_variant

    boxes = algorithm_boxes(toc_chapters())
    found = boxes_by_variant(boxes)
    names = {row.name for row in sampy.variants()}
    missing = sorted(name for name in names if not found[name])
    twice = {
        name: [f"{b.doc}:{b.label}" for b in found[name]]
        for name in sorted(names)
        if len(found[name]) > 1
    }
    unknown = sorted(set(found) - names)
    unlabelled = [b.doc for b in boxes if b.variants and b.label is None]
    assert not missing, f"registry rows without an algorithm box: {missing}"
    assert not twice, f"registry rows with two or more boxes: {twice}"
    assert not unknown, f"box classes that name no registry row: {unknown}"
    assert not unlabelled, f"boxes of registry rows without a :label: in {unlabelled}"


def test_the_box_scanner_reads_both_fences_and_several_classes(tmp_path):
    from sampy.algorithm_boxes import algorithm_boxes, box_links, boxes_by_variant

    page = tmp_path / "chapter.md"
    page.write_text(
        "# A chapter\n\n"
        "````{prf:algorithm} SAM step\n:label: alg-a\n:class: variant-SAM extra-class\n\n"
        "1. a step\n````\n\n"
        ":::{prf:algorithm} Two rows\n:class: variant-SAME variant-CustomSAME\n:label: alg-b\n"
        "body\n:::\n\n"
        "```{prf:algorithm} No class\n:label: alg-c\n```\n\n"
        "```{prf:proof}\n:class: variant-USAM\n```\n",
        encoding="utf-8",
    )
    boxes = algorithm_boxes([page])
    assert [(b.doc, b.label, b.variants) for b in boxes] == [
        ("chapter", "alg-a", ("SAM",)),
        ("chapter", "alg-b", ("SAME", "CustomSAME")),
        ("chapter", "alg-c", ()),
    ]
    assert boxes_by_variant(boxes)["USAM"] == []  # a proof is no algorithm box
    links = box_links([*boxes, boxes[0]])  # SAM now twice: no link for it
    assert links == {"SAME": "chapter.html#alg-b", "CustomSAME": "chapter.html#alg-b"}


def test_the_card_links_a_row_only_where_a_link_is_given():
    table = sampy.table_html(links={"SAM": "deriving_sam.html#alg-sam"})
    assert '<td><a href="deriving_sam.html#alg-sam">SAM</a></td>' in table
    assert "<td>ASAM</td>" in table and table.count("<a href=") == 1


# --------------------------------------------------------------- the guide's cost column

FAMILY = ROOT / "book" / "family.md"
# The guide's first column (before the citation) and the registry rows it stands for.
GUIDE_ROWS = {
    "SAM": ["SAM"],
    "USAM": ["USAM"],
    "m-SAM": ["MSharpnessSAM"],
    "multi-step SAM": ["MultiStepSAM"],
    "ASAM": ["ASAM"],
    "Fisher SAM": ["FisherSAM"],
    "GSAM": ["GSAM"],
    "WSAM": ["WSAM"],
    "Friendly SAM": ["FriendlySAM"],
    "VaSSO": ["VaSSO"],
    "random SAM": ["RandomSAM"],
    "LookSAM": ["LookSAM"],
    "ESAM": ["ESAM"],
    "SSAM-F, SSAM-D": ["SSAMF", "SSAMD"],
    "MSAM": ["MSAM"],
    "bSAM": ["BSAM"],
    "ImbSAM": ["ImbSAM"],
    "logit-SAM, J-SAM": ["LogitSAM", "JSAM"],
    "schedule-free AdamW": ["ScheduleFreeAdamW"],
}


def guide_costs() -> dict[str, str]:
    """The guide table of family.md: its first column (citation removed) -> cost cell."""
    text = FAMILY.read_text(encoding="utf-8")
    start = text.index("| variant | changes | passes per step |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[re.sub(r"\s*\{cite:[pt]\}`[^`]*`", "", cells[0])] = cells[2]
    return rows


def counting(problem):
    """Wrap a problem's gradient methods to count the examples each call touches."""
    seen = {"examples": 0}

    def size(examples):
        if examples is None:
            return problem.n
        examples = np.asarray(examples)
        return int(examples.sum()) if examples.dtype == bool else examples.size

    grad, value_and_grad = problem.grad, problem.value_and_grad
    batch_grads, per_example = problem.batch_grads, problem.per_example_grads

    def counted_grad(x, examples=None):
        seen["examples"] += size(examples)
        return grad(x, examples)

    def counted_value_and_grad(x, examples=None):
        seen["examples"] += size(examples)
        return value_and_grad(x, examples)

    def counted_batch_grads(points, batches):
        seen["examples"] += sum(len(b) for b in batches)
        return batch_grads(points, batches)

    def counted_per_example(x, examples=None):
        seen["examples"] += size(examples)
        return per_example(x, examples)

    problem.grad, problem.value_and_grad = counted_grad, counted_value_and_grad
    problem.batch_grads, problem.per_example_grads = counted_batch_grads, counted_per_example
    return seen


def passes_per_step(name: str, steps: int = 6, **hyperparameters) -> float:
    """Examples whose gradient one step of the variant evaluates, over the batch size."""
    from sampy.problems import make_logistic_problem

    problem = make_logistic_problem(40, 2, imbalance=0.25, seed=0)  # groups: head / tail
    seen = counting(problem)
    row = sampy.variant(name)
    opt = row.make(SGD(lr=0.01), **hyperparameters)
    sampy.run(opt, problem, np.array([[0.3, -0.2]]), steps)
    return seen["examples"] / (steps * problem.n)


def test_the_guide_lists_every_published_variant_once():
    rows = guide_costs()
    assert set(rows) == set(GUIDE_ROWS)
    covered = [name for names in GUIDE_ROWS.values() for name in names]
    assert len(covered) == len(set(covered))
    published = {r.name for r in sampy.variants() if r.bibkey is not None}
    # AdamW-MSAM is MSAM's second base; everything else published has its own line.
    assert published - set(covered) == {"AdamWMSAM"}


def test_the_guide_costs_are_passes_over_the_batch():
    """family.md, "Which variant when": the cost column counts passes over the batch, and it is
    what the registry's own implementation evaluates per step."""
    rows = guide_costs()
    for label in ["SAM", "USAM", "ASAM", "Fisher SAM", "GSAM", "WSAM", "Friendly SAM", "VaSSO"]:
        assert rows[label] == "2"
        [name] = GUIDE_ROWS[label]
        row = sampy.variant(name)
        assert row.evals_per_step(row.defaults()) == 2.0, name
    assert rows["LookSAM"] == "$1 + 1/k$"
    for k in (1, 2, 5, 10):
        assert sampy.variant("LookSAM").evals_per_step({"k": k}) == pytest.approx(1 + 1 / k)
    assert rows["multi-step SAM"] == "$k + 1$"
    for k in (1, 3):
        assert sampy.variant("MultiStepSAM").evals_per_step({"ascent_steps": k}) == k + 1
    assert rows["MSAM"] == "1" and sampy.variant("MSAM").evals_per_step({}) == 1.0
    # m-SAM: 2⌈n/m⌉ gradient calls on m examples each are two passes over the batch.
    assert rows["m-SAM"] == "2"
    for m in (1, 4, 8, 40):
        assert passes_per_step("MSharpnessSAM", m=m) == pytest.approx(2.0)
    # ImbSAM: three calls (head at w, tail at w, tail at w + eps) are 1 + n_tail/n passes.
    assert rows["ImbSAM"] == "$1 + n_{\\text{tail}}/n$"
    from sampy.problems import make_logistic_problem

    problem = make_logistic_problem(40, 2, imbalance=0.25, seed=0)
    tail_fraction = np.mean(problem.groups == "tail")
    assert 0 < tail_fraction < 0.5
    assert passes_per_step("ImbSAM") == pytest.approx(1 + tail_fraction)


# ------------------------------------------------------------------- ASAM on the toy


def test_asam_has_no_room_across_the_slit_of_the_sharp_minimum():
    """family.md and exercise fam-ex-asam: with ξ = 0 ASAM's perturbation at the sharp minimum's
    slit floor has no y component; with ξ = 1 it has SAM's room (≈ ρ) across the slit."""
    f = sampy.functions.get("sharp_flat")
    w = f.minima[0] + np.array([0.0, 1e-9])  # on the slit's floor, a hair off y = 0
    g = np.array([0.3, 5.0])  # a gradient pointing across the slit
    rho = 0.15
    sam_y = sampy.variant("SAM").make(SGD(lr=0.008), rho=rho).perturbation(w, g)[1]
    assert sam_y == pytest.approx(rho * g[1] / np.hypot(*g))
    asam = sampy.variant("ASAM")
    no_room = asam.make(SGD(lr=0.008), rho=rho, eta=0.0).perturbation(w, g)[1]
    assert abs(no_room) <= rho * 1e-9  # |eps_y| <= rho |y|: nothing across the slit
    room = asam.make(SGD(lr=0.008), rho=rho, eta=1.0).perturbation(w, g)[1]
    assert 0.95 * sam_y < room <= rho * (abs(w[1]) + 1.0)  # about SAM's room
