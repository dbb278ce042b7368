"""Timing of symbolic differentiation and simplification (issue 3's speed targets).

Run from the repository root: ``PYTHONPATH=. python benchmarks/bench_symbolic.py``.
Each figure is the median of five runs, measured with ``time.perf_counter``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import indexcalc as ic
from indexcalc.expr import node_count
from indexcalc.simplify import Algebra

REPEATS = 5
DEPTH = 10


def mlp_loss(depth: int) -> str:
    """h0 = x, h_l = tanh(W_l h_(l-1)), loss = Σ_i (h_L,i − t_i)², with weights W1..WL."""
    lines = ["h0_j = x_j"]
    lines += [f"h{layer}_i = tanh(W{layer}_ij h{layer - 1}_j)" for layer in range(1, depth + 1)]
    lines += [f"loss = sum_i((h{depth}_i - t_i)^2)", "loss"]
    return "; ".join(lines)


def median_ms(run: Callable[[], object]) -> float:
    """The median wall time of `run` over REPEATS calls, in milliseconds, each starting
    with empty simplification caches (a cold start, as in a fresh process)."""
    times = []
    for _ in range(REPEATS):
        Algebra._shared.clear()
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def mlp_gradients(loss: ic.Expr) -> list[ic.Expr]:
    return [ic.diff(loss, f"W{layer}_gh") for layer in range(1, DEPTH + 1)]


def quartic_hessian() -> ic.Expr:
    return ic.diff("(x_i A_ij x_j)^2", ["x_k", "x_l"])


def main() -> None:
    ic.parse("x_i")  # builds the parser once, outside the timings
    text = mlp_loss(DEPTH)
    loss = ic.parse(text)
    cases = [
        (
            f"{DEPTH}-layer MLP loss: ∂/∂W1..W{DEPTH} (parsed once)",
            lambda: mlp_gradients(loss),
            100,
        ),
        (
            f"{DEPTH}-layer MLP loss: ∂/∂W1..W{DEPTH} from text",
            lambda: [ic.diff(text, f"W{layer}_gh") for layer in range(1, DEPTH + 1)],
            None,
        ),
        ("Hessian of (x_i A_ij x_j)^2 from text", quartic_hessian, 20),
    ]
    sizes = {
        cases[0][0]: sum(node_count(g) for g in mlp_gradients(loss)),
        cases[2][0]: node_count(quartic_hessian()),
    }
    header = f"{'case':<48} {'median ms':>10} {'target ms':>10} {'nodes':>6}  status"
    print(header)
    print("-" * len(header))
    for name, run, target in cases:
        elapsed = median_ms(run)
        status = "-" if target is None else ("ok" if elapsed < target else "SLOW")
        print(
            f"{name:<48} {elapsed:>10.2f} {target if target else '-':>10} "
            f"{sizes.get(name, '-'):>6}  {status}"
        )


if __name__ == "__main__":
    main()
