"""The `indexcalc` command line: diff, simplify, eval and check, a thin layer over the API.

Every subcommand reads EXPR as notation, ``-`` for standard input or ``@file``. A user
error (an `IndexCalcError`, or a file, literal or option that cannot be read) prints one
message prefixed ``indexcalc: error:`` and exits 2; anything else is a bug and exits 3.
``--debug`` adds the traceback. Ctrl-C exits 130. Inputs and arrays have limits
(``MAX_*``), checked before anything is read or allocated, so that no input exhausts the
memory or runs for minutes. The work itself is done by the library: ``check`` is
`indexcalc.check.check_derivatives`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import stat
import sys
import tokenize
import traceback
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

import numpy as np

import indexcalc as ic

from .check import CHECK_SIZE, RANDOM_HIGH, RANDOM_LOW, check_derivatives, comma_chains
from .diff import parse_variable
from .expr import Delta, Derivative, Epsilon, Expr, SizeOf, Tensor, postorder
from .matrix_input import matrix_variable
from .plan import Broadcast, Embed, Fill, Plan
from .printing import PRINTERS
from .sizes import unified_shapes

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

UNICODE_PROBE = "δ⊙Σσε"

# Limits on what the command line reads and makes, so that no input exhausts the memory or
# runs for minutes (docs/cli.md, "Limits").
MAX_NOTATION_CHARS = 2**20  # EXPR read from a file or standard input
MAX_TEXT_CHARS = 2**26  # a .csv or .txt array file
MAX_ELEMENTS = 2**24  # any array read, made or saved: 128 MiB of float64, about a second
MAX_PRINTED = 2**15  # a printed result (NumPy prints long rows in quadratic time)
MAX_CHECK_WORK = 10**8  # check: elements differenced times the largest array's elements
MAX_AXES = 32  # of an inline literal, as NumPy 1 allows

EXIT_CODES = """\
exit codes:
  0    success (check: the derivative matches finite differences)
  1    check: the derivative does not match finite differences
  2    user error: bad notation, options, arrays or files
  3    internal error: a bug in indexcalc (rerun with --debug and report it)
  130  interrupted
  141  standard output closed early (as in indexcalc eval ... | head)"""

MAIN_EPILOG = f"""\
examples:
  indexcalc diff "x_i A_ij x_j" --wrt x_k
  indexcalc diff "tanh(W_ij x_j)" --wrt W_gh --format latex
  indexcalc simplify "(x_i x_i)_{{,k}}"
  indexcalc eval "A_ij x_j" "A=[[1,2],[3,4]]" "x=[1,1]"
  indexcalc check "log(x_i A_ij x_j)" --wrt x_k

EXPR is notation, "-" to read it from standard input, or @FILE to read it from a file.
A program may define names first: "a_i = A_ij x_j; a_i a_i".

{EXIT_CODES}"""

DIFF_EPILOG = """\
examples:
  indexcalc diff "x_i A_ij x_j" --wrt x_k
      x_i A_ik + A_kj x_j
  indexcalc diff "x_i A_ij x_j" --wrt x_k --symmetric A
      2 A_kj x_j
  indexcalc diff "x_i A_ij x_j" --wrt x_k --wrt x_l
      A_kl + A_lk
  indexcalc diff "sigmoid(W_ij x_j)" --wrt x_k --format ascii
      sigmoid(W_ij x_j) .* (1 - sigmoid(W_ij x_j)) .* W_ik
  indexcalc diff "tanh(W_ij x_j)" --wrt x_k --format latex
  indexcalc diff "(x_i x_i)_{,k}"
      2 x_k
  indexcalc diff "x_i A_ij x_j" --wrt x_k --format matrix
      (A + Aᵀ) x
  indexcalc diff "(X_ij - U_ik V_kj)(X_ij - U_il V_lj)" --wrt V_gh --format matrix
      −2 Uᵀ (X − U V)
  indexcalc diff "x_i A_ij x_j" --wrt x_k --format python
      (a standalone NumPy function computing the gradient)
  echo "a_i = A_ij x_j; a_i a_i" | indexcalc diff - --wrt x_k"""

SIMPLIFY_EPILOG = """\
examples:
  indexcalc simplify "A_kj x_j + A_kl x_l"
      2 A_kj x_j
  indexcalc simplify "delta_ij delta_jk v_k"
      v_i
  indexcalc simplify "(x_i A_ij x_j)_{,k}" --symmetric A
      2 A_kj x_j
  indexcalc simplify "(A_ij f_j)_{,k}" --var f --format latex
      A_{ik}"""

EVAL_EPILOG = f"""\
VALUE is one of
  a .npy file                     A=A.npy
  a .npz file and a key           A=arrays.npz:A  (the key may be left out if there is one array)
  a .csv or .txt file             A=A.csv  (comma-separated)   A=A.txt  (whitespace-separated)
  an inline literal               x=[1,2,3]  A=[[1,2],[3,4]]  c=2.5  c=-1e-3

