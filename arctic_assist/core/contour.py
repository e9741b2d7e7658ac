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


# ----------------------------------------------------------------------------- the tile


def bilinear(
    img: np.ndarray, xs: np.ndarray, ys: np.ndarray, fill: float | np.ndarray = 0.0
) -> np.ndarray:
    """Sample ``img`` (C, H, W) at float pixel coordinates ``xs``, ``ys`` (same shape)
    -> (C, ...) float32; outside the image the samples blend into ``fill`` (a scalar or
    one value per channel)."""
    c, h, w = img.shape
    x0 = np.floor(xs).astype(np.int64)
    y0 = np.floor(ys).astype(np.int64)
    fx = (xs - x0).astype(np.float32)
    fy = (ys - y0).astype(np.float32)
    out = np.zeros((c,) + xs.shape, dtype=np.float32)
    wsum = np.zeros(xs.shape, dtype=np.float32)
    for dy, dx, wgt in (
        (0, 0, (1 - fx) * (1 - fy)),
        (0, 1, fx * (1 - fy)),
        (1, 0, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        xx, yy = x0 + dx, y0 + dy
        ok = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
        v = img[:, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]
        out += np.where(ok, wgt, 0.0) * v
        wsum += np.where(ok, wgt, 0.0)
    fill = np.asarray(fill, dtype=np.float32).reshape((-1,) + (1,) * xs.ndim)
    return (out + (1.0 - wsum) * fill).astype(np.float32)


@dataclass(frozen=True)
class TileFit:
    """A ``height x width`` window fitted into the model's square ``tile``: one isotropic
    scale, centred, the rest of the tile filled with the window's mean (letterbox).

    This is THE geometry of a COBRA model: training views, held-out evaluation and the
    plugin all run the model on a ``tile x tile`` input made by :meth:`image`, and map its
    vertices back with :meth:`to_window`. ``tile px = scale * window px + offset``.
    """

    tile: int
    height: int
    width: int
    scale: float
    offset: tuple[float, float]

    def matrix(self) -> np.ndarray:
        """2 x 3 affine, window px -> tile px."""
        return np.array([[self.scale, 0.0, self.offset[0]], [0.0, self.scale, self.offset[1]]])

    def to_tile(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        return p * self.scale + np.asarray(self.offset)

    def to_window(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        return (p - np.asarray(self.offset)) / self.scale

    def model_to_window(self, v: np.ndarray) -> np.ndarray:
        """Model vertices (``[-1, 1]`` xy of the tile) -> window pixel ``(x, y)``."""
        return self.to_window(normalized_to_pixel(v, self.tile, self.tile))

    def window_to_model(self, p: np.ndarray) -> np.ndarray:
        return pixel_to_normalized(self.to_tile(p), self.tile, self.tile)

    def image(self, img: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """The ``(C, tile, tile)`` float32 model input of the window ``img`` (C, H, W):
        bilinear samples, the letterbox (and ``valid == False`` pixels) at the mean of the
        window's (valid) pixels, per channel."""
        img = np.asarray(img, dtype=np.float32)
        if img.shape[-2:] != (self.height, self.width):
            raise ValueError(
                f"window is {img.shape[-2:]}, the fit was made for {(self.height, self.width)}"
            )
        vals = img[:, valid] if valid is not None and valid.any() else img.reshape(img.shape[0], -1)
        mean = vals.mean(axis=1).astype(np.float32)
        if valid is not None and not valid.all():
            img = np.where(valid[None], img, mean[:, None, None]).astype(np.float32)
        t = np.arange(self.tile, dtype=np.float64)
        yy, xx = np.meshgrid(t, t, indexing="ij")
        src = self.to_window(np.stack([xx, yy], axis=-1))
        return bilinear(img, src[..., 0], src[..., 1], mean)


def fit_window(height: int, width: int, tile: int) -> TileFit:
    """Fit a ``height x width`` px window into a ``tile`` px square (see :class:`TileFit`):
    pixel-centre grids, the window's longer side spans the tile exactly."""
    if tile < 2 or height < 1 or width < 1:
        raise ValueError(f"cannot fit a {height} x {width} window into a {tile} px tile")
    s = (tile - 1) / max(height - 1, width - 1, 1)
    c = (tile - 1) / 2.0
    off = (c - s * (width - 1) / 2.0, c - s * (height - 1) / 2.0)
    return TileFit(
        tile=int(tile),
        height=int(height),
        width=int(width),
        scale=float(s),
        offset=(float(off[0]), float(off[1])),
    )


# ----------------------------------------------------------------------------- boxes


#: tracing: after the first run on the whole window, the window is cropped around the
#: predicted front so that the front spans REFINE_FILL of the crop - the scale of the
#: training views (fronts.py: the front at 0.85 x 0.7-1.4 of the tile) - and traced again,
#: REFINE_PASSES times. Chosen on training images (README, issue 13): the window as drawn
#: shows a front at a fifth of the tile, a scale the model rarely saw.
REFINE_PASSES = 2
REFINE_FILL = 1.0
#: tracing: the window is traced as given and mirrored, the line on the stronger image
#: edge kept (:func:`trace_window`); it helped on the training glaciers and on the held-out
#: one alike for every model that traces mirrored images well (README, issue 13)
MIRROR = True
#: tracing: the final line's vertices move along their normals onto the strongest image
#: edge at most this many window pixels (the model's pixel size) away
#: (:func:`snap_to_edge`, the image term of a classic active contour after the deep one).
#: Chosen on 40 training images (README, issue 13): 0 / 1 / 2 / 3 / 4 / 5 px gave 13.03 /
#: 12.85 / 12.68 / 12.57 / 12.53 / 12.31 px while the line grew longer (length over the
#: reference's 1.47 -> 1.72); 3 px is where the gain flattens
SNAP_RADIUS = 3.0
SNAP_MAX = 20.0
#: a crop is never smaller than the model's tile: window pixels are at the model's pixel
#: size, so refinement may undo the downsampling of a large window but never upsamples
#: beyond the resolution the model was trained at (a box drawn at about the tile's size,
#: e.g. Harald Moltke Brae's 128 x 112 px, is traced as drawn)


def run_fitted(run, image: np.ndarray, tile: int) -> list[np.ndarray]:
    """Every iteration's polyline in ``image``'s pixels: ``image`` (C, H, W) fitted into
    the model's ``tile`` (:func:`fit_window`), ``run`` (batch (1, C, tile, tile) -> list
    of (V, 2) contours in [-1, 1] tile units) applied, the result mapped back."""
    fit = fit_window(image.shape[-2], image.shape[-1], tile)
    x = fit.image(image)[None].astype(np.float32)
    return [fit.model_to_window(np.asarray(s, dtype=np.float64)) for s in run(x)]


def refine_box(
    line: np.ndarray, height: int, width: int, fill: float = REFINE_FILL, min_side: int = 16
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the square crop, centred on ``line``'s bounding box, in which the
    line's longer extent is ``fill`` of the side, at least ``min_side`` px; shifted to lie
    inside the window where it can and clipped to it."""
    lo, hi = line.min(axis=0), line.max(axis=0)
    centre = (lo + hi) / 2.0
    side = max(float(np.max(hi - lo)) / fill, float(min_side))

    def span(c: float, size: int) -> tuple[int, int]:
        if side >= size:
            return 0, size
        a = int(np.floor(min(max(c - side / 2, 0.0), size - side)))
        return a, int(min(size, np.ceil(a + side)))

    x0, x1 = span(centre[0], width)
    y0, y1 = span(centre[1], height)
    return x0, y0, x1, y1


def mirrored(run):
    """``run`` applied to the left-right mirror of its input, its contours mapped back:
    x negated and the vertex order reversed, so that the glacier stays on the same side of
    the line (the training labels' convention, mirrored views included)."""

    def run_mirror(x: np.ndarray) -> list[np.ndarray]:
        out = run(np.ascontiguousarray(x[..., ::-1]))
        return [np.stack([-np.asarray(o)[:, 0], np.asarray(o)[:, 1]], axis=1)[::-1] for o in out]

    return run_mirror


def _smooth(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D array (edges replicated)."""
    r = max(1, int(round(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(img, r, mode="edge")
    rows = sum(k[i] * pad[i : i + img.shape[0], :] for i in range(2 * r + 1))
    return sum(k[i] * rows[:, i : i + img.shape[1]] for i in range(2 * r + 1))


def edge_magnitude(image: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """The (H, W) gradient magnitude of the smoothed (C, H, W) ``image`` (channels
    averaged) over its mean (unitless; 1 is an average place): the image term of a
    classic active contour, computed once per window for :func:`edge_strength`."""
    img = np.asarray(image, dtype=np.float64)
    g = _smooth(img.reshape(-1, *img.shape[-2:]).mean(axis=0), sigma)
    gy, gx = np.gradient(g)
    mag = np.hypot(gx, gy)
    return (mag / (float(mag.mean()) + 1e-12)).astype(np.float32)


def edge_strength(magnitude: np.ndarray, line: np.ndarray) -> float:
    """How strong an image edge ``line`` lies on: :func:`edge_magnitude` sampled every
    half pixel along the line, averaged. Used to choose between candidate lines: a calving
    front is the sharpest long edge of its box (ice against water)."""
    pts = densify(np.asarray(line, dtype=np.float64), 0.5)
    return float(np.mean(bilinear(magnitude[None], pts[:, 0], pts[:, 1], 0.0)[0]))


def snap_to_edge(
    magnitude: np.ndarray, line: np.ndarray, radius: float, smooth: int = 5
) -> np.ndarray:
    """``line`` with each vertex moved along its normal, by at most ``radius`` px, onto the
    strongest nearby edge of ``magnitude`` (:func:`edge_magnitude`); the moves are
    median-filtered along the line (``smooth`` vertices) so that one vertex never jumps
    to another edge alone."""
    line = np.asarray(line, dtype=np.float64)
    if radius <= 0 or len(line) < 3:
        return line
    t = np.gradient(line, axis=0)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)
    n = np.stack([-t[:, 1], t[:, 0]], axis=1)
    d = np.arange(-radius, radius + 1e-9, 0.5)
    pts = line[:, None, :] + d[None, :, None] * n[:, None, :]
    h, w = magnitude.shape
    pts[..., 0] = np.clip(pts[..., 0], 0, w - 1)
    pts[..., 1] = np.clip(pts[..., 1], 0, h - 1)
    vals = bilinear(magnitude[None], pts[..., 0].ravel(), pts[..., 1].ravel(), 0.0)[0]
    # the strongest edge; among equals (a flat neighbourhood) the nearest: no move
    score = vals.reshape(len(line), len(d)) - 1e-6 * np.abs(d)[None]
    best = d[np.argmax(score, axis=1)]
    k = max(1, int(smooth)) // 2
    if k:
        padded = np.pad(best, k, mode="edge")
        best = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1), axis=1)
    out = line + best[:, None] * n
    out[:, 0] = np.clip(out[:, 0], 0, w - 1)
    out[:, 1] = np.clip(out[:, 1], 0, h - 1)
    return out


def _refined(run, image: np.ndarray, tile: int, passes: int, fill: float, steps: list):
    h, w = image.shape[-2:]
    for _ in range(max(0, int(passes))):
        x0, y0, x1, y1 = refine_box(steps[-1], h, w, fill, min_side=tile)
        if (x0, y0, x1, y1) == (0, 0, w, h):
            break  # the window itself: nothing to refine
        offset = np.array([x0, y0], dtype=np.float64)
        steps = [s + offset for s in run_fitted(run, image[:, y0:y1, x0:x1], tile)]
    return steps


def trace_window(
    run,
    image: np.ndarray,
    tile: int,
    passes: int = REFINE_PASSES,
    fill: float = REFINE_FILL,
    simple: bool = True,
    first: list[np.ndarray] | None = None,
    mirror: bool = MIRROR,
    snap: float = SNAP_RADIUS,
) -> list[np.ndarray]:
    """A calving front in a (C, H, W) window: every iteration's polyline of the last
    pass, in window pixels; the one procedure of the plugin (:mod:`arctic_assist.io.trace`)
    and of the held-out evaluation (``training/cobra.py``).

    The first pass sees the whole window; each of ``passes`` more sees the crop of
    :func:`refine_box` around the previous line, never smaller than the tile (no
    upsampling beyond the model's pixel size). ``mirror``: the same is done on the
    window's left-right mirror (:func:`mirrored`) and the line on the stronger image edge
    (:func:`edge_strength`) is kept. ``snap``: the final line's vertices then move along
    their normals, at most this many window pixels, onto the strongest nearby image edge
    (:func:`snap_to_edge`; 0: off). ``simple``: the final line's vertices are re-ordered
    so that it does not cross itself (:func:`untangle`). ``first``: the first pass's
    result (:func:`run_fitted` on the whole window) when already computed.
    """
    steps = list(first) if first is not None else run_fitted(run, image, tile)
    steps = _refined(run, image, tile, passes, fill, steps)
    mag = None
    if mirror:
        other = mirrored(run)
        alt = _refined(other, image, tile, passes, fill, run_fitted(other, image, tile))
        mag = edge_magnitude(image)
        if edge_strength(mag, alt[-1]) > edge_strength(mag, steps[-1]):
            steps = alt
    if snap > 0:
        mag = edge_magnitude(image) if mag is None else mag
        steps[-1] = snap_to_edge(mag, steps[-1], snap)
    if simple:
        steps[-1] = untangle(steps[-1])
    return steps


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
    return BoxFrame(
        center=(float(center[0]), float(center[1])), angle=float(a), width=float(w), height=float(h)
    )


def window_geotransform(
    box: BoxFrame, pixel_size: float, multiple_of: int = 1, min_size: int = 1
) -> tuple[tuple[float, ...], int, int]:
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
    gt = (
        float(origin[0]),
        float(pixel_size * ex[0]),
        float(-pixel_size * ny[0]),
        float(origin[1]),
        float(pixel_size * ex[1]),
        float(-pixel_size * ny[1]),
    )
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
    a = line[:-1][None]  # (1, S, 2)
    ab = (line[1:] - line[:-1])[None]
    ap = p[:, None, :] - a  # (N, S, 2)
    denom = (ab**2).sum(-1)
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
    return float(
        0.5 * (point_to_polyline_distance(pa, b).mean() + point_to_polyline_distance(pb, a).mean())
    )


def mean_vertex_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance between corresponding vertices (same count, same orientation)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"vertex counts differ: {a.shape} vs {b.shape}")
    return float(np.linalg.norm(a - b, axis=-1).mean())


def self_intersections(line: np.ndarray) -> int:
    """Number of pairs of non-adjacent segments of ``line`` that cross (proper crossings
    and touching; 0 for a simple polyline)."""
    p = np.asarray(line, dtype=np.float64)
    if len(p) < 4:
        return 0
    a, b = p[:-1], p[1:]  # segments (S, 2)

    def orient(o, q, r):  # sign of (q - o) x (r - o), pairwise
        return np.sign(
            (q[..., 0] - o[..., 0]) * (r[..., 1] - o[..., 1])
            - (q[..., 1] - o[..., 1]) * (r[..., 0] - o[..., 0])
        )

    A, B = a[:, None], b[:, None]
    P, Q = a[None], b[None]
    d1, d2 = orient(A, B, P), orient(A, B, Q)
    d3, d4 = orient(P, Q, A), orient(P, Q, B)
    cross = (d1 * d2 <= 0) & (d3 * d4 <= 0)
    # collinear pairs only count when their extents overlap
    coll = (d1 == 0) & (d2 == 0)
    if coll.any():
        lo = np.minimum(A, B)
        hi = np.maximum(A, B)
        lo2 = np.minimum(P, Q)
        hi2 = np.maximum(P, Q)
        overlap = np.all((lo <= hi2) & (lo2 <= hi), axis=-1)
        cross &= ~coll | overlap
    i, j = np.triu_indices(len(a), k=2)  # non-adjacent pairs
    return int(cross[i, j].sum())


def _crossing_pairs(p: np.ndarray) -> np.ndarray:
    """(i, j) of non-adjacent segments i, j (i < j) of polyline ``p`` that cross properly."""
    a, b = p[:-1], p[1:]

    def orient(o, q, r):
        return (q[..., 0] - o[..., 0]) * (r[..., 1] - o[..., 1]) - (q[..., 1] - o[..., 1]) * (
            r[..., 0] - o[..., 0]
        )

    A, B, P, Q = a[:, None], b[:, None], a[None], b[None]
    cross = (orient(A, B, P) * orient(A, B, Q) < 0) & (orient(P, Q, A) * orient(P, Q, B) < 0)
    i, j = np.triu_indices(len(a), k=2)
    keep = cross[i, j]
    return np.stack([i[keep], j[keep]], axis=1)


def untangle(line: np.ndarray, max_moves: int | None = None) -> np.ndarray:
    """The same vertices in an order whose polyline does not cross itself (2-opt).

    Each proper crossing of segments (i, i+1) and (j, j+1) is removed by reversing the
    vertices i+1..j, which replaces the two crossing segments by two that do not cross;
    every such move makes the polyline strictly shorter, so it ends. The end points and
    every vertex stay where they are (nothing is moved, only re-ordered): a calving front
    is a simple curve from one fjord wall to the other, and a model whose vertices hedge
    across it (issue 13) gives the same points in a walkable order. ``max_moves`` bounds
    the work (default 4 x the vertex count squared).
    """
    p = np.array(line, dtype=np.float64, copy=True)
    if len(p) < 4:
        return p
    budget = max_moves if max_moves is not None else 4 * len(p) ** 2
    for _ in range(budget):
        pairs = _crossing_pairs(p)
        if not len(pairs):
            break
        i, j = pairs[0]
        p[i + 1 : j + 1] = p[i + 1 : j + 1][::-1].copy()
    return p


def path_length_ratio(pred: np.ndarray, ref: np.ndarray) -> float:
    """Length of ``pred`` over the length of ``ref`` (1 for a line as long as the front;
    a zig-zag is much longer)."""
    return polyline_length(pred) / max(polyline_length(ref), 1e-12)


def convergence(iterations: list[np.ndarray]) -> float:
    """Mean vertex displacement of the last iteration (same units as the vertices)."""
    if len(iterations) < 2:
        return float("nan")
    return mean_vertex_distance(iterations[-1], iterations[-2])


def percentile_stretch(
    x: np.ndarray, low: float = 2.0, high: float = 98.0, valid: np.ndarray | None = None
) -> np.ndarray:
    """Per-window robust stretch to [0, 1] (proposed normalisation type
    ``percentile_stretch``; not used by the bundled model, which standardises the
    window inside its ONNX graph)."""
    x = np.asarray(x, dtype=np.float32)
    vals = x[valid] if valid is not None else x
    lo, hi = np.percentile(vals, [low, high]) if vals.size else (0.0, 1.0)
    return np.clip((x - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0).astype(np.float32)
