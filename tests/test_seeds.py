"""The worked examples of the seed documents (/work/shared/seeds), compared by their numbers."""

from __future__ import annotations

import numpy as np
import pytest
from finite_difference import assert_derivative_matches

import indexcalc as ic

RNG = np.random.default_rng(3)


def _sigmoid(u):
    return 1 / (1 + np.exp(-u))


# -- seed 003: d(xᵀAx)/dx = (A + Aᵀ)x, Hessian A + Aᵀ ----------------------------------------

A4 = RNG.normal(size=(4, 4))
X4 = RNG.normal(size=4)


def test_quadratic_form_gradient_is_a_plus_a_transpose_times_x():
    gradient = ic.diff("x_i A_ij x_j", "x_k")
    np.testing.assert_allclose(ic.evaluate(gradient, A=A4, x=X4), (A4 + A4.T) @ X4, rtol=1e-12)
    assert_derivative_matches("x_i A_ij x_j", "x_k", {"A": A4, "x": X4})


def test_quadratic_form_hessian_is_a_plus_a_transpose():
    hessian = ic.diff("x_i A_ij x_j", ["x_k", "x_l"])
    np.testing.assert_allclose(ic.evaluate(hessian, A=A4, out="kl"), A4 + A4.T, rtol=1e-12)


def test_quadratic_form_gradient_with_symmetric_a_prints_two_a_x():
    gradient = ic.diff("x_i A_ij x_j", "x_k", symmetric=["A"])
    assert str(gradient) == "2 A_kj x_j"
    symmetric = A4 + A4.T
    np.testing.assert_allclose(
        ic.evaluate(gradient, A=symmetric, x=X4), 2 * symmetric @ X4, rtol=1e-12
    )


def test_quadratic_form_hessian_with_symmetric_a_is_two_a():
    hessian = ic.diff("x_i A_ij x_j", ["x_k", "x_l"], symmetric=["A"])
    assert hessian is ic.simplify("2 A_kl")


# -- seed 003: d‖X − UV‖²/dV = −2Uᵀ(X − UV) -------------------------------------------------


def test_matrix_factorisation_gradient_is_minus_two_u_transpose_residual():
    n, r, m = 5, 2, 3
    arrays = {
        "X": RNG.normal(size=(n, m)),
        "U": RNG.normal(size=(n, r)),
        "V": RNG.normal(size=(r, m)),
    }
    expr = "(X_ij - U_ik V_kj)(X_ij - U_il V_lj)"
    gradient = assert_derivative_matches(expr, "V_ab", arrays)
    X, U, V = arrays["X"], arrays["U"], arrays["V"]
    np.testing.assert_allclose(
        ic.evaluate(gradient, arrays, out="ab"), -2 * U.T @ (X - U @ V), rtol=1e-12
    )


# -- seed 000: the 2x2 determinant ---------------------------------------------------------

DETERMINANT = "eps_ij eps_kl X_ik X_jl / 2"
X0 = np.array([[3.0, 2.0], [6.0, -4.0]])


def test_determinant_expression_is_the_determinant():
    assert float(ic.evaluate(ic.simplify(DETERMINANT), X=X0)) == pytest.approx(-24.0)


def test_determinant_gradient_at_x0():
    gradient = ic.diff(DETERMINANT, "X_ab")
    np.testing.assert_allclose(
        ic.evaluate(gradient, X=X0, out="ab"), [[-4.0, -6.0], [-2.0, 3.0]], atol=1e-12
    )


def test_determinant_gradient_is_the_cofactor_matrix():
    X = RNG.normal(size=(2, 2))
    gradient = ic.diff(DETERMINANT, "X_ab")
    cofactor = np.linalg.det(X) * np.linalg.inv(X).T
    np.testing.assert_allclose(ic.evaluate(gradient, X=X, out="ab"), cofactor, rtol=1e-12)


# -- seed 001: the neural-layer loss gradient loss_{,(gh)} -----------------------------------

LAYER = "yhat_i = sigma(W_ij x_j); loss = (yhat_j - y_j)(yhat_j - y_j); "
LAYER_ARRAYS = {"W": RNG.normal(size=(4, 3)), "x": RNG.normal(size=3), "y": RNG.normal(size=4)}


def _layer_gradient_closed_form(W, x, y):
    """2 (ŷ − y) ⊙ σ'(Wx) xᵀ."""
    z = W @ x
    yhat = _sigmoid(z)
    return 2 * np.outer((yhat - y) * yhat * (1 - yhat), x)


def test_neural_layer_loss_gradient_comma_form():
    gradient = ic.simplify(LAYER + "loss_{,(gh)}", var="W")
    assert gradient.free_indices == ("g", "h")
    np.testing.assert_allclose(
        ic.evaluate(gradient, LAYER_ARRAYS, out="gh"),
        _layer_gradient_closed_form(**LAYER_ARRAYS),
        rtol=1e-12,
    )


def test_neural_layer_loss_gradient_diff_form_matches_finite_differences():
    gradient = assert_derivative_matches(LAYER + "loss", "W_gh", LAYER_ARRAYS)
    np.testing.assert_allclose(
        ic.evaluate(gradient, LAYER_ARRAYS, out="gh"),
        _layer_gradient_closed_form(**LAYER_ARRAYS),
        rtol=1e-12,
    )


