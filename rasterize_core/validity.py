"""Which polygons need `shapely.make_valid`: GEOS's `is_valid`, asked only where needed.

GEOS's is_valid is the largest single cost of a tile, so a one-ring polygon (most staged
polygons) that a compiled check proves simple is taken as valid without asking GEOS.
"""

from __future__ import annotations

import numba
import numpy as np
import shapely
from shapely import GeometryType

POLYGONAL = (GeometryType.POLYGON, GeometryType.MULTIPOLYGON)


def find_invalid(geoms, flat):
    """Which geometries GEOS calls invalid. GEOS's is_valid is the largest single cost of a
    tile (~0.4 µs a polygon), so a polygon of one ring (most of them) that `_simple_rings`
    proves simple is taken as valid without it; only the rest are asked."""
    coords, ring_offsets, _, geom_ring_offsets, geom_ids = flat
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    one_ring = np.flatnonzero(np.diff(geom_ring_offsets) == 1)
    candidates = geom_ids[one_ring]
    one_part = np.isin(shapely.get_type_id(geoms[candidates]), POLYGONAL)
    one_part &= shapely.get_num_geometries(geoms[candidates]) == 1
    rings = geom_ring_offsets[one_ring[one_part]]
    simple = _simple_rings(coords[:, 0].copy(), coords[:, 1].copy(), ring_offsets, rings)
    suspect = present.copy()
    suspect[candidates[one_part][simple]] = False
    invalid = np.zeros(len(geoms), np.bool_)
    invalid[suspect] = ~shapely.is_valid(geoms[suspect])
    return invalid


# A ring of more edges than this is left to GEOS: the pairwise test is quadratic.
MAX_CERTIFIED_EDGES = 64
# Shewchuk's error bound for the orientation determinant, (3 + 16 eps) eps with eps = 2^-53.
_CCW_ERROR_BOUND = (3.0 + 16.0 * 2.0**-53) * 2.0**-53


@numba.njit(cache=True, error_model="numpy")
def _simple_rings(x, y, ring_offsets, rings):
    """For each ring index in `rings`, True when it is certainly simple (a valid shell).

    Sound, not complete: True only if the ring is closed, finite, turns strictly at every
    vertex and no two non-adjacent edges can touch, each decided by an orientation whose
    sign is certain (Shewchuk's filter); anything degenerate or too close to call is False
    and goes to GEOS. A simple closed ring is a valid polygon shell in GEOS's sense.
    """
    out = np.zeros(len(rings), np.bool_)
    for k in range(len(rings)):
        out[k] = _certainly_simple(x, y, ring_offsets[rings[k]], ring_offsets[rings[k] + 1])
    return out


@numba.njit(cache=True, error_model="numpy")
def _certainly_simple(x, y, start, end):
    m = end - start - 1  # edges; vertex m is the closing copy of vertex 0
    if m < 3 or m > MAX_CERTIFIED_EDGES or x[start] != x[end - 1] or y[start] != y[end - 1]:
        return False
    for i in range(start, end):
        if not (np.isfinite(x[i]) and np.isfinite(y[i])):
            return False
    first = 0.0
    convex = True
    for i in range(m):  # a strict turn: adjacent edges share only their vertex
        a, b, c = start + (i - 1) % m, start + i, start + (i + 1) % m
        turn = _orient(x[a], y[a], x[b], y[b], x[c], y[c])
        if turn == 0.0:
            return False
        first = turn if first == 0.0 else first
        convex &= (turn > 0.0) == (first > 0.0)
    if convex and _winds_once(x, start, m):
        return True  # turning one way through 2π in all: a convex ring, simple
    for i in range(m - 2):
        for j in range(i + 2, m - (i == 0)):  # edge 0 and edge m-1 are adjacent too
            if not _apart(x, y, start + i, start + j):
                return False
    return True


@numba.njit(cache=True, error_model="numpy")
def _winds_once(x, start, m):
    """With every turn the same way, the edge direction turns through 2π times the number of
    times its x-component changes sign, halved: one turn is two sign changes. An edge with
    dx == 0 makes this undecided (False: the pairwise test decides)."""
    changes = 0
    previous = x[start + m] - x[start + m - 1]
    for i in range(m):
        dx = x[start + i + 1] - x[start + i]
        if dx == 0.0 or previous == 0.0:
            return False
        changes += (dx > 0.0) != (previous > 0.0)
        previous = dx
    return changes == 2


@numba.njit(cache=True, error_model="numpy")
def _apart(x, y, i, j):
    """Edges i and j (vertex i to i+1, j to j+1) certainly do not touch: the ends of one lie
    strictly on one side of the other's line."""
    a = _orient(x[i], y[i], x[i + 1], y[i + 1], x[j], y[j])
    b = _orient(x[i], y[i], x[i + 1], y[i + 1], x[j + 1], y[j + 1])
    if (a > 0.0 and b > 0.0) or (a < 0.0 and b < 0.0):
        return True
    a = _orient(x[j], y[j], x[j + 1], y[j + 1], x[i], y[i])
    b = _orient(x[j], y[j], x[j + 1], y[j + 1], x[i + 1], y[i + 1])
    return (a > 0.0 and b > 0.0) or (a < 0.0 and b < 0.0)


@numba.njit(cache=True, error_model="numpy")
def _orient(ax, ay, bx, by, cx, cy):
    """Orientation of (a, b, c) when its sign is certain, else 0.0 (Shewchuk's orient2d
    filter; the guard on tiny values also covers products that underflow)."""
    left = (ax - cx) * (by - cy)
    right = (ay - cy) * (bx - cx)
    det = left - right
    if left > 0.0:
        if right <= 0.0:
            return det if abs(det) > 1e-250 else 0.0
        total = left + right
    elif left < 0.0:
        if right >= 0.0:
            return det if abs(det) > 1e-250 else 0.0
        total = -left - right
    else:
        return det if abs(det) > 1e-250 else 0.0
    if abs(det) >= _CCW_ERROR_BOUND * total and abs(det) > 1e-250:
        return det
    return 0.0
