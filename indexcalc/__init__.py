"""indexcalc: tensor calculus in Einstein index notation.

Parse index notation, differentiate it symbolically, simplify it, and evaluate it fast on
NumPy arrays.
"""

from .algebra import clear_caches
from .check import CheckResult, check_derivatives
from .codegen import codegen, codegen_value_and_grad
from .compile import Compiled, compile, evaluate
from .diff import diff
from .errors import (
    CodegenError,
    DefinitionError,
    DifferentiationError,
    EvaluationError,
    IndexCalcError,
    IndexNotationError,
    MatrixFormError,
    MissingRuleError,
    NotationWarning,
    NumberError,
    ParseError,
    SymmetryError,
    TooDeepError,
    TooLargeError,
    UnsizedIndexError,
)
from .expr import Expr, bind_operations
from .matrix import to_matrix
from .matrix_input import parse_matrix
from .printing import to_ascii, to_latex, to_text
from .program import to_program
from .simplify import simplify
from .syntax import parse

bind_operations(
    text=to_text,
    latex=to_latex,
    ascii=to_ascii,
    diff=diff,
    simplify=simplify,
    evaluate=evaluate,
    to_matrix=to_matrix,
    to_program=to_program,
)

__all__ = [
    "CheckResult",
    "CodegenError",
    "Compiled",
    "DefinitionError",
    "DifferentiationError",
    "EvaluationError",
    "Expr",
    "IndexCalcError",
    "IndexNotationError",
    "MatrixFormError",
    "MissingRuleError",
    "NotationWarning",
    "NumberError",
    "ParseError",
    "SymmetryError",
    "TooDeepError",
    "TooLargeError",
    "UnsizedIndexError",
    "check_derivatives",
    "clear_caches",
    "codegen",
    "codegen_value_and_grad",
    "compile",
    "diff",
    "evaluate",
    "parse",
    "parse_matrix",
    "simplify",
    "to_matrix",
    "to_program",
]
__version__ = "0.1.0"
