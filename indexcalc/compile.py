"""Expression → planned NumPy evaluation.

`compile` turns an expression into a callable. On the first call with a given set of
array shapes it plans: it walks the expression DAG once, fixes every index size, checks
the arrays, and turns each distinct node into one step — so a subexpression shared
between terms is computed once per call. Products become contractions planned by
opt_einsum, executed with BLAS-backed ``tensordot`` where the shape allows. Deltas are
never materialised inside a product: their indices are merged before contracting, and a
δ that survives into the result is written once, on the output's diagonal.
"""

from __future__ import annotations

import itertools
import operator
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import reduce

import numpy as np
import opt_einsum

from .backends import BACKENDS, NumpyBackend, identity, resolve
from .errors import EvaluationError, IndexCalcError, UnsizedIndexError
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
    deep_recursion,
    delta_classes,
)
from .simplify import Algebra
from .sizes import Source, class_sources, index_sources, size_from, size_inputs, unsized_where

Array = np.ndarray
_LETTERS = string.ascii_letters


@dataclass
class Step:
    """Compute one node: `run(*inputs)` on the values of earlier steps."""

    run: Callable[..., Array]
    inputs: tuple[int, ...]


@dataclass
class Value:
    """What planning knows about a node's array: its axes and their sizes."""

    slot: int
    axes: tuple[str, ...]  # sorted distinct free indices
    sizes: dict[str, int]
    origin: dict[str, str]  # index -> which array fixed its size, for error messages
    fresh: bool = True  # False if the array may be an input, a view of one, or a constant


@dataclass(frozen=True)
class Cost:
    """The cost of one evaluation: the largest array a step makes (elements, inputs not
    counted) and the floating-point operations."""

    largest_intermediate: int
    flops: int


class Plan:
    """The steps for one shape signature; running it does no planning."""

    def __init__(
        self,
        steps: list[Step | None],
        inputs: list[tuple[int, str]],
        result: int,
        cost: Cost = Cost(0, 0),
    ):
        self.cost = cost
        self.size = len(steps)
        self.input_slots = [slot for slot, _ in inputs]
        self.input_names = [name for _, name in inputs]
        self.program = [
            (slot, step.run, step.inputs) for slot, step in enumerate(steps) if step is not None
        ]
        self.result = result

    def run(self, arrays: Sequence[Array]):
        """Run on the input arrays, given in the order of `input_names`; several results
        come back as a tuple."""
        values: list = [None] * self.size
        for slot, array in zip(self.input_slots, arrays, strict=True):
            values[slot] = array
        for slot, run, inputs in self.program:
            if len(inputs) == 1:
                values[slot] = run(values[inputs[0]])
            elif len(inputs) == 2:
                values[slot] = run(values[inputs[0]], values[inputs[1]])
            else:
                values[slot] = run(*[values[k] for k in inputs])
        if isinstance(self.result, list):
            return tuple(values[slot] for slot in self.result)
        return values[self.result]


