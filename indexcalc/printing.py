"""Expression → text: Unicode, ASCII and LaTeX printers sharing one precedence table.

Each printer is a pass with one ``_print_<Node>`` rule per node kind returning the text
and its precedence; `PrecedencePrinter`, the base of these and of the matrix printers,
adds parentheses where the precedence demands them. The Unicode and ASCII forms parse
back to an equivalent expression.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any, TypeGuard

from .dispatch import Pass
from .errors import TooLargeError
from .expr import (
    ONE,
    Delta,
    Derivative,
    Epsilon,
    Expr,
    Func,
    Indexed,
    Number,
    Power,
    Product,
    SizeOf,
    Sum,
    Tensor,
    connected_parts,
    fresh_index,
    fresh_indices,
    memoised,
    node_count,
    postorder,
    rename,
    rename_bound,
    written_size,
)
from .functions import FUNCTIONS
from .normalisations import Normalisations
from .sizes import scoped_source

MAX_WRITTEN_NODES = 200_000  # a tree this large prints as megabytes of text

# Precedence, loosest first.
SUM, HADAMARD, NEGATION, PRODUCT, POWER, ATOM = range(6)


class PrecedencePrinter(Pass):
    """Base of the printers of index and matrix notation.

    A rule returns a node's text and precedence; `wrap` puts an operand in parentheses
    when it binds more loosely than its place needs. Formats override the building blocks
    (`parens`, `minus`, `fraction`, `call`, …), never the rules' logic.
    """

    prefix = "_print_"
    description = "printing"
    minus = "-"

    def __init__(self) -> None:
        # Keyed by the node itself, which the memo keeps alive: an id() could be reused by
        # a temporary node built while printing and return another node's text.
        self._memo: dict[tuple, tuple[str, int]] = {}

    def show(self, node: Any, *context: Any) -> tuple[str, int]:
        """Text and precedence of `node`; `context` is what else its text depends on."""
        return memoised(self._memo, (node, *self.narrowed(node, context)), self._shown)

    def _shown(self, key: tuple) -> tuple[str, int]:
        return self.dispatch(*key)

    def narrowed(self, node: Any, context: tuple) -> tuple:
        """The part of `context` that the text of `node` depends on, for a smaller memo."""
        return context

    def wrap(self, node: Any, minimum: int, *context: Any) -> str:
        """The text of `node` as an operand whose place needs at least precedence `minimum`."""
        text, precedence = self.show(node, *context)
        return self.wrap_text(text, precedence, minimum)

    def wrap_text(self, text: str, precedence: int, minimum: int) -> str:
        return self.parens(text) if precedence < minimum else text

    def signed_terms(self, terms: Iterable[tuple[bool, str]]) -> str:
        """The text of a sum from (negative, text of the magnitude) of each term."""
        parts = []
        for k, (negative, text) in enumerate(terms):
            if k == 0:
                parts.append(f"{self.minus}{text}" if negative else text)
            else:
                parts.append(f" {self.minus} {text}" if negative else f" + {text}")
        return "".join(parts)

    # -- building blocks that formats override -------------------------------------------

    def parens(self, text: str) -> str:
        return f"({text})"

    def call(self, name: str, argument: str) -> str:
        return f"{name}{self.parens(argument)}"

    def function_name(self, name: str) -> str:
        return FUNCTIONS[name].unicode

    def divide(self, numerator: str, denominator: str) -> str:
        return f"{numerator} / {denominator}"

    def fraction(self, value: Fraction) -> str:
        return f"{value.numerator}/{value.denominator}"

    def number(self, value: Fraction) -> tuple[str, int]:
        """A number's exact text, which parses back to it: an integer or a short decimal;
        scientific notation where that is shorter (1e30, 2.5e-20); else a fraction."""
        magnitude = abs(value)
        plain = str(magnitude.numerator) if magnitude.denominator == 1 else decimal_text(magnitude)
        parts = decimal_parts(magnitude)
        # The shortest form (as plain text), and plain digits up to 12 long always.
        forms: list[tuple[int, int, tuple[str, int]]] = []  # (length, preference, form)
        if plain is not None:
            forms.append((len(plain) if len(plain) > 12 else 0, 0, (plain, ATOM)))
        else:
            forms.append((len(str(magnitude)), 2, (self.fraction(magnitude), PRODUCT)))
        if parts is not None:
            forms.append((len(f"{parts[0]}e{parts[1]}"), 1, self.scientific(*parts)))
        text, precedence = min(forms)[2]
        if value < 0:
            return f"{self.minus}{text}", NEGATION
        return text, precedence

    def scientific(self, mantissa: str, exponent: int) -> tuple[str, int]:
        """mantissa × 10^exponent, the mantissa a decimal with one digit before its point."""
        return f"{mantissa}e{exponent}", ATOM


class AsciiFormat(PrecedencePrinter):
    """What the ASCII printers of index and matrix notation share; listed first among a
    printer's bases, so that it overrides the Unicode defaults."""

    minus = "-"
    hadamard = " .* "

    def function_name(self, name: str) -> str:
        return name


