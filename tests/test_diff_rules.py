"""Every differentiation rule of issue 3, checked against central finite differences.

Each case names an expression, the variable with its derivative indices, and the axis
order of the expression's value; `assert_derivative_matches` evaluates ``ic.diff`` with
that order followed by the derivative indices and compares it with central differences.
"""

from __future__ import annotations

import numpy as np
import pytest
from finite_difference import assert_derivative_matches, numeric_derivative

import indexcalc as ic
from indexcalc.algebra import broadcast_constant

N, M = 3, 4  # x, y, z, A have size N; W is M x N and u has size M, so axes cannot be confused


def make_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays; x keeps away from 0 so abs, sign, step and relu are smooth there."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=N)
    return {
        "A": rng.normal(size=(N, N)),
        "B": rng.normal(size=(N, N)),
        "W": rng.normal(size=(M, N)),
        "T": rng.normal(size=(N, N, N)),
        "R": rng.normal(size=(2, N, M)),
        "x": np.sign(x) * (0.3 + np.abs(x)),
        "y": rng.normal(size=N),
        "z": rng.normal(size=N),
        "u": rng.normal(size=M),
        "p": rng.uniform(0.5, 2.0, size=N),
        "q": rng.normal(size=N),
        "a": np.float64(1.3),
        "b": np.float64(0.7),
        "w": np.float64(-0.4),
    }


ARRAYS = make_arrays()


def evaluate(expr, out: str = "", **dims: int) -> np.ndarray:
    return np.asarray(ic.evaluate(expr, ARRAYS, out=out or None, dims=dims or None))


def check(expr: str, wrt: str, out: str = "", **kwargs) -> ic.Expr:
    return assert_derivative_matches(expr, wrt, ARRAYS, out, **kwargs)


# -- constants and variables ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "free"),
    [
        ("3", ""),
        ("2.5 + 4", ""),
        ("y_i", "i"),
        ("A_ij y_j", "i"),
        ("delta_ij", "ij"),
        ("eps_ijl", "ijl"),
        ("exp(y_i) ⊙ z_i", "i"),
        ("a^b", ""),
    ],
)
def test_constant_derivative_is_zeros_of_its_shape(expr, free):
    derivative = ic.diff(expr, "x_k")
    assert broadcast_constant(derivative) == 0
    assert derivative.free_indices == tuple(sorted(free + "k"))
    value = evaluate(derivative, free + "k", **dict.fromkeys(free, N))
    np.testing.assert_array_equal(value, np.zeros((N,) * len(free + "k")))


def test_derivative_of_vector_by_itself_is_delta():
    derivative = ic.diff("x_i", "x_k")
    assert str(derivative) == "δ_ik"
    assert derivative.axis == ("x", 0)  # it runs over x's axis, so x's array sizes it
    np.testing.assert_array_equal(ic.evaluate(derivative, x=np.ones(4)), np.eye(4))
    np.testing.assert_array_equal(ic.evaluate(derivative, dims={"i": 4, "k": 4}), np.eye(4))


def test_derivative_of_matrix_by_itself_is_product_of_deltas():
    derivative = check("W_ij", "W_gh", "ij")
    assert str(derivative) == str(ic.simplify("delta_ig delta_jh")) == "δ_ig δ_jh"
    expected = np.einsum("ig,jh->ijgh", np.eye(M), np.eye(N))
    np.testing.assert_array_equal(
        ic.evaluate(derivative, out="ijgh", dims={"i": M, "g": M, "j": N, "h": N}), expected
    )
    from_w = ic.evaluate(derivative, out="ijgh", W=np.zeros((M, N)))
    np.testing.assert_array_equal(from_w, expected)


