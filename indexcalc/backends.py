"""Array backends: the few array operations a compiled plan performs, per library.

`Backend` holds the steps every library shares, built from a few primitives.
`NumpyBackend` is the default and the fast path: pairwise contractions run as ``@``,
``tensordot`` or ``einsum`` in the order opt_einsum plans. `ArrayApiBackend` serves JAX,
PyTorch, CuPy and dask: contractions go through opt_einsum's backend dispatch and
elementwise functions through the inputs' array API namespace (array_api_compat), so
results stay on the backend, on its device, and dask stays lazy.
"""

from __future__ import annotations

import importlib
import itertools
import math
import string
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import opt_einsum

from .errors import EvaluationError
from .functions import FUNCTIONS

BACKENDS = ("numpy", "auto", "jax", "torch", "cupy", "dask")

# Where each backend's array API namespace lives, and the extra that installs it.
_NAMESPACES = {
    "jax": ("jax.numpy", "jax"),
    "torch": ("array_api_compat.torch", "torch"),
    "cupy": ("array_api_compat.cupy", "cupy"),
    "dask": ("array_api_compat.dask.array", "dask"),
}


def identity(a):
    return a


def library_of(value) -> str:
    """Which array library `value` belongs to; lists, scalars and NumPy count as numpy."""
    if isinstance(value, (np.ndarray, np.generic, int, float, complex, list, tuple)):
        return "numpy"
    try:
        import array_api_compat
    except ImportError:  # the core install: recognise the others by their module
        module = type(value).__module__.split(".")[0]
        known = {"torch": "torch", "jax": "jax", "jaxlib": "jax", "cupy": "cupy", "dask": "dask"}
        return known.get(module, "numpy")

    checks = (
        ("torch", array_api_compat.is_torch_array),
        ("jax", array_api_compat.is_jax_array),
        ("cupy", array_api_compat.is_cupy_array),
        ("dask", array_api_compat.is_dask_array),
    )
    for name, check in checks:
        if check(value):
            return name
    return "numpy"


def resolve(requested: str, arrays: dict[str, object]) -> Backend:
    """The backend for these arrays, given what the caller asked for."""
    if requested not in BACKENDS:
        raise EvaluationError(f"unknown backend {requested!r}; choose one of {', '.join(BACKENDS)}")
    libraries = {name: library_of(value) for name, value in arrays.items()}
    foreign = {lib for lib in libraries.values() if lib != "numpy"}
    if requested == "auto":
        if len(foreign) > 1 or (foreign and "numpy" in libraries.values()):
            raise EvaluationError(
                f"the arrays mix libraries ({_describe(libraries)}); pass backend= to say "
                f"which one to convert to, e.g. backend={sorted(foreign)[0]!r}"
            )
        requested = foreign.pop() if foreign else "numpy"
    others = sorted(foreign - {requested})
    if others:
        raise EvaluationError(
            f"backend {requested!r} cannot take {others[0]} arrays ({_describe(libraries)}); "
            f"indexcalc does not convert them silently: pass backend={others[0]!r} to "
            f"evaluate with {others[0]} (NumPy inputs are then converted), or convert them yourself"
        )
    if requested == "numpy":
        return NUMPY
    return ArrayApiBackend(requested, arrays)


def _describe(libraries: dict[str, str]) -> str:
    return ", ".join(f"{name}: {lib}" for name, lib in sorted(libraries.items()))


