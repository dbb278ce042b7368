"""A 2-layer tanh MLP with biases, written the way it is written in ML code.

ŷ_n = Σ_a V_a tanh(X_nd W_da + b_a) + c, loss = Σ_n (ŷ_n − y_n)² / 2 (n: samples,
d: inputs, a: hidden units). The biases b_a and c are added directly: a sum broadcasts a
term over the free indices it lacks, so b_a is added to every sample and c to every
prediction. The gradient by a bias is then the back-propagated signal summed over the
batch, which is what hand-written backprop computes.
"""

import itertools

import numpy as np

import indexcalc as ic

program = """
H_na = tanh(X_nd W_da + b_a)
yhat_n = H_na V_a + c
sum_n((yhat_n - y_n)^2) / 2
"""
loss = ic.parse(program)
parameters = {"W": "W_gh", "b": "b_k", "V": "V_k", "c": "c"}
gradients = {name: ic.diff(program, variable) for name, variable in parameters.items()}

print(f"loss = {loss}")
for name, variable in parameters.items():
    print(f"∂loss/∂{variable} = {gradients[name]}")
print(f"LaTeX ∂loss/∂b_k = {gradients['b'].latex()}")
print("∂loss/∂b_k as a program:")
print(ic.to_program(gradients["b"]))

rng = np.random.default_rng(12)
X = rng.normal(size=(6, 3))
y = rng.normal(size=6)
weights = {
    "W": rng.normal(size=(3, 4)),
    "b": rng.normal(size=4),
    "V": rng.normal(size=4),
    "c": 0.3,
}

# Hand-written NumPy forward pass and backprop: δ_na is the signal at the hidden
# pre-activation, and each bias gradient sums a signal over the batch.
H = np.tanh(X @ weights["W"] + weights["b"])
residual = H @ weights["V"] + weights["c"] - y
signal = np.outer(residual, weights["V"]) * (1 - H**2)
backprop = {"W": X.T @ signal, "b": signal.sum(axis=0), "V": H.T @ residual, "c": residual.sum()}
np.testing.assert_allclose(ic.evaluate(loss, X=X, y=y, **weights), np.sum(residual**2) / 2)
for name, expected in backprop.items():
    np.testing.assert_allclose(ic.evaluate(gradients[name], X=X, y=y, **weights), expected)

# The same signal from indexcalc: ∂loss/∂Z_mk at Z = XW + b, summed over the batch, is ∂loss/∂b_k.
by_preactivation = ic.diff("sum_n((tanh(Z_na) V_a + c - y_n)^2) / 2", "Z_mk")
Z = X @ weights["W"] + weights["b"]
signal_ic = ic.evaluate(by_preactivation, Z=Z, V=weights["V"], c=weights["c"], y=y, out="mk")
np.testing.assert_allclose(signal_ic, signal)
np.testing.assert_allclose(
    ic.evaluate(gradients["b"], X=X, y=y, **weights), signal_ic.sum(axis=0), rtol=1e-12
)

# Every gradient against central differences of the loss, element by element.
loss_fn = ic.compile(loss)
# Each result has its free indices in alphabetical order: W_gh as a g x h array.
gradient_fns = {name: ic.compile(gradient) for name, gradient in gradients.items()}
h = 1e-6
for name, parameter in weights.items():
    numeric = np.zeros(np.shape(parameter))
    for index in np.ndindex(numeric.shape):
        up, down = np.array(parameter, dtype=float), np.array(parameter, dtype=float)
        up[index] += h
        down[index] -= h
        numeric[index] = (
            loss_fn(X=X, y=y, **{**weights, name: up})
            - loss_fn(X=X, y=y, **{**weights, name: down})
        ) / (2 * h)
    np.testing.assert_allclose(
        gradient_fns[name](X=X, y=y, **weights), numeric, rtol=1e-6, atol=1e-8
    )
    # and the printed derivative, parsed back, against finite differences on random arrays
    assert ic.check_derivatives(program, parameters[name]).ok, name

# Train on a small synthetic regression problem with plain gradient descent.
X = rng.normal(size=(40, 3))
y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + 1.0
weights = {
    "W": 0.5 * rng.normal(size=(3, 8)),
    "b": np.zeros(8),
    "V": 0.5 * rng.normal(size=8),
    "c": 0.0,
}
learning_rate = 0.01
losses = []
for step in range(201):
    losses.append(float(loss_fn(X=X, y=y, **weights)))
    if step % 50 == 0:
        print(f"step {step:3d}  loss {losses[-1]:.4f}")
    steps = {name: f(X=X, y=y, **weights) for name, f in gradient_fns.items()}
    weights = {name: w - learning_rate * steps[name] for name, w in weights.items()}

assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])
assert all(later <= earlier for earlier, later in itertools.pairwise(losses)), "the loss rose"
print(f"bias gradients match backprop; loss fell from {losses[0]:.4f} to {losses[-1]:.4f}")
