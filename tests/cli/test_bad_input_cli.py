"""Issue 16 through qgis_process: one sentence per bad input (naming the parameter, the file
and what is allowed), a non-zero exit, no traceback, nothing written - beside the input
(no .aux.xml) or at the outputs - and never a deleted or overwritten file of the user's."""

from __future__ import annotations

import hashlib
import json
import resource
import signal
import subprocess

import numpy as np
import pytest
from onnx_factory import make_spec, weighted_sum_model
from osgeo import ogr, osr
from support import QGIS_PROCESS, run_qgis_process, write_raster

ORIGIN = (470890.0, 7550020.0)


def qp(cli_env, alg, **params):
    args = ["run", f"arctic_assist:{alg}", "--"]
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            args.append(f"{key}={v}")
    return run_qgis_process(args, cli_env)


def refused(proc, *needles):
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "Traceback" not in text, text
    for n in needles:
        assert n.lower() in text.lower(), f"{n!r} not in:\n{text[-3000:]}"
    return text


def listing(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return weighted_sum_model(
        tmp_path_factory.mktemp("m") / "ws.onnx", weights=[0.5, -1.0, 1.0, 0.2]
    )


@pytest.fixture
def inputs(tmp_path):
    """A folder of inputs whose content must not change."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    write_raster(
        folder / "scene.tif",
        rng.integers(200, 4000, (4, 80, 90)).astype(np.uint16),
        descriptions=["B2", "B3", "B4", "B8"],
    )
    (folder / "empty.tif").write_bytes(b"")
    (folder / "notes.tif").write_text("not a raster")
    return folder


def labels(path, status=True):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32608)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("labels", srs, ogr.wkbPolygon)
    if status:
        lyr.CreateField(ogr.FieldDefn("status", ogr.OFTString))
    x, y = ORIGIN[0] + 100, ORIGIN[1] - 400
    f = ogr.Feature(lyr.GetLayerDefn())
    if status:
        f.SetField("status", "accepted")
    f.SetGeometry(
        ogr.CreateGeometryFromWkt(
            f"POLYGON(({x} {y},{x + 200} {y},{x + 200} {y + 200},{x} {y + 200},{x} {y}))"
        )
    )
    lyr.CreateFeature(f)
    ds = None
    return path


@pytest.mark.parametrize(
    "alg,param,value,needle",
    [
        ("detect_thaw_slumps", "THRESHOLD", "5", "THRESHOLD must be a number from 0 to 1"),
        ("detect_thaw_slumps", "MIN_AREA", "-3", "MIN_AREA must be a number of at least 0"),
        ("detect_thaw_slumps", "DEVICE", "7", "DEVICE must be one of 0 = auto, 1 = cpu, 2 = cuda"),
        ("detect_thaw_slumps", "DEVICE", "cpu", "give the number of an option"),
        ("detect_thaw_slumps", "EXTENT", "abc", "must be an extent 'xmin,xmax,ymin,ymax"),
    ],
)
def test_detection_parameter_out_of_range_names_the_range(
    cli_env, inputs, model, tmp_path, alg, param, value, needle
):
    before = listing(inputs)
    out = tmp_path / "out.gpkg"
    refused(
        qp(cli_env, alg, INPUT=inputs / "scene.tif", MODEL=model, OUTPUT=out, **{param: value}),
        needle,
    )
    assert not out.exists() and listing(inputs) == before


def test_export_chip_size_and_retrain_steps_ranges(cli_env, inputs, tmp_path):
    lab = labels(tmp_path / "l.gpkg")
    refused(
        qp(
            cli_env,
            "export_training_data",
            LABELS=lab,
            RASTERS=inputs / "scene.tif",
            CHIP_SIZE=5,
            OUTPUT=tmp_path / "d",
        ),
        "CHIP_SIZE must be a whole number from 16 to 4096",
    )
    refused(
        qp(cli_env, "retrain_model", DATA=tmp_path, STEPS=0, OUTPUT=tmp_path / "m.onnx"),
        "STEPS must be a whole number of at least 1",
    )
    assert not (tmp_path / "d").exists() and not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    "name,needle",
    [
        ("empty.tif", "is not a raster GDAL can read (the file is empty)"),
        ("notes.tif", "is not a raster GDAL can read"),
        ("missing.tif", "does not exist"),
    ],
)
def test_unreadable_rasters_are_named(cli_env, inputs, model, tmp_path, name, needle):
    before = listing(inputs)
    out = tmp_path / "out.gpkg"
    text = refused(
        qp(cli_env, "detect_thaw_slumps", INPUT=inputs / name, MODEL=model, OUTPUT=out),
        needle,
        "INPUT",
    )
    assert name in text and "not found" not in text.replace("does not exist", "")
    lab = labels(tmp_path / "l.gpkg")
    refused(
        qp(
            cli_env,
            "export_training_data",
            LABELS=lab,
            RASTERS=inputs / name,
            OUTPUT=tmp_path / "d",
        ),
        needle,
        "RASTERS",
    )
    assert listing(inputs) == before and not out.exists() and not (tmp_path / "d").exists()


def test_nothing_written_beside_the_input_in_failing_and_successful_runs(
    cli_env, inputs, model, tmp_path
):
    before = listing(inputs)
    refused(
        qp(
            cli_env,
            "detect_thaw_slumps",
            INPUT=inputs / "scene.tif",
            MODEL=model,
            OUTPUT=tmp_path / "x.gpkg",
            BANDS="1,2,3",
        ),
        "BANDS",
    )
    proc = qp(
        cli_env,
        "detect_thaw_slumps",
        INPUT=inputs / "scene.tif",
        MODEL=model,
        OUTPUT=tmp_path / "ok.gpkg",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert listing(inputs) == before  # in particular no scene.tif.aux.xml


def test_export_refuses_a_folder_of_the_users_files(cli_env, inputs, tmp_path):
    out = tmp_path / "thesis"
    (out / "figures").mkdir(parents=True)
    (out / "chapter1.tex").write_text("years of work")
    (out / "figures" / "f.png").write_bytes(b"png")
    before = listing(out)
    text = refused(
        qp(
            cli_env,
            "export_training_data",
            LABELS=labels(tmp_path / "l.gpkg"),
            RASTERS=inputs / "scene.tif",
            CHIP_SIZE=32,
            OUTPUT=out,
        ),
        "OUTPUT",
        "not empty",
        "Nothing was changed",
    )
    assert "thesis" in text
    assert listing(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".thesis")]


def test_export_only_reviewed_without_status_field(cli_env, inputs, tmp_path):
    lab = labels(tmp_path / "nostatus.gpkg", status=False)
    refused(
        qp(
            cli_env,
            "export_training_data",
            LABELS=lab,
            RASTERS=inputs / "scene.tif",
            CHIP_SIZE=32,
            OUTPUT=tmp_path / "d",
        ),
        "no 'status' field",
        "ONLY_REVIEWED",
    )
    proc = qp(
        cli_env,
        "export_training_data",
        LABELS=lab,
        RASTERS=inputs / "scene.tif",
        CHIP_SIZE=32,
        ONLY_REVIEWED="false",
        OUTPUT=tmp_path / "d",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_model_claiming_a_huge_tile_is_refused(cli_env, inputs, tmp_path):
    m = weighted_sum_model(
        tmp_path / "huge_tile.onnx",
        [1, 1, 1, 1],
        spec=make_spec(tile_size=50_000, tile_overlap=100),
    )
    refused(
        qp(
            cli_env,
            "detect_thaw_slumps",
            INPUT=inputs / "scene.tif",
            MODEL=m,
            OUTPUT=tmp_path / "o.gpkg",
        ),
        "tile.size",
        "at most 4096",
    )


def test_model_whose_graph_contradicts_its_metadata(cli_env, inputs, tmp_path):
    # the graph takes 3 channels, the metadata lists 4 bands
    m = weighted_sum_model(tmp_path / "liar.onnx", [1, 1, 1], spec=make_spec())
    text = refused(
        qp(
            cli_env,
            "detect_thaw_slumps",
            INPUT=inputs / "scene.tif",
            MODEL=m,
            OUTPUT=tmp_path / "o.gpkg",
        ),
        "liar.onnx",
        "3 channel(s)",
        "4 band(s)",
    )
    assert "INVALID_ARGUMENT" not in text  # not onnxruntime's own error


def test_truncated_raster_in_detection(cli_env, model, tmp_path):
    rng = np.random.default_rng(0)
    path = write_raster(
        tmp_path / "cut.tif", rng.integers(100, 3000, (4, 600, 600)).astype(np.uint16)
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o.gpkg"
    refused(
        qp(cli_env, "detect_thaw_slumps", INPUT=path, MODEL=model, OUTPUT=out),
        "cut.tif",
        "truncated or corrupt",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tif"]


def test_disk_full_while_writing_detection(cli_env, model, tmp_path):
    """Files may not grow beyond 2 MB (RLIMIT_FSIZE, as on a full disk): one sentence,
    nothing left in the output folder."""
    rng = np.random.default_rng(0)
    raster = write_raster(
        tmp_path / "big.tif", rng.integers(100, 3000, (4, 1500, 1500)).astype(np.uint16)
    )
    outdir = tmp_path / "out"
    outdir.mkdir()

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))

    proc = subprocess.run(
        [
            QGIS_PROCESS,
            "run",
            "arctic_assist:detect_thaw_slumps",
            "--",
            f"INPUT={raster}",
            f"MODEL={model}",
            f"OUTPUT={outdir / 'o.gpkg'}",
            f"OUTPUT_PROBABILITY={outdir / 'p.tif'}",
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        timeout=600,
    )
    refused(proc, "Writing failed", "nothing was written")
    assert list(outdir.iterdir()) == []


def test_front_distance_per_feature_output(cli_env, tmp_path):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32608)
    paths = []
    for name, dy in (("a", 0.0), ("b", 30.0)):
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / f"{name}.gpkg"))
        lyr = ds.CreateLayer(name, srs, ogr.wkbLineString)
        for k in range(2):
            f = ogr.Feature(lyr.GetLayerDefn())
            y = ORIGIN[1] - 1000 * k + dy
            f.SetGeometry(
                ogr.CreateGeometryFromWkt(f"LINESTRING({ORIGIN[0]} {y},{ORIGIN[0] + 500} {y})")
            )
            lyr.CreateFeature(f)
        ds = None
        paths.append(tmp_path / f"{name}.gpkg")
    proc = run_qgis_process(
        [
            "run",
            "arctic_assist:front_distance",
            "--json",
            "--",
            f"INPUT={paths[0]}",
            f"REFERENCE={paths[1]}",
        ],
        cli_env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(proc.stdout)["results"]
    rows = json.loads(results["PER_FEATURE"])
    assert len(rows) == 2 and all(abs(r["distance_m"] - 30.0) < 1.0 for r in rows)
    assert abs(results["MEAN_DISTANCE"] - 30.0) < 1.0
