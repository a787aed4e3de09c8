"""The signature catalogue: every signature's samples, its literals, its template, its metadata."""

from __future__ import annotations

import json
import re
import string

import pytest

from meshdoctor.logs.scanner import (
    SOURCES,
    Scanner,
    Signature,
    SignatureError,
    derive_literals,
    load_signatures,
    parse_signatures,
)
from meshdoctor.model import Category, Severity

SIGNATURES = load_signatures()
BY_ID = {sig.id: sig for sig in SIGNATURES}
SCANNER = Scanner(SIGNATURES)

MATCH_CASES = [
    pytest.param(sig, index, id=f"{sig.id}-{index}") for sig in SIGNATURES for index in range(len(sig.samples_match))
]
NO_MATCH_CASES = [
    pytest.param(sig, line, id=f"{sig.id}-no-{index}")
    for sig in SIGNATURES
    for index, line in enumerate(sig.samples_no_match)
]


def _subject(line: str) -> str:
    """What a signature is matched against: the msg of an agent JSON line, else the line."""
    if line.startswith("{"):
        record = json.loads(line)
        if isinstance(record.get("msg"), str):
            return record["msg"]
    return line


def _brute_force(line: str) -> set[str]:
    subject = _subject(line)
    return {sig.id for sig in SIGNATURES if sig.pattern.search(subject)}


def _scanned(line: str) -> set[str]:
    return {m.signature.id for m in SCANNER.scan([line])}


# -- the catalogue as a whole -----------------------------------------------------------------


def test_catalogue_size_and_coverage() -> None:
    assert len(SIGNATURES) >= 25
    assert {sig.category for sig in SIGNATURES} == {
        Category.EGRESS,
        Category.AGENT,
        Category.RBAC,
        Category.TELEMETRY,
        Category.CHECK_CONFIG,
    }
    assert {sig.source for sig in SIGNATURES} == {"agent", "istio-proxy", "istiod", "mixer"}


def test_ids_are_unique_and_well_formed() -> None:
    ids = [sig.id for sig in SIGNATURES]
    assert len(ids) == len(set(ids))
    for sig_id in ids:
        assert re.fullmatch(r"LOG-[A-Z0-9]+(?:-[A-Z0-9]+)+", sig_id), sig_id


@pytest.mark.parametrize("sig", SIGNATURES, ids=lambda s: s.id)
def test_signature_metadata(sig: Signature) -> None:
    assert isinstance(sig.category, Category)
    assert isinstance(sig.severity, Severity)
    assert sig.source in SOURCES
    assert sig.supports
    assert sig.title
    assert len(sig.samples_match) >= 2
    assert len(sig.samples_no_match) >= 2
    assert not sig.pattern.flags & re.IGNORECASE
    assert set(sig.key) <= set(sig.pattern.groupindex)


@pytest.mark.parametrize("sig", SIGNATURES, ids=lambda s: s.id)
def test_message_template_uses_only_its_groups(sig: Signature) -> None:
    fields = {name for _, name, _, _ in string.Formatter().parse(sig.message) if name}
    assert fields <= set(sig.pattern.groupindex), fields - set(sig.pattern.groupindex)
    # Rendering with nothing captured never raises and marks absent values.
    assert "{" not in sig.render({})


def test_api_key_rejection_is_agent_not_egress() -> None:
    sig = BY_ID["LOG-AGENT-API-KEY-INVALID"]
    assert sig.category is Category.AGENT
    assert sig.supports == "agent-api-key"
    line = sig.samples_match[0].line
    assert _brute_force(line) == {"LOG-AGENT-API-KEY-INVALID"}


def test_rbac_denials_name_the_service_account() -> None:
    line = (
        "2019-02-18 10:11:12 UTC | CORE | ERROR | (pkg/util/kubernetes/apiserver/apiserver.go:325"
        " in GetPodsByNode) | Could not list pods: pods is forbidden: User "
        '"system:serviceaccount:default:default" cannot list resource "pods" in API group "" '
        "at the cluster scope"
    )
    [match] = SCANNER.scan([line])
    assert match.signature.id == "LOG-RBAC-APISERVER-FORBIDDEN"
    assert match.signature.category is Category.RBAC
    assert {k: match.groups[k] for k in ("user", "verb", "resource", "api_group", "namespace")} == {
        "user": "system:serviceaccount:default:default",
        "verb": "list",
        "resource": "pods",
        "api_group": "",
        "namespace": None,
    }
    assert match.message == (
        'system:serviceaccount:default:default may not list pods (API group "") at the cluster '
        "scope: the agent's ClusterRole or its binding lacks this permission."
    )


# -- every sample -----------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "index"), MATCH_CASES)
def test_match_sample(sig: Signature, index: int) -> None:
    sample = sig.samples_match[index]
    found = Scanner([sig]).match_line(sample.line)
    assert [s.id for s, _ in found] == [sig.id]
    groups = found[0][1]
    for name, expected in sample.groups.items():
        assert name in sig.pattern.groupindex, f"sample names unknown group {name}"
        assert groups[name] == expected, name


@pytest.mark.parametrize(("sig", "line"), NO_MATCH_CASES)
def test_no_match_sample(sig: Signature, line: str) -> None:
    assert Scanner([sig]).match_line(line) == []


@pytest.mark.parametrize(("sig", "index"), MATCH_CASES)
def test_literals_occur_in_every_matching_sample(sig: Signature, index: int) -> None:
    subject = _subject(sig.samples_match[index].line)
    assert any(lit in subject for lit in sig.literals), sig.literals