class Backend:
    """What a compiled plan needs from an array library. Subclasses give the primitives
    (reading arrays, constants, permutations, einsum, elementwise functions, the cheapest
    pairwise contraction); the steps built from them are shared here."""

    name: str
    xp: Any  # the library's array API namespace

    # -- primitives -----------------------------------------------------------------------

    def prepare(self, name: str, value, rank: int):
        """The input `value` for tensor `name` as this library's array, checked."""
        raise NotImplementedError

    def key(self, arrays: Sequence) -> tuple:
        """What a plan depends on: the arrays' shapes and dtypes (and device)."""
        raise NotImplementedError

    def scalar(self, value):
        """A 0-d array of this library."""
        raise NotImplementedError

    def constant(self, array: np.ndarray, like: Sequence) -> Callable:
        raise NotImplementedError

    def unify(self, arrays: list) -> list:
        raise NotImplementedError

    def copy(self, a):
        raise NotImplementedError

    def broadcast_copy(self, shape: tuple[int, ...]) -> Callable:
        raise NotImplementedError

    def broadcast_to(self, a, shape):
        raise NotImplementedError

    def permute(self, order: tuple[int, ...], final: bool = False) -> Callable:
        raise NotImplementedError

    def function(self, name: str) -> Callable:
        raise NotImplementedError

    def einsum(self, spec: str) -> Callable:
        raise NotImplementedError

    def single(self, subscript: str, output: str) -> Callable:
        raise NotImplementedError

    def pair(self, left: str, right: str, output: str) -> Callable:
        raise NotImplementedError

    def add_to_diagonal(self, align: Callable, value: float) -> Callable:
        raise NotImplementedError

    def embedder(self, reduced: str, full: str, shape: tuple[int, ...]) -> Callable:
        raise NotImplementedError

    def constant_like(self, value: float, a):
        """`value` as an operand of an elementwise function with the array `a`."""
        return self.xp.full_like(a, value)

    def is_complex(self, a) -> bool:
        return self.xp.isdtype(a.dtype, "complex floating")

    # -- logarithms, computed without overflow ---------------------------------------------

    def shift(self, a, positions: tuple[int, ...], keepdims: bool = False):
        """The largest element (real part) over the axes at `positions`; 0 where that is
        not finite, so that subtracting it never makes a nan."""
        xp = self.xp
        largest = xp.max(xp.real(a) if self.is_complex(a) else a, axis=positions, keepdims=keepdims)
        return xp.where(xp.isfinite(largest), largest, xp.zeros_like(largest))

    def logaddexp(self, a, b):
        """log(e^a + e^b) without overflow; as written for complex numbers."""
        xp = self.xp
        if self.is_complex(a) or self.is_complex(b):
            return xp.log(xp.exp(a) + xp.exp(b))
        return xp.logaddexp(a, b)

    def combine(
        self, aligners: Sequence[Callable], coefficients: Sequence[float], constant: float
    ) -> Callable:
        """Σ c_k a_k + constant, each term aligned: a sum of logarithms."""
        terms = list(zip(aligners, coefficients, strict=True))

        def run(*arrays):
            (align, c), *others = terms
            first = align(arrays[0])
            total = first if c == 1 else -first if c == -1 else c * first
            for (align, c), array in zip(others, arrays[1:], strict=True):
                a = align(array)
                total = total + a if c == 1 else total - a if c == -1 else total + c * a
            return total + constant if constant else total

        return run

    def maximum(self, positions: tuple[int, ...]) -> Callable:
        return lambda a: self.shift(a, positions)

    def log_sum_exp(self, positions: tuple[int, ...]) -> Callable:
        """log Σ exp(a) over the axes at `positions`, the largest element taken out first."""
        xp = self.xp

        def run(a):
            largest = self.shift(a, positions, keepdims=True)
            total = xp.sum(xp.exp(a - largest), axis=positions)
            return xp.log(total) + xp.squeeze(largest, axis=positions)

        return run

    def shifted_exp(self, align: Callable) -> Callable:
        """exp(a − m), with m aligned to a's axes."""
        xp = self.xp
        return lambda a, m: xp.exp(a - align(m))

    def log_add_exp(self, aligners: Sequence[Callable], constant: float | None) -> Callable:
        """log Σ_t exp(a_t), elementwise, each term aligned, and `constant` one more term."""

        def run(*terms):
            aligned = [align(t) for align, t in zip(aligners, terms, strict=True)]
            total = aligned[0]
            for term in aligned[1:]:
                total = self.logaddexp(total, term)
            if constant is not None:
                total = self.logaddexp(self.constant_like(constant, total), total)
            return total

        return run

    def log_sigmoid(self, negated: bool) -> Callable:
        """log σ(u) = −log(1 + e^−u), or log(1 − σ(u)) = −log(1 + e^u) when `negated`."""
        if negated:
            return lambda u: -self.logaddexp(self.constant_like(0.0, u), u)
        return lambda u: -self.logaddexp(self.constant_like(0.0, u), -u)

    # -- steps built from the primitives --------------------------------------------------

    def contraction(self, subscripts: Sequence[str], path: Sequence) -> Callable:
        """Contract arrays with these subscripts along the planned `path` (see
        `plan.Contract`); each pairwise step runs as the cheapest call, without per-call
        dispatch."""
        if not subscripts:
            one = self.scalar(1.0)
            return lambda: one
        if not path:
            return identity
        live = list(subscripts)
        program = []
        for positions, result in path:
            taken = [live[p] for p in positions]
            for p in reversed(positions):
                del live[p]
            if len(taken) == 1:
                run = self.single(taken[0], result)
            elif len(taken) == 2:
                run = self.pair(taken[0], taken[1], result)
            else:
                run = self.einsum(f"{','.join(taken)}->{result}")
            program.append((positions, run))
            live.append(result)
        if len(program) == 1:
            return program[0][1]  # its positions are all the operands, in order
        if len(subscripts) == 3 and len(program) == 2:
            (i, j), first = program[0]
            second = program[1][1]
            (k,) = set(range(3)) - {i, j}
            return lambda *a: second(a[k], first(a[i], a[j]))

        def contract(*arrays):
            values = list(arrays)
            for positions, run in program:
                taken = [values[p] for p in positions]
                for p in reversed(positions):
                    del values[p]
                values.append(run(*taken))
            return values[-1]

        return contract

    def reindex(self, spec: str, final: bool = False) -> Callable:
        """One operand's axes rearranged: a permutation or a diagonal, a view of it, or a
        new array when `final` (a result)."""
        source, target = spec.split("->")
        if len(set(source)) == len(source) and sorted(source) == sorted(target):
            return self.permute(tuple(source.index(c) for c in target), final)
        view = self.einsum(spec)
        return (lambda a: self.copy(view(a))) if final else view

    def broadcaster(self, carried: str, full: str, shape: tuple[int, ...]) -> Callable:
        """Insert axes for kept indices no operand carries (a δ_ii kept as ones)."""
        if carried == full:
            return identity
        positions = [full.index(c) for c in carried]
        order = sorted(range(len(carried)), key=lambda k: positions[k])
        index = tuple(slice(None) if c in carried else None for c in full)
        transpose = self.permute(tuple(order)) if order != list(range(len(order))) else identity
        return lambda a: self.broadcast_to(transpose(a)[index], shape)


