"""Benchmark of thaw-slump detection (``arctic_assist.io.detect.run_detection``), CPU.

Prints one table:

(a) pipeline overhead = run_detection wall time / time spent inside ``session.run``, with a
    small U-Net-like conv network (3x3 convs, pool, upsample, skip; built with onnx.helper,
    opset 17) on a synthetic 4-band uint16 raster. Target <= 1.10.
(b) peak RSS of a whole run (a fresh subprocess per size; the child's ``VmHWM``, and
    the maximum RSS psutil saw while polling it every 0.2 s) on synthetic 4-band uint16 rasters of
    10k x 10k and 40k x 40k pixels (tiled, DEFLATE, blocky content so files stay small),
    with a very cheap per-pixel model. Targets: <= 1.5 GB, larger <= 1.2 x smaller.
(c) throughput in megapixels/s, and for the conv network its FLOPs per pixel (2 x conv
    MACs counted from the graph) against a measured float32 numpy matmul peak.

Usage::

    .venv/bin/python benchmarks/bench_detect.py --quick     # 2k / 8k smoke run (minutes)
    .venv/bin/python benchmarks/bench_detect.py             # 10k / 40k (long on 2 cores)

Options: ``--sizes 10000,40000`` overrides the memory sizes, ``--workdir`` where the
synthetic rasters go (default: a temporary folder, removed at the end), ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from onnx_factory import (  # noqa: E402
    conv_macs_per_pixel,
    conv_net_model,
    make_spec,
    weighted_sum_model,
)

from arctic_assist.core.spec import Normalization  # noqa: E402
from arctic_assist.io.detect import DetectRequest, run_detection  # noqa: E402


def synthetic_raster(path: Path, size: int, seed: int = 0) -> Path:
    """size x size, 4 x uint16, 10 m, EPSG:32608; blocky background with bright 'slumps'."""
    from osgeo import gdal

    gdal.UseExceptions()
    if path.exists():
        return path
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path),
        size,
        size,
        4,
        gdal.GDT_UInt16,
        options=["TILED=YES", "COMPRESS=DEFLATE", "ZLEVEL=1", "BIGTIFF=YES"],
    )
    ds.SetGeoTransform((400000.0, 10.0, 0.0, 7600000.0, 0.0, -10.0))
    ds.SetProjection(_wkt(32608))
    for b in range(4):
        ds.GetRasterBand(b + 1).SetNoDataValue(0)
    step = 1024
    xx = np.arange(size)[None]
    for r in range(0, size, step):
        h = min(step, size - r)
        yy = (np.arange(h) + r)[:, None]
        field = ((yy // 613 + xx // 797) % 7).astype(np.uint16)
        slump = ((yy % 1500) < 40) & ((xx % 1700) < 60)
        for b in range(4):
            a = 1200 + 150 * field + 50 * b
            a[slump] = 6500
            if r == 0:
                a[:16, :] = 0  # a strip of nodata
            ds.GetRasterBand(b + 1).WriteArray(a.astype(np.uint16), 0, r)
    ds = None
    return path


def _wkt(epsg: int) -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def cheap_model(path: Path) -> Path:
    spec = make_spec(
        normalization=Normalization("scale", scale=1e-3), tile_size=512, tile_overlap=32
    )
    return weighted_sum_model(path, [1.0, 1.0, 1.0, 1.0], -16.0, spec=spec)


def unet_model(path: Path) -> Path:
    spec = make_spec(
        normalization=Normalization("pixeldino_logsigmoid", scale=0.005, gain=2.5, offset=2.1),
        tile_size=192,
        tile_overlap=48,
        multiple_of=2,
    )
    return conv_net_model(path, in_channels=4, width=16, depth=2, spec=spec)


def matmul_peak_gflops(n: int = 1024, repeats: int = 5) -> float:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def vm_hwm_kb() -> int:
    """This process's own peak RSS (``VmHWM``, kB). Not ``ru_maxrss``: on Linux that keeps the
    high-water mark of the address space replaced by ``exec``, i.e. the benchmark parent's
    peak (it once reported 1145 MB for a run that never exceeded 654 MB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux


def child(raster: str, model: str, out: str) -> None:
    """Run one detection and print JSON with the peak RSS (VmHWM) and timings."""
    res = run_detection(DetectRequest(raster, model, out, batch_size=4, min_area_m2=100))
    print(
        json.dumps(
            {
                "peak_rss_mb": vm_hwm_kb() / 1024,
                "seconds": res.seconds,
                "inference_seconds": res.inference_seconds,
                "tiles": res.tiles_run,
                "skipped": res.tiles_skipped,
                "features": res.n_features,
            }
        )
    )


def measure_child(raster: Path, model: Path, out: Path) -> dict:
    import psutil

    cmd = [sys.executable, __file__, "--child", str(raster), str(model), str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    seen = [0]

    def poll() -> None:
        while proc.poll() is None:
            try:
                seen[0] = max(seen[0], ps.memory_info().rss)
            except psutil.Error:
                break
            time.sleep(0.2)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    stdout, stderr = proc.communicate()
    t.join()
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {stderr[-2000:]}")
    data = json.loads(stdout.strip().splitlines()[-1])
    data["psutil_peak_mb"] = seen[0] / 2**20
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2k / 8k rasters (smoke run)")
    ap.add_argument("--sizes", help="comma-separated raster sizes for the memory runs")
    ap.add_argument("--overhead-size", type=int, default=None)
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("RASTER", "MODEL", "OUT"))
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return 0

    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else ([2000, 8000] if args.quick else [10000, 40000])
    )
    osize = args.overhead_size or (1024 if args.quick else 3072)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="aa_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str]] = []
    try:
        # (a) + (c): overhead and throughput with the U-Net-like model
        unet = unet_model(work / "unet.onnx")
        macs = conv_macs_per_pixel(unet)
        raster = synthetic_raster(work / f"ovh_{osize}.tif", osize)
        run_detection(DetectRequest(str(raster), str(unet), str(work / "warm.gpkg")))  # warm
        res = run_detection(
            DetectRequest(
                str(raster), str(unet), str(work / "ovh.gpkg"), str(work / "ovh_prob.tif")
            )
        )
        ratio = res.seconds / res.inference_seconds
        mpx = osize * osize / 1e6
        gflops = mpx * 1e6 * 2 * macs / res.seconds / 1e9
        peak = matmul_peak_gflops()
        rows += [
            (
                "(a) overhead wall / session.run",
                f"{ratio:.3f}",
                f"U-Net-like, {osize}^2 px, {res.tiles_run} tiles of 192, "
                f"{res.seconds:.1f} s wall, {res.inference_seconds:.1f} s in session.run; "
                f"{res.calls} (target <= 1.10)",
            ),
            (
                "(c) throughput U-Net-like",
                f"{mpx / res.seconds:.2f} MP/s",
                f"{2 * macs / 1e3:.1f} kFLOP/px; {gflops:.1f} GFLOP/s = "
                f"{100 * gflops / peak:.0f}% of numpy float32 matmul peak {peak:.1f} GFLOP/s",
            ),
        ]
        # (b) memory, one subprocess per size, cheap model
        cheap = cheap_model(work / "cheap.onnx")
        mem = []
        for size in sizes:
            t = time.perf_counter()
            r = synthetic_raster(work / f"mem_{size}.tif", size)
            make_s = time.perf_counter() - t
            data = measure_child(r, cheap, work / f"mem_{size}.gpkg")
            mem.append(data["peak_rss_mb"])
            rows.append(
                (
                    f"(b) peak RSS {size} x {size}",
                    f"{data['peak_rss_mb']:.0f} MB",
                    f"psutil max {data['psutil_peak_mb']:.0f} MB; {data['seconds']:.0f} s "
                    f"({size * size / 1e6 / data['seconds']:.1f} MP/s, cheap model), "
                    f"{data['tiles']} tiles, {data['skipped']} skipped, "
                    f"{data['features']} polygons; raster made in {make_s:.0f} s, "
                    f"{r.stat().st_size / 2**20:.0f} MB",
                )
            )
        if len(mem) >= 2:
            rows.append(
                (
                    "(b) RSS larger / smaller",
                    f"{mem[-1] / mem[0]:.2f}",
                    "target <= 1.2; absolute target <= 1536 MB",
                )
            )
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'measure':<{w0}}  {'value':>{w1}}  notes")
    for name, value, note in rows:
        print(f"{name:<{w0}}  {value:>{w1}}  {note}")
    print(f"(CPU: {os.cpu_count()} cores; onnxruntime CPUExecutionProvider)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
