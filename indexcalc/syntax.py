"""Text → expression: the Lark parser and one builder method per grammar alias.

The builder runs inside Lark's LALR parser (no parse tree is built), so deeply nested
input never recurses in Python. It checks indices as it builds, tracks definitions and
records comma derivatives as `Derivative` nodes; differentiation carries them out.
"""

from __future__ import annotations

import re
import threading
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Generic, TypeGuard, TypeVar, cast

import lark
from lark import Token

from .errors import (
    DefinitionError,
    IndexNotationError,
    NotationWarning,
    NumberError,
    ParseError,
    Position,
)
from .expr import (
    MAX_DIGITS,
    MINUS_ONE,
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
    fits,
    fresh_index,
    rename,
    rename_bound,
    size_problem,
    small_power,
    too_large,
    too_precise,
)
from .functions import ALIASES, FUNCTIONS, lookup
from .sizes import broadcast_terms

RESERVED = frozenset(FUNCTIONS) | frozenset(ALIASES) | {"delta", "eps", "sum", "δ", "ε", "Σ"}


def grammar_text(name: str = "indexcalc.lark") -> str:
    """A grammar (the index notation's, or matrix.lark), from the installed package or, in
    a source checkout, the repository."""
    packaged = resources.files("indexcalc") / "grammar" / name
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent / "grammar" / name).read_text(encoding="utf-8")


class Terms:
    """A definition's chain of terms ``a + b + …``, kept unbuilt so that a sum using the
    definition takes its terms without copying them: a program of chained definitions
    (``a2_i = a1_i + x_i; a3_i = a2_i + x_i; …``) parses in linear time and memory.

    `items` are terms and other definitions' `Terms`, spliced in when the sum is built. A
    definition's terms are spliced into sums once; a further use, or a splice after its
    sum is built, adds the built sum as one term. So no term is copied twice, and
    doubling definitions (``a2 = a1 + a1; a3 = a2 + a2; …``) stay linear too.
    """

    __slots__ = ("_sum", "items", "spliced")

    def __init__(self, items: list[Expr | Terms]):
        self.items = items
        self.spliced = False
        self._sum: Expr | None = None

    def take(self) -> Expr | Terms:
        """What a sum using this definition adds to its terms: these terms the first time,
        then the built sum."""
        if self.spliced:
            return self.sum()
        self.spliced = True
        return self

    def sum(self) -> Expr:
        if self._sum is None:
            self._sum = Sum(broadcast_terms(_flatten(self.items)))
        return self._sum


def _flatten(items: list[Expr | Terms]) -> list[Expr]:
    """Terms with spliced definitions' terms in place, without recursion."""
    flat: list[Expr] = []
    stack = [iter(items)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, Terms):
                if item._sum is not None:
                    flat.append(item._sum)
                else:
                    stack.append(iter(item.items))
                    break
            else:
                flat.append(item)
        else:
            stack.pop()
    return flat


class Piece:
    """An expression under construction, with where its free indices were written.

    The terms of a chain ``a + b + c + …`` are gathered in `terms` and built into one Sum
    when the expression is first needed, so a long sum parses in linear time. A use of a
    definition that is such a chain holds the definition's `Terms` in `shared`.
    """

    __slots__ = ("_expr", "_free", "index_positions", "shared", "start", "terms", "unheld")

    def __init__(
        self,
        expr: Expr | None,
        start: Position,
        index_positions: dict[str, Position] | None = None,
        terms: list[Expr | Terms] | None = None,
        free: frozenset[str] = frozenset(),
        shared: Terms | None = None,
        unheld: IndexNotationError | None = None,
    ):
        self._expr = expr
        self.terms = terms
        self.shared = shared
        self.start = start
        self.index_positions = index_positions or {}
        self._free = expr.free if expr is not None else free
        # A chain of terms none of which holds all its free indices: an error once the
        # chain is used, unless a later term holds them all (b_a + c_n + X_na).
        self.unheld = unheld

    @property
    def free(self) -> frozenset[str]:
        if self.unheld is not None:
            raise self.unheld
        return self._free

    @property
    def expr(self) -> Expr:
        if self.unheld is not None:
            raise self.unheld
        if self._expr is None:
            if self.shared is not None:
                self._expr = self.shared.sum()
            else:
                assert self.terms is not None  # a piece is an expression or a chain of terms
                self._expr = Sum(broadcast_terms(_flatten(self.terms)))
                self.terms = None
        return self._expr

    def term_items(self) -> list[Expr | Terms]:
        """This piece's terms, for a sum to extend: its own list where it has one."""
        if self.terms is not None:
            return self.terms
        if self.shared is not None and self._expr is None:
            return [self.shared.take()]
        return list(_terms(self.expr))

    def frozen(self) -> Terms | None:
        """The terms of this piece's chain, for a definition to share; None if it is no
        chain of terms."""
        if self.shared is not None and self._expr is None:
            return self.shared
        if self.terms is not None:
            return Terms(self.terms)
        return None

    @property
    def number(self) -> Number | None:
        """The expression if it is a number (a chain of terms is not)."""
        return self._expr if isinstance(self._expr, Number) else None

    def position_of(self, index: str) -> Position:
        return self.index_positions.get(index, self.start)


