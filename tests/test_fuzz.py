"""Fuzzing: whatever the input, a user sees a right answer or an IndexCalcError.

The grammar-based fuzzer (`tests/fuzzing.py`) takes written programs, hostile names,
extreme numbers, mutants and deep nesting through parse, print, simplify, diff, evaluate,
codegen and the command line, and fails on any other exception, a hang, or stages that
disagree. The suite runs a small budget; ``pytest tests/test_fuzz.py --fuzz=100000`` runs
the deep one (docs/verification.md). The tests after it check that the fuzzer notices
each kind of failure.

The hypothesis tests at the end feed the parser random Unicode, random text over the
notation's own characters and mutations of valid programs: tokens and characters
deleted, duplicated and swapped, and random characters inserted. Text that parses is also
differentiated, simplified and printed in every format.
"""

from __future__ import annotations

import contextlib
import random

import fuzzing
import numpy as np
import pytest
from fuzzing import NOTATION, SEEDS, TOKEN
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import programs

import indexcalc as ic
from indexcalc.expr import Expr, Sum, node_count

FUZZ = settings(max_examples=max(200, settings.default.max_examples))
DEFAULT_INPUTS = 200  # the corpus, then written programs, hostile programs and mutants


# -- the grammar-based fuzzer -------------------------------------------------------------


def test_fuzzing_every_stage_finds_no_failures():
    """The default budget: the corpus of hard inputs, then random ones, through every stage.

    Fails on any exception that is not an IndexCalcError, a stage over 5 s of CPU, a command line
    exit code other than 0, 1 or 2, or stages that disagree; the message lists each kind
    of failure with its shortest input.
    """
    report = fuzzing.run(DEFAULT_INPUTS, seed=fuzzing.DEFAULT_SEED, jobs=2)
    assert report.inputs == DEFAULT_INPUTS
    assert report.kinds["corpus"] == len(fuzzing.CORPUS)
    assert report.comparisons >= DEFAULT_INPUTS  # values really were compared
    assert not report.failures, report.describe_failures()


def test_deep_fuzzing(request):
    """``--fuzz=N``: N inputs in ``--fuzz-jobs`` worker processes (docs/verification.md)."""
    inputs = request.config.getoption("--fuzz")
    if not inputs:
        pytest.skip("the deep fuzz run is enabled with --fuzz=N")
    seed = request.config.getoption("--fuzz-seed")
    seed = fuzzing.DEFAULT_SEED if seed is None else seed
    report = fuzzing.run(inputs, seed=seed, jobs=request.config.getoption("--fuzz-jobs"))
    path = request.config.getoption("--fuzz-report")
    if path:
        fuzzing.write_report(report, path)
    print(report.table())
    assert report.inputs == inputs
    assert not report.failures, report.describe_failures()


def test_inputs_are_the_same_for_the_same_seed_and_number():
    for number in range(len(fuzzing.CORPUS), len(fuzzing.CORPUS) + 40):
        assert fuzzing.make_input(7, number) == fuzzing.make_input(7, number)
    texts = {fuzzing.make_input(seed, 100).text for seed in range(10)}
    assert len(texts) == 10


def test_written_programs_parse_to_the_shapes_they_were_written_with():
    evaluated = 0
    for seed in range(60):
        text, shapes = fuzzing.write_program(random.Random(seed), hostile=False)
        expr = ic.parse(text)  # every written program is valid
        ranks = {name: len(indices) for name, indices in fuzzing._tensor_indices(expr).items()}
        assert ranks == {name: len(shapes[name]) for name in ranks}, text
        runner = fuzzing.Runner(fuzzing.FuzzInput(0, "program", text, shapes), seed)
        point = runner.point(expr)
        assert {name: a.shape for name, a in point.arrays.items()} == {n: shapes[n] for n in ranks}
        with contextlib.suppress(ic.UnsizedIndexError), np.errstate(all="ignore"):
            ic.evaluate(expr, point.arrays, dims=point.dims("".join(expr.free_indices)))
            evaluated += 1
    assert evaluated >= 50


def test_mutants_are_mostly_invalid_and_hostile_programs_mostly_valid():
    rng = random.Random(0)
    rejected = 0
    for _ in range(200):
        try:
            ic.parse(fuzzing.mutate(rng.choice(SEEDS), rng))
        except ic.IndexCalcError:
            rejected += 1
    assert 100 <= rejected < 200
    hostile = [fuzzing.write_program(random.Random(k), hostile=True)[0] for k in range(60)]
    assert sum(any(name in text for name in fuzzing.HOSTILE_NAMES) for text in hostile) >= 30


def test_an_exception_other_than_indexcalc_error_is_a_failure(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(ic, "simplify", broken)
    runner = fuzzing.Runner(fuzzing.FuzzInput(0, "program", "x_i A_ij x_j"), 0)
    runner.run()
    runner.command_line(["simplify", "x_i x_i"])
    kinds = {(f["kind"], f["stage"]) for f in runner.record.failures}
    assert ("exception", "simplify expression") in kinds
    assert ("cli exit", "cli simplify") in kinds  # the command line exits 3 on it
    assert runner.record.errors["ValueError"] >= 1


def test_a_wrong_value_and_a_wrong_shape_are_disagreements(monkeypatch):
    simplify = ic.simplify
    monkeypatch.setattr(ic, "simplify", lambda expr, **kw: simplify(ic.parse(f"2 ({expr})")))
    record = fuzzing.run_input(fuzzing.FuzzInput(0, "program", "x_i A_ij x_j"), 0)
    stages = {f["stage"] for f in record.failures}
    assert "simplify expression" in stages
    assert stages <= {"simplify expression", "simplify derivative"}
    assert {f["kind"] for f in record.failures} == {"disagreement"}
    assert fuzzing.disagreement(np.zeros(2), np.zeros(3)) == "shape (3,), expected (2,)"
    assert fuzzing.disagreement(np.ones(2), np.ones(2) + 1e-3) is not None
    assert fuzzing.disagreement(np.array([np.nan, 1.0]), np.array([5.0, 1.0])) is None


def test_a_form_that_asks_for_a_size_must_agree_once_given_it(monkeypatch):
    """∑_n(δ_kn − 0.5) simplifies to 1 − 0.5 Σ_i(δ_ki) δ_nn: n, sized through the δ by
    k's dims, now asks for its size. Given the size the reference used, the simplified
    form must agree; a wrong value then is still a disagreement."""
    text = "∑_n(δ_kn - 0.5)"
    record = fuzzing.run_input(fuzzing.FuzzInput(0, "program", text), 0)
    assert not record.failures
    assert record.comparisons >= 4
    simplify = ic.simplify
    monkeypatch.setattr(ic, "simplify", lambda expr, **kw: simplify(ic.parse(f"2 ({expr})")))
    record = fuzzing.run_input(fuzzing.FuzzInput(0, "program", text), 0)
    assert "simplify expression" in {f["stage"] for f in record.failures}


def test_a_stage_over_the_time_limit_is_a_hang(monkeypatch):
    def spin(*args, **kwargs):
        while True:
            pass

    monkeypatch.setattr(fuzzing, "STAGE_SECONDS", 0.2)
    monkeypatch.setattr(ic, "simplify", spin)
    record = fuzzing.run_input(fuzzing.FuzzInput(0, "program", "x_i A_ij x_j"), 0)
    assert [(f["kind"], f["stage"]) for f in record.failures] == [("hang", "simplify expression")]
    assert record.tainted


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
