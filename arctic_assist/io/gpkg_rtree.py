"""A new GeoPackage layer's R-tree spatial index, packed as its features are written.

SQLite's R-tree module has no bulk load: the GeoPackage triggers insert each feature's
bounding box one at a time, rewriting R-tree nodes each time (about 20 us per feature here,
more than making and writing the polygon itself), and GDAL 3.6 does the same at closing
when it defers the index. GDAL >= 3.7 packs the index instead (``sqlite_rtree_bulk_load``).
:class:`PackedIndex` does it on GDAL 3.6, through GDAL's own connection to the file (one
SQLite library, one connection: nothing else writes the file meanwhile):

- at the start (the layer and its index just created by GDAL, no feature yet) the index's
  insert trigger is removed; its SQL, as GDAL wrote it, is kept;
- :meth:`PackedIndex.update` (after each batch of features is committed) reads the new
  features' bounding boxes from their GeoPackage geometry headers (the envelope GDAL writes
  for every non-point geometry), orders them sort-tile-recursively (vertical slices by
  centre x, each by centre y) and writes full leaf nodes and each feature's leaf; what does
  not fill a leaf waits for the next batch. Only the leaves' boxes stay in memory (one per
  :data:`fanout` features);
- :meth:`PackedIndex.finish` packs the leaves into the upper levels the same way, writes
  them with the root (node 1) and every node's parent, puts the insert trigger back and
  checks that every feature is indexed.

Nodes are written in the format of SQLite's ``rtree.c`` (big-endian: the tree's depth (root
only) and the cell count as 16-bit integers, then cells of a 64-bit id and four 32-bit
floats ``minx, maxx, miny, maxy``, rounded outwards; every node as long as the root node
SQLite created). Anything unexpected (a geometry header without an envelope, an SQL error,
a count that does not match) empties the index and fills it the standard way at the end,
one ``INSERT`` per feature: slow, never wrong.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

LOG = logging.getLogger(__name__)

#: bytes of one 2-D R-tree cell: id (int64) and minx, maxx, miny, maxy (float32)
CELL = 24
_CELL_DTYPE = np.dtype([("id", ">i8"), ("box", ">f4", (4,))])
#: the hex of a feature as read: its id (16 hex digits) and its geometry header (40 bytes)
_ROW_HEX = 16 + 80


class PackError(RuntimeError):
    """The packed index cannot be used: it is filled the standard way."""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _scalar(ds: Any, sql: str) -> Any:
    """The first column of the first row of a SELECT run by GDAL (None without a row)."""
    res = ds.ExecuteSQL(sql)
    if res is None:
        raise PackError(f"no result for {sql[:60]}")
    try:
        feat = res.GetNextFeature()
        if feat is None or not feat.IsFieldSet(0) or feat.IsFieldNull(0):
            return None
        return feat.GetField(0)
    finally:
        ds.ReleaseResultSet(res)


def envelopes(raw_hex: str) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, boxes)`` from rows of :data:`_ROW_HEX` hex digits: the id, then the first 40
    bytes of a GeoPackage geometry (header with an XY envelope, either byte order); boxes
    (n, 4) float64 ``minx, maxx, miny, maxy``."""
    if len(raw_hex) % _ROW_HEX:
        raise PackError("a geometry blob shorter than a header with an envelope")
    raw = np.frombuffer(bytes.fromhex(raw_hex), np.uint8).reshape(-1, _ROW_HEX // 2)
    n = raw.shape[0]
    ids = raw[:, :8].copy().view(">i8").ravel().astype(np.int64)
    head = raw[:, 8:]
    flags = head[:, 3]
    if not (np.all(head[:, 0] == 0x47) and np.all(head[:, 1] == 0x50)):
        raise PackError("not a GeoPackage geometry blob")
    if np.any((flags >> 1) & 7 != 1) or np.any(flags & 0x10):
        raise PackError("a geometry without an XY envelope (or empty)")
    env = np.empty((n, 4))
    little = (flags & 1).astype(bool)
    body = np.ascontiguousarray(head[:, 8:40])
    env[little] = body[little].view("<f8").reshape(-1, 4)
    env[~little] = body[~little].view(">f8").reshape(-1, 4)
    if not np.all(np.isfinite(env)):
        raise PackError("a geometry with a non-finite envelope")
    return ids, env


def outward(env: np.ndarray) -> np.ndarray:
    """float32 boxes that contain the float64 ones (as SQLite's R-tree rounds)."""
    f = env.astype(np.float32)
    lo, hi = f[:, 0::2], f[:, 1::2]
    lo[:] = np.where(lo > env[:, 0::2], np.nextafter(lo, np.float32(-np.inf)), lo)
    hi[:] = np.where(hi < env[:, 1::2], np.nextafter(hi, np.float32(np.inf)), hi)
    return f


def str_order(box: np.ndarray, fanout: int) -> np.ndarray:
    """Sort-tile-recursive order of boxes: vertical slices by centre x, each by centre y."""
    n = box.shape[0]
    per_slice = fanout * max(1, math.ceil(math.sqrt(-(-n // fanout))))
    cx = box[:, 0].astype(np.float64) + box[:, 1]
    cy = box[:, 2].astype(np.float64) + box[:, 3]
    slice_of = np.empty(n, np.int64)
    slice_of[np.argsort(cx, kind="stable")] = np.arange(n) // per_slice
    return np.lexsort((cy, slice_of))


def union_boxes(box: np.ndarray, fanout: int) -> np.ndarray:
    """The box of each run of ``fanout`` consecutive boxes (the last may be shorter)."""
    starts = np.arange(0, box.shape[0], fanout)
    return np.stack(
        [
            np.minimum.reduceat(box[:, 0], starts),
            np.maximum.reduceat(box[:, 1], starts),
            np.minimum.reduceat(box[:, 2], starts),
            np.maximum.reduceat(box[:, 3], starts),
        ],
        axis=1,
    )


def node_blobs(ids: np.ndarray, box: np.ndarray, fanout: int, size: int, depth: int = 0):
    """(nodes, ``size``) uint8: the cells ``ids``/``box`` (in order) cut into nodes of
    ``fanout`` cells; ``depth`` goes in the first bytes (read from the root only)."""
    n = ids.size
    n_nodes = max(1, -(-n // fanout))
    cells = np.zeros(n_nodes * fanout, _CELL_DTYPE)
    cells["id"][:n], cells["box"][:n] = ids, box
    data = np.zeros((n_nodes, size), np.uint8)
    counts = np.full(n_nodes, fanout, np.int64)
    counts[-1] = n - fanout * (n_nodes - 1)
    data[:, 0:2] = np.array([depth], ">u2").view(np.uint8)
    data[:, 2:4] = counts.astype(">u2").view(np.uint8).reshape(n_nodes, 2)
    data[:, 4 : 4 + fanout * CELL] = cells.view(np.uint8).reshape(n_nodes, fanout * CELL)
    return data


def create_index(ds: Any, table: str, column: str, fid: str | None) -> PackedIndex | None:
    """The spatial index of the new, empty layer ``table``: its virtual table, triggers and
    extension row made by GDAL, then a :class:`PackedIndex` to fill it; None (a warning)
    when it cannot be packed: GDAL's triggers then index each feature as it comes."""
    try:
        _scalar(ds, f"SELECT CreateSpatialIndex({_lit(table)}, {_lit(column)})")
        return PackedIndex(ds, table, column, fid or "fid")
    except (PackError, RuntimeError) as exc:  # pragma: no cover - an unexpected GeoPackage
        LOG.warning("spatial index not packed (%s): indexed feature by feature", exc)
        return None


class PackedIndex:
    """The R-tree of ``table.column`` in the GDAL GeoPackage dataset ``ds``, created empty
    by GDAL just before (see the module doc). Used from one thread at a time, between
    GDAL's transactions (it runs its own)."""

    def __init__(self, ds: Any, table: str, column: str, fid: str) -> None:
        self.ds = ds
        self.table, self.column, self.fid = table, column, fid
        self.rt = f"rtree_{table}_{column}"
        name = self.rt + "_insert"
        self.trigger_sql = _scalar(
            ds, f"SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = {_lit(name)}"
        )
        if not self.trigger_sql:
            raise PackError(f"no trigger {name}")
        self.size = int(
            _scalar(ds, f"SELECT length(data) FROM {_q(self.rt + '_node')} WHERE nodeno = 1") or 0
        )
        self.fanout = (self.size - 4) // CELL
        if self.fanout < 2:
            raise PackError(f"{self.rt}: node size {self.size}")
        ds.ExecuteSQL(f"DROP TRIGGER {_q(name)}")
        self.last_fid = 0  # features with a greater id are not read yet
        self.wait_ids = np.zeros(0, np.int64)  # read, not in a leaf yet
        self.wait_box = np.zeros((0, 4), np.float32)
        self.leaf_no: list[np.ndarray] = []  # the leaves written so far, and their boxes
        self.leaf_box: list[np.ndarray] = []
        self.next_no = 2
        self.indexed = 0
        self.failed: str | None = None
        self.seconds = 0.0

    # ---------------------------------------------------------------- while writing
    def update(self) -> None:
        """Index the features committed since the last call (full leaves only)."""
        if self.failed is None:
            try:
                self._run(self._update, final=False)
            except (PackError, RuntimeError) as exc:
                self.failed = str(exc)

    def _run(self, step: Callable[..., None], **kw: Any) -> None:
        """``step`` in one transaction of GDAL's, timed."""
        t0 = time.perf_counter()
        self.ds.StartTransaction()
        try:
            step(**kw)
        except BaseException:
            self.ds.RollbackTransaction()
            raise
        finally:
            self.seconds += time.perf_counter() - t0
        self.ds.CommitTransaction()

    def add(self, ids: np.ndarray, env: np.ndarray) -> None:
        """Index features whose ids (ascending, committed after the last :meth:`update`)
        and envelopes (n x 4: min x, max x, min y, max y) the caller knows: nothing is
        read back."""
        if self.failed is None:
            try:
                if ids.size and ids[0] <= self.last_fid:
                    raise PackError(f"feature {ids[0]} is not new")
                self._run(self._update, final=False, known=(ids, env))
            except (PackError, RuntimeError) as exc:
                self.failed = str(exc)

    def _update(self, final: bool, known: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        if known is None:
            t, g, f = _q(self.table), _q(self.column), _q(self.fid)
            raw = _scalar(
                self.ds,
                f"SELECT group_concat(printf('%016X', {f}) || hex(substr({g}, 1, 40)), '') "
                f"FROM (SELECT {f}, {g} FROM {t} WHERE {f} > {self.last_fid} "
                f"AND {g} IS NOT NULL ORDER BY {f})",
            )
            # ids > last_fid, in order (the query's)
            ids, env = envelopes(raw) if raw else (np.zeros(0, np.int64), np.zeros((0, 4)))
        else:
            ids, env = known
        if ids.size:
            if ids[-1] >= 2**31:  # packed with the leaf's number in one int64
                raise PackError("feature ids beyond 2^31")
            self.last_fid = int(ids[-1])
            self.wait_ids = np.concatenate([self.wait_ids, ids.astype(np.int64)])
            self.wait_box = np.concatenate([self.wait_box, outward(env)])
        n = self.wait_ids.size
        if not final:
            full = n // self.fanout * self.fanout
        elif not self.leaf_no and n <= self.fanout:
            return  # one node holds them all: the root (see _finish)
        else:
            full = n  # the last leaf is not full
        if full == 0:
            return
        order = str_order(self.wait_box, self.fanout)
        take, keep = order[:full], order[full:]
        ids, box = self.wait_ids[take], self.wait_box[take]
        self.wait_ids, self.wait_box = self.wait_ids[keep], self.wait_box[keep]
        numbers = self._write_nodes(ids, box)
        self._write_leaf_of(ids, np.repeat(numbers, self.fanout)[: ids.size])
        self.leaf_no.append(numbers)
        self.leaf_box.append(union_boxes(box, self.fanout))

    def _write_leaf_of(self, ids: np.ndarray, leaf: np.ndarray) -> None:
        """The ``_rowid`` table: each feature's leaf node (one statement: both numbers
        packed in one integer, a JSON array that SQLite unpacks)."""
        if ids.size:
            code = (ids << 32) | leaf
            self.ds.ExecuteSQL(
                f"INSERT INTO {_q(self.rt + '_rowid')} (rowid, nodeno) "
                f"SELECT value >> 32, value & 4294967295 FROM json_each("
                f"'[{','.join(map(str, code.tolist()))}]')"
            )
            self.indexed += ids.size

    def _write_nodes(
        self, ids: np.ndarray, box: np.ndarray, depth: int = 0, root: bool = False
    ) -> np.ndarray:
        """Nodes holding the cells ``ids``/``box`` in order (``root``: the one node 1); their
        numbers."""
        data = node_blobs(ids, box, self.fanout, self.size, depth)
        if root:
            numbers = np.array([1])
        else:
            numbers = np.arange(self.next_no, self.next_no + data.shape[0])
            self.next_no += data.shape[0]
        rows = ",".join(f"({k},X'{d.tobytes().hex()}')" for k, d in zip(numbers.tolist(), data))
        self.ds.ExecuteSQL(
            f"INSERT OR REPLACE INTO {_q(self.rt + '_node')} (nodeno, data) VALUES {rows}"
        )
        return numbers

    # ---------------------------------------------------------------- at the end
    def finish(self) -> int:
        """Index what is left, write the upper levels and the root, put the trigger back;
        the number of features indexed (the standard fill on any failure)."""
        if self.failed is None:
            try:
                self._run(self._finish)
                return self.indexed
            except (PackError, RuntimeError) as exc:
                self.failed = str(exc)
        LOG.warning("spatial index not packed (%s): filled row by row", self.failed)
        self._run(self._standard)
        return self.indexed

    def _finish(self) -> None:
        self._update(final=True)
        if not self.leaf_no:  # fewer features than a node holds: the root is the leaf
            ids, box = self.wait_ids, self.wait_box
            self._write_nodes(ids, box, root=True)
            self._write_leaf_of(ids, np.ones(ids.size, np.int64))
        else:
            ids, box = np.concatenate(self.leaf_no), np.concatenate(self.leaf_box)
            depth = 1
            while True:
                if ids.size <= self.fanout:
                    self._write_nodes(ids, box, depth, root=True)
                    self._parents(ids, np.ones(ids.size, np.int64))
                    break
                order = str_order(box, self.fanout)
                ids, box = ids[order], box[order]
                numbers = self._write_nodes(ids, box)
                self._parents(ids, np.repeat(numbers, self.fanout)[: ids.size])
                ids, box = numbers, union_boxes(box, self.fanout)
                depth += 1
        self._restore_trigger()
        expected = _scalar(
            self.ds,
            f"SELECT count(*) FROM {_q(self.table)} WHERE {_q(self.column)} IS NOT NULL",
        )
        got = _scalar(self.ds, f"SELECT count(*) FROM {_q(self.rt + '_rowid')}")
        if got != expected or got != self.indexed:
            raise PackError(f"{got} entries indexed for {expected} features")

    def _restore_trigger(self) -> None:
        """The insert trigger as GDAL wrote it (replacing one GDAL may have made again)."""
        self.ds.ExecuteSQL(f"DROP TRIGGER IF EXISTS {_q(self.rt + '_insert')}")
        self.ds.ExecuteSQL(self.trigger_sql)

    def _parents(self, children: np.ndarray, parents: np.ndarray) -> None:
        rows = ",".join(f"({c},{p})" for c, p in zip(children.tolist(), parents.tolist()))
        self.ds.ExecuteSQL(
            f"INSERT INTO {_q(self.rt + '_parent')} (nodeno, parentnode) VALUES {rows}"
        )

    def _standard(self) -> None:
        """Empty the index (a root with no cell, as SQLite creates it), fill it with one
        INSERT per feature (GDAL's ``ST_*`` functions), put the trigger back."""
        rt, g, t = _q(self.rt), _q(self.column), _q(self.table)
        for part in ("_node", "_rowid", "_parent"):
            self.ds.ExecuteSQL(f"DELETE FROM {_q(self.rt + part)}")
        self.ds.ExecuteSQL(f"INSERT INTO {_q(self.rt + '_node')} VALUES (1, zeroblob({self.size}))")
        self.ds.ExecuteSQL(
            f"INSERT OR REPLACE INTO {rt} SELECT {_q(self.fid)}, ST_MinX({g}), ST_MaxX({g}), "
            f"ST_MinY({g}), ST_MaxY({g}) FROM {t} WHERE {g} NOT NULL AND NOT ST_IsEmpty({g})"
        )
        self._restore_trigger()
        self.indexed = int(_scalar(self.ds, f"SELECT count(*) FROM {_q(self.rt + '_rowid')}"))
