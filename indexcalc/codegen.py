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

Identifiers in the generated source are only tensor names (validated as Python
identifiers), NumPy calls and generated temporaries; index names appear only in string
literals and the docstring, as einsum letters and shapes.
"""

from __future__ import annotations

import keyword
import re
import string
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from .diff import diff
from .dispatch import Pass
from .errors import CodegenError, EvaluationError, UnsizedIndexError
from .expr import Derivative, Expr, Tensor, deep_recursion
from .functions import FUNCTIONS
from .plan import (
    Add,
    AddToDiagonal,
    Apply,
    Argument,
    Broadcast,
    Constant,
    Contract,
    Copy,
    Dim,
    Embed,
    Fill,
    LeviCivita,
    Multiply,
    Raise,
    Reindex,
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

_RESERVED = {"np", "itertools"}


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
        self.taken = set(self.arguments) | _RESERVED
        self.counter = 0
        for step in self.plan.steps:
            self.codes.append(self.print_step(step))

    def results(self) -> list[str]:
        return [self.codes[slot] for slot in self.plan.results]

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
        name = self.fresh()
        self.lines.extend(statement(name, code))
        return name

    def size(self, dim: Dim) -> str:
        """Source for a size: the argument's shape it is read from, else the number."""
        return f"{dim.source[0]}.shape[{dim.source[1]}]" if dim.source else str(dim.value)

    def shape(self, dims: Sequence[Dim]) -> str:
        return _tuple([self.size(d) for d in dims])

    # -- one method per kind of step ---------------------------------------------------------

    def print_step(self, step: Step) -> str:
        """The step's value: a name or a literal to use inline, after any lines it needs."""
        return self.dispatch(step.operation, *[self.codes[k] for k in step.inputs])

    def _print_Argument(self, operation: Argument) -> str:
        return operation.name

    def _print_Constant(self, operation: Constant) -> str:
        return number(Fraction(operation.value))

    def _print_LeviCivita(self, operation: LeviCivita) -> str:
        rank = operation.rank
        name = self.epsilons.get(rank)
        if name is None:
            name = self.fresh(f"eps{rank}")
            perm, pairs = self.fresh("perm"), self.fresh("pairs")
            first, second = self.fresh("first"), self.fresh("second")
            self.uses_itertools = True
            self.lines += [
                f"{name} = np.zeros({_tuple([str(rank)] * rank)})",
                f"for {perm} in itertools.permutations(range({rank})):",
                f"{INDENT}{pairs} = itertools.combinations({perm}, 2)",
                f"{INDENT}{name}[{perm}] = (-1) ** sum({first} > {second} "
                f"for {first}, {second} in {pairs})",
            ]
            self.epsilons[rank] = name
        source, target = operation.spec.split("->")
        return name if source == target else self.assign(f'np.einsum("{operation.spec}", {name})')

    def _print_Reindex(self, operation: Reindex, code: str) -> str:
        source, target = operation.spec.split("->")
        if len(set(source)) == len(source) and sorted(source) == sorted(target):
            permuted = align(Operand(code, tuple(source)), tuple(target))
            if operation.final:
                return self.assign(f"np.ascontiguousarray({permuted})")
            return permuted if _is_atom(permuted) else self.assign(permuted)
        return self.assign(f'np.einsum("{operation.spec}", {code})')

    def _print_Apply(self, operation: Apply, code: str) -> str:
        return self.assign(FUNCTIONS[operation.function].source.format(code))

    def _print_Raise(self, operation: Raise, base: str, power: str | None = None) -> str:
        base_code = align(Operand(base, operation.base[0]), operation.base[1])
        exponent = operation.exponent
        if exponent is None:
            assert operation.power is not None and power is not None  # the exponent is an input
            power_code = align(Operand(power, operation.power[0]), operation.power[1])
            return self.assign(f"np.power({base_code}, {power_code})")
        literal = number(Fraction(exponent)) if exponent >= 0 else repr(float(exponent))
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
        coefficient = Fraction(operation.coefficient)
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
            f'np.einsum("{operation.full}->{operation.reduced}", {name})[...] = {code}'
        )
        return name

    def _print_Fill(self, operation: Fill, code: str) -> str:
        return self.assign(f"np.full({self.shape(operation.shape)}, {code})")

    def _print_Copy(self, operation: Copy, code: str) -> str:
        if _is_number(code):
            return self.assign(f"np.array({float(Fraction(code))!r})")
        return self.assign(f"np.array({code})")


def _tensors(roots: Sequence[Expr]) -> dict[str, tuple[str, ...]]:
    """Each tensor's name and the indices of its first use, validated as an argument name."""
    tensors: dict[str, tuple[str, ...]] = {}
    for node in postorder(*roots):
        if not isinstance(node, Tensor):
            continue
        name = node.name
        if not name.isidentifier() or keyword.iskeyword(name) or name in _RESERVED:
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
    return bool(re.fullmatch(r"-?[\d.]+(e-?\d+)?", code))


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
    spec = f"{','.join(s for _, s in operands)}->{output}"
    return f'np.einsum("{spec}", {", ".join(code for code, _ in operands)})', output


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


def scaled(coefficient: Fraction, factors: list[str], code: str) -> str:
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
    """A Python literal for a number: ``2``, ``0.5``, ``-2.0``."""
    value = Fraction(value) if not isinstance(value, float) else value
    if isinstance(value, Fraction) and value.denominator == 1:
        return str(value.numerator)
    return repr(float(value))


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
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise CodegenError(f"the function name must be a Python identifier, not {name!r}")
    roots = [root for _, root, _ in outputs]
    outs = [out for _, _, out in outputs]
    generator = Generator(roots, outs, check_dims(dims), _check_shapes(shapes))
    if name in generator.arguments or name in _RESERVED:
        raise CodegenError(f"the function name {name!r} clashes with an argument or with np")
    returned = generator.results()
    details = [f"{label}: {_clean(to_ascii(root))}" for label, root, _ in outputs]
    details.append("")
    if generator.arguments:
        details += [
            f"{n}: {_shape_text(generator.tensors[n])}"
            if n in generator.tensors
            else f"{n}: an array whose shape sizes the result (its values are not read)"
            for n in generator.arguments
        ]
        details.append("")
    returns = ", ".join(f"{label} ({_shape_text(out)})" for label, _, out in outputs)
    details.append(f"Returns {returns}.")
    summary = "Generated by indexcalc from index notation; needs only NumPy."
    body = [*_docstring(summary, details), *generator.lines, f"return {', '.join(returned)}"]
    imports = ["import itertools"] if generator.uses_itertools else []
    if any("np." in line for line in body):
        imports += ["", "import numpy as np"] if imports else ["import numpy as np"]
    lines = [*imports, "", ""] if imports else []
    for line in bracketed(f"def {name}(", generator.arguments, "):", indent=""):
        # The arguments must be the tensor names, even ones pycodestyle finds ambiguous.
        ambiguous = set(re.findall(r"\w+", line)) & {"I", "O", "l"}
        lines.append(f"{line}  # noqa: E741" if ambiguous else line)
    lines += [f"{INDENT}{line}" if line else "" for line in body]
    return "\n".join(lines) + "\n"


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
            checked[name] = tuple(int(n) for n in shape)
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


@deep_recursion
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


@deep_recursion
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
