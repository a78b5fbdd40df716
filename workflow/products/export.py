"""`rasterflow export`: one Cloud-Optimized GeoTIFF of an area, mosaicked from a run's tiles.

The area (`bbox`, lon/lat degrees or the grid's CRS) is snapped outward to the pixel grid
of level z, clipped to the grid, and filled from the GeoTIFFs of that level's tiles: their
pixels are copied as they are (the mosaic is exact: no resampling), NaN where no tile
exists. One band per chosen statistic, named after it, in the order asked; float32 unless
a tile is float64 (a count past 2^24), NaN as nodata.

Size: at most `max_pixels` pixels per band (default 100,000,000, e.g. 10,000 x 10,000: 400
MB a band in float32 before compression). Without `z`, the finest level under that limit.

The tiles are written one by one into a tiled temporary GeoTIFF beside OUT (memory: one
tile), then GDAL's COG driver copies it into OUT (deflate, 512-pixel blocks, overviews),
renamed into place when complete.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.transform import Affine
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from rasterflow.rasterize_core.atomic import atomic_path, temp_path_for
from rasterflow.rasterize_core.errors import ParameterError, TileInputError
from rasterflow.rasterize_core.tiles import Tile, matrix_size, tms_crs_wkt, xy_bounds
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.layout import geotiff_path

MAX_EXPORT_PIXELS = 100_000_000  # per band: 10,000 x 10,000
COG_OPTIONS = {"compress": "DEFLATE", "level": 6, "predictor": "YES", "blocksize": 512,
               "overviews": "AUTO", "overview_resampling": "AVERAGE",
               "bigtiff": "IF_SAFER"}  # fmt: skip


@dataclass(frozen=True)
class Area:
    """A block of whole pixels of level z: columns [col0, col1), rows [row0, row1)."""

    z: int
    col0: int
    row0: int
    col1: int
    row1: int

    @property
    def width(self) -> int:
        return self.col1 - self.col0

    @property
    def height(self) -> int:
        return self.row1 - self.row0

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class ExportResult:
    path: Path
    z: int
    width: int
    height: int
    bands: list[str]
    bounds: tuple[float, float, float, float]  # in the grid's CRS
    tiles: int  # GeoTIFFs mosaicked

    def text(self) -> str:
        return (f"rasterflow: wrote {self.path} ({self.width} x {self.height} px at z{self.z}, "
                f"bands {', '.join(self.bands)}, from {self.tiles} tiles)")  # fmt: skip


# -- where: the box in the grid's CRS, on the pixel grid of a level --------------------
def grid_box(config: RasterflowConfig, bbox: tuple[float, ...], bbox_crs: str) -> tuple:
    """(left, bottom, right, top) in the grid's CRS: lon/lat boxes are transformed with
    their edges densified (a box's edges curve in a projected grid)."""
    west, south, east, north = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise ParameterError(f"--bbox {bbox}: four finite numbers, W S E N")
    if not (west < east and south < north):
        raise ParameterError(f"--bbox {west} {south} {east} {north}: write W S E N with "
                             f"W < E and S < N")  # fmt: skip
    if bbox_crs == "grid":
        return (west, south, east, north)
    if not (west >= -180 and east <= 180 and south >= -90 and north <= 90):
        raise ParameterError(
            f"--bbox {west} {south} {east} {north}: lon/lat degrees lie "
            f"in -180..180, -90..90 (--bbox-crs grid: the grid's units)"
        )
    return transform_bounds("OGC:CRS84", tms_crs_wkt(config.tms_id), west, south, east, north,
                            densify_pts=21)  # fmt: skip


def level_area(config: RasterflowConfig, box: tuple, z: int) -> Area:
    """The pixels of level z that the box touches, snapped outward, clipped to the grid."""
    left, top, px_w, px_h = _level_pixels(config, z)
    columns, rows = matrix_size(config.tms_id, z)
    height, width = config.tile_size
    col0 = max(0, math.floor((box[0] - left) / px_w))
    col1 = min(columns * width, math.ceil((box[2] - left) / px_w))
    row0 = max(0, math.floor((top - box[3]) / px_h))
    row1 = min(rows * height, math.ceil((top - box[1]) / px_h))
    if col0 >= col1 or row0 >= row1:
        raise ParameterError(f"the box {tuple(round(v, 6) for v in box)} lies outside "
                             f"{config.tms_id}")  # fmt: skip
    return Area(z, col0, row0, col1, row1)


def _level_pixels(config: RasterflowConfig, z: int) -> tuple[float, float, float, float]:
    """(left, top, pixel width, pixel height) of level z, from tile (z, 0, 0)."""
    left, bottom, right, top = xy_bounds(config.tms_id, Tile(z, 0, 0))
    height, width = config.tile_size
    return left, top, (right - left) / width, (top - bottom) / height


def choose_level(config: RasterflowConfig, box: tuple, z: int | None, max_pixels: int) -> Area:
    """Level z's area, or the finest level whose area stays within `max_pixels`."""
    if z is not None:
        if not config.z_min <= z <= config.z_max:
            raise ParameterError(f"--z {z}: the run has levels {config.z_min} to {config.z_max}")
        area = level_area(config, box, z)
        if area.pixels > max_pixels:
            finer = _finest_within(config, box, max_pixels)
            hint = f"; z{finer.z} fits" if finer else ""
            raise ParameterError(f"z{z} gives {area.width} x {area.height} = {area.pixels:,} "
                                 f"pixels, over the limit of {max_pixels:,} (--max-pixels)"
                                 f"{hint}")  # fmt: skip
        return area
    finest = _finest_within(config, box, max_pixels)
    if finest is None:
        coarse = level_area(config, box, config.z_min)
        raise ParameterError(f"the box needs {coarse.pixels:,} pixels even at z{config.z_min}, "
                             f"over the limit of {max_pixels:,}: a smaller box or "
                             f"--max-pixels")  # fmt: skip
    return finest


def _finest_within(config: RasterflowConfig, box: tuple, max_pixels: int) -> Area | None:
    for z in range(config.z_max, config.z_min - 1, -1):
        area = level_area(config, box, z)
        if area.pixels <= max_pixels:
            return area
    return None


def area_bounds(config: RasterflowConfig, area: Area) -> tuple[float, float, float, float]:
    left, top, px_w, px_h = _level_pixels(config, area.z)
    return (left + area.col0 * px_w, top - area.row1 * px_h,
            left + area.col1 * px_w, top - area.row0 * px_h)  # fmt: skip


# -- what: the tiles of the level over the area ------------------------------------------
def area_tiles(config: RasterflowConfig, area: Area) -> list[tuple[Tile, Path]]:
    """The tiles of level z over the area whose GeoTIFF exists, with their paths."""
    height, width = config.tile_size
    found = []
    for x in range(area.col0 // width, (area.col1 - 1) // width + 1):
        for y in range(area.row0 // height, (area.row1 - 1) // height + 1):
            path = geotiff_path(config, Tile(area.z, x, y))
            if path.exists():
                found.append((Tile(area.z, x, y), path))
    return found


def _band_indexes(config: RasterflowConfig, stats: list[str] | None) -> list[int]:
    names = config.stat_names
    unknown = [name for name in stats or [] if name not in names]
    if unknown:
        raise ParameterError(f"--stats {', '.join(unknown)}: not a statistic of the config "
                             f"({', '.join(names)})")  # fmt: skip
    return [names.index(name) + 1 for name in stats] if stats else list(range(1, len(names) + 1))


def _open_tile(path: Path):
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioError as err:
        raise TileInputError(str(path), "the GeoTIFF cannot be read", str(err)) from None


# -- the export ---------------------------------------------------------------------------
def export_area(config: RasterflowConfig, bbox: tuple[float, ...], out: str | Path,
                z: int | None = None, stats: list[str] | None = None, bbox_crs: str = "lonlat",
                max_pixels: int = MAX_EXPORT_PIXELS) -> ExportResult:  # fmt: skip
    """Write the COG of `bbox` (see the module docstring) to `out`."""
    indexes = _band_indexes(config, stats)
    area = choose_level(config, grid_box(config, bbox, bbox_crs), z, max_pixels)
    tiles = area_tiles(config, area)
    bounds = area_bounds(config, area)
    names = [config.stat_names[i - 1] for i in indexes]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    mosaic = temp_path_for(out.with_suffix(".mosaic.tif"))
    try:
        _write_mosaic(config, area, tiles, indexes, names, bounds, mosaic)
        with atomic_path(out) as temporary:
            rasterio.shutil.copy(mosaic, temporary, driver="COG", **COG_OPTIONS)
    finally:
        for leftover in (mosaic, Path(f"{mosaic}.aux.xml")):
            if leftover.exists():
                os.unlink(leftover)
    return ExportResult(out, area.z, area.width, area.height, names, bounds, len(tiles))


def _write_mosaic(config, area: Area, tiles, indexes, names, bounds, path: Path) -> None:
    height, width = config.tile_size
    sources = [(tile, _open_tile(p)) for tile, p in tiles]
    try:
        dtype = "float64" if any(ds.dtypes[0] == "float64" for _, ds in sources) else "float32"
        _, _, px_w, px_h = _level_pixels(config, area.z)
        profile = {"driver": "GTiff", "width": area.width, "height": area.height,
                   "count": len(indexes), "dtype": dtype, "crs": tms_crs_wkt(config.tms_id),
                   "transform": Affine(px_w, 0, bounds[0], 0, -px_h, bounds[3]),
                   "nodata": np.nan, "tiled": True, "blockxsize": 256, "blockysize": 256,
                   "compress": "deflate", "zlevel": 1, "sparse_ok": True,
                   "bigtiff": "IF_SAFER"}  # fmt: skip
        with rasterio.open(path, "w", **profile) as dst:
            for band, name in enumerate(names, start=1):
                dst.set_band_description(band, name)
            for tile, src in sources:
                _copy_tile(dst, src, tile, area, indexes, (height, width), dtype)
    finally:
        for _, src in sources:
            src.close()


def _copy_tile(dst, src, tile: Tile, area: Area, indexes, size, dtype) -> None:
    """The part of one tile inside the area, at its place in the mosaic."""
    height, width = size
    col0, row0 = tile.x * width, tile.y * height  # the tile's first pixel on the level
    c0, c1 = max(col0, area.col0), min(col0 + width, area.col1)
    r0, r1 = max(row0, area.row0), min(row0 + height, area.row1)
    source = Window(c0 - col0, r0 - row0, c1 - c0, r1 - r0)
    try:
        data = src.read(indexes, window=source, out_dtype=dtype)
    except rasterio.errors.RasterioError as err:
        raise TileInputError(src.name, "the GeoTIFF cannot be read", str(err)) from None
    dst.write(data, window=Window(c0 - area.col0, r0 - area.row0, c1 - c0, r1 - r0))
