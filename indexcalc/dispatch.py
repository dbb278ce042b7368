"""One dispatch mechanism for every pass over expressions and plans.

A pass is a class whose rules are methods named ``<prefix><Kind>``: ``_d_Product`` is
differentiation's rule for a `Product`. The rule for a node is the first found along its
class's method resolution order, as in SymPy's printers, so a rule for a base class is
the default for every subclass without one (``_d_Constant`` covers δ and ε). A node no
rule covers raises `MissingRuleError`, naming the node kind and the pass, instead of an
AttributeError deep inside whichever pass meets it first.

A pass that recurses into children memoises through `expr.memoised`, which keeps the
Python stack shallow however deep the expression, so no pass needs the recursion limit
raised. A pass instance made for one call owns its memo; one shared between threads
(an `Algebra`'s) holds only values that are functions of their keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from .errors import MissingRuleError


class Pass:
    """Base of the passes: subclasses set `prefix` and `description` and define rules."""

    prefix: ClassVar[str]
    description: ClassVar[str]  # what the pass does, for the error: "differentiation"
    _rule_names: ClassVar[dict[type, str]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._rule_names = {}  # each pass class finds its own rules, once per node kind

    def rule_for(self, kind: type) -> Callable:
        """The bound method that handles nodes of class `kind`."""
        name = self._rule_names.get(kind)
        if name is None:
            name = self._find_rule(kind)
            self._rule_names[kind] = name
        return getattr(self, name)

    @classmethod
    def _find_rule(cls, kind: type) -> str:
        for base in kind.__mro__:
            name = f"{cls.prefix}{base.__name__}"
            if hasattr(cls, name):
                return name
        raise MissingRuleError(
            f"{cls.description} has no rule for {kind.__name__} nodes: add "
            f"`{cls.prefix}{kind.__name__}` (or one for a base class) to {cls.__name__}"
        )

    def dispatch(self, node: Any, *args: Any) -> Any:
        """Apply the rule for `node`'s kind to it."""
        return self.rule_for(type(node))(node, *args)


__all__ = ["Pass"]
