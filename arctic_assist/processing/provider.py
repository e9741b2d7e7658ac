"""The ``arctic_assist`` Processing provider."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .. import about

PROVIDER_ID = "arctic_assist"


def algorithm_classes() -> list[type]:
    """Every algorithm of the provider (imported lazily: nothing heavy at import time)."""
    from .detect_thaw_slumps import DetectThawSlumps
    from .export_training_data import ExportTrainingData
    from .front_distance import FrontDistanceAlgorithm
    from .retrain_model import RetrainModel
    from .setup_training_environment import SetupTrainingEnvironment
    from .trace_calving_front import TraceCalvingFront

    return [
        DetectThawSlumps,
        TraceCalvingFront,
        FrontDistanceAlgorithm,
        ExportTrainingData,
        RetrainModel,
        SetupTrainingEnvironment,
    ]


def headless_no_sidecars() -> None:
    """In ``qgis_process`` no ``.aux.xml`` is written beside the inputs.

    qgis_process loads the raster layers named on its command line before any algorithm
    code runs, and a raster layer's default style computes a histogram that GDAL saves in
    ``<raster>.aux.xml``. Headless runs promise to write nothing beside their inputs, so
    GDAL's auxiliary files are switched off for the qgis_process run (never in the QGIS
    desktop, where they are the user's own cache; there our algorithms switch them off in
    their own thread only).
    """
    from qgis.core import QgsApplication

    if QgsApplication.instance() is not None and QgsApplication.platform() == "qgis_process":
        from osgeo import gdal

        gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")


class ArcticAssistProvider(QgsProcessingProvider):
    def id(self) -> str:  # QGIS API
        return PROVIDER_ID

    def name(self) -> str:
        return "Arctic Assist"

    def longName(self) -> str:
        return f"Arctic Assist {about.version()}"

    def icon(self) -> QIcon:
        return QIcon(about.icon_path("arctic_assist.svg"))

    def versionInfo(self) -> str:
        return about.version()

    def load(self) -> bool:
        headless_no_sidecars()
        return super().load()

    def loadAlgorithms(self) -> None:
        for cls in algorithm_classes():
            self.addAlgorithm(cls())
