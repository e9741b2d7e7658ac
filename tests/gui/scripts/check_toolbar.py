"""Run inside the real QGIS main window (``qgis --code``): check the plugin's toolbar.

Writes ``result.json`` and ``main_window.png`` into $ARCTIC_ASSIST_GUI_OUT, then quits
QGIS with exit code 0 (all good) or 1.
"""

import json
import os
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
    except Exception:  # reported to the test
        result["error"] = traceback.format_exc()
    with open(os.path.join(OUT, "result.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    # QGIS 3.22 can crash in its own teardown when layers are still loaded: unload first
    from qgis.core import QgsProject

    QgsProject.instance().removeAllMapLayers()
    QApplication.instance().exit(0 if result["ok"] else 1)


QTimer.singleShot(1500, check)
