"""Train a 2-layer tanh MLP by gradient descent, using only indexcalc's gradients.

The loss is written once in index notation (n: samples, d: inputs, a: hidden units,
c: outputs). Each gradient is differentiated and compiled once; the training loop only
calls the compiled functions.
"""

import itertools

import numpy as np

import indexcalc as ic

program = """
H_na = tanh(X_nd W1_da)
P_nc = H_na W2_ac
sum_{nc}((P_nc - Y_nc)^2) / 2
"""
loss = ic.parse(program)
gradients = {name: ic.diff(program, f"{name}_gh") for name in ("W1", "W2")}

print(f"loss        = {loss}")
for name, gradient in gradients.items():
    print(f"∂loss/∂{name}_gh = {gradient}")
print(f"LaTeX ∂loss/∂W1_gh = {gradients['W1'].latex()}")

loss_fn = ic.compile(loss)
gradient_fns = {name: ic.compile(g, out="gh") for name, g in gradients.items()}

rng = np.random.default_rng(11)
X = rng.normal(size=(64, 3))
Y = np.stack([np.sin(X[:, 0]) + X[:, 1] * X[:, 2], np.cos(X[:, 1])], axis=1)
weights = {"W1": 0.5 * rng.normal(size=(3, 8)), "W2": 0.5 * rng.normal(size=(8, 2))}

# Check the compiled gradient once against a central difference along a random direction.
direction = {name: rng.normal(size=w.shape) for name, w in weights.items()}
h = 1e-6
up = loss_fn(X=X, Y=Y, **{n: w + h * direction[n] for n, w in weights.items()})
down = loss_fn(X=X, Y=Y, **{n: w - h * direction[n] for n, w in weights.items()})
directional = sum(np.sum(f(X=X, Y=Y, **weights) * direction[n]) for n, f in gradient_fns.items())
np.testing.assert_allclose(directional, (up - down) / (2 * h), rtol=1e-6)

learning_rate = 0.004
losses = []
for step in range(301):
    losses.append(float(loss_fn(X=X, Y=Y, **weights)))
    if step % 50 == 0:
        print(f"step {step:3d}  loss {losses[-1]:.4f}")
    steps = {name: f(X=X, Y=Y, **weights) for name, f in gradient_fns.items()}
    weights = {name: w - learning_rate * steps[name] for name, w in weights.items()}

assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
assert all(later <= earlier for earlier, later in itertools.pairwise(losses)), "the loss rose"
print(f"loss fell from {losses[0]:.4f} to {losses[-1]:.4f}")
