"""No secret leaves meshdoctor: one canary of every class issue 12 lists, planted in manifests (a
literal DD_API_KEY and DD_APP_KEY, a non-hex key, args, annotations, the last-applied annotation,
a ConfigMap's env data and its conf.yaml `api_key:`/`password:`, URL credentials in DD_PROXY_*, a
proxy password, Secret data and stringData) and in the agent's and sidecar's logs (raw keys, whole
`api_key=` values holding `-` and `_`, Bearer and Basic Authorization headers, `token:`,
`client-key-data:`, `client-certificate-data:`, `access_token=`, `password=`), appear in no byte
written: no report format on stdout or stderr, no file `--emit-fixes` writes, no file of
`snapshot -o`, no member of a `bundle` — while the lines that carried them do appear, masked (so
the test would see a leak)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshdoctor.cli.main import main
from meshdoctor.renderers import Format
from meshdoctor.secrets_mask import APP_KEY_STARS, keep_last

SEED = Path(__file__).resolve().parent.parent / "fixtures" / "scenarios" / "seed-broken"
SEED_KEY = "0123456789abcdef0123456789abcdef"

# Canaries: never real keys. Hex keys are what Datadog issues; the query value is alphanumeric so
# only the `api_key=` rule can catch it; the JWTs are well-formed (header.payload.signature).
API_KEY = "c0ffee00c0ffee00c0ffee00c0ffee01"  # 32 hex: DD_API_KEY literal in the DaemonSet
APP_KEY = "deadbeefdeadbeefdeadbeefdeadbeef0badcafe"  # 40 hex: DD_APP_KEY literal
CM_API_KEY = "a11ce5a11ce5a11ce5a11ce5a11ce502"  # 32 hex: in a ConfigMap
SECRET_API_KEY = "5ec2e75ec2e75ec2e75ec2e75ec2e703"  # 32 hex: in a Secret's data (base64)
SECRET_APP_KEY = "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e70404"  # 40 hex: in a Secret's stringData
LOG_API_KEY = "1095e11095e11095e11095e11095e105"  # 32 hex: raw in agent log URLs
QUERY_KEY = "Zq9XkT4mP2vB7nR1sW8yL3cD6fH0jG5u"  # api_key= query value, not hex
LOG_APP_KEY = "a99a99a99a99a99a99a99a99a99a99a99a990606"  # 40 hex: application_key= in a log
JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImNhbmFyeSJ9"
    ".eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpjYW5hcnkifQ"
    ".c2lnbmF0dXJlLWNhbmFyeS0wNzA3MDcwNzA3MDcwNzA3"
)
PROXY_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJjYW5hcnkiOiJwcm94eS0wODA4In0.cHJveHktc2lnbmF0dXJlLWNhbmFyeS0wODA4MDgwOA"
CONFIG_JWT = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJjYW5hcnkiOiJjb25maWctMDkwOSJ9.Y29uZmlnLXNpZ25hdHVyZS1jYW5hcnktMDkwOQ"
)

# Canaries of the classes the agent's scrubber (and issue 12) names, none a hex key: only the
# replacer of its class can catch it.
NONHEX_KEY = "nonHexKey-Canary_0a0a0a0a0a0a"  # DD_API_KEY value of the cluster agent: `-` and `_`
ARG_KEY = "argKeyCanary0b0b0b0b0b0b0b0b"  # --api-key= argument
ANNOTATION_KEY = "annoKeyCanary0c0c0c0c0c0c0c"  # api_key inside an autodiscovery annotation
CONF_API_KEY = "confKeyCanary0d0d0d0d0d0d0d0d"  # api_key: in a ConfigMap's conf.yaml
CONF_PASSWORD = "confPassCanary0e0e0e"  # password: in a ConfigMap's conf.yaml
URL_PASSWORD = "urlPassCanary0f0f0f"  # DD_PROXY_HTTPS=http://user:<this>@proxy
PROXY_PASSWORD = "proxyPassCanary1010"  # DD_PROXY_PASSWORD literal
WHOLE_QUERY_KEY = "wholeKey-Canary_1111-1111_1111"  # api_key= in a log, with - and _
BASIC = "YmFzaWNDYW5hcnk6MTIxMjEyMTI="  # Authorization: Basic in a log
TOKEN = "tokenCanary131313131313"  # token: in a log
CLIENT_KEY = "LS0tLS1DbGllbnRLZXlDYW5hcnkxNDE0"  # client-key-data: in a log
CLIENT_CERT = "LS0tLS1DbGllbnRDZXJ0Q2FuYXJ5MTUxNQ"  # client-certificate-data: in a log
ACCESS_TOKEN = "accessTokenCanary161616"  # access_token= in a log
LOG_PASSWORD = "logPassCanary171717"  # password= in a log

CANARIES = {
    "DaemonSet DD_API_KEY": API_KEY,
    "Deployment DD_API_KEY (not hex)": NONHEX_KEY,
    "args --api-key=": ARG_KEY,
    "annotation api_key": ANNOTATION_KEY,
    "conf.yaml api_key:": CONF_API_KEY,
    "conf.yaml password:": CONF_PASSWORD,
    "DD_PROXY_HTTPS URL credentials": URL_PASSWORD,
    "DD_PROXY_PASSWORD": PROXY_PASSWORD,
    "log api_key= whole value": WHOLE_QUERY_KEY,
    "log Authorization Basic": BASIC,
    "log token:": TOKEN,
    "log client-key-data:": CLIENT_KEY,
    "log client-certificate-data:": CLIENT_CERT,
    "log access_token=": ACCESS_TOKEN,
    "log password=": LOG_PASSWORD,
    "DaemonSet DD_APP_KEY": APP_KEY,
    "ConfigMap DD_API_KEY": CM_API_KEY,
    "Secret api-key": SECRET_API_KEY,
    "Secret api-key (base64)": base64.b64encode(SECRET_API_KEY.encode()).decode(),
    "Secret app-key": SECRET_APP_KEY,
    "log api key": LOG_API_KEY,
    "log api_key= value": QUERY_KEY,
    "log application key": LOG_APP_KEY,
}
for _name, _jwt in (
    ("log bearer", JWT),
    ("proxy bearer", PROXY_JWT),
    ("config bearer", CONFIG_JWT),
):
    for _index, _part in enumerate(_jwt.split(".")):
        CANARIES[f"{_name} part {_index}"] = _part

EXTRA_MANIFESTS = f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: datadog-env
  namespace: default
data:
  DD_API_KEY: "{CM_API_KEY}"
  DD_SITE: datadoghq.com
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: datadog-conf
  namespace: default
data:
  datadog.yaml: |
    api_key: {CONF_API_KEY}
    proxy:
      https: http://dd:{URL_PASSWORD}@proxy.corp:3128
  mysql.yaml: |
    instances:
      - host: db
        password: {CONF_PASSWORD}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: datadog-cluster-agent
  namespace: default
  annotations:
    ad.datadoghq.com/x.instances: '[{{"api_key": "{ANNOTATION_KEY}"}}]'
spec:
  selector:
    matchLabels:
      app: datadog-cluster-agent
  template:
    metadata:
      labels:
        app: datadog-cluster-agent
    spec:
      containers:
      - name: cluster-agent
        image: datadog/cluster-agent:1.2.0
        args: ["--api-key={ARG_KEY}"]
        env:
        - name: DD_API_KEY
          value: "{NONHEX_KEY}"
        - name: DD_PROXY_HTTPS
          value: "http://dd:{URL_PASSWORD}@proxy.corp:3128"
        - name: DD_PROXY_PASSWORD
          value: "{PROXY_PASSWORD}"
---
apiVersion: v1
kind: Secret
metadata:
  name: datadog-secret
  namespace: default
type: Opaque
data:
  api-key: {base64.b64encode(SECRET_API_KEY.encode()).decode()}
stringData:
  app-key: "{SECRET_APP_KEY}"
"""

