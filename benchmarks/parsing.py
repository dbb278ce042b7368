"""Parser throughput: typical short expressions, and one long expression.

The long expression is a sum of distinct products, ``a0_ij x_j y_i + a1_ij x_j y_i + …``,
grown to the asked number of characters; timing it at several lengths shows whether
parsing stays linear in the length of the text.
"""

from __future__ import annotations

from dataclasses import dataclass

import indexcalc as ic
from indexcalc.expr import node_count

from .timing import median_time

# Typical inputs, about 30 characters each.
TYPICAL = (
    "x_i A_ij x_j + b_k c_k - 2 d",
    "sum_i(log(1 + exp(-y_i X_ij w_j)))",
    "tanh(W_ij x_j + b_i) v_i",
    "(X_ij - U_ik V_kj)(X_ij - U_il V_lj)",
    "exp(-x_i x_i) / (1 + y_k y_k)",
    "A_ij B_jk C_ki + u_i v_i",
    "sigmoid(w_j x_j) (1 - sigmoid(w_j x_j))",
    "sqrt(x_i x_i) + log(y_j y_j) * 3",
    "ε_ijk u_j v_k + δ_ij w_j",
    "V_ki tanh(W_ij x_j) - t_k",
)


@dataclass
class ThroughputResult:
    """Parses per second over the typical expressions."""

    expressions: int
    mean_length: float
    per_second: float


@dataclass
class LongResult:
    """The time to parse one long expression."""

    characters: int
    terms: int
    nodes: int
    seconds: float


def long_expression(characters: int) -> tuple[str, int]:
    """A sum of distinct products at least `characters` long, and its number of terms."""
    terms: list[str] = []
    length = -3
    while length < characters:
        term = f"a{len(terms)}_ij x_j y_i"
        terms.append(term)
        length += len(term) + 3
    return " + ".join(terms), len(terms)


def run_throughput(repeats: int, rounds: int) -> ThroughputResult:
    """Median over `repeats` of parsing every typical expression `rounds` times."""
    ic.parse(TYPICAL[0])  # builds the parser, once per process

    def parse_all():
        for _ in range(rounds):
            for text in TYPICAL:
                ic.parse(text)

    seconds = median_time(parse_all, repeats=repeats)
    count = rounds * len(TYPICAL)
    mean_length = sum(map(len, TYPICAL)) / len(TYPICAL)
    return ThroughputResult(len(TYPICAL), mean_length, count / seconds)


def run_long(lengths: tuple[int, ...], repeats: int) -> list[LongResult]:
    """Parse a long expression of each length; the node count confirms it was all read."""
    results = []
    for characters in lengths:
        text, terms = long_expression(characters)
        parsed: dict[str, ic.Expr] = {}
        seconds = median_time(
            lambda: parsed.update(expr=ic.parse(text)),  # noqa: B023
            repeats=repeats,
            setup=parsed.clear,  # nothing of the last run stays interned
        )
        results.append(LongResult(len(text), terms, node_count(parsed["expr"]), seconds))
    return results
