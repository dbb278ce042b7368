"""The benchmark runner runs a problem and refuses a result that disagrees with NumPy.

No timing is asserted, and no peer is needed: JAX and PyTorch are left out.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks.evaluation import INDEXCALC, NUMPY, run_problem
from benchmarks.natural import NATURAL, run_natural_problem
from benchmarks.problems import PROBLEMS
from benchmarks.timing import ResultMismatch, agrees, check_agrees


def test_quadratic_gradient_runs_at_n_3_without_peers():
    row = run_problem(PROBLEMS["quadratic-gradient"], 3, peers={}, repeats=1, min_sample=0.0)
    assert set(row.times) == {INDEXCALC, NUMPY}
    assert all(seconds > 0 for seconds in row.times.values())


def test_every_problem_agrees_with_numpy_at_n_3():
    for problem in PROBLEMS.values():
        run_problem(problem, 3, peers={}, repeats=1, min_sample=0.0)


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
    row = run_natural_problem(NATURAL[key], 40, repeats=1, min_sample=0.0)
    assert row.largest_intermediate <= 40 * 40  # never an n×n×n step
    assert row.peak_bytes["indexcalc"] > 0


def test_natural_notation_refuses_a_wrong_closed_form():
    broken = dataclasses.replace(NATURAL["trace-xtbx"], numpy=lambda B, X: B @ X)
    with pytest.raises(ResultMismatch, match="trace-xtbx"):
        run_natural_problem(broken, 5, repeats=1, min_sample=0.0)
