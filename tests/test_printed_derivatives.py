"""Every printed derivative is the derivative: text parses back to the value indexcalc evaluates.

Random programs (see strategies.py) are differentiated once, twice and three times, with
and without ``symmetric=``. Between computing a derivative and printing it, unrelated
differentiation and a garbage collection run, so that any cache keyed by the identity of a
freed object would hand back another node's text.
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from matrix_notation import evaluate_matrix
from strategies import dims_with, evaluate, parsed, programs, variables

import indexcalc as ic
from indexcalc.compile import postorder
from indexcalc.expr import Tensor

EXACT_RTOL = 1e-9

UNRELATED = ("tanh(W_ij x_j) V_ki", "x_i A_ij x_j x_k x_k", "exp(a_i) / sum_j(exp(a_j))")


def unrelated_work() -> None:
    for text in UNRELATED:
        expr = ic.parse(text)
        ic.diff(expr, "x_p" if "x" in expr.tensor_names else "a_p")
    gc.collect()


def assert_same_value(actual, expected) -> None:
    scale = 1 + np.max(np.abs(expected), initial=0.0)
    np.testing.assert_allclose(actual, expected, rtol=EXACT_RTOL, atol=EXACT_RTOL * scale)


@given(programs(max_depth=2), st.data())
def test_printed_derivatives_of_any_order_parse_back_to_their_value(example, data):
    expr = parsed(example)
    order = data.draw(st.integers(1, 3), label="order")
    wrt = variables(data.draw, example, expr, count=order)
    rank_two = sorted(n for n, a in example.arrays.items() if a.ndim == 2)
    symmetric = data.draw(st.sampled_from([(), tuple(rank_two)]), label="symmetric")
    derivative = ic.diff(expr, [v.wrt for v in wrt], symmetric=symmetric)
    out = example.out + "".join(v.letters for v in wrt)
    dims = dims_with(example, wrt)
    value = evaluate(derivative, example, out, dims)
    unrelated_work()
    for text in (str(derivative), derivative.ascii()):
        again = ic.parse(text)
        assert again.free_indices == derivative.free_indices, text
        assert_same_value(evaluate(again, example, out, dims), value)


# -- What a new user tried: each printed derivative evaluates to the derivative ---------

ARRAY_SIZE = 3
REPROS = [
    ("x_i A_ij x_j / (x_k x_k)", ["x_m", "x_n"], ()),
    ("x_i A_ij x_j / (x_k x_k)", ["x_m", "x_n"], ("A",)),
    ("x_i A_ij x_j / (x_k x_k)", ["x_m", "x_n", "x_p"], ()),
    ("y_i = x_i - sum_j(x_j) e_i / n; v = y_k y_k / n; g_i y_i / sqrt(v + 0.001)", ["x_p"], ()),
    ("y_i = x_i - sum_j(x_j) e_i / n; v = y_k y_k / n; g_i y_i / sqrt(v + 1)", ["x_p", "x_q"], ()),
    ("O_ie = S_ij / s_i V_je; G_ie O_ie", ["S_ab"], ()),
    ("P_ij = exp(S_ij) / sum_k(exp(S_ik)); G_ie P_ij V_je", ["S_ab"], ()),
    ("-sum_i(t_i log(exp(W_ij x_j) / sum_k(exp(W_kl x_l))))", ["W_pq"], ()),
    ("tan(tanh(u_i))", ["u_p", "u_q", "u_r"], ()),
    ("h1 = a a; tan(tanh(u_i))", ["u_p", "u_q", "u_r"], ()),
]


def arrays_for(expr: ic.Expr, seed: int = 0) -> dict[str, np.ndarray]:
    """Positive arrays of size 3 on every axis for each tensor `expr` reads."""
    rng = np.random.default_rng(seed)
    ranks = {n.name: len(n.indices) for n in postorder(expr) if isinstance(n, Tensor)}
    return {
        name: rng.uniform(0.5, 1.5, (ARRAY_SIZE,) * rank) for name, rank in sorted(ranks.items())
    }


@pytest.mark.parametrize(("text", "wrt", "symmetric"), REPROS)
def test_printed_derivative_that_a_user_tried_parses_back_to_its_value(text, wrt, symmetric):
    expr = ic.parse(text)
    derivative = ic.diff(expr, wrt, symmetric=symmetric)
    arrays = arrays_for(expr)
    dims = dict.fromkeys("abcdefghijklmnpqrstuvwxyz", ARRAY_SIZE)
    value = ic.evaluate(derivative, arrays, dims=dims)
    unrelated_work()
    for text_form in (str(derivative), derivative.ascii()):
        assert_same_value(ic.evaluate(ic.parse(text_form), arrays, dims=dims), value)


def test_printed_hessian_of_a_rayleigh_quotient_is_the_true_hessian():
    """The numbers from the issue: the printed text once evaluated to [[-2.8,2.4],[2.4,0.8]]."""
    arrays = {"A": np.array([[1.0, 2.0], [2.0, 4.0]]), "x": np.array([1.0, 2.0])}
    hessian = ic.diff("x_i A_ij x_j / (x_k x_k)", ["x_m", "x_n"])
    unrelated_work()
    again = ic.parse(str(hessian))
    expected = [[-1.6, 0.8], [0.8, -0.4]]
    np.testing.assert_allclose(ic.evaluate(again, arrays, out="mn"), expected)
    comma = ic.evaluate("f = x_i A_ij x_j / (x_k x_k); f_{,mn}", arrays, out="mn")
    np.testing.assert_allclose(comma, expected)


def test_printed_hessian_has_each_term_once():
    hessian = ic.diff("x_i A_ij x_j / (x_k x_k)", ["x_m", "x_n"])
    unrelated_work()
    terms = str(hessian).replace(" - ", " + -").split(" + ")
    assert len(terms) == len(set(terms)) == len(hessian.terms)
    assert "-2 x_i A_ij x_j (x_k x_k)^-2 δ_mn" in terms


# -- Deterministic output -------------------------------------------------------------

DETERMINISM_SCRIPT = """
import sys, gc
import indexcalc as ic
prior = int(sys.argv[1])
for k in range(prior):
    for text, wrt in [("tanh(W_ij x_j) V_ki", "W_pq"), ("x_i A_ij x_j x_k x_k", "A_pq"),
                      ("exp(a_i) / sum_j(exp(a_j))", "a_p"), ("A_ij B_jk C_kl", "B_pq")]:
        ic.diff(text, wrt)
    gc.collect()
