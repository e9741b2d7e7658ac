"""Vectorising the thresholded mask and writing the proposals GeoPackage (GDAL/OGR only).

- :func:`polygonize` runs ``gdal.Polygonize`` on the uint8 mask with **4-connectedness**:
  pixels touching only at a corner become separate polygons. 8-connectedness would merge
  slumps that touch diagonally and produce self-touching rings (invalid OGC polygons) that
  QGIS's editing tools and the review panel handle badly; the model's blended probability
  is smooth, so 4-connectedness splits almost nothing real.
- :func:`build_features` drops polygons under ``min_area_m2`` (area on the processing grid,
  metres), scores each polygon with the mean probability of its pixels (reading only the
  polygon's bounding-box window of the probability raster), simplifies it
  (``SimplifyPreserveTopology``, metres) and reprojects it to the raster's CRS.
- :func:`write_gpkg` writes the GeoPackage: fields ``score``, ``area_m2``, ``model``,
  ``model_version``, ``provider``, ``source``, ``run_id``, ``created`` (ISO-8601 UTC) and
  ``status`` (``'proposed'``). Zero features is a valid GeoPackage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import CanceledError
from .raster import _gdal, srs_traditional

LOG = logging.getLogger(__name__)

FIELDS: tuple[tuple[str, str], ...] = (
    ("score", "real"), ("area_m2", "real"), ("model", "str"), ("model_version", "str"),
    ("provider", "str"), ("source", "str"), ("run_id", "str"), ("created", "str"),
    ("status", "str"),
)


@dataclass
class Proposal:
    """One output polygon (WKB in the output CRS) and its per-feature values."""

    wkb: bytes
    score: float
    area_m2: float


def polygonize(mask_path: str) -> tuple[Any, Any]:
    """Polygons of the non-zero pixels of a uint8 mask (4-connected); (datasource, layer)."""
    gdal = _gdal()
    from osgeo import ogr

    src = gdal.Open(mask_path)
    band = src.GetRasterBand(1)
    mem = ogr.GetDriverByName("Memory").CreateDataSource("polygons")
    srs = src.GetSpatialRef()
    layer = mem.CreateLayer("polygons", srs=srs, geom_type=ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("dn", ogr.OFTInteger))
    gdal.Polygonize(band, band, layer, 0, [], callback=None)  # mask = band: skip zeros
    src = None
    return mem, layer


def _pixel_window(env: tuple[float, float, float, float], gt: tuple[float, ...],
                  width: int, height: int) -> tuple[int, int, int, int]:
    xmin, xmax, ymin, ymax = env
    c0 = int(np.floor((xmin - gt[0]) / gt[1] + 1e-6))
    c1 = int(np.ceil((xmax - gt[0]) / gt[1] - 1e-6))
    r0 = int(np.floor((ymax - gt[3]) / gt[5] + 1e-6))
    r1 = int(np.ceil((ymin - gt[3]) / gt[5] - 1e-6))
    c0, r0 = max(c0, 0), max(r0, 0)
    c1, r1 = min(c1, width), min(r1, height)
    return c0, r0, max(c1 - c0, 1), max(r1 - r0, 1)


def polygon_score(geom: Any, prob_band: Any, gt: tuple[float, ...], width: int, height: int,
                  nodata: float = -1.0) -> float:
    """Mean probability of the pixels inside ``geom`` (window read of its bounding box)."""
    gdal = _gdal()
    from osgeo import ogr

    c0, r0, nc, nr = _pixel_window(geom.GetEnvelope(), gt, width, height)
    prob = prob_band.ReadAsArray(c0, r0, nc, nr)
    mem = gdal.GetDriverByName("MEM").Create("", nc, nr, 1, gdal.GDT_Byte)
    mem.SetGeoTransform((gt[0] + c0 * gt[1], gt[1], 0.0, gt[3] + r0 * gt[5], 0.0, gt[5]))
    vds = ogr.GetDriverByName("Memory").CreateDataSource("one")
    srs = geom.GetSpatialReference()
    if srs is not None:
        mem.SetSpatialRef(srs)
    lyr = vds.CreateLayer("one", srs=srs, geom_type=ogr.wkbPolygon)
    feat = ogr.Feature(lyr.GetLayerDefn())
    feat.SetGeometry(geom)
    lyr.CreateFeature(feat)
    gdal.RasterizeLayer(mem, [1], lyr, burn_values=[1])
    inside = (mem.GetRasterBand(1).ReadAsArray() > 0) & (prob != nodata)
    if not inside.any():
        return float("nan")
    return float(prob[inside].mean())


def build_features(
    mask_path: str, prob_path: str, *, grid_gt: tuple[float, ...], grid_srs: Any,
    metres_per_unit: float, out_srs: Any, min_area_m2: float = 0.0, simplify_m: float = 0.0,
    is_canceled: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> list[Proposal]:
    """Polygonise, filter, score, simplify and reproject; returns the proposals."""
    gdal = _gdal()
    from osgeo import osr

    mem, layer = polygonize(mask_path)
    prob_ds = gdal.Open(prob_path)
    prob_band = prob_ds.GetRasterBand(1)
    nodata = prob_band.GetNoDataValue()
    nodata = -1.0 if nodata is None else nodata
    width, height = prob_ds.RasterXSize, prob_ds.RasterYSize
    gsrs, osrs = srs_traditional(grid_srs), srs_traditional(out_srs)
    ct = None if gsrs.IsSame(osrs) else osr.CoordinateTransformation(gsrs, osrs)
    n = layer.GetFeatureCount()
    out: list[Proposal] = []
    tol = simplify_m / metres_per_unit if simplify_m > 0 else 0.0
    for i, feat in enumerate(layer):
        if is_canceled is not None and i % 64 == 0 and is_canceled():
            raise CanceledError()
        geom = feat.GetGeometryRef()
        area = geom.GetArea() * metres_per_unit ** 2
        if area < min_area_m2:
            continue
        score = polygon_score(geom, prob_band, grid_gt, width, height, nodata)
        g = geom.Clone()
        if tol > 0:
            simplified = g.SimplifyPreserveTopology(tol)
            if simplified is not None and not simplified.IsEmpty():
                g = simplified
        if ct is not None:
            g.Transform(ct)
        out.append(Proposal(wkb=bytes(g.ExportToWkb()), score=score, area_m2=area))
        if progress is not None and n:
            progress(100.0 * (i + 1) / n)
    prob_ds = None
    del layer, mem  # the layer belongs to the datasource: release both together
    LOG.info("%d polygon(s) vectorised, %d kept (min area %.1f m2)", n, len(out), min_area_m2)
    return out


def write_gpkg(path: str, layer_name: str, srs: Any, proposals: Iterable[Proposal],
               attrs: dict[str, str]) -> int:
    """Write proposals to a new GeoPackage at ``path``; returns the feature count."""
    _gdal()
    from osgeo import ogr

    types = {"real": ogr.OFTReal, "str": ogr.OFTString}
    drv = ogr.GetDriverByName("GPKG")
    ds = drv.CreateDataSource(path)
    layer = ds.CreateLayer(layer_name, srs=srs_traditional(srs), geom_type=ogr.wkbMultiPolygon,
                           options=["SPATIAL_INDEX=YES"])
    for name, kind in FIELDS:
        layer.CreateField(ogr.FieldDefn(name, types[kind]))
    defn = layer.GetLayerDefn()
    count = 0
    layer.StartTransaction()
    for p in proposals:
        feat = ogr.Feature(defn)
        geom = ogr.ForceToMultiPolygon(ogr.CreateGeometryFromWkb(p.wkb))
        feat.SetGeometry(geom)
        if np.isfinite(p.score):
            feat.SetField("score", float(p.score))
        feat.SetField("area_m2", float(p.area_m2))
        for key, value in attrs.items():
            feat.SetField(key, value)
        layer.CreateFeature(feat)
        count += 1
    layer.CommitTransaction()
    ds.FlushCache()
    ds = None
    return count
