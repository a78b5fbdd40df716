"""The work of one batch, as plain functions (wrapped with `python_app` by the driver).

Each takes a batch of tiles and small values, calls the pure core per tile, writes the
tile's files, and returns small records: one outcome per tile with its summary rows,
columnar (`workflow.batches`). A bad tile becomes a `failed` record naming the file and
the reason; the rest of the batch goes on. Nothing heavy crosses a task boundary.
"""

from __future__ import annotations

import hashlib
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from pyproj import CRS

from rasterflow.rasterize_core import palette, pyramid
from rasterflow.rasterize_core.errors import RasterflowError, TileInputError
from rasterflow.rasterize_core.statistics import (
    Grid,
    StatSpec,
    centroid_pixels,
    compute_bands,
    empty_value,
    needs_numbers,
)
from rasterflow.rasterize_core.tiles import Tile, tile_in_grid, tms_crs_wkt, xy_bounds
from rasterflow.workflow.batches import TileBatch, TileResults, pack
from rasterflow.workflow.config import RasterflowConfig
from rasterflow.workflow.layout import geotiff_path, webtile_path
from rasterflow.workflow.steps import Step, TileRecord
from rasterflow.workflow.worker_start import LazyModule, deferred, lean_pyogrio

if TYPE_CHECKING:
    from rasterflow.rasterize_core import read as read_types

# Imported by the apps that use them, at first use (workflow/worker_start.py): the driver
# never loads GDAL or numba, a worker only what its tasks need.
geotiff = LazyModule("rasterflow.rasterize_core.geotiff")  # rasterio
webtile = LazyModule("rasterflow.rasterize_core.webtile")  # Pillow
_quicklook = LazyModule("rasterflow.workflow.quicklook")  # Pillow
_read = LazyModule("rasterflow.rasterize_core.read", before=lean_pyogrio)  # pyogrio, pyarrow
# What a warm worker loads before its first task; not the records' writer (one task a run,
# 11 ms to import in a warm worker), which would lengthen every pool's start.
LAZY_MODULES = (_read, geotiff, webtile, _quicklook)
_records = LazyModule("rasterflow.workflow.records")  # pyarrow's Parquet and CSV
read_staged_tile = deferred(_read, "read_staged_tile")
StagedColumns = deferred(_read, "StagedColumns")


def grid_of(config: RasterflowConfig, tile: Tile) -> Grid:
    return Grid(xy_bounds(config.tms_id, tile), config.tile_size)


# -- the three batch apps -----------------------------------------------------
# Each takes a `TileBatch` (a zoom and two integer arrays; a list of Tiles works too) and
# returns `TileResults` (the batch's event and summary rows as Arrow tables, see
# `workflow.batches`).
Tiles = TileBatch | Sequence[Tile]


def _tiles(batch: Tiles) -> list[Tile]:
    return batch.tiles() if isinstance(batch, TileBatch) else list(batch)


def rasterize_batch(batch: Tiles, sources: list[str], config: RasterflowConfig) -> TileResults:
    """z-max tiles: staged polygons -> one GeoTIFF each."""
    crs = CRS.from_wkt(tms_crs_wkt(config.tms_id))
    records = [
        _run_tile(Step.RASTERIZE, tile, partial(_rasterize_tile, tile, src, config, crs))
        for tile, src in zip(_tiles(batch), sources, strict=True)
    ]
    return pack(records, range(len(records)))


def parents_batch(batch: Tiles, config: RasterflowConfig) -> TileResults:
    """Parent tiles: 2x2 reduction of the children that exist; none -> no record."""
    records: list[TileRecord] = []
    positions: list[int] = []
    for position, tile in enumerate(_tiles(batch)):
        children = [geotiff_path(config, child) for child in tile.children()]
        if any(path.exists() for path in children):
            work = lambda t=tile, c=children: _parent_tile(t, c, config)  # noqa: E731
            records.append(_run_tile(Step.PARENT, tile, work))
            positions.append(position)
    return pack(records, positions)


def webtiles_batch(
    batch: Tiles, config: RasterflowConfig, ranges: dict[str, tuple[float, float]]
) -> TileResults:
    """PNG per statistic for tiles whose GeoTIFF exists, with the level's value ranges."""
    records: list[TileRecord] = []
    positions: list[int] = []
    for position, tile in enumerate(_tiles(batch)):
        if geotiff_path(config, tile).exists():
            work = lambda t=tile: _webtile_tile(t, config, ranges)  # noqa: E731
            records.append(_run_tile(Step.WEBTILE, tile, work))
            positions.append(position)
    return pack(records, positions)


def quicklooks_level(z: int, config: RasterflowConfig) -> list[str]:
    """The level's quick-looks, from its web tiles on disk (`workflow.quicklook`)."""
    return _quicklook.write_level(config, z)


def write_records(config: RasterflowConfig) -> None:
    """The event log and the summary at PDG's names, from the run's journal: on a worker,
    for the driver's memory and CPU (`records.write_files`)."""
    _records.write_files(config)


