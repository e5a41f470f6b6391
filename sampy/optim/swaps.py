"""Magnitude/direction swaps and sign-agreement masks between SAM's and SGD's gradients.

From the research notes on the anatomy of SAM's gradient and their code
(lhchau/sam-hessian @ 0c4c993d, ``sam_hessian/optimizer/``); no paper; the sign-agreement masks come
from the notes alone. Two gradient evaluations per step, SAM's ascent, then a descent rule on
``(g, g̃)``:

- ``SAMDirection``: ``d = sign(g̃) ⊙ |g|`` — SAM's direction with SGD's magnitude. The notes'
  code calls this class ``SAMMAGNITUDE``; the notes say the names are swapped. sampy names
  the classes by what they do; the code's names still resolve, as deprecated aliases that
  warn.
- ``SAMMagnitude``: ``d = |g̃| ⊙ sign(g)`` — SAM's magnitude with SGD's direction (the notes'
  ``SAMDIRECTION``).
- ``SAMAgree``: ``d = g̃ ⊙ 1[g̃ ⊙ g > 0]``, and 0 elsewhere (``fill="zero"``) or ``g``
  (``fill="other"``).
- ``SGDAgree``: ``d = g ⊙ 1[g̃ ⊙ g > 0]``, and 0 elsewhere (``fill="zero"``) or ``g̃``
  (``fill="other"``).

The descent rules ``SAMDirectionRule``, ``SAMMagnitudeRule`` and ``AgreementRule`` are public
(``sampy.optim.rules``), as on the torch side.

Identities: if ``g̃ = g`` all four give SGD's step; if every sign agrees, SAMAgree = SAM and
SGDAgree = SGD. ``sign(0) = 0`` zeroes a coordinate.
"""

from __future__ import annotations

import numpy as np

from sampy._deprecated import module_getattr
from sampy.optim.base import BaseOptimizer
from sampy.optim.hyper import Hyper, validate
from sampy.optim.sam import PERTURB_EPS, RHO, NormBallAscent
from sampy.optim.sharpness_aware import DescentRule, SharpnessAware

FILL = Hyper(
    "fill",
    "zero",
    "what the disagreeing coordinates get: zero, or the other gradient",
    kind="choice",
    choices=("zero", "other"),
)


class SAMDirectionRule:
    """Descent rule ``d = sign(g̃) ⊙ |g|``: SAM's direction, SGD's magnitude."""

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, g: np.ndarray, g_adv: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        """``(sign(g̃) ⊙ |g|, None)``."""
        return np.sign(g_adv) * np.abs(g), None


class SAMMagnitudeRule:
    """Descent rule ``d = |g̃| ⊙ sign(g)``: SAM's magnitude, SGD's direction."""

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, g: np.ndarray, g_adv: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        """``(|g̃| ⊙ sign(g), None)``."""
        return np.abs(g_adv) * np.sign(g), None


class AgreementRule:
    """Descent rule: keep one gradient where ``g̃ ⊙ g > 0``; elsewhere zero or the other one.

    ``keep_sam=True`` keeps ``g̃`` (SAMAgree), ``False`` keeps ``g`` (SGDAgree); ``fill`` is
    ``"zero"`` or ``"other"`` (the other gradient on the coordinates that disagree in sign).
    """

    def __init__(self, keep_sam: bool, fill: str) -> None:
        self.keep_sam = keep_sam
        self.fill = fill

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, g: np.ndarray, g_adv: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        """``(where(g̃ ⊙ g > 0, kept, other or 0), None)``."""
        kept, other = (g_adv, g) if self.keep_sam else (g, g_adv)
        return np.where(g_adv * g > 0, kept, other if self.fill == "other" else 0.0), None


class _Swap(SharpnessAware):
    HYPERPARAMETERS = (RHO, PERTURB_EPS)
    rule: type[DescentRule] = SAMDirectionRule

    def __init__(
        self, base: BaseOptimizer, rho: float | np.ndarray = 0.05, perturb_eps: float = 1e-12
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(base, NormBallAscent(rho=rho, perturb_eps=perturb_eps), self.rule())


class SAMDirection(_Swap):
    """SAM's direction, SGD's magnitude: ``d = sign(g̃) ⊙ |g|`` (the notes' code: SAMMAGNITUDE)."""

    rule = SAMDirectionRule


class SAMMagnitude(_Swap):
    """SAM's magnitude, SGD's direction: ``d = |g̃| ⊙ sign(g)`` (the notes' code: SAMDIRECTION)."""

    rule = SAMMagnitudeRule


class _Agree(SharpnessAware):
    HYPERPARAMETERS = (RHO, FILL, PERTURB_EPS)
    keep_sam = True

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        fill: str = "zero",
        perturb_eps: float = 1e-12,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            base,
            NormBallAscent(rho=rho, perturb_eps=perturb_eps),
            AgreementRule(self.keep_sam, fill),
        )


class SAMAgree(_Agree):
    """SAM's coordinates where they agree in sign with SGD's (``fill="other"``: SGD's elsewhere)."""

    keep_sam = True


class SGDAgree(_Agree):
    """SGD's coordinates where they agree in sign with SAM's (``fill="other"``: SAM's elsewhere)."""

    keep_sam = False


# The notes' code's class names (SAMMAGNITUDE, SAMDIRECTION) resolve with a warning.
__getattr__ = module_getattr(__name__, globals())
