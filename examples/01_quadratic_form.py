"""Gradient and Hessian of the quadratic form xᵀAx (seed 003): (A + Aᵀ)x and A + Aᵀ.

With A declared symmetric, the gradient collapses to 2Ax.
"""

import numpy as np

import indexcalc as ic

f = ic.parse("x_i A_ij x_j")
gradient = ic.diff(f, "x_k")
hessian = ic.diff(f, ["x_k", "x_l"])
symmetric_gradient = ic.diff(f, "x_k", symmetric=["A"])

print(f"f           = {f}")
print(f"∂f/∂x_k     = {gradient}")
print(f"∂²f/∂x_k∂x_l = {hessian}")
print(f"A symmetric: ∂f/∂x_k = {symmetric_gradient}")
print(f"LaTeX: {gradient.latex()}")

rng = np.random.default_rng(0)
A = rng.normal(size=(4, 4))
x = rng.normal(size=4)
np.testing.assert_allclose(ic.evaluate(gradient, A=A, x=x), (A + A.T) @ x)
np.testing.assert_allclose(ic.evaluate(hessian, A=A, x=x, out="kl"), A + A.T)

S = A + A.T
np.testing.assert_allclose(ic.evaluate(symmetric_gradient, A=S, x=x), 2 * S @ x)
print("gradient (A + Aᵀ)x and Hessian A + Aᵀ match")
