"""core/contour.py: coordinate frames, oriented boxes, polyline metrics (numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arctic_assist.core import contour as C


def test_normalized_pixel_roundtrip_align_corners():
    v = np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    p = C.normalized_to_pixel(v, 101, 51)
    np.testing.assert_allclose(p, [[0, 0], [100, 50], [50, 25]])
    np.testing.assert_allclose(C.pixel_to_normalized(p, 101, 51), v)


def test_pixel_map_roundtrip_rotated_geotransform():
    a = math.radians(33)
    gt = (1000.0, 2 * math.cos(a), 2 * math.sin(a), 5000.0, 2 * math.sin(a), -2 * math.cos(a))
    p = np.random.default_rng(0).uniform(0, 100, size=(20, 2))
    np.testing.assert_allclose(C.map_to_pixel(C.pixel_to_map(p, gt), gt), p, atol=1e-9)
    # pixel (0, 0) centre is half a pixel from the corner
    np.testing.assert_allclose(C.pixel_to_map(np.array([-0.5, -0.5]), gt), [1000.0, 5000.0])


@pytest.mark.parametrize("angle_deg", [0.0, 20.0, -40.0, 44.0, 60.0, 135.0])
def test_oriented_box_recovers_rectangle(angle_deg):
    a = math.radians(angle_deg)
    e = np.array([math.cos(a), math.sin(a)])
    n = np.array([-math.sin(a), math.cos(a)])
    c = np.array([500.0, -200.0])
    corners = np.array(
        [c + sx * 300 * e + sy * 100 * n for sx, sy in ((-1, 1), (1, 1), (1, -1), (-1, -1))]
    )
    box = C.oriented_box(corners)
    np.testing.assert_allclose(box.center, c, atol=1e-6)
    assert -math.pi / 4 < box.angle <= math.pi / 4
    assert sorted([box.width, box.height]) == pytest.approx([200.0, 600.0])
    # the same rectangle
    got = C.oriented_box(box.corners())
    np.testing.assert_allclose(
        sorted(map(tuple, np.round(got.corners(), 6))),
        sorted(map(tuple, np.round(box.corners(), 6))),
        atol=1e-6,
    )


def test_window_geotransform_axis_aligned_is_north_up():
    box = C.oriented_box(np.array([[0, 0], [300, 0], [300, 150], [0, 150]], float))
    gt, w, h = C.window_geotransform(box, 10.0, multiple_of=16)
    assert (w, h) == (32, 16)
    assert gt[1] == pytest.approx(10) and gt[5] == pytest.approx(-10)
    assert gt[2] == pytest.approx(0) and gt[4] == pytest.approx(0)
    # window centre = box centre: model (0, 0) -> (150, 75)
    np.testing.assert_allclose(C.model_to_map(np.zeros((1, 2)), w, h, gt), [[150, 75]])


def test_model_to_map_rotated_box_exact():
    a = math.radians(30)
    e = np.array([math.cos(a), math.sin(a)])
    n = np.array([-math.sin(a), math.cos(a)])
    c = np.array([1e5, 2e5])
    corners = np.array(
        [c + sx * 320 * e + sy * 160 * n for sx, sy in ((-1, 1), (1, 1), (1, -1), (-1, -1))]
    )
    box = C.oriented_box(corners)
    gt, w, h = C.window_geotransform(box, 10.0, multiple_of=16)
    assert (w, h) == (64, 32)
    v = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
    m = C.model_to_map(v, w, h, gt)
    half_w, half_h = (w - 1) / 2 * 10, (h - 1) / 2 * 10
    np.testing.assert_allclose(m[0], c - half_w * e, atol=1e-6)
    np.testing.assert_allclose(m[1], c + half_w * e, atol=1e-6)
    np.testing.assert_allclose(m[2], c + half_h * n, atol=1e-6)  # row 0 = the box's "north"
    np.testing.assert_allclose(m[3], c - half_h * n, atol=1e-6)
    np.testing.assert_allclose(C.map_to_model(m, w, h, gt), v, atol=1e-12)


def test_metrics():
    a = np.array([[0.0, 0.0], [10.0, 0.0]])
    b = np.array([[0.0, 2.0], [10.0, 2.0]])
    assert C.polyline_length(a) == 10
    assert C.mean_vertex_distance(a, b) == pytest.approx(2.0)
    assert C.mean_symmetric_distance(a, b, step=0.5) == pytest.approx(2.0)
    d = C.point_to_polyline_distance(np.array([[5.0, 3.0], [-3.0, 4.0], [12.0, 0.0]]), a)
    np.testing.assert_allclose(d, [3.0, 5.0, 2.0])
    # symmetric: a short line against a long one
    short = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert C.mean_symmetric_distance(short, a, step=0.1) == pytest.approx(
        C.mean_symmetric_distance(a, short, step=0.1)
    )
    assert C.convergence([a, b]) == pytest.approx(2.0)


def test_percentile_stretch_range():
    x = np.arange(100, dtype=np.float32).reshape(10, 10) * 100
    s = C.percentile_stretch(x)
    assert s.min() == 0 and s.max() == 1


def test_fit_window_letterbox_into_the_tile():
    fit = C.fit_window(208, 304, 128)
    # the longer side spans the tile exactly, centred; pixel centres map onto pixel centres
    k = 207 * 127 / 303
    np.testing.assert_allclose(
        fit.to_tile([[0, 0], [303, 207]]), [[0, (127 - k) / 2], [127, (127 + k) / 2]]
    )
    p = np.array([[12.3, 45.6], [300.0, 1.0]])
    np.testing.assert_allclose(fit.to_window(fit.to_tile(p)), p)
    np.testing.assert_allclose(fit.model_to_window(fit.window_to_model(p)), p)
    # the image: a ramp is resampled linearly, the letterbox holds the window's mean
    yy, xx = np.mgrid[0:208, 0:304].astype(np.float32)
    img = np.stack([xx, 2 * yy + 5])
    tile = fit.image(img)
    assert tile.shape == (2, 128, 128) and tile.dtype == np.float32
    row = 64  # inside the window
    np.testing.assert_allclose(tile[0, row], np.arange(128) * 303 / 127, atol=1e-3)
    np.testing.assert_allclose(tile[1, 0], img[1].mean(), rtol=1e-6)  # letterbox
    # invalid pixels take the mean of the valid ones
    valid = np.ones((208, 304), bool)
    valid[:, :152] = False
    t2 = fit.image(img, valid)
    np.testing.assert_allclose(t2[0, row, 10], img[0][:, 152:].mean(), rtol=1e-5)
    with pytest.raises(ValueError):
        fit.image(img[:, :100])


def test_self_intersections_and_length_ratio():
    straight = np.stack([np.linspace(0, 10, 20), np.zeros(20)], 1)
    assert C.self_intersections(straight) == 0
    assert C.self_intersections(np.array([[0, 0], [2, 0], [2, 1], [1, -1]])) == 1
    # a zig-zag folding back over itself
    zig = np.array([[0, 0], [4, 0], [0, 1], [4, 1], [0, -1.0]])
    assert C.self_intersections(zig) >= 2
    # collinear, overlapping back-track counts; collinear disjoint does not
    assert C.self_intersections(np.array([[0, 0], [1, 0], [2, 0], [3, 0], [0.5, 0]])) >= 1
    assert C.path_length_ratio(zig, straight) == pytest.approx(C.polyline_length(zig) / 10.0)


def test_untangle_removes_every_crossing_and_keeps_the_vertices():
    rng = np.random.default_rng(0)
    for n in (4, 16, 64):
        line = rng.uniform(0, 100, size=(n, 2))  # a random walk crosses itself a lot
        assert n == 4 or C.self_intersections(line) > 0
        out = C.untangle(line)
        assert C.self_intersections(out) == 0
        # the same points (only re-ordered), the same end points, a shorter path
        assert sorted(map(tuple, out)) == sorted(map(tuple, line))
        np.testing.assert_array_equal(out[0], line[0])
        np.testing.assert_array_equal(out[-1], line[-1])
        assert C.polyline_length(out) <= C.polyline_length(line) + 1e-9
    simple = np.stack([np.linspace(0, 10, 20), np.sin(np.linspace(0, 3, 20))], axis=1)
    np.testing.assert_array_equal(C.untangle(simple), simple)  # nothing to do


def test_refine_box_frames_the_line_at_the_training_scale():
    line = np.array([[40.0, 50.0], [80.0, 60.0]])  # 40 x 10 px, centre (60, 55)
    x0, y0, x1, y1 = C.refine_box(line, 200, 300, fill=1.0)
    assert (x0, x1) == (40, 80) and (y0, y1) == (35, 75)  # a 40 px square around it
    x0, y0, x1, y1 = C.refine_box(line, 200, 300, fill=0.5)
    assert (x1 - x0, y1 - y0) == (80, 80)
    # clipped to the window; a degenerate line falls back to the whole window
    assert C.refine_box(np.array([[1.0, 1.0], [30.0, 2.0]]), 200, 300, fill=0.5)[:2] == (0, 0)
    assert C.refine_box(np.array([[5.0, 5.0], [5.0, 5.0]]), 10, 10) == (0, 0, 10, 10)


def test_trace_window_refines_on_a_crop_and_maps_back():
    """A runner that always answers the tile's middle line: after refinement the line
    lies in the middle of the crop around the first answer, in window pixels."""
    tile = 32
    calls = []

    def run(x):
        calls.append(x.shape)
        v = np.stack([np.linspace(-0.5, 0.5, 8), np.zeros(8)], axis=1)
        return [v, v]

    img = np.zeros((1, 64, 128), dtype=np.float32)
    steps = C.trace_window(run, img, tile, passes=2, mirror=False)
    assert len(calls) == 3 and all(c == (1, 1, tile, tile) for c in calls)
    assert len(steps) == 2 and steps[-1].shape == (8, 2)
    first = C.run_fitted(run, img, tile)[-1]
    # the same place, up to the crop boxes' whole pixels
    np.testing.assert_allclose(steps[-1].mean(axis=0), first.mean(axis=0), atol=2.5)
    assert C.self_intersections(steps[-1]) == 0


def _vertical_line_runner(x_tile: float):
    """A runner that always answers a vertical line at ``x_tile`` (tile units), top to
    bottom, whatever the image: right in one orientation only."""

    def run(x):
        v = np.stack([np.full(16, x_tile), np.linspace(-0.8, 0.8, 16)], axis=1)
        return [v, v]

    return run


def test_mirrored_runner_maps_its_answer_back_with_the_glacier_on_the_same_side():
    run = C.mirrored(_vertical_line_runner(-0.5))
    out = run(np.zeros((1, 1, 32, 32), dtype=np.float32))[-1]
    # the line at -0.5 in the mirrored input is at +0.5 here, its vertex order reversed
    np.testing.assert_allclose(out[:, 0], 0.5)
    np.testing.assert_allclose(out[:, 1], np.linspace(0.8, -0.8, 16))

    def bright_column(x):  # an equivariant runner: a line on the input's brightest column
        col = int(np.argmax(x[0, 0].sum(axis=0)))
        xt = 2.0 * col / (x.shape[-1] - 1) - 1.0
        return [np.stack([np.full(4, xt), np.linspace(-1, 1, 4)], axis=1)]

    img = np.zeros((1, 1, 32, 32), dtype=np.float32)
    img[..., 9] = 1.0
    got = C.mirrored(bright_column)(img)[-1]
    np.testing.assert_allclose(got, bright_column(img)[-1][::-1], atol=1e-12)


def test_edge_strength_is_high_on_an_edge_and_low_away_from_it():
    img = np.zeros((1, 64, 64), dtype=np.float32)
    img[:, :, 40:] = 1.0  # a step edge between columns 39 and 40
    on = np.array([[39.5, 2.0], [39.5, 61.0]])
    off = np.array([[10.0, 2.0], [10.0, 61.0]])
    mag = C.edge_magnitude(img)
    assert C.edge_strength(mag, on) > 10.0  # an average place scores 1
    assert C.edge_strength(mag, off) < 0.01
    # a constant image has no edge anywhere: no division by zero
    assert C.edge_strength(C.edge_magnitude(np.ones((2, 16, 16))), on / 4) == 0.0


def test_trace_window_keeps_the_orientation_whose_line_lies_on_the_edge():
    """A model right in one orientation only: the mirrored trace wins where the image's
    edge is on the mirrored side, and the identity wins where it is not."""
    tile = 32
    run = _vertical_line_runner(-0.5)  # tile x 7.75 of 31: window x ~15.5 of 63
    for edge_col, want_x in ((48, 47.5), (16, 15.5)):
        img = np.zeros((1, 64, 64), dtype=np.float32)
        img[:, :, edge_col:] = 1.0
        line = C.trace_window(run, img, tile, passes=0)[-1]
        assert abs(float(np.median(line[:, 0])) - want_x) < 1.0
        one = C.trace_window(run, img, tile, passes=0, mirror=False)[-1]
        assert abs(float(np.median(one[:, 0])) - 15.5) < 1.0


def test_snap_moves_vertices_onto_the_nearby_edge_by_at_most_the_radius():
    img = np.zeros((1, 64, 64), dtype=np.float32)
    img[:, :, 40:] = 1.0  # the edge at x = 39.5
    mag = C.edge_magnitude(img)
    ys = np.linspace(4.0, 59.0, 24)
    near = np.stack([np.full_like(ys, 37.5), ys], axis=1)  # 2 px off the edge
    got = C.snap_to_edge(mag, near, radius=3.0)
    np.testing.assert_allclose(got[:, 0], 39.5, atol=0.5)
    np.testing.assert_allclose(got[:, 1], ys, atol=1e-9)  # along the normal only
    far = np.stack([np.full_like(ys, 30.0), ys], axis=1)  # 9.5 px off: out of reach
    moved = np.abs(C.snap_to_edge(mag, far, radius=3.0)[:, 0] - 30.0)
    assert moved.max() <= 3.0 + 1e-9
    np.testing.assert_array_equal(C.snap_to_edge(mag, near, radius=0.0), near)
    # one vertex drawn off to a spurious edge alone does not jump: the moves are smoothed
    spot = img.copy()
    spot[:, 30:33, 35:37] = 1.0
    wiggle = C.snap_to_edge(C.edge_magnitude(spot), near, radius=3.0)
    assert np.abs(wiggle[:, 0] - 39.5).max() <= 0.5


def test_trace_window_snaps_the_final_line_only():
    """The snake's line 2 px beside the edge: the final line is snapped onto it, the
    iterations before are kept as the model gave them; snap 0 keeps the model's line."""
    tile = 32
    run = _vertical_line_runner(-0.5)  # window x ~15.5 of 63
    img = np.zeros((1, 64, 64), dtype=np.float32)
    img[:, :, 18:] = 1.0  # the edge at x = 17.5
    steps = C.trace_window(run, img, tile, passes=0, mirror=False, snap=3.0)
    assert abs(float(np.median(steps[-1][:, 0])) - 17.5) < 0.5
    plain = C.trace_window(run, img, tile, passes=0, mirror=False, snap=0.0)
    assert abs(float(np.median(plain[-1][:, 0])) - 15.5) < 1.0
    for a, b in zip(steps[:-1], plain[:-1]):
        np.testing.assert_array_equal(a, b)


def test_snap_leaves_a_line_in_a_flat_neighbourhood_where_it_is():
    line = np.stack([np.full(10, 20.0), np.linspace(5.0, 50.0, 10)], axis=1)
    for img in (np.zeros((1, 64, 64)), np.ones((2, 64, 64))):
        np.testing.assert_array_equal(C.snap_to_edge(C.edge_magnitude(img), line, 3.0), line)
