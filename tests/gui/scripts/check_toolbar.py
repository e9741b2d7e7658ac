"""Run inside the real QGIS main window (``qgis --code``): check the plugin's toolbar.

Writes ``result.json`` and ``main_window.png`` into $ARCTIC_ASSIST_GUI_OUT, then quits
QGIS with exit code 0 (all good) or 1.
"""

import json
import os
import time
import traceback

from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QToolBar
from qgis.utils import active_plugins, iface, plugins

OUT = os.environ["ARCTIC_ASSIST_GUI_OUT"]


def check() -> None:
    result = {"ok": False}
    try:
        window = iface.mainWindow()
        window.resize(1280, 800)
        toolbar = window.findChild(QToolBar, "ArcticAssistToolbar")
        result["active_plugins"] = list(active_plugins)
        result["plugin_loaded"] = "arctic_assist" in plugins
        result["toolbar"] = toolbar is not None and toolbar.isVisible()
        result["actions"] = [
            {
                "name": a.objectName(),
                "text": a.text(),
                "enabled": a.isEnabled(),
                "has_icon": not a.icon().isNull(),
            }
            for a in (toolbar.actions() if toolbar else [])
        ]
        from qgis.core import QgsApplication

        provider = QgsApplication.processingRegistry().providerById("arctic_assist")
        result["algorithms"] = sorted(a.id() for a in provider.algorithms()) if provider else []
        window.grab().save(os.path.join(OUT, "main_window.png"))
        result["ok"] = bool(result["plugin_loaded"] and result["toolbar"] and result["actions"])
        open_models_dialog(toolbar, result)
        return
    except Exception:  # reported to the test
        result["error"] = traceback.format_exc()
    finish(result)


def open_models_dialog(toolbar, result) -> None:
    """The Models dialog from its toolbar button; once its Training environment section
    has probed the interpreter, grab it (README screenshot) and record what it says."""
    from qgis.PyQt.QtWidgets import QDialog

    for action in toolbar.actions():
        if action.objectName() == "ArcticAssistModels":
            action.trigger()
    dialog = iface.mainWindow().findChild(QDialog, "ArcticAssistModelsDialog")
    if dialog is None:
        result["ok"] = False
        result["models_dialog"] = None
        finish(result)
        return
    from arctic_assist.gui.training_env_box import TrainingEnvironmentBox

    box = dialog.findChild(TrainingEnvironmentBox, TrainingEnvironmentBox.OBJECT_NAME)
    started = time.monotonic()

    def poll() -> None:
        try:
            if box.last_probe is None and time.monotonic() - started < 120:
                QTimer.singleShot(200, poll)
                return
            dialog.grab().save(os.path.join(OUT, "models_dialog.png"))
            result["models_dialog"] = {
                "in_use": box.in_use.text(),
                "status": box.status.text(),
                "probe_ok": bool(box.last_probe and box.last_probe.get("ok")),
            }
            dialog.close()
        except Exception:  # reported to the test (a slot must not raise into Qt)
            result["ok"] = False
            result["error"] = traceback.format_exc()
        finish(result)

    poll()


def finish(result) -> None:
    with open(os.path.join(OUT, "result.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    # QGIS 3.22 can crash in its own teardown when layers are still loaded: unload first
    from qgis.core import QgsProject

    QgsProject.instance().removeAllMapLayers()
    QApplication.instance().exit(0 if result["ok"] else 1)


QTimer.singleShot(1500, check)
