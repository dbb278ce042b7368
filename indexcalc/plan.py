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
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import opt_einsum

from .algebra import shared_algebra
from .dispatch import Pass
from .errors import EvaluationError, UnsizedIndexError
from .expr import (
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
    TensorAxis,
    delta_classes,
    postorder,
)
from .sizes import Source, class_sources, index_sources, size_from, unsized_where

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

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
    """What planning knows about a node's array: its axes and their sizes."""

    slot: int
    axes: tuple[str, ...]  # sorted distinct free indices
    sizes: dict[str, Dim]
    origin: dict[str, str]  # index -> which array fixed its size, for error messages
    fresh: bool = True  # False if the array may be an input, a view of one, or a constant


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
        self.arguments: dict[str, int] = {}
        self.dims = dict(dims)
        self.sources = index_sources(self.roots, dims)
        self.largest = 0
        self.flops = 0

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
        canonical = shared_algebra().form.canonical
        seen: dict[bytes, tuple[Planned, tuple[str, ...]]] = {}
        has_delta: dict[Expr, bool] = {}
        for node in nodes:
            if node in self.diagonal_terms or (isinstance(node, Delta) and node not in alone):
                has_delta[node] = True
                continue
            has_delta[node] = isinstance(node, Delta) or any(has_delta[c] for c in node.children)
            # A δ's sizes may come from dims rather than arrays: share only δ-free nodes,
            # whose sizes the arrays fix through the skeleton.
            if has_delta[node] or isinstance(node, Number):
                self.values[node] = self.dispatch(node)
                continue
            skeleton, names = canonical(node)
            if skeleton in seen:
                self.values[node] = self.renamed(*seen[skeleton], names)
                continue
            value = self.dispatch(node)
            self.values[node] = value
            seen[skeleton] = (value, names)
        results = tuple(
            self.finish(self.values[root], out) for root, out in zip(self.roots, outs, strict=True)
        )
        return Plan(tuple(self.steps), results, tuple(outs), Cost(self.largest, self.flops))

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
            return Planned(value.slot, target, sizes, origin, value.fresh)
        slot = self.emit(Reindex(_spec(axes, target)), [value.slot])
        return Planned(slot, target, sizes, origin, value.fresh)

    def merge_sizes(self, parts: Iterable[Planned]) -> tuple[dict[str, Dim], dict[str, str]]:
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
        missing = [i for i in out if i not in value.axes]
        if missing:  # a number (a vanished derivative) broadcast to the asked shape
            shape = tuple(self.dim(i, "in the output") for i in out)
            return self.emit(Fill(shape), [value.slot])
        if tuple(out) == value.axes:  # an input or a view of one is copied
            return value.slot if value.fresh else self.emit(Copy(), [value.slot])
        return self.emit(Reindex(_spec(value.axes, out), final=True), [value.slot])

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
        sizes = {i: Dim(rank) for i in node.indices}
        origin = {i: f"ε of rank {rank}" for i in node.indices}
        axes = tuple(sorted(set(node.indices)))
        self.note(rank**rank, 0)
        return Planned(
            self.emit(LeviCivita(rank, _spec(node.indices, axes))), axes, sizes, origin, False
        )

    def _plan_Func(self, node: Func) -> Planned:
        arg = self.values[node.arg]
        self.note(_elements(arg.sizes))
        return Planned(self.emit(Apply(node.name), [arg.slot]), arg.axes, arg.sizes, arg.origin)

    def _plan_Power(self, node: Power) -> Planned:
        base, exponent = self.values[node.base], self.values[node.exponent]
        sizes, origin = self.merge_sizes((base, exponent))
        axes = tuple(sorted(sizes))
        self.note(_elements(sizes))
        if isinstance(node.exponent, Number):
            raised = Raise(_scalar(node.exponent.value), (base.axes, axes))
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
        for term in diagonal:
            value = float(self.diagonal_terms[term])
            slot = self.emit(AddToDiagonal((from_axes, axes), value), [slot])
            from_axes = axes
        return Planned(slot, axes, sizes, origin)

    def _plan_Product(self, node: Product) -> Planned:
        operands = [f for f in node.factors if not isinstance(f, (Number, Delta))]
        deltas = [f for f in node.factors if isinstance(f, Delta)]
        coefficient = Fraction(1)
        for factor in node.factors:
            if isinstance(factor, Number):
                coefficient *= factor.value
        # Scalar factors multiply the result; einsum would turn a Python number into float64.
        scalars = [f for f in operands if not f.free]
        operands = [f for f in operands if f.free]
        sizes, origin = self.merge_sizes(self.values[f] for f in operands)
        value = self._contract(operands, node.out, sizes, origin, deltas, coefficient)
        if not scalars:
            return value
        slots = [value.slot, *(self.values[f].slot for f in scalars)]
        return Planned(self.emit(Multiply(), slots), value.axes, value.sizes, value.origin)

    def _contract(self, operands, out, sizes, origin, deltas, coefficient) -> Planned:
        """Contract operands, with δ indices merged first and any kept δ written at the end."""
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
        if len(classes) > len(LETTERS):
            raise EvaluationError("a product uses more than 52 distinct indices")
        letters = dict(zip(sorted(classes), LETTERS, strict=False))
        axes = tuple(sorted(out))
        parts = [self.values[f] for f in operands]
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
        if embed:
            shape = tuple(full_sizes[i] for i in axes)
            slot = self.emit(Embed(reduced_subscript, full_subscript, shape), [slot])
        passthrough = (
            len(parts) == 1 and path == () and not dims and coefficient == 1 and not broadcast
        )
        fresh = not (passthrough and not embed and not parts[0].fresh)
        full_origin = {i: origin.get(i, "a δ") for i in axes}
        return Planned(slot, axes, full_sizes, full_origin, fresh)

    def note_contraction(self, subscripts, output, shapes, class_size, kept_roots) -> None:
        """Count a contraction as opt_einsum's PathInfo prices it."""
        if len(subscripts) < 2:
            self.note(_elements(class_size[r] for r in kept_roots) if subscripts else 1)
            return
        spec = f"{','.join(subscripts)}->{output}"
        _, info = opt_einsum.contract_path(spec, *shapes, shapes=True, optimize="auto")
        self.note(int(info.largest_intermediate), int(info.opt_cost))


def contraction_path(subscripts: list[str], output: str, shapes) -> tuple:
    """The pairwise order of a contraction, in opt_einsum's convention (see `Contract`).

    Of three or more operands, those over the same indices multiply elementwise first: the
    cheapest step, and one opt_einsum's cost model does not always pick (σ ⊙ y ⊙ X_ij w_j).
    One operand already in the output's order needs no step at all.
    """
    live = list(subscripts)
    live_shapes = [tuple(shape) for shape in shapes]
    path = []
    groups: dict[frozenset, list[str]] = {}
    for sub in subscripts if len(subscripts) > 2 else ():
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
    steps, _ = opt_einsum.contract_path(spec, *live_shapes, shapes=True, optimize="auto")
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
    letters = dict(zip(dict.fromkeys([*indices, *target]), LETTERS, strict=False))
    return f"{''.join(letters[i] for i in indices)}->{''.join(letters[i] for i in target)}"


def _elements(sizes) -> int:
    """The number of elements of an array with these sizes (a mapping, or sizes)."""
    values = sizes.values() if isinstance(sizes, Mapping) else sizes
    return int(np.prod([d.value for d in values], dtype=np.int64))


def _scalar(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)
