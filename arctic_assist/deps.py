"""Dependency check for QGIS's own Python: one message that says what to install and how."""

from __future__ import annotations

import importlib.util
import sys

#: what inference needs in QGIS's Python (the onnx package is for training and export only)
REQUIRED = ("numpy", "onnxruntime")


def missing_dependencies() -> list[str]:
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def dependency_message(missing: list[str] | None = None) -> str | None:
    """``None`` when all is there, else the one actionable message shown to the user."""
    missing = missing_dependencies() if missing is None else missing
    if not missing:
        return None
    packages = " ".join("onnxruntime-gpu" if m == "onnxruntime" else m for m in missing)
    return (
        f"Arctic Assist needs the Python package(s) {', '.join(missing)} in QGIS's Python "
        f"({sys.executable}, Python {sys.version_info.major}.{sys.version_info.minor}). "
        f"Install with: {sys.executable} -m pip install --user \"numpy<2\" {packages} "
        "(or 'pip install onnxruntime' without a GPU), or start QGIS with PYTHONPATH "
        "pointing at a virtual environment that has them (see the README), then restart QGIS."
    )
