"""Expressions → a plan as data: the one planner behind evaluation and code generation.

Planning walks the expression DAG once for one set of sizes and turns each distinct node
into steps. A step is an operation record (what to compute, with every decision made:
contraction paths, alignments, shapes) and the slots of its inputs, as opt_einsum's
`contract_path` separates planning from execution. `compile` turns the steps into calls
on an array library and runs them; `codegen` prints them as NumPy source. Neither
decides anything of its own, so the two cannot disagree.

Subexpressions equal up to the names of their free indices (tanh(W_ij x_j) and
tanh(W_aj x_j)) are one step. A δ inside a product is never materialised: its indices
merge into one class before contracting, and a δ that survives into the result is written
once, on the output's diagonal.

Results never share memory with the inputs, with a constant or with each other: a result
that may (an input returned as it is, a transposed or diagonal view, a broadcast) is
copied, and only then.

Patterns that overflow when computed as written are computed through logarithms instead
(see `Logarithms`): log Σ exp(u) as a max-shifted log-sum-exp, a softmax quotient
exp(u_i) / Σ_j exp(u_j) as exp(u_i − log Σ_j exp(u_j)), log σ(u) as −softplus(−u),
log(1 + exp(u)) as softplus(u). The expression itself, and how it prints, do not change.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache, partial, reduce
from typing import Any

import numpy as np
import opt_einsum

from .algebra import shared_algebra
from .dispatch import Pass
from .errors import EvaluationError, UnsizedIndexError
from .expr import (
    MINUS_ONE,
    ONE,
    Delta,
    Derivative,
    Epsilon,
    Expr,
    Func,
    Number,
    Power,
    Product,
    SizeOf,
    Sum,
    Tensor,
    TensorAxis,
    delta_classes,
    memoised,
    postorder,
)
from .functions import FUNCTIONS
from .sizes import Source, class_sources, index_sources, size_from, unsized_where

# -- the plan's data -----------------------------------------------------------------------


@dataclass(frozen=True)
class Dim:
    """A size: the number planned with, and the argument axis it is read from at run time
    (None: the number itself, from `dims` or an ε's rank)."""

    value: int
    source: TensorAxis | None = None


Align = tuple[tuple[str, ...], tuple[str, ...]]  # an array's axes, and the axes to broadcast to


@dataclass(frozen=True)
class Argument:
    """An input array, by name."""

    name: str


@dataclass(frozen=True)
class Constant:
    """A Python number: weak, so it keeps the arrays' dtype."""

    value: float


@dataclass(frozen=True)
class LeviCivita:
    """The dense ε of this rank, then `spec` (its diagonal where indices repeat)."""

    rank: int
    spec: str


@dataclass(frozen=True)
class Reindex:
    """One operand's axes rearranged by a one-operand einsum `spec`: a permutation, a
    diagonal. `final` results must not be views of an input."""

    spec: str
    final: bool = False


@dataclass(frozen=True)
class Apply:
    """An elementwise built-in function."""

    function: str


@dataclass(frozen=True)
class Raise:
    """base ** exponent, each aligned to the result's axes; `exponent` a number, or None
    when it is the second input."""

    exponent: int | float | None
    base: Align
    power: Align | None = None


@dataclass(frozen=True)
class Add:
    """The sum of the inputs, each aligned to the result's axes."""

    terms: tuple[Align, ...]


@dataclass(frozen=True)
class AddToDiagonal:
    """A new matrix: the input, aligned, with `value` added on its diagonal (a c δ_ij term
    of a sum, never built as a matrix)."""

    align: Align
    value: float


@dataclass(frozen=True)
class Multiply:
    """The product of an array and scalars (factors over no index)."""


@dataclass(frozen=True)
class Contract:
    """A contraction, in opt_einsum's convention: each path entry contracts the operands
    at those positions of the running list (removing them) into the subscripts given,
    appended at its end. `scale` (the coefficient times the sizes of summed classes no
    operand carries) multiplies operand `scaled` first, or the result when that is None."""

    subscripts: tuple[str, ...]
    output: str
    path: tuple[tuple[tuple[int, ...], str], ...]
    coefficient: int | float = 1
    dims: tuple[Dim, ...] = ()
    scaled: int | None = None


@dataclass(frozen=True)
class Broadcast:
    """An array over `carried` broadcast to `full` (kept classes no operand carries: a δ_ii
    kept as ones)."""

    carried: str
    full: str
    shape: tuple[Dim, ...]


@dataclass(frozen=True)
class Embed:
    """An array over merged δ classes written onto the diagonal of a zero array."""

    reduced: str
    full: str
    shape: tuple[Dim, ...]


@dataclass(frozen=True)
class Fill:
    """A scalar (a vanished derivative) as a new array of this shape."""

    shape: tuple[Dim, ...]


@dataclass(frozen=True)
class Copy:
    """A new array equal to the input: a result must never be an input or a view of one."""


@dataclass(frozen=True)
class LogSumExp:
    """log Σ exp(a) over the axes at `positions`, shifted by their largest element so that
    no exponential overflows."""

    positions: tuple[int, ...]


@dataclass(frozen=True)
class Combine:
    """Σ coefficient · input, each aligned to the result's axes, plus `constant`: a sum of
    logarithms, a product's log."""

    terms: tuple[Align, ...]
    coefficients: tuple[float, ...]
    constant: float = 0.0


@dataclass(frozen=True)
class Maximum:
    """The largest element over the axes at `positions`, the shift of a `ShiftedExp`; where
    it is not finite (every element −inf), 0."""

    positions: tuple[int, ...]


@dataclass(frozen=True)
class ShiftedExp:
    """exp(a − m), the second input m (a `Maximum`) aligned to the first's axes."""

    shift: Align


@dataclass(frozen=True)
class LogAddExp:
    """log Σ_t exp(a_t) of the inputs, elementwise, each aligned to the result's axes;
    `constant` (the log of the sum of a sum's number terms) is one more term."""

    terms: tuple[Align, ...]
    constant: float | None = None


@dataclass(frozen=True)
class LogSigmoid:
    """log σ(u) = −softplus(−u), or log(1 − σ(u)) = −softplus(u) when `negated`."""

    negated: bool = False


Operation = (
    Argument
    | Constant
    | LeviCivita
    | Reindex
    | Apply
    | Raise
    | Add
    | AddToDiagonal
    | Multiply
    | Contract
    | Broadcast
    | Embed
    | Fill
    | Copy
    | LogSumExp
    | Combine
    | Maximum
    | ShiftedExp
    | LogAddExp
    | LogSigmoid
)


@dataclass(frozen=True)
class Step:
    operation: Operation
    inputs: tuple[int, ...] = ()


@dataclass(frozen=True)
class Cost:
    """The cost of one evaluation: the largest array a step makes (elements, inputs not
    counted) and the floating-point operations."""

    largest_intermediate: int
    flops: int


@dataclass(frozen=True)
class Plan:
    """Steps whose slots are their positions; `results` are the slots returned, with axes
    in `outs` order; `arguments` the input names in the order the steps read them."""

    steps: tuple[Step, ...]
    results: tuple[int, ...]
    outs: tuple[tuple[str, ...], ...]
    cost: Cost

    @property
    def arguments(self) -> tuple[str, ...]:
        return tuple(s.operation.name for s in self.steps if isinstance(s.operation, Argument))


# -- planning ------------------------------------------------------------------------------


@dataclass
class Planned:
    """What planning knows about a node's array: its axes and their sizes, and whose
    memory it is."""

    slot: int
    axes: tuple[str, ...]  # sorted distinct free indices
    sizes: dict[str, Dim]
    origin: dict[str, str]  # index -> which array fixed its size, for error messages
    fresh: bool = True  # False if the array may be an input, a constant or a read-only view
    memory: int | None = None  # the slot of the array this one is or views; None: its own

    @property
    def owner(self) -> int:
        """The slot whose array holds this one's elements."""
        return self.slot if self.memory is None else self.memory

    def view(self, slot: int, axes: tuple[str, ...], sizes, origin) -> Planned:
        """A value at `slot` that is this one's array, or a view of it."""
        return Planned(slot, axes, sizes, origin, self.fresh, self.owner)


_LARGEST_EXPONENT = math.log(np.finfo(np.float64).max)  # exp of more is inf

VALUE, LOG = "value", "log"  # a node is planned as its array, or as its logarithm's
Need = tuple[Expr, str]  # a node, and whether a rule reads its VALUE or its LOG


@dataclass(frozen=True)
class Log:
    """A logarithm as planning holds it: `constant` plus Σ coefficient · array over `terms`,
    so that logs cancel exactly before any step computes them: the log of
    (exp(u_i) / Σ_j exp(u_j)) ⊙ Σ_j exp(u_j) is the term u_i, and takes no step at all.
    `axes` are its node's free indices; each term is over some of them."""

    terms: tuple[tuple[Planned, Fraction], ...]
    constant: float
    axes: tuple[str, ...]
    sizes: dict[str, Dim]
    origin: dict[str, str]


@dataclass(frozen=True)
class Recipe:
    """A node computed from other nodes' values or logarithms (`reads`) by the planner
    method `build`, which takes their `Planned` or `Log` in that order and gives the
    node's. `bounded`: a logarithm's node lies in (0, 1] (σ, 1 − σ), so multiplying it
    never overflows."""

    reads: tuple[Need, ...]
    build: Callable[..., Planned | Log]
    bounded: bool = False


def make_plan(
    roots: Sequence[Expr],
    outs: Sequence[tuple[str, ...]],
    shapes: Mapping[str, Sequence[int]],
    dims: Mapping[str, int],
    *,
    default_size: int | None = None,
) -> Plan:
    """The plan computing `roots` with axes in `outs`, for arrays of these `shapes`.

    `dims` sizes indices no array does. `default_size`, for code generation without
    shapes, is the size assumed of an argument axis whose shape is not given; without it
    every array the roots read must have a shape.
    """
    return Planner(roots, shapes, dims, default_size).plan(outs)


class Logarithms(Pass):
    """Nodes whose logarithm is computed from their parts, never from their value, so that
    no exponential on the way overflows: log exp(u) is u, log σ(u) is −softplus(−u), the
    log of a product is the log-sum-exp of its factors' logs, the log of a sum of positive
    terms their logaddexp. One rule per node kind, returning a `Recipe`, or None where the
    node has no such logarithm (a tensor, of unknown sign)."""

    prefix = "_log_"
    description = "stable evaluation"

    def __init__(self, planner: Planner):
        self.planner = planner
        self.memo: dict[Expr, Recipe | None] = {}

    def __call__(self, node: Expr) -> Recipe | None:
        return memoised(self.memo, node, self.dispatch)

    def _log_Expr(self, node: Expr) -> Recipe | None:
        return None

    def _log_Number(self, node: Number) -> Recipe | None:
        if node.value <= 0:
            return None
        return Recipe((), partial(self.planner.constant_log, _log(node.value)))

    def _log_Func(self, node: Func) -> Recipe | None:
        if node.name == "exp":
            return Recipe(((node.arg, VALUE),), self.planner.log_of)
        if node.name == "sigmoid":
            return Recipe(((node.arg, VALUE),), partial(self.planner.log_sigmoid, False), True)
        return None

    def _log_Power(self, node: Power) -> Recipe | None:
        base = self(node.base)
        if base is None or not isinstance(node.exponent, Number):
            return None
        exponent = node.exponent.value
        bounded = base.bounded and exponent > 0
        return Recipe(((node.base, LOG),), partial(self.planner.log_power, exponent), bounded)

    def _log_Product(self, node: Product) -> Recipe | None:
        coefficient, deltas, factors = _log_factors(node)
        if deltas or coefficient <= 0 or not factors or any(self(f) is None for f in factors):
            return None
        reads = tuple((f, LOG) for f in factors)
        return Recipe(reads, partial(self.planner.log_domain, node, reads, True))

    def _log_Sum(self, node: Sum) -> Recipe | None:
        argument = _one_minus_sigmoid(node)
        if argument is not None:
            return Recipe(((argument, VALUE),), partial(self.planner.log_sigmoid, True), True)
        numbers = [t.value for t in node.terms if isinstance(t, Number)]
        terms = [t for t in node.terms if not isinstance(t, Number)]
        total = sum(numbers, Fraction(0))
        if (numbers and total <= 0) or any(self(t) is None for t in terms):
            return None
        constant = _log(total) if numbers else None
        build = partial(self.planner.log_add_exp, node, constant)
        return Recipe(tuple((t, LOG) for t in terms), build)


class StableValues(Pass):
    """Nodes whose value is computed through logarithms (see `Logarithms`): log and log1p
    of a node with one, a product whose exponentials may cancel (a softmax quotient), and a
    power of such a product. One rule per node kind, returning a `Recipe`, or None where
    the value is computed as written."""

    prefix = "_stable_"
    description = "stable evaluation"

    def __init__(self, planner: Planner, logs: Logarithms):
        self.planner = planner
        self.logs = logs

    def _stable_Expr(self, node: Expr) -> Recipe | None:
        return None

    def _stable_Func(self, node: Func) -> Recipe | None:
        if node.name not in ("log", "log1p") or self.logs(node.arg) is None:
            return None
        if node.name == "log":
            return Recipe(((node.arg, LOG),), self.planner.array)
        return Recipe(((node.arg, LOG),), self.planner.log_one_plus)

    def _stable_Power(self, node: Power) -> Recipe | None:
        """(exp(u_i) / Σ_j exp(u_j))^n as exp(n (u_i − log Σ_j exp(u_j)))."""
        if not isinstance(node.base, Product) or not isinstance(node.exponent, Number):
            return None
        if self.logs(node.base) is None:
            return None
        return Recipe(((node.base, LOG),), partial(self.planner.exp_power, node.exponent.value))

    def _stable_Product(self, node: Product) -> Recipe | None:
        """Two factors or more that may overflow, multiplied through their logarithms."""
        _, _, factors = _log_factors(node)
        logs = {f: self.logs(f) for f in factors}
        logged = {f for f, log in logs.items() if log is not None}
        unbounded = [f for f, log in logs.items() if log is not None and not log.bounded]
        if len(unbounded) < 2:
            return None
        reads = tuple((f, LOG if f in logged else VALUE) for f in factors)
        return Recipe(reads, partial(self.planner.log_domain, node, reads, False))


class Planner(Pass):
    """Walks the DAG once for one set of sizes and records the steps: one rule per node
    kind."""

    prefix = "_plan_"
    description = "planning"

    def __init__(
        self,
        roots: Sequence[Expr],
        shapes: Mapping[str, Sequence[int]],
        dims: Mapping[str, int],
        default_size: int | None,
    ):
        self.roots = list(roots)
        self.shapes = {name: tuple(int(n) for n in shape) for name, shape in shapes.items()}
        self.default_size = default_size
        self.steps: list[Step] = []
        self.values: dict[Expr, Planned] = {}
        self.logs: dict[Expr, Log] = {}
        self.arguments: dict[str, int] = {}
        self.dims = dict(dims)
        self.sources = index_sources(self.roots, dims)
        self.largest = 0
        self.flops = 0
        self.returned: set[int] = set()  # the slots whose arrays a result already is
        self.logarithms = Logarithms(self)
        self.stable = StableValues(self, self.logarithms)

    def plan(self, outs: Sequence[tuple[str, ...]]) -> Plan:
        nodes = postorder(*self.roots)
        # A δ inside a product only merges indices; only a δ standing alone becomes a step.
        alone = set(self.roots) | {
            c for n in nodes if not isinstance(n, Product) for c in n.children
        }
        # A scaled identity that is only ever a term of a sum is added onto the diagonal of
        # the other terms' sum, never built (see _plan_Sum). Each maps to its scale.
        users: dict[Expr, list[Expr]] = {}
        for parent in nodes:
            for child in parent.children:
                users.setdefault(child, []).append(parent)
        self.diagonal_terms: dict[Expr, Fraction] = {}
        for node in nodes:
            scale = _identity_scale(node)
            if (
                scale is not None
                and node not in self.roots
                and all(_carries_a_matrix(u) for u in users.get(node, []))
            ):
                self.diagonal_terms[node] = scale
        forms = self.forms()
        canonical = shared_algebra().form.canonical
        seen: dict[tuple[str, bytes], tuple[Any, tuple[str, ...]]] = {}
        has_delta: dict[Expr, bool] = {}
        for node in nodes:
            if node in self.diagonal_terms or (isinstance(node, Delta) and node not in alone):
                has_delta[node] = True
                continue
            has_delta[node] = isinstance(node, Delta) or any(has_delta[c] for c in node.children)
            for form in (LOG, VALUE):
                if form not in forms.get(node, ()):
                    continue
                table: dict = self.logs if form == LOG else self.values
                # A δ's sizes may come from dims rather than arrays: share only δ-free
                # nodes, whose sizes the arrays fix through the skeleton.
                if has_delta[node] or isinstance(node, Number):
                    table[node] = self.compute(node, form)
                    continue
                skeleton, names = canonical(node)
                if (form, skeleton) in seen:
                    rename = self.renamed_log if form == LOG else self.renamed
                    table[node] = rename(*seen[form, skeleton], names)
                    continue
                value = self.compute(node, form)
                table[node] = value
                seen[form, skeleton] = (value, names)
        results = tuple(
            self.finish(self.values[root], out) for root, out in zip(self.roots, outs, strict=True)
        )
        return Plan(tuple(self.steps), results, tuple(outs), Cost(self.largest, self.flops))

    def forms(self) -> dict[Expr, set[str]]:
        """Each node the roots need, and in which forms: its value, its logarithm or both."""
        forms: dict[Expr, set[str]] = {}
        pending: list[Need] = [(root, VALUE) for root in self.roots]
        while pending:
            node, form = pending.pop()
            if form in forms.setdefault(node, set()):
                continue
            forms[node].add(form)
            recipe = self.recipe(node, form)
            pending.extend(recipe.reads if recipe else ((c, VALUE) for c in node.children))
        return forms

    def recipe(self, node: Expr, form: str) -> Recipe | None:
        """How `node` is computed in `form` through logarithms; None: as written."""
        return self.logarithms(node) if form == LOG else self.stable.dispatch(node)

    def compute(self, node: Expr, form: str) -> Planned | Log:
        recipe = self.recipe(node, form)
        if recipe is None:
            return self.dispatch(node)
        return recipe.build(
            *(self.logs[n] if f == LOG else self.values[n] for n, f in recipe.reads)
        )

    # -- helpers -----------------------------------------------------------------------

    def emit(self, operation: Operation, inputs: Iterable[int] = ()) -> int:
        self.steps.append(Step(operation, tuple(inputs)))
        return len(self.steps) - 1

    def note(self, elements: int, flops: int | None = None) -> None:
        """Count a step that makes an array of `elements` with `flops` operations."""
        self.largest = max(self.largest, elements)
        self.flops += elements if flops is None else flops

    def argument(self, name: str) -> int:
        if name not in self.arguments:
            self.arguments[name] = self.emit(Argument(name))
        return self.arguments[name]

    def shape_of(self, tensor: Tensor) -> tuple[int, ...]:
        """The shape of a tensor's array; without one (code generation), each axis's size
        from `dims` or an ε, else the default."""
        if tensor.name in self.shapes:
            return self.shapes[tensor.name]
        if self.default_size is None:
            raise EvaluationError(f"missing array {tensor.name}")
        given = [self.dims.get(i, self.sources.get(i)) for i in tensor.indices]
        return tuple(n if isinstance(n, int) else self.default_size for n in given)

    def dim(self, index: str, where: str, candidates: Sequence[Source] = ()) -> Dim:
        """The size of `index`: from the first usable candidate, or what sizes its name."""
        candidates = [*candidates, *([self.sources[index]] if index in self.sources else [])]
        for source in candidates:
            if isinstance(source, int):
                return Dim(source)
            if isinstance(source, SizeOf):
                if source.index in self.dims:
                    return Dim(self.dims[source.index])
                continue
            name, axis = source
            if name in self.shapes or self.default_size is not None:
                value = size_from([source], self.shapes)
                if value is None:  # code generation without this array's shape
                    value = self.dims.get(index, self.default_size)
                if value is None:  # the array is given, but without this axis
                    shape = self.shapes[name]
                    raise EvaluationError(
                        f"array '{name}' has {len(shape)} axes (shape {shape}), but index "
                        f"'{index}' ({where}) runs over its axis {axis}"
                    )
                return Dim(value, source)
        raise UnsizedIndexError(index, unsized_where(candidates, where))

    def renamed(
        self, value: Planned, names: tuple[str, ...], new_names: tuple[str, ...]
    ) -> Planned:
        """A computed value seen under other index names, transposed as needed."""
        mapping = dict(zip(names, new_names, strict=True))
        axes = tuple(mapping[a] for a in value.axes)
        target = tuple(sorted(axes))
        sizes = {mapping[i]: n for i, n in value.sizes.items()}
        origin = {mapping[i]: o for i, o in value.origin.items()}
        if axes == target:
            return value.view(value.slot, target, sizes, origin)
        return value.view(
            self.emit(Reindex(_spec(axes, target)), [value.slot]), target, sizes, origin
        )

    def merge_sizes(self, parts: Iterable[Planned | Log]) -> tuple[dict[str, Dim], dict[str, str]]:
        sizes: dict[str, Dim] = {}
        origin: dict[str, str] = {}
        for part in parts:
            for index, size in part.sizes.items():
                if index in sizes and sizes[index].value != size.value:
                    raise EvaluationError(
                        f"index '{index}' has size {sizes[index].value} in {origin[index]} but "
                        f"size {size.value} in {part.origin[index]}"
                    )
                if index not in sizes:
                    sizes[index] = size
                    origin[index] = part.origin[index]
        return sizes, origin

    def finish(self, value: Planned, out: tuple[str, ...]) -> int:
        """A result's slot: a new array, never an input, a constant, a view of one, or the
        array of another result; copied only where it might be one of those."""
        # With real arrays (no assumed default size), dims must agree with them.
        for index in out if self.default_size is None else ():
            given, used = self.dims.get(index), value.sizes.get(index)
            if given is not None and used is not None and used.source and used.value != given:
                name, axis = used.source
                raise EvaluationError(
                    f"dims gives index '{index}' size {given}, but it runs over axis {axis} "
                    f"of '{name}', of size {used.value}"
                )
        missing = [i for i in out if i not in value.axes]
        if missing:  # a number (a vanished derivative) broadcast to the asked shape
            shape = tuple(self.dim(i, "in the output") for i in out)
            self.note(_elements(shape))
            return self.emit(Fill(shape), [value.slot])
        if tuple(out) != value.axes:
            return self.emit(Reindex(_spec(value.axes, out), final=True), [value.slot])
        if value.fresh and value.owner not in self.returned:
            self.returned.add(value.owner)
            return value.slot
        self.note(_elements(value.sizes))
        return self.emit(Copy(), [value.slot])

    def apply(self, function: str, value: Planned) -> Planned:
        """An elementwise built-in function of `value`."""
        self.note(_elements(value.sizes))
        slot = self.emit(Apply(function), [value.slot])
        return Planned(slot, value.axes, value.sizes, value.origin)

    def product(self, parts, out, sizes, origin, deltas, coefficient) -> Planned:
        """The product of `parts` (and of `deltas` and `coefficient`) summed to `out`. Scalar
        parts multiply the result: einsum would turn a Python number into float64."""
        scalars = [p for p in parts if not p.axes]
        value = self._contract(
            [p for p in parts if p.axes], out, sizes, origin, deltas, coefficient
        )
        if not scalars:
            return value
        slots = [value.slot, *(p.slot for p in scalars)]
        return Planned(self.emit(Multiply(), slots), value.axes, value.sizes, value.origin)

    # -- logarithms (see `Logarithms` and `StableValues`) ------------------------------

    def log_of(self, value: Planned) -> Log:
        """The log whose only term is `value`: log exp(u) is u."""
        return Log(((value, Fraction(1)),), 0.0, value.axes, value.sizes, value.origin)

    def constant_log(self, value: float) -> Log:
        return Log((), value, (), {}, {})

    def log_sigmoid(self, negated: bool, argument: Planned) -> Log:
        self.note(_elements(argument.sizes))
        slot = self.emit(LogSigmoid(negated), [argument.slot])
        return self.log_of(Planned(slot, argument.axes, argument.sizes, argument.origin))

    def log_power(self, exponent: Fraction, log: Log) -> Log:
        """log b^n = n log b."""
        return _combined([(log, exponent)], log.axes, log.sizes, log.origin)

    def log_add_exp(self, node: Sum, constant: float | None, *terms: Log) -> Log:
        """The log of a sum of positive terms, from the terms' logs."""
        axes = node.free_indices
        parts = [self.array(t) for t in terms]
        sizes, origin = self.merge_sizes(parts)
        self.note(_elements(sizes), _elements(sizes) * len(parts))
        operation = LogAddExp(tuple((p.axes, axes) for p in parts), constant)
        return self.log_of(
            Planned(self.emit(operation, [p.slot for p in parts]), axes, sizes, origin)
        )

    def array(self, log: Log) -> Planned:
        """A log computed: one step adding up its terms (none where it is one term)."""
        if not log.terms:  # everything cancelled but a number: constant along every axis
            constant = Planned(self.emit(Constant(log.constant)), (), {}, {})
            if not log.axes:
                return constant
            return self.product([constant], log.axes, log.sizes, log.origin, [], Fraction(1))
        carried = tuple(sorted({i for value, _ in log.terms for i in value.axes}))
        sizes = {i: log.sizes[i] for i in carried}
        origin = {i: log.origin[i] for i in carried}
        if len(log.terms) == 1 and log.terms[0][1] == 1 and not log.constant:
            combined = log.terms[0][0]
        else:
            terms = sorted(log.terms, key=lambda term: term[1] < 0)  # u − m, not −m + u
            self.note(_elements(sizes), _elements(sizes) * len(terms))
            operation = Combine(
                tuple((value.axes, carried) for value, _ in terms),
                tuple(_scalar(c) for _, c in terms),
                log.constant,
            )
            slot = self.emit(operation, [value.slot for value, _ in terms])
            combined = Planned(slot, carried, sizes, origin)
        if combined.axes == log.axes:
            return combined
        # Terms that cancelled took an index with them: the log is constant along it.
        return self._contract([combined], log.axes, log.sizes, log.origin, [], Fraction(1))

    def log_one_plus(self, log: Log) -> Planned:
        """log(1 + e^L) = softplus(L): log1p of a node, from its logarithm L."""
        value = self.array(log)
        self.note(_elements(value.sizes))
        operation = LogAddExp(((value.axes, value.axes),), 0.0)
        return Planned(self.emit(operation, [value.slot]), value.axes, value.sizes, value.origin)

    def exp_power(self, exponent: Fraction, log: Log) -> Planned:
        """b^n as exp(n log b): a power of a node, from its logarithm."""
        return self.apply("exp", self.array(self.log_power(exponent, log)))

    def reduced(self, operation: LogSumExp | Maximum, value: Planned, kept) -> Planned:
        """`value` reduced over its axes that are not `kept`."""
        self.note(_elements(value.sizes))
        sizes = {i: value.sizes[i] for i in kept}
        origin = {i: value.origin[i] for i in kept}
        return Planned(self.emit(operation, [value.slot]), kept, sizes, origin)

    def log_domain(self, node: Product, reads: tuple[Need, ...], as_log: bool, *planned):
        """A product, or with `as_log` its logarithm, whose factors read as LOG multiply as
        the exponential of the sum of their logs. The logs add up as terms first, so that
        exponentials cancel exactly before any is taken: exp(u_i) Σ_j(exp(u_j))⁻¹ is
        exp(u_i − log Σ_j exp(u_j)), and (e_i / Σ) ⊙ (e_i / Σ)⁻¹ is nothing at all.

        Terms over no summed index make the exponent of the result. Terms over summed
        indices add up in groups (over the same indices, or over some of another's): a
        group whose summed indices no other factor carries is a log-sum-exp, in the
        exponent too; one whose summed indices another factor carries is contracted as
        exp(L − max L), its maximum in the exponent. No array is larger than a factor's or
        the result's.
        """
        coefficient, deltas, _ = _log_factors(node)
        pairs = list(zip(reads, planned, strict=True))
        logs: list[Log] = [p for (_, form), p in pairs if form == LOG]
        rest: list[Planned] = [p for (_, form), p in pairs if form == VALUE]
        sizes, origin = self.merge_sizes([*rest, *logs])
        out = set(node.out)
        total = _combined([(log, Fraction(1)) for log in logs], node.out, sizes, origin)
        exponent = [(v, c) for v, c in total.terms if set(v.axes) <= out]
        groups: list[list[tuple[Planned, Fraction]]] = []
        for term in sorted((t for t in total.terms if not set(t[0].axes) <= out), key=_width):
            home = next((g for g in groups if set(term[0].axes) <= set(g[0][0].axes)), None)
            if home is None:
                groups.append([term])
            else:
                home.append(term)
        carriers = Counter(i for p in rest for i in p.axes)
        carriers.update(i for g in groups for i in g[0][0].axes)
        carriers.update(i for d in deltas for i in set(d.indices))
        shifted: list[Planned] = []
        reduced: set[str] = set()  # summed indices a log-sum-exp took
        for group in groups:
            axes = group[0][0].axes
            value = self.array(Log(tuple(group), 0.0, axes, sizes, origin))
            summed = [i for i in axes if i not in out]
            kept = tuple(i for i in axes if i in out)
            positions = tuple(axes.index(i) for i in summed)
            if all(carriers[i] == 1 for i in summed):
                exponent.append((self.reduced(LogSumExp(positions), value, kept), Fraction(1)))
                reduced.update(summed)
                continue
            shift = self.reduced(Maximum(positions), value, kept)
            self.note(_elements(value.sizes))
            slot = self.emit(ShiftedExp((kept, axes)), [value.slot, shift.slot])
            shifted.append(Planned(slot, axes, value.sizes, value.origin))
            exponent.append((shift, Fraction(1)))
        constant = total.constant + (_log(coefficient) if as_log and coefficient != 1 else 0.0)
        # A summed index whose terms all cancelled (Σ_l e^{u_l} e^{−u_l}) still counts: n_l.
        left = {i for p in [*rest, *shifted] for i in p.axes} | {
            i for d in deltas for i in d.indices
        }
        left |= {i for v, _ in exponent for i in v.axes} | reduced | out
        lost = [i for i in sizes if i not in left]

        def with_lost(parts: list[Planned]) -> tuple[dict[str, Dim], dict[str, str]]:
            part_sizes, part_origin = self.merge_sizes(parts)
            part_sizes.update((i, sizes[i]) for i in lost)
            part_origin.update((i, origin[i]) for i in lost)
            return part_sizes, part_origin

        if as_log:
            if shifted or lost:
                kept = tuple(sorted({i for p in shifted for i in p.axes} & out))
                contracted = self._contract(shifted, kept, *with_lost(shifted), [], Fraction(1))
                exponent.append((self.apply("log", contracted), Fraction(1)))
            result = Log(tuple(exponent), constant, node.out, sizes, origin)
            return _combined([(result, Fraction(1))], node.out, sizes, origin)
        parts = [*rest, *shifted]
        if exponent:
            axes = tuple(sorted({i for v, _ in exponent for i in v.axes}))
            log = _combined(
                [(Log(tuple(exponent), constant, axes, sizes, origin), Fraction(1))],
                axes,
                sizes,
                origin,
            )
            parts.append(self.apply("exp", self.array(log)))
        elif constant:  # every term cancelled but a number's log
            factor = math.exp(constant) if constant < _LARGEST_EXPONENT else math.inf
            parts.append(Planned(self.emit(Constant(factor)), (), {}, {}))
        return self.product(parts, node.out, *with_lost(parts), deltas, coefficient)

    def renamed_log(self, log: Log, names: tuple[str, ...], new_names: tuple[str, ...]) -> Log:
        """A log seen under other index names: each term renamed."""
        mapping = dict(zip(names, new_names, strict=True))
        terms = tuple((self.renamed(v, names, new_names), c) for v, c in log.terms)
        axes = tuple(sorted(mapping[a] for a in log.axes))
        sizes = {mapping[i]: n for i, n in log.sizes.items()}
        origin = {mapping[i]: o for i, o in log.origin.items()}
        return Log(terms, log.constant, axes, sizes, origin)

    # -- nodes -------------------------------------------------------------------------

    def _plan_Derivative(self, node: Derivative) -> Planned:
        raise EvaluationError(f"carry out the comma derivative {node} before planning")

    def _plan_Number(self, node: Number) -> Planned:
        return Planned(self.emit(Constant(float(node.value))), (), {}, {})

    def _plan_Tensor(self, node: Tensor) -> Planned:
        slot = self.argument(node.name)
        shape = self.shape_of(node)
        if len(shape) != len(node.indices):
            raise EvaluationError(
                f"array '{node.name}' has {len(shape)} axes (shape {shape}) but the expression "
                f"indexes it with {len(node.indices)}"
            )
        sizes: dict[str, Dim] = {}
        origin: dict[str, str] = {}
        for axis, (index, size) in enumerate(zip(node.indices, shape, strict=True)):
            if index in sizes and sizes[index].value != size:
                raise EvaluationError(
                    f"index '{index}' is repeated in {node.name}_{''.join(node.indices)} but "
                    f"the axes have sizes {sizes[index].value} and {size}"
                )
            sizes.setdefault(index, Dim(size, (node.name, axis)))
            origin.setdefault(index, f"{node.name} (axis {axis})")
        axes = tuple(sorted(sizes))
        if node.indices == axes:
            return Planned(slot, axes, sizes, origin, fresh=False)
        return Planned(
            self.emit(Reindex(_spec(node.indices, axes)), [slot]), axes, sizes, origin, fresh=False
        )

    def _plan_Delta(self, node: Delta) -> Planned:
        """A δ on its own (∂x_i/∂x_k): built once, as an identity of the needed shape."""
        axes = tuple(sorted(set(node.indices)))
        candidates = [node.axis] if node.axis else []
        sizes = {i: self.dim(i, "in a δ", candidates) for i in axes}
        origin = dict.fromkeys(axes, "a δ")
        return self._contract([], axes, sizes, origin, [node], Fraction(1))

    def _plan_Epsilon(self, node: Epsilon) -> Planned:
        rank = len(node.indices)
        if rank**rank > MAX_EPSILON_ELEMENTS:
            raise EvaluationError(
                f"ε of rank {rank} has {rank**rank:,} elements, too many to build (at most "
                f"{MAX_EPSILON_ELEMENTS:,}: rank 8)"
            )
        sizes = {i: Dim(rank) for i in node.indices}
        origin = {i: f"ε of rank {rank}" for i in node.indices}
        axes = tuple(sorted(set(node.indices)))
        self.note(rank**rank, 0)
        return Planned(
            self.emit(LeviCivita(rank, _spec(node.indices, axes))), axes, sizes, origin, False
        )

    def _plan_Func(self, node: Func) -> Planned:
        return self.apply(node.name, self.values[node.arg])

    def _plan_Power(self, node: Power) -> Planned:
        value = _constant_value(node)
        if value is not None:
            return Planned(self.emit(Constant(value)), (), {}, {})
        base, exponent = self.values[node.base], self.values[node.exponent]
        sizes, origin = self.merge_sizes((base, exponent))
        axes = tuple(sorted(sizes))
        self.note(_elements(sizes))
        if isinstance(node.exponent, Number):
            raised = Raise(_exponent(node.exponent.value), (base.axes, axes))
            return Planned(self.emit(raised, [base.slot]), axes, sizes, origin)
        raised = Raise(None, (base.axes, axes), (exponent.axes, axes))
        return Planned(self.emit(raised, [base.slot, exponent.slot]), axes, sizes, origin)

    def _plan_Sum(self, node: Sum) -> Planned:
        diagonal = [t for t in node.terms if t in self.diagonal_terms]
        terms = [t for t in node.terms if t not in self.diagonal_terms]
        parts = [self.values[t] for t in terms]
        sizes, origin = self.merge_sizes(parts)
        axes = tuple(sorted(sizes))
        self.note(_elements(sizes), _elements(sizes) * (len(parts) - 1))
        if len(parts) == 1 and diagonal:
            slot, from_axes = parts[0].slot, parts[0].axes
        else:
            added = Add(tuple((p.axes, axes) for p in parts))
            slot, from_axes = self.emit(added, [p.slot for p in parts]), axes
            if len(parts) == 1:  # one term, as it is
                return parts[0].view(slot, axes, sizes, origin)
        for term in diagonal:
            value = float(self.diagonal_terms[term])
            slot = self.emit(AddToDiagonal((from_axes, axes), value), [slot])
            from_axes = axes
        return Planned(slot, axes, sizes, origin)

    def _plan_Product(self, node: Product) -> Planned:
        coefficient, deltas, factors = _factors(node)
        parts = [self.values[f] for f in factors]
        sizes, origin = self.merge_sizes(parts)
        return self.product(parts, node.out, sizes, origin, deltas, coefficient)

    def _contract(self, parts, out, sizes, origin, deltas, coefficient) -> Planned:
        """Contract `parts`, with δ indices merged first and any kept δ written at the end."""
        find = delta_classes(deltas)
        classes: dict[str, list[str]] = {}
        for index in sorted(set(sizes) | {i for d in deltas for i in d.indices} | set(out)):
            classes.setdefault(find(index), []).append(index)
        class_size: dict[str, Dim] = {}
        for root, members in classes.items():
            known = [(sizes[m], origin[m]) for m in members if m in sizes]
            for other, where in known[1:]:
                if other.value != known[0][0].value:
                    raise EvaluationError(
                        f"a δ ties indices {', '.join(members)} together, but they have "
                        f"sizes {known[0][0].value} ({known[0][1]}) and {other.value} ({where})"
                    )
            if known:
                class_size[root] = known[0][0]
            else:
                # No operand fixes the class: the axis a δ runs over, or a kept index's
                # size by name before a summed one's, whose name may be reused elsewhere.
                kept = [m for m in members if m in out]
                candidates = class_sources(kept, deltas, self.sources)
                candidates += class_sources(members, deltas, self.sources)
                class_size[root] = self.dim(min(kept or members), "in a δ", candidates)
        # opt_einsum's symbols: the 52 letters, then as many other characters as needed.
        letters = {root: opt_einsum.get_symbol(k) for k, root in enumerate(sorted(classes))}
        axes = tuple(sorted(out))
        subscripts = tuple("".join(letters[find(i)] for i in p.axes) for p in parts)
        kept_roots = list(dict.fromkeys(find(i) for i in axes))
        carried = {find(i) for p in parts for i in p.axes}
        carried_subscript = "".join(letters[r] for r in kept_roots if r in carried)
        reduced_subscript = "".join(letters[r] for r in kept_roots)
        full_subscript = "".join(letters[find(i)] for i in axes)
        shapes = [tuple(p.sizes[i].value for i in p.axes) for p in parts]
        dims = tuple(class_size[r] for r in classes if r not in carried and r not in kept_roots)
        path = contraction_path(list(subscripts), carried_subscript, shapes)
        self.note_contraction(subscripts, carried_subscript, shapes, class_size, kept_roots)

        broadcast = carried_subscript != reduced_subscript
        embed = reduced_subscript != full_subscript
        scaled = None
        if parts and not broadcast and not embed:
            # Scale the smallest operand, not the result: fewer multiplications.
            elements = [int(np.prod(shape)) for shape in shapes]
            scaled = elements.index(min(elements))
        contraction = Contract(
            subscripts, carried_subscript, path, _scalar(coefficient), dims, scaled
        )
        slot = self.emit(contraction, [p.slot for p in parts])
        if broadcast:
            shape = tuple(class_size[r] for r in kept_roots)
            slot = self.emit(Broadcast(carried_subscript, reduced_subscript, shape), [slot])
        full_sizes = {i: class_size[find(i)] for i in axes}
        full_origin = {i: origin.get(i, "a δ") for i in axes}
        if embed:
            shape = tuple(full_sizes[i] for i in axes)
            self.note(_elements(shape))
            slot = self.emit(Embed(reduced_subscript, full_subscript, shape), [slot])
            return Planned(slot, axes, full_sizes, full_origin)
        if broadcast:  # a read-only view
            return Planned(slot, axes, full_sizes, full_origin, fresh=False)
        if coefficient != 1 or dims:
            return Planned(slot, axes, full_sizes, full_origin)
        if not parts:  # the ones of a product of δs alone: a constant
            return Planned(slot, axes, full_sizes, full_origin, fresh=False)
        # One operand, permuted or on a diagonal, but nothing summed: it, or a view of it.
        view = len(parts) == 1 and all(set(r) == set(subscripts[0]) for _, r in path)
        if view:
            return parts[0].view(slot, axes, full_sizes, full_origin)
        return Planned(slot, axes, full_sizes, full_origin)

    def note_contraction(self, subscripts, output, shapes, class_size, kept_roots) -> None:
        """Count a contraction as opt_einsum's PathInfo prices it."""
        if len(subscripts) < 2:
            self.note(_elements(class_size[r] for r in kept_roots) if subscripts else 1)
            return
        spec = f"{','.join(subscripts)}->{output}"
        _, largest, cost = _opt_einsum_path(spec, tuple(map(tuple, shapes)))
        self.note(largest, cost)


def contraction_path(subscripts: list[str], output: str, shapes) -> tuple:
    """The pairwise order of a contraction, in opt_einsum's convention (see `Contract`).

    Of three or more operands, those over the same indices multiply elementwise first: the
    cheapest step, and one opt_einsum's cost model does not always pick (σ ⊙ y ⊙ X_ij w_j).
    One operand already in the output's order needs no step at all. Of two or more, one
    summed over indices no other operand has is summed over them first: Σ_i t_i e_p is
    (Σ_i t_i) e_p, not a sum over i × p.
    """
    live = list(subscripts)
    live_shapes = [tuple(shape) for shape in shapes]
    path: list[tuple[tuple[int, ...], str]] = []
    while len(live) > 1:
        alone = _alone_indices(live, output)
        k = next((k for k, own in enumerate(alone) if own), None)
        if k is None:
            break
        reduced = "".join(c for c in live[k] if c not in alone[k])
        shape = tuple(n for c, n in zip(live[k], live_shapes[k], strict=True) if c in reduced)
        path.append(((k,), reduced))
        del live[k], live_shapes[k]
        live.append(reduced)
        live_shapes.append(shape)
    groups: dict[frozenset, list[str]] = {}
    for sub in list(live) if len(live) > 2 else ():
        if len(set(sub)) == len(sub):
            groups.setdefault(frozenset(sub), []).append(sub)
    for members in groups.values():
        first = members[0]
        for _ in members[1:]:
            a = live.index(first)
            b = next(
                k
                for k in range(len(live))
                if k != a and len(live[k]) == len(first) and set(live[k]) == set(first)
            )
            path.append((tuple(sorted((a, b))), first))
            shape = live_shapes[a]
            for p in sorted((a, b), reverse=True):
                del live[p], live_shapes[p]
            live.append(first)
            live_shapes.append(shape)
    if len(live) == 1:
        if live[0] != output:
            path.append(((0,), output))
        return tuple(path)
    if not live:
        return tuple(path)
    spec = f"{','.join(live)}->{output}"
    steps, _, _ = _opt_einsum_path(spec, tuple(live_shapes))
    for positions in steps:
        positions = tuple(sorted(positions))
        taken = [live[p] for p in positions]
        for p in reversed(positions):
            del live[p]
        needed = set(output).union(*live)
        seen = dict.fromkeys(c for sub in taken for c in sub)
        result = output if not live else "".join(c for c in seen if c in needed)
        path.append((positions, result))
        live.append(result)
    return tuple(path)


@lru_cache(maxsize=4096)
def _opt_einsum_path(spec: str, shapes: tuple[tuple[int, ...], ...]) -> tuple[tuple, int, int]:
    """opt_einsum's path for `spec` on arrays of `shapes`, with the largest intermediate
    and the cost it prices, remembered: a sum of thousands of terms of one form (a0_ij
    x_j + a1_ij x_j + …) asks the same question thousands of times."""
    steps, info = opt_einsum.contract_path(spec, *shapes, shapes=True, optimize="auto")
    return tuple(map(tuple, steps)), int(info.largest_intermediate), int(info.opt_cost)


def _alone_indices(live: list[str], output: str) -> list[set[str]]:
    """For each operand over distinct indices, those no other operand and not the output
    has; for one with a repeated index, none (its diagonal is taken with the others)."""
    counts = Counter(c for sub in live for c in set(sub))
    return [
        {c for c in sub if counts[c] == 1 and c not in output}
        if len(set(sub)) == len(sub)
        else set()
        for sub in live
    ]


MAX_EPSILON_ELEMENTS = 8**8  # ε is built densely: rank 9 would be 387,420,489 floats


def levi_civita(rank: int) -> np.ndarray:
    array = np.zeros((rank,) * rank)
    for permutation in itertools.permutations(range(rank)):
        inversions = sum(
            1 for a in range(rank) for b in range(a + 1, rank) if permutation[a] > permutation[b]
        )
        array[permutation] = -1 if inversions % 2 else 1
    return array


def _carries_a_matrix(node: Expr) -> bool:
    """Whether `node` is a sum with a term over all its indices that is no scaled identity:
    the matrix a δ term can be added onto."""
    return isinstance(node, Sum) and any(
        t.free == node.free and _identity_scale(t) is None for t in node.terms
    )


def _identity_scale(node: Expr) -> Fraction | None:
    """c for a node that is c δ_ij (a scaled identity over two axes), else None."""
    deltas = [node] if isinstance(node, Delta) else []
    scale = Fraction(1)
    pending = list(node.factors) if isinstance(node, Product) else []
    while pending:  # nested products of numbers and one δ: -(2 δ_ji)
        factor = pending.pop()
        if isinstance(factor, Delta):
            deltas.append(factor)
        elif isinstance(factor, Number):
            scale *= factor.value
        elif isinstance(factor, Product) and factor.free == node.free:
            pending.extend(factor.factors)
        else:
            return None
    if len(deltas) != 1 or len(set(deltas[0].indices)) != 2 or len(deltas[0].indices) != 2:
        return None
    if set(deltas[0].indices) != node.free:
        return None
    return scale


def _spec(indices: Sequence[str], target: Sequence[str]) -> str:
    """A one-operand einsum from `indices` to `target` (index names, repeats allowed)."""
    names = dict.fromkeys([*indices, *target])
    letters = {name: opt_einsum.get_symbol(k) for k, name in enumerate(names)}
    return f"{''.join(letters[i] for i in indices)}->{''.join(letters[i] for i in target)}"


def _factors(node: Product) -> tuple[Fraction, list[Delta], list[Expr]]:
    """A product's number factors multiplied, its δs, and its other factors."""
    coefficient = Fraction(1)
    for factor in node.factors:
        if isinstance(factor, Number):
            coefficient *= factor.value
    deltas = [f for f in node.factors if isinstance(f, Delta)]
    others = [f for f in node.factors if not isinstance(f, (Number, Delta))]
    return coefficient, deltas, others


SPLICED_PRODUCTS = 8


def _log_factors(node: Product) -> tuple[Fraction, list[Delta], list[Expr]]:
    """`_factors` with the factors of nested products that sum nothing spliced in, for
    stable evaluation: written as text, t_k exp(z_k) / (exp(z_k) / Σ_j exp(z_j)) nests
    (t_k ⊙ exp(z_k)) in the quotient, and its exponential must meet the others. At most
    `SPLICED_PRODUCTS` products are spliced: one that uses a shared product twice, again
    and again (h2 = h1 h1, h1 = h0 h0, …), would splice out to exponentially many
    factors, and a chain of a thousand signs would be walked again at every level."""
    coefficient, deltas, factors = _factors(node)
    flat: list[Expr] = []
    spliced = 0
    while factors:
        factor = factors.pop(0)
        if isinstance(factor, Product) and not factor.summed and spliced < SPLICED_PRODUCTS:
            spliced += 1
            inner, inner_deltas, inner_factors = _factors(factor)
            coefficient *= inner
            deltas += inner_deltas
            factors[:0] = inner_factors
        else:
            flat.append(factor)
    return coefficient, deltas, flat


def _one_minus_sigmoid(node: Sum) -> Expr | None:
    """u where `node` is 1 − σ(u), else None."""
    if len(node.terms) != 2 or node.terms[0] is not ONE:
        return None
    term = node.terms[1]
    if not (isinstance(term, Product) and len(term.factors) == 2):
        return None
    sign, sigmoid = term.factors
    if sign is MINUS_ONE and isinstance(sigmoid, Func) and sigmoid.name == "sigmoid":
        return sigmoid.arg if sigmoid.free == term.free else None
    return None


def _log(value: Fraction) -> float:
    """The natural log of a positive rational, exact to a float for any size."""
    return math.log(value.numerator) - math.log(value.denominator)


def _combined(logs: Iterable[tuple[Log, Fraction]], axes, sizes, origin) -> Log:
    """Σ factor · log, with the terms over one array (the same slot and axes) added up and
    those that cancel dropped."""
    terms: dict[tuple[int, tuple[str, ...]], tuple[Planned, Fraction]] = {}
    constant = 0.0
    for log, factor in logs:
        constant += float(factor) * log.constant
        for value, coefficient in log.terms:
            key = (value.slot, value.axes)
            previous = terms[key][1] if key in terms else Fraction(0)
            terms[key] = (value, previous + factor * coefficient)
    kept = tuple((value, c) for value, c in terms.values() if c != 0)
    axes = tuple(axes)
    known = [i for i in axes if i in sizes]  # not an index only a δ carries
    return Log(kept, constant, axes, {i: sizes[i] for i in known}, {i: origin[i] for i in known})


def _width(term: tuple[Planned, Fraction]) -> int:
    """Sort key: terms over more indices first."""
    return -len(term[0].axes)


def _elements(sizes) -> int:
    """The number of elements of an array with these sizes (a mapping, or sizes)."""
    values = sizes.values() if isinstance(sizes, Mapping) else sizes
    return math.prod(d.value for d in values)  # exact: no int64 overflow


def _scalar(value: Fraction) -> float:
    """A number as the plan holds it: a float. Each `Number` fits float64, but a product
    of several may not (1e299 ⊙ 1e299): beyond the largest float it is ±inf, as NumPy's
    own product of the two would be."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _exponent(value: Fraction) -> int | float:
    """An exponent: an int where float64 holds it exactly (``x**2`` stays an integer
    power), else a float."""
    if value.denominator == 1 and abs(value) <= 2**53:
        return int(value)
    return float(value)


def _constant_value(node: Expr) -> float | None:
    """The value of a node made of numbers alone (powers, sums, products and functions of
    numbers) in float64, as NumPy computes it; None if it reads an array or an index.

    Planning folds such a power into one `Constant`, so evaluation and generated code use
    one value, and a real one: nan where no real power exists ((-8)^(1/3)), inf where it
    overflows or for 0 to a negative power, never Python's complex numbers or errors."""
    if node.all_indices or node.tensor_names:
        return None
    values: dict[Expr, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for item in postorder(node):
            children = [values[c] for c in item.children]
            if isinstance(item, Number):
                values[item] = np.array(float(item.value))
            elif isinstance(item, Power):
                values[item] = np.power(children[0], children[1])
            elif isinstance(item, Sum):
                values[item] = reduce(np.add, children)
            elif isinstance(item, Product):
                values[item] = reduce(np.multiply, children)
            elif isinstance(item, Func):
                values[item] = FUNCTIONS[item.name].numpy(*children)
            else:
                return None
    return float(values[node])
