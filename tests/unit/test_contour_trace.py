"""io/trace.py and io/front_distance.py: georeferencing of traced fronts, GeoPackage output,
errors, front distance.

A trivial ONNX contour model (onnx.helper, constant outputs) returns known vertices, so the
mapping model coordinates -> map coordinates is checked to sub-pixel accuracy for a
projected raster, an AOI in another CRS and rotated boxes.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

gdal = pytest.importorskip("osgeo.gdal")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402
from osgeo import ogr, osr  # noqa: E402

from arctic_assist.core import contour as C  # noqa: E402
from arctic_assist.core.errors import CanceledError, InputError, ModelError  # noqa: E402
from arctic_assist.core.spec import METADATA_KEY  # noqa: E402
from arctic_assist.io.front_distance import front_distance  # noqa: E402
from arctic_assist.io.trace import TraceRequest, read_window, run_tracing  # noqa: E402

PS = 30.0  # model pixel size (m)


def _srs(epsg: int) -> osr.SpatialReference:
    s = osr.SpatialReference()
    s.ImportFromEPSG(epsg)
    s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return s


def make_contour_model(
    path, steps: list[np.ndarray], task: str = "contour", pixel_size: float | None = PS
) -> str:
    """ONNX model ignoring its input and returning ``steps`` (each (V, 2)) as contours."""
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])
    nodes, outs = [], []
    for i, s in enumerate(steps):
        arr = np.asarray(s, np.float32)[None]
        name = f"contour_{i}"
        nodes.append(
            helper.make_node(
                "Constant",
                [],
                [name],
                value=helper.make_tensor(
                    name + "_v", TensorProto.FLOAT, arr.shape, arr.ravel().tolist()
                ),
            )
        )
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(arr.shape)))
    graph = helper.make_graph(nodes, "trivial_contour", [inp], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    v = len(steps[0])
    doc = {
        "schema": "arctic_assist.model",
        "schema_version": 1,
        "name": "trivial",
        "version": "0.0.1",
        "task": task,
        "input": {
            "name": "image",
            "dtype": "float32",
            "bands": ["gray"],
            "normalization": {"type": "none"},
        },
        "pixel_size_m": pixel_size,
        "tile": {"size": 64, "overlap": 0, "multiple_of": 16},
        "classes": ["background", "front"] if task == "segmentation" else ["front"],
        "outputs": [{"name": f"contour_{i}", "shape": ["N", v, 2]} for i in range(len(steps))],
        "contour": {"vertices": v, "iterations": len(steps)} if task == "contour" else None,
        "opset": 17,
    }
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(doc)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def make_raster(
    path,
    epsg: int | None = 32620,
    size=(400, 300),
    origin=(400000.0, 8500000.0),
    pixel=20.0,
    bands: int = 1,
) -> str:
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size[0], size[1], bands, gdal.GDT_UInt16)
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    if epsg:
        ds.SetProjection(_srs(epsg).ExportToWkt())
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    for b in range(bands):
        ds.GetRasterBand(b + 1).WriteArray(((xx + yy) % 200 + 1000).astype(np.uint16))
    ds = None
    return str(path)


def rect(center, angle_deg, half_w, half_h):
    a = math.radians(angle_deg)
    e = np.array([math.cos(a), math.sin(a)])
    n = np.array([-math.sin(a), math.cos(a)])
    c = np.asarray(center, float)
    return (
        np.array(
            [
                c + sx * half_w * e + sy * half_h * n
                for sx, sy in ((-1, 1), (1, 1), (1, -1), (-1, -1))
            ]
        ),
        e,
        n,
    )


def write_polygons(path, rings_src, src_epsg: int, dst_epsg: int, densify: int = 32) -> str:
    """Polygons given in ``src_epsg`` written in ``dst_epsg`` (edges densified first)."""
    if os.path.exists(path):
        os.remove(path)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("boxes", srs=_srs(dst_epsg), geom_type=ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("id", ogr.OFTInteger))
    ct = osr.CoordinateTransformation(_srs(src_epsg), _srs(dst_epsg))
    for k, ring in enumerate(rings_src):
        pts = []
        for a, b in zip(ring, np.roll(ring, -1, axis=0)):
            for t in np.linspace(0, 1, densify, endpoint=False):
                pts.append(a + t * (b - a))
        pts = ct.TransformPoints([tuple(p) for p in pts])
        r = ogr.Geometry(ogr.wkbLinearRing)
        for p in pts + [pts[0]]:
            r.AddPoint_2D(p[0], p[1])
        poly = ogr.Geometry(ogr.wkbPolygon)
        poly.AddGeometry(r)
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetGeometry(poly)
        f.SetField("id", k + 1)
        lyr.CreateFeature(f)
    ds = None
    return str(path)


def write_lines(path, lines, src_epsg: int, dst_epsg: int) -> str:
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("lines", srs=_srs(dst_epsg), geom_type=ogr.wkbLineString)
    ct = osr.CoordinateTransformation(_srs(src_epsg), _srs(dst_epsg))
    for line in lines:
        g = ogr.Geometry(ogr.wkbLineString)
        for p in ct.TransformPoints([tuple(p) for p in line]):
            g.AddPoint_2D(p[0], p[1])
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetGeometry(g)
        lyr.CreateFeature(f)
    ds = None
    return str(path)


def read_gpkg_lines(path):
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    out = []
    for f in lyr:
        g = f.GetGeometryRef()
        out.append(
            (
                np.array([g.GetPoint_2D(i) for i in range(g.GetPointCount())]),
                {k: f.GetField(k) for k in f.keys()},
            )
        )
    srs = lyr.GetSpatialRef()
    return out, srs


# the model's known answer: a straight line through the middle plus a bent start
V = 64
T = np.linspace(-0.8, 0.8, V)
FINAL = np.stack([T, 0.3 * np.sin(3 * T)], axis=1)
STEPS = [FINAL * f for f in (0.25, 0.5, 0.9, 1.0)]


@pytest.fixture()
def scene(tmp_path):
    raster = make_raster(tmp_path / "img.tif")
    model = make_contour_model(tmp_path / "trivial.onnx", STEPS)
    return tmp_path, raster, model


@pytest.mark.parametrize("angle", [0.0, 30.0, -25.0])
def test_traced_front_is_georeferenced_exactly(scene, angle):
    tmp, raster, model = scene
    c = np.array([404000.0, 8497000.0])
    ring, e, n = rect(c, angle, 1200.0, 700.0)
    aoi = write_polygons(tmp / "aoi.gpkg", [ring], 32620, 3413)  # AOI in another CRS
    out = tmp / "fronts.gpkg"
    its = tmp / "iters.gpkg"
    res = run_tracing(
        TraceRequest(
            raster,
            model,
            aoi,
            str(out),
            iterations_path=str(its),
            run_id="r1",
            refine_passes=0,
            mirror=False,
            snap=0.0,  # the model's own line: its geometry is what is checked
        )
    )
    assert res.count == 1 and res.run_id == "r1"
    f = res.fronts[0]
    w, h = f.window
    assert w % 16 == 0 and h % 16 == 0
    assert w * PS >= 2400 - 1e-6 and h * PS >= 1400 - 1e-6
    # independent expectation: the window is fitted into the model's square tile (its
    # longer side spans the tile, centred), so model (x, y) in [-1, 1] of the tile ->
    # c + x (L-1)/2 PS e - y (L-1)/2 PS n with L = max(w, h)
    L = max(w, h)
    exp = (
        c[None]
        + FINAL[:, :1] * (L - 1) / 2 * PS * e[None]
        - FINAL[:, 1:] * (L - 1) / 2 * PS * n[None]
    )
    err_px = np.linalg.norm(f.map_xy - exp, axis=1).max() / PS
    assert err_px < 0.01, err_px
    lines, srs = read_gpkg_lines(out)
    assert srs.IsSame(_srs(32620))
    assert len(lines) == 1
    pts, attrs = lines[0]
    np.testing.assert_allclose(pts, exp, atol=0.01 * PS)
    assert attrs["status"] == "proposed" and attrs["run_id"] == "r1"
    assert attrs["aoi_id"] == "1" and attrs["model"] == "trivial"
    assert attrs["source"] == "img.tif" and attrs["provider"]
    assert attrs["length_m"] == pytest.approx(C.polyline_length(exp), rel=1e-6)
    # convergence: mean displacement of the last iteration in metres
    prev = (
        c[None]
        + STEPS[2][:, :1] * (L - 1) / 2 * PS * e[None]
        - STEPS[2][:, 1:] * (L - 1) / 2 * PS * n[None]
    )
    assert attrs["convergence"] == pytest.approx(
        np.linalg.norm(exp - prev, axis=1).mean(), rel=1e-6
    )
    it_lines, _ = read_gpkg_lines(its)
    assert sorted(a["iteration"] for _, a in it_lines) == [0, 1, 2, 3]
    assert not [p for p in os.listdir(tmp) if ".tmp" in p]


def test_window_is_read_in_the_box_frame(tmp_path):
    """The warped window holds the map coordinates its own geotransform says."""
    src = gdal.GetDriverByName("MEM").Create("", 300, 200, 2, gdal.GDT_Float64)
    gt0 = (400000.0, 20.0, 0.0, 8500000.0, 0.0, -20.0)
    src.SetGeoTransform(gt0)
    src.SetProjection(_srs(32620).ExportToWkt())
    yy, xx = np.mgrid[0:200, 0:300]
    src.GetRasterBand(1).WriteArray((xx + 0.5) * 20.0)
    src.GetRasterBand(2).WriteArray(-(yy + 0.5) * 20.0)
    ring, _, _ = rect((403000.0, 8498000.0), 35.0, 900, 500)
    box = C.oriented_box(ring)
    gt, w, h = C.window_geotransform(box, 15.0, 16)
    arr, valid = read_window(src, [1, 2], _srs(32620), gt, w, h, 20.0, 15.0)
    assert valid.all()
    ry, rx = np.mgrid[0:h, 0:w]
    m = C.pixel_to_map(np.stack([rx, ry], -1).astype(float), gt)
    # within a tenth of a source pixel (GDAL's warp kernel is good to ~0.07 px here)
    assert np.abs(arr[0] - (m[..., 0] - gt0[0])).max() < 0.1 * 20
    assert np.abs(arr[1] - (m[..., 1] - gt0[3])).max() < 0.1 * 20


def _assert_nothing_written(tmp, *paths):
    for p in paths:
        assert not os.path.exists(p), p
    assert not [p for p in os.listdir(tmp) if ".tmp" in p]


def test_errors_leave_nothing(scene):
    tmp, raster, model = scene
    out, its = str(tmp / "o.gpkg"), str(tmp / "i.gpkg")
    ring, _, _ = rect((404000.0, 8497000.0), 10.0, 900, 500)
    aoi = write_polygons(tmp / "aoi.gpkg", [ring], 32620, 32620)
    # no AOI features
    empty = write_polygons(tmp / "empty.gpkg", [], 32620, 32620)
    with pytest.raises(InputError, match="no polygon features"):
        run_tracing(TraceRequest(raster, model, empty, out, its))
    # AOI outside the raster
    far, _, _ = rect((600000.0, 8400000.0), 0.0, 900, 500)
    outside = write_polygons(tmp / "outside.gpkg", [far], 32620, 4326)
    with pytest.raises(InputError, match="outside the raster"):
        run_tracing(TraceRequest(raster, model, outside, out, its))
    # segmentation model given to tracing
    seg = make_contour_model(tmp / "seg.onnx", STEPS, task="segmentation")
    with pytest.raises(ModelError, match="segmentation.*contour"):
        run_tracing(TraceRequest(raster, seg, aoi, out, its))
    # raster without CRS
    nocrs = make_raster(tmp / "nocrs.tif", epsg=None)
    with pytest.raises(InputError, match="no CRS"):
        run_tracing(TraceRequest(nocrs, model, aoi, out, its))
    # SNAP out of range
    with pytest.raises(InputError, match="SNAP must be 0 to 20"):
        run_tracing(TraceRequest(raster, model, aoi, out, its, snap=-1.0))
    # cancel
    with pytest.raises(CanceledError):
        run_tracing(TraceRequest(raster, model, aoi, out, its), is_canceled=lambda: True)
    _assert_nothing_written(tmp, out, its)


def test_failure_while_writing_leaves_nothing(scene, monkeypatch):
    tmp, raster, model = scene
    ring, _, _ = rect((404000.0, 8497000.0), 10.0, 900, 500)
    aoi = write_polygons(tmp / "aoi.gpkg", [ring], 32620, 32620)
    out, its = str(tmp / "o.gpkg"), str(tmp / "i.gpkg")
    from arctic_assist.io import trace

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(trace, "_add_line", boom)
    with pytest.raises(RuntimeError):
        run_tracing(TraceRequest(raster, model, aoi, out, its))
    _assert_nothing_written(tmp, out, its)


def test_front_distance_across_crs(tmp_path):
    x = np.linspace(401000, 405000, 50)
    a = np.stack([x, 8497000 + 0 * x], 1)
    b = a + [0.0, 100.0]
    la = write_lines(tmp_path / "a.gpkg", [a], 32620, 32620)
    lb = write_lines(tmp_path / "b.gpkg", [b, b + [0.0, 5000.0]], 32620, 3413)
    d = front_distance(la, lb)
    assert len(d.per_feature) == 1
    assert d.per_feature[0]["fid_b"] == 1
    assert d.mean_m == pytest.approx(100.0, abs=0.5)
    assert front_distance(la, la).mean_m == pytest.approx(0.0, abs=1e-6)
