"""The registry of SAM variants and their reduction identities (ρ = 0 gives the base, …).

- the registry (``sampy.variants()``): every variant class is listed, rows are complete, the
  hyperparameter specs agree with the constructors;
- validation driven by the registry: every bad value of every knob raises naming it;
- measured gradient evaluations per step against each row's ``evals_per_step``;
- the reduction identities with SGD-momentum and Adam bases, 60 steps, two functions;
- one-step closed forms of the two-gradient variants on a non-diagonal quadratic.

Expected values are written by hand from the papers' formulas, or are trajectories of
other optimizers (for the identities); none is taken from the code under test. Equality is
exact where the two code paths do the same floating-point operations; every tolerance says
where it comes from.
"""

from __future__ import annotations

import inspect
import math
import re

import numpy as np
import pytest

import sampy
from sampy import functions, optim, problems, registry
from sampy.optim import (
    GSAM,
    SAM,
    SAME,
    SGD,
    USAM,
    WSAM,
    Adam,
    ClampSAM,
    ClipSAM,
    CustomSAME,
    FisherSAM,
    FriendlySAM,
    LookSAM,
    Oracle,
    RandomSAM,
    SAMAgree,
    SAMAnatomy,
    SAMCkpt,
    SAMDirection,
    SAMMagnitude,
    SGDAgree,
    VaSSO,
    proportional_rho,
)
from sampy.optim.checkpoints import checkpoints
from sampy.optim.sharpness_aware import SharpnessAwareState
from sampy.optim.transforms import OptimizerWrapper

# A non-diagonal SPD quadratic ½wᵀAw − bᵀw for the closed forms (eigenvalues ≈ 1.8, 2.7, 4.5).
A = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, -0.2], [0.5, -0.2, 2.0]])
B = np.array([1.0, -2.0, 0.5])
W = np.array([1.5, -0.5, 2.0])  # g = AW − b = (5.5, 1.6, 4.35), ‖g‖ ≈ 7.2


def _quadratic3():
    return functions.get("quadratic", A=A, b=B)


def _grad(w):
    """∇(½wᵀAw − bᵀw) = Aw − b, by hand (A is symmetric)."""
    return w @ A - B


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _problem_for(row):
    """What a registry row runs on: a 2-D quadratic, or a 2-D sum-of-examples problem for
    the rows that need per-example gradients (``needs_examples``)."""
    if getattr(row, "needs_examples", False):
        return problems.make_logistic_problem()
    return functions.get("quadratic", A=A2, b=B2)


def _takes_base(row):
    return getattr(row, "takes_base", True)


# The identity matrix: two functions, two bases, 60 steps from three start points each.
A2 = [[3.0, 1.0], [1.0, 2.0]]
B2 = [1.0, -1.0]
FUNCS = {
    "quadratic": (
        lambda: functions.get("quadratic", A=A2, b=B2),
        np.array([[1.5, -1.0], [-1.0, 2.0], [0.3, 0.4]]),
    ),
    "himmelblau": (
        lambda: functions.get("himmelblau"),
        np.array([[0.5, 0.5], [-1.0, 1.5], [2.5, -1.5]]),
    ),
}
BASES = {
    "sgd-momentum": lambda: SGD(lr=0.01, momentum=0.9),
    "adam": lambda: Adam(lr=0.02),
}
STEPS = 60

# Classes that are optimizers but not SAM variants.
# (Step-level wrappers — OptimizerWrapper subclasses such as WithEMA — add a knob to any
# optimizer and are excluded by class below.)
NOT_VARIANTS = {"SGD", "Adam", "AdamW"}


def _raises_naming(name):
    return pytest.raises(ValueError, match=rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])")


class RecordingBase:
    """A plain-SGD base that records every point it is asked to move and the direction."""

    grad_evals_per_step = 1

    def __init__(self, lr=0.1):
        self.lr = lr
        self.points = []
        self.directions = []

    def init(self, x):
        return None

    def update(self, x, d, state):
        self.points.append(np.array(x))
        self.directions.append(np.array(d))
        return x - self.lr * d, None

    def step(self, x, state, oracle):
        return self.update(x, oracle.grad(x), state)


def _run_both(make_a, make_b, fname, bname):
    make_f, x0 = FUNCS[fname]
    f = make_f()
    a = sampy.run(make_a(BASES[bname]()), f, x0, STEPS)
    b = sampy.run(make_b(BASES[bname]()), f, x0, STEPS)
    assert not a.diverged.any()
    assert not b.diverged.any()
    assert np.abs(a.xs[-1] - x0).max() > 1e-2  # it moved: the comparison is not vacuous
    return a, b


def _base(base):
    return base


def _sam(rho):
    return lambda base: SAM(base, rho=rho)


def _assert_differs(make_a, make_b, fname, bname):
    """Sanity for "⇒ SAM" identities: with these settings SAM is not the base optimizer."""
    a, b = _run_both(make_a, make_b, fname, bname)
    assert np.abs(a.xs - b.xs).max() > 1e-4


matrix = pytest.mark.parametrize(
    ("fname", "bname"), [(f, b) for f in FUNCS for b in BASES], ids=lambda v: v
)


# ---------------------------------------------------------------------------------------------
# 1. The registry


def _variant_classes():
    """Every class exported by sampy.optim that has HYPERPARAMETERS and a step method."""
    out = {}
    for name in dir(optim):
        obj = getattr(optim, name)
        if (
            isinstance(obj, type)
            and hasattr(obj, "HYPERPARAMETERS")
            and callable(getattr(obj, "step", None))
            and name not in NOT_VARIANTS
            and not issubclass(obj, OptimizerWrapper)
        ):
            out[name] = obj
    return out


def test_every_variant_class_is_registered():
    classes = _variant_classes()
    # The discovery itself finds the variants (so the check below is not vacuous).
    assert {"SAM", "GSAM", "WSAM", "LookSAM", "SAMAnatomy", "ClipSAM"} <= set(classes)
    assert len(classes) >= 19
    registered = {row.cls for row in sampy.variants()}
    missing = sorted(name for name, cls in classes.items() if cls not in registered)
    assert missing == [], f"variant classes missing from sampy.variants(): {missing}"


def test_registry_names_are_unique_and_rows_are_documented():
    rows = sampy.variants()
    names = [row.name for row in rows]
    assert len(names) == len(set(names))
    for row in rows:
        for attr in ("name", "paper", "ascent", "descent", "base", "grad_evals", "family"):
            value = getattr(row, attr)
            assert isinstance(value, str) and value.strip(), (row.name, attr)
        assert row.bibkey is None or (isinstance(row.bibkey, str) and row.bibkey.strip())
        assert callable(row.evals_per_step)
        assert row.hyperparameters, row.name
        # A preset knob is fixed by the row, so it is not offered as a free hyperparameter.
        assert not set(row.preset) & {spec.name for spec in row.hyperparameters}


def test_rows_are_built_from_keywords_only():
    sam = sampy.variant("SAM")
    with pytest.raises(TypeError):
        registry.Variant("SAM", SAM, sam.source, "", "", "", 2, "SAM")
    rebuilt = registry.Variant(
        name="SAM",
        cls=SAM,
        source=sam.source,
        ascent=sam.ascent,
        descent=sam.descent,
        base=sam.base,
        cost=2,
        family="SAM",
    )
    assert (
        (rebuilt.paper, rebuilt.bibkey)
        == (sam.paper, sam.bibkey)
        == (
            sam.source.citation,
            "foret2021sam",
        )
    )
    assert rebuilt.grad_evals == sam.grad_evals == "2" and rebuilt.evals_per_step({}) == 2.0


def test_a_cost_is_one_formula_giving_the_text_and_the_number():
    k, m = registry.knob("k"), registry.knob("m")
    n = registry.EXAMPLES
    cases = [
        (1 + 1 / k, {"k": 4}, 64, "1 + 1/k", 1.25),
        (2 * registry.ceil(n / m), {"m": 5}, 64, "2⌈n/m⌉", 26),
        (2 * registry.ceil(n / m), {"m": 100}, 64, "2⌈n/m⌉", 2),
        (registry.knob("ascent_steps", "k") + 1, {"ascent_steps": 3}, 64, "k + 1", 4),
        (2 * n, {}, 10, "2n", 20),
        ((1 + k) / 2, {"k": 3}, 64, "(1 + k)/2", 2),
        (1 / (k * m), {"k": 2, "m": 4}, 64, "1/(k·m)", 0.125),
        (registry.noted(2 * registry.knob("batchsplit", "M"), "M = batchsplit"),
         {"batchsplit": 3}, 64, "2M (M = batchsplit)", 6),
        (registry.cases("grad_mode", "sum_two", 2, otherwise=1), {"grad_mode": "clean_only"},
         64, "2 (sum_two), 1 otherwise", 1),
        (2 + registry.examples_at_most("num_samples", "N_s") / registry.knob("update_freq"),
         {"num_samples": 100, "update_freq": 4}, 64, "2 + N_s/update_freq", 18),
    ]  # fmt: skip
    for cost, knobs, examples, text, value in cases:
        assert str(cost) == text
        assert cost(knobs, examples) == value, text
        assert cost.reads() == set(knobs), text
    with pytest.raises(TypeError, match="cost"):
        registry.as_cost("2")


