"""The registry of SAM variants: the single table the book and the explorer are generated from.

``sampy.variants()`` lists every variant with its reference class, paper, ascent rule,
descent rule, base, gradient evaluations per step and hyperparameters (defaults, ranges,
meaning — taken from the class's ``HYPERPARAMETERS``, so nothing is typed twice). The tests
check that every variant class in ``sampy.optim`` is listed here and that the measured number
of gradient evaluations matches ``evals_per_step``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sampy import optim
from sampy._deprecated import RENAMED, warn_renamed
from sampy.optim.hyper import Hyper
from sampy.problems import DEFAULT_N


@dataclass(frozen=True)
class Variant:
    """One row of the table of variants.

    Attributes:
        name: the variant's name (the class name, or e.g. ``ASAM`` for a preset of ``SAM``).
        cls: the NumPy reference class; ``cls(base, **preset, **hyperparameters)``.
        paper: authors, title, venue, year (or the notes a variant comes from, if no paper).
        bibkey: the key in ``book/references.bib`` (None for variants without a paper).
        ascent: where the second gradient is taken.
        descent: which direction the base optimizer gets.
        base: how parameters move.
        grad_evals: gradient evaluations per step, as text (``"2"``, ``"1 + 1/k"``).
        evals_per_step: the same as a function of the hyperparameters (for the tests).
        preset: hyperparameters fixed by this row (``adaptive=True`` for ASAM).
        family: the book chapter the variant belongs to.
        takes_base: False for variants with a built-in base optimizer (MSAM, BSAM, the
            schedule-free ones); their ``make`` ignores the ``base`` argument.
        needs_examples: True for variants that need a sum-of-examples problem (per-example or
            per-group gradients, ``sampy.problems``) rather than a plain test function.

    ``twin()`` is the torch twin's class (``sampy.torch.<cls name>``), or None where none is
    written yet.
    """

    name: str
    cls: type
    paper: str
    bibkey: str | None
    ascent: str
    descent: str
    base: str
    grad_evals: str
    evals_per_step: Callable[[dict[str, Any]], float]
    family: str
    preset: dict[str, Any] = field(default_factory=dict)
    takes_base: bool = True
    needs_examples: bool = False

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


def _one(_: dict[str, Any]) -> float:
    return 1.0


def _two(_: dict[str, Any]) -> float:
    return 2.0


_BASE = "any base (SGD, Adam, …) at w"
_SAM_ASCENT = "ε = ρ g/‖g‖"
_ANATOMY_NOTES = "Research notes on the anatomy of SAM's gradient (lhchau/sam-hessian), no paper"

_VARIANTS: tuple[Variant, ...] = (
    Variant(
        "SAM",
        optim.SAM,
        "Foret, Kleiner, Mobahi, Neyshabur, Sharpness-Aware Minimization for Efficiently "
        "Improving Generalization, ICLR 2021",
        "foret2021sam",
        "ε = ρ sign(g)|g|^{q−1}/‖g‖_q^{q−1} (p = 2: ρ g/‖g‖)",
        "d = g̃",
        _BASE,
        "2",
        _two,
        "SAM",
    ),
    Variant(
        "ASAM",
        optim.SAM,
        "Kwon, Kim, Park, Choi, ASAM: Adaptive Sharpness-Aware Minimization for "
        "Scale-Invariant Learning of Deep Neural Networks, ICML 2021",
        "kwon2021asam",
        "ε = ρ T²g/‖Tg‖, T = |w| + ξ",
        "d = g̃",
        _BASE,
        "2",
        _two,
        "adaptive",
        preset={"adaptive": True},
    ),
    Variant(
        "USAM",
        optim.USAM,
        "Andriushchenko, Flammarion, Towards Understanding Sharpness-Aware Minimization, ICML 2022",
        "andriushchenko2022understanding",
        "ε = ρ g (not normalised)",
        "d = g̃",
        _BASE,
        "2",
        _two,
        "SAM",
    ),
    Variant(
        "FisherSAM",
        optim.FisherSAM,
        "Kim, Li, Hu, Hospedales, Fisher SAM: Information Geometry and Sharpness Aware "
        "Minimisation, ICML 2022",
        "kim2022fisher",
        "ε = ρ F⁻¹g/√(gᵀF⁻¹g), F = diag(1 + κ g²)",
        "d = g̃",
        _BASE,
        "2",
        _two,
        "adaptive",
    ),
    Variant(
        "GSAM",
        optim.GSAM,
        "Zhuang, Gong, Yuan, Cui, Adam, Dvornek, Tatikonda, Duncan, Liu, Surrogate Gap "
        "Guided Sharpness-Aware Minimization, ICLR 2022",
        "zhuang2022gsam",
        _SAM_ASCENT + " (ρ_t follows the lr)",
        "d = g̃ − α g_⊥, g_⊥ = part of g orthogonal to g̃",
        _BASE,
        "2",
        _two,
        "direction",
    ),
    Variant(
        "WSAM",
        optim.WSAM,
        "Yue, Jiang, Ye, Gao, Liu, Zhang, Sharpness-Aware Minimization Revisited: Weighted "
        "Sharpness as a Regularization Term, KDD 2023",
        "yue2023wsam",
        _SAM_ASCENT,
        "d = g + (γ/(1 − γ))(g̃ − g) (or decoupled)",
        _BASE,
        "2",
        _two,
        "direction",
    ),
    Variant(
        "FriendlySAM",
        optim.FriendlySAM,
        "Li, Zhou, He, Cheng, Huang, Friendly Sharpness-Aware Minimization, CVPR 2024",
        "li2024friendly",
        "ε = ρ d/‖d‖, d = g − σ·EMA(g)",
        "d = g̃",
        _BASE,
        "2",
        _two,
        "direction",
    ),
    Variant(
        "VaSSO",
        optim.VaSSO,
        "Li, Giannakis, Enhancing Sharpness-Aware Optimization Through Variance Suppression, "
        "NeurIPS 2023",
        "li2023vasso",
        "ε = ρ d/‖d‖, d = EMA_θ(g)",
        "d = g̃",
        _BASE,
        "2",
        _two,
        "direction",
    ),
    Variant(
        "RandomSAM",
        optim.RandomSAM,
        "Li, Yan, Lei, Wu, Fang, Yang, Huang, Efficient Generalization Improvement Guided by "
        "Random Weight Perturbation, arXiv:2211.11489, 2022",
        "li2022rwp",
        "ε = ρ z, z ~ N(0, I) (or a random direction)",
        "d = λ g + (1 − λ) g̃",
        _BASE,
        "2",
        _two,
        "direction",
    ),
    Variant(
        "LookSAM",
        optim.LookSAM,
        "Liu, Mai, Chen, Hsieh, You, Towards Efficient and Scalable Sharpness-Aware "
        "Minimization, CVPR 2022",
        "liu2022looksam",
        _SAM_ASCENT + " every k-th step",
        "SAM steps: d = g̃; others: d = g + ψ(‖g‖/‖g_v‖) g_v with the stored g_v ⟂ g",
        _BASE,
        "1 + 1/k",
        lambda h: 1.0 + 1.0 / h["k"],
        "cheaper",
    ),
    Variant(
        "MSharpnessSAM",
        optim.MSharpnessSAM,
        "Andriushchenko, Flammarion, Towards Understanding Sharpness-Aware Minimization, ICML 2022",
        "andriushchenko2022understanding",
        "ε_j = ρ g_j/‖g_j‖ per micro-batch B_j of m examples",
        "d = Σ_j (|B_j|/n) g̃_j",
        _BASE,
        "2⌈n/m⌉",
        lambda h: 2.0 * math.ceil(DEFAULT_N / min(h["m"], DEFAULT_N)),
        "SAM",
        needs_examples=True,
    ),
    Variant(
        "MultiStepSAM",
        optim.MultiStepSAM,
        "Andriushchenko, Flammarion, Towards Understanding Sharpness-Aware Minimization, "
        "ICML 2022 (multi-step ascent; optax.contrib.sam sync_period)",
        "andriushchenko2022understanding",
        "k steps w_{j+1} = w_j + ρ g(w_j)/‖g(w_j)‖ from w_0 = w",
        "d = ∇L(w_k)",
        _BASE,
        "k + 1",
        lambda h: h["ascent_steps"] + 1.0,
        "SAM",
    ),
    Variant(
        "LogitSAM",
        optim.LogitSAM,
        "Baek, Kolter, Raghunathan, Why is SAM Robust to Label Noise?, ICLR 2024",
        "baek2024label",
        "ε_i = ρ ∇ℓ_i/‖∇ℓ_i‖ per example i (1-SAM)",
        "d = mean_i r_i(w + ε_i) ∇f_i(w): only the logit scale at w + ε_i",
        _BASE,
        "n + 1",
        lambda h: DEFAULT_N + 1.0,
        "label-noise",
        needs_examples=True,
    ),
    Variant(
        "JSAM",
        optim.JSAM,
        "Baek, Kolter, Raghunathan, Why is SAM Robust to Label Noise?, ICLR 2024",
        "baek2024label",
        "ε_i = ρ ∇ℓ_i/‖∇ℓ_i‖ per example i (1-SAM)",
        "d = mean_i r_i(w) ∇f_i(w + ε_i): only the Jacobian at w + ε_i",
        _BASE,
        "2n",
        lambda h: 2.0 * DEFAULT_N,
        "label-noise",
        needs_examples=True,
    ),
    Variant(
        "ESAM",
        optim.ESAM,
        "Du, Yan, Feng, Zhou, Zhen, Goh, Tan, Efficient Sharpness-aware Minimization for "
        "Improved Training of Neural Networks, ICLR 2022",
        "du2022esam",
        "ε = (ρ/χ) k ⊙ g/‖g‖, k_i ~ Bernoulli(χ) (SWP)",
        "d = ∇ mean loss of the ⌊φn⌋ examples whose loss rises most (SDS)",
        _BASE,
        "2 (+ 2 forward passes)",
        _two,
        "cheaper",
        needs_examples=True,
    ),
    Variant(
        "SSAMF",
        optim.SSAMF,
        "Mi, Shen, Ren, Zhou, Sun, Ji, Tao, Make Sharpness-Aware Minimization Stronger: A "
        "Sparsified Perturbation Approach, NeurIPS 2022",
        "mi2022ssam",
        "ε = ρ m ⊙ g/‖g‖, m = top-(1−s) of the Fisher Σ_i (∇ℓ_i)²",
        "d = g̃",
        _BASE,
        "2 + N_s/update_freq",
        lambda h: 2.0 + min(h["num_samples"], DEFAULT_N) / h["update_freq"],
        "cheaper",
        needs_examples=True,
    ),
    Variant(
        "SSAMD",
        optim.SSAMD,
        "Mi, Shen, Ren, Zhou, Sun, Ji, Tao, Make Sharpness-Aware Minimization Stronger: A "
        "Sparsified Perturbation Approach, NeurIPS 2022",
        "mi2022ssam",
        "ε = ρ m ⊙ g/‖g‖, m by drop-and-grow (dynamic sparse)",
        "d = g̃",
        _BASE,
        "2",
        _two,
        "cheaper",
    ),
    Variant(
        "ImbSAM",
        optim.ImbSAM,
        "Zhou, Qu, Xu, Shen, ImbSAM: A Closer Look at Sharpness-Aware Minimization in "
        "Class-Imbalanced Recognition, ICCV 2023",
        "zhou2023imbsam",
        "ε = ρ g_t/‖g_t‖, g_t = ∇L_tail (tail examples, weight c)",
        "d = ∇L_tail(w + ε) + ∇L_head(w)",
        _BASE,
        "3",
        lambda h: 3.0,
        "direction",
        needs_examples=True,
    ),
    Variant(
        "BSAM",
        optim.BSAM,
        "Möllenhoff, Khan, SAM as an Optimal Relaxation of Bayes, ICLR 2023",
        "mollenhoff2023bsam",
        "θ ~ N(w, 1/(N s)); ε = ρ ∇L(θ)/s (not normalised)",
        "m ← EMA(g̃ + δ w)",
        "its own (Adam-like): w ← w − η m/s, s ← EMA(√s|g| + ζ + δ)",
        "2M (M = batchsplit)",
        lambda h: 2.0 * h["batchsplit"],
        "adaptive",
        takes_base=False,
        needs_examples=True,
    ),
    Variant(
        "MSAM",
        optim.MSAM,
        "Becker, Altrock, Risse, Momentum-SAM: Sharpness Aware Minimization without "
        "Computational Overhead, arXiv:2401.12033, 2024",
        "becker2024msam",
        "w̃ = w − ρ v/‖v‖ (negative momentum; parameters stored at w̃, no extra gradient)",
        "d = ∇L(w̃) + λ w̃ (the only gradient, at the perturbed point)",
        "SGD with momentum (built in)",
        "1",
        _one,
        "cheaper",
        takes_base=False,
    ),
    Variant(
        "AdamWMSAM",
        optim.AdamWMSAM,
        "Becker, Altrock, Risse, Momentum-SAM: Sharpness Aware Minimization without "
        "Computational Overhead, arXiv:2401.12033, 2024",
        "becker2024msam",
        "w̃ = w − ρ m/‖m‖ (Adam's first moment; stored at w̃)",
        "d = ∇L(w̃) (the only gradient)",
        "AdamW, decay after the step (built in)",
        "1",
        _one,
        "cheaper",
        takes_base=False,
    ),
    Variant(
        "ScheduleFreeAdamW",
        optim.ScheduleFreeAdamW,
        "Defazio, Yang, Mehta, Mishchenko, Khaled, Cutkosky, The Road Less Scheduled, NeurIPS 2024",
        "defazio2024road",
        "none (gradient at y = β1 x + (1 − β1) z)",
        "d = ∇L(y)",
        "schedule-free AdamW: z step, x average, y interpolation",
        "1",
        _one,
        "schedule-free",
        takes_base=False,
    ),
    Variant(
        "NotesAdamWMSAMScheduleFree",
        optim.NotesAdamWMSAMScheduleFree,
        "The Momentum-SAM-ScheduleFree notes (opooladz/Momentum-SAM-ScheduleFree README), no paper",
        None,
        "θ' = θ + ρ x/‖x‖ (along +momentum, never removed)",
        "g = ∇L(θ) + ∇L(θ') (the notes' loop; or one of the two)",
        "AdamW step from θ', then θ ← (1 − c)θ + cθ'' (built in)",
        "2 (sum_two), 1 otherwise",
        lambda h: 2.0 if h["grad_mode"] == "sum_two" else 1.0,
        "schedule-free",
        takes_base=False,
    ),
    Variant(
        "AdamWMSAMScheduleFree",
        optim.AdamWMSAMScheduleFree,
        "sampy's correction of the Momentum-SAM-ScheduleFree notes: MSAM's ascent (Becker et "
        "al. 2024) on Schedule-Free AdamW (Defazio et al., NeurIPS 2024), no paper",
        None,
        "ỹ = y − ρ m/‖m‖ (gradient EMA; removed before each update)",
        "d = ∇L(ỹ) (the only gradient)",
        "Schedule-Free AdamW at y (built in)",
        "1",
        _one,
        "schedule-free",
        takes_base=False,
    ),
    Variant(
        "SAME",
        optim.SAME,
        _ANATOMY_NOTES,
        None,
        _SAM_ASCENT,
        "d = g̃ with checkpoint k scaled by c",
        _BASE,
        "2",
        _two,
        "anatomy",
    ),
    Variant(
        "CustomSAME",
        optim.CustomSAME,
        _ANATOMY_NOTES,
        None,
        _SAM_ASCENT,
        "d = g̃ ⊙ c[checkpoint], one factor per checkpoint",
        _BASE,
        "2",
        _two,
        "anatomy",
    ),
    Variant(
        "SAMCkpt",
        optim.SAMCkpt,
        _ANATOMY_NOTES,
        None,
        _SAM_ASCENT,
        "d_i = g̃_i in the chosen checkpoints, g_i elsewhere",
        _BASE,
        "2",
        _two,
        "anatomy",
    ),
    Variant(
        "SAMDirection",
        optim.SAMDirection,
        _ANATOMY_NOTES,
        None,
        _SAM_ASCENT,
        "d = sign(g̃) ⊙ |g|",
        _BASE,
        "2",
        _two,
        "anatomy",
    ),
    Variant(
        "SAMMagnitude",
        optim.SAMMagnitude,
        _ANATOMY_NOTES,
        None,
        _SAM_ASCENT,
        "d = |g̃| ⊙ sign(g)",
        _BASE,
        "2",
        _two,
        "anatomy",
    ),
    Variant(
        "SAMAgree",
        optim.SAMAgree,
        _ANATOMY_NOTES,
        None,
        _SAM_ASCENT,
        "d = g̃ ⊙ 1[g̃ ⊙ g > 0]",
        _BASE,
        "2",
        _two,
        "anatomy",
    ),
    Variant(
        "SGDAgree",
        optim.SGDAgree,
        _ANATOMY_NOTES,
        None,
        _SAM_ASCENT,
        "d = g ⊙ 1[g̃ ⊙ g > 0]",
        _BASE,
        "2",
        _two,
        "anatomy",
    ),
    Variant(
        "ClampSAM",
        optim.ClampSAM,
        _ANATOMY_NOTES + "; sampy's reading of their CLAMPSAM code",
        None,
        "ε = clip(ρ g/‖g‖, −τ, τ)",
        "d = g̃",
        _BASE,
        "2",
        _two,
        "anatomy",
    ),
    Variant(
        "ClipSAM",
        optim.ClipSAM,
        _ANATOMY_NOTES,
        None,
        _SAM_ASCENT,
        "d = sign(g̃) ⊙ min(|g̃|, c|g|)",
        _BASE,
        "2",
        _two,
        "anatomy",
    ),
    Variant(
        "SAMAnatomy",
        optim.SAMAnatomy,
        _ANATOMY_NOTES,
        None,
        "ε1 = ρ g/‖g‖, then ε2 = ρ m/‖m‖ with m = g where g̃/g > 0",
        "d = ∇L(w + ε2)",
        _BASE,
        "3",
        lambda h: 3.0,
        "anatomy",
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
