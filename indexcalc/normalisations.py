"""Normalisations written as quotients: N_i Σ_j(N_j)^-n as (N_i / Σ_j(N_j)) … .

A derivative of a softmax comes out of the algebra with the normaliser's powers merged,
exp(x_i) Σ_j(exp(x_j))^-2 exp(x_k); on paper it is s_i s_k, two quotients. `Normalisations`
regroups each numerator with one power of its normaliser, without changing the value,
for the printers and for `program`, which names the quotients (s_i).
"""

from __future__ import annotations

from .expr import MINUS_ONE, Delta, Expr, Number, Power, Product, memoised, postorder, rename


class Normalisations:
    """N_i Σ_j(N_j)^-n with up to n such numerators, as quotients N_i / Σ_j(N_j): the
    value is the same, and the softmax of a derivative reads as one (s_i δ_ik - s_i s_k)."""

    def __init__(self) -> None:
        self._memo: dict[Expr, Expr] = {}

    def __call__(self, node: Expr) -> Expr:
        return memoised(self._memo, node, self._regrouped)

    def _regrouped(self, node: Expr) -> Expr:
        node = node.map_children(self)
        return _quotients_in(node) if isinstance(node, Product) else node

    @staticmethod
    def quotients(root: Expr) -> set[Expr]:
        return {n for n in postorder(root) if _quotient_parts(n) is not None}


def _normaliser(node: Expr) -> tuple[Expr, str] | None:
    """(F, j) where `node` is Σ_j F_j: one summed index, one factor, as in Σ_j(exp(z_j))
    or, per row a, Σ_j(exp(S_aj))."""
    if not isinstance(node, Product) or len(node.factors) != 1 or len(node.summed) != 1:
        return None
    (summand,) = node.factors
    (summed,) = node.summed
    if isinstance(summand, Delta):  # a dimension, Σ_i δ_ii: dividing by it is a mean
        return None
    return (summand, summed) if summand.free == frozenset(node.out) | {summed} else None


def _quotients_in(product: Product) -> Expr:
    factors = list(product.factors)
    for position, factor in enumerate(factors):
        if not (isinstance(factor, Power) and isinstance(factor.exponent, Number)):
            continue
        n = factor.exponent.value
        normaliser = _normaliser(factor.base)
        if normaliser is None or n >= 0 or n.denominator != 1:
            continue
        reciprocal = Power(factor.base, MINUS_ONE)
        rest = [f for k, f in enumerate(factors) if k != position]
        left = -int(n)
        for k, other in enumerate(rest):
            if left and _numerator_of(other, normaliser, factor.base.free):
                rest[k] = Product((other, reciprocal), other.free)
                left -= 1
        for k, other in enumerate(rest):
            # A numerator inside a nested product that keeps the normaliser's indices:
            # Σ_j((G_ae ⊙ e_aj) K_jb) / Σ_j(e_aj) is Σ_j((G_ae ⊙ s_aj) K_jb).
            if left and isinstance(other, Product) and factor.base.free <= set(other.out):
                inner = _quotients_in(Product((*other.factors, reciprocal), other.out))
                if reciprocal not in getattr(inner, "factors", ()):
                    rest[k] = inner
                    left -= 1
        if left == -n:
            continue
        if left:
            rest.append(Power(factor.base, Number(-left)))
        if len(rest) == 1 and rest[0].free == frozenset(product.out):
            return rest[0]
        return Product(rest, product.out)
    return product


def _numerator_of(node: Expr, normaliser: tuple[Expr, str], kept: frozenset[str]) -> bool:
    """Whether `node` is the summand F_j of the normaliser Σ_j F_j at some index i."""
    summand, summed = normaliser
    if len(node.free - kept) != 1:
        return False
    (index,) = node.free - kept
    if index != summed and index in summand.all_indices:
        return False  # renaming j to i would capture an index of F
    return rename(summand, {summed: index}) is node


def _quotient_parts(node: Expr) -> tuple[Expr, Expr] | None:
    """(N_i, Σ_j N_j) where `node` is the quotient `_quotients_in` makes."""
    if not isinstance(node, Product) or len(node.factors) != 2:
        return None
    numerator, power = node.factors
    if not (isinstance(power, Power) and power.exponent == MINUS_ONE):
        return None
    return (numerator, power.base) if _normaliser(power.base) is not None else None


__all__ = ["Normalisations"]
