"""Index expressions → matrix notation: ``x_i A_ik + A_kj x_j`` becomes ``(A + Aᵀ) x``.

Translation builds a small matrix-expression tree (`Leaf`, `Transpose`, `MatMul`, `Add`,
`Hadamard`, `Apply`, `Diag`, `Trace`, …) and prints it with one printer class per format.
A product of index factors is read as a graph: each factor is a scalar, a vector or a
matrix whose rows and columns are labelled by its indices, and these rules join factors
until one item over the output indices is left:

- an index summed by exactly two factors is a matrix product (``A_ij B_jk`` → ``A B``,
  ``x_i A_ij`` → ``xᵀ A``), with a transpose wherever the index sits on the wrong side;
- an index a factor repeats (``A_ii``) is a trace when summed, a diagonal when kept;
- an index summed by one factor alone is a product with a vector of ones (``𝟏ᵀ v``);
- factors over the same indices that are joined elementwise are a Hadamard product
  (``A_ij ⊙ B_ij`` → ``A ⊙ B``);
- a vector joined elementwise to a matrix is a diagonal matrix (``v_i W_ik`` →
  ``diag(v) W``, and ``Σ_i v_i X_ik X_il`` → ``Xᵀ diag(v) X``);
- vectors over different kept indices are an outer product (``a_i b_j`` → ``a bᵀ``).

Before that, terms of a sum that share factors are factored (at the index level, where the
shared factors are equal nodes, and again at the matrix level, where chains share a left
or right end), so ``Aᵀ x + A x`` prints as ``(A + Aᵀ) x``.

Layout. Vectors are columns. A rank-2 result has its first output index as rows: by
default the free indices in alphabetical order, the axis order ``indexcalc.evaluate``
returns. This is the numerator layout: the Jacobian ∂f_i/∂x_k has rows i and columns k,
and a derivative with respect to a matrix W_gh has the shape of W. The gradient of a
scalar with respect to a vector is a column vector. ``layout="denominator"`` transposes
rank-2 results.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from .algebra import Algebra, split_coefficient
from .diff import carry_out
from .errors import IndexCalcError
from .expr import (
    Delta,
    Epsilon,
    Expr,
    Func,
    Number,
    Power,
    Product,
    Sum,
    Tensor,
    deep_recursion,
    node_count,
)
from .functions import FUNCTIONS
from .printing import ATOM, HADAMARD, NEGATION, POWER, PRODUCT, SUM, decimal_text
from .sizes import output_indices
from .syntax import parse


class MatrixFormError(IndexCalcError):
    """The expression has no matrix notation: a result or a tensor of rank 3 or more, ε,
    or an index pattern that matrix products, ⊙, diag and tr cannot express."""


# -- the matrix expression tree ------------------------------------------------------------
#
# `rows` and `cols` say whether a dimension is an index (True) or has size one (False):
# a scalar is (False, False), a column vector (True, False), a row vector (False, True).


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
    """A named input: a scalar, a column vector or a matrix."""

    name: str
    rows: bool
    cols: bool

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


ONE = Const(Fraction(1))


def transpose(m: Mat) -> Mat:
    """mᵀ, pushed through products, and through elementwise operations on matrices when
    that leaves fewer transposes: (A B)ᵀ = Bᵀ Aᵀ, (A ⊙ Bᵀ)ᵀ = Aᵀ ⊙ B, but (X − U V)ᵀ stays.
    A vector expression keeps it whole: (A x − b)ᵀ."""
    if m.is_scalar or isinstance(m, (Identity, Diag)):
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
        if _transposes(pushed) <= _transposes(m):
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
        return Const(Fraction(0))
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
    flat = [t for t in flat if t != Const(Fraction(0))]
    if not flat:
        return Const(Fraction(0))
    if len(flat) == 1:
        return flat[0]
    flat.sort(key=lambda t: (_negative(t), _transposes(t)))
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


def _negative(m: Mat) -> bool:
    if isinstance(m, Const):
        return m.value < 0
    return isinstance(m, MatMul) and m.coefficient < 0


def _is_reciprocal(m: Mat) -> bool:
    """A scalar to a negative power, which prints as a divisor."""
    return (
        isinstance(m, ElementPower)
        and m.base.is_scalar
        and isinstance(m.exponent, Const)
        and m.exponent.value < 0
    )


def _transposes(m: Mat) -> int:
    """How many transposes `m` prints with; fewer reads better."""
    if isinstance(m, Transpose):
        return 1 + _transposes(m.operand)
    count = 0
    for value in vars(m).values():
        if isinstance(value, Mat):
            count += _transposes(value)
        elif isinstance(value, tuple):
            count += sum(_transposes(v) for v in value if isinstance(v, Mat))
    return count


# -- index expression → matrix tree ----------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A factor during the reduction of a product: `mat` with index `row` on its rows and
    `col` on its columns (None for a dimension of size one). `node` is the index
    expression it came from, if it can be translated afresh in the other orientation."""

    mat: Mat
    row: str | None
    col: str | None
    node: Expr | None = None

    @property
    def indices(self) -> frozenset[str]:
        return frozenset(i for i in (self.row, self.col) if i is not None)

    def other(self, index: str | None) -> str | None:
        """The index on the other side from `index`."""
        return self.col if self.row == index else self.row


