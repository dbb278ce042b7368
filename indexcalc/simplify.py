"""Simplification: constructors that keep expressions simplified, and a canonical form.

`Algebra` builds sums, products, powers and function calls the way the rules say:
numbers fold, zeros vanish, nested products flatten, deltas contract by renaming
indices, and like terms collect. Terms are compared by a canonical key that ignores the
names of summed indices and the order of factors, so ``A_kj x_j + A_kl x_l`` collects to
``2 A_kj x_j``; a declared symmetric tensor compares equal to its transpose. Printed
names stay those of the first equal term, so results read in the user's own indices.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from fractions import Fraction
from typing import ClassVar

from .errors import IndexCalcError, SymmetryError
from .expr import (
    ONE,
    ZERO,
    Delta,
    Derivative,
    Epsilon,
    Expr,
    Func,
    Number,
    Power,
    Product,
    Sum,
    Tensor,
    deep_recursion,
    fresh_indices,
    rename,
    small_power,
)

# f(c) for numbers c where the value is exact.
_FOLDS = {
    ("exp", 0): 1,
    ("log", 1): 0,
    ("log1p", 0): 0,
    ("sin", 0): 0,
    ("cos", 0): 1,
    ("tan", 0): 0,
    ("tanh", 0): 0,
    ("sqrt", 0): 0,
    ("sqrt", 1): 1,
    ("sigmoid", 0): Fraction(1, 2),
}


class Algebra:
    """Simplifying constructors. `symmetric` names tensors known to equal their transpose."""

    _shared: ClassVar[dict[frozenset[str], Algebra]] = {}
    _CACHE_LIMIT = 200_000  # cached nodes before a shared instance starts afresh

    def __init__(self, symmetric: Iterable[str] = ()):
        self.symmetric = frozenset(symmetric)
        self._canon: dict[Expr, tuple] = {}
        self._skeletons: dict[bytes, tuple] = {}
        self._texts: dict[bytes, str] = {}
        self._simplified: dict[Expr, Expr] = {}

    @classmethod
    def shared(cls, symmetric: Iterable[str] = ()) -> Algebra:
        """One instance per symmetric set, so repeated calls reuse its caches."""
        key = _tensor_names(symmetric)
        algebra = cls._shared.get(key)
        if algebra is None or len(algebra._canon) + len(algebra._simplified) > cls._CACHE_LIMIT:
            algebra = cls._shared[key] = cls(key)
        return algebra

    # -- constructors -----------------------------------------------------------------

    def add(self, terms: Iterable[Expr]) -> Expr:
        """A sum with nested sums flattened, numbers folded and like terms collected."""
        constant = Fraction(0)
        collected: dict[tuple, list] = {}
        for term in _flatten_sum(terms):
            if isinstance(term, Number):
                constant += term.value
                continue
            coefficient, rest = split_coefficient(term)
            key = self.term_key(rest)
            if key in collected:
                collected[key][0] += coefficient
            else:
                collected[key] = [coefficient, rest]
        terms = [(c, rest) for c, rest in collected.values() if c != 0]
        if constant == 0 and len(terms) > 1:
            factored = self._factor_common(terms)
            if factored is not None:
                return factored
        result = [self.scale(c, rest) for c, rest in terms]
        result.sort(key=self._term_order)
        if constant != 0:
            result.insert(0, Number(constant))
        if not result:
            return ZERO
        if len(result) == 1:
            return result[0]
        return Sum(result)

    def _factor_common(self, terms: list[tuple[Fraction, Expr]]) -> Expr | None:
        """Σ_t c_t (C ⊙ R_t) → C ⊙ Σ_t c_t R_t when every term is a product sharing the
        factors C and that saves work: a shared summed factor (X_il X_ik once, not once per
        term), or a shared outer factor (one outer product with x_h, not one per term)."""
        if not all(isinstance(rest, Product) for _, rest in terms):
            return None
        out = terms[0][1].out
        if any(rest.out != out for _, rest in terms):
            return None
        terms = self._with_aligned_dummies(terms)
        common = Counter(terms[0][1].factors)
        for _, rest in terms[1:]:
            common &= Counter(rest.factors)
        if not common:
            return None
        remainders, kept = self._remainders(terms, common, out, summing=False)
        if len(kept) != 1 and all(f.free <= set(out) for f in common.elements()):
            # An outer factor may also come out of terms that sum over their own indices:
            # x_q (Σ_i a_i b_p - c_p), one outer product instead of one per term.
            remainders, kept = self._remainders(terms, common, out, summing=True)
        if len(kept) != 1:
            return None
        (inner_out,) = kept
        summed_shared = any(set(f.free) - set(out) for f in common.elements())
        if not summed_shared and inner_out >= set(out):
            return None  # factoring would save neither a contraction nor an outer product
        inner = self.add(self.scale(c, self.multiply(r, inner_out)) for c, r in remainders)
        return self.multiply([*common.elements(), inner], out)

    @staticmethod
    def _with_aligned_dummies(terms: list[tuple[Fraction, Product]]) -> list:
        """The terms with summed indices renamed to match the first term's where that makes
        a factor common that saves a whole contraction: X_kq in X_jq B_jp + B_pk X_kq
        brings q, which B_jp + B_pj lacks, so one matrix product replaces two. A factor
        whose indices the rest already has (x_j in A_kj x_j) would only trade a product
        for a sum, and the terms keep their own names."""
        reference = terms[0][1]
        aligned = [terms[0], *((c, _aligned_dummies(reference, rest)) for c, rest in terms[1:])]
        common = Counter(reference.factors)
        for _, rest in aligned[1:]:
            common &= Counter(rest.factors)
        rest_indices = frozenset().union(
            *(f.free for _, rest in aligned for f in rest.factors if f not in common)
        )
        if any(f.free - rest_indices for f in common if f not in terms[1][1].factors):
            return aligned
        return terms

    @staticmethod
    def _remainders(terms, common: Counter, out, summing: bool) -> tuple[list, set]:
        """Each term's coefficient and factors other than `common`, and the set of the
        indices each remainder keeps: all of its indices, or with `summing` only those of
        the output or of a common factor (it sums the rest itself)."""
        reach = set(out).union(*(f.free for f in common))
        remainders, kept = [], set()
        for coefficient, rest in terms:
            left = Counter(rest.factors)
            left.subtract(common)
            factors = list(left.elements())
            remainders.append((coefficient, factors))
            indices = frozenset().union(*(f.free for f in factors))
            kept.add(indices & reach if summing else indices)
        return remainders, kept

    def _term_order(self, term: Expr) -> tuple:
        """Positive terms first, then by canonical key, so `X - U V` reads as written."""
        coefficient, rest = split_coefficient(term)
        skeleton, names = self.term_key(rest)
        return coefficient < 0, self.skeleton_text(skeleton), str(names)

    def scale(self, coefficient, node: Expr) -> Expr:
        return self.multiply((Number(coefficient), node), node.free)

    def multiply(self, factors: Iterable[Expr], out: Iterable[str]) -> Expr:
        """The product of `factors` summed over every index not in `out`, simplified."""
        out = frozenset(out)
        coefficient, flat = self._flatten_product(factors, out)
        # A kept index no factor carries any more (its factor folded to a number): ones.
        carried = frozenset().union(*(f.free for f in flat))
        flat += ones_factors(out - carried, *flat)
        if coefficient == 0 or any(_vanishes(f) for f in flat):
            return ZERO
        flat = _contract_deltas(flat, out)
        if any(_vanishes(f) for f in flat):
            return ZERO
        position = _sum_to_distribute(flat, out)
        if position is not None:
            return self._distribute(coefficient, flat, position, out)
        flat = self._merge_powers(flat, out)
        flat = self._sigmoids(flat, out)
        coefficient *= _take_numbers(flat)
        if coefficient == 0:
            return ZERO
        if not flat:
            return Number(coefficient)
        if len(flat) == 1 and flat[0].free == out and coefficient == 1:
            return flat[0]
        if coefficient != 1:
            flat.insert(0, Number(coefficient))
        return Product(flat, out)

    def _distribute(self, coefficient, flat: list[Expr], position: int, out) -> Expr:
        """c · F · (T_1 + T_2 + …) as c F T_1 + c F T_2 + …, so the δ a term or F holds
        contracts instead of being built: Σ_i t_i (δ_ip … − …) is t_p … − Σ_i t_i …, with
        no i×p intermediate. A number term keeps the sum's indices as ones."""
        total = flat[position]
        others = [Number(coefficient), *flat[:position], *flat[position + 1 :]]
        terms = []
        for term in total.terms:
            missing = total.free - term.free
            terms.append(self.multiply([*others, term, *ones_factors(missing, total)], out))
        return self.add(terms)

    def ones(self, indices, *sources: Expr) -> Expr:
        """Ones over `indices` (summed, the size of each), as δ_ii."""
        factors = ones_factors(indices, *sources)
        return Product(factors, indices) if len(factors) > 1 else factors[0]

    def power(self, base: Expr, exponent: Expr) -> Expr:
        if isinstance(exponent, Number):
            n = exponent.value
            if n == 0:
                return self.ones(base.free, base) if base.free else ONE
            if n == 1:
                return base
            if (
                isinstance(base, Number)
                and n.denominator == 1
                and not (base.value == 0 and n < 0)
                and small_power(base.value, n)
            ):
                return Number(base.value ** int(n))
            if isinstance(base, Power) and isinstance(base.exponent, Number) and n.denominator == 1:
                return self.power(base.base, Number(base.exponent.value * n))
            if isinstance(base, Delta) and (n > 0 or len(set(base.indices)) == 1):
                return base  # δ is 0 or 1, and δ_ii is ones: a power changes nothing
        if isinstance(base, Number) and base.value == 1:
            return ONE
        return Power(base, exponent)

    def func(self, name: str, arg: Expr) -> Expr:
        if isinstance(arg, Number):
            folded = _fold_function(name, arg.value)
            if folded is not None:
                return Number(folded)
        return Func(name, arg)

    # -- whole expressions ------------------------------------------------------------

    def simplify(self, node: Expr) -> Expr:
        """`node` rebuilt through the constructors, with comma derivatives carried out."""
        done = self._simplified.get(node)
        if done is not None:
            return done
        if isinstance(node, Sum):
            result = self.add(self.simplify(t) for t in node.terms)
        elif isinstance(node, Product):
            factors = [self.simplify(f) for f in node.factors]
            # An index summed over factors that folded to numbers still counts: Σ_j 1 = n_j.
            lost = node.summed - frozenset().union(*(f.free for f in factors))
            if lost:
                factors.append(self.ones(lost, node))
            result = self.multiply(factors, node.out)
        elif isinstance(node, Power):
            result = self.power(self.simplify(node.base), self.simplify(node.exponent))
        elif isinstance(node, Func):
            result = self.func(node.name, self.simplify(node.arg))
        elif isinstance(node, Derivative):
            from .diff import Differentiator

            inner = self.simplify(node.expr)
            result = Differentiator(self, node.wrt).derivative(inner)
        elif isinstance(node, Delta):
            result = self.multiply((node,), node.free)
        elif isinstance(node, Epsilon):
            result = ZERO if len(set(node.indices)) != len(node.indices) else node
        else:
            result = node
        if node.free - result.free:  # folded to something with fewer indices: broadcast ones
            ones = self.ones(node.free - result.free, node)
            result = self.multiply([result, ones], node.free)
        self._simplified[node] = result
        self._simplified[result] = result
        return result

    # -- canonical keys ---------------------------------------------------------------

    def term_key(self, node: Expr) -> tuple:
        """A key equal for terms equal up to summed-index names, factor order and symmetry."""
        skeleton, names = self.canonical(node)
        return skeleton, self._instance(node, tuple((0, n) for n in names))

    def canonical(self, node: Expr) -> tuple[bytes, tuple[str, ...]]:
        """(skeleton, names): the node with its free indices replaced by positions
        ``("f", k)``, named by a digest of its structure, and the free index name at each
        position. A digest, unlike a counter, orders skeletons the same way in every
        process and after any prior work, so canonical names and term order are stable."""
        cached = self._canon.get(node)
        if cached is None:
            shallow, names = self._canonical(node)
            skeleton = _digest(shallow)
            self._skeletons.setdefault(skeleton, shallow)
            cached = (skeleton, names)
            self._canon[node] = cached
        return cached

    def skeleton_text(self, skeleton: bytes) -> str:
        """A stable text for a skeleton, for ordering terms the same way in every run."""
        text = self._texts.get(skeleton)
        if text is None:
            tag, label, payload = self._skeletons[skeleton]
            if tag in "NTDE":
                text = f"{tag}{label}{payload}"
            else:
                inner = ",".join(f"{self.skeleton_text(c)}{p}" for c, p in payload)
                text = f"{tag}{label}({inner})"
            self._texts[skeleton] = text
        return text

    def _instance(self, node: Expr, mapped: tuple) -> tuple:
        """The placeholders of a child as seen from its parent; symmetric ones sorted."""
        return tuple(sorted(mapped)) if self._is_symmetric(node) else mapped

    def _child_key(self, child: Expr, mapping: dict) -> tuple:
        skeleton, names = self.canonical(child)
        return skeleton, self._instance(child, tuple(mapping[n] for n in names))

    def _canonical(self, node: Expr) -> tuple[tuple, tuple[str, ...]]:
        if isinstance(node, Number):
            return ("N", "", node.value), ()
        if isinstance(node, (Tensor, Delta, Epsilon)):
            names = tuple(dict.fromkeys(node.indices))
            positions = tuple(("f", names.index(i)) for i in node.indices)
            head = {Tensor: "T", Delta: "D", Epsilon: "E"}[type(node)]
            if isinstance(node, Tensor):
                label = node.name
            else:  # δs over different tensors' axes may differ in size: never one term
                label = repr(node.axis) if isinstance(node, Delta) and node.axis else ""
            return (head, label, positions), names
        if isinstance(node, Product):
            return self._canonical_product(node)
        if isinstance(node, Sum):
            return self._canonical_sum(node)
        children = node.children
        tag = {Func: "F", Power: "W", Derivative: "V"}[type(node)]
        label = node.name if isinstance(node, Func) else ""
        names = tuple(dict.fromkeys(n for c in children for n in self.canonical(c)[1]))
        mapping = {n: ("f", k) for k, n in enumerate(names)}
        return (tag, label, tuple(self._child_key(c, mapping) for c in children)), names

    def _canonical_product(self, node: Product) -> tuple[tuple, tuple[str, ...]]:
        """Number the product's indices by how they connect its factors, not by their names.

        Colour refinement: a factor's colour is its skeleton plus the colours of its
        indices; an index's colour is the multiset of (factor colour, slot) it occupies.
        Indices are then numbered in colour order, so renaming dummies or reordering
        factors gives the same key; a symmetric tensor's slots are interchangeable.
        """
        out = set(node.out)
        factors = node.factors
        info = [self.canonical(f) for f in factors]
        symmetric = [self._is_symmetric(f) for f in factors]
        names = list(dict.fromkeys(n for _, ns in info for n in ns))
        index_colour = {n: 0 if n in out else 1 for n in names}
        factor_colour = _rank_colours([skeleton for skeleton, _ in info])
        for _ in range(3 if len(factors) > 2 else 1):
            slots: dict[str, list] = {n: [] for n in names}
            for k, (_, ns) in enumerate(info):
                for position, n in enumerate(ns):
                    slots[n].append((factor_colour[k], -1 if symmetric[k] else position))
            index_colour = dict(
                zip(
                    names,
                    _rank_colours([(index_colour[n], tuple(sorted(slots[n]))) for n in names]),
                    strict=True,
                )
            )
            factor_colour = _rank_colours(
                [
                    (skeleton, self._instance(f, tuple(index_colour[n] for n in ns)))
                    for f, (skeleton, ns) in zip(factors, info, strict=True)
                ]
            )
        # Ties: kept indices by name (their names are fixed here), summed ones as they come.
        ranked = sorted(names, key=lambda n: (n not in out, index_colour[n], n if n in out else ""))
        free_names = [n for n in ranked if n in out]
        mapping = {n: ("f", k) for k, n in enumerate(free_names)}
        mapping.update({n: ("b", k) for k, n in enumerate(n for n in ranked if n not in out)})
        keys = sorted(self._child_key(f, mapping) for f in factors)
        return ("P", "", tuple(keys)), tuple(free_names)

    def _canonical_sum(self, node: Sum) -> tuple[tuple, tuple[str, ...]]:
        ordered = sorted(node.terms, key=lambda t: self.canonical(t)[0])
        names = tuple(dict.fromkeys(n for t in ordered for n in self.canonical(t)[1]))
        mapping = {n: ("f", k) for k, n in enumerate(names)}
        keys = sorted(self._child_key(t, mapping) for t in node.terms)
        return ("S", "", tuple(keys)), names

    def _is_symmetric(self, node: Expr) -> bool:
        return isinstance(node, Delta) or (isinstance(node, Tensor) and node.name in self.symmetric)

    # -- product helpers --------------------------------------------------------------

    def _flatten_product(self, factors, out) -> tuple[Fraction, list[Expr]]:
        """Numbers multiplied out, nested products spliced in with clashing dummies renamed."""
        factors = list(factors)
        taken = set(out).union(*(f.all_indices for f in factors))
        coefficient = Fraction(1)
        flat: list[Expr] = []
        for position, factor in enumerate(factors):
            if isinstance(factor, Product):
                # A dimension Σ_k δ_kk stays nested (below), so its k clashes with nothing.
                others = set(out).union(
                    *(
                        f.all_indices
                        for k, f in enumerate(factors)
                        if k != position and not _is_dimension(f)
                    )
                )
                clashes = sorted(factor.summed & others)
                if clashes:
                    factor = self._sized_dimensions(factor, clashes, factors)
                    if _is_dimension(factor):
                        # Σ_k δ_kk keeps its name, so k is still sized like the k beside it.
                        flat.append(factor)
                        continue
                    fresh = fresh_indices(len(clashes), taken)
                    taken |= set(fresh)
                    factor = _rename_summed(factor, dict(zip(clashes, fresh, strict=True)))
                inner = factor.factors
            else:
                inner = (factor,)
            for item in inner:
                if isinstance(item, Number):
                    coefficient *= item.value
                else:
                    flat.append(item)
        return coefficient, flat

    def _sized_dimensions(self, product: Product, clashes, factors) -> Product:
        """A dimension Σ_i δ_ii about to be renamed keeps its size: a δ with no axis yet
        takes the axis of a tensor beside it indexed by i, which sized i by name before."""
        replaced = list(product.factors)
        for k, factor in enumerate(replaced):
            if not (isinstance(factor, Delta) and len(set(factor.indices)) == 1):
                continue
            (index,) = set(factor.indices)
            elsewhere = any(index in f.free for j, f in enumerate(replaced) if j != k)
            if index in clashes and not elsewhere and factor.axis is None:
                replaced[k] = ones_factors({index}, *factors)[0]
        return Product(replaced, product.out)

    def _sigmoids(self, factors: list[Expr], out: frozenset[str]) -> list[Expr]:
        """e^v ⊙ (1 + e^v)^-1 → σ(v), the form the chain rule gives for log(1 + e^v)."""
        for k, factor in enumerate(factors):
            base, exponent = _as_power(factor)
            if exponent is None or exponent >= 0 or not _is_one_plus_exp(base):
                continue
            v = base.terms[1].arg
            for m, other in enumerate(factors):
                other_base, other_exponent = _as_power(other)
                if m == k or other_base is not base.terms[1] or other_exponent is None:
                    continue
                if other_exponent <= 0 or not base.free <= out | _free_elsewhere(factors, k, m):
                    continue
                power = min(-exponent, other_exponent)
                rest = [f for j, f in enumerate(factors) if j not in (k, m)]
                rest.append(self.power(Func("sigmoid", v), Number(power)))
                rest.append(self.power(base, Number(exponent + power)))
                rest.append(self.power(base.terms[1], Number(other_exponent - power)))
                return self._merge_powers([f for f in rest if f is not ONE], out)
        return factors

    def _merge_powers(self, factors: list[Expr], out: frozenset[str]) -> list[Expr]:
        """f ⊙ f^n → f^(n+1) for factors over which nothing is summed."""
        exponents: dict[Expr, list[Fraction]] = {}
        counts = Counter(i for f in factors for i in f.free)
        for factor in factors:
            base, exponent = _as_power(factor)
            # Merging is always exact here; a summed pair like x_i x_i reads better unmerged.
            readable_pair = any(counts[i] == 2 and i not in out for i in base.free)
            if exponent is not None and not readable_pair:
                exponents.setdefault(base, []).append(exponent)
        if all(len(e) == 1 for e in exponents.values()):
            return factors
        merged, emitted = [], set()
        for factor in factors:
            base, _ = _as_power(factor)
            if base not in exponents or len(exponents[base]) == 1:
                merged.append(factor)
            elif base not in emitted:
                emitted.add(base)
                total = sum(exponents[base])
                if total == 0:
                    # f ⊙ f^-1 is 1, but keeps f's indices: ones, via δ_ii, contracted later.
                    merged.extend(ones_factors(base.free, base))
                else:
                    merged.append(self.power(base, Number(total)))
        return _contract_deltas(merged, out)


