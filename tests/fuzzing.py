"""Grammar-based fuzzing of every stage: parse, print, simplify, diff, evaluate, codegen, CLI.

Each input is drawn deterministically from a seed and its number:

- **programs**: valid notation written from the grammar, as `strategies.programs` writes
  it (tensors of rank 0-3 with random index patterns, products, ``⊙``, sums with broadcast
  numbers, ``sum_i(...)``, ``δ``, ``ε``, every function, powers with numeric and symbolic
  exponents, quotients, comma derivatives, definitions), with the shapes of its tensors;
- **hostile programs**: the same with hostile tensor names (compatibility characters that
  Python folds into another name, like ``ｔ1`` and ``𝐱``; Python keywords and builtins;
  the names of generated code) and extreme numbers (``1e30``, ``7^7^7``, ``0^(-1/2)``…);
- **mutants**: programs and seed texts with characters or tokens deleted, duplicated,
  swapped or replaced, random Unicode inserted, or cut short; mostly invalid;
- **nesting**: deep parentheses, calls, signs and powers, long sums, definitions that
  double;
- a fixed **corpus** of known hard inputs, the first inputs of every run.

`run_input` takes one input through every stage. Each stage's outcome is ok, an
`IndexCalcError` (counted by class: the answer a user should get), or a FAILURE: any other
exception, a stage using over `STAGE_SECONDS` of CPU time (a hang), a command line exit
code other than 0, 1 or 2, or a disagreement. Values are compared between the evaluation
of the parsed expression (the reference) and that of the simplified expression, of the
Unicode and ASCII printing parsed back, of the generated code, of a second evaluation and
of the command line's ``eval``; shapes must agree, and derivatives must match a central
difference along a random direction. Values the reference gives as non-finite or huge are
skipped, and so are points near a kink, pole or domain edge (`Runner.smooth`).

`run` runs many inputs in worker processes (one per job), each stage under a
``signal.setitimer`` alarm on CPU time and each input under a wall-clock limit after which
its worker is killed, so a hang in C code is reported too. The command line prints the
summary table and each kind of failure with its shortest input::

    python -m tests.fuzzing --inputs 100000 --jobs 2 --report fuzz.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import multiprocessing
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

import indexcalc as ic
from indexcalc import cli
from indexcalc.expr import (
    Delta,
    Epsilon,
    Expr,
    Func,
    Number,
    Power,
    Sum,
    Tensor,
    node_count,
    postorder,
)

if __package__:  # python -m tests.fuzzing
    from . import strategies
else:  # imported from tests/, as pytest does
    import strategies  # type: ignore[no-redef]

ALPHABET, DERIVATIVE_LETTERS = strategies.ALPHABET, strategies.DERIVATIVE_LETTERS
NAMES, NUMBERS, VAR = strategies.NAMES, strategies.NUMBERS, strategies.VAR
SeededChoices, Vocabulary = strategies.SeededChoices, strategies.Vocabulary

STAGE_SECONDS = 5.0  # a stage slower than this is a hang
INPUT_SECONDS = 120.0  # a worker silent for this long on one input is killed: a hang
WORKER_MEMORY = 4 << 30  # bytes of address space a worker may use
DEFAULT_SEED = 15

# -- writing valid programs ------------------------------------------------------------------

HOSTILE_NAMES = (
    # Compatibility characters: Python reads identifiers in NFKC, where they are other names.
    "ｔ1",
    "ｎｐ",
    "𝐱",
    "ｘ",
    "µ",
    "μ",
    "ﬁ",
    "ℌ",
    "Ⅸ",
    # Python keywords and builtins, NumPy's name, and the names generated code uses.
    "lambda",
    "def",
    "None",
    "True",
    "import",
    "range",
    "len",
    "print",
    "np",
    "numpy",
    "float",
    "self",
    "t1",
    "t2",
    "grad",
    "derivative",
    "expression",
    "result",
    # Index letters and derivative letters as tensor names.
    "i",
    "k",
    "p",
)
EXTREME_NUMBERS = (
    "1e30",
    "1e-30",
    "1e299",
    "1e-299",
    "123456789012345678901234567890",
    "0.000000000000000000001",
    "(7^7^7)",
    "(0^(-1/2))",
    "((-8)^(1/3))",
    "((-1)^(1/2))",
    "(0^0)",
    "(2^1000)",
    "(2^-1074)",
    "(10^300)",
    "(1e30^10)",
    "(1 - 1)",
)
# Exponents of any base: negative and fractional too, whose poles and domain edges the
# comparisons skip (`Runner.smooth`).
EXPONENTS = ("2", "2", "3", "0", "1", "-1", "-2", "0.5", "(3/2)", "(-1/2)")
EXTREME_EXPONENTS = ("1e30", "(7^7^7)", "-1e30", "(1/3)", "1e-30", "1000")


@dataclass(frozen=True)
class FuzzInput:
    """One input: its text, and for written programs the shapes their tensors were given."""

    number: int
    kind: str
    text: str
    shapes: dict[str, tuple[int, ...]] | None = None


def write_program(rng: random.Random, hostile: bool) -> tuple[str, dict[str, tuple[int, ...]]]:
    """A valid program (up to two definitions, then an expression) and its tensors' shapes,
    written by `strategies.Generator` from the seeded `rng`; hostile ones with hostile
    names, extreme numbers and exponents, and functions outside their domains."""
    vocabulary = Vocabulary(exponents=EXPONENTS)
    if hostile:
        names = {rank: list(names) for rank, names in NAMES.items()}
        for name in rng.sample(HOSTILE_NAMES, 4):
            names[rng.randrange(4)].append(name)
        vocabulary = Vocabulary(
            names={rank: tuple(group) for rank, group in names.items()},
            numbers=NUMBERS + EXTREME_NUMBERS,
            exponents=EXPONENTS + EXTREME_EXPONENTS,
            outside_domains=True,
        )
    written = strategies.write_program(SeededChoices(rng), vocabulary)
    return written.text, written.shapes


# -- mutating --------------------------------------------------------------------------------

SEEDS = (
    "x_i A_ij x_j",
    "sum_i(log(1 + exp(-y_i X_ij w_j)))",
    "eps_ij eps_kl X_ik X_jl / 2",
    "yhat_i = σ(W_ij x_j); loss = (yhat_j - y_j)(yhat_j - y_j); loss_{,(gh)}",
    "u_i = A_ij x_j\nu_i u_i  # a comment",
    "f_i = x_i x_j x_j; f_{k,ij}",
    "δ_{(ij)(kl)} A_kl + x_i ⊙ y_j .* z_j - 3/2 A_{i j}",
    "(x_i x_i)^(1/2) + sqrt(x_k x_k)**-1 - Σ_{ij}(relu(A_ij) step(A_ij))",
    "(exp(x_i) / sum_j(exp(x_j)))_{,k}",
)
TOKEN = re.compile(r"\s+|[^\W\d_][^\W_]*|\d+\.?\d*(?:[eE][+-]?\d+)?|\*\*|\.\*|.", re.DOTALL)
# Characters the notation gives meaning to, and Unicode that looks like it or hides.
NOTATION = "ijkxyAWδεσΣ∑⊙_{}(),;=+-*/^.#0123456789 \n" + "sumdeltaepslogexpqrtanh"
ODD_CHARACTERS = (
    "\u200b\u0301\ufeff\u00a0\u2028\x00\t\r"  # zero width, combining, BOM, separators, NUL
    "ｉｊ𝑖ﬁµμ²½٣∞−×·…"  # compatibility letters, superscripts, other digits and minus signs
    "\U0001f600\ud800"  # an emoji and a lone surrogate
)
TOKENS = (
    *"(){},;=+-*/^_",
    "_{",
    "**",
    ".*",
    "⊙",
    "δ_",
    "ε_",
    "sum_i(",
    "Σ_{ij}(",
    "exp(",
    "log(",
    "σ(",
    "x_i",
    "A_ij",
    "x_{,k}",
    "_{,k}",
    "_{(ij)(kl)}",
    "h_i = ",
    "\n",
    "#",
    "0",
    "-1",
    "1e30",
    "7^7^7",
    "1e400",
    "lambda",
    "sum",
    "delta",
    "ｔ1_i",
    "𝐱",
)


def mutate(text: str, rng: random.Random) -> str:
    """`text` with one to four characters or tokens deleted, duplicated, swapped, replaced
    or inserted, sometimes cut short."""
    pieces = TOKEN.findall(text) if rng.random() < 0.5 else list(text)
    for _ in range(rng.randint(1, 4)):
        if not pieces:
            break
        at = rng.randrange(len(pieces))
        kind = rng.choice(["delete", "duplicate", "swap", "insert", "replace"])
        if kind == "delete":
            del pieces[at]
        elif kind == "duplicate":
            pieces.insert(at, pieces[at])
        elif kind == "swap":
            other = rng.randrange(len(pieces))
            pieces[at], pieces[other] = pieces[other], pieces[at]
        else:
            pool = rng.choice([NOTATION, ODD_CHARACTERS, TOKENS, None])
            new = chr(rng.randrange(0x20, 0x3000)) if pool is None else rng.choice(pool)
            if kind == "insert":
                pieces.insert(at, new)
            else:
                pieces[at] = new
    mutant = "".join(pieces)
    if rng.random() < 0.1:
        mutant = mutant[: rng.randrange(len(mutant) + 1)]
    return mutant


def nested(rng: random.Random) -> str:
    """Deep or long structure: nested parentheses, calls, signs, powers, sums, definitions."""
    depth = rng.choice([10, 100, 500, 999, 1000, 1001, 2000, 5000, 20000])
    form = rng.choice(["parens", "calls", "signs", "powers", "sum", "product", "defs", "sums"])
    if form == "parens":
        return "(" * depth + "x_i" + ")" * depth + " A_ij"
    if form == "calls":
        name = rng.choice(["exp", "tanh", "σ", "log1p", "abs"])
        return f"{name}(" * depth + "x_i" + ")" * depth
    if form == "signs":
        return "-" * depth + "x_i"
    if form == "powers":
        return "x" + "^x" * depth
    if form == "sum":  # at most 6,000 terms: under 100 KB, the size within which no stage
        # may take more than a few seconds
        return " + ".join(f"a{k}_ij x_j" for k in range(min(depth, 6000)))
    if form == "product":
        return " ".join(["c"] * depth) + " x_i"
    if form == "defs":  # each definition doubles the tree; interning keeps it a DAG
        count = min(depth, rng.choice([10, 20, 30, 60]))
        lines = ["h0 = x_i x_i"] + [f"h{k} = h{k - 1} h{k - 1}" for k in range(1, count)]
        return "; ".join([*lines, f"h{count - 1}"])
    return "sum_i(" * min(depth, 50) + "x_i" + ")" * min(depth, 50)


CORPUS = (
    # Extreme numbers.
    "7^7^7",
    "7^7^7^7",
    "0^(-1/2)",
    "(-8)^(1/3)",
    "(-8)^(1/3) x_i",
    "1e30",
    "1e30 x_i x_i",
    "1e300 x_i x_i 1e300",
    "1e-300 x_i / 1e300",
    "2^(-1074) x_i",
    "(1e30)^10 x_i",
    "x_i^1e30",
    "x_i^(7^7^7)",
    "x^(10^300)",
    "x_i^-1e30",
    "123456789012345678901234567890123456789 x_i",
    "0.1^400 x_i",
    "1e299 - 1e299 + x_i",
    "exp(1e30 x_i)",
    "log(0 x_i)",
    "0^0 + 0^x",
    "(x_i - x_i)^-1",
    # Hostile names.
    "ｔ1_i x_i",
    "t1_i ｔ1_i",
    "𝐱_i x_i",
    "ｘ_i x_i",
    "µ_i μ_i",
    "ﬁ_i fi_i",
    "ℌ_ij H_ji",
    "ｎｐ_i np_i",
    "lambda_i range_i",
    "None + True",
    "import_ij def_j",
    "print_i len_i",
    "t1_i t2_j grad_ij",
    "result_i expression_i",
    "i_i",
    "p_q q_p",
    "x_{,k} ｘ_k",
    "sum_i(np_i)",
    # Deep nesting and long input.
    "(" * 999 + "x_i" + ")" * 999,
    "(" * 1001 + "x_i" + ")" * 1001,
    "exp(" * 999 + "x" + ")" * 999,
    "-" * 5000 + "x",
    "x" + "^x" * 2000,
    "; ".join(["h0 = x_i x_i"] + [f"h{k} = h{k - 1} h{k - 1}" for k in range(1, 40)] + ["h39"]),
)


def make_input(seed: int, number: int) -> FuzzInput:
    """Input `number` of the run with `seed`; the same for the same pair, in any process."""
    if number < len(CORPUS):
        return FuzzInput(number, "corpus", CORPUS[number])
    rng = random.Random(f"{seed}:{number}")
    draw = rng.random()
    if draw < 0.35:
        text, shapes = write_program(rng, hostile=False)
        return FuzzInput(number, "program", text, shapes)
    if draw < 0.52:
        text, shapes = write_program(rng, hostile=True)
        return FuzzInput(number, "hostile", text, shapes)
    if draw < 0.97:
        source = (
            rng.choice(SEEDS) if rng.random() < 0.2 else write_program(rng, rng.random() < 0.3)[0]
        )
        return FuzzInput(number, "mutant", mutate(source, rng))
    return FuzzInput(number, "nesting", nested(rng))


# -- running one input through every stage --------------------------------------------------


class StageTimeout(BaseException):
    """Raised by the alarm in a stage that runs over STAGE_SECONDS.

    A BaseException, so that the library's ``except Exception`` cannot swallow it.
    """


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise StageTimeout in the main thread once this process has used `seconds` of CPU.

    CPU time, not wall time, so that a machine busy with other work does not turn slow
    stages into hangs; a stage that waits without computing is left to the pool's
    wall-clock limit. Without profiling alarms (Windows, other threads) nothing is timed.
    """
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def alarm(signum, frame):
        raise StageTimeout

    previous = signal.signal(signal.SIGPROF, alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


class Abandon(Exception):
    """Stop working on this input: a stage hung."""


@dataclass
class Failed:
    """A stage that raised: the exception, counted already."""

    error: BaseException

    @property
    def expected(self) -> bool:
        return isinstance(self.error, ic.IndexCalcError)


@dataclass
class Record:
    """What happened to one input."""

    number: int
    kind: str
    text: str
    parsed: bool = False
    stages: int = 0
    comparisons: int = 0
    errors: Counter = field(default_factory=Counter)  # exception class name → count
    failures: list[dict[str, Any]] = field(default_factory=list)
    tainted: bool = False  # a stage was interrupted: the process's caches may be broken
    seconds: float = 0.0
    shapes: dict[str, tuple[int, ...]] | None = None  # of the arrays evaluated on
    context: dict[str, str] = field(default_factory=dict)  # the variable being worked on

    def fail(self, kind: str, stage: str, detail: str, **more: Any) -> None:
        where = {"shapes": self.shapes} if self.shapes is not None else {}
        self.failures.append(
            {"number": self.number, "kind": kind, "stage": stage, "text": self.text}
            | where
            | self.context
            | more
            | {"detail": detail}
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind,
            "parsed": self.parsed,
            "stages": self.stages,
            "comparisons": self.comparisons,
            "errors": dict(self.errors),
            "failures": self.failures,
            "tainted": self.tainted,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Point:
    """Arrays to evaluate an expression on, and the size of every index letter."""

    arrays: dict[str, np.ndarray]
    sizes: dict[str, int]
    named: str = ""  # summed letters given by name too (see `Runner.compare`)

    def dims(self, out: str) -> dict[str, int]:
        return {letter: self.sizes[letter] for letter in out + self.named if letter in self.sizes}


RTOL = 1e-6  # stages that compute the same numbers agree to this, relative to the largest
FD_RTOL = 1e-4  # a derivative and a central difference agree to this
LARGEST = 1e8  # values beyond this (in the reference) are not compared
KINK_MARGIN = 1e-3  # how far a kink's, pole's or domain edge's argument must stay from it
FD_STEP = 1e-6
HUGE_CONSTANT = 1e12  # beside such a number, a step of FD_STEP is lost (see `derivative`)
MAX_VARIABLES = 4  # tensors differentiated by, per input, chosen at random
MAX_COMPARED_NODES = 300  # larger expressions go through every stage, but values are not compared


class Runner:
    """Runs one input through every stage, recording errors and failures."""

    def __init__(self, item: FuzzInput, seed: int):
        self.item = item
        self.record = Record(item.number, item.kind, item.text)
        self.rng = np.random.default_rng([seed, item.number])

    # -- stages --------------------------------------------------------------------------

    def stage(self, name: str, function: Callable, *args, **kwargs) -> Any:
        """`function(*args)` under the time limit; a Failed if it raised."""
        self.record.stages += 1
        start = time.process_time()
        try:
            with time_limit(STAGE_SECONDS), warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                return function(*args, **kwargs)
        except StageTimeout:
            self.record.tainted = True
            self.record.fail("hang", name, f"interrupted after {STAGE_SECONDS} s of CPU time")
            raise Abandon from None
        except Exception as error:
            self.record.errors[type(error).__name__] += 1
            if not isinstance(error, ic.IndexCalcError):
                self.record.fail("exception", name, _traceback(error))
            return Failed(error)
        finally:
            elapsed = time.process_time() - start
            if elapsed > STAGE_SECONDS and not self.record.tainted:
                self.record.fail("hang", name, f"took {elapsed:.1f} s of CPU time")

    def run(self) -> Record:
        start = time.perf_counter()
        with contextlib.suppress(Abandon):
            self.run_stages()
        self.record.seconds = time.perf_counter() - start
        return self.record

    def run_stages(self) -> None:
        expr = self.stage("parse", ic.parse, self.item.text, var=VAR)
        if isinstance(expr, Failed):
            self.command_line(["simplify", self.item.text])
            return
        self.record.parsed = True
        self.printing("expression", expr)
        point = self.point(expr)
        out = "".join(expr.free_indices)
        reference = self.stage("evaluate", _evaluate, expr, point, out)
        compare = (
            not isinstance(reference, Failed)
            and node_count(expr) <= MAX_COMPARED_NODES
            and not _ill_conditioned(expr)
            and self.smooth(expr, point)
        )
        if compare:
            self.same_value_everywhere(expr, point, out, reference, "expression")
        else:
            self.stage("simplify expression", ic.simplify, expr)
        derivatives = []
        letters = self.fresh_letters()
        ranks = _tensor_ranks(expr)
        names = sorted(ranks)
        if len(names) > MAX_VARIABLES:
            names = sorted(self.rng.choice(names, MAX_VARIABLES, replace=False))
        for name in names:
            rank = ranks[name]
            if rank > len(letters):
                continue
            wrt = f"{name}_{''.join(letters[:rank])}" if rank else name
            self.record.context = {"wrt": wrt}
            derivative = self.stage("diff", ic.diff, expr, wrt)
            if isinstance(derivative, Failed):
                continue
            derivatives.append((wrt, derivative))
            self.derivative(expr, point, out, reference if compare else None, name, wrt, derivative)
        self.record.context = {}
        self.command_line_on(point, out, reference, derivatives)

    def printing(self, what: str, expr: Expr) -> None:
        for printer in (str, ic.to_ascii, ic.to_latex):
            self.stage(f"print {what}", printer, expr)
        if len(expr.free) <= 2:
            self.stage(f"matrix {what}", ic.to_matrix, expr)

    def same_value_everywhere(
        self, expr: Expr, point: Point, out: str, reference: np.ndarray, what: str
    ) -> None:
        """The simplified, reprinted and generated forms of `expr` give `reference`."""
        before = {name: array.copy() for name, array in point.arrays.items()}
        simplified = self.stage(f"simplify {what}", ic.simplify, expr)
        if not isinstance(simplified, Failed):
            self.compare(f"simplify {what}", reference, simplified, _evaluate, point, out)
        for style, printer in (("unicode", str), ("ascii", ic.to_ascii)):
            stage = f"reparse {style} {what}"
            text = self.stage(f"print {what}", printer, expr)
            if isinstance(text, Failed):
                continue
            reparsed = self.stage(stage, ic.parse, text, var=VAR)
            if isinstance(reparsed, Failed):
                if reparsed.expected:
                    self.record.fail("disagreement", stage, f"printed {text!r}: {reparsed.error}")
                continue
            # The axis a derivative's δ runs over is not printed (docs/language.md), so
            # printed text may need a size that the derivative itself knew.
            allowed = ic.UnsizedIndexError
            self.compare(stage, reference, reparsed, _evaluate, point, out, allowed)
        self.compare(
            f"codegen {what}", reference, expr, _generated, point, out, allowed=ic.CodegenError
        )
        again = self.stage(f"evaluate {what} again", _evaluate, expr, point, out)
        if not isinstance(again, Failed) and not np.array_equal(again, reference, equal_nan=True):
            self.record.fail(
                "disagreement", f"evaluate {what} again", "a second evaluation differs"
            )
        for name, array in point.arrays.items():
            if not np.array_equal(array, before[name], equal_nan=True):
                self.record.fail("disagreement", f"evaluate {what}", f"input {name!r} was changed")
            if np.shares_memory(reference, array):
                self.record.fail(
                    "disagreement", f"evaluate {what}", f"result shares memory with {name!r}"
                )

    def compare(self, stage, reference, expr, evaluator, point, out, allowed=()) -> None:
        value = self.stage(stage, evaluator, expr, point, out)
        while (
            not allowed
            and isinstance(value, Failed)
            and isinstance(value.error, ic.UnsizedIndexError)
            and value.error.index in point.sizes
            and value.error.index not in point.named
        ):
            # A form that no longer holds what sized an index (a δ tied it to one that
            # dims sized, say) asks for its size, as documented; given the size the
            # reference used, it must agree with it.
            point = replace(point, named=point.named + value.error.index)
            value = self.stage(stage, evaluator, expr, point, out)
        if isinstance(value, Failed):
            if value.expected and not isinstance(value.error, allowed):
                self.record.fail(
                    "disagreement",
                    stage,
                    f"raised {type(value.error).__name__} where the reference evaluated: "
                    f"{value.error}",
                    expr=_show(expr),
                )
            return
        self.record.comparisons += 1
        problem = disagreement(reference, value)
        if problem:
            self.record.fail("disagreement", stage, problem, expr=_show(expr))

    def derivative(self, expr, point, out, reference, name, wrt, derivative) -> None:
        self.printing("derivative", derivative)
        variable = point.arrays.get(name)
        if variable is None:
            return
        letters = wrt.partition("_")[2]
        sizes = dict(zip(letters, variable.shape, strict=True))
        dpoint = Point(point.arrays, {**point.sizes, **sizes})
        dout = out + letters
        value = self.stage("evaluate derivative", _evaluate, derivative, dpoint, dout)
        if isinstance(value, Failed):
            defined = reference is not None and not np.isnan(reference).any()
            if value.expected and defined:
                self.record.fail(
                    "disagreement",
                    "evaluate derivative",
                    f"the derivative by {wrt} raised {type(value.error).__name__} where the "
                    f"expression evaluated: {value.error}",
                    expr=_show(derivative),
                )
            return
        expected_shape = np.shape(reference) + variable.shape if reference is not None else None
        if expected_shape is not None and value.shape != expected_shape:
            self.record.fail(
                "disagreement",
                "evaluate derivative",
                f"∂/∂{wrt} has shape {value.shape}, expected {expected_shape}",
                expr=_show(derivative),
            )
            return
        if reference is None or not _finite(value) or not _finite(reference):
            return
        self.same_value_everywhere(derivative, dpoint, dout, value, "derivative")
        if _holds_huge_constants(expr):
            return  # u + 10^29 loses u in float64: a difference sees no change at all
        direction = self.rng.normal(size=variable.shape)
        along = self.stage("difference", _central_difference, expr, point, out, name, direction)
        if isinstance(along, Failed):
            return
        self.record.comparisons += 1
        predicted = np.tensordot(value, direction, axes=variable.ndim)
        largest = max(np.max(np.abs(reference)), np.max(np.abs(predicted)))
        problem = disagreement(along, predicted, FD_RTOL, scale=1 + largest)
        if problem:
            self.record.fail(
                "disagreement",
                "derivative vs difference",
                f"∂/∂{wrt} along a random direction: {problem}",
                expr=_show(derivative),
            )

    # -- the command line ----------------------------------------------------------------

    def command_line_on(self, point, out, reference, derivatives) -> None:
        """One command line run: diff, simplify, eval or check, in a random format.

        ``check`` may exit 1: central differences at its own random inputs are no better
        than their conditioning (``c^5000``, a constant 1e6 added); the derivative itself
        is compared with a difference at a smooth point in `derivative`.
        """
        text = self.item.text
        kind = self.rng.choice(["diff", "simplify", "eval", "check"], p=[0.4, 0.2, 0.3, 0.1])
        style = str(self.rng.choice(["unicode", "ascii", "latex", "matrix", "python"]))
        if kind == "diff" and derivatives:
            wrt, derivative = derivatives[0]
            code, printed = self.command_line(["diff", text, "--wrt", wrt, "--format", style])
            if code == 0 and style == "unicode" and printed != f"{derivative}\n":
                self.record.fail(
                    "disagreement", "cli diff", f"printed {printed!r}, the library {derivative}"
                )
        elif kind == "eval" and not isinstance(reference, Failed):
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "value.npy")
                arguments = ["eval", text, *_literals(point.arrays), "--save", path]
                dims = point.dims(out)
                if dims:
                    arguments += ["--dims", ",".join(f"{k}={n}" for k, n in dims.items())]
                code, _ = self.command_line(arguments)
                if code == 0:
                    self.record.comparisons += 1
                    problem = disagreement(reference, np.load(path))
                    if problem:
                        self.record.fail("disagreement", "cli eval", problem)
        elif kind == "check" and derivatives:
            self.command_line(["check", text, "--wrt", derivatives[0][0]])
        else:
            self.command_line(["simplify", text, "--format", style])

    def command_line(self, arguments: list[str]) -> tuple[int | None, str]:
        """Run ``indexcalc ARGUMENTS`` in this process: its exit code (None if it raised)
        and its output."""
        if arguments[1].startswith("@") or arguments[1] == "-":
            arguments[1] = " " + arguments[1]  # not a file name or standard input
        output, errors = io.StringIO(), io.StringIO()
        with contextlib.ExitStack() as stack:
            stack.enter_context(contextlib.redirect_stdout(output))
            stack.enter_context(contextlib.redirect_stderr(errors))
            stack.enter_context(_stdin(""))
            code = self.stage(f"cli {arguments[0]}", cli.main, arguments)
        if isinstance(code, Failed):
            return None, output.getvalue()
        if code not in (0, 1, 2):
            self.record.fail(
                "cli exit",
                f"cli {arguments[0]}",
                f"exit {code}: {errors.getvalue()[-2000:]}",
                arguments=[argument[:2000] for argument in arguments[:40]],
            )
        return code, output.getvalue()

    # -- points --------------------------------------------------------------------------

    def point(self, expr: Expr) -> Point:
        """Random arrays for every tensor of `expr`, with sizes that fit together."""
        ranks = _tensor_ranks(expr)
        shapes = self.item.shapes or {}
        if all(
            len(shapes.get(name, ())) == rank and name in shapes for name, rank in ranks.items()
        ):
            sizes = _letter_sizes(expr, self.rng, shapes)
        else:
            sizes = _letter_sizes(expr, self.rng, {})
            shapes = {}
        arrays = {}
        for name, indices in _tensor_indices(expr).items():
            shape = shapes.get(name) or tuple(sizes.get(letter, 2) for letter in indices)
            arrays[name] = self.rng.uniform(-1.5, 1.5, size=shape)
        self.record.shapes = {name: array.shape for name, array in arrays.items()}
        return Point(arrays, sizes)

    def fresh_letters(self) -> str:
        return "".join(letter for letter in DERIVATIVE_LETTERS if letter not in self.item.text)

    def smooth(self, expr: Expr, point: Point) -> bool:
        """Whether the point is away from every kink, pole and domain edge in `expr`."""
        for node in postorder(expr):
            edges = _edges(node)
            if edges is None:
                continue
            argument, transform = edges
            value = self.stage("smooth", _evaluate, argument, point, "".join(argument.free_indices))
            if isinstance(value, Failed) or not _finite(value):
                return False
            if np.any(np.abs(transform(value)) < KINK_MARGIN):
                return False
        return True


def _edges(node: Expr) -> tuple[Expr, Callable[[np.ndarray], np.ndarray]] | None:
    """The argument of `node` that must stay away from zero, after a transform; or None."""
    if isinstance(node, Func):
        if node.name in ("abs", "relu", "sign", "step", "sqrt", "log"):
            return node.arg, lambda v: v
        if node.name == "log1p":
            return node.arg, lambda v: v + 1
        if node.name == "tan":
            return node.arg, np.cos
        if node.name in ("sin", "cos"):
            # Of an argument over 10⁴ a difference step is lost to rounding: ill-conditioned.
            return node.arg, lambda v: 10 / (1 + np.abs(v))
        return None
    if isinstance(node, Power):
        exponent = node.exponent
        if isinstance(exponent, Number) and exponent.value >= 0 and exponent.value.denominator == 1:
            return None
        return node.base, lambda v: v
    return None


def _tensor_indices(expr: Expr) -> dict[str, tuple[str, ...]]:
    """Each tensor's indices at its first use (a comma derivative's variable included)."""
    found: dict[str, tuple[str, ...]] = {}
    for node in postorder(expr):
        if isinstance(node, Tensor):
            found.setdefault(node.name, node.indices)
    return found


def _tensor_ranks(expr: Expr) -> dict[str, int]:
    return {name: len(indices) for name, indices in _tensor_indices(expr).items()}


def _letter_sizes(
    expr: Expr, rng: np.random.Generator, shapes: dict[str, tuple[int, ...]]
) -> dict[str, int]:
    """A size for every index letter: letters tied by a tensor axis or a δ share a size,
    ε fixes its letters' size to its rank, and the tensors' `shapes` fix theirs."""
    parent: dict[Any, Any] = {}

    def find(item):
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def join(a, b):
        parent[find(a)] = find(b)

    fixed: dict[Any, int] = {}
    for node in postorder(expr):
        if isinstance(node, Tensor):
            for axis, letter in enumerate(node.indices):
                join(("letter", letter), ("axis", node.name, axis))
                if node.name in shapes:
                    fixed[("axis", node.name, axis)] = shapes[node.name][axis]
        elif isinstance(node, Delta):
            for letter in node.indices[1:]:
                join(("letter", letter), ("letter", node.indices[0]))
        elif isinstance(node, Epsilon):
            for letter in node.indices:
                fixed.setdefault(("letter", letter), len(node.indices))
    by_class: dict[Any, int] = {}
    for item, size in fixed.items():
        by_class.setdefault(find(item), size)
    sizes = {}
    for item in list(parent):
        if item[0] == "letter":
            root = find(item)
            if root not in by_class:
                by_class[root] = int(rng.choice([2, 3]))
            sizes[item[1]] = by_class[root]
    return sizes


def _evaluate(expr: Expr, point: Point, out: str) -> np.ndarray:
    value = ic.evaluate(expr, point.arrays, out=out or None, dims=point.dims(out))
    return np.asarray(value)


def _generated(expr: Expr, point: Point, out: str) -> np.ndarray:
    """`expr` by the function `ic.codegen` writes, run in a fresh namespace."""
    source = ic.codegen(expr, name="grad", out=out or None, dims=point.dims(out))
    namespace: dict[str, Any] = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    function = namespace["grad"]
    code = function.__code__
    parameters = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    by_python_name: dict[str, list[str]] = {}
    for name in point.arrays:
        by_python_name.setdefault(unicodedata.normalize("NFKC", name), []).append(name)
    for parameter, name in RENAMED.findall(function.__doc__ or ""):
        by_python_name[parameter] = [name]
    arguments = {}
    for parameter in parameters:
        names = by_python_name.get(parameter, [])
        if len(names) != 1:
            raise AssertionError(
                f"generated parameter {parameter!r} is the tensor(s) {names} to Python"
            )
        arguments[parameter] = point.arrays[names[0]]
    return np.asarray(function(**arguments))


# How a generated function's docstring names a parameter renamed from its tensor's name.
RENAMED = re.compile(r"^ *(\w+) \(tensor (\S+)\):", re.MULTILINE)


def _central_difference(expr, point, out, name, direction) -> np.ndarray:
    """(f(x + h d) - f(x - h d)) / 2h for the tensor `name` moved along `direction`."""
    function = ic.compile(expr, out or None, dims=point.dims(out))
    base = point.arrays[name]
    step = FD_STEP * max(1.0, float(np.max(np.abs(base), initial=0.0)))
    up = function({**point.arrays, name: base + step * direction})
    down = function({**point.arrays, name: base - step * direction})
    return (np.asarray(up) - np.asarray(down)) / (2 * step)


def disagreement(
    reference: np.ndarray, value: Any, rtol: float = RTOL, scale: float | None = None
) -> str | None:
    """Why `value` differs from `reference` (shape, or numbers where the reference is
    finite and not huge, beyond `rtol` times the largest of them); None if it does not."""
    value = np.asarray(value)
    if value.shape != reference.shape:
        return f"shape {value.shape}, expected {reference.shape}"
    if np.iscomplexobj(value) and not np.iscomplexobj(reference):
        return f"complex values {value.ravel()[:3]!r}, where the reference is real"
    if np.isnan(reference).any():
        # Undefined somewhere (a real power of a negative number, say): where a δ or a
        # zero multiplies the undefined part, 0 and nan are both fair answers.
        return None
    usable = np.isfinite(reference) & (np.abs(reference) < LARGEST)
    if not usable.any():
        return None
    expected, actual = reference[usable], value[usable]
    if scale is None:
        scale = 1 + float(np.max(np.abs(expected)))
    with np.errstate(all="ignore"):
        error = np.abs(actual.astype(np.float64) - expected)
    bad = ~(error <= rtol * scale)
    if not bad.any():
        return None
    worst = int(np.argmax(np.where(bad, np.nan_to_num(error, nan=np.inf), -1)))
    return (
        f"{int(bad.sum())} of {bad.size} values differ: {actual[worst]!r} where the "
        f"reference has {expected[worst]!r} (tolerance {rtol * scale:.2g})"
    )


def _ill_conditioned(expr: Expr) -> bool:
    """Whether a function's argument, or a term of a sum, holds a constant beyond
    `HUGE_CONSTANT`: sin(T − 10^29) is rounding noise, and so is 0.5 + 2^1000 − 2^1000 in
    float64 (0, where simplified exactly it is 0.5); two correct orders of summation give
    two noises."""
    return any(
        (isinstance(node, Func) and _holds_huge_constants(node.arg))
        or (isinstance(node, Sum) and any(_holds_huge_constants(t) for t in node.terms))
        for node in postorder(expr)
    )


def _holds_huge_constants(expr: Expr) -> bool:
    """Whether a number in `expr`, or a power of numbers (2^1000 stays a power), is
    beyond `HUGE_CONSTANT`, beside which a central difference's step of 10⁻⁶ is lost to
    float64 rounding."""
    for node in postorder(expr):
        if isinstance(node, Number) and abs(node.value) > HUGE_CONSTANT:
            return True
        if (
            isinstance(node, Power)
            and isinstance(node.base, Number)
            and isinstance(node.exponent, Number)
            and abs(node.base.value) > 1
            and float(node.exponent.value) * math.log10(abs(node.base.value)) > 12
        ):
            return True
    return False


def _finite(value: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(value)) and np.all(np.abs(value) < LARGEST))


