"""Finding rule packs: the entry-point group `meshdoctor.rules` (the built-in pack too) and folders.

Discovery is separate steps, as flake8 does it: find the packs, load each, validate each rule.
A pack that fails at any step raises `RulePackError` naming the pack, never a traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from meshdoctor.errors import RulePackError
from meshdoctor.model import CATEGORY_ID_BLOCK, Category, Severity
from meshdoctor.rule import RULE_ID, Inputs, Rule, RuleDocs

ENTRY_POINT_GROUP = "meshdoctor.rules"


@dataclass(frozen=True)
class RulePack:
    """A named set of rule classes."""

    name: str
    """Entry-point name (`builtin` for ours) or the folder path."""
    rules: tuple[type[Rule], ...]


def entry_point_packs() -> list[RulePack]:
    """Every pack registered under `meshdoctor.rules`, ordered by name."""
    packs = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            loaded = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure is the pack's fault
            raise RulePackError(f"rule pack {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        packs.append(RulePack(ep.name, _rule_classes(ep.name, loaded)))
    return packs


def folder_pack(path: str) -> RulePack:
    """Every `*.py` module in a folder; each module must define `RULES`, a list of rule classes."""
    folder = Path(path)
    if not folder.is_dir():
        raise RulePackError(f"{path}: rule folder not found")
    rules: list[type[Rule]] = []
    for module_path in sorted(folder.glob("*.py")):
        if module_path.name.startswith("_"):
            continue
        module_name = f"meshdoctor_local_rules.{module_path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, module_path)
        if spec is None or spec.loader is None:
            raise RulePackError(f"{module_path}: cannot be imported as a rule module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - any failure is the pack's fault
            raise RulePackError(f"{module_path}: rule module failed to load: {exc}") from exc
        if not hasattr(module, "RULES"):
            raise RulePackError(f"{module_path}: defines no RULES list")
        rules.extend(_rule_classes(str(module_path), module.RULES))
    return RulePack(str(folder), tuple(rules))


def load_rules(extra_folders: Iterable[str] = ()) -> list[type[Rule]]:
    """All rules from the entry points and the given folders, validated, ordered by id."""
    packs = entry_point_packs() + [folder_pack(path) for path in extra_folders]
    seen: dict[str, str] = {}
    rules: list[type[Rule]] = []
    for pack in packs:
        for rule in pack.rules:
            validate_rule(pack.name, rule)
            if rule.id in seen:
                raise RulePackError(
                    f"rule pack {pack.name!r}: rule id {rule.id} is already defined by {seen[rule.id]!r}"
                )
            seen[rule.id] = pack.name
            rules.append(rule)
    return sorted(rules, key=lambda r: r.id)


def validate_rule(pack: str, rule: type[Rule]) -> None:
    """Check a rule's metadata; raise `RulePackError` naming the pack and the rule."""
    name = getattr(rule, "__name__", repr(rule))

    def fail(why: str) -> None:
        raise RulePackError(f"rule pack {pack!r}: rule {name}: {why}")

    rule_id = getattr(rule, "id", None)
    if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
        fail(f"id {rule_id!r} is not of the form MDnnn")
    assert isinstance(rule_id, str)
    if not isinstance(getattr(rule, "title", None), str) or not rule.title:
        fail("has no title")
    category = getattr(rule, "category", None)
    if not isinstance(category, Category):
        fail(f"category {category!r} is not one of {', '.join(c.value for c in Category)}")
    assert isinstance(category, Category)
    block = CATEGORY_ID_BLOCK[category]
    if not block <= int(rule_id[2:]) < block + 100:
        fail(f"id {rule_id} is outside the {category.value} block MD{block}-MD{block + 99}")
    if not isinstance(getattr(rule, "severity", None), Severity):
        fail("severity is not a Severity")
    if not isinstance(getattr(rule, "inputs", None), Inputs):
        fail("inputs are not declared with meshdoctor.rule.inputs(...)")
    docs = getattr(rule, "docs", None)
    if not isinstance(docs, RuleDocs) or not (docs.what and docs.why and docs.fix):
        fail("docs must be a RuleDocs with what, why and fix")
    if not callable(getattr(rule, "check", None)) or rule.check is Rule.check:
        fail("does not implement check(ctx)")