class Translator:
    """Translates simplified index expressions; each (node, orientation) once."""

    def __init__(self, primes: bool = False):
        self.primes = primes
        self._memo: dict[tuple[Expr, str | None, str | None], Mat] = {}

    def translate(self, node: Expr, rows: str | None, cols: str | None) -> Mat:
        """The matrix whose (row, column) entry is `node` at index `rows`, `cols`."""
        key = (node, rows, cols)
        done = self._memo.get(key)
        if done is None:
            done = getattr(self, f"_t_{type(node).__name__}")(node, rows, cols)
            self._memo[key] = done
        return done

    # -- nodes -----------------------------------------------------------------------------

    def _t_Number(self, node: Number, rows, cols) -> Mat:
        return Const(node.value)

    def _t_Tensor(self, node: Tensor, rows, cols) -> Mat:
        return self.reduce([self.item(node)], frozenset(node.free), rows, cols, node)

    _t_Delta = _t_Tensor

    def _t_Epsilon(self, node: Epsilon, rows, cols) -> Mat:
        raise MatrixFormError(
            f"no matrix form for {node}: the Levi-Civita symbol ε has no matrix notation"
        )

    def _t_Func(self, node: Func, rows, cols) -> Mat:
        return Apply(node.name, self.translate(node.arg, rows, cols))

    def _t_Power(self, node: Power, rows, cols) -> Mat:
        base = self.translate(node.base, rows, cols)
        if node.exponent.free and node.exponent.free != node.base.free:
            raise MatrixFormError(
                f"no matrix form for {node}: the exponent is indexed by "
                f"{', '.join(sorted(node.exponent.free))} but the base by "
                f"{', '.join(sorted(node.base.free)) or 'nothing'}"
            )
        if node.exponent.free:
            return ElementPower(base, self.translate(node.exponent, rows, cols))
        return ElementPower(base, self.translate(node.exponent, None, None))

    def _t_Sum(self, node: Sum, rows, cols) -> Mat:
        terms = [self.translate(t, rows, cols) for t in node.terms]
        return self.sum(factor_terms(terms))

    def _t_Product(self, node: Product, rows, cols) -> Mat:
        coefficient = Fraction(1)
        items = []
        for factor in node.factors:
            if isinstance(factor, Number):
                coefficient *= factor.value
            else:
                items.append(self.item(factor))
        return matmul(coefficient, [self.reduce(items, frozenset(node.out), rows, cols, node)])

    # -- products ----------------------------------------------------------------------------

    def item(self, factor: Expr) -> Item:
        """A product's factor as an item labelled by its indices."""
        if isinstance(factor, Epsilon):
            return Item(self.translate(factor, None, None), None, None)
        if isinstance(factor, (Tensor, Delta)):
            indices = factor.indices
            if len(indices) > 2 or len(factor.free) > 2:
                raise MatrixFormError(
                    f"{factor} has no matrix notation: it has {len(indices)} indices"
                )
            if isinstance(factor, Delta):
                return Item(Identity(), indices[0], indices[1])
            row = indices[0] if indices else None
            col = indices[1] if len(indices) == 2 else None
            return Item(Leaf(factor.name, row is not None, col is not None), row, col)
        free = factor.free_indices
        if len(free) > 2:
            raise MatrixFormError(
                f"no matrix form for {factor}: it has {len(free)} free indices "
                f"({', '.join(free)}), and matrix notation covers at most two"
            )
        row = free[0] if free else None
        col = free[1] if len(free) == 2 else None
        return Item(self.translate(factor, row, col), row, col, factor)

    def orient(self, item: Item, row: str | None) -> Mat:
        """The item's matrix with index `row` on its rows (for a vector, None: a row vector).

        A matrix is translated afresh in that orientation, so ``(X − U V)`` is never printed
        as ``(Xᵀ − Vᵀ Uᵀ)ᵀ``; a vector is transposed as a whole: ``(A x − b)ᵀ``.
        """
        if row == item.row:
            return item.mat
        if item.node is not None and len(item.indices) == 2:
            return self.translate(item.node, row, item.other(row))
        return transpose(item.mat)

    def reduce(self, items: list[Item], out: frozenset[str], rows, cols, node: Expr) -> Mat:
        """Join items by the reduction rules until one item over `out` is left."""
        scalars: list[Mat] = []
        items = list(items)
        while True:
            scalars.extend(i.mat for i in items if not i.indices)
            items = [i for i in items if i.indices]
            step = self._step(items, out)
            if step is None:
                break
            items = step
        main = self._final(items, out, node)
        if main is None:
            return matmul(1, scalars)
        return matmul(1, [*scalars, self.orient(main, rows)])

    def _step(self, items: list[Item], out: frozenset[str]) -> list[Item] | None:
        """One application of the first rule that applies, or None."""
        holders: dict[str, list[int]] = {}
        for position, item in enumerate(items):
            for index in dict.fromkeys(i for i in (item.row, item.col) if i is not None):
                holders.setdefault(index, []).append(position)

        def joined(index: str) -> bool:
            """Factors holding `index` must be joined elementwise, not contracted."""
            count = len(holders[index])
            return count >= 3 or (index in out and count >= 2)

        def replace(positions: Sequence[int], new: Item) -> list[Item]:
            first = min(positions)
            return [
                new if k == first else item
                for k, item in enumerate(items)
                if k == first or k not in positions
            ]

        # A repeated index: a trace when nothing else holds it, otherwise the diagonal.
        for position, item in enumerate(items):
            if item.row is not None and item.row == item.col:
                index = item.row
                if index not in out and len(holders[index]) == 1:
                    return replace([position], Item(Trace(item.mat), None, None))
                diagonal = Ones() if isinstance(item.mat, Identity) else Diagonal(item.mat)
                return replace([position], Item(diagonal, index, None))
        # An index summed by one factor alone: multiply by a vector of ones.
        for index, where in holders.items():
            if index not in out and len(where) == 1:
                item = items[where[0]]
                if item.col == index:
                    summed = Item(matmul(1, [item.mat, Ones()]), item.row, None)
                else:
                    summed = Item(matmul(1, [Transpose(Ones()), item.mat]), None, item.col)
                return replace(where, summed)
        # Factors over the same indices joined elementwise: a Hadamard product.
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                first, second = items[a], items[b]
                if first.indices == second.indices and any(joined(i) for i in first.indices):
                    row = first.row if len(first.indices) == 2 else min(first.indices)
                    merged = self.hadamard([self.orient(first, row), self.orient(second, row)])
                    return replace([a, b], Item(merged, row, first.other(row)))
        # An index summed by exactly two factors: a matrix product. Of all such products,
        # the one with the fewest transposes, then a column rather than a row vector, then
        # the one whose left factor comes first.
        candidates = []
        for index, where in holders.items():
            if index in out or len(where) != 2:
                continue
            for left, right in (where, where[::-1]):
                first, second = items[left], items[right]
                product = matmul(
                    1, [self.orient(first, first.other(index)), self.orient(second, index)]
                )
                joined_item = Item(product, first.other(index), second.other(index))
                row_vector = joined_item.row is None and joined_item.col is not None
                candidates.append((_transposes(product), row_vector, left, where, joined_item))
        if candidates:
            *_, where, best = min(candidates, key=lambda c: c[:3])
            return replace(where, best)
        # A vector joined elementwise to a matrix: diag(v) M.
        for a, vector in enumerate(items):
            if len(vector.indices) != 1:
                continue
            (index,) = vector.indices
            if not joined(index):
                continue
            for b in holders[index]:
                matrix = items[b]
                if len(matrix.indices) == 2:
                    other = matrix.other(index)
                    scaled = matmul(
                        1, [Diag(self.orient(vector, index)), self.orient(matrix, index)]
                    )
                    return replace([a, b], Item(scaled, index, other))
        return None

    def _final(self, items: list[Item], out: frozenset[str], node: Expr) -> Item | None:
        """The one item left, or the outer product of two vectors."""
        if not items:
            return None
        if len(items) == 1 and items[0].indices == out:
            return items[0]
        if len(items) == 2 and all(len(i.indices) == 1 for i in items):
            u, v = items
            if u.indices | v.indices == out and u.indices != v.indices:
                (i,), (j,) = u.indices, v.indices
                return Item(matmul(1, [self.orient(u, i), self.orient(v, None)]), i, j)
        summed = sorted(set().union(*(i.indices for i in items)) - out)
        where = f"index {', '.join(summed)} joins" if summed else "its factors join"
        raise MatrixFormError(
            f"no matrix form for {node}: {where} {len(items)} factors in a pattern that "
            "matrix products, Hadamard products, diag and tr cannot express"
        )

    # -- builders that know about derivatives --------------------------------------------------

    def hadamard(self, factors: Sequence[Mat]) -> Mat:
        """⊙ of factors; with `primes`, σ(u) ⊙ (1 − σ(u)) becomes σ'(u)."""
        result = hadamard(factors)
        if not self.primes or not isinstance(result, Hadamard):
            return result
        remaining = list(result.factors)
        for factor in result.factors:
            if (
                isinstance(factor, Apply)
                and factor.name == "sigmoid"
                and not factor.prime
                and factor in remaining
                and _one_minus(factor) in remaining
            ):
                remaining.remove(factor)
                position = remaining.index(_one_minus(factor))
                remaining[position] = Apply("sigmoid", factor.operand, prime=True)
        return hadamard(remaining) if len(remaining) != len(result.factors) else result

    def sum(self, terms: Sequence[Mat]) -> Mat:
        """A sum; with `primes`, 1 − tanh(u)^⊙2 becomes tanh'(u)."""
        result = add(terms)
        if self.primes and isinstance(result, Add) and len(result.terms) == 2:
            one, rest = result.terms
            if (
                one == ONE
                and isinstance(rest, MatMul)
                and rest.coefficient == -1
                and not rest.scalars
                and len(rest.chain) == 1
                and isinstance(rest.chain[0], ElementPower)
                and rest.chain[0].exponent == Const(Fraction(2))
                and isinstance(rest.chain[0].base, Apply)
                and rest.chain[0].base.name == "tanh"
            ):
                return Apply("tanh", rest.chain[0].base.operand, prime=True)
        return result


