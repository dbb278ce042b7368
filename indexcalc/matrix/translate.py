"""Index expressions → matrix expression trees.

A product of index factors is read as a graph: each factor is an `Item`, a scalar, a
vector or a matrix whose rows and columns are labelled by its indices. These rules, tried
in this order, join factors until one item over the product's kept indices is left:

1. an index a factor repeats (``A_ii``) is a trace when summed, a diagonal when kept;
2. an index summed by one factor alone is a product with a vector of ones (``𝟏ᵀ v``);
3. factors over the same indices that are joined elementwise are a Hadamard product
   (``A_ij ⊙ B_ij`` → ``A ⊙ B``);
4. an index summed by exactly two factors is a matrix product (``A_ij B_jk`` → ``A B``,
   ``x_i A_ij`` → ``xᵀ A``), with a transpose wherever the index sits on the wrong side;
   of all such products, the one with the fewest transposes;
5. a vector joined elementwise to a matrix is a diagonal matrix (``v_i W_ik`` →
   ``diag(v) W``, and ``Σ_i v_i X_ik X_il`` → ``Xᵀ diag(v) X``);
6. vectors over different kept indices are an outer product (``a_i b_j`` → ``a bᵀ``).

The terms of a sum are translated one by one, then factored where their matrix chains
share an end (see `factoring`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

from ..dispatch import Pass
from ..errors import MatrixFormError
from ..expr import (
    Delta,
    Epsilon,
    Expr,
    Func,
    Indexed,
    Number,
    Power,
    Product,
    Sum,
    Tensor,
    connected_parts,
    memoised,
)
from .factoring import factor_terms
from .ir import (
    ONE,
    Add,
    Apply,
    Const,
    Diag,
    Diagonal,
    ElementPower,
    Hadamard,
    Identity,
    Leaf,
    Mat,
    MatMul,
    Ones,
    Trace,
    Transpose,
    add,
    hadamard,
    matmul,
    transpose,
    transpose_count,
)


@dataclass(frozen=True)
class Item:
    """A factor during the reduction of a product: `mat` with index `row` on its rows and
    `col` on its columns (None for a dimension of size one). `node` is the index
    expression it came from, if it can be translated afresh in the other orientation."""

    mat: Mat
    row: str | None
    col: str | None
    node: Expr | None = None

    @cached_property
    def indices(self) -> frozenset[str]:
        return frozenset(i for i in (self.row, self.col) if i is not None)

    def other(self, index: str | None) -> str | None:
        """The index on the other side from `index`."""
        return self.col if self.row == index else self.row


@dataclass
class Joining:
    """The items of one product while the rules join them, and which items hold each index."""

    items: list[Item]
    out: frozenset[str]
    holders: dict[str, list[int]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for position, item in enumerate(self.items):
            for index in dict.fromkeys(i for i in (item.row, item.col) if i is not None):
                self.holders.setdefault(index, []).append(position)

    def joined(self, index: str) -> bool:
        """Whether the factors holding `index` are joined elementwise, not contracted."""
        count = len(self.holders[index])
        return count >= 3 or (index in self.out and count >= 2)

    def replace(self, positions: Sequence[int], new: Item) -> list[Item]:
        """The items with those at `positions` replaced by `new`, in the first one's place."""
        first = min(positions)
        return [
            new if k == first else item
            for k, item in enumerate(self.items)
            if k == first or k not in positions
        ]


Rule = Callable[[Joining], list[Item] | None]


