"""Least squares ‖Ax − b‖²: gradient 2Aᵀ(Ax − b) and Hessian 2AᵀA."""

import numpy as np

import indexcalc as ic

f = ic.parse("(A_ij x_j - b_i)(A_ik x_k - b_i)")
gradient = ic.diff(f, "x_p")
hessian = ic.diff(f, ["x_p", "x_q"])

print(f"f              = {f}")
print(f"∂f/∂x_p        = {gradient}")
print(f"∂²f/∂x_p∂x_q   = {hessian}")
print(f"LaTeX gradient = {gradient.latex()}")
print(f"LaTeX Hessian  = {hessian.latex()}")

rng = np.random.default_rng(1)
A = rng.normal(size=(6, 3))
b = rng.normal(size=6)
x = rng.normal(size=3)
residual = A @ x - b
np.testing.assert_allclose(ic.evaluate(f, A=A, b=b, x=x), residual @ residual)
np.testing.assert_allclose(ic.evaluate(gradient, A=A, b=b, x=x), 2 * A.T @ residual)
np.testing.assert_allclose(ic.evaluate(hessian, A=A, b=b, x=x, out="pq"), 2 * A.T @ A)

# The gradient vanishes at the least-squares solution.
solution = np.linalg.lstsq(A, b, rcond=None)[0]
np.testing.assert_allclose(ic.evaluate(gradient, A=A, b=b, x=solution), 0, atol=1e-12)
print("gradient 2Aᵀ(Ax − b) and Hessian 2AᵀA match; the gradient vanishes at lstsq's solution")
