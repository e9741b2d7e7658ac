"""Exact model-input preprocessing, as the model's metadata (``input.normalization``) says.

numpy only. The formulas are those of :class:`arctic_assist.core.spec.Normalization`; they
are evaluated in float64 and cast to float32 once, so the plugin reproduces the training
code (which calls this module) bit for bit. Integer rasters (uint8,
uint16, int16) with the PixelDINO log-sigmoid go through a lookup table built with the
same float64 formula: exact and several times faster than evaluating ``log``/``exp``.

Nodata: a pixel equal to the nodata value in ANY band (or NaN in a float raster) is
invalid; after normalisation it is set to ``spec.nodata_fill`` and reported in the mask.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from .errors import ModelError
from .spec import ModelSpec, Normalization, parse_normalization

LOG = logging.getLogger(__name__)

#: integer dtypes normalised through a lookup table (value range is small enough)
_LUT_DTYPES = {np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16)}


def _formula(x: np.ndarray, norm: Normalization) -> np.ndarray:
    """The float64 formula for (C, ...) raw values ``x`` (float64)."""
    kind = norm.type
    if kind == "none":
        return x
    if kind == "scale":
        return x * norm.scale + norm.offset
    if kind == "standardize":
        shape = (-1,) + (1,) * (x.ndim - 1)
        mean = np.asarray(norm.mean, dtype=np.float64).reshape(shape)
        std = np.asarray(norm.std, dtype=np.float64).reshape(shape)
        return (x * norm.scale - mean) / std
    if kind == "pixeldino_logsigmoid":
        z = norm.gain * (np.log1p(norm.scale * np.maximum(x, 0.0)) - norm.offset)
        u = 255.0 / (1.0 + np.exp(-z))
        if norm.quantize:
            u = np.round(np.clip(u, 0.0, 255.0))
        else:
            u = np.clip(u, 0.0, 255.0)
        return u / 255.0
    raise ModelError(f"normalisation '{kind}' is not supported by this version of Arctic Assist")


def denormalize(x: np.ndarray, norm: Normalization) -> np.ndarray:
    """The raw band values (float64) of normalised values ``x`` (C x ...): the inverse of
    :func:`_formula` (the log-sigmoid's 0 and 1 taken as half a quantisation step in)."""
    x = np.asarray(x, np.float64)
    shape = (-1,) + (1,) * (x.ndim - 1)
    kind = norm.type
    if kind == "none":
        return x
    if kind == "scale":
        return (x - norm.offset) / norm.scale
    if kind == "standardize":
        mean = np.asarray(norm.mean, np.float64).reshape(shape)
        std = np.asarray(norm.std, np.float64).reshape(shape)
        return (x * std + mean) / norm.scale
    if kind == "pixeldino_logsigmoid":
        u = np.clip(x, 0.5 / 255.0, 1.0 - 0.5 / 255.0)
        z = np.log(u) - np.log1p(-u)
        return np.expm1(z / norm.gain + norm.offset) / norm.scale
    raise ModelError(f"normalisation '{kind}' is not supported by this version of Arctic Assist")


@lru_cache(maxsize=32)
def _lut(dtype_str: str, norm: Normalization, band: int) -> np.ndarray:
    """float32 table of the float64 formula for every value of an integer dtype (one band)."""
    info = np.iinfo(np.dtype(dtype_str))
    values = np.arange(info.min, info.max + 1, dtype=np.float64)[None]
    if norm.type == "standardize":
        one = Normalization(
            "standardize", scale=norm.scale, mean=(norm.mean[band],), std=(norm.std[band],)
        )
        return _formula(values, one)[0].astype(np.float32)
    return _formula(values, norm)[0].astype(np.float32)


def apply_normalization(raw: np.ndarray, norm: Normalization) -> np.ndarray:
    """Raw band values (C x H x W, any dtype) -> float32 model input (no nodata handling).

    Integer rasters go through per-dtype lookup tables holding the float64 formula's
    result, so the output is identical to evaluating the formula in float64 and casting.
    """
    raw = np.asarray(raw)
    if norm.type == "standardize" and len(norm.mean) != raw.shape[0]:
        raise ModelError(
            f"normalisation 'standardize' lists {len(norm.mean)} means for {raw.shape[0]} bands"
        )
    if raw.dtype in _LUT_DTYPES and norm.type != "none":
        offset = -int(np.iinfo(raw.dtype).min)
        out = np.empty(raw.shape, dtype=np.float32)
        for b in range(raw.shape[0]):
            lut = _lut(raw.dtype.str, norm, b if norm.type == "standardize" else 0)
            idx = raw[b].astype(np.int32) + offset if offset else raw[b]
            # the table covers every value of the dtype: "clip" never clips, and skips
            # the bounds checks ("raise" buffers the output; about 1.7 x slower)
            np.take(lut, idx, out=out[b], mode="clip")
        return out
    if norm.type == "none":
        return raw.astype(np.float32)
    return _formula(raw.astype(np.float64), norm).astype(np.float32)


def normalize(raw: np.ndarray, spec: ModelSpec | Normalization | Mapping[str, Any]) -> np.ndarray:
    """Normalise ``raw`` (C x H x W) with a spec's (or a bare) :class:`Normalization`, or
    a metadata-style ``input.normalization`` mapping (validated: :class:`ModelSpecError`)."""
    if isinstance(spec, ModelSpec):
        norm = spec.normalization
    elif isinstance(spec, Normalization):
        norm = spec
    else:
        norm = parse_normalization(spec, np.shape(raw)[0])
    return apply_normalization(raw, norm)


def valid_mask(raw: np.ndarray, nodata: Sequence[float | None] | float | None) -> np.ndarray:
    """True where no band equals its nodata value (and no band is NaN). ``raw``: C x H x W.

    ``nodata`` is one value for all bands, or one value (or ``None``) per band.
    """
    raw = np.asarray(raw)
    valid = np.ones(raw.shape[1:], dtype=bool)
    if nodata is None or np.isscalar(nodata):
        per_band: list[float | None] = [nodata] * raw.shape[0]  # type: ignore[list-item]
    else:
        per_band = list(nodata)  # type: ignore[arg-type]
        if len(per_band) != raw.shape[0]:
            raise ValueError(f"{len(per_band)} nodata values for {raw.shape[0]} bands")
    is_float = raw.dtype.kind == "f"
    for b, nd in enumerate(per_band):
        band = raw[b]
        if nd is not None and not (isinstance(nd, float) and np.isnan(nd)):
            valid &= band != band.dtype.type(nd) if _representable(nd, band.dtype) else True
        if is_float:
            valid &= ~np.isnan(band)
    return valid


def _representable(value: float, dtype: np.dtype) -> bool:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(value).is_integer() and info.min <= value <= info.max
    return True


def prepare(
    raw: np.ndarray,
    spec: ModelSpec,
    nodata: Sequence[float | None] | float | None = None,
    extra_valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalise and apply nodata: returns (float32 C x H x W input, bool H x W valid mask).

    ``nodata``: the raster's nodata (one value or one per band); when it is ``None`` (or all
    ``None``) the model's ``input.nodata.value`` is used. ``extra_valid`` (H x W) is ANDed in
    (e.g. the alpha band of a warped grid, or a user mask). Invalid pixels get
    ``spec.nodata_fill``.
    """
    if nodata is None or (not np.isscalar(nodata) and all(v is None for v in nodata)):  # type: ignore[union-attr]
        nodata = spec.nodata_value
    valid = valid_mask(raw, nodata)
    if extra_valid is not None:
        valid &= extra_valid
    x = normalize(raw, spec)
    if not valid.all():
        x[:, ~valid] = np.float32(spec.nodata_fill)
    return x, valid
