"""The evaluation problems: notation, inputs, NumPy closed form and a loss for autodiff.

Each problem is written three ways: in indexcalc's notation (differentiated symbolically
and compiled), as the closed-form NumPy a person would write by hand (the reference every
result is checked against), and as a scalar loss over an array namespace (``jax.numpy``
or ``torch``) for the autodiff peers to differentiate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Derivative:
    """One derivative to compile: the variables differentiated by, and the output order."""

    wrt: tuple[str, ...]
    out: str


@dataclass(frozen=True)
class Problem:
    """A loss, the derivative to benchmark, and every way of computing it.

    `variables` are the arrays the derivative is taken with respect to (the autodiff
    peers' arguments); `hessian` says whether it is the second derivative.
    """

    key: str
    title: str
    notation: str
    derivatives: tuple[Derivative, ...]
    variables: tuple[str, ...]
    hessian: bool
    sizes: tuple[int, ...]
    quick_sizes: tuple[int, ...]
    arrays: Callable[[int, np.random.Generator], Arrays]
    numpy: Callable[..., Any]
    loss: Callable[[Any, Mapping[str, Any]], Any]
    shape: Callable[[int], str]

    def ordered_names(self, arrays: Mapping[str, object]) -> tuple[str, ...]:
        """Argument order for the autodiff peers: the variables first, then the data."""
        return self.variables + tuple(sorted(k for k in arrays if k not in self.variables))


def _normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return rng.standard_normal(shape) * scale


def _sigmoid(u: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-u))


# -- x_i A_ij x_j ------------------------------------------------------------------------


def _quadratic_arrays(n: int, rng: np.random.Generator) -> Arrays:
    return {"A": _normal(rng, n, n), "x": _normal(rng, n)}


def _quadratic_loss(xp, a):
    return a["x"] @ a["A"] @ a["x"]


# -- logistic regression -----------------------------------------------------------------


def _logistic_arrays(n: int, rng: np.random.Generator) -> Arrays:
    return {
        "X": _normal(rng, 2 * n, n, scale=n**-0.5),
        "y": rng.choice([-1.0, 1.0], 2 * n),
        "w": _normal(rng, n),
    }


def _logistic_gradient(X, y, w):
    return -(y * _sigmoid(-y * (X @ w))) @ X


def _logistic_hessian(X, y, w):
    s = _sigmoid(y * (X @ w))
    return X.T @ ((y * y * s * (1 - s))[:, None] * X)


def _logistic_loss(xp, a):
    return xp.sum(xp.log(1 + xp.exp(-a["y"] * (a["X"] @ a["w"]))))


# -- matrix factorisation ----------------------------------------------------------------


def _rank(n: int) -> int:
    return max(2, n // 10)


def _factorisation_arrays(n: int, rng: np.random.Generator) -> Arrays:
    r = _rank(n)
    return {"X": _normal(rng, n, n), "U": _normal(rng, n, r), "V": _normal(rng, r, n)}


def _factorisation_hessian(X, U, V):
    return np.einsum("ga,hb->ghab", 2 * U.T @ U, np.eye(V.shape[1]))


def _factorisation_loss(xp, a):
    residual = a["X"] - a["U"] @ a["V"]
    return xp.sum(residual * residual)


# -- two-layer tanh MLP on a batch -------------------------------------------------------


def _mlp_arrays(n: int, rng: np.random.Generator) -> Arrays:
    return {
        "X": _normal(rng, n, n),
        "T": _normal(rng, n, n),
        "W1": _normal(rng, n, n, scale=n**-0.5),
        "W2": _normal(rng, n, n, scale=n**-0.5),
    }


def _mlp_gradients(X, T, W1, W2):
    H = np.tanh(X @ W1.T)
    R = 2 * (H @ W2.T - T)
    return ((R @ W2) * (1 - H * H)).T @ X, R.T @ H


def _mlp_loss(xp, a):
    H = xp.tanh(a["X"] @ a["W1"].T)
    R = H @ a["W2"].T - a["T"]
    return xp.sum(R * R)


# -- softmax cross-entropy ---------------------------------------------------------------


def _softmax_arrays(n: int, rng: np.random.Generator) -> Arrays:
    return {
        "W": _normal(rng, n, n, scale=n**-0.5),
        "x": _normal(rng, n),
        "t": np.eye(n)[rng.integers(n)],
    }


def _softmax_gradient(W, x, t):
    e = np.exp(W @ x)
    return np.outer(e / e.sum() - t, x)


def _softmax_loss(xp, a):
    z = a["W"] @ a["x"]
    return xp.log(xp.sum(xp.exp(z))) - a["t"] @ z


_SIZES = (3, 200, 1000)
_QUICK = (3, 40)
_QUADRATIC = "x_i A_ij x_j"
_LOGISTIC = "sum_i(log(1 + exp(-y_i X_ij w_j)))"
_FACTORISATION = "(X_ij - U_ik V_kj)(X_ij - U_il V_lj)"


PROBLEMS: dict[str, Problem] = {
    p.key: p
    for p in (
        Problem(
            key="quadratic-gradient",
            title="∇ xᵀAx",
            notation=_QUADRATIC,
            derivatives=(Derivative(("x_k",), "k"),),
            variables=("x",),
            hessian=False,
            sizes=_SIZES,
            quick_sizes=_QUICK,
            arrays=_quadratic_arrays,
            numpy=lambda A, x: A @ x + x @ A,
            loss=_quadratic_loss,
            shape=lambda n: f"A {n}x{n}",
        ),
        Problem(
            key="quadratic-hessian",
            title="∇² xᵀAx",
            notation=_QUADRATIC,
            derivatives=(Derivative(("x_k", "x_l"), "kl"),),
            variables=("x",),
            hessian=True,
            sizes=_SIZES,
            quick_sizes=_QUICK,
            arrays=_quadratic_arrays,
            numpy=lambda A, x: A + A.T,
            loss=_quadratic_loss,
            shape=lambda n: f"A {n}x{n}",
        ),
        Problem(
            key="logistic-gradient",
            title="∇ logistic regression",
            notation=_LOGISTIC,
            derivatives=(Derivative(("w_k",), "k"),),
            variables=("w",),
            hessian=False,
            sizes=_SIZES,
            quick_sizes=_QUICK,
            arrays=_logistic_arrays,
            numpy=_logistic_gradient,
            loss=_logistic_loss,
            shape=lambda n: f"X {2 * n}x{n}",
        ),
        Problem(
            key="logistic-hessian",
            title="∇² logistic regression",
            notation=_LOGISTIC,
            derivatives=(Derivative(("w_k", "w_l"), "kl"),),
            variables=("w",),
            hessian=True,
            sizes=_SIZES,
            quick_sizes=_QUICK,
            arrays=_logistic_arrays,
            numpy=_logistic_hessian,
            loss=_logistic_loss,
            shape=lambda n: f"X {2 * n}x{n}",
        ),
        Problem(
            key="factorisation-gradient",
            title="∇_V ‖X − UV‖²",
            notation=_FACTORISATION,
            derivatives=(Derivative(("V_gh",), "gh"),),
            variables=("V",),
            hessian=False,
            sizes=_SIZES,
            quick_sizes=_QUICK,
            arrays=_factorisation_arrays,
            numpy=lambda X, U, V: -2 * U.T @ (X - U @ V),
            loss=_factorisation_loss,
            shape=lambda n: f"X {n}x{n}, rank {_rank(n)}",
        ),
        Problem(
            key="factorisation-hessian",
            title="∇²_V ‖X − UV‖²",
            notation=_FACTORISATION,
            derivatives=(Derivative(("V_gh", "V_ab"), "ghab"),),
            variables=("V",),
            hessian=True,
            # The Hessian has (rank·n)² entries: small sizes only.
            sizes=(3, 30, 100),
            quick_sizes=(3, 20),
            arrays=_factorisation_arrays,
            numpy=_factorisation_hessian,
            loss=_factorisation_loss,
            shape=lambda n: f"X {n}x{n}, rank {_rank(n)}",
        ),
        Problem(
            key="mlp-gradient",
            title="∇_W1, ∇_W2 2-layer tanh MLP",
            notation="H_bi = tanh(W1_ij X_bj); R_bk = W2_ki H_bi - T_bk; sum_{bk}(R_bk^2)",
            derivatives=(Derivative(("W1_gh",), "gh"), Derivative(("W2_gh",), "gh")),
            variables=("W1", "W2"),
            hessian=False,
            sizes=_SIZES,
            quick_sizes=_QUICK,
            arrays=_mlp_arrays,
            numpy=_mlp_gradients,
            loss=_mlp_loss,
            shape=lambda n: f"batch {n}, {n}→{n}→{n}",
        ),
        Problem(
            key="softmax-gradient",
            title="∇_W softmax cross-entropy",
            notation="log(sum_i(exp(W_ij x_j))) - t_i W_ij x_j",
            derivatives=(Derivative(("W_gh",), "gh"),),
            variables=("W",),
            hessian=False,
            sizes=_SIZES,
            quick_sizes=_QUICK,
            arrays=_softmax_arrays,
            numpy=_softmax_gradient,
            loss=_softmax_loss,
            shape=lambda n: f"W {n}x{n}",
        ),
    )
}
