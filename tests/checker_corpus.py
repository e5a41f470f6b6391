"""A corpus of right and wrong answers for every checker of ``sampy.exercises``.

Each entry is an ``Answer``: a function written the way students write it, the checker it is
for, and what the checker must say — ``None`` for a right answer (it must pass), else a piece of
the expected message (the named mistake, "returns None", "shape", …). Right answers come in
several styles (vectorised, loops, float32, torch float32/float64, in place); the wrong ones
include the attempts of the classroom review's student. ``tests/test_exercises_corpus.py`` runs
them all.
"""

from __future__ import annotations

import pytest

from sampy.exercises import feedback


class OpenGuard:
    """A guard that lets everything through: the checkers' own mistakes (which call sampy's
    helpers) stand in for students in the per-checker tests."""

    def __init__(self, passed_in):
        self.culprit = None

    def __call__(self, frame, event, arg):
        return None


@pytest.fixture
def mistakes_may_answer(monkeypatch):
    """Lets a checker's own mistake functions be graded as if a student wrote them."""
    monkeypatch.setattr(feedback, "_ReferenceGuard", OpenGuard)
