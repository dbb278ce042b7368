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
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import reduce

import numpy as np
import opt_einsum

from .errors import EvaluationError, IndexCalcError
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
)
from .functions import FUNCTIONS

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


class Plan:
    """The steps for one shape signature; running it does no planning."""

    def __init__(self, steps: list[Step | None], inputs: list[tuple[int, str]], result: int):
        self.size = len(steps)
        self.input_slots = [slot for slot, _ in inputs]
        self.input_names = [name for _, name in inputs]
        self.program = [
            (slot, step.run, step.inputs) for slot, step in enumerate(steps) if step is not None
        ]
        self.result = result

    def run(self, arrays: Sequence[Array]) -> Array:
        """Run on the input arrays, given in the order of `input_names`."""
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
        return values[self.result]


class Compiled:
    """An expression compiled for evaluation. Call it with arrays by name."""

    def __init__(self, expr: Expr, out=None, *, dims: Mapping[str, int] | None = None):
        if any(isinstance(n, Derivative) for n in _postorder(expr)):
            from .simplify import simplify

            expr = simplify(expr)
        self.expr = expr
        self.ranks = _tensor_ranks(expr)
        self._names = tuple(sorted(self.ranks))
        self.out = _output_indices(expr, out)
        self.dims = _check_dims(dims)
        self._plans: dict[tuple, Plan] = {}
        self.plan_count = 0

    @property
    def inputs(self) -> tuple[str, ...]:
        """The names of the arrays the expression needs, sorted."""
        return self._names

    def __call__(self, arrays: Mapping[str, object] | None = None, /, **kw_arrays) -> Array:
        given = {**arrays, **kw_arrays} if arrays else kw_arrays
        try:
            values = [given[name] for name in self._names]
        except (KeyError, TypeError):
            values = None
        if values is not None:
            # Fast path: NumPy arrays whose shapes and dtypes were planned before.
            key = tuple([(a.shape, a.dtype) if type(a) is np.ndarray else None for a in values])
            plan = self._plans.get(key)
            if plan is not None:
                return plan.run(values)
        prepared = self._prepare(given)
        key = tuple((a.shape, a.dtype) for a in prepared)
        plan = self._plans.get(key)
        if plan is None:
            plan = Planner(self, dict(zip(self.inputs, prepared, strict=True))).plan()
            self._plans[key] = plan
            self.plan_count += 1
        return plan.run(prepared)

    def _prepare(self, given) -> list[Array]:
        if not isinstance(given, Mapping):
            raise EvaluationError(
                "arrays must be given by name, as a mapping or keywords, "
                f"not {type(given).__name__}"
            )
        missing = [name for name in self.inputs if name not in given]
        if missing:
            raise EvaluationError(
                f"missing array{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                f"the expression needs {', '.join(self.inputs) or 'no arrays'}"
            )
        return [_as_array(name, given[name], self.ranks[name]) for name in self.inputs]

    def __repr__(self) -> str:
        return f"<compiled {self.expr} -> {''.join(self.out) or 'scalar'}>"


