"""Printing: text and ASCII parse back to the same node; LaTeX; minimal parentheses."""

from __future__ import annotations

import numpy as np
import pytest

import indexcalc as ic

# (program, var): one per construct, each printed form must parse back to the same node.
ROUND_TRIP = [
    ("x_i", "x"),
    ("A_ij", "x"),
    ("A_{i j}", "x"),
    ("W2_{ab}", "x"),
    ("L", "x"),
    ("loss + yhat", "x"),
    ("α_β", "x"),
    ("Γ_μν x_ν", "x"),
    ("A_ii", "x"),
    ("A_iij B_j", "x"),
    ("2", "x"),
    ("0.5", "x"),
    ("1e-3", "x"),
    ("3/2", "x"),
    ("1/3", "x"),
    ("-2", "x"),
    ("2/3 x_i", "x"),
    ("-1/3 x", "x"),
    ("A_ij x_j", "x"),
    ("2 x_i", "x"),
    ("A_ij * x_j", "x"),
    ("x_i A_ij x_j", "x"),
    ("x_i ⊙ y_i", "x"),
    ("x_i .* y_j", "x"),
    ("x_i ⊙ y_i ⊙ z_i", "x"),
    ("x_i ⊙ (y_i ⊙ z_i)", "x"),
    ("(x_i ⊙ y_i) z_i", "x"),
    ("x_i ⊙ y_i z_i", "x"),
    ("σ(u_i) ⊙ W_ik", "x"),
    ("x_i + y_i", "x"),
    ("x_i - y_i", "x"),
    ("1 + x_i", "x"),
    ("x_i - 2", "x"),
    ("-x_i + y_i", "x"),
    ("a - -b", "x"),
    ("--a", "x"),
    ("a + b c", "x"),
    ("(a + b) c", "x"),
    ("a (b + c)", "x"),
    ("a - (b - c)", "x"),
    ("a - (b + c)", "x"),
    ("(a - b) - c", "x"),
    ("a (-b)", "x"),
    ("(-a) ⊙ b", "x"),
    ("x_i / y_i", "x"),
    ("x_i / sqrt(x_j x_j)", "x"),
    ("a / b / c", "x"),
    ("a / (b / c)", "x"),
    ("a b / c d", "x"),
    ("a / (b c)", "x"),
    ("1/2 x_i", "x"),
    ("x / 2", "x"),
    ("1 / x", "x"),
    ("x_i ⊙ y_i / z_i", "x"),
    ("(x_i ⊙ y_i) / z_i", "x"),
    ("x_i / Σ_j(x_j)", "x"),
    ("x_i^2", "x"),
    ("x_i**2", "x"),
    ("-x^2", "x"),
    ("(-x)^2", "x"),
    ("(-2)^x", "x"),
    ("-2^x", "x"),
    ("a^b^c", "x"),
    ("(a^b)^c", "x"),
    ("x^-1", "x"),
    ("x^-y", "x"),
    ("x^(1/3)", "x"),
    ("(1/3)^x", "x"),
    ("x_i^y_i", "x"),
    ("(A_ij x_j)^2", "x"),
    ("x_i^2 y_i", "x"),
    ("exp(x)^2", "x"),
    ("sum_i(x_i)", "x"),
    ("∑_{ij}(A_ij)", "x"),
    ("sum_i(x_i y_i)", "x"),
    ("sum_i(x_i x_i x_i)", "x"),
    ("sum_i(log(1 + exp(-y_i X_ij w_j)))", "x"),
    ("sum_i((y_i - t_i)^2)", "x"),
    ("sum_j(A_ij x_j)", "x"),
    ("sum_i(A_ii)", "x"),
    ("sum_i(sum_j(A_ij))", "x"),
    ("sum_i(x_i) sum_i(y_i)", "x"),
    ("sum_i(x_i) x_i", "x"),
    ("sum_j(x_i y_j y_j)", "x"),
    ("δ_ij", "x"),
    ("delta_ii", "x"),
    ("δ_ijk", "x"),
    ("δ_ij x_j", "x"),
    ("δ_{(ij)(kl)}", "x"),
    ("A_ij ⊙ δ_ij", "x"),
    ("ε_ijk", "x"),
    ("eps_ijkl", "x"),
    ("ε_ijk x_j y_k", "x"),
    ("eps_ij eps_kl X_ik X_jl / 2", "x"),
    ("exp(x_i)", "x"),
    ("log(x_i)", "x"),
    ("log1p(x_i)", "x"),
    ("sin(x) + cos(x) + tan(x)", "x"),
    ("tanh(W_ij x_j)", "x"),
    ("sqrt(x_i x_i)", "x"),
    ("abs(x_i) + sign(x_i) + step(x_i)", "x"),
    ("relu(x_i) + softplus(x_i)", "x"),
    ("sigmoid(x_i)", "x"),
    ("σ(x_i)", "x"),
    ("exp(-x^2)", "x"),
    ("yhat_i = sigma(W_ij x_j); yhat_k", "x"),
    ("M_ij = A_ik B_kj; M_jk M_ki", "x"),
    ("g_i = x_i x_j x_j; g_i g_i", "x"),
    ("x_{i,j}", "x"),
    ("x_{i,i}", "x"),
    ("x_{i,j} x_{j,i}", "x"),
    ("f = x_i x_i; f_{,k}", "x"),
    ("f_j = A_jk x_k; f_{j,i}", "x"),
    ("f_k = x_k x_m x_m; f_{k,ij}", "x"),
    ("f = W_ab W_ab; f_{,(ij)}", "W"),
    ("f = W_ab W_ab; f_{,(ij)(kl)}", "W"),
    ("W_{ab,(ij)}", "W"),
    ("(x_j x_j)_{,k}", "x"),
    ("(2 x_i)_{,j}", "x"),
    ("(x_i + y_i)_{,j}", "x"),
    ("(sum_i(x_i))_{,j}", "x"),
    ("f_j = x_j^2; f_{j,j}", "x"),
    ("yhat_i = sigma(W_ij x_j); L = sum_i((yhat_i - t_i)^2); L_{,(gh)}", "W"),
    ("x_i # comment", "x"),
    ("(((x)))", "x"),
]


