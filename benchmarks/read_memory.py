"""Peak memory of `meshdoctor check --from FILE` against the size of FILE (issue 14, point 4).

Generates a `kubectl get pods -A -o yaml`-like List (or JSON with `--json`) of about SIZE MB,
runs the check in a child process and prints its peak RSS (ru_maxrss), the input size, their
ratio, the wall time, and the same for a Python process that only imports meshdoctor (the floor).

    python benchmarks/read_memory.py 200          # 200 MB of YAML
    python benchmarks/read_memory.py 200 --json   # 200 MB of JSON

The per-file size limit is lifted for the run (MESHDOCTOR_MAX_FILE_MB=0).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_POD = """\
- apiVersion: v1
  kind: Pod
  metadata:
    labels:
      app: web-{i}
      pod-template-hash: 5d8f{i}
    name: web-{i}-5d8f-abcde
    namespace: team-{ns}
    uid: 6c1d2e3f-{i:08d}-4a5b-8c9d-0e1f2a3b4c5d
  spec:
    containers:
    - env:
      - name: LOG_LEVEL
        value: info
      image: registry.example.com/web:1.2.{i}
      name: web
      ports:
      - containerPort: 8080
        protocol: TCP
      volumeMounts:
      - mountPath: /var/run/secrets/kubernetes.io/serviceaccount
        name: kube-api-access
        readOnly: true
    nodeName: node-{node}
    serviceAccountName: default
    volumes:
    - name: kube-api-access
      projected:
        sources:
        - serviceAccountToken:
            path: token
  status:
    containerStatuses:
    - image: registry.example.com/web:1.2.{i}
      imageID: registry.example.com/web@sha256:{i:064d}
      name: web
      ready: true
      restartCount: 0
    phase: Running
    podIP: 10.{a}.{b}.{c}
"""


def generate(path: Path, megabytes: float, as_json: bool) -> int:
    """Write about `megabytes` MB of pods to `path`; return its size in bytes."""
    target = int(megabytes * 1024 * 1024)
    with path.open("w", encoding="utf-8") as out:
        if as_json:
            out.write('{\n    "apiVersion": "v1",\n    "items": [\n')
        else:
            out.write("apiVersion: v1\nitems:\n")
        written, i = 0, 0
        while written < target:
            fields = {"i": i, "ns": i % 50, "node": i % 1000, "a": i >> 16 & 255, "b": i >> 8 & 255, "c": i & 255}
            if as_json:
                import yaml

                item = json.dumps(yaml.safe_load(_POD.format(**fields))[0], indent=4)
                text = ("" if i == 0 else ",\n") + "\n".join("        " + line for line in item.splitlines())
            else:
                text = _POD.format(**fields)
            out.write(text)
            written += len(text)
            i += 1
        out.write('\n    ],\n    "kind": "List"\n}\n' if as_json else "kind: List\n")
    return path.stat().st_size


def peak_of(argv: list[str]) -> tuple[int, float, int]:
    """(peak RSS in bytes, seconds, exit code) of a child process."""
    env = {**os.environ, "MESHDOCTOR_MAX_FILE_MB": "0"}
    started = time.monotonic()
    code = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL).returncode
    seconds = time.monotonic() - started
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, seconds, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("megabytes", type=float)
    parser.add_argument("--json", action="store_true", help="generate JSON instead of YAML")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshdoctor-mem-") as folder:
        path = Path(folder) / ("pods.json" if args.json else "pods.yaml")
        size = generate(path, args.megabytes, args.json)
        floor, _, _ = peak_of([sys.executable, "-c", "import meshdoctor.sources, meshdoctor.engine"])
        peak, seconds, code = peak_of([sys.executable, "-m", "meshdoctor", "check", "--from", str(path), "-o", "json"])
    mib = 1024 * 1024
    print(f"input      {size / mib:10.1f} MiB ({'JSON' if args.json else 'YAML'})")
    print(f"peak RSS   {peak / mib:10.1f} MiB  = {peak / size:.2f}x the input (exit {code}, {seconds:.1f} s)")
    print(f"floor      {floor / mib:10.1f} MiB  (importing meshdoctor); above it: {(peak - floor) / size:.2f}x")


if __name__ == "__main__":
    main()
