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

import opt_einsum

from .compile import check_dims, output_indices, postorder
from .errors import IndexCalcError
from .expr import (
    Delta,
    Derivative,
    Epsilon,
    Expr,
    Func,
    Number,
    Power,
    Product,
    Sum,
    Tensor,
    deep_recursion,
    delta_classes,
)
from .functions import FUNCTIONS
from .printing import split_sign, to_ascii
from .simplify import Algebra
from .sizes import class_sources, index_sources, size_from, size_inputs

DEFAULT_SIZE = 100  # the size of an index for path planning when nothing gives one
LINE_LENGTH = 88  # ruff's default, so the source is clean under a default configuration
INDENT = "    "

_RESERVED = {"np", "itertools"}


class CodegenError(IndexCalcError):
    """The expression cannot be written as a function: a tensor name that is no Python
    identifier, a bad function name, or an index whose size nothing fixes."""


@dataclass(frozen=True)
class Value:
    """A computed array in the generated code: its source (a name, ``name.T`` or a
    literal) and the index of each of its axes."""

    code: str
    axes: tuple[str, ...]


class Generator:
    """Writes the body of one function computing `roots`, sharing every common node."""

    def __init__(
        self,
        roots: Sequence[Expr],
        dims: Mapping[str, int],
        shapes: Mapping[str, Sequence[int]],
    ):
        self.roots = list(roots)
        self.dims = dict(dims)
        self.shapes = {name: tuple(shape) for name, shape in shapes.items()}
        nodes = postorder(*self.roots)
        self.sources = index_sources(nodes, dims)
        self.size_only = size_inputs(nodes)  # arguments read only for their shapes
        self.lines: list[str] = []
        self.values: dict[Expr, Value] = {}
        self.algebra = Algebra()
        self.shared: dict[tuple, tuple[Value, tuple[str, ...]]] = {}
        self._has_delta: dict[Expr, bool] = {}
        self.epsilons: dict[int, str] = {}
        self.views: set[str] = set()
        self.uses_itertools = False
        self.tensors = self._tensors()
        self.arguments = sorted({*self.tensors, *self.size_only})
        self.taken = set(self.arguments) | _RESERVED
        self.counter = 0

    # -- bookkeeping -----------------------------------------------------------------------

    def _tensors(self) -> dict[str, tuple[str, ...]]:
        """Each tensor's name and the indices of its first use, validated."""
        tensors: dict[str, tuple[str, ...]] = {}
        for root in self.roots:
            for node in postorder(root):
                if not isinstance(node, Tensor):
                    continue
                name = node.name
                if not name.isidentifier() or keyword.iskeyword(name) or name in _RESERVED:
                    raise CodegenError(
                        f"tensor name {name!r} cannot be a Python argument name; rename it"
                    )
                known = tensors.setdefault(name, node.indices)
                if len(known) != len(node.indices):
                    raise CodegenError(
                        f"tensor '{name}' is used with {len(known)} and with "
                        f"{len(node.indices)} indices"
                    )
        return dict(sorted(tensors.items()))

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
        view = re.fullmatch(r'np\.einsum\("\w+->\w*", (\w+)\)', code)
        if view and view.group(1) in self.tensors:
            self.views.add(name)  # a diagonal of an input shares the input's memory
        return name

    def size_code(self, indices: Iterable[str], deltas: Sequence[Delta] = ()) -> str:
        """Source for the run-time size of a class of indices that `deltas` merge: an
        argument's ``shape[axis]`` where one sizes it, so the function works for any
        sizes; else a number from `dims`."""
        indices = sorted(indices)
        candidates = class_sources(indices, deltas, self.sources)
        for source in candidates:
            if isinstance(source, tuple):
                return f"{source[0]}.shape[{source[1]}]"
        for source in candidates:
            return str(source)
        raise CodegenError(
            f"the size of index '{indices[0]}' (in a δ) is not fixed by any array; "
            f"pass it with dims={{'{indices[0]}': n}}"
        )

    def plan_size(self, index: str) -> int:
        """The size of an index for planning a contraction path."""
        sources = [self.sources[index]] if index in self.sources else []
        return size_from(sources, self.shapes) or DEFAULT_SIZE

    # -- values of nodes -----------------------------------------------------------------------

    def value(self, node: Expr) -> Value:
        """The array of `node`, computed once for all nodes equal to it up to the names of
        their free indices: σ(W_ij x_j) and σ(W_gj x_j) share one temporary."""
        done = self.values.get(node)
        if done is None:
            skeleton, names = self.algebra.canonical(node)
            shared = self.shared.get(skeleton)
            renaming = dict(zip(shared[1], names, strict=True)) if shared else {}
            if shared and (not self.has_delta(node) or self.same_sizes(renaming)):
                done = Value(shared[0].code, tuple(renaming[a] for a in shared[0].axes))
            else:
                done = getattr(self, f"_v_{type(node).__name__}")(node)
                self.shared.setdefault(skeleton, (done, names))
            self.values[node] = done
        return done

    def has_delta(self, node: Expr) -> bool:
        """Whether a δ occurs in `node`: then index names, not arrays, fix some sizes."""
        known = self._has_delta.get(node)
        if known is None:
            known = isinstance(node, Delta) or any(self.has_delta(c) for c in node.children)
            self._has_delta[node] = known
        return known

    def same_sizes(self, renaming: Mapping[str, str]) -> bool:
        """Whether each renamed index surely has the size of its new name."""

        def size(index: str):
            return self.sources.get(index)

        return all(
            a == b or (size(a) is not None and size(a) == size(b)) for a, b in renaming.items()
        )

    def _v_Number(self, node: Number) -> Value:
        return Value(number(node.value), ())

    def _v_Tensor(self, node: Tensor) -> Value:
        return self.relabel(node.name, node.indices)

    def _v_Delta(self, node: Delta) -> Value:
        return self.product(Product((node,), node.free))

    def _v_Epsilon(self, node: Epsilon) -> Value:
        rank = len(node.indices)
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
        return self.relabel(name, node.indices)

    def relabel(self, code: str, indices: tuple[str, ...]) -> Value:
        """The array `code` indexed by `indices`, taking a diagonal where they repeat."""
        if len(set(indices)) == len(indices):
            return Value(code, indices)
        axes = tuple(dict.fromkeys(indices))
        letters = _letters(axes)
        source = "".join(letters[i] for i in indices)
        target = "".join(letters[i] for i in axes)
        return Value(self.assign(f'np.einsum("{source}->{target}", {code})'), axes)

    def _v_Func(self, node: Func) -> Value:
        argument = self.value(node.arg)
        code = FUNCTIONS[node.name].source.format(argument.code)
        return Value(self.assign(code), argument.axes)

    def _v_Power(self, node: Power) -> Value:
        base = self.value(node.base)
        if isinstance(node.exponent, Number):
            exponent = node.exponent.value
            if (
                isinstance(node.base, Number)
                and exponent.denominator == 1
                and (node.base.value != 0 or exponent >= 0)
            ):
                return Value(number(node.base.value ** int(exponent)), ())
            literal = number(exponent) if exponent >= 0 else number(float(exponent))
            return Value(self.assign(f"{base.code}**{literal}"), base.axes)
        exponent_value = self.value(node.exponent)
        axes = base.axes + tuple(i for i in exponent_value.axes if i not in base.axes)
        code = f"np.power({align(base, axes)}, {align(exponent_value, axes)})"
        return Value(self.assign(code), axes)

    def _v_Sum(self, node: Sum) -> Value:
        parts = []
        for term in node.terms:
            negative, positive = split_sign(term)
            parts.append((negative, self.value(positive)))
        axes = next((v.axes for _, v in parts if v.axes), ())
        code = ""
        for k, (negative, value) in enumerate(parts):
            text = align(value, axes)
            if k == 0:
                code = f"-{text}" if negative else text
            else:
                code += f" - {text}" if negative else f" + {text}"
        return Value(self.assign(code), axes)

    def _v_Product(self, node: Product) -> Value:
        return self.product(node)

    # -- products --------------------------------------------------------------------------------

    def product(self, node: Product) -> Value:
        """A contraction with δ indices merged first and any kept δ written at the end."""
        coefficient = Fraction(1)
        operands: list[tuple[str, tuple[str, ...]]] = []  # (code, index class of each axis)
        deltas = [f for f in node.factors if isinstance(f, Delta)]
        find = delta_classes(deltas)
        pending = []
        for factor in node.factors:
            if isinstance(factor, Number):
                coefficient *= factor.value
            elif isinstance(factor, Tensor):
                pending.append((factor.name, factor.indices))
            elif not isinstance(factor, Delta):
                value = self.value(factor)
                pending.append((value.code, value.axes))
        for code, indices in pending:
            operands.append((code, tuple(find(i) for i in indices)))
        members: dict[str, set[str]] = {}
        every = {i for f in node.factors for i in f.free} | {i for d in deltas for i in d.indices}
        for index in every | set(node.out):
            members.setdefault(find(index), set()).add(index)
        kept = list(dict.fromkeys(find(i) for i in sorted(node.out)))
        carried = {c for _, indices in operands for c in indices}
        factors = []  # run-time sizes of summed classes no operand carries (δ_ii → n)
        for root in sorted(members):
            if root not in carried and root not in kept:
                factors.append(self.size_code(members[root], deltas))
        if not operands and len(kept) == 1 and len(node.out) == 2:
            code = f"np.eye({self.size_code(members[kept[0]], deltas)})"
            return Value(self.assign(scaled(coefficient, factors, code)), tuple(sorted(node.out)))
        for root in kept:
            if root not in carried:
                operands.append((f"np.ones({self.size_code(members[root], deltas)})", (root,)))
        code, axes = self.contract(operands, kept)
        code = scaled(coefficient, factors, code)
        reduced = Value(code if code.isidentifier() else self.assign(code), axes)
        if len(kept) == len(node.out):
            return Value(reduced.code, tuple(sorted(node.out, key=lambda i: axes.index(find(i)))))
        return self.embed(reduced, sorted(node.out), find, deltas)

    def embed(self, reduced: Value, out: list[str], find, deltas: Sequence[Delta]) -> Value:
        """Write a result over merged δ indices onto the diagonal of a zero array."""
        letters = _letters(reduced.axes)
        shape = _tuple([self.size_code([i, find(i)], deltas) for i in out])
        full = "".join(letters[find(i)] for i in out)
        target = "".join(letters[a] for a in reduced.axes)
        name = self.assign(f"np.zeros({shape}, {reduced.code}.dtype)")
        self.lines.append(f'np.einsum("{full}->{target}", {name})[...] = {reduced.code}')
        return Value(name, tuple(out))

    def contract(self, operands: list[tuple[str, tuple[str, ...]]], kept: list[str]):
        """Source contracting `operands` down to the `kept` indices, and its axes.

        With three or more operands, opt_einsum plans the pairwise order; every step but the
        last becomes a temporary.
        """
        names = sorted({i for _, indices in operands for i in indices} | set(kept))
        letters = _letters(names)
        live = [(code, "".join(letters[i] for i in indices)) for code, indices in operands]
        wanted = "".join(letters[i] for i in kept)
        back = {letter: index for index, letter in letters.items()}
        if not live:
            return "1.0", ()
        if len(live) > 2:
            spec = f"{','.join(s for _, s in live)}->{wanted}"
            shapes = [tuple(self.plan_size(back[c]) for c in s) for _, s in live]
            path, _ = opt_einsum.contract_path(spec, *shapes, shapes=True, optimize="auto")
            for positions in path[:-1]:
                taken = [live[p] for p in sorted(positions)]
                for p in sorted(positions, reverse=True):
                    del live[p]
                needed = set(wanted).union(*(s for _, s in live))
                seen = dict.fromkeys(c for _, s in taken for c in s)
                result = "".join(c for c in seen if c in needed)
                code, subscripts = step(taken, result)
                live.append((self.assign(code), subscripts))
        code, subscripts = step(live, wanted)
        return code, tuple(back[c] for c in subscripts)

    # -- the function -----------------------------------------------------------------------------

    def result(self, root: Expr, out: tuple[str, ...]) -> str:
        """Source of the value returned for `root`, with axes in `out` order."""
        if isinstance(root, Number) and out:
            shape = _tuple([self.size_code([i]) for i in out])
            return f"np.full({shape}, {number(root.value)})"
        value = self.value(root)
        code = align(value, out)
        if value.code in self.tensors or value.code in self.views:
            return f"np.array({code})"  # never hand back the caller's array, or a view of it
        return code


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
        # Nothing summed: broadcasting multiply over the union of axes.
        axes = ls + "".join(c for c in rs if c not in ls)
        left_code = align(Value(left, tuple(ls)), tuple(axes))
        right_code = align(Value(right, tuple(rs)), tuple(axes))
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
    axes = (_list(ls.index(c) for c in summed), _list(rs.index(c) for c in summed))
    return f"np.tensordot({left}, {right}, axes=({axes[0]}, {axes[1]}))", rest


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


def align(value: Value, target: Sequence[str]) -> str:
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
    generator = Generator(roots, check_dims(dims), _check_shapes(shapes))
    if name in generator.arguments or name in _RESERVED:
        raise CodegenError(f"the function name {name!r} clashes with an argument or with np")
    returned = [generator.result(root, out) for _, root, out in outputs]
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
    from .simplify import simplify
    from .syntax import parse

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
    from .diff import diff
    from .simplify import simplify

    expr = simplify(_prepared(expr_or_text, var), symmetric=symmetric)
    gradient = diff(expr, wrt, symmetric=symmetric)
    outputs = [("value", expr, expr.free_indices), ("derivative", gradient, gradient.free_indices)]
    return _source(name, outputs, dims, shapes)


__all__ = ["CodegenError", "codegen", "codegen_value_and_grad"]
