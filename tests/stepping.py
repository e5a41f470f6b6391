"""Stepping a NumPy reference optimizer by hand, keeping every state, for the tests that check
a chapter's statements about the states themselves (schedule-free averages, the notes' formula).
"""

from __future__ import annotations

import numpy as np

import sampy
from sampy.optim import Oracle

#: ``½(x² + 10y²)``: two curvatures, an exact minimum at 0 (the schedule-free tests' landscape).
QUADRATIC = sampy.functions.get("quadratic", A=np.diag([1.0, 10.0]), b=np.zeros(2))
W0 = np.array([2.0, 1.5])


def points_and_states(opt, f, x0, steps: int) -> tuple[np.ndarray, list]:
    """``steps`` steps of ``opt`` on ``f`` from ``x0``: the ``steps + 1`` points and the states."""
    oracle = Oracle(f)
    p, state = np.array(x0, dtype=float), opt.init(np.array(x0, dtype=float))
    points, states = [p], [state]
    for _ in range(steps):
        p, state = opt.step(p, state, oracle)
        points.append(p)
        states.append(state)
    return np.stack(points), states
