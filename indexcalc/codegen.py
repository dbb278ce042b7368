"""Expression → the source of a standalone NumPy function.

``codegen(ic.diff("x_i A_ij x_j", "x_k"))`` returns the text of a function
``grad(A, x)`` that needs nothing but NumPy. Everything is decided at generation time:
each product's contraction order comes from opt_einsum's path (planned with the sizes in
`dims`/`shapes`, or 100 per index), and each pairwise step is written as the cheapest
NumPy call (``@``, ``np.tensordot``, broadcasting ``*`` or ``np.einsum``). Every node of
the expression DAG is computed once, into a temporary ``t1``, ``t2``, … that later steps
share. Deltas merge indices as in the evaluator; a δ that survives into the result is
written once, on the diagonal of a zero array (or as ``np.eye``). ε is built inside the
function.

Identifiers in the generated source are only the parameters (the tensor names; a name
Python reserves, or ``np`` or ``itertools``, with ``_`` appended), ``np`` and
``itertools``, and generated temporaries that avoid the parameters; no builtin is used,
so a tensor called ``range`` or ``sum`` changes nothing. Index names appear only in
string literals and the docstring, as einsum letters and shapes. Numbers are float
literals (``2.0``, ``1e+30``), as the evaluator holds them.
"""

from __future__ import annotations

import keyword
import math
import re
import string
import textwrap
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from .backends import numpy_letters
from .diff import diff
from .dispatch import Pass
from .errors import CodegenError, EvaluationError, TooLargeError, UnsizedIndexError
from .expr import Derivative, Expr, Tensor, node_count
from .functions import FUNCTIONS
from .plan import (
    Add,
    AddToDiagonal,
    Apply,
    Argument,
    Broadcast,
    Combine,
    Constant,
    Contract,
    Copy,
    Dim,
    Embed,
    Fill,
    LeviCivita,
    LogAddExp,
    LogSigmoid,
    LogSumExp,
    Maximum,
    Multiply,
    Raise,
    Reindex,
    ShiftedExp,
    Step,
    make_plan,
    postorder,
)
from .printing import to_ascii
from .simplify import simplify
from .sizes import check_dims, output_indices, size_inputs, unified_shapes
from .syntax import parse

PLANNING_SIZE = 100  # the size of an index for path planning when nothing gives one
LINE_LENGTH = 88  # ruff's default, so the source is clean under a default configuration
INDENT = "    "
# Operands of one chain of + or * in one statement: Python's compiler recurses once per
# operator, and a product of thousands of factors would exhaust its stack.
CHAIN_LENGTH = 100

_RESERVED = {"np", "itertools"}  # the modules the generated code uses


@dataclass(frozen=True)
class Operand:
    """A computed array in the generated code: its source (a name, ``name.T`` or a
    literal) and the index of each of its axes."""

    code: str
    axes: tuple[str, ...]


