"""Connected components and the clean-up of a binary segmentation mask (numpy only).

No scipy: inference needs only numpy and onnxruntime. Components are found on runs (the
horizontal stretches of foreground in each row), so the work is proportional to the number
of pixels for the run finding and to the number of runs for the rest:

- :func:`label`: labels 1..n of the 4- or 8-connected components of a boolean mask, in
  row-major order of their first pixel (0 = background); runs in consecutive rows that
  touch are joined by a vectorised union-find (hooking roots to the smaller root, then
  pointer jumping), so a long snake costs a few passes, not one per pixel;
- :func:`majority_filter`: the median of a binary mask over a ``size`` x ``size`` window,
  counting valid pixels only (a pixel is kept when more than half of its valid neighbours
  are foreground);
- :func:`fill_holes`: background components (8-connected, the dual of 4-connected
  foreground) with fewer than ``max_pixels`` pixels that touch neither the array's border
  nor an invalid pixel become foreground; found on the runs too (the background runs are
  the gaps between the foreground runs), and :func:`label_filled` labels the filled runs
  directly, so the vectoriser scans a window's pixels once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Runs:
    """The runs of a mask and their component: ``row``, ``start``, ``end`` (exclusive) and
    ``comp`` (0..n-1) per run, in row-major order; ``shape`` of the mask."""

    shape: tuple[int, int]
    row: np.ndarray
    start: np.ndarray
    end: np.ndarray
    comp: np.ndarray
    n: int

    @property
    def length(self) -> np.ndarray:
        return self.end - self.start

    def flat_start(self) -> np.ndarray:
        return self.row * self.shape[1] + self.start

    def counts(self) -> np.ndarray:
        """Pixels per component."""
        return np.bincount(self.comp, weights=self.length, minlength=self.n).astype(np.int64)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Sum of ``values`` (same shape as the mask) over each component (float64)."""
        if self.n == 0:
            return np.zeros(0)
        fs = self.flat_start()
        idx = np.empty(2 * fs.size, dtype=np.int64)
        idx[0::2] = fs
        idx[1::2] = fs + self.length
        flat = np.ascontiguousarray(values).ravel()
        if idx[-1] == flat.size:  # reduceat needs indices < size: drop the last end
            per_run = np.add.reduceat(flat, idx[:-1], dtype=np.float64)[0::2]
        else:
            per_run = np.add.reduceat(flat, idx, dtype=np.float64)[0::2]
        return np.bincount(self.comp, weights=per_run, minlength=self.n)

    def paint(
        self,
        values: np.ndarray,
        select: np.ndarray | None = None,
        dtype: type = np.int32,
        box: tuple[int, int, int, int] | None = None,
    ) -> np.ndarray:
        """An image holding ``values[comp]`` on the runs (of the components where ``select``
        is True, when given) and 0 elsewhere; only rows ``[r0, r1)`` and columns
        ``[c0, c1)`` of it when ``box`` is given (the selected runs must lie inside)."""
        h, w = self.shape
        r0 = c0 = 0
        if box is not None:
            r0, r1, c0, c1 = box
            h, w = r1 - r0, c1 - c0
        v = np.asarray(values, dtype=dtype)[self.comp]
        fs = (self.row - r0) * w + (self.start - c0)
        fe = fs + self.length
        if select is not None:
            keep = select[self.comp]
            v, fs, fe = v[keep], fs[keep], fe[keep]
        delta = np.zeros(h * w + 1, dtype=dtype)
        delta[fs] += v  # starts are distinct, and so are ends
        delta[fe] -= v
        return np.cumsum(delta[:-1], dtype=dtype).reshape(h, w)

    def edge_labels(self, side: str) -> np.ndarray:
        """Component + 1 (0 = background) of each pixel of one edge of the mask: ``top``,
        ``bottom`` (a row), ``left``, ``right`` (a column)."""
        h, w = self.shape
        if side in ("left", "right"):
            out = np.zeros(h, dtype=np.int64)
            sel = self.start == 0 if side == "left" else self.end == w
            out[self.row[sel]] = self.comp[sel] + 1
            return out
        r = 0 if side == "top" else h - 1
        sel = self.row == r
        out = np.zeros(w + 1, dtype=np.int64)
        out[self.start[sel]] += self.comp[sel] + 1
        out[self.end[sel]] -= self.comp[sel] + 1
        return np.cumsum(out[:-1])


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, start, end) of the runs of ``mask``, end exclusive, row-major order."""
    h, w = mask.shape
    k = w + 2
    pad = np.zeros((h, k), dtype=np.int8)
    pad[:, 1:-1] = mask
    # every row is padded with background, so its changes alternate: start, end, ...
    change = np.flatnonzero(np.diff(pad.ravel())) + 1
    starts, ends = change[0::2], change[1::2]
    row = starts // k
    return row, starts - row * k - 1, ends - row * k - 1


def _union_find(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Root (smallest member) of every node of a graph with edges (u, v)."""
    lab = np.arange(n, dtype=np.int64)
    while u.size:
        lu, lv = lab[u], lab[v]
        ne = lu != lv
        if not ne.any():
            break
        u, v, lu, lv = u[ne], v[ne], lu[ne], lv[ne]
        np.minimum.at(lab, np.maximum(lu, lv), np.minimum(lu, lv))  # hook roots
        while True:  # pointer jumping until every node points at its root
            nxt = lab[lab]
            if np.array_equal(nxt, lab):
                break
            lab = nxt
    return lab