examples:
  indexcalc eval "A_ij x_j" "A=[[1,2],[3,4]]" "x=[1,1]"
      [3. 7.]
  indexcalc eval "A_ij" "A=[[1,2],[3,4]]" --out ji
      [[1. 3.]
       [2. 4.]]
  indexcalc eval "c x_i x_i" c=0.5 "x=[3,4]"
      12.5
  indexcalc eval "delta_ij" --dims i=2,j=2
      [[1. 0.]
       [0. 1.]]
  indexcalc eval "A_ij x_j" A=A.npy x=x.csv --save y.npy

Quote literals: the shell reads [ ] as a pattern. A result of more than {MAX_PRINTED:,}
elements is not printed: write it with --save. docs/cli.md lists the limits on inputs and arrays."""

CHECK_EPILOG = f"""\
Inputs are uniform random in [{RANDOM_LOW}, {RANDOM_HIGH}), so log, sqrt and fractional powers stay
defined. An index that --dims does not size gets size {CHECK_SIZE}. With several --wrt, each
derivative is checked against finite differences of the one before it. The relative
error is the absolute error divided by max(1, max |finite difference|).

examples:
  indexcalc check "log(x_i A_ij x_j)" --wrt x_k
  indexcalc check "tanh(W_ij x_j)" --wrt W_gh --dims i=2 --dims j=4
  indexcalc check "x_i A_ij x_j" --wrt x_k --wrt x_l --seed 1 --tol 1e-8

exit status 0 when the relative error is within --tol, 1 when it is not."""


class InputError(ic.IndexCalcError):
    """A command-line input that cannot be used: a file, a NAME=VALUE, a literal, --dims."""


def shown(text: str, limit: int = 60) -> str:
    """`text` quoted for a message, its middle cut out when it is long."""
    if len(text) > limit:
        text = f"{text[: limit // 2]}…{text[-limit // 4 :]}"
    return repr(text)


# -- reading inputs ------------------------------------------------------------------------


def read_expression(argument: str) -> str:
    """EXPR as notation: itself, standard input for ``-``, a file's text for ``@file``."""
    if argument == "-":
        if sys.stdin is None:
            raise InputError("cannot read standard input: it is closed")
        try:
            text = sys.stdin.read(MAX_NOTATION_CHARS + 1)
        except (OSError, UnicodeDecodeError) as error:
            raise _file_error("standard input", error) from None
        return _at_most(text, MAX_NOTATION_CHARS, "standard input")
    if argument.startswith("@"):
        return read_text(argument[1:], MAX_NOTATION_CHARS)
    return argument


