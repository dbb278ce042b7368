"""Hypothesis strategies for random well-formed index notation, and the arrays to evaluate it on.

`programs()` draws an `Example`: program text (definitions, then one expression) built from
the whole notation, with the sizes of every index letter and random arrays for every
tensor. Everything is generated as text, so the parser is exercised too. The generator
tracks free indices exactly as the notation defines them:

- in a product an index is in at most two factors; in two it is summed, in one it is free;
  inside ``sum_i(...)`` the index ``i`` is held, so a product keeps it;
- the terms of a sum have the same free indices; ``⊙`` keeps the union;
- a denominator's or exponent's free indices are a subset of the numerator's or base's.

Functions only see arguments in their domain: ``log`` and ``sqrt`` take ``u^2 + 1``,
``exp(u)`` or ``σ(u)``, and ``tan`` takes ``tanh(u)``. Kinks and poles (``abs``, ``relu``,
``sign``, ``step``, ``u^-1``) are generated freely; `smooth_at` rejects points too close to
them, by evaluating each such argument in the parsed expression.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

import indexcalc as ic
from indexcalc.compile import postorder
from indexcalc.expr import Expr, Func, Number, Power

T = TypeVar("T")

ALPHABET = "ijklmn"  # index letters of generated expressions
DERIVATIVE_LETTERS = "pqrstαβγζη"  # fresh letters for derivatives; never in ALPHABET
NAMES = {0: ("a", "b", "c"), 1: ("u", "v", "x", "yhat"), 2: ("A", "B", "W2"), 3: ("T", "S")}
VAR = "x"  # the comma-derivative variable, always a vector
NUMBERS = ("2", "3", "0.5", "1.5", "1e-1", "3/2")
EXPONENTS = ("2", "2", "3", "1", "2", "3", "0")  # of any base: whole, so defined anywhere
FUNCTIONS = ("exp", "sin", "cos", "tanh", "σ", "sigmoid", "sigma", "softplus")

# Precedence levels of generated text, loosest first (see grammar/indexcalc.lark).
SUM, HADAMARD, SIGNED, CHAIN, POWER, ATOM = range(6)

KINKED = frozenset({"abs", "relu", "sign", "step"})
KINK_MARGIN = 1e-3  # how far a kink's or pole's argument must stay from it
LARGEST = 1e5  # values beyond this make finite differences too inexact to compare


@dataclass(frozen=True)
class Piece:
    """Generated text and how tightly it binds."""

    text: str
    level: int

    def operand(self, level: int) -> str:
        """The text as an operand that needs at least `level`, parenthesised if looser."""
        return self.text if self.level >= level else f"({self.text})"


@dataclass
class Example:
    """A generated program with everything needed to evaluate it."""

    text: str
    arrays: dict[str, np.ndarray]
    dims: dict[str, int]  # the size of every index letter in ALPHABET
    out: str  # the expression's free indices, sorted


# -- the random decisions, from hypothesis or from a seed ------------------------------------


class Choices(Protocol):
    """Every random decision a `Generator` makes."""

    def choose(self, options: Iterable[T]) -> T: ...

    def coin(self) -> bool: ...

    def integer(self, low: int, high: int) -> int: ...

    def shuffled(self, items: Iterable[T]) -> list[T]: ...


@dataclass(frozen=True)
class DrawnChoices:
    """Decisions drawn by hypothesis, which can shrink them."""

    draw: st.DrawFn

    def choose(self, options):
        return self.draw(st.sampled_from(list(options)))

    def coin(self) -> bool:
        return self.draw(st.booleans())

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def shuffled(self, items) -> list:
        return list(self.draw(st.permutations(list(items))))


@dataclass(frozen=True)
class SeededChoices:
    """Decisions from a seeded `random.Random`: the fuzzer's inputs, the same everywhere."""

    rng: random.Random

    def choose(self, options):
        return self.rng.choice(list(options))

    def coin(self) -> bool:
        return self.rng.random() < 0.5

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def shuffled(self, items) -> list:
        items = list(items)
        return self.rng.sample(items, len(items))