AGENT_LOG = [
    "2019-02-21 09:14:02 UTC | INFO | (forwarder.go:163 in Start) | Forwarder started, sending "
    "to 1 endpoint(s) with 1 worker(s) each: "
    f'"https://6-10-2-app.agent.datadoghq.com?api_key={QUERY_KEY}"',
    "2019-02-21 09:14:04 UTC | ERROR | (apiserver.go:157 in connect) | Could not reach the API "
    'server: pods is forbidden: User "system:serviceaccount:default:default" cannot list pods at '
    f"the cluster scope (Authorization: Bearer {JWT})",
    "2019-02-21 09:14:17 UTC | ERROR | (worker.go:87 in process) | Error while processing "
    "transaction: error while sending transaction, rescheduling it: Post "
    f"https://6-10-2-app.agent.datadoghq.com/api/v1/series?api_key={LOG_API_KEY}: EOF",
    "2019-02-21 09:14:32 UTC | ERROR | (worker.go:83 in process) | Too many errors for endpoint "
    f"'https://6-10-2-app.agent.datadoghq.com/api/v1/series?api_key={LOG_API_KEY}"
    f"&application_key={LOG_APP_KEY}': retrying later",
    "2019-02-21 09:14:40 UTC | ERROR | (transaction.go:184 in Process) | API Key invalid, dropping "
    f"transaction for https://app.datadoghq.com/api/v1/validate?api_key={QUERY_KEY}",
    f"2019-02-21 09:14:41 UTC | DEBUG | (config.go:10 in load) | using API key {LOG_API_KEY}",
    "2019-02-21 09:14:42 UTC | ERROR | (transaction.go:184 in Process) | API Key invalid, dropping "
    f"transaction for https://app.datadoghq.com/api/v1/validate?api_key={WHOLE_QUERY_KEY}",
    f"2019-02-21 09:14:43 UTC | DEBUG | (http.go:1 in do) | proxy request (Authorization: Basic {BASIC}) sent",
    f"2019-02-21 09:14:44 UTC | DEBUG | (kube.go:1 in auth) | kubeconfig user token: {TOKEN} loaded",
    f"2019-02-21 09:14:45 UTC | DEBUG | (kube.go:2 in auth) | client-key-data: {CLIENT_KEY}",
    f"2019-02-21 09:14:46 UTC | DEBUG | (kube.go:3 in auth) | client-certificate-data: {CLIENT_CERT}",
    f"2019-02-21 09:14:47 UTC | DEBUG | (oauth.go:4 in get) | callback?access_token={ACCESS_TOKEN}&state=1",
    f"2019-02-21 09:14:48 UTC | DEBUG | (db.go:5 in open) | dsn host=db password={LOG_PASSWORD} user=dd",
]
PROXY_LOG = [
    json.dumps(
        {
            "authority": None,
            "downstream_local_address": "3.233.146.17:443",
            "requested_server_name": "6-10-2-app.agent.datadoghq.com",
            "response_flags": "UH",
            "start_time": "2019-02-21T09:14:33.120Z",
            "upstream_cluster": "BlackHoleCluster",
            "request_headers": f"authorization: Bearer {PROXY_JWT}",
        }
    )
]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """seed-broken with the canaries planted in its manifests and logs."""
    root = tmp_path_factory.mktemp("canaries") / "cluster"
    shutil.copytree(SEED, root)
    for path in root.rglob("*.yaml"):
        text = path.read_text()
        if SEED_KEY in text:
            path.write_text(text.replace(SEED_KEY, API_KEY))
    agent = root / "datadog" / "datadog-agent.yaml"
    text = agent.read_text()
    assert f'value: "{API_KEY}"' in text
    literal = f'        - name: DD_API_KEY\n          value: "{API_KEY}"\n'
    text = text.replace(
        literal,
        literal + f'        - name: DD_APP_KEY\n          value: "{APP_KEY}"\n'
        "        envFrom:\n        - configMapRef:\n            name: datadog-env\n",
    )
    last_applied = json.dumps({"spec": {"env": [{"name": "DD_API_KEY", "value": API_KEY}]}})
    text = text.replace(
        "  name: datadog-agent\n  namespace: default\n",
        "  name: datadog-agent\n  namespace: default\n  annotations:\n"
        f"    kubectl.kubernetes.io/last-applied-configuration: '{last_applied}'\n",
        1,
    )
    assert APP_KEY in text and "last-applied" in text
    agent.write_text(text)
    (root / "datadog" / "secrets.yaml").write_text(EXTRA_MANIFESTS)
    check = root / "datadog" / "istio-config.yaml"
    check.write_text(
        check.read_text().rstrip("\n") + f"\n# headers the check sends\n# Authorization: Bearer {CONFIG_JWT}\n"
    )
    pod_logs = root / "logs" / "default" / "datadog-agent-4xk2p"
    log = pod_logs / "datadog-agent.log"
    log.write_text("\n".join(AGENT_LOG) + "\n" + log.read_text())  # first: they are the samples
    (pod_logs / "istio-proxy.log").write_text("\n".join(PROXY_LOG) + "\n")
    return root


