"""Importing the plugin's GDAL modules leaves GDAL's error mode alone (inside QGIS, the
mode is process-wide): exceptions are switched on at run time by ``io.raster._gdal``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("osgeo.gdal")

MODULES = [
    "io.raster",
    "io.vector",
    "io.detect",
    "io.trace",
    "io.front_distance",
    "io.feedback",
    "io.quicklook",
    "io.training_data",
    "io.training_export",
    "io.training_run",
    "io.models",
    "io.leftovers",
]


def test_importing_does_not_switch_gdal_exceptions_on():
    code = (
        "import importlib\nfrom osgeo import gdal, ogr, osr\n"
        + "".join(f"importlib.import_module('arctic_assist.{m}')\n" for m in MODULES)
        + "print(gdal.GetUseExceptions(), ogr.GetUseExceptions(), osr.GetUseExceptions())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    ).stdout
    assert out.split() == ["0", "0", "0"]


def test_the_run_time_helper_switches_them_on():
    code = (
        "from osgeo import gdal, ogr, osr\nfrom arctic_assist.io.raster import _gdal\n"
        "_gdal()\nprint(gdal.GetUseExceptions(), ogr.GetUseExceptions(), "
        "osr.GetUseExceptions())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    ).stdout
    assert out.split() == ["1", "1", "1"]
