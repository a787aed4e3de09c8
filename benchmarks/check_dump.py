"""Benchmark the whole offline check of a big `kubectl cluster-info dump` (DESIGN.md budget:
10,000 pods and 1,000 nodes under 3 s and 400 MB peak RSS, within 1.5x of parsing the files).

    python benchmarks/check_dump.py [--pods 10000 --nodes 1000 --repeat 3 --out DIR]

Generates the same synthetic dump as benchmarks/parse_dump.py (agent DaemonSet with istio-proxy
sidecars on every node, istiod, application Deployments, a logs.txt per pod), then runs, each in a
fresh process, `meshdoctor check --from DUMP -o json` (every built-in rule, logs scanned) and a
bare `json.load` of every list file, and prints wall and CPU time and peak RSS of both.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parse_dump import generate  # noqa: E402

_RUN = r"""
import resource, sys, time, json, os
def peak():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
mode, root = sys.argv[1], sys.argv[2]
wall, cpu = time.perf_counter(), time.process_time()
if mode == "check":
    from meshdoctor.cli.main import main
    devnull = open(os.devnull, "w")
    stdout, sys.stdout = sys.stdout, devnull
    code = main(["check", "--from", root, "-o", "json", "--fail-on", "never"])
    sys.stdout = stdout
    assert code == 0, code
elif mode in ("bare", "bare-nogc"):
    import gc, glob
    if mode == "bare-nogc":
        gc.disable()
    kept = [json.load(open(p, encoding="utf-8")) for p in sorted(glob.glob(root + "/*.json") + glob.glob(root + "/*/*.json"))]
print(time.perf_counter() - wall, time.process_time() - cpu, peak())
"""


def _env() -> dict[str, str]:
    """The environment without PYTHONDONTWRITEBYTECODE: a user's install has its bytecode cached,
    so a run that compiles every module would measure the compiler, not meshdoctor."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure_interleaved(root: Path, repeat: int) -> dict[str, tuple[float, float, float]]:
    """Medians of `repeat` interleaved runs of each mode: (wall s, cpu s, peak RSS MB)."""
    runs: dict[str, list[tuple[float, float, float]]] = {"empty": [], "bare": [], "bare-nogc": [], "check": []}
    for _ in range(repeat):
        for mode in runs:
            out = subprocess.run(
                [sys.executable, "-c", _RUN, mode, str(root)], capture_output=True, text=True, env=_env()
            )
            if out.returncode:
                raise SystemExit(out.stderr)
            wall, cpu, rss = (float(x) for x in out.stdout.split())
            runs[mode].append((wall, cpu, rss))
    return {
        mode: tuple(statistics.median(r[i] for r in got) for i in range(3))  # type: ignore[misc]
        for mode, got in runs.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", help="write (or reuse) the dump here and keep it")
    args = parser.parse_args()
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="meshdoctor-check-"))
    try:
        if not (root / "nodes.json").exists():
            generate(root, args.pods, args.nodes, True)
        got = measure_interleaved(root, args.repeat)
        empty, bare, nogc, check = got["empty"], got["bare"], got["bare-nogc"], got["check"]
        print(f"dump: {args.pods} pods, {args.nodes} nodes ({root}); median of {args.repeat} interleaved runs")
        print(f"interpreter alone             peak RSS {empty[2]:.0f} MB")
        print(f"json.load of the files        wall {bare[0]:.2f} s  cpu {bare[1]:.2f} s  peak RSS {bare[2]:.0f} MB")
        print(f"json.load, collector off      wall {nogc[0]:.2f} s  cpu {nogc[1]:.2f} s  peak RSS {nogc[2]:.0f} MB")
        print(f"meshdoctor check -o json      wall {check[0]:.2f} s  cpu {check[1]:.2f} s  peak RSS {check[2]:.0f} MB")
        held = bare[2] - empty[2]
        print(
            f"RATIO check / json.load: {check[0] / bare[0]:.2f}x wall, {check[1] / bare[1]:.2f}x cpu (target 1.3x); "
            f"memory {(check[2] - empty[2]) / held:.2f}x what json.load holds ({held:.0f} MB; target 2x)"
        )
        print(
            f"RATIO check / json.load with the collector off: {check[0] / nogc[0]:.2f}x wall, "
            f"{check[1] / nogc[1]:.2f}x cpu"
        )
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
