"""Packed training data: one ``.npz`` file that trains without GDAL (issue 12, section 4).

``python -m arctic_assist.training pack --data FOLDER --out FILE.npz`` (here, with GDAL)
writes a segmentation training-data folder (:mod:`arctic_assist.io.training_data`) into
one compressed ``.npz``: every chip *normalised as the trainer sees it* (nodata filled,
the mask's nodata pixels 255), its mask, the unlabelled rasters normalised the same way,
and a JSON header with the manifest's fields (bands, dtype, normalization, nodata,
pixel_size_m, crs, classes, provenance) and per chip its split, region, weight and size.
``pack --frontlearning DIR --out FILE.npz`` does the same for the FrontLearning images
COBRA trains on (images and their fronts as :func:`.fronts.read_frontlearning` makes them).

The trainers take the file where they take a folder
(``python -m arctic_assist.training pixeldino --data FILE.npz``,
``cobra --frontlearning FILE.npz``); reading it needs numpy only (no GDAL, no PIL), so a
GPU server without them trains from it. No pickle: arrays plus a ``uint8`` array holding
the UTF-8 JSON header, loaded with ``allow_pickle=False``.

Storage: a pixeldino_logsigmoid normalisation is quantised to k/255, so its images are
stored as the uint8 codes k (decoded to exactly the float32 values the folder gives);
other normalisations are stored as float32.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..io.training_data import DatasetError, Chip, TrainingData, Unlabelled

PACKED_FORMAT = "arctic_assist.packed_training_data"
PACKED_VERSION = 1
HEADER_KEY = "__header__"


# ----------------------------------------------------------------------------- encoding


def _encode(img: np.ndarray) -> tuple[np.ndarray, str]:
    """float32 image -> (stored array, encoding): uint8 codes when that is lossless."""
    img = np.asarray(img, dtype=np.float32)
    if img.size and np.isfinite(img).all() and img.min() >= 0.0 and img.max() <= 1.0:
        codes = np.round(img.astype(np.float64) * 255.0).astype(np.uint8)
        if np.array_equal(_decode(codes, "u8/255"), img):
            return codes, "u8/255"
    return img, "f32"


def _decode(arr: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "u8/255":
        return (arr.astype(np.float64) / 255.0).astype(np.float32)
    if encoding == "f32":
        return np.asarray(arr, dtype=np.float32)
    raise DatasetError(f"packed data: unknown image encoding {encoding!r}")


def _save(out: str | Path, arrays: dict[str, np.ndarray], header: dict[str, Any]) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    blob = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    tmp = out.with_name(out.name + ".part.npz")
    np.savez_compressed(tmp, **{HEADER_KEY: blob}, **arrays)
    os.replace(tmp, out)
    return out


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a packed file (raises :class:`DatasetError` if it is not one)."""
    with np.load(str(path), allow_pickle=False) as z:
        return _header(path, z)


def _header(path, z) -> dict[str, Any]:
    if HEADER_KEY not in z.files:
        raise DatasetError(f"{path}: not a packed training-data file (no header)")
    doc = json.loads(bytes(z[HEADER_KEY]).decode("utf-8"))
    if doc.get("format") != PACKED_FORMAT:
        raise DatasetError(f"{path}: field 'format' must be '{PACKED_FORMAT}'")
    if int(doc.get("format_version", 0)) > PACKED_VERSION:
        raise DatasetError(
            f"{path}: packed format_version {doc.get('format_version')}; this code reads up "
            f"to {PACKED_VERSION} (update Arctic Assist)"
        )
    return doc


def is_packed(path: str | Path) -> bool:
    return str(path).lower().endswith(".npz") and Path(path).is_file()


def source_path(path: str | Path) -> str:
    """Where training data came from, for a model's provenance: a folder as it is, a packed
    file as the folder it was packed from (when its header names one; retrain_model's
    packed file lives in a run folder that is removed afterwards)."""
    if is_packed(path):
        try:
            doc = read_header(path)
        except (OSError, ValueError, DatasetError):
            doc = {}
        for part in ("provenance", "source"):
            origin = (doc.get(part) or {}).get("packed_from")
            if isinstance(origin, str) and origin:
                return origin
    return str(Path(path).resolve())


# ----------------------------------------------------------------------------- segmentation


