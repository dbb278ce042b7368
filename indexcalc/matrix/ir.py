"""The matrix expression tree: scalars, vectors and matrices, and their smart constructors.

`rows` and `cols` say whether a dimension is an index (True) or has size one (False): a
scalar is (False, False), a column vector (True, False), a row vector (False, True).
Build nodes through `transpose`, `matmul`, `add` and `hadamard`, which keep the tree in
the form the printers expect: transposes pushed inwards where that reads better, scalar
factors ahead of a chain of matrix products, nested sums and ⊙ flattened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction


class Mat:
    """A node of a matrix expression. Build through the constructors below."""

    __slots__ = ()

    @property
    def shape(self) -> tuple[bool, bool]:
        raise NotImplementedError

    @property
    def is_scalar(self) -> bool:
        return self.shape == (False, False)


@dataclass(frozen=True)
class Leaf(Mat):
    """A named input: a scalar, a column vector or a matrix; a `symmetric` one is its own
    transpose."""

    name: str
    rows: bool
    cols: bool
    symmetric: bool = False

    @property
    def shape(self):
        return self.rows, self.cols


@dataclass(frozen=True)
class Const(Mat):
    """A number; in a sum it is added to every entry."""

    value: Fraction

    @property
    def shape(self):
        return False, False


@dataclass(frozen=True)
class Ones(Mat):
    """The column vector of ones, 𝟏."""

    @property
    def shape(self):
        return True, False


@dataclass(frozen=True)
class Identity(Mat):
    """The identity matrix I (a Kronecker δ over rows and columns)."""

    @property
    def shape(self):
        return True, True


@dataclass(frozen=True)
class Transpose(Mat):
    """Mᵀ; build it with `transpose`, which pushes it inwards where that reads better."""

    operand: Mat

    @property
    def shape(self):
        rows, cols = self.operand.shape
        return cols, rows


@dataclass(frozen=True)
class MatMul(Mat):
    """``coefficient · scalars · chain[0] chain[1] …``: scalar factors, then a chain of
    conformable matrix products."""

    coefficient: Fraction
    scalars: tuple[Mat, ...]
    chain: tuple[Mat, ...]

    @property
    def shape(self):
        if not self.chain:
            return False, False
        return self.chain[0].shape[0], self.chain[-1].shape[1]


@dataclass(frozen=True)
class Add(Mat):
    """A sum; `Const` terms are added to every entry."""

    terms: tuple[Mat, ...]

    @property
    def shape(self):
        return next((t.shape for t in self.terms if not isinstance(t, Const)), (False, False))


@dataclass(frozen=True)
class Hadamard(Mat):
    """The elementwise product of operands of one shape."""

    factors: tuple[Mat, ...]

    @property
    def shape(self):
        return self.factors[0].shape


@dataclass(frozen=True)
class Apply(Mat):
    """An elementwise function; `prime` means its derivative (σ', tanh')."""

    name: str
    operand: Mat
    prime: bool = False

    @property
    def shape(self):
        return self.operand.shape


@dataclass(frozen=True)
class ElementPower(Mat):
    """``base`` raised elementwise to ``exponent`` (a scalar, or of the base's shape)."""

    base: Mat
    exponent: Mat

    @property
    def shape(self):
        return self.base.shape


@dataclass(frozen=True)
class Diag(Mat):
    """The diagonal matrix with a vector on its diagonal, diag(v)."""

    operand: Mat

    @property
    def shape(self):
        return True, True


@dataclass(frozen=True)
class Diagonal(Mat):
    """The diagonal of a square matrix as a column vector, diag(A)."""

    operand: Mat

    @property
    def shape(self):
        return True, False


@dataclass(frozen=True)
class Trace(Mat):
    """tr(M), a scalar."""

    operand: Mat

    @property
    def shape(self):
        return False, False


ZERO = Const(Fraction(0))
ONE = Const(Fraction(1))


def transpose(m: Mat) -> Mat:
    """mᵀ, pushed through products, and through elementwise operations on matrices when
    that leaves fewer transposes: (A B)ᵀ = Bᵀ Aᵀ, (A ⊙ Bᵀ)ᵀ = Aᵀ ⊙ B, but (X − U V)ᵀ stays.
    A vector expression keeps it whole: (A x − b)ᵀ."""
    if m.is_scalar or isinstance(m, (Identity, Diag)) or (isinstance(m, Leaf) and m.symmetric):
        return m
    if isinstance(m, Transpose):
        return m.operand
    if isinstance(m, MatMul):
        return MatMul(m.coefficient, m.scalars, tuple(transpose(f) for f in reversed(m.chain)))
    if m.shape == (True, True) and isinstance(m, (Add, Hadamard, Apply, ElementPower)):
        if isinstance(m, Add):
            pushed = add(transpose(t) for t in m.terms)
        elif isinstance(m, Hadamard):
            pushed = hadamard(transpose(f) for f in m.factors)
        elif isinstance(m, Apply):
            pushed = Apply(m.name, transpose(m.operand), m.prime)
        else:
            pushed = ElementPower(transpose(m.base), transpose(m.exponent))
        if transpose_count(pushed) <= transpose_count(m):
            return pushed
    return Transpose(m)


def matmul(coefficient, factors: Iterable[Mat]) -> Mat:
    """The product of a number and conformable factors; scalar factors commute to the front."""
    coefficient = Fraction(coefficient)
    scalars: list[Mat] = []
    chain: list[Mat] = []
    for factor in factors:
        if isinstance(factor, Const):
            coefficient *= factor.value
        elif isinstance(factor, MatMul):
            coefficient *= factor.coefficient
            scalars.extend(factor.scalars)
            if factor.is_scalar and factor.chain:
                scalars.append(MatMul(Fraction(1), (), factor.chain))
            else:
                chain.extend(factor.chain)
        elif factor.is_scalar:
            scalars.append(factor)
        else:
            chain.append(factor)
    if len(chain) > 1:
        chain = [f for f in chain if not isinstance(f, Identity)] or [Identity()]
    if coefficient == 0:
        return ZERO
    if coefficient == 1 and len(scalars) + len(chain) == 1:
        return (scalars + chain)[0]
    if not scalars and not chain:
        return Const(coefficient)
    return MatMul(coefficient, tuple(scalars), tuple(chain))


def add(terms: Iterable[Mat]) -> Mat:
    """A sum with nested sums flattened; positive terms first, then fewer transposes."""
    flat: list[Mat] = []
    for term in terms:
        flat.extend(term.terms if isinstance(term, Add) else (term,))
    flat = [t for t in flat if t != ZERO]
    if not flat:
        return ZERO
    if len(flat) == 1:
        return flat[0]
    flat.sort(key=lambda t: (is_negative(t), transpose_count(t)))
    return Add(tuple(flat))


def hadamard(factors: Iterable[Mat]) -> Mat:
    """An elementwise product with nested ones flattened and number coefficients pulled out."""
    coefficient = Fraction(1)
    flat: list[Mat] = []
    for factor in factors:
        if isinstance(factor, Hadamard):
            flat.extend(factor.factors)
        elif isinstance(factor, MatMul) and not factor.scalars and len(factor.chain) == 1:
            coefficient *= factor.coefficient
            flat.append(factor.chain[0])
        else:
            flat.append(factor)
    product = flat[0] if len(flat) == 1 else Hadamard(tuple(flat))
    return matmul(coefficient, [product])


def is_negative(m: Mat) -> bool:
    """Whether `m` prints with a leading minus."""
    if isinstance(m, Const):
        return m.value < 0
    return isinstance(m, MatMul) and m.coefficient < 0


def as_divisor(m: Mat) -> tuple[Mat, Fraction] | None:
    """(base, n) for a scalar to a negative power −n, which prints as a divisor; else None."""
    if (
        isinstance(m, ElementPower)
        and m.base.is_scalar
        and isinstance(m.exponent, Const)
        and m.exponent.value < 0
    ):
        return m.base, -m.exponent.value
    return None


def transpose_count(m: Mat) -> int:
    """How many transposes `m` prints with; fewer reads better."""
    if isinstance(m, Transpose):
        return 1 + transpose_count(m.operand)
    count = 0
    for value in vars(m).values():
        if isinstance(value, Mat):
            count += transpose_count(value)
        elif isinstance(value, tuple):
            count += sum(transpose_count(v) for v in value if isinstance(v, Mat))
    return count
