"""The `indexcalc` command line: diff, simplify, eval and check, a thin layer over the API.

Every subcommand reads EXPR as notation, ``-`` for standard input or ``@file``. A user
error (an `IndexCalcError`, or a file, literal or option that cannot be read) prints one
message prefixed ``indexcalc: error:`` and exits 2; anything else is a bug and exits 3.
``--debug`` adds the traceback. The work itself is done by the library: ``check`` is
`indexcalc.check.check_derivatives`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

import indexcalc as ic

from .check import CHECK_SIZE, RANDOM_HIGH, RANDOM_LOW, check_derivatives, comma_chains
from .diff import parse_variable
from .expr import Derivative, Expr, deep_recursion, postorder
from .printing import PRINTERS

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

UNICODE_PROBE = "δ⊙Σσε"

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

EVAL_EPILOG = """\
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

Quote literals: the shell reads [ ] as a pattern."""

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


# -- reading inputs ------------------------------------------------------------------------


def read_expression(argument: str) -> str:
    """EXPR as notation: itself, standard input for ``-``, a file's text for ``@file``."""
    if argument == "-":
        return sys.stdin.read()
    if argument.startswith("@"):
        path = argument[1:]
        try:
            return Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise _file_error(path, error) from None
    return argument


def _file_error(path: str, error: Exception) -> InputError:
    if isinstance(error, FileNotFoundError):
        return InputError(f"cannot read '{path}': no such file")
    if isinstance(error, UnicodeDecodeError):
        return InputError(f"cannot read '{path}': it is not UTF-8 text")
    if isinstance(error, OSError):
        return InputError(f"cannot read '{path}': {error.strerror or error}")
    return InputError(f"cannot read '{path}': {error}")


def split_items(values: Iterable[str] | None) -> list[str]:
    """Repeated options that may also be comma-separated: ``-s A -s B,C`` → A, B, C."""
    return [item.strip() for value in values or () for item in value.split(",") if item.strip()]


def parse_dims(values: Iterable[str] | None) -> dict[str, int]:
    """``--dims i=3 --dims j=4,k=5`` → ``{"i": 3, "j": 4, "k": 5}``."""
    dims: dict[str, int] = {}
    for item in split_items(values):
        index, equals, size = (part.strip() for part in item.partition("="))
        if not equals or len(index) != 1 or not index.isalpha():
            raise InputError(f"--dims {item!r}: write one index letter and its size, like i=3")
        if not size.isdigit():
            raise InputError(f"--dims {item!r}: the size of '{index}' must be a whole number >= 0")
        if index in dims and dims[index] != int(size):
            raise InputError(f"--dims gives '{index}' two sizes, {dims[index]} and {size}")
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
    position = 0
    while position < len(text.rstrip()):
        match = _LITERAL_TOKEN.match(text, position)
        if match is None:
            raise InputError(
                f"{text!r} is not a number or a list of numbers (at {text[position:]!r}); "
                "write it like 2.5, [1,2,3] or [[1,2],[3,4]]"
            )
        number, mark = match["number"], match["mark"]
        # NumPy prints [[1. 2.] [3. 4.]]: values side by side need a comma for JSON.
        if pieces and pieces[-1] not in ("[", ",") and (number or mark == "["):
            pieces.append(",")
        pieces.append(json.dumps(float(number)) if number else mark)
        position = match.end()
    try:
        value = json.loads("".join(pieces))
    except json.JSONDecodeError as error:
        raise InputError(
            f"{text!r} is not a number or a list of numbers ({error.msg.lower()}); "
            "write it like 2.5, [1,2,3] or [[1,2],[3,4]]"
        ) from None
    try:
        return np.array(value, dtype=np.float64)
    except ValueError:
        raise InputError(f"{text!r} has rows of different lengths") from None


def _load_npy(path: str, key: str | None) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def _load_npz(path: str, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.files)
        if key is None and len(keys) == 1:
            key = keys[0]
        if key is None:
            raise InputError(
                f"'{path}' holds {len(keys)} arrays; choose one with {path}:KEY, "
                f"where KEY is one of {', '.join(keys) or '(none)'}"
            )
        if key not in keys:
            raise InputError(
                f"'{path}' has no array '{key}'; its keys are {', '.join(keys) or '(none)'}"
            )
        return archive[key]


def _loadtxt(delimiter: str | None) -> Callable[[str, str | None], np.ndarray]:
    return lambda path, key: np.loadtxt(path, delimiter=delimiter, dtype=np.float64)


