"""detect_thaw_slumps through qgis_process: real runs, and bad input that must give one
clear message, a non-zero exit, no traceback and nothing written."""

import numpy as np
import pytest
from onnx_factory import (
    contour_spec_model,
    corrupt_model,
    model_without_metadata,
    weighted_sum_model,
)
from osgeo import ogr
from support import run_qgis_process, shared_data, write_raster

ALG = "arctic_assist:detect_thaw_slumps"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return weighted_sum_model(
        tmp_path_factory.mktemp("m") / "ws.onnx", weights=[0.5, -1.0, 1.0, 0.2]
    )


@pytest.fixture
def scene(tmp_path):
    rng = np.random.default_rng(1)
    return write_raster(
        tmp_path / "scene.tif",
        rng.integers(200, 4000, (4, 80, 90)).astype(np.uint16),
        descriptions=["B2", "B3", "B4", "B8"],
    )


def run(cli_env, **params):
    args = ["run", ALG, "--"]
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            args.append(f"{key}={v}")
    return run_qgis_process(args, cli_env)


def assert_refused(proc, out, *needles):
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "Traceback" not in text, text
    for needle in needles:
        assert needle.lower() in text.lower(), f"{needle!r} not in:\n{text}"
    assert not out.exists()
    assert not [
        p
        for p in out.parent.iterdir()
        if p.name.startswith(f".{out.stem}")
        or ".part" in p.name
        or p.name.startswith(out.stem + ".")
    ], sorted(p.name for p in out.parent.iterdir())


def test_runs_and_writes_attributes(cli_env, scene, model, tmp_path):
    out = tmp_path / "rts.gpkg"
    proc = run(cli_env, INPUT=scene, MODEL=model, OUTPUT=out, MIN_AREA=0, SIMPLIFY=0)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ds = ogr.Open(str(out))
    layer = ds.GetLayer(0)
    names = [
        layer.GetLayerDefn().GetFieldDefn(i).GetName()
        for i in range(layer.GetLayerDefn().GetFieldCount())
    ]
    for field in (
        "score",
        "area_m2",
        "model",
        "model_version",
        "provider",
        "source",
        "run_id",
        "created",
        "status",
    ):
        assert field in names
    feats = list(layer)
    assert feats, "the weighted-sum model should propose something on random data"
    assert {f.GetField("status") for f in feats} == {"proposed"}
    assert {f.GetField("provider") for f in feats} == {"CPUExecutionProvider"}
    assert all(0.5 <= f.GetField("score") <= 1.0 for f in feats)


def test_explicit_bands_on_real_7band_image(cli_env, model, tmp_path):
    raster = shared_data("rts", "peel", "peel_s2_l1c_7band_10m.tif")
    if not raster.exists():
        pytest.skip("../shared/data is absent")
    out = tmp_path / "rts.gpkg"
    proc = run(cli_env, INPUT=raster, MODEL=model, OUTPUT=out, BANDS="1,2,3,7")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Raster bands 1, 2, 3, 7" in proc.stdout
    assert out.exists()


def test_too_few_bands(cli_env, model, tmp_path):
    raster = write_raster(tmp_path / "rgb.tif", np.ones((3, 40, 40), np.uint16) * 500)
    out = tmp_path / "out.gpkg"
    assert_refused(run(cli_env, INPUT=raster, MODEL=model, OUTPUT=out), out, "4 bands")


def test_band_list_that_does_not_fit(cli_env, scene, model, tmp_path):
    out = tmp_path / "out.gpkg"
    assert_refused(
        run(cli_env, INPUT=scene, MODEL=model, OUTPUT=out, BANDS="1,2,3"), out, "BANDS", "4 bands"
    )


def test_raster_without_crs(cli_env, model, tmp_path):
    raster = write_raster(tmp_path / "nocrs.tif", np.ones((4, 40, 40), np.uint16) * 500, epsg=None)
    out = tmp_path / "out.gpkg"
    assert_refused(
        run(cli_env, INPUT=raster, MODEL=model, OUTPUT=out), out, "coordinate reference system"
    )


def test_raster_entirely_nodata(cli_env, model, tmp_path):
    raster = write_raster(tmp_path / "empty.tif", np.zeros((4, 40, 40), np.uint16), nodata=0)
    out = tmp_path / "out.gpkg"
    assert_refused(run(cli_env, INPUT=raster, MODEL=model, OUTPUT=out), out, "nodata")