Located = tuple[str, Position]  # an index and where it is written


@dataclass(frozen=True)
class Subscript:
    """A parsed subscript: plain indices, then derivative groups after a comma; or the
    groups of the δ_{(ij)(kl)} form, in `pairs`."""

    indices: tuple[Located, ...]
    groups: tuple[tuple[Located, ...], ...] = ()
    pairs: tuple[tuple[Located, ...], ...] = ()
    start: Position = field(kw_only=True)


@dataclass
class Definition:
    """A definition's indices and right side: an expression, or a chain of terms kept
    unbuilt (`Terms`) until something needs it built."""

    indices: tuple[str, ...]
    free: frozenset[str]
    built: Expr | None = None
    terms: Terms | None = None

    @property
    def expr(self) -> Expr:
        if self.built is None:
            assert self.terms is not None
            self.built = self.terms.sum()
        return self.built


@dataclass
class ParseState:
    source: str
    var: str
    definitions: dict[str, Definition] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    held: list[frozenset[str]] = field(default_factory=list)  # indices bound by sum_i(...)

    @property
    def held_indices(self) -> frozenset[str]:
        return frozenset().union(*self.held)


def _pos(token: Token) -> Position:
    return Position(token.line or 1, token.column or 1)


ParseErrorT = TypeVar("ParseErrorT", bound=ParseError)


StateT = TypeVar("StateT")


class StatefulTransformer(lark.Transformer, Generic[StateT]):
    """A Lark transformer that builds with the state of one parse at a time: the parser
    holding it is shared, so each parse runs under its lock, inside `parsing`."""

    def __init__(self) -> None:
        super().__init__()
        self._state: StateT | None = None

    @contextmanager
    def parsing(self, state: StateT) -> Iterator[None]:
        """Build with `state` for the length of one parse."""
        self._state = state
        try:
            yield
        finally:
            self._state = None

    @property
    def state(self) -> StateT:
        assert self._state is not None, "the builder runs only inside a parse"
        return self._state


