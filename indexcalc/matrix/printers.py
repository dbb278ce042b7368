"""Matrix expression trees → text: Unicode, ASCII and LaTeX.

The printers share index notation's precedence table and parenthesising (`printing.py`):
SUM < HADAMARD < NEGATION < PRODUCT < POWER (also ᵀ) < ATOM.
"""

from __future__ import annotations

from fractions import Fraction

from ..printing import (
    ATOM,
    HADAMARD,
    NEGATION,
    POWER,
    PRODUCT,
    SUM,
    AsciiFormat,
    LatexFormat,
    PrecedencePrinter,
)
from .ir import (
    Add,
    Apply,
    Const,
    Diag,
    ElementPower,
    Hadamard,
    Identity,
    Leaf,
    Mat,
    MatMul,
    Ones,
    Trace,
    Transpose,
    as_divisor,
    is_negative,
    matmul,
)


class MatrixPrinter(PrecedencePrinter):
    """Unicode matrix notation: ᵀ, ⊙, −, σ, 𝟏."""

    minus = "−"
    hadamard = " ⊙ "
    times = " "
    transposed = "ᵀ"
    ones = "𝟏"
    identity = "I"
    prime = "'"
    diag = "diag"
    trace = "tr"

    def doprint(self, m: Mat) -> str:
        return self.show(m)[0]

    # -- building blocks that formats override ----------------------------------------------

    def name(self, name: str) -> str:
        return name

    def transpose(self, base: str) -> str:
        return f"{base}{self.transposed}"

    def power(self, base: str, exponent: str, elementwise: bool) -> str:
        return f"{base}^{'⊙' if elementwise else ''}{exponent}"

    # -- nodes --------------------------------------------------------------------------------

    def _print_Leaf(self, m: Leaf):
        return self.name(m.name), ATOM

    def _print_Const(self, m: Const):
        return self.number(m.value)

    def _print_Ones(self, m: Ones):
        return self.ones, ATOM

    def _print_Identity(self, m: Identity):
        return self.identity, ATOM

    def _print_Transpose(self, m: Transpose):
        return self.transpose(self.wrap(m.operand, ATOM)), POWER

    def _print_MatMul(self, m: MatMul):
        """``2 Uᵀ (X − U V)``; a scalar factor s^(−n) divides: ``x / sqrt(xᵀ x)``."""
        coefficient = m.coefficient
        numerators = [self.wrap(s, ATOM) for s in m.scalars if as_divisor(s) is None]
        numerators += [self.wrap(f, POWER) for f in m.chain]
        if not numerators:
            numerators = [self.number(abs(coefficient))[0]]
            coefficient = Fraction(1 if coefficient > 0 else -1)
        text = self.times.join(numerators)
        for base, exponent in filter(None, map(as_divisor, m.scalars)):
            divisor = self.wrap(base, ATOM)
            if exponent != 1:
                divisor = self.power(divisor, self.number(exponent)[0], False)
            text = self.divide(text, divisor)
        if coefficient == 1:
            return text, PRODUCT
        if coefficient == -1:
            return f"{self.minus}{text}", NEGATION
        number, _ = self.number(coefficient)
        return f"{number}{self.times}{text}", NEGATION if coefficient < 0 else PRODUCT

    def _print_Add(self, m: Add):
        terms = []
        for term in m.terms:
            negative = is_negative(term)
            terms.append((negative, self.wrap(matmul(-1, [term]) if negative else term, HADAMARD)))
        return self.signed_terms(terms), SUM

    def _print_Hadamard(self, m: Hadamard):
        return self.hadamard.join(self.wrap(f, POWER) for f in m.factors), HADAMARD

    def _print_Apply(self, m: Apply):
        name = self.function_name(m.name) + (self.prime if m.prime else "")
        return self.call(name, self.show(m.operand)[0]), ATOM

    def _print_ElementPower(self, m: ElementPower):
        base = self.wrap(m.base, ATOM)
        exponent = self.wrap(m.exponent, ATOM)
        return self.power(base, exponent, not m.base.is_scalar), POWER

    def _print_Diag(self, m: Diag):
        """diag(v), and diag(A) too: the operand's shape tells the two apart."""
        return self.call(self.diag, self.show(m.operand)[0]), ATOM

    _print_Diagonal = _print_Diag

    def _print_Trace(self, m: Trace):
        return self.call(self.trace, self.show(m.operand)[0]), ATOM


class AsciiMatrixPrinter(AsciiFormat, MatrixPrinter):
    """Plain ASCII: ^T, .*, -, sigmoid, .^ for elementwise powers, 1 for the ones vector."""

    transposed = "^T"
    ones = "1"

    def power(self, base: str, exponent: str, elementwise: bool) -> str:
        return f"{base}{'.^' if elementwise else '^'}{exponent}"


class LatexMatrixPrinter(LatexFormat, MatrixPrinter):
    r"""LaTeX: ``(A + A^\top) x``."""

    transposed = r"^\top"
    ones = r"\mathbf{1}"
    diag = r"\operatorname{diag}"
    trace = r"\operatorname{tr}"

    def name(self, name: str) -> str:
        return self.roman(name)

    def power(self, base: str, exponent: str, elementwise: bool) -> str:
        mark = "\\odot " if elementwise else ""
        return f"{base}^{{{mark}{exponent}}}"


PRINTERS = {"unicode": MatrixPrinter, "ascii": AsciiMatrixPrinter, "latex": LatexMatrixPrinter}
