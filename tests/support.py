"""Helpers shared by the test tiers that start real QGIS processes (cli, gui, package).

They build a throw-away QGIS profile (``QGIS_CUSTOM_CONFIG_PATH``) with the plugin
enabled, a plugin folder that QGIS can load (the checkout linked into the installed
layout, or an unzipped package), and the environment that puts the project's venv on
``PYTHONPATH`` - never the user's profile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ARTIFACTS = Path(os.environ.get("ARCTIC_ASSIST_ARTIFACTS", REPO / "test-artifacts"))
QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
QGIS_GUI = shutil.which("qgis") or "/usr/bin/qgis"


def shared_data(*parts: str) -> Path:
    return SHARED_DATA.joinpath(*parts)


def link_checkout_plugin(plugins_dir: Path) -> Path:
    """Lay the checkout out as an installed plugin folder, with symbolic links."""
    target = plugins_dir / "arctic_assist"
    target.mkdir(parents=True, exist_ok=True)
    for entry in (REPO / "arctic_assist").iterdir():
        if entry.name != "__pycache__":
            (target / entry.name).symlink_to(entry)
    for name in ("metadata.txt", "models", "resources"):
        (target / name).symlink_to(REPO / name)
    return target


def make_profile(config_dir: Path, *, enabled: bool = True) -> Path:
    """A throw-away QGIS config folder whose default profile enables the plugin."""
    ini = config_dir / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text(
        "[PythonPlugins]\n"
        f"arctic_assist={'true' if enabled else 'false'}\n"
        "[qgis]\nshowTips=false\ncheckVersion=false\n"
        "[core]\nNewsFeed\\httpsfeedqgisorg\\disabled=true\n",
        encoding="utf-8",
    )
    return config_dir


def venv_site_packages() -> str:
    return sysconfig.get_paths()["purelib"]


def qgis_env(config_dir: Path, plugins_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "QGIS_CUSTOM_CONFIG_PATH": str(config_dir),
            "QGIS_PLUGINPATH": str(plugins_dir),
            "PYTHONPATH": os.pathsep.join(
                p for p in (venv_site_packages(), env.get("PYTHONPATH", "")) if p
            ),
            "QT_QPA_PLATFORM": env.get("QT_QPA_PLATFORM", "offscreen"),
            "XDG_RUNTIME_DIR": env.get("XDG_RUNTIME_DIR", str(config_dir / "runtime")),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    Path(env["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    env.update(extra)
    return env


def run_qgis_process(
    args: list[str], env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def python() -> str:
    return sys.executable


def run_qgis_script(
    tmp_path, script: str, out_dir, timeout: float = 300, extra_env: dict[str, str] | None = None
):
    """Start the real QGIS main window under Xvfb with a throw-away profile; it runs ``script``."""
    plugins = tmp_path / "plugins"
    link_checkout_plugin(plugins)
    config = make_profile(tmp_path / "config")
    env = qgis_env(config, plugins, ARCTIC_ASSIST_GUI_OUT=str(out_dir), **(extra_env or {}))
    # the scripts share tests/gui/scripts/loop_support.py
    env["PYTHONPATH"] = os.pathsep.join(
        (str(REPO / "tests" / "gui" / "scripts"), env["PYTHONPATH"])
    )
    env.pop("QT_QPA_PLATFORM", None)  # a real X server (Xvfb), not offscreen
    cmd = [
        "xvfb-run",
        "-a",
        "-s",
        "-screen 0 1280x800x24",
        QGIS_GUI,
        "--nologo",
        "--noversioncheck",
        "--nocustomization",
        "--code",
        str(REPO / "tests" / "gui" / "scripts" / script),
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def write_raster(
    path: Path,
    array,
    *,
    epsg: int | None = 32608,
    origin=(470890.0, 7550020.0),
    pixel_size: float = 10.0,
    nodata: float | None = 0,
    descriptions: list[str] | None = None,
    geotransform=None,
) -> Path:
    """Write a (bands, rows, cols) array as a GeoTIFF with GDAL (for the tests' inputs);
    ``geotransform`` overrides ``origin``/``pixel_size``; ``epsg=None``: no CRS."""
    import numpy as np
    from osgeo import gdal, gdal_array, osr

    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    gdal_type = gdal_array.NumericTypeCodeToGDALTypeCode(arr.dtype)
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path),
        arr.shape[2],
        arr.shape[1],
        arr.shape[0],
        gdal_type,
        options=["COMPRESS=DEFLATE", "TILED=YES"],
    )
    ds.SetGeoTransform(
        tuple(geotransform)
        if geotransform is not None
        else (origin[0], pixel_size, 0.0, origin[1], 0.0, -pixel_size)
    )
    if epsg is not None:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
    for i in range(arr.shape[0]):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(arr[i])
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if descriptions:
            band.SetDescription(descriptions[i])
    ds = None
    return Path(path)


def small_training_data(tmp_path: Path):
    """A real (tiny) segmentation training-data folder: a synthetic scene with its label
    polygons, 32 px chips, the top-left chip held out as 'val'."""
    from arctic_assist.io.training_data import build_dataset
    from arctic_assist.training import synthetic

    idx = synthetic.generate(tmp_path / "scenes", {"A": 1}, size=64, seed=3)
    return build_dataset(
        [idx["A"][0]["tif"]],
        [idx["A"][0]["labels"]],
        tmp_path / "ds",
        32,
        split_fn=lambda ri, x, y, w, h: "val" if x == 0 and y == 0 else "train",
    )


def run_gui_loop(tmp_path: Path, script: str, artifacts: str, env: dict[str, str]):
    """Run a GUI loop script (tests/gui/scripts) in the real QGIS window; returns
    (process, result.json as a dict, the artifacts folder with its screenshots)."""
    import json

    out = ARTIFACTS / artifacts
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    proc = run_qgis_script(tmp_path, script, out, timeout=900, extra_env=env)
    result_file = out / "result.json"
    assert result_file.exists(), (
        f"QGIS did not finish the script:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    result = json.loads(result_file.read_text())
    assert result.get("error") is None, result["error"]
    return proc, result, out
