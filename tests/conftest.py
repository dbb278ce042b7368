"""Shared test configuration: hypothesis profiles and the deep fuzzing option.

"default" keeps the property and fuzz tests fast enough for CI; select the deep run with
``pytest --hypothesis-profile=thorough``. ``pytest tests/test_fuzz.py --fuzz=100000`` runs
the grammar-based fuzzer (`tests/fuzzing.py`) on that many inputs besides its default
budget (see docs/verification.md).
"""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile("default")


def pytest_addoption(parser):
    group = parser.getgroup("fuzz", "grammar-based fuzzing (tests/fuzzing.py)")
    group.addoption(
        "--fuzz",
        type=int,
        default=0,
        metavar="N",
        help="also run the deep fuzz test on N inputs (default: off)",
    )
    group.addoption(
        "--fuzz-jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="J",
        help="worker processes for --fuzz (default: one per CPU)",
    )
    group.addoption("--fuzz-seed", type=int, default=None, metavar="S", help="seed for --fuzz")
    group.addoption(
        "--fuzz-report",
        default=None,
        metavar="FILE",
        help="write the --fuzz summary and every failure to FILE (JSON)",
    )


@pytest.fixture
def jax():
    """JAX with 64-bit floats enabled for the test, and the setting restored after it."""
    jax = pytest.importorskip("jax")
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield jax
    jax.config.update("jax_enable_x64", previous)
