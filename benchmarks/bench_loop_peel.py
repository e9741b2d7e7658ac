"""The expert loop headless, on real data: detect, review (one expert), export, retrain, detect.

    python benchmarks/bench_loop_peel.py [--expert 01] [--steps 300] [--data ../shared/data]

Every step runs through ``qgis_process.bin`` against a throw-away profile, exactly as a user
on a server would run it:

1. ``arctic_assist:detect_thaw_slumps`` with the bundled model on the Peel Plateau
   Sentinel-2 crop (``rts/peel/peel_s2_bgrn_10m.tif``);
2. one expert's polygons (``labels_by_expert/expert_NN.shp``) stand in for the reviewed
   proposals: ``arctic_assist:export_training_data`` inside the experts' AOI;
3. ``arctic_assist:retrain_model`` (pixeldino, warm start from the bundled model);
4. ``arctic_assist:detect_thaw_slumps`` again with the new model.

Printed: the IoU of the proposals before and after against the 12 experts' majority vote,
rasterised at 2.5 m inside the AOI (as Nitze et al. 2024 measured the experts' agreement),
next to the chosen expert's own IoU against the majority and the experts' mean (0.71).
The loop trains on the same image it is scored on (that is what an expert does at the
desk), so "after" is not a held-out score. Numbers, not pass/fail.
Data: Nitze et al. 2024 RTS digitisation experiment (MIT); Copernicus Sentinel-2.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from osgeo import gdal  # noqa: E402

from arctic_assist.training.data import rasterize_polygons, supersampled_grid  # noqa: E402

gdal.UseExceptions()
EXPERTS_VS_MAJORITY = 0.71  # Nitze et al. 2024 (shared/data/README.md)
FINE = 4  # 10 m / 4 = 2.5 m


def iou(pred: np.ndarray, truth: np.ndarray, inside: np.ndarray) -> float:
    p, t = pred.astype(bool) & inside, truth.astype(bool) & inside
    union = (p | t).sum()
    return float((p & t).sum() / union) if union else float("nan")


def qgis_run(alg: str, params: dict, env: dict, log: list) -> dict:
    from support import run_qgis_process

    args = ["run", f"arctic_assist:{alg}", "--"] + [f"{k}={v}" for k, v in params.items()]
    t0 = time.time()
    proc = run_qgis_process(args, env, timeout=3600)
    log.append({"alg": alg, "params": params, "seconds": round(time.time() - t0, 1),
                "rc": proc.returncode})
    print(f"$ qgis_process.bin {' '.join(args)}\n  -> exit {proc.returncode} "
          f"in {time.time() - t0:.0f} s", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"{alg} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return {"stdout": proc.stdout}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--model", default=str(ROOT / "models" / "rts_pixeldino_s2_bgrn.onnx"))
    p.add_argument("--expert", default="01", help="the expert whose polygons are the review")
    p.add_argument("--steps", type=int, default=300, help="retraining steps")
    p.add_argument("--work", default=None, help="keep the outputs here (default: a temp dir)")
    p.add_argument("--json-out", default=None)
    a = p.parse_args(argv)
    peel = Path(a.data) / "rts" / "peel"
    raster = peel / "peel_s2_bgrn_10m.tif"
    experts = sorted(glob.glob(str(peel / "labels_by_expert" / "expert_*.shp")))
    chosen = peel / "labels_by_expert" / f"expert_{a.expert}.shp"
    if not raster.is_file() or not chosen.is_file():
        print(f"skipped: {raster} or {chosen} not found (shared data absent)")
        return 0
    if not Path(a.model).is_file():
        print(f"skipped: model {a.model} not found (make models-rts)")
        return 0
    from support import link_checkout_plugin, make_profile, qgis_env

    work = Path(a.work or tempfile.mkdtemp(prefix="bench_loop_peel_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    plugins = work / "plugins"
    if not plugins.exists():
        link_checkout_plugin(plugins)
    env = qgis_env(make_profile(work / "config"), plugins)
    log: list = []

    before = work / "before.gpkg"
    labels = work / "training_data"
    new_model = work / "retrained.onnx"
    after = work / "after.gpkg"
    for f in (before, after, new_model):
        f.unlink(missing_ok=True)
    qgis_run("detect_thaw_slumps",
             {"INPUT": raster, "MODEL": a.model, "DEVICE": 1, "OUTPUT": before}, env, log)
    qgis_run("export_training_data",
             {"LABELS": chosen, "RASTERS": raster, "AOI": peel / "peel_aoi.geojson",
              "ONLY_REVIEWED": "false", "CHIP_SIZE": 64, "OUTPUT": labels}, env, log)
    qgis_run("retrain_model",
             {"DATA": labels, "TASK": 0, "METHOD": 0, "BASE_MODEL": a.model,
              "STEPS": a.steps, "DEVICE": 1, "OUTPUT": new_model}, env, log)
    qgis_run("detect_thaw_slumps",
             {"INPUT": raster, "MODEL": new_model, "DEVICE": 1, "OUTPUT": after}, env, log)

    grid = supersampled_grid(gdal.Open(str(raster)), FINE)
    inside = rasterize_polygons(peel / "peel_aoi.geojson", grid).astype(bool)
    votes = sum(rasterize_polygons(e, grid).astype(np.int32) for e in experts)
    majority = votes * 2 > len(experts)
    res = {
        "expert": a.expert,
        "steps": a.steps,
        "iou_before": iou(rasterize_polygons(before, grid), majority, inside),
        "iou_after": iou(rasterize_polygons(after, grid), majority, inside),
        "expert_vs_majority": iou(rasterize_polygons(chosen, grid), majority, inside),
        "experts_mean_vs_majority": EXPERTS_VS_MAJORITY,
        "runs": log,
        "work": str(work),
    }
    print(f"\nIoU against the majority of {len(experts)} experts (2.5 m, inside the AOI):")
    print(f"  bundled model, before review   {res['iou_before']:.3f}")
    print(f"  retrained on expert {a.expert} ({a.steps} steps)  {res['iou_after']:.3f}")
    print(f"  expert {a.expert} himself/herself     {res['expert_vs_majority']:.3f}")
    print(f"  experts' mean (Nitze et al.)   {EXPERTS_VS_MAJORITY:.2f}")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
