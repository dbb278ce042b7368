"""Gradient, Hessian and the quadratic Taylor approximation of f = x e^{−x²−y²} (seed 003).

∇f = e^{−x²−y²} (1 − 2x², −2xy) and Hf = e^{−x²−y²} [[4x³ − 6x, 4x²y − 2y], [4x²y − 2y, 4xy² − 2x]];
at (−1, 0) the quadratic approximation is e^{−1}(−1 − (x + 1) + (x + 1)² + y²).
"""

import numpy as np

import indexcalc as ic

f = ic.parse("x exp(-x^2 - y^2)")
variables = ("x", "y")
gradient = [ic.diff(f, v) for v in variables]
hessian = [[ic.diff(f, [v, w]) for w in variables] for v in variables]

print(f"f         = {f}")
print(f"∂f/∂x     = {gradient[0]}")
print(f"∂f/∂y     = {gradient[1]}")
print(f"∂²f/∂x∂y  = {hessian[0][1]}")
print(f"LaTeX ∂²f/∂x² = {hessian[0][0].latex()}")


def at(point, expr):
    return float(ic.evaluate(expr, dict(zip(variables, point, strict=True))))


rng = np.random.default_rng(10)
for x, y in rng.uniform(-2, 2, size=(5, 2)):
    g = np.exp(-(x**2) - y**2)
    expected_gradient = g * np.array([1 - 2 * x**2, -2 * x * y])
    expected_hessian = g * np.array(
        [[4 * x**3 - 6 * x, 4 * x**2 * y - 2 * y], [4 * x**2 * y - 2 * y, 4 * x * y**2 - 2 * x]]
    )
    np.testing.assert_allclose([at((x, y), d) for d in gradient], expected_gradient)
    np.testing.assert_allclose([[at((x, y), d) for d in row] for row in hessian], expected_hessian)

# The quadratic Taylor approximation at (−1, 0), from indexcalc's gradient and Hessian.
center = np.array([-1.0, 0.0])
value = at(center, f)
slope = np.array([at(center, d) for d in gradient])
curvature = np.array([[at(center, d) for d in row] for row in hessian])
for x, y in [(-1.1, 0.05), (-0.9, -0.1), (-1.0, 0.2)]:
    step = np.array([x, y]) - center
    taylor = value + slope @ step + step @ curvature @ step / 2
    np.testing.assert_allclose(taylor, np.exp(-1) * (-1 - (x + 1) + (x + 1) ** 2 + y**2))
    assert abs(taylor - at((x, y), f)) < 0.01
print("gradient, Hessian and the Taylor quadratic e^{−1}(−1 − (x+1) + (x+1)² + y²) match")
