"""``arctic_assist:detect_thaw_slumps``: PixelDINO thaw-slump polygons from a raster."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterBand,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from ..core import adapt as scene_adapt
from ..core.errors import InputError
from ..core.onnx_model import DEVICES
from .base import (
    advanced,
    loaded_layer_name,
    model_parameter,
    device_parameter,
    VECTOR_FORMATS,
    ArcticAssistAlgorithm,
    StyleLoader,
    require_gpkg,
)

#: majority (binary median) filter choices and their window sizes
FILTERS = ["none", "3 x 3", "5 x 5", "7 x 7"]
FILTER_SIZES = [0, 3, 5, 7]
#: clean-up defaults (pixels), chosen on the Peel image (see HELP); the same as
#: ``arctic_assist.io.vector.DEFAULT_CLEANUP`` (numpy is imported only when the algorithm runs)
DEFAULT_MIN_SEGMENT, DEFAULT_FILL_HOLES, DEFAULT_FILTER = 4, 16, 0
#: scene adaptation choices (``arctic_assist.core.adapt.MODES``, same order)
ADAPT_MODES = list(scene_adapt.MODES)
#: the loaded output layer is called "<LAYER_NAME> (<raster layer>, <HH:MM:SS>)"
LAYER_NAME = "Thaw slump proposals"


def parse_bands(value) -> list[int] | None:
    """BANDS given as text ("1,2,3,7", as qgis_process passes it), else ``None``."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return [int(v) for v in value.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise InputError(
            f"BANDS: '{value}' is not a list of band numbers such as 1,2,3,7"
        ) from None


