"""``python -m arctic_assist.training <method> --data DIR --out MODEL.onnx --steps N ...``.

Trains one of :data:`arctic_assist.training.methods.METHODS` on a training-data folder
(:mod:`.data`), evaluates the exported network on the folder's ``test`` chips (pooled IoU
per region) and exports it to ONNX with the metadata (metrics in the provenance).
"""

from __future__ import annotations

import argparse
import logging
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .common import (
    add_trainer_args,
    build_trainer,
    emit,
    progress_mode,
    resume_checkpoint,
    run_cli,
    setup_runtime,
)
from ..core.spec import IGNORE
from ..io.training_data import TrainingData, Unlabelled
from .data import TileSampler, load_dataset
from .packed import source_path
from .augment import RadiometricConfig
from .methods import METHODS, SEMI_SUPERVISED, TrainConfig, make_method

log = logging.getLogger(__name__)
# a warm start fine-tunes at a tenth of the paper's learning rate unless --lr says otherwise
WARM_START_LR_FACTOR = 0.1
# on the CPU a step of the paper's 16 + 16 tiles of 192 px takes seconds: an expert's
# retraining gets many more, smaller steps (measured on Peel: 600 steps of 8 tiles of 64 px
# from scratch reach a held-out IoU of 0.7 in about two minutes on one core)
CPU_TILE, CPU_BATCH = 64, 8


def resolve_sizes(a: argparse.Namespace) -> None:
    """Fill ``--tile`` / ``--batch-*`` left unset: the paper's on a GPU, smaller on the CPU."""
    from .common import is_gpu_accelerator

    d = TrainConfig()
    gpu = is_gpu_accelerator(getattr(a, "accelerator", "auto"))
    if a.tile is None:
        a.tile = d.tile if gpu else CPU_TILE
    if a.batch_labelled is None:
        a.batch_labelled = d.batch_labelled if gpu else CPU_BATCH
    if a.batch_unlabelled is None:
        a.batch_unlabelled = d.batch_unlabelled if gpu else CPU_BATCH


class SamplerDataset(torch.utils.data.IterableDataset):
    """Endless batches from a :class:`TileSampler`, one seed per rank and worker."""

    def __init__(self, sampler_kwargs: dict[str, Any], seed: int) -> None:
        super().__init__()
        self.kw, self.seed = sampler_kwargs, seed
        self.sampler: TileSampler | None = None

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        rank = (
            torch.distributed.get_rank()
            if (torch.distributed.is_available() and torch.distributed.is_initialized())
            else 0
        )
        if self.sampler is None:
            self.sampler = TileSampler(**self.kw, seed=self.seed)
        self.sampler.reseed(self.seed * 7919 + rank * 101 + wid)
        while True:
            b = self.sampler.batch()
            yield {k: torch.from_numpy(v) for k, v in b.items()}


