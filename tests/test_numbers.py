"""Numbers: exact rationals within a bounded size, clear errors beyond it, and one float64
value for each constant in the evaluator and in generated code alike.

The policy (docs/language.md, "Numbers"): literals and folded constants are exact
`Fraction`s with at most `MAX_DIGITS` digits in numerator and denominator; a literal or a
fold beyond that is a `NumberError` at its position. A power too large to fold stays a
power and, like an irrational one, is computed in float64 as NumPy computes it: inf on
overflow, nan where no real value exists.
"""

from __future__ import annotations

import re
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import indexcalc as ic
from indexcalc.errors import NumberError
from indexcalc.expr import MAX_DIGITS, Number, Sum, node_count

X = np.array([1.0, -2.0, 3.0])


def _generated(text: str, **arrays):
    """Run the code `ic.codegen` writes for `text` in a fresh namespace."""
    namespace: dict = {}
    exec(compile(ic.codegen(text), "<generated>", "exec"), namespace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf and nan are expected here
        return namespace["grad"](**arrays)


def _evaluated(text: str, **arrays):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return ic.evaluate(text, arrays)


def _both(text: str, **arrays):
    """The evaluator's result and the generated code's, checked to be float64 arrays."""
    evaluated, generated = _evaluated(text, **arrays), _generated(text, **arrays)
    for result in (evaluated, generated):
        assert isinstance(result, np.ndarray | np.floating)
        assert result.dtype == np.float64
    return evaluated, generated


# -- literals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.1", Fraction(1, 10)),
        ("3/2", Fraction(3, 2)),
        ("2.5e2", Fraction(250)),
        ("001.500e-002", Fraction(3, 200)),
        (".5", Fraction(1, 2)),
        ("1e+5", Fraction(10**5)),
        ("1e299", Fraction(10**299)),
        ("1e-299", Fraction(1, 10**299)),
        ("0e999999999999999", Fraction(0)),
        ("1." + "0" * 5000, Fraction(1)),  # digits beyond the bound, but only zeros
        ("1" * MAX_DIGITS, Fraction(int("1" * MAX_DIGITS))),
    ],
)
def test_literals_are_exact(text, value):
    assert ic.parse(text) is Number(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1e300", "the number 1e300 is too large (about 10^300)"),
        ("1e100000000", "the number 1e100000000 is too large (about 10^100000000)"),
        ("1e" + "9" * 5000, "is too large"),
        ("1" * 4301, "is too large (about 10^4300)"),
        ("1" * 100_000, "is too large (about 10^99999)"),
        ("1e-300", "the number 1e-300 is too precise (about 301 digits)"),
        ("1e-" + "9" * 5000, "is too precise"),
        ("0." + "1" * 301, "is too precise"),
    ],
    ids=[
        "1e300",
        "1e100000000",
        "long exponent",
        "4301 digits",
        "100000 digits",
        "1e-300",
        "long negative exponent",
        "301 decimals",
    ],
)
def test_a_literal_beyond_the_bound_is_a_number_error_at_the_literal(text, message):
    with pytest.raises(NumberError, match=re.escape(message)) as raised:
        ic.parse(f"x_i + {text} y_i")
    assert raised.value.position == ic.errors.Position(1, 7)
    assert "\n      ^" in str(raised.value)  # the caret under the literal


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        (
            "x_i + 1e200 1e200 y_i",
            "the numbers in this product multiply to one that is too large "
            r"\(about 10\^400\)",
            7,
        ),
        ("x + (1e299 + 1e-299)", "this sum is too precise", 6),
        ("x + 1e299 / 1e-299", "this quotient is too large", 5),
    ],
)
def test_folding_beyond_the_bound_is_a_number_error_at_the_operation(text, message, column):
    with pytest.raises(NumberError, match=message) as raised:
        ic.parse(text)
    assert raised.value.position == ic.errors.Position(1, column)


def test_folding_beyond_the_bound_after_parsing_is_a_number_error():
    with pytest.raises(NumberError, match=r"too large \(about 10\^400\)"):
        ic.simplify("1e200 (1e200 x_i)")


def test_zero_to_a_negative_power_is_an_error_for_any_exponent():
    for text in ("0^(-1)", "0^(-1/2)", "x + 0^-0.5"):
        with pytest.raises(ic.ParseError, match="zero to a negative power"):
            ic.parse(text)
    with pytest.raises(ic.ParseError, match="division by zero"):
        ic.parse("x_i / (2 - 2)")


