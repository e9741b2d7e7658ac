"""Mapping model bands to raster bands: explicit, by description, by count, errors."""

from __future__ import annotations

import pytest

from arctic_assist.core.bands import canonical_band, resolve_bands
from arctic_assist.core.errors import InputError

MODEL = ("B2", "B3", "B4", "B8")


@pytest.mark.parametrize(
    "text, want",
    [
        ("B02_blue", "B2"),
        ("B2", "B2"),
        ("blue", "B2"),
        ("Blue (B2)", "B2"),
        ("BLUE", "B2"),
        ("B03_green", "B3"),
        ("red", "B4"),
        ("B08_nir", "B8"),
        ("nir", "B8"),
        ("NIR", "B8"),
        ("nir08", "B8A"),
        ("B8A", "B8A"),
        ("swir16", "B11"),
        ("SWIR 2", "B12"),
        ("B12", "B12"),
        ("Red Edge 1", "B5"),
        ("coastal", "B1"),
        ("Band 1", None),
        ("", None),
        (None, None),
        ("elevation", None),
    ],
)
def test_canonical_band(text, want):
    assert canonical_band(text) == want


def test_explicit_bands_win_and_are_validated():
    desc = ["B02_blue", "B03_green", "B04_red", "B08_nir"]
    assert resolve_bands(MODEL, desc, [4, 3, 2, 1]) == [4, 3, 2, 1]
    with pytest.raises(InputError, match=r"model needs 4 bands \(B2, B3, B4, B8\); BANDS lists 3"):
        resolve_bands(MODEL, desc, [1, 2, 3])
    with pytest.raises(InputError, match="band 9 does not exist"):
        resolve_bands(MODEL, desc, [1, 2, 3, 9])


def test_match_by_description_any_order_and_naming():
    desc = ["nir", "SWIR16", "Red (B4)", "B03_green", "blue"]
    assert resolve_bands(MODEL, desc) == [5, 4, 3, 1]
    seven = ["B2", "B3", "B4", "B5", "B6", "B7", "B8"]
    assert resolve_bands(MODEL, seven) == [1, 2, 3, 7]


def test_nir_sibling_fallback():
    assert resolve_bands(MODEL, ["blue", "green", "red", "nir08", "swir16"]) == [1, 2, 3, 4]


def test_match_by_count_when_descriptions_are_empty():
    assert resolve_bands(MODEL, ["", "", "", ""]) == [1, 2, 3, 4]


def test_error_names_bands_descriptions_and_suggests_bands():
    desc = ["B2", "B3", "B4", "", "", "", ""]
    with pytest.raises(InputError) as err:
        resolve_bands(MODEL, desc, source="peel.tif")
    msg = str(err.value)
    assert "B2, B3, B4, B8" in msg and "peel.tif" in msg and "BANDS=1,2,3,4" in msg
    assert "1: 'B2'" in msg


def test_too_few_bands():
    with pytest.raises(InputError, match="has only 3 band"):
        resolve_bands(MODEL, ["red", "green", "blue"])


def test_duplicate_descriptions_fall_back_to_count_or_error():
    assert resolve_bands(MODEL, ["blue", "blue", "red", "nir"]) == [1, 2, 3, 4]
