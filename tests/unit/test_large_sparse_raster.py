"""A very large sparse GeoTIFF (200 000 x 200 000 px) never sits in one long read: the
nodata scan is windowed, skips absent blocks, reports progress and honours Cancel, and a
killed detection leaves temporaries the next run removes (issue 16, item 5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from onnx_factory import make_spec, weighted_sum_model
from osgeo import gdal, osr
from support import REPO

from arctic_assist.core.errors import CanceledError, InputError
from arctic_assist.io.detect import DetectRequest, run_detection

gdal.UseExceptions()
SIZE = 200_000


def sparse_raster(path: Path, data_at: tuple[int, int] | None, nodata: float | None = 0) -> Path:
    """SIZE x SIZE x 4 uint16, tiled and sparse: only the block at ``data_at`` is written."""
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path),
        SIZE,
        SIZE,
        4,
        gdal.GDT_UInt16,
        options=["TILED=YES", "SPARSE_OK=TRUE", "COMPRESS=DEFLATE", "BIGTIFF=YES"],
    )
    ds.SetGeoTransform((500000.0, 10.0, 0.0, 7600000.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32608)
    ds.SetProjection(srs.ExportToWkt())
    for b in range(4):
        band = ds.GetRasterBand(b + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if data_at is not None:
            band.WriteArray(np.full((256, 256), 1000 + 500 * b, np.uint16), *data_at)
    ds = None
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(
        weighted_sum_model(
            tmp_path_factory.mktemp("m") / "ws.onnx",
            weights=[0.5, -1.0, 1.0, 0.2],
            spec=make_spec(tile_size=256, tile_overlap=32),
        )
    )


def test_creating_the_sparse_raster_is_cheap(tmp_path):
    t0 = time.monotonic()
    path = sparse_raster(tmp_path / "huge.tif", (100_000, 100_000))
    assert time.monotonic() - t0 < 10
    assert path.stat().st_size < 64 * 1024**2


def test_empty_huge_raster_is_refused_quickly_with_progress(tmp_path, model):
    raster = sparse_raster(tmp_path / "empty.tif", None)
    seen: list[float] = []
    t0 = time.monotonic()
    with pytest.raises(InputError, match="only nodata"):
        run_detection(
            DetectRequest(str(raster), model, str(tmp_path / "out.gpkg")), progress=seen.append
        )
    assert time.monotonic() - t0 < 60  # a full read took 270 s on the 2-core machine
    assert len(seen) > 100 and seen == sorted(seen)
    assert not (tmp_path / "out.gpkg").exists()


def test_scan_of_a_huge_raster_honours_cancel(tmp_path, model):
    raster = sparse_raster(tmp_path / "empty.tif", None)
    calls = {"n": 0}

    def cancel_after_a_few() -> bool:
        calls["n"] += 1
        return calls["n"] > 20

    t0 = time.monotonic()
    with pytest.raises(CanceledError):
        run_detection(
            DetectRequest(str(raster), model, str(tmp_path / "out.gpkg")),
            is_canceled=cancel_after_a_few,
        )
    assert time.monotonic() - t0 < 30
    assert not [p for p in os.listdir(tmp_path) if p.startswith((".out", "out"))]


def test_detection_on_a_huge_sparse_raster_reports_progress_and_cancels(tmp_path, model):
    """Data far from every probe: the scan finds it (skipping absent blocks), tiling starts,
    progress moves and Cancel stops it; nothing is left."""
    raster = sparse_raster(tmp_path / "huge.tif", (100_096, 100_096))
    t0 = time.monotonic()
    seen: list[float] = []
    state = {"tiling": False}

    def progress(p: float) -> None:
        seen.append(p)

    def cancel() -> bool:
        return time.monotonic() - t0 > 20

    logs: list[str] = []
    with pytest.raises(CanceledError):
        run_detection(
            DetectRequest(str(raster), model, str(tmp_path / "out.gpkg")),
            progress=progress,
            is_canceled=cancel,
            log=logs.append,
        )
    elapsed = time.monotonic() - t0
    assert elapsed < 60, elapsed
    state["tiling"] = any("Processing grid 200000 x 200000" in m for m in logs)
    assert state["tiling"], logs  # the scan found the one data block and tiling began
    assert len(seen) > 10
    assert not [p for p in os.listdir(tmp_path) if p.startswith((".out", "out"))]


KILL = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from arctic_assist.io.detect import DetectRequest, run_detection
    run_detection(DetectRequest({raster!r}, {model!r}, {out!r}, probability_path={prob!r}))
""")


def test_killed_detection_leaves_only_run_named_temporaries_that_the_next_run_removes(
    tmp_path, model
):
    raster = sparse_raster(tmp_path / "huge.tif", (100_096, 100_096))
    outdir = tmp_path / "out"
    outdir.mkdir()
    out, prob = outdir / "rts.gpkg", outdir / "rts_prob.tif"
    script = KILL.format(
        repo=str(REPO), raster=str(raster), model=model, out=str(out), prob=str(prob)
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:  # kill it once it is writing its temporaries (tiling has begun)
        deadline = time.monotonic() + 120
        while not any(n.startswith(".rts") for n in os.listdir(outdir)):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = sorted(os.listdir(outdir))
    assert not out.exists() and not prob.exists()
    assert left and all(
        n.startswith((f".rts.aa{proc.pid}-", f".rts_prob.aa{proc.pid}-")) for n in left
    ), left
    # the next run (a small raster, same outputs) removes them
    from support import write_raster

    small = write_raster(tmp_path / "small.tif", np.full((4, 64, 64), 2000, np.uint16), epsg=32608)
    logs: list[str] = []
    run_detection(
        DetectRequest(str(small), model, str(out), probability_path=str(prob)), log=logs.append
    )
    assert sorted(os.listdir(outdir)) == ["rts.gpkg", "rts_prob.tif"]
    assert any("interrupted run" in m for m in logs)
    assert not list(Path(raster).parent.glob("*.aux.xml"))