class NumpyBackend(Backend):
    """NumPy, planned down to the cheapest call per contraction step."""

    name = "numpy"
    xp = np

    # -- arrays in and out ----------------------------------------------------------------

    def prepare(self, name: str, value, rank: int) -> np.ndarray:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as error:
            raise EvaluationError(
                f"array '{name}' could not be read as an array: {error}"
            ) from None
        if array.dtype.kind not in "biufc":
            raise EvaluationError(f"array '{name}' must be numeric, but its dtype is {array.dtype}")
        if array.dtype.kind in "biu":
            array = array.astype(np.float64)
        _check_rank(name, array, rank)
        return array

    def key(self, arrays: Sequence[np.ndarray]) -> tuple:
        return tuple([(a.shape, a.dtype) for a in arrays])

    def scalar(self, value) -> np.ndarray:
        return np.asarray(value)

    def constant(self, array: np.ndarray, like: Sequence) -> Callable:
        """A step making a constant in the floating dtype of the arrays `like`, so it
        promotes nothing."""
        dtypes = [a.dtype for a in like] or [np.float64]
        value = array.astype(np.result_type(*dtypes, np.float32))
        return lambda: value

    def unify(self, arrays: list) -> list:
        """The inputs in one floating dtype where the library does not promote by itself."""
        return arrays

    def copy(self, a):
        return np.copy(a)

    def broadcast_copy(self, shape: tuple[int, ...]) -> Callable:
        return lambda a: np.broadcast_to(a, shape).copy()

    def permute(self, order: tuple[int, ...], final: bool = False) -> Callable:
        if final:  # a new C-ordered array, even where the transpose is one already
            return lambda a: np.transpose(a, order).copy()
        return lambda a: a.transpose(order)

    def function(self, name: str) -> Callable:
        return FUNCTIONS[name].numpy

    def constant_like(self, value: float, a):
        return value  # a Python number: weak, so it keeps the array's dtype

    def is_complex(self, a) -> bool:
        return np.iscomplexobj(a)

    def shift(self, a, positions: tuple[int, ...], keepdims: bool = False):
        real = a.real if np.iscomplexobj(a) else a
        if len(positions) == a.ndim and not keepdims:  # to a number, without array calls
            largest = real.max(initial=-np.inf)
            return largest if math.isfinite(largest) else largest.dtype.type(0)
        largest = np.max(real, axis=positions, keepdims=keepdims, initial=-np.inf)
        largest[~np.isfinite(largest)] = 0
        return largest

    def log_sum_exp(self, positions: tuple[int, ...]) -> Callable:
        def run(a):
            if len(positions) == a.ndim:  # a vector's, say: the shift is a number
                largest = self.shift(a, positions)
                return np.log(np.exp(a - largest).sum()) + largest
            largest = self.shift(a, positions, keepdims=True)
            total = np.exp(a - largest).sum(axis=positions)
            return np.log(total) + largest.squeeze(axis=positions)

        return run

    # -- contractions ---------------------------------------------------------------------

    def einsum(self, spec: str) -> Callable:
        spec = numpy_letters(spec)
        return lambda *arrays: np.einsum(spec, *arrays)

    def add_to_diagonal(self, align: Callable, value: float) -> Callable:
        """A new matrix: the input plus `value` on its diagonal."""

        def add(a):
            result = np.array(align(a), dtype=np.result_type(a, 1.0))
            np.einsum("ii->i", result)[...] += value
            return result

        return add

    def single(self, subscript: str, output: str) -> Callable:
        if subscript == output:
            return identity
        if _beyond_letters(subscript + output) and len(set(subscript)) == len(subscript):
            return _summed(subscript, output)
        return self.einsum(f"{subscript}->{output}")

    def pair(self, left: str, right: str, output: str) -> Callable:
        """The cheapest NumPy call for a two-operand contraction."""
        distinct = len(set(left)) == len(left) == len(right) == len(output)
        if distinct and set(left) == set(right) == set(output):  # elementwise
            return _then_permute(_elementwise(left, right), tuple(left.index(c) for c in output))
        shared = set(left) & set(right)
        if (
            shared
            and len(set(left)) == len(left)
            and len(set(right)) == len(right)
            and set(left) | set(right) == set(output)
        ):  # nothing summed: a broadcasting multiply, σ'(u)_i ⊙ W_ik
            first, second = _broadcast(left, output), _broadcast(right, output)
            return lambda a, b: first(a) * second(b)
        simple = (
            len(set(left)) == len(left)
            and len(set(right)) == len(right)
            and not shared & set(output)
            and set(left) - shared <= set(output)
            and set(right) - shared <= set(output)
        )
        distinct = len(set(left)) == len(left) and len(set(right)) == len(right)
        if not simple and distinct and _beyond_letters(left + right):
            # More indices than einsum has letters: multiply, broadcast, then sum.
            union = left + "".join(c for c in right if c not in left)
            first, second = _broadcast(left, union), _broadcast(right, union)
            total = _summed(union, output)
            return lambda a, b: total(first(a) * second(b))
        if not simple:
            return self.einsum(f"{left},{right}->{output}")
        produced = [c for c in left if c not in shared] + [c for c in right if c not in shared]
        order = tuple(produced.index(c) for c in output)
        if len(left) <= 2 and len(right) <= 2 and len(shared) <= 1:
            if not shared and output == right + left:  # the outer product the other way round
                return lambda a, b: np.multiply.outer(b, a)
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

    # -- deltas ---------------------------------------------------------------------------

    def broadcast_to(self, a, shape):
        return np.broadcast_to(a, shape)

    def embedder(self, reduced: str, full: str, shape: tuple[int, ...]) -> Callable:
        """Write a result over merged δ indices onto the diagonal of the full output."""
        if reduced == full:
            return identity
        view = numpy_letters(f"{full}->{reduced}")

        def embed(a):
            result = np.zeros(shape, dtype=np.result_type(a, np.float32))
            np.einsum(view, result)[...] = a
            return result

        return embed


