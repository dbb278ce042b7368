"""The built wheel holds the whole package and installs one that works outside the checkout.

The wheel is built from the checkout and installed into a fresh venv with
``--ignore-installed``, so whatever copy of indexcalc the running environment has
(editable, installed from a wheel, or none) is neither used nor touched. The venv borrows
the dependencies (NumPy, Lark, opt_einsum) from wherever the running interpreter imports
them, so installing needs no network; building does, unless hatchling is installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib.util import find_spec
from pathlib import Path

import pytest

import indexcalc as ic

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
GRAMMAR_IN_WHEEL = "indexcalc/grammar/indexcalc.lark"
DEPENDENCIES = ("numpy", "lark", "opt_einsum")  # import names of the wheel's Requires-Dist
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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The repository's wheel, built once, offline when hatchling is already installed."""
    outdir = tmp_path_factory.mktemp("wheel")
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
    (built,) = outdir.glob("indexcalc-*.whl")
    return built


def _make_venv(venv_dir: Path) -> Path:
    """A fresh venv whose own site-packages come first, then the directories the running
    interpreter imports the dependencies from (the wheel is installed with --no-deps)."""
    result = _run([sys.executable, "-m", "venv", str(venv_dir)], venv_dir.parent)
    assert result.returncode == 0, result.stderr
    venv_python = venv_dir / "bin" / "python"
    venv_site = _run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        venv_dir,
    )
    # A .pth adds its paths after the directory holding it, so the venv's own packages win.
    found = {str(Path(find_spec(name).origin).parents[1]) for name in DEPENDENCIES}
    (Path(venv_site.stdout.strip()) / "_dependencies.pth").write_text(
        "".join(f"{path}\n" for path in sorted(found))
    )
    return venv_python


def test_wheel_holds_every_module_the_grammar_the_metadata_and_the_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        grammar = archive.read(GRAMMAR_IN_WHEEL)
        (dist_info,) = {name.split("/")[0] for name in names if ".dist-info/" in name}
        metadata = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    modules = {name for name in names if name.endswith(".py")}
    package = {p.relative_to(REPO).as_posix() for p in (REPO / "indexcalc").rglob("*.py")}
    assert modules == {*package, "_indexcalc_launcher.py"}
    assert grammar == (REPO / "grammar" / "indexcalc.lark").read_bytes()
    assert not any(name.startswith(("tests/", "benchmarks/", "examples/")) for name in names)
    assert (metadata["Name"], metadata["Version"]) == ("indexcalc", ic.__version__)
    required = {
        re.sub(r"[-_.]+", "-", re.match(r"[\w.-]+", requirement)[0]).lower()
        for requirement in metadata.get_all("Requires-Dist")
        if "extra ==" not in requirement
    }
    assert required == {"numpy", "lark", "opt-einsum"}
    assert "indexcalc = _indexcalc_launcher:main" in entry_points


def test_wheel_installs_a_package_that_parses_outside_the_checkout(
    wheel: Path, tmp_path: Path
) -> None:
    venv_dir = tmp_path / "venv"
    venv_python = _make_venv(venv_dir)
    install = _run(
        [
            *(str(venv_python), "-m", "pip", "install"),
            *("--no-deps", "--no-index", "--ignore-installed", str(wheel)),
        ],
        tmp_path,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = _run([str(venv_python), "-c", PROBE], elsewhere)
    assert probe.returncode == 0, probe.stderr
    free_indices, module_file, grammar_is_file = probe.stdout.splitlines()
    assert free_indices == "('i',)"
    assert Path(module_file).resolve().is_relative_to(venv_dir.resolve())
    assert grammar_is_file == "True"

    script = _run(
        [str(venv_dir / "bin" / "indexcalc"), "diff", "x_i x_i", "--wrt", "x_k"], elsewhere
    )
    assert (script.returncode, script.stdout) == (0, "2 x_k\n"), script.stderr