@dataclass(frozen=True)
class Vocabulary:
    """What generated text may hold beyond its structure. The default keeps every
    function inside its domain; the fuzzer's hostile one adds names, numbers, exponents
    and functions outside their domains (``log(u)``, ``sqrt(u)``, ``tan(u)``)."""

    names: Mapping[int, tuple[str, ...]] = field(default_factory=lambda: dict(NAMES))
    numbers: tuple[str, ...] = NUMBERS
    exponents: tuple[str, ...] = EXPONENTS
    outside_domains: bool = False


# -- expressions ------------------------------------------------------------------------------


@dataclass
class Generator:
    """Writes expressions with a required set of free indices, top-down."""

    choices: Choices
    sizes: dict[str, int]
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    defined: dict[str, tuple[int, ...]] = field(default_factory=dict)

    # -- helpers -----------------------------------------------------------------------

    def choose(self, options):
        return self.choices.choose(options)

    def coin(self) -> bool:
        return self.choices.coin()

    def order(self, letters: Iterable[str]) -> tuple[str, ...]:
        """`letters` in a random order, repeats kept."""
        return tuple(self.choices.shuffled(sorted(letters)))

    def shape_of(self, letters: Iterable[str]) -> tuple[int, ...]:
        return tuple(self.sizes[letter] for letter in letters)

    def unused(self, *taken: Iterable[str]) -> list[str]:
        busy = set().union(*map(set, taken))
        return [letter for letter in ALPHABET if letter not in busy]

    def number(self) -> Piece:
        number = self.choose(self.vocabulary.numbers)
        return Piece(number, CHAIN if "/" in number and "(" not in number else ATOM)

    def array_name(self, shape: tuple[int, ...]) -> str:
        """A tensor name of rank len(shape) that is unused or already has this shape."""
        rank = len(shape)
        names = self.vocabulary.names[rank]
        fits = [n for n in names if self.shapes.get(n, shape) == shape and n not in self.defined]
        name = self.choose(fits) if fits else f"{NAMES[rank][0]}{len(self.shapes)}"
        self.shapes[name] = shape
        return name

    def tensor_text(self, name: str, letters: tuple[str, ...]) -> str:
        if not letters:
            return name
        if self.coin():
            return f"{name}_{''.join(letters)}"
        return f"{name}_{{{(' ' if self.coin() else '').join(letters)}}}"

    def tensor(self, letters: tuple[str, ...]) -> Piece:
        return Piece(self.tensor_text(self.array_name(self.shape_of(letters)), letters), ATOM)

    # -- expressions -------------------------------------------------------------------

    def expr(
        self,
        free: frozenset[str],
        held: frozenset[str] = frozenset(),
        depth: int = 2,
        avoid: frozenset[str] = frozenset(),
    ) -> Piece:
        """An expression whose free indices are exactly `free`.

        `held` are the indices of enclosing ``sum_i(...)``; `avoid` the letters of an
        enclosing product, which a leaf must not use for an index it sums.
        """
        if depth <= 0:
            return self.leaf(free, held, 0, avoid)
        kinds = [self.leaf, self.product, self.hadamard, self.sum, self.negate]
        kinds += [self.function, self.power, self.divide, self.reduce]
        if self.comma_letters(free, held):
            kinds.append(self.comma)
        return self.choose(kinds)(free, held, depth - 1, avoid)

    def leaf(self, free, held, depth, avoid) -> Piece:
        if len(free) > 3:  # no tensor has that many indices: an outer product of two
            first = frozenset(sorted(free)[:2])
            a = self.leaf(first, held, depth, avoid | free)
            b = self.leaf(free - first, held, depth, avoid | free)
            return Piece(f"{a.operand(POWER)} {b.operand(POWER)}", CHAIN)
        kinds = ["tensor", "tensor"]
        free_sizes = {self.sizes[letter] for letter in free}
        spare = self.unused(free, held, avoid)
        if not free:
            kinds.append("number")
        if len(free) >= 2 and len(free_sizes) == 1:
            kinds.append("delta")
        if len(free) in (2, 3) and free_sizes == {len(free)}:
            kinds.append("epsilon")
        if len(free) <= 1 and spare:
            kinds.append("trace")
        if free & held and len(free) <= 2:
            kinds.append("diagonal")
        if self.defined_uses(free):
            kinds.append("defined")
        kind = self.choose(kinds)

        if kind == "number":
            return self.number()
        if kind == "delta":
            return Piece(f"{self.choose(['δ', 'delta'])}_{''.join(self.order(free))}", ATOM)
        if kind == "epsilon":
            return Piece(f"{self.choose(['ε', 'eps'])}_{''.join(self.order(free))}", ATOM)
        if kind == "trace":
            summed = self.choose(spare)
            if not free and self.coin():
                return Piece(f"{self.choose(['δ', 'delta'])}_{summed}{summed}", ATOM)
            return self.tensor(tuple(self.choices.shuffled((*free, summed, summed))))
        if kind == "diagonal":
            repeated = self.choose(sorted(free & held))
            return self.tensor(tuple(self.choices.shuffled((*sorted(free), repeated))))
        if kind == "defined":
            name, orders = self.choose(self.defined_uses(free))
            return Piece(self.tensor_text(name, self.choose(orders)), ATOM)
        return self.tensor(self.order(free))

    def defined_uses(self, free) -> list[tuple[str, list[tuple[str, ...]]]]:
        """Defined names usable with the indices `free`, each with the index orders that fit."""
        uses = []
        for name, shape in sorted(self.defined.items()):
            orders = [p for p in itertools.permutations(sorted(free)) if self.shape_of(p) == shape]
            if orders:
                uses.append((name, orders))
        return uses

    def product(self, free, held, depth, avoid) -> Piece:
        """An Einstein product: every index in at most two factors; two means summed."""
        count = self.choices.integer(2, 3)
        slots: list[list[str]] = [[] for _ in range(count)]
        spare = self.unused(free, held)
        texts: list[str | None] = [None] * count
        unassigned = set(free)

        if self.coin():  # a δ or ε factor, contracted with the others
            kind = self.choose(["δ", "ε"])
            rank = self.choose([2, 3])
            size = rank if kind == "ε" else self.choose(sorted(set(self.sizes.values())))
            candidates = [x for x in sorted(unassigned) + spare if self.sizes[x] == size]
            if len(candidates) >= rank:
                letters = self.choices.shuffled(candidates)[:rank]
                texts[0] = f"{kind}_{''.join(letters)}"
                slots[0] = list(letters)
                for letter in letters:
                    if letter in unassigned:
                        unassigned.discard(letter)
                    else:
                        spare.remove(letter)
                        slots[self.choices.integer(1, count - 1)].append(letter)
        generic = [k for k in range(count) if texts[k] is None]
        for letter in sorted(unassigned):
            twice = letter in held and len(generic) >= 2 and self.coin()
            for k in self.choices.shuffled(generic)[: 2 if twice else 1]:
                slots[k].append(letter)
        if len(generic) >= 2:
            for letter in self.choices.shuffled(spare)[: self.choices.integer(0, 2)]:
                for k in self.choices.shuffled(generic)[:2]:
                    slots[k].append(letter)

        letters_here = frozenset(free).union(*map(frozenset, slots))
        factors = []
        for k in range(count):
            text = texts[k]
            if text is None:
                text = self.expr(frozenset(slots[k]), held, depth, letters_here).operand(POWER)
            factors.append(text)
        if self.coin():
            factors.insert(0, self.number().operand(POWER))
        return Piece(self.choose([" ", " * "]).join(factors), CHAIN)

    def hadamard(self, free, held, depth, avoid) -> Piece:
        """``a ⊙ b``: nothing summed, free indices the union."""
        sides = {letter: self.choose(["left", "right", "both"]) for letter in sorted(free)}
        left = frozenset(x for x, side in sides.items() if side != "right")
        right = frozenset(x for x, side in sides.items() if side != "left")
        a = self.expr(left, held, depth)
        b = self.expr(right, held, depth)
        operator = self.choose(["⊙", ".*"])
        return Piece(f"{a.operand(HADAMARD)} {operator} {b.operand(SIGNED)}", HADAMARD)

    def sum(self, free, held, depth, avoid) -> Piece:
        first = self.expr(free, held, depth)
        kind = self.choose(["same", "same", "number", "broadcast"])
        if kind == "number":
            second = self.number()
        elif kind == "broadcast":  # a term over some of the indices, broadcast over the rest
            kept = frozenset(x for x in sorted(free) if self.coin())
            second = self.expr(kept, held, depth)
            if self.coin():  # the smaller term first: b_a + X_na
                first, second = second, first
        else:
            second = self.expr(free, held, depth)
        sign = self.choose(["+", "-"])
        return Piece(f"{first.operand(SUM)} {sign} {second.operand(HADAMARD)}", SUM)

    def negate(self, free, held, depth, avoid) -> Piece:
        return Piece(f"-{self.expr(free, held, depth).operand(SIGNED)}", SIGNED)

    def positive(self, free, held, depth) -> str:
        """Text of an expression that is positive everywhere."""
        u = self.expr(free, held, depth)
        form = self.choose(["square", "exp", "sigmoid"])
        if form == "square":
            return f"{u.operand(ATOM)}^2 + {self.choose(['1', '0.5', '2'])}"
        if form == "exp":
            return f"exp({u.text})"
        return f"σ({u.text})"

    def function(self, free, held, depth, avoid) -> Piece:
        kinds = ["any", "positive", "kinked", "tan", "log1p"]
        if self.vocabulary.outside_domains:
            kinds.append("anywhere")
        kind = self.choose(kinds)
        if kind == "positive":
            return Piece(
                f"{self.choose(['log', 'sqrt'])}({self.positive(free, held, depth)})", ATOM
            )
        u = self.expr(free, held, depth)
        if kind == "any":
            return Piece(f"{self.choose(FUNCTIONS)}({u.text})", ATOM)
        if kind == "kinked":
            return Piece(f"{self.choose(sorted(KINKED))}({u.text})", ATOM)
        if kind == "tan":
            return Piece(f"tan(tanh({u.text}))", ATOM)
        if kind == "anywhere":
            return Piece(f"{self.choose(['log', 'sqrt', 'tan', 'log1p'])}({u.text})", ATOM)
        return Piece(f"log1p({u.operand(ATOM)}^2)", ATOM)

    def power(self, free, held, depth, avoid) -> Piece:
        kind = self.choose(["integer", "inverse", "pole", "fraction", "general", "number"])
        if kind == "integer":
            base = self.expr(free, held, depth, avoid)
            exponent = self.choose(self.vocabulary.exponents)
            return Piece(f"{base.operand(ATOM)}{self.choose(['^', '**'])}{exponent}", POWER)
        if kind == "pole":
            return Piece(f"{self.expr(free, held, depth, avoid).operand(ATOM)}^-1", POWER)
        if kind == "number" and not free:
            exponent = self.expr(free, held, depth)
            return Piece(f"{self.choose(['2', '0.5'])}^({exponent.text})", POWER)
        base = f"({self.positive(free, held, depth)})"
        if kind == "inverse":
            return Piece(f"{base}^{self.choose(['-1', '-2'])}", POWER)
        if kind == "fraction":
            return Piece(f"{base}^{self.choose(['0.5', '(3/2)', '(-1/2)'])}", POWER)
        subset = frozenset(x for x in sorted(free) if self.coin())
        return Piece(f"{base}^({self.expr(subset, held, depth).text})", POWER)

    def divide(self, free, held, depth, avoid) -> Piece:
        numerator = self.expr(free, held, depth)
        if self.coin():
            denominator = self.choose(["2", "3", "0.5"])
        else:
            subset = frozenset(x for x in sorted(free) if self.coin())
            denominator = f"({self.positive(subset, held, depth)})"
        return Piece(f"{numerator.operand(POWER)} / {denominator}", CHAIN)

    def reduce(self, free, held, depth, avoid) -> Piece:
        """``sum_i(...)``: the argument has `i` free, and products inside keep it."""
        spare = self.unused(free, held)
        if not spare:
            return self.expr(free, held, depth, avoid)
        summed = self.choices.shuffled(spare)[: self.choices.integer(1, 2)]
        argument = self.expr(free | set(summed), held | set(summed), depth)
        head = self.choose(["sum", "Σ", "∑"])
        subscript = f"_{summed[0]}" if len(summed) == 1 else f"_{{{''.join(summed)}}}"
        return Piece(f"{head}{subscript}({argument.text})", ATOM)

    def comma_letters(self, free, held) -> list[str]:
        """Indices of `free` that can be a comma derivative by the vector `VAR`."""
        return [
            x
            for x in sorted(free - held)
            if self.shapes.get(VAR, (self.sizes[x],)) == (self.sizes[x],)
        ]

    def comma(self, free, held, depth, avoid) -> Piece:
        """``(expr)_{,k}`` or a defined name's ``h_{i,k}``: ∂/∂x_k, carried out by the parser."""
        k = self.choose(self.comma_letters(free, held))
        self.shapes[VAR] = (self.sizes[k],)
        rest = frozenset(free - {k})
        uses = self.defined_uses(rest)
        if uses and self.coin():
            name, orders = self.choose(uses)
            return Piece(f"{name}_{{{''.join(self.choose(orders))},{k}}}", ATOM)
        inner = self.expr(rest, held, depth)
        return Piece(f"({inner.text})_{{,{k}}}", ATOM)