class LatexFormat(PrecedencePrinter):
    """What the LaTeX printers of index and matrix notation share; listed first among a
    printer's bases, so that it overrides the Unicode defaults."""

    minus = "-"
    hadamard = r" \odot "

    def roman(self, name: str) -> str:
        """A name of several letters set upright, as LaTeX sets words."""
        if len(name) > 1 and not name.startswith("\\"):
            return rf"\mathrm{{{name}}}"
        return name

    def call(self, name: str, argument: str) -> str:
        if name == r"\sqrt":
            return rf"\sqrt{{{argument}}}"
        return super().call(name, argument)

    def function_name(self, name: str) -> str:
        return FUNCTIONS[name].latex

    def scientific(self, mantissa: str, exponent: int) -> tuple[str, int]:
        if mantissa == "1":
            return f"10^{{{exponent}}}", POWER
        return rf"{mantissa} \times 10^{{{exponent}}}", PRODUCT

    def divide(self, numerator: str, denominator: str) -> str:
        return rf"\frac{{{numerator}}}{{{denominator}}}"

    def fraction(self, value: Fraction) -> str:
        return rf"\frac{{{value.numerator}}}{{{value.denominator}}}"


class TextPrinter(PrecedencePrinter):
    """Unicode Einstein notation: δ, ε, σ, ⊙, Σ."""

    delta = "δ"
    epsilon = "ε"
    hadamard = " ⊙ "
    reduction = "Σ"
    times = " "

    def __init__(self) -> None:
        super().__init__()
        self._taken: set[str] = set()

    def doprint(self, node: Expr) -> str:
        if written_size(node, MAX_WRITTEN_NODES) > MAX_WRITTEN_NODES:
            raise TooLargeError(
                f"written out, this expression has more than {MAX_WRITTEN_NODES:,} parts (it "
                f"has {node_count(node):,} distinct ones, but shared parts repeat each time "
                f"they are used); evaluate it or generate code, which compute each part once"
            )
        # An inner sum must not reuse the name of a free index no tensor carries (only a δ):
        # text is read back with sizes inferred by name, and Σ_i(T_mii) beside δ_ip would
        # lend that i the size of T's axis.
        node = Normalisations()(node)  # exp(x_i) Σ^-2 exp(x_k) as two quotients, s_i s_k
        node = rename_bound(node, frozenset(i for i in node.free if scoped_source(node, i) is None))
        node = _renamed_apart(node)
        node = _distinct_dimensions(node)
        # Names the printer introduces are new to the whole expression: text is read back
        # with sizes inferred by name, so a reused letter could take another index's size.
        self._taken = set(node.all_indices)
        return self.show(node, frozenset())[0]

    def fresh(self, avoid=()) -> str:
        """An index letter used nowhere in the expression being printed, nor before."""
        name = fresh_index(self._taken | set(avoid))
        self._taken.add(name)
        return name

    def narrowed(self, node: Expr, context: tuple) -> tuple:
        """The context is `held`, the indices bound by an enclosing Σ; those `node` uses."""
        (held,) = context
        return (held & node.all_indices,)

    # -- building blocks that formats override -------------------------------------------

    def subscript(self, indices) -> str:
        indices = "".join(indices)
        return f"_{indices}" if indices else ""

    def indexed(self, name: str, indices) -> str:
        return name + self.subscript(indices)

    def comma_subscript(self, name: str, indices, groups) -> str:
        parts = ["".join(g) if len(g) == 1 else "(" + "".join(g) + ")" for g in groups]
        return f"{name}_{{{''.join(indices)},{''.join(parts)}}}"

    def power(self, base: str, exponent: str) -> str:
        return f"{base}^{exponent}"

    def sum_over(self, indices, body: str) -> str:
        indices = "".join(indices)
        script = f"_{indices}" if len(indices) == 1 else f"_{{{indices}}}"
        return f"{self.reduction}{script}({body})"

    def symbol(self, node: Indexed) -> str:
        """The printed name of a leaf: a tensor's own name, or this format's δ or ε."""
        if isinstance(node, Tensor):
            return node.name
        return self.delta if isinstance(node, Delta) else self.epsilon

    # -- nodes ---------------------------------------------------------------------------

    def _print_Number(self, node: Number, held):
        return self.number(node.value)

    def _print_Indexed(self, node: Indexed, held):
        """A tensor, δ or ε; with a repeated index kept, its diagonal."""
        if _repeated(node.indices) - held:
            return self.diagonal(node)
        return self.indexed(self.symbol(node), node.indices), ATOM

    def diagonal(self, node: Indexed) -> tuple[str, int]:
        """A tensor with a repeated index kept, e.g. diag(A)_i, as Σ_j(A_ij ⊙ δ_ij)."""
        if isinstance(node, Delta) and len(set(node.indices)) == 1:
            index = node.indices[0]  # ones over i: Σ_j δ_ij
            fresh = self.fresh()
            return self.sum_over([fresh], self.indexed(self.delta, (index, fresh))), ATOM
        seen, indices, deltas, extra = set(), [], [], []
        avoid = set(node.indices)
        for index in node.indices:
            if index in seen:
                fresh = self.fresh(avoid)
                avoid.add(fresh)
                indices.append(fresh)
                deltas.append(self.indexed(self.delta, (index, fresh)))
                extra.append(fresh)
            else:
                seen.add(index)
                indices.append(index)
        body = self.hadamard.join([self.indexed(self.symbol(node), indices), *deltas])
        return self.sum_over(extra, body), ATOM

    def _print_Func(self, node: Func, held):
        return self.call(self.function_name(node.name), self.show(node.arg, held)[0]), ATOM

    def _print_Power(self, node: Power, held):
        base = self.wrap(node.base, ATOM, held)
        exponent = node.exponent
        negative, magnitude = split_sign(exponent)
        if isinstance(exponent, Number) and exponent.value.denominator == 1:
            text = str(exponent.value)
        elif negative and not isinstance(exponent, Number):  # x^-y
            text = f"{self.minus}{self.wrap(magnitude, POWER, held)}"
        else:
            text = self.wrap(exponent, POWER, held)  # right-associative: a^b^c
        return self.power(base, text), POWER

    def _print_Sum(self, node: Sum, held):
        terms = []
        for term in unbroadcast_terms(node):
            negative, positive = split_sign(term)
            terms.append((negative, self.wrap(positive if negative else term, HADAMARD, held)))
        return self.signed_terms(terms), SUM

    def _print_Derivative(self, node: Derivative, held):
        groups = []
        base: Expr = node
        while isinstance(base, Derivative):
            groups.append(base.wrt.indices)
            base = base.expr
        groups.reverse()
        if (
            isinstance(base, Tensor)
            and base.name == node.wrt.name
            and not _has_repeats(base.indices)
        ):
            return self.comma_subscript(base.name, base.indices, groups), ATOM
        return self.comma_subscript(self.parens(self.show(base, held)[0]), (), groups), ATOM

    def _print_Product(self, node: Product, held):
        coefficient = Fraction(1)
        factors = []
        for factor in node.factors:
            if isinstance(factor, Number):
                coefficient *= factor.value
            else:
                factors.append(factor)
        out = set(node.out)
        numerators = [f for f in factors if not _is_reciprocal(f)]
        denominators = [f.base for f in factors if _is_reciprocal(f)]
        if denominators and _divisible(numerators, denominators, out):
            if numerators or coefficient == 1:
                text, precedence = self.product_text(numerators, out, held)
            else:  # 2 / x: the coefficient is the numerator
                (text, precedence), coefficient = self.number(coefficient), Fraction(1)
            for denominator in denominators:
                numerator = self.wrap_text(text, precedence, PRODUCT)
                text = self.divide(numerator, self.wrap(denominator, POWER, held))
            precedence = PRODUCT
        else:
            text, precedence = self.product_text(factors, out, held)
        if coefficient == 1:
            return text, precedence
        if len(factors) == 1 and _holds_number(factors[0]) and coefficient != -1:
            text, precedence = self.parens(text), ATOM  # see `juxtaposed`
        if coefficient == -1:
            return f"{self.minus}{self.wrap_text(text, precedence, PRODUCT)}", NEGATION
        number, number_precedence = self.number(coefficient)
        body = self.wrap_text(text, precedence, PRODUCT)
        if coefficient < 0:
            return f"{self.minus}{self.number(-coefficient)[0]}{self.times}{body}", NEGATION
        return f"{number}{self.times}{body}", min(PRODUCT, number_precedence)

    def product_text(self, factors: list[Expr], out: set[str], held) -> tuple[str, int]:
        """Factors as Einstein juxtaposition, with ⊙ and Σ only where the convention needs them.

        Juxtaposition sums an index held by two factors, unless an enclosing Σ holds it.
        An index kept by several factors needs ⊙; one summed by one or three factors, or
        already held, needs an explicit Σ.
        """
        if not factors:
            return "1", ATOM
        if len(factors) == 1 and factors[0].free == out:
            return self.show(factors[0], held)
        counts = Counter(i for f in factors for i in f.free)
        groups = _hadamard_groups(factors, {i for i in out if i not in held and counts[i] >= 2})
        group_of = {position: k for k, group in enumerate(groups) for position in group}
        # A_ii whose repeated index nothing else uses prints as a trace: the parser sums it.
        traces = {
            p: _repeated(f.indices)
            for p, f in enumerate(factors)
            if len(groups[group_of[p]]) == 1  # a ⊙ operand is parsed as its own product
            and isinstance(f, (Tensor, Delta))
            and _repeated(f.indices)
            and all(counts[i] == 1 and i not in out and i not in held for i in _repeated(f.indices))
            and all(f.indices.count(i) == 2 for i in _repeated(f.indices))
        }
        traced = set().union(*traces.values())
        explicit = set()
        for index, count in counts.items():
            if index in out or index in traced:
                continue
            holders = {group_of[p] for p, f in enumerate(factors) if index in f.free}
            if index in held or count != 2 or len(holders) != 2:
                explicit.add(index)
        inner_held = frozenset(held | explicit)
        texts = []
        for group in groups:
            if len(group) == 1 and group[0] in traces:
                texts.append(self.juxtaposed(group[0], factors, inner_held | traces[group[0]]))
            elif len(group) == 1:
                texts.append(self.juxtaposed(group[0], factors, inner_held))
            else:
                parts = [
                    self.hadamard_part(factors[p], inner_held, k == 0) for k, p in enumerate(group)
                ]
                texts.append(self.hadamard.join(parts))
        if explicit:
            # Σ_E(...) around the groups that use E; the others follow it, outside.
            inside = [k for k, g in enumerate(groups) if explicit & _free_of(factors, g)]
            if len(inside) == 1 and len(groups[inside[0]]) == 1:
                # Σ_n(...) alone around one factor: its own parentheses are the scope,
                # Σ_n(b + X_nd w_d), not Σ_n((b + X_nd w_d)).
                (position,) = groups[inside[0]]
                sole = factors[position]
                if not isinstance(sole, Product) and position not in traces:
                    texts[inside[0]] = self.show(sole, inner_held)[0]
            body = self.chain(
                self.parens(texts[k]) if len(groups[k]) > 1 and len(inside) > 1 else texts[k]
                for k in inside
            )
            pieces = [self.sum_over(sorted(explicit), body)]
            for k, group in enumerate(groups):
                if k in inside:
                    continue
                if len(group) == 1:
                    trace = traces.get(group[0], frozenset())
                    pieces.append(self.juxtaposed(group[0], factors, held | trace))
                else:
                    parts = [
                        self.hadamard_part(factors[p], held, j == 0) for j, p in enumerate(group)
                    ]
                    pieces.append(self.parens(self.hadamard.join(parts)))
            return self.chain(pieces), ATOM if len(pieces) == 1 else PRODUCT
        if len(texts) == 1:
            return texts[0], HADAMARD if len(groups[0]) > 1 else PRODUCT
        return self.chain(
            self.parens(t) if len(g) > 1 else t for t, g in zip(texts, groups, strict=True)
        ), PRODUCT

    def chain(self, texts: Iterable[str]) -> str:
        """Texts juxtaposed. "/" groups to the left over everything before it, so a
        quotient after the first factor needs parentheses: `a (b / c)`, not `a b / c`."""
        return self.times.join(
            self.parens(text) if k and _has_top_level_slash(text) else text
            for k, text in enumerate(texts)
        )

    def hadamard_part(self, factor: Expr, held, first: bool) -> str:
        """An operand of ⊙; a leading nested ⊙ chain that sums nothing needs no parentheses
        (⊙ groups to the left)."""
        text, precedence = self.show(factor, held)
        if first and precedence == HADAMARD and isinstance(factor, Product) and not factor.summed:
            return text
        return self.wrap_text(text, precedence, NEGATION + 1)

    def juxtaposed(self, position: int, factors: list[Expr], held) -> str:
        """A factor inside a juxtaposition; nested products whose dummies clash get parentheses."""
        factor = factors[position]
        if isinstance(factor, Product):
            others = set().union(*(f.all_indices for p, f in enumerate(factors) if p != position))
            text, precedence = self.show(factor, held)
            bound = factor.all_indices - factor.free  # summed anywhere inside
            if precedence == ATOM:
                return text  # an explicit Σ(...) already scopes its indices
            # A number in a nested product stays with it: read back, the numbers of one
            # product multiply, and 1e-299 (1e-21 x_i) as 1e-299 1e-21 x_i would need
            # more digits than a number may have (and never reads as written).
            if bound & others or precedence < PRODUCT or _holds_number(factor):
                return self.parens(text)
            return text
        return self.wrap(factor, POWER, held)


