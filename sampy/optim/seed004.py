"""Deprecated alias of ``sampy.optim.msam_schedule_free`` (removed in the next release).

``SeedAdamWMSAMSF`` is now ``NotesAdamWMSAMScheduleFree``; importing this module warns.
"""

from sampy._deprecated import RENAMED_MODULES, warn_renamed
from sampy.optim.msam_schedule_free import (
    GRAD_MODES,
    AdamWMSAMScheduleFree,
    AdamWMSAMScheduleFreeState,
    NotesAdamWMSAMScheduleFree,
    NotesAdamWMSAMScheduleFreeState,
)

SeedAdamWMSAMSF = NotesAdamWMSAMScheduleFree
SeedState = NotesAdamWMSAMScheduleFreeState

warn_renamed(__name__, RENAMED_MODULES[__name__], stacklevel=2)

__all__ = [
    "GRAD_MODES",
    "AdamWMSAMScheduleFree",
    "AdamWMSAMScheduleFreeState",
    "NotesAdamWMSAMScheduleFree",
    "NotesAdamWMSAMScheduleFreeState",
    "SeedAdamWMSAMSF",
    "SeedState",
]
