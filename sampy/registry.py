"""The registry of SAM variants: the single table the book and the explorer are generated from.

``sampy.variants()`` lists every variant with its reference class, paper, ascent rule,
descent rule, base, gradient evaluations per step and hyperparameters (defaults, ranges,
meaning — taken from the class's ``HYPERPARAMETERS``, so nothing is typed twice). The tests
check that every variant class in ``sampy.optim`` is listed here, that the measured number
of gradient evaluations matches each row's cost, and that the classes' own
``grad_evals_per_step``/``grad_evals(n)`` agree with it.

Each fact is written once. A row is built from keywords (``Variant(name=..., cls=..., ...)``);
a paper shared by several rows (SAM's by ASAM's preset, Andriushchenko and Flammarion's by
USAM, m-SAM and multi-step SAM) is one ``Paper``; and a row's cost is one ``Cost``
expression, from which both the text the book prints (``"1 + 1/k"``, ``"2⌈n/m⌉"``) and the
number the tests and benchmarks use are derived.

Why an expression and not parsed text: the book's notation (``2⌈n/m⌉``, ``2n``,
``"2 (sum_two), 1 otherwise"``) is not a grammar worth parsing, and a formula written once as
``2 * ceil(EXAMPLES / knob("m"))`` cannot drift from its text, while a lambda next to a string
can (they are two facts). The classes' ``grad_evals_per_step`` stay where the optimizers need
them; a test compares them with the rows' costs instead of a third copy being typed here.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sampy import optim
from sampy._deprecated import RENAMED, warn_renamed
from sampy.optim.hyper import Hyper
from sampy.problems import DEFAULT_N

# ---------------------------------------------------------------------------------------------
# Costs: gradient evaluations per step as a small expression of the hyperparameters

# Binding strength of an operator, for parentheses: a child that binds less than its parent
# is bracketed.
_ATOM, _PRODUCT, _SUM, _LOOSE = 3, 2, 1, 0


class Cost:
    """Gradient evaluations per step as a formula of the hyperparameters, written once.

    ``str(cost)`` is the formula in the book's notation and ``cost(hyper, n)`` its value for
    the hyperparameters ``hyper`` on a problem of ``n`` examples (``DEFAULT_N``, the examples
    of ``make_logistic_problem()``, by default). Build one from numbers, ``knob(name)``,
    ``EXAMPLES``, ``ceil``, ``noted`` and ``cases`` with ``+``, ``*`` and ``/``.
    """

    strength = _ATOM

    def __call__(self, hyper: Mapping[str, Any], n: int = DEFAULT_N) -> float:
        """The number of evaluations per step for ``hyper`` on ``n`` examples."""
        raise NotImplementedError

    def reads(self) -> frozenset[str]:
        """The hyperparameters the cost depends on."""
        raise NotImplementedError

    def _text(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self._text()

    def __repr__(self) -> str:
        return f"Cost({self._text()!r})"

    def __add__(self, other: Cost | float) -> Cost:
        return _Binary("+", self, as_cost(other))

    def __radd__(self, other: float) -> Cost:
        return _Binary("+", as_cost(other), self)

    def __mul__(self, other: Cost | float) -> Cost:
        return _Binary("*", self, as_cost(other))

    def __rmul__(self, other: float) -> Cost:
        return _Binary("*", as_cost(other), self)

    def __truediv__(self, other: Cost | float) -> Cost:
        return _Binary("/", self, as_cost(other))

    def __rtruediv__(self, other: float) -> Cost:
        return _Binary("/", as_cost(other), self)


class _Number(Cost):
    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, hyper: Mapping[str, Any], n: int = DEFAULT_N) -> float:
        return self.value

    def reads(self) -> frozenset[str]:
        return frozenset()

    def _text(self) -> str:
        return f"{self.value:g}"


class _Symbol(Cost):
    def __init__(
        self, text: str, value: Callable[[Mapping[str, Any], int], float], reads: frozenset[str]
    ) -> None:
        self.text, self.value, self._reads = text, value, reads

    def __call__(self, hyper: Mapping[str, Any], n: int = DEFAULT_N) -> float:
        return self.value(hyper, n)

    def reads(self) -> frozenset[str]:
        return self._reads

    def _text(self) -> str:
        return self.text


class _Binary(Cost):
    _STRENGTH: ClassVar[dict[str, int]] = {"+": _SUM, "*": _PRODUCT, "/": _PRODUCT}

    def __init__(self, op: str, left: Cost, right: Cost) -> None:
        self.op, self.left, self.right = op, left, right
        self.strength = self._STRENGTH[op]

    def __call__(self, hyper: Mapping[str, Any], n: int = DEFAULT_N) -> float:
        a, b = self.left(hyper, n), self.right(hyper, n)
        return a + b if self.op == "+" else a * b if self.op == "*" else a / b

    def reads(self) -> frozenset[str]:
        return self.left.reads() | self.right.reads()

    def _text(self) -> str:
        left = _bracketed(self.left, self.strength)
        # The right operand of / is bracketed at equal strength too: 1/(k·m), not 1/k·m.
        right = _bracketed(self.right, self.strength + (self.op == "/"))
        if self.op == "+":
            return f"{left} + {right}"
        if self.op == "/":
            return f"{left}/{right}"
        # A number times a symbol or a bracket is written by juxtaposition, as in the papers.
        if isinstance(self.left, _Number) and not isinstance(self.right, _Number):
            return f"{left}{right}"
        return f"{left}·{right}"


def _bracketed(child: Cost, strength: int) -> str:
    return f"({child})" if child.strength < strength else str(child)


class _Ceil(Cost):
    def __init__(self, inner: Cost) -> None:
        self.inner = inner

    def __call__(self, hyper: Mapping[str, Any], n: int = DEFAULT_N) -> float:
        return math.ceil(self.inner(hyper, n))

    def reads(self) -> frozenset[str]:
        return self.inner.reads()

    def _text(self) -> str:
        return f"⌈{self.inner}⌉"


class _Noted(Cost):
    strength = _LOOSE

    def __init__(self, inner: Cost, note: str) -> None:
        self.inner, self.note = inner, note

    def __call__(self, hyper: Mapping[str, Any], n: int = DEFAULT_N) -> float:
        return self.inner(hyper, n)

    def reads(self) -> frozenset[str]:
        return self.inner.reads()

    def _text(self) -> str:
        return f"{self.inner} ({self.note})"


class _Cases(Cost):
    strength = _LOOSE

    def __init__(self, name: str, choice: Any, then: Cost, otherwise: Cost) -> None:
        self.name, self.choice, self.then, self.otherwise = name, choice, then, otherwise

    def __call__(self, hyper: Mapping[str, Any], n: int = DEFAULT_N) -> float:
        branch = self.then if hyper[self.name] == self.choice else self.otherwise
        return branch(hyper, n)

    def reads(self) -> frozenset[str]:
        return frozenset({self.name}) | self.then.reads() | self.otherwise.reads()

    def _text(self) -> str:
        return f"{self.then} ({self.choice}), {self.otherwise} otherwise"


def as_cost(value: Cost | float) -> Cost:
    """``value`` as a ``Cost`` (a number becomes a constant cost)."""
    if isinstance(value, Cost):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"cost: expected a Cost or a number, got {value!r}")
    return _Number(value)


def knob(name: str, text: str | None = None) -> Cost:
    """The hyperparameter ``name`` in a cost, printed as ``text`` (default: its name)."""
    return _Symbol(name if text is None else text, lambda h, n: h[name], frozenset({name}))


def examples_at_most(name: str, text: str) -> Cost:
    """The hyperparameter ``name`` capped at the number of examples, printed as ``text``."""
    return _Symbol(text, lambda h, n: min(h[name], n), frozenset({name}))


# The number of examples of the problem a step sees (n).
EXAMPLES: Cost = _Symbol("n", lambda h, n: n, frozenset())


def ceil(inner: Cost) -> Cost:
    """⌈inner⌉."""
    return _Ceil(inner)


def noted(inner: Cost | float, note: str) -> Cost:
    """``inner`` printed with a note in brackets that does not change its value."""
    return _Noted(as_cost(inner), note)


def cases(name: str, choice: Any, then: Cost | float, otherwise: Cost | float) -> Cost:
    """``then`` when the hyperparameter ``name`` equals ``choice``, else ``otherwise``."""
    return _Cases(name, choice, as_cost(then), as_cost(otherwise))


# ---------------------------------------------------------------------------------------------
# Papers


@dataclass(frozen=True)
class Paper:
    """Where a variant comes from: the citation (authors, title, venue, year, or the notes a
    variant comes from when there is no paper) and its key in ``book/references.bib``."""

    citation: str
    bibkey: str | None = None

    def extended(self, words: str) -> Paper:
        """The same source with ``words`` appended to its citation (same bib entry)."""
        return Paper(self.citation + words, self.bibkey)


# ---------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One row of the table of variants (built from keywords only).

    Attributes:
        name: the variant's name (the class name, or e.g. ``ASAM`` for a preset of ``SAM``).
        cls: the NumPy reference class; ``cls(base, **preset, **hyperparameters)``.
        source: the paper (``Paper``); ``paper`` and ``bibkey`` read it.
        ascent: where the second gradient is taken.
        descent: which direction the base optimizer gets.
        base: how parameters move.
        cost: gradient evaluations per step (``Cost``, or a number for a constant);
            ``grad_evals`` is its text and ``evals_per_step(hyper)`` its value.
        family: the book chapter the variant belongs to.
        preset: hyperparameters fixed by this row (``adaptive=True`` for ASAM).
        takes_base: False for variants with a built-in base optimizer (MSAM, BSAM, the
            schedule-free ones); their ``make`` ignores the ``base`` argument.
        needs_examples: True for variants that need a sum-of-examples problem (per-example or
            per-group gradients, ``sampy.problems``) rather than a plain test function.

    ``twin()`` is the torch twin's class (``sampy.torch.<cls name>``), or None where none is
    written yet.
    """

    name: str
    cls: type
    source: Paper
    ascent: str
    descent: str
    base: str
    cost: Cost
    family: str
    preset: dict[str, Any] = field(default_factory=dict)
    takes_base: bool = True
    needs_examples: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "cost", as_cost(self.cost))

    @property
    def paper(self) -> str:
        """Authors, title, venue, year (or the notes the variant comes from, if no paper)."""
        return self.source.citation

    @property
    def bibkey(self) -> str | None:
        """The key in ``book/references.bib`` (None for variants without a paper)."""
        return self.source.bibkey

    @property
    def grad_evals(self) -> str:
        """Gradient evaluations per step, as the book prints it (``"2"``, ``"1 + 1/k"``)."""
        return str(self.cost)

    def evals_per_step(self, hyper: Mapping[str, Any]) -> float:
        """Gradient evaluations per step for the hyperparameters ``hyper`` (on ``DEFAULT_N``
        examples where the cost depends on them)."""
        return float(self.cost(hyper))

    @property
    def hyperparameters(self) -> tuple[Hyper, ...]:
        """The knobs a user sets (the class's specs minus the preset ones, defaults updated)."""
        out = []
        for spec in self.cls.HYPERPARAMETERS:
            if spec.name in self.preset:
                continue
            out.append(spec)
        return tuple(out)

    def defaults(self) -> dict[str, Any]:
        """Default value of every free hyperparameter."""
        return {spec.name: spec.default for spec in self.hyperparameters}

    def twin(self) -> type | None:
        """The torch twin's class (imports torch), or None if the variant has none yet.

        The class alone lacks the row's preset (ASAM's twin is ``sampy.torch.SAM``): build the
        optimizer with ``make_twin``.
        """
        import sampy.torch

        return getattr(sampy.torch, self.cls.__name__, None)

    def make_twin(self, params: Any, base_optimizer: Any = None, **kwargs: Any) -> Any:
        """The torch twin: ``twin(params, base_optimizer, **preset, **kwargs)``.

        ``base_optimizer`` is a ``torch.optim.Optimizer`` class (default ``torch.optim.SGD``)
        and must be None for the variants with a built-in base; ``kwargs`` holds the
        hyperparameters and the base optimizer's own arguments (``lr``, ``momentum``, ...).
        """
        cls = self.twin()
        if cls is None:
            raise ValueError(f"{self.name} has no torch twin")
        if not self.takes_base:
            if base_optimizer is not None:
                raise ValueError(
                    f"base_optimizer: {self.name} has a built-in base, got {base_optimizer!r}"
                )
            return cls(params, **self.preset, **kwargs)
        if base_optimizer is None:
            import torch

            base_optimizer = torch.optim.SGD
        return cls(params, base_optimizer, **self.preset, **kwargs)

    def make(self, base: Any, **hyperparameters: Any) -> Any:
        """The optimizer: ``cls(base, **preset, **hyperparameters)`` (no base if built in)."""
        if not self.takes_base:
            return self.cls(**self.preset, **hyperparameters)
        return self.cls(base, **self.preset, **hyperparameters)


