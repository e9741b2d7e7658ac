"""Review decisions are written to the GeoPackage at once (nothing lost on a crash)."""

from osgeo import ogr, osr
from qgis.core import QgsGeometry, QgsVectorLayer

from arctic_assist.gui.review_panel import save_decision


def make_proposals(path, n=3):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32608)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("thaw_slumps", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("score", ogr.OFTReal))
    lyr.CreateField(ogr.FieldDefn("status", ogr.OFTString))
    for i in range(n):
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("score", 0.5 + i / 10)
        f.SetField("status", "proposed")
        x = 470900 + 100 * i
        f.SetGeometry(
            ogr.CreateGeometryFromWkt(
                f"POLYGON(({x} 7549000,{x + 50} 7549000,{x + 50} 7549050,{x} 7549050,{x} 7549000))"
            )
        )
        lyr.CreateFeature(f)
    ds = None
    return path


def read_back(path):
    """Read with OGR, in a fresh connection: what a restarted QGIS would see."""
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    out = {
        f.GetFID(): (
            f.GetField("status"),
            f.GetField("reviewer"),
            f.GetField("reviewed_at"),
            f.GetGeometryRef().ExportToWkt(),
        )
        for f in lyr
    }
    return out


def test_accept_and_reject_are_on_disk_immediately(qgis_app, tmp_path):
    path = make_proposals(tmp_path / "p.gpkg")
    layer = QgsVectorLayer(f"{path}|layername=thaw_slumps", "p", "ogr")
    assert layer.isValid()
    fids = sorted(f.id() for f in layer.getFeatures())
    assert save_decision(layer, fids[0], "accepted") == "accepted"
    assert save_decision(layer, fids[1], "rejected") == "rejected"
    disk = read_back(path)
    assert disk[fids[0]][0] == "accepted" and disk[fids[1]][0] == "rejected"
    assert disk[fids[2]][0] == "proposed" and disk[fids[2]][1] is None
    assert disk[fids[0]][1] and disk[fids[0]][2].endswith("+00:00")


def test_geometry_edit_then_accept_is_saved_as_edited(qgis_app, tmp_path):
    path = make_proposals(tmp_path / "p.gpkg")
    layer = QgsVectorLayer(f"{path}|layername=thaw_slumps", "p", "ogr")
    fid = next(layer.getFeatures()).id()
    layer.startEditing()
    new = QgsGeometry.fromWkt(
        "POLYGON((470900 7549000,470980 7549000,470980 7549080,470900 7549080,470900 7549000))"
    )
    assert layer.changeGeometry(fid, new)
    assert save_decision(layer, fid, "accepted") == "edited"
    assert layer.isEditable()  # the expert keeps editing
    layer.rollBack()
    status, _, _, wkt = read_back(path)[fid]
    assert status == "edited"
    assert QgsGeometry.fromWkt(wkt).area() == new.area()
