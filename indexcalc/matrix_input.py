"""Matrix notation in, as matrixcalculus.org reads it: ``x'*A*x`` becomes ``x_i A_ij x_j``.

`parse_matrix` reads matrix notation (grammar/matrix.lark) into a tree of matrix nodes,
checking that shapes conform as it builds, writes that tree in index notation and parses
the text with `indexcalc.syntax.parse`. The result is an ordinary expression: it
differentiates, simplifies and evaluates like one written in index notation.
`matrix_to_index` returns the index text itself.

The notation, loosest binding first, as in MATLAB:

- ``+`` and ``-``: a scalar term is added to every entry (index notation broadcasts it);
- ``*``: the matrix product, matrix times vector, ``x'*y`` (a scalar) or a scalar
  multiple; ``.*`` and ``⊙`` multiply elementwise, ``./`` and ``⊘`` divide elementwise,
  ``/`` divides by a scalar;
- unary ``-`` and ``+``;
- ``^``, a power of a scalar, and ``.^``, elementwise; both group to the right;
- ``'``, ``.'`` and ``ᵀ``, the transpose;
- numbers, names, ``(...)``; ``tr(X)``; ``sum(X)``, the sum of all entries; ``norm2(x)``,
  the Euclidean (for a matrix, Frobenius) norm, with ``norm2(x)^2`` written as ``x_i x_i``;
  ``norm1(x)``; the elementwise functions of index notation (``exp``, ``log``, ``sqrt``,
  ``tanh``, ``sigmoid``, ``relu``, ``softplus``, …); ``I``, the identity (δ); ``ones``
  or ``𝟏``, and ``vector(a)`` and ``matrix(a)``, vectors and matrices with every entry
  the same, written as a broadcast number where they meet a vector or matrix.

``det``, ``logdet`` and ``inv`` are `ParseError`s until index notation has them (see
`NOT_YET_SUPPORTED`). Every product is written with ``*``.

Shapes. Every name is a scalar, a column vector or a matrix. ``shapes`` declares them
(``{"A": "matrix", "x": "vector", "lam": "scalar"}``); an undeclared name follows
matrixcalculus.org: a name that starts with a capital letter is a matrix, a single
lowercase letter from h to z (optionally followed by digits: ``x``, ``w1``) is a vector,
and every other name (``a`` to ``g``, ``lam``, ``alpha``, ``λ``) is a scalar. ``I`` is
the identity and ``ones`` (or ``𝟏``) the vector of ones, unless ``shapes`` declares them.

Lengths are symbolic: each axis of a vector or matrix has a length of its own, never 1,
and a scalar is 1×1. So a mismatch between an axis of length 1 and one of a vector or
matrix (``x*A`` for a column vector x, ``x + y'``) is a `ParseError` with a caret under
the operator, while ``A*B'`` conforms for some lengths and is left to evaluation, which
checks the arrays' sizes. A vector of ones takes its length from what it meets; where
nothing fixes it (``ones'*ones``, ``sum(ones)``) that is a `ParseError`, and a result
repeated along it (``ones*x'``, ``Σ_k(δ_ik) x_j``) takes it from ``dims``.

Index letters. The result's rows are ``i`` and its columns ``j`` (a vector's one axis is
``i``), so ``indexcalc.evaluate`` returns the matrix you read; summed letters follow in
the order the text uses them.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cache
from typing import ClassVar, cast

import lark
from lark import Token

from .dispatch import Pass
from .errors import ParseError, Position, TooDeepError, TooLargeError
from .expr import INDEX_POOL, Expr
from .functions import FUNCTIONS, lookup
from .syntax import RESERVED, StatefulTransformer, grammar_text, parse

MAX_NESTING = 200  # deepest matrix expression accepted (the translation recurses)
MAX_TEXT = 200_000  # longest index form written (norm2(...)^2 writes its argument twice)

# Matrix functions that index notation cannot write yet. Each is an error naming it; to
# enable one, remove its entry and add its method to `Builder.MATRIX_FUNCTIONS`.
NOT_YET_SUPPORTED = {
    "det": "the determinant",
    "logdet": "the log-determinant",
    "inv": "the matrix inverse",
}


# -- shapes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """Which axes have a length of their own (True) and which have length 1 (False)."""

    rows: bool
    cols: bool

    @property
    def scalar(self) -> bool:
        return not (self.rows or self.cols)

    def transposed(self) -> Shape:
        return Shape(self.cols, self.rows)

    def describe(self) -> str:
        return _DESCRIPTIONS[self]

    def row_count(self) -> str:
        return ("m" if self.cols else "n") if self.rows else "1"

    def column_count(self) -> str:
        return "n" if self.cols else "1"


SCALAR = Shape(False, False)
VECTOR = Shape(True, False)
MATRIX = Shape(True, True)
KINDS = {"scalar": SCALAR, "vector": VECTOR, "matrix": MATRIX}
_DESCRIPTIONS = {
    SCALAR: "a scalar",
    VECTOR: "a column vector (n×1)",
    Shape(False, True): "a row vector (1×n)",
    MATRIX: "a matrix (m×n)",
}

_NAME = re.compile(r"[^\W\d_][^\W_]*")  # as NAME in the grammars
_VECTOR_NAME = re.compile(r"[h-z][0-9]*")


def default_shape(name: str) -> Shape:
    """matrixcalculus.org's convention: capitals are matrices, h to z vectors, the rest
    (a to g, longer lowercase names, Greek letters) scalars."""
    if name[0].isupper():
        return MATRIX
    if _VECTOR_NAME.fullmatch(name):
        return VECTOR
    return SCALAR


# -- the matrix tree -------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """Where a node is written: its first character's line and column, and its span."""

    position: Position
    start: int
    end: int


