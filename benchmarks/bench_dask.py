"""A logistic-regression gradient on dask, over an X too large to want in memory at once.

X (rows × 50, float64) is generated lazily in row blocks by ``dask.array.random``, so it
never exists whole: at 2,000,000 rows it would take 800 MB. The compiled gradient
``∂/∂w_k Σ_i log(1 + exp(-y_i X_ij w_j))`` runs on dask's threaded scheduler, block by
block, while a thread samples this process's resident memory. For each row count the
table gives the time and the peak rise in memory over the baseline, next to the size X
would have if materialised; the same gradient written by hand in dask array operations
runs on the same data as the reference, and the two must agree.

Run:  PYTHONPATH=. python benchmarks/bench_dask.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np

import indexcalc as ic

FEATURES = 50
LOSS = ic.parse("sum_i(log(1 + exp(-y_i X_ij w_j)))", var="w")
GRADIENT = ic.compile(ic.diff(LOSS, "w_k"), backend="dask")


@dataclass
class Row:
    label: str
    rows: int
    chunk_rows: int
    seconds: float
    peak_rise: int  # bytes
    result: np.ndarray


def _data(rows: int, chunk_rows: int, seed: int = 0):
    """X in [-1, 1), labels ±1 and weights: X and y lazy, in blocks of `chunk_rows` rows."""
    rng = da.random.default_rng(seed)
    X = 2 * rng.random((rows, FEATURES), chunks=(chunk_rows, FEATURES)) - 1
    y = da.where(rng.random(rows, chunks=chunk_rows) < 0.5, -1.0, 1.0)
    w = np.random.default_rng(seed).standard_normal(FEATURES)
    return X, y, w


def _by_hand(X, y, w):
    """The closed form -Xᵀ (y σ(-y X w)) in dask array operations."""
    margin = y * (X @ w)
    return -(X.T @ (y / (1 + np.exp(margin))))


class PeakMemory:
    """The largest rise in resident memory while the block runs.

    Samples psutil every 5 ms if it is installed; otherwise falls back to the process's
    lifetime maximum (ru_maxrss), which only shows a rise above every earlier peak.
    """

    def __init__(self):
        try:
            import psutil

            self._rss = psutil.Process(os.getpid()).memory_info
        except ImportError:
            self._rss = None
        self.rise = 0

    def __enter__(self):
        if self._rss is None:
            self._start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            return self
        self._start = self._rss().rss
        self._peak = self._start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, self._rss().rss)

    def __exit__(self, *exc):
        if self._rss is None:
            self.rise = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self._start
            return
        self._stop.set()
        self._thread.join()
        self.rise = max(self._peak, self._rss().rss) - self._start

    @property
    def method(self) -> str:
        return "psutil RSS sampled every 5 ms" if self._rss else "ru_maxrss (lifetime peak)"


def _measure(label: str, rows: int, chunk_rows: int, gradient: Callable, repeats: int) -> Row:
    """The fastest of `repeats` runs, and the highest memory peak among them."""
    X, y, w = _data(rows, chunk_rows)
    lazy = gradient(X, y, w)
    assert isinstance(lazy, da.Array), type(lazy)
    times, rises = [], []
    for _ in range(repeats):
        with PeakMemory() as memory:
            start = time.perf_counter()
            result = lazy.compute(scheduler="threads")
            times.append(time.perf_counter() - start)
        rises.append(memory.rise)
    return Row(label, rows, chunk_rows, min(times), max(rises), result)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller X, for a smoke run")
    args = parser.parse_args()
    chunk_rows = 20_000 if args.quick else 100_000
    sizes = (100_000, 400_000) if args.quick else (500_000, 2_000_000)
    repeats = 1 if args.quick else 2

    def indexcalc_gradient(X, y, w):
        return GRADIENT(X=X, y=y, w=w)

    for gradient in (indexcalc_gradient, _by_hand):  # warm up threads, BLAS and caches
        _measure("warm-up", 2 * chunk_rows, chunk_rows, gradient, repeats=1)
    rows_out = []
    for rows in sizes:
        rows_out.append(_measure("indexcalc", rows, chunk_rows, indexcalc_gradient, repeats))
        rows_out.append(_measure("dask by hand", rows, chunk_rows, _by_hand, repeats))

    for ours, reference in zip(rows_out[::2], rows_out[1::2], strict=True):
        if not np.allclose(ours.result, reference.result, rtol=1e-9, atol=1e-9):
            raise SystemExit(f"indexcalc and the hand-written gradient disagree at {ours.rows}")
    # And NumPy on one block-sized X, materialised: the same formula, another evaluator.
    X, y, w = _data(chunk_rows, chunk_rows)
    X, y = X.compute(), y.compute()
    expected = -(X.T @ (y / (1 + np.exp(y * (X @ w)))))
    if not np.allclose(GRADIENT(X=da.from_array(X), y=da.from_array(y), w=w).compute(), expected):
        raise SystemExit("indexcalc on dask disagrees with NumPy on one block")

    print(f"dask {dask.__version__}, threaded scheduler, {os.cpu_count()} cores")
    print(f"memory: {PeakMemory().method}, rise over the RSS before .compute()")
    print(f"time: the fastest of {repeats} runs after a warm-up; memory: the highest peak")
    print(f"X is rows × {FEATURES} float64 in blocks of {chunk_rows:,} rows")
    print(f"({_megabytes(chunk_rows * FEATURES * 8)} per block)\n")
    header = (
        f"{'evaluator':<14}{'rows':>11}{'blocks':>8}"
        f"{'time':>9}{'peak RSS rise':>15}{'size of X':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows_out:
        print(
            f"{row.label:<14}{row.rows:>11,}{-(-row.rows // row.chunk_rows):>8}"
            f"{row.seconds:>8.2f}s{_megabytes(row.peak_rise):>15}"
            f"{_megabytes(row.rows * FEATURES * 8):>11}"
        )
    print("\nindexcalc agrees with the hand-written dask gradient and with NumPy on one block.")


if __name__ == "__main__":
    main()
