"""A synthetic staged sample: ice-wedge-like polygons staged as PDG staging does.

A jittered Voronoi net (the shape of ice-wedge polygons) shrunk so troughs
separate the cells, plus the awkward cases real data holds: polygons with
holes, multipolygons, overlapping duplicates and a self-intersecting ring.
Each polygon is stored unclipped in every z-max tile it touches, with the
staging columns (`staging_centroid_*`, `staging_centroid_within_tile`, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
import shapely.affinity
from pyproj import Transformer

from rasterflow.rasterize_core.tiles import (
    Tile,
    matrix_size,
    tile_at,
    tile_path,
    tiles_touching,
    tms_crs,
    xy_bounds,
)


@dataclass(frozen=True)
class SyntheticSample:
    root: Path
    config_path: Path
    polygons: gpd.GeoDataFrame  # the unstaged truth, one row per polygon
    tiles: list[Tile]


def ice_wedge_polygons(
    bounds: tuple[float, float, float, float], cells: tuple[int, int], seed: int
) -> np.ndarray:
    """Shrunken jittered Voronoi cells over `bounds`, plus the awkward cases."""
    rng = np.random.default_rng(seed)
    left, bottom, right, top = bounds
    nx, ny = cells
    step_x, step_y = (right - left) / nx, (top - bottom) / ny
    gx, gy = np.meshgrid(np.arange(nx) + 0.5, np.arange(ny) + 0.5)
    x = left + (gx.ravel() + rng.uniform(-0.35, 0.35, gx.size)) * step_x
    y = bottom + (gy.ravel() + rng.uniform(-0.35, 0.35, gy.size)) * step_y
    net = shapely.voronoi_polygons(shapely.multipoints(np.column_stack([x, y])))
    cells_out = shapely.intersection(shapely.get_parts(net), shapely.box(*bounds))
    # Shrink toward each cell's centroid so neighbours are separated by a trough.
    polygons = np.array([_shrink(cell, rng.uniform(0.6, 0.85)) for cell in cells_out])
    polygons = polygons[shapely.within(shapely.centroid(polygons), shapely.box(*bounds))]
    return np.concatenate([polygons, _awkward_cases(polygons, rng, (step_x, step_y))])


def _shrink(cell: shapely.Polygon, factor: float) -> shapely.Polygon:
    cx, cy = cell.centroid.x, cell.centroid.y
    coords = np.asarray(cell.exterior.coords)
    return shapely.Polygon(np.column_stack([cx + (coords[:, 0] - cx) * factor,
                                            cy + (coords[:, 1] - cy) * factor]))  # fmt: skip


def _awkward_cases(polygons: np.ndarray, rng: np.random.Generator, step: tuple[float, float]):
    """Holes, multipolygons, overlaps and a bow-tie, made from random net cells."""
    picks = rng.choice(len(polygons), size=min(len(polygons), 40), replace=False)
    sx, sy = step
    extra = []
    for i, index in enumerate(picks):
        base = polygons[index]
        c = base.centroid
        kind = i % 4
        if kind == 0:  # a polygon with a hole (ring of a thermokarst pond)
            hole = shapely.affinity.scale(base, 0.4, 0.4, origin=c).exterior.coords
            extra.append(shapely.Polygon(base.exterior.coords, [hole[::-1]]))
        elif kind == 1:  # a multipolygon: two lobes
            lobe = shapely.affinity.translate(base, sx * 0.9, -sy * 0.9)
            extra.append(shapely.MultiPolygon([base, lobe]) if not base.intersects(lobe) else base)
        elif kind == 2:  # overlapping duplicate: coverage may exceed 1
            extra.append(shapely.affinity.translate(base, sx * 0.2, sy * 0.1))
        else:  # a bow-tie: a self-intersecting ring, repaired at read
            x0, y0, x1, y1 = base.bounds
            extra.append(shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)]))
    return np.array(extra, dtype=object)


def stage(polygons: np.ndarray, tms_id: str, z: int, root: Path, seed: int = 0) -> list[Tile]:
    """Write each polygon, unclipped, into every z-max tile it touches; return the tiles."""
    frame = _with_properties(polygons, seed).set_crs(tms_crs(tms_id))
    centroids = zip(frame["staging_centroid_x"], frame["staging_centroid_y"], strict=True)
    home = [tile_at(tms_id, z, x, y) for x, y in centroids]
    members: dict[Tile, list[int]] = {}
    valid = shapely.make_valid(polygons)
    for row, geometry in enumerate(valid):
        for tile in tiles_touching(tms_id, z, shapely.bounds(geometry).tolist()):
            if geometry.intersects(shapely.box(*xy_bounds(tms_id, tile))):
                members.setdefault(tile, []).append(row)
    for tile, rows in members.items():
        part = frame.iloc[rows].copy()
        part["staging_tile"] = f"{tile.z}/{tile.x}/{tile.y}"
        part["staging_centroid_tile"] = [str(home[r]) for r in rows]
        part["staging_centroid_within_tile"] = [home[r] == tile for r in rows]
        _write_gpkg(part, tile_path(root, tms_id, tile, ".gpkg", structure=("tms", "z", "x", "y")))
    return sorted(members)


def _with_properties(polygons: np.ndarray, seed: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed + 1)
    centroids = shapely.centroid(shapely.make_valid(polygons))
    return gpd.GeoDataFrame(
        {
            "Class": rng.choice(["low", "high", "flat"], len(polygons)),
            "Width": rng.uniform(2.0, 30.0, len(polygons)).round(3),
            "staging_area": shapely.area(polygons),
            "staging_centroid_x": shapely.get_x(centroids),
            "staging_centroid_y": shapely.get_y(centroids),
            "staging_identifier": [f"syn-{i}" for i in range(len(polygons))],
            "staging_filename": "synthetic.shp",
        },
        geometry=polygons,
    )


def _write_gpkg(frame: gpd.GeoDataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mixed = len(set(frame.geom_type)) > 1
    pyogrio.write_dataframe(frame, path, layer=path.stem, promote_to_multi=mixed or None)


def make_sample(
    root: str | Path,
    tms_id: str = "WorldCRS84Quad",
    z_range: tuple[int, int] = (9, 13),
    tiles: tuple[int, int] = (3, 2),
    cells_per_tile: int = 24,
    seed: int = 7,
    origin: tuple[float, float] = (-148.84, 70.05),
) -> SyntheticSample:
    """Stage a synthetic net over `tiles` (columns, rows) of z-max tiles and write a config.

    The block starts at the tile holding `origin` (lon, lat), shifted to fit the matrix;
    where it meets the grid's edge the net runs up to that edge (see `_net_bounds`).
    """
    z = z_range[1]
    first = tile_at(tms_id, z, *_to_tms_crs(tms_id, origin))
    bounds, cells = _net_bounds(tms_id, z, first, tiles, cells_per_tile)
    polygons = ice_wedge_polygons(bounds, cells, seed)
    if bounds_touch_grid_edge(tms_id, z, bounds):
        polygons = _fit_to_grid(polygons, tms_id, z, bounds, cells)
    return stage_sample(root, polygons, tms_id, z_range, seed)


def stage_sample(
    root: str | Path, polygons: np.ndarray, tms_id: str, z_range: tuple[int, int], seed: int = 0
) -> SyntheticSample:
    """Stage polygons (in the TMS CRS) at z-max under `root`, write a config beside them."""
    root = Path(root)
    staged = stage(polygons, tms_id, z_range[1], root / "staged", seed)
    config_path = root / "config.json"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(demo_config(root, tms_id, z_range), indent=2))
    truth = gpd.GeoDataFrame(geometry=polygons, crs=tms_crs(tms_id))
    return SyntheticSample(root, config_path, truth, staged)


def polygons_to_tms(polygons: np.ndarray, tms_id: str, source_crs: str = "OGC:CRS84") -> np.ndarray:
    """The same polygons, vertex by vertex, in the TMS CRS (x = easting or longitude)."""
    crs = tms_crs(tms_id)
    transformer = Transformer.from_crs(source_crs, crs, always_xy=True)

    def move(coords: np.ndarray) -> np.ndarray:
        return np.column_stack(transformer.transform(coords[:, 0], coords[:, 1]))

    return shapely.transform(np.asarray(polygons, dtype=object), move)


def grid_bounds(tms_id: str, z: int) -> tuple[float, float, float, float]:
    """The matrix's extent at z in the TMS CRS, from the same arithmetic as the tiles."""
    columns, rows = matrix_size(tms_id, z)
    left, _, _, top = xy_bounds(tms_id, Tile(z, 0, 0))
    _, bottom, right, _ = xy_bounds(tms_id, Tile(z, columns - 1, rows - 1))
    return left, bottom, right, top