@dataclass(frozen=True)
class Written:
    """A written program: its text, the sizes of the index letters, the shapes of its
    tensors and its free indices, sorted."""

    text: str
    sizes: dict[str, int]
    shapes: dict[str, tuple[int, ...]]
    out: str


def write_program(
    choices: Choices, vocabulary: Vocabulary | None = None, max_depth: int = 3
) -> Written:
    """A random program: up to two definitions, then an expression."""
    sizes = {letter: choices.choose([2, 3]) for letter in ALPHABET}
    generator = Generator(choices, sizes, vocabulary or Vocabulary())
    statements = []
    for number in range(choices.integer(0, 2)):
        letters = choices.shuffled(ALPHABET)[: choices.integer(0, 2)]
        body = generator.expr(frozenset(letters), depth=choices.integer(0, 2))
        name = f"h{number + 1}"
        head = f"{name}_{{{''.join(letters)}}}" if letters else name
        statements.append(f"{head} = {body.text}")
        generator.defined[name] = generator.shape_of(letters)
    free = sorted(choices.shuffled(ALPHABET)[: choices.integer(0, 2)])
    statements.append(generator.expr(frozenset(free), depth=choices.integer(1, max_depth)).text)
    text = choices.choose(["; ", "\n"]).join(statements)
    return Written(text, sizes, generator.shapes, "".join(free))


