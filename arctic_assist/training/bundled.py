"""Build the bundled model ``models/rts_pixeldino_s2_bgrn.onnx`` (``make models``).

Training data: the real Peel Plateau Sentinel-2 crop (bands B2, B3, B4, B8) with the 12
experts' *majority vote* as labels (chips of 128 px; 64 px crops at random places in them).
Synthetic scenes (:mod:`.synthetic`) can be added (``--synthetic-scenes N``); measured, they
hurt: pixeldino, 1500 steps, Peel bottom half 0.35 with them vs 0.70 without, and 19.7 % vs
1.7 % of an RTS-free Sentinel-2 scene proposed (``benchmarks/bench_rts_model.py``).
The Peel image's bottom part (rows >= ``--holdout-row``) is held out: its chips are split
'test' and the exported model's metadata reports the pooled IoU there
(next to the experts' own mean IoU against their majority vote, 0.71, Nitze et al. 2024).
The whole Peel image is also unlabelled data (semi-supervised, transductive).
Scenes without thaw slumps can be added as background labels (``--negative-scene``,
:mod:`.negatives`); measured over 3 seeds with the one such scene at hand (Landsat 8,
resampled), they hurt too (README, issue 12), so ``make models-rts`` uses none.

    python -m arctic_assist.training.bundled --data ../shared/data \
        --out models/rts_pixeldino_s2_bgrn.onnx

Data: Nitze et al. 2024, RTS digitisation experiment (MIT); Copernicus Sentinel-2.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..io.training_data import build_dataset, load_dataset, merge_datasets
from . import synthetic

EXPERT_AGREEMENT_IOU = 0.71


def prepare(
    data_root: Path,
    work: Path,
    *,
    holdout_row: int = 128,
    chip: int = 128,
    synthetic_scenes: int = 0,
    synthetic_size: int = 128,
    peel_weight: float = 4.0,
    negatives: Sequence[Path] = (),
    negative_share: float = 0.5,
):
    peel = data_root / "rts" / "peel"
    raster = peel / "peel_s2_bgrn_10m.tif"
    shps = sorted(glob.glob(str(peel / "labels_by_expert" / "expert_*.shp")))
    if not raster.is_file() or not shps:
        raise FileNotFoundError(f"Peel data not found under {peel} (set DATA=...)")

    def split(ri, x, y, w, h):
        return "test" if y >= holdout_row else ("train" if y + h <= holdout_row else None)

    peel_ds = build_dataset(
        [raster],
        shps,
        work / "peel",
        chip,
        band_names=["B2", "B3", "B4", "B8"],
        aoi_path=peel / "peel_aoi.geojson",
        nodata=0,
        regions=["peel"],
        split_fn=split,
        label_mode="majority",
        provenance={"labels": "majority vote of 12 experts (Nitze et al. 2024)"},
    )
    folders, weights = [work / "peel"], [1.0]
    if negatives:
        folders.append(work / "negatives")
        weights.append(
            negative_weight(peel_ds, negative_dataset(negatives, work, chip), negative_share)
        )
    if synthetic_scenes <= 0:
        merged = merge_datasets(work / "merged", folders, weights=weights)
        return merged, peel_ds, None
    idx = synthetic.generate(
        work / "synthetic",
        {r: synthetic_scenes for r in synthetic.REGIONS},
        synthetic_size,
        seed=12345,
    )
    rasters = [s["tif"] for r in idx for s in idx[r]]
    labels = [s["labels"] for r in idx for s in idx[r]]
    regions = [f"synthetic_{r}" for r in idx for _ in idx[r]]
    syn_ds = build_dataset(rasters, labels, work / "synthetic_ds", chip, nodata=0, regions=regions)
    merged = merge_datasets(
        work / "merged",
        folders + [work / "synthetic_ds"],
        weights=[w * peel_weight for w in weights] + [1.0],
    )
    return merged, peel_ds, syn_ds


def negative_dataset(rasters: Sequence[Path], work: Path, chip: int):
    """A training-data folder of scenes without thaw slumps: every valid pixel labelled
    background (an empty label layer), not listed as unlabelled data."""
    out = work / "negatives"
    out.mkdir(parents=True, exist_ok=True)
    empty = out / "no_thaw_slumps.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    return build_dataset(
        [str(r) for r in rasters],
        [empty],
        out,
        chip,
        band_names=["B2", "B3", "B4", "B8"],
        nodata=0,
        regions=[f"negative_{Path(r).stem}" for r in rasters],
        add_unlabelled=False,
        provenance={"labels": "none: scenes without thaw slumps, every pixel background"},
    )


def negative_weight(peel, neg, share: float) -> float:
    """Sampling weight of each negative chip so that ``share`` of the uniformly placed
    training crops (by area, :class:`~.data.TileSampler`) come from the negative scenes;
    the positive-aware crops all come from labelled slumps, so the share of all labelled
    crops is about ``share x (1 - positive fraction)``."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"negative share must be in (0, 1), got {share}")

    def area(d) -> float:  # chip sizes were read when the folder was checked
        return float(
            sum(
                c.size[0] * c.size[1] if c.size else d.read_chip(c)[1].size
                for c in d.select("train")
            )
        )

    return share / (1.0 - share) * area(peel) / max(area(neg), 1.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m arctic_assist.training.bundled")
    p.add_argument("--data", default="../shared/data", help="shared data root (DATA=)")
    p.add_argument("--out", default="models/rts_pixeldino_s2_bgrn.onnx")
    p.add_argument("--work", default="build/rts_bundled")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--tile", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--progress", default="none")
    p.add_argument("--holdout-row", type=int, default=128)
    p.add_argument(
        "--chip",
        type=int,
        default=128,
        help="chip size of the prepared folders (training crops of --tile px are "
        "cut at random places inside them)",
    )
    p.add_argument(
        "--synthetic-scenes",
        type=int,
        default=0,
        help="synthetic scenes per region beside Peel (0: Peel alone)",
    )
    p.add_argument(
        "--negative-scene",
        action="append",
        default=[],
        metavar="TIF",
        help="a B2,B3,B4,B8 10 m scene without thaw slumps, every pixel labelled background "
        "(repeatable; e.g. python -m arctic_assist.training.negatives)",
    )
    p.add_argument(
        "--negative-share",
        type=float,
        default=0.5,
        help="share of the uniformly placed training crops taken from the negative scenes",
    )
    p.add_argument(
        "--method", default="pixeldino", help="pixeldino (default) or a baseline (supervised, ...)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run under WORK/runs from its last checkpoint when it has one "
        "(same settings; the steps done count)",
    )
    p.add_argument(
        "--radiometric",
        action="store_true",
        help="train with the radiometric augmentation (another scene's levels per sample)",
    )
    p.add_argument("--accelerator", default="auto", help="auto (a CUDA GPU when present), cpu, gpu")
    p.add_argument("--num-workers", type=int, default=0, help="data-loader worker processes")
    p.add_argument("--precision", default="auto", help="auto: bf16/16-mixed on a GPU, 32 on CPU")
    p.add_argument(
        "--reuse-data",
        action="store_true",
        help="train on WORK/merged as an earlier run prepared it (e.g. on a GPU server "
        "without the shared data)",
    )
    a = p.parse_args(argv)
    work = Path(a.work)
    if a.reuse_data and (work / "merged" / "manifest.json").is_file():
        merged = load_dataset(work / "merged")
    else:
        merged, _, _ = prepare(
            Path(a.data),
            work,
            holdout_row=a.holdout_row,
            chip=a.chip,
            synthetic_scenes=a.synthetic_scenes,
            negatives=[Path(n) for n in a.negative_scene],
            negative_share=a.negative_share,
        )
    from .train import main as train_main

    args = [
        "--data",
        str(merged.root),
        "--out",
        a.out,
        "--name",
        "rts_pixeldino_s2_bgrn",
        "--steps",
        str(a.steps),
        "--width",
        str(a.width),
        "--tile",
        str(a.tile),
        "--batch-labelled",
        str(a.batch),
        "--batch-unlabelled",
        str(a.batch),
        "--threads",
        str(a.threads),
        "--progress",
        a.progress,
        "--log-dir",
        str(work / "runs"),
        "--checkpoint-every",
        str(max(100, a.steps // 4)),
        "--accelerator",
        a.accelerator,
        "--precision",
        a.precision,
        "--num-workers",
        str(a.num_workers),
        "--seed",
        str(a.seed),
        *(["--radiometric"] if a.radiometric else []),
    ]
    last = work / "runs" / a.method / "checkpoints" / "last.ckpt"
    if a.resume and last.is_file():
        print(f"resuming {last}", flush=True)
        args += ["--resume", str(last)]
    rc = train_main(args, method=a.method)
    if rc == 0:
        from .export import read_spec

        spec = read_spec(a.out)
        peel = spec.provenance.get("metrics", {}).get("test", {}).get("peel", {})
        print(
            json.dumps(
                {
                    "event": "summary",
                    "output": a.out,
                    "peel_holdout_iou": peel.get("iou"),
                    "experts_vs_majority_iou": EXPERT_AGREEMENT_IOU,
                }
            )
        )
    return rc


if __name__ == "__main__":
    sys.exit(main())
