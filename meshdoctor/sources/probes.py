"""Active probes (`--probe`): do the telemetry endpoints the `istio` check scrapes answer.

The endpoints are the URLs the check's configuration names (the ConfigMap holding the check's
`instances`, or `ad.datadoghq.com/<container>.instances` pod annotations). Each URL of the form
`http://SERVICE.NAMESPACE[.svc[.cluster.local]]:PORT/PATH` is fetched through the API server's
service proxy (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`), so meshdoctor needs neither
a port-forward nor a route into the pod network. What is recorded for each URL, in
`snapshot.probes["http"][url]`, is plain data (see `probe_endpoint`); rules turn it into evidence.

This module never talks to the network itself: the live source hands it a `fetch` function. The
answers of the agent-permission SubjectAccessReviews are read by `meshdoctor.kube.rbac.rbac_answer`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import yaml

from meshdoctor.snapshot import ObjectReader

#: The `istio` check's endpoint options and the metric families (by name prefix or exact name)
#: that prove the right endpoint answers. Sources: DataDog/integrations-core `istio`
#: conf.yaml.example (2019 legacy and current) for the option names; `istio/metrics.py`
#: (legacy `MESH_METRICS`, `MIXER_METRICS`, `PILOT_METRICS`, `GALLEY_METRICS`, `CITADEL_METRICS`)
#: for the families: `istio_requests_total` (Istio >= 1.1 telemetry) / `istio_request_count`
#: (Mixer 1.0), `mixer_`, `pilot_`, `galley_`, `citadel_`; istiod serves the pilot_, citadel_ and
#: galley_ families together on 15014.
EXPECTED_FAMILIES: dict[str, tuple[str, ...]] = {
    "istio_mesh_endpoint": ("istio_requests_total", "istio_request_count", "istio_"),
    "mixer_endpoint": ("mixer_",),
    "pilot_endpoint": ("pilot_",),
    "galley_endpoint": ("galley_",),
    "citadel_endpoint": ("citadel_",),
    "istiod_endpoint": ("pilot_", "citadel_", "galley_"),
}

#: Body bytes read from a probed endpoint at most (enough to see the families, bounded memory).
MAX_BODY = 8 * 1024 * 1024

Fetch = Callable[[str], tuple[int, bytes]]
"""`fetch(api_path) -> (HTTP status, body)`; raises OSError-like exceptions on transport errors."""

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)")


def metric_families(text: str) -> set[str]:
    """Metric family names in a Prometheus text exposition: `# TYPE` names and sample names.

    Samples named `<family>_bucket`/`_sum`/`_count`/`_total` are reported under their own name; a
    family declared by `# TYPE` is reported under the declared name.
    """
    families: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "TYPE":
                families.add(parts[2])
            continue
        match = _SAMPLE.match(line)
        if match:
            families.add(match.group(1))
    return families


def looks_like_prometheus(text: str) -> bool:
    """True when the body is Prometheus text: its first meaningful line is `# HELP`/`# TYPE` or a sample."""
    for line in text.splitlines()[:200]:
        line = line.strip()
        if not line:
            continue
        if line.startswith(("# TYPE ", "# HELP ")):
            return True
        if line.startswith("#"):
            continue
        return _is_sample(line)
    return False


def _is_sample(line: str) -> bool:
    """`name{labels} value [timestamp]` or `name value [timestamp]`."""
    match = _SAMPLE.match(line)
    if not match:
        return False
    rest = line[match.end() :]
    if rest.startswith("{"):
        close = rest.rfind("}")
        if close < 0:
            return False
        rest = rest[close + 1 :]
    fields = rest.split()
    if not 1 <= len(fields) <= 2:
        return False
    try:
        float(fields[0])
    except ValueError:
        return False
    return True


def _matches(expected: str, families: Iterable[str]) -> bool:
    if expected.endswith("_"):
        return any(f.startswith(expected) for f in families)
    return expected in families


def service_proxy_path(url: str) -> tuple[str, str] | None:
    """(`namespace/name:port`, API path) for a service URL, or None when it names no Service.

    `http://istiod.istio-system:15014/metrics` ->
    `("istio-system/istiod:15014", "/api/v1/namespaces/istio-system/services/istiod:15014/proxy/metrics")`.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or "%%" in url or re.fullmatch(r"[0-9.]+|\[?[0-9a-fA-F:]+\]?", host):
        return None
    labels = host.split(".")
    if len(labels) < 2 or labels[2:] not in ([], ["svc"], ["svc", "cluster", "local"]):
        return None
    name, namespace = labels[0], labels[1]
    port = parts.port or (443 if parts.scheme == "https" else 80)
    scheme = "https:" if parts.scheme == "https" else ""
    path = parts.path or "/"
    api_path = f"/api/v1/namespaces/{namespace}/services/{scheme}{name}:{port}/proxy{path}"
    if parts.query:
        api_path += f"?{parts.query}"
    return f"{namespace}/{name}:{port}", api_path