class Translator(Pass):
    """Simplified index expressions → matrix expressions; each (node, orientation) once.

    `primes` writes σ(u) ⊙ (1 − σ(u)) as σ'(u) and 1 − tanh(u)^⊙2 as tanh'(u);
    `symmetric` names the matrices equal to their transpose.
    """

    prefix = "_translate_"
    description = "translation to matrix notation"

    def __init__(self, primes: bool = False, symmetric: Iterable[str] = ()):
        self.primes = primes
        self.symmetric = frozenset(symmetric)
        self.items = FactorItems(self)
        self._memo: dict[tuple[Expr, str | None, str | None], Mat] = {}
        # The reduction rules of the module docstring, in its order.
        self.rules: tuple[Rule, ...] = (
            self.trace_or_diagonal,
            self.sum_with_ones,
            self.hadamard_product,
            self.matrix_product,
            self.diagonal_scaling,
            self.outer_product,
        )

    def translate(self, node: Expr, rows: str | None, cols: str | None) -> Mat:
        """The matrix whose (row, column) entry is `node` at index `rows`, `cols`."""
        return memoised(self._memo, (node, rows, cols), self._translated)

    def _translated(self, key: tuple[Expr, str | None, str | None]) -> Mat:
        return self.dispatch(*key)

    # -- one rule per node kind ------------------------------------------------------------

    def _translate_Expr(self, node: Expr, rows, cols) -> Mat:
        """The default: a kind of node without a rule here has no matrix form."""
        raise MatrixFormError(
            f"no matrix form for {node}: matrix notation has no {type(node).__name__} node"
        )

    def _translate_Number(self, node: Number, rows, cols) -> Mat:
        return Const(node.value)

    def _translate_Indexed(self, node: Indexed, rows, cols) -> Mat:
        return self.reduce([self.item(node)], frozenset(node.free), rows, cols, node)

    def _translate_Func(self, node: Func, rows, cols) -> Mat:
        return Apply(node.name, self.translate(node.arg, rows, cols))

    def _translate_Power(self, node: Power, rows, cols) -> Mat:
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

    def _translate_Sum(self, node: Sum, rows, cols) -> Mat:
        terms = [self.translate(t, rows, cols) for t in node.terms]
        return self.sum(factor_terms(terms))

    def _translate_Product(self, node: Product, rows, cols) -> Mat:
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
        return self.items.dispatch(factor)

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
        """Join items by the first rule that applies until none does; one item over `out`
        is left, oriented with `rows` on its rows, times the scalars split off on the way.

        Factors that share no index are joined apart first, so the work per step stays
        proportional to one connected part, not to the whole product (a product of
        hundreds of scalars xᵀx would otherwise take a cubic number of rule checks)."""
        scalars: list[Mat] = []
        parts = _connected_parts(items)
        if len(parts) > 1:
            items = []
            for part in parts:
                within = out & frozenset().union(*(i.indices for i in part))
                items += self.join(part, within, scalars)
        items = self.join(items, out, scalars)
        if not items:
            return matmul(1, scalars)
        if len(items) == 1 and items[0].indices == out:
            return matmul(1, [*scalars, self.orient(items[0], rows)])
        summed = sorted(set().union(*(i.indices for i in items)) - out)
        where = f"index {', '.join(summed)} joins" if summed else "its factors join"
        raise MatrixFormError(
            f"no matrix form for {node}: {where} {len(items)} factors in a pattern that "
            "matrix products, Hadamard products, diag and tr cannot express"
        )

    def join(self, items: list[Item], out: frozenset[str], scalars: list[Mat]) -> list[Item]:
        """`items` joined until no rule applies; the scalars found go to `scalars`."""
        while True:
            scalars.extend(i.mat for i in items if not i.indices)
            items = [i for i in items if i.indices]
            joined = self.step(items, out)
            if joined is None:
                return items
            items = joined

    def step(self, items: list[Item], out: frozenset[str]) -> list[Item] | None:
        """The items after the first rule that applies has joined some; None if none does."""
        joining = Joining(items, out)
        for rule in self.rules:
            joined = rule(joining)
            if joined is not None:
                return joined
        return None

    # -- the reduction rules, in the order they are tried ------------------------------------

    def trace_or_diagonal(self, joining: Joining) -> list[Item] | None:
        """1. An index a factor repeats (``A_ii``) is a trace when summed (and nothing else
        holds it), a diagonal when kept."""
        for position, item in enumerate(joining.items):
            if item.row is not None and item.row == item.col:
                index = item.row
                if index not in joining.out and len(joining.holders[index]) == 1:
                    if isinstance(item.mat, Identity):
                        # tr(I) would take whatever size a reader guesses, not i's.
                        raise MatrixFormError(
                            f"no matrix form for the dimension Σ_{index}(δ_{index}{index}): "
                            "matrix notation has no symbol for the size of an index"
                        )
                    return joining.replace([position], Item(Trace(item.mat), None, None))
                diagonal = Ones() if isinstance(item.mat, Identity) else Diagonal(item.mat)
                return joining.replace([position], Item(diagonal, index, None))
        return None

    def sum_with_ones(self, joining: Joining) -> list[Item] | None:
        """2. An index summed by one factor alone is a product with a vector of ones."""
        for index, where in joining.holders.items():
            if index not in joining.out and len(where) == 1:
                item = joining.items[where[0]]
                if item.col == index:
                    summed = Item(matmul(1, [item.mat, Ones()]), item.row, None)
                else:
                    summed = Item(matmul(1, [Transpose(Ones()), item.mat]), None, item.col)
                return joining.replace(where, summed)
        return None

    def hadamard_product(self, joining: Joining) -> list[Item] | None:
        """3. Factors over the same indices that are joined elementwise are a Hadamard
        product (``A_ij ⊙ B_ij`` → ``A ⊙ B``)."""
        items = joining.items
        over: dict[frozenset[str], list[int]] = {}  # the first two positions over each
        for position, item in enumerate(items):
            positions = over.setdefault(item.indices, [])
            if len(positions) < 2:
                positions.append(position)
        pairs = [p for key, p in over.items() if len(p) == 2 and any(map(joining.joined, key))]
        if not pairs:
            return None
        a, b = min(pairs)
        first, second = items[a], items[b]
        row = first.row if len(first.indices) == 2 else min(first.indices)
        merged = self.hadamard([self.orient(first, row), self.orient(second, row)])
        return joining.replace([a, b], Item(merged, row, first.other(row)))

    def matrix_product(self, joining: Joining) -> list[Item] | None:
        """4. An index summed by exactly two factors is a matrix product, with a transpose
        wherever the index sits on the wrong side. Of all such products, the one with the
        fewest transposes, then a column rather than a row vector, then the one whose left
        factor comes first."""
        candidates = []
        for index, where in joining.holders.items():
            if index in joining.out or len(where) != 2:
                continue
            for left, right in (where, where[::-1]):
                first, second = joining.items[left], joining.items[right]
                product = matmul(
                    1, [self.orient(first, first.other(index)), self.orient(second, index)]
                )
                item = Item(product, first.other(index), second.other(index))
                row_vector = item.row is None and item.col is not None
                candidates.append((transpose_count(product), row_vector, left, where, item))
        if not candidates:
            return None
        *_, where, best = min(candidates, key=lambda c: c[:3])
        return joining.replace(where, best)

    def diagonal_scaling(self, joining: Joining) -> list[Item] | None:
        """5. A vector joined elementwise to a matrix is a diagonal matrix: ``v_i W_ik`` →
        ``diag(v) W``, and ``Σ_i v_i X_ik X_il`` → ``Xᵀ diag(v) X``."""
        for a, vector in enumerate(joining.items):
            if len(vector.indices) != 1:
                continue
            (index,) = vector.indices
            if not joining.joined(index):
                continue
            for b in joining.holders[index]:
                matrix = joining.items[b]
                if len(matrix.indices) == 2:
                    scaled = matmul(
                        1, [Diag(self.orient(vector, index)), self.orient(matrix, index)]
                    )
                    return joining.replace([a, b], Item(scaled, index, matrix.other(index)))
        return None

    def outer_product(self, joining: Joining) -> list[Item] | None:
        """6. Two vectors over different kept indices, all that is left, are an outer
        product (``a_i b_j`` → ``a bᵀ``)."""
        items = joining.items
        if len(items) != 2 or any(len(i.indices) != 1 for i in items):
            return None
        u, v = items
        if u.indices | v.indices != joining.out or u.indices == v.indices:
            return None
        (i,), (j,) = u.indices, v.indices
        return [Item(matmul(1, [self.orient(u, i), self.orient(v, None)]), i, j)]

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


