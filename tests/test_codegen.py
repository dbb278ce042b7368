"""Code generation: the generated functions give `indexcalc.evaluate`'s numbers, need only
NumPy, compute shared subexpressions once, and are clean under ruff."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import indexcalc as ic
from indexcalc.codegen import CodegenError, codegen, codegen_value_and_grad
from indexcalc.compile import postorder
from indexcalc.functions import FUNCTIONS
from indexcalc.sizes import size_inputs

RNG = np.random.default_rng(17)

ARRAYS = {
    "A": RNG.standard_normal((4, 4)),
    "U": RNG.standard_normal((6, 3)),
    "V": RNG.standard_normal((3, 5)),
    "W": RNG.standard_normal((3, 4)),
    "W2": RNG.standard_normal((2, 3)),
    "X": RNG.standard_normal((6, 4)),
    "Y": RNG.standard_normal((6, 5)),
    "D": RNG.standard_normal((2, 2)),
    "a": RNG.standard_normal(3),
    "b": RNG.standard_normal(3),
    "t": RNG.standard_normal(2),
    "w": RNG.standard_normal(4),
    "x": RNG.standard_normal(4),
    "y": RNG.choice([-1.0, 1.0], 6),
}

LOGISTIC = "sum_i(log(1 + exp(-y_i X_ij w_j)))"
MLP = "h_i = tanh(W_ij x_j); o_k = W2_ki h_i; L = sum_k((o_k - t_k)^2); L"

# (name, expression builder, dims)
CASES = [
    ("quadratic_gradient", lambda: ic.diff("x_i A_ij x_j", "x_k"), None),
    ("quadratic_hessian", lambda: ic.diff("x_i A_ij x_j", ["x_k", "x_l"]), None),
    ("logistic_gradient", lambda: ic.diff(LOGISTIC, "w_k"), None),
    ("logistic_hessian", lambda: ic.diff(LOGISTIC, ["w_k", "w_l"]), None),
    ("mf_gradient", lambda: ic.diff("(Y_ij - U_ik V_kj)(Y_ij - U_il V_lj)", "V_gh"), None),
    ("mlp_first_layer", lambda: ic.diff(MLP, "W_gh"), None),
    ("mlp_second_layer", lambda: ic.diff(MLP, "W2_gh"), None),
    ("delta_jacobian", lambda: ic.diff("x_i", "x_k"), {"i": 4, "k": 4}),
    ("diagonal_jacobian", lambda: ic.diff("x_i ⊙ w_i", "x_k"), None),
    ("determinant_gradient", lambda: ic.diff("eps_ij eps_kl D_ik D_jl / 2", "D_gh"), None),
    ("cross_product_jacobian", lambda: ic.diff("eps_ijk a_j b_k", "a_l"), None),
    ("softmax_jacobian", lambda: ic.diff("exp(x_i) / sum_j(exp(x_j))", "x_k"), None),
    ("chain_of_three", lambda: ic.parse("U_ij V_jk Y_lk"), None),
    ("trace", lambda: ic.parse("A_ii"), None),
    ("diagonal", lambda: ic.parse("A_ii ⊙ x_i"), None),
    ("power_and_quotient", lambda: ic.parse("x_i / sqrt(x_j x_j)^3 + x_i^2"), None),
]


def _run(source: str, function: str, arrays: dict) -> object:
    """Execute generated source in a fresh namespace and call the function."""
    namespace: dict = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    return namespace[function](**arrays)


def _inputs(expr) -> dict:
    """The arrays of the tensors `expr` reads, and of those whose shapes size its δs."""
    names = expr.tensor_names | set(size_inputs(postorder(expr)))
    return {name: ARRAYS[name] for name in names}


@pytest.mark.parametrize(("label", "build", "dims"), CASES, ids=[c[0] for c in CASES])
def test_generated_function_matches_evaluate(label, build, dims):
    expr = build()
    source = codegen(expr, name=label, dims=dims)
    arrays = _inputs(expr)
    expected = ic.evaluate(expr, arrays, dims=dims)
    np.testing.assert_allclose(_run(source, label, arrays), expected, rtol=1e-10, atol=1e-12)


def test_float32_stays_float32():
    hessian = ic.diff(LOGISTIC, ["w_k", "w_l"])
    arrays = {name: array.astype(np.float32) for name, array in _inputs(hessian).items()}
    result = _run(codegen(hessian), "grad", arrays)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, ic.evaluate(hessian, arrays), rtol=1e-5)


def test_out_orders_the_axes():
    hessian = ic.diff(LOGISTIC, ["w_k", "w_l"])
    gradient = ic.diff("(Y_ij - U_ik V_kj)(Y_ij - U_il V_lj)", "V_gh")
    for expr, out in ((hessian, "lk"), (gradient, "hg")):
        arrays = _inputs(expr)
        result = _run(codegen(expr, out=out), "grad", arrays)
        np.testing.assert_allclose(result, ic.evaluate(expr, arrays, out=out), rtol=1e-10)


def test_arguments_are_the_sorted_tensor_names_and_the_docstring_gives_shapes():
    source = codegen(ic.diff("(Y_ij - U_ik V_kj)(Y_ij - U_il V_lj)", "V_gh"))
    assert "def grad(U, V, Y):" in source
    assert "U: array of shape (i, g)" in source
    assert "Returns result (array of shape (g, h))." in source


def test_shared_subexpressions_are_computed_once():
    source = codegen(ic.diff(LOGISTIC, ["w_k", "w_l"]))
    assert source.count("np.tanh(") == 1  # the sigmoid, used by two factors
    assert source.count("X @ w") == 1


def test_subexpressions_equal_up_to_index_names_are_computed_once():
    mlp = codegen_value_and_grad(MLP, "W_gh")
    assert mlp.count("W @ x") == 1  # tanh(W_ij x_j) in the loss, tanh(W_gj x_j) in the gradient
    assert mlp.count("np.tanh(") == 1
    softmax = codegen(ic.diff("exp(x_i) / sum_j(exp(x_j))", "x_k"))
    # log Σ_j exp(x_j), which both terms' exp(x_i), exp(x_j) and exp(x_k) divide by, once
    assert softmax.count("np.log(") == 1


def test_value_and_gradient_share_their_work():
    source = codegen_value_and_grad(LOGISTIC, "w_k")
    arrays = _inputs(ic.parse(LOGISTIC))
    value, gradient = _run(source, "fg", arrays)
    np.testing.assert_allclose(value, ic.evaluate(LOGISTIC, arrays), rtol=1e-12)
    expected = ic.evaluate(ic.diff(LOGISTIC, "w_k"), arrays)
    np.testing.assert_allclose(gradient, expected, rtol=1e-10)
    assert source.count("X @ w") == 1
    assert "def fg(X, w, y):" in source


def test_value_and_hessian_of_the_quadratic_form():
    source = codegen_value_and_grad("x_i A_ij x_j", ["x_k", "x_l"], name="f_and_h")
    arrays = _inputs(ic.parse("x_i A_ij x_j"))
    value, hessian = _run(source, "f_and_h", arrays)
    np.testing.assert_allclose(value, arrays["x"] @ arrays["A"] @ arrays["x"])
    np.testing.assert_allclose(hessian, arrays["A"] + arrays["A"].T)


def test_contraction_order_follows_the_planned_path():
    shapes = {"U": (1000, 1000), "V": (1000, 1000), "x": (1000,)}
    source = codegen("U_ij V_jk x_k", shapes=shapes)
    assert "V @ x" in source  # matrix-vector first, never U @ V


def test_a_surviving_delta_is_built_at_the_output():
    source = codegen(ic.diff("x_i ⊙ w_i", "x_k"))
    assert "np.zeros(" in source and "np.einsum(" in source
    sized_by_x = codegen(ic.diff("x_i", "x_k"), dims={"i": 4, "k": 4})
    assert "np.zeros((x.shape[0], x.shape[0])" in sized_by_x
    np.testing.assert_array_equal(_run(sized_by_x, "grad", {"x": np.ones(5)}), np.eye(5))
    sized_by_dims = codegen("delta_ik", dims={"i": 4, "k": 4})
    assert "(4, 4)" in sized_by_dims
    np.testing.assert_array_equal(_run(sized_by_dims, "grad", {}), np.eye(4))


def test_every_function_has_numpy_source():
    assert all("{}" in f.source and "np." in f.source for f in FUNCTIONS.values())


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_function_matches_evaluate(name):
    text = f"{name}(x_i)" if name not in ("log", "sqrt") else f"{name}(x_i ⊙ x_i)"
    arrays = {"x": ARRAYS["x"]}
    np.testing.assert_allclose(
        _run(codegen(text), "grad", arrays), ic.evaluate(text, arrays), rtol=1e-12
    )


def test_deltas_equal_up_to_renaming_keep_their_own_sizes():
    hessian = ic.diff("A_ij A_ik", ["A_pq", "A_rs"])  # δ_jq δ_pr δ_ks + δ_pr δ_js δ_kq
    dims = {"j": 3, "k": 3, "p": 2, "q": 3, "r": 2, "s": 3}
    result = _run(codegen(hessian, out="jkpqrs", dims=dims), "grad", {"A": np.zeros((2, 3))})
    three, two = np.eye(3), np.eye(2)
    expected = np.einsum("jq,pr,ks->jkpqrs", three, two, three) + np.einsum(
        "pr,js,kq->jkpqrs", two, three, three
    )
    np.testing.assert_allclose(result, expected)


def test_an_unfixed_index_size_asks_for_dims():
    with pytest.raises(CodegenError, match=r"dims=\{'i': n\}"):
        codegen("delta_ik")


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        ("x_i y_i", "not valid", "must be a Python identifier"),
        ("x_i y_i", "def", "must be a Python identifier"),
        ("x_i y_i", "x", "clashes"),
    ],
)
def test_names_are_validated(text, name, message):
    with pytest.raises(CodegenError, match=message):
        codegen(text, name=name)


def test_user_text_never_reaches_code_outside_the_docstring():
    source = codegen("x_i y_i")
    code = source.split('"""')[2]
    assert set(code.split()) >= {"t1", "=", "x", "@", "y", "return"}


