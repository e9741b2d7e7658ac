"""Thaw-slump models under another scene's radiometry: Peel's held-out half, levels changed.

    python benchmarks/bench_rts_shift.py [--models models/rts_pixeldino_s2_bgrn.onnx OLD.onnx]

A model trained on one scene can learn that scene's absolute levels. Another scene differs
by atmosphere (haze adds), sun and season (gains), sensor and processing (offsets): the
same ground then arrives with other values. This benchmark writes the Peel Sentinel-2 crop
again with its raw values changed (whole image, every band; a change per band where
named), runs detection as the plugin runs it (``run_detection``, each model's own
threshold, the default clean-up) and scores the bottom half (never trained on) against the
12 experts' majority at 2.5 m, side by side for every model:

- ``x0.8`` / ``x1.25``: every value times 0.8 / 1.25;
- ``+300`` / ``-200``: every value plus 300 / minus 200 (reflectance x 10 000: +-0.02-0.03);
- ``haze``: ``0.85 x + 400`` (a hazier, darker-surfaced scene);
- ``nir x1.15``: the NIR band alone times 1.15 (greener vegetation, another season);
- ``blue +250``: the blue band alone plus 250 (scattering is strongest in blue).

The mean over the changed images is the number to compare; ``orig`` is Peel as it is.
Numbers, not pass/fail. Data: Nitze et al. 2024 (MIT); Copernicus Sentinel-2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from osgeo import gdal  # noqa: E402

from arctic_assist.io.detect import DetectRequest, run_detection  # noqa: E402
from arctic_assist.io.training_data import rasterize_polygons  # noqa: E402
from peel_reference import PeelReference, iou  # noqa: E402

gdal.UseExceptions()

BANDS = {"blue": 0, "green": 1, "red": 2, "nir": 3}


def _band(name: str, fn):
    def change(a: np.ndarray) -> np.ndarray:
        out = a.copy()
        out[BANDS[name]] = fn(a[BANDS[name]])
        return out

    return change


#: name -> change of the raw values (float64, bands x rows x cols)
SHIFTS = {
    "orig": lambda a: a,
    "x0.8": lambda a: a * 0.8,
    "x1.25": lambda a: a * 1.25,
    "+300": lambda a: a + 300.0,
    "-200": lambda a: a - 200.0,
    "haze": lambda a: a * 0.85 + 400.0,
    "nir x1.15": _band("nir", lambda b: b * 1.15),
    "blue +250": _band("blue", lambda b: b + 250.0),
}


def write_changed(src: gdal.Dataset, raw: np.ndarray, fn, path: Path) -> Path:
    """``src`` written to ``path`` with its values changed by ``fn``; nodata (0) kept."""
    out = np.where(raw > 0, np.clip(np.rint(fn(raw)), 1, 65535), 0).astype(np.uint16)
    ds = gdal.GetDriverByName("GTiff").CreateCopy(str(path), src)
    for b in range(out.shape[0]):
        ds.GetRasterBand(b + 1).WriteArray(out[b])
    ds = None
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument(
        "--models", nargs="+", default=[str(ROOT / "models" / "rts_pixeldino_s2_bgrn.onnx")]
    )
    p.add_argument("--shifts", nargs="+", default=list(SHIFTS), choices=list(SHIFTS))
    p.add_argument("--json-out", default=None)
    a = p.parse_args(argv)
    peel = Path(a.data) / "rts" / "peel"
    raster = peel / "peel_s2_bgrn_10m.tif"
    if not raster.is_file():
        print(f"skipped: {raster} not found (shared data absent)")
        return 0
    ref = PeelReference.load(peel)
    src = gdal.Open(str(raster))
    raw = src.ReadAsArray().astype(np.float64)
    work = Path(tempfile.mkdtemp(prefix="bench_rts_shift_"))
    rows = {m: {} for m in a.models}
    for si, name in enumerate(a.shifts):
        image = write_changed(src, raw, SHIFTS[name], work / f"shift_{si}.tif")
        for mi, model in enumerate(a.models):
            out = work / f"det_{si}_{mi}.gpkg"
            run_detection(DetectRequest(str(image), model, str(out), device="cpu"))
            pred = rasterize_polygons(out, ref.grid)
            rows[model][name] = iou(pred, ref.majority, ref.inside & ref.bottom)
            print(f"{name:10s} {Path(model).name}: {rows[model][name]:.3f}", flush=True)
    changed = [s for s in a.shifts if s != "orig"]
    print("\nmodel | " + " | ".join(a.shifts) + " | mean of the changed")
    for model, r in rows.items():
        vals = [0.0 if np.isnan(r[s]) else r[s] for s in changed]
        r["mean_changed"] = float(np.mean(vals)) if vals else None
        cells = " | ".join(f"{r[s]:.3f}" for s in a.shifts)
        print(f"{model} | {cells} | {r['mean_changed']:.3f}" if vals else f"{model} | {cells}")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
