"""Evaluation: every construct gives the numbers of a hand-written NumPy formula.

Also covers dtypes, the errors a user can cause with arrays, plan reuse in compiled
functions, common subexpressions computed once, and deltas that are never materialised.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools

import numpy as np
import pytest

import indexcalc as ic
from indexcalc.functions import FUNCTIONS

# `indexcalc.compile` the attribute is the function; the module holds the planner.
compile_module = importlib.import_module("indexcalc.compile")

RNG = np.random.default_rng(20240607)
RTOL = 1e-10  # float64 against float64; sigmoid via tanh differs in the last bits


def _sigmoid(u):
    return 1 / (1 + np.exp(-u))


# Sizes differ per index role so that a transposed or mislabelled axis cannot pass.
ARRAYS = {
    "s": RNG.standard_normal(),
    "x": RNG.standard_normal(4),
    "y": RNG.standard_normal(4),
    "z": RNG.standard_normal(4),
    "p": RNG.uniform(0.5, 2.0, 4),
    "q": RNG.uniform(0.5, 2.0, 4),
    "A": RNG.standard_normal((4, 4)),
    "B": RNG.standard_normal((4, 4)),
    "P": RNG.uniform(0.1, 1.0, (4, 4)),
    "C": RNG.standard_normal((4, 5)),
    "D": RNG.standard_normal((5, 3)),
    "T": RNG.standard_normal((2, 3, 4)),
    "Q": RNG.standard_normal((3, 3, 2)),
    "a": RNG.standard_normal(3),
    "b": RNG.standard_normal(3),
    "c": RNG.standard_normal(3),
    "X": RNG.standard_normal((2, 2)),
    "W": RNG.standard_normal((3, 4)),
    "t": RNG.uniform(0.0, 1.0, 3),
    "F": RNG.standard_normal((6, 4)),
    "lab": RNG.choice([-1.0, 1.0], 6),
}


def _case(name, expr, formula, marks=()):
    return pytest.param(expr, formula, id=name, marks=marks)


CONSTRUCTS = [
    # tensors of rank 0-3, transposes, traces
    _case("rank0_scalar", "s", lambda a: a["s"]),
    _case("rank1_vector", "x_i", lambda a: a["x"]),
    _case("rank2_matrix", "C_ij", lambda a: a["C"]),
    _case("rank3_tensor", "T_ijk", lambda a: a["T"]),
    _case("braced_subscript", "C_{i j}", lambda a: a["C"]),
    _case("transpose", "C_ji", lambda a: a["C"].T),
    _case("rank3_reversed_axes", "T_kji", lambda a: np.transpose(a["T"], (2, 1, 0))),
    _case("rank3_cycled_axes", "T_jki", lambda a: np.einsum("jki->ijk", a["T"])),
    _case("trace", "A_ii", lambda a: np.trace(a["A"])),
    _case("partial_trace_rank3", "Q_iik", lambda a: np.einsum("iik->k", a["Q"])),
    _case("diagonal_held_in_sum", "sum_i(A_ii x_i)", lambda a: np.diag(a["A"]) @ a["x"]),
    # contractions and outer products
    _case("matrix_vector", "A_ij x_j", lambda a: a["A"] @ a["x"]),
    _case("vector_matrix", "x_i C_ij", lambda a: a["x"] @ a["C"]),
    _case("matrix_matrix", "C_ij D_jk", lambda a: a["C"] @ a["D"]),
    _case("matrix_chain", "A_ij C_jk D_kl", lambda a: a["A"] @ a["C"] @ a["D"]),
    _case("quadratic_form", "x_i A_ij x_j", lambda a: a["x"] @ a["A"] @ a["x"]),
    _case("transposed_contraction", "A_ji x_j", lambda a: a["A"].T @ a["x"]),
    _case("rank3_times_vector", "T_ijk x_k", lambda a: a["T"] @ a["x"]),
    _case(
        "rank3_double_contraction",
        "T_ijk W_jk",
        lambda a: np.einsum("ijk,jk->i", a["T"], a["W"]),
    ),
    _case("inner_product", "x_i y_i", lambda a: a["x"] @ a["y"]),
    _case("outer_product", "x_i y_j", lambda a: np.outer(a["x"], a["y"])),
    _case("outer_vector_matrix", "a_i C_jk", lambda a: np.einsum("i,jk->ijk", a["a"], a["C"])),
    _case("explicit_star_product", "A_ij * x_j", lambda a: a["A"] @ a["x"]),
    _case("number_times_tensor", "2 x_i", lambda a: 2 * a["x"]),
    _case("fraction_times_tensor", "3/2 x_i", lambda a: 1.5 * a["x"]),
    _case("exponent_number_times_tensor", "1e-3 x_i", lambda a: 1e-3 * a["x"]),
    # elementwise products
    _case("hadamard", "x_i ⊙ y_i", lambda a: a["x"] * a["y"]),
    _case("hadamard_ascii", "x_i .* y_i", lambda a: a["x"] * a["y"]),
    _case("elementwise_outer", "x_i .* y_j", lambda a: np.outer(a["x"], a["y"])),
    _case("hadamard_matrices", "A_ij ⊙ B_ij", lambda a: a["A"] * a["B"]),
    _case("elementwise_row_scaling", "A_ij ⊙ x_j", lambda a: a["A"] * a["x"][None, :]),
    # explicit sums
    _case("sum_vector", "sum_i(x_i)", lambda a: a["x"].sum()),
    _case("sum_over_rows", "sum_i(C_ij)", lambda a: a["C"].sum(axis=0)),
    _case("sum_two_indices", "sum_{ij}(C_ij)", lambda a: a["C"].sum()),
    _case("sum_sigma_spelling", "Σ_i(x_i ⊙ y_i)", lambda a: a["x"] @ a["y"]),
    _case("sum_n_ary_spelling", "∑_i(x_i)", lambda a: a["x"].sum()),
    _case("sum_held_triple", "sum_i(x_i y_i z_i)", lambda a: np.sum(a["x"] * a["y"] * a["z"])),
    _case(
        "sum_held_with_contraction",
        "sum_{ij}(C_ij x_i)",
        lambda a: np.sum(a["C"] * a["x"][:, None]),
    ),
    # sums, differences, negation
    _case("number_plus_vector", "1 + x_i", lambda a: 1 + a["x"]),
    _case("matrix_plus_transpose", "A_ij + A_ji", lambda a: a["A"] + a["A"].T),
    _case("difference", "x_i - y_i", lambda a: a["x"] - a["y"]),
    _case("negation", "-x_i", lambda a: -a["x"]),
    _case("number_minus_scalar", "2 - x_i y_i", lambda a: 2 - a["x"] @ a["y"]),
    _case("residual", "A_ij x_j - y_i", lambda a: a["A"] @ a["x"] - a["y"]),
    # division and powers
    _case("division_elementwise", "x_i / p_i", lambda a: a["x"] / a["p"]),
    _case(
        "division_by_norm",
        "x_i / sqrt(x_j x_j)",
        lambda a: a["x"] / np.linalg.norm(a["x"]),
    ),
    _case("division_by_broadcast_vector", "C_ij / q_i", lambda a: a["C"] / a["q"][:, None]),
    _case("division_by_scalar_tensor", "x_i / s", lambda a: a["x"] / a["s"]),
    _case("division_by_number", "x_i / 2", lambda a: a["x"] / 2),
    _case("division_by_float_number", "x_i / 2.0", lambda a: a["x"] / 2),
    _case("square", "x_i^2", lambda a: a["x"] ** 2),
    _case("cube_double_star", "x_i**3", lambda a: a["x"] ** 3),
    _case("negative_power", "p_i^-1", lambda a: 1 / a["p"]),
    _case("fractional_power", "p_i^0.5", lambda a: np.sqrt(a["p"])),
    _case("general_power", "p_i^y_i", lambda a: a["p"] ** a["y"]),
    _case("power_of_contraction", "(x_i x_i)^2", lambda a: (a["x"] @ a["x"]) ** 2),
    # Kronecker delta
    _case("delta_in_product", "δ_ij x_j", lambda a: a["x"]),
    _case("delta_ascii", "delta_ij x_j", lambda a: a["x"]),
    _case("delta_relabels_matrix", "δ_ij C_jk", lambda a: a["C"]),
    _case("delta_inner_product", "δ_ij x_i y_j", lambda a: a["x"] @ a["y"]),
    _case("two_deltas_in_product", "δ_ik δ_jl C_kl", lambda a: a["C"]),
    _case("pair_delta_in_product", "δ_{(ij)(kl)} C_kl", lambda a: a["C"]),
    _case("delta_three_indices", "δ_ijk x_i y_j z_k", lambda a: np.sum(a["x"] * a["y"] * a["z"])),
    _case("delta_held_in_sum", "sum_i(δ_ii x_i)", lambda a: a["x"].sum()),
    _case(
        "delta_kept_in_output_sized_by_arrays",
        "C_ij ⊙ δ_jk",
        lambda a: np.einsum("ij,jk->ijk", a["C"], np.eye(5)),
    ),
    # Levi-Civita symbol
    _case("epsilon_cross_product", "eps_ijk a_j b_k", lambda a: np.cross(a["a"], a["b"])),
    _case(
        "epsilon_triple_product",
        "ε_ijk a_i b_j c_k",
        lambda a: np.linalg.det(np.array([a["a"], a["b"], a["c"]])),
    ),
    _case(
        "epsilon_2d_cross",
        "eps_ij X_ij",
        lambda a: a["X"][0, 1] - a["X"][1, 0],
    ),
    _case(
        "epsilon_determinant_2x2_coefficient",
        "0.5 eps_ij eps_kl X_ik X_jl",
        lambda a: np.linalg.det(a["X"]),
    ),
    _case(
        "epsilon_determinant_2x2_divided",
        "eps_ij eps_kl X_ik X_jl / 2",
        lambda a: np.linalg.det(a["X"]),
    ),
    # definitions and a loss
    _case(
        "definition_renamed", "u_i = A_ij x_j; u_k u_k", lambda a: np.sum((a["A"] @ a["x"]) ** 2)
    ),
    _case(
        "definitions_squared_loss",
        "yhat_i = sigma(W_ij x_j); L = sum_i((yhat_i - t_i)^2); L",
        lambda a: np.sum((_sigmoid(a["W"] @ a["x"]) - a["t"]) ** 2),
    ),
    _case(
        "definition_with_comment",
        "# the residual\nr_i = A_ij x_j - y_i\nr_i r_i",
        lambda a: np.sum((a["A"] @ a["x"] - a["y"]) ** 2),
    ),
    _case(
        "logistic_loss",
        "sum_i(log(1 + exp(-lab_i F_ij x_j)))",
        lambda a: np.sum(np.log(1 + np.exp(-a["lab"] * (a["F"] @ a["x"])))),
    ),
]


@pytest.mark.parametrize(("expr", "formula"), CONSTRUCTS)
def test_construct_matches_numpy(expr, formula):
    expected = np.asarray(formula(ARRAYS))
    result = np.asarray(ic.evaluate(expr, ARRAYS))
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, rtol=RTOL, atol=1e-12)


FUNCTION_CASES = [
    ("exp", "x", np.exp),
    ("log", "p", np.log),
    ("log1p", "p", np.log1p),
    ("sin", "x", np.sin),
    ("cos", "x", np.cos),
    ("tan", "x", np.tan),
    ("tanh", "x", np.tanh),
    ("sqrt", "p", np.sqrt),
    ("abs", "x", np.abs),
    ("sign", "x", np.sign),
    ("step", "x", lambda u: (u > 0).astype(float)),
    ("relu", "x", lambda u: np.maximum(u, 0)),
    ("sigmoid", "x", _sigmoid),
    ("σ", "x", _sigmoid),
    ("sigma", "x", _sigmoid),
    ("softplus", "x", lambda u: np.log(1 + np.exp(u))),
]


@pytest.mark.parametrize(
    ("name", "arg", "formula"), FUNCTION_CASES, ids=[c[0] for c in FUNCTION_CASES]
)
def test_function_matches_numpy(name, arg, formula):
    result = ic.evaluate(f"{name}({arg}_i)", ARRAYS)
    np.testing.assert_allclose(result, formula(ARRAYS[arg]), rtol=RTOL, atol=1e-15)


@pytest.mark.parametrize(
    ("name", "arg", "formula"), FUNCTION_CASES, ids=[c[0] for c in FUNCTION_CASES]
)
def test_function_of_contraction_matches_numpy(name, arg, formula):
    matrix = "P" if arg == "p" else "A"
    result = ic.evaluate(f"{name}({matrix}_ij {arg}_j)", ARRAYS)
    expected = formula(ARRAYS[matrix] @ ARRAYS[arg])
    np.testing.assert_allclose(result, expected, rtol=RTOL, atol=1e-15)


def test_step_and_sign_of_zero_are_zero():
    u = np.array([-2.0, -0.0, 0.0, 3.0])
    np.testing.assert_array_equal(ic.evaluate("step(u_i)", u=u), [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(ic.evaluate("sign(u_i)", u=u), [-1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(ic.evaluate("relu(u_i)", u=u), [0.0, 0.0, 0.0, 3.0])


def test_softplus_and_sigmoid_are_stable_for_large_arguments():
    u = np.array([-800.0, 0.0, 800.0])
    np.testing.assert_allclose(ic.evaluate("softplus(u_i)", u=u), [0.0, np.log(2), 800.0])
    np.testing.assert_allclose(ic.evaluate("sigmoid(u_i)", u=u), [0.0, 0.5, 1.0])


# -- deltas and epsilons on their own ----------------------------------------------------


def test_lone_delta_with_dims_is_identity():
    np.testing.assert_array_equal(ic.evaluate("δ_ij", dims={"i": 3, "j": 3}), np.eye(3))


def test_lone_delta_three_indices_with_dims():
    expected = np.zeros((2, 2, 2))
    expected[0, 0, 0] = expected[1, 1, 1] = 1
    np.testing.assert_array_equal(ic.evaluate("δ_ijk", dims=dict.fromkeys("ijk", 2)), expected)


def test_delta_ii_is_the_dimension():
    result = ic.evaluate("δ_ii", dims={"i": 7})
    assert result.shape == ()
    assert result == 7.0


def test_delta_ii_times_tensor_counts_the_dimension():
    result = ic.evaluate("δ_ii x_j", x=ARRAYS["x"], dims={"i": 5})
    np.testing.assert_allclose(result, 5 * ARRAYS["x"])


def test_pair_delta_alone_with_dims_is_product_of_identities():
    expected = np.einsum("ik,jl->ijkl", np.eye(2), np.eye(3))
    result = ic.evaluate("δ_{(ij)(kl)}", dims={"i": 2, "j": 3, "k": 2, "l": 3})
    np.testing.assert_array_equal(result, expected)


def test_delta_kept_in_output_uses_dims_for_its_size():
    result = ic.evaluate("x_i δ_jk", x=ARRAYS["x"], dims={"j": 2, "k": 2})
    np.testing.assert_array_equal(result, np.einsum("i,jk->ijk", ARRAYS["x"], np.eye(2)))


def test_lone_epsilon_rank2_and_rank3():
    np.testing.assert_array_equal(ic.evaluate("eps_ij"), [[0.0, 1.0], [-1.0, 0.0]])
    epsilon = ic.evaluate("ε_ijk")
    assert epsilon.shape == (3, 3, 3)
    assert epsilon[0, 1, 2] == epsilon[1, 2, 0] == epsilon[2, 0, 1] == 1
    assert epsilon[0, 2, 1] == epsilon[2, 1, 0] == epsilon[1, 0, 2] == -1
    assert np.count_nonzero(epsilon) == 6


# -- derivatives evaluate to their closed forms ----------------------------------------


def test_gradient_and_hessian_of_quadratic_form():
    A, x = ARRAYS["A"], ARRAYS["x"]
    gradient = ic.evaluate(ic.diff("x_i A_ij x_j", "x_k"), A=A, x=x)
    hessian = ic.evaluate(ic.diff("x_i A_ij x_j", ["x_k", "x_l"]), A=A, x=x)
    np.testing.assert_allclose(gradient, (A + A.T) @ x, rtol=RTOL)
    np.testing.assert_allclose(hessian, A + A.T, rtol=RTOL)


def test_comma_derivative_in_text_evaluates():
    A, x = ARRAYS["A"], ARRAYS["x"]
    np.testing.assert_allclose(ic.evaluate("(x_i A_ij x_j)_{,k}", A=A, x=x), (A + A.T) @ x)


def test_gradient_of_logistic_loss():
    F, lab, w = ARRAYS["F"], ARRAYS["lab"], ARRAYS["x"]
    loss = "sum_i(log(1 + exp(-y_i X_ij w_j)))"
    gradient = ic.evaluate(ic.diff(loss, "w_k"), X=F, y=lab, w=w)
    expected = -F.T @ (lab * _sigmoid(-lab * (F @ w)))
    np.testing.assert_allclose(gradient, expected, rtol=RTOL)


def test_weight_gradient_via_definitions_and_comma():
    W, x, t = ARRAYS["W"], ARRAYS["x"], ARRAYS["t"]
    program = "yhat_i = sigma(W_ij x_j); L = sum_i((yhat_i - t_i)^2); L_{,(gh)}"
    result = ic.evaluate(program, var="W", W=W, x=x, t=t)
    s = _sigmoid(W @ x)
    np.testing.assert_allclose(result, np.outer(2 * (s - t) * s * (1 - s), x), rtol=RTOL)


# -- out ------------------------------------------------------------------------------


def test_default_output_order_is_alphabetical():
    result = ic.evaluate("x_k C_lm", x=ARRAYS["x"], C=ARRAYS["C"])
    assert result.shape == (4, 4, 5)


def test_out_orders_axes():
    A, B = ARRAYS["A"], ARRAYS["C"]
    kl = ic.evaluate("A_ki C_il", A=A, C=B, out="kl")
    lk = ic.evaluate("A_ki C_il", A=A, C=B, out="lk")
    as_list = ic.evaluate("A_ki C_il", A=A, C=B, out=["l", "k"])
    np.testing.assert_allclose(kl, A @ B, rtol=RTOL)
    np.testing.assert_allclose(lk, (A @ B).T, rtol=RTOL)
    np.testing.assert_array_equal(as_list, lk)


def test_out_orders_rank3_axes():
    result = ic.evaluate("T_ijk", T=ARRAYS["T"], out="kij")
    np.testing.assert_array_equal(result, np.transpose(ARRAYS["T"], (2, 0, 1)))


def test_out_orders_hessian():
    A, x = ARRAYS["C"][:, :4], ARRAYS["x"]
    hessian = ic.diff("x_i A_ij x_j", ["x_k", "x_l"])
    np.testing.assert_allclose(ic.evaluate(hessian, A=A, x=x, out="kl"), A + A.T)
    np.testing.assert_allclose(ic.evaluate(hessian, A=A, x=x, out=("l", "k")), (A + A.T).T)


def test_compiled_out_orders_axes():
    f = ic.compile("x_i y_j", out="ji")
    np.testing.assert_array_equal(
        f(x=ARRAYS["x"], y=ARRAYS["a"]), np.outer(ARRAYS["a"], ARRAYS["x"])
    )


def test_scalar_result_is_zero_dimensional_array():
    for expr in ("x_i x_i", "A_ii", "s", "sum_i(x_i)", "x_i A_ij x_j"):
        result = ic.evaluate(expr, ARRAYS)
        assert isinstance(result, np.ndarray), expr
        assert result.shape == (), expr


def test_scalar_tensor_from_python_float():
    np.testing.assert_allclose(ic.evaluate("s x_i", s=2.5, x=ARRAYS["x"]), 2.5 * ARRAYS["x"])


def test_nested_lists_are_accepted_as_arrays():
    result = ic.evaluate("A_ij x_j", A=[[1, 2], [3, 4]], x=[1.0, -1.0])
    np.testing.assert_array_equal(result, [-1.0, -1.0])


# -- dtypes -------------------------------------------------------------------------


FLOAT32_CASES = [
    pytest.param("A_ij x_j", id="contraction"),
    pytest.param("x_i A_ij x_j", id="quadratic_form"),
    pytest.param("A_ij B_jk", id="matrix_product"),
    pytest.param("x_i ⊙ y_i", id="hadamard"),
    pytest.param("x_i .* y_j", id="elementwise_outer"),
    pytest.param("A_ii", id="trace"),
    pytest.param("sum_i(x_i)", id="sum"),
    pytest.param("-x_i", id="negation"),
    pytest.param("0.5 x_i", id="number_coefficient"),
    pytest.param("x_i / p_i", id="division"),
    pytest.param("x_i / sqrt(x_j x_j)", id="normalisation"),
    pytest.param("x_i^2", id="square"),
    pytest.param("p_i^0.5", id="fractional_power"),
    pytest.param("p_i^y_i", id="general_power"),
    pytest.param("exp(x_i)", id="exp"),
    pytest.param("log(p_i)", id="log"),
    pytest.param("tanh(A_ij x_j)", id="tanh"),
    pytest.param("sigmoid(x_i)", id="sigmoid"),
    pytest.param("softplus(x_i)", id="softplus"),
    pytest.param("step(x_i)", id="step"),
    pytest.param("relu(x_i)", id="relu"),
    pytest.param("δ_ij x_j", id="delta_in_product"),
    pytest.param("x_i / 2", id="division_by_number"),
    pytest.param("1 + x_i", id="number_plus_vector"),
    pytest.param("x_i - 1", id="vector_minus_number"),
    pytest.param("sum_i(log(1 + exp(-y_i A_ij x_j)))", id="logistic_loss"),
    pytest.param("eps_ijk x_j y_k", id="epsilon"),
]


def _float32_arrays():
    names = ("x", "y", "p", "A", "B")
    return {
        name: ARRAYS[name][:3, :3] if ARRAYS[name].ndim == 2 else ARRAYS[name][:3] for name in names
    }


@pytest.mark.parametrize("expr", FLOAT32_CASES)
def test_float32_in_gives_float32_out(expr):
    arrays64 = _float32_arrays()
    arrays32 = {name: a.astype(np.float32) for name, a in arrays64.items()}
    result = ic.evaluate(expr, arrays32)
    assert result.dtype == np.float32
    expected = ic.evaluate(expr, {n: a.astype(np.float64) for n, a in arrays32.items()})
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "expr", ["A_ij x_j", "1 + x_i", "exp(x_i) / p_i", "x_i^2", "eps_ijk x_j y_k", "δ_ij x_j"]
)
def test_float64_stays_float64(expr):
    assert ic.evaluate(expr, _float32_arrays()).dtype == np.float64


def test_integer_inputs_are_converted_to_float():
    A = np.array([[1, 2], [3, 4]])
    x = np.array([5, 6])
    result = ic.evaluate("A_ij x_j / sqrt(x_k x_k)", A=A, x=x)
    assert result.dtype == np.float64
    np.testing.assert_allclose(result, (A @ x) / np.sqrt(61.0))


def test_integer_input_to_negative_power_is_float():
    result = ic.evaluate("x_i^-1", x=np.array([1, 2, 4]))
    np.testing.assert_allclose(result, [1.0, 0.5, 0.25])


def test_boolean_input_is_converted_to_float():
    result = ic.evaluate("m_i ⊙ x_i", m=np.array([True, False, True]), x=np.array([1.0, 2, 3]))
    np.testing.assert_array_equal(result, [1.0, 0.0, 3.0])


# -- errors ------------------------------------------------------------------------


def test_evaluation_error_is_an_indexcalc_error():
    assert issubclass(ic.EvaluationError, ic.IndexCalcError)


def test_missing_array_is_named_and_required_ones_listed():
    with pytest.raises(ic.EvaluationError) as caught:
        ic.evaluate("A_ij x_j + b_i", A=np.eye(2), x=np.ones(2))
    message = str(caught.value)
    assert "missing array b" in message
    assert "A, b, x" in message


def test_missing_arrays_are_all_named():
    with pytest.raises(ic.EvaluationError, match=r"missing arrays A, x"):
        ic.evaluate("A_ij x_j")


def test_wrong_number_of_axes_names_the_array():
    with pytest.raises(ic.EvaluationError) as caught:
        ic.evaluate("A_ij x_j", A=np.eye(3), x=np.ones((3, 1)))
    message = str(caught.value)
    assert "'x'" in message
    assert "2 axes" in message
    assert "1 index" in message


def test_inconsistent_sizes_name_index_arrays_axes_and_sizes():
    with pytest.raises(ic.EvaluationError) as caught:
        ic.evaluate("A_ij x_j", A=np.ones((3, 4)), x=np.ones(5))
    message = str(caught.value)
    assert "'j'" in message
    assert "A (axis 1)" in message
    assert "x (axis 0)" in message
    assert "4" in message
    assert "5" in message


def test_inconsistent_sizes_across_terms_of_a_sum():
    with pytest.raises(ic.EvaluationError) as caught:
        ic.evaluate("A_ij x_j + b_i", A=np.ones((3, 4)), x=np.ones(4), b=np.ones(2))
    message = str(caught.value)
    assert "'i'" in message
    assert "A (axis 0)" in message
    assert "b (axis 0)" in message
    assert "3" in message
    assert "2" in message


def test_inconsistent_sizes_in_a_trace():
    with pytest.raises(ic.EvaluationError, match=r"'i'.*A_ii.*sizes 2 and 3"):
        ic.evaluate("A_ii", A=np.ones((2, 3)))


def test_epsilon_rank_fixes_index_size():
    with pytest.raises(ic.EvaluationError, match=r"'j'.*size 3 in ε.*size 4 in a"):
        ic.evaluate("eps_ijk a_j b_k", a=np.ones(4), b=np.ones(3))


def test_unsized_delta_suggests_dims():
    with pytest.raises(ic.EvaluationError, match=r"index 'i'.*dims=\{'i': n\}"):
        ic.evaluate("δ_ij")


def test_unsized_delta_in_product_suggests_dims():
    with pytest.raises(ic.EvaluationError, match=r"index 'i'.*dims="):
        ic.evaluate("δ_ii x_j", x=np.ones(3))


@pytest.mark.parametrize(
    "value",
    [np.array(["a", "b", "c"]), np.array([object(), object(), object()]), "abc", None],
    ids=["strings", "objects", "str", "none"],
)
def test_non_numeric_array_is_rejected_by_name(value):
    with pytest.raises(ic.EvaluationError, match=r"array 'x'"):
        ic.evaluate("A_ij x_j", A=np.eye(3), x=value)


def test_ragged_array_is_rejected_by_name():
    with pytest.raises(ic.EvaluationError, match=r"array 'x'"):
        ic.evaluate("A_ij x_j", A=np.eye(2), x=[1.0, [2.0, 3.0]])


def test_unknown_index_in_out_is_named():
    with pytest.raises(ic.EvaluationError, match=r"'k'.*not free.*free: i, j"):
        ic.evaluate("x_i y_j", x=np.ones(2), y=np.ones(2), out="ijk")


def test_out_missing_a_free_index_is_named():
    with pytest.raises(ic.EvaluationError, match=r"leaves out the free index 'i'"):
        ic.evaluate("x_i y_j", x=np.ones(2), y=np.ones(2), out="j")


def test_out_repeating_an_index_is_an_error():
    with pytest.raises(ic.EvaluationError, match=r"repeats"):
        ic.evaluate("x_i y_j", x=np.ones(2), y=np.ones(2), out="ii")


def test_out_of_wrong_type_is_an_error():
    with pytest.raises(ic.EvaluationError, match=r"out"):
        ic.evaluate("x_i", x=np.ones(2), out=3)


def test_bad_dims_is_an_error():
    with pytest.raises(ic.EvaluationError, match=r"dims"):
        ic.evaluate("δ_ij", dims={"i": -1, "j": 2})


def _counting(name, monkeypatch):
    """Replace FUNCTIONS[name] by one that counts calls of its NumPy implementation."""
    original = FUNCTIONS[name]
    calls = []

    def counted(u):
        calls.append(u.shape)
        return original.numpy(u)

    monkeypatch.setitem(FUNCTIONS, name, dataclasses.replace(original, numpy=counted))
    return calls


def test_size_error_is_raised_before_anything_is_computed(monkeypatch):
    calls = _counting("sigmoid", monkeypatch)
    f = ic.compile("sigmoid(W_ij x_j) + b_i")
    with pytest.raises(ic.EvaluationError, match=r"'i'"):
        f(W=np.ones((3, 2)), x=np.ones(2), b=np.ones(4))
    assert calls == []


def test_failed_call_leaves_no_plan_and_next_call_works():
    f = ic.compile("A_ij x_j")
    A, x = ARRAYS["A"], ARRAYS["x"]
    with pytest.raises(ic.EvaluationError):
        f(A=A, x=np.ones(3))
    assert f.plan_count == 0
    np.testing.assert_allclose(f(A=A, x=x), A @ x)
    with pytest.raises(ic.EvaluationError):
        f(A=A)
    assert f.plan_count == 1


def test_evaluation_does_not_modify_inputs():
    arrays = {name: ARRAYS[name].copy() for name in ("A", "x", "F", "lab")}
    ic.evaluate(ic.diff("sum_i(log(1 + exp(-lab_i F_ij x_j)))", ["x_k", "x_l"]), arrays)
    ic.evaluate("A_ij x_j + x_i", arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(array, ARRAYS[name])


@pytest.mark.parametrize(
    "expr",
    [
        pytest.param("x_i", id="vector"),
        pytest.param("A_ij", id="matrix"),
        pytest.param("x_i^1", id="power_one"),
        pytest.param("A_ji", id="transpose"),
        pytest.param("1 x_i", id="times_one"),
        pytest.param("δ_ij x_j", id="delta_relabel"),
    ],
)
def test_result_does_not_share_memory_with_inputs(expr):
    A, x = np.arange(4.0).reshape(2, 2), np.arange(2.0)
    result = ic.evaluate(expr, A=A, x=x)
    assert not np.shares_memory(result, A)
    assert not np.shares_memory(result, x)


def test_writing_into_a_result_does_not_change_later_results():
    f = ic.compile("eps_ij")
    first = f()
    first[0, 1] = 99.0
    np.testing.assert_array_equal(f(), [[0.0, 1.0], [-1.0, 0.0]])


# -- compiled reuse -----------------------------------------------------------------


def test_compiled_reuse_gives_identical_results_and_plans_once():
    f = ic.compile("x_i A_ij x_j")
    A, x = ARRAYS["A"], ARRAYS["x"]
    first = f(A=A, x=x)
    for _ in range(99):
        np.testing.assert_array_equal(f(A=A, x=x), first)
    assert f.plan_count == 1
    np.testing.assert_allclose(first, x @ A @ x)


def test_compiled_reuse_with_new_values_of_the_same_shape_does_not_plan():
    f = ic.compile(ic.diff("x_i A_ij x_j", "x_k"))
    rng = np.random.default_rng(1)
    for _ in range(100):
        A, x = rng.standard_normal((4, 4)), rng.standard_normal(4)
        np.testing.assert_allclose(f(A=A, x=x), (A + A.T) @ x, rtol=RTOL)
    assert f.plan_count == 1


def test_compiled_plans_again_for_new_shapes():
    f = ic.compile("A_ij x_j")
    f(A=np.ones((2, 3)), x=np.ones(3))
    result = f(A=np.ones((4, 5)), x=np.ones(5))
    np.testing.assert_array_equal(result, np.full(4, 5.0))
    assert f.plan_count == 2
    f(A=np.ones((2, 3)), x=np.ones(3))
    assert f.plan_count == 2


def test_compiled_plans_counted_by_patched_planner(monkeypatch):
    original = compile_module.make_plan
    plans = []

    def counting_plan(*args, **kwargs):
        plans.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(compile_module, "make_plan", counting_plan)
    f = ic.compile(ic.diff("sum_i(log(1 + exp(-y_i X_ij w_j)))", ["w_k", "w_l"]))
    X, y, w = ARRAYS["F"], ARRAYS["lab"], ARRAYS["x"]
    results = [f(X=X, y=y, w=w) for _ in range(100)]
    assert len(plans) == 1
    assert all(np.array_equal(r, results[0]) for r in results)
    f(X=X[:3], y=y[:3], w=w)
    assert len(plans) == 2
    assert f.plan_count == 2


def test_compiled_accepts_mapping_keywords_and_both():
    f = ic.compile("A_ij x_j")
    A, x = ARRAYS["A"], ARRAYS["x"]
    expected = A @ x
    np.testing.assert_allclose(f({"A": A, "x": x}), expected)
    np.testing.assert_allclose(f(A=A, x=x), expected)
    np.testing.assert_allclose(f({"A": A}, x=x), expected)
    assert f.plan_count == 1


def test_compiled_lists_its_inputs():
    assert ic.compile("x_i A_ij x_j + b_i x_i").inputs == ("A", "b", "x")


def test_compiled_ignores_extra_arrays():
    f = ic.compile("x_i x_i")
    np.testing.assert_allclose(f(x=ARRAYS["x"], A=ARRAYS["A"]), ARRAYS["x"] @ ARRAYS["x"])


# -- common subexpressions ------------------------------------------------------------


def test_shared_sigmoid_is_computed_once_per_call(monkeypatch):
    calls = _counting("sigmoid", monkeypatch)
    gradient = ic.diff("sum_i((sigmoid(W_ij x_j) - t_i)^2)", "W_gh")
    f = ic.compile(gradient)
    W, x, t = ARRAYS["W"], ARRAYS["x"], ARRAYS["t"]
    s = _sigmoid(W @ x)
    for call in range(1, 4):
        np.testing.assert_allclose(f(W=W, x=x, t=t), np.outer(2 * (s - t) * s * (1 - s), x))
        assert len(calls) == call


def test_shared_sigmoid_is_computed_once_in_logistic_hessian(monkeypatch):
    calls = _counting("sigmoid", monkeypatch)
    hessian = ic.diff("sum_i(log(1 + exp(-y_i X_ij w_j)))", ["w_k", "w_l"])
    X, y, w = ARRAYS["F"], ARRAYS["lab"], ARRAYS["x"]
    result = ic.evaluate(hessian, X=X, y=y, w=w)
    s = _sigmoid(y * (X @ w))
    np.testing.assert_allclose(result, X.T @ ((s * (1 - s))[:, None] * X), rtol=RTOL)
    assert len(calls) == 1


MLP_LOSS = "h_i = tanh(W_ij x_j); L = sum_k((V_ki h_i - t_k)^2); L"


def _mlp_arrays():
    rng = np.random.default_rng(2)
    W, V, x, t = (rng.standard_normal(s) for s in ((5, 4), (3, 5), 4, 3))
    return {"W": W, "V": V, "x": x, "t": t}


def test_mlp_weight_gradient_matches_backpropagation():
    a = _mlp_arrays()
    h = np.tanh(a["W"] @ a["x"])
    expected = np.outer((2 * a["V"].T @ (a["V"] @ h - a["t"])) * (1 - h**2), a["x"])
    np.testing.assert_allclose(ic.evaluate(ic.diff(MLP_LOSS, "W_ab"), a), expected, rtol=RTOL)


def test_shared_tanh_is_computed_once_in_mlp_gradient(monkeypatch):
    calls = _counting("tanh", monkeypatch)
    f = ic.compile(ic.diff(MLP_LOSS, "W_ab"))
    f(_mlp_arrays())
    assert len(calls) == 1


# -- deltas are never materialised ----------------------------------------------------


def test_delta_in_product_takes_sizes_from_arrays():
    x = ARRAYS["x"]
    np.testing.assert_array_equal(ic.evaluate(ic.parse("δ_ij x_j"), x=x), x)


def test_delta_in_product_is_not_materialised_for_huge_vectors():
    # A dense δ_ij at n = 10^6 would need 8 TB.
    x = np.arange(1_000_000, dtype=np.float64)
    np.testing.assert_array_equal(ic.evaluate("δ_ij x_j", x=x), x)


def test_two_deltas_in_product_are_not_materialised():
    # A dense δ_ik δ_jl at n = 1000 would need 8 TB.
    A = np.arange(1_000_000, dtype=np.float64).reshape(1000, 1000)
    np.testing.assert_array_equal(ic.evaluate("δ_ik δ_jl A_kl", A=A), A)


def test_hessian_of_squared_norm_takes_its_size_from_the_variable():
    hessian = ic.diff("x_i x_i", ["x_k", "x_l"])
    np.testing.assert_array_equal(ic.evaluate(hessian, x=np.ones(3)), 2 * np.eye(3))
    np.testing.assert_array_equal(ic.evaluate(hessian, dims={"k": 3, "l": 3}), 2 * np.eye(3))
    with pytest.raises(ic.UnsizedIndexError, match=r"axis 0 of 'x', whose array was not given"):
        ic.evaluate(hessian)


def test_delta_in_sum_takes_its_size_from_other_terms():
    A, x = ARRAYS["A"], ARRAYS["x"]
    hessian = ic.diff("x_i x_i + x_i A_ij x_j", ["x_k", "x_l"])
    np.testing.assert_allclose(ic.evaluate(hessian, A=A, x=x), 2 * np.eye(4) + A + A.T)


def test_several_expressions_compile_together_and_share_their_work(monkeypatch):
    calls = _counting("tanh", monkeypatch)
    loss = "h_ib = tanh(W1_ij x_jb); L = sum_{kb}((W2_ki h_ib - t_kb)^2); L"
    gradients = [ic.diff(loss, "W1_gh"), ic.diff(loss, "W2_gh")]
    rng = np.random.default_rng(5)
    W1, W2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 4))
    x, t = rng.standard_normal((3, 6)), rng.standard_normal((2, 6))
    both = ic.compile(gradients)
    dW1, dW2 = both(W1=W1, W2=W2, x=x, t=t)
    h = np.tanh(W1 @ x)
    d = 2 * (W2 @ h - t)
    np.testing.assert_allclose(dW2, d @ h.T, rtol=RTOL)
    np.testing.assert_allclose(dW1, ((W2.T @ d) * (1 - h**2)) @ x.T, rtol=RTOL)
    assert len(calls) == 1  # tanh(W1 x) once for both gradients


def test_several_expressions_take_one_out_order_each():
    A = np.arange(6.0).reshape(2, 3)
    first, second = ic.compile(["A_ij", "A_ij"], out=["ij", "ji"])(A=A)
    np.testing.assert_array_equal(first, A)
    np.testing.assert_array_equal(second, A.T)
    with pytest.raises(ic.EvaluationError, match="2 expressions"):
        ic.compile(["A_ij", "A_ij"], out=["ij"])


@pytest.mark.parametrize("arrays", [[1.0, 2.0], 3.0, "x"])
def test_arrays_not_given_by_name_are_an_evaluation_error(arrays):
    with pytest.raises(ic.EvaluationError, match="given by name"):
        ic.compile("x_i x_i")(arrays)
    with pytest.raises(ic.EvaluationError, match="given by name"):
        ic.evaluate("x_i x_i", arrays)


# -- products of many indices ---------------------------------------------------------------

# 52 Latin letters, then Greek ones (not δ, ε or σ, which name δ, ε and the sigmoid).
MANY_INDICES = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZαβγζηθικλμνξοπρτυφχψω"


def test_a_chain_of_sixty_distinct_indices_is_a_matrix_power():
    indices = MANY_INDICES[:60]
    text = " ".join(f"M_{a}{b}" for a, b in itertools.pairwise(indices))
    M = np.array([[0.5, 0.25], [-0.125, 0.75]])
    out = indices[0] + indices[-1]
    expected = np.linalg.matrix_power(M, 59)
    np.testing.assert_allclose(ic.evaluate(text, M=M, out=out), expected, rtol=1e-12)
    namespace: dict = {}
    exec(ic.codegen(text, name="chain", out=out), namespace)
    np.testing.assert_allclose(namespace["chain"](M=M), expected, rtol=1e-12)


def test_an_outer_product_over_sixty_free_indices():
    """60 axes (most of length 1): every kept index needs its own einsum symbol."""
    indices = MANY_INDICES[:60]
    ones = " ".join(f"o_{i}" for i in indices[2:])
    text = f"a_{indices[0]} b_{indices[1]} {ones}"
    a, b, o = np.array([1.0, -2.0]), np.array([0.5, 3.0, 4.0]), np.array([1.5])
    expected = np.multiply.outer(a, b).reshape((2, 3) + (1,) * 58) * 1.5**58
    result = ic.evaluate(text, a=a, b=b, o=o, out=indices)
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, rtol=1e-12)
    summed_text = f"sum_{{{indices[2:]}}}({text})"
    summed = ic.evaluate(summed_text, a=a, b=b, o=o, out=indices[:2])
    np.testing.assert_allclose(summed, np.multiply.outer(a, b) * 1.5**58, rtol=1e-12)
    for notation, out, value in [(text, indices, expected), (summed_text, indices[:2], summed)]:
        namespace: dict = {}
        exec(ic.codegen(notation, name="outer", out=out), namespace)
        np.testing.assert_allclose(namespace["outer"](a=a, b=b, o=o), value, rtol=1e-12)


def test_many_indices_on_other_backends():
    torch = pytest.importorskip("torch")
    indices = MANY_INDICES[:60]
    text = " ".join(f"M_{a}{b}" for a, b in itertools.pairwise(indices))
    M = np.array([[0.5, 0.25], [-0.125, 0.75]])
    result = ic.evaluate(text, M=torch.tensor(M), out=indices[0] + indices[-1], backend="torch")
    np.testing.assert_allclose(result.numpy(), np.linalg.matrix_power(M, 59), rtol=1e-12)


def test_dims_that_contradict_an_array_are_an_error_naming_both_sizes():
    x = np.ones(2)
    with pytest.raises(ic.EvaluationError, match=r"dims gives index 'i' size 3, .* 'x', of size 2"):
        ic.evaluate("x_i", x=x, dims={"i": 3})
    np.testing.assert_array_equal(ic.evaluate("x_i", x=x, dims={"i": 2}), x)


def test_array_and_symmetric_names_are_read_as_the_parser_reads_names():
    """µ (micro sign) and μ (mu) are one name to Python and to the parser (NFKC)."""
    a = np.arange(3.0)
    assert float(ic.evaluate("µ_i μ_i", {"µ": a})) == 5.0
    assert str(ic.diff("x_i µ_ij x_j", "x_k", symmetric=["µ"])) == "2 μ_kj x_j"
