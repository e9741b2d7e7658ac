"""Training code of Arctic Assist (PyTorch + Lightning); torch is imported only here.

Run ``python -m arctic_assist.training <command> --help``. Commands:

- ``supervised``, ``supervised_aug``, ``fixmatchseg``, ``adversarial``, ``pixeldino``:
  train a segmentation model on a training-data folder (the format:
  :mod:`arctic_assist.io.training_data`, ``docs/training_data.md``) and export it to ONNX
  with full metadata;
- ``evaluate``: IoU / precision / recall / F1 of an ONNX model or a checkpoint on a folder;
- ``export``: checkpoint -> ONNX (with the model contract of ``arctic_assist.core.spec``);
- ``make-dataset``: build a training-data folder from rasters and label polygons (GDAL);
- ``cobra``: the COBRA calving-front model (``arctic_assist.training.cobra``).
- ``pack``: a training-data folder or FrontLearning images -> one ``.npz`` that trains
  without GDAL (``arctic_assist.training.packed``, e.g. for a GPU server).

Shared infrastructure reused by every trainer: :mod:`.common` (Lightning trainer, CLI
arguments, JSON progress lines) and :mod:`.export` (ONNX export and parity check).
Importing this package does not import torch.
"""

COMMANDS = (
    "supervised",
    "supervised_aug",
    "fixmatchseg",
    "adversarial",
    "pixeldino",
    "evaluate",
    "export",
    "make-dataset",
    "cobra",
    "pack",
)
