"""Bad hyperparameters and bad input raise ``ValueError`` naming the parameter."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sampy
from sampy import functions
from sampy.dln import DeepLinearNetwork
from sampy.optim import SAM, SGD, Adam, AdamW, NormBallAscent


def _raises_naming(name):
    return pytest.raises(ValueError, match=rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])")


def _sam(**kw):
    return SAM(SGD(lr=0.1), **kw)


NAN = float("nan")

CASES = [
    # SAM / NormBallAscent
    ("rho", lambda: _sam(rho=-0.1)),
    ("rho", lambda: _sam(rho=-1e-300)),
    ("rho", lambda: _sam(rho=NAN)),
    ("rho", lambda: _sam(rho=-math.inf)),
    ("rho", lambda: _sam(rho=np.array([0.1, -0.2]))),
    ("rho", lambda: _sam(rho="0.05")),
    ("rho", lambda: _sam(rho=None)),
    ("rho", lambda: NormBallAscent(rho=-0.5)),
    ("p", lambda: _sam(p=0.5)),
    ("p", lambda: _sam(p=0.0)),
    ("p", lambda: _sam(p=-math.inf)),
    ("p", lambda: _sam(p=NAN)),
    ("p", lambda: _sam(p=np.float64("nan"))),
    ("p", lambda: _sam(p=np.array([2.0, 3.0]))),
    ("p", lambda: NormBallAscent(p=0.999)),
    ("eta", lambda: _sam(adaptive=True, eta=-0.01)),
    ("eta", lambda: _sam(eta=NAN)),
    ("perturb_eps", lambda: _sam(perturb_eps=-1e-12)),
    ("perturb_eps", lambda: _sam(perturb_eps=NAN)),
    ("adaptive", lambda: _sam(adaptive="yes")),
    ("adaptive", lambda: _sam(adaptive=1)),
    ("adaptive", lambda: _sam(adaptive=None)),
    ("base", lambda: SAM(object(), rho=0.1)),
    ("base", lambda: SAM(lambda x: x, rho=0.1)),
    # SGD
    ("lr", lambda: SGD(lr=0.0)),
    ("lr", lambda: SGD(lr=-0.1)),
    ("lr", lambda: SGD(lr=NAN)),
    ("lr", lambda: SGD(lr=np.array([0.1, 0.0]))),
    ("lr", lambda: SGD(lr=True)),
    ("momentum", lambda: SGD(momentum=-0.1)),
    ("momentum", lambda: SGD(momentum=1.1)),
    ("momentum", lambda: SGD(momentum=NAN)),
    ("dampening", lambda: SGD(momentum=0.9, dampening=-0.5)),
    ("dampening", lambda: SGD(momentum=0.9, dampening=1.5)),
    ("nesterov", lambda: SGD(nesterov=True)),
    ("nesterov", lambda: SGD(momentum=0.9, dampening=0.1, nesterov=True)),
    ("nesterov", lambda: SGD(momentum=0.9, nesterov="true")),
    ("weight_decay", lambda: SGD(weight_decay=-1e-4)),
    # Adam / AdamW
    ("lr", lambda: Adam(lr=0.0)),
    ("lr", lambda: AdamW(lr=-1e-3)),
    ("betas", lambda: Adam(betas=(1.0, 0.999))),
    ("betas", lambda: Adam(betas=(0.9, 1.0))),
    ("betas", lambda: Adam(betas=(-0.1, 0.999))),
    ("betas", lambda: AdamW(betas=(0.9, 1.5))),
    ("betas", lambda: Adam(betas=(0.9, NAN))),
    ("betas", lambda: Adam(betas=(0.9,))),
    ("betas", lambda: Adam(betas=0.9)),
    ("eps", lambda: Adam(eps=-1e-8)),
    ("weight_decay", lambda: AdamW(weight_decay=-0.01)),
]


@pytest.mark.parametrize(("param", "make"), CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_bad_hyperparameter_raises_naming_it(param, make):
    with _raises_naming(param):
        make()


def test_boundary_values_are_accepted():
    """The ranges are closed where the docs say so: these must not raise."""
    SAM(SGD(lr=1e-12, momentum=1.0, dampening=1.0), rho=0.0, p=1.0, eta=0.0, perturb_eps=0.0)
    SAM(SGD(lr=0.1, momentum=0.0), rho=np.array([0.0, 1.0]), p=math.inf, adaptive=True)
    SAM(Adam(betas=(0.0, 0.0), eps=0.0, weight_decay=0.0), adaptive=np.bool_(True))
    SGD(lr=np.array([0.1, 0.2]), momentum=0.9, nesterov=True)


# ---------------------------------------------------------------------------------------------
# run()


def _run(x0=None, steps=3, f="sphere", **kw):
    return sampy.run(SGD(lr=0.1), f, np.zeros(2) if x0 is None else x0, steps, **kw)


@pytest.mark.parametrize(
    ("param", "call"),
    [
        ("x0", lambda: _run(x0=np.zeros(3))),
        ("x0", lambda: _run(x0=np.zeros((4, 1)))),
        ("x0", lambda: _run(x0=np.float64(1.0))),
        ("x0", lambda: _run(x0=np.array([0.0, NAN]))),
        ("x0", lambda: _run(x0=np.array([[0.0, 0.0], [math.inf, 1.0]]))),
        ("x0", lambda: _run(x0=np.array([-math.inf, 0.0]))),
        ("steps", lambda: _run(steps=-1)),
        ("steps", lambda: _run(steps=2.5)),
        ("steps", lambda: _run(steps=3.0)),
        ("steps", lambda: _run(steps="3")),
        ("steps", lambda: _run(steps=True)),
        ("steps", lambda: _run(steps=None)),
        ("bound", lambda: _run(bound=0.0)),
        ("bound", lambda: _run(bound=-1.0)),
        ("bound", lambda: _run(bound=NAN)),
        ("no_such_function", lambda: _run(f="no_such_function")),
        ("f", lambda: _run(f=42)),
    ],
)
def test_bad_run_input_raises_naming_it(param, call):
    with _raises_naming(param):
        call()


def test_unknown_function_name_is_named_by_get():
    with _raises_naming("rosenbrok"):
        functions.get("rosenbrok")


def test_numpy_integer_steps_are_accepted():
    assert _run(steps=np.int64(4)).steps == 4


# ---------------------------------------------------------------------------------------------
# Properties


_invalid_rho = st.one_of(
    st.floats(max_value=-1e-300, allow_nan=False),  # negative, including −inf
    st.just(math.nan),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.complex_numbers(allow_nan=False, allow_infinity=False),
    st.lists(st.floats(0, 1), max_size=3),  # a list, not an array
    st.builds(
        lambda good, bad: np.array([*good, bad]),
        st.lists(st.floats(0.0, 10.0), max_size=3),
        st.one_of(st.floats(max_value=-1e-300, allow_nan=False), st.just(math.nan)),
    ),
)


@settings(max_examples=120, deadline=None)
@given(rho=_invalid_rho, p=st.sampled_from([1.0, 2.0, math.inf]), adaptive=st.booleans())
def test_random_invalid_rho_raises_naming_rho(rho, p, adaptive):
    with _raises_naming("rho"):
        _sam(rho=rho, p=p, adaptive=adaptive)
    with _raises_naming("rho"):
        NormBallAscent(rho=rho)


@settings(max_examples=60, deadline=None)
@given(rho=st.floats(0.0, 1e6), lr=st.floats(1e-9, 10.0), p=st.floats(1.0, 100.0))
def test_random_valid_hyperparameters_are_accepted(rho, lr, p):
    opt = SAM(SGD(lr=lr), rho=rho, p=p)
    assert opt.rho == rho
    assert opt.ascent.p == p


@settings(max_examples=60, deadline=None)
@given(p=st.one_of(st.floats(max_value=1.0, exclude_max=True), st.just(math.nan)))
def test_random_invalid_p_raises_naming_p(p):
    with _raises_naming("p"):
        _sam(p=p)


# Non-numeric and complex arrays are rejected before any cast to float.
def test_string_array_rho_raises_naming_rho():
    try:
        _sam(rho=np.array(["0.1"]))
    except ValueError as err:
        assert "rho" in str(err), str(err)
    else:
        raise AssertionError("accepted")


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
def test_complex_array_rho_raises_naming_rho():
    try:
        _sam(rho=np.array([0.1 + 1j]))
    except ValueError as err:
        assert "rho" in str(err), str(err)
    else:
        raise AssertionError("a complex rho array was accepted")


def test_base_optimizer_class_instead_of_instance_raises_naming_base():
    try:
        SAM(SGD, rho=0.1)
    except ValueError as err:
        assert "base" in str(err), str(err)
    else:
        raise AssertionError("SAM(SGD) with the class accepted")


# --------------------------------------------------------------------------- shared checks


@pytest.mark.parametrize(
    ("where", "call"),
    [
        ("steps", lambda bad: sampy.run(_sam(), "sphere", np.zeros((1, 2)), bad)),
        ("dim", lambda bad: functions.get("sphere", dim=bad)),
        ("n", lambda bad: sampy.problems.make_logistic_problem(n=bad)),
        ("hidden", lambda bad: DeepLinearNetwork(np.ones((2, 2)), np.array([1.0, -1.0]), bad)),
    ],
)
@pytest.mark.parametrize("bad", [True, 2.0, "3", None, -1])
def test_every_integer_argument_refuses_bools_floats_and_negatives(where, call, bad):
    """One check (``sampy._checks.check_int``) behind every integer argument, one message."""
    with pytest.raises(ValueError, match=rf"{where} must be an integer"):
        call(bad)


def test_check_int_accepts_numpy_integers_and_returns_an_int():
    from sampy._checks import check_int

    value = check_int("k", np.int64(3), 1)
    assert value == 3 and type(value) is int
    with pytest.raises(ValueError, match=r"k must be an integer >= 4, got 3"):
        check_int("k", 3, 4)


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.ones(3), np.ones(3), "features must have shape"),
        (np.array([[1.0], [np.inf]]), np.array([1.0, -1.0]), "features must be finite"),
        (np.ones((2, 1)), np.array([1.0, 0.0]), "labels must be one of -1 / \\+1"),
        (np.ones((2, 1)), np.array([1.0]), "labels must be one of -1 / \\+1"),
    ],
)
@pytest.mark.parametrize("problem", ["logistic", "dln"])
def test_binary_data_is_checked_alike_by_the_logistic_problem_and_the_dln(
    features, labels, message, problem
):
    make = {
        "logistic": lambda: sampy.problems.LogisticRegression(features, labels),
        "dln": lambda: DeepLinearNetwork(features, labels, 2),
    }[problem]
    with pytest.raises(ValueError, match=message):
        make()


# --------------------------------------------------------------------------- issue 15's holes


def _real_specs():
    """(owner, spec, make) for every real/int hyperparameter of every variant and base."""
    out = []
    for row in sampy.variants():
        for spec in row.hyperparameters:
            if spec.kind in ("real", "int") and spec.name not in row.preset:
                out.append((row.name, spec, lambda row=row, **kw: row.make(SGD(lr=0.1), **kw)))
    for cls in (SGD, Adam, AdamW):
        for spec in cls.HYPERPARAMETERS:
            if spec.kind in ("real", "int"):
                out.append((cls.__name__, spec, cls))
    return out


REAL_SPECS = _real_specs()


NOT_NUMBERS = [10**400, np.bool_(True), np.bool_(False), 1 + 0j, "fast", None, np.array([True])]


@pytest.mark.parametrize(
    ("owner", "spec", "make"), REAL_SPECS, ids=[f"{o}-{s.name}" for o, s, _ in REAL_SPECS]
)
def test_every_number_hyperparameter_refuses_non_numbers_by_name(owner, spec, make):
    """The review's B1: 10**400 raised OverflowError, np.bool_ was taken as a number."""
    for bad in NOT_NUMBERS:
        if bad is None and spec.default is None:
            continue  # None switches an optional knob off
        with pytest.raises(ValueError, match=rf"{spec.name} must .*{re.escape(spec.range_text())}"):
            make(**{spec.name: bad})


