"""Processing as QGIS users know it (issue 14, section 3): DEVICE and PYTHON are advanced
parameters in every algorithm that has them; retrain_model's log and METRICS result show the
validation metrics as a short table, not a Python dict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from qgis.core import QgsProcessingFeedback, QgsProcessingParameterDefinition

from arctic_assist import about, settings
from arctic_assist.processing import retrain_model

ADVANCED = ("DEVICE", "PYTHON")


def _is_advanced(p: QgsProcessingParameterDefinition) -> bool:
    return bool(p.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced)


def test_device_and_python_are_advanced_everywhere(qgis_app, provider):
    registry = qgis_app.processingRegistry()
    seen = {}
    for alg in provider.algorithms():
        registered = registry.algorithmById(alg.id())  # what the toolbox and dialogs build
        for name in ADVANCED:
            p = registered.parameterDefinition(name)
            if p is not None:
                seen[f"{alg.name()}.{name}"] = _is_advanced(p)
        # the everyday parameters stay in the main part of the dialog
        for name in ("INPUT", "DATA", "OUTPUT"):
            p = registered.parameterDefinition(name)
            assert p is None or not _is_advanced(p), f"{alg.name()}.{name}"
    assert {
        "detect_thaw_slumps.DEVICE",
        "trace_calving_front.DEVICE",
        "retrain_model.DEVICE",
        "retrain_model.PYTHON",
    } <= set(seen)
    assert all(seen.values()), {k: v for k, v in seen.items() if not v}


class Feedback(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:  # QGIS's name
        self.lines.append(info)
        super().pushInfo(info)


def test_retrain_result_shows_metrics_as_a_table(qgis_app, provider, monkeypatch, tmp_path):
    """The training subprocess is replaced by a copy of the bundled model (whose provenance
    holds real metrics); what the algorithm logs and returns afterwards is checked."""
    import processing

    bundled = about.bundled_model("segmentation")

    def fake_stream(cmd, feedback, work_dir):
        shutil.copy(bundled, Path(work_dir) / "export" / "retrained.onnx")

    monkeypatch.setattr(retrain_model, "stream", fake_stream)
    monkeypatch.setattr(retrain_model, "check_python", lambda python: None)
    monkeypatch.setattr(  # the folder below is a manifest only: nothing to pack
        retrain_model.RetrainModel,
        "pack",
        staticmethod(
            lambda data, *_: (
                data,
                {
                    "kind": "training_data",
                    "chips": json.loads((Path(data) / "manifest.json").read_text())["chips"],
                },
            )
        ),
    )
    monkeypatch.setattr(settings, "user_models_dir", lambda: tmp_path / "user_models")
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"chips": [{"split": "val"}]}))
    feedback = Feedback()
    result = processing.run(
        "arctic_assist:retrain_model",
        {"DATA": str(data), "OUTPUT": str(tmp_path / "retrained.onnx"), "PYTHON": "python3"},
        feedback=feedback,
    )
    table = result["METRICS"]
    assert isinstance(table, str)
    assert table.splitlines()[0] == "Validation metrics:"
    assert "peel (test)" in table and "IoU 0.719" in table and "recall 0.805" in table
    assert "None" not in table and "{" not in table and "0.71851" not in table
    for row in table.splitlines():
        assert row in feedback.lines
    ours = [line for line in feedback.lines if not line.startswith("Results:")]  # QGIS's own
    assert not any("{" in line or "None" in line for line in ours)
    assert Path(result["REGISTERED"]).is_file()
    # every result key is a declared output (so that the modeler can chain them)
    declared = {
        o.name()
        for o in qgis_app.processingRegistry()
        .algorithmById("arctic_assist:retrain_model")
        .outputDefinitions()
    }
    assert set(result) <= declared, set(result) - declared


def test_every_algorithm_declares_its_outputs(qgis_app, provider):
    """The result keys an algorithm returns beyond its destination parameters are declared
    outputs (QgsProcessingOutput*), so the graphical modeler can chain them."""
    registry = qgis_app.processingRegistry()
    expected = {
        "retrain_model": {"OUTPUT", "REGISTERED", "METRICS"},
        "setup_training_environment": {"PYTHON", "TORCH", "DEVICE"},
        "front_distance": {"MEAN_DISTANCE", "PER_FEATURE"},
    }
    for name, keys in expected.items():
        alg = registry.algorithmById(f"arctic_assist:{name}")
        assert alg is not None, name
        assert keys <= {o.name() for o in alg.outputDefinitions()}, name


def test_every_parameter_has_help_and_translatable_texts(qgis_app, provider):
    """Per-parameter help (the dialog's tooltip, help() for the modeler) comes from each
    algorithm's help text, which therefore documents every parameter; descriptions, names
    and help go through tr()."""
    from qgis.PyQt.QtCore import QCoreApplication

    from arctic_assist.processing.base import ArcticAssistAlgorithm

    missing = []
    for alg in provider.algorithms():
        assert isinstance(alg, ArcticAssistAlgorithm)
        for p in alg.parameterDefinitions():
            text = p.help()
            if len(text) < 12 or "<" in text or text.startswith("("):
                missing.append(f"{alg.name()}.{p.name()}: {text!r}")
    assert not missing, missing
    detect = qgis_app.processingRegistry().algorithmById("arctic_assist:detect_thaw_slumps")
    assert detect.parameterDefinition("MIN_AREA").help() == "Smaller polygons are dropped (m2)."
    assert detect.parameterDefinition("MASK").help() == "Optional limits of the area processed."
    assert "tr" in vars(ArcticAssistAlgorithm)
    assert ArcticAssistAlgorithm.tr("Training") == QCoreApplication.translate(
        "ArcticAssist", "Training"
    )
