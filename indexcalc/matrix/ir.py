"""The matrix expression tree: scalars, vectors and matrices, and their smart constructors.

`rows` and `cols` say whether a dimension is an index (True) or has size one (False): a
scalar is (False, False), a column vector (True, False), a row vector (False, True).
Build nodes through `transpose`, `matmul`, `add` and `hadamard`, which keep the tree in
the form the printers expect: transposes pushed inwards where that reads better, scalar
factors ahead of a chain of matrix products, nested sums and ⊙ flattened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any, cast

from ..expr import memoised


class Mat:
    """A node of a matrix expression. Build through the constructors below.

    A node's hash, shape and transpose count are found from its children's when it is
    built, and equality compares structure without recursion, so trees as deep as the
    deepest expression cost no Python stack.
    """

    __slots__ = ()

    shape: tuple[bool, bool]  # (rows, cols): whether each dimension is an index
    transposes: int  # how many transposes it prints with
    _hash: int

    def __post_init__(self) -> None:
        values = _values(self)
        children = _children(values)
        own = 1 if isinstance(self, Transpose) else 0
        object.__setattr__(self, "_hash", hash((type(self), *values)))
        object.__setattr__(self, "transposes", own + sum(c.transposes for c in children))
        object.__setattr__(self, "shape", self._shape())

    def _shape(self) -> tuple[bool, bool]:
        raise NotImplementedError

    @property
    def is_scalar(self) -> bool:
        return self.shape == (False, False)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not type(self):
            return NotImplemented
        pairs = [(self, other)]
        while pairs:
            a, b = pairs.pop()
            if a is b:
                continue
            if type(a) is not type(b) or a._hash != b._hash:
                return False
            for x, y in zip(_values(a), _values(b), strict=True):
                if isinstance(x, tuple) and isinstance(y, tuple) and len(x) == len(y):
                    pairs.extend((u, v) for u, v in zip(x, y, strict=True) if isinstance(u, Mat))
                    if any(u != v for u, v in zip(x, y, strict=True) if not isinstance(u, Mat)):
                        return False
                elif isinstance(x, Mat) and isinstance(y, Mat):
                    pairs.append((x, y))
                elif x != y:
                    return False
        return True


def _values(m: Mat) -> tuple:
    """The values of a node's fields, in order."""
    names = _FIELD_NAMES.get(type(m))
    if names is None:
        names = _FIELD_NAMES[type(m)] = tuple(f.name for f in fields(cast(Any, m)))
    return tuple(getattr(m, name) for name in names)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # each node class's fields, found once


def _children(values: tuple) -> list[Mat]:
    """The nodes among field values: fields that are nodes, and nodes in tuple fields."""
    found: list[Mat] = []
    for value in values:
        if isinstance(value, Mat):
            found.append(value)
        elif isinstance(value, tuple):
            found.extend(v for v in value if isinstance(v, Mat))
    return found


@dataclass(frozen=True, eq=False)
class Leaf(Mat):
    """A named input: a scalar, a column vector or a matrix; a `symmetric` one is its own
    transpose."""

    name: str
    rows: bool
    cols: bool
    symmetric: bool = False

    def _shape(self):
        return self.rows, self.cols


@dataclass(frozen=True, eq=False)
class Const(Mat):
    """A number; in a sum it is added to every entry."""

    value: Fraction

    def _shape(self):
        return False, False


@dataclass(frozen=True, eq=False)
class Ones(Mat):
    """The column vector of ones, 𝟏."""

    def _shape(self):
        return True, False


@dataclass(frozen=True, eq=False)
class Identity(Mat):
    """The identity matrix I (a Kronecker δ over rows and columns)."""

    def _shape(self):
        return True, True


@dataclass(frozen=True, eq=False)
class Transpose(Mat):
    """Mᵀ; build it with `transpose`, which pushes it inwards where that reads better."""

    operand: Mat

    def _shape(self):
        rows, cols = self.operand.shape
        return cols, rows