class Generator(Pass):
    """Prints the plan computing `roots` (see `indexcalc.plan`) as the body of one function:
    one temporary per step, sizes read from the arguments' shapes; one rule per kind of
    step."""

    prefix = "_print_"
    description = "code generation"

    def __init__(
        self,
        roots: Sequence[Expr],
        outs: Sequence[tuple[str, ...]],
        dims: Mapping[str, int],
        shapes: Mapping[str, Sequence[int]],
    ):
        self.tensors = _tensors(roots)
        self.arguments = sorted({*self.tensors, *size_inputs(postorder(*roots))})
        self.parameters = {name: parameter_name(name) for name in self.arguments}
        try:
            # Sizes to plan with: those given, the rest made consistent (one size for the
            # letters on an axis); the code itself reads sizes from its arguments.
            _, planned = unified_shapes(postorder(*roots), dims, PLANNING_SIZE, shapes)
            planned.update((name, tuple(shape)) for name, shape in shapes.items())
            self.plan = make_plan(roots, outs, planned, dims, default_size=PLANNING_SIZE)
        except UnsizedIndexError as error:
            raise CodegenError(str(error)) from None
        except EvaluationError as error:
            raise CodegenError(f"cannot generate code: {error}") from None
        self.lines: list[str] = []
        self.codes: list[str] = []
        self.epsilons: dict[int, str] = {}
        self.uses_itertools = False
        self.taken = set(self.arguments) | set(self.parameters.values()) | _RESERVED
        self.counter = 0
        for step in self.plan.steps:
            self.codes.append(self.print_step(step))

    def results(self) -> list[str]:
        """What the function returns: NumPy arrays or scalars; a result computed from
        numbers alone is a 0-d array, as the evaluator returns it, never a Python float."""
        plain = _python_scalars(self.plan.steps)
        return [
            self.assign(f"np.array({self.codes[slot]})") if slot in plain else self.codes[slot]
            for slot in self.plan.results
        ]

    # -- bookkeeping -----------------------------------------------------------------------

    def fresh(self, stem: str = "t") -> str:
        """A new name clashing with no tensor: ``t1``, ``t2``, … or `stem`, `stem`2, …"""
        if stem == "t":
            self.counter += 1
            name = f"t{self.counter}"
            while name in self.taken:
                self.counter += 1
                name = f"t{self.counter}"
        else:
            name, count = stem, 1
            while name in self.taken:
                count += 1
                name = f"{stem}{count}"
        self.taken.add(name)
        return name

    def assign(self, code: str) -> str:
        """A fresh name for the value of `code`; a long chain of operators is computed in
        statements of `CHAIN_LENGTH` operands, left to right as Python evaluates it."""
        name = self.fresh()
        chunks = _chain_chunks(code)
        self.lines.extend(statement(name, chunks[0]))
        for chunk in chunks[1:]:
            self.lines.extend(statement(name, f"{name} {chunk}"))
        return name

    def size(self, dim: Dim) -> str:
        """Source for a size: the argument's shape it is read from, else the number."""
        if dim.source:
            return f"{self.parameters[dim.source[0]]}.shape[{dim.source[1]}]"
        return str(dim.value)

    def shape(self, dims: Sequence[Dim]) -> str:
        return _tuple([self.size(d) for d in dims])

    # -- one method per kind of step ---------------------------------------------------------

    def print_step(self, step: Step) -> str:
        """The step's value: a name or a literal to use inline, after any lines it needs."""
        return self.dispatch(step.operation, *[self.codes[k] for k in step.inputs])

    def _print_Argument(self, operation: Argument) -> str:
        return self.parameters[operation.name]

    def _print_Constant(self, operation: Constant) -> str:
        value = operation.value
        if math.isnan(value):
            return "np.nan"
        if math.isinf(value):
            return "np.inf" if value > 0 else "-np.inf"
        return number(value)

    def _print_LeviCivita(self, operation: LeviCivita) -> str:
        rank = operation.rank
        name = self.epsilons.get(rank)
        if name is None:
            name = self.fresh(f"eps{rank}")
            perm = self.fresh("perm")
            self.uses_itertools = True
            # Each entry is the sign of its permutation: the determinant of the permuted
            # identity, exactly ±1. NumPy only: no builtin a parameter could shadow.
            self.lines += [
                f"{name} = np.zeros({_tuple([str(rank)] * rank)})",
                f"for {perm} in itertools.permutations(np.arange({rank})):",
                f"{INDENT}{name}[{perm}] = np.linalg.det(np.eye({rank})[np.array({perm})])",
            ]
            self.epsilons[rank] = name
        source, target = operation.spec.split("->")
        return name if source == target else self.assign(f'np.einsum("{operation.spec}", {name})')

    def _print_Reindex(self, operation: Reindex, code: str) -> str:
        source, target = operation.spec.split("->")
        if len(set(source)) == len(source) and sorted(source) == sorted(target):
            permuted = align(Operand(code, tuple(source)), tuple(target))
            if operation.final:  # a new array even where `permuted` is an argument (X.T.T)
                return self.assign(f'np.array({permuted}, order="C")')
            return permuted if _is_atom(permuted) else self.assign(permuted)
        return self.assign(f'np.einsum("{_einsum_letters(operation.spec)}", {code})')

    def _print_Apply(self, operation: Apply, code: str) -> str:
        return self.assign(FUNCTIONS[operation.function].source.format(code))

    def _print_Raise(self, operation: Raise, base: str, power: str | None = None) -> str:
        base_code = align(Operand(base, operation.base[0]), operation.base[1])
        exponent = operation.exponent
        if exponent is None:
            assert operation.power is not None and power is not None  # the exponent is an input
            power_code = align(Operand(power, operation.power[0]), operation.power[1])
            return self.assign(f"np.power({base_code}, {power_code})")
        # An integer power stays one (x**2); a negative one is a float, as NumPy raises an
        # integer array to a negative integer power not at all.
        whole = isinstance(exponent, int) and exponent >= 0
        literal = str(exponent) if whole else number(exponent)
        return self.assign(f"{_operand(base_code)}**{literal}")

    def _print_Add(self, operation: Add, *terms: str) -> str:
        code = ""
        for k, ((axes, target), term) in enumerate(zip(operation.terms, terms, strict=True)):
            text = align(Operand(term, axes), target)
            if k == 0:
                code = text
            elif text.startswith("-") and _is_atom(text[1:]):
                code += f" - {text[1:]}"
            else:
                code += f" + {text}"
        return self.assign(code)

    def _print_AddToDiagonal(self, operation: AddToDiagonal, code: str) -> str:
        aligned = align(Operand(code, operation.align[0]), operation.align[1])
        name = self.assign(f"np.array({aligned}, dtype=np.result_type({code}, 1.0))")
        self.lines.append(f'np.einsum("ii->i", {name})[...] += {number(operation.value)}')
        return name

    def _print_Multiply(self, operation: Multiply, *values: str) -> str:
        return self.assign(" * ".join(_operand(v) for v in values))

    def _print_Contract(self, operation: Contract, *operands: str) -> str:
        factors = [self.size(d) for d in operation.dims]
        coefficient: Fraction | float = operation.coefficient
        if math.isfinite(coefficient):
            coefficient = Fraction(coefficient)
        scale = coefficient != 1 or factors
        live = list(zip(operands, operation.subscripts, strict=True))
        if scale and operation.scaled is not None:
            code, subscripts = live[operation.scaled]
            code = scaled(coefficient, factors, code)
            bare = not operation.path or re.fullmatch(r"-?\w+", code)
            live[operation.scaled] = (code if bare else f"({code})", subscripts)
        if not live:
            code = "1.0"
        elif not operation.path:
            code = live[0][0]
        for number_, (positions, result) in enumerate(operation.path):
            taken = [live[p] for p in positions]
            for p in reversed(positions):
                del live[p]
            code, produced = step(taken, result)
            if produced != result:
                code = align(
                    Operand(code if _is_atom(code) else f"({code})", tuple(produced)), tuple(result)
                )
            if number_ < len(operation.path) - 1:
                code = self.assign(code)
            live.append((code, result))
        if scale and operation.scaled is None:
            code = scaled(coefficient, factors, code)
        inline = code.isidentifier() or _is_number(code) or re.fullmatch(r"-\w+", code)
        return code if inline else self.assign(code)

    def _print_Broadcast(self, operation: Broadcast, code: str) -> str:
        carried, full = tuple(operation.carried), tuple(operation.full)
        aligned = align(Operand(code, carried), full) if carried else code
        return self.assign(f"np.broadcast_to({aligned}, {self.shape(operation.shape)})")

    def _print_Embed(self, operation: Embed, code: str) -> str:
        name = self.assign(
            f"np.zeros({self.shape(operation.shape)}, np.result_type({code}, np.float32))"
        )
        self.lines.append(
            f'np.einsum("{_einsum_letters(f"{operation.full}->{operation.reduced}")}", {name})'
            f"[...] = {code}"
        )
        return name

    def _print_Fill(self, operation: Fill, code: str) -> str:
        return self.assign(f"np.full({self.shape(operation.shape)}, {code})")

    def _print_Copy(self, operation: Copy, code: str) -> str:
        return self.assign(f"np.array({code})")

    # -- logarithms, as the evaluator computes them (see `indexcalc.plan.Logarithms`) -----

    def shift(self, code: str, axis: str) -> str:
        """The largest element over `axis`, kept as an axis of length 1; 0 where it is not
        finite, so that subtracting it never makes a nan."""
        name = self.assign(f"np.max({code}, axis={axis}, keepdims=True)")
        self.lines.extend(statement(name, f"np.where(np.isfinite({name}), {name}, 0)"))
        return name

    def _print_LogSumExp(self, operation: LogSumExp, code: str) -> str:
        axis = _tuple([str(p) for p in operation.positions])
        shift = self.shift(code, axis)
        total = f"np.sum(np.exp({_operand(code)} - {shift}), axis={axis})"
        return self.assign(f"np.log({total}) + np.squeeze({shift}, axis={axis})")

    def _print_Combine(self, operation: Combine, *terms: str) -> str:
        code = ""
        pairs = zip(operation.terms, operation.coefficients, terms, strict=True)
        for (axes, target), coefficient, term in pairs:
            text = _operand(align(Operand(term, axes), target))
            size = abs(coefficient)
            scaled = text if size == 1 else f"{number(size)} * {text}"
            if not code:
                code = scaled if coefficient > 0 else f"-{scaled}"
            else:
                code += f" + {scaled}" if coefficient > 0 else f" - {scaled}"
        if operation.constant:
            sign = "+" if operation.constant > 0 else "-"
            code += f" {sign} {number(abs(operation.constant))}"
        return self.assign(code)

    def _print_Maximum(self, operation: Maximum, code: str) -> str:
        axis = _tuple([str(p) for p in operation.positions])
        return self.assign(f"np.squeeze({self.shift(code, axis)}, axis={axis})")

    def _print_ShiftedExp(self, operation: ShiftedExp, code: str, shift: str) -> str:
        aligned = align(Operand(shift, operation.shift[0]), operation.shift[1])
        return self.assign(f"np.exp({_operand(code)} - {_operand(aligned)})")

    def _print_LogAddExp(self, operation: LogAddExp, *terms: str) -> str:
        pairs = zip(operation.terms, terms, strict=True)
        aligned = [align(Operand(term, axes), target) for (axes, target), term in pairs]
        code = aligned[0]
        for term in aligned[1:]:
            code = f"np.logaddexp({code}, {term})"
        if operation.constant is not None:
            code = f"np.logaddexp({number(operation.constant)}, {code})"
        return self.assign(code)

    def _print_LogSigmoid(self, operation: LogSigmoid, code: str) -> str:
        argument = code if operation.negated else f"-{_operand(code)}"
        return self.assign(f"-np.logaddexp(0.0, {argument})")


