"""Matrix notation in (indexcalc.matrix_input): each construct's index form, exactly, and
its value against the NumPy computation of the matrix expression.

Sizes differ per role (A is 4×4, X is 4×3, D is 3×3) so that a misplaced transpose or
a wrong contraction fails on shapes or values rather than passing by symmetry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tomllib

import indexcalc as ic
from indexcalc.cli import main
from indexcalc.matrix_input import (
    MAX_NESTING,
    NOT_YET_SUPPORTED,
    default_shape,
    matrix_to_index,
    parse_matrix,
)
from indexcalc.syntax import grammar_text

ROOT = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(11)

# Positive entries, so that log, sqrt and fractional powers are defined everywhere.
ARRAYS = {
    "A": RNG.uniform(0.5, 1.5, (4, 4)),
    "B": RNG.uniform(0.5, 1.5, (4, 4)),
    "C": RNG.uniform(0.5, 1.5, (4, 4)),
    "D": RNG.uniform(0.5, 1.5, (3, 3)),
    "X": RNG.uniform(0.5, 1.5, (4, 3)),
    "t": RNG.uniform(0.5, 1.5, 4),
    "v": RNG.uniform(0.5, 1.5, 4),
    "w": RNG.uniform(0.5, 1.5, 3),
    "x": RNG.uniform(0.5, 1.5, 4),
    "y": RNG.uniform(0.5, 1.5, 4),
    "a": RNG.uniform(0.5, 1.5),
    "b": RNG.uniform(0.5, 1.5),
    "c": RNG.uniform(0.5, 1.5),
    "lam": RNG.uniform(0.5, 1.5),
}


def value(text: str, shapes=None, dims=None):
    expr = parse_matrix(text, shapes)
    arrays = {name: ARRAYS[name] for name in expr.tensor_names}
    return ic.evaluate(expr, arrays, dims=dims)


def sigmoid(u):
    return 1 / (1 + np.exp(-u))


# (matrix text, index text, the NumPy computation of the matrix expression)
TABLE = [
    # transposes and products
    ("x'*A*x", "x_i A_ij x_j", lambda A, x, **_: x @ A @ x),
    ("A*x", "A_ij x_j", lambda A, x, **_: A @ x),
    ("x'*A", "x_j A_ji", lambda A, x, **_: x @ A),
    ("A*B", "A_ik B_kj", lambda A, B, **_: A @ B),
    ("A*B'", "A_ik B_jk", lambda A, B, **_: A @ B.T),
    ("Aᵀ", "A_ji", lambda A, **_: A.T),
    ("(A*B)'", "A_jk B_ki", lambda A, B, **_: (A @ B).T),
    ("X'*A.'", "X_ki A_jk", lambda X, A, **_: X.T @ A.T),
    ("x'*y", "x_i y_i", lambda x, y, **_: x @ y),
    ("x*y'", "x_i y_j", lambda x, y, **_: np.outer(x, y)),
    ("x'*x*y", "x_j x_j y_i", lambda x, y, **_: (x @ x) * y),
    ("x'*A*B*C*y", "x_i A_ij B_jk C_kl y_l", lambda x, A, B, C, y, **_: x @ A @ B @ C @ y),
    ("0.5*x'*A*x", "0.5 x_i A_ij x_j", lambda A, x, **_: 0.5 * x @ A @ x),
    ("A*2", "2 A_ij", lambda A, **_: 2 * A),
    ("-x'*A*x", "-x_i A_ij x_j", lambda A, x, **_: -(x @ A @ x)),
    ("A*(-x)", "-A_ij x_j", lambda A, x, **_: -(A @ x)),
    # elementwise operations
    ("A.*B", "A_ij ⊙ B_ij", lambda A, B, **_: A * B),
    ("A ⊙ Bᵀ", "A_ij ⊙ B_ji", lambda A, B, **_: A * B.T),
    ("(y.*v)'*x", "(y_i ⊙ v_i) x_i", lambda y, v, x, **_: (y * v) @ x),
    ("x./y", "x_i / y_i", lambda x, y, **_: x / y),
    ("x ⊘ (A*y)", "x_i / (A_ij y_j)", lambda x, A, y, **_: x / (A @ y)),
    ("A/2", "A_ij / 2", lambda A, **_: A / 2),
    ("x/norm2(x)", "x_i / sqrt(x_j x_j)", lambda x, **_: x / np.linalg.norm(x)),
    ("1 ./ x", "1 / x_i", lambda x, **_: 1 / x),
    ("x.^2", "x_i^2", lambda x, **_: x**2),
    ("A.^B", "A_ij^B_ij", lambda A, B, **_: A**B),
    ("x.^-1", "x_i^(-1)", lambda x, **_: 1 / x),
    ("2.^x", "(2 Σ_j(δ_ij))^x_i", lambda x, **_: 2.0**x),
    ("(x'*x)^2", "(x_i x_i)^2", lambda x, **_: (x @ x) ** 2),
    ("a^b^c", "a^b^c", lambda a, b, c, **_: a ** (b**c)),
    ("-a^2", "-a^2", lambda a, **_: -(a**2)),
    # sums, with scalars broadcast
    ("A + B'", "A_ij + B_ji", lambda A, B, **_: A + B.T),
    ("x - 0.5", "x_i - 0.5", lambda x, **_: x - 0.5),
    ("X*w + b", "X_ij w_j + b", lambda X, w, b, **_: X @ w + b),
    ("a - (x - y)", "a - (x_i - y_i)", lambda a, x, y, **_: a - (x - y)),
    ("x - -y", "x_i + y_i", lambda x, y, **_: x + y),
    ("lam*I + A", "lam δ_ij + A_ij", lambda lam, A, **_: lam * np.eye(4) + A),
    ("x'*I*y", "x_i δ_ij y_j", lambda x, y, **_: x @ y),
    # traces, sums of entries, norms
    ("tr(A)", "A_ii", lambda A, **_: np.trace(A)),
    ("tr(X'*B*X)", "X_ji B_jk X_ki", lambda X, B, **_: np.trace(X.T @ B @ X)),
    (
        "tr(D*X'*B*X*D')",
        "D_ij X_kj B_kl X_lm D_im",
        lambda D, X, B, **_: np.trace(D @ X.T @ B @ X @ D.T),
    ),
    ("tr(A + I)", "A_ii + δ_ii", lambda A, **_: np.trace(A) + 4),
    ("tr(A + c)", "Σ_i(A_ii + c)", lambda A, c, **_: np.trace(A + c)),
    ("tr(A.*B)", "Σ_i(A_ii ⊙ B_ii)", lambda A, B, **_: np.trace(A * B)),
    ("tr(exp(A))", "Σ_i(exp(A_ii))", lambda A, **_: np.trace(np.exp(A))),
    ("tr(x*y')", "x_i y_i", lambda x, y, **_: np.trace(np.outer(x, y))),
    ("sum(x)", "Σ_i(x_i)", lambda x, **_: x.sum()),
    ("sum(X)", "Σ_{ij}(X_ij)", lambda X, **_: X.sum()),
    ("sum(A*x)", "Σ_i(A_ij x_j)", lambda A, x, **_: (A @ x).sum()),
    ("norm2(x)", "sqrt(x_i x_i)", lambda x, **_: np.linalg.norm(x)),
    ("norm2(X)", "sqrt(X_ij X_ij)", lambda X, **_: np.linalg.norm(X)),
    ("norm2(x)^2", "x_i x_i", lambda x, **_: x @ x),
    ("norm2(x)^4", "(x_i x_i)^2", lambda x, **_: (x @ x) ** 2),
    (
        "norm2(A*x - t)^2",
        "(A_ij x_j - t_i) (A_ik x_k - t_i)",
        lambda A, x, t, **_: np.sum((A @ x - t) ** 2),
    ),
    ("norm1(x - y)", "Σ_i(abs(x_i - y_i))", lambda x, y, **_: np.abs(x - y).sum()),
    # elementwise functions
    ("exp(x)", "exp(x_i)", lambda x, **_: np.exp(x)),
    ("log(A*x)", "log(A_ij x_j)", lambda A, x, **_: np.log(A @ x)),
    (
        "sqrt(x) + tanh(A*y)",
        "sqrt(x_i) + tanh(A_ij y_j)",
        lambda x, A, y, **_: np.sqrt(x) + np.tanh(A @ y),
    ),
    ("sigmoid(X*w)", "sigmoid(X_ij w_j)", lambda X, w, **_: sigmoid(X @ w)),
    ("sin(A) - cos(A')", "sin(A_ij) - cos(A_ji)", lambda A, **_: np.sin(A) - np.cos(A.T)),
    (
        "abs(x - y) + relu(y - x)",
        "abs(x_i - y_i) + relu(y_i - x_i)",
        lambda x, y, **_: np.abs(x - y) + np.maximum(y - x, 0),
    ),
    (
        "softplus(x) .* log1p(y)",
        "softplus(x_i) ⊙ log1p(y_i)",
        lambda x, y, **_: np.logaddexp(0, x) * np.log1p(y),
    ),
    ("σ(x)'*A", "sigmoid(x_j) A_ji", lambda x, A, **_: sigmoid(x) @ A),
    # vectors of ones
    ("A*ones", "Σ_j(A_ij)", lambda A, **_: A.sum(axis=1)),
    ("𝟏'*x", "Σ_i(x_i)", lambda x, **_: x.sum()),
    ("ones'*A*ones", "Σ_{ij}(A_ij)", lambda A, **_: A.sum()),
    ("x + ones", "x_i + 1", lambda x, **_: x + 1),
    ("x .* ones", "x_i", lambda x, **_: x),
    ("X*w + b*ones", "X_ij w_j + b", lambda X, w, b, **_: X @ w + b),
    ("A - x*ones'", "A_ij - x_i", lambda A, x, **_: A - x[:, None]),
    ("x*ones' + ones*y'", "x_i Σ_k(δ_jk) + y_j", lambda x, y, **_: np.add.outer(x, y)),
    ("tr(x*ones')", "Σ_i(x_i)", lambda x, **_: x.sum()),
    (
        "sum(log(exp(-y.*(X*w)) + vector(1)))",
        "Σ_i(log(exp(-y_i ⊙ X_ij w_j) + 1))",
        lambda X, w, y, **_: np.sum(np.log(np.exp(-y * (X @ w)) + 1)),
    ),
]


@pytest.mark.parametrize(("matrix", "index", "numpy"), TABLE, ids=[row[0] for row in TABLE])
def test_each_construct_translates_to_its_index_form_and_value(matrix, index, numpy):
    assert matrix_to_index(matrix) == index
    assert parse_matrix(matrix) is ic.parse(index)
    expected = numpy(**ARRAYS)
    result = value(matrix)
    assert result.shape == np.shape(expected)
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)


def test_the_table_covers_every_construct_of_the_brief():
    texts = " ".join(row[0] for row in TABLE)
    for construct in [
        "'",
        "ᵀ",
        "*",
        ".*",
        "⊙",
        "./",
        "⊘",
        "/",
        "+",
        "-",
        "^",
        ".^",
        "tr(",
        "sum(",
        "norm2(",
        "I",
        "ones",
        "𝟏",
        "vector(",
    ]:
        assert construct in texts, construct
    for function in [
        "exp",
        "log",
        "sqrt",
        "tanh",
        "sigmoid",
        "sin",
        "cos",
        "abs",
        "relu",
        "softplus",
        "log1p",
    ]:
        assert f"{function}(" in texts, function
    assert len(TABLE) >= 25


# -- shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("A", "matrix"),
        ("W1", "matrix"),
        ("Xtrain", "matrix"),
        ("Σ", "matrix"),
        ("x", "vector"),
        ("h", "vector"),
        ("z", "vector"),
        ("w2", "vector"),
        ("a", "scalar"),
        ("g", "scalar"),
        ("lam", "scalar"),
        ("alpha", "scalar"),
        ("λ", "scalar"),
    ],
)
def test_default_shapes_follow_matrixcalculus_org(name, shape):
    described = {(False, False): "scalar", (True, False): "vector", (True, True): "matrix"}
    found = default_shape(name)
    assert described[(found.rows, found.cols)] == shape


def test_declared_shapes_override_the_defaults():
    shapes = {"b": "vector", "M": "scalar", "x": "vector"}
    assert matrix_to_index("M*x + b", shapes) == "M x_i + b_i"
    x, b = ARRAYS["x"], ARRAYS["t"]
    result = ic.evaluate(parse_matrix("M*x + b", shapes), M=2.0, x=x, b=b)
    np.testing.assert_allclose(result, 2 * x + b)


def test_declared_I_and_ones_are_tensors():
    assert matrix_to_index("I*x", {"I": "matrix"}) == "I_ij x_j"
    assert matrix_to_index("ones'*x", {"ones": "vector"}) == "ones_i x_i"
    assert matrix_to_index("I*x") == "δ_ij x_j"


def test_norm2_squared_of_a_declared_vector_is_its_inner_product():
    expr = parse_matrix("norm2(A*x - b)^2", {"b": "vector"})
    assert str(expr) == "(A_ij x_j - b_i) (A_ik x_k - b_i)"
    A, x, b = ARRAYS["A"], ARRAYS["x"], ARRAYS["t"]
    np.testing.assert_allclose(ic.evaluate(expr, A=A, x=x, b=b), np.sum((A @ x - b) ** 2))


def test_a_result_repeated_along_a_vector_of_ones_takes_its_length_from_dims():
    assert matrix_to_index("ones*x'") == "x_j Σ_k(δ_ik)"
    x = ARRAYS["x"]
    result = ic.evaluate(parse_matrix("ones*x'"), x=x, dims={"i": 3})
    np.testing.assert_allclose(result, np.ones((3, 1)) * x)


def test_index_letters_are_fresh_and_the_result_is_i_then_j():
    """Letters summed in one term are used again in the next: index notation reads the
    terms of a sum one by one."""
    index = matrix_to_index("tr(A*B)*(x*y') + exp(A*B*C)")
    assert index == "A_kl B_lk x_i y_j + exp(A_ik B_kl C_lj)"
    A, B, C, x, y = (ARRAYS[n] for n in "ABCxy")
    expected = np.trace(A @ B) * np.outer(x, y) + np.exp(A @ B @ C)
    np.testing.assert_allclose(value("tr(A*B)*(x*y') + exp(A*B*C)"), expected)
    assert matrix_to_index("A*x + B*y - C*(A*x)") == "A_ij x_j + B_ij y_j - C_ij A_jk x_k"
    assert matrix_to_index("exp(A*x) .* (B*y) ./ (C*x)") == (
        "(exp(A_ij x_j) ⊙ B_ij y_j) / (C_ij x_j)"
    )
    np.testing.assert_allclose(
        value("exp(A*x) .* (B*y) ./ (C*x)"), np.exp(A @ x) * (B @ ARRAYS["y"]) / (C @ x)
    )


def test_a_product_longer_than_the_latin_and_greek_letters_still_translates():
    text = "x'*" + "*".join(["A", "B"] * 40) + "*y"  # 81 summed letters in one product
    index = matrix_to_index(text)
    assert index.startswith("x_i A_ij B_jk A_kl") and index.endswith("B_ÊË y_Ë")
    A, B, x, y = (ARRAYS[n] for n in "ABxy")
    expected = x @ np.linalg.matrix_power(A @ B, 40) @ y
    np.testing.assert_allclose(value(text), expected, rtol=1e-10)


# -- derivatives -------------------------------------------------------------------------


def test_gradient_of_the_quadratic_form_is_A_plus_A_transpose_times_x():
    gradient = ic.diff(parse_matrix("x'*A*x"), "x_k")
    A, x = ARRAYS["A"], ARRAYS["x"]
    np.testing.assert_allclose(ic.evaluate(gradient, A=A, x=x), (A + A.T) @ x)


def test_gradient_of_the_least_squares_loss():
    gradient = ic.diff(parse_matrix("norm2(A*x - t)^2"), "x_k")
    A, x, t = ARRAYS["A"], ARRAYS["x"], ARRAYS["t"]
    np.testing.assert_allclose(ic.evaluate(gradient, A=A, x=x, t=t), 2 * A.T @ (A @ x - t))


def test_gradient_of_a_trace_by_a_matrix():
    gradient = ic.diff(parse_matrix("tr(X'*B*X)"), "X_gh")
    X, B = ARRAYS["X"], ARRAYS["B"]
    np.testing.assert_allclose(ic.evaluate(gradient, X=X, B=B), (B + B.T) @ X)


def test_gradient_of_the_logistic_loss_by_w():
    loss = parse_matrix("sum(log(exp(-y.*(X*w)) + vector(1)))")
    gradient = ic.diff(loss, "w_k")
    X, w, y = ARRAYS["X"], ARRAYS["w"], ARRAYS["y"]
    expected = X.T @ (-y * sigmoid(-y * (X @ w)))
    np.testing.assert_allclose(ic.evaluate(gradient, X=X, w=w, y=y), expected)


# -- errors ------------------------------------------------------------------------------


def message(text: str, shapes=None) -> str:
    with pytest.raises(ic.ParseError) as caught:
        parse_matrix(text, shapes)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "x*A",
            "dimension mismatch in '*': x is a column vector (n×1) and A is a matrix (m×n); "
            "the left side's 1 column cannot meet the right side's m rows "
            "(for xᵀA write x'*A) (at line 1:2)\nx*A\n ^",
        ),
        (
            "A*B + x*y",
            "dimension mismatch in '*': x is a column vector (n×1) and y is a column vector "
            "(n×1); the left side's 1 column cannot meet the right side's n rows "
            "(x'*y is the inner product, x*y' the outer one) (at line 1:8)\nA*B + x*y\n       ^",
        ),
        (
            "A*B' + (A*x)'",
            "dimension mismatch in '+': A*B' is a matrix (m×n) and (A*x)' is a row vector "
            "(1×n); the terms of a sum must have the same shape, or one must be a scalar "
            "(at line 1:6)\nA*B' + (A*x)'\n     ^",
        ),
        (
            "A*x'",
            "dimension mismatch in '*': A is a matrix (m×n) and x' is a row vector (1×n); the "
            "left side's n columns cannot meet the right side's 1 row (at line 1:2)\nA*x'\n ^",
        ),
        (
            "exp(A) .* x",
            "dimension mismatch in '.*': exp(A) is a matrix (m×n) and x is a column vector "
            "(n×1); an elementwise operation needs operands of the same shape, or a scalar "
            "(at line 1:8)\nexp(A) .* x\n       ^",
        ),
        (
            "x $ y",
            "unexpected character '$' (at line 1:3)\nx $ y\n  ^",
        ),
        (
            "2 x",
            "unexpected 'x': expected ')', '*', '+', '-', '.*', './', '.^', '/', '^', a "
            "transpose (') (matrix notation writes every product with '*') (at line 1:3)\n"
            "2 x\n  ^",
        ),
        (
            "(x + y",
            "unexpected end of input: a '(' is never closed (at line 1:7)\n(x + y\n      ^",
        ),
        (
            "x + y)",
            "unbalanced ')': there is no '(' to close (at line 1:6)\nx + y)\n     ^",
        ),
        ("", "empty input: there is no expression to parse (at line 1:1)\n\n^"),
        (
            "A^2",
            "'^' is a power of a scalar, but A is a matrix (m×n): for the elementwise power "
            "write .^ (at line 1:2)\nA^2\n ^",
        ),
        (
            "x^T",
            "'^' is a power of a scalar, but x is a column vector (n×1): for the elementwise "
            "power write .^; for the transpose write x' (at line 1:2)\nx^T\n ^",
        ),
        (
            "A / x",
            "'/' divides by a scalar, but x is a column vector (n×1): for elementwise division "
            "write ./ (the inverse of a matrix is not supported yet) (at line 1:3)\nA / x\n  ^",
        ),
        (
            "tr(x)",
            "tr takes a square matrix, but x is a column vector (n×1) (at line 1:1)\ntr(x)\n^",
        ),
        (
            "softmax(x)",
            "unknown function 'softmax'; the known functions are abs, cos, exp, log, log1p, "
            "matrix, norm1, norm2, relu, sigmoid, sign, sin, softplus, sqrt, step, sum, tan, "
            "tanh, tr, vector (at line 1:1)\nsoftmax(x)\n^",
        ),
        (
            "delta*x",
            "'delta' is reserved in index notation and cannot name a matrix, vector or scalar "
            "(at line 1:1)\ndelta*x\n^",
        ),
        ("2*exp", "'exp' is a function: write exp(...) (at line 1:3)\n2*exp\n  ^"),
        (
            "ones'*ones",
            "this needs the length of a vector of ones (𝟏ᵀ𝟏), and no vector or matrix fixes "
            "it here (at line 1:1)\nones'*ones\n^",
        ),
        (
            "vector(x)",
            "vector(a) repeats a scalar a, but x is a column vector (n×1) (at line 1:1)\n"
            "vector(x)\n^",
        ),
        # Errors of the index parser point into the matrix text too.
        ("x + y ./ 0", "division by zero (at line 1:10)\nx + y ./ 0\n         ^"),
        (
            "x'*y\n  + 1e400",
            "the number 1e400 is too large (about 10^400): indexcalc keeps numbers exact, "
            "with at most 300 digits (at line 2:5)\n  + 1e400\n    ^",
        ),
    ],
    ids=lambda v: v if len(v) < 16 else None,
)
def test_errors_say_what_is_wrong_with_a_caret_under_the_matrix_text(text, expected):
    assert message(text) == expected


@pytest.mark.parametrize("name", sorted(NOT_YET_SUPPORTED))
def test_det_logdet_and_inv_are_not_supported_yet(name):
    what = NOT_YET_SUPPORTED[name]
    text = f"2*{name}(X) + 1"
    assert message(text) == (
        f"{name}(...), {what}, is not supported yet: index notation cannot write it "
        f"(at line 1:3)\n{text}\n  ^"
    )


def test_the_shape_errors_class_is_a_parse_error_with_its_position():
    with pytest.raises(ic.ParseError) as caught:
        parse_matrix("z'*W*z + x*A")
    assert (caught.value.position.line, caught.value.position.column) == (1, 11)
    assert caught.value.reason.startswith("dimension mismatch in '*': x is a column vector")


def test_lengths_that_only_arrays_fix_are_checked_when_evaluated():
    """A*B' conforms for some lengths, so it parses; arrays that do not conform fail."""
    expr = parse_matrix("A*B'")
    with pytest.raises(ic.EvaluationError) as caught:
        ic.evaluate(expr, A=ARRAYS["A"], B=ARRAYS["D"])
    assert str(caught.value) == "index 'k' has size 4 in A (axis 1) but size 3 in B (axis 1)"
    np.testing.assert_allclose(
        ic.evaluate(expr, A=ARRAYS["X"].T, B=ARRAYS["X"].T), ARRAYS["X"].T @ ARRAYS["X"]
    )


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        (
            {"A": "tensor"},
            "shapes: 'A' is declared 'tensor'; a shape is 'matrix', 'vector' or 'scalar'",
        ),
        ({"1x": "vector"}, "shapes: '1x' is not a name"),
        (["A"], "shapes must map names to 'matrix', 'vector' or 'scalar', not list"),
    ],
)
def test_bad_shape_declarations_are_parse_errors(shapes, expected):
    assert message("A", shapes) == expected