def build_parser(method: str) -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog=f"python -m arctic_assist.training {method}",
        description=f"Train {method} and export it to ONNX.",
    )
    p.add_argument("--data", required=True, help="training-data folder (manifest.json)")
    p.add_argument(
        "--unlabelled",
        nargs="*",
        default=[],
        metavar="RASTER",
        help="extra unlabelled rasters (same bands/dtype as the folder)",
    )
    p.add_argument("--out", required=True, help="output ONNX model")
    p.add_argument("--name", default=None, help="model name in the metadata")
    p.add_argument(
        "--base-model",
        default=None,
        help="warm start: a model exported by this project (.onnx; its width is taken from "
        "its metadata) or a training checkpoint (.ckpt)",
    )
    p.add_argument("--regions", nargs="*", default=None, help="labelled regions to train on")
    p.add_argument(
        "--unlabelled-regions",
        nargs="*",
        default=None,
        help="regions of the unlabelled rasters to sample (default: all)",
    )
    p.add_argument("--eval-split", default="test", help="split evaluated after training")
    g = p.add_argument_group("model and method (defaults: the paper's)")
    g.add_argument("--width", type=int, default=d.width)
    g.add_argument(
        "--tile",
        type=int,
        default=None,
        help=f"training tile, px (default: the paper's {d.tile} on a GPU, {CPU_TILE} on the CPU)",
    )
    g.add_argument(
        "--batch-labelled",
        type=int,
        default=None,
        help=f"labelled tiles per step (default: {d.batch_labelled} on a GPU, "
        f"{CPU_BATCH} on the CPU)",
    )
    g.add_argument(
        "--batch-unlabelled",
        type=int,
        default=None,
        help=f"unlabelled tiles per step (default: {d.batch_unlabelled} on a GPU, "
        f"{CPU_BATCH} on the CPU)",
    )
    g.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"peak learning rate (default {d.lr:g}; {d.lr * WARM_START_LR_FACTOR:g} with "
        "--base-model: a warm start fine-tunes, it does not start over)",
    )
    g.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--n-pseudo", type=int, default=d.n_pseudo)
    g.add_argument("--beta", type=float, default=d.beta)
    g.add_argument("--teacher-temp", type=float, default=d.teacher_temp)
    g.add_argument("--center-momentum", type=float, default=d.center_momentum)
    g.add_argument(
        "--ema-start",
        type=float,
        default=d.ema_start,
        help="teacher EMA momentum at the first step (default: tied to the run length, "
        "1 - 20/steps capped at the paper's 0.996)",
    )
    g.add_argument(
        "--ema-end",
        type=float,
        default=d.ema_end,
        help="teacher EMA momentum at the last step, a cosine from --ema-start (default: "
        "1 - 5/steps, the paper's 1.0 from 100k steps); equal to --ema-start keeps it "
        "constant, so the teacher averages over about 1/(1-momentum) steps",
    )
    g.add_argument(
        "--semi-start",
        type=float,
        default=d.semi_start,
        help="fraction of the run trained on the labels alone before the unlabelled term "
        "(pixeldino, fixmatchseg, adversarial) switches on (paper: 0)",
    )
    g.add_argument(
        "--semi-ramp",
        type=float,
        default=d.semi_ramp,
        help="fraction of the run over which the unlabelled term ramps in linearly",
    )
    g.add_argument(
        "--loss",
        choices=("bce", "bce_dice"),
        default=d.loss,
        help="supervised loss: bce (the paper's) or bce_dice (BCE + soft Dice)",
    )
    g.add_argument(
        "--positive-fraction",
        type=float,
        default=0.5,
        help="share of labelled crops placed around a labelled thaw-slump pixel (0: uniform)",
    )
    g.add_argument(
        "--no-standardize",
        action="store_true",
        help="ablation: no per-band input standardisation from the training chips",
    )
    g.add_argument(
        "--no-adapt-base",
        action="store_true",
        help="warm start: train on the scenes' own levels (default: scaled to the base "
        "model's band medians, as detection scales a scene for that model)",
    )
    g.add_argument(
        "--radiometric",
        action="store_true",
        help="radiometric augmentation: each labelled sample and the student's view get "
        "another scene's levels (gain x 0.77-1.3, offset -10..+30 %% of the band's mean, "
        "per sample, p 0.8); off by default (detection's scene adaptation does this exactly)",
    )
    g.add_argument(
        "--select",
        choices=("auto", "teacher", "student"),
        default="auto",
        help="pixeldino: the network exported; auto = the better on the selection chips",
    )
    g.add_argument(
        "--independent-warps",
        action="store_true",
        help="ablation: the released code's independent warps of view and target",
    )
    g.add_argument("--export-tile", type=int, default=192)
    g.add_argument("--export-overlap", type=int, default=48)
    add_trainer_args(p, default_steps=2000)
    return p