def _aligned_dummies(reference: Product, term: Product) -> Product:
    """`term` with summed indices renamed so that its tensors equal to `reference`'s up to
    those names become the same factor: X_kq in B_pk X_kq matches X_jq in X_jq B_jp, so
    the two terms share X_jq and it can come out."""
    mapping: dict[str, str] = {}
    for factor in term.factors:
        if not isinstance(factor, Tensor) or factor in reference.factors:
            continue
        for candidate in reference.factors:
            pairs = _dummy_pairs(factor, candidate, term.summed, reference.summed)
            if pairs is None:
                continue
            merged = {**mapping, **pairs}
            if all(mapping.get(a, b) == b for a, b in pairs.items()) and len(
                set(merged.values())
            ) == len(merged):
                mapping = merged
                break
    mapping = {a: b for a, b in mapping.items() if a != b}
    if not mapping:
        return term
    # Summed indices in the way of the new names move aside to fresh ones.
    taken = term.all_indices | reference.all_indices
    clashes = sorted((set(mapping.values()) & term.summed) - set(mapping))
    mapping.update(zip(clashes, fresh_indices(len(clashes), taken), strict=True))
    return Product((rename(f, mapping) for f in term.factors), term.out)


def _dummy_pairs(factor: Tensor, candidate: Expr, summed, reference_summed) -> dict | None:
    """The renaming of `factor`'s summed indices that makes it `candidate`, or None."""
    if not (
        isinstance(candidate, Tensor)
        and candidate.name == factor.name
        and len(candidate.indices) == len(factor.indices)
    ):
        return None
    pairs: dict[str, str] = {}
    for mine, theirs in zip(factor.indices, candidate.indices, strict=True):
        if mine in summed and theirs in reference_summed:
            if pairs.setdefault(mine, theirs) != theirs:
                return None
        elif mine != theirs or theirs in reference_summed:
            return None
    return pairs


