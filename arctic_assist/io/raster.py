"""Raster input and output with GDAL: checks, the processing grid, windowed reads, strip writes.

Never reads a whole raster. The processing grid is a GDAL VRT:

- same CRS and (within 1 %) the model's pixel size: ``gdal.Translate(format='VRT',
  srcWin=..., bandList=...)`` - the source pixels, exactly;
- otherwise ``gdal.Warp(format='VRT')`` to the model's pixel size, in the raster's CRS when
  it is projected, in the UTM zone of the raster's centre (EPSG 326xx / 327xx) when it is
  geographic. The warped grid carries an alpha band that marks pixels with source data.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import CanceledError, InputError
from ..core.normalize import prepare, valid_mask
from ..core.spec import ModelSpec

LOG = logging.getLogger(__name__)

#: side of the windows of the nodata scan (read decimated 8x)
SCAN_WINDOW = 4096
#: the processing grid's longest side (a warped grid's size follows the model's pixel size)
MAX_GRID_SIDE = 1_000_000
#: relative pixel-size difference under which no resampling is done
PIXEL_SIZE_TOLERANCE = 0.01
GTIFF_TILED = [
    "TILED=YES",
    "BLOCKXSIZE=256",
    "BLOCKYSIZE=256",
    "COMPRESS=DEFLATE",
    "BIGTIFF=IF_SAFER",
]


def _gdal():
    """GDAL with exceptions on (GDAL, OGR and OSR): the one place the plugin switches them
    on, called at run time by the functions that use GDAL, never at import time (importing
    a module of ours inside QGIS must not change GDAL's error mode under QGIS's feet)."""
    from osgeo import gdal, ogr, osr

    gdal.UseExceptions()
    ogr.UseExceptions()
    osr.UseExceptions()
    return gdal


@contextmanager
def gdal_cache_limit(megabytes: int = 256):
    """Limit GDAL's block cache for the duration of a run (restored afterwards)."""
    gdal = _gdal()
    old = gdal.GetCacheMax()
    gdal.SetCacheMax(int(megabytes) * 1024 * 1024)
    try:
        yield
    finally:
        gdal.SetCacheMax(old)


def srs_traditional(wkt_or_srs: Any) -> Any:
    """An ``osr.SpatialReference`` with x/y (lon/lat) axis order."""
    from osgeo import osr

    if isinstance(wkt_or_srs, osr.SpatialReference):
        srs = wkt_or_srs.Clone()
    else:
        srs = osr.SpatialReference()
        srs.SetFromUserInput(str(wkt_or_srs))
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


@dataclass
class RasterInfo:
    """The input raster as opened (no pixel read)."""

    path: str
    width: int
    height: int
    n_bands: int
    geotransform: tuple[float, ...]
    srs: Any
    nodata: list[float | None]
    descriptions: list[str]
    dtype: str

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return grid_bounds(self.geotransform, self.width, self.height)


