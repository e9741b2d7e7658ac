"""Model library: bundled models, the user's models folder, and the default model per task.

QGIS-free: the caller passes the user models folder and a settings mapping; the plugin
wires them to the QGIS profile (``<profile>/arctic_assist/models``) and ``QgsSettings``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .. import about
from ..core.errors import ArcticAssistError
from ..core.spec import ModelSpec

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    path: Path
    origin: str  # "bundled" or "user"
    spec: ModelSpec | None
    error: str | None = None

    @property
    def task(self) -> str | None:
        return self.spec.task if self.spec else None

    @property
    def label(self) -> str:
        if self.spec is None:
            return f"{self.path.name} (unusable: {self.error})"
        return f"{self.spec.name} {self.spec.version} ({self.origin})"


def read_spec(path: str | Path) -> ModelSpec:
    """The validated spec of an ONNX model, without running it."""
    from ..core.onnx_model import read_model_spec

    return read_model_spec(str(path))


def scan(folders: Iterable[tuple[Path, str]]) -> list[ModelEntry]:
    entries: list[ModelEntry] = []
    for folder, origin in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.onnx")):
            try:
                entries.append(ModelEntry(path, origin, read_spec(path)))
            except ArcticAssistError as exc:
                entries.append(ModelEntry(path, origin, None, str(exc)))
    return entries


def library(user_dir: Path | None) -> list[ModelEntry]:
    folders = [(about.asset_path("models"), "bundled")]
    if user_dir is not None:
        folders.append((user_dir, "user"))
    return scan(folders)


def register(model_path: str | Path, user_dir: Path) -> Path:
    """Copy a (validated) model into the user models folder; returns its new path."""
    src = Path(model_path)
    read_spec(src)  # refuse what the plugin could not load
    user_dir.mkdir(parents=True, exist_ok=True)
    dest = user_dir / src.name
    if src.resolve() != dest.resolve():
        tmp = dest.with_name(dest.name + ".part")
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
    return dest


def default_model(task: str, settings: dict | None = None) -> Path:
    """The user's chosen default for a task if it still exists, else the bundled one."""
    chosen = (settings or {}).get(task)
    if chosen and Path(chosen).is_file():
        return Path(chosen)
    return about.bundled_model(task)
