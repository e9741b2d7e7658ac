"""The import graph the README's layout section states: core imports nothing of ours but
core; io imports core (and ``about``); processing never imports gui, and of training only
its torch-free data modules (the packed format and the front reader, with which
retrain_model packs DATA for the training environment); gui never imports training;
training never imports processing or gui."""

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
    "processing": {"core", "io", "processing", "about", "settings", "deps", "training"},
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


#: the training modules that import no torch (numpy, and GDAL at call time), which
#: processing may use
TORCH_FREE_TRAINING = {"packed", "fronts", "data"}


def test_processing_uses_only_the_torch_free_training_modules():
    used = {}
    for path in sorted((PKG / "processing").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module:
                parts = node.module.split(".")
                if parts[0] == "training":
                    used.setdefault(path.name, set()).add(".".join(parts[1:]) or "?")
    assert used, "retrain_model packs DATA with training.packed"
    bad = {f: m - TORCH_FREE_TRAINING for f, m in used.items() if m - TORCH_FREE_TRAINING}
    assert not bad, bad


def test_torch_free_training_modules_import_no_torch():
    import subprocess
    import sys

    names = ", ".join(f"arctic_assist.training.{m}" for m in sorted(TORCH_FREE_TRAINING))
    code = (
        f"import sys, {names}; print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PKG.parent,
        check=True,
    )
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
