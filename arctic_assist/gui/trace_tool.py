"""Map tool for "Trace calving front": drag a box around a glacier terminus.

The box is saved to a GeoPackage of AOIs (one box per terminus, kept in the profile so
the run is reproducible) and the tracing algorithm's dialog opens with it, ready to run
in the background. With polygons selected in the active vector layer, those are used
instead of a drawn box.
"""

from __future__ import annotations

from datetime import datetime, UTC
from pathlib import Path

from osgeo import ogr, osr
from qgis.core import QgsApplication, QgsProcessingFeatureSourceDefinition, QgsVectorLayer
from qgis.gui import QgsMapToolExtent

ALGORITHM = "arctic_assist:trace_calving_front"


def aoi_folder() -> Path:
    return Path(QgsApplication.qgisSettingsDirPath()) / "arctic_assist" / "aoi"


def write_box(rect, crs_wkt: str, folder: Path) -> Path:
    """One-feature polygon GeoPackage holding the box (temporary name, then renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = folder / f"aoi_{stamp}.gpkg"
    tmp = folder / f".aoi_{stamp}.part.gpkg"
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp))
    layer = ds.CreateLayer("aoi", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("aoi_id", ogr.OFTInteger))
    feat = ogr.Feature(layer.GetLayerDefn())
    feat.SetField("aoi_id", 1)
    x0, y0, x1, y1 = rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()
    feat.SetGeometry(
        ogr.CreateGeometryFromWkt(f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))")
    )
    layer.CreateFeature(feat)
    ds = None
    tmp.replace(path)
    return path


class TraceBoxTool(QgsMapToolExtent):
    def __init__(self, plugin) -> None:
        super().__init__(plugin.iface.mapCanvas())
        self.plugin = plugin
        self.extentChanged.connect(self._box_drawn)

    def _box_drawn(self, rect) -> None:
        if rect.isEmpty() or rect.width() <= 0 or rect.height() <= 0:
            return
        crs = self.canvas().mapSettings().destinationCrs()
        path = write_box(rect, crs.toWkt(), aoi_folder())
        self.clearRubberBand()
        self.plugin.open_algorithm(ALGORITHM, {"AOI": str(path)})


def start_trace(plugin) -> None:
    """Use selected polygons when there are some, else let the user drag a box."""
    layer = plugin.iface.activeLayer()
    if (
        isinstance(layer, QgsVectorLayer)
        and layer.selectedFeatureCount() > 0
        and layer.geometryType() == 2
    ):
        plugin.open_algorithm(
            ALGORITHM, {"AOI": QgsProcessingFeatureSourceDefinition(layer.id(), True)}
        )
        return
    plugin.trace_tool = plugin.trace_tool or TraceBoxTool(plugin)
    plugin.iface.mapCanvas().setMapTool(plugin.trace_tool)
    plugin.iface.messageBar().pushInfo(
        "Arctic Assist", "Drag a box around the glacier terminus to trace its calving front."
    )
