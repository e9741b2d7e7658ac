"""Calving-front tracing with a COBRA contour model (GDAL/OGR + onnxruntime, no QGIS).

:func:`run_tracing` reads, for every AOI box, the raster inside the box's own oriented
frame (a GDAL warp onto a rotated grid at the model's pixel size), runs the ONNX contour
model, maps every iteration's vertices back to map coordinates exactly (an affine map, see
:mod:`arctic_assist.core.contour`) and writes a GeoPackage of proposed fronts.
The front-distance measure is :mod:`arctic_assist.io.front_distance`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from osgeo import gdal, ogr, osr

from ..core import contour as C
from ..core.errors import InputError, ModelError
from ..core.normalize import normalize
from . import leftovers
from .feedback import CancelFn, Feedback, LogFn, ProgressFn
from .raster import _gdal, lonlat_of, metric_srs_for, srs_traditional, transform_points
from .vector import open_layer

LOG = logging.getLogger(__name__)
#: an AOI box is read whole: its side in model pixels is bounded before anything is allocated
MAX_AOI_SIDE_PX = 8192


@dataclass
class TraceRequest:
    raster_path: str
    model_path: str
    aoi_path: str  # OGR polygon layer, any CRS, one box per terminus
    output_path: str  # .gpkg (lines)
    iterations_path: str | None = None  # optional .gpkg with every iteration's line
    device: str = "auto"
    run_id: str | None = None
    layer_name: str = "calving_fronts"
    aoi_layer: str | None = None  # layer name in aoi_path (default: the first)
    bands: list[int] | None = None  # 1-based raster bands (default: the first n)
    # crops around the front traced again after the whole box (core.contour.trace_window);
    # 0: the model's answer on the box as drawn
    refine_passes: int = C.REFINE_PASSES
    # the box traced mirrored too, the line on the stronger image edge kept
    mirror: bool = C.MIRROR
    # how far (model pixels) each vertex may move onto the nearest strong image edge; 0: off
    snap: float = C.SNAP_RADIUS


@dataclass
class TracedFront:
    aoi_id: Any
    map_xy: np.ndarray  # (V, 2) in the output CRS
    iterations: list[np.ndarray]  # each (V, 2) in the output CRS
    length_m: float
    convergence_m: float
    window: tuple[int, int]  # (width, height) px of the model input
    geotransform: tuple[float, ...]


@dataclass
class TraceResult:
    output_path: str
    iterations_path: str | None
    layer_name: str
    run_id: str
    provider: str
    model_name: str
    model_version: str
    crs_wkt: str
    fronts: list[TracedFront] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.fronts)


# ----------------------------------------------------------------------------- model


class _ContourModel:
    """The ONNX contour model through the shared :class:`~arctic_assist.core.onnx_model.
    OnnxModel` (opset check, provider that really runs, clear errors)."""

    def __init__(self, path: str, device: str = "auto") -> None:
        from ..core.onnx_model import OnnxModel

        if not os.path.isfile(path):
            raise ModelError(f"model file not found: {path}")
        self.inner = OnnxModel.load(path, device, task="contour", tool="calving-front tracing")
        self.spec = self.inner.spec
        self.provider = str(self.inner.provider)
        if self.spec.contour is None:
            raise ModelError(f"{path}: a contour model needs 'contour' in its metadata")
        self.output_names = [o.name for o in self.spec.outputs]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """(1, C, H, W) float32 -> every iteration's (V, 2) model coordinates."""
        outs = self.inner.run(x, self.output_names)
        return [np.asarray(o, dtype=np.float64)[0] for o in outs]


# ----------------------------------------------------------------------------- AOIs