@dataclass(frozen=True, eq=False)
class Node:
    """A shape-checked matrix expression; equal only to itself."""

    shape: Shape
    where: Where

    @property
    def children(self) -> tuple[Node, ...]:
        return ()

    @property
    def linear(self) -> bool:
        """Whether this node, written with its row and column index the same letter, is
        its trace by the Einstein convention alone (A_ii, A_ik B_ki, A_ii + δ_ii)."""
        return False


@dataclass(frozen=True, eq=False)
class Name(Node):
    name: str

    @property
    def linear(self) -> bool:
        return True


@dataclass(frozen=True, eq=False)
class Number(Node):
    text: str


@dataclass(frozen=True, eq=False)
class Identity(Node):
    @property
    def linear(self) -> bool:
        return True


@dataclass(frozen=True, eq=False)
class Ones(Node):
    """The column vector of ones, written as a broadcast 1."""


@dataclass(frozen=True, eq=False)
class OneArgument(Node):
    """A node of one argument."""

    arg: Node

    @property
    def children(self) -> tuple[Node, ...]:
        return (self.arg,)


@dataclass(frozen=True, eq=False)
class Transpose(OneArgument):
    """The transpose, ``X'``."""

    @property
    def linear(self) -> bool:
        return self.arg.linear


@dataclass(frozen=True, eq=False)
class Negation(OneArgument):
    """``-X``."""

    @property
    def linear(self) -> bool:
        return self.arg.linear


@dataclass(frozen=True, eq=False)
class Product(Node):
    """Matrix products and scalar multiples, flattened: the factors that are not scalars
    form a chain of matrix products, and the scalars multiply it."""

    factors: tuple[Node, ...]

    @property
    def children(self) -> tuple[Node, ...]:
        return self.factors

    @property
    def linear(self) -> bool:
        return all(f.linear for f in self.factors if not f.shape.scalar)


@dataclass(frozen=True, eq=False)
class Hadamard(Node):
    operands: tuple[Node, ...]

    @property
    def children(self) -> tuple[Node, ...]:
        return self.operands


@dataclass(frozen=True, eq=False)
class Quotient(Node):
    """Elementwise division (``./``, or ``/`` by a scalar)."""

    numerator: Node
    denominator: Node

    @property
    def children(self) -> tuple[Node, ...]:
        return (self.numerator, self.denominator)


@dataclass(frozen=True, eq=False)
class Power(Node):
    """A power of a scalar (``^``) or an elementwise power (``.^``)."""

    base: Node
    exponent: Node

    @property
    def children(self) -> tuple[Node, ...]:
        return (self.base, self.exponent)


@dataclass(frozen=True, eq=False)
class Sum(Node):
    terms: tuple[Node, ...]
    signs: tuple[int, ...]

    @property
    def children(self) -> tuple[Node, ...]:
        return self.terms

    @property
    def linear(self) -> bool:
        # A broadcast scalar adds to every diagonal entry: tr(A + c) is not A_ii + c.
        return all(not t.shape.scalar and t.linear for t in self.terms)


@dataclass(frozen=True, eq=False)
class Apply(OneArgument):
    """An elementwise function."""

    function: str


@dataclass(frozen=True, eq=False)
class Trace(OneArgument):
    """The trace, ``tr(X)``."""


@dataclass(frozen=True, eq=False)
class EntrySum(OneArgument):
    """The sum of all entries, ``sum(X)``."""


@dataclass(frozen=True, eq=False)
class Norm2(OneArgument):
    """The Euclidean norm of a vector, the Frobenius norm of a matrix."""


