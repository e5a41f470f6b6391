"""A twin's checkpoint in torch's layout: ``{"state": ..., "param_groups": ...}`` only.

Each parameter's entry holds the base optimizer's state where torch's tools look for it
(``momentum_buffer``, ``exp_avg``), the twin's own buffers under ``"rule_state"``, and what
belongs to no parameter (counters, generator states) rides in the first parameter group:
``torch.distributed.checkpoint`` keeps those two keys and drops every other one. The older
sampy layout (a ``"base_optimizer"`` entry and a saved copy of the weights) still loads.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

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
