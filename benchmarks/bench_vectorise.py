"""Benchmark: detection when the model proposes hundreds of thousands of polygons (CPU).

A U-Net-like ONNX graph with random weights (``tests/onnx_factory.conv_net_model``, width
16, 256 px tiles, 15 % overlap as in Deepness's default) on 4-band uint8 noise rasters
(a 2048 px noise tile mosaicked by a VRT, so the input costs no disk), thresholded so that
a quarter of the pixels are foreground, in blobs: it proposes polygons everywhere (about
2 500 per megapixel, the density of the issue's Deepness comparison). Each size runs
``run_detection`` in a fresh subprocess with the default clean-up of
``detect_thaw_slumps`` and prints:

- wall time / time inside ``session.run`` (target <= 1.3),
- the child's peak RSS (``VmHWM``; target <= 1 GB, flat in raster size and polygon count),
- polygons written, the time per phase from the run's log.

``--overhead`` also runs ``bench_detect``'s (a) measurement (U-Net-like, 3072^2 px, few
polygons; target <= 1.10) in the same invocation, so the ratios are measured side by side.

``--ort-threads 0,1`` runs every measurement with ONNX Runtime's default intra-op threads
(0: all cores) and with 1 (a core left free, as on a laptop with more cores than ORT
uses); ``--code new=.,old=/tmp/aa_old`` runs them with the ``arctic_assist`` package of
each tree (e.g. ``git archive main | tar -x -C /tmp/aa_old``), alternately, in the same
invocation, so old and new code are compared on the same machine state. Every
measurement runs in its own subprocess.

``--width 8`` halves the network's width: about as many polygons (250 556 against 265 405
at 8192^2) with onnxruntime about twice as fast here, as on a faster machine.

``--alone 8192`` measures the vectoriser alone, no model running: ``vectorise()`` with the
default clean-up on an 8192^2 probability GeoTIFF of smooth noise (8 px blobs through a
sigmoid) thresholded at 0.6, each code tree in its own process, alternately
(``--repeat`` times): its CPU time (what it takes from onnxruntime on a machine the model
fills) and the writer's share.

Usage::

    .venv/bin/python benchmarks/bench_vectorise.py --sizes 2048            # smoke (1 min)
    .venv/bin/python benchmarks/bench_vectorise.py --sizes 8192,16384 --overhead
    .venv/bin/python benchmarks/bench_vectorise.py --sizes "" --overhead  # (a) alone
    .venv/bin/python benchmarks/bench_vectorise.py --sizes 8192 --overhead \
        --ort-threads 0,1 --code new=.,old=/tmp/aa_old              # old vs new code
    .venv/bin/python benchmarks/bench_vectorise.py --alone 8192 --repeat 2 \
        --code new=.,old=/tmp/aa_old                                # the vectoriser alone
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))
#: a child measures the ``arctic_assist`` package of this tree (``--code``)
CODE_ENV = "ARCTIC_ASSIST_BENCH_CODE"
if os.environ.get(CODE_ENV):
    sys.path.insert(0, os.environ[CODE_ENV])

from onnx_factory import conv_net_model, make_spec  # noqa: E402

from arctic_assist.core.spec import Normalization  # noqa: E402

NOISE = 2048
#: the model's threshold is this percentile of its output on the noise: 25 % foreground in
#: blobs, below the percolation threshold (at 50 % one component spans the raster)
QUANTILE = 75
BANDS = ("red", "green", "blue", "nir")


def blobs(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """``rows`` x ``cols`` float32 smoothed normal noise: blobs of about 8 x 8 px."""
    a = rng.normal(0, 1, (-(-rows // 8), -(-cols // 8))).astype(np.float32)
    a = np.kron(a, np.ones((8, 8), np.float32))[:rows, :cols]
    a = (a[:-1, :-1] + a[1:, 1:] + a[:-1, 1:] + a[1:, :-1]) / 4
    return np.pad(a, ((0, 1), (0, 1)), mode="edge")


def noise_tile(path: Path, seed: int = 0) -> Path:
    """2048^2 x 4 uint8: smoothed noise (blobs of about 8 x 8 px), 1 m, EPSG:32633."""
    from osgeo import gdal

    gdal.UseExceptions()
    rng = np.random.default_rng(seed)
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), NOISE, NOISE, 4, gdal.GDT_Byte, options=["TILED=YES", "COMPRESS=DEFLATE"]
    )
    ds.SetGeoTransform((500000.0, 1.0, 0.0, 6000000.0, 0.0, -1.0))
    ds.SetProjection(_wkt(32633))
    for b in range(4):
        a = blobs(rng, NOISE, NOISE)
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(np.clip(128 + 40 * a, 1, 255).astype(np.uint8))
        band.SetDescription(BANDS[b])
    ds = None
    return path


def mosaic(tile: Path, path: Path, size: int) -> Path:
    """A VRT of ``size`` x ``size`` px repeating ``tile``."""
    from osgeo import gdal

    src = gdal.Open(str(tile))
    gt = src.GetGeoTransform()
    n = -(-size // NOISE)
    lines = [
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}">',
        f"<SRS>{_wkt(32633)}</SRS>",
        f"<GeoTransform>{gt[0]}, {gt[1]}, 0, {gt[3]}, 0, {gt[5]}</GeoTransform>",
    ]
    for b in range(4):
        lines.append(
            f'<VRTRasterBand dataType="Byte" band="{b + 1}"><Description>{BANDS[b]}</Description>'
        )
        for i in range(n):
            for j in range(n):
                w, h = min(NOISE, size - j * NOISE), min(NOISE, size - i * NOISE)
                lines.append(
                    f'<SimpleSource><SourceFilename relativeToVRT="0">{tile}</SourceFilename>'
                    f"<SourceBand>{b + 1}</SourceBand>"
                    f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
                    f'<DstRect xOff="{j * NOISE}" yOff="{i * NOISE}" xSize="{w}" ySize="{h}"/>'
                    "</SimpleSource>"
                )
        lines.append("</VRTRasterBand>")
    lines.append("</VRTDataset>")
    path.write_text("\n".join(lines))
    return path


def _wkt(epsg: int) -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def unet(path: Path, tile: Path, width: int = 16) -> Path:
    """The random-weight U-Net-like model, thresholded at the :data:`QUANTILE` percentile of
    its output on the noise tile."""
    spec = make_spec(
        bands=BANDS,
        dtype="uint8",
        normalization=Normalization("scale", scale=1 / 255.0),
        pixel_size_m=1.0,
        tile_size=256,
        tile_overlap=38,
        multiple_of=2,
        nodata_value=None,
    )
    conv_net_model(path, in_channels=4, width=width, depth=2, spec=spec, seed=3)
    import onnxruntime as ort
    from osgeo import gdal

    x = gdal.Open(str(tile)).ReadAsArray(0, 0, 256, 256).astype(np.float32)[None] / 255.0
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    p = sess.run(None, {"image": x})[0]
    thr = float(np.clip(np.percentile(p, QUANTILE), 0.01, 0.99))
    spec = make_spec(**{**spec.__dict__, "threshold": thr})
    return conv_net_model(path, in_channels=4, width=width, depth=2, spec=spec, seed=3)


def probability_raster(path: Path, size: int, seed: int = 0) -> Path:
    """``size``^2 float32 probabilities: smooth noise (8 px blobs) through a sigmoid, 1 m,
    EPSG:32633, nodata -1 (written in strips of 2048 rows)."""
    from osgeo import gdal

    gdal.UseExceptions()
    rng = np.random.default_rng(seed)
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), size, size, 1, gdal.GDT_Float32, options=["TILED=YES"]
    )
    ds.SetGeoTransform((500000.0, 1.0, 0.0, 6000000.0, 0.0, -1.0))
    ds.SetProjection(_wkt(32633))
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(-1.0)
    for r in range(0, size, NOISE):
        a = blobs(rng, min(NOISE, size - r), size)
        band.WriteArray(1 / (1 + np.exp(-a)), 0, r)
    ds = None
    return path


def alone_child(prob: str, out: str) -> None:
    """``vectorise()`` alone on ``prob`` (threshold 0.6, the default clean-up): JSON."""
    import time

    from osgeo import osr

    import arctic_assist
    from arctic_assist.io.vector import DEFAULT_CLEANUP, FeatureWriter, vectorise

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    attrs = {"model": "m", "run_id": "r", "status": "proposed", "source": prob}
    writer = FeatureWriter(out, "p", srs, attrs)
    t0, c0 = time.perf_counter(), time.process_time()
    vectorise(
        prob,
        writer,
        threshold=0.6,
        metres_per_unit=1.0,
        grid_srs=srs,
        out_srs=srs,
        cleanup=DEFAULT_CLEANUP,
    )
    n = writer.close()
    print(
        json.dumps(
            {
                "code": str(Path(arctic_assist.__file__).parents[1]),
                "features": n,
                "wall": time.perf_counter() - t0,
                "cpu": time.process_time() - c0,
                "writer": writer.seconds,
                "index": getattr(writer, "index_seconds", 0.0),
                "peak_rss_mb": vm_hwm_kb() / 1024,
            }
        )
    )


def vm_hwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def limit_ort_threads(threads: int) -> None:
    """Make every model load in this process use ``threads`` intra-op threads (0: ORT's
    default, all cores)."""
    if threads:
        import functools

        from arctic_assist.core.onnx_model import OnnxModel

        load = OnnxModel.load.__func__
        OnnxModel.load = classmethod(functools.partial(load, threads=threads))


def child(raster: str, model: str, out: str, threads: int) -> None:
    import arctic_assist
    from arctic_assist.io.detect import DetectRequest, run_detection
    from arctic_assist.io.vector import DEFAULT_CLEANUP

    limit_ort_threads(threads)
    if raster == "overhead":  # bench_detect's (a): few polygons
        from bench_detect import synthetic_raster, unet_model

        work = Path(out).parent
        u = unet_model(work / "unet.onnx")
        r = synthetic_raster(work / "ovh_3072.tif", 3072)
        run_detection(DetectRequest(str(r), str(u), str(work / "warm.gpkg")))
        res = run_detection(
            DetectRequest(str(r), str(u), str(work / "ovh.gpkg"), str(work / "ovh_prob.tif"))
        )
    else:
        res = run_detection(
            DetectRequest(raster, model, out, batch_size=4, cleanup=DEFAULT_CLEANUP)
        )
    print(
        json.dumps(
            {
                "code": str(Path(arctic_assist.__file__).parents[1]),
                "peak_rss_mb": vm_hwm_kb() / 1024,
                "seconds": res.seconds,
                "inference_seconds": res.inference_seconds,
                "tiles": res.tiles_run,
                "features": res.n_features,
                "timings": res.timings,
            }
        )
    )


def run_child(args: list[str], code: str) -> dict:
    """This script with ``args`` in a fresh process measuring the tree ``code``: its JSON."""
    cmd = [sys.executable, __file__, *args]
    env = {**os.environ, CODE_ENV: str(Path(code).resolve())}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(raster: Path | str, model: Path, out: Path, threads: int, code: str) -> dict:
    return run_child(["--child", str(raster), str(model), str(out), str(threads)], code)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8192,16384")
    ap.add_argument(
        "--overhead",
        action="store_true",
        help="also bench_detect's (a): U-Net-like, 3072^2, few polygons",
    )
    ap.add_argument("--workdir")
    ap.add_argument(
        "--ort-threads",
        default="0",
        help="comma-separated ONNX Runtime intra-op thread counts (0: its default)",
    )
    ap.add_argument(
        "--code",
        default=f"new={REPO}",
        help="comma-separated NAME=TREE: measure the arctic_assist package of each tree",
    )
    ap.add_argument(
        "--width",
        type=int,
        default=16,
        help="the network's width (8: onnxruntime about 2 x faster, as on a faster machine)",
    )
    ap.add_argument("--alone", type=int, default=0, help="the vectoriser alone on SIZE^2")
    ap.add_argument("--repeat", type=int, default=1, help="--alone: runs of each code")
    ap.add_argument("--child", nargs=4, metavar=("RASTER", "MODEL", "OUT", "THREADS"))
    ap.add_argument("--alone-child", nargs=2, metavar=("PROB", "OUT"))
    args = ap.parse_args()
    if args.child:
        child(*args.child[:3], int(args.child[3]))
        return 0
    if args.alone_child:
        alone_child(*args.alone_child)
        return 0
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="aa_vec_"))
    work.mkdir(parents=True, exist_ok=True)
    codes = [tuple(c.split("=", 1)) for c in args.code.split(",") if c.strip()]
    if args.alone:
        try:
            return alone(work, args.alone, codes, max(1, args.repeat))
        finally:
            if not args.workdir:
                shutil.rmtree(work, ignore_errors=True)
    threads = [int(t) for t in args.ort_threads.split(",") if t.strip()]
    cases = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.overhead:
        cases.append(0)
    results: dict[tuple[int, int, str], dict] = {}
    try:
        tile = noise_tile(work / "noise.tif")
        model = unet(work / f"unet_noise_w{args.width}.onnx", tile, args.width)
        for size in cases:
            raster = mosaic(tile, work / f"noise_{size}.vrt", size) if size else "overhead"
            for t in threads:
                for name, code in codes:  # old and new one after the other
                    out = work / f"vec_{size}.gpkg"
                    data = measure(raster, model, out, t, code)
                    results[size, t, name] = data
                    print(_row(size, t, name, data), flush=True)
                    out.unlink(missing_ok=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        f"{'raster':<16} {'ORT thr':>7} {'code':>5} {'wall/ORT':>8} {'peak RSS':>9} "
        f"{'polygons':>9}  notes"
    )
    for (size, t, name), data in results.items():
        print(_row(size, t, name, data))
    if len(codes) > 1:
        a, b = codes[0][0], codes[1][0]
        print(f"\n{a} / {b}: wall / ORT, and wall time (< 1: {a} is better)")
        for size in cases:
            for t in threads:
                da, db = results[size, t, a], results[size, t, b]
                print(
                    f"  {_name(size):<16} ORT threads {t or 'all':>3}: wall / ORT "
                    f"{_ratio(da):.3f} vs {_ratio(db):.3f} ({_ratio(da) / _ratio(db):.3f}); "
                    f"wall {da['seconds']:.1f} s vs {db['seconds']:.1f} s "
                    f"({da['seconds'] / db['seconds']:.3f})"
                )
    print("(targets: wall / ORT <= 1.3 with many polygons, <= 1.10 for (a); peak RSS <= 1 GB)")
    return 0


def alone(work: Path, size: int, codes: list[tuple[str, ...]], repeat: int) -> int:
    prob = work / f"prob_{size}.tif"
    if not prob.exists():
        probability_raster(prob, size)
    print(f"vectorise() alone on {size} x {size} probabilities (threshold 0.6, default clean-up)")
    for _ in range(repeat):
        for name, code in codes:  # old and new one after the other
            out = work / "alone.gpkg"
            try:
                d = run_child(["--alone-child", str(prob), str(out)], code)
            finally:
                out.unlink(missing_ok=True)
            print(
                f"  {name:>5}: {d['features']} polygons, CPU {d['cpu']:.1f} s, wall "
                f"{d['wall']:.1f} s, writer {d['writer']:.1f} s (index {d['index']:.1f} s), "
                f"peak RSS {d['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    return 0


def _name(size: int) -> str:
    return f"{size} x {size}" if size else "(a) 3072 x 3072"


def _ratio(data: dict) -> float:
    return data["seconds"] / data["inference_seconds"]


def _row(size: int, threads: int, name: str, data: dict) -> str:
    tm = data["timings"]
    note = (
        f"{data['seconds']:.1f} s wall, {data['inference_seconds']:.1f} s in session.run; "
        + ", ".join(f"{k} {v:.1f}" for k, v in tm.items() if k != "total")
    )
    rss = f"{data['peak_rss_mb']:.0f} MB" if size else "-"
    return (
        f"{_name(size):<16} {threads or 'all':>7} {name:>5} {_ratio(data):>8.3f} {rss:>9} "
        f"{data['features']:>9}  {note}"
    )


if __name__ == "__main__":
    sys.exit(main())
