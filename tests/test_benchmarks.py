"""The benchmarks compute what they claim: right answers, and a report made from its numbers.

Every problem's indexcalc answer equals the hand-written NumPy reference, and every
reference is the derivative of the problem's loss (central differences). The clock and
the report are checked on given timings, so no test depends on how fast this machine is.
No peer is needed: JAX and PyTorch are left out.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

import indexcalc as ic
from benchmarks import symbolic, timing
from benchmarks.evaluation import Row, indexcalc_thunk, run_problem
from benchmarks.natural import NATURAL, NaturalRow, natural_table, peak_bytes, run_natural_problem
from benchmarks.problems import PROBLEMS
from benchmarks.report import Results, evaluation_table, headline, markdown
from benchmarks.symbolic import CASES, DepthResult, check_depth_gradient, mlp_notation
from benchmarks.targets import Target, evaluation_targets, natural_targets
from benchmarks.timing import ResultMismatch, agrees, check_agrees, measure, median_time
from indexcalc.check import central_difference
from indexcalc.expr import node_count

# The gradient problem whose NumPy reference a Hessian problem differentiates once more.
GRADIENT_OF = {
    "quadratic-hessian": "quadratic-gradient",
    "logistic-hessian": "logistic-gradient",
    "factorisation-hessian": "factorisation-gradient",
}


# -- the problems: indexcalc equals the reference, the reference is the derivative ---------


@pytest.mark.parametrize("key", PROBLEMS)
def test_indexcalc_answer_equals_the_numpy_reference_at_n_3(key):
    problem = PROBLEMS[key]
    arrays = problem.arrays(3, np.random.default_rng(0))
    got, expected = indexcalc_thunk(problem, arrays)(), problem.numpy(**arrays)
    assert agrees(got, expected, rtol=1e-10), (got, expected)


@pytest.mark.parametrize("key", PROBLEMS)
def test_numpy_reference_is_the_derivative_of_the_loss_by_central_differences(key):
    problem = PROBLEMS[key]
    arrays = problem.arrays(3, np.random.default_rng(1))
    if problem.hessian:
        gradient = PROBLEMS[GRADIENT_OF[key]].numpy
        (variable,) = problem.variables
        numeric = central_difference(lambda a: gradient(**a), arrays, variable)
    else:
        by_variable = [
            central_difference(lambda a: problem.loss(np, a), arrays, variable)
            for variable in problem.variables
        ]
        numeric = by_variable[0] if len(by_variable) == 1 else tuple(by_variable)
    assert agrees(problem.numpy(**arrays), numeric, rtol=1e-6)


def test_check_agrees_rejects_a_wrong_value():
    with pytest.raises(ResultMismatch, match="largest difference 1"):
        check_agrees("wrong", np.array([1.0, 2.0, 4.0]), np.array([1.0, 2.0, 3.0]))


def test_check_agrees_rejects_a_wrong_shape_and_a_missing_array():
    assert not agrees(np.ones((3, 1)), np.ones(3))
    assert not agrees((np.ones(3),), (np.ones(3), np.ones(3)))
    assert agrees((np.ones(3), np.zeros(2)), (np.ones(3), np.zeros(2)))


def test_run_problem_refuses_a_result_that_disagrees_with_numpy():
    problem = PROBLEMS["quadratic-hessian"]
    broken = dataclasses.replace(problem, numpy=lambda A, x: A + A)  # should be A + A.T
    with pytest.raises(ResultMismatch, match="indexcalc, quadratic-hessian, n=3"):
        run_problem(broken, 3, peers={}, repeats=1, min_sample=0.0)


@pytest.mark.parametrize("key", NATURAL)
def test_natural_notation_problem_agrees_with_its_closed_form_and_stays_small(key):
    n = 40
    row = run_natural_problem(NATURAL[key], n, repeats=1, min_sample=0.0)
    assert row.largest_intermediate <= n * n  # never an n×n×n step
    assert row.peak_bytes["indexcalc"] >= n * n * 8  # it holds at least its n×n result


def test_natural_notation_refuses_a_wrong_closed_form():
    broken = dataclasses.replace(NATURAL["trace-xtbx"], numpy=lambda B, X: B @ X)
    with pytest.raises(ResultMismatch, match="trace-xtbx"):
        run_natural_problem(broken, 5, repeats=1, min_sample=0.0)


def test_peak_bytes_counts_the_arrays_a_call_holds_at_once():
    megabyte = 2**20

    def two_buffers():
        first = np.ones(megabyte // 8)
        second = np.ones(megabyte // 8)
        return first, second

    assert 2 * megabyte <= peak_bytes(two_buffers) < 3 * megabyte


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.sympy_text)
def test_symbolic_case_derivative_equals_its_closed_form(case):
    _, nodes, correct = symbolic.time_indexcalc(case, repeats=1)
    assert correct
    assert nodes == node_count(ic.diff(case.notation, list(case.derivative.wrt)))


def test_symbolic_timings_start_from_empty_caches(monkeypatch):
    cleared = []
    monkeypatch.setattr(ic, "clear_caches", lambda: cleared.append(True))
    setup, run = symbolic._fresh_diff("x_i x_i", [["x_k"]])
    median_time(run, repeats=3, setup=setup)
    assert cleared == [True, True, True]


def test_mlp_gradient_of_the_depth_section_matches_finite_differences():
    assert mlp_notation(2) == (
        "h1_i = tanh(W1_ij x_j); h2_i = tanh(W2_ij h1_j); sum_i((h2_i - t_i)^2)"
    )
    assert check_depth_gradient()


# -- the clock, on a fake clock ------------------------------------------------------------


class FakeClock:
    """A `perf_counter` that advances only when a thunk says it has worked."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def costing(self, seconds: float):
        def thunk():
            self.now += seconds

        return thunk


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=fake))
    return fake


