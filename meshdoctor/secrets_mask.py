r"""The one scrubber: credentials out of every byte meshdoctor writes (reports, fixes, snapshots, bundles).

Two halves, used together by every output path:

- `mask_secrets(text)`: the text scrubber, a port of the Datadog Agent's flare scrubber. Its
  replacers are those of DataDog/datadog-agent `pkg/util/scrubber/default.go` at commit
  0370fdff0005172ddd1b91d51956530dc7924fe0 (`AddDefaultReplacers`), run in the agent's order as
  its `scrubReader` runs them (pkg/util/scrubber/scrubber.go): the single-line replacers (here
  each matches within one line: `[ \t]` where the agent has `\s`, `(?m)^` for its line-start
  anchors), then the multi-line one (PEM blocks). The agent drops comment lines from files it
  scrubs; here they are scrubbed like any line. Each pattern below names its replacer there.
  Where this port differs from the agent it says so and why; the reason is nearly always the same: meshdoctor's
  rules read the scrubbed logs of a snapshot or bundle again, so a replacer may not swallow the
  rest of a line of free text (the agent's `.+` after a YAML key, `Bearer [^*]+`), and may not
  take an image reference `name:tag@sha256:...` for URL credentials.
- `scrub_object(obj)`: the structural scrubber for Kubernetes objects. It walks the object: a
  secret-looking env var with a literal value, a Secret's `data`/`stringData`, a ConfigMap entry
  named like a secret env var (for `envFrom`), and a map key the agent's YAML replacers name
  (`api_key`, `password`, `token`...) lose their values; an annotation holding JSON
  (`kubectl.kubernetes.io/last-applied-configuration`) is parsed and scrubbed the same way; every
  other string goes through `mask_secrets`.

Every replacement is a fixed marker, never a hash: `********`, or for a Datadog key a fixed run of
`*` and its last 4 characters (the agent's form, which lets a person tell which key was used).
Scrubbing is idempotent: a marker matches no pattern again, so scrubbing scrubbed data changes
nothing, and a report of a scrubbed snapshot is the report of the original.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: What the agent writes in place of a secret it cannot partly keep (`defaultReplacement`).
REPLACEMENT = "********"

#: Characters of a Datadog key kept after the stars (default.go: `[a-fA-F0-9]{28}([a-fA-F0-9]{4})`).
KEEP = 4

#: Stars before the kept characters: 28 for an API key, 36 for an application key (default.go's
#: `apiKeyReplacer` and `appKeyReplacer`; the hinted replacers write the same fixed runs).
API_KEY_STARS = "*" * 28
APP_KEY_STARS = "*" * 36

#: Hinted values shorter than this are masked whole: keeping 4 characters of a short value keeps
#: too much of it (the agent keeps 4 of any hinted value of 5 or more; a deviation to the safe side).
_SHORTEST_KEPT = 16


def keep_last(value: str, stars: str = API_KEY_STARS) -> str:
    """A key masked the agent's way: a fixed run of `*` and its last 4 characters (short: all)."""
    if len(value) < _SHORTEST_KEPT:
        return REPLACEMENT
    return stars + value[-KEEP:]


# --- the text replacers, in default.go's order --------------------------------------------------

