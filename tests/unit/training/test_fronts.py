"""training/fronts.py: resampling, orientation, mask tracing, flips/rotations, augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from arctic_assist.training import fronts as FR
from arctic_assist.core import contour as C


def test_resample_equal_spacing_and_ends():
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 30.0]])
    r = FR.resample_polyline(line, 64)
    assert r.shape == (64, 2)
    np.testing.assert_allclose(r[0], line[0])
    np.testing.assert_allclose(r[-1], line[-1])
    seg = np.linalg.norm(np.diff(r, axis=0), axis=1)
    assert seg.max() - seg.min() < 1e-6 + 40 / 63 * 0.3  # the corner cuts one segment
    np.testing.assert_allclose(np.median(seg), 40 / 63, rtol=1e-6)


def test_orientation_glacier_on_the_left():
    # image y down; glacier at the bottom; the front runs across the image
    line = np.stack([np.linspace(0, 99, 20), np.full(20, 50.0)], 1)
    g = FR.glacier_point_from_side(line, "bottom", (100, 100))
    o = FR.orient_front(line, g)
    # walking from right to left with y down puts the bottom on the left (screen sense)
    assert o[0, 0] > o[-1, 0]
    np.testing.assert_allclose(FR.orient_front(o[::-1], g), o)
    # glacier at the top: left to right
    o2 = FR.orient_front(line, FR.glacier_point_from_side(line, "top", (100, 100)))
    assert o2[0, 0] < o2[-1, 0]
    # curved (U-shaped) front: the glacier inside the U
    t = np.linspace(0, np.pi, 50)
    u = np.stack([50 + 40 * np.cos(t), 50 + 40 * np.sin(t)], 1)  # bulging downwards
    assert (
        FR.glacier_side_sign(FR.orient_front(u, np.array([50.0, 10.0])), np.array([50.0, 10.0])) > 0
    )


def _mask_with_line(h=60, w=80):
    m = np.zeros((h, w), bool)
    xs = np.arange(5, 75)
    ys = (30 + 8 * np.sin(xs / 10)).round().astype(int)
    m[ys, xs] = True
    for x0, x1 in zip(xs[:-1], xs[1:]):  # make it 8-connected
        y0, y1 = ys[x0 - 5], ys[x1 - 5]
        for y in range(min(y0, y1), max(y0, y1) + 1):
            m[y, x0] = True
    return m


def test_mask_to_polyline_orders_the_pixels():
    m = _mask_with_line()
    line = FR.mask_to_polyline(m)
    assert {tuple(p) for p in line.astype(int)} <= {(x, y) for y, x in zip(*np.nonzero(m))}
    assert len(set(line[:, 0].astype(int))) == 70  # every column visited
    assert np.abs(np.diff(line, axis=0)).max() <= 1  # consecutive pixels touch
    ends = sorted([line[0, 0], line[-1, 0]])
    assert ends == [5, 74]


def test_mask_to_polyline_chains_two_pieces():
    m = _mask_with_line()
    m[:, 38:41] = False
    line = FR.mask_to_polyline(m)
    assert sorted([line[0, 0], line[-1, 0]]) == [5, 74]


def _image_with_front(front, shape=(60, 80)):
    img = np.zeros((1,) + shape, np.float32)
    d = C.densify(front, 0.2)
    img[0, d[:, 1].round().astype(int), d[:, 0].round().astype(int)] = 1.0
    return img


def test_flips_reverse_order_and_keep_glacier_left():
    front = np.stack([np.linspace(70, 10, 64), np.linspace(20, 40, 64)], 1)  # glacier bottom
    img = _image_with_front(front)
    g = np.array([40.0, 1000.0])
    assert FR.glacier_side_sign(front, g) > 0
    for axis in ("x", "y"):
        im2, f2 = FR.flip_sample(img, front, axis)
        # the same picture: the image is bright under the flipped vertices
        assert im2[0, f2[:, 1].round().astype(int), f2[:, 0].round().astype(int)].min() == 1
        # the order is reversed: first vertex is the image of the old last one
        fl = front.copy()
        if axis == "x":
            fl[:, 0] = 79 - fl[:, 0]
            g2 = np.array([40.0, 1000.0])
        else:
            fl[:, 1] = 59 - fl[:, 1]
            g2 = np.array([40.0, -1000.0])
        np.testing.assert_allclose(f2, fl[::-1])
        assert FR.glacier_side_sign(f2, g2) > 0


def test_rot90_keeps_order_and_positions():
    front = np.stack([np.linspace(70, 10, 64), np.linspace(20, 40, 64)], 1)
    img = _image_with_front(front)
    for k in range(4):
        im2, f2 = FR.rot90_sample(img, front, k)
        assert im2[0, f2[:, 1].round().astype(int), f2[:, 0].round().astype(int)].min() == 1
    _, f4 = FR.rot90_sample(img, front, 4)
    np.testing.assert_allclose(f4, front)


def test_augment_moves_vertices_with_the_image():
    rng = np.random.default_rng(0)
    front = FR.resample_polyline(
        np.stack([np.linspace(150, 20, 64), 60 + 20 * np.sin(np.linspace(0, 3, 64))], 1)
    )
    img = np.zeros((1, 120, 180), np.float32)
    d = C.densify(front, 0.2)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            img[0, (d[:, 1] + dy).round().astype(int), (d[:, 0] + dx).round().astype(int)] = 1
    s = FR.FrontSample(image=img, front=front)
    for _ in range(10):
        out, f = FR.augment(s, rng, 96, photometric_aug=False)
        assert out.shape == (1, 96, 96) and f.shape == (64, 2)
        assert (f >= 0).all() and (f <= 95).all()
        vals = FR.bilinear(out, f[:, 0], f[:, 1])[0]
        assert np.median(vals) > 0.5


def test_synthetic_front_glacier_on_the_left():
    rng = np.random.default_rng(1)
    for _ in range(5):
        s = FR.synthetic_front(rng, 96)
        assert s.image.shape == (1, 96, 96) and s.front.shape == (64, 2)
        f = s.front
        mid = f[20:44]
        t = np.gradient(mid, axis=0)
        t /= np.linalg.norm(t, axis=1, keepdims=True) + 1e-9
        left = np.stack([t[:, 1], -t[:, 0]], 1)  # screen-left with y down
        a = mid + 6 * left
        b = mid - 6 * left
        ok = ((a >= 0) & (a <= 95)).all(1) & ((b >= 0) & (b <= 95)).all(1)
        va = FR.bilinear(s.image, a[ok, 0], a[ok, 1])[0]
        vb = FR.bilinear(s.image, b[ok, 0], b[ok, 1])[0]
        assert np.median(va) > np.median(vb)  # bright ice on the left


@pytest.mark.skipif(
    not __import__("os").path.isdir("../shared/data/calving/frontlearning/train/images"),
    reason="shared FrontLearning data not present (../shared/data)",
)
def test_read_frontlearning_real_data():
    ss = FR.read_frontlearning("../shared/data/calving/frontlearning/train")
    assert len(ss) >= 100
    s = ss[0]
    assert s.image.ndim == 3 and s.front.shape == (64, 2) and s.group == "020007"
    # glacier (bottom) on the left: fronts run right to left on average
    assert np.mean([x.front[0, 0] > x.front[-1, 0] for x in ss]) > 0.9