def _cost_grid(row) -> list[dict]:
    """Hyperparameters at which to compare a row's cost with its classes': every combination
    of a few valid values of each knob the cost reads (its choices, or small and large
    numbers), the other knobs at their defaults."""
    specs = {spec.name: spec for spec in row.hyperparameters}
    axes = []
    for name in sorted(row.cost.reads()):
        spec = specs[name]
        candidates = spec.choices or (spec.default, 1, 2, 3, 7, 10, 64, 100)
        valid = []
        for value in candidates:
            try:
                spec.check(value)
            except ValueError:
                continue
            if value not in valid:
                valid.append(value)
        axes.append([(name, value) for value in valid])
    grid = [row.defaults()]
    for axis in axes:
        grid = [{**h, name: value} for h in grid for name, value in axis]
    return grid


def _stated_cost(opt, n: int) -> float | str:
    """What an optimizer says a step costs on ``n`` examples: ``grad_evals(n)``, the average
    of ``grad_evals(steps, n)`` over whole refresh periods, or ``grad_evals_per_step``."""
    counts = getattr(opt, "grad_evals", None)
    if counts is not None:
        params = list(inspect.signature(counts).parameters)
        if params == ["n"]:
            return counts(n)
        if params == ["steps", "n"]:
            steps = 12 * opt.update_freq
            return counts(steps, n) / steps
    # The built-in-base twins without the attribute are one-closure torch optimizers.
    return getattr(opt, "grad_evals_per_step", 1)


@pytest.mark.parametrize("row", sampy.variants(), ids=lambda row: row.name)
def test_the_classes_state_the_cost_the_row_states(row):
    """The reference's and the twin's ``grad_evals_per_step`` (or ``grad_evals(n)``) equal
    the row's cost at every point of a grid of the knobs the cost reads, so the cost is typed
    once (in the registry) and the classes are checked against it, not copied."""
    torch = pytest.importorskip("torch")
    twin = row.twin()
    grid = _cost_grid(row)
    assert len(grid) > 1 or not row.cost.reads(), row.name
    for hyper in grid:
        reference = row.make(SGD(lr=0.1), **hyper)
        x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        mirrored = row.make_twin([x], **({"lr": 0.1} if row.takes_base else {}), **hyper)
        for n in (problems.DEFAULT_N, 10):
            expected = row.cost(hyper, n)
            assert _stated_cost(reference, n) == pytest.approx(expected, rel=1e-15), (hyper, n)
            if row.name == "SSAMF" and hyper["num_samples"] > n:
                continue  # the twin states its long-run average for n ≥ num_samples only
            stated = _stated_cost(mirrored, n)
            if isinstance(stated, str):
                # logit-SAM's and J-SAM's twins state the formula on k examples.
                assert stated == str(row.cost).replace("n", "k"), (twin, stated)
            else:
                assert stated == pytest.approx(expected, rel=1e-15), (twin, hyper, n)


def _identifying_marks(citation: str) -> tuple[str, str]:
    """The first author's surname, and the arXiv id if the citation has one, else the year."""
    arxiv = re.search(r"arXiv:\d{4}\.\d{4,5}", citation)
    year = re.findall(r"(?:19|20)\d\d", citation)[-1]
    return citation.split(",")[0], arxiv.group(0) if arxiv else year


@pytest.mark.parametrize(
    "row", [row for row in sampy.variants() if row.bibkey], ids=lambda row: row.name
)
def test_the_reference_and_the_twin_cite_the_row_s_paper(row):
    """The paper is one fact of the registry; the two modules' docstrings cite the same one
    (surname and year or arXiv id), so a changed row cannot leave them citing another."""
    import sys

    surname, mark = _identifying_marks(row.paper)
    for cls in (row.cls, row.twin()):
        text = (sys.modules[cls.__module__].__doc__ or "") + (cls.__doc__ or "")
        assert surname in text and mark in text, (cls.__module__, surname, mark)


def test_rows_citing_one_bib_entry_share_one_citation():
    by_key = {}
    for row in sampy.variants():
        if row.bibkey:
            by_key.setdefault(row.bibkey, set()).add(row.paper)
    for key, citations in by_key.items():
        shortest = min(citations, key=len)
        # Extensions (multi-step SAM's note on optax) start with the shared citation.
        assert all(c.startswith(shortest) for c in citations), (key, citations)
    assert len({c for cs in by_key.values() for c in cs}) >= len(by_key)


def test_variant_lookup_by_name():
    for row in sampy.variants():
        assert sampy.variant(row.name) is row
    with _raises_naming("NoSuchSAM"):
        sampy.variant("NoSuchSAM")
    with pytest.raises(ValueError):
        sampy.variant("sam")  # names are case-sensitive


def test_asam_row_is_sam_with_the_adaptive_ball():
    row = sampy.variant("ASAM")
    assert row.cls is SAM
    assert row.preset == {"adaptive": True}
    opt = row.make(SGD(lr=0.1), **row.defaults())
    # One step at a point where |w| ≠ 1: the adaptive ball changes ε (ASAM ≠ SAM there).
    f = _quadratic3()
    asam, _ = opt.step(W, opt.init(W), Oracle(f))
    t = np.abs(W) + row.defaults()["eta"]
    g = _grad(W)
    e = 0.05 * t**2 * g / np.linalg.norm(t * g)
    np.testing.assert_allclose(asam, W - 0.1 * _grad(W + e), rtol=0, atol=1e-13)


@pytest.mark.parametrize("name", [row.name for row in sampy.variants()])
@pytest.mark.parametrize("make_base", [lambda: SGD(lr=0.1), lambda: Adam()], ids=["sgd", "adam"])
def test_every_row_builds_with_its_defaults(name, make_base):
    row = sampy.variant(name)
    opt = row.make(make_base(), **row.defaults())
    assert isinstance(opt, optim.Optimizer)
    for spec in row.hyperparameters:
        spec.check(spec.default)  # every default is inside its own range
        row.make(make_base(), **{spec.name: spec.default})


# GSAM's ρ schedule is a callable t -> ρ_t, not a number a table or a slider can show.
NOT_A_KNOB = {("GSAM", "rho_schedule")}


@pytest.mark.parametrize("name", [row.name for row in sampy.variants()])
def test_specs_agree_with_the_constructor(name):
    """Every knob of the spec is a constructor argument with the same default, and back."""
    row = sampy.variant(name)
    params = inspect.signature(row.cls.__init__).parameters
    specs = {spec.name: spec for spec in row.cls.HYPERPARAMETERS}
    for spec_name, spec in specs.items():
        assert spec_name in params, (name, spec_name)
        assert params[spec_name].default == spec.default, (
            f"{name}.{spec_name}: constructor default {params[spec_name].default!r}, "
            f"spec default {spec.default!r}"
        )
    for param in params:
        if param in ("self", "base") or (name, param) in NOT_A_KNOB:
            continue
        assert param in specs, f"{name}({param}=...) has no Hyper spec"


@pytest.mark.parametrize("name", [row.name for row in sampy.variants() if _takes_base(row)])
def test_every_row_rejects_a_base_that_is_not_an_instance(name):
    row = sampy.variant(name)
    with _raises_naming("base"):
        row.make(object(), **row.defaults())
    with _raises_naming("base"):
        row.make(SGD, **row.defaults())  # the class, as torch users write it


# ---------------------------------------------------------------------------------------------
# 2. Validation, driven by the registry


def _invalid_cases():
    cases = []
    for row in sampy.variants():
        for spec in row.hyperparameters:
            for i, bad in enumerate(spec.invalid_values()):
                cases.append(
                    pytest.param(row.name, spec.name, bad, id=f"{row.name}-{spec.name}-{i}")
                )
    return cases


INVALID = _invalid_cases()


def test_the_invalid_cases_cover_every_knob():
    covered = {(name, knob) for name, knob, _ in (c.values for c in INVALID)}
    for row in sampy.variants():
        for spec in row.hyperparameters:
            assert (row.name, spec.name) in covered


@pytest.mark.parametrize(("name", "knob", "bad"), INVALID)
def test_every_invalid_value_raises_naming_the_knob(name, knob, bad):
    row = sampy.variant(name)
    with _raises_naming(knob):
        row.make(SGD(lr=0.1), **{knob: bad})


# ---------------------------------------------------------------------------------------------
# 3. Gradient evaluations per step, measured


def _eval_cases():
    cases = []
    for row in sampy.variants():
        if row.name == "LookSAM":
            for k in (1, 3, 10):
                cases.append(pytest.param(row.name, {"k": k}, id=f"LookSAM-k{k}"))
        else:
            cases.append(pytest.param(row.name, {}, id=row.name))
    return cases


@pytest.mark.parametrize(("name", "override"), _eval_cases())
def test_measured_gradient_evaluations_match_the_registry(name, override):
    row = sampy.variant(name)
    hyper = {**row.defaults(), **override}
    opt = row.make(SGD(lr=0.05), **hyper)
    steps = 30  # a multiple of every LookSAM k used here
    f = _problem_for(row)
    x0 = np.array([[1.5, -1.0], [-1.0, 2.0]])
    traj = sampy.run(opt, f, x0, steps)
    assert not traj.diverged.any()
    expected = row.evals_per_step(hyper)
    assert traj.grad_evals / steps == pytest.approx(expected, rel=1e-15, abs=0)
    # The optimizer's own average, where it has one and the cost does not depend on the
    # number of examples (SSAM-F documents its attribute for n ≥ num_samples only).
    if hasattr(opt, "grad_evals_per_step") and not row.needs_examples:
        assert opt.grad_evals_per_step == pytest.approx(expected, rel=1e-15, abs=0)
    if row.grad_evals.replace(".", "").isdigit():
        assert expected == float(row.grad_evals)