#: hintedAPIKeyReplacer / hintedAPPKeyReplacer: `(api_?key=)\b[a-zA-Z0-9]+([a-zA-Z0-9]{4})\b`.
#: Widened: any case, `-` or `_`, `=` or `:` (`DD-API-KEY: ...` headers, `api_key: ...` YAML,
#: `--api-key=...` args), the `dd_` prefix; and the WHOLE value up to the first character that
#: cannot be in a query value or a key (the agent's `\b...\b` stops at `-`, and matches nothing
#: when the value holds `_`, leaving it in clear). The value must start alphanumeric, so `****`,
#: `$DD_API_KEY` and `<your key here>` are left as they are.
_HINTED = re.compile(
    r"(?i)\b((?:dd[_-])?(api|app|application)[_-]?key[\"']?[ \t]*[=:][ \t]*[\"']?)([A-Za-z0-9][A-Za-z0-9._~+/%=-]*)"
)
#: prefixedAPPKeyReplacer.
_PREFIXED_APP_KEY = re.compile(r"ddapp_[a-zA-Z0-9_]{30}([a-zA-Z0-9_]{4})")
#: hintedBearerReplacer: a 64-hex bearer token keeps its last 5.
_BEARER_HEX = re.compile(r"\bBearer [a-fA-F0-9]{59}([a-fA-F0-9]{5})\b")
#: hintedBearerInvalidReplacer is `\bBearer\s+[^*]+\b`, which takes the rest of the line; here the
#: token is what RFC 6750 (2.1, b64token) lets follow `Bearer`, so the line's other words stay.
_BEARER = re.compile(r"\b([Bb]earer[ \t]+)(?!\*)[A-Za-z0-9\-._~+/]+=*")
#: Not in the agent: `Authorization: Basic <base64>` and `Authorization: <token>` in free text
#: (its `Authorization` key replacer is a YAML one, below). The scheme word stays.
_AUTHORIZATION = re.compile(
    r"(?i)(\b(?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:(?:basic|token|digest|negotiate)[ \t]+)?)"
    r"(?!\*|bearer\b)[A-Za-z0-9\-._~+/]+=*"
)
#: apiKeyReplacerYAML / appKeyReplacerYAML: after YAML punctuation, the masked key is quoted.
_API_KEY_YAML = re.compile(r"(\-|\:|,|\[|\{)([ \t]+)?\b[a-fA-F0-9]{28}([a-fA-F0-9]{4})\b")
_APP_KEY_YAML = re.compile(r"(\-|\:|,|\[|\{)([ \t]+)?\b[a-fA-F0-9]{36}([a-fA-F0-9]{4})\b")
#: apiKeyReplacer / appKeyReplacer.
_API_KEY = re.compile(r"\b[a-fA-F0-9]{28}([a-fA-F0-9]{4})\b")
_APP_KEY = re.compile(r"\b[a-fA-F0-9]{36}([a-fA-F0-9]{4})\b")
#: rcAppKeyReplacer.
_RC_APP_KEY = re.compile(r"\bDDRCM_[A-Z0-9]+([A-Z0-9]{5})\b")
#: uriPasswordReplacer: `(?i)([a-z][a-z0-9+-.]+://|\b)([^:\s]+):([^\s|"]+)@`. Without a scheme
#: the agent also takes `agent:7.49.1@sha256:...` (an image pinned by digest) for credentials;
#: here a scheme-less `user:pass@` must not follow a `/`, `.` or word character and must not be a
#: digest (`@sha256:`), so image references survive (rules read them).
_URI_PASSWORD = re.compile(
    r"(?i)([a-z][a-z0-9+\-.]+://)([^:\s/]+):([^\s|\"]+)@|(?<![\w./:-])([^:\s/@]+):([^\s|\"/@]+)@(?!sha\d+:)"
)
#: passwordReplacer (unanchored: `--mysql_password=x`, `password: x` anywhere in a line).
_PASSWORD = re.compile(
    r"(?i)([\"']?(?:pass(?:word)?|pswd|pwd)[\"']?)((?:=| = |: )[\"']?)([0-9A-Za-z#!$%&()*+,\-./:<=>?@\[\\\]^_{|}~]+)"
)
#: Not in the agent (issue 12): `token=`, `access_token=`, `token: ...`, `client-key-data: ...`,
#: `client-certificate-data: ...` anywhere in a log line (a kubeconfig or an OAuth exchange
#: printed by a client). The value runs to the first character a token cannot hold.
_TOKEN_VALUE = re.compile(
    r"(?i)\b((?:[\w-]*[_-])?(?:token|jwt|client-key-data|client-certificate-data)[\"']?[ \t]*(?:=|:[ \t]*)[\"']?)"
    r"(?!\*)[A-Za-z0-9\-._~+/]+=*"
)


def _yaml_key(key: str, *, ending: bool = False) -> re.Pattern[str]:
    """A default.go YAML-key replacer (`matchYAMLKey`, `matchYAMLKeyPart`, `matchYAMLKeyEnding`...).

    The agent's pattern is `(SPACES KEY SPACES :).+`, anchored at the line's start only for the `Ending`
    kind. Here every one is anchored at a line's start (indentation and a `- ` list dash allowed):
    in free text a mid-line `passed:` or `community:` is prose, and `.+` would take the rest of a
    log line that a rule reads again. Mid-line credentials are the business of `_PASSWORD`,
    `_TOKEN_VALUE`, `_AUTHORIZATION` and `_HINTED`.
    """
    body = rf"[\w-]*{key}" if ending else key
    return re.compile(rf"(?m)^([ \t]*(?:-[ \t]+)?{body}[ \t]*:)(?=[ \t]*\S).+")


