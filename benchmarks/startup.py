#!/usr/bin/env python3
"""Start-up time of the commands people type first (budget: under 0.3 s, DESIGN.md).

Runs each command several times in a fresh interpreter and prints the median and best wall time,
and whether the Kubernetes client or rich got imported on the way.

    python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = [
    ["--version"],
    ["--help"],
    ["rules"],
    ["explain", "MD101"],
]
PROBE = (
    "import sys, meshdoctor.cli.main as c; code = c.main({args!r});"
    "print('IMPORTED', 'kubernetes' in sys.modules, 'rich' in sys.modules, file=sys.stderr)"
)


def time_command(args: list[str], runs: int) -> tuple[float, float, str]:
    """Median and best seconds for `meshdoctor ARGS`, and which heavy modules it imported."""
    samples = []
    imported = ""
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True)
        samples.append(time.perf_counter() - start)
        imported = result.stderr.strip().splitlines()[-1]
    return statistics.median(samples), min(samples), imported


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    baseline, _, _ = time_command_python(args.runs)
    print(f"{'command':<28} {'median':>8} {'best':>8}  kubernetes/rich imported")
    print(f"{'python -c pass (baseline)':<28} {baseline:>7.3f}s")
    for command in COMMANDS:
        median, best, imported = time_command(command, args.runs)
        flags = imported.removeprefix("IMPORTED ").replace(" ", "/")
        print(f"{'meshdoctor ' + ' '.join(command):<28} {median:>7.3f}s {best:>7.3f}s  {flags}")
    return 0


def time_command_python(runs: int) -> tuple[float, float, str]:
    """The interpreter's own start-up, for comparison."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples), ""


if __name__ == "__main__":
    sys.exit(main())
