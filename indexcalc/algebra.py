"""Simplifying constructors: expressions built the way the rules say.

`Algebra` builds sums, products, powers and function calls so that numbers fold, zeros
vanish, nested products flatten, deltas contract (see `deltas`), like terms collect by
their canonical key (see `canonical`) and common factors come out where that saves work.
Printed names stay those of the first equal term, so results read in the user's own
indices. `Normaliser` rebuilds a whole expression through the constructors.

The shared instances, one per set of symmetric tensors, live in `SHARED_ALGEBRAS`;
`clear_caches()` empties them. Threads share them safely: see `AlgebraCache`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from fractions import Fraction

from .canonical import CanonicalForm, tensor_names
from .deltas import (
    contract_deltas,
    dimension,
    is_dimension,
    nest_dimensions,
    sized_by_name,
    sum_to_distribute,
)
from .dispatch import Pass
from .errors import TooLargeError
from .expr import (
    ONE,
    ZERO,
    Delta,
    Epsilon,
    Expr,
    Func,
    Number,
    Power,
    Product,
    Sum,
    Tensor,
    connected_parts,
    fits,
    fresh_index,
    fresh_indices,
    memoised,
    rename,
    small_power,
)
from .sizes import ones_factors

# f(c) for numbers c where the value is exact.
_FOLDS: dict[tuple[str, Fraction | int], Fraction | int] = {
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


MAX_FACTORS = 2_000  # a flattened product longer than this is surely a runaway definition
# The factors of all the products one differentiation may build. The product rule makes a
# product that uses one matrix n times into n terms of n factors each: n = 200 builds
# about 80,000 (3 s), n = 245 the limit; a 16-layer network's gradient about 1,000, a chain
# of 490 functions (tanh(tanh(…))) the limit too.
MAX_BUILT_FACTORS = 120_000
_budget: ContextVar[list[int] | None] = ContextVar("indexcalc_factor_budget", default=None)


class Algebra:
    """Simplifying constructors. `symmetric` names tensors known to equal their transpose."""

    def __init__(self, symmetric: Iterable[str] = ()):
        self.form = CanonicalForm(symmetric)
        self.symmetric = self.form.symmetric
        # The results of whole-expression passes by pass name, shared by every thread that
        # uses this instance: each entry is a function of its key, written whole, so
        # threads that race store equal values. The lock guards the table of memos.
        self._memos: dict[str, dict[Expr, Expr]] = {}
        self._memos_lock = threading.Lock()

    def memo(self, name: str) -> dict[Expr, Expr]:
        """A cache of results of one whole-expression pass, kept with this instance."""
        with self._memos_lock:
            return self._memos.setdefault(name, {})

    def cached_count(self) -> int:
        """How many results this instance holds in its caches."""
        with self._memos_lock:
            memos = list(self._memos.values())
        return len(self.form) + sum(len(m) for m in memos)

    def normalise(self, node: Expr) -> Expr:
        """`node` rebuilt through the constructors; comma derivatives stay as written
        (`diff.carry_out` carries them out)."""
        return Normaliser(self, self.memo("normalised"))(node)

    # -- constructors -----------------------------------------------------------------

    def add(self, terms: Iterable[Expr]) -> Expr:
        """A sum with nested sums flattened, numbers folded and like terms collected.

        A term that is a number times ones (`broadcast_constant`) folds like a number; a
        sum that folds to a number keeps its free indices, as that number times ones.
        """
        terms = list(_flatten_sum(terms))
        result = self._collect(terms)
        if _expanding.get() or len(terms) > MAX_EXPANDED_TERMS:
            return result
        if not any(_expandable(split_coefficient(t)[1]) for t in terms):
            return result
        # Multiplied out, the terms may cancel or collect: -(1 - y) - y is -1, and
        # σ(1 - σ) + σ² is σ. Kept only where that is smaller.
        budget = _budget.get()
        left = budget[0] if budget is not None else 0
        token = _expanding.set(True)
        try:
            expanded = self._collect([piece for t in terms for piece in self._multiplied_out(t)])
        finally:
            _expanding.reset(token)
        if _tree_size(expanded, EXPANSION_SIZE) < _tree_size(result, EXPANSION_SIZE):
            return expanded
        if budget is not None:
            budget[0] = left  # a trial that is not kept is not counted as work built
        return result

    def _multiplied_out(self, term: Expr) -> list[Expr]:
        """`term` as a list of terms, multiplied out over its first sum factor."""
        coefficient, rest = split_coefficient(term)
        if isinstance(rest, Sum):
            return [self.scale(coefficient, t) for t in rest.terms]
        if not _expandable(rest):
            return [term]
        assert isinstance(rest, Product)  # _expandable says so
        position = next(k for k, f in enumerate(rest.factors) if _short_sum(f))
        total = rest.factors[position]
        assert isinstance(total, Sum)
        others = [Number(coefficient), *rest.factors[:position], *rest.factors[position + 1 :]]
        return [
            self.multiply([*others, t, *ones_factors(total.free - t.free, total)], rest.out)
            for t in total.terms
        ]

    def _collect(self, terms: list[Expr]) -> Expr:
        constant = Fraction(0)
        collected: dict[tuple, list] = {}
        for term in terms:
            number = broadcast_constant(term)
            if number is not None:
                constant += number
                continue
            coefficient, rest = split_coefficient(term)
            key = self.form.term_key(rest)
            if key in collected:
                collected[key][0] += coefficient
            else:
                collected[key] = [coefficient, rest]
        pairs: list[tuple[Fraction, Expr]] = [(c, rest) for c, rest in collected.values() if c != 0]
        if constant == 0 and len(pairs) > 1:
            factored = self._factor_common(pairs)
            if factored is not None:
                return factored
        result = [self.scale(c, rest) for c, rest in pairs]
        result.sort(key=self._term_order)
        if not result:
            free = frozenset().union(*(t.free for t in terms))
            return self.scale(constant, self.ones(free, *terms)) if free else Number(constant)
        if constant != 0:
            result.insert(0, Number(constant))
        if len(result) == 1:
            return result[0]
        return Sum(result)

    def _factor_common(self, terms: list[tuple[Fraction, Expr]]) -> Expr | None:
        """Σ_t c_t (C ⊙ R_t) → C ⊙ Σ_t c_t R_t when every term is a product sharing the
        factors C and that saves work: a shared summed factor (X_il X_ik once, not once per
        term), or a shared outer factor (one outer product with x_h, not one per term)."""
        products = [(c, rest) for c, rest in terms if isinstance(rest, Product)]
        if len(products) != len(terms):
            return None
        out = products[0][1].out
        if any(rest.out != out for _, rest in products):
            return None
        if not _kinds_in_common(rest for _, rest in products):
            return None
        products = self._with_aligned_dummies(products)
        common = Counter(products[0][1].factors)
        for _, rest in products[1:]:
            common &= Counter(rest.factors)
        if not common:
            return None
        remainders, kept = self._remainders(products, common, out, summing=False)
        if len(kept) != 1 and all(f.free <= set(out) for f in common.elements()):
            # An outer factor may also come out of terms that sum over their own indices:
            # x_q (Σ_i a_i b_p - c_p), one outer product instead of one per term.
            remainders, kept = self._remainders(products, common, out, summing=True)
        if len(kept) != 1:
            return None
        (inner_out,) = kept
        summed_shared = any(set(f.free) - set(out) for f in common.elements())
        if not summed_shared and inner_out >= set(out):
            return None  # factoring would save neither a contraction nor an outer product
        inner = self.add(self.scale(c, self.multiply(r, inner_out)) for c, r in remainders)
        return self.multiply([*common.elements(), inner], out)

    @staticmethod
    def _with_aligned_dummies(
        terms: list[tuple[Fraction, Product]],
    ) -> list[tuple[Fraction, Product]]:
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
    def _remainders(
        terms: list[tuple[Fraction, Product]],
        common: Counter[Expr],
        out: Iterable[str],
        summing: bool,
    ) -> tuple[list[tuple[Fraction, list[Expr]]], set[frozenset[str]]]:
        """Each term's coefficient and factors other than `common`, and the set of the
        indices each remainder keeps: all of its indices, or with `summing` only those of
        the output or of a common factor (it sums the rest itself)."""
        reach = set(out).union(*(f.free for f in common))
        remainders: list[tuple[Fraction, list[Expr]]] = []
        kept: set[frozenset[str]] = set()
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
        skeleton, names = self.form.term_key(rest)
        return coefficient < 0, self.form.skeleton_text(skeleton), str(names)

    def scale(self, coefficient, node: Expr) -> Expr:
        if coefficient == 1:
            return node
        return self.multiply((Number(coefficient), node), node.free)

    def negated(self, node: Expr) -> Expr:
        """-node, with a sum's terms negated one by one: -(-b - X w) is b + X w."""
        if isinstance(node, Sum):
            return self.add(self.scale(-1, term) for term in node.terms)
        return self.scale(-1, node)

    def multiply(self, factors: Iterable[Expr], out: Iterable[str]) -> Expr:
        """The product of `factors` summed over every index not in `out`, simplified."""
        out = frozenset(out)
        coefficient, flat = self._flatten_product(factors, out)
        _check_length(len(flat))
        _spend(len(flat))
        # A kept index no factor carries any more (its factor folded to a number): ones.
        carried = frozenset().union(*(f.free for f in flat))
        flat += ones_factors(out - carried, *flat)
        if coefficient == 0 or any(_vanishes(f) for f in flat):
            return self.zeros(out, *flat)
        flat = contract_deltas(flat, out)
        if any(_vanishes(f) for f in flat):
            return self.zeros(out, *flat)
        position = sum_to_distribute(flat, out)
        if position is not None:
            return self._distribute(coefficient, flat, position, out)
        flat = self._merge_equal_scalars(flat, out)
        flat = self._merge_powers(flat, out)
        flat = self._sigmoids(flat, out)
        coefficient *= _take_numbers(flat)
        if coefficient == 0:
            return self.zeros(out, *flat)
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
        assert isinstance(total, Sum)  # sum_to_distribute finds only sums
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

    def zeros(self, indices, *sources: Expr) -> Expr:
        """Zeros over `indices`: 0 times `ones` (each δ_ii keeps the axis of a tensor in
        `sources` indexed by i), so a product or sum that vanishes keeps its shape. With
        no indices, the number 0."""
        if not indices:
            return ZERO
        return Product((ZERO, *ones_factors(indices, *sources)), indices)

    def power(self, base: Expr, exponent: Expr) -> Expr:
        constant = broadcast_constant(base)
        if constant is not None and base.free and isinstance(exponent, Number):
            value = self.power(Number(constant), exponent)  # c^n ⊙ ones where c^n folds
            if isinstance(value, Number):
                return self.scale(value.value, self.ones(base.free, base))
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
            if (
                isinstance(base, Power)
                and isinstance(base.exponent, Number)
                and n.denominator == 1
                and fits(base.exponent.value * n)
            ):
                return self.power(base.base, Number(base.exponent.value * n))
            if isinstance(base, Delta) and (n > 0 or len(set(base.indices)) == 1):
                return base  # δ is 0 or 1, and δ_ii is ones: a power changes nothing
            exponent_of_e = _one_plus_exp(base)
            if n == -1 and exponent_of_e is not None:  # 1 / (1 + e^w) = σ(-w)
                return self.func("sigmoid", self.negated(exponent_of_e))
        if isinstance(base, Number) and base.value == 1:
            return ONE
        return Power(base, exponent)

    def func(self, name: str, arg: Expr) -> Expr:
        constant = broadcast_constant(arg)
        if constant is not None and arg.free:
            value = self.func(name, Number(constant))  # f(c) ⊙ ones where f(c) folds
            if isinstance(value, Number):
                return self.scale(value.value, self.ones(arg.free, arg))
        if isinstance(arg, Number):
            folded = _fold_function(name, arg.value)
            if folded is not None:
                return Number(folded)
        if isinstance(arg, Func) and (name, arg.name) in _INVERSES:
            return arg.arg  # log(exp(u)) = u; exp(log(u)) = u where log(u) is defined
        if name == "log":
            split = self._log_of_positive_product(arg)
            if split is not None:
                return split
        return Func(name, arg)

    def _log_of_positive_product(self, arg: Expr) -> Expr | None:
        """log(u v^p) = log(u) + p log(v) for factors known to be positive (exp, σ, sums of
        them, positive numbers), each over all of the product's indices or none, so the
        log-softmax log(exp(z_i) / Σ_j(exp(z_j))) becomes z_i - log(Σ_j(exp(z_j))). None
        where the rule does not apply; it never applies where it could change a value."""
        if isinstance(arg, Power) and isinstance(arg.exponent, Number) and is_positive(arg.base):
            return self.scale(arg.exponent.value, self.func("log", arg.base))
        if not isinstance(arg, Product) or arg.summed or len(arg.factors) < 2:
            return None
        out = frozenset(arg.out)
        if not all(is_positive(f) and f.free in (out, frozenset()) for f in arg.factors):
            return None
        terms = [self.func("log", f) for f in arg.factors]
        return self.add(self.multiply([t, *ones_factors(out - t.free, arg)], out) for t in terms)

    # -- product helpers --------------------------------------------------------------

    def _flatten_product(self, factors, out) -> tuple[Fraction, list[Expr]]:
        """Numbers multiplied out, nested products spliced in with clashing dummies renamed.

        A dimension Σ_k δ_kk stays nested, one per index, and keeps its name (see
        `deltas.dimension`), so its k clashes with nothing.
        """
        factors = list(factors)
        taken = set(out).union(*(f.all_indices for f in factors))
        coefficient = Fraction(1)
        flat: list[Expr] = []
        for position, factor in enumerate(factors):
            if is_dimension(factor):
                flat.extend(self._sized_dimensions(factor, factors))
                continue
            if isinstance(factor, Product):
                nested = nest_dimensions(factor.factors, factor.out)
                if nested != list(factor.factors):
                    factor = Product(nested, factor.out)
                others = set(out).union(
                    *(
                        f.all_indices
                        for k, f in enumerate(factors)
                        if k != position and not is_dimension(f)
                    )
                )
                clashes = sorted(factor.summed & others)
                if any(sized_by_name(factor, index) for index in clashes):
                    flat.append(factor)  # renaming would lose a size: it stays nested
                    continue
                if clashes:
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

    @staticmethod
    def _sized_dimensions(product: Product, factors) -> list[Expr]:
        """A product of dimensions Σ_k δ_kk as one `dimension` per index k, each keeping
        its size: a δ with no axis takes the axis of a tensor beside it indexed by k,
        which sized k by name before."""
        deltas: dict[str, Delta] = {}
        for delta in product.factors:
            assert isinstance(delta, Delta)  # is_dimension says so
            (index,) = delta.free
            if delta.axis is None:
                delta = ones_factors({index}, *factors)[0]
            if index not in deltas or deltas[index].axis is None:
                deltas[index] = delta
        return [dimension(deltas[index]) for index in sorted(deltas)]

    def _sigmoids(self, factors: list[Expr], out: frozenset[str]) -> list[Expr]:
        """e^v ⊙ (1 + e^v)^-1 → σ(v), the form the chain rule gives for log(1 + e^v);
        e^v ⊙ σ(-v) → σ(v), as `power` writes (1 + e^v)^-1."""
        factors = self._exp_times_sigmoid(factors, out)
        if not any(isinstance(f, Power) and isinstance(f.base, Sum) for f in factors):
            return factors  # no (1 + e^v)^-n: the common case, checked cheaply
        for k, factor in enumerate(factors):
            base, exponent = _as_power(factor)
            exp = _exp_term(base)
            if exponent is None or exponent >= 0 or exp is None:
                continue
            v = exp.arg
            for m, other in enumerate(factors):
                other_base, other_exponent = _as_power(other)
                if m == k or other_base is not exp or other_exponent is None:
                    continue
                if other_exponent <= 0 or not base.free <= out | _free_elsewhere(factors, k, m):
                    continue
                power = min(-exponent, other_exponent)
                rest = [f for j, f in enumerate(factors) if j not in (k, m)]
                rest.append(self.power(Func("sigmoid", v), Number(power)))
                rest.append(self.power(base, Number(exponent + power)))
                rest.append(self.power(exp, Number(other_exponent - power)))
                return self._merge_powers([f for f in rest if f is not ONE], out)
        return factors

    def _exp_times_sigmoid(self, factors: list[Expr], out: frozenset[str]) -> list[Expr]:
        exps: list[tuple[int, Func, Fraction]] = []
        for m, other in enumerate(factors):
            base, exponent = _as_power(other)
            if (
                isinstance(base, Func)
                and base.name == "exp"
                and exponent is not None
                and exponent >= 1
            ):
                exps.append((m, base, exponent))
        if not exps:
            return factors  # the common case: one pass, no pairs to try
        for k, sigmoid in enumerate(factors):
            if not (isinstance(sigmoid, Func) and sigmoid.name == "sigmoid"):
                continue
            for m, base, exponent in exps:
                v = base.arg
                if not _negatives(v, sigmoid.arg):
                    continue
                if not v.free <= out | _free_elsewhere(factors, k, m):
                    continue
                rest = [f for j, f in enumerate(factors) if j not in (k, m)]
                rest.append(Func("sigmoid", v))
                if exponent > 1:
                    rest.append(self.power(base, Number(exponent - 1)))
                return self._merge_powers(rest, out)
        return factors

    def _merge_equal_scalars(self, factors: list[Expr], out: frozenset[str]) -> list[Expr]:
        """Scalar parts of a product equal up to the names of their summed indices are one
        power: x_i x_i x_j x_j → (x_i x_i)^2, and (x_i x_i)^2 x_j x_j → (x_i x_i)^3. So
        definitions that square a scalar again and again stay a power, not thousands of
        factors that every later step must walk."""
        if sum(1 for f in factors if not f.free & out) < 2:
            return factors  # fewer than two factors could be in a scalar part
        parts = _scalar_parts(factors, out)
        if len(parts) < 2:
            return factors
        groups: dict[tuple, list[tuple[list[int], Expr, Fraction]]] = {}
        for positions in parts:
            if len(positions) == 1:
                base, exponent = _as_power(factors[positions[0]])
                if exponent is None or not isinstance(base, Product):
                    continue  # a lone tensor or number: `_merge_powers` merges c c
            else:
                base, exponent = Product([factors[k] for k in positions], ()), Fraction(1)
            groups.setdefault(self.form.term_key(base), []).append((positions, base, exponent))
        repeated = [group for group in groups.values() if len(group) > 1]
        if not repeated:
            return factors
        merged: dict[int, Expr] = {}  # the power, in place of its first factor
        dropped: set[int] = set()
        for group in repeated:
            total = sum((exponent for *_, exponent in group), Fraction(0))
            first = min(group[0][0])
            merged[first] = self.power(group[0][1], Number(total))
            dropped.update(k for positions, *_ in group for k in positions if k != first)
        return [merged.get(k, f) for k, f in enumerate(factors) if k not in dropped]

    def _merge_powers(self, factors: list[Expr], out: frozenset[str]) -> list[Expr]:
        """f ⊙ f^n → f^(n+1) for factors over which nothing is summed."""
        bases = [f.base if isinstance(f, Power) else f for f in factors]
        if len(set(bases)) == len(bases):
            return factors  # no base twice: nothing to merge, checked cheaply
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
        return contract_deltas(merged, out)