class AsciiPrinter(AsciiFormat, TextPrinter):
    """Plain ASCII: delta, eps, sigmoid, .*, sum."""

    delta = "delta"
    epsilon = "eps"
    reduction = "sum"


class LatexPrinter(LatexFormat, TextPrinter):
    """LaTeX for papers and notebooks."""

    delta = r"\delta"
    epsilon = r"\varepsilon"
    times = r" \, "

    def parens(self, text: str) -> str:
        return rf"\left({text}\right)"

    def subscript(self, indices) -> str:
        indices = "".join(indices)
        return f"_{{{indices}}}" if indices else ""

    def indexed(self, name: str, indices) -> str:
        return self.roman(name) + self.subscript(indices)

    def comma_subscript(self, name: str, indices, groups) -> str:
        return super().comma_subscript(self.roman(name), indices, groups)

    def power(self, base: str, exponent: str) -> str:
        return f"{base}^{{{exponent}}}"

    def sum_over(self, indices, body: str) -> str:
        return rf"\sum_{{{''.join(indices)}}} {self.parens(body)}"


def to_text(node: Expr) -> str:
    """Unicode Einstein notation that parses back."""
    return TextPrinter().doprint(node)


def to_ascii(node: Expr) -> str:
    """ASCII Einstein notation that parses back."""
    return AsciiPrinter().doprint(node)