@pytest.mark.parametrize("k", [1, 2, 3, 10])
def test_looksam_spends_two_evaluations_exactly_on_every_kth_step(k):
    f = _quadratic3()
    opt = LookSAM(SGD(lr=0.05), rho=0.1, k=k)
    x, state = W.copy(), opt.init(W)
    oracle = Oracle(f)
    for t in range(25):
        before = oracle.calls
        x, state = opt.step(x, state, oracle)
        assert oracle.calls - before == (2 if t % k == 0 else 1), t


# ---------------------------------------------------------------------------------------------
# 4. Reduction identities


def _has_rho(row):
    return any(spec.name == "rho" for spec in row.hyperparameters)


def _rho_zero_cases():
    cases = []
    for row in sampy.variants():
        # GSAM: eps-guarded, tested below. Rows with a built-in base or that need examples
        # have their own reductions (their base is not one of BASES).
        if not _has_rho(row) or row.name == "GSAM" or not _takes_base(row):
            continue
        if getattr(row, "needs_examples", False):
            continue
        for fname in FUNCS:
            for bname in BASES:
                cases.append(pytest.param(row.name, fname, bname, id=f"{row.name}-{fname}-{bname}"))
    return cases


@pytest.mark.parametrize(("name", "fname", "bname"), _rho_zero_cases())
def test_rho_zero_is_the_base_optimizer_bit_for_bit(name, fname, bname):
    """ρ = 0 ⇒ ε = 0 ⇒ g̃ = g, and every descent rule hands over g exactly (deterministic)."""
    row = sampy.variant(name)
    hyper = {**row.defaults(), "rho": 0.0}
    base, variant = _run_both(_base, lambda b: row.make(b, **hyper), fname, bname)
    np.testing.assert_array_equal(variant.xs, base.xs)


def test_looksam_rho_zero_near_a_minimum_is_plain_sgd():
    """Sphere f = ‖x‖², SGD lr = 0.1: x_{t+1} = 0.8 x_t exactly as a hand recursion.

    Regression test: with an eps in the projection's ‖g‖² + eps, ρ = 0
    left g_v = g·eps/‖g‖² ≈ 1e-8 here, and the reuse scaling ‖g‖/(‖g_v‖ + 1e-8) turned it into
    reuse steps about 35 % too long (measured before the fix: 0.584 instead of 0.64 at t = 2).
    """
    x0 = np.array([3e-5, 4e-5])
    traj = sampy.run(LookSAM(SGD(lr=0.1), rho=0.0, k=10), "sphere", x0, 5)
    expected = np.array([x0 * 0.8**t for t in range(6)])
    np.testing.assert_allclose(traj.xs, expected, rtol=1e-12, atol=0)


@matrix
def test_gsam_rho_zero_is_the_base_up_to_its_eps_guards(fname, bname):
    """ρ = 0 ⇒ h = g, and g_⊥ = g(1 − ‖g‖²/(‖g‖²+eps) · ‖g‖/(‖g‖+eps)), not exactly 0.

    So ‖d − g‖ = α‖g_⊥‖ ≤ α·eps·(1 + 1/‖g‖) per step. On these runs ‖g‖ ≥ 0.025 (the
    smallest: SGD-momentum on the quadratic), i.e. ≤ 1.6e-11 per step; SGD-momentum turns
    it into a move of ≤ lr/(1 − μ) = 0.1 times that, ≤ 1e-10 after 60 steps without
    amplification. 1e-9 leaves a factor 10. Without the guard (perturb_eps = 0) only
    rounding is left.
    """
    base, gsam = _run_both(_base, lambda b: GSAM(b, rho=0.0, alpha=0.4), fname, bname)
    np.testing.assert_allclose(gsam.xs, base.xs, rtol=0, atol=1e-9)
    _, bare = _run_both(_base, lambda b: GSAM(b, rho=0.0, alpha=0.4, perturb_eps=0.0), fname, bname)
    # cos = ⟨g,g⟩/(‖g‖‖g‖) is 1 to an ulp: a rounding-level g_⊥ each step (measured ≤ 2e-14).
    np.testing.assert_allclose(bare.xs, base.xs, rtol=0, atol=1e-13)


@matrix
def test_wsam_coupled_rho_zero_is_the_base_up_to_rounding(fname, bname):
    """d = α g + (1 − α) g: mathematically g, but α = 9 (γ = 0.9) makes it g to a few ulps.

    A few ulps of 17‖g‖ per step, 60 steps, lr ≤ 0.02: far below 1e-12.
    """
    base, wsam = _run_both(_base, lambda b: WSAM(b, rho=0.0, decouple=False), fname, bname)
    np.testing.assert_allclose(wsam.xs, base.xs, rtol=0, atol=1e-12)


# --- GSAM


@matrix
def test_gsam_alpha_zero_with_constant_rho_is_sam(fname, bname):
    _assert_differs(_base, _sam(0.1), fname, bname)
    sam, gsam = _run_both(_sam(0.1), lambda b: GSAM(b, rho=0.1, alpha=0.0), fname, bname)
    np.testing.assert_array_equal(gsam.xs, sam.xs)
    # The same through a ρ schedule tied to a constant lr: ρ_t = ρ_max every step.
    schedule = proportional_rho(lambda t: 0.01, 0.01, 0.01, rho_max=0.1, rho_min=0.02)
    _, scheduled = _run_both(
        _base, lambda b: GSAM(b, alpha=0.0, rho_schedule=schedule), fname, bname
    )
    np.testing.assert_array_equal(scheduled.xs, sam.xs)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 5.0])
def test_gsam_descent_keeps_the_perturbed_gradient_component(alpha):
    """⟨d, h⟩ = ‖h‖²: the correction −α g_⊥ is orthogonal to h = ∇f(w + ε) (Zhuang et al.)."""
    rng = np.random.default_rng(11)
    w = rng.normal(size=(50, 3)) * 2.0
    rho = 0.3
    g = _grad(w)
    assert np.linalg.norm(g, axis=-1).min() > 0.1  # the eps guards are ≤ 1e-11 relative
    h = _grad(w + rho * _unit(g))  # closed form of the perturbed gradient
    base = RecordingBase()
    opt = GSAM(base, rho=rho, alpha=alpha)
    opt.step(w, opt.init(w), Oracle(_quadratic3()))
    d = base.directions[0]
    hh = np.sum(h * h, axis=-1)
    np.testing.assert_allclose(np.sum(d * h, axis=-1), hh, rtol=1e-10)
    # And d is not h: the correction is really there (α g_⊥ with g_⊥ = g − (⟨g,h⟩/‖h‖²) h).
    g_perp = g - (np.sum(g * h, axis=-1) / hh)[:, None] * h
    np.testing.assert_allclose(d, h - alpha * g_perp, rtol=0, atol=1e-11)
    assert np.linalg.norm(alpha * g_perp, axis=-1).max() > 1e-2


def test_gsam_descent_is_h_when_g_is_parallel_to_h():
    """Sphere: h = 2(w + ρĝ) ∥ g, so g_⊥ = 0 and d = h, up to the 1e-12 guards.

    With g ∥ h the guarded g_⊥ is g·(1 − cos‖h‖/(‖h‖ + eps)) with 1 − cos ≈ eps/(‖g‖‖h‖), so
    ‖d − h‖ = α‖g_⊥‖ ≤ α·eps·(1 + ‖g‖)/‖h‖ ≤ 1.2e-12 at these points: atol 2e-12.
    """
    w = np.array([[1.0, -2.0], [0.3, 0.4]])
    base = RecordingBase()
    opt = GSAM(base, rho=0.2, alpha=0.8)
    opt.step(w, opt.init(w), Oracle(functions.get("sphere")))
    h = 2.0 * (w + 0.2 * _unit(w))
    np.testing.assert_allclose(base.directions[0], h, rtol=0, atol=2e-12)


def test_proportional_rho_follows_the_learning_rate():
    lrs = [0.1, 0.08, 0.06, 0.04, 0.02]
    rho = proportional_rho(lambda t: lrs[t], lr_max=0.1, lr_min=0.02, rho_max=0.3, rho_min=0.1)
    # ρ_t = 0.1 + 0.2 (lr_t − 0.02)/0.08, by hand:
    np.testing.assert_allclose([rho(t) for t in range(5)], [0.3, 0.25, 0.2, 0.15, 0.1], rtol=1e-14)
    constant = proportional_rho(lambda t: lrs[t], 0.05, 0.05, rho_max=0.3, rho_min=0.1)
    assert [constant(t) for t in range(5)] == [0.3] * 5


def test_proportional_rho_goes_negative_in_warm_up_unless_clamped():
    lrs = [0.0, 0.01, 0.02, 0.06, 0.1]  # a warm-up that starts below lr_min = 0.02
    raw = proportional_rho(lambda t: lrs[t], 0.1, 0.02, rho_max=0.3, rho_min=0.0)
    clamped = proportional_rho(lambda t: lrs[t], 0.1, 0.02, rho_max=0.3, rho_min=0.0, clamp=True)
    expected = [0.3 * (lr - 0.02) / 0.08 for lr in lrs]  # −0.075, −0.0375, 0, 0.15, 0.3
    np.testing.assert_allclose([raw(t) for t in range(5)], expected, rtol=1e-14, atol=1e-17)
    np.testing.assert_allclose(
        [clamped(t) for t in range(5)], [max(r, 0.0) for r in expected], rtol=1e-14, atol=1e-17
    )