def _sum_to_distribute(factors: list[Expr], out: frozenset[str]) -> int | None:
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


def _contracts(delta: Expr, factors: list[Expr], summed) -> bool:
    """Whether `delta` (if it is a δ) can rename a summed index of its away in `factors`."""
    if not isinstance(delta, Delta) or len(set(delta.indices)) < 2:
        return False
    for old in set(delta.indices) & summed:
        new = next(i for i in delta.indices if i != old)
        if all(
            _replace_index(f, old, new) is not None
            for f in factors
            if f is not delta and old in f.free
        ):
            return True
    return False


def ones_factors(indices, *sources: Expr) -> list[Delta]:
    """δ_ii for each index i: ones over i, or summed the size of i. Each keeps the axis of
    a tensor in `sources` indexed by i, so its size stays known from that tensor's array
    after the tensor itself is gone."""
    axes: dict[str, tuple[str, int]] = {}
    for source in sources:
        for node in _nodes(source):
            if isinstance(node, Tensor):
                for axis, index in enumerate(node.indices):
                    axes.setdefault(index, (node.name, axis))
            elif isinstance(node, Delta) and node.axis is not None:
                for index in node.indices:
                    axes.setdefault(index, node.axis)
    return [Delta((i, i), axes.get(i)) for i in sorted(indices)]


