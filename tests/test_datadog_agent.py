"""Agent detection, env resolution (never secrets), DD_SITE, products, and the intake table."""

from __future__ import annotations

import pytest

from meshdoctor.datadog.agent import (
    FROM_SECRET,
    agent_container,
    agent_products,
    agent_version,
    agent_workloads,
    datadog_site,
    egress_workloads,
    env_flag,
    env_value,
    is_agent_image,
    logs_transports,
    parse_override,
    required_endpoints,
)
from meshdoctor.datadog.sites import (
    DEFAULT_SITE,
    SITES,
    IntakeEndpoint,
    intake_endpoints,
    is_known_site,
    normalize_site,
    site_of_host,
    site_value_problem,
    versioned_metrics_host,
)
from meshdoctor.kube.workloads import pod_template
from meshdoctor.rule import Context
from meshdoctor.snapshot import Snapshot


def workload(
    kind: str,
    name: str,
    containers: list,
    labels: dict | None = None,
    namespace: str = "datadog",
    template_labels: dict | None = None,
) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "template": {
                "metadata": {"labels": template_labels or {}},
                "spec": {"containers": containers},
            }
        },
    }


def agent(
    env: list | None = None,
    env_from: list | None = None,
    image: str = "gcr.io/datadoghq/agent:7.49.1",
    name: str = "datadog-agent",
) -> dict:
    container: dict = {"name": "agent", "image": image, "env": env or []}
    if env_from is not None:
        container["envFrom"] = env_from
    return workload("DaemonSet", name, [container])


def snapshot(*objs: dict) -> Snapshot:
    snap = Snapshot()
    for obj in objs:
        snap.add(obj)
    return snap


@pytest.mark.parametrize(
    "image,expected",
    [
        ("datadog/agent:latest", True),
        ("datadog/agent:6.9.0", True),
        ("docker.io/datadog/agent:7", True),
        ("gcr.io/datadoghq/agent:7.49.1", True),
        ("public.ecr.aws/datadog/agent:7.49.1-jmx", True),
        ("datadoghq.azurecr.io/agent:7", True),
        ("registry.datadoghq.com/agent:7.60.0", True),
        ("myregistry.azurecr.io/agent:7", False),
        ("registry.corp:5000/mirror/datadog/agent@sha256:" + "a" * 64, True),
        ("datadog/agent", True),
        ("datadog/cluster-agent:1.2.0", False),
        ("gcr.io/datadoghq/cluster-agent:7.49.1", False),
        ("datadog/dogstatsd:7", False),
        ("someone/agent:1", False),
        ("nginx", False),
    ],
)
def test_agent_images(image, expected):
    assert is_agent_image(image) is expected


def test_agent_workloads_by_image_and_labels_not_cluster_agent():
    snap = snapshot(
        workload("DaemonSet", "by-image", [{"name": "agent", "image": "datadog/agent:latest"}]),
        workload(
            "DaemonSet",
            "helm",
            [{"name": "agent", "image": "mirror.local/dd:7"}],
            template_labels={
                "app.kubernetes.io/name": "datadog",
                "app.kubernetes.io/component": "agent",
            },
        ),
        workload(
            "DaemonSet",
            "operator",
            [{"name": "agent", "image": "mirror.local/dd:7"}],
            labels={"agent.datadoghq.com/component": "agent"},
        ),
        workload(
            "DaemonSet",
            "app-label",
            [{"name": "agent", "image": "mirror.local/dd:7"}],
            template_labels={"app": "datadog-agent", "app.kubernetes.io/component": "agent"},
        ),
        workload(
            "Deployment",
            "clusterchecks",
            [{"name": "agent", "image": "gcr.io/datadoghq/agent:7.49.1"}],
        ),
        workload(
            "Deployment",
            "cluster-agent",
            [{"name": "cluster-agent", "image": "gcr.io/datadoghq/cluster-agent:7.49.1"}],
            template_labels={
                "app.kubernetes.io/name": "datadog",
                "app.kubernetes.io/component": "agent",
            },
        ),
        workload(
            "Deployment",
            "dca-operator",
            [{"name": "cluster-agent", "image": "mirror.local/dca:7"}],
            labels={"agent.datadoghq.com/component": "cluster-agent"},
        ),
        workload(
            "DaemonSet",
            "fluentd",
            [{"name": "fluentd", "image": "fluent/fluentd:v1"}],
            template_labels={"app": "datadog-agent"},
        ),
        workload("StatefulSet", "sts", [{"name": "agent", "image": "datadog/agent:7"}]),
    )
    ctx = Context(snap)
    names = [w["metadata"]["name"] for w in agent_workloads(ctx)]
    assert names == ["app-label", "by-image", "helm", "operator", "clusterchecks"]
    assert ctx.kinds_read == {"DaemonSet", "Deployment"}
    ctx = Context(snap)
    assert [w["metadata"]["name"] for w in agent_workloads(ctx, kinds=("DaemonSet",))] == [
        "app-label",
        "by-image",
        "helm",
        "operator",
    ]
    assert ctx.kinds_read == {"DaemonSet"}


