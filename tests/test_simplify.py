"""Simplification: delta contraction, folding, canonical form, sharing, higher derivatives.

Identity checks (``is``) rely on interning: two equal expressions are one object.
"""

from __future__ import annotations

import numpy as np
import pytest
from finite_difference import numeric_derivative

import indexcalc as ic
from indexcalc import algebra
from indexcalc.algebra import broadcast_constant
from indexcalc.expr import Delta, Expr, Func, Sum, node_count

N = 3
RNG = np.random.default_rng(11)
ARRAYS = {
    "A": RNG.normal(size=(N, N)),
    "B": RNG.normal(size=(N, N)),
    "T": RNG.normal(size=(N, N, N)),
    "W": RNG.normal(size=(4, N)),
    "x": RNG.normal(size=N),
    "y": RNG.normal(size=N),
    "z": RNG.normal(size=N),
    "u": RNG.normal(size=4),
    "p": RNG.uniform(0.5, 2.0, size=N),
    "a": np.float64(0.8),
    "w": np.float64(1.7),
}
DIMS = dict.fromkeys("ijklmgh", N)


def evaluate(expr, out: str | None = None) -> np.ndarray:
    return np.asarray(ic.evaluate(expr, ARRAYS, out=out, dims=DIMS))


def nodes(expr: ic.Expr) -> list[ic.Expr]:
    """The distinct nodes of the DAG."""
    seen: dict[int, ic.Expr] = {}
    stack = [expr]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen[id(node)] = node
            stack.extend(node.children)
    return list(seen.values())


def is_zeros(expr: ic.Expr, free: str) -> bool:
    """Whether `expr` is zeros over exactly the indices `free` (the number 0 if none)."""
    return broadcast_constant(expr) == 0 and expr.free_indices == tuple(sorted(free))


def contains_delta(expr: ic.Expr) -> bool:
    return any(isinstance(node, Delta) for node in nodes(expr))


def tree_size(expr: ic.Expr) -> int:
    """The number of nodes if no subexpression were shared."""
    sizes: dict[int, int] = {}
    for node in reversed(_postorder(expr)):
        sizes[id(node)] = 1 + sum(sizes[id(c)] for c in node.children)
    return sizes[id(expr)]


def _postorder(expr: ic.Expr) -> list[ic.Expr]:
    """Parents before children (reverse it for children first)."""
    order, seen, stack = [], set(), [(expr, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in node.children)
    return order[::-1]


# -- delta contraction ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("delta_ij x_j", "x_i"),
        ("delta_ij delta_jk", "delta_ik"),
        ("delta_ij eps_jkl", "eps_ikl"),
        ("delta_ij delta_jk delta_kl", "delta_il"),
        ("x_i delta_ij delta_jk delta_kl y_l", "x_l y_l"),
        ("delta_ij A_jk", "A_ik"),
        ("A_ij delta_jk B_kl", "A_ij B_jl"),
    ],
)
def test_delta_contracts_by_renaming(text, expected):
    simplified = ic.simplify(text)
    assert not contains_delta(simplified) or "delta" in expected
    assert is_zeros(ic.simplify(f"{text} - ({expected})"), ic.parse(text).free_indices)
    np.testing.assert_allclose(evaluate(simplified), evaluate(expected), rtol=1e-12)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("delta_ij x_j", "x_i"), ("delta_ij delta_jk", "delta_ik"), ("delta_ij eps_jkl", "eps_ikl")],
)
def test_delta_contraction_keeps_the_free_index_names(text, expected):
    assert ic.simplify(text) is ic.parse(expected)


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        ("delta_ij A_ij", lambda a: np.trace(a["A"])),
        ("delta_ij A_ji", lambda a: np.trace(a["A"])),
        ("delta_ij T_ijk", lambda a: np.einsum("iik->k", a["T"])),
        ("delta_ijk T_ijk", lambda a: np.einsum("kkk->", a["T"])),
        ("delta_ijk A_jk", lambda a: np.diag(a["A"])),
        ("delta_ijk x_i y_j z_k", lambda a: np.sum(a["x"] * a["y"] * a["z"])),
    ],
)
def test_delta_summed_against_one_tensor_leaves_no_delta(text, reference):
    simplified = ic.simplify(text)
    assert not contains_delta(simplified)
    np.testing.assert_allclose(evaluate(simplified), reference(ARRAYS), rtol=1e-12)


