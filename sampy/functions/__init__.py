"""Test functions: batched, differentiable loss landscapes with known minima.

>>> from sampy import functions
>>> f = functions.get("rosenbrock")
>>> f.value_and_grad(f.minima)[1]
array([[0., 0.]])
"""

from sampy.functions import catalogue, classic, toys  # noqa: F401  (registers the functions)
from sampy.functions._base import (
    TestFunction,
    autograd_value_and_grad,
    from_callable,
    get,
    names,
    register,
)

__all__ = [
    "TestFunction",
    "autograd_value_and_grad",
    "from_callable",
    "get",
    "names",
    "register",
]
