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
    """The interpreter the user chose for the training ('' = none chosen: the training
    environment of this profile, see :func:`training_env_root`)."""
    value = QgsSettings().value(f"{PREFIX}/training_python", "", type=str)
    return value or ""


def set_training_python(path: str) -> None:
    QgsSettings().setValue(f"{PREFIX}/training_python", path or "")


def training_env_root() -> Path:
    """``<profile>/arctic_assist/training_env``: where *Create training environment* makes
    the venv that retraining runs in."""
    from .io.training_env import envs_root

    return envs_root(QgsApplication.qgisSettingsDirPath())
