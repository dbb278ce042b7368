"""Expression → evaluation: a plan (see `plan.py`) turned into calls on an array library.

`compile` turns expressions into a callable. On the first call with a given set of array
shapes it plans (`make_plan`), then turns each step of the plan into a call on the
arrays' library, NumPy's cheapest for each contraction step (``@``, ``tensordot``) or the
array API's; later calls with the same shapes only run those calls. Code generation
prints the same plan, so evaluated and generated code compute alike.
"""

from __future__ import annotations

import operator
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from functools import reduce

import numpy as np

from .backends import BACKENDS, Backend, identity, resolve
from .dispatch import Pass
from .errors import EvaluationError, IndexCalcError
from .expr import Derivative, Expr, Tensor
from .plan import (
    Add,
    AddToDiagonal,
    Apply,
    Argument,
    Broadcast,
    Combine,
    Constant,
    Contract,
    Copy,
    Cost,
    Embed,
    Fill,
    LeviCivita,
    LogAddExp,
    LogSigmoid,
    LogSumExp,
    Maximum,
    Multiply,
    Plan,
    Raise,
    Reindex,
    ShiftedExp,
    Step,
    levi_civita,
    make_plan,
    postorder,
)
from .simplify import simplify
from .sizes import check_dims, output_indices, size_inputs
from .syntax import parse

Array = np.ndarray


class Program:
    """A plan for one shape signature as calls on one array library; running it does
    no planning."""

    def __init__(
        self, plan: Plan, backend: Backend, names: Sequence[str], like: list, several: bool
    ):
        self.plan = plan
        self.cost = plan.cost
        self.size = len(plan.steps)
        position = {name: k for k, name in enumerate(names)}
        self.inputs = [
            (slot, position[step.operation.name])
            for slot, step in enumerate(plan.steps)
            if isinstance(step.operation, Argument)
        ]
        # Each intermediate is let go after its last use, so peak memory is what is live.
        last_use: dict[int, int] = {}
        for slot, step in enumerate(plan.steps):
            for k in step.inputs:
                last_use[k] = slot
        kept = set(plan.results)
        done_after: dict[int, list[int]] = {}
        for k, slot in last_use.items():
            if k not in kept:
                done_after.setdefault(slot, []).append(k)
        calls = StepCalls(backend, like)
        self.program = [
            (slot, calls(step), step.inputs, tuple(done_after.get(slot, ())))
            for slot, step in enumerate(plan.steps)
            if not isinstance(step.operation, Argument)
        ]
        self.results = plan.results if several else plan.results[0]
        # A scalar result is a 0-d array of the backend, never a NumPy scalar.
        self.scalars = [k for k, out in enumerate(plan.outs) if not out]
        self.scalar = backend.scalar

    def run(self, arrays: Sequence[object]):
        """Run on the input arrays, given in the order of the compiled names; several
        results come back as a tuple."""
        values: list = [None] * self.size
        for slot, position in self.inputs:
            values[slot] = arrays[position]
        for slot, run, inputs, done in self.program:
            if len(inputs) == 1:
                values[slot] = run(values[inputs[0]])
            elif len(inputs) == 2:
                values[slot] = run(values[inputs[0]], values[inputs[1]])
            else:
                values[slot] = run(*[values[k] for k in inputs])
            for k in done:
                values[k] = None
        if isinstance(self.results, tuple):
            results = [values[slot] for slot in self.results]
            for k in self.scalars:
                results[k] = self.scalar(results[k])
            return tuple(results)
        if self.scalars:
            return self.scalar(values[self.results])
        return values[self.results]


