"""The benchmark runner, run as ``python -m benchmarks [--quick]`` from the repository root.

Runs the evaluation, symbolic and parser sections, judges the issues' targets, and
writes RESULTS.md and speedup.png next to this file (or into ``--output``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .evaluation import run_evaluation
from .machine import load_average, machine_info
from .natural import run_natural
from .parsing import run_long, run_throughput
from .peers import PEERS, limit_threads, load_peers
from .problems import PROBLEMS
from .report import Results, markdown, plot
from .symbolic import check_depth_gradient, run_cases, run_depths
from .targets import evaluation_targets, natural_targets, symbolic_targets

HERE = Path(__file__).resolve().parent
SECTIONS = ("evaluation", "natural", "symbolic", "parser")
NATURAL_SIZES, QUICK_NATURAL_SIZES = (200, 1000), (50,)


@dataclass(frozen=True)
class Settings:
    """How hard to measure: the full run, or the quick smoke run."""

    repeats: int  # interleaved rounds per evaluation row
    min_sample: float  # seconds one timed sample lasts at least
    symbolic_repeats: int
    depths: range
    depth_repeats: int
    parse_repeats: int
    parse_rounds: int
    long_lengths: tuple[int, ...]
    long_repeats: int

    def describe(self) -> list[str]:
        return [
            f"evaluation: median of {self.repeats} interleaved rounds, each sample at least "
            f"{self.min_sample * 1e3:g} ms of back-to-back calls",
            f"symbolic: median of {self.symbolic_repeats} runs; MLP depths "
            f"{self.depths.start}..{self.depths.stop - 1}, median of {self.depth_repeats}",
            f"parser: median of {self.parse_repeats} runs of {self.parse_rounds} rounds; long "
            f"expressions median of {self.long_repeats}",
        ]


FULL = Settings(11, 0.05, 7, range(1, 17), 5, 5, 50, (10_000, 30_000, 100_000), 3)
QUICK = Settings(3, 0.002, 2, range(1, 5), 1, 2, 5, (2_000, 5_000), 1)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and few repeats (under 30 s)"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--problems",
        default=",".join(PROBLEMS),
        help="comma-separated evaluation problems (default: all)",
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help="comma-separated autodiff peers, or 'none' (default: jax,torch)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for NumPy's BLAS, PyTorch and XLA; 0 keeps each library's default "
        "(default: 1, for steady ratios on a shared machine)",
    )
    parser.add_argument(
        "--output", type=Path, default=HERE, help="where to write RESULTS.md and speedup.png"
    )
    options = parser.parse_args(argv)
    options.sections = _choices(options.sections, SECTIONS, parser, "section")
    options.problems = _choices(options.problems, tuple(PROBLEMS), parser, "problem")
    options.peers = (
        [] if options.peers == "none" else _choices(options.peers, PEERS, parser, "peer")
    )
    return options


def _choices(text: str, allowed: Sequence[str], parser, what: str) -> list[str]:
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in allowed]
    if unknown:
        parser.error(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return chosen


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_arguments(argv)
    settings = QUICK if options.quick else FULL
    started = time.perf_counter()
    command = " ".join(["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)])
    threads = limit_threads(options.threads) if options.threads else "each library's default"
    results = Results(command, machine_info(), [f"threads: {threads}", *settings.describe()])

    if "evaluation" in options.sections:
        peers, notes = load_peers(options.peers)
        results.notes += notes
        results.settings.insert(0, "peers: " + (", ".join(peers) or "none"))
        progress("evaluation: checking every result against NumPy, then timing")
        results.rows = run_evaluation(
            [PROBLEMS[key] for key in options.problems],
            quick=options.quick,
            peers=peers,
            repeats=settings.repeats,
            min_sample=settings.min_sample,
            progress=progress,
        )
        results.targets += evaluation_targets(results.rows)
        for row in results.rows:
            results.notes += [
                f"{peer} failed on {row.problem.title} at n={row.n}: {why}"
                for peer, why in row.failures.items()
            ]

    if "natural" in options.sections:
        progress("natural: losses as people write them, against NumPy's closed form")
        results.natural = run_natural(
            QUICK_NATURAL_SIZES if options.quick else NATURAL_SIZES,
            repeats=settings.repeats,
            min_sample=settings.min_sample,
            progress=progress,
        )
        results.targets += natural_targets(results.natural)

    if "symbolic" in options.sections:
        progress("symbolic: indexcalc against SymPy")
        results.symbolic, note = run_cases(settings.symbolic_repeats)
        results.notes += [note] if note else []
        progress("symbolic: derivative size against MLP depth")
        results.depths = run_depths(settings.depths, settings.depth_repeats)
        results.depth_check = check_depth_gradient()
        results.targets += symbolic_targets(results.symbolic, results.depths)

    if "parser" in options.sections:
        progress("parser: throughput and long expressions")
        results.throughput = run_throughput(settings.parse_repeats, settings.parse_rounds)
        results.long = run_long(settings.long_lengths, settings.long_repeats)

    options.output.mkdir(parents=True, exist_ok=True)
    if results.rows:
        try:
            cpu = dict(results.machine)["CPU"]
            subtitle = f"float64 on the CPU ({cpu}); threads: {threads}"
            plot(results.rows, options.output / "speedup.png", subtitle)
        except ImportError as error:
            results.notes.append(f"speedup.png not drawn: matplotlib is missing ({error})")
    elapsed = time.perf_counter() - started
    results.notes.append(f"the run took {elapsed:.0f} s; load average at the end {load_average()}")
    (options.output / "RESULTS.md").write_text(markdown(results), encoding="utf-8")
    progress(f"wrote {options.output / 'RESULTS.md'} in {elapsed:.1f} s")
    return 0
