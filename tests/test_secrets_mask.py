"""The text and structural scrubber: each replacer ported from the agent's scrubber, exactly."""

from __future__ import annotations

import json

import pytest
import yaml

from meshdoctor.secrets_mask import (
    API_KEY_STARS,
    APP_KEY_STARS,
    REPLACEMENT,
    keep_last,
    mask_secrets,
    mask_yaml,
    scrub_object,
)

API_KEY = "0123456789abcdef0123456789abcdef"  # canary: 32 hex
APP_KEY = "fedcba9876543210fedcba9876543210fedcba98"  # canary: 40 hex
JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImNhbmFyeSJ9"
    ".eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Iiwic3ViIjoiY2FuYXJ5In0"
    ".c2lnbmF0dXJlLWNhbmFyeS1jYW5hcnktY2FuYXJ5"
)


def test_api_key_keeps_last_four_like_the_agent() -> None:
    assert mask_secrets(f"key {API_KEY} used") == "key " + "*" * 28 + "cdef used"


def test_app_key_keeps_last_four() -> None:
    assert mask_secrets(f"app {APP_KEY}") == "app " + "*" * 36 + "ba98"


def test_a_key_after_yaml_punctuation_is_quoted_as_the_agent_does() -> None:
    assert mask_secrets(f"keys: [{API_KEY}]") == f'keys: ["{API_KEY_STARS}cdef"]'
    assert mask_secrets(f"- {APP_KEY}") == f'- "{APP_KEY_STARS}ba98"'


def test_api_key_in_query_string() -> None:
    line = f'Post "https://app.datadoghq.com/api/v1/series?api_key={API_KEY}": EOF'
    assert mask_secrets(line) == f'Post "https://app.datadoghq.com/api/v1/series?api_key={API_KEY_STARS}cdef": EOF'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DD-API-KEY: abcdefghijklmnopqrstuvwxyz123456", f"DD-API-KEY: {API_KEY_STARS}3456"),
        ("dd-api-key=NotHexButSecret99", f"dd-api-key={API_KEY_STARS}et99"),
        ("dd_api_key: shortkey", "dd_api_key: ********"),
        ("url?apikey=ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ&x=1", f"url?apikey={API_KEY_STARS}ZZZZ&x=1"),
        ('"app_key": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"', f'"app_key": "{APP_KEY_STARS}KLMN"'),
        ("application_key=0000000000000000000000000000000000000001", f"application_key={APP_KEY_STARS}0001"),
        # the whole value, past `-` and `_` (the agent's `\b...\b` stops at `-` and misses `_`)
        ("api_key=abcd-efgh_ijkl-mnop_qrst&y=2", f"api_key={API_KEY_STARS}qrst&y=2"),
        ("--api-key=abcdefgh_ijklmnop_qrstuvwx", f"--api-key={API_KEY_STARS}uvwx"),
    ],
)
def test_hinted_values_are_masked_whatever_their_form(text: str, expected: str) -> None:
    assert mask_secrets(text) == expected


def test_prefixed_and_remote_config_app_keys() -> None:
    assert mask_secrets("ddapp_" + "a" * 30 + "wxyz") == APP_KEY_STARS + "wxyz"
    assert mask_secrets("DDRCM_ABCDEFGHIJKLMNOP12345") == "*" * 35 + "12345"


def test_bearer_token_of_64_hex_keeps_last_five() -> None:
    token = "a" * 59 + "12345"
    assert mask_secrets(f"GET / Bearer {token}") == ("GET / Bearer " + "*" * 59 + "12345")