def _one_minus(m: Mat) -> Mat:
    return add([ONE, matmul(-1, [m])])


def factor_terms(terms: Sequence[Mat]) -> list[Mat]:
    """Terms with a common left or right end of their matrix chains factored out.

    ``Aᵀ x + A x`` → ``(Aᵀ + A) x``; ``−2 Uᵀ X + 2 Uᵀ U V`` → ``−2 Uᵀ (X − U V)``.
    """
    if len(terms) < 2 or any(isinstance(t, Const) for t in terms):
        return list(terms)
    parts = [_chain_of(t) for t in terms]
    chains = [chain for _, _, chain in parts]
    shortest = min(len(c) for c in chains)
    prefix = 0
    while prefix < shortest and all(c[prefix] == chains[0][prefix] for c in chains):
        prefix += 1
    suffix = 0
    while suffix < shortest - prefix and all(
        c[len(c) - 1 - suffix] == chains[0][len(chains[0]) - 1 - suffix] for c in chains
    ):
        suffix += 1
    common_scalars = [s for s in parts[0][1] if all(s in p[1] for p in parts)]
    coefficients = [c for c, _, _ in parts]
    pulled = coefficients[0] if all(abs(c) == abs(coefficients[0]) for c in coefficients) else 1
    if not (prefix or suffix or common_scalars or abs(pulled) != 1):
        return list(terms)
    shape = terms[0].shape
    inner_rows = chains[0][prefix - 1].shape[1] if prefix else shape[0]
    inner_cols = chains[0][len(chains[0]) - suffix].shape[0] if suffix else shape[1]
    inner = []
    for coefficient, scalars, chain in parts:
        middle = list(chain[prefix : len(chain) - suffix])
        if not middle:
            if inner_rows != inner_cols:
                return list(terms)
            middle = [Identity() if inner_rows else ONE]
        rest = [s for s in scalars if s not in common_scalars]
        inner.append(matmul(coefficient / pulled, [*rest, *middle]))
    head = list(chains[0][:prefix])
    tail = list(chains[0][len(chains[0]) - suffix :])
    return [matmul(pulled, [*common_scalars, *head, add(inner), *tail])]