class Builder(StatefulTransformer[ParseState]):
    """One method per alias in grammar/indexcalc.lark."""

    def error(self, cls: type[ParseErrorT], message: str, position: Position) -> ParseErrorT:
        return cls(message, self.state.source, position)

    def check_rank(self, name: str, rank: int, position: Position) -> None:
        known = self.state.ranks.setdefault(name, rank)
        if known != rank:
            raise self.error(
                IndexNotationError,
                f"tensor '{name}' is used with {rank} indices here but with {known} elsewhere",
                position,
            )

    # -- program -----------------------------------------------------------------------

    def start(self, items):
        return items[-1]

    def definition(self, items):
        name_token, *rest = items
        expression: Piece = rest[-1]
        subscript: Subscript | None = rest[0] if len(rest) == 2 else None
        name = self.identifier(name_token)
        position = _pos(name_token)
        self.check_name(name, position)
        if name in self.state.definitions:
            raise self.error(DefinitionError, f"'{name}' is defined twice", position)
        if name == self.state.var:
            raise self.error(
                DefinitionError,
                f"'{name}' is the variable of differentiation and cannot be defined",
                position,
            )
        if subscript is not None and (subscript.groups or subscript.pairs):
            raise self.error(
                DefinitionError, "a definition's left side takes plain indices", position
            )
        indices = tuple(i for i, _ in subscript.indices) if subscript else ()
        if len(set(indices)) != len(indices):
            raise self.error(
                DefinitionError,
                f"the indices of '{name}' must be distinct, not {indices}",
                position,
            )
        if set(indices) != expression.free:
            raise self.error(
                DefinitionError,
                f"'{name}' is defined with indices {_show(indices)} but its right side has "
                f"free indices {_show(sorted(expression.free))}",
                position,
            )
        if name in self.state.ranks:
            raise self.error(DefinitionError, f"'{name}' is used before it is defined", position)
        terms = expression.frozen()
        built = None if terms is not None else expression.expr
        self.state.definitions[name] = Definition(indices, expression.free, built, terms)
        return None

    # -- sums, products, powers -----------------------------------------------------------

    def add(self, items):
        return self._sum(items[0], items[1], sign=1)

    def sub(self, items):
        return self._sum(items[0], items[1], sign=-1)

    def _sum(self, left: Piece, right: Piece, sign: int) -> Piece:
        # A term is broadcast over the free indices it lacks, where another term holds
        # every free index of the sum (X_nd w_d + b, x_i - mu); x_i + y_j has none.
        if right.unheld is not None:  # a parenthesised sum must hold up on its own
            raise right.unheld
        free = left._free | right._free
        unheld = None
        if not any(side.unheld is None and side._free == free for side in (left, right)):
            unheld = left.unheld or self.error(
                IndexNotationError,
                f"the terms of a sum must have the same free indices, or one term must hold "
                f"all the others' (a term is broadcast over those it lacks), but "
                f"{_show(sorted(left._free))} is added to {_show(sorted(right._free))}",
                right.start,
            )
        if sign < 0:
            right = Piece(_negate(right.expr), right.start, right.index_positions)
        if left.number is not None and right.number is not None:
            total = left.number.value + right.number.value
            return Piece(self.number_node(total, left.start, "this sum"), left.start)
        # Each piece feeds exactly one parent, so its list of terms can be extended in place.
        terms = left.term_items()
        terms.extend(right.term_items())
        positions = {**right.index_positions, **left.index_positions}
        return Piece(None, left.start, positions, terms, free, unheld=unheld)

    def hadamard(self, items):
        left, _, right = items
        if isinstance(left.expr, Number) and isinstance(right.expr, Number):
            # As juxtaposed numbers do: 1e-299 ⊙ 0.1 is 1e-300, past the bound.
            product = self.number_node(
                left.expr.value * right.expr.value, left.start, "this product"
            )
            return Piece(product, left.start)
        expr = Product((left.expr, right.expr), left.expr.free | right.expr.free)
        return Piece(expr, left.start, {**right.index_positions, **left.index_positions})

    def neg(self, items):
        (piece,) = items
        return Piece(_negate(piece.expr), piece.start, piece.index_positions)

    def pos(self, items):
        return items[0]

    def chain(self, items):
        """Juxtaposed factors form one Einstein product; '/' divides what came before."""
        group: list[Piece] = []
        items = iter(items)
        for item in items:
            if isinstance(item, Token):  # "/"
                numerator = self.einstein(group)
                denominator = next(items)
                group = [self.divide(numerator, denominator)]
            else:
                group.append(item)
        return self.einstein(group)

    def einstein(self, factors: list[Piece]) -> Piece:
        if len(factors) == 1:
            return factors[0]
        counts: Counter[str] = Counter()
        positions: dict[str, Position] = {}
        held = self.state.held_indices
        for piece in factors:
            for index in piece.expr.free:
                counts[index] += 1
                if counts[index] == 3 and index not in held:
                    raise self.error(
                        IndexNotationError,
                        f"index '{index}' appears three times in one product; an index may "
                        f"appear once (free) or twice (summed)",
                        piece.position_of(index),
                    )
                positions.setdefault(index, piece.position_of(index))
        out = {index for index, count in counts.items() if count == 1 or index in held}
        try:
            expr = _product([piece.expr for piece in factors], out)
        except NumberError as error:
            message = f"the numbers in this product multiply to one that {error.reason}"
            raise self.error(NumberError, message, factors[0].start) from None
        return Piece(expr, factors[0].start, {i: positions[i] for i in out})

    def divide(self, numerator: Piece, denominator: Piece) -> Piece:
        # Elementwise; the side lacking indices is broadcast over them, as in a sum
        # (1 / (1 + exp(-x_i)), x_i / A_ij), where the other side holds them all.
        extra = denominator.expr.free - numerator.expr.free
        if extra and not numerator.expr.free <= denominator.expr.free:
            raise self.error(
                IndexNotationError,
                f"the denominator has free indices {_show(sorted(extra))} that the numerator "
                f"lacks, and the numerator has some the denominator lacks; division is "
                f"elementwise, sums nothing, and broadcasts only a side whose indices the "
                f"other holds",
                denominator.position_of(min(extra)),
            )
        num, den = numerator.expr, denominator.expr
        if isinstance(den, Number) and den.value == 0:
            raise self.error(ParseError, "division by zero", denominator.start)
        if isinstance(num, Number) and isinstance(den, Number):
            quotient = self.number_node(num.value / den.value, numerator.start, "this quotient")
            return Piece(quotient, numerator.start)
        expr = Product((num, Power(den, MINUS_ONE)), num.free | den.free)
        positions = {**denominator.index_positions, **numerator.index_positions}
        return Piece(expr, numerator.start, positions)

    def power(self, items):
        base, _, exponent = items
        extra = exponent.expr.free - base.expr.free
        if extra:
            raise self.error(
                IndexNotationError,
                f"the exponent has free indices {_show(sorted(extra))} that the base lacks",
                exponent.position_of(min(extra)),
            )
        b, e = base.expr, exponent.expr
        if isinstance(b, Number) and isinstance(e, Number):
            if b.value == 0 and e.value < 0:
                raise self.error(ParseError, "zero to a negative power", base.start)
            if e.value.denominator == 1 and small_power(b.value, e.value):
                return Piece(Number(b.value ** int(e.value)), base.start)
        return Piece(Power(b, e), base.start, base.index_positions)

    # -- atoms -------------------------------------------------------------------------

    def number(self, items):
        (token,) = items
        text, position = str(token), _pos(token)
        value = _literal_value(text)
        if isinstance(value, str):
            raise self.error(NumberError, f"the number {_abbreviated(text)} {value}", position)
        what = f"the number {_abbreviated(text)}"
        return Piece(self.number_node(value, position, what), position)

    def number_node(self, value: Fraction, position: Position, what: str) -> Number:
        """`value` as a number; `what` names it in the error if it is too large."""
        if not fits(value):
            raise self.error(NumberError, f"{what} {size_problem(value)}", position)
        return Number(value)

    def tensor(self, items):
        name_token = items[0]
        subscript: Subscript | None = items[1] if len(items) > 1 else None
        name, position = self.identifier(name_token), _pos(name_token)
        self.check_name(name, position)
        if subscript is not None and subscript.pairs:
            raise self.error(
                IndexNotationError, "the pair form _{(ij)(kl)} is only for δ", subscript.start
            )
        indices = subscript.indices if subscript else ()
        groups = subscript.groups if subscript else ()
        if groups and name not in self.state.definitions and name != self.state.var:
            raise self.error(
                DefinitionError,
                f"cannot differentiate '{name}': it is neither defined nor the variable "
                f"'{self.state.var}' (set var= or --var to choose the variable)",
                position,
            )
        if name in self.state.definitions:
            piece = self.use_definition(name, indices, position)
        else:
            self.check_rank(name, len(indices), position)
            piece = self.indexed(Tensor(name, (i for i, _ in indices)), indices, position)
        for group in groups:
            piece = self.differentiate(piece, group)
        return piece

    def use_definition(self, name, indices, position) -> Piece:
        definition = self.state.definitions[name]
        if len(indices) != len(definition.indices):
            raise self.error(
                DefinitionError,
                f"'{name}' is defined with {len(definition.indices)} indices "
                f"{_show(definition.indices)} but used with {len(indices)}",
                position,
            )
        used = [i for i, _ in indices]
        if definition.terms is not None and tuple(used) == definition.indices:
            return Piece(
                None, position, dict(indices), free=definition.free, shared=definition.terms
            )
        # A repeated index (M_kk) takes a fresh name and a δ, so the renaming stays one-to-one.
        targets, deltas = [], []
        avoid = set(used) | definition.expr.all_indices
        for k, index in enumerate(used):
            if index in used[:k]:
                fresh = fresh_index(avoid)
                avoid.add(fresh)
                targets.append(fresh)
                deltas.append(Delta((index, fresh)))
            else:
                targets.append(index)
        expr = rename(definition.expr, dict(zip(definition.indices, targets, strict=True)))
        if deltas:
            expr = Product((expr, *deltas), _once(used) | (set(used) & self.state.held_indices))
        return Piece(expr, position, {i: p for i, p in indices})

    def indexed(self, node: Expr, indices, position: Position) -> Piece:
        """A tensor-like node; an index repeated within it is summed at once (a trace)."""
        names = [i for i, _ in indices]
        held = self.state.held_indices
        for index, where in indices:
            if names.count(index) > 2 and index not in held:
                raise self.error(
                    IndexNotationError, f"index '{index}' appears more than twice", where
                )
        out = _once(names) | (set(names) & held)
        if len(out) != len(set(names)):
            node = Product((node,), out)
        return Piece(node, position, {i: p for i, p in indices if i in out})

    def differentiate(self, piece: Piece, group) -> Piece:
        var = self.state.var
        rank = self.state.ranks.get(var)
        if rank is None:
            rank = len(group)
            self.state.ranks[var] = rank
        group_start = group[0][1] if group else piece.start
        if len(group) != rank:
            raise self.error(
                IndexNotationError,
                f"a derivative group has {len(group)} indices but the variable '{var}' has "
                f"rank {rank}; write one group per derivative, e.g. _{{,(ij)}} for a matrix",
                group_start,
            )
        names = [i for i, _ in group]
        if len(set(names)) != len(names):
            raise self.error(
                IndexNotationError, f"a derivative group repeats an index: {names}", group_start
            )
        # An index already free in the expression is summed against it (a divergence).
        clashes = [i for i in names if i in piece.expr.free]
        avoid = set(piece.expr.all_indices) | set(names)
        fresh = {}
        for index in clashes:
            fresh[index] = fresh_index(avoid)
            avoid.add(fresh[index])
        wrt = Tensor(var, (fresh.get(i, i) for i in names))
        inner = rename_bound(piece.expr, frozenset(wrt.indices))  # no summed index shadows
        expr: Expr = Derivative(inner, wrt)
        positions = dict(piece.index_positions)
        positions.update({i: p for i, p in group})
        if clashes:
            deltas = [Delta((i, fresh[i])) for i in clashes]
            kept = set(clashes) & self.state.held_indices
            expr = Product((expr, *deltas), expr.free - set(fresh.values()) - set(clashes) | kept)
            positions = {i: p for i, p in positions.items() if i in expr.free}
        return Piece(expr, piece.start, positions)

    def delta(self, items):
        token, subscript = items
        return self.special(Delta, "δ", token, subscript)

    def epsilon(self, items):
        token, subscript = items
        return self.special(Epsilon, "ε", token, subscript)

    def special(self, cls, symbol, token, subscript: Subscript) -> Piece:
        position = _pos(token)
        if subscript.groups:
            raise self.error(
                IndexNotationError, f"{symbol} cannot take a comma derivative", position
            )
        if subscript.pairs:
            if cls is not Delta:
                raise self.error(IndexNotationError, "the pair form is only for δ", position)
            groups = subscript.pairs
            if len({len(g) for g in groups}) != 1 or len(groups) != 2:
                raise self.error(
                    IndexNotationError,
                    "the pair form needs two groups of equal size, as in δ_{(ij)(kl)}",
                    position,
                )
            names = [i for group in groups for i, _ in group]
            pairs = zip(groups[0], groups[1], strict=True)
            out = _once(names)
            node = _product([Delta((a, b)) for (a, _), (b, _) in pairs], out)
            flat = [entry for group in groups for entry in group]
            return Piece(node, position, {i: p for i, p in flat if i in out})
        if len(subscript.indices) < 2:
            raise self.error(
                IndexNotationError,
                f"{symbol} needs at least two indices, as in {symbol}_ij",
                position,
            )
        return self.indexed(cls(i for i, _ in subscript.indices), subscript.indices, position)

    def reduction_head(self, items):
        token, subscript = items
        position = _pos(token)
        if subscript.groups or subscript.pairs:
            raise self.error(
                IndexNotationError, "sum takes plain indices, as in sum_i(...)", position
            )
        self.state.held.append(frozenset(i for i, _ in subscript.indices))
        return token, subscript

    def reduction(self, items):
        (token, subscript), argument = items
        position = _pos(token)
        self.state.held.pop()
        for index, where in subscript.indices:
            if index not in argument.expr.free:
                raise self.error(
                    IndexNotationError,
                    f"sum over '{index}', but '{index}' is not a free index of its argument "
                    f"(free: {_show(argument.expr.free_indices)})",
                    where,
                )
        summed = {i for i, _ in subscript.indices}
        out = argument.expr.free - summed
        return Piece(
            Product((argument.expr,), out),
            position,
            {i: p for i, p in argument.index_positions.items() if i in out},
        )

    def call(self, items):
        token, argument = items
        name = unicodedata.normalize("NFKC", str(token)[:-1])
        function = lookup(name)
        if function is None:
            known = ", ".join(sorted(FUNCTIONS))
            raise self.error(
                ParseError,
                f"unknown function '{name}'; the known functions are {known}",
                _pos(token),
            )
        return Piece(Func(function.name, argument.expr), _pos(token), argument.index_positions)

    def group(self, items):
        piece = items[0]
        for group in items[1:]:
            for g in group:
                piece = self.differentiate(piece, g)
        return piece

    # -- subscripts --------------------------------------------------------------------

    def plain_sub(self, items):
        (token,) = items
        start = _pos(token)
        indices: list[Located] = []
        for offset, char in enumerate(str(token)[1:], start=1):
            indices += self.letters(char, Position(start.line, start.column + offset))
        return Subscript(tuple(indices), start=start)

    def brace_sub(self, items):
        brace, *tokens = items
        indices = self.index_tokens(tokens)
        if not indices:
            raise self.error(IndexNotationError, "empty subscript '_{}'", _pos(brace))
        return Subscript(indices, start=_pos(brace))

    def comma_sub(self, items):
        brace, *rest = items
        indices = self.index_tokens([t for t in rest if isinstance(t, Token)])
        groups = tuple(g for g in rest if not isinstance(g, Token))
        return Subscript(indices, groups, start=_pos(brace))

    def pair_sub(self, items):
        brace, *groups = items
        if not all(groups):
            raise self.error(IndexNotationError, "an empty index group '()'", _pos(brace))
        return Subscript((), pairs=tuple(groups), start=_pos(brace))

    def comma_only(self, items):
        return tuple(items[1:])

    def single_group(self, items):
        return self.index_tokens(items)

    def paren_group(self, items):
        return self.index_tokens(items)

    def index_tokens(self, tokens) -> tuple[Located, ...]:
        return tuple(index for t in tokens for index in self.letters(str(t), _pos(t)))

    def letters(self, char: str, where: Position) -> list[Located]:
        """The indices a subscript character stands for: itself, or what Unicode
        normalisation (NFKC) makes of it, so that 𝑖 is i."""
        normal = unicodedata.normalize("NFKC", char)
        if not normal.isalpha():
            raise self.error(
                IndexNotationError, f"'{char}' is not an index: indices are single letters", where
            )
        return [(letter, where) for letter in normal]

    def identifier(self, token: Token) -> str:
        """A tensor name as Python would read it: NFKC-normalised, so that ｔ1 is t1 and
        µ (micro sign) is μ."""
        text = str(token)
        name = unicodedata.normalize("NFKC", text)
        if not _NAME.fullmatch(name):
            raise self.error(
                ParseError,
                f"'{text}' reads as '{name}' (Unicode NFKC normalisation, as Python reads "
                f"names), which is not a name: a letter followed by letters and digits",
                _pos(token),
            )
        return name

    def check_name(self, name: str, position: Position) -> None:
        if name in RESERVED:
            hint = _RESERVED_HINTS.get(name, "")
            raise self.error(
                ParseError,
                f"'{name}' is reserved (a function or a symbol) and cannot name a tensor{hint}",
                position,
            )