class Normaliser(Pass):
    """A whole expression rebuilt bottom-up through `Algebra`'s constructors, memoised."""

    prefix = "_normalise_"
    description = "simplification"

    def __init__(self, algebra: Algebra, memo: dict[Expr, Expr]):
        self.algebra = algebra
        self._memo = memo

    def __call__(self, node: Expr) -> Expr:
        return memoised(self._memo, node, self._normalised)

    def _normalised(self, node: Expr) -> Expr:
        result = self.dispatch(node)
        if node.free - result.free:  # folded to something with fewer indices: broadcast ones
            ones = self.algebra.ones(node.free - result.free, node)
            result = self.algebra.multiply([result, ones], node.free)
        self._memo[result] = result
        return result

    def _normalise_Expr(self, node: Expr) -> Expr:
        """Leaves as they are; any other node rebuilt from its normalised children."""
        return node.map_children(self)

    def _normalise_Sum(self, node: Sum) -> Expr:
        return self.algebra.add(self(t) for t in node.terms)

    def _normalise_Product(self, node: Product) -> Expr:
        node = spliced(node)
        factors = [self(f) for f in node.factors]
        # An index summed over factors that folded to numbers still counts: Σ_j 1 = n_j.
        lost = node.summed - frozenset().union(*(f.free for f in factors))
        if lost:
            factors.append(self.algebra.ones(lost, node))
        return self.algebra.multiply(factors, node.out)

    def _normalise_Power(self, node: Power) -> Expr:
        return self.algebra.power(self(node.base), self(node.exponent))

    def _normalise_Func(self, node: Func) -> Expr:
        return self.algebra.func(node.name, self(node.arg))

    def _normalise_Delta(self, node: Delta) -> Expr:
        return self.algebra.multiply((node,), node.free)

    def _normalise_Epsilon(self, node: Epsilon) -> Expr:
        return ZERO if len(set(node.indices)) != len(node.indices) else node