@pytest.mark.parametrize(("program", "var"), ROUND_TRIP)
def test_unicode_text_parses_back_to_the_same_node(program: str, var: str) -> None:
    e = ic.parse(program, var=var)
    assert ic.parse(str(e), var=var) is e


@pytest.mark.parametrize(("program", "var"), ROUND_TRIP)
def test_ascii_text_parses_back_to_the_same_node(program: str, var: str) -> None:
    e = ic.parse(program, var=var)
    text = e.ascii()
    assert ic.parse(text, var=var) is e
    if all(char.isascii() or char in "⊙δεσΣ∑" for char in program):
        assert text.isascii()


@pytest.mark.parametrize(("program", "var"), [("(y_j)_{,i}", "x"), ("f_i = A_i; f_{i,j}", "x")])
def test_derivative_of_a_non_variable_tensor_round_trips(program: str, var: str) -> None:
    e = ic.parse(program, var=var)
    assert ic.parse(str(e), var=var) is e


@pytest.mark.parametrize("program", ["ε_ii", "ε_iij x_j", "sum_i(x_i ε_iij)"])
def test_epsilon_with_repeated_index_round_trips(program: str) -> None:
    e = ic.parse(program)
    assert ic.parse(str(e)) is e


def test_parenthesised_quotient_with_clashing_dummy_round_trips() -> None:
    e = ic.parse("a_i (x_i y_i / 2)")
    assert ic.parse(str(e)) is e


@pytest.mark.parametrize(
    "program",
    [
        "(a b) c",
        "a (b c)",
        "a ⊙ b c",
        "A_ij (x_j / 2)",
        "M_ij = A_ik B_kj; M_ij x_j",
        "δ_{(i)(j)}",
        "1 x_i",
    ],
)
def test_nested_product_round_trips_to_an_equivalent_node(program: str) -> None:
    # Printing flattens nested products; the reparsed node may nest differently but
    # simplifies to the same canonical node.
    e = ic.parse(program)
    assert ic.simplify(ic.parse(str(e))) is ic.simplify(e)


