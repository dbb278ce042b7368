"""Logistic regression: the loss Σ_i log(1 + exp(−y_i X_ij w_j)), its gradient and Hessian.

With margins m = y ⊙ Xw and labels ±1: gradient −Xᵀ(y ⊙ σ(−m)), Hessian Xᵀ diag(σ(m)σ(−m)) X.
"""

import numpy as np

import indexcalc as ic

loss = ic.parse("sum_i(log(1 + exp(-y_i X_ij w_j)))")
gradient = ic.diff(loss, "w_k")
hessian = ic.diff(loss, ["w_k", "w_l"])

print(f"loss            = {loss}")
print(f"∂loss/∂w_k      = {gradient}")
print(f"∂²loss/∂w_k∂w_l = {hessian}")
print(f"LaTeX gradient  = {gradient.latex()}")
print(f"LaTeX Hessian   = {hessian.latex()}")


def sigmoid(u):
    return 1 / (1 + np.exp(-u))


rng = np.random.default_rng(5)
X = rng.normal(size=(20, 3))
y = rng.choice([-1.0, 1.0], size=20)
w = rng.normal(size=3)
margin = y * (X @ w)
arrays = {"X": X, "y": y, "w": w}
np.testing.assert_allclose(ic.evaluate(loss, arrays), np.sum(np.log1p(np.exp(-margin))))
np.testing.assert_allclose(ic.evaluate(gradient, arrays), -X.T @ (y * sigmoid(-margin)))
np.testing.assert_allclose(
    ic.evaluate(hessian, arrays, out="kl"),
    X.T @ np.diag(sigmoid(margin) * sigmoid(-margin)) @ X,
)
print("gradient −Xᵀ(y ⊙ σ(−m)) and Hessian Xᵀ diag(σ(m)σ(−m)) X match")