cases = [
    ("x_i A_ij x_j / (x_k x_k)", ["x_m", "x_n"], ()),
    ("x_i A_ij x_j / (x_k x_k)", ["x_m", "x_n", "x_p"], ("A",)),
    ("sum_i(log(1 + exp(-y_i X_ij w_j)))", ["w_k", "w_l"], ()),
    ("-sum_i(t_i log(exp(W_ij x_j) / sum_k(exp(W_kl x_l))))", ["W_pq"], ()),
    ("y_i = x_i - sum_j(x_j) e_i / n; v = y_k y_k / n; g_i y_i / sqrt(v + 1)", ["x_p"], ()),
    ("tanh(V_ab tanh(W_bc x_c)) tanh(V_ad tanh(W_de x_e))", ["W_pq"], ()),
    ("(x_i A_ij x_j)^2", ["x_k", "x_l"], ("A",)),
    ("A_ij B_jk A_kl B_li", ["A_pq"], ()),
    ("(X_ij - U_ik V_kj)(X_ij - U_il V_lj)", ["V_gh"], ()),
]
for text, wrt, symmetric in cases:
    result = ic.diff(text, wrt, symmetric=symmetric)
    gc.collect()
    print(result, result.ascii(), result.latex(), sep="\\n")
    try:
        print(ic.to_matrix(result))
    except ic.MatrixFormError as error:
        print("no matrix form:", error)
    try:
        print(ic.codegen(result, dims=dict.fromkeys("ijklmnpqgh", 3)))
    except ic.CodegenError as error:
        print("no code:", error)
