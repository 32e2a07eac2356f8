"""Benchmark CLI start-up: CPU and wall time of short commands against a bare interpreter.

Run: ``.venv/bin/python scripts/bench_cli.py [--runs 9] [--decomposer PATH]``

Each command is started as its own process against a temporary ``DECOMPOSER_HOME`` holding one
tool, so the figures include interpreter start, imports, opening the store and printing. CPU is
user + system time of the child (``getrusage(RUSAGE_CHILDREN)`` deltas), wall time is measured
around the process. Medians over ``--runs`` runs, after one warm-up run each so the page cache
is hot. Target (issue 9): ``--help`` and ``tools`` under 0.6 CPU-seconds. CPU time grows when
other processes compete for the cores, so the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from machine import describe

TOOL = "acme-db"


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: Sequence[str], env: Mapping[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one process; a failing command stops the benchmark."""
    cpu0, wall0 = child_cpu(), time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall, cpu = time.perf_counter() - wall0, child_cpu() - cpu0
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()}")
    return cpu, wall


def measure(argv: Sequence[str], env: Mapping[str, str], runs: int) -> tuple[float, float, float]:
    """Median CPU, lowest CPU (the least disturbed run) and median wall seconds."""
    run_once(argv, env)
    samples = [run_once(argv, env) for _ in range(runs)]
    cpu = [s[0] for s in samples]
    return statistics.median(cpu), min(cpu), statistics.median(s[1] for s in samples)


def prepare(decomposer: str, home: Path) -> dict[str, str]:
    """An environment whose store holds one tool (and is migrated, as after any first command)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECOMPOSER_")}
    env.update(DECOMPOSER_HOME=str(home), COLUMNS="100", NO_COLOR="1")
    run_once([decomposer, "tool", "add", "Acme DB", "--type", "Service"], env)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=9, help="measured runs per command")
    parser.add_argument(
        "--decomposer",
        default=str(Path(sys.executable).with_name("decomposer")),
        help="the console script to start (default: the one next to this python)",
    )
    args = parser.parse_args()
    commands: list[tuple[str, list[str]]] = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("decomposer --help", [args.decomposer, "--help"]),
        ("decomposer tools", [args.decomposer, "tools"]),
        (
            f"decomposer capabilities {TOOL} --json",
            [args.decomposer, "capabilities", TOOL, "--json"],
        ),
    ]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {describe()}; load average {load}")
    print(f"medians (and the lowest CPU) of {args.runs} runs after one warm-up")
    print(f"{'command':<40} {'CPU s':>7} {'min CPU':>7} {'wall s':>7} {'CPU - bare':>11}")
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        env = prepare(args.decomposer, Path(tmp) / "home")
        bare = 0.0
        for label, argv in commands:
            cpu, least, wall = measure(argv, env, args.runs)
            bare = bare or cpu
            print(f"{label:<40} {cpu:>7.3f} {least:>7.3f} {wall:>7.3f} {cpu - bare:>+11.3f}")


if __name__ == "__main__":
    main()
