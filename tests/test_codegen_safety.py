"""Generated code computes what the evaluator computes, whatever the tensors are called.

Names are NFKC-normalised when parsed, as Python normalises identifiers, so a name that
looks different but reads the same to Python is the same tensor to indexcalc. A tensor
named after a Python keyword or a module the code uses becomes the parameter ``name_``;
the code uses no builtin, so tensors called ``range`` or ``float`` shadow nothing.
"""

from __future__ import annotations

import ast
import itertools

import numpy as np
import pytest

import indexcalc as ic
from indexcalc.codegen import codegen, parameter_name

RNG = np.random.default_rng(5)


def _run(source: str, arrays: dict, name: str = "grad"):
    """Execute generated source in a fresh namespace and call it with `arrays` by tensor."""
    namespace: dict = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    return namespace[name](**{parameter_name(n): a for n, a in arrays.items()})


def _levi_civita(rank: int) -> np.ndarray:
    eps = np.zeros((rank,) * rank)
    for perm in itertools.permutations(range(rank)):
        inversions = sum(a > b for a, b in itertools.combinations(perm, 2))
        eps[perm] = (-1) ** inversions
    return eps


def _free_names(source: str) -> set[str]:
    """Names the generated module reads but neither imports, defines nor binds."""
    tree = ast.parse(source)
    bound: set[str] = set()
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.FunctionDef):
            bound.add(node.name)
            bound |= {a.arg for a in node.args.args}
        elif isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store) else read).add(node.id)
    return read - bound


# -- Unicode normalisation -----------------------------------------------------------------


def test_a_compatibility_character_name_is_its_normal_form():
    x, t1 = RNG.standard_normal(3), RNG.standard_normal(3)
    expr = ic.parse("sin(x_i) + ｔ1_i")  # fullwidth t: Python reads it as t1
    assert expr is ic.parse("sin(x_i) + t1_i")
    source = codegen("sin(x_i) + ｔ1_i")
    assert "def grad(t1, x):" in source
    expected = np.sin(x) + t1  # not sin(x) + sin(x), as when t1 was a temporary too
    np.testing.assert_allclose(_run(source, {"t1": t1, "x": x}), expected)
    np.testing.assert_allclose(ic.evaluate(expr, t1=t1, x=x), expected)


def test_a_fullwidth_np_is_the_tensor_np_and_never_the_module():
    a, x = RNG.standard_normal(3), RNG.standard_normal(3)
    source = codegen("ｎｐ_i x_i")
    assert "def grad(np_, x):" in source
    np.testing.assert_allclose(_run(source, {"np": a, "x": x}), a @ x)


def test_micro_sign_and_greek_mu_are_one_tensor():
    mu = RNG.standard_normal(4)
    expr = ic.parse("µ_i μ_i")  # U+00B5 and U+03BC
    assert expr is ic.parse("μ_i μ_i")
    assert expr.tensor_names == {"μ"}
    np.testing.assert_allclose(_run(codegen(expr), {"μ": mu}), mu @ mu)


def test_mathematical_bold_x_is_x_and_compiles():
    x = RNG.standard_normal(3)
    assert ic.parse("𝐱_i x_i") is ic.parse("x_i x_i")
    np.testing.assert_allclose(_run(codegen("𝐱_i x_i"), {"x": x}), x @ x)


def test_function_names_indices_and_the_variable_are_normalised():
    assert ic.parse("ｓｉｎ(x_𝑖) y_i") is ic.parse("sin(x_i) y_i")
    assert ic.parse("x_{ᵢ}") is ic.parse("x_i")
    assert ic.parse("A_ﬁ") is ic.parse("A_fi")  # one ligature, two index letters
    program = "L = w_i w_i; L_{,k}"
    assert ic.parse(program, var="ｗ") is ic.parse(program, var="w")


def test_a_name_that_normalises_to_no_name_is_a_parse_error():
    with pytest.raises(ic.ParseError, match="'x¼' reads as 'x1⁄4'") as raised:
        ic.parse("y + x¼")
    assert raised.value.position == ic.errors.Position(1, 5)


def test_a_name_that_normalises_to_a_reserved_one_is_reserved():
    with pytest.raises(ic.ParseError, match="'delta' is reserved"):
        ic.parse("ｄｅｌｔａ_ij x_j")


def test_the_function_name_is_normalised_as_python_reads_it():
    source = codegen("x_i x_i", name="ｇｒａｄ")
    assert "def grad(x):" in source
    np.testing.assert_allclose(_run(source, {"x": np.ones(3)}), 3.0)
    with pytest.raises(ic.CodegenError, match="must be a Python identifier"):
        codegen("x_i x_i", name="ｄｅｆ")  # the keyword def, to Python


# -- names that are Python keywords, builtins or the modules the code uses -----------------

NAMES = ["lambda", "None", "class", "np", "itertools", "range", "float", "len", "print", "t1"]
NAMES += ["perm", "eps3", "x"]


