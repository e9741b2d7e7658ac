"""The expert loop in the real QGIS window, driven like a user (``qgis --code``).

Detect from the toolbar, accept one proposal and reject another in the review panel,
export the training data, retrain for a few steps, detect again with the new model.
Each stage saves a screenshot; ``result.json`` records what happened. Inputs come from
environment variables set by tests/gui/test_expert_loop.py.
"""

import os

from osgeo import ogr
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtWidgets import QPushButton
from qgis.utils import iface, plugins

from loop_support import (  # tests/gui/scripts, on PYTHONPATH (support.run_qgis_script)
    dialog_done,
    dialog_log,
    run_from_toolbar,
    shot,
    start,
    toolbar_action,
)

RASTER = os.environ["AA_RASTER"]
MODEL = os.environ["AA_MODEL"]
PYTHON = os.environ["AA_PYTHON"]
WORK = os.environ["AA_WORK"]
THRESHOLD = float(os.environ.get("AA_THRESHOLD", "0.3"))
result = {"stages": [], "ok": False}


def statuses(path):
    ds = ogr.Open(path)
    return {f.GetFID(): f.GetField("status") for f in ds.GetLayer(0)}


def scenario():
    window = iface.mainWindow()
    window.resize(1400, 900)
    raster = QgsRasterLayer(RASTER, "scene")
    assert raster.isValid()
    QgsProject.instance().addMapLayer(raster)
    iface.setActiveLayer(raster)
    iface.mapCanvas().setExtent(raster.extent())
    yield 0.5

    # 1. detect from the toolbar
    first = os.path.join(WORK, "proposals.gpkg")
    dialog = run_from_toolbar(
        "ArcticAssistDetect",
        {"INPUT": raster, "MODEL": MODEL, "OUTPUT": first, "MIN_AREA": 0, "THRESHOLD": THRESHOLD},
    )
    yield lambda: dialog_done(dialog)
    assert dialog.results(), dialog_log(dialog)
    layers = [
        lyr
        for lyr in QgsProject.instance().mapLayers().values()
        if lyr.name().startswith("Thaw slump proposals (")
    ]
    assert layers, "the proposals were not added to the project"
    proposals = layers[0]
    n_proposed = proposals.featureCount()
    result["stages"].append({"stage": "detect", "features": n_proposed})
    shot("01_detect", dialog)
    dialog.close()
    assert n_proposed >= 2, f"need two proposals to review, got {n_proposed}"

    # 2. review: accept one, reject another
    iface.setActiveLayer(proposals)
    toolbar_action("ArcticAssistReview").trigger()
    panel = plugins["arctic_assist"].review_panel
    yield 0.5
    assert panel.isVisible() and panel.layer is proposals
    panel.select_row(0)
    accepted = panel.current_fid()
    panel.findChild(QPushButton, "ArcticAssistReviewAccept").click()
    rejected = panel.current_fid()
    panel.findChild(QPushButton, "ArcticAssistReviewReject").click()
    yield 0.5
    on_disk = statuses(first)
    assert on_disk[accepted] == "accepted" and on_disk[rejected] == "rejected", on_disk
    result["stages"].append({"stage": "review", "accepted": accepted, "rejected": rejected})
    shot("02_review")

    # 3. export the reviewed labels
    data = os.path.join(WORK, "training_data")
    dialog = run_from_toolbar(
        "ArcticAssistExport",
        {"LABELS": proposals, "RASTERS": [raster], "CHIP_SIZE": 64, "OUTPUT": data},
    )
    yield lambda: dialog_done(dialog)
    assert dialog.results(), dialog_log(dialog)
    result["stages"].append({"stage": "export", "chips": dialog.results()["N_CHIPS"]})
    shot("03_export", dialog)
    dialog.close()

    # 4. retrain for a few steps
    new_model = os.path.join(WORK, "retrained.onnx")
    dialog = run_from_toolbar(
        "ArcticAssistRetrain",
        {
            "DATA": data,
            "METHOD": 0,
            "BASE_MODEL": MODEL,
            "STEPS": 3,
            "PYTHON": PYTHON,
            "OUTPUT": new_model,
        },
    )
    yield lambda: dialog_done(dialog)
    assert dialog.results(), dialog_log(dialog)
    result["stages"].append(
        {"stage": "retrain", "model": new_model, "registered": dialog.results().get("REGISTERED")}
    )
    shot("04_retrain", dialog)
    dialog.close()

    # 5. detect again with the new model
    second = os.path.join(WORK, "proposals_retrained.gpkg")
    iface.setActiveLayer(raster)
    dialog = run_from_toolbar(
        "ArcticAssistDetect", {"INPUT": raster, "MODEL": new_model, "OUTPUT": second, "MIN_AREA": 0}
    )
    yield lambda: dialog_done(dialog)
    assert dialog.results(), dialog_log(dialog)
    result["stages"].append(
        {"stage": "detect_again", "features": dialog.results().get("N_FEATURES")}
    )
    dialog.close()
    iface.setActiveLayer(proposals)
    yield 0.5
    shot("05_detect_again")
    result["ok"] = True


start(scenario(), result)
