"""Streaming sliding-window inference: coverage, blending weights, exact stitching."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_factory import make_spec, weighted_sum_model, weighted_sum_reference

from arctic_assist.core.errors import CanceledError
from arctic_assist.core.onnx_model import OnnxModel
from arctic_assist.core.tiling import (
    blend_window,
    panel_bounds,
    sliding_window_inference,
    sliding_window_stream,
    tile_origins,
    tile_starts,
)

SHAPES = [
    (37, 53, 16, 4),
    (64, 64, 16, 8),
    (100, 7, 32, 8),
    (5, 9, 32, 8),
    (33, 32, 32, 0),
    (97, 131, 24, 7),
    (1, 1, 8, 2),
    (250, 61, 64, 48),
]


@pytest.mark.parametrize(
    "length, tile, overlap",
    [(10, 4, 1), (11, 4, 1), (3, 4, 1), (4, 4, 0), (1000, 192, 48), (193, 192, 48), (1, 8, 2)],
)
def test_tile_starts_cover_and_end_flush(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0
    assert starts == sorted(set(starts))
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered.all()
    assert starts[-1] + min(tile, length) == length  # last tile flush with the edge
    steps = np.diff(starts)
    assert (steps <= tile - overlap).all() and (steps > 0).all()


def test_tile_starts_rejects_bad_overlap():
    with pytest.raises(ValueError):
        tile_starts(10, 4, 4)


def test_tile_origins_row_major():
    origins = tile_origins(10, 11, 4, 1)
    assert origins[0] == (0, 0) and origins[-1] == (6, 7)
    assert len(origins) == 3 * 4


@pytest.mark.parametrize("kind", ["hann", "tent"])
def test_blend_window_positive_and_symmetric(kind):
    w = blend_window(16, kind)
    assert w.shape == (16, 16) and w.dtype == np.float32
    assert (w > 0).all()
    np.testing.assert_allclose(w, w[::-1, ::-1])
    assert w[8, 8] == w.max()


def per_pixel(batch: np.ndarray) -> np.ndarray:
    """A trivial per-pixel predictor: two output channels from a band mix."""
    a = np.tanh(batch[:, 0] * 0.7 - batch[:, 1] * 0.2)
    b = batch.sum(axis=1) * 0.1
    return np.stack([a, b], axis=1).astype(np.float32)


@pytest.mark.parametrize("h, w, tile, overlap", SHAPES)
@pytest.mark.parametrize("window", ["hann", "tent"])
def test_stitching_is_exact_for_per_pixel_predictor(h, w, tile, overlap, window):
    img = np.random.default_rng(h * w).normal(size=(3, h, w)).astype(np.float32)
    out = sliding_window_inference(
        img, None, tile, overlap, per_pixel, out_channels=2, batch_size=3, window=window
    )
    np.testing.assert_allclose(out, per_pixel(img[None])[0], rtol=1e-6, atol=1e-6)


def test_streaming_contract_rows_once_in_order_and_bounded_reads():
    h, w, tile, overlap = 203, 170, 32, 8
    img = np.random.default_rng(1).normal(size=(2, h, w)).astype(np.float32)
    reads, writes, seen = [], [], []

    def read(r0, c0, nr, nc):
        reads.append((r0, c0, nr, nc))
        return img[:, r0 : r0 + nr, c0 : c0 + nc], np.ones((nr, nc), bool)

    def predict(batch):
        seen.append(batch.shape)
        return batch[:, :1] * 2.0

    def write(r0, c0, block, valid):
        assert c0 == 0 and block.shape[2] == w  # narrower than a panel: one panel
        writes.append((r0, block.shape[1]))

    progress = []
    stats = sliding_window_stream(
        (h, w), tile, overlap, read, predict, write, batch_size=2, progress=progress.append
    )
    rows = [r for r0, n in writes for r in range(r0, r0 + n)]
    assert rows == list(range(h))  # every row exactly once, top to bottom
    assert max(nr for _, _, nr, _ in reads) <= tile
    assert max(nc for _, _, _, nc in reads) <= tile + (tile - overlap)  # one batch of 2 tiles
    assert all(s[0] <= 2 and s[2:] == (tile, tile) for s in seen)
    assert stats.max_buffer_rows <= tile
    assert progress == sorted(progress) and progress[-1] == pytest.approx(100.0)
    n_tiles = len(tile_origins(h, w, tile, overlap))
    assert stats.tiles_run == n_tiles and stats.tiles_skipped == 0


def test_invalid_pixels_are_nodata_and_empty_tiles_skipped():
    h, w, tile, overlap = 64, 96, 16, 4
    img = np.random.default_rng(2).normal(size=(1, h, w)).astype(np.float32)
    valid = np.ones((h, w), bool)
    valid[:, 60:] = False  # a wide invalid band: whole tiles there must be skipped
    valid[5, 5] = False
    calls = []

    def predict(batch):
        calls.append(batch.shape[0])
        return batch * 3.0

    out = sliding_window_inference(img, valid, tile, overlap, predict, nodata=-7.0)
    np.testing.assert_allclose(out[0][valid], img[0][valid] * 3.0, rtol=1e-6, atol=1e-6)
    assert (out[0][~valid] == -7.0).all()

    stats = sliding_window_stream(
        (h, w),
        tile,
        overlap,
        lambda r, c, nr, nc: (img[:, r : r + nr, c : c + nc], valid[r : r + nr, c : c + nc]),
        predict,
        lambda *a: None,
    )
    cols = tile_starts(w, tile, overlap)
    empty_cols = [c for c in cols if c >= 60]
    assert stats.tiles_skipped == len(empty_cols) * len(tile_starts(h, tile, overlap))
    assert stats.tiles_run + stats.tiles_skipped == len(tile_origins(h, w, tile, overlap))


def test_cancel_raises_and_stops_predicting():
    img = np.zeros((1, 100, 100), np.float32)
    calls = []

    def predict(batch):
        calls.append(1)
        return batch

    state = {"n": 0}

    def is_canceled():
        state["n"] += 1
        return state["n"] > 2

    with pytest.raises(CanceledError):
        sliding_window_inference(img, None, 16, 4, predict, batch_size=1, is_canceled=is_canceled)
    assert len(calls) == 2


def test_bad_predictor_shape_is_reported():
    img = np.zeros((1, 20, 20), np.float32)
    with pytest.raises(ValueError, match="predictor returned shape"):
        sliding_window_inference(img, None, 8, 2, lambda b: b[:, :, :4, :4])


@pytest.mark.parametrize("h, w, tile, overlap", [(70, 90, 32, 8), (20, 25, 32, 8), (65, 33, 16, 5)])
def test_onnx_per_pixel_graph_stitches_exactly(tmp_path, h, w, tile, overlap):
    weights, bias = [0.8, -1.1, 0.3, 0.5], 0.2
    path = weighted_sum_model(
        tmp_path / "ws.onnx", weights, bias, spec=make_spec(tile_size=tile, tile_overlap=overlap)
    )
    model = OnnxModel.load(str(path), "cpu")
    img = np.random.default_rng(3).normal(size=(4, h, w)).astype(np.float32)
    out = sliding_window_inference(img, None, tile, overlap, model.predict, batch_size=2)
    np.testing.assert_allclose(out[0], weighted_sum_reference(img, weights, bias), atol=1e-6)
    assert model.inference_seconds > 0 and model.calls >= 1


@pytest.mark.parametrize(
    "width, tile, overlap, panel, align",
    [
        (1000, 64, 16, 300, 16),
        (40000, 512, 64, 4096, 256),
        (10000, 192, 48, 4096, 256),
        (4800, 192, 48, 4096, 256),
        (777, 50, 7, 100, 8),
        (300, 64, 16, 300, 16),
        (129, 64, 0, 32, 16),
        (60, 64, 16, 16, 8),
    ],
)
def test_panels_partition_the_width(width, tile, overlap, panel, align):
    panels = panel_bounds(width, tile, overlap, panel, align)
    assert panels[0][0] == 0 and panels[-1][1:] == (width, width)
    for (a0, a1, a2), (b0, _, _) in zip(panels, panels[1:]):
        assert a1 == b0 and a0 % align == 0 and b0 % align == 0  # contiguous, block aligned
        assert a2 - a1 == overlap  # tiles reach exactly one overlap into the next panel
    assert all(p2 - p0 >= min(tile, width) for p0, _, p2 in panels)  # a whole tile fits
    if width > panel + tile:
        assert len(panels) > 1


@pytest.mark.parametrize(
    "h, w, tile, overlap, panel, align",
    [
        (37, 200, 16, 4, 40, 8),
        (70, 301, 32, 8, 64, 16),
        (25, 129, 24, 7, 30, 4),
        (64, 1000, 64, 16, 300, 16),
        (9, 97, 8, 0, 16, 8),
        (5, 200, 16, 4, 40, 8),
    ],
)
def test_panels_stitch_exactly_and_write_each_pixel_once(h, w, tile, overlap, panel, align):
    img = np.random.default_rng(h + w).normal(size=(3, h, w)).astype(np.float32)
    valid = np.ones((h, w), bool)
    valid[h // 3, :] = False  # a nodata line crossing every panel
    out = np.full((2, h, w), np.nan, np.float32)
    written = np.zeros((h, w), int)
    order = []

    def read(r0, c0, nr, nc):
        return img[:, r0 : r0 + nr, c0 : c0 + nc], valid[r0 : r0 + nr, c0 : c0 + nc]

    def write(r0, c0, block, v):
        out[:, r0 : r0 + block.shape[1], c0 : c0 + block.shape[2]] = block
        written[r0 : r0 + block.shape[1], c0 : c0 + block.shape[2]] += 1
        order.append((c0, r0))

    stats = sliding_window_stream(
        (h, w),
        tile,
        overlap,
        read,
        per_pixel,
        write,
        out_channels=2,
        batch_size=3,
        nodata=-9.0,
        panel_width=panel,
        panel_align=align,
    )
    assert stats.panels == len(panel_bounds(w, tile, overlap, panel, align)) > 1
    assert (written == 1).all()
    assert order == sorted(order)  # panels left to right, each top to bottom
    assert (
        stats.max_buffer_cols
        <= max(p2 - p0 for p0, _, p2 in panel_bounds(w, tile, overlap, panel, align))
        < w
    )
    expected = per_pixel(img[None])[0]
    np.testing.assert_allclose(out[:, valid], expected[:, valid], rtol=1e-6, atol=1e-6)
    assert (out[:, ~valid] == -9.0).all()


def test_panels_blend_across_panel_edges():
    """A predictor that depends on the tile position: the result must equal the panel-free
    blend of the same tiles, i.e. the overlap at a panel edge is blended, not cut."""
    h, w, tile, overlap = 40, 160, 16, 8
    img = np.zeros((1, h, w), np.float32)

    def by_position(batch):  # a tile's output = its mean input, which differs per tile
        return (
            np.broadcast_to(batch.mean(axis=(1, 2, 3), keepdims=True), batch.shape)
            .astype(np.float32)
            .copy()
        )

    img[0] = np.add.outer(np.arange(h), np.arange(w) ** 1.5).astype(np.float32)
    ref = sliding_window_inference(img, None, tile, overlap, by_position, batch_size=2)
    # panel step 48 is a multiple of the stride 8: the same tiles as without panels
    out = np.zeros_like(ref)

    def write(r0, c0, block, _v):
        out[:, r0 : r0 + block.shape[1], c0 : c0 + block.shape[2]] = block

    stats = sliding_window_stream(
        (h, w),
        tile,
        overlap,
        lambda r, c, nr, nc: (img[:, r : r + nr, c : c + nc], np.ones((nr, nc), bool)),
        by_position,
        write,
        batch_size=2,
        panel_width=48,
        panel_align=16,
    )
    assert stats.panels == 4
    np.testing.assert_allclose(out, ref, rtol=1e-5)