@st.composite
def programs(draw, max_depth: int = 3) -> Example:
    """A random program: up to two definitions, then an expression, with arrays to evaluate it."""
    written = write_program(DrawnChoices(draw), max_depth=max_depth)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    arrays = {
        name: rng.uniform(-1.5, 1.5, size=shape) for name, shape in sorted(written.shapes.items())
    }
    return Example(written.text, arrays, written.sizes, written.out)


@dataclass(frozen=True)
class Variable:
    """A tensor to differentiate by, written with fresh derivative indices (``"A_pq"``)."""

    name: str
    letters: str

    @property
    def wrt(self) -> str:
        return f"{self.name}_{self.letters}" if self.letters else self.name


def variables(draw, example: Example, expr: Expr, count: int = 1) -> list[Variable]:
    """`count` copies of one random input of `expr`, each with its own fresh letters."""
    names = sorted(name for name in expr.tensor_names if name in example.arrays)
    assume(names)
    name = draw(st.sampled_from(names))
    rank = example.arrays[name].ndim
    letters = draw(st.permutations(DERIVATIVE_LETTERS))
    return [Variable(name, "".join(letters[k * rank : (k + 1) * rank])) for k in range(count)]


def dims_with(example: Example, variables_: Iterable[Variable]) -> dict[str, int]:
    """The example's index sizes plus those of the variables' derivative letters."""
    dims = dict(example.dims)
    for variable in variables_:
        dims.update(zip(variable.letters, example.arrays[variable.name].shape, strict=True))
    return dims


