"""One clear sentence for a bad parameter value, before QGIS says "Incorrect parameter value".

:func:`explain_parameter` looks at what the user typed (``qgis_process`` passes strings) and
names the parameter and what is allowed: a number's range, an option's numbers, a file that
does not exist, a file that GDAL/OGR cannot read. It returns ``None`` for anything it does
not recognise (layer ids, layer objects, expressions), leaving those to QGIS.
"""

from __future__ import annotations

import math
import os
from typing import Any

from qgis.core import QgsProcessing, QgsProcessingParameterNumber

#: QGIS's "no limit" for numbers is +-DBL_MAX
_NO_LIMIT = 1e300


def _fmt(v: float) -> str:
    return f"{v:g}"


def _range_text(p) -> str:
    lo, hi = p.minimum(), p.maximum()
    has_lo, has_hi = abs(lo) < _NO_LIMIT, abs(hi) < _NO_LIMIT
    kind = (
        "a whole number"
        if p.dataType() == QgsProcessingParameterNumber.Type.Integer
        else "a number"
    )
    if has_lo and has_hi:
        return f"{kind} from {_fmt(lo)} to {_fmt(hi)}"
    if has_lo:
        return f"{kind} of at least {_fmt(lo)}"
    if has_hi:
        return f"{kind} of at most {_fmt(hi)}"
    return kind


def _number(p, value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if not isinstance(value, (int, float, str)):
        return None  # an expression or property: QGIS evaluates it
    try:
        v = float(value)
    except ValueError:
        return f"{p.name()} must be {_range_text(p)}; got '{value}'."
    integer = p.dataType() == QgsProcessingParameterNumber.Type.Integer
    if not math.isfinite(v) or v < p.minimum() or v > p.maximum() or (integer and v != int(v)):
        return f"{p.name()} must be {_range_text(p)}; got {value}."
    return None


def _enum(p, value: Any) -> str | None:
    if value is None or value == "":
        return None
    options = p.options()
    choices = ", ".join(f"{i} = {o}" for i, o in enumerate(options))
    items = (
        value
        if isinstance(value, list)
        else str(value).split(",")
        if p.allowMultiple()
        else [value]
    )
    for item in items:
        try:
            i = int(str(item).strip())
        except ValueError:
            return (
                f"{p.name()}: give the number of an option ({choices}); got '{item}'. "
                "QGIS 3.22's qgis_process takes options by number."
            )
        if not 0 <= i < len(options):
            return f"{p.name()} must be one of {choices}; got {item}."
    return None


def _paths(value: Any) -> list[str]:
    """File paths among the values (strings with a folder separator or an extension)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if not isinstance(item, str) or not item or item.startswith(("memory:", "/vsi")):
            continue
        path = item.split("|", 1)[0]
        if os.sep in path or os.path.splitext(path)[1]:
            out.append(path)
    return out


def _raster(name: str, path: str) -> str | None:
    from osgeo import gdal

    if not os.path.exists(path):
        return f"{name}: file '{path}' does not exist."
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        return f"{name}: '{path}' is not a raster GDAL can read (the file is empty)."
    try:
        ds = gdal.Open(path)
    except RuntimeError:
        ds = None
    if ds is None or ds.RasterCount == 0:
        return f"{name}: '{path}' is not a raster GDAL can read."
    return None


def _vector(name: str, path: str) -> str | None:
    from osgeo import ogr

    if not os.path.exists(path):
        return f"{name}: file '{path}' does not exist."
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        return f"{name}: '{path}' is not a vector layer OGR can read (the file is empty)."
    try:
        ds = ogr.Open(path)
    except RuntimeError:
        ds = None
    if ds is None or ds.GetLayerCount() == 0:
        return f"{name}: '{path}' is not a vector layer OGR can read."
    return None


_EXPECTED = {
    "extent": "an extent 'xmin,xmax,ymin,ymax [EPSG:code]' or a layer to take it from",
    "boolean": "true or false",
    "vectorDestination": "the path of a GeoPackage file (.gpkg)",
    "rasterDestination": "the path of a GeoTIFF file (.tif)",
    "fileDestination": "the path of a file",
    "folderDestination": "the path of a folder",
    "sink": "the path of a GeoPackage file (.gpkg)",
    "multilayer": "one or more raster files or layers",
    "string": "text",
}


def expected_value(p) -> str:
    """What a parameter accepts, in words (for QGIS's bare 'Incorrect parameter value')."""
    kind = p.type()
    if kind == "number":
        return _range_text(p)
    if kind == "enum":
        return "one of " + ", ".join(f"{i} = {o}" for i, o in enumerate(p.options()))
    if kind == "fileDestination" and p.fileFilter():
        return f"the path of a file ({p.fileFilter()})"
    return _EXPECTED.get(kind, "a valid value (see the algorithm's help)")


def explain_parameter(p, value: Any) -> str | None:
    """A sentence naming ``p`` and what is allowed when ``value`` is wrong, else None."""
    kind = p.type()
    if kind == "number":
        return _number(p, value)
    if kind == "enum":
        return _enum(p, value)
    if kind == "raster":
        for path in _paths(value):
            return _raster(p.name(), path)
    if kind == "multilayer":
        check = _raster if p.layerType() == QgsProcessing.SourceType.TypeRaster else None
        for path in _paths(value):
            msg = (
                check(p.name(), path)
                if check
                else (
                    None if os.path.exists(path) else f"{p.name()}: file '{path}' does not exist."
                )
            )
            if msg:
                return msg
    if kind in ("source", "vector"):
        for path in _paths(value):
            return _vector(p.name(), path)
    if kind == "file":
        for path in _paths(value):
            if p.behavior() == p.Folder:
                if not os.path.isdir(path):
                    return f"{p.name()}: folder '{path}' does not exist."
            elif not os.path.isfile(path):
                return f"{p.name()}: file '{path}' does not exist."
    return None