def config_from_args(method: str, a: argparse.Namespace, in_channels: int) -> TrainConfig:
    resolve_sizes(a)
    return TrainConfig(
        method=method,
        in_channels=in_channels,
        width=a.width,
        n_pseudo=a.n_pseudo,
        total_steps=a.steps,
        lr=learning_rate(a),
        warmup_steps=a.warmup_steps,
        weight_decay=a.weight_decay,
        batch_labelled=a.batch_labelled,
        batch_unlabelled=a.batch_unlabelled if method in SEMI_SUPERVISED else 0,
        tile=a.tile,
        beta=a.beta,
        teacher_temp=a.teacher_temp,
        center_momentum=a.center_momentum,
        ema_start=a.ema_start,
        ema_end=a.ema_end,
        semi_start=a.semi_start,
        semi_ramp=a.semi_ramp,
        loss=a.loss,
        independent_warps=a.independent_warps,
        radiometric=RadiometricConfig(p=0.8 if getattr(a, "radiometric", False) else 0.0),
    )


def learning_rate(a: argparse.Namespace) -> float:
    """``--lr``, else the paper's rate, scaled by ``WARM_START_LR_FACTOR`` for a warm start
    (the full rate on a handful of reviewed chips undoes what the base model knew)."""
    if a.lr is not None:
        return float(a.lr)
    lr = TrainConfig().lr
    return lr * WARM_START_LR_FACTOR if getattr(a, "base_model", None) else lr


def base_model_bands(path: str, bands: list[str], default_width: int) -> tuple[int, list[str]]:
    """The U-Net width of an exported base model (its provenance) and the band names the new
    model carries.

    The training data's bands must be the model's bands in the model's order: compared by
    canonical name (``blue`` = ``B2``, see :func:`arctic_assist.core.bands.canonical_band`),
    or only by count where the data's names say nothing (``band1..band4`` from a raster
    without band descriptions); the new model then keeps the base model's band names.
    """
    from ..core.bands import bands_fit
    from .export import read_spec

    spec = read_spec(path)
    if spec.task != "segmentation":
        raise ValueError(f"base model {path} is a '{spec.task}' model, not a segmentation model")
    if not bands_fit(bands, spec.bands):
        raise ValueError(
            f"base model {path} expects bands {', '.join(spec.bands)}, but the training data "
            f"has {', '.join(bands)}; export the training data from a raster with the "
            "model's bands in the model's order"
        )
    return int(spec.provenance.get("width", default_width)), list(spec.bands)


def warm_start(module: torch.nn.Module, path: str) -> None:
    """Load the network weights of ``path`` into the student (and teacher) of ``module``.

    ``.onnx``: the initializers of a model this project exported (``net.<param>`` names);
    every parameter of the exported RTS path must be found with its shape, else a clear
    error (the pseudo-class head, not exported, starts fresh). ``.ckpt``: a checkpoint.
    """
    target = module.student
    # models and checkpoints from before the network standardised its input were trained
    # on the identity statistics; newer ones overwrite these when loaded
    target.in_mean.zero_()
    target.in_std.fill_(1.0)
    if str(path).lower().endswith(".onnx"):
        from .export import load_onnx_weights

        # pseudo_head: not exported
        load_onnx_weights(target, path, optional=("pseudo_head.", "in_mean", "in_std"))
    else:
        from .checkpoint import load_checkpoint_file

        state = load_checkpoint_file(path)  # weights only: never runs code from the file
        state = state.get("state_dict", state)
        teacher = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("teacher.")}
        student = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("student.")}
        weights = {"in_mean": target.in_mean, "in_std": target.in_std}
        weights.update(teacher or student or state)
        # the whole network, pseudo-class head included, and PixelDINO's centre: a warm
        # start from a checkpoint keeps what the base run learned for the unlabelled term
        target.load_state_dict(weights)
        if hasattr(module, "center") and "center" in state:
            module.center.copy_(state["center"])
    if hasattr(module, "teacher"):
        module.teacher.load_state_dict(target.state_dict())


def largest_chip(data: TrainingData, split: str) -> int:
    """The longest side of the labelled chips of ``split`` (sizes read when the folder was
    loaded), rounded down to a multiple of 16 (the U-Net's input multiple); 0 if unknown."""
    side = max((max(c.size) for c in data.select(split) if c.size), default=0)
    return side // 16 * 16