class Planner:
    """Walks the DAG once for one set of shapes and emits the steps."""

    def __init__(self, compiled: Compiled, arrays: dict[str, Array]):
        self.compiled = compiled
        self.arrays = arrays
        self.steps: list[Step | None] = []
        self.values: dict[Expr, Value] = {}
        self.inputs: list[tuple[int, str]] = []
        self.input_slots: dict[str, int] = {}
        self.fallback = _name_sizes(compiled.expr, arrays)
        self.fallback.update(compiled.dims)

    def plan(self) -> Plan:
        nodes = _postorder(self.compiled.expr)
        # A δ inside a product only merges indices; only a δ standing alone becomes a step.
        alone = {self.compiled.expr} | {
            c for n in nodes if not isinstance(n, Product) for c in n.children
        }
        for node in nodes:
            if isinstance(node, Delta) and node not in alone:
                continue
            self.values[node] = getattr(self, f"_plan_{type(node).__name__}")(node)
        result = self.values[self.compiled.expr]
        final = self._finish(result)
        slots = {name: slot for slot, name in self.inputs}
        ordered = [(slots[name], name) for name in self.compiled.inputs if name in slots]
        return Plan(self.steps, ordered, final)

    # -- helpers -----------------------------------------------------------------------

    def emit(self, run, inputs: Sequence[int]) -> int:
        self.steps.append(Step(run, tuple(inputs)))
        return len(self.steps) - 1

    def size_of(self, index: str, where: str) -> int:
        if index in self.fallback:
            return self.fallback[index]
        raise EvaluationError(
            f"the size of index '{index}' ({where}) is not fixed by any array; "
            f"pass it with dims={{'{index}': n}}"
        )

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

    def _finish(self, value: Value) -> int:
        out = self.compiled.out
        missing = [i for i in out if i not in value.axes]
        if missing:  # a number (a vanished derivative) broadcast to the asked shape
            shape = tuple(self.size_of(i, "in the output") for i in out)
            return self.emit(lambda a: np.broadcast_to(a, shape).copy(), [value.slot])
        order = tuple(value.axes.index(i) for i in out)
        if order == tuple(range(len(order))):
            if value.slot in {slot for slot, _ in self.inputs}:
                return self.emit(np.copy, [value.slot])  # never hand back the caller's array
            return value.slot
        return self.emit(lambda a: np.ascontiguousarray(np.transpose(a, order)), [value.slot])

    # -- nodes -------------------------------------------------------------------------

    def _plan_Number(self, node: Number) -> Value:
        constant = _scalar(node.value)
        return Value(self.emit(lambda: np.asarray(constant), []), (), {}, {})

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
            return Value(slot, axes, sizes, origin)
        if len(set(source)) == len(source):
            order = tuple(source.index(c) for c in target)
            return Value(self.emit(lambda a: a.transpose(order), [slot]), axes, sizes, origin)
        subscripts = f"{source}->{target}"
        return Value(self.emit(lambda a: np.einsum(subscripts, a), [slot]), axes, sizes, origin)

    def _plan_Delta(self, node: Delta) -> Value:
        """A δ on its own (∂x_i/∂x_k): built once, as an identity of the needed shape."""
        axes = tuple(sorted(set(node.indices)))
        sizes = {i: self.size_of(i, "in a δ") for i in axes}
        origin = {i: "dims" for i in axes}
        product = Product((node,), node.free)
        return self._contract(product, [], axes, sizes, origin, extra_deltas=[node])

    def _plan_Epsilon(self, node: Epsilon) -> Value:
        rank = len(node.indices)
        sizes = {i: rank for i in node.indices}
        origin = {i: f"ε of rank {rank}" for i in node.indices}
        axes = tuple(sorted(node.indices))
        dense = _levi_civita(rank)
        letters = dict(zip(axes, _LETTERS, strict=False))
        subscripts = (
            f"{''.join(letters[i] for i in node.indices)}->{''.join(letters[i] for i in axes)}"
        )
        array = np.einsum(subscripts, dense)
        return Value(self.emit(lambda: array, []), axes, sizes, origin)

    def _plan_Func(self, node: Func) -> Value:
        arg = self.values[node.arg]
        ufunc = FUNCTIONS[node.name].numpy
        return Value(self.emit(ufunc, [arg.slot]), arg.axes, arg.sizes, arg.origin)

    def _plan_Power(self, node: Power) -> Value:
        base, exponent = self.values[node.base], self.values[node.exponent]
        sizes, origin = self.merge_sizes((base, exponent))
        axes = tuple(sorted(sizes))
        if isinstance(node.exponent, Number):
            constant = _scalar(node.exponent.value)
            align = _aligner(base.axes, axes)
            return Value(
                self.emit(lambda b: np.power(align(b), constant), [base.slot]), axes, sizes, origin
            )
        align_base, align_exponent = _aligner(base.axes, axes), _aligner(exponent.axes, axes)
        run = lambda b, e: np.power(align_base(b), align_exponent(e))  # noqa: E731
        return Value(self.emit(run, [base.slot, exponent.slot]), axes, sizes, origin)

    def _plan_Sum(self, node: Sum) -> Value:
        parts = [self.values[t] for t in node.terms]
        sizes, origin = self.merge_sizes(parts)
        axes = tuple(sorted(sizes))
        aligners = [_aligner(p.axes, axes) for p in parts]

        if len(parts) == 2:
            first, second = aligners
            run2 = lambda a, b: first(a) + second(b)  # noqa: E731
            return Value(self.emit(run2, [p.slot for p in parts]), axes, sizes, origin)

        def run(*terms):
            return reduce(np.add, (align(t) for align, t in zip(aligners, terms, strict=True)))

        return Value(self.emit(run, [p.slot for p in parts]), axes, sizes, origin)

    def _plan_Product(self, node: Product) -> Value:
        operands = [f for f in node.factors if not isinstance(f, (Number, Delta))]
        deltas = [f for f in node.factors if isinstance(f, Delta)]
        coefficient = Fraction(1)
        for factor in node.factors:
            if isinstance(factor, Number):
                coefficient *= factor.value
        parts = [self.values[f] for f in operands]
        sizes, origin = self.merge_sizes(parts)
        return self._contract(node, operands, node.out, sizes, origin, deltas, coefficient)

    def _contract(
        self, node, operands, out, sizes, origin, extra_deltas=(), coefficient=Fraction(1)
    ) -> Value:
        """Contract operands, with δ indices merged first and any kept δ written at the end."""
        deltas = list(extra_deltas)
        # Merge each δ's indices into one class (union-find over index names).
        parent: dict[str, str] = {}

        def find(i: str) -> str:
            while parent.get(i, i) != i:
                i = parent[i]
            return i

        for delta in deltas:
            first = find(delta.indices[0])
            for index in delta.indices[1:]:
                root = find(index)
                if root != first:
                    parent[root] = first
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
                size = self.size_of(sorted(members)[0], "in a δ")
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
        contraction = _contraction(
            operand_subscripts, "".join(letters[r] for r in kept_roots if r in carried), shapes
        )
        reduced_shape = tuple(class_size[r] for r in kept_roots)
        carried_subscript = "".join(letters[r] for r in kept_roots if r in carried)
        expand = _broadcaster(carried_subscript, reduced_subscript, reduced_shape)
        full_subscript = "".join(letters[find(i)] for i in axes)
        full_shape = tuple(full_sizes[i] for i in axes)
        embed = _embedder(reduced_subscript, full_subscript, full_shape, letters, axes, find)

        if expand is _identity and embed is _identity and factor == 1:
            run = contraction
        else:

            def run(*arrays):
                result = expand(contraction(*arrays))
                if factor != 1:
                    result = result * factor
                return embed(result)

        slots = [self.values[f].slot for f in operands]
        return Value(self.emit(run, slots), axes, full_sizes, full_origin)


