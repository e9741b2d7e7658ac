"""Synthetic Sentinel-2-like scenes with retrogressive-thaw-slump-like objects.

Four bands (B2, B3, B4, B8) as uint16 DN (reflectance x 10000, 0 = nodata), EPSG:32608,
10 m pixels. Regions differ in ways the strong augmentation does not undo (it acts on all
bands alike and on geometry only): per-band spectral gains, haze (band-dependent additive
path radiance), texture scale of the land cover, vegetation density and water.

- RTS: an amphitheatre (semicircular headwall upslope, scar tapering downslope to the mouth)
  with a bright headwall rim, a wet bare interior with flow lines, a debris lobe;
  the label covers rim + interior.
- Confounders: patches with the RTS interior spectrum but not its shape or rim (gravel
  bars, bare round patches, strips).

The region table is fixed in advance (not tuned to any method).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BANDS = ("B2", "B3", "B4", "B8")
EPSG = 32608
PIXEL = 10.0

# reflectance x 10000 per band (B2, B3, B4, B8)
VEG = np.array([380, 620, 430, 2900.0])
SOIL = np.array([850, 1050, 1250, 2100.0])
WET = np.array([720, 860, 960, 1350.0])
RIM = np.array([1350, 1550, 1750, 2350.0])
LOBE = np.array([900, 1050, 1150, 1650.0])
WATER = np.array([520, 500, 340, 180.0])
HAZE = np.array([420, 300, 200, 90.0])


@dataclass(frozen=True)
class RegionStyle:
    name: str
    gains: tuple[float, float, float, float] = (1, 1, 1, 1)
    haze: float = 0.0
    texture_px: float = 16.0
    vegetation: float = 0.7
    water: float = 0.08
    rts_per_km2: float = 2.5
    confounders_per_km2: float = 3.0


REGIONS = {
    "A": RegionStyle("A", (1.00, 1.00, 1.00, 1.00), 0.00, 16, 0.70, 0.06),
    "B": RegionStyle("B", (1.10, 1.05, 1.00, 0.90), 0.10, 24, 0.60, 0.10),
    "C": RegionStyle("C", (0.90, 0.95, 1.05, 1.10), 0.00, 12, 0.80, 0.04),
    # held-out targets
    "D": RegionStyle("D", (1.20, 1.10, 0.95, 0.75), 0.35, 32, 0.45, 0.12),
    "E": RegionStyle("E", (0.85, 0.90, 1.15, 1.20), 0.15, 8, 0.85, 0.05),
}
SOURCE_REGIONS = ("A", "B", "C")
TARGET_REGIONS = ("D", "E")


def _smooth_noise(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Smooth random field in [0, 1] with features about ``scale`` pixels wide."""
    from scipy.ndimage import zoom  # scipy ships with the venv

    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    f = zoom(rng.random((gh, gw)), (h / gh * 1.0001, w / gw * 1.0001), order=3)[:h, :w]
    f = (f - f.min()) / max(1e-6, f.max() - f.min())
    return f


