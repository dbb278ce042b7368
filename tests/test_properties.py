"""Properties of random well-formed expressions (see strategies.py), checked on random arrays.

- the derivative equals central finite differences, and so does the second derivative;
- mixed second derivatives are symmetric;
- simplification does not change the value;
- printed text (Unicode and ASCII) parses back to an expression with the same value, for
  expressions and for their derivatives.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import central_difference, dims_with, evaluate, parsed, programs, variables

import indexcalc as ic

DIFFERENCE_RTOL = 1e-5  # central differences with a 1e-6 step, in float64
EXACT_RTOL = 1e-9  # two symbolic forms of one value differ only by rounding


def assert_close(actual, expected, rtol: float, atol: float = 0.0) -> None:
    """Elementwise |actual − expected| ≤ rtol·(1 + max|expected|) + atol."""
    scale = 1 + np.max(np.abs(expected), initial=0.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale + atol)


def roundoff(value) -> float:
    """The cancellation error a central difference can carry on a function this large."""
    return 1e-8 * float(np.max(np.abs(value), initial=0.0))


@given(programs(), st.data())
def test_derivative_equals_central_differences(example, data):
    expr = parsed(example)
    (variable,) = variables(data.draw, example, expr)
    derivative = ic.diff(expr, variable.wrt)
    out = example.out + variable.letters
    symbolic = evaluate(derivative, example, out, dims_with(example, [variable]))
    numeric = central_difference(expr, example, variable.name, example.out)
    value = evaluate(expr, example, example.out)
    assert_close(symbolic, numeric, DIFFERENCE_RTOL, roundoff(value))


@given(programs(), st.data())
def test_second_derivative_equals_differences_of_gradient(example, data):
    expr = parsed(example)
    first, second = variables(data.draw, example, expr, count=2)
    dims = dims_with(example, [first, second])
    gradient = ic.diff(expr, first.wrt)
    hessian = ic.diff(expr, [first.wrt, second.wrt])
    gradient_out = example.out + first.letters
    symbolic = evaluate(hessian, example, gradient_out + second.letters, dims)
    numeric = central_difference(gradient, example, second.name, gradient_out, dims)
    value = evaluate(gradient, example, gradient_out, dims)
    assert_close(symbolic, numeric, DIFFERENCE_RTOL, roundoff(value))


@given(programs(), st.data())
def test_mixed_second_derivatives_are_symmetric(example, data):
    expr = parsed(example)
    first, second = variables(data.draw, example, expr, count=2)
    hessian = ic.diff(expr, [first.wrt, second.wrt])
    dims = dims_with(example, [first, second])
    forward = evaluate(hessian, example, example.out + first.letters + second.letters, dims)
    swapped = evaluate(hessian, example, example.out + second.letters + first.letters, dims)
    assert_close(forward, swapped, EXACT_RTOL)


@given(programs())
def test_simplify_preserves_value(example):
    expr = parsed(example)
    simplified = ic.simplify(expr)
    assert_close(
        evaluate(simplified, example, example.out),
        evaluate(expr, example, example.out),
        EXACT_RTOL,
    )


@given(programs())
def test_printed_expression_parses_back_to_the_same_value(example):
    expr = parsed(example)
    value = evaluate(expr, example, example.out)
    for text in (str(expr), expr.ascii()):
        again = ic.parse(text)
        assert again.free_indices == expr.free_indices, text
        assert_close(evaluate(again, example, example.out), value, EXACT_RTOL)
    assert expr.latex()


@given(programs(), st.data())
def test_printed_derivative_parses_back_to_the_same_value(example, data):
    expr = parsed(example)
    (variable,) = variables(data.draw, example, expr)
    derivative = ic.diff(expr, variable.wrt)
    out = example.out + variable.letters
    dims = dims_with(example, [variable])
    value = evaluate(derivative, example, out, dims)
    for text in (str(derivative), derivative.ascii()):
        again = ic.parse(text)
        assert again.free_indices == derivative.free_indices, text
        assert_close(evaluate(again, example, out, dims), value, EXACT_RTOL)
    assert derivative.latex()


# -- Regressions: counterexamples the properties found, now fixed ------------------------


@pytest.mark.parametrize("text", ["u_i v_j^0", "u_i cos(0 v_j)", "u_i exp(v_j - v_j)"])
def test_factor_that_simplifies_to_a_number_keeps_its_free_indices(text):
    u, v = np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0])
    np.testing.assert_allclose(ic.evaluate(ic.simplify(text), u=u, v=v), np.outer(u, [1, 1, 1]))
    derivative = ic.diff(text, "u_k")
    value = ic.evaluate(derivative, v=v, out="ijk", dims={"i": 2, "k": 2})
    np.testing.assert_allclose(value, np.einsum("ik,j->ijk", np.eye(2), [1, 1, 1]))


@pytest.mark.parametrize("text", ["sum_j(v_j^0)", "sum_j(cos(0 v_j))", "sum_j(v_j - v_j + 1)"])
def test_sum_of_a_constant_counts_the_summed_index(text):
    v = np.array([3.0, 4.0, 5.0])
    assert ic.evaluate(text, v=v) == 3
    assert ic.evaluate(ic.simplify(text), v=v) == 3
    assert ic.evaluate(ic.diff(f"x {text}", "x"), v=v) == 3


@pytest.mark.parametrize(
    ("make", "free"),
    [
        (lambda: ic.simplify("x_i ⊙ T_jij"), ("i",)),
        (lambda: ic.diff("log1p(T_ijj^2)", "T_pqr"), ("i", "p", "q", "r")),
    ],
)
def test_diagonal_factor_inside_hadamard_prints_its_sum(make, free):
    expr = make()
    assert expr.free_indices == free
    for text in (str(expr), expr.ascii()):
        assert ic.parse(text).free_indices == free, text


def test_derivative_of_a_dimension_delta_evaluates_where_the_expression_does():
    u = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(ic.evaluate("δ_ii ⊙ u_i", u=u), 3 * u)
    derivative = ic.diff("δ_ii ⊙ u_i", "u_p")
    value = ic.evaluate(derivative, u=u, out="ip", dims={"i": 3, "p": 3})
    np.testing.assert_allclose(value, 3 * np.eye(3))


@pytest.mark.parametrize("text", ["u_l (v_l / w_l)", "A_kl (v_l / (w_l^2 + 1))"])
def test_quotient_factor_in_a_contraction_prints_with_parentheses(text):
    expr = ic.parse(text)
    arrays = {"u": [1.0, 2.0], "v": [3.0, 4.0], "w": [5.0, 6.0], "A": [[1.0, 2.0], [3.0, 4.0]]}
    arrays = {name: np.array(value) for name, value in arrays.items() if name in expr.tensor_names}
    expected = ic.evaluate(expr, arrays)
    for printed in (str(expr), expr.ascii()):
        np.testing.assert_allclose(ic.evaluate(ic.parse(printed), arrays), expected)


@pytest.mark.parametrize("text", ["0.1 eps_ij", "eps_ijk"])
def test_epsilon_without_arrays_is_float64(text):
    assert ic.evaluate(text).dtype == np.float64
    derivative = ic.diff("1e-1 ε_ij u_j", "u_p")
    value = ic.evaluate(derivative, out="ip")
    assert value.dtype == np.float64
    np.testing.assert_array_equal(value, [[0, 0.1], [-0.1, 0]])


def test_products_of_deltas_equal_up_to_renaming_keep_their_own_sizes():
    sizes = {"j": 3, "q": 3, "p": 2, "r": 2}
    identity = np.einsum("jq,pr->jpqr", np.eye(3), np.eye(2))
    value = ic.evaluate("δ_jq δ_pr + δ_pr δ_jq", dims=sizes, out="jpqr")
    np.testing.assert_allclose(value, 2 * identity)


def test_derivative_of_a_full_sum_is_ones_of_the_variables_shape():
    derivative = ic.diff("sum_{in}(A_in)", "A_pq")
    again = ic.parse(str(derivative))
    for expr in (derivative, again):
        value = ic.evaluate(expr, A=np.zeros((2, 3)), out="pq", dims={"p": 2, "q": 3})
        np.testing.assert_allclose(value, np.ones((2, 3)))
    value = ic.evaluate("Σ_i(δ_pi) Σ_i(δ_qi)", out="pq", dims={"p": 2, "q": 3})
    np.testing.assert_allclose(value, np.ones((2, 3)))


@pytest.mark.parametrize("text", ["x / abs(2)", "x / (abs(2)^2 + 1)", "sign(3)^-1 x"])
def test_negative_power_of_a_function_of_an_integer_is_a_float(text):
    value = ic.evaluate(text, x=1.0)
    np.testing.assert_allclose(value, ic.evaluate(ic.simplify(text), x=1.0))


def test_summed_index_of_a_delta_takes_its_size_from_the_delta():
    A, u = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, 2.0, 3.0])
    printed = str(ic.diff("A_ii ⊙ sum_m(u_m)", "u_p"))  # "A_ii Σ_i(δ_pi)"
    for text in (printed, "A_ii Σ_i(δ_pi)"):
        value = ic.evaluate(text, A=A, u=u, out="p", dims={"p": 3})
        np.testing.assert_allclose(value, [5.0, 5.0, 5.0])