def to_latex(node: Expr) -> str:
    """LaTeX."""
    return LatexPrinter().doprint(node)


PRINTERS = {"unicode": TextPrinter, "ascii": AsciiPrinter, "latex": LatexPrinter}


def decimal_text(value: Fraction) -> str | None:
    """A short exact decimal for `value`, or None if there is none."""
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return None
    with localcontext() as context:
        context.prec = 40
        text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    return text if len(text) <= 12 else None


def decimal_parts(value: Fraction) -> tuple[str, int] | None:
    """(mantissa, exponent) with `value` = mantissa × 10^exponent exactly, the mantissa a
    decimal with one nonzero digit before its point (``"2.5"``, -20); None for a value
    with no finite decimal (1/3) or zero."""
    numerator, denominator = value.numerator, value.denominator
    twos = fives = 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    if denominator != 1 or numerator == 0:
        return None
    places = max(twos, fives)  # value = numerator × (10^places / its denominator) / 10^places
    digits = str(numerator * 2 ** (places - twos) * 5 ** (places - fives))
    significant = digits.rstrip("0")
    exponent = len(digits) - len(significant) - places + len(significant) - 1
    mantissa = significant[0] + (f".{significant[1:]}" if len(significant) > 1 else "")
    return mantissa, exponent


def _has_top_level_slash(text: str) -> bool:
    """Whether `text` divides outside any parentheses."""
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "/" and depth == 0:
            return True
    return False