class AlgebraCache:
    """The shared `Algebra` instances, one per set of symmetric tensors, so that repeated
    calls reuse their caches. One that has cached more than `limit` results starts afresh.

    Threads share the instances: a lock makes the choice of instance atomic, and each
    instance's caches hold values that are functions of their keys (see `Algebra`), so a
    thread reads an entry whole or not at all. A call keeps the instance it was given
    even if another thread empties this cache meanwhile.
    """

    def __init__(self, limit: int = 200_000):
        self.limit = limit
        self._instances: dict[frozenset[str], Algebra] = {}
        self._lock = threading.Lock()  # one instance per key, even when threads ask at once

    def get(self, symmetric: Iterable[str] = ()) -> Algebra:
        key = tensor_names(symmetric)
        with self._lock:
            algebra = self._instances.get(key)
            if algebra is None or algebra.cached_count() > self.limit:
                algebra = self._instances[key] = Algebra(key)
            return algebra

    def clear(self) -> None:
        """Forget every instance; a call already running keeps the one it has."""
        with self._lock:
            self._instances.clear()


SHARED_ALGEBRAS = AlgebraCache()


def shared_algebra(symmetric: Iterable[str] = ()) -> Algebra:
    """The shared `Algebra` for a set of symmetric tensors."""
    return SHARED_ALGEBRAS.get(symmetric)


