"""Odd rows for staged tiles (DESIGN §9): raw WKB that GEOS or GDAL would not write, the
reason each is skipped for, GeoPackages holding exactly those bytes, ordinary polygons."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

NAN, INF = float("nan"), float("inf")


class TileFrame:
    """Points of a tile by fractions of its width and height (0, 0: bottom left)."""

    def __init__(self, bounds: tuple[float, float, float, float]):
        self.bounds = bounds

    def at(self, a, b):
        left, bottom, right, top = self.bounds
        return left + a * (right - left), bottom + b * (top - bottom)

    def ring(self, *fractions) -> list[tuple[float, float]]:
        return [self.at(a, b) for a, b in fractions]

    def box(self, a: float, b: float, size: float = 0.05):
        return shapely.box(*self.at(a, b), *self.at(a + size, b + size))

    def good_polygons(self, count: int, seed: int = 3) -> list:
        """Boxes and triangles inside the tile, some crossing pixel lines, some overlapping."""
        rng = np.random.default_rng(seed)
        out = []
        for a, b, size in zip(rng.uniform(0, 0.9, count), rng.uniform(0, 0.9, count),
                              rng.uniform(0.005, 0.08, count), strict=True):  # fmt: skip
            triangle = shapely.Polygon([self.at(a, b), self.at(a + size, b), self.at(a, b + size)])
            out.append(self.box(a, b, size) if rng.random() < 0.5 else triangle)
        return out

    def odd_rows(self) -> dict[str, tuple[bytes | None, str]]:
        """Every kind of odd row a staged tile may hold, by name: its WKB (None: NULL) and
        the reason it is skipped for."""
        ring, at = self.ring, self.at
        square = ((0.1, 0.1), (0.2, 0.1), (0.2, 0.2), (0.1, 0.2))
        nan_at_2 = [*ring(*square[:2]), (NAN, 70.0), *ring(square[3], square[0])]
        inf_at_2 = [*ring(*square[:2]), (INF, 70.0), *ring(square[3], square[0])]
        nan_at_ends = [(NAN, 70.0), *ring(*square[1:]), (NAN, 70.0)]  # GEOS: "unclosed"
        lines_and_points = shapely.GeometryCollection(
            [shapely.Point(at(0.5, 0.5)), shapely.LineString(ring(*square))]
        )
        closed = ring(*square, square[0])
        wkb = shapely.to_wkb
        return {
            "null": (None, "null"),
            "empty polygon": (wkb(shapely.from_wkt("POLYGON EMPTY")), "empty"),
            "empty collection": (wkb(shapely.from_wkt("GEOMETRYCOLLECTION EMPTY")), "empty"),
            "NaN vertex": (polygon_wkb(nan_at_2), "non-finite"),
            "NaN first point": (polygon_wkb(nan_at_ends), "non-finite"),
            "inf vertex": (polygon_wkb(inf_at_2), "non-finite"),
            "NaN in a hole": (polygon_wkb(closed, [(NAN, NAN)] * 4), "non-finite"),
            "unclosed ring": (polygon_wkb(ring(*square)), "unclosed ring"),
            "two-point ring": (polygon_wkb(ring(square[0], square[0])), "too few points"),
            "three-point ring": (polygon_wkb(ring(*square[:2], square[0])), "too few points"),
            "line": (wkb(shapely.LineString(ring(*square))), "line"),
            "multiline": (wkb(shapely.MultiLineString([ring(*square[:2])])), "line"),
            "point": (wkb(shapely.Point(at(0.5, 0.5))), "point"),
            "multipoint": (wkb(shapely.MultiPoint(ring(*square))), "point"),
            "collection of lines and points": (wkb(lines_and_points), "line"),
            "cut-short bytes": (polygon_wkb(closed)[:20], "unreadable"),
        }


def polygon_wkb(*rings) -> bytes:
    """ISO WKB of a polygon with these rings, exactly as given (closed or not)."""
    out = struct.pack("<BII", 1, 3, len(rings))
    for ring in rings:
        out += struct.pack("<I", len(ring)) + b"".join(struct.pack("<dd", *p) for p in ring)
    return out


def write_raw_gpkg(path: Path, blobs: list, columns: dict | None = None) -> Path:
    """A one-layer GeoPackage (layer named after the file) whose geometry blobs hold exactly
    `blobs` (WKB; None: NULL), fids 1, 2, ... in order.

    GDAL would not write an unclosed ring, so boxes are written first and their blobs
    replaced with sqlite3 (no spatial index: its triggers need GDAL's SQL functions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    placeholders = [shapely.box(0, 0, 1, 1)] * len(blobs)
    frame = gpd.GeoDataFrame(columns or {}, geometry=placeholders, crs="OGC:CRS84")
    pyogrio.write_dataframe(frame, path, layer=path.stem, geometry_type="Unknown",
                            spatial_index=False)  # fmt: skip
    db = sqlite3.connect(path)
    with db:
        table, column, srs = db.execute(
            "SELECT table_name, column_name, srs_id FROM gpkg_geometry_columns"
        ).fetchone()
        header = b"GP\x00\x01" + struct.pack("<i", srs)  # version 0, little-endian, no envelope
        rows = [(None if b is None else header + b, fid) for fid, b in enumerate(blobs, 1)]
        db.executemany(f'UPDATE "{table}" SET "{column}" = ? WHERE fid = ?', rows)
    db.close()
    return path
