"""The layout's import boundaries, read from the source (every import, at module level or inside a function).

The packages form one direction of dependencies: core records (model, snapshot, rule API) at the
bottom, the domain (kube -> istio -> datadog -> logs) above them, the engine, rule packs and fixes
above the domain, and the edges (sources, renderers, cli) at the top. `ALLOWED` is that drawing as
data (docs/architecture.md shows it); a new import across a boundary fails here, naming the file.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THIRD_PARTY_OF_INTEREST = {"kubernetes", "rich", "click", "urllib3"}

CORE_RECORDS = {"meshdoctor", "meshdoctor.errors", "meshdoctor.model", "meshdoctor.secrets_mask"}
CORE = CORE_RECORDS | {"meshdoctor.snapshot", "meshdoctor.rule"}
DOMAIN = {"meshdoctor.kube", "meshdoctor.istio", "meshdoctor.datadog", "meshdoctor.logs"}

#: Which meshdoctor nodes each node may import (a node is a top-level module or a subpackage).
ALLOWED: dict[str, set[str]] = {
    "meshdoctor": set(),
    "meshdoctor.errors": set(),
    "meshdoctor.model": set(),
    "meshdoctor.secrets_mask": set(),
    "meshdoctor.suppressions": CORE_RECORDS,
    "meshdoctor.baseline": CORE_RECORDS,
    "meshdoctor.snapshot": CORE_RECORDS,
    "meshdoctor.rule": CORE_RECORDS | {"meshdoctor.snapshot"},
    "meshdoctor.registry": CORE,
    "meshdoctor.kube": CORE,
    "meshdoctor.istio": CORE | {"meshdoctor.kube"},
    "meshdoctor.datadog": CORE | {"meshdoctor.kube", "meshdoctor.istio"},
    "meshdoctor.logs": CORE | {"meshdoctor.kube", "meshdoctor.istio", "meshdoctor.datadog"},
    "meshdoctor.engine": CORE | DOMAIN,
    # the plan aims merged objects at their owner (datadog.owner_fixes), so fixes sit above the domain
    "meshdoctor.fixes": CORE | DOMAIN | {"meshdoctor.renderers"},
    "meshdoctor_rules": CORE | DOMAIN | {"meshdoctor.fixes"},
    "meshdoctor.renderers": CORE,
    "meshdoctor.sources": CORE | DOMAIN,
    "meshdoctor.bundle": CORE | {"meshdoctor.kube", "meshdoctor.fixes", "meshdoctor.renderers", "meshdoctor.sources"},
    "meshdoctor.cli": CORE
    | {
        "meshdoctor.bundle",
        "meshdoctor.kube",
        "meshdoctor.engine",
        "meshdoctor.registry",
        "meshdoctor.fixes",
        "meshdoctor.renderers",
        "meshdoctor.sources",
        "meshdoctor.suppressions",
        "meshdoctor.baseline",
    },
    "meshdoctor.__main__": {"meshdoctor.cli"},
}

#: The only modules that may import these libraries (the Kubernetes client only when talking to a
#: cluster; rich only where something is drawn on a terminal).
THIRD_PARTY_HOMES = {
    "kubernetes": {"meshdoctor.sources.live"},
    "urllib3": {"meshdoctor.sources.live"},
    "rich": {"meshdoctor.renderers.text", "meshdoctor.sources.progress"},
    "click": {"meshdoctor.cli.main", "meshdoctor.cli.live"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "rules":
        parts[0] = "meshdoctor_rules"
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def node_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "meshdoctor" or len(parts) == 1:
        return parts[0]
    return ".".join(parts[:2])


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from meshdoctor.renderers import catalogue` names a submodule, not an attribute.
            found.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES)
    return found


SOURCES = sorted([*(ROOT / "meshdoctor").rglob("*.py"), *(ROOT / "rules").rglob("*.py")])
MODULES = {module_name(path) for path in SOURCES}
IMPORTS = {module_name(path): (path, imports_of(path)) for path in SOURCES}


def ours(module: str) -> bool:
    return module.split(".")[0] in ("meshdoctor", "meshdoctor_rules")


@pytest.mark.parametrize("module", sorted(IMPORTS), ids=str)
def test_imports_stay_inside_the_allowed_layers(module):
    path, imported = IMPORTS[module]
    node = node_of(module)
    assert node in ALLOWED, f"{path.relative_to(ROOT)}: {node} is not in the layer table; add it there"
    crossing = sorted(
        target
        for target in imported
        if ours(target) and node_of(target) != node and node_of(target) not in ALLOWED[node]
    )
    assert not crossing, f"{path.relative_to(ROOT)} ({node}) imports {crossing}"


@pytest.mark.parametrize("library", sorted(THIRD_PARTY_HOMES))
def test_heavy_libraries_are_imported_only_where_they_are_needed(library):
    importers = {module for module, (_, imported) in IMPORTS.items() if library in {i.split(".")[0] for i in imported}}
    assert importers <= THIRD_PARTY_HOMES[library]


def test_the_node_graph_has_no_cycle():
    graph: dict[str, set[str]] = defaultdict(set)
    for module, (_, imported) in IMPORTS.items():
        for target in imported:
            if ours(target) and node_of(target) != node_of(module):
                graph[node_of(module)].add(node_of(target))
    done: set[str] = set()

    def visit(node: str, stack: tuple[str, ...]) -> None:
        assert node not in stack, f"import cycle: {' -> '.join((*stack, node))}"
        if node in done:
            return
        for target in sorted(graph[node]):
            visit(target, (*stack, node))
        done.add(node)

    for node in sorted(graph):
        visit(node, ())


def test_rules_never_import_sources_renderers_or_the_kubernetes_client():
    """The issue's boundary, stated directly (the table above implies it)."""
    for module, (path, imported) in IMPORTS.items():
        if node_of(module) != "meshdoctor_rules":
            continue
        bad = sorted(i for i in imported if node_of(i) in ("meshdoctor.sources", "meshdoctor.renderers", "kubernetes"))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_renderers_never_import_the_domain_and_the_domain_never_imports_sources():
    for module, (path, imported) in IMPORTS.items():
        node = node_of(module)
        if node == "meshdoctor.renderers":
            bad = sorted(i for i in imported if node_of(i) in DOMAIN)
        elif node in DOMAIN:
            bad = sorted(i for i in imported if node_of(i) == "meshdoctor.sources")
        else:
            continue
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_every_package_folder_is_installed():
    """A package missing from pyproject's list works in an editable install and is absent from the wheel."""
    # tomllib is 3.11+; the package list is one TOML array of strings.
    block = re.search(r"^packages = \[(.*?)\]", (ROOT / "pyproject.toml").read_text("utf-8"), re.S | re.M)
    listed = set(re.findall(r'"([^"]+)"', block.group(1)))
    on_disk = {module_name(init.parent / "__init__.py") for init in SOURCES if init.name == "__init__.py"}
    assert on_disk == listed


def test_no_module_writes_its_own_object_metadata_reader():
    """Names, namespaces and labels are read through meshdoctor.kube.meta, not local copies."""
    copies = []
    for path, _ in IMPORTS.values():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name in ("_meta", "_name", "_namespace", "_ns", "_labels"):
                copies.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not copies
