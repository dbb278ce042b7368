"""A compiled function's cost for given shapes, and losses written naturally that must not
blow up (issue 13). Structure only: largest intermediates and flop counts, never time."""

from __future__ import annotations

import numpy as np
import pytest

import indexcalc as ic

SOFTMAX_CE = "-sum_i(t_i log(exp(W_ij x_j) / sum_k(exp(W_kl x_l))))"


def softmax_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.zeros(n)
    t[rng.integers(n)] = 1.0
    return {"W": rng.normal(scale=0.1, size=(n, n)), "x": rng.normal(size=n), "t": t}


def softmax_gradient_closed_form(W, x, t):
    z = W @ x
    p = np.exp(z - z.max())
    p /= p.sum()
    return np.outer(p * t.sum() - t, x)


def test_natural_softmax_cross_entropy_gradient_has_no_cubic_intermediate():
    n = 1000
    gradient = ic.compile(ic.diff(SOFTMAX_CE, "W_pq"))
    cost = gradient.cost(softmax_data(n))
    assert cost.largest_intermediate <= n * n  # the n×n output; once it was n×n×n
    assert cost.flops < 20 * n * n


def test_natural_softmax_cross_entropy_gradient_is_the_closed_form():
    arrays = softmax_data(50)
    gradient = ic.evaluate(ic.diff(SOFTMAX_CE, "W_pq"), arrays, out="pq")
    np.testing.assert_allclose(gradient, softmax_gradient_closed_form(**arrays), atol=1e-12)


def test_cost_of_a_matrix_vector_product_is_its_flops_and_output():
    f = ic.compile("A_ij x_j")
    cost = f.cost(A=np.ones((30, 20)), x=np.ones(20))
    assert cost.largest_intermediate == 30
    assert cost.flops == 2 * 30 * 20  # opt_einsum counts a multiply and an add per term


def test_cost_grows_with_the_shapes_asked_about():
    f = ic.compile("tanh(W_ij x_j)")
    small = f.cost(W=np.ones((10, 10)), x=np.ones(10))
    large = f.cost(W=np.ones((100, 10)), x=np.ones(10))
    assert (small.largest_intermediate, large.largest_intermediate) == (10, 100)
    assert large.flops == 10 * small.flops


def test_cost_with_missing_arrays_is_an_evaluation_error():
    with pytest.raises(ic.EvaluationError, match="missing array x"):
        ic.compile("A_ij x_j").cost(A=np.ones((3, 3)))


# Losses as people write them, with the variable each is differentiated by and shapes.
# The bound: no intermediate larger than the output, the largest input, or the largest
# array the loss itself makes (a network's activations, say).
ML_LOSSES = {
    "softmax cross-entropy": (SOFTMAX_CE, ["W_pq"], {"W": (300, 200), "x": (200,), "t": (300,)}),
    "logistic loss": (
        "sum_i(log(1 + exp(-y_i X_ij w_j)))",
        ["w_k"],
        {"X": (400, 100), "y": (400,), "w": (100,)},
    ),
    "logistic Hessian": (
        "sum_i(log(1 + exp(-y_i X_ij w_j)))",
        ["w_k", "w_l"],
        {"X": (400, 100), "y": (400,), "w": (100,)},
    ),
    "least squares": (
        "(X_ij w_j - y_i)(X_ik w_k - y_i)",
        ["w_p"],
        {"X": (400, 100), "y": (400,), "w": (100,)},
    ),
    "matrix factorisation": (
        "(X_ij - U_ik V_kj)(X_ij - U_il V_lj)",
        ["V_pq"],
        {"X": (200, 300), "U": (200, 20), "V": (20, 300)},
    ),
    "two-layer network": (
        "h_ib = tanh(W1_ij x_jb); sum_{kb}((W2_ki h_ib - t_kb)^2)",
        ["W1_pq"],
        {"W1": (50, 40), "x": (40, 64), "W2": (10, 50), "t": (10, 64)},
    ),
    "ridge": (
        "(Y_ik - X_ij W_jk)(Y_ik - X_il W_lk) + 0.5 W_jk W_jk",
        ["W_pq"],
        {"Y": (300, 10), "X": (300, 50), "W": (50, 10)},
    ),
    "attention by V": (
        "P_ij = exp(S_ij) / sum_k(exp(S_ik)); sum_{ie}(G_ie P_ij V_je)",
        ["V_pq"],
        {"S": (60, 60), "V": (60, 16), "G": (60, 16)},
    ),
}