def parameter_name(tensor: str) -> str:
    """The generated function's parameter for a tensor: its name, with ``_`` appended to
    a Python keyword (``lambda_``) and to the modules the code uses (``np_``,
    ``itertools_``). A tensor name never contains ``_``, so no two parameters clash."""
    if keyword.iskeyword(tensor) or tensor in _RESERVED:
        return f"{tensor}_"
    if not tensor.isidentifier():  # a name with a character like ➌ that Python refuses
        raise CodegenError(
            f"tensor name {tensor!r} is not a Python identifier, so generated code cannot "
            "take it as a parameter; rename the tensor"
        )
    return tensor


def _tensors(roots: Sequence[Expr]) -> dict[str, tuple[str, ...]]:
    """Each tensor's name and the indices of its first use, validated as an argument name."""
    tensors: dict[str, tuple[str, ...]] = {}
    for node in postorder(*roots):
        if not isinstance(node, Tensor):
            continue
        name = node.name
        if not name.isidentifier() or unicodedata.normalize("NFKC", name) != name:
            raise CodegenError(f"tensor name {name!r} cannot be a Python argument name; rename it")
        known = tensors.setdefault(name, node.indices)
        if len(known) != len(node.indices):
            raise CodegenError(
                f"tensor '{name}' is used with {len(known)} and with {len(node.indices)} indices"
            )
    return dict(sorted(tensors.items()))