def _contraction(subscripts: list[str], output: str, shapes: list[tuple[int, ...]]):
    """A function contracting arrays with these subscripts, planned once.

    opt_einsum picks the pairwise order; each pair runs as the cheapest NumPy call
    (``@``, ``tensordot`` or ``einsum``), which avoids opt_einsum's per-call dispatch.
    """
    if not subscripts:
        return lambda: np.asarray(1.0)
    if len(subscripts) == 1:
        return _single(subscripts[0], output)
    if len(subscripts) == 2:
        return _pair(subscripts[0], subscripts[1], output)
    spec = f"{','.join(subscripts)}->{output}"
    path, _ = opt_einsum.contract_path(spec, *shapes, shapes=True, optimize="auto")
    # Registers: the operands first, then each intermediate as it is made.
    live = list(subscripts)
    registers = list(range(len(subscripts)))
    program = []
    for positions in path:
        positions = sorted(positions)
        taken = [live[p] for p in positions]
        sources = tuple(registers[p] for p in positions)
        for p in reversed(positions):
            del live[p]
            del registers[p]
        needed = set(output).union(*live)
        seen = dict.fromkeys(c for subs in taken for c in subs)
        result = output if not live else "".join(c for c in seen if c in needed)
        if len(taken) == 1:
            run = _single(taken[0], result)
        elif len(taken) == 2:
            run = _pair(taken[0], taken[1], result)
        else:
            run = _einsum(f"{','.join(taken)}->{result}")
        program.append((sources, run))
        live.append(result)
        registers.append(len(subscripts) + len(program) - 1)

    if len(program) == 2 and program[1][0] in ((0, 3), (1, 3), (2, 3)) and len(subscripts) == 3:
        (first_sources, first), (second_sources, second) = program
        i, j = first_sources
        k = second_sources[0]
        return lambda a, b, c: second((a, b, c)[k], first((a, b, c)[i], (a, b, c)[j]))

    def contract(*arrays):
        values = list(arrays)
        for sources, run in program:
            values.append(run(*[values[k] for k in sources]))
        return values[-1]

    return contract


