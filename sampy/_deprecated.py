"""Renamed public names, kept as deprecated aliases for one release.

Each old name still resolves, with a ``DeprecationWarning`` that names its replacement: the
classes through a module-level ``__getattr__`` (so they stay out of ``__all__``), the modules
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


def module_getattr(module: str, namespace: Mapping[str, Any]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``module`` resolving the renamed classes with a warning.

    Args:
        module: the module's dotted name (for the messages).
        namespace: the module's ``globals()``, where the new names live.
    """

    def __getattr__(name: str) -> Any:
        new = RENAMED.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warn_renamed(f"{module}.{name}", f"{module}.{new}")
        return namespace[new]

    return __getattr__