def test_nesting_beyond_the_limit_is_too_deep():
    text = "exp(" * (MAX_NESTING + 1) + "x" + ")" * (MAX_NESTING + 1)
    with pytest.raises(ic.TooDeepError, match=f"nested more than {MAX_NESTING} levels deep"):
        parse_matrix(text)
    shallow = "exp(" * 20 + "x" + ")" * 20
    assert matrix_to_index(shallow) == "exp(" * 20 + "x_i" + ")" * 20


# -- packaging ---------------------------------------------------------------------------


def test_the_grammar_ships_in_the_wheel_beside_the_index_grammar():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert included["grammar/matrix.lark"] == "indexcalc/grammar/matrix.lark"
    assert included["grammar/indexcalc.lark"] == "indexcalc/grammar/indexcalc.lark"
    assert grammar_text("matrix.lark") == (ROOT / "grammar" / "matrix.lark").read_text(
        encoding="utf-8"
    )


# -- the command line --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "printed"),
    [
        (["x'*A*x", "--wrt", "x"], "(A + Aᵀ) x\nx_i A_ik + A_kj x_j"),
        (["x'*A*x", "--wrt", "x", "--wrt", "x"], "A + Aᵀ\nA_kl + A_lk"),
        (
            ["norm2(A*x-b)^2", "--wrt", "x", "--shapes", "b:vector"],
            "2 Aᵀ (A x − b)\n2 A_il (A_ik x_k - b_i)",
        ),
        (["tr(X'*B*X)", "--wrt", "X"], "(B + Bᵀ) X\nX_km (B_kl + B_lk)"),
        (["x'*A*y", "--wrt", "A"], "x yᵀ\nx_k y_l"),
        (
            ["log(x'*A*x)", "--wrt", "x", "--format", "ascii"],
            "(x_i A_ik + A_kj x_j) / (x_i A_ij x_j)",
        ),
    ],
)
def test_command_line_differentiates_matrix_notation(arguments, printed, capsys):
    assert main(["diff", "--matrix", *arguments]) == 0
    assert capsys.readouterr().out.strip() == printed