def test_trace_by_delta_equals_trace_written_directly():
    np.testing.assert_allclose(
        evaluate(ic.simplify("delta_ij A_ij")), evaluate(ic.simplify("A_ii")), rtol=1e-12
    )


def test_delta3_contracted_with_vector_is_diagonal_matrix():
    simplified = ic.simplify("delta_ijk x_k")
    np.testing.assert_allclose(evaluate(simplified, "ij"), np.diag(ARRAYS["x"]))


@pytest.mark.parametrize("size", [1, 4, 7])
def test_delta_ii_is_the_dimension(size):
    assert float(ic.evaluate("delta_ii", dims={"i": size})) == size
    np.testing.assert_allclose(
        ic.evaluate("delta_ii x_j", x=ARRAYS["x"], dims={"i": size}), size * ARRAYS["x"]
    )


def test_delta_ii_takes_its_dimension_from_a_tensor():
    A = RNG.normal(size=(5, 5))
    for expr in ("delta_ii - A_ii", ic.simplify("delta_ii - A_ii")):
        assert float(ic.evaluate(expr, A=A)) == pytest.approx(5 - np.trace(A))


# -- folding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0 x_i + 1 y_i", "y_i"),
        ("2 3 x_i", "6 x_i"),
        ("x_i + 0", "x_i"),
        ("1 x_i", "x_i"),
        ("2 + 3 - 1", "4"),
        ("2^3", "8"),
        ("x^0", "1"),
        ("x^1", "x"),
        ("exp(0)", "1"),
        ("log(1)", "0"),
        ("cos(0) x", "x"),
        ("x_i - x_i", "0 x_i"),
        ("0 exp(x_i)", "0 x_i"),
        ("relu(-2) + abs(-3)", "3"),
        ("-(-a)", "a"),
        ("-(-x_i)", "x_i"),
        ("-(-(-x))", "-x"),
        ("x x^3", "x^4"),
        ("x^2 x^3", "x^5"),
        ("w w", "w^2"),
        ("x_i ⊙ x_i^2", "x_i^3"),
        ("x_i ⊙ y_i ⊙ x_i", "x_i^2 ⊙ y_i"),
    ],
)
def test_constants_fold_and_powers_merge(text, expected):
    assert ic.simplify(text) is ic.simplify(expected)


def test_folded_number_is_a_number_node():
    assert ic.simplify("2 + 3 - 1") is ic.parse("4")
    assert ic.simplify("x - x") is ic.parse("0")
    assert ic.simplify("A_ij B_ji - B_ij A_ji") is ic.parse("0")


def test_summed_powers_keep_their_value():
    simplified = ic.simplify("x_i x_i^2")
    np.testing.assert_allclose(evaluate(simplified), np.sum(ARRAYS["x"] ** 3), rtol=1e-12)


def test_cancelled_powers_keep_free_indices():
    simplified = ic.simplify("x_i ⊙ x_i^-1")
    assert simplified.free_indices == ("i",)
    np.testing.assert_allclose(evaluate(simplified, "i"), np.ones(N))


def test_derivative_with_cancelling_powers():
    derivative = ic.diff("w x_i ⊙ x_i^-1", "w")
    np.testing.assert_allclose(evaluate(derivative, "i"), np.ones(N))


# -- canonical form -------------------------------------------------------------------------


def test_like_terms_with_renamed_dummies_collect():
    assert ic.simplify("A_kj x_j + A_kl x_l") is ic.simplify("2 A_kj x_j")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x_i A_ij x_j + x_j A_ji x_i", "2 x_i A_ij x_j"),
        ("A_ij B_ji + B_kl A_lk", "2 A_ij B_ji"),
        ("A_ij B_jk T_kli + B_ij T_jlk A_ki", "2 A_ij B_jk T_kli"),
        ("A_ij x_j - A_ik x_k", "0 A_ij x_j"),
        ("exp(x_i A_ij y_j) + exp(y_j A_ij x_i)", "2 exp(x_i A_ij y_j)"),
        ("sin(A_ij x_j) z_i + z_k sin(A_kl x_l)", "2 sin(A_ij x_j) z_i"),
        ("x_i A_ij A_jk y_k + x_a A_ab A_bc y_c", "2 x_i A_ij A_jk y_k"),
        ("A_ij A_kj x_i x_k + A_lm x_l A_nm x_n", "2 A_ij A_kj x_i x_k"),
    ],
)
def test_terms_equal_up_to_renaming_and_order_collect(text, expected):
    assert ic.simplify(text) is ic.simplify(expected)