def bounds_touch_grid_edge(tms_id: str, z: int, bounds: tuple[float, ...]) -> bool:
    edges = grid_bounds(tms_id, z)
    return any(a == b for a, b in zip(bounds, edges, strict=True))


def _net_bounds(
    tms_id: str, z: int, first: Tile, tiles: tuple[int, int], cells_per_tile: int
) -> tuple[tuple[float, float, float, float], tuple[int, int]]:
    """The net's box over a block of tiles from `first`, and its cells (columns, rows).

    Inset 0.3 tile so the net crosses tile edges on every side, except where the block
    meets the grid's edge: there it runs to the edge, so edge tiles are exercised.
    """
    columns, rows = matrix_size(tms_id, z)
    n_cols, n_rows = min(tiles[0], columns), min(tiles[1], rows)
    col0 = min(max(first.x, 0), columns - n_cols)
    row0 = min(max(first.y, 0), rows - n_rows)
    left, _, _, top = xy_bounds(tms_id, Tile(z, col0, row0))
    _, bottom, right, _ = xy_bounds(tms_id, Tile(z, col0 + n_cols - 1, row0 + n_rows - 1))
    width, height = (right - left) / n_cols, (top - bottom) / n_rows
    inner = (col0 > 0, row0 + n_rows < rows, col0 + n_cols < columns, row0 > 0)
    bounds = (left + 0.3 * width * inner[0], bottom + 0.3 * height * inner[1],
              right - 0.3 * width * inner[2], top - 0.3 * height * inner[3])  # fmt: skip
    return bounds, (cells_per_tile * n_cols, cells_per_tile * n_rows)


