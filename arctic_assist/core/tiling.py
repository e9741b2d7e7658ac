"""Sliding-window inference with smooth blending, streamed one row of tiles at a time.

numpy only, in the shape of MONAI's ``sliding_window_inference`` / ``dense_patch_slices``
but for rasters of any size: nothing here ever holds more than one row of tiles of one
column panel (about 4096 px wide), so memory does not grow with the raster's width or
height (apart from ``overlap`` columns of blended sums per row at panel edges).

- :func:`tile_starts` / :func:`tile_origins`: tiles of ``tile`` pixels, stride
  ``tile - overlap``, the last tile flush with the edge; a side shorter than a tile gets one
  tile (padded for the model and cropped back).
- :func:`blend_window`: a Hann window with a half-pixel offset (``sin^2(pi (i + 0.5) / n)``,
  every weight > 0) or a tent; predictions are ``sum(w * p) / sum(w)``, so a per-pixel
  predictor is reproduced exactly.
- :func:`sliding_window_stream`: reads a window per batch of tiles through a ``read``
  callback, predicts in batches, accumulates weighted predictions in a buffer one tile
  tall and one panel wide (:func:`panel_bounds`), and hands every finished block to
  ``write`` as soon as no later tile can touch it. Tiles without a single valid pixel are
  skipped (never sent to the predictor); outputs at invalid pixels are ``nodata``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .errors import CanceledError

LOG = logging.getLogger(__name__)

#: read(row0, col0, nrows, ncols) -> (float32 C x nrows x ncols input, bool nrows x ncols valid)
Reader = Callable[[int, int, int, int], tuple[np.ndarray, np.ndarray]]
#: predict(float32 N x C x T x T) -> float32 N x K x T x T
Predictor = Callable[[np.ndarray], np.ndarray]
#: write(row0, col0, float32 K x nrows x ncols output (nodata where invalid), bool valid)
Writer = Callable[[int, int, np.ndarray, np.ndarray], None]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``[0, length)``; the last tile ends at ``length``.

    >>> tile_starts(10, 4, 1)
    [0, 3, 6]
    >>> tile_starts(11, 4, 1)
    [0, 3, 6, 7]
    >>> tile_starts(3, 4, 1)
    [0]
    """
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"need tile > 0 and 0 <= overlap < tile; got {tile}, {overlap}")
    if length <= tile:
        return [0]
    stride = tile - overlap
    n = math.ceil((length - tile) / stride) + 1
    starts = [i * stride for i in range(n - 1)] + [length - tile]
    return sorted(set(starts))