# Papers (and notes) that more than one row cites.
_FORET_2021 = Paper(
    "Foret, Kleiner, Mobahi, Neyshabur, Sharpness-Aware Minimization for Efficiently "
    "Improving Generalization, ICLR 2021",
    "foret2021sam",
)
_ANDRIUSHCHENKO_2022 = Paper(
    "Andriushchenko, Flammarion, Towards Understanding Sharpness-Aware Minimization, ICML 2022",
    "andriushchenko2022understanding",
)
_BAEK_2024 = Paper(
    "Baek, Kolter, Raghunathan, Why is SAM Robust to Label Noise?, ICLR 2024", "baek2024label"
)
_MI_2022 = Paper(
    "Mi, Shen, Ren, Zhou, Sun, Ji, Tao, Make Sharpness-Aware Minimization Stronger: A "
    "Sparsified Perturbation Approach, NeurIPS 2022",
    "mi2022ssam",
)
_BECKER_2024 = Paper(
    "Becker, Altrock, Risse, Momentum-SAM: Sharpness Aware Minimization without "
    "Computational Overhead, arXiv:2401.12033, 2024",
    "becker2024msam",
)
_ANATOMY_NOTES = Paper(
    "Research notes on the anatomy of SAM's gradient (lhchau/sam-hessian), no paper"
)