def test_derivative_of_rank3_tensor_by_itself_is_three_deltas():
    derivative = check("R_ijk", "R_abc", "ijk")
    assert str(derivative) == str(ic.simplify("delta_ia delta_jb delta_kc"))
    expected = np.einsum("ia,jb,kc->ijkabc", np.eye(2), np.eye(3), np.eye(4))
    from_r = ic.evaluate(derivative, out="ijkabc", R=np.zeros((2, 3, 4)))
    np.testing.assert_array_equal(from_r, expected)


@pytest.mark.parametrize(
    ("expr", "wrt", "out"),
    [
        ("T_ijk x_i x_j x_k", "x_l", ""),
        ("T_ijk x_k", "x_l", "ij"),
        ("T_ijk x_j x_k", "T_abc", "i"),
        ("R_ijk u_k", "R_abc", "ij"),
        ("u_k R_ijk y_j", "u_l", "i"),
    ],
)
def test_rank3_tensor_contractions_match_finite_differences(expr, wrt, out):
    check(expr, wrt, out)


def test_scalar_variable_derivative():
    derivative = check("w^3 + w", "w")
    assert float(ic.evaluate(derivative, w=-0.4)) == pytest.approx(3 * 0.16 + 1)


# -- sums and products ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "out"),
    [
        ("A_ij x_j + B_ij x_j - x_i", "i"),
        ("x_i x_i + y_i x_i + 2", ""),
        ("-(A_ij x_j) + 3 y_i", "i"),
    ],
)
def test_sum_rule(expr, out):
    check(expr, "x_k", out)


@pytest.mark.parametrize(
    ("expr", "out"),
    [
        ("x_i A_ij x_j", ""),
        ("x_i A_ij B_jk x_k", ""),
        ("x_i x_i x_j y_j", ""),
        ("x_i A_ij x_j x_k y_k", ""),
        ("x_i A_ij x_j y_k", "k"),
        ("x_i (x_j A_jk)", "ik"),
        ("(x_i y_i)(x_j z_j)(x_k A_kl x_l)", ""),
    ],
)
def test_product_rule_over_every_factor_of_a_contraction(expr, out):
    check(expr, "x_m", out)


def test_product_rule_for_matrix_variable():
    check("u_i W_ij x_j", "W_gh")
    check("(u_i W_ij x_j)(u_k W_kl y_l)", "W_gh")


@pytest.mark.parametrize(
    ("expr", "out"),
    [("x_i ⊙ y_i", "i"), ("x_i ⊙ x_i ⊙ x_i", "i"), ("(A_ij x_j) ⊙ x_i", "i"), ("x_i .* z_i", "i")],
)
def test_hadamard_product_rule(expr, out):
    check(expr, "x_k", out)


@pytest.mark.parametrize(
    "expr",
    [
        "sum_i(x_i y_i x_i)",
        "sum_i(x_i)",
        "sum_i(x_i^3)",
        "sum_i(log(1 + exp(-y_i A_ij x_j)))",
    ],
)
def test_sum_reduction_rule(expr):
    check(expr, "x_k")


def test_logistic_loss_gradient_closed_form():
    derivative = check("sum_i(log(1 + exp(-y_i A_ij x_j)))", "x_k")
    margin = ARRAYS["y"] * (ARRAYS["A"] @ ARRAYS["x"])
    expected = -ARRAYS["A"].T @ (ARRAYS["y"] / (1 + np.exp(margin)))
    np.testing.assert_allclose(evaluate(derivative, "k"), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("expr", "wrt", "out"),
    [
        ("x_i / (1 + x_j x_j)", "x_k", "i"),
        ("(x_j y_j) / (x_k x_k)", "x_l", ""),
        ("y_i / x_i", "x_k", "i"),
        ("x_i x_i / w", "w", ""),
        ("1 / w", "w", ""),
    ],
)
def test_quotient_rule(expr, wrt, out):
    check(expr, wrt, out)


def test_quotient_by_a_number_differentiates():
    derivative = ic.diff("x_i / 4", "x_k")
    np.testing.assert_allclose(evaluate(derivative, "ik", i=N, k=N), np.eye(N) / 4)