def test_measure_reports_each_thunks_seconds_per_call(clock):
    thunks = {"fast": clock.costing(1e-3), "slow": clock.costing(7e-3)}
    times = measure(thunks, repeats=3, min_sample=0.05)
    assert times == pytest.approx({"fast": 1e-3, "slow": 7e-3}, rel=1e-9)


def test_median_time_is_the_median_of_single_calls(clock):
    costs = iter([5e-3, 1e-3, 900e-3])
    cost = [0.0]

    def setup():
        cost[0] = next(costs)

    def thunk():
        clock.now += cost[0]

    assert median_time(thunk, repeats=3, setup=setup) == pytest.approx(5e-3)


# -- the report, from given timings --------------------------------------------------------


def _row(key: str, n: int, **times: float) -> Row:
    return Row(PROBLEMS[key], n, times, first_call=dict.fromkeys(times, 0.5))


def test_report_tables_show_the_ratios_of_the_given_times():
    rows = [
        _row("quadratic-hessian", 200, indexcalc=1e-3, numpy=1e-3, jax=2e-3),
        _row("quadratic-hessian", 1000, indexcalc=2e-3, numpy=1e-3, jax=30e-3),
    ]
    assert rows[1].ratio("jax") == pytest.approx(15.0)
    assert headline(rows) == [
        "| problem | size | indexcalc | time / NumPy | speed-up over JAX |",
        "| --- | ---: | ---: | ---: | ---: |",
        "| ∇² xᵀAx | A 1000x1000 | 2 ms | 2.00x | 15x |",
    ]
    assert evaluation_table(rows)[2:] == [
        "| ∇² xᵀAx | A 200x200 | 1 ms | 1 ms | 2 ms | 1.00x | 2.00x |",
        "| ∇² xᵀAx | A 1000x1000 | 2 ms | 1 ms | 30 ms | 2.00x | 15x |",
    ]


def test_targets_are_judged_from_the_given_times():
    rows = [
        _row("quadratic-hessian", 200, indexcalc=1e-3, numpy=1e-3),
        _row("quadratic-hessian", 1000, indexcalc=2e-3, numpy=1e-3, jax=30e-3),
        _row("quadratic-gradient", 3, indexcalc=4e-6, numpy=1e-6),
    ]
    assert evaluation_targets(rows) == [
        Target(7, "∇² xᵀAx, n=1000: speed-up over jax", "≥ 10x", "15x", True),
        Target(7, "∇² xᵀAx, n=1000: speed-up over torch", "≥ 10x", "torch not run", None),
        Target(4, "∇² xᵀAx, n=200: time / NumPy", "≤ 1.2x", "1.00x", True),
        Target(4, "∇² xᵀAx, n=1000: time / NumPy", "≤ 1.2x", "2.00x", False),
        Target(4, "∇ xᵀAx, n=3: call overhead / NumPy", "≤ 3x", "4.00x", False),
    ]
    report = markdown(
        Results(
            "python -m benchmarks",
            [("CPU", "test")],
            [],
            rows=rows,
            targets=evaluation_targets(rows),
        )
    )
    assert "## Targets: 2 of 4 met" in report
    assert "**Within 1.2x of NumPy at n = 200.**" in report  # why time / NumPy was missed
    assert "**Call overhead at n = 3.**" in report


def test_natural_table_and_targets_use_the_given_time_and_memory():
    problem = NATURAL["trace-xtbx"]
    row = NaturalRow(
        problem,
        200,
        seconds={"indexcalc": 3e-3, "numpy": 2e-3},
        peak_bytes={"indexcalc": 3 * 2**20, "numpy": 2**20},
        largest_intermediate=40_000,
    )
    assert natural_table([row])[2] == (
        "| d tr(XᵀBX)/dX | 200 | 3 ms | 2 ms | 1.50x | 3.00 MiB | 1.00 MiB | 3.00x | 40,000 |"
    )
    assert [(t.measured, t.met) for t in natural_targets([row])] == [
        ("1.50x", False),
        ("3.00x", False),
    ]


def test_depth_section_reports_the_nodes_added_per_layer():
    depths = [DepthResult(d, 10 * d, 3 + 7 * d, 1e-3, 2e-3, 1e-4) for d in range(1, 4)]
    report = markdown(Results("python -m benchmarks", [], [], depths=depths))
    assert "Each layer adds exactly 7 nodes to ∂/∂W1: linear growth" in report
    assert "| 3 | 30 | 24 | 1 ms | 2 ms | 100 µs |" in report


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(2.5, "2.5 s"), (1.5e-3, "1.5 ms"), (12.3e-6, "12.3 µs"), (4e-8, "40 ns"), (None, "—")],
)
def test_format_time_picks_the_unit(seconds, text):
    assert timing.format_time(seconds) == text


def test_format_ratio_keeps_two_decimals_below_ten():
    assert [timing.format_ratio(r) for r in (0.5, 9.994, 10.4, None)] == [
        "0.50x",
        "9.99x",
        "10x",
        "—",
    ]