def pack_dataset(data: TrainingData, out: str | Path) -> dict[str, Any]:
    """Write a loaded segmentation folder into ``out`` (.npz); returns the header."""
    if data.task != "segmentation":
        raise DatasetError(
            f"{data.root}: task '{data.task}'; pack --data packs segmentation folders "
            "(COBRA: pack --frontlearning)"
        )
    arrays: dict[str, np.ndarray] = {}
    chips, unl = [], []
    for i, chip in enumerate(data.chips):
        img, mask = data.read_chip(chip)
        stored, enc = _encode(img)
        key = f"chip{i:05d}"
        arrays[f"{key}_image"] = stored
        arrays[f"{key}_mask"] = np.asarray(mask, dtype=np.uint8)
        chips.append(
            {
                "key": key,
                "encoding": enc,
                "image": _rel(chip.image, data.root),
                "region": chip.region,
                "split": chip.split,
                "weight": chip.weight,
                "size": [int(img.shape[2]), int(img.shape[1])],
            }
        )
    for i, u in enumerate(data.unlabelled):
        img = data.read_unlabelled(u)
        stored, enc = _encode(img)
        key = f"unl{i:03d}"
        arrays[f"{key}_image"] = stored
        unl.append(
            {
                "key": key,
                "encoding": enc,
                "image": _rel(u.image, data.root),
                "region": u.region,
                "size": [int(img.shape[2]), int(img.shape[1])],
            }
        )
    header = {
        "format": PACKED_FORMAT,
        "format_version": PACKED_VERSION,
        "kind": "training_data",
        "task": data.task,
        "crs": data.crs,
        "pixel_size_m": data.pixel_size_m,
        "bands": list(data.bands),
        "dtype": data.dtype,
        "normalization": data.normalization,
        "nodata": data.nodata,
        "classes": list(data.classes),
        "provenance": {
            **data.provenance,
            "packed_from": str(Path(data.root).resolve()),
            "packed": _now(),
        },
        "chips": chips,
        "unlabelled": unl,
    }
    _save(out, arrays, header)
    return header


def _rel(p: Path, root: Path) -> str:
    try:
        return os.path.relpath(Path(p).resolve(), Path(root).resolve())
    except ValueError:
        return str(p)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


