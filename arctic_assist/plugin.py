"""The QGIS plugin object: provider registration, dependency check, toolbar."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from qgis.core import Qgis, QgsApplication
from qgis.PyQt import sip
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from . import about
from .deps import dependency_message
from .logsetup import install_qgis_handler, remove_handler

LOG = logging.getLogger(__name__)
TOOLBAR_NAME = "ArcticAssistToolbar"


@dataclass(frozen=True)
class ToolbarEntry:
    object_name: str
    text: str
    icon: str
    algorithm: str = ""  # Processing algorithm whose dialog the action opens, or
    method: str = ""  # the name of the plugin method the action calls


TOOLBAR_ENTRIES = (
    ToolbarEntry(
        "ArcticAssistDetect",
        "Detect thaw slumps",
        "detect_thaw_slumps.svg",
        algorithm="arctic_assist:detect_thaw_slumps",
    ),
    ToolbarEntry(
        "ArcticAssistTrace", "Trace calving front", "trace_calving_front.svg", method="start_trace"
    ),
    ToolbarEntry(
        "ArcticAssistReview", "Review proposals", "review.svg", method="toggle_review_panel"
    ),
    ToolbarEntry(
        "ArcticAssistExport",
        "Export training data",
        "export_training.svg",
        algorithm="arctic_assist:export_training_data",
    ),
    ToolbarEntry(
        "ArcticAssistRetrain",
        "Retrain model",
        "retrain.svg",
        algorithm="arctic_assist:retrain_model",
    ),
    ToolbarEntry("ArcticAssistModels", "Models", "models.svg", method="show_models"),
)


class ArcticAssistPlugin:
    """Headless first: :meth:`initProcessing` is all ``qgis_process`` needs."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider = None
        self.toolbar = None
        self.actions: list[QAction] = []
        self.review_panel = None
        self.trace_tool = None
        self.dialogs: list = []  # open algorithm dialogs (kept alive while shown)
        self._log_handler = None

    # Processing -------------------------------------------------------------------------
    def initProcessing(self) -> None:  # QGIS API
        if self.provider is not None:
            return
        if self._log_handler is None:
            self._log_handler = install_qgis_handler()
        from .processing.provider import ArcticAssistProvider

        provider = ArcticAssistProvider()
        # the registry deletes a duplicate provider: keep ours only if it was added
        if QgsApplication.processingRegistry().addProvider(provider):
            self.provider = provider
        else:
            LOG.warning("a provider with id 'arctic_assist' is already registered")

    # GUI ---------------------------------------------------------------------------------
    def initGui(self) -> None:  # QGIS API
        self.initProcessing()
        self.toolbar = self.iface.addToolBar("Arctic Assist")
        self.toolbar.setObjectName(TOOLBAR_NAME)
        for entry in TOOLBAR_ENTRIES:
            action = QAction(
                QIcon(about.icon_path(entry.icon)), entry.text, self.iface.mainWindow()
            )
            action.setObjectName(entry.object_name)
            action.setToolTip(f"Arctic Assist: {entry.text}")
            if entry.algorithm:
                action.triggered.connect(
                    lambda _=False, alg=entry.algorithm: self.open_algorithm(alg)
                )
            else:
                action.triggered.connect(getattr(self, entry.method))
            self.toolbar.addAction(action)
            self.iface.addPluginToRasterMenu("Arctic Assist", action)
            self.actions.append(action)
        message = dependency_message()
        if message:
            self.iface.messageBar().pushMessage(
                "Arctic Assist", message, level=Qgis.MessageLevel.Warning, duration=0
            )
            LOG.warning(message)

    def open_algorithm(self, algorithm_id: str, parameters: dict | None = None):
        """Open the algorithm's Processing dialog (non-modal: progress, Cancel, log).

        The dialog runs the algorithm as a background task, so QGIS stays responsive;
        the active raster layer is pre-selected as INPUT.
        """
        import processing
        from qgis.core import QgsRasterLayer

        params = dict(parameters or {})
        layer = self.iface.activeLayer()
        if "INPUT" not in params and isinstance(layer, QgsRasterLayer):
            params["INPUT"] = layer
        dialog = processing.createAlgorithmDialog(algorithm_id, params)
        if dialog is None:
            self.iface.messageBar().pushMessage(
                "Arctic Assist",
                f"Algorithm {algorithm_id} is not available",
                level=Qgis.MessageLevel.Critical,
            )
            return None
        self._track(dialog)
        dialog.show()
        dialog.raise_()
        return dialog

    def toggle_review_panel(self) -> None:
        from qgis.PyQt.QtCore import Qt

        from .gui.review_panel import ReviewPanel

        if self.review_panel is None:
            self.review_panel = ReviewPanel(self.iface)
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.review_panel)
            self.review_panel.show()
        else:
            self.review_panel.setVisible(not self.review_panel.isVisible())
        if self.review_panel.isVisible():
            self.review_panel.set_layer(self.iface.activeLayer())
            self.review_panel.raise_()

    def start_trace(self) -> None:
        from .gui.trace_tool import start_trace

        start_trace(self)

    def _track(self, dialog) -> None:
        """Keep a reference to an open dialog (so it is not garbage-collected); dialogs
        delete themselves when closed, so forget those first."""
        self.dialogs = [d for d in self.dialogs if not sip.isdeleted(d) and d.isVisible()]
        self.dialogs.append(dialog)

    def show_models(self) -> None:
        from .gui.models_dialog import ModelsDialog

        dialog = ModelsDialog(self.iface.mainWindow())
        self._track(dialog)
        dialog.show()

    def unload(self) -> None:
        if self.trace_tool is not None:
            self.iface.mapCanvas().unsetMapTool(self.trace_tool)
            self.trace_tool = None
        for dialog in self.dialogs:
            if not sip.isdeleted(dialog):  # closed dialogs are already gone
                dialog.close()
        self.dialogs = []
        if self.review_panel is not None:
            from .gui.review_panel import remove_dock

            remove_dock(self.iface, self.review_panel)
            self.review_panel = None
        for action in self.actions:
            self.iface.removePluginRasterMenu("Arctic Assist", action)
            if self.toolbar is not None:
                self.toolbar.removeAction(action)
            action.deleteLater()
        self.actions = []
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        remove_handler(self._log_handler)
        self._log_handler = None
