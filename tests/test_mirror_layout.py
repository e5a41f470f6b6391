"""The NumPy references and the torch twins are laid out as mirrors, file by file.

One variant, one file, on each side: ``sampy/optim/gsam.py`` and ``sampy/torch/gsam.py`` hold
GSAM's rules and class under the same names in the same order. This test reads both folders
with ``ast`` (nothing is imported, so it needs no torch) and fails when a module or a public
top-level name exists on one side only, unless it is listed below with the reason.

Two kinds of difference are structural and are stated once instead of name by name:

- a NumPy optimizer is functional (``init(x) -> state``, ``step(x, state, oracle)``), so its
  state is a ``NamedTuple`` class; a torch optimizer keeps its state in ``optimizer.state``.
  ``NamedTuple`` classes of the NumPy side have no torch counterpart;
- a rule written as a method of a stand-alone NumPy class (ESAM's SWP, SSAM's mask, WSAM's
  mix, MSAM's momentum ascent) is a rule object on the torch side, where every twin plugs into
  the ``SharpnessAware`` template; those torch rules are listed with their NumPy method.
"""

from __future__ import annotations

import ast
import doctest
from pathlib import Path

import pytest

import sampy.optim.rules

ROOT = Path(__file__).resolve().parents[1]
NUMPY = ROOT / "sampy" / "optim"
TORCH = ROOT / "sampy" / "torch"

NUMPY_ONLY_MODULES = {
    "base": "BaseOptimizer, the Oracle and per-point helpers: torch.optim.Optimizer and autograd",
    "hyper": "the hyperparameter specs, which the twins import from the references",
    "sgd": "the base optimizer SGD: the twins use torch.optim.SGD",
    "adam": "the base optimizers Adam/AdamW: the twins use torch.optim.Adam/AdamW",
    "knobs": "the Keras SAM library's knobs (with_knobs), NumPy only",
    "transforms": "the gradient transforms behind the Keras knobs, NumPy only",
    "accumulation": "Keras' gradient accumulation knob, NumPy only",
}
TORCH_ONLY_MODULES = {
    "base_optimizer": "building the torch.optim base optimizer a twin shares its groups with",
    "batchnorm": "freezing BatchNorm statistics between the passes (no NumPy model has any)",
    "call_shapes": "the step call shapes of the twins (closure kinds of torch training loops)",
    "checked_optimizer": "a torch.optim.Optimizer base with validated param_groups",
    "checkpoint_layout": "torch's state_dict layout for a twin and its base (NumPy: plain states)",
    "closures": "running torch closures (backward, enable_grad, restore w on error)",
    "distributed": "DDP's gradient synchronisation around the two passes",
    "dtensors": "FSDP2's sharded parameters in a step (NumPy has no sharding)",
    "examples": "per-example losses from a torch closure (the NumPy Oracle does this)",
    "foreach_scalars": "numbers as 0-dim tensors for torch's CPU foreach loops (no NumPy loop)",
    "functional": "a torch loss from a NumPy test function, for parity runs",
    "groups": "norms and inner products over parameter groups (NumPy: one array per point)",
    "host_norms": "global norms of CPU tensors read as Python floats (NumPy: always floats)",
    "host_reads": "where a CPU step may read a value on the host (no device to wait for there)",
    "moments": "Adam's moment updates over tensor lists, shared by the built-in-Adam twins",
    "noise": "random draws from torch or NumPy generators, for parity with the references",
    "recipes": "mixed precision and gradient accumulation with the twins",
    "rho_scheduler": "a ρ schedule that follows a torch LR scheduler (NumPy: proportional_rho)",
    "storage": "which tensors a twin may write into or re-point (DDP buckets, DTensors)",
    "twin_optimizer": "torch.optim.Optimizer plumbing: checkpoint-tool state, deepcopy, pickle",
}

# Modules mirrored by name only: the Keras SAM library's knobs. The NumPy side wraps an optimizer
# (``with_knobs``, optax-style transforms); the torch side gives a training loop the same choice
# with torch's own tools (``clip_grad_norm_`` hooks at a placement, ``torch.optim.swa_utils``).
NAME_ONLY_MODULES = {
    "clipping": "NumPy: Keras' clip functions; torch: where clip_grad_norm_ acts in a SAM step",
    "ema": "NumPy: the WithEMA wrapper; torch: swa_utils' AveragedModel beside the twin",
}

# Modules whose torch side also holds torch.optim.Optimizer plumbing that a functional NumPy
# optimizer has no use for: there, every NumPy name must be on the torch side in the same order,
# and the torch side may have more.
TORCH_PLUMBING_MODULES = {
    "sharpness_aware": "the template is a torch.optim.Optimizer: the rules' context, the step "
    "hooks, the two-call API and its guards",
}