class ArrayApiBackend(Backend):
    """JAX, PyTorch, CuPy or dask through opt_einsum's dispatch and the array API."""

    def __init__(self, name: str, arrays: dict[str, object]):
        self.name = name
        module, extra = _NAMESPACES[name]
        try:
            importlib.import_module("array_api_compat")
            self.xp = importlib.import_module(module)
        except ImportError as error:
            missing = (error.name or module).split(".")[0]
            raise EvaluationError(
                f"backend {name!r} needs the package {missing!r}, which is not installed: "
                f"pip install 'indexcalc[{extra}]'"
            ) from None
        native = [v for v in arrays.values() if library_of(v) == name]
        self.device = _device(native[0]) if native else None

    def prepare(self, name: str, value, rank: int):
        xp = self.xp
        if library_of(value) != self.name:
            value = xp.asarray(NUMPY.prepare(name, value, rank), device=self.device)
        if not (xp.isdtype(value.dtype, ("real floating", "complex floating"))):
            if not xp.isdtype(value.dtype, ("integral", "bool")):
                raise EvaluationError(f"array '{name}' must be numeric, not {value.dtype}")
            value = xp.astype(value, xp.float64)
        _check_rank(name, value, rank)
        return value

    def key(self, arrays) -> tuple:
        return (self.name, str(self.device), *[(tuple(a.shape), str(a.dtype)) for a in arrays])

    def scalar(self, value):
        return self.xp.asarray(value, device=self.device)

    def constant(self, array: np.ndarray, like: Sequence) -> Callable:
        xp, device = self.xp, self.device
        dtype = xp.result_type(*[a.dtype for a in like]) if like else xp.float64
        if self.name == "jax":  # made per call: a constant cached inside a trace would leak
            return lambda: xp.asarray(array, dtype=dtype)
        value = xp.asarray(array, dtype=dtype, device=device)
        return lambda: value

    def unify(self, arrays: list) -> list:
        """torch contractions need operands of one dtype; NumPy's rules pick it."""
        if len({str(a.dtype) for a in arrays}) <= 1:
            return arrays
        dtype = self.xp.result_type(*arrays)
        return [self.xp.astype(a, dtype) for a in arrays]

    def copy(self, a):
        if self.name in ("jax", "dask"):
            return a  # immutable arrays: nothing to protect
        return self.xp.asarray(a, copy=True)

    def broadcast_copy(self, shape: tuple[int, ...]) -> Callable:
        xp = self.xp
        return lambda a: self.copy(xp.broadcast_to(xp.asarray(a, device=self.device), shape))

    def permute(self, order: tuple[int, ...], final: bool = False) -> Callable:
        xp = self.xp
        if final:
            return lambda a: self.copy(xp.permute_dims(a, order))
        return lambda a: xp.permute_dims(a, order)

    def function(self, name: str) -> Callable:
        implementation, xp = FUNCTIONS[name].array_api, self.xp
        return lambda u: implementation(xp, u)

    def einsum(self, spec: str) -> Callable:
        backend = self.name
        return lambda *arrays: opt_einsum.contract(spec, *arrays, backend=backend)

    def single(self, subscript: str, output: str) -> Callable:
        if subscript == output:
            return identity
        return self.einsum(f"{subscript}->{output}")

    def pair(self, left: str, right: str, output: str) -> Callable:
        return self.einsum(f"{left},{right}->{output}")

    def broadcast_to(self, a, shape):
        return self.xp.broadcast_to(a, shape)

    def add_to_diagonal(self, align: Callable, value: float) -> Callable:
        """The matrix plus `value` times the identity (these libraries may not write in
        place)."""
        xp = self.xp

        def add(a):
            a = align(a)
            return a + value * xp.eye(a.shape[0], dtype=a.dtype, device=self.device)

        return add

    def embedder(self, reduced: str, full: str, shape: tuple[int, ...]) -> Callable:
        """Multiply by identity masks to place the result on the output's diagonal."""
        if reduced == full:
            return identity
        symbols = (opt_einsum.get_symbol(k) for k in itertools.count())
        spare = iter(c for c in symbols if c not in full)
        distinct, masks = [], []
        for letter in full:
            if letter in distinct:
                fresh = next(spare)
                masks.append(letter + fresh)
                distinct.append(fresh)
            else:
                distinct.append(letter)
        sizes = dict(zip(distinct, shape, strict=True))
        spec = f"{reduced},{','.join(masks)}->{''.join(distinct)}"
        xp, backend = self.xp, self.name

        def embed(a):
            eyes = [xp.eye(sizes[m[1]], dtype=a.dtype, device=self.device) for m in masks]
            return opt_einsum.contract(spec, a, *eyes, backend=backend)

        return embed


