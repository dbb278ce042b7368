"""The gradient of the 2x2 determinant (seed 000), written with the Levi-Civita symbol.

det X = ε_ij ε_kl X_ik X_jl / 2, and ∂det/∂X is the cofactor matrix: at X0 = [[3, 2], [6, −4]]
the seed's answer is [[−4, −6], [−2, 3]].
"""

import numpy as np

import indexcalc as ic

det = ic.parse("eps_ij eps_kl X_ik X_jl / 2")
gradient = ic.diff(det, "X_gh")

print(f"det X     = {det}")
print(f"∂det/∂X_gh = {gradient}")
print(f"LaTeX     = {gradient.latex()}")

X0 = np.array([[3.0, 2.0], [6.0, -4.0]])
np.testing.assert_allclose(ic.evaluate(det, X=X0), np.linalg.det(X0))
np.testing.assert_allclose(ic.evaluate(gradient, X=X0, out="gh"), [[-4, -6], [-2, 3]])
print(f"det X0 = {ic.evaluate(det, X=X0)}, gradient at X0 = [[-4, -6], [-2, 3]] as in the seed")