def test_agent_container_choice():
    helm = {
        "spec": {
            "containers": [
                {"name": "trace-agent", "image": "gcr.io/datadoghq/agent:7.49.1"},
                {"name": "agent", "image": "gcr.io/datadoghq/agent:7.49.1"},
            ]
        }
    }
    assert agent_container(helm)["name"] == "agent"
    old = {
        "spec": {
            "containers": [
                {"name": "istio-proxy", "image": "istio/proxyv2:1.0.7"},
                {"name": "datadog-agent", "image": "datadog/agent:latest"},
            ]
        }
    }
    assert agent_container(old)["name"] == "datadog-agent"
    other = {
        "spec": {
            "containers": [
                {"name": "istio-proxy", "image": "istio/proxyv2:1.0.7"},
                {"name": "main", "image": "datadog/agent:7"},
            ]
        }
    }
    assert agent_container(other)["name"] == "main"
    assert agent_container({"spec": {"containers": [{"name": "x", "image": "nginx"}]}}) is None


@pytest.mark.parametrize(
    "image,version",
    [
        ("datadog/agent:6.9.0", "6.9.0"),
        ("gcr.io/datadoghq/agent:7.49.1-jmx", "7.49.1"),
        ("datadog/agent:latest", None),
        ("datadog/agent:7", None),
        ("datadog/agent@sha256:" + "a" * 64, None),
        ("datadog/agent", None),
    ],
)
def test_agent_version_from_tag(image, version):
    assert agent_version({"image": image}) == version


def config_map(name: str, data: dict, namespace: str = "datadog") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def test_datadog_site_default_literal_and_configmap():
    assert datadog_site(snapshot(), agent()) == DEFAULT_SITE
    assert datadog_site(snapshot(), agent([{"name": "DD_SITE", "value": " DatadogHQ.EU. "}])) == "datadoghq.eu"
    from_cm = agent([{"name": "DD_SITE", "valueFrom": {"configMapKeyRef": {"name": "dd-env", "key": "site"}}}])
    snap = snapshot(config_map("dd-env", {"site": "us5.datadoghq.com"}))
    ctx = Context(snap)
    assert datadog_site(ctx, from_cm) == "us5.datadoghq.com"
    assert "ConfigMap" in ctx.kinds_read
    assert datadog_site(snapshot(), from_cm) == DEFAULT_SITE  # ConfigMap missing
    from_secret = agent([{"name": "DD_SITE", "valueFrom": {"secretKeyRef": {"name": "dd", "key": "site"}}}])
    assert datadog_site(snapshot(), from_secret) == DEFAULT_SITE