def _fit_to_grid(polygons, tms_id: str, z: int, bounds, cells: tuple[int, int]) -> np.ndarray:
    """Drop what strays off the grid (a shifted lobe or duplicate) and add one polygon
    flush with each grid edge the net reaches: staging cannot put a polygon outside
    the grid, and a shared edge is where clamping and pixel edges are tested."""
    edges = grid_bounds(tms_id, z)
    inside = shapely.covered_by(shapely.make_valid(polygons), shapely.box(*edges))
    left, bottom, right, top = bounds
    sx, sy = (right - left) / cells[0], (top - bottom) / cells[1]
    # Off-centre: a centroid at mid-net could sit exactly on a tile edge.
    cx, cy = left + 0.37 * (right - left), bottom + 0.37 * (top - bottom)
    flush = {
        0: (left, cy - 0.4 * sy, left + 0.5 * sx, cy + 0.4 * sy),
        1: (cx - 0.4 * sx, bottom, cx + 0.4 * sx, bottom + 0.5 * sy),
        2: (right - 0.5 * sx, cy - 0.4 * sy, right, cy + 0.4 * sy),
        3: (cx - 0.4 * sx, top - 0.5 * sy, cx + 0.4 * sx, top),
    }
    huggers = [shapely.box(*flush[i]) for i in range(4) if bounds[i] == edges[i]]
    return np.concatenate([polygons[inside], np.array(huggers, dtype=object)])


# PDG's ice-wedge-polygon statistics: the polygon count and the exact coverage.
IWP_STATISTICS = [
    {"name": "iwp_count", "weight_by": "count", "property": "centroids_per_pixel",
     "aggregation_method": "sum", "resampling_method": "sum", "val_range": [0, None],
     "palette": ["#f8ff1f1A", "#f8ff1f"], "nodata_val": 0, "nodata_color": "#ffffff00"},
    {"name": "iwp_coverage", "weight_by": "area", "property": "area_per_pixel_area",
     "aggregation_method": "sum", "resampling_method": "average", "val_range": [0, 1],
     "palette": ["#66339952", "#ffcc00"], "nodata_val": 0, "nodata_color": "#ffffff00"},
]  # fmt: skip


def demo_config(root: Path, tms_id: str, z_range: tuple[int, int]) -> dict:
    """A PDG-style config over the sample: the two IWP statistics and an area-weighted mean."""
    return {
        "dir_staged": str(root / "staged"),
        "dir_geotiff": str(root / "geotiff"),
        "dir_web_tiles": str(root / "web_tiles"),
        "filename_rasterization_events": str(root / "rasterization_events.csv"),
        "filename_rasters_summary": str(root / "rasters_summary.csv"),
        "filename_config": str(root / "config.json"),
        "tms_id": tms_id,
        "z_range": list(z_range),
        "statistics": [
            *IWP_STATISTICS,
            {"name": "mean_width", "weight_by": "area", "property": "Width",
             "aggregation_method": "mean", "resampling_method": "average",
             "val_range": [None, None], "palette": "viridis", "nodata_val": None},
        ],
    }  # fmt: skip


def _to_tms_crs(tms_id: str, lonlat: tuple[float, float]) -> tuple[float, float]:
    crs = tms_crs(tms_id)
    return Transformer.from_crs("OGC:CRS84", crs, always_xy=True).transform(*lonlat)
