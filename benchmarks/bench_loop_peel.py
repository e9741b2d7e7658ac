"""The expert loop headless on real data, scored where it never trained (issue 12's protocol).

    python benchmarks/bench_loop_peel.py [--steps 300] [--seeds 0 1 2] \
        [--labels majority expert01] [--methods supervised pixeldino] \
        [--start scratch warm] [--work build/bench_loop_peel] [--resume]

Every step runs through ``qgis_process.bin`` against a throw-away profile, as a user on a
server would run it:

1. ``detect_thaw_slumps`` with the model to start from (default: the bundled one) on the
   Peel Plateau Sentinel-2 crop;
2. the review: labels only in the **top half** of the image (rows < 128) -- the 12
   experts' majority vote (polygonised at 2.5 m), and as a second row one expert's
   polygons -- exported with ``export_training_data`` with the AOI = the experts' area x
   the top half (so the bottom half is never trained on);
3. ``retrain_model`` on the CPU (``--start scratch``: from nothing, START = scratch;
   ``warm``: from the model of step 1, as BASE_MODEL), wall time printed;
4. ``detect_thaw_slumps`` with the new model.

Scored: IoU against the experts' majority on the **bottom half** only (inside the AOI,
rasterised at 2.5 m as Nitze et al. 2024 measured the experts' agreement: mean 0.71 vs the
majority over the image), before and after, per seed; mean and spread per row. Results go
to ``--work/results.json`` after every run (``--resume`` keeps finished ones).

``--split right`` is the loop on ground the starting model has never seen: the model to
start from is trained first by ``retrain_model`` on the **left half** of the image only
(all rows; ``--base-method``, ``--base-steps``, seed 0), the review labels the **top-right**
quarter and the score is taken on the **bottom-right** quarter, where the slumps cover
1.3 % of the experts' area (6 small ones) against 8 % in the top half: a sparse scene, as
another region may be. ``--model`` is then not used. ``--accumulate`` reviews the left half
again together with the top-right quarter (everything reviewed so far).
Data: Nitze et al. 2024 RTS digitisation experiment (MIT); Copernicus Sentinel-2.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from osgeo import gdal, ogr, osr  # noqa: E402

from peel_reference import FINE, HOLDOUT_ROW, PeelReference  # noqa: E402

gdal.UseExceptions()
ogr.UseExceptions()
METHODS = {"pixeldino": 0, "supervised": 1}  # retrain_model's METHOD numbers


def qgis_run(alg: str, params: dict, env: dict) -> float:
    from support import run_qgis_process

    args = ["run", f"arctic_assist:{alg}", "--"] + [f"{k}={v}" for k, v in params.items()]
    t0 = time.time()
    proc = run_qgis_process(args, env, timeout=3600)
    secs = time.time() - t0
    print(
        f"$ qgis_process.bin {' '.join(args)}\n  -> exit {proc.returncode} in {secs:.0f} s",
        flush=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{alg} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return secs


def write_polygons(path: Path, mask: np.ndarray, grid, status: str = "accepted") -> Path:
    """Polygonise a 0/1 mask on ``grid`` to a GeoPackage with a 'status' field."""
    mem = gdal.GetDriverByName("MEM").Create("", mask.shape[1], mask.shape[0], 1, gdal.GDT_Byte)
    mem.SetGeoTransform(grid.GetGeoTransform())
    mem.SetProjection(grid.GetProjection())
    mem.GetRasterBand(1).WriteArray(mask.astype(np.uint8))
    srs = osr.SpatialReference(wkt=grid.GetProjection())
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("labels", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("value", ogr.OFTInteger))
    lyr.CreateField(ogr.FieldDefn("status", ogr.OFTString))
    band = mem.GetRasterBand(1)
    gdal.Polygonize(band, band, lyr, 0)
    lyr.ResetReading()
    for f in list(lyr):
        f.SetField("status", status)
        lyr.SetFeature(f)
    ds = None
    return path


Box = tuple[tuple[int, int], tuple[int, int]]  # (rows, columns) of the image, [start, end)


def aoi_box(path: Path, aoi: Path, raster: gdal.Dataset, boxes: list[Box]) -> Path:
    """The experts' AOI cut to the union of ``boxes`` of ``raster``."""
    gt = raster.GetGeoTransform()
    box = ogr.Geometry(ogr.wkbMultiPolygon)
    for rows, cols in boxes:
        x0, x1 = (gt[0] + c * gt[1] for c in cols)
        y0, y1 = (gt[3] + r * gt[5] for r in rows)
        box.AddGeometry(
            ogr.CreateGeometryFromWkt(
                f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
            )
        )
    box = box.UnionCascaded()
    src = ogr.Open(str(aoi))
    layer = src.GetLayer(0)
    srs = osr.SpatialReference(wkt=raster.GetProjection())
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lsrs = layer.GetSpatialRef()
    lsrs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    tr = None if lsrs.IsSame(srs) else osr.CoordinateTransformation(lsrs, srs)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    out = ds.CreateLayer("aoi", srs, ogr.wkbMultiPolygon)
    for f in layer:
        g = f.GetGeometryRef().Clone()
        if tr:
            g.Transform(tr)
        cut = g.Intersection(box)
        if cut and not cut.IsEmpty():
            of = ogr.Feature(out.GetLayerDefn())
            of.SetGeometry(ogr.ForceToMultiPolygon(cut))
            out.CreateFeature(of)
    ds = None
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument(
        "--model",
        default=str(ROOT / "models" / "rts_pixeldino_s2_bgrn.onnx"),
        help="the model detected with first and warm-started from",
    )
    p.add_argument(
        "--labels",
        nargs="+",
        default=["majority", "expert01"],
        help="majority and/or expertNN (one expert's polygons)",
    )
    p.add_argument(
        "--methods", nargs="+", default=["supervised", "pixeldino"], choices=sorted(METHODS)
    )
    p.add_argument("--start", nargs="+", default=["scratch"], choices=["scratch", "warm"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=300, help="retraining steps")
    p.add_argument("--chip-size", type=int, default=128)
    p.add_argument(
        "--split",
        default="rows",
        choices=["rows", "right"],
        help="rows: review the top half, score the bottom half; right: start from a model "
        "trained on the left half, review the top-right quarter, score the bottom-right",
    )
    p.add_argument(
        "--accumulate",
        action="store_true",
        help="with --split right: the review is the left half again plus the top-right "
        "quarter (everything reviewed so far), not the quarter alone",
    )
    p.add_argument("--base-method", default="pixeldino", choices=sorted(METHODS))
    p.add_argument("--base-steps", type=int, default=1500)
    p.add_argument("--work", default="build/bench_loop_peel")
    p.add_argument("--resume", action="store_true", help="keep finished runs of --work")
    a = p.parse_args(argv)
    peel = Path(a.data) / "rts" / "peel"
    raster_path = peel / "peel_s2_bgrn_10m.tif"
    experts = sorted(glob.glob(str(peel / "labels_by_expert" / "expert_*.shp")))
    if not raster_path.is_file() or not experts:
        print(f"skipped: {raster_path} or the experts' labels not found (shared data absent)")
        return 0
    if not Path(a.model).is_file():
        print(f"skipped: model {a.model} not found (make models-rts)")
        return 0
    from support import link_checkout_plugin, make_profile, qgis_env

    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    plugins = work / "plugins"
    if not plugins.exists():
        link_checkout_plugin(plugins)
    env = qgis_env(make_profile(work / "config"), plugins)
    store = work / "results.json"
    results = json.loads(store.read_text()) if (a.resume and store.is_file()) else []

    raster = gdal.Open(str(raster_path))
    ref = PeelReference.load(peel)
    grid, majority = ref.grid, ref.majority
    height, width = raster.RasterYSize, raster.RasterXSize
    mid = width // 2
    where = ref.inside & ref.bottom
    review: list[Box] = [((0, HOLDOUT_ROW), (0, width))]
    if a.split == "right":
        where = where.copy()
        where[:, : mid * FINE] = False
        review = [((0, HOLDOUT_ROW), (mid, width))]
        if a.accumulate:  # the base's ground reviewed again with the new quarter
            review.append(((0, height), (0, mid)))
        a.model = str(work / f"base_left_{a.base_method}_{a.base_steps}.onnx")
        if not Path(a.model).is_file():  # the model to start from: the left half only
            base_data = work / "data_base_left"
            if not (base_data / "manifest.json").is_file():
                left = aoi_box(
                    work / "aoi_left.gpkg",
                    peel / "peel_aoi.geojson",
                    raster,
                    [((0, height), (0, mid))],
                )
                qgis_run(
                    "export_training_data",
                    {
                        "LABELS": write_polygons(work / "majority.gpkg", majority, grid),
                        "RASTERS": raster_path,
                        "AOI": left,
                        "ONLY_REVIEWED": "false",
                        "CHIP_SIZE": a.chip_size,
                        "OUTPUT": base_data,
                    },
                    env,
                )
            base_s = qgis_run(
                "retrain_model",
                {
                    "DATA": base_data,
                    "TASK": 0,
                    "METHOD": METHODS[a.base_method],
                    "START": 2,
                    "STEPS": a.base_steps,
                    "DEVICE": 1,
                    "SEED": 0,
                    "OUTPUT": a.model,
                },
                env,
            )
            print(f"  the model to start from (left half): {base_s:.0f} s", flush=True)

    def score(gpkg: Path) -> float:
        return ref.score(gpkg, where)

    before = work / f"before_{Path(a.model).stem}.gpkg"
    if not before.is_file():
        qgis_run(
            "detect_thaw_slumps",
            {"INPUT": raster_path, "MODEL": a.model, "DEVICE": 1, "OUTPUT": before},
            env,
        )
    iou_before = score(before)
    tag_split = a.split + ("_accumulated" if a.accumulate else "")
    aoi = aoi_box(work / f"aoi_{tag_split}.gpkg", peel / "peel_aoi.geojson", raster, review)
    for labels in a.labels:
        if labels == "majority":
            lpath = write_polygons(work / "majority.gpkg", majority, grid)
        else:
            lpath = peel / "labels_by_expert" / f"expert_{labels.removeprefix('expert')}.shp"
        folder = work / (f"data_{labels}" if a.split == "rows" else f"data_{labels}_{tag_split}")
        if not (folder / "manifest.json").is_file():
            qgis_run(
                "export_training_data",
                {
                    "LABELS": lpath,
                    "RASTERS": raster_path,
                    "AOI": aoi,
                    "ONLY_REVIEWED": "false",
                    "CHIP_SIZE": a.chip_size,
                    "OUTPUT": folder,
                },
                env,
            )
        for start in a.start:
            for method in a.methods:
                for seed in a.seeds:
                    key = dict(
                        labels=labels,
                        start=start,
                        method=method,
                        seed=seed,
                        steps=a.steps,
                        split=tag_split,
                    )
                    if any(
                        all(r.get(k, "rows" if k == "split" else None) == v for k, v in key.items())
                        for r in results
                    ):
                        continue
                    tag = f"{labels}_{start}_{method}_s{seed}" + (
                        "" if a.split == "rows" else f"_{tag_split}"
                    )
                    model = work / f"{tag}.onnx"
                    after = work / f"{tag}.gpkg"
                    params = {
                        "DATA": folder,
                        "TASK": 0,
                        "METHOD": METHODS[method],
                        "STEPS": a.steps,
                        "DEVICE": 1,
                        "SEED": seed,
                        "OUTPUT": model,
                    }
                    if start == "warm":
                        params["BASE_MODEL"] = a.model
                    else:  # START: scratch
                        params["START"] = 2
                    secs = qgis_run("retrain_model", params, env)
                    after.unlink(missing_ok=True)
                    qgis_run(
                        "detect_thaw_slumps",
                        {"INPUT": raster_path, "MODEL": model, "DEVICE": 1, "OUTPUT": after},
                        env,
                    )
                    res = {
                        **key,
                        "retrain_s": round(secs, 1),
                        "iou_before": iou_before,
                        "iou_after": score(after),
                    }
                    print(
                        f"  {tag}: bottom-half IoU {iou_before:.3f} -> {res['iou_after']:.3f}"
                        f" (retrain {secs:.0f} s)",
                        flush=True,
                    )
                    results.append(res)
                    store.write_text(json.dumps(results, indent=1))
    print(
        f"\n{'Bottom-right quarter' if a.split == 'right' else 'Bottom half'} of Peel (never "
        f"trained on), IoU vs the experts' majority at 2.5 m; model before: {iou_before:.3f}"
    )
    rows: dict[tuple, list] = {}
    for r in results:
        if r.get("steps") == a.steps and r.get("split", "rows") == tag_split:
            rows.setdefault((r["labels"], r["start"], r["method"]), []).append(r)
    for (labels, start, method), rs in sorted(rows.items()):
        v = [r["iou_after"] for r in rs]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        print(
            f"  {labels:9s} {start:7s} {method:10s} {statistics.mean(v):.3f} +- {sd:.3f} "
            f"(seeds {', '.join(str(r['seed']) for r in rs)}: "
            f"{' / '.join(f'{x:.3f}' for x in v)}), retrain "
            f"{statistics.mean(r['retrain_s'] for r in rs):.0f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