def _chain_of(m: Mat) -> tuple[Fraction, tuple[Mat, ...], tuple[Mat, ...]]:
    if isinstance(m, MatMul):
        return m.coefficient, m.scalars, m.chain
    if m.is_scalar:
        return Fraction(1), (m,), ()
    return Fraction(1), (), (m,)


# -- index-level normalisation -----------------------------------------------------------------


class Factorer:
    """Sums rewritten so that more of them have a matrix form, at the index level.

    Factors shared by every term leave the sum, which lowers the rank of what is left:
    ``-Σ_i(-(1 - y_i) s_i X_il X_ik - y_i s_i X_il X_ik)`` → ``-Σ_i(s_i X_il X_ik (-(1 - y_i)
    - y_i))``. Then a sum is expanded (elementwise products distributed over sums, like
    terms collected) wherever that makes it smaller: ``-(1 - y_i) - y_i`` → ``-1``.
    """

    MAX_TERMS = 32  # an expansion that would make more terms is not tried

    def __init__(self):
        self.algebra = Algebra()
        self._memo: dict[Expr, Expr] = {}

    def normal(self, node: Expr) -> Expr:
        done = self._memo.get(node)
        if done is not None:
            return done
        algebra = self.algebra
        if isinstance(node, Sum):
            result = self.factored([self.normal(t) for t in node.terms], node.free)
        elif isinstance(node, Product):
            result = self.product([self.normal(f) for f in node.factors], node.out)
        elif isinstance(node, Func):
            result = algebra.func(node.name, self.normal(node.arg))
        elif isinstance(node, Power):
            result = algebra.power(self.normal(node.base), self.normal(node.exponent))
        else:
            result = node
        self._memo[node] = result
        return result

    def product(self, factors: list[Expr], out: Iterable[str]) -> Expr:
        """The product, distributed over a sum factor with more than two free indices (which
        has no matrix form of its own) when the product keeps at most two."""
        out = frozenset(out)
        wide = next((f for f in factors if isinstance(f, Sum) and len(f.free) > 2), None)
        if wide is None or len(out) > 2 or len(wide.terms) > self.MAX_TERMS:
            return self.algebra.multiply(factors, out)
        position = factors.index(wide)
        terms = []
        for term in wide.terms:
            spread = [*factors[:position], term, *factors[position + 1 :]]
            terms.append(self.normal(self.algebra.multiply(spread, out)))
        return self.factored(terms, out)

    def factored(self, terms: list[Expr], out: frozenset[str]) -> Expr:
        """The sum of `terms` with shared factors pulled out, expanded if that is smaller."""
        algebra = self.algebra
        plain = algebra.add(terms)
        parts = []
        for term in terms:
            coefficient, rest = split_coefficient(term)
            factors = list(rest.factors) if isinstance(rest, Product) else [rest]
            parts.append((coefficient, [f for f in factors if not isinstance(f, Number)]))
        common = Counter(parts[0][1])
        for _, factors in parts[1:]:
            common &= Counter(factors)
        if not common or any(isinstance(t, Number) for t in terms):
            return self.smallest(plain)
        shared = list(common.elements())
        reach = set(out).union(*(f.free for f in shared))
        remainders = []
        for coefficient, factors in parts:
            rest = list((Counter(factors) - common).elements())
            keep = frozenset(set().union(*(f.free for f in rest)) & reach)
            remainders.append(algebra.multiply([Number(coefficient), *rest], keep))
        kept = {r.free for r in remainders if not isinstance(r, Number)}
        if len(kept) > 1:
            return self.smallest(plain)
        inner = self.factored(remainders, kept.pop() if kept else frozenset())
        return algebra.multiply([*shared, inner], out)

    def smallest(self, node: Expr) -> Expr:
        """`node`, or its expansion if that has fewer nodes."""
        terms = self.expanded(node)
        if terms is None:
            return node
        expanded = self.algebra.add(terms)
        return expanded if node_count(expanded) < node_count(node) else node

    def expanded(self, node: Expr) -> list[Expr] | None:
        """The terms of `node` with elementwise products distributed over sums, or None
        when that would make too many terms or leave a term without some index."""
        if isinstance(node, Sum):
            terms: list[Expr] = []
            for term in node.terms:
                part = self.expanded(term)
                if part is None:
                    return None
                terms.extend(part)
            return terms if len(terms) <= self.MAX_TERMS else None
        if not isinstance(node, Product) or node.summed:
            return [node]
        choices: list[list[Expr]] = [[]]
        for factor in node.factors:
            options = self.expanded(factor) if isinstance(factor, Sum) else [factor]
            if options is None or len(choices) * len(options) > self.MAX_TERMS:
                return None
            choices = [[*chosen, option] for chosen in choices for option in options]
        terms = []
        for chosen in choices:
            free = frozenset().union(*(f.free for f in chosen))
            if free and free != node.free:
                return None
            terms.append(self.algebra.multiply(chosen, free))
        return terms