def _operand(code: str) -> str:
    """`code` as an operand of ``*`` or ``**``: parenthesised unless it is an atom."""
    return code if _is_atom(code) and not code.startswith("-") else f"({code})"


def _is_number(code: str) -> bool:
    return bool(re.fullmatch(r"-?[\d.]+(e[-+]?\d+)?", code))


def _python_scalars(steps: Sequence[Step]) -> set[int]:
    """The slots whose generated code computes a Python float: constants, and sums and
    products of them alone."""
    plain: set[int] = set()
    for slot, step in enumerate(steps):
        combines = isinstance(step.operation, (Add, Multiply, Contract, Combine))
        if isinstance(step.operation, Constant) or (
            combines and all(k in plain for k in step.inputs)
        ):
            plain.add(slot)
    return plain


def step(operands: list[tuple[str, str]], output: str) -> tuple[str, str]:
    """Source for one contraction step and the subscripts of its result.

    The cheapest NumPy call for the pattern: ``@`` for a matrix or vector product,
    ``np.tensordot`` for other plain contractions, ``*`` for an elementwise or outer product,
    ``np.einsum`` for the rest. The result's axes come in the order the call produces.
    """
    if len(operands) == 1:
        return single(*operands[0], output)
    if len(operands) > 2:
        return einsum(operands, output)
    (left, ls), (right, rs) = operands
    distinct = len(set(ls)) == len(ls) and len(set(rs)) == len(rs)
    shared = set(ls) & set(rs)
    alone = (set(ls) ^ set(rs)) - set(output)
    if not distinct or alone:
        return einsum(operands, output)
    if not shared - set(output):
        # Nothing summed: broadcasting multiply over the union of axes, in the output's
        # order where that is all of them (an outer product comes out contiguous).
        axes = ls + "".join(c for c in rs if c not in ls)
        if len(output) == len(axes) and set(output) == set(axes):
            axes = output
        left_code = align(Operand(left, tuple(ls)), tuple(axes))
        right_code = align(Operand(right, tuple(rs)), tuple(axes))
        return f"{left_code} * {right_code}", axes
    if shared & set(output):
        return einsum(operands, output)
    summed = sorted(shared)
    rest = "".join(c for c in ls if c not in shared) + "".join(c for c in rs if c not in shared)
    if len(summed) == 1 and len(ls) <= 2 and len(rs) <= 2:
        (c,) = summed
        if len(ls) == 2 and ls[1] != c:
            left = transposed(left)
        if len(rs) == 2 and rs[0] != c:
            right = transposed(right)
        return f"{left} @ {right}", rest
    left_axes = _list(ls.index(c) for c in summed)
    right_axes = _list(rs.index(c) for c in summed)
    return f"np.tensordot({left}, {right}, axes=({left_axes}, {right_axes}))", rest