def _gsam_radii(opt, x0, steps):
    """Run GSAM (α = 0) on the sphere with a recording base; return ‖ε_t‖ for every step.

    On the sphere h = 2(w + ε) and, with α = 0, d = h, so ε_t = d_t/2 − w_t.
    """
    base = opt.base
    x, state = x0, opt.init(x0)
    oracle = Oracle(functions.get("sphere"))
    for _ in range(steps):
        x, state = opt.step(x, state, oracle)
    return [np.linalg.norm(d / 2.0 - w) for w, d in zip(base.points, base.directions, strict=True)]


def test_gsam_uses_rho_t_of_the_schedule_at_step_t():
    lrs = [0.1 * (1 - t / 20) for t in range(20)]
    schedule = proportional_rho(lambda t: lrs[t], 0.1, 0.01, rho_max=0.4, rho_min=0.05)
    opt = GSAM(RecordingBase(lr=0.05), alpha=0.0, rho_schedule=schedule)
    radii = _gsam_radii(opt, np.array([1.0, -0.5]), 8)
    expected = [0.05 + 0.35 * (lrs[t] - 0.01) / 0.09 for t in range(8)]
    # ‖ε‖ = ρ‖g‖/(‖g‖ + 1e-12) with ‖g‖ ≥ 0.5: relative 2e-12 at most.
    np.testing.assert_allclose(radii, expected, rtol=1e-11)
    assert expected[0] > expected[-1] + 0.1  # ρ really changed along the run


def test_gsam_with_a_clamped_warm_up_schedule_does_not_perturb_during_warm_up():
    lrs = [0.0, 0.01, 0.02, 0.06, 0.1, 0.1]
    schedule = proportional_rho(lambda t: lrs[t], 0.1, 0.02, rho_max=0.3, rho_min=0.0, clamp=True)
    opt = GSAM(RecordingBase(lr=0.05), alpha=0.0, rho_schedule=schedule)
    radii = _gsam_radii(opt, np.array([1.0, -0.5]), 6)
    assert radii[:3] == [0.0, 0.0, 0.0]  # ρ_t clamped to 0: ε = 0·g exactly
    np.testing.assert_allclose(radii[3:], [0.15, 0.3, 0.3], rtol=1e-11)


def test_gsam_with_an_unclamped_warm_up_uses_the_negative_rho():
    """clamp=False (the default, for fidelity with big_vision): ρ_t < 0 is used as is."""
    lrs = [0.0, 0.01, 0.02, 0.06, 0.1, 0.1]
    schedule = proportional_rho(lambda t: lrs[t], 0.1, 0.02, rho_max=0.3, rho_min=0.0)
    opt = GSAM(RecordingBase(lr=0.05), alpha=0.0, rho_schedule=schedule)
    x0 = np.array([1.0, -0.5])
    radii = _gsam_radii(opt, x0, 6)
    np.testing.assert_allclose(radii, [0.075, 0.0375, 0.0, 0.15, 0.3, 0.3], rtol=1e-11, atol=0)
    base = opt.base
    # ε_0 = ρ_0 g/‖g‖ with ρ_0 = −0.075: a step downhill, as the official code takes it.
    e0 = base.directions[0] / 2.0 - base.points[0]
    np.testing.assert_allclose(e0, -0.075 * _unit(x0), rtol=1e-11)


# --- WSAM


@matrix
def test_wsam_gamma_half_coupled_is_sam(fname, bname):
    """γ = 0.5 ⇒ α = 1 ⇒ d = 1·g̃ + 0·g = g̃ exactly."""
    sam, wsam = _run_both(
        _sam(0.1), lambda b: WSAM(b, rho=0.1, gamma=0.5, decouple=False), fname, bname
    )
    np.testing.assert_array_equal(wsam.xs, sam.xs)


@pytest.mark.parametrize("fname", FUNCS)
def test_wsam_gamma_half_decoupled_with_plain_sgd_is_sam(fname):
    """(w − η g) − η(g̃ − g) = w − η g̃: equal up to a few ulps per step (measured ≤ 2e-15)."""
    make_f, x0 = FUNCS[fname]
    sam = sampy.run(SAM(SGD(lr=0.01), rho=0.1), make_f(), x0, STEPS)
    wsam = sampy.run(WSAM(SGD(lr=0.01), rho=0.1, gamma=0.5), make_f(), x0, STEPS)
    np.testing.assert_allclose(wsam.xs, sam.xs, rtol=0, atol=1e-13)


@matrix
def test_wsam_decoupled_differs_from_sam_with_momentum_or_adam(fname, bname):
    """With momentum or Adam the decoupled sharpness term bypasses the base."""
    sam, wsam = _run_both(_sam(0.1), lambda b: WSAM(b, rho=0.1, gamma=0.5), fname, bname)
    assert np.abs(wsam.xs - sam.xs).max() > 1e-3


@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_wsam_decoupled_and_coupled_coincide_for_plain_sgd(gamma):
    """One step from 100 points: w − η(α g̃ + (1−α) g) vs (w − η g) − ηα(g̃ − g).

    Same number, different rounding: a few ulps of |w| + η(|g| + α|g̃ − g|) (α ≤ 99).
    """
    rng = np.random.default_rng(12)
    w = rng.normal(size=(100, 3)) * 2.0
    f = _quadratic3()
    lr = 0.01
    decoupled = WSAM(SGD(lr=lr), rho=0.2, gamma=gamma, decouple=True)
    coupled = WSAM(SGD(lr=lr), rho=0.2, gamma=gamma, decouple=False)
    a, _ = decoupled.step(w, decoupled.init(w), Oracle(f))
    b, _ = coupled.step(w, coupled.init(w), Oracle(f))
    g = _grad(w)
    gt = _grad(w + 0.2 * _unit(g))
    alpha = gamma / (1 - gamma)
    scale = np.abs(w) + lr * (np.abs(g) + alpha * np.abs(gt - g))
    assert np.all(np.abs(a - b) <= 8 * np.finfo(float).eps * scale)


@pytest.mark.parametrize("fname", FUNCS)
def test_wsam_decoupled_and_coupled_trajectories_coincide_for_plain_sgd(fname):
    make_f, x0 = FUNCS[fname]
    for gamma in (0.2, 0.7):
        a = sampy.run(WSAM(SGD(lr=0.01), rho=0.1, gamma=gamma), make_f(), x0, STEPS)
        b = sampy.run(WSAM(SGD(lr=0.01), gamma=gamma, rho=0.1, decouple=False), make_f(), x0, STEPS)
        # Rounding only (measured ≤ 2e-14 over 60 steps).
        np.testing.assert_allclose(a.xs, b.xs, rtol=0, atol=1e-12)


@matrix
@pytest.mark.parametrize("decouple", [True, False])
def test_wsam_gamma_zero_is_the_base_on_g(fname, bname, decouple):
    """γ = 0 ⇒ α = 0: d = 0·g̃ + 1·g = g (coupled); w − η·0·(g̃ − g) = w (decoupled)."""
    base, wsam = _run_both(
        _base, lambda b: WSAM(b, rho=0.1, gamma=0.0, decouple=decouple), fname, bname
    )
    np.testing.assert_array_equal(wsam.xs, base.xs)
    assert wsam.grad_evals == 2 * base.grad_evals  # two evaluations, one of them wasted


def _clip_like_torch(v, max_norm):
    """torch.nn.utils.clip_grad_norm_: v · min(1, max_norm/(‖v‖ + 1e-6)), global norm."""
    norm = float(np.linalg.norm(v))
    coef = max_norm / (norm + 1e-6)
    return v * coef if coef < 1.0 else v


def test_own_clip_helper_matches_torch():
    torch = pytest.importorskip("torch")
    for v, c in [([3.0, 4.0], 1.0), ([3.0, 4.0], 5.0), ([3.0, 4.0], 10.0), ([1e-3, 0.0], 1e-3)]:
        p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor(v, dtype=torch.float64)
        torch.nn.utils.clip_grad_norm_([p], c)
        np.testing.assert_allclose(
            p.grad.numpy(), _clip_like_torch(np.array(v), c), rtol=1e-15, atol=0
        )


@pytest.mark.parametrize("decouple", [True, False])
@pytest.mark.parametrize("max_norm", [1.0, 7.0, 8.0, 100.0])
def test_wsam_max_norm_clips_both_gradients_like_torch(decouple, max_norm):
    """‖g‖ ≈ 7.19 and ‖g̃‖ ≈ 8.38 here: 1 and 7 clip both, 8 only g̃, 100 neither."""
    lr, rho, gamma = 0.05, 0.3, 0.8
    alpha = gamma / (1 - gamma)
    g = _grad(W)
    gt = _grad(W + rho * _unit(g))  # ε from the unclipped g (the official code builds ε first)
    gc, gtc = _clip_like_torch(g, max_norm), _clip_like_torch(gt, max_norm)
    expected = W - lr * (alpha * gtc + (1 - alpha) * gc)
    opt = WSAM(SGD(lr=lr), rho=rho, gamma=gamma, decouple=decouple, max_norm=max_norm)
    new, _ = opt.step(W, opt.init(W), Oracle(_quadratic3()))
    np.testing.assert_allclose(new, expected, rtol=0, atol=1e-13)
    assert np.linalg.norm(g) < np.linalg.norm(gt)
    if max_norm < np.linalg.norm(gt):
        assert np.abs(new - (W - lr * (alpha * gt + (1 - alpha) * g))).max() > 1e-3


