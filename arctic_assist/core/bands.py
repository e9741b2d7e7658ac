"""Map the model's input bands onto raster bands.

Order of precedence (:func:`resolve_bands`):

1. an explicit list of 1-based raster band numbers (``BANDS``), validated;
2. the raster's band descriptions, normalised to canonical Sentinel-2 names
   (``B02_blue``, ``B2``, ``blue``, ``Blue (B2)`` all mean ``B2``; STAC common names such as
   ``nir``, ``nir08``, ``swir16`` are understood);
3. the band count, when the raster has exactly the model's number of bands;
4. otherwise one :class:`InputError` naming the model's bands, the raster's descriptions
   and the ``BANDS`` value to pass.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from .errors import InputError

LOG = logging.getLogger(__name__)

#: common names (STAC eo:common_name and everyday words) -> canonical Sentinel-2 band
ALIASES: dict[str, str] = {
    "coastal": "B1",
    "aerosol": "B1",
    "coastalaerosol": "B1",
    "blue": "B2",
    "green": "B3",
    "red": "B4",
    "rededge1": "B5",
    "re1": "B5",
    "rededge2": "B6",
    "re2": "B6",
    "rededge3": "B7",
    "re3": "B7",
    "nir": "B8",
    "nir08": "B8A",
    "nirnarrow": "B8A",
    "narrownir": "B8A",
    "re4": "B8A",
    "rededge4": "B8A",
    "nir09": "B9",
    "watervapour": "B9",
    "watervapor": "B9",
    "cirrus": "B10",
    "swir13": "B10",
    "swir16": "B11",
    "swir1": "B11",
    "swir22": "B12",
    "swir2": "B12",
}
_BAND_ID = re.compile(r"^b(?:and)?0*(\d{1,2})(a?)$")
#: a model band that is not found may be served by its spectral sibling (NIR broad/narrow)
_SIBLINGS = {"B8": "B8A", "B8A": "B8"}


def canonical_band(name: str | None) -> str | None:
    """The canonical band name (``B2``, ``B8A``...) of a description, or ``None``.

    >>> [canonical_band(s) for s in ("B02_blue", "B2", "blue", "Blue (B2)", "nir08", "x")]
    ['B2', 'B2', 'B2', 'B2', 'B8A', None]
    """
    if not name:
        return None
    text = name.strip().lower()
    tokens = [t for t in re.split(r"[^a-z0-9]+", text) if t]
    joined = "".join(tokens)
    # band identifiers first (B02, B8A, band8), then common names
    for tok in tokens:
        m = _BAND_ID.match(tok)
        if m and not tok.startswith("band"):
            return f"B{int(m.group(1))}{m.group(2).upper()}"
    for key in (joined, *tokens):
        if key in ALIASES:
            return ALIASES[key]
    # "red edge 1", "near infrared": join neighbouring tokens
    for i in range(len(tokens) - 1):
        pair = tokens[i] + tokens[i + 1]
        if pair in ALIASES:
            return ALIASES[pair]
    if joined in ("nearinfrared", "infrared"):
        return "B8"
    return None


def bands_fit(data_bands: Sequence[str], model_bands: Sequence[str]) -> bool:
    """Whether training data with bands ``data_bands`` can train a model with
    ``model_bands`` (in its order): compared by canonical name (``blue`` = ``B2``), or only
    by count where the data's names say nothing (``band1..band4`` from a raster without
    band descriptions)."""

    def canon(names: Sequence[str]) -> list[str]:
        return [canonical_band(b) or b.strip().lower() for b in names]

    if any(canonical_band(b) for b in data_bands):
        return canon(data_bands) == canon(model_bands)
    return len(data_bands) == len(model_bands)


def _fmt_descriptions(descriptions: Sequence[str | None]) -> str:
    return ", ".join(f"{i + 1}: '{d or ''}'" for i, d in enumerate(descriptions))


def resolve_bands(
    model_bands: Sequence[str],
    descriptions: Sequence[str | None],
    explicit: Sequence[int] | None = None,
    *,
    source: str = "the raster",
) -> list[int]:
    """1-based raster band numbers, in the model's band order.

    ``descriptions`` has one entry per raster band (GDAL ``GetDescription()``, may be empty).
    """
    n_model = len(model_bands)
    n_raster = len(descriptions)
    wanted = ", ".join(model_bands)
    if explicit:
        explicit = [int(b) for b in explicit]
        if len(explicit) != n_model:
            raise InputError(
                f"model needs {n_model} bands ({wanted}); BANDS lists {len(explicit)} "
                f"({', '.join(map(str, explicit))}). List one raster band per model band, "
                "in the model's order."
            )
        bad = [b for b in explicit if not 1 <= b <= n_raster]
        if bad:
            raise InputError(
                f"BANDS: band {bad[0]} does not exist; {source} has {n_raster} band(s) "
                f"(1..{n_raster})."
            )
        return explicit

    canon = [canonical_band(d) for d in descriptions]
    by_desc: list[int | None] = []
    for mb in model_bands:
        target = canonical_band(mb) or mb.strip().lower()
        hits = [i + 1 for i, c in enumerate(canon) if c == target]
        if not hits:  # an exact (non-canonical) description match
            hits = [
                i + 1
                for i, d in enumerate(descriptions)
                if d and d.strip().lower() == mb.strip().lower()
            ]
        if not hits and target in _SIBLINGS:
            hits = [i + 1 for i, c in enumerate(canon) if c == _SIBLINGS[target]]
        by_desc.append(hits[0] if len(hits) == 1 else None)
    if all(b is not None for b in by_desc) and len(set(by_desc)) == n_model:
        LOG.info("bands matched by description: %s -> %s", wanted, by_desc)
        return [int(b) for b in by_desc]  # type: ignore[arg-type]

    if n_raster == n_model:
        LOG.info("bands matched by count: raster bands 1..%d as %s", n_raster, wanted)
        return list(range(1, n_model + 1))

    suggestion = [b if b is not None else i + 1 for i, b in enumerate(by_desc)]
    if n_raster < n_model:
        raise InputError(
            f"model needs {n_model} bands ({wanted}); {source} has only {n_raster} band(s) "
            f"({_fmt_descriptions(descriptions)}). Use a raster with these bands."
        )
    raise InputError(
        f"cannot tell which raster bands are the model's {n_model} bands ({wanted}): "
        f"{source} has {n_raster} bands ({_fmt_descriptions(descriptions)}). Pass the raster "
        f"bands in the model's order, e.g. BANDS={','.join(map(str, suggestion))}."
    )