def numpy_letters(spec: str) -> str:
    """An einsum `spec` in the letters NumPy's einsum takes: opt_einsum's symbols beyond
    the 52 letters (a product of many indices) renamed, as few as one call needs."""
    symbols = set(spec) - set(",->")
    if symbols <= set(string.ascii_letters):
        return spec
    if len(symbols) > len(string.ascii_letters):
        raise EvaluationError(
            f"one step of this contraction ({spec}) takes a diagonal over {len(symbols)} "
            f"distinct indices, but einsum takes at most {len(string.ascii_letters)}"
        )
    return opt_einsum.parser.convert_to_valid_einsum_chars(spec)


def _beyond_letters(subscripts: str) -> bool:
    """Whether einsum subscripts use more distinct indices than NumPy's einsum has letters."""
    return len(set(subscripts) - set(",->")) > len(string.ascii_letters)


def _summed(subscript: str, output: str) -> Callable:
    """Sum an operand over its axes not in `output`, the others ordered as `output` (each
    index once): einsum's job, without its limit of 52 letters."""
    axes = tuple(k for k, c in enumerate(subscript) if c not in output)
    kept = [c for c in subscript if c in output]
    order = tuple(kept.index(c) for c in output)
    return lambda a: np.transpose(np.sum(a, axis=axes), order)