def invoke(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    with runner.isolation() as streams:
        code = main(list(args))
        out, err = streams[0].getvalue(), streams[1].getvalue()
    return code, out.decode(), err.decode()


def leaks(text: str) -> list[str]:
    """The canaries found in `text`, whole or by their first 12 characters."""
    return sorted(name for name, value in CANARIES.items() if value in text or value[:12] in text)


@pytest.mark.parametrize("fmt", [fmt.value for fmt in Format])
def test_no_canary_in_any_format_nor_in_emitted_fixes(planted: Path, tmp_path: Path, fmt: str):
    fixes = tmp_path / "fixes"
    code, out, err = invoke(
        "check", "--from", str(planted), "-o", fmt, "--fail-on", "never", "--emit-fixes", str(fixes)
    )
    assert code == 0, err
    assert leaks(out) == [] and leaks(err) == []
    written = sorted(p for p in fixes.rglob("*") if p.is_file())
    assert len(written) >= 5  # the steps, an alternative, apply.sh, index.md, plan.json
    for path in written:
        assert leaks(path.read_text()) == [], path.name


def test_the_lines_that_carried_canaries_are_reported_masked(planted: Path):
    code, out, err = invoke("check", "--from", str(planted), "-o", "json", "--fail-on", "never")
    assert code == 0, err
    report = json.loads(out)
    texts = [e["text"] for f in report["findings"] for e in f["evidence"] if e["kind"] == "log"]
    rules = [f["rule"] for f in report["findings"]]
    assert "MD501" in rules and "MD602" in rules
    # the Too many errors line joined onto MD101, both keys masked to their last 4 characters
    both = f"api_key={keep_last(LOG_API_KEY)}&application_key={keep_last(LOG_APP_KEY, APP_KEY_STARS)}"
    assert any(both in t for t in texts)
    # the 403 line: MD602's evidence, the query value masked
    assert any(f"validate?api_key={keep_last(QUERY_KEY)}" in t for t in texts)
    # the forbidden line with a bearer token (MD401's evidence): the token replaced
    assert any("(Authorization: Bearer ********)" in t for t in texts)
    # the sidecar's JSON line (MD605, joined onto MD101 or shown alone)
    assert "MD605" in rules or any("BlackHoleCluster" in t for t in texts)
    assert leaks(out) == []


def test_no_canary_in_any_file_snapshot_writes(planted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`meshdoctor snapshot -o DIR` itself, its live collection replaced by the planted files."""
    import meshdoctor.sources.live as live_source
    from meshdoctor.sources import load_offline

    def collect(*_args: object) -> tuple[object, object]:
        return load_offline([str(planted)])

    monkeypatch.setattr(live_source, "collect_live", collect)
    out = tmp_path / "snap"
    code, stdout, stderr = invoke("snapshot", "-o", str(out), "-q")
    assert code == 0, stderr
    assert leaks(stdout) == [] and leaks(stderr) == []
    written = sorted(path for path in out.rglob("*") if path.is_file())
    assert [p.name for p in written if p.suffix == ".log"] == ["datadog-agent.log", "istio-proxy.log"]
    for path in written:
        assert leaks(path.read_text()) == [], path.name
    # the scrubbed folder still reads back, and keeps what rules read: the whole-key line is there
    log = (out / "logs" / "default" / "datadog-agent-4xk2p" / "datadog-agent.log").read_text()
    assert f"validate?api_key={keep_last(WHOLE_QUERY_KEY)}" in log
    assert "(Authorization: Basic ********) sent" in log


def test_no_canary_in_any_member_of_a_bundle(planted: Path, tmp_path: Path):
    import tarfile

    target = tmp_path / "bundle.tar.gz"
    code, stdout, stderr = invoke("bundle", "-o", str(target), "--from", str(planted))
    assert code == 0, stderr
    assert leaks(stdout) == [] and leaks(stderr) == []
    with tarfile.open(target, "r:gz") as archive:
        members = {m.name: archive.extractfile(m).read().decode() for m in archive.getmembers()}  # type: ignore[union-attr]
    assert {name.split("/")[0] for name in members} == {"fixes", "manifest.json", "report", "snapshot"}
    assert len([name for name in members if name.startswith("fixes/")]) >= 4
    for name, text in members.items():
        assert leaks(text) == [], name


def test_the_canaries_are_in_the_input(planted: Path):
    """The test above proves something only if the canaries are really there."""
    text = "".join(p.read_text() for p in planted.rglob("*") if p.is_file())
    assert leaks(text) == sorted(CANARIES)