class StepCalls(Pass):
    """The call that computes each kind of plan step with one backend: one rule per step."""

    prefix = "_call_"
    description = "evaluation"

    def __init__(self, backend: Backend, like: list):
        self.backend = backend
        self.like = like  # the input arrays, whose library and dtype constants take

    def __call__(self, step: Step) -> Callable:
        return self.dispatch(step.operation)

    def _call_Constant(self, operation: Constant) -> Callable:
        constant = operation.value
        return lambda: constant

    def _call_LeviCivita(self, operation: LeviCivita) -> Callable:
        array = np.einsum(operation.spec, levi_civita(operation.rank))
        return self.backend.constant(array, self.like)

    def _call_Reindex(self, operation: Reindex) -> Callable:
        return self.backend.reindex(operation.spec, operation.final)

    def _call_Apply(self, operation: Apply) -> Callable:
        return self.backend.function(operation.function)

    def _call_Raise(self, operation: Raise) -> Callable:
        align_base = _aligner(*operation.base)
        if operation.power is None:  # a number exponent
            exponent = operation.exponent
            return lambda b: align_base(b) ** exponent
        align_power = _aligner(*operation.power)
        return lambda b, e: align_base(b) ** align_power(e)

    def _call_Add(self, operation: Add) -> Callable:
        aligners = [_aligner(*terms) for terms in operation.terms]
        if len(aligners) == 2:
            first, second = aligners
            return lambda a, b: first(a) + second(b)
        return lambda *terms: reduce(
            operator.add, (a(t) for a, t in zip(aligners, terms, strict=True))
        )

    def _call_AddToDiagonal(self, operation: AddToDiagonal) -> Callable:
        return self.backend.add_to_diagonal(_aligner(*operation.align), operation.value)

    def _call_Multiply(self, operation: Multiply) -> Callable:
        return lambda *values: reduce(operator.mul, values)

    def _call_Contract(self, operation: Contract) -> Callable:
        if operation.subscripts:
            contraction = self.backend.contraction(operation.subscripts, operation.path)
        else:  # a product of δs and numbers: ones in the arrays' dtype, not float64's
            contraction = self.backend.constant(np.ones(()), self.like)
        factor = operation.coefficient
        for dim in operation.dims:
            factor *= dim.value
        if factor == 1:
            return contraction
        if operation.scaled is not None:
            return _scaled(contraction, operation.scaled, len(operation.subscripts), factor)
        return lambda *arrays: contraction(*arrays) * factor

    def _call_Broadcast(self, operation: Broadcast) -> Callable:
        shape = tuple(d.value for d in operation.shape)
        return self.backend.broadcaster(operation.carried, operation.full, shape)

    def _call_Embed(self, operation: Embed) -> Callable:
        shape = tuple(d.value for d in operation.shape)
        return self.backend.embedder(operation.reduced, operation.full, shape)

    def _call_Fill(self, operation: Fill) -> Callable:
        return self.backend.broadcast_copy(tuple(d.value for d in operation.shape))

    def _call_Copy(self, operation: Copy) -> Callable:
        return self.backend.copy

    def _call_LogSumExp(self, operation: LogSumExp) -> Callable:
        return self.backend.log_sum_exp(operation.positions)

    def _call_Combine(self, operation: Combine) -> Callable:
        aligners = [_aligner(*terms) for terms in operation.terms]
        return self.backend.combine(aligners, operation.coefficients, operation.constant)

    def _call_Maximum(self, operation: Maximum) -> Callable:
        return self.backend.maximum(operation.positions)

    def _call_ShiftedExp(self, operation: ShiftedExp) -> Callable:
        return self.backend.shifted_exp(_aligner(*operation.shift))

    def _call_LogAddExp(self, operation: LogAddExp) -> Callable:
        aligners = [_aligner(*terms) for terms in operation.terms]
        return self.backend.log_add_exp(aligners, operation.constant)

    def _call_LogSigmoid(self, operation: LogSigmoid) -> Callable:
        return self.backend.log_sigmoid(operation.negated)


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
        roots = [expr] if isinstance(expr, Expr) else list(expr)
        if not roots:
            raise EvaluationError("nothing to compile: the list of expressions is empty")
        for k, root in enumerate(roots):
            if any(isinstance(n, Derivative) for n in postorder(root)):
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
        self._plans: dict[tuple, Program] = {}
        self._planning = threading.Lock()  # one plan per key when threads call at once
        self.plan_count = 0

    @property
    def inputs(self) -> tuple[str, ...]:
        """The names of the arrays the expression needs, sorted."""
        return self._names

    def _size_key(self, given: Mapping[str, object]) -> tuple:
        """What a plan depends on of the optional arrays that only size δs (W for
        ∂(W x)/∂W): their shapes and dtypes, as given."""
        return tuple(
            (getattr(given.get(name), "shape", None), getattr(given.get(name), "dtype", None))
            for name in self.size_inputs
        )

    def __call__(self, arrays: Mapping[str, object] | None = None, /, **kw_arrays) -> Array:
        try:
            return self._call(arrays, kw_arrays)
        except MemoryError as error:  # a user's sizes, not a bug: say so, as an error of ours
            raise EvaluationError(
                f"not enough memory for the arrays this evaluation makes ({error}); "
                "compile(...).cost(arrays) tells their size before running"
            ) from None

    def _call(self, arrays: Mapping[str, object] | None, kw_arrays: dict) -> Array:
        given = _given(arrays, kw_arrays)
        try:
            values = [given[name] for name in self._names]
        except KeyError:
            values = None
        if values is not None and self.backend in ("numpy", "auto"):
            # Fast path: NumPy arrays whose shapes and dtypes were planned before.
            key = tuple([(a.shape, a.dtype) if type(a) is np.ndarray else None for a in values])
            if self.size_inputs:
                key += self._size_key(given)
            plan = self._plans.get(key)
            if plan is not None:
                return plan.run(values)
        program, prepared = self._planned(given)
        return program.run(prepared)

    def cost(self, arrays: Mapping[str, object] | None = None, /, **kw_arrays) -> Cost:
        """What evaluating on arrays of these shapes costs, planned but not run: the
        largest array any step makes and the floating-point operations, as opt_einsum's
        `PathInfo` counts them for contractions (one per element for elementwise steps).

        ``f.cost(W=W, x=x).largest_intermediate`` is in elements.
        """
        program, _ = self._planned(_given(arrays, kw_arrays))
        return program.cost

    def plan(self, arrays: Mapping[str, object] | None = None, /, **kw_arrays) -> Plan:
        """The plan (see `indexcalc.plan`) evaluation runs for arrays of these shapes."""
        program, _ = self._planned(_given(arrays, kw_arrays))
        return program.plan

    def _planned(self, given: Mapping[str, object]) -> tuple[Program, list]:
        """The program for these arrays (planned once per shape signature) and the arrays
        as it takes them."""
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
        size_key = self._size_key(given)
        if self.size_inputs:
            key = (*key, *size_key)
        with self._planning:
            program = self._plans.get(key)
            if program is None:
                shapes = {n: tuple(a.shape) for n, a in zip(self._names, prepared, strict=True)}
                for name, (shape, _) in zip(self.size_inputs, size_key, strict=True):
                    if shape is not None:
                        shapes[name] = tuple(shape)
                plan = make_plan(self.roots, self.outs, shapes, self.dims)
                # Constants take the dtype of the arrays, including those that only size a δ.
                sized = [given[n] for n in self.size_inputs if hasattr(given.get(n), "dtype")]
                program = Program(plan, backend, self._names, [*prepared, *sized], self.several)
                self._plans[key] = program
                self.plan_count += 1
        return program, prepared

    def __repr__(self) -> str:
        pairs = zip(self.roots, self.outs, strict=True)
        shown = ", ".join(f"{r} -> {''.join(o) or 'scalar'}" for r, o in pairs)
        return f"<compiled {shown}>"


