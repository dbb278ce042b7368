"""Stable evaluation (issue 15): patterns that overflow as written are computed through logs.

log Σ exp, the softmax quotient, log σ, log(1 − σ), log1p(exp) and log(1 + exp) give
finite values at |x| = 1000, equal to references written here with NumPy's stable
functions (and to scipy.special where it is installed), and so do their derivatives. On
ordinary inputs they equal the formula as written. On NumPy, PyTorch and JAX where they
are installed, and in generated code. The printed expression does not change, and a
softmax of a vector makes no array larger than the vector.
"""

from __future__ import annotations

import string
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import indexcalc as ic
from indexcalc import plan as plan_module
from indexcalc.backends import library_of
from indexcalc.expr import MINUS_ONE, ONE, Expr, Func, Number, Power, Product, Sum, Tensor
from indexcalc.plan import Apply, LogSumExp

LARGE = np.array([1000.0, -1000.0, 999.5, 0.25, -998.0, 3.0])
ORDINARY = np.array([0.3, -1.2, 2.5, 0.0, -0.7, 1.1])
MATRIX = np.array([[1000.0, -1000.0, 2.0], [-999.0, -1000.0, -998.5], [0.5, 1.5, -0.25]])
TARGET = np.array([0.0, 0.0, 1.0, 0.0, 0.5, 0.0])
LABELS = np.array([0.0, 1.0, 0.0, 0.5])  # W's rows
W = np.array(
    [[300.0, -200.0, 10.0], [-250.0, 400.0, 1.0], [5.0, 0.5, -300.0], [100.0, 100.0, 100.0]]
)
FEATURES = np.array([2.0, -1.5, 3.0])


def softmax(x):
    return np.exp(x - np.logaddexp.reduce(x))


def log_sigmoid(x):
    return -np.logaddexp(0, -x)


def sigmoid(x):
    return np.exp(log_sigmoid(x))


# (the notation, arrays by name, output order, the stable closed form)
VALUES = {
    "log-sum-exp": ("log(sum_i(exp(x_i)))", "", lambda x: np.logaddexp.reduce(x)),
    "log-sum-exp of each row": (
        "log(sum_j(exp(A_ij)))",
        "i",
        lambda A: np.logaddexp.reduce(A, axis=1),
    ),
    "scaled log-sum-exp": (
        "log(sum_i(2 exp(x_i)))",
        "",
        lambda x: np.log(2) + np.logaddexp.reduce(x),
    ),
    "softmax": ("exp(x_i) / sum_j(exp(x_j))", "i", softmax),
    "softmax of a product": (
        "exp(W_ij v_j) / sum_k(exp(W_kl v_l))",
        "i",
        lambda W, v: softmax(W @ v),
    ),
    "log of a softmax": (
        "log(exp(x_i) / sum_j(exp(x_j)))",
        "i",
        lambda x: x - np.logaddexp.reduce(x),
    ),
    "cross-entropy": (
        "-sum_i(t_i log(exp(x_i) / sum_j(exp(x_j))))",
        "",
        lambda x, t: -t @ (x - np.logaddexp.reduce(x)),
    ),
    "log σ": ("log(sigmoid(x_i))", "i", log_sigmoid),
    "log(1 − σ)": ("log(1 - sigmoid(x_i))", "i", lambda x: log_sigmoid(-x)),
    "log1p(exp)": ("log1p(exp(x_i))", "i", lambda x: np.logaddexp(0, x)),
    "log(1 + exp)": ("log(1 + exp(x_i))", "i", lambda x: np.logaddexp(0, x)),
    "log of a sum of exponentials": (
        "log(exp(x_i) + exp(-x_i) + 2)",
        "i",
        lambda x: np.logaddexp.reduce([x, -x, np.full_like(x, np.log(2))], axis=0),
    ),
}

