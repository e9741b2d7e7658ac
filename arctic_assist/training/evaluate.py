"""Evaluation (pooled IoU, precision, recall, F1), the model spec, and checkpoint export.

IoU = TP / (TP + FP + FN) with TP, FP, FN summed over every chip of a region (pixels
labelled 255 are ignored), probability > threshold (0.5), computed with the network that
is exported (the EMA teacher for PixelDINO).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..core.spec import IGNORE, MULTIPLE_OF, ModelSpec, validate_metadata
from ..io.training_data import PIXELDINO_NORMALIZATION, TrainingData
from .data import load_dataset


def confusion(prob: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """[TP, FP, FN, TN] of ``prob > threshold`` against ``mask`` (255 ignored)."""
    valid = mask != IGNORE
    pred = (prob > threshold) & valid
    truth = (mask == 1) & valid
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    tn = int(np.sum(valid)) - tp - fp - fn
    return np.array([tp, fp, fn, tn], dtype=np.int64)


def scores(counts: Sequence[int]) -> dict[str, float]:
    # numpy scalars as Python numbers: ints stay ints, weighted counts floats
    tp, fp, fn, _ = (v.item() if isinstance(v, np.generic) else v for v in counts)
    iou = tp / (tp + fp + fn) if tp + fp + fn else float("nan")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {
        "iou": iou,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def predict_padded(
    predict: Callable[[np.ndarray], np.ndarray], img: np.ndarray, multiple: int = MULTIPLE_OF
) -> np.ndarray:
    """Probability H x W of one C x H x W image, reflect-padded to a multiple of 16."""
    c, h, w = img.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    x = np.pad(
        img, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > max(ph, pw) else "edge"
    )
    return predict(x[None].astype(np.float32))[0, 0, :h, :w]


def torch_predictor(net) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    from .unet import ProbabilityModel

    model = ProbabilityModel(net).eval()

    def run(x: np.ndarray) -> np.ndarray:
        p = next(model.parameters())
        with torch.no_grad():
            return model(torch.from_numpy(x).to(p.device, p.dtype)).float().cpu().numpy()

    return run


def onnx_predictor(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    from .export import onnx_session

    sess = onnx_session(path)
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def evaluate_data(
    predict: Callable[[np.ndarray], np.ndarray],
    data: TrainingData,
    split: str | None = "test",
    regions: Sequence[str] | None = None,
    threshold: float = 0.5,
) -> dict[str, dict[str, float]]:
    """Pooled scores per region (and 'all') over the chips of ``split``."""
    per: dict[str, np.ndarray] = {}
    for chip in data.select(split, regions):
        img, mask = data.read_chip(chip)
        counts = confusion(predict_padded(predict, img), mask, threshold)
        per[chip.region] = per.get(chip.region, 0) + counts
        per["all"] = per.get("all", 0) + counts
    return {k: scores(v) for k, v in per.items()}


def pooled_counts_by_threshold(
    predict: Callable[[np.ndarray], np.ndarray],
    data: TrainingData,
    split: str | None,
    thresholds: Sequence[float],
    weighted: bool = False,
) -> list[np.ndarray]:
    """Pooled [TP, FP, FN, TN] over the chips of ``split``, one array per threshold (one
    prediction per chip); ``weighted``: each chip's counts times its sampling weight (a
    folder that merges scenes at different weights, e.g. the bundled model's negative
    scenes, is scored as the network is shown it)."""
    total = [np.zeros(4, np.float64 if weighted else np.int64) for _ in thresholds]
    for chip in data.select(split):
        img, mask = data.read_chip(chip)
        prob = predict_padded(predict, img)
        for i, t in enumerate(thresholds):
            c = confusion(prob, mask, t)
            total[i] += chip.weight * c if weighted else c
    return total


# ----------------------------------------------------------------------------- the spec


def build_spec(
    *,
    name: str,
    bands: Sequence[str],
    dtype: str,
    normalization: Mapping[str, Any],
    nodata: float | None,
    pixel_size_m: float | None,
    method: str,
    training_data: str,
    steps: int,
    metrics: Mapping[str, Any] | None = None,
    tile_size: int = 192,
    tile_overlap: int = 48,
    threshold: float = 0.5,
    version: str = "1.0.0",
    description: str = "",
    extra_provenance: Mapping[str, Any] | None = None,
) -> ModelSpec:
    """The segmentation :class:`ModelSpec` of an exported RTS model (validated)."""
    from .export import code_version, training_command

    norm_doc = dict(normalization)
    doc = {
        "schema": "arctic_assist.model",
        "schema_version": 1,
        "name": name,
        "version": version,
        "task": "segmentation",
        "description": description or f"RTS segmentation ({method}), U-Net, sigmoid output",
        "input": {
            "name": "image",
            "layout": "NCHW",
            "dtype": dtype,
            "bands": list(bands),
            "normalization": norm_doc,
            "nodata": {"value": nodata, "fill": 0.0},
        },
        "pixel_size_m": pixel_size_m,
        "tile": {"size": tile_size, "overlap": tile_overlap, "multiple_of": MULTIPLE_OF},
        "classes": ["background", "rts"],
        "threshold": threshold,
        "outputs": [{"name": "rts_probability", "shape": ["N", 1, "H", "W"], "activation": "none"}],
        "contour": None,
        "opset": 17,
        "provenance": {
            "method": method,
            "training_data": training_data,
            "steps": int(steps),
            "metrics": _clean(dict(metrics or {})),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "code_version": code_version(),
            "command": training_command(),
            **dict(extra_provenance or {}),
        },
    }
    return validate_metadata(json.loads(json.dumps(doc)))


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return None if obj != obj else round(obj, 5)
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


def export_method(
    module,
    out: str | Path,
    *,
    metrics: Mapping[str, Any] | None = None,
    steps: int | None = None,
    name: str | None = None,
    training_data: str | None = None,
    tile_size: int = 192,
    tile_overlap: int = 48,
    parity: bool = True,
    threshold: float = 0.5,
    extra_provenance: Mapping[str, Any] | None = None,
) -> tuple[Path, ModelSpec]:
    """Export the module's evaluated network (teacher for PixelDINO) as a probability model."""
    import torch

    from .export import export_onnx, parity_check
    from .unet import ProbabilityModel

    meta = dict(module.hparams.get("meta", {}))
    cfg = module.cfg
    spec = build_spec(
        name=name or Path(out).stem,
        bands=meta.get("bands") or [f"band{i + 1}" for i in range(cfg.in_channels)],
        dtype=meta.get("dtype", "uint16"),
        normalization=meta.get("normalization", PIXELDINO_NORMALIZATION),
        nodata=meta.get("nodata", 0),
        pixel_size_m=meta.get("pixel_size_m"),
        method=cfg.method,
        training_data=training_data or str(meta.get("training_data", "")),
        steps=int(
            steps if steps is not None else module.global_step // module.optimizer_steps_per_batch
        ),
        metrics=metrics,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        threshold=threshold,
        extra_provenance={
            "width": cfg.width,
            "train_tile": cfg.tile,
            **dict(extra_provenance or {}),
        },
    )
    unet = module.eval_net()
    medians = meta.get("input_medians")  # train.scene_medians: the training scenes'
    if medians:
        # what the plugin's scene adaptation brings a new scene to (core/adapt.py)
        spec = dataclasses.replace(spec, input_medians=tuple(float(v) for v in medians))
    net = ProbabilityModel(unet).float().cpu().eval()
    example = torch.rand(1, cfg.in_channels, 64, 64)
    path = export_onnx(
        net,
        example,
        spec,
        out,
        ["image"],
        ["rts_probability"],
        {"image": {0: "N", 2: "H", 3: "W"}, "rts_probability": {0: "N", 2: "H", 3: "W"}},
    )
    if parity:
        parity_check(net, path, torch.rand(2, cfg.in_channels, 48, 80), atol=1e-4)
    return path, spec


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m arctic_assist.training evaluate",
        description="Pooled IoU/precision/recall/F1 per region.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="exported ONNX model")
    src.add_argument("--checkpoint", help="Lightning checkpoint (.ckpt)")
    p.add_argument("--data", required=True, help="training-data folder")
    p.add_argument("--split", default="test", help="train, val, test or all")
    p.add_argument("--regions", nargs="*", default=None)
    p.add_argument("--threshold", type=float, default=0.5)
    a = p.parse_args(argv)
    data = load_dataset(a.data)
    if a.model:
        predict = onnx_predictor(a.model)
    else:
        from .methods import load_checkpoint

        predict = torch_predictor(load_checkpoint(a.checkpoint).eval_net())
    res = evaluate_data(
        predict, data, None if a.split == "all" else a.split, a.regions, a.threshold
    )
    print(json.dumps({"event": "metrics", "split": a.split, "metrics": _clean(res)}))
    return 0


def export_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m arctic_assist.training export",
        description="Export a training checkpoint to ONNX with metadata.",
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--name", default=None)
    p.add_argument("--tile-size", type=int, default=192)
    p.add_argument("--tile-overlap", type=int, default=48)
    p.add_argument("--metrics-json", default=None, help="JSON file of metrics for provenance")
    a = p.parse_args(argv)
    from .methods import load_checkpoint

    from .checkpoint import load_checkpoint_file

    module = load_checkpoint(a.checkpoint)  # weights only, refuses a crafted file
    ckpt_step = load_checkpoint_file(a.checkpoint).get("global_step")
    metrics = json.loads(Path(a.metrics_json).read_text()) if a.metrics_json else {}
    steps = (ckpt_step or 0) // module.optimizer_steps_per_batch
    path, _ = export_method(
        module,
        a.out,
        metrics=metrics,
        steps=steps,
        name=a.name,
        tile_size=a.tile_size,
        tile_overlap=a.tile_overlap,
    )
    print(json.dumps({"event": "done", "output": str(path)}))
    return 0