# -- the exact text, with parentheses only where precedence needs them ---------------------


@pytest.mark.parametrize(
    ("program", "text"),
    [
        ("a + b c", "a + b c"),
        ("(a + b) c", "(a + b) c"),
        ("a (b + c)", "a (b + c)"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("a + (-b)", "a - b"),
        ("x_i^2", "x_i^2"),
        ("x_i**2", "x_i^2"),
        ("-x^2", "-x^2"),
        ("(-x)^2", "(-x)^2"),
        ("-(x^2)", "-x^2"),
        ("(x_i y_i)^2", "(x_i y_i)^2"),
        ("exp(x)^2", "exp(x)^2"),
        ("x^-1", "x^-1"),
        ("x^(-1)", "x^-1"),
        ("(a^b)^c", "(a^b)^c"),
        ("x_i / y_i", "x_i / y_i"),
        ("(a / b)", "a / b"),
        ("a / (b c)", "a / (b c)"),
        ("a b / c d", "a b / c d"),
        ("a / (b / c)", "a / (b / c)"),
        ("x_i / sqrt(x_j x_j)", "x_i / sqrt(x_j x_j)"),
        ("1/2 x_i", "0.5 x_i"),
        ("1e-3", "0.001"),
        ("3/2", "1.5"),
        ("1/3", "1/3"),
        ("2/3 x_i", "2/3 x_i"),
        ("2 * x_i", "2 x_i"),
        ("A_{ij} * x_{j}", "A_ij x_j"),
        ("x_i .* y_i", "x_i ⊙ y_i"),
        ("x_i ⊙ y_j", "x_i y_j"),
        ("(x_i ⊙ y_i) z_i", "(x_i ⊙ y_i) z_i"),
        ("-x_i ⊙ y_i", "(-x_i) ⊙ y_i"),
        ("x_i ⊙ y_i + z_i", "x_i ⊙ y_i + z_i"),
        ("sum_i(x_i)", "Σ_i(x_i)"),
        ("sum_{ij}(A_ij)", "Σ_{ij}(A_ij)"),
        ("sum_i(x_i) sum_j(x_j)", "Σ_i(x_i) Σ_j(x_j)"),
        ("sum_i(log(1 + exp(-y_i X_ij w_j)))", "Σ_i(log(1 + exp(-y_i X_ij w_j)))"),
        ("delta_ij", "δ_ij"),
        ("δ_{(ij)(kl)}", "δ_ik δ_jl"),
        ("eps_ijk", "ε_ijk"),
        ("sigmoid(x_i)", "σ(x_i)"),
        ("sigma(x_i)", "σ(x_i)"),
        ("yhat_i = sigma(W_ij x_j); yhat_k", "σ(W_kj x_j)"),
        ("x_{i,j}", "x_{i,j}"),
        ("(x_j x_j)_{,k}", "(x_j x_j)_{,k}"),
        ("s = x_i x_i; s s", "(x_i x_i) (x_i x_i)"),
    ],
)
def test_text_has_parentheses_only_where_needed(program: str, text: str) -> None:
    assert str(ic.parse(program)) == text


def test_grouped_derivative_prints_its_group() -> None:
    e = ic.parse("L = W_ab W_ab; L_{,(gh)}", var="W")
    assert str(e) == "(W_ab W_ab)_{,(gh)}"


@pytest.mark.parametrize(
    "program",
    ["a^b^c", "x_i ⊙ y_i ⊙ z_i", "Σ_i(x_i) Σ_i(y_i)", "Σ_i(x_i) x_i", "x^-y"],
)
def test_text_omits_parentheses_that_precedence_makes_redundant(program: str) -> None:
    assert str(ic.parse(program)) == program


def test_number_over_expression_prints_as_written() -> None:
    assert str(ic.parse("2 / x")) == "2 / x"


@pytest.mark.parametrize(
    ("program", "text"),
    [
        ("x_i ⊙ y_i", "x_i .* y_i"),
        ("δ_ij x_j", "delta_ij x_j"),
        ("δ_{(ij)(kl)}", "delta_ik delta_jl"),
        ("ε_ijk x_j y_k", "eps_ijk x_j y_k"),
        ("σ(x_i)", "sigmoid(x_i)"),
        ("Σ_i(x_i)", "sum_i(x_i)"),
        ("∑_{ij}(A_ij)", "sum_{ij}(A_ij)"),
        ("sum_i(log(1 + exp(-y_i X_ij w_j)))", "sum_i(log(1 + exp(-y_i X_ij w_j)))"),
    ],
)
def test_ascii_text_uses_ascii_spellings(program: str, text: str) -> None:
    assert ic.parse(program).ascii() == text


# -- LaTeX -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "latex"),
    [
        ("δ_ij x_j", r"\delta_{ij} \, x_{j}"),
        ("x_i ⊙ y_i", r"x_{i} \odot y_{i}"),
        ("sum_i(x_i)", r"\sum_{i} \left(x_{i}\right)"),
        ("x_i / y_i", r"\frac{x_{i}}{y_{i}}"),
        ("ε_ijk", r"\varepsilon_{ijk}"),
        ("x_i^2", r"x_{i}^{2}"),
        ("sqrt(x_i x_i)", r"\sqrt{x_{i} \, x_{i}}"),
        ("σ(x_i)", r"\sigma\left(x_{i}\right)"),
        ("tanh(x)", r"\tanh\left(x\right)"),
        ("loss", r"\mathrm{loss}"),
        ("(a + b) c", r"\left(a + b\right) \, c"),
        ("1/3", r"\frac{1}{3}"),
        ("x_{i,j}", r"x_{i,j}"),
        ("(x_j x_j)_{,k}", r"\left(x_{j} \, x_{j}\right)_{,k}"),
    ],
)
def test_latex_of_each_construct(program: str, latex: str) -> None:
    assert ic.parse(program).latex() == latex


