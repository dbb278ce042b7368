"""Log-sum-exp (seed 003): ∇ log(eˣ + eʸ) at (0, log 2) is [1/3, 2/3].

Written for a vector, the gradient is softmax(x) and the Hessian diag(p) − ppᵀ.
"""

import numpy as np

import indexcalc as ic

f = ic.parse("log(sum_i(exp(x_i)))")
gradient = ic.diff(f, "x_k")
hessian = ic.diff(f, ["x_k", "x_l"])

print(f"f            = {f}")
print(f"∂f/∂x_k      = {gradient}")
print(f"∂²f/∂x_k∂x_l = {hessian}")
print(f"LaTeX        = {gradient.latex()}")

x0 = np.array([0.0, np.log(2.0)])
np.testing.assert_allclose(ic.evaluate(f, x=x0), np.log(3.0))
np.testing.assert_allclose(ic.evaluate(gradient, x=x0), [1 / 3, 2 / 3])
p = np.array([1 / 3, 2 / 3])
np.testing.assert_allclose(ic.evaluate(hessian, x=x0, out="kl"), np.diag(p) - np.outer(p, p))

# The seed's two-variable form gives the same numbers.
scalar = "log(exp(x) + exp(y))"
point = {"x": 0.0, "y": np.log(2.0)}
by_x, by_y = (ic.evaluate(ic.diff(scalar, name), point) for name in "xy")
print(f"∂/∂x {scalar} = {ic.diff(scalar, 'x')}")
np.testing.assert_allclose([by_x, by_y], [1 / 3, 2 / 3])
print("gradient at (0, log 2) is [1/3, 2/3]")
