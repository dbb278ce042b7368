"""The autodiff peers, JAX and PyTorch, behind one small interface.

A peer turns a `Problem` and its arrays into a thunk that computes the derivative and a
function that converts the thunk's result to NumPy for the correctness check. Peers are
imported only when asked for, so the runner works without them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from .problems import Problem

Thunk = Callable[[], object]


@dataclass
class Prepared:
    """A peer's derivative for one problem and size, ready to call."""

    thunk: Thunk
    to_numpy: Callable[[object], object]


def limit_threads(threads: int) -> str:
    """Run NumPy's BLAS, PyTorch and XLA on `threads` threads; a note saying what was done.

    One thread gives steady ratios on a shared machine, where a multi-threaded BLAS
    competing with other processes slows down erratically. Call before the peers are
    loaded: XLA reads its flags when JAX is imported, and PyTorch copies NumPy's count.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "threads not limited: threadpoolctl is not installed"
    threadpool_limits(limits=threads, user_api="blas")
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        single = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{flags} {single}".strip()
        return "one thread each: NumPy's BLAS (threadpoolctl), PyTorch, and XLA (XLA_FLAGS)"
    return f"{threads} threads for NumPy's BLAS and PyTorch; XLA keeps its own thread pool"


def blas_threads() -> int:
    """The number of threads NumPy's BLAS uses (all cores if threadpoolctl is missing)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1
    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(counts) if counts else os.cpu_count() or 1


def _to_numpy(result) -> object:
    if isinstance(result, (tuple, list)):
        return tuple(np.asarray(part) for part in result)
    return np.asarray(result)


class JaxPeer:
    """``jax.jit(jax.grad)`` and ``jax.jit(jax.hessian)`` in float64 on the CPU."""

    name = "jax"

    def __init__(self):
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_platforms", "cpu")
        self.jax, self.jnp = jax, jnp
        self.note = (
            f"jax {jax.__version__}: jax.jit(jax.grad) / jax.jit(jax.hessian), float64, "
            f"device {jax.devices()[0]}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '(unset)')!r}"
        )

    def prepare(self, problem: Problem, arrays: Mapping[str, np.ndarray]) -> Prepared:
        jax, jnp = self.jax, self.jnp
        names = problem.ordered_names(arrays)

        def loss(*values):
            return problem.loss(jnp, dict(zip(names, values, strict=True)))

        argnums = _argnums(problem)
        transform = jax.hessian if problem.hessian else jax.grad
        derivative = jax.jit(transform(loss, argnums=argnums))
        values = [jax.device_put(arrays[name]) for name in names]
        return Prepared(lambda: jax.block_until_ready(derivative(*values)), _to_numpy)


class TorchPeer:
    """``torch.func.grad`` and ``torch.func.hessian`` in float64 on the CPU."""

    name = "torch"

    def __init__(self, threads: int):
        import torch
        import torch.func

        torch.set_num_threads(threads)
        self.torch = torch
        self.note = (
            f"torch {torch.__version__}: torch.func.grad / torch.func.hessian (eager), "
            f"float64, CPU, torch.set_num_threads({threads}) to match NumPy's BLAS"
        )

    def prepare(self, problem: Problem, arrays: Mapping[str, np.ndarray]) -> Prepared:
        torch = self.torch
        names = problem.ordered_names(arrays)

        def loss(*values):
            return problem.loss(torch, dict(zip(names, values, strict=True)))

        argnums = _argnums(problem)
        transform = torch.func.hessian if problem.hessian else torch.func.grad
        derivative = transform(loss, argnums=argnums)
        values = [torch.from_numpy(arrays[name]) for name in names]

        def to_numpy(result):
            if isinstance(result, (tuple, list)):
                return tuple(part.numpy() for part in result)
            return result.numpy()

        return Prepared(lambda: derivative(*values), to_numpy)


def _argnums(problem: Problem) -> int | tuple[int, ...]:
    count = len(problem.variables)
    return 0 if count == 1 else tuple(range(count))


PEERS = ("jax", "torch")


def load_peers(names: Iterable[str]) -> tuple[dict[str, JaxPeer | TorchPeer], list[str]]:
    """The peers among `names` that import, and a note for each that was skipped."""
    loaded: dict[str, JaxPeer | TorchPeer] = {}
    notes: list[str] = []
    for name in names:
        try:
            peer = JaxPeer() if name == "jax" else TorchPeer(blas_threads())
        except ImportError as error:
            notes.append(f"{name} skipped: not installed ({error}); pip install -e '.[bench]'")
            continue
        loaded[name] = peer
        notes.append(peer.note)
    return loaded, notes
