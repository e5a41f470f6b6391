"""The base optimizer of a torch twin: built from a class, a factory or an instance.

A twin (``SAM``, ``GSAM``, ...) hands its direction to an ordinary ``torch.optim`` optimizer and
shares its ``param_groups`` with it, so learning-rate schedulers and ``add_param_group`` act on
both at once. This module builds that optimizer, checks what the user passed, validates a new
group's hyperparameters like the constructor, and writes the ``repr`` that names the base.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from sampy.optim.hyper import validate

BaseOptimizer = (
    type[torch.optim.Optimizer] | Callable[..., torch.optim.Optimizer] | torch.optim.Optimizer
)
"""What a twin's ``base_optimizer`` may be: a class, a factory or an instance."""


def check_base_optimizer(base_optimizer: Any) -> None:
    """Raise ``ValueError`` unless ``base_optimizer`` is a ``BaseOptimizer``.

    That is a ``torch.optim.Optimizer`` class, any callable ``(param_groups, **kwargs) ->
    Optimizer`` (``functools.partial(torch.optim.SGD, momentum=0.9)``, a Hydra or Lightning
    factory), or an optimizer instance (built on the twin's parameters).
    """
    if isinstance(base_optimizer, type):
        if issubclass(base_optimizer, torch.optim.Optimizer):
            return
    elif isinstance(base_optimizer, torch.optim.Optimizer) or callable(base_optimizer):
        return
    raise ValueError(
        "base_optimizer must be a torch.optim.Optimizer class, a factory (param_groups, "
        "**kwargs) -> Optimizer such as functools.partial(torch.optim.SGD, momentum=0.9), or an "
        f"optimizer built on the same parameters; got {type(base_optimizer).__name__} "
        f"{_short(base_optimizer)}"
    )


def _short(obj: Any, limit: int = 80) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _base_name(base_optimizer: Any) -> str:
    """A readable name of a class, factory or instance (for messages and ``repr``)."""
    if isinstance(base_optimizer, torch.optim.Optimizer):
        return type(base_optimizer).__name__
    inner = getattr(base_optimizer, "func", base_optimizer)  # functools.partial
    return getattr(inner, "__name__", type(inner).__name__)


def build_base_optimizer(
    opt: torch.optim.Optimizer,
    base_optimizer: BaseOptimizer,
    base_kwargs: dict[str, Any],
    own_keys: Iterable[str],
) -> torch.optim.Optimizer:
    """The base optimizer of ``opt``, sharing ``opt``'s ``param_groups`` (one list for both).

    A class or a factory is called with ``opt.param_groups`` and ``base_kwargs``; an instance
    must have been built on the same parameters, in the same groups and order, and then takes
    no ``base_kwargs`` (its hyperparameters are set): ``opt``'s own keys (``own_keys``, such as
    ``rho``) are added to its groups. Afterwards ``opt.param_groups`` is the base's list, so
    schedulers and ``add_param_group`` act on both at once, and ``opt.defaults`` holds both
    optimizers' defaults. Raises ``ValueError`` for anything else, and when the base has a
    hyperparameter of ``opt``'s own name (Adadelta's ``rho``): in shared groups it would
    silently read ``opt``'s value.
    """
    check_base_optimizer(base_optimizer)
    name = _base_name(base_optimizer)
    own_keys = tuple(own_keys)
    if isinstance(base_optimizer, torch.optim.Optimizer):
        if base_kwargs:
            raise ValueError(
                f"base_optimizer is an optimizer instance ({name}), so its hyperparameters are "
                f"set already; got {sorted(base_kwargs)} as well: pass them to {name}(...), or "
                f"pass the class {name} instead of an instance"
            )
        _check_same_groups(opt, base_optimizer, name)
        base = base_optimizer
        for group, base_group in zip(opt.param_groups, base.param_groups, strict=True):
            for key in own_keys:
                base_group[key] = group[key]
    else:
        base = base_optimizer(opt.param_groups, **base_kwargs)
        if not isinstance(base, torch.optim.Optimizer):
            raise ValueError(
                f"base_optimizer {name}(param_groups, **kwargs) returned "
                f"{type(base).__name__} {_short(base)}, not a torch.optim.Optimizer"
            )
    clash = sorted(set(own_keys) & set(base.defaults))
    if clash:
        raise ValueError(
            f"base_optimizer {name} has its own {clash[0]!r}, which would clash with "
            f"{type(opt).__name__}'s {clash[0]!r} in the shared param_groups"
        )
    opt.param_groups = base.param_groups
    opt.defaults.update(base.defaults)
    return base


def _check_same_groups(opt: torch.optim.Optimizer, base: torch.optim.Optimizer, name: str) -> None:
    mine = [list(group["params"]) for group in opt.param_groups]
    theirs = [list(group["params"]) for group in base.param_groups]
    same = len(mine) == len(theirs) and all(
        len(a) == len(b) and all(p is q for p, q in zip(a, b, strict=True))
        for a, b in zip(mine, theirs, strict=True)
    )
    if not same:
        raise ValueError(
            f"base_optimizer {name} was built on other parameters (or groups, or order) than "
            f"{type(opt).__name__}'s: build both on the same parameters, e.g. "
            f"{name}(model.parameters(), ...) and {type(opt).__name__}(model.parameters(), "
            "base), or pass the class or a factory instead of an instance"
        )


def validate_group(opt: torch.optim.Optimizer, keys: Iterable[str], group: dict) -> None:
    """Check ``group``'s hyperparameters ``keys`` (its own, else ``opt``'s defaults) as the
    constructor does, before the group is added (``ValueError`` naming the hyperparameter)."""
    hyper = getattr(opt, "HYPERPARAMETERS", ())
    validate(hyper, {key: group.get(key, opt.defaults.get(key)) for key in keys})


def group_repr(opt: torch.optim.Optimizer, base: torch.optim.Optimizer) -> str:
    """torch's ``repr`` of an optimizer, naming the base and keeping its keys apart.

    ``SAM(base_optimizer=SGD) (``, then per group the twin's own keys and, indented under
    the base's name, the base's (``lr``, ``momentum``, ...).
    """
    name = type(base).__name__
    lines = [f"{type(opt).__name__}(base_optimizer={name}) ("]
    for i, group in enumerate(opt.param_groups):
        lines.append(f"Parameter Group {i}")
        own = sorted(k for k in group if k != "params" and k not in base.defaults)
        lines += [f"    {key}: {group[key]}" for key in own]
        lines.append(f"    {name}:")
        lines += [f"        {key}: {group[key]}" for key in sorted(base.defaults) if key in group]
    lines.append(")")
    return "\n".join(lines)
