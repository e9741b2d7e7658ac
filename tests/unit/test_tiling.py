"""Streaming sliding-window inference: coverage, blending weights, exact stitching."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_factory import make_spec, weighted_sum_model, weighted_sum_reference

from arctic_assist.core.errors import CanceledError
from arctic_assist.core.onnx_model import OnnxModel
from arctic_assist.core.tiling import (
    blend_window,
    sliding_window_inference,
    sliding_window_stream,
    tile_origins,
    tile_starts,
)

SHAPES = [(37, 53, 16, 4), (64, 64, 16, 8), (100, 7, 32, 8), (5, 9, 32, 8), (33, 32, 32, 0),
          (97, 131, 24, 7), (1, 1, 8, 2), (250, 61, 64, 48)]


@pytest.mark.parametrize("length, tile, overlap", [
    (10, 4, 1), (11, 4, 1), (3, 4, 1), (4, 4, 0), (1000, 192, 48), (193, 192, 48), (1, 8, 2)])
def test_tile_starts_cover_and_end_flush(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0
    assert starts == sorted(set(starts))
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + tile] = True
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
    out = sliding_window_inference(img, None, tile, overlap, per_pixel, out_channels=2,
                                   batch_size=3, window=window)
    np.testing.assert_allclose(out, per_pixel(img[None])[0], rtol=1e-6, atol=1e-6)


def test_streaming_contract_rows_once_in_order_and_bounded_reads():
    h, w, tile, overlap = 203, 170, 32, 8
    img = np.random.default_rng(1).normal(size=(2, h, w)).astype(np.float32)
    reads, writes, seen = [], [], []

    def read(r0, c0, nr, nc):
        reads.append((r0, c0, nr, nc))
        return img[:, r0:r0 + nr, c0:c0 + nc], np.ones((nr, nc), bool)

    def predict(batch):
        seen.append(batch.shape)
        return batch[:, :1] * 2.0

    def write(r0, block, valid):
        writes.append((r0, block.shape[1]))

    progress = []
    stats = sliding_window_stream((h, w), tile, overlap, read, predict, write, batch_size=2,
                                  progress=progress.append)
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
        (h, w), tile, overlap, lambda r, c, nr, nc: (img[:, r:r + nr, c:c + nc],
                                                    valid[r:r + nr, c:c + nc]),
        predict, lambda *a: None)
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
        sliding_window_inference(img, None, 16, 4, predict, batch_size=1,
                                 is_canceled=is_canceled)
    assert len(calls) == 2


def test_bad_predictor_shape_is_reported():
    img = np.zeros((1, 20, 20), np.float32)
    with pytest.raises(ValueError, match="predictor returned shape"):
        sliding_window_inference(img, None, 8, 2, lambda b: b[:, :, :4, :4])


@pytest.mark.parametrize("h, w, tile, overlap", [(70, 90, 32, 8), (20, 25, 32, 8),
                                                 (65, 33, 16, 5)])
def test_onnx_per_pixel_graph_stitches_exactly(tmp_path, h, w, tile, overlap):
    weights, bias = [0.8, -1.1, 0.3, 0.5], 0.2
    path = weighted_sum_model(tmp_path / "ws.onnx", weights, bias,
                              spec=make_spec(tile_size=tile, tile_overlap=overlap))
    model = OnnxModel.load(str(path), "cpu")
    img = np.random.default_rng(3).normal(size=(4, h, w)).astype(np.float32)
    out = sliding_window_inference(img, None, tile, overlap, model.predict, batch_size=2)
    np.testing.assert_allclose(out[0], weighted_sum_reference(img, weights, bias), atol=1e-6)
    assert model.inference_seconds > 0 and model.calls >= 1
