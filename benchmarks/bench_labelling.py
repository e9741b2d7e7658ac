"""Benchmark: the vectoriser's labelling and outline tracing (numpy) against OpenCV's C.

The question it answers: would a compiled dependency make the vectoriser much cheaper?
(Inference is kept to numpy + onnxruntime, DESIGN.md section 6; Deepness depends on
OpenCV.) On a probability raster, window by window as the stream hands them over (512
rows x 4096 columns), one thread, best of ``--repeat`` per step:

- Arctic Assist (``core.components``, ``core.outline``): the runs labelled with the holes
  under 16 px filled (``label_filled``, the default clean-up), the same without filling
  (``label_runs``), pixels and score sums per component (``Runs.counts``/``sums``), and
  the components of 4 px or more painted and traced (``Runs.paint``, ``outline``: rings
  with a vertex where the outline turns);
- OpenCV: ``connectedComponentsWithStats`` (4-connected), the components under 4 px
  dropped from the mask (numpy), ``findContours`` (``RETR_CCOMP``, ``CHAIN_APPROX_SIMPLE``:
  outer contours and holes, a vertex where the contour turns). No hole filling, no score:
  fewer steps than ours, the C routines' best case.

The raster: ``--prob`` (a float32 GeoTIFF, e.g. ``OUTPUT_PROBABILITY`` of a detection), else
``bench_vectorise.probability_raster`` of ``--size`` px (made in ``--workdir``), thresholded at
``--threshold``. OpenCV comes from ``DEEPNESS_SITE`` (see ``bench_deepness.py``) or the
Python path; without it the script prints "skipped" and exits 0::

    .venv/bin/pip install --target /tmp/deepness-site --no-deps opencv-python-headless==4.9.0.80
    DEEPNESS_SITE=/tmp/deepness-site .venv/bin/python benchmarks/bench_labelling.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

ROWS, COLS = 512, 4096  # the stream's vectorising windows (STREAM_WINDOW_ROWS x a panel)


def _best(repeat: int, func, *args):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = func(*args)
        best = min(best, time.perf_counter() - t0)
    return out, best


def _window(prob, valid, mask, steps: dict, repeat: int, cv2) -> tuple[int, int]:
    """Each step on one window, its best time added to ``steps``: (polygons, contours)."""
    from arctic_assist.core.components import label_filled, label_runs
    from arctic_assist.core.outline import outline

    runs, t = _best(repeat, label_filled, mask, valid, 16)
    steps["ours: label_filled"] += t
    steps["ours: label_runs (no filling)"] += _best(repeat, label_runs, mask)[1]
    (counts, _), t = _best(repeat, lambda: (runs.counts(), runs.sums(prob)))
    steps["ours: counts + sums"] += t
    keep = counts >= 4
    numbers = np.arange(1, runs.n + 1)
    o, t = _best(repeat, lambda: outline(runs.paint(numbers, keep)))
    steps["ours: paint + outline"] += t
    m8 = mask.astype(np.uint8)
    (_, lab, stats, _), t = _best(
        repeat, lambda: cv2.connectedComponentsWithStats(m8, connectivity=4, ltype=cv2.CV_32S)
    )
    steps["OpenCV: connectedComponentsWithStats"] += t

    def drop() -> np.ndarray:
        small = stats[:, cv2.CC_STAT_AREA] < 4
        small[0] = False
        out = m8.copy()
        out[small[lab]] = 0
        return out

    kept, t = _best(repeat, drop)
    steps["OpenCV: drop < 4 px (numpy)"] += t
    (found, _), t = _best(
        repeat, lambda: cv2.findContours(kept, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    )
    steps["OpenCV: findContours"] += t
    return o.labels.size, len(found)


def _measure(prob_path: str, args: argparse.Namespace, cv2) -> tuple[dict, int, int, tuple]:
    """Every window of the raster through both (see :func:`_window`)."""
    from osgeo import gdal

    gdal.UseExceptions()
    ds = gdal.Open(prob_path)
    band = ds.GetRasterBand(1)
    nodata = band.GetNoDataValue()
    steps = {
        k: 0.0
        for k in (
            "ours: label_filled",
            "ours: label_runs (no filling)",
            "ours: counts + sums",
            "ours: paint + outline",
            "OpenCV: connectedComponentsWithStats",
            "OpenCV: drop < 4 px (numpy)",
            "OpenCV: findContours",
        )
    }
    regions = contours = 0
    for r in range(0, ds.RasterYSize, ROWS):
        for c in range(0, ds.RasterXSize, COLS):
            nr, nc = min(ROWS, ds.RasterYSize - r), min(COLS, ds.RasterXSize - c)
            prob = band.ReadAsArray(c, r, nc, nr)
            valid = prob != nodata if nodata is not None else np.isfinite(prob)
            mask = (prob > args.threshold) & valid
            n_regions, n_contours = _window(prob, valid, mask, steps, args.repeat, cv2)
            regions += n_regions
            contours += n_contours
    return steps, regions, contours, (ds.RasterXSize, ds.RasterYSize)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prob", help="a float32 probability GeoTIFF (default: a synthetic one)")
    ap.add_argument("--size", type=int, default=8192, help="synthetic raster size (px)")
    ap.add_argument(
        "--threshold", type=float, default=0.6, help="foreground above it (for --prob: the model's)"
    )
    ap.add_argument("--workdir", help="keep the synthetic raster here")
    ap.add_argument("--repeat", type=int, default=3, help="runs per step, the best kept")
    args = ap.parse_args()
    site = os.environ.get("DEEPNESS_SITE")
    if site:
        sys.path.append(site)
    try:
        import cv2
    except ImportError:
        print("skipped: OpenCV (cv2) not importable; set DEEPNESS_SITE (see the docstring)")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_labelling_") as tmp:
        prob_path = args.prob
        if not prob_path:
            from bench_vectorise import probability_raster

            work = Path(args.workdir or tmp)
            work.mkdir(parents=True, exist_ok=True)
            prob_path = str(work / f"prob_{args.size}.tif")
            if not os.path.exists(prob_path):
                probability_raster(Path(prob_path), args.size)
        steps, regions, contours, shape = _measure(prob_path, args, cv2)
    print(
        f"{prob_path}: {shape[0]} x {shape[1]} px, threshold {args.threshold:g}, "
        f"windows {ROWS} x {COLS}, one thread, best of {args.repeat} per step (s)"
    )
    for k, v in steps.items():
        print(f"  {k:<40} {v:7.2f}")
    ours = sum(v for k, v in steps.items() if k.startswith("ours") and "no filling" not in k)
    cv = sum(v for k, v in steps.items() if k.startswith("OpenCV"))
    print(f"  {'ours (filled, scored, traced)':<40} {ours:7.2f}   {regions} polygons")
    print(f"  {'OpenCV (no filling, no score)':<40} {cv:7.2f}   {contours} contours")
    return 0


if __name__ == "__main__":
    sys.exit(main())
