"""Matrix notation: the forms the issue asks for, exactly, and their numbers.

Every printed formula is read back by an independent NumPy reader (tests/matrix_notation.py)
and must give the numbers `indexcalc.evaluate` gives for the index expression.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import numpy as np
import pytest
from matrix_notation import evaluate_matrix

import indexcalc as ic
from indexcalc.expr import Derivative, Product, Tensor
from indexcalc.matrix import MatrixFormError, to_matrix, translate
from indexcalc.matrix.translate import Translator

RNG = np.random.default_rng(8)

# Sizes differ per role so that a misplaced transpose cannot pass.
ARRAYS = {
    "A": RNG.standard_normal((4, 4)),
    "B": RNG.standard_normal((4, 4)),
    "C": RNG.standard_normal((6, 4)),
    "U": RNG.standard_normal((6, 3)),
    "V": RNG.standard_normal((3, 5)),
    "W": RNG.standard_normal((3, 4)),
    "X": RNG.standard_normal((6, 4)),
    "a": RNG.standard_normal(6),
    "b": RNG.standard_normal(4),
    "c": RNG.standard_normal(),
    "t": RNG.standard_normal(3),
    "w": RNG.standard_normal(4),
    "x": RNG.standard_normal(4),
    "y": RNG.uniform(0, 1, 6),
    "z": RNG.standard_normal(4),
}

# The issue's forms: (expression, options, exact text, arrays that replace the shared ones).
LOGISTIC = "-sum_i(y_i log(σ(X_ij w_j)) + (1 - y_i) log(1 - σ(X_ij w_j)))"
ISSUE_FORMS = [
    (lambda: ic.diff("x_i A_ij x_j", "x_k"), {}, "(A + Aᵀ) x", {}),
    (lambda: ic.diff("x_i A_ij x_j", ["x_k", "x_l"]), {}, "A + Aᵀ", {}),
    (
        lambda: ic.diff("(X_ij - U_ik V_kj)(X_ij - U_il V_lj)", "V_gh"),
        {},
        "−2 Uᵀ (X − U V)",
        {"X": RNG.standard_normal((6, 5))},
    ),
    (
        lambda: ic.diff("(A_ij x_j - b_i)(A_ik x_k - b_i)", "x_l"),
        {},
        "2 Aᵀ (A x − b)",
        {"A": RNG.standard_normal((6, 4)), "b": RNG.standard_normal(6)},
    ),
    (lambda: ic.diff(LOGISTIC, ["w_k", "w_l"]), {}, "Xᵀ diag(σ(X w) ⊙ (1 − σ(X w))) X", {}),
    (lambda: ic.parse("a_i b_j"), {}, "a bᵀ", {}),
    (lambda: ic.parse("A_ii"), {}, "tr(A)", {}),
    (lambda: ic.parse("x_k x_l"), {}, "x xᵀ", {}),
    (lambda: ic.diff("σ(W_ij x_j)", "x_k"), {"primes": True}, "diag(σ'(W x)) W", {}),
    (lambda: ic.parse("A_ij ⊙ B_ij"), {}, "A ⊙ B", {}),
    (
        lambda: ic.diff("X_ji B_jk X_ki", "X_gh"),
        {},
        "(B + Bᵀ) X",
        {"B": RNG.standard_normal((6, 6))},
    ),
]

# More translations, each checked by value.
MORE_FORMS = [
    (lambda: ic.diff(LOGISTIC, "w_k"), {}, "Xᵀ (σ(X w) − y)", {}),
    (lambda: ic.diff("sum_i(softplus(X_ij w_j))", ["w_k", "w_l"]), {}, None, {}),
    (lambda: ic.diff("sum_i(log(1 + exp(-y_i X_ij w_j)))", ["w_k", "w_l"]), {}, None, {}),
    (lambda: ic.diff("sum_i(log(1 + exp(-y_i X_ij w_j)))", "w_k"), {}, None, {}),
    (lambda: ic.diff("σ(W_ij x_j)", "x_k"), {}, "diag(σ(W x) ⊙ (1 − σ(W x))) W", {}),
    (lambda: ic.diff("sum_i((σ(W_ij x_j) - t_i)^2)", "W_gh"), {"primes": True}, None, {}),
    (lambda: ic.diff("sum_i(tanh(W_ij x_j))", "x_k"), {"primes": True}, "Wᵀ tanh'(W x)", {}),
    (lambda: ic.diff("x_i", "x_k"), {}, "I", {}),
    (lambda: ic.parse("x_i A_ij x_j"), {}, "xᵀ A x", {}),
    (lambda: ic.parse("x_i A_ij"), {}, "Aᵀ x", {}),
    (lambda: ic.parse("x_j A_ij b_i z_k"), {}, "(bᵀ A x) z", {}),
    (lambda: ic.parse("A_kj B_ji C_li"), {}, "A B Cᵀ", {}),
    (lambda: ic.parse("A_ij B_ij"), {}, "tr(Aᵀ B)", {}),
    (lambda: ic.parse("A_ij B_ji"), {}, "tr(A B)", {}),
    (lambda: ic.parse("A_ij ⊙ B_ji"), {}, "A ⊙ Bᵀ", {}),
    (lambda: ic.parse("sum_j(A_ij ⊙ B_ij)"), {}, "(A ⊙ B) 𝟏", {}),
    (lambda: ic.parse("sum_{ij}(C_ij)"), {}, "𝟏ᵀ C 𝟏", {}),
    (lambda: ic.parse("sum_i(log(1 + exp(-X_ij w_j)))"), {}, "𝟏ᵀ log(1 + exp(−X w))", {}),
    (lambda: ic.parse("x_i + A_ij x_j"), {}, "(A + I) x", {}),
    (lambda: ic.parse("C_ij / a_i"), {}, "diag(a^⊙(−1)) C", {}),
    (lambda: ic.parse("c x_i ⊙ z_i"), {}, "c (x ⊙ z)", {}),
    (lambda: ic.parse("(x_i x_i) z_j"), {}, "(xᵀ x) z", {}),
    (lambda: Product((Tensor("A", "ii"), Tensor("x", "i")), "i"), {}, "diag(A) ⊙ x", {}),
    (lambda: ic.parse("exp(A_ji) B_jk"), {}, "exp(Aᵀ) B", {}),
    (lambda: ic.parse("sqrt(x_i x_i)"), {}, "sqrt(xᵀ x)", {}),
    (lambda: ic.parse("(C_ij x_j - a_i)(C_ik x_k - a_i)"), {}, "(C x − a)ᵀ (C x − a)", {}),
    (
        lambda: ic.diff("x_i / sqrt(x_j x_j)", "x_k"),
        {},
        "I / sqrt(xᵀ x) − x xᵀ / sqrt(xᵀ x)^3",
        {},
    ),
    (
        lambda: ic.diff("exp(x_i) / sum_j(exp(x_j))", "x_k"),
        {},
        "diag(exp(x)) / (𝟏ᵀ exp(x)) − exp(x) exp(x)ᵀ / (𝟏ᵀ exp(x))^2",
        {},
    ),
    (lambda: ic.diff("(x_i A_ij x_j)^2", ["x_k", "x_l"]), {}, None, {}),
    (lambda: ic.diff("sum_{ij}(C_ij)", "C_pq"), {}, "𝟏 𝟏ᵀ", {}),
    (
        lambda: ic.diff("h_i = tanh(W_ij x_j); sum_k((V_ki h_i - t_k)^2)", "W_gh"),
        {},
        "2 ((Vᵀ (V tanh(W x) − t)) ⊙ (1 − tanh(W x)^⊙2)) xᵀ",
        {"V": RNG.standard_normal((2, 3)), "t": RNG.standard_normal(2)},
    ),
]


def _check_value(expr, text: str, replaced: dict, order: str | None = None) -> None:
    """The printed matrix formula evaluates to the index expression's numbers."""
    arrays = {name: replaced.get(name, ARRAYS.get(name)) for name in expr.tensor_names}
    dims = None if arrays else dict.fromkeys(expr.free, 4)  # a δ alone
    expected = np.asarray(ic.evaluate(expr, arrays, out=order, dims=dims))
    actual = evaluate_matrix(text, arrays, size=4)
    if expected.ndim == 0:
        assert actual.shape == (1, 1)
        actual = actual[0, 0]
    elif expected.ndim == 1:
        assert actual.shape == (expected.shape[0], 1), text
        actual = actual[:, 0]
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)