def test_env_value_resolution_order_and_secrets():
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "dd-secret", "namespace": "datadog"},
        "data": {"DD_API_KEY": "MDEyMzQ1Njc4OWFiY2RlZg=="},
    }
    snap = snapshot(
        config_map(
            "base",
            {"DD_SITE": "datadoghq.eu", "DD_LOGS_ENABLED": "false", "SITE": "ap1.datadoghq.com"},
        ),
        config_map("override", {"DD_LOGS_ENABLED": "true"}),
        secret,
    )
    w = agent(
        env=[
            {"name": "DD_LOGS_ENABLED", "value": "false"},
            {"name": "DD_LOGS_ENABLED", "value": "true"},
            {
                "name": "DD_APP_KEY",
                "valueFrom": {"secretKeyRef": {"name": "dd-secret", "key": "app-key"}},
            },
            {"name": "DD_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        ],
        env_from=[
            {"configMapRef": {"name": "base"}},
            {"configMapRef": {"name": "override"}},
            {"prefix": "DD_", "configMapRef": {"name": "base"}},
            {"secretRef": {"name": "dd-secret"}},
        ],
    )
    template = pod_template(w)
    container = agent_container(template)

    def value(name: str) -> str | None:
        return env_value(snap, template, container, name, "datadog")

    assert value("DD_LOGS_ENABLED") == "true"  # env wins over envFrom; last duplicate wins
    assert value("DD_SITE") == "ap1.datadoghq.com"  # the prefixed source comes later and wins
    assert value("DD_API_KEY") == FROM_SECRET  # from a Secret: never read
    assert value("DD_APP_KEY") == FROM_SECRET
    assert value("DD_HOST") is None
    assert value("DD_UNSET") is None
    assert "MDEy" not in repr([value(n) for n in ("DD_API_KEY", "DD_APP_KEY")])
    # A workload's template has no namespace: the only ConfigMap of that name is used.
    assert env_value(snap, template, container, "DD_SITE") == "ap1.datadoghq.com"
    assert env_value(snap, template, None, "DD_SITE") is None


def on(*names: str) -> list:
    return [{"name": n, "value": "true"} for n in names]


def off(*names: str) -> list:
    return [{"name": n, "value": "false"} for n in names]


NO_APM = off("DD_APM_ENABLED")


@pytest.mark.parametrize(
    "env,image,expected",
    [
        # metrics always; APM on by default; remote config on by default from 7.47
        (
            [],
            "gcr.io/datadoghq/agent:7.49.1",
            ["metrics", "api-key-validation", "traces", "instrumentation-telemetry", "remote-config"],
        ),
        ([], "gcr.io/datadoghq/agent:7.46.0", ["metrics", "api-key-validation", "traces", "instrumentation-telemetry"]),
        ([], "datadog/agent:6.10.2", ["metrics", "api-key-validation"]),
        (
            NO_APM + off("DD_REMOTE_CONFIGURATION_ENABLED"),
            "gcr.io/datadoghq/agent:7.49.1",
            ["metrics", "api-key-validation"],
        ),
        # an unpinned image floats to a current 7.x: remote config on, both logs transports
        (
            NO_APM + on("DD_LOGS_ENABLED"),
            "datadog/agent:latest",
            [
                "metrics",
                "api-key-validation",
                "logs",
                "logs-tcp",
                "process",
                "orchestrator",
                "container-lifecycle",
                "container-images",
                "remote-config",
            ],
        ),
        (
            NO_APM + on("DD_LOGS_ENABLED"),
            "datadog/agent:7.49.1",
            ["metrics", "api-key-validation", "logs", "logs-tcp", "remote-config"],
        ),
        (NO_APM + on("DD_LOGS_ENABLED"), "datadog/agent:7.18.1", ["metrics", "api-key-validation", "logs-tcp"]),
        (NO_APM + on("DD_LOGS_ENABLED"), "datadog/agent:6.19.0", ["metrics", "api-key-validation", "logs", "logs-tcp"]),
        (NO_APM + on("DD_LOGS_ENABLED"), "datadog/agent:6.9.0", ["metrics", "api-key-validation", "logs-tcp"]),
        # explicit transports: HTTP switches win over TCP switches, as the agent reads them
        (
            NO_APM + on("DD_LOGS_ENABLED", "DD_LOGS_CONFIG_USE_HTTP"),
            "datadog/agent:6.9.0",
            ["metrics", "api-key-validation", "logs"],
        ),
        (
            NO_APM + on("DD_LOGS_ENABLED", "DD_LOGS_CONFIG_FORCE_USE_HTTP", "DD_LOGS_CONFIG_USE_TCP"),
            "datadog/agent:latest",
            [
                "metrics",
                "api-key-validation",
                "logs",
                "process",
                "orchestrator",
                "container-lifecycle",
                "container-images",
                "remote-config",
            ],
        ),
        (
            NO_APM + on("DD_LOGS_ENABLED", "DD_LOGS_CONFIG_FORCE_USE_TCP"),
            "datadog/agent:7.49.1",
            ["metrics", "api-key-validation", "logs-tcp", "remote-config"],
        ),
        (
            NO_APM + on("DD_LOGS_ENABLED", "DD_LOGS_CONFIG_USE_TCP"),
            "datadog/agent:7.49.1",
            ["metrics", "api-key-validation", "logs-tcp", "remote-config"],
        ),
        (
            on("DD_PROCESS_AGENT_ENABLED", "DD_ORCHESTRATOR_EXPLORER_ENABLED"),
            "datadog/agent:6.10.2",
            ["metrics", "api-key-validation", "process", "orchestrator"],
        ),
        (
            on("DD_REMOTE_CONFIGURATION_ENABLED") + NO_APM,
            "datadog/agent:7.40.0",
            ["metrics", "api-key-validation", "remote-config"],
        ),
        # booleans parse as strconv.ParseBool: "yes" is not true, so logs stay off
        (
            NO_APM + [{"name": "DD_LOGS_ENABLED", "value": "yes"}],
            "datadog/agent:7.49.1",
            ["metrics", "api-key-validation", "remote-config"],
        ),
        # Remote Configuration is off on ddog-gov.com unless configured
        (
            NO_APM + [{"name": "DD_SITE", "value": "ddog-gov.com"}],
            "datadog/agent:7.49.1",
            ["metrics", "api-key-validation"],
        ),
        # ... and on FIPS images (IsFed)
        (NO_APM, "gcr.io/datadoghq/agent:7.49.1-fips", ["metrics", "api-key-validation"]),
        # process checks in the core agent: explicit (Helm, 7.60+), always from 7.78; off with container collection off
        (
            NO_APM + on("DD_PROCESS_CONFIG_RUN_IN_CORE_AGENT_ENABLED"),
            "datadog/agent:7.60.0",
            [
                "metrics",
                "api-key-validation",
                "process",
                "orchestrator",
                "container-lifecycle",
                "container-images",
                "remote-config",
            ],
        ),
        (
            NO_APM + [{"name": "DD_PROCESS_CONFIG_CONTAINER_COLLECTION_ENABLED", "value": "false"}],
            "datadog/agent:7.80.0",
            [
                "metrics",
                "api-key-validation",
                "orchestrator",
                "container-lifecycle",
                "container-images",
                "remote-config",
            ],
        ),
        # the orchestrator explorer from 7.57, container lifecycle and images from 7.50
        (
            NO_APM,
            "datadog/agent:7.50.0",
            ["metrics", "api-key-validation", "container-lifecycle", "container-images", "remote-config"],
        ),
        (
            NO_APM,
            "datadog/agent:7.57.0",
            [
                "metrics",
                "api-key-validation",
                "orchestrator",
                "container-lifecycle",
                "container-images",
                "remote-config",
            ],
        ),
        # a SOCKS5 proxy sends 6.19+/7.19+ logs over TCP
        (
            NO_APM + on("DD_LOGS_ENABLED") + [{"name": "DD_LOGS_CONFIG_SOCKS5_PROXY_ADDRESS", "value": "proxy:1080"}],
            "datadog/agent:7.49.1",
            ["metrics", "api-key-validation", "logs-tcp", "remote-config"],
        ),
        # force_use_tcp does not exist before 7.36: a 7.30 agent ignores it
        (
            NO_APM + on("DD_LOGS_ENABLED", "DD_LOGS_CONFIG_FORCE_USE_TCP"),
            "datadog/agent:7.30.0",
            ["metrics", "api-key-validation", "logs", "logs-tcp"],
        ),
    ],
)
def test_agent_products_from_env_and_version(env, image, expected):
    assert agent_products(snapshot(), agent(env, image=image)) == expected


def test_helper_containers_turn_products_on():
    ds = agent(NO_APM + off("DD_REMOTE_CONFIGURATION_ENABLED"))
    containers = ds["spec"]["template"]["spec"]["containers"]
    containers.append({"name": "trace-agent", "image": "gcr.io/datadoghq/agent:7.49.1", "env": []})
    containers.append(
        {
            "name": "proc",
            "image": "gcr.io/datadoghq/agent:7.49.1",
            "command": ["process-agent", "-config=/etc/datadog-agent/datadog.yaml"],
        }
    )
    assert agent_products(snapshot(), ds) == [
        "metrics",
        "api-key-validation",
        "traces",
        "instrumentation-telemetry",
        "process",
    ]
    containers[1]["env"] = off("DD_APM_ENABLED")
    assert agent_products(snapshot(), ds) == ["metrics", "api-key-validation", "process"]


def test_logs_transports_say_why():
    assert logs_transports(snapshot(), agent(on("DD_LOGS_CONFIG_USE_TCP"))) == (
        ["tcp"],
        "DD_LOGS_CONFIG_USE_TCP=true",
    )
    # 6.19+/7.19+: HTTPS, with the TCP fallback the agent takes when its HTTPS test fails
    assert logs_transports(snapshot(), agent(image="datadog/agent:7.19.0")) == (
        ["https", "tcp"],
        "agent 7.19.0 sends logs over HTTPS",
    )
    assert logs_transports(snapshot(), agent(image="datadog/agent:7.18.9"))[0] == ["tcp"]
    assert logs_transports(snapshot(), agent(image="datadog/agent:7"))[0] == ["https", "tcp"]


def endpoints(env: list, image: str = "gcr.io/datadoghq/agent:7.49.1") -> list[tuple[str, str, int, str]]:
    return [(e.product, e.host, e.port, e.protocol) for e in required_endpoints(snapshot(), agent(env, image=image))]


def test_required_endpoints_per_site_and_product():
    env = [{"name": "DD_SITE", "value": "us5.datadoghq.com"}] + on(
        "DD_LOGS_ENABLED", "DD_PROCESS_AGENT_ENABLED", "DD_ORCHESTRATOR_EXPLORER_ENABLED"
    )
    assert endpoints(env) == [
        ("metrics", "7-49-1-app.agent.us5.datadoghq.com", 443, "HTTPS"),
        ("api-key-validation", "api.us5.datadoghq.com", 443, "HTTPS"),
        ("logs", "agent-http-intake.logs.us5.datadoghq.com", 443, "HTTPS"),
        ("traces", "trace.agent.us5.datadoghq.com", 443, "HTTPS"),
        ("instrumentation-telemetry", "instrumentation-telemetry-intake.us5.datadoghq.com", 443, "HTTPS"),
        ("process", "process.us5.datadoghq.com", 443, "HTTPS"),
        ("orchestrator", "orchestrator.us5.datadoghq.com", 443, "HTTPS"),
        ("remote-config", "config.us5.datadoghq.com", 443, "HTTPS"),
    ]
    latest_logs = NO_APM + on("DD_LOGS_ENABLED")
    assert endpoints(latest_logs, "datadog/agent:latest") == [
        ("metrics", "*.agent.datadoghq.com", 443, "HTTPS"),
        ("api-key-validation", "api.datadoghq.com", 443, "HTTPS"),
        ("logs", "agent-http-intake.logs.datadoghq.com", 443, "HTTPS"),
        ("logs-tcp", "agent-intake.logs.datadoghq.com", 10516, "TLS"),
        ("process", "process.datadoghq.com", 443, "HTTPS"),
        ("orchestrator", "orchestrator.datadoghq.com", 443, "HTTPS"),
        ("container-lifecycle", "contlcycle-intake.datadoghq.com", 443, "HTTPS"),
        ("container-images", "contimage-intake.datadoghq.com", 443, "HTTPS"),
        ("remote-config", "config.datadoghq.com", 443, "HTTPS"),
    ]
    eu_tcp = [{"name": "DD_SITE", "value": "datadoghq.eu"}] + NO_APM + on("DD_LOGS_ENABLED")
    assert endpoints(eu_tcp, "datadog/agent:6.9.0") == [
        ("metrics", "6-9-0-app.agent.datadoghq.eu", 443, "HTTPS"),
        ("api-key-validation", "app.datadoghq.eu", 443, "HTTPS"),
        ("logs-tcp", "agent-intake.logs.datadoghq.eu", 443, "TLS"),
    ]
    gov = [{"name": "DD_SITE", "value": "ddog-gov.com"}] + NO_APM + on("DD_LOGS_ENABLED")
    assert endpoints(gov, "datadog/agent:latest") == [
        ("metrics", "*.agent.ddog-gov.com", 443, "HTTPS"),
        ("api-key-validation", "api.ddog-gov.com", 443, "HTTPS"),
        ("logs", "agent-http-intake.logs.ddog-gov.com", 443, "HTTPS"),
        ("process", "process.ddog-gov.com", 443, "HTTPS"),
        ("orchestrator", "orchestrator.ddog-gov.com", 443, "HTTPS"),
        ("container-lifecycle", "contlcycle-intake.ddog-gov.com", 443, "HTTPS"),
        ("container-images", "contimage-intake.ddog-gov.com", 443, "HTTPS"),
    ]
    (first,) = required_endpoints(snapshot(), agent(NO_APM, image="datadog/agent:7.40.0"))[:1]
    assert first.why == "the core agent always sends metrics (site datadoghq.com)"
    assert first.address == "7-40-0-app.agent.datadoghq.com:443"


def test_required_endpoints_apply_url_overrides():
    env = (
        NO_APM
        + on("DD_LOGS_ENABLED", "DD_LOGS_CONFIG_USE_TCP")
        + [
            {"name": "DD_SITE", "value": "datadoghq.eu"},
            {"name": "DD_DD_URL", "value": "https://app.datadoghq.com"},
            {"name": "DD_URL", "value": "https://ignored.example.com"},
            {"name": "DD_LOGS_CONFIG_LOGS_DD_URL", "value": "logs-proxy.corp:10514"},
            {"name": "DD_REMOTE_CONFIGURATION_ENABLED", "value": "false"},
        ]
    )
    assert endpoints(env) == [
        ("metrics", "7-49-1-app.agent.datadoghq.com", 443, "HTTPS"),
        ("api-key-validation", "api.datadoghq.com", 443, "HTTPS"),
        ("logs-tcp", "logs-proxy.corp", 10514, "TLS"),
    ]
    proxy = [
        {"name": "DD_URL", "value": "http://dd-proxy.corp:3834/"},
        {"name": "DD_APM_DD_URL", "value": "https://apm-proxy.corp"},
        {"name": "DD_PROCESS_CONFIG_PROCESS_DD_URL", "value": "https://process-proxy.corp:8443"},
        {"name": "DD_LOGS_CONFIG_LOGS_DD_URL", "value": "logs-proxy.corp:3835"},
        {"name": "DD_LOGS_CONFIG_LOGS_NO_SSL", "value": "true"},
        {"name": "DD_REMOTE_CONFIGURATION_ENABLED", "value": "false"},
    ] + on("DD_PROCESS_AGENT_ENABLED", "DD_LOGS_ENABLED", "DD_LOGS_CONFIG_FORCE_USE_HTTP")
    assert endpoints(proxy) == [
        ("metrics", "dd-proxy.corp", 3834, "HTTP"),
        ("api-key-validation", "dd-proxy.corp", 3834, "HTTP"),
        ("logs", "logs-proxy.corp", 3835, "HTTP"),
        ("traces", "apm-proxy.corp", 443, "HTTPS"),
        ("instrumentation-telemetry", "instrumentation-telemetry-intake.datadoghq.com", 443, "HTTPS"),
        ("process", "process-proxy.corp", 8443, "HTTPS"),
    ]
    assert (
        endpoints(
            NO_APM + [{"name": "DD_DD_URL", "value": "https://app.datadoghq.com"}],
            "datadog/agent:7.49.1",
        )[0][1]
        == "7-49-1-app.agent.datadoghq.com"
    )


@pytest.mark.parametrize(
    "value,expected",
    [
        ("https://app.datadoghq.com", ("app.datadoghq.com", 443, "https")),
        ("http://proxy:3128/", ("proxy", 3128, "http")),
        (
            "agent-intake.logs.datadoghq.com:10516",
            ("agent-intake.logs.datadoghq.com", 10516, "https"),
        ),
        ("Host.Example.", ("host.example", 443, "https")),
        ("  ", None),
    ],
)
def test_parse_override(value, expected):
    assert parse_override(value) == expected


def test_site_of_host():
    assert site_of_host("*.datadoghq.eu") == "datadoghq.eu"
    assert site_of_host("app.us3.datadoghq.com") == "us3.datadoghq.com"
    assert site_of_host("7-49-1-app.agent.datadoghq.com") == "datadoghq.com"
    assert site_of_host("api.example.com") is None


def hosts(site: str, products, version=None) -> list[tuple[str, int, str]]:
    return [(e.host, e.port, e.protocol) for e in intake_endpoints(site, products, version)]


def test_site_values_that_are_hosts_name_the_site():
    assert site_value_problem("datadoghq.eu") is None
    assert site_value_problem("api.datadoghq.com") == (
        "DD_SITE=api.datadoghq.com is a host, not a site: the agent would send to hosts under "
        "api.datadoghq.com; the site is datadoghq.com"
    )
    assert "the site is datadoghq.eu" in site_value_problem("https://app.datadoghq.eu")
    assert site_value_problem("datadoghq.de").startswith("DD_SITE=datadoghq.de is not a Datadog site")


@pytest.mark.parametrize(
    ("value", "flag", "false"),
    [("true", True, False), ("1", True, False), ("TRUE", True, False), ("True", True, False), ("t", True, False)]
    + [("yes", False, True), ("on", False, True), (" true", False, True), ("TrUe", False, True)]
    + [("false", False, True), ("0", False, True), (None, False, False), ("", False, False)],
)
def test_env_booleans_parse_as_strconv_parse_bool(value, flag, false):
    from meshdoctor.datadog.agent import _env_false

    assert (env_flag(value), _env_false(value)) == (flag, false)


def test_intake_endpoints_per_site():
    # app.<site> is not an intake of a current agent; the API key is checked at api.<site>
    assert hosts("datadoghq.com", ["metrics", "api-key-validation", "logs", "logs-tcp"]) == [
        ("*.agent.datadoghq.com", 443, "https"),
        ("api.datadoghq.com", 443, "https"),
        ("agent-http-intake.logs.datadoghq.com", 443, "https"),
        ("agent-intake.logs.datadoghq.com", 10516, "tcp"),
    ]
    assert hosts("datadoghq.eu", ["logs-tcp"]) == [("agent-intake.logs.datadoghq.eu", 443, "tcp")]
    assert hosts("us3.datadoghq.com", ["logs", "logs-tcp"]) == [
        ("agent-http-intake.logs.us3.datadoghq.com", 443, "https")
    ]
    assert hosts("us5.datadoghq.com", ["metrics"], "7.49.1") == [("7-49-1-app.agent.us5.datadoghq.com", 443, "https")]
    # an agent older than its site's ddURLRegexp posts to app.<site>; before 7.18 it validates there
    assert hosts("ap1.datadoghq.com", ["metrics"], "7.40.0") == [("app.ap1.datadoghq.com", 443, "https")]
    assert hosts("datadoghq.com", ["api-key-validation"], "7.17.0") == [("app.datadoghq.com", 443, "https")]
    assert hosts("ap1.datadoghq.com", ["traces", "process", "orchestrator", "remote-config"]) == [
        ("trace.agent.ap1.datadoghq.com", 443, "https"),
        ("process.ap1.datadoghq.com", 443, "https"),
        ("orchestrator.ap1.datadoghq.com", 443, "https"),
        ("config.ap1.datadoghq.com", 443, "https"),
    ]
    assert hosts("ddog-gov.com", ["metrics", "logs-tcp"], "7.49.1") == [("7-49-1-app.agent.ddog-gov.com", 443, "https")]
    assert hosts("ap1.datadoghq.com", ["container-lifecycle", "container-images"]) == [
        ("contlcycle-intake.ap1.datadoghq.com", 443, "https"),
        ("contimage-intake.ap1.datadoghq.com", 443, "https"),
    ]
    assert intake_endpoints("", ["logs"]) == [
        IntakeEndpoint("agent-http-intake.logs.datadoghq.com", 443, "https", "logs")
    ]
    with pytest.raises(ValueError):
        intake_endpoints("datadoghq.com", ["bogus"])


def test_sites_and_versioned_hosts():
    assert set(SITES) >= {
        "datadoghq.com",
        "us3.datadoghq.com",
        "us5.datadoghq.com",
        "datadoghq.eu",
        "ap1.datadoghq.com",
        "ddog-gov.com",
    }
    assert is_known_site("DATADOGHQ.EU") and not is_known_site("datadoghq.de")
    assert normalize_site(None) == "datadoghq.com"
    assert versioned_metrics_host("datadoghq.com", "6.0.0") == "6-0-0-app.agent.datadoghq.com"
    assert versioned_metrics_host("datadoghq.com", None) == "*.agent.datadoghq.com"


# -- MD401: the corrected DaemonSet never carries a secret ----------------------------------------


def test_md401_remediation_redacts_literal_keys_and_keeps_everything_else():
    import yaml
    from meshdoctor_rules.rbac.md401_default_service_account import AgentServiceAccountUnset

    key = "0123456789abcdef0123456789abcdef"
    ds = agent(
        env=[
            {"name": "DD_API_KEY", "value": key},
            {"name": "DD_APP_KEY", "value": "f" * 40},
            {"name": "DD_CLUSTER_AGENT_AUTH_TOKEN", "value": "token-value-123456"},
            {"name": "DD_SITE", "value": "datadoghq.eu"},
        ],
        image="datadog/agent:latest",
    )
    ds["metadata"]["uid"] = "abc"
    ds["status"] = {"numberReady": 2}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "datadog-agent", "namespace": "datadog"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "datadog-agent",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "datadog-agent"}],
    }
    (finding,) = AgentServiceAccountUnset().check(Context(snapshot(ds, binding)))
    assert [str(o) for o in finding.objects] == [
        "DaemonSet datadog/datadog-agent",
        "RoleBinding datadog/datadog-agent",
    ]
    assert finding.remediation is not None
    text = "\n".join(finding.remediation.manifests)
    for secret in (key, "f" * 40, "token-value-123456"):
        assert secret not in text
        assert secret not in finding.message
        assert all(secret not in str(e) for e in finding.evidence)
    service_account, fixed = (yaml.safe_load(m) for m in finding.remediation.manifests)
    assert service_account == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "datadog-agent", "namespace": "datadog"},
    }
    spec = fixed["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "datadog-agent"
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert env["DD_SITE"] == "datadoghq.eu"
    assert all(
        env[name].startswith("<redacted") for name in ("DD_API_KEY", "DD_APP_KEY", "DD_CLUSTER_AGENT_AUTH_TOKEN")
    )
    assert "status" not in fixed and "uid" not in fixed["metadata"]
    assert spec["containers"][0]["image"] == "datadog/agent:latest"


@pytest.mark.parametrize(
    "service_account,subjects,expected",
    [
        (None, [{"kind": "ServiceAccount", "name": "datadog-agent", "namespace": "datadog"}], 1),
        (
            "default",
            [{"kind": "ServiceAccount", "name": "datadog-agent", "namespace": "datadog"}],
            1,
        ),
        (
            "datadog-agent",
            [{"kind": "ServiceAccount", "name": "datadog-agent", "namespace": "datadog"}],
            0,
        ),
        (None, [{"kind": "ServiceAccount", "name": "datadog-agent", "namespace": "other"}], 0),
        (
            None,
            [{"kind": "ServiceAccount", "name": "datadog-agent"}],
            0,
        ),  # no namespace in a CRB: nobody
        (
            None,
            [
                {"kind": "ServiceAccount", "name": "default", "namespace": "datadog"},
                {"kind": "ServiceAccount", "name": "datadog-agent", "namespace": "datadog"},
            ],
            0,
        ),
        (None, [], 0),
    ],
)
def test_md401_decisions(service_account, subjects, expected):
    from meshdoctor_rules.rbac.md401_default_service_account import AgentServiceAccountUnset

    ds = agent()
    if service_account is not None:
        ds["spec"]["template"]["spec"]["serviceAccountName"] = service_account
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "datadog-agent"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "datadog-agent",
        },
        "subjects": subjects,
    }
    assert len(list(AgentServiceAccountUnset().check(Context(snapshot(ds, binding))))) == expected


