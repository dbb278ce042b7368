"""Symbolic differentiation by index rules: one rule per node kind.

∂x_i/∂x_k = δ_ik, the product rule over every factor of a contraction, and the chain
rule through every built-in function. Results are built with the simplifying
constructors of `Algebra`, so deltas contract as they appear, and each node is
differentiated once: equal subexpressions share one derivative, which keeps the size
of a derivative linear in the depth of a chain. `carry_out` replaces the comma
derivatives a user wrote (``f_{,i}``) by what they stand for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .algebra import Algebra, Normaliser, factor_budget, shared_algebra
from .canonical import declared_symmetric
from .dispatch import Pass
from .errors import DifferentiationError, IndexCalcError
from .expr import (
    MINUS_ONE,
    ZERO,
    ConstantTensor,
    Delta,
    Derivative,
    Expr,
    Func,
    Power,
    Product,
    Sum,
    Tensor,
    fresh_indices,
    memoised,
    rename,
)
from .functions import FUNCTIONS
from .sizes import with_delta_axes, without_own_names
from .syntax import parse


class Differentiator(Pass):
    """∂/∂`wrt` of expressions. `wrt` is the variable with its derivative indices."""

    prefix = "_d_"
    description = "differentiation"

    def __init__(self, algebra: Algebra, wrt: Tensor):
        self.algebra = algebra
        self.wrt = wrt
        self.indices = frozenset(wrt.indices)
        self._memo: dict[Expr, Expr] = {}

    def derivative(self, node: Expr) -> Expr:
        """The derivative of `node`; its free indices are the node's plus the derivative's."""
        if self.wrt.name not in node.tensor_names:
            return ZERO
        return memoised(self._memo, node, self.dispatch)

    def __call__(self, node: Expr) -> Expr:
        """The derivative of a whole expression. One that vanishes is zeros over the
        node's free indices and the derivative's (`Algebra.zeros`), so it keeps its shape;
        within a derivative, the part that vanishes is the bare 0 `derivative` gives."""
        done = self.derivative(node)
        wanted = node.free | self.indices
        if done is ZERO and wanted:
            return self.algebra.zeros(wanted, node, self.wrt)
        return done

    def _d_ConstantTensor(self, node: ConstantTensor) -> Expr:
        return ZERO  # δ and ε read no input; `derivative` returns 0 before asking

    def _d_Tensor(self, node: Tensor) -> Expr:
        if len(node.indices) != len(self.wrt.indices):
            raise DifferentiationError(
                f"'{node.name}' has {len(node.indices)} indices in the expression but "
                f"{len(self.wrt.indices)} in the derivative's variable {self.wrt.name}"
                f"{'_' + ''.join(self.wrt.indices) if self.wrt.indices else ''}"
            )
        deltas = [
            Delta((i, k), (self.wrt.name, axis))
            for axis, (i, k) in enumerate(zip(node.indices, self.wrt.indices, strict=True))
        ]
        return self.algebra.multiply(deltas, node.free | self.indices)

    def _d_Sum(self, node: Sum) -> Expr:
        return self.algebra.add(self.derivative(t) for t in node.terms)

    def _d_Product(self, node: Product) -> Expr:
        """The product rule: one term per factor that depends on the variable."""
        clashes = sorted(node.summed & self.indices)
        if clashes:
            fresh = fresh_indices(len(clashes), node.all_indices | self.indices)
            renaming = dict(zip(clashes, fresh, strict=True))
            node = Product((rename(f, renaming) for f in node.factors), node.out)
        out = node.free | self.indices
        terms = []
        for position, factor in enumerate(node.factors):
            d_factor = self.derivative(factor)
            if d_factor is ZERO:
                continue
            factors = (*node.factors[:position], d_factor, *node.factors[position + 1 :])
            terms.append(self.algebra.multiply(factors, out))
        return self.algebra.add(terms)

    def _d_Func(self, node: Func) -> Expr:
        """The chain rule: f'(u) ⊙ ∂u."""
        rule = FUNCTIONS[node.name].derivative
        d_arg = self.derivative(node.arg)
        if rule is None or d_arg is ZERO:
            return ZERO
        outer = self.algebra.normalise(rule(node.arg))
        return self.algebra.multiply((outer, d_arg), node.free | self.indices)

    def _d_Power(self, node: Power) -> Expr:
        base, exponent = node.base, node.exponent
        algebra = self.algebra
        out = node.free | self.indices
        d_base = self.derivative(base)
        if self.wrt.name not in exponent.tensor_names:
            # n u^(n-1) ∂u
            lowered = algebra.power(base, algebra.add((exponent, MINUS_ONE)))
            return algebra.multiply((exponent, lowered, d_base), out)
        # ∂(u^v) = u^v (∂v log u + v ∂u / u)
        d_exponent = self.derivative(exponent)
        log_term = algebra.multiply((d_exponent, algebra.func("log", base)), out)
        base_term = algebra.multiply((exponent, d_base, algebra.power(base, MINUS_ONE)), out)
        return algebra.multiply((node, algebra.add((log_term, base_term))), out)

    def _d_Derivative(self, node: Derivative) -> Expr:
        return self.derivative(carry_out(node, self.algebra))


