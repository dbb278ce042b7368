"""Threads and deep expressions: no shared state goes wrong, no stack runs out.

Many threads simplifying, differentiating, printing and evaluating at once, with a thread
switch every microsecond, get what one thread gets, and leave the caches as one thread
would. Expressions as deep as `MAX_DEPTH` are handled with the default recursion limit,
which no function of the library changes: a thread deep in one expression cannot make
another thread's work fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import indexcalc as ic
from indexcalc import expr
from indexcalc.algebra import Algebra, shared_algebra
from indexcalc.expr import MAX_DEPTH, Func, Tensor, node_count

REPO = Path(__file__).resolve().parents[1]
THREADS = 8


@contextmanager
def switching_every_microsecond() -> Iterator[None]:
    """Threads switched as often as the interpreter allows, so that races show."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def run_threads(work: Callable[[int], None], count: int = THREADS) -> list[BaseException]:
    """Run `work(k)` for k < `count` in threads started together; the errors they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(k: int) -> None:
        start.wait()
        try:
            work(k)
        except BaseException as error:  # reported to the test, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def run_script(script: str) -> subprocess.CompletedProcess[str]:
    """`script` run by a fresh interpreter on this checkout, with the default recursion
    limit; a crash shows as its return code."""
    environment = dict(os.environ, PYTHONIOENCODING="utf-8")
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        encoding="utf-8",
        env=environment,
        timeout=300,
    )


# -- many threads, one answer --------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """An expression, the chain of variables to differentiate it by, and its symmetries."""

    text: str
    wrt: tuple[str, ...]
    symmetric: tuple[str, ...] = ()


# Sums of two functions of one argument: any two of their terms confused, the way the
# issue's unlocked cache gave two terms one key, shows up in a case that holds both.
PAIRS = (
    ("exp", "sigmoid"),
    ("cos", "sigmoid"),
    ("softplus", "log1p"),
    ("sin", "tanh"),
    ("exp", "cos"),
    ("tanh", "softplus"),
    ("log1p", "sin"),
)
SLOPES = {  # the derivative of each function in PAIRS, to check one thread against
    "exp": np.exp,
    "sigmoid": lambda y: np.exp(-y) / (1 + np.exp(-y)) ** 2,
    "cos": lambda y: -np.sin(y),
    "sin": np.cos,
    "tanh": lambda y: 1 - np.tanh(y) ** 2,
    "softplus": lambda y: 1 / (1 + np.exp(-y)),
    "log1p": lambda y: 1 / (1 + y),
}
CASES = (
    *(Case(f"{f}(y_i) + {g}(y_i)", ("y_k",)) for f, g in PAIRS),
    # Hessians, with and without declared symmetries.
    Case("x_i A_ij x_j", ("x_k", "x_l"), ("A",)),
    Case("x_i A_ij x_j", ("x_k", "x_l")),
    Case("x_i A_ij B_jk x_k", ("x_m", "x_n"), ("A", "B")),
    Case("x_i B_ij A_jk x_k", ("x_m",), ("B",)),
    Case("sum_i(log(1 + exp(-y_i X_ij w_j)))", ("w_k", "w_l")),
    Case("tanh(W_ij x_j) ⊙ sin(W_ij x_j)", ("W_ab",)),
    Case("(x_i x_i)^(1/2) + x_j A_jk x_k", ("x_p",), ("A",)),
)

_RNG = np.random.default_rng(15)
_SYMMETRIC = _RNG.uniform(-1, 1, (3, 3))
ARRAYS = {
    "x": _RNG.uniform(0.5, 1.5, 3),
    "y": _RNG.uniform(0.5, 1.5, 3),
    "w": _RNG.uniform(-1, 1, 3),
    "A": _SYMMETRIC + _SYMMETRIC.T,  # symmetric, as some cases declare
    "B": np.eye(3) + 0.5,
    "W": _RNG.uniform(-1, 1, (3, 3)),
    "X": _RNG.uniform(-1, 1, (3, 3)),
}


@dataclass(frozen=True)
class Outcome:
    """Everything a case gives: texts compare exactly, the values to rounding."""

    texts: tuple[str, ...]
    values: tuple[np.ndarray, ...]

    def differences(self, other: Outcome) -> list[str]:
        found = [f"{a!r} != {b!r}" for a, b in zip(self.texts, other.texts, strict=True) if a != b]
        for a, b in zip(self.values, other.values, strict=True):
            if a.shape != b.shape or not np.allclose(a, b, rtol=1e-12, atol=1e-12):
                found.append(f"{a} != {b}")
        return found


def outcome(case: Case) -> Outcome:
    """Simplify, differentiate, print and evaluate one case."""
    simplified = ic.simplify(case.text, symmetric=case.symmetric)
    derivative = ic.diff(case.text, list(case.wrt), symmetric=case.symmetric)
    texts = [str(simplified), str(derivative), derivative.ascii(), derivative.latex()]
    if len(derivative.free) <= 2:
        texts.append(ic.to_matrix(derivative, symmetric=case.symmetric))
    arrays = {name: ARRAYS[name] for name in ic.compile([simplified, derivative]).inputs}
    values = (
        np.asarray(ic.evaluate(simplified, arrays)),
        np.asarray(ic.evaluate(derivative, arrays)),
    )
    return Outcome(tuple(texts), values)


def test_threads_at_work_together_get_what_one_thread_gets():
    """The issue's race: exp(y_i) + sigmoid(y_i) came out as 2 exp(y_i) when threads
    shared the canonical-form cache. Each thread takes the cases in its own order, some
    with the shared caches emptied under the others, and every answer must be the one a
    single thread gives, before and after."""
    ic.clear_caches()
    expected = [outcome(case) for case in CASES]
    y = ARRAYS["y"]
    for (f, g), found in zip(PAIRS, expected, strict=False):
        np.testing.assert_allclose(found.values[1], np.diag(SLOPES[f](y) + SLOPES[g](y)))
    wrong: list[str] = []

    def work(k: int) -> None:
        for round_ in range(2):
            for position in range(len(CASES)):
                index = (position * (k + 1) + k) % len(CASES)  # each thread its own order
                if k % 3 == 0 and position % 4 == round_:
                    ic.clear_caches()
                for difference in outcome(CASES[index]).differences(expected[index]):
                    wrong.append(f"{CASES[index].text}: {difference}")

    with switching_every_microsecond():
        errors = run_threads(work)
    assert not errors, errors
    assert not wrong, wrong[:5]
    # The caches the threads left give the same answers too.
    for case, before in zip(CASES, expected, strict=True):
        assert not outcome(case).differences(before)


def test_collected_functions_stay_apart_under_threads():
    """A closed-form check of the issue's examples, not only agreement with one thread."""
    texts = {
        "exp(y_i) + sigmoid(y_i)": "exp(y_i) + σ(y_i)",
        "softplus(y_i) + log1p(y_i)": "log1p(y_i) + softplus(y_i)",
        "cos(y_i) + sigmoid(y_i)": "cos(y_i) + σ(y_i)",
    }
    results: dict[tuple[int, str], str] = {}

    def work(k: int) -> None:
        for text in texts:
            results[k, text] = str(ic.simplify(text))

    ic.clear_caches()
    with switching_every_microsecond():
        errors = run_threads(work)
    assert not errors, errors
    assert {text for (_, text) in results} == set(texts)
    assert all(printed == texts[text] for (_, text), printed in results.items())


