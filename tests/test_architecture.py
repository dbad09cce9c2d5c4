"""Imports only go down: adapters -> services -> domain -> store and base modules. The
check reads every import in the package, those inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# Higher layers may import lower (or equal) ones, never higher ones.
LAYERS = {
    "errors": 0,
    "fields": 0,
    "files": 0,
    "settings": 1,
    "yamlfile": 1,
    "markdown": 1,
    "languages": 1,
    "words": 1,  # data: the public pages' words, read by languages
    "themes": 3,  # data: the default theme, read by render
    "scaffold": 6,  # data: a new project's files, read by services.project
    "store": 1,
    "issue": 2,
    "tokens": 2,
    "media": 2,
    "render": 3,
    "audience": 3,
    "sending": 4,
    "checks": 5,
    "mailbox": 5,
    "services": 6,
    "cli": 7,
    "console": 7,
    "__main__": 7,
    "web": 7,
    "preview": 7,
}


def _layer(module: str) -> tuple[str, int] | None:
    parts = module.split(".")
    if parts[0] != "newsletter" or len(parts) < 2 or parts[1] == "__init__":
        return None
    return parts[1], LAYERS[parts[1]]


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def test_every_package_has_a_layer() -> None:
    names = {p.stem for p in (ROOT / "newsletter").iterdir() if p.suffix == ".py" or p.is_dir()}
    names.discard("__init__")
    names.discard("__pycache__")
    assert names <= LAYERS.keys(), names - LAYERS.keys()


def test_imports_only_go_down() -> None:
    upward = []
    for path in sorted((ROOT / "newsletter").rglob("*.py")):
        own = _layer(".".join(path.relative_to(ROOT).with_suffix("").parts))
        if own is None:
            continue
        for module in _imports(path):
            target = _layer(module)
            if target is not None and target[1] > own[1]:
                upward.append(f"{path.relative_to(ROOT)} imports {module}")
    assert upward == []


def test_the_adapters_hold_no_sql() -> None:
    """Business rules live below the adapters: no adapter touches tables directly."""
    for name in ("cli.py", "web", "preview"):
        for path in sorted(
            (ROOT / "newsletter").glob(name if name.endswith(".py") else f"{name}/*.py")
        ):
            for module in _imports(path):
                assert module not in ("sqlalchemy", "newsletter.store"), (path, module)
                assert not module.endswith((".db", ".tables")), (path, module)