def single(code: str, subscripts: str, output: str) -> tuple[str, str]:
    """One operand: itself, a sum over some axes, or an einsum for a diagonal."""
    if len(subscripts) == 2 and subscripts[0] == subscripts[1] and not output:
        return f"np.trace({code})", ""
    if len(set(subscripts)) != len(subscripts):
        return einsum([(code, subscripts)], output)
    if set(subscripts) == set(output):
        return code, subscripts
    axes = [k for k, c in enumerate(subscripts) if c not in output]
    axis = str(axes[0]) if len(axes) == 1 else _tuple([str(a) for a in axes])
    return f"{code}.sum(axis={axis})", "".join(c for c in subscripts if c in output)


def einsum(operands: list[tuple[str, str]], output: str) -> tuple[str, str]:
    spec = _einsum_letters(f"{','.join(s for _, s in operands)}->{output}")
    return f'np.einsum("{spec}", {", ".join(code for code, _ in operands)})', output


def _einsum_letters(spec: str) -> str:
    """`spec` in letters NumPy's einsum takes: a product of more than 52 indices has other
    symbols in its plan, renamed for each call."""
    try:
        return numpy_letters(spec)
    except EvaluationError as error:
        raise CodegenError(f"cannot generate code: {error}") from None


def transposed(code: str) -> str:
    return code[:-2] if code.endswith(".T") else f"{code}.T"