def _check_nesting(root: Node) -> None:
    """Raise `TooDeepError` for a tree deeper than the translation may recurse."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise TooDeepError(f"matrix expression is nested more than {MAX_NESTING} levels deep")
        stack.extend((child, depth + 1) for child in node.children)


# -- text → matrix tree ----------------------------------------------------------------


@dataclass
class BuildState:
    source: str
    shapes: dict[str, Shape]


def _where(token: Token) -> Where:
    position = Position(token.line or 1, token.column or 1)
    return Where(position, token.start_pos or 0, token.end_pos or 0)


def _span(first: Node | Token, last: Node | Token) -> Where:
    start = first.where if isinstance(first, Node) else _where(first)
    end = last.where.end if isinstance(last, Node) else (last.end_pos or 0)
    return Where(start.position, start.start, end)


def _conforming(left: Shape, right: Shape) -> Shape | None:
    """The shape of an elementwise combination: equal shapes, or a scalar broadcast."""
    if left == right or right.scalar:
        return left
    if left.scalar:
        return right
    return None


class Builder(StatefulTransformer[BuildState]):
    """One method per alias in grammar/matrix.lark; each checks shapes as it builds."""

    # Functions of whole matrices and vectors, by the method that builds each.
    MATRIX_FUNCTIONS: ClassVar[dict[str, str]] = {
        "tr": "trace",
        "sum": "entry_sum",
        "norm1": "norm1",
        "norm2": "norm2",
        "vector": "vector",
        "matrix": "matrix",
    }

    def error(self, message: str, position: Position) -> ParseError:
        return ParseError(message, self.state.source, position)

    def snippet(self, node: Node) -> str:
        text = " ".join(self.state.source[node.where.start : node.where.end].split())
        return text if len(text) <= 24 else f"{text[:12]}…{text[-8:]}"

    def mismatch(self, op: Token, left: Node, right: Node, rule: str) -> ParseError:
        return self.error(
            f"dimension mismatch in '{op}': {self.snippet(left)} is {left.shape.describe()} "
            f"and {self.snippet(right)} is {right.shape.describe()}; {rule}",
            _where(op).position,
        )

    # -- sums, products, quotients, powers ----------------------------------------------

    def start(self, items):
        return items[0]

    def add(self, items):
        left, op, right = items
        return self.combined(left, op, right, 1)

    def sub(self, items):
        left, op, right = items
        return self.combined(left, op, right, -1)

    def combined(self, left: Node, op: Token, right: Node, sign: int) -> Node:
        """left + right, or left - right for a negative sign."""
        shape = _conforming(left.shape, right.shape)
        if shape is None:
            rule = "the terms of a sum must have the same shape, or one must be a scalar"
            raise self.mismatch(op, left, right, rule)
        if isinstance(left, Sum):
            terms, signs = left.terms, left.signs
        elif isinstance(left, Negation):
            terms, signs = (left.arg,), (-1,)
        else:
            terms, signs = (left,), (1,)
        if isinstance(right, Negation):
            right, sign = right.arg, -sign
        return Sum(shape, _span(left, right), (*terms, right), (*signs, sign))

    def times(self, items):
        left, op, right = items
        if left.shape.scalar or right.shape.scalar:
            shape = right.shape if left.shape.scalar else left.shape
        elif left.shape.cols != right.shape.rows:
            raise self.error(self.product_mismatch(left, right), _where(op).position)
        else:
            shape = Shape(left.shape.rows, right.shape.cols)
        negative, factors = False, list[Node]()
        for side in (left, right):
            if isinstance(side, Negation):  # -a*b is -(a*b): one product, one sign
                negative, side = not negative, side.arg
            # x'*y is a scalar factor of its own: only a product's chain continues.
            chain = isinstance(side, Product) and not (
                side.shape.scalar and any(not f.shape.scalar for f in side.factors)
            )
            factors.extend(side.factors if chain else (side,))
        product = Product(shape, _span(left, right), tuple(factors))
        return Negation(shape, product.where, product) if negative else product

    def product_mismatch(self, left: Node, right: Node) -> str:
        columns, rows = left.shape.column_count(), right.shape.row_count()
        message = (
            f"dimension mismatch in '*': {self.snippet(left)} is {left.shape.describe()} and "
            f"{self.snippet(right)} is {right.shape.describe()}; the left side's {columns} "
            f"column{'s' * (columns != '1')} cannot meet the right side's {rows} "
            f"row{'s' * (rows != '1')}"
        )
        if not (isinstance(left, Name) and isinstance(right, Name)):
            return message
        x, y = left.name, right.name
        if left.shape == VECTOR and right.shape == VECTOR:
            message += f" ({x}'*{y} is the inner product, {x}*{y}' the outer one)"
        elif left.shape == VECTOR and right.shape == MATRIX:
            message += f" (for {x}ᵀ{y} write {x}'*{y})"
        return message

    def hadamard(self, items):
        left, op, right = items
        shape = self.elementwise_shape(left, op, right)
        operands = [
            *(left.operands if isinstance(left, Hadamard) else (left,)),
            *(right.operands if isinstance(right, Hadamard) else (right,)),
        ]
        return Hadamard(shape, _span(left, right), tuple(operands))

    def elementwise_shape(self, left: Node, op: Token, right: Node) -> Shape:
        shape = _conforming(left.shape, right.shape)
        if shape is None:
            rule = "an elementwise operation needs operands of the same shape, or a scalar"
            raise self.mismatch(op, left, right, rule)
        return shape

    def divide(self, items):
        left, op, right = items
        if not right.shape.scalar:
            raise self.error(
                f"'/' divides by a scalar, but {self.snippet(right)} is "
                f"{right.shape.describe()}: for elementwise division write ./ (the inverse "
                f"of a matrix is not supported yet)",
                _where(op).position,
            )
        return self.quotient(left, right, left.shape)

    def elementwise_divide(self, items):
        left, op, right = items
        return self.quotient(left, right, self.elementwise_shape(left, op, right))

    def quotient(self, numerator: Node, denominator: Node, shape: Shape) -> Node:
        negative = False
        if isinstance(numerator, Negation):
            negative, numerator = True, numerator.arg
        if isinstance(denominator, Negation):
            negative, denominator = not negative, denominator.arg
        quotient = Quotient(shape, _span(numerator, denominator), numerator, denominator)
        return Negation(shape, quotient.where, quotient) if negative else quotient

    def power(self, items):
        base, op, exponent = items
        if not base.shape.scalar:
            hint = (
                f"; for the transpose write {self.snippet(base)}'"
                if isinstance(exponent, Name) and exponent.name == "T"
                else ""
            )
            raise self.error(
                f"'^' is a power of a scalar, but {self.snippet(base)} is "
                f"{base.shape.describe()}: for the elementwise power write .^{hint}",
                _where(op).position,
            )
        if not exponent.shape.scalar:
            raise self.error(
                f"the exponent of '^' must be a scalar, but {self.snippet(exponent)} is "
                f"{exponent.shape.describe()}: for an elementwise power write .^",
                _where(op).position,
            )
        return Power(SCALAR, _span(base, exponent), base, exponent)

    def elementwise_power(self, items):
        base, op, exponent = items
        shape = self.elementwise_shape(base, op, exponent)
        return Power(shape, _span(base, exponent), base, exponent)

    def neg(self, items):
        op, arg = items
        if isinstance(arg, Negation):
            return replace(arg.arg, where=_span(op, arg))
        return Negation(arg.shape, _span(op, arg), arg)

    def pos(self, items):
        return items[1]

    def transpose(self, items):
        arg, op = items
        if isinstance(arg, Transpose):
            return replace(arg.arg, where=_span(arg, op))
        return Transpose(arg.shape.transposed(), _span(arg, op), arg)

    # -- atoms -------------------------------------------------------------------------

    def number(self, items):
        (token,) = items
        return Number(SCALAR, _where(token), str(token))

    def ones(self, items):
        (token,) = items
        return Ones(VECTOR, _where(token))

    def group(self, items):
        left, inner, right = items
        return replace(inner, where=_span(left, right))

    def name(self, items):
        (token,) = items
        name, where = self.identifier(token), _where(token)
        if name in RESERVED or name in self.MATRIX_FUNCTIONS or name in NOT_YET_SUPPORTED:
            called = (
                bool(lookup(name)) or name in self.MATRIX_FUNCTIONS or name in NOT_YET_SUPPORTED
            )
            reason = (
                f"is a function: write {name}(...)"
                if called
                else "is reserved in index notation and cannot name a matrix, vector or scalar"
            )
            raise self.error(f"'{name}' {reason}", where.position)
        shape = self.state.shapes.get(name)
        if shape is None:
            if name == "I":
                return Identity(MATRIX, where)
            if name == "ones":
                return Ones(VECTOR, where)
            shape = default_shape(name)
        return Name(shape, where, name)

    def call(self, items):
        token, _, arg, right = items
        name, where = self.identifier(token), _span(token, right)
        position = _where(token).position
        if name in NOT_YET_SUPPORTED:
            raise self.error(
                f"{name}(...), {NOT_YET_SUPPORTED[name]}, is not supported yet: index "
                f"notation cannot write it",
                position,
            )
        method = self.MATRIX_FUNCTIONS.get(name)
        if method is not None:
            return getattr(self, method)(arg, where, position)
        function = lookup(name)
        if function is None:
            known = ", ".join(sorted({*FUNCTIONS, *self.MATRIX_FUNCTIONS}))
            raise self.error(
                f"unknown function '{name}'; the known functions are {known}", position
            )
        return Apply(arg.shape, where, arg, function.name)

    def trace(self, arg: Node, where: Where, position: Position) -> Node:
        if arg.shape not in (MATRIX, SCALAR):
            raise self.error(
                f"tr takes a square matrix, but {self.snippet(arg)} is {arg.shape.describe()}",
                position,
            )
        return Trace(SCALAR, where, arg)

    def entry_sum(self, arg: Node, where: Where, position: Position) -> Node:
        return EntrySum(SCALAR, where, arg)

    def norm1(self, arg: Node, where: Where, position: Position) -> Node:
        return EntrySum(SCALAR, where, Apply(arg.shape, where, arg, "abs"))

    def norm2(self, arg: Node, where: Where, position: Position) -> Node:
        return Norm2(SCALAR, where, arg)

    def vector(self, arg: Node, where: Where, position: Position) -> Node:
        """vector(a): the column vector with every entry a."""
        self.need_scalar("vector", arg, position)
        return Product(VECTOR, where, (arg, Ones(VECTOR, where)))

    def matrix(self, arg: Node, where: Where, position: Position) -> Node:
        """matrix(a): the matrix with every entry a."""
        self.need_scalar("matrix", arg, position)
        ones = Ones(VECTOR, where)
        return Product(MATRIX, where, (arg, ones, Transpose(ones.shape.transposed(), where, ones)))

    def need_scalar(self, function: str, arg: Node, position: Position) -> None:
        if not arg.shape.scalar:
            raise self.error(
                f"{function}(a) repeats a scalar a, but {self.snippet(arg)} is "
                f"{arg.shape.describe()}",
                position,
            )

    def identifier(self, token: Token) -> str:
        """A name as Python (and index notation) reads it: NFKC-normalised."""
        text = str(token)
        name = unicodedata.normalize("NFKC", text)
        if not _NAME.fullmatch(name):
            raise self.error(
                f"'{text}' reads as '{name}' (Unicode NFKC normalisation, as Python reads "
                f"names), which is not a name: a letter followed by letters and digits",
                _where(token).position,
            )
        return name


# -- matrix tree → index text ----------------------------------------------------------

# Binding strength of what a piece of index text is, loosest first, as in index
# notation's precedence table: sums, ⊙, a leading minus, juxtaposition (and /), powers.
SUM_LEVEL, HADAMARD_LEVEL, NEG_LEVEL, CHAIN_LEVEL, POWER_LEVEL, ATOM_LEVEL = range(1, 7)


def _more_letters() -> tuple[str, ...]:
    """Letters for very long products, after the usual ones: Latin capitals, then other
    Latin, Greek and Cyrillic letters that Unicode normalisation leaves as they are."""
    blocks = [range(0x41, 0x5B), range(0xC0, 0x180), range(0x391, 0x3AA), range(0x410, 0x450)]
    candidates = (chr(code) for block in blocks for code in block)
    return tuple(
        c
        for c in candidates
        if c.isalpha() and unicodedata.normalize("NFKC", c) == c and c not in "ΣΔ"
    )


# Index letters, in the order they are handed out.
LETTERS = INDEX_POOL + _more_letters()

Mark = tuple[int, Position]  # an offset in the index text, and where it came from


@dataclass(frozen=True)
class Written:
    """A node written in index notation.

    `held` are the letters free in the text: of the node's row and column letters, the
    ones a vector of ones does not stand for (its entries do not vary along them). `used`
    are all the letters the text contains. `marks` map offsets in the text back to the
    matrix text, for errors raised by the index parser.
    """

    text: str
    marks: tuple[Mark, ...]
    level: int
    held: frozenset[str] = frozenset()
    used: frozenset[str] = frozenset()
    quotient: bool = False  # starts with a quotient, so cannot follow another factor
    one: bool = False  # the broadcast 1 of a vector of ones


def _joined(parts: Iterable[str | Written]) -> tuple[str, tuple[Mark, ...]]:
    texts: list[str] = []
    marks: list[Mark] = []
    offset = 0
    for part in parts:
        if isinstance(part, Written):
            marks.extend((offset + at, where) for at, where in part.marks)
            part = part.text
        texts.append(part)
        offset += len(part)
    if offset > MAX_TEXT:
        raise TooLargeError(
            f"the index form of this matrix expression is longer than {MAX_TEXT:,} characters"
        )
    return "".join(texts), tuple(marks)


def _operand(written: Written, level: int) -> str | Written:
    """`written` as an operand that must bind at least as tightly as `level`."""
    return written if written.level >= level else _parenthesised(written)


def _parenthesised(written: Written) -> Written:
    text, marks = _joined(["(", written, ")"])
    return replace(written, text=text, marks=marks, level=ATOM_LEVEL, quotient=False)


def _once(letter_sets: Iterable[frozenset[str]]) -> frozenset[str]:
    counts = Counter(letter for letters in letter_sets for letter in letters)
    return frozenset(letter for letter, count in counts.items() if count == 1)


def _even_power(node: Node) -> int | None:
    """The exponent as a whole even number, if it is one."""
    if isinstance(node, Number):
        value = Fraction(node.text)
        if value > 0 and value.denominator == 1 and value.numerator % 2 == 0:
            return value.numerator
    return None


class Writer(Pass):
    """Writes a matrix tree in index notation, one rule per node kind.

    A rule gets the letters of the node's row and column axes (None for an axis of
    length 1) and hands out fresh letters for the axes its products sum over.
    """

    prefix = "_write_"
    description = "writing matrix notation in index notation"

    def __init__(self, source: str):
        self.source = source
        self._next = 0  # LETTERS[_next] is the next letter handed out

    def letter(self) -> str:
        if self._next == len(LETTERS):
            raise TooLargeError(
                f"this matrix expression needs more than {len(LETTERS)} index letters"
            )
        self._next += 1
        return LETTERS[self._next - 1]

    def error(self, message: str, node: Node) -> ParseError:
        return ParseError(message, self.source, node.where.position)

    def unsized_ones(self, node: Node) -> ParseError:
        return self.error(
            "this needs the length of a vector of ones (𝟏ᵀ𝟏), and no vector or matrix "
            "fixes it here",
            node,
        )

    def top(self, node: Node) -> Written:
        """The whole expression: rows i, columns j."""
        row = self.letter() if node.shape.rows else None
        col = self.letter() if node.shape.cols else None
        written = self.write(node, row, col)
        return self.held_along(written, [a for a in (row, col) if a and a not in written.held])

    def write(self, node: Node, row: str | None, col: str | None) -> Written:
        written = self.dispatch(node, row, col)
        if written.marks and written.marks[0][0] == 0:
            return written
        return replace(written, marks=((0, node.where.position), *written.marks))

    def write_as(self, node: Node, row: str | None, col: str | None) -> Written:
        """`node` where its value stands in a node with these letters: a scalar, or a
        vector or matrix of the same shape, broadcast along the axes it lacks."""
        return self.write(node, row if node.shape.rows else None, col if node.shape.cols else None)

    # -- pieces shared by the rules ------------------------------------------------------

    def separately(self, nodes: Iterable[Node], row: str | None, col: str | None) -> list[Written]:
        """The operands of +, -, ⊙, / or ^, each with these letters for its axes and the
        same fresh letters to sum over: index notation reads such operands one by one, so
        `A_ij x_j + B_ij y_j` sums j twice without a clash."""
        start = end = self._next
        written = []
        for node in nodes:
            self._next = start
            written.append(self.write_as(node, row, col))
            end = max(end, self._next)
        self._next = end
        return written

    def juxtaposed(self, factors: list[Written]) -> Written:
        """An Einstein product of the factors: a letter in two of them is summed."""
        if len(factors) == 1:
            return factors[0]
        parts: list[str | Written] = []
        for n, factor in enumerate(factors):
            if n:
                parts.append(" ")
            needs_parentheses = factor.level < CHAIN_LEVEL or (n and factor.quotient)
            parts.append(_parenthesised(factor) if needs_parentheses else factor)
        text, marks = _joined(parts)
        return Written(
            text,
            marks,
            CHAIN_LEVEL,
            held=_once(f.held for f in factors),
            used=frozenset().union(*(f.used for f in factors)),
            quotient=factors[0].quotient,
        )

    def summed(self, written: Written, letters: list[str]) -> Written:
        """Σ over `letters` of `written`."""
        sub = letters[0] if len(letters) == 1 else "{" + "".join(letters) + "}"
        text, marks = _joined([f"Σ_{sub}(", written, ")"])
        return replace(
            written, text=text, marks=marks, level=ATOM_LEVEL, held=written.held - set(letters)
        )

    def held_along(self, written: Written, letters: list[str]) -> Written:
        """`written` repeated along `letters`, by ones written as Σ_m(δ_im)."""
        ones = []
        for letter in letters:
            m = self.letter()
            ones.append(
                Written(
                    f"Σ_{m}(δ_{letter}{m})",
                    (),
                    ATOM_LEVEL,
                    held=frozenset((letter,)),
                    used=frozenset((letter, m)),
                )
            )
        return self.juxtaposed([written, *ones]) if ones else written

    def squared(self, arg: Node) -> Written:
        """The sum of the squares of `arg`'s entries: x_i x_i, X_ij X_ij."""
        row = self.letter() if arg.shape.rows else None
        col = self.letter() if arg.shape.cols else None
        copies = [self.write(arg, row, col) for _ in range(2)]  # fresh summed letters each
        if any(a not in copies[0].held for a in (row, col) if a):
            raise self.unsized_ones(arg)
        return self.juxtaposed(copies)

    # -- one rule per node kind ------------------------------------------------------------

    def _write_Name(self, node: Name, row: str | None, col: str | None) -> Written:
        letters = [a for a in (row, col) if a]
        text = f"{node.name}_{''.join(letters)}" if letters else node.name
        held = frozenset(a for a in letters if letters.count(a) == 1)  # A_ii is summed
        return Written(text, (), ATOM_LEVEL, held=held, used=frozenset(letters))

    def _write_Number(self, node: Number, row: str | None, col: str | None) -> Written:
        return Written(node.text, (), ATOM_LEVEL)

    def _write_Identity(self, node: Identity, row: str | None, col: str | None) -> Written:
        assert row is not None and col is not None
        held = frozenset() if row == col else frozenset((row, col))
        return Written(f"δ_{row}{col}", (), ATOM_LEVEL, held=held, used=frozenset((row, col)))

    def _write_Ones(self, node: Ones, row: str | None, col: str | None) -> Written:
        return Written("1", (), ATOM_LEVEL, one=True)

    def _write_Transpose(self, node: Transpose, row: str | None, col: str | None) -> Written:
        return self.write(node.arg, col, row)

    def _write_Negation(self, node: Negation, row: str | None, col: str | None) -> Written:
        arg = self.write(node.arg, row, col)
        text, marks = _joined(["-", _operand(arg, CHAIN_LEVEL)])
        return replace(arg, text=text, marks=marks, level=NEG_LEVEL, quotient=False, one=False)

    def _write_Product(self, node: Product, row: str | None, col: str | None) -> Written:
        last = max((n for n, f in enumerate(node.factors) if not f.shape.scalar), default=-1)
        axes: list[tuple[str | None, str | None]] = []
        between: list[tuple[str, Node]] = []  # each summed letter and the factor before it
        left = row
        for n, factor in enumerate(node.factors):
            if factor.shape.scalar:
                axes.append((None, None))
                continue
            right = col if n == last else (self.letter() if factor.shape.cols else None)
            if n != last and right is not None:
                between.append((right, factor))
            axes.append((left, right))
            left = right
        written = [self.write(f, *a) for f, a in zip(node.factors, axes, strict=True)]
        # A letter one factor lacks meets a vector of ones there: the other factor is
        # summed along it alone (A 𝟏 is Σ_j(A_ij)).
        alone: dict[int, list[str]] = {}
        for letter, factor in between:
            holders = [n for n, w in enumerate(written) if letter in w.held]
            if not holders:
                raise self.unsized_ones(factor)
            if len(holders) == 1:
                alone.setdefault(holders[0], []).append(letter)
        for n, letters in alone.items():
            written[n] = self.summed(written[n], letters)
        numbers = [w for f, w in zip(node.factors, written, strict=True) if isinstance(f, Number)]
        others = [
            w for f, w in zip(node.factors, written, strict=True) if not isinstance(f, Number)
        ]
        factors = [w for w in numbers + others if not w.one] or written[:1]
        return self.juxtaposed(factors)

    def _write_Hadamard(self, node: Hadamard, row: str | None, col: str | None) -> Written:
        written = self.separately(node.operands, row, col)
        operands = [w for w in written if not w.one] or written[:1]
        if len(operands) == 1:
            return operands[0]
        parts: list[str | Written] = []
        for n, operand in enumerate(operands):
            parts.extend([" ⊙ "] if n else [])
            parts.append(_operand(operand, NEG_LEVEL))
        text, marks = _joined(parts)
        return Written(
            text,
            marks,
            HADAMARD_LEVEL,
            held=frozenset().union(*(w.held for w in operands)),
            used=frozenset().union(*(w.used for w in operands)),
        )

    def _write_Quotient(self, node: Quotient, row: str | None, col: str | None) -> Written:
        numerator, denominator = self.separately((node.numerator, node.denominator), row, col)
        if not (denominator.held <= numerator.held or numerator.held <= denominator.held):
            numerator = self.held_along(numerator, sorted(denominator.held - numerator.held))
        text, marks = _joined(
            [_operand(numerator, CHAIN_LEVEL), " / ", _operand(denominator, POWER_LEVEL)]
        )
        return Written(
            text,
            marks,
            CHAIN_LEVEL,
            held=numerator.held | denominator.held,
            used=numerator.used | denominator.used,
            quotient=True,
        )

    def _write_Power(self, node: Power, row: str | None, col: str | None) -> Written:
        even = _even_power(node.exponent)
        if isinstance(node.base, Norm2) and even is not None:
            squares = self.squared(node.base.arg)  # ‖v‖² is vᵀv, with no square root
            if even == 2:
                return squares
            text, marks = _joined([_parenthesised(squares), f"^{even // 2}"])
            return replace(squares, text=text, marks=marks, level=POWER_LEVEL, quotient=False)
        base, exponent = self.separately((node.base, node.exponent), row, col)
        if not exponent.held <= base.held:
            base = self.held_along(base, sorted(exponent.held - base.held))
        text, marks = _joined([_operand(base, ATOM_LEVEL), "^", _operand(exponent, POWER_LEVEL)])
        return Written(
            text,
            marks,
            POWER_LEVEL,
            held=base.held | exponent.held,
            used=base.used | exponent.used,
        )

    def _write_Sum(self, node: Sum, row: str | None, col: str | None) -> Written:
        terms = self.separately(node.terms, row, col)
        held = frozenset().union(*(w.held for w in terms))
        if all(w.held != held for w in terms):  # x 𝟏ᵀ + 𝟏 yᵀ: some term must hold them all
            terms[0] = self.held_along(terms[0], sorted(held - terms[0].held))
        parts: list[str | Written] = []
        for n, (sign, term) in enumerate(zip(node.signs, terms, strict=True)):
            if n:
                parts.extend([" + " if sign > 0 else " - ", _operand(term, HADAMARD_LEVEL)])
            else:
                parts.extend(["-", _operand(term, CHAIN_LEVEL)] if sign < 0 else [term])
        text, marks = _joined(parts)
        return Written(
            text,
            marks,
            SUM_LEVEL,
            held=frozenset().union(*(w.held for w in terms)),
            used=frozenset().union(*(w.used for w in terms)),
        )

    def _write_Apply(self, node: Apply, row: str | None, col: str | None) -> Written:
        arg = self.write(node.arg, row, col)
        text, marks = _joined([f"{node.function}(", arg, ")"])
        return replace(arg, text=text, marks=marks, level=ATOM_LEVEL, quotient=False, one=False)

    def _write_Trace(self, node: Trace, row: str | None, col: str | None) -> Written:
        if node.arg.shape.scalar:
            return self.write(node.arg, None, None)
        i = self.letter()
        diagonal = self.write(node.arg, i, i)
        if i not in diagonal.used:
            raise self.unsized_ones(node)
        if node.arg.linear:
            return diagonal  # A_ii, X_ji B_jk X_ki: the Einstein convention sums i
        # Inside Σ_i(...) the letter i is held, so A_ii ⊙ B_ii and exp(A_ii) are entries
        # of the diagonal, not traces.
        return self.summed(diagonal, [i])

    def _write_EntrySum(self, node: EntrySum, row: str | None, col: str | None) -> Written:
        arg = node.arg
        letters = [self.letter() for axis in (arg.shape.rows, arg.shape.cols) if axis]
        if not letters:
            return self.write(arg, None, None)
        axes = iter(letters)
        entries = self.write(
            arg, next(axes) if arg.shape.rows else None, next(axes) if arg.shape.cols else None
        )
        if any(a not in entries.held for a in letters):
            raise self.unsized_ones(node)
        return self.summed(entries, letters)

    def _write_Norm2(self, node: Norm2, row: str | None, col: str | None) -> Written:
        text, marks = _joined(["sqrt(", self.squared(node.arg), ")"])
        return Written(text, marks, ATOM_LEVEL)