def _device(array):
    import array_api_compat

    return array_api_compat.device(array)


def _check_rank(name: str, array, rank: int) -> None:
    if array.ndim != rank:
        raise EvaluationError(
            f"array '{name}' has {array.ndim} axes (shape {tuple(array.shape)}) but the "
            f"expression indexes it with {rank} {'index' if rank == 1 else 'indices'}"
        )


def _elementwise(left: str, right: str):
    """Multiply two operands over the same indices, in `left`'s axis order."""
    if left == right:
        return np.multiply
    order = tuple(right.index(c) for c in left)
    return lambda a, b: a * np.transpose(b, order)


def _broadcast(subscripts: str, output: str) -> Callable:
    """An operand over `subscripts` transposed and expanded to broadcast against `output`."""
    order = tuple(sorted(range(len(subscripts)), key=lambda k: output.index(subscripts[k])))
    index = tuple(slice(None) if c in subscripts else None for c in output)
    if order == tuple(range(len(order))):
        return lambda a: a[index]
    return lambda a: a.transpose(order)[index]


def _then_permute(function, order: tuple[int, ...]):
    """`function`, with its result's axes permuted by `order` unless that is the identity."""
    if order == tuple(range(len(order))):
        return function
    return lambda a, b: function(a, b).transpose(order)


NUMPY = NumpyBackend()
