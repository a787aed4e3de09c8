"""A real `kubectl cluster-info dump` of each scenario cluster, checked offline, finds what the live check finds.

For every scenario the live tests seed (`test_live_check.applied`), the `kubectl` built by
`scripts/live-cluster.sh` (k8s.io/kubernetes/cmd/kubectl, the control plane's version) writes:

- `kubectl cluster-info dump --output-directory D --all-namespaces` (JSON), the same with `-o yaml`,
  and with `--namespaces` naming every namespace of the cluster (the path a support engineer
  takes when told to dump some namespaces);
- one `kubectl get <resource> --all-namespaces -o yaml` export per kind a dump lacks (the kinds
  of `meshdoctor.kube.kinds` but the dump's own), each in a file named as `snapshot -o DIR` names
  it, so that an empty export still says "none of this kind" (`sources.kind_named_by`); the
  Namespaces among them say that the dump holds every namespace, so that a namespace it lacks
  does not exist (check-config-endpoint-no-service names one).

What a dump holds, from kubectl v0.34.4 `pkg/cmd/clusterinfo/clusterinfo_dump.go` (`Run`):
`nodes`, then per namespace `events`, `replication-controllers`, `services`, `daemonsets`,
`deployments`, `replicasets`, `pods` (`.json`, or `.yaml` with `-o yaml`), and
`<ns>/<pod>/logs.txt` with every init and app container's current log, fetched with
`PodLogOptions{Container: name}` only: no `--previous`, no tail, no since.

`check --from D --from exports...` must give exactly the live check's results and findings.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from meshdoctor.kube.kinds import KINDS
from meshdoctor.sources.dump import DUMP_KINDS
from meshdoctor.sources.snapshot_writer import kind_file_name

from .test_live_check import (  # noqa: F401 (applied is a fixture)
    SCENARIO_NAMES,
    _differences,
    applied,
    comparable,
    live_report,
    run_cli,
)

CACHE = Path(os.environ.get("MESHDOCTOR_LIVE_CACHE", Path.home() / ".cache" / "meshdoctor-live"))
KUBECTL = CACHE / "bin" / "kubectl"

#: Kinds meshdoctor reads that no cluster-info dump holds: exported with `kubectl get`.
EXPORTED_KINDS = sorted(kind for kind in KINDS if kind not in DUMP_KINDS)


def kubectl(cluster: Any, *args: str, stdout: Path | None = None) -> str:
    """Run the harness's kubectl as the admin; its output (or write it to `stdout`)."""
    command = [str(KUBECTL), "--kubeconfig", str(cluster.admin_kubeconfig), *args]
    if stdout is not None:
        with stdout.open("w") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, text=True, timeout=300)
    else:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done.stdout if stdout is None else ""


def export_missing_kinds(cluster: Any, folder: Path) -> list[Path]:
    """`kubectl get <resource> -A -o yaml > <kind file>` for each kind a dump lacks."""
    folder.mkdir(parents=True)
    files = []
    for kind in EXPORTED_KINDS:
        info = KINDS[kind]
        path = folder / kind_file_name(kind)
        every = ["--all-namespaces"] if info.namespaced else []
        kubectl(cluster, "get", info.resource, *every, "-o", "yaml", stdout=path)
        files.append(path)
    return files


def dump_report(dump: Path, exports: list[Path]) -> tuple[int, dict[str, Any]]:
    import json

    args = ["check", "--from", str(dump)]
    for path in exports:
        args += ["--from", str(path)]
    code, text = run_cli([*args, "-o", "json"])
    return code, json.loads(text)


@pytest.mark.live
@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_a_kubectl_dump_finds_what_the_live_check_finds(
    live_cluster: Any,
    applied: Any,  # noqa: F811 (the fixture imported above)
    name: str,
    tmp_path: Path,
) -> None:
    if not KUBECTL.exists():
        pytest.fail(f"{KUBECTL} missing: scripts/live-cluster.sh build builds it")
    applied(name)
    live_code, live = live_report(live_cluster.admin_kubeconfig)
    exports = export_missing_kinds(live_cluster, tmp_path / "exports")
    namespaces = kubectl(live_cluster, "get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}").split()
    variants = {
        "json": ["--all-namespaces"],
        "yaml": ["--all-namespaces", "-o", "yaml"],
        "namespaces": ["--namespaces", ",".join(namespaces)],
    }
    for variant, flags in variants.items():
        dump = tmp_path / f"dump-{variant}"
        kubectl(live_cluster, "cluster-info", "dump", "--output-directory", str(dump), *flags)
        assert (dump / ("nodes.yaml" if variant == "yaml" else "nodes.json")).is_file()
        code, report = dump_report(dump, exports)
        assert report["source"]["kind"] == "dump"
        differences = _differences(comparable(live), comparable(report))
        print(f"\n{name} ({variant}): differences {differences}")
        assert differences == {}, (variant, differences)
        assert code == live_code, variant