# (the notation, variable, output order, the stable closed form of the derivative)
DERIVATIVES = {
    "of log-sum-exp": ("log(sum_i(exp(x_i)))", "x_k", "k", softmax),
    "of the softmax": (
        "exp(x_i) / sum_j(exp(x_j))",
        "x_k",
        "ik",
        lambda x: np.diag(softmax(x)) - np.outer(softmax(x), softmax(x)),
    ),
    "of the cross-entropy": (
        "-sum_i(t_i log(exp(x_i) / sum_j(exp(x_j))))",
        "x_k",
        "k",
        lambda x, t: softmax(x) * t.sum() - t,
    ),
    "of the cross-entropy of a linear layer": (
        "-sum_i(y_i log(exp(W_ij v_j) / sum_k(exp(W_kl v_l))))",
        "W_pq",
        "pq",
        lambda W, v, y: np.outer(softmax(W @ v) * y.sum() - y, v),
    ),
    "of log σ": ("log(sigmoid(x_i))", "x_k", "ik", lambda x: np.diag(sigmoid(-x))),
    "of log(1 − σ)": ("log(1 - sigmoid(x_i))", "x_k", "ik", lambda x: -np.diag(sigmoid(x))),
    "of log1p(exp)": ("log1p(exp(x_i))", "x_k", "ik", lambda x: np.diag(sigmoid(x))),
    "of log(1 + exp)": ("log(1 + exp(x_i))", "x_k", "ik", lambda x: np.diag(sigmoid(x))),
}


def _arrays(inputs: str, large: bool) -> dict[str, np.ndarray]:
    """The arrays the closed form's parameters name: large (|x| up to 1000) or ordinary."""
    if large:
        pool = {"x": LARGE, "A": MATRIX, "W": W, "v": FEATURES}
    else:
        pool = {"x": ORDINARY, "A": MATRIX / 1000, "W": W / 300, "v": FEATURES}
    pool |= {"t": TARGET, "y": LABELS}
    return {name: pool[name] for name in inputs}


def _parameters(function) -> tuple[str, ...]:
    return function.__code__.co_varnames[: function.__code__.co_argcount]


def _expected(function, arrays):
    return function(*(arrays[name] for name in _parameters(function)))


def _generated(expr, out, arrays):
    namespace: dict = {}
    exec(ic.codegen(expr, name="f", out=out or None), namespace)
    function = namespace["f"]
    return function(**{name: arrays[name] for name in _parameters(function)})