def connected_roots(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Component index 0..m-1 of each of ``n`` nodes joined by the edges (u, v); components
    are numbered in the order of their smallest node."""
    lab = _union_find(n, np.asarray(u, np.int64), np.asarray(v, np.int64))
    is_root = lab == np.arange(n)
    return (np.cumsum(is_root) - 1)[lab]


def label_runs(mask: np.ndarray, connectivity: int = 4) -> Runs:
    """The runs of a 2-D mask with their connected component (see :class:`Runs`)."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8; got {connectivity}")
    mask = np.asarray(mask, dtype=bool)
    return _label(mask.shape, *_runs(mask), connectivity)


def _label(
    shape: tuple[int, int], row: np.ndarray, s: np.ndarray, e: np.ndarray, connectivity: int
) -> Runs:
    """:class:`Runs` of the runs ``(row, s, e)`` (row-major order) with their components."""
    h, w = shape
    n_runs = row.size
    if n_runs == 0:
        return Runs((h, w), row, s, e, np.zeros(0, np.int64), 0)
    k = w + 2
    key_s, key_e = row * k + s, row * k + e
    ext = 0 if connectivity == 4 else 1
    up = (row - 1) * k
    # runs of the row above that touch run b: [lo, hi) in the run order
    lo = np.searchsorted(key_e, up + s - ext, side="right")
    hi = np.searchsorted(key_s, up + e + ext, side="left")
    cnt = np.maximum(hi - lo, 0)
    total = int(cnt.sum())
    b = np.repeat(np.arange(n_runs), cnt)
    a = np.repeat(lo, cnt) + (np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    comp = connected_roots(n_runs, a, b)
    return Runs((h, w), row, s, e, comp, int(comp.max()) + 1)


def label(mask: np.ndarray, connectivity: int = 4) -> tuple[np.ndarray, int]:
    """Labels (int32, 1..n, 0 = background) of the connected components of a 2-D mask."""
    runs = label_runs(mask, connectivity)
    return runs.paint(np.arange(1, runs.n + 1)), runs.n


def box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum of ``a`` over the (2r+1) x (2r+1) window around each pixel (zeros outside)."""
    p = np.pad(a.astype(np.int32), ((r + 1, r), (r + 1, r)))
    c = p.cumsum(axis=0, dtype=np.int32).cumsum(axis=1, dtype=np.int32)
    n = 2 * r + 1
    return c[n:, n:] - c[:-n, n:] - c[n:, :-n] + c[:-n, :-n]


def majority_filter(mask: np.ndarray, valid: np.ndarray, size: int) -> np.ndarray:
    """Binary median over ``size`` x ``size`` (odd) windows of valid pixels; invalid stay 0."""
    if size <= 1:
        return mask & valid
    if size % 2 == 0:
        raise ValueError(f"the filter size must be odd; got {size}")
    r = size // 2
    fg = box_sum(mask & valid, r)
    nv = box_sum(valid, r)
    return (2 * fg > nv) & valid


def fill_holes(mask: np.ndarray, valid: np.ndarray, max_pixels: int) -> np.ndarray:
    """``mask`` with its holes of fewer than ``max_pixels`` pixels filled (see module doc)."""
    mask = np.asarray(mask, dtype=bool)
    if max_pixels <= 1:
        return mask
    row, s, e = _filled(mask.shape, *_runs(mask), valid, max_pixels)
    runs = Runs(mask.shape, row, s, e, np.zeros(row.size, np.int64), 1)
    return runs.paint(np.ones(1, np.int8), dtype=np.int8).astype(bool)


def label_filled(
    mask: np.ndarray,
    valid: np.ndarray,
    max_pixels: int,
    box: tuple[int, int, int, int] | None = None,
) -> Runs:
    """``label_runs(fill_holes(mask, valid, max_pixels)[r0:r1, c0:c1], 4)`` for ``box`` =
    (r0, r1, c0, c1) (default: all), with the holes filled on the runs: the mask's pixels
    are scanned once."""
    mask = np.asarray(mask, dtype=bool)
    shape = mask.shape
    row, s, e = _runs(mask)
    if max_pixels > 1:
        row, s, e = _filled(shape, row, s, e, valid, max_pixels)
    if box is not None:
        r0, r1, c0, c1 = box
        s, e = np.maximum(s, c0), np.minimum(e, c1)
        keep = (row >= r0) & (row < r1) & (s < e)
        row, s, e = row[keep] - r0, s[keep] - c0, e[keep] - c0
        shape = (r1 - r0, c1 - c0)
    return _label(shape, row, s, e, 4)


def _filled(
    shape: tuple[int, int],
    row: np.ndarray,
    s: np.ndarray,
    e: np.ndarray,
    valid: np.ndarray,
    max_pixels: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs ``(row, s, e)`` of a mask with its holes of fewer than ``max_pixels`` pixels
    filled: the background runs are the gaps between them (row by row: before the first
    run, between runs, after the last), labelled 8-connected; a small one touching
    neither the border nor an invalid pixel joins the runs on its both sides."""
    h, w = shape
    n = row.size
    # row r's gaps, in order: [0, s_0), [e_0, s_1), ..., [e_last, w): one more than its runs.
    # In the sequence gap, run, gap, ..., gap of all rows ("slots"), run i is slot
    # 2 i + row_i + 1 and the gap before it slot 2 i + row_i
    per_row = np.bincount(row, minlength=h)
    first_gap = np.arange(h) + np.concatenate(([0], np.cumsum(per_row)[:-1]))
    run_i = np.arange(n)
    gs = np.empty(n + h, np.int64)
    ge = np.empty(n + h, np.int64)
    gs[first_gap] = 0
    gs[run_i + row + 1] = e
    ge[run_i + row] = s
    ge[first_gap + per_row] = w
    grow = np.repeat(np.arange(h), per_row + 1)
    gap_slot = 2 * np.arange(n + h) - grow
    some = np.flatnonzero(gs < ge)  # empty gaps: a run at the row's start or end
    holes = _label(shape, grow[some], gs[some], ge[some], 8)
    fill = holes.counts() < max_pixels
    border = (holes.row == 0) | (holes.row == h - 1) | (holes.start == 0) | (holes.end == w)
    fill[holes.comp[border]] = False
    if fill.any() and not np.all(valid):
        fill[holes.sums(~np.asarray(valid, dtype=bool)) > 0] = False
    if not fill.any():
        return row, s, e
    run_slot = 2 * run_i + row + 1
    on = np.zeros(2 * n + h, bool)
    on[run_slot] = True
    on[gap_slot[some[fill[holes.comp]]]] = True
    start = np.empty(2 * n + h, np.int64)
    end = np.empty(2 * n + h, np.int64)
    start[run_slot], end[run_slot] = s, e
    start[gap_slot], end[gap_slot] = gs, ge
    slot_row = np.empty(2 * n + h, np.int64)
    slot_row[run_slot] = row
    # a row's first and last gaps touch the border, never filled: rows never merge, and a
    # merged run starts and ends with a run (a filled gap has a run on both sides)
    first = np.flatnonzero(on[1:-1] & ~on[:-2]) + 1
    last = np.flatnonzero(on[1:-1] & ~on[2:]) + 1
    return slot_row[first], start[first], end[last]
