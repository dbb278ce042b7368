"""What simplification keeps: values, by the δ and dimension rules; values wherever the
original is defined; and the shape of what vanishes.

Random products, sums and powers of δs (δ_ij, δ_ii, δ with repeated indices, dimensions
Σ_k δ_kk in powers and quotients) beside tensors are built as expression nodes, so every
einsum-valid product is reachable, not only what the parser writes. Each is simplified
and evaluated by `ic.evaluate`, and compared with `reference`, an einsum evaluation
written here that knows no simplification rule and no planner. A derivative that
vanishes is checked to be zeros of its shape through evaluation, generated code, printed
text and matrix notation.
"""

from __future__ import annotations

import inspect
import string
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import indexcalc as ic
from indexcalc.algebra import broadcast_constant
from indexcalc.expr import Delta, Expr, Func, Number, Power, Product, Sum, Tensor

# Two groups of index letters with their own sizes; a δ ties letters of one group only.
GROUPS = ("ijk", "lm")
TENSORS = {"x": (0,), "y": (1,), "A": (0, 0), "B": (0, 1)}  # each axis's group


def reference(node: Expr, arrays: dict[str, np.ndarray], sizes: dict[str, int]) -> np.ndarray:
    """`node`'s value over its sorted free indices, by its definition: a product is
    einsum over its factors with its `out`, a δ is 1 where its indices are equal."""
    if isinstance(node, Number):
        return np.asarray(float(node.value))
    if isinstance(node, Tensor):
        return _einsum_leaf(arrays[node.name], node.indices, node.free_indices)
    if isinstance(node, Delta):
        grid = np.indices([sizes[i] for i in node.indices])
        equal = np.all(grid == grid[0], axis=0).astype(float)
        return _einsum_leaf(equal, node.indices, node.free_indices)
    if isinstance(node, Product):
        letters = {name: string.ascii_letters[k] for k, name in enumerate(sorted(node.all_indices))}
        operands, specs = [], []
        for factor in node.factors:
            operands.append(reference(factor, arrays, sizes))
            specs.append("".join(letters[i] for i in factor.free_indices))
        target = "".join(letters[i] for i in node.free_indices)
        return np.einsum(f"{','.join(specs)}->{target}", *operands)
    if isinstance(node, Sum):
        return sum(_broadcast(reference(t, arrays, sizes), t, node, sizes) for t in node.terms)
    if isinstance(node, Power):
        base = reference(node.base, arrays, sizes)
        exponent = reference(node.exponent, arrays, sizes)
        with np.errstate(all="ignore"):
            return np.power(base, _broadcast(exponent, node.exponent, node.base, sizes))
    if isinstance(node, Func):
        return getattr(np, node.name)(reference(node.arg, arrays, sizes))
    raise TypeError(f"no reference for {type(node).__name__}")


def _einsum_leaf(array: np.ndarray, indices, free) -> np.ndarray:
    letters = {name: string.ascii_letters[k] for k, name in enumerate(sorted(set(indices)))}
    spec = "".join(letters[i] for i in indices)
    return np.einsum(f"{spec}->{''.join(letters[i] for i in free)}", array)


def _broadcast(value: np.ndarray, part: Expr, whole: Expr, sizes) -> np.ndarray:
    """`part`'s value over `whole`'s free indices (a number term is broadcast)."""
    target = whole.free_indices
    letters = {name: string.ascii_letters[k] for k, name in enumerate(target)}
    spec = "".join(letters[i] for i in part.free_indices)
    specs = [spec, *(letters[i] for i in target)]
    ones = [np.ones(sizes[i]) for i in target]
    return np.einsum(f"{','.join(specs)}->{''.join(letters[i] for i in target)}", value, *ones)


# -- random δ expressions --------------------------------------------------------------


