"""The Peel scoring reference shared by the thaw-slump benchmarks (not a benchmark itself).

The 12 experts' majority vote and their AOI rasterised on a 2.5 m grid (the 10 m image
supersampled 4 x), as Nitze et al. 2024 measured the experts' agreement, and the held-out
bottom half (rows >= 128 of the 251-row crop, never trained on by ``make models-rts`` or the
loop benchmark). Data: Nitze et al. 2024 RTS digitisation experiment (MIT).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

from arctic_assist.io.training_data import rasterize_polygons, supersampled_grid

FINE = 4  # 10 m / 4 = 2.5 m
HOLDOUT_ROW = 128  # the Peel crop is 251 px high: rows >= 128 are held out


def peel_folder(data: str | Path) -> Path | None:
    """``DATA/rts/peel``, or None (after printing why the benchmark is skipped) when the
    Peel image is not there."""
    peel = Path(data) / "rts" / "peel"
    raster = peel / "peel_s2_bgrn_10m.tif"
    if not raster.is_file():
        print(f"skipped: {raster} not found (shared data absent)")
        return None
    return peel


def iou(pred: np.ndarray, truth: np.ndarray, inside: np.ndarray) -> float:
    """Pixel IoU of two masks inside ``inside`` (nan when both are empty there)."""
    p, t = pred.astype(bool) & inside, truth.astype(bool) & inside
    union = (p | t).sum()
    return float((p & t).sum() / union) if union else float("nan")


@dataclass
class PeelReference:
    grid: gdal.Dataset  # the 2.5 m grid of the Peel image
    inside: np.ndarray  # the experts' AOI
    majority: np.ndarray  # more than half of the 12 experts
    bottom: np.ndarray  # rows >= HOLDOUT_ROW of the 10 m image
    n_experts: int

    @classmethod
    def load(cls, peel: Path) -> PeelReference:
        grid = supersampled_grid(gdal.Open(str(peel / "peel_s2_bgrn_10m.tif")), FINE)
        experts = sorted(glob.glob(str(peel / "labels_by_expert" / "expert_*.shp")))
        votes = sum(rasterize_polygons(e, grid).astype(np.int32) for e in experts)
        inside = rasterize_polygons(peel / "peel_aoi.geojson", grid).astype(bool)
        bottom = np.zeros_like(inside)
        bottom[HOLDOUT_ROW * FINE :] = True
        return cls(grid, inside, votes * 2 > len(experts), bottom, len(experts))

    def score(self, gpkg: str | Path, where: np.ndarray | None = None) -> float:
        """IoU of a polygon file against the majority (default: the held-out bottom half)."""
        where = self.inside & self.bottom if where is None else where
        return iou(rasterize_polygons(gpkg, self.grid), self.majority, where)
