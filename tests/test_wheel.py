"""The built wheel installs a package that works outside the checkout, grammar included."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from importlib.util import find_spec
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
GRAMMAR_IN_WHEEL = "indexcalc/grammar/indexcalc.lark"
# Signs in pip's output that the build backend could not be fetched from the package index.
NO_NETWORK_SIGNS = (
    "No matching distribution found for hatchling",
    "Could not find a version that satisfies the requirement hatchling",
    "NewConnectionError",
    "Temporary failure in name resolution",
)
PROBE = """\
import importlib.resources
import indexcalc as ic
print(ic.parse("A_ij x_j").free_indices)
print(ic.__file__)
print(importlib.resources.files("indexcalc").joinpath("grammar", "indexcalc.lark").is_file())
"""


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _build_wheel(outdir: Path) -> Path:
    """Build the repository's wheel into `outdir`, offline when hatchling is already installed."""
    have_hatchling = find_spec("hatchling") is not None
    if find_spec("build") is not None:
        command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir)]
        if have_hatchling:
            command.append("--no-isolation")
    else:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(outdir)]
        if have_hatchling:
            command.append("--no-build-isolation")
    result = _run([*command, str(REPO)], cwd=outdir)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        if not have_hatchling and any(sign in output for sign in NO_NETWORK_SIGNS):
            pytest.skip("hatchling is not installed and the package index cannot be reached")
        pytest.fail(f"building the wheel failed:\n{output}")
    (wheel,) = outdir.glob("indexcalc-*.whl")
    return wheel


def _make_venv(venv_dir: Path) -> Path:
    """A venv that reuses the running interpreter's packages, so installing needs no network."""
    result = _run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv_dir)], venv_dir.parent
    )
    assert result.returncode == 0, result.stderr
    # When the tests themselves run in a venv, --system-site-packages reaches only the base
    # interpreter's packages; this .pth adds the running interpreter's own site-packages too.
    venv_python = venv_dir / "bin" / "python"
    venv_site = _run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        venv_dir,
    )
    (Path(venv_site.stdout.strip()) / "_running_interpreter.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n"
    )
    return venv_python


def test_wheel_ships_grammar_and_parses_outside_checkout(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    wheel_dir.mkdir()
    wheel = _build_wheel(wheel_dir)
    with zipfile.ZipFile(wheel) as archive:
        assert GRAMMAR_IN_WHEEL in archive.namelist()

    venv_dir = tmp_path / "venv"
    venv_python = _make_venv(venv_dir)
    install = _run(
        [str(venv_python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], tmp_path
    )
    assert install.returncode == 0, install.stdout + install.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = _run([str(venv_python), "-c", PROBE], elsewhere)
    assert probe.returncode == 0, probe.stderr
    free_indices, module_file, grammar_is_file = probe.stdout.splitlines()
    assert free_indices == "('i',)"
    assert Path(module_file).resolve().is_relative_to(venv_dir.resolve())
    assert not Path(module_file).resolve().is_relative_to(REPO)
    assert grammar_is_file == "True"