def read_aois(
    path: str, layer: str | None, dst: osr.SpatialReference
) -> list[tuple[Any, np.ndarray]]:
    """``[(aoi_id, polygon exterior points in dst)]`` (ids: an 'id' field, else the FID)."""
    ds, lyr = open_layer(path, layer, "AOI layer")
    src = lyr.GetSpatialRef()
    if src is None:
        raise InputError(
            f"AOI layer {path} has no CRS; assign one (the box must be placed on the raster)"
        )
    src = srs_traditional(src)
    names = [
        lyr.GetLayerDefn().GetFieldDefn(i).GetName().lower()
        for i in range(lyr.GetLayerDefn().GetFieldCount())
    ]
    id_field = next((n for n in ("aoi_id", "id", "name") if n in names), None)
    out = []
    for feat in lyr:
        geom = feat.GetGeometryRef()
        if geom is None or geom.IsEmpty():
            continue
        if ogr.GT_Flatten(geom.GetGeometryType()) not in (ogr.wkbPolygon, ogr.wkbMultiPolygon):
            raise InputError(
                f"AOI layer {path}: feature {feat.GetFID()} is not a polygon; "
                "draw one box polygon per glacier terminus"
            )
        pts = []
        polys = (
            [geom]
            if ogr.GT_Flatten(geom.GetGeometryType()) == ogr.wkbPolygon
            else [geom.GetGeometryRef(i) for i in range(geom.GetGeometryCount())]
        )
        for poly in polys:
            ring = poly.GetGeometryRef(0).Clone()
            ring.Segmentize(_segment_length(ring))  # edges stay straight after reprojection
            pts += [ring.GetPoint_2D(i) for i in range(ring.GetPointCount())]
        aoi_id = feat.GetField(id_field) if id_field else feat.GetFID()
        out.append((aoi_id, transform_points(np.asarray(pts), src, dst)))
    ds = None  # noqa: F841
    if not out:
        raise InputError(
            f"AOI layer {path} has no polygon features; draw a box around each calving front"
        )
    return out


def _segment_length(ring) -> float:
    env = ring.GetEnvelope()
    return max(env[1] - env[0], env[3] - env[2], 1e-9) / 16.0


# ----------------------------------------------------------------------------- windows


