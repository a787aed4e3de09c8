"""Mask credentials in text before it leaves meshdoctor (log evidence, reports, bundles).

Log lines quoted as evidence end up in tickets and CI output, so every line meshdoctor prints goes
through `mask_secrets` first. The conventions follow the Datadog Agent's own scrubber
(DataDog/datadog-agent, pkg/util/scrubber/default.go), in the Agent 6/7 form that the reference
deployment logs:

- Datadog API key (32 hex characters) -> 27 `*` and the last 5 characters:
  `***************************abcde`; application key (40 hex) -> 35 `*` and the last 5.
  Keeping 5 characters is what Agent 6/7 printed for years and still lets a person tell which key
  was used; recent agents keep 4, an older log therefore still masks the same way here.
- a value after a key name (`api_key=`, `apikey=`, `DD-API-KEY:`, `dd_api_key: `, `app_key=`,
  `application_key=`), whatever its length: everything but the last 5 characters becomes `*`
  (values of 10 characters or fewer are masked whole, there is nothing safe to keep).
- `Bearer <token>`: a 64-hex token keeps its last 5 characters, as the agent does; any other
  bearer token becomes `Bearer ********` (the agent's default replacement).
- a JSON Web Token (`eyJ...` with three base64url parts, e.g. a Kubernetes service-account token)
  found anywhere becomes `********`: a JWT's tail is its signature, keeping part of it helps no one.

Masking is idempotent: masked values contain `*` and no longer match.
"""

from __future__ import annotations

import re

#: What the agent writes in place of a secret it cannot partly keep.
REPLACEMENT = "********"

#: Characters kept at the end of a masked key (Agent 6/7 convention).
KEEP = 5

_BEARER = re.compile(r"\b([Bb]earer\s+)([A-Za-z0-9\-._~+/]+=*)")
_HEX64 = re.compile(r"[a-fA-F0-9]{64}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}")
_HINTED = re.compile(r"(?i)\b((?:dd[_-])?(?:api|app|application)[_-]?key[\"']?\s*[=:]\s*[\"']?)([A-Za-z0-9]{6,})")
_APP_KEY = re.compile(r"\b[a-fA-F0-9]{40}\b")
_API_KEY = re.compile(r"\b[a-fA-F0-9]{32}\b")
#: What both key patterns need: a run of 32 hex characters.
_HEX32 = re.compile(r"[a-fA-F0-9]{32}")


def keep_last(value: str, keep: int = KEEP) -> str:
    """`value` with every character but the last `keep` replaced by `*` (short values: all)."""
    if len(value) <= 2 * keep:
        return REPLACEMENT
    return "*" * (len(value) - keep) + value[-keep:]


def _bearer(match: re.Match[str]) -> str:
    token = match.group(2)
    if _HEX64.fullmatch(token):
        return match.group(1) + keep_last(token)
    return match.group(1) + REPLACEMENT


def mask_secrets(text: str) -> str:
    """`text` with Datadog keys, bearer tokens and JWTs masked (see the module docstring)."""
    if not text:
        return text
    # Each substitution runs only when a substring its pattern needs is there: most log lines
    # hold none, and a `in` test costs a fraction of a regex pass (the log scan masks every line
    # it quotes). The tests are necessary conditions, so the result is the same.
    if "earer" in text:
        text = _BEARER.sub(_bearer, text)
    if "eyJ" in text:
        text = _JWT.sub(REPLACEMENT, text)
    if "key" in text.lower():  # `(?i)`: lower() also folds the Kelvin sign, as re does
        text = _HINTED.sub(lambda m: m.group(1) + keep_last(m.group(2)), text)
    if _HEX32.search(text):
        text = _APP_KEY.sub(lambda m: keep_last(m.group(0)), text)
        text = _API_KEY.sub(lambda m: keep_last(m.group(0)), text)
    return text


#: A YAML line whose plain value starts with `*` once masked: YAML reads `*...` as an alias.
_YAML_STAR_VALUE = re.compile(r"^(\s*(?:- )?[^\s:#][^:]*:\s+|\s*- )(\*[^\s'\"]*)\s*$")


def mask_yaml(text: str) -> str:
    """`mask_secrets` for YAML documents: a masked plain value is quoted so the YAML still parses.

    `checksum/api_key: 549f...` (the Helm chart's pod annotation) masks to `********...`, which a
    YAML parser takes for an alias; quoted it stays a string.
    """
    if not text:
        return text
    lines = []
    for line in text.split("\n"):
        masked = mask_secrets(line)
        if masked != line:
            masked = _YAML_STAR_VALUE.sub(lambda m: f"{m.group(1)}'{m.group(2)}'", masked)
        lines.append(masked)
    return "\n".join(lines)
