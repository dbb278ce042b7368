"""Symbolic differentiation: indexcalc against SymPy, and derivative size against depth.

Every answer is checked numerically. indexcalc's derivative is compiled and compared with
the closed form; SymPy's, where it returns one, is evaluated on the same arrays by
substituting explicit matrices. A SymPy answer that raises is recorded as an error, and
one that gives the wrong numbers as wrong: those rows have no speed-up.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import indexcalc as ic
from indexcalc.expr import node_count

from .evaluation import derivative_dims
from .problems import Arrays, Derivative
from .timing import Thunk, agrees, median_time

CHECK_SIZE = 4  # the size of the arrays the answers are checked on


@dataclass(frozen=True)
class SymbolicCase:
    """One formula, in indexcalc's notation and as SymPy matrix expressions.

    `sympy_build` returns the SymPy expression, the variable and the number of
    derivatives to take; `sympy_text` shows the same in SymPy's own spelling.
    """

    title: str
    notation: str
    derivative: Derivative
    arrays: Callable[[np.random.Generator], Arrays]
    closed_form: Callable[..., np.ndarray]
    sympy_text: str
    sympy_build: Callable[[object, object], tuple[object, object, int]]


@dataclass
class SymbolicResult:
    """Timings and outcomes for one case."""

    case: SymbolicCase
    indexcalc_time: float
    indexcalc_nodes: int
    indexcalc_correct: bool
    sympy_time: float | None  # None when SymPy is missing or failed
    sympy_outcome: str  # "correct", "wrong: …", "error: …", or why it was not run

    @property
    def speedup(self) -> float | None:
        if self.sympy_time is None or self.sympy_outcome != "correct":
            return None
        return self.sympy_time / self.indexcalc_time


def _vector_and_matrix(rng: np.random.Generator) -> Arrays:
    n = CHECK_SIZE
    return {"A": rng.standard_normal((n, n)), "x": rng.standard_normal(n)}


def _least_squares_arrays(rng: np.random.Generator) -> Arrays:
    n = CHECK_SIZE
    return {
        "A": rng.standard_normal((n, n)),
        "x": rng.standard_normal(n),
        "b": rng.standard_normal(n),
    }


def _trace_arrays(rng: np.random.Generator) -> Arrays:
    n = CHECK_SIZE
    return {"X": rng.standard_normal((n, n)), "B": rng.standard_normal((n, n))}


def _matrix(rng: np.random.Generator) -> Arrays:
    return {"A": rng.standard_normal((CHECK_SIZE, CHECK_SIZE))}


def _squared_form_gradient(A, x):
    return 2 * (x @ A @ x) * (A + A.T) @ x


def _squared_form_hessian(A, x):
    g = (A + A.T) @ x
    return 2 * np.outer(g, g) + 2 * (x @ A @ x) * (A + A.T)


def _symbols(sympy):
    n = sympy.Symbol("n", integer=True, positive=True)
    return n, {
        "x": sympy.MatrixSymbol("x", n, 1),
        "b": sympy.MatrixSymbol("b", n, 1),
        "A": sympy.MatrixSymbol("A", n, n),
        "B": sympy.MatrixSymbol("B", n, n),
        "X": sympy.MatrixSymbol("X", n, n),
    }


def _residual(s):
    return s["A"] * s["x"] - s["b"]


_QUADRATIC = "x_i A_ij x_j"
_SQUARED = "(x_i A_ij x_j)^2"
_LEAST_SQUARES = "(A_ij x_j - b_i)(A_ik x_k - b_i)"
_GRADIENT, _HESSIAN = Derivative(("x_k",), "k"), Derivative(("x_k", "x_l"), "kl")

CASES = (
    SymbolicCase(
        "∇ xᵀAx",
        _QUADRATIC,
        _GRADIENT,
        _vector_and_matrix,
        lambda A, x: (A + A.T) @ x,
        "(x.T*A*x).diff(x)",
        lambda sympy, s: (s["x"].T * s["A"] * s["x"], s["x"], 1),
    ),
    SymbolicCase(
        "∇² xᵀAx",
        _QUADRATIC,
        _HESSIAN,
        _vector_and_matrix,
        lambda A, x: A + A.T,
        "(x.T*A*x).diff(x).diff(x)",
        lambda sympy, s: (s["x"].T * s["A"] * s["x"], s["x"], 2),
    ),
    SymbolicCase(
        "∇ (xᵀAx)²",
        _SQUARED,
        _GRADIENT,
        _vector_and_matrix,
        _squared_form_gradient,
        "((x.T*A*x)**2).diff(x)",
        lambda sympy, s: ((s["x"].T * s["A"] * s["x"]) ** 2, s["x"], 1),
    ),
    SymbolicCase(
        "∇ (xᵀAx)²",
        _SQUARED,
        _GRADIENT,
        _vector_and_matrix,
        _squared_form_gradient,
        "((x.T*A*x)[0, 0]**2).diff(x)",
        lambda sympy, s: ((s["x"].T * s["A"] * s["x"])[0, 0] ** 2, s["x"], 1),
    ),
    SymbolicCase(
        "∇² (xᵀAx)²",
        _SQUARED,
        _HESSIAN,
        _vector_and_matrix,
        _squared_form_hessian,
        "((x.T*A*x)**2).diff(x).diff(x)",
        lambda sympy, s: ((s["x"].T * s["A"] * s["x"]) ** 2, s["x"], 2),
    ),
    SymbolicCase(
        "∇ ‖Ax − b‖²",
        _LEAST_SQUARES,
        _GRADIENT,
        _least_squares_arrays,
        lambda A, x, b: 2 * A.T @ (A @ x - b),
        "((A*x - b).T*(A*x - b)).diff(x)",
        lambda sympy, s: (_residual(s).T * _residual(s), s["x"], 1),
    ),
    SymbolicCase(
        "∇² ‖Ax − b‖²",
        _LEAST_SQUARES,
        _HESSIAN,
        _least_squares_arrays,
        lambda A, x, b: 2 * A.T @ A,
        "((A*x - b).T*(A*x - b)).diff(x).diff(x)",
        lambda sympy, s: (_residual(s).T * _residual(s), s["x"], 2),
    ),
    SymbolicCase(
        "∇_X tr(XᵀBX)",
        "X_ji B_jk X_ki",
        Derivative(("X_gh",), "gh"),
        _trace_arrays,
        lambda X, B: (B + B.T) @ X,
        "Trace(X.T*B*X).diff(X)",
        lambda sympy, s: (sympy.Trace(s["X"].T * s["B"] * s["X"]), s["X"], 1),
    ),
    SymbolicCase(
        "∇_A tr(I − A)²",
        "(δ_ii - A_ii)^2",
        Derivative(("A_gh",), "gh"),
        _matrix,
        lambda A: -2 * (len(A) - np.trace(A)) * np.eye(len(A)),
        "(trace(Identity(n) - A)**2).diff(A)",
        lambda sympy, s: (sympy.trace(sympy.Identity(s["A"].shape[0]) - s["A"]) ** 2, s["A"], 1),
    ),
    SymbolicCase(
        "∇_A tr(I − A)²",
        "(δ_ii - A_ii)^2",
        Derivative(("A_gh",), "gh"),
        _matrix,
        lambda A: -2 * (len(A) - np.trace(A)) * np.eye(len(A)),
        "(Trace(Identity(n) - A)**2).diff(A)",
        lambda sympy, s: (sympy.Trace(sympy.Identity(s["A"].shape[0]) - s["A"]) ** 2, s["A"], 1),
    ),
)


def _fresh_diff(notation: str, variables: list[list[str]]) -> tuple[Thunk, Thunk]:
    """Setup and run thunks: differentiate a freshly parsed expression by each variable.

    The setup drops the previous results, empties indexcalc's simplification caches
    (`ic.clear_caches`) and parses again, so no run finds the caches that the one before
    it filled, as in a fresh process.
    """
    state: dict[str, object] = {}

    def setup():
        state.clear()
        ic.clear_caches()
        gc.collect()
        state["expr"] = ic.parse(notation)

    def run():
        state["results"] = [ic.diff(state["expr"], wrt) for wrt in variables]

    return setup, run


def time_indexcalc(case: SymbolicCase, repeats: int) -> tuple[float, int, bool]:
    """Median time of `diff` (parsing excluded), the result's node count, and its check."""
    wrt = list(case.derivative.wrt)
    setup, run = _fresh_diff(case.notation, [wrt])
    seconds = median_time(run, repeats=repeats, setup=setup)
    result = ic.diff(case.notation, wrt)
    arrays = case.arrays(np.random.default_rng(0))
    compiled = ic.compile(
        result, out=case.derivative.out, dims=derivative_dims(case.derivative, arrays)
    )
    return seconds, node_count(result), agrees(compiled(**arrays), case.closed_form(**arrays))