def check_endpoints(reader: ObjectReader) -> dict[str, str]:
    """Every `*_endpoint` URL of the `istio` check configuration: url -> option name.

    Read from ConfigMap values that parse as a check configuration (a mapping with `instances`)
    and from pod annotations `ad.datadoghq.com/<container>.instances` (JSON lists).
    """
    found: dict[str, str] = {}
    for config_map in reader.objects("ConfigMap"):
        for value in (config_map.get("data") or {}).values():
            if not isinstance(value, str) or "_endpoint" not in value:
                continue
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                continue
            if isinstance(parsed, dict):
                _collect(parsed.get("instances"), found)
    for pod in reader.objects("Pod"):
        for key, value in ((pod.get("metadata") or {}).get("annotations") or {}).items():
            if key.startswith("ad.datadoghq.com/") and key.endswith(".instances") and "_endpoint" in str(value):
                try:
                    _collect(yaml.safe_load(str(value)), found)
                except yaml.YAMLError:
                    continue
    return dict(sorted(found.items()))


def _collect(instances: Any, found: dict[str, str]) -> None:
    if not isinstance(instances, list):
        return
    for instance in instances:
        if not isinstance(instance, dict):
            continue
        for option in EXPECTED_FAMILIES:
            url = instance.get(option)
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                found.setdefault(url, option)


def probe_endpoint(url: str, option: str, fetch: Fetch) -> dict[str, Any]:
    """Fetch one endpoint and describe the answer.

    The record: `option`, `service` (`ns/name:port` or None), `path` (API proxy path or None),
    `status` (HTTP status or None), `latency_ms`, `prometheus` (body is Prometheus text),
    `expected` (families wanted), `found` (which of them are there), `families` (how many families
    in the body), `ok` (2xx, Prometheus text and at least one expected family), `error` (why not,
    or None).
    """
    expected = EXPECTED_FAMILIES.get(option, ())
    record: dict[str, Any] = {
        "option": option,
        "service": None,
        "path": None,
        "status": None,
        "latency_ms": None,
        "prometheus": False,
        "expected": list(expected),
        "found": [],
        "families": 0,
        "ok": False,
        "error": None,
    }
    target = service_proxy_path(url)
    if target is None:
        record["error"] = "not a Service URL (SERVICE.NAMESPACE:PORT): cannot be probed through the API server"
        return record
    record["service"], record["path"] = target
    started = time.monotonic()
    try:
        status, body = fetch(target[1])
    except Exception as exc:  # transport errors: the probe failed, the run goes on
        record["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        record["error"] = f"{type(exc).__name__}: {exc}"[:300]
        return record
    record["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    record["status"] = status
    text = body[:MAX_BODY].decode("utf-8", "replace")
    if not 200 <= status < 300:
        record["error"] = f"HTTP {status}: {_status_message(text)}".rstrip(": ")
        return record
    record["prometheus"] = looks_like_prometheus(text)
    families = metric_families(text) if record["prometheus"] else set()
    record["families"] = len(families)
    record["found"] = [e for e in expected if _matches(e, families)]
    record["ok"] = bool(record["prometheus"] and record["found"])
    if not record["prometheus"]:
        record["error"] = "the body is not Prometheus text"
    elif not record["found"]:
        record["error"] = f"none of the expected metric families ({', '.join(expected)})"
    return record


def _status_message(text: str) -> str:
    """The `message` of a Kubernetes Status body, else the body's first line (both cut to 200)."""
    try:
        body = json.loads(text)
        if isinstance(body, dict) and body.get("kind") == "Status":
            return str(body.get("message") or "")[:200]
    except ValueError:
        pass
    stripped = text.strip()
    return stripped.splitlines()[0][:200] if stripped else ""


def run_http_probes(
    reader: ObjectReader, fetch: Fetch, map_fn: Callable[..., Iterable[Any]] = map
) -> dict[str, dict[str, Any]]:
    """Probe every endpoint of the check configuration; url -> record (see `probe_endpoint`)."""
    endpoints = check_endpoints(reader)
    results = map_fn(lambda item: probe_endpoint(item[0], item[1], fetch), endpoints.items())
    return dict(zip(endpoints, results, strict=True))