# What a user who wrote a reserved name as a tensor most likely meant.
_RESERVED_HINTS = {
    "eps": "; eps_ijk is the Levi-Civita symbol, so name a small constant epsilon",
    "delta": "; delta_ij is the Kronecker delta",
    "sum": "; sum_i(...) sums over i",
}

_NAME = re.compile(r"[^\W\d_][^\W_]*")  # as NAME in the grammar
_LITERAL = re.compile(r"(\d*)\.?(\d*)(?:[eE]([+-]?\d+))?")


def _literal_value(text: str) -> Fraction | str:
    """The exact value of a number literal, or why it is none: too large or too precise
    (see `expr.fits`), decided from the digits before any large number is computed."""
    match = _LITERAL.fullmatch(text)
    assert match is not None  # the grammar's NUMBER
    whole, decimals, exponent = match.groups()
    digits = (whole + decimals).lstrip("0")
    significant = digits.rstrip("0")
    if not significant:
        return Fraction(0)
    exponent = exponent or "0"
    if len(exponent.lstrip("+-").lstrip("0")) > 9:  # beyond any bound below
        large = not exponent.startswith("-")
        power = 10**9 if large else -(10**9)
    else:
        power = int(exponent)
    power += len(digits) - len(significant) - len(decimals)  # value = significant × 10^power
    magnitude = len(significant) + power - 1  # value ≈ 10^magnitude
    if magnitude >= MAX_DIGITS:
        return too_large(magnitude)
    # Reduced, the denominator is at least 2^-power (no trailing zeros: 2 and 5 do not
    # both divide the digits), over 10^MAX_DIGITS here; the digits are then fewer than
    # MAX_DIGITS + 1000, a size int() reads at once.
    if -power > 1000:
        return too_precise(1 - power)
    value = int(significant) * Fraction(10) ** power
    return value if fits(value) else size_problem(value)


