"""Qt6 / QGIS 4 (issue 14, section 2): enum members are written through their enum.

``Qgis.MessageLevel.Warning``, not ``Qgis.Warning``: PyQt6 (QGIS 4) only has the scoped form,
and QGIS 3.22's PyQt5 bindings accept it too. This scans the source of the plugin, the tests
and the tools (no QGIS import) for the unscoped members that QGIS's PyQt6 migration script
would rewrite, for the classes this tree uses (``tests/qt_enums.py``). It reads the syntax tree,
so comments, strings and the scoped forms themselves never count.
"""

from __future__ import annotations

import ast
from pathlib import Path

from qt_enums import SCOPED

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("arctic_assist", "tests", "tools")


def unscoped(source: str) -> list[tuple[int, str, str]]:
    """(line, what is written, what to write instead) for every ``Class.Member`` in SCOPED."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.attr in SCOPED.get(node.value.id, {})
        ):
            cls, member = node.value.id, node.attr
            found.append((node.lineno, f"{cls}.{member}", f"{cls}.{SCOPED[cls][member]}.{member}"))
    return sorted(found)


def test_the_tree_uses_scoped_enums():
    bad = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            for line, written, scoped in unscoped(path.read_text(encoding="utf-8")):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {written} -> {scoped}")
    assert not bad, "unscoped enums (Qt6 / QGIS 4 need the scoped form):\n" + "\n".join(bad)


def test_the_scan_finds_unscoped_members():
    source = "\n".join(
        [
            "level = Qgis.Warning",
            "t = [QgsProcessing.TypeVectorPolygon]",
            "n = QgsProcessingParameterNumber.Integer",
            "f = p.flags() | QgsProcessingParameterDefinition.FlagAdvanced",
            "item.setData(Qt.UserRole, 1)",
            "label.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)",
            "box = QMessageBox(QMessageBox.Warning, 'a', 'b', QMessageBox.Ok)",
            "b = QgsProcessingParameterFile.Folder",
        ]
    )
    assert [written for _, written, _ in unscoped(source)] == [
        "Qgis.Warning",
        "QgsProcessing.TypeVectorPolygon",
        "QgsProcessingParameterNumber.Integer",
        "QgsProcessingParameterDefinition.FlagAdvanced",
        "Qt.UserRole",
        "Qt.AlignLeft",
        "Qt.AlignVCenter",
        "QMessageBox.Ok",  # sorted by line, then by name
        "QMessageBox.Warning",
        "QgsProcessingParameterFile.Folder",
    ]
    assert unscoped("x = Qt.UserRole")[0][2] == "Qt.ItemDataRole.UserRole"


def test_the_scan_has_no_false_positives():
    source = "\n".join(
        [
            "level = Qgis.MessageLevel.Warning",
            "t = [QgsProcessing.SourceType.TypeVectorPolygon]",
            "n = QgsProcessingParameterNumber.Type.Integer",
            "f = p.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced",
            "label.setAlignment(Qt.AlignmentFlag.AlignLeft)",
            "item.setData(Qt.ItemDataRole.UserRole, 1)",
            "QMessageBox.warning(None, 'a', 'b', QMessageBox.StandardButton.Ok)",
            "fields = [('status', QVariant.String)]  # kept: QgsField on 3.22 needs QVariant",
            "text = 'Qgis.Warning'  # Qt.UserRole in a comment",
            "value = other.Warning + self.Integer + Qgis.QGIS_VERSION",
        ]
    )
    assert unscoped(source) == []
