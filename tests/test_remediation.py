"""apply_manifests: the one way every family assembles a remediation made of whole objects."""

from __future__ import annotations

from meshdoctor.fixes.manifests import apply_manifests
from meshdoctor.model import Remediation

CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "b"}}
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "b"}}


def test_objects_become_yaml_applied_after_a_server_dry_run() -> None:
    assert apply_manifests("Create a.", [CONFIGMAP, SECRET], safe=True) == Remediation(
        summary="Create a.",
        manifests=(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: b\n",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: b\n",
        ),
        commands=("kubectl apply --dry-run=server -f <file>", "kubectl apply -f <file>"),
        safe=True,
    )


def test_commands_before_alternatives_and_their_objects_are_kept_in_order() -> None:
    fix = apply_manifests(
        "Fix.",
        (CONFIGMAP,),
        safe=False,
        before=["kubectl get pods", "kubectl describe pod x"],
        alternatives=iter(["or this", "or that"]),
        alternative_objects=[SECRET],
    )
    assert fix.commands == (
        "kubectl get pods",
        "kubectl describe pod x",
        "kubectl apply --dry-run=server -f <file>",
        "kubectl apply -f <file>",
    )
    assert fix.safe is False
    assert fix.alternatives == ("or this", "or that")
    assert fix.alternative_manifests == ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: b\n",)


def test_no_objects_still_applies_nothing_but_the_commands() -> None:
    fix = apply_manifests("Nothing.", [], safe=False)
    assert fix.manifests == ()
    assert fix.alternative_manifests == ()
    assert fix.commands == ("kubectl apply --dry-run=server -f <file>", "kubectl apply -f <file>")
