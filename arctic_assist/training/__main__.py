"""``python -m arctic_assist.training <command> [args]``: dispatch to the command's ``main``.

Every command module exposes ``main(argv: list[str]) -> int``; modules are imported lazily so
``--help`` of one command never imports another's dependencies.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

from . import COMMANDS

SEG_METHODS = ("supervised", "supervised_aug", "fixmatchseg", "adversarial", "pixeldino")

_HELP = {
    "supervised": "train the supervised U-Net baseline (no augmentation)",
    "supervised_aug": "train the supervised U-Net with the strong augmentation",
    "fixmatchseg": "train FixMatchSeg (thresholded pseudo-labels from the weak view)",
    "adversarial": "train the adversarial semi-supervised baseline (Hung et al. 2018)",
    "pixeldino": "train PixelDINO (EMA teacher, centred soft pseudo-classes)",
    "evaluate": "IoU/precision/recall/F1 of an ONNX model or checkpoint on a data folder",
    "export": "export a training checkpoint to ONNX with the model metadata",
    "make-dataset": "build a training-data folder from rasters and label polygons",
    "cobra": "train/export/evaluate the COBRA calving-front model",
    "pack": "pack a training-data folder or FrontLearning into one .npz (no GDAL to train)",
}


def usage() -> str:
    lines = ["usage: python -m arctic_assist.training <command> [options]", "", "commands:"]
    lines += [f"  {c:<15} {_HELP[c]}" for c in COMMANDS]
    lines.append("\n'<command> --help' describes a command's options.")
    return "\n".join(lines)


def die_with_parent() -> None:
    """With ``ARCTIC_ASSIST_DIE_WITH_PARENT=1`` (set by the plugin's retrain_model): be
    killed when the process that started us dies (Linux ``PR_SET_PDEATHSIG``), so that a
    killed QGIS or qgis_process never leaves a training running on its own. A training
    started from a terminal is not affected."""
    if os.environ.get("ARCTIC_ASSIST_DIE_WITH_PARENT") != "1":
        return
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (AttributeError, OSError):
        return
    if os.getppid() != parent:  # the parent died before we asked
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"unknown command '{command}'\n\n{usage()}", file=sys.stderr)
        return 2
    if command in SEG_METHODS:
        from .train import main as train_main

        return int(train_main(rest, method=command) or 0)
    module = {
        "evaluate": "evaluate",
        "export": "evaluate",
        "make-dataset": "data",
        "cobra": "cobra",
        "pack": "packed",
    }[command]
    mod = importlib.import_module(f"arctic_assist.training.{module}")
    if command == "export":
        return int(mod.export_main(rest) or 0)
    return int(mod.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
