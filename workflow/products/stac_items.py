"""STAC Items of a run's GeoTIFF tiles: one Item per tile, its bands and lon/lat footprint.

Band statistics come from the run's summary rows; each GeoTIFF header is opened
once for its data type, shape and transform (about 1 ms a tile), rather than
trusting a recomputation. rio-stac is not used: it reads every pixel for
statistics the run already has. Footprints are in lon/lat as GeoJSON requires,
with the tile's own CRS, bounds and transform in the projection extension.
`rasterflow.workflow.products.stac` gathers the Items into the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pystac
import rasterio
import shapely
from pyproj import CRS, Transformer
from pystac.extensions.projection import ProjectionExtension

from rasterflow.rasterize_core.tiles import Tile, tms_crs, xy_bounds
from rasterflow.workflow.config import RasterflowConfig, Statistic, ValRange
from rasterflow.workflow.layout import geotiff_path, webtile_path
from rasterflow.workflow.records import RecordsReader, column
from rasterflow.workflow.records.store import tile_keys
from rasterflow.workflow.steps import Status, Step

GEOTIFF = pystac.MediaType.GEOTIFF
COG = pystac.MediaType.COG


# Per level and statistic: the web tiles' range; a configured range may keep an open (None) end.
LevelRanges = dict[int, dict[str, ValRange]]


@dataclass
class CatalogContext:
    """What the catalog is built from: the run's records (read a level at a time) and the
    grid's CRS."""

    config: RasterflowConfig
    ranges: LevelRanges
    crs: CRS
    records: TileRecords

    @classmethod
    def load(cls, config: RasterflowConfig, ranges: LevelRanges) -> CatalogContext:
        return cls(config, ranges, tms_crs(config.tms_id), TileRecords(config))


class TileRecords:
    """A tile's band statistics (summary) and when its GeoTIFF was written (its ok
    rasterize/parent row), looked up in one level's rows held as sorted arrays: the level
    of the last tile asked for (Items are made a level at a time)."""

    BAND = ("min", "max", "mean", "std")

    def __init__(self, config: RasterflowConfig):
        self.reader = RecordsReader(config)
        self.z_max = config.z_max
        self._z: int | None = None
        self._summary: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self._made: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.uint64), np.zeros(0))

    def band(self, stat: str, tile: Tile) -> dict[str, float]:
        self._load(tile.z)
        keys, values = self._summary.get(stat, (np.zeros(0, np.uint64), {}))
        at = _position(keys, tile)
        if at is None:
            return {}
        numbers = {name: float(column[at]) for name, column in values.items()}
        return {name: value for name, value in numbers.items() if np.isfinite(value)}

    def produced(self, tile: Tile) -> datetime | None:
        self._load(tile.z)
        keys, starts = self._made
        at = _position(keys, tile)
        if at is None or not np.isfinite(starts[at]):
            return None
        return datetime.fromtimestamp(float(starts[at]), UTC)

    def _load(self, z: int) -> None:
        if self._z == z:
            return
        self._z, self._summary = z, {}
        parts = [chunk for chunk in self.reader.summary(z, ["stat", *self.BAND])]
        if parts:
            table = pa.concat_tables(parts)
            stats = column(table, "stat")
            for name in np.unique(stats).tolist():
                pick = stats == name
                keys = tile_keys(column(table, "x")[pick], column(table, "y")[pick])
                order = np.argsort(keys)
                self._summary[name] = (keys[order], {
                    b: column(table, b, np.nan)[pick][order] for b in self.BAND})  # fmt: skip
        step = Step.raster(z, self.z_max)
        made: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        for chunk in self.reader.events(step, z, ["status", "start_time"]):
            ok = column(chunk, "status", "") == Status.OK
            made.append(tile_keys(column(chunk, "x")[ok], column(chunk, "y")[ok]))
            starts.append(column(chunk, "start_time", np.nan)[ok])
        if made:
            all_keys, all_starts = np.concatenate(made), np.concatenate(starts)
            order = np.argsort(all_keys)
            self._made = (all_keys[order], all_starts[order])
        else:
            self._made = (np.zeros(0, np.uint64), np.zeros(0))


def _position(sorted_keys: np.ndarray, tile: Tile) -> int | None:
    key = tile_keys(np.array([tile.x]), np.array([tile.y]))[0]
    at = int(np.searchsorted(sorted_keys, key))
    return at if at < len(sorted_keys) and sorted_keys[at] == key else None


# -- one Item per GeoTIFF -------------------------------------------------------
def tile_item(context: CatalogContext, tile: Tile) -> pystac.Item:
    config = context.config
    path = geotiff_path(config, tile)
    with rasterio.open(path) as dataset:
        dtype, shape, transform = (
            dataset.dtypes[0],
            (dataset.height, dataset.width),
            dataset.transform,
        )
    bounds = xy_bounds(config.tms_id, tile)
    geometry, bbox = footprint(config.tms_id, bounds)
    produced = context.records.produced(tile) or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    item = pystac.Item(
        id=f"{config.tms_id}-{tile.z}-{tile.x}-{tile.y}", geometry=geometry, bbox=bbox,
        datetime=produced,
        properties={"tile_matrix_set": config.tms_id, "tile_matrix": str(tile.z),
                    "tile_row": tile.y, "tile_col": tile.x},
    )  # fmt: skip
    projection = ProjectionExtension.ext(item, add_if_missing=True)
    projection.code = crs_code(context.crs)
    if projection.code is None:
        projection.wkt2 = context.crs.to_wkt()
    projection.bbox, projection.shape = list(bounds), list(shape)
    projection.transform = list(transform)[:6]
    bands = [band_metadata(stat, context, (tile, dtype)) for stat in config.statistics]
    item.add_asset("data", pystac.Asset(
        str(path.resolve()), title="Statistics GeoTIFF", media_type=COG if config.cog else GEOTIFF,
        roles=["data"], extra_fields={"bands": bands},
    ))  # fmt: skip
    for stat in config.statistics:
        png = webtile_path(config, tile, stat.name)
        if png.exists():
            item.add_asset(f"{stat.name}_png", pystac.Asset(
                str(png.resolve()), title=f"{stat.name} web tile",
                media_type=pystac.MediaType.PNG, roles=["visual"],
            ))  # fmt: skip
    return item


