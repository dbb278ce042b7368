"""The canonical form: a key equal for terms that are equal up to the names of summed
indices, the order of factors and the declared symmetries.

``A_kj x_j`` and ``x_l A_kl`` get one key, so a sum collects them to ``2 A_kj x_j``; a
declared symmetric matrix compares equal to its transpose. Keys are digests of the
structure, not counters, so they order terms the same way in every process and after
any prior work.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable

from .dispatch import Pass
from .errors import IndexCalcError, SymmetryError
from .expr import (
    Delta,
    Epsilon,
    Expr,
    Indexed,
    Number,
    Product,
    Sum,
    Tensor,
    memoised,
    postorder,
)

# Skeleton tags of the composite nodes without a rule of their own; kept short and fixed
# because the digests, and so the order of printed terms, depend on them.
_TAGS = {"Func": "F", "Power": "W", "Derivative": "V"}


class CanonicalForm(Pass):
    """Canonical keys of expressions, cached. `symmetric` names tensors known to equal their
    transpose."""

    prefix = "_key_"
    description = "the canonical form"

    def __init__(self, symmetric: Iterable[str] = ()):
        self.symmetric = frozenset(symmetric)
        # Shared by the threads that use this form (through its `Algebra`): every entry is
        # a function of its key, written whole, so threads that race store equal values,
        # and a skeleton is stored before any key that names it.
        self._canon: dict[Expr, tuple[bytes, tuple[str, ...]]] = {}
        self._skeletons: dict[bytes, tuple] = {}
        self._texts: dict[bytes, str] = {}

    def __len__(self) -> int:
        """The number of cached keys."""
        return len(self._canon)

    def term_key(self, node: Expr) -> tuple:
        """A key equal for terms equal up to summed-index names, factor order and symmetry."""
        skeleton, names = self.canonical(node)
        return skeleton, self._instance(node, tuple((0, n) for n in names))

    def canonical(self, node: Expr) -> tuple[bytes, tuple[str, ...]]:
        """(skeleton, names): the node with its free indices replaced by positions
        ``("f", k)``, named by a digest of its structure, and the free index name at each
        position. A digest, unlike a counter, orders skeletons the same way in every
        process and after any prior work, so canonical names and term order are stable."""
        return memoised(self._canon, node, self._canonical)

    def _canonical(self, node: Expr) -> tuple[bytes, tuple[str, ...]]:
        shallow, names = self.dispatch(node)
        skeleton = _digest(shallow)
        self._skeletons.setdefault(skeleton, shallow)
        return skeleton, names

    def skeleton_text(self, skeleton: bytes) -> str:
        """A stable text for a skeleton, for ordering terms the same way in every run."""
        return memoised(self._texts, skeleton, self._skeleton_text)

    def _skeleton_text(self, skeleton: bytes) -> str:
        tag, label, payload = self._skeletons[skeleton]
        if tag in "NTDE":
            return f"{tag}{label}{payload}"
        inner = ",".join(f"{self.skeleton_text(c)}{p}" for c, p in payload)
        return f"{tag}{label}({inner})"

    def _instance(self, node: Expr, mapped: tuple) -> tuple:
        """The placeholders of a child as seen from its parent; symmetric ones sorted."""
        return tuple(sorted(mapped)) if self.is_symmetric(node) else mapped

    def _child_key(self, child: Expr, mapping: dict) -> tuple:
        skeleton, names = self.canonical(child)
        return skeleton, self._instance(child, tuple(mapping[n] for n in names))

    # -- one rule per node kind: (shallow skeleton, free index names) ------------------

    def _key_Number(self, node: Number) -> tuple[tuple, tuple[str, ...]]:
        return ("N", "", node.value), ()

    def _key_Tensor(self, node: Tensor) -> tuple[tuple, tuple[str, ...]]:
        return _leaf_key("T", node.name, node)

    def _key_Delta(self, node: Delta) -> tuple[tuple, tuple[str, ...]]:
        # δs over different tensors' axes may differ in size: never one term. A δ_kk with
        # no axis is sized by its index's name (dims=): Σ_k δ_kk and Σ_l δ_ll may differ.
        if node.axis:
            return _leaf_key("D", repr(node.axis), node)
        return _leaf_key("D", node.indices[0] if len(set(node.indices)) == 1 else "", node)

    def _key_Epsilon(self, node: Epsilon) -> tuple[tuple, tuple[str, ...]]:
        return _leaf_key("E", "", node)

    def _key_Expr(self, node: Expr) -> tuple[tuple, tuple[str, ...]]:
        """Any other node: its kind, its non-expression arguments and its children's keys
        in order (a function's name and argument; a power's base and exponent)."""
        children = node.children
        tag = _TAGS.get(type(node).__name__, type(node).__name__)
        label = ",".join(str(a) for a in node._args if not isinstance(a, Expr))
        names = tuple(dict.fromkeys(n for c in children for n in self.canonical(c)[1]))
        mapping = {n: ("f", k) for k, n in enumerate(names)}
        return (tag, label, tuple(self._child_key(c, mapping) for c in children)), names

    def _key_Product(self, node: Product) -> tuple[tuple, tuple[str, ...]]:
        """Number the product's indices by how they connect its factors, not by their names.

        Colour refinement: a factor's colour is its skeleton plus the colours of its
        indices; an index's colour is the multiset of (factor colour, slot) it occupies.
        Indices are then numbered in colour order, so renaming dummies or reordering
        factors gives the same key; a symmetric tensor's slots are interchangeable.
        """
        out = set(node.out)
        factors = node.factors
        info = [self.canonical(f) for f in factors]
        symmetric = [self.is_symmetric(f) for f in factors]
        names = list(dict.fromkeys(n for _, ns in info for n in ns))
        index_colour = {n: 0 if n in out else 1 for n in names}
        factor_colour = _rank_colours([skeleton for skeleton, _ in info])
        for _ in range(3 if len(factors) > 2 else 1):
            slots: dict[str, list] = {n: [] for n in names}
            for k, (_, ns) in enumerate(info):
                for position, n in enumerate(ns):
                    slots[n].append((factor_colour[k], -1 if symmetric[k] else position))
            index_colour = dict(
                zip(
                    names,
                    _rank_colours([(index_colour[n], tuple(sorted(slots[n]))) for n in names]),
                    strict=True,
                )
            )
            factor_colour = _rank_colours(
                [
                    (skeleton, self._instance(f, tuple(index_colour[n] for n in ns)))
                    for f, (skeleton, ns) in zip(factors, info, strict=True)
                ]
            )
        # Ties: kept indices by name (their names are fixed here), summed ones as they come.
        ranked = sorted(names, key=lambda n: (n not in out, index_colour[n], n if n in out else ""))
        free_names = [n for n in ranked if n in out]
        mapping = {n: ("f", k) for k, n in enumerate(free_names)}
        mapping.update({n: ("b", k) for k, n in enumerate(n for n in ranked if n not in out)})
        keys = sorted(self._child_key(f, mapping) for f in factors)
        return ("P", "", tuple(keys)), tuple(free_names)

    def _key_Sum(self, node: Sum) -> tuple[tuple, tuple[str, ...]]:
        ordered = sorted(node.terms, key=lambda t: self.canonical(t)[0])
        names = tuple(dict.fromkeys(n for t in ordered for n in self.canonical(t)[1]))
        mapping = {n: ("f", k) for k, n in enumerate(names)}
        keys = sorted(self._child_key(t, mapping) for t in node.terms)
        return ("S", "", tuple(keys)), names

    def is_symmetric(self, node: Expr) -> bool:
        return isinstance(node, Delta) or (isinstance(node, Tensor) and node.name in self.symmetric)


def _leaf_key(tag: str, label: str, node: Indexed) -> tuple[tuple, tuple[str, ...]]:
    names = tuple(dict.fromkeys(node.indices))
    positions = tuple(("f", names.index(i)) for i in node.indices)
    return (tag, label, positions), names


def declared_symmetric(symmetric, node: Expr) -> frozenset[str]:
    """The names in `symmetric`, checked against how `node` uses them.

    ``symmetric=["A"]`` means A_ij = A_ji: a matrix equal to its transpose. A tensor of
    higher rank has several symmetries a user may mean (all permutations, or an elasticity
    tensor's minor and major symmetries), so declaring one is an error, not a guess.
    """
    names = tensor_names(symmetric)
    for tensor in postorder(node):
        if isinstance(tensor, Tensor) and tensor.name in names and len(tensor.indices) > 2:
            raise SymmetryError(
                f"symmetric= declares a matrix equal to its transpose (A_ij = A_ji), but "
                f"'{tensor.name}' has {len(tensor.indices)} indices "
                f"({tensor.name}_{''.join(tensor.indices)}); which of its index symmetries "
                f"hold is not implied, so only rank-2 tensors may be declared symmetric. "
                f"Leave '{tensor.name}' out of symmetric= (results stay correct, only less "
                f"collected), or write its symmetrised form explicitly"
            )
    return names


def tensor_names(symmetric) -> frozenset[str]:
    """The names in `symmetric`: one name, or an iterable of names."""
    if isinstance(symmetric, str):
        symmetric = (symmetric,)
    try:
        names = frozenset(symmetric)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        raise IndexCalcError(f"symmetric must name tensors, like ['A'], not {symmetric!r}")
    # As the parser reads names (NFKC, as Python does): µ is μ.
    return frozenset(unicodedata.normalize("NFKC", n) for n in names)


def _digest(shallow: tuple) -> bytes:
    """A stable name for a skeleton: its children are digests already, so this is O(1)."""
    return hashlib.blake2b(repr(shallow).encode(), digest_size=16).digest()


def _rank_colours(colours: list) -> list[int]:
    """Each colour replaced by its rank among the distinct colours."""
    order = {c: k for k, c in enumerate(sorted(set(colours)))}
    return [order[c] for c in colours]


__all__ = ["CanonicalForm", "declared_symmetric", "tensor_names"]
