"""Export reviewed geometries as a training-data folder (the format of ``io.training_data``).

QGIS-free (GDAL/OGR); the Processing algorithm ``arctic_assist:export_training_data`` is a
thin wrapper. Polygons become masks (0 background, 1 RTS, 255 ignore outside the reviewed
area); lines become calving-front chips with the front as a polyline in chip pixels.

The folder is written under a temporary name beside the destination and swapped in at the
end, so an interrupted export leaves the previous folder intact; the same input gives the
same folder, byte for byte.

Nothing we did not write is ever deleted: an existing OUTPUT folder is replaced only when it
is empty or a previous export of ours (its ``manifest.json`` says
``arctic_assist:export_training_data`` and it holds nothing but that manifest and the chips
it lists); any other folder is refused, untouched. Temporaries carry the process id and a
marker file, so the next export to the same OUTPUT removes what a killed run left.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr

from ..core.errors import CanceledError, InputError
from .leftovers import pid_alive
from .raster import _gdal, srs_traditional

LOG = logging.getLogger(__name__)
REVIEWED = ("accepted", "edited")
#: what an expert decided on: without an AOI, the surroundings of these are 'reviewed'
DECIDED = (*REVIEWED, "rejected")
BUILDER = "arctic_assist:export_training_data"
#: a file inside every temporary folder of ours: only folders holding it are ever removed
TEMP_MARKER = ".arctic_assist_export_temporary"
#: the export cuts chips from each raster held whole in memory: bound it before reading
MAX_RASTER_BYTES = 2 * 1024**3
MIN_CHIP, MAX_CHIP = 16, 4096
#: without an AOI, the reviewed area is every reviewed feature grown by this many pixels
REVIEW_BUFFER_PX = 16
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
        raise InputError(
            f"RASTERS: {path} has no coordinate reference system; assign one "
            "(Raster > Projections > Assign Projection) and run again."
        )
    return srs_traditional(wkt)


def _stable_timestamp(paths: Sequence[str]) -> str:
    """A creation date that depends only on the inputs (so re-exports are identical)."""
    mtimes = [os.path.getmtime(p) for p in paths if p and os.path.exists(p)]
    stamp = datetime.fromtimestamp(max(mtimes) if mtimes else 0, tz=UTC)
    return stamp.isoformat(timespec="seconds")


def collect_labels(
    labels_path: str,
    layer_name: str | None,
    target: osr.SpatialReference,
    out_path: Path,
    only_reviewed: bool,
    decided: list | None = None,
) -> tuple[str, int, int, dict[str, int]]:
    """Copy the usable label features to ``out_path`` in the raster's CRS.

    Returns (kind 'polygon'|'line', n written, n repaired, counts per status).
    Invalid geometries are repaired (MakeValid); ones that cannot be repaired are reported.
    ``decided``, if given, receives (in the raster's CRS, repaired) the geometries of the
    features the expert decided on (:data:`DECIDED`; every feature when ONLY_REVIEWED is
    off), for :func:`reviewed_area`: the layer is read once.
    """
    _gdal()
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
        raise InputError(
            f"LABELS: {labels_path} holds {ogr.GeometryTypeToName(flat)} "
            "geometries; give a polygon (thaw slumps) or line (fronts) layer."
        )
    srs = layer.GetSpatialRef()
    if srs is None:
        raise InputError(f"LABELS: {labels_path} has no coordinate reference system.")
    srs = srs_traditional(srs)
    transform = None if srs.IsSame(target) else osr.CoordinateTransformation(srs, target)
    has_status = layer.GetLayerDefn().GetFieldIndex("status") >= 0
    if only_reviewed and not has_status:
        raise InputError(
            f"LABELS: {labels_path} has no 'status' field, so ONLY_REVIEWED cannot tell "
            "reviewed features from the others. Review the proposals first (the Review panel "
            "writes 'status'), or set ONLY_REVIEWED to false to export every feature."
        )
    counts: dict[str, int] = {}
    out_ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(out_path))
    out = out_ds.CreateLayer(
        "labels", target, ogr.wkbMultiPolygon if kind == "polygon" else ogr.wkbLineString
    )
    written = repaired = 0
    for feat in sorted(layer, key=lambda f: f.GetFID()):
        status = (feat.GetField("status") if has_status else None) or "unreviewed"
        counts[status] = counts.get(status, 0) + 1
        selective = only_reviewed and has_status
        exported = not (selective and status not in REVIEWED)
        is_decided = decided is not None and not (selective and status not in DECIDED)
        if not (exported or is_decided):
            continue
        geom = feat.GetGeometryRef()
        if geom is None or geom.IsEmpty():
            continue
        geom = geom.Clone()
        if not geom.IsValid():
            fixed = geom.MakeValid()
            if fixed is None or fixed.IsEmpty() or not fixed.IsValid():
                if not exported:  # a rejected shape: it only widens the reviewed area
                    continue
                raise InputError(
                    f"LABELS: feature {feat.GetFID()} of {labels_path} has an "
                    "invalid geometry that cannot be repaired; fix it with the "
                    "vertex tool or 'Fix geometries'."
                )
            geom = fixed
            repaired += int(exported)
        if transform is not None:
            geom.Transform(transform)
        if is_decided:
            decided.append(geom.Clone())
        if not exported:
            continue
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


def _line_chips(
    rasters: Sequence[str],
    lines_path: Path,
    out_dir: Path,
    chip_size: int,
    bands: Sequence[int] | None,
) -> list[dict]:
    """One chip per front: the window centred on the line, the line in chip pixels."""
    from .raster import read_raster, write_geotiff

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
            cgt = (
                gt[0] + x0 * gt[1] + y0 * gt[2],
                gt[1],
                gt[2],
                gt[3] + x0 * gt[4] + y0 * gt[5],
                gt[4],
                gt[5],
            )
            name = f"chips/r{ri:02d}_front{li:04d}"
            nodata = ds.GetRasterBand(idx[0]).GetNoDataValue()
            write_geotiff(out_dir / f"{name}.tif", raw, cgt, ds.GetProjection(), nodata, names)
            polyline = [
                [round(float(c - x0), 3), round(float(r - y0), 3)] for c, r in zip(cols, rows)
            ]
            chips.append(
                {
                    "image": f"{name}.tif",
                    "polyline": polyline,
                    "region": Path(raster).stem,
                    "split": _split(len(chips)),
                }
            )
    return chips


def export_training_data(
    labels_path: str,
    rasters: Sequence[str],
    output_dir: str,
    *,
    labels_layer: str | None = None,
    aoi_path: str | None = None,
    unlabelled: Sequence[str] = (),
    chip_size: int = 128,
    only_reviewed: bool = True,
    log: Callable[[str], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> ExportResult:
    from . import training_data as D

    _gdal()
    say = log or LOG.info
    rasters = [str(r) for r in rasters]
    if not rasters:
        raise InputError("RASTERS: give at least one source raster.")
    if not MIN_CHIP <= int(chip_size) <= MAX_CHIP:
        raise InputError(
            f"CHIP_SIZE must be between {MIN_CHIP} and {MAX_CHIP} pixels; got {chip_size}."
        )
    first = _open_raster(rasters[0])
    if first is None:
        what = (
            "does not exist" if not os.path.exists(rasters[0]) else "is not a raster GDAL can read"
        )
        raise InputError(f"RASTERS: {rasters[0]} {what}.")
    target = _srs_of(first, rasters[0])
    for r in rasters + list(unlabelled):
        ds = _open_raster(r)
        if ds is None:
            raise InputError(f"RASTERS/UNLABELLED: {r} is not a raster GDAL can read.")
        _check_raster_size(ds, r)
    out = Path(os.path.abspath(os.path.expanduser(output_dir)))
    parent = out.parent
    check_destination(out)  # before anything is written: never delete what is not ours
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"OUTPUT: cannot create '{parent}': {exc}") from None
    if not os.access(parent, os.W_OK):
        raise InputError(f"OUTPUT: folder '{parent}' is not writable.")
    clean_stale_temporaries(out, say)
    work = _make_work_dir(out)
    try:
        labels_tmp = work / "_labels.gpkg"
        decided: list | None = None if aoi_path else []
        kind, n, repaired, counts = collect_labels(
            labels_path, labels_layer, target, labels_tmp, only_reviewed, decided
        )
        summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        if repaired:
            say(f"Repaired {repaired} invalid geometr{'y' if repaired == 1 else 'ies'}.")
        if n == 0:
            which = "accepted or edited " if only_reviewed else ""
            raise InputError(
                f"LABELS: no {which}features to export in {labels_path} "
                f"({summary or 'empty layer'}). Review some proposals first"
                f"{' or export all features' if only_reviewed else ''}."
            )
        say(f"Labels: {n} {kind} feature(s) exported of {summary}.")
        on_rasters = _count_on_rasters(labels_tmp, rasters, target)
        if on_rasters == 0:
            raise InputError(
                f"LABELS: none of the {n} label feature(s) of {labels_path} lies on the "
                f"raster(s) ({', '.join(Path(r).name for r in rasters)}); the export would "
                "hold background only. Check that LABELS and RASTERS cover the same area."
            )
        if on_rasters < n:
            say(
                f"{n - on_rasters} of {n} label feature(s) lie outside every raster and are "
                "not in the export."
            )
        if is_canceled and is_canceled():
            raise CanceledError()
        dest = work / "data"
        provenance = {
            "created": _stable_timestamp([labels_path, *rasters]),
            "labels": [labels_path],
            "aoi": aoi_path,
            "rasters": rasters,
            "unlabelled_rasters": list(unlabelled),
            "builder": "arctic_assist:export_training_data",
            "only_reviewed": only_reviewed,
        }
        if kind == "polygon" and not aoi_path:
            # unreviewed is not background: without an AOI only the surroundings of what
            # the expert looked at (accepted, edited and rejected features) are labelled
            aoi_path = str(reviewed_area(decided, target, first, work / "_reviewed_area.gpkg"))
            provenance["reviewed_area"] = (
                f"features reviewed, buffered by {REVIEW_BUFFER_PX} px (no AOI given)"
            )
            say(
                f"No AOI: pixels farther than {REVIEW_BUFFER_PX} px from a reviewed feature "
                "are 'ignore' (give an AOI for an area you reviewed completely)."
            )

        def on_row(fraction: float) -> None:  # every row of chips: progress and Cancel
            if is_canceled and is_canceled():
                raise CanceledError()
            if progress is not None:
                progress(5.0 + 90.0 * fraction)

        if kind == "polygon":
            all_rasters = rasters + [str(u) for u in unlabelled]
            data = _reading(
                D.build_dataset,
                all_rasters,
                str(labels_tmp),
                dest,
                chip_size,
                aoi_path=aoi_path,
                split_fn=lambda ri, x, y, w, h: _split(x // chip_size + y // chip_size),
                labelled=[True] * len(rasters) + [False] * len(unlabelled),
                provenance=provenance,
                on_row=on_row,
            )
            n_chips, n_unl = len(data.chips), len(data.unlabelled)
        else:
            (dest / "chips").mkdir(parents=True)
            chips = _reading(_line_chips, rasters, labels_tmp, dest, chip_size, None)
            if not chips:
                raise InputError("LABELS: none of the fronts lies inside the rasters.")
            band_names = [
                first.GetRasterBand(i + 1).GetDescription() or f"band{i + 1}"
                for i in range(first.RasterCount)
            ]
            dtype = gdal.GetDataTypeName(first.GetRasterBand(1).DataType).lower()
            manifest = {
                "format": D.FORMAT,
                "format_version": D.FORMAT_VERSION,
                "task": "contour",
                "crs": target.ExportToWkt(),
                "pixel_size_m": abs(first.GetGeoTransform()[1]),
                "bands": band_names,
                "dtype": dtype,
                "normalization": {"type": "none"},
                "nodata": first.GetRasterBand(1).GetNoDataValue(),
                "provenance": provenance,
                "chips": chips,
                "unlabelled": [
                    {"image": str(Path(u).resolve()), "region": Path(u).stem} for u in unlabelled
                ],
            }
            D.write_manifest(dest, manifest)
            D.load_dataset(dest)
            n_chips, n_unl = len(chips), len(unlabelled)
        if n_chips == 0:
            raise InputError(
                "No chip holds enough labelled pixels: check that LABELS and AOI "
                "overlap the rasters, or lower CHIP_SIZE."
            )
        if is_canceled and is_canceled():
            raise CanceledError()
        _swap_in(dest, out)
        say(
            f"Training data written to {out}: {n_chips} labelled chip(s), "
            f"{n_unl} unlabelled source(s)."
        )
        return ExportResult(
            str(out),
            "segmentation" if kind == "polygon" else "contour",
            n,
            repaired,
            n_chips,
            n_unl,
            counts,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _open_raster(path: str):
    try:
        return gdal.Open(path)
    except RuntimeError:
        return None


def _check_raster_size(ds, path: str) -> None:
    """Refuse a raster too large to hold in memory, before anything is read."""
    px = ds.RasterXSize * ds.RasterYSize
    size = px * (
        sum(
            gdal.GetDataTypeSize(ds.GetRasterBand(i + 1).DataType) // 8
            for i in range(ds.RasterCount)
        )
        + 2
    )  # the bands, the mask and labels
    if size > MAX_RASTER_BYTES:
        raise InputError(
            f"RASTERS: {path} is {ds.RasterXSize} x {ds.RasterYSize} px with "
            f"{ds.RasterCount} band(s), {size / 1024**3:.1f} GB in memory; the export holds "
            f"one raster at a time and is limited to {MAX_RASTER_BYTES / 1024**3:.0f} GB. "
            "Clip the raster to the reviewed area first (Raster > Extraction > Clip Raster "
            "by Extent)."
        )


def _reading(fn, *args, **kwargs):
    """Call ``fn``; a GDAL read error (truncated or corrupt raster) becomes one sentence."""
    try:
        return fn(*args, **kwargs)
    except RuntimeError as exc:  # GDAL errors name the file
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"RASTERS: a raster could not be read ({msg}). The file may be truncated or "
            "corrupt: check it with 'gdalinfo -checksum' or export it again."
        ) from None
    except MemoryError:
        raise InputError(
            "RASTERS: the rasters are too large to cut into chips in memory; "
            "clip them to the reviewed area (AOI) first."
        ) from None


def _count_on_rasters(
    labels_path: Path, rasters: Sequence[str], target: osr.SpatialReference
) -> int:
    """How many label features intersect the footprint of at least one raster."""
    footprints = []
    for r in rasters:
        ds = gdal.Open(r)
        gt, w, h = ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for c, row in ((0, 0), (w, 0), (w, h), (0, h), (0, 0)):
            ring.AddPoint_2D(gt[0] + c * gt[1] + row * gt[2], gt[3] + c * gt[4] + row * gt[5])
        poly = ogr.Geometry(ogr.wkbPolygon)
        poly.AddGeometry(ring)
        wkt = ds.GetProjection()
        if wkt:
            srs = srs_traditional(wkt)
            if not srs.IsSame(target):
                poly = poly.Clone()
                poly.Segmentize(max(abs(gt[1]) * w, abs(gt[5]) * h) / 20)
                poly.Transform(osr.CoordinateTransformation(srs, target))
        footprints.append(poly)
    ds_l = ogr.Open(str(labels_path))
    n = 0
    for feat in ds_l.GetLayer(0):
        g = feat.GetGeometryRef()
        if g is not None and any(g.Intersects(fp) for fp in footprints):
            n += 1
    return n


def _our_manifest(folder: Path) -> dict | None:
    """The manifest of a previous export of ours in ``folder``, else None."""
    from .training_data import FORMAT

    try:
        doc = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return None
    prov = doc.get("provenance")
    if not isinstance(prov, dict) or prov.get("builder") != BUILDER:
        return None
    return doc


def _listed_files(doc: dict) -> set[str]:
    """Relative paths of the files a manifest of ours says the export wrote."""
    files = {"manifest.json"}
    for entry in list(doc.get("chips") or []) + list(doc.get("unlabelled") or []):
        if not isinstance(entry, dict):
            continue
        for key in ("image", "mask"):
            value = entry.get(key)
            if isinstance(value, str) and not os.path.isabs(value):
                files.add(Path(value).as_posix())
    return files


def check_destination(out: Path) -> None:
    """Refuse an OUTPUT that the export could not replace without deleting others' files.

    Allowed: a path that does not exist, an empty folder, or a previous export of ours
    that holds nothing but its manifest and the chips the manifest lists.
    """
    if out.is_symlink():
        raise InputError(
            f"OUTPUT: '{out}' is a symbolic link; give the path of a new or "
            "empty folder. Nothing was changed."
        )
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(
            f"OUTPUT: '{out}' is a file, not a folder; give the path of a new "
            "or empty folder. Nothing was changed."
        )
    try:
        entries = sorted(p.name for p in out.iterdir())
    except OSError as exc:
        raise InputError(f"OUTPUT: cannot read the folder '{out}' ({exc.strerror}).") from None
    if not entries:
        return
    doc = _our_manifest(out)
    if doc is None:
        shown = ", ".join(entries[:5]) + (
            f" and {len(entries) - 5} more" if len(entries) > 5 else ""
        )
        raise InputError(
            f"OUTPUT: the folder '{out}' is not empty ({shown}) and is not a previous "
            "training-data export (no manifest.json written by Export training data). "
            "Nothing was changed: the export never deletes files it did not write; choose a "
            "new or empty folder."
        )
    listed = _listed_files(doc)
    foreign: list[str] = []
    for root, dirs, files in os.walk(out, followlinks=False):
        rel_root = Path(root).relative_to(out)
        for d in dirs:
            rel = (rel_root / d).as_posix()
            if os.path.islink(os.path.join(root, d)) or rel not in ("chips", "unlabelled"):
                foreign.append(rel + "/")
        dirs[:] = [
            d
            for d in dirs
            if (rel_root / d).as_posix() in ("chips", "unlabelled")
            and not os.path.islink(os.path.join(root, d))
        ]
        foreign += [
            (rel_root / f).as_posix() for f in files if (rel_root / f).as_posix() not in listed
        ]
    if foreign:
        shown = ", ".join(sorted(foreign)[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise InputError(
            f"OUTPUT: '{out}' is a previous export but also holds files the export did not "
            f"write ({shown}). Nothing was changed: move them elsewhere or choose another "
            "folder."
        )


def _temp_prefix(out: Path) -> str:
    return f".{out.name}.part-"


def clean_stale_temporaries(out: Path, say: Callable[[str], None] = LOG.info) -> list[Path]:
    """Remove the temporary folders of earlier exports to ``out`` whose process is gone.

    Only folders named like ours *and* holding :data:`TEMP_MARKER` are touched. A run killed
    between the two renames of a swap left the previous export inside its temporary folder
    (``previous``): it is put back first when OUTPUT is missing.
    """
    prefix = _temp_prefix(out)
    removed = []
    try:
        siblings = list(out.parent.iterdir())
    except OSError:
        return removed
    for p in siblings:
        if not p.name.startswith(prefix) or p.is_symlink() or not p.is_dir():
            continue
        m = re.match(r"(\d+)-", p.name[len(prefix) :])
        if not m or pid_alive(int(m.group(1))) or not (p / TEMP_MARKER).is_file():
            continue
        previous = p / "previous"
        if previous.is_dir() and not out.exists() and not out.is_symlink():
            previous.rename(out)
            say(f"Restored the previous export {out} that an interrupted run had moved aside.")
        shutil.rmtree(p, ignore_errors=True)
        say(f"Removed {p.name}, left by an interrupted export.")
        removed.append(p)
    return removed


def _make_work_dir(out: Path) -> Path:
    work = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(out)}{os.getpid()}-", dir=out.parent))
    (work / TEMP_MARKER).write_text(
        "Arctic Assist export in progress; safe to delete when no export is running.\n",
        encoding="utf-8",
    )
    return work


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0


def _swap_in(new: Path, out: Path) -> None:
    """Replace ``out`` by ``new`` so that one of the two complete folders always exists.

    ``out`` (checked again: empty or a previous export of ours) is exchanged atomically with
    ``new`` where the system allows it, else moved into the run's temporary folder first; the
    old content ends up inside the temporary folder, which the caller removes.
    """
    check_destination(out)
    if out.exists():
        if _exchange(new, out):
            return
        previous = new.parent / "previous"
        out.rename(previous)
        try:
            new.rename(out)
        except OSError:
            previous.rename(out)
            raise
    else:
        new.rename(out)


def reviewed_area(
    decided: list, target: osr.SpatialReference, raster: gdal.Dataset, out_path: Path
) -> Path:
    """The area an expert reviewed, when no AOI says so: the features they decided on
    (``decided``, from :func:`collect_labels`) grown by :data:`REVIEW_BUFFER_PX` pixels of
    ``raster``, in ``target``'s CRS, written to ``out_path`` (GeoPackage, one multipolygon).
    Pixels outside it are 'ignore': the slumps the model missed elsewhere in the scene are
    not taught as background, and rejected proposals (false positives) are background."""
    _gdal()
    gt = raster.GetGeoTransform()
    distance = REVIEW_BUFFER_PX * max(abs(gt[1]), abs(gt[5]))
    grown = ogr.Geometry(ogr.wkbMultiPolygon)
    for geom in decided:
        buffered = ogr.ForceToMultiPolygon(geom.Buffer(distance, 8))
        for i in range(buffered.GetGeometryCount()):
            grown.AddGeometry(buffered.GetGeometryRef(i))
    area = grown.UnionCascaded() if grown.GetGeometryCount() else grown
    out_ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(out_path))
    out = out_ds.CreateLayer("reviewed_area", target, ogr.wkbMultiPolygon)
    f = ogr.Feature(out.GetLayerDefn())
    f.SetGeometry(ogr.ForceToMultiPolygon(area))
    out.CreateFeature(f)
    out_ds = None
    return out_path
