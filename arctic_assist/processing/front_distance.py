"""``arctic_assist:front_distance``: mean symmetric distance (m) between two line layers."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
)

from .base import ArcticAssistAlgorithm


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

    HELP = (
        "<p>Mean symmetric distance in metres between two calving-front line layers, the "
        "measure used to compare fronts: both are densified, the mean distance from the "
        "points of one line to the other and back is averaged.</p><ul>"
        "<li><b>INPUT</b>: fronts to assess (e.g. the output of Trace calving front).</li>"
        "<li><b>REFERENCE</b>: reference fronts; any CRS (both are brought to a metric CRS: "
        "INPUT's when projected, else its UTM zone).</li>"
        "<li><b>STEP</b>: densification step in metres.</li></ul>"
        "<p>Each INPUT feature is matched with the closest REFERENCE feature; the log lists "
        "the distance per feature and the output MEAN_DISTANCE is the mean over INPUT "
        "features.</p>")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.INPUT, "Fronts", [QgsProcessing.TypeVectorLine]))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.REFERENCE, "Reference fronts", [QgsProcessing.TypeVectorLine]))
        self.addParameter(QgsProcessingParameterNumber(
            self.STEP, "Densification step (m)", QgsProcessingParameterNumber.Double,
            defaultValue=10.0, minValue=0.01))
        self.addOutput(QgsProcessingOutputNumber(self.MEAN_DISTANCE, "Mean distance (m)"))

    def execute(self, parameters: dict[str, Any], context, feedback) -> dict[str, Any]:
        from ..io.trace import front_distance

        paths = [self.parameterAsCompatibleSourceLayerPath(
            parameters, key, context, ["gpkg", "shp", "geojson"], "gpkg", feedback)
            for key in (self.INPUT, self.REFERENCE)]
        result = front_distance(*paths, step_m=self.parameterAsDouble(parameters, self.STEP,
                                                                        context))
        for row in result.per_feature:
            feedback.pushInfo(
                f"feature {row['fid_a']} -> reference {row['fid_b']}: "
                f"{row['distance_m']:.1f} m (to reference {row['a_to_b_m']:.1f} m, "
                f"back {row['b_to_a_m']:.1f} m)")
        feedback.pushInfo(f"Mean symmetric distance: {result.mean_m:.1f} m "
                          f"({len(result.per_feature)} feature(s), CRS {result.crs})")
        return {self.MEAN_DISTANCE: result.mean_m, "PER_FEATURE": result.per_feature}