def _abbreviated(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}…{text[-8:]}"


def _show(indices) -> str:
    return "{" + ", ".join(indices) + "}" if indices else "{} (none)"


def _once(names) -> set[str]:
    counts = Counter(names)
    return {i for i, c in counts.items() if c == 1}


def _terms(expr: Expr) -> tuple[Expr, ...]:
    return expr.terms if isinstance(expr, Sum) else (expr,)


def _negate(expr: Expr) -> Expr:
    """-expr; a number, or a product's leading number other than -1, changes sign, so
    that printed ``-0.5 x_i`` parses back to the product it was printed from."""
    if isinstance(expr, Number):
        return Number(-expr.value)
    coefficient = expr.factors[0] if isinstance(expr, Product) else None
    if isinstance(expr, Product) and isinstance(coefficient, Number) and coefficient != MINUS_ONE:
        return Product((Number(-coefficient.value), *expr.factors[1:]), expr.out)
    return Product((MINUS_ONE, expr), expr.free)


def _is_delta_product(node: Expr) -> TypeGuard[Product]:
    return (
        isinstance(node, Product)
        and not node.summed
        and all(isinstance(f, Delta) for f in node.factors)
    )


def _product(factors: list[Expr], out) -> Expr:
    """An Einstein product with its number factors folded into one leading coefficient."""
    coefficient = Fraction(1)
    rest: list[Expr] = []
    for factor in factors:
        if isinstance(factor, Number):
            coefficient *= factor.value
        elif _is_delta_product(factor):
            rest.extend(factor.factors)  # δ_{(ij)(kl)} joins the product it stands in
        else:
            rest.append(factor)
    if not fits(coefficient):
        raise NumberError(size_problem(coefficient))
    if not rest:
        return Number(coefficient)
    if coefficient == 1 and len(rest) == 1 and rest[0].free == set(out):
        return rest[0]
    if coefficient != 1:
        rest.insert(0, Number(coefficient))
    return Product(rest, out)


