"""Derivatives checked against finite differences, on random arrays.

`check_derivatives` is what ``indexcalc check`` runs: it sizes every index (from `dims`,
or `CHECK_SIZE`), draws random arrays, and compares each derivative, as printed and
parsed back, with central differences of the expression before it, so a printing bug
cannot pass. `central_difference` is the numeric reference the tests use as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .compile import compile
from .diff import diff, parse_variable
from .errors import IndexCalcError, ParseError
from .expr import Derivative, Expr, Tensor, postorder
from .printing import PRINTERS
from .sizes import check_dims, unified_shapes
from .syntax import parse

CHECK_SIZE = 3  # the size of an index that dims does not give: small, so checks are quick
# Inputs drawn uniformly from [RANDOM_LOW, RANDOM_HIGH) keep log, sqrt and x^0.5 defined.
RANDOM_LOW = 0.5
RANDOM_HIGH = 1.5
RELATIVE_STEP = 1e-6  # finite-difference step, relative to max(1, |value|)
DEFAULT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ChainCheck:
    """The check of one chain of derivatives (``--wrt x_k --wrt x_l``, or ``f_{,(kl)}``).

    `derivative` is the last derivative as printed. `failure` says why no error could be
    measured (the printed text does not parse back, or a value is not finite); the
    errors are then NaN.
    """

    derivative: str
    absolute_error: float
    relative_error: float
    failure: str | None = None


@dataclass(frozen=True)
class CheckResult:
    """The checks of every chain, up to and including the first that failed outright."""

    chains: tuple[ChainCheck, ...]
    tolerance: float

    @property
    def failure(self) -> str | None:
        return next((c.failure for c in self.chains if c.failure), None)

    @property
    def absolute_error(self) -> float:
        return max((c.absolute_error for c in self.chains), default=0.0)

    @property
    def relative_error(self) -> float:
        return max((c.relative_error for c in self.chains), default=0.0)

    @property
    def ok(self) -> bool:
        """Whether every derivative matched finite differences within the tolerance."""
        return self.failure is None and self.relative_error <= self.tolerance


def check_derivatives(
    expr_or_text,
    wrt: str | Tensor | Sequence[str | Tensor] | None = None,
    *,
    dims: Mapping[str, int] | None = None,
    seed: int = 0,
    tolerance: float = DEFAULT_TOLERANCE,
    var: str = "x",
    style: str = "unicode",
) -> CheckResult:
    """Compare the derivatives of an expression with central finite differences.

    Parameters
    ----------
    expr_or_text : Expr or str
        The expression; without `wrt`, its comma derivatives (``f_{,k}``) are checked.
    wrt : the variables of one chain of successive derivatives, like ``["x_k", "x_l"]``.
    dims : sizes of index letters; others get `CHECK_SIZE`.
    seed : the seed of the random arrays, drawn from [0.5, 1.5).
    style : the printed form that is parsed back: ``"unicode"`` or ``"ascii"``.
    """
    if not isinstance(seed, int) or seed < 0:
        raise IndexCalcError(f"seed must be a whole number >= 0, not {seed!r}")
    expr = parse(expr_or_text, var=var) if isinstance(expr_or_text, str) else expr_or_text
    if wrt is not None:
        variables = list(wrt) if isinstance(wrt, (list, tuple)) else [wrt]
        chains = [(expr, [parse_variable(v) for v in variables])]
    else:
        chains = comma_chains(expr)
        if not chains:
            raise IndexCalcError(
                "nothing to check: name a variable, or write a comma derivative in the "
                "expression, like f = x_i A_ij x_j; f_{,k}"
            )
    roots = [expr, *(v for _, chain in chains for v in chain)]
    sizes, shapes = unified_shapes(postorder(*roots), check_dims(dims), CHECK_SIZE, option="--dims")
    rng = np.random.default_rng(seed)
    arrays = {
        name: rng.uniform(RANDOM_LOW, RANDOM_HIGH, size=shape)
        for name, shape in sorted(shapes.items())
    }
    results: list[ChainCheck] = []
    for base, chain in chains:
        results.append(_check_chain(base, chain, arrays, sizes, style))
        if results[-1].failure:
            break
    return CheckResult(tuple(results), tolerance)


def comma_chains(expr: Expr) -> list[tuple[Expr, list[Tensor]]]:
    """Each outermost comma derivative in `expr` as (what is differentiated, variables):
    ``f_{,(ij)}`` gives (f, [x_i, x_j])."""
    chains: list[tuple[Expr, list[Tensor]]] = []
    stack, seen = [expr], set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if isinstance(node, Derivative):
            variables = []
            while isinstance(node, Derivative):
                variables.append(node.wrt)
                node = node.expr
            chains.append((node, variables[::-1]))
        else:
            stack.extend(node.children)
    return chains


def _check_chain(
    base: Expr,
    variables: Sequence[Tensor],
    arrays: Mapping[str, np.ndarray],
    sizes: Mapping[str, int],
    style: str,
) -> ChainCheck:
    """The worst errors of the successive derivatives of `base`, each printed and parsed
    back before it is compared with central differences of the one before it."""
    before, out = base, base.free_indices
    worst_absolute = worst_relative = 0.0
    text = ""
    with np.errstate(all="ignore"):
        for variable in variables:
            text = PRINTERS[style]().doprint(diff(before, variable))
            try:
                printed = parse(text)
            except ParseError as error:
                return _failed(text, f"the printed derivative does not parse back: {error}")
            numeric = central_difference(compile(before, out, dims=sizes), arrays, variable.name)
            out = (*out, *variable.indices)
            symbolic = compile(printed, out, dims=sizes)(arrays)
            if not (np.all(np.isfinite(numeric)) and np.all(np.isfinite(symbolic))):
                return _failed(text, "the values are not finite (NaN or inf) at the random inputs")
            absolute = float(np.max(np.abs(symbolic - numeric), initial=0.0))
            scale = max(1.0, float(np.max(np.abs(numeric), initial=0.0)))
            worst_absolute = max(worst_absolute, absolute)
            worst_relative = max(worst_relative, absolute / scale)
            before = printed
    return ChainCheck(text, worst_absolute, worst_relative)


def _failed(text: str, why: str) -> ChainCheck:
    return ChainCheck(text, float("nan"), float("nan"), why)


def central_difference(
    function: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    arrays: Mapping[str, np.ndarray],
    name: str,
) -> np.ndarray:
    """∂function/∂arrays[name] by central differences: value axes, then the array's axes."""
    base = np.asarray(arrays[name], dtype=np.float64)
    value_shape = np.shape(function({**arrays, name: base}))
    result = np.empty(value_shape + base.shape)
    for position in np.ndindex(base.shape):
        step = RELATIVE_STEP * max(1.0, abs(float(base[position])))
        up, down = base.copy(), base.copy()
        up[position] += step
        down[position] -= step
        difference = np.asarray(function({**arrays, name: up})) - np.asarray(
            function({**arrays, name: down})
        )
        index = (Ellipsis, *position)
        result[index] = difference / (2 * step)
    return result


__all__ = ["ChainCheck", "CheckResult", "central_difference", "check_derivatives", "comma_chains"]