def test_equal_nodes_built_by_threads_at_once_are_one_node():
    """Equality is identity, so interning must be atomic: threads building the same new
    nodes at the same moment all get one object per node."""
    built: dict[int, list[Func]] = {}

    def work(k: int) -> None:
        built[k] = [Func("exp", Tensor(f"thread_{n}", ("i",))) for n in range(3000)]

    with switching_every_microsecond():
        errors = run_threads(work)
    assert not errors, errors
    for n in range(3000):
        assert len({id(built[k][n]) for k in range(THREADS)}) == 1


def test_one_compiled_function_called_by_threads_at_once_plans_once_per_shape():
    """Threads calling one compiled function with the same shapes at the same moment plan
    once per shape, and each gets its own arrays' value."""
    f = ic.compile("tanh(W_ij x_j) ⊙ sigmoid(W_ij x_j)")
    sizes = range(2, 10)
    rng = np.random.default_rng(1)
    arrays = {n: (rng.uniform(-1, 1, (n, n)), rng.uniform(-1, 1, n)) for n in sizes}
    results: dict[tuple[int, int], np.ndarray] = {}

    def work(k: int) -> None:
        for n in sizes:
            W, x = arrays[n]
            results[k, n] = f(W=W, x=x)

    with switching_every_microsecond():
        errors = run_threads(work)
    assert not errors, errors
    assert f.plan_count == len(sizes)
    for (_, n), value in results.items():
        W, x = arrays[n]
        u = W @ x
        np.testing.assert_allclose(value, np.tanh(u) / (1 + np.exp(-u)), rtol=1e-12)


def test_shared_algebras_stay_whole_while_threads_clear_them_and_add_memos():
    """Asking for the shared Algebra while another thread adds a memo to it, or empties
    the shared caches, never fails; a call keeps the instance it was given."""

    def work(k: int) -> None:
        for m in range(300):
            if k % 2:
                ic.clear_caches()
            algebra = shared_algebra(("A",) if m % 2 else ())
            memo = algebra.memo(f"pass {k} {m}")
            memo[Tensor("x")] = Tensor("y")
            assert algebra.memo(f"pass {k} {m}") is memo

    with switching_every_microsecond():
        errors = run_threads(work)
    assert not errors, errors


