"""The whole expert loop in a real QGIS window under Xvfb (issue: the expert loop)."""

import shutil
import sys

import pytest
from support import REPO, run_gui_loop, shared_data

pytestmark = pytest.mark.skipif(
    shutil.which("xvfb-run") is None, reason="xvfb-run is not installed (make setup installs it)"
)
MODEL = REPO / "models" / "rts_pixeldino_s2_bgrn.onnx"


def test_detect_review_export_retrain_detect(tmp_path):
    raster = shared_data("rts", "peel", "peel_s2_bgrn_10m.tif")
    if not raster.exists():
        pytest.skip("../shared/data is absent: the loop runs on the real Peel image")
    if not MODEL.exists():
        pytest.skip("models/rts_pixeldino_s2_bgrn.onnx is missing: run 'make models'")
    work = tmp_path / "work"
    work.mkdir()
    proc, result, out = run_gui_loop(
        tmp_path,
        "expert_loop.py",
        "gui_loop",
        {
            "AA_RASTER": str(raster),
            "AA_MODEL": str(MODEL),
            "AA_PYTHON": sys.executable,
            "AA_WORK": str(work),
        },
    )
    stages = [s["stage"] for s in result["stages"]]
    assert stages == ["detect", "review", "export", "retrain", "detect_again"]
    assert (work / "retrained.onnx").exists()
    for name in ("01_detect", "02_review", "03_export", "04_retrain", "05_detect_again"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    assert proc.returncode == 0