def test_an_https_proxy_replaces_every_https_intake_but_tcp_logs_and_no_proxy_hosts():
    """datadog-agent LoadProxyFromEnv: DD_PROXY_HTTPS over HTTPS_PROXY; no_proxy matches exactly."""
    env = (
        NO_APM
        + on("DD_LOGS_ENABLED", "DD_LOGS_CONFIG_USE_TCP")
        + [
            {"name": "HTTPS_PROXY", "value": "http://ignored.corp:1"},
            {"name": "DD_PROXY_HTTPS", "value": "http://proxy.corp:3128"},
            {"name": "DD_PROXY_NO_PROXY", "value": "config.datadoghq.com other.example"},
        ]
    )
    assert endpoints(env) == [
        ("metrics", "proxy.corp", 3128, "HTTP"),
        ("api-key-validation", "proxy.corp", 3128, "HTTP"),
        ("logs-tcp", "agent-intake.logs.datadoghq.com", 10516, "TLS"),
        ("remote-config", "config.datadoghq.com", 443, "HTTPS"),
    ]


def cluster_agent(env: list | None = None, image: str = "registry.datadoghq.com/cluster-agent:7.81.1") -> dict:
    return workload(
        "Deployment", "datadog-cluster-agent", [{"name": "cluster-agent", "image": image, "env": env or []}]
    )