def clear_caches() -> None:
    """Forget every cached simplification and canonical key (to time a cold start, or to
    free memory after work on large expressions)."""
    SHARED_ALGEBRAS.clear()


def _kinds_in_common(products: Iterable[Product]) -> bool:
    """Whether every product has a factor of one kind (a tensor's name, a node's type):
    no renaming of summed indices makes a factor common otherwise, and a sum of thousands
    of unlike terms (a0_ij x_j + a1_ij x_j + …) need not be aligned term by term."""
    common: Counter | None = None
    for product in products:
        kinds = Counter(_kind(f) for f in product.factors)
        common = kinds if common is None else common & kinds
        if not common:
            return False
    return True


def _kind(factor: Expr) -> object:
    return factor.name if isinstance(factor, Tensor) else type(factor)


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


def broadcast_constant(node: Expr) -> Fraction | None:
    """c if `node` is the number c, or c times ones over its free indices (δ_ii factors,
    as `Algebra.ones` and `Algebra.zeros` build them); else None."""
    if isinstance(node, Number):
        return node.value
    factors = node.factors if isinstance(node, Product) else (node,)
    value = Fraction(1)
    for position, factor in enumerate(factors):
        if isinstance(factor, Number) and position == 0:
            value = factor.value
        elif not (isinstance(factor, Delta) and len(factor.free) == 1 and factor.free <= node.free):
            return None
    return value


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