FORM_FIELDS = ("build", "options", "text", "replaced")


@pytest.mark.parametrize(FORM_FIELDS, ISSUE_FORMS)
def test_issue_form_prints_exactly_and_evaluates_to_the_index_value(build, options, text, replaced):
    expr = build()
    assert to_matrix(expr, **options) == text
    _check_value(expr, text, replaced)


@pytest.mark.parametrize(FORM_FIELDS, MORE_FORMS)
def test_matrix_form_evaluates_to_the_index_value(build, options, text, replaced):
    expr = build()
    printed = to_matrix(expr, **options)
    if text is not None:
        assert printed == text
    _check_value(expr, printed, replaced)


@pytest.mark.parametrize(FORM_FIELDS, ISSUE_FORMS + MORE_FORMS)
def test_denominator_layout_is_the_transpose(build, options, text, replaced):
    expr = build()
    printed = to_matrix(expr, layout="denominator", **options)
    order = "".join(reversed(expr.free_indices)) if len(expr.free) == 2 else None
    _check_value(expr, printed, replaced, order)


def test_logistic_hessian_with_primes_is_compact():
    hessian = ic.diff(LOGISTIC, ["w_k", "w_l"])
    assert to_matrix(hessian, primes=True) == "Xᵀ diag(σ'(X w)) X"


