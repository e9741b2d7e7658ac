"""Why the old thaw-slump model proposed almost nothing: loss curves and probabilities.

    python benchmarks/plot_rts_diagnostics.py --models OLD.onnx NEW.onnx [...] \
        --curves build/bench_rts_recipe/runs/supervised_s0 ... \
        --out docs/images/rts_diagnostics.png

Left: the training loss against step from the CSV logs of the given runs (Lightning's
``logs/metrics.csv``). Right: for each model, the histogram of its predicted probability on
the bottom half of the Peel image (never trained on), on the pixels the experts' majority
marks as thaw slump and on the others, with the model's stored threshold: an
under-confident model (the old teacher) keeps RTS pixels below 0.5. Also prints the share
of RTS pixels above the threshold and of background pixels below it.
Data: Nitze et al. 2024 (MIT); Copernicus Sentinel-2.
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from osgeo import gdal  # noqa: E402
from peel_reference import peel_folder  # noqa: E402

gdal.UseExceptions()
HOLDOUT_ROW = 128


def probabilities(model: str, raster: Path) -> tuple[np.ndarray, float]:
    from arctic_assist.core.normalize import apply_normalization
    from arctic_assist.training.evaluate import onnx_predictor, predict_padded
    from arctic_assist.training.export import read_spec

    spec = read_spec(model)
    raw = gdal.Open(str(raster)).ReadAsArray()
    x = apply_normalization(raw, spec.normalization).astype(np.float32)
    x[:, (raw == 0).all(axis=0)] = 0.0
    return predict_padded(onnx_predictor(model), x), float(spec.threshold)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--labels", nargs="*", default=None, help="legend names of the models")
    p.add_argument("--curves", nargs="*", default=[], help="run folders with logs/metrics.csv")
    p.add_argument("--out", default="docs/images/rts_diagnostics.png")
    a = p.parse_args(argv)
    peel = peel_folder(a.data)
    if peel is None:
        return 0
    raster = peel / "peel_s2_bgrn_10m.tif"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from arctic_assist.io.training_data import majority_vote, rasterize_polygons

    ds = gdal.Open(str(raster))
    experts = sorted(glob.glob(str(peel / "labels_by_expert" / "expert_*.shp")))
    truth = majority_vote(experts, ds).astype(bool)
    inside = rasterize_polygons(peel / "peel_aoi.geojson", ds).astype(bool)
    inside[:HOLDOUT_ROW] = False
    fig, (ax_l, ax_h) = plt.subplots(1, 2, figsize=(11, 4))
    for run in a.curves:
        rows = list(csv.DictReader(open(Path(run) / "logs" / "metrics.csv")))
        steps = [int(r["step"]) for r in rows if r.get("loss")]
        loss = [float(r["loss"]) for r in rows if r.get("loss")]
        ax_l.plot(steps, loss, label=Path(run).name)
    ax_l.set_xlabel("step")
    ax_l.set_ylabel("training loss")
    ax_l.set_title("training loss (CSV logs)")
    if a.curves:
        ax_l.legend(fontsize=8)
    bins = np.linspace(0, 1, 41)
    names = a.labels or [Path(m).stem for m in a.models]
    for model, name in zip(a.models, names):
        prob, thr = probabilities(model, raster)
        rts, bg = prob[truth & inside], prob[~truth & inside]
        line = ax_h.hist(
            rts, bins, histtype="step", density=True, lw=2, label=f"{name}: RTS pixels"
        )[2][0]
        ax_h.hist(
            bg,
            bins,
            histtype="step",
            density=True,
            ls="--",
            color=line.get_edgecolor(),
            label=f"{name}: background",
        )
        ax_h.axvline(thr, color=line.get_edgecolor(), lw=0.8)
        print(
            f"{name}: threshold {thr:.2f}; RTS pixels above it {100 * (rts > thr).mean():.1f} %,"
            f" background below it {100 * (bg <= thr).mean():.1f} %, max probability "
            f"{prob.max():.2f}"
        )
    ax_h.set_yscale("log")
    ax_h.set_xlabel("predicted probability (Peel bottom half, held out)")
    ax_h.set_title("probabilities on RTS vs background; lines: thresholds")
    ax_h.legend(fontsize=7)
    fig.tight_layout()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=90)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
