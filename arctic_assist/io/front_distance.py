"""Front distance (GDAL/OGR, no QGIS): the mean symmetric point-to-polyline distance in
metres between two line layers in any CRSs (``arctic_assist:front_distance``, the COBRA
benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from osgeo import ogr, osr

from ..core import contour as C
from ..core.errors import InputError
from .raster import _gdal, lonlat_of, metric_srs_for, srs_traditional, transform_points
from .vector import open_layer


@dataclass
class FrontDistance:
    """Mean symmetric distances in metres: ``per_feature`` rows for each line of A (matched
    to the closest line of B) and ``mean_m`` over them."""

    per_feature: list[dict[str, Any]]
    mean_m: float
    crs: str


def _read_lines(
    path: str, layer: str | None, what: str
) -> tuple[list[tuple[Any, list[np.ndarray]]], osr.SpatialReference]:
    ds, lyr = open_layer(path, layer, what)
    srs = lyr.GetSpatialRef()
    if srs is None:
        raise InputError(f"{what} {path} has no CRS")
    srs = srs_traditional(srs)
    out = []
    for feat in lyr:
        g = feat.GetGeometryRef()
        if g is None or g.IsEmpty():
            continue
        t = ogr.GT_Flatten(g.GetGeometryType())
        parts = (
            [g]
            if t == ogr.wkbLineString
            else (
                [g.GetGeometryRef(i) for i in range(g.GetGeometryCount())]
                if t == ogr.wkbMultiLineString
                else None
            )
        )
        if parts is None:
            raise InputError(f"{what} {path}: feature {feat.GetFID()} is not a line")
        lines = [
            np.array([p.GetPoint_2D(i) for i in range(p.GetPointCount())])
            for p in parts
            if p.GetPointCount() >= 2
        ]
        if lines:
            out.append((feat.GetFID(), lines))
    ds = None  # noqa: F841
    if not out:
        raise InputError(f"{what} {path} has no line features")
    return out, srs


def _sym_dist(
    a_parts: list[np.ndarray], b_parts: list[np.ndarray], step: float
) -> tuple[float, float, float]:
    pa = np.concatenate([C.densify(p, step) for p in a_parts])
    pb = np.concatenate([C.densify(p, step) for p in b_parts])
    da = np.min([C.point_to_polyline_distance(pa, p) for p in b_parts], axis=0).mean()
    db = np.min([C.point_to_polyline_distance(pb, p) for p in a_parts], axis=0).mean()
    return 0.5 * (da + db), float(da), float(db)


#: point-to-segment pairs one distance computation may hold in memory (N x S x 2 doubles)
MAX_DISTANCE_PAIRS = 5_000_000


def _check_distance_size(a, b, step_m: float, unit: float) -> None:
    """Bound the densified points x segments before any allocation (STEP is a parameter)."""
    step = step_m / unit

    def points(parts) -> float:
        return sum(
            float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) / step + len(p) for p in parts
        )

    def segments(parts) -> int:
        return max((len(p) - 1 for p in parts), default=0)

    na = max(points(p) for _, p in a)
    nb = max(points(p) for _, p in b)
    sa = max(segments(p) for _, p in a)
    sb = max(segments(p) for _, p in b)
    worst = max(na * sb, nb * sa)
    if worst > MAX_DISTANCE_PAIRS:
        raise InputError(
            f"STEP: {step_m:g} m is too fine for these lines ({worst:,.0f} point-segment pairs;"
            f" the limit is {MAX_DISTANCE_PAIRS:,}); use a STEP of at least "
            f"{step_m * worst / MAX_DISTANCE_PAIRS:.3g} m, or simplify the lines"
        )


def front_distance(
    lines_a: str,
    lines_b: str,
    *,
    layer_a: str | None = None,
    layer_b: str | None = None,
    step_m: float = 10.0,
) -> FrontDistance:
    """Mean symmetric point-to-polyline distance (m) between two line layers (any CRSs).

    Both are transformed to a metric CRS (A's CRS when projected, else the UTM zone of A),
    densified every ``step_m`` metres, and each feature of A is matched with the feature
    of B closest to it. Per feature: ``distance_m`` (symmetric mean), ``a_to_b_m``,
    ``b_to_a_m`` and the matched ``fid_b``.
    """
    _gdal()
    a, sa = _read_lines(lines_a, layer_a, "line layer A")
    b, sb = _read_lines(lines_b, layer_b, "line layer B")
    first = a[0][1][0][0]
    work = metric_srs_for(sa, lonlat_of(first, sa))
    unit = work.GetLinearUnits() or 1.0
    a = [(fid, [transform_points(p, sa, work) for p in parts]) for fid, parts in a]
    b = [(fid, [transform_points(p, sb, work) for p in parts]) for fid, parts in b]
    _check_distance_size(a, b, step_m, unit)
    rows = []
    for fid_a, pa in a:
        best = None
        for fid_b, pb in b:
            d, dab, dba = _sym_dist(pa, pb, step_m / unit)
            if best is None or d < best[0]:
                best = (d, dab, dba, fid_b)
        rows.append(
            {
                "fid_a": fid_a,
                "fid_b": best[3],
                "distance_m": best[0] * unit,
                "a_to_b_m": best[1] * unit,
                "b_to_a_m": best[2] * unit,
            }
        )
    return FrontDistance(
        per_feature=rows,
        mean_m=float(np.mean([r["distance_m"] for r in rows])),
        crs=work.GetAuthorityCode(None) or work.GetName(),
    )