def test_repeated_tensor_terms_collect_regardless_of_factor_order():
    assert ic.simplify("x_i A_ij A_jk y_k + y_c A_bc A_ab x_a") is ic.simplify(
        "2 x_i A_ij A_jk y_k"
    )


def test_commuted_product_of_two_quadratic_forms_collects():
    text = "x_i A_ij x_j A_kl y_k y_l + y_a A_ab y_b A_cd x_c x_d"
    assert ic.simplify(text) is ic.simplify("2 x_i A_ij x_j A_kl y_k y_l")


def test_transposes_do_not_collect_without_symmetry():
    simplified = ic.simplify("A_ij x_j + A_ji x_j")
    assert simplified is not ic.simplify("2 A_ij x_j")
    assert str(simplified) == "x_j (A_ij + A_ji)"  # the common factor comes out: (A + Aᵀ) x
    A, x = ARRAYS["A"], ARRAYS["x"]
    np.testing.assert_allclose(evaluate(simplified, "i"), (A + A.T) @ x, rtol=1e-12)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A_ij x_j + A_ji x_j", "2 A_ij x_j"),
        ("A_ij - A_ji", "0 A_ij"),
        ("A_ij B_jk + A_ji B_jk", "2 A_ij B_jk"),
        ("x_i A_ij y_j - y_i A_ji x_j", "0"),
        ("A_ki x_i + A_ik x_i", "2 A_ki x_i"),
    ],
)
def test_symmetric_tensor_collects_transposes(text, expected):
    simplified = ic.simplify(text, symmetric=["A"])
    assert simplified is ic.simplify(expected, symmetric=["A"])
    S = ARRAYS["A"] + ARRAYS["A"].T
    arrays = {**ARRAYS, "A": S}
    np.testing.assert_allclose(
        ic.evaluate(simplified, arrays, dims=DIMS),
        ic.evaluate(text, arrays, dims=DIMS),
        atol=1e-12,
    )


def test_symmetric_gradient_is_two_a_x():
    gradient = ic.diff("x_i A_ij x_j", "x_k", symmetric=["A"])
    assert gradient is ic.simplify("2 A_kj x_j")
    assert str(gradient) == "2 A_kj x_j"


def test_symmetric_bilinear_form_terms_collect():
    simplified = ic.simplify("x_i A_ij y_j + y_i A_ij x_j", symmetric=["A"])
    assert simplified is ic.simplify("2 x_i A_ij y_j", symmetric=["A"])


def test_symmetric_hessian_of_squared_quadratic_form_has_two_terms():
    hessian = ic.diff("(x_i A_ij x_j)^2", ["x_k", "x_l"], symmetric=["A"])
    assert isinstance(hessian, Sum)
    assert len(hessian.terms) == 2


def test_symmetric_hessian_of_squared_quadratic_form_values():
    S = ARRAYS["A"] + ARRAYS["A"].T
    x = ARRAYS["x"]
    hessian = ic.diff("(x_i A_ij x_j)^2", ["x_k", "x_l"], symmetric=["A"])
    Sx = S @ x
    expected = 4 * (x @ Sx) * S + 8 * np.outer(Sx, Sx)
    np.testing.assert_allclose(ic.evaluate(hessian, A=S, x=x, out="kl"), expected, rtol=1e-12)


# -- simplify preserves values --------------------------------------------------------------

PRESERVED = [
    ("delta_ij x_j + A_ij delta_jk y_k", "i"),
    ("x_i A_ij x_j + x_j A_ji x_i - 2 y_k y_k", ""),
    ("3 (x_i - -(-y_i)) ⊙ (x_i + 0)", "i"),
    ("eps_ijk delta_jl x_l y_k", "i"),
    ("sum_i(x_i ⊙ x_i ⊙ y_i) + w w w", ""),
    ("exp(0) sigmoid(A_ij x_j) ⊙ p_i^2 ⊙ p_i", "i"),
    ("log(p_i) ⊙ p_i^-1 ⊙ p_i^2", "i"),
    ("delta_ijk A_jk + delta_ij delta_jk x_k", "i"),
    ("T_ijk delta_jk + T_ikk", "i"),
    ("(A_ij B_jk + A_ik) x_k", "i"),
    ("delta_ii x_j", "j"),
    ("a^a + 2^a a", ""),
    ("u_i tanh(W_ij x_j) + u_k tanh(W_kl x_l)", ""),
]


