"""Gradients and Hessians of generated expressions agree with jax (the optional [compare] extra).

Each parsed expression is translated node by node into a jax.numpy function: products
become einsums with explicit output indices, comma derivatives become jax Jacobians. jax
then differentiates that function, independently of indexcalc's rules.
"""

from __future__ import annotations

import string

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import Example, dims_with, evaluate, parsed, programs, variables

import indexcalc as ic
from indexcalc.expr import (
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
)

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

FUNCTIONS = {
    "exp": jnp.exp,
    "log": jnp.log,
    "log1p": jnp.log1p,
    "sin": jnp.sin,
    "cos": jnp.cos,
    "tan": jnp.tan,
    "tanh": jnp.tanh,
    "sqrt": jnp.sqrt,
    "abs": jnp.abs,
    "sign": jnp.sign,
    "step": lambda u: jnp.heaviside(u, 0.0),
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
}
RTOL = 1e-9
# jax compiles every generated function: a third of the examples keeps the default run fast.
COMPARISONS = settings(max_examples=max(10, settings.default.max_examples // 3))


class SizeConflict(Exception):
    """One index name stands for two sizes in different scopes; the translator needs one."""


def index_sizes(expr: Expr, example: Example) -> dict[str, int]:
    """The size of every index name in `expr`: from the arrays, ε ranks, δ ties and dims."""
    sizes: dict[str, int] = {}
    ties: list[tuple[str, ...]] = []

    def fix(index: str, size: int) -> None:
        if sizes.setdefault(index, size) != size:
            raise SizeConflict(index)

    nodes, stack = set(), [expr]
    while stack:
        node = stack.pop()
        if node in nodes:
            continue
        nodes.add(node)
        stack.extend(node.children)
        if isinstance(node, Tensor):
            for index, size in zip(node.indices, example.arrays[node.name].shape, strict=True):
                fix(index, size)
        elif isinstance(node, Epsilon):
            for index in node.indices:
                fix(index, len(node.indices))
        elif isinstance(node, Delta):
            ties.append(node.indices)
    changed = True
    while changed:
        changed = False
        for tie in ties:
            known = {sizes[i] for i in tie if i in sizes}
            if len(known) > 1:
                raise SizeConflict(tie)
            for index in tie:
                if known and index not in sizes:
                    sizes[index] = next(iter(known))
                    changed = True
    for index in expr.all_indices:
        if index not in sizes and index in example.dims:
            sizes[index] = example.dims[index]
    return sizes


class Translator:
    """An expression as a jax function of its arrays, with axes in sorted index order."""

    def __init__(self, sizes: dict[str, int]):
        self.sizes = sizes
        self.letters: dict[str, str] = {}

    def letter(self, index: str) -> str:
        if index not in self.letters:
            self.letters[index] = string.ascii_letters[len(self.letters)]
        return self.letters[index]

    def subscript(self, indices) -> str:
        return "".join(self.letter(i) for i in indices)

    def __call__(self, node: Expr, env: dict):
        return getattr(self, f"_{type(node).__name__}")(node, env)

    def _Number(self, node: Number, env):
        return jnp.asarray(float(node.value))

    def _Tensor(self, node: Tensor, env):
        axes = sorted(node.free)
        return jnp.einsum(f"{self.subscript(node.indices)}->{self.subscript(axes)}", env[node.name])

    def _Delta(self, node: Delta, env):
        axes = sorted(node.free)
        size = self.sizes[axes[0]]
        dense = np.zeros((size,) * len(axes))
        dense[(np.arange(size),) * len(axes)] = 1.0
        return jnp.asarray(dense)

    def _Epsilon(self, node: Epsilon, env):
        rank = len(node.indices)
        dense = np.zeros((rank,) * rank)
        for permutation in np.array(list(np.ndindex(*(rank,) * rank))):
            if len(set(permutation)) == rank:
                inversions = sum(
                    permutation[a] > permutation[b] for a in range(rank) for b in range(a + 1, rank)
                )
                dense[tuple(permutation)] = -1.0 if inversions % 2 else 1.0
        axes = sorted(node.free)
        return jnp.einsum(f"{self.subscript(node.indices)}->{self.subscript(axes)}", dense)

    def _Product(self, node: Product, env):
        operands = [self(f, env) for f in node.factors]
        inputs = ",".join(self.subscript(sorted(f.free)) for f in node.factors)
        return jnp.einsum(f"{inputs}->{self.subscript(sorted(node.out))}", *operands)

    def _Sum(self, node: Sum, env):
        total = self(node.terms[0], env)
        for term in node.terms[1:]:
            total = total + self(term, env)
        return total

    def _Func(self, node: Func, env):
        return FUNCTIONS[node.name](self(node.arg, env))

    def _Power(self, node: Power, env):
        axes = sorted(node.free)
        base = self.aligned(node.base, axes, env)
        if isinstance(node.exponent, Number) and node.exponent.value.denominator == 1:
            return base ** int(node.exponent.value)
        return base ** self.aligned(node.exponent, axes, env)

    def aligned(self, node: Expr, axes: list[str], env):
        """`node`'s value broadcast against `axes`."""
        value = self(node, env)
        own = sorted(node.free)
        return value[tuple(slice(None) if a in own else None for a in axes)]

    def _Derivative(self, node: Derivative, env):
        """A comma derivative, by jax: the Jacobian of the inner expression."""
        name = node.wrt.name
        jacobian = jax.jacfwd(lambda value: self(node.expr, {**env, name: value}))(env[name])
        axes = [*sorted(node.expr.free), *node.wrt.indices]
        order = [axes.index(i) for i in sorted(node.free)]
        return jnp.transpose(jacobian, order)


def translated(expr: Expr, example: Example):
    """`expr` as a function of the example's arrays, with axes in `example.out` order."""
    try:
        translator = Translator(index_sizes(expr, example))
    except SizeConflict:
        assume(False)
    return lambda env: translator(expr, env)


@COMPARISONS
@given(programs())
def test_value_matches_translation(example):
    expr = parsed(example)
    function = translated(expr, example)
    arrays = {name: jnp.asarray(a) for name, a in example.arrays.items()}
    expected = np.asarray(jax.jit(function)(arrays))
    np.testing.assert_allclose(evaluate(expr, example, example.out), expected, rtol=RTOL, atol=RTOL)


@COMPARISONS
@given(programs(), st.data())
def test_gradient_matches_jax(example, data):
    expr = parsed(example)
    (variable,) = variables(data.draw, example, expr)
    function = translated(expr, example)
    arrays = {name: jnp.asarray(a) for name, a in example.arrays.items()}
    gradient = jax.jit(jax.jacrev(lambda v: function({**arrays, variable.name: v})))
    jacobian = gradient(arrays[variable.name])
    derivative = ic.diff(expr, variable.wrt)
    out = example.out + variable.letters
    symbolic = evaluate(derivative, example, out, dims_with(example, [variable]))
    scale = 1 + np.max(np.abs(jacobian), initial=0.0)
    np.testing.assert_allclose(symbolic, np.asarray(jacobian), rtol=RTOL, atol=RTOL * scale)


@COMPARISONS
@given(programs(), st.data())
def test_hessian_matches_jax(example, data):
    expr = parsed(example)
    first, second = variables(data.draw, example, expr, count=2)
    function = translated(expr, example)
    arrays = {name: jnp.asarray(a) for name, a in example.arrays.items()}
    hessian = jax.jit(jax.hessian(lambda v: function({**arrays, first.name: v})))(
        arrays[first.name]
    )
    symbolic = ic.diff(expr, [first.wrt, second.wrt])
    out = example.out + first.letters + second.letters
    value = evaluate(symbolic, example, out, dims_with(example, [first, second]))
    scale = 1 + np.max(np.abs(hessian), initial=0.0)
    np.testing.assert_allclose(value, np.asarray(hessian), rtol=RTOL, atol=RTOL * scale)