class FactorItems(Pass):
    """A product's factors as `Item`s: matrices labelled by the indices of their rows and
    columns."""

    prefix = "_item_"
    description = "reading a factor as a matrix"

    def __init__(self, translator: Translator):
        self.translator = translator

    def _item_Expr(self, factor: Expr) -> Item:
        """A composite factor, translated with its free indices in sorted order."""
        free = factor.free_indices
        if len(free) > 2:
            raise MatrixFormError(
                f"no matrix form for {factor}: it has {len(free)} free indices "
                f"({', '.join(free)}), and matrix notation covers at most two"
            )
        row, col = _row_and_column(free)
        return Item(self.translator.translate(factor, row, col), row, col, factor)

    def _item_Tensor(self, factor: Tensor) -> Item:
        row, col = _row_and_column(_matrix_indices(factor))
        symmetric = col is not None and factor.name in self.translator.symmetric
        return Item(Leaf(factor.name, row is not None, col is not None, symmetric), row, col)

    def _item_Delta(self, factor: Delta) -> Item:
        row, col = _matrix_indices(factor)
        return Item(Identity(), row, col)

    def _item_Epsilon(self, factor: Epsilon) -> Item:
        raise MatrixFormError(
            f"no matrix form for {factor}: the Levi-Civita symbol ε has no matrix notation"
        )


def _matrix_indices(factor: Indexed) -> tuple[str, ...]:
    """The indices of a tensor or δ of rank at most two."""
    if len(factor.indices) > 2:
        raise MatrixFormError(
            f"{factor} has no matrix notation: it has {len(factor.indices)} indices"
        )
    return factor.indices


def _row_and_column(indices: Sequence[str]) -> tuple[str | None, str | None]:
    """The index of the rows and of the columns, in this order; None where there is none."""
    row = indices[0] if indices else None
    col = indices[1] if len(indices) == 2 else None
    return row, col


def _one_minus(m: Mat) -> Mat:
    return add([ONE, matmul(-1, [m])])


def _connected_parts(items: list[Item]) -> list[list[Item]]:
    """`items` grouped into the parts that share indices, in order of first appearance."""
    return [[items[k] for k in part] for part in connected_parts([i.indices for i in items])]
