"""Any quadtree morecantile grid: the whole pipeline on each grid (tile arithmetic is in
tests/unit/core/test_tiles.py).

Geographic grids in both axis orders (WorldCRS84Quad is lon/lat, WGS1984Quad is
EPSG:4326 with lat/lon authority order) and projected ones (WebMercatorQuad,
UPSArcticWGS84Quad, polar stereographic): bounds are x-first in the TMS CRS,
tiles at the grid's edges (antimeridian, poles, the outer boundary of the polar
grid, WorldCRS84Quad's 2x1 zoom 0) are staged and rasterized, counts are
conserved and coverage is exact against shapely at every level, and the area
band sums to the polygons' area in the CRS's own units (deg² or m²).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from pyproj import CRS, Geod, Proj, Transformer

from rasterflow.rasterize_core.tiles import (
    Tile,
    get_tms,
    matrix_size,
    tms_crs,
    xy_bounds,
)
from rasterflow.workflow.config import load_config
from rasterflow.workflow.demo.synthetic import (
    grid_bounds,
    ice_wedge_polygons,
    make_sample,
    polygons_to_tms,
    stage_sample,
)
from rasterflow.workflow.run import run_workflow
from tests.helpers.paths import THREADS_SITE
from tests.helpers.pyramid_truth import check_against_geometry, tiffs_by_level, tile_of

AREA_STAT = {"name": "iwp_area", "weight_by": "area", "property": "area_within_pixel",
             "aggregation_method": "sum", "resampling_method": "sum", "val_range": [0, None],
             "palette": "viridis", "nodata_val": 0}  # fmt: skip


def ups_outer_corner() -> tuple[float, float]:
    """Lon/lat just inside the bottom-left corner of UPSArcticWGS84Quad (about 33°S)."""
    left, bottom, _, _ = grid_bounds("UPSArcticWGS84Quad", 7)
    crs = tms_crs("UPSArcticWGS84Quad")
    return Transformer.from_crs(crs, "OGC:CRS84", always_xy=True).transform(
        left + 1e3, bottom + 1e3
    )


CASES = {
    # z0 is 2x1; eight z2 tiles span the antimeridian on both sides and the pole row.
    "crs84-z0-antimeridian": ("WorldCRS84Quad", (0, 2), (8, 1), 5, (-179.9, 89.9)),
    # EPSG:4326 (lat/lon authority order): the south-east corner, lon 180 and lat -90.
    "wgs1984-south-east-corner": ("WGS1984Quad", (3, 5), (3, 2), 8, (179.9, -89.9)),
    "webmercator-north-west-corner": ("WebMercatorQuad", (9, 11), (3, 2), 10, (-179.99, 85.05)),
    # Four z13 tiles meeting at the North Pole.
    "ups-pole": ("UPSArcticWGS84Quad", (11, 13), (2, 2), 15, (-135.0, 89.99)),
    "ups-outer-corner": ("UPSArcticWGS84Quad", (5, 7), (3, 2), 8, None),
}


def with_area_band(config_path: Path) -> None:
    raw = json.loads(config_path.read_text())
    raw["statistics"].append(AREA_STAT)
    config_path.write_text(json.dumps(raw, indent=2))


def run_sample(sample):
    with_area_band(sample.config_path)
    config = load_config(sample.config_path)
    report = run_workflow(config, site=THREADS_SITE, live_progress=False)
    assert report.exit_code == 0 and not report.failures, report.failures
    return config


@pytest.fixture(scope="module", params=list(CASES))
def grid_run(request, tmp_path_factory):
    tms_id, z_range, tiles, cells, origin = CASES[request.param]
    sample = make_sample(tmp_path_factory.mktemp(request.param), tms_id=tms_id, z_range=z_range,
                         tiles=tiles, cells_per_tile=cells, seed=5,
                         origin=origin or ups_outer_corner())  # fmt: skip
    return sample, run_sample(sample)


def test_every_level_is_exact(grid_run):
    sample, config = grid_run
    polygons = sample.polygons.geometry.to_numpy()
    check_against_geometry(config, polygons, len(polygons))


def test_edge_tiles_are_staged_and_rasterized(grid_run):
    sample, config = grid_run
    columns, rows = matrix_size(config.tms_id, config.z_max)
    on_edge = [t for t in sample.tiles if t.x in (0, columns - 1) or t.y in (0, rows - 1)]
    crs = tms_crs(config.tms_id)
    pole = shapely.Point(Transformer.from_crs("OGC:CRS84", crs, always_xy=True).transform(0, 90))
    # UPS tile corners miss the pole by 3 mm (the registry's rounded origin and cell size).
    at_pole = [
        t for t in sample.tiles if shapely.box(*xy_bounds(config.tms_id, t)).distance(pole) < 0.01
    ]
    assert on_edge or len(at_pole) == 4
    edges = grid_bounds(config.tms_id, config.z_max)
    flush = shapely.bounds(sample.polygons.geometry.to_numpy())
    if on_edge:  # some polygon lies exactly on the grid's edge
        assert any((flush[:, i] == edges[i]).any() for i in range(4))
    levels = tiffs_by_level(Path(config.dir_geotiff), config.tms_id)
    if config.tms_id == "WorldCRS84Quad" and config.z_min == 0:
        assert sorted(tile_of(p) for p in levels[0]) == [Tile(0, 0, 0), Tile(0, 1, 0)]


def test_geotiffs_carry_the_tms_crs_and_x_first_bounds(grid_run):
    """GeoTIFF, staged GeoPackage and tile bounds agree on the CRS and on x = easting/lon."""
    sample, config = grid_run
    expected = CRS(get_tms(config.tms_id).crs.to_wkt())  # morecantile public API
    for paths in tiffs_by_level(Path(config.dir_geotiff), config.tms_id).values():
        for path in paths:
            with rasterio.open(path) as dataset:
                assert CRS(dataset.crs.to_wkt()).equals(expected, ignore_axis_order=True)
                assert tuple(dataset.bounds) == pytest.approx(
                    xy_bounds(config.tms_id, tile_of(path)), rel=1e-12, abs=1e-9
                )
    tile = sample.tiles[0]
    staged = Path(config.dir_staged) / config.tms_id / f"{tile.z}/{tile.x}/{tile.y}.gpkg"
    info = pyogrio.read_info(staged)
    assert CRS(info["crs"]).equals(expected, ignore_axis_order=True)
    left, bottom, right, top = xy_bounds(config.tms_id, tile)
    x0, y0, x1, y1 = info["total_bounds"]  # stored x first, overlapping the tile
    assert x0 < right and x1 > left and y0 < top and y1 > bottom


def level_totals(config, band: int, per_pixel_area: bool) -> dict[int, float]:
    """Σ band value (x pixel area for fractions) per level, in the CRS's area units."""
    totals = {}
    for z, paths in tiffs_by_level(Path(config.dir_geotiff), config.tms_id).items():
        total = 0.0
        for path in paths:
            with rasterio.open(path) as dataset:
                values = dataset.read(band).astype("float64")
                pixel = abs(dataset.transform.a * dataset.transform.e)
            total += values.sum() * (pixel if per_pixel_area else 1.0)
        totals[z] = total
    return totals