def _is_dimension(node: Expr) -> bool:
    """Σ_k δ_kk (or a product of such): the size of k, as a scalar."""
    return (
        isinstance(node, Product)
        and not node.free
        and all(isinstance(f, Delta) and len(set(f.indices)) == 1 for f in node.factors)
    )


def _nodes(root: Expr) -> list[Expr]:
    """The distinct nodes of `root`."""
    found, stack, seen = [], [root], set()
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            found.append(node)
            stack.extend(node.children)
    return found


def declared_symmetric(symmetric, node: Expr) -> frozenset[str]:
    """The names in `symmetric`, checked against how `node` uses them.

    ``symmetric=["A"]`` means A_ij = A_ji: a matrix equal to its transpose. A tensor of
    higher rank has several symmetries a user may mean (all permutations, or an elasticity
    tensor's minor and major symmetries), so declaring one is an error, not a guess.
    """
    names = _tensor_names(symmetric)
    for tensor in _nodes(node):
        if isinstance(tensor, Tensor) and tensor.name in names and len(tensor.indices) > 2:
            raise SymmetryError(
                f"symmetric= declares a matrix equal to its transpose (A_ij = A_ji), but "
                f"'{tensor.name}' has {len(tensor.indices)} indices "
                f"({tensor.name}_{''.join(tensor.indices)}); which of its index symmetries "
                f"hold is not implied, so only rank-2 tensors may be declared symmetric. "
                f"Leave '{tensor.name}' out of symmetric= (results stay correct, only less "
                f"collected), or write its symmetrised form explicitly"
            )
    return names