def _amphitheatre(h: int, w: int, cx: float, cy: float, r: float, phi: float):
    """(interior, rim, lobe) boolean masks of one slump; phi = downslope direction."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    u = (xx - cx) * math.cos(phi) + (yy - cy) * math.sin(phi)  # downslope
    v = -(xx - cx) * math.sin(phi) + (yy - cy) * math.cos(phi)  # across slope
    L = 1.3 * r
    half = np.where(
        u < 0, r * np.sqrt(np.clip(1 - (u / r) ** 2, 0, 1)), r * (1 - 0.45 * np.clip(u / L, 0, 1))
    )
    inside = (u >= -r) & (u <= L) & (np.abs(v) <= half)
    dist_back = np.sqrt(u**2 + v**2)
    rim = inside & (u < 0.2 * r) & (dist_back >= r - 1.6)
    lobe = (u > L) & (u <= L + 0.5 * r) & (np.abs(v) <= 0.55 * r * (1 - (u - L) / (0.5 * r)))
    return inside & ~rim, rim, lobe, u, v


def make_scene(style: RegionStyle, size: int = 192, seed: int = 0):
    """One scene: (raw uint16 4 x H x W, label mask uint8 H x W, info dict)."""
    rng = np.random.default_rng(seed)
    h = w = int(size)
    # land cover: vegetation fraction from a smooth field, density per region
    f = _smooth_noise(rng, h, w, style.texture_px)
    f2 = _smooth_noise(rng, h, w, style.texture_px / 3)
    veg = np.clip(style.vegetation + 0.6 * (f - 0.5) + 0.25 * (f2 - 0.5), 0, 1)
    img = veg[None] * VEG[:, None, None] + (1 - veg[None]) * SOIL[:, None, None]
    water = _smooth_noise(rng, h, w, style.texture_px * 2.5) > 1 - style.water
    img[:, water] = WATER[:, None]
    label = np.zeros((h, w), np.uint8)
    area_km2 = h * w * (PIXEL / 1000) ** 2
    n_rts = rng.poisson(style.rts_per_km2 * area_km2)
    n_conf = rng.poisson(style.confounders_per_km2 * area_km2)
    for _ in range(n_rts):
        r = rng.uniform(5, 13)
        cx, cy = rng.uniform(r + 2, w - r - 2), rng.uniform(r + 2, h - r - 2)
        if water[int(cy), int(cx)]:
            continue
        phi = rng.uniform(0, 2 * math.pi)
        interior, rim, lobe, u, v = _amphitheatre(h, w, cx, cy, r, phi)
        flow = 1 + 0.08 * np.sin(v * 1.3 + rng.uniform(0, 6)) + 0.04 * rng.standard_normal((h, w))
        img[:, interior] = WET[:, None] * flow[interior][None]
        img[:, lobe] = 0.5 * img[:, lobe] + 0.5 * LOBE[:, None]
        img[:, rim] = RIM[:, None] * (1 + 0.05 * rng.standard_normal(int(rim.sum())))[None]
        label[interior | rim] = 1
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    for _ in range(n_conf):
        kind = rng.integers(0, 3)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        a = rng.uniform(0, math.pi)
        du = (xx - cx) * math.cos(a) + (yy - cy) * math.sin(a)
        dv = -(xx - cx) * math.sin(a) + (yy - cy) * math.cos(a)
        if kind == 0:  # elongated gravel bar
            m = (du / rng.uniform(12, 25)) ** 2 + (dv / rng.uniform(2, 4)) ** 2 <= 1
        elif kind == 1:  # round bare patch
            rr = rng.uniform(4, 9)
            m = du**2 + dv**2 <= rr**2
        else:  # straight strip (track, cut line)
            m = (np.abs(dv) <= rng.uniform(1, 2.5)) & (np.abs(du) <= rng.uniform(15, 40))
        m &= label == 0
        img[:, m] = WET[:, None] * (1 + 0.05 * rng.standard_normal(int(m.sum())))[None]
    # sensor noise, then the region's radiometry: gains and haze
    img = img * (1 + 0.03 * rng.standard_normal(img.shape))
    img = img * np.asarray(style.gains)[:, None, None] + style.haze * HAZE[:, None, None]
    raw = np.clip(np.round(img), 1, 10000).astype(np.uint16)
    return raw, label, {"region": style.name, "n_rts": int(label.any() and n_rts), "seed": seed}


def geotransform(scene_index: int, size: int) -> tuple[float, ...]:
    x0 = 450000.0 + scene_index * (size + 20) * PIXEL
    return (x0, PIXEL, 0.0, 7600000.0, 0.0, -PIXEL)


def write_scene(
    out_dir: str | Path, name: str, raw: np.ndarray, label: np.ndarray, gt: tuple[float, ...]
) -> tuple[Path, Path]:
    """Write ``name.tif`` (4 x uint16, nodata 0) and ``name_labels.gpkg`` (RTS polygons)."""
    from osgeo import ogr, osr
    from ..io.raster import _gdal, write_geotiff

    gdal = _gdal()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    tif = out / f"{name}.tif"
    write_geotiff(tif, raw, gt, srs.ExportToWkt(), 0, BANDS)
    gpkg = out / f"{name}_labels.gpkg"
    if gpkg.exists():
        gpkg.unlink()
    mem = gdal.GetDriverByName("MEM").Create("", label.shape[1], label.shape[0], 1, gdal.GDT_Byte)
    mem.SetGeoTransform(gt)
    mem.SetProjection(srs.ExportToWkt())
    mem.GetRasterBand(1).WriteArray(label)
    vds = ogr.GetDriverByName("GPKG").CreateDataSource(str(gpkg))
    layer = vds.CreateLayer("rts", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("value", ogr.OFTInteger))
    band = mem.GetRasterBand(1)
    gdal.Polygonize(band, band, layer, 0, [], callback=None)
    vds = None
    return tif, gpkg


def generate(
    out_dir: str | Path, regions: dict[str, int] | None = None, size: int = 192, seed: int = 0
) -> dict[str, list[dict[str, str]]]:
    """Scenes for each region (``{region: n_scenes}``); returns {region: [{tif, labels}]}.

    Also writes ``scenes.json`` listing them.
    """
    regions = regions or {r: 2 for r in REGIONS}
    out = Path(out_dir)
    index: dict[str, list[dict[str, str]]] = {}
    k = 0
    for ri, (name, n) in enumerate(regions.items()):
        style = REGIONS[name]
        for i in range(n):
            raw, label, _ = make_scene(style, size, seed=seed * 100003 + ri * 1009 + i)
            tif, gpkg = write_scene(out, f"{name}_{i:02d}", raw, label, geotransform(k, size))
            index.setdefault(name, []).append({"tif": str(tif), "labels": str(gpkg)})
            k += 1
    (out / "scenes.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m arctic_assist.training.synthetic")
    p.add_argument("--out", required=True)
    p.add_argument("--scenes", type=int, default=2, help="scenes per region")
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    idx = generate(a.out, {r: a.scenes for r in REGIONS}, a.size, a.seed)
    print(json.dumps({"event": "done", "output": a.out, "regions": list(idx)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
