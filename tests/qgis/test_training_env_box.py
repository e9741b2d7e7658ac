"""The Training environment section of the Models dialog (issue 14): which interpreter
Retrain model uses, whether it works (probed in a QgsTask), choosing another one."""

from __future__ import annotations

import sys
import time

import pytest
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt

from arctic_assist import settings


@pytest.fixture
def chosen(monkeypatch, tmp_path):
    """The plugin settings in memory, the profile's environments in tmp_path."""
    state = {"python": ""}
    monkeypatch.setattr(settings, "training_python", lambda: state["python"])
    monkeypatch.setattr(settings, "set_training_python", lambda p: state.update(python=p))
    monkeypatch.setattr(settings, "training_env_root", lambda: tmp_path / "training_env")
    return state


def wait_for_probe(box, timeout=120.0):
    deadline = time.monotonic() + timeout
    while box.last_probe is None and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.05)
    assert box.last_probe is not None, "the probe task did not finish"
    return box.last_probe


@pytest.mark.needs_torch
def test_shows_the_interpreter_and_what_it_offers(qgis_app, chosen, tmp_path):
    from arctic_assist.gui.training_env_box import TrainingEnvironmentBox

    chosen["python"] = sys.executable  # has torch: the project's venv
    box = TrainingEnvironmentBox()
    assert box.in_use.text().startswith(sys.executable)
    assert "chosen in the Models dialog" in box.in_use.text()
    probe = wait_for_probe(box)
    assert probe["ok"], probe
    assert f"torch {probe['torch']}" in box.status.text()
    assert ("CPU only" in box.status.text()) or ("CUDA GPU" in box.status.text())
    assert box.check_button.isEnabled()

    # another interpreter, chosen in the field: saved and probed; a bad one says why
    bad = tmp_path / "<b>python</b>"
    box.interpreter.setFilePath(str(bad))
    assert chosen["python"] == str(bad)
    probe = wait_for_probe(box)
    assert not probe["ok"]
    assert (
        box.status.text().startswith("not usable:") and "Create the training" in box.status.text()
    )
    for label in (box.in_use, box.status):  # paths and output are never markup
        assert label.textFormat() == Qt.TextFormat.PlainText
    assert "<b>python</b>" in box.in_use.text()

    # cleared: the created environment of the profile is the one in use
    from arctic_assist.io import training_env

    env = tmp_path / "training_env" / "env-20261201T000000-1"  # as create() leaves one
    training_env.venv_python(env).parent.mkdir(parents=True)
    training_env.venv_python(env).symlink_to(sys.executable)
    (env / training_env.MARKER).write_text("{}")
    box.interpreter.setFilePath("")
    assert chosen["python"] == ""
    assert "the training environment of this profile" in box.in_use.text()
    assert box.in_use.text().startswith(str(env))
    wait_for_probe(box)


def test_models_dialog_holds_the_section(qgis_app, chosen):
    from arctic_assist.gui.models_dialog import ModelsDialog
    from arctic_assist.gui.training_env_box import TrainingEnvironmentBox

    dialog = ModelsDialog()
    box = dialog.findChild(TrainingEnvironmentBox, TrainingEnvironmentBox.OBJECT_NAME)
    assert box is not None and box.create_button.text().startswith("Create training")
    assert [box.build.itemData(i) for i in range(box.build.count())] == ["cpu", "cuda"]
    wait_for_probe(box)
    dialog.close()