# Phrases that more than one row uses.
_BASE = "any base (SGD, Adam, …) at w"
_SAM_ASCENT = "ε = ρ g/‖g‖"
_PER_EXAMPLE_ASCENT = "ε_i = ρ ∇ℓ_i/‖∇ℓ_i‖ per example i (1-SAM)"
_PERTURBED_GRADIENT = "d = g̃"


def _anatomy(
    *,
    name: str,
    descent: str,
    ascent: str = _SAM_ASCENT,
    source: Paper = _ANATOMY_NOTES,
    cost: Cost | float = 2,
) -> Variant:
    """A row of the anatomy chapter: by default SAM's ball and two evaluations, any base."""
    return Variant(
        name=name,
        cls=getattr(optim, name),
        source=source,
        ascent=ascent,
        descent=descent,
        base=_BASE,
        cost=cost,
        family="anatomy",
    )


_VARIANTS: tuple[Variant, ...] = (
    Variant(
        name="SAM",
        cls=optim.SAM,
        source=_FORET_2021,
        ascent="ε = ρ sign(g)|g|^{q−1}/‖g‖_q^{q−1} (p = 2: ρ g/‖g‖)",
        descent=_PERTURBED_GRADIENT,
        base=_BASE,
        cost=2,
        family="SAM",
    ),
    Variant(
        name="ASAM",
        cls=optim.SAM,
        source=Paper(
            "Kwon, Kim, Park, Choi, ASAM: Adaptive Sharpness-Aware Minimization for "
            "Scale-Invariant Learning of Deep Neural Networks, ICML 2021",
            "kwon2021asam",
        ),
        ascent="ε = ρ T²g/‖Tg‖, T = |w| + ξ",
        descent=_PERTURBED_GRADIENT,
        base=_BASE,
        cost=2,
        family="adaptive",
        preset={"adaptive": True},
    ),
    Variant(
        name="USAM",
        cls=optim.USAM,
        source=_ANDRIUSHCHENKO_2022,
        ascent="ε = ρ g (not normalised)",
        descent=_PERTURBED_GRADIENT,
        base=_BASE,
        cost=2,
        family="SAM",
    ),
    Variant(
        name="FisherSAM",
        cls=optim.FisherSAM,
        source=Paper(
            "Kim, Li, Hu, Hospedales, Fisher SAM: Information Geometry and Sharpness Aware "
            "Minimisation, ICML 2022",
            "kim2022fisher",
        ),
        ascent="ε = ρ F⁻¹g/√(gᵀF⁻¹g), F = diag(1 + κ g²)",
        descent=_PERTURBED_GRADIENT,
        base=_BASE,
        cost=2,
        family="adaptive",
    ),
    Variant(
        name="GSAM",
        cls=optim.GSAM,
        source=Paper(
            "Zhuang, Gong, Yuan, Cui, Adam, Dvornek, Tatikonda, Duncan, Liu, Surrogate Gap "
            "Guided Sharpness-Aware Minimization, ICLR 2022",
            "zhuang2022gsam",
        ),
        ascent=_SAM_ASCENT + " (ρ_t follows the lr)",
        descent="d = g̃ − α g_⊥, g_⊥ = part of g orthogonal to g̃",
        base=_BASE,
        cost=2,
        family="direction",
    ),
    Variant(
        name="WSAM",
        cls=optim.WSAM,
        source=Paper(
            "Yue, Jiang, Ye, Gao, Liu, Zhang, Sharpness-Aware Minimization Revisited: Weighted "
            "Sharpness as a Regularization Term, KDD 2023",
            "yue2023wsam",
        ),
        ascent=_SAM_ASCENT,
        descent="d = g + (γ/(1 − γ))(g̃ − g) (or decoupled)",
        base=_BASE,
        cost=2,
        family="direction",
    ),
    Variant(
        name="FriendlySAM",
        cls=optim.FriendlySAM,
        source=Paper(
            "Li, Zhou, He, Cheng, Huang, Friendly Sharpness-Aware Minimization, CVPR 2024",
            "li2024friendly",
        ),
        ascent="ε = ρ d/‖d‖, d = g − σ·EMA(g)",
        descent=_PERTURBED_GRADIENT,
        base=_BASE,
        cost=2,
        family="direction",
    ),
    Variant(
        name="VaSSO",
        cls=optim.VaSSO,
        source=Paper(
            "Li, Giannakis, Enhancing Sharpness-Aware Optimization Through Variance "
            "Suppression, NeurIPS 2023",
            "li2023vasso",
        ),
        ascent="ε = ρ d/‖d‖, d = EMA_θ(g)",
        descent=_PERTURBED_GRADIENT,
        base=_BASE,
        cost=2,
        family="direction",
    ),
    Variant(
        name="RandomSAM",
        cls=optim.RandomSAM,
        source=Paper(
            "Li, Yan, Lei, Wu, Fang, Yang, Huang, Efficient Generalization Improvement Guided "
            "by Random Weight Perturbation, arXiv:2211.11489, 2022",
            "li2022rwp",
        ),
        ascent="ε = ρ z, z ~ N(0, I) (or a random direction)",
        descent="d = λ g + (1 − λ) g̃",
        base=_BASE,
        cost=2,
        family="direction",
    ),
    Variant(
        name="LookSAM",
        cls=optim.LookSAM,
        source=Paper(
            "Liu, Mai, Chen, Hsieh, You, Towards Efficient and Scalable Sharpness-Aware "
            "Minimization, CVPR 2022",
            "liu2022looksam",
        ),
        ascent=_SAM_ASCENT + " every k-th step",
        descent="SAM steps: d = g̃; others: d = g + ψ(‖g‖/‖g_v‖) g_v with the stored g_v ⟂ g",
        base=_BASE,
        cost=1 + 1 / knob("k"),
        family="cheaper",
    ),
    Variant(
        name="MSharpnessSAM",
        cls=optim.MSharpnessSAM,
        source=_ANDRIUSHCHENKO_2022,
        ascent="ε_j = ρ g_j/‖g_j‖ per micro-batch B_j of m examples",
        descent="d = Σ_j (|B_j|/n) g̃_j",
        base=_BASE,
        cost=2 * ceil(EXAMPLES / knob("m")),
        family="SAM",
        needs_examples=True,
    ),
    Variant(
        name="MultiStepSAM",
        cls=optim.MultiStepSAM,
        source=_ANDRIUSHCHENKO_2022.extended(" (multi-step ascent; optax.contrib.sam sync_period)"),
        ascent="k steps w_{j+1} = w_j + ρ g(w_j)/‖g(w_j)‖ from w_0 = w",
        descent="d = ∇L(w_k)",
        base=_BASE,
        cost=knob("ascent_steps", "k") + 1,
        family="SAM",
    ),
    Variant(
        name="LogitSAM",
        cls=optim.LogitSAM,
        source=_BAEK_2024,
        ascent=_PER_EXAMPLE_ASCENT,
        descent="d = mean_i r_i(w + ε_i) ∇f_i(w): only the logit scale at w + ε_i",
        base=_BASE,
        cost=EXAMPLES + 1,
        family="label-noise",
        needs_examples=True,
    ),
    Variant(
        name="JSAM",
        cls=optim.JSAM,
        source=_BAEK_2024,
        ascent=_PER_EXAMPLE_ASCENT,
        descent="d = mean_i r_i(w) ∇f_i(w + ε_i): only the Jacobian at w + ε_i",
        base=_BASE,
        cost=2 * EXAMPLES,
        family="label-noise",
        needs_examples=True,
    ),
    Variant(
        name="ESAM",
        cls=optim.ESAM,
        source=Paper(
            "Du, Yan, Feng, Zhou, Zhen, Goh, Tan, Efficient Sharpness-aware Minimization for "
            "Improved Training of Neural Networks, ICLR 2022",
            "du2022esam",
        ),
        ascent="ε = (ρ/χ) k ⊙ g/‖g‖, k_i ~ Bernoulli(χ) (SWP)",
        descent="d = ∇ mean loss of the ⌊φn⌋ examples whose loss rises most (SDS)",
        base=_BASE,
        cost=noted(2, "+ 2 forward passes"),
        family="cheaper",
        needs_examples=True,
    ),
    Variant(
        name="SSAMF",
        cls=optim.SSAMF,
        source=_MI_2022,
        ascent="ε = ρ m ⊙ g/‖g‖, m = top-(1−s) of the Fisher Σ_i (∇ℓ_i)²",
        descent=_PERTURBED_GRADIENT,
        base=_BASE,
        cost=2 + examples_at_most("num_samples", "N_s") / knob("update_freq"),
        family="cheaper",
        needs_examples=True,
    ),
    Variant(
        name="SSAMD",
        cls=optim.SSAMD,
        source=_MI_2022,
        ascent="ε = ρ m ⊙ g/‖g‖, m by drop-and-grow (dynamic sparse)",
        descent=_PERTURBED_GRADIENT,
        base=_BASE,
        cost=2,
        family="cheaper",
    ),
    Variant(
        name="ImbSAM",
        cls=optim.ImbSAM,
        source=Paper(
            "Zhou, Qu, Xu, Shen, ImbSAM: A Closer Look at Sharpness-Aware Minimization in "
            "Class-Imbalanced Recognition, ICCV 2023",
            "zhou2023imbsam",
        ),
        ascent="ε = ρ g_t/‖g_t‖, g_t = ∇L_tail (tail examples, weight c)",
        descent="d = ∇L_tail(w + ε) + ∇L_head(w)",
        base=_BASE,
        cost=3,
        family="direction",
        needs_examples=True,
    ),
    Variant(
        name="BSAM",
        cls=optim.BSAM,
        source=Paper(
            "Möllenhoff, Khan, SAM as an Optimal Relaxation of Bayes, ICLR 2023",
            "mollenhoff2023bsam",
        ),
        ascent="θ ~ N(w, 1/(N s)); ε = ρ ∇L(θ)/s (not normalised)",
        descent="m ← EMA(g̃ + δ w)",
        base="its own (Adam-like): w ← w − η m/s, s ← EMA(√s|g| + ζ + δ)",
        cost=noted(2 * knob("batchsplit", "M"), "M = batchsplit"),
        family="adaptive",
        takes_base=False,
        needs_examples=True,
    ),
    Variant(
        name="MSAM",
        cls=optim.MSAM,
        source=_BECKER_2024,
        ascent="w̃ = w − ρ v/‖v‖ (negative momentum; parameters stored at w̃, no extra gradient)",
        descent="d = ∇L(w̃) + λ w̃ (the only gradient, at the perturbed point)",
        base="SGD with momentum (built in)",
        cost=1,
        family="cheaper",
        takes_base=False,
    ),
    Variant(
        name="AdamWMSAM",
        cls=optim.AdamWMSAM,
        source=_BECKER_2024,
        ascent="w̃ = w − ρ m/‖m‖ (Adam's first moment; stored at w̃)",
        descent="d = ∇L(w̃) (the only gradient)",
        base="AdamW, decay after the step (built in)",
        cost=1,
        family="cheaper",
        takes_base=False,
    ),
    Variant(
        name="ScheduleFreeAdamW",
        cls=optim.ScheduleFreeAdamW,
        source=Paper(
            "Defazio, Yang, Mehta, Mishchenko, Khaled, Cutkosky, The Road Less Scheduled, "
            "NeurIPS 2024",
            "defazio2024road",
        ),
        ascent="none (gradient at y = β1 x + (1 − β1) z)",
        descent="d = ∇L(y)",
        base="schedule-free AdamW: z step, x average, y interpolation",
        cost=1,
        family="schedule-free",
        takes_base=False,
    ),
    Variant(
        name="NotesAdamWMSAMScheduleFree",
        cls=optim.NotesAdamWMSAMScheduleFree,
        source=Paper(
            "The Momentum-SAM-ScheduleFree notes (opooladz/Momentum-SAM-ScheduleFree README), "
            "no paper"
        ),
        ascent="θ' = θ + ρ x/‖x‖ (along +momentum, never removed)",
        descent="g = ∇L(θ) + ∇L(θ') (the notes' loop; or one of the two)",
        base="AdamW step from θ', then θ ← (1 − c)θ + cθ'' (built in)",
        cost=cases("grad_mode", "sum_two", 2, otherwise=1),
        family="schedule-free",
        takes_base=False,
    ),
    Variant(
        name="AdamWMSAMScheduleFree",
        cls=optim.AdamWMSAMScheduleFree,
        source=Paper(
            "sampy's correction of the Momentum-SAM-ScheduleFree notes: MSAM's ascent (Becker "
            "et al. 2024) on Schedule-Free AdamW (Defazio et al., NeurIPS 2024), no paper"
        ),
        ascent="ỹ = y − ρ m/‖m‖ (gradient EMA; removed before each update)",
        descent="d = ∇L(ỹ) (the only gradient)",
        base="Schedule-Free AdamW at y (built in)",
        cost=1,
        family="schedule-free",
        takes_base=False,
    ),
    _anatomy(name="SAME", descent="d = g̃ with checkpoint k scaled by c"),
    _anatomy(name="CustomSAME", descent="d = g̃ ⊙ c[checkpoint], one factor per checkpoint"),
    _anatomy(name="SAMCkpt", descent="d_i = g̃_i in the chosen checkpoints, g_i elsewhere"),
    _anatomy(name="SAMDirection", descent="d = sign(g̃) ⊙ |g|"),
    _anatomy(name="SAMMagnitude", descent="d = |g̃| ⊙ sign(g)"),
    _anatomy(name="SAMAgree", descent="d = g̃ ⊙ 1[g̃ ⊙ g > 0]"),
    _anatomy(name="SGDAgree", descent="d = g ⊙ 1[g̃ ⊙ g > 0]"),
    _anatomy(
        name="ClampSAM",
        descent=_PERTURBED_GRADIENT,
        ascent="ε = clip(ρ g/‖g‖, −τ, τ)",
        source=_ANATOMY_NOTES.extended("; sampy's reading of their CLAMPSAM code"),
    ),
    _anatomy(name="ClipSAM", descent="d = sign(g̃) ⊙ min(|g̃|, c|g|)"),
    _anatomy(
        name="SAMAnatomy",
        descent="d = ∇L(w + ε2)",
        ascent="ε1 = ρ g/‖g‖, then ε2 = ρ m/‖m‖ with m = g where g̃/g > 0",
        cost=3,
    ),
)


