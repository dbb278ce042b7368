"""Factoring that gives more sums a matrix form, at the index level and the matrix level.

`Factorer` works on index expressions before translation, where shared factors are equal
nodes; `factor_terms` works on the translated terms of a sum, where matrix chains share a
left or right end. Together they turn ``Aᵀ x + A x`` into ``(A + Aᵀ) x``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from fractions import Fraction

from ..algebra import Algebra, split_coefficient
from ..dispatch import Pass
from ..expr import Expr, Func, Number, Power, Product, Sum, memoised, node_count
from .ir import ONE, Const, Identity, Mat, MatMul, add, matmul


class Factorer(Pass):
    """Sums rewritten so that more of them have a matrix form, at the index level.

    Factors shared by every term leave the sum, which lowers the rank of what is left:
    ``-Σ_i(-(1 - y_i) s_i X_il X_ik - y_i s_i X_il X_ik)`` → ``-Σ_i(s_i X_il X_ik (-(1 - y_i)
    - y_i))``. Then a sum is expanded (elementwise products distributed over sums, like
    terms collected) wherever that makes it smaller: ``-(1 - y_i) - y_i`` → ``-1``.
    Results are built by `algebra`, the one that carried out the expression, so they honour
    its symmetric tensors.
    """

    prefix = "_factor_"
    description = "factoring for matrix notation"
    MAX_TERMS = 32  # an expansion that would make more terms is not tried

    def __init__(self, algebra: Algebra):
        self.algebra = algebra
        self._memo: dict[Expr, Expr] = {}
        self._expansions: dict[Expr, tuple[Expr, ...] | None] = {}

    def normal(self, node: Expr) -> Expr:
        """`node` with every sum inside it factored."""
        return memoised(self._memo, node, self.dispatch)

    # -- one rule per node kind ------------------------------------------------------------

    def _factor_Expr(self, node: Expr) -> Expr:
        """Leaves as they are; any other node rebuilt from its factored children."""
        return node.map_children(self.normal)

    def _factor_Sum(self, node: Sum) -> Expr:
        return self.factored([self.normal(t) for t in node.terms], node.free)

    def _factor_Product(self, node: Product) -> Expr:
        return self.product([self.normal(f) for f in node.factors], node.out)

    def _factor_Func(self, node: Func) -> Expr:
        return self.algebra.func(node.name, self.normal(node.arg))

    def _factor_Power(self, node: Power) -> Expr:
        return self.algebra.power(self.normal(node.base), self.normal(node.exponent))

    # -- rewriting -------------------------------------------------------------------------

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
            others = list((Counter(factors) - common).elements())
            keep = frozenset(set().union(*(f.free for f in others)) & reach)
            remainders.append(algebra.multiply([Number(coefficient), *others], keep))
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
        terms = memoised(self._expansions, node, self._expanded)
        return None if terms is None else list(terms)

    def _expanded(self, node: Expr) -> tuple[Expr, ...] | None:
        if isinstance(node, Sum):
            terms: list[Expr] = []
            for term in node.terms:
                part = self.expanded(term)
                if part is None:
                    return None
                terms.extend(part)
            return tuple(terms) if len(terms) <= self.MAX_TERMS else None
        if not isinstance(node, Product) or node.summed:
            return (node,)
        choices: list[list[Expr]] = [[]]
        for factor in node.factors:
            options = self.expanded(factor) if isinstance(factor, Sum) else [factor]
            if options is None or len(choices) * len(options) > self.MAX_TERMS:
                return None
            choices = [[*chosen, option] for chosen in choices for option in options]
        terms = []
        for chosen in choices:
            free = frozenset().union(*(f.free for f in chosen))
            term = self.algebra.multiply(chosen, free)
            # Only a number is broadcast in a sum: (2 + ε_ml²) μ has the term 2 μ, which
            # is not, so it stays unexpanded.
            if term.free != node.free and not isinstance(term, Number):
                return None
            terms.append(term)
        return tuple(terms)


def factor_terms(terms: Sequence[Mat]) -> list[Mat]:
    """Terms with a common left or right end of their matrix chains factored out.

    ``Aᵀ x + A x`` → ``(Aᵀ + A) x``; ``−2 Uᵀ X + 2 Uᵀ U V`` → ``−2 Uᵀ (X − U V)``.
    """
    if len(terms) < 2 or any(isinstance(t, Const) for t in terms):
        return list(terms)
    parts = [_chain_of(t) for t in terms]
    chains = [chain for _, _, chain in parts]
    prefix, suffix = _shared_ends(chains)
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


def _shared_ends(chains: list[tuple[Mat, ...]]) -> tuple[int, int]:
    """How many factors every chain shares at its left end, then at its right end."""
    first, shortest = chains[0], min(len(c) for c in chains)
    prefix = 0
    while prefix < shortest and all(c[prefix] == first[prefix] for c in chains):
        prefix += 1
    suffix = 0
    while suffix < shortest - prefix and all(c[-1 - suffix] == first[-1 - suffix] for c in chains):
        suffix += 1
    return prefix, suffix


def _chain_of(m: Mat) -> tuple[Fraction, tuple[Mat, ...], tuple[Mat, ...]]:
    """A term as (coefficient, scalar factors, chain of matrix factors)."""
    if isinstance(m, MatMul):
        return m.coefficient, m.scalars, m.chain
    if m.is_scalar:
        return Fraction(1), (m,), ()
    return Fraction(1), (), (m,)
