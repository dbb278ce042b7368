"""Evaluate printed Unicode matrix notation with NumPy, for checking `indexcalc.to_matrix`.

A small recursive-descent reader, independent of the package, so that a test checks the
printed text itself (its parentheses, transposes and precedence), not the tree behind it.
Every value is a 2-d array: a column vector is n×1, a scalar 1×1. Juxtaposition is the
matrix product, or scalar multiplication when either side is 1×1. 𝟏 and I take their size
from what they meet. Nothing is passed to eval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?(?:/\d+)?)"
    r"|(?P<call>[A-Za-zα-ωΑ-Ω][A-Za-z0-9α-ωΑ-Ω]*'?\()"  # a function: no space before "("
    r"|(?P<name>[A-Za-zα-ωΑ-Ω][A-Za-z0-9α-ωΑ-Ω]*)"
    r"|(?P<symbol>[()+−⊙ᵀ^𝟏/]))"
)


def _sigmoid(u):
    return 1 / (1 + np.exp(-u))


FUNCTIONS = {
    "exp": np.exp,
    "log": np.log,
    "log1p": np.log1p,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "tanh": np.tanh,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "sign": np.sign,
    "step": lambda u: (u > 0).astype(float),
    "relu": lambda u: np.maximum(u, 0),
    "σ": _sigmoid,
    "softplus": lambda u: np.log1p(np.exp(u)),
    "σ'": lambda u: _sigmoid(u) * (1 - _sigmoid(u)),
    "tanh'": lambda u: 1 - np.tanh(u) ** 2,
    "tr": lambda m: np.array([[np.trace(m)]]),
    "diag": lambda m: np.diag(m[:, 0]) if m.shape[1] == 1 else np.diag(m)[:, None],
}


@dataclass(frozen=True)
class Sized:
    """A multiple of 𝟏, 𝟏ᵀ or I before it meets an operand that fixes its size."""

    kind: str  # "ones", "ones_t" or "eye"
    scale: float = 1.0

    def transposed(self) -> Sized:
        kind = {"ones": "ones_t", "ones_t": "ones", "eye": "eye"}[self.kind]
        return Sized(kind, self.scale)

    def fit(self, rows: int | None = None, cols: int | None = None) -> np.ndarray:
        if self.kind == "ones":
            return self.scale * np.ones((rows, 1))
        if self.kind == "ones_t":
            return self.scale * np.ones((1, cols))
        return self.scale * np.eye(rows if rows is not None else cols)


def _times(a, b, size: int | None):
    if isinstance(a, Sized) and isinstance(b, Sized):
        a = a.fit(size, size)
    for scalar, sized in ((a, b), (b, a)):
        if isinstance(sized, Sized) and scalar.shape == (1, 1):
            return Sized(sized.kind, sized.scale * scalar[0, 0])
    if isinstance(a, Sized):
        a = a.fit(rows=size if a.kind == "ones" else b.shape[0], cols=b.shape[0])
    if isinstance(b, Sized):
        b = b.fit(rows=a.shape[1], cols=size if b.kind == "ones_t" else a.shape[1])
    if a.shape == (1, 1):
        return a[0, 0] * b
    if b.shape == (1, 1):
        return a * b[0, 0]
    return a @ b


def _plus(a, b, size: int | None):
    if isinstance(a, Sized) and isinstance(b, Sized):
        a = a.fit(size, size)
    if isinstance(a, Sized):
        a = a.fit(*b.shape)
    if isinstance(b, Sized):
        b = b.fit(*a.shape)
    return a + b


class Reader:
    def __init__(self, text: str, arrays: dict[str, np.ndarray], size: int | None = None):
        self.size = size
        self.tokens = []
        position = 0
        text = text.strip()
        while position < len(text):
            match = TOKEN.match(text, position)
            if not match or match.end() == position:
                raise ValueError(f"cannot read {text[position:]!r}")
            self.tokens.append(next(g for g in match.groups() if g is not None))
            position = match.end()
        self.position = 0
        self.arrays = {k: np.atleast_2d(np.asarray(v, float).T).T for k, v in arrays.items()}

    def peek(self):
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected=None):
        token = self.peek()
        if expected is not None and token != expected:
            raise ValueError(f"expected {expected!r}, found {token!r}")
        self.position += 1
        return token

    def read(self):
        value = self.expression()
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()!r}")
        return value

    def expression(self):
        negate = self.peek() == "−"
        if negate:
            self.take()
        value = self.hadamard()
        if negate:
            value = _times(np.array([[-1.0]]), value, self.size)
        while self.peek() in ("+", "−"):
            sign = self.take()
            term = self.hadamard()
            value = _plus(
                value,
                term if sign == "+" else _times(np.array([[-1.0]]), term, self.size),
                self.size,
            )
        return value

    def hadamard(self):
        value = self.product()
        while self.peek() == "⊙":
            self.take()
            value = value * self.product()
        return value

    def product(self):
        value = self.postfix()
        while self.peek() not in (None, "+", "−", "⊙", ")"):
            if self.peek() == "/":
                self.take()
                divisor = self.postfix()
                assert divisor.shape == (1, 1), "only division by a scalar"
                value = _times(1 / divisor, value, self.size)
            else:
                value = _times(value, self.postfix(), self.size)
        return value

    def postfix(self):
        value = self.primary()
        while self.peek() in ("ᵀ", "^"):
            if self.take() == "ᵀ":
                value = value.transposed() if isinstance(value, Sized) else value.T
                continue
            if self.peek() == "⊙":
                self.take()
            exponent = self.primary()
            value = np.power(value, exponent[0, 0] if exponent.shape == (1, 1) else exponent)
        return value

    def primary(self):
        token = self.take()
        if token == "(":
            value = self.expression()
            self.take(")")
            return value
        if token == "𝟏":
            return Sized("ones")
        if token == "I":
            return Sized("eye")
        if token[0].isdigit():
            return np.array([[float(Fraction(token))]])
        if token.endswith("("):
            argument = self.expression()
            self.take(")")
            if isinstance(argument, Sized):  # tr(I): alone, I takes the reader's size
                argument = argument.fit(self.size, self.size)
            return FUNCTIONS[token[:-1]](argument)
        return self.arrays[token]


def evaluate_matrix(
    text: str, arrays: dict[str, np.ndarray], size: int | None = None
) -> np.ndarray:
    """The value of printed matrix notation: a 2-d array (n×1 for a column vector).

    `size` is the size of a 𝟏 or I that stands alone.
    """
    value = Reader(text, arrays, size).read()
    if isinstance(value, Sized):
        return value.fit(size, size)
    return value