#: default.go's YAML-key replacers, in its order, split where its other replacers run between them:
#: (agent's name, pattern). Their value becomes ` "********"`, as in the agent.
_YAML_KEYS_FIRST: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "httpHeaderKeyReplacer, httpHeaderTokenReplacer, httpHeaderAuthReplacer, httpHeaderSecretReplacer",
        _yaml_key(r"x-[\w-]*(?:key|token|auth|secret)"),
    ),
    (
        "exactKeyReplacer",
        _yaml_key(
            r"(?:auth-tenantid|authority|cainzapp-api-key|cms-svc-api-key|dd-api-key|lodauth|sec-websocket-key"
            r"|statuskey|cookie|private-token|kong-admin-token|accesstoken|session_token)"
        ),
    ),
    ("privateKeyReplacer", _yaml_key("private_key", ending=True)),
)
_YAML_KEYS_PASSWORD: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("yamlPasswordReplacer", _yaml_key(r"[\w-]*(?:pass(?:word)?|pwd)[\w-]*")),
)
_YAML_KEYS_LAST: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("tokenReplacer", _yaml_key("_?(?:token|jwt)", ending=True)),
    ("consumerKeyAndTokenIDReplacer", _yaml_key("(?:consumer_key|token_id)")),
    ("secretReplacer", _yaml_key("_secret(?:_id)?", ending=True)),
    ("accessKeyReplacer", _yaml_key("access_key", ending=True)),
    (
        "snmpReplacer",
        _yaml_key(
            r"(?:community_string|auth_?[Kk]ey|priv_?[Kk]ey|community|authentication_key|privacy_key"
            r"|Authorization|authorization)"
        ),
    ),
)
_YAML_HINTS = ("x-", "auth", "cookie", "token", "key", "pass", "pwd", "jwt", "secret", "community", "lodauth")

#: certReplacer (multi-line): a PEM block, whole.
_CERT = re.compile(r"-----BEGIN (?:.*)-----[A-Za-z0-9=\+\/\s]*-----END (?:.*)-----")


def _yaml_keys(text: str, replacers: tuple[tuple[str, re.Pattern[str]], ...]) -> str:
    for _name, pattern in replacers:
        text = pattern.sub(lambda m: f'{m.group(1)} "{REPLACEMENT}"', text)
    return text


def _hinted(match: re.Match[str]) -> str:
    stars = API_KEY_STARS if match.group(2).lower() == "api" else APP_KEY_STARS
    return match.group(1) + keep_last(match.group(3), stars)


def _uri(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return f"{match.group(1)}{match.group(2)}:{REPLACEMENT}@"
    return f"{match.group(4)}:{REPLACEMENT}@"


def mask_secrets(text: str) -> str:
    """`text` with every credential the module docstring lists replaced by its marker."""
    if not text:
        return text
    # Each replacer runs only when a substring its pattern needs is there (the agent's `Hints`):
    # most log lines hold none, and an `in` test costs a fraction of a regex pass. The tests are
    # necessary conditions, so the result is the same.
    low = text.lower()
    if "key" in low:  # `(?i)`: lower() also folds the Kelvin sign, as re does
        text = _HINTED.sub(_hinted, text)
    if "ddapp_" in text:
        text = _PREFIXED_APP_KEY.sub(lambda m: APP_KEY_STARS + m.group(1), text)
    if "Bearer" in text:
        text = _BEARER_HEX.sub(lambda m: "Bearer " + "*" * 59 + m.group(1), text)
    if "earer" in text:
        text = _BEARER.sub(lambda m: m.group(1) + REPLACEMENT, text)
    if "authorization" in low:
        text = _AUTHORIZATION.sub(lambda m: m.group(1) + REPLACEMENT, text)
    yaml_keys = any(hint in low for hint in _YAML_HINTS)
    if yaml_keys:
        text = _yaml_keys(text, _YAML_KEYS_FIRST)
    if _HEX32.search(text):
        text = _API_KEY_YAML.sub(lambda m: f'{m.group(1)}{m.group(2) or ""}"{API_KEY_STARS}{m.group(3)}"', text)
        text = _API_KEY.sub(lambda m: API_KEY_STARS + m.group(1), text)
        text = _APP_KEY_YAML.sub(lambda m: f'{m.group(1)}{m.group(2) or ""}"{APP_KEY_STARS}{m.group(3)}"', text)
        text = _APP_KEY.sub(lambda m: APP_KEY_STARS + m.group(1), text)
    if "DDRCM_" in text:
        text = _RC_APP_KEY.sub(lambda m: "*" * 35 + m.group(1), text)
    if "@" in text:
        text = _URI_PASSWORD.sub(_uri, text)
    if yaml_keys:
        text = _yaml_keys(text, _YAML_KEYS_PASSWORD)
    if "pass" in low or "pwd" in low or "pswd" in low:
        text = _PASSWORD.sub(lambda m: m.group(1) + m.group(2) + REPLACEMENT, text)
    if yaml_keys:
        text = _yaml_keys(text, _YAML_KEYS_LAST)
    # not in the agent: key=value tokens of log lines, and JSON Web Tokens anywhere
    if "token" in low or "jwt" in low or "-data" in low:
        text = _TOKEN_VALUE.sub(lambda m: m.group(1) + REPLACEMENT, text)
    if "eyJ" in text:
        text = _JWT.sub(REPLACEMENT, text)
    # multi-line replacers last, as the agent's scrubReader runs them
    if "-----BEGIN" in text:
        text = _CERT.sub(REPLACEMENT, text)
    return text


#: What the key replacers need: a run of 32 hex characters (28 + 4).
_HEX32 = re.compile(r"[a-fA-F0-9]{32}")
#: A JSON Web Token: three base64url parts, the first a JSON header (`eyJ` is `{"`).
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}")

