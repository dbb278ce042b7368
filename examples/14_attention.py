"""One attention head, and the gradients of a loss through it by Q, K and V.

Scores S_ij = Q_id K_jd / √D for queries i and keys j (D = δ_dd, the dimension of d),
weights P_ij = softmax over j of S_ij, written exp(S_ij) / Σ_j exp(S_ij), and the output
O_ie = P_ij V_je. The scalar loss Σ_ie G_ie O_ie stands for any loss whose gradient by
O is G. Its gradients are the backward pass of attention:
dV = Pᵀ G, dS = P ⊙ (G Vᵀ − rowsum(P ⊙ G Vᵀ)), dQ = dS K / √D and dK = dSᵀ Q / √D.
"""

import numpy as np

import indexcalc as ic

program = """
S_ij = Q_id K_jd / sqrt(δ_dd)
P_ij = exp(S_ij) / sum_j(exp(S_ij))
O_ie = P_ij V_je
G_ie O_ie
"""
loss = ic.parse(program)
gradients = {name: ic.diff(program, f"{name}_ab") for name in ("Q", "K", "V")}

print(f"loss = {loss}")
for name, gradient in gradients.items():
    print(f"∂loss/∂{name}_ab = {gradient}")
print(f"LaTeX ∂loss/∂V_ab = {gradients['V'].latex()}")
for name, gradient in gradients.items():
    print(f"∂loss/∂{name}_ab as a program:")
    print(ic.to_program(gradient))

# Sizes all differ (3 queries, 4 keys, D = 5, 2 output features), so no axis can be confused.
rng = np.random.default_rng(14)
arrays = {
    "Q": rng.normal(size=(3, 5)),
    "K": rng.normal(size=(4, 5)),
    "V": rng.normal(size=(4, 2)),
    "G": rng.normal(size=(3, 2)),
}

# Hand-written NumPy attention, forward and backward.
Q, K, V, G = (arrays[name] for name in "QKVG")
scale = np.sqrt(Q.shape[1])
S = Q @ K.T / scale
P = np.exp(S - S.max(axis=1, keepdims=True))
P /= P.sum(axis=1, keepdims=True)
dP = G @ V.T
dS = P * (dP - np.sum(P * dP, axis=1, keepdims=True))
backward = {"Q": dS @ K / scale, "K": dS.T @ Q / scale, "V": P.T @ G}
np.testing.assert_allclose(ic.evaluate(loss, **arrays), np.sum(G * (P @ V)))
for name, expected in backward.items():
    value = ic.evaluate(gradients[name], **arrays, out="ab")
    np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-12)

# Every gradient against central differences of the loss, element by element.
loss_fn = ic.compile(loss)
h = 1e-6
for name, gradient in gradients.items():
    numeric = np.zeros_like(arrays[name])
    for index in np.ndindex(numeric.shape):
        up, down = arrays[name].copy(), arrays[name].copy()
        up[index] += h
        down[index] -= h
        numeric[index] = (loss_fn(**{**arrays, name: up}) - loss_fn(**{**arrays, name: down})) / (
            2 * h
        )
    value = ic.evaluate(gradient, **arrays, out="ab")
    np.testing.assert_allclose(value, numeric, rtol=1e-6, atol=1e-8)
print("∂loss/∂Q = dS K/√D, ∂loss/∂K = dSᵀ Q/√D, ∂loss/∂V = Pᵀ G match NumPy and finite differences")
