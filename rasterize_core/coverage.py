"""Exact polygon-pixel coverage: f = area(polygon ∩ pixel) / area(pixel), no sampling.

Signed-area accumulation as in exact font rasterizers (font-rs): every edge, split at pixel
row and column lines, deposits its signed height into a per-row accumulator; a prefix sum
along the row turns those deposits into the exact covered area of each cell. Edges are
straight, so a trapezoid's area is its height times its mid-x distance: no approximation.
"""

from __future__ import annotations

import numba
import numpy as np
import shapely
from shapely import GeometryType

from rasterflow.rasterize_core.validity import find_invalid

# Below this a fraction is rounding noise of the accumulation (errors are ~1e-14):
# dropping it keeps pixels that no polygon touches at exactly 0.0.
MIN_FRACTION = 1e-12

_POLYGON = GeometryType.POLYGON
_NESTED = (GeometryType.MULTIPOLYGON, GeometryType.GEOMETRYCOLLECTION)


def coverage_triplets(
    geoms: np.ndarray,
    bounds: tuple[float, float, float, float],
    shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every polygon i (shapely Polygon or MultiPolygon, object array) and every pixel p of
    the grid `shape`=(height, width) laid over `bounds`=(left, bottom, right, top) (row 0 at
    the TOP), the exact fraction f = area(geom_i ∩ pixel_p) / area(pixel_p) where f > 0.
    Returns (geom_index int64, pixel_index int64 = row*width+col, fraction float64)."""
    height, width = int(shape[0]), int(shape[1])
    coords, ring_offsets, ring_exterior, geom_ring_offsets, geom_ids = _rings(geoms)
    if len(geom_ids) == 0 or height <= 0 or width <= 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    left, bottom, right, top = (float(b) for b in bounds)
    # Pixel coordinates: column and row units, y flipped so that row 0 is the top.
    px = _to_pixels(coords[:, 0] - left, (right - left) / width, left, right)
    py = _to_pixels(top - coords[:, 1], (top - bottom) / height, bottom, top)
    return _triplets_kernel(
        px, py, ring_offsets, ring_exterior, geom_ring_offsets, geom_ids, height, width
    )


def coverage_fraction(
    geoms: np.ndarray,
    bounds: tuple[float, float, float, float],
    shape: tuple[int, int],
) -> np.ndarray:
    """Σ over polygons of f per pixel, float64 array (height, width). Empty pixels exactly 0.0."""
    height, width = int(shape[0]), int(shape[1])
    _, pixel, fraction = coverage_triplets(geoms, bounds, shape)
    total = np.bincount(pixel, weights=fraction, minlength=height * width)
    return total.astype(np.float64, copy=False).reshape(height, width)  # int64 when empty


def _to_pixels(offsets, pixel_size, low, high):
    """Map offsets from the grid origin to pixel units, snapping onto pixel lines the values
    that sit on one up to the rounding of map coordinates (a couple of ulps): an edge drawn
    on a pixel line must leave the pixel beyond it exactly 0, not 1e-10."""
    pixels = np.ascontiguousarray(offsets / pixel_size, dtype=np.float64)
    tolerance = 2 * np.spacing(max(abs(low), abs(high))) / abs(pixel_size)
    lines = np.rint(pixels)
    on_line = np.abs(pixels - lines) <= tolerance
    pixels[on_line] = lines[on_line]
    return pixels


# ---- geometry → flat rings ---------------------------------------------------------------


def _rings(geoms):
    """Flat coordinates and ring structure of the polygonal part of every geometry.

    Returns (coords (n, 2), ring_offsets, ring_exterior, geom_ring_offsets, geom_ids): the
    rings of geometry geom_ids[k] are geom_ring_offsets[k] .. geom_ring_offsets[k+1].
    Invalid inputs are repaired first (make_valid keeps every lobe of a bow-tie); only
    polygonal parts of the result count, so lines and points left by a repair drop out.
    """
    geoms = np.asarray(geoms, dtype=object).ravel()
    flat = _flat_rings(geoms)
    invalid = find_invalid(geoms, flat)
    if invalid.any():
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid])
        flat = _flat_rings(geoms)
    return flat


def _flat_rings(geoms):
    polys, gid = _polygons(geoms)
    holes = shapely.get_num_interior_rings(polys)
    rings_per_poly = 1 + holes
    ring_len = np.repeat(shapely.get_num_coordinates(polys), rings_per_poly)
    ring_exterior = np.zeros(len(ring_len), np.bool_)
    poly_ring_offsets = _offsets(rings_per_poly)
    ring_exterior[poly_ring_offsets[:-1]] = True
    holed = holes > 0
    if holed.any():
        # Only polygons with holes need their rings as objects (get_rings is slow); the
        # others are one ring holding all their coordinates.
        ring_len[np.repeat(holed, rings_per_poly)] = shapely.get_num_coordinates(
            shapely.get_rings(polys[holed])
        )
    first = np.flatnonzero(np.r_[True, gid[1:] != gid[:-1]]) if len(gid) else gid
    geom_ring_offsets = poly_ring_offsets[np.r_[first, len(gid)]]
    return (
        shapely.get_coordinates(polys),
        _offsets(ring_len),
        ring_exterior,
        geom_ring_offsets.astype(np.int64),
        gid[first].astype(np.int64),
    )


def _polygons(geoms):
    """Non-empty Polygons, each with the index of the input geometry it came from, in order."""
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    types = shapely.get_type_id(geoms)
    simple = present & (types == _POLYGON)
    nested = present & np.isin(types, _NESTED)
    if not nested.any():  # the common case: no get_parts, which costs ~0.3 µs a geometry
        index = np.flatnonzero(simple)
        return geoms[index], index
    parts, index = geoms[nested], np.flatnonzero(nested)
    while np.isin(shapely.get_type_id(parts), _NESTED).any():
        parts, part_of = shapely.get_parts(parts, return_index=True)
        index = index[part_of]
    keep = (shapely.get_type_id(parts) == _POLYGON) & ~shapely.is_empty(parts)
    index = np.concatenate([np.flatnonzero(simple), index[keep]])
    # Stable sort groups each geometry's parts together without reordering them.
    order = np.argsort(index, kind="stable")
    return np.concatenate([geoms[simple], parts[keep]])[order], index[order]


def _offsets(counts):
    out = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=out[1:])
    return out


# ---- compiled kernel ---------------------------------------------------------------------


@numba.njit(cache=True, error_model="numpy")
def _pixel_boxes(px, py, ring_offsets, geom_ring_offsets, height, width):
    """Per geometry, its pixel bounding box clipped to the grid: (row0, row1, col0, col1)."""
    n = len(geom_ring_offsets) - 1
    boxes = np.zeros((n, 4), np.int64)
    for g in range(n):
        start = ring_offsets[geom_ring_offsets[g]]
        end = ring_offsets[geom_ring_offsets[g + 1]]
        if end <= start:
            continue
        x0, x1, y0, y1 = px[start], px[start], py[start], py[start]
        for i in range(start + 1, end):  # explicit loop: slicing costs more than it scans
            x0, x1 = min(x0, px[i]), max(x1, px[i])
            y0, y1 = min(y0, py[i]), max(y1, py[i])
        # Clip in float first: coordinates far outside the grid must not overflow int64.
        r0 = int(max(0.0, np.floor(y0)))
        r1 = int(min(float(height), np.ceil(y1)))
        c0 = int(max(0.0, np.floor(x0)))
        c1 = int(min(float(width), np.ceil(x1)))
        if r1 > r0 and c1 > c0:
            boxes[g, 0], boxes[g, 1], boxes[g, 2], boxes[g, 3] = r0, r1, c0, c1
    return boxes


@numba.njit(cache=True, error_model="numpy")
def _ring_sign(px, py, start, end, exterior):
    """+1 or -1 so that an exterior ring adds and a hole subtracts, whatever its orientation.

    In pixel space (y down) a ring that is counter-clockwise on the map has a negative
    shoelace sum, and that orientation is the one the accumulation counts as positive.
    """
    twice_area = 0.0
    for i in range(start, end - 1):
        twice_area += (px[i] - px[start]) * (py[i + 1] - py[start])
        twice_area -= (px[i + 1] - px[start]) * (py[i] - py[start])
    ccw_on_map = twice_area < 0.0
    return 1.0 if ccw_on_map == exterior else -1.0


@numba.njit(cache=True, error_model="numpy")
def _add_row_piece(acc, row, xa, xb, dy, cols):
    """Deposit an edge piece lying within one row (x from xa to xb, signed height dy).

    `row` is the flat offset of that row in `acc` (rows of cols + 1 cells). Everything right
    of the piece gains dy; the cell holding a sub-piece gains only the part right of it,
    dy * (c + 1 - x_mid), and the rest moves to the next cell, so the prefix sum is exact.
    """
    if xa > xb:  # area depends only on the x-extent, so orientation along x is irrelevant
        xa, xb = xb, xa
    if xb <= 0.0:  # left of the box: every cell of this row is to its right
        acc[row] += dy
        return
    if xa >= cols:  # right of the box: no cell of the box is to its right
        return
    if xb == xa:  # vertical: one cell, no division by the width
        c = int(np.floor(xa))
        acc[row + c] += dy * (c + 1 - xa)
        acc[row + c + 1] += dy * (xa - c)
        return
    width = xb - xa  # heights split in proportion to x: y is linear along the piece
    x = xa
    if x < 0.0:
        acc[row] += dy * ((0.0 - xa) / width)
        x = 0.0
    while x < xb and x < cols:
        c = int(np.floor(x))
        nx = min(c + 1.0, xb)
        d = dy * ((nx - x) / width)  # ratio <= 1: no overflow even for a sliver-thin piece
        mid = 0.5 * (x + nx)
        acc[row + c] += d * (c + 1 - mid)
        acc[row + c + 1] += d * (mid - c)
        x = nx


@numba.njit(cache=True, error_model="numpy")
def _add_edge(acc, x0, y0, x1, y1, sign, rows, cols):
    """Split an edge (local pixel coords) at row lines; pieces above/below the box drop out."""
    if y0 == y1:  # horizontal edges enclose no height
        return
    if y0 > y1:
        x0, y0, x1, y1 = x1, y1, x0, y0
        sign = -sign
    if y1 <= 0.0 or y0 >= rows:
        return
    slope = (x1 - x0) / (y1 - y0)
    r_start = int(max(0.0, np.floor(y0)))
    r_end = int(min(float(rows), np.ceil(y1)))
    for r in range(r_start, r_end):
        ya = max(y0, float(r))
        yb = min(y1, r + 1.0)
        if yb <= ya:
            continue
        # Reuse exact endpoints where the piece ends at a vertex.
        xa = x0 if ya == y0 else x0 + (ya - y0) * slope
        xb = x1 if yb == y1 else x0 + (yb - y0) * slope
        _add_row_piece(acc, r * (cols + 1), xa, xb, sign * (yb - ya), cols)


@numba.njit(cache=True, error_model="numpy")
def _triplets_kernel(
    px, py, ring_offsets, ring_exterior, geom_ring_offsets, geom_ids, height, width
):
    """Accumulate each geometry over its clipped bounding box, then emit its nonzero cells."""
    boxes = _pixel_boxes(px, py, ring_offsets, geom_ring_offsets, height, width)
    n = len(geom_ids)
    capacity = 0
    largest = 0
    for g in range(n):
        rows, cols = boxes[g, 1] - boxes[g, 0], boxes[g, 3] - boxes[g, 2]
        capacity += rows * cols
        largest = max(largest, rows * (cols + 1))
    out_geom = np.empty(capacity, np.int64)
    out_pixel = np.empty(capacity, np.int64)
    out_frac = np.empty(capacity, np.float64)
    buffer = np.empty(largest, np.float64)
    k = 0
    for g in range(n):
        r0, r1, c0, c1 = boxes[g, 0], boxes[g, 1], boxes[g, 2], boxes[g, 3]
        rows, cols = r1 - r0, c1 - c0
        if rows == 0:
            continue
        buffer[: rows * (cols + 1)] = 0.0
        for ring in range(geom_ring_offsets[g], geom_ring_offsets[g + 1]):
            start, end = ring_offsets[ring], ring_offsets[ring + 1]
            sign = _ring_sign(px, py, start, end, ring_exterior[ring])
            for i in range(start, end - 1):
                _add_edge(
                    buffer, px[i] - c0, py[i] - r0, px[i + 1] - c0, py[i + 1] - r0, sign, rows, cols
                )
        for r in range(rows):
            covered = 0.0
            for c in range(cols):
                covered += buffer[r * (cols + 1) + c]
                if covered > MIN_FRACTION:
                    out_geom[k] = geom_ids[g]
                    out_pixel[k] = (r0 + r) * width + c0 + c
                    out_frac[k] = min(covered, 1.0)
                    k += 1
    return out_geom[:k], out_pixel[:k], out_frac[:k]
