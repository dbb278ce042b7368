"""Every example in docs/language.md means what the page says, and errors read as shown.

Fenced blocks in the reference:

- ```` ```indexcalc ```` holds examples separated by blank lines. Each must parse, and its
  printed text, Unicode and ASCII, must parse back to an expression with the same value on
  random arrays. The info string may name the variable: ```` ```indexcalc var=W ````.
  After "Each pair below means the same", each block is a pair with one meaning.
- ```` ```indexcalc-error ```` holds one program that must raise an `IndexCalcError`; a
  ```` ```text ```` block right after it is the exact message.
- ```` ```pycon ```` holds a doctest session.

The prose states equivalences as "`a^b^c` is `a^(b^c)`"; each must hold exactly.
"""

from __future__ import annotations

import doctest
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import indexcalc as ic
from indexcalc.check import CHECK_SIZE, RANDOM_HIGH, RANDOM_LOW
from indexcalc.expr import postorder
from indexcalc.sizes import unified_shapes

LANGUAGE = Path(__file__).resolve().parents[1] / "docs" / "language.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    kind: str
    var: str
    body: str
    line: int
    before: str  # the page's text between the previous block and this one


def _blocks() -> list[Block]:
    text = LANGUAGE.read_text(encoding="utf-8")
    blocks, end = [], 0
    for match in FENCE.finditer(text):
        kind, *options = match.group(1).split() or [""]
        settings = dict(option.split("=", 1) for option in options)
        line = text.count("\n", 0, match.start()) + 1
        before = text[end : match.start()]
        blocks.append(Block(kind, settings.get("var", "x"), match.group(2), line, before))
        end = match.end()
    return blocks


def _split(block: Block) -> list[str]:
    return re.split(r"\n\s*\n", block.body.strip())


def _examples() -> list:
    return [
        pytest.param(example, block.var, id=f"line{block.line}-{n}")
        for block in _blocks()
        if block.kind == "indexcalc"
        for n, example in enumerate(_split(block))
    ]


def _pairs() -> list:
    """The blocks that follow "Each pair below means the same", up to the next prose."""
    pairs, following = [], False
    for block in _blocks():
        if "Each pair below means the same" in block.before:
            following = True
        elif block.before.strip():
            following = False
        if following and block.kind == "indexcalc":
            pairs.append(pytest.param(*_split(block), block.var, id=f"line{block.line}"))
    return pairs


STATEMENT = re.compile(r"`([^`\n]+)`\s+(?:is|=|means)\s+`([^`\n]+)`")
# The definitions a stated equivalence relies on, from the example it describes.
CONTEXT = {"yhat_k": "yhat_i = sigma(W_ij x_j); "}
# Stated in words rather than notation; test_delta_trace_is_the_dimension checks it.
INFORMAL = {("A", "5 - tr A")}


def _statements() -> list:
    text = " ".join(LANGUAGE.read_text(encoding="utf-8").split())
    return [
        pytest.param(left, right, id=f"{left} is {right}")
        for left, right in dict.fromkeys(STATEMENT.findall(text))
        if (left, right) not in INFORMAL
    ]


