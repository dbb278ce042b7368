"""What the numbers were measured on: CPU, cores, BLAS, versions, environment and date."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

import indexcalc

# Variables that change which BLAS kernel runs or how many threads it uses.
ENVIRONMENT = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "XLA_FLAGS",
)
PACKAGES = ("numpy", "opt_einsum", "lark", "sympy", "jax", "jaxlib", "torch", "matplotlib")


def cpu_model() -> str:
    """The CPU's model name, family/model numbers and widest vector unit, from /proc/cpuinfo."""
    fields = _cpuinfo()
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    vector = next((f for f in ("avx512f", "avx2", "avx", "neon", "asimd") if f in flags), None)
    details = (
        [f"family {fields['cpu family']} model {fields['model']}"] if "model" in fields else []
    )
    details += [vector.upper()] if vector else []
    return fields["model name"] + (f" ({', '.join(details)})" if details else "")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def blas() -> str:
    """NumPy's BLAS: the library, version, kernel and threads that threadpoolctl sees.

    Falls back to NumPy's build configuration when threadpoolctl is not installed.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return (
            f"{config.get('name')} {config.get('version')} (from numpy's build configuration; "
            "install threadpoolctl to see the kernel and threads)"
        )
    pools = [
        f"{pool['internal_api']} {pool['version']}, kernel {pool.get('architecture')}, "
        f"{pool['num_threads']} thread{'s' if pool['num_threads'] != 1 else ''}"
        for pool in threadpool_info()
        if pool["user_api"] == "blas"
    ]
    return "; ".join(pools) or "none found by threadpoolctl"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other processes competing for the cores."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5, 15 min; {os.cpu_count()} cores)"


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> list[tuple[str, str]]:
    """(what, value) pairs for the report's machine table."""
    physical = _cpuinfo().get("cpu cores")
    rows = [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", cpu_model()),
        ("cores", f"{os.cpu_count()} logical" + (f", {physical} per socket" if physical else "")),
        ("OS", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Python", platform.python_version()),
        ("indexcalc", f"{indexcalc.__version__}, {_revision()}"),
        ("BLAS (NumPy)", blas()),
    ]
    rows.append(("load average at start", load_average()))
    rows += [(package, version(package)) for package in PACKAGES]
    rows += [(name, os.environ.get(name, "unset")) for name in ENVIRONMENT]
    return rows


def _revision() -> str:
    """The git commit of the working tree, and whether it has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "commit unknown"
    if not commit:
        return "commit unknown"
    return f"commit {commit}" + (" with uncommitted changes" if dirty else "")