@matrix
def test_wsam_max_norm_above_every_gradient_changes_nothing(fname, bname):
    """min(1, c/(‖g‖+1e-6)) = 1 ⇒ g·1.0 = g: bit-for-bit the unclipped run."""
    plain, clipped = _run_both(
        lambda b: WSAM(b, rho=0.1), lambda b: WSAM(b, rho=0.1, max_norm=1e6), fname, bname
    )
    np.testing.assert_array_equal(clipped.xs, plain.xs)


# --- LookSAM


@matrix
def test_looksam_k1_is_sam(fname, bname):
    sam, look = _run_both(_sam(0.1), lambda b: LookSAM(b, rho=0.1, k=1, alpha=0.7), fname, bname)
    np.testing.assert_array_equal(look.xs, sam.xs)


@matrix
def test_looksam_alpha_zero_alternates_sam_steps_and_base_steps(fname, bname):
    """α = 0: steps t ≡ 0 (mod k) are SAM steps, all others are base steps on g, sharing one
    base state — composed here from SAM.step and the base's own step."""
    k = 3
    make_f, x0 = FUNCS[fname]
    f = make_f()
    look = sampy.run(LookSAM(BASES[bname](), rho=0.1, k=k, alpha=0.0), f, x0, STEPS)
    base = BASES[bname]()
    sam = SAM(base, rho=0.1)
    oracle = Oracle(f)
    x, state = x0.copy(), base.init(x0)
    for t in range(STEPS):
        if t % k == 0:
            x, s = sam.step(x, SharpnessAwareState(None, None, state), oracle)
            state = s.base
        else:
            x, state = base.step(x, state, oracle)
        np.testing.assert_array_equal(look.xs[t + 1], x)
    _, plain = _run_both(_base, _base, fname, bname)
    assert np.abs(look.xs - plain.xs).max() > 1e-4  # the SAM steps did something


def test_looksam_stored_direction_is_orthogonal_to_g_and_reuse_has_length_alpha_g():
    rng = np.random.default_rng(13)
    w = rng.normal(size=(40, 3)) * 2.0
    rho, alpha, lr = 0.5, 0.7, 0.05
    f = _quadratic3()
    opt = LookSAM(SGD(lr=lr), rho=rho, k=5, alpha=alpha)
    oracle = Oracle(f)
    state = opt.init(w)
    _, state = opt.step(w, state, oracle)
    g = _grad(w)
    h = _grad(w + rho * _unit(g))
    g_v_hand = h - (np.sum(h * g, axis=-1) / np.sum(g * g, axis=-1))[:, None] * g
    g_v = state.g_v
    # ε's 1e-12 guard moves g_s = h by ≤ λmax(A)·ρ·1e-12/‖g‖ ≲ 1e-11 at these points.
    np.testing.assert_allclose(g_v, g_v_hand, rtol=0, atol=1e-11)
    cos = np.sum(g_v * g, axis=-1) / (np.linalg.norm(g_v, axis=-1) * np.linalg.norm(g, axis=-1))
    assert np.abs(cos).max() < 1e-10
    gv_norm = np.linalg.norm(g_v, axis=-1)
    assert gv_norm.min() > 1e-2  # a real orthogonal part, so the 1e-8 guard is ≤ 1e-6 relative
    # A reuse step: d − g is α‖g‖ along g_v, up to the guard ‖g_v‖/(‖g_v‖ + 1e-8).
    base = RecordingBase(lr=lr)
    look = LookSAM(base, rho=rho, k=5, alpha=alpha)
    s = look.init(w)
    y, s = look.step(w, s, oracle)
    y, s = look.step(y, s, oracle)
    d = base.directions[1]
    g1 = _grad(base.points[1])
    diff = d - g1
    length = np.linalg.norm(diff, axis=-1)
    target = alpha * np.linalg.norm(g1, axis=-1)
    assert np.all(np.abs(length - target) <= target * (1e-8 / gv_norm) + 1e-13)
    cos_dv = np.sum(diff * g_v, axis=-1) / (length * gv_norm)
    np.testing.assert_allclose(cos_dv, 1.0, rtol=0, atol=1e-12)


# --- FriendlySAM, VaSSO, FisherSAM, USAM


@matrix
@pytest.mark.parametrize("order", ["official_code", "paper"])
def test_friendly_sam_sigma_zero_is_sam(fname, bname, order):
    sam, fsam = _run_both(
        _sam(0.1),
        lambda b: FriendlySAM(b, rho=0.1, sigma=0.0, lmbda=0.6, momentum_order=order),
        fname,
        bname,
    )
    np.testing.assert_array_equal(fsam.xs, sam.xs)


def test_friendly_sam_first_step_is_sam():
    f = _quadratic3()
    sam = SAM(SGD(lr=0.05), rho=0.3)
    expected, _ = sam.step(W, sam.init(W), Oracle(f))
    official = FriendlySAM(SGD(lr=0.05), rho=0.3, sigma=1.0, lmbda=0.9)
    got, _ = official.step(W, official.init(W), Oracle(f))
    np.testing.assert_array_equal(got, expected)
    # Paper order: d_1 = (1 − σ(1 − λ)) g_1 = 0.9 g_1, the same direction; ε differs from
    # SAM's only through the 1e-12 guard (relative ≤ 2e-13 with ‖g‖ ≈ 7).
    paper = FriendlySAM(SGD(lr=0.05), rho=0.3, sigma=1.0, lmbda=0.9, momentum_order="paper")
    got, _ = paper.step(W, paper.init(W), Oracle(f))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)


def test_friendly_sam_lambda_zero_perturbs_along_g_minus_sigma_previous_g():
    """λ = 0 (official order): m_t = g_t, so d_t = g_t − σ g_{t−1} from the second step on."""
    rho, sigma, lr = 0.3, 0.8, 0.05
    opt = FriendlySAM(SGD(lr=lr), rho=rho, sigma=sigma, lmbda=0.0)
    traj = sampy.run(opt, _quadratic3(), W, 10)
    x, g_prev = W.copy(), None
    for t in range(10):
        g = _grad(x)
        d = g if g_prev is None else g - sigma * g_prev
        x = x - lr * _grad(x + rho * _unit(d))
        g_prev = g
        # Guard 1e-12 on ‖d‖ ≥ 0.5 here: relative 2e-12 of ε (ρ = 0.3), then lr·‖A‖ ≤ 0.25.
        np.testing.assert_allclose(traj.xs[t + 1], x, rtol=0, atol=1e-12)


@matrix
def test_vasso_theta_one_is_sam(fname, bname):
    sam, vasso = _run_both(_sam(0.1), lambda b: VaSSO(b, rho=0.1, theta=1.0), fname, bname)
    np.testing.assert_array_equal(vasso.xs, sam.xs)


@matrix
def test_fisher_sam_eta_zero_is_sam(fname, bname):
    sam, fisher = _run_both(
        _sam(0.1), lambda b: FisherSAM(b, rho=0.1, fisher_eta=0.0), fname, bname
    )
    np.testing.assert_array_equal(fisher.xs, sam.xs)


def test_usam_on_the_quadratic_is_i_plus_rho_a_times_g():
    """ε = ρg ⇒ g̃ = A(w + ρg) − b = (I + ρA)(Aw − b), for 20 steps of plain SGD."""
    rho, lr = 0.1, 0.05
    traj = sampy.run(USAM(SGD(lr=lr), rho=rho), _quadratic3(), W, 20)
    x = W.copy()
    for t in range(20):
        x = x - lr * (np.eye(3) + rho * A) @ (A @ x - B)
        np.testing.assert_allclose(traj.xs[t + 1], x, rtol=0, atol=1e-12)


# --- RandomSAM


@matrix
def test_random_sam_mix_one_is_the_base(fname, bname):
    """λ = 1: d = 1·g + 0·g̃ = g whatever the random perturbation did."""
    base, rsam = _run_both(_base, lambda b: RandomSAM(b, rho=0.2, mix=1.0, seed=3), fname, bname)
    np.testing.assert_array_equal(rsam.xs, base.xs)


def test_random_sam_is_reproducible_from_its_seed():
    f = functions.get("himmelblau")
    x0 = FUNCS["himmelblau"][1]
    runs = [sampy.run(RandomSAM(SGD(lr=0.01), rho=0.3, seed=s), f, x0, 40) for s in (5, 5, 6)]
    np.testing.assert_array_equal(runs[0].xs, runs[1].xs)
    assert np.abs(runs[0].xs - runs[2].xs).max() > 1e-3


@pytest.mark.parametrize("mix", [0.0, 0.25])
def test_random_sam_gaussian_steps_on_the_sphere(mix):
    """ε_t = ρ z_t with z_t the t-th draw of default_rng(seed); on the sphere
    d = λ·2w + (1 − λ)·2(w + ε)."""
    rho, lr, seed = 0.3, 0.1, 9
    x0 = np.array([[1.0, -0.5], [0.2, 0.7]])
    traj = sampy.run(RandomSAM(SGD(lr=lr), rho=rho, mix=mix, seed=seed), "sphere", x0, 4)
    rng = np.random.default_rng(seed)
    x = x0.copy()
    for t in range(4):
        e = rho * rng.standard_normal(x.shape)
        x = x - lr * (mix * 2 * x + (1 - mix) * 2 * (x + e))
        np.testing.assert_allclose(traj.xs[t + 1], x, rtol=0, atol=1e-15)