def _tensor_names(symmetric) -> frozenset[str]:
    """The names in `symmetric`: one name, or an iterable of names."""
    if isinstance(symmetric, str):
        return frozenset((symmetric,))
    try:
        names = frozenset(symmetric)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        raise IndexCalcError(f"symmetric must name tensors, like ['A'], not {symmetric!r}")
    return names


def _digest(shallow: tuple) -> bytes:
    """A stable name for a skeleton: its children are digests already, so this is O(1)."""
    return hashlib.blake2b(repr(shallow).encode(), digest_size=16).digest()


def _rank_colours(colours: list) -> list[int]:
    """Each colour replaced by its rank among the distinct colours."""
    order = {c: k for k, c in enumerate(sorted(set(colours)))}
    return [order[c] for c in colours]


def split_coefficient(node: Expr) -> tuple[Fraction, Expr]:
    """(c, rest) with node = c · rest and rest carrying no numeric factor."""
    if isinstance(node, Product) and node.factors and isinstance(node.factors[0], Number):
        rest = node.factors[1:]
        value = node.factors[0].value
        if len(rest) == 1 and rest[0].free == node.free:
            return value, rest[0]
        return value, Product(rest, node.out)
    if isinstance(node, Number):
        return node.value, ONE
    return Fraction(1), node


