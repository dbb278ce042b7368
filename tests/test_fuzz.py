"""Parser fuzzing: whatever the text, the only exception a user sees is an IndexCalcError.

Inputs are random text (any Unicode, and text over the notation's own characters) and
mutations of valid programs: tokens and characters deleted, duplicated and swapped, and
random characters inserted. Text that parses is also differentiated, simplified and
printed in every format.
"""

from __future__ import annotations

import contextlib
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import programs

import indexcalc as ic
from indexcalc.expr import Expr, Sum, node_count

FUZZ = settings(max_examples=max(200, settings.default.max_examples))

# Characters the notation gives meaning to, so random text gets past the lexer often.
NOTATION = "ijkxyAWδεσΣ∑⊙_{}(),;=+-*/^.#0123456789 \n" + "sumdeltaepslogexpqrtanh"

SEEDS = (
    "x_i A_ij x_j",
    "sum_i(log(1 + exp(-y_i X_ij w_j)))",
    "eps_ij eps_kl X_ik X_jl / 2",
    "yhat_i = σ(W_ij x_j); loss = (yhat_j - y_j)(yhat_j - y_j); loss_{,(gh)}",
    "u_i = A_ij x_j\nu_i u_i  # a comment",
    "f_i = x_i x_j x_j; f_{k,ij}",
    "δ_{(ij)(kl)} A_kl + x_i ⊙ y_j .* z_j - 3/2 A_{i j}",
    "(x_i x_i)^(1/2) + sqrt(x_k x_k)**-1 - Σ_{ij}(relu(A_ij) step(A_ij))",
    "(exp(x_i) / sum_j(exp(x_j)))_{,k}",
)
TOKEN = re.compile(r"\s+|[^\W\d_][^\W_]*|\d+\.?\d*(?:[eE][+-]?\d+)?|\*\*|\.\*|.", re.DOTALL)


def exercise(text: str) -> None:
    """Parse `text`; if it parses, differentiate, simplify and print it.

    Any IndexCalcError is an acceptable answer; any other exception fails the test.
    """
    try:
        expr = ic.parse(text)
    except ic.IndexCalcError:
        return
    for action in (
        str,
        lambda e: e.ascii(),
        lambda e: e.latex(),
        ic.simplify,
        lambda e: ic.diff(e, "x_k"),
        lambda e: str(ic.diff(e, "x_k")),
    ):
        with contextlib.suppress(ic.IndexCalcError):
            action(expr)


@st.composite
def mutated(draw) -> str:
    """A valid program with a few tokens or characters deleted, duplicated, swapped or added."""
    source = draw(st.one_of(st.sampled_from(SEEDS), programs().map(lambda e: e.text)))
    by_tokens = draw(st.booleans())
    pieces = TOKEN.findall(source) if by_tokens else list(source)
    for _ in range(draw(st.integers(1, 4))):
        if not pieces:
            break
        at = draw(st.integers(0, len(pieces) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "insert"]))
        if kind == "delete":
            del pieces[at]
        elif kind == "duplicate":
            pieces.insert(at, pieces[at])
        elif kind == "swap":
            other = draw(st.integers(0, len(pieces) - 1))
            pieces[at], pieces[other] = pieces[other], pieces[at]
        else:
            pieces.insert(at, draw(st.characters() | st.sampled_from(NOTATION)))
    return "".join(pieces)


@FUZZ
@given(st.text())
@example("")
@example("x_")
@example("\x00")
@example("sum_")
@example("δ_{(ij)(k)}")
def test_random_unicode_text_raises_only_indexcalc_errors(text):
    exercise(text)


@FUZZ
@given(st.text(alphabet=st.sampled_from(NOTATION), max_size=60))
def test_random_notation_characters_raise_only_indexcalc_errors(text):
    exercise(text)


@FUZZ
@given(mutated())
def test_mutated_programs_raise_only_indexcalc_errors(text):
    exercise(text)


def test_parsing_100_kb_does_work_linear_in_its_length(monkeypatch):
    """A regression test: parsing a long sum was once quadratic (100 KB took 9-14 s), as
    each `+` built a new Sum of every term so far.

    The work is counted, not timed: every child handed to a node constructor, interned or
    not. Linear parsing hands each of the result's nodes over a few times; the quadratic
    parser handed over about terms²/2 children, some 14 million here.
    """
    terms = []
    while sum(len(t) + 3 for t in terms) < 100_000:
        terms.append(f"a{len(terms)}_ij x_j y_i")
    text = " + ".join(terms)
    handed_over = 0
    construct = Expr.__new__

    def counting(cls, *args):
        nonlocal handed_over
        handed_over += 1 + sum(len(arg) for arg in args if isinstance(arg, tuple))
        return construct(cls, *args)

    with monkeypatch.context() as patch:
        patch.setattr(Expr, "__new__", staticmethod(counting))
        expr = ic.parse(text)
    assert isinstance(expr, Sum)
    assert len(expr.terms) == len(terms)
    assert expr.free_indices == ()
    assert node_count(expr) == 2 * len(terms) + 3  # each term and its a_k; x_j, y_i; the Sum
    assert handed_over <= 10 * node_count(expr)
