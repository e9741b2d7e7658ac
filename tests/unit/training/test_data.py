"""Training-data folders: building, normalisation, validation messages that name the problem."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("osgeo.gdal")

from arctic_assist.io.raster import write_geotiff
from arctic_assist.io.training_data import DatasetError, load_dataset, normalize
from arctic_assist.training.data import TileSampler


def _copy(ds, tmp_path):
    dst = tmp_path / "ds"
    shutil.copytree(ds.root, dst)
    return dst, json.loads((dst / "manifest.json").read_text())


def _write(dst, doc):
    (dst / "manifest.json").write_text(json.dumps(doc))


def test_built_folder_loads(tiny_dataset):
    d = load_dataset(tiny_dataset.root)
    assert d.task == "segmentation" and d.bands == ("B2", "B3", "B4", "B8")
    assert d.dtype == "uint16" and d.crs == "EPSG:32608" and d.pixel_size_m == 10.0
    assert {c.split for c in d.chips} == {"train", "test"} and len(d.unlabelled) == 2
    img, mask = d.read_chip(d.chips[0])
    assert img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
    assert set(np.unique(mask)) <= {0, 1, 255}
    b = TileSampler(d, 32, 3, 2, seed=0).batch()
    assert b["x_l"].shape == (3, 4, 32, 32) and b["y_l"].shape == (3, 32, 32)
    assert b["x_u"].shape == (2, 4, 32, 32)


def test_normalize_matches_the_formula():
    raw = np.array([[[0, 100, 1000, 10000]]], dtype=np.uint16)
    norm = {"type": "pixeldino_logsigmoid", "scale": 0.005, "gain": 2.5, "offset": 2.1}
    out = normalize(raw, norm, nodata=0)
    x = raw.astype(np.float64)
    ref = np.round(np.clip(255 / (1 + np.exp(-2.5 * (np.log1p(0.005 * x) - 2.1))), 0, 255)) / 255
    ref[..., 0] = 0.0  # nodata -> fill
    assert np.array_equal(out, ref.astype(np.float32))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(format="other"), "field 'format'"),
        (lambda d: d.update(format_version=99), "format_version"),
        (lambda d: d.update(task="detection"), "field 'task'"),
        (lambda d: d.update(bands=[]), "field 'bands'"),
        (lambda d: d.update(dtype="int64"), "field 'dtype'"),
        (lambda d: d.update(normalization={"type": "magic"}), "field 'normalization'"),
        (lambda d: d.update(crs=""), "field 'crs'"),
        (lambda d: d["chips"][0].pop("mask"), "chips[0].mask"),
        (lambda d: d["chips"][1].update(split="holdout"), "chips[1].split"),
        (lambda d: d["chips"][0].update(image="nowhere.tif"), "nowhere.tif"),
        (lambda d: d.update(bands=["B2", "B3", "B4"]), "has 4 bands"),
        (lambda d: d.update(dtype="uint8"), "data type uint16"),
        (lambda d: d["chips"][0].update(weight=0), "chips[0].weight"),
    ],
)
def test_validation_errors_name_the_field(tiny_dataset, tmp_path, edit, message):
    dst, doc = _copy(tiny_dataset, tmp_path)
    edit(doc)
    _write(dst, doc)
    with pytest.raises(DatasetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_dataset(dst)


def test_bad_mask_values_and_missing_manifest(tiny_dataset, tmp_path):
    dst, doc = _copy(tiny_dataset, tmp_path)
    write_geotiff(
        dst / doc["chips"][0]["mask"], np.full((32, 32), 7, np.uint8), (0, 10, 0, 0, 0, -10), ""
    )
    with pytest.raises(DatasetError, match=r"values \[7\]"):
        load_dataset(dst)
    (dst / "manifest.json").unlink()
    with pytest.raises(DatasetError, match="manifest.json"):
        load_dataset(dst)
    (dst / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_dataset(dst)


def test_contour_polylines(tiny_dataset, tmp_path):
    dst, doc = _copy(tiny_dataset, tmp_path)
    doc["task"] = "contour"
    for c in doc["chips"]:
        c.pop("mask")
        c["polyline"] = [[0.5, 1.0], [10.0, 12.5], [31.0, 20.0]]
    _write(dst, doc)
    d = load_dataset(dst)
    assert d.chips[0].polyline[1] == [10.0, 12.5]
    doc["chips"][0]["polyline"] = [[1, 2]]
    _write(dst, doc)
    with pytest.raises(DatasetError, match=r"chips\[0\].polyline"):
        load_dataset(dst)


def _square_layer(path, squares, epsg=32608):
    from osgeo import ogr, osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("p", srs, ogr.wkbPolygon)
    for x0, y0, x1, y1 in squares:
        f = ogr.Feature(layer.GetLayerDefn())
        f.SetGeometry(
            ogr.CreateGeometryFromWkt(
                f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
            )
        )
        layer.CreateFeature(f)
    ds = None
    return path


def test_build_dataset_majority_vote_and_aoi(tmp_path):
    from osgeo import osr
    from arctic_assist.io.raster import read_raster
    from arctic_assist.io.training_data import build_dataset

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32608)
    raw = np.full((4, 32, 32), 500, np.uint16)
    raw[:, 0, 0] = 0  # one nodata pixel
    write_geotiff(tmp_path / "r.tif", raw, (0, 10, 0, 320, 0, -10), srs.ExportToWkt(), 0)
    # three 'experts': pixels x in [0,10) covered by all, [10,20) by two, [20,30) by one
    a = _square_layer(tmp_path / "a.gpkg", [(0, 0, 300, 320)])
    b = _square_layer(tmp_path / "b.gpkg", [(0, 0, 200, 320)])
    c = _square_layer(tmp_path / "c.gpkg", [(0, 0, 100, 320)])
    aoi = _square_layer(tmp_path / "aoi.gpkg", [(0, 0, 320, 160)])  # bottom half only
    d = build_dataset(
        [tmp_path / "r.tif"],
        [a, b, c],
        tmp_path / "ds",
        32,
        aoi_path=aoi,
        label_mode="majority",
        band_names=["B2", "B3", "B4", "B8"],
        min_valid_fraction=0.1,
    )
    assert len(d.chips) == 1
    m = read_raster(d.chips[0].mask)[0]
    assert (m[:16] == 255).all()  # outside the AOI
    row = m[20]
    assert (row[:20] == 1).all() and (row[20:] == 0).all()  # majority = 2 of 3
    assert m[0, 0] == 255
    assert d.unlabelled and d.unlabelled[0].image.name == "r.tif"


def test_merged_folder_can_be_moved(tiny_dataset, tmp_path):
    """A merged manifest points at its sources by relative paths: moving the merged folder
    together with its sources (e.g. to a training server) keeps it loadable."""
    from arctic_assist.io.training_data import merge_datasets

    base = tmp_path / "a"
    shutil.copytree(tiny_dataset.root, base / "src")
    merged = merge_datasets(base / "merged", [base / "src"], weights=[2.0])
    doc = json.loads((base / "merged" / "manifest.json").read_text())
    assert not any(c["image"].startswith("/") for c in doc["chips"])
    # unlabelled rasters outside the folders' parent (a user's scenes) stay absolute
    assert all(u["image"].startswith("/") for u in doc["unlabelled"])
    shutil.move(base, tmp_path / "moved")
    moved = load_dataset(tmp_path / "moved" / "merged")
    assert len(moved.chips) == len(merged.chips) == len(tiny_dataset.chips)
    assert moved.chips[0].weight == 2.0 * tiny_dataset.chips[0].weight
    img, mask = moved.read_chip(moved.chips[0])
    assert img.shape[0] == 4 and mask is not None


def test_positive_aware_sampling_shows_thaw_slumps(rts_dataset):
    """With positive_fraction p, at least about p of the labelled crops hold RTS pixels,
    and each such crop holds the pixel it was placed around (never an out-of-chip crop)."""
    chips = rts_dataset.select("train")
    has_rts = [bool((rts_dataset.read_chip(c)[1] == 1).any()) for c in chips]
    assert any(has_rts)

    def share(p):
        s = TileSampler(rts_dataset, 16, 64, 0, seed=1, positive_fraction=p)
        ys = np.concatenate([s.batch()["y_l"] for _ in range(4)])
        return float(np.mean([(y == 1).any() for y in ys]))

    uniform, aware = share(0.0), share(0.8)
    assert aware >= 0.75 and aware > uniform