def test_softplus_hessian_has_the_logistic_form():
    hessian = ic.diff("sum_i(softplus(X_ij w_j))", ["w_k", "w_l"])
    assert to_matrix(hessian) == "Xᵀ diag(σ(X w) ⊙ (1 − σ(X w))) X"


def test_denominator_layout_transposes_a_jacobian():
    jacobian = ic.diff("tanh(C_ij x_j)", "x_k")
    assert to_matrix(jacobian, primes=True) == "diag(tanh'(C x)) C"
    assert to_matrix(jacobian, primes=True, layout="denominator") == "Cᵀ diag(tanh'(C x))"


def test_out_chooses_rows_and_columns():
    gradient = ic.diff("(X_ij - U_ik V_kj)(X_ij - U_il V_lj)", "V_gh")
    assert to_matrix(gradient, out="hg") == "−2 (X − U V)ᵀ U"


def test_vector_results_are_columns_in_both_layouts():
    gradient = ic.diff("x_i A_ij x_j", "x_k")
    assert to_matrix(gradient, layout="denominator") == "(A + Aᵀ) x"


@pytest.mark.parametrize(
    ("format", "text"),
    [
        ("ascii", "(A + A^T) x"),
        ("latex", r"(A + A^\top) x"),
        ("unicode", "(A + Aᵀ) x"),
    ],
)
def test_formats_of_the_quadratic_form_gradient(format, text):
    assert to_matrix(ic.diff("x_i A_ij x_j", "x_k"), format=format) == text


def test_ascii_and_latex_of_the_logistic_hessian():
    hessian = ic.diff(LOGISTIC, ["w_k", "w_l"])
    assert to_matrix(hessian, format="ascii") == ("X^T diag(sigmoid(X w) .* (1 - sigmoid(X w))) X")
    assert to_matrix(hessian, format="latex") == (
        r"X^\top \operatorname{diag}(\sigma(X w) \odot (1 - \sigma(X w))) X"
    )
    assert to_matrix(ic.parse("C_ij / a_i"), format="latex") == (
        r"\operatorname{diag}(a^{\odot (-1)}) C"
    )