# -- powers that do not fold: float64, as NumPy, in evaluator and generated code ---------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7^7^7", np.inf),  # 7^823543 overflows
        ("(-7)^(7^7)", -np.inf),
        ("0.7^7^30", 0.0),  # underflows
        ("2^1000", 2.0**1000),
        ("(-8)^(1/3)", np.nan),  # no real cube root in float64 powers, as NumPy
        ("(-4)^(1/2)", np.nan),
        ("2^(1/2)", np.sqrt(2.0)),
        ("(-2)^3", -8.0),
        ("exp(2^1000)", np.inf),
        ("1/3^700", 0.0),
    ],
)
def test_a_power_of_numbers_is_one_real_float64_everywhere(text, expected):
    evaluated, generated = _both(text)
    np.testing.assert_array_equal(evaluated, expected)
    np.testing.assert_array_equal(generated, expected)
    scaled_evaluated, scaled_generated = _both(f"{text} x_i", x=X)
    np.testing.assert_array_equal(scaled_evaluated, np.float64(expected) * X)
    np.testing.assert_array_equal(scaled_generated, np.float64(expected) * X)


def test_huge_powers_stay_powers_and_print_back():
    for text in ("7^823543", "0.7^22539340290692258087863249", "2^1000"):
        expr = ic.parse(text)
        assert str(expr) == text
        assert ic.parse(str(expr)) is expr


@pytest.mark.parametrize(("power", "expected"), [(0.5, np.nan), (3.0, -8.0), (2.0, 4.0)])
def test_a_negative_number_to_an_array_power_is_real(power, expected):
    evaluated, generated = _both("(-2)^a x_i", a=np.array(power), x=X)
    np.testing.assert_array_equal(evaluated, expected * X)
    np.testing.assert_array_equal(generated, expected * X)


def test_a_real_root_of_a_negative_array_is_nan_as_numpy():
    evaluated, generated = _both("x_i^(1/3)", x=X)
    with np.errstate(invalid="ignore"):
        expected = X ** (1 / 3)
    np.testing.assert_array_equal(evaluated, expected)
    np.testing.assert_array_equal(generated, expected)


@pytest.mark.parametrize(
    ("text", "factor"),
    [("1e30 x_i", 1e30), ("7^77 x_i", float(7**77)), ("x_i / 3", 1 / 3), ("2 x_i", 2.0)],
)
def test_large_constants_give_float64_arrays_even_for_integer_inputs(text, factor):
    integers = np.array([1, -2, 3])
    for arrays in ({"x": X}, {"x": integers}):
        evaluated, generated = _both(text, **arrays)
        np.testing.assert_allclose(evaluated, factor * arrays["x"], rtol=1e-15)
        np.testing.assert_allclose(generated, factor * arrays["x"], rtol=1e-15)


def test_a_constant_result_is_a_0d_float64_array_from_both():
    for text, value in (("2", 2.0), ("7^7^7", np.inf), ("1e30", 1e30)):
        evaluated, generated = _both(text)
        assert evaluated.shape == generated.shape == ()
        np.testing.assert_array_equal(generated, value)
        np.testing.assert_array_equal(evaluated, value)


def test_constants_keep_float32_inputs_float32():
    x = X.astype(np.float32)
    for text in ("(-8)^(1/3) x_i", "1e30 x_i", "2^(1/2) x_i"):
        evaluated, generated = _evaluated(text, x=x), _generated(text, x=x)
        assert evaluated.dtype == generated.dtype == np.float32
        np.testing.assert_array_equal(evaluated, generated)


# -- printing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("1e30 x_i", "1e30 x_i"),
        ("3e-20 x_i", "3e-20 x_i"),
        ("-2.5e40", "-2.5e40"),
        ("1200000000000000000", "1.2e18"),
        ("0.00000000000000123", "1.23e-15"),
        ("1000000", "1000000"),
        ("123456789012345", "123456789012345"),
        ("2^(-60)", "1/1152921504606846976"),
        ("1/3", "1/3"),
        ("0.125", "0.125"),
        ("7^77", str(7**77)),
    ],
)
def test_numbers_print_short_and_exact(text, printed):
    expr = ic.parse(text)
    assert str(expr) == printed
    assert expr.ascii() == printed


def test_scientific_numbers_in_latex():
    assert ic.parse("1e30 x_i").latex() == r"10^{30} \, x_{i}"
    assert ic.parse("3e-20").latex() == r"3 \times 10^{-20}"


_digits = st.integers(min_value=0, max_value=10**MAX_DIGITS - 1)


@given(
    numerator=_digits,
    denominator=st.one_of(
        st.integers(min_value=1, max_value=10**MAX_DIGITS - 1),
        st.builds(lambda a, b: 2**a * 5**b, st.integers(0, 400), st.integers(0, 400)),
    ),
    negative=st.booleans(),
)
def test_every_number_prints_as_text_that_parses_back_to_it(numerator, denominator, negative):
    value = Fraction(numerator, denominator) * (-1 if negative else 1)
    if not ic.expr.fits(value):
        with pytest.raises(NumberError):
            Number(value)
        return
    number = Number(value)
    assert ic.parse(str(number)) is number
    assert ic.parse(number.ascii()) is number
    scaled = ic.parse(f"({number}) x_i")  # printed as a coefficient
    assert ic.parse(str(scaled)) is scaled


# -- chained definitions: linear in structure ----------------------------------------------


