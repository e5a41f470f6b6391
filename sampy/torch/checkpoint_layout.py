"""A twin's checkpoint in torch's layout: ``{"state": ..., "param_groups": ...}`` only.

Each parameter's entry holds the base optimizer's state where torch's tools look for it
(``momentum_buffer``, ``exp_avg``), the twin's own buffers under ``"rule_state"``, and what
belongs to no parameter (counters, generator states) rides in the first parameter group:
``torch.distributed.checkpoint`` keeps those two keys and drops every other one. The older
sampy layout (a ``"base_optimizer"`` entry and a saved copy of the weights) still loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from sampy._checks import check_real

CLEAN_GRAD = "clean_grad"  # state key of the stashed clean gradient (between the passes)
RULE_STATE = "rule_state"  # a checkpoint's per-parameter entry of the rule buffers


SHARED_KEY = "shared"  # a checkpoint's entry of the shared counters (in the first group)


def with_base_state(own: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """One torch-layout checkpoint from a twin's ``Optimizer.state_dict()`` and its base's.

    Each parameter's entry holds the base optimizer's state as the base alone would save it
    (``momentum_buffer``, ``exp_avg``, ``step``) and the twin's own buffers under
    ``"rule_state"``: ``torch.distributed.checkpoint`` and any tool that reads a torch optimizer
    checkpoint see the momentum where they expect it. Both dicts number the parameters alike
    (the twin and its base share ``param_groups``). The clean gradient kept between the passes
    is never saved.
    """
    state = {i: dict(entry) for i, entry in base["state"].items()}
    for i, entry in own["state"].items():
        rule = {key: value for key, value in entry.items() if key != CLEAN_GRAD}
        if rule:
            state.setdefault(i, {})[RULE_STATE] = rule
    return {"state": state, "param_groups": own["param_groups"]}


def split_base_state(opt: object, state_dict: dict[str, Any]) -> tuple[dict, dict]:
    """``(own, base)``: the inverse of ``with_base_state``, as two torch-layout state dicts.

    Also reads the older layout (the base's state dict under ``"base_optimizer"``, the rule
    buffers at the top of each entry with a saved copy of the weights, ``"old_p"``, dropped).
    """
    if "base_optimizer" in state_dict:
        state_dict = dict(state_dict)
        base = pop_base_optimizer_state(opt, state_dict)
        rule_state = {
            i: {key: value for key, value in entry.items() if key != "old_p"}
            for i, entry in state_dict["state"].items()
        }
        return {"state": rule_state, "param_groups": state_dict["param_groups"]}, base
    base_state, rule_state = {}, {}
    for i, entry in state_dict["state"].items():
        entry = dict(entry)
        rule = entry.pop(RULE_STATE, None)
        if rule:
            rule_state[i] = dict(rule)
        if entry:
            base_state[i] = entry
    groups = state_dict["param_groups"]
    return {"state": rule_state, "param_groups": groups}, {
        "state": base_state,
        "param_groups": groups,
    }


def save_in_groups(state_dict: dict[str, Any], key: str, value: Any) -> None:
    """Keep an optimizer-wide entry (counters, a generator state) of a checkpoint in its groups.

    ``torch.distributed.checkpoint``'s ``get_/set_optimizer_state_dict`` keep a state dict's
    ``"state"`` (per parameter) and ``"param_groups"`` and drop every other top-level key, so
    what belongs to no parameter rides in the first group (``state_dict`` is the freshly packed
    dict of ``Optimizer.state_dict()``, whose groups are copies).
    """
    state_dict["param_groups"][0][key] = value


def load_from_groups(state_dict: dict[str, Any], key: str) -> tuple[dict[str, Any], Any]:
    """``state_dict`` without ``key`` in its groups, and the value saved by ``save_in_groups``.

    The caller's dicts are left as they are. The value is None when no group holds it; an
    older checkpoint's top-level ``key`` is taken (and removed) too.
    """
    state_dict = dict(state_dict)
    value = state_dict.pop(key, None)
    groups = []
    for group in state_dict["param_groups"]:
        group = dict(group)
        if key in group:
            found = group.pop(key)
            value = found if value is None else value
        groups.append(group)
    state_dict["param_groups"] = groups
    return state_dict, value


def pop_base_optimizer_state(opt: object, state_dict: dict[str, Any]) -> dict[str, Any]:
    """Remove and return the base optimizer's entry of a sampy ``state_dict``.

    Raises ``ValueError`` naming ``opt``'s class when there is none (a plain torch checkpoint).
    """
    base = state_dict.pop("base_optimizer", None)
    if base is None:
        raise ValueError(
            f"state_dict has no 'base_optimizer' entry; was it saved by sampy {type(opt).__name__}?"
        )
    return base


def non_float_state_dtypes(state_dict: dict[str, Any]):
    """``(param, key, dtype)`` of the saved non-float state tensors, once the groups are known.

    Returns a function of the live ``param_groups``: the saved ids map to the parameters in
    group order, as ``torch.optim.Optimizer.load_state_dict`` maps them.
    """
    saved_ids = [i for group in state_dict["param_groups"] for i in group["params"]]
    wanted = [
        (i, key, value.dtype)
        for i, entry in state_dict["state"].items()
        for key, value in entry.items()
        if isinstance(value, Tensor) and not value.is_floating_point() and key != "step"
    ]

    def resolve(param_groups: list[dict[str, Any]]) -> list[tuple[Tensor, str, torch.dtype]]:
        params = dict(zip(saved_ids, (p for g in param_groups for p in g["params"]), strict=False))
        return [(params[i], key, dtype) for i, key, dtype in wanted if i in params]

    return resolve


TWIN_KEY = "twin"  # a checkpoint's entry naming the twin that wrote it (in the first group)

# The base optimizer's hyperparameters that a checkpoint may hold, with their ranges (torch's
# own constructors refuse negative values; a loaded group is never checked by torch). ``lr``
# is one of them for every twin: a warm-up scheduler sets it to 0, which the constructors'
# range (0, inf) excludes.
_BASE_NONNEGATIVE = ("lr", "momentum", "dampening", "weight_decay", "eps")


def _refused(opt: object, problem: str, todo: str = "") -> ValueError:
    todo = todo or (
        f"pass what {type(opt).__name__}.state_dict() returned for the same model; "
        "nothing was loaded"
    )
    return ValueError(f"{type(opt).__name__}.load_state_dict: {problem}; {todo}")


def _entry(state_dict: Mapping[str, Any], key: str, kind: type, opt: object) -> Any:
    if key not in state_dict:
        raise _refused(opt, f"the checkpoint has no {key!r} entry")
    value = state_dict[key]
    if not isinstance(value, kind):
        raise _refused(opt, f"its {key!r} entry is a {type(value).__name__}, not a {kind.__name__}")
    return value


def _saved_twin(groups: list[Any]) -> str | None:
    names = {g[TWIN_KEY] for g in groups if isinstance(g, Mapping) and TWIN_KEY in g}
    return next(iter(names)) if len(names) == 1 else None


def check_checkpoint(
    opt: torch.optim.Optimizer, state_dict: Any, layout_keys: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """``state_dict`` checked against the twin ``opt`` before any of it is loaded.

    Raises ``ValueError`` naming what is wrong, and loads nothing, when:

    - it is not a dict with a ``"state"`` dict and a ``"param_groups"`` list of dicts (None,
      a list, a missing entry);
    - it was written by another twin (the ``"twin"`` entry ``state_dict()`` writes), or,
      without that entry, its groups lack a hyperparameter of ``opt``'s own (``rho``, LookSAM's
      ``k``, a counter);
    - its groups or their parameters do not match ``opt``'s in number;
    - a hyperparameter is invalid: out of its registry range or not finite (``rho=NaN``,
      ``rho=-1``), of the wrong type (``lr='fast'``), a base optimizer's ``lr``, momentum or
      decay negative or not finite;
    - a state tensor has another shape than its parameter (a wider model's checkpoint), or
      holds NaN or inf;
    - ``opt`` keeps shared counters (the template's ``"shared"``) and the checkpoint has none,
      or counters that are not numbers.

    Returns a shallow copy without the ``"twin"`` entry, the one ``opt``'s own loading takes.
    ``layout_keys`` are the group entries that are not hyperparameters (``"shared"``,
    ``"noise"``): their contents are checked by the loading code that reads them.
    """
    name = type(opt).__name__
    if not isinstance(state_dict, Mapping):
        raise _refused(
            opt,
            f"a checkpoint is a dict with 'state' and 'param_groups', got a "
            f"{type(state_dict).__name__}",
        )
    state = _entry(state_dict, "state", Mapping, opt)
    groups = _entry(state_dict, "param_groups", list, opt)
    if not all(isinstance(g, Mapping) and isinstance(g.get("params"), list) for g in groups):
        raise _refused(opt, "every entry of 'param_groups' must be a dict with a 'params' list")
    unknown = sorted(
        str(k)
        for k in set(state_dict) - {"state", "param_groups", "base_optimizer"}
        if k not in layout_keys or not hasattr(opt, str(k))
    )
    if unknown:
        raise _refused(opt, f"it holds the entries {unknown}, which {name} does not keep")
    saved_twin = _saved_twin(groups)
    # A user's subclass of a twin loads its parent's checkpoints; between sampy's own twins
    # (SAME is a CustomSAME preset) only the same twin's.
    own_class = type(opt).__module__.startswith("sampy.")
    family = [name] if own_class else [cls.__name__ for cls in type(opt).__mro__]
    if saved_twin is not None and saved_twin not in family:
        raise _refused(
            opt,
            f"the checkpoint was written by {saved_twin}, not by {name}",
            f"load it into a {saved_twin}, or start {name} from its fresh state",
        )
    live_groups = opt.param_groups
    if len(groups) != len(live_groups) or any(
        len(g["params"]) != len(live["params"]) for g, live in zip(groups, live_groups, strict=True)
    ):
        raise _refused(
            opt,
            f"it has {len(groups)} group(s) of {[len(g['params']) for g in groups]} "
            f"parameter(s), {name} has {[len(g['params']) for g in live_groups]}",
        )
    base = getattr(opt, "base_optimizer", None)
    base_keys = set(base.defaults) if isinstance(base, torch.optim.Optimizer) else set()
    specs = {spec.name: spec for spec in getattr(opt, "HYPERPARAMETERS", ())}
    skip = {"params", TWIN_KEY, *layout_keys}
    for index, (group, live) in enumerate(zip(groups, live_groups, strict=True)):
        # The twin's own settings and counters must all be there; other keys (a scheduler's
        # initial_lr, a user's group name) are the user's business, as in torch.
        own = (set(opt.defaults) & set(live)) - base_keys - skip
        missing = sorted(own - set(group))
        if missing:
            raise _refused(
                opt, f"param_groups[{index}] lacks {missing}: not a checkpoint of {name}"
            )
        for key, value in group.items():
            if key in skip or key not in live:
                continue
            _check_group_value(opt, f"param_groups[{index}][{key!r}]", key, value, live[key], specs)
    _check_state_tensors(opt, state, groups, live_groups)
    if isinstance(getattr(opt, "shared", None), dict) and "shared" in layout_keys:
        _check_shared(opt, state_dict, groups)
    if "base_optimizer" in state_dict:
        _entry(state_dict, "base_optimizer", Mapping, opt)
    cleaned = dict(state_dict)
    cleaned["param_groups"] = [
        {k: v for k, v in g.items() if k != TWIN_KEY} for g in state_dict["param_groups"]
    ]
    return cleaned


def _check_shared(opt: Any, state_dict: Mapping[str, Any], groups: list[Any]) -> None:
    """The template's counters: present (a fresh twin's may be empty), a dict of numbers."""
    found = [g["shared"] for g in groups if "shared" in g]
    if "shared" in state_dict:  # the older layout's top-level entry
        found.insert(0, state_dict["shared"])
    if not found:
        raise _refused(
            opt,
            "the checkpoint has no 'shared' entry (the step counters, in param_groups[0])",
            "pass the whole dict state_dict() returned: without the counters the run would "
            "restart its schedule; nothing was loaded",
        )
    shared = found[0]
    if not isinstance(shared, Mapping):
        raise _refused(opt, f"its 'shared' entry is a {type(shared).__name__}, not a dict")
    for key, value in shared.items():
        if isinstance(value, bool | Tensor) or value is None:
            continue
        if not isinstance(value, Real) or value != value:
            raise _refused(
                opt, f"the counter shared[{key!r}] is {value!r}, not a number (or a tensor)"
            )


def _check_group_value(
    opt: object, where: str, key: str, value: Any, live: Any, specs: dict[str, Any]
) -> None:
    """One saved group entry: valid by its spec, or of the live value's type (and range)."""
    if isinstance(value, Tensor) or (value is None and live is None):
        return
    try:
        if key in specs and key != "lr":
            specs[key].check(value)
        elif key in _BASE_NONNEGATIVE and not isinstance(live, (bool, Tensor)):
            check_real(key, value, 0.0, None, array_ok=False)
        elif key == "betas" and isinstance(live, tuple):
            if not isinstance(value, (tuple, list)) or len(value) != len(live):
                raise ValueError(f"betas must have {len(live)} entries, got {value!r}")
            for i, beta in enumerate(value):
                check_real(f"betas[{i}]", beta, 0.0, 1.0, array_ok=False)
    except ValueError as err:
        raise _refused(opt, f"{where}: {err}") from None
    kinds = (
        (bool, (bool,)),
        (str, (str,)),
        (tuple, (tuple, list)),
        (Real, (Real, Tensor)),
    )
    for live_kind, allowed in kinds:
        if isinstance(live, live_kind):
            wrong_bool = live_kind is Real and isinstance(value, bool)
            if not isinstance(value, allowed) or wrong_bool:
                raise _refused(
                    opt,
                    f"{where} is {value!r} ({type(value).__name__}), where {type(opt).__name__} "
                    f"keeps a {type(live).__name__} ({live!r})",
                )
            return


def _check_state_tensors(
    opt: object, state: Mapping[Any, Any], groups: list[Any], live_groups: list[dict]
) -> None:
    """Every saved state tensor of a parameter has its shape (or is a scalar) and is finite."""
    params = dict(
        zip(
            (i for g in groups for i in g["params"]),
            (p for g in live_groups for p in g["params"]),
            strict=True,
        )
    )
    for pid, entry in state.items():
        if pid not in params:
            raise _refused(opt, f"'state' has an entry {pid!r} that no group lists")
        if not isinstance(entry, Mapping):
            raise _refused(opt, f"state[{pid!r}] is a {type(entry).__name__}, not a dict")
        _check_entry_tensors(opt, f"state[{pid!r}]", entry, params[pid])


def _check_entry_tensors(opt: object, where: str, entry: Mapping, param: Tensor) -> None:
    for key, value in entry.items():
        if isinstance(value, Mapping):
            _check_entry_tensors(opt, f"{where}[{key!r}]", value, param)
        elif isinstance(value, Tensor):
            if value.dim() > 0 and value.shape != param.shape:
                raise _refused(
                    opt,
                    f"{where}[{key!r}] has shape {tuple(value.shape)}, its parameter "
                    f"{tuple(param.shape)} (a checkpoint of another model?)",
                )
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise _refused(
                    opt,
                    f"{where}[{key!r}] holds NaN or inf (a checkpoint of a run that had diverged?)",
                    "load an earlier checkpoint; nothing was loaded",
                )