def _assert_finite_and_close(result, expected, rtol=1e-12):
    result = np.asarray(result)
    assert np.all(np.isfinite(result)), result
    np.testing.assert_allclose(result, expected, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("key", VALUES)
def test_values_at_large_inputs_are_finite_and_equal_the_stable_closed_form(key):
    text, out, closed_form = VALUES[key]
    arrays = _arrays(_parameters(closed_form), large=True)
    expected = _expected(closed_form, arrays)
    _assert_finite_and_close(ic.evaluate(text, arrays, out=out or None), expected)
    _assert_finite_and_close(_generated(ic.parse(text), out, arrays), expected)


@pytest.mark.parametrize("key", DERIVATIVES)
def test_derivatives_at_large_inputs_are_finite_and_equal_the_stable_closed_form(key):
    text, wrt, out, closed_form = DERIVATIVES[key]
    derivative = ic.diff(text, wrt)
    arrays = _arrays(_parameters(closed_form), large=True)
    expected = _expected(closed_form, arrays)
    _assert_finite_and_close(ic.evaluate(derivative, arrays, out=out), expected)
    _assert_finite_and_close(_generated(derivative, out, arrays), expected)


@pytest.mark.parametrize("key", list(DERIVATIVES))
@pytest.mark.parametrize("show", [str, ic.to_ascii])
def test_printed_derivatives_reparsed_are_stable_too(key, show):
    """What a user copies from the printed derivative nests its products its own way;
    evaluated and generated, it is stable all the same. (The cross-entropy gradients
    printed Σ_i(t_i e_i / (e_i / Σ_j e_j)) = Σ_i(t_i) Σ_j e_j, which overflows for
    |x| ≥ 710, until log(u / v) became log(u) - log(v) for positive u and v.)"""
    text, wrt, out, closed_form = DERIVATIVES[key]
    reparsed = ic.parse(show(ic.diff(text, wrt)))
    arrays = _arrays(_parameters(closed_form), large=True)
    expected = _expected(closed_form, arrays)
    _assert_finite_and_close(ic.evaluate(reparsed, arrays, out=out), expected, rtol=1e-9)
    _assert_finite_and_close(_generated(reparsed, out, arrays), expected, rtol=1e-9)


def _naive(text):
    """The notation as NumPy computes it, formula by formula, for ordinary inputs."""
    return {
        "log(sum_i(exp(x_i)))": lambda x: np.log(np.sum(np.exp(x))),
        "log(sum_j(exp(A_ij)))": lambda A: np.log(np.sum(np.exp(A), axis=1)),
        "log(sum_i(2 exp(x_i)))": lambda x: np.log(np.sum(2 * np.exp(x))),
        "exp(x_i) / sum_j(exp(x_j))": lambda x: np.exp(x) / np.sum(np.exp(x)),
        "exp(W_ij v_j) / sum_k(exp(W_kl v_l))": lambda W, v: np.exp(W @ v) / np.exp(W @ v).sum(),
        "log(exp(x_i) / sum_j(exp(x_j)))": lambda x: np.log(np.exp(x) / np.sum(np.exp(x))),
        "-sum_i(t_i log(exp(x_i) / sum_j(exp(x_j))))": (
            lambda x, t: -t @ np.log(np.exp(x) / np.sum(np.exp(x)))
        ),
        "log(sigmoid(x_i))": lambda x: np.log(1 / (1 + np.exp(-x))),
        "log(1 - sigmoid(x_i))": lambda x: np.log(1 - 1 / (1 + np.exp(-x))),
        "log1p(exp(x_i))": lambda x: np.log1p(np.exp(x)),
        "log(1 + exp(x_i))": lambda x: np.log(1 + np.exp(x)),
        "log(exp(x_i) + exp(-x_i) + 2)": lambda x: np.log(np.exp(x) + np.exp(-x) + 2),
    }[text]


@pytest.mark.parametrize("key", VALUES)
def test_values_at_ordinary_inputs_equal_the_formula_as_written(key):
    text, out, _ = VALUES[key]
    naive = _naive(text)
    arrays = _arrays(_parameters(naive), large=False)
    expected = _expected(naive, arrays)
    np.testing.assert_allclose(ic.evaluate(text, arrays, out=out or None), expected, rtol=1e-12)
    np.testing.assert_allclose(_generated(ic.parse(text), out, arrays), expected, rtol=1e-12)


@pytest.mark.parametrize("key", DERIVATIVES)
def test_derivatives_at_ordinary_inputs_equal_finite_differences(key):
    text, wrt, out, _ = DERIVATIVES[key]
    expr = ic.parse(text)
    variable = wrt.split("_")[0]
    arrays = _arrays(sorted(expr.tensor_names), large=False)
    derivative = ic.evaluate(ic.diff(expr, wrt), arrays, out=out)
    value_out = "".join(expr.free_indices)
    step = 1e-6
    base = arrays[variable]
    columns = []
    for position in np.ndindex(base.shape):
        shifted = {}
        for sign in (1, -1):
            moved = base.copy()
            moved[position] += sign * step
            shifted[sign] = ic.evaluate(expr, {**arrays, variable: moved}, out=value_out or None)
        columns.append((shifted[1] - shifted[-1]) / (2 * step))
    numeric = np.moveaxis(np.array(columns), 0, -1).reshape(derivative.shape)
    np.testing.assert_allclose(derivative, numeric, rtol=1e-6, atol=1e-8)


def test_values_match_scipy_special():
    special = pytest.importorskip("scipy.special")
    x, A = LARGE, MATRIX
    checks = [
        ("log(sum_i(exp(x_i)))", None, special.logsumexp(x)),
        ("log(sum_j(exp(A_ij)))", "i", special.logsumexp(A, axis=1)),
        ("exp(x_i) / sum_j(exp(x_j))", "i", special.softmax(x)),
        ("log(exp(x_i) / sum_j(exp(x_j)))", "i", special.log_softmax(x)),
        ("log(sigmoid(x_i))", "i", special.log_expit(x)),
        ("log(1 - sigmoid(x_i))", "i", special.log_expit(-x)),
    ]
    for text, out, expected in checks:
        _assert_finite_and_close(ic.evaluate(text, x=x, A=A, out=out), expected)


def _backend_cases():
    for key, (text, out, closed_form) in VALUES.items():
        yield key, ic.parse(text), out, closed_form
    for key, (text, wrt, out, closed_form) in DERIVATIVES.items():
        yield f"derivative {key}", ic.diff(text, wrt), out, closed_form


def _library(backend: str):
    """How to make an array of `backend` from NumPy's, and how to read one back."""
    if backend == "torch":
        torch = pytest.importorskip("torch")
        return torch.tensor, lambda result: result.numpy()
    da = pytest.importorskip("dask.array")
    return da.from_array, lambda result: result.compute(scheduler="synchronous")


@pytest.mark.parametrize("backend", ["torch", "dask"])
def test_other_backends_evaluate_every_pattern_stably(backend):
    make, read = _library(backend)
    for key, expr, out, closed_form in _backend_cases():
        arrays = _arrays(_parameters(closed_form), large=True)
        given = {name: make(a) for name, a in arrays.items()}
        result = ic.evaluate(expr, given, out=out or None, backend=backend)
        assert library_of(result) == backend, key
        _assert_finite_and_close(read(result), _expected(closed_form, arrays))


def test_jax_evaluates_every_pattern_stably(jax):
    for key, expr, out, closed_form in _backend_cases():
        arrays = _arrays(_parameters(closed_form), large=True)
        given = {name: jax.numpy.asarray(a) for name, a in arrays.items()}
        result = ic.evaluate(expr, given, out=out or None, backend="jax")
        assert isinstance(result, jax.Array), key
        _assert_finite_and_close(np.asarray(result), _expected(closed_form, arrays))


def test_jax_gradient_of_a_compiled_log_sum_exp_is_the_softmax(jax):
    f = ic.compile("log(sum_i(exp(x_i)))", backend="jax")
    gradient = jax.grad(lambda x: f(x=x))(jax.numpy.asarray(LARGE))
    _assert_finite_and_close(np.asarray(gradient), softmax(LARGE))


def test_float32_inputs_stay_float32_and_finite():
    x = LARGE.astype(np.float32)
    for text, out in [("log(sum_i(exp(x_i)))", None), ("exp(x_i) / sum_j(exp(x_j))", "i")]:
        result = ic.evaluate(text, x=x, out=out)
        assert result.dtype == np.float32
        assert np.all(np.isfinite(result))
    expected = np.logaddexp.reduce(LARGE)
    np.testing.assert_allclose(ic.evaluate("log(sum_i(exp(x_i)))", x=x), expected, rtol=1e-6)


def test_infinite_inputs_give_what_the_limit_is():
    x = np.array([-np.inf, -np.inf])
    with np.errstate(divide="ignore"):  # log 0, as NumPy's own
        assert ic.evaluate("log(sum_i(exp(x_i)))", x=x) == -np.inf
    assert ic.evaluate("log(sum_i(exp(x_i)))", x=np.array([np.inf, 1.0])) == np.inf


def test_printed_expressions_do_not_change():
    for text, _, _ in VALUES.values():
        expr = ic.simplify(text)
        printed = str(expr)
        plan = ic.compile(expr).plan(x=LARGE, A=MATRIX, t=TARGET, W=W, v=FEATURES, y=LABELS)
        assert str(expr) == printed == str(ic.simplify(text))
        assert plan.steps


def test_log_sum_exp_is_one_step_and_never_exponentiates_its_argument_as_written():
    plan = ic.compile("log(sum_i(exp(x_i)))").plan(x=LARGE)
    kinds = [type(s.operation) for s in plan.steps]
    assert kinds.count(LogSumExp) == 1
    assert Apply not in kinds


@pytest.mark.parametrize("n", [10, 1000])
def test_softmax_of_a_vector_makes_no_larger_array_than_the_vector(n):
    x = np.linspace(-1000, 1000, n)
    f = ic.compile("exp(x_i) / sum_j(exp(x_j))")
    assert f.cost(x=x).largest_intermediate == n
    gradient = ic.compile(ic.diff("log(sum_i(exp(x_i)))", "x_k"))
    assert gradient.cost(x=x).largest_intermediate == n
    np.testing.assert_allclose(f(x=x), softmax(x), rtol=1e-12, atol=1e-300)


def test_cross_entropy_gradient_makes_no_array_larger_than_its_result():
    n = 50
    arrays = {"W": np.ones((n, n)), "y": np.ones(n), "v": np.ones(n)}
    text, wrt, out, _ = DERIVATIVES["of the cross-entropy of a linear layer"]
    f = ic.compile(ic.diff(text, wrt), out)
    assert f.cost(arrays).largest_intermediate == n * n


def test_complex_inputs_give_the_formula_as_written():
    z = np.array([0.3 + 0.2j, -1 + 1j, 0.5])
    checks = [
        ("log(sum_i(exp(x_i)))", None, np.log(np.exp(z).sum())),
        ("exp(x_i) / sum_j(exp(x_j))", "i", np.exp(z) / np.exp(z).sum()),
        ("log(1 + exp(x_i))", "i", np.log(1 + np.exp(z))),
        ("log(sigmoid(x_i))", "i", np.log(1 / (1 + np.exp(-z)))),
    ]
    for text, out, expected in checks:
        np.testing.assert_allclose(ic.evaluate(text, x=z, out=out), expected, rtol=1e-12)


def test_a_summed_index_whose_exponentials_cancel_still_counts_its_size():
    """Σ_l e^{x_l} (e^{x_l})⁻¹ is n_l: the logs cancel, the sum over l stays."""
    x, y = np.array([0.9, -0.5, 1000.0]), np.array([0.25, -1.0])
    expected = {
        "exp(x_l) exp(x_l)^-1": 3.0,
        "log(exp(x_l) exp(x_l)^-1)": np.log(3.0),
        "log(exp(x_l) exp(x_l)^-1 exp(y_k))": np.log(3.0) + y,
    }
    for text, value in expected.items():
        expr = ic.simplify(text)
        out = "".join(expr.free_indices)
        np.testing.assert_allclose(ic.evaluate(expr, x=x, y=y), value, rtol=1e-12)
        generated = _generated(expr, out, {"x": x, "y": y})
        np.testing.assert_allclose(generated, value, rtol=1e-12)


# -- random products and sums of exponentials, against their definition ----------------------

SIZES = {"i": 3, "p": 3, "j": 2, "q": 2, "k": 4}  # i and p, j and q: one size, to rename
AXES = {"a": ("ip",), "b": ("jq",), "M": ("ip", "jq"), "N": ("jq", "k")}
RANDOM_ARRAYS = {
    name: np.random.default_rng(7).uniform(-1.5, 1.5, [SIZES[g[0]] for g in groups])
    for name, groups in AXES.items()
}


@st.composite
def tensors(draw) -> Tensor:
    name = draw(st.sampled_from(sorted(AXES)))
    return Tensor(name, [draw(st.sampled_from(group)) for group in AXES[name]])


def _subset(indices) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(sorted(indices)), unique=True) if indices else st.just([])


