"""Review panel: walk through the proposals of a layer, accept or reject each one.

Every decision is written to the layer's data source at once (``status``, ``reviewer``,
``reviewed_at``), so closing QGIS in the middle of a review loses nothing. Geometry is
edited with QGIS's own vertex tool; a proposal whose geometry was edited is saved as
``edited`` (an accepted, corrected proposal).
"""

from __future__ import annotations

import getpass
import logging
from datetime import datetime, UTC

from qgis.core import (
    Qgis,
    QgsFeatureRequest,
    QgsField,
    QgsMapLayer,
    QgsSettings,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QVariant, Qt
from qgis.PyQt.QtGui import QKeySequence
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QShortcut,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

LOG = logging.getLogger(__name__)
STATUSES = ("proposed", "accepted", "edited", "rejected")
FILTERS = ("all", *STATUSES)
REVIEW_FIELDS = (
    ("status", QVariant.String),
    ("reviewer", QVariant.String),
    ("reviewed_at", QVariant.String),
)


def is_reviewable(layer: QgsMapLayer | None) -> bool:
    return (
        isinstance(layer, QgsVectorLayer)
        and layer.isValid()
        and layer.fields().indexFromName("status") >= 0
    )


def reviewer_name() -> str:
    name = QgsSettings().value("arctic_assist/reviewer", "", type=str)
    if name:
        return name
    try:
        return getpass.getuser()
    except Exception:  # no user name on some systems
        return "unknown"


def ensure_review_fields(layer: QgsVectorLayer) -> None:
    """Add ``reviewer``/``reviewed_at`` to the data source when a layer lacks them."""
    missing = [
        QgsField(name, kind)
        for name, kind in REVIEW_FIELDS
        if layer.fields().indexFromName(name) < 0
    ]
    if missing:
        if not layer.dataProvider().addAttributes(missing):
            raise RuntimeError(f"could not add review fields to {layer.source()}")
        layer.updateFields()


def save_decision(layer: QgsVectorLayer, fid: int, status: str) -> str:
    """Write the decision for one feature straight to the data source; returns the status.

    When the layer is being edited and this feature's geometry changed, the pending edits
    are committed too and the proposal is saved as ``edited``.
    """
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    ensure_review_fields(layer)
    fields = layer.fields()
    values = {
        fields.indexFromName("status"): status,
        fields.indexFromName("reviewer"): reviewer_name(),
        fields.indexFromName("reviewed_at"): datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if layer.isEditable():
        buffer = layer.editBuffer()
        if status == "accepted" and buffer is not None and fid in buffer.changedGeometries():
            status = values[fields.indexFromName("status")] = "edited"
        for idx, value in values.items():
            layer.changeAttributeValue(fid, idx, value)
        if not layer.commitChanges(False):  # keep editing; the GeoPackage is written now
            raise RuntimeError("; ".join(layer.commitErrors()))
    else:
        if not layer.dataProvider().changeAttributeValues({fid: values}):
            raise RuntimeError(f"could not write the review to {layer.source()}")
        layer.reload()
    return status


class ReviewPanel(QgsDockWidget):
    """Dock listing the active layer's proposals by score, with Accept/Reject/Next/Previous."""

    OBJECT_NAME = "ArcticAssistReviewDock"

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__("Arctic Assist review", parent or iface.mainWindow())
        self.setObjectName(self.OBJECT_NAME)
        self.iface = iface
        self.layer: QgsVectorLayer | None = None
        self.fids: list[int] = []

        body = QWidget(self)
        layout = QVBoxLayout(body)
        top = QHBoxLayout()
        self.layer_label = QLabel("No proposal layer selected", body)
        self.filter_combo = QComboBox(body)
        self.filter_combo.setObjectName("ArcticAssistReviewFilter")
        self.filter_combo.addItems(FILTERS)
        self.filter_combo.setCurrentText("all")
        top.addWidget(self.layer_label, 1)
        top.addWidget(QLabel("Show:", body))
        top.addWidget(self.filter_combo)
        layout.addLayout(top)

        self.table = QTableWidget(0, 4, body)
        self.table.setObjectName("ArcticAssistReviewTable")
        self.table.setHorizontalHeaderLabels(["id", "score", "size", "status"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        layout.addWidget(self.table, 1)

        buttons = QHBoxLayout()
        self.buttons = {}
        for key, text, shortcut, slot in (
            ("previous", "Previous", "P", self.previous),
            ("accept", "Accept", "A", lambda: self.decide("accepted")),
            ("reject", "Reject", "R", lambda: self.decide("rejected")),
            ("next", "Next", "N", self.next),
        ):
            button = QPushButton(f"{text} ({shortcut})", body)
            button.setObjectName(f"ArcticAssistReview{text}")
            button.clicked.connect(slot)
            buttons.addWidget(button)
            sc = QShortcut(QKeySequence(shortcut), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)
            self.buttons[key] = button
        layout.addLayout(buttons)
        self.summary = QLabel("", body)
        layout.addWidget(self.summary)
        self.setWidget(body)

        self.filter_combo.currentTextChanged.connect(lambda _: self.refresh())
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.iface.layerTreeView().currentLayerChanged.connect(self.set_layer)
        self.set_layer(self.iface.activeLayer())

    # data -------------------------------------------------------------------------------
    def set_layer(self, layer: QgsMapLayer | None) -> None:
        if layer is self.layer:
            return
        if not is_reviewable(layer):
            if self.layer is None:
                self.layer_label.setText("Select a proposal layer (with a 'status' field)")
            return
        self.layer = layer
        self.layer_label.setText(layer.name())
        layer.willBeDeleted.connect(self._layer_removed)
        self.refresh()

    def _layer_removed(self) -> None:
        self.layer = None
        self.fids = []
        self.table.setRowCount(0)
        self.layer_label.setText("Select a proposal layer (with a 'status' field)")

    def refresh(self, select_fid: int | None = None) -> None:
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        self.fids = []
        layer = self.layer
        if layer is None:
            self.table.blockSignals(False)
            return
        wanted = self.filter_combo.currentText()
        fields = layer.fields()
        has_score = fields.indexFromName("score") >= 0
        rows = []
        counts = dict.fromkeys(STATUSES, 0)
        for feat in layer.getFeatures(QgsFeatureRequest()):
            status = feat["status"] or "proposed"
            counts[status] = counts.get(status, 0) + 1
            if wanted != "all" and status != wanted:
                continue
            score = feat["score"] if has_score and feat["score"] is not None else float("nan")
            geom = feat.geometry()
            if geom.type() == QgsWkbTypes.GeometryType.PolygonGeometry:
                size = f"{geom.area():.0f} m2"
            else:
                size = f"{geom.length():.0f} m"
            rows.append((feat.id(), float(score), size, status))
        rows.sort(key=lambda r: (-(r[1] if r[1] == r[1] else -1.0), r[0]))
        self.table.setRowCount(len(rows))
        for i, (fid, score, size, status) in enumerate(rows):
            shown = f"{score:.2f}" if score == score else "–"  # fronts have no score
            for j, text in enumerate((str(fid), shown, size, status)):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, fid)
                self.table.setItem(i, j, item)
            self.fids.append(fid)
        self.summary.setText(", ".join(f"{k}: {v}" for k, v in counts.items()))
        self.table.blockSignals(False)
        if select_fid is not None and select_fid in self.fids:
            self.select_row(self.fids.index(select_fid))

    # navigation -------------------------------------------------------------------------
    def current_row(self) -> int:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def current_fid(self) -> int | None:
        row = self.current_row()
        return self.fids[row] if 0 <= row < len(self.fids) else None

    def select_row(self, row: int) -> None:
        if 0 <= row < len(self.fids):
            self.table.selectRow(row)

    def next(self) -> None:
        self.select_row(min(self.current_row() + 1, len(self.fids) - 1))

    def previous(self) -> None:
        self.select_row(max(self.current_row() - 1, 0))

    def _on_selection(self) -> None:
        fid = self.current_fid()
        if fid is None or self.layer is None:
            return
        self.layer.selectByIds([fid])
        canvas = self.iface.mapCanvas()
        canvas.zoomToFeatureIds(self.layer, [fid])
        canvas.zoomByFactor(1.5)
        canvas.refresh()

    # decisions --------------------------------------------------------------------------
    def decide(self, status: str) -> None:
        fid = self.current_fid()
        if fid is None or self.layer is None:
            return
        row = self.current_row()
        try:
            saved = save_decision(self.layer, fid, status)
        except Exception as exc:  # shown to the user, review data untouched
            self.iface.messageBar().pushMessage(
                "Arctic Assist",
                f"Could not save the review: {exc}",
                level=Qgis.MessageLevel.Critical,
            )
            return
        LOG.info("feature %s of %s: %s", fid, self.layer.name(), saved)
        next_fid = self.fids[row + 1] if row + 1 < len(self.fids) else fid
        self.refresh(select_fid=next_fid)
        if next_fid not in self.fids and self.fids:
            self.select_row(min(row, len(self.fids) - 1))
        self.layer.triggerRepaint()


def remove_dock(iface, dock: ReviewPanel | None) -> None:
    if dock is None:
        return
    try:
        iface.layerTreeView().currentLayerChanged.disconnect(dock.set_layer)
    except TypeError:
        pass
    iface.removeDockWidget(dock)
    dock.deleteLater()


__all__ = ["ReviewPanel", "save_decision", "ensure_review_fields", "is_reviewable", "remove_dock"]
