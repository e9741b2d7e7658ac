"""core.components against a plain flood fill: labels, holes filled on the runs, and the
labelled runs of a box of the filled mask."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from arctic_assist.core.components import fill_holes, label_filled, label_runs


def flood(mask: np.ndarray, connectivity: int) -> np.ndarray:
    """Labels 1..n of the components of ``mask``, numbered in row-major order of their
    first pixel, by breadth-first search (the reference)."""
    h, w = mask.shape
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    lab = np.zeros((h, w), np.int64)
    n = 0
    for r in range(h):
        for c in range(w):
            if not mask[r, c] or lab[r, c]:
                continue
            n += 1
            lab[r, c] = n
            todo = deque([(r, c)])
            while todo:
                y, x = todo.popleft()
                for dy, dx in steps:
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not lab[yy, xx]:
                        lab[yy, xx] = n
                        todo.append((yy, xx))
    return lab


def filled_reference(mask: np.ndarray, valid: np.ndarray, max_pixels: int) -> np.ndarray:
    """Background components (8-connected) under ``max_pixels`` touching neither the
    border nor an invalid pixel, filled."""
    holes = flood(~mask, 8)
    out = mask.copy()
    for k in range(1, holes.max() + 1):
        where = holes == k
        rows, cols = np.nonzero(where)
        border = rows.min() == 0 or cols.min() == 0
        border |= rows.max() == mask.shape[0] - 1 or cols.max() == mask.shape[1] - 1
        if where.sum() < max_pixels and not border and valid[where].all():
            out |= where
    return out


def painted(runs) -> np.ndarray:
    return runs.paint(np.arange(1, runs.n + 1))


@pytest.mark.parametrize("connectivity", [4, 8])
def test_labels_match_a_flood_fill(connectivity):
    rng = np.random.default_rng(5)
    for _ in range(60):
        h, w = rng.integers(1, 30, 2)
        mask = rng.random((h, w)) < rng.uniform(0.1, 0.9)
        assert np.array_equal(painted(label_runs(mask, connectivity)), flood(mask, connectivity))


def test_holes_filled_on_the_runs_match_a_flood_fill():
    rng = np.random.default_rng(6)
    filled_some = 0
    for i in range(120):
        h, w = rng.integers(1, 30, 2)
        mask = rng.random((h, w)) < rng.uniform(0.3, 0.95)
        valid = rng.random((h, w)) > (0.04 if i % 2 else 0.0)
        mask &= valid
        n = int(rng.integers(2, 25))
        ref = filled_reference(mask, valid, n)
        filled_some += int((ref != mask).any())
        assert np.array_equal(fill_holes(mask, valid, n), ref)
        # a box of the filled mask, labelled: the same runs straight from label_filled
        r0, r1 = sorted(rng.integers(0, h + 1, 2))
        c0, c1 = sorted(rng.integers(0, w + 1, 2))
        if r1 > r0 and c1 > c0:
            got = label_filled(mask, valid, n, (r0, r1, c0, c1))
            assert got.shape == (r1 - r0, c1 - c0)
            assert np.array_equal(painted(got), flood(ref[r0:r1, c0:c1], 4))
    assert filled_some > 40  # the cases do fill holes


def test_nothing_to_fill():
    mask = np.zeros((5, 6), bool)
    valid = np.ones_like(mask)
    assert not fill_holes(mask, valid, 10).any()
    assert label_filled(mask, valid, 10).n == 0
    full = ~mask
    assert fill_holes(full, valid, 10).all()
    assert label_filled(full, valid, 10).n == 1
