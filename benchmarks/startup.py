#!/usr/bin/env python3
"""Start-up time of the commands people type first (budget: under 0.3 s, DESIGN.md).

Runs each command several times in a fresh interpreter and prints the median and best wall time,
and whether the Kubernetes client or rich got imported on the way.

    python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
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


#: A user's install has its bytecode cached: without this, every run would compile every module.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    # Interleaved: each round times the baselines and every command once, so all see the same load.
    names = ["python -c pass", "python -c 'import click'"] + ["meshdoctor " + " ".join(c) for c in COMMANDS]
    samples: dict[str, list[float]] = {name: [] for name in names}
    imported: dict[str, str] = {}
    for _ in range(args.runs):
        for name, code in (("python -c pass", "pass"), ("python -c 'import click'", "import click")):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=ENV)
            samples[name].append(time.perf_counter() - start)
        for command in COMMANDS:
            name = "meshdoctor " + " ".join(command)
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-c", PROBE.format(args=command)], capture_output=True, text=True, env=ENV
            )
            samples[name].append(time.perf_counter() - start)
            imported[name] = result.stderr.strip().splitlines()[-1].removeprefix("IMPORTED ").replace(" ", "/")
    click_median = statistics.median(samples["python -c 'import click'"])
    print(f"median of {args.runs} interleaved runs")
    print(f"{'command':<30} {'median':>8} {'best':>8} {'/ import click':>15}  kubernetes/rich imported")
    for name in names:
        median, best = statistics.median(samples[name]), min(samples[name])
        print(f"{name:<30} {median:>7.3f}s {best:>7.3f}s {median / click_median:>14.2f}x  {imported.get(name, '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