def _rule_classes(pack: str, loaded: Any) -> tuple[type[Rule], ...]:
    if not isinstance(loaded, (list, tuple)):
        raise RulePackError(f"rule pack {pack!r}: expected a list of rule classes, got {type(loaded).__name__}")
    for item in loaded:
        if not (isinstance(item, type) and issubclass(item, Rule)):
            raise RulePackError(f"rule pack {pack!r}: {item!r} is not a subclass of meshdoctor.rule.Rule")
    return tuple(loaded)


# -- rule metadata without importing the built-in pack (`meshdoctor rules`, `explain`) -------------

#: The built-in pack's metadata, generated (`python scripts/update_rule_catalogue.py`) and kept in
#: sync with the rule classes by tests/test_rule_catalogue.py: `rules` and `explain` read it
#: instead of importing every rule module (which costs 4x the CLI's own start-up).
BUILTIN_CATALOGUE = "builtin_rules.json"

#: The entry point the catalogue stands for.
BUILTIN_ENTRY_POINT = ("builtin", "meshdoctor_rules:RULES")


@dataclass(frozen=True)
class RuleInfo:
    """A rule's metadata as `rules` and `explain` show it, read from the generated catalogue."""

    id: str
    title: str
    category: Category
    severity: Severity
    inputs: Inputs
    docs: RuleDocs


def builtin_catalogue() -> list[RuleInfo] | None:
    """The built-in pack's rules from the generated catalogue; None when it is not installed."""
    import json
    from importlib import resources

    try:
        text = resources.files("meshdoctor").joinpath(BUILTIN_CATALOGUE).read_text("utf-8")
    except OSError:
        return None
    out = []
    for entry in json.loads(text)["rules"]:
        reads, docs = entry["inputs"], entry["docs"]
        out.append(
            RuleInfo(
                entry["id"],
                entry["title"],
                Category(entry["category"]),
                Severity(entry["severity"]),
                Inputs(
                    frozenset(reads["kinds"]),
                    frozenset(reads["optional_kinds"]),
                    frozenset(reads["logs"]),
                    bool(reads["probes"]),
                ),
                RuleDocs(docs["what"], docs["why"], docs["fix"], tuple(docs["references"])),
            )
        )
    return out


def describe_rules(extra_folders: Iterable[str] = ()) -> list[Any]:
    """What `load_rules` returns, for showing only: the built-in pack read from its catalogue.

    Every other pack is loaded and validated as usual; the same ids, order and duplicate-id errors.
    """
    builtin = builtin_catalogue()
    packs: list[tuple[str, Iterable[Any]]] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if builtin is not None and (ep.name, ep.value) == BUILTIN_ENTRY_POINT:
            packs.append((ep.name, builtin))
            continue
        try:
            loaded = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure is the pack's fault
            raise RulePackError(f"rule pack {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        packs.append((ep.name, _validated(ep.name, _rule_classes(ep.name, loaded))))
    for path in extra_folders:
        pack = folder_pack(path)
        packs.append((pack.name, _validated(pack.name, pack.rules)))
    seen: dict[str, str] = {}
    rules: list[Any] = []
    for name, pack_rules in packs:
        for rule in pack_rules:
            if rule.id in seen:
                raise RulePackError(f"rule pack {name!r}: rule id {rule.id} is already defined by {seen[rule.id]!r}")
            seen[rule.id] = name
            rules.append(rule)
    return sorted(rules, key=lambda r: r.id)


def _validated(pack: str, rules: Iterable[type[Rule]]) -> list[type[Rule]]:
    out = list(rules)
    for rule in out:
        validate_rule(pack, rule)
    return out
