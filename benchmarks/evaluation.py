"""Compiled derivatives against hand-written NumPy, JAX and PyTorch.

For each problem and size: differentiate and compile with indexcalc, prepare each peer,
call every contender once (the warm-up, which also plans and JIT-compiles) and check its
result against the NumPy closed form, then time them all in interleaved rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

import indexcalc as ic

from .peers import JaxPeer, TorchPeer
from .problems import Arrays, Derivative, Problem
from .timing import check_agrees, measure

INDEXCALC, NUMPY = "indexcalc", "numpy"


@dataclass
class Row:
    """The measurements of one problem at one size."""

    problem: Problem
    n: int
    times: dict[str, float]  # contender -> median seconds per call
    first_call: dict[str, float]  # contender -> seconds to build and run once
    failures: dict[str, str] = field(default_factory=dict)  # peer -> why it has no time

    def ratio(self, slower: str, faster: str = INDEXCALC) -> float | None:
        """times[slower] / times[faster]: a speed-up of `faster` when above 1."""
        if slower not in self.times or faster not in self.times:
            return None
        return self.times[slower] / self.times[faster]


def derivative_dims(derivative: Derivative, arrays: Arrays) -> dict[str, int]:
    """Sizes of the derivative indices, read off the variables' arrays.

    A Hessian such as A_kl + A_lk no longer mentions the variable x, so nothing else
    would fix the sizes of k and l.
    """
    dims: dict[str, int] = {}
    for variable in derivative.wrt:
        name, _, indices = variable.partition("_")
        dims.update(zip(indices, arrays[name].shape, strict=True))
    return dims


def indexcalc_thunk(problem: Problem, arrays: Arrays) -> Callable[[], object]:
    """Differentiate and compile the problem's derivatives; a thunk that evaluates them.

    Several derivatives (an MLP's weight gradients) compile together, so the forward pass
    they share runs once, as in hand-written backpropagation."""
    dims: dict[str, int] = {}
    for d in problem.derivatives:
        dims.update(derivative_dims(d, arrays))
    expressions = [ic.diff(problem.notation, list(d.wrt)) for d in problem.derivatives]
    outs = [d.out for d in problem.derivatives]
    if len(expressions) == 1:
        only = ic.compile(expressions[0], out=outs[0], dims=dims)
        return lambda: only(**arrays)
    together = ic.compile(expressions, out=outs, dims=dims)
    return lambda: together(**arrays)


def run_problem(
    problem: Problem,
    n: int,
    *,
    peers: Mapping[str, JaxPeer | TorchPeer],
    repeats: int,
    min_sample: float,
    seed: int = 0,
) -> Row:
    """Check every contender against NumPy, then time them; raises `ResultMismatch`."""
    arrays = problem.arrays(n, np.random.default_rng(seed))
    expected = problem.numpy(**arrays)
    thunks: dict[str, Callable[[], object]] = {}
    first_call: dict[str, float] = {}
    failures: dict[str, str] = {}

    start = time.perf_counter()
    thunks[INDEXCALC] = indexcalc_thunk(problem, arrays)
    got = thunks[INDEXCALC]()
    first_call[INDEXCALC] = time.perf_counter() - start
    check_agrees(f"indexcalc, {problem.key}, n={n}", got, expected)

    thunks[NUMPY] = lambda: problem.numpy(**arrays)
    for name, peer in peers.items():
        start = time.perf_counter()
        try:
            prepared = peer.prepare(problem, arrays)
            got = prepared.thunk()
        except Exception as error:  # a peer that cannot do a problem is reported, not fatal
            failures[name] = f"{type(error).__name__}: {error}".splitlines()[0][:200]
            continue
        first_call[name] = time.perf_counter() - start
        check_agrees(f"{name}, {problem.key}, n={n}", prepared.to_numpy(got), expected)
        thunks[name] = prepared.thunk

    times = measure(thunks, repeats=repeats, min_sample=min_sample)
    return Row(problem, n, times, first_call, failures)


def run_evaluation(
    problems: Iterable[Problem],
    *,
    quick: bool,
    peers: Mapping[str, JaxPeer | TorchPeer],
    repeats: int,
    min_sample: float,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Row]:
    """Every problem at each of its sizes (its quick sizes when `quick`)."""
    rows = []
    for problem in problems:
        for n in problem.quick_sizes if quick else problem.sizes:
            row = run_problem(problem, n, peers=peers, repeats=repeats, min_sample=min_sample)
            progress(
                f"{problem.key:<24} n={n:<5} "
                + "  ".join(f"{k} {v * 1e3:.3f} ms" for k, v in row.times.items())
            )
            rows.append(row)
    return rows


def largest(rows: Sequence[Row]) -> list[Row]:
    """The row of each problem's largest size, in the problems' order."""
    found: dict[str, Row] = {}
    for row in rows:
        if row.problem.key not in found or row.n > found[row.problem.key].n:
            found[row.problem.key] = row
    return list(found.values())
