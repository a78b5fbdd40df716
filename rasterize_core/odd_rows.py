"""Which rows of a staged tile can contribute, and why the others cannot (DESIGN §9).

Every reader path decodes and checks a tile's geometries here, once, so that the coverage
kernel and the statistics only ever see finite, closed, polygonal input. A row that cannot
contribute area or a centroid is skipped with one reason from `skips.SKIP_REASONS`; a
GeometryCollection keeps its polygonal parts; an invalid polygon is left for
`coverage` to repair with `make_valid`, as any invalid polygon.

Ordinary tiles take the fast path: one vectorised decode, then a type and an area per
row (~0.1 ms for 4,000 polygons). Only rows whose area is not a positive finite number
(empty, NaN or infinite coordinates, too few points, not a polygon) are looked at closely,
and rows are decoded one by one only when the vectorised decode refuses the tile.
"""

from __future__ import annotations

import struct

import numpy as np
import shapely
from shapely import GeometryType

from rasterflow.rasterize_core.skips import SKIP_REASONS

_LINES = (GeometryType.LINESTRING, GeometryType.LINEARRING, GeometryType.MULTILINESTRING)
_POINTS = (GeometryType.POINT, GeometryType.MULTIPOINT)
_NESTED = (GeometryType.MULTIPOLYGON, GeometryType.GEOMETRYCOLLECTION)


