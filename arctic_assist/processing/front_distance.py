"""``arctic_assist:front_distance``: mean symmetric distance (m) between two line layers."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
)

from .base import VECTOR_FORMATS, ArcticAssistAlgorithm


class FrontDistanceAlgorithm(ArcticAssistAlgorithm):
    NAME = "front_distance"
    DISPLAY = "Calving-front distance"
    GROUP = "Calving fronts"
    GROUP_ID = "calving_fronts"
    ICON = "front_distance.svg"

    INPUT = "INPUT"
    REFERENCE = "REFERENCE"
    STEP = "STEP"
    MEAN_DISTANCE = "MEAN_DISTANCE"
    PER_FEATURE = "PER_FEATURE"

    HELP = (
        "<p>Mean symmetric distance in metres between two calving-front line layers, the "
        "measure used to compare fronts: both are densified, the mean distance from the "
        "points of one line to the other and back is averaged.</p><ul>"
        "<li><b>INPUT</b>: fronts to assess (e.g. the output of Trace calving front).</li>"
        "<li><b>REFERENCE</b>: reference fronts; any CRS (both are brought to a metric CRS: "
        "INPUT's when projected, else its UTM zone).</li>"
        "<li><b>STEP</b>: densification step in metres.</li></ul>"
        "<p>Each INPUT feature is matched with the closest REFERENCE feature; the log lists "
        "the distance per feature, the output PER_FEATURE holds them as JSON (fid_a, fid_b, "
        "distance_m, a_to_b_m, b_to_a_m per INPUT feature) and MEAN_DISTANCE is the mean "
        "over INPUT features.</p>"
    )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.INPUT, "Fronts", [QgsProcessing.SourceType.TypeVectorLine]
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.REFERENCE, "Reference fronts", [QgsProcessing.SourceType.TypeVectorLine]
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.STEP,
                "Densification step (m)",
                QgsProcessingParameterNumber.Type.Double,
                defaultValue=10.0,
                minValue=0.01,
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.MEAN_DISTANCE, "Mean distance (m)"))
        self.addOutput(
            QgsProcessingOutputString(self.PER_FEATURE, "Distance per feature (JSON list)")
        )

    def execute(self, parameters: dict[str, Any], context, feedback) -> dict[str, Any]:
        from ..io.front_distance import front_distance

        paths = [
            self.parameterAsCompatibleSourceLayerPath(
                parameters, key, context, VECTOR_FORMATS, VECTOR_FORMATS[0], feedback
            )
            for key in (self.INPUT, self.REFERENCE)
        ]
        result = front_distance(
            *paths, step_m=self.parameterAsDouble(parameters, self.STEP, context)
        )
        for row in result.per_feature:
            feedback.pushInfo(
                f"feature {row['fid_a']} -> reference {row['fid_b']}: "
                f"{row['distance_m']:.1f} m (to reference {row['a_to_b_m']:.1f} m, "
                f"back {row['b_to_a_m']:.1f} m)"
            )
        feedback.pushInfo(
            f"Mean symmetric distance: {result.mean_m:.1f} m "
            f"({len(result.per_feature)} feature(s), CRS {result.crs})"
        )
        rows = [
            {
                k: (v if isinstance(v, (int, float, str)) or v is None else str(v))
                for k, v in row.items()
            }
            for row in result.per_feature
        ]
        return {self.MEAN_DISTANCE: result.mean_m, self.PER_FEATURE: json.dumps(rows)}
