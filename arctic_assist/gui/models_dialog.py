"""Models dialog: bundled and user models with their model card; the default per task;
the training environment that Retrain model uses (:mod:`.training_env_box`)."""

from __future__ import annotations

import html
import json

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
)

from .. import settings
from ..io import models


def _text(value: object) -> str:
    """Anything that comes from a model file (or its path) as inert text, never markup."""
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    return html.escape(str(value), quote=True)


def card_html(entry: models.ModelEntry, is_default: bool) -> str:
    """The model card; every value from the file is escaped, so a model cannot render
    its own headings, links or warnings."""
    e = _text
    if entry.spec is None:
        return f"<h3>{e(entry.path.name)}</h3><p><b>Cannot be used:</b> {e(entry.error)}</p>"

    def cell(key: str, value: object) -> str:
        if key == "metrics" and isinstance(value, dict):  # the table a person reads
            from ..io.training_run import metrics_lines

            lines = metrics_lines(value)[1:] or ["none"]
            return "<br>".join(e(line.strip()) for line in lines)
        return e(value)

    rows = "".join(
        f"<tr><th align='left'>{e(k)}</th><td>{cell(k, v)}</td></tr>"
        for k, v in entry.spec.card().items()
    )
    flag = " <i>(default for this task)</i>" if is_default else ""
    return (
        f"<h3>{e(entry.spec.name)} {e(entry.spec.version)}{flag}</h3>"
        f"<p>{e(entry.spec.description)}</p><table>{rows}</table>"
        f"<p><small>{e(entry.origin)} model: {e(entry.path)}</small></p>"
    )


class ModelsDialog(QDialog):
    OBJECT_NAME = "ArcticAssistModelsDialog"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(self.OBJECT_NAME)
        self.setWindowTitle("Arctic Assist models")
        self.resize(760, 560)
        self.list = QListWidget(self)
        self.list.setObjectName("ArcticAssistModelsList")
        self.card = QTextBrowser(self)
        self.card.setObjectName("ArcticAssistModelCard")
        self.card.setOpenLinks(False)  # nothing in a card is followed
        self.card.setOpenExternalLinks(False)
        self.default_button = QPushButton("Use as default for its task", self)
        self.add_button = QPushButton("Add model file…", self)
        close = QPushButton("Close", self)
        top = QHBoxLayout()
        top.addWidget(self.list, 1)
        top.addWidget(self.card, 2)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addStretch(1)
        buttons.addWidget(self.default_button)
        buttons.addWidget(close)
        from .training_env_box import TrainingEnvironmentBox

        self.training_env = TrainingEnvironmentBox(self)
        layout = QVBoxLayout(self)
        layout.addLayout(top, 1)
        layout.addWidget(self.training_env)
        layout.addLayout(buttons)
        self.list.currentItemChanged.connect(lambda *_: self.show_card())
        self.default_button.clicked.connect(self.make_default)
        self.add_button.clicked.connect(self.add_model)
        close.clicked.connect(self.accept)
        self.entries: list[models.ModelEntry] = []
        self.reload()

    def reload(self) -> None:
        self.entries = models.library(settings.user_models_dir())
        defaults = {t: settings.default_model_path(t) for t in settings.TASKS}
        self.list.clear()
        for entry in self.entries:
            mark = " ★" if entry.task and defaults.get(entry.task) == str(entry.path) else ""
            item = QListWidgetItem(f"[{entry.task or '?'}] {entry.label}{mark}")
            self.list.addItem(item)
        if self.entries:
            self.list.setCurrentRow(0)

    def current(self) -> models.ModelEntry | None:
        row = self.list.currentRow()
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def show_card(self) -> None:
        entry = self.current()
        if entry is None:
            self.card.clear()
            return
        is_default = bool(entry.task) and settings.default_model_path(entry.task) == str(entry.path)
        self.card.setHtml(card_html(entry, is_default))
        self.default_button.setEnabled(entry.spec is not None)

    def make_default(self) -> None:
        entry = self.current()
        if entry is not None and entry.spec is not None:
            settings.set_default_model(entry.spec.task, str(entry.path))
            row = self.list.currentRow()
            self.reload()
            self.list.setCurrentRow(row)

    def add_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add an ONNX model", "", "ONNX (*.onnx)")
        if not path:
            return
        try:
            models.register(path, settings.user_models_dir())
        except Exception as exc:  # shown to the user
            box = QMessageBox(
                QMessageBox.Icon.Warning,
                "Arctic Assist",
                f"This model cannot be used:\n{exc}",
                parent=self,
            )
            box.setTextFormat(Qt.TextFormat.PlainText)  # the message may quote the model file
            box.exec()
            return
        self.reload()
