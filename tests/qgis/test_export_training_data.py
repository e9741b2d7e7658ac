"""export_training_data through the Processing registry, on real GeoPackages and GeoTIFFs."""

import hashlib
import json

import numpy as np
import pytest
from osgeo import gdal, ogr, osr
from qgis.core import QgsProcessingException
from support import write_raster

ORIGIN = (470890.0, 7550020.0)


def square(x, y, size):
    return f"POLYGON(({x} {y},{x + size} {y},{x + size} {y + size},{x} {y + size},{x} {y}))"


def proposals(path, items, epsg=32608):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("thaw_slumps", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("status", ogr.OFTString))
    for wkt, status in items:
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("status", status)
        f.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        lyr.CreateFeature(f)
    ds = None
    return path


@pytest.fixture
def raster(tmp_path):
    rng = np.random.default_rng(0)
    return write_raster(
        tmp_path / "scene.tif",
        rng.integers(100, 3000, (4, 96, 96)).astype(np.uint16),
        descriptions=["B2", "B3", "B4", "B8"],
    )


def run(params):
    import processing

    return processing.run("arctic_assist:export_training_data", params)


def folder_digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_accepted_and_rejected_become_mask_values(provider, raster, tmp_path):
    x0, y0 = ORIGIN[0] + 100, ORIGIN[1] - 400  # inside the 960 m x 960 m raster
    labels = proposals(
        tmp_path / "p.gpkg",
        [
            (square(x0, y0, 200), "accepted"),
            (square(x0 + 400, y0, 200), "rejected"),
            (square(x0, y0 - 300, 100), "proposed"),
        ],
    )
    out = tmp_path / "data"
    res = run(
        {"LABELS": str(labels), "RASTERS": [str(raster)], "CHIP_SIZE": 48, "OUTPUT": str(out)}
    )
    assert res["TASK"] == "segmentation" and res["N_LABELS"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["bands"] == ["B2", "B3", "B4", "B8"] and manifest["dtype"] == "uint16"
    assert manifest["crs"] == "EPSG:32608" and manifest["pixel_size_m"] == 10.0
    masks = [gdal.Open(str(out / c["mask"])).ReadAsArray() for c in manifest["chips"]]
    total = sum(int((m == 1).sum()) for m in masks)
    assert total == 400  # the accepted 200 m x 200 m square at 10 m: 20 x 20 pixels
    assert all(set(np.unique(m)) <= {0, 1, 255} for m in masks)
    # no AOI: only what the expert decided on (and 16 px around it) is labelled; the
    # rejected square is background, the never-reviewed 'proposed' one is 'ignore'
    ds = gdal.Open(str(raster))
    inv = gdal.InvGeoTransform(ds.GetGeoTransform())

    def value_at(x, y):
        col, row = (int(v) for v in gdal.ApplyGeoTransform(inv, x, y))
        for c in manifest["chips"]:
            cgt = gdal.Open(str(out / c["mask"])).GetGeoTransform()
            c0, r0 = int(round((cgt[0] - ORIGIN[0]) / 10)), int(round((ORIGIN[1] - cgt[3]) / 10))
            m = gdal.Open(str(out / c["mask"])).ReadAsArray()
            if 0 <= row - r0 < m.shape[0] and 0 <= col - c0 < m.shape[1]:
                return int(m[row - r0, col - c0])
        return None

    assert value_at(x0 + 100, y0 + 100) == 1  # accepted
    assert value_at(x0 + 500, y0 + 100) == 0  # rejected: background
    assert value_at(x0 + 50, y0 - 250) in (255, None)  # proposed, never reviewed: ignore
    assert "reviewed_area" in manifest["provenance"]
    assert manifest["unlabelled"] and manifest["provenance"]["labels"] == [str(labels)]


def test_same_input_same_folder_and_aoi_ignore(provider, raster, tmp_path):
    labels = proposals(
        tmp_path / "p.gpkg", [(square(ORIGIN[0] + 100, ORIGIN[1] - 400, 200), "edited")]
    )
    aoi = proposals(tmp_path / "aoi.gpkg", [(square(ORIGIN[0], ORIGIN[1] - 600, 600), "proposed")])
    out = tmp_path / "data"
    params = {
        "LABELS": str(labels),
        "RASTERS": [str(raster)],
        "AOI": str(aoi),
        "CHIP_SIZE": 48,
        "OUTPUT": str(out),
    }
    run(params)
    first = folder_digest(out)
    run(params)
    assert folder_digest(out) == first
    manifest = json.loads((out / "manifest.json").read_text())
    values = np.concatenate(
        [gdal.Open(str(out / c["mask"])).ReadAsArray().ravel() for c in manifest["chips"]]
    )
    assert (values == 255).any() and (values == 1).any()


def test_labels_in_another_crs_are_reprojected(provider, raster, tmp_path):
    src = osr.SpatialReference()
    src.ImportFromEPSG(32608)
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    dst = osr.SpatialReference()
    dst.ImportFromEPSG(4326)
    dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    geom = ogr.CreateGeometryFromWkt(square(ORIGIN[0] + 100, ORIGIN[1] - 400, 200))
    geom.Transform(osr.CoordinateTransformation(src, dst))
    labels = proposals(tmp_path / "p4326.gpkg", [(geom.ExportToWkt(), "accepted")], 4326)
    out = tmp_path / "data"
    run({"LABELS": str(labels), "RASTERS": [str(raster)], "CHIP_SIZE": 48, "OUTPUT": str(out)})
    manifest = json.loads((out / "manifest.json").read_text())
    total = sum(
        int((gdal.Open(str(out / c["mask"])).ReadAsArray() == 1).sum()) for c in manifest["chips"]
    )
    assert 380 <= total <= 420


def test_invalid_geometry_is_repaired(provider, raster, tmp_path):
    x, y = ORIGIN[0] + 100, ORIGIN[1] - 400
    bowtie = f"POLYGON(({x} {y},{x + 200} {y + 200},{x + 200} {y},{x} {y + 200},{x} {y}))"
    labels = proposals(tmp_path / "p.gpkg", [(bowtie, "accepted")])
    out = tmp_path / "data"
    res = run(
        {"LABELS": str(labels), "RASTERS": [str(raster)], "CHIP_SIZE": 48, "OUTPUT": str(out)}
    )
    assert res["N_LABELS"] >= 1 and (out / "manifest.json").exists()


def test_nothing_reviewed_is_refused_and_previous_folder_kept(provider, raster, tmp_path):
    good = proposals(
        tmp_path / "good.gpkg", [(square(ORIGIN[0] + 100, ORIGIN[1] - 400, 200), "accepted")]
    )
    out = tmp_path / "data"
    run({"LABELS": str(good), "RASTERS": [str(raster)], "CHIP_SIZE": 48, "OUTPUT": str(out)})
    before = folder_digest(out)
    unreviewed = proposals(
        tmp_path / "p.gpkg", [(square(ORIGIN[0] + 100, ORIGIN[1] - 400, 200), "proposed")]
    )
    with pytest.raises(QgsProcessingException, match="no accepted or edited features"):
        run(
            {
                "LABELS": str(unreviewed),
                "RASTERS": [str(raster)],
                "CHIP_SIZE": 48,
                "OUTPUT": str(out),
            }
        )
    assert folder_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".data")) == []
