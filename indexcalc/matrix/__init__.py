"""Index expressions → matrix notation: ``x_i A_ik + A_kj x_j`` becomes ``(A + Aᵀ) x``.

The expression is carried out and simplified, then its sums are factored where that gives
them a matrix form (`factoring`). Translation (`translate`) builds a small matrix
expression tree (`ir`: `Leaf`, `Transpose`, `MatMul`, `Add`, `Hadamard`, `Apply`, `Diag`,
`Trace`, …) by rules that read each product as a graph of scalars, vectors and matrices,
and one printer class per format prints it (`printers`). `matrix_form` returns that tree,
whose node classes this module exports; `to_matrix` its text.

Layout. Vectors are columns. A rank-2 result has its first output index as rows: by
default the free indices in alphabetical order, the axis order ``indexcalc.evaluate``
returns. This is the numerator layout: the Jacobian ∂f_i/∂x_k has rows i and columns k,
and a derivative with respect to a matrix W_gh has the shape of W. The gradient of a
scalar with respect to a vector is a column vector. ``layout="denominator"`` transposes
rank-2 results.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..algebra import shared_algebra
from ..canonical import declared_symmetric
from ..diff import carry_out
from ..expr import Expr
from ..sizes import output_indices
from ..syntax import parse
from .factoring import Factorer
from .ir import (
    Add,
    Apply,
    Const,
    Diag,
    Diagonal,
    ElementPower,
    Hadamard,
    Identity,
    Leaf,
    Mat,
    MatMul,
    Ones,
    Trace,
    Transpose,
)
from .printers import PRINTERS
from .translate import MatrixFormError, Translator

LAYOUTS = ("numerator", "denominator")


def matrix_form(
    expr_or_text,
    *,
    layout: str = "numerator",
    out=None,
    primes: bool = False,
    var: str = "x",
    symmetric: Iterable[str] = (),
) -> Mat:
    """The matrix-expression tree of an index expression of rank at most 2.

    Parameters are those of `to_matrix`. Raises `MatrixFormError` where no matrix form
    exists.
    """
    if layout not in LAYOUTS:
        raise MatrixFormError(f"layout must be 'numerator' or 'denominator', not {layout!r}")
    node = parse(expr_or_text, var=var) if isinstance(expr_or_text, str) else expr_or_text
    if not isinstance(node, Expr):
        raise MatrixFormError(f"expected an expression or notation, got {type(node).__name__}")
    order = output_indices(node, out)
    if len(order) > 2:
        raise MatrixFormError(
            f"no matrix form for a result with {len(order)} free indices "
            f"({', '.join(order)}): matrix notation covers scalars, vectors and matrices"
        )
    declared = declared_symmetric(symmetric, node)
    algebra = shared_algebra(declared)
    node = Factorer(algebra).normal(carry_out(node, algebra))
    rows = order[0] if order else None
    cols = order[1] if len(order) == 2 else None
    if layout == "denominator" and cols is not None:
        rows, cols = cols, rows
    return Translator(primes, declared).translate(node, rows, cols)


def to_matrix(
    expr_or_text,
    *,
    layout: str = "numerator",
    out=None,
    format: str = "unicode",
    primes: bool = False,
    var: str = "x",
    symmetric: Iterable[str] = (),
) -> str:
    """An index expression of rank at most 2 in matrix notation.

    Parameters
    ----------
    expr_or_text : Expr or str
        The expression, e.g. ``ic.diff("x_i A_ij x_j", "x_k")``, or notation to parse.
    layout : "numerator" (default) or "denominator"
        Vectors are columns in both. In the numerator layout a rank-2 result has its first
        output index on the rows (∂f_i/∂x_k: rows i, columns k; ∂f/∂W_gh: the shape of W);
        the denominator layout is its transpose.
    out : str or sequence of index names, optional
        The output indices in (row, column) order for the numerator layout. Default: the
        free indices sorted, the axis order `indexcalc.evaluate` returns.
    format : "unicode" (default), "ascii" or "latex"
        ``(A + Aᵀ) x``, ``(A + A^T) x`` or ``(A + A^\\top) x``.
    primes : bool
        Write σ(u) ⊙ (1 − σ(u)) as σ'(u) and 1 − tanh(u)^⊙2 as tanh'(u).
    var : str
        The comma-derivative variable of notation text, as for `indexcalc.parse`.
    symmetric : names of matrices equal to their transpose (A_ij = A_ji), as for
        `indexcalc.diff`: terms equal up to such a transpose are collected, and Aᵀ is
        written A. A tensor of rank above 2 cannot be declared: `SymmetryError`.

    Returns
    -------
    str
        The matrix formula. ``diag(v)`` of a vector is a diagonal matrix, ``diag(A)`` of a
        matrix its diagonal as a vector, 𝟏 a vector of ones, I the identity, ⊙ the
        elementwise product and ``^⊙`` an elementwise power.

    Raises
    ------
    MatrixFormError
        If the result has three or more free indices, uses ε, or joins its factors in a
        pattern that matrix notation cannot express.
    """
    if format not in PRINTERS:
        raise MatrixFormError(
            f"format must be one of {', '.join(sorted(PRINTERS))}, not {format!r}"
        )
    tree = matrix_form(
        expr_or_text, layout=layout, out=out, primes=primes, var=var, symmetric=symmetric
    )
    return PRINTERS[format]().doprint(tree)


__all__ = [
    "Add",
    "Apply",
    "Const",
    "Diag",
    "Diagonal",
    "ElementPower",
    "Hadamard",
    "Identity",
    "Leaf",
    "Mat",
    "MatMul",
    "MatrixFormError",
    "Ones",
    "Trace",
    "Transpose",
    "matrix_form",
    "to_matrix",
]
