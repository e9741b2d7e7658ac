"""``arctic_assist:setup_training_environment``: the venv that retraining runs in.

The headless twin of *Create training environment* in the Models dialog (which runs this
algorithm in its dialog: progress, Cancel and the log come from Processing). The work is
:func:`arctic_assist.io.training_env.create`.
"""

from __future__ import annotations

import shlex
from typing import Any

from qgis.core import (
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterString,
)

from .. import settings
from ..core.errors import InputError
from ..io import training_env
from .base import ArcticAssistAlgorithm, advanced

BUILD_LABELS = {
    "cpu": "CPU only (smaller download, works everywhere)",
    "cuda": "CUDA (NVIDIA GPU; large download)",
}


class SetupTrainingEnvironment(ArcticAssistAlgorithm):
    NAME = "setup_training_environment"
    DISPLAY = "Set up training environment"
    GROUP = "Training"
    GROUP_ID = "training"
    ICON = "retrain.svg"
    #: needs no ONNX Runtime in QGIS: it installs the training's own packages elsewhere
    NEEDS_INFERENCE_PACKAGES = False

    TORCH_BUILD = "TORCH_BUILD"
    TORCH_INDEX = "TORCH_INDEX"
    PIP_OPTIONS = "PIP_OPTIONS"
    KEEP_CHOICE = "KEEP_CHOICE"
    PYTHON = "PYTHON"
    TORCH = "TORCH"
    DEVICE = "DEVICE"

    HELP = (
        "<p>Creates the Python environment in which <i>Retrain model</i> trains: a virtual "
        "environment in this QGIS profile (<code>&lt;profile&gt;/arctic_assist/"
        "training_env</code>) with the pinned training requirements of the plugin "
        "(<code>arctic_assist/training/requirements.txt</code>: torch, Lightning, ONNX, "
        "ONNX Runtime, numpy). It needs no GDAL and no QGIS: Retrain model hands the "
        "training data over packed. Downloads about 200 MB (CPU) to 3 GB (CUDA) from the "
        "Python package index; takes minutes.</p><ul>"
        "<li><b>TORCH_BUILD</b>: CPU only, or CUDA for an NVIDIA GPU (the log says whether "
        "the new environment sees the GPU).</li>"
        "<li><b>TORCH_INDEX</b> (advanced): where torch's build comes from. Empty: "
        "PyTorch's index for the chosen build (CPU: download.pytorch.org/whl/cpu; CUDA: "
        "PyPI on Linux, download.pytorch.org/whl/cu128 on Windows); <code>none</code>: only "
        "pip's own configuration (an offline mirror or wheel folder); or a URL.</li>"
        "<li><b>PIP_OPTIONS</b> (advanced): more pip options, e.g. <code>--find-links "
        "/path/to/wheels</code> or <code>--proxy http://host:port</code>.</li>"
        "<li><b>KEEP_CHOICE</b> (advanced): keep an interpreter chosen in the Models dialog "
        "as the one Retrain model uses; by default the new environment is used.</li></ul>"
        "<p>The new environment replaces the previous one only once it works (its packages "
        "import); a failed or canceled install removes what it made and leaves the previous "
        "environment in place. Retrain model uses it when its PYTHON parameter is empty. "
        "Outputs: PYTHON (the interpreter), TORCH (its torch version) and DEVICE (the GPU "
        "it sees, or CPU only).</p>"
    )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterEnum(
                self.TORCH_BUILD,
                "torch build",
                options=[BUILD_LABELS[b] for b in training_env.BUILDS],
                defaultValue=0,
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterString(
                    self.TORCH_INDEX,
                    "Package index for torch (empty: PyTorch's for the build; none: pip's own)",
                    optional=True,
                )
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterString(self.PIP_OPTIONS, "More pip options", optional=True)
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterBoolean(
                    self.KEEP_CHOICE,
                    "Keep the interpreter chosen in the Models dialog",
                    defaultValue=False,
                )
            )
        )
        self.addOutput(QgsProcessingOutputString(self.PYTHON, "Training interpreter"))
        self.addOutput(QgsProcessingOutputString(self.TORCH, "torch version"))
        self.addOutput(QgsProcessingOutputString(self.DEVICE, "Training device"))

    def execute(self, parameters: dict[str, Any], context, feedback) -> dict[str, Any]:
        build = training_env.BUILDS[self.parameterAsEnum(parameters, self.TORCH_BUILD, context)]
        index = self.parameterAsString(parameters, self.TORCH_INDEX, context).strip() or None
        try:
            options = shlex.split(self.parameterAsString(parameters, self.PIP_OPTIONS, context))
        except ValueError as exc:
            raise InputError(f"PIP_OPTIONS: {exc} (quote paths with spaces).") from None
        progress, canceled, log = self.callbacks(feedback)
        python, result = training_env.create(
            settings.training_env_root(),
            build,
            torch_index=index,
            pip_options=options,
            say=log,
            progress=progress,
            canceled=canceled,
        )
        if not self.parameterAsBool(parameters, self.KEEP_CHOICE, context):
            chosen = settings.training_python()
            if chosen and chosen != str(python):
                feedback.pushInfo(f"Retrain model now uses {python} instead of {chosen}.")
            settings.set_training_python("")
        device = f"CUDA: {result['gpu']}" if result.get("cuda") else "CPU only"
        return {self.PYTHON: str(python), self.TORCH: str(result.get("torch")), self.DEVICE: device}
