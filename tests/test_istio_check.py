"""Discovery of the istio check's configuration.

Mounts, subPath, items, projected volumes, the /conf.d copy (entrypoint and Helm init container),
Autodiscovery annotations v1 and v2, endpoints and eras.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshdoctor.datadog.endpoint_eras import era_problem
from meshdoctor.datadog.istio_check import (
    AD_ANNOTATIONS,
    AD_ANNOTATIONS_V2,
    CONFIGMAP,
    HELM_CONFD,
    CheckEndpoint,
    agent_has_auto_conf,
    confd_check,
    configmap_volumes,
    configured_endpoints,
    era_hint,
    istio_check_configs,
    looks_like_istio_check,
    parse_check_yaml,
    recommended_conf_yaml,
    runs_cont_init,
)
from meshdoctor.istio.mesh import MeshInfo
from meshdoctor.model import ObjectRef, Severity
from meshdoctor.rule import Context
from meshdoctor.snapshot import Snapshot

MIXER_CONF = """init_config:

instances:
  - istio_mesh_endpoint: http://istio-telemetry.istio-system:42422/metrics
    mixer_endpoint: http://istio-telemetry.istio-system:9093/metrics
    send_histograms_buckets: true
"""
ISTIOD_CONF = """init_config:
instances:
  - use_openmetrics: true
    istiod_endpoint: http://istiod.istio-system:15014/metrics