@dataclass(frozen=True, eq=False)
class MatMul(Mat):
    """``coefficient · scalars · chain[0] chain[1] …``: scalar factors, then a chain of
    conformable matrix products."""

    coefficient: Fraction
    scalars: tuple[Mat, ...]
    chain: tuple[Mat, ...]

    def _shape(self):
        if not self.chain:
            return False, False
        return self.chain[0].shape[0], self.chain[-1].shape[1]


@dataclass(frozen=True, eq=False)
class Add(Mat):
    """A sum; `Const` terms are added to every entry."""

    terms: tuple[Mat, ...]

    def _shape(self):
        return next((t.shape for t in self.terms if not isinstance(t, Const)), (False, False))


@dataclass(frozen=True, eq=False)
class Hadamard(Mat):
    """The elementwise product of operands of one shape."""

    factors: tuple[Mat, ...]

    def _shape(self):
        return self.factors[0].shape


@dataclass(frozen=True, eq=False)
class Apply(Mat):
    """An elementwise function; `prime` means its derivative (σ', tanh')."""

    name: str
    operand: Mat
    prime: bool = False

    def _shape(self):
        return self.operand.shape


@dataclass(frozen=True, eq=False)
class ElementPower(Mat):
    """``base`` raised elementwise to ``exponent`` (a scalar, or of the base's shape)."""

    base: Mat
    exponent: Mat

    def _shape(self):
        return self.base.shape


@dataclass(frozen=True, eq=False)
class Diag(Mat):
    """The diagonal matrix with a vector on its diagonal, diag(v)."""

    operand: Mat

    def _shape(self):
        return True, True


@dataclass(frozen=True, eq=False)
class Diagonal(Mat):
    """The diagonal of a square matrix as a column vector, diag(A)."""

    operand: Mat

    def _shape(self):
        return True, False


@dataclass(frozen=True, eq=False)
class Trace(Mat):
    """tr(M), a scalar."""

    operand: Mat

    def _shape(self):
        return False, False


ZERO = Const(Fraction(0))
ONE = Const(Fraction(1))


def transpose(m: Mat) -> Mat:
    """mᵀ, pushed through products, and through elementwise operations on matrices when
    that leaves fewer transposes: (A B)ᵀ = Bᵀ Aᵀ, (A ⊙ Bᵀ)ᵀ = Aᵀ ⊙ B, but (X − U V)ᵀ stays.
    A vector expression keeps it whole: (A x − b)ᵀ."""
    done: dict[Mat, Mat] = {}

    def inner(m: Mat) -> Mat:
        return memoised(done, m, transposed)

    def transposed(m: Mat) -> Mat:
        if m.is_scalar or isinstance(m, (Identity, Diag)) or (isinstance(m, Leaf) and m.symmetric):
            return m
        if isinstance(m, Transpose):
            return m.operand
        if isinstance(m, MatMul):
            return MatMul(m.coefficient, m.scalars, tuple(inner(f) for f in reversed(m.chain)))
        if m.shape == (True, True) and isinstance(m, (Add, Hadamard, Apply, ElementPower)):
            if isinstance(m, Add):
                pushed = add(inner(t) for t in m.terms)
            elif isinstance(m, Hadamard):
                pushed = hadamard(inner(f) for f in m.factors)
            elif isinstance(m, Apply):
                pushed = Apply(m.name, inner(m.operand), m.prime)
            else:
                pushed = ElementPower(inner(m.base), inner(m.exponent))
            if pushed.transposes <= m.transposes:
                return pushed
        return Transpose(m)

    return inner(m)


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
        return _zeros(MatMul(coefficient, (), tuple(chain)).shape)
    if coefficient == 1 and len(scalars) + len(chain) == 1:
        return (scalars + chain)[0]
    if not scalars and not chain:
        return Const(coefficient)
    return MatMul(coefficient, tuple(scalars), tuple(chain))


def _zeros(shape: tuple[bool, bool]) -> Mat:
    """0, or zeros of a vector's or matrix's shape (0 𝟏, 0 𝟏ᵀ, 0 𝟏 𝟏ᵀ): a product that
    vanishes keeps its shape."""
    rows, cols = shape
    ones = ((Ones(),) if rows else ()) + ((Transpose(Ones()),) if cols else ())
    return MatMul(Fraction(0), (), ones) if ones else ZERO


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
    return m.transposes