def test_expr_method_and_text_input():
    assert ic.parse("x_i A_ij x_j").to_matrix() == "xᵀ A x"
    assert to_matrix("x_i A_ij x_j") == "xᵀ A x"


def test_comma_derivative_is_carried_out_first():
    assert to_matrix("f = x_i A_ij x_j; f_{,k}") == "(A + Aᵀ) x"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ic.parse("T_ijk"), "3 free indices (i, j, k)"),
        (lambda: ic.diff("σ(W_ij x_j)", ["x_k", "x_l"]), "3 free indices (i, k, l)"),
        (lambda: ic.parse("T_ijk x_k"), "T_ijk has no matrix notation: it has 3 indices"),
        (lambda: ic.parse("eps_ij x_j"), "Levi-Civita"),
        (lambda: ic.parse("A_ij ^ x_i"), "the exponent is indexed by i but the base by i, j"),
    ],
)
def test_no_matrix_form_is_a_clear_error(build, message):
    with pytest.raises(MatrixFormError, match=re.escape(message)):
        to_matrix(build())


def test_matrix_form_error_is_an_indexcalc_error():
    assert issubclass(MatrixFormError, ic.IndexCalcError)


@pytest.mark.parametrize(
    "options",
    [{"layout": "row-major"}, {"format": "html"}, {"out": "q"}],
)
def test_bad_options_raise_indexcalc_errors(options):
    with pytest.raises(ic.IndexCalcError):
        to_matrix(ic.parse("A_ij x_j"), **options)


def _symmetric(matrix: np.ndarray) -> np.ndarray:
    return matrix + matrix.T


def test_symmetric_collects_a_matrix_with_its_transpose():
    gradient = ic.diff("x_i A_ij x_j", "x_k")
    assert to_matrix(gradient) == "(A + Aᵀ) x"
    assert to_matrix(gradient, symmetric=["A"]) == "2 A x"
    declared = ic.diff("x_i A_ij x_j", "x_k", symmetric=["A"])
    assert to_matrix(declared, symmetric=["A"]) == "2 A x"
    assert to_matrix(ic.diff("x_i A_ij x_j", ["x_k", "x_l"]), symmetric="A") == "2 A"


def test_symmetric_matrix_is_written_without_a_transpose():
    assert to_matrix("x_i A_ij") == "Aᵀ x"
    assert to_matrix("x_i A_ij", symmetric=["A"]) == "A x"
    assert to_matrix("A_ji B_jk", symmetric=["A"]) == "A B"
    assert to_matrix("A_ij x_j - x_j A_ji", symmetric=["A"]) == "0 𝟏"  # a zero vector


def test_symmetric_vector_is_still_transposed():
    """Only a matrix equals its transpose; a vector named in `symmetric` stays a column."""
    assert to_matrix("a_i b_i", symmetric=["a"]) == "aᵀ b"


def test_symmetric_gradient_evaluates_by_hand_to_the_index_value():
    expr = ic.diff("x_i A_ij x_j", "x_k")
    assert to_matrix(expr, symmetric=["A"]) == "2 A x"
    A, x = _symmetric(ARRAYS["A"]), ARRAYS["x"]
    np.testing.assert_allclose(2 * A @ x, ic.evaluate(expr, A=A, x=x), rtol=1e-12)


