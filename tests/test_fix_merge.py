"""`fixes.merge`: several whole corrected copies of one object become one, as Kubernetes merges lists."""

from __future__ import annotations

from meshdoctor.fixes.merge import merge_fixes

BASE = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "agent", "namespace": "default"},
    "spec": {
        "template": {
            "metadata": {"labels": {"app": "agent"}},
            "spec": {
                "containers": [
                    {
                        "name": "agent",
                        "image": "datadog/agent:latest",
                        "env": [{"name": "DD_SITE", "value": "datadoghq.com"}, {"name": "DD_API_KEY", "value": "x"}],
                        "volumeMounts": [{"name": "conf", "mountPath": "/conf.d"}],
                    },
                    {"name": "trace-agent", "image": "datadog/agent:latest"},
                ],
                "volumes": [{"name": "conf", "configMap": {"name": "istio"}}],
            },
        }
    },
}


def changed(path_and_values):
    import copy

    obj = copy.deepcopy(BASE)
    for path, value in path_and_values:
        node = obj
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return obj


def containers(obj):
    return obj["spec"]["template"]["spec"]["containers"]


def test_two_fixes_of_different_fields_both_land():
    image = changed([])
    containers(image)[0]["image"] = "datadog/agent:7.60.1"
    account = changed([])
    account["spec"]["template"]["spec"]["serviceAccountName"] = "datadog-agent"
    merged, conflicts = merge_fixes(BASE, [image, account])
    assert conflicts == []
    assert containers(merged)[0]["image"] == "datadog/agent:7.60.1"
    assert merged["spec"]["template"]["spec"]["serviceAccountName"] == "datadog-agent"
    assert containers(merged)[1] == BASE["spec"]["template"]["spec"]["containers"][1]


def test_env_merges_by_name_mounts_by_path_volumes_by_name():
    secret = changed([])
    containers(secret)[0]["env"][1] = {"name": "DD_API_KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    mounts = changed([])
    containers(mounts)[0]["volumeMounts"] = [
        {"name": "conf", "mountPath": "/etc/datadog-agent/conf.d/istio.d"},
    ]
    logs = changed([])
    containers(logs)[0]["env"].append({"name": "DD_LOGS_ENABLED", "value": "true"})
    logs["spec"]["template"]["spec"]["volumes"].append({"name": "pointdir", "hostPath": {"path": "/var/lib"}})
    merged, conflicts = merge_fixes(BASE, [secret, mounts, logs])
    assert conflicts == []
    agent = containers(merged)[0]
    assert agent["env"] == [
        {"name": "DD_SITE", "value": "datadoghq.com"},
        {"name": "DD_API_KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "DD_LOGS_ENABLED", "value": "true"},
    ]
    # the mount at the wrong path goes, the one at the right path comes (keyed by mountPath)
    assert agent["volumeMounts"] == [{"name": "conf", "mountPath": "/etc/datadog-agent/conf.d/istio.d"}]
    assert [v["name"] for v in merged["spec"]["template"]["spec"]["volumes"]] == ["conf", "pointdir"]


def test_a_field_set_two_ways_keeps_the_first_and_names_the_conflict():
    first, second = changed([]), changed([])
    containers(first)[0]["image"] = "datadog/agent:7.60.1"
    containers(second)[0]["image"] = "datadog/agent:7.50.0"
    merged, conflicts = merge_fixes(BASE, [first, second])
    assert containers(merged)[0]["image"] == "datadog/agent:7.60.1"
    [conflict] = conflicts
    assert conflict.path == "spec.template.spec.containers[agent].image"
    assert (conflict.kept, conflict.dropped) == ("datadog/agent:7.60.1", "datadog/agent:7.50.0")


def test_the_same_change_twice_is_no_conflict():
    first, second = changed([]), changed([])
    for fix in (first, second):
        containers(fix)[0]["image"] = "datadog/agent:7.60.1"
    merged, conflicts = merge_fixes(BASE, [first, second])
    assert conflicts == [] and containers(merged)[0]["image"] == "datadog/agent:7.60.1"


def test_unkeyed_lists_merge_as_sets():
    base = {"kind": "ServiceEntry", "spec": {"hosts": ["a.example", "old.example"]}}
    add_b = {"kind": "ServiceEntry", "spec": {"hosts": ["a.example", "old.example", "b.example"]}}
    drop_old = {"kind": "ServiceEntry", "spec": {"hosts": ["a.example"]}}
    merged, conflicts = merge_fixes(base, [add_b, drop_old])
    assert conflicts == [] and merged["spec"]["hosts"] == ["a.example", "b.example"]


def test_two_new_objects_of_one_name_are_united():
    one = {"kind": "ServiceEntry", "spec": {"hosts": ["a"], "ports": [{"name": "https", "number": 443}]}}
    two = {"kind": "ServiceEntry", "spec": {"hosts": ["b"], "ports": [{"name": "tls-10516", "number": 10516}]}}
    merged, conflicts = merge_fixes({}, [one, two])
    assert conflicts == []
    assert merged["spec"] == {
        "hosts": ["a", "b"],
        "ports": [{"name": "https", "number": 443}, {"name": "tls-10516", "number": 10516}],
    }


def test_a_removed_field_is_removed():
    drop = changed([])
    del containers(drop)[0]["volumeMounts"]
    merged, _ = merge_fixes(BASE, [drop])
    assert "volumeMounts" not in containers(merged)[0]
