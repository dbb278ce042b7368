"""Broadcasting in sums: a term lacking some of the sum's free indices is repeated along
them (docs/language.md, "Sums and differences").

Each form is written as an ML engineer writes it (a bias added to a product, a mean
subtracted, the log-softmax) and checked for its value against NumPy, its printed forms
(exact text that reads back to the same expression), its derivatives against finite
differences, evaluated from the original arrays alone, its matrix form, generated code,
the other backends and the memory its plan takes.
"""

from __future__ import annotations

import numpy as np
import pytest
from finite_difference import assert_derivative_matches

import indexcalc as ic
from indexcalc.cli import main
from indexcalc.expr import Delta, Product, Sum, Tensor

RNG = np.random.default_rng(16)
ARRAYS = {
    "X": RNG.normal(size=(5, 3)),
    "W": RNG.normal(size=(3, 4)),
    "V": RNG.normal(size=4),
    "w": RNG.normal(size=3),
    "b": 0.3,
    "c": RNG.normal(size=4),
    "mu": RNG.normal(size=3),
    "z": RNG.normal(size=6),
    "t": RNG.uniform(size=6),
    "y": RNG.normal(size=5),
    "x": RNG.normal(size=6),
    "A": RNG.normal(size=(5, 4)),
    "m": 0.7,
}
X, W, w, z = ARRAYS["X"], ARRAYS["W"], ARRAYS["w"], ARRAYS["z"]

# (text, axis order, the value in NumPy)
FORMS = [
    ("x_i - m", "i", lambda a: a["x"] - a["m"]),
    ("X_nd w_d + b", "n", lambda a: a["X"] @ a["w"] + a["b"]),
    ("tanh(X_nd W_da + c_a)", "na", lambda a: np.tanh(a["X"] @ a["W"] + a["c"])),
    ("X_nd - mu_d", "nd", lambda a: a["X"] - a["mu"]),
    ("z_i - log(sum_j(exp(z_j)))", "i", lambda a: a["z"] - np.log(np.exp(a["z"]).sum())),
    ("c_a + y_n + A_na", "na", lambda a: a["c"] + a["y"][:, None] + a["A"]),
    ("A_na - (y_n + A_na)", "na", lambda a: -np.broadcast_to(a["y"][:, None], (5, 4))),
    ("y_n + x_i x_i", "n", lambda a: a["y"] + a["x"] @ a["x"]),
    ("2 + A_na + b", "na", lambda a: 2 + a["A"] + a["b"]),
]


@pytest.mark.parametrize(("text", "out", "numpy"), FORMS, ids=[f[0] for f in FORMS])
def test_broadcast_sum_has_the_numpy_value(text, out, numpy):
    np.testing.assert_allclose(ic.evaluate(text, ARRAYS, out=out), numpy(ARRAYS), rtol=1e-12)


@pytest.mark.parametrize(("text", "out", "numpy"), FORMS, ids=[f[0] for f in FORMS])
def test_broadcast_sum_simplifies_to_the_same_value(text, out, numpy):
    simplified = ic.simplify(text)
    assert simplified.free == ic.parse(text).free
    np.testing.assert_allclose(ic.evaluate(simplified, ARRAYS, out=out), numpy(ARRAYS))


@pytest.mark.parametrize(
    ("text", "unicode", "ascii", "latex"),
    [
        ("x_i - m", "x_i - m", "x_i - m", "x_{i} - m"),
        ("X_nd w_d + b", "X_nd w_d + b", "X_nd w_d + b", r"X_{nd} \, w_{d} + b"),
        (
            "tanh(X_nd W_da + c_a)",
            "tanh(X_nd W_da + c_a)",
            "tanh(X_nd W_da + c_a)",
            r"\tanh\left(X_{nd} \, W_{da} + c_{a}\right)",
        ),
        ("X_nd - mu_d", "X_nd - mu_d", "X_nd - mu_d", r"X_{nd} - \mathrm{mu}_{d}"),
        (
            "z_i - log(sum_j(exp(z_j)))",
            "z_i - log(Σ_j(exp(z_j)))",
            "z_i - log(sum_j(exp(z_j)))",
            r"z_{i} - \log\left(\sum_{j} \left(\exp\left(z_{j}\right)\right)\right)",
        ),
    ],
)
def test_broadcast_term_prints_as_written(text, unicode, ascii, latex):
    expr = ic.parse(text)
    assert (str(expr), ic.to_ascii(expr), ic.to_latex(expr)) == (unicode, ascii, latex)


