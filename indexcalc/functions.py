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
    """One elementwise function."""

    name: str
    numpy: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[Expr], Expr] | None  # f'(u) in terms of u; None means f' = 0
    unicode: str
    latex: str


def _elementwise(*factors: Expr) -> Expr:
    """Factors multiplied elementwise, keeping every index."""
    return Product(factors, frozenset().union(*(f.free for f in factors)))


def _one_minus(u: Expr) -> Expr:
    return Sum((ONE, _elementwise(MINUS_ONE, u)))


def _sigmoid(u):
    return 0.5 * (np.tanh(0.5 * u) + 1)


def _step(u):
    return np.heaviside(u, 0.0)


def _relu(u):
    return np.maximum(u, 0)


def _softplus(u):
    return np.logaddexp(0, u)


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("exp", np.exp, lambda u: Func("exp", u), "exp", r"\exp"),
        Function("log", np.log, lambda u: Power(u, MINUS_ONE), "log", r"\log"),
        Function(
            "log1p",
            np.log1p,
            lambda u: Power(Sum((ONE, u)), MINUS_ONE),
            "log1p",
            r"\operatorname{log1p}",
        ),
        Function("sin", np.sin, lambda u: Func("cos", u), "sin", r"\sin"),
        Function("cos", np.cos, lambda u: _elementwise(MINUS_ONE, Func("sin", u)), "cos", r"\cos"),
        Function(
            "tan", np.tan, lambda u: Sum((ONE, Power(Func("tan", u), Number(2)))), "tan", r"\tan"
        ),
        Function(
            "tanh",
            np.tanh,
            lambda u: _one_minus(Power(Func("tanh", u), Number(2))),
            "tanh",
            r"\tanh",
        ),
        Function(
            "sqrt",
            np.sqrt,
            lambda u: _elementwise(Number("1/2"), Power(Func("sqrt", u), MINUS_ONE)),
            "sqrt",
            r"\sqrt",
        ),
        Function("abs", np.abs, lambda u: Func("sign", u), "abs", r"\operatorname{abs}"),
        Function("sign", np.sign, None, "sign", r"\operatorname{sign}"),
        Function("step", _step, None, "step", r"\operatorname{step}"),
        Function("relu", _relu, lambda u: Func("step", u), "relu", r"\operatorname{relu}"),
        Function(
            "sigmoid",
            _sigmoid,
            lambda u: _elementwise(Func("sigmoid", u), _one_minus(Func("sigmoid", u))),
            "σ",
            r"\sigma",
        ),
        Function(
            "softplus",
            _softplus,
            lambda u: Func("sigmoid", u),
            "softplus",
            r"\operatorname{softplus}",
        ),
    )
}

# Other spellings accepted on input.
ALIASES = {"σ": "sigmoid", "sigma": "sigmoid"}


def lookup(name: str) -> Function | None:
    """The function called `name` (or one of its aliases), or None."""
    return FUNCTIONS.get(ALIASES.get(name, name))
