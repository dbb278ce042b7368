"""Derivatives evaluate on the arrays of the expression they came from (issue 13).

A derivative index takes its size from the variable's array (W's shape sizes a and b in
∂/∂W_ab); a free index only a δ still carries takes its size from the tensor axis that δ
runs over; a dimension δ_kk is the length of that axis. No `dims=` is needed where an
array exists: not for `evaluate`, `compile`, the command line, or generated code, which
reads sizes from its arguments' shapes and so works for any sizes.
"""

from __future__ import annotations

import numpy as np
import pytest
from finite_difference import numeric_derivative

import indexcalc as ic
from indexcalc.cli import main

# Axis letters of each array; SMALL and LARGE give them sizes, all different from one
# another so a wrongly sized index cannot go unnoticed.
SMALL = {"a": 3, "b": 2, "c": 4, "d": 5}
LARGE = {"a": 4, "b": 6, "c": 3, "d": 2}

CASES = {
    "linear layer": ("W_ij x_j", ["W_pq"], {"W": "ab", "x": "b"}, "i"),
    "batched layer": ("X_nd W_dk", ["W_pq"], {"X": "ca", "W": "ab"}, "kn"),
    "trace": ("A_ii", ["A_pq"], {"A": "aa"}, ""),
    "trace squared": ("A_ii A_jj", ["A_pq"], {"A": "aa"}, ""),
    "trace of (I - A)^2": ("(δ_ij - A_ij)(δ_ji - A_ji)", ["A_pq"], {"A": "aa"}, ""),
    "Hessian of (I - A)^2": ("(δ_ij - A_ij)(δ_ji - A_ji)", ["A_pq", "A_rs"], {"A": "aa"}, ""),
    "squared norm Hessian": ("x_i x_i", ["x_k", "x_l"], {"x": "a"}, ""),
    "matrix factorisation Hessian": (
        "(X_ij - U_ik V_kj)(X_ij - U_il V_lj)",
        ["V_pq", "V_rs"],
        {"X": "cd", "U": "ca", "V": "ad"},
        "",
    ),
    "ridge Hessian": (
        "(Y_ik - X_ij W_jk)(Y_ik - X_il W_lk) + 0.5 W_jk W_jk",
        ["W_pq", "W_rs"],
        {"Y": "cb", "X": "ca", "W": "ab"},
        "",
    ),
    "stiffness Hessian": ("0.5 C_ijkl E_ij E_kl", ["E_pq", "E_rs"], {"C": "abab", "E": "ab"}, ""),
    "attention Jacobian": (
        "P_ij = exp(S_ij) / sum_k(exp(S_ik)); P_ij V_je",
        ["S_pq"],
        {"S": "ab", "V": "bc"},
        "ei",
    ),
    "attention Jacobian by V": (
        "P_ij = exp(S_ij) / sum_k(exp(S_ik)); P_ij V_je",
        ["V_pq"],
        {"S": "ab", "V": "bc"},
        "ei",
    ),
}


def arrays_of(shapes: dict[str, str], sizes: dict[str, int], seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        name: rng.uniform(0.5, 1.5, [sizes[c] for c in letters])
        for name, letters in sorted(shapes.items())
    }


def letters(wrt: list[str]) -> str:
    return "".join(w.partition("_")[2] for w in wrt)


def reference(text: str, wrt: list[str], arrays, out: str) -> np.ndarray:
    """Central differences of the derivative one order lower, itself evaluated from the
    arrays alone."""
    lower = ic.diff(text, wrt[:-1]) if len(wrt) > 1 else ic.parse(text)
    axes = out + letters(wrt[:-1])
    return numeric_derivative(lower, wrt[-1].partition("_")[0], arrays, axes)


@pytest.mark.parametrize("case", CASES)
def test_derivative_evaluates_from_the_original_arrays_alone(case):
    text, wrt, shapes, out = CASES[case]
    arrays = arrays_of(shapes, SMALL)
    derivative = ic.diff(text, wrt)
    axes = out + letters(wrt)
    value = ic.evaluate(derivative, arrays, out=axes or None)
    np.testing.assert_allclose(value, reference(text, wrt, arrays, out), rtol=1e-5, atol=1e-6)
    compiled = ic.compile(derivative, axes or None)
    np.testing.assert_allclose(compiled(arrays), value, rtol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_generated_function_works_for_two_sizes(case):
    text, wrt, shapes, out = CASES[case]
    derivative = ic.diff(text, wrt)
    axes = out + letters(wrt)
    namespace: dict = {}
    exec(ic.codegen(derivative, name="f", out=axes or None), namespace)
    for sizes in (SMALL, LARGE):
        arrays = arrays_of(shapes, sizes, seed=1)
        expected = ic.evaluate(derivative, arrays, out=axes or None)
        names = namespace["f"].__code__.co_varnames[: namespace["f"].__code__.co_argcount]
        result = namespace["f"](**{name: arrays[name] for name in names})
        np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ["linear layer", "trace", "matrix factorisation Hessian"])
