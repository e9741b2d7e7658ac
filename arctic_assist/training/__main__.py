"""``python -m arctic_assist.training <command> [args]``: dispatch to the command's ``main``.

Every command module exposes ``main(argv: list[str]) -> int``; modules are imported lazily so
``--help`` of one command never imports another's dependencies.
"""

from __future__ import annotations

import importlib
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
}


def usage() -> str:
    lines = ["usage: python -m arctic_assist.training <command> [options]", "", "commands:"]
    lines += [f"  {c:<15} {_HELP[c]}" for c in COMMANDS]
    lines.append("\n'<command> --help' describes a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
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
    }[command]
    mod = importlib.import_module(f"arctic_assist.training.{module}")
    if command == "export":
        return int(mod.export_main(rest) or 0)
    return int(mod.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
