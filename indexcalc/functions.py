"""The built-in elementwise functions: NumPy implementation, derivative and printed names.

Each derivative is written in terms of built-in functions, so a derivative prints as
notation that parses back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .expr import MINUS_ONE, ONE, Expr, Func, Number, Power, Product, Sum


@dataclass(frozen=True)
class Function:
    """One elementwise function: how to compute it, its derivative, how to print it."""

    name: str
    numpy: Callable[[np.ndarray], np.ndarray]
    array_api: Callable  # (xp, u) -> xp array, for other backends
    derivative: Callable[[Expr], Expr] | None  # f'(u) in terms of u; None means f' = 0
    unicode: str
    latex: str
    source: str  # NumPy source for generated code; {} stands for the argument


def _elementwise(*factors: Expr) -> Expr:
    """Factors multiplied elementwise, keeping every index."""
    return Product(factors, frozenset().union(*(f.free for f in factors)))


def _one_minus(u: Expr) -> Expr:
    return Sum((ONE, _elementwise(MINUS_ONE, u)))


def _sigmoid(u):
    return 0.5 * (np.tanh(0.5 * u) + 1)  # stable for large |u|


def _step(u):
    return np.heaviside(u, 0.0)


def _relu(u):
    return np.maximum(u, 0)


def _softplus(u):
    return np.logaddexp(0, u)


def _same(name: str):
    """The array API function of the same name."""
    return lambda xp, u: getattr(xp, name)(u)


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function(
            "exp", np.exp, _same("exp"), lambda u: Func("exp", u), "exp", r"\exp", "np.exp({})"
        ),
        Function(
            "log", np.log, _same("log"), lambda u: Power(u, MINUS_ONE), "log", r"\log", "np.log({})"
        ),
        Function(
            "log1p",
            np.log1p,
            _same("log1p"),
            lambda u: Power(Sum((ONE, u)), MINUS_ONE),
            "log1p",
            r"\operatorname{log1p}",
            "np.log1p({})",
        ),
        Function(
            "sin", np.sin, _same("sin"), lambda u: Func("cos", u), "sin", r"\sin", "np.sin({})"
        ),
        Function(
            "cos",
            np.cos,
            _same("cos"),
            lambda u: _elementwise(MINUS_ONE, Func("sin", u)),
            "cos",
            r"\cos",
            "np.cos({})",
        ),
        Function(
            "tan",
            np.tan,
            _same("tan"),
            lambda u: Sum((ONE, Power(Func("tan", u), Number(2)))),
            "tan",
            r"\tan",
            "np.tan({})",
        ),
        Function(
            "tanh",
            np.tanh,
            _same("tanh"),
            lambda u: _one_minus(Power(Func("tanh", u), Number(2))),
            "tanh",
            r"\tanh",
            "np.tanh({})",
        ),
        Function(
            "sqrt",
            np.sqrt,
            _same("sqrt"),
            lambda u: _elementwise(Number("1/2"), Power(Func("sqrt", u), MINUS_ONE)),
            "sqrt",
            r"\sqrt",
            "np.sqrt({})",
        ),
        Function(
            "abs",
            np.abs,
            _same("abs"),
            lambda u: Func("sign", u),
            "abs",
            r"\operatorname{abs}",
            "np.abs({})",
        ),
        Function(
            "sign", np.sign, _same("sign"), None, "sign", r"\operatorname{sign}", "np.sign({})"
        ),
        Function(
            "step",
            _step,
            lambda xp, u: xp.astype(u > 0, u.dtype),
            None,
            "step",
            r"\operatorname{step}",
            "np.heaviside({}, 0.0)",
        ),
        Function(
            "relu",
            _relu,
            lambda xp, u: xp.where(u > 0, u, xp.zeros_like(u)),
            lambda u: Func("step", u),
            "relu",
            r"\operatorname{relu}",
            "np.maximum({}, 0)",
        ),
        Function(
            "sigmoid",
            _sigmoid,
            lambda xp, u: 0.5 * (xp.tanh(0.5 * u) + 1),
            lambda u: _elementwise(Func("sigmoid", u), _one_minus(Func("sigmoid", u))),
            "σ",
            r"\sigma",
            "0.5 * (np.tanh(0.5 * {}) + 1)",
        ),
        Function(
            "softplus",
            _softplus,
            lambda xp, u: xp.logaddexp(xp.zeros_like(u), u),
            lambda u: Func("sigmoid", u),
            "softplus",
            r"\operatorname{softplus}",
            "np.logaddexp(0, {})",
        ),
    )
}

# Other spellings accepted on input.
ALIASES = {"σ": "sigmoid", "sigma": "sigmoid"}


def lookup(name: str) -> Function | None:
    """The function called `name` (or one of its aliases), or None."""
    return FUNCTIONS.get(ALIASES.get(name, name))