def _ruff(*arguments: str, path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ruff", *arguments, "--no-cache", "--isolated", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


LONG = "averyveryverylongtensornamenumberone"
RUFF_CASES = [
    *(c[:2] for c in CASES if c[2] is None),
    ("long_names", lambda: ic.diff(f"{LONG}_i U_ij {LONG}_j ⊙ exp(U_ij)", f"{LONG}_k")),
    ("ambiguous_names", lambda: ic.parse("I_ij l_j + O_ij l_j")),
]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
@pytest.mark.parametrize(("label", "build"), RUFF_CASES, ids=[c[0] for c in RUFF_CASES])
def test_generated_source_is_clean_under_ruff(label, build, tmp_path):
    path = tmp_path / "generated.py"
    path.write_text(codegen(build(), name=label), encoding="utf-8")
    check = _ruff("check", "--select", "E,F,W,I", path=path)
    assert check.returncode == 0, check.stdout
    formatted = _ruff("format", "--check", "--diff", path=path)
    assert formatted.returncode == 0, formatted.stdout


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_value_and_gradient_source_is_clean_under_ruff(tmp_path):
    path = tmp_path / "generated.py"
    path.write_text(codegen_value_and_grad(MLP, "W_gh"), encoding="utf-8")
    assert _ruff("check", "--select", "E,F,W,I", path=path).returncode == 0
    assert _ruff("format", "--check", path=path).returncode == 0
