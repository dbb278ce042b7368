"""The architecture, checked: layers, dispatch defaults, and docs that match the code."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import tomllib

import indexcalc as ic
from indexcalc import algebra, canonical, dispatch, expr
from indexcalc.diff import Differentiator
from indexcalc.errors import MissingRuleError
from indexcalc.expr import Expr, Func, Product, Tensor
from indexcalc.printing import TextPrinter

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "indexcalc"
MODULES = sorted(p.stem for p in PACKAGE.rglob("*.py") if p.stem not in {"__init__", "__main__"})


def contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = config["tool"]["importlinter"]["contracts"]
    return contract["layers"]


def test_the_import_contract_holds(capsys):
    """No upward or sideways import, direct or indirect (a cycle is an upward import)."""
    importlinter = pytest.importorskip("importlinter.cli")
    status = importlinter.lint_imports(
        config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True
    )
    assert status == importlinter.EXIT_STATUS_SUCCESS, capsys.readouterr().out


def test_every_module_is_in_a_layer():
    layered = {m.strip() for layer in contract_layers() for m in re.split(r"[|:]", layer)}
    top_level = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    }
    assert top_level - {"__init__", "__main__"} == layered


def test_architecture_doc_draws_the_contracts_layers():
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```text\n(.*?)```", text, re.S).group(1)
    drawn = [re.sub(r"\s+", " ", line.split("#")[0]).strip() for line in block.splitlines()]
    drawn = [line for line in drawn if line]
    assert drawn == [re.sub(r"\s+", " ", layer) for layer in contract_layers()]


@pytest.mark.parametrize("document", ["README.md", "docs/architecture.md"])
def test_docs_name_every_module(document):
    text = (ROOT / document).read_text()
    missing = [m for m in MODULES if f"indexcalc/{m}.py" not in text and f"`{m}`" not in text]
    assert not missing, f"{document} does not describe {missing}"


def test_no_imports_inside_functions():
    """Imports of indexcalc modules sit at the top of each module, where import-linter and a
    reader see them; only optional peers (array_api_compat) are imported lazily."""
    lazy = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (
                        inner.level or "indexcalc" in (inner.module or "")
                    ):
                        lazy.append(f"{path.name}:{inner.lineno}")
    assert not lazy


def pass_classes() -> list[type]:
    found, stack = [], [dispatch.Pass]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            found.append(sub)
            stack.append(sub)
    return found


def known_kinds() -> set[str]:
    """Every class a rule may name: expression nodes, plan steps, matrix nodes."""
    import indexcalc.plan as plan

    modules = [expr, plan, *[m for name, m in vars(ic).items() if inspect.ismodule(m)]]
    return {
        name for module in modules for name, value in vars(module).items() if inspect.isclass(value)
    }


def test_every_rule_names_a_class():
    """A rule named for a class that does not exist (a typo) would silently never run."""
    kinds = known_kinds()
    for cls in pass_classes():
        if cls.__module__.startswith("tests"):
            continue
        rules = [name[len(cls.prefix) :] for name in vars(cls) if name.startswith(cls.prefix)]
        assert set(rules) <= kinds, (cls, set(rules) - kinds)


class Twice(Expr):
    """A node kind the passes have never seen: 2·arg, elementwise."""

    __slots__ = ()

    def __new__(cls, arg: Expr):
        return super().__new__(cls, arg)

    @staticmethod
    def _free_of(arg):
        return arg.free

    @property
    def children(self):
        return self._args

    def with_children(self, children):
        (arg,) = children
        return Twice(arg)


def test_a_pass_without_a_rule_names_the_node_and_the_pass():
    node = Twice(Tensor("x", "i"))
    with pytest.raises(MissingRuleError, match=r"differentiation has no rule for Twice.*_d_Twice"):
        Differentiator(algebra.Algebra(), Tensor("x", "k")).derivative(node)
    with pytest.raises(MissingRuleError, match="printing has no rule for Twice"):
        TextPrinter().doprint(node)
    with pytest.raises(MissingRuleError, match="planning has no rule for Twice"):
        ic.evaluate(node, x=np.ones(2))
    assert isinstance(MissingRuleError("x"), ic.IndexCalcError)
    assert isinstance(MissingRuleError("x"), NotImplementedError)


def test_the_defaults_cover_a_new_node_kind():
    """Normalising, renaming and canonical keys need no rule of their own."""
    x = Tensor("x", "i")
    node = Twice(Product((Tensor("A", "ij"), Tensor("y", "j")), "i"))
    again = Twice(Product((Tensor("A", "ik"), Tensor("y", "k")), "i"))
    form = canonical.CanonicalForm()
    assert form.term_key(node) == form.term_key(again)
    assert form.term_key(node) != form.term_key(Twice(x))
    assert expr.rename(node, {"i": "m"}) is Twice(
        Product((Tensor("A", "mj"), Tensor("y", "j")), "m")
    )
    shared = algebra.Algebra()
    assert shared.normalise(Twice(Func("exp", expr.ZERO))) is Twice(expr.ONE)
    assert shared.add([node, again]).factors[0].value == 2


def documented_rules() -> list:
    text = (ROOT / "docs" / "architecture.md").read_text()
    rules = text[text.index("## Simplification rules") :]
    return re.findall(r"`([^`]+)` → `([^`]+)`", rules)


def test_simplification_rules_do_what_the_architecture_doc_shows():
    rules = documented_rules()
    assert len(rules) >= 14
    for before, after in rules:
        assert str(ic.simplify(before)) == after, before
