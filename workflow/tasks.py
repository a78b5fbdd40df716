"""The work of one batch, as plain functions (wrapped with `python_app` in dag.py).

Each takes paths and small values, calls the pure core per tile, writes the
tile's files, and returns small records: one outcome per tile with its summary
rows. A bad tile becomes a `failed` record naming the file and the reason; the
rest of the batch goes on. Nothing heavy crosses a task boundary.
"""

from __future__ import annotations

import hashlib
import os
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pyproj import CRS

from rasterflow.rasterize_core import geotiff, palette, pyramid, webtile
from rasterflow.rasterize_core.errors import TileInputError
from rasterflow.rasterize_core.read import StagedColumns, read_staged_tile
from rasterflow.rasterize_core.statistics import (
    Grid,
    StatSpec,
    centroid_pixels,
    compute_bands,
    empty_value,
)
from rasterflow.rasterize_core.tiles import Tile, tile_in_grid, tms_crs_wkt, xy_bounds
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.layout import geotiff_path, webtile_path


def grid_of(config: RasterflowConfig, tile: Tile) -> Grid:
    return Grid(xy_bounds(config.tms_id, tile), config.tile_size)


# -- the three batch apps -----------------------------------------------------
def rasterize_batch(tiles: list[Tile], sources: list[str], config: RasterflowConfig) -> list[dict]:
    """z-max tiles: staged polygons -> one GeoTIFF each."""
    crs = CRS.from_wkt(tms_crs_wkt(config.tms_id))
    return [
        _run_tile("rasterize", tile, lambda t=tile, s=src: _rasterize_tile(t, s, config, crs))
        for tile, src in zip(tiles, sources, strict=True)
    ]


def parents_batch(tiles: list[Tile], config: RasterflowConfig) -> list[dict]:
    """Parent tiles: 2x2 reduction of the children that exist; none -> no record."""
    records = []
    for tile in tiles:
        children = [geotiff_path(config, child) for child in tile.children()]
        if any(path.exists() for path in children):
            records.append(
                _run_tile("parent", tile, lambda t=tile, c=children: _parent_tile(t, c, config))
            )
    return records


def webtiles_batch(
    tiles: list[Tile], config: RasterflowConfig, ranges: dict[str, tuple[float, float]]
) -> list[dict]:
    """PNG per statistic for tiles whose GeoTIFF exists, with the level's value ranges."""
    return [
        _run_tile("webtile", tile, lambda t=tile: _webtile_tile(t, config, ranges))
        for tile in tiles
        if geotiff_path(config, tile).exists()
    ]


# -- per tile ---------------------------------------------------------------
def _run_tile(step: str, tile: Tile, work: Callable[[], dict]) -> dict:
    """Time one tile's work and turn its outcome or its error into a record."""
    started = time.time()
    started_at = datetime.fromtimestamp(started, UTC).isoformat(timespec="milliseconds")
    record = {"step": step, "z": tile.z, "x": tile.x, "y": tile.y, "host": os.uname().nodename,
              "started_at": started_at}  # fmt: skip
    try:
        record.update(status="ok", error=None, **work())
    except TileInputError as err:
        record.update(status="failed", error=str(err), path=err.path, summary=[])
    except Exception as err:  # a bug or an unexpected input: still only this tile
        last = traceback.extract_tb(err.__traceback__)[-1]
        detail = f"{type(err).__name__}: {err} (at {Path(last.filename).name}:{last.lineno})"
        record.update(status="failed", error=detail, path=None, summary=[])
    record["duration_s"] = round(time.time() - started, 4)
    return record


def _rasterize_tile(tile: Tile, source: str, config: RasterflowConfig, crs: CRS) -> dict:
    if not tile_in_grid(config.tms_id, tile):
        raise TileInputError(source, f"tile {tile.z}/{tile.x}/{tile.y} is outside {config.tms_id}")
    staged = read_staged_tile(source, staged_columns(config), crs)
    grid = grid_of(config, tile)
    bands = compute_bands(staged, stat_specs(config), grid)
    result = _write_and_summarize(config, tile, bands)
    own = np.count_nonzero(centroid_pixels(staged, grid) >= 0)
    return {**result, "n_polygons": int(own), "notes": list(staged.notes)}


