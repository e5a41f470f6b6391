"""Self-checking classroom exercises: a checker per coding exercise of the book.

A checker runs a student's function on a few cases, compares it with the reference and, when
it differs, recognises the typical mistakes (each written out as a wrong function) so that the
feedback says *which* mistake, on *which* case — not only "wrong"::

    from sampy.exercises import check_sam_step

    def sam_step(grad, w, lr, rho):
        g = grad(w)
        return w - lr * grad(w + rho * g)        # forgot to normalise g

    print(check_sam_step(sam_step))
    # ✗ sam_step: case 'steep quadratic': ε = ρ g, not ρ g/‖g‖: normalise the gradient ...

Every checker returns a ``Feedback`` (``.passed``, one line per check, printable, shown as
HTML in a notebook) and never raises on a student's error: an exception in the student's code
is a failed check with the exception in the message. Each call works on fresh copies of the
cases, accepts float32 and torch answers within their own precision, and refuses an answer that
calls sampy's implementation (``sampy.optim``, ``sampy.torch``, the checkers' references).
``CHECKED_EXERCISES`` lists the book's checked exercises (label, function, def line, checker).
"""

from sampy.exercises.adaptive import (
    check_asam_perturbation,
    check_dual_direction,
    check_fisher_perturbation,
)
from sampy.exercises.anatomy import check_checkpoints
from sampy.exercises.bayes import check_bsam_precision_update
from sampy.exercises.catalogue import CHECKED_EXERCISES, CheckedExercise, checked_exercise
from sampy.exercises.cheaper import (
    check_looksam_reuse,
    check_looksam_schedule,
    check_projected_ascent,
    check_sds_selection,
    check_ssam_mask,
)
from sampy.exercises.direction import (
    check_gsam_direction,
    check_rwp_direction,
    check_vasso_perturbations,
    check_wsam_direction,
)
from sampy.exercises.eigenvalues import check_largest_eigenvalue
from sampy.exercises.feedback import Case, CheckResult, Feedback, Mistake, compare_with_reference
from sampy.exercises.imbsam import check_imbsam_direction
from sampy.exercises.sam_step import check_sam_step
from sampy.exercises.schedule_free import check_schedule_free_average
from sampy.exercises.theory import (
    check_penalised_worst_case_gradient,
    check_sam_edge,
    check_sam_quadratic_multipliers,
)

__all__ = [
    "CHECKED_EXERCISES",
    "Case",
    "CheckResult",
    "CheckedExercise",
    "Feedback",
    "Mistake",
    "check_asam_perturbation",
    "check_bsam_precision_update",
    "check_checkpoints",
    "check_dual_direction",
    "check_fisher_perturbation",
    "check_gsam_direction",
    "check_imbsam_direction",
    "check_largest_eigenvalue",
    "check_looksam_reuse",
    "check_looksam_schedule",
    "check_penalised_worst_case_gradient",
    "check_projected_ascent",
    "check_rwp_direction",
    "check_sam_edge",
    "check_sam_quadratic_multipliers",
    "check_sam_step",
    "check_schedule_free_average",
    "check_sds_selection",
    "check_ssam_mask",
    "check_vasso_perturbations",
    "check_wsam_direction",
    "checked_exercise",
    "compare_with_reference",
]
