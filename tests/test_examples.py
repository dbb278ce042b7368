"""Every script in examples/ runs, passes its own checks and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# A line each script prints once its final check has passed.
EXPECTED_OUTPUT = {
    "01_quadratic_form.py": "A symmetric: ∂f/∂x_k = 2 A_kj x_j",
    "02_least_squares.py": "Hessian 2AᵀA match",
    "03_matrix_factorization.py": "−2Uᵀ(X − UV) matches",
    "04_neural_layer.py": "a gradient step lowers the loss",
    "05_logistic_regression.py": "Hessian Xᵀ diag(σ(m)σ(−m)) X match",
    "06_softmax_cross_entropy.py": "(softmax(z) − t) xᵀ match",
    "07_chain_network.py": "∂f/∂w at (-1, 0, -2, 1) = -4096.0",
    "08_determinant.py": "det X0 = -24.0, gradient at X0 = [[-4, -6], [-2, 3]]",
    "09_log_sum_exp.py": "gradient at (0, log 2) is [1/3, 2/3]",
    "10_hessian_taylor.py": "Taylor quadratic",
    "11_mlp_training.py": "loss fell from",
    "12_mlp_with_biases.py": "bias gradients match backprop; loss fell from",
    "13_layer_norm.py": "matches NumPy and finite differences",
    "14_attention.py": "∂loss/∂V = Pᵀ G match NumPy and finite differences",
}


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[int, str, str]]:
    """Run every example at once, in parallel; map its name to (exit code, stdout, stderr)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONIOENCODING": "utf-8"}
    processes = {
        script: subprocess.Popen(
            [sys.executable, str(EXAMPLES / script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        for script in EXPECTED_OUTPUT
    }
    results = {}
    for script, process in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        results[script] = (process.returncode, stdout.decode("utf-8"), stderr.decode("utf-8"))
    return results


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("[0-9]*.py")) == sorted(EXPECTED_OUTPUT)


def test_examples_readme_lists_every_example():
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    assert all(f"`{script}`" in readme for script in EXPECTED_OUTPUT)


@pytest.mark.parametrize("script", sorted(EXPECTED_OUTPUT))
def test_example_runs_and_checks_its_numbers(runs, script):
    returncode, stdout, stderr = runs[script]
    assert returncode == 0, stderr
    assert EXPECTED_OUTPUT[script] in stdout
    assert "LaTeX" in stdout
