"""Every construct of the notation parses to the expression it means (issue 2)."""

from __future__ import annotations

from fractions import Fraction

import pytest

import indexcalc as ic
from indexcalc.expr import Delta, Derivative, Epsilon, Func, Number, Power, Product, Sum, Tensor


def _products(node: ic.Expr) -> list[Product]:
    """Every Product node in the expression, outermost first."""
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Product):
            found.append(current)
        stack.extend(reversed(current.children))
    return found


def _innermost(node: Derivative) -> ic.Expr:
    """The expression under a chain of comma derivatives."""
    while isinstance(node, Derivative):
        node = node.expr
    return node


# -- the public API and the expression model ---------------------------------------------


def test_parse_returns_an_expr_with_sorted_free_indices() -> None:
    e = ic.parse("B_kji")
    assert isinstance(e, ic.Expr)
    assert e.free_indices == ("i", "j", "k")


def test_equal_expressions_are_one_interned_node() -> None:
    assert ic.parse("A_ij x_j + b_i") is ic.parse("A_ij x_j + b_i")
    assert hash(ic.parse("x_i y_i")) == hash(ic.parse("x_i y_i"))


def test_expression_nodes_are_immutable_and_usable_as_dict_keys() -> None:
    e = ic.parse("A_ij x_j")
    with pytest.raises(AttributeError):
        e.out = ("j",)
    assert {e: 1}[ic.parse("A_ij x_j")] == 1


def test_var_defaults_to_x() -> None:
    assert ic.parse("f = x_i x_i; f_{,k}") is ic.parse("f = x_i x_i; f_{,k}", var="x")


# -- tensors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "indices"),
    [
        ("x_i", "x", ("i",)),
        ("A_ij", "A", ("i", "j")),
        ("A_{ij}", "A", ("i", "j")),
        ("A_{i j}", "A", ("i", "j")),
        ("W2_{ab}", "W2", ("a", "b")),
        ("W2_ab", "W2", ("a", "b")),
        ("L", "L", ()),
        ("w", "w", ()),
        ("loss", "loss", ()),
        ("yhat_i", "yhat", ("i",)),
        ("B_kji", "B", ("k", "j", "i")),
    ],
)
def test_tensor_has_its_name_and_indices(text: str, name: str, indices: tuple[str, ...]) -> None:
    e = ic.parse(text)
    assert isinstance(e, Tensor)
    assert (e.name, e.indices) == (name, indices)
    assert e.free_indices == tuple(sorted(indices))


@pytest.mark.parametrize(
    ("text", "name", "indices"),
    [
        ("α_β", "α", ("β",)),
        ("Γ_μν", "Γ", ("μ", "ν")),
        ("θ", "θ", ()),
        ("x_{αβ}", "x", ("α", "β")),
        ("Wμ_i", "Wμ", ("i",)),
    ],
)
def test_greek_letters_name_tensors_and_indices(
    text: str, name: str, indices: tuple[str, ...]
) -> None:
    e = ic.parse(text)
    assert isinstance(e, Tensor)
    assert (e.name, e.indices) == (name, indices)


def test_brace_and_plain_subscripts_give_the_same_tensor() -> None:
    assert ic.parse("A_{ij}") is ic.parse("A_ij") is ic.parse("A_{i j}")


def test_tensor_with_repeated_index_is_its_trace() -> None:
    e = ic.parse("A_ii")
    assert isinstance(e, Product)
    assert e.free_indices == ()
    assert e.summed == {"i"}
    assert e.factors == (Tensor("A", ("i", "i")),)


# -- numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2", Fraction(2)),
        ("0.5", Fraction(1, 2)),
        (".5", Fraction(1, 2)),
        ("2.", Fraction(2)),
        ("1e-3", Fraction(1, 1000)),
        ("1E+3", Fraction(1000)),
        ("2.5e2", Fraction(250)),
        ("3/2", Fraction(3, 2)),
        ("1/3", Fraction(1, 3)),
        ("-2", Fraction(-2)),
        ("2 3", Fraction(6)),
        ("2^3", Fraction(8)),
        ("2^-1", Fraction(1, 2)),
        ("2^3^2", Fraction(512)),
    ],
)
def test_number_is_an_exact_fraction(text: str, value: Fraction) -> None:
    e = ic.parse(text)
    assert isinstance(e, Number)
    assert e.value == value
    assert isinstance(e.value, Fraction)
    assert e.free_indices == ()


