"""Gradient transformations, the tensor layout they need, and the three places they apply.

A *gradient transformation* is a pure function ``t(g) -> g'`` of one gradient, per point:
``g`` has shape ``(..., d)`` and every leading index is an independent point. Gradient
centralization (``sampy.optim.gc``), clipping (``sampy.optim.clipping``) and the division of a
loss-scaled gradient by its scale (below) are transformations. A SAM-type step has three places
to apply one (implementations disagree on which: see ``sampy.optim.gc`` and
``sampy.optim.clipping``), and each place is one small wrapper, so every transformation works
with every variant by composition — optax's combinators — instead of a ``use_gc`` /
``clipnorm`` argument copied into each class:

- **descent** — ``TransformedBase(base, t)``: the direction ``d`` the variant hands to its base
  optimizer becomes ``t(d)``. Works with every variant that takes a base.
- **ascent** — ``TransformedAscent(rule, t)``: the ascent rule sees ``t(g)`` instead of the
  clean gradient (``on="perturbation"``: its ``ε`` becomes ``t(ε)``). Works with the variants
  built from an ascent rule (``variant.ascent``: SAM, GSAM, WSAM, LookSAM, F-SAM, …).
- **oracle** ("both") — ``WithGradientTransform(optimizer, t)``: every gradient the optimizer
  asks for — clean, perturbed, per example, per micro-batch — is transformed before the
  optimizer sees it. Works with every optimizer.

``Partition`` gives the flat coordinates the tensor structure of a model (its list of tensors):
gradient centralization and Keras' per-variable ``clipnorm`` act per tensor, and without a
partition the whole point is one 1-D tensor.

Loss scaling (Keras ``Optimizer.scale_loss``, ``keras/src/optimizers/base_optimizer.py``): training
minimises ``s·L`` so that small gradients survive low precision, and every gradient is divided by
``s`` before the optimizer uses it. ``loss_scaled(s)`` is that round trip as an oracle-stage
transformation: backpropagating ``s·L`` returns ``s·∇L`` (the chain rule starts from ``s`` instead
of 1), then ``/ s``. In float64 it changes at most the last bit (nothing for a power of two); it
fixes *where* the division happens — before accumulation and clipping, as Keras.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sampy._checks import check_int
from sampy.optim.base import BaseOptimizer, Oracle, State
from sampy.optim.hyper import Hyper

Transform = Callable[[np.ndarray], np.ndarray]

LOSS_SCALE_FACTOR = Hyper(
    "loss_scale_factor",
    None,
    "s: gradients are those of s·L divided by s (Keras; None = off)",
    0.0,
    None,
    low_open=True,
)


# -- tensor layout ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """The flat coordinates ``(..., d)`` cut into tensors of the given shapes, in order.

    ``Partition(shapes=((3, 4), (3,)))`` is a 3×4 weight matrix followed by a bias of 3
    (d = 15); each tensor is stored row-major, as ``torch.Tensor.view(-1)`` flattens it, with
    the output dimension first (torch's layout: axis 0 is the output row or filter). A shape
    ``()`` is a scalar.
    """

    shapes: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        shapes = self.shapes
        if isinstance(shapes, (str, bytes)) or not isinstance(shapes, Sequence) or not shapes:
            raise ValueError(f"partition must be a non-empty sequence of shapes, got {shapes!r}")
        clean = []
        for shape in shapes:
            if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
                raise ValueError(f"partition: every shape must be a tuple of ints, got {shape!r}")
            for n in shape:
                check_int(f"partition: every dimension of {shape!r}", n, 1)
            clean.append(tuple(int(n) for n in shape))
        object.__setattr__(self, "shapes", tuple(clean))

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of coordinates of each tensor."""
        return tuple(math.prod(shape) for shape in self.shapes)

    @property
    def size(self) -> int:
        """``d``, the total number of coordinates."""
        return sum(self.sizes)

    @property
    def bounds(self) -> tuple[tuple[int, int], ...]:
        """``(start, stop)`` of each tensor in the flat vector."""
        stops = np.cumsum(self.sizes)
        return tuple(
            (int(stop - size), int(stop)) for stop, size in zip(stops, self.sizes, strict=True)
        )

    def check(self, d: int) -> None:
        """Raise ``ValueError`` naming the partition unless it covers exactly ``d`` coordinates."""
        if d != self.size:
            raise ValueError(
                f"partition covers {self.size} coordinates, but the points have d = {d}"
            )


def as_partition(value: Partition | Sequence[Sequence[int]] | None) -> Partition | None:
    """``None``, a ``Partition``, or a sequence of shapes (made into a ``Partition``)."""
    if value is None or isinstance(value, Partition):
        return value
    return Partition(value)


# -- transformations -------------------------------------------------------------------------


def chain(*transforms: Transform | None) -> Transform | None:
    """Apply the transformations left to right (``None`` entries are skipped).

    Returns ``None`` when there is nothing to apply, so a wrapper can be left out entirely and
    a run without transformations is the plain run, bit for bit.
    """
    steps = tuple(t for t in transforms if t is not None)
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def chained(g: np.ndarray) -> np.ndarray:
        for t in steps:
            g = t(g)
        return g

    return chained


def scale_loss(loss: np.ndarray, loss_scale_factor: float) -> np.ndarray:
    """Keras ``Optimizer.scale_loss``: ``s · L``."""
    return loss_scale_factor * loss


def unscale_gradient(g: np.ndarray, loss_scale_factor: float) -> np.ndarray:
    """The gradient of ``s · L`` back to that of ``L``: ``g / s`` (Keras ``apply``, first thing)."""
    return g / loss_scale_factor


def loss_scaled(loss_scale_factor: float) -> Transform:
    """The oracle-stage round trip ``g ↦ (s · g) / s`` of a loss-scaled backward pass."""

    def round_trip(g: np.ndarray) -> np.ndarray:
        return unscale_gradient(loss_scale_factor * g, loss_scale_factor)

    return round_trip


# -- where a transformation applies ----------------------------------------------------------


class DelegatingWrapper:
    """Attribute reads fall through to the wrapped object (``lr``, ``rho``, ``p``, …).

    WSAM reads ``base.lr`` and SAM reads ``ascent.rho``; a wrapper must not hide them.
    Private names are not delegated, so ``copy.copy`` never recurses.
    """

    _wrapped_name = ""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == self._wrapped_name:
            raise AttributeError(name)
        return getattr(getattr(self, self._wrapped_name), name)


class TransformedBase(DelegatingWrapper):
    """The descent stage: a base optimizer that moves along ``t(d)`` instead of ``d``.

    ``SAM(TransformedBase(SGD(lr=0.1), t), rho=0.05)`` clips or centralizes only the direction
    handed to the base — the final SAM gradient, as the official SAM code clips it
    (google-research/sam @ dae9904c, ``sam_jax/training_utils/flax_training.py``).
    """

    _wrapped_name = "base"

    def __init__(self, base: BaseOptimizer, transform: Transform) -> None:
        self.base = base
        self.transform = transform

    def init(self, x: np.ndarray) -> State:
        """The wrapped base's state."""
        return self.base.init(x)

    def update(self, x: np.ndarray, d: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """``base.update(x, t(d))``."""
        return self.base.update(x, self.transform(d), state)

    def step(self, x: np.ndarray, state: State, oracle: Oracle) -> tuple[np.ndarray, State]:
        """Used alone: one gradient, transformed, one update."""
        return self.update(x, oracle.grad(x), state)

    def __repr__(self) -> str:
        return f"TransformedBase({self.base!r}, {self.transform!r})"


class TransformedAscent(DelegatingWrapper):
    """The ascent stage: an ascent rule that sees ``t(g)`` (or whose ``ε`` becomes ``t(ε)``).

    ``on="gradient"``: ``ε = rule(w, t(g))`` — the rule normalises what it sees, so a global
    rescaling of g (global-norm clipping) does not change ε (davda54/sam #32).
    ``on="perturbation"``: ``ε = t(rule(w, g))`` — the rule normalises with the raw g.
    Only the ascent changes: the descent rule and the base still receive the raw ``g``.
    """

    _wrapped_name = "rule"

    def __init__(self, rule: Any, transform: Transform, on: str = "gradient") -> None:
        if on not in ("gradient", "perturbation"):
            raise ValueError(f"on must be 'gradient' or 'perturbation', got {on!r}")
        self.rule = rule
        self.transform = transform
        self.on = on

    def init(self, x: np.ndarray) -> Any:
        """The wrapped rule's state."""
        return self.rule.init(x)

    def __call__(self, x: np.ndarray, g: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """``(ε, new_state)``."""
        if self.on == "gradient":
            return self.rule(x, self.transform(g), state)
        e, state = self.rule(x, g, state)
        return self.transform(e), state

    def __repr__(self) -> str:
        return f"TransformedAscent({self.rule!r}, {self.transform!r}, on={self.on!r})"


class OracleView:
    """An oracle as an optimizer sees it: its gradients transformed, its counters shared.

    Every call goes to the wrapped oracle, which counts it, so ``calls`` stays exact however
    many views are stacked. Gradients with several rows (per example, per micro-batch) are
    transformed row by row: clipping there is per-example clipping, not clipping of the mean.
    """

    def __init__(self, oracle: Any, transform: Transform | None = None) -> None:
        self.oracle = oracle
        self.transform = transform

    def _t(self, g: np.ndarray) -> np.ndarray:
        return g if self.transform is None else self.transform(g)

    @property
    def calls(self) -> int:
        """Gradient evaluations, counted by the wrapped oracle."""
        return self.oracle.calls

    @property
    def loss_calls(self) -> int:
        """Forward passes, counted by the wrapped oracle."""
        return self.oracle.loss_calls

    @property
    def problem(self) -> Any:
        """The wrapped oracle's sum-of-examples problem (or None)."""
        return self.oracle.problem

    def require_problem(self, what: str) -> Any:
        """The wrapped oracle's problem, or its ``ValueError``."""
        return self.oracle.require_problem(what)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Loss and transformed gradient."""
        value, g = self.oracle(x)
        return value, self._t(g)

    def grad(self, x: np.ndarray, examples: object = None) -> np.ndarray:
        """The transformed gradient (over ``examples`` when given)."""
        return self._t(self.oracle.grad(x, examples))

    def loss(self, x: np.ndarray) -> np.ndarray:
        """The loss, unchanged."""
        return self.oracle.loss(x)

    def per_example_losses(self, x: np.ndarray, examples: object = None) -> np.ndarray:
        """Per-example losses, unchanged."""
        return self.oracle.per_example_losses(x, examples)

    def per_example_grads(self, x: np.ndarray, examples: object = None) -> np.ndarray:
        """Per-example gradients, each transformed."""
        return self._t(self.oracle.per_example_grads(x, examples))

    def batch_grads(self, points: np.ndarray, batches: Sequence[Sequence[int]]) -> np.ndarray:
        """Micro-batch gradients, each transformed."""
        return self._t(self.oracle.batch_grads(points, batches))


# -- finding the stages of a variant ---------------------------------------------------------


def base_of(optimizer: Any) -> BaseOptimizer | None:
    """The base optimizer instance the variant hands its direction to (``variant.base``)."""
    base = getattr(optimizer, "base", None)
    if base is None or isinstance(base, type) or not isinstance(base, BaseOptimizer):
        return None
    return base


def ascent_rule_of(optimizer: Any) -> Any | None:
    """The ascent rule (``init`` + ``__call__(x, g, state)``) the variant takes ε from.

    A method called ``ascent`` (``NotesAdamWMSAMScheduleFree``'s) is not a rule: it has no
    ``init``.
    """
    rule = getattr(optimizer, "ascent", None)
    if rule is None or not callable(rule) or not callable(getattr(rule, "init", None)):
        return None
    return rule


def with_base(optimizer: Any, base: BaseOptimizer) -> Any:
    """A shallow copy of the variant whose ``base`` is ``base`` (the original is untouched)."""
    new = copy.copy(optimizer)
    new.base = base
    return new


def with_ascent(optimizer: Any, rule: Any) -> Any:
    """A shallow copy of the variant whose ascent rule is ``rule``."""
    new = copy.copy(optimizer)
    new.ascent = rule
    return new


def takes_one_gradient(optimizer: Any) -> bool:
    """True when every step asks for exactly one gradient (MSAM, Schedule-Free, SGD, …).

    That gradient is the one the update is made of, so for such an optimizer the oracle stage
    *is* the descent stage.
    """
    return getattr(optimizer, "grad_evals_per_step", None) == 1


def unperturbed_point(optimizer: Any, x: np.ndarray, state: State) -> np.ndarray:
    """The un-perturbed weights behind the stored ``x`` (MSAM-style variants store ``w̃``)."""
    unperturbed = getattr(optimizer, "unperturbed", None)
    return x if unperturbed is None else unperturbed(x, state)


def perturbed_point(optimizer: Any, w: np.ndarray, state: State) -> np.ndarray:
    """The point to store for un-perturbed weights ``w`` (inverse of ``unperturbed_point``).

    Only variants with ``unperturbed`` store a perturbed point; ``NotesAdamWMSAMScheduleFree``'s
    ``move_to_ascent`` without ``unperturbed`` is a temporary move, not a stored offset.
    """
    if getattr(optimizer, "unperturbed", None) is None:
        return w
    return optimizer.move_to_ascent(w, state)


class OptimizerWrapper:
    """Shared by the step-level wrappers: the wrapped optimizer's state is the state."""

    def __init__(self, optimizer: Any) -> None:
        if isinstance(optimizer, type) or not (
            callable(getattr(optimizer, "init", None))
            and callable(getattr(optimizer, "step", None))
        ):
            raise ValueError(
                f"optimizer must be an optimizer instance with init/step "
                f"(e.g. sampy.optim.SAM(SGD(lr=0.1))), got {optimizer!r}"
            )
        self.optimizer = optimizer

    def init(self, x: np.ndarray) -> State:
        """The wrapped optimizer's state."""
        return self.optimizer.init(x)

    @property
    def grad_evals_per_step(self) -> float:
        """Those of the wrapped optimizer."""
        return self.optimizer.grad_evals_per_step

    def unperturbed(self, x: np.ndarray, state: State) -> np.ndarray:
        """The wrapped optimizer's un-perturbed point (``x`` itself for most variants)."""
        return unperturbed_point(self.optimizer, x, state)

    def move_to_ascent(self, w: np.ndarray, state: State) -> np.ndarray:
        """The point to store for un-perturbed ``w`` (``w`` itself for most variants)."""
        return perturbed_point(self.optimizer, w, state)


class WithGradientTransform(OptimizerWrapper):
    """The oracle stage: the optimizer sees ``t(g)`` for every gradient it asks for.

    ``WithGradientTransform(WSAM(SGD(lr=0.1)), t)`` transforms both of WSAM's gradients, as
    the official WSAM clips both with ``max_norm`` (dlrover @ 19e5d790,
    ``atorch/atorch/optimizers/wsam.py``; it clips g just after building ε from it, which for
    global-norm clipping gives the same ε up to eps). Gradient evaluations are counted by the
    caller's oracle, unchanged.
    """

    def __init__(self, optimizer: Any, transform: Transform) -> None:
        super().__init__(optimizer)
        self.transform = transform

    def step(self, x: np.ndarray, state: State, oracle: Oracle) -> tuple[np.ndarray, State]:
        """One step of the wrapped optimizer through a transforming view of ``oracle``."""
        return self.optimizer.step(x, state, OracleView(oracle, self.transform))

    def __repr__(self) -> str:
        return f"WithGradientTransform({self.optimizer!r}, {self.transform!r})"
