"""Where each index's size comes from: one inference for evaluation and code generation.

An index is sized, in this order, by an axis of an input tensor it indexes; by the rank of
an ε it indexes; by the `dims` a caller gives; by the tensor axis a δ over it records
(a derivative's δ_ia runs over W's axis, see `Delta.axis`); and, through a δ tying it to
another index, by that index's size. The answer is a `Source`: a number, or an input
tensor's axis, whose length evaluation reads from the array and generated code reads as
``name.shape[axis]`` at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral

from .errors import EvaluationError
from .expr import (
    Delta,
    Epsilon,
    Expr,
    Extent,
    Number,
    Product,
    SizeOf,
    Tensor,
    TensorAxis,
    delta_classes,
    memoised,
    postorder,
)

Source = int | TensorAxis | SizeOf


def index_sources(roots: Sequence[Expr], dims: Mapping[str, int]) -> dict[str, Source]:
    """A size source for every index name in `roots` that anything sizes.

    A free index of a root is sized where it stays free: a tensor, ε or δ that holds it
    with no product between summing it (Σ_i(T_mii) beside δ_ip does not size the free i).
    Other names are global here; inside a product, where a δ merges indices,
    `class_sources` is the more precise answer.
    """
    sources: dict[str, Source] = {}
    for root in roots:
        for index in sorted(root.free):
            found = scoped_source(root, index)
            if found is not None:
                sources.setdefault(index, found)
    for index, size in dims.items():  # for what no array sizes
        sources.setdefault(index, size)
    nodes = postorder(*roots)
    deltas = [node for node in nodes if isinstance(node, Delta)]
    for delta in deltas:
        if delta.axis is not None:
            for index in delta.indices:
                sources.setdefault(index, delta.axis)
    for node in nodes:
        if isinstance(node, Tensor):
            for axis, index in enumerate(node.indices):
                sources.setdefault(index, (node.name, axis))
        elif isinstance(node, Epsilon):
            for index in node.indices:
                sources.setdefault(index, len(node.indices))
    changed = True
    while changed:  # a δ ties its indices to one size
        changed = False
        for delta in deltas:
            known = next((sources[i] for i in delta.indices if i in sources), None)
            for index in delta.indices:
                if known is not None and index not in sources:
                    sources[index] = known
                    changed = True
    return sources


def with_delta_axes(root: Expr) -> Expr:
    """`root` with each δ the user wrote tied to the tensor axis that sizes it here.

    A δ's indices may be sized only by a tensor or an ε elsewhere in the expression
    (`δ_kk` beside `Σ_k(x_k)`). Recording that axis or rank on the δ (see `Delta.axis`)
    keeps the size when differentiation or simplification drops the tensor, so a result
    evaluates from the same arrays, with the same sizes, as the expression it came from.
    A δ that nothing sizes but `dims` records the name it is sized by (`SizeOf`), one for
    all the δs tied together: a free index of `root` among them, whose name no renaming
    changes, else the first; so δ_ij δ_jk and δ_ik still run over the same values.
    """
    nodes = postorder(root)
    if not any(isinstance(n, Delta) and n.axis is None for n in nodes):
        return root
    sources = index_sources([root], {})
    deltas = [n for n in nodes if isinstance(n, Delta)]
    find = delta_classes(deltas)
    named: dict[str, str] = {}
    for index in sorted(
        {i for d in deltas for i in d.indices}, key=lambda i: (i not in root.free, i)
    ):
        named.setdefault(find(index), index)
    memo: dict[Expr, Expr] = {}

    def tied(node: Expr) -> Expr:
        if isinstance(node, Delta) and node.axis is None:
            axes = [sources[i] for i in sorted(set(node.indices)) if i in sources]
            axes.sort(key=lambda source: isinstance(source, int))  # tensor axes first
            extent = axes[0] if axes else SizeOf(named[find(node.indices[0])])
            return Delta(node.indices, extent)
        return node.map_children(lambda child: memoised(memo, child, tied))

    return memoised(memo, root, tied)


def without_own_names(root: Expr) -> Expr:
    """`root` with `SizeOf` dropped from each δ that holds the index it names: such a δ is
    sized by that name either way, and a result reads as it would have been written
    (``simplify("δ_ij δ_jk")`` is ``δ_ik``). Only for results: a later renaming of the
    index would need the `SizeOf` again."""
    nodes = postorder(root)
    if not any(_own_name(n) for n in nodes):
        return root
    memo: dict[Expr, Expr] = {}

    def plain(node: Expr) -> Expr:
        if isinstance(node, Delta) and _own_name(node):
            return Delta(node.indices)
        return node.map_children(lambda child: memoised(memo, child, plain))

    return memoised(memo, root, plain)


def _own_name(node: Expr) -> bool:
    return (
        isinstance(node, Delta)
        and isinstance(node.axis, SizeOf)
        and node.axis.index in node.indices
    )


def broadcast_terms(terms: Sequence[Expr]) -> list[Expr]:
    """The terms of a sum, each broadcast over the sum's free indices it lacks: a bias
    `b_a` beside `X_nd W_da` becomes `b_a` times ones over n (`ones_factors`, sized by
    the terms that hold n). A number stays as it is, broadcast by the sum itself. The
    caller has checked that some term holds every free index of the sum."""
    free = frozenset().union(*(t.free for t in terms))
    full = [t for t in terms if t.free == free]
    result = []
    for term in terms:
        missing = free - term.free
        if not missing or isinstance(term, Number):
            result.append(term)
        else:
            ones = ones_factors(missing, *full)
            result.append(Product((term, *ones), term.free | missing))
    return result


def ones_factors(indices, *sources: Expr) -> list[Delta]:
    """δ_ii for each index i: ones over i, or summed the size of i. Each keeps the axis of
    a tensor in `sources` indexed by i, so its size stays known from that tensor's array
    after the tensor itself is gone."""
    if not indices:
        return []
    axes: dict[str, Extent] = {}
    for index in indices:
        found = (scoped_source(s, index, deltas=True) for s in sources if index in s.free)
        axis = next((a for a in found if a is not None), None)
        if axis is not None:
            axes[index] = axis
    return [Delta((i, i), axes.get(i)) for i in sorted(indices)]


def scoped_source(root: Expr, index: str, *, deltas: bool = False) -> Source | None:
    """The axis of a tensor (or an ε's rank) holding `index` where no product between it
    and `root` sums the index; with `deltas`, a δ's recorded axis (`Delta.axis`) too,
    which evaluation otherwise ranks after `dims`."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if node in seen or index not in node.free:
            continue
        seen.add(node)
        if isinstance(node, Tensor):
            return (node.name, node.indices.index(index))
        if isinstance(node, Epsilon):
            return len(node.indices)
        if deltas and isinstance(node, Delta) and node.axis is not None:
            return node.axis
        stack.extend(reversed(node.children))
    return None


def class_sources(
    members: Iterable[str], deltas: Sequence[Delta], sources: Mapping[str, Source]
) -> list[Source]:
    """What may size a class of indices that `deltas` merge in one product, best first:
    the axes those δs run over, then the members' sources by name (kept indices, named by
    the caller, before summed ones, whose names may be reused elsewhere)."""
    members = set(members)
    found: list[Source] = [
        d.axis for d in deltas if d.axis is not None and members & set(d.indices)
    ]
    found += [sources[i] for i in sorted(members) if i in sources]
    return list(dict.fromkeys(found))


def size_from(sources: Iterable[Source], shapes: Mapping[str, Sequence[int]]) -> int | None:
    """The number the first usable source stands for, given the arrays' shapes; None if
    none is a number or an axis of a given array."""
    for source in sources:
        if isinstance(source, int):
            return source
        if isinstance(source, SizeOf):
            continue
        name, axis = source
        shape = shapes.get(name)
        if shape is not None and axis < len(shape):
            return int(shape[axis])
    return None


def size_inputs(nodes: Iterable[Expr]) -> tuple[str, ...]:
    """Tensors whose shapes size a δ but which the expression does not read: W for
    ∂(W_ij x_j)/∂W_ab = δ_ia x_b. Their arrays are optional inputs."""
    read, sized = set(), set()
    for node in nodes:
        if isinstance(node, Tensor):
            read.add(node.name)
        elif isinstance(node, Delta) and isinstance(node.axis, tuple):
            sized.add(node.axis[0])
    return tuple(sorted(sized - read))


def unsized_where(sources: Sequence[Source], where: str) -> str:
    """How to say where an index without a size is, naming an array that would size it."""
    axes = [s for s in sources if isinstance(s, tuple)]
    if axes:
        name, axis = axes[0]
        return f"{where}, over axis {axis} of '{name}', whose array was not given"
    return where


def unified_shapes(
    nodes: Iterable[Expr],
    dims: Mapping[str, int],
    default: int,
    shapes: Mapping[str, Sequence[int]] | None = None,
    option: str = "dims",
) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
    """A size for every index letter and a shape for every tensor, with no arrays at hand
    (random inputs for `check`, sizes to plan generated code with).

    Letters on the same axis of a tensor, or tied by a δ, share one size: the one `shapes`
    or `dims` gives any of them, the rank of an ε they index, or `default`. Two different
    sizes for one class raise `EvaluationError`; `option` names how dims were given.
    """
    parent: dict = {}

    def find(key):
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    def union(a, b) -> None:
        parent[find(a)] = find(b)

    ranks: dict[str, int] = {}
    reasons: list[tuple[object, int, str]] = []  # (letter or axis, size, why)
    for node in nodes:
        if isinstance(node, Tensor):
            ranks.setdefault(node.name, len(node.indices))
            for axis, index in enumerate(node.indices):
                union(("axis", node.name, axis), index)
        elif isinstance(node, Delta):
            for index in node.indices:
                union(index, node.indices[0])
            if isinstance(node.axis, tuple):
                union(("axis", *node.axis), node.indices[0])
            elif isinstance(node.axis, SizeOf):
                union(node.axis.index, node.indices[0])
            elif isinstance(node.axis, int):
                reasons.append((node.indices[0], node.axis, f"a δ over {node.axis} values"))
        elif isinstance(node, Epsilon):
            for index in node.indices:
                find(index)
                reasons.append((index, len(node.indices), f"ε has rank {len(node.indices)}"))
    for name, shape in (shapes or {}).items():
        for axis, size in enumerate(shape):
            reasons.append((("axis", name, axis), int(size), f"{name} has shape {tuple(shape)}"))
    reasons.extend((index, size, f"{option} {index}={size}") for index, size in dims.items())

    fixed: dict = {}
    for key, size, why in reasons:
        if key not in parent:
            continue
        root = find(key)
        if root in fixed and fixed[root][0] != size:
            letters = sorted(k for k in parent if isinstance(k, str) and find(k) == root)
            raise EvaluationError(
                f"indices {', '.join(letters)} index the same axes, so they need one size, "
                f"but {fixed[root][1]} and {why}"
            )
        fixed.setdefault(root, (size, why))

    def size_of(key) -> int:
        return fixed.get(find(key), (default,))[0]

    sizes = {key: size_of(key) for key in parent if isinstance(key, str)}
    shaped = {
        name: tuple(size_of(("axis", name, axis)) for axis in range(rank))
        for name, rank in ranks.items()
    }
    return sizes, shaped


def output_indices(expr: Expr, out) -> tuple[str, ...]:
    """The order of the result's axes: `out` checked against `expr`'s free indices, or
    the free indices sorted when `out` is None."""
    free = expr.free_indices
    if out is None:
        return free
    if isinstance(out, str):
        names = tuple(out)
    else:
        try:
            names = tuple(out)
        except TypeError:
            raise EvaluationError(
                f"out must be a string of index letters or a sequence, not {out!r}"
            ) from None
    if not all(isinstance(n, str) for n in names):
        raise EvaluationError(f"out must name indices by letter, not {out!r}")
    if len(set(names)) != len(names):
        raise EvaluationError(f"out repeats an index: {''.join(names)!r}")
    unknown = [n for n in names if n not in expr.free]
    if unknown and not (isinstance(expr, Number)):
        raise EvaluationError(
            f"out names {', '.join(repr(n) for n in unknown)}, which "
            f"{'is' if len(unknown) == 1 else 'are'} not free in the expression "
            f"(free: {', '.join(free) or 'none'})"
        )
    absent = [i for i in free if i not in names]
    if absent:
        raise EvaluationError(
            f"out leaves out the free {'index' if len(absent) == 1 else 'indices'} "
            f"{', '.join(repr(i) for i in absent)}; list every free index: {''.join(free)}"
        )
    return names


def check_dims(dims) -> dict[str, int]:
    """`dims`, the sizes a user gives for indices, checked: letters to sizes >= 0."""
    if dims is None:
        return {}
    if not isinstance(dims, Mapping):
        raise EvaluationError(
            f"dims must map index letters to sizes, like {{'i': 3}}, not {dims!r}"
        )
    checked = {}
    for index, size in dims.items():
        if (
            not isinstance(index, str)
            or isinstance(size, bool)
            or not isinstance(size, Integral)
            or size < 0
        ):
            raise EvaluationError(
                f"dims entry {index!r}: {size!r} must be an index letter and a size >= 0"
            )
        checked[index] = int(size)
    return checked