@st.composite
def delta_expressions(draw, depth: int = 3) -> tuple[Expr, bool]:
    """A random expression of δs, dimensions and tensors, and whether it is positive
    everywhere (so that it may take a negative or fractional power, or divide)."""
    kinds = ["delta", "tensor", "dimension"]
    if depth > 0:
        kinds += ["product", "product", "sum", "power", "quotient", "function"]
    kind = draw(st.sampled_from(kinds))
    if kind == "delta":  # δ_ij, δ_ii, δ_iij, … over letters of one size
        group = draw(st.sampled_from(GROUPS))
        return Delta(draw(st.lists(st.sampled_from(group), min_size=2, max_size=3))), False
    if kind == "tensor":  # x_i, A_ij, A_ii (its diagonal), B_il
        name = draw(st.sampled_from(sorted(TENSORS)))
        return Tensor(name, [draw(st.sampled_from(GROUPS[g])) for g in TENSORS[name]]), True
    if kind == "dimension":  # Σ_k δ_kk, or a product of two
        letters = draw(st.lists(st.sampled_from(GROUPS[0] + GROUPS[1]), min_size=1, max_size=2))
        return Product([Delta((i, i)) for i in letters], ()), True
    if kind == "product":  # any einsum: an index in any number of factors, any kept
        parts = draw(st.lists(delta_expressions(depth - 1), min_size=1, max_size=4))
        if draw(st.booleans()):  # the same factor twice, as in n n
            parts.append(draw(st.sampled_from(parts)))
        if draw(st.booleans()):
            parts.append((Number(draw(st.sampled_from([-1, 2, Fraction(1, 2)]))), False))
        factors = [p for p, _ in parts]
        out = draw(_subset(frozenset().union(*(f.free for f in factors))))
        return Product(factors, out), all(positive for _, positive in parts)
    if kind == "quotient":  # f/f is 1 where f is defined and not 0: f is positive here
        part, positive = draw(delta_expressions(depth - 1))
        if not positive:
            part, positive = draw(delta_expressions(0).filter(lambda p: p[1]))
        return Product((part, Power(part, Number(-1))), draw(_subset(part.free))), True
    if kind == "function":
        part, _ = draw(delta_expressions(depth - 1))
        return Func(draw(st.sampled_from(["tanh", "cos", "sin"])), part), False
    if kind == "sum":
        (first, first_positive), (second, second_positive) = draw(
            st.tuples(delta_expressions(depth - 1), delta_expressions(depth - 1))
        )
        out = draw(_subset(first.free & second.free))
        terms = [t if t.free == set(out) else Product((t,), out) for t in (first, second)]
        if draw(st.booleans()):
            terms.append(Number(draw(st.sampled_from([1, 3]))))
        return Sum(terms), first_positive and second_positive
    base, positive = draw(delta_expressions(depth - 1))
    exponents = [2, 3, -1, -2, Fraction(1, 2), Fraction(-1, 2)] if positive else [2, 3]
    return Power(base, Number(draw(st.sampled_from(exponents)))), positive


def _subset(indices: frozenset[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(sorted(indices)), unique=True) if indices else st.just([])


@st.composite
def sizes_and_arrays(draw) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """A size for each group of letters, and positive arrays of those sizes."""
    group_sizes = {group: draw(st.integers(1, 4)) for group in GROUPS}
    sizes = {letter: group_sizes[group] for group in GROUPS for letter in group}
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    arrays = {
        name: rng.uniform(0.5, 2.0, size=tuple(group_sizes[GROUPS[g]] for g in axes))
        for name, axes in TENSORS.items()
    }
    return sizes, arrays


def _dimension(letter: str) -> Product:
    return Product((Delta((letter, letter)),), ())


def _sized(i: int, l: int) -> tuple[dict[str, int], dict[str, np.ndarray]]:  # noqa: E741
    sizes = dict.fromkeys(GROUPS[0], i) | dict.fromkeys(GROUPS[1], l)
    shapes = {"x": (i,), "y": (l,), "A": (i, i), "B": (i, l)}
    return sizes, {name: np.full(shape, 1.5) for name, shape in shapes.items()}


@settings(max_examples=max(100, settings.default.max_examples))
@given(delta_expressions(), sizes_and_arrays())
@example((Product((_dimension("l"), _dimension("l")), ()), True), _sized(2, 3))  # n n
@example(  # x_j x_j / (n n)
    (Product((Tensor("x", "j"), Tensor("x", "j"), Power(_dimension("i"), Number(-2))), ()), True),
    _sized(3, 2),
)
def test_simplified_delta_expression_has_the_value_of_its_definition(drawn, sized):
    """A δ is sized by dims= by name, so a rule that renames an index only a δ sizes, or
    folds a dimension into another, shows up as a wrong value or an error. (dims= names
    only the expression's own letters: a letter it lacks may name a summed index after
    renaming.)"""
    (expr, _), (sizes, arrays) = drawn, sized
    out = "".join(expr.free_indices) or None
    dims = {letter: sizes[letter] for letter in expr.all_indices}
    expected = reference(expr, arrays, sizes)
    unsimplified = ic.evaluate(expr, arrays, out=out, dims=dims)
    np.testing.assert_allclose(unsimplified, expected, rtol=1e-9)
    simplified = ic.simplify(expr)
    assert simplified.free == expr.free
    value = np.asarray(ic.evaluate(simplified, arrays, out=out, dims=dims))
    assert value.shape == expected.shape
    np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-9)  # sin of a big argument