def test_latex_of_logistic_loss_has_sum_log_and_exp() -> None:
    latex = ic.parse("sum_i(log(1 + exp(-y_i X_ij w_j)))").latex()
    assert latex.startswith(r"\sum_{i} ")
    assert r"\log\left(1 + \exp\left(" in latex
    assert r"y_{i} \, X_{ij} \, w_{j}" in latex


def test_repr_latex_is_wrapped_in_dollars() -> None:
    e = ic.parse("δ_ij x_j")
    assert e._repr_latex_() == f"${e.latex()}$"
    assert e._repr_latex_() == r"$\delta_{ij} \, x_{j}$"


def test_repr_names_the_node_kind_and_text() -> None:
    assert repr(ic.parse("A_ij x_j")) == "<Product A_ij x_j>"


def test_latex_parenthesises_fraction_base() -> None:
    assert ic.parse("(1/3)^x").latex() == r"\left(\frac{1}{3}\right)^{x}"


# -- printing never raises anything but IndexCalcError -----------------------------------


def test_huge_power_of_numbers_stays_unfolded_and_prints() -> None:
    e = ic.parse("10^5000")
    assert str(e) == "10^5000"
    assert ic.parse(str(e)) is e


def test_huge_number_literal_is_a_parse_error() -> None:
    with pytest.raises(ic.ParseError, match="number 1e5000 is too large"):
        ic.parse("1e5000")


@pytest.mark.parametrize(
    "program", ["x^" * 990 + "x", "exp(" * 990 + "x" + ")" * 990], ids=["powers", "calls"]
)
def test_deepest_accepted_expression_prints_and_round_trips(program: str) -> None:
    e = ic.parse(program)
    assert ic.parse(str(e)) is e
    assert ic.parse(e.ascii()) is e
    assert e.latex().count("^") == program.count("^")


