"""The ``indexcalc`` command's entry point, kept outside the package on purpose.

Importing `indexcalc` (NumPy, Lark, the grammar) takes a noticeable fraction of a second.
Python runs a package's ``__init__`` before any of its modules, so Ctrl-C in that time
would end in a traceback before `indexcalc.cli.main` could handle it. This module imports
nothing heavy: it exits with 130 on Ctrl-C while the package loads, then hands over to
`indexcalc.cli.main`, which handles Ctrl-C from then on.
"""

from __future__ import annotations

import os
import signal


def _interrupted(signum, frame) -> None:
    os.write(2, b"indexcalc: interrupted\n")
    os._exit(130)  # nothing is half-done while modules load: no cleanup to run


def main() -> int:
    previous = signal.signal(signal.SIGINT, _interrupted)
    try:
        from indexcalc.cli import main as run  # the one deferred import: the point here
    finally:
        signal.signal(signal.SIGINT, previous)
    return run()