@cache
def _parser() -> tuple[lark.Lark, Builder]:
    builder = Builder()
    parser = lark.Lark(grammar_text(), parser="lalr", transformer=builder, maybe_placeholders=False)
    return parser, builder


_parse_lock = threading.Lock()


def parse(text: str, var: str = "x") -> Expr:
    """Parse a program (definitions, then one expression) into an expression.

    `var` names the variable that comma derivatives (``f_{,i}``) differentiate by.
    Raises `ParseError` (or a subclass) with the line, column and a caret on bad input.
    """
    if not isinstance(text, str):
        raise ParseError(f"expected notation as a string, got {type(text).__name__}")
    if not isinstance(var, str):
        raise ParseError(f"the variable must be named by a string, not {type(var).__name__}")
    var = unicodedata.normalize("NFKC", var)  # as names in the text are
    if not _is_identifier(var):
        raise ParseError(f"the variable name must be a tensor name, not {var!r}")
    parser, builder = _parser()
    with _parse_lock, builder.parsing(ParseState(text, var)):
        try:
            # Lark's annotations give a tree; with a transformer it returns what `start` does.
            piece = cast(Piece, parser.parse(text))
        except lark.exceptions.UnexpectedInput as error:
            raise _syntax_error(text, error) from None
    hint = transpose_hint(piece.expr)
    if hint is not None:
        warnings.warn(hint, NotationWarning, stacklevel=3)
    return piece.expr


