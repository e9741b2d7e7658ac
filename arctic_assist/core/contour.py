"""Contour maths for calving fronts (numpy only, no QGIS, no GDAL).

Coordinate frames used by COBRA models and the tracing pipeline:

- **model coordinates**: ``(x, y)`` in ``[-1, 1]``, ``grid_sample(align_corners=True)``:
  ``-1`` is the centre of the first pixel, ``+1`` the centre of the last
  (``ContourSpec.coordinates == 'xy_normalized_align_corners'``).
- **window pixel coordinates**: ``(x, y)`` = (column, row) of the model's input window,
  pixel centres at integers.
- **map coordinates**: through a GDAL geotransform ``gt`` (which may be rotated): the centre
  of pixel ``(x, y)`` is ``gt[0] + (x + .5) gt[1] + (y + .5) gt[2]``,
  ``gt[3] + (x + .5) gt[4] + (y + .5) gt[5]``.

An AOI box (any polygon) defines its own oriented frame, :class:`BoxFrame`: the
minimum-area rectangle around it, turned so that its x axis is the one nearest to the map's
east (so an axis-aligned box gives a north-up window). :func:`window_geotransform` lays a
pixel grid of a given pixel size over that frame, and :func:`model_to_map` maps model
vertices back to map coordinates exactly (an affine map, no resampling involved).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------- frames


def normalized_to_pixel(v: np.ndarray, width: int, height: int) -> np.ndarray:
    """Model ``(x, y)`` in [-1, 1] (align_corners=True) -> window pixel ``(x, y)``."""
    v = np.asarray(v, dtype=np.float64)
    out = np.empty_like(v)
    out[..., 0] = (v[..., 0] + 1.0) * 0.5 * (width - 1)
    out[..., 1] = (v[..., 1] + 1.0) * 0.5 * (height - 1)
    return out


def pixel_to_normalized(p: np.ndarray, width: int, height: int) -> np.ndarray:
    """Window pixel ``(x, y)`` -> model ``(x, y)`` in [-1, 1] (align_corners=True)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.empty_like(p)
    out[..., 0] = 2.0 * p[..., 0] / max(width - 1, 1) - 1.0
    out[..., 1] = 2.0 * p[..., 1] / max(height - 1, 1) - 1.0
    return out


def pixel_to_map(p: np.ndarray, gt: tuple[float, ...]) -> np.ndarray:
    """Pixel-centre ``(x, y)`` -> map ``(X, Y)`` through a (possibly rotated) geotransform."""
    p = np.asarray(p, dtype=np.float64)
    x = p[..., 0] + 0.5
    y = p[..., 1] + 0.5
    return np.stack([gt[0] + x * gt[1] + y * gt[2], gt[3] + x * gt[4] + y * gt[5]], axis=-1)


def map_to_pixel(m: np.ndarray, gt: tuple[float, ...]) -> np.ndarray:
    """Inverse of :func:`pixel_to_map`."""
    m = np.asarray(m, dtype=np.float64)
    det = gt[1] * gt[5] - gt[2] * gt[4]
    if det == 0:
        raise ValueError("degenerate geotransform")
    dx = m[..., 0] - gt[0]
    dy = m[..., 1] - gt[3]
    x = (gt[5] * dx - gt[2] * dy) / det
    y = (-gt[4] * dx + gt[1] * dy) / det
    return np.stack([x - 0.5, y - 0.5], axis=-1)


def model_to_map(v: np.ndarray, width: int, height: int, gt: tuple[float, ...]) -> np.ndarray:
    """Model vertices (``[-1, 1]`` xy) of a ``width x height`` window -> map coordinates."""
    return pixel_to_map(normalized_to_pixel(v, width, height), gt)


def map_to_model(m: np.ndarray, width: int, height: int, gt: tuple[float, ...]) -> np.ndarray:
    return pixel_to_normalized(map_to_pixel(m, gt), width, height)


