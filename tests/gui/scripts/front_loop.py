"""The glacier half of the expert loop in the real QGIS window (``qgis --code``).

Open the Harald Moltke Brae image, drag a box with the *Trace calving front* map tool (the
styled line appears), trace three boxes drawn in a polygon layer (selected polygons are
used instead of a dragged box), review the three fronts in the dock (accept one, move a
vertex of another and accept it: saved as 'edited', reject the third), export the
reviewed fronts, retrain COBRA a few steps from the bundled model, and trace again with the
new model by dragging the box. Each stage saves a screenshot; ``result.json`` records what
happened. Inputs come from environment variables set by tests/gui/test_front_loop.py.
"""

import os

from osgeo import ogr, osr
from qgis.core import (
    QgsCoordinateTransform,
    QgsFillSymbol,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt
from qgis.PyQt.QtWidgets import QPushButton
from qgis.utils import iface, plugins

from loop_support import (  # tests/gui/scripts, on PYTHONPATH (support.run_qgis_script)
    dialog_done,
    dialog_log,
    new_dialog,
    run_dialog,
    run_from_toolbar,
    shot,
    start,
    toolbar_action,
)

RASTER = os.environ["AA_RASTER"]
BOX = os.environ["AA_BOX"]
MODEL = os.environ["AA_MODEL"]
PYTHON = os.environ["AA_PYTHON"]
WORK = os.environ["AA_WORK"]
result = {"stages": [], "ok": False}


def box_rect(raster):
    """The reference box's bounding rectangle in the raster's (= the canvas's) CRS."""
    box = QgsVectorLayer(BOX, "box", "ogr")
    assert box.isValid(), BOX
    xform = QgsCoordinateTransform(box.crs(), raster.crs(), QgsProject.instance())
    return xform.transformBoundingBox(box.extent())


def drag_box(rect):
    """Press, move and release the left button over ``rect`` on the canvas, as a hand
    would with the active map tool (the plugin's Trace calving front box tool)."""
    canvas = iface.mapCanvas()
    tool = canvas.mapTool()
    assert type(tool).__name__ == "TraceBoxTool", type(tool).__name__
    to_px = canvas.getCoordinateTransform()
    a = to_px.transform(rect.xMinimum(), rect.yMaximum())
    b = to_px.transform(rect.xMaximum(), rect.yMinimum())

    def event(kind, p, button, buttons):
        return QgsMapMouseEvent(
            canvas, kind, QPoint(round(p.x()), round(p.y())), button, buttons,
            Qt.KeyboardModifier.NoModifier,
        )  # fmt: skip

    left = Qt.MouseButton.LeftButton
    none = Qt.MouseButton.NoButton
    tool.canvasPressEvent(event(QEvent.Type.MouseButtonPress, a, left, left))
    mid = type(a)((a.x() + b.x()) / 2, (a.y() + b.y()) / 2)
    tool.canvasMoveEvent(event(QEvent.Type.MouseMove, mid, none, left))
    tool.canvasMoveEvent(event(QEvent.Type.MouseMove, b, none, left))
    tool.canvasReleaseEvent(event(QEvent.Type.MouseButtonRelease, b, left, none))


def trace_by_dragging(rect, raster, model, output):
    """Toolbar button, drag the box, then Run in the dialog the tool opens."""
    before = list(plugins["arctic_assist"].dialogs)
    toolbar_action("ArcticAssistTrace").trigger()
    drag_box(rect)
    dialog = new_dialog(before)
    from arctic_assist.gui.trace_tool import aoi_folder

    aoi = max(aoi_folder().glob("aoi_*.gpkg"), key=lambda p: p.stat().st_mtime)
    return run_dialog(dialog, {"INPUT": raster, "AOI": str(aoi), "MODEL": model, "OUTPUT": output})


def boxes_layer(rect, crs_wkt):
    """Three boxes around the terminus in a polygon GeoPackage (as an expert might draw
    them: the box, a tighter one, one shifted towards the fjord)."""
    path = os.path.join(WORK, "boxes.gpkg")
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    lyr = ds.CreateLayer("boxes", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("aoi_id", ogr.OFTInteger))
    w, h = rect.width(), rect.height()
    cx, cy = rect.center().x(), rect.center().y()
    for i, (scale, dx, dy) in enumerate(((1.0, 0, 0), (0.85, 0, 0), (1.0, 0.08, -0.08)), 1):
        x0, x1 = cx + dx * w - scale * w / 2, cx + dx * w + scale * w / 2
        y0, y1 = cy + dy * h - scale * h / 2, cy + dy * h + scale * h / 2
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("aoi_id", i)
        f.SetGeometry(
            ogr.CreateGeometryFromWkt(
                f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
            )
        )
        lyr.CreateFeature(f)
    ds = None
    return path


def statuses(path):
    ds = ogr.Open(path)
    return {f.GetFID(): f.GetField("status") for f in ds.GetLayer(0)}


def fronts_layers(output):
    return [
        lyr
        for lyr in QgsProject.instance().mapLayers().values()
        if isinstance(lyr, QgsVectorLayer)
        and lyr.source().split("|")[0] == output
        and lyr.name().startswith("Calving fronts (Harald Moltke Brae, ")
    ]


def scenario():
    window = iface.mainWindow()
    window.resize(1400, 900)
    raster = QgsRasterLayer(RASTER, "Harald Moltke Brae")
    assert raster.isValid()
    QgsProject.instance().addMapLayer(raster)
    QgsProject.instance().setCrs(raster.crs())
    iface.setActiveLayer(raster)
    rect = box_rect(raster)
    view = rect.buffered(rect.width() * 0.6)
    iface.mapCanvas().setExtent(view)
    iface.mapCanvas().refresh()
    yield 1.0

    # 1. drag a box with the Trace calving front tool: the styled line appears
    first = os.path.join(WORK, "front_dragged.gpkg")
    dialog = trace_by_dragging(rect, raster, MODEL, first)
    yield lambda: dialog_done(dialog)
    assert dialog.results(), dialog_log(dialog)
    layers = fronts_layers(first)
    assert layers, "the traced front was not added to the project"
    renderer = layers[0].renderer()
    result["stages"].append(
        {
            "stage": "trace_drag",
            "features": layers[0].featureCount(),
            "renderer": type(renderer).__name__,
            "style_attribute": getattr(renderer, "classAttribute", lambda: None)(),
        }
    )
    iface.mapCanvas().setExtent(view)
    yield 1.0
    shot("01_trace_drag", dialog)
    dialog.close()

    # 2. three boxes drawn in a polygon layer, selected: one front per box
    boxes = QgsVectorLayer(boxes_layer(rect, raster.crs().toWkt()), "boxes", "ogr")
    assert boxes.isValid()
    # an expert's AOI layer: outlines only, the image stays visible
    boxes.renderer().setSymbol(
        QgsFillSymbol.createSimple(
            {"style": "no", "outline_color": "30,120,255", "outline_width": "0.6"}
        )
    )
    QgsProject.instance().addMapLayer(boxes)
    boxes.selectAll()
    iface.setActiveLayer(boxes)
    fronts_path = os.path.join(WORK, "fronts.gpkg")
    before = list(plugins["arctic_assist"].dialogs)
    toolbar_action("ArcticAssistTrace").trigger()  # selected polygons: no dragging
    dialog = new_dialog(before)
    run_dialog(dialog, {"INPUT": raster, "MODEL": MODEL, "OUTPUT": fronts_path})
    yield lambda: dialog_done(dialog)
    assert dialog.results(), dialog_log(dialog)
    fronts = fronts_layers(fronts_path)[0]
    assert fronts.featureCount() == 3, fronts.featureCount()
    result["stages"].append({"stage": "trace_boxes", "features": fronts.featureCount()})
    dialog.close()

    # 3. review in the dock: accept one, edit a vertex of another (-> edited), reject one
    iface.setActiveLayer(fronts)
    toolbar_action("ArcticAssistReview").trigger()
    panel = plugins["arctic_assist"].review_panel
    yield 0.5
    assert panel.isVisible() and panel.layer is fronts
    panel.select_row(0)
    accepted = panel.current_fid()
    panel.findChild(QPushButton, "ArcticAssistReviewAccept").click()
    edited = panel.current_fid()
    fronts.startEditing()
    geom = fronts.getFeature(edited).geometry()
    vertex = geom.vertexAt(10)
    moved = (vertex.x() + 60.0, vertex.y() - 60.0)  # two pixels, as a hand correction
    assert fronts.moveVertex(moved[0], moved[1], edited, 10)
    panel.findChild(QPushButton, "ArcticAssistReviewAccept").click()
    rejected = panel.current_fid()
    panel.findChild(QPushButton, "ArcticAssistReviewReject").click()
    yield 0.5
    on_disk = statuses(fronts_path)
    assert on_disk == {accepted: "accepted", edited: "edited", rejected: "rejected"}, on_disk
    ds = ogr.Open(fronts_path)  # kept alive while its layer and feature are used
    saved = ds.GetLayer(0).GetFeature(edited)
    line = saved.GetGeometryRef()
    assert abs(line.GetX(10) - moved[0]) < 1e-6 and abs(line.GetY(10) - moved[1]) < 1e-6
    saved = line = ds = None
    fronts.commitChanges()
    result["stages"].append(
        {"stage": "review", "accepted": accepted, "edited": edited, "rejected": rejected}
    )
    boxes.removeSelection()
    iface.mapCanvas().setExtent(view)
    yield 1.0
    shot("02_review")

    # 4. export the reviewed fronts
    data = os.path.join(WORK, "fronts_training_data")
    dialog = run_from_toolbar(
        "ArcticAssistExport", {"LABELS": fronts, "RASTERS": [raster], "OUTPUT": data}
    )
    yield lambda: dialog_done(dialog)
    assert dialog.results(), dialog_log(dialog)
    assert dialog.results()["TASK"] == "contour", dialog.results()
    result["stages"].append({"stage": "export", "chips": dialog.results()["N_CHIPS"]})
    dialog.close()

    # 5. retrain COBRA for a few steps; without BASE_MODEL, START's default (auto) starts
    # a calving-front run from the task's default model: the bundled one in this profile
    new_model = os.path.join(WORK, "cobra_retrained.onnx")
    dialog = run_from_toolbar(
        "ArcticAssistRetrain",
        {
            "DATA": data,
            "TASK": 1,
            "STEPS": 3,
            "PYTHON": PYTHON,
            "OUTPUT": new_model,
        },
    )
    yield lambda: dialog_done(dialog)
    assert dialog.results(), dialog_log(dialog)
    assert "START: starting from the default model" in dialog_log(dialog), dialog_log(dialog)
    assert "calving_front_cobra.onnx" in dialog_log(dialog).split("--base-model ")[1]
    result["stages"].append(
        {"stage": "retrain", "model": new_model, "registered": dialog.results().get("REGISTERED")}
    )
    shot("03_retrain", dialog)
    dialog.close()

    # 6. trace again with the new model, by dragging the box
    iface.setActiveLayer(raster)
    again = os.path.join(WORK, "front_retrained.gpkg")
    dialog = trace_by_dragging(rect, raster, new_model, again)
    yield lambda: dialog_done(dialog)
    assert dialog.results(), dialog_log(dialog)
    assert fronts_layers(again), "the new front was not added to the project"
    result["stages"].append(
        {"stage": "trace_again", "features": fronts_layers(again)[0].featureCount()}
    )
    dialog.close()
    iface.mapCanvas().setExtent(view)
    yield 1.0
    shot("04_trace_again")
    result["ok"] = True


start(scenario(), result)