def grid_bounds(gt: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    xs = [gt[0] + gt[1] * c + gt[2] * r for c in (0, width) for r in (0, height)]
    ys = [gt[3] + gt[4] * c + gt[5] * r for c in (0, width) for r in (0, height)]
    return min(xs), min(ys), max(xs), max(ys)


def open_raster(path: str) -> tuple[Any, RasterInfo]:
    """Open ``path`` read-only and check it has a CRS; returns (dataset, info)."""
    gdal = _gdal()
    if not path or not (os.path.exists(path) or path.startswith("/vsi")):
        raise InputError(f"raster file not found: {path}")
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise InputError(f"{path} cannot be opened as a raster ({exc})") from exc
    if ds is None or ds.RasterCount == 0:
        raise InputError(f"{path} cannot be opened as a raster (no bands)")
    wkt = ds.GetProjection()
    if not wkt:
        raise InputError(
            f"{path} has no coordinate reference system; assign one (Raster > Projections > "
            "Assign Projection) and run again."
        )
    gt = ds.GetGeoTransform(can_return_null=True)
    if gt is None:
        raise InputError(
            f"{path} is not georeferenced (no geotransform); georeference it "
            "(Raster > Georeferencer) and run again."
        )
    bands = [ds.GetRasterBand(i + 1) for i in range(ds.RasterCount)]
    info = RasterInfo(
        path=path,
        width=ds.RasterXSize,
        height=ds.RasterYSize,
        n_bands=ds.RasterCount,
        geotransform=tuple(gt),
        srs=srs_traditional(wkt),
        nodata=[b.GetNoDataValue() for b in bands],
        descriptions=[b.GetDescription() or "" for b in bands],
        dtype=gdal.GetDataTypeName(bands[0].DataType),
    )
    return ds, info


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone containing (lon, lat)."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def transform_points(pts: np.ndarray, src: Any, dst: Any) -> np.ndarray:
    """``(N, 2)`` points from ``src`` to ``dst`` (x/y order), as float64."""
    from osgeo import osr

    if src.IsSame(dst):
        return np.asarray(pts, dtype=np.float64).copy()
    ct = osr.CoordinateTransformation(srs_traditional(src), srs_traditional(dst))
    out = np.array(ct.TransformPoints([(float(x), float(y)) for x, y in pts]), dtype=np.float64)
    return out[:, :2]


def lonlat_of(pt: Sequence[float], srs: Any) -> tuple[float, float]:
    """(lon, lat) in WGS 84 of the point ``pt`` given in ``srs``."""
    lon, lat = transform_points(np.asarray([pt]), srs, _wgs84())[0]
    return float(lon), float(lat)


def metric_srs_for(srs: Any, lonlat: tuple[float, float]) -> Any:
    """``srs`` when it is projected, else the UTM zone of ``lonlat``."""
    if srs.IsProjected():
        return srs
    return srs_traditional(f"EPSG:{utm_epsg(*lonlat)}")


def transform_bounds(bounds: Sequence[float], src: Any, dst: Any) -> tuple[float, ...]:
    """Bounds (xmin, ymin, xmax, ymax) of ``bounds`` from ``src`` to ``dst`` (densified)."""
    from osgeo import osr

    if src.IsSame(dst):
        return tuple(bounds)
    ct = osr.CoordinateTransformation(srs_traditional(src), srs_traditional(dst))
    return tuple(ct.TransformBounds(bounds[0], bounds[1], bounds[2], bounds[3], 21))


def _intersect(a: Sequence[float], b: Sequence[float]) -> tuple[float, ...] | None:
    out = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return out if out[0] < out[2] and out[1] < out[3] else None


def vector_bounds(path: str, target_srs: Any) -> tuple[float, ...]:
    """Bounds of all features of the first layer of an OGR file, in ``target_srs``."""
    from osgeo import ogr

    _gdal()
    try:
        vds = ogr.Open(path)
    except RuntimeError as exc:
        raise InputError(f"mask {path} cannot be opened as a vector layer ({exc})") from exc
    if vds is None or vds.GetLayerCount() == 0:
        raise InputError(f"mask {path} has no layer")
    layer = vds.GetLayer(0)
    if layer.GetFeatureCount() == 0:
        raise InputError(f"mask {path} has no features: nothing to process")
    xmin, xmax, ymin, ymax = layer.GetExtent()
    srs = layer.GetSpatialRef()
    if srs is None:
        raise InputError(f"mask {path} has no coordinate reference system; assign one")
    return transform_bounds((xmin, ymin, xmax, ymax), srs, target_srs)


@dataclass
class ProcessingGrid:
    """The grid the model runs on (a VRT), and how it relates to the input raster."""

    ds: Any
    vrt_path: str
    width: int
    height: int
    geotransform: tuple[float, ...]
    srs: Any
    n_bands: int
    nodata: list[float | None]
    alpha_band: int | None
    warped: bool
    metres_per_unit: float
    source_vrt: str
    mask_ds: Any = None
    temp_paths: list[str] = field(default_factory=list)
    #: (dataset, band numbers, column offset, row offset) of the source pixels when the grid
    #: is a plain window of the raster (not warped): lets sparse, empty blocks be skipped
    source: tuple[Any, list[int], int, int] | None = None

    def empty_fill_is_invalid(self, spec_nodata: Any) -> bool:
        """True when pixels of absent (sparse) blocks read as nodata: GDAL fills them with
        the band's nodata value, else 0."""
        if any(v is not None for v in self.nodata):
            return True
        return spec_nodata is not None and float(spec_nodata) == 0.0

    def window_is_empty(self, r0: int, c0: int, nr: int, nc: int) -> bool:
        """True when every source band reports the window as absent blocks (a sparse
        GeoTIFF), so that reading it would only give fill values. Cheap: no pixel is read."""
        if self.source is None:
            return False
        gdal = _gdal()
        ds, bands, co, ro = self.source
        try:
            for b in bands:
                flags, _ = ds.GetRasterBand(b).GetDataCoverageStatus(co + c0, ro + r0, nc, nr)
                if flags != gdal.GDAL_DATA_COVERAGE_STATUS_EMPTY:
                    return False
        except (RuntimeError, AttributeError):
            return False
        return True

    @property
    def pixel_size(self) -> float:
        return abs(self.geotransform[1])

    @property
    def pixel_area_m2(self) -> float:
        gt = self.geotransform
        return abs(gt[1] * gt[5] - gt[2] * gt[4]) * self.metres_per_unit**2

    def close(self) -> None:
        """Release datasets and remove the VRTs and temporary files."""
        gdal = _gdal()
        self.ds = None
        self.mask_ds = None
        for p in [self.vrt_path, self.source_vrt, *self.temp_paths]:
            try:
                if p.startswith("/vsimem/"):
                    gdal.Unlink(p)
                elif os.path.exists(p):
                    os.remove(p)
            except (RuntimeError, OSError):
                LOG.debug("could not remove %s", p)


def _metres_per_unit(srs: Any) -> float:
    return float(srs.GetLinearUnits() or 1.0) if srs.IsProjected() else 1.0


def build_grid(
    ds: Any,
    info: RasterInfo,
    bands: Sequence[int],
    spec: ModelSpec,
    extent: Sequence[float] | None = None,
    mask_path: str | None = None,
    workdir: str | None = None,
    resample: str = "bilinear",
) -> ProcessingGrid:
    """Build the processing grid (VRT) for ``bands`` of the raster, limited to ``extent``
    (in the raster's CRS) and to the bounding box of the mask's polygons."""
    gdal = _gdal()
    area = info.bounds
    if extent is not None:
        ext = (
            min(extent[0], extent[2]),
            min(extent[1], extent[3]),
            max(extent[0], extent[2]),
            max(extent[1], extent[3]),
        )
        area = _intersect(area, ext)
        if area is None:
            raise InputError(
                f"the extent {tuple(round(v, 3) for v in ext)} does not intersect the raster "
                f"{info.path} (bounds {tuple(round(v, 3) for v in info.bounds)}, in the "
                "raster's CRS); choose an extent over the raster."
            )
    if mask_path:
        mb = vector_bounds(mask_path, info.srs)
        area = _intersect(area, mb)
        if area is None:
            raise InputError(
                f"the mask {mask_path} does not overlap the raster {info.path} "
                "(or the extent): nothing to process."
            )

    gt = info.geotransform
    rotated = gt[2] != 0 or gt[4] != 0
    tag = uuid.uuid4().hex
    src_vrt = f"/vsimem/arctic_assist_{tag}_src.vrt"
    if info.srs.IsGeographic() or not info.srs.IsProjected():
        if not info.srs.IsGeographic():
            raise InputError(
                f"{info.path}: its CRS is neither projected nor geographic; "
                "reproject it to a projected CRS first."
            )
        cx, cy = (area[0] + area[2]) / 2, (area[1] + area[3]) / 2
        ll = transform_bounds((cx, cy, cx, cy), info.srs, _wgs84())
        target = srs_traditional(f"EPSG:{utm_epsg(ll[0], ll[1])}")
        warp = True
    else:
        target = info.srs
        mpu = _metres_per_unit(info.srs)
        px, py = abs(gt[1]) * mpu, abs(gt[5]) * mpu
        want = spec.pixel_size_m
        warp = rotated or (
            want is not None
            and (
                abs(px / want - 1) > PIXEL_SIZE_TOLERANCE
                or abs(py / want - 1) > PIXEL_SIZE_TOLERANCE
            )
        )
    if not warp:
        c0 = max(0, int(math.floor((area[0] - gt[0]) / gt[1] + 1e-6)))
        c1 = min(info.width, int(math.ceil((area[2] - gt[0]) / gt[1] - 1e-6)))
        if gt[5] < 0:
            r0 = max(0, int(math.floor((area[3] - gt[3]) / gt[5] + 1e-6)))
            r1 = min(info.height, int(math.ceil((area[1] - gt[3]) / gt[5] - 1e-6)))
        else:
            r0 = max(0, int(math.floor((area[1] - gt[3]) / gt[5] + 1e-6)))
            r1 = min(info.height, int(math.ceil((area[3] - gt[3]) / gt[5] - 1e-6)))
        if c1 <= c0 or r1 <= r0:
            raise InputError(f"the extent covers no whole pixel of {info.path}")
        gdal.Translate(
            src_vrt, ds, format="VRT", srcWin=[c0, r0, c1 - c0, r1 - r0], bandList=list(bands)
        )
        vrt_path = src_vrt
        vds = gdal.Open(vrt_path)
        alpha = None
        source = (ds, list(bands), c0, r0)
        LOG.info("processing grid: source pixels, window %d,%d %dx%d", c0, r0, c1 - c0, r1 - r0)
    else:
        gdal.Translate(src_vrt, ds, format="VRT", bandList=list(bands))
        mpu = _metres_per_unit(target)
        if spec.pixel_size_m:
            res = spec.pixel_size_m / mpu
        else:  # keep the source resolution, measured in the target CRS
            w = transform_bounds(info.bounds, info.srs, target)
            res = max((w[2] - w[0]) / info.width, (w[3] - w[1]) / info.height)
        bounds = transform_bounds(area, info.srs, target)
        side = max(bounds[2] - bounds[0], bounds[3] - bounds[1]) / res
        if not side <= MAX_GRID_SIDE:  # the model's pixel size comes from a file
            raise InputError(
                f"resampling {info.path} to the model's pixel size of {res * mpu:g} m gives "
                f"a grid of {side:,.0f} px per side; the limit is {MAX_GRID_SIDE:,} px. "
                "Choose a smaller EXTENT or MASK, or a model made for this resolution."
            )
        # source pixel size in the target CRS, to pick the resampling
        src_b = transform_bounds(info.bounds, info.srs, target)
        src_res = max((src_b[2] - src_b[0]) / info.width, (src_b[3] - src_b[1]) / info.height)
        alg = "average" if res > 1.5 * src_res else resample
        vrt_path = f"/vsimem/arctic_assist_{tag}_warp.vrt"
        nd = [info.nodata[b - 1] for b in bands]
        defined = [v for v in nd if v is not None]
        kwargs: dict[str, Any] = {}
        if defined:  # the raster's nodata; the model's nodata is applied after warping
            vals = " ".join(repr(float(v if v is not None else defined[0])) for v in nd)
            kwargs.update(srcNodata=vals, dstNodata=vals)
        gdal.Warp(
            vrt_path,
            src_vrt,
            format="VRT",
            dstSRS=target.ExportToWkt(),
            xRes=res,
            yRes=res,
            outputBounds=bounds,
            targetAlignedPixels=True,
            resampleAlg=alg,
            dstAlpha=True,
            **kwargs,
        )
        vds = gdal.Open(vrt_path)
        alpha = vds.RasterCount
        source = None
        LOG.info(
            "processing grid: warped to %s at %.3f m (%s), %dx%d",
            target.GetAttrValue("PROJCS") or target.GetName(),
            res * mpu,
            alg,
            vds.RasterXSize,
            vds.RasterYSize,
        )
    n = len(bands)
    grid = ProcessingGrid(
        ds=vds,
        vrt_path=vrt_path,
        width=vds.RasterXSize,
        height=vds.RasterYSize,
        geotransform=tuple(vds.GetGeoTransform()),
        srs=srs_traditional(target),
        n_bands=n,
        nodata=[vds.GetRasterBand(i + 1).GetNoDataValue() for i in range(n)],
        alpha_band=alpha,
        warped=warp,
        metres_per_unit=_metres_per_unit(target),
        source_vrt=src_vrt,
        source=source,
    )
    if mask_path:
        try:
            grid.mask_ds = rasterize_mask(mask_path, grid, workdir)
        except Exception:
            grid.close()
            raise
    return grid


def _wgs84() -> Any:
    return srs_traditional("EPSG:4326")


def rasterize_mask(mask_path: str, grid: ProcessingGrid, workdir: str | None) -> Any:
    """Burn the mask's polygons (any CRS) onto the processing grid (uint8 GeoTIFF on disk)."""
    gdal = _gdal()
    folder = workdir or os.path.dirname(os.path.abspath(mask_path))
    path = os.path.join(folder, f".arctic_assist_mask_{uuid.uuid4().hex}.tif")
    grid.temp_paths.append(path)
    mds = gdal.GetDriverByName("GTiff").Create(
        path,
        grid.width,
        grid.height,
        1,
        gdal.GDT_Byte,
        options=["TILED=YES", "COMPRESS=DEFLATE", "SPARSE_OK=TRUE"],
    )
    mds.SetGeoTransform(grid.geotransform)
    mds.SetProjection(grid.srs.ExportToWkt())
    src = gdal.OpenEx(mask_path, gdal.OF_VECTOR)
    layer_name = src.GetLayer(0).GetName()
    src = None
    gdal.Rasterize(mds, mask_path, burnValues=[1], layers=[layer_name])
    mds.FlushCache()
    return mds


class GridReader:
    """``read(row0, col0, nrows, ncols)`` for the tiling engine: normalised input + valid mask.

    Validity: no band equals its nodata (the raster's, else the model's), the warped grid's
    alpha is > 0, and the pixel is inside the mask polygons (when a mask was given).
    """

    def __init__(self, grid: ProcessingGrid, spec: ModelSpec) -> None:
        self.grid = grid
        self.spec = spec
        self.read_seconds = 0.0  # GDAL reads (and warping)
        self.normalise_seconds = 0.0  # validity mask and normalisation
        #: subtracted from the raw values of every read (detection's OFFSET), before
        #: :attr:`adaptation`; :meth:`raw_valid` applies it too, so the scene is measured
        #: as the model will see it
        self.offset = 0.0
        #: the scene adaptation's plan (core.adapt.Adaptation: its gains), or None
        self.adaptation = None

    def _change(self, n_bands: int, gains: bool = True):
        """The core.adapt.Adaptation of a read (offset, then the plan's gains), or None."""
        from ..core.adapt import Adaptation

        plan = self.adaptation if gains else None
        if plan is None and not self.offset:
            return None
        gain = plan.gain if plan is not None else (1.0,) * n_bands
        return Adaptation(gain, float(self.offset))

    def raw(self, r0: int, c0: int, nr: int, nc: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw band values (C x nr x nc) and the extra validity (alpha and mask) or None."""
        g = self.grid
        arr = g.ds.ReadAsArray(c0, r0, nc, nr)
        if arr.ndim == 2:
            arr = arr[None]
        extra = None
        if g.alpha_band is not None:
            extra = arr[g.alpha_band - 1] > 0
            arr = arr[: g.n_bands]
        if g.mask_ds is not None:
            m = g.mask_ds.GetRasterBand(1).ReadAsArray(c0, r0, nc, nr) > 0
            extra = m if extra is None else extra & m
        return arr, extra

    def nodata(self):
        """The nodata value(s) that make a pixel invalid: the raster's, else the model's."""
        nodata: Any = self.grid.nodata
        if nodata is None or all(v is None for v in nodata):
            nodata = self.spec.nodata_value
        return nodata

    def _nodata_per_band(self, n: int) -> list[float | None]:
        nodata = self.nodata()
        return list(nodata) if isinstance(nodata, (list, tuple)) else [nodata] * n

    def _valid(self, arr: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
        valid = valid_mask(arr, self.nodata())
        return valid & extra if extra is not None else valid

    def raw_valid(self, r0: int, c0: int, nr: int, nc: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw band values (C x nr x nc), less :attr:`offset`, and where they are valid
        (nodata, alpha, mask)."""
        arr, extra = self.raw(r0, c0, nr, nc)
        valid = self._valid(arr, extra)
        change = self._change(arr.shape[0], gains=False)
        if change is not None:
            arr = change.apply(arr, valid, self._nodata_per_band(arr.shape[0]))
        return arr, valid

    def __call__(self, r0: int, c0: int, nr: int, nc: int) -> tuple[np.ndarray, np.ndarray]:
        import time

        t0 = time.perf_counter()
        arr, extra = self.raw(r0, c0, nr, nc)
        t1 = time.perf_counter()
        change = self._change(arr.shape[0])
        if change is not None:
            valid = self._valid(arr, extra)
            arr = change.apply(arr, valid, self._nodata_per_band(arr.shape[0]))
        x, valid = prepare(arr, self.spec, self.grid.nodata, extra)
        self.read_seconds += t1 - t0
        self.normalise_seconds += time.perf_counter() - t1
        return x, valid


def check_has_valid_data(
    grid: ProcessingGrid,
    spec: ModelSpec,
    path: str,
    samples: int = 8,
    size: int = 64,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    window: int = SCAN_WINDOW,
) -> None:
    """Raise InputError when the processing area holds only nodata (cheap in the usual case).

    A few small full-resolution windows are probed first; only if none of them holds valid
    data is the area scanned window by window (``window`` px, read decimated with average
    resampling, which honours nodata, so a small valid patch still shows). Windows whose
    blocks are absent from a sparse GeoTIFF are skipped without reading. The scan reports
    ``progress`` (0..100) and raises :class:`CanceledError` when ``is_canceled()``: a huge,
    mostly empty raster never sits in one long read.
    """
    gdal = _gdal()
    reader = GridReader(grid, spec)
    nodata = reader.nodata()
    ys = np.linspace(0, max(grid.height - size, 0), samples).astype(int)
    xs = np.linspace(0, max(grid.width - size, 0), samples).astype(int)
    for r in sorted(set(ys)):
        for c in sorted(set(xs)):
            _, v = reader.raw_valid(int(r), int(c), min(size, grid.height), min(size, grid.width))
            if v.any():
                return
    skip_empty = grid.empty_fill_is_invalid(spec.nodata_value)
    windows = [
        (r0, c0) for r0 in range(0, grid.height, window) for c0 in range(0, grid.width, window)
    ]
    factor = max(1, window // 512)
    for i, (r0, c0) in enumerate(windows):
        if is_canceled is not None and is_canceled():
            raise CanceledError()
        if progress is not None:
            progress(100.0 * i / len(windows))
        nr, nc = min(window, grid.height - r0), min(window, grid.width - c0)
        if skip_empty and grid.window_is_empty(r0, c0, nr, nc):
            continue
        bx, by = max(1, -(-nc // factor)), max(1, -(-nr // factor))
        arr = grid.ds.ReadAsArray(
            c0, r0, nc, nr, buf_xsize=bx, buf_ysize=by, resample_alg=gdal.GRIORA_Average
        )
        if arr.ndim == 2:
            arr = arr[None]
        v = np.ones(arr.shape[1:], dtype=bool)
        if grid.alpha_band is not None:
            v &= arr[grid.alpha_band - 1] > 0
            arr = arr[: grid.n_bands]
        v &= valid_mask(arr, nodata)
        if grid.mask_ds is not None:
            m = grid.mask_ds.GetRasterBand(1).ReadAsArray(
                c0, r0, nc, nr, buf_xsize=bx, buf_ysize=by, resample_alg=gdal.GRIORA_Average
            )
            v &= m > 0
        if v.any():
            if progress is not None:
                progress(100.0)
            return
    raise InputError(
        f"{path} holds only nodata in the area to process (nodata value "
        f"{_fmt_nodata(nodata)}); choose another raster, extent or mask."
    )


def _fmt_nodata(nodata: Any) -> str:
    if isinstance(nodata, list):
        vals = sorted({str(v) for v in nodata if v is not None})
        return ", ".join(vals) or "none"
    return str(nodata)


class PanelWriter:
    """Write the tiling engine's blocks into a single-band tiled GeoTIFF, whole blocks at a time.

    The engine (:func:`~arctic_assist.core.tiling.sliding_window_stream`) emits blocks of
    arbitrary heights, one column panel at a time, each panel top to bottom. A compressed
    tiled GeoTIFF must be written one whole block at a time (a partially written block that
    leaves the cache is compressed twice and bloats the file), so rows are collected to
    ``block`` rows of the current panel before they are written; panels start on block
    boundaries (:data:`~arctic_assist.core.tiling.PANEL_ALIGN`). The buffer is ``block`` rows
    by one panel, whatever the raster size.
    """

    def __init__(
        self,
        path: str,
        grid: ProcessingGrid,
        dtype: int,
        nodata: float | None,
        options: Sequence[str] = GTIFF_TILED,
        block: int = 256,
    ) -> None:
        gdal = _gdal()
        self.path = path
        self.ds = gdal.GetDriverByName("GTiff").Create(
            path, grid.width, grid.height, 1, dtype, options=list(options)
        )
        self.ds.SetGeoTransform(grid.geotransform)
        self.ds.SetProjection(grid.srs.ExportToWkt())
        self.band = self.ds.GetRasterBand(1)
        if nodata is not None:
            self.band.SetNoDataValue(nodata)
        self.block = block
        self.np_type = {gdal.GDT_Byte: np.uint8, gdal.GDT_Float32: np.float32}[dtype]
        self.buf = np.zeros((0, 0), dtype=self.np_type)
        self.col0 = -1
        self.buf_row0 = 0
        self.filled = 0

    def write(self, row0: int, col0: int, rows: np.ndarray) -> None:
        """Rows ``[row0, row0 + n)`` of the panel whose columns are ``[col0, col0 + ncols)``."""
        if col0 != self.col0 or rows.shape[1] != self.buf.shape[1]:  # a new panel
            self.flush()
            if row0 != 0:
                raise ValueError(f"a panel must start at row 0; got row {row0} at column {col0}")
            self.col0, self.buf_row0 = col0, 0
            self.buf = np.zeros((self.block, rows.shape[1]), dtype=self.np_type)
        if row0 != self.buf_row0 + self.filled:
            raise ValueError(
                f"rows must come in order: got {row0}, expected {self.buf_row0 + self.filled}"
            )
        i = 0
        while i < rows.shape[0]:
            n = min(self.block - self.filled, rows.shape[0] - i)
            self.buf[self.filled : self.filled + n] = rows[i : i + n]
            self.filled += n
            i += n
            if self.filled == self.block:
                self.flush()

    def flush(self) -> None:
        if self.filled:
            self.band.WriteArray(self.buf[: self.filled], self.col0, self.buf_row0)
            self.ds.FlushCache()  # compress and write the finished blocks now
            self.buf_row0 += self.filled
            self.filled = 0

    def close(self) -> None:
        if self.ds is not None:
            self.flush()
            self.ds.FlushCache()
            self.band = None
            self.ds = None


# ----------------------------------------------------------------------------- whole-raster I/O


def read_raster(path: str | Path, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Bands x rows x cols array of a raster (optionally a window xoff, yoff, w, h)."""
    gdal = _gdal()
    ds = gdal.Open(str(path))
    arr = ds.ReadAsArray(*window) if window else ds.ReadAsArray()
    return arr[None] if arr.ndim == 2 else arr


def write_geotiff(
    path: str | Path,
    array: np.ndarray,
    geotransform: Sequence[float],
    crs_wkt: str,
    nodata: float | None = None,
    band_names: Sequence[str] = (),
) -> None:
    """A DEFLATE-compressed GeoTIFF of a (bands x) rows x cols uint8/uint16/int16/float32 array."""
    gdal = _gdal()
    arr = array[None] if array.ndim == 2 else array
    gtype = {
        np.dtype("uint8"): gdal.GDT_Byte,
        np.dtype("uint16"): gdal.GDT_UInt16,
        np.dtype("int16"): gdal.GDT_Int16,
        np.dtype("float32"): gdal.GDT_Float32,
    }[arr.dtype]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), arr.shape[2], arr.shape[1], arr.shape[0], gtype, options=["COMPRESS=DEFLATE"]
    )
    ds.SetGeoTransform(list(geotransform))
    if crs_wkt:
        ds.SetProjection(crs_wkt)
    for b in range(arr.shape[0]):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(arr[b])
        if nodata is not None:
            band.SetNoDataValue(float(nodata))
        if b < len(band_names):
            band.SetDescription(band_names[b])
    ds.FlushCache()
    ds = None