TRANSPOSE = Tensor("T")


def transpose_hint(expr: Expr) -> str | None:
    """What `expr` was read as, when a scalar T appears only as an exponent: ``x^T`` is
    matrix notation for a transpose, which index notation reads as x to the power T.

    Where `expr` is a product of bare names, some raised to T, the hint shows the index
    form, taking lowercase names as vectors and capitals as matrices: x^T A x → x_i A_ij x_j.
    """
    nodes = _nodes(expr)
    if TRANSPOSE not in nodes:
        return None
    as_exponent = [n for n in nodes if isinstance(n, Power) and n.exponent is TRANSPOSE]
    elsewhere = [n for n in nodes if TRANSPOSE in n.children and n not in as_exponent]
    if not as_exponent or elsewhere:
        return None
    message = (
        "'^T' was read as a power of a scalar named T, not as a transpose: indexcalc reads "
        "index notation"
    )
    index_form = _matrix_chain_in_indices(expr)
    if index_form is not None:
        message += f"; for the transpose write {index_form}"
    return message


def _matrix_chain_in_indices(expr: Expr) -> str | None:
    """x^T A x as index notation, x_i A_ij x_j; None unless `expr` is such a chain."""
    factors = expr.factors if isinstance(expr, Product) else (expr,)
    names = []
    for factor in factors:
        if isinstance(factor, Power) and factor.exponent is TRANSPOSE:
            base, transposed = factor.base, True
        else:
            base, transposed = factor, False
        if not (isinstance(base, Tensor) and not base.indices and base.name != "T"):
            return None
        names.append((base.name, transposed))
    letters = iter("ijklmnpqrs")
    pieces, pending = [], None  # pending: the column index the next factor's rows meet
    for name, transposed in names:
        matrix = name[0].isupper()
        row = None if transposed and not matrix else pending or next(letters)
        column = next(letters) if matrix or transposed else None
        axes = (column, row) if matrix and transposed else (row, column)
        pieces.append(f"{name}_{''.join(a for a in axes if a)}")
        pending = column
    return " ".join(pieces)