def _sum_terms_built(monkeypatch) -> list[int]:
    """Record how many terms each Sum node built during a parse has."""
    built: list[int] = []
    original = Sum.__new__

    def counting(cls, terms):
        terms = tuple(terms)
        built.append(len(terms))
        return original(cls, terms)

    monkeypatch.setattr(Sum, "__new__", staticmethod(counting))
    return built


def test_chained_sum_definitions_build_each_term_once(monkeypatch):
    n = 2000
    lines = ["a1_i = x_i", *(f"a{k}_i = a{k - 1}_i + y{k}_i" for k in range(2, n + 1)), f"a{n}_i"]
    built = _sum_terms_built(monkeypatch)
    expr = ic.parse("\n".join(lines))
    assert isinstance(expr, Sum) and len(expr.terms) == n
    assert expr.terms[0] is ic.parse("x_i") and expr.terms[-1] is ic.parse(f"y{n}_i")
    # Every definition's sum built on its own would be n²/2 terms; the chain is built once.
    assert sum(built) <= 2 * n


def test_doubling_definitions_stay_linear(monkeypatch):
    n = 20  # a1 + a1, twice over, n times: 2^19 terms if every use copied its terms
    lines = [
        "a1_i = x_i",
        *(f"a{k}_i = a{k - 1}_i + a{k - 1}_i" for k in range(2, n + 1)),
        f"a{n}_i",
    ]
    built = _sum_terms_built(monkeypatch)
    expr = ic.parse("\n".join(lines))
    assert sum(built) <= 4 * n
    assert node_count(expr) <= 2 * n
    np.testing.assert_array_equal(ic.evaluate(expr, x=X), 2.0 ** (n - 1) * X)
    assert str(ic.simplify(expr)) == f"{2 ** (n - 1)} x_i"


def test_a_definition_used_with_other_indices_is_renamed():
    program = "a_i = x_i + y_i; b_j = a_j + a_j + z_j; b_k"
    arrays = {"x": X, "y": 2 * X, "z": np.ones(3)}
    np.testing.assert_allclose(ic.evaluate(program, arrays), 2 * (X + 2 * X) + 1)
    assert ic.parse(program).free_indices == ("k",)


def test_numbers_of_a_nested_product_print_with_it_so_the_text_reads_back():
    """1e-299 (1e-21 x_i): each number fits, their product would need 321 digits. The
    text keeps the inner product in parentheses, so reading it back folds nothing more
    than the expression itself did."""
    expr = ic.parse("1e-299 * δ_kj * (0.000000000000000000001 * y_n * x_j) * z_n")
    for show in (str, ic.to_ascii):
        text = show(expr)
        assert "(1e-21 " in text, text
        assert ic.parse(text) is expr
    assert str(ic.parse("2 (3 x_i)")) == "2 (3 x_i)"
    quotient = ic.parse("1e299 * ((1e299 * x_i) / (y_i^2 + 1)) * z_i")  # a numerator's
    assert ic.parse(str(quotient)) is quotient


def test_a_product_of_numbers_beyond_float64_is_inf_in_evaluation_and_generated_code():
    text = "1e299 (1e299 x_i)"  # each fits; the plan multiplies them
    x = np.array([1.0, 2.0])
    with np.errstate(over="ignore"):
        evaluated = ic.evaluate(text, x=x)
        namespace: dict = {}
        exec(ic.codegen(text, "f"), namespace)
        generated = namespace["f"](x=x)
    np.testing.assert_array_equal(evaluated, [np.inf, np.inf])
    np.testing.assert_array_equal(generated, evaluated)


@pytest.mark.parametrize(
    ("text", "column"), [("x_i + 1e-299 .* 1e-1", 7), ("h = 1e299; h ⊙ h", 12)]
)
def test_numbers_joined_by_hadamard_fold_within_the_bound_as_juxtaposed_ones_do(text, column):
    with pytest.raises(NumberError, match="this product is too") as raised:
        ic.parse(text)
    assert raised.value.position == ic.errors.Position(1, column)
    assert str(ic.parse("2 ⊙ 3")) == "6"


def test_an_epsilon_too_large_to_build_is_an_evaluation_error_not_a_memory_error():
    """ε is built densely; rank 10 would be 10^10 floats (a MemoryError before)."""
    with pytest.raises(ic.EvaluationError, match="ε of rank 10 has 10,000,000,000 elements"):
        ic.evaluate("eps_abcdefghij k_j", k=np.ones(10))
    with pytest.raises(ic.CodegenError, match="ε of rank 9"):
        ic.codegen("eps_abcdefghi k_i")


def test_an_evaluation_that_runs_out_of_memory_is_an_evaluation_error():
    """The outer product of six vectors of 1000 is 10^18 elements: NumPy refuses the
    allocation with MemoryError, which reaches the user as an EvaluationError."""
    vectors = {name: np.ones(1000) for name in "abcdef"}
    with pytest.raises(ic.EvaluationError, match="not enough memory"):
        ic.evaluate("a_i b_j c_k d_l e_m f_n", vectors)