# -- the public functions --------------------------------------------------------------


@cache
def _parser() -> tuple[lark.Lark, Builder]:
    builder = Builder()
    parser = lark.Lark(
        grammar_text("matrix.lark"), parser="lalr", transformer=builder, maybe_placeholders=False
    )
    return parser, builder


_parse_lock = threading.Lock()


def _shapes(shapes: Mapping[str, str] | None) -> dict[str, Shape]:
    if shapes is None:
        return {}
    if not isinstance(shapes, Mapping):
        raise ParseError(
            f"shapes must map names to 'matrix', 'vector' or 'scalar', not {type(shapes).__name__}"
        )
    declared = {}
    for name, kind in shapes.items():
        normal = unicodedata.normalize("NFKC", name) if isinstance(name, str) else ""
        if not _NAME.fullmatch(normal):
            raise ParseError(f"shapes: {name!r} is not a name")
        if kind not in KINDS:
            raise ParseError(
                f"shapes: {name!r} is declared {kind!r}; a shape is 'matrix', 'vector' or 'scalar'"
            )
        declared[normal] = KINDS[kind]
    return declared


def _written(text: str, shapes: Mapping[str, str] | None) -> Written:
    if not isinstance(text, str):
        raise ParseError(f"expected matrix notation as a string, got {type(text).__name__}")
    declared = _shapes(shapes)
    parser, builder = _parser()
    with _parse_lock, builder.parsing(BuildState(text, declared)):
        try:
            # Lark's annotations give a tree; with a transformer it returns what `start` does.
            node = cast(Node, parser.parse(text))
        except lark.exceptions.UnexpectedInput as error:
            raise _syntax_error(text, error) from None
    _check_nesting(node)
    return Writer(text).top(node)