def _flatten_sum(terms: Iterable[Expr]):
    for term in terms:
        if isinstance(term, Sum):
            yield from term.terms
        elif term is not ZERO:
            yield term


def _rename_summed(product: Product, mapping: dict[str, str]) -> Product:
    return Product((rename(f, mapping) for f in product.factors), product.out)


def _vanishes(node: Expr) -> bool:
    return node is ZERO or (
        isinstance(node, Epsilon) and len(set(node.indices)) != len(node.indices)
    )


def _take_numbers(factors: list[Expr]) -> Fraction:
    """Remove number factors from the list in place; return their product."""
    value = Fraction(1)
    numbers = [f for f in factors if isinstance(f, Number)]
    for number in numbers:
        value *= number.value
        factors.remove(number)
    return value


def _is_one_plus_exp(node: Expr) -> bool:
    return (
        isinstance(node, Sum)
        and len(node.terms) == 2
        and node.terms[0] is ONE
        and isinstance(node.terms[1], Func)
        and node.terms[1].name == "exp"
    )


def _free_elsewhere(factors: list[Expr], *skip: int) -> frozenset[str]:
    return frozenset().union(*(f.free for j, f in enumerate(factors) if j not in skip))


def _as_power(node: Expr) -> tuple[Expr, Fraction | None]:
    """(base, numeric exponent); the exponent is None for a number or a symbolic power."""
    if isinstance(node, Number):
        return node, None
    if isinstance(node, Power):
        if isinstance(node.exponent, Number):
            return node.base, node.exponent.value
        return node, None
    return node, Fraction(1)


