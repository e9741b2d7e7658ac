"""The thaw-slump recipe on little data: ablations on the real Peel image, several seeds.

    python benchmarks/bench_rts_recipe.py [--steps 600] [--seeds 0 1 2] \
        [--variants new supervised_new ...] [--work build/bench_rts_recipe] [--resume]

Protocol (the expert's setting of issue 12): labels only in the top half of the Peel
Sentinel-2 crop (the 12 experts' majority vote inside their AOI, chips of ``--chip`` px),
the whole image as unlabelled data, training from scratch on the CPU, scored on the bottom
half (never trained on): pooled pixel IoU at 10 m at the threshold the run chose on its own
training chips, and at 0.5. Each variant is one ``python -m arctic_assist.training`` command
(printed); results go to ``--work/results.json`` after every run (``--resume`` keeps them).
Numbers, not pass/fail. Data: Nitze et al. 2024 (MIT); Copernicus Sentinel-2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# each variant: (method, extra arguments); "new" is the default recipe of the trainer
OLD = [
    "--loss",
    "bce",
    "--positive-fraction",
    "0",
    "--semi-start",
    "0",
    "--semi-ramp",
    "0",
    "--ema-start",
    "0.996",
    "--ema-end",
    "1.0",
    "--select",
    "teacher",
    "--no-standardize",
]
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "pixeldino": ("pixeldino", []),
    "supervised": ("supervised", []),
    "supervised_aug": ("supervised_aug", []),
    "pixeldino_old": ("pixeldino", OLD),
    "supervised_old": (
        "supervised",
        ["--loss", "bce", "--positive-fraction", "0", "--no-standardize"],
    ),
    "pixeldino_bce": ("pixeldino", ["--loss", "bce"]),
    "pixeldino_uniform": ("pixeldino", ["--positive-fraction", "0"]),
    "pixeldino_nostd": ("pixeldino", ["--no-standardize"]),
    "pixeldino_semi0": ("pixeldino", ["--semi-start", "0", "--semi-ramp", "0"]),
    # one lever off at a time, on the default method of the loop
    "supervised_bce": ("supervised", ["--loss", "bce"]),
    "supervised_uniform": ("supervised", ["--positive-fraction", "0"]),
    "supervised_nostd": ("supervised", ["--no-standardize"]),
    "supervised_radiometric": ("supervised", ["--radiometric"]),
    # the loop's warm start from the bundled model (on a --shift'ed Peel: another light)
    "warm": ("supervised", ["--base-model", str(ROOT / "models" / "rts_pixeldino_s2_bgrn.onnx")]),
    "warm_own_levels": (
        "supervised",
        ["--base-model", str(ROOT / "models" / "rts_pixeldino_s2_bgrn.onnx"), "--no-adapt-base"],
    ),
    "pixeldino_radiometric": ("pixeldino", ["--radiometric"]),
}


def shifted_data(data: Path, work: Path, shift: str) -> Path:
    """A data root whose Peel image has its values changed by ``bench_rts_shift``'s
    ``shift`` (another scene's light), the labels and AOI linked from ``data``."""
    from osgeo import gdal

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_rts_shift import SHIFTS, write_changed

    peel = data / "rts" / "peel"
    root = work / f"data_{shift.replace(' ', '_').replace('%', 'pc')}"
    out = root / "rts" / "peel"
    if not (out / "peel_s2_bgrn_10m.tif").is_file():
        out.mkdir(parents=True, exist_ok=True)
        for name in ("labels_by_expert", "peel_aoi.geojson"):
            if not (out / name).exists():
                (out / name).symlink_to((peel / name).resolve())
        src = gdal.Open(str(peel / "peel_s2_bgrn_10m.tif"))
        raw = src.ReadAsArray().astype("float64")
        write_changed(src, raw, SHIFTS[shift], out / "peel_s2_bgrn_10m.tif")
    return root


def prepare(data: Path, work: Path, chip: int, holdout_row: int) -> Path:
    """The Peel folder of ``make models-rts`` (majority vote, top half train, bottom half
    test), built once under ``work``."""
    from arctic_assist.training.bundled import prepare as prepare_bundled

    out = work / f"chip{chip}"
    if not (out / "peel" / "manifest.json").is_file():
        prepare_bundled(data, out, holdout_row=holdout_row, chip=chip, synthetic_scenes=0)
    return out / "peel"


def run(name: str, seed: int, a: argparse.Namespace, folder: Path) -> dict:
    method, extra = VARIANTS[name]
    out = Path(a.work) / "models" / f"{name}_s{seed}.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "arctic_assist.training",
        method,
        "--data",
        str(folder),
        "--out",
        str(out),
        "--steps",
        str(a.steps),
        "--tile",
        str(a.tile),
        "--batch-labelled",
        str(a.batch),
        "--batch-unlabelled",
        str(a.batch),
        "--seed",
        str(seed),
        "--threads",
        str(a.threads),
        "--progress",
        "none",
        "--log-dir",
        str(Path(a.work) / "runs"),
        "--run-name",
        f"{name}_s{seed}",
        "--checkpoint-every",
        "0",
        *extra,
    ]
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    secs = time.time() - t0
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-4000:])
        return {"variant": name, "seed": seed, "error": proc.returncode, "seconds": secs}
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    doc = json.loads(line)
    m = doc["metrics"]
    sel = doc.get("selection") or {}
    res = {
        "variant": name,
        "seed": seed,
        "seconds": round(secs, 1),
        "iou": m["test"]["peel"]["iou"],
        "iou_at_0.5": m.get("test@0.5", m["test"])["peel"]["iou"],
        "threshold": sel.get("threshold"),
        "network": sel.get("network"),
    }
    print(
        f"  -> {name} seed {seed}: IoU {res['iou']:.3f} (t={res['threshold']}, "
        f"{res['network']}), at 0.5 {res['iou_at_0.5']:.3f}, {secs:.0f} s",
        flush=True,
    )
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--work", default="build/bench_rts_recipe")
    p.add_argument(
        "--variants",
        nargs="+",
        default=["supervised_old", "supervised", "pixeldino_old", "pixeldino"],
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--tile", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--chip", type=int, default=128)
    p.add_argument("--holdout-row", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--resume", action="store_true")
    p.add_argument(
        "--shift",
        default=None,
        help="train and score on the Peel image with its values changed (a name of "
        "bench_rts_shift.py's SHIFTS, e.g. 'x1.25'): the expert's scene in another light",
    )
    a = p.parse_args(argv)
    data = Path(a.data)
    if not (data / "rts" / "peel" / "peel_s2_bgrn_10m.tif").is_file():
        print(f"skipped: Peel data not found under {data}")
        return 0
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    if a.shift:
        data = shifted_data(data, work, a.shift)
    folder = prepare(data, work, a.chip, a.holdout_row)
    store = work / "results.json"
    results = json.loads(store.read_text()) if (a.resume and store.is_file()) else []
    done = {(r["variant"], r["seed"], r.get("steps")) for r in results if "error" not in r}
    for seed in a.seeds:
        for name in a.variants:
            if (name, seed, a.steps) in done:
                continue
            r = run(name, seed, a, folder)
            r["steps"] = a.steps
            results.append(r)
            store.write_text(json.dumps(results, indent=1))
    print(f"\nPeel bottom half, pooled IoU x 100 (mean +- s.d. over seeds), {a.steps} steps:")
    for name in a.variants:
        rs = [
            r
            for r in results
            if r["variant"] == name and r.get("steps") == a.steps and "error" not in r
        ]
        if not rs:
            continue
        iou = [100 * r["iou"] for r in rs]
        i5 = [100 * r["iou_at_0.5"] for r in rs]
        sd = statistics.stdev(iou) if len(iou) > 1 else 0.0
        print(
            f"  {name:20s} {statistics.mean(iou):5.1f} +- {sd:4.1f}  (at 0.5: "
            f"{statistics.mean(i5):5.1f})  runs {' / '.join(f'{v:.0f}' for v in iou)}  "
            f"{statistics.mean(r['seconds'] for r in rs):.0f} s/run"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
