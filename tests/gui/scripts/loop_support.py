"""What the GUI loop scripts share (run inside the real QGIS window by ``qgis --code``).

A scenario is a generator: it does one stage of work as a user would (toolbar actions,
dialogs, the review dock) and yields a pause in seconds or a condition to wait for; the
Qt event loop keeps running in between (background tasks, repaints). :func:`start` drives
it, writes ``result.json`` into $ARCTIC_ASSIST_GUI_OUT, and quits QGIS with exit code 0
(all stages done) or 1.
"""

import faulthandler
import json
import os
import sys
import time
import traceback

from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QTextEdit, QToolBar
from qgis.utils import iface, plugins

OUT = os.environ["ARCTIC_ASSIST_GUI_OUT"]
STEP_TIMEOUT = float(os.environ.get("AA_STEP_TIMEOUT", "240"))
# a blocked event loop cannot reach the per-stage timeout: dump every thread's stack instead
_STACKS = open(os.path.join(OUT, "stacks.txt"), "w")  # open for the run
faulthandler.dump_traceback_later(STEP_TIMEOUT + 30, repeat=True, file=_STACKS)


def write_result(result) -> None:
    with open(os.path.join(OUT, "result.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)


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


def new_dialog(before):
    """The algorithm dialog the plugin opened since ``before`` (its list of dialogs)."""
    new = [d for d in plugins["arctic_assist"].dialogs if d not in before]
    assert new, "no algorithm dialog was opened"
    return new[-1]


def run_dialog(dialog, params):
    dialog.setParameters(params)
    dialog.runAlgorithm()
    return dialog


def run_from_toolbar(object_name, params):
    """Trigger the toolbar action, fill the dialog it opens, press Run; returns the dialog."""
    before = list(plugins["arctic_assist"].dialogs)
    toolbar_action(object_name).trigger()
    return run_dialog(new_dialog(before), params)


def dialog_done(dialog):
    """True once the background task finished (results set, or an error in the log)."""
    if dialog.results():
        return True
    return "Execution failed" in dialog_log(dialog)


def dialog_log(dialog):
    log = dialog.findChild(QTextEdit, "txtLog")
    return log.toPlainText() if log is not None else ""


def start(scenario, result) -> None:
    """Drive ``scenario`` from the event loop once QGIS has started."""

    def fail_fast(kind, value, tb):
        """An exception in a Qt slot would open QGIS's modal stack dialog and hang the
        run: record it and quit instead."""
        result["error"] = "".join(traceback.format_exception(kind, value, tb))
        write_result(result)
        QApplication.instance().exit(1)

    sys.excepthook = fail_fast
    QTimer.singleShot(1500, lambda: _drive(scenario, {}, result))


def _drive(gen, state, result):
    """Advance the scenario: numbers are pauses (s), callables are conditions to wait for."""
    try:
        wait = state.get("wait")
        if callable(wait):
            if not wait():
                if time.monotonic() > state["deadline"]:
                    raise AssertionError("timed out waiting for a stage to finish")
                QTimer.singleShot(250, lambda: _drive(gen, state, result))
                return
        nxt = next(gen)
        state["wait"] = nxt
        state["deadline"] = time.monotonic() + STEP_TIMEOUT
        QTimer.singleShot(
            int(nxt * 1000) if isinstance(nxt, (int, float)) else 250,
            lambda: _drive(gen, state, result),
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
    write_result(result)
    # QGIS 3.22 can crash in its own teardown when layers are still loaded: unload first
    from qgis.core import QgsProject

    QgsProject.instance().removeAllMapLayers()
    QApplication.instance().exit(0 if result["ok"] else 1)