# -- products and the Einstein convention ------------------------------------------------


def test_repeated_index_in_product_is_summed() -> None:
    e = ic.parse("A_ij x_j")
    assert isinstance(e, Product)
    assert e.factors == (Tensor("A", "ij"), Tensor("x", "j"))
    assert e.out == ("i",)
    assert e.summed == {"j"}
    assert e.free_indices == ("i",)


def test_star_is_juxtaposition() -> None:
    assert ic.parse("A_ij * x_j") is ic.parse("A_ij x_j")
    assert ic.parse("2 * x_i") is ic.parse("2 x_i")


def test_quadratic_form_sums_both_indices() -> None:
    e = ic.parse("x_i A_ij x_j")
    assert isinstance(e, Product)
    assert e.out == ()
    assert e.summed == {"i", "j"}


def test_number_factor_is_a_leading_coefficient() -> None:
    e = ic.parse("2 x_i")
    assert isinstance(e, Product)
    assert e.factors == (Number(2), Tensor("x", "i"))
    assert e.out == ("i",)


def test_number_factors_of_a_product_are_folded() -> None:
    assert ic.parse("2 x_i 3") is ic.parse("6 x_i")


@pytest.mark.parametrize("text", ["1 x_i", "0.5 2 x_i", "a = 1; a x_i"])
def test_unit_coefficient_leaves_the_bare_factor(text: str) -> None:
    assert ic.parse(text) is Tensor("x", "i")


def test_matrix_product_keeps_outer_indices() -> None:
    e = ic.parse("A_ik B_kj")
    assert e.free_indices == ("i", "j")
    assert e.summed == {"k"}


# -- elementwise product -----------------------------------------------------------------


def test_hadamard_product_keeps_shared_index() -> None:
    e = ic.parse("x_i ⊙ y_i")
    assert isinstance(e, Product)
    assert e.factors == (Tensor("x", "i"), Tensor("y", "i"))
    assert e.out == ("i",)
    assert e.summed == frozenset()


def test_ascii_hadamard_is_the_same_node() -> None:
    assert ic.parse("x_i .* y_i") is ic.parse("x_i ⊙ y_i")


def test_hadamard_of_distinct_indices_is_outer_product() -> None:
    assert ic.parse("x_i .* y_j").free_indices == ("i", "j")
    assert ic.parse("x_i ⊙ y_j") is ic.parse("x_i y_j")


def test_hadamard_binds_more_loosely_than_juxtaposition() -> None:
    e = ic.parse("x_i ⊙ y_j z_j")
    assert e.factors == (Tensor("x", "i"), ic.parse("y_j z_j"))
    assert e.free_indices == ("i",)


def test_hadamard_lets_an_index_appear_three_times() -> None:
    e = ic.parse("x_i ⊙ y_i ⊙ z_i")
    assert e.free_indices == ("i",)
    assert all(p.out == ("i",) for p in _products(e))


# -- sums --------------------------------------------------------------------------------


def test_sum_of_terms_with_equal_free_indices() -> None:
    e = ic.parse("A_ij x_j + b_i")
    assert isinstance(e, Sum)
    assert e.terms == (ic.parse("A_ij x_j"), Tensor("b", "i"))
    assert e.free_indices == ("i",)


def test_difference_negates_the_second_term() -> None:
    e = ic.parse("x_i - y_i")
    assert isinstance(e, Sum)
    assert e.terms == (Tensor("x", "i"), ic.parse("-y_i"))
    assert e.terms[1] is Product((Number(-1), Tensor("y", "i")), ("i",))


def test_sums_flatten_left_to_right() -> None:
    e = ic.parse("a + b - c + d")
    assert isinstance(e, Sum)
    assert len(e.terms) == 4


@pytest.mark.parametrize("text", ["1 + x_i", "x_i + 1", "x_i - 2", "0.5 - x_i"])
def test_number_term_broadcasts_in_a_sum(text: str) -> None:
    e = ic.parse(text)
    assert isinstance(e, Sum)
    assert e.free_indices == ("i",)