# -- printers ------------------------------------------------------------------------------------

# The precedence table is the index printers' (printing.py): SUM < HADAMARD < NEGATION <
# PRODUCT < POWER (also ᵀ) < ATOM.


class MatrixPrinter:
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

    def show(self, m: Mat) -> tuple[str, int]:
        return getattr(self, f"_print_{type(m).__name__}")(m)

    def wrap(self, m: Mat, minimum: int) -> str:
        text, precedence = self.show(m)
        return self.parens(text) if precedence < minimum else text

    # -- building blocks that formats override ----------------------------------------------

    def parens(self, text: str) -> str:
        return f"({text})"

    def name(self, name: str) -> str:
        return name

    def call(self, name: str, argument: str) -> str:
        return f"{name}({argument})"

    def function_name(self, name: str) -> str:
        return FUNCTIONS[name].unicode

    def transpose(self, base: str) -> str:
        return f"{base}{self.transposed}"

    def power(self, base: str, exponent: str, elementwise: bool) -> str:
        return f"{base}^{'⊙' if elementwise else ''}{exponent}"

    def fraction(self, value: Fraction) -> str:
        return f"{value.numerator}/{value.denominator}"

    def divide(self, numerator: str, denominator: str) -> str:
        return f"{numerator} / {denominator}"

    def number(self, value: Fraction) -> tuple[str, int]:
        magnitude = abs(value)
        if magnitude.denominator == 1:
            text, precedence = str(magnitude.numerator), ATOM
        else:
            decimal = decimal_text(magnitude)
            text, precedence = (decimal, ATOM) if decimal else (self.fraction(magnitude), PRODUCT)
        if value < 0:
            return f"{self.minus}{text}", NEGATION
        return text, precedence

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
        numerators = [self.wrap(s, ATOM) for s in m.scalars if not _is_reciprocal(s)]
        numerators += [self.wrap(f, POWER) for f in m.chain]
        if not numerators:
            numerators = [self.number(abs(coefficient))[0]]
            coefficient = Fraction(1 if coefficient > 0 else -1)
        text = self.times.join(numerators)
        for reciprocal in filter(_is_reciprocal, m.scalars):
            base = self.wrap(reciprocal.base, ATOM)
            exponent = -reciprocal.exponent.value
            if exponent != 1:
                base = self.power(base, self.number(exponent)[0], False)
            text = self.divide(text, base)
        if coefficient == 1:
            return text, PRODUCT
        if coefficient == -1:
            return f"{self.minus}{text}", NEGATION
        number, _ = self.number(coefficient)
        return f"{number}{self.times}{text}", NEGATION if coefficient < 0 else PRODUCT

    def _print_Add(self, m: Add):
        parts = []
        for k, term in enumerate(m.terms):
            negative = _negative(term)
            text = self.wrap(matmul(-1, [term]) if negative else term, HADAMARD)
            if k == 0:
                parts.append(f"{self.minus}{text}" if negative else text)
            else:
                parts.append(f" {self.minus} {text}" if negative else f" + {text}")
        return "".join(parts), SUM

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
        return self.call(self.diag, self.show(m.operand)[0]), ATOM

    _print_Diagonal = _print_Diag

    def _print_Trace(self, m: Trace):
        return self.call(self.trace, self.show(m.operand)[0]), ATOM