def matrix_to_index(text: str, shapes: Mapping[str, str] | None = None) -> str:
    """Matrix notation written in index notation: ``x'*A*x`` is ``x_i A_ij x_j``.

    `shapes` maps names to ``"matrix"``, ``"vector"`` (a column) or ``"scalar"``; other
    names follow `default_shape`. The result's rows are the index ``i`` and its columns
    ``j``. Raises `ParseError` with a caret under the matrix text for bad notation or
    shapes that cannot conform.
    """
    return _written(text, shapes).text


def parse_matrix(text: str, shapes: Mapping[str, str] | None = None) -> Expr:
    """Parse matrix notation, as matrixcalculus.org reads it, into an index expression.

    ``parse_matrix("x'*A*x")`` is ``parse("x_i A_ij x_j")``. `shapes` maps names to
    ``"matrix"``, ``"vector"`` (a column) or ``"scalar"``; undeclared names follow
    matrixcalculus.org (capitals are matrices, h to z vectors, other names scalars).
    A result's free indices are ``i`` (rows) and ``j`` (columns), so `evaluate` returns
    its array in the matrix's layout. Raises `ParseError` (or a subclass) with the line,
    column and a caret under the matrix text.
    """
    written = _written(text, shapes)
    try:
        return parse(written.text)
    except ParseError as error:  # e.g. division by a literal zero, a number too large
        raise _relocated(error, written, text) from None