def align(value: Operand, target: Sequence[str]) -> str:
    """Source of `value` with its axes permuted and expanded to broadcast against `target`."""
    axes = value.axes
    target = tuple(target)
    present = [i for i in target if i in axes]
    code = value.code
    if list(axes) != present:
        if len(axes) == 2:
            code = transposed(code)
        else:
            code = f"np.transpose({code}, {_tuple([str(axes.index(i)) for i in present])})"
    index = [":" if i in axes else "None" for i in target]
    while index and index[0] == "None":
        index.pop(0)
    if "None" in index:
        code = f"{code}[{', '.join(index)}]"
    return code


def scaled(coefficient: Fraction | float, factors: list[str], code: str) -> str:
    """``c * code``, with parentheses where the code is an operator expression."""
    if coefficient == 1 and not factors:
        return code
    operand = code if _is_atom(code) else f"({code})"
    prefix = " * ".join(factors)
    if coefficient == -1:
        return f"-{prefix} * {operand}" if prefix else f"-{operand}"
    head = number(coefficient) if coefficient != 1 else ""
    return " * ".join(p for p in (head, prefix, operand) if p)


def number(value) -> str:
    """A Python float literal: ``2.0``, ``0.5``, ``-1e+30``. Floats, as the evaluator's
    constants are: an int would make object arrays once it is large, or keep an integer
    array's dtype where the evaluator computes in floating point. A product of numbers
    beyond float64 (1e299 ⊙ 1e299) is ``np.inf``, as the evaluator's is."""
    value = float(value)
    if math.isinf(value):
        return "np.inf" if value > 0 else "-np.inf"
    return repr(value)


def _letters(indices: Iterable[str]) -> dict[str, str]:
    """ASCII einsum letters for index names: the name itself where it is one, else a spare."""
    indices = list(dict.fromkeys(indices))
    if len(indices) > len(string.ascii_letters):
        raise CodegenError("a product uses more than 52 distinct indices")
    letters: dict[str, str] = {}
    used = set()
    for index in indices:
        if len(index) == 1 and index in string.ascii_letters and index not in used:
            letters[index] = index
            used.add(index)
    spare = (c for c in string.ascii_letters if c not in used)
    for index in indices:
        if index not in letters:
            letters[index] = next(spare)
    return letters


def _tuple(items: Sequence[str]) -> str:
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _list(items: Iterable[int]) -> str:
    return f"[{', '.join(str(i) for i in items)}]"


# -- formatting ------------------------------------------------------------------------------------


def statement(target: str, code: str) -> list[str]:
    """``target = code`` as lines (relative to the body's indentation) that ruff's formatter
    leaves as they are: a call too long for one line has its arguments on the next line,
    or one per line; another expression goes in parentheses, split before its operators."""
    line = f"{INDENT}{target} = {code}"
    if len(line) <= LINE_LENGTH:
        return [f"{target} = {code}"]
    if _is_call(code):
        head = code[: code.index("(") + 1]
        return bracketed(f"{target} = {head}", _split_arguments(code), ")")
    if len(INDENT * 2) + len(code) <= LINE_LENGTH:
        return [f"{target} = (", f"{INDENT}{code}", ")"]
    parts = re.split(r" (?=[-+*@] )", code)
    return [f"{target} = (", *(f"{INDENT}{p}" for p in parts), ")"]


def bracketed(head: str, items: list[str], tail: str, indent: str = INDENT) -> list[str]:
    """``head items tail`` on one line if it fits, else the items on their own line, else one
    item per line with a trailing comma — the way ruff's formatter breaks brackets."""
    one_line = f"{head}{', '.join(items)}{tail}"
    if len(indent) + len(one_line) <= LINE_LENGTH:
        return [one_line]
    joined = ", ".join(items)
    if len(indent) + len(INDENT) + len(joined) <= LINE_LENGTH:
        return [head, f"{INDENT}{joined}", tail]
    return [head, *(f"{INDENT}{item}," for item in items), tail]