class AsciiMatrixPrinter(MatrixPrinter):
    """Plain ASCII: ^T, .*, -, sigmoid, .^ for elementwise powers, 1 for the ones vector."""

    minus = "-"
    hadamard = " .* "
    transposed = "^T"
    ones = "1"

    def function_name(self, name: str) -> str:
        return name

    def power(self, base: str, exponent: str, elementwise: bool) -> str:
        return f"{base}{'.^' if elementwise else '^'}{exponent}"


class LatexMatrixPrinter(MatrixPrinter):
    r"""LaTeX: ``(A + A^\top) x``."""

    minus = "-"
    hadamard = r" \odot "
    transposed = r"^\top"
    ones = r"\mathbf{1}"
    diag = r"\operatorname{diag}"
    trace = r"\operatorname{tr}"

    def name(self, name: str) -> str:
        return rf"\mathrm{{{name}}}" if len(name) > 1 else name

    def call(self, name: str, argument: str) -> str:
        if name == r"\sqrt":
            return rf"\sqrt{{{argument}}}"
        return f"{name}({argument})"

    def function_name(self, name: str) -> str:
        return FUNCTIONS[name].latex

    def power(self, base: str, exponent: str, elementwise: bool) -> str:
        mark = "\\odot " if elementwise else ""
        return f"{base}^{{{mark}{exponent}}}"

    def fraction(self, value: Fraction) -> str:
        return rf"\frac{{{value.numerator}}}{{{value.denominator}}}"

    def divide(self, numerator: str, denominator: str) -> str:
        return rf"\frac{{{numerator}}}{{{denominator}}}"


