"""Plugin settings kept in the QGIS profile (QgsSettings) and the user models folder."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsSettings

from .core.spec import TASKS

PREFIX = "arctic_assist"


def user_models_dir() -> Path:
    """``<profile>/arctic_assist/models``: where retrained models are registered."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "arctic_assist" / "models"


def default_models() -> dict[str, str]:
    settings = QgsSettings()
    return {task: settings.value(f"{PREFIX}/default_model/{task}", "", type=str) for task in TASKS}


def set_default_model(task: str, path: str) -> None:
    QgsSettings().setValue(f"{PREFIX}/default_model/{task}", path)


def default_model_path(task: str) -> str:
    from .io.models import default_model

    return str(default_model(task, default_models()))


def training_python() -> str:
    """The interpreter that has torch (the project's venv by default)."""
    value = QgsSettings().value(f"{PREFIX}/training_python", "", type=str)
    return value or ""
