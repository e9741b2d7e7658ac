"""Dependency check for QGIS's own Python: one message that says what to install and how."""

from __future__ import annotations

import importlib.util
import os
import re
import sys

#: what inference needs in QGIS's Python (the onnx package is for training and export only)
REQUIRED = ("numpy", "onnxruntime")


def missing_dependencies() -> list[str]:
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def _installed_numpy() -> str | None:
    """The version of the numpy QGIS's Python already imports, or None."""
    try:
        import numpy
    except ImportError:
        return None
    return str(numpy.__version__)


def _gdal_version() -> str | None:
    try:
        from osgeo import gdal
    except ImportError:
        return None
    return str(gdal.__version__)


def _externally_managed() -> bool:
    """PEP 668: the interpreter's stdlib folder holds an EXTERNALLY-MANAGED marker."""
    import sysconfig

    return os.path.isfile(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED"))


def _major_minor(version: str | None) -> tuple[int, int] | None:
    parts = re.findall(r"\d+", version or "")
    return (int(parts[0]), int(parts[1])) if len(parts) >= 2 else None


def build_dependency_message(
    missing: list[str],
    *,
    executable: str,
    python: str,
    numpy_version: str | None,
    gdal_version: str | None = None,
    externally_managed: bool = False,
    venv: bool = False,
) -> str | None:
    """The message for ``missing`` packages in the Python at ``executable`` (pure function).

    The numpy in QGIS's Python belongs to QGIS: its GDAL bindings are built against it (numpy
    1.x in QGIS 3.22 on Ubuntu 22.04, numpy 2 in QGIS 3.40 on Debian 13). When numpy is
    there (``numpy_version``), the command never changes it: it installs onnxruntime with
    numpy pinned to that very version, so pip picks an onnxruntime that runs with it instead
    of replacing QGIS's numpy. Only when numpy is missing is it suggested, as ``numpy<2``
    for GDAL older than 3.9 (bindings built for numpy 1) and as plain ``numpy`` otherwise.
    ``externally_managed`` (PEP 668, e.g. Debian 12/13's Python): pip refuses ``--user``
    without ``--break-system-packages``, which then writes to the user's folder only.
    ``venv``: QGIS runs in a virtual environment, where ``--user`` does not apply.
    """
    if not missing:
        return None
    packages = ["onnxruntime-gpu" if m == "onnxruntime" else m for m in missing if m != "numpy"]
    flags = [] if venv else ["--user"]
    notes = (
        ["Use 'onnxruntime' instead of 'onnxruntime-gpu' without a GPU."]
        if "onnxruntime" in missing
        else []
    )
    if numpy_version:
        packages.append(f'"numpy=={numpy_version}"')
        notes.append(
            f"numpy=={numpy_version} is the numpy QGIS already has: pinning it keeps "
            "pip from replacing it."
        )
    elif "numpy" in missing:
        gdal = _major_minor(gdal_version)
        packages.insert(0, '"numpy<2"' if gdal is not None and gdal < (3, 9) else "numpy")
    if externally_managed and not venv:
        flags.append("--break-system-packages")
        notes.append(
            "This Python is marked externally managed (PEP 668); with --user, pip "
            "writes to your home folder only."
        )
    command = " ".join([executable, "-m", "pip", "install", *flags, *packages])
    return " ".join(
        [
            f"Arctic Assist needs the Python package(s) {', '.join(missing)} in QGIS's Python "
            f"({executable}, Python {python}). Install with: {command} (then restart QGIS).",
            *notes,
            "Or start QGIS with PYTHONPATH pointing at a virtual environment that has them (see "
            "the README).",
        ]
    )


def dependency_message(missing: list[str] | None = None) -> str | None:
    """``None`` when all is there, else the one actionable message shown to the user."""
    missing = missing_dependencies() if missing is None else missing
    if not missing:
        return None
    numpy_version = None if "numpy" in missing else _installed_numpy()
    return build_dependency_message(
        missing,
        executable=sys.executable,
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        numpy_version=numpy_version,
        gdal_version=_gdal_version() if numpy_version is None else None,
        externally_managed=_externally_managed(),
        venv=sys.prefix != sys.base_prefix,
    )