def test_extent_outside_raster(cli_env, scene, model, tmp_path):
    out = tmp_path / "out.gpkg"
    assert_refused(
        run(cli_env, INPUT=scene, MODEL=model, OUTPUT=out, EXTENT="0,1000,0,1000 [EPSG:32608]"),
        out,
        "extent",
    )


def test_corrupt_onnx(cli_env, scene, tmp_path):
    bad = corrupt_model(tmp_path / "bad.onnx")
    out = tmp_path / "out.gpkg"
    assert_refused(
        run(cli_env, INPUT=scene, MODEL=bad, OUTPUT=out), out, "bad.onnx", "not a valid ONNX"
    )


def test_onnx_without_metadata(cli_env, scene, tmp_path):
    bare = model_without_metadata(tmp_path / "bare.onnx")
    out = tmp_path / "out.gpkg"
    assert_refused(
        run(cli_env, INPUT=scene, MODEL=bare, OUTPUT=out),
        out,
        "bare.onnx",
        "no Arctic Assist metadata",
    )


def test_contour_model_given_to_detection(cli_env, scene, tmp_path):
    contour = contour_spec_model(tmp_path / "front.onnx", channels=4)
    out = tmp_path / "out.gpkg"
    assert_refused(run(cli_env, INPUT=scene, MODEL=contour, OUTPUT=out), out, "contour")


def test_opset_the_runtime_cannot_run(cli_env, scene, tmp_path):
    future = weighted_sum_model(tmp_path / "future.onnx", weights=[1, 1, 1, 1], opset=99)
    out = tmp_path / "out.gpkg"
    assert_refused(run(cli_env, INPUT=scene, MODEL=future, OUTPUT=out), out, "opset")


def test_output_that_cannot_be_written(cli_env, scene, model, tmp_path):
    out = tmp_path / "not_a_folder.txt" / "out.gpkg"
    (tmp_path / "not_a_folder.txt").write_text("a file, not a folder")
    proc = run(cli_env, INPUT=scene, MODEL=model, OUTPUT=out)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in text
    assert "not_a_folder.txt" in text
    assert not out.exists()


def test_adapt_out_of_range_is_refused(cli_env, scene, model, tmp_path):
    out = tmp_path / "out.gpkg"
    assert_refused(run(cli_env, INPUT=scene, MODEL=model, OUTPUT=out, ADAPT=7), out, "ADAPT")


def test_bundled_model_on_a_brighter_peel_is_adapted(cli_env, tmp_path):
    """The bundled model carries its training statistics: on the Peel image with every
    value x 1.25 (another scene's light) it is adapted and proposes thaw slumps where,
    unadapted, it proposes almost nothing (benchmarks/bench_rts_shift.py measures IoU)."""
    from osgeo import gdal

    peel = shared_data("rts", "peel", "peel_s2_bgrn_10m.tif")
    if not peel.exists():
        pytest.skip(f"{peel} not found (shared data absent)")
    src = gdal.Open(str(peel))
    raw = src.ReadAsArray().astype(np.float64)
    bright = tmp_path / "peel_bright.tif"
    ds = gdal.GetDriverByName("GTiff").CreateCopy(str(bright), src)
    for b in range(raw.shape[0]):
        ds.GetRasterBand(b + 1).WriteArray(
            np.where(raw[b] > 0, np.clip(np.rint(raw[b] * 1.25), 1, 65535), 0)
        )
    ds = None

    def area(**params):
        out = tmp_path / f"o{len(params)}.gpkg"
        proc = run(cli_env, INPUT=bright, OUTPUT=out, **params)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        vds = ogr.Open(str(out))
        return sum(f.GetField("area_m2") for f in vds.GetLayer(0)), proc.stdout

    adapted, log = area()  # MODEL: the default, the bundled thaw-slump model
    assert "Scene adaptation: on" in log
    plain, log = area(ADAPT=2)
    assert "Scene adaptation: off" in log
    # the experts' majority marks ~5 % of the 251 x 251 px image (~300 000 m2)
    assert adapted > 150_000 and plain < 0.5 * adapted


def test_negative_offset_is_refused(cli_env, scene, model, tmp_path):
    out = tmp_path / "out.gpkg"
    assert_refused(run(cli_env, INPUT=scene, MODEL=model, OUTPUT=out, OFFSET=-5), out, "OFFSET")