def read_text(path: str, limit: int) -> str:
    """The UTF-8 text of a file, refused past `limit` characters: a device such as
    /dev/zero never ends."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read(limit + 1)
    except (OSError, UnicodeDecodeError) as error:
        raise _file_error(shown(path), error) from None
    return _at_most(text, limit, shown(path))


def _at_most(text: str, limit: int, where: str) -> str:
    if len(text) > limit:
        raise InputError(f"cannot read {where}: it is longer than {limit:,} characters")
    return text


def _file_error(where: str, error: Exception) -> InputError:
    """The error for a file (`where`: its name as a message shows it) that cannot be read."""
    if isinstance(error, FileNotFoundError):
        return InputError(f"cannot read {where}: no such file")
    if isinstance(error, UnicodeDecodeError):
        return InputError(f"cannot read {where}: it is not UTF-8 text")
    if isinstance(error, OSError):
        return InputError(f"cannot read {where}: {error.strerror or error}")
    return InputError(f"cannot read {where}: {error}")


def split_items(values: Iterable[str] | None) -> list[str]:
    """Repeated options that may also be comma-separated: ``-s A -s B,C`` → A, B, C."""
    return [item.strip() for value in values or () for item in value.split(",") if item.strip()]


def parse_dims(values: Iterable[str] | None) -> dict[str, int]:
    """``--dims i=3 --dims j=4,k=5`` → ``{"i": 3, "j": 4, "k": 5}``."""
    dims: dict[str, int] = {}
    for item in split_items(values):
        index, equals, size = (part.strip() for part in item.partition("="))
        if not equals or len(index) != 1 or not index.isalpha():
            raise InputError(f"--dims {shown(item)}: write one index letter and its size, like i=3")
        # ASCII digits only: "³".isdigit() holds, but int("³") fails.
        if not (size.isascii() and size.isdigit()):
            raise InputError(
                f"--dims {shown(item)}: the size of '{index}' must be a whole number >= 0"
            )
        if len(size.lstrip("0")) > len(str(MAX_ELEMENTS)) or int(size) > MAX_ELEMENTS:
            raise InputError(
                f"--dims {shown(item)}: an index may run over at most "
                f"{MAX_ELEMENTS:,} values, the most elements of any array indexcalc makes"
            )
        if index in dims and dims[index] != int(size):
            raise InputError(f"--dims gives '{index}' two sizes, {dims[index]} and {int(size)}")
        dims[index] = int(size)
    return dims


_NAME = re.compile(r"[^\W\d_][^\W_]*")
_LITERAL_TOKEN = re.compile(
    r"\s*(?:(?P<number>[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|nan))|(?P<mark>[\[\],]))",
    re.IGNORECASE,
)


def parse_literal(text: str) -> np.ndarray:
    """An inline array: a number or nested lists of numbers, read as JSON, never evaluated.

    Numbers may be written as Python or NumPy print them (``.5``, ``1.``, ``+2``, ``inf``)
    and, as NumPy prints them, separated by spaces only (``[[1. 2.] [3. 4.]]``); they are
    rewritten as JSON before `json.loads` reads the structure.
    """
    pieces: list[str] = []
    position = depth = 0
    while position < len(text.rstrip()):
        match = _LITERAL_TOKEN.match(text, position)
        if match is None:
            raise InputError(
                f"{shown(text)} is not a number or a list of numbers "
                f"(at {shown(text[position:], 20)}); write it like 2.5, [1,2,3] or [[1,2],[3,4]]"
            )
        number, mark = match["number"], match["mark"]
        depth += {"[": 1, "]": -1}.get(mark, 0)
        if depth > MAX_AXES:
            raise InputError(
                f"{shown(text)} nests lists more than {MAX_AXES} deep; "
                f"an array has at most {MAX_AXES} axes"
            )
        # NumPy prints [[1. 2.] [3. 4.]]: values side by side need a comma for JSON.
        if pieces and pieces[-1] not in ("[", ",") and (number or mark == "["):
            pieces.append(",")
        pieces.append(json.dumps(float(number)) if number else mark)
        position = match.end()
    try:
        value = json.loads("".join(pieces))
    except json.JSONDecodeError as error:
        raise InputError(
            f"{shown(text)} is not a number or a list of numbers ({error.msg.lower()}); "
            "write it like 2.5, [1,2,3] or [[1,2],[3,4]]"
        ) from None
    try:
        return np.array(value, dtype=np.float64)
    except ValueError:
        raise InputError(f"{shown(text)} has rows of different lengths") from None


def read_npy(stream: IO[bytes], where: str, size: int | None) -> np.ndarray:
    """An array in .npy format, its header checked before anything is allocated: the
    number of elements against `MAX_ELEMENTS` and, when the stream's `size` in bytes is
    known, the data the header announces against what follows it. Never a pickle."""
    try:
        version = np.lib.format.read_magic(stream)
        read_header = _NPY_HEADERS.get(version)
        if read_header is None:
            raise InputError(f"cannot read {where}: .npy format {version} is not supported")
        shape, fortran_order, dtype = read_header(stream)
    except (ValueError, SyntaxError, tokenize.TokenError) as error:  # NumPy tokenizes old headers
        raise InputError(f"cannot read {where}: it is not a .npy file ({error})") from None
    if dtype.kind not in "biufc":
        raise InputError(f"cannot read {where}: it holds {dtype} values, not numbers")
    if min(shape, default=0) < 0:
        raise InputError(f"cannot read {where}: its header gives the shape {shape}")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise InputError(
            f"cannot read {where}: its shape {shape} has {count:,} elements; "
            f"indexcalc reads arrays of at most {MAX_ELEMENTS:,}"
        )
    needed = count * dtype.itemsize
    if size is not None and size - stream.tell() < needed:
        raise InputError(
            f"cannot read {where}: its shape {shape} of {dtype} needs {needed:,} bytes of "
            f"data, but only {max(size - stream.tell(), 0):,} follow the header"
        )
    array = np.empty(count, dtype)
    if _read_into(stream, array.view(np.uint8).data) < needed:
        raise InputError(f"cannot read {where}: it ends before the {needed:,} bytes of its data")
    return array.reshape(shape, order="F" if fortran_order else "C")


# The .npy header formats a numeric array can have (3.0 only adds UTF-8 field names).
_NPY_HEADERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _read_into(stream: IO[bytes], buffer: memoryview) -> int:
    """Fill `buffer` from `stream`, 16 MiB at a time; the number of bytes read, fewer
    where the stream ends early."""
    filled = 0
    while filled < len(buffer):
        chunk = stream.read(min(len(buffer) - filled, 2**24))
        if not chunk:
            break
        buffer[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    return filled


def _load_npy(path: str, key: str | None) -> np.ndarray:
    with open(path, "rb") as stream:
        status = os.fstat(stream.fileno())
        size = status.st_size if stat.S_ISREG(status.st_mode) else None
        return read_npy(stream, shown(path), size)


def _load_npz(path: str, key: str | None) -> np.ndarray:
    with open(path, "rb") as file, zipfile.ZipFile(_regular(file, path)) as archive:
        members = {
            info.filename.removesuffix(".npy"): info
            for info in archive.infolist()
            if info.filename.endswith(".npy")
        }
        keys = list(members)
        if key is None and len(keys) == 1:
            key = keys[0]
        if key is None:
            raise InputError(
                f"{shown(path)} holds {len(keys)} arrays; choose one with {path}:KEY, "
                f"where KEY is one of {', '.join(keys) or '(none)'}"
            )
        if key not in members:
            raise InputError(
                f"{shown(path)} has no array {shown(key)}; "
                f"its keys are {', '.join(keys) or '(none)'}"
            )
        try:
            with archive.open(members[key]) as stream:
                return read_npy(stream, shown(f"{path}:{key}"), members[key].file_size)
        except RuntimeError as error:  # an encrypted member
            raise InputError(f"cannot read {shown(path)}: {error}") from None


def _regular(file: IO[bytes], path: str) -> IO[bytes]:
    """`file`, if it is a regular file: a zip is read by seeking, which a device such as
    /dev/zero allows without ever ending."""
    if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
        raise InputError(f"cannot read {shown(path)}: it is not a regular file")
    return file


def _loadtxt(delimiter: str | None) -> Callable[[str, str | None], np.ndarray]:
    def load(path: str, key: str | None) -> np.ndarray:
        text = read_text(path, MAX_TEXT_CHARS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": said below
            array = np.loadtxt(io.StringIO(text), delimiter=delimiter, dtype=np.float64)
        if array.size == 0:
            raise InputError(f"{shown(path)} holds no numbers")
        return array

    return load


# How each kind of file is read, by its extension.
LOADERS: dict[str, Callable[[str, str | None], np.ndarray]] = {
    ".npy": _load_npy,
    ".npz": _load_npz,
    ".csv": _loadtxt(","),
    ".txt": _loadtxt(None),
}

# What reading a damaged file can raise, besides our own errors.
_FILE_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError)


def load_value(value: str) -> np.ndarray:
    """A VALUE: a .npy, .npz (``file.npz:key``), .csv or .txt file, or an inline literal.

    A value that begins with ``[`` is a literal and never tried as a file name."""
    if value.startswith("["):
        return parse_literal(value)
    path, key = value, None
    before, colon, after = value.rpartition(":")
    if colon and before.lower().endswith(".npz"):
        path, key = before, after
    loader = LOADERS.get(Path(path).suffix.lower())
    if loader is None:
        if os.path.isfile(value):  # False, never an error, for a name too long to be a file
            raise InputError(
                f"cannot read {shown(value)}: use a {', '.join(LOADERS)} file or an inline literal"
            )
        return parse_literal(value)
    try:
        return loader(path, key)
    except _FILE_ERRORS as error:
        raise _file_error(shown(path), error) from None


def load_arrays(assignments: Sequence[str]) -> dict[str, np.ndarray]:
    """``NAME=VALUE`` arguments → arrays by name."""
    arrays: dict[str, np.ndarray] = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        name = name.strip()
        if not equals or not _NAME.fullmatch(name):
            raise InputError(
                f"{shown(assignment)} is not NAME=VALUE; "
                "give each array as, e.g., x=[1,2,3] or A=A.npy"
            )
        if name in arrays:
            raise InputError(f"array {shown(name)} is given twice")
        try:
            arrays[name] = load_value(value.strip())
        except InputError as error:
            raise InputError(f"array {shown(name)}: {error}") from None
    return arrays


# -- writing output ------------------------------------------------------------------------


def _stdout_encoding() -> str:
    return getattr(sys.stdout, "encoding", None) or "utf-8"


def _can_encode(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def write(text: str) -> None:
    """Print a line on standard output, escaping what its encoding cannot show. The line
    is flushed, so that a full disk is an error here rather than a traceback at exit."""
    encoding = _stdout_encoding()
    if not _can_encode(text, encoding):
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    try:
        print(text, flush=True)
    except BrokenPipeError:
        raise
    except OSError as error:
        drop_output()
        raise InputError(f"cannot write standard output: {error.strerror or error}") from None


def drop_output() -> None:
    """Point standard output at the null device, so that what is left in its buffer is
    not written, and does not fail again, at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def render(expr: Expr, style: str) -> str:
    """`expr` printed in `style`; Unicode falls back to ASCII if stdout cannot show it."""
    if style == "unicode" and not _can_encode(UNICODE_PROBE, _stdout_encoding()):
        style = "ascii"
    return PRINTERS[style]().doprint(expr)


def render_program(expr: Expr, style: str) -> str:
    """`expr` as a program (`indexcalc.to_program`), in ASCII where stdout needs it."""
    if style == "unicode" and not _can_encode(UNICODE_PROBE, _stdout_encoding()):
        style = "ascii"
    return ic.to_program(expr, format=style)


def format_array(array: np.ndarray) -> str:
    """NumPy's printing of the whole array (a 0-d result prints as a plain number)."""
    if array.ndim == 0:
        return str(array[()])
    return np.array2string(array, threshold=sys.maxsize)


# -- subcommands ---------------------------------------------------------------------------


def run_symbolic(args: argparse.Namespace) -> int:
    """diff and simplify: the derivative by each --wrt, or without one EXPR simplified."""
    text = read_expression(args.expr)
    symmetric = split_items(args.symmetric)
    wrt = args.wrt
    if args.matrix:
        shapes = parse_shapes(args.shapes)
        expr = ic.parse_matrix(text, shapes)
        wrt = []
        for name in args.wrt or ():
            taken = [letter for variable in wrt for letter in variable.partition("_")[2]]
            wrt.append(matrix_variable(name, expr, shapes, taken))
    else:
        expr = ic.parse(text, var=args.var)
    if wrt:
        result = ic.diff(expr, wrt, symmetric=symmetric)
    else:
        result = ic.simplify(expr, symmetric=symmetric)
    if args.matrix and args.format == "unicode" and not args.define:
        # Matrix notation in, matrix notation out where the result has one; index always.
        with contextlib.suppress(ic.MatrixFormError):
            write(ic.to_matrix(result, format=_matrix_style(), symmetric=symmetric))
        write(render(result, "unicode"))
        return EXIT_OK
    if args.define:
        if args.format in ("matrix", "python"):
            raise InputError(f"--define prints index notation, not --format {args.format}")
        write(render_program(result, args.format))
        return EXIT_OK
    if args.format == "python":
        write(ic.codegen(result, name="derivative" if args.wrt else "expression").rstrip("\n"))
        return EXIT_OK
    if args.format == "matrix":
        try:
            write(ic.to_matrix(result, format=_matrix_style(), symmetric=symmetric))
        except ic.MatrixFormError as error:
            write(render(result, "unicode"))
            print(f"indexcalc: note: no matrix form: {error}", file=sys.stderr)
        return EXIT_OK
    write(render(result, args.format))
    return EXIT_OK


def parse_shapes(values: Iterable[str] | None) -> dict[str, str]:
    """``--shapes "A:matrix x:vector" --shapes lam:scalar`` → ``{"A": "matrix", …}``."""
    shapes: dict[str, str] = {}
    for value in values or ():
        for item in value.replace(",", " ").split():
            name, colon, kind = item.partition(":")
            if not colon or not name or kind not in ("matrix", "vector", "scalar"):
                raise InputError(
                    f"--shapes {item!r}: write NAME:matrix, NAME:vector or NAME:scalar"
                )
            shapes[name] = kind
    return shapes


def _matrix_style() -> str:
    return "unicode" if _can_encode(UNICODE_PROBE + "ᵀ", _stdout_encoding()) else "ascii"


def run_eval(args: argparse.Namespace) -> int:
    """EXPR, or with --wrt its derivative, evaluated on the NAME=VALUE arrays."""
    given = ic.parse(read_expression(args.expr), var=args.var)
    expr = ic.diff(given, args.wrt, symmetric=split_items(args.symmetric)) if args.wrt else given
    arrays = load_arrays(args.arrays)
    variables = derivative_variables(given, args.wrt or ())
    dims = parse_dims(args.dims)
    check_dims_agree(dims, [given, expr, *variables], arrays)
    compiled = ic.compile(expr, args.out, dims={**variable_sizes(variables, arrays), **dims})
    unused = sorted(set(arrays) - set(compiled.inputs) - given.tensor_names)
    if unused:
        print(
            f"indexcalc: warning: the expression does not use {', '.join(unused)}",
            file=sys.stderr,
        )
    refuse_large_arrays(compiled.plan(arrays), dims)
    with np.errstate(all="ignore"):
        result = np.asarray(compiled(arrays))
    if args.save:
        try:
            np.save(args.save, result)
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or error
            raise InputError(f"cannot write {shown(args.save)}: {reason}") from None
        return EXIT_OK
    if result.size > MAX_PRINTED:
        raise InputError(
            f"the result has {result.size:,} elements, more than the {MAX_PRINTED:,} "
            "indexcalc prints; write it to a file with --save FILE.npy"
        )
    write(format_array(result))
    return EXIT_OK


def check_dims_agree(
    dims: Mapping[str, int], exprs: Sequence[Expr], arrays: Mapping[str, np.ndarray]
) -> None:
    """Refuse a --dims size that an array contradicts: the size of an axis the index runs
    over, directly or through δs that tie it to other indices, or the rank of an ε on it.

    The library sizes an index by an array where one does and uses dims only for the
    rest, so a contradicting --dims would otherwise be ignored without a word.
    """
    if not dims:
        return
    parent: dict[object, object] = {}

    def find(key: object) -> object:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]  # path halving: near-constant time per call
            key = parent[key]
        return key

    def union(a: object, b: object) -> None:
        parent[find(a)] = find(b)

    fixed: list[tuple[object, int, str]] = []  # (index or axis, its size, what fixes it)
    for node in postorder(*exprs):
        if isinstance(node, Tensor):
            shape = np.shape(arrays[node.name]) if node.name in arrays else None
            for axis, index in enumerate(node.indices):
                union(index, (node.name, axis))
                if shape is not None and len(shape) == len(node.indices):
                    what = f"axis {axis} of '{node.name}', of size {shape[axis]}"
                    fixed.append(((node.name, axis), shape[axis], what))
        elif isinstance(node, Delta):
            for index in node.indices:
                union(index, node.indices[0])
            if isinstance(node.axis, tuple):
                union(node.indices[0], node.axis)
            elif isinstance(node.axis, SizeOf):
                union(node.indices[0], node.axis.index)
            elif isinstance(node.axis, int):
                fixed.append((node.indices[0], node.axis, f"a δ over {node.axis} values"))
        elif isinstance(node, Epsilon):
            rank = len(node.indices)
            for index in node.indices:
                fixed.append((find(index), rank, f"an ε of rank {rank}"))
    for index, size in dims.items():
        for key, actual, what in fixed:
            if index in parent and find(key) == find(index) and actual != size:
                raise InputError(
                    f"--dims {index}={size} contradicts {what}, which '{index}' runs over"
                )


