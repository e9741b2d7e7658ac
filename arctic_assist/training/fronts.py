"""Calving-front data for COBRA: polylines, FrontLearning reader, synthetic fronts, augmentation.

Conventions (shared with :mod:`arctic_assist.core.contour`):

- A front is an ``(N, 2)`` float array of **(x, y) pixel coordinates**, pixel centres at
  integer positions (x = column, y = row, y pointing down).
- Every front is resampled to 64 vertices equally spaced along its length and **oriented
  so that the glacier lies on the left of the direction of travel as seen on screen**
  (image y down: the left normal of a step ``(dx, dy)`` is ``(dy, -dx)``; on a map with y
  up the same front is also glacier-on-the-left, as both are the same picture).
- A flip of the image mirrors the picture, so it swaps left and right: the vertex order is
  reversed. Rotations keep the order.

Numpy only (torch is not needed here); images are float32 ``(H, W)`` or ``(C, H, W)``.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..core import contour as C

log = logging.getLogger(__name__)

N_VERTICES = 64
#: FrontLearning crops: about 49 m per pixel (Mohajerani et al. 2019: 1.97 px = 96.3 m)
FRONTLEARNING_PIXEL_SIZE_M = 49.0

# ----------------------------------------------------------------------------- polylines


def resample_polyline(pts: np.ndarray, n: int = N_VERTICES) -> np.ndarray:
    """``n`` points equally spaced along the polyline (first and last point kept)."""
    pts = np.asarray(pts, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError("a polyline is an (N, 2) array with N >= 1")
    if len(pts) == 1:
        return np.repeat(pts, n, axis=0)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] <= 0:
        return np.repeat(pts[:1], n, axis=0)
    t = np.linspace(0.0, cum[-1], n)
    x = np.interp(t, cum, pts[:, 0])
    y = np.interp(t, cum, pts[:, 1])
    return np.stack([x, y], axis=1)


def glacier_side_sign(pts: np.ndarray, glacier_point: np.ndarray, y_down: bool = True) -> float:
    """> 0 when ``glacier_point`` lies on the left of the polyline (as seen on screen).

    Length-weighted sum over the segments of the side on which the point lies, so that
    curved fronts are judged by their whole course, not only by the chord.
    """
    pts = np.asarray(pts, dtype=np.float64)
    d = np.diff(pts, axis=0)
    mid = 0.5 * (pts[1:] + pts[:-1])
    rel = np.asarray(glacier_point, dtype=np.float64)[None] - mid
    cross = d[:, 0] * rel[:, 1] - d[:, 1] * rel[:, 0]  # z of d x rel (y-up sense)
    dist = np.linalg.norm(rel, axis=1) + 1e-9
    s = float((cross / dist).sum())
    # y down flips handedness: the left normal on screen is (dy, -dx)
    return -s if y_down else s


def orient_front(pts: np.ndarray, glacier_point: np.ndarray, y_down: bool = True) -> np.ndarray:
    """Reverse ``pts`` if needed so the glacier (a point on its side) lies on the left."""
    pts = np.asarray(pts, dtype=np.float64)
    if glacier_side_sign(pts, glacier_point, y_down) < 0:
        return pts[::-1].copy()
    return pts.copy()


def glacier_point_from_side(pts: np.ndarray, side: str, shape: tuple[int, int]) -> np.ndarray:
    """A far point on the glacier side ``'bottom'|'top'|'left'|'right'`` of an image."""
    h, w = shape
    c = np.asarray(pts, dtype=np.float64).mean(axis=0)
    far = 10.0 * max(h, w)
    offset = {"bottom": (0.0, far), "top": (0.0, -far), "left": (-far, 0.0), "right": (far, 0.0)}[
        side
    ]
    return c + np.asarray(offset)


def prepare_front(
    pts: np.ndarray, glacier_point: np.ndarray, n: int = N_VERTICES, y_down: bool = True
) -> np.ndarray:
    """Resample to ``n`` vertices and orient (glacier on the left)."""
    return resample_polyline(orient_front(pts, glacier_point, y_down), n)


# ----------------------------------------------------------------------------- masks


def mask_to_polyline(mask: np.ndarray, min_fraction: float = 0.05) -> np.ndarray:
    """Ordered ``(x, y)`` polyline along a thin line mask (True on the front).

    The longest path through each 8-connected component (two breadth-first searches: the
    diameter of its spanning tree); components holding at least ``min_fraction`` of the
    pixels are chained greedily, end to nearest end.
    """
    mask = np.asarray(mask, dtype=bool)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("the front mask is empty")
    index = -np.ones(mask.shape, dtype=np.int64)
    index[ys, xs] = np.arange(len(xs))
    h, w = mask.shape
    offs = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]

    def neighbours(k: int) -> list[int]:
        y, x = ys[k], xs[k]
        out = []
        for dy, dx in offs:
            yy, xx = y + dy, x + dx
            if 0 <= yy < h and 0 <= xx < w and index[yy, xx] >= 0:
                out.append(int(index[yy, xx]))
        return out

    def bfs(start: int) -> tuple[dict[int, int], int]:
        parent = {start: -1}
        dist = {start: 0.0}
        q = deque([start])
        last = start
        while q:
            k = q.popleft()
            for nb in neighbours(k):
                if nb not in parent:
                    parent[nb] = k
                    dist[nb] = dist[k] + 1
                    q.append(nb)
                    if dist[nb] >= dist[last]:
                        last = nb
        return parent, last

    seen = np.zeros(len(xs), dtype=bool)
    paths: list[np.ndarray] = []
    for k0 in range(len(xs)):
        if seen[k0]:
            continue
        parent, a = bfs(k0)
        comp = np.fromiter(parent.keys(), dtype=np.int64)
        seen[comp] = True
        parent, b = bfs(a)
        path = [b]
        while parent[path[-1]] != -1:
            path.append(parent[path[-1]])
        paths.append(np.stack([xs[path], ys[path]], axis=1).astype(np.float64))
    sizes = np.array([len(p) for p in paths])
    keep = [p for p, s in zip(paths, sizes) if s >= min_fraction * sizes.sum() and s >= 2]
    if not keep:
        keep = [paths[int(np.argmax(sizes))]]
    keep.sort(key=len, reverse=True)
    chain = keep.pop(0)
    while keep:  # attach the component whose end is nearest to an end of the chain
        best = None
        for i, p in enumerate(keep):
            for rev_c in (False, True):
                for rev_p in (False, True):
                    c_end = chain[0] if rev_c else chain[-1]
                    p_start = p[-1] if rev_p else p[0]
                    d = float(np.hypot(*(c_end - p_start)))
                    if best is None or d < best[0]:
                        best = (d, i, rev_c, rev_p)
        _, i, rev_c, rev_p = best
        p = keep.pop(i)
        if rev_c:
            chain = chain[::-1]
        chain = np.concatenate([chain, p[::-1] if rev_p else p])
    return chain


# ----------------------------------------------------------------------------- samples


@dataclass
class FrontSample:
    """One image with one front: ``image`` float32 (C, H, W); ``front`` (64, 2) pixel xy."""

    image: np.ndarray
    front: np.ndarray
    name: str = ""
    group: str = ""  # e.g. the Landsat path/row (the glacier)
    pixel_size_m: float | None = None
    meta: dict = field(default_factory=dict)


_PATHROW = re.compile(r"^L[CET]0\d_[A-Z0-9]+_(\d{6})_")


def frontlearning_group(name: str) -> str:
    """The Landsat path/row (the glacier) in a FrontLearning file name, '' if absent."""
    m = _PATHROW.match(os.path.basename(name))
    return m.group(1) if m else ""


def read_png_gray(path: str) -> np.ndarray:
    """First band of a PNG as float32 (H, W): PIL when present, else GDAL."""
    try:
        from PIL import Image

        arr = np.asarray(Image.open(path))
    except ImportError:  # pragma: no cover - depends on the environment
        from osgeo import gdal

        ds = gdal.Open(path)
        arr = ds.GetRasterBand(1).ReadAsArray()
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr.astype(np.float32)


def read_frontlearning(
    root: str, labels: str = "labels_1px", glacier_side: str = "bottom", n: int = N_VERTICES
) -> list[FrontSample]:
    """FrontLearning ``root/images/*_Subset.png`` + ``root/<labels>/*_Front.png``.

    The masks are black lines on white (value < 128 on the front); thick ``labels`` masks
    are thinned by taking, per column, the centre of the front pixels only when no
    1-pixel mask exists. FrontLearning crops are rotated so that the glacier lies at the
    bottom of the image (``glacier_side``). A ``.npz`` written by ``pack --frontlearning``
    (:mod:`.packed`) is read instead, with numpy alone.
    """
    if str(root).lower().endswith(".npz"):
        from .packed import load_packed_fronts

        return load_packed_fronts(root, labels=labels, glacier_side=glacier_side, n=n)
    images = sorted(glob.glob(os.path.join(root, "images", "*.png")))
    if not images:
        raise FileNotFoundError(f"no FrontLearning images under {root}/images")
    out = []
    for path in images:
        base = os.path.basename(path)
        lab = os.path.join(root, labels, base.replace("_Subset", "_Front"))
        if not os.path.exists(lab):
            log.warning("no label for %s", base)
            continue
        img = read_png_gray(path)
        mask = read_png_gray(lab) < 128
        if labels != "labels_1px":
            mask = _thin_columns(mask)
        try:
            line = mask_to_polyline(mask)
        except ValueError:
            log.warning("empty front in %s", lab)
            continue
        gp = glacier_point_from_side(line, glacier_side, img.shape)
        out.append(
            FrontSample(
                image=img[None],
                front=prepare_front(line, gp, n),
                name=base,
                group=frontlearning_group(base),
                pixel_size_m=FRONTLEARNING_PIXEL_SIZE_M,
            )
        )
    return out


def read_training_folder(path: str) -> list[FrontSample]:
    """Training-data folder (:mod:`arctic_assist.io.training_data`, task 'contour') or the
    ``.npz`` that :func:`.packed.pack_training_folder` made of one -> samples.

    Chips are read raw (the model standardises its input in the graph; nodata pixels get
    the mean of the valid ones); polylines go from the folder's corner-origin pixel
    coordinates to pixel-centre coordinates and are resampled to 64 vertices **in their
    given order** (fronts exported from reviewed COBRA proposals keep the glacier on the
    left). ``group`` is the chip's region; chips of split 'val'/'test' are marked in
    ``meta['split']`` and held out. Numpy only for the ``.npz``; GDAL (at call time) for a
    folder.
    """
    if str(path).lower().endswith(".npz") and os.path.isfile(path):
        from .packed import load_packed_fronts

        return load_packed_fronts(path)
    from ..io.raster import read_raster
    from ..io.training_data import DatasetError, load_dataset, nodata_mask

    ds = load_dataset(path)
    if ds.task != "contour":
        raise DatasetError(f"{path}: task is '{ds.task}'; COBRA trains on 'contour' data")
    out = []
    for chip in ds.chips:
        if chip.polyline is None:
            continue
        raw = read_raster(chip.image).astype(np.float32)
        bad = nodata_mask(raw, ds.nodata)
        if bad.any() and (~bad).any():
            raw[:, bad] = raw[:, ~bad].mean(axis=1)[:, None]
        line = np.asarray(chip.polyline, dtype=np.float64) - 0.5
        out.append(
            FrontSample(
                image=raw,
                front=resample_polyline(line),
                name=chip.image.name,
                group=chip.region,
                pixel_size_m=ds.pixel_size_m,
                meta={"split": chip.split},
            )
        )
    if not out:
        raise DatasetError(f"{path}: no chip with a polyline")
    return out


def training_data_name(path: str) -> str:
    """The name of a training-data folder for provenance: the folder's own name, also when
    the trainer reads the ``.npz`` packed from it (its header names the folder)."""
    from .packed import source_path

    return os.path.basename(os.path.normpath(source_path(path)))


def _thin_columns(mask: np.ndarray) -> np.ndarray:
    """Crude thinning of a thick, mostly horizontal line: one pixel per column."""
    thin = np.zeros_like(mask)
    for x in range(mask.shape[1]):
        rows = np.nonzero(mask[:, x])[0]
        if len(rows):
            thin[int(round(rows.mean())), x] = True
    return thin


# ----------------------------------------------------------------------------- sampling


#: bilinear sampling of (C, H, W) images at float pixel coordinates (shared with the plugin)
bilinear = C.bilinear


def warp_sample(
    sample_img: np.ndarray,
    front: np.ndarray,
    matrix: np.ndarray,
    out_size: int,
    n: int = N_VERTICES,
    min_keep: float = 0.6,
    flip_parity: bool = False,
    fill: float | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Warp image and front with the 2x3 ``matrix`` mapping source px -> output px.

    The front is densified, transformed, clipped to the output tile (longest run inside)
    and resampled to ``n`` vertices; ``flip_parity`` (the transform mirrors the picture)
    reverses the vertex order. ``None`` when less than ``min_keep`` of the front stays in.
    """
    a = np.vstack([matrix, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(a)
    yy, xx = np.mgrid[0:out_size, 0:out_size].astype(np.float64)
    sx = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]
    sy = inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]
    if fill is None:
        fill = float(sample_img.mean())
    img = bilinear(sample_img, sx, sy, fill)
    dense = resample_polyline(front, 512)
    pts = dense @ matrix[:, :2].T + matrix[:, 2]
    inside = (
        (pts[:, 0] >= 0)
        & (pts[:, 0] <= out_size - 1)
        & (pts[:, 1] >= 0)
        & (pts[:, 1] <= out_size - 1)
    )
    if not inside.any():
        return None
    # longest run of consecutive inside points
    best, start, best_rng = 0, None, (0, 0)
    for i, ok in enumerate(np.append(inside, False)):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            if i - start > best:
                best, best_rng = i - start, (start, i)
            start = None
    kept = pts[best_rng[0] : best_rng[1]]
    if len(kept) < 2 or C.polyline_length(kept) < min_keep * C.polyline_length(pts):
        return None
    if flip_parity:
        kept = kept[::-1]
    return img, resample_polyline(kept, n)


def random_affine(
    rng: np.random.Generator,
    src_shape: tuple[int, int],
    front: np.ndarray,
    out_size: int,
    scale_range: tuple[float, float] = (0.7, 1.4),
    rotate_deg: float = 15.0,
    dihedral: bool = True,
    shift: float = 0.2,
) -> tuple[np.ndarray, bool]:
    """A random source->output 2x3 affine: zoom, small rotation, rot90s, flips, shift.

    The zoom is log-uniform in ``scale_range`` times the scale that makes the front's
    extent 85 % of the tile (never enlarging the source): ``scale_range`` (0.25, 1.2)
    spans fronts from a fifth of the tile (a FrontLearning image fitted whole) to the
    whole tile (a box drawn tight around the front). The front's centre lands within
    ``shift`` tiles of the tile centre. Returns the matrix and whether it mirrors the
    picture (odd number of flips).
    """
    h, w = src_shape
    c_front = np.asarray(front, dtype=np.float64).mean(axis=0)
    ext = max(np.ptp(front[:, 0]), np.ptp(front[:, 1]), 1.0)
    # base scale fits the front's extent into ~75 % of the tile, then zoom
    base = min(1.0, 0.85 * out_size / ext)
    lo, hi = scale_range
    s = base * float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    th = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg))
    k = int(rng.integers(0, 4)) if dihedral else 0
    th += k * np.pi / 2
    flip = bool(rng.integers(0, 2)) if dihedral else False
    r = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]) * s
    if flip:
        r = r @ np.diag([-1.0, 1.0])
    off = rng.uniform(-shift, shift, size=2) * out_size
    centre_out = np.array([(out_size - 1) / 2.0, (out_size - 1) / 2.0]) + off
    t = centre_out - r @ c_front
    return np.hstack([r, t[:, None]]), flip


def photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma, contrast, brightness and noise on a (C, H, W) image scaled to ~[0, 1]."""
    lo, hi = np.percentile(img, [1, 99])
    x = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    x = x ** rng.uniform(0.7, 1.4)
    x = x * rng.uniform(0.7, 1.3) + rng.uniform(-0.2, 0.2)
    if rng.random() < 0.5:
        x = x + rng.normal(0, rng.uniform(0.0, 0.05), size=x.shape)
    return x.astype(np.float32)


def flip_sample(img: np.ndarray, front: np.ndarray, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """Mirror image (C, H, W) and front; the vertex order is reversed (glacier stays left)."""
    h, w = img.shape[-2:]
    f = np.asarray(front, dtype=np.float64).copy()
    if axis == "x":
        img = img[..., ::-1]
        f[:, 0] = (w - 1) - f[:, 0]
    elif axis == "y":
        img = img[..., ::-1, :]
        f[:, 1] = (h - 1) - f[:, 1]
    else:
        raise ValueError("axis is 'x' or 'y'")
    return np.ascontiguousarray(img), f[::-1].copy()


def rot90_sample(img: np.ndarray, front: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rotate image and front by k x 90 degrees (counter-clockwise on screen); order kept."""
    f = np.asarray(front, dtype=np.float64).copy()
    for _ in range(k % 4):
        h, w = img.shape[-2:]
        img = np.rot90(img, 1, axes=(-2, -1))
        # np.rot90 (CCW): new[r, c] = old[c, w - 1 - r] -> old (x, y) goes to (y, w-1-x)
        f = np.stack([f[:, 1], (w - 1) - f[:, 0]], axis=1)
    return np.ascontiguousarray(img), f


# ----------------------------------------------------------------------------- synthetic


def _smooth_noise(rng: np.random.Generator, size: int, scale: int) -> np.ndarray:
    """Smooth random field in [0, 1] by bilinear upsampling of a coarse grid."""
    g = max(2, size // scale + 2)
    coarse = rng.random((1, g, g)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) * ((g - 1.0) / size)
    return bilinear(coarse, xx, yy)[0]


def synthetic_front(rng: np.random.Generator, size: int = 192, n: int = N_VERTICES) -> FrontSample:
    """A synthetic calving-front tile.

    Bright crevassed glacier ice at the bottom, dark water with ice melange (bright floes
    thinning out away from the front) at the top, rock walls on the sides whose edges are
    not fronts, and multiplicative speckle. Then a random rot90/flip (front re-oriented).
    """
    s = size
    x = np.arange(s, dtype=np.float64)
    # front: smooth random curve y(x) across the fjord, between the rock walls
    wall_l = rng.uniform(0, 0.25) * s
    wall_r = s - rng.uniform(0, 0.25) * s
    base = rng.uniform(0.3, 0.7) * s
    amp = rng.uniform(0, 0.15) * s
    k = rng.integers(1, 4)
    phase = rng.uniform(0, 2 * np.pi)
    yfront = base + amp * np.sin(2 * np.pi * k * x / s + phase)
    yfront += 3.0 * (_smooth_noise(rng, s, 8)[0] - 0.5) * rng.uniform(0, 4)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    glacier = yy > yfront[None, :]
    wall_noise = (_smooth_noise(rng, s, 24) - 0.5) * 0.08 * s
    rock = (xx < wall_l + wall_noise) | (xx > wall_r + wall_noise)
    ice_b = rng.uniform(0.6, 0.95)
    water_b = rng.uniform(0.02, 0.25)
    rock_b = rng.uniform(0.15, 0.55)
    img = np.full((s, s), water_b, dtype=np.float64)
    # melange: bright floes, denser near the front
    dist_front = np.clip((yfront[None, :] - yy) / s, 0, 1)
    floes = _smooth_noise(rng, s, int(rng.integers(2, 6)))
    dens = rng.uniform(0.2, 1.0) * np.exp(-dist_front / rng.uniform(0.05, 0.4))
    img = np.where(floes < 0.5 * dens, rng.uniform(0.4, 0.8), img)
    # crevassed ice: stripes across flow + noise
    crev = np.sin(2 * np.pi * (yy + 5 * _smooth_noise(rng, s, 16)) / rng.uniform(4, 12))
    ice = ice_b + 0.08 * crev * rng.uniform(0.3, 1.0) + 0.05 * (_smooth_noise(rng, s, 4) - 0.5)
    img = np.where(glacier, ice, img)
    rock_tex = (
        rock_b + 0.25 * (_smooth_noise(rng, s, 6) - 0.5) + 0.1 * (_smooth_noise(rng, s, 2) - 0.5)
    )
    img = np.where(rock, rock_tex, img)
    img *= rng.gamma(8.0, 1 / 8.0, size=img.shape)  # speckle
    img = img.astype(np.float32)[None]
    inside = (x > wall_l + wall_noise[np.clip(yfront.astype(int), 0, s - 1), x.astype(int)]) & (
        x < wall_r + wall_noise[np.clip(yfront.astype(int), 0, s - 1), x.astype(int)]
    )
    idx = np.nonzero(inside)[0]
    if len(idx) < 4:
        idx = np.arange(s)
    line = np.stack([x[idx], np.clip(yfront[idx], 0, s - 1)], axis=1)
    front = prepare_front(line, glacier_point_from_side(line, "bottom", (s, s)), n)
    k = int(rng.integers(0, 4))
    img, front = rot90_sample(img, front, k)
    if rng.random() < 0.5:
        img, front = flip_sample(img, front, "x")
    return FrontSample(image=img, front=front, name="synthetic", group="synthetic")


def augment(
    sample: FrontSample,
    rng: np.random.Generator,
    out_size: int = 192,
    n: int = N_VERTICES,
    scale_range: tuple[float, float] = (0.7, 1.4),
    photometric_aug: bool = True,
    tries: int = 10,
    shift: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Random geometric (image and vertices together) + photometric augmentation.

    Returns ``(image (C, S, S) float32, front (n, 2) pixel xy)``.
    """
    img = sample.image
    for _ in range(tries):
        m, flip = random_affine(
            rng, img.shape[-2:], sample.front, out_size, scale_range, shift=shift
        )
        res = warp_sample(img, sample.front, m, out_size, n, flip_parity=flip)
        if res is not None:
            break
    else:  # fall back to a plain fit without randomness
        m, flip = random_affine(
            np.random.default_rng(0), img.shape[-2:], sample.front, out_size, (1.0, 1.0), 0.0, False
        )
        res = warp_sample(img, sample.front, m, out_size, n, min_keep=0.0, flip_parity=flip)
        assert res is not None
    out, front = res
    if photometric_aug:
        out = photometric(out, rng)
    return out, front


def center_fit(
    sample: FrontSample, out_size: int = 192, n: int = N_VERTICES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic evaluation view: the whole image fitted into ``out_size`` exactly as
    the plugin fits its window (:func:`arctic_assist.core.contour.fit_window`).

    Returns ``(image, front in tile px, 2x3 matrix source px -> tile px)``.
    """
    h, w = sample.image.shape[-2:]
    fit = C.fit_window(h, w, out_size)
    front = resample_polyline(fit.to_tile(sample.front), n)
    return fit.image(sample.image), front, fit.matrix()
