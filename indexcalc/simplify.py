"""Simplification as users call it: comma derivatives carried out, then the canonical form.

The rules themselves live below: constructors in `algebra`, δ contraction in `deltas`,
term keys in `canonical`, comma derivatives in `diff`.
"""

from __future__ import annotations

from collections.abc import Iterable

from .algebra import shared_algebra
from .canonical import declared_symmetric
from .diff import carry_out
from .errors import IndexCalcError
from .expr import Expr
from .syntax import parse


def simplify(expr_or_text, *, symmetric: Iterable[str] = (), var: str = "x") -> Expr:
    """The expression with comma derivatives carried out, in simplified canonical form.

    Parameters
    ----------
    expr_or_text : Expr or str
        An expression or notation to parse (``var`` names the comma-derivative variable).
    symmetric : names of matrices equal to their transpose, e.g. ``["A"]`` for A_ij = A_ji.
        Only rank-2 tensors may be declared (see `declared_symmetric`).
    """
    node = parse(expr_or_text, var=var) if isinstance(expr_or_text, str) else expr_or_text
    if not isinstance(node, Expr):
        raise IndexCalcError(f"expected an expression or notation, got {type(node).__name__}")
    return carry_out(node, shared_algebra(declared_symmetric(symmetric, node)))


__all__ = ["simplify"]
