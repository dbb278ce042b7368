"""The neural-layer loss gradient of seed 001, written in the seed's comma notation.

ŷ_i = σ(W_ij x_j), loss = (ŷ_j − y_j)(ŷ_j − y_j), and loss_{,(gh)} = ∂loss/∂W_gh: one
derivative with respect to the matrix W (var="W"). The seed's answer is
2(ŷ_i − y_i) σ_{i,m}(W_jk x_k) x_n δ_{(mn)(gh)} = 2(ŷ_g − y_g) ŷ_g (1 − ŷ_g) x_h.
"""

import numpy as np

import indexcalc as ic

definitions = """
yhat_i = σ(W_ij x_j)
loss = (yhat_j - y_j)(yhat_j - y_j)
"""
loss = ic.parse(definitions + "loss")
gradient = ic.simplify(definitions + "loss_{,(gh)}", var="W")

print(f"loss         = {loss}")
print(f"loss_{{,(gh)}} = {gradient}")
print(f"LaTeX        = {gradient.latex()}")

rng = np.random.default_rng(3)
W = rng.normal(size=(3, 4))
x = rng.normal(size=4)
y = rng.uniform(size=3)
yhat = 1 / (1 + np.exp(-W @ x))
expected = np.outer(2 * (yhat - y) * yhat * (1 - yhat), x)
np.testing.assert_allclose(ic.evaluate(loss, W=W, x=x, y=y), np.sum((yhat - y) ** 2))
np.testing.assert_allclose(ic.evaluate(gradient, W=W, x=x, y=y, out="gh"), expected)

# One step against the gradient lowers the loss: the seed's update rule W ← W − η loss_{,(gh)}.
step = W - 0.1 * ic.evaluate(gradient, W=W, x=x, y=y, out="gh")
assert ic.evaluate(loss, W=step, x=x, y=y) < ic.evaluate(loss, W=W, x=x, y=y)
print("loss_{,(gh)} = 2(ŷ_g − y_g) ŷ_g (1 − ŷ_g) x_h matches, and a gradient step lowers the loss")
