"""Simplification rules users expect, and derivatives that read like the textbook.

Each rule (docs/architecture.md's rule table) has its exact simplified text and a value
test: the simplified form equals the original on random inputs where the original is
defined. Rules that hold only on part of the domain say so, and are not applied where
they could change a value.
"""

from __future__ import annotations

import numpy as np
import pytest
from finite_difference import assert_derivative_matches

import indexcalc as ic
from indexcalc.cli import main

RNG = np.random.default_rng(19)
POSITIVE = {name: RNG.uniform(0.5, 1.5, size=4) for name in ("u", "v", "x", "y", "s")}
SIGNED = {name: RNG.normal(size=4) for name in ("u", "v", "x", "y", "s")}


@pytest.mark.parametrize(
    ("text", "simplified", "arrays"),
    [
        ("log(exp(x_i))", "x_i", SIGNED),
        ("exp(log(x_i))", "x_i", POSITIVE),  # where log is defined
        ("log(exp(u_i) / (1 + exp(v_i)))", "log(σ(-v_i)) + u_i", SIGNED),
        ("log(exp(u_i) ⊙ exp(v_i))", "u_i + v_i", SIGNED),
        ("log(exp(z_i) / sum_j(exp(z_j)))", "z_i - log(Σ_j(exp(z_j)))", {"z": SIGNED["x"]}),
        ("log(sigmoid(u_i)^3)", "3 log(σ(u_i))", SIGNED),
        ("sigmoid(u_i) ⊙ (1 - sigmoid(u_i)) + sigmoid(u_i)^2", "σ(u_i)", SIGNED),
        ("sigmoid(u) (1 - sigmoid(u)) + sigmoid(u)^2", "σ(u)", {"u": 0.3}),
        ("-(1 - y_i) - y_i", "-Σ_j(δ_ij)", SIGNED),
        ("y_i ⊙ (1 - s_i) - (1 - y_i) ⊙ s_i", "y_i - s_i", SIGNED),
        ("1 / (1 + exp(-x_i))", "σ(x_i)", SIGNED),
        ("exp(v_i) / (1 + exp(v_i))", "σ(v_i)", SIGNED),
        ("2 / (1 + exp(x_i))", "2 σ(-x_i)", SIGNED),
        ("1 / (1 + exp(-u_i - v_i))", "σ(u_i + v_i)", SIGNED),
    ],
)
def test_rule_gives_the_textbook_form_and_keeps_the_value(text, simplified, arrays):
    result = ic.simplify(text)
    assert str(result) == simplified
    out = "".join(sorted(ic.parse(text).free)) or None
    sizes = {"i": 4, "j": 4}
    expected = ic.evaluate(text, arrays, out=out, dims=sizes)
    np.testing.assert_allclose(ic.evaluate(result, arrays, out=out, dims=sizes), expected)


@pytest.mark.parametrize(
    "text",
    [
        "log(x_i y_i)",  # x, y of either sign: log(x) + log(y) would be nan where x, y < 0
        "log(x_i / y_i)",
        "2 (x_i + y_i) + s_i",  # multiplying out would make it longer
    ],
)
def test_rule_is_not_applied_where_it_could_change_a_value_or_lengthen(text):
    result = ic.simplify(text)
    assert result is ic.parse(text)
    negative = {name: -np.abs(a) for name, a in SIGNED.items()}
    np.testing.assert_allclose(ic.evaluate(result, negative), ic.evaluate(text, negative))


# -- textbook targets -----------------------------------------------------------------------

LOG_SOFTMAX = "-t_i (z_i - log(sum_j(exp(z_j))))"
NATURAL_SOFTMAX = "-t_i log(exp(z_i) / sum_j(exp(z_j)))"
BINARY = "sum_i(-(y_i log(sigmoid(X_ij w_j)) + (1 - y_i) log(1 - sigmoid(X_ij w_j))))"
ARRAYS = {
    "t": RNG.uniform(size=5),
    "z": RNG.normal(size=5),
    "X": RNG.normal(size=(6, 3)),
    "w": RNG.normal(size=3),
    "y": RNG.uniform(size=6),
}


@pytest.mark.parametrize("text", [LOG_SOFTMAX, NATURAL_SOFTMAX])
def test_cross_entropy_gradient_is_softmax_times_mass_minus_target(text):
    derivative = assert_derivative_matches(text, "z_k", ARRAYS)
    assert str(derivative) == "Σ_i(t_i) (exp(z_k) / Σ_j(exp(z_j))) - t_k"
    softmax = np.exp(ARRAYS["z"]) / np.exp(ARRAYS["z"]).sum()
    value = ic.evaluate(derivative, ARRAYS)
    np.testing.assert_allclose(value, ARRAYS["t"].sum() * softmax - ARRAYS["t"])


def test_binary_cross_entropy_gradient_is_x_transpose_residual():
    derivative = assert_derivative_matches(BINARY, "w_k", ARRAYS)
    assert str(derivative) == "X_ik (σ(X_ij w_j) - y_i)"
    assert ic.to_matrix(derivative) == "Xᵀ (σ(X w) − y)"


