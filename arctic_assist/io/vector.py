"""Vectorising the probability raster into scored polygons, in bounded memory (GDAL/OGR).

:func:`vectorise` reads the blended probability GeoTIFF in windows (:data:`WINDOW` px
square, plus a halo for the clean-up) and never holds more than one window, whatever the
raster size or the number of polygons:

1. threshold (``p > threshold`` at valid pixels), then the optional clean-up
   (:class:`Cleanup`, :mod:`arctic_assist.core.components`): a majority (= median) filter,
   then holes of fewer than ``fill_holes_px`` pixels filled. Both read the halo, so they
   give the same result as on the whole raster (holes up to :data:`MAX_HALO` pixels);
2. label the 4-connected components of the window (numpy); one ``bincount`` gives every
   component's pixel count and probability sum (the mean score; filled holes count);
3. drop components under ``min_segment_px`` pixels or ``min_area_m2`` **before** any
   geometry is built; a component that touches no inner window edge is whole: its pixels
   get its mean score and ``gdal.FPolygonize`` turns the window into polygons carrying
   their score (4-connectedness: pixels touching only at a corner are separate polygons,
   never a self-touching ring), which :meth:`FeatureWriter.add_layer` appends to the
   GeoPackage with ``gdal.VectorTranslate`` (area, simplification, reprojection, the
   per-run fields: no Python per feature);
4. a component that touches an inner window edge is a *piece*: pieces are polygonised in
   integer pixel coordinates, joined across the edges by a union-find over the labels on
   both sides, their counts and sums added, and, as soon as a band of windows is done and
   a component cannot grow any more, the small ones dropped and the pieces of one
   component unioned into one polygon (exact: integer coordinates), moved to map
   coordinates, simplified, reprojected and written (:meth:`FeatureWriter.add`);
5. the GeoPackage is written in transactions of :data:`BATCH` features; its spatial index
   is built when it is closed.

Fields: ``score`` (mean probability of the polygon's pixels, float32 precision),
``area_m2`` (the polygon's area on the processing grid = pixel count x pixel area),
``model``, ``model_version``, ``provider``, ``source``, ``run_id``, ``created`` (ISO-8601
UTC) and ``status`` (``'proposed'``). Zero features is a valid GeoPackage.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.components import connected_roots, fill_holes, label_runs, majority_filter
from ..core.errors import CanceledError, InputError
from .raster import _gdal, srs_traditional

LOG = logging.getLogger(__name__)

FIELDS: tuple[tuple[str, str], ...] = (
    ("score", "real"),
    ("area_m2", "real"),
    ("model", "str"),
    ("model_version", "str"),
    ("provider", "str"),
    ("source", "str"),
    ("run_id", "str"),
    ("created", "str"),
    ("status", "str"),
)
#: side of the square windows the probability raster is vectorised in (multiple of 256)
WINDOW = 2048
#: features per GeoPackage transaction
BATCH = 20000
#: threads preparing windows (reading, clean-up, labelling, polygonising) and how many
#: windows may be prepared ahead of the one being written (bounds the memory)
WORKERS = 2
AHEAD = 3
#: the largest halo read around a window for the clean-up (holes up to this many pixels
#: are filled whatever the windows; larger limits still fill holes inside one window)
MAX_HALO = 256


def open_layer(path: str, layer: str | None = None, what: str = "layer") -> tuple[Any, Any]:
    """``(dataset, layer)`` of an OGR file (``layer``: by name, default the first); an
    :class:`InputError` naming ``what`` when it is missing, unreadable or has no layer."""
    from osgeo import ogr

    _gdal()
    if not os.path.exists(path) and not str(path).startswith("/vsi"):
        raise InputError(f"{what} not found: {path}")
    try:
        ds = ogr.Open(str(path))
    except RuntimeError as exc:
        raise InputError(f"{what} {path} cannot be opened by OGR ({exc})") from exc
    if ds is None or ds.GetLayerCount() == 0:
        raise InputError(f"{what} {path} holds no vector layer")
    lyr = ds.GetLayerByName(layer) if layer else ds.GetLayer(0)
    if lyr is None:
        raise InputError(f"{what} {path} has no layer '{layer}'")
    return ds, lyr


@dataclass(frozen=True)
class Cleanup:
    """Clean-up of the thresholded mask (all in pixels of the processing grid; 0 = off)."""

    min_segment_px: int = 0  # drop components with fewer pixels
    fill_holes_px: int = 0  # fill holes with fewer pixels
    filter_size: int = 0  # majority (binary median) filter window, odd; 0 or 1 = off

    def __post_init__(self) -> None:
        if self.min_segment_px < 0 or self.fill_holes_px < 0 or self.filter_size < 0:
            raise ValueError("clean-up sizes must be >= 0")
        if self.filter_size > 1 and self.filter_size % 2 == 0:
            raise ValueError(f"the filter size must be odd; got {self.filter_size}")

    def describe(self) -> str:
        parts = [
            f"segments < {self.min_segment_px} px removed" if self.min_segment_px > 1 else "",
            f"holes < {self.fill_holes_px} px filled" if self.fill_holes_px > 1 else "",
            f"{self.filter_size}x{self.filter_size} majority filter"
            if self.filter_size > 1
            else "",
        ]
        return "; ".join(p for p in parts if p) or "no clean-up"


#: the defaults of ``detect_thaw_slumps`` (chosen on the Peel image, see the README)
DEFAULT_CLEANUP = Cleanup(min_segment_px=4, fill_holes_px=16, filter_size=0)


@dataclass
class VectoriseStats:
    """What :func:`vectorise` did, and where its time went."""

    components: int = 0  # after clean-up, before the size filters (pieces joined)
    written: int = 0
    pieces: int = 0  # components cut by window edges
    windows: int = 0
    seconds: float = 0.0  # the whole vectorise call
    write_seconds: float = 0.0  # inside the FeatureWriter (geometry to GeoPackage)
    extra: dict[str, float] = field(default_factory=dict)


class FeatureWriter:
    """A new GeoPackage layer of proposals, written in transactions of ``batch`` features.

    ``attrs`` are the per-run string fields (model, provider, ...). Two ways in:
    :meth:`add_layer` copies a whole in-memory layer of polygons carrying a ``score`` field
    in C (``gdal.VectorTranslate``: area, simplification, reprojection, the per-run fields,
    no Python per feature); :meth:`add` writes one geometry (in ``srs``). :meth:`close`
    commits and returns the count; :meth:`abort` closes without committing (the caller
    removes the file).
    """

    def __init__(
        self, path: str, layer_name: str, srs: Any, attrs: dict[str, str], batch: int = BATCH
    ) -> None:
        gdal = _gdal()
        from osgeo import ogr

        self._ogr = ogr
        types = {"real": ogr.OFTReal, "str": ogr.OFTString}
        self.ds = gdal.GetDriverByName("GPKG").Create(path, 0, 0, 0, gdal.GDT_Unknown)
        self.layer_name = layer_name
        self.srs = srs_traditional(srs)
        self.layer = self.ds.CreateLayer(
            layer_name, srs=self.srs, geom_type=ogr.wkbMultiPolygon, options=["SPATIAL_INDEX=YES"]
        )
        for name, kind in FIELDS:
            self.layer.CreateField(ogr.FieldDefn(name, types[kind]))
        self.defn = self.layer.GetLayerDefn()
        names = [name for name, _ in FIELDS]
        self.i_score, self.i_area = names.index("score"), names.index("area_m2")
        self.attrs = dict(attrs)
        self.template = ogr.Feature(self.defn)  # the per-run fields, copied per feature
        for key, value in attrs.items():
            self.template.SetField(names.index(key), value)
        self.batch = max(1, int(batch))
        self.count = 0
        self.pending = 0
        self.in_transaction = False
        self.seconds = 0.0

    def _commit(self) -> None:
        if self.in_transaction:
            self.ds.CommitTransaction()
            self.in_transaction = False
            self.pending = 0

    def add(self, geom: Any, score: float, area_m2: float) -> None:
        t0 = time.perf_counter()
        ogr = self._ogr
        if not self.in_transaction:
            self.ds.StartTransaction()
            self.in_transaction = True
        feat = self.template.Clone()
        feat.SetGeometryDirectly(ogr.ForceToMultiPolygon(geom))
        if math.isfinite(score):
            feat.SetField(self.i_score, score)
        feat.SetField(self.i_area, area_m2)
        self.layer.CreateFeature(feat)
        self.count += 1
        self.pending += 1
        if self.pending >= self.batch:
            self._commit()
        self.seconds += time.perf_counter() - t0

    def add_layer(
        self,
        src: Any,
        layer: str,
        *,
        area_factor: float,
        simplify: float = 0.0,
        src_srs: Any = None,
    ) -> None:
        """Append every polygon of ``layer`` in the vector dataset ``src`` (a ``score``
        field; geometries in ``src_srs``, projected to this layer's CRS when they differ):
        ``area_m2`` = geometry area x ``area_factor``, simplified first (tolerance in
        ``src_srs`` units), the per-run fields as literals; all in C."""
        gdal = _gdal()
        t0 = time.perf_counter()
        n = src.GetLayerByName(layer).GetFeatureCount()
        if n:
            self._commit()
            consts = "".join(
                f", '{str(v).replace(chr(39), chr(39) * 2)}' AS \"{k}\""
                for k, v in self.attrs.items()
            )
            sql = (
                f"SELECT score, OGR_GEOM_AREA * {float(area_factor)!r} AS area_m2{consts} "
                f'FROM "{layer}"'
            )
            opts = [
                "-append",
                "-nln",
                self.layer_name,
                "-sql",
                sql,
                "-dialect",
                "OGRSQL",
                "-nlt",
                "PROMOTE_TO_MULTI",
                "-gt",
                str(max(self.batch, n)),
            ]
            if simplify > 0:  # SimplifyPreserveTopology, before the reprojection
                opts += ["-simplify", repr(float(simplify))]
            if src_srs is not None and not srs_traditional(src_srs).IsSame(self.srs):
                opts += ["-s_srs", src_srs.ExportToWkt(), "-t_srs", self.srs.ExportToWkt()]
            gdal.VectorTranslate(self.ds, src, options=opts)
            self.count += n
        self.seconds += time.perf_counter() - t0

    def close(self) -> int:
        t0 = time.perf_counter()
        if self.ds is not None:
            self._commit()
            self.ds.FlushCache()
            self.layer = None
            self.ds = None  # the spatial index is built here
        self.seconds += time.perf_counter() - t0
        return self.count

    def abort(self) -> None:
        if self.ds is not None:
            if self.in_transaction:
                try:
                    self.ds.RollbackTransaction()
                except RuntimeError:  # pragma: no cover - nothing to roll back
                    pass
            self.layer = None
            self.ds = None


@dataclass
class _Window:
    """What :func:`vectorise` learns from one window on its own (see ``compute``)."""

    window: tuple[int, int, int, int]
    n: int = 0  # components (local labels 1..n)
    whole: int = 0  # of which touch no inner window edge
    edges: dict[str, np.ndarray] = field(default_factory=dict)  # local labels on the edges
    piece_local: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    piece_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    piece_sums: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pieces: dict[int, bytes] = field(default_factory=dict)  # local label -> WKB (pixels)
    mem: Any = None  # Memory dataset of the whole components' polygons
    t_read: float = 0.0
    t_label: float = 0.0
    t_poly: float = 0.0


def _affine(gt: tuple[float, ...]) -> Any:
    """Pixel coordinates (x = column, y = -row) to map coordinates, as a coordinate
    transformation (a PROJ affine pipeline; applied in C by ``Geometry.Transform``)."""
    from osgeo import osr

    opts = osr.CoordinateTransformationOptions()
    opts.SetOperation(
        f"+proj=affine +xoff={gt[0]!r} +yoff={gt[3]!r} +s11={gt[1]!r} "
        f"+s12={-gt[2]!r} +s21={gt[4]!r} +s22={-gt[5]!r}"
    )
    return osr.CoordinateTransformation(None, None, opts)


def _polygons(labels: np.ndarray, gt: tuple[float, ...]) -> Any:
    """(label, polygon) of each 4-connected region of equal non-zero ``labels`` (int32),
    with geotransform ``gt``; ``gdal.Polygonize`` on the array, in C."""
    gdal = _gdal()
    from osgeo import gdal_array, ogr

    src = gdal_array.OpenArray(labels)
    src.SetGeoTransform(gt)
    band = src.GetRasterBand(1)
    mem = ogr.GetDriverByName("Memory").CreateDataSource("window")
    layer = mem.CreateLayer("window", geom_type=ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("label", ogr.OFTInteger))
    gdal.Polygonize(band, band, layer, 0, [], callback=None)
    for feat in layer:
        yield feat.GetFieldAsInteger(0), feat.GetGeometryRef().Clone()
    layer = None
    mem = None
    src = None


def _score_polygons(scores: np.ndarray, mask: np.ndarray, gt: tuple[float, ...], srs: Any) -> Any:
    """A Memory vector dataset with layer ``window``: one polygon (with its ``score``) per
    4-connected region of equal score where ``mask`` is set (``gdal.FPolygonize``, in C)."""
    gdal = _gdal()
    from osgeo import gdal_array, ogr

    src = gdal_array.OpenArray(scores)
    src.SetGeoTransform(gt)
    msk = gdal_array.OpenArray(mask)
    mem = gdal.GetDriverByName("Memory").Create("window", 0, 0, 0, gdal.GDT_Unknown)
    layer = mem.CreateLayer("window", srs=srs, geom_type=ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("score", ogr.OFTReal))
    gdal.FPolygonize(src.GetRasterBand(1), msk.GetRasterBand(1), layer, 0, [], callback=None)
    layer = None
    src = msk = None
    return mem


def _windows(height: int, width: int, size: int) -> list[tuple[int, int, int, int]]:
    return [
        (r, min(r + size, height), c, min(c + size, width))
        for r in range(0, height, size)
        for c in range(0, width, size)
    ]


def vectorise(
    prob_path: str,
    writer: FeatureWriter,
    *,
    threshold: float,
    metres_per_unit: float,
    grid_srs: Any,
    out_srs: Any,
    min_area_m2: float = 0.0,
    simplify_m: float = 0.0,
    cleanup: Cleanup | None = None,
    window: int = WINDOW,
    positives: np.ndarray | None = None,
    cell: int = 256,
    is_canceled: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> VectoriseStats:
    """Vectorise the probability GeoTIFF ``prob_path`` into ``writer`` (see module doc).

    Pixels equal to the band's nodata are invalid (never foreground). ``positives``: an
    optional boolean grid of ``cell`` x ``cell`` px cells, False where no pixel is above
    the threshold (what the caller saw while writing the raster); windows whose cells
    (halo included) are all False are not even read. Returns the stats; the caller closes
    the writer.
    """
    gdal = _gdal()
    from osgeo import ogr, osr

    t_start = time.perf_counter()
    cleanup = cleanup or Cleanup()
    stats = VectoriseStats()
    w_seconds0 = writer.seconds
    ds = gdal.Open(prob_path)
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    gt = tuple(ds.GetGeoTransform())
    height, width = ds.RasterYSize, ds.RasterXSize
    ds = None
    pixel_area = abs(gt[1] * gt[5] - gt[2] * gt[4]) * metres_per_unit**2
    min_px = max(1, int(cleanup.min_segment_px))

    def big_enough(counts: np.ndarray) -> np.ndarray:
        return (counts >= min_px) & (counts * pixel_area >= min_area_m2)

    to_map = _affine(gt)
    gsrs, osrs = srs_traditional(grid_srs), srs_traditional(out_srs)
    to_out = None if gsrs.IsSame(osrs) else osr.CoordinateTransformation(gsrs, osrs)
    tol = simplify_m / metres_per_unit if simplify_m > 0 else 0.0

    def emit(geom: Any, score: float, area: float, pixel_coords: bool) -> None:
        if pixel_coords:
            geom.Transform(to_map)
        if tol > 0:
            simplified = geom.SimplifyPreserveTopology(tol)
            if simplified is not None and not simplified.IsEmpty():
                geom = simplified
        if to_out is not None:
            geom.Transform(to_out)
        writer.add(geom, score, area)

    hf = cleanup.filter_size // 2 if cleanup.filter_size > 1 else 0
    hh = min(cleanup.fill_holes_px, MAX_HALO) if cleanup.fill_holes_px > 1 else 0
    wins = _windows(height, width, max(16, int(window)))
    prev_bottom = np.zeros(width, dtype=np.int64)  # global piece ids, last row of a band
    left_col = np.zeros(0, dtype=np.int64)  # ... last column of the previous window
    pairs_a: list[np.ndarray] = []
    pairs_b: list[np.ndarray] = []
    piece_ids: list[np.ndarray] = []
    piece_counts: list[np.ndarray] = []
    piece_sums: list[np.ndarray] = []
    piece_wkb: dict[int, bytes] = {}
    base = 0
    t_label = t_poly = t_read = 0.0

    def flush_pieces(frontier: np.ndarray | None) -> None:
        """Join the pieces seen so far; write the components that can grow no more (none of
        their pieces on ``frontier``, the last row of the band above; None: all)."""
        nonlocal piece_ids, piece_counts, piece_sums, pairs_a, pairs_b
        if not piece_ids:
            return
        ids = np.concatenate(piece_ids)
        if ids.size == 0:  # all written at an earlier band
            piece_ids, piece_counts, piece_sums, pairs_a, pairs_b = [], [], [], [], []
            return
        cnt = np.concatenate(piece_counts)
        sm = np.concatenate(piece_sums)
        pa = np.searchsorted(ids, np.concatenate(pairs_a)) if pairs_a else np.zeros(0, int)
        pb = np.searchsorted(ids, np.concatenate(pairs_b)) if pairs_b else np.zeros(0, int)
        comp = connected_roots(ids.size, pa, pb)
        n_comp = int(comp.max()) + 1
        growing = np.zeros(n_comp, dtype=bool)
        if frontier is not None:
            f = frontier[frontier > 0]
            growing[comp[np.searchsorted(ids, f)]] = True
        g_cnt = np.bincount(comp, weights=cnt, minlength=n_comp)
        g_sum = np.bincount(comp, weights=sm, minlength=n_comp)
        ok = big_enough(g_cnt)
        done = ~growing[comp]
        stats.pieces += int(np.count_nonzero(done))
        stats.components += int(np.count_nonzero(~growing))
        order = np.argsort(comp, kind="stable")
        bounds = np.flatnonzero(np.diff(comp[order])) + 1
        for members in np.split(order, bounds):
            k = int(comp[members[0]])
            if growing[k]:
                continue
            wkbs = [piece_wkb.pop(int(ids[m])) for m in members]
            if not ok[k]:
                continue
            geoms = [ogr.CreateGeometryFromWkb(w) for w in wkbs]
            if len(geoms) == 1:
                geom = geoms[0]
            else:
                multi = ogr.Geometry(ogr.wkbMultiPolygon)
                for g in geoms:
                    multi.AddGeometryDirectly(g)
                geom = multi.UnionCascaded()
            emit(
                geom,
                float(np.float32(g_sum[k] / g_cnt[k])),  # float32, as FPolygonize's
                float(g_cnt[k]) * pixel_area,
                True,
            )
        keep = ~done
        piece_ids, piece_counts, piece_sums = [ids[keep]], [cnt[keep]], [sm[keep]]
        pair_keep = growing[comp[pa]] if pa.size else np.zeros(0, bool)
        pairs_a = [ids[pa[pair_keep]]]
        pairs_b = [ids[pb[pair_keep]]]

    local = threading.local()
    handles: list[Any] = []
    handles_lock = threading.Lock()

    def compute(win: tuple[int, int, int, int]) -> _Window:
        """Everything about one window that needs no other window (runs in a worker)."""
        w0, w1, v0, v1 = win  # the window: rows [w0, w1), columns [v0, v1)
        res = _Window(win)
        empty = {"top": v1 - v0, "bottom": v1 - v0, "left": w1 - w0, "right": w1 - w0}
        res.edges = {side: np.zeros(n, np.int64) for side, n in empty.items()}
        if not hasattr(local, "band"):  # GDAL datasets are not thread-safe: one per thread
            local.ds = gdal.Open(prob_path)
            local.band = local.ds.GetRasterBand(1)
            with handles_lock:
                handles.append(local.ds)
        t0 = time.perf_counter()
        r0, r1, c0, c1 = win  # the part of the window processed (the "core")
        if positives is not None:
            # cells above the threshold around the window (both halos): no foreground, even
            # after the clean-up, can lie outside their bounding box grown by the filter halo
            g0, g1 = max(0, w0 - hh - hf) // cell, -(-min(height, w1 + hh + hf) // cell)
            h0, h1 = max(0, v0 - hh - hf) // cell, -(-min(width, v1 + hh + hf) // cell)
            sub = positives[g0:g1, h0:h1]
            rows, cols = np.flatnonzero(sub.any(axis=1)), np.flatnonzero(sub.any(axis=0))
            if rows.size == 0:
                return res  # nothing above the threshold here: not even read
            r0 = max(w0, (g0 + int(rows[0])) * cell - hf)
            r1 = min(w1, (g0 + int(rows[-1]) + 1) * cell + hf)
            c0 = max(v0, (h0 + int(cols[0])) * cell - hf)
            c1 = min(v1, (h0 + int(cols[-1]) + 1) * cell + hf)
            if r0 >= r1 or c0 >= c1:
                return res
        # region A: the core plus the hole halo; E: A plus the filter halo
        ar0, ar1 = max(0, r0 - hh), min(height, r1 + hh)
        ac0, ac1 = max(0, c0 - hh), min(width, c1 + hh)
        er0, er1 = max(0, ar0 - hf), min(height, ar1 + hf)
        ec0, ec1 = max(0, ac0 - hf), min(width, ac1 + hf)
        prob = local.band.ReadAsArray(ec0, er0, ec1 - ec0, er1 - er0)
        t1 = time.perf_counter()
        res.t_read = t1 - t0
        valid = prob != nodata if nodata is not None else np.isfinite(prob)
        mask = (prob > threshold) & valid
        if not mask.any():
            return res
        if hf:
            mask = majority_filter(mask, valid, cleanup.filter_size)
            sl = (slice(ar0 - er0, ar1 - er0), slice(ac0 - ec0, ac1 - ec0))
            mask, valid, prob = mask[sl], valid[sl], prob[sl]
        if hh:
            mask = fill_holes(mask, valid, cleanup.fill_holes_px)
        sl = (slice(r0 - ar0, r1 - ar0), slice(c0 - ac0, c1 - ac0))
        mask, prob = mask[sl], prob[sl]
        runs = label_runs(mask, 4)
        n = res.n = runs.n
        if n == 0:
            return res
        counts = runs.counts()
        sums = runs.sums(prob)
        # pieces touch an inner edge of the window (the core's other edges have no
        # foreground beyond them)
        on_edge = np.zeros(runs.row.size, dtype=bool)
        if 0 < w0 == r0:
            on_edge |= runs.row == 0
        if height > w1 == r1:
            on_edge |= runs.row == r1 - r0 - 1
        if 0 < v0 == c0:
            on_edge |= runs.start == 0
        if width > v1 == c1:
            on_edge |= runs.end == c1 - c0
        seam = np.zeros(n, dtype=bool)
        seam[runs.comp[on_edge]] = True
        keep = ~seam & big_enough(counts)
        res.whole = int(np.count_nonzero(~seam))
        if r0 == w0:
            res.edges["top"][c0 - v0 : c1 - v0] = runs.edge_labels("top")
        if r1 == w1:
            res.edges["bottom"][c0 - v0 : c1 - v0] = runs.edge_labels("bottom")
        if c0 == v0:
            res.edges["left"][r0 - w0 : r1 - w0] = runs.edge_labels("left")
        if c1 == v1:
            res.edges["right"][r0 - w0 : r1 - w0] = runs.edge_labels("right")
        ids = np.flatnonzero(seam)
        res.piece_local, res.piece_counts, res.piece_sums = ids + 1, counts[ids], sums[ids]
        t2 = time.perf_counter()
        res.t_label = t2 - t1
        numbers = np.arange(1, n + 1)
        if keep.any():  # whole components: polygonised in map coordinates, with their score
            win_gt = (
                gt[0] + c0 * gt[1] + r0 * gt[2],
                gt[1],
                gt[2],
                gt[3] + c0 * gt[4] + r0 * gt[5],
                gt[4],
                gt[5],
            )
            lut = np.zeros(n + 1, dtype=np.float32)
            lut[1:] = sums / np.maximum(counts, 1)
            kept = runs.paint(numbers, keep)  # labels: exact (a float paint could drift)
            res.mem = _score_polygons(lut[kept], (kept > 0).view(np.uint8), win_gt, gsrs)
        if ids.size:  # pieces: integer pixel coordinates (x = column, y = -row)
            res.pieces = {
                lbl: bytes(geom.ExportToWkb())
                for lbl, geom in _polygons(
                    runs.paint(numbers, seam), (float(c0), 1.0, 0.0, -float(r0), 0.0, -1.0)
                )
            }
        res.t_poly = time.perf_counter() - t2
        return res

    def consume(res: _Window) -> None:
        """The part that needs the windows before it, in window order (main thread)."""
        nonlocal left_col, base, t_read, t_label, t_poly
        r0, r1, c0, c1 = res.window
        t_read, t_label, t_poly = t_read + res.t_read, t_label + res.t_label, t_poly + res.t_poly
        stats.windows += 1
        if res.n == 0:
            left_col = np.zeros(r1 - r0, dtype=np.int64)
            if r1 < height:
                prev_bottom[c0:c1] = 0
            return  # (the edges of an empty window are all 0)
        stats.components += res.whole
        # global piece ids: base + local label; join across the edges above and left
        for side, other in (
            ("top", prev_bottom[c0:c1] if r0 > 0 else None),
            ("left", left_col if c0 > 0 else None),
        ):
            if other is None:
                continue
            mine = res.edges[side]
            both = (other > 0) & (mine > 0)
            pairs_a.append(other[both])
            pairs_b.append(mine[both] + base)
        right = res.edges["right"]
        left_col = np.where(right > 0, right + base, 0)
        if r1 < height:
            bottom = res.edges["bottom"]
            prev_bottom[c0:c1] = np.where(bottom > 0, bottom + base, 0)
        if res.piece_local.size:
            piece_ids.append(res.piece_local + base)
            piece_counts.append(res.piece_counts)
            piece_sums.append(res.piece_sums)
            for lbl, wkb in res.pieces.items():
                piece_wkb[base + lbl] = wkb
        if res.mem is not None:
            writer.add_layer(
                res.mem, "window", area_factor=metres_per_unit**2, simplify=tol, src_srs=gsrs
            )
            res.mem = None
        base += res.n

    # windows are prepared by two worker threads (numpy and GDAL release the GIL), at most
    # AHEAD of them at a time, and consumed in order
    pool = ThreadPoolExecutor(max_workers=WORKERS) if WORKERS > 1 else None
    pending: deque[Future] = deque()
    try:
        nxt = 0
        for wi in range(len(wins)):
            if is_canceled is not None and is_canceled():
                raise CanceledError()
            if pool is None:
                res = compute(wins[wi])
            else:
                while nxt < len(wins) and len(pending) < AHEAD:
                    pending.append(pool.submit(compute, wins[nxt]))
                    nxt += 1
                res = pending.popleft().result()
            if wins[wi][2] == 0 and wi > 0:  # a band is done: its pieces are final
                flush_pieces(prev_bottom)
            consume(res)
            if progress is not None:
                progress(100.0 * (wi + 1) / len(wins))
    finally:
        if pool is not None:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True)
        handles.clear()

    flush_pieces(None)
    stats.written = writer.count
    stats.seconds = time.perf_counter() - t_start
    stats.write_seconds = writer.seconds - w_seconds0
    stats.extra = {"read": t_read, "label": t_label, "polygonize": t_poly}
    LOG.info(
        "%d component(s) after clean-up, %d written (min %d px, min area %.1f m2; "
        "%d pieces joined across %d windows)",
        stats.components,
        stats.written,
        min_px,
        min_area_m2,
        stats.pieces,
        stats.windows,
    )
    return stats
