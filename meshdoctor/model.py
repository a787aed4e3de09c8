"""The records a run produces: findings, their evidence and remediation, rule results, the report.

Everything here is a frozen dataclass: rules build them, the engine orders them, renderers read
them. Nothing here knows about a particular output format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.Enum):
    """How bad a finding is. Ordered, so `--fail-on` is one comparison."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for error."""
        return _SEVERITY_RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


class Category(str, enum.Enum):
    """The fixed vocabulary of DESIGN.md; every rule has exactly one."""

    EGRESS = "egress"
    CHECK_CONFIG = "check-config"
    TELEMETRY = "telemetry"
    RBAC = "rbac"
    AGENT = "agent"
    LOGS = "logs"


#: Rule ids per category start at these hundreds (STYLE.md: a hundred-block per category).
CATEGORY_ID_BLOCK = {
    Category.EGRESS: 100,
    Category.CHECK_CONFIG: 200,
    Category.TELEMETRY: 300,
    Category.RBAC: 400,
    Category.AGENT: 500,
    Category.LOGS: 600,
}


class Status(str, enum.Enum):
    """What happened when a rule ran."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_CHECKED = "not_checked"
    ERROR = "error"


@dataclass(frozen=True, order=True)
class ObjectRef:
    """A Kubernetes object by kind, namespace and name."""

    kind: str
    """The object's kind, e.g. `DaemonSet`."""
    namespace: str
    """Its namespace; empty for cluster-scoped objects."""
    name: str
    """Its `metadata.name`."""

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Origin:
    """Where an object or a line was read from."""

    file: str
    """Path of the file, or a description such as `<stdin>` or `live`."""
    line: int | None = None
    """1-based line of the object's first line, where known."""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class FieldEvidence:
    """A field of an object, as it is (or as it is missing)."""

    object: ObjectRef
    """The object the field belongs to."""
    path: str
    """Dotted field path, e.g. `spec.template.spec.serviceAccountName`."""
    value: str
    """What the field holds, rendered as text; `<absent>` when missing. Never a secret."""
    origin: Origin | None = None
    """The file and line the field was read from."""
    kind: str = "field"


@dataclass(frozen=True)
class LogEvidence:
    """A log line, with where it came from."""

    namespace: str
    """Namespace of the pod."""
    pod: str
    """Pod name."""
    container: str
    """Container name."""
    line: int
    """1-based line number within that container's log."""
    text: str
    """The line, secrets masked."""
    count: int = 1
    """How many lines like it were seen (grouped repetitions)."""
    first_seen: str | None = None
    """Timestamp of the first matching line, where the log carries one."""
    last_seen: str | None = None
    """Timestamp of the last matching line."""
    kind: str = "log"


@dataclass(frozen=True)
class ProbeEvidence:
    """The result of an active probe of an endpoint."""

    target: str
    """What was probed, e.g. `http://istiod.istio-system:15014/metrics`."""
    ok: bool
    """Whether the probe got the answer it expected."""
    detail: str
    """Status code, latency, what the body looked like."""
    kind: str = "probe"


Evidence = FieldEvidence | LogEvidence | ProbeEvidence


@dataclass(frozen=True)
class Remediation:
    """A fix, as data: what to do, the complete manifests, and how to apply them."""

    summary: str
    """One or two sentences saying what the fix does."""
    manifests: tuple[str, ...] = ()
    """Complete YAML documents, each applicable with `kubectl apply -f`."""
    commands: tuple[str, ...] = ()
    """Commands that apply the fix."""
    safe: bool = False
    """True when the manifests can be applied as they are; False when a person should review."""
    alternatives: tuple[str, ...] = ()
    """Other ways out, in words (e.g. 'or take the agent out of the mesh')."""
    alternative_manifests: tuple[str, ...] = ()
    """Complete YAML documents of another way out: apply these *instead of* `manifests`."""