@pytest.mark.parametrize(("text", "out"), PRESERVED)
def test_simplify_preserves_values(text, out):
    simplified = ic.simplify(text)
    assert simplified.free == ic.parse(text).free
    np.testing.assert_allclose(
        evaluate(simplified, out or None), evaluate(text, out or None), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize(("text", "out"), PRESERVED)
def test_simplified_text_parses_back(text, out):
    simplified = ic.simplify(text)
    for printed in (str(simplified), simplified.ascii()):
        np.testing.assert_allclose(
            evaluate(ic.parse(printed), out or None),
            evaluate(simplified, out or None),
            rtol=1e-12,
            atol=1e-12,
        )


# -- sharing --------------------------------------------------------------------------------


def test_equal_subexpressions_are_one_node():
    gradient = ic.diff("sigmoid(A_ij x_j)", "x_k")
    sigmoids = [n for n in nodes(gradient) if isinstance(n, Func) and n.name == "sigmoid"]
    assert len(sigmoids) == 1
    assert str(gradient).count("σ(") == 2
    assert node_count(gradient) < tree_size(gradient)


def test_derivative_shares_the_expression_subtrees():
    expr = ic.parse("tanh(W_ij tanh(A_jk x_k))")
    gradient = ic.diff(expr, "x_l")
    inner = ic.parse("tanh(A_jk x_k)")
    assert any(node is inner for node in nodes(gradient))
    assert node_count(gradient) == len(nodes(gradient))


def test_node_count_counts_shared_nodes_once():
    expr = ic.parse("exp(x_i y_i) + sin(x_i y_i) x_k x_k")
    assert node_count(expr) == len(nodes(expr))
    assert node_count(expr) < tree_size(expr)


def test_deep_chain_derivative_is_a_dag_much_smaller_than_its_tree():
    program = "; ".join(
        ["h0 = w", *(f"h{k} = sin(h{k - 1}) h{k - 1}" for k in range(1, 13)), "h12"]
    )
    derivative = ic.diff(program, "w")
    assert node_count(derivative) < 200
    assert tree_size(derivative) > 50 * node_count(derivative)
    point = {"w": 0.9}
    numeric = numeric_derivative(program, "w", point)
    np.testing.assert_allclose(float(ic.evaluate(derivative, point)), numeric, rtol=1e-6)


def matrix_chain(length: int) -> str:
    """x_i (A1 A2 … A_length)_ij y_j, with each partial product a definition."""
    lines = ["M1_ij = A1_ij"]
    lines += [f"M{k}_ij = M{k - 1}_ik A{k}_kj" for k in range(2, length + 1)]
    return "; ".join([*lines, f"x_i M{length}_ij y_j"])


def test_gradient_of_a_matrix_chain_is_the_outer_product_of_its_two_sides():
    rng = np.random.default_rng(4)
    arrays = {f"A{k}": rng.normal(size=(3, 3)) for k in range(1, 5)}
    arrays |= {"x": rng.normal(size=3), "y": rng.normal(size=3)}
    gradient = ic.diff(matrix_chain(4), "A2_gh")
    left = arrays["x"] @ arrays["A1"]
    right = arrays["A3"] @ arrays["A4"] @ arrays["y"]
    np.testing.assert_allclose(ic.evaluate(gradient, arrays), np.outer(left, right), rtol=1e-12)


def test_differentiating_a_matrix_chain_does_work_linear_in_its_length(monkeypatch):
    """A regression test: a chain of n nested products was flattened level by level,
    every prefix of the chain built as a product of its own, so differentiating took time
    quadratic in n (19 s for 1,000 matrices).

    The work is counted, not timed: every child handed to a node constructor. Linear
    simplification hands each factor over a few times; level by level it was n²/2.
    """
    handed_over = {}
    construct = Expr.__new__
    for length in (100, 200):
        expr = ic.parse(matrix_chain(length))
        ic.clear_caches()
        count = 0

        def counting(cls, *args):
            nonlocal count
            count += 1 + sum(len(arg) for arg in args if isinstance(arg, tuple))
            return construct(cls, *args)

        with monkeypatch.context() as patch:
            patch.setattr(Expr, "__new__", staticmethod(counting))
            gradient = ic.diff(expr, f"A{length // 2}_gh")
        assert node_count(gradient) == length + 2  # the product, x, y and the other A's
        assert count <= 10 * node_count(expr)
        handed_over[length] = count
    assert handed_over[200] <= 2.2 * handed_over[100]


# -- second and third derivatives -----------------------------------------------------------

SMOOTH = [
    "(x_i A_ij x_j)^2",
    "log(sum_i(exp(x_i)))",
    "sum_i(log(1 + exp(-y_i A_ij x_j)))",
    "u_i sigmoid(W_ij x_j)",
    "sum_i(tanh(W_ij x_j)^2)",
    "sqrt(1 + x_i x_i)",
    "exp(x_i y_i) x_j x_j",
    "x_i x_i / (1 + x_j y_j)",
    "sum_i(sin(x_i) cos(x_i) ⊙ p_i)",
]


@pytest.mark.parametrize("text", SMOOTH)
def test_hessian_is_symmetric_and_matches_finite_differences(text):
    hessian = evaluate(ic.diff(text, ["x_k", "x_l"]), "kl")
    np.testing.assert_allclose(hessian, hessian.T, rtol=1e-12, atol=1e-12)
    gradient = ic.diff(text, "x_k")
    numeric = numeric_derivative(gradient, "x", ARRAYS, "k", dims=DIMS)
    np.testing.assert_allclose(hessian, numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("text", ["u_i sigmoid(W_ij x_j)", "sum_i(tanh(W_ij x_j)^2) x_k x_k"])
def test_mixed_derivatives_in_either_order_agree(text):
    # W is 4 x 3, so the arrays size g and h, not DIMS.
    first = ic.evaluate(ic.diff(text, ["x_l", "W_gh"]), ARRAYS, out="lgh")
    second = ic.evaluate(ic.diff(text, ["W_gh", "x_l"]), ARRAYS, out="lgh")
    np.testing.assert_allclose(first, second, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("text", SMOOTH[:6])
def test_third_derivative_matches_finite_differences_of_hessian(text):
    third = evaluate(ic.diff(text, ["x_k", "x_l", "x_m"]), "klm")
    for axes in ((1, 0, 2), (0, 2, 1), (2, 1, 0)):
        np.testing.assert_allclose(third, third.transpose(axes), rtol=1e-10, atol=1e-10)
    hessian = ic.diff(text, ["x_k", "x_l"])
    numeric = numeric_derivative(hessian, "x", ARRAYS, "kl", dims=DIMS)
    np.testing.assert_allclose(third, numeric, rtol=1e-5, atol=1e-5)


def test_third_derivative_of_quadratic_form_is_zero():
    third = ic.diff("x_i A_ij x_j", ["x_k", "x_l", "x_m"])
    assert is_zeros(third, "klm")
    np.testing.assert_array_equal(evaluate(third, "klm"), np.zeros((N, N, N)))


def test_third_derivative_of_cubic_closed_form():
    third = ic.diff("sum_i(x_i^3)", ["x_k", "x_l", "x_m"])
    expected = np.zeros((N, N, N))
    for k in range(N):
        expected[k, k, k] = 6
    np.testing.assert_allclose(evaluate(third, "klm"), expected)


@pytest.mark.parametrize("text", SMOOTH)
def test_printed_hessian_parses_back(text):
    hessian = ic.diff(text, ["x_k", "x_l"])
    for printed in (str(hessian), hessian.ascii()):
        reparsed = ic.parse(printed)
        assert reparsed.free == hessian.free
        np.testing.assert_allclose(
            evaluate(reparsed, "kl"), evaluate(hessian, "kl"), rtol=1e-12, atol=1e-12
        )


def test_symmetric_accepts_one_name_and_rejects_non_names():
    assert ic.diff("x_i A_ij x_j", "x_k", symmetric="A") is ic.simplify("2 A_kj x_j")
    with pytest.raises(ic.IndexCalcError, match="symmetric must name tensors"):
        ic.diff("x_i A_ij x_j", "x_k", symmetric=5)


def test_wrt_of_the_wrong_type_is_a_differentiation_error():
    with pytest.raises(ic.DifferentiationError, match="wrt must be"):
        ic.diff("x_i", 123)


DOUBLING = "h0 = x_i x_i; " + " ".join(f"h{k} = h{k - 1} h{k - 1};" for k in range(1, 40)) + " h39"


def test_definitions_that_double_a_product_are_refused_not_expanded():
    """h39 is (x_i x_i)^(2^39) written as 2^40 factors: a clear error, not a hang."""
    expr = ic.parse(DOUBLING)
    assert node_count(expr) < 100  # shared, as written
    for work in (ic.simplify, ic.to_matrix, lambda e: ic.diff(e, "x_k"), str, ic.Expr.ascii):
        with pytest.raises(ic.TooLargeError, match="more than"):
            work(expr)


def test_a_long_product_below_the_limit_still_simplifies():
    text = " ".join(f"a{k}" for k in range(1500)) + " x_i"
    assert len(ic.simplify(text).factors) == 1501


def test_equal_scalar_parts_of_a_product_are_one_power():
    rng = np.random.default_rng(11)
    x, y, A = rng.normal(size=3), rng.normal(size=2), rng.normal(size=(3, 3))
    cases = {
        "x_i x_i x_j x_j": ("(x_i x_i)^2", (x @ x) ** 2),
        "(x_i x_i)^2 (x_j x_j) y_k": ("(x_i x_i)^3 y_k", (x @ x) ** 3 * y),
        "x_i A_ij x_j x_k A_kl x_l / (x_m x_m)": ("(x_i A_ij x_j)^2 / (x_m x_m)", None),
        "x_i y_k x_i": ("x_i y_k x_i", (x @ x) * y),  # one part: nothing to merge
    }
    for text, (printed, value) in cases.items():
        simplified = ic.simplify(text)
        assert str(simplified) == printed
        expected = ic.evaluate(text, x=x, y=y, A=A) if value is None else value
        np.testing.assert_allclose(ic.evaluate(simplified, x=x, y=y, A=A), expected)


def test_a_scalar_squared_by_definitions_differentiates_as_a_power():
    """Nine definitions that each square the last make (x_i x_i)^512: its derivative is
    one power, not 512 terms of 1,023 factors (which took over five seconds)."""
    doubled = "; ".join(f"h{j} = h{j - 1} h{j - 1}" for j in range(1, 10))
    derivative = ic.diff(f"h0 = x_i x_i; {doubled}; h9", "x_k")
    assert str(derivative) == "1024 (x_i x_i)^511 x_k"
    x = np.array([0.3, -0.2, 0.1])
    np.testing.assert_allclose(ic.evaluate(derivative, x=x), 1024 * (x @ x) ** 511 * x)


def _power_chain(n: int) -> str:
    """x A^(n+1) x written as n definitions, each multiplying the last by A."""
    lines = ["h1_ij = A_ik A_kj", *(f"h{k}_ij = h{k - 1}_ik A_kj" for k in range(2, n + 1))]
    return "; ".join(lines) + f"; x_i h{n}_ij x_j"


def test_a_derivative_that_multiplies_out_too_far_is_refused(monkeypatch):
    """d(x Aⁿ x)/dA has n terms of n factors each: quadratic work, so a budget per call
    refuses it beyond MAX_BUILT_FACTORS (120,000: n ≈ 245, a few seconds)."""
    monkeypatch.setattr(algebra, "MAX_BUILT_FACTORS", 3_000)
    with pytest.raises(ic.TooLargeError, match="more than 3,000 factors in all"):
        ic.diff(_power_chain(60), "A_pq")
    for _ in range(3):  # each call has its own budget
        gradient = ic.diff(_power_chain(20), "A_pq")
    rng = np.random.default_rng(5)
    A, x = rng.normal(size=(3, 3)) / 2, rng.normal(size=3)
    powers = [np.linalg.matrix_power(A, k) for k in range(21)]  # d(x A²¹ x)/dA
    expected = sum(np.outer(powers[k].T @ x, powers[20 - k] @ x) for k in range(21))
    np.testing.assert_allclose(ic.evaluate(gradient, A=A, x=x, out="pq"), expected, rtol=1e-10)
