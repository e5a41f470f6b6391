"""The ``TestFunction`` container and the registry of named test functions."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import autograd
import numpy as np

Gradient = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class TestFunction:
    """A batched, differentiable loss landscape with known global minimisers.

    ``f(x)`` takes ``x`` of shape ``(..., d)`` and returns shape ``(...)``: every leading index
    is an independent point (a batch of start points moves in one call). ``f`` is written with
    ``autograd.numpy`` so autograd can differentiate it; ``f.grad(x)`` is a hand-written NumPy
    gradient (fast: it is what the optimizers and the playground call), and the tests check it
    against autograd.

    Attributes:
        name: registry name, e.g. ``"rosenbrock"``.
        fn: the loss, ``(..., d) -> (...)``, written with ``autograd.numpy``.
        dim: number of coordinates ``d``.
        domain: plotting box, one ``(low, high)`` pair per coordinate.
        minima: known global minimisers, shape ``(k, d)``.
        fmin: the global minimum value.
        minima_labels: optional names of the minima (e.g. ``("sharp", "flat")``).
        params: the constructor parameters (for display and reproduction).
        description: one line for menus and captions.
    """

    __test__ = False  # a library class, not a pytest test class

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    dim: int
    domain: tuple[tuple[float, float], ...]
    minima: np.ndarray
    fmin: float
    analytic_grad: Gradient | None = None
    minima_labels: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    description: str = ""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.fn(x)

    def grad(self, x: np.ndarray) -> np.ndarray:
        """Gradient at every point of ``x`` (hand-written where available, else autograd)."""
        if self.analytic_grad is not None:
            return self.analytic_grad(np.asarray(x, dtype=float))
        return self.autograd_grad(x)

    def value_and_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Loss and gradient at every point of ``x``: shapes ``(...)`` and ``(..., d)``."""
        x = np.asarray(x, dtype=float)
        if self.analytic_grad is not None:
            return np.asarray(self.fn(x)), self.analytic_grad(x)
        return autograd_value_and_grad(self.fn, x)

    def autograd_grad(self, x: np.ndarray) -> np.ndarray:
        """Gradient by autograd (the oracle the hand-written gradients are tested against)."""
        return autograd_value_and_grad(self.fn, np.asarray(x, dtype=float))[1]

    def hessian(self, x: np.ndarray) -> np.ndarray:
        """Hessian by autograd at one point ``(d,)`` or at every point of ``(..., d)``."""
        x = np.asarray(x, dtype=float)
        single = autograd.hessian(self.fn)
        if x.ndim == 1:
            return np.asarray(single(x))
        flat = x.reshape(-1, self.dim)
        out = np.stack([np.asarray(single(p)) for p in flat])
        return out.reshape(*x.shape[:-1], self.dim, self.dim)


def autograd_value_and_grad(
    fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-point value and gradient of a batched function by autograd.

    The points are independent, so the gradient of the sum over the batch is the per-point
    gradient.
    """
    vjp, value = autograd.make_vjp(fn)(x)
    return np.asarray(value), np.asarray(vjp(np.ones_like(value)))


_REGISTRY: dict[str, Callable[..., TestFunction]] = {}


def register(name: str) -> Callable[[Callable[..., TestFunction]], Callable[..., TestFunction]]:
    """Decorator: register a factory ``(**params) -> TestFunction`` under ``name``."""

    def decorate(factory: Callable[..., TestFunction]) -> Callable[..., TestFunction]:
        if name in _REGISTRY:
            raise ValueError(f"a test function named {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorate


def names() -> list[str]:
    """Names of all registered test functions, sorted."""
    return sorted(_REGISTRY)


def get(name: str, **params: object) -> TestFunction:
    """The registered test function ``name``, built with ``params`` (e.g. ``dim=3``).

    Raises ``ValueError`` for a ``name`` that is not a registered name (a list, None, a
    misspelling) and for a parameter the function does not take, naming the ones it does.
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(
            f"unknown test function name {name!r}; pass one of these strings: {names()}"
        )
    factory = _REGISTRY[name]
    accepted = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = sorted(set(params) - set(accepted))
    if unknown and not takes_any:
        raise ValueError(
            f"test function {name!r} takes no parameter {unknown[0]!r}; its parameters are "
            f"{sorted(accepted) or 'none'}"
        )
    return factory(**params)


def from_callable(
    fn: Callable[[np.ndarray], np.ndarray],
    dim: int,
    *,
    name: str = "custom",
    domain: tuple[tuple[float, float], ...] | None = None,
    minima: np.ndarray | None = None,
    fmin: float = float("nan"),
) -> TestFunction:
    """Wrap any batched ``autograd.numpy`` function; its gradient comes from autograd.

    ``fn`` must treat the last axis of ``x`` as the coordinates (write ``x[..., 0]``, not
    ``x[0]``), so that a batch of points is evaluated in one call.
    """
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    if domain is None:
        domain = ((-2.0, 2.0),) * int(dim)
    mins = np.zeros((0, dim)) if minima is None else np.atleast_2d(np.asarray(minima, float))
    return TestFunction(
        name=name, fn=fn, dim=int(dim), domain=tuple(domain), minima=mins, fmin=float(fmin)
    )