def check_area_totals(config, polygons) -> float:
    """Coverage x pixel area and the area band both sum to the shapely area, every level."""
    truth = shapely.area(shapely.make_valid(np.asarray(polygons, dtype=object))).sum()
    for by_coverage in (level_totals(config, 2, True), level_totals(config, 4, False)):
        assert by_coverage == pytest.approx(dict.fromkeys(by_coverage, truth), rel=1e-5)
    return truth


def test_area_totals_in_crs_units(grid_run):
    sample, config = grid_run
    check_area_totals(config, sample.polygons.geometry.to_numpy())


# -- the same lon/lat polygons in WorldCRS84Quad and UPSArcticWGS84Quad ---------
@pytest.fixture(scope="module")
def same_polygons(tmp_path_factory):
    """One lon/lat net at 70°N reaching the antimeridian, staged into both grids."""
    bounds = (179.86, 70.0, 180.0, 70.045)
    lonlat = ice_wedge_polygons(bounds, (60, 24), seed=9)
    lonlat = lonlat[shapely.covered_by(shapely.make_valid(lonlat), shapely.box(*bounds))]
    flush = shapely.box(179.995, 70.02, 180.0, 70.025)  # on the antimeridian itself
    lonlat = np.concatenate([lonlat, np.array([flush], dtype=object)])
    root = tmp_path_factory.mktemp("same-polygons")
    runs = {}
    for tms_id in ("WorldCRS84Quad", "UPSArcticWGS84Quad"):
        polygons = polygons_to_tms(lonlat, tms_id)
        sample = stage_sample(root / tms_id, polygons, tms_id, (11, 13), seed=9)
        runs[tms_id] = (sample, run_sample(sample))
    return lonlat, runs


@pytest.mark.parametrize("tms_id", ["WorldCRS84Quad", "UPSArcticWGS84Quad"])
def test_same_polygons_exact_in_each_grid(same_polygons, tms_id):
    lonlat, runs = same_polygons
    sample, config = runs[tms_id]
    polygons = sample.polygons.geometry.to_numpy()
    assert len(polygons) == len(lonlat)
    check_against_geometry(config, polygons, len(lonlat))  # count at every level, per pixel
    check_area_totals(config, polygons)
    if tms_id == "WorldCRS84Quad":
        columns, _ = matrix_size(tms_id, config.z_max)
        assert any(t.x == columns - 1 for t in sample.tiles)  # the antimeridian column


def test_polar_areas_are_square_metres(same_polygons):
    """UPS m² = geodesic m² x the projection's areal scale at each polygon (k² ≈ 1.05 at 70°N)."""
    lonlat, runs = same_polygons
    _, config = runs["UPSArcticWGS84Quad"]
    ups_total = check_area_totals(config, polygons_to_tms(lonlat, "UPSArcticWGS84Quad"))
    valid = shapely.make_valid(lonlat)
    geod, proj = Geod(ellps="WGS84"), Proj(tms_crs(config.tms_id))
    centroids = shapely.centroid(valid)
    scale = proj.get_factors(shapely.get_x(centroids), shapely.get_y(centroids)).areal_scale
    geodesic = np.array([abs(geod.geometry_area_perimeter(p)[0]) for p in valid])
    assert ups_total == pytest.approx((geodesic * scale).sum(), rel=1e-4)
    assert 1.04 < ups_total / geodesic.sum() < 1.06