def refuse_large_arrays(plan: Plan, dims: Mapping[str, int]) -> None:
    """Refuse, before anything is allocated, a plan that makes an array of more than
    `MAX_ELEMENTS`: its cost's largest intermediate, or an array a step makes in a shape
    it is given (a δ written out, a broadcast, a fill), which the cost does not count."""
    made = [
        math.prod(dim.value for dim in step.operation.shape)
        for step in plan.steps
        if isinstance(step.operation, (Broadcast, Embed, Fill))
    ]
    largest = max([plan.cost.largest_intermediate, *made])
    if largest > MAX_ELEMENTS:
        given = f" (--dims {', '.join(f'{i}={n}' for i, n in dims.items())})" if dims else ""
        raise InputError(
            f"evaluating this would make an array of {largest:,} elements{given}, more than "
            f"the {MAX_ELEMENTS:,} indexcalc allows"
        )


def run_check(args: argparse.Namespace) -> int:
    """Compare each derivative, as printed and parsed back, with finite differences."""
    if args.seed < 0:
        raise InputError(f"--seed must be a whole number >= 0, not {args.seed}")
    expr = ic.parse(read_expression(args.expr), var=args.var)
    if not args.wrt and not comma_chains(expr):
        raise InputError(
            "nothing to check: give --wrt VAR, or write a comma derivative in EXPR, "
            "like f = x_i A_ij x_j; f_{,k}"
        )
    dims = parse_dims(args.dims)
    refuse_large_check(expr, args.wrt or (), dims)
    style = "unicode" if _can_encode(UNICODE_PROBE, _stdout_encoding()) else "ascii"
    result = check_derivatives(
        expr,
        args.wrt or None,
        dims=dims,
        seed=args.seed,
        tolerance=args.tol,
        style=style,
    )
    for chain in result.chains:
        write(f"derivative: {chain.derivative}")
        if chain.failure:
            write(f"FAILED: {chain.failure}")
            return EXIT_CHECK_FAILED
    write(f"max abs error: {result.absolute_error:.3e}")
    write(f"max rel error: {result.relative_error:.3e}")
    if result.ok:
        write(f"ok: within tolerance {args.tol:g}")
        return EXIT_OK
    write(f"FAILED: max rel error {result.relative_error:.3e} exceeds tolerance {args.tol:g}")
    return EXIT_CHECK_FAILED