def _replace_index(node: Expr, old: str, new: str) -> Expr | None:
    """`node` with free index `old` renamed to `new`, or None if that is not expressible.

    Leaves (tensors, δ, ε) may repeat an index; a composite node holding both names can
    not take its diagonal, so the δ that would do it stays.
    """
    if new not in node.free:
        return rename(node, {old: new})
    swap = {old: new}
    if isinstance(node, Tensor):
        return Tensor(node.name, (swap.get(i, i) for i in node.indices))
    if isinstance(node, Delta):
        return _normal_delta((swap.get(i, i) for i in node.indices), node.axis)
    if isinstance(node, Epsilon):
        return Epsilon(swap.get(i, i) for i in node.indices)
    return None


def _normal_delta(indices: Iterable[str], axis=None) -> Delta:
    """δ with repeated indices dropped: δ_iij = δ_ij. δ_ii stays (ones on the diagonal)."""
    indices = tuple(indices)
    distinct = tuple(dict.fromkeys(indices))
    return Delta(distinct if len(distinct) > 1 else (distinct[0], distinct[0]), axis)


def _contract_deltas(factors: list[Expr], out: frozenset[str]) -> list[Expr]:
    """Remove deltas by renaming: Σ_b δ_ab F(b) = F(a)."""
    factors = [_normal_delta(f.indices, f.axis) if isinstance(f, Delta) else f for f in factors]
    while True:
        contracted = _contract_one(factors, out)
        if contracted is None:
            return factors
        factors = contracted


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
            replaced = [_replace_index(f, old, new) if old in f.free else f for f in others]
            if any(r is None for r in replaced):
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