def test_random_sam_sphere_kind_has_length_rho():
    rng = np.random.default_rng(14)
    x = rng.normal(size=(200, 3))
    rho = np.linspace(0.01, 2.0, 200)
    opt = RandomSAM(SGD(lr=0.1), rho=rho, kind="sphere", seed=2)
    e, _ = opt.ascent(x, _grad(x), opt.ascent.init(x))
    np.testing.assert_allclose(np.linalg.norm(e, axis=-1), rho, rtol=1e-14)
    # and a direction that does not follow the gradient
    cos = np.sum(e * _grad(x), axis=-1) / (
        np.linalg.norm(e, axis=-1) * np.linalg.norm(_grad(x), axis=-1)
    )
    assert cos.min() < -0.5 and cos.max() > 0.5


# --- the anatomy family (research notes on the anatomy of SAM's gradient)


def _ckpt_by_hand(g, gt, eps, mode):
    """The four checkpoints of the notes, one coordinate at a time."""
    if mode == "sign_safe":
        if abs(g) < eps:
            return 0
        r = gt / (g + eps * (1.0 if g >= 0 else -1.0))
    else:
        den = g + eps
        if den == 0:
            return 0 if gt == 0 else (1 if gt > 0 else 3)  # ±inf: beyond ±1
        r = gt / den
    if r > 1:
        return 1
    if 0 < r < 1:
        return 2
    if r < -1:
        return 3
    if -1 < r < 0:
        return 4
    return 0


EPS = 1e-8
# (g, g̃, checkpoint with the sign-safe ratio, checkpoint with the notes' code's ratio)
PAIRS = [
    (1.0, 2.0, 1, 1),
    (1.0, 0.5, 2, 2),
    (1.0, -2.0, 3, 3),
    (1.0, -0.5, 4, 4),
    (-3.0, -6.0, 1, 1),
    (-3.0, -1.5, 2, 2),
    (-3.0, 6.0, 3, 3),
    (-3.0, 1.5, 4, 4),
    (1.0, 0.0, 0, 0),  # r = 0
    (-2.0, 0.0, 0, 0),  # r = 0
    (1.0, 1.0 + EPS, 0, 0),  # r = 1 exactly: (1 + eps)/(1 + eps)
    (1.0, -(1.0 + EPS), 0, 0),  # r = −1 exactly
    (-2.0, -2.0 - EPS, 0, 1),  # sign-safe r = 1; notes' code: −2.00000001/−1.99999999 > 1
    (-2.0, 2.0 + EPS, 0, 3),  # sign-safe r = −1; notes' code r < −1
    (2.0, 2.0, 2, 2),  # g̃ = g: the guard makes r slightly below 1 for g > 0 ...
    (-2.0, -2.0, 2, 1),  # ... and, in the notes' code, slightly above 1 for g < 0
    (0.0, 5.0, 0, 1),  # g = 0: undefined (sign-safe); notes' code r = 5e8
    (0.0, -5.0, 0, 3),
    (0.0, 0.0, 0, 0),
    (0.0, 1e-9, 0, 2),  # notes' code: r = 0.1
    (5e-9, 1.0, 0, 1),  # |g| < eps: ckpt0 in sign-safe mode
]


@pytest.mark.parametrize("mode", ["sign_safe", "notes_code"])
def test_checkpoints_of_hand_made_pairs(mode):
    g = np.array([p[0] for p in PAIRS])
    gt = np.array([p[1] for p in PAIRS])
    column = 2 if mode == "sign_safe" else 3
    expected = np.array([p[column] for p in PAIRS])
    np.testing.assert_array_equal(checkpoints(g, gt, EPS, mode), expected)
    by_hand = np.array([_ckpt_by_hand(a, b, EPS, mode) for a, b in zip(g, gt, strict=True)])
    np.testing.assert_array_equal(by_hand, expected)  # the table agrees with the notes' checkpoints
    # Batched: the same classification for a (3, 7) reshape of the table.
    np.testing.assert_array_equal(
        checkpoints(g.reshape(3, 7), gt.reshape(3, 7), EPS, mode), expected.reshape(3, 7)
    )


def test_sign_safe_ratio_without_guard_puts_zero_gradients_in_ckpt0():
    """ratio_eps = 0 is valid: g = 0 is an undefined ratio (ckpt0), not g̃/0 = ±inf."""
    g = np.array([0.0, 0.0, 0.0, 1.0])
    gt = np.array([5.0, -5.0, 0.0, 2.0])
    np.testing.assert_array_equal(checkpoints(g, gt, 0.0, "sign_safe"), [0, 0, 0, 1])


def _sam_pairs(rho=0.8, n=300, seed=15):
    """Random points of the 3-D quadratic where every checkpoint 1-4 occurs."""
    w = np.random.default_rng(seed).normal(size=(n, 3)) * 2.0
    g = _grad(w)
    gt = _grad(w + rho * _unit(g))
    return w, g, gt


def _one_step_direction(opt, w):
    base = opt.base
    opt.step(w, opt.init(w), Oracle(_quadratic3()))
    return base.directions[-1]


@pytest.mark.parametrize("mode", ["sign_safe", "notes_code"])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_same_factor_one_is_sam_and_factor_zero_removes_the_checkpoint(mode, k):
    w, g, gt = _sam_pairs()
    ck = np.vectorize(lambda a, b: _ckpt_by_hand(a, b, EPS, mode))(g, gt)
    assert set(np.unique(ck)) >= {1, 2, 3, 4}  # every checkpoint occurs: not vacuous
    d_sam = _one_step_direction(SAM(RecordingBase(), rho=0.8), w)
    d_one = _one_step_direction(
        SAME(RecordingBase(), rho=0.8, checkpoint=k, factor=1.0, ratio_mode=mode), w
    )
    np.testing.assert_array_equal(d_one, d_sam)
    d_zero = _one_step_direction(
        SAME(RecordingBase(), rho=0.8, checkpoint=k, factor=0.0, ratio_mode=mode), w
    )
    np.testing.assert_array_equal(d_zero, np.where(ck == k, 0.0, d_sam))
    # and the closed form: d_sam = g̃ (guard 1e-12 on ‖g‖ ≳ 0.5)
    np.testing.assert_allclose(d_sam, gt, rtol=0, atol=1e-11)


@matrix
@pytest.mark.parametrize("mode", ["sign_safe", "notes_code"])
def test_same_factor_one_custom_same_all_ones_and_samckpt_all_are_sam(fname, bname, mode):
    _assert_differs(_base, _sam(0.1), fname, bname)
    sam, same = _run_both(
        _sam(0.1),
        lambda b: SAME(b, rho=0.1, checkpoint=3, factor=1.0, ratio_mode=mode),
        fname,
        bname,
    )
    np.testing.assert_array_equal(same.xs, sam.xs)
    _, custom = _run_both(
        _base, lambda b: CustomSAME(b, rho=0.1, factors=(1.0,) * 5, ratio_mode=mode), fname, bname
    )
    np.testing.assert_array_equal(custom.xs, sam.xs)
    _, hybrid = _run_both(
        _base,
        lambda b: SAMCkpt(b, rho=0.1, checkpoints=(0, 1, 2, 3, 4), ratio_mode=mode),
        fname,
        bname,
    )
    np.testing.assert_array_equal(hybrid.xs, sam.xs)


def test_custom_same_and_samckpt_directions_by_hand():
    w, g, gt = _sam_pairs()
    ck = np.vectorize(lambda a, b: _ckpt_by_hand(a, b, EPS, "sign_safe"))(g, gt)
    factors = (0.5, 3.0, 1.0, 0.0, 2.0)
    d = _one_step_direction(CustomSAME(RecordingBase(), rho=0.8, factors=factors), w)
    np.testing.assert_allclose(d, gt * np.array(factors)[ck], rtol=0, atol=1e-10)
    d = _one_step_direction(SAMCkpt(RecordingBase(), rho=0.8, checkpoints=(1, 3)), w)
    np.testing.assert_allclose(d, np.where(np.isin(ck, (1, 3)), gt, g), rtol=0, atol=1e-11)


def test_same_at_rho_zero_amplifies_ckpt2_because_of_the_sign_safe_guard():
    """ρ = 0 ⇒ g̃ = g ⇒ r = |g|/(|g| + 1e-8) < 1: every coordinate sits in ckpt2, not on the
    boundary r = 1. So SAME(checkpoint=2, factor=c) at ρ = 0 is the base on c·g (and SAME with
    checkpoint ≠ 2 is the base, tested in the ρ = 0 matrix)."""
    x0 = np.array([[1.5, -1.0], [-1.0, 2.0]])
    f = functions.get("quadratic", A=A2, b=B2)
    same = sampy.run(SAME(SGD(lr=0.01), rho=0.0, checkpoint=2, factor=3.0), f, x0, 20)
    sgd = sampy.run(SGD(lr=0.03), f, x0, 20)  # lr·(3g) = (3 lr)·g
    np.testing.assert_allclose(same.xs, sgd.xs, rtol=0, atol=1e-14)


@matrix
def test_swaps_with_rho_zero_are_the_base(fname, bname):
    """g̃ = g: sign(g)|g| = g and |g| sign(g) = g exactly."""
    base, direction = _run_both(_base, lambda b: SAMDirection(b, rho=0.0), fname, bname)
    np.testing.assert_array_equal(direction.xs, base.xs)
    _, magnitude = _run_both(_base, lambda b: SAMMagnitude(b, rho=0.0), fname, bname)
    np.testing.assert_array_equal(magnitude.xs, base.xs)


