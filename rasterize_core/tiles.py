"""Tile-matrix-set arithmetic: bounds in the TMS's own CRS, parents, children, paths."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import morecantile

DEFAULT_PATH_STRUCTURE = ("style", "tms", "z", "x", "y")


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
    """(left, bottom, right, top) in the TMS's own CRS."""
    b = get_tms(tms_id).xy_bounds(morecantile.Tile(tile.x, tile.y, tile.z))
    return (b.left, b.bottom, b.right, b.top)


def tms_crs_wkt(tms_id: str) -> str:
    return get_tms(tms_id).crs._pyproj_crs.to_wkt()


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
    """The tile holding point (x, y) of the TMS CRS; half-open, like pixels: [left, right), (bottom, top]."""
    left, top, width, height = _matrix_geometry(tms_id, z)
    return Tile(z, int((x_crs - left) // width), int((top - y_crs) // height))


def tiles_touching(tms_id: str, z: int, bounds: tuple[float, float, float, float]) -> list[Tile]:
    """Tiles at z whose extent overlaps the box (left, bottom, right, top), clamped to the grid."""
    left, top, width, height = _matrix_geometry(tms_id, z)
    columns, rows = matrix_size(tms_id, z)
    col0 = max(0, int((bounds[0] - left) // width))
    col1 = min(columns - 1, int((bounds[2] - left) // width))
    row0 = max(0, int((top - bounds[3]) // height))
    row1 = min(rows - 1, int((top - bounds[1]) // height))
    return [Tile(z, x, y) for x in range(col0, col1 + 1) for y in range(row0, row1 + 1)]


@lru_cache(maxsize=64)
def _matrix_geometry(tms_id: str, z: int) -> tuple[float, float, float, float]:
    """Left, top, tile width and height at z (uniform matrices), from tile (0, 0)."""
    left, bottom, right, top = xy_bounds(tms_id, Tile(z, 0, 0))
    return left, top, right - left, top - bottom
