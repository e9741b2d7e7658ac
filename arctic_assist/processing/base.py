"""A small base class for the provider's algorithms.

It turns the plugin's user-facing errors into one :class:`QgsProcessingException` (so
``qgis_process`` exits non-zero with that one message and no traceback), checks the
dependencies first, and forwards progress and Cancel between Processing and the core.
"""

from __future__ import annotations

import errno
import html
import logging
import os
import re
from datetime import datetime
from contextlib import contextmanager
from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from .. import about
from ..core.errors import ArcticAssistError, InputError
from ..deps import dependency_message

LOG = logging.getLogger(__name__)

#: vector inputs are handed to GDAL/OGR as a file in one of these formats (QGIS converts
#: other sources, e.g. memory layers or a selection, to the first one)
VECTOR_FORMATS = ["gpkg", "shp", "geojson"]


def advanced(parameter: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    """``parameter`` flagged advanced (shown under *Advanced parameters* in the dialog)."""
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    return parameter


def device_parameter(name: str = "DEVICE") -> QgsProcessingParameterEnum:
    """The device choice (auto / cpu / cuda; numbers 0 / 1 / 2 for ``qgis_process``) of
    every algorithm that runs a model, one definition for all, flagged advanced."""
    from ..core.onnx_model import DEVICES

    return advanced(
        QgsProcessingParameterEnum(name, "Device", options=list(DEVICES), defaultValue=0)
    )


def model_parameter(task: str, name: str = "MODEL") -> QgsProcessingParameterFile:
    """The ONNX model of an algorithm of ``task``: optional, its default the task's default
    model (chosen in the Models dialog, else the bundled one)."""
    from .. import settings

    return QgsProcessingParameterFile(
        name,
        "ONNX model",
        extension="onnx",
        optional=True,
        defaultValue=settings.default_model_path(task),
    )


def loaded_layer_name(name: str, raster_layer) -> str:
    """The name of an output layer loaded into the project: "<name> (<raster layer>,
    <HH:MM:SS>)", so that the layers of several runs stay apart in the layer tree."""
    return f"{name} ({raster_layer.name()}, {datetime.now().strftime('%H:%M:%S')})"


def require_gpkg(path: str, parameter: str) -> str:
    """Outputs are GeoPackages on disk, never memory layers or other formats."""
    if not path or path.startswith("memory:") or not path.lower().endswith(".gpkg"):
        raise InputError(
            f"{parameter} must be a GeoPackage file (.gpkg); got '{path}'. Outputs are saved "
            "to disk so that reviews are never lost."
        )
    return path


_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_FULL_WORDS = ("no space left", "file too large", "disk quota", "not enough space")


def system_error_sentence(exc: BaseException) -> str:
    """One sentence for a GDAL/OGR or system error that reached an algorithm: a truncated
    or corrupt input, a full disk, or memory; GDAL's own message names the file."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.rstrip(". ")
    low = text.lower()
    if isinstance(exc, MemoryError):
        return (
            "Not enough memory for this run; choose a smaller extent or area, or close "
            "other programs. Nothing was written."
        )
    if (isinstance(exc, OSError) and exc.errno in _FULL) or any(w in low for w in _FULL_WORDS):
        return (
            f"Writing failed: the disk is full or the file too large ({text}). Free "
            "some space or choose another output folder; nothing was written."
        )
    if isinstance(exc, OSError):
        return f"A file could not be read or written: {text}. Nothing was written."
    if "write" in low or "writing" in low:
        return (
            f"Writing failed ({text}): the disk may be full or the output folder not "
            "writable. Free some space or choose another output folder; nothing was "
            "written."
        )
    if any(w in low for w in ("read", "tiff", "decode", "corrupt", "truncat")):
        return (
            f"A raster could not be read: {text}. The file may be truncated or corrupt; "
            "check it with 'gdalinfo -checksum' or export it again. Nothing was written."
        )
    return f"GDAL could not complete the run: {text}. Nothing was written."


@contextmanager
def no_sidecar_files():
    """GDAL writes no ``.aux.xml`` (statistics, histograms) beside rasters opened in this
    thread meanwhile: our algorithms never write beside their inputs."""
    from osgeo import gdal

    old = gdal.GetThreadLocalConfigOption("GDAL_PAM_ENABLED", None)
    gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", "NO")
    try:
        yield
    finally:
        gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", old)


class StyleLoader(QgsProcessingLayerPostProcessorInterface):
    """Applies a QML style from ``resources/styles`` when the output is added to a project."""

    _instances: list[StyleLoader] = []  # Processing keeps only a raw pointer: keep them alive

    def __init__(self, qml: str) -> None:
        super().__init__()
        self.qml = qml

    @classmethod
    def create(cls, qml_name: str) -> StyleLoader:
        obj = cls(about.style_path(qml_name))
        cls._instances.append(obj)
        return obj

    def postProcessLayer(self, layer, context, feedback) -> None:
        if layer is not None and layer.isValid():
            layer.loadNamedStyle(self.qml)
            layer.triggerRepaint()


class ArcticAssistAlgorithm(QgsProcessingAlgorithm):
    """Base algorithm: subclasses implement :meth:`execute` and the metadata methods."""

    NAME = ""
    DISPLAY = ""
    GROUP = ""
    GROUP_ID = ""
    ICON = "arctic_assist.svg"
    HELP = ""
    #: False where an algorithm runs without ONNX Runtime and numpy in QGIS's Python
    NEEDS_INFERENCE_PACKAGES = True

    def name(self) -> str:
        return self.NAME

    @staticmethod
    def tr(text: str) -> str:
        """Translatable text (context 'ArcticAssist'; no translations are shipped yet)."""
        return QCoreApplication.translate("ArcticAssist", text)

    def displayName(self) -> str:
        return self.tr(self.DISPLAY)

    def group(self) -> str:
        return self.tr(self.GROUP)

    def groupId(self) -> str:
        return self.GROUP_ID

    def shortHelpString(self) -> str:
        return self.tr(self.HELP) + self.enum_help()

    def parameter_help(self, name: str) -> str:
        """The help of one parameter, as plain text, from the ``<li>`` item of :attr:`HELP`
        that names it in bold (the one place each parameter is documented): the text after
        ``<b>NAME</b>`` up to the next parameter named in bold, or, for names listed
        together (``<b>EXTENT</b>, <b>MASK</b>: ...``), the text they share."""
        tag = f"<b>{name}</b>"
        for item in re.findall(r"<li>(.*?)</li>", self.HELP, flags=re.S):
            if tag not in item:
                continue
            parts = re.split(r"<b>[A-Z][A-Z0-9_]*</b>", item.split(tag, 1)[1])
            for part in parts:
                text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", part)))
                text = text.strip(" ,:;")
                # "(advanced): x" -> "x"; "(m2): x" -> "x (m2)"
                m = re.match(r"^\(([^()]*)\)\s*:?\s*(.+)$", text, flags=re.S)
                if m:
                    note, rest = m.groups()
                    if note == "advanced":
                        text = rest
                    else:
                        text = f"{rest.rstrip('.')} ({note})" + ("." if rest.endswith(".") else "")
                if text:
                    return text[0].upper() + text[1:]
        return ""

    def addParameter(self, parameter, createOutput: bool = True) -> bool:
        """Every parameter gets a translatable description and its help (tooltip in the
        dialog, ``help()`` for the modeler and scripts) from :meth:`parameter_help`."""
        parameter.setDescription(self.tr(parameter.description()))
        text = self.parameter_help(parameter.name())
        if text:
            parameter.setHelp(self.tr(text))
        return super().addParameter(parameter, createOutput)

    def enum_help(self) -> str:
        """qgis_process on QGIS 3.22 takes an option's number, not its name: list them."""
        rows = []
        for p in self.parameterDefinitions():
            if isinstance(p, QgsProcessingParameterEnum):
                choices = ", ".join(f"{i} = {o}" for i, o in enumerate(p.options()))
                rows.append(f"<li><b>{p.name()}</b>: {choices}</li>")
        if not rows:
            return ""
        return (
            "<p>With <code>qgis_process</code> (QGIS 3.22) give an option by its "
            "number:</p><ul>" + "".join(rows) + "</ul>"
        )

    def helpUrl(self) -> str:
        return about.metadata().get("homepage", "")

    def icon(self) -> QIcon:
        return QIcon(about.icon_path(self.ICON))

    def createInstance(self):
        return type(self)()

    def checkParameterValues(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[bool, str]:
        """One sentence per bad value (the range, the choices, 'does not exist', 'not a
        raster GDAL can read') instead of QGIS's 'Incorrect parameter value for X'; layers
        QGIS loads to check them write nothing beside the input (no .aux.xml)."""
        from .checks import explain_parameter

        for p in self.parameterDefinitions():
            message = explain_parameter(p, parameters.get(p.name()))
            if message:
                return False, message
        with no_sidecar_files():
            ok, message = super().checkParameterValues(parameters, context)
        if not ok and message.startswith("Incorrect parameter value for "):
            from .checks import expected_value

            name = message.rsplit(" ", 1)[-1]
            p = self.parameterDefinition(name)
            if p is not None:
                message = (
                    f"{name} ({p.description()}) must be {expected_value(p)}; got "
                    f"'{parameters.get(name, '')}'."
                )
        return ok, message

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        message = dependency_message() if self.NEEDS_INFERENCE_PACKAGES else None
        if message:
            raise QgsProcessingException(message)
        try:
            with no_sidecar_files():
                return self.execute(parameters, context, feedback)
        except ArcticAssistError as exc:
            raise QgsProcessingException(str(exc)) from None
        except (RuntimeError, OSError, MemoryError) as exc:  # GDAL/OGR or the system
            message = system_error_sentence(exc)
            LOG.debug("%s failed", self.NAME, exc_info=True)
            raise QgsProcessingException(message) from None

    def execute(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        raise NotImplementedError

    # helpers shared by the algorithms -------------------------------------------------
    def model_path(
        self, parameters: dict[str, Any], context: QgsProcessingContext, task: str, name="MODEL"
    ) -> str:
        """The model file asked for (else the task's default model); it must exist."""
        from .. import settings

        path = self.parameterAsFile(parameters, name, context) or settings.default_model_path(task)
        if not os.path.isfile(path):
            raise InputError(f"{name}: file '{path}' does not exist.")
        return path

    @staticmethod
    def callbacks(feedback: QgsProcessingFeedback):
        """(progress, is_canceled, log) callables for the QGIS-free core."""

        def progress(pct: float) -> None:
            feedback.setProgress(pct)

        def log(msg: str) -> None:
            feedback.pushInfo(msg)
            LOG.info(msg)

        return progress, feedback.isCanceled, log