def _has_repeats(indices) -> bool:
    return len(set(indices)) != len(indices)


def _repeated(indices) -> frozenset[str]:
    return frozenset(i for i in indices if indices.count(i) > 1)


def _is_reciprocal(node: Expr) -> TypeGuard[Power]:
    return (
        isinstance(node, Power) and isinstance(node.exponent, Number) and node.exponent.value == -1
    )


def _renamed_apart(root: Expr) -> Expr:
    """`root` with each index summed only through a δ that ties it to a kept index
    (Σ_k(f(A_qi δ_nk)): k has n's size) whose letter a tensor holds elsewhere (T_nkk)
    renamed to a letter of its own. Text is read back with sizes by name, so that k would
    take T's size."""
    nodes = postorder(root)
    held = {i for n in nodes if isinstance(n, (Tensor, Epsilon)) for i in n.indices}
    if not any(isinstance(n, Product) and _delta_sized(n, held) for n in nodes):
        return root
    taken = set(root.all_indices)
    memo: dict[Expr, Expr] = {}

    def renamed(node: Expr) -> Expr:
        node = node.map_children(lambda child: memoised(memo, child, renamed))
        if not isinstance(node, Product):
            return node
        apart = sorted(_delta_sized(node, held))
        if not apart:
            return node
        fresh = fresh_indices(len(apart), taken | node.all_indices)
        taken.update(fresh)
        mapping = dict(zip(apart, fresh, strict=True))
        return Product((rename(f, mapping) for f in node.factors), node.out)

    return memoised(memo, root, renamed)