def spliced(product: Product) -> Product:
    """`product` with the products nested in it spliced in, at any depth, and their
    summed indices renamed where they would clash: one product of the same value whose
    factors are no products (but dimensions, see `deltas.dimension`, and a product with a
    clashing index only its name sizes, see `deltas.sized_by_name`). One pass over the
    nesting, so normalising a chain of n nested products (M_k = M_(k-1) A_k) is linear
    in n, where normalising each level first would flatten every prefix of the chain."""
    if not any(isinstance(f, Product) and not is_dimension(f) for f in product.factors):
        return product
    used = set(product.out).union(*(f.free for f in product.factors))
    fresh = _fresh_names(used | product.all_indices)
    factors: list[Expr] = []
    stack: list[tuple[Expr, dict[str, str]]] = [(f, {}) for f in reversed(product.factors)]
    while stack:
        _check_length(len(factors) + len(stack))
        factor, mapping = stack.pop()
        if not isinstance(factor, Product) or is_dimension(factor):
            factors.append(rename(factor, mapping) if mapping else factor)
            continue
        clashes = sorted(factor.summed & used)
        if any(sized_by_name(factor, index) for index in clashes):
            factors.append(rename(factor, mapping) if mapping else factor)  # stays nested
            continue
        inner = {i: mapping[i] for i in factor.free if i in mapping}
        inner.update({index: next(fresh) for index in clashes})
        used.update(inner.get(index, index) for index in factor.summed)
        stack.extend((f, inner) for f in reversed(factor.factors))
    return Product(factors, product.out)


