"""The real QGIS main window under a virtual screen, with the plugin loaded."""

import json
import shutil

import pytest
from support import ARTIFACTS, run_qgis_script

pytestmark = pytest.mark.skipif(
    shutil.which("xvfb-run") is None, reason="xvfb-run is not installed (make setup installs it)"
)


def test_toolbar_in_real_main_window(tmp_path):
    out = ARTIFACTS / "gui"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    proc = run_qgis_script(tmp_path, "check_toolbar.py", out)
    result_file = out / "result.json"
    assert result_file.exists(), f"QGIS did not run the script:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(result_file.read_text())
    assert result.get("error") is None, result["error"]
    assert result["plugin_loaded"], result
    assert result["toolbar"], "Arctic Assist toolbar missing or hidden"
    names = {a["name"] for a in result["actions"]}
    assert "ArcticAssistDetect" in names
    assert all(a["enabled"] and a["has_icon"] for a in result["actions"])
    assert "arctic_assist:detect_thaw_slumps" in result["algorithms"]
    assert (out / "main_window.png").stat().st_size > 10_000
    # the Models dialog's Training environment section (issue 14): the interpreter that
    # Retrain model uses (here the checkout's .venv) and what it offers, probed in a task
    models = result["models_dialog"]
    assert models is not None, "the Models dialog did not open from its toolbar button"
    assert ".venv/bin/python" in models["in_use"] and models["probe_ok"], models
    assert "torch 2." in models["status"], models
    assert (out / "models_dialog.png").stat().st_size > 10_000
    assert proc.returncode == 0