class DetectThawSlumps(ArcticAssistAlgorithm):
    NAME = "detect_thaw_slumps"
    DISPLAY = "Detect thaw slumps (PixelDINO)"
    GROUP = "Thaw slumps"
    GROUP_ID = "thaw_slumps"
    ICON = "detect_thaw_slumps.svg"

    INPUT = "INPUT"
    MODEL = "MODEL"
    BANDS = "BANDS"
    EXTENT = "EXTENT"
    MASK = "MASK"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    SIMPLIFY = "SIMPLIFY"
    MIN_SEGMENT = "MIN_SEGMENT"
    FILL_HOLES = "FILL_HOLES"
    FILTER = "FILTER"
    ADAPT = "ADAPT"
    OFFSET = "OFFSET"
    DEVICE = "DEVICE"
    OUTPUT = "OUTPUT"
    OUTPUT_PROBABILITY = "OUTPUT_PROBABILITY"

    HELP = (
        "<p>Proposes retrogressive thaw slump (RTS) polygons with a PixelDINO segmentation "
        "model (Heidler et al. 2024) run through ONNX Runtime.</p>"
        "<p>The raster is read in windows (any size), resampled to the model's pixel size "
        "(a raster in a geographic CRS is processed in its UTM zone), normalised exactly as "
        "the model's metadata says, and predicted tile by tile with overlapping, smoothly "
        "blended windows. The probability is thresholded, vectorised, filtered and "
        "simplified.</p>"
        "<h3>Parameters</h3><ul>"
        "<li><b>INPUT</b>: multispectral raster (e.g. Sentinel-2 B2, B3, B4, B8 as uint16 DN).</li>"
        "<li><b>MODEL</b>: ONNX model exported by Arctic Assist (or a Deepness segmentation "
        "model); default: the bundled RTS model.</li>"
        "<li><b>BANDS</b>: optional raster bands in the model's band order; by default the "
        "bands are matched by their descriptions (B02_blue, blue, B2...), else by count.</li>"
        "<li><b>EXTENT</b>, <b>MASK</b>: optional limits of the area processed.</li>"
        "<li><b>THRESHOLD</b>: probability threshold; empty = the model's.</li>"
        "<li><b>MIN_AREA</b> (m2): smaller polygons are dropped. <b>SIMPLIFY</b> (m): "
        "simplification tolerance.</li>"
        "<li>Clean-up of the thresholded mask, in pixels of the model's grid, before any "
        "polygon is built: <b>MIN_SEGMENT</b> (default 4): segments with fewer pixels are "
        "removed; <b>FILL_HOLES</b> (default 16): holes with fewer pixels are filled (the "
        "experts of the Peel digitisation experiment drew no holes at all); <b>FILTER</b> "
        "(default none; qgis_process: 0 = none, 1 = 3 x 3, 2 = 5 x 5, 3 = 7 x 7): a "
        "majority (binary median) filter. The defaults were chosen on the Peel Sentinel-2 "
        "image against 12 experts' labels: they change the IoU by less than 0.005 at any "
        "threshold, while the median filter helped or hurt depending on the threshold "
        "(+0.008 to -0.026), so it stays off. 0 switches a clean-up off.</li>"
        "<li><b>ADAPT</b> (advanced; default auto; qgis_process: 0 = auto, 1 = always, "
        "2 = never): scene adaptation. Another scene's sun, season, atmosphere and sensor "
        "calibration change every band's values, and a model trained on a few scenes then "
        "proposes nothing or everything. Models exported by Arctic Assist carry the median "
        "of each band of their training scenes; the algorithm measures the same median on "
        "the whole raster (a sample of about a million pixels, also when EXTENT or MASK "
        "limit the area) and multiplies each band by training median / scene median before "
        "the model sees it (the log shows both, band by band). A median moves little when "
        "part of the scene is lake or cloud. <i>auto</i> skips this, with a warning, when a "
        "band would need a gain beyond x 0.4 .. x 2.5 (another kind of land, other units or "
        "an offset rather than other light); <i>always</i> adapts anyway, <i>never</i> uses "
        "the values as they are. A model without these medians (e.g. a Deepness model) is "
        "never adapted. A raster with little land of the kind the model was trained on "
        "(mostly water, cloud or snow) is better run with never.</li>"
        "<li><b>OFFSET</b> (advanced; default 0): subtracted from every band's values before "
        "anything else, the scene adaptation's measurement included. Sentinel-2 L1C and L2A "
        "products from processing baseline 04.00 (25 January 2022) on add 1000 to every "
        "digital number: set 1000 for those, read from the original product (harmonized "
        "collections have removed it already).</li>"
        "<li><b>DEVICE</b> (advanced): auto (CUDA when ONNX Runtime can use it), cpu or cuda. The "
        "provider that actually ran is logged and stored on every feature.</li>"
        "<li><b>OUTPUT</b>: GeoPackage of polygons with score, area_m2, model, "
        "model_version, provider, source, run_id, created and status = 'proposed'.</li>"
        "<li><b>OUTPUT_PROBABILITY</b>: optional probability GeoTIFF.</li></ul>"
        "<p>Outputs are written under a temporary name and renamed at the end: a failed or "
        "cancelled run leaves nothing behind.</p>"
    )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input raster"))
        self.addParameter(model_parameter("segmentation", self.MODEL))
        self.addParameter(
            QgsProcessingParameterBand(
                self.BANDS,
                "Bands in the model's order (empty: match by description)",
                parentLayerParameterName=self.INPUT,
                optional=True,
                allowMultiple=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterExtent(self.EXTENT, "Limit to extent", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.MASK,
                "Limit to polygons (mask)",
                [QgsProcessing.SourceType.TypeVectorPolygon],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.THRESHOLD,
                "Probability threshold (empty: the model's)",
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
                minValue=0.0,
                maxValue=1.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MIN_AREA,
                "Minimum polygon area (m2)",
                QgsProcessingParameterNumber.Type.Double,
                defaultValue=500.0,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SIMPLIFY,
                "Simplification tolerance (m)",
                QgsProcessingParameterNumber.Type.Double,
                defaultValue=5.0,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MIN_SEGMENT,
                "Remove segments smaller than (pixels)",
                QgsProcessingParameterNumber.Type.Integer,
                defaultValue=DEFAULT_MIN_SEGMENT,
                minValue=0,
                maxValue=1_000_000,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.FILL_HOLES,
                "Fill holes smaller than (pixels)",
                QgsProcessingParameterNumber.Type.Integer,
                defaultValue=DEFAULT_FILL_HOLES,
                minValue=0,
                maxValue=1_000_000,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.FILTER,
                "Majority (median) filter",
                options=FILTERS,
                defaultValue=FILTER_SIZES.index(DEFAULT_FILTER),
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterEnum(
                    self.ADAPT,
                    "Match the scene's band levels to the model's training data",
                    options=ADAPT_MODES,
                    defaultValue=0,
                )
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    self.OFFSET,
                    "Subtract from every band first (e.g. 1000 for Sentinel-2 from 2022 on)",
                    QgsProcessingParameterNumber.Type.Double,
                    defaultValue=0.0,
                    minValue=0.0,
                    maxValue=scene_adapt.MAX_OFFSET,
                )
            )
        )
        self.addParameter(device_parameter(self.DEVICE))
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT, "Thaw slump proposals", QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT_PROBABILITY, "RTS probability", optional=True, createByDefault=False
            )
        )

    def execute(self, parameters: dict[str, Any], context, feedback) -> dict[str, Any]:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise InputError("INPUT: the raster layer could not be opened.")
        raster_path = layer.source()
        model_path = self.model_path(parameters, context, "segmentation", self.MODEL)
        bands = (
            parse_bands(parameters.get(self.BANDS))
            or self.parameterAsInts(parameters, self.BANDS, context)
            or None
        )
        extent = None
        if parameters.get(self.EXTENT):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
            if not rect.isNull() and not rect.isEmpty():
                extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
        mask_path = None
        if parameters.get(self.MASK):
            mask_path = self.parameterAsCompatibleSourceLayerPath(
                parameters, self.MASK, context, VECTOR_FORMATS, VECTOR_FORMATS[0], feedback
            )
        threshold = None
        if parameters.get(self.THRESHOLD) not in (None, ""):
            threshold = self.parameterAsDouble(parameters, self.THRESHOLD, context)
        output = require_gpkg(
            self.parameterAsOutputLayer(parameters, self.OUTPUT, context), self.OUTPUT
        )
        probability = None
        if parameters.get(self.OUTPUT_PROBABILITY):
            probability = (
                self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITY, context) or None
            )
        device = DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)]
        from ..io.detect import DetectRequest, run_detection
        from ..io.vector import Cleanup

        progress, is_canceled, log = self.callbacks(feedback)
        result = run_detection(
            DetectRequest(
                raster_path=raster_path,
                model_path=model_path,
                output_path=output,
                probability_path=probability,
                bands=bands,
                extent=extent,
                mask_path=mask_path,
                threshold=threshold,
                min_area_m2=self.parameterAsDouble(parameters, self.MIN_AREA, context),
                simplify_m=self.parameterAsDouble(parameters, self.SIMPLIFY, context),
                cleanup=Cleanup(
                    min_segment_px=self.parameterAsInt(parameters, self.MIN_SEGMENT, context),
                    fill_holes_px=self.parameterAsInt(parameters, self.FILL_HOLES, context),
                    filter_size=FILTER_SIZES[
                        self.parameterAsEnum(parameters, self.FILTER, context)
                    ],
                ),
                device=device,
                adapt=ADAPT_MODES[self.parameterAsEnum(parameters, self.ADAPT, context)],
                offset=self.parameterAsDouble(parameters, self.OFFSET, context),
            ),
            progress=progress,
            is_canceled=is_canceled,
            log=log,
        )
        if context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            # the source and the time tell two runs apart in the layer tree
            details.name = loaded_layer_name(LAYER_NAME, layer)
            details.setPostProcessor(StyleLoader.create("thaw_slumps.qml"))
        outputs: dict[str, Any] = {
            self.OUTPUT: output,
            "N_FEATURES": result.n_features,
            "PROVIDER": result.provider,
            "RUN_ID": result.run_id,
        }
        if probability:
            outputs[self.OUTPUT_PROBABILITY] = probability
        return outputs
