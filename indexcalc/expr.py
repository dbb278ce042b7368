"""The expression model: immutable, interned nodes with explicit index bookkeeping.

Every node knows its free indices. Only `Product` sums: it multiplies its factors
elementwise over shared indices and sums every index that is not in its `out`, exactly
like ``numpy.einsum`` with explicit output indices. So ``A_ij x_j`` is
``Product((A_ij, x_j), out=(i,))`` and the elementwise term ``σ'(u_i) ⊙ W_ik`` is
``Product((σ'(u_i), W_ik), out=(i, k))``: ``i`` is shared by two factors and kept.

Nodes are interned: constructing a node equal to one that exists returns that node,
so equal subexpressions are one object, equality is identity and hashing is O(1).
Interning is atomic, so this holds across threads too.

Expressions may be `MAX_DEPTH` deep, deeper than Python's recursion limit allows a
recursive pass to go. Passes recurse through `memoised`, which keeps the Python stack
shallow whatever the depth, so no pass changes the recursion limit and no thread can
exhaust another's stack.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, TypeVar

from .errors import NumberError, TooDeepError

# Index names a fresh index is drawn from, in order of preference.
INDEX_POOL = tuple("ijklmnpqrstuvwabcdefgho") + tuple("αβγζηθικλμνξπρτυφχψω")

MAX_DEPTH = 1000  # deepest expression accepted

K = TypeVar("K")
V = TypeVar("V")

# -- recursion-free evaluation ----------------------------------------------------------

# Evaluations nested as ordinary Python calls before a request unwinds to an evaluation
# loop. Each level costs a handful of frames, so a pass stays far inside the default
# recursion limit of 1000, and expressions shallower than this never unwind at all.
NESTING = 24
_LOOPS = NESTING // 2  # the levels that run evaluation loops; those above only compute

Item = tuple[MutableMapping, Any, Callable]  # (memo, key, compute)


class _Pending(BaseException):
    """Unwinds the computations that asked, one inside another, for a value not computed
    yet, collecting them in `chain` (the value asked for first, then each asker outwards),
    so that an evaluation loop further down the stack computes them in that order from
    its own stack. A BaseException, so that no ``except Exception`` can swallow it."""

    def __init__(self, item: Item):
        super().__init__()
        self.chain = [item]


class _Nesting(threading.local):
    level = 0  # how many `memoised` evaluations run in this thread, one inside another


_nesting = _Nesting()
_ABSENT = object()


def memoised(memo: MutableMapping[K, V], key: K, compute: Callable[[K], V]) -> V:
    """`memo[key]`, computed as `compute(key)` and stored first if it is absent.

    This is how every pass over expressions recurses: `compute` asks for the values it
    needs (its node's children, say) through `memoised` again. Evaluations nest as
    ordinary calls up to `NESTING` deep; a request deeper than that unwinds the
    computations that led to it down to an evaluation loop, which runs them again from an
    explicit stack, innermost first, so each then finds what it asks for already done
    (as lark's ``Transformer_NonRecursive`` handles huge trees by structure). Values are
    computed in the order plain recursion computes them, and the Python stack stays
    shallow whatever the depth of the expression.

    So `compute` must be safe to run again: a function of its key, whose side effects
    are only entries in caches. A RecursionError on the way (a caller already deep in
    its own recursion) becomes a `TooDeepError`.
    """
    value = memo.get(key, _ABSENT)
    if value is not _ABSENT:
        return value  # type: ignore[return-value]
    level = _nesting.level
    if level >= NESTING:
        raise _Pending((memo, key, compute))
    _nesting.level = level + 1
    try:
        if level < _LOOPS:
            return _evaluate([(memo, key, compute)])
        try:
            value = compute(key)
        except _Pending as pending:
            pending.chain.append((memo, key, compute))
            raise
        memo[key] = value
        return value
    except RecursionError:
        raise TooDeepError("expression is nested too deeply to process") from None
    finally:
        _nesting.level = level


def _evaluate(stack: list[Item]) -> Any:
    """The value of the item at the bottom of `stack`, computing the items above it
    first; a computation interrupted by `_Pending` runs again after what it waits for."""
    waiting = {(id(memo), key) for memo, key, _ in stack}
    while True:
        memo, key, compute = stack[-1]
        value = memo.get(key, _ABSENT)
        if value is _ABSENT:
            try:
                value = compute(key)
            except _Pending as pending:
                for item in reversed(pending.chain):
                    identity = (id(item[0]), item[1])
                    if identity in waiting:
                        raise RuntimeError(f"{item[2]!r} needs its own result") from None
                    waiting.add(identity)
                    stack.append(item)
                continue
            memo[key] = value
        stack.pop()
        waiting.discard((id(memo), key))
        if not stack:
            return value


class Expr:
    """Base of all nodes. Construct through the subclasses; never mutate."""

    __slots__ = (
        "__dict__",
        "__weakref__",
        "_args",
        "_hash",
        "all_indices",
        "bound_indices",
        "depth",
        "free",
        "summed",
        "tensor_names",
    )
    # Every live node by its class and arguments: the interning table, owned by `Expr`.
    # Lookups need no lock; inserting does, so that two threads building equal nodes get
    # one node (equality is identity).
    _table: ClassVar[weakref.WeakValueDictionary[tuple[type[Expr], tuple[Any, ...]], Expr]] = (
        weakref.WeakValueDictionary()
    )
    _table_lock: ClassVar[threading.Lock] = threading.Lock()

    _args: tuple[Any, ...]  # the constructor's arguments, which the properties read
    _hash: int
    free: frozenset[str]  # the free indices
    summed: frozenset[str]  # the indices this node itself sums over: a product's, or none
    depth: int  # 1 for a leaf, else one more than the deepest child
    # Of the whole expression, found from the children's when the node is built:
    all_indices: frozenset[str]  # every index name used anywhere, free or summed
    bound_indices: frozenset[str]  # every index some product inside sums over
    tensor_names: frozenset[str]  # the names of the tensors it reads

    @staticmethod
    def _free_of(*args) -> Iterable[str]:
        raise NotImplementedError

    @staticmethod
    def _summed_of(*args) -> frozenset[str]:
        return _NONE

    def _names_here(self) -> frozenset[str]:
        """The tensor names this node reads itself, apart from its children."""
        return _NONE

    def __new__(cls, *args):
        key = (cls, args)
        node = Expr._table.get(key)
        if node is not None:
            return node
        node = object.__new__(cls)
        node._args = args
        node._hash = hash(key)
        node.free = frozenset(cls._free_of(*args))
        node.summed = cls._summed_of(*args)
        children = node.children
        node.depth = 1 + max((c.depth for c in children), default=0)
        if node.depth > MAX_DEPTH:
            raise TooDeepError(f"expression is nested more than {MAX_DEPTH} levels deep")
        node.all_indices = _union(node.free, (c.all_indices for c in children))
        node.bound_indices = _union(node.summed, (c.bound_indices for c in children))
        node.tensor_names = _union(node._names_here(), (c.tensor_names for c in children))
        with Expr._table_lock:
            existing = Expr._table.get(key)
            if existing is not None:
                return existing  # another thread built it first
            Expr._table[key] = node
        return node

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        return self is other

    def __reduce__(self):
        return (type(self), self._args)

    @property
    def children(self) -> tuple[Expr, ...]:
        return ()

    @property
    def free_indices(self) -> tuple[str, ...]:
        """The free indices, sorted."""
        return tuple(sorted(self.free))

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        """This node rebuilt with new `children` in place of its own (a leaf has none)."""
        return self

    def map_children(self, function: Callable[[Expr], Expr]) -> Expr:
        """This node rebuilt with `function` applied to each child."""
        children = self.children
        if not children:
            return self
        return self.with_children(tuple(function(c) for c in children))

    # Convenience methods call the public functions of the modules above the model. The
    # package binds them when it is imported (see `bind_operations`), so this module
    # imports nothing above it.
    _operations: ClassVar[dict[str, Callable]] = {}

    def __str__(self) -> str:
        return self._operations["text"](self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self}>"

    def latex(self) -> str:
        """The expression as LaTeX."""
        return self._operations["latex"](self)

    def ascii(self) -> str:
        """The expression as plain ASCII text that parses back."""
        return self._operations["ascii"](self)

    def _repr_latex_(self) -> str:
        return f"${self.latex()}$"

    def diff(self, wrt, *, symmetric: Iterable[str] = ()) -> Expr:
        """The simplified derivative with respect to `wrt` (see `indexcalc.diff`)."""
        return self._operations["diff"](self, wrt, symmetric=symmetric)

    def simplify(self, *, symmetric: Iterable[str] = ()) -> Expr:
        """The expression with comma derivatives carried out, in canonical form."""
        return self._operations["simplify"](self, symmetric=symmetric)

    def evaluate(self, arrays=None, **kwargs):
        """Evaluate on arrays (see `indexcalc.evaluate`)."""
        return self._operations["evaluate"](self, arrays, **kwargs)

    def to_matrix(self, **kwargs) -> str:
        """The expression in matrix notation (see `indexcalc.to_matrix`)."""
        return self._operations["to_matrix"](self, **kwargs)

    def program(self, **kwargs) -> str:
        """The expression as a program naming its shared parts (`indexcalc.to_program`)."""
        return self._operations["to_program"](self, **kwargs)


_NONE: frozenset[str] = frozenset()


def _union(own: frozenset[str], parts: Iterable[frozenset[str]]) -> frozenset[str]:
    """`own` joined with `parts`, reusing a set where the others add nothing to it; once
    they do, gathered in one mutable set, so a sum of n terms that each bring a new
    tensor name costs O(n), not O(n²)."""
    result = own
    grown: set[str] | None = None
    for part in parts:
        if grown is not None:
            grown.update(part)
        elif not part <= result:
            if result <= part:
                result = part
            else:
                grown = set(result)
                grown.update(part)
    return result if grown is None else frozenset(grown)


class Number(Expr):
    """A rational constant."""

    __slots__ = ()

    def __new__(cls, value):
        value = Fraction(value)
        if not fits(value):
            raise NumberError(f"a number {size_problem(value)}")
        return super().__new__(cls, value)

    @staticmethod
    def _free_of(value):
        return ()

    @property
    def value(self) -> Fraction:
        return self._args[0]


class Indexed(Expr):
    """A leaf that carries indices: an input tensor, δ or ε."""

    __slots__ = ()

    @property
    def indices(self) -> tuple[str, ...]:
        raise NotImplementedError

    def with_indices(self, indices: Iterable[str]) -> Indexed:
        """The same leaf with other indices."""
        raise NotImplementedError


class Tensor(Indexed):
    """A named input tensor with its indices, e.g. ``A_ij``. ``A_ii`` is A's diagonal."""

    __slots__ = ()

    def __new__(cls, name: str, indices: Iterable[str] = ()):
        return super().__new__(cls, name, tuple(indices))

    @staticmethod
    def _free_of(name, indices):
        return indices

    @property
    def name(self) -> str:
        return self._args[0]

    @property
    def indices(self) -> tuple[str, ...]:
        return self._args[1]

    def with_indices(self, indices: Iterable[str]) -> Tensor:
        return Tensor(self.name, indices)

    def _names_here(self) -> frozenset[str]:
        return frozenset((self.name,))


class ConstantTensor(Indexed):
    """A constant tensor known by its indices alone: δ or ε. Reads no input."""

    __slots__ = ()

    def __new__(cls, indices: Iterable[str]):
        return super().__new__(cls, tuple(indices))

    @staticmethod
    def _free_of(indices):
        return indices

    @property
    def indices(self) -> tuple[str, ...]:
        return self._args[0]


TensorAxis = tuple[str, int]  # an input tensor's name and one of its axes


@dataclass(frozen=True)
class SizeOf:
    """The size `dims` gives an index name: what a δ tied only to such an index runs over
    (Σ_m(δ_nm) with n sized by ``dims``), however its own indices are renamed later."""

    index: str


Extent = TensorAxis | int | SizeOf  # what a δ's indices run over


class Delta(ConstantTensor):
    """The Kronecker delta: 1 where all indices are equal. ``δ_ii`` summed is a dimension.

    `axis` is what the δ's indices run over, where that is known: an input tensor's axis
    (∂W_ij/∂W_ab = δ_ia δ_jb runs over W's axes (W, 0) and (W, 1)), a fixed size (the
    rank of an ε that sized them), or the size `dims` gives a name (`SizeOf`). It is how
    a derivative that no longer reads W still evaluates from W's array, and it survives
    renaming and contraction. A δ the user writes has none until differentiation or
    simplification records the size its indices have in the whole expression
    (`sizes.with_delta_axes`). The axis is not printed.
    """

    __slots__ = ()

    def __new__(cls, indices: Iterable[str], axis: Extent | None = None):
        return Expr.__new__(cls, tuple(indices), axis)

    @staticmethod
    def _free_of(indices, axis=None):
        return indices

    @property
    def axis(self) -> Extent | None:
        return self._args[1]

    def with_indices(self, indices: Iterable[str]) -> Delta:
        return Delta(indices, self.axis)


class Epsilon(ConstantTensor):
    """The Levi-Civita symbol of any rank."""

    __slots__ = ()

    def with_indices(self, indices: Iterable[str]) -> Epsilon:
        return Epsilon(indices)


def connected_parts(keys: Sequence[Iterable[Hashable]]) -> list[list[int]]:
    """The positions of `keys` grouped into parts that share a key, directly or through
    other members (union-find): in order of their first position, each in order."""
    parent = list(range(len(keys)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]  # path halving
            k = parent[k]
        return k

    holder: dict[Hashable, int] = {}
    for position, held in enumerate(keys):
        for key in held:
            parent[find(position)] = find(holder.setdefault(key, position))
    parts: dict[int, list[int]] = {}
    for position in range(len(keys)):
        parts.setdefault(find(position), []).append(position)
    return list(parts.values())


def delta_classes(deltas: Iterable[Delta]) -> Callable[[str], str]:
    """A function giving each index its class representative, where every δ joins its
    indices into one class (union-find): the indices a contraction may merge."""
    parent: dict[str, str] = {}

    def find(index: str) -> str:
        while parent.get(index, index) != index:
            index = parent[index]
        return index

    for delta in deltas:
        first = find(delta.indices[0])
        for index in delta.indices[1:]:
            root = find(index)
            if root != first:
                parent[root] = first
    return find


class Product(Expr):
    """Multiply `factors` elementwise over shared indices, then sum all but `out`."""

    __slots__ = ()

    def __new__(cls, factors: Iterable[Expr], out: Iterable[str]):
        factors = tuple(factors)
        out = tuple(sorted(set(out)))
        present = set().union(*(f.free for f in factors))
        missing = set(out) - present
        if missing:
            raise ValueError(f"output indices {sorted(missing)} appear in no factor")
        return super().__new__(cls, factors, out)

    @staticmethod
    def _free_of(factors, out):
        return out

    @staticmethod
    def _summed_of(factors, out):
        return frozenset().union(*(f.free for f in factors)) - frozenset(out)

    @property
    def factors(self) -> tuple[Expr, ...]:
        return self._args[0]

    @property
    def out(self) -> tuple[str, ...]:
        return self._args[1]

    @property
    def children(self) -> tuple[Expr, ...]:
        return self._args[0]

    def with_children(self, children: tuple[Expr, ...]) -> Product:
        return Product(children, self.out)


class Sum(Expr):
    """A sum of terms with the same free indices; a number term is broadcast."""

    __slots__ = ()

    def __new__(cls, terms: Iterable[Expr]):
        terms = tuple(terms)
        if len({t.free for t in terms if not isinstance(t, Number)}) > 1:
            raise ValueError("terms of a sum must have the same free indices")
        return super().__new__(cls, terms)

    @staticmethod
    def _free_of(terms):
        return frozenset().union(*(t.free for t in terms))

    @property
    def terms(self) -> tuple[Expr, ...]:
        return self._args[0]

    @property
    def children(self) -> tuple[Expr, ...]:
        return self._args[0]

    def with_children(self, children: tuple[Expr, ...]) -> Sum:
        return Sum(children)


class Func(Expr):
    """An elementwise function applied to an expression, e.g. ``tanh(W_ij x_j)``."""

    __slots__ = ()

    def __new__(cls, name: str, arg: Expr):
        return super().__new__(cls, name, arg)

    @staticmethod
    def _free_of(name, arg):
        return arg.free

    @property
    def name(self) -> str:
        return self._args[0]

    @property
    def arg(self) -> Expr:
        return self._args[1]

    @property
    def children(self) -> tuple[Expr, ...]:
        return (self._args[1],)

    def with_children(self, children: tuple[Expr, ...]) -> Func:
        (arg,) = children
        return Func(self.name, arg)


class Power(Expr):
    """``base ^ exponent``, elementwise; free indices are the union of both."""

    __slots__ = ()

    def __new__(cls, base: Expr, exponent: Expr):
        return super().__new__(cls, base, exponent)

    @staticmethod
    def _free_of(base, exponent):
        return base.free | exponent.free

    @property
    def base(self) -> Expr:
        return self._args[0]

    @property
    def exponent(self) -> Expr:
        return self._args[1]

    @property
    def children(self) -> tuple[Expr, ...]:
        return self._args

    def with_children(self, children: tuple[Expr, ...]) -> Power:
        base, exponent = children
        return Power(base, exponent)


class Derivative(Expr):
    """A comma derivative not yet carried out: ∂`expr`/∂`wrt`, e.g. ``f_{j,i}``."""

    __slots__ = ()

    def __new__(cls, expr: Expr, wrt: Tensor):
        if set(wrt.indices) & expr.free or len(set(wrt.indices)) != len(wrt.indices):
            raise ValueError("derivative indices must be distinct and not free in the expression")
        return super().__new__(cls, expr, wrt)

    @staticmethod
    def _free_of(expr, wrt):
        return expr.free | set(wrt.indices)

    @property
    def expr(self) -> Expr:
        return self._args[0]

    @property
    def wrt(self) -> Tensor:
        return self._args[1]

    @property
    def children(self) -> tuple[Expr, ...]:
        return self._args

    def with_children(self, children: tuple[Expr, ...]) -> Derivative:
        expr, wrt = children
        assert isinstance(wrt, Tensor)
        return Derivative(expr, wrt)


MAX_DIGITS = 300  # the most digits a number's numerator or denominator has
_LIMIT = 10**MAX_DIGITS
_LIMIT_BITS = _LIMIT.bit_length() - 1  # 2**_LIMIT_BITS < _LIMIT
_LOG10_2 = 0.30103


def fits(value: Fraction) -> bool:
    """Whether `value` can be a `Number`: numerator and denominator of at most MAX_DIGITS
    digits. Such a number is a finite, normal float64 (|value| < 1e300, and 0 or > 1e-300)."""
    return abs(value.numerator) < _LIMIT and value.denominator < _LIMIT


def size_problem(value: Fraction) -> str:
    """Why a `value` that does not fit cannot be a number, for an error message: its
    size, without writing out its digits."""
    numerator, denominator = abs(value.numerator), value.denominator
    if numerator >= _LIMIT * denominator:
        return too_large(round((numerator.bit_length() - denominator.bit_length()) * _LOG10_2))
    return too_precise(int(max(numerator, denominator).bit_length() * _LOG10_2) + 1)


def too_large(exponent: int) -> str:
    return (
        f"is too large (about 10^{exponent}): indexcalc keeps numbers exact, with at most "
        f"{MAX_DIGITS} digits"
    )


def too_precise(digits: int) -> str:
    return (
        f"is too precise (about {digits} digits): indexcalc keeps numbers exact, with at "
        f"most {MAX_DIGITS} digits in numerator and denominator"
    )


def small_power(base: Fraction, exponent: Fraction) -> bool:
    """Whether base^exponent, for an integer exponent, is a number that fits (see `fits`);
    decided from sizes alone, without computing the power."""
    size = max(abs(base.numerator), base.denominator, 2).bit_length()
    return abs(exponent) * size <= _LIMIT_BITS


ZERO = Number(0)
ONE = Number(1)
MINUS_ONE = Number(-1)


def fresh_index(avoid: Iterable[str]) -> str:
    """The first index name from the pool that is not in `avoid`."""
    avoid = set(avoid)
    for name in INDEX_POOL:
        if name not in avoid:
            return name
    n = 1
    while f"i{n}" in avoid:
        n += 1
    return f"i{n}"


def fresh_indices(count: int, avoid: Iterable[str]) -> list[str]:
    """`count` distinct fresh index names, none in `avoid`."""
    taken = set(avoid)
    names = []
    for _ in range(count):
        name = fresh_index(taken)
        taken.add(name)
        names.append(name)
    return names


def rename(node: Expr, mapping: Mapping[str, str]) -> Expr:
    """Rename free indices of `node` by `mapping`, renaming summed indices to avoid capture.

    The mapping must be injective on the node's free indices. Each node keeps its own
    renamings (they go when it goes); entries are a function of their key, so threads may
    share them.
    """
    relevant = tuple(sorted((k, v) for k, v in mapping.items() if k in node.free and k != v))
    if not relevant:
        return node
    renamings = vars(node).setdefault("_renamings", {})  # atomic: one dict per node
    return memoised(renamings, relevant, functools.partial(_rename, node))


def _rename(node: Expr, relevant: tuple[tuple[str, str], ...]) -> Expr:
    mapping = dict(relevant)
    if isinstance(node, Indexed):
        return node.with_indices(mapping.get(i, i) for i in node.indices)
    if isinstance(node, Product):
        clashes = node.summed & set(mapping.values())
        if clashes:
            avoid = node.all_indices | set(mapping.values()) | set(mapping)
            mapping = {
                **mapping,
                **dict(zip(sorted(clashes), fresh_indices(len(clashes), avoid), strict=True)),
            }
        factors = [rename(f, mapping) for f in node.factors]
        return Product(factors, (mapping.get(i, i) for i in node.out))
    return node.map_children(lambda child: rename(child, mapping))


def rename_bound(node: Expr, names: frozenset[str]) -> Expr:
    """`node` with every summed index called one of `names` renamed to a fresh letter, so
    those names can be used freely beside it (derivative indices, say). The new letters
    are used nowhere in `node`: an index that only a δ sizes is read back sized by its
    name, so a letter taken from elsewhere would lend it another index's size."""
    if not node.bound_indices & names:
        return node
    used = node.all_indices
    done: dict[tuple[Expr, frozenset[str]], Expr] = {}

    def renamed(key: tuple[Expr, frozenset[str]]) -> Expr:
        node, names = key
        if not node.bound_indices & names:
            return node
        if isinstance(node, Product):
            clashes = sorted(node.summed & names)
            if clashes:
                # Letters new to the whole expression and to this node, which may hold
                # letters an enclosing renaming chose.
                fresh = fresh_indices(len(clashes), used | names | node.all_indices)
                node = Product(
                    (rename(f, dict(zip(clashes, fresh, strict=True))) for f in node.factors),
                    node.out,
                )
        elif isinstance(node, Derivative):
            inner = memoised(done, (node.expr, names | set(node.wrt.indices)), renamed)
            return Derivative(inner, node.wrt)
        return node.map_children(lambda child: memoised(done, (child, names), renamed))

    return memoised(done, (node, names), renamed)


def postorder(*roots: Expr) -> list[Expr]:
    """Distinct nodes, children before parents, without recursion."""
    order, seen = [], set()
    stack: list[tuple[Expr, bool]] = [(root, False) for root in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack.extend((c, False) for c in reversed(node.children) if c not in seen)
    return order


def written_size(node: Expr, cap: int) -> int:
    """The number of nodes of `node` written out as a tree, where a shared subexpression
    counts once per use; counting stops a little past `cap`."""
    sizes: dict[Expr, int] = {}
    for current in postorder(node):
        sizes[current] = min(cap + 1, 1 + sum(sizes[c] for c in current.children))
    return sizes[node]


def node_count(node: Expr) -> int:
    """The number of distinct nodes in the expression DAG."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        stack.extend(current.children)
    return len(seen)


def bind_operations(**operations: Callable) -> None:
    """Give `Expr`'s convenience methods (str, latex, diff, …) the functions they call.

    The package does this once on import, from the modules that own those functions.
    """
    Expr._operations.update(operations)