# -- the prefilter never drops a line the full patterns would match ----------------------------

ALL_LINES = sorted(
    {s.line for sig in SIGNATURES for s in sig.samples_match}
    | {line for sig in SIGNATURES for line in sig.samples_no_match}
)


def _as_agent_json(line: str, html_escape: bool = False) -> str | None:
    """An agent text line re-written in the agent's JSON format (msg quoted like Go does)."""
    parts = line.split(" | ", 4)
    if len(parts) < 5 or not parts[0].endswith(" UTC"):
        return None
    msg = json.dumps(parts[4])
    if html_escape:  # Go's encoding/json (zap) also escapes <, > and &
        msg = msg.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (
        f'{{"agent":"core","time":"{parts[0]}","level":"{parts[2]}","file":"x.go","line":"1","func":"f","msg":{msg}}}'
    )


@pytest.mark.parametrize("line", ALL_LINES)
def test_prefilter_keeps_every_line_a_pattern_matches(line: str) -> None:
    assert _scanned(line) == _brute_force(line)


@pytest.mark.parametrize("line", ALL_LINES)
def test_prefilter_keeps_json_escaped_lines(line: str) -> None:
    for html in (False, True):
        rewritten = _as_agent_json(line, html)
        if rewritten is None:
            continue
        assert _scanned(rewritten) == _brute_force(rewritten) == _brute_force(line)


@pytest.mark.parametrize("line", ALL_LINES)
def test_prefilter_on_bytes_keeps_every_line(line: str) -> None:
    import io

    data = ("noise line\n" + line + "\nmore noise\n").encode()
    found = {m.signature.id for m in SCANNER.scan_file(io.BytesIO(data))}
    assert found == _brute_force(line)


# -- deriving literals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"Too many errors for endpoint '?(?P<url>\S+)'?", ("Too many errors for endpoint ",)),
        (r"ab (?:left side|right)\d+ c", ("left side", "right")),
        (r"x(?P<g>(?:one|two)) tail-literal", (" tail-literal",)),
        (r"(?=.*\"k\":\"BlackHoleCluster\")", ('"k":"BlackHoleCluster"',)),
        (r"(?i)case insensitive", ()),
        (r"\d+\s\w*", ()),
        (r"a(?:b)?c", ("a",)),
        (r"(?:xyz)+ and", (" and",)),
    ],
)
def test_derive_literals(pattern: str, expected: tuple[str, ...]) -> None:
    assert derive_literals(pattern) == expected


def test_scanner_prefilter_is_deduplicated() -> None:
    literals = SCANNER.literals
    assert len(literals) == len(set(literals))
    for lit in literals:
        assert not any(other != lit and other in lit for other in literals), lit


# -- catalogue errors name the signature ------------------------------------------------------

_ENTRY = """
signatures:
- id: LOG-TEST-ONE
  category: egress
  severity: error
  source: {source}
  supports: egress
  {extra}
  pattern: '{pattern}'
  message: 'host {{host}}'
"""


def _catalogue(source: str = "agent", extra: str = "", pattern: str = "to (?P<host>\\S+)") -> str:
    return _ENTRY.format(source=source, extra=extra, pattern=pattern)


def test_parse_minimal_catalogue() -> None:
    [sig] = parse_signatures(_catalogue())
    assert sig.literals == ("to ",)
    assert sig.key == ("host",)
    assert sig.render({"host": "a.example"}) == "host a.example"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_catalogue(source="kubelet"), "LOG-TEST-ONE: source 'kubelet' is not one of"),
        (_catalogue(extra="key: [port]"), "LOG-TEST-ONE: key names unknown groups ['port']"),
        (_catalogue(pattern="\\d+"), "LOG-TEST-ONE: no literal can be derived"),
        (_catalogue(pattern="(unclosed"), "LOG-TEST-ONE: missing )"),
        (_catalogue() + _catalogue().split("signatures:")[1], "LOG-TEST-ONE: duplicate id"),
        ("other: 1", "catalogue has no `signatures:` list"),
    ],
)
def test_catalogue_errors(text: str, message: str) -> None:
    with pytest.raises(SignatureError, match=re.escape(message)):
        parse_signatures(text)


def test_telemetry_ports_follow_the_istio_facts() -> None:
    """The istio-check signatures know exactly the ports meshdoctor.istio.versions lists."""
    from meshdoctor.istio.versions import TELEMETRY_ENDPOINTS

    known = {str(endpoint.port) for endpoint in TELEMETRY_ENDPOINTS}
    checked = 0
    for sig in SIGNATURES:
        found = re.search(r"\(\?P<port>((?:\d+\|)+\d+)\)", sig.pattern.pattern)
        if sig.supports in ("telemetry", "check-config") and found:
            assert set(found.group(1).split("|")) == known, sig.id
            checked += 1
    assert checked == 6


@pytest.mark.parametrize("sig_id", ["LOG-EGRESS-ENVOY-INTAKE-FAILED", "LOG-EGRESS-ENVOY-JSON-INTAKE-FAILED"])
def test_intake_host_lookahead_covers_every_site(sig_id: str) -> None:
    """The access-log signatures recognise the intake hosts of every site in meshdoctor.datadog.sites."""
    from meshdoctor.datadog.sites import SITES

    sig = BY_ID[sig_id]
    sample = sig.samples_match[0].line
    for site in SITES:
        line = sample.replace("datadoghq.com", site)
        assert Scanner([sig]).match_line(line), site