class PackedTrainingData(TrainingData):
    """A :class:`TrainingData` whose chips and unlabelled rasters come from a packed file.

    ``read_chip``/``read_unlabelled`` return the stored (already normalised) arrays, so
    :class:`.data.TileSampler`, the evaluation and the trainers run unchanged and without
    GDAL. Unlabelled rasters added later (``--unlabelled``) are still read with GDAL.
    """

    _images: dict[str, tuple[np.ndarray, str]]
    _masks: dict[str, np.ndarray]

    def _stored(self, key: str) -> np.ndarray:
        """A stored normalised image; with a :attr:`gain`, mapped back to raw values (the
        inverse normalisation), scaled and normalised again (quantisation: ~0.5 %)."""
        arr, enc = self._images[key]
        img = _decode(arr, enc)
        if not self.gain:
            return img
        from ..core.normalize import denormalize, normalize as core_normalize
        from ..core.spec import parse_normalization

        norm = parse_normalization(self.normalization, img.shape[0])
        fill = (img == 0).all(axis=0)  # the nodata fill
        raw = denormalize(img, norm) * np.asarray(self.gain).reshape(-1, 1, 1)
        out = core_normalize(raw, norm)
        out[:, fill] = 0.0
        return out

    def read_chip(self, chip: Chip) -> tuple[np.ndarray, np.ndarray | None]:
        key = str(chip.image)
        if key not in self._images:
            return super().read_chip(chip)
        return self._stored(key), self._masks[key].copy()

    def read_unlabelled(self, u: Unlabelled) -> np.ndarray:
        key = str(u.image)
        if key not in self._images:
            return super().read_unlabelled(u)
        return self._stored(key)

    def read_raw(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        if str(path) in self._images:
            return None  # only the normalised values are packed
        return super().read_raw(path)

    def unlabelled_size(self, u: Unlabelled) -> tuple[int, int]:
        key = str(u.image)
        if key not in self._images:
            return super().unlabelled_size(u)
        arr = self._images[key][0]
        return int(arr.shape[2]), int(arr.shape[1])


def load_packed(path: str | Path) -> PackedTrainingData:
    """A packed segmentation file -> :class:`PackedTrainingData` (numpy only)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: packed training-data file does not exist")
    with np.load(str(path), allow_pickle=False) as z:
        doc = _header(path, z)
        if doc.get("kind") != "training_data":
            raise DatasetError(f"{path}: holds {doc.get('kind')!r}, not a training-data folder")
        images: dict[str, tuple[np.ndarray, str]] = {}
        masks: dict[str, np.ndarray] = {}
        chips, unl = [], []
        for c in doc["chips"]:
            name = f"{path}#{c['key']}"
            images[name] = (z[f"{c['key']}_image"], c["encoding"])
            masks[name] = z[f"{c['key']}_mask"]
            chips.append(
                Chip(
                    image=Path(name),
                    mask=Path(name + "_mask"),
                    region=c["region"],
                    split=c["split"],
                    weight=float(c["weight"]),
                    size=tuple(c["size"]),
                )
            )
        for u in doc["unlabelled"]:
            name = f"{path}#{u['key']}"
            images[name] = (z[f"{u['key']}_image"], u["encoding"])
            unl.append(Unlabelled(Path(name), u["region"]))
    data = PackedTrainingData(
        root=path,
        task=doc["task"],
        bands=tuple(doc["bands"]),
        dtype=doc["dtype"],
        normalization=dict(doc["normalization"]),
        nodata=doc["nodata"],
        pixel_size_m=doc["pixel_size_m"],
        crs=doc["crs"],
        classes=tuple(doc["classes"]),
        provenance=dict(doc.get("provenance", {})),
        chips=chips,
        unlabelled=unl,
    )
    data._images, data._masks = images, masks
    return data


# ----------------------------------------------------------------------------- COBRA


def pack_fronts(samples: list, out: str | Path, *, source: dict[str, Any]) -> dict[str, Any]:
    """Write :class:`.fronts.FrontSample` objects (e.g. FrontLearning) into ``out``."""
    arrays: dict[str, np.ndarray] = {}
    entries = []
    for i, s in enumerate(samples):
        img = np.asarray(s.image, dtype=np.float32)
        key = f"front{i:04d}"
        exact = img.min() >= 0 and img.max() <= 255 and np.array_equal(np.round(img), img)
        arrays[f"{key}_image"] = img.astype(np.uint8) if exact else img
        arrays[f"{key}_front"] = np.asarray(s.front, dtype=np.float64)
        entries.append(
            {
                "key": key,
                "name": s.name,
                "group": s.group,
                "pixel_size_m": s.pixel_size_m,
                "meta": dict(s.meta),
            }
        )
    header = {
        "format": PACKED_FORMAT,
        "format_version": PACKED_VERSION,
        "kind": "fronts",
        "source": {**source, "packed": _now()},
        "samples": entries,
    }
    _save(out, arrays, header)
    return header


def load_packed_fronts(
    path: str | Path,
    *,
    labels: str | None = None,
    glacier_side: str | None = None,
    n: int | None = None,
) -> list:
    """A packed fronts file -> list of :class:`.fronts.FrontSample` (numpy only).

    ``labels``/``glacier_side``/``n``, when given, must match how the file was packed
    (the fronts were traced then)."""
    from .fronts import FrontSample

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: packed fronts file does not exist")
    with np.load(str(path), allow_pickle=False) as z:
        doc = _header(path, z)
        if doc.get("kind") != "fronts":
            raise DatasetError(f"{path}: holds {doc.get('kind')!r}, not packed fronts")
        src = doc.get("source", {})
        for field, want in (("labels", labels), ("glacier_side", glacier_side), ("n", n)):
            if want is not None and field in src and src[field] != want:
                raise DatasetError(
                    f"{path}: packed with {field}={src[field]!r}, asked for {want!r} "
                    "(pack again with that option)"
                )
        out = []
        for e in doc["samples"]:
            out.append(
                FrontSample(
                    image=z[f"{e['key']}_image"].astype(np.float32),
                    front=z[f"{e['key']}_front"],
                    name=e["name"],
                    group=e["group"],
                    pixel_size_m=e["pixel_size_m"],
                    meta=dict(e.get("meta", {})),
                )
            )
    return out


# ----------------------------------------------------------------------------- any folder


def pack_training_folder(folder: str | Path, out: str | Path) -> dict[str, Any]:
    """An exported training-data folder of either task -> ``out`` (.npz); the header.

    Segmentation: :func:`pack_dataset`; contour: the fronts as
    :func:`.fronts.read_training_folder` reads them, :func:`pack_fronts`. This is how
    ``arctic_assist:retrain_model`` hands its DATA to the training environment, which then
    needs neither GDAL nor QGIS.
    """
    from . import fronts as FR
    from .data import load_dataset

    folder = Path(folder)
    data = load_dataset(folder)
    if data.task == "segmentation":
        return pack_dataset(data, out)
    return pack_fronts(
        FR.read_training_folder(str(folder)),
        out,
        source={"packed_from": str(folder.resolve()), "task": data.task, "n": FR.N_VERTICES},
    )


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m arctic_assist.training pack",
        description="Pack a training-data folder (--data) or FrontLearning images "
        "(--frontlearning) into one .npz that trains without GDAL (e.g. on a GPU server).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="training-data folder of either task (manifest.json)")
    src.add_argument("--frontlearning", help="FrontLearning train folder (images/, labels_1px/)")
    p.add_argument("--labels", default="labels_1px", help="FrontLearning label folder")
    p.add_argument("--glacier-side", default="bottom", help="FrontLearning: glacier side")
    p.add_argument("--out", required=True, help="output .npz")
    a = p.parse_args(argv)
    if not a.out.lower().endswith(".npz"):
        p.error("--out must end with .npz")
    if a.data:
        header = pack_training_folder(a.data, a.out)
        counts = (
            {"chips": len(header["chips"]), "unlabelled": len(header["unlabelled"])}
            if header["kind"] == "training_data"
            else {"samples": len(header["samples"])}
        )
    else:
        from . import fronts as FR

        samples = FR.read_frontlearning(
            a.frontlearning, labels=a.labels, glacier_side=a.glacier_side
        )
        header = pack_fronts(
            samples,
            a.out,
            source={
                "frontlearning": str(Path(a.frontlearning).resolve()),
                "labels": a.labels,
                "glacier_side": a.glacier_side,
                "n": FR.N_VERTICES,
            },
        )
        counts = {"samples": len(header["samples"])}
    print(
        json.dumps(
            {"event": "done", "output": a.out, "bytes": Path(a.out).stat().st_size, **counts}
        )
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