@contextmanager
def factor_budget() -> Iterator[None]:
    """Refuse, as `TooLargeError`, work that builds more than `MAX_BUILT_FACTORS` factors
    in all inside this block (the outermost block sets the budget; one per thread)."""
    if _budget.get() is not None:
        yield
        return
    token = _budget.set([MAX_BUILT_FACTORS])
    try:
        yield
    finally:
        _budget.reset(token)


def _spend(factors: int) -> None:
    budget = _budget.get()
    if budget is None:
        return
    budget[0] -= factors
    if budget[0] < 0:
        raise TooLargeError(
            f"the result multiplies out to more than {MAX_BUILT_FACTORS:,} factors in all, "
            "as a product that uses one matrix n times does (its derivative has n terms "
            "of n factors each); differentiate a smaller expression"
        )


def _check_length(factors: int) -> None:
    """Refuse a product that multiplies out to more than MAX_FACTORS factors."""
    if factors > MAX_FACTORS:
        raise TooLargeError(
            f"a product multiplies out to more than {MAX_FACTORS:,} factors, as definitions "
            f"that use each other twice do (h1 = h0 h0; h2 = h1 h1; …); write the repeated "
            f"product as a power instead"
        )


def _fresh_names(avoid: set[str]):
    """Index names not in `avoid`, each once, in the order `fresh_index` prefers."""
    taken = set(avoid)
    while True:
        name = fresh_index(taken)
        taken.add(name)
        yield name


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