"""


def printed_in_subprocess(prior_work: int, hash_seed: str) -> str:
    environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
    completed = subprocess.run(
        [sys.executable, "-c", DETERMINISM_SCRIPT, str(prior_work)],
        capture_output=True,
        env=environment,
        timeout=300,
        check=True,
    )
    return completed.stdout.decode("utf-8")


def test_printed_text_is_byte_identical_across_processes_hash_seeds_and_prior_work():
    reference = printed_in_subprocess(0, "0")
    assert reference.count("\n") > 30
    for prior_work, hash_seed in [(0, "1"), (2, "0"), (3, "12345"), (1, "random")]:
        assert printed_in_subprocess(prior_work, hash_seed) == reference


def test_printed_text_is_the_same_after_unrelated_work_in_one_process():
    hessian = ic.diff("x_i A_ij x_j / (x_k x_k)", ["x_m", "x_n", "x_p"])
    before = (str(hessian), hessian.ascii(), hessian.latex())
    unrelated_work()
    ic.diff("x_i B_ij x_j / (x_k x_k) + y_i A_ij y_j", ["x_m", "x_n", "x_p"])
    again = ic.diff("x_i A_ij x_j / (x_k x_k)", ["x_m", "x_n", "x_p"])
    assert (str(again), again.ascii(), again.latex()) == before


# -- Parentheses: tricky shapes in every printer, parsed back ----------------------------

TRICKY = [
    "O_ie = S_ij / s_i V_je; G_ie O_ie",
    "P_ij = exp(S_ij) / sum_k(exp(S_ik)); P_ij V_je",
    "a_i (b_i / c_i) d_j",
    "a_j (b_i / c_i) d_i",
    "(a_i / b_i) c_i",
    "a / b / c",
    "a / (b / c)",
    "a / (b c)",
    "2 / x",
    "x^-2",
    "x^(-1/2)",
    "x^(3/2) y",
    "-x^2",
    "(-x)^2",
    "2^-x",
    "x^y^z",
    "(x^y)^z",
    "x^(-y)",
    "-(x_i y_i)",
    "-(a - b)",
    "a - (b - c)",
    "a - (b + c)",
    "a_i ⊙ b_i ⊙ c_i",
    "a_i ⊙ (b_i ⊙ c_i)",
    "(a_i ⊙ b_i) c_i",
    "a_i ⊙ b_i c_j",
    "a_i ⊙ (b_i + c_i)",
    "-a_i ⊙ b_i",
    "sum_i(x_i) y_j",
    "sum_i(x_i y_i)^2",
    "sum_i(x_i) sum_i(y_i)",
    "sum_i(A_ii)",
    "A_ii",
    "sum_i(x_i y_i z_i)",
    "x_i sum_j(A_ij)",
    "sum_j(A_ij x_j) / sum_j(x_j)",
    "exp(x_i) / sum_j(exp(x_j)) t_i",
    "z_i (x_i / y_i)^2",
    "(x_k x_k)^-1 x_i A_ij x_j",
    "1 / (x_k x_k) x_m",
    "δ_ij / (x_k x_k)",
    "(a + b)^-1 (c - d)",
    "3/7 x_i y_i",
    "x_i y_i / 7",
    "tanh(x_i)^2 / (1 + x_i^2)",
]


def evaluate_any(expr: ic.Expr) -> np.ndarray:
    return ic.evaluate(expr, arrays_for(expr, seed=1), dims={"i": 3, "j": 3, "e": 3})


@pytest.mark.parametrize("text", TRICKY)
@pytest.mark.parametrize("form", ["unicode", "ascii"])
def test_tricky_shape_prints_text_that_parses_back_to_the_same_expression(text, form):
    expr = ic.parse(text)
    printed = str(expr) if form == "unicode" else expr.ascii()
    again = ic.parse(printed)
    assert again.free_indices == expr.free_indices, printed
    assert_same_value(evaluate_any(again), evaluate_any(expr))


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_shape_prints_latex_with_the_same_structure(text):
    """LaTeX does not parse back; its brackets must balance and each division become \\frac."""
    expr = ic.parse(text)
    latex = expr.latex()
    assert latex.count(r"\left(") == latex.count(r"\right)")
    assert latex.count("{") == latex.count("}")
    assert "/" not in latex
    assert latex.count(r"\frac") == str(expr).count("/")


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_shape_derivative_prints_text_that_parses_back(text):
    expr = ic.parse(text)
    name, rank = next((n.name, len(n.indices)) for n in postorder(expr) if isinstance(n, Tensor))
    derivative = ic.diff(expr, f"{name}_{'pqr'[:rank]}" if rank else name)
    dims = {"i": 3, "j": 3, "e": 3, "p": 3, "q": 3, "r": 3}
    arrays = arrays_for(expr, seed=1)
    value = ic.evaluate(derivative, arrays, dims=dims)
    for printed in (str(derivative), derivative.ascii()):
        assert_same_value(ic.evaluate(ic.parse(printed), arrays, dims=dims), value)


# -- Declared symmetry means what it says -----------------------------------------------


def test_rank_four_tensor_declared_symmetric_is_an_error_that_explains_why():
    with pytest.raises(ic.SymmetryError, match=r"'C' has 4 indices.*only rank-2"):
        ic.simplify("C_ajbl F_jl - C_abjl F_jl", symmetric=["C"])
    with pytest.raises(ic.SymmetryError, match="'C' has 4 indices"):
        ic.diff("C_ijkl F_ij F_kl", "F_pq", symmetric="C")


def test_elasticity_contraction_without_a_declaration_keeps_both_terms():
    result = ic.simplify("C_ajbl F_jl - C_abjl F_jl")
    rng = np.random.default_rng(2)
    arrays = {"C": rng.normal(size=(2, 2, 2, 2)), "F": rng.normal(size=(2, 2))}
    expected = np.einsum("ajbl,jl->ab", arrays["C"], arrays["F"]) - np.einsum(
        "abjl,jl->ab", arrays["C"], arrays["F"]
    )
    np.testing.assert_allclose(ic.evaluate(result, arrays, out="ab"), expected)


def test_symmetric_matrix_collects_its_transpose():
    assert str(ic.diff("x_i A_ij x_j", "x_k", symmetric=["A"])) == "2 A_kj x_j"


# -- x^T is a power, and indexcalc says so ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "index_form"),
    [
        ("x^T A x", "x_i A_ij x_j"),
        ("x^T x", "x_i x_i"),
        ("x y^T", "x_i y_j"),
        ("A^T B x", "A_ji B_jk x_k"),
    ],
)
def test_transpose_written_as_a_power_warns_and_shows_the_index_form(text, index_form):
    with pytest.warns(ic.NotationWarning, match="power of a scalar named T") as record:
        ic.parse(text)
    assert str(record[0].message).endswith(f"write {index_form}")
    matrix_value = np.array([[1.0, 2.0], [3.0, 4.0]])
    arrays = {"x": np.array([1.0, 2.0]), "y": np.array([3.0, 5.0]), "A": matrix_value}
    arrays["B"] = matrix_value.T + 1
    expected = {
        "x^T A x": arrays["x"] @ matrix_value @ arrays["x"],
        "x^T x": arrays["x"] @ arrays["x"],
        "x y^T": np.outer(arrays["x"], arrays["y"]),
        "A^T B x": matrix_value.T @ arrays["B"] @ arrays["x"],
    }[text]
    np.testing.assert_allclose(ic.evaluate(index_form, arrays), expected)


@pytest.mark.parametrize("text", ["x^2 T", "T x", "x^T T", "x^t"])
def test_scalar_t_used_as_a_scalar_gives_no_warning(text):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ic.parse(text)


# -- Matrix notation denotes the same value --------------------------------------------


@given(programs(max_depth=2), st.data())
def test_matrix_form_of_random_derivatives_evaluates_to_their_value(example, data):
    """Where a derivative has a matrix form, the independent reader gets its numbers."""
    expr = parsed(example)
    assume(len(expr.free) <= 1)
    (variable,) = variables(data.draw, example, expr)
    derivative = ic.diff(expr, variable.wrt)
    assume(len(derivative.free) <= 2)
    try:
        printed = ic.to_matrix(derivative)
    except ic.MatrixFormError:
        assume(False)
    out = "".join(derivative.free_indices)
    dims = dims_with(example, [variable])
    expected = evaluate(derivative, example, out, dims)
    unrelated_work()
    sizes = {dims[i] for i in out}
    # 𝟏 and I take their size from what they meet; alone, only a square result sizes them.
    assume(len(sizes) == 1 or not re.search(r"𝟏|\bI\b", printed))
    actual = evaluate_matrix(printed, example.arrays, size=max(sizes, default=None))
    if expected.ndim == 0:
        actual = actual[0, 0]
    elif expected.ndim == 1:
        actual = actual[:, 0]
    assert_same_value(actual, expected)
