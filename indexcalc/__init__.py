"""indexcalc: tensor calculus in Einstein index notation.

Parse index notation, differentiate it symbolically, simplify it, and evaluate it fast on
NumPy arrays.
"""

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
from .syntax import parse

__all__ = [
    "DefinitionError",
    "DifferentiationError",
    "EvaluationError",
    "Expr",
    "IndexCalcError",
    "IndexNotationError",
    "ParseError",
    "TooDeepError",
    "parse",
]
__version__ = "0.1.0"
