"""indexcalc: tensor calculus in Einstein index notation.

Parse index notation, differentiate it symbolically, simplify it, and evaluate it fast on
NumPy arrays.
"""

from .compile import Compiled, compile, evaluate
from .diff import diff
from .errors import (
    DefinitionError,
    DifferentiationError,
    EvaluationError,
    IndexCalcError,
    IndexNotationError,
    ParseError,
    TooDeepError,
)
from .expr import Expr
from .simplify import simplify
from .syntax import parse

__all__ = [
    "Compiled",
    "DefinitionError",
    "DifferentiationError",
    "EvaluationError",
    "Expr",
    "IndexCalcError",
    "IndexNotationError",
    "ParseError",
    "TooDeepError",
    "compile",
    "diff",
    "evaluate",
    "parse",
    "simplify",
]
__version__ = "0.1.0"