def time_sympy(sympy, case: SymbolicCase, repeats: int) -> tuple[float | None, str]:
    """Median time of SymPy's `.diff` with its cache cleared, and whether it was right."""
    from sympy.core.cache import clear_cache

    n, symbols = _symbols(sympy)
    try:
        expr, variable, order = case.sympy_build(sympy, symbols)
    except Exception as error:
        return None, f"error building the input: {type(error).__name__}: {error}"

    def run():
        result = expr
        for _ in range(order):
            result = result.diff(variable)
        return result

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = run()
        except Exception as error:
            return None, f"error: {type(error).__name__}: {error}".splitlines()[0][:160]
        seconds = median_time(run, repeats=repeats, setup=clear_cache)
    arrays = case.arrays(np.random.default_rng(0))
    expected = case.closed_form(**arrays)
    try:
        value = _sympy_value(sympy, result, n, symbols, arrays, expected.shape)
    except Exception as error:
        return seconds, f"unchecked: {type(error).__name__} evaluating `{result}`"
    if agrees(value, expected):
        return seconds, "correct"
    return seconds, f"wrong: returns `{_short(result)}`"


def _sympy_value(sympy, result, n, symbols, arrays: Arrays, shape) -> np.ndarray:
    """SymPy's answer evaluated on `arrays`, reshaped to the reference's shape."""
    size = CHECK_SIZE
    substitutions = {}
    for name, array in arrays.items():
        symbol = symbols[name].subs(n, size)
        substitutions[symbol] = sympy.Matrix(array.reshape(symbol.shape))
    value = result.subs(n, size).subs(substitutions).doit()
    if hasattr(value, "tolist"):
        value = np.array(value.tolist(), dtype=float)
    value = np.asarray(value, dtype=float)
    if value.size == int(np.prod(shape)) and value.shape != shape:
        value = value.reshape(shape)
    return value