def _given(arrays, kw_arrays) -> dict[str, object]:
    """Arrays given by name, as a mapping, keywords or both."""
    if arrays is not None and not isinstance(arrays, Mapping):
        raise EvaluationError(
            f"arrays must be given by name, as a mapping or keywords, not {type(arrays).__name__}"
        )
    given = {**arrays, **kw_arrays} if arrays else kw_arrays
    # Names as the parser reads them (NFKC, as Python does): µ is μ, ｘ is x.
    return {
        unicodedata.normalize("NFKC", k) if isinstance(k, str) else k: v for k, v in given.items()
    }


def _scaled(contraction, position: int, count: int, factor):
    """`contraction` with its operand at `position` multiplied by `factor` first."""
    if count == 1:
        return lambda a: contraction(a * factor)
    if count == 2:
        if position == 0:
            return lambda a, b: contraction(a * factor, b)
        return lambda a, b: contraction(a, b * factor)

    def run(*arrays):
        scaled = list(arrays)
        scaled[position] = scaled[position] * factor
        return contraction(*scaled)

    return run


def _aligner(axes: tuple[str, ...], target: tuple[str, ...]):
    """Reshape an array over `axes` to broadcast against `target` (both sorted)."""
    if axes == target or not axes:
        return identity
    index = tuple(slice(None) if i in axes else np.newaxis for i in target)
    return lambda a: a[index]


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
