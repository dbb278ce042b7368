"""Losses written the way people write them, against NumPy's closed form: time and memory.

Each problem is differentiated from its natural notation (the log of a softmax quotient,
a trace written with δ) and compiled from the original arrays alone, with no `dims`. Its
result is checked against the closed form, then both are timed in interleaved rounds and
each call's peak memory is measured with tracemalloc (NumPy reports its buffers to it).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import indexcalc as ic

from .timing import Thunk, check_agrees, format_ratio, format_time, measure

TIME_RATIO = 1.2  # indexcalc's time / NumPy's, the target
MEMORY_RATIO = 1.5  # indexcalc's peak memory / NumPy's


@dataclass(frozen=True)
class NaturalProblem:
    key: str
    title: str
    notation: str
    wrt: str
    out: str
    arrays: Callable[[int, np.random.Generator], dict[str, np.ndarray]]
    numpy: Callable[..., np.ndarray]


@dataclass
class NaturalRow:
    problem: NaturalProblem
    n: int
    seconds: dict[str, float]  # "indexcalc" and "numpy": median seconds per call
    peak_bytes: dict[str, int]
    largest_intermediate: int  # elements, from the compiled plan's cost

    def time_ratio(self) -> float:
        return self.seconds["indexcalc"] / self.seconds["numpy"]

    def memory_ratio(self) -> float:
        return self.peak_bytes["indexcalc"] / max(self.peak_bytes["numpy"], 1)


def _softmax_arrays(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.zeros(n)
    t[rng.integers(n)] = 1.0
    return {"W": rng.standard_normal((n, n)) * n**-0.5, "x": rng.standard_normal(n), "t": t}


def _softmax_gradient(W, x, t):
    z = W @ x
    p = np.exp(z - z.max())
    p /= p.sum()
    return np.outer(p * t.sum() - t, x)


def _layer_arrays(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"W": rng.standard_normal((n, n)) * n**-0.5, "x": rng.standard_normal(n)}


def _layer_jacobian(W, x):
    return (1 - np.tanh(W @ x) ** 2)[:, None] * W


def _trace_arrays(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"B": rng.standard_normal((n, n)), "X": rng.standard_normal((n, n))}


def _square_arrays(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"A": rng.standard_normal((n, n)) * n**-0.5}


NATURAL = {
    p.key: p
    for p in (
        NaturalProblem(
            "softmax-ce",
            "softmax cross-entropy, log of the quotient, ∂/∂W",
            "-sum_i(t_i log(exp(W_ij x_j) / sum_k(exp(W_kl x_l))))",
            "W_pq",
            "pq",
            _softmax_arrays,
            _softmax_gradient,
        ),
        NaturalProblem(
            "layer-jacobian",
            "linear layer tanh(W x), Jacobian ∂/∂x",
            "tanh(W_ij x_j)",
            "x_k",
            "ik",
            _layer_arrays,
            _layer_jacobian,
        ),
        NaturalProblem(
            "trace-xtbx",
            "d tr(XᵀBX)/dX",
            "X_ji B_jk X_ki",
            "X_pq",
            "pq",
            _trace_arrays,
            lambda B, X: (B + B.T) @ X,
        ),
        NaturalProblem(
            "trace-square",
            "d tr((I−A)²)/dA",
            "(δ_ij - A_ij)(δ_ji - A_ji)",
            "A_pq",
            "pq",
            _square_arrays,
            lambda A: -2 * (np.eye(len(A)) - A).T,
        ),
    )
}


def peak_bytes(thunk: Thunk) -> int:
    """The most memory one call holds at once, above what was allocated before it."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        thunk()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def run_natural_problem(
    problem: NaturalProblem, n: int, *, repeats: int, min_sample: float, seed: int = 0
) -> NaturalRow:
    """Check indexcalc against the closed form, then time both and measure their memory."""
    arrays = problem.arrays(n, np.random.default_rng(seed))
    compiled = ic.compile(ic.diff(problem.notation, problem.wrt), problem.out)
    thunks = {"indexcalc": lambda: compiled(arrays), "numpy": lambda: problem.numpy(**arrays)}
    check_agrees(f"indexcalc, {problem.key}, n={n}", thunks["indexcalc"](), thunks["numpy"]())
    seconds = measure(thunks, repeats=repeats, min_sample=min_sample)
    peaks = {name: peak_bytes(thunk) for name, thunk in thunks.items()}
    largest = compiled.cost(arrays).largest_intermediate
    return NaturalRow(problem, n, seconds, peaks, largest)


def run_natural(
    sizes: tuple[int, ...], *, repeats: int, min_sample: float, progress=lambda _: None
) -> list[NaturalRow]:
    rows = []
    for problem in NATURAL.values():
        for n in sizes:
            row = run_natural_problem(problem, n, repeats=repeats, min_sample=min_sample)
            progress(
                f"{problem.key:<16} n={n:<5} time {row.time_ratio():.2f}x numpy, "
                f"peak memory {row.memory_ratio():.2f}x"
            )
            rows.append(row)
    return rows


def natural_table(rows: list[NaturalRow]) -> list[str]:
    """Markdown rows: time and peak memory of indexcalc and NumPy, and their ratios."""
    lines = [
        "| problem | n | indexcalc | NumPy | time ratio | indexcalc peak | NumPy peak "
        "| memory ratio | largest intermediate |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        peaks = [f"{row.peak_bytes[k] / 2**20:.2f} MiB" for k in ("indexcalc", "numpy")]
        lines.append(
            f"| {row.problem.title} | {row.n} | {format_time(row.seconds['indexcalc'])} "
            f"| {format_time(row.seconds['numpy'])} | {format_ratio(row.time_ratio())} "
            f"| {peaks[0]} | {peaks[1]} | {format_ratio(row.memory_ratio())} "
            f"| {row.largest_intermediate:,} |"
        )
    return lines