def _fold_function(name: str, value: Fraction) -> Fraction | None:
    if name == "abs":
        return abs(value)
    if name == "sign":
        return Fraction((value > 0) - (value < 0))
    if name == "step":
        return Fraction(1 if value > 0 else 0)
    if name == "relu":
        return max(value, Fraction(0))
    folded = _FOLDS.get((name, value))
    return None if folded is None else Fraction(folded)


@deep_recursion
def simplify(expr_or_text, *, symmetric: Iterable[str] = (), var: str = "x") -> Expr:
    """The expression with comma derivatives carried out, in simplified canonical form.

    Parameters
    ----------
    expr_or_text : Expr or str
        An expression or notation to parse (``var`` names the comma-derivative variable).
    symmetric : names of matrices equal to their transpose, e.g. ``["A"]`` for A_ij = A_ji.
        Only rank-2 tensors may be declared (see `declared_symmetric`).
    """
    from .syntax import parse

    node = parse(expr_or_text, var=var) if isinstance(expr_or_text, str) else expr_or_text
    if not isinstance(node, Expr):
        raise IndexCalcError(f"expected an expression or notation, got {type(node).__name__}")
    return Algebra.shared(declared_symmetric(symmetric, node)).simplify(node)


__all__ = ["Algebra", "declared_symmetric", "simplify", "split_coefficient"]