@pytest.mark.parametrize("prefix", ["(Authorization: Bearer ", "bearer ", "Bearer  ", "header authorization: Bearer "])
def test_other_bearer_tokens_are_masked_whole_and_the_rest_of_the_line_stays(prefix: str) -> None:
    assert mask_secrets(f"{prefix}{JWT} rest") == f"{prefix}******** rest"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sent (Authorization: Basic dXNlcjpwYXNzd29yZA==) ok", "sent (Authorization: Basic ********) ok"),
        ("hdr proxy-authorization: basic dXNlcjpwYXNz", "hdr proxy-authorization: basic ********"),
        ('{"authorization":"token ghp_abcdef123456"}', '{"authorization":"token ********"}'),
        # a YAML `Authorization:` key loses its whole value (the agent's snmpReplacer)
        ("  Authorization: Bearer abc.def", '  Authorization: "********"'),
    ],
)
def test_authorization_headers(text: str, expected: str) -> None:
    assert mask_secrets(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("proxy http://user:s3cr3t@proxy.corp:3128 up", "proxy http://user:********@proxy.corp:3128 up"),
        ("DD_PROXY_HTTPS=https://dd:pa55@10.0.0.1:3128", "DD_PROXY_HTTPS=https://dd:********@10.0.0.1:3128"),
        ("redis user:pw@host", "redis user:********@host"),
        # an image pinned by digest is no credential (the agent masks its tag)
        (
            "image: gcr.io/datadoghq/agent:7.49.1@sha256:" + "a" * 64,
            "image: gcr.io/datadoghq/agent:7.49.1@sha256:" + "a" * 64,
        ),
        ("busybox:1.36@sha256:" + "b" * 64, "busybox:1.36@sha256:" + "b" * 64),
    ],
)
def test_url_credentials(text: str, expected: str) -> None:
    assert mask_secrets(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  password: hunter2", '  password: "********"'),
        ("- db_pass: hunter2", '- db_pass: "********"'),
        ("connect --mysql_password=hunter2 -h x", "connect --mysql_password=******** -h x"),
        ("login password=hunter2 user=bob", "login password=******** user=bob"),
        ('{"pwd": "hunter2"}', '{"pwd": "********"}'),
        ("  token: abc123", '  token: "********"'),
        ("  auth_token: abc123", '  auth_token: "********"'),
        ("  client_secret: abc123", '  client_secret: "********"'),
        ("  aws_access_key: abc123", '  aws_access_key: "********"'),
        ("  private_key: abc123", '  private_key: "********"'),
        ("  community_string: public", '  community_string: "********"'),
        ("  x-api-key: abc123", '  x-api-key: "********"'),
        ("  cookie: session=1", '  cookie: "********"'),
        # in log lines (not in the agent): the value only, the line goes on
        ("oauth access_token=abc.def-ghi&scope=x", "oauth access_token=********&scope=x"),
        ("refresh token=abcdef rest", "refresh token=******** rest"),
        ("kubeconfig token: abcdef rest", "kubeconfig token: ******** rest"),
        ("  client-key-data: LS0tLS1CRUdJTiBQUklW", "  client-key-data: ********"),
        ("  client-certificate-data: LS0tLS1CRUdJTiBDRVJU", "  client-certificate-data: ********"),
    ],
)
def test_passwords_tokens_and_yaml_secret_keys(text: str, expected: str) -> None:
    assert mask_secrets(text) == expected


def test_pem_blocks_go_whole() -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    assert mask_secrets(f"key:\n{pem}\nnext") == "key:\n********\nnext"


def test_service_account_jwt_anywhere_is_masked() -> None:
    assert mask_secrets(f"token={JWT}") == "token=********"
    assert mask_secrets(f'{{"token": "{JWT}"}}') == '{"token": "********"}'
    assert mask_secrets(f"saw {JWT} here") == "saw ******** here"


def test_canaries_never_survive() -> None:
    text = f"api_key={API_KEY} {APP_KEY} Authorization: Bearer {JWT} DD-API-KEY: {API_KEY} {JWT}"
    masked = mask_secrets(text)
    for canary in (API_KEY, APP_KEY, JWT, JWT.split(".")[2]):
        assert canary not in masked


