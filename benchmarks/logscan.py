"""Log scanning benchmark: meshdoctor's signature scan against GNU grep -E on the same file.

    python benchmarks/logscan.py                      # 500 MB log in a temp dir, RSS at 100 and 500 MB
    python benchmarks/logscan.py --size-mb 100 --out /tmp/agent.log
    python benchmarks/logscan.py --compare-prefilter  # also time the prefilter variants

Generates (or reuses) a realistic agent log: INFO lines in the agent's text format, with a few
hundred lines that match signatures spread through it. Then measures, each best of --repeat runs
with the file in the page cache:

- meshdoctor: `Scanner().scan_file(path)` in a subprocess, throughput in MB/s and peak RSS
  (resource.getrusage in that subprocess, so it is the scan alone; the RSS of the same subprocess
  that only imports and compiles is printed too);
- GNU grep: `LC_ALL=C grep -E -c -e P1 -e P2 ...` with every signature pattern translated to POSIX
  ERE by `to_ere` (see its docstring for the translation and where it is approximate).

The DESIGN.md budget is a throughput of at least half of grep's, and memory flat in file size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from meshdoctor.logs.scanner import Scanner, load_signatures

MB = 1024 * 1024

# -- the log ----------------------------------------------------------------------------------

_INFO = [
    "(pkg/collector/runner/runner.go:264 in work) | Running check {check}",
    "(pkg/collector/runner/runner.go:330 in work) | Done running check {check}",
    "(pkg/collector/worker/check_logger.go:40 in CheckStarted) | check:{check} | Running check...",
    "(pkg/collector/worker/check_logger.go:59 in CheckFinished) | check:{check} | Done running check",
    "(pkg/serializer/serializer.go:410 in SendProcessesMetadata) | Sent processes metadata payload, size: {n} bytes.",
    "(pkg/metadata/host/host.go:125 in getHostMetadata) | Sent host metadata payload, size: {n} bytes.",
    "(pkg/logs/input/container/launcher.go:190 in startTailer) | Container {cid} started tailing",
    "(pkg/logs/tailers/file/tailer.go:230 in StartFromBeginning) | Start tailing file /var/log/pods/default_web-{pod}_{uid}/web/0.log",
    "(pkg/autodiscovery/autoconfig.go:395 in processNewConfig) | Scheduling check {check} with an unknown config ID",
    "(pkg/tagger/collectors/workloadmeta_extract.go:120 in handleKubePod) | pod default/web-{pod} has tags [kube_namespace:default pod_name:web-{pod}]",
    "(pkg/collector/python/datadog_agent.go:126 in LogMessage) | kubelet:d884b5186b651429 | (kubelet.py:328) | Kubelet check ran in {n} ms",
    "(pkg/util/kubernetes/kubelet/kubelet.go:340 in GetLocalPodList) | Got {k} pods from the kubelet",
    "(pkg/aggregator/aggregator.go:692 in flushSeries) | Flushing {k} series to the forwarder",
    "(pkg/dogstatsd/server.go:400 in handleMessages) | Dogstatsd workers and pipelines count: {k} workers, 1 pipelines",
    "(pkg/process/checks/container.go:90 in Run) | collected {k} containers in {n}us",
    "(pkg/collector/corechecks/containers/docker/check.go:170 in Run) | Docker check: {k} containers running",
    "(comp/core/workloadmeta/store.go:560 in handleEvents) | workloadmeta: {k} events handled for source kubelet",
]
_CHECKS = [
    "cpu",
    "memory",
    "disk",
    "io",
    "load",
    "network",
    "uptime",
    "kubelet",
    "istio",
    "ntp",
    "file_handle",
    "kubernetes_state_core",
    "container",
    "containerd",
    "cri",
]
# The forwarder's success line is not among them: at INFO the agent logs it for its first
# transaction and every 500th only (see LOG-EGRESS-TX-SUCCESS in signatures.yaml).
_WEIGHTS = [8, 8, 5, 5, 1, 1, 2, 1, 1, 3, 3, 2, 1, 1, 1, 2, 1]


def _matching_lines() -> list[str]:
    """Text-format agent sample lines of the catalogue (those are the lines a bad day logs)."""
    lines = []
    for sig in load_signatures():
        if sig.source != "agent":
            continue
        for sample in sig.samples_match:
            if " UTC | " in sample.line and not sample.line.startswith("{"):
                lines.append(sample.line.split(" UTC | ", 1)[1])
    return lines


def generate(path: Path, size_mb: int, matches: int = 400, seed: int = 7) -> None:
    """Write a `size_mb` agent log to `path` with about `matches` signature lines in it."""
    rnd = random.Random(seed)
    target = size_mb * MB
    bad = _matching_lines()
    # Spread the matching lines evenly: one every `every` lines (about 160 bytes a line).
    every = max(1, target // 160 // matches)
    start = 1_550_484_672  # 2019-02-18 10:11:12 UTC
    written = 0
    count = 0
    tmp = path.with_suffix(".partial")
    with open(tmp, "w", encoding="utf-8") as out:
        while written < target:
            chunk = []
            for _ in range(20_000):
                count += 1
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start + count // 40))
                if count % every == 0:
                    body = rnd.choice(bad)
                else:
                    body = "CORE | INFO | " + rnd.choices(_INFO, _WEIGHTS)[0].format(
                        check=rnd.choice(_CHECKS),
                        n=rnd.randrange(100, 99999),
                        k=rnd.randrange(1, 400),
                        cid=f"{rnd.getrandbits(256):064x}",
                        pod=f"{rnd.getrandbits(20):05x}",
                        uid=f"{rnd.getrandbits(128):032x}",
                    )
                chunk.append(f"{stamp} UTC | {body}\n")
            text = "".join(chunk)
            out.write(text)
            written += len(text.encode("utf-8"))
    tmp.rename(path)


def ensure_log(path: Path, size_mb: int) -> Path:
    """The log at `path`, generated unless a file of about that size is already there."""
    if path.exists() and abs(path.stat().st_size - size_mb * MB) < 2 * MB:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {size_mb} MB agent log at {path} ...", flush=True)
    t0 = time.perf_counter()
    generate(path, size_mb)
    print(f"  done in {time.perf_counter() - t0:.1f} s", flush=True)
    return path


# -- grep ---------------------------------------------------------------------------------------

_CLASS = {"d": "0-9", "s": "[:space:]", "w": "[:alnum:]_"}
_ESCAPE = {
    "d": "[0-9]",
    "s": "[[:space:]]",
    "S": "[^[:space:]]",
    "w": "[[:alnum:]_]",
    "W": "[^[:alnum:]_]",
}


def to_ere(pattern: str) -> str:
    """A Python signature pattern as POSIX ERE for `grep -E`.

    Translation: named and non-capturing groups become plain groups; `\\d \\s \\S \\w` become
    bracket expressions (inside brackets too); `\\]` inside a bracket moves to the front; lazy
    quantifiers become greedy (same lines match: grep only decides whether a line matches);
    a positive lookahead `(?=X)` becomes the group `(X)` (so lookaheads must then match in that
    order: for the access-log signatures written with lookaheads grep matches a subset); a negative
    lookahead `(?!X)` is dropped (grep matches a superset). grep also sees agent JSON lines raw,
    where meshdoctor matches their `msg`. None of these differences concerns a line of the
    benchmark file (agent text format only), so the counts compare.
    """
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1]
            out.append(_ESCAPE.get(nxt, "\\" + nxt))
            i += 2
        elif c == "[":
            i, text = _bracket(pattern, i)
            out.append(text)
        elif c == "(" and pattern.startswith("(?P<", i):
            out.append("(")
            i = pattern.index(">", i) + 1
        elif c == "(" and pattern.startswith("(?:", i):
            out.append("(")
            i += 3
        elif c == "(" and pattern.startswith("(?=", i):
            out.append("(")
            i += 3
        elif c == "(" and (pattern.startswith("(?!", i) or pattern.startswith("(?<", i)):
            i = _group_end(pattern, i)
            if i < n and pattern[i] == "?":
                i += 1
        elif c in "*+?}" and i + 1 < n and pattern[i + 1] == "?":
            out.append(c)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _bracket(pattern: str, i: int) -> tuple[int, str]:
    j = i + 1
    negate = pattern[j] == "^"
    if negate:
        j += 1
    items: list[str] = []
    close = False
    while pattern[j] != "]":
        c = pattern[j]
        if c == "\\":
            nxt = pattern[j + 1]
            if nxt == "]":
                close = True
            elif nxt in _CLASS:
                items.append(_CLASS[nxt])
            elif nxt == "S":
                raise ValueError(f"\\S inside a bracket has no ERE form: {pattern}")
            else:
                items.append(nxt)
            j += 2
        else:
            items.append(c)
            j += 1
    body = "".join(items)
    return j + 1, "[" + ("^" if negate else "") + ("]" if close else "") + body + "]"


def _group_end(pattern: str, i: int) -> int:
    depth = 0
    j = i
    while j < len(pattern):
        c = pattern[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            j, _ = _bracket(pattern, j)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise ValueError(f"unbalanced group in {pattern}")


def grep_command(path: Path) -> list[str]:
    """The grep command line with every signature as one `-e`."""
    cmd = ["grep", "-E", "-c"]
    for sig in load_signatures():
        cmd += ["-e", to_ere(sig.pattern.pattern)]
    return cmd + [str(path)]


def run_grep(path: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and count of matching lines of grep -E over the file (C locale)."""
    env = dict(os.environ, LC_ALL="C")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(grep_command(path), capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise RuntimeError(done.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, int(done.stdout.strip() or 0)


# -- meshdoctor ---------------------------------------------------------------------------------

_SCAN = """
import json, resource, sys, time
from meshdoctor.logs.scanner import Scanner

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

scanner = Scanner()
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu0 = cpu()
t0 = time.perf_counter()
if sys.argv[2] == "file":
    matches = scanner.scan_file(sys.argv[1], workers=int(sys.argv[3]))
else:
    with open(sys.argv[1], encoding="utf-8", errors="replace") as handle:
        matches = scanner.scan(line.rstrip("\\n") for line in handle)
elapsed = time.perf_counter() - t0
children = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": elapsed, "cpu": cpu() - cpu0 + children.ru_utime + children.ru_stime,
                  "matches": len(matches), "lines": len({m.line for m in matches}),
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "children_rss_kb": children.ru_maxrss, "rss_before_kb": rss0}))
"""


def run_meshdoctor(path: Path, mode: str = "file", workers: int = 1) -> dict[str, float]:
    """Scan the file in a fresh interpreter; wall and CPU seconds, matches, peak RSS (KiB)."""
    done = subprocess.run(
        [sys.executable, "-c", _SCAN, str(path), mode, str(workers)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def compare_prefilter(path: Path, limit_mb: int = 200) -> None:
    """Time candidate finding alone: per-literal bytes.find vs one `re` / `regex` alternation."""
    scanner = Scanner()
    literals = [lit.encode() for lit in scanner.literals]
    alternation = b"|".join(re.escape(lit) for lit in literals)
    variants = {"bytes.find per literal": None, "re alternation": re.compile(alternation)}
    try:
        import regex

        variants["regex alternation"] = regex.compile(alternation)
    except ImportError:  # pragma: no cover
        pass
    with open(path, "rb") as handle:
        data = handle.read(limit_mb * MB)
    for name, compiled in variants.items():
        t0 = time.perf_counter()
        hits = 0
        for start in range(0, len(data), 8 * MB):
            block = data[start : start + 8 * MB]
            if compiled is None:
                for lit in literals:
                    at = block.find(lit)
                    while at != -1:
                        hits += 1
                        at = block.find(lit, at + 1)
            else:
                hits += sum(1 for _ in compiled.finditer(block))
        elapsed = time.perf_counter() - t0
        print(f"  prefilter {name:<24} {len(data) / MB / elapsed:8.0f} MB/s ({hits} hits)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, help="log file to use or create")
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument(
        "--rss-sizes",
        default="100,500",
        help="also report peak RSS for logs of these sizes (MB), comma-separated",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--text",
        action="store_true",
        help="also time Scanner.scan over decoded lines (the LogSource path)",
    )
    parser.add_argument("--workers", type=int, default=1, help="also time scan_file with this many processes")
    parser.add_argument("--compare-prefilter", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("grep") is None:
        print("GNU grep is needed", file=sys.stderr)
        return 2
    workdir = Path(tempfile.gettempdir()) / "meshdoctor-bench"
    path = ensure_log(args.out or workdir / f"agent-{args.size_mb}mb.log", args.size_mb)
    size = path.stat().st_size
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # page cache

    greps, runs = [], []
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        greps.append(run_grep(path))
        runs.append(run_meshdoctor(path))
    grep_s = min(g[0] for g in greps)
    grep_cpu = min(g[1] for g in greps)
    grep_n = greps[0][2]
    best = min(runs, key=lambda r: r["seconds"])
    md_cpu = min(r["cpu"] for r in runs)
    mb = size / MB
    print(f"file: {path} ({mb:.0f} MB), best of {args.repeat} interleaved runs")
    print(
        f"grep -E -c (LC_ALL=C): {mb / grep_s:6.0f} MB/s wall ({grep_s:5.2f} s), "
        f"{mb / grep_cpu:6.0f} MB/s CPU ({grep_cpu:5.2f} s)  {grep_n} lines"
    )
    print(
        f"meshdoctor scan_file:  {mb / best['seconds']:6.0f} MB/s wall ({best['seconds']:5.2f} s), "
        f"{mb / md_cpu:6.0f} MB/s CPU ({md_cpu:5.2f} s)  {best['lines']} lines "
        f"({best['matches']} matches)"
    )
    print(f"ratio meshdoctor/grep: {grep_s / best['seconds']:.2f}x wall, {grep_cpu / md_cpu:.2f}x CPU")
    print(
        f"peak RSS: {best['rss_kb'] / 1024:.0f} MiB "
        f"(after import and compile, before the scan: {best['rss_before_kb'] / 1024:.0f} MiB)"
    )
    if args.workers > 1:
        par = run_meshdoctor(path, workers=args.workers)
        print(
            f"meshdoctor scan_file, {args.workers} processes: {mb / par['seconds']:6.0f} MB/s wall "
            f"({par['seconds']:5.2f} s), peak RSS {par['rss_kb'] / 1024:.0f} MiB parent, "
            f"{par['children_rss_kb'] / 1024:.0f} MiB largest worker"
        )
    if args.text:
        text = run_meshdoctor(path, "text")
        print(
            f"meshdoctor scan(lines): {size / MB / text['seconds']:7.0f} MB/s  "
            f"{text['seconds']:6.2f} s  {text['lines']} lines, "
            f"peak RSS {text['rss_kb'] / 1024:.0f} MiB"
        )
    for size_mb in [int(s) for s in args.rss_sizes.split(",") if s.strip()]:
        other = ensure_log(workdir / f"agent-{size_mb}mb.log", size_mb)
        result = run_meshdoctor(other)
        print(
            f"peak RSS scanning {size_mb} MB: {result['rss_kb'] / 1024:.0f} MiB "
            f"({other.stat().st_size / MB / result['seconds']:.0f} MB/s)"
        )
    if args.compare_prefilter:
        compare_prefilter(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