def test_binary_cross_entropy_hessian_has_no_numeric_clutter():
    hessian = ic.diff(BINARY, ["w_k", "w_l"])
    assert str(hessian) == "Σ_i(X_ik σ(X_ij w_j) (1 - σ(X_ij w_j)) X_il)"
    X, w = ARRAYS["X"], ARRAYS["w"]
    p = 1 / (1 + np.exp(-X @ w))
    np.testing.assert_allclose(ic.evaluate(hessian, ARRAYS, out="kl"), X.T @ (p * (1 - p) * X.T).T)


LOGISTIC = "sum_i(log(1 + exp(-y_i X_ij w_j)))"


def test_logistic_loss_gradient_and_hessian_read_as_the_textbook():
    """With labels ±1: -Σ_i y_i x_i σ(-y_i xᵢᵀw), and Σ_i y_i² x_i x_iᵀ σ (1 - σ)."""
    arrays = {**ARRAYS, "y": np.sign(RNG.normal(size=6))}
    gradient = assert_derivative_matches(LOGISTIC, "w_k", arrays)
    assert str(gradient) == "-Σ_i(y_i X_ik σ(-y_i X_ij w_j))"
    hessian = ic.diff(LOGISTIC, ["w_k", "w_l"])
    assert str(hessian) == "Σ_i(y_i^2 X_ik σ(-y_i X_ij w_j) (1 - σ(-y_i X_ij w_j)) X_il)"
    X, w, y = arrays["X"], arrays["w"], arrays["y"]
    p = 1 / (1 + np.exp(y * (X @ w)))
    np.testing.assert_allclose(ic.evaluate(gradient, arrays), -X.T @ (y * p))
    np.testing.assert_allclose(ic.evaluate(hessian, arrays, out="kl"), (X.T * p * (1 - p)) @ X)


def test_logistic_gradient_on_the_command_line(capsys):
    assert main(["diff", BINARY, "--wrt", "w_k", "--format", "matrix"]) == 0
    assert capsys.readouterr().out.strip() == "Xᵀ (σ(X w) − y)"


# -- printed dimensions read back as the axis they measure ----------------------------------


def test_printed_dimension_takes_the_letter_of_the_axis_it_measures():
    """The mean's divisor D = δ_dd: printed with a fresh letter, the text would need a
    size; printed with d, which indexes g's axis, it evaluates from the arrays alone."""
    text = "sum_d(g_d x_d) - sum_d(g_d) sum_d(x_d) / δ_dd"
    derivative = ic.diff(text, "x_e")
    assert str(derivative) == "g_e - Σ_d(g_d) / (δ_dd)"
    g, x = RNG.normal(size=5), RNG.normal(size=5)
    np.testing.assert_allclose(ic.evaluate(str(derivative), g=g, x=x), g - g.sum() / 5)
    assert ic.check_derivatives(text, "x_e").ok


ATTENTION = "S_ij = Q_id K_jd / sqrt(δ_dd); P_ij = exp(S_ij) / sum_j(exp(S_ij)); G_ie P_ij V_je"


@pytest.mark.parametrize("wrt", ["Q_ab", "K_ab", "V_ab"])
def test_attention_check_with_distinct_sizes_reads_the_scale_from_the_right_axis(wrt, capsys):
    """√D printed as sqrt(δ_ii) read i (3 queries) back as D (5): check said FAILED."""
    sizes = ["--dims", "i=3", "--dims", "j=4", "--dims", "d=5", "--dims", "e=2"]
    assert main(["check", ATTENTION, "--wrt", wrt, *sizes]) == 0
    assert capsys.readouterr().out.strip().endswith("ok: within tolerance 1e-06")


@pytest.mark.parametrize(
    ("text", "wrt", "shapes"),
    [
        ("ε_mn (v_j^2 + 0.5)^0.5 (T_iji - S_mjm)", "v_p", {"v": 3, "T": (3, 3, 3), "S": (2, 3, 2)}),
        (
            "h2 = sum_k(A_kk) - Σ_l(W2_ll); sum_n((σ(S_ini))^(h2))",
            "S_pqr",
            {"A": (2, 2), "W2": (3, 3), "S": (3, 3, 3)},
        ),
    ],
)
def test_multiplying_out_never_merges_sums_over_axes_of_different_sizes(text, wrt, shapes):
    """Fuzz seed 24: multiplied out and collected again, Σ_i(T_iji) - Σ_m(S_mjm) came
    back as one sum over i of T's size 3 and S's size 2."""
    rng = np.random.default_rng(24)
    arrays = {name: rng.uniform(0.5, 1.5, shape) for name, shape in shapes.items()}
    dims = {"m": 2, "n": 2}
    derivative = assert_derivative_matches(
        text, wrt, arrays, "mn" if "ε" in text else "", dims=dims
    )
    assert derivative.free
