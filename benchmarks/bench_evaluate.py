"""Compiled indexcalc against hand-written NumPy, side by side in one process.

Each case is differentiated and compiled once. Its result is checked against the NumPy
formula, and then both are timed with `timeit`: warm-up calls first, then the median of
repeated runs, alternating between the two. The ratio is indexcalc time / NumPy time, so
1.0 means as fast as NumPy. On a loaded machine the ratios of the BLAS-bound cases vary
from run to run; compare several runs.

Run:  PYTHONPATH=. python benchmarks/bench_evaluate.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import indexcalc as ic

RNG = np.random.default_rng(0)


@dataclass
class Case:
    """One comparison: a compiled expression and the NumPy a person would write."""

    name: str
    size: str
    indexcalc: Callable[[], np.ndarray]
    numpy: Callable[[], np.ndarray]
    target: float  # the ratio issue 4 asks for


def _sigmoid(u: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * u) + 1)


def quadratic_form(n: int) -> list[Case]:
    A, x = RNG.standard_normal((n, n)), RNG.standard_normal(n)
    gradient = ic.compile(ic.diff("x_i A_ij x_j", "x_k"))
    hessian = ic.compile(ic.diff("x_i A_ij x_j", ["x_k", "x_l"]))
    return [
        Case(
            "grad x_i A_ij x_j",
            f"n={n}",
            lambda: gradient(A=A, x=x),
            lambda: A @ x + x @ A,
            1.2,
        ),
        Case(
            "hess x_i A_ij x_j",
            f"n={n}",
            lambda: hessian(A=A, x=x),
            lambda: A + A.T,
            1.2,
        ),
    ]


def matrix_factorisation(n: int) -> Case:
    X, U, V = (RNG.standard_normal((n, n)) for _ in range(3))
    gradient = ic.compile(ic.diff("(X_ij - U_ik V_kj)(X_ij - U_il V_lj)", "V_ab"))
    return Case(
        "grad_V |X - U V|^2",
        f"n={n}",
        lambda: gradient(X=X, U=U, V=V),
        lambda: -2 * U.T @ (X - U @ V),
        1.2,
    )


def logistic_regression(m: int, n: int) -> list[Case]:
    X = RNG.standard_normal((m, n)) / np.sqrt(n)
    y = RNG.choice([-1.0, 1.0], m)
    w = RNG.standard_normal(n)
    loss = "sum_i(log(1 + exp(-y_i X_ij w_j)))"
    gradient = ic.compile(ic.diff(loss, "w_k"))
    hessian = ic.compile(ic.diff(loss, ["w_k", "w_l"]))

    def numpy_gradient():
        return X.T @ (-y * _sigmoid(-y * (X @ w)))

    def numpy_hessian():
        s = _sigmoid(y * (X @ w))
        return X.T @ ((s * (1 - s))[:, None] * X)

    return [
        Case(
            "grad logistic",
            f"X {m}x{n}",
            lambda: gradient(X=X, y=y, w=w),
            numpy_gradient,
            1.2,
        ),
        Case(
            "hess logistic",
            f"X {m}x{n}",
            lambda: hessian(X=X, y=y, w=w),
            numpy_hessian,
            1.2,
        ),
    ]


def tanh_mlp(batch: int, inputs: int, hidden: int, outputs: int) -> list[Case]:
    X = RNG.standard_normal((batch, inputs))
    T = RNG.standard_normal((batch, outputs))
    W = RNG.standard_normal((hidden, inputs)) / np.sqrt(inputs)
    V = RNG.standard_normal((outputs, hidden)) / np.sqrt(hidden)
    loss = "sum_{nk}((V_ki tanh(W_ij X_nj) - T_nk)^2)"
    grad_W = ic.compile(ic.diff(loss, "W_ab"))
    grad_V = ic.compile(ic.diff(loss, "V_ab"))

    def numpy_grad_W():
        H = np.tanh(X @ W.T)
        R = H @ V.T - T
        return (2 * (R @ V) * (1 - H**2)).T @ X

    def numpy_grad_V():
        H = np.tanh(X @ W.T)
        return 2 * (H @ V.T - T).T @ H

    size = f"{batch}x{inputs}->{hidden}->{outputs}"
    return [
        Case("grad_W tanh MLP", size, lambda: grad_W(X=X, T=T, W=W, V=V), numpy_grad_W, 1.2),
        Case("grad_V tanh MLP", size, lambda: grad_V(X=X, T=T, W=W, V=V), numpy_grad_V, 1.2),
    ]


def call_overhead(n: int) -> Case:
    A, x = RNG.standard_normal((n, n)), RNG.standard_normal(n)
    f = ic.compile("x_i A_ij x_j")
    return Case("overhead x_i A_ij x_j", f"n={n}", lambda: f(A=A, x=x), lambda: x @ A @ x, 3.0)


def _calls_per_run(function: Callable[[], object], budget: float) -> int:
    """How many calls make one timed run last about `budget` seconds (after warm-up)."""
    for _ in range(3):
        function()
    number, elapsed = timeit.Timer(function).autorange()
    return max(1, int(number * budget / max(elapsed, 1e-9)))


def compare(case: Case, repeat: int, budget: float) -> tuple[float, float]:
    """Median seconds per call of indexcalc and of NumPy.

    The runs alternate between the two, so load from other processes hits both alike.
    """
    ours, theirs = [], []
    functions = ((case.indexcalc, ours), (case.numpy, theirs))
    numbers = [_calls_per_run(function, budget) for function, _ in functions]
    for _ in range(repeat):
        for (function, times), number in zip(functions, numbers, strict=True):
            times.append(timeit.Timer(function).timeit(number) / number)
    return statistics.median(ours), statistics.median(theirs)


def _format_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    options = parser.parse_args()
    repeat, budget = (5, 0.05) if options.quick else (9, 0.15)
    scale = 4 if options.quick else 1

    cases = [
        *quadratic_form(1000 // scale),
        *(matrix_factorisation(n // scale) for n in (200, 500, 1000)),
        *logistic_regression(2000 // scale, 1000 // scale),
        *tanh_mlp(1000 // scale, 784 // scale, 256 // scale, 10),
        call_overhead(3),
    ]
    for case in cases:
        np.testing.assert_allclose(
            np.asarray(case.indexcalc()), case.numpy(), rtol=1e-8, atol=1e-8, err_msg=case.name
        )

    header = f"{'case':<24}{'size':<22}{'indexcalc':>11}{'numpy':>11}{'ratio':>8}{'target':>8}"
    print(header)
    print("-" * len(header))
    for case in cases:
        ours, theirs = compare(case, repeat, budget)
        ratio = ours / theirs
        flag = "" if ratio <= case.target else "  over"
        print(
            f"{case.name:<24}{case.size:<22}{_format_time(ours):>11}{_format_time(theirs):>11}"
            f"{ratio:>8.2f}{'≤' + format(case.target, '.1f'):>8}{flag}"
        )


if __name__ == "__main__":
    main()
