"""The packed spatial index of the proposals' GeoPackage (io/gpkg_rtree.py): SQLite's own
check passes, every feature is in it with a box that holds it, spatial queries answer as with
GDAL's own index, later edits keep it right, and anything unexpected falls back to the
standard fill."""

from __future__ import annotations

import logging
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from arctic_assist.io import gpkg_rtree
from arctic_assist.io.vector import FeatureWriter

gdal.UseExceptions()
ogr.UseExceptions()


def srs() -> osr.SpatialReference:
    s = osr.SpatialReference()
    s.ImportFromEPSG(32608)
    return s


def boxes(n: int, seed: int) -> np.ndarray:
    """``n`` random rectangles (x0, y0, width, height) in a 10 km square, clustered in
    the order they come (like a scene's windows)."""
    rng = np.random.default_rng(seed)
    x = 500000 + np.sort(rng.random(n)) * 10000 + rng.normal(0, 300, n)
    y = 7500000 - rng.random(n) * 10000
    return np.stack([x, y, rng.random(n) * 50 + 0.3, rng.random(n) * 50 + 0.3], 1)


def blobs(rects: np.ndarray, srs_id: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """GeoPackage blobs of one MultiPolygon per rectangle: (data, sizes, envelopes)."""
    parts, env = [], []
    for x, y, w, h in rects:
        g = ogr.CreateGeometryFromWkt(
            f"MULTIPOLYGON((({x} {y},{x + w} {y},{x + w} {y + h},{x} {y + h},{x} {y})))"
        )
        env.append(g.GetEnvelope())
        head = b"GP\x00\x03" + srs_id.to_bytes(4, "little") + struct.pack("<4d", *env[-1])
        parts.append(head + g.ExportToWkb(ogr.wkbNDR))
    sizes = np.array([len(p) for p in parts], np.int64)
    return b"".join(parts), sizes, np.array(env).reshape(-1, 4)


def write(path: Path, rects: np.ndarray, batches: int = 1) -> FeatureWriter:
    """A proposals GeoPackage written the way detection writes it: ``batches`` calls of
    add_blobs (each updates the index: the first half with the envelopes given, the rest
    through GDAL's SQL, read back), then a few features one by one."""
    writer = FeatureWriter(str(path), "p", srs(), {"status": "proposed"})
    tail = rects[-3:] if len(rects) > 3 else rects[:0]
    head = rects[: len(rects) - len(tail)]
    for k, part in enumerate(np.array_split(head, batches)):
        if len(part):
            if k >= batches // 2 and batches > 1:
                writer.sql = False  # as when Python's sqlite3 cannot write
            data, sizes, env = blobs(part, writer.srs_id)
            one = np.full(len(part), 0.5)
            writer.add_blobs(data, sizes, one, one, env)
    for x, y, w, h in tail:
        g = ogr.CreateGeometryFromWkt(f"POLYGON(({x} {y},{x + w} {y},{x + w} {y + h},{x} {y}))")
        writer.add(g, 0.5, 1.0)
    writer.close()
    return writer


def check_index(path: Path) -> int:
    """rtreecheck is ok, one entry per feature, each holding its feature's envelope."""
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT rtreecheck('rtree_p_geom')").fetchone()[0] == "ok"
        n = con.execute("SELECT count(*) FROM p").fetchone()[0]
        assert con.execute("SELECT count(*) FROM rtree_p_geom").fetchone()[0] == n
        trig = con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'rtree_p_geom_insert'")
        assert trig.fetchone()[0] == 1
        index = {r[0]: r[1:] for r in con.execute("SELECT * FROM rtree_p_geom")}
    finally:
        con.close()
    ds = ogr.Open(str(path))
    for f in ds.GetLayer(0):
        x0, x1, y0, y1 = f.GetGeometryRef().GetEnvelope()
        b = index[f.GetFID()]
        assert b[0] <= x0 and b[1] >= x1 and b[2] <= y0 and b[3] >= y1
    return n


def query(path: Path, rects: np.ndarray) -> list[list[int]]:
    ds = ogr.Open(str(path))
    layer = ds.GetLayer(0)
    out = []
    for x, y, w, h in rects:
        layer.SetSpatialFilterRect(x, y, x + 20 * w, y + 20 * h)
        out.append(sorted(f.GetFID() for f in layer))
    return out


@pytest.mark.parametrize("n,batches", [(0, 1), (1, 1), (50, 1), (51, 1), (55, 2), (3000, 7)])
def test_packed_index_is_sqlites_and_answers_like_gdals(tmp_path, n, batches):
    """Sizes around one node (51 cells) and several levels (3000: 59 leaves); the same
    queries against GDAL's own index (ogr2ogr's copy) give the same features."""
    rects = boxes(n, seed=n)
    writer = write(tmp_path / "packed.gpkg", rects, batches)
    assert writer.index is not None and writer.index.failed is None
    assert check_index(tmp_path / "packed.gpkg") == n
    if n == 0:
        return
    gdal.VectorTranslate(str(tmp_path / "gdal.gpkg"), str(tmp_path / "packed.gpkg"))
    probes = np.concatenate([rects[:: max(1, n // 20)], boxes(20, seed=99)])
    answers = query(tmp_path / "packed.gpkg", probes)
    assert answers == query(tmp_path / "gdal.gpkg", probes)
    assert sum(map(len, answers)) > 0


def test_packed_index_follows_later_edits(tmp_path):
    """After the run, features added and deleted (as QGIS's editing does, through GDAL):
    the index follows (the insert trigger is back)."""
    path = tmp_path / "p.gpkg"
    write(path, boxes(400, seed=1), batches=3)
    ds = ogr.Open(str(path), 1)
    layer = ds.GetLayer(0)
    f = ogr.Feature(layer.GetLayerDefn())
    f.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON((0 0,1 0,1 1,0 0))"))
    layer.CreateFeature(f)
    layer.DeleteFeature(7)
    ds = None
    assert check_index(path) == 400
    ds = ogr.Open(str(path))
    layer = ds.GetLayer(0)
    layer.SetSpatialFilterRect(-1, -1, 2, 2)
    assert layer.GetFeatureCount() == 1


def test_unexpected_geometry_header_falls_back_to_the_standard_fill(tmp_path, monkeypatch, caplog):
    def broken(raw_hex: str):
        raise gpkg_rtree.PackError("a geometry without an XY envelope (or empty)")

    monkeypatch.setattr(gpkg_rtree, "envelopes", broken)
    with caplog.at_level(logging.WARNING):
        writer = write(tmp_path / "p.gpkg", boxes(300, seed=2), batches=2)
    assert writer.index.failed and "filled row by row" in caplog.text
    assert check_index(tmp_path / "p.gpkg") == 300


def test_envelopes_reads_both_byte_orders():
    """GeoPackage headers in little- and big-endian order; one without an envelope is
    refused."""
    env = np.array([[1.5, 2.5, -3.0, 4.0]])

    def row(fid: int, big: bool, indicator: int = 1) -> str:
        flags = (indicator << 1) | (0 if big else 1)
        head = b"GP\x00" + bytes([flags]) + (4326).to_bytes(4, "big" if big else "little")
        return f"{fid:016X}" + (head + env.astype(">f8" if big else "<f8").tobytes()).hex()

    ids, got = gpkg_rtree.envelopes(row(3, False) + row(4, True))
    assert ids.tolist() == [3, 4] and np.array_equal(got, np.repeat(env, 2, 0))
    with pytest.raises(gpkg_rtree.PackError):
        gpkg_rtree.envelopes(row(5, False, indicator=0))
    box = gpkg_rtree.outward(np.array([[0.1, 0.2, 0.3, 0.4]]))
    assert box[0, 0] <= 0.1 <= 0.2 <= box[0, 1] and box[0, 2] <= 0.3 <= 0.4 <= box[0, 3]