def test_swap_directions_by_hand():
    w, g, gt = _sam_pairs()
    flips = np.sign(gt) != np.sign(g)
    assert flips.any() and (~flips).any()
    d_dir = _one_step_direction(SAMDirection(RecordingBase(), rho=0.8), w)
    d_mag = _one_step_direction(SAMMagnitude(RecordingBase(), rho=0.8), w)
    np.testing.assert_array_equal(np.abs(d_dir), np.abs(g))  # SGD's magnitude, exactly
    np.testing.assert_array_equal(np.sign(d_dir), np.sign(gt))  # SAM's direction
    np.testing.assert_array_equal(np.sign(d_mag), np.sign(g))  # SGD's direction, exactly
    np.testing.assert_allclose(np.abs(d_mag), np.abs(gt), rtol=0, atol=1e-11)  # SAM's magnitude


@pytest.mark.parametrize("fill", ["zero", "other"])
def test_agreement_masks_by_hand(fill):
    w, g, gt = _sam_pairs()
    agree = g * gt > 0
    assert agree.any() and (~agree).any()
    d_sam = _one_step_direction(SAMAgree(RecordingBase(), rho=0.8, fill=fill), w)
    d_sgd = _one_step_direction(SGDAgree(RecordingBase(), rho=0.8, fill=fill), w)
    # SAMAgree: g̃ where the signs agree; elsewhere 0 or (fill="other") g.
    np.testing.assert_allclose(
        d_sam, np.where(agree, gt, g if fill == "other" else 0.0), rtol=0, atol=1e-11
    )
    # SGDAgree: g where the signs agree; elsewhere 0 or (fill="other") g̃.
    np.testing.assert_allclose(
        d_sgd, np.where(agree, g, gt if fill == "other" else 0.0), rtol=0, atol=1e-11
    )
    np.testing.assert_array_equal(d_sgd[agree], g[agree])


SPHERE_X0 = np.array([[1.0, -0.7], [-0.4, 0.9], [1.3, 1.1]])  # no coordinate near 0


@pytest.mark.parametrize("bname", BASES)
def test_agreement_masks_on_the_sphere_are_sam_and_sgd(bname):
    """Sphere: g̃ = 2(w + ρŵ) has the sign of g on every coordinate."""
    f = functions.get("sphere")
    sam = sampy.run(SAM(BASES[bname](), rho=0.1), f, SPHERE_X0, STEPS)
    base = sampy.run(BASES[bname](), f, SPHERE_X0, STEPS)
    assert np.abs(sam.xs - base.xs).max() > 1e-3
    assert np.abs(sam.xs[-1]).min() > 1e-4  # still away from the axes: the signs stay defined
    for fill in ("zero", "other"):
        agree = sampy.run(SAMAgree(BASES[bname](), rho=0.1, fill=fill), f, SPHERE_X0, STEPS)
        np.testing.assert_array_equal(agree.xs, sam.xs)
        sgd_agree = sampy.run(SGDAgree(BASES[bname](), rho=0.1, fill=fill), f, SPHERE_X0, STEPS)
        np.testing.assert_array_equal(sgd_agree.xs, base.xs)


@matrix
@pytest.mark.parametrize("tau_over_rho", [1.0, 10.0])
def test_clamp_sam_with_tau_at_least_rho_is_sam(fname, bname, tau_over_rho):
    """|ε_i| ≤ ‖ε‖ ≤ ρ ≤ τ: the clip changes nothing."""
    sam, clamp = _run_both(
        _sam(0.1), lambda b: ClampSAM(b, rho=0.1, tau=0.1 * tau_over_rho), fname, bname
    )
    np.testing.assert_array_equal(clamp.xs, sam.xs)


def test_clamp_sam_perturbation_is_clipped_and_renormalised():
    rng = np.random.default_rng(16)
    x = rng.normal(size=(100, 3))
    g = _grad(x) * rng.choice([1.0, 1e3], size=(100, 3))  # some outlier coordinates
    rho, tau = 0.5, 0.2
    raw = rho * g / (np.linalg.norm(g, axis=-1, keepdims=True) + 1e-12)  # ClampSAM's ε_raw
    clipped = ClampSAM(SGD(), rho=rho, tau=tau)
    e, _ = clipped.ascent(x, g, None)
    assert np.abs(e).max() <= tau
    inside = np.abs(raw) <= tau
    assert inside.any() and (~inside).any()
    np.testing.assert_allclose(e[inside], raw[inside], rtol=1e-13)  # untouched coordinates
    np.testing.assert_array_equal(np.abs(e[~inside]), tau)  # clipped ones sit on the bound
    renorm = ClampSAM(SGD(), rho=rho, tau=tau, renorm=True)
    e2, _ = renorm.ascent(x, g, None)
    # ‖ε‖ = ρ‖c‖/(‖c‖ + 1e-12) for the clipped c, and ‖c‖ ≥ τ = 0.2: relative ≤ 5e-12.
    clipped_norm = np.linalg.norm(np.clip(raw, -tau, tau), axis=-1)
    assert clipped_norm.min() >= tau
    np.testing.assert_allclose(np.linalg.norm(e2, axis=-1), rho, rtol=1e-12 / tau + 1e-15)
    np.testing.assert_allclose(_unit(e2), _unit(np.clip(raw, -tau, tau)), rtol=0, atol=1e-14)


@matrix
def test_clip_sam_with_a_huge_condition_is_sam(fname, bname):
    """sign(g̃)·min(|g̃|, c|g|) = g̃ once c|g| ≥ |g̃| (here c = 1e300; inf-safe)."""
    sam, clip = _run_both(_sam(0.1), lambda b: ClipSAM(b, rho=0.1, condition=1e300), fname, bname)
    np.testing.assert_array_equal(clip.xs, sam.xs)


def test_clip_sam_direction_by_hand():
    w, g, gt = _sam_pairs()
    c = 1.5
    d = _one_step_direction(ClipSAM(RecordingBase(), rho=0.8, condition=c), w)
    expected = np.sign(gt) * np.minimum(np.abs(gt), c * np.abs(g))
    np.testing.assert_allclose(d, expected, rtol=0, atol=1e-11)
    assert np.any(np.abs(gt) > c * np.abs(g))  # the clip is active somewhere


@pytest.mark.parametrize("bname", BASES)
def test_sam_anatomy_on_the_sphere_is_sam_with_three_evaluations(bname):
    """No sign flips on the sphere ⇒ the masked g is g ⇒ ε2 = ε1 ⇒ SAM's update (eps 1e-8)."""
    f = functions.get("sphere")
    sam = sampy.run(SAM(BASES[bname](), rho=0.1, perturb_eps=1e-8), f, SPHERE_X0, STEPS)
    anatomy = sampy.run(SAMAnatomy(BASES[bname](), rho=0.1), f, SPHERE_X0, STEPS)
    np.testing.assert_array_equal(anatomy.xs, sam.xs)
    assert anatomy.grad_evals == 3 * STEPS
    assert sam.grad_evals == 2 * STEPS


def test_sam_anatomy_drops_sign_flipped_coordinates_from_the_second_ascent():
    """SAMAnatomy by hand on the quadratic: m = g ⊙ 1[g1/(g + 1e-8) > 0], ε2 = ρ m/‖m‖."""
    w, g, _ = _sam_pairs(rho=0.8)
    rho = 0.8
    g1 = _grad(w + rho * g / (np.linalg.norm(g, axis=-1, keepdims=True) + 1e-8))
    m = np.where(g1 / (g + 1e-8) > 0, g, 0.0)
    assert (m == 0).any() and (m != 0).any()
    g2 = _grad(w + rho * m / (np.linalg.norm(m, axis=-1, keepdims=True) + 1e-8))
    d = _one_step_direction(SAMAnatomy(RecordingBase(), rho=rho), w)
    np.testing.assert_allclose(d, g2, rtol=0, atol=1e-11)


# ---------------------------------------------------------------------------------------------
# Per-point hyperparameters and pure steps


def _per_point_rho_rows():
    """Rows with a per-point ρ. Rows with a ``seed`` draw their random numbers for the whole
    batch from one generator, so a point's draws depend on the batch: not comparable."""
    out = []
    for row in sampy.variants():
        knobs = {s.name: s for s in row.hyperparameters}
        if "rho" not in knobs or not knobs["rho"].per_point:
            continue
        if "seed" in knobs:
            reason = "one generator draws for the whole batch by design"
            out.append(pytest.param(row.name, id=row.name, marks=pytest.mark.skip(reason=reason)))
        else:
            out.append(pytest.param(row.name, id=row.name))
    return out


@pytest.mark.parametrize("name", _per_point_rho_rows())
def test_a_rho_grid_equals_separate_runs(name):
    row = sampy.variant(name)
    rhos = np.array([0.0, 0.02, 0.1, 0.3])
    f = _problem_for(row)
    x0 = np.tile([1.5, -1.0], (4, 1))
    grid = sampy.run(row.make(SGD(lr=0.02), **{**row.defaults(), "rho": rhos}), f, x0, 30)
    for k, rho in enumerate(rhos):
        alone = sampy.run(
            row.make(SGD(lr=0.02), **{**row.defaults(), "rho": float(rho)}), f, x0[k], 30
        )
        if row.needs_examples:
            # The mean over examples is summed in another order for a batch of points than
            # for one (measured: 1 ulp at one coordinate in 30 steps).
            np.testing.assert_allclose(grid.xs[:, k], alone.xs, rtol=0, atol=1e-14)
        else:
            np.testing.assert_array_equal(grid.xs[:, k], alone.xs)
    # J-SAM on a linear model is SGD whatever ρ (its Jacobian x_i does not depend on w;
    # see sampy.optim.jsam): the four radii must give one end point. Everyone else: four.
    assert len({tuple(p) for p in grid.final}) == (1 if name == "JSAM" else 4)