# (module, name): why the name exists on the NumPy side only.
NUMPY_ONLY_NAMES = {
    ("checkpoints", "checkpoint_fractions"): "the fractions of the anatomy appendix's tables",
    ("gsam", "proportional_rho"): "the ρ schedule; the twin reuses it or rho_scheduler's class",
    ("msharpness", "micro_batches"): "the reference's split of a batch (torch: the closure's)",
    ("perturbation", "per_point_dot"): "a batch of points is a batch of problems (torch: one)",
    ("perturbation", "dual_norm_exponent"): "the twins import it from the reference",
    ("perturbation", "unit"): "ρ v/‖v‖ per point; the torch unit is over groups (groups.py)",
    ("schedule_free", "averaging_weight"): "the reference's weight c_t (torch: in the step)",
    ("schedule_free", "polynomial_weight"): "t^r lr_max^p in float64; the twins import it",
}
# (module, name): why the name exists on the torch side only.
TORCH_ONLY_NAMES = {
    ("gc", "centralize_"): "in place on a torch training loop's gradients",
    ("gc", "centralize_direction"): "a step pre-hook on the base (NumPy: the gc_descent knob)",
    ("esam", "SWPAscent"): "ESAM's SWP ascent (NumPy: the method ESAM.swp_perturbation)",
    ("imbsam", "tail_indices"): "which examples of a torch batch are the tail's",
    ("jsam", "functional_forward"): "a torch.func forward for per-example Jacobians",
    ("jsam", "PerExampleSAM"): "the torch base of LogitSAM/JSAM (NumPy: the oracle's examples)",
    ("looksam", "LookSAMDescent"): "LookSAM's SAM-step descent (NumPy: inline in LookSAM.step)",
    ("masks", "kth_largest"): "the threshold of a top-k mask without a sort (NumPy sorts)",
    ("masks", "top_k_indices"): "indices for torch's index_select of the kept examples",
    ("msam", "move_along"): "w + s u in place, s a 0-dim tensor (read on the host on the CPU)",
    ("msam", "MomentumAscent"): "MSAM's ascent as a rule (NumPy: inline in MSAM.step)",
    ("perturbation", "dual_factors"): "p = 2 factors alone, for the template's fused w + c g",
    ("perturbation", "norm_ball_factors"): "SAM's/ASAM's ε = c u as c, for the fused w + c u",
    ("perturbation", "accumulation_dtype"): "mixed float16/bfloat16/float32 groups (float64 here)",
    ("perturbation", "on_one_device"): "norms on several devices gathered on one",
    ("perturbation", "per_device"): "a tensor list split by device for _foreach_ kernels",
    ("schedule_free", "schedule_free_defaults"): "the torch constructor's defaults",
    ("schedule_free", "interpolate"): "y = (1 − β) z + β x in place on tensors",
    ("schedule_free", "saturated"): "a step size the parameters' dtype cannot hold, as ±inf",
    ("ssam", "MaskedAscent"): "SSAM's masked ascent (NumPy: the method masked_perturbation)",
    ("wsam", "clip_by_global_norm"): "clip_grad_norm_ on a tensor list (NumPy: clipping.py)",
    ("wsam", "WeightedDescent"): "WSAM's weighted descent (NumPy: inline in WSAM.step)",
}
# Rules that only the torch index lists (their NumPy form is a method, see above), and the
# torch template's context.
TORCH_ONLY_RULES = {
    "LookSAMDescent": "looksam",
    "MaskedAscent": "ssam",
    "RuleContext": "sharpness_aware",
    "SWPAscent": "esam",
    "WeightedDescent": "wsam",
}


def _modules(folder: Path) -> dict[str, ast.Module]:
    return {
        path.stem: ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.py"))
        if path.stem != "__init__"
    }


NUMPY_MODULES = _modules(NUMPY)
TORCH_MODULES = _modules(TORCH)
SHARED = sorted(set(NUMPY_MODULES) & set(TORCH_MODULES))


def _is_state(node: ast.ClassDef) -> bool:
    return any(isinstance(base, ast.Name) and base.id == "NamedTuple" for base in node.bases)


def public_names(tree: ast.Module, *, states: bool = True) -> list[str]:
    """Public top-level classes and functions, in the order of the file."""
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef | ast.FunctionDef)
        and not node.name.startswith("_")
        and (states or not (isinstance(node, ast.ClassDef) and _is_state(node)))
    ]


