"""The speed targets of issues 3, 4 and 7, judged against one run's measurements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .evaluation import INDEXCALC, NUMPY, Row, largest
from .natural import MEMORY_RATIO, TIME_RATIO, NaturalRow
from .symbolic import DepthResult, SymbolicResult
from .timing import format_ratio, format_time

HESSIAN_SPEEDUP = 10.0  # over jax.hessian and torch.func.hessian at the largest size
NUMPY_RATIO = 1.2  # compiled time / NumPy time, n >= 200
OVERHEAD_RATIO = 3.0  # compiled time / NumPy time at n = 3
SYMPY_SPEEDUP = 10.0
MLP_LAYERS, MLP_SECONDS = 10, 0.100
SQUARED_HESSIAN_SECONDS = 0.020


@dataclass
class Target:
    """One target: what was asked, what was measured, and whether it was met."""

    issue: int
    what: str
    asked: str
    measured: str
    met: bool | None  # None: not measured in this run


def evaluation_targets(rows: Sequence[Row]) -> list[Target]:
    """Hessian speed-ups, closeness to NumPy at n >= 200, and call overhead at n = 3."""
    targets = []
    for row in largest(rows):
        if not row.problem.hessian:
            continue
        full_size = row.n == max(row.problem.sizes)
        for peer in ("jax", "torch"):
            speedup = row.ratio(peer) if full_size else None
            if speedup is not None:
                measured = format_ratio(speedup)
            elif not full_size:
                measured = f"not run at n={max(row.problem.sizes)} (quick run)"
            else:
                measured = row.failures.get(peer, f"{peer} not run")
            targets.append(
                Target(
                    7,
                    f"{row.problem.title}, n={max(row.problem.sizes)}: speed-up over {peer}",
                    f"≥ {HESSIAN_SPEEDUP:.0f}x",
                    measured,
                    None if speedup is None else speedup >= HESSIAN_SPEEDUP,
                )
            )
    for row in rows:
        ratio = row.times[INDEXCALC] / row.times[NUMPY]
        if row.n >= 200:
            asked, issue, what = f"≤ {NUMPY_RATIO}x", 4, "time / NumPy"
            met = ratio <= NUMPY_RATIO
        elif row.n == 3:
            asked, issue, what = f"≤ {OVERHEAD_RATIO:.0f}x", 4, "call overhead / NumPy"
            met = ratio <= OVERHEAD_RATIO
        else:
            continue
        targets.append(
            Target(issue, f"{row.problem.title}, n={row.n}: {what}", asked, f"{ratio:.2f}x", met)
        )
    return targets


def symbolic_targets(
    results: Sequence[SymbolicResult], depths: Sequence[DepthResult]
) -> list[Target]:
    """Speed-up over SymPy, the 10-layer MLP gradients, and the Hessian of (xᵀAx)²."""
    targets = []
    for result in results:
        if result.speedup is not None:
            targets.append(
                Target(
                    7,
                    f"{result.case.title} (`{result.case.sympy_text}`): speed-up over SymPy",
                    f"≥ {SYMPY_SPEEDUP:.0f}x",
                    format_ratio(result.speedup),
                    result.speedup >= SYMPY_SPEEDUP,
                )
            )
    mlp = next((d for d in depths if d.depth == MLP_LAYERS), None)
    targets.append(
        Target(
            3,
            f"∂/∂Wk of a {MLP_LAYERS}-layer MLP loss for every k, in total",
            f"< {MLP_SECONDS * 1e3:.0f} ms",
            format_time(mlp.all_layers_time) if mlp else "not run (quick run)",
            None if mlp is None else mlp.all_layers_time < MLP_SECONDS,
        )
    )
    squared = next((r for r in results if r.case.title == "∇² (xᵀAx)²"), None)
    targets.append(
        Target(
            3,
            "Hessian of (x_i A_ij x_j)^2",
            f"< {SQUARED_HESSIAN_SECONDS * 1e3:.0f} ms",
            format_time(squared.indexcalc_time) if squared else "not run",
            None if squared is None else squared.indexcalc_time < SQUARED_HESSIAN_SECONDS,
        )
    )
    return targets


def natural_targets(rows: Sequence[NaturalRow]) -> list[Target]:
    """Natural notation within 1.2x of NumPy's time and 1.5x of its peak memory."""
    targets = []
    for row in rows:
        what = f"{row.problem.title}, n={row.n}"
        time_ratio, memory_ratio = row.time_ratio(), row.memory_ratio()
        targets.append(
            Target(
                13,
                f"{what}: time / NumPy",
                f"≤ {TIME_RATIO}x",
                f"{time_ratio:.2f}x",
                time_ratio <= TIME_RATIO,
            )
        )
        targets.append(
            Target(
                13,
                f"{what}: peak memory / NumPy",
                f"≤ {MEMORY_RATIO}x",
                f"{memory_ratio:.2f}x",
                memory_ratio <= MEMORY_RATIO,
            )
        )
    return targets