# -- the rules the property found wrong --------------------------------------------------


def test_product_of_two_dimensions_is_the_square_of_the_size():
    simplified = ic.simplify("δ_ll δ_ll")  # (Σ_l δ_ll)(Σ_l δ_ll): each δ_ll is summed alone
    assert str(simplified) == "(δ_ll)^2"
    assert float(ic.evaluate(simplified, dims={"l": 3})) == 9
    assert float(ic.evaluate("δ_ll δ_ll", dims={"l": 3})) == 9


def test_defined_dimension_squared_divides_the_derivative():
    derivative = ic.diff("n = δ_ii; x_j x_j / (n n)", "x_k")
    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(ic.evaluate(derivative, x=x, dims={"i": 5}), 2 * x / 25)


def test_dimensions_of_two_indices_do_not_collect():
    # Σ_i δ_ii and Σ_l δ_ll are sized by name, so they may differ.
    assert float(ic.evaluate(ic.simplify("δ_ii + δ_ll"), dims={"i": 2, "l": 3})) == 5


def test_held_ones_summed_twice_keep_their_index_size():
    simplified = ic.simplify("sum_l(δ_ll + 1) sum_l(δ_ll + 1)")  # (2n)(2n)
    assert float(ic.evaluate(simplified, dims={"l": 3})) == 36


def test_dimension_beside_a_diagonal_counts_once_per_factor():
    A = np.arange(1.0, 10.0).reshape(3, 3)
    simplified = ic.simplify("A_ii δ_jj")  # tr A times the size of j
    assert float(ic.evaluate(simplified, A=A, dims={"j": 4})) == 4 * np.trace(A)


# -- domain ---------------------------------------------------------------------------------

DOMAIN = [
    # (expression, a point where it is defined, a point where only the simplified is)
    ("x_i / x_i", {"x": np.array([0.5, -2.0])}, {"x": np.array([0.0, 1.0])}),
    ("x_i ⊙ x_i^-1 ⊙ y_i", {"x": np.array([3.0]), "y": np.array([2.0])}, None),
    ("(d^-0.5)^2", {"d": np.float64(4.0)}, {"d": np.float64(-4.0)}),
    ("(d^0.5)^2", {"d": np.float64(2.0)}, {"d": np.float64(-2.0)}),
    ("d^-1 d^2", {"d": np.float64(-3.0)}, {"d": np.float64(0.0)}),
    ("0 log(d)", {"d": np.float64(2.0)}, {"d": np.float64(0.0)}),
]


@pytest.mark.parametrize(("text", "defined", "undefined"), DOMAIN)
def test_simplification_keeps_values_where_the_original_is_defined(text, defined, undefined):
    """Simplification may extend an expression past where it is defined (docs/language.md,
    Domain); wherever the original has a value, the simplified form has the same one."""
    simplified = ic.simplify(text)
    np.testing.assert_allclose(ic.evaluate(simplified, defined), ic.evaluate(text, defined))
    if undefined is not None:
        with np.errstate(all="ignore"):
            original = np.asarray(ic.evaluate(text, undefined))
        assert not np.all(np.isfinite(original))
        assert np.all(np.isfinite(ic.evaluate(simplified, undefined)))