def test_command_line_evaluates_the_derivative_from_the_original_arrays(case, tmp_path):
    text, wrt, shapes, out = CASES[case]
    arrays = arrays_of(shapes, SMALL)
    for name, array in arrays.items():
        np.save(tmp_path / f"{name}.npy", array)
    given = [f"{name}={tmp_path / name}.npy" for name in arrays]
    axes = out + letters(wrt)
    saved = tmp_path / "result.npy"
    wrt_options = [option for w in wrt for option in ("--wrt", w)]
    args = ["eval", text, *wrt_options, *given, "--save", str(saved)]
    assert main([*args, "--out", axes] if axes else args) == 0
    expected = ic.evaluate(ic.diff(text, wrt), arrays, out=axes or None)
    np.testing.assert_allclose(np.load(saved), expected, rtol=1e-12)


def test_laplacian_comma_program_evaluates_from_the_vector_alone(tmp_path):
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert ic.evaluate("f = x_i x_i; f_{,ii}", x=x) == 8.0  # 2 n
    np.save(tmp_path / "x.npy", x)
    saved = tmp_path / "laplacian.npy"
    assert main(["eval", "f = x_i x_i; f_{,ii}", f"x={tmp_path}/x.npy", "--save", str(saved)]) == 0
    assert np.load(saved) == 8.0


def test_laplacian_of_a_quadratic_form_is_twice_the_trace():
    A = np.arange(9.0).reshape(3, 3)
    value = ic.evaluate("f = x_i A_ij x_j; f_{,ii}", A=A, x=np.ones(3))
    np.testing.assert_allclose(value, 2 * np.trace(A))


def test_derivative_index_not_sized_without_the_variables_array_names_it():
    derivative = ic.diff("W_ij x_j", "W_pq")
    with pytest.raises(ic.UnsizedIndexError, match="axis 0 of 'W', whose array was not given"):
        ic.evaluate(derivative, x=np.ones(2))
    dims = {"i": 3, "p": 3}
    assert ic.evaluate(derivative, x=np.ones(2), dims=dims).shape == (3, 3, 2)


def test_sizes_that_disagree_are_an_error_that_names_both_arrays():
    gradient = ic.diff("x_i A_ij x_j", "x_k")
    with pytest.raises(ic.EvaluationError, match=r"size 2 in x \(axis 0\) but size 3 in A"):
        ic.evaluate(gradient, A=np.ones((3, 3)), x=np.ones(2))
    gradient = ic.diff("(X_ij - U_ik V_kj)(X_ij - U_il V_lj)", "V_pq")
    with pytest.raises(ic.EvaluationError, match=r"size \d in [UX] .* but size \d in [UX]"):
        ic.evaluate(gradient, X=np.ones((5, 3)), U=np.ones((4, 2)), V=np.ones((2, 3)))


def test_unused_size_array_is_not_required_when_dims_or_other_arrays_size_everything():
    gradient = ic.diff("x_i A_ij x_j", "x_k")  # reads A and x: nothing to size from elsewhere
    assert ic.compile(gradient).size_inputs == ()
    jacobian = ic.diff("W_ij x_j", "W_pq")
    assert ic.compile(jacobian).size_inputs == ("W",)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_derivative_that_reads_no_array_takes_the_variables_dtype(dtype):
    jacobian = ic.compile(ic.diff("x_i", "x_k"))  # δ_ik over x's axis
    result = jacobian(x=np.ones(3, dtype=dtype))
    assert result.dtype == dtype
    np.testing.assert_array_equal(result, np.eye(3))
    other = np.float64 if dtype == np.float32 else np.float32
    assert jacobian(x=np.ones(3, dtype=other)).dtype == other  # planned again, not reused


def test_an_array_with_too_few_axes_for_a_derivatives_delta_is_an_evaluation_error():
    """∂W_ij/∂W_ab reads only W's shape; a W of the wrong rank says so, not a TypeError."""
    derivative = ic.diff("W_ij", "W_ab")
    with pytest.raises(ic.EvaluationError, match=r"array 'W' has 1 axes .* runs over its axis 1"):
        ic.evaluate(derivative, W=np.ones(2))
