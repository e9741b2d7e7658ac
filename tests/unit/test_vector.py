"""Vectorising in windows (io/vector.py): the same polygons and scores whatever the windows,
components cut by window edges joined into one polygon, the clean-up, bounded memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from arctic_assist.core.components import fill_holes, label, label_runs, majority_filter
from arctic_assist.core.tiling import panel_bounds
from arctic_assist.io import vector
from arctic_assist.io.vector import Cleanup, FeatureWriter, vectorise

gdal.UseExceptions()
ogr.UseExceptions()
GT = (500000.0, 10.0, 0.0, 7500000.0, 0.0, -10.0)


def srs() -> osr.SpatialReference:
    s = osr.SpatialReference()
    s.ImportFromEPSG(32608)
    return s


def write_prob(path: Path, p: np.ndarray) -> Path:
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), p.shape[1], p.shape[0], 1, gdal.GDT_Float32, options=["TILED=YES"]
    )
    ds.SetGeoTransform(GT)
    ds.SetProjection(srs().ExportToWkt())
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(-1.0)
    band.WriteArray(p.astype(np.float32))
    ds = None
    return path


def smooth_field(shape: tuple[int, int], scale: int, seed: int) -> np.ndarray:
    """Probabilities in [0, 1] with blobs about ``scale`` px wide."""
    rng = np.random.default_rng(seed)
    h, w = shape
    coarse = rng.random((h // scale + 2, w // scale + 2))
    ys = np.linspace(0, coarse.shape[0] - 1.001, h)
    xs = np.linspace(0, coarse.shape[1] - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None]
    c = coarse
    return (
        (1 - fy) * (1 - fx) * c[y0][:, x0]
        + fy * (1 - fx) * c[y0 + 1][:, x0]
        + (1 - fy) * fx * c[y0][:, x0 + 1]
        + fy * fx * c[y0 + 1][:, x0 + 1]
    )


def run(prob_path: Path, out: Path, **kw) -> list[dict]:
    writer = FeatureWriter(str(out), "p", srs(), {"model": "m", "status": "proposed"})
    vectorise(
        str(prob_path),
        writer,
        threshold=kw.pop("threshold", 0.5),
        metres_per_unit=1.0,
        grid_srs=srs(),
        out_srs=srs(),
        **kw,
    )
    writer.close()
    ds = ogr.Open(str(out))
    rows = []
    for f in ds.GetLayer(0):
        g = f.GetGeometryRef()
        rows.append(
            {
                "score": f.GetField("score"),
                "area": f.GetField("area_m2"),
                "geom": g.Clone(),
                "valid": g.IsValid(),
                "parts": g.GetGeometryCount(),
                "status": f.GetField("status"),
            }
        )
    return sorted(rows, key=lambda r: (r["area"], r["score"]))


def reference(
    p: np.ndarray, threshold: float, cleanup: Cleanup, min_area: float = 0.0
) -> list[tuple[float, float]]:
    """(area m2, score) of every component, computed on the whole array at once."""
    valid = p != -1
    mask = (p > threshold) & valid
    if cleanup.filter_size > 1:
        mask = majority_filter(mask, valid, cleanup.filter_size)
    mask = fill_holes(mask, valid, cleanup.fill_holes_px)
    lab, n = label(mask, 4)
    counts = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    sums = np.bincount(lab.ravel(), weights=p.ravel().astype(np.float64), minlength=n + 1)[1:]
    keep = (counts >= max(1, cleanup.min_segment_px)) & (counts * 100.0 >= min_area)
    return sorted(zip((counts * 100.0)[keep].tolist(), (sums / counts)[keep].tolist()))


@pytest.mark.parametrize(
    "cleanup",
    [
        Cleanup(),
        Cleanup(min_segment_px=6, fill_holes_px=9),
        Cleanup(min_segment_px=3, fill_holes_px=40, filter_size=3),
    ],
)
def test_windows_change_nothing(tmp_path, cleanup):
    """16 px windows (hundreds of window edges) give exactly the polygons, areas and scores
    of the whole array labelled at once, with and without the clean-up."""
    p = smooth_field((150, 170), 5, seed=3).astype(np.float32)
    p[:, 150:] = -1.0  # nodata strip
    p[100:108, 20:30] = -1.0  # nodata hole: never filled, never foreground
    prob = write_prob(tmp_path / "p.tif", p)
    ref = reference(p, 0.6, cleanup, min_area=300.0)
    assert len(ref) > 20
    # the cells above the threshold, as run_detection records them while writing: windows
    # without any (halo included) are skipped unread, which must change nothing
    cells = np.pad(p > 0.6, ((0, 2), (0, 6))).reshape(19, 8, 22, 8).any(axis=(1, 3))
    small = run(
        prob,
        tmp_path / "small.gpkg",
        window=16,
        cleanup=cleanup,
        min_area_m2=300.0,
        threshold=0.6,
        positives=cells,
        cell=8,
    )
    assert (
        run(
            prob,
            tmp_path / "none.gpkg",
            window=16,
            cleanup=cleanup,
            threshold=0.6,
            positives=np.zeros_like(cells),
            cell=8,
        )
        == []
    )
    # 48 px windows: each processes only the box of its cells above the threshold
    mid = run(
        prob,
        tmp_path / "mid.gpkg",
        window=48,
        cleanup=cleanup,
        min_area_m2=300.0,
        threshold=0.6,
        positives=cells,
        cell=8,
    )
    whole = run(
        prob,
        tmp_path / "whole.gpkg",
        window=4096,
        cleanup=cleanup,
        min_area_m2=300.0,
        threshold=0.6,
    )
    for rows in (small, mid, whole):
        got = [(r["area"], r["score"]) for r in rows]
        assert len(got) == len(ref)
        assert [a for a, _ in got] == [a for a, _ in ref]
        # scores travel as float32 (gdal.FPolygonize)
        assert [s for _, s in got] == pytest.approx([s for _, s in ref], rel=1e-6)
        assert all(r["valid"] for r in rows)
        assert all(r["geom"].GetArea() == pytest.approx(r["area"]) for r in rows)
        assert {r["status"] for r in rows} == {"proposed"}
    for a, b in zip(small, whole):
        assert a["geom"].SymDifference(b["geom"]).GetArea() == pytest.approx(0.0, abs=1e-6)


def test_component_across_window_corners_is_one_polygon_with_its_score(tmp_path):
    """A ring crossing four windows (and a hole in it) is one polygon; its score is the mean
    of its own pixels, not of a piece."""
    p = np.full((64, 64), 0.1, np.float32)
    p[8:40, 8:40] = 0.9
    p[14:34, 14:34] = 0.1  # the ring's hole, across the window corner at (32, 32)
    p[8:40, 8:12] = 0.6  # a different score on the left band of the ring
    prob = write_prob(tmp_path / "ring.tif", p)
    rows = run(prob, tmp_path / "ring.gpkg", window=32)
    # the same when each window processes only the box of its 8 px cells above threshold
    cells = (p > 0.5).reshape(8, 8, 8, 8).any(axis=(1, 3))
    boxed = run(prob, tmp_path / "boxed.gpkg", window=32, positives=cells, cell=8)
    assert [(r["area"], r["score"]) for r in boxed] == [(r["area"], r["score"]) for r in rows]
    assert boxed[0]["geom"].Equals(rows[0]["geom"])
    assert len(rows) == 1
    ring = p > 0.5
    assert rows[0]["area"] == pytest.approx(ring.sum() * 100.0)
    assert rows[0]["score"] == pytest.approx(float(p[ring].astype(np.float64).mean()), rel=1e-6)
    g = rows[0]["geom"]
    assert g.IsValid() and g.GetGeometryCount() == 1  # one polygon ...
    poly = g.GetGeometryRef(0)
    assert poly.GetGeometryCount() == 2  # ... with its hole
    xmin, xmax, ymin, ymax = g.GetEnvelope()
    assert (xmin, xmax, ymin, ymax) == (500080.0, 500400.0, 7499600.0, 7499920.0)
    # filling holes below 400 px (the hole has 400): unchanged; below 401: filled
    assert (
        run(prob, tmp_path / "f1.gpkg", window=32, cleanup=Cleanup(fill_holes_px=400))[0]["area"]
        == rows[0]["area"]
    )
    filled = run(prob, tmp_path / "f2.gpkg", window=32, cleanup=Cleanup(fill_holes_px=401))
    assert filled[0]["area"] == pytest.approx(32 * 32 * 100.0)
    assert filled[0]["score"] == pytest.approx(float(p[8:40, 8:40].astype(np.float64).mean()))


def test_small_components_never_reach_polygonize(tmp_path, monkeypatch):
    """MIN_AREA and the small-segment limit are applied to the label image itself: the
    dropped components are not polygonised at all."""
    p = np.zeros((40, 60), np.float32)
    p[2:4, 2:4] = 0.9  # 4 px
    p[10:13, 10:13] = 0.9  # 9 px
    p[20:30, 20:40] = 0.9  # 200 px
    prob = write_prob(tmp_path / "s.tif", p)
    seen = []
    real = vector.outline

    def spy(labels):
        seen.append(int(np.count_nonzero(labels)))
        return real(labels)

    monkeypatch.setattr(vector, "outline", spy)
    for simplify, out in ((0.0, "s.gpkg"), (1.0, "s2.gpkg")):
        seen.clear()
        rows = run(
            prob,
            tmp_path / out,
            min_area_m2=1000.0,
            cleanup=Cleanup(min_segment_px=5),
            simplify_m=simplify,
        )
        assert [r["area"] for r in rows] == [20000.0]
        assert seen == [200]


def test_majority_filter_and_holes():
    m = np.zeros((9, 9), bool)
    m[2:7, 2:7] = True
    m[4, 4] = False  # a one-pixel hole
    m[0, 8] = True  # a speck
    v = np.ones_like(m)
    f = majority_filter(m, v, 3)
    assert f[4, 4] and not f[0, 8]
    assert fill_holes(m, v, 2)[4, 4] and not fill_holes(m, v, 1)[4, 4]
    v2 = v.copy()
    v2[4, 4] = False  # an invalid pixel is no hole to fill
    assert not fill_holes(m, v2, 5)[4, 4]
    with pytest.raises(ValueError):
        Cleanup(filter_size=4)


def _peak(tmp_path: Path, size: int) -> int:
    tmp_path.mkdir(parents=True, exist_ok=True)
    p = smooth_field((size, size), 4, seed=size).astype(np.float32)
    prob = write_prob(tmp_path / f"m{size}.tif", p)
    tracemalloc.start()
    writer = FeatureWriter(str(tmp_path / f"m{size}.gpkg"), "p", srs(), {})
    stats = vectorise(
        str(prob),
        writer,
        threshold=0.6,
        metres_per_unit=1.0,
        grid_srs=srs(),
        out_srs=srs(),
        window=128,
        cleanup=Cleanup(fill_holes_px=16),
    )
    writer.close()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert stats.written > size * size / 2000  # hundreds to thousands of polygons
    return peak


def test_memory_is_bounded_by_the_window(tmp_path, monkeypatch):
    """4x the pixels and polygons: the peak of Python/numpy memory grows far less (pieces
    are written as soon as no later window can extend them), and stays
    far below one float32 copy of the raster (what a whole-raster approach would hold).

    The growth is measured with one worker: with two, how many windows are in flight at
    the peak depends on thread timing (a loaded machine measured 1.31 x once); the bound
    on the threaded run is the absolute one."""
    from arctic_assist.io import vector

    threaded = _peak(tmp_path / "t", 1536)
    monkeypatch.setattr(vector, "WORKERS", 1)
    small, big = _peak(tmp_path, 768), _peak(tmp_path, 1536)
    print(
        f"peak traced memory, one worker: {small / 2**20:.1f} MB at 768^2, "
        f"{big / 2**20:.1f} MB at 1536^2 (x {big / small:.3f}); two workers "
        f"{threaded / 2**20:.1f} MB at 1536^2"
    )
    # what grows is the pieces waiting at a band's lower edge: with the raster's width
    # (2 x here), not its area (4 x) nor its polygon count
    assert big < 1.6 * small
    for peak in (big, threaded):
        assert peak < 0.25 * 1536 * 1536 * 4


def test_pieces_written_early_then_bands_without_any(tmp_path):
    """A component cut by a window edge in the first band only: it is written when the
    second band starts, and the later bands (no pieces at all) are fine."""
    p = np.zeros((96, 64), np.float32)
    p[2:20, 20:44] = 0.8  # across the column edge at 32, in the first band of windows
    p[70:75, 5:9] = 0.7  # a whole component in the third band
    prob = write_prob(tmp_path / "early.tif", p)
    rows = run(prob, tmp_path / "early.gpkg", window=32)
    assert [(r["area"], round(r["score"], 6)) for r in rows] == [(2000.0, 0.7), (43200.0, 0.8)]
    assert rows[1]["geom"].GetGeometryCount() == 1


@pytest.mark.parametrize(
    ("cleanup", "panels", "block_rows", "rows"),
    [
        # panels narrower than the halo (12 px), blocks smaller than windows
        (Cleanup(min_segment_px=3, fill_holes_px=11, filter_size=3), (0, 8, 20, 64, 170), 7, 16),
        # one panel; the tiling's panel bounds; windows taller than the raster
        (Cleanup(fill_holes_px=40), (0, 170), 13, 1024),
        (Cleanup(), (0, 48, 96, 144, 170), 50, 20),
        (
            Cleanup(fill_holes_px=16),
            tuple(p[0] for p in panel_bounds(170, 40, 8, 48, 16)) + (170,),
            32,
            33,
        ),
    ],
)
def test_streamed_panels_change_nothing(tmp_path, cleanup, panels, block_rows, rows):
    """The :class:`Vectoriser` fed as the stream feeds it (column panels of any width, each
    top to bottom in blocks of rows, from several threads' worth of windows) gives exactly
    the polygons, areas and scores of the whole array labelled at once."""
    p = smooth_field((150, 170), 5, seed=4).astype(np.float32)
    p[:, 150:] = -1.0
    p[100:108, 20:30] = -1.0
    ref = reference(p, 0.6, cleanup, min_area=300.0)
    assert len(ref) > 20
    gt = (500000.0, 1.0, 0.0, 7500000.0, 0.0, -1.0)  # metres_per_unit 10: 100 m2 pixels
    writer = FeatureWriter(str(tmp_path / "s.gpkg"), "p", srs(), {"status": "proposed"})
    vec = vector.Vectoriser(
        writer,
        shape=p.shape,
        geotransform=gt,
        nodata=-1.0,
        threshold=0.6,
        metres_per_unit=10.0,
        grid_srs=srs(),
        out_srs=srs(),
        min_area_m2=300.0,
        cleanup=cleanup,
        rows=rows,
    )
    for p0, p1 in zip(panels[:-1], panels[1:]):
        for r in range(0, p.shape[0], block_rows):
            vec.feed(r, p0, p[None, r : r + block_rows, p0:p1].copy())
    with pytest.raises(ValueError, match="is complete|out of order"):  # a panel again
        vec.feed(0, 0, p[:4, :8])
    stats = vec.finish()
    assert writer.close() == stats.written == len(ref)
    ds = ogr.Open(str(tmp_path / "s.gpkg"))
    got = sorted((f.GetField("area_m2"), f.GetField("score")) for f in ds.GetLayer(0))
    assert [a for a, _ in got] == [a for a, _ in ref]
    assert [s for _, s in got] == pytest.approx([s for _, s in ref], rel=1e-6)
    for f in ds.GetLayer(0):
        g = f.GetGeometryRef()
        assert g.IsValid() and g.GetArea() * 100.0 == pytest.approx(f.GetField("area_m2"))


def test_streamed_vectoriser_aborts_cleanly(tmp_path):
    """A panel fed before the one before it is complete is an error; abort stops the
    threads and writes nothing more."""
    writer = FeatureWriter(str(tmp_path / "a.gpkg"), "p", srs(), {})
    vec = vector.Vectoriser(
        writer,
        shape=(64, 64),
        geotransform=GT,
        nodata=-1.0,
        threshold=0.5,
        metres_per_unit=1.0,
        grid_srs=srs(),
        out_srs=srs(),
        rows=16,
    )
    vec.feed(0, 0, np.ones((20, 32), np.float32))
    with pytest.raises(ValueError, match="out of order"):  # a gap in the rows
        vec.feed(24, 0, np.ones((20, 32), np.float32))
    with pytest.raises(ValueError, match="complete"):
        vec.feed(0, 32, np.ones((20, 32), np.float32))
    with pytest.raises(ValueError, match="fed up to"):
        vec.finish()
    vec.abort()
    writer.abort()


def test_spatial_index_grows_with_the_features(tmp_path):
    """The GeoPackage's R-tree exists from the start and indexes every feature, whichever
    way it was written (a whole window's layer or one geometry), so closing has nothing
    left to build; a quote in the layer name is no SQL."""
    p = smooth_field((120, 140), 5, seed=7).astype(np.float32)
    out = tmp_path / "idx.gpkg"
    writer = FeatureWriter(str(out), "o'proposals", srs(), {"status": "proposed"})
    vectorise(
        str(write_prob(tmp_path / "p.tif", p)),
        writer,
        threshold=0.6,
        metres_per_unit=1.0,
        grid_srs=srs(),
        out_srs=srs(),
        window=32,  # pieces across windows go through FeatureWriter.add
    )
    n = writer.close()
    assert n > 10
    ds = ogr.Open(str(out))
    layer = ds.GetLayer(0)
    assert layer.TestCapability(ogr.OLCFastSpatialFilter)
    sql = ds.ExecuteSQL('SELECT COUNT(*) FROM "rtree_o\'proposals_geom"')
    assert sql.GetNextFeature().GetField(0) == n == layer.GetFeatureCount()
    ds.ReleaseResultSet(sql)
    minx, maxx, miny, maxy = layer.GetExtent()
    layer.SetSpatialFilterRect(minx, miny, (minx + maxx) / 2, maxy)
    inside = {f.GetFID() for f in layer}
    layer.SetSpatialFilter(None)
    expect = {f.GetFID() for f in layer if f.GetGeometryRef().GetEnvelope()[0] <= (minx + maxx) / 2}
    assert inside == expect and 0 < len(inside) < n


def test_paint_in_a_box_is_that_box_of_the_whole_image():
    """Runs.paint(box=...) (pieces polygonised in the box of one edge's pieces): the same
    values as painting the whole window, then cutting the box out."""
    runs = label_runs(smooth_field((90, 70), 4, seed=11) > 0.55, 4)
    select = np.zeros(runs.n, dtype=bool)
    select[[1, 3]] = True  # two components near the top
    on = select[runs.comp]
    box = (
        int(runs.row[on].min()),
        int(runs.row[on].max()) + 1,
        int(runs.start[on].min()),
        int(runs.end[on].max()),
    )
    values = np.arange(1, runs.n + 1)
    whole = runs.paint(values, select)
    r0, r1, c0, c1 = box
    assert (r1 - r0, c1 - c0) != whole.shape
    assert np.array_equal(runs.paint(values, select, box=box), whole[r0:r1, c0:c1])
    assert np.count_nonzero(whole) == np.count_nonzero(whole[r0:r1, c0:c1]) > 0
