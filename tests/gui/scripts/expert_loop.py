"""The expert loop in the real QGIS window, driven like a user (``qgis --code``).

Detect from the toolbar, accept one proposal and reject another in the review panel,
export the training data, retrain for a few steps, detect again with the new model.
Each stage saves a screenshot; ``result.json`` records what happened. Inputs come from
environment variables set by tests/gui/test_expert_loop.py.
"""

import faulthandler
import json
import os
import sys
import time
import traceback

from osgeo import ogr
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QPushButton, QTextEdit, QToolBar
from qgis.utils import iface, plugins

OUT = os.environ["ARCTIC_ASSIST_GUI_OUT"]
RASTER = os.environ["AA_RASTER"]
MODEL = os.environ["AA_MODEL"]
PYTHON = os.environ["AA_PYTHON"]
WORK = os.environ["AA_WORK"]
STEP_TIMEOUT = float(os.environ.get("AA_STEP_TIMEOUT", "240"))
THRESHOLD = float(os.environ.get("AA_THRESHOLD", "0.3"))
result = {"stages": [], "ok": False}
# a blocked event loop cannot reach the per-stage timeout: dump every thread's stack instead
_STACKS = open(os.path.join(OUT, "stacks.txt"), "w")  # open for the run
faulthandler.dump_traceback_later(STEP_TIMEOUT + 30, repeat=True, file=_STACKS)


def _fail_fast(kind, value, tb):
    """An exception in a Qt slot would open QGIS's modal stack dialog and hang the run:
    record it and quit instead."""
    result["error"] = "".join(traceback.format_exception(kind, value, tb))
    with open(os.path.join(OUT, "result.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    QApplication.instance().exit(1)


sys.excepthook = _fail_fast


def shot(name, dialog=None):
    window = iface.mainWindow()
    window.grab().save(os.path.join(OUT, f"{name}.png"))
    if dialog is not None:
        dialog.grab().save(os.path.join(OUT, f"{name}_dialog.png"))


def toolbar_action(object_name):
    toolbar = iface.mainWindow().findChild(QToolBar, "ArcticAssistToolbar")
    for action in toolbar.actions():
        if action.objectName() == object_name:
            return action
    raise AssertionError(f"toolbar action {object_name} missing")


def run_from_toolbar(object_name, params):
    """Trigger the toolbar action, fill the dialog it opens, press Run; returns the dialog."""
    plugin = plugins["arctic_assist"]
    before = list(plugin.dialogs)
    toolbar_action(object_name).trigger()
    new = [d for d in plugin.dialogs if d not in before]
    assert new, f"{object_name} opened no dialog"
    dialog = new[-1]
    dialog.setParameters(params)
    dialog.runAlgorithm()
    return dialog


def dialog_done(dialog):
    """True once the background task finished (results set, or an error in the log)."""
    if dialog.results():
        return True
    return "Execution failed" in dialog_log(dialog)


def dialog_log(dialog):
    log = dialog.findChild(QTextEdit, "txtLog")
    return log.toPlainText() if log is not None else ""


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


def drive(gen, state):
    """Advance the scenario: numbers are pauses (s), callables are conditions to wait for."""
    try:
        wait = state.get("wait")
        if callable(wait):
            if not wait():
                if time.monotonic() > state["deadline"]:
                    raise AssertionError("timed out waiting for a stage to finish")
                QTimer.singleShot(250, lambda: drive(gen, state))
                return
        nxt = next(gen)
        state["wait"] = nxt
        state["deadline"] = time.monotonic() + STEP_TIMEOUT
        QTimer.singleShot(
            int(nxt * 1000) if isinstance(nxt, (int, float)) else 250, lambda: drive(gen, state)
        )
        return
    except StopIteration:
        pass
    except Exception:  # reported to the test
        result["error"] = traceback.format_exc()
        try:
            shot("failure")
        except Exception:
            pass
    with open(os.path.join(OUT, "result.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    # QGIS 3.22 can crash in its own teardown when layers are still loaded: unload first
    from qgis.core import QgsProject

    QgsProject.instance().removeAllMapLayers()
    QApplication.instance().exit(0 if result["ok"] else 1)


QTimer.singleShot(1500, lambda: drive(scenario(), {}))