class CommaDerivatives(Normaliser):
    """A whole expression normalised, with each comma derivative replaced by the
    derivative it stands for: ``(x_j x_j)_{,i}`` becomes ``2 x_i``."""

    def _normalise_Derivative(self, node: Derivative) -> Expr:
        return Differentiator(self.algebra, node.wrt).derivative(self(node.expr))


def carry_out(node: Expr, algebra: Algebra) -> Expr:
    """`node` simplified by `algebra`, with its comma derivatives carried out; each δ
    keeps the size it has in `node` (see `sizes.with_delta_axes`)."""
    with factor_budget():
        carried = CommaDerivatives(algebra, algebra.memo("carried out"))(with_delta_axes(node))
    return without_own_names(carried)


def parse_variable(wrt) -> Tensor:
    """A derivative variable from ``"x_k"``, ``"W_gh"``, ``"w"`` or a `Tensor`."""
    if isinstance(wrt, Tensor):
        node: Expr = wrt
    elif isinstance(wrt, str):
        try:
            node = parse(wrt)
        except IndexCalcError as error:
            raise DifferentiationError(
                f"cannot read the variable {wrt!r}: write a name with fresh indices, "
                f"like 'x_k', 'W_gh' or 'w'\n{error}"
            ) from None
    else:
        raise DifferentiationError(
            f"wrt must be a string like 'x_k' or a list of them, not {type(wrt).__name__}"
        )
    if not isinstance(node, Tensor) or len(set(node.indices)) != len(node.indices):
        raise DifferentiationError(
            f"wrt must be one tensor with distinct indices, like 'x_k' or 'W_gh', not {wrt!r}"
        )
    return node


def diff(
    expr_or_text,
    wrt: str | Tensor | Sequence[str | Tensor],
    *,
    var: str = "x",
    symmetric: Iterable[str] = (),
) -> Expr:
    """The simplified derivative of an expression.

    Parameters
    ----------
    expr_or_text : Expr or str
        The expression, or notation to parse (``var`` names the comma-derivative variable).
    wrt : str, Tensor, or a list of them
        The variable with fresh derivative indices: ``"x_k"``, ``"W_gh"``, ``"w"``. A list
        takes successive derivatives: ``["x_k", "x_l"]`` is the Hessian.
    symmetric : names of matrices equal to their transpose (A_ij = A_ji); the canonical
        form uses it. A tensor of rank above 2 cannot be declared: `SymmetryError`.

    Returns
    -------
    Expr
        The derivative, simplified. Its free indices are the expression's plus the
        derivative indices; one that vanishes is zeros of that shape, printed like
        ``0 Σ_p(δ_kp)``.
    """
    node = parse(expr_or_text, var=var) if isinstance(expr_or_text, str) else expr_or_text
    if not isinstance(node, Expr):
        raise DifferentiationError(
            f"expected an expression or notation, got {type(expr_or_text).__name__}"
        )
    variables = list(wrt) if isinstance(wrt, (list, tuple)) else [wrt]
    if not variables:
        raise DifferentiationError("wrt is empty: name at least one variable, like 'x_k'")
    algebra = shared_algebra(declared_symmetric(symmetric, node))
    tensors = [parse_variable(variable) for variable in variables]
    with factor_budget():
        result = carry_out(node, algebra)
        for variable, tensor in zip(variables, tensors, strict=True):
            taken = sorted(set(tensor.indices) & result.free)
            if taken:
                raise DifferentiationError(
                    f"derivative index {', '.join(repr(i) for i in taken)} of "
                    f"{variable!r} is already a free index of the expression "
                    f"(free: {', '.join(result.free_indices)}); choose fresh letters"
                )
            result = Differentiator(algebra, tensor)(result)
    return result


__all__ = ["CommaDerivatives", "Differentiator", "carry_out", "diff", "parse_variable"]
