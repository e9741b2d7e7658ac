"""Outlines traced in numpy (core/outline.py) and written as GeoPackage blobs
(io/gpkg_blob.py, FeatureWriter.add_blobs): the same polygons as ``gdal.Polygonize``
(rings, vertices, areas), valid where a region meets itself at a corner, ring order and
orientation as documented, blobs GDAL reads with the right envelope and CRS, and a
GeoPackage whose count, extent and spatial index are right whichever way it was written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, gdal_array, ogr, osr

from arctic_assist.core.components import label_runs
from arctic_assist.core.outline import outline
from arctic_assist.io.gpkg_blob import polygon_blobs
from arctic_assist.io.vector import FeatureWriter

gdal.UseExceptions()
ogr.UseExceptions()
GT = (500000.0, 10.0, 0.0, 7500000.0, 0.0, -10.0)


def srs() -> osr.SpatialReference:
    s = osr.SpatialReference()
    s.ImportFromEPSG(32608)
    return s


def components(mask: np.ndarray) -> np.ndarray:
    runs = label_runs(mask, 4)
    if runs.n == 0:
        return np.zeros(mask.shape, np.int32)
    return runs.paint(np.arange(1, runs.n + 1), np.ones(runs.n, bool))


def traced(lab: np.ndarray, gt=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0)) -> dict[int, ogr.Geometry]:
    """label -> polygon, from the blobs (what the GeoPackage gets)."""
    o = outline(lab)
    data, start, size, env = polygon_blobs(o, gt, 4326)
    out = {}
    for i, label in enumerate(o.labels.tolist()):
        blob = data[start[i] : start[i] + size[i]]
        multi = ogr.CreateGeometryFromWkb(blob[40:])
        assert multi.GetGeometryType() == ogr.wkbMultiPolygon
        assert multi.GetGeometryCount() == 1
        assert np.allclose(multi.GetEnvelope(), env[i], rtol=0, atol=1e-9)
        out[label] = multi.GetGeometryRef(0).Clone()
    return out


def polygonized(lab: np.ndarray) -> dict[int, ogr.Geometry]:
    src = gdal_array.OpenArray(lab.astype(np.int32))
    src.SetGeoTransform((0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    band = src.GetRasterBand(1)
    mem = ogr.GetDriverByName("Memory").CreateDataSource("w")
    layer = mem.CreateLayer("w", geom_type=ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("label", ogr.OFTInteger))
    gdal.Polygonize(band, band, layer, 0, [], callback=None)
    return {f.GetFieldAsInteger(0): f.GetGeometryRef().Clone() for f in layer}


def ring_sizes(poly: ogr.Geometry) -> list[int]:
    return sorted(poly.GetGeometryRef(i).GetPointCount() for i in range(poly.GetGeometryCount()))


def signed_area(ring: ogr.Geometry) -> float:
    pts = np.array(ring.GetPoints())
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


def assert_same_as_gdal(lab: np.ndarray) -> int:
    mine, ref = traced(lab), polygonized(lab)
    assert sorted(mine) == sorted(ref)
    for label, poly in mine.items():
        assert poly.IsValid(), (label, poly.ExportToWkt())
        assert poly.GetArea() == pytest.approx(ref[label].GetArea(), abs=1e-9)
        assert poly.GetArea() == np.count_nonzero(lab == label)
        assert poly.SymDifference(ref[label]).GetArea() == 0
        assert ring_sizes(poly) == ring_sizes(ref[label])  # same rings, same vertices
        # the outer ring first, counter-clockwise (north up); holes clockwise
        areas = [signed_area(poly.GetGeometryRef(i)) for i in range(poly.GetGeometryCount())]
        assert areas[0] > 0 and all(a < 0 for a in areas[1:])
        assert areas[0] == pytest.approx(ref[label].GetGeometryRef(0).GetArea())
    return len(mine)


@pytest.mark.parametrize("seed", range(6))
def test_same_polygons_as_gdal_polygonize_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    n = 0
    for _ in range(60):
        h, w = rng.integers(1, 36, 2)
        mask = rng.random((h, w)) < rng.uniform(0.2, 0.9)
        n += assert_same_as_gdal(components(mask))
    assert n > 500


def test_regions_touching_each_other_and_the_border():
    """Any labelled image of 4-connected regions: neighbours sharing edges, the image
    full, one region around another."""
    rng = np.random.default_rng(7)
    blocks = rng.integers(1, 6, (6, 8))
    lab = np.kron(blocks, np.ones((3, 2), int)).astype(np.int32)
    # relabel so that each label is one 4-connected region
    out = np.zeros_like(lab)
    nxt = 1
    for v in np.unique(lab):
        comp = components(lab == v)
        out[comp > 0] = comp[comp > 0] + nxt - 1
        nxt += int(comp.max())
    assert_same_as_gdal(out)
    ring = np.ones((7, 7), np.int32)
    ring[2:5, 2:5] = 2
    assert_same_as_gdal(ring)
    assert_same_as_gdal(np.ones((1, 1), np.int32))
    assert outline(np.zeros((4, 5), np.int32)).labels.size == 0


@pytest.mark.parametrize(
    "rows",
    [
        # a hole that touches the outside at a corner
        ["XXX.", "X.X.", "XX.X", "XXXX"],
        # two holes touching each other at a corner
        ["XXXX", "X.XX", "XX.X", "XXXX"],
        # the region reaching around and meeting itself diagonally, twice
        ["XXXXX", "X.X.X", "XX.XX", "X.X.X", "XXXXX"],
    ],
)
def test_a_region_meeting_itself_at_a_corner_gives_a_valid_polygon(rows):
    mask = np.array([[c == "X" for c in r] for r in rows])
    lab = components(mask)
    assert lab.max() == 1  # one region
    assert_same_as_gdal(lab)


def test_blobs_carry_the_geotransform_and_the_crs():
    """Map coordinates = the geotransform applied to the pixel corners (also rotated);
    the header names the srs_id, the envelope is the polygon's."""
    lab = np.zeros((6, 9), np.int32)
    lab[1:4, 2:7] = 3
    lab[2, 4] = 0  # a hole
    gt = (1000.0, 2.0, 0.5, 5000.0, 0.25, -3.0)
    o = outline(lab)
    data, start, size, env = polygon_blobs(o, gt, 32608)
    blob = data[start[0] : start[0] + size[0]]
    assert blob[:4] == b"GP\x00\x03" and int.from_bytes(blob[4:8], "little") == 32608
    multi = ogr.CreateGeometryFromWkb(blob[40:])
    poly = multi.GetGeometryRef(0)
    det = abs(gt[1] * gt[5] - gt[2] * gt[4])
    assert poly.GetArea() == pytest.approx(14 * det)
    pts = {tuple(p) for p in poly.GetGeometryRef(0).GetPoints()}
    for col, row in ((2, 1), (7, 1), (7, 4), (2, 4)):
        assert (gt[0] + col * gt[1] + row * gt[2], gt[3] + col * gt[4] + row * gt[5]) in pts
    assert tuple(env[0]) == pytest.approx(poly.GetEnvelope())
    assert np.frombuffer(blob[8:40], "<f8").tolist() == env[0].tolist()