def band_metadata(stat: Statistic, context: CatalogContext, tile: tuple[Tile, str] | None) -> dict:
    """A STAC 1.1 band: what the statistic is, its unit, and this tile's statistics."""
    description, unit = describe_statistic(stat, context.crs)
    band: dict[str, Any] = {"name": stat.name, "description": description, "nodata": "nan"}
    if unit:
        band["unit"] = unit
    if tile is None:
        return band
    (z, x, y), dtype = tile[0], tile[1]
    band["data_type"] = dtype
    row = context.records.band(stat.name, Tile(z, x, y))
    names = {"min": "minimum", "max": "maximum", "mean": "mean", "std": "stddev"}
    numbers = {names[k]: row[k] for k in names if k in row}
    if numbers:
        band["statistics"] = numbers
    return band


def describe_statistic(stat: Statistic, crs: CRS) -> tuple[str, str | None]:
    """A sentence for the band and its unit (UCUM); None where the unit is the property's."""
    area_unit = _area_unit(crs)
    prop, how = stat.property, stat.aggregation_method
    if prop == "centroids_per_pixel":
        text, unit = "Number of polygons whose centroid lies in the pixel", "count"
    elif prop == "area_per_pixel_area":
        text = "Fraction of the pixel covered by polygons (overlapping polygons add)"
        unit = "1"
    elif prop == "area_within_pixel":
        text, unit = f"Polygon area within the pixel, in {area_unit} of {crs.name}", area_unit
    elif stat.weight_by == "area":
        text, unit = f"{how} of {prop!r}, weighted by the fraction of the pixel covered", None
    else:
        text, unit = f"{how} of {prop!r} over the polygons centred in the pixel", None
    return f"{text}. Lower zooms: {stat.resampling_method} of the 2x2 children.", unit


def _area_unit(crs: CRS) -> str:
    unit = crs.axis_info[0].unit_name.lower()
    return {"metre": "m2", "meter": "m2", "degree": "deg2"}.get(unit, f"({unit})2")


def crs_code(crs: CRS) -> str | None:
    """`EPSG:3413`-style code of the CRS, or None when it has no authority code."""
    authority = crs.to_authority()
    return f"{authority[0]}:{authority[1]}" if authority else None


# -- footprints in lon/lat ------------------------------------------------------
def footprint(tms_id: str, bounds: tuple[float, float, float, float]) -> tuple[dict, list[float]]:
    """GeoJSON geometry and bbox (lon/lat) of a tile, split at the antimeridian.

    A tile holding a pole, or crossing the antimeridian, gets its lon/lat bbox as
    footprint (a pole has no single longitude to trace a boundary through);
    others get their boundary, densified and transformed.
    """
    crs = tms_crs(tms_id)
    if crs.is_geographic:  # x-first bounds are already lon/lat
        return shapely.geometry.mapping(shapely.box(*bounds)), list(bounds)
    to_lonlat = Transformer.from_crs(crs, "OGC:CRS84", always_xy=True)
    west, south, east, north = to_lonlat.transform_bounds(*bounds, densify_pts=21)
    pole = _pole_in(crs, bounds)
    if pole:
        west, east = -180.0, 180.0
        south, north = (south, 90.0) if pole > 0 else (-90.0, north)
    if pole or west > east:
        parts = [(west, south, 180.0, north), (-180.0, south, east, north)] if west > east else [
            (west, south, east, north)]  # fmt: skip
        shape = shapely.union_all([shapely.box(*part) for part in parts])
        return shapely.geometry.mapping(shape), [west, south, east, north]
    boundary = shapely.segmentize(shapely.box(*bounds), (bounds[2] - bounds[0]) / 20)
    ring = shapely.transform(boundary, lambda xy: _moved(to_lonlat, xy))
    shape = shapely.orient_polygons(ring)
    return shapely.geometry.mapping(shape), [west, south, east, north]


def _moved(transformer: Transformer, xy: np.ndarray) -> np.ndarray:
    return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))


def _pole_in(crs: CRS, bounds: tuple[float, float, float, float]) -> int:
    """+1 / -1 when the North / South Pole is in the tile (or within 1e-3 of its width)."""
    to_crs = Transformer.from_crs("OGC:CRS84", crs, always_xy=True)
    box = shapely.box(*bounds)
    for sign in (1, -1):
        x, y = to_crs.transform(0.0, 90.0 * sign, errcheck=False)
        if (
            abs(x) < 1e30
            and abs(y) < 1e30
            and box.distance(shapely.Point(x, y)) <= 1e-3 * (bounds[2] - bounds[0])
        ):
            return sign
    return 0