def sizes_of(out: str, example: Example, dims: Mapping[str, int] | None) -> dict[str, int]:
    """Sizes for the output indices only.

    Summed indices get their sizes from the arrays: the names of summed indices change
    under differentiation and simplification, so a size given by name could hit the
    wrong one.
    """
    known = dims or example.dims
    # A letter outside the example's (a summed index renamed inside a subexpression that
    # is evaluated alone) is sized by its tensor.
    return {letter: known[letter] for letter in out if letter in known}


def evaluate(expr, example: Example, out: str, dims: Mapping[str, int] | None = None):
    """`expr` on the example's arrays, in float64, with axes in the order `out`.

    A dimension δ_kk takes the size of k from a tensor indexed by k in the same
    expression; where differentiation removed that tensor, k needs dims= (documented),
    which the tests cannot know for a summed index: such inputs are skipped.
    """
    try:
        with np.errstate(all="ignore"):
            value = ic.evaluate(
                expr, example.arrays, out=out or None, dims=sizes_of(out, example, dims)
            )
    except ic.EvaluationError as error:
        assume("is not fixed by any array" not in str(error))
        raise
    assert value.dtype == np.float64, value.dtype  # every input is float64
    return np.asarray(value)


def central_difference(
    expr, example: Example, name: str, out: str, dims: Mapping[str, int] | None = None
) -> np.ndarray:
    """∂expr/∂`name` by central differences: axes `out`, then the variable's axes.

    Compiles once, so every perturbed evaluation reuses one plan.
    """
    function = ic.compile(expr, out or None, dims=sizes_of(out, example, dims))
    base = example.arrays[name]
    evaluate(expr, example, out, dims)  # skips what evaluate skips
    rows = []
    for position in np.ndindex(base.shape):
        step = 1e-6 * max(1.0, abs(float(base[position])))
        up, down = base.copy(), base.copy()
        up[position] += step
        down[position] -= step
        values_up = function({**example.arrays, name: up})
        values_down = function({**example.arrays, name: down})
        rows.append((np.asarray(values_up) - np.asarray(values_down)) / (2 * step))
    value_shape = np.shape(function(example.arrays))
    stacked = np.stack(rows, axis=-1) if rows else np.zeros((*value_shape, 0))
    return stacked.reshape(value_shape + base.shape)