def _parent_tile(tile: Tile, children: list[Path], config: RasterflowConfig) -> dict:
    arrays = [geotiff.read_geotiff(path) if path.exists() else None for path in children]
    methods = [stat.resampling_method for stat in config.statistics]
    empties = [empty_value(stat.aggregation_method) for stat in config.statistics]
    bands = pyramid.build_parent(arrays, methods, empties)
    return {**_write_and_summarize(config, tile, bands), "n_polygons": _count_total(config, bands)}


def _webtile_tile(tile: Tile, config: RasterflowConfig, ranges: dict) -> dict:
    bands = geotiff.read_geotiff(geotiff_path(config, tile))
    digest = hashlib.sha256()
    paths = []
    for band, stat in zip(bands, config.statistics, strict=True):
        lut = palette.build_lut(stat.palette)
        rgba = webtile.colorize(band, ranges[stat.name], lut, stat.nodata_val,
                                palette.parse_color(stat.nodata_color))  # fmt: skip
        path = webtile_path(config, tile, stat.name)
        digest.update(webtile.write_png_atomic(path, rgba))
        paths.append(str(path))
    return {"path": ";".join(paths), "checksum": digest.hexdigest()[:16], "summary": []}


def _write_and_summarize(config: RasterflowConfig, tile: Tile, bands: np.ndarray) -> dict:
    path = geotiff_path(config, tile)
    bounds = xy_bounds(config.tms_id, tile)
    written = geotiff.write_geotiff(
        path, bands, bounds, tms_crs_wkt(config.tms_id), config.stat_names, config.cog
    ).astype("float64")
    summary = [
        band_summary(stat.name, band, tile, bounds, path)
        for stat, band in zip(config.statistics, written, strict=True)
    ]
    checksum = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return {"path": str(path), "checksum": checksum, "summary": summary}


def band_summary(stat: str, band: np.ndarray, tile: Tile, bounds, path: Path) -> dict:
    """One summary row (PDG's columns, then x, y, n_nonempty); NaN pixels are left out."""
    values = band[np.isfinite(band)]
    stats = dict.fromkeys(("min", "max", "mean", "median", "std", "var", "sum"), None)
    if values.size:
        var = values.var()  # std from it: numpy would compute the variance twice
        stats = {"min": values.min(), "max": values.max(), "mean": values.mean(),
                 "median": np.median(values), "std": np.sqrt(var), "var": var,
                 "sum": values.sum()}  # fmt: skip
        stats = {key: float(value) for key, value in stats.items()}
    return {"stat": stat, "bounds": list(bounds), **stats, "path": str(path),
            "tile": f"Tile(x={tile.x}, y={tile.y}, z={tile.z})", "z": tile.z, "x": tile.x,
            "y": tile.y, "n_nonempty": int(np.count_nonzero(values))}  # fmt: skip


# -- config -> core values ----------------------------------------------------
def stat_specs(config: RasterflowConfig) -> list[StatSpec]:
    return [StatSpec(s.weight_by, s.property, s.aggregation_method) for s in config.statistics]


def staged_columns(config: RasterflowConfig) -> StagedColumns:
    needed = [s.needed_column for s in config.statistics if s.needed_column]
    return StagedColumns(
        centroid_x=config.prop_centroid_x,
        centroid_y=config.prop_centroid_y,
        duplicated=config.prop_duplicated if config.deduplicate else None,
        properties=tuple(dict.fromkeys(needed)),
    )


def _count_total(config: RasterflowConfig, bands: np.ndarray) -> int | None:
    for index, stat in enumerate(config.statistics):
        if stat.property == "centroids_per_pixel" and stat.resampling_method == "sum":
            return int(round(float(np.nansum(bands[index]))))
    return None
