"""Results never share memory with the inputs, with constants or with each other (issue 15).

Every kind of result is overwritten after it comes back: an input returned as it is, a
transpose of one, a δ-embedded or broadcast array, a derivative that is a δ only, a
scalar, a constant (ε, a number, a vanished derivative), several results of one compile.
The inputs must keep their values, and the next call must give the same results as the
first. On NumPy, on PyTorch where it is installed, and for generated code. JAX arrays are
immutable, so nothing can be written into them.
"""

from __future__ import annotations

import numpy as np
import pytest

import indexcalc as ic
from indexcalc.plan import Copy

X = np.arange(1.0, 7.0).reshape(2, 3)
S = np.arange(1.0, 10.0).reshape(3, 3)
V = np.array([0.5, -1.5, 2.0])

# (what the case is, expressions, their output orders, arrays, dims)
CASES = [
    ("an input as it is", ["X_ij"], ["ij"], {"X": X}, {}),
    ("an input transposed", ["X_ij"], ["ji"], {"X": X}, {}),
    ("an input indexed transposed, out in its order", ["X_ji"], ["ji"], {"X": X}, {}),
    ("a derivative that is an input", [ic.diff("X_lk G_lk", "G_sp")], ["sp"], {"X": X}, {}),
    ("an unsimplified δ renaming an input", [ic.parse("δ_in X_nj")], ["ij"], {"X": X}, {}),
    ("a δ-embedded input", [ic.parse("S_ij ⊙ δ_ij")], ["ij"], {"S": S}, {}),
    ("an input broadcast along ones", [ic.simplify("x_i y_j / y_j")], ["ij"], {"x": V, "y": V}, {}),
    ("a derivative that is δ only", [ic.diff("x_i", "x_k")], ["ik"], {"x": V}, {}),
    ("a scalar input", ["a"], [""], {"a": np.array(2.5)}, {}),
    ("a computed scalar", ["x_i x_i"], [""], {"x": V}, {}),
    ("log of exp of an input", ["log(exp(x_i))"], ["i"], {"x": V}, {}),
    ("a constant ε", ["eps_ijk"], ["ijk"], {}, {}),
    ("a number", ["2"], [""], {}, {}),
    ("a vanished derivative", [ic.diff("x_i", "y_k")], ["ik"], {"x": V, "y": V}, {}),
    ("a δ alone, sized by dims", ["δ_ij"], ["ij"], {}, {"i": 3, "j": 3}),
    (
        "several results, some the same array",
        ["X_ij", "X_ij", "X_ji", "tanh(X_ij)", "tanh(X_ij)", "tanh(X_ij)"],
        ["ij", "ji", "ij", "ij", "ij", "ji"],
        {"X": X},
        {},
    ),
    ("one number twice", ["3", "3"], ["", ""], {}, {}),
]

IDS = [case[0] for case in CASES]


def _numpy(value) -> np.ndarray:
    return value.cpu().numpy().copy() if hasattr(value, "cpu") else np.array(value)


def _overwrite(result) -> None:
    if hasattr(result, "fill_"):
        result.fill_(123.0)
    else:
        result[...] = 123.0


def _check_results_are_their_own(call, inputs) -> None:
    """Overwrite what `call` returns, one result at a time: the other results, the inputs
    and the next call's results are untouched."""
    saved = {name: _numpy(a) for name, a in inputs.items()}
    first = call()
    expected = [_numpy(r) for r in first]
    for k, result in enumerate(first):
        _overwrite(result)
        for j in range(k + 1, len(first)):
            np.testing.assert_array_equal(_numpy(first[j]), expected[j], err_msg=f"{j} after {k}")
    for name, array in inputs.items():
        np.testing.assert_array_equal(_numpy(array), saved[name], err_msg=f"input {name}")
    second = call()
    for k, (result, value) in enumerate(zip(second, expected, strict=True)):
        np.testing.assert_array_equal(_numpy(result), value, err_msg=f"result {k}")
        _overwrite(result)  # the second call's results are their own too
    for k, (result, value) in enumerate(zip(call(), expected, strict=True)):
        np.testing.assert_array_equal(_numpy(result), value, err_msg=f"result {k}, third call")


@pytest.mark.parametrize(("case", "exprs", "outs", "arrays", "dims"), CASES, ids=IDS)
def test_numpy_results_are_new_arrays(case, exprs, outs, arrays, dims):
    arrays = {name: a.copy() for name, a in arrays.items()}
    f = ic.compile(exprs, list(outs), dims=dims)
    _check_results_are_their_own(lambda: f(arrays), arrays)


@pytest.mark.parametrize(("case", "exprs", "outs", "arrays", "dims"), CASES, ids=IDS)
def test_evaluate_results_are_new_arrays(case, exprs, outs, arrays, dims):
    arrays = {name: a.copy() for name, a in arrays.items()}

    def call():
        return [ic.evaluate(e, arrays, out=o, dims=dims) for e, o in zip(exprs, outs, strict=True)]

    _check_results_are_their_own(call, arrays)


@pytest.mark.parametrize(("case", "exprs", "outs", "arrays", "dims"), CASES, ids=IDS)
def test_torch_results_are_new_tensors(case, exprs, outs, arrays, dims):
    torch = pytest.importorskip("torch")
    tensors = {name: torch.tensor(a) for name, a in arrays.items()}
    f = ic.compile(exprs, list(outs), dims=dims, backend="torch")
    _check_results_are_their_own(lambda: f(tensors), tensors)


@pytest.mark.parametrize(("case", "exprs", "outs", "arrays", "dims"), CASES, ids=IDS)
def test_generated_results_are_new_arrays(case, exprs, outs, arrays, dims):
    arrays = {name: a.copy() for name, a in arrays.items()}
    exprs = [ic.parse(e) if isinstance(e, str) else e for e in exprs]
    functions = []
    for expr, out in zip(exprs, outs, strict=True):
        namespace: dict = {}
        exec(ic.codegen(expr, name="f", out=out or None, dims=dims), namespace)
        function = namespace["f"]
        names = function.__code__.co_varnames[: function.__code__.co_argcount]
        functions.append((function, names))

    def call():
        return [np.asarray(f(**{n: arrays[n] for n in names})) for f, names in functions]

    _check_results_are_their_own(call, arrays)


def test_a_result_is_copied_only_where_it_could_share_memory():
    """A computed result is returned as it is: no copy where none is needed."""
    arrays = {"W": S, "x": V}
    for text in ("W_ij x_j", "tanh(W_ij x_j)", "exp(x_i) / sum_j(exp(x_j))", "x_i x_i"):
        plan = ic.compile(text).plan(arrays)
        assert not any(isinstance(s.operation, Copy) for s in plan.steps), text
    plan = ic.compile(["tanh(W_ij x_j)", "tanh(W_ij x_j)"]).plan(arrays)
    assert sum(isinstance(s.operation, Copy) for s in plan.steps) == 1  # the second one