def _chain_chunks(code: str) -> list[str]:
    """`code` cut before every `CHAIN_LENGTH`-th operator of its top-level chain: a sum
    (cut at `` + `` and `` - ``) or else a product (at `` * ``). Each later chunk starts
    with its operator, to be applied to the value so far."""
    for operators in ((" + ", " - "), (" * ",)):
        cuts, depth = [], 0
        for position, char in enumerate(code):
            if char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
            elif depth == 0 and code[position : position + 3] in operators:
                cuts.append(position)
        if cuts:
            break
    if len(cuts) < CHAIN_LENGTH:
        return [code]
    starts = [0, *(cuts[k] + 1 for k in range(CHAIN_LENGTH - 1, len(cuts), CHAIN_LENGTH))]
    ends = [*(s - 1 for s in starts[1:]), len(code)]
    return [code[s:e] for s, e in zip(starts, ends, strict=True)]


def _is_atom(code: str) -> bool:
    """Whether `code` needs no parentheses as an operand of ``*``."""
    return bool(re.fullmatch(r"[\w.]+(\[[^\]]*\])?", code)) or _is_call(code)


def _is_call(code: str) -> bool:
    """Whether `code` is one call ``f(...)`` whose parenthesis closes at the end."""
    match = re.match(r"^[\w.]+\(", code)
    if not match or not code.endswith(")"):
        return False
    depth = 0
    for position in range(match.end() - 1, len(code)):
        depth += {"(": 1, ")": -1}.get(code[position], 0)
        if depth == 0 and position != len(code) - 1:
            return False
    return True


def _split_arguments(call: str) -> list[str]:
    body = call[call.index("(") + 1 : -1]
    arguments, depth, start, quoted = [], 0, 0, False
    for position, char in enumerate(body):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "([":
            depth += 1
        elif not quoted and char in ")]":
            depth -= 1
        elif not quoted and char == "," and depth == 0:
            arguments.append(body[start:position].strip())
            start = position + 1
    arguments.append(body[start:].strip())
    return arguments


def _docstring(summary: str, details: list[str]) -> list[str]:
    lines = [f'"""{summary}', ""]
    width = LINE_LENGTH - len(INDENT)
    for detail in details:
        if not detail:
            lines.append("")
            continue
        wrapped = textwrap.wrap(detail, width, subsequent_indent=INDENT, break_on_hyphens=False)
        lines.extend(wrapped)
    lines.append('"""')
    return lines


def _shape_text(indices: Sequence[str]) -> str:
    if not indices:
        return "a scalar"
    return f"array of shape {_tuple(list(indices))}"


def _source(name: str, outputs: list[tuple[str, Expr, tuple[str, ...]]], dims, shapes) -> str:
    """The module text: imports and one function returning each (label, root, out)."""
    normal = unicodedata.normalize("NFKC", name) if isinstance(name, str) else ""
    if not normal.isidentifier() or keyword.iskeyword(normal):
        raise CodegenError(f"the function name must be a Python identifier, not {name!r}")
    name = normal  # as Python will read it
    roots = [root for _, root, _ in outputs]
    outs = [out for _, _, out in outputs]
    generator = Generator(roots, outs, check_dims(dims), _check_shapes(shapes))
    if name in generator.parameters.values() or name in _RESERVED:
        raise CodegenError(
            f"the function name {name!r} clashes with a parameter or with a module the code "
            f"uses (np, itertools)"
        )
    returned = generator.results()
    details = [f"{label}: {_printed(root)}" for label, root, _ in outputs]
    details.append("")
    for n in generator.arguments:
        parameter = generator.parameters[n]
        tensor = "" if parameter == n else f" (tensor {n})"
        if n in generator.tensors:
            details.append(f"{parameter}{tensor}: {_shape_text(generator.tensors[n])}")
        else:
            details.append(
                f"{parameter}{tensor}: an array whose shape sizes the result (its values are "
                f"not read)"
            )
    if generator.arguments:
        details.append("")
    returns = ", ".join(f"{label} ({_shape_text(out)})" for label, _, out in outputs)
    details.append(f"Returns {returns}.")
    summary = "Generated by indexcalc from index notation; needs only NumPy."
    body = [*_docstring(summary, details), *generator.lines, f"return {', '.join(returned)}"]
    imports = ["import itertools"] if generator.uses_itertools else []
    if any("np." in line for line in body):
        imports += ["", "import numpy as np"] if imports else ["import numpy as np"]
    lines = [*imports, "", ""] if imports else []
    parameters = [generator.parameters[n] for n in generator.arguments]
    for line in bracketed(f"def {name}(", parameters, "):", indent=""):
        # The arguments must be the tensor names, even ones pycodestyle finds ambiguous.
        ambiguous = set(re.findall(r"\w+", line)) & {"I", "O", "l"}
        lines.append(f"{line}  # noqa: E741" if ambiguous else line)
    lines += [f"{INDENT}{line}" if line else "" for line in body]
    return "\n".join(lines) + "\n"


