"""An expression printed as a program: each shared subexpression defined once, by name.

A derivative is a DAG: the softmax s_i appears in every term of its Jacobian, and a
network's hidden layer in every term of its gradient. Printed as a tree, each copy is
written out again. `to_program` names them instead, as a person does on paper:

    s_i = exp(z_i) / Σ_j(exp(z_j))
    Σ_i(t_i) s_k - t_k

Two passes, both value-preserving: `Normalisations` writes a factor N times a power of
Σ_j N_j as quotients (exp(x_i) Σ_j(exp(x_j))^-2 exp(x_k) is s_i s_k), and `_shared`
names subexpressions that occur more than once, equal up to the names of their indices
(by `canonical.CanonicalForm`), largest saving first. The program is text in the
notation's own language: it parses back (definitions first, then the result) to the
same value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .canonical import CanonicalForm
from .errors import IndexCalcError
from .expr import (
    Delta,
    Epsilon,
    Expr,
    Number,
    Tensor,
    memoised,
    postorder,
    rename,
    written_size,
)
from .normalisations import Normalisations
from .printing import PRINTERS
from .syntax import RESERVED, parse

# Names a definition takes, in order, where the user gives none: s for a normalisation
# (a softmax), then letters no input uses.
QUOTIENT_NAMES = ("s", "p", "q")
OTHER_NAMES = tuple("hguvrqpacbfkmnoe") + tuple(f"h{k}" for k in range(1, 100))
MAX_DEFINITIONS = 40
MIN_SIZE = 3  # a subexpression written with fewer nodes (-x_i, x_i^2) is not worth a name


@dataclass(frozen=True)
class Definition:
    """``name_params = body``: body's free indices are `params`."""

    name: str
    params: tuple[str, ...]
    body: Expr


@dataclass(frozen=True)
class Program:
    """Definitions in the order they must be read, then the result that uses them."""

    definitions: tuple[Definition, ...]
    result: Expr

    def text(self, format: str = "unicode", separator: str = "\n") -> str:
        """The definitions and the result, one per line (``separator``), in `format`."""
        if format == "latex":
            return self.latex()
        printer = PRINTERS[format]
        lines = [
            f"{printer().doprint(Tensor(d.name, d.params))} = {printer().doprint(d.body)}"
            for d in self.definitions
        ]
        return separator.join([*lines, printer().doprint(self.result)])

    def latex(self) -> str:
        """An ``aligned`` block: one definition per line, then the result."""
        latex = PRINTERS["latex"]
        lines = [
            f"{latex().doprint(Tensor(d.name, d.params))} &= {latex().doprint(d.body)}"
            for d in self.definitions
        ]
        lines.append(f"&{latex().doprint(self.result)}" if lines else latex().doprint(self.result))
        if len(lines) == 1:
            return lines[0]
        return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"


def to_program(
    expr_or_text,
    *,
    names: Sequence[str] | None = None,
    format: str = "unicode",
    var: str = "x",
) -> str:
    """`expr` as a program that names each shared subexpression once.

    Parameters
    ----------
    expr_or_text : Expr or str
    names : the names of the definitions, in the order they are printed; others are
        chosen from letters the expression does not use (``s`` for a softmax).
    format : ``"unicode"``, ``"ascii"`` or ``"latex"`` (an ``aligned`` block).

    The text parses back, with `indexcalc.parse`, to an expression of the same value.
    """
    if format not in ("unicode", "ascii", "latex"):
        raise IndexCalcError(f"format must be 'unicode', 'ascii' or 'latex', not {format!r}")
    expr = parse(expr_or_text, var=var) if isinstance(expr_or_text, str) else expr_or_text
    return program(expr, names=names).text(format)


def program(expr: Expr, *, names: Sequence[str] | None = None) -> Program:
    """The `Program` of `expr` (see `to_program`)."""
    chosen = list(names or ())
    for name in chosen:
        if not (isinstance(name, str) and name.isidentifier() and name not in RESERVED):
            raise IndexCalcError(f"{name!r} cannot name a definition: use a tensor name")
    regrouped = Normalisations()(expr)
    quotients = Normalisations.quotients(regrouped)
    taken = set(expr.tensor_names) | set(expr.all_indices) | set(chosen)
    free_names = [n for n in (*QUOTIENT_NAMES, *OTHER_NAMES) if n not in taken]

    def name_for(node: Expr) -> str:
        if chosen:
            return chosen.pop(0)
        preferred = [n for n in free_names if n in QUOTIENT_NAMES] if node in quotients else []
        name = (preferred or [n for n in free_names if n not in QUOTIENT_NAMES] or free_names)[0]
        free_names.remove(name)
        return name

    definitions, result = _shared(regrouped, quotients, name_for)
    definitions, result = _without_small(definitions, result)
    return Program(tuple(_in_reading_order(definitions)), result)


# -- shared subexpressions ------------------------------------------------------------------


