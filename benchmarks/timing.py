"""The clock and the correctness check shared by every section.

The machines are shared and noisy, so contenders are timed in interleaved rounds: each
round runs every contender once, in a rotating order, and the median over rounds is
reported. Load from other processes then hits all contenders alike, and ratios measured
in one process stay meaningful even when absolute times drift.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping

import numpy as np

Thunk = Callable[[], object]


class ResultMismatch(AssertionError):
    """A contender's result differs from the hand-written NumPy reference."""


def agrees(got, expected, *, rtol: float = 1e-6) -> bool:
    """Whether `got` equals `expected` to `rtol`, relative to the largest reference entry.

    Tuples and lists compare item by item; shapes must match exactly.
    """
    if isinstance(expected, (tuple, list)):
        return (
            isinstance(got, (tuple, list))
            and len(got) == len(expected)
            and all(agrees(g, e, rtol=rtol) for g, e in zip(got, expected, strict=True))
        )
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    if got.shape != expected.shape:
        return False
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    return bool(np.allclose(got, expected, rtol=rtol, atol=rtol * scale))


def check_agrees(label: str, got, expected, *, rtol: float = 1e-6) -> None:
    """Raise `ResultMismatch` naming `label` unless `got` agrees with `expected`."""
    if agrees(got, expected, rtol=rtol):
        return
    raise ResultMismatch(f"{label}: result differs from NumPy ({_difference(got, expected)})")


def _difference(got, expected) -> str:
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"expected {len(expected)} arrays"
        parts = [
            f"item {k}: {_difference(g, e)}"
            for k, (g, e) in enumerate(zip(got, expected, strict=True))
            if not agrees(g, e)
        ]
        return "; ".join(parts)
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    if got.shape != expected.shape:
        return f"shape {got.shape}, expected {expected.shape}"
    return f"largest difference {float(np.max(np.abs(got - expected), initial=0.0)):.3g}"


def calls_per_sample(thunk: Thunk, min_sample: float) -> int:
    """How many calls make one sample last at least `min_sample` seconds."""
    number = 1
    while True:
        elapsed = _run(thunk, number)
        if elapsed >= min_sample or number >= 1 << 20:
            return number
        number = max(number * 2, int(number * min_sample / max(elapsed, 1e-9) * 1.2))


def _run(thunk: Thunk, number: int) -> float:
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            thunk()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


def measure(thunks: Mapping[str, Thunk], *, repeats: int, min_sample: float) -> dict[str, float]:
    """Median seconds per call of each thunk, over `repeats` interleaved rounds.

    Call every thunk once before this (the warm-up: compilation, planning, caches).
    """
    names = list(thunks)
    numbers = {name: calls_per_sample(thunks[name], min_sample) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(_run(thunks[name], numbers[name]) / numbers[name])
    return {name: statistics.median(values) for name, values in samples.items()}


def median_time(thunk: Thunk, *, repeats: int, setup: Callable[[], object] | None = None) -> float:
    """Median seconds of single calls of `thunk`, running `setup` untimed before each."""
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        times.append(_run(thunk, 1))
    return statistics.median(times)


def format_time(seconds: float | None) -> str:
    """Seconds in the unit that keeps three significant digits readable."""
    if seconds is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_ratio(value: float | None) -> str:
    """A ratio such as a speed-up, with two significant digits below 10."""
    if value is None:
        return "—"
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"