def refuse_large_check(expr: Expr, wrt: Sequence[str], dims: Mapping[str, int]) -> None:
    """Refuse, before drawing the random arrays, a check that would make an array of more
    than `MAX_ELEMENTS` or take more than `MAX_CHECK_WORK`: central differences evaluate
    the expression twice for each element of the variable."""
    chains = [(expr, [parse_variable(w) for w in wrt])] if wrt else comma_chains(expr)
    roots = [expr, *(variable for _, variables in chains for variable in variables)]
    sizes, shapes = unified_shapes(postorder(*roots), dims, CHECK_SIZE, option="--dims")
    inputs = max((math.prod(shape) for shape in shapes.values()), default=1)
    for base, variables in chains:
        axes = list(base.free_indices)
        for variable in variables:
            axes += variable.indices
            largest = max(inputs, math.prod(sizes.get(i, CHECK_SIZE) for i in axes))
            differenced = math.prod(shapes.get(variable.name, ()))
            if largest > MAX_ELEMENTS or differenced * largest > MAX_CHECK_WORK:
                given = f" with --dims {', '.join(f'{i}={n}' for i, n in dims.items())}"
                raise InputError(
                    f"checking the derivative by {variable} would difference {differenced:,} "
                    f"elements over arrays of up to {largest:,}{given if dims else ''}, more "
                    f"than the {MAX_CHECK_WORK:,} element operations indexcalc does in a "
                    "check; give smaller --dims"
                )