@dataclass(frozen=True)
class Finding:
    """One fault, found by one rule, with its proof and its fix."""

    rule: str
    """Id of the rule that found it, e.g. `MD101`."""
    category: Category
    """The rule's category."""
    severity: Severity
    """How bad it is."""
    title: str
    """The rule's title."""
    message: str
    """What is wrong here, in one or two sentences naming the objects."""
    objects: tuple[ObjectRef, ...] = ()
    """The objects at fault; the first is the primary one."""
    evidence: tuple[Evidence, ...] = ()
    """Fields, log lines and probe results that prove it."""
    remediation: Remediation | None = None
    """The fix."""
    suppressed_by: str | None = None
    """When an object carries `meshdoctor.io/ignore` naming this rule: which object. Still reported."""
    known_by: str | None = None
    """When the finding is in the `--baseline` file: that file. Still reported, marked as known;
    it does not count towards the exit code or the summary, like a suppressed one."""
    supports: str | None = field(default=None, compare=False)
    """For a finding made of log lines only: the family of structural rules whose finding would
    explain them (`egress`, `check-config`, `telemetry`, `rbac`, `agent-api-key`...). The engine
    reads it to join log evidence (`meshdoctor.logs.join`); no output format renders it."""
    object_fix: Remediation | None = field(default=None, compare=False, repr=False)
    """The rule's own fix to the objects, before it was aimed at their owner (Helm values, the
    DatadogAgent) and before masking: the fix plan merges these per object. No format renders it."""

    def sort_key(self) -> tuple[Any, ...]:
        """Deterministic order: worst first, then rule id, then objects, then message."""
        return (-self.severity.rank, self.rule, self.objects, self.message)

    @property
    def silenced(self) -> bool:
        """Whether the finding is suppressed or known from the baseline: shown, never failing."""
        return self.suppressed_by is not None or self.known_by is not None

    def fingerprint(self) -> str:
        """The fault's identity across runs: the rule and the objects, not the message.

        Messages carry counts and versions that change from one run to the next; the rule and the
        objects at fault do not. Baselines (`--baseline`) and SARIF `partialFingerprints` use it.
        """
        import hashlib

        identity = "\n".join([self.rule, *(f"{o.kind}/{o.namespace}/{o.name}" for o in self.objects)])
        return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class RuleResult:
    """The one status every selected rule yields."""

    rule: str
    """Rule id."""
    category: Category
    """Rule category."""
    status: Status
    """passed, failed, not_checked or error."""
    reason: str | None = None
    """Why not checked, or the error message; None otherwise."""


@dataclass(frozen=True)
class SourceInfo:
    """Where the snapshot came from."""

    kind: str
    """`live`, `files`, `dump` or `bundle`; `dump` when any of several inputs is a cluster-info dump."""
    target: str
    """Paths or the cluster context."""
    missing: tuple[str, ...] = ()
    """Inputs that could not be read, each with why ('ServiceEntry: not in the dump')."""


@dataclass(frozen=True)
class AgentInfo:
    """One agent workload as the report header names it: what installed it, which version."""

    workload: ObjectRef
    """The agent's DaemonSet or Deployment."""
    install: str
    """What renders it, in words: `plain manifests`, `Helm release datadog (chart datadog-3.69.0)`."""
    version: str | None
    """The agent version (`7.52.1`), or None when nothing shows it."""
    version_from: str
    """Which evidence decided the version, in words (`its start-up log line, pod datadog/x`)."""


@dataclass(frozen=True)
class ClusterInfo:
    """What meshdoctor worked out about the cluster."""

    istio_version: str | None
    """Istio version from the control-plane images, or None."""
    istio_era: str
    """`mixer` (< 1.5), `istiod` (>= 1.5) or `unknown`."""
    datadog_site: str | None
    """The agents' DD_SITE (default datadoghq.com), or None without an agent."""
    istio_not_read: str | None = None
    """Why no control plane was found although there may be one (its namespace was not read)."""
    agents: tuple[AgentInfo, ...] = ()
    """Each agent workload's install and version, DaemonSets first, by namespace and name."""


@dataclass(frozen=True)
class Report:
    """Everything a run found, in deterministic order."""

    version: str
    """meshdoctor's version."""
    source: SourceInfo
    """Where the input came from."""
    cluster: ClusterInfo
    """Istio version and era, Datadog site."""
    results: tuple[RuleResult, ...]
    """One per selected rule, ordered by rule id."""
    findings: tuple[Finding, ...]
    """Ordered by severity, rule, objects."""
    summary: dict[str, int] = field(default_factory=dict)
    """Count of unsuppressed findings per severity name."""
    baseline: str | None = None
    """The `--baseline` file the findings were compared with, or None."""
    plan: Any = field(default=None, compare=False, repr=False)
    """The fix plan (`meshdoctor.fixes.plan.FixPlan`) of the unsuppressed findings, or None when
    not built; written by `--emit-fixes`, not part of the JSON report."""

    def worst(self) -> Severity | None:
        """The highest severity among findings neither suppressed nor known, or None."""
        active = [f.severity for f in self.findings if not f.silenced]
        return max(active) if active else None


def summarize(findings: tuple[Finding, ...]) -> dict[str, int]:
    """Count findings neither suppressed nor known per severity, always with all three keys."""
    counts = {"error": 0, "warning": 0, "info": 0}
    for finding in findings:
        if not finding.silenced:
            counts[finding.severity.value] += 1
    return counts
