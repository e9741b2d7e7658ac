"""The *Training environment* section of the Models dialog (issue 14).

Shows the interpreter *Retrain model* uses and whether it works (torch version, the CUDA GPU
or CPU only; checked in a background task, the dialog stays responsive), lets the user
choose another interpreter (plugin setting; empty = the created environment), and
*Create training environment…* opens ``arctic_assist:setup_training_environment`` in
Processing's dialog: it runs in the background with progress, Cancel and the log, and a
failed install leaves the previous environment in place. Everything shown here is plain
text: interpreter paths and what an interpreter prints are never rendered as markup.
"""

from __future__ import annotations

from qgis.core import QgsApplication, QgsTask
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from .. import settings
from ..io import training_env

ALGORITHM = "arctic_assist:setup_training_environment"


class TrainingEnvironmentBox(QGroupBox):
    OBJECT_NAME = "ArcticAssistTrainingEnvironment"

    def __init__(self, parent=None) -> None:
        super().__init__("Training environment (for Retrain model)", parent)
        self.setObjectName(self.OBJECT_NAME)
        self.in_use = QLabel(self)
        self.in_use.setObjectName("ArcticAssistTrainingPython")
        self.status = QLabel("Checking…", self)
        self.status.setObjectName("ArcticAssistTrainingStatus")
        for label in (self.in_use, self.status):
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.check_button = QPushButton("Check again", self)
        self.interpreter = QgsFileWidget(self)
        self.interpreter.setObjectName("ArcticAssistTrainingInterpreter")
        self.interpreter.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.interpreter.setDialogTitle("Python interpreter with torch")
        self.interpreter.lineEdit().setPlaceholderText(
            "empty: the environment made by Create training environment"
        )
        self.interpreter.setFilePath(settings.training_python())
        self.build = QComboBox(self)
        self.build.setObjectName("ArcticAssistTorchBuild")
        for key in training_env.BUILDS:
            self.build.addItem("CPU only" if key == "cpu" else "CUDA (NVIDIA GPU)", key)
        self.create_button = QPushButton("Create training environment…", self)
        self.create_button.setObjectName("ArcticAssistCreateTrainingEnv")
        self.create_button.setToolTip(
            "Makes a Python environment with torch in this QGIS profile (downloads about "
            "200 MB for CPU, 3 GB for CUDA); the previous one stays until the new one works."
        )
        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.check_button)
        create_row = QHBoxLayout()
        create_row.addWidget(QLabel("torch build:", self))
        create_row.addWidget(self.build)
        create_row.addStretch(1)
        create_row.addWidget(self.create_button)
        form = QFormLayout(self)
        form.addRow("In use:", self.in_use)
        status = QWidget(self)
        status.setLayout(status_row)
        form.addRow("Status:", status)
        form.addRow("Interpreter:", self.interpreter)
        create = QWidget(self)
        create.setLayout(create_row)
        form.addRow("", create)
        self.interpreter.fileChanged.connect(self.choose)
        self.check_button.clicked.connect(self.refresh)
        self.create_button.clicked.connect(self.create_environment)
        self.task: QgsTask | None = None
        self.last_probe: dict | None = None
        self.refresh()

    def choose(self, path: str) -> None:
        settings.set_training_python(path.strip())
        self.refresh()

    def refresh(self) -> None:
        """Show the interpreter in use now, and probe it in a background task."""
        from ..processing.retrain_model import training_interpreter

        python, source = training_interpreter()
        self.in_use.setText(f"{python}  ({source})")
        self.status.setText("Checking (imports torch; a few seconds)…")
        self.check_button.setEnabled(False)
        self.last_probe = None

        def work(task):
            return training_env.probe(python)

        def done(exception, result=None):
            try:
                self.show_probe(result if exception is None else None, exception)
            except RuntimeError:  # the dialog was closed meanwhile
                pass

        self.task = QgsTask.fromFunction(
            "Arctic Assist: check the training environment", work, on_finished=done
        )
        QgsApplication.taskManager().addTask(self.task)

    def show_probe(self, result: dict | None, exception=None) -> None:
        self.last_probe = result or {"ok": False, "error": str(exception)}
        text = training_env.describe(self.last_probe)
        if not self.last_probe.get("ok"):
            text += " Create the training environment below, or choose an interpreter."
        self.status.setText(text)
        self.check_button.setEnabled(True)

    def create_environment(self) -> None:
        import processing

        build = self.build.currentIndex()
        processing.execAlgorithmDialog(ALGORITHM, {"TORCH_BUILD": build})
        self.interpreter.blockSignals(True)
        self.interpreter.setFilePath(settings.training_python())  # cleared on success
        self.interpreter.blockSignals(False)
        self.refresh()