#: A YAML line whose plain value starts with `*` once masked: YAML reads `*...` as an alias.
_YAML_STAR_VALUE = re.compile(r"^(\s*(?:- )?[^\s:#][^:]*:\s+|\s*- )(\*[^\s'\"]*)\s*$")


#: A YAML line whose whole value is a marker the agent's replacers wrote in double quotes.
_YAML_QUOTED_MARKER = re.compile(r"^(\s*(?:- )?[^\s:#][^:]*:\s+|\s*- )\"(\*+[A-Za-z0-9]{0,5})\"\s*$")


def mask_yaml(text: str) -> str:
    """`mask_secrets` for YAML documents: a masked value is single-quoted so the YAML still parses.

    `checksum/api_key: 549f...` (the Helm chart's pod annotation) masks to `********...`, which a
    YAML parser takes for an alias; quoted it stays a string. A marker the agent's replacers
    double-quote (`password: "********"`) is single-quoted too: that is how PyYAML writes a string
    that starts with `*`, so a manifest masked after it was written reads exactly as one written
    from an object masked before (a bundle's replay gives the first run's manifests).
    """
    if not text:
        return text
    lines = []
    for line in text.split("\n"):
        masked = mask_secrets(line)
        if masked != line:
            masked = _YAML_STAR_VALUE.sub(lambda m: f"{m.group(1)}'{m.group(2)}'", masked)
            masked = _YAML_QUOTED_MARKER.sub(lambda m: f"{m.group(1)}'{m.group(2)}'", masked)
        lines.append(masked)
    return "\n".join(lines)


# --- the structural scrubber --------------------------------------------------------------------

#: Env var names whose literal values are secrets: Datadog keys, tokens, passwords, secrets,
#: credentials (`DD_API_KEY`, `DD_APP_KEY`, `DD_CLUSTER_AGENT_AUTH_TOKEN`, `DD_PROXY_PASSWORD`...).
SECRET_ENV_NAME = re.compile(
    r"(?i)(API_?KEY|APP_?KEY|APPLICATION_KEY|_KEY$|TOKEN|PASSWORD|PASSWD|PWD$|SECRET|CREDENTIAL)"
)

#: Map keys whose string values are Datadog keys (default.go `apiKeyYaml`/`appKeyYaml`, whose
#: patterns are `api[-_]?key` / `ap(?:p|plication)[-_]?key`; here of any case, for the Operator's
#: `credentials.apiKey`, and whole, so `apiKeyExistingSecret` (a Secret's name) is kept).
_KEY_FIELD = re.compile(r"(?i)(?:dd[_-])?(api|app|application)[-_]?key")

#: Map keys whose string values are secrets, from default.go's YAML-key replacers (`YAMLKeyRegex`).
_SECRET_FIELD = re.compile(
    r"(pass(word)?|pwd|_?(token|jwt)$|_secret(_id)?$|access_key$|private_key$|^(consumer_key|token_id)$"
    r"|^(community_string|auth_?[Kk]ey|priv_?[Kk]ey|community|authentication_key|privacy_key|[Aa]uthorization)$"
    r"|^(auth-tenantid|cainzapp-api-key|cms-svc-api-key|dd-api-key|lodauth|sec-websocket-key|statuskey|cookie"
    r"|private-token|kong-admin-token|accesstoken|session_token|client-key-data|client-certificate-data)$"
    r"|^x-.*(key|token|auth|secret)$)"
)
#: default.go `additional_endpoints` (format A, URL -> keys) and `community_strings`: every leaf.
_ALL_LEAVES = frozenset({"additional_endpoints", "community_strings"})