def test_unary_minus_multiplies_by_minus_one() -> None:
    e = ic.parse("-x_i")
    assert isinstance(e, Product)
    assert e.factors == (Number(-1), Tensor("x", "i"))
    assert e.out == ("i",)


def test_unary_plus_is_transparent() -> None:
    assert ic.parse("+x_i") is ic.parse("x_i")


def test_minus_number_is_a_negative_number() -> None:
    assert ic.parse("-0.5") is Number(Fraction(-1, 2))


# -- division and powers -----------------------------------------------------------------


def test_division_is_elementwise_multiplication_by_reciprocal() -> None:
    e = ic.parse("x_i / y_i")
    assert isinstance(e, Product)
    assert e.factors == (Tensor("x", "i"), Power(Tensor("y", "i"), Number(-1)))
    assert e.out == ("i",)
    assert e.summed == frozenset()


def test_division_by_a_contracted_scalar_keeps_numerator_index() -> None:
    e = ic.parse("x_i / sqrt(x_j x_j)")
    assert e.free_indices == ("i",)
    assert e.factors[1] is Power(Func("sqrt", ic.parse("x_j x_j")), Number(-1))


def test_number_division_folds_to_a_fraction() -> None:
    assert ic.parse("3/2") is Number(Fraction(3, 2))
    assert ic.parse("1 / 4") is Number(Fraction(1, 4))


def test_division_chains_left_to_right() -> None:
    assert ic.parse("a / b / c") is ic.parse("(a / b) / c")


@pytest.mark.parametrize("text", ["x_i^2", "x_i**2"])
def test_power_is_elementwise(text: str) -> None:
    e = ic.parse(text)
    assert e is Power(Tensor("x", "i"), Number(2))
    assert e.free_indices == ("i",)


def test_power_with_indexed_exponent_subset_of_base() -> None:
    e = ic.parse("x_i^y_i")
    assert e is Power(Tensor("x", "i"), Tensor("y", "i"))
    assert e.free_indices == ("i",)


def test_power_is_right_associative() -> None:
    assert ic.parse("a^b^c") is Power(Tensor("a"), Power(Tensor("b"), Tensor("c")))
    assert ic.parse("a**b**c") is ic.parse("a^b^c")


@pytest.mark.parametrize(("text", "exponent"), [("x^-1", -1), ("x^-2", -2), ("x^0.5", "1/2")])
def test_power_takes_a_signed_exponent(text: str, exponent) -> None:
    assert ic.parse(text) is Power(Tensor("x"), Number(Fraction(exponent)))


# -- precedence, loosest to tightest: + -, ⊙, unary minus, juxtaposition * /, ^ ----------


@pytest.mark.parametrize(
    ("text", "grouped"),
    [
        ("a + b c", "a + (b c)"),
        ("a ⊙ b + c", "(a ⊙ b) + c"),
        ("a ⊙ b c", "a ⊙ (b c)"),
        ("-a ⊙ b", "(-a) ⊙ b"),
        ("-a b", "-(a b)"),
        ("-x^2", "-(x^2)"),
        ("a b / c d", "((a b) / c) d"),
        ("1/2 x_i", "(1/2) x_i"),
        ("x_i / 2 y_i", "(x_i / 2) y_i"),
        ("x_i^2 y_i", "(x_i^2) y_i"),
        ("a^b^c", "a^(b^c)"),
        ("a - b - c", "(a - b) - c"),
        ("a - b + c", "(a - b) + c"),
        ("2^-x^2", "2^(-(x^2))"),
        ("a * b / c", "(a b) / c"),
    ],
)
def test_precedence_groups_as_documented(text: str, grouped: str) -> None:
    assert ic.parse(text) is ic.parse(grouped)


def test_division_applies_to_the_whole_juxtaposition_before_it() -> None:
    e = ic.parse("a b / c d")
    assert e.factors == (ic.parse("a b / c"), Tensor("d"))
    assert e.factors[0].factors == (ic.parse("a b"), Power(Tensor("c"), Number(-1)))


@pytest.mark.parametrize("depth", [1, 3, 50])
def test_parentheses_are_transparent(depth: int) -> None:
    assert ic.parse("(" * depth + "A_ij x_j" + ")" * depth) is ic.parse("A_ij x_j")


# -- explicit reductions and held indices ------------------------------------------------