# -- deep expressions: by structure, never by the recursion limit --------------------------

DEEP = f"""
import sys
import numpy as np
import indexcalc as ic

limit = sys.getrecursionlimit()
assert limit == 1000, limit
changes = []
sys.setrecursionlimit = changes.append  # any call by the library is recorded, not made


def chain(values, n):
    for _ in range(n):
        values = np.tanh(values)
    return values


n = {MAX_DEPTH} - 5
x = np.linspace(-0.9, 0.8, 4)
w = np.linspace(0.5, 2.0, 4)
deep = "w_i ⊙ " + "tanh(" * n + "x_i" + ")" * n
e = ic.parse(deep)
assert e.depth == n + 2, e.depth
assert ic.simplify(e) is e
for show in (str, ic.to_text, ic.to_ascii):
    assert ic.parse(show(e)) is e
assert ic.to_latex(e).count(r"\\tanh") == n
np.testing.assert_allclose(ic.evaluate(e, x=x, w=w), w * chain(x, n))
namespace = {{}}
exec(ic.codegen(e, "f"), namespace)
np.testing.assert_allclose(namespace["f"](w=w, x=x), w * chain(x, n))

d = ic.diff(e, "w_k")  # δ_ik ⊙ tanh(…(x_i)…)
assert d.depth == n + 2, d.depth
np.testing.assert_allclose(ic.evaluate(d, x=x, w=w), np.diag(chain(x, n)))
np.testing.assert_allclose(ic.evaluate(ic.parse(str(d)), x=x, w=w), np.diag(chain(x, n)))
assert ic.check_derivatives(deep, "w_k").failure is None
exec(ic.codegen_value_and_grad(deep, "w_k"), namespace)
value, gradient = namespace["fg"](w=w, x=x)
np.testing.assert_allclose(gradient, np.diag(chain(x, n)))

A = np.array([[0.3, -0.2], [0.1, 0.4]])
for style in ("unicode", "ascii", "latex"):
    matrix = ic.to_matrix("tanh(" * n + "A_ij" + ")" * n, format=style)
    assert matrix.count("tanh") == n and "A" in matrix, matrix[-20:]

# Stable evaluation looks for logarithms through the whole depth too (σ' = σ (1 − σ)).
m = n // 4
sigmoids = "sigmoid(" * m + "x_i" + ")" * m
values, slope = x, np.ones_like(x)
for _ in range(m):
    values = 1 / (1 + np.exp(-values))
    slope = slope * values * (1 - values)
reparsed = ic.parse(str(ic.diff(sigmoids, "x_k")))
np.testing.assert_allclose(ic.evaluate(reparsed, x=x), np.diag(slope))

# Differentiation walks the whole depth: d/dx_k (x_i ⊙ step(…(x_i)…)) = δ_ik step(x_i).
steps = "x_i ⊙ " + "step(" * n + "x_i" + ")" * n
np.testing.assert_allclose(ic.evaluate(ic.diff(steps, "x_k"), x=x), np.diag(x > 0))

# Deeper than MAX_DEPTH is the documented error, not a RecursionError.
try:
    ic.parse("exp(" * 5000 + "x" + ")" * 5000)
except ic.TooDeepError:
    pass
else:
    raise AssertionError("5000 nested calls parsed")

assert sys.getrecursionlimit() == limit
assert not changes, changes
print("deep ok")
"""


def test_deepest_expressions_need_no_recursion_limit_of_their_own():
    """Parse, simplify, print in every format, evaluate, generate code, differentiate,
    check and write in matrix notation expressions MAX_DEPTH deep, with the default
    recursion limit, which nothing may change; and all that called from 700 frames down,
    as from a deep web or notebook stack, since a pass keeps its own stack short."""
    script = (
        "def down(k):\n"
        "    if k:\n"
        "        return down(k - 1)\n"
        f"    exec(compile({DEEP!r}, 'deep', 'exec'), {{}})\n"
        "down(700)\n"
    )
    completed = run_script(script)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip() == "deep ok"