def read_window(
    src: gdal.Dataset,
    bands: list[int],
    work_srs: osr.SpatialReference,
    gt: tuple[float, ...],
    width: int,
    height: int,
    src_pixel: float,
    dst_pixel: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``bands`` of ``src`` onto the (rotated) grid ``gt``; returns the
    ``(C, H, W)`` float32 values and the boolean coverage mask (inside the raster and not
    nodata)."""
    _gdal()
    mem = gdal.GetDriverByName("MEM")
    view = (
        gdal.Translate("", src, format="VRT", bandList=bands)
        if (bands != list(range(1, src.RasterCount + 1)))
        else src
    )
    dst = mem.Create("", width, height, len(bands) + 1, gdal.GDT_Float32)
    dst.SetGeoTransform(gt)
    dst.SetProjection(work_srs.ExportToWkt())
    # averaging when downsampling by more than 1.5x, bilinear otherwise
    alg = "average" if dst_pixel > 1.5 * src_pixel else "bilinear"
    gdal.Warp(dst, view, resampleAlg=alg, dstAlpha=True, errorThreshold=0, multithread=False)
    arr = np.stack([dst.GetRasterBand(i + 1).ReadAsArray() for i in range(len(bands))]).astype(
        np.float32
    )
    valid = dst.GetRasterBand(len(bands) + 1).ReadAsArray() > 0
    return arr, valid


# ----------------------------------------------------------------------------- writing

_FIELDS = [
    ("aoi_id", ogr.OFTString),
    ("model", ogr.OFTString),
    ("model_version", ogr.OFTString),
    ("provider", ogr.OFTString),
    ("source", ogr.OFTString),
    ("run_id", ogr.OFTString),
    ("created", ogr.OFTString),
    ("length_m", ogr.OFTReal),
    ("convergence", ogr.OFTReal),
    ("status", ogr.OFTString),
]


def _create_gpkg(path: str, layer: str, srs: osr.SpatialReference, extra=()):
    drv = ogr.GetDriverByName("GPKG")
    ds = drv.CreateDataSource(path)
    lyr = ds.CreateLayer(layer, srs=srs, geom_type=ogr.wkbLineString)
    for name, kind in list(_FIELDS) + list(extra):
        lyr.CreateField(ogr.FieldDefn(name, kind))
    return ds, lyr


def _add_line(lyr, pts: np.ndarray, values: dict[str, Any]) -> None:
    geom = ogr.Geometry(ogr.wkbLineString)
    for x, y in pts:
        geom.AddPoint_2D(float(x), float(y))
    feat = ogr.Feature(lyr.GetLayerDefn())
    feat.SetGeometry(geom)
    for k, v in values.items():
        if v is not None:
            feat.SetField(k, v if not isinstance(v, np.floating) else float(v))
    lyr.CreateFeature(feat)


def _tmp_name(path: str) -> str:
    """Named by process (io/leftovers.py): a later run removes what a killed one left."""
    return leftovers.temp_name(str(path), "tmp")


# ----------------------------------------------------------------------------- tracing


def run_tracing(
    req: TraceRequest,
    progress: ProgressFn | None = None,
    is_canceled: CancelFn | None = None,
    log: LogFn | None = None,
) -> TraceResult:
    """Trace one calving front per AOI box; write ``req.output_path`` (GeoPackage lines).

    Raises :class:`InputError` (no AOI features, AOI outside the raster, raster without
    CRS, bad paths), :class:`ModelError` (not a contour model) or :class:`CanceledError`;
    on any error nothing is left at the output paths.
    """
    feedback = Feedback(progress, is_canceled, log, LOG)
    say, step = feedback.say, feedback.step
    _gdal()

    for p in (req.output_path, req.iterations_path):
        if p and not str(p).lower().endswith(".gpkg"):
            raise InputError(f"output {p} must be a GeoPackage (.gpkg)")
    if not 0 <= req.snap <= C.SNAP_MAX:
        raise InputError(f"SNAP must be 0 to {C.SNAP_MAX:g} model pixels (got {req.snap:g})")
    if not os.path.isfile(req.raster_path):
        raise InputError(f"raster not found: {req.raster_path}")
    try:
        src = gdal.Open(str(req.raster_path))
    except RuntimeError as exc:
        raise InputError(f"{req.raster_path} cannot be read by GDAL ({exc})") from exc
    wkt = src.GetProjection()
    if not wkt:
        raise InputError(f"raster {req.raster_path} has no CRS; assign one before tracing")
    rsrs = srs_traditional(wkt)
    rgt = src.GetGeoTransform()
    model = _ContourModel(req.model_path, req.device)
    spec = model.spec
    nb = spec.n_bands
    bands = list(req.bands) if req.bands else list(range(1, nb + 1))
    if len(bands) != nb or max(bands) > src.RasterCount or min(bands) < 1:
        raise InputError(
            f"the model needs {nb} band(s) ({', '.join(spec.bands)}); the raster has "
            f"{src.RasterCount} and bands {bands} were asked for"
        )
    step(0.0)
    # work CRS: the raster's when projected, else the UTM zone of the raster centre
    cx = rgt[0] + 0.5 * src.RasterXSize * rgt[1] + 0.5 * src.RasterYSize * rgt[2]
    cy = rgt[3] + 0.5 * src.RasterXSize * rgt[4] + 0.5 * src.RasterYSize * rgt[5]
    work = metric_srs_for(rsrs, lonlat_of(np.array([cx, cy]), rsrs))
    unit_m = work.GetLinearUnits() or 1.0
    # raster pixel size in work units (for choosing the resampling)
    corner = transform_points(
        np.array([[rgt[0], rgt[3]], [rgt[0] + rgt[1], rgt[3] + rgt[4]]]), rsrs, work
    )
    src_pixel = float(np.linalg.norm(corner[1] - corner[0]))
    pixel = spec.pixel_size_m / unit_m if spec.pixel_size_m else src_pixel
    aois = read_aois(req.aoi_path, req.aoi_layer, work)
    # raster footprint in the work CRS, for the outside check
    fp = ogr.CreateGeometryFromWkt(_footprint_wkt(src, rsrs, work))
    run_id = req.run_id or uuid.uuid4().hex[:12]
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    mult = max(int(spec.multiple_of or 1), 1)
    fronts: list[TracedFront] = []
    say(
        f"Tracing {len(aois)} front(s) with {spec.name} {spec.version} on {model.provider}; "
        f"pixel size {pixel * unit_m:.1f} m"
    )
    for k, (aoi_id, pts) in enumerate(aois):
        xs, ys = pts[:, 0], pts[:, 1]
        area = 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))
        if not area > pixel * pixel:  # also NaN
            raise InputError(
                f"AOI {aoi_id}: the box has no area (its corners are collinear or within one "
                "pixel); draw a box around the glacier terminus"
            )
        box = C.oriented_box(pts)
        poly = ogr.CreateGeometryFromWkt(
            "POLYGON(("
            + ",".join(f"{x!r} {y!r}" for x, y in list(box.corners()) + [box.corners()[0]])
            + "))"
        )
        if not poly.Intersects(fp):
            raise InputError(f"AOI {aoi_id} lies outside the raster {req.raster_path}")
        inter = poly.Intersection(fp).GetArea() / max(poly.GetArea(), 1e-12)
        if inter < 0.999:
            say(f"AOI {aoi_id}: {100 * (1 - inter):.0f} % of the box is outside the raster")
        gt, w, h = C.window_geotransform(box, pixel, mult, min_size=2 * mult)
        if max(w, h) > MAX_AOI_SIDE_PX:
            raise InputError(
                f"AOI {aoi_id}: the box is {w} x {h} px at the model's {pixel * unit_m:g} m "
                f"pixels ({max(w, h) * pixel * unit_m / 1000:.0f} km); boxes are limited to "
                f"{MAX_AOI_SIDE_PX} px per side: draw a box around one glacier terminus"
            )
        try:
            arr, valid = read_window(src, bands, work, gt, w, h, src_pixel, pixel)
        except RuntimeError as exc:  # GDAL: truncated or corrupt file
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else "read error"
            raise InputError(
                f"{req.raster_path} could not be read inside AOI {aoi_id} ({msg}); the file "
                "may be truncated or corrupt: check it with 'gdalinfo -checksum'"
            ) from None
        valid &= np.all(np.isfinite(arr), axis=0)  # NaN/inf pixels carry no data
        if spec.nodata_value is not None:
            valid &= ~np.any(arr == spec.nodata_value, axis=0)
        if not valid.any():
            raise InputError(
                f"AOI {aoi_id}: no valid pixel of {os.path.basename(req.raster_path)} "
                f"(band(s) {', '.join(map(str, bands))}) inside the box: all nodata or NaN; "
                "move the box over image data or choose another raster"
            )
        if not valid.all():  # fill with the mean of the valid pixels (neutral for the model)
            for c in range(arr.shape[0]):
                arr[c][~valid] = float(arr[c][valid].mean())
        # the window fitted into the model's tile: the geometry it was trained and
        # evaluated on (core.contour.fit_window, shared with training/cobra.py),
        # and refined on crops around the front, the final line untangled
        # (core.contour.trace_window: the procedure the held-out numbers measure)
        steps = C.trace_window(
            model.run,
            normalize(arr, spec),
            spec.tile_size,
            passes=req.refine_passes,
            mirror=req.mirror,
            snap=req.snap,
        )
        iters_work = [C.pixel_to_map(s, gt) for s in steps]
        iters = [transform_points(s, work, rsrs) for s in iters_work]
        fronts.append(
            TracedFront(
                aoi_id=aoi_id,
                map_xy=iters[-1],
                iterations=iters,
                length_m=C.polyline_length(iters_work[-1]) * unit_m,
                convergence_m=C.convergence(iters_work) * unit_m,
                window=(w, h),
                geotransform=gt,
            )
        )
        step(100.0 * (k + 1) / (len(aois) + 1))
    out_srs = rsrs
    from .leftovers import clean_stale

    for final in (req.output_path, req.iterations_path):
        if final:
            clean_stale(str(final), say)
    tmp_out = _tmp_name(req.output_path)
    tmp_it = _tmp_name(req.iterations_path) if req.iterations_path else None
    handles: list[Any] = []  # open OGR datasets, closed before any cleanup
    try:
        base = dict(
            model=spec.name,
            model_version=spec.version,
            provider=model.provider,
            source=os.path.basename(req.raster_path),
            run_id=run_id,
            created=created,
            status="proposed",
        )
        ds, lyr = _create_gpkg(tmp_out, req.layer_name, out_srs)
        handles.append(ds)
        for f in fronts:
            _add_line(
                lyr,
                f.map_xy,
                dict(base, aoi_id=str(f.aoi_id), length_m=f.length_m, convergence=f.convergence_m),
            )
        if tmp_it:
            ds2, lyr2 = _create_gpkg(
                tmp_it,
                req.layer_name + "_iterations",
                out_srs,
                extra=[("iteration", ogr.OFTInteger)],
            )
            handles.append(ds2)
            for f in fronts:
                for i, it in enumerate(f.iterations):
                    _add_line(
                        lyr2,
                        it,
                        dict(
                            base,
                            aoi_id=str(f.aoi_id),
                            iteration=i,
                            length_m=_length_m(it, out_srs, work, unit_m),
                            convergence=f.convergence_m,
                        ),
                    )
        lyr = lyr2 = ds = ds2 = None  # drop references, then close
        for h_ in handles:
            h_.FlushCache()
        handles.clear()
        step(99.0)
        os.replace(tmp_out, req.output_path)
        if tmp_it:
            os.replace(tmp_it, req.iterations_path)
    except BaseException:
        lyr = lyr2 = ds = ds2 = None
        handles.clear()
        leftovers.remove(tmp_out)
        leftovers.remove(tmp_it)
        raise
    step(100.0)
    say(f"Wrote {len(fronts)} front(s) to {req.output_path}")
    return TraceResult(
        output_path=req.output_path,
        iterations_path=req.iterations_path,
        layer_name=req.layer_name,
        run_id=run_id,
        provider=model.provider,
        model_name=spec.name,
        model_version=spec.version,
        crs_wkt=out_srs.ExportToWkt(),
        fronts=fronts,
    )


def _length_m(
    pts: np.ndarray, srs: osr.SpatialReference, work: osr.SpatialReference, unit_m: float
) -> float:
    return C.polyline_length(transform_points(pts, srs, work)) * unit_m


def _footprint_wkt(
    src: gdal.Dataset, rsrs: osr.SpatialReference, work: osr.SpatialReference
) -> str:
    gt = src.GetGeoTransform()
    w, h = src.RasterXSize, src.RasterYSize
    edge = []
    for t in np.linspace(0, 1, 17)[:-1]:
        edge.append((t * w, 0))
    for t in np.linspace(0, 1, 17)[:-1]:
        edge.append((w, t * h))
    for t in np.linspace(1, 0, 17)[:-1]:
        edge.append((t * w, h))
    for t in np.linspace(1, 0, 17)[:-1]:
        edge.append((0, t * h))
    px = np.asarray(edge, dtype=np.float64)
    m = np.stack(
        [gt[0] + px[:, 0] * gt[1] + px[:, 1] * gt[2], gt[3] + px[:, 0] * gt[4] + px[:, 1] * gt[5]],
        axis=1,
    )
    m = transform_points(m, rsrs, work)
    ring = list(m) + [m[0]]
    return "POLYGON((" + ",".join(f"{x!r} {y!r}" for x, y in ring) + "))"