def test_division_by_a_number_evaluates():
    np.testing.assert_allclose(evaluate("x_i / 4", "i"), ARRAYS["x"] / 4)
    check("tan(x_i / 4)", "x_k", "i")


@pytest.mark.parametrize(
    ("expr", "out"),
    [
        ("(x_j x_j)^3", ""),
        ("(x_j x_j)^(1/2)", ""),
        ("(1 + x_j x_j)^-2", ""),
        ("x_i^3", "i"),
        ("x_i^-2", "i"),
    ],
)
def test_power_rule_with_constant_exponent(expr, out):
    check(expr, "x_k", out)


@pytest.mark.parametrize(
    ("expr", "wrt", "out"),
    [
        ("p_i^q_i", "p_k", "i"),
        ("p_i^q_i", "q_k", "i"),
        ("p_i^(x_j y_j)", "x_k", "i"),
        ("a^b", "a", ""),
        ("a^b", "b", ""),
        ("a^a", "a", ""),
        ("2^w", "w", ""),
    ],
)
def test_general_power_rule_with_positive_base(expr, wrt, out):
    check(expr, wrt, out)


def test_general_power_closed_form():
    derivative = ic.diff("a^a", "a")
    assert float(ic.evaluate(derivative, a=1.3)) == pytest.approx(1.3**1.3 * (1 + np.log(1.3)))


# -- chain rule through every built-in function ---------------------------------------------

# An argument in each function's safe domain; x stays away from 0 (see make_arrays).
FUNCTION_ARGUMENTS = {
    "exp": "A_ij x_j",
    "log": "x_i^2 + 1",
    "log1p": "x_i^2",
    "sin": "A_ij x_j",
    "cos": "A_ij x_j",
    "tan": "0.25 A_ij x_j",
    "tanh": "A_ij x_j",
    "sqrt": "x_i ⊙ x_i + y_i ⊙ y_i",
    "abs": "A_ij x_j",
    "sign": "A_ij x_j",
    "step": "A_ij x_j",
    "relu": "A_ij x_j",
    "sigmoid": "A_ij x_j",
    "σ": "A_ij x_j",
    "sigma": "A_ij x_j",
    "softplus": "A_ij x_j",
}


def test_function_arguments_are_in_safe_domain():
    inner = ARRAYS["A"] @ ARRAYS["x"]
    assert np.min(np.abs(inner)) > 0.05  # abs, sign, step, relu are smooth here
    assert np.max(np.abs(0.25 * inner)) < 1.2  # tan is far from its pole
    assert np.min(ARRAYS["x"] ** 2 + ARRAYS["y"] ** 2) > 0.05  # sqrt away from 0


@pytest.mark.parametrize("name", sorted(FUNCTION_ARGUMENTS))
def test_chain_rule_through_function(name):
    check(f"{name}({FUNCTION_ARGUMENTS[name]})", "x_k", "i")


@pytest.mark.parametrize("name", sorted(FUNCTION_ARGUMENTS))
def test_chain_rule_through_function_inside_a_contraction(name):
    check(f"z_i {name}({FUNCTION_ARGUMENTS[name]})", "x_k")


@pytest.mark.parametrize("name", sorted(FUNCTION_ARGUMENTS))
def test_function_derivative_prints_and_parses_back(name):
    derivative = ic.diff(f"{name}({FUNCTION_ARGUMENTS[name]})", "x_k")
    for text in (str(derivative), derivative.ascii()):
        reparsed = ic.parse(text)
        np.testing.assert_allclose(
            evaluate(reparsed, "ik", i=N, k=N), evaluate(derivative, "ik", i=N, k=N), rtol=1e-12
        )


@pytest.mark.parametrize("name", ["sign", "step"])
def test_piecewise_constant_function_derivative_is_zero(name):
    derivative = ic.diff(f"{name}(W_ij x_j)", "x_k")
    assert broadcast_constant(derivative) == 0
    # Zeros over i and k, sized by W's rows and x without dims=.
    np.testing.assert_array_equal(evaluate(derivative, "ik"), np.zeros((M, N)))


