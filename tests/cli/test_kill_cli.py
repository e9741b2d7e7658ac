"""qgis_process killed (SIGKILL) in the middle of a detection and of an export: what is
left on disk is only hidden temporaries named by that process, the previous outputs are
intact, and the next run removes the leftovers (issue 16)."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from onnx_factory import make_spec, weighted_sum_model
from osgeo import gdal, ogr, osr
from support import QGIS_PROCESS, run_qgis_process, write_raster

ORIGIN = (470890.0, 7550020.0)


def listing(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def big_raster(path: Path, size: int) -> Path:
    """4-band uint16, size x size, a smooth pattern (small file, slow to process)."""
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), size, size, 4, gdal.GDT_UInt16, options=["TILED=YES", "COMPRESS=DEFLATE"]
    )
    ds.SetGeoTransform((ORIGIN[0], 10.0, 0.0, ORIGIN[1], 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32608)
    ds.SetProjection(srs.ExportToWkt())
    yy, xx = np.mgrid[0:size, 0:size]
    for b in range(4):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(((xx * (b + 1) + yy) % 3000 + 200).astype(np.uint16))
        band.SetDescription(["B2", "B3", "B4", "B8"][b])
    ds = None
    return path


def kill_when(cmd: list[str], env: dict, ready, timeout: float = 300) -> int:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, "finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.pid


def test_killed_detection(cli_env, tmp_path):
    model = weighted_sum_model(
        tmp_path / "ws.onnx", [0.5, -1.0, 1.0, 0.2], spec=make_spec(tile_size=64, tile_overlap=16)
    )
    raster = big_raster(tmp_path / "scene.tif", 4000)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "rts.gpkg"
    pid = kill_when(
        [
            QGIS_PROCESS,
            "run",
            "arctic_assist:detect_thaw_slumps",
            "--",
            f"INPUT={raster}",
            f"MODEL={model}",
            f"OUTPUT={out}",
        ],
        cli_env,
        lambda: any(p.name.startswith(".rts.aa") for p in out_dir.iterdir()),
    )
    left = sorted(p.name for p in out_dir.iterdir())
    assert not out.exists()
    assert left and all(n.startswith(f".rts.aa{pid}-") for n in left), left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "scene.tif", "ws.onnx"]
    small = write_raster(
        tmp_path / "small.tif",
        np.full((4, 64, 64), 2000, np.uint16),
        descriptions=["B2", "B3", "B4", "B8"],
    )
    proc = run_qgis_process(
        [
            "run",
            "arctic_assist:detect_thaw_slumps",
            "--",
            f"INPUT={small}",
            f"MODEL={model}",
            f"OUTPUT={out}",
        ],
        cli_env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["rts.gpkg"]


def labels(path: Path) -> Path:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32608)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("labels", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("status", ogr.OFTString))
    for k in range(20):
        x, y = ORIGIN[0] + 500 + 1500 * k, ORIGIN[1] - 500 - 1500 * k
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("status", "accepted")
        f.SetGeometry(
            ogr.CreateGeometryFromWkt(
                f"POLYGON(({x} {y},{x + 300} {y},{x + 300} {y - 300},{x} {y - 300},{x} {y}))"
            )
        )
        lyr.CreateFeature(f)
    ds = None
    return path


@pytest.mark.timeout(900)
def test_killed_export_keeps_the_previous_export(cli_env, tmp_path):
    lab = labels(tmp_path / "labels.gpkg")
    small = big_raster(tmp_path / "small.tif", 300)
    raster = big_raster(tmp_path / "scene.tif", 4000)
    out = tmp_path / "data"
    first = run_qgis_process(
        [
            "run",
            "arctic_assist:export_training_data",
            "--",
            f"LABELS={lab}",
            f"RASTERS={small}",
            "CHIP_SIZE=64",
            f"OUTPUT={out}",
        ],
        cli_env,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    before = listing(out)
    pid = kill_when(
        [
            QGIS_PROCESS,
            "run",
            "arctic_assist:export_training_data",
            "--",
            f"LABELS={lab}",
            f"RASTERS={raster}",
            "CHIP_SIZE=64",
            f"OUTPUT={out}",
        ],
        cli_env,
        lambda: any(
            p.name.startswith(".data.part-") and (p / "data").exists() for p in tmp_path.iterdir()
        ),
    )
    assert listing(out) == before  # the previous export is intact
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".data")]
    assert len(left) == 1 and left[0].name.startswith(f".data.part-{pid}-"), left
    again = run_qgis_process(
        [
            "run",
            "arctic_assist:export_training_data",
            "--",
            f"LABELS={lab}",
            f"RASTERS={small}",
            "CHIP_SIZE=64",
            f"OUTPUT={out}",
        ],
        cli_env,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".data")]
    assert listing(out) == before