@pytest.mark.parametrize(
    "text",
    [
        f"api_key={API_KEY} {APP_KEY} Bearer {JWT} {API_KEY}",
        f"  password: hunter2\n  token: x\n  api_key: {API_KEY}\nAuthorization: Basic abcd1234",
        "http://u:p@h login password=x access_token=y client-key-data: z",
    ],
)
def test_masking_is_idempotent(text: str) -> None:
    once = mask_secrets(text)
    assert once != text
    assert mask_secrets(once) == once


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2019-02-18 10:11:12 UTC | CORE | INFO | (pkg/collector/runner/runner.go:327 in work) | Done",
        "Container " + "ab" * 32 + " started tailing",  # 64-hex container id: not a key
        "request 1b2c3d4e-aaaa-bbbb-cccc-0123456789ab",  # uuid
        "api_key=****************************abcd",  # already masked by the agent
        "api_key=***************************abcde",  # masked by an Agent 6
        "the intake uses bearer",
        "Check passed: 3 instances",  # `passed:` in prose is no password key
        "API key invalid, dropping transaction",
        "  serviceAccountToken:",
        "  jwtPolicy: third-party-jwt",
        "kubectl -n default create secret generic s --from-literal api-key=$DD_API_KEY",
        "  api-key: <your DD_API_KEY here>",
        "Post https://app.datadoghq.com/api/v1/series: dial tcp 127.0.0.1:15001: connect: connection refused",
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert mask_secrets(text) == text


def test_keep_last_masks_short_values_whole() -> None:
    assert keep_last("0123456789abcde") == REPLACEMENT
    assert keep_last("0123456789abcdef") == API_KEY_STARS + "cdef"
    assert keep_last("0123456789abcdef", APP_KEY_STARS) == APP_KEY_STARS + "cdef"


def test_mask_yaml_quotes_a_masked_plain_value_so_the_document_still_parses() -> None:
    text = "metadata:\n  annotations:\n    checksum/api_key: " + "a" * 64 + "\n    other: 1\n"
    masked = mask_yaml(text)
    assert "a" * 64 not in masked
    assert yaml.safe_load(masked)["metadata"]["annotations"]["checksum/api_key"] == API_KEY_STARS + "aaaa"


# --- scrub_object -------------------------------------------------------------------------------


def agent(env: list[dict], annotations: dict | None = None, args: list[str] | None = None) -> dict:
    meta: dict = {"name": "datadog-agent", "namespace": "datadog"}
    if annotations is not None:
        meta["annotations"] = annotations
    container = {"name": "agent", "image": "gcr.io/datadoghq/agent:7.49.1@sha256:" + "c" * 64, "env": env}
    if args is not None:
        container["args"] = args
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta,
        "spec": {"template": {"spec": {"containers": [container]}}},
    }


