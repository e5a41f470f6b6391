"""Every checker against its corpus of right and wrong answers (tests/checker_corpus.py)."""

from __future__ import annotations

import importlib.util

import pytest
from checker_corpus import CORPUS, Answer

import sampy.exercises

HAVE_TORCH = importlib.util.find_spec("torch") is not None
if HAVE_TORCH:
    # Imported once here: a first import inside an answer runs under the checker's profiler,
    # which makes it take seconds.
    import torch  # noqa: F401


@pytest.mark.parametrize(
    "answer",
    CORPUS,
    ids=lambda a: f"{a.checker[6:]}: {'right' if a.says is None else 'wrong'}, {a.style}",
)
def test_checker_judges_the_answer(answer: Answer):
    if answer.torch and not HAVE_TORCH:
        pytest.skip("torch is not installed")
    feedback = getattr(sampy.exercises, answer.checker)(answer.function)
    assert not feedback.checker_failed, str(feedback)
    if answer.says is None:
        assert feedback.passed, str(feedback)
    else:
        assert not feedback.passed
        assert any(answer.says in check.message for check in feedback.failures), str(feedback)


def test_every_checker_has_right_and_wrong_answers():
    checkers = {name for name in sampy.exercises.__all__ if name.startswith("check_")}
    for checker in checkers:
        answers = [a for a in CORPUS if a.checker == checker]
        assert any(a.says is None for a in answers), checker
        assert any(a.says is not None for a in answers), checker
    assert {a.checker for a in CORPUS} <= checkers