def matrix_variable(
    name: str, expr: Expr, shapes: Mapping[str, str] | None = None, taken: Iterable[str] = ()
) -> str:
    """The variable `name` of matrix notation as `diff` takes it, with index letters
    `expr` does not use, nor `taken` (an earlier variable's, for a Hessian): ``x`` (a
    vector) is ``x_k``, ``W`` (a matrix) ``W_kl``, a scalar itself. Its shape is the
    declared or default one, as `parse_matrix` reads it."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ParseError(f"--wrt {name!r}: name a variable of the expression, like x or W")
    shape = _shapes(shapes).get(name) or default_shape(name)
    rank = int(shape.rows) + int(shape.cols)
    pool = dict.fromkeys((*"klmnpqrsuv", *INDEX_POOL))
    used = set(expr.all_indices) | set(taken)
    letters = [i for i in pool if i not in used][:rank]
    return name + ("_" + "".join(letters) if letters else "")


def _relocated(error: ParseError, written: Written, source: str) -> ParseError:
    """The index parser's error, with its caret moved to the matrix text."""
    if error.position is None:
        return error
    offset = error.position.column - 1
    position = Position(1, 1)
    for at, where in written.marks:
        if at <= offset:
            position = where
    return type(error)(error.reason, source, position)


# -- syntax errors ---------------------------------------------------------------------