def _literals(arrays: dict[str, np.ndarray]) -> list[str]:
    return [f"{name}={json.dumps(array.tolist())}" for name, array in arrays.items()]


@contextlib.contextmanager
def _stdin(text: str) -> Iterator[None]:
    previous = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = previous


def _show(expr: Expr) -> str:
    try:
        text = str(expr)
    except Exception as error:
        return f"<unprintable: {type(error).__name__}>"
    return text if len(text) < 2000 else text[:2000] + "…"


def _traceback(error: BaseException) -> str:
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    text = "".join(lines)
    return text if len(text) < 6000 else text[:1500] + "\n…\n" + text[-4000:]


def run_input(item: FuzzInput, seed: int) -> Record:
    """Run one input through every stage."""
    return Runner(item, seed).run()


# -- running many inputs ----------------------------------------------------------------------


@dataclass
class Report:
    """The outcome of a run: counts, and every failure with its input."""

    seed: int
    inputs: int = 0
    kinds: Counter = field(default_factory=Counter)
    parsed: int = 0
    stages: int = 0
    comparisons: int = 0
    errors: Counter = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, record: dict[str, Any]) -> None:
        self.inputs += 1
        self.kinds[record["kind"]] += 1
        self.parsed += record["parsed"]
        self.stages += record["stages"]
        self.comparisons += record["comparisons"]
        self.errors.update(record["errors"])
        self.failures.extend(record["failures"])

    def count(self, kind: str) -> int:
        return sum(1 for failure in self.failures if failure["kind"] == kind)

    @property
    def other_exceptions(self) -> Counter:
        expected = {name for name in dir(ic) if _is_indexcalc_error(getattr(ic, name))}
        return Counter({k: n for k, n in self.errors.items() if k not in expected | {"InputError"}})

    def table(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.kinds.items()))
        rows = [
            ("inputs", f"{self.inputs}  ({kinds})"),
            ("parsed", str(self.parsed)),
            ("stage calls", str(self.stages)),
            ("value comparisons", str(self.comparisons)),
            ("seed", str(self.seed)),
            ("seconds", f"{self.seconds:.0f}"),
        ]
        lines = [f"{name:<34}{value}" for name, value in rows]
        lines.append("exceptions by type (all stage calls)")
        others = self.other_exceptions
        for name, n in self.errors.most_common():
            mark = "  FAILURE: not an IndexCalcError" if name in others else ""
            lines.append(f"  {name:<32}{n}{mark}")
        lines.append("failures")
        for kind in ("exception", "hang", "disagreement", "cli exit"):
            lines.append(f"  {kind:<32}{self.count(kind)}")
        return "\n".join(lines)

    def groups(self) -> list[tuple[tuple[str, str, str], list[dict[str, Any]]]]:
        """Failures grouped by kind, stage and cause, largest group first."""
        grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for failure in self.failures:
            key = (failure["kind"], failure["stage"], cause(failure))
            grouped.setdefault(key, []).append(failure)
        return sorted(grouped.items(), key=lambda item: -len(item[1]))

    def describe_failures(self, limit: int = 20) -> str:
        """Each group of failures with its count and its shortest input, to reproduce it."""
        lines = [f"{len(self.failures)} failures in {self.inputs} inputs (seed {self.seed})"]
        for (kind, stage, why), failures in self.groups()[:limit]:
            shortest = min(failures, key=lambda failure: len(failure["text"]))
            text = shortest["text"]
            shown = repr(text) if len(text) <= 300 else f"{text[:300]!r}… ({len(text)} chars)"
            lines.append(f"- {len(failures)} × {kind} in {stage}: {why}")
            lines.append(f"    input {shortest['number']}: {shown}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "inputs": self.inputs,
            "kinds": dict(self.kinds),
            "parsed": self.parsed,
            "stages": self.stages,
            "comparisons": self.comparisons,
            "errors": dict(self.errors),
            "other_exceptions": dict(self.other_exceptions),
            "hangs": self.count("hang"),
            "disagreements": self.count("disagreement"),
            "cli_exits": self.count("cli exit"),
            "seconds": round(self.seconds, 1),
            "failures": self.failures,
        }