def _short(expr) -> str:
    text = str(expr)
    return text if len(text) <= 60 else text[:57] + "..."


def run_cases(repeats: int) -> tuple[list[SymbolicResult], str | None]:
    """Every case; the note says why SymPy was skipped, if it was."""
    try:
        import sympy
    except ImportError as error:
        sympy, note = None, f"SymPy skipped: not installed ({error})"
    else:
        note = None
        _warm_up(sympy)
    _warm_up_indexcalc()
    results = []
    for case in CASES:
        seconds, nodes, correct = time_indexcalc(case, repeats)
        if sympy is None:
            sympy_time, outcome = None, "not installed"
        else:
            sympy_time, outcome = time_sympy(sympy, case, repeats)
        results.append(SymbolicResult(case, seconds, nodes, correct, sympy_time, outcome))
    return results, note


def _warm_up(sympy) -> None:
    """SymPy imports parts of itself on first use; keep that out of the timings."""
    _, s = _symbols(sympy)
    (s["x"].T * s["A"] * s["x"]).diff(s["x"]).diff(s["x"])


def _warm_up_indexcalc() -> None:
    """Build the parser once; its construction is not part of differentiating."""
    ic.diff(_QUADRATIC, "x_k")


# -- derivative size against depth -------------------------------------------------------


def mlp_notation(depth: int) -> str:
    """A depth-layer tanh network's squared loss, one definition per layer."""
    layers = ["h1_i = tanh(W1_ij x_j)"]
    layers += [f"h{k}_i = tanh(W{k}_ij h{k - 1}_j)" for k in range(2, depth + 1)]
    return "; ".join([*layers, f"sum_i((h{depth}_i - t_i)^2)"])


@dataclass
class DepthResult:
    """The derivative of a depth-layer MLP loss with respect to its first layer's weights."""

    depth: int
    loss_nodes: int
    gradient_nodes: int
    first_layer_time: float  # ∂/∂W1, the longest chain
    all_layers_time: float  # ∂/∂Wk for every k, each from the same parsed loss
    parse_time: float


def run_depths(depths: range, repeats: int) -> list[DepthResult]:
    """Node counts and times of the gradient against depth."""
    _warm_up_indexcalc()
    results = []
    for depth in depths:
        notation = mlp_notation(depth)
        parse_time = median_time(lambda: ic.parse(notation), repeats=repeats)  # noqa: B023
        setup, first = _fresh_diff(notation, [["W1_gh"]])
        first_time = median_time(first, repeats=repeats, setup=setup)
        setup, every = _fresh_diff(notation, [[f"W{k}_gh"] for k in range(1, depth + 1)])
        all_time = median_time(every, repeats=repeats, setup=setup)
        loss = ic.parse(notation)
        gradient = ic.diff(loss, "W1_gh")
        results.append(
            DepthResult(
                depth, node_count(loss), node_count(gradient), first_time, all_time, parse_time
            )
        )
    return results


def check_depth_gradient(depth: int = 3, size: int = 4) -> bool:
    """The depth-layer gradient agrees with central finite differences (a sanity check)."""
    rng = np.random.default_rng(0)
    arrays = {f"W{k}": rng.standard_normal((size, size)) / 2 for k in range(1, depth + 1)}
    arrays |= {"x": rng.standard_normal(size), "t": rng.standard_normal(size)}
    notation = mlp_notation(depth)
    gradient = ic.compile(ic.diff(notation, "W1_gh"), out="gh")(**arrays)
    loss = ic.compile(notation)
    numeric = np.zeros((size, size))
    step = 1e-6
    for g in range(size):
        for h in range(size):
            plus, minus = dict(arrays), dict(arrays)
            plus["W1"], minus["W1"] = arrays["W1"].copy(), arrays["W1"].copy()
            plus["W1"][g, h] += step
            minus["W1"][g, h] -= step
            numeric[g, h] = (loss(**plus) - loss(**minus)) / (2 * step)
    return agrees(gradient, numeric, rtol=1e-5)
