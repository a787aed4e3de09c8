"""The agent's release: each evidence form parsed exactly, runtime evidence over the tag, newest pod first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshdoctor.datadog.agent import agent_release, logs_transports, required_endpoints
from meshdoctor.datadog.agent_version import (
    CONTAINER_STATUS,
    CURRENT_MINOR,
    IMAGE_TAG,
    STARTUP_LINE,
    UNKNOWN,
    UNPINNED_TAG,
    VERSIONED_HOST,
    release_evidence,
    startup_line_version,
    tag_version,
    versioned_host_version,
)
from meshdoctor.model import FieldEvidence, LogEvidence
from meshdoctor.rule import Context
from meshdoctor.snapshot import LogKey, Snapshot

START_6 = "2019-03-04 10:14:01 UTC | INFO | (start.go:143 in StartAgent) | Starting Datadog Agent v6.10.0"
START_7 = (
    "2026-11-20 08:05:01 UTC | CORE | INFO | (cmd/agent/subcommands/run/command.go:280 in startAgent) | "
    "Starting Datadog Agent v7.60.1"
)
POSTED_6 = (
    '2019-03-04 10:14:18 UTC | INFO | (transaction.go:179 in Process) | Successfully posted payload to "https://'
    '6-10-2-app.agent.datadoghq.com/api/v1/series?api_key=*****bcdef", the agent will only log transaction success'
)


# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, version",
    [
        (START_6, "6.10.0"),
        (START_7, "7.60.1"),
        ("Starting Datadog Agent v7.50.3", "7.50.3"),
        ("... | Starting Datadog Agent v7.50.0-rc.3", "7.50.0"),
        ('{"level":"INFO","msg":"Starting Datadog Agent v7.49.1"}', "7.49.1"),
        ("... | Starting Datadog Agent v7.50", None),  # no patch
        ("... | Starting Datadog Agent v7.50.3.1", None),  # four parts
        ("... | Starting Datadog Agent v%v", None),
        ("... | Starting Datadog IoT Agent v7.50.3", None),  # another flavour
        ("... | Starting Datadog Cluster Agent v7.50.3", None),
        ("... | user said Starting Datadog Agent v7.50.3", None),  # not the message itself
        ("", None),
    ],
)
def test_startup_line_version(line, version):
    assert startup_line_version(line) == version


@pytest.mark.parametrize(
    "line, version",
    [
        (POSTED_6, "6.10.2"),
        (
            "Too many errors for endpoint 'https://7-60-1-app.agent.datadoghq.eu/api/v2/series': retrying later",
            "7.60.1",
        ),
        (
            'Forwarder started, sending to 1 endpoint(s) with 1 worker(s) each: "https://7-49-1-app.agent.datadoghq.com"',
            "7.49.1",
        ),
        ("Post https://7-50-3-flare.agent.datadoghq.com/support/flare: EOF", "7.50.3"),
        ("Post https://trace.agent.datadoghq.com/api/v0.2/traces: EOF", None),
        ("Post https://app.datadoghq.com/api/v1/series: EOF", None),  # before the versioned host
        ("requested_server_name 7-60-1-app.agent.datadoghq.com", None),  # not a URL
        ("https://7-60-app.agent.datadoghq.com", None),  # two numbers
    ],
)
def test_versioned_host_version(line, version):
    assert versioned_host_version(line) == version


@pytest.mark.parametrize(
    "image, version",
    [
        ("gcr.io/datadoghq/agent:7.49.1", "7.49.1"),
        ("datadog/agent:6.9.0-jmx", "6.9.0"),
        ("datadog/agent:latest", None),
        ("datadog/agent:7", None),
        ("datadog/agent@sha256:" + "a" * 64, None),
        ("registry:5000/datadog/agent:7.50.3@sha256:" + "a" * 64, "7.50.3"),
    ],
)
def test_tag_version(image, version):
    assert tag_version(image) == version


# -- a cluster ----------------------------------------------------------------------------------


class Lines:
    def __init__(self, lines: list[str]) -> None:
        self.origin = "test"
        self._lines = lines
        self.read = 0

    def lines(self) -> Iterator[str]:
        for line in self._lines:
            self.read += 1
            yield line


def daemonset(image: str = "datadog/agent:latest", env: list | None = None) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "datadog-agent", "namespace": "datadog"},
        "spec": {
            "selector": {"matchLabels": {"app": "datadog-agent"}},
            "template": {
                "metadata": {"labels": {"app": "datadog-agent"}},
                "spec": {"containers": [{"name": "agent", "image": image, "env": env or []}]},
            },
        },
    }


def pod(name: str, created: str, image: str = "datadog/agent:latest", status_image: str | None = None) -> dict:
    obj: dict = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "datadog",
            "creationTimestamp": created,
            "labels": {"app": "datadog-agent"},
            "ownerReferences": [{"kind": "DaemonSet", "name": "datadog-agent", "controller": True}],
        },
        "spec": {"containers": [{"name": "agent", "image": image}, {"name": "istio-proxy", "image": "proxyv2"}]},
    }
    if status_image is not None:
        obj["status"] = {
            "containerStatuses": [
                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.20.3"},
                {
                    "name": "agent",
                    "image": status_image,
                    "imageID": "docker-pullable://gcr.io/datadoghq/agent@sha256:" + "a" * 64,
                },
            ]
        }
    return obj


def cluster(*objects: dict, logs: dict[tuple[str, bool], list[str]] | None = None) -> Snapshot:
    snap = Snapshot()
    for obj in objects:
        snap.add(obj)
    snap.mark_all_collected()
    for (pod_name, previous), lines in (logs or {}).items():
        snap.add_log(LogKey("datadog", pod_name, "agent", previous), Lines(lines))
    return snap


def resolve(snap: Snapshot, ds: dict | None = None):
    ds = ds or snap.objects("DaemonSet")[0]
    return agent_release(Context(snap), ds)


# -- precedence ---------------------------------------------------------------------------------


def test_the_tag_alone():
    assert resolve(cluster(daemonset("datadog/agent:6.10.2"))).decided_by == IMAGE_TAG
    latest = resolve(cluster(daemonset()))
    assert (latest.decided_by, latest.release, latest.version) == (UNPINNED_TAG, (7, CURRENT_MINOR), None)
    assert latest.text == "the unpinned tag latest (a current 7.x)"
    digest = resolve(cluster(daemonset("datadog/agent@sha256:" + "a" * 64)))
    assert (digest.decided_by, digest.release) == (UNKNOWN, None)


def test_startup_line_beats_status_image_beats_versioned_host_beats_tag():
    ds = daemonset("datadog/agent:7.49.1")
    p = pod("datadog-agent-x7k2p", "2026-11-20T08:00:00Z", "datadog/agent:7.49.1", status_image="datadog/agent:7.48.0")
    every = cluster(ds, p, logs={("datadog-agent-x7k2p", False): [POSTED_6, START_6]})
    found = resolve(every)
    assert (found.decided_by, found.version, found.release) == (STARTUP_LINE, "6.10.0", (6, 10))
    assert (found.pod, found.container, found.line_number, found.line) == (
        "datadog/datadog-agent-x7k2p",
        "agent",
        2,
        START_6,
    )
    assert found.text == "agent 6.10.0 (its start-up log line, pod datadog/datadog-agent-x7k2p)"
    no_startup = cluster(ds, p, logs={("datadog-agent-x7k2p", False): [POSTED_6]})
    assert (resolve(no_startup).decided_by, resolve(no_startup).version) == (CONTAINER_STATUS, "7.48.0")
    p_plain = pod(
        "datadog-agent-x7k2p", "2026-11-20T08:00:00Z", "datadog/agent:7.49.1", status_image="sha256:" + "b" * 64
    )
    host_only = cluster(ds, p_plain, logs={("datadog-agent-x7k2p", False): [POSTED_6]})
    assert (resolve(host_only).decided_by, resolve(host_only).version) == (VERSIONED_HOST, "6.10.2")
    assert (resolve(cluster(ds, p_plain)).decided_by, resolve(cluster(ds, p_plain)).version) == (IMAGE_TAG, "7.49.1")


def test_reading_stops_at_the_startup_line():
    log = Lines([START_7, *["noise"] * 50, POSTED_6])
    snap = cluster(daemonset(), pod("datadog-agent-x7k2p", "2026-11-20T08:00:00Z"))
    snap.add_log(LogKey("datadog", "datadog-agent-x7k2p", "agent"), log)
    assert resolve(snap).version == "7.60.1"
    assert log.read == 1


def test_malformed_lines_are_ignored():
    lines = ["... | Starting Datadog Agent v6.10", "... | Starting Datadog IoT Agent v6.10.0", "garbage", START_7]
    snap = cluster(
        daemonset(), pod("datadog-agent-x7k2p", "2026-11-20T08:00:00Z"), logs={("datadog-agent-x7k2p", False): lines}
    )
    found = resolve(snap)
    assert (found.version, found.line_number) == ("7.60.1", 4)


def test_only_the_current_container_counts():
    snap = cluster(
        daemonset(),
        pod("datadog-agent-x7k2p", "2026-11-20T08:00:00Z"),
        logs={("datadog-agent-x7k2p", True): [START_6]},
    )
    assert resolve(snap).decided_by == UNPINNED_TAG


def test_the_newest_pod_decides_and_pods_of_another_image_are_skipped():
    ds = daemonset()
    old = pod("datadog-agent-aaaaa", "2026-11-19T08:00:00Z")
    new = pod("datadog-agent-zzzzz", "2026-11-20T08:00:00Z")
    logs = {("datadog-agent-aaaaa", False): [START_6], ("datadog-agent-zzzzz", False): [START_7]}
    assert resolve(cluster(ds, old, new, logs=logs)).pod == "datadog/datadog-agent-zzzzz"
    # the newest pod says nothing: the next one does
    quiet = {("datadog-agent-aaaaa", False): [START_6]}
    assert resolve(cluster(ds, old, new, logs=quiet)).version == "6.10.0"
    # a pod left from a rollout (another image than the template's) is not evidence for it
    stale = pod("datadog-agent-zzzzz", "2026-11-20T08:00:00Z", image="datadog/agent:6.10.0")
    assert resolve(cluster(ds, stale, logs={("datadog-agent-zzzzz", False): [START_6]})).decided_by == UNPINNED_TAG


def test_logs_without_a_pod_object_count():
    snap = cluster(daemonset(), logs={("datadog-agent-x7k2p", False): [START_6]})
    found = resolve(snap)
    assert (found.decided_by, found.pod) == (STARTUP_LINE, "datadog/datadog-agent-x7k2p")
    # not a name the DaemonSet generates
    assert resolve(cluster(daemonset(), logs={("other-x7k2p", False): [START_6]})).decided_by == UNPINNED_TAG


def test_without_logs_in_the_reader_only_objects_count():
    snap = cluster(
        daemonset(),
        pod("datadog-agent-x7k2p", "2026-11-20T08:00:00Z"),
        logs={("datadog-agent-x7k2p", False): [START_6]},
    )
    assert agent_release(snap, snap.objects("DaemonSet")[0]).decided_by == UNPINNED_TAG


def test_evidence_of_each_kind():
    p = pod("datadog-agent-x7k2p", "2026-11-20T08:00:00Z", status_image="docker.io/datadog/agent:6.10.0")
    snap = cluster(daemonset(), p)
    ctx = Context(snap)
    ds = snap.objects("DaemonSet")[0]
    status = release_evidence(ctx, ds, agent_release(ctx, ds))
    assert isinstance(status, FieldEvidence)
    assert (status.object.kind, status.path, status.value) == (
        "Pod",
        "status.containerStatuses[1].image",
        "docker.io/datadog/agent:6.10.0",
    )
    logged = cluster(daemonset(), logs={("datadog-agent-x7k2p", False): ["x", START_6]})
    ctx = Context(logged)
    ds = logged.objects("DaemonSet")[0]
    line = release_evidence(ctx, ds, agent_release(ctx, ds))
    assert line == LogEvidence("datadog", "datadog-agent-x7k2p", "agent", 2, START_6)
    tagged = cluster(daemonset("datadog/agent:7.49.1"))
    ctx = Context(tagged)
    ds = tagged.objects("DaemonSet")[0]
    field = release_evidence(ctx, ds, agent_release(ctx, ds))
    assert isinstance(field, FieldEvidence)
    assert (field.path, field.value) == ("spec.template.spec.containers[0].image", "datadog/agent:7.49.1")


# -- every version default follows it --------------------------------------------------------------


def test_latest_with_a_6_10_startup_line_sends_logs_over_tcp_and_metrics_to_its_versioned_host():
    env = [{"name": "DD_LOGS_ENABLED", "value": "true"}]
    ds = daemonset(env=env)
    snap = cluster(ds, logs={("datadog-agent-x7k2p", False): [START_6]})
    ctx = Context(snap)
    assert logs_transports(ctx, ds) == (
        ["tcp"],
        "agent 6.10.0 (its start-up log line, pod datadog/datadog-agent-x7k2p) sends logs over TCP (before 6.19/7.19)",
    )
    assert [(e.product, e.host, e.port) for e in required_endpoints(ctx, ds)] == [
        ("metrics", "6-10-0-app.agent.datadoghq.com", 443),
        ("api-key-validation", "app.datadoghq.com", 443),
        ("logs-tcp", "agent-intake.logs.datadoghq.com", 10516),
    ]
    seven = cluster(ds, logs={("datadog-agent-x7k2p", False): [START_7]})
    assert logs_transports(Context(seven), ds)[0] == ["https", "tcp"]
    assert required_endpoints(Context(seven), ds)[0].host == "7-60-1-app.agent.datadoghq.com"


def test_the_resolution_is_read_once_per_run():
    log = Lines([START_6])
    snap = cluster(daemonset())
    snap.add_log(LogKey("datadog", "datadog-agent-x7k2p", "agent"), log)
    cache: dict = {}
    ds = snap.objects("DaemonSet")[0]
    first = agent_release(Context(snap, cache=cache), ds)
    assert agent_release(Context(snap, cache=cache), ds) is first
    assert log.read == 1