@pytest.mark.parametrize("name", NAMES)
def test_any_tensor_name_computes_the_same_as_the_evaluator(name):
    """ε's code uses itertools, np.arange and a loop variable; the name must disturb none."""
    text = f"{name}_ij eps_ijk + {name}_kj y_j"
    arrays = {name: RNG.standard_normal((3, 3)), "y": RNG.standard_normal(3)}
    source = codegen(text)
    eps = _levi_civita(3)
    expected = np.einsum("ij,ijk->k", arrays[name], eps) + arrays[name] @ arrays["y"]
    np.testing.assert_allclose(_run(source, arrays), expected, atol=1e-12)
    np.testing.assert_allclose(ic.evaluate(text, arrays), expected, atol=1e-12)


def test_keywords_and_module_names_get_a_trailing_underscore_documented_in_the_docstring():
    source = codegen("lambda_i np_i + itertools_i range_i")
    assert "def grad(itertools_, lambda_, np_, range):" in source
    assert "lambda_ (tensor lambda): array of shape (i,)" in source
    assert "np_ (tensor np): array of shape (i,)" in source
    assert "range: array of shape (i,)" in source


@pytest.mark.parametrize(
    "text",
    [
        "range_ij eps_ijk y_k",
        "sum_i(exp(float_i)) + len_jj",
        "x_i A_ij x_j + 2^(1/2) print_k print_k",
        "exp(x_i) / sum_j(exp(x_j))",
    ],
)
def test_generated_code_reads_no_builtin(text):
    """Every name the code reads is a parameter, a temporary or np/itertools."""
    assert _free_names(codegen(text, dims={"i": 3, "j": 3, "k": 3})) <= {"np", "itertools"}


@pytest.mark.parametrize(
    ("name", "message"),
    [("np", "clashes"), ("itertools", "clashes"), ("x", "clashes"), ("lambda_", "clashes")],
)
def test_a_function_name_that_would_shadow_is_refused(name, message):
    with pytest.raises(ic.CodegenError, match=message):
        codegen("x_i lambda_i", name=name)


# -- negative bases and constants -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(-x_i)^2", lambda x: x**2),
        ("-x_i^2", lambda x: -(x**2)),
        ("(-x_i)^3", lambda x: -(x**3)),
        ("(-2 x_i)^(-1)", lambda x: -0.5 / x),
        ("(-4)^(1/2) x_i", lambda x: np.nan * x),
        ("((-8)^(1/3) + 1) x_i", lambda x: np.nan * x),
        ("(2^(1/2) - 3)^(1/2) x_i", lambda x: np.nan * x),
        ("(2^(1/2))^3000 x_i", lambda x: np.inf * x),
    ],
)
def test_negative_bases_give_the_real_results_numpy_gives(text, expected):
    x = np.array([0.5, 1.5, 2.0])
    with np.errstate(all="ignore"):
        generated = _run(codegen(text), {"x": x})
        evaluated = ic.evaluate(text, x=x)
        wanted = expected(x)
    assert generated.dtype == evaluated.dtype == np.float64
    np.testing.assert_allclose(generated, wanted)
    np.testing.assert_allclose(evaluated, wanted)


def test_integer_inputs_never_make_object_arrays():
    x = np.array([1, 2, 3])
    for text in ("1e30 x_i", "7^77 x_i", "x_i / 7^77", "2^62 x_i x_i"):
        result = _run(codegen(text), {"x": x})
        assert result.dtype == np.float64
        np.testing.assert_allclose(result, ic.evaluate(text, x=x), rtol=1e-15)


@pytest.mark.parametrize(
    "text",
    [
        "c " * 3000 + "x_i",  # one product of 3001 factors
        " - ".join(f"{k % 7 + 1} c x_i" for k in range(600)),  # one sum of 600 terms
        "x_i ⊙ " * 600 + "x_i",
    ],
)
def test_long_chains_compile_and_compute_what_the_evaluator_computes(text):
    """Python's compiler recurses once per operator of a chain: the code cuts chains into
    statements of CHAIN_LENGTH operands, evaluated in the same order."""
    arrays = {"c": np.array(1.0002), "x": np.array([0.999, 1.0, 1.001])}
    if "c " not in text:
        del arrays["c"]
    source = codegen(text, "f")
    assert max(len(line) for line in source.splitlines()) <= 88
    np.testing.assert_allclose(_run(source, arrays, "f"), ic.evaluate(text, arrays), rtol=1e-12)


@pytest.mark.parametrize("text", ["S➌_ij x_j", "-༬Ẃ_ln", "፼_i x_i"])
def test_a_name_python_cannot_take_as_a_parameter_is_a_codegen_error(text):
    """Notation names may hold characters (➌, ༬) that no Python identifier may."""
    ic.parse(text)  # fine as notation
    with pytest.raises(ic.CodegenError, match="Python"):
        codegen(text)
