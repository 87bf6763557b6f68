"""Imports flow one way (DESIGN.md "Layering"); checked on the source, statically."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {
    "mlacc": "mlacc",
    "tools": "mlacc.tools",
    "frontend": "mlacc.frontend",
    "dialects": "mlacc.dialects",
    "passes": "mlacc.passes",
    "backends": "mlacc.backends",
    "runtime": "mlacc.runtime",
}

# layer -> module prefixes it must never import
FORBIDDEN = {
    "dialects": (
        "mlacc.frontend",
        "mlacc.passes",
        "mlacc.backends",
        "mlacc.runtime",
        "mlacc.tools",
        "mlacc.compiler",
        "torch",
    ),
    "passes": ("mlacc.frontend", "mlacc.backends", "mlacc.runtime", "mlacc.tools", "torch"),
    "runtime": (
        "torch_mlir",
        "mlacc.dialects",
        "mlacc.passes",
        "mlacc.backends",
        "mlacc.frontend",
        "mlacc.tools",
        "mlacc.compiler",
    ),
    "backends": ("mlacc.tools", "mlacc.frontend"),
    "frontend": ("mlacc.tools", "mlacc.backends"),
    "mlacc": ("mlacc.tools",),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = [LAYERS[rel.parts[0]], *rel.with_suffix("").parts[1:]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return found


def _sources(layer: str) -> list[Path]:
    return sorted(p for p in (ROOT / layer).rglob("*.py") if "Output" not in p.parts)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_flow_one_way(layer: str) -> None:
    violations = []
    for path in _sources(layer):
        for line, name in _imports(path):
            for bad in FORBIDDEN[layer]:
                if name == bad or name.startswith(bad + "."):
                    violations.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not violations, "\n".join(violations)


def test_nothing_imports_tools() -> None:
    for layer in LAYERS:
        if layer == "tools":
            continue
        for path in _sources(layer):
            assert not [n for _, n in _imports(path) if n.startswith("mlacc.tools")], path