def smooth_at(expr: Expr, example: Example) -> bool:
    """Whether `example`'s point is away from every kink and pole in `expr`, and finite.

    Checks the arguments of abs, relu, sign and step, and the bases of powers whose
    exponent is not a non-negative integer. An expression with an index that no array
    sizes (``δ_jj`` alone) counts as not smooth: its value depends on an unknown size.
    """
    try:
        return _smooth_at(expr, example)
    except ic.EvaluationError:
        return False


def _smooth_at(expr: Expr, example: Example) -> bool:
    for node in postorder(expr):
        if isinstance(node, Func) and node.name in KINKED:
            near = node.arg
        elif isinstance(node, Power) and not (
            isinstance(node.exponent, Number)
            and node.exponent.value >= 0
            and node.exponent.value.denominator == 1
        ):
            near = node.base
        else:
            continue
        value = evaluate(near, example, "".join(near.free_indices))
        if not np.all(np.isfinite(value)) or np.any(np.abs(value) < KINK_MARGIN):
            return False
    value = evaluate(expr, example, "".join(expr.free_indices))
    return bool(np.all(np.isfinite(value)) and np.all(np.abs(value) < LARGEST))


def parsed(example: Example) -> Expr:
    """The example's expression, parsed, at a point away from its kinks and poles."""
    try:
        expr = ic.parse(example.text)
    except ic.ParseError as error:  # constant parts like (2 - 2)^-1 are rightly rejected
        assume("division by zero" not in str(error) and "zero to a negative" not in str(error))
        raise
    assert expr.free_indices == tuple(example.out), example.text
    assume(smooth_at(expr, example))
    return expr
