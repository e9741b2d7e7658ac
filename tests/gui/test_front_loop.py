"""The glacier half of the expert loop in a real QGIS window under Xvfb (issue 13): trace a
calving front with the map tool, review it in the dock, export, retrain COBRA, trace again."""

import shutil
import sys

import pytest
from support import REPO, run_gui_loop, shared_data

pytestmark = pytest.mark.skipif(
    shutil.which("xvfb-run") is None, reason="xvfb-run is not installed (make setup installs it)"
)
MODEL = REPO / "models" / "calving_front_cobra.onnx"


def test_trace_review_export_retrain_trace(tmp_path):
    hmb = shared_data("calving", "harald_moltke_brae")
    raster = hmb / "basemap" / "harald_moltke_brae.tif"
    box = hmb / "box" / "harald_moltke_brae.shp"
    if not raster.exists() or not box.exists():
        pytest.skip("../shared/data is absent: the loop runs on the real Harald Moltke image")
    work = tmp_path / "work"
    work.mkdir()
    proc, result, out = run_gui_loop(
        tmp_path,
        "front_loop.py",
        "gui_front_loop",
        {
            "AA_RASTER": str(raster),
            "AA_BOX": str(box),
            "AA_MODEL": str(MODEL),
            "AA_PYTHON": sys.executable,
            "AA_WORK": str(work),
        },
    )
    stages = {s["stage"]: s for s in result["stages"]}
    assert list(stages) == [
        "trace_drag",
        "trace_boxes",
        "review",
        "export",
        "retrain",
        "trace_again",
    ]
    assert stages["trace_drag"]["features"] == 1
    # the layer carries the plugin's style (resources/styles/calving_fronts.qml: by review
    # status), not QGIS's random single symbol
    assert stages["trace_drag"]["renderer"] == "QgsCategorizedSymbolRenderer", stages
    assert stages["trace_drag"]["style_attribute"] == "status", stages
    assert stages["export"]["chips"] >= 2  # accepted + edited; the rejected front is not a label
    assert (work / "cobra_retrained.onnx").exists()
    assert stages["trace_again"]["features"] == 1
    for name in ("01_trace_drag", "02_review", "03_retrain", "04_trace_again"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    assert proc.returncode == 0
