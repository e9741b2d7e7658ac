"""Export reviewed geometries as a training-data folder (the format of ``training.data``).

QGIS-free (GDAL/OGR); the Processing algorithm ``arctic_assist:export_training_data`` is a
thin wrapper. Polygons become masks (0 background, 1 RTS, 255 ignore outside the reviewed
area); lines become calving-front chips with the front as a polyline in chip pixels.

The folder is written under a temporary name beside the destination and swapped in at the
end, so an interrupted export leaves the previous folder intact; the same input gives the
same folder, byte for byte.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr

from ..core.errors import CanceledError, InputError

gdal.UseExceptions()
ogr.UseExceptions()
LOG = logging.getLogger(__name__)
REVIEWED = ("accepted", "edited")
VAL_EVERY = 5  # every 5th chip (on a diagonal pattern) is held out for validation metrics


def _split(index: int) -> str:
    return "val" if index % VAL_EVERY == VAL_EVERY - 1 else "train"


@dataclass
class ExportResult:
    output_dir: str
    task: str
    n_labels: int
    n_repaired: int
    n_chips: int
    n_unlabelled: int
    skipped: dict[str, int] = field(default_factory=dict)


def _srs_of(ds: gdal.Dataset, path: str) -> osr.SpatialReference:
    wkt = ds.GetProjection()
    if not wkt:
        raise InputError(f"RASTERS: {path} has no coordinate reference system; assign one "
                         "(Raster > Projections > Assign Projection) and run again.")
    srs = osr.SpatialReference(wkt=wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _stable_timestamp(paths: Sequence[str]) -> str:
    """A creation date that depends only on the inputs (so re-exports are identical)."""
    mtimes = [os.path.getmtime(p) for p in paths if p and os.path.exists(p)]
    stamp = datetime.fromtimestamp(max(mtimes) if mtimes else 0, tz=UTC)
    return stamp.isoformat(timespec="seconds")


def collect_labels(labels_path: str, layer_name: str | None, target: osr.SpatialReference,
                   out_path: Path, only_reviewed: bool) -> tuple[str, int, int, dict[str, int]]:
    """Copy the usable label features to ``out_path`` in the raster's CRS.

    Returns (kind 'polygon'|'line', n written, n repaired, counts per status).
    Invalid geometries are repaired (MakeValid); ones that cannot be repaired are reported.
    """
    src = ogr.Open(labels_path)
    if src is None:
        raise InputError(f"LABELS: {labels_path} is not a vector layer OGR can read.")
    layer = src.GetLayerByName(layer_name) if layer_name else src.GetLayer(0)
    if layer is None:
        raise InputError(f"LABELS: no layer '{layer_name}' in {labels_path}.")
    flat = ogr.GT_Flatten(layer.GetGeomType())
    if flat in (ogr.wkbPolygon, ogr.wkbMultiPolygon, ogr.wkbCurvePolygon, ogr.wkbMultiSurface):
        kind = "polygon"
    elif flat in (ogr.wkbLineString, ogr.wkbMultiLineString):
        kind = "line"
    else:
        raise InputError(f"LABELS: {labels_path} holds {ogr.GeometryTypeToName(flat)} "
                         "geometries; give a polygon (thaw slumps) or line (fronts) layer.")
    srs = layer.GetSpatialRef()
    if srs is None:
        raise InputError(f"LABELS: {labels_path} has no coordinate reference system.")
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = None if srs.IsSame(target) else osr.CoordinateTransformation(srs, target)
    has_status = layer.GetLayerDefn().GetFieldIndex("status") >= 0
    counts: dict[str, int] = {}
    out_ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(out_path))
    out = out_ds.CreateLayer("labels", target,
                             ogr.wkbMultiPolygon if kind == "polygon" else ogr.wkbLineString)
    written = repaired = 0
    for feat in sorted(layer, key=lambda f: f.GetFID()):
        status = (feat.GetField("status") if has_status else None) or "unreviewed"
        counts[status] = counts.get(status, 0) + 1
        if only_reviewed and has_status and status not in REVIEWED:
            continue
        geom = feat.GetGeometryRef()
        if geom is None or geom.IsEmpty():
            continue
        geom = geom.Clone()
        if not geom.IsValid():
            fixed = geom.MakeValid()
            if fixed is None or fixed.IsEmpty() or not fixed.IsValid():
                raise InputError(f"LABELS: feature {feat.GetFID()} of {labels_path} has an "
                                 "invalid geometry that cannot be repaired; fix it with the "
                                 "vertex tool or 'Fix geometries'.")
            geom = fixed
            repaired += 1
        if transform is not None:
            geom.Transform(transform)
        parts = []
        if kind == "polygon":
            polys = ogr.ForceToMultiPolygon(geom)
            parts = [polys] if not polys.IsEmpty() else []
        else:
            lines = ogr.ForceToMultiLineString(geom)
            parts = [lines.GetGeometryRef(i).Clone() for i in range(lines.GetGeometryCount())]
        for part in parts:
            out_feat = ogr.Feature(out.GetLayerDefn())
            out_feat.SetGeometry(part)
            out.CreateFeature(out_feat)
            written += 1
    out_ds = None
    return kind, written, repaired, counts


def _line_chips(rasters: Sequence[str], lines_path: Path, out_dir: Path, chip_size: int,
                bands: Sequence[int] | None) -> list[dict]:
    """One chip per front: the window centred on the line, the line in chip pixels."""
    from ..training.data import read_raster, write_geotiff

    chips = []
    ds_lines = ogr.Open(str(lines_path))
    layer = ds_lines.GetLayer(0)
    lines = [np.array(f.GetGeometryRef().GetPoints())[:, :2] for f in layer]
    for ri, raster in enumerate(rasters):
        ds = gdal.Open(raster)
        gt = ds.GetGeoTransform()
        inv = gdal.InvGeoTransform(gt)
        idx = list(bands or range(1, ds.RasterCount + 1))
        names = [ds.GetRasterBand(i).GetDescription() or f"band{i}" for i in idx]
        for li, pts in enumerate(lines):
            cols = inv[0] + inv[1] * pts[:, 0] + inv[2] * pts[:, 1]
            rows = inv[3] + inv[4] * pts[:, 0] + inv[5] * pts[:, 1]
            cx, cy = (cols.min() + cols.max()) / 2, (rows.min() + rows.max()) / 2
            size = int(max(chip_size, np.ceil(max(np.ptp(cols), np.ptp(rows)) * 1.25)))
            x0 = int(np.clip(round(cx - size / 2), 0, max(ds.RasterXSize - size, 0)))
            y0 = int(np.clip(round(cy - size / 2), 0, max(ds.RasterYSize - size, 0)))
            w, h = min(size, ds.RasterXSize - x0), min(size, ds.RasterYSize - y0)
            inside = (cols >= x0) & (cols <= x0 + w) & (rows >= y0) & (rows <= y0 + h)
            if inside.mean() < 0.9:
                continue  # this front is not on this raster
            raw = read_raster(raster, (x0, y0, w, h))[[i - 1 for i in idx]]
            cgt = (gt[0] + x0 * gt[1] + y0 * gt[2], gt[1], gt[2],
                   gt[3] + x0 * gt[4] + y0 * gt[5], gt[4], gt[5])
            name = f"chips/r{ri:02d}_front{li:04d}"
            nodata = ds.GetRasterBand(idx[0]).GetNoDataValue()
            write_geotiff(out_dir / f"{name}.tif", raw, cgt, ds.GetProjection(), nodata, names)
            polyline = [[round(float(c - x0), 3), round(float(r - y0), 3)]
                        for c, r in zip(cols, rows)]
            chips.append({"image": f"{name}.tif", "polyline": polyline,
                          "region": Path(raster).stem, "split": _split(len(chips))})
    return chips


def export_training_data(labels_path: str, rasters: Sequence[str], output_dir: str, *,
                         labels_layer: str | None = None, aoi_path: str | None = None,
                         unlabelled: Sequence[str] = (), chip_size: int = 128,
                         only_reviewed: bool = True,
                         log: Callable[[str], None] | None = None,
                         is_canceled: Callable[[], bool] | None = None) -> ExportResult:
    from ..training import data as D  # numpy + GDAL only; no torch

    say = log or LOG.info
    rasters = [str(r) for r in rasters]
    if not rasters:
        raise InputError("RASTERS: give at least one source raster.")
    first = gdal.Open(rasters[0])
    if first is None:
        raise InputError(f"RASTERS: {rasters[0]} is not a raster GDAL can read.")
    target = _srs_of(first, rasters[0])
    for r in rasters[1:] + list(unlabelled):
        if gdal.Open(r) is None:
            raise InputError(f"RASTERS/UNLABELLED: {r} is not a raster GDAL can read.")
    out = Path(output_dir)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"OUTPUT: cannot create '{parent}': {exc}") from None
    if not os.access(parent, os.W_OK):
        raise InputError(f"OUTPUT: folder '{parent}' is not writable.")
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.part-", dir=parent))
    try:
        labels_tmp = work / "_labels.gpkg"
        kind, n, repaired, counts = collect_labels(labels_path, labels_layer, target,
                                                   labels_tmp, only_reviewed)
        summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        if repaired:
            say(f"Repaired {repaired} invalid geometr{'y' if repaired == 1 else 'ies'}.")
        if n == 0:
            which = "accepted or edited " if only_reviewed else ""
            raise InputError(f"LABELS: no {which}features to export in {labels_path} "
                             f"({summary or 'empty layer'}). Review some proposals first"
                             f"{' or export all features' if only_reviewed else ''}.")
        say(f"Labels: {n} {kind} feature(s) exported of {summary}.")
        if is_canceled and is_canceled():
            raise CanceledError()
        dest = work / "data"
        provenance = {"created": _stable_timestamp([labels_path, *rasters]),
                      "labels": [labels_path], "aoi": aoi_path,
                      "rasters": rasters, "unlabelled_rasters": list(unlabelled),
                      "builder": "arctic_assist:export_training_data",
                      "only_reviewed": only_reviewed}
        if kind == "polygon":
            all_rasters = rasters + [str(u) for u in unlabelled]
            data = D.build_dataset(
                all_rasters, str(labels_tmp), dest, chip_size, aoi_path=aoi_path,
                split_fn=lambda ri, x, y, w, h: _split(x // chip_size + y // chip_size),
                labelled=[True] * len(rasters) + [False] * len(unlabelled),
                provenance=provenance)
            n_chips, n_unl = len(data.chips), len(data.unlabelled)
        else:
            (dest / "chips").mkdir(parents=True)
            chips = _line_chips(rasters, labels_tmp, dest, chip_size, None)
            if not chips:
                raise InputError("LABELS: none of the fronts lies inside the rasters.")
            band_names = [first.GetRasterBand(i + 1).GetDescription() or f"band{i + 1}"
                          for i in range(first.RasterCount)]
            dtype = gdal.GetDataTypeName(first.GetRasterBand(1).DataType).lower()
            manifest = {
                "format": D.FORMAT, "format_version": D.FORMAT_VERSION, "task": "contour",
                "crs": target.ExportToWkt(), "pixel_size_m": abs(first.GetGeoTransform()[1]),
                "bands": band_names, "dtype": dtype,
                "normalization": {"type": "none"},
                "nodata": first.GetRasterBand(1).GetNoDataValue(),
                "provenance": provenance, "chips": chips,
                "unlabelled": [{"image": str(Path(u).resolve()), "region": Path(u).stem}
                               for u in unlabelled]}
            D.write_manifest(dest, manifest)
            D.load_dataset(dest)
            n_chips, n_unl = len(chips), len(unlabelled)
        if n_chips == 0:
            raise InputError("No chip holds enough labelled pixels: check that LABELS and AOI "
                             "overlap the rasters, or lower CHIP_SIZE.")
        if is_canceled and is_canceled():
            raise CanceledError()
        _swap_in(dest, out)
        say(f"Training data written to {out}: {n_chips} labelled chip(s), "
            f"{n_unl} unlabelled source(s).")
        return ExportResult(str(out), "segmentation" if kind == "polygon" else "contour",
                            n, repaired, n_chips, n_unl, counts)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _swap_in(new: Path, out: Path) -> None:
    """Replace ``out`` by ``new`` so that one of the two complete folders always exists."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
    try:
        new.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

