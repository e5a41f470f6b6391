"""Renamed public names, kept as deprecated aliases for one release.

Each old name still resolves, with a ``DeprecationWarning`` that names its replacement: the
classes, and the swapped class names ``SAMMAGNITUDE``/``SAMDIRECTION`` of the anatomy notes'
code, through a module-level ``__getattr__`` (so they stay out of ``__all__``), the modules
through small shims that warn when imported, the registry rows through ``sampy.variant`` and
the values of choice hyperparameters through ``renamed_value`` in the constructors.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

#: Old class (and registry row) name → new name. ``SeedAdamWMSAMSF`` is the formula of the
#: Momentum-SAM-ScheduleFree notes taken literally, now ``NotesAdamWMSAMScheduleFree``.
RENAMED: dict[str, str] = {"SeedAdamWMSAMSF": "NotesAdamWMSAMScheduleFree"}

#: Alias → the class it is, for the class names of the code of the research notes on the anatomy
#: of SAM's gradient: the notes' code calls SAM's direction with SGD's magnitude ``SAMMAGNITUDE``
#: and the other swap ``SAMDIRECTION``, the opposite of what the classes do (the notes say so).
SWAPPED_ALIASES: dict[str, str] = {"SAMMAGNITUDE": "SAMDirection", "SAMDIRECTION": "SAMMagnitude"}

#: What each class of ``SWAPPED_ALIASES`` does, for the warning.
_SWAPPED_MEANING: dict[str, str] = {
    "SAMDirection": "SAM's direction with SGD's magnitude, d = sign(g̃) ⊙ |g|",
    "SAMMagnitude": "SAM's magnitude with SGD's direction, d = |g̃| ⊙ sign(g)",
}

#: Old → new values of choice hyperparameters: ``ratio_mode="seed_code"`` (the ratio guard of the
#: code of the research notes on the anatomy of SAM's gradient) is now ``"notes_code"``.
RENAMED_VALUES: dict[str, dict[str, str]] = {"ratio_mode": {"seed_code": "notes_code"}}

#: Old module → new module.
RENAMED_MODULES: dict[str, str] = {
    "sampy.optim.seed004": "sampy.optim.msam_schedule_free",
    "sampy.torch.seed004": "sampy.torch.msam_schedule_free",
}


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (removed in the next release)."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release: use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed_value(name: str, value: Any) -> Any:
    """``value`` of the hyperparameter ``name``, mapped to its new spelling (with a warning).

    Called first thing in a constructor, so the warning points at the caller's line.
    """
    new = RENAMED_VALUES.get(name, {}).get(value) if isinstance(value, str) else None
    if new is None:
        return value
    warn_renamed(f"{name}={value!r}", f"{name}={new!r}", stacklevel=4)
    return new


def warn_swapped_alias(module: str, alias: str, *, stacklevel: int = 3) -> None:
    """Warn that ``module.alias`` is a deprecated name that says the opposite of what it is."""
    new = SWAPPED_ALIASES[alias]
    warnings.warn(
        f"{module}.{alias} is deprecated and will be removed in the next release: it is "
        f"{module}.{new} ({_SWAPPED_MEANING[new]}), which the code of the research notes on the "
        f"anatomy of SAM's gradient names {alias}, the opposite of what it does; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def module_getattr(module: str, namespace: Mapping[str, Any]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``module`` resolving deprecated names with a warning.

    The renamed classes (``RENAMED``) and the swapped aliases (``SWAPPED_ALIASES``) whose class
    lives in ``namespace`` resolve; every other name raises ``AttributeError``.

    Args:
        module: the module's dotted name (for the messages).
        namespace: the module's ``globals()``, where the new names live.
    """

    def __getattr__(name: str) -> Any:
        if name in RENAMED and RENAMED[name] in namespace:
            warn_renamed(f"{module}.{name}", f"{module}.{RENAMED[name]}")
            return namespace[RENAMED[name]]
        if name in SWAPPED_ALIASES and SWAPPED_ALIASES[name] in namespace:
            warn_swapped_alias(module, name)
            return namespace[SWAPPED_ALIASES[name]]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