def derivative_variables(expr: Expr, wrt: Iterable[str]) -> list[Tensor]:
    """The variables of each --wrt and of each comma derivative written in `expr`."""
    variables = [parse_variable(w) for w in wrt]
    return variables + [node.wrt for node in postorder(expr) if isinstance(node, Derivative)]


def variable_sizes(variables: Iterable[Tensor], arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
    """The sizes of derivative indices, from the shapes of the variables' arrays."""
    sizes: dict[str, int] = {}
    for variable in variables:
        shape = np.shape(arrays[variable.name]) if variable.name in arrays else None
        if shape is not None and len(shape) == len(variable.indices):
            sizes.update(zip(variable.indices, shape, strict=True))
    return sizes


# -- the parser and main -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="indexcalc",
        description="Tensor calculus in Einstein index notation: differentiate, simplify,\n"
        "evaluate and check expressions like x_i A_ij x_j.",
        epilog=MAIN_EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"indexcalc {ic.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")

    # Options every subcommand takes; SUPPRESS keeps a subcommand from resetting --debug.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("expr", metavar="EXPR", help='notation, "-" for standard input, or @FILE')
    common.add_argument(
        "--var", default="x", help="the variable comma derivatives f_{,i} are taken by (x)"
    )
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    symmetric = argparse.ArgumentParser(add_help=False)
    symmetric.add_argument(
        "--symmetric",
        action="append",
        metavar="NAME",
        help="a tensor known to be symmetric (repeat, or separate names by commas)",
    )
    printed = argparse.ArgumentParser(add_help=False)
    printed.add_argument(
        "--format",
        choices=[*PRINTERS, "matrix", "python"],
        default="unicode",
        help="how to print the result: index notation (unicode, or ascii when the terminal "
        "cannot show it; latex), matrix notation, or a standalone NumPy function (python)",
    )
    printed.add_argument(
        "--matrix",
        action="store_true",
        help="read EXPR in matrix notation, as matrixcalculus.org does (x'*A*x, "
        "tr(X'*B*X), norm2(A*x-b)^2); --wrt names a variable (x, W); prints the matrix "
        "form where one exists, then index notation",
    )
    printed.add_argument(
        "--shapes",
        action="append",
        metavar="NAME:KIND",
        help="with --matrix: declare NAME a matrix, vector or scalar (A:matrix x:vector "
        "lam:scalar); otherwise capitals are matrices, h to z vectors, other names scalars",
    )
    printed.add_argument(
        "--define",
        action="store_true",
        help="print the result as a program: each shared subexpression (a softmax, a "
        "hidden layer) defined once by name, then the result (index notation only)",
    )
    dims = argparse.ArgumentParser(add_help=False)
    dims.add_argument(
        "--dims",
        action="append",
        metavar="I=N",
        help="the size of index I (repeat, or separate by commas: i=3,j=4)",
    )

    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    diff = commands.add_parser(
        "diff",
        parents=[common, symmetric, printed],
        help="differentiate an expression",
        description="Print the simplified derivative of EXPR on one line. Without --wrt,\n"
        "carry out the comma derivatives written in EXPR.",
        epilog=DIFF_EPILOG,
        formatter_class=formatter,
    )
    diff.add_argument(
        "--wrt",
        action="append",
        metavar="VAR",
        help="the variable with fresh indices, like x_k or W_gh; repeat for successive derivatives",
    )
    diff.set_defaults(run=run_symbolic)

    simplify = commands.add_parser(
        "simplify",
        parents=[common, symmetric, printed],
        help="carry out comma derivatives and simplify",
        description="Print EXPR simplified: comma derivatives carried out, deltas\n"
        "contracted, like terms collected.",
        epilog=SIMPLIFY_EPILOG,
        formatter_class=formatter,
    )
    simplify.set_defaults(run=run_symbolic, wrt=None)

    evaluate = commands.add_parser(
        "eval",
        parents=[common, dims, symmetric],
        help="evaluate an expression on arrays",
        description="Evaluate EXPR on arrays given as NAME=VALUE and print the result.",
        epilog=EVAL_EPILOG,
        formatter_class=formatter,
    )
    evaluate.add_argument("arrays", nargs="*", metavar="NAME=VALUE", help="an input array")
    evaluate.add_argument(
        "--wrt",
        action="append",
        metavar="VAR",
        help="evaluate the derivative by VAR, like x_k or W_ab (repeat for successive "
        "derivatives); its indices take their sizes from VAR's array",
    )
    evaluate.add_argument(
        "--out", help="the axis order of the result, like kl (default: free indices sorted)"
    )
    evaluate.add_argument(
        "--save", metavar="FILE", help="write the result to FILE (.npy) instead of printing it"
    )
    evaluate.set_defaults(run=run_eval)

    check = commands.add_parser(
        "check",
        parents=[common, dims],
        help="compare a derivative with finite differences",
        description="Compare the symbolic derivative of EXPR with central finite differences\n"
        "at random inputs, and print the maximum absolute and relative error.",
        epilog=CHECK_EPILOG,
        formatter_class=formatter,
    )
    check.add_argument(
        "--wrt",
        action="append",
        metavar="VAR",
        help="as for diff; repeatable. Without it, each comma derivative in EXPR is checked",
    )
    check.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")
    check.add_argument(
        "--tol", type=float, default=1e-6, help="largest relative error accepted (1e-6)"
    )
    check.set_defaults(run=run_check)
    return parser


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """The arguments, with a subcommand's options allowed anywhere among its positionals
    (``eval EXPR --var x A=... x=...``), as argparse's intermixed parsing reads them."""
    commands = next(
        action.choices
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    position = next((k for k, a in enumerate(argv) if not a.startswith("-")), None)
    head = argv[:position] if position is not None else argv
    if position is None or argv[position] not in commands or set(head) - {"--debug"}:
        return parser.parse_args(argv)  # help, version and usage errors as argparse says them
    args = commands[argv[position]].parse_intermixed_args(argv[position + 1 :])
    args.command = argv[position]
    args.debug = "--debug" in head or getattr(args, "debug", False)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: ``sys.argv[1:]``); return the exit code.

    Ctrl-C at any moment, from parsing the options to printing the result, returns 130.
    """
    try:
        return _run(argv)
    except KeyboardInterrupt:
        print("indexcalc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parse_arguments(parser, list(sys.argv[1:] if argv is None else argv))
    except SystemExit as stop:  # --help, --version, or a usage error already printed
        return stop.code if isinstance(stop.code, int) else EXIT_USER_ERROR
    try:
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always", ic.NotationWarning)
            try:
                return args.run(args)
            finally:
                for note in notes:
                    print(f"indexcalc: note: {note.message}", file=sys.stderr)
    except ic.UnsizedIndexError as error:
        return _fail(f"indexcalc: error: {error.for_option('--dims')}", EXIT_USER_ERROR, args.debug)
    except ic.IndexCalcError as error:
        return _fail(f"indexcalc: error: {error}", EXIT_USER_ERROR, args.debug)
    except BrokenPipeError:  # the reader went away (| head)
        drop_output()
        return EXIT_BROKEN_PIPE
    except Exception as error:
        message = (
            f"indexcalc: internal error: {type(error).__name__}: {error} "
            "(a bug in indexcalc: rerun with --debug and report the traceback)"
        )
        return _fail(message, EXIT_INTERNAL_ERROR, args.debug)


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(message, file=sys.stderr)
    return code