@pytest.mark.parametrize("name", [row.name for row in sampy.variants()])
def test_a_step_is_a_pure_function_of_point_and_state(name):
    """base.py: "An optimizer is plain data plus two pure functions"."""
    row = sampy.variant(name)
    opt = row.make(SGD(lr=0.05, momentum=0.9), **row.defaults())
    f = _problem_for(row)
    x = np.array([[1.5, -1.0], [-1.0, 2.0]])
    s0 = opt.init(x)
    x1, s1 = opt.step(x, s0, Oracle(f))
    x1_again, _ = opt.step(x, s0, Oracle(f))
    np.testing.assert_array_equal(x1_again, x1)
    x2, _ = opt.step(x1, s1, Oracle(f))
    x2_again, _ = opt.step(x1, s1, Oracle(f))
    np.testing.assert_array_equal(x2_again, x2)


# ---------------------------------------------------------------------------------------------
# 5. One-step closed forms on the non-diagonal quadratic, plain SGD base


LR = 0.05
LMAX = float(np.linalg.eigvalsh(A).max())  # ≈ 4.6


def _steps(opt, n, x0=W):
    traj = sampy.run(opt, _quadratic3(), x0, n)
    return traj.xs


def _guard(rho, *norms):
    """How far the 1e-12 guards can move a point, for tolerances.

    Each perturbation ρv/(‖v‖ + 1e-12) is off by at most ρ·1e-12/‖v‖ from ρv/‖v‖; that
    moves g̃ by at most λmax(A) times as much and x by lr times that. A difference in x also
    feeds the next step's perturbation direction (a factor of about 2 per step here), hence
    the factor 2 per normalised vector, plus rounding.
    """
    return sum(2.0 * LR * LMAX * rho * 1e-12 / n for n in norms) + 1e-14


def test_gsam_one_step_closed_form():
    rho, alpha = 0.4, 0.6
    g = _grad(W)
    h = _grad(W + rho * g / np.linalg.norm(g))
    g_perp = g - (g @ h) / (h @ h) * h
    expected = W - LR * (h - alpha * g_perp)
    got = _steps(GSAM(SGD(lr=LR), rho=rho, alpha=alpha), 1)[1]
    # Guards: ε as everywhere; g_⊥ is off by ≤ eps(1/(‖g‖‖h‖) + 1/‖h‖)·‖g‖ ≈ 2e-13·α.
    tol = _guard(rho, np.linalg.norm(g)) + LR * alpha * 1e-12 * (1 + np.linalg.norm(g))
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol)
    assert np.abs(expected - (W - LR * h)).max() > 1e-3  # differs from SAM's step


@pytest.mark.parametrize("decouple", [True, False])
@pytest.mark.parametrize("gamma", [0.3, 0.9])
def test_wsam_one_step_closed_form(decouple, gamma):
    rho = 0.4
    alpha = gamma / (1 - gamma)
    g = _grad(W)
    gt = _grad(W + rho * g / np.linalg.norm(g))
    expected = W - LR * (g + alpha * (gt - g))
    got = _steps(WSAM(SGD(lr=LR), rho=rho, gamma=gamma, decouple=decouple), 1)[1]
    np.testing.assert_allclose(got, expected, rtol=0, atol=alpha * _guard(rho, np.linalg.norm(g)))
    assert np.abs(expected - (W - LR * gt)).max() > 1e-3  # α ≠ 1: not SAM's step


def test_fisher_sam_one_step_closed_form():
    rho, eta = 0.4, 0.5
    g = _grad(W)
    finv_g = g / (1 + eta * g**2)  # F = diag(1 + η g²)
    length = np.sqrt(g @ finv_g)
    e = rho * finv_g / length
    np.testing.assert_allclose(e @ ((1 + eta * g**2) * e), rho**2, rtol=1e-14)  # on the ellipsoid
    expected = W - LR * _grad(W + e)
    got = _steps(FisherSAM(SGD(lr=LR), rho=rho, fisher_eta=eta), 1)[1]
    # ε is off by ≤ ‖ρF⁻¹g‖·1e-12/√(gᵀF⁻¹g) = ‖e‖·1e-12/length.
    tol = _guard(np.linalg.norm(e), length)
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol)
    sam_step = W - LR * _grad(W + rho * _unit(g))
    assert np.abs(expected - sam_step).max() > 1e-3


def test_vasso_first_two_steps_closed_form():
    rho, theta = 0.4, 0.3
    g1 = _grad(W)
    x1 = W - LR * _grad(W + rho * _unit(theta * g1))  # d_1 = θ g_1: SAM's direction
    g2 = _grad(x1)
    d2 = (1 - theta) * theta * g1 + theta * g2
    x2 = x1 - LR * _grad(x1 + rho * _unit(d2))
    got = _steps(VaSSO(SGD(lr=LR), rho=rho, theta=theta), 2)
    tol1 = _guard(rho, np.linalg.norm(theta * g1))
    np.testing.assert_allclose(got[1], x1, rtol=0, atol=tol1)
    np.testing.assert_allclose(got[2], x2, rtol=0, atol=2 * tol1 + _guard(rho, np.linalg.norm(d2)))
    assert np.abs(x2 - (x1 - LR * _grad(x1 + rho * _unit(g2)))).max() > 1e-4  # not SAM's 2nd


@pytest.mark.parametrize("order", ["official_code", "paper"])
def test_friendly_sam_first_three_steps_closed_form(order):
    rho, sigma, lmbda = 0.4, 0.7, 0.6
    x, m, xs, norms = W.copy(), None, [], []
    for _ in range(3):
        g = _grad(x)
        if order == "official_code":
            if m is None:
                d, m = g, g
            else:
                d = g - sigma * m
                m = lmbda * m + (1 - lmbda) * g
        else:
            m = (1 - lmbda) * g if m is None else lmbda * m + (1 - lmbda) * g
            d = g - sigma * m
        x = x - LR * _grad(x + rho * _unit(d))
        xs.append(x)
        norms.append(np.linalg.norm(d))
    got = _steps(
        FriendlySAM(SGD(lr=LR), rho=rho, sigma=sigma, lmbda=lmbda, momentum_order=order), 3
    )
    # Errors of earlier steps carry on (factor ≈ 2 per step): 4·guard bounds all three.
    np.testing.assert_allclose(got[1:], np.array(xs), rtol=0, atol=4 * _guard(rho, *norms))
    assert min(norms) > 0.1  # the guards stay ≤ 1e-11 relative


@pytest.mark.parametrize("renorm", [False, True])
def test_clamp_sam_one_step_closed_form(renorm):
    rho, tau = 0.5, 0.2
    raw = rho * _unit(_grad(W))  # (0.38, 0.11, 0.30): two coordinates exceed τ
    e = np.clip(raw, -tau, tau)
    assert np.sum(np.abs(raw) > tau) == 2
    norms = [np.linalg.norm(_grad(W))]
    if renorm:
        norms.append(np.linalg.norm(e))  # ≈ 0.31: the second normalisation's guard
        e = rho * _unit(e)
    expected = W - LR * _grad(W + e)
    got = _steps(ClampSAM(SGD(lr=LR), rho=rho, tau=tau, renorm=renorm), 1)[1]
    np.testing.assert_allclose(got, expected, rtol=0, atol=_guard(rho, *norms))


def test_looksam_three_steps_closed_form():
    rho, alpha, k = 0.4, 0.7, 2
    g0 = _grad(W)
    h0 = _grad(W + rho * _unit(g0))
    x1 = W - LR * h0  # SAM step
    g_v = h0 - (h0 @ g0) / (g0 @ g0) * g0
    g1 = _grad(x1)
    x2 = x1 - LR * (g1 + alpha * np.linalg.norm(g1) / np.linalg.norm(g_v) * g_v)  # reuse
    g2 = _grad(x2)
    x3 = x2 - LR * _grad(x2 + rho * _unit(g2))  # SAM step again (t = 2)
    got = _steps(LookSAM(SGD(lr=LR), rho=rho, k=k, alpha=alpha), 3)
    # The reuse scaling's 1e-8 guard: relative 1e-8/‖g_v‖ of a move of size lr·α‖g1‖.
    reuse = LR * alpha * np.linalg.norm(g1) * 1e-8 / np.linalg.norm(g_v)
    tol1 = _guard(rho, np.linalg.norm(g0))
    np.testing.assert_allclose(got[1], x1, rtol=0, atol=tol1)
    np.testing.assert_allclose(got[2], x2, rtol=0, atol=2 * (tol1 + reuse))
    np.testing.assert_allclose(got[3], x3, rtol=0, atol=4 * (tol1 + reuse) + tol1)


def test_usam_one_step_closed_form():
    rho = 0.1
    expected = W - LR * (np.eye(3) + rho * A) @ (A @ W - B)
    got = _steps(USAM(SGD(lr=LR), rho=rho), 1)[1]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14)  # no guard: rounding only


def test_sam_anatomy_and_agree_variants_spend_their_documented_evaluations():
    """Counted per call of step (complements the registry-wide count above)."""
    f = _quadratic3()
    for opt, n in [
        (SAMAnatomy(SGD(lr=LR)), 3),
        (SAMAgree(SGD(lr=LR)), 2),
        (ClipSAM(SGD(lr=LR)), 2),
    ]:
        oracle = Oracle(f)
        opt.step(W, opt.init(W), oracle)
        assert oracle.calls == n
        assert math.isclose(opt.grad_evals_per_step, n)
