"""COBRA calving-front tracing on real data: Harald Moltke Brae (NW Greenland).

    python benchmarks/bench_cobra.py [--model models/calving_front_cobra.onnx]
                                     [--data ../shared/data] [--png docs/images/x.png]

Runs :func:`arctic_assist.io.trace.run_tracing` inside the rectilinear box (EPSG:3413) on the
Landsat basemap (EPSG:32620), compares the traced front with each of the 159 dated
reference fronts (EPSG:3413) with :func:`arctic_assist.io.front_distance.front_distance`,
times the tracing, and renders a PNG (basemap crop, box, snake iterations, traced front, nearest
reference). Numbers, not pass/fail. Data: Loebel et al. (rectilinear box method, MIT),
Landsat (public domain).
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

from osgeo import gdal, ogr  # noqa: E402

from arctic_assist.core import contour as C  # noqa: E402
from arctic_assist.io.front_distance import front_distance  # noqa: E402
from arctic_assist.io.trace import TraceRequest, run_tracing  # noqa: E402

gdal.UseExceptions()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "models" / "calving_front_cobra.onnx"))
    p.add_argument("--data", default=os.environ.get("DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--png", default="/tmp/cobra_harald_moltke_brae.png")
    p.add_argument("--out", default=None, help="GeoPackage of the traced front (default: tmp)")
    p.add_argument("--repeat", type=int, default=3, help="timing repetitions")
    p.add_argument("--demo", action="store_true", help="(kept for make cobra-demo)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON only")
    p.add_argument(
        "--box-scale",
        type=float,
        default=1.0,
        help="trace in the reference box scaled about its centroid (e.g. 1.3: more context)",
    )
    p.add_argument(
        "--refine",
        type=int,
        default=C.REFINE_PASSES,
        help="refinement passes on crops around the front (the plugin's REFINE; 0: the "
        "model's answer on the box as drawn)",
    )
    p.add_argument(
        "--no-mirror",
        action="store_true",
        help="trace one orientation only (the plugin's MIRROR off)",
    )
    p.add_argument(
        "--snap",
        type=float,
        default=C.SNAP_RADIUS,
        help="the plugin's SNAP: vertices moved onto the nearest image edge, at most this "
        "many model pixels (0: off)",
    )
    p.add_argument(
        "--qgis-process",
        action="store_true",
        help="also trace and measure through qgis_process (the headless plugin)",
    )
    args = p.parse_args(argv)
    hmb = Path(args.data) / "calving" / "harald_moltke_brae"
    raster = hmb / "basemap" / "harald_moltke_brae.tif"
    box = hmb / "box" / "harald_moltke_brae.shp"
    if not raster.is_file():
        print(f"skipped: {raster} not found (shared data absent)")
        return 0
    if not Path(args.model).is_file():
        print(f"skipped: model {args.model} not found (make models-cobra)")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench_cobra_"))
    if args.box_scale != 1.0:
        box = scaled_box(box, args.box_scale, tmp / "box_scaled.gpkg")
    out = Path(args.out) if args.out else tmp / "front.gpkg"
    its = tmp / "iterations.gpkg"
    times = []
    for _ in range(max(args.repeat, 1)):
        for f in (out, its):
            if f.exists():
                f.unlink()
        t0 = time.perf_counter()
        res = run_tracing(
            TraceRequest(
                str(raster),
                args.model,
                str(box),
                str(out),
                iterations_path=str(its),
                run_id="bench",
                refine_passes=args.refine,
                mirror=not args.no_mirror,
                snap=args.snap,
            )
        )
        times.append(time.perf_counter() - t0)
    f = res.fronts[0]
    refs = sorted(glob.glob(str(hmb / "lines" / "harald_moltke_brae" / "*" / "*.shp")))
    dists = {}
    for ref in refs:
        date = Path(ref).parent.name
        dists[date] = front_distance(str(out), ref).mean_m
    best = min(dists, key=dists.get)
    vals = sorted(dists.values())
    numbers = {
        "model": f"{res.model_name} {res.model_version}",
        "refine_passes": args.refine,
        "mirror": not args.no_mirror,
        "snap_px": args.snap,
        "box_scale": args.box_scale,
        "provider": res.provider,
        "window_px": list(f.window),
        "length_m": round(f.length_m, 1),
        "self_intersections": C.self_intersections(f.map_xy),
        "convergence_m": round(f.convergence_m, 2),
        "trace_time_s_median": round(sorted(times)[len(times) // 2], 3),
        "reference_dates": len(dists),
        "nearest_date": best,
        "nearest_date_distance_m": round(dists[best], 1),
        "distance_m_min": round(vals[0], 1),
        "distance_m_median": round(vals[len(vals) // 2], 1),
        "distance_m_max": round(vals[-1], 1),
    }
    # the front visible in this image, from a plain ice/water threshold inside the box (the
    # basemap's date is unknown and its front lies away from all 2019-2021 references)
    visible = tmp / "visible_front.gpkg"
    if image_front(raster, box, res.fronts[0], visible):
        numbers["distance_to_threshold_front_m"] = round(
            front_distance(str(out), str(visible)).mean_m, 1
        )
    render(
        raster,
        box,
        its,
        out,
        refs[list(dists).index(best)],
        Path(args.png),
        visible if visible.exists() else None,
    )
    numbers["png"] = args.png
    if args.qgis_process:
        numbers.update(
            through_qgis_process(
                raster,
                box,
                Path(args.model),
                refs[list(dists).index(best)],
                tmp,
                args.refine,
                not args.no_mirror,
                args.snap,
            )
        )
    if args.json:
        print(json.dumps(numbers))
    else:
        for k, v in numbers.items():
            print(f"{k:>26}: {v}")
    return 0


def scaled_box(box: Path, scale: float, out: Path) -> Path:
    """The first polygon of ``box`` scaled by ``scale`` about its centroid, as a GeoPackage."""
    from osgeo import ogr

    src = ogr.Open(str(box))
    layer = src.GetLayer(0)
    feature = layer.GetNextFeature()  # kept alive while its geometry is cloned
    geom = feature.GetGeometryRef().Clone()
    c = geom.Centroid()
    ring = geom.GetGeometryRef(0)
    pts = [
        (c.GetX() + scale * (ring.GetX(i) - c.GetX()), c.GetY() + scale * (ring.GetY(i) - c.GetY()))
        for i in range(ring.GetPointCount())
    ]
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(out))
    lyr = ds.CreateLayer("box", layer.GetSpatialRef(), ogr.wkbPolygon)
    feat = ogr.Feature(lyr.GetLayerDefn())
    feat.SetGeometry(
        ogr.CreateGeometryFromWkt("POLYGON((" + ",".join(f"{x} {y}" for x, y in pts) + "))")
    )
    lyr.CreateFeature(feat)
    ds = src = None
    return out


def through_qgis_process(
    raster: Path,
    box: Path,
    model: Path,
    reference: str,
    tmp: Path,
    refine: int,
    mirror: bool = True,
    snap: float = C.SNAP_RADIUS,
) -> dict:
    """``qgis_process.bin run arctic_assist:trace_calving_front`` in the box, then
    ``arctic_assist:front_distance`` to ``reference``, against a throw-away profile."""
    import re
    import subprocess

    sys.path.insert(0, str(ROOT / "tests"))
    from support import QGIS_PROCESS, link_checkout_plugin, make_profile, qgis_env

    plugins = tmp / "qp_plugins"
    link_checkout_plugin(plugins)
    env = qgis_env(make_profile(tmp / "qp_config"), plugins)
    out = tmp / "qgis_process_front.gpkg"
    t0 = time.perf_counter()
    runs = [
        [
            "arctic_assist:trace_calving_front",
            f"INPUT={raster}",
            f"AOI={box}",
            f"MODEL={model}",
            "DEVICE=1",
            f"REFINE={refine}",
            f"MIRROR={str(mirror).lower()}",
            f"SNAP={snap:g}",
            f"OUTPUT={out}",
        ],  # DEVICE 1 = cpu
        ["arctic_assist:front_distance", f"INPUT={out}", f"REFERENCE={reference}"],
    ]
    texts = []
    for args in runs:
        proc = subprocess.run(
            [QGIS_PROCESS, "run", args[0], "--", *args[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise SystemExit(f"qgis_process {args[0]} failed:\n{proc.stdout}\n{proc.stderr}")
        texts.append(proc.stdout)
    m = re.search(r"MEAN_DISTANCE:\s*([-0-9.eE+]+)", texts[1])
    return {
        "qgis_process_seconds": round(time.perf_counter() - t0, 1),
        "qgis_process_distance_m": round(float(m.group(1)), 1) if m else None,
    }


def image_front(raster: Path, box: Path, traced, out: Path) -> bool:
    """Ice/water boundary inside the box by an Otsu threshold (a rough, independent
    estimate of the front visible in this image), written to ``out`` (raster CRS)."""
    import numpy as np
    from osgeo import osr

    from arctic_assist.core import contour as C
    from arctic_assist.io.trace import read_window
    from arctic_assist.training.fronts import mask_to_polyline

    src = gdal.Open(str(raster))
    srs = osr.SpatialReference(wkt=src.GetProjection())
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    gt, (w, h) = traced.geotransform, traced.window
    arr, valid = read_window(src, [1], srs, gt, w, h, abs(src.GetGeoTransform()[1]), 1.0)
    x = arr[0][valid]
    hist, edges = np.histogram(x, 256)
    p = hist / hist.sum()
    om = np.cumsum(p)
    mu = np.cumsum(p * edges[:-1])
    between = (mu[-1] * om - mu) ** 2 / np.maximum(om * (1 - om), 1e-12)
    thr = edges[int(np.nanargmax(between))]
    ice = (arr[0] > thr) & valid
    # boundary pixels: ice with a water 4-neighbour, away from the window border
    water = (~ice) & valid
    b = np.zeros_like(ice)
    b[1:-1, 1:-1] = ice[1:-1, 1:-1] & (
        water[:-2, 1:-1] | water[2:, 1:-1] | water[1:-1, :-2] | water[1:-1, 2:]
    )
    if b.sum() < 10:
        return False
    line = mask_to_polyline(b)
    m = C.pixel_to_map(line, gt)
    drv = ogr.GetDriverByName("GPKG")
    ds = drv.CreateDataSource(str(out))
    lyr = ds.CreateLayer("visible_front", srs=srs, geom_type=ogr.wkbLineString)
    g = ogr.Geometry(ogr.wkbLineString)
    for px, py in m:
        g.AddPoint_2D(float(px), float(py))
    f = ogr.Feature(lyr.GetLayerDefn())
    f.SetGeometry(g)
    lyr.CreateFeature(f)
    ds = None
    return True


def render(
    raster: Path,
    box: Path,
    its: Path,
    front: Path,
    ref: str,
    png: Path,
    visible: Path | None = None,
) -> None:
    """Basemap crop around the box with the box (blue), the iterations (orange), the
    nearest reference front (green), the threshold front (cyan) and the traced front
    (red)."""
    from arctic_assist.io import quicklook

    ds = ogr.Open(str(box))
    lyr = ds.GetLayer(0)
    from osgeo import osr

    src = gdal.Open(str(raster))
    rs = osr.SpatialReference(wkt=src.GetProjection())
    rs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    bs = lyr.GetSpatialRef()
    bs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    feat = lyr.GetNextFeature()
    g = feat.GetGeometryRef().Clone()
    g.Transform(osr.CoordinateTransformation(bs, rs))
    x0, x1, y0, y1 = g.GetEnvelope()
    pad = 0.15 * max(x1 - x0, y1 - y0)
    crop = png.with_suffix(".crop.tif")
    gdal.Translate(str(crop), src, projWin=[x0 - pad, y1 + pad, x1 + pad, y0 - pad])
    png.parent.mkdir(parents=True, exist_ok=True)
    quicklook.render(
        crop,
        png,
        bands=(1,),
        max_size=900,
        line_width=2,
        overlays=[(box, (60, 120, 255)), (its, (255, 170, 0)), (ref, (0, 220, 0))]
        + ([(visible, (0, 230, 230))] if visible else [])
        + [(front, (255, 0, 0))],
    )
    crop.unlink()


if __name__ == "__main__":
    sys.exit(main())
