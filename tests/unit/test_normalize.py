"""Exact preprocessing per the model metadata, and nodata handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx_factory import make_spec

from arctic_assist.core.normalize import apply_normalization, normalize, prepare, valid_mask
from arctic_assist.core.spec import Normalization

PIXELDINO = Normalization("pixeldino_logsigmoid", scale=0.005, gain=2.5, offset=2.1)


def test_pixeldino_known_values_by_hand():
    # DN 0:     log(1 + 0)    = 0        -> z = 2.5 (0 - 2.1) = -5.25
    #           255 sigmoid(-5.25)   = 255 * 0.0052201 = 1.331  -> 1
    # DN 1000:  log(1 + 5)    = 1.791759 -> z = -0.770602
    #           255 sigmoid(-0.7706) = 255 * 0.316347  = 80.67 -> 81
    # DN 10000: log(1 + 50)   = 3.931826 -> z = 4.579564
    #           255 sigmoid(4.5796)  = 255 * 0.989849  = 252.41 -> 252
    # DN 65535: log(1 + 327.675) = 5.794853 -> z = 9.237132 -> 254.975 -> 255
    dn = np.array([0, 1000, 10000, 65535], np.uint16).reshape(1, 1, 4)
    out = normalize(dn, PIXELDINO)
    np.testing.assert_array_equal(out[0, 0], np.array([1, 81, 252, 255], np.float32) / 255)
    assert out.dtype == np.float32


def test_pixeldino_formula_matches_math_module():
    for v in (1, 17, 423, 2100, 4444, 30000):
        u = 255.0 / (1.0 + math.exp(-2.5 * (math.log(1 + 0.005 * v) - 2.1)))
        want = round(min(max(u, 0.0), 255.0)) / 255.0
        got = normalize(np.array([[[v]]], np.uint16), PIXELDINO)[0, 0, 0]
        assert got == np.float32(want)


def test_pixeldino_unquantized():
    norm = Normalization("pixeldino_logsigmoid", scale=0.005, gain=2.5, offset=2.1, quantize=False)
    out = normalize(np.array([[[1000]]], np.uint16), norm)
    assert out[0, 0, 0] == pytest.approx(0.316347, abs=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
@pytest.mark.parametrize(
    "norm",
    [
        PIXELDINO,
        Normalization("scale", scale=1e-4, offset=-0.1),
        Normalization("standardize", scale=1 / 255, mean=(0.4, 0.5), std=(0.2, 0.25)),
        Normalization("none"),
    ],
)
def test_lookup_tables_equal_float64_formula(dtype, norm):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    lo, hi = (info.min, info.max) if info else (0, 20000)
    raw = rng.integers(lo, hi, size=(2, 17, 23), endpoint=True).astype(dtype)
    x = raw.astype(np.float64)
    if norm.type == "none":
        want = x
    elif norm.type == "scale":
        want = x * 1e-4 - 0.1
    elif norm.type == "standardize":
        want = (x / 255 - np.array([0.4, 0.5])[:, None, None]) / np.array([0.2, 0.25])[
            :, None, None
        ]
    else:
        u = 255.0 / (1.0 + np.exp(-2.5 * (np.log1p(0.005 * np.maximum(x, 0)) - 2.1)))
        want = np.round(np.clip(u, 0, 255)) / 255.0
    np.testing.assert_array_equal(apply_normalization(raw, norm), want.astype(np.float32))


def test_nodata_in_any_band_is_invalid_and_filled():
    spec = make_spec(
        nodata_value=0,
        nodata_fill=-5.0,
        normalization=Normalization("scale", scale=0.001, offset=0.0),
    )
    raw = np.full((4, 3, 3), 1000, np.uint16)
    raw[2, 1, 1] = 0  # one band only
    x, valid = prepare(raw, spec)
    assert valid.sum() == 8 and not valid[1, 1]
    assert (x[:, 1, 1] == -5.0).all()
    assert (x[:, 0, 0] == np.float32(1.0)).all()


def test_raster_nodata_takes_precedence_over_model_nodata():
    spec = make_spec(nodata_value=0)
    raw = np.full((4, 2, 2), 7, np.uint16)
    raw[:, 0, 0] = 0
    raw[1, 1, 1] = 65535
    _, valid = prepare(raw, spec, nodata=[65535, 65535, 65535, 65535])
    assert valid[0, 0] and not valid[1, 1]
    _, valid = prepare(raw, spec, nodata=[None] * 4)  # raster has none: the model's applies
    assert not valid[0, 0] and valid[1, 1]


def test_extra_validity_and_nan_float_rasters():
    spec = make_spec(nodata_value=None, dtype="float32")
    raw = np.ones((4, 2, 2), np.float32)
    raw[3, 0, 1] = np.nan
    extra = np.array([[True, True], [False, True]])
    x, valid = prepare(raw, spec, extra_valid=extra)
    assert valid.tolist() == [[True, False], [False, True]]
    assert np.isfinite(x).all()


def test_valid_mask_per_band_values_and_unrepresentable_nodata():
    raw = np.array([[[1, 2]], [[3, 4]]], np.uint8)
    assert valid_mask(raw, [1, 4]).tolist() == [[False, False]]
    assert valid_mask(raw, -9999).all()  # -9999 cannot occur in uint8