def _endpoints(snap: Snapshot, obj: dict) -> list[tuple[str, str, int, str]]:
    return [(e.product, e.host, e.port, e.consequence.value) for e in required_endpoints(snap, obj)]


def test_cluster_agent_sends_metrics_orchestrator_and_remote_config_by_their_defaults():
    dca = cluster_agent()
    assert _endpoints(snapshot(dca), dca) == [
        ("metrics", "7-81-1-app.agent.datadoghq.com", 443, "error"),
        ("orchestrator", "orchestrator.datadoghq.com", 443, "warning"),
        ("remote-config", "config.datadoghq.com", 443, "warning"),
    ]


def test_cluster_agent_reads_its_own_site_and_switches():
    dca = cluster_agent(
        [
            {"name": "DD_SITE", "value": "datadoghq.eu"},
            {"name": "DD_ORCHESTRATOR_EXPLORER_ENABLED", "value": "false"},
            {"name": "DD_REMOTE_CONFIGURATION_ENABLED", "value": "false"},
        ]
    )
    assert _endpoints(snapshot(dca), dca) == [("metrics", "7-81-1-app.agent.datadoghq.eu", 443, "error")]


def test_old_cluster_agent_has_no_orchestrator_nor_remote_config_default():
    dca = cluster_agent(image="datadog/cluster-agent:7.45.0")
    assert _endpoints(snapshot(dca), dca) == [("metrics", "7-45-0-app.agent.datadoghq.com", 443, "error")]