def tile_origins(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(row, col) origins of the tiles covering an ``height`` x ``width`` grid, row-major."""
    return [
        (r, c)
        for r in tile_starts(height, tile, overlap)
        for c in tile_starts(width, tile, overlap)
    ]


def blend_window(tile: int, kind: str = "hann") -> np.ndarray:
    """2-D blending weights (tile x tile, float32), strictly positive everywhere."""
    i = np.arange(tile, dtype=np.float64)
    if kind == "hann":
        w = np.sin(np.pi * (i + 0.5) / tile) ** 2
    elif kind == "tent":
        w = 1.0 - np.abs((i + 0.5) / tile * 2.0 - 1.0)
    elif kind == "constant":
        w = np.ones(tile)
    else:
        raise ValueError(f"unknown blending window '{kind}'")
    w = np.maximum(w, 1e-3)  # keep edge pixels of one-tile-only areas well conditioned
    return np.outer(w, w).astype(np.float32)


def pad_to(
    x: np.ndarray, rows: int, cols: int, mode: str = "reflect", fill: float = 0.0
) -> np.ndarray:
    """Pad the last two axes of ``x`` at the bottom/right up to (rows, cols)."""
    pr, pc = rows - x.shape[-2], cols - x.shape[-1]
    if pr <= 0 and pc <= 0:
        return x
    widths = [(0, 0)] * (x.ndim - 2) + [(0, max(pr, 0)), (0, max(pc, 0))]
    if mode == "reflect" and min(x.shape[-2:]) > 1:
        return np.pad(x, widths, mode="reflect")
    if mode in ("reflect", "edge"):
        return np.pad(x, widths, mode="edge")
    return np.pad(x, widths, mode="constant", constant_values=fill)


@dataclass
class StreamStats:
    """What the engine did: tiles predicted / skipped, rows written, panels."""

    tiles_run: int = 0
    tiles_skipped: int = 0
    rows_written: int = 0
    max_buffer_rows: int = 0
    panels: int = 0
    max_buffer_cols: int = 0
    #: seconds in the main thread outside ``predict`` and waits: batching, padding, the
    #: weighted accumulation and the final division (the blending)
    blend_seconds: float = 0.0


#: target width of a column panel; wider grids are processed panel by panel
PANEL_WIDTH = 4096
#: panel starts are multiples of this (the 256 px blocks of the GeoTIFFs we write)
PANEL_ALIGN = 256


def panel_bounds(
    width: int,
    tile: int,
    overlap: int,
    panel_width: int | None = PANEL_WIDTH,
    align: int = PANEL_ALIGN,
) -> list[tuple[int, int, int]]:
    """Column panels ``(start, end, tiles_end)`` of a grid ``width`` pixels wide.

    Panel k owns the output columns ``[start, end)`` (the panels partition ``[0, width)``)
    and its tiles cover ``[start, tiles_end)``: ``overlap`` columns into the next panel, so
    the two panels' tiles overlap there exactly as neighbouring tiles do. Starts are
    multiples of ``align`` and the panel step is a multiple of the tile stride where that
    stays near ``panel_width``, so panel tiles sit on the same grid as without panels. The
    last panel is at least one tile wide. ``panel_width`` None or 0: one panel.

    >>> panel_bounds(1000, 64, 16, panel_width=300, align=16)
    [(0, 288, 304), (288, 576, 592), (576, 864, 880), (864, 1000, 1000)]
    """
    stride = tile - overlap
    if not panel_width or width <= panel_width:
        return [(0, width, width)]
    unit = math.lcm(align, stride)
    if unit <= 2 * panel_width:
        step = max(1, round(panel_width / unit)) * unit
    else:  # tiles will not land on the stride grid at every panel; harmless
        step = max(-(-panel_width // align), -(-stride // align)) * align
    panels, start = [], 0
    while width - start - step >= tile:
        panels.append((start, start + step, start + step + overlap))
        start += step
    panels.append((start, width, width))
    return panels


def sliding_window_stream(
    shape: tuple[int, int],
    tile: int,
    overlap: int,
    read: Reader,
    predict: Predictor,
    write: Writer,
    *,
    out_channels: int = 1,
    batch_size: int = 4,
    window: str = "hann",
    nodata: float = -1.0,
    pad_mode: str = "reflect",
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    prefetch: bool = True,
    panel_width: int | None = PANEL_WIDTH,
    panel_align: int = PANEL_ALIGN,
) -> StreamStats:
    """Run ``predict`` over an H x W grid in overlapping tiles and stream blended output.

    The grid is cut into column panels (:func:`panel_bounds`) processed one after the
    other, each top to bottom in rows of tiles, so the buffers are one tile row high and one
    panel wide whatever the raster size; the only buffer that grows with the raster is the
    blended sum of the ``overlap`` columns a panel's tiles reach into the next one (H x
    overlap x K float32: 10 MB for 40 000 rows, 64 px, one channel).

    ``read`` is called once per batch of tiles with the window spanning the batch (so
    overlapping tiles are not read twice horizontally); ``write(row0, col0, block, valid)``
    receives every output pixel exactly once, in blocks of whole panel width: within a panel
    top to bottom, panels left to right. Progress is reported in percent of tiles done
    (0..100); ``is_canceled`` is polled before every batch and raises
    :class:`CanceledError`. With ``prefetch`` (default) the next batch is read and stacked
    into the predictor's input, and finished rows are written, in worker threads while the
    predictor runs (the calling thread only predicts and blends); ``read`` and ``write`` are
    never called concurrently with themselves, and ``write`` still receives the blocks in
    order.
    """
    height, width = shape
    if height <= 0 or width <= 0:
        raise ValueError(f"empty grid {shape}")
    batch_size = max(1, int(batch_size))
    th, tw = min(tile, height), min(tile, width)
    row_starts = tile_starts(height, tile, overlap)
    panels = panel_bounds(width, tile, overlap, panel_width, panel_align)
    panel_cols = [[p0 + c for c in tile_starts(p2 - p0, tile, overlap)] for p0, _, p2 in panels]
    # a grid side shorter than a tile: the tile's own window, cropped like the output
    weights = np.ascontiguousarray(blend_window(tile, window)[:th, :tw])
    n_total = len(row_starts) * sum(len(c) for c in panel_cols)
    span = max(p2 - p0 for p0, _, p2 in panels)
    stats = StreamStats(max_buffer_rows=th, panels=len(panels), max_buffer_cols=span)

    # The window is separable, w(i, j) = a(i) a(j), so the sum of the weights of all tiles
    # covering a pixel is (sum over tile rows of a) x (sum over tile columns of a): one row
    # and one column vector instead of a second buffer. Skipped tiles hold no valid pixel,
    # so leaving them in the sum changes no valid output.
    a_row = weights[:, 0] / weights[0, 0] * np.sqrt(weights[0, 0])
    a_col = weights[0, :] / weights[0, 0] * np.sqrt(weights[0, 0])
    col_sum = np.zeros(width, dtype=np.float64)
    for cols in panel_cols:
        for c0 in cols:
            col_sum[c0 : c0 + tw] += a_col
    row_sum = np.zeros(height + th, dtype=np.float64)
    for r0 in row_starts:
        row_sum[r0 : r0 + th] += a_row
    col_sum32, row_sum32 = col_sum.astype(np.float32), row_sum.astype(np.float32)
    acc = np.zeros((out_channels, th, span), dtype=np.float32)
    weighted = np.empty((out_channels, th, tw), dtype=np.float32)
    valid_buf = np.zeros((th, span), dtype=bool)
    # weighted sums of the columns a panel's tiles reach into the next panel, all rows
    spill = max(p2 - p1 for _, p1, p2 in panels)
    carry = np.zeros((out_channels, height if len(panels) > 1 else 0, spill), dtype=np.float32)
    done = 0

    def check_cancel() -> None:
        if is_canceled is not None and is_canceled():
            raise CanceledError()

    # batches in order; the read of batch i+1 runs in a thread while batch i is predicted,
    # and finished rows are written by another thread (GDAL releases the GIL), so reading,
    # normalising, compressing and writing overlap with onnxruntime
    batches = [
        (pi, ri, cols[b0 : b0 + batch_size])
        for pi, cols in enumerate(panel_cols)
        for ri in range(len(row_starts))
        for b0 in range(0, len(cols), batch_size)
    ]

    def load(i: int) -> tuple[np.ndarray, list[int], np.ndarray | None]:
        """Batch ``i`` ready for the predictor (in the prefetch thread): the window's
        validity, the columns of the tiles to run and their stacked input (None if none)."""
        _, ri, cols = batches[i]
        c_lo, c_hi = cols[0], cols[-1] + tw
        data, valid = read(row_starts[ri], c_lo, th, c_hi - c_lo)
        if data.shape[-2:] != (th, c_hi - c_lo) or valid.shape != (th, c_hi - c_lo):
            raise ValueError(
                f"reader returned {data.shape}/{valid.shape} for a {th} x {c_hi - c_lo} window"
            )
        run_cols = [c0 for c0 in cols if valid[:, c0 - c_lo : c0 - c_lo + tw].any()]
        if not run_cols:
            return valid, run_cols, None
        batch = np.empty((len(run_cols), data.shape[0], tile, tile), dtype=np.float32)
        for k, c0 in enumerate(run_cols):
            x = data[:, :, c0 - c_lo : c0 - c_lo + tw]
            batch[k] = pad_to(x, tile, tile, pad_mode) if (th, tw) != (tile, tile) else x
        return valid, run_cols, batch

    pool = ThreadPoolExecutor(max_workers=2) if prefetch else None
    pending_read: Future | None = None
    pending_writes: list[Future] = []
    try:
        if pool is not None:
            pending_read = pool.submit(load, 0)
        for i, (pi, ri, cols) in enumerate(batches):
            check_cancel()
            r0 = row_starts[ri]
            p0, p1, p2 = panels[pi]
            if pool is not None:
                valid, run_cols, batch = pending_read.result()  # type: ignore[union-attr]
                pending_read = pool.submit(load, i + 1) if i + 1 < len(batches) else None
            else:
                valid, run_cols, batch = load(i)
            t_blend = time.perf_counter()
            c_lo, c_hi = cols[0], cols[-1] + tw
            valid_buf[:, c_lo - p0 : c_hi - p0] |= valid
            stats.tiles_skipped += len(cols) - len(run_cols)
            if batch is not None:
                stats.blend_seconds += time.perf_counter() - t_blend
                out = np.asarray(predict(batch), dtype=np.float32)
                t_blend = time.perf_counter()
                if (
                    out.shape[0] != len(run_cols)
                    or out.shape[1] != out_channels
                    or out.shape[2] < th
                    or out.shape[3] < tw
                ):
                    raise ValueError(
                        f"predictor returned shape {out.shape} for input {batch.shape}; "
                        f"expected ({len(run_cols)}, {out_channels}, {tile}, {tile})"
                    )
                for k, c0 in enumerate(run_cols):
                    np.multiply(out[k, :, :th, :tw], weights, out=weighted)
                    acc[:, :, c0 - p0 : c0 - p0 + tw] += weighted
                stats.tiles_run += len(run_cols)
            done += len(cols)
            stats.blend_seconds += time.perf_counter() - t_blend
            if progress is not None:
                progress(100.0 * done / n_total)
            if i + 1 < len(batches) and batches[i + 1][:2] == (pi, ri):
                continue
            t_blend = time.perf_counter()
            # end of a tile row: rows [r0, next_r0) of the panel's own columns are final (no
            # later tile of this panel starts above; the previous panel's share is in carry)
            last = ri == len(row_starts) - 1
            n_final = th if last else row_starts[ri + 1] - r0
            block = acc[:, :n_final, : p1 - p0].copy()
            if pi > 0:
                prev_spill = panels[pi - 1][2] - p0
                block[:, :, :prev_spill] += carry[:, r0 : r0 + n_final, :prev_spill]
            if p2 > p1:
                carry[:, r0 : r0 + n_final, : p2 - p1] = acc[:, :n_final, p1 - p0 : p2 - p0]
            block, vblock = _finish(
                block,
                row_sum32[r0 : r0 + n_final],
                col_sum32[p0:p1],
                valid_buf[:n_final, : p1 - p0],
                nodata,
            )
            stats.blend_seconds += time.perf_counter() - t_blend
            for f in pending_writes:  # keep at most one write in flight (bounded memory)
                f.result()
            pending_writes = []
            if pool is not None:
                pending_writes.append(pool.submit(write, r0, p0, block, vblock))
            else:
                write(r0, p0, block, vblock)
            if pi == 0:
                stats.rows_written += n_final
            t_blend = time.perf_counter()
            if last:  # the next panel starts with empty buffers
                acc[:] = 0.0
                valid_buf[:] = False
            else:
                keep = th - n_final
                acc[:, :keep] = acc[:, n_final:]
                valid_buf[:keep] = valid_buf[n_final:]
                acc[:, keep:] = 0.0
                valid_buf[keep:] = False
            stats.blend_seconds += time.perf_counter() - t_blend
        for f in pending_writes:
            f.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if stats.rows_written != height:  # pragma: no cover - guarded by tile_starts
        raise RuntimeError(f"wrote {stats.rows_written} rows of {height}")
    return stats


def _finish(
    block: np.ndarray, row_w: np.ndarray, col_w: np.ndarray, valid: np.ndarray, nodata: float
) -> tuple[np.ndarray, np.ndarray]:
    """The blended output of a block of weighted sums (in place; nodata where invalid).

    The weight sum is ``row_w[i] * col_w[j]`` (separable; every pixel lies in a tile and
    the window is strictly positive, so it is never 0): divided by one vector, then the
    other, so no weight matrix is built.
    """
    v = valid.copy()  # the buffer is shifted while the block is written
    block /= row_w[None, :, None]
    block /= col_w[None, None]
    block[:, ~v] = nodata
    return block, v


def sliding_window_inference(
    image: np.ndarray,
    valid: np.ndarray | None,
    tile: int,
    overlap: int,
    predict: Predictor,
    *,
    out_channels: int = 1,
    batch_size: int = 4,
    window: str = "hann",
    nodata: float = -1.0,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> np.ndarray:
    """In-memory convenience wrapper of :func:`sliding_window_stream` (C x H x W -> K x H x W)."""
    _, height, width = image.shape
    if valid is None:
        valid = np.ones((height, width), dtype=bool)
    out = np.full((out_channels, height, width), nodata, dtype=np.float32)

    def read(r0: int, c0: int, nr: int, nc: int) -> tuple[np.ndarray, np.ndarray]:
        return image[:, r0 : r0 + nr, c0 : c0 + nc], valid[r0 : r0 + nr, c0 : c0 + nc]

    def write(r0: int, c0: int, block: np.ndarray, _v: np.ndarray) -> None:
        out[:, r0 : r0 + block.shape[1], c0 : c0 + block.shape[2]] = block

    sliding_window_stream(
        (height, width),
        tile,
        overlap,
        read,
        predict,
        write,
        out_channels=out_channels,
        batch_size=batch_size,
        window=window,
        nodata=nodata,
        progress=progress,
        is_canceled=is_canceled,
    )
    return out
