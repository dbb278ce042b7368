"""Softmax cross-entropy of a linear model: the gradient is (softmax(z) − t) xᵀ.

Logits z_i = W_ij x_j, target distribution t, loss = log Σ_i exp(z_i) − t_i z_i.
"""

import numpy as np

import indexcalc as ic

cross_entropy = "log(sum_i(exp(z_i))) - t_i z_i"
program = f"z_i = W_ij x_j; {cross_entropy}"
loss = ic.parse(program)
by_logits = ic.diff(cross_entropy, "z_k")
by_weights = ic.diff(program, "W_gh")

print(f"loss          = {loss}")
print(f"∂loss/∂z_k    = {by_logits}")
print(f"∂loss/∂W_gh   = {by_weights}")
print(f"LaTeX         = {by_weights.latex()}")

rng = np.random.default_rng(6)
W = rng.normal(size=(4, 3))
x = rng.normal(size=3)
t = np.eye(4)[2]
z = W @ x
softmax = np.exp(z) / np.exp(z).sum()
np.testing.assert_allclose(ic.evaluate(loss, W=W, x=x, t=t), -np.log(softmax[2]))
np.testing.assert_allclose(ic.evaluate(by_logits, z=z, t=t), softmax - t)
np.testing.assert_allclose(
    ic.evaluate(by_weights, W=W, x=x, t=t, out="gh"), np.outer(softmax - t, x)
)
print("∂loss/∂z = softmax(z) − t and ∂loss/∂W = (softmax(z) − t) xᵀ match")
