"""The trainers' side of training-data folders: loading (folders and the packed ``.npz``
form), the random tile sampler, and the ``make-dataset`` command.

The format itself (manifest schema, validation, building, merging) is
:mod:`arctic_assist.io.training_data`; see also ``docs/training_data.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from collections.abc import Sequence

import numpy as np

from ..core.spec import IGNORE
from ..io.raster import read_raster  # noqa: F401 - used as ``data.read_raster`` by cobra.py
from ..io.training_data import (  # noqa: F401 - nodata_mask: used by cobra.py
    DatasetError,
    TrainingData,
    build_dataset,
    nodata_mask,
)
from ..io.training_data import load_dataset as load_folder


def load_dataset(root: str | Path, *, check_files: bool = True) -> TrainingData:
    """A training-data folder (:func:`arctic_assist.io.training_data.load_dataset`), or a
    ``.npz`` file written by ``pack`` (:mod:`.packed`), which loads without GDAL."""
    root = Path(root)
    if root.suffix.lower() == ".npz" and root.is_file():
        from .packed import load_packed

        return load_packed(root)
    return load_folder(root, check_files=check_files)


# ----------------------------------------------------------------------------- sampling


class TileSampler:
    """Random training batches from a :class:`TrainingData` (numpy; no torch here).

    Labelled chips are held in memory; unlabelled rasters are read by random windows.
    ``batch()`` -> dict ``x_l`` (B x C x T x T float32), ``y_l`` (B x T x T uint8) and
    ``x_u`` (U x C x T x T) if ``batch_unlabelled`` > 0.
    """

    def __init__(
        self,
        data: TrainingData,
        tile: int,
        batch_labelled: int,
        batch_unlabelled: int = 0,
        *,
        split: str = "train",
        regions: Sequence[str] | None = None,
        unlabelled_regions: Sequence[str] | None = None,
        seed: int = 0,
        positive_fraction: float = 0.0,
    ) -> None:
        self.data, self.tile = data, int(tile)
        self.positive_fraction = float(positive_fraction)
        self.bl, self.bu = int(batch_labelled), int(batch_unlabelled)
        self.rng = np.random.default_rng(seed)
        chips = data.select(split, regions)
        if not chips:
            raise DatasetError(
                f"{data.root}: no labelled chips with split '{split}'"
                + (f" in regions {list(regions)}" if regions else "")
            )
        self.labelled = [data.read_chip(c) for c in chips]
        areas = np.array(
            [m.size * c.weight for (_, m), c in zip(self.labelled, chips)], dtype=np.float64
        )
        self.p_l = areas / areas.sum()
        # positive-aware sampling: the (row, col) of every labelled RTS pixel per chip, so
        # that a share of the crops is centred near one (thaw slumps are a few percent of
        # the pixels; uniform crops mostly show background)
        self._pos = [np.argwhere(m == 1) for _, m in self.labelled]
        pos_w = np.array([len(pp) * c.weight for pp, c in zip(self._pos, chips)], dtype=np.float64)
        self.p_pos = pos_w / pos_w.sum() if pos_w.sum() > 0 else None
        self.unlabelled = [
            u for u in data.unlabelled if not unlabelled_regions or u.region in unlabelled_regions
        ]
        if self.bu and not self.unlabelled:
            # fall back on the labelled chips' images (the labels are not used)
            self.unlabelled = []
        self._udims = []
        for u in self.unlabelled:
            self._udims.append(data.unlabelled_size(u))
        ua = np.array([w * h for w, h in self._udims], dtype=np.float64)
        self.p_u = ua / ua.sum() if len(ua) else None
        self._cache: dict[int, np.ndarray] = {}

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def _crop(self, img: np.ndarray, mask: np.ndarray | None, around=None):
        t = self.tile
        c, h, w = img.shape
        if around is None:
            y0 = int(self.rng.integers(0, max(1, h - t + 1)))
            x0 = int(self.rng.integers(0, max(1, w - t + 1)))
        else:  # a crop that holds pixel ``around`` at a random place
            ry, rx = (int(v) for v in around)
            y0 = int(self.rng.integers(max(0, ry - t + 1), max(0, min(ry, h - t)) + 1))
            x0 = int(self.rng.integers(max(0, rx - t + 1), max(0, min(rx, w - t)) + 1))
        ci = img[:, y0 : y0 + t, x0 : x0 + t]
        cm = None if mask is None else mask[y0 : y0 + t, x0 : x0 + t]
        if ci.shape[1] < t or ci.shape[2] < t:
            pi = np.zeros((c, t, t), np.float32)
            pi[:, : ci.shape[1], : ci.shape[2]] = ci
            ci = pi
            if cm is not None:
                pm = np.full((t, t), IGNORE, np.uint8)
                pm[: cm.shape[0], : cm.shape[1]] = cm
                cm = pm
        return ci, cm

    def _unlabelled_tile(self) -> np.ndarray:
        if not self.unlabelled:
            i = int(self.rng.choice(len(self.labelled), p=self.p_l))
            return self._crop(self.labelled[i][0], None)[0]
        i = int(self.rng.choice(len(self.unlabelled), p=self.p_u))
        if i not in self._cache:  # rasters are read once per process, then cropped
            self._cache[i] = self.data.read_unlabelled(self.unlabelled[i])
        return self._crop(self._cache[i], None)[0]

    def batch(self) -> dict[str, np.ndarray]:
        xs, ys = [], []
        for _ in range(self.bl):
            around = None
            if self.p_pos is not None and self.rng.random() < self.positive_fraction:
                i = int(self.rng.choice(len(self.labelled), p=self.p_pos))
                around = self._pos[i][int(self.rng.integers(len(self._pos[i])))]
            else:
                i = int(self.rng.choice(len(self.labelled), p=self.p_l))
            x, y = self._crop(*self.labelled[i], around=around)
            xs.append(x)
            ys.append(y)
        out = {"x_l": np.stack(xs), "y_l": np.stack(ys)}
        if self.bu:
            out["x_u"] = np.stack([self._unlabelled_tile() for _ in range(self.bu)])
        return out


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m arctic_assist.training make-dataset",
        description="Build a training-data folder (manifest.json + "
        "GeoTIFF chips) from rasters and label polygons.",
    )
    p.add_argument("--rasters", nargs="+", required=True)
    p.add_argument(
        "--labels", nargs="+", default=None, help="polygon file(s) (their union, or see --majority)"
    )
    p.add_argument(
        "--majority",
        action="store_true",
        help="label = majority vote of the --labels files (e.g. several experts)",
    )
    p.add_argument("--out", required=True)
    p.add_argument("--chip-size", type=int, default=64)
    p.add_argument("--bands", default=None, help="1-based band indices, e.g. 1,2,3,7")
    p.add_argument("--band-names", default=None, help="e.g. B2,B3,B4,B8")
    p.add_argument("--aoi", default=None, help="polygon file; outside it labels are 255")
    p.add_argument("--nodata", type=float, default=0)
    p.add_argument(
        "--holdout-from-column",
        type=int,
        default=None,
        help="chips starting at or right of this column are split 'test'",
    )
    args = p.parse_args(argv)
    bands = [int(b) for b in args.bands.split(",")] if args.bands else None
    names = args.band_names.split(",") if args.band_names else None
    split_fn = None
    if args.holdout_from_column is not None:
        c = args.holdout_from_column

        def split_fn(ri, x, y, w, h):
            return "test" if x >= c else ("train" if x + w <= c else None)

    labels = args.labels
    data = build_dataset(
        args.rasters,
        labels,
        args.out,
        args.chip_size,
        band_indices=bands,
        band_names=names,
        aoi_path=args.aoi,
        nodata=args.nodata,
        split_fn=split_fn,
        label_mode="majority" if args.majority else "union",
    )
    print(
        json.dumps(
            {
                "event": "done",
                "output": str(data.root),
                "chips": len(data.chips),
                "unlabelled": len(data.unlabelled),
            }
        )
    )
    return 0