class Compiled:
    """One or several expressions compiled for evaluation. Call it with arrays by name.

    Several expressions (a gradient for each layer, say) are planned together, so the
    subexpressions they share are computed once per call; the call returns a tuple.
    """

    def __init__(
        self,
        expr: Expr | Sequence[Expr],
        out=None,
        *,
        dims: Mapping[str, int] | None = None,
        backend: str = "numpy",
    ):
        self.several = not isinstance(expr, Expr)
        roots = list(expr) if self.several else [expr]
        if not roots:
            raise EvaluationError("nothing to compile: the list of expressions is empty")
        for k, root in enumerate(roots):
            if any(isinstance(n, Derivative) for n in postorder(root)):
                from .simplify import simplify

                roots[k] = simplify(root)
        self.roots = tuple(roots)
        self.expr = self.roots[0] if not self.several else None
        self.ranks = _tensor_ranks(*self.roots)
        self._names = tuple(sorted(self.ranks))
        self.size_inputs = size_inputs(postorder(*self.roots))
        if self.several:
            outs = [None] * len(roots) if out is None else list(out)
            if len(outs) != len(roots):
                raise EvaluationError(f"out gives {len(outs)} orders for {len(roots)} expressions")
            self.outs = tuple(output_indices(r, o) for r, o in zip(roots, outs, strict=True))
        else:
            self.outs = (output_indices(self.roots[0], out),)
        self.out = self.outs[0]
        self.dims = check_dims(dims)
        if backend not in BACKENDS:
            raise EvaluationError(
                f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        self.backend = backend
        self._plans: dict[tuple, Plan] = {}
        self.plan_count = 0

    @property
    def inputs(self) -> tuple[str, ...]:
        """The names of the arrays the expression needs, sorted."""
        return self._names

    def _size_shapes(self, given: Mapping[str, object]) -> tuple:
        """The shapes of the optional arrays that only size δs (W for ∂(W x)/∂W), as given."""
        return tuple(getattr(given.get(name), "shape", None) for name in self.size_inputs)

    def __call__(self, arrays: Mapping[str, object] | None = None, /, **kw_arrays) -> Array:
        given = _given(arrays, kw_arrays)
        try:
            values = [given[name] for name in self._names]
        except KeyError:
            values = None
        if values is not None and self.backend in ("numpy", "auto"):
            # Fast path: NumPy arrays whose shapes and dtypes were planned before.
            key = tuple([(a.shape, a.dtype) if type(a) is np.ndarray else None for a in values])
            if self.size_inputs:
                key += self._size_shapes(given)
            plan = self._plans.get(key)
            if plan is not None:
                return plan.run(values)
        plan, prepared = self._planned(given)
        return plan.run(prepared)

    def cost(self, arrays: Mapping[str, object] | None = None, /, **kw_arrays) -> Cost:
        """What evaluating on arrays of these shapes costs, planned but not run: the
        largest array any step makes and the floating-point operations, as opt_einsum's
        `PathInfo` counts them for contractions (one per element for elementwise steps).

        ``f.cost(W=W, x=x).largest_intermediate`` is in elements.
        """
        plan, _ = self._planned(_given(arrays, kw_arrays))
        return plan.cost

    def _planned(self, given: Mapping[str, object]) -> tuple[Plan, list]:
        """The plan for these arrays (made once per shape signature) and the arrays as
        the plan takes them."""
        missing = [name for name in self._names if name not in given]
        if missing:
            raise EvaluationError(
                f"missing array{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                f"the expression needs {', '.join(self._names) or 'no arrays'}"
            )
        backend = resolve(self.backend, {name: given[name] for name in self._names})
        prepared = [backend.prepare(name, given[name], self.ranks[name]) for name in self._names]
        prepared = backend.unify(prepared)
        key = backend.key(prepared)
        size_shapes = self._size_shapes(given)
        if self.size_inputs:
            key = (*key, *size_shapes)
        plan = self._plans.get(key)
        if plan is None:
            arrays = dict(zip(self._names, prepared, strict=True))
            shapes = {name: tuple(array.shape) for name, array in arrays.items()}
            for name, shape in zip(self.size_inputs, size_shapes, strict=True):
                if shape is not None:
                    shapes[name] = tuple(shape)
            plan = Planner(self, arrays, backend, shapes).plan()
            self._plans[key] = plan
            self.plan_count += 1
        return plan, prepared

    def __repr__(self) -> str:
        pairs = zip(self.roots, self.outs, strict=True)
        shown = ", ".join(f"{r} -> {''.join(o) or 'scalar'}" for r, o in pairs)
        return f"<compiled {shown}>"


class Planner:
    """Walks the DAG once for one set of shapes and emits the steps."""

    def __init__(
        self,
        compiled: Compiled,
        arrays: dict[str, Array],
        backend: NumpyBackend,
        shapes: Mapping[str, tuple[int, ...]],
    ):
        self.compiled = compiled
        self.arrays = arrays
        self.backend = backend
        self.shapes = shapes  # of every given array, including those that only size δs
        self.steps: list[Step | None] = []
        self.values: dict[Expr, Value] = {}
        self.inputs: list[tuple[int, str]] = []
        self.input_slots: dict[str, int] = {}
        self.sources = index_sources(postorder(*compiled.roots), compiled.dims)
        self.largest = 0  # elements of the largest array a step makes
        self.flops = 0

    def note(self, elements: int, flops: int | None = None) -> None:
        """Count a step that makes an array of `elements` with `flops` operations."""
        self.largest = max(self.largest, elements)
        self.flops += elements if flops is None else flops

    def plan(self) -> Plan:
        roots = self.compiled.roots
        nodes = postorder(*roots)
        # A δ inside a product only merges indices; only a δ standing alone becomes a step.
        alone = set(roots) | {c for n in nodes if not isinstance(n, Product) for c in n.children}
        # Equal subexpressions under other index names (tanh(W_ij x_j), tanh(W_aj x_j))
        # are computed once: the canonical form identifies them up to renaming.
        canonical = Algebra.shared().canonical
        seen: dict[int, tuple[Value, tuple[str, ...]]] = {}
        has_delta: dict[Expr, bool] = {}
        for node in nodes:
            if isinstance(node, Delta) and node not in alone:
                has_delta[node] = True
                continue
            if isinstance(node, Number):
                has_delta[node] = False
                self.values[node] = self._plan_Number(node)
                continue
            # A δ's sizes may come from dims rather than arrays: reuse only δ-free nodes,
            # whose sizes the arrays fix through the skeleton.
            has_delta[node] = isinstance(node, Delta) or any(has_delta[c] for c in node.children)
            if has_delta[node]:
                self.values[node] = getattr(self, f"_plan_{type(node).__name__}")(node)
                continue
            skeleton, names = canonical(node)
            if skeleton in seen:
                self.values[node] = self.renamed(*seen[skeleton], names)
                continue
            value = getattr(self, f"_plan_{type(node).__name__}")(node)
            self.values[node] = value
            seen[skeleton] = (value, names)
        results = [
            self._finish(self.values[root], out)
            for root, out in zip(roots, self.compiled.outs, strict=True)
        ]
        slots = {name: slot for slot, name in self.inputs}
        ordered = [(slots[name], name) for name in self.compiled.inputs if name in slots]
        cost = Cost(self.largest, self.flops)
        return Plan(self.steps, ordered, results if self.compiled.several else results[0], cost)

    # -- helpers -----------------------------------------------------------------------

    def renamed(self, value: Value, names: tuple[str, ...], new_names: tuple[str, ...]) -> Value:
        """A computed value seen under other index names, transposed as needed."""
        mapping = dict(zip(names, new_names, strict=True))
        axes = tuple(mapping[a] for a in value.axes)
        target = tuple(sorted(axes))
        sizes = {mapping[i]: n for i, n in value.sizes.items()}
        origin = {mapping[i]: o for i, o in value.origin.items()}
        if axes == target:
            return Value(value.slot, target, sizes, origin, value.fresh)
        order = tuple(axes.index(i) for i in target)
        slot = self.emit(self.backend.permute(order), [value.slot])
        return Value(slot, target, sizes, origin, value.fresh)

    def emit(self, run, inputs: Sequence[int]) -> int:
        self.steps.append(Step(run, tuple(inputs)))
        return len(self.steps) - 1

    def size_of(self, index: str, where: str, candidates: Sequence[Source] = ()) -> int:
        """The size of `index`: from the first usable candidate, or what sizes its name."""
        candidates = [*candidates, *([self.sources[index]] if index in self.sources else [])]
        size = size_from(candidates, self.shapes)
        if size is None:
            raise UnsizedIndexError(index, unsized_where(candidates, where))
        return size

    def merge_sizes(self, parts: Iterable[Value]) -> tuple[dict[str, int], dict[str, str]]:
        sizes: dict[str, int] = {}
        origin: dict[str, str] = {}
        for part in parts:
            for index, size in part.sizes.items():
                if index in sizes and sizes[index] != size:
                    raise EvaluationError(
                        f"index '{index}' has size {sizes[index]} in {origin[index]} but "
                        f"size {size} in {part.origin[index]}"
                    )
                if index not in sizes:
                    sizes[index] = size
                    origin[index] = part.origin[index]
        return sizes, origin

    def _finish(self, value: Value, out: tuple[str, ...]) -> int:
        backend = self.backend
        missing = [i for i in out if i not in value.axes]
        if missing:  # a number (a vanished derivative) broadcast to the asked shape
            shape = tuple(self.size_of(i, "in the output") for i in out)
            return self.emit(backend.broadcast_copy(shape), [value.slot])
        shared = not value.fresh  # an input, a view of one, or a cached constant
        if not out:  # a scalar: always a 0-d array, never a NumPy scalar or an input
            wrap = backend.copy if shared else backend.scalar
            return self.emit(wrap, [value.slot])
        order = tuple(value.axes.index(i) for i in out)
        if order == tuple(range(len(order))):
            if shared:
                return self.emit(backend.copy, [value.slot])  # never hand back an input
            return value.slot
        return self.emit(backend.permute(order, final=True), [value.slot])

    # -- nodes -------------------------------------------------------------------------

    def note_contraction(self, subscripts, kept_roots, letters, class_size, shapes) -> None:
        """Count a contraction as opt_einsum's PathInfo prices it."""
        if len(subscripts) < 2:
            self.note(_elements(class_size[r] for r in kept_roots) if subscripts else 1)
            return
        carried = {c for sub in subscripts for c in sub}
        output = "".join(letters[r] for r in kept_roots if letters[r] in carried)
        spec = f"{','.join(subscripts)}->{output}"
        _, info = opt_einsum.contract_path(spec, *shapes, shapes=True, optimize="auto")
        self.note(int(info.largest_intermediate), int(info.opt_cost))

    def _plan_Number(self, node: Number) -> Value:
        # A Python float: weak, so it keeps the arrays' dtype, and never integer arithmetic.
        constant = float(node.value)
        return Value(self.emit(lambda: constant, []), (), {}, {})

    def _plan_Tensor(self, node: Tensor) -> Value:
        array = self.arrays[node.name]
        if node.name not in self.input_slots:
            self.steps.append(None)
            self.input_slots[node.name] = len(self.steps) - 1
            self.inputs.append((len(self.steps) - 1, node.name))
        slot = self.input_slots[node.name]
        sizes: dict[str, int] = {}
        origin: dict[str, str] = {}
        for axis, (index, size) in enumerate(zip(node.indices, array.shape, strict=True)):
            where = f"{node.name} (axis {axis})"
            if index in sizes and sizes[index] != size:
                raise EvaluationError(
                    f"index '{index}' is repeated in {node.name}_{''.join(node.indices)} but "
                    f"the axes have sizes {sizes[index]} and {size}"
                )
            sizes.setdefault(index, size)
            origin.setdefault(index, where)
        axes = tuple(sorted(sizes))
        letters = dict(zip(sorted(set(node.indices)), _LETTERS, strict=False))
        source = "".join(letters[i] for i in node.indices)
        target = "".join(letters[i] for i in axes)
        if source == target:
            return Value(slot, axes, sizes, origin, fresh=False)
        if len(set(source)) == len(source):
            order = tuple(source.index(c) for c in target)
            permuted = self.emit(self.backend.permute(order), [slot])
            return Value(permuted, axes, sizes, origin, fresh=False)
        diagonal = self.backend.einsum(f"{source}->{target}")
        return Value(self.emit(diagonal, [slot]), axes, sizes, origin, fresh=False)

    def _plan_Delta(self, node: Delta) -> Value:
        """A δ on its own (∂x_i/∂x_k): built once, as an identity of the needed shape."""
        axes = tuple(sorted(set(node.indices)))
        sizes = {i: self.size_of(i, "in a δ", [node.axis] if node.axis else []) for i in axes}
        origin = {i: "dims" for i in axes}
        product = Product((node,), node.free)
        return self._contract(product, [], axes, sizes, origin, extra_deltas=[node])

    def _plan_Epsilon(self, node: Epsilon) -> Value:
        rank = len(node.indices)
        sizes = {i: rank for i in node.indices}
        origin = {i: f"ε of rank {rank}" for i in node.indices}
        axes = tuple(sorted(set(node.indices)))
        letters = dict(zip(axes, _LETTERS, strict=False))
        subscripts = (
            f"{''.join(letters[i] for i in node.indices)}->{''.join(letters[i] for i in axes)}"
        )
        dense = np.einsum(subscripts, _levi_civita(rank))
        self.note(dense.size, 0)
        constant = self.backend.constant(dense, list(self.arrays.values()))
        return Value(self.emit(constant, []), axes, sizes, origin, fresh=False)

    def _plan_Func(self, node: Func) -> Value:
        arg = self.values[node.arg]
        self.note(_elements(arg.sizes))
        function = self.backend.function(node.name)
        return Value(self.emit(function, [arg.slot]), arg.axes, arg.sizes, arg.origin)

    def _plan_Power(self, node: Power) -> Value:
        base, exponent = self.values[node.base], self.values[node.exponent]
        sizes, origin = self.merge_sizes((base, exponent))
        axes = tuple(sorted(sizes))
        self.note(_elements(sizes))
        if isinstance(node.exponent, Number):
            constant = _scalar(node.exponent.value)
            align = _aligner(base.axes, axes)
            return Value(
                self.emit(lambda b: align(b) ** constant, [base.slot]), axes, sizes, origin
            )
        align_base, align_exponent = _aligner(base.axes, axes), _aligner(exponent.axes, axes)
        run = lambda b, e: align_base(b) ** align_exponent(e)  # noqa: E731
        return Value(self.emit(run, [base.slot, exponent.slot]), axes, sizes, origin)

    def _plan_Sum(self, node: Sum) -> Value:
        parts = [self.values[t] for t in node.terms]
        sizes, origin = self.merge_sizes(parts)
        axes = tuple(sorted(sizes))
        self.note(_elements(sizes), _elements(sizes) * (len(parts) - 1))
        aligners = [_aligner(p.axes, axes) for p in parts]

        if len(parts) == 2:
            first, second = aligners
            run2 = lambda a, b: first(a) + second(b)  # noqa: E731
            return Value(self.emit(run2, [p.slot for p in parts]), axes, sizes, origin)

        def run(*terms):
            return reduce(operator.add, (a(t) for a, t in zip(aligners, terms, strict=True)))

        return Value(self.emit(run, [p.slot for p in parts]), axes, sizes, origin)

    def _plan_Product(self, node: Product) -> Value:
        operands = [f for f in node.factors if not isinstance(f, (Number, Delta))]
        deltas = [f for f in node.factors if isinstance(f, Delta)]
        coefficient = Fraction(1)
        for factor in node.factors:
            if isinstance(factor, Number):
                coefficient *= factor.value
        # Scalar factors multiply the result; einsum would turn a Python number into float64.
        scalars = [f for f in operands if not f.free]
        operands = [f for f in operands if f.free]
        parts = [self.values[f] for f in operands]
        sizes, origin = self.merge_sizes(parts)
        value = self._contract(node, operands, node.out, sizes, origin, deltas, coefficient)
        if not scalars:
            return value
        slots = [value.slot, *(self.values[f].slot for f in scalars)]
        scaled = self.emit(lambda *values: reduce(operator.mul, values), slots)
        return Value(scaled, value.axes, value.sizes, value.origin)

    def _contract(
        self, node, operands, out, sizes, origin, extra_deltas=(), coefficient=Fraction(1)
    ) -> Value:
        """Contract operands, with δ indices merged first and any kept δ written at the end."""
        deltas = list(extra_deltas)
        find = delta_classes(deltas)
        classes: dict[str, list[str]] = {}
        for index in set(sizes) | {i for d in deltas for i in d.indices} | set(out):
            classes.setdefault(find(index), []).append(index)
        # Every member of a class must have one size.
        class_size: dict[str, int] = {}
        for root, members in classes.items():
            known = [(sizes[m], origin[m]) for m in members if m in sizes]
            if known:
                size = known[0][0]
                for other, where in known[1:]:
                    if other != size:
                        raise EvaluationError(
                            f"a δ ties indices {', '.join(sorted(members))} together, but they "
                            f"have sizes {size} ({known[0][1]}) and {other} ({where})"
                        )
            else:
                # No operand fixes the class: the axis a δ runs over, or a kept index's
                # size by name before a summed one's, whose name may be reused elsewhere.
                kept = [m for m in members if m in out]
                candidates = class_sources(kept, deltas, self.sources)
                candidates += class_sources(members, deltas, self.sources)
                size = self.size_of(min(kept or members), "in a δ", candidates)
            class_size[root] = size
        axes = tuple(sorted(out))
        full_sizes = {i: class_size[find(i)] for i in axes}
        full_origin = {i: origin.get(i, "a δ") for i in axes}
        # Letters per class; operands use their class letters.
        letters = dict(zip(sorted(classes), _LETTERS, strict=False))
        if len(classes) > len(_LETTERS):
            raise EvaluationError("a product uses more than 52 distinct indices")
        operand_subscripts = [
            "".join(letters[find(i)] for i in self.values[f].axes) for f in operands
        ]
        kept_roots = list(dict.fromkeys(find(i) for i in axes))
        reduced_subscript = "".join(letters[r] for r in kept_roots)
        # Classes no operand carries: summed ones multiply by their size, kept ones broadcast.
        carried = {find(i) for f in operands for i in self.values[f].axes}
        factor = _scalar(coefficient)
        for root in classes:
            if root not in carried and root not in kept_roots:
                factor *= class_size[root]
        shapes = [tuple(self.values[f].sizes[i] for i in self.values[f].axes) for f in operands]
        self.note_contraction(operand_subscripts, kept_roots, letters, class_size, shapes)
        self.note(_elements(full_sizes), 0)
        contraction = self.backend.contraction(
            operand_subscripts, "".join(letters[r] for r in kept_roots if r in carried), shapes
        )
        reduced_shape = tuple(class_size[r] for r in kept_roots)
        carried_subscript = "".join(letters[r] for r in kept_roots if r in carried)
        expand = self.backend.broadcaster(carried_subscript, reduced_subscript, reduced_shape)
        full_subscript = "".join(letters[find(i)] for i in axes)
        full_shape = tuple(full_sizes[i] for i in axes)
        embed = self.backend.embedder(reduced_subscript, full_subscript, full_shape)

        passthrough = contraction is identity and expand is identity and embed is identity
        if expand is identity and embed is identity and factor == 1:
            run = contraction
        elif expand is identity and embed is identity and operands:
            # Scale the smallest operand, not the result: fewer multiplications.
            sizes_of = [int(np.prod(shape)) for shape in shapes]
            run = _scaled(contraction, sizes_of.index(min(sizes_of)), len(operands), factor)
        else:

            def run(*arrays):
                result = expand(contraction(*arrays))
                if factor != 1:
                    result = result * factor
                return embed(result)

        slots = [self.values[f].slot for f in operands]
        fresh = not (passthrough and factor == 1 and not self.values[operands[0]].fresh)
        return Value(self.emit(run, slots), axes, full_sizes, full_origin, fresh)


def _elements(sizes) -> int:
    """The number of elements of an array with these axis sizes (a mapping or sizes)."""
    values = sizes.values() if isinstance(sizes, Mapping) else sizes
    return int(np.prod(list(values), dtype=np.int64))


def _given(arrays, kw_arrays) -> dict[str, object]:
    """Arrays given by name, as a mapping, keywords or both."""
    if arrays is not None and not isinstance(arrays, Mapping):
        raise EvaluationError(
            f"arrays must be given by name, as a mapping or keywords, not {type(arrays).__name__}"
        )
    return {**arrays, **kw_arrays} if arrays else kw_arrays


def _scaled(contraction, position: int, count: int, factor):
    """`contraction` with its operand at `position` multiplied by `factor` first."""
    if count == 1:
        return lambda a: contraction(a * factor)
    if count == 2:
        if position == 0:
            return lambda a, b: contraction(a * factor, b)
        return lambda a, b: contraction(a, b * factor)

    def run(*arrays):
        arrays = list(arrays)
        arrays[position] = arrays[position] * factor
        return contraction(*arrays)

    return run


def _aligner(axes: tuple[str, ...], target: tuple[str, ...]):
    """Reshape an array over `axes` to broadcast against `target` (both sorted)."""
    if axes == target or not axes:
        return identity
    index = tuple(slice(None) if i in axes else np.newaxis for i in target)
    return lambda a: a[index]


def _scalar(value: Fraction):
    return int(value) if value.denominator == 1 else float(value)


def _levi_civita(rank: int) -> Array:
    array = np.zeros((rank,) * rank)
    for permutation in itertools.permutations(range(rank)):
        inversions = sum(
            1 for a in range(rank) for b in range(a + 1, rank) if permutation[a] > permutation[b]
        )
        array[permutation] = -1 if inversions % 2 else 1
    return array


def postorder(*roots: Expr) -> list[Expr]:
    """Distinct nodes, children before parents, without recursion."""
    order, seen = [], set()
    stack: list[tuple[Expr, bool]] = [(root, False) for root in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack.extend((c, False) for c in reversed(node.children) if c not in seen)
    return order


def _tensor_ranks(*roots: Expr) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for node in postorder(*roots):
        if isinstance(node, Tensor):
            known = ranks.setdefault(node.name, len(node.indices))
            if known != len(node.indices):
                raise EvaluationError(
                    f"tensor '{node.name}' is used with {known} and with "
                    f"{len(node.indices)} indices"
                )
    return ranks


def output_indices(expr: Expr, out) -> tuple[str, ...]:
    free = expr.free_indices
    if out is None:
        return free
    if isinstance(out, str):
        names = tuple(out)
    else:
        try:
            names = tuple(out)
        except TypeError:
            raise EvaluationError(
                f"out must be a string of index letters or a sequence, not {out!r}"
            ) from None
    if not all(isinstance(n, str) for n in names):
        raise EvaluationError(f"out must name indices by letter, not {out!r}")
    if len(set(names)) != len(names):
        raise EvaluationError(f"out repeats an index: {''.join(names)!r}")
    unknown = [n for n in names if n not in expr.free]
    if unknown and not (isinstance(expr, Number)):
        raise EvaluationError(
            f"out names {', '.join(repr(n) for n in unknown)}, which "
            f"{'is' if len(unknown) == 1 else 'are'} not free in the expression "
            f"(free: {', '.join(free) or 'none'})"
        )
    absent = [i for i in free if i not in names]
    if absent:
        raise EvaluationError(
            f"out leaves out the free {'index' if len(absent) == 1 else 'indices'} "
            f"{', '.join(repr(i) for i in absent)}; list every free index: {''.join(free)}"
        )
    return names


def check_dims(dims) -> dict[str, int]:
    if dims is None:
        return {}
    if not isinstance(dims, Mapping):
        raise EvaluationError(
            f"dims must map index letters to sizes, like {{'i': 3}}, not {dims!r}"
        )
    checked = {}
    for index, size in dims.items():
        if (
            not isinstance(index, str)
            or isinstance(size, bool)
            or not isinstance(size, (int, np.integer))
            or size < 0
        ):
            raise EvaluationError(
                f"dims entry {index!r}: {size!r} must be an index letter and a size >= 0"
            )
        checked[index] = int(size)
    return checked


def compile(
    expr_or_text,
    out=None,
    *,
    dims: Mapping[str, int] | None = None,
    var: str = "x",
    backend: str = "numpy",
) -> Compiled:
    """Compile an expression, or several, for repeated evaluation.

    Parameters
    ----------
    expr_or_text : Expr or str, or a list or tuple of them
        Several expressions (the gradient for each layer, say) are planned together: what
        they share is computed once per call, and the call returns a tuple.
    out : str or sequence of str, optional
        The axis order of the result, e.g. ``"kl"``. Default: the free indices sorted.
        With several expressions, a list with one order (or None) for each.
    dims : mapping, optional
        Sizes for indices that no array fixes, e.g. ``{"i": 3}`` for ``δ_ij`` alone.
    backend : str
        ``"numpy"`` (default), ``"auto"`` (from the arrays' type), ``"jax"``, ``"torch"``,
        ``"cupy"`` or ``"dask"``. Results stay on the backend; NumPy inputs are converted
        only when a backend is named.

    Returns
    -------
    Compiled
        Call it as ``f(A=..., x=...)`` or ``f({"A": ..., "x": ...})``. It plans once per
        set of array shapes and reuses the plan.
    """
    from .syntax import parse

    def read(item):
        if isinstance(item, str):
            return parse(item, var=var)
        if isinstance(item, Expr):
            return item
        raise IndexCalcError(f"expected an expression or notation, got {type(item).__name__}")

    if isinstance(expr_or_text, (list, tuple)):
        expr = [read(item) for item in expr_or_text]
    else:
        expr = read(expr_or_text)
    return Compiled(expr, out, dims=dims, backend=backend)


@deep_recursion
def evaluate(
    expr_or_text,
    arrays: Mapping[str, object] | None = None,
    *,
    out=None,
    dims: Mapping[str, int] | None = None,
    var: str = "x",
    backend: str = "numpy",
    **kw_arrays,
) -> Array:
    """Evaluate an expression on arrays given by name.

    ``evaluate("A_ij x_j", A=A, x=x)`` returns the array over the free indices in
    alphabetical order (or in the order `out` gives); a scalar is a 0-d array.
    """
    return compile(expr_or_text, out, dims=dims, var=var, backend=backend)(arrays, **kw_arrays)