def _nodes(root: Expr) -> set[Expr]:
    found, stack = set(), [root]
    while stack:
        node = stack.pop()
        if node not in found:
            found.add(node)
            stack.extend(node.children)
    return found


def _is_identifier(name: str) -> bool:
    return bool(name) and name[0].isalpha() and name.isalnum() and name not in RESERVED


_TERMINAL_NAMES = {
    "NUMBER": "a number",
    "NAME": "a tensor name",
    "CALL": "a function call",
    "LPAR": "'('",
    "RPAR": "')'",
    "SUM": "sum_i(...)",
    "DELTA": "δ",
    "EPS": "ε",
    "SUB": "a subscript",
    "INDEX": "an index letter",
    "COMMA": "','",
    "RBRACE": "'}'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "EQUAL": "'='",
    "$END": "the end of the input (a new line ends the expression)",
    "NL": "a new line",
    "_NL": "a new line",
    "SEMICOLON": "';'",
}


def _syntax_error(text: str, error: lark.exceptions.UnexpectedInput) -> ParseError:
    position = Position(getattr(error, "line", 1) or 1, getattr(error, "column", 1) or 1)
    if not _strip_comments(text).strip():
        return ParseError("empty input: there is no expression to parse", text, Position(1, 1))
    if isinstance(error, lark.exceptions.UnexpectedCharacters):
        char = error.char
        if char == "_":
            return ParseError("'_' must be followed by an index, as in x_i", text, position)
        return ParseError(f"unexpected character {char!r}", text, position)
    if isinstance(error, lark.exceptions.UnexpectedToken):
        token = error.token
        expected = set(error.expected)
        operand = bool(expected & _OPERAND_STARTS)
        if token.type == "$END":
            position = _end_position(text)
            if "RBRACE" in expected:
                return ParseError("unexpected end of input: a '_{' is never closed", text, position)
            if "RPAR" in expected:
                return ParseError("unexpected end of input: a '(' is never closed", text, position)
            if expected & {"NL", "SEMICOLON", "_NL"} and not operand:
                return ParseError(
                    "the program ends after a definition: add the expression to compute "
                    "as its last line, e.g. 'a = 2 x; a'",
                    text,
                    position,
                )
            return ParseError(
                f"unexpected end of input: expected {_describe(expected)}", text, position
            )
        if token.type == "RPAR":
            before = text[: token.start_pos].rstrip()
            if before.endswith(("(", "+", "-", "*", "/", "^", "⊙", "=", ",")):
                return ParseError("expected an expression before ')'", text, position)
            return ParseError("unbalanced ')': there is no '(' to close", text, position)
        return ParseError(
            f"unexpected {str(token)!r}: expected {_describe(expected)}", text, position
        )
    return ParseError("the input could not be parsed", text, position)


_OPERAND_STARTS = {"NUMBER", "NAME", "CALL", "LPAR", "SUM", "DELTA", "EPS"}


def _describe(expected: set[str]) -> str:
    names = sorted({_TERMINAL_NAMES.get(t, repr(t.strip("_").lower())) for t in expected})
    if len(names) > 6:
        names = [*[n for n in names if n in _TERMINAL_NAMES.values()][:6], "…"]
    return ", ".join(names) or "something else"


def _end_position(text: str) -> Position:
    stripped = _strip_comments(text).rstrip()
    lines = stripped.splitlines() or [""]
    return Position(len(lines), len(lines[-1]) + 1)


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())