def _exp_term(node: Expr) -> Func | None:
    """e^v if `node` is 1 + e^v, else None."""
    if isinstance(node, Sum) and len(node.terms) == 2 and node.terms[0] is ONE:
        exp = node.terms[1]
        if isinstance(exp, Func) and exp.name == "exp":
            return exp
    return None


def _free_elsewhere(factors: list[Expr], *skip: int) -> frozenset[str]:
    return frozenset().union(*(f.free for j, f in enumerate(factors) if j not in skip))


def _scalar_parts(factors: list[Expr], out: frozenset[str]) -> list[list[int]]:
    """The positions of the factors of each scalar part of a product: factors joined by
    the indices summed between them, none with an index the product keeps."""
    parts = connected_parts([f.free - out for f in factors])
    return [p for p in parts if not any(factors[k].free & out for k in p)]


def _as_power(node: Expr) -> tuple[Expr, Fraction | None]:
    """(base, numeric exponent); the exponent is None for a number or a symbolic power."""
    if isinstance(node, Number):
        return node, None
    if isinstance(node, Power):
        if isinstance(node.exponent, Number):
            return node.base, node.exponent.value
        return node, None
    return node, Fraction(1)


# Sums that `Algebra.add` tries multiplied out: few terms, each over a short sum, and
# written with at most EXPANSION_SIZE nodes (larger ones are kept as they are).
MAX_EXPANDED_TERMS = 8
MAX_EXPANDED_SUM = 4
EXPANSION_SIZE = 200
_expanding: ContextVar[bool] = ContextVar("indexcalc_expanding", default=False)


