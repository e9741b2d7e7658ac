"""Thaw-slump models under another scene's radiometry: Peel's held-out half, levels changed.

    python benchmarks/bench_rts_shift.py [--models models/rts_pixeldino_s2_bgrn.onnx OLD.onnx]

A model trained on one scene can learn that scene's absolute levels. Another scene differs
by atmosphere (haze adds), sun and season (gains), sensor and processing (offsets): the
same ground then arrives with other values. This benchmark writes the Peel Sentinel-2 crop
again with its raw values changed (whole image, every band; a change per band where
named), runs detection as the plugin runs it (``run_detection``, each model's own
threshold, the default clean-up; with scene adaptation ``--adapt auto`` and without,
``never``, side by side) and scores the bottom half (never trained on) against the
12 experts' majority at 2.5 m, side by side for every model:

- ``x0.8`` / ``x1.25``: every value times 0.8 / 1.25;
- ``+300`` / ``-200``: every value plus 300 / minus 200 (reflectance x 10 000: +-0.02-0.03);
- ``haze``: ``0.85 x + 400`` (a hazier, darker-surfaced scene);
- ``nir x1.15``: the NIR band alone times 1.15 (greener vegetation, another season);
- ``blue +250``: the blue band alone plus 250 (scattering is strongest in blue);
- ``lakes 20%``: a fifth of the image turned into lakes (dark water, random ellipses in
  the top half, never scored; thermokarst lakes are everywhere in permafrost scenes): the
  same light, another composition, which an adaptation must not mistake for light;
- ``lakes 20% x1.25``: both;
- ``clouds 15%``: thick bright cloud over 15 % of the image (top half);
- ``+1000``: Sentinel-2's processing-baseline offset (L1C from 2022 on, read from the
  SAFE without subtracting it).

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
from peel_reference import PeelReference, iou, peel_folder  # noqa: E402

gdal.UseExceptions()

BANDS = {"blue": 0, "green": 1, "red": 2, "nir": 3}


def _band(name: str, fn):
    def change(a: np.ndarray) -> np.ndarray:
        out = a.copy()
        out[BANDS[name]] = fn(a[BANDS[name]])
        return out

    return change


#: water in Sentinel-2 B2, B3, B4, B8 (DN): dark, darkest in NIR
WATER = (700.0, 550.0, 350.0, 150.0)
#: thick cloud: bright in every band
CLOUD = (6500.0, 6300.0, 6200.0, 6600.0)


def lakes(share: float, seed: int = 0, surface=WATER):
    """``share`` of the image covered by ``surface`` (ellipses in rows < 128 only, never
    scored), fixed by ``seed``."""

    def change(a: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0 : a.shape[1], 0 : a.shape[2]]
        m = np.zeros(a.shape[1:], bool)
        while m.mean() < share:
            cy, cx = rng.integers(0, 120), rng.integers(0, a.shape[2])
            ry, rx = rng.integers(5, 25, 2)
            m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
            m[128:] = False
        out = a.copy()
        for b, w in enumerate(surface):
            out[b][m] = w * (1 + 0.05 * rng.standard_normal(int(m.sum())))
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
    "lakes 20%": lakes(0.2),
    "lakes 20% x1.25": lambda a: lakes(0.2)(a) * 1.25,
    "clouds 15%": lakes(0.15, seed=1, surface=CLOUD),
    "+1000": lambda a: a + 1000.0,
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
    p.add_argument(
        "--adapt",
        nargs="+",
        default=["auto", "never"],
        choices=["auto", "always", "never"],
        help="detection's scene adaptation modes, each model run in each (ADAPT)",
    )
    p.add_argument("--json-out", default=None)
    a = p.parse_args(argv)
    peel = peel_folder(a.data)
    if peel is None:
        return 0
    raster = peel / "peel_s2_bgrn_10m.tif"
    ref = PeelReference.load(peel)
    src = gdal.Open(str(raster))
    raw = src.ReadAsArray().astype(np.float64)
    work = Path(tempfile.mkdtemp(prefix="bench_rts_shift_"))
    runs = [(m, mode) for m in a.models for mode in a.adapt]
    rows: dict[str, dict] = {f"{m} [ADAPT={mode}]": {} for m, mode in runs}
    for si, name in enumerate(a.shifts):
        image = write_changed(src, raw, SHIFTS[name], work / f"shift_{si}.tif")
        for ri, (model, mode) in enumerate(runs):
            out = work / f"det_{si}_{ri}.gpkg"
            run_detection(DetectRequest(str(image), model, str(out), device="cpu", adapt=mode))
            pred = rasterize_polygons(out, ref.grid)
            key = f"{model} [ADAPT={mode}]"
            rows[key][name] = iou(pred, ref.majority, ref.inside & ref.bottom)
            print(
                f"{name:16s} {Path(model).name} [ADAPT={mode}]: {rows[key][name]:.3f}", flush=True
            )
    changed = [s for s in a.shifts if s != "orig"]
    print("\nmodel | " + " | ".join(a.shifts) + " | mean of the changed")
    for key, r in rows.items():
        vals = [0.0 if np.isnan(r[s]) else r[s] for s in changed]
        r["mean_changed"] = float(np.mean(vals)) if vals else None
        cells = " | ".join(f"{r[s]:.3f}" for s in a.shifts)
        print(f"{key} | {cells} | {r['mean_changed']:.3f}" if vals else f"{key} | {cells}")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