# (expression, exact text with A and B declared symmetric, arrays replacing the symmetric
# A and B)
SYMMETRIC_FORMS = [
    (lambda: ic.diff("x_i A_ij x_j", "x_k"), "2 A x", {}),
    (lambda: ic.diff("(x_i - z_i) A_ij (x_j - z_j)", "x_k"), "2 A (x − z)", {}),
    (
        lambda: ic.diff("X_ji B_jk X_ki", "X_gh"),
        "2 B X",
        {"B": _symmetric(RNG.standard_normal((6, 6)))},
    ),
    (lambda: ic.parse("A_ij B_ij"), "tr(A B)", {}),
    (lambda: ic.parse("x_i A_ij B_jk"), "B A x", {}),
    (lambda: ic.parse("A_ji ⊙ A_ij"), "A ⊙ A", {}),
]


@pytest.mark.parametrize(("build", "text", "replaced"), SYMMETRIC_FORMS)
def test_symmetric_form_evaluates_to_the_index_value(build, text, replaced):
    expr = build()
    printed = to_matrix(expr, symmetric=["A", "B"])
    assert printed == text
    arrays = {"A": _symmetric(ARRAYS["A"]), "B": _symmetric(ARRAYS["B"]), **replaced}
    _check_value(expr, printed, arrays)


def test_symmetric_rank_three_tensor_is_an_error():
    with pytest.raises(ic.SymmetryError, match="only rank-2 tensors"):
        to_matrix("T_ijk x_j y_k", symmetric=["T"])


def test_a_node_kind_without_a_matrix_rule_is_a_matrix_form_error():
    derivative = Derivative(ic.parse("x_i x_i"), Tensor("x", "k"))
    with pytest.raises(MatrixFormError, match="matrix notation has no Derivative node"):
        Translator().translate(derivative, "k", None)


def test_docs_examples_run():
    """The pycon sessions in docs/matrix.md give the outputs shown."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "matrix.md").read_text("utf-8")
    sessions = re.findall(r"^```pycon\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert sessions
    test = doctest.DocTestParser().get_doctest("\n".join(sessions), {}, "matrix.md", None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0


def test_a_long_product_of_scalars_is_joined_in_linear_work(monkeypatch):
    """Factors that share no index are joined apart: the items the rules look at grow
    linearly with the number of factors, not cubically (512 factors took minutes)."""
    seen = []
    original = translate.Joining.__post_init__

    def counted(self):
        seen.append(len(self.items))
        original(self)

    monkeypatch.setattr(translate.Joining, "__post_init__", counted)

    def work(scalars: int) -> int:
        definitions = "; ".join(f"h{k} = x{k}_i x{k}_i" for k in range(scalars))
        product = " ".join(f"h{k}" for k in range(scalars))
        seen.clear()
        text = ic.to_matrix(f"{definitions}; {product}")
        assert text.count("ᵀ") == scalars, text
        return sum(seen)

    assert work(256) <= 4.5 * work(64)


def test_a_dimension_has_no_matrix_form_rather_than_an_ambiguous_tr_of_i():
    """tr(I) beside Aᵀ 𝟏 reads as the trace of any identity: of 3 or of 2, here. The
    index form, Σ_i(A_in) (δ_ii), is exact and sized by A's rows."""
    derivative = ic.diff("sum_i(A_in) ⊙ (a ⊙ δ_ii)", "a")
    with pytest.raises(MatrixFormError, match="size of an index"):
        to_matrix(derivative)
    A = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(ic.evaluate(derivative, A=A, a=1.0), 2 * A.sum(axis=0))


def test_a_broadcast_number_times_a_scalar_is_not_expanded_into_a_term_of_its_own():
    """(A_ml² + 2) c − 1 expanded would hold the term 2 c, a scalar beside matrix terms,
    which a sum cannot hold (only numbers are broadcast): it stays factored."""
    text = "(A_ml^2 + 2) c - 1"
    printed = to_matrix(text)
    A, c = np.array([[0.5, -1.0], [2.0, 0.25]]), np.array(0.7)
    expected = ic.evaluate(text, A=A, c=c, out="lm")  # rows and columns in sorted order
    np.testing.assert_allclose(evaluate_matrix(printed, {"A": A, "c": c}), expected)