def _delta_sized(product: Product, held: set[str]) -> set[str]:
    """The indices `product` sums that a tensor holds elsewhere but no factor here does,
    and that a δ here ties to an index it keeps: renamed, they still read back with that
    index's size. (One tied only to other summed indices is sized by its name, also when
    evaluated as written, so it keeps it.)"""
    candidates = {
        index
        for index in product.summed & held
        if all(scoped_source(f, index) is None for f in product.factors if index in f.free)
    }
    if not candidates:
        return candidates
    kept = set(product.out)
    deltas = [n for n in postorder(*product.factors) if isinstance(n, Delta)]
    return {i for i in candidates if any(i in d.indices and kept & set(d.indices) for d in deltas)}


def _divisible(numerators: list[Expr], denominators: list[Expr], out: set[str]) -> bool:
    """Whether ``n / d1 / d2 …`` reads back: nothing is summed across a ``/``, and at each
    division one side holds every free index of the other (the side lacking some is
    broadcast, see `syntax.divide`)."""
    if not all(d.free <= out for d in denominators):
        return False
    free = frozenset().union(*(f.free for f in numerators))
    for denominator in denominators:
        if not (denominator.free <= free or free <= denominator.free):
            return False
        free |= denominator.free
    return True


def unbroadcast_terms(node: Sum) -> tuple[Expr, ...]:
    """The terms of a sum as the user writes them: without the ones a term is broadcast
    with (`b ⊙ 𝟏_n` beside `X_nd w_d` is `b`), where a term holds every free index
    without them, so that reading the text back broadcasts them again."""
    stripped = tuple(_without_ones(term) for term in node.terms)
    if any(term.free == node.free for term in stripped):
        return stripped
    return node.terms


def _without_ones(term: Expr, kept: frozenset[str] | None = None) -> Expr:
    """A product without its factors of ones over kept indices (δ_nn with n free), also
    in the products nested in it that keep those indices (x̄_k (𝟏_d / D) is x̄_k / D)."""
    if not isinstance(term, Product):
        return term
    kept = frozenset(term.out) if kept is None else kept & frozenset(term.out)
    rest = [
        _without_ones(f, kept) if isinstance(f, Product) else f
        for f in term.factors
        if not _is_ones(f, kept)
    ]
    if rest == list(term.factors):
        return term
    out = frozenset(term.out) & frozenset().union(*(f.free for f in rest))
    if not rest:
        return ONE
    if len(rest) == 1 and rest[0].free == out:
        return rest[0]
    return Product(rest, out)


def _is_ones(factor: Expr, out: Iterable[str]) -> bool:
    return (
        isinstance(factor, Delta)
        and len(factor.indices) == 2
        and factor.indices[0] == factor.indices[1]
        and factor.indices[0] in out
    )