@pytest.mark.parametrize("name", ["sigmoid", "σ", "sigma"])
def test_sigmoid_derivative_prints_in_terms_of_sigmoid(name):
    derivative = ic.diff(f"{name}(x_i)", "x_k")
    assert "σ(" in str(derivative)
    sig = 1 / (1 + np.exp(-ARRAYS["x"]))
    np.testing.assert_allclose(evaluate(derivative, "ik"), np.diag(sig * (1 - sig)), rtol=1e-12)


@pytest.mark.parametrize(
    ("expr", "closed_form"),
    [
        ("tanh(x_i)", lambda x: 1 - np.tanh(x) ** 2),
        ("softplus(x_i)", lambda x: 1 / (1 + np.exp(-x))),
        ("relu(x_i)", lambda x: (x > 0).astype(float)),
        ("abs(x_i)", np.sign),
        ("sqrt(x_i^2 + 1)", lambda x: x / np.sqrt(x**2 + 1)),
        ("log1p(x_i^2)", lambda x: 2 * x / (1 + x**2)),
        ("tan(x_i)", lambda x: 1 + np.tan(x) ** 2),
        ("cos(x_i)", lambda x: -np.sin(x)),
    ],
)
def test_function_derivative_closed_form(expr, closed_form):
    derivative = ic.diff(expr, "x_k")
    np.testing.assert_allclose(
        evaluate(derivative, "ik"), np.diag(closed_form(ARRAYS["x"])), rtol=1e-12, atol=1e-15
    )


def test_nested_functions_chain_rule():
    check("sigmoid(tanh(A_ij softplus(x_j)))", "x_k", "i")
    check("log(1 + exp(sin(A_ij x_j)))", "A_gh", "i")


# -- δ, ε and definitions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "wrt", "out"),
    [
        ("delta_ij x_j", "x_k", "i"),
        ("delta_ij A_jk x_k", "x_l", "i"),
        ("eps_ijk x_j y_k", "x_l", "i"),
        ("eps_ijk x_j x_k", "x_l", "i"),
        ("eps_ijk A_jk", "A_ab", "i"),
        ("delta_ijk x_j y_k", "x_l", "i"),
    ],
)
def test_delta_and_epsilon_are_constants(expr, wrt, out):
    check(expr, wrt, out)


def test_cross_product_with_itself_has_zero_derivative():
    derivative = ic.diff("eps_ijk x_j x_k", "x_l")
    np.testing.assert_allclose(evaluate(derivative, "il", i=N, l=N), np.zeros((N, N)), atol=1e-15)


@pytest.mark.parametrize(
    ("program", "out"),
    [
        ("f_i = A_ij x_j; g = f_i f_i; g", ""),
        ("h_i = tanh(A_ij x_j); sum_i(h_i ⊙ h_i)", ""),
        ("h_i = tanh(A_ij x_j); h_i", "i"),
        ("a1 = x_i x_i; a2 = a1^2 + a1; a2 y_j", "j"),
    ],
)
def test_definitions_are_substituted_before_differentiating(program, out):
    check(program, "x_k", out)


def test_definition_derivative_equals_inlined_derivative():
    defined = ic.diff("f_i = A_ij x_j; g = f_i f_i; g", "x_k")
    inlined = ic.diff("(A_ij x_j)(A_il x_l)", "x_k")
    np.testing.assert_allclose(evaluate(defined, "k"), evaluate(inlined, "k"), rtol=1e-12)


