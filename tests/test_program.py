"""Results as programs: each shared subexpression defined once (`ic.to_program`).

The invariant: the program parses back, definitions first, to an expression with the
value of the one it was printed from. The textbook targets are checked as exact text.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import dims_with, evaluate, parsed, programs, variables

import indexcalc as ic
from indexcalc.cli import main

RNG = np.random.default_rng(21)
ATTENTION = "S_ij = Q_id K_jd / sqrt(δ_dd); P_ij = exp(S_ij) / sum_j(exp(S_ij)); G_ie P_ij V_je"
MLP = "H_na = tanh(X_nd W_da + b_a); yhat_n = H_na V_a + c; sum_n((yhat_n - y_n)^2) / 2"
ARRAYS = {
    "z": RNG.normal(size=5),
    "t": RNG.uniform(size=5),
    "x": RNG.normal(size=5),
    "Q": RNG.normal(size=(3, 5)),
    "K": RNG.normal(size=(4, 5)),
    "V": RNG.normal(size=(4, 2)),
    "G": RNG.normal(size=(3, 2)),
    "X": RNG.normal(size=(6, 3)),
    "W": RNG.normal(size=(3, 4)),
    "b": RNG.normal(size=4),
    "c": 0.2,
    "y": RNG.normal(size=6),
    "W1": RNG.normal(size=(4, 3)),
    "W2": RNG.normal(size=(2, 4)),
}
ARRAYS["V_mlp"] = RNG.normal(size=4)


def same_value(program: str, expr: ic.Expr, arrays: dict, out: str) -> None:
    expected = ic.evaluate(expr, arrays, out=out or None)
    np.testing.assert_allclose(ic.evaluate(program, arrays, out=out or None), expected)


@pytest.mark.parametrize(
    ("text", "wrt", "program"),
    [
        (
            "-t_i (z_i - log(sum_j(exp(z_j))))",
            "z_k",
            "s_k = exp(z_k) / Σ_j(exp(z_j))\nΣ_i(t_i) s_k - t_k",
        ),
        (
            "-t_i log(exp(z_i) / sum_j(exp(z_j)))",
            "z_k",
            "s_k = exp(z_k) / Σ_j(exp(z_j))\nΣ_i(t_i) s_k - t_k",
        ),
        (
            "exp(x_i) / sum_j(exp(x_j))",
            "x_k",
            "s_i = exp(x_i) / Σ_j(exp(x_j))\ns_i ⊙ δ_ik - s_i s_k",
        ),
        (
            "sum_k((W2_ki tanh(W1_ij x_j) - t_k)^2)",
            "W1_ab",
            "h_i = tanh(W1_ij x_j)\n2 (W2_ki h_i - t_k) (W2_ka ⊙ (1 - h_a^2)) x_b",
        ),
        (
            ATTENTION,
            "V_ab",
            "h_ia = exp(Q_id K_ad / sqrt(δ_dd))\ns_ia = h_ia / Σ_j(h_ij)\nG_ib s_ia",
        ),
        (
            ATTENTION,
            "Q_ab",
            "h_aj = exp(Q_ad K_jd / sqrt(δ_dd))\ns_aj = h_aj / Σ_j(h_aj)\n"
            "Σ_j((G_ae ⊙ s_aj) K_jb V_je) / sqrt(δ_dd) - (G_ae ⊙ s_aj ⊙ s_ak) K_kb V_je "
            "/ sqrt(δ_dd)",
        ),
    ],
)
def test_textbook_derivative_prints_as_a_program_of_the_same_value(text, wrt, program):
    derivative = ic.diff(text, wrt)
    assert ic.to_program(derivative) == program
    assert derivative.program() == program
    arrays = dict(ARRAYS)
    if "W1" in text:  # a network of 3 inputs, 4 hidden units, 2 outputs
        arrays.update(x=RNG.normal(size=3), t=RNG.normal(size=2))
    same_value(program, derivative, arrays, "".join(derivative.free_indices))


def test_attention_key_gradient_names_the_softmax_once():
    derivative = ic.diff(ATTENTION, "K_ab")
    program = ic.to_program(derivative)
    assert program == (
        "h_ia = exp(Q_id K_ad / sqrt(δ_dd))\ns_ia = h_ia / Σ_j(h_ij)\n"
        "Σ_i(G_ie (s_ia ⊙ V_ae) Q_ib) / sqrt(δ_bb) - Σ_i(G_ie s_ij s_ia Q_ib) V_je "
        "/ sqrt(δ_bb)"
    )
    same_value(program, derivative, ARRAYS, "ab")


LAYER_NORM = (
    "mu_n = sum_d(x_nd) / δ_dd; var_n = sum_d((x_nd - mu_n)^2) / δ_dd; "
    "y_nd = (x_nd - mu_n) / sqrt(var_n + epsilon); sum_{nd}(g_nd y_nd)"
)


def test_layer_norm_gradient_names_the_centred_input_and_the_deviation():
    """A mean (divided by the dimension δ_dd) is no normalisation to name as one."""
    derivative = ic.diff(LAYER_NORM, "x_ke")
    program = ic.to_program(derivative)
    assert program.splitlines()[:2] == [
        "h_kd = x_kd - Σ_i(x_ki) / (δ_dd)",
        "u_k = sqrt(epsilon + Σ_d(h_kd^2) / (δ_ii))",
    ]
    arrays = {"x": RNG.normal(size=(3, 4)), "g": RNG.normal(size=(3, 4)), "epsilon": 1e-3}
    same_value(program, derivative, arrays, "ke")
    # The layer-norm backward pass, by hand.
    x, g = arrays["x"], arrays["g"]
    centred = x - x.mean(axis=1, keepdims=True)
    std = np.sqrt((centred**2).mean(axis=1, keepdims=True) + 1e-3)
    y = centred / std
    backward = (g - g.mean(axis=1, keepdims=True) - y * (g * y).mean(axis=1, keepdims=True)) / std
    np.testing.assert_allclose(ic.evaluate(program, arrays, out="ke"), backward)


def test_mlp_bias_gradient_names_the_hidden_layer_once():
    arrays = {**ARRAYS, "V": ARRAYS["V_mlp"]}
    derivative = ic.diff(MLP, "b_k")
    program = ic.to_program(derivative)
    assert program == "h_na = tanh(b_a + X_nd W_da)\n(c + h_na V_a - y_n) ((1 - h_nk^2) ⊙ V_k)"
    same_value(program, derivative, arrays, "k")


def test_expression_without_shared_parts_prints_as_itself():
    expr = ic.parse("x_i A_ij x_j")
    assert ic.to_program(expr) == str(expr)


def test_user_names_the_definitions_in_order():
    derivative = ic.diff("exp(x_i) / sum_j(exp(x_j))", "x_k")
    program = ic.to_program(derivative, names=["softmax"])
    assert program == "softmax_i = exp(x_i) / Σ_j(exp(x_j))\nsoftmax_i ⊙ δ_ik - softmax_i softmax_k"
    same_value(program, derivative, ARRAYS, "ik")


@pytest.mark.parametrize("name", ["exp", "2s", "δ", "sum", ""])
def test_a_name_the_notation_cannot_take_is_refused(name):
    with pytest.raises(ic.IndexCalcError, match="cannot name a definition"):
        ic.to_program("exp(x_i) / sum_j(exp(x_j))", names=[name])


def test_names_never_clash_with_the_expressions_tensors_or_indices():
    """s, h and u are taken: the definitions use other letters."""
    text = "s_i h u_k exp(x_i) / sum_j(exp(x_j))"
    derivative = ic.diff(text, "x_p")
    program = ic.to_program(derivative)
    definitions = [line.split(" = ")[0] for line in program.splitlines()[:-1]]
    assert definitions and not any(d.split("_")[0] in {"s", "h", "u"} for d in definitions)
    arrays = {"s": RNG.normal(size=5), "h": 0.7, "u": RNG.normal(size=3), "x": ARRAYS["x"]}
    same_value(program, derivative, arrays, "kp")


def test_ascii_and_latex_programs():
    derivative = ic.diff("-t_i log(exp(z_i) / sum_j(exp(z_j)))", "z_k")
    ascii = ic.to_program(derivative, format="ascii")
    assert ascii == "s_k = exp(z_k) / sum_j(exp(z_j))\nsum_i(t_i) s_k - t_k"
    same_value(ascii, derivative, ARRAYS, "k")
    assert ic.to_program(derivative, format="latex") == (
        "\\begin{aligned}\n"
        "s_{k} &= \\frac{\\exp\\left(z_{k}\\right)}{\\sum_{j} \\left(\\exp\\left(z_{j}\\right)"
        "\\right)} \\\\\n"
        "&\\sum_{i} \\left(t_{i}\\right) \\, s_{k} - t_{k}\n"
        "\\end{aligned}"
    )
    with pytest.raises(ic.IndexCalcError, match="format"):
        ic.to_program(derivative, format="matrix")


@given(programs(max_depth=2), st.data())
def test_any_derivative_as_a_program_parses_back_to_its_value(example, data):
    expr = parsed(example)
    wrt = variables(data.draw, example, expr, count=data.draw(st.integers(1, 2)))
    derivative = ic.diff(expr, [v.wrt for v in wrt])
    out = example.out + "".join(v.letters for v in wrt)
    dims = dims_with(example, wrt)
    expected = evaluate(derivative, example, out, dims)
    for style in ("unicode", "ascii"):
        again = ic.parse(ic.to_program(derivative, format=style))
        assert again.free_indices == derivative.free_indices
        value = evaluate(again, example, out, dims)
        scale = 1 + np.max(np.abs(expected), initial=0.0)
        np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-9 * scale)


def test_command_line_defines_shared_parts(capsys):
    assert main(["diff", "-t_i log(exp(z_i) / sum_j(exp(z_j)))", "--wrt", "z_k", "--define"]) == 0
    assert capsys.readouterr().out == "s_k = exp(z_k) / Σ_j(exp(z_j))\nΣ_i(t_i) s_k - t_k\n"


def test_command_line_refuses_define_with_matrix_or_code(capsys):
    for form in ("matrix", "python"):
        assert main(["diff", "x_i x_i", "--wrt", "x_k", "--define", "--format", form]) == 2
        assert "--define prints index notation" in capsys.readouterr().err