PRINTERS = {"unicode": MatrixPrinter, "ascii": AsciiMatrixPrinter, "latex": LatexMatrixPrinter}
LAYOUTS = ("numerator", "denominator")


# -- the public functions -------------------------------------------------------------------------


@deep_recursion
def matrix_form(
    expr_or_text, *, layout: str = "numerator", out=None, primes: bool = False, var: str = "x"
) -> Mat:
    """The matrix-expression tree of an index expression of rank at most 2.

    Parameters are those of `to_matrix`. Raises `MatrixFormError` where no matrix form
    exists.
    """
    if layout not in LAYOUTS:
        raise MatrixFormError(f"layout must be 'numerator' or 'denominator', not {layout!r}")
    node = parse(expr_or_text, var=var) if isinstance(expr_or_text, str) else expr_or_text
    if not isinstance(node, Expr):
        raise MatrixFormError(f"expected an expression or notation, got {type(node).__name__}")
    order = output_indices(node, out)
    if len(order) > 2:
        raise MatrixFormError(
            f"no matrix form for a result with {len(order)} free indices "
            f"({', '.join(order)}): matrix notation covers scalars, vectors and matrices"
        )
    node = Factorer().normal(carry_out(node, Algebra()))
    rows = order[0] if order else None
    cols = order[1] if len(order) == 2 else None
    if layout == "denominator" and cols is not None:
        rows, cols = cols, rows
    return Translator(primes).translate(node, rows, cols)


