"""Central finite differences of index expressions, the numeric reference for derivative tests.

`numeric_derivative` perturbs one element of a variable array at a time (with the
library's `central_difference`, which `indexcalc check` uses too) and evaluates the
expression with `indexcalc.evaluate`, so the reference shares nothing with the symbolic
differentiator but the evaluator. `assert_derivative_matches` compares `indexcalc.diff`
against it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

import indexcalc as ic
from indexcalc.check import central_difference


def numeric_derivative(
    expr,
    variable: str,
    arrays: Mapping[str, object],
    out: str = "",
    *,
    dims: Mapping[str, int] | None = None,
    var: str = "x",
) -> np.ndarray:
    """∂expr/∂variable by central differences, in float64.

    Parameters
    ----------
    expr : Expr or str
        The expression (or program) to differentiate.
    variable : str
        The name of the array to perturb, e.g. ``"x"`` or ``"W"``.
    arrays : the arrays the expression reads, by name.
    out : str
        The axis order of the expression's value, e.g. ``"i"``; ``""`` for a scalar.
    dims, var : passed on to `indexcalc.evaluate`.

    Returns
    -------
    numpy.ndarray
        Shape ``value.shape + arrays[variable].shape``: the expression's axes in the order
        `out` gives, then the variable's axes. This is the order of a derivative evaluated
        with ``out = out + derivative indices``.
    """
    point = {name: np.array(value, dtype=np.float64) for name, value in arrays.items()}

    def value_at(values: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(ic.evaluate(expr, values, out=out or None, dims=dims, var=var))

    return central_difference(value_at, point, variable)


def derivative_indices(wrt: str) -> str:
    """The derivative indices of a variable written like ``"x_k"``, ``"W_gh"`` or ``"w"``."""
    _, _, indices = wrt.partition("_")
    return indices


def assert_derivative_matches(
    expr,
    wrt: str,
    arrays: Mapping[str, object],
    out: str = "",
    *,
    symmetric=(),
    dims: Mapping[str, int] | None = None,
    var: str = "x",
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> ic.Expr:
    """Assert ``indexcalc.diff(expr, wrt)`` equals central differences; return the derivative.

    `out` is the axis order of the expression's value; the derivative is evaluated with
    ``out + derivative indices``.
    """
    derivative = ic.diff(expr, wrt, symmetric=symmetric, var=var)
    variable = wrt.partition("_")[0]
    numeric = numeric_derivative(expr, variable, arrays, out, dims=dims, var=var)
    axes = out + derivative_indices(wrt)
    sizes = {**dict(zip(axes, numeric.shape, strict=True)), **(dims or {})}
    symbolic = ic.evaluate(derivative, arrays, out=axes or None, dims=sizes)
    np.testing.assert_allclose(symbolic, numeric, rtol=rtol, atol=atol)
    return derivative