@pytest.mark.parametrize("text", ["sum_i(x_i)", "Σ_i(x_i)", "∑_i(x_i)", "sum_{i}(x_i)"])
def test_explicit_sum_spellings_are_one_node(text: str) -> None:
    e = ic.parse(text)
    assert e is Product((Tensor("x", "i"),), ())
    assert e.summed == {"i"}


def test_sum_over_several_indices() -> None:
    e = ic.parse("sum_{ij}(A_ij)")
    assert e is Product((Tensor("A", "ij"),), ())
    assert ic.parse("Σ_{ij}(A_ij)") is e


def test_sum_over_one_of_two_free_indices() -> None:
    e = ic.parse("sum_j(A_ij)")
    assert e.free_indices == ("i",)
    assert e.summed == {"j"}


def test_sum_holds_its_index_so_products_keep_it() -> None:
    e = ic.parse("sum_i(x_i y_i)")
    (inner,) = e.factors
    assert inner is Product((Tensor("x", "i"), Tensor("y", "i")), ("i",))
    assert e.out == ()


def test_held_index_may_appear_three_times() -> None:
    e = ic.parse("sum_i(x_i x_i x_i)")
    (inner,) = e.factors
    assert inner.factors == (Tensor("x", "i"),) * 3
    assert inner.out == ("i",)
    assert e.free_indices == ()


def test_index_not_held_is_still_summed_inside_a_sum() -> None:
    e = ic.parse("sum_i(y_i X_ij w_j)")
    (inner,) = e.factors
    assert inner.out == ("i",)
    assert inner.summed == {"j"}


def test_logistic_loss_multiplies_labels_elementwise() -> None:
    e = ic.parse("sum_i(log(1 + exp(-y_i X_ij w_j)))")
    assert e.free_indices == ()
    assert e.out == ()
    (log,) = e.factors
    assert isinstance(log, Func)
    assert log.name == "log"
    assert log.free_indices == ("i",)
    margins = [
        p
        for p in _products(log)
        if set(p.factors) >= {Tensor("y", "i"), Tensor("X", "ij"), Tensor("w", "j")}
    ]
    assert len(margins) == 1
    assert margins[0].out == ("i",)
    assert margins[0].summed == {"j"}


def test_held_index_ends_with_its_sum() -> None:
    e = ic.parse("sum_i(x_i) + x_j y_j")
    assert e.free_indices == ()
    assert e.terms[1].summed == {"j"}


def test_nested_sums() -> None:
    e = ic.parse("sum_i(sum_j(A_ij))")
    assert e.free_indices == ()
    assert e.factors == (ic.parse("sum_j(A_ij)"),)


# -- Kronecker delta and Levi-Civita -----------------------------------------------------


@pytest.mark.parametrize("text", ["δ_ij", "delta_ij", "δ_{ij}", "delta_{i j}"])
def test_kronecker_delta_spellings(text: str) -> None:
    e = ic.parse(text)
    assert e is Delta("ij")
    assert e.free_indices == ("i", "j")


def test_delta_of_three_indices() -> None:
    assert ic.parse("δ_ijk") is Delta("ijk")


def test_delta_with_repeated_index_is_the_dimension() -> None:
    e = ic.parse("δ_ii")
    assert e is Product((Delta("ii"),), ())
    assert e.free_indices == ()


def test_delta_contracts_with_vector_index() -> None:
    e = ic.parse("δ_ij x_j")
    assert e.factors == (Delta("ij"), Tensor("x", "j"))
    assert e.free_indices == ("i",)


def test_delta_pair_form_is_product_of_deltas() -> None:
    e = ic.parse("δ_{(ij)(kl)}")
    assert e is ic.parse("δ_ik δ_jl")
    assert e.factors == (Delta("ik"), Delta("jl"))
    assert e.free_indices == ("i", "j", "k", "l")
    assert ic.parse("delta_{(ij)(kl)}") is e


@pytest.mark.parametrize(
    ("text", "indices"),
    [("ε_ijk", "ijk"), ("eps_ijk", "ijk"), ("ε_ij", "ij"), ("eps_{ijkl}", "ijkl")],
)
def test_levi_civita_of_any_rank(text: str, indices: str) -> None:
    e = ic.parse(text)
    assert e is Epsilon(indices)
    assert e.free_indices == tuple(sorted(indices))