@st.composite
def positives(draw, depth: int) -> Expr:
    """A positive expression built from exponentials: exp, σ, 1 − σ, products (sums of
    exponentials, quotients), powers and sums of them, unsimplified."""
    kinds = ["exp", "exp", "sigmoid", "one minus sigmoid"]
    kinds += ["product", "product", "quotient", "power", "sum"] if depth > 0 else []
    kind = draw(st.sampled_from(kinds))
    if kind == "exp":
        tensor = draw(tensors())
        scale = draw(st.sampled_from([1, -1, 2]))
        return Func("exp", tensor if scale == 1 else Product((Number(scale), tensor), tensor.free))
    if kind == "sigmoid":
        return Func("sigmoid", draw(tensors()))
    if kind == "one minus sigmoid":
        sigmoid = Func("sigmoid", draw(tensors()))
        return Sum((ONE, Product((MINUS_ONE, sigmoid), sigmoid.free)))
    if kind == "power":
        exponent = draw(st.sampled_from([-2, -1, 2, Fraction(1, 2)]))
        return Power(draw(positives(depth - 1)), Number(exponent))
    if kind == "quotient":  # e / Σ e, or its inverse
        part = draw(positives(depth - 1))
        total = Product((part,), draw(_subset(part.free)))
        return Product((part, Power(total, MINUS_ONE)), part.free)
    if kind == "sum":
        first, second = draw(positives(depth - 1)), draw(positives(depth - 1))
        out = draw(_subset(first.free & second.free))
        terms = [t if t.free == set(out) else Product((t,), out) for t in (first, second)]
        return Sum([*terms, *([Number(2)] if draw(st.booleans()) else [])])
    factors = draw(st.lists(positives(depth - 1), min_size=1, max_size=3))
    if draw(st.booleans()):
        factors.append(Number(draw(st.sampled_from([2, Fraction(1, 3)]))))
    free = frozenset().union(*(f.free for f in factors))
    return Product(factors, draw(_subset(free)))