def _expandable(rest: Expr) -> bool:
    """A sum, or a product with a short sum among its factors."""
    return _short_sum(rest) or (
        isinstance(rest, Product) and any(_short_sum(f) for f in rest.factors)
    )


def _short_sum(node: Expr) -> bool:
    """A sum of few terms, none of which sums an index itself: multiplied into a product,
    a term Σ_k(A_kk) would be spliced into it, and then collected with a term Σ_k(W_kk)
    of another size, its k could come out as one sum over both (fuzz seed 24)."""
    return (
        isinstance(node, Sum)
        and len(node.terms) <= MAX_EXPANDED_SUM
        and not any(_sums_itself(split_coefficient(t)[1]) for t in node.terms)
    )


def _sums_itself(term: Expr) -> bool:
    return isinstance(term, Product) and bool(term.summed)


# f(g(u)) = u: log(exp(u)) for every u, exp(log(u)) where log(u) is defined (u > 0).
_INVERSES = {("log", "exp"), ("exp", "log")}
# Functions whose value is positive for every argument.
_POSITIVE_FUNCTIONS = {"exp", "sigmoid", "softplus"}


def _negatives(u: Expr, v: Expr) -> bool:
    """Whether u = -v, by their coefficients: x and -x, 2 a and -2 a."""
    (a, rest_a), (b, rest_b) = split_coefficient(u), split_coefficient(v)
    return a == -b and rest_a is rest_b


def _one_plus_exp(node: Expr) -> Expr | None:
    """w where `node` is 1 + exp(w), else None."""
    if not isinstance(node, Sum) or len(node.terms) != 2 or node.terms[0] != ONE:
        return None
    term = node.terms[1]
    return term.arg if isinstance(term, Func) and term.name == "exp" else None


def is_positive(node: Expr, depth: int = 8) -> bool:
    """Whether `node` is positive wherever it is defined, by its form: a positive number,
    exp, σ or softplus of anything, and sums, products and powers of such (Σ_j(exp(z_j)),
    1 + exp(u)), looked at `depth` levels down. False where it does not know."""
    if isinstance(node, Number):
        return node.value > 0
    if isinstance(node, Func):
        return node.name in _POSITIVE_FUNCTIONS
    if depth == 0:
        return False
    if isinstance(node, Power):
        return isinstance(node.exponent, Number) and is_positive(node.base, depth - 1)
    if isinstance(node, Sum):
        return all(is_positive(t, depth - 1) for t in node.terms)
    if isinstance(node, Product):
        return all(is_positive(f, depth - 1) for f in node.factors)
    return False


def _tree_size(node: Expr, cap: int) -> int:
    """The number of nodes of `node` written out as a tree, counted until it passes
    `cap`: O(cap), however large the expression below (a chain of 500 σ)."""
    count, stack = 0, [node]
    while stack and count <= cap:
        count += 1
        stack.extend(stack.pop().children)
    return count


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


__all__ = [
    "SHARED_ALGEBRAS",
    "Algebra",
    "AlgebraCache",
    "Normaliser",
    "broadcast_constant",
    "clear_caches",
    "shared_algebra",
    "split_coefficient",
]
