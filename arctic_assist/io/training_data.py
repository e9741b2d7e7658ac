"""Training-data folders (format version 1): the format, its validation, building and merging.

A training-data folder holds ``manifest.json`` plus GeoTIFF chips. The review-loop export
algorithm of the plugin writes exactly this format; the trainers read it (see also
``docs/training_data.md``)::

    {
      "format": "arctic_assist.training_data",
      "format_version": 1,
      "task": "segmentation",                 # or "contour"
      "crs": "EPSG:32608",                    # EPSG code or WKT of every chip
      "pixel_size_m": 10.0,
      "bands": ["B2", "B3", "B4", "B8"],      # names, in the chips' band order
      "dtype": "uint16",                      # raw dtype of the image chips
      "normalization": {"type": "pixeldino_logsigmoid", "scale": 0.005,
                        "gain": 2.5, "offset": 2.1},   # = model metadata input.normalization
      "nodata": 0,                            # raw value meaning 'no data' (or null)
      "classes": ["background", "rts"],       # segmentation only
      "provenance": {"source": "...", "created": "...", "labels": "..."},
      "chips": [
        {"image": "chips/c0001.tif",          # path relative to the folder (or absolute)
         "mask": "chips/c0001_mask.tif",      # segmentation: uint8, 0 bg, 1 RTS, 255 ignore
         "region": "peel", "split": "train",  # split: train | val | test
         "weight": 1.0},                      # optional sampling weight (x chip area)
        {"image": "chips/f0001.tif",          # contour: a polyline instead of a mask
         "polyline": [[12.5, 3.0], [40.2, 17.8]],  # [x, y] pixel coordinates in the chip
         "region": "glacier", "split": "train"}
      ],
      "unlabelled": [                         # optional: chips or whole rasters, tiles
        {"image": "/data/scene.tif", "region": "lena"}   # are sampled from them on the fly
      ]
    }

Polyline coordinates: x = column, y = row, in pixels, origin at the top-left *corner* of
the chip (the centre of pixel (row r, col c) is (c + 0.5, r + 0.5)); vertices in order
along the front. Image chips must have ``len(bands)`` bands of the raw ``dtype``;
``nodata`` pixels become ignore (255) in the loss and the model's fill value at input.
Every problem found on load raises :class:`DatasetError` naming the file and the field.

GDAL/OGR and numpy only (no QGIS, no torch): the export algorithm writes this format, the
trainers (:mod:`arctic_assist.training.data`: sampler, packed ``.npz`` form) read it.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..core.errors import InputError
from ..core.normalize import normalize as core_normalize
from ..core.spec import DTYPES, IGNORE, TASKS, Normalization, parse_normalization
from .raster import _gdal, read_raster, write_geotiff

FORMAT = "arctic_assist.training_data"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
PIXELDINO_NORMALIZATION = {
    "type": "pixeldino_logsigmoid",
    "scale": 0.005,
    "gain": 2.5,
    "offset": 2.1,
}
_GDAL_DTYPES = {1: "uint8", 2: "uint16", 3: "int16", 6: "float32"}


class DatasetError(InputError):
    """A training-data folder is invalid; the message names the file and the field."""


# ----------------------------------------------------------------------------- normalisation


def normalize(
    raw: np.ndarray,
    normalization: Mapping[str, Any] | Normalization,
    nodata: float | None = None,
    fill: float = 0.0,
) -> np.ndarray:
    """Raw band values (C x H x W) -> float32 model input, exactly as the plugin does
    (:func:`arctic_assist.core.normalize.normalize`). Nodata pixels (any band equal to
    ``nodata``) are set to ``fill``.
    """
    return _apply_nodata(raw, core_normalize(raw, normalization), nodata, fill)


def _apply_nodata(raw: np.ndarray, out: np.ndarray, nodata, fill: float) -> np.ndarray:
    if nodata is None:
        return out
    bad = np.any(raw == nodata, axis=0)
    if bad.any():
        out = out.copy()
        out[:, bad] = fill
    return out


def nodata_mask(raw: np.ndarray, nodata) -> np.ndarray:
    if nodata is None:
        return np.zeros(raw.shape[1:], dtype=bool)
    return np.any(raw == nodata, axis=0)


# ----------------------------------------------------------------------------- the format


@dataclass
class Chip:
    image: Path
    mask: Path | None = None
    polyline: list[list[float]] | None = None
    region: str = ""
    split: str = "train"
    weight: float = 1.0
    size: tuple[int, int] | None = None  # (width, height), known once the files are checked


@dataclass
class Unlabelled:
    image: Path
    region: str = ""


@dataclass
class TrainingData:
    """A validated training-data folder (:meth:`load`)."""

    root: Path
    task: str
    bands: tuple[str, ...]
    dtype: str
    normalization: dict[str, Any]
    nodata: float | None
    pixel_size_m: float | None
    crs: str
    classes: tuple[str, ...]
    provenance: dict[str, Any]
    chips: list[Chip] = field(default_factory=list)
    unlabelled: list[Unlabelled] = field(default_factory=list)
    #: per-band gain on the raw values before the normalisation (not in the manifest: set
    #: by a warm start that brings the scenes to its base model's band medians)
    gain: tuple[float, ...] | None = None

    @classmethod
    def load(cls, root: str | Path, *, check_files: bool = True) -> TrainingData:
        return load_dataset(root, check_files=check_files)

    def select(self, split: str | None = None, regions: Sequence[str] | None = None) -> list[Chip]:
        return [
            c
            for c in self.chips
            if (split is None or c.split == split) and (not regions or c.region in regions)
        ]

    def regions(self) -> list[str]:
        return sorted({c.region for c in self.chips} | {u.region for u in self.unlabelled})

    def scaled(self, raw: np.ndarray) -> np.ndarray:
        """``raw`` times :attr:`gain` (valid pixels; integer types rounded and clipped, as
        detection's scene adaptation scales a scene), or ``raw`` itself without a gain."""
        if not self.gain:
            return raw
        from ..core.adapt import Adaptation

        valid = ~nodata_mask(raw, self.nodata)
        return Adaptation(tuple(self.gain)).apply(raw, valid, [self.nodata] * raw.shape[0])

    def read_chip(self, chip: Chip) -> tuple[np.ndarray, np.ndarray | None]:
        """(normalised image C x H x W float32, mask H x W uint8 with nodata -> 255)."""
        raw = read_raster(chip.image)
        img = normalize(self.scaled(raw), self.normalization, self.nodata)
        if chip.mask is None:
            return img, None
        mask = read_raster(chip.mask)[0].astype(np.uint8)
        mask[nodata_mask(raw, self.nodata)] = IGNORE
        return img, mask

    def read_unlabelled(self, u: Unlabelled) -> np.ndarray:
        """A whole unlabelled raster, normalised (C x H x W float32)."""
        return normalize(self.scaled(read_raster(u.image)), self.normalization, self.nodata)

    def read_raw(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """A chip's or unlabelled raster's raw values (C x H x W) and where they are valid
        (no band at the nodata value); None where only normalised values are stored."""
        raw = read_raster(path)
        return raw, ~nodata_mask(raw, self.nodata)

    def unlabelled_size(self, u: Unlabelled) -> tuple[int, int]:
        """(width, height) of an unlabelled raster."""
        ds = _open(u.image)
        return ds.RasterXSize, ds.RasterYSize


def _err(path: Path, msg: str) -> DatasetError:
    return DatasetError(f"{path}: {msg}")


def load_dataset(root: str | Path, *, check_files: bool = True) -> TrainingData:
    """Read and validate ``root/manifest.json`` and (with ``check_files``) every chip.

    (:func:`arctic_assist.training.data.load_dataset` also loads the packed ``.npz`` form.)"""
    root = Path(root)
    mpath = root / "manifest.json"
    if not root.is_dir():
        raise DatasetError(f"{root}: training-data folder does not exist")
    if not mpath.is_file():
        raise DatasetError(f"{mpath}: missing (a training-data folder needs manifest.json)")
    try:
        doc = json.loads(mpath.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise _err(mpath, f"not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise _err(mpath, "must hold a JSON object")
    if doc.get("format") != FORMAT:
        raise _err(mpath, f"field 'format' must be '{FORMAT}', got {doc.get('format')!r}")
    ver = doc.get("format_version")
    if not isinstance(ver, int) or ver < 1:
        raise _err(mpath, f"field 'format_version' must be a positive integer, got {ver!r}")
    if ver > FORMAT_VERSION:
        raise _err(
            mpath,
            f"field 'format_version' is {ver}; this code reads up to "
            f"{FORMAT_VERSION} (update Arctic Assist)",
        )
    task = doc.get("task")
    if task not in TASKS:
        raise _err(mpath, f"field 'task' must be one of {', '.join(TASKS)}, got {task!r}")
    bands = doc.get("bands")
    if not isinstance(bands, list) or not bands or not all(isinstance(b, str) and b for b in bands):
        raise _err(mpath, "field 'bands' must be a non-empty list of band names")
    dtype = doc.get("dtype")
    if dtype not in DTYPES:
        raise _err(mpath, f"field 'dtype' must be one of {', '.join(DTYPES)}, got {dtype!r}")
    norm = doc.get("normalization")
    if not isinstance(norm, dict):
        raise _err(
            mpath,
            "field 'normalization' must be an object like the model metadata's input.normalization",
        )
    try:
        parse_normalization(norm, len(bands))
    except Exception as exc:  # re-raised with the file name
        raise _err(mpath, f"field 'normalization': {exc}") from exc
    nodata = doc.get("nodata")
    if nodata is not None and (isinstance(nodata, bool) or not isinstance(nodata, (int, float))):
        raise _err(mpath, f"field 'nodata' must be a number or null, got {nodata!r}")
    px = doc.get("pixel_size_m")
    if px is not None and (not isinstance(px, (int, float)) or isinstance(px, bool) or px <= 0):
        raise _err(mpath, f"field 'pixel_size_m' must be a positive number or null, got {px!r}")
    crs = doc.get("crs")
    if not isinstance(crs, str) or not crs:
        raise _err(mpath, "field 'crs' must be an EPSG code ('EPSG:32608') or WKT")
    classes = doc.get("classes", ["background", "rts"] if task == "segmentation" else ["front"])
    prov = doc.get("provenance", {})
    if not isinstance(prov, dict):
        raise _err(mpath, "field 'provenance' must be an object")
    chips_raw = doc.get("chips")
    if not isinstance(chips_raw, list):
        raise _err(mpath, "field 'chips' must be a list (it may be empty)")
    chips: list[Chip] = []
    for i, c in enumerate(chips_raw):
        where = f"chips[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("image"), str):
            raise _err(mpath, f"field '{where}.image' must be a path")
        image = _resolve(root, c["image"])
        split = c.get("split", "train")
        if split not in SPLITS:
            raise _err(
                mpath, f"field '{where}.split' must be one of {', '.join(SPLITS)}, got {split!r}"
            )
        weight = c.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise _err(mpath, f"field '{where}.weight' must be a positive number, got {weight!r}")
        chip = Chip(image=image, region=str(c.get("region", "")), split=split, weight=float(weight))
        if task == "segmentation":
            if not isinstance(c.get("mask"), str):
                raise _err(mpath, f"field '{where}.mask' must be a path (segmentation task)")
            chip.mask = _resolve(root, c["mask"])
        else:
            line = c.get("polyline")
            if (
                not isinstance(line, list)
                or len(line) < 2
                or not all(
                    isinstance(p, (list, tuple))
                    and len(p) == 2
                    and all(isinstance(v, (int, float)) and math.isfinite(v) for v in p)
                    for p in line
                )
            ):
                raise _err(
                    mpath,
                    f"field '{where}.polyline' must list at least two [x, y] "
                    "pixel coordinates (contour task)",
                )
            chip.polyline = [[float(x), float(y)] for x, y in line]
        chips.append(chip)
    unl_raw = doc.get("unlabelled", [])
    if not isinstance(unl_raw, list):
        raise _err(mpath, "field 'unlabelled' must be a list")
    unlabelled = []
    for i, u in enumerate(unl_raw):
        if not isinstance(u, dict) or not isinstance(u.get("image"), str):
            raise _err(mpath, f"field 'unlabelled[{i}].image' must be a path")
        unlabelled.append(Unlabelled(_resolve(root, u["image"]), str(u.get("region", ""))))
    data = TrainingData(
        root=root,
        task=task,
        bands=tuple(bands),
        dtype=dtype,
        normalization=dict(norm),
        nodata=nodata,
        pixel_size_m=px,
        crs=crs,
        classes=tuple(classes),
        provenance=dict(prov),
        chips=chips,
        unlabelled=unlabelled,
    )
    if check_files:
        for i, chip in enumerate(chips):
            _check_chip(mpath, f"chips[{i}]", chip, data)
        for i, u in enumerate(unlabelled):
            _check_image(mpath, f"unlabelled[{i}].image", u.image, data)
    return data


def _resolve(root: Path, rel: str) -> Path:
    p = Path(rel)
    return p if p.is_absolute() else root / p


def _open(path: Path):
    gdal = _gdal()
    if not path.is_file():
        return None
    try:
        return gdal.Open(str(path))
    except RuntimeError:
        return None


def _check_image(mpath: Path, where: str, path: Path, data: TrainingData) -> tuple[int, int]:
    ds = _open(path)
    if ds is None:
        raise DatasetError(
            f"{path}: {where} does not exist or is not a raster GDAL can read (listed in {mpath})"
        )
    if ds.RasterCount != len(data.bands):
        raise DatasetError(
            f"{path}: {where} has {ds.RasterCount} bands, the manifest's "
            f"'bands' lists {len(data.bands)} ({', '.join(data.bands)})"
        )
    dt = _GDAL_DTYPES.get(ds.GetRasterBand(1).DataType)
    if dt != data.dtype:
        raise DatasetError(
            f"{path}: {where} has data type {dt}, the manifest's 'dtype' says {data.dtype}"
        )
    return ds.RasterXSize, ds.RasterYSize


def _check_chip(mpath: Path, where: str, chip: Chip, data: TrainingData) -> None:
    w, h = _check_image(mpath, where + ".image", chip.image, data)
    chip.size = (w, h)
    if chip.polyline is not None:
        return
    ds = _open(chip.mask)
    if ds is None:
        raise DatasetError(
            f"{chip.mask}: {where}.mask does not exist or is not a raster (listed in {mpath})"
        )
    if (ds.RasterXSize, ds.RasterYSize) != (w, h) or ds.RasterCount != 1:
        raise DatasetError(
            f"{chip.mask}: {where}.mask must be one band of {w} x {h} pixels "
            f"like its image, got {ds.RasterCount} x {ds.RasterXSize} x "
            f"{ds.RasterYSize}"
        )
    values = np.unique(ds.ReadAsArray())
    bad = sorted(set(values.tolist()) - {0, 1, IGNORE})
    if bad:
        raise DatasetError(
            f"{chip.mask}: {where}.mask holds values {bad[:5]}; allowed are "
            "0 (background), 1 (RTS) and 255 (ignore)"
        )


# ----------------------------------------------------------------------------- building


def rasterize_polygons(
    vector_path: str | Path,
    ds,
    *,
    burn: int = 1,
    all_touched: bool = False,
    where: str | None = None,
) -> np.ndarray:
    """Rasterise a polygon layer onto the grid of GDAL dataset ``ds`` (reprojected on the fly)."""
    from osgeo import ogr

    gdal = _gdal()
    mem = gdal.GetDriverByName("MEM").Create("", ds.RasterXSize, ds.RasterYSize, 1, gdal.GDT_Byte)
    mem.SetGeoTransform(ds.GetGeoTransform())
    mem.SetProjection(ds.GetProjection())
    try:
        vds = ogr.Open(str(vector_path))
    except RuntimeError:
        vds = None
    if vds is None:
        raise DatasetError(f"{vector_path}: not a vector file OGR can read")
    layer = vds.GetLayer(0)
    if where:
        layer.SetAttributeFilter(where)
    opts = ["ALL_TOUCHED=TRUE"] if all_touched else []
    gdal.RasterizeLayer(mem, [1], layer, burn_values=[burn], options=opts)
    return mem.ReadAsArray().astype(np.uint8)


def supersampled_grid(ds, supersample: int):
    """An empty in-memory byte raster covering ``ds`` at ``supersample`` x its resolution."""
    from osgeo import gdal

    s = max(1, int(supersample))
    fine = gdal.GetDriverByName("MEM").Create(
        "", ds.RasterXSize * s, ds.RasterYSize * s, 1, gdal.GDT_Byte
    )
    gt = list(ds.GetGeoTransform())
    fine.SetGeoTransform([gt[0], gt[1] / s, gt[2] / s, gt[3], gt[4] / s, gt[5] / s])
    fine.SetProjection(ds.GetProjection())
    return fine


def majority_vote(vector_paths: Sequence[str | Path], ds, supersample: int = 4) -> np.ndarray:
    """Pixel label = 1 where more than half the layers cover it (computed at
    ``supersample`` x the grid resolution, then the majority area fraction >= 0.5)."""
    s = max(1, int(supersample))
    fine = supersampled_grid(ds, s)
    votes = np.zeros((ds.RasterYSize * s, ds.RasterXSize * s), dtype=np.int32)
    for p in vector_paths:
        votes += rasterize_polygons(p, fine)
    maj = (votes * 2 > len(vector_paths)).astype(np.float32)
    frac = maj.reshape(ds.RasterYSize, s, ds.RasterXSize, s).mean(axis=(1, 3))
    return (frac >= 0.5).astype(np.uint8)


def build_dataset(
    rasters: Sequence[str | Path],
    label_polygons_path: str | Path | Sequence[str | Path] | None,
    out_dir: str | Path,
    chip_size: int = 64,
    *,
    band_indices: Sequence[int] | None = None,
    band_names: Sequence[str] | None = None,
    aoi_path: str | Path | None = None,
    normalization: Mapping[str, Any] | None = None,
    nodata: float | None = 0,
    regions: Sequence[str] | None = None,
    split_fn: Callable[[int, int, int, int, int], str] | None = None,
    labelled: Sequence[bool] | None = None,
    add_unlabelled: bool = True,
    label_mode: str = "union",
    min_valid_fraction: float = 0.25,
    provenance: Mapping[str, Any] | None = None,
    on_row: Callable[[float], None] | None = None,
) -> TrainingData:
    """Build a training-data folder from rasters and label polygons (GDAL/OGR).

    ``label_polygons_path``: one polygon file (RTS = every polygon) or a list of files;
    ``label_mode`` 'union' (any file covers the pixel) or 'majority' (more than half of the
    files cover it, e.g. several experts' layers of the same area). Labels are rasterised on each
    raster's grid (pixel centres); outside ``aoi_path`` (a polygon file) masks are 255.
    Each raster is cut into ``chip_size`` chips (edge chips may be smaller); chips with less
    than ``min_valid_fraction`` labelled (non-255, non-nodata) pixels are dropped.
    ``split_fn(raster_index, xoff, yoff, w, h) -> 'train' | 'val' | 'test'`` assigns
    splits (default all 'train'). ``labelled[i] = False`` makes raster ``i`` unlabelled
    only. With ``add_unlabelled`` every raster is also listed under ``unlabelled``.
    Returns the loaded, validated folder.
    """
    gdal = _gdal()
    out = Path(out_dir)
    (out / "chips").mkdir(parents=True, exist_ok=True)
    norm = dict(normalization or PIXELDINO_NORMALIZATION)
    if isinstance(label_polygons_path, (str, Path)) or label_polygons_path is None:
        label_paths = [label_polygons_path] if label_polygons_path else []
    else:
        label_paths = list(label_polygons_path)
    chips, unl = [], []
    first = None
    for ri, raster in enumerate(rasters):
        ds = gdal.Open(str(raster))
        if ds is None:
            raise DatasetError(f"{raster}: not a raster GDAL can read")
        idx = list(band_indices or range(1, ds.RasterCount + 1))
        names = list(
            band_names or [ds.GetRasterBand(i).GetDescription() or f"band{i}" for i in idx]
        )
        dt = _GDAL_DTYPES.get(ds.GetRasterBand(idx[0]).DataType)
        if dt is None:
            raise DatasetError(
                f"{raster}: data type not supported (use uint8/uint16/int16/float32)"
            )
        region = regions[ri] if regions else Path(raster).stem
        meta = (names, dt, ds.GetProjection(), abs(ds.GetGeoTransform()[1]))
        if first is None:
            first = meta
        elif meta[:2] != first[:2]:
            raise DatasetError(
                f"{raster}: bands/dtype {meta[:2]} differ from the first raster's {first[:2]}"
            )
        raw = np.stack([ds.GetRasterBand(i).ReadAsArray() for i in idx])
        if add_unlabelled:
            if band_indices and list(band_indices) != list(range(1, ds.RasterCount + 1)):
                upath = out / "unlabelled" / f"{ri:02d}_{Path(raster).stem}.tif"
                write_geotiff(upath, raw, ds.GetGeoTransform(), ds.GetProjection(), nodata, names)
                unl.append({"image": os.path.relpath(upath, out), "region": region})
            else:
                unl.append({"image": str(Path(raster).resolve()), "region": region})
        if labelled is not None and not labelled[ri]:
            continue
        if not label_paths:
            continue
        if label_mode == "majority":
            mask = majority_vote(label_paths, ds)
        elif label_mode == "union":
            mask = np.zeros((ds.RasterYSize, ds.RasterXSize), np.uint8)
            for lp in label_paths:
                mask |= rasterize_polygons(lp, ds)
        else:
            raise DatasetError(f"label_mode must be 'union' or 'majority', got {label_mode!r}")
        if aoi_path:
            inside = rasterize_polygons(aoi_path, ds)
            mask[inside == 0] = IGNORE
        mask[nodata_mask(raw, nodata)] = IGNORE
        gt = ds.GetGeoTransform()
        H, W = mask.shape
        for yoff in range(0, H, chip_size):
            if on_row is not None:  # progress (0..1 over all rasters); may raise to cancel
                on_row((ri + yoff / H) / len(rasters))
            for xoff in range(0, W, chip_size):
                h, w = min(chip_size, H - yoff), min(chip_size, W - xoff)
                if h < chip_size // 4 or w < chip_size // 4:
                    continue
                m = mask[yoff : yoff + h, xoff : xoff + w]
                if (m != IGNORE).mean() < min_valid_fraction:
                    continue
                split = split_fn(ri, xoff, yoff, w, h) if split_fn else "train"
                if split is None:
                    continue
                cgt = (
                    gt[0] + xoff * gt[1] + yoff * gt[2],
                    gt[1],
                    gt[2],
                    gt[3] + xoff * gt[4] + yoff * gt[5],
                    gt[4],
                    gt[5],
                )
                name = f"chips/r{ri:02d}_y{yoff:05d}_x{xoff:05d}"
                write_geotiff(
                    out / f"{name}.tif",
                    raw[:, yoff : yoff + h, xoff : xoff + w],
                    cgt,
                    ds.GetProjection(),
                    nodata,
                    names,
                )
                write_geotiff(
                    out / f"{name}_mask.tif", m.astype(np.uint8), cgt, ds.GetProjection(), None
                )
                chips.append(
                    {
                        "image": f"{name}.tif",
                        "mask": f"{name}_mask.tif",
                        "region": region,
                        "split": split,
                    }
                )
    if first is None:
        raise DatasetError("build_dataset: no rasters given")
    from osgeo import osr

    srs = osr.SpatialReference(wkt=first[2]) if first[2] else None
    crs = first[2]
    if srs is not None and srs.GetAuthorityCode(None):
        crs = f"{srs.GetAuthorityName(None)}:{srs.GetAuthorityCode(None)}"
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": "segmentation",
        "crs": crs or "unknown",
        "pixel_size_m": float(first[3]),
        "bands": first[0],
        "dtype": first[1],
        "normalization": norm,
        "nodata": nodata,
        "classes": ["background", "rts"],
        "provenance": {
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "rasters": [str(r) for r in rasters],
            "labels": [str(p) for p in label_paths],
            "aoi": str(aoi_path) if aoi_path else None,
            "builder": "arctic_assist.io.training_data.build_dataset",
            **dict(provenance or {}),
        },
        "chips": chips,
        "unlabelled": unl,
    }
    write_manifest(out, manifest)
    return load_dataset(out)


def write_manifest(out_dir: str | Path, manifest: Mapping[str, Any]) -> Path:
    path = Path(out_dir) / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def merge_datasets(
    out_dir: str | Path, folders: Sequence[str | Path], weights: Sequence[float] | None = None
) -> TrainingData:
    """One folder whose manifest lists the chips of several compatible folders, chip
    sampling weights multiplied by ``weights[i]``.

    Files beside the merged folder (under its parent, e.g. the source folders) are written
    relative to it, so that the merged folder and its sources can be moved (or copied to a
    training server) together; files elsewhere (a user's scene rasters) stay absolute.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    here = out.resolve()

    def rel(p: Path) -> str:
        p = p.resolve()
        return os.path.relpath(p, here) if here.parent in p.parents else str(p)

    parts = [load_dataset(f) for f in folders]
    first = parts[0]
    chips, unl = [], []
    for i, d in enumerate(parts):
        if (d.bands, d.dtype, d.task, d.normalization) != (
            first.bands,
            first.dtype,
            first.task,
            first.normalization,
        ):
            raise DatasetError(f"{d.root}: bands/dtype/task/normalization differ from {first.root}")
        w = float(weights[i]) if weights else 1.0
        for c in d.chips:
            e = {
                "image": rel(c.image),
                "region": c.region,
                "split": c.split,
                "weight": c.weight * w,
            }
            if c.mask is not None:
                e["mask"] = rel(c.mask)
            if c.polyline is not None:
                e["polyline"] = c.polyline
            chips.append(e)
        unl += [{"image": rel(u.image), "region": u.region} for u in d.unlabelled]
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": first.task,
        "crs": first.crs,
        "pixel_size_m": first.pixel_size_m,
        "bands": list(first.bands),
        "dtype": first.dtype,
        "normalization": first.normalization,
        "nodata": first.nodata,
        "classes": list(first.classes),
        "provenance": {
            "merged_from": [rel(Path(f)) for f in folders],
            "weights": list(weights or []),
        },
        "chips": chips,
        "unlabelled": unl,
    }
    write_manifest(out, manifest)
    return load_dataset(out)
