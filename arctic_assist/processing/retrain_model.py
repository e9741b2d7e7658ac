"""``arctic_assist:retrain_model``: run the training CLI and register the new model.

Training needs PyTorch, which QGIS's Python usually lacks: the algorithm runs
``PYTHON -m arctic_assist.training ...`` in a subprocess (:mod:`arctic_assist.io.training_run`
starts it, streams its JSON progress lines into the Processing log and progress bar and
stops it on Cancel) and registers the exported model in the user models folder, where the
detection and tracing algorithms can use it at once.

The run's folder ``<OUTPUT>_run/`` holds ``run.json`` (what was trained), the logs and the
checkpoints. A rerun with the same DATA, TASK, METHOD, model to start from and OUTPUT
continues from the newest checkpoint (``--resume``); a finished run removes the folder, and
so does a failed or canceled run that had not reached its first checkpoint. The new model
is exported inside the folder under its final file name (so its metadata carries that
name) and moved to OUTPUT at the end. The training process dies with the process that started it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .. import about, settings
from ..core.errors import ArcticAssistError, CanceledError, InputError
from ..core.onnx_model import DEVICES
from ..core.spec import TASKS
from ..io.training_env import current_python
from ..io.training_run import (
    build_command,
    check_python,
    metrics_lines,
    prepare_run_dir,
    start_model,
    stopped_message,
    stream,
)
from .base import ArcticAssistAlgorithm, advanced, device_parameter

TASK_LABELS = {
    "segmentation": "Thaw slumps (PixelDINO segmentation)",
    "contour": "Calving fronts (COBRA contour)",
}
METHODS = ["pixeldino", "supervised", "supervised_aug", "fixmatchseg", "adversarial"]
#: where a run without BASE_MODEL starts (START)
STARTS = [
    "auto (thaw slumps: scratch; calving fronts: the task's default model)",
    "the task's default model (Models dialog)",
    "scratch (random weights)",
]


def training_interpreter() -> tuple[str, str]:
    """The interpreter the training runs in when PYTHON is empty, and where it comes from.

    In this order: the one chosen in the Models dialog (plugin setting); the training
    environment created in this QGIS profile (Models dialog or
    ``arctic_assist:setup_training_environment``); the checkout's .venv (``make setup``);
    python3 on PATH. The checkout is looked for both at the plugin folder and where its
    files really are: ``make install-plugin`` (and the tests) install the plugin as links
    into the checkout, so the plugin folder itself holds no ``.venv``.
    """
    configured = settings.training_python()
    if configured:
        return configured, "chosen in the Models dialog"
    created = current_python(settings.training_env_root())
    if created:
        return created, "the training environment of this profile"
    for root in (about.plugin_root(), Path(__file__).resolve().parents[2]):
        venv = root / ".venv" / "bin" / "python"
        if venv.is_file():
            return str(venv), "the checkout's .venv, made by make setup"
    return shutil.which("python3") or sys.executable, "python3 on PATH"


def default_python() -> str:
    return training_interpreter()[0]


class RetrainModel(ArcticAssistAlgorithm):
    NAME = "retrain_model"
    DISPLAY = "Retrain model"
    GROUP = "Training"
    GROUP_ID = "training"
    ICON = "retrain.svg"

    DATA = "DATA"
    TASK = "TASK"
    METHOD = "METHOD"
    BASE_MODEL = "BASE_MODEL"
    START = "START"
    STEPS = "STEPS"
    DEVICE = "DEVICE"
    PYTHON = "PYTHON"
    SEED = "SEED"
    OUTPUT = "OUTPUT"
    REGISTERED = "REGISTERED"
    METRICS = "METRICS"

    HELP = (
        "<p>Retrains a model on a training-data folder written by <i>Export training data</i>"
        " (manifest.json, image chips, masks or front polylines, unlabelled chips) and "
        "exports a new self-describing ONNX model.</p>"
        "<p>Training runs the bundled PyTorch code (<code>python -m arctic_assist.training"
        "</code>) in a separate Python that has torch: <b>PYTHON</b> (advanced; default: "
        "the interpreter chosen in the Models dialog, else the training environment made by "
        "<i>Create training environment</i> (Models dialog) or <i>Set up training "
        "environment</i> in this profile, else the checkout's .venv). It uses a CUDA GPU "
        "when one is present (DEVICE, advanced: auto), the CPU otherwise. The training data "
        "is handed over packed into one .npz file, so that environment needs neither GDAL "
        "nor QGIS.</p><ul>"
        "<li><b>DATA</b>: a training-data folder written by Export training data (its "
        "manifest.json says the task, bands and pixel size).</li>"
        "<li><b>TASK</b>: thaw slumps (PixelDINO segmentation) or calving fronts (COBRA); "
        "it must match what DATA holds (masks or fronts), else the run is refused.</li>"
        "<li><b>METHOD</b>: supervised (default) or pixeldino (semi-supervised: it also "
        "learns from the unlabelled rest of the scene) or another baseline (supervised_aug, "
        "fixmatchseg, adversarial); ignored for COBRA. Supervised is the default because it "
        "measured better at the desk's budget: labels in the top half of the Peel image, 600 "
        "CPU steps from scratch, IoU on the bottom half 0.70 (supervised) vs 0.54 (pixeldino)"
        " (README, bench_loop_peel).</li>"
        "<li><b>BASE_MODEL</b>: optional ONNX model to start from. When it carries the band "
        "medians of its training scenes, the training data's bands are first scaled to them, "
        "as detection scaled the scene for that model (the log says by how much); the new "
        "model keeps those medians. Without BASE_MODEL the new model carries the medians of "
        "the scene it was trained on.</li>"
        "<li><b>START</b>: where a run without BASE_MODEL starts (qgis_process: 0 = auto, "
        "1 = the task's default model, 2 = scratch). The task's default model is the one "
        "detection and tracing use (chosen in the Models dialog, else the bundled one); it "
        "is used when its bands fit the training data, else the run starts from scratch "
        "with a warning. <i>auto</i> (default): calving fronts start from the default model "
        "(COBRA needs thousands of steps from scratch), thaw slumps from scratch. Measured "
        "on Peel (README, bench_loop_peel --split right; 3 seeds each): a model trained on "
        "the left half, retrained on the experts' labels of the top-right quarter alone, "
        "scores 0.45 on the unseen bottom-right quarter when it starts from that model and "
        "0.39 from scratch; retrained on the left half and the top-right quarter together, "
        "0.57 from that model and 0.72 from scratch. A warm start fine-tunes at a tenth of "
        "the learning rate: it keeps more of what the model knew and learns less of the new "
        "labels, so it helps after a small review of a scene the model already knows.</li>"
        "<li><b>STEPS</b>: optimisation steps (default 600: about 2-3 minutes for "
        "supervised on one CPU core, 4 for pixeldino).</li>"
        "<li><b>DEVICE</b> (advanced): auto (a CUDA GPU when the training environment's "
        "torch sees one, else the CPU), cpu or cuda.</li>"
        "<li><b>PYTHON</b> (advanced): the Python interpreter the training runs in; empty: "
        "the one chosen in the Models dialog, else this profile's training environment, else "
        "the checkout's .venv, else python3.</li>"
        "<li><b>SEED</b> (advanced): random seed of the run (crops, augmentation, initial "
        "weights), for repeatable runs.</li>"
        "<li><b>OUTPUT</b>: the new ONNX model; it is validated, registered in the user "
        "models folder and usable at once. Its metadata holds the validation metrics; the log "
        "and the METRICS result show them as a table (IoU, precision, recall per region).</li>"
        "</ul><p>Cancel stops the training. Checkpoints (every 500 steps) are kept in the "
        "folder <i>OUTPUT</i>_run beside OUTPUT, and running the algorithm again with the "
        "same DATA, TASK, METHOD, model to start from and OUTPUT continues from the "
        "newest one; a run that finishes, or stops before its first checkpoint, leaves "
        "nothing behind.</p>"
    )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterFile(
                self.DATA,
                "Training-data folder",
                behavior=QgsProcessingParameterFile.Behavior.Folder,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.TASK, "Task", options=[TASK_LABELS[t] for t in TASKS], defaultValue=0
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.METHOD, "Method", options=METHODS, defaultValue=METHODS.index("supervised")
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.BASE_MODEL, "Start from model", extension="onnx", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.START,
                "If no model to start from is given, start from",
                options=STARTS,
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.STEPS,
                "Training steps",
                QgsProcessingParameterNumber.Type.Integer,
                defaultValue=600,
                minValue=1,
            )
        )
        self.addParameter(device_parameter(self.DEVICE))
        self.addParameter(
            advanced(
                QgsProcessingParameterString(
                    self.PYTHON, "Python interpreter with torch (empty: default)", optional=True
                )
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    self.SEED,
                    "Random seed",
                    QgsProcessingParameterNumber.Type.Integer,
                    defaultValue=0,
                    minValue=0,
                    maxValue=2**31 - 1,
                )
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT, "New model", fileFilter="ONNX model (*.onnx)"
            )
        )
        self.addOutput(
            QgsProcessingOutputFile(self.REGISTERED, "The model's copy in the user models folder")
        )
        self.addOutput(QgsProcessingOutputString(self.METRICS, "Validation metrics (table)"))

    def execute(self, parameters: dict[str, Any], context, feedback) -> dict[str, Any]:
        from ..io.models import read_spec, register

        data = self.parameterAsFile(parameters, self.DATA, context)
        if not data or not (Path(data) / "manifest.json").is_file():
            raise InputError(
                f"DATA: '{data}' is not a training-data folder (no manifest.json);"
                " create one with 'Export training data'."
            )
        task = TASKS[self.parameterAsEnum(parameters, self.TASK, context)]
        method = METHODS[self.parameterAsEnum(parameters, self.METHOD, context)]
        base_model = self.parameterAsFile(parameters, self.BASE_MODEL, context) or None
        if base_model and not Path(base_model).is_file():
            raise InputError(f"BASE_MODEL: file '{base_model}' does not exist.")
        start = self.parameterAsEnum(parameters, self.START, context)
        if not base_model and (start == 1 or (start == 0 and task == "contour")):
            base_model, why = start_model(task, data, settings.default_model_path(task))
            if base_model:
                feedback.pushInfo(f"START: {why}.")
            elif why:
                feedback.pushWarning(f"START: training from scratch: {why}.")
        steps = self.parameterAsInt(parameters, self.STEPS, context)
        device = DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)]
        python = self.parameterAsString(parameters, self.PYTHON, context) or default_python()
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not output.lower().endswith(".onnx"):
            raise InputError(f"OUTPUT must end with .onnx; got '{output}'.")
        out_dir = Path(output).parent
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"OUTPUT: cannot create folder '{out_dir}': {exc}") from None
        if not os.access(out_dir, os.W_OK):
            raise InputError(f"OUTPUT: folder '{out_dir}' is not writable.")
        work_dir = str(Path(output).with_suffix("")) + "_run"
        run_info = {
            "data": str(Path(data).resolve()),
            "task": task,
            "method": method if task == "segmentation" else "cobra",
            "base_model": str(Path(base_model).resolve()) if base_model else None,
        }
        # the run folder and the data are checked first (their messages name what to fix
        # there), then the interpreter
        resume = prepare_run_dir(Path(work_dir), run_info, feedback.pushInfo)
        packed, header = self.pack(data, Path(work_dir), resume, feedback)
        fronts = header.get("kind") == "fronts"
        if fronts != (task == "contour"):
            if not resume:
                shutil.rmtree(work_dir, ignore_errors=True)
            raise InputError(
                f"TASK: DATA holds {'calving fronts' if fronts else 'thaw-slump masks'}; "
                f"choose TASK '{TASK_LABELS['contour' if fronts else 'segmentation']}'."
            )
        try:
            check_python(python)
        except InputError:
            if not resume:
                shutil.rmtree(work_dir, ignore_errors=True)
            raise
        export_dir = Path(work_dir) / "export"
        shutil.rmtree(export_dir, ignore_errors=True)  # a killed run's partial export
        export_dir.mkdir(parents=True)
        partial = str(export_dir / Path(output).name)  # the final name: it is in the metadata
        cmd = build_command(
            python,
            task,
            method,
            packed,
            partial,
            steps,
            device,
            base_model,
            work_dir,
            self.parameterAsInt(parameters, self.SEED, context),
        )
        if task == "segmentation" and not any(
            c.get("split") == "val" for c in header.get("chips", [])
        ):
            cmd[cmd.index("--eval-split") + 1] = "train"
            feedback.pushWarning(
                "DATA has no 'val' chips (too few chips to hold some out): the model's "
                "metrics are measured on its training chips, not held-out ones."
            )
        if resume:
            cmd += ["--resume", resume]
            feedback.pushInfo(f"Continuing the earlier run from its checkpoint {resume}.")
        feedback.pushInfo("Running: " + " ".join(cmd))
        try:
            stream(cmd, feedback, work_dir)
            spec = read_spec(partial)
            if spec.task != task:
                raise ArcticAssistError(
                    f"the training exported a '{spec.task}' model, expected '{task}'"
                )
            os.replace(partial, output)
        except CanceledError:
            raise CanceledError(stopped_message(Path(work_dir), "canceled")) from None
        except ArcticAssistError as exc:
            raise ArcticAssistError(f"{exc} {stopped_message(Path(work_dir), 'failed')}") from None
        finally:
            shutil.rmtree(export_dir, ignore_errors=True)
        shutil.rmtree(work_dir, ignore_errors=True)  # finished: nothing to resume
        registered = register(output, settings.user_models_dir())
        table = metrics_lines(dict(spec.provenance).get("metrics") or {})
        feedback.pushInfo(
            f"New model {spec.name} {spec.version}: {output}; registered as {registered}."
        )
        for row in table:
            feedback.pushInfo(row)
        return {
            self.OUTPUT: output,
            self.REGISTERED: str(registered),
            self.METRICS: "\n".join(table),
        }

    @staticmethod
    def pack(data: str, work_dir: Path, resume: str | None, feedback) -> tuple[str, dict]:
        """DATA as one .npz in the run folder, which the training reads with numpy alone;
        (its path, its header: the task's kind and the chips with their splits)."""
        from ..training.packed import pack_training_folder

        out = work_dir / "data.npz"
        feedback.pushInfo(f"Packing the training data into {out} ...")
        try:
            header = pack_training_folder(data, out)
        except InputError as exc:
            if resume:
                kept = " The earlier run's checkpoint is kept."
            else:
                shutil.rmtree(work_dir, ignore_errors=True)
                kept = " Nothing was trained and nothing was kept."
            raise InputError(f"DATA: {str(exc).rstrip('.')}.{kept}") from None
        n = len(header.get("chips") or header.get("samples") or [])
        feedback.pushInfo(f"Packed {n} chips ({out.stat().st_size / 1e6:.1f} MB).")
        return str(out), header