def cause(failure: dict[str, Any]) -> str:
    """A failure's cause in one line: a traceback's last line, else the detail's first,
    with numbers and quoted names blanked so that like failures group together."""
    detail = failure["detail"].strip()
    line = detail.splitlines()[-1] if detail.startswith("Traceback") else detail.splitlines()[0]
    line = re.sub(r"'[^']*'", "'…'", line)
    return re.sub(r"-?\d[\d.e+-]*", "N", line)[:160]


def _is_indexcalc_error(thing: Any) -> bool:
    return isinstance(thing, type) and issubclass(thing, ic.IndexCalcError)


def _worker(connection: Connection, seed: int) -> None:
    """A worker process: run the inputs whose numbers arrive, send back their records."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))
    while True:
        number = connection.recv()
        if number is None:
            return
        record = run_input(make_input(seed, number), seed)
        connection.send(record.to_json())
        if record.tainted:  # an interrupted stage may have left caches half-written
            return


@dataclass
class _Slot:
    process: Any
    connection: Connection
    number: int | None = None
    since: float = 0.0


def run(
    inputs: int,
    seed: int = DEFAULT_SEED,
    jobs: int = 1,
    progress: Callable[[Report], None] | None = None,
    seconds: float | None = None,
) -> Report:
    """Fuzz inputs 0 to `inputs` - 1 from `seed` in `jobs` worker processes (0: in this
    process). With `seconds`, no input is started after that long: the report says how
    many ran."""
    report = Report(seed)
    start = time.perf_counter()
    numbers = iter(range(inputs))

    def next_number() -> int | None:
        if seconds is not None and time.perf_counter() - start > seconds:
            return None
        return next(numbers, None)

    if jobs <= 0:
        while (number := next_number()) is not None:
            report.add(run_input(make_input(seed, number), seed).to_json())
    else:
        _run_in_workers(report, jobs, next_number, progress)
    report.seconds = time.perf_counter() - start
    return report


def _run_in_workers(
    report: Report,
    jobs: int,
    next_number: Callable[[], int | None],
    progress: Callable[[Report], None] | None,
) -> None:
    """Hand inputs to `jobs` worker processes; kill a worker that hangs, and replace it."""
    context = multiprocessing.get_context("spawn")
    slots: list[_Slot] = []

    def start_worker() -> _Slot:
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(child, report.seed), daemon=True)
        process.start()
        child.close()
        return _Slot(process, parent)

    def give_work(slot: _Slot) -> bool:
        number = next_number()
        if number is None:
            slot.connection.send(None)
            slot.process.join(timeout=10)
            slots.remove(slot)
            return False
        slot.number, slot.since = number, time.perf_counter()
        slot.connection.send(number)
        return True

    def replace(slot: _Slot) -> None:
        slot.process.kill()
        slot.process.join()
        slots[slots.index(slot)] = replacement = start_worker()
        give_work(replacement)

    try:
        for _ in range(max(1, jobs)):
            slots.append(start_worker())
            give_work(slots[-1])
        while slots:
            ready = wait([slot.connection for slot in slots], timeout=1.0)
            for slot in list(slots):
                if slot.connection in ready:
                    try:
                        record = slot.connection.recv()
                    except (EOFError, OSError):
                        report.add(_lost(report.seed, slot, "the worker died"))
                        replace(slot)
                        continue
                    report.add(record)
                    if progress:
                        progress(report)
                    if record["tainted"]:
                        replace(slot)
                    else:
                        give_work(slot)
                elif time.perf_counter() - slot.since > INPUT_SECONDS:
                    report.add(_lost(report.seed, slot, f"no answer after {INPUT_SECONDS:.0f} s"))
                    replace(slot)
    finally:
        for slot in slots:
            slot.process.kill()
            slot.process.join()


def _lost(seed: int, slot: _Slot, why: str) -> dict[str, Any]:
    """The record of an input whose worker was killed or died."""
    assert slot.number is not None
    item = make_input(seed, slot.number)
    record = Record(item.number, item.kind, item.text)
    record.fail("hang", "worker", f"{why} (exit code {slot.process.exitcode})")
    return record.to_json()


def write_report(report: Report, path: str) -> None:
    """The summary and every failure, with its input, as JSON."""
    with open(path, "w", encoding="utf-8") as file:
        json.dump(report.to_json(), file, ensure_ascii=False, indent=1)


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.fuzzing``: run, print the table, write the report; 1 on failures."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fuzzing", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--inputs", type=int, default=1000, help="how many inputs (1000)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"the seed ({DEFAULT_SEED})")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--report", help="write the summary and every failure to this JSON file")
    parser.add_argument(
        "--seconds", type=float, help="start no input after this many seconds (default: no limit)"
    )
    args = parser.parse_args(argv)

    def progress(report: Report) -> None:
        if report.inputs % 1000 == 0:
            failures = len(report.failures)
            print(f"{report.inputs} inputs, {failures} failures", file=sys.stderr, flush=True)

    report = run(args.inputs, args.seed, args.jobs, progress, args.seconds)
    print(report.table())
    if report.failures:
        print(report.describe_failures())
    if args.report:
        write_report(report, args.report)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
