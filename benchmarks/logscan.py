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

from meshdoctor.logs.scanner import load_signatures

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


_SIDECAR_HOSTS = ["7-52-0-app.agent.datadoghq.com", "agent-intake.logs.datadoghq.com", "trace.agent.datadoghq.com"]


def _sidecar_samples() -> list[str]:
    """The catalogue's istio-proxy sample lines (what a bad day writes to the sidecar's log)."""
    return [m.line for s in load_signatures() if s.source == "istio-proxy" for m in s.samples_match]


def generate_sidecar(path: Path, size_mb: float, matches: int = 20, seed: int = 11) -> None:
    """An agent pod's istio-proxy log: Envoy's default text access log of the agent's outbound
    traffic to the intake (every line routed through `outbound|443||<host>`, flags `-`), inbound
    probes and DogStatsD, and istio-agent lines, with about `matches` catalogue lines spread."""
    rnd = random.Random(seed)
    target = int(size_mb * MB)
    bad = _sidecar_samples()
    every = max(1, target // 330 // max(1, matches))
    count = 0
    chunk = []
    written = 0
    while written < target:
        count += 1
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_000 + count // 20))
        stamp = f"{t}.{count % 1000:03d}Z"
        pick = rnd.random()
        if count % every == 0:
            line = rnd.choice(bad)
        elif pick < 0.7:
            host = rnd.choice(_SIDECAR_HOSTS)
            line = (
                f'[{stamp}] "POST /api/v2/series HTTP/1.1" 202 - via_upstream - "-" {rnd.randrange(200, 90000)} '
                f'15 {rnd.randrange(2, 400)} {rnd.randrange(2, 400)} "-" "datadog-agent/7.52.0" '
                f'"{rnd.getrandbits(128):032x}" "{host}" "3.233.146.{rnd.randrange(255)}:443" '
                f"outbound|443||{host} 10.244.1.17:{rnd.randrange(30000, 60000)} 3.233.146.17:443 "
                f"10.244.1.17:{rnd.randrange(30000, 60000)} - default"
            )
        elif pick < 0.9:
            line = (
                f'[{stamp}] "GET /ready HTTP/1.1" 200 - via_upstream - "-" 0 2 1 0 "-" '
                f'"kube-probe/1.29" "{rnd.getrandbits(128):032x}" "10.244.1.17:5555" '
                f'"10.244.1.17:5555" inbound|5555|| 127.0.0.6:{rnd.randrange(30000, 60000)} '
                f"10.244.1.17:5555 10.244.1.1:{rnd.randrange(30000, 60000)} - default"
            )
        else:
            line = f"{stamp}\tinfo\txdsproxy\tconnected to upstream XDS server: istiod.istio-system.svc:15012"
        chunk.append(line + "\n")
        if len(chunk) >= 200:
            text = "".join(chunk)
            chunk.clear()
            with open(path, "a", encoding="utf-8") as out:
                out.write(text)
            written += len(text)
    if chunk:
        with open(path, "a", encoding="utf-8") as out:
            out.write("".join(chunk))


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
        elif c == "(" and pattern.startswith("(?=", i) and pattern[:i].strip("^"):
            # A lookahead after the start: grep has none, drop it (grep matches a superset).
            i = _group_end(pattern, i)
            if i < n and pattern[i] == "?":
                i += 1
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


def pattern_file(group: str, folder: Path) -> Path:
    """The signatures one log group is scanned for (what the rules use), as ERE, one a line."""
    sources = {"agent": ("agent",), "istio-proxy": ("istio-proxy",)}[group]
    path = folder / f"{group}.ere"
    path.write_text("".join(to_ere(s.pattern.pattern) + "\n" for s in load_signatures() if s.source in sources))
    return path


def run_grep(jobs: list[tuple[str, list[Path]]], folder: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds and matching lines of `LC_ALL=C grep -n -E -f <group's patterns>` over
    each group's files (one grep per group)."""
    env = dict(os.environ, LC_ALL="C")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    lines = 0
    for group, files in jobs:
        done = subprocess.run(
            ["grep", "-n", "-E", "-f", str(pattern_file(group, folder)), *map(str, files)],
            capture_output=True,
            env=env,
        )
        if done.returncode not in (0, 1):
            raise RuntimeError(done.stderr.decode())
        lines += done.stdout.count(b"\n")
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, lines


# -- meshdoctor ---------------------------------------------------------------------------------

_SCAN = """
import json, resource, sys, time
from meshdoctor.logs.workload_logs import shared_scanner

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

jobs = json.load(open(sys.argv[1]))
scanners = {group: shared_scanner(group) for group, _ in jobs}
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu0 = cpu()
t0 = time.perf_counter()
lines = 0
for group, files in jobs:
    scanner = scanners[group]
    for path in files:
        lines += len({m.line for m in scanner.scan_file(path)})
elapsed = time.perf_counter() - t0
engine = next(iter(scanners.values()))._finder.engine
print(json.dumps({"seconds": elapsed, "cpu": cpu() - cpu0, "lines": lines, "engine": engine,
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "rss_before_kb": rss0}))
"""


def run_meshdoctor(jobs: list[tuple[str, list[Path]]], folder: Path, pure: bool = False) -> dict[str, float]:
    """Scan each group's files with the group's shared scanner (as the rules do) in a fresh
    interpreter; wall and CPU seconds, matching lines, peak RSS (KiB)."""
    spec = folder / "jobs.json"
    spec.write_text(json.dumps([[g, [str(f) for f in files]] for g, files in jobs]))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # bytecode cached, as installed
    if pure:
        env["MESHDOCTOR_PURE_PYTHON_SCAN"] = "1"
    done = subprocess.run([sys.executable, "-c", _SCAN, str(spec)], capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout)


def compare_prefilter(path: Path, limit_mb: int = 200) -> None:
    """Time candidate finding alone over the agent literals: Hyperscan, bytes.find per literal,
    Aho-Corasick (pyahocorasick, when installed; it searches `str`) and one `re` alternation."""
    from meshdoctor.logs.literal_search import LiteralFinder, find_spans
    from meshdoctor.logs.workload_logs import shared_scanner

    literals = [lit.encode() for lit in shared_scanner("agent").literals]
    with open(path, "rb") as handle:
        data = handle.read(limit_mb * MB)
    blocks = [data[i : i + 8 * MB] for i in range(0, len(data), 8 * MB)]
    finder = LiteralFinder(literals)
    alternation = re.compile(b"|".join(re.escape(lit) for lit in literals))
    variants = {
        f"LiteralFinder ({finder.engine})": lambda b: len(finder.spans(b, 0, len(b))),
        "bytes.find per literal": lambda b: len(find_spans(b, 0, len(b), literals)),
        "re alternation": lambda b: sum(1 for _ in alternation.finditer(b)),
    }
    try:
        import ahocorasick

        automaton = ahocorasick.Automaton()
        for index, lit in enumerate(literals):
            automaton.add_word(lit.decode(), index)
        automaton.make_automaton()
        variants["pyahocorasick (decode + iter)"] = lambda b: sum(
            1 for _ in automaton.iter(b.decode("utf-8", "replace"))
        )
    except ImportError:
        pass
    print(f"prefilter alone, {len(literals)} agent literals, first {len(data) / MB:.0f} MB:")
    for name, run in variants.items():
        t0 = time.perf_counter()
        hits = sum(run(b) for b in blocks)
        elapsed = time.perf_counter() - t0
        print(f"  {name:<32} {len(data) / MB / elapsed:8.0f} MB/s ({hits} hits)")


def ensure_many(folder: Path, count: int, file_mb: float) -> list[tuple[str, list[Path]]]:
    """`count` logs of `file_mb` MB: half agent logs, half their sidecars' (20 distinct of each,
    copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    half = count // 2
    jobs: list[tuple[str, list[Path]]] = []
    for group in ("agent", "istio-proxy"):
        files = [folder / f"{group}-{i:04d}.log" for i in range(half)]
        if not all(f.exists() for f in files):
            print(f"generating {half} x {file_mb} MB {group} logs in {folder} ...", flush=True)
            for i in range(min(20, half)):
                f = files[i]
                f.unlink(missing_ok=True)
                if group == "agent":
                    _generate_agent_mb(f, file_mb, seed=i)
                else:
                    generate_sidecar(f, file_mb, seed=i)
            for i in range(20, half):
                shutil.copyfile(files[i % 20], files[i])
        jobs.append((group, files))
    return jobs


def _generate_agent_mb(path: Path, file_mb: float, seed: int) -> None:
    """A small agent log (`generate` takes whole MB)."""
    big = path.with_suffix(".tmp")
    generate(big, 1, matches=4, seed=seed)
    with open(big, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read(int(file_mb * MB)))
    big.unlink()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def compare(name: str, jobs: list[tuple[str, list[Path]]], folder: Path, repeat: int, pure: bool) -> None:
    """Interleaved runs of grep and meshdoctor over the same files; medians and ratios."""
    for _group, files in jobs:
        for f in files:
            with open(f, "rb") as handle:  # page cache
                while handle.read(8 * MB):
                    pass
    size = sum(f.stat().st_size for _g, files in jobs for f in files) / MB
    greps, runs, pures = [], [], []
    for _ in range(repeat):
        greps.append(run_grep(jobs, folder))
        runs.append(run_meshdoctor(jobs, folder))
        if pure:
            pures.append(run_meshdoctor(jobs, folder, pure=True))
    g_wall, g_cpu = _median([g[0] for g in greps]), _median([g[1] for g in greps])
    m_wall, m_cpu = _median([r["seconds"] for r in runs]), _median([r["cpu"] for r in runs])
    nfiles = sum(len(files) for _g, files in jobs)
    print(f"== {name}: {nfiles} file(s), {size:.0f} MB, median of {repeat} interleaved runs")
    print(f"  grep -n -E -f (LC_ALL=C):  {size / g_wall:7.0f} MB/s wall ({g_wall:6.2f} s)  {greps[0][2]} lines")
    print(
        f"  meshdoctor ({runs[0]['engine']}): {size / m_wall:7.0f} MB/s wall ({m_wall:6.2f} s)  "
        f"{runs[0]['lines']} lines, peak RSS {max(r['rss_kb'] for r in runs) / 1024:.0f} MiB "
        f"(after import and compile {runs[0]['rss_before_kb'] / 1024:.0f} MiB)"
    )
    print(f"  RATIO meshdoctor/grep throughput: {g_wall / m_wall:.2f}x wall, {g_cpu / m_cpu:.2f}x CPU")
    if pure:
        p_wall = _median([r["seconds"] for r in pures])
        print(f"  pure-Python engine: {size / p_wall:7.0f} MB/s wall ({p_wall:6.2f} s), {g_wall / p_wall:.2f}x grep")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mb", type=int, default=200, help="size of the one big agent log")
    parser.add_argument("--files", type=int, default=2000, help="number of small logs (half agent, half sidecar)")
    parser.add_argument("--file-mb", type=float, default=1.0, help="size of each small log")
    parser.add_argument("--rss-sizes", default="", help="also report peak RSS for agent logs of these sizes (MB)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pure", action="store_true", help="also time the pure-Python prefilter engine")
    parser.add_argument("--compare-prefilter", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("grep") is None:
        print("GNU grep is needed", file=sys.stderr)
        return 2
    workdir = Path(tempfile.gettempdir()) / "meshdoctor-bench"
    big = ensure_log(workdir / f"agent-{args.size_mb}mb.log", args.size_mb)
    compare(f"one agent log of {args.size_mb} MB", [("agent", [big])], workdir, args.repeat, args.pure)
    if args.files:
        jobs = ensure_many(workdir / f"many-{args.files}x{args.file_mb}mb", args.files, args.file_mb)
        compare(f"{args.files} x {args.file_mb} MB logs", jobs, workdir, args.repeat, args.pure)
    for size_mb in [int(s) for s in args.rss_sizes.split(",") if s.strip()]:
        other = ensure_log(workdir / f"agent-{size_mb}mb.log", size_mb)
        result = run_meshdoctor([("agent", [other])], workdir)
        print(f"peak RSS scanning {size_mb} MB: {result['rss_kb'] / 1024:.0f} MiB")
    if args.compare_prefilter:
        compare_prefilter(big)
    return 0


if __name__ == "__main__":
    sys.exit(main())