def secret_env_value(name: str, value: Any) -> bool:
    """Whether an env var `name=value` holds a literal secret to replace.

    A path to a token file (`DD_AUTH_TOKEN_FILE_PATH=/etc/datadog-agent/auth/token`, the Helm
    chart's) names where a secret is, not the secret; so does the name of the object holding it
    (`DD_CLUSTER_AGENT_TOKEN_NAME=datadog-token`, the chart's; `api-key-secret-name`).
    """
    if not isinstance(value, str) or not value or not SECRET_ENV_NAME.search(name):
        return False
    return not (name.upper().endswith(_NAMES_A_PLACE) or value.startswith("/"))


#: Suffixes of a variable that says where a secret is kept, not what it is.
_NAMES_A_PLACE = ("_PATH", "_FILE", "_NAME", "-NAME", "-PATH", "-FILE")


def masked_env_value(name: str, value: str) -> str:
    """The marker for a secret env value: a Datadog key keeps its last 4, anything else is `********`."""
    match = _KEY_FIELD.search(name)
    if match is None:
        return REPLACEMENT
    return keep_last(value, API_KEY_STARS if match.group(1).lower() == "api" else APP_KEY_STARS)


def scrub_object(obj: Any) -> Any:
    """A scrubbed deep copy of a Kubernetes object (or a list of them, or any JSON-like value)."""
    return _scrub(obj, kind=None)


def _scrub(value: Any, kind: str | None) -> Any:
    if isinstance(value, str):
        return mask_yaml(value) if "\n" in value else mask_secrets(value)
    if isinstance(value, list):
        return [_scrub(item, kind) for item in value]
    if not isinstance(value, dict):
        return value
    own_kind = value.get("kind") if isinstance(value.get("kind"), str) else kind
    out: dict[Any, Any] = {}
    for key, item in value.items():
        name = str(key)
        if own_kind == "Secret" and name in ("data", "stringData") and isinstance(item, dict):
            out[key] = {k: REPLACEMENT for k in item}
        elif own_kind == "ConfigMap" and name == "data" and isinstance(item, dict):
            out[key] = {k: _config_value(str(k), v) for k, v in item.items()}
        elif name == "env" and isinstance(item, list):
            out[key] = [_env_var(var) for var in item]
        elif name == "annotations" and isinstance(item, dict):
            out[key] = {k: _embedded(v) for k, v in item.items()}
        elif name in _ALL_LEAVES and isinstance(item, dict):
            out[key] = _all_leaves(item)
        elif isinstance(item, str) and _KEY_FIELD.fullmatch(name) and item.strip():
            out[key] = masked_env_value(name, item.strip())
        elif isinstance(item, str) and item and _SECRET_FIELD.search(name):
            out[key] = REPLACEMENT
        else:
            out[key] = _scrub(item, own_kind)
    return out


def _env_var(var: Any) -> Any:
    if isinstance(var, dict) and secret_env_value(str(var.get("name", "")), var.get("value")):
        clean = _scrub(var, None)
        clean["value"] = masked_env_value(str(var["name"]), str(var["value"]))
        return clean
    return _scrub(var, None)


def _config_value(key: str, value: Any) -> Any:
    """A ConfigMap entry: a secret env name (read through `envFrom`) loses its value; text is scrubbed."""
    if secret_env_value(key, value):
        return masked_env_value(key, str(value))
    return _embedded(value)


def _embedded(value: Any) -> Any:
    """A string that may hold a JSON document (last-applied-configuration): scrubbed as an object.

    Any other string is scrubbed as YAML (`mask_yaml`): a ConfigMap's `conf.yaml` must still
    parse once its `api_key:` is masked, or a rule reading it again would see a broken file.
    """
    if not isinstance(value, str):
        return _scrub(value, None)
    stripped = value.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            return mask_yaml(value)
        clean = scrub_object(parsed)
        if clean == parsed:
            return value
        # compact, as kubectl writes the annotation; whitespace after the document is kept
        tail = value[len(value.rstrip()) :]
        return json.dumps(clean, separators=(",", ":"), ensure_ascii=False) + tail
    return mask_yaml(value)


def _all_leaves(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _all_leaves(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_all_leaves(v) for v in value]
    return REPLACEMENT if isinstance(value, str) and value else value