def _einsum(spec: str):
    return lambda *arrays: np.einsum(spec, *arrays)


def _single(subscript: str, output: str):
    if subscript == output:
        return lambda a: a
    return _einsum(f"{subscript}->{output}")


def _pair(left: str, right: str, output: str):
    """The cheapest NumPy call for a two-operand contraction."""
    shared = set(left) & set(right)
    simple = (
        len(set(left)) == len(left)
        and len(set(right)) == len(right)
        and not shared & set(output)
        and set(left) - shared <= set(output)
        and set(right) - shared <= set(output)
    )
    if not simple:
        return _einsum(f"{left},{right}->{output}")
    produced = [c for c in left if c not in shared] + [c for c in right if c not in shared]
    order = tuple(produced.index(c) for c in output)
    if len(left) <= 2 and len(right) <= 2 and len(shared) <= 1:
        if not shared:
            return _then_permute(np.multiply.outer, order)
        (c,) = shared
        flip_left = len(left) == 2 and left[1] != c  # contracted axis must come last
        flip_right = len(right) == 2 and right[0] != c  # and first on the right
        if flip_left and flip_right:
            return _then_permute(lambda a, b: a.T @ b.T, order)
        if flip_left:
            return _then_permute(lambda a, b: a.T @ b, order)
        if flip_right:
            return _then_permute(lambda a, b: a @ b.T, order)
        return _then_permute(np.matmul, order)
    contracted = sorted(shared)
    axes = ([left.index(c) for c in contracted], [right.index(c) for c in contracted])
    return _then_permute(lambda a, b: np.tensordot(a, b, axes), order)


def _then_permute(function, order: tuple[int, ...]):
    """`function`, with its result's axes permuted by `order` unless that is the identity."""
    if order == tuple(range(len(order))):
        return function
    return lambda a, b: np.transpose(function(a, b), order)


def _broadcaster(carried: str, full: str, shape: tuple[int, ...]):
    """Insert axes for kept indices no operand carries (a δ_ii kept as ones)."""
    if carried == full:
        return _identity
    positions = [full.index(c) for c in carried]
    order = sorted(range(len(carried)), key=lambda k: positions[k])

    def expand(a):
        a = np.transpose(a, order) if order != list(range(len(order))) else a
        index = tuple(slice(None) if c in carried else np.newaxis for c in full)
        return np.broadcast_to(a[index], shape)

    return expand


