"""A plain QGIS without onnxruntime (the venv kept off its path): qgis_process refuses to
detect with the one install message, and that message keeps QGIS's own numpy - numpy 1.x
with QGIS 3.22 (Debian 12), numpy 2 with QGIS 3.40 (Debian 13, the LTR lane) - instead of
telling a numpy 2 user to install "numpy<2"."""

import subprocess

import numpy as np
import pytest
from support import run_qgis_process, write_raster

SYSTEM_PYTHON = "/usr/bin/python3"  # the Python that Debian's QGIS embeds


def _system_python(code: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    return subprocess.run(
        [SYSTEM_PYTHON, "-c", code], env=env, capture_output=True, text=True, check=False
    )


def test_message_keeps_the_numpy_qgis_has(cli_env, tmp_path):
    if _system_python("import onnxruntime").returncode == 0:
        pytest.skip(f"{SYSTEM_PYTHON} has onnxruntime itself: nothing is missing")
    numpy_version = _system_python("import numpy; print(numpy.__version__)").stdout.strip()
    assert numpy_version, f"{SYSTEM_PYTHON} has no numpy"
    raster = write_raster(tmp_path / "in.tif", np.full((4, 32, 32), 500, dtype=np.uint16))
    out = tmp_path / "out.gpkg"
    env = dict(cli_env, PYTHONPATH="", PYTHONNOUSERSITE="1")  # QGIS's Python as installed
    proc = run_qgis_process(
        ["run", "arctic_assist:detect_thaw_slumps", "--", f"INPUT={raster}", f"OUTPUT={out}"],
        env,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in text, text
    assert "needs the Python package(s) onnxruntime" in text, text
    assert f'"numpy=={numpy_version}"' in text, text
    if int(numpy_version.split(".")[0]) >= 2:
        assert "numpy<2" not in text, text
    assert not out.exists()