def test_secret_env_values_are_replaced_and_the_rest_kept() -> None:
    obj = agent(
        [
            {"name": "DD_API_KEY", "value": "not-hex_but-a-key-0042"},
            {"name": "DD_APP_KEY", "value": APP_KEY},
            {"name": "DD_CLUSTER_AGENT_AUTH_TOKEN", "value": "tok3n-value"},
            {"name": "DD_PROXY_PASSWORD", "value": "hunter2"},
            {"name": "DD_PROXY_HTTPS", "value": "http://dd:hunter3@proxy:3128"},
            {"name": "DD_AUTH_TOKEN_FILE_PATH", "value": "/etc/datadog-agent/auth/token"},
            {"name": "DD_SITE", "value": "datadoghq.eu"},
            {"name": "DD_API_KEY_REF", "valueFrom": {"secretKeyRef": {"name": "s", "key": "api-key"}}},
        ],
        args=["--api-key=abcdefgh_ijklmnop_qrstuvwx", "--password=hunter4"],
    )
    clean = scrub_object(obj)
    container = clean["spec"]["template"]["spec"]["containers"][0]
    assert [var.get("value") for var in container["env"]] == [
        API_KEY_STARS + "0042",
        APP_KEY_STARS + "ba98",
        REPLACEMENT,
        REPLACEMENT,
        "http://dd:********@proxy:3128",
        "/etc/datadog-agent/auth/token",
        "datadoghq.eu",
        None,
    ]
    assert container["args"] == [f"--api-key={API_KEY_STARS}uvwx", "--password=********"]
    assert container["image"] == obj["spec"]["template"]["spec"]["containers"][0]["image"]
    assert obj["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "not-hex_but-a-key-0042"
    assert scrub_object(clean) == clean


def test_last_applied_configuration_is_scrubbed_as_json() -> None:
    inner = agent([{"name": "DD_API_KEY", "value": "not-hex_but-a-key-0042"}, {"name": "DD_SITE", "value": "x"}])
    annotation = json.dumps(inner, separators=(",", ":")) + "\n"
    clean = scrub_object(agent([], {"kubectl.kubernetes.io/last-applied-configuration": annotation, "a": "b"}))
    text = clean["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert "not-hex_but-a-key" not in text and text.endswith("}\n")
    env = json.loads(text)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "DD_API_KEY", "value": API_KEY_STARS + "0042"}, {"name": "DD_SITE", "value": "x"}]
    assert clean["metadata"]["annotations"]["a"] == "b"


def test_an_annotation_without_secrets_keeps_its_bytes() -> None:
    annotation = '{"kind": "DaemonSet",  "spec": {}}\n'
    clean = scrub_object(agent([], {"kubectl.kubernetes.io/last-applied-configuration": annotation}))
    assert clean["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == annotation


def test_secret_values_and_configmap_data() -> None:
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "data": {"api-key": "YWJj"}, "stringData": {"k": "v"}}
    assert scrub_object(secret)["data"] == {"api-key": REPLACEMENT}
    assert scrub_object(secret)["stringData"] == {"k": REPLACEMENT}
    conf = "init_config:\ninstances:\n  - istiod_endpoint: http://istiod:15014/metrics\n    password: hunter2\n"
    cm = {
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"DD_API_KEY": "a-literal-key-in-a-configmap-0099", "DD_SITE": "datadoghq.com", "conf.yaml": conf},
    }
    data = scrub_object(cm)["data"]
    assert data["DD_API_KEY"] == API_KEY_STARS + "0099"
    assert data["DD_SITE"] == "datadoghq.com"
    assert data["conf.yaml"] == conf.replace("password: hunter2", "password: '********'")
    assert yaml.safe_load(data["conf.yaml"])["instances"][0]["istiod_endpoint"] == "http://istiod:15014/metrics"


def test_configmap_conf_yaml_api_key_still_parses() -> None:
    cm = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"datadog.yaml": "api_key: abcdefghijklmnop0042\n"}}
    text = scrub_object(cm)["data"]["datadog.yaml"]
    assert yaml.safe_load(text) == {"api_key": API_KEY_STARS + "0042"}


def test_yaml_key_fields_of_any_object() -> None:
    obj = {
        "kind": "DatadogAgent",
        "spec": {
            "global": {"credentials": {"apiKey": "abcdefghijklmnop0042", "apiSecret": {"secretName": "s"}}},
            "x": {"password": "hunter2", "token": "abc", "enabled": True, "apiKeyExistingSecret": "datadog-secret"},
            "additional_endpoints": {"https://app.datadoghq.com": ["k1k1k1k1k1k1k1k1k1k1"]},
        },
    }
    spec = scrub_object(obj)["spec"]
    assert spec["global"]["credentials"] == {"apiKey": API_KEY_STARS + "0042", "apiSecret": {"secretName": "s"}}
    assert spec["x"] == {
        "password": REPLACEMENT,
        "token": REPLACEMENT,
        "enabled": True,
        "apiKeyExistingSecret": "datadog-secret",
    }
    assert spec["additional_endpoints"] == {"https://app.datadoghq.com": [REPLACEMENT]}
