"""Polygon outlines of labelled 4-connected regions, traced in numpy (no per-pixel or
per-polygon Python).

:func:`outline` takes an integer image whose non-zero values label 4-connected regions
(each label one region, as :func:`~arctic_assist.core.components.label_runs` makes them)
and returns every region's rings along the pixel edges, with a vertex only where the
outline turns: what ``gdal.Polygonize`` returns, without building a polygon object per
region. How:

1. every grid point (pixel corner) is looked at with its 2 x 2 pixels; a pixel's corner
   is a vertex of its region's outline where both pixels beside it (sharing an edge with
   it) belong to other regions (a convex corner), or both belong to its region and the
   diagonal one does not (a concave corner; the 2 x 2 as a 10-bit pattern, which pairs
   are equal and which pixels are foreground, looked up in a table). A vertex's vertical
   edge has its region on one side of the vertical grid line, its horizontal edge on one
   side of the horizontal line;
2. on one side of one grid line the edges of all regions are disjoint, so the vertices
   sorted along it pair up into edges (one stable sort by line, by radix: the vertices
   come in row-major order, already along each line);
   walking with the region on the left (rows down), each vertex leaves along one of its
   two edges: that gives every vertex its successor, and the rings are the cycles;
3. rings alternate vertical and horizontal edges, so the cycles are found among every
   other vertex, by pointer jumping: each vertex learns the smallest vertex of its cycle
   and how far ahead it is in a few doubling passes, a region's vertices dropped from
   the passes (and the arrays) as soon as their count says their cycles are done;
4. the sign of a ring's area tells the outer ring (one per region) from the holes.

Where two pixels of the *same* region touch only at a corner (the region reaches around
and meets itself diagonally), the outline passes that point turning around the two
other pixels: the outer ring and a hole, or two holes, touch there, a valid polygon
(OGC simple features), as ``gdal.Polygonize`` makes it (turning around the region's own
pixels would make a ring that touches itself). Checked against ``gdal.Polygonize`` on
random masks in ``tests/unit/test_outline.py``: the same polygons, rings and vertices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Outline:
    """The rings of the traced regions, in order: region by region (ascending label), the
    outer ring first, then its holes. ``x``, ``y``: vertex coordinates in pixel units
    (column, row of the grid point; the image's top-left corner is 0, 0), ring after ring,
    each ring listed once (not closed), counter-clockwise in map coordinates for a north-up
    geotransform (outer rings; holes the other way). ``ring_start``: the rings' first
    vertices, with the total appended; ``labels``: the regions, ascending;
    ``region_start``: each region's first ring, with the ring count appended."""

    x: np.ndarray
    y: np.ndarray
    ring_start: np.ndarray
    labels: np.ndarray
    region_start: np.ndarray

    @property
    def ring_sizes(self) -> np.ndarray:
        return np.diff(self.ring_start)


# (the pixel, its two edge neighbours, its diagonal) by position around a grid point
# (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right), and the position's side:
# SY: the pixel is above (-1) or below (+1) the point; SX: left (-1) or right (+1)
_POSITIONS = ((0, 1, 2, 3), (1, 0, 3, 2), (2, 3, 0, 1), (3, 2, 1, 0))
_SY = np.array([-1, -1, 1, 1], np.int8)
_SX = np.array([-1, 1, -1, 1], np.int8)


def _corner_table() -> np.ndarray:
    """For each 10-bit pattern of a grid point's 2 x 2 labels (which pairs are equal,
    which pixels are foreground; see :func:`_vertices`) and each position: bit 0, the
    pixel there has a vertex at the point; bit 1, it is convex; bit 2, a pinch (convex
    with the diagonal pixel in the same region)."""
    table = np.zeros((1024, 4), np.uint8)
    pairs = {(0, 1): 0, (0, 2): 1, (0, 3): 2, (1, 2): 3, (1, 3): 4, (2, 3): 5}
    for code in range(1024):

        def same(i: int, j: int, code: int = code) -> bool:
            return bool(code >> pairs[(min(i, j), max(i, j))] & 1)

        for ip, i1, i2, iq in _POSITIONS:
            if not code >> (6 + ip) & 1:  # background
                continue
            e1, e2, eq = same(ip, i1), same(ip, i2), same(ip, iq)
            convex = not (e1 or e2)
            if convex or (e1 and e2 and not eq):
                table[code, ip] = 1 | convex << 1 | (convex and eq) << 2
    return table


_CORNERS = _corner_table()


def _vertices(lab: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every vertex, grid point by grid point in row-major order and by position within
    a point: row, column of its grid point, label, position, convex, pinch."""
    h, w = lab.shape
    wp = w + 2
    pad = np.zeros((h + 2, wp), np.int32)
    pad[1:-1, 1:-1] = lab
    flat = pad.ravel()
    # a point can be a vertex only where the 2 x 2 changes both across and down: point i
    # (flat index of its top-left pixel in ``pad``) has a, b = flat[i], flat[i + 1] above
    # and c, d = flat[i + wp], flat[i + wp + 1] below (points of the last padding column
    # compare zeros only: never)
    n = (h + 1) * wp - 1
    across = flat[:-1] != flat[1:]
    down = flat[:-wp] != flat[wp:]
    at = np.flatnonzero((across[:n] | across[wp : n + wp]) & (down[:n] | down[1 : n + 1]))
    gy, gx = np.divmod(at, wp)
    quad = np.empty((4, at.size), np.int32)
    np.take(flat, at, out=quad[0])
    np.take(flat, at + 1, out=quad[1])
    np.take(flat, at + wp, out=quad[2])
    np.take(flat, at + (wp + 1), out=quad[3])
    qa, qb, qc, qd = quad
    code = (qa == qb).astype(np.int16)
    for bit, (u, v) in enumerate(((qa, qc), (qa, qd), (qb, qc), (qb, qd), (qc, qd)), 1):
        code |= (u == v).astype(np.int16) << bit
    for bit, u in enumerate(quad, 6):
        code |= (u != 0).astype(np.int16) << bit
    kind = _CORNERS[code].ravel()
    hit = np.flatnonzero(kind)  # (point, position): row-major, then by position
    k, pos = hit >> 2, hit & 3
    kk = kind[hit]
    return (
        gy[k].astype(np.int32),
        gx[k].astype(np.int32),
        quad[pos, k],
        pos.astype(np.int8),
        (kk & 2) > 0,
        (kk & 4) > 0,
    )


def _partners(line: np.ndarray, point: np.ndarray, late: np.ndarray) -> np.ndarray:
    """Each entry's partner: entries 0-1, 2-3, ... in the order by ``line``, then
    ``point``, then ``late``. The entries come in the order of their ``point`` within
    each line (the vertices' row-major order), so one stable sort by line (by radix when
    the line fits 16 bits) orders them but for a pair at one point (at most two share a
    line and a point), put in order by ``late`` after."""
    dt = np.uint16 if int(line.max()) < 2**16 else np.int64
    order = np.argsort(line.astype(dt), kind="stable").astype(np.int32)
    ln, pt, lt = line[order], point[order], late[order]
    swap = np.flatnonzero((ln[1:] == ln[:-1]) & (pt[1:] == pt[:-1]) & lt[:-1] & ~lt[1:])
    order[swap], order[swap + 1] = order[swap + 1], order[swap].copy()
    part = np.empty(line.size, np.int32)
    part[order[0::2]] = order[1::2]
    part[order[1::2]] = order[0::2]
    return part


def _cycles(nxt: np.ndarray, bound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the permutation ``nxt`` (disjoint cycles): each entry's cycle head (its smallest
    entry) and its position from the head; ``bound``: a bound on each entry's cycle length
    (the same for all entries of a cycle).

    Pointer jumping: after round k each entry knows the smallest entry among the 2^k from
    it on and how far ahead that one is (packed in one integer, head above ahead, so that
    the minimum picks both); entries whose cycle is at most 2^k long are done, and are
    dropped from the arrays (their cycle with them) once they are a quarter of them.
    """
    n = nxt.size
    key = np.arange(n, dtype=np.int64) << 32
    out = np.empty(n, np.int64)
    p = nxt.astype(np.int64)
    idx = np.arange(n)  # the entries still in the arrays
    bound = np.asarray(bound)
    span = 1
    while idx.size:
        np.minimum(key, key[p] + span, out=key)
        p = p[p]
        span *= 2
        done = bound <= span
        n_done = int(np.count_nonzero(done))
        if n_done == idx.size:
            out[idx] = key
            break
        if 4 * n_done >= idx.size:
            out[idx[done]] = key[done]
            live = ~done
            pos = np.cumsum(live) - 1  # where the live entries go (cycles stay whole)
            idx, key, bound, p = idx[live], key[live], bound[live], pos[p[live]]
    head = (out >> 32).astype(np.int32)
    ahead = (out & 0xFFFFFFFF).astype(np.int32)
    size = np.bincount(head, minlength=n).astype(np.int32)[head]
    return head, (size - ahead) % size


def outline(lab: np.ndarray) -> Outline:
    """The outlines of the regions labelled in ``lab`` (see the module doc)."""
    gy, gx, lbl, pos, cv, pinch = _vertices(np.asarray(lab))
    z = np.zeros(0, np.int32)
    if gy.size == 0:
        return Outline(z, z, np.zeros(1, np.int64), z, np.zeros(1, np.int64))
    # where a region meets itself at a corner, its outline passes the point turning
    # around the other two pixels: the region's two convex corners there become the
    # concave corners of the pixels beside them (the position one row over)
    pos[pinch] ^= 2
    cv[pinch] = False
    n = gy.size
    sy, sx = _SY[pos], _SX[pos]
    # a vertex's vertical edge has its region on the side sx of the grid line, its
    # horizontal edge on the side sy; sorted by line, side, then along the line (at a
    # shared point the edge coming from above / from the left first) they pair up
    vdir = np.where(cv, sy, -sy) > 0  # the vertical edge goes down from the point
    hdir = np.where(cv, sx, -sx) > 0  # the horizontal edge goes right
    vpart = _partners(gx * 2 + (sx > 0), gy, vdir)
    hpart = _partners(gy * 2 + (sy > 0), gx, hdir)
    # walking with the region on the left (rows down): leave along the vertical edge at
    # the convex corners of the top-left and bottom-right pixels and at the concave ones of
    # the other two
    vertical = (sy == sx) == cv
    nxt = np.where(vertical, vpart, hpart)
    # rings alternate vertical and horizontal edges: the cycles are found among the
    # vertices that leave vertically (every other one; their successor's successor), the
    # others take their predecessor's
    sub = np.flatnonzero(vertical).astype(np.int32)
    rank = np.empty(n, np.int32)
    rank[sub] = np.arange(sub.size, dtype=np.int32)
    per_label = np.bincount(lbl)
    h2, at2 = _cycles(rank[nxt[nxt[sub]]], per_label[lbl[sub]] // 2)
    head = np.empty(n, np.int32)
    at_ring = np.empty(n, np.int32)
    head[sub], at_ring[sub] = sub[h2], 2 * at2
    head[nxt[sub]], at_ring[nxt[sub]] = sub[h2], 2 * at2 + 1
    heads = np.flatnonzero(head == np.arange(n))  # one per ring, ascending
    ring_id = np.empty(n, np.int32)
    ring_id[heads] = np.arange(heads.size, dtype=np.int32)
    ring_of = ring_id[head]
    ring_size = np.bincount(ring_of, minlength=heads.size)
    # ring order: by label, the outer ring first (positive area with rows down and the
    # region on the left = clockwise on the screen = counter-clockwise in map coordinates)
    start0 = np.zeros(heads.size + 1, np.int64)
    np.cumsum(ring_size, out=start0[1:])
    at = start0[ring_of] + at_ring
    ox, oy = np.empty(n, np.int32), np.empty(n, np.int32)
    ox[at], oy[at] = gx, gy
    nx_ = np.roll(ox, -1)
    ny_ = np.roll(oy, -1)
    # the successor within the ring (the last vertex wraps to the ring's first)
    ends = start0[1:] - 1
    nx_[ends], ny_[ends] = ox[start0[:-1]], oy[start0[:-1]]
    cross = ox.astype(np.int64) * ny_ - nx_.astype(np.int64) * oy
    area2 = np.add.reduceat(cross, start0[:-1])
    ring_label = lbl[heads]
    hole = area2 > 0  # outer rings run the other way: negative with rows down ...
    order = np.lexsort((hole, ring_label))
    sizes = ring_size[order]
    ring_start = np.zeros(order.size + 1, np.int64)
    np.cumsum(sizes, out=ring_start[1:])
    # move the rings into that order
    src = np.repeat(start0[:-1][order] - ring_start[:-1], sizes) + np.arange(n)
    x, y = ox[src], oy[src]
    labels, region_first = np.unique(ring_label[order], return_index=True)
    region_start = np.append(region_first, order.size).astype(np.int64)
    return Outline(x, y, ring_start, labels, region_start)
