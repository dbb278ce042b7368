"""Layer normalisation over the feature axis of a batch, and its backward pass.

For each sample n of a batch x_nd: the mean μ_n = Σ_d x_nd / D, the variance
v_n = Σ_d (x_nd − μ_n)² / D and y_nd = (x_nd − μ_n) / √(v_n + ϵ). The number of features
D is δ_dd, the dimension of d, sized from x. A sum broadcasts μ_n and v_n over d.
The gradient of a scalar Σ_nd g_nd y_nd (g: the gradient arriving from the layer above)
is the layer-norm backward pass (g − mean(g) − y mean(g ⊙ y)) / √(v + ϵ).
"""

import numpy as np

import indexcalc as ic

# ϵ is written `epsilon`: `eps` is the Levi-Civita symbol.
definitions = """
mu_n = sum_d(x_nd) / δ_dd
var_n = sum_d((x_nd - mu_n)^2) / δ_dd
y_nd = (x_nd - mu_n) / sqrt(var_n + epsilon)
"""
normalised = ic.parse(definitions + "y_nd")
loss = ic.parse(definitions + "sum_{nd}(g_nd y_nd)")
gradient = ic.diff(loss, "x_ke")

print(f"y_nd       = {normalised}")
print(f"∂loss/∂x_ke = {gradient}")
print(f"LaTeX       = {gradient.latex()}")
print("∂loss/∂x_ke as a program:")
print(ic.to_program(gradient))

rng = np.random.default_rng(13)
x = rng.normal(loc=1.0, scale=2.0, size=(4, 6))
g = rng.normal(size=(4, 6))
epsilon = 1e-3

# The forward pass against NumPy.
mu = x.mean(axis=1, keepdims=True)
var = x.var(axis=1, keepdims=True)
y = (x - mu) / np.sqrt(var + epsilon)
np.testing.assert_allclose(ic.evaluate(normalised, x=x, epsilon=epsilon, out="nd"), y)
np.testing.assert_allclose(ic.evaluate(loss, x=x, g=g, epsilon=epsilon), np.sum(g * y))

# The gradient against the hand-written layer-norm backward pass ...
scale = np.sqrt(var + epsilon)
backward = (g - g.mean(axis=1, keepdims=True) - y * np.mean(g * y, axis=1, keepdims=True)) / scale
value = ic.evaluate(gradient, x=x, g=g, epsilon=epsilon, out="ke")
np.testing.assert_allclose(value, backward, rtol=1e-10, atol=1e-12)

# ... and against central differences of the loss, element by element.
loss_fn = ic.compile(loss)
h = 1e-6
numeric = np.zeros_like(x)
for index in np.ndindex(x.shape):
    up, down = x.copy(), x.copy()
    up[index] += h
    down[index] -= h
    numeric[index] = (
        loss_fn(x=up, g=g, epsilon=epsilon) - loss_fn(x=down, g=g, epsilon=epsilon)
    ) / (2 * h)
np.testing.assert_allclose(value, numeric, rtol=1e-6, atol=1e-8)

# Each row of the gradient sums to zero: shifting a sample's features leaves y unchanged.
np.testing.assert_allclose(value.sum(axis=1), 0, atol=1e-12)
print("∂loss/∂x = (g − mean(g) − y mean(g ⊙ y)) / √(v + ϵ) matches NumPy and finite differences")
