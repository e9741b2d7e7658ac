"""PNG quicklooks of a raster with vector outlines drawn on top (GDAL only, no matplotlib).

Used by ``make demo`` and for the figures in the README.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr

from .raster import _gdal, srs_traditional


def _stretch(band: np.ndarray, valid: np.ndarray) -> np.ndarray:
    values = band[valid]
    if values.size == 0:
        return np.zeros(band.shape, np.uint8)
    lo, hi = np.percentile(values, (2, 98))
    scaled = (band.astype(np.float64) - lo) / max(hi - lo, 1e-9)
    out = (np.clip(scaled, 0, 1) * 255).astype(np.uint8)
    out[~valid] = 0
    return out


def render(
    raster: str | Path,
    out_png: str | Path,
    *,
    bands: Sequence[int] = (3, 2, 1),
    overlays: Sequence[tuple[str | Path, tuple[int, int, int]]] = (),
    max_size: int = 1000,
    line_width: int = 2,
) -> Path:
    """Write ``out_png``: a 2-98 % stretched composite with each overlay's outlines."""
    _gdal()
    src = gdal.Open(str(raster))
    scale = max(0.25, max(src.RasterXSize, src.RasterYSize) / max_size)  # up to 4x zoom
    width, height = int(round(src.RasterXSize / scale)), int(round(src.RasterYSize / scale))
    bands = [b for b in bands if b <= src.RasterCount] or [1]
    if len(bands) < 3:
        bands = [bands[0]] * 3
    rgb = []
    for b in bands:
        band = src.GetRasterBand(b)
        arr = band.ReadAsArray(
            buf_xsize=width,
            buf_ysize=height,
            resample_alg=gdal.GRIORA_Average if scale > 1 else gdal.GRIORA_NearestNeighbour,
        ).astype(np.float64)
        nodata = band.GetNoDataValue()
        valid = np.isfinite(arr) & (arr != nodata if nodata is not None else True)
        rgb.append(_stretch(arr, valid))
    gt = src.GetGeoTransform()
    mem = gdal.GetDriverByName("MEM").Create("", width, height, 3, gdal.GDT_Byte)
    mem.SetGeoTransform(
        (
            gt[0],
            gt[1] * src.RasterXSize / width,
            gt[2],
            gt[3],
            gt[4],
            gt[5] * src.RasterYSize / height,
        )
    )
    mem.SetProjection(src.GetProjection())
    for i, arr in enumerate(rgb):
        mem.GetRasterBand(i + 1).WriteArray(arr)
    target = srs_traditional(src.GetProjection())
    for path, colour in overlays:
        _burn_outlines(mem, target, str(path), colour, line_width)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    gdal.GetDriverByName("PNG").CreateCopy(str(out_png), mem)
    aux = Path(str(out_png) + ".aux.xml")
    if aux.exists():
        aux.unlink()
    return out_png


def _burn_outlines(mem, target: osr.SpatialReference, path: str, colour, width: int) -> None:
    try:
        src = ogr.Open(path)
    except RuntimeError:
        src = None
    if src is None:
        raise FileNotFoundError(path)
    drv = ogr.GetDriverByName("Memory")
    lines_ds = drv.CreateDataSource("outlines")
    lines = lines_ds.CreateLayer("l", target, ogr.wkbMultiLineString)
    pixel = abs(mem.GetGeoTransform()[1])
    for layer in src:
        srs = layer.GetSpatialRef()
        transform = None
        if srs is not None:
            transform = osr.CoordinateTransformation(srs_traditional(srs), target)
        for feat in layer:
            geom = feat.GetGeometryRef()
            if geom is None:
                continue
            geom = geom.Clone()
            if transform is not None:
                geom.Transform(transform)
            if geom.GetDimension() == 2:
                geom = geom.GetBoundary()
            if width > 1:
                geom = geom.Buffer(pixel * (width - 1) / 2.0)
            out = ogr.Feature(lines.GetLayerDefn())
            out.SetGeometry(geom)
            lines.CreateFeature(out)
    gdal.RasterizeLayer(
        mem, [1, 2, 3], lines, burn_values=list(colour), options=["ALL_TOUCHED=TRUE"]
    )