@pytest.mark.parametrize("loss", ML_LOSSES)
def test_loss_gradient_plan_makes_nothing_larger_than_the_loss_or_its_output(loss):
    text, wrt, shapes = ML_LOSSES[loss]
    rng = np.random.default_rng(1)
    arrays = {name: rng.normal(scale=0.1, size=shape) for name, shape in shapes.items()}
    derivative = ic.diff(text, wrt)
    output = int(np.prod([np.prod(shapes[w.partition("_")[0]]) for w in wrt]))
    forward = ic.compile(text).cost(arrays).largest_intermediate
    bound = max(output, forward, *(int(np.prod(s)) for s in shapes.values()))
    assert ic.compile(derivative).cost(arrays).largest_intermediate <= bound


# -- δ contracts through sums instead of being built --------------------------------------

RNG = np.random.default_rng(7)
A3, B3 = RNG.normal(size=(3, 3)), RNG.normal(size=(3, 3))
x3, y3, z3 = RNG.normal(size=3), RNG.normal(size=3), RNG.normal(size=3)


@pytest.mark.parametrize(
    ("text", "expected", "no_delta_left"),
    [
        ("sum_i(δ_ki) x_k", x3.sum(), True),
        ("sum_i(δ_ii)", 3, False),
        ("(A_ik + B_ik) δ_ik", np.trace(A3) + np.trace(B3), True),
        ("sum_i(x_i (δ_ik + y_i z_k))", x3 + (x3 @ y3) * z3, True),
        ("(x_i y_k + δ_ik) δ_ik", x3 @ y3 + 3, False),
        ("y_i (A_ik + δ_ik .* x_k)", y3 @ A3 + y3 * x3, True),
    ],
)
def test_delta_contracts_inside_sums_held_sums_and_products_of_sums(text, expected, no_delta_left):
    simplified = ic.simplify(text)
    arrays = {"A": A3, "B": B3, "x": x3, "y": y3, "z": z3}
    given = {n: a for n, a in arrays.items() if n in text}
    value = ic.evaluate(simplified, given, dims={"i": 3})
    np.testing.assert_allclose(value, expected)
    if no_delta_left:
        assert "δ" not in str(simplified), simplified


def test_gradient_of_trace_xtbx_is_one_matrix_product():
    gradient = ic.diff("X_ji B_jk X_ki", "X_pq")
    assert str(gradient) == "X_kq (B_kp + B_pk)"
    n = 50
    arrays = {"B": RNG.normal(size=(n, n)), "X": RNG.normal(size=(n, n))}
    assert ic.compile(gradient).cost(arrays).flops < 3 * n**3  # two products would be 4 n³
    expected = (arrays["B"] + arrays["B"].T) @ arrays["X"]
    np.testing.assert_allclose(ic.evaluate(gradient, arrays, out="pq"), expected)


def test_a_factor_that_saves_no_product_stays_in_each_term():
    assert str(ic.diff("x_i A_ij x_j", "x_k")) == "x_i A_ik + A_kj x_j"


def test_cost_counts_a_delta_built_densely_without_overflowing():
    """δ_ij alone is a dense n×n array: its cost says so before anything is allocated, and
    sizes whose product passes 2⁶³ are counted exactly."""
    assert ic.compile("delta_ij", dims={"i": 10**6}).cost({}).largest_intermediate == 10**12
    huge = ic.compile("delta_ij delta_kl", dims={"i": 10**7, "k": 10**7}).cost({})
    assert huge.largest_intermediate == 10**28
