"""Vectorising the probability raster into scored polygons, in bounded memory (GDAL/OGR).

:class:`Vectoriser` is fed the blended probability as the tiling stream makes it (column
panels, each top to bottom, rows in memory: :func:`~arctic_assist.io.detect.run_detection`
vectorises while the model still runs) and cuts it into windows: a strip of about one
panel's width (shifted left by the clean-up halo, so that the halo on both sides is
already known) by ``rows`` rows, plus the halo. :func:`vectorise` does the same for a
probability GeoTIFF, read in panels of :data:`WINDOW` px. Never more than a few windows
are held, whatever the raster size or the number of polygons; per window:

1. threshold (``p > threshold`` at valid pixels), then the optional clean-up
   (:class:`Cleanup`, :mod:`arctic_assist.core.components`): a majority (= median) filter,
   then holes of fewer than ``fill_holes_px`` pixels filled. Both read the halo, so they
   give the same result as on the whole raster (holes up to :data:`MAX_HALO` pixels);
2. label the 4-connected components of the window (numpy); one ``bincount`` gives every
   component's pixel count and probability sum (the mean score; filled holes count);
3. drop components under ``min_segment_px`` pixels or ``min_area_m2`` **before** any
   geometry is built; a component that touches no inner window edge is whole: its
   outline is traced in numpy (:func:`~arctic_assist.core.outline.outline`: every
   component of the window at once, no object per polygon), turned into GeoPackage
   geometry blobs with their envelopes (:mod:`~arctic_assist.io.gpkg_blob`) and written
   by :meth:`FeatureWriter.add_blobs` with its score and area in one transaction (with a
   simplification or a reprojection asked for, each polygon goes through OGR/GEOS for
   that first: ``SimplifyPreserveTopology``, then ``Transform``). 4-connectedness:
   pixels touching only at a corner are separate polygons, and a component that meets
   itself at a corner is one valid polygon (rings touching at that point);
4. a component that touches an inner window edge is a *piece*: pieces are outlined the
   same way, in integer pixel coordinates (per inner edge, in the box of that edge's
   pieces), joined across the edges by a union-find over the labels on
   both sides (windows joined in order: strip by strip, each top to bottom), their counts
   and sums added, and, as soon as a component cannot grow any more (none of its pieces
   on an edge next to a window not yet joined), the small ones dropped and the pieces of
   one component unioned into one polygon (exact: integer coordinates), moved to map
   coordinates, simplified, reprojected and written (:meth:`FeatureWriter.add`);
5. the GeoPackage is written in transactions of :data:`BATCH` features; its spatial index
   is packed as they are written, full R-tree leaves after each window, the upper levels
   at closing (:mod:`~arctic_assist.io.gpkg_rtree`; a few us per feature instead of
   SQLite's 20 us per insert).

Fields: ``score`` (mean probability of the polygon's pixels, float32 precision),
``area_m2`` (the polygon's area on the processing grid = pixel count x pixel area),
``model``, ``model_version``, ``provider``, ``source``, ``run_id``, ``created`` (ISO-8601
UTC) and ``status`` (``'proposed'``). Zero features is a valid GeoPackage.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.components import connected_roots, label_filled, majority_filter
from ..core.outline import outline
from ..core.errors import CanceledError, InputError
from .gpkg_blob import polygon_blobs, polygon_wkbs, reshaped
from .gpkg_rtree import _lit, _q, _scalar, create_index
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
#: rows per INSERT statement when :meth:`FeatureWriter.add_blobs` writes through GDAL
#: (longer statements cost GDAL more per row)
ROWS_PER_INSERT = 250
#: threads preparing windows (reading, clean-up, labelling, polygonising) and how many
#: windows may be prepared ahead of the one being written (bounds the memory)
WORKERS = 2
AHEAD = 3
#: how much nicer than the process the vectoriser's threads run while the model streams
#: (Linux; elsewhere they run at the process's priority): they take the cores onnxruntime
#: leaves idle instead of preempting its threads, which wait for each other (19, the
#: lowest: a CFS weight of 15 against 110 at 10 and 1024 at 0; when the vectoriser falls
#: behind, the stream waits for it and it has the cores; README, "The vectoriser's
#: CPU, again, and its priority")
NICE = 19
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
    :meth:`add_blobs` writes ready GeoPackage geometry blobs with their scores, areas and
    envelopes (one transaction, no geometry objects); :meth:`add` writes one geometry (in
    ``srs``). :meth:`close`
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
            layer_name, srs=self.srs, geom_type=ogr.wkbMultiPolygon, options=["SPATIAL_INDEX=NO"]
        )
        for name, kind in FIELDS:
            self.layer.CreateField(ogr.FieldDefn(name, types[kind]))
        self.geom_column = self.layer.GetGeometryColumn()
        self.fid_column = self.layer.GetFIDColumn() or "fid"
        # the spatial index, packed as the features are written (None: GDAL's triggers)
        self.index = create_index(self.ds, layer_name, self.geom_column, self.fid_column)
        self.defn = self.layer.GetLayerDefn()
        #: the layer's srs_id in the GeoPackage (for geometry blobs made here)
        self.srs_id = int(
            _scalar(
                self.ds,
                "SELECT srs_id FROM gpkg_geometry_columns WHERE lower(table_name) = "
                f"lower({_lit(layer_name)})",
            )
        )
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
        self.blobs_added = False  # features written by SQL: GDAL's layer extent is stale
        self.path = path
        self.sql: Any = None  # the sqlite3 connection of add_blobs (False: not usable)

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

    def add_blobs(
        self,
        data: bytes,
        size: np.ndarray,
        score: np.ndarray,
        area_m2: np.ndarray,
        envelope: np.ndarray,
    ) -> None:
        """Append features whose geometries are GeoPackage blobs (MultiPolygons in this
        layer's CRS and ``srs_id``, one after the other in ``data``, ``size`` bytes each),
        with their ``score``, ``area_m2`` and ``envelope`` (n x 4: min x, max x, min y,
        max y; for the spatial index).

        Written in one transaction of Python's ``sqlite3`` on the same file (the blobs
        bound as parameters: about 7 us per feature; GDAL is between its transactions, and
        its layer extent is recomputed at :meth:`close`); where that module is missing or
        fails, through GDAL's connection as INSERT statements with the blobs as literals
        (slower)."""
        t0 = time.perf_counter()
        n = int(size.size)
        if n:
            self._commit()
            if self.index is not None:
                self.index.update()  # what GDAL wrote before
            ends = np.cumsum(size).tolist()
            starts = [0, *ends[:-1]]
            scores = [None if math.isnan(v) else v for v in score.tolist()]
            last = self._insert_sqlite(data, starts, ends, scores, area_m2.tolist())
            if last is None:
                self._insert_gdal(data, starts, ends, scores, area_m2.tolist())
            self.count += n
            self.blobs_added = True
            if self.index is not None:
                if last is None:
                    self.index.update()  # read back from the table
                else:  # the ids are the last ones (AUTOINCREMENT, one transaction)
                    self.index.add(np.arange(last - n + 1, last + 1, dtype=np.int64), envelope)
        self.seconds += time.perf_counter() - t0

    def _columns(self) -> str:
        return ",".join(map(_q, [self.geom_column, "score", "area_m2", *self.attrs]))

    def _insert_sqlite(
        self, data: bytes, starts: list, ends: list, scores: list, areas: list
    ) -> int | None:
        """The rows through ``sqlite3``; the last feature id (None: not written, use GDAL)."""
        if self.sql is False:
            return None
        try:
            import sqlite3
        except ImportError:  # pragma: no cover - a Python built without it
            self.sql = False
            return None
        try:
            if self.sql is None:
                self.sql = sqlite3.connect(
                    self.path, timeout=10, isolation_level=None, check_same_thread=False
                )
                # the file is renamed into place when done: no syncing on the way
                self.sql.execute("PRAGMA synchronous = OFF")
                self.sql.execute("PRAGMA cache_size = -65536")
            con, table = self.sql, _q(self.layer_name)
            view = memoryview(data)
            consts = tuple(str(v) for v in self.attrs.values())
            marks = ",".join("?" * (3 + len(consts)))
            con.execute("BEGIN")
            try:
                # GDAL's trigger counting features (one UPDATE per row): off while these
                # rows go in, the count added once, in the same transaction
                counter = con.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                    ("trigger_insert_feature_count_" + self.layer_name,),
                ).fetchone()
                if counter:
                    con.execute(f"DROP TRIGGER {_q(counter[0])}")
                con.executemany(
                    f"INSERT INTO {table} ({self._columns()}) VALUES ({marks})",
                    ((view[a:b], s, m, *consts) for a, b, s, m in zip(starts, ends, scores, areas)),
                )
                if counter:
                    con.execute(
                        "UPDATE gpkg_ogr_contents SET feature_count = feature_count + ? "
                        "WHERE lower(table_name) = lower(?)",
                        (len(starts), self.layer_name),
                    )
                    con.execute(counter[1])
                (last,) = con.execute(f"SELECT max({_q(self.fid_column)}) FROM {table}").fetchone()
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            return int(last)
        except sqlite3.Error as exc:
            LOG.warning("writing proposals through sqlite3 failed (%s): through GDAL", exc)
            self._close_sql()
            self.sql = False
            return None

    def _insert_gdal(
        self, data: bytes, starts: list, ends: list, scores: list, areas: list
    ) -> None:
        text = data.hex()
        consts = "".join(f",{_lit(str(v))}" for v in self.attrs.values())
        rows = [
            f"(X'{text[2 * a : 2 * b]}',{'NULL' if s is None else repr(s)},{m!r}{consts})"
            for a, b, s, m in zip(starts, ends, scores, areas)
        ]
        head = f"INSERT INTO {_q(self.layer_name)} ({self._columns()}) VALUES "
        self.ds.StartTransaction()
        try:
            for k in range(0, len(rows), ROWS_PER_INSERT):
                self.ds.ExecuteSQL(head + ",".join(rows[k : k + ROWS_PER_INSERT]))
        except BaseException:
            self.ds.RollbackTransaction()
            raise
        self.ds.CommitTransaction()

    def _close_sql(self) -> None:
        if self.sql:
            try:
                self.sql.close()
            except Exception:  # pragma: no cover - closing is best effort
                pass
        self.sql = None

    def close(self) -> int:
        """Commit, finish the spatial index, close; the number of features."""
        t0 = time.perf_counter()
        if self.ds is not None:
            self._commit()
            if self.index is not None:
                self.index.finish()
            usable = self.sql is not False
            self._close_sql()
            if self.blobs_added:  # GDAL's layer extent, written to gpkg_contents at closing
                self.ds.ExecuteSQL(f"RECOMPUTE EXTENT ON {self.layer_name}")
            self.ds.FlushCache()
            self.layer = None
            self.ds = None
            if self.blobs_added and usable:
                self._store_count()
        self.seconds += time.perf_counter() - t0
        return self.count

    def _store_count(self) -> None:
        """The feature count GDAL keeps in ``gpkg_ogr_contents``, as counted (GDAL did not
        see the rows :meth:`add_blobs` wrote; left as GDAL wrote it if this fails)."""
        import sqlite3

        try:
            con = sqlite3.connect(self.path, timeout=10)
            try:
                with con:
                    con.execute(
                        "UPDATE gpkg_ogr_contents SET feature_count = (SELECT count(*) FROM "
                        f"{_q(self.layer_name)}) WHERE lower(table_name) = lower(?)",
                        (self.layer_name,),
                    )
            finally:
                con.close()
        except sqlite3.Error as exc:  # pragma: no cover - GDAL's own count stays
            LOG.debug("feature count not stored: %s", exc)

    @property
    def index_seconds(self) -> float:
        """Time spent packing the spatial index (part of :attr:`seconds`)."""
        return self.index.seconds if self.index is not None else 0.0

    def abort(self) -> None:
        self._close_sql()
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
    #: the whole components traced here: GeoPackage blobs, their sizes, scores and areas
    blobs: tuple[bytes, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    t_read: float = 0.0
    t_label: float = 0.0
    t_poly: float = 0.0


def _lower_priority(step: int) -> None:
    """Make the calling thread ``step`` nicer (Linux: a thread is a task with its own nice
    value; elsewhere nothing, as a thread id is no process id there)."""
    if step <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + step))
    except OSError:  # pragma: no cover - not allowed: run at the process's priority
        pass


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


class Vectoriser:
    """Vectorises a probability raster fed row block by row block, one column panel after
    the other (the order :func:`~arctic_assist.core.tiling.sliding_window_stream` writes
    it), so that polygons are made while the model still runs (see the module doc).

    :meth:`feed` takes the rows ``[row0, row0 + n)`` of the panel whose columns start at
    ``col0`` (a panel is fed top to bottom, whole panel width, panels left to right; the
    last ends at the raster's width). Each panel's columns, shifted left by the clean-up's
    halo ``h``, form a *strip*: its right halo is then inside the panel being fed, and its
    left halo is kept from the panel before (``height`` x ``2h`` values). A strip is cut
    into windows of ``rows`` rows, each handed with its halo (as soon as the rows below
    it are fed) to ``workers`` threads; a single consumer thread joins the windows in
    order (strip by strip, top to bottom) with the union-find and writes the features,
    so :class:`FeatureWriter` is only ever used from that thread. At most ``ahead``
    windows are in flight: :meth:`feed` waits beyond that (memory stays bounded).
    :meth:`finish` waits for the rest and returns the stats; :meth:`abort` stops on an
    error or a cancel (the caller aborts the writer).
    """

    def __init__(
        self,
        writer: FeatureWriter,
        *,
        shape: tuple[int, int],
        geotransform: tuple[float, ...],
        nodata: float | None,
        threshold: float,
        metres_per_unit: float,
        grid_srs: Any,
        out_srs: Any,
        min_area_m2: float = 0.0,
        simplify_m: float = 0.0,
        cleanup: Cleanup | None = None,
        rows: int = WINDOW,
        positives: np.ndarray | None = None,
        cell: int = 256,
        workers: int | None = None,
        ahead: int | None = None,
        nice: int | None = None,
    ) -> None:
        from osgeo import osr

        self.writer = writer
        self.height, self.width = shape
        self.gt = gt = tuple(geotransform)
        self.nodata = nodata
        self.threshold = threshold
        self.mpu = metres_per_unit
        self.cleanup = cleanup = cleanup or Cleanup()
        self.rows = max(16, int(rows))
        self.positives, self.cell = positives, cell
        self.stats = VectoriseStats()
        self.w_seconds0 = writer.seconds
        self.pixel_area = abs(gt[1] * gt[5] - gt[2] * gt[4]) * metres_per_unit**2
        self.min_px = max(1, int(cleanup.min_segment_px))
        self.min_area_m2 = min_area_m2
        self.to_map = _affine(gt)
        self.gsrs = srs_traditional(grid_srs)
        self.osrs = srs_traditional(out_srs)
        self.to_out = (
            None
            if self.gsrs.IsSame(self.osrs)
            else osr.CoordinateTransformation(self.gsrs, self.osrs)
        )
        self.tol = simplify_m / metres_per_unit if simplify_m > 0 else 0.0
        self.hf = cleanup.filter_size // 2 if cleanup.filter_size > 1 else 0
        self.hh = min(cleanup.fill_holes_px, MAX_HALO) if cleanup.fill_holes_px > 1 else 0
        self.halo = self.hh + self.hf
        # --- feeding (the caller's thread)
        self.p0 = self.p1 = 0  # the panel being fed
        self.s0 = self.s1 = 0  # its strip
        self.d0 = 0  # first column of the strip's data (strip and left halo)
        self.tail = np.zeros((self.height, 0), np.float32)  # columns [d0, p0), all rows
        self.next_tail = self.tail
        self.chunks: deque[tuple[int, np.ndarray]] = deque()  # rows [r, r + n), [d0, p1)
        self.fed = 0  # rows of the panel fed so far
        self.w0 = 0  # the strip's next window starts here
        # --- consuming (the consumer thread), see _consume
        self.base = 0
        self.prev_right = np.zeros(self.height, np.int64)  # global ids, right column
        self.cur_right = np.zeros(self.height, np.int64)  # of the strips before / this one
        self.prev_bottom = np.zeros(0, np.int64)  # ... bottom row of the window above
        self.pairs_a: list[np.ndarray] = []
        self.pairs_b: list[np.ndarray] = []
        self.piece_ids: list[np.ndarray] = []
        self.piece_counts: list[np.ndarray] = []
        self.piece_sums: list[np.ndarray] = []
        self.piece_wkb: dict[int, bytes] = {}
        self.t_read = self.t_label = self.t_poly = self.t_consume = 0.0
        self.failed = False
        step = NICE if nice is None else nice
        self.pool = ThreadPoolExecutor(
            max_workers=max(1, WORKERS if workers is None else workers),
            initializer=_lower_priority,
            initargs=(step,),
        )
        self.consumer = ThreadPoolExecutor(
            max_workers=1, initializer=_lower_priority, initargs=(step,)
        )
        self.ahead = max(1, AHEAD if ahead is None else ahead)
        self.in_flight: deque[Future] = deque()
        #: how often, and how long, :meth:`feed` waited for the threads to catch up
        self.stalls = 0
        self.stalled_seconds = 0.0

    # ------------------------------------------------------------------ feeding
    def feed(self, row0: int, col0: int, block: np.ndarray) -> None:
        """Rows ``[row0, row0 + n)`` of the panel starting at column ``col0`` (2-D float32,
        the panel's whole width; see the class doc for the order)."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 3:
            block = block[0]
        n, w = block.shape
        if col0 != self.p0 or self.p1 == 0:
            self._start_panel(col0, col0 + w)
        if row0 != self.fed or col0 + w != self.p1:
            raise ValueError(f"rows fed out of order: ({row0}, {col0}) after row {self.fed}")
        chunk = block
        if self.tail.shape[1]:
            chunk = np.concatenate([self.tail[row0 : row0 + n], block], axis=1)
        if self.next_tail.shape[1]:
            self.next_tail[row0 : row0 + n] = chunk[:, chunk.shape[1] - self.next_tail.shape[1] :]
        self.chunks.append((row0, chunk))
        self.fed = row0 + n
        self._submit_ready()
        if self.fed == self.height:
            self.tail = self.next_tail
            self.chunks.clear()

    def _start_panel(self, p0: int, p1: int) -> None:
        if self.p1 and (self.fed != self.height or p0 != self.p1):
            raise ValueError(f"panel at column {p0} before the one at {self.p0} is complete")
        self.p0, self.p1 = p0, p1
        self.s0 = self.s1
        self.s1 = self.width if p1 >= self.width else max(self.s0, p1 - self.halo)
        self.d0 = max(0, self.s0 - self.halo)
        nt0 = max(0, self.s1 - self.halo)  # the next strip's data start
        self.next_tail = np.zeros(
            (self.height, max(0, p1 - nt0) if p1 < self.width else 0), np.float32
        )
        self.fed = 0
        self.w0 = 0
        self.chunks.clear()

    def _submit_ready(self) -> None:
        h, H = self.halo, self.height
        while self.s1 > self.s0 and self.w0 < H:
            w0, w1 = self.w0, min(H, self.w0 + self.rows)
            e1 = min(H, w1 + h)
            if self.fed < e1:
                return
            e0 = max(0, w0 - h)
            parts = [
                c[max(0, e0 - r) : e1 - r] for r, c in self.chunks if r < e1 and r + c.shape[0] > e0
            ]
            data = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
            self._submit((w0, w1, self.s0, self.s1), data, e0, self.d0)
            self.w0 = w1
            keep_from = max(0, w1 - h)
            while self.chunks and self.chunks[0][0] + self.chunks[0][1].shape[0] <= keep_from:
                self.chunks.popleft()

    def _submit(self, win: tuple[int, int, int, int], data: np.ndarray, dr: int, dc: int) -> None:
        if len(self.in_flight) >= self.ahead:
            t0 = time.perf_counter()
            while len(self.in_flight) >= self.ahead:
                self.in_flight.popleft().result()  # raises what a worker raised
            self.stalls += 1
            self.stalled_seconds += time.perf_counter() - t0
        job = self.pool.submit(self._compute, win, data, dr, dc)
        self.in_flight.append(self.consumer.submit(self._consume, job))

    def finish(self) -> VectoriseStats:
        """Wait for every window, write the last components; the stats (the caller closes
        the writer)."""
        if self.fed != self.height or self.p1 != self.width:
            raise ValueError(f"vectoriser fed up to column {self.p1} row {self.fed} only")
        try:
            while self.in_flight:
                self.in_flight.popleft().result()
            self.consumer.submit(self._flush, None).result()
        finally:
            self._shutdown()
        stats = self.stats
        stats.written = self.writer.count
        stats.write_seconds = self.writer.seconds - self.w_seconds0
        # the work in the threads (writes included), not the wall time
        stats.seconds = (
            self.t_read + self.t_label + self.t_poly + self.t_consume + stats.write_seconds
        )
        stats.extra = {"read": self.t_read, "label": self.t_label, "polygonize": self.t_poly}
        LOG.info(
            "%d component(s) after clean-up, %d written (min %d px, min area %.1f m2; "
            "%d pieces joined across %d windows)",
            stats.components,
            stats.written,
            self.min_px,
            self.min_area_m2,
            stats.pieces,
            stats.windows,
        )
        return stats

    def abort(self) -> None:
        """Stop: windows not started are dropped, running ones finish, nothing more is
        written (the caller aborts the writer)."""
        self.failed = True
        self._shutdown()

    def _shutdown(self) -> None:
        for f in self.in_flight:
            f.cancel()
        self.in_flight.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.consumer.shutdown(wait=True, cancel_futures=True)
        self.chunks.clear()

    # ------------------------------------------------------------------ the work
    def _big_enough(self, counts: np.ndarray) -> np.ndarray:
        return (counts >= self.min_px) & (counts * self.pixel_area >= self.min_area_m2)

    def _compute(
        self, win: tuple[int, int, int, int], data: np.ndarray, dr: int, dc: int
    ) -> _Window:
        """Everything about one window that needs no other window (runs in a worker);
        ``data``: the window with its halo, its first pixel at row ``dr``, column ``dc``."""
        height, width, cell = self.height, self.width, self.cell
        hh, hf, cleanup, gt = self.hh, self.hf, self.cleanup, self.gt
        w0, w1, v0, v1 = win  # the window: rows [w0, w1), columns [v0, v1)
        res = _Window(win)
        empty = {"top": v1 - v0, "bottom": v1 - v0, "left": w1 - w0, "right": w1 - w0}
        res.edges = {side: np.zeros(n, np.int64) for side, n in empty.items()}
        t0 = time.perf_counter()
        r0, r1, c0, c1 = win  # the part of the window processed (the "core")
        if self.positives is not None:
            # cells above the threshold around the window (both halos): no foreground, even
            # after the clean-up, can lie outside their bounding box grown by the filter halo
            g0, g1 = max(0, w0 - hh - hf) // cell, -(-min(height, w1 + hh + hf) // cell)
            h0, h1 = max(0, v0 - hh - hf) // cell, -(-min(width, v1 + hh + hf) // cell)
            sub = self.positives[g0:g1, h0:h1]
            rows, cols = np.flatnonzero(sub.any(axis=1)), np.flatnonzero(sub.any(axis=0))
            if rows.size == 0:
                return res  # nothing above the threshold here
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
        prob = data[er0 - dr : er1 - dr, ec0 - dc : ec1 - dc]
        if prob.shape != (er1 - er0, ec1 - ec0):  # pragma: no cover - guarded by feed
            raise RuntimeError(f"window {win}: data {data.shape} at ({dr}, {dc}) too small")
        nodata = self.nodata
        valid = prob != nodata if nodata is not None else np.isfinite(prob)
        mask = (prob > self.threshold) & valid
        t1 = time.perf_counter()
        res.t_read = t1 - t0
        if not mask.any():
            return res
        if hf:
            mask = majority_filter(mask, valid, cleanup.filter_size)
            sl = (slice(ar0 - er0, ar1 - er0), slice(ac0 - ec0, ac1 - ec0))
            mask, valid, prob = mask[sl], valid[sl], prob[sl]
        # holes filled on region A, the core's runs labelled (one pass over the pixels)
        box = (r0 - ar0, r1 - ar0, c0 - ac0, c1 - ac0)
        runs = label_filled(mask, valid, cleanup.fill_holes_px if hh else 0, box)
        prob = prob[box[0] : box[1], box[2] : box[3]]
        n = res.n = runs.n
        if n == 0:
            return res
        counts = runs.counts()
        sums = runs.sums(prob)
        # pieces touch an inner edge of the window (the core's other edges have no
        # foreground beyond them); each piece is given to the first inner edge it touches
        sides = [
            runs.row == 0 if 0 < w0 == r0 else None,
            runs.row == r1 - r0 - 1 if height > w1 == r1 else None,
            runs.start == 0 if 0 < v0 == c0 else None,
            runs.end == c1 - c0 if width > v1 == c1 else None,
        ]
        side_of = np.full(n, -1, np.int8)
        for k, on_side in enumerate(sides):
            if on_side is not None:
                touch = np.zeros(n, dtype=bool)
                touch[runs.comp[on_side]] = True
                side_of[touch & (side_of < 0)] = k
        seam = side_of >= 0
        keep = ~seam & self._big_enough(counts)
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
            o = outline(kept)
            if o.labels.size:
                data, start, size, env = polygon_blobs(o, win_gt, self.writer.srs_id)
                if self.tol > 0 or self.to_out is not None:
                    # a transformation per window: they are not shared between threads
                    ct = None
                    if self.to_out is not None:
                        from osgeo import osr

                        ct = osr.CoordinateTransformation(self.gsrs, self.osrs)
                    data, size, env = reshaped(data, start, size, self.writer.srs_id, self.tol, ct)
                area = counts[o.labels - 1] * self.pixel_area
                res.blobs = (data, size, lut[o.labels], area, env)
        if ids.size:  # pieces: integer pixel coordinates (x = column, y = -row), polygonised
            # per edge in the box of that edge's pieces (a strip, not the whole window)
            run_side = side_of[runs.comp]
            for k in range(len(sides)):
                on = run_side == k
                if not on.any():
                    continue
                box = (
                    int(runs.row[on].min()),
                    int(runs.row[on].max()) + 1,
                    int(runs.start[on].min()),
                    int(runs.end[on].max()),
                )
                labels = runs.paint(numbers, side_of == k, box=box)
                box_gt = (float(c0 + box[2]), 1.0, 0.0, -float(r0 + box[0]), 0.0, -1.0)
                o = outline(labels)
                res.pieces.update(zip(o.labels.tolist(), polygon_wkbs(o, box_gt)))
        res.t_poly = time.perf_counter() - t2
        return res

    def _consume(self, job: Future) -> None:
        """The part that needs the windows before it, in window order (consumer thread):
        strip by strip, each top to bottom."""
        if self.failed:
            return
        try:
            self._join(job.result())
        except BaseException:
            self.failed = True
            raise

    def _join(self, res: _Window) -> None:
        t0 = time.perf_counter()
        r0, r1, c0, c1 = res.window
        height, width = self.height, self.width
        self.t_read += res.t_read
        self.t_label += res.t_label
        self.t_poly += res.t_poly
        self.stats.windows += 1
        if r0 == 0:  # a new strip: the last one's right column is now the left neighbour
            if c0 > 0:
                self.prev_right, self.cur_right = self.cur_right, self.prev_right
                self.cur_right[:] = 0
            self.prev_bottom = np.zeros(c1 - c0, np.int64)
        if res.n == 0:
            self.cur_right[r0:r1] = 0
            self.prev_bottom[:] = 0
        else:
            self.stats.components += res.whole
            base = self.base
            # global piece ids: base + local label; join across the edges above and left
            for side, other in (
                ("top", self.prev_bottom if r0 > 0 else None),
                ("left", self.prev_right[r0:r1] if c0 > 0 else None),
            ):
                if other is None:
                    continue
                mine = res.edges[side]
                both = (other > 0) & (mine > 0)
                self.pairs_a.append(other[both])
                self.pairs_b.append(mine[both] + base)
            right = res.edges["right"]
            self.cur_right[r0:r1] = np.where(right > 0, right + base, 0)
            bottom = res.edges["bottom"]
            self.prev_bottom = np.where(bottom > 0, bottom + base, 0)
            if res.piece_local.size:
                self.piece_ids.append(res.piece_local + base)
                self.piece_counts.append(res.piece_counts)
                self.piece_sums.append(res.piece_sums)
                for lbl, wkb in res.pieces.items():
                    self.piece_wkb[base + lbl] = wkb
            if res.blobs is not None:
                self.t_consume += time.perf_counter() - t0
                self.writer.add_blobs(*res.blobs)
                t0 = time.perf_counter()
                res.blobs = None
            self.base += res.n
        self.t_consume += time.perf_counter() - t0
        if res.piece_local.size or self.piece_ids:
            # what can still grow: pieces on the bottom edge (the next window of the strip),
            # on the strip's right edge so far (the next strip) and on the last strip's
            # right edge below this window (the windows of this strip still to come)
            frontier = [
                self.prev_bottom if r1 < height else None,
                self.cur_right[:r1] if c1 < width else None,
                self.prev_right[r1:] if c0 > 0 else None,
            ]
            self._flush([f for f in frontier if f is not None])

    def _emit(self, geom: Any, score: float, area: float) -> None:
        geom.Transform(self.to_map)
        if self.tol > 0:
            simplified = geom.SimplifyPreserveTopology(self.tol)
            if simplified is not None and not simplified.IsEmpty():
                geom = simplified
        if self.to_out is not None:
            geom.Transform(self.to_out)
        self.writer.add(geom, score, area)

    def _flush(self, frontier: list[np.ndarray] | None) -> None:
        """Join the pieces seen so far; write the components that can grow no more (none of
        their pieces on ``frontier``, the edges next to windows not yet joined; None: all)."""
        from osgeo import ogr

        if self.failed or not self.piece_ids:
            return
        t0 = time.perf_counter()
        w_before = self.writer.seconds
        ids = np.concatenate(self.piece_ids)
        if ids.size == 0:  # all written earlier
            self.piece_ids, self.piece_counts, self.piece_sums = [], [], []
            self.pairs_a, self.pairs_b = [], []
            return
        cnt = np.concatenate(self.piece_counts)
        sm = np.concatenate(self.piece_sums)
        pairs_a, pairs_b = self.pairs_a, self.pairs_b
        pa = np.searchsorted(ids, np.concatenate(pairs_a)) if pairs_a else np.zeros(0, int)
        pb = np.searchsorted(ids, np.concatenate(pairs_b)) if pairs_b else np.zeros(0, int)
        comp = connected_roots(ids.size, pa, pb)
        n_comp = int(comp.max()) + 1
        growing = np.zeros(n_comp, dtype=bool)
        for f in frontier or []:
            f = f[f > 0]
            growing[comp[np.searchsorted(ids, f)]] = True
        g_cnt = np.bincount(comp, weights=cnt, minlength=n_comp)
        g_sum = np.bincount(comp, weights=sm, minlength=n_comp)
        ok = self._big_enough(g_cnt)
        done = ~growing[comp]
        if done.any():
            self.stats.pieces += int(np.count_nonzero(done))
            self.stats.components += int(np.count_nonzero(~growing))
            order = np.argsort(comp, kind="stable")
            bounds = np.flatnonzero(np.diff(comp[order])) + 1
            for members in np.split(order, bounds):
                k = int(comp[members[0]])
                if growing[k]:
                    continue
                wkbs = [self.piece_wkb.pop(int(ids[m])) for m in members]
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
                self._emit(
                    geom,
                    float(np.float32(g_sum[k] / g_cnt[k])),  # float32, as the whole ones
                    float(g_cnt[k]) * self.pixel_area,
                )
        keep = ~done
        self.piece_ids, self.piece_counts, self.piece_sums = [ids[keep]], [cnt[keep]], [sm[keep]]
        pair_keep = growing[comp[pa]] if pa.size else np.zeros(0, bool)
        self.pairs_a = [ids[pa[pair_keep]]]
        self.pairs_b = [ids[pb[pair_keep]]]
        self.t_consume += time.perf_counter() - t0 - (self.writer.seconds - w_before)


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
    """Vectorise the probability GeoTIFF ``prob_path`` into ``writer`` (see module doc):
    read in panels of ``window`` columns, ``window`` rows at a time, and fed to a
    :class:`Vectoriser` (windows of ``window`` rows).

    Pixels equal to the band's nodata are invalid (never foreground). ``positives``: an
    optional boolean grid of ``cell`` x ``cell`` px cells, False where no pixel is above
    the threshold (what the caller saw while writing the raster); windows whose cells
    (halo included) are all False are skipped. Returns the stats; the caller closes the
    writer.
    """
    gdal = _gdal()
    t_start = time.perf_counter()
    ds = gdal.Open(prob_path)
    band = ds.GetRasterBand(1)
    height, width = ds.RasterYSize, ds.RasterXSize
    size = max(16, int(window))
    vec = Vectoriser(
        writer,
        shape=(height, width),
        geotransform=tuple(ds.GetGeoTransform()),
        nodata=band.GetNoDataValue(),
        threshold=threshold,
        metres_per_unit=metres_per_unit,
        grid_srs=grid_srs,
        out_srs=out_srs,
        min_area_m2=min_area_m2,
        simplify_m=simplify_m,
        cleanup=cleanup,
        rows=size,
        positives=positives,
        cell=cell,
    )
    blocks = [(r, c) for c in range(0, width, size) for r in range(0, height, size)]
    try:
        for i, (r, c) in enumerate(blocks):
            if is_canceled is not None and is_canceled():
                raise CanceledError()
            nr, nc = min(size, height - r), min(size, width - c)
            vec.feed(r, c, band.ReadAsArray(c, r, nc, nr))
            if progress is not None:
                progress(100.0 * (i + 1) / len(blocks))
        stats = vec.finish()
    except BaseException:
        vec.abort()
        raise
    finally:
        band = ds = None
    stats.seconds = time.perf_counter() - t_start
    return stats
