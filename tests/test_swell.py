"""No expression swell: the gradient of a depth-L MLP loss grows linearly with L."""

from __future__ import annotations

import numpy as np
import pytest
from finite_difference import assert_derivative_matches

import indexcalc as ic
from indexcalc.expr import node_count

DEPTHS = range(1, 17)


def mlp_loss(depth: int) -> str:
    """h0 = x, h_l = tanh(W_l h_(l-1)), loss = Σ_i (h_L,i − t_i)², with weights W1..WL."""
    lines = ["h0_j = x_j"]
    lines += [f"h{layer}_i = tanh(W{layer}_ij h{layer - 1}_j)" for layer in range(1, depth + 1)]
    lines += [f"loss = sum_i((h{depth}_i - t_i)^2)", "loss"]
    return "; ".join(lines)


@pytest.fixture(scope="module")
def gradient_sizes() -> dict[int, int]:
    """node_count of ∂loss/∂W1 (the deepest weights) for each depth."""
    return {depth: node_count(ic.diff(mlp_loss(depth), "W1_gh")) for depth in DEPTHS}


def test_gradient_size_at_depth_16_is_about_twice_depth_8(gradient_sizes):
    assert gradient_sizes[16] <= 16 / 8 * gradient_sizes[8] * 1.25


def test_gradient_size_grows_by_a_roughly_constant_step(gradient_sizes):
    steps = [gradient_sizes[d] - gradient_sizes[d - 1] for d in DEPTHS if d >= 3]
    assert min(steps) > 0
    assert max(steps) <= 2 * min(steps)


def test_gradient_size_is_linear_in_the_size_of_the_loss(gradient_sizes):
    for depth in DEPTHS:
        assert gradient_sizes[depth] <= 4 * node_count(ic.parse(mlp_loss(depth)))


def test_gradient_for_every_layer_stays_linear():
    depth = 16
    program = mlp_loss(depth)
    sizes = [node_count(ic.diff(program, f"W{layer}_gh")) for layer in (1, 8, 16)]
    assert max(sizes) <= 4 * node_count(ic.parse(program))


def test_depth3_gradient_matches_finite_differences():
    rng = np.random.default_rng(7)
    arrays = {
        "x": rng.normal(size=3),
        "W1": rng.normal(size=(4, 3)),
        "W2": rng.normal(size=(5, 4)),
        "W3": rng.normal(size=(2, 5)),
        "t": rng.normal(size=2),
    }
    for layer in (1, 2, 3):
        assert_derivative_matches(mlp_loss(3), f"W{layer}_gh", arrays)


def test_depth3_gradient_matches_backpropagation():
    rng = np.random.default_rng(8)
    x, t = rng.normal(size=3), rng.normal(size=2)
    weights = [rng.normal(size=(4, 3)), rng.normal(size=(5, 4)), rng.normal(size=(2, 5))]
    activations = [x]
    for W in weights:
        activations.append(np.tanh(W @ activations[-1]))
    delta = 2 * (activations[-1] - t)
    expected = {}
    for layer in (3, 2, 1):
        delta = delta * (1 - activations[layer] ** 2)
        expected[layer] = np.outer(delta, activations[layer - 1])
        delta = weights[layer - 1].T @ delta
    arrays = {"x": x, "t": t, **{f"W{k}": W for k, W in enumerate(weights, start=1)}}
    for layer in (1, 2, 3):
        gradient = ic.diff(mlp_loss(3), f"W{layer}_gh")
        np.testing.assert_allclose(
            ic.evaluate(gradient, arrays, out="gh"), expected[layer], rtol=1e-12
        )
