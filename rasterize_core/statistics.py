"""One band per statistic for a z-max tile, from its polygons (DESIGN §2).

Count-weighted statistics place each polygon in the pixel holding its centroid
(only this tile's own copies count); area-weighted ones use the exact per-pixel
fractions of `coverage.coverage_triplets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:  # the config imports this module: the reader and the kernel load only
    from rasterflow.rasterize_core.read import StagedTile  # where tiles are computed

COUNT_KEYWORDS = {"centroids_per_pixel": frozenset({"sum", "count"})}
AREA_KEYWORDS = {
    "area_per_pixel_area": frozenset({"sum"}),
    "area_within_pixel": frozenset({"sum"}),
}
COUNT_AGGREGATIONS = frozenset(
    {"sum", "mean", "median", "min", "max", "count", "std", "var", "first", "last", "nunique"}
)
AREA_AGGREGATIONS = frozenset({"sum", "mean", "min", "max", "count"})
# Aggregations whose empty pixel is 0; all others leave NaN.
ZERO_WHEN_EMPTY = frozenset({"sum", "count", "nunique"})
# Count-weighted aggregations that work on a text property (they pick, count or compare
# values); every other one, and every area-weighted one, does arithmetic.
TEXT_SAFE_AGGREGATIONS = frozenset({"first", "last", "nunique", "count"})


@dataclass(frozen=True)
class StatSpec:
    """What the core needs of one configured statistic."""

    weight_by: str  # "count" | "area"
    property: str
    aggregation: str


class Grid(NamedTuple):
    """A tile's pixel grid: bounds (left, bottom, right, top) in the TMS CRS, shape (h, w)."""

    bounds: tuple[float, float, float, float]
    shape: tuple[int, int]

    @property
    def pixel_size(self) -> tuple[float, float]:
        left, bottom, right, top = self.bounds
        return (right - left) / self.shape[1], (top - bottom) / self.shape[0]


def needs_numbers(spec: StatSpec) -> bool:
    """Whether the statistic's property must be numeric (checked where the tile is read)."""
    if spec.property in COUNT_KEYWORDS or spec.property in AREA_KEYWORDS:
        return False
    return spec.weight_by == "area" or spec.aggregation not in TEXT_SAFE_AGGREGATIONS


def empty_value(aggregation: str) -> float:
    return 0.0 if aggregation in ZERO_WHEN_EMPTY else np.nan


def compute_bands(tile: StagedTile, specs: list[StatSpec], grid: Grid) -> np.ndarray:
    """(n_stats, h, w) float64: one band per spec, in order."""
    own_pixels = centroid_pixels(tile, grid)
    triplets = _triplets_if_needed(tile, specs, grid)
    bands = np.empty((len(specs), *grid.shape), dtype="float64")
    for i, spec in enumerate(specs):
        bands[i] = compute_band(tile, spec, grid, own_pixels, triplets)
    return bands


def compute_band(
    tile: StagedTile, spec: StatSpec, grid: Grid, own_pixels: np.ndarray, triplets
) -> np.ndarray:
    """(h, w) float64 band of one spec, from the tile's `centroid_pixels` and, for area
    statistics, its `coverage_triplets` (computed once and shared by every area band)."""
    if spec.weight_by == "count":
        return _count_band(tile, spec, own_pixels, grid.shape)
    return _area_band(tile, spec, triplets, grid)


def centroid_pixels(tile: StagedTile, grid: Grid) -> np.ndarray:
    """Flat pixel index of each row's centroid, -1 where it lies in another tile."""
    left, _, _, top = grid.bounds
    width_px, height_px = grid.pixel_size
    height, width = grid.shape
    col = np.floor((tile.centroid_x - left) / width_px)
    row = np.floor((top - tile.centroid_y) / height_px)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    return np.where(inside, row * width + col, -1).astype("int64")


def _triplets_if_needed(tile: StagedTile, specs: list[StatSpec], grid: Grid):
    if not any(spec.weight_by == "area" for spec in specs):
        return None
    from rasterflow.rasterize_core.coverage import coverage_triplets  # numba: workers only

    return coverage_triplets(tile.geometries, grid.bounds, grid.shape)


def _count_band(
    tile: StagedTile, spec: StatSpec, own_pixels: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    size = shape[0] * shape[1]
    mine = own_pixels >= 0
    if spec.property in COUNT_KEYWORDS:
        return np.bincount(own_pixels[mine], minlength=size).astype("float64").reshape(shape)
    import pandas as pd  # only here: the config's checks import this module, the driver too

    band = np.full(size, empty_value(spec.aggregation))
    values = pd.Series(tile.properties[spec.property][mine])
    if len(values):
        grouped = values.groupby(own_pixels[mine]).agg(spec.aggregation)
        band[grouped.index.to_numpy()] = pd.to_numeric(grouped, errors="coerce").to_numpy()
    return band.reshape(shape)


def _area_band(tile: StagedTile, spec: StatSpec, triplets, grid: Grid) -> np.ndarray:
    geom_index, pixel_index, fraction = triplets
    size = grid.shape[0] * grid.shape[1]
    if spec.property in AREA_KEYWORDS:
        band: np.ndarray = np.bincount(pixel_index, weights=fraction, minlength=size)
        if spec.property == "area_within_pixel":
            width_px, height_px = grid.pixel_size
            band *= width_px * height_px
        return band.reshape(grid.shape)
    values = np.asarray(tile.properties[spec.property], dtype="float64")[geom_index]
    known = ~np.isnan(values)
    if not known.all():  # polygons without a value take no part (copies only when needed)
        pixel_index, fraction, values = pixel_index[known], fraction[known], values[known]
    return _area_weighted(spec.aggregation, pixel_index, fraction, values, size).reshape(grid.shape)


def _area_weighted(
    aggregation: str, pixels: np.ndarray, fraction: np.ndarray, values: np.ndarray, size: int
) -> np.ndarray:
    if aggregation == "sum":
        return np.bincount(pixels, weights=fraction * values, minlength=size)
    if aggregation == "count":
        return np.bincount(pixels, minlength=size).astype("float64")
    if aggregation == "mean":
        weight = np.bincount(pixels, weights=fraction, minlength=size)
        total = np.bincount(pixels, weights=fraction * values, minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(weight > 0, total / weight, np.nan)
    if aggregation not in ("min", "max"):
        raise ValueError(
            f"aggregation {aggregation!r} is not one of the area-weighted ones: "
            f"{sorted(AREA_AGGREGATIONS)}"
        )
    band = np.full(size, np.nan)
    reduce_at = np.fmin.at if aggregation == "min" else np.fmax.at
    reduce_at(band, pixels, values)
    return band