# -- per tile ---------------------------------------------------------------
def _run_tile(step: str, tile: Tile, work: Callable[[], dict]) -> TileRecord:
    """Time one tile's work and turn its outcome or its error into a record. An error names
    the file and what is wrong; `detail` keeps the library's own words (for an unexpected
    error, its whole traceback) for debugging."""
    started = time.time()
    record: dict[str, Any] = {"step": step, "z": tile.z, "x": tile.x, "y": tile.y,
                              "host": os.uname().nodename, "start_time": started}  # fmt: skip
    try:
        record.update(status="ok", error=None, **work())
    except TileInputError as err:
        record.update(status="failed", error=str(err), detail=err.detail, path=err.path,
                      summary=[])  # fmt: skip
    except Exception as err:  # a bug or an unexpected input: still only this tile
        path = getattr(err, "tile_file", None)
        record.update(status="failed", error=_unexpected(err, path), path=path, summary=[],
                      detail="".join(traceback.format_exception(err)))  # fmt: skip
    record["total_time"] = round(time.time() - started, 6)
    return cast(TileRecord, record)


@contextmanager
def _about_file(path: str | Path) -> Iterator[None]:
    """An unexpected error raised inside names the file it happened on, for `_run_tile`."""
    try:
        yield
    except RasterflowError:
        raise
    except Exception as err:
        with suppress(TypeError):  # an exception type without __dict__: unnamed then
            vars(err)["tile_file"] = str(path)
        raise


def _unexpected(err: Exception, path: str | None) -> str:
    """`file: unexpected TypeError in statistics.py:117 (_count_band): its first line`, the
    place being the last frame in rasterflow's code, not one deep inside numpy or pandas."""
    steps = list(traceback.walk_tb(err.__traceback__))
    ours = [(f, n) for f, n in steps if f.f_globals.get("__name__", "").startswith("rasterflow.")]
    where = ""
    if ours or steps:
        frame, line = (ours or steps)[-1]
        where = f" in {Path(frame.f_code.co_filename).name}:{line} ({frame.f_code.co_name})"
    cause = str(err).strip().splitlines()[0][:200] if str(err).strip() else "(no message)"
    return f"{path + ': ' if path else ''}unexpected {type(err).__name__}{where}: {cause}"


def _rasterize_tile(tile: Tile, source: str, config: RasterflowConfig, crs: CRS) -> dict:
    if not tile_in_grid(config.tms_id, tile):
        raise TileInputError(source, f"tile {tile.z}/{tile.x}/{tile.y} is outside {config.tms_id}")
    with _about_file(source):
        staged = read_staged_tile(source, staged_columns(config), crs)
        if config.strict and staged.skipped:
            raise TileInputError(source, "rows that cannot contribute, and strict is set: "
                                         f"{staged.skipped_text(rows_named=5)}")  # fmt: skip
        grid = grid_of(config, tile)
        bands = compute_bands(staged, stat_specs(config), grid)
        result = _write_and_summarize(config, tile, bands)
        own = np.count_nonzero(centroid_pixels(staged, grid) >= 0)
    return {**result, "n_polygons": int(own), "notes": list(staged.notes),
            "skipped": staged.skipped_text()}  # fmt: skip


def _parent_tile(tile: Tile, children: list[Path], config: RasterflowConfig) -> dict:
    with _about_file(geotiff_path(config, tile)):
        arrays = [geotiff.read_geotiff(path) if path.exists() else None for path in children]
        methods = [stat.resampling_method for stat in config.statistics]
        empties = [empty_value(stat.aggregation_method) for stat in config.statistics]
        bands = pyramid.build_parent(arrays, methods, empties)
        result = _write_and_summarize(config, tile, bands)
    return {**result, "n_polygons": _count_total(config, bands)}


def _webtile_tile(tile: Tile, config: RasterflowConfig, ranges: dict) -> dict:
    with _about_file(geotiff_path(config, tile)):
        return _render_webtiles(tile, config, ranges)


def _render_webtiles(tile: Tile, config: RasterflowConfig, ranges: dict) -> dict:
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
    stats: dict[str, float | None] = dict.fromkeys(("min", "max", "mean", "median", "std",
                                                    "var", "sum"))  # fmt: skip
    if values.size:
        var = float(values.var())  # std from it: numpy would compute the variance twice
        stats = {"min": float(values.min()), "max": float(values.max()),
                 "mean": float(values.mean()), "median": float(np.median(values)),
                 "std": float(np.sqrt(var)), "var": var, "sum": float(values.sum())}  # fmt: skip
    return {"stat": stat, "bounds": list(bounds), **stats, "path": str(path),
            "tile": f"Tile(x={tile.x}, y={tile.y}, z={tile.z})", "z": tile.z, "x": tile.x,
            "y": tile.y, "n_nonempty": int(np.count_nonzero(values))}  # fmt: skip


# -- config -> core values ----------------------------------------------------
def stat_specs(config: RasterflowConfig) -> list[StatSpec]:
    return [StatSpec(s.weight_by, s.property, s.aggregation_method) for s in config.statistics]


def staged_columns(config: RasterflowConfig) -> read_types.StagedColumns:
    needed = [s.needed_column for s in config.statistics if s.needed_column]
    arithmetic = [(spec.property, spec.aggregation) for spec in stat_specs(config)
                  if needs_numbers(spec)]  # fmt: skip
    return StagedColumns(
        centroid_x=config.prop_centroid_x,
        centroid_y=config.prop_centroid_y,
        duplicated=config.prop_duplicated if config.deduplicate else None,
        properties=tuple(dict.fromkeys(needed)),
        numeric=tuple(dict.fromkeys(arithmetic)),
    )


def _count_total(config: RasterflowConfig, bands: np.ndarray) -> int | None:
    for index, stat in enumerate(config.statistics):
        if stat.property == "centroids_per_pixel" and stat.resampling_method == "sum":
            return int(round(float(np.nansum(bands[index]))))
    return None
