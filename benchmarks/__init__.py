"""Benchmarks of indexcalc side by side with hand-written NumPy, JAX, PyTorch and SymPy.

Run ``python -m benchmarks`` from the repository root (``--quick`` for a smoke run). It
writes ``benchmarks/RESULTS.md`` and ``benchmarks/speedup.png``. Peers that are not
installed are skipped with a note; install them with ``pip install -e ".[bench]"``.

Modules, one section each: `evaluation` (compiled derivatives against NumPy and autodiff),
`symbolic` (differentiation against SymPy, derivative size against depth), `parsing`
(parser throughput). `problems` holds the formulas, `peers` the JAX and PyTorch
adapters, `timing` the clock and the correctness check, `machine` and `report` the output.
"""
