"""Deprecated alias of ``sampy.torch.msam_schedule_free`` (removed in the next release).

``SeedAdamWMSAMSF`` is now ``NotesAdamWMSAMScheduleFree``; importing this module warns.
"""

from sampy._deprecated import RENAMED_MODULES, warn_renamed
from sampy.torch.msam_schedule_free import AdamWMSAMScheduleFree, NotesAdamWMSAMScheduleFree

SeedAdamWMSAMSF = NotesAdamWMSAMScheduleFree

warn_renamed(__name__, RENAMED_MODULES[__name__], stacklevel=2)

__all__ = ["AdamWMSAMScheduleFree", "NotesAdamWMSAMScheduleFree", "SeedAdamWMSAMSF"]
