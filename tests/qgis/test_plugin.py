"""The plugin object and its provider inside a real QgsApplication (pytest-qgis)."""

import numpy as np
import pytest
from qgis.core import QgsApplication, QgsProcessingException
from qgis.PyQt.QtWidgets import QToolBar

import arctic_assist
from arctic_assist import deps
from arctic_assist.plugin import TOOLBAR_ENTRIES, TOOLBAR_NAME
from support import write_raster


def test_provider_lists_algorithms_with_help(provider):
    algs = {a.id(): a for a in provider.algorithms()}
    assert "arctic_assist:detect_thaw_slumps" in algs
    for alg in algs.values():
        assert len(alg.shortHelpString()) > 200
        assert not alg.icon().isNull()
    # qgis_process (3.22) takes enum options by number: the help says which is which
    assert (
        "DEVICE</b>: 0 = auto, 1 = cpu, 2 = cuda"
        in algs["arctic_assist:detect_thaw_slumps"].shortHelpString()
    )


def test_init_gui_and_unload(qgis_app, qgis_iface):
    plugin = arctic_assist.classFactory(qgis_iface)
    registry = QgsApplication.processingRegistry()
    had_provider = registry.providerById("arctic_assist") is not None
    plugin.initGui()
    try:
        toolbar = qgis_iface.mainWindow().findChild(QToolBar, TOOLBAR_NAME)
        assert toolbar is not None
        assert [a.objectName() for a in toolbar.actions()] == [
            e.object_name for e in TOOLBAR_ENTRIES
        ]
        assert registry.providerById("arctic_assist") is not None
    finally:
        plugin.unload()
    assert plugin.actions == [] and plugin.toolbar is None
    assert (registry.providerById("arctic_assist") is not None) == had_provider


def test_missing_dependency_gives_one_message(
    qgis_app, qgis_iface, provider, monkeypatch, tmp_path
):
    """Without onnxruntime the GUI says what to install and algorithms fail with that text."""
    import processing

    monkeypatch.setattr(deps, "missing_dependencies", lambda: ["onnxruntime"])
    message = deps.dependency_message()
    assert "onnxruntime" in message and "pip install" in message
    raster = write_raster(tmp_path / "in.tif", np.full((4, 32, 32), 500, dtype=np.uint16))
    with pytest.raises(QgsProcessingException) as err:
        processing.run(
            "arctic_assist:detect_thaw_slumps",
            {"INPUT": str(raster), "OUTPUT": str(tmp_path / "out.gpkg")},
        )
    assert "onnxruntime" in str(err.value)
    assert not (tmp_path / "out.gpkg").exists()


def test_closed_dialogs_do_not_break_the_next_action_or_unload(qgis_app, qgis_iface):
    """Dialogs delete themselves when the user closes them; the plugin keeps references to
    open dialogs and must neither touch deleted ones on the next action nor on unload."""
    from qgis.PyQt import sip
    from qgis.PyQt.QtWidgets import QDialog

    plugin = arctic_assist.classFactory(qgis_iface)
    plugin.initGui()
    try:
        closed = QDialog()
        plugin._track(closed)
        sip.delete(closed)  # what WA_DeleteOnClose does when the user closes it
        still_open = QDialog()
        still_open.show()
        plugin._track(still_open)
        assert plugin.dialogs == [still_open]
        sip.delete(still_open)
    finally:
        plugin.unload()
    assert plugin.dialogs == []
