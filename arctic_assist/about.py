"""Version and asset paths, in both layouts: the git checkout and the installed plugin.

Checkout: ``<repo>/metadata.txt``, ``<repo>/models``, ``<repo>/resources`` beside the
``arctic_assist`` package. Installed zip: the same three inside the plugin folder
``arctic_assist/``. ``metadata.txt`` is the single source of the version.
"""

from __future__ import annotations

import configparser
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PLUGIN_NAME = "arctic_assist"


@lru_cache(maxsize=1)
def plugin_root() -> Path:
    """The folder holding ``metadata.txt``, ``models/`` and ``resources/``."""
    here = Path(__file__).parent  # not resolved: a dev install links files into a plugin folder
    for candidate in (here, here.parent, PACKAGE_DIR, PACKAGE_DIR.parent):
        if (candidate / "metadata.txt").is_file():
            return candidate
    raise FileNotFoundError(f"metadata.txt not found beside {here} or its parent")


def asset_path(*parts: str) -> Path:
    """Path of a bundled asset, e.g. ``asset_path('models', 'x.onnx')``."""
    return plugin_root().joinpath(*parts)


@lru_cache(maxsize=1)
def metadata() -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(plugin_root() / "metadata.txt", encoding="utf-8")
    return dict(parser["general"])


def version() -> str:
    return metadata()["version"]


def icon_path(name: str) -> str:
    return str(asset_path("resources", "icons", name))


def style_path(name: str) -> str:
    return str(asset_path("resources", "styles", name))


DEFAULT_MODELS = {
    "segmentation": "rts_pixeldino_s2_bgrn.onnx",
    "contour": "calving_front_cobra.onnx",
}


def bundled_model(task: str) -> Path:
    return asset_path("models", DEFAULT_MODELS[task])
