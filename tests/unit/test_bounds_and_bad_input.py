"""Sizes from a file or a parameter are bounded before anything is allocated, and bad input
to tracing gets one sentence instead of a traceback or a wrong answer (issue 16)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx_factory import make_spec, weighted_sum_model
from osgeo import gdal, ogr, osr

from arctic_assist.core.errors import InputError, ModelError
from arctic_assist.core.spec import METADATA_KEY, MAX_TILE_SIZE, validate_metadata
from arctic_assist.io.trace import MAX_AOI_SIDE_PX, TraceRequest, run_tracing

gdal.UseExceptions()
ORIGIN = (400000.0, 8500000.0)


def _srs(epsg=32620):
    s = osr.SpatialReference()
    s.ImportFromEPSG(epsg)
    s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return s


def contour_model(path, tile=64, vertices=8):
    """An ONNX 'contour' model that ignores its input and returns a fixed line."""
    line = np.stack([np.linspace(-0.5, 0.5, vertices), np.zeros(vertices)], 1)[None]
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])
    node = helper.make_node(
        "Constant",
        [],
        ["contour_0"],
        value=helper.make_tensor(
            "v", TensorProto.FLOAT, line.shape, line.astype(np.float32).ravel().tolist()
        ),
    )
    out = helper.make_tensor_value_info("contour_0", TensorProto.FLOAT, list(line.shape))
    model = helper.make_model(
        helper.make_graph([node], "c", [inp], [out]), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    doc = {
        "schema": "arctic_assist.model",
        "schema_version": 1,
        "name": "c",
        "version": "0",
        "task": "contour",
        "input": {
            "name": "image",
            "dtype": "float32",
            "bands": ["gray"],
            "normalization": {"type": "none"},
        },
        "pixel_size_m": 30.0,
        "tile": {"size": tile, "overlap": 0, "multiple_of": 16},
        "classes": ["front"],
        "outputs": [{"name": "contour_0"}],
        "contour": {"vertices": vertices, "iterations": 1},
        "opset": 17,
    }
    e = model.metadata_props.add()
    e.key, e.value = METADATA_KEY, json.dumps(doc)
    import onnx

    onnx.save(model, str(path))
    return str(path)


def raster(path, data=None, dtype=gdal.GDT_UInt16, size=(400, 300), pixel=20.0):
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), size[0], size[1], 1, dtype, options=["TILED=YES", "COMPRESS=DEFLATE"]
    )
    ds.SetGeoTransform((ORIGIN[0], pixel, 0, ORIGIN[1], 0, -pixel))
    ds.SetProjection(_srs().ExportToWkt())
    if data is None:
        yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
        data = (xx + yy) % 200 + 1000
    ds.GetRasterBand(1).WriteArray(data)
    ds = None
    return str(path)


def aoi(path, ring):
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("boxes", srs=_srs(), geom_type=ogr.wkbPolygon)
    r = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in list(ring) + [ring[0]]:
        r.AddPoint_2D(x, y)
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(r)
    f = ogr.Feature(lyr.GetLayerDefn())
    f.SetGeometry(poly)
    lyr.CreateFeature(f)
    ds = None
    return str(path)


def box(cx, cy, hw, hh):
    return [(cx - hw, cy + hh), (cx + hw, cy + hh), (cx + hw, cy - hh), (cx - hw, cy - hh)]


CENTER = (ORIGIN[0] + 4000, ORIGIN[1] - 3000)


def no_output(tmp_path):
    return [
        p.name
        for p in tmp_path.iterdir()
        if p.suffix == ".gpkg" and p.name != "aoi.gpkg" or ".tmp" in p.name
    ]


# ------------------------------------------------------------------ sizes from a model file


@pytest.mark.parametrize("tile", [50_000, 1_000_000])
def test_model_tile_size_from_metadata_is_bounded(tile):
    doc = json.loads(make_spec(tile_size=tile, tile_overlap=8).to_json())
    with pytest.raises(ModelError, match=f"'tile.size' is {tile} px.*at most {MAX_TILE_SIZE}"):
        validate_metadata(doc)


def test_model_with_huge_tile_is_refused_when_loaded(tmp_path):
    from arctic_assist.core.onnx_model import OnnxModel

    path = weighted_sum_model(
        tmp_path / "big_tile.onnx", [1, 1, 1, 1], spec=make_spec(tile_size=50_000, tile_overlap=100)
    )
    t0 = time.monotonic()
    with pytest.raises(ModelError, match="tile.size"):
        OnnxModel.load(str(path), "cpu", task="segmentation", tool="test")
    assert time.monotonic() - t0 < 10


def test_overlap_and_contour_sizes_are_bounded():
    doc = json.loads(make_spec(tile_size=64, tile_overlap=64).to_json())
    with pytest.raises(ModelError, match="tile.overlap"):
        validate_metadata(doc)
    doc = json.loads(
        make_spec(task="contour", tile_size=64, tile_overlap=0, classes=("front",)).to_json()
    )
    doc["contour"]["vertices"] = 10**9
    with pytest.raises(ModelError, match="contour.vertices"):
        validate_metadata(doc)


# ------------------------------------------------------------------ tracing


def test_aoi_box_thousands_of_km_wide_is_refused_before_reading(tmp_path):
    model = contour_model(tmp_path / "c.onnx")
    img = raster(tmp_path / "img.tif")
    big = aoi(tmp_path / "aoi.gpkg", box(*CENTER, 2_000_000, 1_500_000))
    t0 = time.monotonic()
    with pytest.raises(InputError, match=f"limited to {MAX_AOI_SIDE_PX} px") as info:
        run_tracing(TraceRequest(img, model, big, str(tmp_path / "o.gpkg")))
    assert time.monotonic() - t0 < 10
    assert "AOI" in str(info.value) and "km" in str(info.value)
    assert no_output(tmp_path) == []


def test_collinear_aoi_is_refused_not_traced(tmp_path):
    model = contour_model(tmp_path / "c.onnx")
    img = raster(tmp_path / "img.tif")
    cx, cy = CENTER
    line = aoi(tmp_path / "aoi.gpkg", [(cx - 3000, cy), (cx, cy), (cx + 3000, cy), (cx + 1000, cy)])
    with pytest.raises(InputError, match="no area"):
        run_tracing(TraceRequest(img, model, line, str(tmp_path / "o.gpkg")))
    assert no_output(tmp_path) == []


def test_all_nan_raster_is_refused(tmp_path):
    model = contour_model(tmp_path / "c.onnx")
    img = raster(
        tmp_path / "nan.tif", np.full((300, 400), np.nan, np.float32), dtype=gdal.GDT_Float32
    )
    a = aoi(tmp_path / "aoi.gpkg", box(*CENTER, 1000, 600))
    with pytest.raises(InputError, match="no valid pixel of nan.tif.*NaN"):
        run_tracing(TraceRequest(img, model, a, str(tmp_path / "o.gpkg")))
    assert no_output(tmp_path) == []


def test_truncated_raster_is_one_sentence(tmp_path):
    model = contour_model(tmp_path / "c.onnx")
    rng = np.random.default_rng(0)
    img = raster(tmp_path / "cut.tif", rng.integers(0, 60000, (300, 400)))
    data = open(img, "rb").read()
    open(img, "wb").write(data[: len(data) // 3])
    a = aoi(tmp_path / "aoi.gpkg", box(*CENTER, 1000, 600))
    with pytest.raises(InputError, match="truncated or corrupt") as info:
        run_tracing(TraceRequest(img, model, a, str(tmp_path / "o.gpkg")))
    assert "cut.tif" in str(info.value)
    assert no_output(tmp_path) == []


def test_tracing_removes_temporaries_of_a_killed_run(tmp_path):
    import subprocess
    import sys

    model = contour_model(tmp_path / "c.onnx")
    img = raster(tmp_path / "img.tif")
    a = aoi(tmp_path / "aoi.gpkg", box(*CENTER, 1000, 600))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".fronts.v2.aa{dead.pid}-0123abcd.tmp.gpkg"
    stale.write_bytes(b"half-written")
    users = tmp_path / ".fronts.v2.backup.gpkg"  # not ours: kept
    users.write_bytes(b"mine")
    run_tracing(TraceRequest(img, model, a, str(tmp_path / "fronts.v2.gpkg")))
    assert not stale.exists() and users.read_bytes() == b"mine"
    assert (tmp_path / "fronts.v2.gpkg").is_file()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_front_distance_step_too_fine_for_the_lines_is_refused(tmp_path):
    from arctic_assist.io.front_distance import MAX_DISTANCE_PAIRS, front_distance

    paths = []
    for name, dy in (("a", 0.0), ("b", 30.0)):
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / f"{name}.gpkg"))
        lyr = ds.CreateLayer(name, _srs(), ogr.wkbLineString)
        f = ogr.Feature(lyr.GetLayerDefn())
        xs = np.linspace(ORIGIN[0], ORIGIN[0] + 500_000, 2000)  # 500 km, 1999 segments
        f.SetGeometry(
            ogr.CreateGeometryFromWkt(
                "LINESTRING(" + ",".join(f"{x} {ORIGIN[1] + dy}" for x in xs) + ")"
            )
        )
        lyr.CreateFeature(f)
        ds = None
        paths.append(str(tmp_path / f"{name}.gpkg"))
    t0 = time.monotonic()
    with pytest.raises(InputError, match=f"STEP: 0.01 m is too fine.*{MAX_DISTANCE_PAIRS:,}"):
        front_distance(*paths, step_m=0.01)
    assert time.monotonic() - t0 < 10
    res = front_distance(*paths, step_m=5000.0)
    assert abs(res.mean_m - 30.0) < 1.0


def test_model_pixel_size_that_would_blow_up_the_grid_is_refused(tmp_path):
    from support import write_raster

    from arctic_assist.io.detect import DetectRequest, run_detection
    from arctic_assist.io.raster import MAX_GRID_SIDE

    img = write_raster(
        tmp_path / "s2.tif", np.full((4, 2000, 2000), 1000, np.uint16), epsg=32608
    )  # 20 km at 10 m
    m = weighted_sum_model(
        tmp_path / "tiny_pixels.onnx", [1, 1, 1, 1], spec=make_spec(pixel_size_m=0.001)
    )
    t0 = time.monotonic()
    with pytest.raises(InputError, match=f"0.001 m.*limit is {MAX_GRID_SIDE:,} px"):
        run_detection(DetectRequest(str(img), str(m), str(tmp_path / "o.gpkg")))
    assert time.monotonic() - t0 < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s2.tif", "tiny_pixels.onnx"]