def to_matrix(
    expr_or_text,
    *,
    layout: str = "numerator",
    out=None,
    format: str = "unicode",
    primes: bool = False,
    var: str = "x",
) -> str:
    """An index expression of rank at most 2 in matrix notation.

    Parameters
    ----------
    expr_or_text : Expr or str
        The expression, e.g. ``ic.diff("x_i A_ij x_j", "x_k")``, or notation to parse.
    layout : "numerator" (default) or "denominator"
        Vectors are columns in both. In the numerator layout a rank-2 result has its first
        output index on the rows (∂f_i/∂x_k: rows i, columns k; ∂f/∂W_gh: the shape of W);
        the denominator layout is its transpose.
    out : str or sequence of index names, optional
        The output indices in (row, column) order for the numerator layout. Default: the
        free indices sorted, the axis order `indexcalc.evaluate` returns.
    format : "unicode" (default), "ascii" or "latex"
        ``(A + Aᵀ) x``, ``(A + A^T) x`` or ``(A + A^\\top) x``.
    primes : bool
        Write σ(u) ⊙ (1 − σ(u)) as σ'(u) and 1 − tanh(u)^⊙2 as tanh'(u).

    Returns
    -------
    str
        The matrix formula. ``diag(v)`` of a vector is a diagonal matrix, ``diag(A)`` of a
        matrix its diagonal as a vector, 𝟏 a vector of ones, I the identity, ⊙ the
        elementwise product and ``^⊙`` an elementwise power.

    Raises
    ------
    MatrixFormError
        If the result has three or more free indices, uses ε, or joins its factors in a
        pattern that matrix notation cannot express.
    """
    if format not in PRINTERS:
        raise MatrixFormError(
            f"format must be one of {', '.join(sorted(PRINTERS))}, not {format!r}"
        )
    tree = matrix_form(expr_or_text, layout=layout, out=out, primes=primes, var=var)
    return PRINTERS[format]().doprint(tree)


__all__ = ["MatrixFormError", "matrix_form", "to_matrix"]
