"""The sample image shipped for `make demo` (and in the plugin zip) keeps its licence and
attribution beside it and is what the bundled model expects (4 bands B2, B3, B4, B8)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "resources" / "sample"


def test_sample_ships_with_licence_and_attribution():
    assert (SAMPLE / "LICENSE_peel_s2_bgrn_10m.txt").read_text().startswith("MIT License")
    readme = (SAMPLE / "README.md").read_text()
    assert "doi:10.1002/ppp.2249" in readme and "Copernicus Sentinel" in readme


def test_sample_fits_the_bundled_model():
    gdal = pytest.importorskip("osgeo.gdal")
    from arctic_assist.core.onnx_model import read_model_spec

    ds = gdal.Open(str(SAMPLE / "peel_s2_bgrn_10m.tif"))
    spec = read_model_spec(REPO / "models" / "rts_pixeldino_s2_bgrn.onnx")
    assert ds.RasterCount == len(spec.bands) == 4
    assert gdal.GetDataTypeName(ds.GetRasterBand(1).DataType).lower() == spec.dtype
    assert abs(ds.GetGeoTransform()[1]) == spec.pixel_size_m