def decode_rows(wkb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """WKB per row -> (geometries, reasons). `reasons` is None when every row is usable,
    else an object array holding "" for a usable row and a `SKIP_REASONS` key otherwise;
    the geometry of a skipped row is None, a collection's is its polygonal part."""
    wkb = np.asarray(wkb, dtype=object)
    with np.errstate(invalid="ignore"):  # NaN coordinates: reported below, as a reason
        try:
            geoms = shapely.from_wkb(wkb)
            refused = None
        except shapely.errors.GEOSException:  # one bad row makes GEOS refuse them all
            geoms = shapely.from_wkb(wkb, on_invalid="ignore")
            given = np.array([value is not None for value in wkb], bool)
            refused = np.flatnonzero(shapely.is_missing(geoms) & given)
    reasons = None
    if refused is not None and len(refused):
        reasons = np.full(len(geoms), "", dtype=object)
        reasons[refused] = [_why_refused(wkb[i]) for i in refused]
    return usable_geometries(geoms, reasons)


def usable_geometries(
    geoms: np.ndarray, reasons: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Decoded geometries -> (geometries, reasons) as `decode_rows` gives them. Rows
    already given a reason in `reasons` keep it."""
    geoms = np.asarray(geoms, dtype=object)
    types = shapely.get_type_id(geoms)
    with np.errstate(invalid="ignore", over="ignore"):
        area = shapely.area(geoms)
    # A NaN or infinite coordinate makes the area NaN or infinite (every vertex enters the
    # shoelace sum), and a ring of fewer than 4 points encloses none: a positive finite
    # area proves the row fine, and leaves few rows to look at closely.
    polygonal = (types == GeometryType.POLYGON) | (types == GeometryType.MULTIPOLYGON)
    suspect = ~(polygonal & np.isfinite(area) & (area > 0))
    if reasons is not None:
        suspect &= reasons == ""
    if not suspect.any():
        return geoms, reasons
    geoms = geoms.copy()
    reasons = np.full(len(geoms), "", dtype=object) if reasons is None else reasons.copy()
    index = np.flatnonzero(suspect)
    checked, why = _check_closely(geoms[index], types[index])
    geoms[index], reasons[index] = checked, why
    geoms[reasons != ""] = None
    return geoms, reasons


def _check_closely(geoms: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The few suspect rows: their usable geometry (collections reduced to their polygonal
    part) and their reason ("" where the row is fine, e.g. a degenerate polygon of zero
    area: it is invalid, repaired later, and its centroid still counts)."""
    why = np.full(len(geoms), "", dtype=object)
    why[types == GeometryType.MISSING] = "null"
    why[(why == "") & shapely.is_empty(geoms)] = "empty"
    collections = np.flatnonzero((why == "") & (types == GeometryType.GEOMETRYCOLLECTION))
    for i in collections:
        geoms[i], why[i] = _polygonal_part(geoms[i])
    types = shapely.get_type_id(geoms)
    why[(why == "") & np.isin(types, _LINES)] = "line"
    why[(why == "") & np.isin(types, _POINTS)] = "point"
    open_ = why == ""
    why[open_ & ~_finite(geoms, open_)] = "non-finite"
    open_ = why == ""
    why[open_ & ~_has_outer_ring_of_four(geoms, open_)] = "too few points"
    return geoms, why


def _polygonal_part(collection) -> tuple[object, str]:
    """A collection's non-empty polygons as one Polygon or MultiPolygon; or None and why
    nothing is left (its lines, else its points, else it was empty)."""
    parts = np.asarray(shapely.get_parts(collection), dtype=object)
    while np.isin(shapely.get_type_id(parts), _NESTED).any():
        parts = np.asarray(shapely.get_parts(parts), dtype=object)
    parts = parts[~shapely.is_empty(parts)]
    kinds = shapely.get_type_id(parts)
    polygons = parts[kinds == GeometryType.POLYGON]
    if len(polygons) == 1:
        return polygons[0], ""
    if len(polygons) > 1:
        return shapely.MultiPolygon(list(polygons)), ""
    if np.isin(kinds, _LINES).any():
        return None, "line"
    return None, ("point" if np.isin(kinds, _POINTS).any() else "empty")


def _finite(geoms: np.ndarray, where: np.ndarray) -> np.ndarray:
    """True where every x and y of the geometry is finite (rows outside `where`: True)."""
    out = np.ones(len(geoms), np.bool_)
    index = np.flatnonzero(where)
    coords, owner = shapely.get_coordinates(geoms[index], return_index=True)
    bad = ~np.isfinite(coords).all(axis=1)
    out[index[np.unique(owner[bad])]] = False
    return out


def _has_outer_ring_of_four(geoms: np.ndarray, where: np.ndarray) -> np.ndarray:
    """True where some polygon of the geometry has an outer ring of 4 or more points
    (rows outside `where`: True)."""
    out = np.ones(len(geoms), np.bool_)
    index = np.flatnonzero(where)
    parts, owner = shapely.get_parts(geoms[index], return_index=True)
    shells = shapely.get_num_coordinates(shapely.get_exterior_ring(parts))
    out[index] = np.bincount(owner[shells >= 4], minlength=len(index)) > 0
    return out


def _why_refused(blob: bytes) -> str:
    """Why GEOS refuses one row's WKB, in `SKIP_REASONS` words."""
    try:
        with np.errstate(invalid="ignore"):
            shapely.from_wkb(blob)
    except shapely.errors.GEOSException as err:
        message = str(err)
    else:
        return "unreadable"  # not expected: GEOS read it alone but not among the others
    try:  # a NaN first point never equals its copy at the end: GEOS calls that unclosed
        if not np.isfinite(_wkb_xy(memoryview(blob), 0, [])[1]).all():
            return "non-finite"
    except (struct.error, KeyError, ValueError, IndexError):  # not WKB we can walk
        return "unreadable"
    if "Invalid number of points" in message:
        return "too few points"
    return "unclosed ring" if "closed linestring" in message else "unreadable"


# WKB geometry type -> how its body reads: a point, a list of points, rings, or parts.
_BODY = {1: "point", 2: "points", 3: "rings", 4: "parts", 5: "parts", 6: "parts", 7: "parts"}


def _wkb_xy(wkb: memoryview, at: int, xy: list) -> tuple[int, list]:
    """Every (x, y) of one WKB geometry (ISO or EWKB, either byte order) from offset `at`:
    (the offset after it, the list). For the rare rows GEOS refuses, so plain Python."""
    order = "<" if wkb[at] == 1 else ">"
    (code,) = struct.unpack_from(order + "I", wkb, at + 1)
    at += 5
    if code & 0x20000000:  # EWKB: an SRID follows
        at += 4
    dims = 2 + bool(code & 0x80000000) + bool(code & 0x40000000)  # EWKB's Z and M flags
    dims += {1: 1, 2: 1, 3: 2}.get((code & 0xFFFF) // 1000, 0)  # ISO's 1000s: Z, M, ZM
    body = _BODY[(code & 0xFFFF) % 1000]

    def points(at: int, count: int) -> int:
        values = struct.unpack_from(f"{order}{count * dims}d", wkb, at)
        xy.extend(zip(values[0::dims], values[1::dims], strict=True))
        return at + 8 * count * dims

    if body == "point":
        return points(at, 1), xy
    (count,) = struct.unpack_from(order + "I", wkb, at)
    at += 4
    for _ in range(count if body != "points" else 0):
        if body == "rings":
            (size,) = struct.unpack_from(order + "I", wkb, at)
            at = points(at + 4, size)
        else:
            at, _ = _wkb_xy(wkb, at, xy)
    return (points(at, count) if body == "points" else at), xy


def count_skips(reasons: np.ndarray | None, rows: np.ndarray) -> dict[str, tuple[int, ...]]:
    """{reason: the row ids (fids) skipped for it}, in `SKIP_REASONS` order."""
    if reasons is None:
        return {}
    skips = {reason: tuple(rows[reasons == reason].tolist()) for reason in SKIP_REASONS}
    return {reason: ids for reason, ids in skips.items() if ids}
