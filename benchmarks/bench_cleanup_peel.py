"""How the clean-up of ``detect_thaw_slumps`` changes agreement with the experts on Peel.

Runs the model (default: the bundled RTS model) on the Peel Sentinel-2 crop, then, for
thresholds 0.3-0.7 and every combination of MIN_SEGMENT (0-32 px), FILL_HOLES (0-64 px)
and FILTER (none, 3 x 3, 5 x 5), the IoU of the cleaned mask with the experts' majority
and the mean IoU with each of the 12 experts (10 m grid, inside the experts' AOI; the
labels rasterised at 2.5 m, a pixel is covered when half of it is). This is how the
defaults (4, 16, none) were chosen.

Usage::

    .venv/bin/python benchmarks/bench_cleanup_peel.py [--model models/rts_pixeldino_s2_bgrn.onnx]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from arctic_assist.core.components import fill_holes, label_runs, majority_filter  # noqa: E402
from arctic_assist.io.detect import DetectRequest, run_detection  # noqa: E402
from arctic_assist.io.training_data import (  # noqa: E402
    majority_vote,
    rasterize_polygons,
    supersampled_grid,
)

PEEL = REPO.parent / "shared" / "data" / "rts" / "peel"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "rts_pixeldino_s2_bgrn.onnx"))
    args = ap.parse_args()
    from osgeo import gdal

    gdal.UseExceptions()
    img = PEEL / "peel_s2_bgrn_10m.tif"
    with tempfile.TemporaryDirectory() as tmp:
        run_detection(DetectRequest(str(img), args.model, f"{tmp}/p.gpkg", f"{tmp}/p.tif"))
        prob = gdal.Open(f"{tmp}/p.tif").ReadAsArray()
    ds = gdal.Open(str(img))

    def covered(paths, s: int = 4) -> np.ndarray:
        fine = supersampled_grid(ds, s)
        m = rasterize_polygons(paths, fine).astype(np.float32)
        return m.reshape(ds.RasterYSize, s, ds.RasterXSize, s).mean(axis=(1, 3)) >= 0.5

    experts = sorted(str(p) for p in (PEEL / "labels_by_expert").glob("*.shp"))
    majority = majority_vote(experts, ds).astype(bool)
    each = [covered(p) for p in experts]
    aoi = covered(str(PEEL / "peel_aoi.geojson"))

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a & aoi, b & aoi
        union = (a | b).sum()
        return float((a & b).sum() / union) if union else float("nan")

    valid = prob != -1
    print(
        f"{len(experts)} experts; expert vs majority mean IoU "
        f"{np.mean([iou(e, majority) for e in each]):.3f}"
    )
    print("threshold min_segment fill_holes filter  IoU_majority  IoU_experts  polygons")
    for thr in (0.3, 0.4, 0.5, 0.6, 0.7):
        base = (prob > thr) & valid
        for seg, hole, filt in itertools.product((0, 4, 8, 16, 32), (0, 16, 64), (0, 3, 5)):
            m = majority_filter(base, valid, filt) if filt > 1 else base
            m = fill_holes(m, valid, hole)
            runs = label_runs(m, 4)
            keep = runs.counts() >= max(seg, 1)
            if runs.n:
                m = runs.paint(np.ones(runs.n, np.int8), keep, dtype=np.int8).astype(bool)
            print(
                f"{thr:9.1f} {seg:11d} {hole:10d} {filt:6d}  {iou(m, majority):12.3f}  "
                f"{np.mean([iou(m, e) for e in each]):11.3f}  {int(keep.sum())}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