@st.composite
def stable_patterns(draw) -> Expr:
    part = draw(positives(2))
    kind = draw(st.sampled_from(["value", "log", "log1p", "weighted"]))
    if kind in ("log", "log1p"):
        return Func(kind, part)
    if kind == "weighted":  # a factor of unknown sign beside the exponentials
        tensor = draw(tensors())
        return Product((tensor, part), draw(_subset(tensor.free | part.free)))
    return part


def definition(node: Expr) -> np.ndarray:
    """`node`'s value over its sorted free indices, formula by formula as written."""
    if isinstance(node, Number):
        return np.asarray(float(node.value))
    if isinstance(node, Tensor):
        return RANDOM_ARRAYS[node.name].transpose(np.argsort(node.indices))
    if isinstance(node, Product):
        letters = {name: string.ascii_letters[k] for k, name in enumerate(sorted(node.all_indices))}
        specs = ["".join(letters[i] for i in f.free_indices) for f in node.factors]
        target = "".join(letters[i] for i in node.free_indices)
        return np.einsum(f"{','.join(specs)}->{target}", *map(definition, node.factors))
    if isinstance(node, Sum):
        shape = [SIZES[i] for i in node.free_indices]
        return sum(np.broadcast_to(definition(t), shape) for t in node.terms)
    if isinstance(node, Power):
        return definition(node.base) ** float(node.exponent.value)
    argument = definition(node.arg)
    return (
        1 / (1 + np.exp(-argument)) if node.name == "sigmoid" else getattr(np, node.name)(argument)
    )


@settings(max_examples=max(150, settings.default.max_examples), deadline=None)
@given(stable_patterns())
def test_stable_evaluation_of_random_exponentials_has_the_value_of_their_definition(expr):
    expected = definition(expr)
    out = "".join(expr.free_indices)
    scale = 1 + np.max(np.abs(expected), initial=0.0)
    result = ic.evaluate(expr, RANDOM_ARRAYS, out=out or None)
    np.testing.assert_allclose(result, expected, rtol=1e-9, atol=1e-12 * scale)
    generated = _generated(expr, out, RANDOM_ARRAYS)
    np.testing.assert_allclose(generated, expected, rtol=1e-9, atol=1e-12 * scale)


def test_looking_through_nested_products_is_linear_in_their_depth(monkeypatch):
    """999 signs nest 999 products; each is looked into at most a few levels deep, not
    to the bottom (which took 10 s for this expression)."""
    calls = []
    original = plan_module._factors

    def counted(node):
        calls.append(node)
        return original(node)

    monkeypatch.setattr(plan_module, "_factors", counted)
    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(ic.evaluate("-" * 999 + "x_i", x=x), -x)
    assert len(calls) <= 50 * 1000  # about 28 per product; to the bottom, 10^6