def _random_inputs(*exprs: ic.Expr) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Random arrays for every tensor of `exprs`, sized as `indexcalc check` sizes them
    (CHECK_SIZE, or an ε's rank), with values in [0.5, 1.5) so log, sqrt and powers are
    defined; and the sizes of every index, for a δ that no array sizes."""
    sizes, shapes = unified_shapes(postorder(*exprs), {}, CHECK_SIZE)
    rng = np.random.default_rng(7)
    arrays = {
        name: rng.uniform(RANDOM_LOW, RANDOM_HIGH, size=shape)
        for name, shape in sorted(shapes.items())
    }
    return arrays, sizes


def _error_examples() -> list:
    blocks = _blocks()
    params = []
    for k, block in enumerate(blocks):
        if block.kind != "indexcalc-error":
            continue
        following = blocks[k + 1] if k + 1 < len(blocks) else None
        message = following.body.rstrip("\n") if following and following.kind == "text" else None
        params.append(
            pytest.param(block.body.rstrip("\n"), block.var, message, id=f"line{block.line}")
        )
    return params


def test_reference_has_examples_of_every_kind() -> None:
    kinds = {block.kind for block in _blocks()}
    assert {"indexcalc", "indexcalc-error", "pycon", "text"} <= kinds
    assert len(_examples()) > 90
    assert len(_pairs()) == 4
    assert len(_statements()) >= 9


@pytest.mark.parametrize(("example", "var"), _examples())
def test_documented_example_prints_text_that_parses_back_to_the_same_values(
    example: str, var: str
) -> None:
    expr = ic.parse(example, var=var)
    printed = {"unicode": str(expr), "ascii": expr.ascii()}
    assert not set(printed["ascii"]) & set("δεσΣ∑⊙"), printed["ascii"]
    reparsed = {style: ic.parse(text, var=var) for style, text in printed.items()}
    arrays, sizes = _random_inputs(expr, *reparsed.values())
    expected = ic.evaluate(expr, arrays, out=expr.free_indices, dims=sizes)
    assert np.all(np.isfinite(expected))
    for style, again in reparsed.items():
        assert str(again) == printed["unicode"], style  # printing is a fixed point
        value = ic.evaluate(again, arrays, out=expr.free_indices, dims=sizes)
        np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-12, err_msg=style)


@pytest.mark.parametrize(("first", "second", "var"), _pairs())
def test_precedence_pair_means_the_same(first: str, second: str, var: str) -> None:
    assert ic.parse(first, var=var) is ic.parse(second, var=var)  # nodes are interned


@pytest.mark.parametrize(("left", "right"), _statements())
def test_stated_equivalence_holds(left: str, right: str) -> None:
    assert ic.parse(CONTEXT.get(left, "") + left) is ic.parse(right)  # nodes are interned


def test_delta_trace_is_the_dimension() -> None:
    """The page: `δ_ii - A_ii` with a 5x5 `A` is `5 - tr A`."""
    A = np.random.default_rng(3).normal(size=(5, 5))
    assert ic.evaluate("δ_ii - A_ii", A=A) == pytest.approx(5 - np.trace(A))


@pytest.mark.parametrize(("program", "var", "message"), _error_examples())
def test_documented_error_example_fails_with_shown_message(
    program: str, var: str, message: str | None
) -> None:
    with pytest.raises(ic.IndexCalcError) as info:
        ic.parse(program, var=var)
    if message is not None:
        assert str(info.value) == message


@pytest.mark.parametrize(
    "block",
    [pytest.param(b, id=f"line{b.line}") for b in _blocks() if b.kind == "pycon"],
)
def test_documented_session_runs(block: Block) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(
        block.body, {}, f"language.md:{block.line}", str(LANGUAGE), block.line
    )
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


README = LANGUAGE.parents[1] / "README.md"


def test_readme_tour_runs_and_its_commented_results_hold(capsys) -> None:
    tour = README.read_text(encoding="utf-8").split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(tour, "README.md", "exec"), namespace)  # our own documentation
    ic = namespace["ic"]
    assert str(ic.diff(namespace["e"], "x_k")) == "x_i A_ik + A_kj x_j"
    assert ic.to_matrix(ic.diff(namespace["e"], "x_k")) == "(A + Aᵀ) x"
    assert namespace["hessian_value"].shape == (10, 10)
    cost = namespace["hessian"].cost(X=namespace["X"], y=namespace["y"], w=namespace["w"])
    assert cost.largest_intermediate == 2000  # X's 200 x 10, scaled once
    W = namespace["W"]
    jacobian = ic.evaluate(ic.diff("W_ij x_j", "W_ab"), W=W, x=np.ones(4))
    assert jacobian.shape == (3, 4, 3)
    assert "def grad(A, x):" in capsys.readouterr().out
