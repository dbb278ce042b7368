"""The errors a user can cause. Every one is an `IndexCalcError`."""

from __future__ import annotations

from dataclasses import dataclass


class IndexCalcError(Exception):
    """Base of every error caused by user input: bad notation, bad arrays, bad options."""


class MatrixFormError(IndexCalcError):
    """The expression has no matrix notation: a result or a tensor of rank 3 or more, ε,
    or an index pattern that matrix products, ⊙, diag and tr cannot express."""


class CodegenError(IndexCalcError):
    """The expression cannot be written as a function: a tensor name that is no Python
    identifier, a bad function name, or an index whose size nothing fixes."""


class TooLargeError(IndexCalcError):
    """A result too large to write out, such as an expression whose shared parts repeat
    exponentially often once printed as a tree."""


class MissingRuleError(IndexCalcError, NotImplementedError):
    """A pass met a kind of node it has no rule for (see `indexcalc.dispatch`)."""


class NotationWarning(UserWarning):
    """Valid notation that probably does not mean what its writer meant, like ``x^T``."""


@dataclass(frozen=True)
class Position:
    """A place in the source text: 1-based line and column."""

    line: int
    column: int


def caret_excerpt(source: str, position: Position) -> str:
    """The source line at `position` with a caret under the column."""
    lines = source.split("\n")  # as Lark counts lines
    line_index = min(max(position.line, 1), len(lines)) - 1
    text = lines[line_index].replace("\t", " ")
    return f"{text}\n{' ' * (max(position.column, 1) - 1)}^"


class ParseError(IndexCalcError):
    """The text is not valid notation. Carries the position and shows it with a caret."""

    def __init__(self, message: str, source: str | None = None, position: Position | None = None):
        self.reason = message
        self.source = source
        self.position = position
        if source is not None and position is not None:
            where = f"line {position.line}:{position.column}"
            message = f"{message} (at {where})\n{caret_excerpt(source, position)}"
        super().__init__(message)


class IndexNotationError(ParseError):
    """Indices that do not fit together: a repeated index, mismatched free indices, wrong rank."""


class DefinitionError(ParseError):
    """A definition that is malformed, repeated, or used with the wrong number of indices."""


class NumberError(ParseError):
    """A number too large or too precise to keep exact: a literal, or numbers folded
    together, whose numerator or denominator would have more than 300 digits
    (`indexcalc.expr.MAX_DIGITS`). From the parser it carries the position."""


class DifferentiationError(IndexCalcError):
    """A derivative that cannot be taken as asked: a bad `wrt`, a clashing index."""


class SymmetryError(IndexCalcError):
    """A `symmetric=` declaration that indexcalc cannot take as meant."""


class EvaluationError(IndexCalcError):
    """Arrays that do not fit the expression: missing, wrong rank, inconsistent sizes."""


class UnsizedIndexError(EvaluationError):
    """An index whose size no array fixes, so it must be given.

    `index` and `where` let a front end say how to give it: the API's ``dims=`` by
    default, the command line's ``--dims`` through `for_option`.
    """

    def __init__(self, index: str, where: str, how: str | None = None):
        self.index = index
        self.where = where
        how = how or f"dims={{'{index}': n}}"
        super().__init__(
            f"the size of index '{index}' ({where}) is not fixed by any array; pass it with {how}"
        )

    def for_option(self, option: str) -> UnsizedIndexError:
        """The same error, telling how to give the size with a command-line option."""
        return UnsizedIndexError(self.index, self.where, f"{option} {self.index}=N")


class TooDeepError(IndexCalcError):
    """An expression nested too deeply to process safely."""
