"""The rules for δ: contraction by renaming, ones as δ_ii, and when to multiply out.

Σ_b δ_ab F(b) = F(a): a δ over a summed index is removed by renaming that index in the
factors beside it, so a derivative never builds an identity matrix it can avoid. δ_ii is
ones over i (summed, the size of i); each keeps the input axis it runs over, so the
sizes stay known from the arrays after the tensors themselves are gone. Summed alone,
Σ_k δ_kk is a `dimension`: a scalar factor of its own that keeps its index's name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .expr import Delta, Epsilon, Expr, Indexed, Product, Sum, Tensor, rename


def sum_to_distribute(factors: list[Expr], out: frozenset[str]) -> int | None:
    """The position of a sum factor whose δ would contract if the product were multiplied
    out over it: a δ in one of its terms, or a δ beside it, over an index the product sums
    and the sum carries. None if there is none."""
    summed = frozenset().union(*(f.free for f in factors)) - out
    for position, factor in enumerate(factors):
        if not isinstance(factor, Sum) or not factor.free & summed:
            continue
        others = factors[:position] + factors[position + 1 :]
        for term in factor.terms:
            parts = list(term.factors) if isinstance(term, Product) else [term]
            if any(_contracts(d, [*others, *parts], summed) for d in [*others, *parts]):
                return position
    return None


def _contracts(delta: Expr, factors: list[Expr], summed: frozenset[str]) -> bool:
    """Whether `delta` (if it is a δ) can rename a summed index of its away in `factors`."""
    if not isinstance(delta, Delta) or len(set(delta.indices)) < 2:
        return False
    others = [f for f in factors if f is not delta]
    for old in set(delta.indices) & summed:
        new = next(i for i in delta.indices if i != old)
        if _replace_in_all(others, old, new) is not None:
            return True
    return False


def is_dimension(node: Expr) -> bool:
    """Σ_k δ_kk (or a product of such): the size of k, as a scalar."""
    return (
        isinstance(node, Product)
        and not node.free
        and all(isinstance(f, Delta) and len(set(f.indices)) == 1 for f in node.factors)
    )


def dimension(delta: Delta) -> Product:
    """Σ_k δ_kk, the size of k, as a scalar factor of its own.

    A dimension stays nested in the products it multiplies and keeps its index's name, so
    that name still sizes it (from `dims` or a tensor with that index) after renaming
    and flattening, which never reach inside it; and n n is n^2, not Σ_k δ_kk δ_kk = n.
    """
    return Product((delta,), ())


def sized_by_name(node: Expr, index: str) -> bool:
    """Whether only its name sizes `index`, free in `node` or summed by it: no tensor, ε
    or δ with an axis holds it (where no product between sums it). Only `dims=` gives
    such an index its size, by name, so renaming it would lose the size, or take another
    index's."""
    stack, seen = [node] if index in node.free else list(node.children), set()
    while stack:
        current = stack.pop()
        if current in seen or index not in current.free:
            continue
        seen.add(current)
        if isinstance(current, (Tensor, Epsilon)) or (
            isinstance(current, Delta) and current.axis is not None
        ):
            return False
        stack.extend(current.children)
    return True


def replace_index(node: Expr, old: str, new: str) -> Expr | None:
    """`node` with free index `old` renamed to `new`, or None if that is not expressible.

    Leaves (tensors, δ, ε) may repeat an index; a composite node holding both names can
    not take its diagonal, so the δ that would do it stays.
    """
    if new not in node.free:
        return rename(node, {old: new})
    if isinstance(node, Delta):
        return normal_delta((new if i == old else i for i in node.indices), node.axis)
    if isinstance(node, Indexed):
        return node.with_indices(new if i == old else i for i in node.indices)
    return None


def _replace_in_all(factors: list[Expr], old: str, new: str) -> list[Expr] | None:
    """`factors` with free index `old` renamed to `new` in each, or None if one can not take
    it (see `replace_index`)."""
    replaced = []
    for factor in factors:
        renamed = replace_index(factor, old, new) if old in factor.free else factor
        if renamed is None:
            return None
        replaced.append(renamed)
    return replaced


def normal_delta(indices: Iterable[str], axis=None) -> Delta:
    """δ with repeated indices dropped: δ_iij = δ_ij. δ_ii stays (ones on the diagonal)."""
    indices = tuple(indices)
    distinct = tuple(dict.fromkeys(indices))
    return Delta(distinct if len(distinct) > 1 else (distinct[0], distinct[0]), axis)


def contract_deltas(factors: list[Expr], out: frozenset[str]) -> list[Expr]:
    """Remove deltas by renaming: Σ_b δ_ab F(b) = F(a). A δ_kk left over a summed k no
    other factor carries is a `dimension`."""
    factors = [normal_delta(f.indices, f.axis) if isinstance(f, Delta) else f for f in factors]
    while True:
        contracted = _contract_one(factors, out)
        if contracted is None:
            return nest_dimensions(factors, out)
        factors = contracted


def nest_dimensions(factors: Iterable[Expr], out: Iterable[str]) -> list[Expr]:
    """`factors` of a product over `out` with each δ_kk over a summed k that no other
    factor carries made a `dimension`."""
    factors = list(factors)
    counts = Counter(i for f in factors for i in f.free)
    kept = frozenset(out)
    return [
        dimension(f)
        if isinstance(f, Delta)
        and len(f.free) == 1
        and not f.free & kept
        and counts[f.indices[0]] == 1
        else f
        for f in factors
    ]


def _contract_one(factors: list[Expr], out: frozenset[str]) -> list[Expr] | None:
    """The factors with one summed δ index renamed away, or None if none can be."""
    for position, delta in enumerate(factors):
        if not isinstance(delta, Delta):
            continue
        distinct = list(dict.fromkeys(delta.indices))
        others = factors[:position] + factors[position + 1 :]
        if len(distinct) == 1:
            if any(distinct[0] in f.free for f in others):
                return others  # δ_ii is 1 on the diagonal another factor already spans
            continue
        for old in distinct:
            if old in out:
                continue
            new = next(i for i in distinct if i != old)
            replaced = _replace_in_all(others, old, new)
            if replaced is None:
                continue
            if delta.axis is not None:  # a δ merged with this one runs over the same axis
                replaced = [
                    Delta(f.indices, delta.axis)
                    if isinstance(f, Delta) and f.axis is None and new in f.indices
                    else f
                    for f in replaced
                ]
            remaining = [i for i in distinct if i != old]
            if len(remaining) > 1:
                replaced.insert(position, Delta(remaining, delta.axis))
            elif not any(new in f.free for f in replaced):
                # Ones, or summed a dimension; sized as the δ was.
                replaced.insert(position, Delta((new, new), delta.axis))
            return replaced
    return None


__all__ = [
    "contract_deltas",
    "dimension",
    "is_dimension",
    "nest_dimensions",
    "normal_delta",
    "replace_index",
    "sized_by_name",
    "sum_to_distribute",
]