MIXED = """
import sys
import threading
import numpy as np
import indexcalc as ic

changes = []
sys.setrecursionlimit = changes.append  # any call by the library is recorded, not made
sys.setswitchinterval(1e-6)
n = 900
x = np.linspace(-0.9, 0.8, 5)
expected = x
for _ in range(n):
    expected = np.sin(expected)
failures = []
deep_done = threading.Event()
deep_text = "y_i ⊙ " + "sin(" * n + "x_i" + ")" * n


def deep(rounds):
    try:
        e = ic.parse(deep_text)
        for _ in range(rounds):
            if ic.parse(str(e)) is not e or ic.simplify(e) is not e:
                failures.append("deep expression changed")
            value = ic.evaluate(ic.diff(e, "y_k"), x=x, y=x)
            if not np.allclose(value, np.diag(expected)):
                failures.append("deep derivative")
    finally:
        deep_done.set()


def shallow(k):
    m = 0
    while not deep_done.is_set() or m < 20:
        m += 1
        e = ic.parse(f"A_ij x_j + {k + m} b_i")
        if str(ic.diff(e, "x_k")) != "A_ik":
            failures.append(str(e))


def guarded(work, *args):
    try:
        work(*args)
    except BaseException as error:
        failures.append(repr(error))


threads = [threading.Thread(target=guarded, args=(deep, 3))]
threads += [threading.Thread(target=guarded, args=(shallow, k)) for k in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(failures[:3] or changes[:3] or "mixed ok")
"""


def test_deep_work_in_one_thread_and_small_parses_in_others_never_abort():
    """The issue's crash: the process aborted (exit 134) when one thread lowered the
    recursion limit while another was deep in a recursive pass."""
    completed = run_script(MIXED)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip() == "mixed ok"


@pytest.mark.parametrize(
    "work",
    [
        lambda: ic.parse("exp(" * 990 + "x" + ")" * 990),
        lambda: str(ic.parse("x^" * 990 + "x")),
        lambda: ic.simplify("-" * 990 + "x_i"),
        lambda: ic.to_matrix("tanh(" * 990 + "A_ij" + ")" * 990),
    ],
    ids=["parse", "print", "simplify", "matrix"],
)
def test_no_public_function_changes_the_recursion_limit(work, monkeypatch):
    changes: list[int] = []
    monkeypatch.setattr(sys, "setrecursionlimit", changes.append)
    work()
    assert changes == []


def test_a_wide_sum_deep_inside_costs_no_more_work_than_plain_recursion(monkeypatch):
    """Past `NESTING` levels a pass unwinds to an evaluation loop and runs the unwound
    computations again; a sum of 200 terms 40 calls deep must not make that quadratic.
    The work is counted, not timed: the constructor calls, against plain recursion
    (nesting without limit, which 40 levels can afford)."""
    terms = " + ".join(f"a{k}_i x_i" for k in range(200))
    e = ic.parse("log(" * 40 + f"1 + ({terms})^2" + ")" * 40)
    calls: list[str] = []
    for name in ("add", "multiply", "power", "func"):
        constructor = getattr(Algebra, name)

        def counting(self, *args, _constructor=constructor, _name=name, **kwargs):
            calls.append(_name)
            return _constructor(self, *args, **kwargs)

        monkeypatch.setattr(Algebra, name, counting)

    def work() -> tuple[str, str, int]:
        ic.clear_caches()
        calls.clear()
        simplified, derivative = str(ic.simplify(e)), str(ic.diff(e, "x_k"))
        return simplified, derivative, len(calls)

    unwinding = work()
    monkeypatch.setattr(expr, "NESTING", 10**6)
    monkeypatch.setattr(expr, "_LOOPS", 10**6)
    plain = work()
    assert unwinding == plain
    assert plain[2] < 4 * node_count(e)


def test_deep_expressions_print_and_differentiate_as_plain_recursion_does(monkeypatch):
    """Unwinding runs computations again in the order plain recursion runs them, so even
    the fresh letters a printer picks for the diagonals at the bottom of each chain (the
    second picked after the first chain's computations ran again) are the same."""
    chains = [
        "tanh(" * 30 + "sum_j(A_ij ⊙ delta_ij) ⊙ x_i" + ")" * 30,
        "exp(" * 30 + "sum_k(B_ik ⊙ delta_ik) ⊙ y_i ⊙ sum_l(C_li x_l)" + ")" * 30,
    ]
    e = ic.simplify(" - ".join(chains))

    def texts() -> tuple[str, ...]:
        derivative = ic.diff(e, "x_q")
        return str(e), e.ascii(), e.latex(), str(derivative), ic.to_matrix(derivative)

    unwinding = texts()
    monkeypatch.setattr(expr, "NESTING", 10**6)
    monkeypatch.setattr(expr, "_LOOPS", 10**6)
    assert texts() == unwinding
    assert "(Σ_j(A_ij ⊙ δ_ij) ⊙ x_i)" in unwinding[0]
    assert "(Σ_k(B_ik ⊙ δ_ik) ⊙ y_i ⊙ C_li) x_l)" in unwinding[0]