INF_EXCLUDED = [
    (o, s, m)
    for o, s, m in REAL_SPECS
    if s.kind == "real" and s.high is None and not getattr(s, "allow_inf", False)
]


@pytest.mark.parametrize(
    ("owner", "spec", "make"), INF_EXCLUDED, ids=[f"{o}-{s.name}" for o, s, _ in INF_EXCLUDED]
)
def test_inf_is_refused_where_the_range_reads_inf_open(owner, spec, make):
    """The review's B2: 110 hyperparameters said [0, inf) and took inf (Adam(eps=inf) then
    never moved, BSAM(s_init=inf) neither, perturb_eps=inf turned SAM into SGD)."""
    assert spec.range_text().endswith("inf)")
    with pytest.raises(ValueError, match=rf"{spec.name} .*infinity is not in the range"):
        make(**{spec.name: math.inf})


def test_there_are_as_many_inf_open_hyperparameters_as_the_review_counted():
    assert len(INF_EXCLUDED) >= 100


def test_inf_is_a_value_where_the_range_says_so():
    assert SAM(SGD(lr=0.1), p=math.inf).ascent.p == math.inf
    assert sampy.variant("SAM").hyperparameters[1].range_text() == "[1, inf]"
    sampy.variant("BSAM").make(None, num_data=math.inf)


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (row.name, spec.name)
        for row in sampy.variants()
        for spec in row.hyperparameters
        if spec.kind == "choice" and spec.name not in row.preset
    ],
)
def test_a_choice_given_an_array_is_refused_by_name(owner, name):
    with pytest.raises(ValueError, match=rf"{name} must be one of"):
        sampy.variant(owner).make(SGD(lr=0.1), **{name: np.array(["a", "b"])})


def test_multistep_sam_has_a_documented_maximum_of_ascent_steps():
    from sampy.optim.msharpness import MAX_ASCENT_STEPS, MultiStepSAM

    MultiStepSAM(SGD(lr=0.1), ascent_steps=MAX_ASCENT_STEPS)
    with pytest.raises(ValueError, match=r"ascent_steps must lie in \[1, 100\]"):
        MultiStepSAM(SGD(lr=0.1), ascent_steps=10**30)


def test_the_torch_twins_messages_quote_the_registry_s_range():
    """The review's B2: torch said [0, inf] where the registry says [0, inf)."""
    torch = pytest.importorskip("torch")
    import sampy.torch as st

    w = torch.nn.Parameter(torch.zeros(2))
    rho = sampy.variant("SAM").hyperparameters[0]
    with pytest.raises(ValueError, match=re.escape(f"rho must lie in {rho.range_text()}")):
        st.SAM([w], lr=0.1, rho=-1.0)
    with pytest.raises(ValueError, match="rho must be a real number in"):
        st.SAM([w], lr=0.1, rho=10**400)
    with pytest.raises(ValueError, match="lr must be a real number in"):
        st.ScheduleFreeAdamW([w], lr=np.bool_(True))