def _shared(root: Expr, forced: set[Expr], name_for) -> tuple[list[Definition], Expr]:
    """Definitions for the subexpressions of `root` used more than once (and for those in
    `forced`, once is enough), largest saving first, and `root` using them."""
    form = CanonicalForm()
    result = root
    definitions: list[Definition] = []
    while len(definitions) < MAX_DEFINITIONS:
        chosen = _best_candidate(result, [d.body for d in definitions], forced, form)
        if chosen is None:
            break
        skeleton, representative = chosen
        name = name_for(representative)
        replace = _Replacement(form, skeleton, name)
        # Earlier, larger definitions may use this one inside their bodies.
        definitions = [Definition(d.name, d.params, replace.inside(d.body)) for d in definitions]
        params = form.canonical(representative)[1]
        definitions.append(Definition(name, params, replace.inside(representative)))
        result = replace.inside(result)
    return definitions, result


def _best_candidate(result: Expr, bodies: list[Expr], forced: set[Expr], form: CanonicalForm):
    """(skeleton, a node) of the subexpression whose definition saves most, below the top
    of the result and of each body; None if none is used twice or forced."""
    uses: dict[bytes, int] = {}
    first: dict[bytes, Expr] = {}
    for root in (result, *bodies):
        for node, count in _tree_counts(root).items():
            if node is root or not _nameable(node, form):
                continue
            skeleton = form.canonical(node)[0]
            uses[skeleton] = uses.get(skeleton, 0) + count
            first.setdefault(skeleton, node)
    best, best_rank = None, (False, 0)
    for skeleton, count in uses.items():
        node = first[skeleton]
        if count < 2 and node not in forced:
            continue
        # Normalisations first, so that a softmax is named whole before its parts are.
        rank = (node in forced, (count - 1) * written_size(node, 10_000))
        if rank > best_rank:
            best, best_rank = (skeleton, node), rank
    return best


def _tree_counts(root: Expr) -> dict[Expr, int]:
    """How many times each node of `root` is written out, as a tree."""
    order = postorder(root)
    counts = dict.fromkeys(order, 0)
    counts[root] = 1
    for node in reversed(order):  # parents before their children
        for child in node.children:
            counts[child] += counts[node]
    return counts


def _nameable(node: Expr, form: CanonicalForm) -> bool:
    """Worth a definition, and one that a name with indices can stand for: a composite
    node, with each free index once, written with at least `MIN_SIZE` nodes."""
    if isinstance(node, (Tensor, Number, Delta, Epsilon)) or not node.tensor_names:
        return False  # a leaf, or a constant such as a dimension
    if written_size(node, MIN_SIZE) < MIN_SIZE:
        return False
    names = form.canonical(node)[1]
    return len(set(names)) == len(names) == len(node.free)


class _Replacement:
    """Each occurrence of one skeleton replaced by the definition's name, with the
    occurrence's own free indices."""

    def __init__(self, form: CanonicalForm, skeleton: bytes, name: str):
        self.form, self.skeleton, self.name = form, skeleton, name
        self._memo: dict[Expr, Expr] = {}

    def __call__(self, node: Expr) -> Expr:
        return memoised(self._memo, node, self._replaced)

    def inside(self, body: Expr) -> Expr:
        """`body` with occurrences below its top replaced (a body is not its own use)."""
        return body.map_children(self)

    def _replaced(self, node: Expr) -> Expr:
        if not isinstance(node, (Tensor, Number, Delta, Epsilon)):
            skeleton, names = self.form.canonical(node)
            if skeleton == self.skeleton:
                return Tensor(self.name, names)
        return node.map_children(self)


def _without_small(definitions: list[Definition], result: Expr) -> tuple[list[Definition], Expr]:
    """Definitions whose body shrank, once its parts were named, to fewer than
    `MIN_SIZE` + 1 nodes (v_k = h_k^-1), written in place again."""
    while True:
        small = next(
            (d for d in definitions if written_size(d.body, MIN_SIZE + 1) <= MIN_SIZE), None
        )
        if small is None:
            return definitions, result
        memo: dict[Expr, Expr] = {}

        def inlined(node: Expr, small: Definition = small, memo: dict = memo) -> Expr:
            if isinstance(node, Tensor) and node.name == small.name:
                return rename(small.body, dict(zip(small.params, node.indices, strict=True)))
            return node.map_children(lambda child: memoised(memo, child, inlined))

        definitions = [
            Definition(d.name, d.params, memoised(memo, d.body, inlined))
            for d in definitions
            if d is not small
        ]
        result = memoised(memo, result, inlined)


def _in_reading_order(definitions: Iterable[Definition]) -> list[Definition]:
    """Each definition after those its body uses."""
    pending = list(definitions)
    names = {d.name for d in pending}
    ordered: list[Definition] = []
    done: set[str] = set()
    while pending:
        for d in pending:
            uses = {n for n in d.body.tensor_names if n in names} - {d.name}
            if uses <= done:
                ordered.append(d)
                done.add(d.name)
                pending.remove(d)
                break
        else:  # pragma: no cover - definitions name strictly smaller bodies
            raise AssertionError("definitions use each other in a cycle")
    return ordered


__all__ = ["Definition", "Program", "program", "to_program"]