# How each kind of file is read, by its extension.
LOADERS: dict[str, Callable[[str, str | None], np.ndarray]] = {
    ".npy": _load_npy,
    ".npz": _load_npz,
    ".csv": _loadtxt(","),
    ".txt": _loadtxt(None),
}


def load_value(value: str) -> np.ndarray:
    """A VALUE: a .npy, .npz (``file.npz:key``), .csv or .txt file, or an inline literal."""
    path, key = value, None
    before, colon, after = value.rpartition(":")
    if colon and before.lower().endswith(".npz"):
        path, key = before, after
    loader = LOADERS.get(Path(path).suffix.lower())
    if loader is None:
        if Path(value).is_file():
            raise InputError(
                f"cannot read '{value}': use a {', '.join(LOADERS)} file or an inline literal"
            )
        return parse_literal(value)
    try:
        return loader(path, key)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise _file_error(path, error) from None


def load_arrays(assignments: Sequence[str]) -> dict[str, np.ndarray]:
    """``NAME=VALUE`` arguments → arrays by name."""
    arrays: dict[str, np.ndarray] = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        name = name.strip()
        if not equals or not _NAME.fullmatch(name):
            raise InputError(
                f"{assignment!r} is not NAME=VALUE; give each array as, e.g., x=[1,2,3] or A=A.npy"
            )
        if name in arrays:
            raise InputError(f"array '{name}' is given twice")
        try:
            arrays[name] = load_value(value.strip())
        except InputError as error:
            raise InputError(f"array '{name}': {error}") from None
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
    """Print a line on standard output, escaping what its encoding cannot show."""
    encoding = _stdout_encoding()
    if not _can_encode(text, encoding):
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    print(text)


def render(expr: Expr, style: str) -> str:
    """`expr` printed in `style`; Unicode falls back to ASCII if stdout cannot show it."""
    if style == "unicode" and not _can_encode(UNICODE_PROBE, _stdout_encoding()):
        style = "ascii"
    return deep_recursion(PRINTERS[style]().doprint)(expr)


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
    if args.wrt:
        result = ic.diff(text, args.wrt, var=args.var, symmetric=symmetric)
    else:
        result = ic.simplify(text, var=args.var, symmetric=symmetric)
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


def _matrix_style() -> str:
    return "unicode" if _can_encode(UNICODE_PROBE + "ᵀ", _stdout_encoding()) else "ascii"


def run_eval(args: argparse.Namespace) -> int:
    """EXPR, or with --wrt its derivative, evaluated on the NAME=VALUE arrays."""
    given = ic.parse(read_expression(args.expr), var=args.var)
    expr = ic.diff(given, args.wrt, symmetric=split_items(args.symmetric)) if args.wrt else given
    arrays = load_arrays(args.arrays)
    dims = {**variable_sizes(given, args.wrt or (), arrays), **parse_dims(args.dims)}
    compiled = ic.compile(expr, args.out, dims=dims)
    unused = sorted(set(arrays) - set(compiled.inputs) - given.tensor_names)
    if unused:
        print(
            f"indexcalc: warning: the expression does not use {', '.join(unused)}",
            file=sys.stderr,
        )
    with np.errstate(all="ignore"):
        result = np.asarray(compiled(arrays))
    if args.save:
        try:
            np.save(args.save, result)
        except OSError as error:
            raise InputError(f"cannot write '{args.save}': {error.strerror or error}") from None
    else:
        write(format_array(result))
    return EXIT_OK


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
    style = "unicode" if _can_encode(UNICODE_PROBE, _stdout_encoding()) else "ascii"
    result = check_derivatives(
        expr,
        args.wrt or None,
        dims=parse_dims(args.dims),
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


def variable_sizes(
    expr: Expr, wrt: Iterable[str], arrays: Mapping[str, np.ndarray]
) -> dict[str, int]:
    """The sizes of derivative indices, from the shapes of the variables' arrays: for each
    --wrt and each comma derivative written in `expr`."""
    variables = [parse_variable(w) for w in wrt]
    variables += [node.wrt for node in postorder(expr) if isinstance(node, Derivative)]
    sizes: dict[str, int] = {}
    for variable in variables:
        shape = np.shape(arrays.get(variable.name, ()))
        if len(shape) == len(variable.indices):
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
    """Run the command line with `argv` (default: ``sys.argv[1:]``); return the exit code."""
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
    except KeyboardInterrupt:
        print("indexcalc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (| head). Silence the flush of what is left at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
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
