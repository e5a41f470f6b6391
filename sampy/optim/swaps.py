"""Magnitude/direction swaps and sign-agreement masks between SAM's and SGD's gradients.

From the research notes on the anatomy of SAM's gradient and their code
(lhchau/sam-hessian @ 0c4c993d, ``sam_hessian/optimizer/``); no paper; the sign-agreement masks come
from the notes alone. Two gradient evaluations per step, SAM's ascent, then a descent rule on
``(g, g̃)``:

- ``SAMDirection``: ``d = sign(g̃) ⊙ |g|`` — SAM's direction with SGD's magnitude. The notes'
  code calls this class ``SAMMAGNITUDE``; the notes say the names are swapped. sampy names
  the classes by what they do and keeps the code's names as documented aliases.
- ``SAMMagnitude``: ``d = |g̃| ⊙ sign(g)`` — SAM's magnitude with SGD's direction (the notes'
  ``SAMDIRECTION``).
- ``SAMAgree``: ``d = g̃ ⊙ 1[g̃ ⊙ g > 0]`` (+ ``g`` elsewhere with ``fill="sgd"``).
- ``SGDAgree``: ``d = g ⊙ 1[g̃ ⊙ g > 0]`` (+ ``g̃`` elsewhere with ``fill="sam"``).

Identities: if ``g̃ = g`` all four give SGD's step; if every sign agrees, SAMAgree = SAM and
SGDAgree = SGD. ``sign(0) = 0`` zeroes a coordinate.
"""

from __future__ import annotations

import numpy as np

from sampy.optim.base import BaseOptimizer
from sampy.optim.hyper import Hyper, validate
from sampy.optim.sam import PERTURB_EPS, RHO, NormBallAscent
from sampy.optim.sharpness_aware import SharpnessAware


class _Rule:
    def __init__(self, combine) -> None:
        self.combine = combine

    def init(self, x: np.ndarray) -> None:
        return None

    def __call__(self, g: np.ndarray, g_adv: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        return self.combine(g, g_adv), None


def sam_direction(g: np.ndarray, g_adv: np.ndarray) -> np.ndarray:
    """``sign(g̃) ⊙ |g|``."""
    return np.sign(g_adv) * np.abs(g)


def sam_magnitude(g: np.ndarray, g_adv: np.ndarray) -> np.ndarray:
    """``|g̃| ⊙ sign(g)``."""
    return np.abs(g_adv) * np.sign(g)


def agreement(g: np.ndarray, g_adv: np.ndarray) -> np.ndarray:
    """``1[g̃ ⊙ g > 0]``: the coordinates where SAM and SGD agree in sign."""
    return g_adv * g > 0


class _Swap(SharpnessAware):
    HYPERPARAMETERS = (RHO, PERTURB_EPS)
    combine = staticmethod(sam_direction)

    def __init__(
        self, base: BaseOptimizer, rho: float | np.ndarray = 0.05, perturb_eps: float = 1e-12
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            base, NormBallAscent(rho=rho, perturb_eps=perturb_eps), _Rule(self.combine)
        )


class SAMDirection(_Swap):
    """SAM's direction, SGD's magnitude: ``d = sign(g̃) ⊙ |g|`` (the notes' code: SAMMAGNITUDE)."""

    combine = staticmethod(sam_direction)


class SAMMagnitude(_Swap):
    """SAM's magnitude, SGD's direction: ``d = |g̃| ⊙ sign(g)`` (the notes' code: SAMDIRECTION)."""

    combine = staticmethod(sam_magnitude)


# The class names of the notes' code, which the notes say are swapped relative to their meaning.
SAMMAGNITUDE = SAMDirection
SAMDIRECTION = SAMMagnitude

FILL = Hyper(
    "fill",
    "zero",
    "what the disagreeing coordinates get: zero, or the other gradient",
    kind="choice",
    choices=("zero", "other"),
)


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
        keep_sam = self.keep_sam

        def combine(g: np.ndarray, g_adv: np.ndarray) -> np.ndarray:
            kept, other = (g_adv, g) if keep_sam else (g, g_adv)
            return np.where(agreement(g, g_adv), kept, other if fill == "other" else 0.0)

        super().__init__(base, NormBallAscent(rho=rho, perturb_eps=perturb_eps), _Rule(combine))


class SAMAgree(_Agree):
    """SAM's coordinates where they agree in sign with SGD's (``fill="other"``: SGD's elsewhere)."""

    keep_sam = True


class SGDAgree(_Agree):
    """SGD's coordinates where they agree in sign with SAM's (``fill="other"``: SAM's elsewhere)."""

    keep_sam = False