"""
AGENT = ObjectRef("DaemonSet", "default", "datadog-agent")


def configmap(name: str = "istio-config", data: dict[str, str] | None = None, namespace: str = "default") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"conf.yaml": MIXER_CONF} if data is None else data,
    }


def daemonset(
    mounts: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    command: list[str] | None = None,
    init: list[dict[str, Any]] | None = None,
    env: list[dict[str, Any]] | None = None,
    image: str = "datadog/agent:6.10.2",
) -> dict:
    container: dict[str, Any] = {"name": "datadog-agent", "image": image, "volumeMounts": mounts}
    if command:
        container["command"] = command
    if env:
        container["env"] = env
    spec: dict[str, Any] = {"containers": [container], "volumes": volumes}
    if init:
        spec["initContainers"] = init
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "datadog-agent", "namespace": "default"},
        "spec": {"template": {"metadata": {"labels": {"app": "datadog-agent"}}, "spec": spec}},
    }


def snapshot(*objs: dict) -> Snapshot:
    snap = Snapshot()
    for obj in objs:
        snap.add(copy.deepcopy(obj))
    snap.mark_all_collected()
    return snap


def cm_volume(name: str = "istio-config", **extra: Any) -> dict:
    return {"name": "istio-config", "configMap": {"name": name, **extra}}


def summary(snap: Snapshot) -> list[tuple[str, str, str | None, str | None, bool]]:
    return [
        (c.source_kind, str(c.source_ref), c.mount_path, c.read_path, c.effective) for c in istio_check_configs(snap)
    ]


# -- where the agent reads ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("istio.d/conf.yaml", ("istio", False)),
        ("istio.d/anything.yml", ("istio", False)),
        ("istio.d/conf.yaml.default", ("istio", True)),
        ("istio.yaml", ("istio", False)),
        ("istio.d/metrics.yaml", None),
        ("istio/conf.yaml", None),
        ("istio.d/sub/conf.yaml", None),
        ("istio.d/conf.json", None),
        (".d/conf.yaml", None),
    ],
)
def test_confd_check_follows_the_agents_file_provider(relative, expected):
    assert confd_check(relative) == expected


@pytest.mark.parametrize(
    ("mount_path", "read_path"),
    [
        ("/conf.d/istio.d", "/etc/datadog-agent/conf.d/istio.d/conf.yaml"),
        ("/etc/datadog-agent/conf.d/istio.d", "/etc/datadog-agent/conf.d/istio.d/conf.yaml"),
        ("/etc/datadog-agent/conf.d/istio.d/", "/etc/datadog-agent/conf.d/istio.d/conf.yaml"),
        ("/conf.d/istio", None),
        ("/etc/datadog-agent/conf.d/istio", None),
        ("/etc/datadog-agent/istio.d", None),
        ("/etc/datadog-agent/conf.d", None),  # conf.yaml at the top configures a check named "conf"
    ],
)
def test_directory_mounts(mount_path, read_path):
    snap = snapshot(configmap(), daemonset([{"name": "istio-config", "mountPath": mount_path}], [cm_volume()]))
    [config] = istio_check_configs(snap)
    assert config.read_path == read_path
    assert config.effective is (read_path is not None)
    assert config.agent == AGENT
    if read_path is None:
        assert config.problems[-1].startswith("mounted at ")


def test_subpath_mount_of_one_key():
    snap = snapshot(
        configmap(data={"istio.yaml": MIXER_CONF}),
        daemonset(
            [
                {
                    "name": "istio-config",
                    "mountPath": "/etc/datadog-agent/conf.d/istio.d/conf.yaml",
                    "subPath": "istio.yaml",
                }
            ],
            [cm_volume()],
        ),
    )
    assert summary(snap) == [
        (
            CONFIGMAP,
            "ConfigMap default/istio-config",
            "/etc/datadog-agent/conf.d/istio.d/conf.yaml",
            "/etc/datadog-agent/conf.d/istio.d/conf.yaml",
            True,
        )
    ]


def test_items_remap_keys_and_hide_the_others():
    snap = snapshot(
        configmap(data={"mixer": MIXER_CONF, "istiod": ISTIOD_CONF}),
        daemonset(
            [{"name": "istio-config", "mountPath": "/conf.d/istio.d"}],
            [cm_volume(items=[{"key": "mixer", "path": "conf.yaml"}])],
        ),
    )
    [config] = istio_check_configs(snap)
    assert (config.file_name, config.mount_path) == ("mixer", "/conf.d/istio.d/conf.yaml")
    [volume] = configmap_volumes(snap, snap.objects("DaemonSet")[0])
    assert volume.items == (("mixer", "conf.yaml"),)
    assert volume.missing_keys == ()
    assert volume.istio is True


def test_items_key_absent_is_reported_on_the_volume():
    snap = snapshot(
        configmap(),
        daemonset(
            [{"name": "istio-config", "mountPath": "/conf.d/istio.d"}],
            [cm_volume(items=[{"key": "istio.yaml", "path": "conf.yaml"}])],
        ),
    )
    [volume] = configmap_volumes(snap, snap.objects("DaemonSet")[0])
    assert (volume.exists, volume.missing_keys) == (True, ("istio.yaml",))
    assert istio_check_configs(snap) == []


def test_projected_configmap_source():
    volume = {
        "name": "istio-config",
        "projected": {"sources": [{"secret": {"name": "x"}}, {"configMap": {"name": "istio-config"}}]},
    }
    snap = snapshot(configmap(), daemonset([{"name": "istio-config", "mountPath": "/conf.d/istio.d"}], [volume]))
    [config] = istio_check_configs(snap)
    assert config.read_path == "/etc/datadog-agent/conf.d/istio.d/conf.yaml"
    assert config.volume is not None and config.volume.source_index == 1
    assert config.volume.field_path("spec.template") == ("spec.template.spec.volumes[0].projected.sources[1].configMap")


def test_missing_configmap_volume():
    snap = snapshot(daemonset([{"name": "istio-config", "mountPath": "/conf.d/istio.d"}], [cm_volume()]))
    [volume] = configmap_volumes(snap, snap.objects("DaemonSet")[0])
    assert (volume.exists, volume.istio, volume.configmap) == (False, True, "istio-config")
    assert istio_check_configs(snap) == []


def test_volume_without_mount_is_listed_with_no_mounts():
    snap = snapshot(configmap(), daemonset([], [cm_volume()]))
    [volume] = configmap_volumes(snap, snap.objects("DaemonSet")[0])
    assert volume.mounts == ()
    assert istio_check_configs(snap) == []


def test_conf_d_is_not_copied_when_command_replaces_the_entrypoint():
    snap = snapshot(
        configmap(),
        daemonset(
            [{"name": "istio-config", "mountPath": "/conf.d/istio.d"}],
            [cm_volume()],
            command=["agent", "run"],
        ),
    )
    [config] = istio_check_configs(snap)
    assert (config.read_path, config.effective) == (None, False)


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({}, True),
        ({"command": ["agent", "run"]}, False),
        ({"command": ["/init"]}, True),
        ({"command": ["/bin/entrypoint.sh"]}, True),
        (
            {
                "command": ["bash", "-c"],
                "args": ["for s in $(find /etc/cont-init.d/ -name '*.sh'); do bash $s; done"],
            },
            True,
        ),
    ],
)
def test_runs_cont_init(container, expected):
    assert runs_cont_init(container) is expected


def test_helm_confd_through_the_init_config_container():
    init = {
        "name": "init-config",
        "image": "gcr.io/datadoghq/agent:7.60.1",
        "command": ["bash", "-c"],
        "args": ["for script in $(find /etc/cont-init.d/ -type f -name '*.sh' | sort) ; do bash $script ; done"],
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/datadog-agent"},
            {"name": "confd", "mountPath": "/conf.d", "readOnly": True},
        ],
    }
    ds = daemonset(
        [{"name": "config", "mountPath": "/etc/datadog-agent"}],
        [
            {"name": "config", "emptyDir": {}},
            {"name": "confd", "configMap": {"name": "datadog-confd"}},
        ],
        command=["agent", "run"],
        init=[init],
        image="gcr.io/datadoghq/agent:7.60.1",
    )
    ds["spec"]["template"]["spec"]["containers"][0]["name"] = "agent"
    snap = snapshot(
        configmap("datadog-confd", {"istio.yaml": ISTIOD_CONF, "redisdb.yaml": "instances: [{}]"}),
        ds,
    )
    assert summary(snap) == [
        (
            HELM_CONFD,
            "ConfigMap default/datadog-confd",
            "/conf.d/istio.yaml",
            "/etc/datadog-agent/conf.d/istio.yaml",
            True,
        )
    ]
    assert [e.url for e in configured_endpoints(snap)] == ["http://istiod.istio-system:15014/metrics"]


def test_init_container_copy_without_a_shared_volume_is_not_read():
    init = {
        "name": "init-config",
        "image": "datadog/agent:7.60.1",
        "command": ["bash", "-c"],
        "args": ["bash /etc/cont-init.d/89-copy-customfiles.sh"],
        "volumeMounts": [{"name": "confd", "mountPath": "/conf.d"}],
    }
    ds = daemonset([], [{"name": "confd", "configMap": {"name": "datadog-confd"}}], init=[init])
    snap = snapshot(configmap("datadog-confd", {"istio.yaml": ISTIOD_CONF}), ds)
    assert summary(snap) == [(CONFIGMAP, "ConfigMap default/datadog-confd", "/conf.d/istio.yaml", None, False)]


def test_default_file_is_shadowed_by_a_regular_one():
    snap = snapshot(
        configmap(data={"conf.yaml": MIXER_CONF, "conf.yaml.default": ISTIOD_CONF}),
        daemonset(
            [{"name": "istio-config", "mountPath": "/etc/datadog-agent/conf.d/istio.d"}],
            [cm_volume()],
        ),
    )
    assert [(c.file_name, c.effective) for c in istio_check_configs(snap)] == [
        ("conf.yaml", True),
        ("conf.yaml.default", False),
    ]


def test_dd_confd_path_moves_the_read_folder():
    snap = snapshot(
        configmap(),
        daemonset(
            [{"name": "istio-config", "mountPath": "/opt/conf/istio.d"}],
            [cm_volume()],
            env=[{"name": "DD_CONFD_PATH", "value": "/opt/conf"}],
        ),
    )
    assert [c.read_path for c in istio_check_configs(snap)] == ["/opt/conf/istio.d/conf.yaml"]


def test_invalid_yaml_and_missing_instances():
    bad = "init_config:\ninstances:\n  - istio_mesh_endpoint: http://x:42422/metrics\n   mixer_endpoint: y\n"
    snap = snapshot(
        configmap(data={"conf.yaml": bad, "other.yaml": "init_config: {}\n"}),
        daemonset([{"name": "istio-config", "mountPath": "/conf.d/istio.d"}], [cm_volume()]),
    )
    first, second = istio_check_configs(snap)
    assert (first.file_name, first.parsed, first.yaml_error_line, first.effective) == (
        "conf.yaml",
        None,
        4,
        False,
    )
    assert first.problems[0].startswith("not valid YAML (line 4 of key conf.yaml)")
    assert (second.file_name, second.effective) == ("other.yaml", False)
    assert second.problems == ("has no `instances` list",)


def test_content_recognition():
    assert looks_like_istio_check(MIXER_CONF)
    assert looks_like_istio_check(ISTIOD_CONF)
    assert not looks_like_istio_check("instances:\n  - host: redis\n")
    assert looks_like_istio_check("instances:\n - istiod_endpoint: x\n  bad: [\n")
    assert parse_check_yaml("a: 1\nb: [\n")[2] == 3


# -- Autodiscovery annotations ----------------------------------------------------------------


def annotated(annotations: dict[str, str], kind: str = "Deployment") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": "istio-telemetry", "namespace": "istio-system"},
        "spec": {
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {"containers": [{"name": "mixer", "image": "docker.io/istio/mixer:1.0.7"}]},
            }
        },
    }


def test_ad_annotations_v1():
    ds = daemonset([], [])
    deployment = annotated(
        {
            "ad.datadoghq.com/mixer.check_names": '["prometheus", "istio"]',
            "ad.datadoghq.com/mixer.init_configs": "[{}, {}]",
            "ad.datadoghq.com/mixer.instances": (
                '[{"prometheus_url": "http://%%host%%:9093/metrics"}, '
                '{"istio_mesh_endpoint": "http://%%host%%:42422/metrics"}]'
            ),
        }
    )
    [config] = istio_check_configs(snapshot(ds, deployment))
    assert (config.agent, config.source_kind, str(config.source_ref), config.container) == (
        None,
        AD_ANNOTATIONS,
        "Deployment istio-system/istio-telemetry",
        "mixer",
    )
    assert config.instances == ({"istio_mesh_endpoint": "http://%%host%%:42422/metrics"},)
    [endpoint] = configured_endpoints(snapshot(ds, deployment))
    assert (endpoint.host, endpoint.service, endpoint.port, endpoint.era_hint) == (
        "%%host%%",
        None,
        42422,
        "mixer",
    )


def test_ad_annotations_v2_and_unknown_container():
    deployment = annotated(
        {
            "ad.datadoghq.com/proxy.checks": '{"istio": {"init_config": {}, "instances": '
            '[{"istio_mesh_endpoint": "http://%%host%%:15020/stats/prometheus"}]}}',
        }
    )
    [config] = istio_check_configs(snapshot(deployment))
    assert config.source_kind == AD_ANNOTATIONS_V2
    assert config.problems == ("names container 'proxy', which the pod does not have",)
    assert config.effective is False
    assert configured_endpoints(snapshot(deployment)) == []
    [endpoint] = configured_endpoints(snapshot(deployment), include_unread=True)
    assert endpoint.era_hint == "istiod"


def test_ad_annotations_on_owned_pods_are_not_counted_twice():
    deployment = annotated(
        {
            "ad.datadoghq.com/mixer.check_names": '["istio"]',
            "ad.datadoghq.com/mixer.init_configs": "[{}]",
            "ad.datadoghq.com/mixer.instances": '[{"mixer_endpoint": "http://%%host%%:9093/metrics"}]',
        }
    )
    replicaset = copy.deepcopy(deployment)
    replicaset["kind"] = "ReplicaSet"
    replicaset["metadata"] = {
        "name": "istio-telemetry-5d8b",
        "namespace": "istio-system",
        "ownerReferences": [{"kind": "Deployment", "name": "istio-telemetry", "controller": True}],
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "istio-telemetry-5d8b-x",
            "namespace": "istio-system",
            "annotations": deployment["spec"]["template"]["metadata"]["annotations"],
            "ownerReferences": [{"kind": "ReplicaSet", "name": "istio-telemetry-5d8b", "controller": True}],
        },
        "spec": {"containers": [{"name": "mixer", "image": "docker.io/istio/mixer:1.0.7"}]},
    }
    snap = snapshot(deployment, replicaset, pod)
    assert [str(c.source_ref) for c in istio_check_configs(snap)] == ["Deployment istio-system/istio-telemetry"]
    ctx = Context(snap)
    istio_check_configs(ctx)
    assert ctx.kinds_read == {
        "DaemonSet",
        "Deployment",
        "Pod",
        "ReplicaSet",
        "StatefulSet",
        "ReplicationController",
        "Job",
        "CronJob",
    }


V2_ISTIO = '{"istio": {"instances": [{"istiod_endpoint": "http://%%host%%:15014/metrics"}]}}'


def test_ad_annotation_for_the_injected_sidecar_names_a_container_the_template_lacks():
    deployment = annotated({"ad.datadoghq.com/istio-proxy.checks": V2_ISTIO})
    [config] = istio_check_configs(snapshot(deployment))
    assert (config.problems, config.effective, config.container) == ((), True, "istio-proxy")


def test_ad_v2_checks_hides_the_v1_annotations_of_the_same_container():
    deployment = annotated(
        {
            "ad.datadoghq.com/mixer.checks": V2_ISTIO,
            "ad.datadoghq.com/mixer.check_names": '["istio"]',
            "ad.datadoghq.com/mixer.init_configs": "[{}]",
            "ad.datadoghq.com/mixer.instances": '[{"mixer_endpoint": "http://%%host%%:9093/metrics"}]',
        }
    )
    [config] = istio_check_configs(snapshot(daemonset([], [], image="gcr.io/datadoghq/agent:7.60.1"), deployment))
    assert (config.source_kind, config.file_name) == (AD_ANNOTATIONS_V2, "ad.datadoghq.com/mixer.checks")
    assert [e.key for e in configured_endpoints(snapshot(deployment))] == ["istiod_endpoint"]


def test_ad_v2_on_agents_older_than_7_36_is_not_read_and_v1_is():
    deployment = annotated(
        {
            "ad.datadoghq.com/mixer.checks": V2_ISTIO,
            "ad.datadoghq.com/mixer.check_names": '["istio"]',
            "ad.datadoghq.com/mixer.init_configs": "[{}]",
            "ad.datadoghq.com/mixer.instances": '[{"mixer_endpoint": "http://%%host%%:9093/metrics"}]',
        }
    )
    configs = istio_check_configs(snapshot(daemonset([], [], image="gcr.io/datadoghq/agent:7.35.2"), deployment))
    assert [(c.source_kind, c.problems, c.effective) for c in configs] == [
        (AD_ANNOTATIONS, (), True),
        (
            AD_ANNOTATIONS_V2,
            ("needs Agent 7.36 or later (v2 annotations); the node agents run 7.35.2",),
            False,
        ),
    ]


def test_malformed_ad_annotations_naming_istio_are_problems_not_errors():
    deployment = annotated(
        {
            "ad.datadoghq.com/mixer.checks": '{"istio": {"instances": [}}',
            "ad.datadoghq.com/other.check_names": '["istio"',
            "ad.datadoghq.com/third.checks": '{"redisdb": [',
        }
    )
    deployment["spec"]["template"]["spec"]["containers"] += [{"name": "other"}, {"name": "third"}]
    configs = istio_check_configs(snapshot(deployment))
    assert [(c.file_name, c.problems[0].split(" (")[0], c.effective) for c in configs] == [
        ("ad.datadoghq.com/mixer.checks", "is not valid JSON", False),
        ("ad.datadoghq.com/other.check_names", "is not valid JSON", False),
    ]


def test_ad_annotations_on_a_workloads_own_metadata_are_never_read():
    deployment = annotated({})
    deployment["metadata"]["annotations"] = {"ad.datadoghq.com/mixer.checks": V2_ISTIO}
    [config] = istio_check_configs(snapshot(deployment))
    assert config.problems == (
        "is on the Deployment's own metadata; the agent reads Autodiscovery annotations from pods only "
        "(spec.template.metadata.annotations)",
    )
    assert config.effective is False


def test_ad_v1_length_mismatch_is_a_problem():
    deployment = annotated(
        {
            "ad.datadoghq.com/mixer.check_names": '["istio", "x"]',
            "ad.datadoghq.com/mixer.instances": '[{"mixer_endpoint": "u"}]',
        }
    )
    [config] = istio_check_configs(snapshot(deployment))
    assert config.problems == ("ad.datadoghq.com/mixer.instances does not list one instance per check name",)


# -- endpoints and eras ---------------------------------------------------------------------------


def test_configured_endpoints_of_a_configmap():
    snap = snapshot(
        configmap(),
        daemonset([{"name": "istio-config", "mountPath": "/conf.d/istio.d"}], [cm_volume()]),
    )
    assert [(e.key, e.service, e.namespace, e.port, e.path, e.era_hint) for e in configured_endpoints(snap)] == [
        ("istio_mesh_endpoint", "istio-telemetry", "istio-system", 42422, "/metrics", "mixer"),
        ("mixer_endpoint", "istio-telemetry", "istio-system", 9093, "/metrics", "mixer"),
    ]


def test_one_label_host_is_in_the_agents_namespace():
    snap = snapshot(
        configmap(data={"conf.yaml": "instances:\n  - istiod_endpoint: http://istiod:15014/metrics\n"}),
        daemonset([{"name": "istio-config", "mountPath": "/conf.d/istio.d"}], [cm_volume()]),
    )
    [endpoint] = configured_endpoints(snap)
    assert (endpoint.service, endpoint.namespace) == ("istiod", "default")


@pytest.mark.parametrize(
    ("key", "port", "path", "host", "era"),
    [
        ("mixer_endpoint", 15014, "/metrics", "istio-telemetry.istio-system", "mixer"),
        ("istiod_endpoint", 15014, "/metrics", "istiod.istio-system", "istiod"),
        ("istio_mesh_endpoint", 42422, "/metrics", "istio-telemetry.istio-system", "mixer"),
        ("istio_mesh_endpoint", 15020, "/stats/prometheus", "%%host%%", "istiod"),
        ("istio_mesh_endpoint", 15090, "/stats/prometheus", "%%host%%", "istiod"),
        ("istio_mesh_endpoint", 8080, "/metrics", "prom.monitoring", "unknown"),
        ("pilot_endpoint", 9093, "/metrics", "istio-pilot.istio-system", "mixer"),
    ],
)
def test_era_hint(key, port, path, host, era):
    assert era_hint(key, port, path, host) == era


def test_recommended_conf_per_version():
    assert recommended_conf_yaml(MeshInfo("1.0.7", "mixer", "istio-system"), True) == (
        "init_config:\n\ninstances:\n"
        "- istio_mesh_endpoint: http://istio-telemetry.istio-system:42422/metrics\n"
        "  mixer_endpoint: http://istio-telemetry.istio-system:9093/metrics\n"
        "  send_histograms_buckets: true\n"
    )
    assert "istio-telemetry.istio-system:15014" in recommended_conf_yaml(
        MeshInfo("1.4.10", "mixer", "istio-system"), True
    )
    assert recommended_conf_yaml(MeshInfo("1.30.3", "istiod", "istio-system"), False) == (
        "init_config:\n\ninstances:\n"
        "- use_openmetrics: true\n"
        "  istiod_endpoint: http://istiod.istio-system:15014/metrics\n"
        "  send_histograms_buckets: true\n"
    )
    assert "42422" in recommended_conf_yaml(MeshInfo("1.6.14", "istiod", "istio-system"), True)


@pytest.mark.parametrize(
    ("image", "env", "expected"),
    [
        ("datadog/agent:6.10.2", [], False),
        ("datadog/agent:6.20.0", [], True),
        ("gcr.io/datadoghq/agent:7.60.1", [], True),
        ("datadog/agent:latest", [], True),
        (
            "gcr.io/datadoghq/agent:7.60.1",
            [{"name": "DD_IGNORE_AUTOCONF", "value": "redisdb istio"}],
            False,
        ),
    ],
)
def test_agent_has_auto_conf(image, env, expected):
    assert agent_has_auto_conf(Snapshot(), daemonset([], [], env=env, image=image)) is expected


# -- the check-config rules' remediations, on their fixtures ---------------------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rules"


def findings_of(rule_id: str, case: str) -> list[Any]:
    from meshdoctor_rules.check_config import RULES

    from meshdoctor.engine import run
    from meshdoctor.sources import load_offline

    [rule] = [r for r in RULES if r.id == rule_id]
    snap, source = load_offline([str(FIXTURES / rule_id / case)], None)
    return list(run([rule], snap, source).findings)


def test_md205_moves_the_mount_where_the_agent_reads():
    [finding] = findings_of("MD205", "failing")
    [manifest] = finding.remediation.manifests
    fixed = yaml.safe_load(manifest)
    mounts = fixed["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert mounts == [{"name": "istio-config", "mountPath": "/conf.d/istio.d"}]
    [finding] = findings_of("MD205", "failing-command-replaces-entrypoint")
    fixed = yaml.safe_load(finding.remediation.manifests[0])
    assert fixed["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] == (
        "/etc/datadog-agent/conf.d/istio.d"
    )


def test_md210_rewrites_ports_in_place_and_keys_per_era():
    [finding] = findings_of("MD210", "failing-monitoring-port")
    conf = yaml.safe_load(finding.remediation.manifests[0])["data"]["conf.yaml"]
    assert "istio-telemetry.istio-system:15014/metrics" in conf
    assert ":9093" not in conf
    assert finding.remediation.safe is True
    [finding] = findings_of("MD210", "failing")
    conf = yaml.safe_load(finding.remediation.manifests[0])["data"]["conf.yaml"]
    assert yaml.safe_load(conf)["instances"] == [
        {
            "use_openmetrics": True,
            "istiod_endpoint": "http://istiod.istio-system:15014/metrics",
            "send_histograms_buckets": True,
        }
    ]


def test_md206_projects_the_key_that_holds_the_configuration():
    [finding] = findings_of("MD206", "failing")
    fixed = yaml.safe_load(finding.remediation.manifests[0])
    volume = fixed["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["items"] == [{"key": "conf.yaml", "path": "conf.yaml"}]
    assert [e.value for e in finding.evidence][-1] == (
        'MountVolume.SetUp failed for volume "istio-config" : configmap references non-existent config key: istio.yaml'
    )


def test_md207_copies_the_configmap_into_the_agents_namespace():
    [finding] = findings_of("MD207", "failing")
    copy_ = yaml.safe_load(finding.remediation.manifests[0])
    assert (copy_["kind"], copy_["metadata"]) == (
        "ConfigMap",
        {"name": "istio-config", "namespace": "datadog"},
    )


def test_md209_points_at_the_namespace_where_the_service_is():
    [finding] = findings_of("MD209", "failing")
    assert finding.remediation.summary == (
        "use http://istio-telemetry.istio-system:42422/metrics instead of http://istio-telemetry.istio:42422/metrics."
    )


# -- sidecar stats ports (MD210 before 1.6, MD212 from 1.7) and annotations (MD208, MD202) ---------


def test_md210_merged_port_before_istio_1_6_is_fixed_to_envoys_port():
    [finding] = findings_of("MD210", "failing-merged-port-1.5")
    assert finding.message == (
        "Deployment bookinfo/reviews: istio_mesh_endpoint http://%%host%%:15020/stats/prometheus: pilot-agent "
        "serves /stats/prometheus on 15020 from Istio 1.6; in 1.5.10 that path is not on 15020 (HTTP 404), the "
        "sidecar's metrics are on Envoy's 15090."
    )
    assert finding.remediation.summary.endswith("use http://%%host%%:15090/stats/prometheus.")


def test_md210_merged_port_in_the_mixer_era_points_at_mixer():
    endpoint = CheckEndpoint(
        None, ObjectRef("ConfigMap", "default", "c"), "istio_mesh_endpoint",
        "http://%%host%%:15020/stats/prometheus", "%%host%%", None, None, 15020, "/stats/prometheus", "istiod",
    )  # fmt: skip
    info = MeshInfo(version="1.4.10", era="mixer", namespace="istio-system")
    assert era_problem(endpoint, info, True) == (
        "pilot-agent serves /stats/prometheus on 15020 from Istio 1.6, and the mesh metrics of 1.4.10 (Mixer era) "
        "come from istio-telemetry:42422",
        None,
    )
    assert era_problem(endpoint, MeshInfo(version="1.6.14", era="istiod", namespace="istio-system"), False) is None


def test_md212_is_advice_with_the_merged_url_to_review():
    [finding] = findings_of("MD212", "failing")
    assert finding.severity is Severity.INFO
    assert finding.message == (
        "Deployment bookinfo/reviews: istio_mesh_endpoint http://%%host%%:15090/stats/prometheus scrapes Envoy's "
        "own stats (15090); on Istio 1.22.3 the merged port 15020 serves them too, with pilot-agent's metrics "
        "(istio.mesh.agent.*), which are not collected. The mesh's request metrics still come."
    )
    assert finding.remediation.safe is False
    assert "use http://%%host%%:15020/stats/prometheus" in finding.remediation.summary
    [finding] = findings_of("MD212", "failing-auto-conf-agent-7-40")
    assert finding.objects == (ObjectRef("DaemonSet", "default", "datadog-agent"),)
    assert findings_of("MD212", "passing-istio-1-6") == []


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("gcr.io/datadoghq/agent:7.43.1", True),
        ("gcr.io/datadoghq/agent:7.44.0", False),
        ("gcr.io/datadoghq/agent:7.19.2", False),  # no auto_conf.yaml yet
        ("gcr.io/datadoghq/agent:6.40.0", False),  # Agent 6 is not judged
        ("gcr.io/datadoghq/agent:latest", False),
    ],
)
def test_auto_conf_scrapes_envoy_port_by_agent_version(image: str, expected: bool):
    from meshdoctor.datadog.sidecar_stats import auto_conf_scrapes_envoy_port

    workload = daemonset([], [], image=image)
    assert auto_conf_scrapes_envoy_port(snapshot(workload), workload) is expected


def test_md208_names_the_object_and_the_annotation_whose_json_does_not_parse():
    [finding] = findings_of("MD208", "failing-annotation-json")
    assert finding.objects == (ObjectRef("Deployment", "istio-system", "istiod"),)
    assert finding.message.startswith(
        "Deployment istio-system/istiod: the Autodiscovery annotation ad.datadoghq.com/discovery.checks is not "
        "valid JSON (Expecting property name enclosed in double quotes"
    )
    [evidence] = finding.evidence
    assert evidence.path == "spec.template.metadata.annotations['ad.datadoghq.com/discovery.checks']"
    assert findings_of("MD208", "passing-annotation") == []


def test_an_annotation_on_istiod_pods_configures_the_check_with_the_pod_as_endpoint():
    """%%host%% is each istiod pod's IP: on 1.5, whose istiod Service lacks 15014, the pod still serves it."""
    from meshdoctor_rules import RULES

    from meshdoctor.engine import run
    from meshdoctor.sources import load_offline

    snap, source = load_offline([str(FIXTURES / "MD208" / "passing-annotation")], None)
    deployment = snap.get("Deployment", "istio-system", "istiod")
    assert deployment is not None
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "docker.io/istio/pilot:1.5.10"
    [endpoint] = configured_endpoints(snap)
    assert (endpoint.key, endpoint.host, endpoint.service, endpoint.port) == (
        "istiod_endpoint",
        "%%host%%",
        None,
        15014,
    )
    selected = [r for r in RULES if r.id.startswith("MD2")]
    assert [(f.rule, str(f.severity)) for f in run(selected, snap, source).findings] == []
