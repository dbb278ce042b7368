"""Bad input raises an IndexCalcError subclass that says what is wrong and where (issue 2)."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import indexcalc as ic
from indexcalc.expr import Derivative, Number, Power, Tensor

ParseError = ic.ParseError
IndexNotationError = ic.IndexNotationError
DefinitionError = ic.DefinitionError


def _error(program: str, var: str = "x") -> ic.IndexCalcError:
    with pytest.raises(ic.IndexCalcError) as info:
        ic.parse(program, var=var)
    return info.value


def _parse_or_index_calc_error(text: str, var: str = "x") -> None:
    """Parse `text`; an IndexCalcError is a fine answer, any other exception fails the test."""
    with contextlib.suppress(ic.IndexCalcError):
        ic.parse(text, var=var)


def _excerpt(error: Exception) -> tuple[str, str]:
    """The source line and the caret line at the end of an error message."""
    source_line, caret_line = str(error).split("\n")[-2:]
    return source_line, caret_line


# (program, var, error class, fragments the message must contain, (line, column))
ERRORS = [
    pytest.param("(x_i", "x", ParseError, ["'(' is never closed"], (1, 5), id="unclosed-paren"),
    pytest.param("(a + (b c)", "x", ParseError, ["'(' is never closed"], (1, 11), id="unclosed-2"),
    pytest.param("sin(x", "x", ParseError, ["'(' is never closed"], (1, 6), id="unclosed-call"),
    pytest.param("x_i)", "x", ParseError, ["unbalanced ')'"], (1, 4), id="stray-paren"),
    pytest.param("a + b)", "x", ParseError, ["unbalanced ')'"], (1, 6), id="stray-paren-2"),
    pytest.param("x_i +", "x", ParseError, ["unexpected end of input"], (1, 6), id="dangling-plus"),
    pytest.param(
        "x_i -", "x", ParseError, ["unexpected end of input"], (1, 6), id="dangling-minus"
    ),
    pytest.param("2 *", "x", ParseError, ["unexpected end of input"], (1, 4), id="dangling-star"),
    pytest.param("a ^", "x", ParseError, ["unexpected end of input"], (1, 4), id="dangling-caret"),
    pytest.param("a /", "x", ParseError, ["unexpected end of input"], (1, 4), id="dangling-slash"),
    pytest.param("a ⊙", "x", ParseError, ["unexpected end of input"], (1, 4), id="dangling-odot"),
    pytest.param("* x", "x", ParseError, ["unexpected '*'"], (1, 1), id="leading-star"),
    pytest.param("x_i * * y_i", "x", ParseError, ["unexpected '*'"], (1, 7), id="double-star"),
    pytest.param("", "x", ParseError, ["empty input"], (1, 1), id="empty"),
    pytest.param("   ", "x", ParseError, ["empty input"], (1, 1), id="blank"),
    pytest.param("# only a comment", "x", ParseError, ["empty input"], (1, 1), id="comment"),
    pytest.param("# a\n\n# b\n", "x", ParseError, ["empty input"], (1, 1), id="comments"),
    pytest.param("x_", "x", ParseError, ["'_' must be followed by an index"], (1, 2), id="x_"),
    pytest.param("x_ + y", "x", ParseError, ["'_' must be followed by an index"], (1, 2), id="x_+"),
    pytest.param("A_{}", "x", IndexNotationError, ["empty subscript"], (1, 2), id="empty-braces"),
    pytest.param("x_1", "x", IndexNotationError, ["'1' is not an index"], (1, 3), id="digit"),
    pytest.param(
        "foo(x)",
        "x",
        ParseError,
        ["unknown function 'foo'", "exp", "log1p", "tanh", "sigmoid", "softplus"],
        (1, 1),
        id="unknown-function",
    ),
    pytest.param(
        "x_i + y_j",
        "x",
        IndexNotationError,
        ["same free indices", "{i} is added to {j}"],
        (1, 7),
        id="sum-mismatch",
    ),
    pytest.param(
        "x_i / sqrt(v + eps)",
        "x",
        ParseError,
        ["'eps' is reserved", "name a small constant epsilon"],
        (1, 16),
        id="eps-as-a-constant",
    ),
    pytest.param(
        "x_i x_i + y_i + z_j",
        "x",
        IndexNotationError,
        ["one term must hold all the others'", "{i} is added to {j}"],
        (1, 17),
        id="sum-broadcast-mismatch",
    ),
    pytest.param(
        "x_i ⊙ y_j + z_k",
        "x",
        IndexNotationError,
        ["{i, j} is added to {k}"],
        (1, 13),
        id="sum-hadamard",
    ),
    pytest.param(
        "A_ij - (b_i + c_j)",
        "x",
        IndexNotationError,
        ["{i} is added to {j}"],
        (1, 15),
        id="sum-parenthesised-mismatch",
    ),
    pytest.param(
        "x_i A_ij x_i",
        "x",
        IndexNotationError,
        ["index 'i' appears three times"],
        (1, 12),
        id="index-three-times",
    ),
    pytest.param(
        "x_i y_i z_i",
        "x",
        IndexNotationError,
        ["index 'i' appears three times"],
        (1, 11),
        id="index-three-factors",
    ),
    pytest.param(
        "A_iii", "x", IndexNotationError, ["index 'i' appears more than twice"], (1, 3), id="A_iii"
    ),
    pytest.param(
        "f = W_ab W_ab; f_{,i}",
        "W",
        IndexNotationError,
        ["derivative group has 1 indices", "'W' has rank 2", "_{,(ij)}"],
        (1, 20),
        id="group-too-small",
    ),
    pytest.param(
        "f = x_i x_i; f_{,(ij)}",
        "x",
        IndexNotationError,
        ["derivative group has 2 indices", "'x' has rank 1"],
        (1, 19),
        id="group-too-large",
    ),
    pytest.param(
        "yhat_i = x_i; yhat_ij",
        "x",
        DefinitionError,
        ["'yhat' is defined with 1 indices {i}", "used with 2"],
        (1, 15),
        id="definition-rank",
    ),
    pytest.param(
        "yhat_i = x_i\nyhat",
        "x",
        DefinitionError,
        ["'yhat' is defined with 1 indices", "used with 0"],
        (2, 1),
        id="definition-rank-0",
    ),
    pytest.param(
        "a = 1; a = 2; a", "x", DefinitionError, ["'a' is defined twice"], (1, 8), id="twice"
    ),
    pytest.param(
        "a_i = x_j; a_i",
        "x",
        DefinitionError,
        ["'a' is defined with indices {i}", "free indices {j}"],
        (1, 1),
        id="definition-lhs",
    ),
    pytest.param(
        "a_ii = x_i; a_ii",
        "x",
        DefinitionError,
        ["indices of 'a' must be distinct"],
        (1, 1),
        id="definition-repeat",
    ),
    pytest.param(
        "a = b; b = 1; a",
        "x",
        DefinitionError,
        ["'b' is used before it is defined"],
        (1, 8),
        id="used-before-defined",
    ),
    pytest.param(
        "x = 1; x",
        "x",
        DefinitionError,
        ["'x' is the variable of differentiation"],
        (1, 1),
        id="define-variable",
    ),
    pytest.param("exp", "x", ParseError, ["'exp' is reserved"], (1, 1), id="reserved-exp"),
    pytest.param("2 exp_i", "x", ParseError, ["'exp' is reserved"], (1, 3), id="reserved-exp_i"),
    pytest.param("delta", "x", ParseError, ["'delta' is reserved"], (1, 1), id="reserved-delta"),
    pytest.param(
        "delta = 1; delta", "x", ParseError, ["'delta' is reserved"], (1, 1), id="define-delta"
    ),
    pytest.param("eps + 1", "x", ParseError, ["'eps' is reserved"], (1, 1), id="reserved-eps"),
    pytest.param("δ", "x", ParseError, ["'δ' is reserved"], (1, 1), id="reserved-δ"),
    pytest.param("sum", "x", ParseError, ["'sum' is reserved"], (1, 1), id="reserved-sum"),
    pytest.param("sigma_i", "x", ParseError, ["'sigma' is reserved"], (1, 1), id="reserved-sigma"),
    pytest.param(
        "x_i / y_j",
        "x",
        IndexNotationError,
        ["denominator has free indices {j}", "elementwise"],
        (1, 9),
        id="division-index",
    ),
    pytest.param(
        "x_i^y_j",
        "x",
        IndexNotationError,
        ["exponent has free indices {j}"],
        (1, 7),
        id="power-index",
    ),
    pytest.param(
        "sum_j(x_i)",
        "x",
        IndexNotationError,
        ["sum over 'j'", "not a free index", "(free: {i})"],
        (1, 5),
        id="sum-unused-index",
    ),
    pytest.param("1 / 0", "x", ParseError, ["division by zero"], (1, 5), id="division-by-zero"),
    pytest.param("0^-1", "x", ParseError, ["zero to a negative power"], (1, 1), id="zero-power"),
    pytest.param(
        "δ_i", "x", IndexNotationError, ["δ needs at least two indices"], (1, 1), id="δ_i"
    ),
    pytest.param(
        "delta_i", "x", IndexNotationError, ["needs at least two indices"], (1, 1), id="delta_i"
    ),
    pytest.param(
        "2 eps_i", "x", IndexNotationError, ["ε needs at least two indices"], (1, 3), id="eps_i"
    ),
    pytest.param(
        "δ_{(ij)(k)}",
        "x",
        IndexNotationError,
        ["two groups of equal size"],
        (1, 1),
        id="pair-sizes",
    ),
    pytest.param(
        "A_{(ij)(kl)}", "x", IndexNotationError, ["only for δ"], (1, 2), id="pair-on-tensor"
    ),
    pytest.param(
        "x x_i",
        "x",
        IndexNotationError,
        ["tensor 'x' is used with 1 indices here but with 0 elsewhere"],
        (1, 3),
        id="two-ranks",
    ),
    pytest.param(
        "A_ij x_j + A_i",
        "x",
        IndexNotationError,
        ["tensor 'A' is used with 1 indices here but with 2 elsewhere"],
        (1, 12),
        id="two-ranks-sum",
    ),
    pytest.param(
        "x_i $ y_i", "x", ParseError, ["unexpected character '$'"], (1, 5), id="character-$"
    ),
    pytest.param(
        "x_i . y_i", "x", ParseError, ["unexpected character '.'"], (1, 5), id="character-."
    ),
    pytest.param(
        "f_{,i}",
        "x",
        DefinitionError,
        ["cannot differentiate 'f'", "neither defined nor the variable 'x'"],
        (1, 1),
        id="comma-undefined",
    ),
    pytest.param(
        "2 g_{j,i}",
        "x",
        DefinitionError,
        ["cannot differentiate 'g'"],
        (1, 3),
        id="comma-undefined-jacobian",
    ),
    pytest.param(
        "f_{,(ij)}",
        "W",
        DefinitionError,
        ["cannot differentiate 'f'", "the variable 'W'"],
        (1, 1),
        id="comma-undefined-W",
    ),
    pytest.param(
        "δ_{i,j}", "x", IndexNotationError, ["cannot take a comma derivative"], (1, 1), id="δ-comma"
    ),
    pytest.param(
        "sum_{(ij)}(A_ij)", "x", IndexNotationError, ["plain indices"], (1, 1), id="sum-groups"
    ),
    pytest.param(
        "x_i\n+ y_i",
        "x",
        ParseError,
        ["unexpected '+'", "a new line ends the expression"],
        (2, 1),
        id="newline-ends-statement",
    ),
    pytest.param(
        "a = 1\nb_i = x_i + y_j\nb_i",
        "x",
        IndexNotationError,
        ["{i} is added to {j}"],
        (2, 13),
        id="error-on-line-2",
    ),
    pytest.param(
        "# header\nL = 1\n\nfoo(L)",
        "x",
        ParseError,
        ["unknown function 'foo'"],
        (4, 1),
        id="error-on-line-4",
    ),
]


@pytest.mark.parametrize(("program", "var", "kind", "fragments", "where"), ERRORS)
def test_bad_input_raises_specific_error_naming_the_problem_and_place(
    program: str, var: str, kind: type, fragments: list[str], where: tuple[int, int]
) -> None:
    error = _error(program, var)
    assert type(error) is kind
    message = str(error)
    for fragment in fragments:
        assert fragment in message
    line, column = where
    assert f"line {line}:{column}" in message
    assert (error.position.line, error.position.column) == where
    source_line, caret_line = _excerpt(error)
    assert source_line == program.split("\n")[line - 1]
    assert caret_line == " " * (column - 1) + "^"


def test_error_classes_form_one_hierarchy() -> None:
    assert issubclass(ic.ParseError, ic.IndexCalcError)
    assert issubclass(ic.IndexNotationError, ic.ParseError)
    assert issubclass(ic.DefinitionError, ic.ParseError)
    assert issubclass(ic.TooDeepError, ic.IndexCalcError)
    assert issubclass(ic.IndexCalcError, Exception)


@pytest.mark.parametrize(
    ("program", "message"),
    [
        (
            "x_i + y_j",
            "the terms of a sum must have the same free indices, or one term must hold all "
            "the others' (a term is broadcast over those it lacks), but {i} is added to {j} "
            "(at line 1:7)\nx_i + y_j\n      ^",
        ),
        (
            "A_ij x_j + b_i x_i x_i",
            "index 'i' appears three times in one product; an index may appear once (free) "
            "or twice (summed) (at line 1:22)\nA_ij x_j + b_i x_i x_i\n                     ^",
        ),
        (
            "L = 1\n  tanh(L) + foo(L)",
            "unknown function 'foo'; the known functions are abs, cos, exp, log, log1p, relu, "
            "sigmoid, sign, sin, softplus, sqrt, step, tan, tanh (at line 2:13)\n"
            "  tanh(L) + foo(L)\n            ^",
        ),
    ],
)
def test_error_message_shows_source_line_with_caret_under_the_column(
    program: str, message: str
) -> None:
    assert str(_error(program)) == message


def test_caret_points_at_the_first_unused_index_of_a_sum() -> None:
    error = _error("sum_{ij}(x_i)")
    assert _excerpt(error) == ("sum_{ij}(x_i)", "      ^")
    assert "sum over 'j'" in str(error)


def test_tab_in_source_line_keeps_caret_aligned() -> None:
    error = _error("x_i +\ty_j")
    assert _excerpt(error) == ("x_i + y_j", "      ^")


# -- bad arguments -----------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, b"x_i", 3])
def test_non_string_input_is_a_parse_error(text) -> None:
    with pytest.raises(ic.ParseError, match="expected notation as a string"):
        ic.parse(text)


@pytest.mark.parametrize("var", ["x_i", "", "1x", "exp", "delta", "sum"])
def test_bad_variable_name_is_a_parse_error(var: str) -> None:
    with pytest.raises(ic.ParseError, match="variable name must be a tensor name"):
        ic.parse("x", var=var)


def test_non_string_variable_is_a_parse_error() -> None:
    with pytest.raises(ic.ParseError):
        ic.parse("x", var=3)


# -- messages that name the wrong thing --------------------------------------------------


@pytest.mark.parametrize("program", ["sin()", "()", "sum_i()", "(x_i + )"])
def test_empty_or_unfinished_parentheses_are_not_called_unbalanced(program: str) -> None:
    assert "there is no '(' to close" not in str(_error(program))


def test_program_without_final_expression_says_so() -> None:
    message = str(_error("a = 1"))
    assert "'nl'" not in message
    assert "expression" in message


@pytest.mark.parametrize("program", ["x / 0", "x_i / 0", "x_i / (2 - 2)"])
def test_division_by_zero_expression_is_an_error(program: str) -> None:
    assert "division by zero" in str(_error(program))


@pytest.mark.parametrize("program", ["a\fb )", "a\rb )"])
def test_caret_excerpt_uses_the_lexers_lines(program: str) -> None:
    source_line, caret_line = _excerpt(_error(program))
    assert source_line[len(caret_line) - 1] == ")"


# -- nesting -----------------------------------------------------------------------------


def test_ten_thousand_nested_parentheses_are_transparent() -> None:
    assert ic.parse("(" * 10_000 + "x" + ")" * 10_000) is Tensor("x")


def test_deeply_nested_calls_raise_too_deep_error() -> None:
    with pytest.raises(ic.TooDeepError) as info:
        ic.parse("exp(" * 5000 + "x" + ")" * 5000)
    assert isinstance(info.value, ic.IndexCalcError)
    assert "nested" in str(info.value)


@pytest.mark.parametrize(
    ("program", "kind"),
    [
        ("-" * 5000 + "x", ic.TooDeepError),
        ("x^" * 5000 + "x", ic.TooDeepError),
        # The innermost sum_i(x_i) is a scalar, so the one around it has no free 'i'.
        ("sum_i(" * 3000 + "x_i" + ")" * 3000, ic.IndexNotationError),
    ],
    ids=["minus", "power", "sum"],
)
def test_deep_input_raises_its_documented_error_not_recursion_error(
    program: str, kind: type
) -> None:
    assert type(_error(program)) is kind


def test_deep_definition_under_a_comma_derivative_parses_whole() -> None:
    program = "f_i = " + "exp(" * 900 + "x_i" + ")" * 900 + "; g_j = f_j; g_{j,k}"
    expr = ic.parse(program)
    assert isinstance(expr, Derivative)
    assert expr.depth == 902  # the comma derivative, 900 exps, x_j


@pytest.mark.parametrize(
    ("program", "text"),
    [
        ("9^9^9", "9^387420489"),
        ("9**9**9", "9^387420489"),
        ("2^1000000", "2^1000000"),
        ("10^400", "10^400"),
    ],
)
def test_huge_constant_power_is_kept_as_a_power_not_computed(program: str, text: str) -> None:
    """9^(9^9) has 370 million digits; the parser keeps the power as a node and folds
    only its small exponent, so parsing it is no work at all."""
    expr = ic.parse(program)
    assert isinstance(expr, Power)
    assert str(expr) == text


def test_small_constant_power_is_folded_to_its_value() -> None:
    assert ic.parse("(9^9)^9") is Number(9**81)
    assert ic.parse("2^2^2") is Number(16)


# -- a failed parse leaves nothing behind ------------------------------------------------


def test_failed_parse_leaves_no_definitions_or_held_indices_behind() -> None:
    _error("a_i = x_i; sum_i(a_i a_i a_i + )")
    assert ic.parse("a") is Tensor("a")
    assert "appears three times" in str(_error("x_i x_i x_i"))
    assert ic.parse("x_i", var="x") is Tensor("x", "i")


# -- no input raises anything but IndexCalcError -------------------------------------------

# Valid programs to mutate. Few number literals, so a mutation cannot build a huge power.
VALID_PROGRAMS = [
    "A_ij x_j + b_i",
    "x_i A_ij x_j",
    "x_i ⊙ y_i .* z_i",
    "sum_i(log(1 + exp(-y_i X_ij w_j)))",
    "Σ_{ij}(A_ij) / sqrt(x_k x_k)",
    "δ_{(ij)(kl)} W_kl",
    "eps_ij eps_kl X_ik X_jl / 2",
    "yhat_i = sigma(W_ij x_j); L = sum_i((yhat_i - t_i)^2); L_{,(gh)}",
    "f_j = tanh(A_jk x_k)\n# comment\nf_{j,i}",
    "(x_j x_j)_{,k} - relu(x_k)**y",
    "f = x_i x_i; f_{k,ij}",
    "α_β ε_βγδ u_γ v_δ",
]

TOKEN = r"[^\W\d_][^\W_]*|\d+|_\{|\.\*|\*\*|\s+|."


@st.composite
def mutated_programs(draw) -> str:
    """A valid program with characters or tokens deleted, duplicated, swapped or inserted."""
    program = draw(st.sampled_from(VALID_PROGRAMS))
    units = list(program) if draw(st.booleans()) else re.findall(TOKEN, program)
    for _ in range(draw(st.integers(1, 4))):
        if not units:
            break
        k = draw(st.integers(0, len(units) - 1))
        operation = draw(st.sampled_from(["delete", "duplicate", "swap", "insert"]))
        if operation == "delete":
            del units[k]
        elif operation == "duplicate":
            units.insert(k, units[k])
        elif operation == "swap":
            j = draw(st.integers(0, len(units) - 1))
            units[k], units[j] = units[j], units[k]
        else:
            units.insert(k, draw(st.sampled_from(list("()_{},;=+-*/^#\n ⊙δΣ.e"))))
    return "".join(units)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.sampled_from(["x", "W"]))
def test_random_text_raises_only_index_calc_error(text: str, var: str) -> None:
    _parse_or_index_calc_error(text, var)


@settings(max_examples=200, deadline=None)
@given(mutated_programs(), st.sampled_from(["x", "W"]))
def test_mutated_programs_raise_only_index_calc_error(text: str, var: str) -> None:
    _parse_or_index_calc_error(text, var)