@pytest.mark.parametrize(("text", "out", "numpy"), FORMS, ids=[f[0] for f in FORMS])
def test_printed_broadcast_sums_read_back_to_the_same_value(text, out, numpy):
    expected = numpy(ARRAYS)
    sizes = dict(zip(out, np.shape(expected), strict=True))  # text names no array's axis
    for expr in (ic.parse(text), ic.simplify(text)):
        for printer in (str, ic.to_ascii):
            reparsed = ic.parse(printer(expr))
            value = ic.evaluate(reparsed, ARRAYS, out=out, dims=sizes)
            np.testing.assert_allclose(value, expected, rtol=1e-12)
    assert ic.parse(str(ic.parse(text))) is ic.parse(text)


def test_ones_print_where_no_term_holds_every_index_without_them():
    """b ⊙ 𝟏_n + c ⊙ 𝟏_n: dropping the ones would leave no term holding n."""
    ones = Delta(("n", "n"), ("x", 0))
    total = Sum([Product((Tensor("b", ""), ones), "n"), Product((Tensor("c", ""), ones), "n")])
    assert str(total) == "b Σ_i(δ_ni) + c Σ_i(δ_ni)"
    arrays = {"x": ARRAYS["y"], "b": 0.5, "c": 2.0}
    np.testing.assert_allclose(ic.evaluate(total, arrays), np.full(5, 2.5))
    # Text names no array's axis, so the reparsed ones take n's size from dims.
    reparsed = ic.parse(str(total))
    np.testing.assert_allclose(ic.evaluate(reparsed, arrays, dims={"n": 5}), np.full(5, 2.5))


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("x_i + y_j", (1, 7)),
        ("c_a + y_n + z_m", (1, 7)),
        ("A_ij - (b_i + c_j)", (1, 15)),
        ("h_i = b_i + c_j; h_i", (1, 13)),
    ],
)
def test_a_sum_with_no_term_holding_all_indices_is_refused_where_it_breaks(text, where):
    with pytest.raises(ic.IndexNotationError, match="one term must hold all") as caught:
        ic.parse(text)
    assert f"line {where[0]}:{where[1]}" in str(caught.value)


def test_a_later_term_holding_every_index_makes_the_sum_whole():
    assert ic.parse("c_a + y_n + A_na").free == frozenset("an")
    assert ic.parse("h_na = c_a + y_n + A_na; h_na").free == frozenset("an")


# -- derivatives -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "wrt", "out"),
    [
        ("sum_n((X_nd w_d + b - y_n)^2)", "b", ""),
        ("sum_n((X_nd w_d + b - y_n)^2)", "w_k", ""),
        ("sum_n(log(1 + exp(-y_n (X_nd w_d + b))))", "b", ""),
        ("sum_{na}(V_a tanh(X_nd W_da + c_a))", "c_k", ""),
        ("sum_{na}(V_a tanh(X_nd W_da + c_a))", "W_gh", ""),
        ("tanh(X_nd W_da + c_a)", "c_k", "na"),
        ("X_nd w_d + b", "b", "n"),
        ("-t_i (z_i - log(sum_j(exp(z_j))))", "z_k", ""),
        ("sum_{nd}((X_nd - mu_d)^2)", "mu_k", ""),
        ("x_i - m", "m", "i"),
    ],
)
def test_derivative_through_a_broadcast_term_matches_finite_differences(text, wrt, out):
    derivative = assert_derivative_matches(text, wrt, ARRAYS, out)
    # ... evaluated from the arrays it came from, with no dims, and read back from text.
    axes = out + wrt.partition("_")[2]
    value = ic.evaluate(derivative, ARRAYS, out=axes or None)
    sizes = dict(zip(axes, np.shape(value), strict=True))  # text names no array's axis
    reparsed = ic.evaluate(ic.parse(str(derivative)), ARRAYS, out=axes or None, dims=sizes)
    np.testing.assert_allclose(reparsed, value, rtol=1e-12)


