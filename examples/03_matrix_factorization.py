"""Matrix factorization ‖X − UV‖² (seed 003): the gradient with respect to V is −2Uᵀ(X − UV)."""

import numpy as np

import indexcalc as ic

f = ic.parse("(X_ij - U_ik V_kj)(X_ij - U_il V_lj)")
gradient = ic.diff(f, "V_gh")

print(f"f         = {f}")
print(f"∂f/∂V_gh  = {gradient}")
print(f"LaTeX     = {gradient.latex()}")

rng = np.random.default_rng(2)
X = rng.normal(size=(5, 4))
U = rng.normal(size=(5, 2))
V = rng.normal(size=(2, 4))
np.testing.assert_allclose(ic.evaluate(f, X=X, U=U, V=V), np.sum((X - U @ V) ** 2))
np.testing.assert_allclose(ic.evaluate(gradient, X=X, U=U, V=V, out="gh"), -2 * U.T @ (X - U @ V))
print("∂‖X − UV‖²/∂V = −2Uᵀ(X − UV) matches")