def exported(tree: ast.Module) -> list[str]:
    """The strings of a module's ``__all__``."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return [element.value for element in node.value.elts]
    raise AssertionError("no __all__")


def test_both_sides_are_read():
    # Not vacuous: the variants are there on both sides.
    assert {"sam", "gsam", "friendly_sam", "swaps", "rules", "sharpness_aware"} <= set(SHARED)
    assert len(SHARED) >= 25


def test_the_same_modules_on_both_sides():
    numpy_only = set(NUMPY_MODULES) - set(TORCH_MODULES)
    torch_only = set(TORCH_MODULES) - set(NUMPY_MODULES)
    assert numpy_only == set(NUMPY_ONLY_MODULES), "a NumPy module has no twin (or is listed)"
    assert torch_only == set(TORCH_ONLY_MODULES), "a torch module has no reference (or is listed)"


@pytest.mark.parametrize(
    "module", [m for m in SHARED if m != "rules" and m not in NAME_ONLY_MODULES]
)
def test_the_same_public_names_in_the_same_order(module):
    numpy_names = public_names(NUMPY_MODULES[module], states=False)
    torch_names = public_names(TORCH_MODULES[module])
    numpy_kept = [n for n in numpy_names if (module, n) not in NUMPY_ONLY_NAMES]
    torch_kept = [n for n in torch_names if (module, n) not in TORCH_ONLY_NAMES]
    if module in TORCH_PLUMBING_MODULES:
        torch_kept = [n for n in torch_kept if n in numpy_kept]
    assert numpy_kept == torch_kept, f"sampy/optim/{module}.py and sampy/torch/{module}.py"


def test_every_listed_exception_is_still_true():
    """A name listed as one-sided exists on that side and not on the other (no stale entries)."""
    for (module, name), listed in [
        *((key, (NUMPY_MODULES, TORCH_MODULES)) for key in NUMPY_ONLY_NAMES),
        *((key, (TORCH_MODULES, NUMPY_MODULES)) for key in TORCH_ONLY_NAMES),
    ]:
        here, there = listed
        assert name in public_names(here[module]), (module, name)
        assert name not in public_names(there[module]), (module, name)
    assert set(NAME_ONLY_MODULES) | set(TORCH_PLUMBING_MODULES) <= set(SHARED)
    reasons_lists = (
        NUMPY_ONLY_MODULES,
        TORCH_ONLY_MODULES,
        NAME_ONLY_MODULES,
        TORCH_PLUMBING_MODULES,
        NUMPY_ONLY_NAMES,
        TORCH_ONLY_NAMES,
    )
    for reasons in reasons_lists:
        assert all(reason.strip() for reason in reasons.values())


def test_the_rules_index_modules_export_the_same_names():
    numpy_index = exported(NUMPY_MODULES["rules"])
    torch_index = exported(TORCH_MODULES["rules"])
    assert numpy_index == sorted(numpy_index) and torch_index == sorted(torch_index)
    assert [n for n in torch_index if n not in TORCH_ONLY_RULES] == numpy_index
    for name, module in TORCH_ONLY_RULES.items():
        assert name in torch_index and name in public_names(TORCH_MODULES[module])


def _rule_classes(tree: ast.Module) -> list[str]:
    """Classes that are rules: a ``__call__`` or an element-wise ``combine``."""
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and not node.name.startswith("_")
        and any(
            isinstance(item, ast.FunctionDef) and item.name in ("__call__", "combine")
            for item in node.body
        )
    ]


@pytest.mark.parametrize(("side", "modules"), [("optim", NUMPY_MODULES), ("torch", TORCH_MODULES)])
def test_every_rule_of_a_variant_file_is_in_its_index(side, modules):
    index = set(exported(modules["rules"]))
    rules = {
        name for module in SHARED if module != "rules" for name in _rule_classes(modules[module])
    }
    assert {"FriendlyAscent", "GSAMDescent", "SAMDirectionRule"} <= rules
    assert rules <= index, f"sampy.{side}.rules misses {sorted(rules - index)}"
    assert {"AscentRule", "DescentRule", "PerturbedGradient", "SharpnessAware"} <= index


def test_the_rules_index_only_re_exports():
    """The index defines nothing: every rule lives in its variant's file."""
    for tree in (NUMPY_MODULES["rules"], TORCH_MODULES["rules"]):
        assert not public_names(tree)


def test_the_numpy_index_names_the_objects_of_the_variant_files():
    from sampy.optim import friendly_sam, gsam, random_sam, swaps

    assert sampy.optim.rules.FriendlyAscent is friendly_sam.FriendlyAscent
    assert sampy.optim.rules.GSAMDescent is gsam.GSAMDescent
    assert sampy.optim.rules.MixedDescent is random_sam.MixedDescent
    assert sampy.optim.rules.AgreementRule is swaps.AgreementRule
    assert all(hasattr(sampy.optim.rules, name) for name in sampy.optim.rules.__all__)


def test_the_numpy_index_example_runs():
    """The docstring of sampy.optim.rules composes F-SAM's ascent with GSAM's descent."""
    result = doctest.testmod(sampy.optim.rules, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


def test_no_rule_module_is_left_behind():
    for path in ("sampy/optim/ascents.py", "sampy/optim/descents.py"):
        assert not (ROOT / path).exists()


def test_sampy_optim_lists_the_rules_only_through_its_index():
    """``sampy.optim.__all__``: optimizers, knobs and helpers; rules via ``sampy.optim.rules``."""
    public = set(sampy.optim.__all__)
    assert "rules" in public and sampy.optim.rules is sampy.optim.__dict__["rules"]
    assert public & set(sampy.optim.rules.__all__) == {"SharpnessAware"}
    assert not [name for name in public if name.endswith("State")]
    assert {"SAMMAGNITUDE", "SAMDIRECTION"}.isdisjoint(public)
    assert all(hasattr(sampy.optim, name) for name in public)
