"""Every scoped enum that tests/unit/test_scoped_enums.py asks for exists in the running QGIS
(3.22's PyQt5 bindings) and is the same value as the unscoped member it replaces."""

from __future__ import annotations

import qgis.core
from qgis.PyQt import QtCore, QtGui, QtWidgets
from qt_enums import SCOPED


def test_every_scoped_form_exists_here(qgis_app):
    namespaces = (qgis.core, QtCore, QtGui, QtWidgets)
    missing = []
    for cls_name, members in SCOPED.items():
        cls = next(getattr(ns, cls_name) for ns in namespaces if hasattr(ns, cls_name))
        for member, enum in members.items():
            scoped = getattr(getattr(cls, enum, None), member, None)
            if scoped is None or int(scoped) != int(getattr(cls, member)):
                missing.append(f"{cls_name}.{enum}.{member}")
    assert not missing, "scoped forms this QGIS lacks: " + ", ".join(missing)