def test_bias_gradient_sums_the_signal_over_the_batch():
    """∂/∂b of Σ_n ½(X_nd w_d + b − y_n)² is Σ_n r_n, the residuals summed over n."""
    derivative = ic.diff("sum_n((X_nd w_d + b - y_n)^2) / 2", "b")
    assert str(derivative) == "Σ_n(b + X_nd w_d - y_n)"
    residual = X @ w + ARRAYS["b"] - ARRAYS["y"]
    assert np.isclose(ic.evaluate(derivative, ARRAYS), residual.sum())


def test_jacobian_by_a_broadcast_scalar_is_ones_over_the_broadcast_index():
    derivative = ic.diff("X_nd w_d + b", "b")
    np.testing.assert_array_equal(ic.evaluate(derivative, ARRAYS), np.ones(5))


# -- other forms and backends ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "out", "matrix"),
    [
        ("X_nd w_d + b", "n", "b 𝟏 + X w"),
        ("A_na + c_a", "na", "A + 𝟏 cᵀ"),
        ("A_na + c_a", "an", "c 𝟏ᵀ + Aᵀ"),
        ("tanh(X_nd W_da + c_a)", "na", "tanh(X W + 𝟏 cᵀ)"),
        ("X_nd - mu_d", "nd", "X − 𝟏 muᵀ"),
        ("x_i - m", "i", "x − m 𝟏"),
        ("sum_n((X_nd w_d + b - y_n)^2)", "", "𝟏ᵀ (b 𝟏 + X w − y)^⊙2"),
    ],
)
def test_matrix_form_shows_the_ones_vector(text, out, matrix):
    assert ic.to_matrix(ic.simplify(text), out=out or None) == matrix


@pytest.mark.parametrize(("text", "out", "numpy"), FORMS, ids=[f[0] for f in FORMS])
def test_generated_code_broadcasts_as_the_evaluator_does(text, out, numpy):
    namespace: dict = {}
    exec(ic.codegen(text, out=out), namespace)  # the code indexcalc writes
    names = sorted(ic.parse(text).tensor_names)
    value = namespace["grad"](**{name: ARRAYS[name] for name in names})
    np.testing.assert_allclose(value, numpy(ARRAYS), rtol=1e-12)


@pytest.mark.parametrize("backend", ["torch", "jax", "dask"])
def test_other_backends_broadcast_as_numpy_does(backend, request):
    if backend == "jax":
        request.getfixturevalue("jax")
    module = pytest.importorskip({"dask": "dask.array"}.get(backend, backend))
    text = "tanh(X_nd W_da + c_a)"
    if backend == "torch":
        arrays = {k: module.tensor(ARRAYS[k]) for k in "XWc"}
    elif backend == "jax":
        arrays = {k: module.numpy.asarray(ARRAYS[k]) for k in "XWc"}
    else:
        arrays = {k: module.from_array(ARRAYS[k]) for k in "XWc"}
    value = ic.evaluate(text, arrays, out="na", backend=backend)
    value = value.compute() if backend == "dask" else value
    np.testing.assert_allclose(np.asarray(value), np.tanh(X @ W + ARRAYS["c"]), rtol=1e-12)


def test_a_broadcast_bias_is_never_built_as_a_matrix():
    """Σ_n(X_nd w_d + b) takes memory of n, the product's size, for any n."""
    big = {"X": np.ones((4000, 3)), "w": np.ones(3), "b": 1.0}
    cost = ic.compile("sum_n(X_nd w_d + b)").cost(big)
    assert cost.largest_intermediate == 4000
    assert ic.evaluate("sum_n(X_nd w_d + b)", big) == 4000 * 4


def test_command_line_differentiates_a_bias(capsys):
    assert main(["diff", "sum_n((X_nd w_d + b - y_n)^2)", "--wrt", "b"]) == 0
    assert capsys.readouterr().out.strip() == "2 Σ_n(b + X_nd w_d - y_n)"
