"""Regenerate the QML styles in resources/styles with PyQGIS (run: make styles)."""

import sys
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsFillSymbol,
    QgsLineSymbol,
    QgsMapLayer,
    QgsPalLayerSettings,
    QgsRendererCategory,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtGui import QColor

OUT = Path(__file__).resolve().parents[1] / "resources" / "styles"
STATUS = {  # status -> (colour, label)
    "proposed": ("#ff8c1a", "Proposed"),
    "accepted": ("#2ca02c", "Accepted"),
    "edited": ("#1f77b4", "Accepted (edited)"),
    "rejected": ("#d62728", "Rejected"),
}


def categories(make_symbol):
    cats = [
        QgsRendererCategory(status, make_symbol(colour, status), label)
        for status, (colour, label) in STATUS.items()
    ]
    cats.append(QgsRendererCategory(None, make_symbol("#7f7f7f", ""), "Other"))
    return cats


def polygon_symbol(colour, status):
    fill = "no" if status == "rejected" else "solid"
    qc = QColor(colour)
    qc.setAlpha(60)
    return QgsFillSymbol.createSimple(
        {
            "color": f"{qc.red()},{qc.green()},{qc.blue()},{qc.alpha()}",
            "style": fill,
            "outline_color": colour,
            "outline_width": "0.6",
            "outline_style": "dash" if status == "rejected" else "solid",
        }
    )


def line_symbol(colour, status):
    return QgsLineSymbol.createSimple(
        {
            "line_color": colour,
            "line_width": "0.8",
            "line_style": "dash" if status == "rejected" else "solid",
        }
    )


def save(layer, renderer, name, label_expr=None):
    layer.setRenderer(renderer)
    if label_expr:
        settings = QgsPalLayerSettings()
        settings.fieldName = label_expr
        settings.isExpression = True
        fmt = QgsTextFormat()
        fmt.setSize(8)
        settings.setFormat(fmt)
        layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
        layer.setLabelsEnabled(True)
    msg, ok = layer.saveNamedStyle(
        str(OUT / name), QgsMapLayer.StyleCategory.Symbology | QgsMapLayer.StyleCategory.Labeling
    )
    if not ok:
        raise SystemExit(f"could not save {name}: {msg}")


def main() -> int:
    app = QgsApplication([], False)
    app.initQgis()
    OUT.mkdir(parents=True, exist_ok=True)
    poly = QgsVectorLayer(
        "Polygon?crs=EPSG:3857&field=status:string&field=score:double", "p", "memory"
    )
    save(
        poly,
        QgsCategorizedSymbolRenderer("status", categories(polygon_symbol)),
        "thaw_slumps.qml",
        'format_number("score", 2)',
    )
    line = QgsVectorLayer(
        "LineString?crs=EPSG:3857&field=status:string&field=iteration:int", "l", "memory"
    )
    save(
        line, QgsCategorizedSymbolRenderer("status", categories(line_symbol)), "calving_fronts.qml"
    )
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