# -- a derivative that vanishes keeps its shape ------------------------------------------------

RNG = np.random.default_rng(5)
SHAPED = {
    "a": np.float64(1.5),
    "w": np.float64(0.5),
    "x": RNG.uniform(0.5, 2.0, 3),
    "y": RNG.uniform(0.5, 2.0, 4),
    "A": RNG.uniform(0.5, 2.0, (4, 3)),
    "W": RNG.uniform(0.5, 2.0, (2, 5)),
}

VANISHING = [
    # (expression, variables, the shape of the derivative)
    ("a", "w", ()),
    ("a", "x_j", (3,)),
    ("a", "W_gh", (2, 5)),
    ("y_i", "x_k", (4, 3)),
    ("A_ij x_j", "W_gh", (2, 5, 4)),  # axes g, h, i
    ("w y_i", ["w", "w"], (4,)),
    ("x_i x_i", ["x_k", "x_l", "x_m"], (3, 3, 3)),
    ("y_i A_ij x_j", ["x_k", "x_l"], (3, 3)),
    ("sign(A_ij x_j)", "x_k", (4, 3)),
]


def _vanishing(text: str, wrt) -> ic.Expr:
    derivative = ic.diff(text, wrt)
    assert broadcast_constant(derivative) == 0, str(derivative)
    return derivative


@pytest.mark.parametrize(("text", "wrt", "shape"), VANISHING)
def test_vanishing_derivative_evaluates_to_zeros_of_its_shape(text, wrt, shape):
    derivative = _vanishing(text, wrt)
    assert len(derivative.free) == len(shape)
    value = np.asarray(ic.evaluate(derivative, SHAPED))
    np.testing.assert_array_equal(value, np.zeros(shape))


@pytest.mark.parametrize(("text", "wrt", "shape"), VANISHING)
def test_vanishing_derivative_generates_code_for_zeros_of_its_shape(text, wrt, shape):
    derivative = _vanishing(text, wrt)
    namespace: dict = {}
    exec(compile(ic.codegen(derivative), "<generated>", "exec"), namespace)
    function = namespace["grad"]
    arguments = {name: SHAPED[name] for name in inspect.signature(function).parameters}
    np.testing.assert_array_equal(np.asarray(function(**arguments)), np.zeros(shape))


@pytest.mark.parametrize(("text", "wrt", "shape"), VANISHING)
def test_vanishing_derivative_prints_text_that_parses_back_to_zeros(text, wrt, shape):
    derivative = _vanishing(text, wrt)
    dims = dict(zip(derivative.free_indices, shape, strict=True))
    for printed in (str(derivative), derivative.ascii()):
        reparsed = ic.parse(printed)
        assert reparsed.free == derivative.free
        np.testing.assert_array_equal(ic.evaluate(reparsed, dims=dims), np.zeros(shape))
    assert ic.simplify(str(derivative)).free == derivative.free


@pytest.mark.parametrize(("text", "wrt", "shape"), [v for v in VANISHING if len(v[2]) <= 2])
def test_vanishing_derivative_in_matrix_notation_is_zeros_of_its_shape(text, wrt, shape):
    # 0 times ones: 𝟏 for a column, 𝟏 𝟏ᵀ for a matrix.
    expected = {0: "0", 1: "0 𝟏", 2: "0 𝟏 𝟏ᵀ"}[len(shape)]
    assert ic.to_matrix(_vanishing(text, wrt)) == expected


@pytest.mark.parametrize(
    ("text", "shape"),
    [("(a)_{,j}", (3,)), ("f_i = y_i; f_{i,k}", (4, 3)), ("(x_i - x_i)_{,k}", (3, 3))],
)
def test_vanishing_comma_derivative_keeps_its_indices(text, shape):
    simplified = ic.simplify(text)
    assert broadcast_constant(simplified) == 0
    np.testing.assert_array_equal(np.asarray(ic.evaluate(simplified, SHAPED)), np.zeros(shape))
    np.testing.assert_array_equal(np.asarray(ic.evaluate(text, SHAPED)), np.zeros(shape))