def variants() -> list[Variant]:
    """Every registered SAM variant, in the book's order."""
    return list(_VARIANTS)


def variant(name: str) -> Variant:
    """The registered variant called ``name`` (an old, renamed name warns and gives the new row)."""
    if name in RENAMED:
        warn_renamed(f"the variant name {name!r}", repr(RENAMED[name]))
        name = RENAMED[name]
    for row in _VARIANTS:
        if row.name == name:
            return row
    raise ValueError(f"unknown variant name {name!r}; choose one of {[v.name for v in _VARIANTS]}")


def _cell(text: str) -> str:
    return f"<td>{html.escape(str(text))}</td>"


def _name_cell(name: str, href: str | None) -> str:
    if href is None:
        return _cell(name)
    return f'<td><a href="{html.escape(href)}">{html.escape(name)}</a></td>'


def table_html(
    rows: Sequence[Variant] | None = None, links: Mapping[str, str] | None = None
) -> str:
    """The table of variants as HTML: name, ascent, descent, base, evaluations, paper.

    ``links`` maps a variant's name to a URL (e.g. its algorithm box, from
    ``sampy.algorithm_boxes.box_links``): the name cell of that row becomes a link.
    """
    rows = variants() if rows is None else rows
    links = {} if links is None else links
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "variant",
            "ascent: where is ∇ taken?",
            "descent: what the base gets",
            "∇ per step",
            "paper",
        )
    )
    body = "".join(
        "<tr>"
        + _name_cell(v.name, links.get(v.name))
        + "".join(_cell(c) for c in (v.ascent, v.descent, v.grad_evals, v.paper))
        + "</tr>"
        for v in rows
    )
    return f'<table class="table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def hyperparameters_html(rows: Sequence[Variant] | None = None) -> str:
    """Every variant's hyperparameters as HTML: default, valid range and meaning."""
    rows = variants() if rows is None else rows
    head = "".join(
        f"<th>{h}</th>" for h in ("variant", "hyperparameter", "default", "range", "meaning")
    )
    body = []
    for v in rows:
        for spec in v.hyperparameters:
            cells = (v.name, spec.name, repr(spec.default), spec.range_text(), spec.meaning)
            body.append("<tr>" + "".join(_cell(c) for c in cells) + "</tr>")
    return (
        f'<table class="table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )
