"""Tile-matrix-set arithmetic: bounds in the TMS's own CRS, parents, children, paths."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import morecantile
import pyproj

DEFAULT_PATH_STRUCTURE = ("style", "tms", "z", "x", "y")
MAX_EDGE_SHIFT_PX = 0.01  # our tile edges vs the registry's, where its cell sizes are rounded


class Tile(NamedTuple):
    z: int
    x: int
    y: int

    def parent(self) -> Tile:
        return Tile(self.z - 1, self.x // 2, self.y // 2)

    def children(self) -> list[Tile]:
        """The four children, in mosaic order: top-left, top-right, bottom-left, bottom-right."""
        z, x, y = self.z + 1, 2 * self.x, 2 * self.y
        return [Tile(z, x, y), Tile(z, x + 1, y), Tile(z, x, y + 1), Tile(z, x + 1, y + 1)]


@lru_cache(maxsize=16)
def get_tms(tms_id: str) -> morecantile.TileMatrixSet:
    return morecantile.tms.get(tms_id)


def available_tms() -> list[str]:
    return sorted(morecantile.tms.list())


def matrix_size(tms_id: str, z: int) -> tuple[int, int]:
    """(columns, rows) of the tile matrix at zoom z."""
    matrix = get_tms(tms_id).matrix(z)
    return matrix.matrixWidth, matrix.matrixHeight


def tile_in_grid(tms_id: str, tile: Tile) -> bool:
    tms = get_tms(tms_id)
    if not tms.minzoom <= tile.z <= tms.maxzoom:
        return False
    width, height = matrix_size(tms_id, tile.z)
    return 0 <= tile.x < width and 0 <= tile.y < height


def xy_bounds(tms_id: str, tile: Tile) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) in the TMS's own CRS, x first (easting or longitude).

    Same arithmetic as morecantile's `xy_bounds`, but each level's cell size is the top
    level's halved (`_level_geometry`), so a parent is exactly the union of its four
    children and the 2x2 reduction stays exact.
    """
    left, top, width, height = _level_geometry(tms_id, tile.z)
    return (left + tile.x * width, top - (tile.y + 1) * height,
            left + (tile.x + 1) * width, top - tile.y * height)  # fmt: skip


@lru_cache(maxsize=16)
def tms_crs(tms_id: str) -> pyproj.CRS:
    """The grid's CRS, built from morecantile's public API: the registry's own CRS string
    (`crs.srs`, e.g. an EPSG URI), which gives back exactly the CRS morecantile holds (a round
    trip through WKT does not: it drops WebMercatorQuad's datum ensemble)."""
    return pyproj.CRS.from_user_input(get_tms(tms_id).crs.srs)


def tms_crs_wkt(tms_id: str) -> str:
    return get_tms(tms_id).crs.to_wkt()


def tile_path(
    root: str | Path,
    tms_id: str,
    tile: Tile,
    ext: str,
    style: str | None = None,
    structure: tuple[str, ...] = DEFAULT_PATH_STRUCTURE,
) -> Path:
    """The path of a tile file: `structure` orders the parts; `style` is dropped when None."""
    values = {"style": style, "tms": tms_id, "z": tile.z, "x": tile.x, "y": tile.y}
    parts = [str(values[name]) for name in structure if values[name] is not None]
    return Path(root, *parts[:-1], parts[-1] + ext)


def morton_key(tile: Tile) -> int:
    """Z-order key: tiles close in space are close in this order, at every zoom."""
    key = 0
    for bit in range(max(tile.z, 1) + 1):
        key |= ((tile.x >> bit) & 1) << (2 * bit) | ((tile.y >> bit) & 1) << (2 * bit + 1)
    return key


def tile_at(tms_id: str, z: int, x_crs: float, y_crs: float) -> Tile:
    """The tile holding point (x, y) of the TMS CRS, half-open like pixels.

    [left, right) by (bottom, top]; outside the matrix for a point outside the grid.
    """
    left, top, width, height = _level_geometry(tms_id, z)
    col, row = math.floor((x_crs - left) / width), math.floor((top - y_crs) / height)
    # The estimate can be one off on a tile edge: settle it against `xy_bounds`, which
    # draws the tiles the rasterizer bins centroids into, so staging and counting agree.
    t_left, t_bottom, t_right, t_top = xy_bounds(tms_id, Tile(z, col, row))
    col += int(x_crs >= t_right) - int(x_crs < t_left)
    row += int(y_crs <= t_bottom) - int(y_crs > t_top)
    return Tile(z, col, row)


def tiles_touching(tms_id: str, z: int, bounds: tuple[float, float, float, float]) -> list[Tile]:
    """Tiles at z whose extent overlaps the box (left, bottom, right, top), clamped to the grid."""
    columns, rows = matrix_size(tms_id, z)
    top_left = tile_at(tms_id, z, bounds[0], bounds[3])
    bottom_right = tile_at(tms_id, z, bounds[2], bounds[1])
    col0, row0 = max(0, top_left.x), max(0, top_left.y)
    col1, row1 = min(columns - 1, bottom_right.x), min(rows - 1, bottom_right.y)
    return [Tile(z, x, y) for x in range(col0, col1 + 1) for y in range(row0, row1 + 1)]


def grid_problem(tms_id: str, z_range: tuple[int, int]) -> str | None:
    """Why the pipeline cannot use this grid over z_range, or None when it can.

    Parents are the 2x2 blocks (x // 2, y // 2) of their children and pixels are laid
    over uniform tiles, so every level needs a top-left origin, one tile width for all
    rows (no coalescence), and must halve the level above from the same origin. The
    registry's quad grids pass; CDB1GlobalGrid, GNOSISGlobalGrid and CanadianNAD83_LCC
    do not. Levels where the registry's rounded cell sizes put tile edges more than
    `MAX_EDGE_SHIFT_PX` from the exact quadtree (UPS grids above z17) are refused too:
    there staging by morecantile's bounds and ours would disagree.
    """
    for z in range(z_range[0], z_range[1] + 1):
        problem = _level_problem(tms_id, z)
        if problem:
            return problem
        shift = edge_shift_px(tms_id, z)
        if shift > MAX_EDGE_SHIFT_PX:
            return (
                f"{tms_id} zoom {z}: the registry's rounded cell size puts tile edges "
                f"{shift:.2g} px off an exact quadtree (more than {MAX_EDGE_SHIFT_PX} px)"
            )
    return None


def edge_shift_px(tms_id: str, z: int) -> float:
    """Largest distance, in pixels, between our tile edges at z and morecantile's."""
    matrix = get_tms(tms_id).matrix(z)
    _, _, width, height = _level_geometry(tms_id, z)
    shift_x = matrix.matrixWidth * abs(width - matrix.cellSize * matrix.tileWidth)
    shift_y = matrix.matrixHeight * abs(height - matrix.cellSize * matrix.tileHeight)
    return max(shift_x, shift_y) / matrix.cellSize


def _level_problem(tms_id: str, z: int) -> str | None:
    tms = get_tms(tms_id)
    matrix = tms.matrix(z)
    if matrix.variableMatrixWidths:
        return f"{tms_id} zoom {z} has variable matrix widths (coalesced rows)"
    if matrix.cornerOfOrigin not in (None, "topLeft"):
        return f"{tms_id} zoom {z} has its origin at {matrix.cornerOfOrigin}, not topLeft"
    if z == tms.minzoom:
        return None
    above = tms.matrix(z - 1)
    # Rounded cell sizes (UPS: 9 decimals) differ from an exact halving by ~1e-7.
    halves = math.isclose(above.cellSize, 2 * matrix.cellSize, rel_tol=1e-6)
    same_tiles = (above.tileWidth, above.tileHeight) == (matrix.tileWidth, matrix.tileHeight)
    same_origin = all(
        math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
        for a, b in zip(above.pointOfOrigin, matrix.pointOfOrigin, strict=True)
    )
    if not (halves and same_tiles and same_origin):
        return f"{tms_id} zoom {z} is not a 2x2 subdivision of zoom {z - 1} (not a quadtree)"
    return None


@lru_cache(maxsize=256)
def _level_geometry(tms_id: str, z: int) -> tuple[float, float, float, float]:
    """Left, top, tile width and height at z: the top level's cell size halved z times.

    The registry rounds each level's cellSize (UPSArcticWGS84Quad to 9 decimals), so
    its levels drift apart: z12 and z13 edges disagree by up to 7e-4 px. Halving is
    exact in binary, hence identical to the registry wherever it is exact
    (WorldCRS84Quad to z13, WebMercatorQuad everywhere). Grids that are not quadtrees
    keep their own levels (and `grid_problem` refuses them).
    """
    tms = get_tms(tms_id)
    top_z = tms.minzoom
    if any(_level_problem(tms_id, zz) for zz in range(top_z, z + 1)):
        top_z = z
    anchor = tms.xy_bounds(morecantile.Tile(0, 0, top_z))
    matrix = tms.matrix(top_z)
    cell = matrix.cellSize / 2 ** (z - top_z)
    return anchor.left, anchor.top, cell * matrix.tileWidth, cell * matrix.tileHeight
