"""One plan, two emitters (issue 13): evaluation runs the plan, code generation prints it.

The plan is data: every step an operation record. On random expressions and their
derivatives, the generated function and the compiled one give the same values, on two
different sizes for the generated one.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import dims_with, parsed, programs, variables

import indexcalc as ic
from indexcalc.plan import Argument, Contract, Copy, Plan, Reindex, Step, make_plan

EXACT_RTOL = 1e-9


def run_generated(expr, arrays, dims, out):
    namespace: dict = {}
    exec(ic.codegen(expr, name="f", out=out or None, dims=dims), namespace)
    function = namespace["f"]
    names = function.__code__.co_varnames[: function.__code__.co_argcount]
    return function(**{name: arrays[name] for name in names})


def assert_same(actual, expected):
    scale = 1 + np.max(np.abs(expected), initial=0.0)
    np.testing.assert_allclose(actual, expected, rtol=EXACT_RTOL, atol=EXACT_RTOL * scale)


@given(programs(max_depth=2), st.data())
def test_generated_code_and_compiled_evaluation_agree_on_random_derivatives(example, data):
    expr = parsed(example)
    (variable,) = variables(data.draw, example, expr)
    derivative = data.draw(st.sampled_from([expr, ic.diff(expr, variable.wrt)]))
    out = "".join(derivative.free_indices)
    dims = {i: n for i, n in dims_with(example, [variable]).items() if i in out}
    with np.errstate(all="ignore"):
        try:
            compiled = ic.compile(derivative, out or None, dims=dims)(example.arrays)
        except ic.UnsizedIndexError:
            return  # an index only by name (δ_jj alone): nothing to compare
        generated = run_generated(derivative, example.arrays, dims, out)
    assert_same(np.asarray(generated), np.asarray(compiled))


def test_plan_is_data_that_both_emitters_read():
    gradient = ic.diff("sum_i(log(1 + exp(-y_i X_ij w_j)))", "w_k")
    arrays = {"X": np.ones((6, 4)), "y": np.ones(6), "w": np.ones(4)}
    plan = ic.compile(gradient).plan(arrays)
    assert isinstance(plan, Plan)
    assert all(isinstance(step, Step) for step in plan.steps)
    assert set(plan.arguments) == {"X", "y", "w"}
    contractions = [s.operation for s in plan.steps if isinstance(s.operation, Contract)]
    assert any(c.path for c in contractions)  # pairwise steps, as opt_einsum orders them
    shapes = {name: a.shape for name, a in arrays.items()}
    assert make_plan([gradient], [("k",)], shapes, {}) == plan


def test_plan_steps_are_shared_for_subexpressions_equal_up_to_renaming():
    expr = ic.parse("tanh(W_ij x_j) V_ki + tanh(W_aj x_j) U_ka")
    arrays = {n: np.ones((3, 3)) for n in "WVU"} | {"x": np.ones(3)}
    plan = ic.compile(expr).plan(arrays)
    tanh_steps = [s for s in plan.steps if getattr(s.operation, "function", None) == "tanh"]
    assert len(tanh_steps) == 1


def test_result_is_never_an_input_or_a_view_of_one():
    A = np.ones((2, 3))
    transposed = ic.compile("A_ij", "ji").plan(A=A)
    assert isinstance(transposed.steps[0].operation, Argument)
    assert transposed.steps[transposed.results[0]].operation == Reindex("ab->ba", final=True)
    same = ic.compile("A_ij").plan(A=A)
    assert same.steps[same.results[0]].operation == Copy()
    for out in ("ij", "ji"):
        result = ic.evaluate("A_ij", A=A, out=out)
        assert not np.shares_memory(result, A)
        assert not np.shares_memory(run_generated(ic.parse("A_ij"), {"A": A}, {}, out), A)


def test_generated_function_runs_on_new_sizes_as_compile_does():
    gradient = ic.diff("(X_ij - U_ik V_kj)(X_ij - U_il V_lj)", "V_pq")
    for n, m, r in ((4, 5, 2), (7, 3, 6)):
        rng = np.random.default_rng(n)
        arrays = {"X": rng.normal(size=(n, m)), "U": rng.normal(size=(n, r))}
        arrays["V"] = rng.normal(size=(r, m))
        expected = ic.evaluate(gradient, arrays, out="pq")
        assert_same(run_generated(gradient, arrays, {}, "pq"), expected)


def test_operands_over_one_index_class_group_only_with_their_like():
    """Regression: "a" was grouped with a diagonal operand "aa" and the wrong one deleted."""
    derivative = ic.diff("tan(tanh(δ_im / (u_m^2 + 1)))", "u_p")
    u = np.array([0.31990733, 0.68848968, 0.13087497])
    value = ic.evaluate(derivative, u=u, out="imp")
    s = 1 + u**2
    inner = 1 / s
    expected = -2 * (1 + np.tan(np.tanh(inner)) ** 2) * (1 - np.tanh(inner) ** 2) * u / s**2
    np.testing.assert_allclose(value[[0, 1, 2], [0, 1, 2], [0, 1, 2]], expected)
    for plan_step in ic.compile(derivative, "imp").plan(u=u).steps:
        if isinstance(plan_step.operation, Contract):
            assert all(list(p) == sorted(p) for p, _ in plan_step.operation.path)


def test_identity_term_of_a_sum_is_added_onto_the_diagonal_never_built():
    derivative = ic.diff("(δ_ij - A_ij)(δ_ji - A_ji)", "A_pq")  # -2 (δ_qp - A_qp)
    A = np.random.default_rng(3).normal(size=(5, 5))
    plan = ic.compile(derivative, "pq").plan(A=A)
    kinds = {type(s.operation).__name__ for s in plan.steps}
    assert "AddToDiagonal" in kinds and "Embed" not in kinds
    expected = -2 * (np.eye(5) - A).T
    np.testing.assert_allclose(ic.evaluate(derivative, A=A, out="pq"), expected)
    np.testing.assert_allclose(run_generated(derivative, {"A": A}, {}, "pq"), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identity_term_keeps_the_dtype_and_never_writes_into_an_input(dtype):
    A = np.arange(9, dtype=dtype).reshape(3, 3)
    before = A.copy()
    for text, expected in [("δ_ij + A_ij", A + np.eye(3)), ("A_ij - 2 δ_ji", A - 2 * np.eye(3))]:
        result = ic.evaluate(text, A=A, out="ij")
        assert result.dtype == dtype
        np.testing.assert_allclose(result, expected)
        generated = run_generated(ic.parse(text), {"A": A}, {}, "ij")
        assert generated.dtype == dtype
        np.testing.assert_allclose(generated, expected)
    np.testing.assert_array_equal(A, before)


def test_an_index_only_one_operand_has_is_summed_before_the_product():
    """Σ_i t_i x_p is (Σ_i t_i) x_p: a sum of n and a product of m, never n × m work."""
    t, x = np.arange(1.0, 6.0), np.array([2.0, -1.0, 0.5])
    expr = ic.simplify("sum_i(t_i) x_p")
    plan = ic.compile(expr).plan(t=t, x=x)
    (contraction,) = [s.operation for s in plan.steps if isinstance(s.operation, Contract)]
    assert contraction.path[0] == ((0,), "")  # t summed alone first
    np.testing.assert_allclose(ic.evaluate(expr, t=t, x=x), t.sum() * x)
    np.testing.assert_allclose(run_generated(expr, {"t": t, "x": x}, {}, "p"), t.sum() * x)
