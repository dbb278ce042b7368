"""Array backends: the numbers of the NumPy closed forms, computed where the arrays live.

dask results stay lazy until `.compute()` and keep shared subexpressions shared in the
task graph; torch and JAX results keep the inputs' type, dtype and device. Every library
other than NumPy is optional: its tests skip when it is not installed, so the core install
(numpy, lark, opt_einsum) runs only the NumPy and error tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import opt_einsum
import pytest

import indexcalc as ic
from indexcalc.backends import NUMPY, library_of

RNG = np.random.default_rng(20240609)

LOSS = ic.parse("sum_i(log(1 + exp(-y_i X_ij w_j)))", var="w")
GRADIENT = ic.diff(LOSS, "w_k")
HESSIAN = ic.diff(LOSS, ["w_k", "w_l"])

QUADRATIC = ic.parse("x_i A_ij x_j")
QUADRATIC_GRADIENT = ic.diff(QUADRATIC, "x_k")
QUADRATIC_HESSIAN = ic.diff(QUADRATIC, ["x_k", "x_l"])

CROSS = "eps_ijk a_j b_k"
IDENTITY = ic.diff(ic.parse("x_i"), "x_k")  # δ_ik, sized by dims

TOLERANCE = {"float32": {"rtol": 1e-4, "atol": 1e-5}, "float64": {"rtol": 1e-10, "atol": 1e-12}}


def _sigmoid(u):
    return 1 / (1 + np.exp(-u))


def _logistic(X, y, w):
    """Loss, gradient and Hessian of Σ_i log(1 + exp(-y_i X_ij w_j)), in float64."""
    X, y, w = (np.asarray(a, dtype=np.float64) for a in (X, y, w))
    margin = y * (X @ w)
    loss = np.sum(np.log1p(np.exp(-margin)))
    gradient = -X.T @ (y * _sigmoid(-margin))
    curvature = y**2 * _sigmoid(margin) * _sigmoid(-margin)
    return loss, gradient, (X.T * curvature) @ X


def _logistic_data(rows=400, features=8, dtype="float64"):
    X = RNG.standard_normal((rows, features))
    y = RNG.choice([-1.0, 1.0], rows)
    w = 0.3 * RNG.standard_normal(features)
    return X.astype(dtype), y.astype(dtype), w.astype(dtype)


def _quadratic_data(dtype="float64"):
    return RNG.standard_normal((5, 5)).astype(dtype), RNG.standard_normal(5).astype(dtype)


def _cross_data(dtype="float32"):
    return RNG.standard_normal(3).astype(dtype), RNG.standard_normal(3).astype(dtype)


def _close(result, expected, dtype):
    return np.allclose(np.asarray(result), expected, **TOLERANCE[dtype])


# -- NumPy and the backend= argument ------------------------------------------------------


def test_numpy_default_gives_numpy_arrays_with_the_closed_form_values():
    X, y, w = _logistic_data()
    loss, gradient, hessian = _logistic(X, y, w)
    f = ic.compile(HESSIAN)
    assert f.backend == "numpy"
    for expr, expected in ((LOSS, loss), (GRADIENT, gradient), (HESSIAN, hessian)):
        result = ic.evaluate(expr, X=X, y=y, w=w)
        assert type(result) is np.ndarray
        assert np.allclose(result, expected, rtol=1e-10)


def test_auto_backend_with_numpy_arrays_gives_numpy():
    X, y, w = _logistic_data()
    result = ic.evaluate(HESSIAN, X=X, y=y, w=w, backend="auto")
    assert type(result) is np.ndarray
    assert np.allclose(result, _logistic(X, y, w)[2], rtol=1e-10)


def test_auto_backend_with_lists_and_scalars_gives_numpy():
    result = ic.evaluate("s A_ij x_j", s=2.0, A=[[1, 2], [3, 4]], x=[1, -1], backend="auto")
    assert type(result) is np.ndarray
    assert result.tolist() == [-2.0, -2.0]


@pytest.mark.parametrize("call", ["evaluate", "compile"])
def test_unknown_backend_lists_the_choices(call):
    with pytest.raises(ic.EvaluationError) as raised:
        if call == "evaluate":
            ic.evaluate("A_ij x_j", A=np.eye(2), x=np.ones(2), backend="tensorflow")
        else:
            ic.compile("A_ij x_j", backend="tensorflow")
    message = str(raised.value)
    assert "'tensorflow'" in message
    for choice in ("numpy", "auto", "jax", "torch", "cupy", "dask"):
        assert choice in message


# -- the core install: no array_api_compat ------------------------------------------------


def test_library_of_recognises_numpy_lists_and_scalars_without_array_api_compat(monkeypatch):
    monkeypatch.setitem(sys.modules, "array_api_compat", None)  # import now fails
    for value in (np.ones(3), np.float32(1.5), [1.0, 2.0], (1, 2), 3, 2.5, 1j):
        assert library_of(value) == "numpy"


def test_core_install_evaluates_numpy_without_array_api_compat(monkeypatch):
    monkeypatch.setitem(sys.modules, "array_api_compat", None)
    A, x = _quadratic_data()
    for backend in ("numpy", "auto"):
        result = ic.evaluate(QUADRATIC_GRADIENT, A=A, x=x, backend=backend)
        assert np.allclose(result, (A + A.T) @ x, rtol=1e-12)


@pytest.mark.parametrize("backend", ["dask", "jax", "torch", "cupy"])
def test_core_install_names_the_extra_to_install(monkeypatch, backend):
    monkeypatch.setitem(sys.modules, "array_api_compat", None)
    A, x = _quadratic_data()
    with pytest.raises(ic.EvaluationError, match=rf"pip install 'indexcalc\[{backend}\]'"):
        ic.evaluate(QUADRATIC, A=A, x=x, backend=backend)


@pytest.mark.parametrize("backend", ["dask", "jax", "torch", "cupy"])
def test_missing_array_api_compat_is_named_even_when_the_library_is_installed(monkeypatch, backend):
    """jax installed without array_api_compat must not be reported as 'jax is not installed'."""
    monkeypatch.setitem(sys.modules, "array_api_compat", None)
    A, x = _quadratic_data()
    with pytest.raises(ic.EvaluationError, match="needs the package 'array_api_compat'"):
        ic.evaluate(QUADRATIC, A=A, x=x, backend=backend)


def test_missing_array_library_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)
    monkeypatch.setitem(sys.modules, "jax.numpy", None)
    A, x = _quadratic_data()
    with pytest.raises(ic.EvaluationError, match="needs the package 'jax'"):
        ic.evaluate(QUADRATIC, A=A, x=x, backend="jax")


def test_numpy_evaluation_never_imports_array_api_compat():
    """The NumPy path must not need the backend extras, not even to look at the arrays."""
    program = (
        "import sys, numpy as np, indexcalc as ic\n"
        "ic.evaluate('A_ij x_j', A=np.eye(2), x=np.ones(2))\n"
        "ic.evaluate('s A_ij x_j', s=2.0, A=[[1, 2], [3, 4]], x=[1, 2], backend='auto')\n"
        "print(sorted(m for m in ('array_api_compat', 'dask', 'jax', 'torch') "
        "if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, check=True
    )
    assert completed.stdout.strip() == "[]"


def test_numpy_einsum_takes_symbols_beyond_the_52_letters():
    """A plan's einsum symbols past the letters (a product of many indices) are renamed
    for NumPy, call by call; one call over more than 52 indices is an EvaluationError."""
    a, b, c = (opt_einsum.get_symbol(k) for k in (60, 61, 70))
    A, B = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 2))
    np.testing.assert_allclose(NUMPY.einsum(f"{a}{b},{b}{c}->{c}{a}")(A, B), (A @ B).T)
    square = RNG.standard_normal((3, 3))
    np.testing.assert_allclose(NUMPY.einsum(f"{a}{a}->{a}")(square), np.diag(square))
    many = "".join(opt_einsum.get_symbol(k) for k in range(53))
    with pytest.raises(ic.EvaluationError, match="53 distinct indices"):
        NUMPY.einsum(f"{many}->{many[0]}")


def test_numpy_sums_and_products_beyond_the_52_letters_need_no_einsum():
    symbols = "".join(opt_einsum.get_symbol(k) for k in range(56))
    array = RNG.standard_normal((2, 3) + (1,) * 54)
    summed = NUMPY.single(symbols, symbols[1] + symbols[0])(array)
    np.testing.assert_allclose(summed, array.reshape(2, 3).T)
    vector = RNG.standard_normal(3)
    product = NUMPY.pair(symbols, symbols[1], symbols[0])(array, vector)
    np.testing.assert_allclose(product, array.reshape(2, 3) @ vector)


# -- dask -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def da():
    return pytest.importorskip("dask.array")


def _forbid_compute(*args, **kwargs):
    raise AssertionError("a dask graph was computed before .compute() was called")


def _chunked(da, X, y, rows_per_chunk=100):
    return (
        da.from_array(X, chunks=(rows_per_chunk, X.shape[1])),
        da.from_array(y, chunks=rows_per_chunk),
    )


# The dask layers that evaluate σ (through tanh) or exp: the costly elementwise step.
TRANSCENDENTAL = ("exp", "tanh")


def _key_prefixes(*collections) -> Counter:
    """Task counts by key prefix ("exp", "tensordot", ...) in the merged graphs."""
    from dask.utils import key_split

    graph = {}
    for collection in collections:
        graph.update(dict(collection.__dask_graph__()))
    return Counter(key_split(key) for key in graph)


def test_dask_logistic_gradient_and_hessian_stay_lazy(da):
    import dask

    X, y, w = _logistic_data()
    Xd, yd = _chunked(da, X, y)
    with dask.config.set(scheduler=_forbid_compute):
        gradient = ic.evaluate(GRADIENT, X=Xd, y=yd, w=w, backend="dask")
        hessian = ic.evaluate(HESSIAN, X=Xd, y=yd, w=da.from_array(w), backend="auto")
    assert isinstance(gradient, da.Array)
    assert isinstance(hessian, da.Array)
    assert gradient.shape == (8,)
    assert hessian.shape == (8, 8)


def test_dask_logistic_matches_numpy_on_the_threaded_scheduler(da):
    X, y, w = _logistic_data()
    Xd, yd = _chunked(da, X, y)
    f_gradient = ic.compile(GRADIENT, backend="dask")
    f_hessian = ic.compile(HESSIAN, backend="dask")
    _, gradient, hessian = _logistic(X, y, w)
    result = f_gradient(X=Xd, y=yd, w=w).compute(scheduler="threads")
    assert type(result) is np.ndarray
    assert np.allclose(result, gradient, rtol=1e-10)
    assert np.allclose(f_hessian(X=Xd, y=yd, w=w).compute(scheduler="threads"), hessian)


@pytest.fixture
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        host="127.0.0.1",
        protocol="tcp",  # in-process workers would otherwise talk over inproc://
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        dashboard_address=None,
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


def test_dask_logistic_matches_numpy_on_a_local_cluster(da, client):
    X, y, w = _logistic_data()
    Xd, yd = _chunked(da, X, y)
    _, gradient, hessian = _logistic(X, y, w)
    lazy = [ic.evaluate(expr, X=Xd, y=yd, w=w, backend="dask") for expr in (GRADIENT, HESSIAN)]
    result_gradient, result_hessian = client.gather(client.compute(lazy))
    assert np.allclose(result_gradient, gradient, rtol=1e-10)
    assert np.allclose(result_hessian, hessian, rtol=1e-10)
    # The tasks went through the cluster's scheduler (fresh for this test), not this thread.
    assert client.cluster.scheduler.task_prefixes


def test_dask_hessian_computes_the_shared_subexpression_once_per_block(da):
    """The simplified Hessian repeats the function of -y_i X_ij w_j (σ or exp); the graph
    holds one task per row block of X for it, and for the gradient and Hessian together."""
    from dask.utils import key_split

    X, y, w = _logistic_data()
    Xd, yd = _chunked(da, X, y)
    assert str(HESSIAN).count("X_ij w_j") >= 2
    blocks = Xd.numblocks[0]
    hessian = ic.evaluate(HESSIAN, X=Xd, y=yd, w=w, backend="dask")
    gradient = ic.evaluate(GRADIENT, X=Xd, y=yd, w=w, backend="dask")
    for collections in ((hessian,), (gradient, hessian)):
        counts = _key_prefixes(*collections)
        assert sum(counts[f] for f in TRANSCENDENTAL) == blocks
    layers = hessian.__dask_graph__().layers
    assert sum(key_split(name) in TRANSCENDENTAL for name in layers) == 1


def test_dask_keeps_float32(da):
    X, y, w = _logistic_data(dtype="float32")
    Xd, yd = _chunked(da, X, y)
    _, gradient, hessian = _logistic(X, y, w)
    for expr, expected in ((GRADIENT, gradient), (HESSIAN, hessian)):
        lazy = ic.evaluate(expr, X=Xd, y=yd, w=w, backend="dask")
        assert lazy.dtype == np.float32
        result = lazy.compute(scheduler="threads")
        assert result.dtype == np.float32
        assert _close(result, expected, "float32")


def test_library_of_recognises_dask_arrays_without_array_api_compat(da, monkeypatch):
    monkeypatch.setitem(sys.modules, "array_api_compat", None)
    X = da.ones((4, 2), chunks=2)
    assert library_of(X) == "dask"
    with pytest.raises(ic.EvaluationError, match=r"pip install 'indexcalc\[dask\]'"):
        ic.evaluate("X_ij", X=X, backend="auto")


def test_dask_cross_product_with_epsilon(da):
    a, b = _cross_data("float64")
    result = ic.evaluate(CROSS, a=da.from_array(a), b=da.from_array(b), backend="auto")
    assert isinstance(result, da.Array)
    assert np.allclose(result.compute(scheduler="threads"), np.cross(a, b))


# -- torch ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_quadratic_form_gradient_and_hessian(torch, backend, dtype):
    A, x = _quadratic_data(dtype)
    At, xt = torch.from_numpy(A), torch.from_numpy(x)
    expected = {QUADRATIC_GRADIENT: (A + A.T) @ x, QUADRATIC_HESSIAN: A + A.T}
    for expr, value in expected.items():
        result = ic.evaluate(expr, A=At, x=xt, backend=backend)
        assert isinstance(result, torch.Tensor)
        assert result.dtype == getattr(torch, dtype)
        assert result.device == xt.device
        assert _close(result, value, dtype)


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_logistic_regression(torch, backend, dtype):
    X, y, w = _logistic_data(rows=60, features=5, dtype=dtype)
    tensors = {"X": torch.from_numpy(X), "y": torch.from_numpy(y), "w": torch.from_numpy(w)}
    for expr, expected in zip((LOSS, GRADIENT, HESSIAN), _logistic(X, y, w), strict=True):
        result = ic.compile(expr, backend=backend)(tensors)
        assert isinstance(result, torch.Tensor)
        assert result.dtype == getattr(torch, dtype)
        assert result.device == tensors["X"].device
        assert _close(result, expected, dtype)


def test_torch_results_stay_on_the_inputs_device(torch):
    """On the meta device nothing can be copied to or from the host, so this catches any
    transfer, including that of constants and of NumPy inputs named for conversion."""
    meta = torch.device("meta")
    X = torch.empty(20, 4, device=meta)
    y = torch.empty(20, device=meta)
    for expr in (LOSS, GRADIENT, HESSIAN):
        result = ic.evaluate(expr, X=X, y=y, w=np.zeros(4, np.float32), backend="torch")
        assert result.device == meta
        assert result.dtype == torch.float32
    a, b = torch.empty(3, device=meta), torch.empty(3, device=meta)
    assert ic.evaluate(CROSS, a=a, b=b, backend="auto").device == meta


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_kept_delta_is_the_identity(torch, dtype):
    result = ic.evaluate(IDENTITY, dims={"i": 3, "k": 3}, backend="torch")
    assert isinstance(result, torch.Tensor)
    assert np.array_equal(result.numpy(), np.eye(3))
    # A δ kept beside an array: ∂(x_i y_j)/∂x_k = δ_ik y_j, in y's dtype.
    y = RNG.standard_normal(4).astype(dtype)
    outer = ic.diff(ic.parse("x_i y_j"), "x_k")
    result = ic.evaluate(outer, y=torch.from_numpy(y), dims={"i": 3, "k": 3}, backend="auto")
    assert result.dtype == getattr(torch, dtype)
    assert _close(result, np.einsum("ik,j->ijk", np.eye(3), y), dtype)


def test_torch_cross_product_with_epsilon_in_float32(torch):
    a, b = _cross_data("float32")
    result = ic.evaluate(CROSS, a=torch.from_numpy(a), b=torch.from_numpy(b), backend="auto")
    assert isinstance(result, torch.Tensor)
    assert result.dtype == torch.float32
    assert _close(result, np.cross(a, b), "float32")


def test_mixing_numpy_and_torch_names_the_arrays_and_suggests_backend(torch):
    A, x = _quadratic_data()
    for backend in ("numpy", "auto"):
        with pytest.raises(ic.EvaluationError) as raised:
            ic.evaluate(QUADRATIC, A=A, x=torch.from_numpy(x), backend=backend)
        message = str(raised.value)
        assert "A: numpy" in message
        assert "x: torch" in message
        assert "backend=" in message


def test_the_suggested_backend_accepts_torch_arrays_under_the_numpy_default(torch):
    A, x = _quadratic_data()
    with pytest.raises(ic.EvaluationError, match="backend='torch'"):
        ic.evaluate(QUADRATIC, A=torch.from_numpy(A), x=torch.from_numpy(x))
    result = ic.evaluate(QUADRATIC, A=torch.from_numpy(A), x=torch.from_numpy(x), backend="torch")
    assert np.isclose(result.item(), x @ A @ x)


def test_the_suggested_backend_resolves_a_mixed_call(torch):
    A, x = _quadratic_data()
    with pytest.raises(ic.EvaluationError) as raised:
        ic.evaluate(QUADRATIC, A=A, x=torch.from_numpy(x))
    suggested = re.search(r"backend='(\w+)'", str(raised.value)).group(1)
    result = ic.evaluate(QUADRATIC, A=A, x=torch.from_numpy(x), backend=suggested)
    assert np.isclose(result.item(), x @ A @ x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_backend_converts_numpy_inputs(torch, dtype):
    A, x = _quadratic_data(dtype)
    result = ic.evaluate(QUADRATIC_GRADIENT, A=A, x=torch.from_numpy(x), backend="torch")
    assert isinstance(result, torch.Tensor)
    assert result.dtype == getattr(torch, dtype)
    assert _close(result, (A + A.T) @ x, dtype)
    only_numpy = ic.evaluate(QUADRATIC_HESSIAN, A=A, x=x, backend="torch")
    assert isinstance(only_numpy, torch.Tensor)
    assert _close(only_numpy, A + A.T, dtype)


def test_torch_contraction_of_mixed_float_dtypes_promotes(torch):
    A, x = _quadratic_data()
    x32 = torch.from_numpy(x.astype(np.float32))
    result = ic.evaluate("A_ij x_j", A=torch.from_numpy(A), x=x32, backend="auto")
    assert result.dtype == torch.float64
    assert np.allclose(result.numpy(), A @ x.astype(np.float32))


# -- JAX ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["auto", "jax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_jax_quadratic_form_and_logistic_regression(jax, backend, dtype):
    A, x = _quadratic_data(dtype)
    X, y, w = _logistic_data(rows=60, features=5, dtype=dtype)
    cases = [
        (QUADRATIC_GRADIENT, {"A": A, "x": x}, (A + A.T) @ x),
        (QUADRATIC_HESSIAN, {"A": A, "x": x}, A + A.T),
        *zip(
            (LOSS, GRADIENT, HESSIAN),
            [{"X": X, "y": y, "w": w}] * 3,
            _logistic(X, y, w),
            strict=True,
        ),
    ]
    for expr, arrays, expected in cases:
        on_jax = {name: jax.numpy.asarray(a) for name, a in arrays.items()}
        result = ic.evaluate(expr, on_jax, backend=backend)
        assert isinstance(result, jax.Array)
        assert result.dtype == np.dtype(dtype)
        assert _close(result, expected, dtype)


def test_jax_kept_delta_and_cross_product(jax):
    identity = ic.evaluate(IDENTITY, dims={"i": 3, "k": 3}, backend="jax")
    assert isinstance(identity, jax.Array)
    assert np.array_equal(np.asarray(identity), np.eye(3))
    a, b = _cross_data("float32")
    cross = ic.evaluate(CROSS, a=jax.numpy.asarray(a), b=jax.numpy.asarray(b), backend="auto")
    assert cross.dtype == np.float32
    assert _close(cross, np.cross(a, b), "float32")


def test_jax_jit_over_a_compiled_function_gives_the_same_numbers(jax):
    X, y, w = _logistic_data(rows=60, features=5)
    _, gradient, hessian = _logistic(X, y, w)
    for expr, expected in ((GRADIENT, gradient), (HESSIAN, hessian)):
        f = ic.compile(expr, backend="jax")
        jitted = jax.jit(lambda X, y, w, f=f: f(X=X, y=y, w=w))
        result = jitted(*(jax.numpy.asarray(a) for a in (X, y, w)))
        assert isinstance(result, jax.Array)
        assert np.allclose(result, expected, rtol=1e-10)
        assert np.allclose(result, f(X=X, y=y, w=w), rtol=1e-12)


def test_jax_jit_reuses_one_plan_across_calls_and_traces(jax):
    X, y, w = (jax.numpy.asarray(a) for a in _logistic_data(rows=60, features=5))
    f = ic.compile(HESSIAN, backend="jax")
    jitted = jax.jit(lambda X, y, w: f(X=X, y=y, w=w))
    for scale in (1.0, 2.0, 3.0):
        expected = _logistic(scale * X, y, w)[2]
        assert np.allclose(jitted(scale * X, y, w), expected, rtol=1e-10)
    assert f.plan_count == 1
    retraced = jax.jit(lambda X, y, w: 2 * f(X=X, y=y, w=w))  # a second trace, same shapes
    assert np.allclose(retraced(X, y, w), 2 * _logistic(X, y, w)[2], rtol=1e-10)
    assert f.plan_count == 1
    jitted(X[:30], y[:30], w)  # new shapes: a new plan
    assert f.plan_count == 2


def test_jax_jit_plan_with_epsilon_survives_a_second_trace(jax):
    a, b = (jax.numpy.asarray(v) for v in _cross_data("float64"))
    f = ic.compile(CROSS, backend="jax")
    expected = np.cross(np.asarray(a), np.asarray(b))
    assert np.allclose(jax.jit(lambda a, b: f(a=a, b=b))(a, b), expected)
    assert np.allclose(jax.jit(lambda a, b: f(a=a, b=b))(a, b), expected)
    assert np.allclose(f(a=np.asarray(a), b=np.asarray(b)), expected)