def write(path: Path, lab: np.ndarray, *, via_gdal: bool, extra: bool = True) -> int:
    writer = FeatureWriter(str(path), "p", srs(), {"model": "m", "status": "proposed"})
    if via_gdal:
        writer.sql = False  # as when Python's sqlite3 is missing or fails
    half = lab.shape[0] // 2
    for r0, part in ((0, lab[:half]), (half, lab[half:])):
        o = outline(part)
        gt = (GT[0], GT[1], 0.0, GT[3] + r0 * GT[5], 0.0, GT[5])
        data, _, size, env = polygon_blobs(o, gt, writer.srs_id)
        score = (o.labels % 7 / 7).astype(np.float32)
        area = np.array([np.count_nonzero(part == v) * 100.0 for v in o.labels])
        writer.add_blobs(data, size, score, area, env)
        if extra:  # a piece written by GDAL between the batches
            x, y = GT[0] - 50, GT[3] + 50 + r0
            g = ogr.CreateGeometryFromWkt(
                f"POLYGON(({x} {y},{x + 5} {y},{x + 5} {y + 5},{x} {y + 5},{x} {y}))"
            )
            writer.add(g, 0.5, 25.0)
    return writer.close()


@pytest.mark.parametrize("via_gdal", [False, True])
def test_features_written_as_blobs_read_back_with_count_extent_and_index(tmp_path, via_gdal):
    rng = np.random.default_rng(3)
    lab = components(rng.random((80, 90)) < 0.45)
    path = tmp_path / "p.gpkg"
    n = write(path, lab, via_gdal=via_gdal)
    ds = ogr.Open(str(path))
    layer = ds.GetLayer(0)
    assert layer.GetFeatureCount() == n > 200
    polys = [f.GetGeometryRef().Clone() for f in layer]
    assert all(g.IsValid() and g.GetGeometryType() == ogr.wkbMultiPolygon for g in polys)
    fields = [(f.GetField("model"), f.GetField("status")) for f in layer]
    assert set(fields) == {("m", "proposed")}
    areas = [f.GetField("area_m2") for f in layer]
    assert [round(g.GetArea()) for g in polys] == [round(a) for a in areas]
    env = np.array([g.GetEnvelope() for g in polys])
    got = layer.GetExtent()
    assert got == (env[:, 0].min(), env[:, 1].max(), env[:, 2].min(), env[:, 3].max())
    ds = None
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT rtreecheck('rtree_p_geom')").fetchone()[0] == "ok"
        assert con.execute("SELECT count(*) FROM rtree_p_geom").fetchone()[0] == n
        count = con.execute("SELECT feature_count FROM gpkg_ogr_contents").fetchone()[0]
        # GDAL's cached count: right, or (written through GDAL) unknown; never wrong
        assert count == (None if via_gdal else n)
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
        assert {"rtree_p_geom_insert", "trigger_insert_feature_count_p"} <= names
        index = {r[0]: r[1:] for r in con.execute("SELECT * FROM rtree_p_geom")}
        fids = [r[0] for r in con.execute("SELECT fid FROM p ORDER BY fid")]
    finally:
        con.close()
    for fid, (x0, x1, y0, y1) in zip(fids, env):
        b = index[fid]
        assert b[0] <= x0 and b[1] >= x1 and b[2] <= y0 and b[3] >= y1
    # the same features either way
    other = tmp_path / "o.gpkg"
    write(other, lab, via_gdal=not via_gdal)
    assert wkbs(path) == wkbs(other)


def wkbs(path: Path) -> list[bytes]:
    ds = ogr.Open(str(path))
    out = [bytes(f.GetGeometryRef().ExportToWkb()) for f in ds.GetLayer(0)]
    ds = None
    return out
