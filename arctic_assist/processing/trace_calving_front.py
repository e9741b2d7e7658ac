"""``arctic_assist:trace_calving_front``: COBRA calving-front polylines inside AOI boxes."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from ..core import contour as C
from ..core.errors import InputError
from ..core.onnx_model import DEVICES
from .base import (
    loaded_layer_name,
    model_parameter,
    advanced,
    device_parameter,
    VECTOR_FORMATS,
    ArcticAssistAlgorithm,
    StyleLoader,
    require_gpkg,
)


class TraceCalvingFront(ArcticAssistAlgorithm):
    NAME = "trace_calving_front"
    DISPLAY = "Trace calving front (COBRA)"
    GROUP = "Calving fronts"
    GROUP_ID = "calving_fronts"
    ICON = "trace_calving_front.svg"

    INPUT = "INPUT"
    AOI = "AOI"
    MODEL = "MODEL"
    DEVICE = "DEVICE"
    REFINE = "REFINE"
    MIRROR = "MIRROR"
    SNAP = "SNAP"
    OUTPUT = "OUTPUT"
    OUTPUT_ITERATIONS = "OUTPUT_ITERATIONS"

    HELP = (
        "<p>Traces glacier calving fronts with a COBRA deep active contour model "
        "(Heidler et al. 2023) run through ONNX Runtime, and returns them as editable "
        "polylines in map coordinates.</p>"
        "<p>For each AOI box (one box per glacier terminus, in any CRS; a rotated box is "
        "read in its own frame) the raster window is read through GDAL, resampled to the "
        "model's tile (at the model's pixel size when its metadata gives one), normalised as "
        "the model's metadata says, and the snake's vertices are mapped back to map "
        "coordinates exactly.</p><ul>"
        "<li><b>INPUT</b>: the image (e.g. a Landsat panchromatic or red band).</li>"
        "<li><b>AOI</b>: polygon layer, one box per terminus (the toolbar's map tool draws "
        "one).</li>"
        "<li><b>MODEL</b>: ONNX contour model; default: the bundled COBRA model.</li>"
        "<li><b>REFINE</b> (advanced): after the snake has run on the whole box, the box "
        "is cropped around the traced front (the front spanning the crop, the scale the "
        "model was trained at) and traced again, this many times (default 2; 0: the "
        "model's answer on the box as drawn). The final line's vertices are put in an "
        "order that does not cross itself.</li>"
        "<li><b>MIRROR</b> (advanced): also trace the box mirrored left to right and keep "
        "the line that lies on the stronger image edge (ice against water); on by default, "
        "off: one orientation only, half the time.</li>"
        "<li><b>SNAP</b> (advanced): then move each vertex of the line along its normal "
        "onto the strongest image edge at most this many of the model's pixels away (49 m "
        "for the bundled model; default 3; 0: the snake's line as it is). The moves are "
        "smoothed along the line.</li>"
        "<li><b>DEVICE</b> (advanced): auto, cpu or cuda; the provider that ran is stored on "
        "each line.</li><li><b>OUTPUT</b>: GeoPackage of lines with aoi_id, model, model_version, "
        "provider, source, run_id, created, length_m, convergence (displacement of the last "
        "iteration, m) and status = 'proposed'.</li>"
        "<li><b>OUTPUT_ITERATIONS</b>: optional GeoPackage with every iteration's line, to "
        "see how the snake converged.</li></ul>"
        "<p>Outputs are written under a temporary name and renamed at the end.</p>"
    )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input raster"))
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.AOI, "Terminus boxes (AOI)", [QgsProcessing.SourceType.TypeVectorPolygon]
            )
        )
        self.addParameter(model_parameter("contour", self.MODEL))
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    self.REFINE,
                    "Refinement passes on crops around the front",
                    QgsProcessingParameterNumber.Type.Integer,
                    defaultValue=C.REFINE_PASSES,
                    minValue=0,
                    maxValue=5,
                )
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterBoolean(
                    self.MIRROR, "Trace the mirrored box too", defaultValue=C.MIRROR
                )
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    self.SNAP,
                    "Snap vertices to the nearest image edge (model pixels, 0: off)",
                    QgsProcessingParameterNumber.Type.Double,
                    defaultValue=C.SNAP_RADIUS,
                    minValue=0.0,
                    maxValue=C.SNAP_MAX,
                )
            )
        )
        self.addParameter(device_parameter(self.DEVICE))
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT, "Calving fronts", QgsProcessing.SourceType.TypeVectorLine
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT_ITERATIONS,
                "Snake iterations",
                QgsProcessing.SourceType.TypeVectorLine,
                optional=True,
                createByDefault=False,
            )
        )

    def execute(self, parameters: dict[str, Any], context, feedback) -> dict[str, Any]:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise InputError("INPUT: the raster layer could not be opened.")
        model_path = self.model_path(parameters, context, "contour", self.MODEL)
        aoi_path = self.parameterAsCompatibleSourceLayerPath(
            parameters, self.AOI, context, VECTOR_FORMATS, VECTOR_FORMATS[0], feedback
        )
        output = require_gpkg(
            self.parameterAsOutputLayer(parameters, self.OUTPUT, context), self.OUTPUT
        )
        iterations = None
        if parameters.get(self.OUTPUT_ITERATIONS):
            iterations = require_gpkg(
                self.parameterAsOutputLayer(parameters, self.OUTPUT_ITERATIONS, context),
                self.OUTPUT_ITERATIONS,
            )
        device = DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)]

        from ..io.trace import TraceRequest, run_tracing

        progress, is_canceled, log = self.callbacks(feedback)
        result = run_tracing(
            TraceRequest(
                raster_path=layer.source(),
                model_path=model_path,
                aoi_path=aoi_path,
                output_path=output,
                iterations_path=iterations,
                device=device,
                refine_passes=self.parameterAsInt(parameters, self.REFINE, context),
                mirror=self.parameterAsBool(parameters, self.MIRROR, context),
                snap=self.parameterAsDouble(parameters, self.SNAP, context),
            ),
            progress=progress,
            is_canceled=is_canceled,
            log=log,
        )
        feedback.pushInfo(
            f"{result.count} front(s) written to {output} "
            f"(provider {result.provider}, run {result.run_id})"
        )
        for path, name in ((output, "Calving fronts"), (iterations, "Snake iterations")):
            if path and context.willLoadLayerOnCompletion(path):
                details = context.layerToLoadOnCompletionDetails(path)
                details.name = loaded_layer_name(name, layer)
                details.setPostProcessor(StyleLoader.create("calving_fronts.qml"))
        outputs: dict[str, Any] = {
            self.OUTPUT: output,
            "N_FEATURES": result.count,
            "PROVIDER": result.provider,
            "RUN_ID": result.run_id,
        }
        if iterations:
            outputs[self.OUTPUT_ITERATIONS] = iterations
        return outputs