def _embedder(reduced: str, full: str, shape, letters, axes, find):
    """Write a result over merged δ indices onto the diagonal of the full output."""
    if reduced == full:
        return _identity
    view_spec = f"{full}->{reduced}"

    def embed(a):
        result = np.zeros(shape, dtype=np.result_type(a, np.float32))
        np.einsum(view_spec, result)[...] = a
        return result

    return embed


def _identity(a):
    return a


def _aligner(axes: tuple[str, ...], target: tuple[str, ...]):
    """Reshape an array over `axes` to broadcast against `target` (both sorted)."""
    if axes == target:
        return lambda a: a
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


def _postorder(root: Expr) -> list[Expr]:
    """Distinct nodes, children before parents, without recursion."""
    order, seen = [], set()
    stack: list[tuple[Expr, bool]] = [(root, False)]
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


def _tensor_ranks(expr: Expr) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for node in _postorder(expr):
        if isinstance(node, Tensor):
            known = ranks.setdefault(node.name, len(node.indices))
            if known != len(node.indices):
                raise EvaluationError(
                    f"tensor '{node.name}' is used with {known} and with "
                    f"{len(node.indices)} indices"
                )
    return ranks


def _name_sizes(expr: Expr, arrays: Mapping[str, Array]) -> dict[str, int]:
    """Index sizes by name, from every tensor the index appears on (a fallback for δ)."""
    sizes: dict[str, int] = {}
    for node in _postorder(expr):
        if isinstance(node, Tensor):
            for index, size in zip(node.indices, arrays[node.name].shape, strict=True):
                sizes.setdefault(index, size)
    return sizes


def _output_indices(expr: Expr, out) -> tuple[str, ...]:
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


def _check_dims(dims) -> dict[str, int]:
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


def _as_array(name: str, value, rank: int) -> Array:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise EvaluationError(f"array '{name}' could not be read as an array: {error}") from None
    if array.dtype.kind not in "biufc":
        raise EvaluationError(f"array '{name}' must be numeric, but its dtype is {array.dtype}")
    if array.dtype.kind in "biu":
        array = array.astype(np.float64)
    if array.ndim != rank:
        raise EvaluationError(
            f"array '{name}' has {array.ndim} axes (shape {array.shape}) but the expression "
            f"indexes it with {rank} {'index' if rank == 1 else 'indices'}"
        )
    return array


@deep_recursion
def compile(
    expr_or_text, out=None, *, dims: Mapping[str, int] | None = None, var: str = "x"
) -> Compiled:
    """Compile an expression for repeated evaluation.

    Parameters
    ----------
    expr_or_text : Expr or str
    out : str or sequence of str, optional
        The axis order of the result, e.g. ``"kl"``. Default: the free indices sorted.
    dims : mapping, optional
        Sizes for indices that no array fixes, e.g. ``{"i": 3}`` for ``δ_ij`` alone.

    Returns
    -------
    Compiled
        Call it as ``f(A=..., x=...)`` or ``f({"A": ..., "x": ...})``. It plans once per
        set of array shapes and reuses the plan.
    """
    from .syntax import parse

    if isinstance(expr_or_text, str):
        expr = parse(expr_or_text, var=var)
    elif isinstance(expr_or_text, Expr):
        expr = expr_or_text
    else:
        raise IndexCalcError(
            f"expected an expression or notation, got {type(expr_or_text).__name__}"
        )
    return Compiled(expr, out, dims=dims)


@deep_recursion
def evaluate(
    expr_or_text,
    arrays: Mapping[str, object] | None = None,
    *,
    out=None,
    dims: Mapping[str, int] | None = None,
    var: str = "x",
    **kw_arrays,
) -> Array:
    """Evaluate an expression on arrays given by name.

    ``evaluate("A_ij x_j", A=A, x=x)`` returns the array over the free indices in
    alphabetical order (or in the order `out` gives); a scalar is a 0-d array.
    """
    return compile(expr_or_text, out, dims=dims, var=var)(arrays, **kw_arrays)