def test_egress_workloads_add_the_cluster_agent_after_the_agents():
    runner = workload("Deployment", "datadog-clusterchecks", [{"name": "agent", "image": "datadog/agent:7.81.1"}])
    snap = snapshot(cluster_agent(), runner, agent())
    assert [(w["kind"], w["metadata"]["name"]) for w in egress_workloads(snap)] == [
        ("DaemonSet", "datadog-agent"),
        ("Deployment", "datadog-clusterchecks"),
        ("Deployment", "datadog-cluster-agent"),
    ]
    assert [w["metadata"]["name"] for w in agent_workloads(snap)] == ["datadog-agent", "datadog-clusterchecks"]


def test_cluster_check_runner_sends_only_the_metrics_of_its_checks():
    env = [
        {"name": "DD_CLC_RUNNER_ENABLED", "value": "true"},
        {"name": "DD_PROCESS_AGENT_ENABLED", "value": "false"},
        {"name": "DD_LOGS_ENABLED", "value": "false"},
        {"name": "DD_APM_ENABLED", "value": "false"},
        {"name": "DD_REMOTE_CONFIGURATION_ENABLED", "value": "false"},
    ]
    container = {"name": "agent", "image": "registry.datadoghq.com/agent:7.81.1", "env": env}
    runner = workload("Deployment", "datadog-clusterchecks", [container])
    assert _endpoints(snapshot(runner), runner) == [
        ("metrics", "7-81-1-app.agent.datadoghq.com", 443, "error"),
        ("api-key-validation", "api.datadoghq.com", 443, "info"),
    ]
    # Without the runner switch the same container is a plain agent with its version defaults.
    plain = workload("Deployment", "datadog-clusterchecks", [{**container, "env": env[1:]}])
    assert [p for p, *_ in _endpoints(snapshot(plain), plain)] == [
        "metrics",
        "api-key-validation",
        "process",
        "orchestrator",
        "container-lifecycle",
        "container-images",
    ]
