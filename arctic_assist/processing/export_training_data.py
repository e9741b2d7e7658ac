"""``arctic_assist:export_training_data``: reviewed geometries -> training-data folder."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
)

from ..core.errors import InputError
from .base import VECTOR_FORMATS, ArcticAssistAlgorithm


class ExportTrainingData(ArcticAssistAlgorithm):
    NAME = "export_training_data"
    DISPLAY = "Export training data"
    GROUP = "Training"
    GROUP_ID = "training"
    ICON = "export_training.svg"

    LABELS = "LABELS"
    RASTERS = "RASTERS"
    AOI = "AOI"
    UNLABELLED = "UNLABELLED"
    CHIP_SIZE = "CHIP_SIZE"
    ONLY_REVIEWED = "ONLY_REVIEWED"
    OUTPUT = "OUTPUT"

    HELP = (
        "<p>Turns reviewed proposals (or any polygons / lines) into a training-data folder "
        "for <i>Retrain model</i>: manifest.json (CRS, pixel size, bands, normalisation, "
        "provenance), image chips with masks (0 background, 1 thaw slump, 255 ignore) or "
        "with calving-front polylines, and the unlabelled pool for semi-supervised "
        "training.</p><ul>"
        "<li><b>LABELS</b>: polygon layer (thaw slumps) or line layer (calving fronts). By "
        "default only features whose status is 'accepted' or 'edited' are used (a layer "
        "without a 'status' field needs ONLY_REVIEWED off).</li>"
        "<li><b>RASTERS</b>: the source rasters the labels were drawn on.</li>"
        "<li><b>AOI</b>: optional area that was reviewed completely; outside it pixels are "
        "'ignore', inside it everything not labelled is background. <b>Without an AOI</b> "
        "only what you decided on counts as reviewed: accepted and edited features are thaw "
        "slumps, rejected ones and a 16-pixel ring around every reviewed feature are "
        "background, and every other pixel is 'ignore', so slumps the model missed "
        "elsewhere are not taught as background. Draw missed slumps into the layer (status "
        "'accepted') or give an AOI.</li>"
        "<li><b>UNLABELLED</b>: optional further rasters for the unlabelled pool.</li>"
        "<li><b>CHIP_SIZE</b>: chip size in pixels.</li>"
        "<li><b>ONLY_REVIEWED</b>: use only features whose status is 'accepted' or "
        "'edited' (default); off: every feature of LABELS is a label.</li>"
        "<li><b>OUTPUT</b>: a new or empty folder, or a previous export (replaced as a "
        "whole at the end). A folder holding anything else is refused and left untouched: "
        "the export never deletes files it did not write.</li></ul>"
        "<p>Invalid geometries are repaired (or reported), labels in another CRS are "
        "reprojected and clipped to the rasters. The folder is written under a temporary name"
        " and swapped in at the end, so an interrupted export leaves the previous one intact; "
        "the same input gives the same folder.</p>"
    )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.LABELS,
                "Labels (reviewed proposals)",
                [
                    QgsProcessing.SourceType.TypeVectorPolygon,
                    QgsProcessing.SourceType.TypeVectorLine,
                ],
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.RASTERS, "Source rasters", QgsProcessing.SourceType.TypeRaster
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.AOI,
                "Reviewed area (optional)",
                [QgsProcessing.SourceType.TypeVectorPolygon],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.UNLABELLED,
                "Unlabelled rasters (optional)",
                QgsProcessing.SourceType.TypeRaster,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.CHIP_SIZE,
                "Chip size (pixels)",
                QgsProcessingParameterNumber.Type.Integer,
                defaultValue=128,
                minValue=16,
                maxValue=4096,
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.ONLY_REVIEWED, "Only accepted and edited features", defaultValue=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFolderDestination(self.OUTPUT, "Training-data folder")
        )

    def execute(self, parameters: dict[str, Any], context, feedback) -> dict[str, Any]:
        from ..io.training_export import export_training_data

        labels = self.parameterAsCompatibleSourceLayerPath(
            parameters, self.LABELS, context, VECTOR_FORMATS, VECTOR_FORMATS[0], feedback
        )
        rasters = [
            layer.source() for layer in self.parameterAsLayerList(parameters, self.RASTERS, context)
        ]
        if not rasters:
            raise InputError("RASTERS: give at least one source raster.")
        aoi = None
        if parameters.get(self.AOI):
            aoi = self.parameterAsCompatibleSourceLayerPath(
                parameters, self.AOI, context, VECTOR_FORMATS, VECTOR_FORMATS[0], feedback
            )
        unlabelled = [
            layer.source()
            for layer in self.parameterAsLayerList(parameters, self.UNLABELLED, context)
        ]
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        progress, is_canceled, log = self.callbacks(feedback)
        result = export_training_data(
            labels,
            rasters,
            output,
            aoi_path=aoi,
            unlabelled=unlabelled,
            chip_size=self.parameterAsInt(parameters, self.CHIP_SIZE, context),
            only_reviewed=self.parameterAsBool(parameters, self.ONLY_REVIEWED, context),
            log=log,
            is_canceled=is_canceled,
            progress=progress,
        )
        return {
            self.OUTPUT: result.output_dir,
            "TASK": result.task,
            "N_CHIPS": result.n_chips,
            "N_LABELS": result.n_labels,
        }