# -- comma derivatives ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "expr", "wrt", "out", "var"),
    [
        ("f = x_i A_ij x_j; f_{,i}", "x_i A_ij x_j", ["x_i"], "i", "x"),
        ("f_j = tanh(A_jk x_k); f_{j,i}", "tanh(A_jk x_k)", ["x_i"], "ji", "x"),
        ("f_k = T_kab x_a x_b; f_{k,ij}", "T_kab x_a x_b", ["x_i", "x_j"], "kij", "x"),
        ("f = u_a W_ab x_b; f_{,(ij)}", "u_a W_ab x_b", ["W_ij"], "ij", "W"),
        ("(x_i A_ij x_j)_{,k}", "x_i A_ij x_j", ["x_k"], "k", "x"),
        ("(sin(A_ij x_j))_{,k}", "sin(A_ij x_j)", ["x_k"], "ik", "x"),
        ("f = x_i A_ij x_j; g_k = f_{,k}; g_{k,l}", "x_i A_ij x_j", ["x_k", "x_l"], "kl", "x"),
        ("x_{i,k}", "x_i", ["x_k"], "ik", "x"),
    ],
)
def test_comma_derivative_equals_diff(program, expr, wrt, out, var):
    comma = ic.simplify(program, var=var)
    direct = ic.diff(expr, wrt, var=var)
    np.testing.assert_allclose(evaluate(comma, out), evaluate(direct, out))  # sized by arrays


def test_comma_gradient_matches_finite_differences():
    comma = ic.simplify("f_j = tanh(A_jk x_k); f_{j,i}")
    numeric = numeric_derivative("tanh(A_jk x_k)", "x", ARRAYS, "j")
    np.testing.assert_allclose(evaluate(comma, "ji"), numeric, rtol=1e-5, atol=1e-6)


def test_comma_derivative_by_matrix_matches_finite_differences():
    comma = ic.simplify("yhat_i = sigma(W_ij x_j); loss = sum_i(yhat_i u_i); loss_{,(gh)}", var="W")
    numeric = numeric_derivative("sum_i(sigma(W_ij x_j) u_i)", "W", ARRAYS)
    np.testing.assert_allclose(evaluate(comma, "gh"), numeric, rtol=1e-5, atol=1e-6)


def test_comma_divergence_sums_the_repeated_index():
    divergence = ic.simplify("f_i = x_i x_j x_j; f_{i,i}")
    x = ARRAYS["x"]
    np.testing.assert_allclose(evaluate(divergence), (N + 2) * x @ x, rtol=1e-12)


@pytest.mark.parametrize("program", ["g_{,i}", "f_i = A_ij x_j; h_{i,k}", "A_{ij,k}"])
def test_comma_derivative_of_undefined_name_is_an_error(program):
    with pytest.raises(ic.IndexCalcError, match="neither defined nor the variable"):
        ic.simplify(program)


# -- derivative indices ---------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "wrt"), [("x_i A_ij x_j", "x_j"), ("x_i A_ij x_j", "x_i")])
def test_derivative_index_equal_to_summed_index_is_renamed(expr, wrt):
    derivative = check(expr, wrt)
    assert derivative.free_indices == (wrt[-1],)
    A, x = ARRAYS["A"], ARRAYS["x"]
    np.testing.assert_allclose(evaluate(derivative), (A + A.T) @ x, rtol=1e-12)


def test_derivative_index_summed_in_a_function_argument_is_renamed():
    derivative = check("tanh(A_ij x_j) z_i", "x_j")
    assert derivative.free_indices == ("j",)


@pytest.mark.parametrize(
    ("expr", "wrt"),
    [("A_ij x_j", "x_i"), ("x_i", "x_i"), ("exp(x_i)", ["x_k", "x_k"]), ("W_gh", "W_gh")],
)
def test_derivative_index_already_free_is_an_error(expr, wrt):
    with pytest.raises(ic.DifferentiationError, match="already a free index"):
        ic.diff(expr, wrt)
    assert issubclass(ic.DifferentiationError, ic.IndexCalcError)


def test_variable_rank_mismatch_is_an_error():
    with pytest.raises(ic.IndexCalcError, match="'A' has 2 indices"):
        ic.diff("A_ij x_j", "A_k")