@pytest.mark.parametrize(("text", "free"), [("x_i - x_i", "i"), ("0 A_ij", "ij"), ("y_i ⊙ 0", "i")])
def test_sum_or_product_that_vanishes_keeps_its_indices(text, free):
    simplified = ic.simplify(text)
    assert broadcast_constant(simplified) == 0
    assert simplified.free_indices == tuple(free)
    shape = np.shape(ic.evaluate(text, SHAPED))
    np.testing.assert_array_equal(ic.evaluate(simplified, SHAPED), np.zeros(shape))


# -- a δ keeps the size its indices have in the whole expression ----------------------------


def test_a_trace_sized_by_a_tensor_elsewhere_keeps_that_size_in_the_derivative():
    """k in δ_kk is sized by x_k in another factor; ∂/∂x_p removes x, not k's size."""
    rng = np.random.default_rng(3)
    x, B, b = rng.normal(size=3), rng.normal(size=(4, 4)), 0.7
    text = "0.5 Σ_k(x_k) (δ_li B_li) (δ_kk - b)"
    assert np.isclose(ic.evaluate(text, x=x, B=B, b=b), 0.5 * x.sum() * np.trace(B) * (3 - b))
    gradient = ic.evaluate(ic.diff(text, "x_p"), x=x, B=B, b=b)
    np.testing.assert_allclose(gradient, np.full(3, 0.5 * np.trace(B) * (3 - b)))


def test_a_trace_sized_by_an_epsilon_keeps_that_size_when_the_epsilon_vanishes():
    """δ_mk ε_km is 0, so ε (rank 2, sizing m and k) is gone from the simplified form."""
    text = "0.1 δ_mk (-δ_km - ε_km / 2)"
    assert np.isclose(ic.evaluate(text), -0.2)
    assert np.isclose(ic.evaluate(ic.simplify(text)), -0.2)


def test_a_sum_tied_by_a_delta_to_a_free_index_keeps_its_size_when_simplified():
    """n has no size of its own: δ_kn ties it to k, which dims sizes. Simplified, Σ_n 1
    no longer holds that δ, and must still count k's values, from dims for k alone."""
    text = "Σ_n(δ_kn - 0.5)"  # 1 - n/2 for each k
    for size in (3, 4):
        expected = np.full(size, 1 - size / 2)
        np.testing.assert_array_equal(ic.evaluate(text, dims={"k": size}), expected)
        np.testing.assert_array_equal(ic.evaluate(ic.simplify(text), dims={"k": size}), expected)


def test_a_derivative_of_a_sum_tied_by_a_delta_evaluates_with_the_same_dims():
    """∂/∂c of c Σ_m(δ_nm + 2) x_l is (1 + 2 n) x_l for each n: m's size is n's."""
    x = np.array([0.5, -1.0, 2.0])
    text = "c Σ_m(δ_nm + 2) x_l"
    assert ic.evaluate(text, c=1.0, x=x, dims={"n": 2}, out="nl").shape == (2, 3)
    derivative = ic.diff(text, "c")
    value = ic.evaluate(derivative, c=1.0, x=x, dims={"n": 2}, out="nl")
    np.testing.assert_allclose(value, np.tile(5 * x, (2, 1)))


def test_a_vanished_derivative_takes_its_index_size_from_the_variable_only():
    """p is summed inside the expression over B's axis of size 4; the derivative's p runs
    over x's 5 values."""
    rng = np.random.default_rng(4)
    arrays = {"B": rng.normal(size=(3, 4)), "y": np.ones(3), "z": np.ones(2), "x": np.ones(5)}
    zeros = ic.evaluate(ic.diff("Σ_{jp}(B_jp y_j) z_i", "x_p"), arrays, out="ip")
    assert zeros.shape == (2, 5) and not zeros.any()
