"""The import graph the README's layout section states: core imports nothing of ours but
core; io imports core (and ``about``); processing never imports gui or training; gui never
imports training; training never imports processing or gui."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "arctic_assist"
ROOMS = ("core", "io", "processing", "gui", "training")
#: what each room may import of ours (top-level modules by name, rooms by folder)
ALLOWED = {
    "core": {"core"},
    "io": {"core", "io", "about"},
    "processing": {"core", "io", "processing", "about", "settings", "deps"},
    "gui": {"core", "io", "processing", "gui", "about", "settings"},
    "training": {"core", "io", "training"},
}


def _imports(path: Path) -> set[str]:
    """The rooms / top-level modules of ours that ``path`` imports."""
    rel = path.relative_to(PKG).parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            mods = [a.name.split(".") for a in node.names if a.name.startswith("arctic_assist.")]
            found |= {m[1] for m in mods}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "arctic_assist" or len(parts) < 2:
                    continue
                found.add(parts[1])
                continue
            base = list(rel[: len(rel) - (node.level - 1)])
            parts = base + ((node.module or "").split(".") if node.module else [])
            if parts:
                found.add(parts[0])
            else:  # from .. import about, settings
                found |= {a.name for a in node.names}
    return found


@pytest.mark.parametrize("room", ROOMS)
def test_room_imports_only_what_the_readme_says(room):
    bad = {}
    for path in sorted((PKG / room).rglob("*.py")):
        extra = _imports(path) - ALLOWED[room]
        if extra:
            bad[str(path.relative_to(PKG))] = sorted(extra)
    assert not bad, f"{room} imports outside its allowed rooms: {bad}"