_TERMINAL_NAMES = {
    "NUMBER": "a number",
    "NAME": "a name",
    "ONES": "𝟏",
    "LPAR": "'('",
    "RPAR": "')'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "HADAMARD": "'.*'",
    "SLASH": "'/'",
    "ELEMDIV": "'./'",
    "CARET": "'^'",
    "DOTCARET": "'.^'",
    "TRANSPOSE": "a transpose (')",
    "$END": "the end of the input",
}
_OPERAND_STARTS = {"NUMBER", "NAME", "ONES", "LPAR"}


def _syntax_error(text: str, error: lark.exceptions.UnexpectedInput) -> ParseError:
    position = Position(getattr(error, "line", 1) or 1, getattr(error, "column", 1) or 1)
    if not text.strip():
        return ParseError("empty input: there is no expression to parse", text, Position(1, 1))
    if isinstance(error, lark.exceptions.UnexpectedCharacters):
        return ParseError(f"unexpected character {error.char!r}", text, position)
    if isinstance(error, lark.exceptions.UnexpectedToken):
        token, expected = error.token, set(error.expected)
        if token.type == "$END":
            lines = text.rstrip().split("\n")
            end = Position(len(lines), len(lines[-1]) + 1)
            if "RPAR" in expected and not expected & _OPERAND_STARTS:
                return ParseError("unexpected end of input: a '(' is never closed", text, end)
            return ParseError(f"unexpected end of input: expected {_describe(expected)}", text, end)
        if token.type == "RPAR" and expected & _OPERAND_STARTS:
            return ParseError("expected an expression before ')'", text, position)
        if token.type == "RPAR":
            return ParseError("unbalanced ')': there is no '(' to close", text, position)
        hint = ""
        if token.type in _OPERAND_STARTS and "STAR" in expected:
            hint = " (matrix notation writes every product with '*')"
        return ParseError(
            f"unexpected {str(token)!r}: expected {_describe(expected)}{hint}", text, position
        )
    return ParseError("the input could not be parsed", text, position)


def _describe(expected: set[str]) -> str:
    names = sorted({_TERMINAL_NAMES.get(t, repr(t)) for t in expected})
    return ", ".join(names) or "something else"


__all__ = [
    "NOT_YET_SUPPORTED",
    "default_shape",
    "matrix_to_index",
    "matrix_variable",
    "parse_matrix",
]
