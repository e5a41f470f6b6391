"""The book's checked exercises: which function each asks for and which checker grades it.

One entry per function a student writes, in book order (the order of ``_toc.yml``). The label
is the exercise's label in the book (``:label:`` of its ``{exercise}``); the student edition's
notebooks use it as the nbgrader ``grade_id`` of the answer cell, and the grader keys its
columns on it. An exercise that asks for two functions (``th-ex-stability``) has two entries
with the same label; :attr:`CheckedExercise.grade_id` tells them apart.

``tests/test_exercises_catalogue.py`` checks that every label exists in the book and every
checker in ``sampy.exercises``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckedExercise:
    """A coding exercise of the book graded by a checker of ``sampy.exercises``."""

    label: str  # the book's exercise label, e.g. "ch-ex-looksam"
    function: str  # the name of the function the student writes, e.g. "looksam_reuse"
    signature: str  # its def line, e.g. "def looksam_reuse(g0, g_s, g, alpha):"
    checker: str  # the checker's name in sampy.exercises, e.g. "check_looksam_reuse"
    points: int = 1

    @property
    def grade_id(self) -> str:
        """A unique id for grading: the label, or ``label-function`` where a label is shared."""
        shared = sum(entry.label == self.label for entry in CHECKED_EXERCISES) > 1
        return f"{self.label}-{self.function}" if shared else self.label


CHECKED_EXERCISES: tuple[CheckedExercise, ...] = (
    # book/sam_theory.md
    CheckedExercise(
        "th-ex-danskin",
        "penalised_worst_case_gradient",
        "def penalised_worst_case_gradient(H, w, rho):",
        "check_penalised_worst_case_gradient",
    ),
    CheckedExercise(
        "th-ex-stability",
        "sam_quadratic_multipliers",
        "def sam_quadratic_multipliers(eigenvalues, g_norm, lr, rho):",
        "check_sam_quadratic_multipliers",
    ),
    CheckedExercise(
        "th-ex-stability",
        "sam_edge",
        "def sam_edge(g_norm, lr, rho):",
        "check_sam_edge",
    ),
    # book/adaptive.md
    CheckedExercise(
        "ad-ex-asam",
        "asam_perturbation",
        "def asam_perturbation(w, g, rho, eta):",
        "check_asam_perturbation",
    ),
    CheckedExercise(
        "ad-ex-dual",
        "dual_direction",
        "def dual_direction(g, p, rho):",
        "check_dual_direction",
    ),
    CheckedExercise(
        "ad-ex-fisher-code",
        "fisher_perturbation",
        "def fisher_perturbation(g, rho, kappa):",
        "check_fisher_perturbation",
    ),
    # book/direction.md
    CheckedExercise(
        "dir-ex-gsam",
        "gsam_direction",
        "def gsam_direction(g, g_adv, alpha):",
        "check_gsam_direction",
    ),
    CheckedExercise(
        "dir-ex-wsam",
        "wsam_direction",
        "def wsam_direction(g, g_adv, gamma):",
        "check_wsam_direction",
    ),
    CheckedExercise(
        "dir-ex-vasso",
        "vasso_perturbations",
        "def vasso_perturbations(grads, rho, theta):",
        "check_vasso_perturbations",
    ),
    CheckedExercise(
        "dir-ex-rwp",
        "rwp_direction",
        'def rwp_direction(grad, w, z, rho, mix, kind="gaussian"):',
        "check_rwp_direction",
    ),
    # book/cheaper.md
    CheckedExercise(
        "ch-ex-looksam",
        "looksam_reuse",
        "def looksam_reuse(g0, g_s, g, alpha):",
        "check_looksam_reuse",
    ),
    CheckedExercise(
        "ch-ex-looksam-schedule",
        "looksam_sam_steps",
        "def looksam_sam_steps(k, steps):",
        "check_looksam_schedule",
    ),
    CheckedExercise(
        "ch-ex-sds",
        "sds_select",
        "def sds_select(loss_before, loss_after, gamma):",
        "check_sds_selection",
    ),
    CheckedExercise(
        "ch-ex-ssam-mask",
        "ssam_mask",
        "def ssam_mask(fisher, sparsity):",
        "check_ssam_mask",
    ),
    CheckedExercise(
        "ch-ex-projected",
        "projected_ascent",
        "def projected_ascent(grad, w, rho, k):",
        "check_projected_ascent",
    ),
    # book/bayes.md
    CheckedExercise(
        "bayes-ex-update",
        "bsam_update",
        "def bsam_update(w, m, s, g, g_adv, lr, betas, damping, weight_decay):",
        "check_bsam_precision_update",
    ),
    # book/schedule_free.md
    CheckedExercise(
        "sf-ex-average",
        "schedule_free_average",
        "def schedule_free_average(x, z, lrs, beta1):",
        "check_schedule_free_average",
    ),
    # book/imbsam.md
    CheckedExercise(
        "imb-ex-code",
        "imbsam_direction",
        "def imbsam_direction(grad, w, head, tail, rho, tail_weight=2.0):",
        "check_imbsam_direction",
    ),
    # book/pytorch.md
    CheckedExercise(
        "pt-ex-dominant",
        "largest_eigenvalue",
        "def largest_eigenvalue(hvp, d):",
        "check_largest_eigenvalue",
    ),
    # book/anatomy.md
    CheckedExercise(
        "anat-ex-code",
        "checkpoints",
        "def checkpoints(g, g_adv):",
        "check_checkpoints",
    ),
)


def checked_exercise(key: str) -> CheckedExercise:
    """The checked exercise with this label, grade id or function name.

    A label shared by two functions (``th-ex-stability``) gives the first of them; ask by
    function name or :attr:`CheckedExercise.grade_id` for the other.
    """
    for entry in CHECKED_EXERCISES:
        if key in (entry.label, entry.function, entry.grade_id):
            return entry
    known = ", ".join(sorted({entry.label for entry in CHECKED_EXERCISES}))
    raise KeyError(
        f"no checked exercise {key!r}: give an exercise label ({known}) or a function name"
    )