def split_sign(term: Expr) -> tuple[bool, Expr]:
    """Whether a term prints with a leading minus, and the term without it."""
    if isinstance(term, Number) and term.value < 0:
        return True, Number(-term.value)
    if isinstance(term, Product) and term.factors and isinstance(term.factors[0], Number):
        value = term.factors[0].value
        if value < 0:
            rest = term.factors[1:]
            if value != -1:
                rest = (Number(-value), *rest)
            if len(rest) == 1 and rest[0].free == term.free:
                return True, rest[0]
            return True, Product(rest, term.out)
    return False, term


def _distinct_dimensions(root: Expr) -> Expr:
    """`root` with each dimension Σ_k δ_kk that knows its axis, but whose letter k is
    used elsewhere, renamed to a letter used nowhere.

    Text is read back with sizes inferred by name: (δ_pp) beside a free p would read as
    the size of p, which need not be the axis the dimension runs over. A fresh letter
    reads back as a size to be given (`UnsizedIndexError`), never as a wrong one."""
    nodes = postorder(root)
    dimensions = {n: d for n in nodes if (d := _dimension_delta(n)) is not None}
    if not dimensions:
        return root
    inside = set(dimensions.values())
    used = set(root.free).union(
        *(n.indices for n in nodes if isinstance(n, Indexed) and n not in inside)
    )
    taken = set(root.all_indices)
    replaced: dict[Expr, Expr] = {}
    for dimension, delta in dimensions.items():
        letter = _axis_letter(nodes, delta.axis)
        if letter is None and delta.indices[0] in used:
            letter = fresh_index(taken)
            taken.add(letter)
        if letter is not None and letter != delta.indices[0]:
            replaced[dimension] = Product((delta.with_indices((letter, letter)),), ())
    if not replaced:
        return root
    memo: dict[Expr, Expr] = {}

    def rebuilt(node: Expr) -> Expr:
        if node in replaced:
            return replaced[node]
        return node.map_children(lambda child: memoised(memo, child, rebuilt))

    return memoised(memo, root, rebuilt)


def _axis_letter(nodes: list[Expr], axis) -> str | None:
    """A letter that reads back as the size of `axis`: one that indexes that tensor axis
    (d for K's axis 1 in K_jd), or the name `dims` sizes a `SizeOf` by, where no tensor
    holds it. None if there is none."""
    if isinstance(axis, SizeOf):
        held = any(isinstance(n, (Tensor, Epsilon)) and axis.index in n.indices for n in nodes)
        return None if held else axis.index
    if not isinstance(axis, tuple):
        return None
    places: dict[str, set] = {}
    for node in nodes:
        if isinstance(node, Tensor):
            for position, letter in enumerate(node.indices):
                places.setdefault(letter, set()).add((node.name, position))
        elif isinstance(node, Epsilon):
            for letter in node.indices:
                places.setdefault(letter, set()).add(None)
    # Best a letter only that axis sizes; else one that also indexes axes contracted
    # with it (d in Q_ad K_jd), which a valid expression gives the same size.
    holders = sorted((len(where), letter) for letter, where in places.items() if axis in where)
    return holders[0][1] if holders else None


def _dimension_delta(node: Expr) -> Delta | None:
    """The δ of a dimension Σ_k δ_kk (a product of one δ over one repeated index, summed)
    that knows the axis it runs over; None for any other node."""
    if not isinstance(node, Product) or len(node.factors) != 1 or node.out:
        return None
    (delta,) = node.factors
    if isinstance(delta, Delta) and len(set(delta.indices)) == 1 and delta.axis is not None:
        return delta
    return None


def _holds_number(node: Expr) -> bool:
    """Whether `node` is a product with a number among its factors, or among those of a
    product it holds (a quotient's numerator: (1e299 x_i) / y_i prints as
    1e299 x_i / y_i, its number at the top level of the text)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Product):
            if any(isinstance(f, Number) for f in current.factors):
                return True
            stack.extend(f for f in current.factors if isinstance(f, Product))
    return False


def _free_of(factors: list[Expr], positions) -> frozenset[str]:
    return frozenset().union(*(factors[p].free for p in positions))


def _hadamard_groups(factors: list[Expr], shared: set[str]) -> list[list[int]]:
    """Positions of factors joined by ⊙ so that each index in `shared` lies in one group."""
    return connected_parts([f.free & shared for f in factors])
