"""GeoPackage geometry blobs of traced outlines, built in numpy (no geometry objects).

:func:`polygon_blobs` turns an :class:`~arctic_assist.core.outline.Outline` (rings in
pixel coordinates) into one GeoPackage geometry blob per region, all in one buffer: the
``GP`` header (version 0, little-endian, an x/y envelope, the layer's ``srs_id``), the
envelope, then a little-endian WKB MultiPolygon holding one Polygon (outer ring, holes;
each ring closed), as ``gdal.VectorTranslate -nlt PROMOTE_TO_MULTI`` would write it
(GeoPackage 1.2, clause 2.1.3). Map coordinates: ``gt`` applied to the pixel corners.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ..core.outline import Outline

_HEAD = 8 + 32 + 9 + 9  # GP header, envelope, MultiPolygon header, Polygon header
_POLYGON_AT = 8 + 32 + 9  # where the Polygon's WKB starts in a blob


def _put(buf: np.ndarray, at: np.ndarray, rows: np.ndarray) -> None:
    """``buf[at[i] : at[i] + k] = rows[i]`` for every i (``rows``: n x k bytes; the
    slices do not overlap): one scatter of k-byte items through a view of ``buf`` whose
    item j is ``buf[j : j + k]`` (a stride of one byte), so no n x k index is built."""
    n, k = rows.shape
    if n == 0:
        return
    item = np.dtype((np.void, k))
    view = np.ndarray((buf.size - k + 1,), dtype=item, buffer=buf, strides=(1,))
    view[at] = np.ascontiguousarray(rows).view(item).ravel()


def _starts(sizes: np.ndarray) -> np.ndarray:
    """Where each of consecutive items of ``sizes`` starts, with the total appended."""
    out = np.zeros(sizes.size + 1, np.int64)
    np.cumsum(sizes, out=out[1:])
    return out


def polygon_blobs(
    o: Outline, gt: tuple[float, ...], srs_id: int
) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """``(data, start, size, envelope)``: region i's blob is ``data[start[i] :
    start[i] + size[i]]``; ``envelope`` n x 4 (min x, max x, min y, max y)."""
    n_reg = o.labels.size
    sizes = o.ring_sizes.astype(np.int64)  # vertices per ring
    ring_region = np.repeat(np.arange(n_reg), np.diff(o.region_start))
    ring_cum = _starts(4 + 16 * (sizes + 1))  # a ring: its point count, its points closed
    first_ring = o.region_start[:-1]
    reg_bytes = _HEAD + ring_cum[o.region_start[1:]] - ring_cum[first_ring]
    reg_at = _starts(reg_bytes)
    ring_at = reg_at[ring_region] + _HEAD + ring_cum[:-1] - ring_cum[first_ring][ring_region]
    # map coordinates of the pixel corners
    x, y = o.x.astype(np.float64), o.y.astype(np.float64)
    mx = gt[0] + x * gt[1] + y * gt[2]
    my = gt[3] + x * gt[4] + y * gt[5]
    buf = np.zeros(int(reg_at[-1]), np.uint8)
    # the points, each ring closed by its first vertex
    pt_start = _starts(sizes + 1)
    pt_ring = np.repeat(np.arange(sizes.size), sizes + 1)
    k = np.arange(pt_start[-1]) - pt_start[:-1][pt_ring]
    src = o.ring_start[:-1][pt_ring] + k % sizes[pt_ring]
    pts = np.empty((src.size, 2), "<f8")
    pts[:, 0], pts[:, 1] = mx[src], my[src]
    _put(buf, ring_at[pt_ring] + 4 + 16 * k, pts.view(np.uint8).reshape(-1, 16))
    _put(buf, ring_at, (sizes + 1).astype("<u4").view(np.uint8).reshape(-1, 4))
    # each region's envelope: its outer ring's
    env = np.empty((n_reg, 4))
    if n_reg:
        at = o.ring_start[:-1]
        env[:, 0] = np.minimum.reduceat(mx, at)[first_ring]
        env[:, 1] = np.maximum.reduceat(mx, at)[first_ring]
        env[:, 2] = np.minimum.reduceat(my, at)[first_ring]
        env[:, 3] = np.maximum.reduceat(my, at)[first_ring]
    head = np.empty((n_reg, _HEAD), np.uint8)
    head[:, :8] = np.frombuffer(
        b"GP\x00\x03" + int(srs_id).to_bytes(4, "little", signed=True), np.uint8
    )
    head[:, 8:40] = env.astype("<f8").view(np.uint8).reshape(-1, 32)
    # MultiPolygon (6) of 1 Polygon (3), little-endian; then the Polygon's ring count
    head[:, 40:54] = np.frombuffer(bytes.fromhex("0106000000010000000103000000"), np.uint8)
    head[:, 54:58] = np.diff(o.region_start).astype("<u4").view(np.uint8).reshape(-1, 4)
    _put(buf, reg_at[:-1], head)
    return buf.tobytes(), reg_at[:-1], reg_bytes, env


def polygon_wkbs(o: Outline, gt: tuple[float, ...]) -> list[bytes]:
    """Each region's Polygon as little-endian WKB (:func:`polygon_blobs` without the
    GeoPackage header and the MultiPolygon around it)."""
    data, start, size, _ = polygon_blobs(o, gt, 0)
    return [data[a + _POLYGON_AT : a + n] for a, n in zip(start.tolist(), size.tolist())]


def reshaped(
    data: bytes,
    start: np.ndarray,
    size: np.ndarray,
    srs_id: int,
    simplify: float = 0.0,
    transform: Any = None,
) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The blobs of :func:`polygon_blobs` simplified (``SimplifyPreserveTopology``,
    tolerance in their units; as ``ogr2ogr -simplify``), then transformed (an OGR
    coordinate transformation, the target's ``srs_id``): ``(data, size, envelope)``.
    One OGR geometry per blob (GEOS does the simplification)."""
    from osgeo import ogr

    head = b"GP\x00\x03" + int(srs_id).to_bytes(4, "little", signed=True)
    env = np.empty((start.size, 4))
    parts = []
    for i, (a, n) in enumerate(zip(start.tolist(), size.tolist())):
        geom = ogr.CreateGeometryFromWkb(data[a + 40 : a + n])
        if simplify > 0:
            simple = geom.SimplifyPreserveTopology(simplify)
            if simple is not None and not simple.IsEmpty():
                geom = simple
        if transform is not None:
            geom.Transform(transform)
        env[i] = e = geom.GetEnvelope()
        parts.append(head + struct.pack("<4d", *e) + geom.ExportToWkb(ogr.wkbNDR))
    return b"".join(parts), np.array([len(p) for p in parts], np.int64), env