def test_command_line_matrix_derivative_has_the_numpy_value(capsys):
    """The printed index form of d norm2(A x - b)^2 / dx evaluates to 2 Aᵀ(Ax - b)."""
    assert main(["diff", "--matrix", "norm2(A*x-b)^2", "--wrt", "x", "--shapes", "b:vector"]) == 0
    index_form = capsys.readouterr().out.strip().splitlines()[1]
    A, x, b = RNG.normal(size=(4, 3)), RNG.normal(size=3), RNG.normal(size=4)
    value = ic.evaluate(index_form, A=A, x=x, b=b)
    np.testing.assert_allclose(value, 2 * A.T @ (A @ x - b))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["x*A", "--wrt", "x"], "dimension mismatch in '*'"),
        (["x'*A*x", "--wrt", "x", "--shapes", "x:vektor"], "write NAME:matrix, NAME:vector"),
        (["det(X)", "--wrt", "X"], "not supported yet"),
        (["x'*A*x", "--wrt", "2x"], "name a variable"),
    ],
)
def test_command_line_matrix_errors_exit_2_with_one_message(arguments, message, capsys):
    assert main(["diff", "--matrix", *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_parse_matrix_is_part_of_the_api():
    assert ic.parse_matrix("x'*A*x") is ic.parse("x_i A_ij x_j")