def input_statistics(data: TrainingData, split: str) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation of the normalised labelled chips of ``split``
    (valid pixels only), each chip counted by its sampling weight (what the network is
    shown); the fixed input standardisation of a network trained from scratch."""
    import numpy as np

    total = np.zeros(len(data.bands))
    sq = np.zeros(len(data.bands))
    count = 0
    for chip in data.select(split):
        img, mask = data.read_chip(chip)
        ok = (mask != IGNORE) if mask is not None else np.ones(img.shape[1:], bool)
        vals = img[:, ok].astype(np.float64)
        total += chip.weight * vals.sum(axis=1)
        sq += chip.weight * (vals**2).sum(axis=1)
        count += chip.weight * vals.shape[1]
    if count == 0:
        return [0.0] * len(data.bands), [1.0] * len(data.bands)
    mean = total / count
    std = np.sqrt(np.maximum(sq / count - mean**2, 0.0))
    return mean.tolist(), std.tolist()


def scene_medians(data: TrainingData, split: str = "train", regions=None) -> list[float]:
    """Per-band median of the raw values of the training *scenes*: the unlabelled rasters,
    whole (only those of ``regions`` when given), else the labelled chips of ``split``;
    valid pixels only, at most about a million pixels per scene (a regular stride).

    The reference of the plugin's scene adaptation (``ModelSpec.input_medians``,
    :mod:`arctic_assist.core.adapt`), which measures a scene the same way, so a training
    scene is left exactly as it is. Read from the raw rasters; packed training data holds
    only normalised values, which are mapped back through the exact inverse of the
    normalisation (monotone per band; the log-sigmoid's quantisation moves a median by up to
    ~0.5 %).
    """
    import numpy as np

    from ..core.normalize import denormalize
    from ..core.spec import parse_normalization

    norm = parse_normalization(data.normalization, len(data.bands))

    def pixels(path, normalised) -> np.ndarray:
        got = data.read_raw(path)
        if got is not None:
            raw, valid = got
            vals = raw[:, valid].astype(np.float64)
        else:
            img = normalised()
            vals = denormalize(img[:, (img != 0).any(axis=0)], norm)
        stride = max(1, vals.shape[1] // (1 << 20))
        return vals[:, ::stride]

    scenes = [u for u in data.unlabelled if not regions or u.region in regions]
    parts = [pixels(u.image, lambda u=u: data.read_unlabelled(u)) for u in scenes]
    if not scenes:
        parts = [pixels(c.image, lambda c=c: data.read_chip(c)[0]) for c in data.select(split)]
    vals = np.concatenate(parts, axis=1) if parts else np.zeros((len(data.bands), 0))
    if vals.shape[1] == 0:
        raise ValueError("no valid pixels in the training scenes")
    return np.median(vals, axis=1).tolist()


def training_medians(data: TrainingData, a: argparse.Namespace) -> list[float]:
    """The band medians the exported model carries (detection's scene adaptation).

    From scratch: the training scenes' own (:func:`scene_medians`). A warm start from a
    model that carries medians brings the training scenes to that model's levels first
    (``data.gain``, as detection brought the scene to them when that model made the
    proposals the expert reviewed), unless ``--no-adapt-base`` or the gains are beyond what
    light explains (``core.adapt.GAIN_RANGE``); the new model then keeps the base medians.
    """
    from ..core import adapt

    own = scene_medians(data, "train", a.unlabelled_regions)
    base = getattr(a, "base_model", None)
    if not base or not str(base).lower().endswith(".onnx") or getattr(a, "no_adapt_base", False):
        return own
    from .export import read_spec

    ref = read_spec(base).input_medians
    if ref is None:
        return own
    plan = adapt.plan(ref, adapt.SceneStatistics(tuple(own), adapt.MIN_PIXELS), "auto", data.bands)
    if plan.adaptation is None:
        log.warning(
            "warm start: the training scenes would need gains beyond x %g .. x %g to reach "
            "the base model's band medians (%s): another kind of land, trained at its own "
            "levels",
            *adapt.GAIN_RANGE,
            ", ".join(f"{b} x {r / o:.3f}" for b, r, o in zip(data.bands, ref, own)),
        )
        return own
    data.gain = plan.adaptation.gain
    log.info(
        "warm start: the training scenes scaled to the base model's band medians (%s)",
        ", ".join(f"{b} x {g:.3f}" for b, g in zip(data.bands, data.gain)),
    )
    return list(ref)


THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(2, 19))  # 0.10 .. 0.90


def select_network(module, data: TrainingData, mode: str = "auto") -> dict[str, Any]:
    """Choose the exported network (PixelDINO: teacher or student) and its threshold.

    On the ``val`` chips when the folder has any, else on the ``train`` chips (then the
    choice is optimistic, and the metadata says so): for every candidate network the pooled
    IoU (chips counted by their sampling weight) at thresholds 0.10 .. 0.90; the best pair
    wins (ties: the threshold nearest 0.5, then the teacher). Sets ``module.exported`` and
    returns what was chosen and why.
    """
    from .evaluate import pooled_counts_by_threshold, scores, torch_predictor

    split = "val" if data.select("val") else "train"
    names = ["teacher", "student"] if hasattr(module, "teacher") else ["student"]
    if mode in ("teacher", "student") and mode in names:
        names = [mode]
    best: tuple | None = None
    table: dict[str, dict[str, float]] = {}
    for name in names:
        net = getattr(module, name)
        counts = pooled_counts_by_threshold(
            torch_predictor(net), data, split, THRESHOLDS, weighted=True
        )
        table[name] = {}
        for t, c in zip(THRESHOLDS, counts):
            iou = scores(c)["iou"]
            iou = -1.0 if iou != iou else iou
            table[name][f"{t:.2f}"] = round(iou, 4)
            key = (iou, -abs(t - 0.5), name == "teacher")
            if best is None or key > best[0]:
                best = (key, name, t)
    assert best is not None
    (iou, _, _), name, t = best
    module.exported = name
    return {
        "network": name,
        "threshold": float(t),
        "split": split,
        "iou": round(float(iou), 4),
        "iou_by_threshold": table,
    }


def recipe(cfg, a: argparse.Namespace, scene_gain=None) -> dict[str, Any]:
    """The training recipe as it ran (what a reader of the model card needs to redo it)."""
    start, end = cfg.ema_schedule()
    return {
        "loss": cfg.loss,
        "positive_fraction": a.positive_fraction,
        "semi_start": cfg.semi_start,
        "semi_ramp": cfg.semi_ramp,
        "ema": [start, end],
        "lr": cfg.lr,
        "tile": cfg.tile,
        "batch": [cfg.batch_labelled, cfg.batch_unlabelled],
        "seed": getattr(a, "seed", None),
        "warm_start": bool(getattr(a, "base_model", None)),
        "radiometric": asdict(cfg.radiometric) if cfg.radiometric.active else None,
        "scene_gain": list(scene_gain) if scene_gain else None,
    }


def train(method: str, a: argparse.Namespace) -> dict[str, Any]:
    """Train, evaluate and export; returns {'output', 'metrics', 'module'}."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method}")
    a.method = method
    setup_runtime(a)
    resolve_sizes(a)
    data: TrainingData = load_dataset(a.data)
    for r in a.unlabelled:
        data.unlabelled.append(Unlabelled(Path(r), Path(r).stem))
    bands = list(data.bands)
    if a.base_model and str(a.base_model).lower().endswith(".onnx"):
        a.width, bands = base_model_bands(a.base_model, bands, a.width)
    largest = largest_chip(data, "train")
    if largest and a.tile > largest:
        # tiles larger than every chip would be mostly padding (ignored pixels): wasted work
        log.warning(
            "training tile %d px > the largest training chip (%d px): using %d px",
            a.tile,
            largest,
            largest,
        )
        a.tile = largest
    cfg = config_from_args(method, a, len(data.bands))
    meta = {
        "bands": bands,
        "dtype": data.dtype,
        "normalization": data.normalization,
        "nodata": data.nodata,
        "pixel_size_m": data.pixel_size_m,
        "training_data": source_path(a.data),
        "input_medians": training_medians(data, a),
    }
    module = make_method(cfg, meta)
    if a.base_model:
        warm_start(module, a.base_model)
    elif not a.no_standardize:
        mean, std = input_statistics(data, "train")
        module.student.set_input_stats(mean, std)
        if hasattr(module, "teacher"):
            module.teacher.set_input_stats(mean, std)
    sampler_kw = dict(
        data=data,
        tile=cfg.tile,
        batch_labelled=cfg.batch_labelled,
        batch_unlabelled=cfg.batch_unlabelled,
        split="train",
        regions=a.regions,
        unlabelled_regions=a.unlabelled_regions,
        positive_fraction=a.positive_fraction,
    )
    loader = torch.utils.data.DataLoader(
        SamplerDataset(sampler_kw, a.seed),
        batch_size=None,
        num_workers=a.num_workers,
        persistent_workers=a.num_workers > 0,
    )
    trainer = build_trainer(a, steps_per_batch=module.optimizer_steps_per_batch)
    t0 = time.perf_counter()
    resumed = bool(getattr(a, "resume", None))
    trainer.fit(module, train_dataloaders=loader, ckpt_path=resume_checkpoint(a))
    fit_s = time.perf_counter() - t0
    done = trainer.global_step // module.optimizer_steps_per_batch
    result: dict[str, Any] = {
        "module": module,
        "output": None,
        "metrics": {},
        "timing": {
            "train_s": round(fit_s, 1),
            "steps": done,
            # a resumed run did only part of the steps here
            "steps_per_s": None if resumed or not fit_s else round(done / fit_s, 3),
            "resumed": resumed,
        },
    }
    log.info("trained %d steps in %.0f s (%.2f steps/s)", done, fit_s, done / max(fit_s, 1e-9))
    if not trainer.is_global_zero:
        return result
    from .evaluate import evaluate_data, export_method, torch_predictor

    module = module.float().cpu().eval()
    selection = select_network(module, data, a.select)
    threshold = selection["threshold"]
    if data.select(a.eval_split):
        predict = torch_predictor(module.eval_net())
        result["metrics"] = {
            a.eval_split: evaluate_data(predict, data, a.eval_split, threshold=threshold)
        }
        if abs(threshold - 0.5) > 1e-9:
            result["metrics"][f"{a.eval_split}@0.5"] = evaluate_data(predict, data, a.eval_split)
    result["selection"] = selection
    path, _ = export_method(
        module,
        a.out,
        metrics=result["metrics"],
        steps=trainer.global_step // module.optimizer_steps_per_batch,
        name=a.name,
        tile_size=a.export_tile,
        tile_overlap=a.export_overlap,
        threshold=threshold,
        extra_provenance={"selection": selection, "recipe": recipe(cfg, a, data.gain)},
    )
    result["output"] = str(path)
    return result


def main(argv: list[str] | None = None, *, method: str = "pixeldino") -> int:
    a = build_parser(method).parse_args(argv)
    json_mode = progress_mode(a) == "json"

    def run() -> int:
        res = train(method, a)
        if res["output"]:
            if json_mode:
                emit(
                    "done",
                    output=res["output"],
                    metrics=res["metrics"],
                    selection=res.get("selection"),
                    timing=res.get("timing"),
                )
            else:
                print(
                    json.dumps(
                        {
                            "output": res["output"],
                            "metrics": res["metrics"],
                            "selection": res.get("selection"),
                            "timing": res.get("timing"),
                        },
                        default=float,
                    )
                )
        return 0

    return run_cli(run, json_mode=json_mode)
