"""Every example in docs/language.md parses, every error example fails as shown.

Fenced blocks in the reference:

- ```` ```indexcalc ```` holds examples separated by blank lines; each must parse. The info
  string may name the variable: ```` ```indexcalc var=W ````.
- ```` ```indexcalc-error ```` holds one program that must raise an `IndexCalcError`; a
  ```` ```text ```` block right after it is the exact message.
- ```` ```pycon ```` holds a doctest session.
"""

from __future__ import annotations

import doctest
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import indexcalc as ic

LANGUAGE = Path(__file__).resolve().parents[1] / "docs" / "language.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    kind: str
    var: str
    body: str
    line: int


def _blocks() -> list[Block]:
    text = LANGUAGE.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        kind, *options = match.group(1).split() or [""]
        settings = dict(option.split("=", 1) for option in options)
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(kind, settings.get("var", "x"), match.group(2), line))
    return blocks


def _examples() -> list:
    return [
        pytest.param(example, block.var, id=f"line{block.line}-{n}")
        for block in _blocks()
        if block.kind == "indexcalc"
        for n, example in enumerate(re.split(r"\n\s*\n", block.body.strip()))
    ]


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


@pytest.mark.parametrize(("example", "var"), _examples())
def test_documented_example_parses(example: str, var: str) -> None:
    assert isinstance(ic.parse(example, var=var), ic.Expr)


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