# ----------------------------------------------------------------------------- boxes


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull (Andrew's monotone chain) of ``(N, 2)`` points."""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(pts) <= 2:
        return pts
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[np.ndarray] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[np.ndarray] = []
    for p in pts[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


@dataclass(frozen=True)
class BoxFrame:
    """An oriented rectangle: ``center``, rotation ``angle`` (radians, x axis from map
    east, counter-clockwise, in (-pi/4, pi/4]), full ``width`` along the x axis and
    ``height`` along the y axis (map units)."""

    center: tuple[float, float]
    angle: float
    width: float
    height: float

    @property
    def ex(self) -> np.ndarray:
        return np.array([math.cos(self.angle), math.sin(self.angle)])

    @property
    def ny(self) -> np.ndarray:  # the box's "north" (up) axis
        return np.array([-math.sin(self.angle), math.cos(self.angle)])

    def corners(self) -> np.ndarray:
        c = np.asarray(self.center)
        hx = 0.5 * self.width * self.ex
        hy = 0.5 * self.height * self.ny
        return np.array([c - hx + hy, c + hx + hy, c + hx - hy, c - hx - hy])


def oriented_box(points: np.ndarray) -> BoxFrame:
    """Minimum-area rectangle around ``points`` (map coordinates), nearest to north-up."""
    hull = convex_hull(points)
    if len(hull) < 3:
        raise ValueError("the AOI polygon has no area")
    best = None
    n = len(hull)
    for i in range(n):
        d = hull[(i + 1) % n] - hull[i]
        if not np.any(d):
            continue
        a = math.atan2(d[1], d[0])
        ca, sa = math.cos(a), math.sin(a)
        u = hull @ np.array([ca, sa])
        v = hull @ np.array([-sa, ca])
        area = np.ptp(u) * np.ptp(v)
        if best is None or area < best[0] - 1e-9 * max(area, 1.0):
            best = (area, a, u.min(), u.max(), v.min(), v.max())
    _, a, u0, u1, v0, v1 = best
    w, h = u1 - u0, v1 - v0
    cu, cv = 0.5 * (u0 + u1), 0.5 * (v0 + v1)
    ca, sa = math.cos(a), math.sin(a)
    center = (cu * ca - cv * sa, cu * sa + cv * ca)
    # turn by multiples of 90 degrees into (-45, 45]
    while a <= -math.pi / 4:
        a += math.pi / 2
        w, h = h, w
    while a > math.pi / 4:
        a -= math.pi / 2
        w, h = h, w
    if abs(a) < 1e-12:
        a = 0.0
    return BoxFrame(center=(float(center[0]), float(center[1])), angle=float(a),
                    width=float(w), height=float(h))


def window_geotransform(box: BoxFrame, pixel_size: float, multiple_of: int = 1,
                        min_size: int = 1) -> tuple[tuple[float, ...], int, int]:
    """A pixel grid of ``pixel_size`` over ``box``'s own frame, centred on it.

    The size is the box size in pixels rounded up to a multiple of ``multiple_of`` (the
    extra context is shared evenly on both sides). Returns ``(geotransform, width,
    height)``; the geotransform is rotated unless the box is axis-aligned.
    """
    if pixel_size <= 0:
        raise ValueError("pixel size must be positive")
    m = max(int(multiple_of), 1)

    def size(extent: float) -> int:
        n = max(int(math.ceil(extent / pixel_size - 1e-6)), min_size, 1)
        return int(math.ceil(n / m) * m)

    width, height = size(box.width), size(box.height)
    ex, ny = box.ex, box.ny
    c = np.asarray(box.center)
    origin = c - 0.5 * width * pixel_size * ex + 0.5 * height * pixel_size * ny
    gt = (float(origin[0]), float(pixel_size * ex[0]), float(-pixel_size * ny[0]),
          float(origin[1]), float(pixel_size * ex[1]), float(-pixel_size * ny[1]))
    return gt, width, height


# ----------------------------------------------------------------------------- metrics


def polyline_length(pts: np.ndarray) -> float:
    pts = np.asarray(pts, dtype=np.float64)
    if len(pts) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())


def point_to_polyline_distance(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Euclidean distance of every point ``(N, 2)`` to the polyline ``(M, 2)`` -> ``(N,)``."""
    p = np.asarray(points, dtype=np.float64)
    line = np.asarray(line, dtype=np.float64)
    if len(line) == 1:
        return np.linalg.norm(p - line[0], axis=1)
    a = line[:-1][None]                      # (1, S, 2)
    ab = (line[1:] - line[:-1])[None]
    ap = p[:, None, :] - a                   # (N, S, 2)
    denom = (ab ** 2).sum(-1)
    t = np.where(denom > 0, (ap * ab).sum(-1) / np.where(denom > 0, denom, 1.0), 0.0)
    t = np.clip(t, 0.0, 1.0)
    closest = a + t[..., None] * ab
    return np.linalg.norm(p[:, None, :] - closest, axis=-1).min(axis=1)


def densify(line: np.ndarray, step: float) -> np.ndarray:
    """Points along ``line`` no farther apart than ``step`` (vertices kept)."""
    line = np.asarray(line, dtype=np.float64)
    if len(line) < 2 or step <= 0:
        return line
    out = [line[:1]]
    for a, b in zip(line[:-1], line[1:]):
        k = max(int(math.ceil(np.linalg.norm(b - a) / step)), 1)
        t = np.linspace(0, 1, k + 1)[1:, None]
        out.append(a + t * (b - a))
    return np.concatenate(out)


def mean_symmetric_distance(a: np.ndarray, b: np.ndarray, step: float | None = None) -> float:
    """Mean symmetric point-to-polyline distance between two polylines.

    ``0.5 * (mean_{p in A} d(p, B) + mean_{q in B} d(q, A))`` with the points of each line
    taken at its vertices, or every ``step`` along it when ``step`` is given (use a step
    for lines with unevenly spaced vertices).
    """
    pa = densify(a, step) if step else np.asarray(a, dtype=np.float64)
    pb = densify(b, step) if step else np.asarray(b, dtype=np.float64)
    return float(0.5 * (point_to_polyline_distance(pa, b).mean()
                        + point_to_polyline_distance(pb, a).mean()))


def mean_vertex_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance between corresponding vertices (same count, same orientation)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"vertex counts differ: {a.shape} vs {b.shape}")
    return float(np.linalg.norm(a - b, axis=-1).mean())


def convergence(iterations: list[np.ndarray]) -> float:
    """Mean vertex displacement of the last iteration (same units as the vertices)."""
    if len(iterations) < 2:
        return float("nan")
    return mean_vertex_distance(iterations[-1], iterations[-2])


def percentile_stretch(x: np.ndarray, low: float = 2.0, high: float = 98.0,
                       valid: np.ndarray | None = None) -> np.ndarray:
    """Per-window robust stretch to [0, 1] (proposed normalisation type
    ``percentile_stretch``; not used by the bundled model, which standardises the
    window inside its ONNX graph)."""
    x = np.asarray(x, dtype=np.float32)
    vals = x[valid] if valid is not None else x
    lo, hi = np.percentile(vals, [low, high]) if vals.size else (0.0, 1.0)
    return np.clip((x - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0).astype(np.float32)
