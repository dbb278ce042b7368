"""Where each index's size comes from: one inference for evaluation and code generation.

An index is sized, in this order, by the `dims` a caller gives; by an axis of an input
tensor it indexes; by the rank of an ε it indexes; by the tensor axis a δ over it records
(a derivative's δ_ia runs over W's axis, see `Delta.axis`); and, through a δ tying it to
another index, by that index's size. The answer is a `Source`: a number, or an input
tensor's axis, whose length evaluation reads from the array and generated code reads as
``name.shape[axis]`` at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .expr import Delta, Epsilon, Expr, Tensor, TensorAxis

Source = int | TensorAxis


def index_sources(nodes: Iterable[Expr], dims: Mapping[str, int]) -> dict[str, Source]:
    """A size source for every index name in `nodes` that anything sizes.

    Names are global here, as in the notation's free indices; inside a product, where a δ
    merges indices, `class_source` is the more precise answer.
    """
    sources: dict[str, Source] = dict(dims)
    deltas = []
    for node in nodes:
        if isinstance(node, Tensor):
            for axis, index in enumerate(node.indices):
                sources.setdefault(index, (node.name, axis))
        elif isinstance(node, Epsilon):
            for index in node.indices:
                sources.setdefault(index, len(node.indices))
        elif isinstance(node, Delta):
            deltas.append(node)
    for delta in deltas:
        if delta.axis is not None:
            for index in delta.indices:
                sources.setdefault(index, delta.axis)
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


def class_sources(
    members: Iterable[str], deltas: Sequence[Delta], sources: Mapping[str, Source]
) -> list[Source]:
    """What may size a class of indices that `deltas` merge in one product, best first:
    the axes those δs run over, then the members' sources by name (kept indices, named by
    the caller, before summed ones, whose names may be reused elsewhere)."""
    members = set(members)
    found = [d.axis for d in deltas if d.axis is not None and members & set(d.indices)]
    found += [sources[i] for i in sorted(members) if i in sources]
    return list(dict.fromkeys(found))


def size_from(sources: Iterable[Source], shapes: Mapping[str, Sequence[int]]) -> int | None:
    """The number the first usable source stands for, given the arrays' shapes; None if
    none is a number or an axis of a given array."""
    for source in sources:
        if isinstance(source, int):
            return source
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
        elif isinstance(node, Delta) and node.axis is not None:
            sized.add(node.axis[0])
    return tuple(sorted(sized - read))


def unsized_where(sources: Sequence[Source], where: str) -> str:
    """How to say where an index without a size is, naming an array that would size it."""
    axes = [s for s in sources if isinstance(s, tuple)]
    if axes:
        name, axis = axes[0]
        return f"{where}, over axis {axis} of '{name}', whose array was not given"
    return where