def test_neural_layer_update_lowers_the_loss():
    gradient = ic.simplify(LAYER + "loss_{,(gh)}", var="W")
    loss = ic.compile(LAYER + "loss")
    arrays = dict(LAYER_ARRAYS)
    before = float(loss(arrays))
    arrays["W"] = arrays["W"] - 0.1 * ic.evaluate(gradient, arrays, out="gh")
    assert float(loss(arrays)) < before


# -- seed 003: the chain-rule network ------------------------------------------------------

CHAIN = (
    "a = (w + x + y + z)^2; b = (w + x - y - z)^2; u = (a + b)^2; v = (a - b)^2; f = (u + v)^2; f"
)
CHAIN_POINT = {"w": -1.0, "x": 0.0, "y": -2.0, "z": 1.0}


def test_chain_network_value_is_1024():
    assert float(ic.evaluate(CHAIN, CHAIN_POINT)) == 1024.0


@pytest.mark.parametrize("variable", ["w", "x", "y", "z"])
def test_chain_network_partial_derivative_is_minus_4096(variable):
    derivative = ic.diff(CHAIN, variable)
    assert float(ic.evaluate(derivative, CHAIN_POINT)) == pytest.approx(-4096.0, rel=1e-12)


def test_chain_network_gradient_matches_finite_differences_at_random_point():
    point = {name: RNG.uniform(-0.6, 0.6) for name in "wxyz"}
    for variable in "wxyz":
        assert_derivative_matches(CHAIN, variable, point, rtol=1e-6)


# -- seed 003: log-sum-exp ------------------------------------------------------------------


def test_log_sum_exp_gradient_at_zero_log_two():
    point = {"x": 0.0, "y": np.log(2.0)}
    expr = "log(exp(x) + exp(y))"
    assert float(ic.evaluate(expr, point)) == pytest.approx(np.log(3.0))
    gradient = [float(ic.evaluate(ic.diff(expr, v), point)) for v in ("x", "y")]
    np.testing.assert_allclose(gradient, [1 / 3, 2 / 3], rtol=1e-12)


def test_log_sum_exp_vector_gradient_is_softmax():
    gradient = ic.diff("log(sum_i(exp(x_i)))", "x_k")
    np.testing.assert_allclose(
        ic.evaluate(gradient, x=[0.0, np.log(2.0)]), [1 / 3, 2 / 3], rtol=1e-12
    )
    x = RNG.normal(size=5)
    np.testing.assert_allclose(ic.evaluate(gradient, x=x), np.exp(x) / np.exp(x).sum(), rtol=1e-12)


# -- seed 003: the Hessian of x·exp(−x² − y²) ------------------------------------------------

GAUSSIAN = "x exp(-x^2 - y^2)"


def _gaussian_hessian(x, y):
    e = np.exp(-(x**2) - y**2)
    return np.array(
        [
            [e * (4 * x**3 - 6 * x), e * (4 * x**2 * y - 2 * y)],
            [e * (4 * x**2 * y - 2 * y), e * (4 * x * y**2 - 2 * x)],
        ]
    )


def _hessian_at(x, y):
    point = {"x": x, "y": y}
    return np.array(
        [[float(ic.evaluate(ic.diff(GAUSSIAN, [a, b]), point)) for b in "xy"] for a in "xy"]
    )


@pytest.mark.parametrize(("x", "y"), [(-1.0, 0.0), (0.3, -0.7), (1.2, 0.4)])
def test_gaussian_hessian_matches_closed_form(x, y):
    np.testing.assert_allclose(_hessian_at(x, y), _gaussian_hessian(x, y), rtol=1e-12, atol=1e-15)


def test_gaussian_quadratic_approximation_at_minus_one_zero():
    """The seed's approximation e⁻¹(−1 − (x+1) + (x+1)² + y²): gradient (−1/e, 0), Hessian 2/e·I."""
    point = {"x": -1.0, "y": 0.0}
    gradient = [float(ic.evaluate(ic.diff(GAUSSIAN, v), point)) for v in "xy"]
    np.testing.assert_allclose(gradient, [-np.exp(-1), 0.0], atol=1e-15)
    np.testing.assert_allclose(_hessian_at(-1.0, 0.0), 2 * np.exp(-1) * np.eye(2), atol=1e-15)


# -- tr(I − A): the derivative SymPy gets wrong ----------------------------------------------


def test_trace_of_identity_minus_a_is_n_minus_trace():
    A = RNG.normal(size=(5, 5))
    assert float(ic.evaluate("delta_ii - A_ii", A=A)) == pytest.approx(5 - np.trace(A))


def test_derivative_of_squared_trace_of_identity_minus_a():
    A = RNG.normal(size=(5, 5))
    derivative = assert_derivative_matches("(delta_ii - A_ii)^2", "A_gh", {"A": A})
    value = ic.evaluate(derivative, A=A, out="gh", dims={"g": 5, "h": 5})
    np.testing.assert_allclose(value, -2 * (5 - np.trace(A)) * np.eye(5), rtol=1e-12)
    assert np.abs(value).max() > 0  # SymPy 1.14 returns 0 here