def test_a_renamed_inner_sum_takes_a_letter_used_nowhere_else():
    """m is free outside and summed inside Σ_{mj}; only δs size it, so text is read back
    with its size inferred by name. Renamed to i (A's axis of size 2) it changed the
    trace from 3 to 2."""
    text = "-(exp((A_ji δ_mn) B_nj))^(Σ_{mj}(δ_jm))"
    rng = np.random.default_rng(2)
    arrays = {"A": rng.normal(size=(3, 2)) / 3, "B": rng.normal(size=(3, 3)) / 3}
    expr = ic.parse(text)
    assert "i" not in str(expr).split("^")[1]
    expected = ic.evaluate(expr, arrays, out="im")
    for show in (str, ic.to_ascii):
        np.testing.assert_allclose(ic.evaluate(ic.parse(show(expr)), arrays, out="im"), expected)


@pytest.mark.parametrize(
    "text",
    [
        "(δ_ij) (S_ijj B_ki)",
        "(δ_ij B_km) (∑_j(S_ijj) x_l B_ki A_ml)",
        "(δ_nj) ∑_k(S_nkn) (B_in T_jin)",
    ],
)
def test_traces_inside_renamed_products_keep_their_own_letter(text):
    """Renaming i in (S_ijj B_ki) to l, then the trace's j beside the free j, must not
    pick l again: S_lll is a diagonal, not the trace S_lmm."""
    rng = np.random.default_rng(6)
    shapes = {"S": (2, 2, 2), "B": (2, 2), "x": (2,), "A": (2, 2), "T": (2, 2, 2)}
    arrays = {name: rng.normal(size=shape) for name, shape in shapes.items() if f"{name}_" in text}
    expr = ic.parse(text)
    expected = ic.evaluate(expr, arrays, dims={"i": 2, "j": 2, "n": 2})
    for show in (str, ic.to_ascii):
        reparsed = ic.parse(show(expr))
        actual = ic.evaluate(reparsed, arrays, dims={"i": 2, "j": 2, "n": 2})
        np.testing.assert_allclose(actual, expected)


def test_a_dimension_whose_letter_is_used_elsewhere_prints_with_its_axis_letter():
    """Differentiating made the dimension δ_jj (over S's axis 1, 3) share the letter p
    of a free index that ε sizes (2). Printed as (δ_pp) it read back as 2; printed with
    q, which indexes S's axis 1 in the same text, it reads back as 3, from the arrays."""
    text = "1e-1 * A_ii ⊙ δ_mn * (S_inm .* B_jm) * ∑_{nk}(ε_ji delta_kn)"
    rng = np.random.default_rng(8)
    arrays = {"A": rng.normal(size=(2, 2)), "S": rng.normal(size=(2, 3, 3))}
    arrays["B"] = rng.normal(size=(2, 3))
    derivative = ic.diff(text, "B_pq")
    expected = ic.evaluate(derivative, arrays, out="pq")
    assert str(derivative) == "0.1 A_ii Σ_j(S_lqj ⊙ δ_qj) ε_pl (δ_qq)"
    for show in (str, ic.to_ascii):
        reparsed = ic.parse(show(derivative))
        np.testing.assert_allclose(ic.evaluate(reparsed, arrays, out="pq"), expected)


def test_a_sum_sized_only_through_a_delta_gets_a_letter_no_tensor_holds():
    """Fuzz seed 22, input 95747: k, summed beside δ_nk (n's size, 3), shared its letter
    with the k of T_nkk (T's axis 1, 2) in another term; read back by name, k took 2."""
    text = "Σ_{kj}(log1p((A_ji delta_nk)^2)) + sum_{mj}(A_{i j} T_{nmm})**-1"
    rng = np.random.default_rng(22)
    arrays = {"A": rng.uniform(0.5, 1.5, (3, 3)), "T": rng.uniform(0.5, 1.5, (3, 2, 2))}
    derivative = ic.diff(text, "A_qr")
    expected = ic.evaluate(derivative, arrays, out="inqr")
    for show in (str, ic.to_ascii):
        reparsed = ic.parse(show(derivative))
        np.testing.assert_allclose(ic.evaluate(reparsed, arrays, out="inqr"), expected)