def test_cross_product_keeps_first_index() -> None:
    e = ic.parse("ε_ijk x_j y_k")
    assert e.free_indices == ("i",)
    assert e.summed == {"j", "k"}


def test_two_by_two_determinant_is_a_scalar() -> None:
    e = ic.parse("eps_ij eps_kl X_ik X_jl / 2")
    assert e.free_indices == ()
    numerator, half = e.factors
    assert numerator is ic.parse("ε_ij ε_kl X_ik X_jl")
    assert numerator.summed == {"i", "j", "k", "l"}
    assert half is Power(Number(2), Number(-1))


# -- functions ---------------------------------------------------------------------------


FUNCTION_NAMES = [
    "exp",
    "log",
    "log1p",
    "sin",
    "cos",
    "tan",
    "tanh",
    "sqrt",
    "abs",
    "sign",
    "step",
    "relu",
    "sigmoid",
    "softplus",
]


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_function_applies_elementwise(name: str) -> None:
    e = ic.parse(f"{name}(A_ij x_j)")
    assert isinstance(e, Func)
    assert e.name == name
    assert e.arg is ic.parse("A_ij x_j")
    assert e.free_indices == ("i",)


@pytest.mark.parametrize("text", ["σ(x_i)", "sigma(x_i)"])
def test_sigmoid_aliases(text: str) -> None:
    assert ic.parse(text) is ic.parse("sigmoid(x_i)")


def test_function_of_a_function() -> None:
    e = ic.parse("log(1 + exp(x_i))")
    assert e.arg is Sum((Number(1), Func("exp", Tensor("x", "i"))))


# -- comma derivatives -------------------------------------------------------------------


def test_comma_derivative_of_a_scalar_is_a_gradient() -> None:
    e = ic.parse("f = x_j x_j; f_{,i}")
    assert isinstance(e, Derivative)
    assert e.expr is ic.parse("x_j x_j")
    assert e.wrt is Tensor("x", "i")
    assert e.free_indices == ("i",)


def test_comma_derivative_of_a_vector_is_a_jacobian() -> None:
    e = ic.parse("f_j = A_jk x_k; f_{j,i}")
    assert isinstance(e, Derivative)
    assert e.expr is ic.parse("A_jk x_k")
    assert e.wrt is Tensor("x", "i")
    assert e.free_indices == ("i", "j")


def test_two_derivative_indices_are_a_second_derivative() -> None:
    e = ic.parse("f_k = x_k x_m x_m; f_{k,ij}")
    assert isinstance(e, Derivative)
    assert e.wrt is Tensor("x", "j")
    assert isinstance(e.expr, Derivative)
    assert e.expr.wrt is Tensor("x", "i")
    assert e.expr.expr is ic.parse("x_k x_m x_m")
    assert e.free_indices == ("i", "j", "k")


def test_grouped_derivative_is_with_respect_to_a_matrix() -> None:
    e = ic.parse("f = W_ab W_ab; f_{,(ij)}", var="W")
    assert isinstance(e, Derivative)
    assert e.wrt is Tensor("W", "ij")
    assert e.free_indices == ("i", "j")


def test_two_groups_are_a_second_derivative_by_a_matrix() -> None:
    e = ic.parse("f = W_ab W_ab; f_{,(ij)(kl)}", var="W")
    assert e.wrt is Tensor("W", "kl")
    assert e.expr.wrt is Tensor("W", "ij")
    assert e.free_indices == ("i", "j", "k", "l")


def test_comma_derivative_of_a_parenthesised_expression() -> None:
    e = ic.parse("(x_j x_j)_{,k}")
    assert isinstance(e, Derivative)
    assert e.expr is ic.parse("x_j x_j")
    assert e.wrt is Tensor("x", "k")
    assert e.free_indices == ("k",)


def test_comma_derivative_of_the_variable_itself() -> None:
    e = ic.parse("x_{i,j}")
    assert e is Derivative(Tensor("x", "i"), Tensor("x", "j"))


def test_comma_derivative_uses_the_declared_variable() -> None:
    e = ic.parse("(y_i)_{,j}", var="y")
    assert e.wrt is Tensor("y", "j")
    assert ic.parse("(w_i)_{,j}", var="w") is Derivative(Tensor("w", "i"), Tensor("w", "j"))


