"""indexcalc: tensor calculus in Einstein index notation.

Parse index notation, differentiate it symbolically, simplify it, and evaluate it fast on
NumPy arrays.
"""

from .codegen import CodegenError, codegen, codegen_value_and_grad
from .compile import Compiled, compile, evaluate
from .diff import diff
from .errors import (
    DefinitionError,
    DifferentiationError,
    EvaluationError,
    IndexCalcError,
    IndexNotationError,
    NotationWarning,
    ParseError,
    SymmetryError,
    TooDeepError,
    UnsizedIndexError,
)
from .expr import Expr
from .matrix import MatrixFormError, to_matrix
from .simplify import simplify
from .syntax import parse

__all__ = [
    "CodegenError",
    "Compiled",
    "DefinitionError",
    "DifferentiationError",
    "EvaluationError",
    "Expr",
    "IndexCalcError",
    "IndexNotationError",
    "MatrixFormError",
    "NotationWarning",
    "ParseError",
    "SymmetryError",
    "TooDeepError",
    "UnsizedIndexError",
    "codegen",
    "codegen_value_and_grad",
    "compile",
    "diff",
    "evaluate",
    "parse",
    "simplify",
    "to_matrix",
]
__version__ = "0.1.0"