def _printed(root: Expr) -> str:
    """The expression for the docstring; one too large to write out is described."""
    try:
        return _clean(to_ascii(root))
    except TooLargeError:
        return f"an expression too large to write out ({node_count(root):,} distinct parts)"


def _clean(text: str) -> str:
    """Index notation for a docstring: nothing that could end or escape the string."""
    return text.replace("\\", "/").replace('"', "'")


def _check_shapes(shapes) -> dict[str, tuple[int, ...]]:
    if shapes is None:
        return {}
    if not isinstance(shapes, Mapping):
        raise CodegenError(f"shapes must map tensor names to shapes, not {shapes!r}")
    checked = {}
    for name, shape in shapes.items():
        try:
            checked[unicodedata.normalize("NFKC", str(name))] = tuple(int(n) for n in shape)
        except (TypeError, ValueError):
            raise CodegenError(f"shapes entry {name!r}: {shape!r} is not a shape") from None
    return checked


def _prepared(expr_or_text, var: str) -> Expr:
    node = parse(expr_or_text, var=var) if isinstance(expr_or_text, str) else expr_or_text
    if not isinstance(node, Expr):
        raise CodegenError(f"expected an expression or notation, got {type(node).__name__}")
    if any(isinstance(n, Derivative) for n in postorder(node)):
        node = simplify(node)
    return node


def codegen(
    expr_or_text,
    name: str = "grad",
    out=None,
    *,
    dims: Mapping[str, int] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    var: str = "x",
) -> str:
    """The source of a standalone Python function evaluating an expression with NumPy.

    Parameters
    ----------
    expr_or_text : Expr or str
        The expression, e.g. ``ic.diff("x_i A_ij x_j", "x_k")``, or notation to parse.
    name : str
        The function's name.
    out : str or sequence of index names, optional
        The axis order of the returned array; default the free indices sorted, as
        `indexcalc.evaluate` returns them.
    dims : mapping of index name to size, optional
        Sizes for path planning, and the size of an index no array fixes (``δ_ik`` alone),
        which is then written into the code as a number.
    shapes : mapping of tensor name to shape, optional
        Array shapes for path planning. Without them every index counts as size 100.

    Returns
    -------
    str
        Python source: ``import numpy as np`` and one function whose arguments are the
        arrays by tensor name, sorted, and which returns the result array (a NumPy scalar
        for a scalar result). Its docstring gives each argument's shape in index letters.
    """
    expr = _prepared(expr_or_text, var)
    order = output_indices(expr, out)
    return _source(name, [("result", expr, order)], dims, shapes)


def codegen_value_and_grad(
    expr_or_text,
    wrt,
    name: str = "fg",
    *,
    dims: Mapping[str, int] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    var: str = "x",
    symmetric: Iterable[str] = (),
) -> str:
    """The source of ``fg(...) -> (f, g)``: an expression and its derivative, computed together.

    `wrt` is as in `indexcalc.diff` (``"x_k"``, ``"W_gh"``, or a list for higher
    derivatives). Subexpressions the value and the derivative share, such as σ(X w) in a
    logistic loss and its gradient, are computed once. Both results have their axes in
    sorted index order; other parameters are those of `codegen`.
    """
    expr = simplify(_prepared(expr_or_text, var), symmetric=symmetric)
    gradient = diff(expr, wrt, symmetric=symmetric)
    outputs = [("value", expr, expr.free_indices), ("derivative", gradient, gradient.free_indices)]
    return _source(name, outputs, dims, shapes)


__all__ = ["CodegenError", "codegen", "codegen_value_and_grad"]
