"""Sources fill a Snapshot. The offline ones read files; `live.py` alone talks to a cluster.

`load_offline` is what `check --from PATH... [--logs DIR]` runs.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from meshdoctor.errors import InputError
from meshdoctor.kube.kinds import KINDS
from meshdoctor.model import SourceInfo
from meshdoctor.snapshot import KubeObject, Snapshot
from meshdoctor.sources.bundle import is_bundle, load_bundle
from meshdoctor.sources.dump import DUMP_KINDS, NOT_IN_DUMP, is_dump_dir, load_dump
from meshdoctor.sources.files import STDIN_NAME, Loaded, manifest_files, read_file, read_stream, read_text
from meshdoctor.sources.flare import is_flare, load_flare
from meshdoctor.sources.logs import add_plain_log, is_plain_log, load_logs_dir
from meshdoctor.sources.logs_only import mark_logs_only
from meshdoctor.sources.object_shapes import check_shape
from meshdoctor.sources.snapshot_writer import kind_file_name

__all__ = ["CLUSTER_SCOPED_KINDS", "NOT_IN_DUMP_KINDS", "load_offline"]

#: Kinds that have no namespace. Sources: the Kubernetes API reference (`kubectl api-resources
#: --namespaced=false` on 1.30) for the built-in kinds; Istio's CRDs (`scope: Cluster`) for
#: MeshPolicy (authentication.istio.io, 1.0-1.5) and ClusterRbacConfig (rbac.istio.io, 1.1-1.5).
#: A CustomResourceDefinition in the input adds its own kind with its own scope.
CLUSTER_SCOPED_KINDS: frozenset[str] = frozenset(
    {
        "APIService",
        "CSIDriver",
        "CSINode",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterTrustBundle",
        "ComponentStatus",
        "CustomResourceDefinition",
        "DeviceClass",
        "FlowSchema",
        "IPAddress",
        "IngressClass",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PodSecurityPolicy",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "ResourceSlice",
        "RuntimeClass",
        "SelfSubjectAccessReview",
        "SelfSubjectReview",
        "SelfSubjectRulesReview",
        "ServiceCIDR",
        "StorageClass",
        "StorageVersion",
        "StorageVersionMigration",
        "SubjectAccessReview",
        "TokenReview",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
        "VolumeAttributesClass",
        # Istio
        "MeshPolicy",
        "ClusterRbacConfig",
    }
)

#: Kinds meshdoctor reads that a cluster-info dump never holds; listed in `SourceInfo.missing`.
#: Any other kind absent from a dump is unavailable too (`Snapshot.default_missing_reason`).
NOT_IN_DUMP_KINDS: tuple[str, ...] = (
    "AuthorizationPolicy",
    "ClusterRole",
    "ClusterRoleBinding",
    "ConfigMap",
    "CronJob",
    "CustomResourceDefinition",
    "DatadogAgent",
    "DestinationRule",
    "EndpointSlice",
    "Endpoints",
    "EnvoyFilter",
    "Gateway",
    "Job",
    "MeshPolicy",
    "MutatingWebhookConfiguration",
    "Namespace",
    "NetworkPolicy",
    "PeerAuthentication",
    "Policy",
    "Role",
    "RoleBinding",
    "Secret",
    "ServiceAccount",
    "ServiceEntry",
    "Sidecar",
    "StatefulSet",
    "VirtualService",
)

#: A sub-folder of a `--from` folder with this name holds logs, read as with `--logs`.
LOGS_FOLDER = "logs"


def load_offline(
    paths: Sequence[str],
    logs_dir: str | None = None,
    stdin: TextIO | None = None,
    namespace: str | None = None,
) -> tuple[Snapshot, SourceInfo]:
    """Read `--from` paths (files, folders, dumps, `-` for stdin) and `--logs` into one Snapshot.

    Coverage, i.e. what the absence of an object means:

    - files and folders of manifests are taken as the whole cluster (`mark_all_collected`): a kind
      with no object in them has none in the cluster;
    - a `kubectl cluster-info dump` folder collects only Node, Event, Pod, Service, DaemonSet,
      Deployment, ReplicaSet and ReplicationController. When a dump is among the inputs, those
      kinds plus the kinds present in the other files count as collected, and every other kind
      is unavailable "not in a cluster-info dump" (the snapshot's `default_missing_reason`; the
      kinds of `NOT_IN_DUMP_KINDS` are also recorded with `mark_missing`, so that
      `SourceInfo.missing` names them).

    Namespaces (which namespaces each kind was read in, `Snapshot.limit_namespaces`):

    - a file is the complete listing of the kinds it holds in every namespace (what
      `kubectl get KIND -A -o yaml` writes), and of the kind it is named after as `snapshot -o DIR`
      names files (`configmaps.core.yaml`, `kind_named_by`), even empty; a folder of manifests,
      of every kind in every namespace;
    - a dump's kinds other than Node are known only in the namespaces it holds (its namespace
      folders: kubectl dumps kube-system and the current namespace unless told `--namespaces` or
      `--all-namespaces`); a dump kind that other files hold too is known everywhere, as files are;
      when the cluster's Namespaces are among the files and the dumps hold each of them, every
      namespace was read (`_holds_every_namespace`);
    - `namespace` (`check --from ... -n NS`) reads the input as a live `-n NS` reads a cluster:
      namespaced objects and logs of other namespaces are dropped, and every namespaced kind is
      known in NS only. Cluster-scoped kinds are unaffected.

    A meshdoctor bundle (`.tar.gz`) is replayed alone, as it was captured (`sources.bundle`).
    Logs and no object at all (`--logs DIR` alone, plain `*.log` files given here): source kind
    `files` (the schema fixes the kinds); every kind is missing with the `kubectl get` that
    exports it (`mark_logs_only`), and the log rules read the logs through synthetic pods named
    after the files.

    A namespaced object with no namespace in a manifest goes to `default`, as kubectl puts it.
    A folder given here that has a `logs/` sub-folder has its logs read as with `--logs`. Objects
    of the same kind, namespace and name in several inputs: the last read wins.
    """
    if not paths and logs_dir is None:
        raise InputError("--from", "no input given")
    bundles = [path for path in paths if is_bundle(path)]
    if bundles:
        if len(paths) > 1 or logs_dir is not None or namespace is not None:
            raise InputError(bundles[0], "a bundle is replayed alone: no other --from, --logs or -n with it")
        return load_bundle(bundles[0])
    collecting = gc.isenabled()
    gc.disable()  # parsing makes millions of dicts and no cycles: collector passes only cost time
    try:
        return _load(paths, logs_dir, stdin, namespace)
    finally:
        if collecting:
            gc.enable()


def _load(
    paths: Sequence[str], logs_dir: str | None, stdin: TextIO | None, namespace: str | None
) -> tuple[Snapshot, SourceInfo]:
    objects: list[Loaded] = []
    file_kinds: set[str] = set()
    snapshot = Snapshot()
    dumped = False
    flared = False  # a flare's agent Pod goes straight to the snapshot, not through `objects`
    dumped_namespaces: set[str] = set()
    logs_dirs: list[str] = []
    for path in paths:
        if path == "-":
            objects.extend(_kinds_of(_read_stdin(stdin if stdin is not None else sys.stdin), file_kinds))
        elif not os.path.exists(path):
            raise InputError(path, "no such file or directory")
        elif os.path.isdir(path):
            has_logs = os.path.isdir(os.path.join(path, LOGS_FOLDER))
            skip = (LOGS_FOLDER,) if has_logs else ()
            if has_logs:
                logs_dirs.append(os.path.join(path, LOGS_FOLDER))
            if is_dump_dir(path):
                dumped = True
                dump = load_dump(path, skip)
                dumped_namespaces.update(dump.namespaces)
                objects.extend(dump.objects)
                objects.extend(_kinds_of(dump.other, file_kinds))
                for key, log in dump.logs.items():
                    snapshot.add_log(key, log)
            else:
                for file in manifest_files(path, skip):
                    objects.extend(_kinds_of(read_file(file), file_kinds))
        elif is_plain_log(path):
            add_plain_log(snapshot, path)
        elif is_flare(path):
            load_flare(snapshot, path)
            flared = True
        else:
            objects.extend(_kinds_of(read_file(path), file_kinds))
            named = kind_named_by(path)
            if named is not None:  # complete even when empty: `kubectl get` of no object says no kind
                file_kinds.add(named)
    if logs_dir is not None:
        logs_dirs.append(logs_dir)
    for folder in logs_dirs:
        load_logs_dir(snapshot, folder)

    for loaded in objects:  # before any helper reads them: rules get the API's structure
        check_shape(loaded.obj, loaded.origin.file, loaded.origin.line, loaded.field_lines)
    cluster_scoped = _cluster_scoped_kinds(objects)
    for loaded in objects:
        _default_namespace(loaded.obj, cluster_scoped)
        if namespace is not None and loaded.obj["kind"] not in cluster_scoped:
            if loaded.obj["metadata"].get("namespace") != namespace:
                continue
        snapshot.add(loaded.obj, loaded.origin, loaded.field_lines)
    if namespace is not None:
        for key in [key for key in snapshot.logs if key.namespace != namespace]:
            del snapshot.logs[key]
        snapshot.limit_namespaces([namespace], f"-n {namespace}")

    missing: tuple[str, ...] = ()
    logs_only = not dumped and not objects and (bool(snapshot.logs) or flared)
    if logs_only:
        missing = mark_logs_only(snapshot)
    elif dumped:
        collected = set(DUMP_KINDS) | file_kinds
        snapshot.mark_collected(collected)
        snapshot.default_missing_reason = NOT_IN_DUMP
        for kind in NOT_IN_DUMP_KINDS:
            if kind not in collected:
                snapshot.mark_missing(kind, NOT_IN_DUMP)
        missing = tuple(f"{kind}: {why}" for kind, why in snapshot.missing().items())
        held = ", ".join(sorted(dumped_namespaces)) or "no namespace"
        dump_only = sorted(DUMP_KINDS - file_kinds - cluster_scoped)
        if not _holds_every_namespace(snapshot, file_kinds, dumped_namespaces):
            snapshot.limit_namespaces(dumped_namespaces, f"the cluster-info dump holds {held}", dump_only)
    else:
        snapshot.mark_all_collected()
    missing += tuple(snapshot.scope_lines())
    target = ", ".join([*paths, *([logs_dir] if logs_dir is not None and not paths else [])])
    target += f" namespace {namespace}" if namespace is not None else ""
    # logs alone stay kind `files` (the schema's enum is fixed); their `missing` line says it
    return snapshot, SourceInfo("dump" if dumped else "files", target, missing)


def _read_stdin(stdin: TextIO) -> list[Loaded]:
    """Standard input read as bytes (its encoding is the input's, not the terminal's), bounded."""
    binary = getattr(stdin, "buffer", None)
    if binary is not None:
        return read_stream(binary, STDIN_NAME)
    return read_text(stdin.read(), STDIN_NAME)  # a text stream without bytes under it (tests)


def _holds_every_namespace(snapshot: Snapshot, file_kinds: set[str], dumped: set[str]) -> bool:
    """Whether the dumps hold every namespace of the cluster: the Namespaces listed next to them.

    A dump does not say whether it was taken with `--all-namespaces`; the cluster's Namespaces,
    when given (`kubectl get namespaces -o yaml > namespaces.core.yaml`), do. Then a namespace the
    dumps lack does not exist, and its objects are absent rather than not read.
    """
    if "Namespace" not in file_kinds:
        return False
    return {str((ns.get("metadata") or {}).get("name") or "") for ns in snapshot.objects("Namespace")} <= dumped


def kind_named_by(path: str) -> str | None:
    """The kind a file is named after as `snapshot -o DIR` names it (`networkpolicies.networking.k8s.io.yaml`).

    Such a file is the complete listing of that kind even when it holds no object: next to a
    dump, `kubectl get networkpolicies -A -o yaml > networkpolicies.networking.k8s.io.yaml` says
    "none", which an empty `List` (no item, so no kind) cannot say on its own.
    """
    name = os.path.basename(path)
    for kind in KINDS:
        stem = kind_file_name(kind).removesuffix(".yaml")
        if name in (f"{stem}.yaml", f"{stem}.yml", f"{stem}.json"):
            return kind
    return None


def _kinds_of(loaded: list[Loaded], kinds: set[str]) -> list[Loaded]:
    """`loaded`, after adding the kinds it holds to `kinds`."""
    kinds.update(str(item.obj["kind"]) for item in loaded)
    return loaded


def _cluster_scoped_kinds(loaded: list[Loaded]) -> frozenset[str]:
    """The built-in table, corrected by the CustomResourceDefinitions in the input."""
    scoped = set(CLUSTER_SCOPED_KINDS)
    for item in loaded:
        obj = item.obj
        if obj.get("kind") != "CustomResourceDefinition":
            continue
        spec = obj.get("spec") or {}  # its structure is checked (`object_shapes`)
        kind = (spec.get("names") or {}).get("kind")
        if not isinstance(kind, str):
            continue
        if spec.get("scope") == "Cluster":
            scoped.add(kind)
        elif spec.get("scope") == "Namespaced":
            scoped.discard(kind)
    return frozenset(scoped)


def _default_namespace(obj: KubeObject, cluster_scoped: frozenset[str]) -> None:
    """Put a namespaced object that names no namespace in `default`, as kubectl would."""
    if obj.get("kind") in cluster_scoped:
        return
    meta = obj["metadata"]
    if not meta.get("namespace"):
        meta["namespace"] = "default"