def test_derivative_index_equal_to_a_free_index_is_a_divergence() -> None:
    e = ic.parse("f_j = x_j^2; f_{j,j}")
    assert e.free_indices == ()
    derivative, delta = e.factors
    assert isinstance(derivative, Derivative)
    assert isinstance(delta, Delta)
    assert set(delta.indices) == set(derivative.free)


def test_neural_layer_loss_gradient_by_weight_matrix() -> None:
    program = "yhat_i = sigma(W_ij x_j); L = sum_i((yhat_i - t_i)^2); L_{,(gh)}"
    e = ic.parse(program, var="W")
    assert isinstance(e, Derivative)
    assert e.wrt is Tensor("W", "gh")
    assert e.expr is ic.parse("sum_i((sigma(W_ij x_j) - t_i)^2)", var="W")
    assert e.free_indices == ("g", "h")


def test_definition_dummies_do_not_clash_with_derivative_indices() -> None:
    e = ic.parse("f_k = A_ki x_i; f_{k,ij}")
    body = _innermost(e)
    assert not (body.all_indices - body.free) & {"i", "j"}


# -- definitions -------------------------------------------------------------------------


def test_defined_name_is_substituted_with_its_indices_renamed() -> None:
    e = ic.parse("yhat_i = sigma(W_ij x_j); yhat_k")
    assert e is ic.parse("sigma(W_kj x_j)")
    assert e.free_indices == ("k",)


def test_definition_summed_index_is_renamed_to_avoid_capture() -> None:
    e = ic.parse("yhat_i = sigma(W_ij x_j); yhat_j")
    assert e.free_indices == ("j",)
    (inner,) = _products(e)
    assert inner.out == ("j",)
    assert inner.summed and "j" not in inner.summed


def test_matrix_definition_used_with_swapped_indices() -> None:
    e = ic.parse("M_ij = A_ik B_kj; M_ki")
    assert e.free_indices == ("i", "k")
    assert e.summed.isdisjoint({"i", "k"})
    a, b = e.factors
    assert (a.name, a.indices[0]) == ("A", "k")
    assert (b.name, b.indices[1]) == ("B", "i")


def test_definition_used_with_its_own_indices() -> None:
    assert ic.parse("f_i = A_ij x_j; f_i") is ic.parse("A_ij x_j")


def test_scalar_definition() -> None:
    assert ic.parse("L = x_i x_i; 2 L") is ic.parse("2 (x_i x_i)")


def test_definitions_build_on_earlier_definitions() -> None:
    e = ic.parse("f_i = A_ij x_j; g_j = f_j + b_j; g_k")
    assert e.free_indices == ("k",)
    product, bias = e.terms
    assert bias is Tensor("b", "k")
    a, x = product.factors
    assert (a.name, x.name, a.indices[0]) == ("A", "x", "k")
    assert a.indices[1] == x.indices[0] != "k"


def test_definition_with_repeated_index_is_a_trace() -> None:
    e = ic.parse("M_ij = A_ij; M_kk")
    assert e.free_indices == ()


def test_newline_separates_statements_like_semicolon() -> None:
    with_newlines = "yhat_i = sigma(W_ij x_j)\nL = sum_i((yhat_i - t_i)^2)\nL"
    with_semicolons = "yhat_i = sigma(W_ij x_j); L = sum_i((yhat_i - t_i)^2); L"
    assert ic.parse(with_newlines) is ic.parse(with_semicolons)


@pytest.mark.parametrize(
    "text",
    [
        "\n\na = 2\n\n\nb_i = a x_i\n\nb_i\n\n",
        ";a = 2;;b_i = a x_i;b_i;",
        "a = 2 ;\n b_i = a x_i ;\n b_i",
        "\r\na = 2\r\nb_i = a x_i\r\nb_i\r\n",
    ],
)
def test_blank_lines_and_extra_separators_are_allowed(text: str) -> None:
    assert ic.parse(text) is ic.parse("2 x_i")


# -- comments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "A_ij x_j # a matrix times a vector",
        "# header\nA_ij x_j",
        "f_i = A_ij x_j  # the layer\n# then\nf_i",
        "A_ij x_j #",
    ],
)
def test_comments_run_to_end_of_line(text: str) -> None:
    assert ic.parse(text) is ic.parse("A_ij x_j")
